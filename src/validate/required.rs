//! First-cut structural checks: required data and the formats of identifiers and codes
//! (EORI, LRN, UN/LOCODE, ISO country, HS code, package type, container number shape).
//!
//! These are the checks every filing needs before it can be stored at all; the declarative
//! proto constraints and the business rules (check digits, code lists, totals, deadlines) build
//! on the same [`Report`].

use super::{Code, Finding, Report, Severity, quote};
use crate::ids::{Eori, Lrn};
use crate::pb::{
    Consignment, GoodsItem, Itinerary, Location, Manifest, Party, TransportEquipment, TransportMode,
};

/// Longest free-text description accepted.
const MAX_DESCRIPTION: usize = 512;

pub(super) fn check(manifest: &Manifest, report: &mut Report) {
    let mut c = Checker { report };
    if manifest.lrn.is_empty() {
        c.missing("lrn", "the local reference number (LRN) is required");
    } else if Lrn::parse(&manifest.lrn).is_none() {
        c.incorrect(
            "format.lrn",
            "lrn",
            &manifest.lrn,
            "an LRN is 1 to 35 printable ASCII characters without spaces",
        );
    }
    if manifest.filing_type.is_empty() {
        c.missing("filing_type", "the filing type is required");
    } else if !is_filing_type(&manifest.filing_type) {
        c.incorrect(
            "format.filing_type",
            "filing_type",
            &manifest.filing_type,
            "a filing type is 'F' and two digits, such as F10",
        );
    }
    match TransportMode::try_from(manifest.transport_mode) {
        Ok(TransportMode::Unspecified) => {
            c.missing("transport_mode", "the transport mode is required")
        }
        Ok(_) => {}
        Err(_) => c.incorrect(
            "format.transport_mode",
            "transport_mode",
            &manifest.transport_mode.to_string(),
            "not a known transport mode",
        ),
    }
    match &manifest.declarant {
        Some(declarant) => c.party(declarant, "declarant", true),
        None => c.missing("declarant", "the declarant (filer) is required"),
    }
    match &manifest.carrier {
        Some(carrier) => c.party(carrier, "carrier", true),
        None => c.missing("carrier", "the carrier is required"),
    }
    for (party, path) in [
        (&manifest.representative, "representative"),
        (&manifest.next_filing_party, "next_filing_party"),
    ] {
        if let Some(party) = party {
            c.party(party, path, false);
        }
    }
    match &manifest.itinerary {
        Some(itinerary) => c.itinerary(itinerary),
        None => c.missing("itinerary", "the itinerary is required"),
    }
    if manifest.consignments.is_empty() {
        c.missing("consignments", "at least one consignment is required");
    }
    for (i, consignment) in manifest.consignments.iter().enumerate() {
        c.consignment(consignment, &format!("consignments[{i}]"));
    }
    for (i, equipment) in manifest.transport_equipment.iter().enumerate() {
        c.equipment(equipment, &format!("transport_equipment[{i}]"));
    }
}

struct Checker<'a> {
    report: &'a mut Report,
}

