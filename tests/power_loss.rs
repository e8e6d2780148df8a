//! The store on a simulated disk: power lost at random points under concurrent appends, a disk
//! that fills up, and syncs that fail. Acknowledged must mean kept, and the log must take
//! appends again by itself once the disk does.
//!
//! `ACI_SIM_SEED` replays a run; `ACI_SIM_CYCLES` runs more power losses than CI does.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aci_gateway::ids::{Eori, Lrn, Seq};
use aci_gateway::pb::store::{LogRecord, RecordKind};
use aci_gateway::store::{PowerLoss, Registration, SimDisk, Store, StoreError, StoreOptions};

fn options(disk: &SimDisk) -> StoreOptions {
    StoreOptions {
        country: "GB".into(),
        // Small segments, so that crashes land around rollovers too.
        segment_bytes: 32 * 1024,
        max_batch: 64,
        duplicate_document_window: Duration::from_secs(365 * 86_400),
        immutable: Default::default(),
        timers: Default::default(),
        sync: true,
        disk: Arc::new(disk.clone()),
        jetstream: None,
    }
}

fn log_of(store: &Store) -> Vec<LogRecord> {
    let mut records = Vec::new();
    store
        .read_from(Seq(1), |record| -> Result<(), StoreError> {
            records.push(record);
            Ok(())
        })
        .expect("the log reads back whole");
    records
}

