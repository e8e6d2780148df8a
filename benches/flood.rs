//! A flooding carrier against a well-behaved one: the well-behaved carrier files at a steady
//! 400/s (8 workers, one filing each per 20 ms); its accepted filings/s and latency alone, and
//! while another carrier floods the same gateway with 64 filings in flight against a limit of
//! 1 000/s per carrier, alternated in one run. `cargo bench --bench flood` prints both.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aci_gateway::client::CarrierClient;
use common::{GatewayBuilder, OTHER_CARRIER, sea_filing};

const ROUND: Duration = Duration::from_secs(5);
const ROUNDS: usize = 3;

/// One round of the well-behaved carrier: accepted filings/s and the p99 latency (ms).
async fn behave(carrier: &CarrierClient, round: usize) -> (f64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (mut carrier, done, latencies) =
            (carrier.clone(), Arc::clone(&done), Arc::clone(&latencies));
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            loop {
                let due = started + Duration::from_millis(20) * n;
                if due >= started + ROUND {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let mut filing = sea_filing(&format!("OK-{round}-{worker}-{n}"));
                filing.declarant.as_mut().expect("declarant").eori = OTHER_CARRIER.into();
                if carrier.submit(filing).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut l) = latencies.lock() {
                        l.push(due.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                n += 1;
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    let mut latencies = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies
        .get(latencies.len() * 99 / 100)
        .copied()
        .unwrap_or(f64::NAN);
    (
        done.load(Ordering::Relaxed) as f64 / ROUND.as_secs_f64(),
        p99,
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Each carrier may file 1 000/s (burst 1 000); the flooder tries far more.
        let (site, gateway) = GatewayBuilder::default()
            .rate_per_carrier(1000.0, 1000.0)
            .start()
            .await;
        let endpoint = common::endpoint(&gateway);
        let good = common::client(&endpoint, &site.carrier_as(OTHER_CARRIER)).await;
        let flooder = common::client(&endpoint, &site.carrier()).await;
        let (mut alone, mut flooded) = (Vec::new(), Vec::new());
        let refused = Arc::new(AtomicU64::new(0));
        for round in 0..ROUNDS {
            alone.push(behave(&good, round * 2).await);
            let stop = Arc::new(AtomicBool::new(false));
            let mut floods = Vec::new();
            for worker in 0..64 {
                let (mut flooder, stop, refused) =
                    (flooder.clone(), Arc::clone(&stop), Arc::clone(&refused));
                floods.push(tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let lrn = format!("FLOOD-{round}-{worker}-{n}");
                        if flooder.submit(sea_filing(&lrn)).await.is_err() {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        n += 1;
                    }
                }));
            }
            flooded.push(behave(&good, round * 2 + 1).await);
            stop.store(true, Ordering::Relaxed);
            for flood in floods {
                flood.await.expect("flooder");
            }
        }
        let median = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
            let mut values: Vec<f64> = v.iter().map(pick).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let rate = |r: &(f64, f64)| r.0;
        let p99 = |r: &(f64, f64)| r.1;
        println!(
            "a carrier filing 400/s, alone and beside a flood (64 in flight, limit 1 000/s a carrier), {ROUNDS} rounds of {} s:",
            ROUND.as_secs()
        );
        println!(
            "  alone:   {:>5.0} filings/s, p99 {:>6.1} ms",
            median(&alone, rate),
            median(&alone, p99)
        );
        println!(
            "  flooded: {:>5.0} filings/s, p99 {:>6.1} ms",
            median(&flooded, rate),
            median(&flooded, p99)
        );
        println!(
            "  throughput ratio {:.2}; the flood's refusals: {}",
            median(&flooded, rate) / median(&alone, rate),
            refused.load(Ordering::Relaxed)
        );
        gateway.stop().await.expect("stop");
    });
}
