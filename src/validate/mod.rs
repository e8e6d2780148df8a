//! Validation: a decoded `Manifest` in, either an [`Accepted`] filing or a [`Report`] of every
//! finding out. A refusal is a value here, never an error; this module knows nothing of gRPC or
//! storage.
//!
//! Findings carry a code in the EU customs convention ([`Code`]), a stable rule id, the path of
//! the field (`consignments[0].goods_items[2].hs_code`), the offending value and a message.
//!
//! Two stages, one report: the constraints declared in `proto/` ([`constraints`]), then the
//! business rules ([`rules`]), all findings at once.

pub mod codes;
pub mod constraints;
pub mod datasets;
pub mod pattern;
pub mod rules;
pub mod xml;
pub mod xml_schema;
pub mod xsd;

use std::sync::LazyLock;
use std::time::SystemTime;

use prost::Message;
use sha2::{Digest, Sha256};

use self::codes::CodeLists;
use self::constraints::{ConstraintError, Constraints, Form};
use self::rules::RuleSettings;

use crate::ids::{Eori, Lrn};
use crate::pb::{self, Manifest};

/// Most findings reported for one filing; the report says when there were more.
pub const MAX_FINDINGS: usize = 200;
/// Longest offending value quoted in a finding.
const MAX_VALUE_CHARS: usize = 64;

/// Error codes in the EU customs convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// 12: incorrect value, or not in its code list.
    IncorrectValue,
    /// 13: missing where required.
    Missing,
    /// 14: a rule is broken.
    RuleBroken,
    /// 15: present where not allowed.
    NotAllowed,
    /// 26: duplicate message.
    DuplicateMessage,
    /// 81: duplicate transport document reference.
    DuplicateDocument,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::IncorrectValue => "12",
            Code::Missing => "13",
            Code::RuleBroken => "14",
            Code::NotAllowed => "15",
            Code::DuplicateMessage => "26",
            Code::DuplicateDocument => "81",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Refuses the filing.
    Error,
    /// Reported in the receipt; the filing is accepted.
    Warning,
}

/// One thing found wrong with a filing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub code: Code,
    pub rule: &'static str,
    pub path: String,
    pub message: String,
    pub severity: Severity,
    pub value: String,
}

impl Finding {
    pub fn to_proto(&self) -> pb::Violation {
        pb::Violation {
            code: self.code.as_str().to_owned(),
            rule: self.rule.to_owned(),
            path: self.path.clone(),
            message: self.message.clone(),
            severity: match self.severity {
                Severity::Error => pb::Severity::Error,
                Severity::Warning => pb::Severity::Warning,
            } as i32,
            value: self.value.clone(),
        }
    }
}

/// Every finding about one filing, in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    findings: Vec<Finding>,
    /// More findings existed than `MAX_FINDINGS`.
    truncated: bool,
}

impl Report {
    pub fn push(&mut self, finding: Finding) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(finding);
        } else {
            self.truncated = true;
        }
    }

    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    pub fn to_proto(&self) -> pb::ValidationReport {
        pb::ValidationReport {
            violations: self.findings.iter().map(Finding::to_proto).collect(),
            truncated: self.truncated,
            omitted: 0,
        }
    }
}

/// Whether a manifest's schema was checked before it reached the rules.
#[derive(Clone, Copy)]
enum SchemaChecked {
    /// No: walk the protobuf schema's constraints first.
    No,
    /// Read from an XML document the XML schema accepted.
    AsXml,
    /// Read from a version 1 document: its schema is not the proto's, so the constraints are
    /// walked too, and the data sets ask only for what version 1 can express.
    AsXmlVersion1,
}

/// A filing that passed validation: holding one proves the checks ran.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub filer: Eori,
    pub lrn: Lrn,
    pub manifest: Box<Manifest>,
    /// The manifest's canonical protobuf encoding (what the constraints walked), which the
    /// log stores as it is.
    pub encoded: bytes::Bytes,
    /// SHA-256 of `encoded`: equal content, equal digest, whatever the input format.
    pub digest: [u8; 32],
    /// For a filing in version 1's form: the digest of that form (what gateways before version
    /// 2 registered it under), so that a retry across the upgrade is still the same filing.
    pub version_1_digest: Option<[u8; 32]>,
    pub warnings: Vec<Finding>,
    /// The filing's own master-level transport documents (unique per filer over a window).
    pub master_documents: Vec<String>,
    /// The master documents this (house-level) filing refers to.
    pub house_references: Vec<String>,
    /// For a partial filing: the EORI of the next filing party.
    pub next_filing_party: Option<String>,
    /// When the filing is due (its mode's filing deadline), if the manifest says.
    pub due: Option<SystemTime>,
}

