//! Crash durability with a real process: carriers file concurrently, the gateway is SIGKILLed at
//! a random point, restarted on the same data directory, and every receipt it gave must hold.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aci_gateway::pb::Receipt;
use aci_gateway::store::{Store, StoreOptions};
use common::{GatewayBuilder, GatewayProcess, client, sea_filing};
use tokio::sync::Mutex;

const WORKERS: usize = 16;
const MAX_PER_WORKER: usize = 2000;

#[derive(Default)]
struct Outcomes {
    acknowledged: Vec<(String, Receipt)>,
    in_doubt: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_receipt_survives_sigkill_and_in_doubt_retries_store_once() {
    let seed = std::env::var("ACI_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(1)
        });
    // Kill after 200 to 1700 acknowledgements: a random moment of the run, never before work.
    let kill_after = 200 + (seed % 1500) as usize;
    eprintln!("crash test: seed {seed} (ACI_CRASH_SEED), kill after {kill_after} receipts");

    let site = GatewayBuilder::default().site();
    let gateway = GatewayProcess::start(&site);
    let endpoint = gateway.endpoint.clone();
    let credentials = site.carrier();
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let acknowledged = Arc::new(AtomicUsize::new(0));

    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let mut carrier = client(&endpoint, &credentials).await;
        let outcomes = Arc::clone(&outcomes);
        let acknowledged = Arc::clone(&acknowledged);
        workers.push(tokio::spawn(async move {
            for i in 0..MAX_PER_WORKER {
                let lrn = format!("W{worker:02}-{i:05}");
                match carrier.submit(sea_filing(&lrn)).await {
                    Ok(receipt) => {
                        outcomes.lock().await.acknowledged.push((lrn, receipt));
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        // The gateway died with this call in flight: it may or may not be stored.
                        outcomes.lock().await.in_doubt.push(lrn);
                        return;
                    }
                }
            }
        }));
    }
    while acknowledged.load(Ordering::Relaxed) < kill_after {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    gateway.kill();
    for worker in workers {
        worker.await.expect("worker");
    }
    let outcomes = Arc::try_unwrap(outcomes)
        .unwrap_or_else(|_| panic!("workers finished"))
        .into_inner();
    assert!(outcomes.acknowledged.len() >= kill_after);
    eprintln!(
        "crash test: {} acknowledged, {} in doubt at the kill",
        outcomes.acknowledged.len(),
        outcomes.in_doubt.len()
    );

    // Restart on the same data: every receipt is there, unchanged.
    let gateway = GatewayProcess::start(&site);
    let recovered = gateway.ready["recovered_records"].as_u64().expect("count");
    assert!(recovered >= outcomes.acknowledged.len() as u64);
    let mut carrier = client(&gateway.endpoint, &credentials).await;
    for (lrn, receipt) in &outcomes.acknowledged {
        let status = carrier
            .status_by_mrn(&receipt.mrn)
            .await
            .unwrap_or_else(|e| panic!("{lrn} ({}) lost: {e}", receipt.mrn));
        assert_eq!(status.receipt.as_ref(), Some(receipt), "{lrn} changed");
    }
    // A carrier retries what was in doubt, with the same LRN: stored once, whatever happened.
    let mut retried = HashMap::new();
    for lrn in &outcomes.in_doubt {
        let receipt = carrier
            .submit(sea_filing(lrn))
            .await
            .expect("retry accepted");
        retried.insert(lrn.clone(), receipt);
    }
    let already_durable = retried.values().filter(|r| r.sequence <= recovered).count();
    eprintln!(
        "crash test: of {} in doubt, {already_durable} had been made durable before the kill",
        retried.len()
    );
    let exit = gateway.terminate();
    assert!(exit.success(), "clean shutdown: {exit}");

    // The log itself: every frame, hash and chain link verifies; one record per LRN.
    let (store, recovery) = Store::open(
        &site.data_dir(),
        StoreOptions {
            country: "GB".into(),
            segment_bytes: 64 * 1024 * 1024,
            max_batch: 64,
            duplicate_document_window: std::time::Duration::from_secs(365 * 86_400),
            immutable: Default::default(),
            timers: Default::default(),
            sync: true,
            disk: std::sync::Arc::new(aci_gateway::store::OsDisk),
            jetstream: None,
        },
    )
    .expect("store reopens");
    assert!(
        recovery.cut.is_none(),
        "a clean shutdown leaves no torn tail"
    );
    assert!(recovery.acknowledged_lost.is_none());
    let mut per_lrn: HashMap<String, Vec<u64>> = HashMap::new();
    let mut by_seq = HashMap::new();
    for record in common::log_records(&store) {
        per_lrn
            .entry(record.lrn.clone())
            .or_default()
            .push(record.sequence);
        by_seq.insert(record.sequence, record);
    }
    for (lrn, sequences) in &per_lrn {
        assert_eq!(sequences.len(), 1, "{lrn} stored {} times", sequences.len());
    }
    let acknowledged = outcomes.acknowledged.iter().map(|(l, r)| (l, r));
    for (lrn, receipt) in acknowledged.chain(retried.iter()) {
        let record = &by_seq[&receipt.sequence];
        assert_eq!(&record.lrn, lrn);
        assert_eq!(record.mrn, receipt.mrn);
        assert_eq!(hex::encode(&record.digest), receipt.digest);
        assert_eq!(hex::encode(&record.hash), receipt.chain_hash);
    }
    assert_eq!(
        per_lrn.len(),
        outcomes.acknowledged.len() + outcomes.in_doubt.len()
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_cuts_a_torn_tail_and_reports_it() {
    let site = GatewayBuilder::default().site();
    let gateway = GatewayProcess::start(&site);
    let mut carrier = client(&gateway.endpoint, &site.carrier()).await;
    let mut receipts = Vec::new();
    for i in 0..3 {
        receipts.push(
            carrier
                .submit(sea_filing(&format!("T-{i}")))
                .await
                .expect("accepted"),
        );
    }
    assert!(gateway.terminate().success());

    // The last write was torn: its final 10 bytes never reached the disk.
    let segments = aci_gateway::store::list_segments(&site.data_dir().join("log")).expect("ls");
    let (_, newest) = segments.last().expect("a segment");
    let len = common::records_end(newest);
    std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .expect("open")
        .set_len(len - 10)
        .expect("truncate");

    let gateway = GatewayProcess::start(&site);
    assert_eq!(gateway.ready["recovered_records"], 2);
    let cut = gateway.ready["cut_bytes"].as_u64().expect("cut reported");
    assert!(cut > 0 && cut < len, "cut {cut} of {len} bytes");
    let mut carrier = client(&gateway.endpoint, &site.carrier()).await;
    for receipt in &receipts[..2] {
        let status = carrier.status_by_mrn(&receipt.mrn).await.expect("kept");
        assert_eq!(status.receipt.as_ref(), Some(receipt));
    }
    // A real torn write is of a record never acknowledged. This one had been (as when a disk
    // loses synced data), so the loss is reported too; the filer's retry registers it whole.
    assert_eq!(
        gateway.ready["acknowledged_lost"],
        serde_json::json!([3, 3])
    );
    let retried = carrier.submit(sea_filing("T-2")).await.expect("retry");
    assert_eq!(retried.sequence, 3);
    assert!(gateway.terminate().success());
}
