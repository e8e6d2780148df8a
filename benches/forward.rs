//! Forwarding between two real gateways on loopback (mutual TLS, each with its own data
//! directory), measured side by side in one run:
//!
//! 1. live: carriers file on 8 bulk streams into A while A forwards to B; A's ingest rate
//!    against the rate at which B has the records (from the first filing to the last delivered);
//! 2. backlog: B is away while A takes `ACI_BENCH_BACKLOG` filings (default 100 000), then B
//!    comes back; the drain rate (from A's reconnection; the backoff wait is reported beside it)
//!    against the ingest rate of that same backlog.
//!
//! `cargo bench --bench forward` prints both ratios (and, with `ACI_BENCH_JSON=FILE`, writes
//! them there as JSON for `benches/run.sh`). The gateways share this machine's cores,
//! as two administrations' gateways never would: the ratios are the conservative side.

#[path = "../tests/common/mod.rs"]
mod common;

/// The gateway's own allocator (src/main.rs): both gateways run here as they ship. With the
/// system allocator, glibc's malloc was about a quarter of this process's CPU in the drain.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use aci_gateway::client::CarrierClient;
use aci_gateway::server::Gateway;
use common::{GatewayBuilder, Site, free_port};

const STREAMS: usize = 8;
const LIVE: usize = 20_000;

async fn start(site: &Site) -> Gateway {
    Gateway::start(&site.config(), Default::default())
        .await
        .expect("gateway starts")
}

/// Files `count` filings on [`STREAMS`] concurrent bulk streams; how long it took.
async fn ingest(carrier: &CarrierClient, prefix: &str, count: usize) -> Duration {
    let started = Instant::now();
    let lrns = (0..count).map(|i| format!("{prefix}-{i:07}")).collect();
    common::file_bulk(carrier, lrns, STREAMS).await;
    started.elapsed()
}

/// Waits until B's log holds `records` records; returns when.
async fn delivered(b: &Gateway, records: u64) -> Instant {
    let mut durable = b.store().durable();
    while *durable.borrow_and_update() < records {
        durable.changed().await.expect("B runs");
    }
    Instant::now()
}

fn rate(records: usize, elapsed: Duration) -> f64 {
    records as f64 / elapsed.as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: only the former runs.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let backlog: usize = std::env::var("ACI_BENCH_BACKLOG")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let network = GatewayBuilder::default().id("BENCH-N").site();
        let b_port = free_port();
        let b_site = GatewayBuilder::default()
            .id("BENCH-B")
            .network_of(&network)
            .peer_port(b_port)
            .peer("TEST-A", None)
            .site();
        // No per-carrier limits at A: one carrier is the whole load here.
        let a_site = GatewayBuilder::default()
            .network_of(&network)
            .rate_per_carrier(0.0, 0.0)
            .carrier_api("max_in_flight_per_carrier = 0")
            .peer("BENCH-B", Some(format!("https://127.0.0.1:{b_port}")))
            .route("peer = \"BENCH-B\"\nmodes = [\"sea\"]")
            .site();
        let a = start(&a_site).await;
        let b = start(&b_site).await;
        let carrier = common::client(&common::endpoint(&a), &a_site.carrier()).await;

        // 1. Live: ingest into A while A forwards to B.
        let started = Instant::now();
        let ingest_time = ingest(&carrier, "LIVE", LIVE).await;
        let forward_time = delivered(&b, LIVE as u64).await - started;
        let (live_ingest, live_forward) = (rate(LIVE, ingest_time), rate(LIVE, forward_time));

        // 2. Backlog: B away while A takes the backlog, then back.
        b.stop().await.expect("B stops");
        let backlog_ingest_time = ingest(&carrier, "BACKLOG", backlog).await;
        eprintln!("backlog of {backlog} filed; B comes back");
        // What the backlog left for the kernel to write back goes now, not during the drain.
        let _ = std::process::Command::new("sync").status();
        let b = start(&b_site).await;
        let back = Instant::now();
        // A notices at its next attempt (backoff with jitter, at most 10 s): the drain is
        // timed from the reconnection, the wait reported beside it.
        let connected = || a.exchange().reports().first().is_some_and(|r| r.connected);
        while !connected() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let reconnected = Instant::now();
        let drain_time = delivered(&b, (LIVE + backlog) as u64).await - reconnected;
        let (backlog_ingest, drain) = (rate(backlog, backlog_ingest_time), rate(backlog, drain_time));

        println!("forwarding A -> B on loopback (sea filings, ~5 KB each, {STREAMS} bulk streams)");
        println!(
            "  live:    ingest {live_ingest:>8.0} filings/s, forwarded {live_forward:>8.0} records/s  \
             ratio {:.2} ({LIVE} filings)",
            live_forward / live_ingest
        );
        println!(
            "  backlog: ingest {backlog_ingest:>8.0} filings/s, drained   {drain:>8.0} records/s  \
             ratio {:.2} ({backlog} filings; A reconnected {:.1} s after B came back)",
            drain / backlog_ingest,
            (reconnected - back).as_secs_f64()
        );
        if let Ok(path) = std::env::var("ACI_BENCH_JSON") {
            let json = serde_json::json!({
                "live_filings": LIVE,
                "live_ingest": live_ingest,
                "live_forwarded": live_forward,
                "forward_vs_ingest": live_forward / live_ingest,
                "backlog_filings": backlog,
                "backlog_ingest": backlog_ingest,
                "drained": drain,
                "drain_vs_ingest": drain / backlog_ingest,
                "reconnect_seconds": (reconnected - back).as_secs_f64(),
            });
            std::fs::write(&path, json.to_string()).expect("write the JSON report");
        }
        let report = a
            .exchange()
            .reports()
            .into_iter()
            .next()
            .expect("one peer");
        println!(
            "  A's peer report: cursor {}, lag {}, retries {}, delivered {}, duplicates {}",
            report.cursor, report.lag_records, report.retries, report.delivered, report.duplicates
        );
        a.stop().await.expect("A stops");
        b.stop().await.expect("B stops");
    });
}
