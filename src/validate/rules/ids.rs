//! Identifiers and check digits: containers (ISO 6346), IMO numbers, air waybills (mod 7),
//! UN/LOCODE and EORI countries, referenced MRNs, HS chapters.

use super::Context;
use crate::ids::{Mrn, check_character};
use crate::validate::codes::{COUNTRIES, HS_CHAPTERS};

pub(super) fn check(cx: &mut Context<'_>) {
    container_numbers(cx);
    imo_number(cx);
    air_waybills(cx);
    locode_countries(cx);
    eori_countries(cx);
    related_mrn(cx);
    hs_chapters(cx);
    receptacle_offices(cx);
}

/// A UPU S9 receptacle id starts with its origin and destination offices of exchange (six
/// characters each), each led by its country.
fn receptacle_offices(cx: &mut Context<'_>) {
    let countries = cx.codes.list(COUNTRIES);
    let mut findings = Vec::new();
    for (i, consignment) in cx.manifest.consignments.iter().enumerate() {
        for (r, id) in consignment.receptacle_ids.iter().enumerate() {
            let offices = [id.get(..2), id.get(6..8)];
            if let Some(bad) = offices
                .into_iter()
                .find(|country| country.is_none_or(|c| !countries.contains(c)))
            {
                findings.push((
                    format!("consignments[{i}].receptacle_ids[{r}]"),
                    id.clone(),
                    format!(
                        "the receptacle's office of exchange country {:?} is not an ISO 3166 code",
                        bad.unwrap_or_default()
                    ),
                ));
            }
        }
    }
    for (path, value, message) in findings {
        cx.report("ids.receptacle_offices", &path, &value, &message);
    }
}

/// ISO 6346: the 11th character is the check digit of the first ten.
pub fn container_check_digit_ok(number: &str) -> bool {
    let bytes = number.as_bytes();
    bytes.len() == 11
        && check_character(&bytes[..10])
            .is_some_and(|check| u8::try_from(check).ok() == Some(bytes[10]))
}

/// IMO ship number: (d1·7 + d2·6 + d3·5 + d4·4 + d5·3 + d6·2) mod 10 = d7.
pub fn imo_check_digit_ok(number: &str) -> bool {
    let [body @ .., check] = number.as_bytes() else {
        return false;
    };
    if body.len() != 6 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = body
        .iter()
        .zip((2..=7).rev())
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    sum % 10 == u32::from(*check - b'0')
}

