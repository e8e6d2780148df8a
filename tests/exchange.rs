//! Customs-to-Customs exchange between real gateways on loopback: each with its own data
//! directory and certificate (one test PKI per network), forwarding over mutual TLS.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aci_gateway::client::{ClientTls, PeerClient};
use aci_gateway::exchange::PeerReport;
use aci_gateway::pb::store::{LogRecord, RecordKind};
use aci_gateway::pb::{DeliveryState, EnvelopeKind, Manifest, Notice, NoticeKind};
use aci_gateway::pki::{self, Authority, Validity};
use aci_gateway::server::Gateway;
use common::{GatewayBuilder, GatewayProcess, Site, client, endpoint, free_port, sea_filing};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

/// Polls `condition` until it holds, or fails the test after [`WAIT`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The envelopes a gateway received from `origin`, in its log's order.
fn received_from(records: &[LogRecord], origin: &str) -> Vec<LogRecord> {
    records
        .iter()
        .filter(|r| r.kind() == RecordKind::Received && r.origin == origin)
        .cloned()
        .collect()
}

fn received(gateway: &Gateway, origin: &str) -> Vec<LogRecord> {
    received_from(&common::log_records(gateway.store()), origin)
}

fn report(gateway: &Gateway, peer: &str) -> PeerReport {
    gateway
        .exchange()
        .reports()
        .into_iter()
        .find(|r| r.peer == peer)
        .expect("a configured peer")
}

fn peer_endpoint(port: u16) -> Option<String> {
    Some(format!("https://127.0.0.1:{port}"))
}

fn sample(json: &str, lrn: &str) -> Manifest {
    let mut manifest: Manifest = aci_gateway::pb::from_json(json).expect("sample parses");
    manifest.lrn = lrn.to_owned();
    manifest
}

/// A peer gateway B on a fixed port, in the network of `network`.
fn peer_site(network: &Site, id: &str, port: u16) -> Site {
    GatewayBuilder::default()
        .id(id)
        .network_of(network)
        .peer_port(port)
        .peer("TEST-A", None)
        .site()
}

async fn start(site: &Site) -> Gateway {
    Gateway::start(&site.config(), Default::default())
        .await
        .expect("gateway starts")
}

/// Asserts that `records` hold each of `sequences` exactly once, in the origin's log order.
fn assert_exactly_once_in_order(records: &[LogRecord], sequences: &[u64]) {
    let got: Vec<u64> = records.iter().map(|r| r.origin_sequence).collect();
    let mut expected = sequences.to_vec();
    expected.sort_unstable();
    if let Some(i) = (0..got.len().max(expected.len())).find(|&i| got.get(i) != expected.get(i)) {
        panic!(
            "not every record exactly once in order: {} received, {} expected; first difference \
             at {i}: received {:?}, expected {:?}",
            got.len(),
            expected.len(),
            got.get(i),
            expected.get(i)
        );
    }
}

