//! The filing lifecycle over the carrier API: amend, invalidate, arrive, every forbidden
//! transition with its code, and a history that survives a restart.

mod common;

use aci_gateway::pb::FilingState;
use aci_gateway::pki::Validity;
use aci_gateway::server::{Gateway, Options};
use common::{GatewayBuilder, client, endpoint, sea_filing};
use tonic::Code;
use tonic_types::StatusExt;

fn lifecycle_code(status: &tonic::Status) -> String {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let failure = status
        .get_details_precondition_failure()
        .expect("PreconditionFailure");
    failure.violations[0].r#type.clone()
}

fn events(status: &aci_gateway::pb::FilingStatus) -> Vec<(String, u32)> {
    status
        .history
        .iter()
        .map(|t| (t.event.clone(), t.version))
        .collect()
}

#[tokio::test]
async fn a_filing_is_amended_then_arrives_and_is_then_closed() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let first = carrier
        .submit(sea_filing("LIFE-1"))
        .await
        .expect("registered");

    let mut amended = sea_filing("LIFE-1");
    amended.consignments[0].goods_items[0].description =
        "Spanners and wrenches of alloy steel".into();
    let second = carrier
        .amend(&first.mrn, amended.clone())
        .await
        .expect("amended");
    assert_eq!(second.mrn, first.mrn);
    assert_eq!(second.version, 2);
    assert_ne!(second.digest, first.digest);
    assert!(second.sequence > first.sequence);
    // Retrying the same amendment changes nothing and answers the same receipt.
    assert_eq!(
        carrier
            .amend(&first.mrn, amended)
            .await
            .expect("idempotent"),
        second
    );

    // What an amendment may not change.
    let mut other_mode = sea_filing("LIFE-1");
    other_mode.transport_mode = aci_gateway::pb::TransportMode::InlandWaterway as i32;
    other_mode.filing_type = "F10".into();
    let refused = carrier
        .amend(&first.mrn, other_mode)
        .await
        .expect_err("mode");
    assert_eq!(lifecycle_code(&refused), "LIFECYCLE_IMMUTABLE_FIELD");
    assert!(
        refused.message().contains("transport_mode"),
        "{}",
        refused.message()
    );
    let mut other_document = sea_filing("LIFE-1");
    other_document.consignments[0]
        .transport_document
        .as_mut()
        .expect("doc")
        .number = "BL-NEW".into();
    let refused = carrier
        .amend(&first.mrn, other_document)
        .await
        .expect_err("document");
    assert_eq!(lifecycle_code(&refused), "LIFECYCLE_IMMUTABLE_FIELD");

    // Arrival by the filing's bill of lading (sea_filing gives each LRN its own).
    let arrived = carrier
        .arrive_by_document("BL-LIFE-1")
        .await
        .expect("arrived");
    assert_eq!(arrived.state(), FilingState::Arrived);
    assert_eq!(
        events(&arrived),
        [
            ("registered".into(), 1),
            ("amended".into(), 2),
            ("arrived".into(), 2)
        ]
    );
    let late = carrier
        .amend(&first.mrn, sea_filing("LIFE-1"))
        .await
        .expect_err("after arrival");
    assert_eq!(lifecycle_code(&late), "LIFECYCLE_ARRIVED");
    let late = carrier
        .invalidate(&first.mrn, "changed plans")
        .await
        .expect_err("after arrival");
    assert_eq!(lifecycle_code(&late), "LIFECYCLE_ARRIVED");
    let twice = carrier.arrive(&first.mrn).await.expect_err("twice");
    assert_eq!(lifecycle_code(&twice), "LIFECYCLE_ARRIVED");
    let unknown = carrier
        .arrive_by_document("BL-NOBODY")
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);

    // Operators see every refusal, by code.
    let metrics = common::admin_get(gateway.admin_addr, "/metrics").await;
    assert!(
        metrics.contains("aci_lifecycle_refused_total{code=\"LIFECYCLE_ARRIVED\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aci_lifecycle_refused_total{code=\"LIFECYCLE_IMMUTABLE_FIELD\"} 2"),
        "{metrics}"
    );
    gateway.stop().await.expect("stop");
}

