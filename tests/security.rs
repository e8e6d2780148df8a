//! The gateway attacked as a holder of a valid certificate would attack it, and as a stranger
//! would: one test per finding of the security review, each against a real gateway.

mod common;

use aci_gateway::pb::{FilingState, Manifest, Party, TransportDocument};
use common::{GatewayBuilder, client, endpoint, sea_filing};
use tonic::Code;

/// The carrier that files the partial (master-level) filing, and the one it names.
const MASTER_FILER: &str = common::CARRIER;
const NAMED_PARTY: &str = "NL812345678";
const INTRUDER: &str = "FR12345678901";

/// A partial filing (F12) of master bill `master_bl`, filed by `filer`, naming `next_party`.
fn partial(filer: &str, lrn: &str, master_bl: &str, next_party: &str) -> Manifest {
    let mut manifest = as_filer(sea_filing(lrn), filer);
    manifest.filing_type = "F12".into();
    manifest.next_filing_party = Some(Party {
        eori: next_party.into(),
        name: "Next filing party".into(),
        ..Default::default()
    });
    let document = manifest.consignments[0]
        .transport_document
        .as_mut()
        .expect("document");
    document.r#type = "N704".into();
    document.number = master_bl.into();
    manifest
}

/// A house-level filing (F15) under master bill `master_bl`.
fn house(filer: &str, lrn: &str, master_bl: &str, house_bl: &str) -> Manifest {
    let mut manifest = as_filer(sea_filing(lrn), filer);
    manifest.filing_type = "F15".into();
    let consignment = &mut manifest.consignments[0];
    consignment.transport_document = Some(TransportDocument {
        r#type: "N714".into(),
        number: house_bl.into(),
    });
    consignment.master_document = Some(TransportDocument {
        r#type: "N704".into(),
        number: master_bl.into(),
    });
    manifest
}

fn as_filer(mut manifest: Manifest, filer: &str) -> Manifest {
    let declarant = manifest.declarant.as_mut().expect("declarant");
    declarant.eori = filer.into();
    if let Some(address) = declarant.address.as_mut() {
        address.country = filer[..2].into();
    }
    manifest
}

/// Finding 1: carrier B cannot take over carrier A's partial filing by filing its own partial
/// filing of the same master document, and learns nothing of A's filing or whom it named.
#[tokio::test]
async fn a_partial_filing_cannot_be_taken_over_and_refusals_reveal_nobody() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let endpoint = endpoint(&gateway);
    let mut master_filer = client(&endpoint, &site.carrier()).await;
    let mut intruder = client(&endpoint, &site.carrier_as(INTRUDER)).await;
    let mut named = client(&endpoint, &site.carrier_as(NAMED_PARTY)).await;

    let master = master_filer
        .submit(partial(MASTER_FILER, "SEC-M-1", "MBL-SEC-1", NAMED_PARTY))
        .await
        .expect("the first partial filing of the master document");

    // The intruder's house-level filing is refused without naming the party or the filing.
    let refused = intruder
        .submit(house(INTRUDER, "SEC-H-X", "MBL-SEC-1", "HBL-SEC-X"))
        .await
        .expect_err("not the named party");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let told = format!("{refused:?}");
    for secret in [NAMED_PARTY, MASTER_FILER, master.mrn.as_str()] {
        assert!(
            !told.contains(secret),
            "the refusal reveals {secret}: {told}"
        );
    }

    // Its own partial filing of the same master document, naming itself, is refused: first wins.
    let refused = intruder
        .submit(partial(INTRUDER, "SEC-M-X", "MBL-SEC-1", INTRUDER))
        .await
        .expect_err("the master document already awaits completion");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let report = aci_gateway::ingest::status::report_of(&refused).expect("report");
    assert_eq!(report.violations[0].code, "81");
    assert_eq!(report.violations[0].rule, "store.partial_filing_exists");
    let told = format!("{refused:?}");
    for secret in [NAMED_PARTY, MASTER_FILER, master.mrn.as_str()] {
        assert!(
            !told.contains(secret),
            "the refusal reveals {secret}: {told}"
        );
    }
    // ... and so is its house-level filing under it still.
    intruder
        .submit(house(INTRUDER, "SEC-H-X2", "MBL-SEC-1", "HBL-SEC-X2"))
        .await
        .expect_err("still not the named party");

    // The named party completes the filing as it was meant to.
    named
        .submit(house(NAMED_PARTY, "SEC-H-1", "MBL-SEC-1", "HBL-SEC-1"))
        .await
        .expect("the named party's house-level filing");
    let status = master_filer
        .status_by_mrn(&master.mrn)
        .await
        .expect("status");
    assert_eq!(status.state(), FilingState::Registered);
    assert!(status.missing_links.is_empty());
    gateway.stop().await.expect("stop");
}
