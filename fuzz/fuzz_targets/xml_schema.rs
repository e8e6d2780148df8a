//! The XSD validator on arbitrary bytes: findings or a clean report, never a panic, and always
//! within the limits (no finding storm past `max_findings`).
#![no_main]

use aci_gateway::validate::{Validator, xsd::Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let report = Validator::standard().check_xml_schema(data, &limits);
    assert!(report.findings().len() <= limits.max_findings);
});