/// Registrations by LRN: what the log holds, each LRN at most once.
fn registrations(records: &[LogRecord]) -> BTreeMap<String, LogRecord> {
    let mut by_lrn = BTreeMap::new();
    for record in records {
        if record.kind() == RecordKind::Filing {
            let lrn = record.lrn.clone();
            assert!(
                by_lrn.insert(lrn.clone(), record.clone()).is_none(),
                "{lrn} is registered twice"
            );
        }
    }
    by_lrn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_power_loss_at_random_points() {
    let seed = common::seed("ACI_SIM_SEED");
    let cycles: usize = common::env_number("ACI_SIM_CYCLES", 100);
    let disk = SimDisk::new(seed);
    let mut choices = common::Rng::new(seed);
    let tmp = tempfile::tempdir().expect("tmp");
    // LRN → sequence of its receipt, for every registration acknowledged.
    let acknowledged: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    // Everything ever submitted (acknowledged or not): nothing else may appear in the log.
    let mut submitted: BTreeSet<String> = BTreeSet::new();
    let mut in_doubt: Vec<String> = Vec::new();
    let mut losses = PowerLoss::default();
    let mut cut_tails = 0;
    for cycle in 0..=cycles {
        let (store, recovery) =
            Store::open(tmp.path(), options(&disk)).expect("the store opens after power loss");
        assert_eq!(recovery.acknowledged_lost, None, "cycle {cycle}");
        cut_tails += usize::from(recovery.cut.is_some());
        let log = registrations(&log_of(&store));
        for (lrn, sequence) in acknowledged.lock().expect("lock").iter() {
            let record = log
                .get(lrn)
                .unwrap_or_else(|| panic!("cycle {cycle}: acknowledged {lrn} is lost"));
            assert_eq!(record.sequence, *sequence, "cycle {cycle}: {lrn}");
        }
        for lrn in log.keys() {
            assert!(
                submitted.contains(lrn),
                "cycle {cycle}: {lrn} was never filed"
            );
        }
        if cycle == cycles {
            store.close().await;
            break;
        }

        // Writers: new LRNs, and retries of those left in doubt by the last power loss.
        let mut batches: Vec<Vec<String>> = (0..4)
            .map(|w| (0..40).map(|i| format!("C{cycle}-W{w}-{i}")).collect())
            .collect();
        batches[0].append(&mut in_doubt);
        submitted.extend(batches.iter().flatten().cloned());
        let tasks: Vec<_> = batches
            .into_iter()
            .map(|lrns| {
                let store = store.clone();
                let acknowledged = Arc::clone(&acknowledged);
                tokio::spawn(async move {
                    let mut doubtful = Vec::new();
                    for lrn in lrns {
                        match store.register(common::new_filing(&lrn)).await {
                            Ok(
                                Registration::Registered(receipt)
                                | Registration::Duplicate(receipt),
                            ) => {
                                acknowledged
                                    .lock()
                                    .expect("lock")
                                    .insert(lrn, receipt.sequence);
                            }
                            Ok(other) => panic!("{lrn}: {other:?}"),
                            // The power is out: this one is in doubt, the rest never went.
                            Err(StoreError::Unwritable { .. } | StoreError::Closed) => {
                                doubtful.push(lrn);
                                break;
                            }
                            Err(e) => panic!("{lrn}: {e}"),
                        }
                    }
                    doubtful
                })
            })
            .collect();
        // The power goes at a random write or sync (or, if the filings finish first, after).
        disk.cut_power_after(choices.below(40));
        for task in tasks {
            in_doubt.extend(task.await.expect("writer task"));
        }
        disk.cut_power();
        store.close().await;
        let loss = disk.power_on();
        losses.files_forgotten += loss.files_forgotten;
        losses.tails_dropped += loss.tails_dropped;
        losses.tails_torn += loss.tails_torn;
        losses.tails_kept += loss.tails_kept;
        losses.unsynced_bytes += loss.unsynced_bytes;
    }
    let acknowledged = acknowledged.lock().expect("lock").len();
    println!(
        "{cycles} power losses survived: {acknowledged} acknowledged, 0 lost; unsynced tails \
         dropped {}, torn {}, kept {}; {} unsynced bytes; {} files forgotten; {cut_tails} torn \
         tails cut at open",
        losses.tails_dropped,
        losses.tails_torn,
        losses.tails_kept,
        losses.unsynced_bytes,
        losses.files_forgotten
    );
    assert!(acknowledged > 0, "the run acknowledged nothing");
}

async fn register(store: &Store, lrn: &str) -> Result<Registration, StoreError> {
    store.register(common::new_filing(lrn)).await
}

fn status(store: &Store, lrn: &str) -> Option<aci_gateway::pb::FilingStatus> {
    let filer = Eori::parse(common::CARRIER).expect("eori");
    let lrn = Lrn::parse(lrn).expect("lrn");
    store.status_by_lrn(&filer, &lrn).expect("status")
}

#[tokio::test]
async fn a_full_disk_refuses_appends_keeps_serving_status_and_recovers_by_itself() {
    let disk = SimDisk::new(3);
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, _) = Store::open(tmp.path(), options(&disk)).expect("open");
    for i in 0..20 {
        register(&store, &format!("BEFORE-{i}"))
            .await
            .expect("room");
    }

    // The disk fills: a half-written batch is refused and cut off again.
    disk.set_capacity(Some(disk.used() + 600));
    let mut refused = 0;
    for i in 0..10 {
        match register(&store, &format!("FULL-{i}")).await {
            Err(StoreError::Unwritable { disk_full, .. }) => {
                assert!(disk_full);
                refused += 1;
            }
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 0, "the disk never filled");
    assert!(
        !store
            .stats()
            .writable
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(
        status(&store, "BEFORE-7").is_some(),
        "status is still served"
    );

    // Space returns: the next filing is taken, without a restart.
    disk.set_capacity(None);
    register(&store, "AFTER-0").await.expect("room again");
    assert!(
        store
            .stats()
            .writable
            .load(std::sync::atomic::Ordering::Relaxed)
    );

    // A failing fsync: refused as unavailable, not as a full disk; then it passes.
    disk.fail_syncs(1);
    match register(&store, "SYNC-0").await {
        Err(StoreError::Unwritable { disk_full, .. }) => assert!(!disk_full),
        other => panic!("expected a refusal, got {other:?}"),
    }
    register(&store, "SYNC-1")
        .await
        .expect("the sync works again");

    // Nothing refused is in the log, every acknowledged filing is, and it reopens clean.
    let acknowledged: Vec<String> = log_of(&store)
        .iter()
        .filter(|r| r.kind() == RecordKind::Filing)
        .map(|r| r.lrn.clone())
        .collect();
    store.close().await;
    let (store, recovery) = Store::open(tmp.path(), options(&disk)).expect("reopen");
    assert_eq!(
        recovery.cut, None,
        "the failed batches were cut off at once"
    );
    let log: Vec<String> = registrations(&log_of(&store)).into_keys().collect();
    let mut sorted = acknowledged.clone();
    sorted.sort();
    assert_eq!(log, sorted);
    for lrn in &acknowledged {
        assert!(status(&store, lrn).is_some(), "{lrn}");
    }
    assert!(acknowledged.contains(&"AFTER-0".to_owned()));
    assert!(acknowledged.contains(&"SYNC-1".to_owned()));
    assert!(!acknowledged.contains(&"SYNC-0".to_owned()) || status(&store, "SYNC-0").is_some());
    store.close().await;
}

/// Found by CI (seed 1795857507520246487): a power loss that leaves the file's new size on the
/// medium but zeros where a whole batch was, so the zeros start right after a frame. Recovery
/// reads that as the end of the records and keeps the zeros; the log must then append over them.
#[tokio::test]
async fn zeros_left_by_a_power_loss_after_whole_frames_are_appended_over() {
    let disk = SimDisk::new(5);
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, _) = Store::open(tmp.path(), options(&disk)).expect("open");
    for i in 0..3 {
        register(&store, &format!("BEFORE-{i}"))
            .await
            .expect("registered");
    }
    store.close().await;
    let segment = tmp.path().join("log").join(format!("{:020}.seg", 1));
    let mut bytes = aci_gateway::store::Disk::read(&disk, &segment).expect("segment");
    let records = bytes.len();
    // Room for the three records again: more than the one appended after.
    let zeros = records;
    bytes.resize(records + zeros, 0);
    aci_gateway::store::Disk::write_synced(&disk, &segment, &bytes).expect("zeros after");

    let (store, recovery) =
        Store::open(tmp.path(), options(&disk)).expect("the store opens over the zeros");
    assert_eq!(
        recovery.cut, None,
        "zeros after whole frames are not damage"
    );
    register(&store, "AFTER-0")
        .await
        .expect("appended over the zeros");
    let lrns: Vec<String> = registrations(&log_of(&store)).into_keys().collect();
    assert_eq!(lrns, ["AFTER-0", "BEFORE-0", "BEFORE-1", "BEFORE-2"]);
    store.close().await;

    // The record went where the zeros began, and it is still there after another open.
    let after = aci_gateway::store::Disk::read(&disk, &segment).expect("segment");
    assert_eq!(
        after.len(),
        records + zeros,
        "written over the zeros, not after them"
    );
    assert_ne!(after[records..records + 4], [0; 4]);
    let (store, recovery) = Store::open(tmp.path(), options(&disk)).expect("reopen");
    assert_eq!(recovery.cut, None);
    assert_eq!(registrations(&log_of(&store)).len(), 4);
    store.close().await;
}