/// IATA air waybill `ppp-nnnnnnnn` or `pppnnnnnnnn`: the serial's last digit is its first seven
/// digits mod 7.
pub fn awb_check_digit_ok(number: &str) -> bool {
    let bytes = number.as_bytes();
    let (prefix, serial) = match bytes.len() {
        12 if bytes[3] == b'-' => (&bytes[..3], &bytes[4..]),
        11 => bytes.split_at(3),
        _ => return false,
    };
    if !prefix.iter().chain(serial).all(u8::is_ascii_digit) {
        return false;
    }
    let value = |digits: &[u8]| {
        digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let (body, check) = serial.split_at(7);
    value(body) % 7 == value(check)
}

fn container_numbers(cx: &mut Context<'_>) {
    for (i, equipment) in cx.manifest.transport_equipment.iter().enumerate() {
        let number = &equipment.container_number;
        // The shape is the pattern constraint's business; the check digit is ours.
        if number.len() == 11 && !container_check_digit_ok(number) {
            cx.report(
                "ids.container_check_digit",
                &format!("transport_equipment[{i}].container_number"),
                number,
                "the ISO 6346 check digit does not match",
            );
        }
    }
}

fn imo_number(cx: &mut Context<'_>) {
    let Some(conveyance) = &cx.manifest.conveyance else {
        return;
    };
    let imo = &conveyance.imo_number;
    if imo.len() == 7 && imo.bytes().all(|b| b.is_ascii_digit()) && !imo_check_digit_ok(imo) {
        let severity = cx.settings.imo_severity;
        cx.report_as(
            "ids.imo_check_digit",
            severity,
            "conveyance.imo_number",
            imo,
            "the IMO check digit does not match",
        );
    }
}

fn air_waybills(cx: &mut Context<'_>) {
    for (i, consignment) in cx.manifest.consignments.iter().enumerate() {
        for (name, document) in [
            ("transport_document", &consignment.transport_document),
            ("master_document", &consignment.master_document),
        ] {
            let Some(document) = document else { continue };
            if matches!(document.r#type.as_str(), "N740" | "N741")
                && !awb_check_digit_ok(&document.number)
            {
                cx.report(
                    "ids.awb_check_digit",
                    &format!("consignments[{i}].{name}.number"),
                    &document.number,
                    "an air waybill is ppp-nnnnnnnn whose last digit is the first seven of the serial mod 7",
                );
            }
        }
    }
}

fn locode_countries(cx: &mut Context<'_>) {
    let manifest = cx.manifest;
    let countries = cx.codes.list(COUNTRIES);
    // `get`: a multi-byte character across the country's end is the pattern's finding, not a
    // reason to slice inside a character.
    let wrong_country =
        |locode: &str| locode.len() == 5 && locode.get(..2).is_some_and(|c| !countries.contains(c));
    const MESSAGE: &str = "a UN/LOCODE starts with an ISO 3166 country code";
    if let Some(itinerary) = &manifest.itinerary {
        for (name, place) in [
            ("place_of_loading", &itinerary.place_of_loading),
            ("place_of_first_entry", &itinerary.place_of_first_entry),
        ] {
            if let Some(place) = place
                && wrong_country(&place.locode)
            {
                let path = format!("itinerary.{name}.locode");
                cx.report("ids.locode_country", &path, &place.locode, MESSAGE);
            }
        }
    }
    for (i, consignment) in manifest.consignments.iter().enumerate() {
        for (name, place) in [
            ("place_of_acceptance", &consignment.place_of_acceptance),
            ("place_of_delivery", &consignment.place_of_delivery),
        ] {
            if let Some(place) = place
                && wrong_country(&place.locode)
            {
                let path = format!("consignments[{i}].{name}.locode");
                cx.report("ids.locode_country", &path, &place.locode, MESSAGE);
            }
        }
    }
}

fn eori_countries(cx: &mut Context<'_>) {
    let countries = cx.codes.list(COUNTRIES);
    for (path, party) in super::parties(cx.manifest) {
        let eori = &party.eori;
        if eori.len() < 3 || !eori.is_ascii() {
            continue;
        }
        let (country, rest) = eori.split_at(2);
        let problem = if !countries.contains(country) {
            Some("an EORI starts with an ISO 3166 country code")
        } else if matches!(country, "GB" | "XI")
            && !(matches!(rest.len(), 12 | 15) && rest.bytes().all(|b| b.is_ascii_digit()))
        {
            Some("a GB or XI EORI is the country code and 12 or 15 digits")
        } else {
            None
        };
        if let Some(message) = problem {
            cx.report("ids.eori_country", &format!("{path}.eori"), eori, message);
        }
    }
}

fn related_mrn(cx: &mut Context<'_>) {
    let mrn = &cx.manifest.related_mrn;
    if mrn.len() == Mrn::LEN
        && let Err(e) = Mrn::parse(mrn)
    {
        cx.report("ids.related_mrn", "related_mrn", mrn, &e.to_string());
    }
}

fn hs_chapters(cx: &mut Context<'_>) {
    let chapters = cx.codes.list(HS_CHAPTERS);
    for (i, consignment) in cx.manifest.consignments.iter().enumerate() {
        for (j, item) in consignment.goods_items.iter().enumerate() {
            let code = &item.hs_code;
            if code.len() >= 6 && code.is_ascii() && !chapters.contains(&code[..2]) {
                cx.report(
                    "ids.hs_chapter",
                    &format!("consignments[{i}].goods_items[{j}].hs_code"),
                    code,
                    "HS chapters are 01 to 97 (77 is reserved)",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_vectors() {
        assert!(container_check_digit_ok("CSQU3054383"));
        assert!(!container_check_digit_ok("CSQU3054384"));
        assert!(imo_check_digit_ok("9319466"));
        assert!(imo_check_digit_ok("8814275"));
        assert!(!imo_check_digit_ok("8814274"));
        assert!(awb_check_digit_ok("123-12345675"));
        assert!(awb_check_digit_ok("12312345675"));
        assert!(!awb_check_digit_ok("123-12345674"));
        assert!(!awb_check_digit_ok("123-1234567"));
    }

    fn imo_with_check(body: &str) -> String {
        let sum: u32 = body
            .chars()
            .filter_map(|c| c.to_digit(10))
            .zip((2..=7).rev())
            .map(|(d, w)| d * w)
            .sum();
        format!("{body}{}", sum % 10)
    }

    /// The checks as first written (allocating), kept as oracles for the ones above.
    fn imo_as_first_written(number: &str) -> bool {
        let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
        if digits.len() != 7 || number.len() != 7 {
            return false;
        }
        let sum: u32 = digits[..6]
            .iter()
            .zip((2..=7).rev())
            .map(|(d, w)| d * w)
            .sum();
        sum % 10 == digits[6]
    }

    fn awb_as_first_written(number: &str) -> bool {
        let digits = if number.len() == 12 && number.as_bytes()[3] == b'-' {
            number.replacen('-', "", 1)
        } else {
            number.to_owned()
        };
        if digits.len() != 11 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let (body, check) = digits[3..].split_at(7);
        match (body.parse::<u32>(), check.parse::<u32>()) {
            (Ok(body), Ok(check)) => body % 7 == check,
            _ => false,
        }
    }

    proptest! {
        /// Numbers of the right shape (half with a correct check digit), near misses
        /// (a dash elsewhere, a letter, one digit more or less, twelve digits) and any text: the
        /// same verdicts.
        #[test]
        fn the_imo_and_awb_checks_answer_as_first_written(
            imo in "[0-9]{6}",
            awb in "[0-9]{3}-?[0-9]{7}",
            twelve in "[0-9]{12}",
            any in "[0-9A-Z-]{0,13}|\\PC{0,13}",
            wrong in 0u32..2,
        ) {
            let imo = imo_with_check(&imo);
            // A wrong check digit: the right one plus one.
            let imo = if wrong == 0 {
                imo
            } else {
                let check = (imo.as_bytes()[6] - b'0' + 1) % 10;
                format!("{}{check}", &imo[..6])
            };
            let serial: u32 = awb[awb.len() - 7..].parse().expect("digits");
            let awb = format!("{awb}{}", (serial + wrong) % 7);
            let mut dashed = awb.clone();
            dashed.insert(1, '-');
            let mut lettered = awb.clone();
            lettered.replace_range(5..6, "A");
            let longer = format!("{awb}1");
            let numbers: [&str; 8] =
                [&imo, &awb, &dashed, &lettered, &awb[1..], &longer, &twelve, &any];
            for number in numbers {
                prop_assert_eq!(imo_check_digit_ok(number), imo_as_first_written(number), "IMO {}", number);
                prop_assert_eq!(awb_check_digit_ok(number), awb_as_first_written(number), "AWB {}", number);
            }
        }

        #[test]
        fn any_container_with_its_check_digit_passes_and_a_changed_digit_fails(
            owner in "[A-Z]{3}", category in "[UJZ]", serial in "[0-9]{6}", pos in 4usize..10, delta in 1u8..10,
        ) {
            let body = format!("{owner}{category}{serial}");
            let check = check_character(body.as_bytes()).expect("alphanumeric");
            let number = format!("{body}{check}");
            prop_assert!(container_check_digit_ok(&number));
            // A changed serial digit changes the weighted sum by delta·2^pos, never a multiple of
            // 11, so the check differs unless the remainder wraps 10 → 0.
            let mut bytes = number.clone().into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).expect("ascii");
            let changed_check = check_character(&changed.as_bytes()[..10]).expect("alnum");
            prop_assume!(changed_check != check);
            prop_assert!(!container_check_digit_ok(&changed));
        }

        #[test]
        fn any_imo_with_its_check_digit_passes_and_a_changed_check_fails(body in "[0-9]{6}", delta in 1u32..10) {
            let number = imo_with_check(&body);
            prop_assert!(imo_check_digit_ok(&number));
            let last = number.chars().last().and_then(|c| c.to_digit(10)).expect("digit");
            let changed = format!("{body}{}", (last + delta) % 10);
            prop_assert!(!imo_check_digit_ok(&changed));
        }

        #[test]
        fn any_awb_with_its_check_digit_passes_and_a_changed_check_fails(prefix in "[0-9]{3}", body in 0u32..10_000_000, delta in 1u32..7) {
            let number = format!("{prefix}-{body:07}{}", body % 7);
            prop_assert!(awb_check_digit_ok(&number));
            let changed = format!("{prefix}-{body:07}{}", (body % 7 + delta) % 7);
            prop_assert!(!awb_check_digit_ok(&changed));
        }
    }
}
