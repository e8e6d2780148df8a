//! Business rules: each a small named function with a stable rule id, grouped by concern.
//!
//! [`RULES`] is the registry: id, code, default severity and what the rule checks. The table in
//! `schemas/RULES.md` is generated from it (`aci-gateway rules`), and a test keeps it current.

mod cross;
mod deadline;
mod ids;
mod presence;
mod quality;

use std::time::SystemTime;

pub use self::deadline::{Deadline, Deadlines};
pub use self::ids::{awb_check_digit_ok, container_check_digit_ok, imo_check_digit_ok};

use super::codes::CodeLists;
use super::{Code, Finding, Report, Severity, quote};
use crate::pb::Manifest;

/// A rule as listed in the registry.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub id: &'static str,
    pub code: Code,
    /// The severity unless configuration says otherwise.
    pub severity: Severity,
    pub checks: &'static str,
}

const fn rule(id: &'static str, code: Code, severity: Severity, checks: &'static str) -> Rule {
    Rule {
        id,
        code,
        severity,
        checks,
    }
}

use Code::{
    DuplicateDocument as C81, IncorrectValue as C12, Missing as C13, NotAllowed as C15,
    RuleBroken as C14,
};
use Severity::{Error as E, Warning as W};

/// Every check the gateway makes, declarative constraints first.
pub const RULES: &[Rule] = &[
    rule(
        "field.required",
        C13,
        E,
        "A field marked required in proto/ is present.",
    ),
    rule(
        "field.items",
        C13,
        E,
        "A list has as many items as proto/ allows (code 12 when too many or too few but not none).",
    ),
    rule(
        "field.length",
        C12,
        E,
        "A text's length is within the bounds declared in proto/.",
    ),
    rule(
        "field.pattern",
        C12,
        E,
        "A text matches the pattern declared in proto/.",
    ),
    rule(
        "field.code_list",
        C12,
        E,
        "A code is in the code list named in proto/ (schemas/codes/).",
    ),
    rule(
        "field.range",
        C12,
        E,
        "A number is within the range declared in proto/.",
    ),
    rule(
        "field.fraction_digits",
        C12,
        E,
        "A number has no more decimals than proto/ allows.",
    ),
    rule(
        "dataset.required",
        C13,
        E,
        "The filing type's data set (schemas/datasets.tsv) requires the element.",
    ),
    rule(
        "dataset.not_allowed",
        C15,
        E,
        "The filing type's data set (schemas/datasets.tsv) does not allow the element.",
    ),
    rule(
        "ids.container_check_digit",
        C12,
        E,
        "ISO 6346 container numbers carry their check digit.",
    ),
    rule(
        "ids.imo_check_digit",
        C12,
        E,
        "IMO ship numbers carry their check digit (configurable as a warning).",
    ),
    rule(
        "ids.awb_check_digit",
        C12,
        E,
        "Air waybill numbers (ppp-nnnnnnnn) carry their mod 7 check digit.",
    ),
    rule(
        "ids.locode_country",
        C12,
        E,
        "A UN/LOCODE starts with a valid ISO 3166 country code.",
    ),
    rule(
        "ids.eori_country",
        C12,
        E,
        "An EORI starts with a valid country code; GB and XI EORIs have 12 or 15 digits.",
    ),
    rule(
        "ids.related_mrn",
        C12,
        E,
        "A referenced MRN has a valid check character.",
    ),
    rule(
        "ids.hs_chapter",
        C12,
        E,
        "An HS code's chapter exists (01-97, not 77).",
    ),
    rule(
        "presence.filer",
        C13,
        E,
        "The declarant (filer) is identified by a well-formed EORI.",
    ),
    rule(
        "presence.filing_type_mode",
        C14,
        E,
        "The filing type belongs to the filing's transport mode.",
    ),
    rule(
        "presence.conveyance",
        C13,
        E,
        "The conveyance is identified as the mode needs: IMO number (sea, inland waterway), flight number (air, express), vehicle registration (road), train number (rail).",
    ),
    rule(
        "presence.placi",
        C13,
        E,
        "Air pre-loading filings carry the PLACI 7+1 data: house and master waybill, packages, gross mass, description or HS6, consignor and consignee name and address.",
    ),
    rule(
        "presence.next_filing_party",
        C13,
        E,
        "A partial filing (F12, F13) names the next filing party.",
    ),
    rule(
        "presence.postcode_or_po_box",
        C13,
        W,
        "An address with a street has a postcode or a P.O. box.",
    ),
    rule(
        "presence.phone_e123",
        C12,
        E,
        "Phone numbers are in E.123 international form (+, country code, digits and spaces).",
    ),
    rule(
        "presence.package_count",
        C13,
        E,
        "A goods item in packages gives their number.",
    ),
    rule(
        "presence.bulk_package_count",
        C15,
        E,
        "A goods item in bulk or unpacked (VG VL VO VQ VR VS VY NE NF NG) gives no number of packages.",
    ),
    rule(
        "cross.total_packages",
        C14,
        E,
        "The total number of packages equals the sum over goods items.",
    ),
    rule(
        "cross.total_gross_mass",
        C14,
        E,
        "The total gross mass equals the sum over goods items, within the configured tolerance.",
    ),
    rule(
        "cross.total_consignments",
        C14,
        E,
        "The number of consignments in the totals equals the consignments filed.",
    ),
    rule(
        "cross.equipment_goods_item",
        C14,
        E,
        "Every goods item assigned to equipment exists in the filing.",
    ),
    rule(
        "cross.duplicate_document",
        C81,
        E,
        "Transport document references are unique within the filing.",
    ),
    rule(
        "cross.departure_before_arrival",
        C14,
        E,
        "Estimated departure is before estimated arrival.",
    ),
    rule(
        "cross.routing_includes_loading",
        C14,
        E,
        "The countries of routing include the country of loading.",
    ),
    rule(
        "cross.routing_includes_acceptance",
        C14,
        E,
        "A consignment's countries of routing include its country of acceptance.",
    ),
    rule(
        "cross.routing_includes_delivery",
        C14,
        E,
        "A consignment's countries of routing include its country of delivery (version 1 filings, without a consignment routing: the means of transport's routing does).",
    ),
    rule(
        "cross.container_indicator",
        C14,
        E,
        "A consignment declared in containers (container indicator 1) has transport equipment; one declared not in containers (0) has none.",
    ),
    rule(
        "presence.passive_means_mode",
        C15,
        E,
        "Passive means of transport (trailer, wagon, barge) only for modes that carry them: sea, inland waterway, road, rail, postal.",
    ),
    rule(
        "ids.receptacle_offices",
        C12,
        E,
        "A postal receptacle id (UPU S9) names origin and destination offices of exchange in valid countries.",
    ),
    rule(
        "quality.generic_description",
        C14,
        E,
        "Goods descriptions are not generic (configurable deny-list, e.g. FAK, general cargo, said to contain).",
    ),
    rule(
        "quality.to_order_notify",
        C13,
        E,
        "A consignee \"To Order\" comes with a notify party.",
    ),
    rule(
        "deadline.late_filing",
        C14,
        W,
        "The filing arrives before the deadline for its transport mode (configurable; a warning by default).",
    ),
    rule(
        "store.duplicate_master_document",
        C81,
        E,
        "A master transport document is filed once per filer within the configured window (amendments excepted).",
    ),
];

