//! XML → Manifest on arbitrary bytes: the mapping never panics, and a document the schema
//! accepts always maps (a schema-valid filing must never fail with `xsd.mapping`).
#![no_main]

use aci_gateway::validate::{Validator, xml, xsd::Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let validator = Validator::standard();
    let mapped = xml::from_xml(validator.schema(), data);
    let schema_clean = validator
        .check_xml_schema(data, &Limits::default())
        .findings()
        .is_empty();
    if schema_clean {
        let manifest = mapped.expect("a schema-valid document maps to a manifest");
        // And the whole XML path (rules included) answers without panicking.
        let _ = validator.validate(manifest, std::time::SystemTime::now());
    }
});