#[tokio::test]
async fn forwards_by_route_fans_out_and_skips_the_unrouted() {
    let network = GatewayBuilder::default().id("TEST-N").site();
    let (b_port, c_port) = (free_port(), free_port());
    let b_site = peer_site(&network, "TEST-B", b_port);
    let c_site = peer_site(&network, "TEST-C", c_port);
    let a_site = GatewayBuilder::default()
        .network_of(&network)
        .peer("TEST-B", peer_endpoint(b_port))
        .peer("TEST-C", peer_endpoint(c_port))
        .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
        .route("peer = \"TEST-C\"\nfirst_entry_countries = [\"NL\"]")
        .route("peer = \"TEST-C\"\nmodes = [\"rail\"]")
        .site();
    let (b, c) = (start(&b_site).await, start(&c_site).await);
    let a = start(&a_site).await;
    let mut carrier = client(&endpoint(&a), &a_site.carrier()).await;

    let sea = carrier.submit(sea_filing("SEA-FWD-1")).await.expect("sea");
    let air = carrier
        .submit(sample(
            include_str!("../schemas/examples/air-f23.json"),
            "AIR-FWD-1",
        ))
        .await
        .expect("air");
    let rail = carrier
        .submit(sample(
            include_str!("../schemas/examples/rail-f51.json"),
            "RAIL-FWD-1",
        ))
        .await
        .expect("rail");
    carrier
        .invalidate(&sea.mrn, "voyage cancelled")
        .await
        .expect("invalidate");

    eventually("B has the sea filing and its invalidation", || {
        received(&b, "TEST-A").len() == 2
    })
    .await;
    eventually(
        "C has the sea filing, its invalidation and the rail filing",
        || received(&c, "TEST-A").len() == 3,
    )
    .await;
    let at_b = received(&b, "TEST-A");
    assert_eq!(at_b[0].mrn, sea.mrn);
    assert_eq!(at_b[0].envelope_kind(), EnvelopeKind::Filing);
    assert_eq!(
        at_b[0].origin_digest, sea.digest,
        "the origin's digest travels"
    );
    assert_eq!(at_b[0].origin_sequence, sea.sequence);
    assert!(at_b[0].manifest.is_some(), "the canonical manifest travels");
    assert_eq!(at_b[1].mrn, sea.mrn);
    assert_eq!(at_b[1].envelope_kind(), EnvelopeKind::Invalidation);
    assert_eq!(at_b[1].reason, "voyage cancelled");
    let at_c: Vec<(String, EnvelopeKind)> = received(&c, "TEST-A")
        .iter()
        .map(|r| (r.mrn.clone(), r.envelope_kind()))
        .collect();
    assert_eq!(
        at_c,
        [
            (sea.mrn.clone(), EnvelopeKind::Filing),
            (rail.mrn.clone(), EnvelopeKind::Filing),
            (sea.mrn.clone(), EnvelopeKind::Invalidation),
        ]
    );
    // No route, no delivery: nobody received the air filing.
    for gateway in [&b, &c] {
        assert!(received(gateway, "TEST-A").iter().all(|r| r.mrn != air.mrn));
    }

    // The filing's status tells where it stands with each administration.
    eventually("A's cursors reach its log's end", || {
        let durable = a
            .store()
            .stats()
            .durable_seq
            .load(std::sync::atomic::Ordering::Acquire);
        report(&a, "TEST-B").cursor == durable && report(&a, "TEST-C").cursor == durable
    })
    .await;
    let status = carrier.status_by_mrn(&sea.mrn).await.expect("status");
    let deliveries: BTreeMap<String, DeliveryState> = status
        .deliveries
        .iter()
        .map(|d| (d.administration.clone(), d.state()))
        .collect();
    assert_eq!(
        deliveries,
        BTreeMap::from([
            ("TEST-B".to_owned(), DeliveryState::Acknowledged),
            ("TEST-C".to_owned(), DeliveryState::Acknowledged),
        ])
    );
    let air_status = carrier.status_by_mrn(&air.mrn).await.expect("status");
    assert!(
        air_status.deliveries.is_empty(),
        "the air filing goes nowhere"
    );
    // A refusal the forwarder recorded shows with its code (injected here: these peers refuse
    // nothing this gateway sends).
    a.store()
        .index()
        .record_refusal("TEST-C", rail.sequence, "INVALID_ENVELOPE", "test refusal")
        .expect("record");
    let rail_status = carrier.status_by_mrn(&rail.mrn).await.expect("status");
    assert_eq!(rail_status.deliveries.len(), 1);
    let refused = &rail_status.deliveries[0];
    assert_eq!(
        (
            refused.state(),
            refused.refusal_code.as_str(),
            refused.sequence
        ),
        (DeliveryState::Refused, "INVALID_ENVELOPE", rail.sequence)
    );

    // Operators see each peer: connected, caught up.
    let peers = common::admin_get(a.admin_addr, "/peers").await;
    let body = peers.split("\r\n\r\n").nth(1).expect("body");
    let reports: Vec<serde_json::Value> = serde_json::from_str(body).expect("JSON");
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert_eq!(r["connected"], true, "{r}");
        assert_eq!(r["lag_records"], 0, "{r}");
    }
    let metrics = common::admin_get(a.admin_addr, "/metrics").await;
    assert!(
        metrics.contains("aci_peer_delivered_total{peer=\"TEST-B\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aci_peer_delivered_total{peer=\"TEST-C\"} 3"),
        "{metrics}"
    );
    let b_metrics = common::admin_get(b.admin_addr, "/metrics").await;
    assert!(
        b_metrics.contains("aci_received_envelopes_total{peer=\"TEST-A\",outcome=\"stored\"} 2"),
        "{b_metrics}"
    );

    // A received envelope is never forwarded again: B has no forwarder, and A does not send
    // back what it received (nothing here routes received records).
    a.stop().await.expect("stop A");
    b.stop().await.expect("stop B");
    c.stop().await.expect("stop C");
}

