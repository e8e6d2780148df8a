//! Conditional presence: what a filing must (or must not) carry given its mode, type and goods.

use super::Context;
use crate::pb::{Conveyance, TransportMode};
use crate::validate::codes::FILING_TYPES;

/// Package types for goods in bulk or unpacked: no number of packages is given.
pub const BULK_PACKAGE_TYPES: [&str; 10] =
    ["VG", "VL", "VO", "VQ", "VR", "VS", "VY", "NE", "NF", "NG"];

pub(super) fn check(cx: &mut Context<'_>) {
    filer(cx);
    filing_type_mode(cx);
    conveyance(cx);
    placi(cx);
    next_filing_party(cx);
    postcode_or_po_box(cx);
    phones(cx);
    package_counts(cx);
    passive_means_mode(cx);
}

/// Trailers, wagons and barges ride on ships, trucks and trains (and postal transport by them),
/// not on aircraft.
fn passive_means_mode(cx: &mut Context<'_>) {
    let Some(mode) = mode(cx).filter(|m| matches!(m, TransportMode::Air | TransportMode::Express))
    else {
        return;
    };
    let paths: Vec<String> = cx
        .manifest
        .consignments
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.passive_means.is_empty())
        .map(|(i, _)| format!("consignments[{i}].passive_means"))
        .collect();
    for path in paths {
        cx.report(
            "presence.passive_means_mode",
            &path,
            "",
            &format!(
                "{} transport carries no passive means of transport",
                mode_name(mode)
            ),
        );
    }
}

fn mode(cx: &Context<'_>) -> Option<TransportMode> {
    TransportMode::try_from(cx.manifest.transport_mode)
        .ok()
        .filter(|m| *m != TransportMode::Unspecified)
}

/// The code-list name of a transport mode.
pub(super) fn mode_name(mode: TransportMode) -> &'static str {
    match mode {
        TransportMode::Unspecified => "unspecified",
        TransportMode::Sea => "sea",
        TransportMode::Air => "air",
        TransportMode::Road => "road",
        TransportMode::Rail => "rail",
        TransportMode::Postal => "postal",
        TransportMode::Express => "express",
        TransportMode::InlandWaterway => "inland_waterway",
    }
}

fn filing_type_mode(cx: &mut Context<'_>) {
    let Some(mode) = mode(cx) else { return };
    let filing_type = &cx.manifest.filing_type;
    let Some(type_modes) = cx.codes.list(FILING_TYPES).column(filing_type, 1) else {
        return;
    };
    if !type_modes.split(',').any(|m| m == mode_name(mode)) {
        cx.report(
            "presence.filing_type_mode",
            "filing_type",
            filing_type,
            &format!(
                "{filing_type} is a filing type for {}, but the transport mode is {}",
                type_modes.replace(',', " or "),
                mode_name(mode)
            ),
        );
    }
}

fn conveyance(cx: &mut Context<'_>) {
    let Some(mode) = mode(cx) else { return };
    let none = Conveyance::default();
    let conveyance = cx.manifest.conveyance.as_ref().unwrap_or(&none);
    let (field, value, what) = match mode {
        TransportMode::Sea | TransportMode::InlandWaterway => (
            "imo_number",
            &conveyance.imo_number,
            "the vessel's IMO number",
        ),
        TransportMode::Air | TransportMode::Express => (
            "flight_number",
            &conveyance.flight_number,
            "the flight number",
        ),
        TransportMode::Road => (
            "vehicle_registration",
            &conveyance.vehicle_registration,
            "the vehicle registration",
        ),
        TransportMode::Rail => ("train_number", &conveyance.train_number, "the train number"),
        // Postal items travel on any conveyance; the postal operator files without one.
        TransportMode::Postal | TransportMode::Unspecified => return,
    };
    if value.is_empty() {
        cx.report(
            "presence.conveyance",
            &format!("conveyance.{field}"),
            "",
            &format!("{} filings give {what}", mode_name(mode)),
        );
    }
}

fn is_pre_loading(cx: &Context<'_>) -> bool {
    cx.codes
        .list(FILING_TYPES)
        .column(&cx.manifest.filing_type, 2)
        == Some("pre-loading")
}