/// The registry entry of a rule id.
pub fn rule_info(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// The registry as a Markdown table.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Validation rules\n\nGenerated by `aci-gateway rules` from `src/validate/rules/mod.rs`; do not edit.\n\
         Codes follow the EU customs convention: 12 incorrect value, 13 missing, 14 rule broken,\n\
         15 not allowed, 81 duplicate transport document.\n\n\
         | rule | code | default severity | checks |\n|---|---|---|---|\n",
    );
    for rule in RULES {
        let severity = match rule.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "| `{}` | {} | {severity} | {} |\n",
            rule.id,
            rule.code.as_str(),
            rule.checks
        ));
    }
    let ids = super::constraints::wco_ids();
    if let Ok(data_sets) = super::datasets::DataSets::parse(super::datasets::BUILTIN) {
        out.push_str(
            "\n## Data sets per filing type\n\nFrom `schemas/datasets.tsv` (R required, O optional, \
             N not allowed); elements not listed are checked alike for every type.\n\n",
        );
        out.push_str(&data_sets.markdown(&ids));
    }
    out.push_str(&fields_markdown(&ids));
    out
}

/// Every leaf field with its WCO Data Model id and what the `field.*` rules check of it.
fn fields_markdown(ids: &[(String, String)]) -> String {
    let declared: std::collections::HashMap<String, crate::pb::FieldConstraints> =
        super::Validator::standard()
            .constraints()
            .declared()
            .into_iter()
            .collect();
    let mut out = String::from(
        "\n## Fields\n\nEvery leaf of the manifest with its WCO Data Model data element id (or \
         its ICS2 element path where the WCO model has none; `gateway` for the gateway's own), \
         from the `wco` options in `proto/aci/v1/manifest.proto`, and what the `field.*` rules \
         check of it. The XML schema carries the same ids as `xs:appinfo`.\n\n\
         | field | WCO DM id | checks |\n|---|---|---|\n",
    );
    for (path, id) in ids {
        let c = declared.get(path).cloned().unwrap_or_default();
        let mut checks = Vec::new();
        if c.required {
            checks.push("required".to_owned());
        }
        if c.max_len > 0 {
            checks.push(format!("≤ {} characters", c.max_len));
        }
        if !c.pattern.is_empty() {
            checks.push(format!("pattern `{}`", c.pattern.replace('|', "\\|")));
        }
        if !c.code_list.is_empty() {
            checks.push(format!("code list `{}`", c.code_list));
        }
        if let (Some(min), Some(max)) = (c.min, c.max) {
            checks.push(format!("{min} to {max}"));
        }
        if let Some(digits) = c.fraction_digits {
            checks.push(format!("≤ {digits} decimals"));
        }
        if c.max_items > 0 {
            checks.push(format!("{} to {} items", c.min_items, c.max_items));
        }
        out.push_str(&format!("| `{path}` | {id} | {} |\n", checks.join("; ")));
    }
    out
}

