//! libxml2 (xmllint), the reference XSD processor, accepts the committed schema and agrees with
//! the examples: the valid ones validate, the invalid one fails on the same fields the
//! protobuf path reports.

use std::path::Path;
use std::process::Command;

fn xmllint(args: &[&str]) -> std::process::Output {
    Command::new("xmllint")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| {
            panic!("xmllint is needed (Debian: apt-get install libxml2-utils; .ci/run installs it): {e}")
        })
}

#[test]
fn libxml2_accepts_the_schema_and_the_valid_examples() {
    // Every XML example (the invalid ones live in a subdirectory and are not read), and version
    // 1's against version 1's schema.
    let mut examples: Vec<(String, &str)> = Vec::new();
    for (folder, schema) in [
        ("schemas/examples", "schemas/aci-manifest-2.xsd"),
        ("schemas/examples/v1", "schemas/aci-manifest-1.xsd"),
    ] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
        for path in std::fs::read_dir(&dir)
            .expect("examples")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            examples.push((format!("{folder}/{name}"), schema));
        }
    }
    examples.sort();
    assert!(
        examples.len() >= 32,
        "a sample for every filing type: {examples:?}"
    );
    for (file, schema) in examples {
        let output = xmllint(&["--noout", "--nonet", "--schema", schema, &file]);
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn libxml2_refuses_the_invalid_example_on_the_same_fields() {
    let output = xmllint(&[
        "--noout",
        "--nonet",
        "--schema",
        "schemas/aci-manifest-1.xsd",
        "schemas/examples/invalid/sea-f10.xml",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The protobuf path reports itinerary.place_of_first_entry.locode and the first hs_code.
    assert!(
        stderr.contains("'nl-rtm'") && stderr.contains("Locode"),
        "{stderr}"
    );
    assert!(
        stderr.contains("'82041'") && stderr.contains("HsCode"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("Schemas validity error").count(),
        2,
        "{stderr}"
    );
}
