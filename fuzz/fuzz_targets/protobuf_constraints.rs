//! Protobuf decoding and every check after it (constraints, code lists, check digits, totals,
//! deadlines) on arbitrary bytes: a decode error or a report, never a panic.
#![no_main]

use aci_gateway::pb::Manifest;
use aci_gateway::validate::Validator;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::decode(data) {
        let validator = Validator::standard();
        let report = validator.check(&manifest, std::time::SystemTime::now());
        let accepted = validator.validate(manifest, std::time::SystemTime::now());
        assert_eq!(report.has_errors(), accepted.is_err());
    }
});