/// Refuses free text (a notice's text, a referral's answer, a reason) that holds a control
/// character, saying which and where. Line breaks and tabs are text; ESC, NUL and their kind
/// are not: they would reach another party's terminal or log as they are.
pub fn check_free_text(what: &str, text: &str) -> Result<(), String> {
    match text
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Some((at, c)) => Err(format!(
            "{what} holds the control character U+{:04X} at character {at}; only line breaks \
             and tabs may stand in it",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

/// Filing types that are partial: completed by house-level filings of a next filing party.
pub fn is_partial(filing_type: &str) -> bool {
    matches!(filing_type, "F12" | "F13")
}

/// The XML schema of the cargo report, compiled into the binary (written from the proto by
/// [`xml_schema`]).
pub const XML_SCHEMA: &str = include_str!("../../schemas/aci-manifest-2.xsd");
/// The first version's XML schema, still accepted during the transition.
pub const XML_SCHEMA_V1: &str = include_str!("../../schemas/aci-manifest-1.xsd");

/// One version of the XML form: its compiled schema and how its elements map to fields.
#[derive(Debug)]
struct XmlForm {
    schema: xsd::Schema,
    mapping: xml::Mapping,
}

impl XmlForm {
    fn compile(text: &str) -> Result<XmlForm, ValidatorError> {
        let schema = xsd::Schema::compile(text)?;
        Ok(XmlForm {
            mapping: xml::Mapping::new(&schema)?,
            schema,
        })
    }
}

/// Validates filings: the compiled constraints, the XML schemas, the code lists and the rule
/// settings.
#[derive(Debug)]
pub struct Validator {
    constraints: Constraints,
    xml: XmlForm,
    xml_v1: XmlForm,
    codes: &'static CodeLists,
    settings: RuleSettings,
}

/// Why a validator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    #[error(transparent)]
    Constraints(#[from] ConstraintError),
    #[error("XML schema: {0}")]
    Schema(#[from] xsd::SchemaError),
    #[error(transparent)]
    Mapping(#[from] xml::MappingError),
    #[error(transparent)]
    DataSets(#[from] datasets::DataSetError),
}

static STANDARD: LazyLock<Validator> = LazyLock::new(|| {
    Validator::new(RuleSettings::default()).expect("the built-in constraints compile")
});

impl Validator {
    pub fn new(settings: RuleSettings) -> Result<Validator, ValidatorError> {
        let codes = CodeLists::builtin();
        let data_sets = datasets::DataSets::parse(datasets::BUILTIN)?;
        let xml_v1 = XmlForm::compile(XML_SCHEMA_V1)?;
        let in_version_1 = element_paths(&xml_v1.schema);
        Ok(Validator {
            constraints: Constraints::compile(pb::descriptor_pool(), codes, &data_sets)?
                .with_version_1(&data_sets, |path| in_version_1.contains(path))?,
            xml: XmlForm::compile(XML_SCHEMA)?,
            xml_v1,
            codes,
            settings,
        })
    }

    /// The current XML schema.
    pub fn schema(&self) -> &xsd::Schema {
        &self.xml.schema
    }

    /// The XML form a document is in: version 1 when its document element is in version 1's
    /// namespace, the current one otherwise (whose schema then reports what is wrong).
    fn form_of(&self, xml: &[u8]) -> (&XmlForm, SchemaChecked) {
        if xml::is_version_1(xml) {
            (&self.xml_v1, SchemaChecked::AsXmlVersion1)
        } else {
            (&self.xml, SchemaChecked::AsXml)
        }
    }

    /// Checks an XML document against its schema only: its findings, with `line:column` paths.
    pub fn check_xml_schema(&self, xml: &[u8], limits: &xsd::Limits) -> Report {
        schema_report(&self.form_of(xml).0.schema.validate(xml, limits))
    }

    /// Checks an XML filing: the XML schema, then (read into a manifest in the same pass) the
    /// business rules. Schema findings refuse it before the rules run.
    ///
    /// The protobuf schema's constraints are not walked again for a current document: the two
    /// schemas state the same constraints field by field (`tests/schema_parity.rs`), so a
    /// manifest read from a schema-valid document meets them (the `xml_mapping` fuzz target
    /// asserts it). A version 1 document is walked, as its schema is not the proto's.
    pub fn validate_xml(
        &self,
        xml: &[u8],
        limits: &xsd::Limits,
        now: SystemTime,
    ) -> Result<Accepted, Report> {
        let schema_span =
            tracing::info_span!("filing.schema", bytes = crate::telemetry::number(xml.len()))
                .entered();
        let (form, checked) = self.form_of(xml);
        let manifest = Box::new(read_form(form, xml, limits)?);
        drop(schema_span);
        self.accept(manifest, now, checked)
    }

    /// Reads an XML filing (either version) into a manifest, checking it against its schema in
    /// the same pass.
    pub fn read_xml(&self, xml: &[u8], limits: &xsd::Limits) -> Result<Manifest, Report> {
        let mut manifest = read_form(self.form_of(xml).0, xml, limits)?;
        upgrade(&mut manifest);
        Ok(manifest)
    }

    /// A validator with the default settings.
    pub fn standard() -> &'static Validator {
        &STANDARD
    }

    pub fn constraints(&self) -> &Constraints {
        &self.constraints
    }

    /// Every finding about a manifest, filed at `now` (read into the current version first).
    pub fn check(&self, manifest: &Manifest, now: SystemTime) -> Report {
        let current = if in_version_1_form(manifest) {
            let mut current = manifest.clone();
            upgrade(&mut current);
            std::borrow::Cow::Owned(current)
        } else {
            std::borrow::Cow::Borrowed(manifest)
        };
        self.findings(&current, &current.encode_to_vec(), SchemaChecked::No, now)
    }

    /// The protobuf schema's constraints (unless the XML schema was checked), then the rules.
    fn findings(
        &self,
        manifest: &Manifest,
        encoded: &[u8],
        schema: SchemaChecked,
        now: SystemTime,
    ) -> Report {
        let mut report = Report::default();
        match schema {
            SchemaChecked::No => {
                self.constraints
                    .check(encoded, &manifest.filing_type, Form::Current, &mut report)
            }
            SchemaChecked::AsXmlVersion1 => {
                self.constraints
                    .check(encoded, &manifest.filing_type, Form::Version1, &mut report)
            }
            SchemaChecked::AsXml => {
                self.constraints
                    .check_data_set(encoded, &manifest.filing_type, &mut report)
            }
        }
        rules::check(manifest, self.codes, &self.settings, now, &mut report);
        report
    }

    /// Checks a manifest filed at `now`: accepted (with any warnings) or refused with every finding.
    /// (A boxed manifest stays in its box: the filing path moves the pointer only.)
    pub fn validate(
        &self,
        manifest: impl Into<Box<Manifest>>,
        now: SystemTime,
    ) -> Result<Accepted, Report> {
        self.accept(manifest.into(), now, SchemaChecked::No)
    }

    fn accept(
        &self,
        mut manifest: Box<Manifest>,
        now: SystemTime,
        schema: SchemaChecked,
    ) -> Result<Accepted, Report> {
        let _span = tracing::info_span!("filing.rules").entered();
        let version_1_digest =
            in_version_1_form(&manifest).then(|| Sha256::digest(manifest.encode_to_vec()).into());
        upgrade(&mut manifest);
        let encoded = manifest.encode_to_vec();
        let mut report = self.findings(&manifest, &encoded, schema, now);
        if report.has_errors() {
            return Err(report);
        }
        let declarant = manifest.declarant.as_ref().map(|d| d.eori.as_str());
        // The constraints guarantee both parse; refuse rather than panic if they ever do not.
        let (Some(filer), Some(lrn)) = (declarant.and_then(Eori::parse), Lrn::parse(&manifest.lrn))
        else {
            report.push(Finding {
                code: Code::IncorrectValue,
                rule: "presence.filer",
                path: "declarant.eori".into(),
                message: "the filer's EORI and the LRN must be well-formed".into(),
                severity: Severity::Error,
                value: String::new(),
            });
            return Err(report);
        };
        let master_documents = master_documents(&manifest, self.codes);
        let mut house_references: Vec<String> = manifest
            .consignments
            .iter()
            .filter_map(|c| c.master_document.as_ref())
            .filter(|d| !d.number.is_empty())
            .map(|d| d.number.clone())
            .collect();
        house_references.sort();
        house_references.dedup();
        let next_filing_party = is_partial(&manifest.filing_type)
            .then(|| manifest.next_filing_party.as_ref().map(|p| p.eori.clone()))
            .flatten();
        Ok(Accepted {
            due: rules::due(&manifest, self.codes, &self.settings),
            house_references,
            next_filing_party,
            filer,
            lrn,
            digest: Sha256::digest(&encoded).into(),
            encoded: encoded.into(),
            version_1_digest,
            manifest,
            warnings: report.findings,
            master_documents,
        })
    }
}

/// Whether a filing uses a form of version 1 that [`upgrade`] reads into its successor.
#[allow(deprecated)]
fn in_version_1_form(manifest: &Manifest) -> bool {
    let mut items = manifest.consignments.iter().flat_map(|c| &c.goods_items);
    rules::each_party(manifest).any(|party| {
        party
            .contact
            .as_ref()
            .is_some_and(|c| !c.phone.is_empty() || !c.email.is_empty())
    }) || items.any(|item| {
        !item.package_type.is_empty()
            || item.number_of_packages != 0
            || !item.shipping_marks.is_empty()
            || !item.un_number.is_empty()
    })
}

/// Reads the first version's forms into their successors, so that rules, digests and the log
/// see one shape: a goods item's single packaging (`package_type`, `number_of_packages`,
/// `shipping_marks`) becomes its first packaging, its single `un_number` its first UN number.
/// A party's contact phone and e-mail become its first communications (TE, EM).
/// A filing in the current form is left as it is.
#[allow(deprecated)] // reading the deprecated fields is the point
pub fn upgrade(manifest: &mut Manifest) {
    for party in rules::parties_mut(manifest) {
        let Some(contact) = party.contact.as_mut() else {
            continue;
        };
        let mut legacy = Vec::new();
        for (kind, value) in [("TE", &mut contact.phone), ("EM", &mut contact.email)] {
            if !value.is_empty() {
                legacy.push(pb::Communication {
                    r#type: kind.to_owned(),
                    identifier: std::mem::take(value),
                });
            }
        }
        if contact.name.is_empty() {
            party.contact = None;
        }
        party.communications.splice(0..0, legacy);
    }
    for item in manifest
        .consignments
        .iter_mut()
        .flat_map(|c| c.goods_items.iter_mut())
    {
        if !item.package_type.is_empty()
            || item.number_of_packages != 0
            || !item.shipping_marks.is_empty()
        {
            item.packagings.insert(
                0,
                pb::Packaging {
                    package_type: std::mem::take(&mut item.package_type),
                    number_of_packages: std::mem::take(&mut item.number_of_packages),
                    shipping_marks: std::mem::take(&mut item.shipping_marks),
                },
            );
        }
        if !item.un_number.is_empty() {
            item.un_numbers
                .insert(0, std::mem::take(&mut item.un_number));
        }
    }
}

/// The paths of the elements a schema declares under `<Manifest>`, as field paths
/// (`consignments.goods_items`).
fn element_paths(schema: &xsd::Schema) -> std::collections::HashSet<String> {
    fn snake(name: &str) -> String {
        let mut out = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }
    fn walk(
        schema: &xsd::Schema,
        decl: usize,
        prefix: &str,
        out: &mut std::collections::HashSet<String>,
        depth: usize,
    ) {
        for &child in schema.children(decl) {
            let path = format!("{prefix}{}", snake(schema.name(child)));
            if out.insert(path.clone()) && depth < 8 {
                walk(schema, child, &format!("{path}."), out, depth + 1);
            }
        }
    }
    let mut out = std::collections::HashSet::new();
    if let Some(root) = schema.root("Manifest") {
        walk(schema, root, "", &mut out, 0);
    }
    out
}

/// Reads a document of one XML form into a manifest (as the document has it, not upgraded).
fn read_form(form: &XmlForm, xml: &[u8], limits: &xsd::Limits) -> Result<Manifest, Report> {
    form.mapping
        .read(&form.schema, xml, limits)
        .map_err(|e| match e {
            xml::ReadError::Invalid(xml_report) => schema_report(&xml_report),
            xml::ReadError::Mapping(e) => {
                let mut report = Report::default();
                report.push(Finding {
                    code: Code::IncorrectValue,
                    rule: "xsd.mapping",
                    path: "1:1".into(),
                    message: e.to_string(),
                    severity: Severity::Error,
                    value: String::new(),
                });
                report
            }
        })
}

/// A schema check's findings as a validation report, with `line:column` paths.
fn schema_report(xml_report: &xsd::XmlReport) -> Report {
    let mut report = Report::default();
    for finding in &xml_report.findings {
        report.push(Finding {
            code: match finding.code {
                xsd::XmlCode::MissingElement | xsd::XmlCode::MissingAttribute => Code::Missing,
                xsd::XmlCode::UnexpectedElement
                | xsd::XmlCode::UnknownAttribute
                | xsd::XmlCode::TextNotAllowed => Code::NotAllowed,
                _ => Code::IncorrectValue,
            },
            rule: finding.code.as_str(),
            path: format!("{}:{}", finding.line, finding.column),
            message: format!("{}: {}", finding.path, finding.message),
            severity: Severity::Error,
            value: String::new(),
        });
    }
    report.truncated |= xml_report.truncated;
    report
}

/// The numbers of the filing's own transport documents whose type is master level.
fn master_documents(manifest: &Manifest, codes: &CodeLists) -> Vec<String> {
    let types = codes.list(codes::DOCUMENT_TYPES);
    let mut numbers: Vec<String> = manifest
        .consignments
        .iter()
        .filter_map(|c| c.transport_document.as_ref())
        .filter(|d| types.column(&d.r#type, 1) == Some("m"))
        .map(|d| d.number.clone())
        .collect();
    numbers.sort();
    numbers.dedup();
    numbers
}

/// SHA-256 of the manifest's protobuf encoding (prost encodes fields in tag order, so equal
/// messages encode to equal bytes).
pub fn digest(manifest: &Manifest) -> [u8; 32] {
    Sha256::digest(manifest.encode_to_vec()).into()
}

/// A value quoted in a finding, cut to a readable length.
fn quote(value: &str) -> String {
    if value.chars().count() <= MAX_VALUE_CHARS {
        value.to_owned()
    } else {
        let mut cut: String = value.chars().take(MAX_VALUE_CHARS).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2026-11-20: before every sample's deadline.
    fn early() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_132_800)
    }

    #[test]
    fn the_samples_are_valid_without_warnings() {
        // Every JSON sample (the invalid ones live in a subdirectory and are not read).
        for (name, manifest) in pb::sample_manifests() {
            let report = Validator::standard().check(&manifest, early());
            assert!(
                report.findings().is_empty(),
                "{name}: {:#?}",
                report.findings()
            );
        }
    }

    #[test]
    fn an_xml_consignment_without_its_sequence_is_refused_by_the_schema() {
        // proto3 reads an absent sequence as 0, which its range refuses; the XSD must require
        // the element, or an XML filing would pass where the same protobuf filing does not.
        let xml = include_str!("../../schemas/examples/sea-f10.xml").replacen(
            "    <Sequence>1</Sequence>\n",
            "",
            1,
        );
        let report = Validator::standard()
            .validate_xml(xml.as_bytes(), &xsd::Limits::default(), early())
            .expect_err("refused");
        let found: Vec<(&str, &str)> = report
            .findings()
            .iter()
            .map(|f| (f.rule, f.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [(
                "xsd.unexpected_element",
                "/Manifest/Consignments[1]: <Sequence> is missing before <TransportDocument>"
            )]
        );
    }

    #[test]
    fn a_locode_with_a_multibyte_character_is_a_finding_not_a_panic() {
        // Found by the protobuf_constraints fuzz target: five bytes, an 'ó' across the
        // country's end; the rules sliced inside it.
        let json = include_str!("../../schemas/examples/sea-f10.json").replace("CNSHA", "GóHR");
        let manifest: Manifest = pb::from_json(&json).expect("sample");
        let report = Validator::standard().check(&manifest, early());
        let paths: Vec<&str> = report.findings().iter().map(|f| f.path.as_str()).collect();
        assert!(
            paths.iter().any(|p| p.ends_with("place_of_loading.locode")),
            "{paths:?}"
        );
        assert!(report.has_errors());
    }
}