impl Checker<'_> {
    fn missing(&mut self, path: &str, message: &str) {
        self.report.push(Finding {
            code: Code::Missing,
            rule: "required",
            path: path.to_owned(),
            message: message.to_owned(),
            severity: Severity::Error,
            value: String::new(),
        });
    }

    fn incorrect(&mut self, rule: &'static str, path: &str, value: &str, message: &str) {
        self.report.push(Finding {
            code: Code::IncorrectValue,
            rule,
            path: path.to_owned(),
            message: message.to_owned(),
            severity: Severity::Error,
            value: quote(value),
        });
    }

    fn party(&mut self, party: &Party, path: &str, eori_required: bool) {
        if party.eori.is_empty() {
            if eori_required {
                self.missing(&format!("{path}.eori"), "the EORI number is required");
            } else if party.tin.is_empty() && party.name.is_empty() {
                self.missing(
                    &format!("{path}.name"),
                    "an EORI, a TIN or a name is required",
                );
            }
        } else if Eori::parse(&party.eori).is_none() {
            self.incorrect(
                "format.eori",
                &format!("{path}.eori"),
                &party.eori,
                "an EORI is a 2-letter country code and up to 15 upper-case letters or digits",
            );
        }
        if let Some(address) = &party.address
            && !address.country.is_empty()
        {
            self.country(&address.country, &format!("{path}.address.country"));
        }
    }

    fn country(&mut self, value: &str, path: &str) {
        if !is_country(value) {
            self.incorrect(
                "format.country",
                path,
                value,
                "a country is an ISO 3166-1 alpha-2 code (two upper-case letters)",
            );
        }
    }

    fn location(&mut self, location: Option<&Location>, path: &str, required: bool) {
        let Some(location) = location else {
            if required {
                self.missing(path, "this place is required");
            }
            return;
        };
        if location.locode.is_empty() && location.country.is_empty() {
            self.missing(
                &format!("{path}.locode"),
                "a UN/LOCODE, or at least a country, is required",
            );
        }
        if !location.locode.is_empty() && !is_locode(&location.locode) {
            self.incorrect(
                "format.locode",
                &format!("{path}.locode"),
                &location.locode,
                "a UN/LOCODE is a 2-letter country code and 3 letters or digits 2-9",
            );
        }
        if !location.country.is_empty() {
            self.country(&location.country, &format!("{path}.country"));
        }
    }

    fn itinerary(&mut self, itinerary: &Itinerary) {
        self.location(
            itinerary.place_of_loading.as_ref(),
            "itinerary.place_of_loading",
            true,
        );
        self.location(
            itinerary.place_of_first_entry.as_ref(),
            "itinerary.place_of_first_entry",
            true,
        );
        for (i, country) in itinerary.countries_of_routing.iter().enumerate() {
            self.country(country, &format!("itinerary.countries_of_routing[{i}]"));
        }
        if itinerary.estimated_arrival.is_none() {
            self.missing(
                "itinerary.estimated_arrival",
                "the estimated time of arrival is required",
            );
        }
    }

    fn consignment(&mut self, consignment: &Consignment, path: &str) {
        match &consignment.transport_document {
            Some(document) => {
                if document.r#type.is_empty() {
                    self.missing(
                        &format!("{path}.transport_document.type"),
                        "the transport document type is required",
                    );
                }
                if document.number.is_empty() {
                    self.missing(
                        &format!("{path}.transport_document.number"),
                        "the transport document number is required",
                    );
                }
            }
            None => self.missing(
                &format!("{path}.transport_document"),
                "the transport document is required",
            ),
        }
        for (party, name) in [
            (&consignment.consignor, "consignor"),
            (&consignment.consignee, "consignee"),
        ] {
            match party {
                Some(party) => self.party(party, &format!("{path}.{name}"), false),
                None => self.missing(&format!("{path}.{name}"), "this party is required"),
            }
        }
        if let Some(notify) = &consignment.notify_party {
            self.party(notify, &format!("{path}.notify_party"), false);
        }
        self.location(
            consignment.place_of_acceptance.as_ref(),
            &format!("{path}.place_of_acceptance"),
            false,
        );
        self.location(
            consignment.place_of_delivery.as_ref(),
            &format!("{path}.place_of_delivery"),
            false,
        );
        if consignment.goods_items.is_empty() {
            self.missing(
                &format!("{path}.goods_items"),
                "at least one goods item is required",
            );
        }
        for (i, item) in consignment.goods_items.iter().enumerate() {
            self.goods_item(item, &format!("{path}.goods_items[{i}]"));
        }
    }

    fn goods_item(&mut self, item: &GoodsItem, path: &str) {
        if item.description.trim().is_empty() {
            self.missing(
                &format!("{path}.description"),
                "a description of the goods is required",
            );
        } else if item.description.chars().count() > MAX_DESCRIPTION {
            self.incorrect(
                "format.description",
                &format!("{path}.description"),
                &item.description,
                "a description has at most 512 characters",
            );
        }
        if !item.hs_code.is_empty() && !is_hs_code(&item.hs_code) {
            self.incorrect(
                "format.hs_code",
                &format!("{path}.hs_code"),
                &item.hs_code,
                "an HS code is 6, 8 or 10 digits",
            );
        }
        if !item.package_type.is_empty() && !is_package_type(&item.package_type) {
            self.incorrect(
                "format.package_type",
                &format!("{path}.package_type"),
                &item.package_type,
                "a package type is a 2-character UN/ECE Recommendation 21 code",
            );
        }
        if !(item.gross_mass_kg.is_finite() && item.gross_mass_kg >= 0.0) {
            self.incorrect(
                "range.gross_mass",
                &format!("{path}.gross_mass_kg"),
                &item.gross_mass_kg.to_string(),
                "gross mass is a non-negative number of kilograms",
            );
        }
    }

    fn equipment(&mut self, equipment: &TransportEquipment, path: &str) {
        let number = &equipment.container_number;
        if number.is_empty() {
            self.missing(
                &format!("{path}.container_number"),
                "the container or equipment number is required",
            );
        } else if !is_container_shape(number) {
            self.incorrect(
                "format.container_number",
                &format!("{path}.container_number"),
                number,
                "an ISO 6346 container number is 3 letters, U/J/Z and 7 digits",
            );
        }
    }
}