#[tokio::test]
async fn a_peer_down_under_load_gets_everything_once_in_order_when_back() {
    let network = GatewayBuilder::default().id("TEST-N").site();
    let b_port = free_port();
    let b_site = peer_site(&network, "TEST-B", b_port);
    let a_site = GatewayBuilder::default()
        .network_of(&network)
        .peer("TEST-B", peer_endpoint(b_port))
        .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
        .site();
    let a = start(&a_site).await;
    let mut carrier = client(&endpoint(&a), &a_site.carrier()).await;

    // B is not there yet: A queues, retries, and reports its lag.
    let mut sequences = Vec::new();
    for i in 0..150 {
        let receipt = carrier
            .submit(sea_filing(&format!("DOWN-{i:04}")))
            .await
            .expect("filed");
        // What a carrier was told is durable counts as lag at once, not once it is indexed.
        assert_eq!(report(&a, "TEST-B").lag_records, receipt.sequence);
        sequences.push(receipt.sequence);
    }
    eventually("A notices B is away", || report(&a, "TEST-B").retries >= 1).await;
    let queued = carrier.status_by_lrn("DOWN-0000").await.expect("status");
    assert_eq!(queued.deliveries.len(), 1);
    assert_eq!(queued.deliveries[0].state(), DeliveryState::Queued);
    let away = report(&a, "TEST-B");
    assert!(!away.connected);
    assert_eq!(away.cursor, 0);
    assert_eq!(away.lag_records, 150);
    assert!(away.last_error.is_some(), "{away:?}");

    // B comes up while filings keep arriving, goes away in the middle, comes back.
    let b = start(&b_site).await;
    let filer = tokio::spawn({
        let mut carrier = carrier.clone();
        async move {
            let mut sequences = Vec::new();
            for i in 150..450 {
                let receipt = carrier
                    .submit(sea_filing(&format!("DOWN-{i:04}")))
                    .await
                    .expect("filed");
                sequences.push(receipt.sequence);
            }
            sequences
        }
    });
    eventually("B receives some", || received(&b, "TEST-A").len() >= 100).await;
    b.stop().await.expect("B stops");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = start(&b_site).await;
    sequences.extend(filer.await.expect("filer"));
    eventually("A's lag returns to zero", || {
        let r = report(&a, "TEST-B");
        r.lag_records == 0 && r.connected
    })
    .await;
    assert_exactly_once_in_order(&received(&b, "TEST-A"), &sequences);
    let acknowledged = carrier.status_by_lrn("DOWN-0000").await.expect("status");
    assert_eq!(
        acknowledged.deliveries[0].state(),
        DeliveryState::Acknowledged
    );
    let caught_up = report(&a, "TEST-B");
    assert_eq!(caught_up.lag_seconds, 0.0);
    assert!(caught_up.retries >= 2, "{caught_up:?}");
    a.stop().await.expect("stop A");
    b.stop().await.expect("stop B");
}

