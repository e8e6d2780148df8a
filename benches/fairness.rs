//! Neighbour fairness: a well-behaved carrier asks for a filing's status at a steady 200/s
//! (4 workers, one query each per 20 ms) while another carrier floods the gateway with large XML
//! filings (about 390 KB, 999 goods items each, 64 in flight), alternated with quiet rounds in
//! one run. It prints the well-behaved carrier's status p50 and p99, quiet and beside the flood,
//! and the ratio; the goal is a p99 within 2x of its quiet value.
//!
//! The gateway runs as its own process (release build), as in production: `cargo bench --bench
//! fairness`. `ACI_BENCH_GATEWAY=path/to/aci-gateway` runs another build instead (a baseline).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aci_gateway::client::CarrierClient;
use common::{GatewayBuilder, GatewayProcess, OTHER_CARRIER, sea_filing};

const ROUND: Duration = Duration::from_secs(5);
const ROUNDS: usize = 3;

/// One round of status queries: their latencies (ms), sorted.
async fn query(carrier: &CarrierClient, mrn: &str) -> Vec<f64> {
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (mut carrier, latencies, mrn) =
            (carrier.clone(), Arc::clone(&latencies), mrn.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            loop {
                let due = started + Duration::from_millis(20) * n;
                if due >= started + ROUND {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let asked = Instant::now();
                if carrier.status_by_mrn(&mrn).await.is_ok()
                    && let Ok(mut l) = latencies.lock()
                {
                    l.push(asked.elapsed().as_secs_f64() * 1000.0);
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
    latencies
}

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted
        .get(sorted.len() * p / 100)
        .copied()
        .unwrap_or(f64::NAN)
}

/// The flood: 64 large XML filings in flight until `stop`; returns how many were answered.
fn flood(
    flooder: &CarrierClient,
    template: &Arc<String>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<u64>> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    (0..64)
        .map(|_| {
            let (mut flooder, template, stop) =
                (flooder.clone(), Arc::clone(template), Arc::clone(stop));
            tokio::spawn(async move {
                let mut answered = 0;
                while !stop.load(Ordering::Relaxed) {
                    let n = NEXT.fetch_add(1, Ordering::Relaxed);
                    let xml = template.replace("{lrn}", &format!("FLOOD-{n}"));
                    let _ = flooder.submit_xml(xml.into_bytes()).await;
                    answered += 1;
                }
                answered
            })
        })
        .collect()
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
        let site = GatewayBuilder::default().site();
        let gateway = match std::env::var_os("ACI_BENCH_GATEWAY") {
            Some(binary) => GatewayProcess::start_binary(&site, binary.as_ref(), &[]),
            None => GatewayProcess::start(&site),
        };
        let good = common::client(&gateway.endpoint, &site.carrier_as(OTHER_CARRIER)).await;
        let flooder = common::client(&gateway.endpoint, &site.carrier()).await;
        let mut filing = sea_filing("FAIR-1");
        filing.declarant.as_mut().expect("declarant").eori = OTHER_CARRIER.into();
        let mrn = good.clone().submit(filing).await.expect("a filing").mrn;
        let template = Arc::new(common::large_xml());
        println!(
            "status queries at 200/s beside large XML filings ({} KB, 64 in flight), {ROUNDS} rounds of {} s:",
            template.len() / 1024,
            ROUND.as_secs()
        );
        query(&good, &mrn).await;
        let (mut quiet, mut flooded, mut filings) = (Vec::new(), Vec::new(), 0);
        for _ in 0..ROUNDS {
            quiet.push(query(&good, &mrn).await);
            let stop = Arc::new(AtomicBool::new(false));
            let workers = flood(&flooder, &template, &stop);
            // Let the flood fill the pool first.
            tokio::time::sleep(Duration::from_millis(500)).await;
            flooded.push(query(&good, &mrn).await);
            stop.store(true, Ordering::Relaxed);
            for worker in workers {
                filings += worker.await.expect("flooder");
            }
        }
        let merged = |rounds: &[Vec<f64>]| {
            let mut all: Vec<f64> = rounds.iter().flatten().copied().collect();
            all.sort_by(f64::total_cmp);
            all
        };
        let (quiet, flooded) = (merged(&quiet), merged(&flooded));
        let (q50, q99) = (percentile(&quiet, 50), percentile(&quiet, 99));
        let (f50, f99) = (percentile(&flooded, 50), percentile(&flooded, 99));
        println!("  {:<26} {:>9} {:>9} {:>8}", "", "p50 ms", "p99 ms", "queries");
        println!("  {:<26} {q50:>9.2} {q99:>9.2} {:>8}", "quiet", quiet.len());
        println!(
            "  {:<26} {f50:>9.2} {f99:>9.2} {:>8}",
            "beside the flood",
            flooded.len()
        );
        println!(
            "  p99 beside / quiet: {:.2} (goal <= 2); {filings} flood filings answered, {:.0}/s",
            f99 / q99,
            filings as f64 / (ROUNDS as f64 * (ROUND.as_secs_f64() + 0.5))
        );
        drop(gateway);
    });
}
