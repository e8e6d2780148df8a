//! Jepsen-style: gateways A → B as real processes, B behind a fault proxy, carriers filing
//! continuously (some filings invalid, in-doubt ones retried with their LRN), and a nemesis
//! that SIGKILLs and SIGSTOPs the gateways and breaks the network between them. A checker then
//! classifies every operation and asserts that nothing acknowledged was lost or duplicated.
//!
//! `ACI_NEMESIS_SEED` replays a run's choices; `ACI_NEMESIS_SECS` runs longer than CI's minute.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aci_gateway::client::{CarrierClient, Credentials};
use aci_gateway::pb::Manifest;
use aci_gateway::pb::store::{LogRecord, RecordKind};
use aci_gateway::store::record::original_of;
use common::proxy::{FaultProxy, Flow};
use common::{GatewayBuilder, GatewayProcess, Rng, Site, free_port, sea_filing};
use prost::Message;
use tonic::Code;

/// How long a carrier waits for an answer before it counts the call as in doubt.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// After the faults stop, everything must be delivered and resolved within this.
const RECOVERY_BOUND: Duration = Duration::from_secs(90);

/// What the carriers saw.
#[derive(Debug, Default)]
struct History {
    /// LRN → (sequence, MRN, the canonical bytes sent) of every acknowledged filing.
    acknowledged: BTreeMap<String, (u64, String, Vec<u8>)>,
    /// LRNs refused by validation (never to be stored).
    refused: BTreeSet<String>,
    /// LRNs whose last call ended without an answer; retried until they have one.
    in_doubt: BTreeSet<String>,
    /// Calls that ended in doubt, in all (one LRN can be in doubt several times).
    in_doubt_calls: u64,
    /// A retry answered with a different receipt than the first: must stay 0.
    receipt_changes: u64,
    calls: u64,
}

/// One gateway process and its site.
struct Node {
    name: &'static str,
    site: Site,
    process: Option<GatewayProcess>,
    paused: bool,
}

impl Node {
    fn start(&mut self) {
        let process = tokio::task::block_in_place(|| GatewayProcess::start(&self.site));
        self.process = Some(process);
        self.paused = false;
    }

    fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
        self.paused = false;
    }

    fn signal(&mut self, signal: &str) {
        if let Some(process) = &self.process {
            let pid = process.child.id().to_string();
            let status = std::process::Command::new("kill")
                .args([signal, &pid])
                .status()
                .expect("kill runs");
            assert!(status.success(), "kill {signal} {pid}");
        }
    }

    fn pause(&mut self) {
        self.signal("-STOP");
        self.paused = true;
    }

    fn resume(&mut self) {
        if self.paused {
            self.signal("-CONT");
            self.paused = false;
        }
    }

    /// Running and not paused.
    fn heal(&mut self) {
        self.resume();
        if self.process.is_none() {
            self.start();
        }
    }

    /// SIGTERM; it must exit cleanly.
    fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            assert!(process.terminate().success(), "{} stops cleanly", self.name);
        }
    }

    fn admin(&self) -> SocketAddr {
        self.process.as_ref().expect("running").admin()
    }

    fn log(&self) -> Vec<LogRecord> {
        let mut out = Vec::new();
        aci_gateway::store::read_log(
            &self.site.data_dir().join("log"),
            aci_gateway::ids::Seq(1),
            |r| -> Result<(), aci_gateway::store::LogError> {
                out.push(r);
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{}'s log verifies: {e}", self.name));
        out
    }
}

/// A valid filing, or (one in ten) one that validation refuses.
fn filing(lrn: &str) -> Manifest {
    let mut manifest = sea_filing(lrn);
    if lrn.ends_with("-X") {
        manifest.consignments[0].goods_items[0].hs_code = "82041".into();
    }
    manifest
}

/// Files one LRN once and records what came of it.
async fn file_once(
    client: &mut Option<CarrierClient>,
    credentials: &Credentials,
    endpoint: &str,
    lrn: &str,
    history: &Mutex<History>,
) {
    if client.is_none() {
        let connect = CarrierClient::connect(endpoint, credentials);
        *client = tokio::time::timeout(CALL_TIMEOUT, connect)
            .await
            .ok()
            .and_then(Result::ok);
    }
    let Some(carrier) = client.as_mut() else {
        // Not even connected: nothing was sent. It stays in doubt only if it already was.
        tokio::time::sleep(Duration::from_millis(100)).await;
        return;
    };
    let manifest = filing(lrn);
    let sent = manifest.encode_to_vec();
    let answer = tokio::time::timeout(CALL_TIMEOUT, carrier.submit(manifest)).await;
    let mut h = history.lock().expect("history");
    h.calls += 1;
    match answer {
        Ok(Ok(receipt)) => {
            h.in_doubt.remove(lrn);
            let known = h.acknowledged.insert(
                lrn.to_owned(),
                (receipt.sequence, receipt.mrn.clone(), sent),
            );
            if known.is_some_and(|(sequence, mrn, _)| {
                sequence != receipt.sequence || mrn != receipt.mrn
            }) {
                h.receipt_changes += 1;
            }
        }
        Ok(Err(status)) if status.code() == Code::InvalidArgument => {
            assert!(lrn.ends_with("-X"), "{lrn} refused: {status:?}");
            h.in_doubt.remove(lrn);
            h.refused.insert(lrn.to_owned());
        }
        Ok(Err(status)) => {
            assert!(
                matches!(
                    status.code(),
                    Code::Unavailable
                        | Code::Unknown
                        | Code::Cancelled
                        | Code::ResourceExhausted
                        | Code::Internal
                ),
                "{lrn}: {status:?}"
            );
            h.in_doubt_calls += 1;
            h.in_doubt.insert(lrn.to_owned());
            drop(h);
            *client = None;
        }
        Err(_timeout) => {
            h.in_doubt_calls += 1;
            h.in_doubt.insert(lrn.to_owned());
            drop(h);
            *client = None;
        }
    }
}

/// Peer report of A for B, if A answers.
async fn lag_to_b(a: &Node) -> Option<u64> {
    let admin = a.admin();
    let body = tokio::time::timeout(Duration::from_secs(2), common::admin_get(admin, "/peers"))
        .await
        .ok()?;
    let json = body.split("\r\n\r\n").nth(1)?;
    let reports: serde_json::Value = serde_json::from_str(json).ok()?;
    reports
        .as_array()?
        .iter()
        .find(|r| r["peer"] == "TEST-B")
        .and_then(|r| r["lag_records"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_or_duplicated_under_crashes_pauses_and_network_faults() {
    let seed = common::seed("ACI_NEMESIS_SEED");
    let seconds: u64 = common::env_number("ACI_NEMESIS_SECS", 60);
    println!("nemesis for {seconds} s");
    let mut rng = Rng::new(seed);

    let network = GatewayBuilder::default().id("TEST-N").site();
    let b_port = free_port();
    let proxy_port = free_port();
    let b_site = GatewayBuilder::default()
        .id("TEST-B")
        .network_of(&network)
        .peer_port(b_port)
        .peer("TEST-A", None)
        .site();
    let a_port = free_port();
    let a_site = GatewayBuilder::default()
        .network_of(&network)
        .carrier_port(a_port)
        .peer("TEST-B", Some(format!("https://127.0.0.1:{proxy_port}")))
        .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
        .site();
    let proxy = FaultProxy::start(
        SocketAddr::from(([127, 0, 0, 1], proxy_port)),
        SocketAddr::from(([127, 0, 0, 1], b_port)),
    )
    .await;
    let mut a = Node {
        name: "A",
        site: a_site,
        process: None,
        paused: false,
    };
    let mut b = Node {
        name: "B",
        site: b_site,
        process: None,
        paused: false,
    };
    b.start();
    a.start();
    let a_endpoint = format!("https://127.0.0.1:{a_port}");

    // Carriers: each files new LRNs and retries its in-doubt ones, until told to stop.
    let history = Arc::new(Mutex::new(History::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let carriers: Vec<_> = (0..3)
        .map(|c| {
            let history = Arc::clone(&history);
            let stop = Arc::clone(&stop);
            let credentials = a.site.carrier();
            let endpoint = a_endpoint.clone();
            let mut rng = Rng::new(seed.rotate_left(8 * (c + 1)));
            tokio::spawn(async move {
                let mut client = None;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let retry = {
                        let h = history.lock().expect("history");
                        h.in_doubt
                            .iter()
                            .find(|l| l.starts_with(&format!("C{c}-")))
                            .cloned()
                    };
                    let lrn = match retry {
                        Some(lrn) if rng.below(3) == 0 => lrn,
                        _ => {
                            n += 1;
                            let invalid = if rng.below(10) == 0 { "-X" } else { "" };
                            format!("C{c}-{n:06}{invalid}")
                        }
                    };
                    file_once(&mut client, &credentials, &endpoint, &lrn, &history).await;
                }
            })
        })
        .collect();

    // The nemesis.
    let mut faults: BTreeMap<&str, u32> = BTreeMap::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(rng.millis(300, 1500)).await;
        let kind = match rng.below(9) {
            0 => {
                a.kill();
                tokio::time::sleep(rng.millis(100, 1500)).await;
                a.start();
                "sigkill A"
            }
            1 => {
                b.kill();
                tokio::time::sleep(rng.millis(100, 1500)).await;
                b.start();
                "sigkill B"
            }
            2 => {
                a.pause();
                tokio::time::sleep(rng.millis(200, 2000)).await;
                a.resume();
                "sigstop A"
            }
            3 => {
                b.pause();
                tokio::time::sleep(rng.millis(200, 2000)).await;
                b.resume();
                "sigstop B"
            }
            4 => {
                // Killed again while it recovers (replaying its log, reconnecting).
                a.kill();
                a.start();
                tokio::time::sleep(rng.millis(0, 200)).await;
                a.kill();
                a.start();
                "sigkill A during recovery"
            }
            5 => {
                proxy.set_flow(Flow::Delay(rng.millis(5, 200)));
                tokio::time::sleep(rng.millis(500, 2500)).await;
                proxy.set_flow(Flow::Pass);
                "proxy delay"
            }
            6 => {
                proxy.set_flow(Flow::Stall);
                tokio::time::sleep(rng.millis(500, 3000)).await;
                proxy.set_flow(Flow::Pass);
                "proxy stall"
            }
            7 => {
                proxy.set_flow(Flow::Drop);
                tokio::time::sleep(rng.millis(200, 1500)).await;
                proxy.reset();
                proxy.set_flow(Flow::Pass);
                "proxy drop then reset"
            }
            _ => {
                if rng.below(2) == 0 {
                    proxy.reset();
                    "proxy reset"
                } else {
                    proxy.cut();
                    "proxy cut"
                }
            }
        };
        *faults.entry(kind).or_default() += 1;
    }

    // Heal, stop filing new LRNs, and resolve every in-doubt one by retrying it.
    proxy.set_flow(Flow::Pass);
    a.heal();
    b.heal();
    let healed = Instant::now();
    stop.store(true, Ordering::Relaxed);
    for carrier in carriers {
        carrier.await.expect("carrier task");
    }
    let credentials = a.site.carrier();
    let mut client = None;
    loop {
        let pending: Vec<String> = history
            .lock()
            .expect("history")
            .in_doubt
            .iter()
            .cloned()
            .collect();
        if pending.is_empty() {
            break;
        }
        assert!(
            healed.elapsed() < RECOVERY_BOUND,
            "in doubt after the bound: {pending:?}"
        );
        for lrn in pending {
            file_once(&mut client, &credentials, &a_endpoint, &lrn, &history).await;
        }
    }
    loop {
        if lag_to_b(&a).await == Some(0) {
            break;
        }
        assert!(
            healed.elapsed() < RECOVERY_BOUND,
            "A did not catch B up within the bound"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovery = healed.elapsed();
    a.stop();
    b.stop();

    // The checker.
    let h = history.lock().expect("history");
    let a_log = a.log();
    let b_log = b.log();
    let a_filings: BTreeMap<u64, &LogRecord> = a_log
        .iter()
        .filter(|r| r.kind() == RecordKind::Filing)
        .map(|r| (r.sequence, r))
        .collect();
    let mut by_lrn: BTreeMap<&str, u32> = BTreeMap::new();
    for record in a_filings.values() {
        *by_lrn.entry(record.lrn.as_str()).or_default() += 1;
    }
    let mut lost = 0;
    let mut altered = 0;
    for (lrn, (sequence, mrn, sent)) in &h.acknowledged {
        match a_filings.get(sequence) {
            Some(record) if record.lrn == *lrn && record.mrn == *mrn => {
                altered += u32::from(*original_of(record) != sent[..]);
            }
            _ => lost += 1,
        }
    }
    let duplicated_at_a = by_lrn.values().filter(|&&n| n > 1).count();
    let stored_refused = h
        .refused
        .iter()
        .filter(|l| by_lrn.contains_key(l.as_str()))
        .count();
    let unknown_at_a = by_lrn
        .keys()
        .filter(|l| !h.acknowledged.contains_key(**l))
        .count();

    // At B: every filing of A's log exactly once, in A's order.
    let received: Vec<&LogRecord> = b_log.iter().filter(|r| r.origin == "TEST-A").collect();
    let mut at_b: BTreeMap<u64, u32> = BTreeMap::new();
    for record in &received {
        *at_b.entry(record.origin_sequence).or_default() += 1;
    }
    let duplicated_at_b = at_b.values().filter(|&&n| n > 1).count();
    let missing_at_b = a_filings.keys().filter(|s| !at_b.contains_key(s)).count();
    let out_of_order = received
        .windows(2)
        .filter(|w| w[0].origin_sequence >= w[1].origin_sequence)
        .count();
    let forwarded_refused = received
        .iter()
        .filter(|r| h.refused.contains(&r.lrn))
        .count();

    println!(
        "nemesis: {} s, {} faults {faults:?}",
        seconds,
        faults.values().sum::<u32>()
    );
    println!(
        "operations: {} calls; acknowledged {}, refused {}, in doubt {} (all resolved by retry); \
         lost {lost}, duplicated at A {duplicated_at_a}, altered {altered}, stored though refused \
         {stored_refused}, receipts changed on retry {}; in A's log but never acknowledged \
         {unknown_at_a}",
        h.calls,
        h.acknowledged.len(),
        h.refused.len(),
        h.in_doubt_calls,
        h.receipt_changes
    );
    println!(
        "B: {} received, missing {missing_at_b}, duplicated {duplicated_at_b}, out of order \
         {out_of_order}, refused-but-forwarded {forwarded_refused}; recovery after healing {:.1} s",
        received.len(),
        recovery.as_secs_f64()
    );
    assert!(
        h.acknowledged.len() > 100,
        "too little was acknowledged to mean anything"
    );
    assert_eq!(lost, 0, "acknowledged filings missing from A's log");
    assert_eq!(
        altered, 0,
        "acknowledged filings not byte-identical in A's log"
    );
    assert_eq!(duplicated_at_a, 0, "an LRN stored twice at A");
    assert_eq!(stored_refused, 0, "a refused filing was stored");
    assert_eq!(h.receipt_changes, 0, "a retry got a different receipt");
    assert_eq!(
        unknown_at_a, 0,
        "A holds a filing no carrier was told about after retries"
    );
    assert_eq!(missing_at_b, 0, "filings of A never reached B");
    assert_eq!(duplicated_at_b, 0, "B applied a filing twice");
    assert_eq!(out_of_order, 0, "B received A's filings out of order");
    assert_eq!(forwarded_refused, 0, "a refused filing was forwarded");
    drop(proxy);
}