#[tokio::test]
async fn sigkill_of_the_sender_mid_forwarding_loses_and_duplicates_nothing() {
    let network = GatewayBuilder::default().id("TEST-N").site();
    let b_port = free_port();
    let b_site = peer_site(&network, "TEST-B", b_port);
    let a_site = GatewayBuilder::default()
        .network_of(&network)
        .peer("TEST-B", peer_endpoint(b_port))
        .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
        .site();
    // A backlog builds while B is away, so that A is killed in the middle of sending it.
    let a = GatewayProcess::start(&a_site);
    let carrier = client(&a.endpoint, &a_site.carrier()).await;
    let lrns = (0..4000).map(|i| format!("KILL-A-{i:05}")).collect();
    let mut sequences = common::file_bulk(&carrier, lrns, 1).await;
    let b = start(&b_site).await;
    let b_durable = b.store().durable();
    eventually("B receives the first records", || {
        *b_durable.borrow() >= 300
    })
    .await;
    a.kill();
    let at_kill = *b_durable.borrow();
    assert!(
        at_kill < sequences.len() as u64,
        "A was killed mid-forwarding ({at_kill} of {})",
        sequences.len()
    );

    let a = GatewayProcess::start(&a_site);
    let carrier = client(&a.endpoint, &a_site.carrier()).await;
    let lrns = (4000..4050).map(|i| format!("KILL-A-{i:05}")).collect();
    sequences.extend(common::file_bulk(&carrier, lrns, 1).await);
    eventually("B has every filing", || {
        *b_durable.borrow() >= sequences.len() as u64
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_exactly_once_in_order(&received(&b, "TEST-A"), &sequences);
    let metrics = common::admin_get(b.admin_addr, "/metrics").await;
    println!(
        "killed at {at_kill} of 4000; redeliveries B absorbed: {}",
        metrics
            .lines()
            .find(|l| l.starts_with("aci_received_envelopes_total")
                && l.contains("outcome=\"duplicate\""))
            .unwrap_or("none")
    );
    drop(a);
    b.stop().await.expect("stop B");
}

#[tokio::test]
async fn a_receiver_killed_between_its_fsync_and_its_ack_absorbs_the_redelivery() {
    let network = GatewayBuilder::default().id("TEST-N").site();
    let b_port = free_port();
    let b_site = peer_site(&network, "TEST-B", b_port);
    let a_site = GatewayBuilder::default()
        .network_of(&network)
        .peer("TEST-B", peer_endpoint(b_port))
        .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
        .site();
    // B aborts right after its 40th new envelope is durable, before acknowledging it.
    let b = GatewayProcess::start_with_env(&b_site, &[("ACI_FAULT_ABORT_BEFORE_ACK", "40")]);
    let a = start(&a_site).await;
    let mut carrier = client(&endpoint(&a), &a_site.carrier()).await;
    let mut sequences = Vec::new();
    for i in 0..100 {
        let receipt = carrier
            .submit(sea_filing(&format!("KILL-B-{i:04}")))
            .await
            .expect("filed");
        sequences.push(receipt.sequence);
    }
    let crashed = b.wait_exit(WAIT);
    assert!(!crashed.success(), "B aborted: {crashed}");
    let before_restart = received_from(&b_site.log(), "TEST-A");
    // The 40th was durable (with the rest of its group commit) before the crash.
    assert!(
        before_restart.len() >= 40,
        "{} durable",
        before_restart.len()
    );
    assert!(
        report(&a, "TEST-B").cursor < sequences[39],
        "A never heard of the 40th"
    );

    let b = GatewayProcess::start(&b_site);
    eventually("A's lag returns to zero", || {
        report(&a, "TEST-B").lag_records == 0
    })
    .await;
    let metrics = common::admin_get(b.admin(), "/metrics").await;
    let duplicates = common::metric(
        &metrics,
        "aci_received_envelopes_total{peer=\"TEST-A\",outcome=\"duplicate\"}",
    );
    assert!(
        duplicates >= 1,
        "B absorbed the redelivery of the 40th: {metrics}"
    );
    assert!(report(&a, "TEST-B").duplicates >= 1);
    // A stops first: `terminate` blocks this test's runtime, which A runs on.
    a.stop().await.expect("stop A");
    assert!(b.terminate().success());
    assert_exactly_once_in_order(&received_from(&b_site.log(), "TEST-A"), &sequences);
}

/// Client files for an administration's certificate issued by `ca`.
fn admin_files(site: &Site, name: &str, ca: &Authority, id: &str) -> ClientTls {
    let mut files = site
        .pki
        .client_files(name, ca, &pki::admin_uri(id), Validity::days(30));
    files.ca = site.pki.dir.join("admin-ca.pem");
    files
}

#[tokio::test]
async fn wrong_certificates_and_identities_are_refused_both_ways() {
    let network = GatewayBuilder::default().id("TEST-N").site();
    let b_port = free_port();
    let b_site = peer_site(&network, "TEST-B", b_port);
    // A expects B's certificate to say TEST-B; another gateway of the network listens there.
    let impostor_site = peer_site(&network, "TEST-X", b_port);
    let a_site = GatewayBuilder::default()
        .network_of(&network)
        .peer("TEST-B", peer_endpoint(b_port))
        .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
        .site();
    let impostor = start(&impostor_site).await;
    let a = start(&a_site).await;
    let mut carrier = client(&endpoint(&a), &a_site.carrier()).await;
    carrier
        .submit(sea_filing("IMPOSTOR-1"))
        .await
        .expect("filed");
    eventually("A refuses the impostor", || {
        report(&a, "TEST-B").retries >= 1
    })
    .await;
    let refused = report(&a, "TEST-B");
    assert!(!refused.connected);
    assert!(
        refused
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("TEST-B"),
        "{refused:?}"
    );
    assert!(received(&impostor, "TEST-A").is_empty());
    impostor.stop().await.expect("stop impostor");

    // A gateway whose certificate comes from another CA is not trusted either.
    let stranger_site = GatewayBuilder::default()
        .id("TEST-B")
        .peer_port(b_port)
        .peer("TEST-A", None)
        .site();
    let stranger = start(&stranger_site).await;
    let retries = report(&a, "TEST-B").retries;
    eventually("A refuses the stranger", || {
        report(&a, "TEST-B").retries > retries
    })
    .await;
    assert!(!report(&a, "TEST-B").connected);
    assert!(received(&stranger, "TEST-A").is_empty());
    stranger.stop().await.expect("stop stranger");

    // The receiving side: B takes deliveries from configured peers only.
    let b = start(&b_site).await;
    eventually("the real B gets the filing", || {
        received(&b, "TEST-A").len() == 1
    })
    .await;
    let b_endpoint = format!("https://127.0.0.1:{b_port}");
    let envelope = aci_gateway::pb::Envelope {
        origin: "TEST-Z".into(),
        origin_sequence: 1,
        kind: EnvelopeKind::Filing as i32,
        mrn: "26GB00000000000010".into(),
        manifest: Some(Box::new(sea_filing("Z-1"))),
        ..Default::default()
    };
    // A valid administration certificate of a gateway B does not exchange with.
    let unknown = admin_files(&b_site, "unknown-admin", &network.pki.admin_ca, "TEST-Z");
    let mut client_z = PeerClient::connect(&b_endpoint, "TEST-B", &unknown)
        .await
        .expect("TLS is fine");
    let refused = client_z
        .deliver(tokio_stream::iter([envelope.clone()]))
        .await
        .expect_err("not a configured peer");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = client_z.subscribe(0).await.expect_err("no feed for it");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // A certificate from a CA B does not trust for peers (the carrier CA).
    let carrier_issued = admin_files(
        &b_site,
        "carrier-ca-admin",
        &network.pki.carrier_ca,
        "TEST-A",
    );
    let outcome = match PeerClient::connect(&b_endpoint, "TEST-B", &carrier_issued).await {
        Err(e) => Err(e.to_string()),
        Ok(mut client) => client
            .deliver(tokio_stream::iter([envelope.clone()]))
            .await
            .map(|_| ())
            .map_err(|s| s.to_string()),
    };
    assert!(outcome.is_err(), "an untrusted certificate is refused");
    // A configured peer cannot deliver in another origin's name.
    let a_files = admin_files(&b_site, "a-again", &network.pki.admin_ca, "TEST-A");
    let mut client_a = PeerClient::connect(&b_endpoint, "TEST-B", &a_files)
        .await
        .expect("connects");
    let mut acks = client_a
        .deliver(tokio_stream::iter([envelope]))
        .await
        .expect("stream opens");
    let ack = acks.message().await.expect("ack").expect("one ack");
    match ack.outcome {
        Some(aci_gateway::pb::delivery_ack::Outcome::Refused(r)) => {
            assert_eq!(r.code, "ORIGIN_MISMATCH")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        received(&b, "TEST-Z").is_empty(),
        "nothing stored for the impostor origin"
    );
    a.stop().await.expect("stop A");
    b.stop().await.expect("stop B");
}

/// A receiver stores each manifest as it came, without decoding it: what arrives must still
/// decode, and a manifest that would not is refused with a code, durably, while the stream
/// goes on; a redelivery of it gets the same refusal.
#[tokio::test]
async fn a_manifest_that_does_not_decode_is_refused_and_the_stream_goes_on() {
    use aci_gateway::pb::EncodedEnvelope;
    use aci_gateway::pb::delivery_ack::Outcome;
    use prost::Message;
    let network = GatewayBuilder::default().id("TEST-N").site();
    let b_port = free_port();
    let b_site = peer_site(&network, "TEST-B", b_port);
    let b = start(&b_site).await;
    let a_files = admin_files(&b_site, "a", &network.pki.admin_ca, "TEST-A");
    let mut client_a =
        PeerClient::connect(&format!("https://127.0.0.1:{b_port}"), "TEST-B", &a_files)
            .await
            .expect("connects");
    let envelope = |sequence: u64, manifest: Vec<u8>| EncodedEnvelope {
        origin: "TEST-A".into(),
        origin_sequence: sequence,
        kind: EnvelopeKind::Filing as i32,
        mrn: aci_gateway::ids::Mrn::issue(2026, "GB", aci_gateway::ids::Seq(sequence)).to_string(),
        manifest_parts: vec![manifest.into()],
        ..Default::default()
    };
    let good = |lrn: &str| {
        let mut manifest = sea_filing(lrn).encode_to_vec();
        // A field this build does not know: stored and passed on as it came.
        prost::encoding::string::encode(4000, &"later".to_owned(), &mut manifest);
        manifest
    };
    let mut bad = good("A-2");
    // A known field (2, the LRN) whose length runs past the manifest's end.
    bad.extend_from_slice(&[(2 << 3) | 2, 10, b'x']);
    let sent = [
        envelope(1, good("A-1")),
        envelope(2, bad),
        envelope(3, good("A-3")),
    ];
    let mut acks = client_a
        .deliver(tokio_stream::iter(sent.clone()))
        .await
        .expect("stream opens");
    let mut outcomes = Vec::new();
    while let Some(ack) = acks.message().await.expect("acks") {
        outcomes.push((ack.origin_sequence, ack.outcome.expect("an outcome")));
        if outcomes.len() == 3 {
            break;
        }
    }
    assert!(
        matches!(outcomes[0], (1, Outcome::Delivered(_))),
        "{outcomes:?}"
    );
    match &outcomes[1] {
        (2, Outcome::Refused(r)) => {
            assert_eq!(r.code, "INVALID_ENVELOPE");
            assert!(r.message.contains("manifest"), "{r:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        matches!(outcomes[2], (3, Outcome::Delivered(_))),
        "{outcomes:?}"
    );
    let stored = received(&b, "TEST-A");
    assert_eq!(stored.len(), 2);
    for (record, sent) in stored.iter().zip([&sent[0], &sent[2]]) {
        let expected = Manifest::decode(sent.manifest_parts[0].as_ref()).expect("decodes");
        assert_eq!(record.manifest.as_deref(), Some(&expected));
    }
    // The refusal was made durable: redelivered, the envelope gets it again.
    let mut acks = client_a
        .deliver(tokio_stream::iter([sent[1].clone()]))
        .await
        .expect("stream opens");
    let ack = acks.message().await.expect("ack").expect("one ack");
    match ack.outcome {
        Some(Outcome::Refused(r)) => assert_eq!(r.code, "INVALID_ENVELOPE"),
        other => panic!("expected the refusal again, got {other:?}"),
    }
    b.stop().await.expect("stop B");
}

#[tokio::test]
async fn notices_reach_the_carrier_stream_and_referral_answers_reach_the_peer() {
    let network = GatewayBuilder::default().id("TEST-N").site();
    let b_port = free_port();
    let b_site = peer_site(&network, "TEST-B", b_port);
    let a_port = free_port();
    let a_site = GatewayBuilder::default()
        .network_of(&network)
        .peer_port(a_port)
        .peer("TEST-B", peer_endpoint(b_port))
        .peer("TEST-C", None)
        .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
        .route("peer = \"TEST-C\"\nmodes = [\"air\"]")
        .site();
    let b = start(&b_site).await;
    let a = start(&a_site).await;
    let mut carrier = client(&endpoint(&a), &a_site.carrier()).await;
    let sea = carrier.submit(sea_filing("NOTICE-1")).await.expect("filed");
    let air = carrier
        .submit(sample(
            include_str!("../schemas/examples/air-f23.json"),
            "NOTICE-AIR",
        ))
        .await
        .expect("filed");
    let mut early = carrier.watch_notifications(0).await.expect("watch");
    eventually("B has the filing", || received(&b, "TEST-A").len() == 1).await;

    // B's operator sends do-not-load, as B (its gateway certificate).
    let a_endpoint = format!("https://127.0.0.1:{a_port}");
    let b_files = ClientTls {
        ca: b_site.pki.dir.join("admin-ca.pem"),
        cert: b_site.pki.dir.join("gateway.pem"),
        key: b_site.pki.dir.join("gateway.key"),
    };
    let mut as_b = PeerClient::connect(&a_endpoint, "TEST-A", &b_files)
        .await
        .expect("B connects to A");
    let do_not_load = Notice {
        notice_id: "B-RISK-1".into(),
        mrn: sea.mrn.clone(),
        kind: NoticeKind::DoNotLoad as i32,
        text: "container MSCU1234565: do not load".into(),
        deadline: None,
        ..Default::default()
    };
    let ack = as_b
        .notify(do_not_load.clone())
        .await
        .expect("notice taken");
    assert!(!ack.duplicate);
    let again = as_b.notify(do_not_load).await.expect("a retry is fine");
    assert_eq!((again.sequence, again.duplicate), (ack.sequence, true));

    let first = tokio::time::timeout(WAIT, early.message())
        .await
        .expect("in time")
        .expect("stream")
        .expect("a notification");
    assert_eq!(first.mrn, sea.mrn);
    assert_eq!(first.kind(), NoticeKind::DoNotLoad);
    assert_eq!(first.administration, "TEST-B");
    assert_eq!(first.sequence, ack.sequence);
    assert_eq!(first.lrn, "NOTICE-1");
    drop(early);

    // A carrier that connects after the notice was sent still gets it.
    let mut late = carrier.watch_notifications(0).await.expect("watch");
    let replayed = late.message().await.expect("stream").expect("the notice");
    assert_eq!(replayed.notice_id, "B-RISK-1");

    // A referral; the carrier, resuming after the first notice, gets only the new one.
    let referral = Notice {
        notice_id: "B-REF-2".into(),
        mrn: sea.mrn.clone(),
        kind: NoticeKind::ReferralInformation as i32,
        text: "send the packing list".into(),
        deadline: Some(prost_types::Timestamp {
            seconds: 1_900_000_000,
            nanos: 0,
        }),
        ..Default::default()
    };
    as_b.notify(referral).await.expect("referral taken");
    let mut resumed = carrier
        .watch_notifications(first.sequence)
        .await
        .expect("watch");
    let next = resumed
        .message()
        .await
        .expect("stream")
        .expect("the referral");
    assert_eq!(next.notice_id, "B-REF-2");
    assert!(next.deadline.is_some());

    // The status shows both notices; the answer to the referral travels back to B.
    let status = carrier
        .answer_referral(
            &sea.mrn,
            "B-REF-2",
            "packing list attached to the house bills",
        )
        .await
        .expect("answered");
    assert_eq!(status.notices.len(), 2);
    assert_eq!(
        status.notices[1].answer,
        "packing list attached to the house bills"
    );
    let refused = carrier
        .answer_referral(&sea.mrn, "B-RISK-1", "ok")
        .await
        .expect_err("do-not-load is not a referral");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    eventually("B receives the answer", || {
        received(&b, "TEST-A")
            .iter()
            .any(|r| r.envelope_kind() == EnvelopeKind::ReferralAnswer)
    })
    .await;
    let answer = received(&b, "TEST-A")
        .into_iter()
        .find(|r| r.envelope_kind() == EnvelopeKind::ReferralAnswer)
        .expect("answer");
    assert_eq!(answer.mrn, sea.mrn);
    assert_eq!(answer.reason, "packing list attached to the house bills");
    assert_eq!(
        answer.notice.map(|n| n.notice_id).as_deref(),
        Some("B-REF-2")
    );

    // B may not send notices about filings not shared with it.
    let not_shared = as_b
        .notify(Notice {
            notice_id: "B-RISK-3".into(),
            mrn: air.mrn.clone(),
            kind: NoticeKind::DoNotLoad as i32,
            ..Default::default()
        })
        .await
        .expect_err("the air filing went to C only");
    assert_eq!(not_shared.code(), Code::NotFound);
    let bad = as_b
        .notify(Notice {
            notice_id: "B-RISK-4".into(),
            mrn: sea.mrn.clone(),
            kind: 0,
            ..Default::default()
        })
        .await
        .expect_err("a notice has a kind");
    assert_eq!(bad.code(), Code::InvalidArgument);

    // Another carrier sees none of it.
    let other = a_site.carrier_as(common::OTHER_CARRIER);
    let mut other = client(&endpoint(&a), &other).await;
    let mut nothing = other.watch_notifications(0).await.expect("watch");
    let quiet = tokio::time::timeout(Duration::from_millis(300), nothing.message()).await;
    assert!(quiet.is_err(), "no notification for another carrier");
    let metrics = common::admin_get(a.admin_addr, "/metrics").await;
    assert!(
        metrics.contains(
            "aci_notices_received_total{peer=\"TEST-B\",kind=\"NOTICE_KIND_DO_NOT_LOAD\"} 1"
        ),
        "{metrics}"
    );
    a.stop().await.expect("stop A");
    b.stop().await.expect("stop B");
}

#[tokio::test]
async fn a_pull_feed_resumes_from_its_cursor_exactly_once() {
    let network = GatewayBuilder::default().id("TEST-N").site();
    let a_port = free_port();
    let a_site = GatewayBuilder::default()
        .network_of(&network)
        .peer_port(a_port)
        .peer("TEST-C", None)
        .peer("TEST-D", None)
        .route("peer = \"TEST-C\"\nmodes = [\"sea\"]")
        .route("peer = \"TEST-D\"\nmodes = [\"air\"]")
        .site();
    let a = start(&a_site).await;
    let mut carrier = client(&endpoint(&a), &a_site.carrier()).await;
    let mut sea_sequences = Vec::new();
    for i in 0..30 {
        let receipt = carrier
            .submit(sea_filing(&format!("PULL-{i:03}")))
            .await
            .expect("filed");
        sea_sequences.push(receipt.sequence);
        carrier
            .submit(sample(
                include_str!("../schemas/examples/air-f23.json"),
                &format!("PULL-AIR-{i:03}"),
            ))
            .await
            .expect("filed");
    }
    let c_files = admin_files(&a_site, "c", &network.pki.admin_ca, "TEST-C");
    let a_endpoint = format!("https://127.0.0.1:{a_port}");
    let mut as_c = PeerClient::connect(&a_endpoint, "TEST-A", &c_files)
        .await
        .expect("C connects");
    let mut got = Vec::new();
    let mut feed = as_c.subscribe(0).await.expect("feed");
    while got.len() < 12 {
        let envelope = feed.message().await.expect("stream").expect("envelope");
        assert_eq!(envelope.origin, "TEST-A");
        got.push(envelope.origin_sequence);
    }
    drop(feed);
    // Resuming from the last one seen: the rest, then what is filed meanwhile.
    let mut feed = as_c
        .subscribe(*got.last().expect("some"))
        .await
        .expect("feed");
    for i in 30..35 {
        let receipt = carrier
            .submit(sea_filing(&format!("PULL-{i:03}")))
            .await
            .expect("filed");
        sea_sequences.push(receipt.sequence);
    }
    while got.len() < sea_sequences.len() {
        let envelope = tokio::time::timeout(WAIT, feed.message())
            .await
            .expect("in time")
            .expect("stream")
            .expect("envelope");
        assert_eq!(
            envelope.kind(),
            EnvelopeKind::Filing,
            "only C's feed: sea filings"
        );
        got.push(envelope.origin_sequence);
    }
    assert_eq!(got, sea_sequences, "every envelope exactly once, in order");
    let quiet = tokio::time::timeout(Duration::from_millis(300), feed.message()).await;
    assert!(quiet.is_err(), "nothing more for C");
    // The cursor C resumed from counts as acknowledged.
    assert_eq!(report(&a, "TEST-C").cursor, sea_sequences[11]);
    assert_eq!(report(&a, "TEST-C").mode, "pull");
    a.stop().await.expect("stop A");
}

#[tokio::test]
async fn the_peer_listener_answers_health_checks_and_reflection() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let network = GatewayBuilder::default().id("TEST-N").site();
    let a_port = free_port();
    let a_site = GatewayBuilder::default()
        .network_of(&network)
        .peer_port(a_port)
        .peer("TEST-C", None)
        .site();
    let a = start(&a_site).await;
    let files = admin_files(&a_site, "c-tools", &network.pki.admin_ca, "TEST-C");
    let tls = aci_gateway::tls::client_config(&files.cert, &files.key, &files.ca).expect("tls");
    let channel =
        aci_gateway::exchange::connect(&format!("https://127.0.0.1:{a_port}"), "TEST-A", tls)
            .await
            .expect("connects");
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "aci.v1.PeerExchange".into(),
        })
        .await
        .expect("health check");
    assert_eq!(
        health.into_inner().status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers.message().await.expect("answer").expect("one");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected answer {answer:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"aci.v1.PeerExchange"), "{names:?}");
    a.stop().await.expect("stop A");
}
