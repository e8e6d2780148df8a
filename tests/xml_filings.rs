//! XML filings over the carrier API: same receipt as protobuf, the bytes kept as submitted,
//! coded findings with line:column, hostile documents refused while the gateway keeps serving.

mod common;

use aci_gateway::pb::{self, Manifest};
use aci_gateway::status::report_of;
use common::{GatewayBuilder, client, endpoint};
use tonic::Code;

fn example(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/schemas/examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("example")
}

#[tokio::test]
async fn an_xml_filing_and_its_protobuf_twin_get_the_same_receipt() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let xml = example("sea-f10.xml");
    let receipt = carrier.submit_xml(xml.clone()).await.expect("accepted");
    let manifest: Manifest =
        pb::from_json(std::str::from_utf8(&example("sea-f10.json")).expect("utf-8")).expect("json");
    let twin = carrier.submit(manifest).await.expect("the same filing");
    assert_eq!(
        twin, receipt,
        "same content, same canonical digest: the original receipt"
    );

    let records = common::log_records(gateway.store());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].original, xml, "the bytes as submitted");
    assert_eq!(records[0].original_type, "application/xml");
    gateway.stop().await.expect("stop");
}

#[tokio::test]
async fn schema_findings_come_back_with_line_and_column() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let status = carrier
        .submit_xml(example("invalid/sea-f10.xml"))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let report = report_of(&status).expect("report");
    let found: Vec<(&str, &str, &str)> = report
        .violations
        .iter()
        .map(|v| {
            (
                v.code.as_str(),
                v.rule.as_str(),
                v.path.split(':').next().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("12", "xsd.invalid_value", "37"),
            ("12", "xsd.invalid_value", "83")
        ]
    );
    assert!(
        report.violations[0].message.contains("PlaceOfFirstEntry"),
        "{:?}",
        report.violations[0]
    );
    gateway.stop().await.expect("stop");
}

#[tokio::test]
async fn hostile_xml_is_refused_and_the_gateway_keeps_serving() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let sea = String::from_utf8(example("sea-f10.xml")).expect("utf-8");
    let hostile: Vec<(&str, Vec<u8>, &str)> = vec![
        ("billion laughs", b"<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><Manifest xmlns=\"urn:aci-gateway:manifest:1\"><Lrn>&b;</Lrn></Manifest>".to_vec(), "xml.forbidden"),
        ("external entity", b"<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><Manifest xmlns=\"urn:aci-gateway:manifest:1\">&x;</Manifest>".to_vec(), "xml.forbidden"),
        ("deep nesting", format!("<Manifest xmlns=\"urn:aci-gateway:manifest:1\">{}</Manifest>", "<Itinerary>".repeat(5000)).into(), "xml.limit"),
        ("invalid UTF-8", [sea.as_bytes(), b"\xc3\x28"].concat(), "xml.not_well_formed"),
        ("truncated", sea.as_bytes()[..sea.len() / 3].to_vec(), "xml.not_well_formed"),
        ("two roots", format!("{sea}{sea}").into(), "xml.not_well_formed"),
    ];
    for (name, document, rule) in hostile {
        let status = carrier.submit_xml(document).await.expect_err(name);
        assert_eq!(status.code(), Code::InvalidArgument, "{name}");
        let report = report_of(&status).expect("report");
        let rules: Vec<&str> = report.violations.iter().map(|v| v.rule.as_str()).collect();
        assert!(rules.contains(&rule), "{name}: {rules:?}");
    }
    carrier
        .submit_xml(example("air-f23.xml"))
        .await
        .expect("still serving");
    gateway.stop().await.expect("stop");
}

#[tokio::test]
async fn an_xml_filing_cannot_name_another_filer() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let forged = String::from_utf8(example("road-f50.xml"))
        .expect("utf-8")
        .replacen("<Eori>GB123456789000</Eori>", "<Eori>DE987654321</Eori>", 1);
    let status = carrier
        .submit_xml(forged.into())
        .await
        .expect_err("impersonation");
    assert_eq!(status.code(), Code::PermissionDenied);
    gateway.stop().await.expect("stop");
}

