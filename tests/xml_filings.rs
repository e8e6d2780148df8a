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