/// Settings of the rules that configuration may change.
#[derive(Clone, Debug)]
pub struct RuleSettings {
    pub imo_severity: Severity,
    pub late_filing_severity: Severity,
    /// Relative tolerance between the total gross mass and the sum over goods items.
    pub mass_tolerance: f64,
    /// Generic descriptions refused (compared case-insensitively, whole or as a prefix).
    pub generic_descriptions: Vec<String>,
    pub generic_description_severity: Severity,
    pub deadlines: Deadlines,
}

impl Default for RuleSettings {
    fn default() -> Self {
        RuleSettings {
            imo_severity: Severity::Error,
            late_filing_severity: Severity::Warning,
            mass_tolerance: 0.01,
            generic_descriptions: [
                "fak",
                "freight of all kinds",
                "general cargo",
                "said to contain",
                "stc",
                "gift",
                "gifts",
                "parts",
                "consolidated",
                "various",
                "samples",
            ]
            .map(str::to_owned)
            .to_vec(),
            generic_description_severity: Severity::Error,
            deadlines: Deadlines::default(),
        }
    }
}

/// What a rule sees, and where it reports.
pub(super) struct Context<'a> {
    pub manifest: &'a Manifest,
    pub codes: &'static CodeLists,
    pub settings: &'a RuleSettings,
    pub now: SystemTime,
    report: &'a mut Report,
}

impl Context<'_> {
    /// Reports a finding of `rule` (as registered) at `path`.
    fn report(&mut self, rule: &'static str, path: &str, value: &str, message: &str) {
        let severity = rule_info(rule).map_or(Severity::Error, |r| r.severity);
        self.report_as(rule, severity, path, value, message);
    }

    fn report_as(
        &mut self,
        rule: &'static str,
        severity: Severity,
        path: &str,
        value: &str,
        message: &str,
    ) {
        let code = rule_info(rule).map_or(Code::RuleBroken, |r| r.code);
        self.report.push(Finding {
            code,
            rule,
            path: path.to_owned(),
            message: message.to_owned(),
            severity,
            value: quote(value),
        });
    }
}

/// Runs every rule over a manifest.
pub(super) fn check(
    manifest: &Manifest,
    codes: &'static CodeLists,
    settings: &RuleSettings,
    now: SystemTime,
    report: &mut Report,
) {
    let mut cx = Context {
        manifest,
        codes,
        settings,
        now,
        report,
    };
    ids::check(&mut cx);
    presence::check(&mut cx);
    cross::check(&mut cx);
    quality::check(&mut cx);
    deadline::check(&mut cx);
}