#[tokio::test]
async fn an_invalidated_filing_answers_status_and_refuses_change() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let receipt = carrier
        .submit(sea_filing("INV-1"))
        .await
        .expect("registered");
    let empty = carrier
        .invalidate(&receipt.mrn, "  ")
        .await
        .expect_err("no reason");
    assert_eq!(empty.code(), Code::InvalidArgument);

    let invalidated = carrier
        .invalidate(&receipt.mrn, "shipment cancelled by the shipper")
        .await
        .expect("invalidated");
    assert_eq!(invalidated.state(), FilingState::Invalidated);
    assert_eq!(
        invalidated.history[1].detail,
        "shipment cancelled by the shipper"
    );

    let status = carrier
        .status_by_mrn(&receipt.mrn)
        .await
        .expect("still answers");
    assert_eq!(status, invalidated);
    for refused in [
        carrier
            .amend(&receipt.mrn, sea_filing("INV-1"))
            .await
            .map(|_| ()),
        carrier.invalidate(&receipt.mrn, "again").await.map(|_| ()),
        carrier.arrive(&receipt.mrn).await.map(|_| ()),
    ] {
        assert_eq!(
            lifecycle_code(&refused.expect_err("refused")),
            "LIFECYCLE_INVALIDATED"
        );
    }
    gateway.stop().await.expect("stop");
}

#[tokio::test]
async fn only_the_filer_changes_its_filing() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let receipt = carrier
        .submit(sea_filing("OWN-1"))
        .await
        .expect("registered");
    let stranger = aci_gateway::client::Credentials::Tls(site.pki.carrier_files(
        "stranger",
        common::OTHER_CARRIER,
        Validity::days(1),
    ));
    let mut stranger = client(&endpoint(&gateway), &stranger).await;
    for refused in [
        stranger
            .invalidate(&receipt.mrn, "not mine")
            .await
            .map(|_| ()),
        stranger.arrive(&receipt.mrn).await.map(|_| ()),
        stranger
            .amend(&receipt.mrn, sea_filing("OWN-1"))
            .await
            .map(|_| ()),
    ] {
        assert_eq!(refused.expect_err("refused").code(), Code::NotFound);
    }
    // Nor does it read it: by MRN or by the filer's LRN, it does not exist for a stranger.
    for refused in [
        stranger.status_by_mrn(&receipt.mrn).await,
        stranger.status_by_lrn("OWN-1").await,
    ] {
        assert_eq!(refused.expect_err("not visible").code(), Code::NotFound);
    }
    let status = carrier.status_by_mrn(&receipt.mrn).await.expect("status");
    assert_eq!(status.state(), FilingState::Registered);
    assert_eq!(status.history.len(), 1);
    gateway.stop().await.expect("stop");
}

#[tokio::test]
async fn the_history_after_a_restart_equals_the_history_before() {
    let site = GatewayBuilder::default().site();
    let gateway = Gateway::start(&site.config(), Options::default())
        .await
        .expect("start");
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let a = carrier.submit(sea_filing("HIST-A")).await.expect("a");
    let b = carrier.submit(sea_filing("HIST-B")).await.expect("b");
    let mut amended = sea_filing("HIST-A");
    amended.consignments[0].goods_items[1].description = "Cordless drills".into();
    carrier.amend(&a.mrn, amended).await.expect("amend");
    carrier.arrive(&a.mrn).await.expect("arrive");
    carrier
        .invalidate(&b.mrn, "duplicate booking")
        .await
        .expect("invalidate");
    let before = (
        carrier.status_by_mrn(&a.mrn).await.expect("a"),
        carrier.status_by_mrn(&b.mrn).await.expect("b"),
    );
    gateway.stop().await.expect("stop");

    // The index is thrown away: the history is rebuilt from the log alone.
    std::fs::remove_dir_all(site.data_dir().join("index")).expect("drop index");
    let gateway = Gateway::start(&site.config(), Options::default())
        .await
        .expect("restart");
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let after = (
        carrier.status_by_mrn(&a.mrn).await.expect("a"),
        carrier.status_by_mrn(&b.mrn).await.expect("b"),
    );
    assert_eq!(after, before);
    assert_eq!(
        events(&after.0),
        [
            ("registered".into(), 1),
            ("amended".into(), 2),
            ("arrived".into(), 2)
        ]
    );
    gateway.stop().await.expect("stop");
}