/// Every JSON sample (valid, and the invalid ones of `make.py`) with its XML twin: the file the
/// gateway writes for it (`ACI_BLESS=1` rewrites them).
fn samples_with_twins() -> Vec<(String, Manifest, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
    let mut out = Vec::new();
    for sub in ["", "invalid"] {
        let mut paths: Vec<_> = std::fs::read_dir(dir.join(sub))
            .expect("examples")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter(|p| sub.is_empty() || p.to_string_lossy().ends_with("-dataset.json"))
            .collect();
        paths.sort();
        for path in paths {
            let name = path
                .file_stem()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let name = if sub.is_empty() {
                name
            } else {
                format!("{sub}/{name}")
            };
            let json = std::fs::read_to_string(&path).expect("read");
            let manifest: Manifest = pb::from_json(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
            let written = aci_gateway::validate::xml::to_xml(&manifest);
            let twin = path.with_extension("xml");
            if std::env::var_os("ACI_BLESS").is_some() {
                std::fs::write(&twin, &written).expect("write the twin");
            }
            let on_disk = std::fs::read_to_string(&twin).unwrap_or_else(|_| {
                panic!("{name}.xml: run `ACI_BLESS=1 cargo test --test xml_filings`")
            });
            assert!(
                on_disk == written,
                "{name}.xml is not the twin of {name}.json: run `ACI_BLESS=1 cargo test --test xml_filings`"
            );
            out.push((name, manifest, on_disk));
        }
    }
    assert!(
        out.len() >= 2 * 31,
        "a valid and an invalid sample of every type: {}",
        out.len()
    );
    out
}

#[test]
fn every_sample_validates_offline_with_its_xml_twin_and_the_invalid_ones_break_their_data_set() {
    let validator = aci_gateway::validate::Validator::standard();
    let limits = aci_gateway::validate::xsd::Limits::default();
    let now = std::time::SystemTime::now();
    let expected: std::collections::HashMap<String, (String, String)> =
        std::fs::read_to_string(format!(
            "{}/schemas/examples/invalid/datasets.tsv",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("the index of invalid samples")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let cells: Vec<&str> = l.split('\t').collect();
            (
                format!("invalid/{}", cells[0]),
                (cells[2].to_owned(), cells[3].to_owned()),
            )
        })
        .collect();
    let mut types = std::collections::BTreeSet::new();
    for (name, manifest, xml) in samples_with_twins() {
        let from_json = validator.validate(manifest.clone(), now);
        let from_xml = validator.validate_xml(xml.as_bytes(), &limits, now);
        match expected.get(&name) {
            None => {
                let json = from_json.unwrap_or_else(|r| panic!("{name}: {:#?}", r.findings()));
                let xml = from_xml.unwrap_or_else(|r| panic!("{name}.xml: {:#?}", r.findings()));
                assert!(json.warnings.is_empty(), "{name}: {:#?}", json.warnings);
                assert_eq!(json.digest, xml.digest, "{name}: the twins' digests");
                types.insert(manifest.filing_type.clone());
            }
            Some((code, element)) => {
                let leaf = element.rsplit('.').next().expect("a path");
                for (form, result) in [("json", from_json), ("xml", from_xml)] {
                    let report = result
                        .err()
                        .unwrap_or_else(|| panic!("{name}.{form} accepted"));
                    assert!(
                        report.findings().iter().any(|f| f.code.as_str() == code
                            && f.rule.starts_with("dataset.")
                            && f.path.ends_with(leaf)
                            && f.message.contains(&manifest.filing_type)),
                        "{name}.{form}: no code {code} for {element}: {:#?}",
                        report.findings()
                    );
                }
            }
        }
    }
    let catalogue = aci_gateway::validate::codes::CodeLists::builtin()
        .list(aci_gateway::validate::codes::FILING_TYPES);
    assert_eq!(
        types.len(),
        catalogue.len(),
        "a valid sample of every filing type: {types:?}"
    );
}

#[tokio::test]
async fn every_sample_is_accepted_by_a_gateway_and_its_xml_twin_gets_the_same_receipt() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let mut accepted = 0;
    for (name, manifest, xml) in samples_with_twins() {
        if name.starts_with("invalid/") {
            continue;
        }
        let receipt = carrier
            .submit(manifest)
            .await
            .unwrap_or_else(|s| panic!("{name}: {s:?}"));
        let twin = carrier
            .submit_xml(xml.into_bytes())
            .await
            .unwrap_or_else(|s| panic!("{name}.xml: {s:?}"));
        assert_eq!(twin, receipt, "{name}: the XML twin is the same filing");
        accepted += 1;
    }
    assert!(accepted >= 32, "{accepted}");
    gateway.stop().await.expect("stop");
}