/// When a filing is due: its mode's filing deadline, if the manifest gives the times to reckon
/// it from.
pub(super) fn due(
    manifest: &Manifest,
    codes: &'static CodeLists,
    settings: &RuleSettings,
) -> Option<SystemTime> {
    let mut report = Report::default();
    let cx = Context {
        manifest,
        codes,
        settings,
        now: SystemTime::UNIX_EPOCH,
        report: &mut report,
    };
    deadline::due(&cx).map(|(at, _, _)| at)
}

/// Where a party stands in a manifest; written out (`consignments[2].consignee`) only for a
/// finding, so that walking every party of a filing allocates nothing.
#[derive(Debug, Clone, Copy)]
struct PartyPath {
    consignment: Option<usize>,
    name: &'static str,
}

impl std::fmt::Display for PartyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.consignment {
            Some(i) => write!(f, "consignments[{i}].{}", self.name),
            None => f.write_str(self.name),
        }
    }
}

/// Every party of a filing with its path.
fn parties(manifest: &Manifest) -> impl Iterator<Item = (PartyPath, &crate::pb::Party)> {
    let top = [
        ("declarant", &manifest.declarant),
        ("representative", &manifest.representative),
        ("carrier", &manifest.carrier),
        ("next_filing_party", &manifest.next_filing_party),
    ]
    .into_iter()
    .map(|(name, party)| {
        let path = PartyPath {
            consignment: None,
            name,
        };
        (path, party)
    });
    let in_consignments = manifest.consignments.iter().enumerate().flat_map(|(i, c)| {
        [
            ("consignor", &c.consignor),
            ("consignee", &c.consignee),
            ("notify_party", &c.notify_party),
            ("buyer", &c.buyer),
            ("seller", &c.seller),
        ]
        .map(|(name, party)| {
            let path = PartyPath {
                consignment: Some(i),
                name,
            };
            (path, party)
        })
    });
    top.chain(in_consignments)
        .filter_map(|(path, party)| party.as_ref().map(|party| (path, party)))
}

/// Every party of a manifest, without their paths.
pub(crate) fn each_party(manifest: &Manifest) -> impl Iterator<Item = &crate::pb::Party> {
    parties(manifest).map(|(_, party)| party)
}

/// Every party of a manifest, to change (the same parties as [`parties`]).
pub(crate) fn parties_mut(manifest: &mut Manifest) -> impl Iterator<Item = &mut crate::pb::Party> {
    [
        &mut manifest.declarant,
        &mut manifest.representative,
        &mut manifest.carrier,
        &mut manifest.next_filing_party,
    ]
    .into_iter()
    .chain(manifest.consignments.iter_mut().flat_map(|c| {
        [
            &mut c.consignor,
            &mut c.consignee,
            &mut c.notify_party,
            &mut c.buyer,
            &mut c.seller,
        ]
    }))
    .filter_map(Option::as_mut)
}

#[cfg(test)]
mod party_tests {
    use super::*;
    use crate::pb::{Consignment, Party};

    fn party(name: &str) -> Option<Party> {
        Some(Party {
            name: name.into(),
            ..Party::default()
        })
    }

    /// The paths findings name: a top-level party by its field, one of a consignment's under it.
    #[test]
    fn parties_come_with_the_paths_findings_name() {
        let mut manifest = Manifest {
            declarant: party("declarant"),
            carrier: party("carrier"),
            consignments: vec![
                Consignment {
                    consignee: party("first consignee"),
                    ..Consignment::default()
                },
                Consignment {
                    consignor: party("second consignor"),
                    seller: party("second seller"),
                    ..Consignment::default()
                },
            ],
            ..Manifest::default()
        };
        let found: Vec<(String, String)> = parties(&manifest)
            .map(|(path, party)| (path.to_string(), party.name.clone()))
            .collect();
        assert_eq!(
            found,
            [
                ("declarant", "declarant"),
                ("carrier", "carrier"),
                ("consignments[0].consignee", "first consignee"),
                ("consignments[1].consignor", "second consignor"),
                ("consignments[1].seller", "second seller"),
            ]
            .map(|(path, name)| (path.to_owned(), name.to_owned()))
        );
        let names: Vec<String> = parties_mut(&mut manifest).map(|p| p.name.clone()).collect();
        assert_eq!(
            names,
            found.into_iter().map(|(_, name)| name).collect::<Vec<_>>(),
            "parties_mut walks the same parties in the same order"
        );
    }
}