/// The forwarder named as next filing party in the partial filings below.
const FORWARDER: &str = "NL812345678";

fn partial_master(lrn: &str, master_bl: &str) -> aci_gateway::pb::Manifest {
    let mut manifest = sea_filing(lrn);
    manifest.filing_type = "F12".into();
    // The master-only partial set leaves buyer and seller to the house filings.
    manifest.consignments[0].buyer = None;
    manifest.consignments[0].seller = None;
    manifest.next_filing_party = Some(aci_gateway::pb::Party {
        eori: FORWARDER.into(),
        name: "Holland Tool Import BV".into(),
        ..Default::default()
    });
    let document = manifest.consignments[0]
        .transport_document
        .as_mut()
        .expect("doc");
    document.r#type = "N704".into();
    document.number = master_bl.into();
    manifest
}

fn house_filing(
    filer: &str,
    lrn: &str,
    master_bl: &str,
    house_bl: &str,
) -> aci_gateway::pb::Manifest {
    let mut manifest = sea_filing(lrn);
    manifest.filing_type = "F15".into();
    manifest.declarant.as_mut().expect("declarant").eori = filer.into();
    if let Some(address) = manifest.declarant.as_mut().and_then(|d| d.address.as_mut()) {
        address.country = filer[..2].into();
    }
    let consignment = &mut manifest.consignments[0];
    consignment.transport_document = Some(aci_gateway::pb::TransportDocument {
        r#type: "N714".into(),
        number: house_bl.into(),
    });
    consignment.master_document = Some(aci_gateway::pb::TransportDocument {
        r#type: "N704".into(),
        number: master_bl.into(),
    });
    manifest
}

#[tokio::test]
async fn a_partial_filing_is_completed_by_the_named_party_only() {
    let site = GatewayBuilder::default().site();
    let gateway = Gateway::start(&site.config(), Options::default())
        .await
        .expect("start");
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let master = carrier
        .submit(partial_master("PART-1", "MBL-2026-1"))
        .await
        .expect("partial filing registered");
    let status = carrier.status_by_mrn(&master.mrn).await.expect("status");
    assert_eq!(status.state(), FilingState::Incomplete);
    assert_eq!(status.missing_links, ["MBL-2026-1"]);

    // Another party cannot complete it.
    let intruder_eori = "FR12345678901";
    let intruder = aci_gateway::client::Credentials::Tls(site.pki.carrier_files(
        "intruder",
        intruder_eori,
        Validity::days(1),
    ));
    let mut intruder = client(&endpoint(&gateway), &intruder).await;
    let refused = intruder
        .submit(house_filing(intruder_eori, "H-X", "MBL-2026-1", "HBL-X"))
        .await
        .expect_err("not the next filing party");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // Neither whom the partial filing named nor the filing itself is the intruder's business.
    assert!(
        !refused.message().contains(FORWARDER) && !refused.message().contains(&master.mrn),
        "{}",
        refused.message()
    );

    // The named forwarder completes it.
    let forwarder = aci_gateway::client::Credentials::Tls(site.pki.carrier_files(
        "forwarder",
        FORWARDER,
        Validity::days(1),
    ));
    let mut forwarder = client(&endpoint(&gateway), &forwarder).await;
    let house = forwarder
        .submit(house_filing(FORWARDER, "H-1", "MBL-2026-1", "HBL-1"))
        .await
        .expect("house filing");
    let status = carrier.status_by_mrn(&master.mrn).await.expect("status");
    assert_eq!(status.state(), FilingState::Registered);
    assert!(status.missing_links.is_empty());
    let history: Vec<&str> = status.history.iter().map(|t| t.event.as_str()).collect();
    assert_eq!(history, ["registered", "linked", "completed"]);
    assert!(
        status.history[1].detail.contains(&house.mrn),
        "{:?}",
        status.history[1]
    );
    gateway.stop().await.expect("stop");
}
