//! The XML form maps to the same `Manifest` as the protobuf/JSON form, and any valid manifest
//! written as XML validates against the schema and reads back equal.

use aci_gateway::pb::{self, Manifest};
use aci_gateway::validate::xml::{from_xml, to_xml};
use aci_gateway::validate::xsd::{Limits, Schema};
use proptest::prelude::*;

const XSD: &str = include_str!("../schemas/aci-manifest-2.xsd");

fn schema() -> &'static Schema {
    static SCHEMA: std::sync::LazyLock<Schema> =
        std::sync::LazyLock::new(|| Schema::compile(XSD).expect("schema"));
    &SCHEMA
}

fn json(name: &str) -> Manifest {
    let path = format!(
        "{}/schemas/examples/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    pb::from_json(&std::fs::read_to_string(path).expect("example")).expect("parses")
}

fn xml(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/schemas/examples/{name}.xml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("example")
}

#[test]
fn every_xml_example_is_its_json_twin() {
    let schema = schema();
    // Every XML example with its JSON twin.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| p.file_stem().expect("stem").to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for name in names.iter().map(String::as_str) {
        let document = xml(name);
        assert!(
            schema.validate(&document, &Limits::default()).is_valid(),
            "{name}"
        );
        let mapped = from_xml(schema, &document).expect(name);
        assert_eq!(mapped, json(name), "{name}");
        assert_eq!(
            aci_gateway::validate::digest(&mapped),
            aci_gateway::validate::digest(&json(name)),
            "{name}: same canonical digest"
        );
    }
}

#[test]
fn whitespace_is_normalized_as_the_schema_says() {
    let schema = schema();
    let document = String::from_utf8(xml("sea-f10"))
        .expect("utf-8")
        .replace(
            "<TransportMode>SEA</TransportMode>",
            "<TransportMode>\n  SEA </TransportMode>",
        )
        .replace("<Country>GB</Country>", "<Country> GB </Country>");
    assert!(
        schema
            .validate(document.as_bytes(), &Limits::default())
            .is_valid()
    );
    let mapped = from_xml(schema, document.as_bytes()).expect("maps");
    assert_eq!(mapped, json("sea-f10"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn any_valid_manifest_round_trips_through_xml(
        lrn in "[!-~]{1,22}",
        description in "\\PC{1,60}",
        mass_thousandths in 0u64..100_000_000_000,
        items in 1usize..5,
        sample in prop::sample::select(vec!["sea-f10", "air-f23", "road-f50"]),
    ) {
        let schema = schema();
        let mut manifest = json(sample);
        manifest.lrn = lrn;
        let template = manifest.consignments[0].goods_items[0].clone();
        manifest.consignments[0].goods_items = (0..items)
            .map(|i| pb::GoodsItem {
                sequence: i as u32 + 1,
                description: description.clone(),
                gross_mass_kg: mass_thousandths as f64 / 1000.0,
                ..template.clone()
            })
            .collect();
        let document = to_xml(&manifest);
        let report = schema.validate(document.as_bytes(), &Limits::default());
        prop_assert!(report.is_valid(), "{:?}\n{document}", report.findings);
        let back = from_xml(schema, document.as_bytes()).expect("maps back");
        prop_assert_eq!(back, manifest);
    }
}

/// Found by the `xml_mapping` fuzz target: `xs:dateTime` admits five-digit years, times
/// without a zone and 24:00:00, which a Timestamp cannot carry, so a schema-valid filing failed
/// in the mapping. The schema now says what the mapping reads (`UtcDateTime`), and xmllint
/// agrees with it.
#[test]
fn every_time_the_schema_accepts_is_a_time_the_mapping_reads() {
    let document = String::from_utf8(xml("rail-f51")).expect("utf-8");
    let original = "<EstimatedArrival>2030-12-05T09:00:00Z</EstimatedArrival>";
    assert!(document.contains(original));
    for (time, accepted) in [
        ("2026-12-05T09:00:00Z", true),
        ("2026-12-05T09:00:00.25+01:00", true),
        ("20262-12-05T09:00:00Z", false),
        ("2026-12-05T09:00:00", false),
        ("2026-12-05T24:00:00Z", false),
    ] {
        let changed = document.replace(
            original,
            &format!("<EstimatedArrival>{time}</EstimatedArrival>"),
        );
        let report = schema().validate(changed.as_bytes(), &Limits::default());
        assert_eq!(report.is_valid(), accepted, "{time}: {:?}", report.findings);
        if accepted {
            from_xml(schema(), changed.as_bytes()).expect("a valid time maps");
        }
        let file = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(file.path(), &changed).expect("write");
        let xmllint = std::process::Command::new("xmllint")
            .args(["--noout", "--nonet", "--schema"])
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/schemas/aci-manifest-2.xsd"
            ))
            .arg(file.path())
            .output()
            .expect("xmllint (libxml2-utils) runs");
        assert_eq!(xmllint.status.success(), accepted, "xmllint on {time}");
    }
}
