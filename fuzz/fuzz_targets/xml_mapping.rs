//! XML → Manifest on arbitrary bytes: reading never panics, a document the schema accepts
//! always maps (a schema-valid filing must never fail with `xsd.mapping`), and the manifest of a
//! current (version 2) document meets the protobuf schema's constraints too (the XML path relies
//! on it and skips them; version 1 documents are walked, so they may not).
#![no_main]

use aci_gateway::validate::constraints::Form;
use aci_gateway::validate::{Validator, xml, xsd::Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let validator = Validator::standard();
    match validator.read_xml(data, &Limits::default()) {
        Ok(manifest) => {
            let schema_only = validator.check_xml_schema(data, &Limits::default());
            assert!(schema_only.findings().is_empty(), "read, so schema-valid");
            let mut constraints = aci_gateway::validate::Report::default();
            // The declared constraints alone (no filing type, so no data set): the two schemas
            // state the same constraints; data sets are checked apart, by type.
            validator.constraints().check(
                &prost::Message::encode_to_vec(&manifest),
                "",
                Form::Current,
                &mut constraints,
            );
            assert!(
                constraints.findings().is_empty() || xml::is_version_1(data),
                "the XML schema accepted what the protobuf schema refuses: {:?}",
                constraints.findings()
            );
            // And the whole XML path (rules included) answers without panicking.
            drop(validator.validate(manifest, std::time::SystemTime::now()));
        }
        Err(report) => {
            let unmapped = report.findings().iter().find(|f| f.rule == "xsd.mapping");
            assert!(
                unmapped.is_none(),
                "a schema-valid document maps to a manifest: {unmapped:?}"
            );
            // Read in one pass, the findings are exactly the schema check's.
            let schema_only = validator.check_xml_schema(data, &Limits::default());
            assert_eq!(report.findings().len(), schema_only.findings().len());
        }
    }
});