fn is_filing_type(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 3 && b[0] == b'F' && b[1..].iter().all(u8::is_ascii_digit)
}

fn is_package_type(text: &str) -> bool {
    text.len() == 2
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn is_country(text: &str) -> bool {
    text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase())
}

fn is_locode(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 5
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || (b'2'..=b'9').contains(c))
}

fn is_hs_code(text: &str) -> bool {
    matches!(text.len(), 6 | 8 | 10) && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_container_shape(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 11
        && b[..3].iter().all(u8::is_ascii_uppercase)
        && matches!(b[3], b'U' | b'J' | b'Z')
        && b[4..].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::super::{Code, validate};
    use crate::pb::{self, Manifest};

    fn sample() -> Manifest {
        crate::pb::from_json(include_str!("../../schemas/examples/sea-f10.json")).expect("sample")
    }

    #[test]
    fn the_sea_sample_is_accepted() {
        let accepted = validate(sample()).expect("valid sample");
        assert_eq!(accepted.filer.as_str(), crate::pki::SAMPLE_CARRIER_EORI);
        assert!(accepted.warnings.is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_code_and_path() {
        let mut manifest = sample();
        manifest.lrn.clear();
        manifest.transport_mode = pb::TransportMode::Unspecified as i32;
        let item = &mut manifest.consignments[0].goods_items[0];
        item.hs_code = "12AB".into();
        item.description.clear();
        manifest
            .itinerary
            .as_mut()
            .expect("itinerary")
            .place_of_loading = Some(pb::Location {
            locode: "nlrtm".into(),
            ..Default::default()
        });
        let report = validate(manifest).expect_err("invalid");
        let found: Vec<(&str, &str)> = report
            .findings()
            .iter()
            .map(|f| (f.code.as_str(), f.path.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (Code::Missing.as_str(), "lrn"),
                (Code::Missing.as_str(), "transport_mode"),
                (
                    Code::IncorrectValue.as_str(),
                    "itinerary.place_of_loading.locode"
                ),
                (
                    Code::Missing.as_str(),
                    "consignments[0].goods_items[0].description"
                ),
                (
                    Code::IncorrectValue.as_str(),
                    "consignments[0].goods_items[0].hs_code"
                ),
            ]
        );
    }

    #[test]
    fn findings_are_capped_and_the_cap_is_reported() {
        let mut manifest = sample();
        let item = manifest.consignments[0].goods_items[0].clone();
        manifest.consignments[0].goods_items = (0..500)
            .map(|_| pb::GoodsItem {
                hs_code: "x".into(),
                ..item.clone()
            })
            .collect();
        let report = validate(manifest).expect_err("invalid");
        assert_eq!(report.findings().len(), super::super::MAX_FINDINGS);
        assert!(report.truncated());
    }
}