/// PLACI "7+1": house waybill, packages, gross mass, description or HS6, consignor and consignee
/// name and address, and the master air waybill.
fn placi(cx: &mut Context<'_>) {
    if !is_pre_loading(cx) {
        return;
    }
    let mut missing: Vec<(String, &'static str)> = Vec::new();
    for (i, c) in cx.manifest.consignments.iter().enumerate() {
        let at = |field: &str| format!("consignments[{i}].{field}");
        if c.transport_document
            .as_ref()
            .is_none_or(|d| d.number.is_empty())
        {
            missing.push((at("transport_document.number"), "the house waybill number"));
        }
        if c.master_document
            .as_ref()
            .is_none_or(|d| d.number.is_empty())
        {
            missing.push((
                at("master_document.number"),
                "the master air waybill number",
            ));
        }
        for (name, party) in [("consignor", &c.consignor), ("consignee", &c.consignee)] {
            let party = party.as_ref();
            if party.is_none_or(|p| p.name.is_empty()) {
                missing.push((at(&format!("{name}.name")), "the name"));
            }
            let address = party.and_then(|p| p.address.as_ref());
            if address.is_none_or(|a| a.city.is_empty() || a.country.is_empty()) {
                missing.push((
                    at(&format!("{name}.address")),
                    "the address (city and country)",
                ));
            }
        }
        for (j, item) in c.goods_items.iter().enumerate() {
            let at = |field: &str| format!("consignments[{i}].goods_items[{j}].{field}");
            if item.description.trim().is_empty() && item.hs_code.len() < 6 {
                missing.push((at("description"), "a description or a 6-digit HS code"));
            }
            if item.gross_mass_kg <= 0.0 {
                missing.push((at("gross_mass_kg"), "the gross mass"));
            }
            let counted = item.packagings.iter().any(|p| {
                p.number_of_packages > 0 || BULK_PACKAGE_TYPES.contains(&p.package_type.as_str())
            });
            if !counted {
                missing.push((at("packagings"), "the number of packages"));
            }
        }
    }
    for (path, what) in missing {
        cx.report(
            "presence.placi",
            &path,
            "",
            &format!("air pre-loading (PLACI 7+1) filings give {what}"),
        );
    }
}

/// The declarant owns the LRN: it is identified by EORI (the constraints check its format).
fn filer(cx: &mut Context<'_>) {
    if cx
        .manifest
        .declarant
        .as_ref()
        .is_some_and(|d| d.eori.is_empty())
    {
        cx.report(
            "presence.filer",
            "declarant.eori",
            "",
            "the declarant (filer) is identified by EORI",
        );
    }
}

fn next_filing_party(cx: &mut Context<'_>) {
    let partial = crate::validate::is_partial(&cx.manifest.filing_type);
    let named = cx
        .manifest
        .next_filing_party
        .as_ref()
        .is_some_and(|p| !p.eori.is_empty());
    if partial && !named {
        cx.report(
            "presence.next_filing_party",
            "next_filing_party.eori",
            "",
            "a partial filing names the next filing party by EORI",
        );
    }
}

/// Countries whose addresses have no postal codes (after the Universal Postal Union's addressing
/// guides; approximate): their addresses need neither postcode nor P.O. box. Sorted: it is
/// binary-searched.
const NO_POSTCODES: [&str; 40] = [
    "AE", "AG", "AO", "BF", "BI", "BJ", "BO", "BS", "BW", "BZ", "CD", "CF", "CG", "CI", "CM", "DJ",
    "DM", "ER", "FJ", "GA", "GD", "GH", "GM", "GQ", "GY", "HK", "KI", "KM", "KP", "ML", "MO", "MR",
    "QA", "RW", "SB", "SC", "SR", "TG", "UG", "ZW",
];

fn postcode_or_po_box(cx: &mut Context<'_>) {
    let mut gaps = Vec::new();
    for (path, party) in super::parties(cx.manifest) {
        // The list last: most addresses give a postcode.
        if let Some(address) = &party.address
            && address.postcode.is_empty()
            && address.po_box.is_empty()
            && !address.street_and_number.is_empty()
            && NO_POSTCODES
                .binary_search(&address.country.as_str())
                .is_err()
        {
            gaps.push(format!("{path}.address.postcode"));
        }
    }
    for path in gaps {
        cx.report(
            "presence.postcode_or_po_box",
            &path,
            "",
            "an address with a street gives a postcode or a P.O. box",
        );
    }
}

/// E.123 international form: '+', a country code, then digits in groups separated by single
/// spaces; 8 to 15 digits in all.
pub fn is_e123(phone: &str) -> bool {
    let Some(rest) = phone.strip_prefix('+') else {
        return false;
    };
    let digits = rest.bytes().filter(u8::is_ascii_digit).count();
    rest.starts_with(|c: char| c.is_ascii_digit() && c != '0')
        && (8..=15).contains(&digits)
        && rest.bytes().all(|b| b.is_ascii_digit() || b == b' ')
        && !rest.contains("  ")
        && !rest.ends_with(' ')
}

fn phones(cx: &mut Context<'_>) {
    let mut bad = Vec::new();
    for (path, party) in super::parties(cx.manifest) {
        for (k, communication) in party.communications.iter().enumerate() {
            if communication.r#type == "TE" && !is_e123(&communication.identifier) {
                bad.push((
                    format!("{path}.communications[{k}].identifier"),
                    communication.identifier.clone(),
                ));
            }
        }
    }
    for (path, phone) in bad {
        cx.report(
            "presence.phone_e123",
            &path,
            &phone,
            "write phone numbers in E.123 international form, e.g. +44 20 7946 0958",
        );
    }
}

fn package_counts(cx: &mut Context<'_>) {
    let mut findings = Vec::new();
    for (i, c) in cx.manifest.consignments.iter().enumerate() {
        for (j, item) in c.goods_items.iter().enumerate() {
            for (k, packaging) in item.packagings.iter().enumerate() {
                let path = || {
                    format!("consignments[{i}].goods_items[{j}].packagings[{k}].number_of_packages")
                };
                let kind = packaging.package_type.as_str();
                let bulk = BULK_PACKAGE_TYPES.contains(&kind);
                if bulk && packaging.number_of_packages > 0 {
                    findings.push((
                        "presence.bulk_package_count",
                        path(),
                        packaging.number_of_packages.to_string(),
                        format!("goods in bulk or unpacked ({kind}) give no number of packages"),
                    ));
                } else if !bulk && !kind.is_empty() && packaging.number_of_packages == 0 {
                    findings.push((
                        "presence.package_count",
                        path(),
                        String::new(),
                        format!("goods in packages ({kind}) give the number of packages"),
                    ));
                }
            }
        }
    }
    for (rule, path, value, message) in findings {
        cx.report(rule, &path, &value, &message);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_countries_without_postcodes_are_sorted_for_the_search() {
        assert!(super::NO_POSTCODES.is_sorted());
    }
}
