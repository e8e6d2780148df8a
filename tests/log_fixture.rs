//! A log written by an earlier binary (`tests/fixtures/log-v1`, made by its `make.sh` before the
//! ICS2 data model changed the manifest) still opens, verifies record by record, and serves the
//! status of each of its filings exactly as that binary answered it. The log outlives the
//! binary: fields are only ever added, never renumbered.

mod common;

use std::path::{Path, PathBuf};

use aci_gateway::ids::Seq;
use aci_gateway::pb;
use aci_gateway::store::{self, LogError};

use common::GatewayBuilder;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/log-v1")
}

#[tokio::test]
async fn a_log_written_before_the_data_model_change_opens_verifies_and_serves_status() {
    let site = GatewayBuilder::default().site();
    let log_dir = site.data_dir().join("log");
    std::fs::create_dir_all(&log_dir).expect("log dir");
    for segment in std::fs::read_dir(fixture().join("log")).expect("fixture log") {
        let segment = segment.expect("segment").path();
        let name = segment.file_name().expect("name");
        std::fs::copy(&segment, log_dir.join(name)).expect("copy segment");
    }

    // Every record verifies: frames, CRCs, hashes and the chain.
    let mut records = Vec::new();
    store::read_log(&log_dir, Seq(1), |record| -> Result<(), LogError> {
        records.push(record);
        Ok(())
    })
    .expect("the old log verifies");
    assert_eq!(
        records.len(),
        10,
        "7 filings, an amendment, an invalidation, an arrival"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.original_type == "application/xml")
            .count(),
        2,
        "XML originals are kept"
    );

    // A gateway opens it (the index is rebuilt from it) and answers status as before.
    let gateway = aci_gateway::server::Gateway::start(
        &site.config(),
        aci_gateway::server::Options::default(),
    )
    .await
    .expect("the gateway opens the old log");
    assert_eq!(gateway.recovery.last_seq, 10);
    assert!(gateway.recovery.cut.is_none(), "nothing torn");
    let mut carrier = common::client(&common::endpoint(&gateway), &site.carrier()).await;
    let expected = std::fs::read_to_string(fixture().join("status.jsonl")).expect("statuses");
    for line in expected.lines() {
        let before: serde_json::Value = serde_json::from_str(line).expect("a status");
        let mrn = before["mrn"].as_str().expect("mrn");
        let now = carrier.status_by_mrn(mrn).await.expect("status");
        let mut now = pb::to_json(&now);
        // Fields the status gained since the fixture was written hold their defaults.
        for (field, default) in [
            ("items", serde_json::json!([])),
            ("under_control", serde_json::json!(false)),
        ] {
            if before.get(field).is_none()
                && let Some(fields) = now.as_object_mut()
            {
                assert_eq!(fields.remove(field), Some(default), "{mrn}: {field}");
            }
        }
        assert_eq!(now, before, "the status of {mrn}");
    }

    // A carrier retrying a filing made before the upgrade, in the form it was made (version 1
    // XML, or the old protobuf fields), gets its original receipt, not a conflict.
    for lrn in ["AIR-2026-000001", "POST-2026-000001"] {
        let record = records
            .iter()
            .find(|r| r.lrn == lrn && r.kind == pb::store::RecordKind::Filing as i32)
            .unwrap_or_else(|| panic!("{lrn} is in the fixture"));
        let receipt = if record.original_type == "application/xml" {
            carrier.submit_xml(record.original.clone()).await
        } else {
            carrier
                .submit(record.manifest.clone().expect("the manifest as filed"))
                .await
        }
        .unwrap_or_else(|s| panic!("{lrn}: {s:?}"));
        assert_eq!(receipt.mrn, record.mrn, "{lrn}: the original filing");
        assert_eq!(receipt.digest, hex::encode(&record.digest), "{lrn}");
    }
    gateway.stop().await.expect("stop");
}