#[test]
fn a_version_1_document_is_read_into_the_current_manifest() {
    let validator = aci_gateway::validate::Validator::standard();
    let limits = aci_gateway::validate::xsd::Limits::default();
    let now = std::time::SystemTime::now();
    let v1_xml = example("v1/sea-f10.xml");
    assert!(String::from_utf8_lossy(&v1_xml).contains("urn:aci-gateway:manifest:1"));
    // Accepted during the transition: F10's data set asks a version 1 document only for what
    // version 1 can express (it has no buyer and no seller).
    let accepted = validator
        .validate_xml(&v1_xml, &limits, now)
        .unwrap_or_else(|r| panic!("{:#?}", r.findings()));
    // The single packaging of version 1 is the item's first packaging now.
    let item = &accepted.manifest.consignments[0].goods_items[0];
    assert_eq!(item.packagings.len(), 1);
    assert_eq!(item.packagings[0].package_type, "CT");
    assert_eq!(item.packagings[0].number_of_packages, 240);
    // Written as a current document, it reads back to the same manifest.
    let current = aci_gateway::validate::xml::to_xml(&accepted.manifest);
    assert!(current.contains("urn:aci-gateway:manifest:2"));
    let again = validator
        .read_xml(current.as_bytes(), &limits)
        .expect("version 2");
    assert_eq!(aci_gateway::validate::digest(&again), accepted.digest);
    // A current document is held to the whole data set, and so is a protobuf filing (the proto
    // has one version): without what version 1 could not say, F10 is refused.
    let manifest =
        aci_gateway::validate::xml::from_xml(validator.schema(), current.as_bytes()).expect("read");
    for refused in [
        validator.validate_xml(current.as_bytes(), &limits, now),
        validator.validate(manifest, now),
    ] {
        let refused = refused.expect_err("F10 requires buyer and seller");
        let missing: Vec<&str> = refused
            .findings()
            .iter()
            .filter(|f| f.rule == "dataset.required")
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(
            missing,
            [
                "itinerary.place_of_unloading",
                "consignments[0].buyer",
                "consignments[0].seller",
                "consignments[0].container_indicator"
            ]
        );
    }
}

/// The benches flood with this filing to measure fairness; were it refused, the flood would
/// measure the refusal, not large filings validated and written.
#[tokio::test]
async fn the_large_filing_of_the_benches_is_accepted_whole() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let template = common::large_xml();
    for lrn in ["LARGE-0001", "LARGE-0002"] {
        let xml = template.replace("{lrn}", lrn);
        assert!(xml.len() > 300 * 1024, "about 390 KB: {} bytes", xml.len());
        carrier
            .submit_xml(xml.into_bytes())
            .await
            .expect("accepted, each copy a filing of its own");
    }
    let xml = template.replace("{lrn}", "LARGE-0001");
    let records = common::log_records(gateway.store());
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].original, xml.as_bytes());
    let manifest = records[0].manifest.as_ref().expect("the manifest");
    assert_eq!(manifest.consignments[0].goods_items.len(), 999);
    gateway.stop().await.expect("stop");
}
