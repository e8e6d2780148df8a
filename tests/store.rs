//! The store on a real disk: recovery of torn tails, refusal of corruption, segment rollover,
//! the hash chain across restarts, and the index rebuilt from the log.

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use aci_gateway::ids::{Eori, Lrn, Seq};
use aci_gateway::pb::store::LogRecord;
use aci_gateway::store::{
    self, LogError, NewFiling, Registration, Store, StoreError, StoreOptions, list_segments,
};
use aci_gateway::validate;

fn options(segment_bytes: u64) -> StoreOptions {
    StoreOptions {
        country: "GB".into(),
        segment_bytes,
        max_batch: 64,
        duplicate_document_window: std::time::Duration::from_secs(365 * 86_400),
        immutable: Default::default(),
        timers: Default::default(),
        sync: true,
        disk: std::sync::Arc::new(aci_gateway::store::OsDisk),
        jetstream: None,
    }
}

fn filing(lrn: &str) -> NewFiling {
    common::new_filing(lrn)
}

async fn register_receipts(
    store: &Store,
    lrns: impl IntoIterator<Item = String>,
) -> Vec<aci_gateway::pb::Receipt> {
    let mut receipts = Vec::new();
    for lrn in lrns {
        match store.register(filing(&lrn)).await.expect("register") {
            Registration::Registered(receipt) => receipts.push(receipt),
            other => panic!("unexpected {other:?}"),
        }
    }
    receipts
}

/// Registers each LRN; the sequences of their records.
async fn register_all(store: &Store, lrns: impl IntoIterator<Item = String>) -> Vec<u64> {
    let receipts = register_receipts(store, lrns).await;
    receipts.into_iter().map(|r| r.sequence).collect()
}

/// Registers `<prefix>-0` … `<prefix>-<count - 1>`; their MRNs.
async fn registered_mrns(store: &Store, prefix: &str, count: usize) -> Vec<String> {
    let lrns = (0..count).map(|i| format!("{prefix}-{i}"));
    let receipts = register_receipts(store, lrns).await;
    receipts.into_iter().map(|r| r.mrn).collect()
}

fn newest_segment(data: &Path) -> PathBuf {
    list_segments(&data.join("log"))
        .expect("segments")
        .pop()
        .expect("a segment")
        .1
}

fn open(data: &Path) -> (Store, store::Recovery) {
    Store::open(data, options(64 * 1024 * 1024)).expect("store opens")
}

/// A closed store holding `count` filings, and the path of its newest segment.
async fn seeded(count: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, _) = open(tmp.path());
    register_all(&store, (1..=count).map(|i| format!("LRN-{i}"))).await;
    store.close().await;
    let segment = newest_segment(tmp.path());
    (tmp, segment)
}

#[tokio::test]
async fn a_torn_last_record_is_cut_and_everything_before_it_kept() {
    let (tmp, segment) = seeded(10).await;
    let data = tmp.path();
    // A crash in the middle of writing record 10: its last 40 bytes never reached the disk.
    let len = common::records_end(&segment);
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open")
        .set_len(len - 40)
        .expect("truncate");

    let (store, recovery) = open(data);
    assert_eq!(recovery.last_seq, 9);
    // Here the damage hit a record that had been acknowledged (a real torn write never has
    // been): it is reported, and the index no longer claims it.
    assert_eq!(recovery.acknowledged_lost, Some((10, 10)));
    let cut = recovery.cut.expect("a cut is reported");
    assert_eq!(cut.reason, "the segment ends inside a frame");
    assert!(cut.kept_in.exists(), "the cut bytes are kept aside");
    assert_eq!(
        std::fs::metadata(&cut.kept_in).expect("kept").len(),
        cut.bytes
    );
    let kept = common::log_records(&store);
    assert_eq!(kept.len(), 9);
    // The filer's retry registers it again, continuing the chain.
    let status = store
        .status_by_lrn(
            &Eori::parse(common::CARRIER).expect("eori"),
            &Lrn::parse("LRN-10").expect("lrn"),
        )
        .expect("index");
    assert!(status.is_none());
    let again = register_all(&store, ["LRN-10".to_owned()]).await;
    assert_eq!(again, [10]);
    assert_eq!(common::log_records(&store).len(), 10);
    store.close().await;
}

#[tokio::test]
async fn garbage_after_the_last_record_is_cut_and_zeros_are_room_to_grow() {
    let garbage = b"\x20\x00\x00\x00garbage that is not a frame";
    let (tmp, segment) = seeded(3).await;
    let data = tmp.path();
    let end = common::records_end(&segment);
    let mut file = OpenOptions::new().write(true).open(&segment).expect("open");
    file.seek(SeekFrom::Start(end)).expect("seek");
    file.write_all(garbage).expect("write garbage");
    drop(file);
    let (store, recovery) = open(data);
    assert_eq!(recovery.last_seq, 3);
    assert_eq!(recovery.cut.expect("cut").bytes, garbage.len() as u64);
    assert_eq!(common::log_records(&store).len(), 3);
    store.close().await;

    // Zeros after the last record, however many, are space the disk preallocated: kept as
    // they are, and the log goes on over them.
    let (tmp, segment) = seeded(3).await;
    let data = tmp.path();
    let end = common::records_end(&segment);
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open")
        .set_len(end + 3 * 4096 + 17)
        .expect("zeros");
    let (store, recovery) = open(data);
    assert_eq!(recovery.last_seq, 3);
    assert!(recovery.cut.is_none(), "{:?}", recovery.cut);
    assert_eq!(register_all(&store, ["LRN-4".to_owned()]).await, [4]);
    store.close().await;
    let (store, recovery) = open(data);
    assert_eq!(recovery.last_seq, 4);
    assert!(recovery.cut.is_none());
    assert_eq!(common::log_records(&store).len(), 4);
    store.close().await;
}

#[tokio::test]
async fn a_corrupt_last_record_is_cut() {
    let (tmp, segment) = seeded(5).await;
    let data = tmp.path();
    let mut bytes = std::fs::read(&segment).expect("read");
    let last = common::records_end(&segment) as usize - 3;
    bytes[last] ^= 0xff;
    std::fs::write(&segment, &bytes).expect("write");

    let (store, recovery) = open(data);
    assert_eq!(recovery.last_seq, 4);
    assert_eq!(recovery.cut.expect("cut").reason, "payload CRC32C mismatch");
    assert_eq!(common::log_records(&store).len(), 4);
    store.close().await;
}

#[tokio::test]
async fn damage_followed_by_intact_records_refuses_to_open() {
    let (tmp, segment) = seeded(5).await;
    let data = tmp.path();
    let mut bytes = std::fs::read(&segment).expect("read");
    // A flipped bit inside the first record: synced data went bad, this is not a torn write.
    bytes[20] ^= 0x01;
    std::fs::write(&segment, &bytes).expect("write");

    match Store::open(data, options(64 * 1024 * 1024)) {
        Err(StoreError::Log(LogError::Corrupt { offset, reason, .. })) => {
            assert_eq!(offset, 0);
            assert!(reason.contains("intact records follow"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Nothing was cut: the operator still has every byte.
    assert_eq!(std::fs::read(&segment).expect("read"), bytes);
}

#[tokio::test]
async fn segments_roll_over_and_the_chain_spans_them_and_restarts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    let small = 8 * 1024;
    let (store, _) = Store::open(data, options(small)).expect("open");
    let first = register_all(&store, (1..=60).map(|i| format!("LRN-{i}"))).await;
    store.close().await;
    let segments = list_segments(&data.join("log")).expect("segments");
    assert!(segments.len() >= 3, "{} segments", segments.len());
    for (i, (first_seq, path)) in segments.iter().enumerate() {
        let len = common::records_end(path);
        assert!(len <= small, "{} has {len} bytes", path.display());
        assert!(*first_seq >= 1);
        // A finished segment ends with its last record; only the newest has room to grow.
        if i + 1 < segments.len() {
            assert_eq!(std::fs::metadata(path).expect("meta").len(), len);
        }
    }

    let (store, recovery) = Store::open(data, options(small)).expect("reopen");
    assert_eq!(recovery.last_seq, 60);
    assert!(recovery.cut.is_none());
    let more = register_all(&store, (61..=70).map(|i| format!("LRN-{i}"))).await;
    assert_eq!(first, (1..=60).collect::<Vec<_>>());
    assert_eq!(more, (61..=70).collect::<Vec<_>>());
    let all = common::log_records(&store);
    assert_eq!(all.len(), 70);
    for pair in all.windows(2) {
        assert_eq!(
            pair[1].prev_hash, pair[0].hash,
            "chain breaks at {}",
            pair[1].sequence
        );
    }
    // Reading from the middle starts in the right segment.
    let mut from_55 = Vec::new();
    store
        .read_from(Seq(55), |r| -> Result<(), LogError> {
            from_55.push(r.sequence);
            Ok(())
        })
        .expect("read");
    assert_eq!(from_55, (55..=70).collect::<Vec<_>>());
    store.close().await;
}

#[tokio::test]
async fn the_index_rebuilt_from_the_log_equals_the_incremental_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    let (store, _) = Store::open(data, options(64 * 1024)).expect("open");
    // Concurrent registrations, duplicates and conflicts included, across several segments.
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let lrn = format!("LRN-{}", (worker * 25 + i) % 150);
                store.register(filing(&lrn)).await.expect("register");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    store.caught_up().await.expect("indexed");
    let incremental = store.index().dump().expect("dump");
    store.close().await;

    let replayed = store::reindex(data, 64 * 1024, &mut |_| {}).expect("reindex");
    assert_eq!(replayed, 150);
    let (store, _) = Store::open(data, options(64 * 1024)).expect("reopen");
    let rebuilt = store.index().dump().expect("dump");
    assert_eq!(rebuilt.len(), incremental.len());
    assert!(
        rebuilt == incremental,
        "rebuilt index differs from the incremental one"
    );
    store.close().await;
}

/// A closed store in `data` holding five filings, all indexed; its index's entries.
async fn five_filings_indexed(data: &Path) -> Vec<store::IndexEntry> {
    let (store, _) = open(data);
    register_all(&store, (1..=5).map(|i| format!("LRN-{i}"))).await;
    store.caught_up().await.expect("indexed");
    let entries = store.index().dump().expect("dump");
    store.close().await;
    entries
}

/// A map of the index damaged on disk refuses to open, and says to rebuild the index:
/// `reindex` does, rather than refuse the same way.
#[tokio::test]
async fn reindex_rebuilds_an_index_whose_map_files_are_missing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    let before = five_filings_indexed(data).await;
    for file in ["filings.positions", "lrn.slots"] {
        std::fs::remove_file(data.join("index").join(file)).expect("remove");
        let refused = Store::open(data, options(64 * 1024 * 1024)).expect_err("damaged");
        assert!(refused.to_string().contains("reindex"), "{refused}");
        store::reindex(data, 64 * 1024 * 1024, &mut |_| {}).expect("reindex");
        let (store, _) = open(data);
        assert_eq!(store.index().dump().expect("dump"), before, "after {file}");
        store.close().await;
    }
}

#[tokio::test]
async fn an_index_behind_the_log_catches_up_at_open() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    let before = five_filings_indexed(data).await;
    // Lose the index entirely, as if sled had kept nothing: replay restores it from the log.
    std::fs::remove_dir_all(data.join("index")).expect("remove index");
    let (store, _) = open(data);
    assert_eq!(store.index().dump().expect("dump"), before);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_and_conflicts_agree_with_the_log() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, _) = open(tmp.path());
    // 16 appenders, 50 LRNs, each LRN in two contents: whichever content lands first wins;
    // the same content is a duplicate of it, the other a conflict naming its MRN.
    let mut tasks = Vec::new();
    for worker in 0..16u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..150u32 {
                let lrn = format!("LRN-{}", (i * 7 + worker) % 50);
                let mut f = filing(&lrn);
                if (worker + i) % 2 == 1 {
                    f.manifest.consignments[0].goods_items[0].description = "Spanners".into();
                    f.digest = validate::digest(&f.manifest);
                    // The validator's encoding is of the manifest before the change.
                    f.manifest_encoding = None;
                }
                let digest = hex::encode(f.digest);
                answers.push((lrn, digest, store.register(f).await.expect("register")));
            }
            answers
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.expect("task"));
    }
    let log = common::log_records(&store);
    assert_eq!(log.len(), 50, "one record per LRN");
    let by_lrn: std::collections::HashMap<&str, &LogRecord> =
        log.iter().map(|r| (r.lrn.as_str(), r)).collect();
    let mut registered = 0;
    for (lrn, digest, answer) in &answers {
        let record = by_lrn[lrn.as_str()];
        let receipt = store::receipt_of(record);
        match answer {
            Registration::Registered(r) => {
                registered += 1;
                assert_eq!(r, &receipt);
            }
            Registration::Duplicate(r) => {
                assert_eq!(r, &receipt);
                assert_eq!(digest, &r.digest, "a duplicate has the winner's content");
            }
            Registration::Conflict { mrn } => {
                assert_eq!(mrn.as_str(), record.mrn);
                assert_ne!(digest, &receipt.digest, "a conflict has other content");
            }
            Registration::DuplicateDocument { .. }
            | Registration::NotNextFilingParty { .. }
            | Registration::PartialFilingExists { .. } => {
                panic!("each LRN has its own document and no partial filing: {answer:?}")
            }
        }
    }
    assert_eq!(registered, 50);
    store.close().await;
}

/// A batch takes large filings only up to its budget (256 KiB as submitted, at least one), so
/// one carrier's flood of large filings cannot make every commit long for everyone: sixteen
/// filings of 200 KB sent at once take a batch each, the small filings sent among them are not
/// held behind them, every one is registered once, and a close waits for the held ones.
#[tokio::test]
async fn large_filings_take_a_batch_each_and_small_ones_are_not_held_behind_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, _) = open(tmp.path());
    let batches_before = store.stats().batches.load(Ordering::Relaxed);
    let register = |store: &Store, lrn: String, large: bool| {
        let mut filing = filing(&lrn);
        if large {
            filing.submitted_bytes = 200 * 1024;
        }
        // Counted as on its way from now: the writer's first batch waits (briefly) for all.
        let arrival = store.arrival();
        let store = store.clone();
        tokio::spawn(async move {
            let answer = store.register_arrived(filing, arrival).await;
            (large, answer.expect("register"))
        })
    };
    let tasks: Vec<_> = (0..32)
        .map(|i| register(&store, format!("MIX-{i:02}"), i % 2 == 0))
        .collect();
    let (mut large, mut small) = (Vec::new(), Vec::new());
    for task in tasks {
        let (is_large, answer) = task.await.expect("task");
        let Registration::Registered(receipt) = answer else {
            panic!("each LRN is new: {answer:?}");
        };
        if is_large { &mut large } else { &mut small }.push(receipt.sequence);
    }
    let mut sequences: Vec<u64> = large.iter().chain(&small).copied().collect();
    sequences.sort_unstable();
    sequences.dedup();
    assert_eq!(sequences.len(), 32, "one sequence each");
    let batches = store.stats().batches.load(Ordering::Relaxed) - batches_before;
    assert!(
        batches >= 16,
        "two 200 KB filings exceed a batch's budget: {batches} batches for 16"
    );
    // Sent interleaved with the large ones, the small ones go with the first batches; in
    // arrival order all 16 large ones would have come before the last small one. (Not 1: the
    // sending thread may be preempted mid-burst, and the writer writes what has come.)
    let last_small = small.iter().max().copied().unwrap_or_default();
    let large_before = large.iter().filter(|&&s| s < last_small).count();
    assert!(
        large_before <= 8,
        "{large_before} large filings were written before the last small one"
    );

    // Large filings still held when the store closes are written before the close is answered.
    let tasks: Vec<_> = (0..8)
        .map(|i| register(&store, format!("LATE-{i}"), true))
        .collect();
    tokio::task::yield_now().await;
    store.clone().close().await;
    for task in tasks {
        let (_, answer) = task.await.expect("task");
        assert!(matches!(answer, Registration::Registered(_)), "{answer:?}");
    }
    assert_eq!(common::log_records(&store).len(), 40);
}

#[tokio::test]
async fn large_records_extend_the_segment_past_its_zeros_and_survive_a_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    let (store, _) = open(data);
    // Records of 300 KB (the bytes as submitted are stored) between small ones: each large one
    // is written past the preallocated zeros, the small ones over the zeros it leaves.
    let register_mixed = |store: &Store, from: usize, to: usize| {
        let store = store.clone();
        async move {
            for i in from..to {
                let mut filing = filing(&format!("EXT-{i}"));
                if i % 2 == 0 {
                    filing.original = vec![b'<'; 300 * 1024];
                }
                let answer = store.register(filing).await.expect("register");
                assert!(matches!(answer, Registration::Registered(_)), "{answer:?}");
            }
        }
    };
    register_mixed(&store, 0, 7).await;
    store.close().await;
    let segment = newest_segment(data);
    let end = common::records_end(&segment);
    let len = std::fs::metadata(&segment).expect("segment").len();
    assert!(end > 4 * 300 * 1024, "four large records: {end} bytes");
    // The last record is a large one: the file ends a little after it, not at the end of a
    // 1 MiB step of zeros.
    assert!(
        len > end && len - end <= 64 * 1024,
        "the file ends within 64 KiB of its records ({len} bytes for {end})"
    );
    // A process killed between a large record and the zeros after it leaves the file ending
    // with the record.
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open")
        .set_len(end)
        .expect("cut the zeros");

    let (store, recovery) = open(data);
    assert_eq!(recovery.last_seq, 7);
    assert!(recovery.cut.is_none(), "{:?}", recovery.cut);
    register_mixed(&store, 7, 10).await;
    store.close().await;
    let (store, recovery) = open(data);
    assert_eq!(recovery.last_seq, 10);
    assert!(recovery.cut.is_none(), "{:?}", recovery.cut);
    let records = common::log_records(&store);
    assert_eq!(records.len(), 10);
    let large = records.iter().filter(|r| r.original.len() == 300 * 1024);
    assert_eq!(large.count(), 5, "every large record reads back whole");
    store.close().await;
}

#[tokio::test]
async fn a_second_store_on_the_same_data_directory_is_refused_before_recovery() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, _) = open(tmp.path());
    register_all(&store, ["LRN-1".to_owned()]).await;
    // An in-progress write at the end of the live log must not be "recovered" by an intruder.
    let segment = newest_segment(tmp.path());
    OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("open")
        .write_all(&[0x40, 0, 0, 0, 1, 2])
        .expect("append");
    let len = std::fs::metadata(&segment).expect("meta").len();
    match Store::open(tmp.path(), options(64 * 1024 * 1024)) {
        Err(StoreError::Locked { path, .. }) => assert!(path.ends_with("LOCK")),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(&segment).expect("meta").len(),
        len,
        "nothing cut"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_document_is_filed_once_per_filer_within_the_window() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, _) = open(tmp.path());
    let first = match store.register(filing("DOC-1")).await.expect("register") {
        Registration::Registered(receipt) => receipt,
        other => panic!("{other:?}"),
    };
    // Another LRN naming the same bill of lading: refused, naming the first MRN.
    let mut again = filing("DOC-2");
    again.master_documents = vec!["BL-DOC-1".into()];
    match store.register(again).await.expect("register") {
        Registration::DuplicateDocument { document, mrn } => {
            assert_eq!(document, "BL-DOC-1");
            assert_eq!(mrn.as_str(), first.mrn);
        }
        other => panic!("expected a duplicate document, got {other:?}"),
    }
    // Two new filings of one new document in one batch: exactly one gets it.
    let (a, b) = {
        let mut a = filing("DOC-3");
        let mut b = filing("DOC-4");
        a.master_documents = vec!["BL-SHARED".into()];
        b.master_documents = vec!["BL-SHARED".into()];
        tokio::join!(store.register(a), store.register(b))
    };
    let outcomes = [a.expect("a"), b.expect("b")];
    let registered = outcomes
        .iter()
        .filter(|o| matches!(o, Registration::Registered(_)))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Registration::DuplicateDocument { .. }))
        .count();
    assert_eq!((registered, refused), (1, 1), "{outcomes:?}");
    // Past the window, the document may be filed again.
    let mut later = filing("DOC-5");
    later.master_documents = vec!["BL-DOC-1".into()];
    later.received_at += Duration::from_secs(366 * 86_400);
    assert!(matches!(
        store.register(later).await.expect("register"),
        Registration::Registered(_)
    ));
    // The reservation is part of the index rebuilt from the log.
    store.caught_up().await.expect("indexed");
    let before = store.index().dump().expect("dump");
    store.close().await;
    store::reindex(tmp.path(), 64 * 1024 * 1024, &mut |_| {}).expect("reindex");
    let (store, _) = open(tmp.path());
    assert_eq!(store.index().dump().expect("dump"), before);
    store.close().await;
}

fn envelope(origin: &str, sequence: u64, with_manifest: bool) -> aci_gateway::pb::Envelope {
    aci_gateway::pb::Envelope {
        origin: origin.into(),
        origin_sequence: sequence,
        kind: aci_gateway::pb::EnvelopeKind::Filing as i32,
        mrn: aci_gateway::ids::Mrn::issue(2026, "NL", Seq(sequence)).to_string(),
        filer: "NL812345678".into(),
        lrn: format!("NL-LRN-{sequence}"),
        version: 1,
        manifest: with_manifest
            .then(|| Box::new(common::sea_filing(&format!("NL-LRN-{sequence}")))),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_stored_once_and_refusals_are_remembered() {
    use aci_gateway::store::Delivery;
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, _) = open(tmp.path());
    let first = store
        .receive(envelope("NL-1", 5, true))
        .await
        .expect("receive");
    assert_eq!(
        first,
        Delivery::Stored {
            local_sequence: 1,
            duplicate: false
        }
    );
    let again = store
        .receive(envelope("NL-1", 5, true))
        .await
        .expect("redelivery");
    assert_eq!(
        again,
        Delivery::Stored {
            local_sequence: 1,
            duplicate: true
        }
    );
    // The same sequence from another origin is another envelope.
    let other = store
        .receive(envelope("BE-1", 5, true))
        .await
        .expect("other origin");
    assert_eq!(
        other,
        Delivery::Stored {
            local_sequence: 2,
            duplicate: false
        }
    );

    // A refused envelope is refused again, even resent in a correct form: never "delivered".
    let refused = store
        .receive(envelope("NL-1", 6, false))
        .await
        .expect("refusal");
    assert!(
        matches!(&refused, Delivery::Refused { code, duplicate: false, .. } if code == "INVALID_ENVELOPE"),
        "{refused:?}"
    );
    let resent = store
        .receive(envelope("NL-1", 6, true))
        .await
        .expect("resent");
    assert!(
        matches!(
            &resent,
            Delivery::Refused {
                duplicate: true,
                ..
            }
        ),
        "{resent:?}"
    );

    // Concurrent redeliveries of one envelope: one record, one first answer.
    let answers = futures_join(&store, envelope("NL-1", 7, true), 12).await;
    assert_eq!(
        answers
            .iter()
            .filter(|a| matches!(
                a,
                Delivery::Stored {
                    duplicate: false,
                    ..
                }
            ))
            .count(),
        1
    );
    assert!(
        answers.iter().all(|a| matches!(
            a,
            Delivery::Stored {
                local_sequence: 4,
                ..
            }
        )),
        "{answers:?}"
    );
    assert_eq!(common::log_records(&store).len(), 4);
    store.close().await;

    // Remembered across a restart with the index rebuilt from the log.
    store::reindex(tmp.path(), 64 * 1024 * 1024, &mut |_| {}).expect("reindex");
    let (store, _) = open(tmp.path());
    assert_eq!(
        store
            .receive(envelope("NL-1", 5, true))
            .await
            .expect("after restart"),
        Delivery::Stored {
            local_sequence: 1,
            duplicate: true
        }
    );
    assert!(matches!(
        store
            .receive(envelope("NL-1", 6, true))
            .await
            .expect("after restart"),
        Delivery::Refused {
            duplicate: true,
            ..
        }
    ));
    assert_eq!(
        common::log_records(&store).len(),
        4,
        "nothing applied twice"
    );
    store.close().await;
}

async fn futures_join(
    store: &Store,
    envelope: aci_gateway::pb::Envelope,
    times: usize,
) -> Vec<aci_gateway::store::Delivery> {
    let tasks: Vec<_> = (0..times)
        .map(|_| {
            let (store, envelope) = (store.clone(), envelope.clone());
            tokio::spawn(async move { store.receive(envelope).await.expect("receive") })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    answers
}

#[tokio::test]
async fn a_reader_tails_the_log_across_segments_while_it_grows() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, _) = Store::open(tmp.path(), options(8 * 1024)).expect("open");
    let mut durable = store.durable();
    assert_eq!(*durable.borrow_and_update(), 0);
    let mut reader = store.reader(Seq(1));
    assert!(reader.read(0, 10).expect("nothing yet").is_empty());
    let mut seen = Vec::new();
    for round in 0..6 {
        let acknowledged = register_all(&store, (1..=12).map(|i| format!("TAIL-{round}-{i}")))
            .await
            .last()
            .copied()
            .expect("twelve");
        // The head moves once a batch is indexed too, which may be just after its answer.
        durable
            .wait_for(|&head| head >= acknowledged)
            .await
            .expect("the writer publishes");
        let last = *durable.borrow_and_update();
        // Bounded reads up to the durable sequence, never past it.
        loop {
            let batch = reader.read(last, 5).expect("reads");
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 5);
            seen.extend(batch.iter().map(|r| r.sequence));
        }
        assert_eq!(seen.last(), Some(&last));
    }
    assert!(
        list_segments(&tmp.path().join("log"))
            .expect("segments")
            .len()
            >= 3
    );
    assert_eq!(seen, (1..=72).collect::<Vec<_>>());
    // A reader can start anywhere, in any segment.
    let mut middle = store.reader(Seq(37));
    let rest: Vec<u64> = middle
        .read(72, 100)
        .expect("reads")
        .iter()
        .map(|r| r.sequence)
        .collect();
    assert_eq!(rest, (37..=72).collect::<Vec<_>>());
    store.close().await;
}

/// Changes the first four filings (LRNs `<prefix>-0` …) each another way: amends the first,
/// registers the second's arrival, invalidates the third, and a peer's notice holds the fourth.
async fn change_each_way(store: &Store, prefix: &str, mrns: &[String]) {
    let mrn = |i: usize| aci_gateway::ids::Mrn::parse(&mrns[i]).expect("mrn");
    let at = SystemTime::now();
    let mut amended = filing(&format!("{prefix}-0"));
    amended.manifest.consignments[0].goods_items[0].description = "amended".into();
    let changes = [
        (0, store::Change::Amend(Box::new(amended))),
        (1, store::Change::Arrive { at, facts: None }),
        (
            2,
            store::Change::Invalidate {
                reason: "withdrawn".into(),
                at,
            },
        ),
    ];
    for (i, change) in changes {
        store
            .change(mrn(i), change, String::new())
            .await
            .expect("change");
    }
    let notice = aci_gateway::pb::Notice {
        notice_id: format!("N-{prefix}"),
        mrn: mrns[3].clone(),
        kind: aci_gateway::pb::NoticeKind::DoNotLoad as i32,
        text: "hold".into(),
        ..Default::default()
    };
    store.notify("TEST-B", notice).await.expect("notice");
}

#[tokio::test]
async fn applying_records_again_after_a_crash_between_their_effects_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, _) = Store::open(tmp.path(), options(64 * 1024 * 1024)).expect("open");
    let mrns = registered_mrns(&store, "IDEM", 6).await;
    change_each_way(&store, "IDEM", &mrns).await;
    let records = common::log_records(&store);
    store.caught_up().await.expect("indexed");
    let once = store.index().dump().expect("dump");

    // A crash between a batch's effects and its high-water mark: replay applies them again,
    // from anywhere in the log, in one batch or record by record.
    for from in [0, records.len() / 2, records.len() - 1] {
        store.index().apply(&records[from..]).expect("apply again");
        assert!(
            store.index().dump().expect("dump") == once,
            "applying from {from} again"
        );
        for record in &records[from..] {
            store
                .index()
                .apply(std::slice::from_ref(record))
                .expect("apply again");
        }
        assert!(
            store.index().dump().expect("dump") == once,
            "record by record from {from}"
        );
    }
    store.close().await;
}

/// Copies a folder's files (and folders) but the index's tables, from `from` into `to`.
fn copy_sled_part(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if [".records", ".slots", ".slots.old", ".positions"]
            .iter()
            .any(|table| name.ends_with(table))
        {
            continue;
        }
        if entry.file_type().expect("type").is_dir() {
            copy_sled_part(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).expect("copy");
        }
    }
}

/// Sled buffers its writes and the tables write through, so a crash can leave sled behind the
/// tables: it lost the feed entries, notices and timers of records whose filing entries the
/// tables hold. Replaying from the checkpoint's mark (as it was) derives them again; what
/// cannot be (the timers an arrival or invalidation dropped) is left for the scheduler, which
/// finds they no longer apply.
#[tokio::test]
async fn an_index_whose_sled_part_lags_its_tables_after_a_crash_is_made_whole_by_replay() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let (store, _) = open(&data);
    let mrns = registered_mrns(&store, "LAG", 4).await;
    store.close().await;
    // What a crash would leave of sled and of the mark: their state now.
    let saved = tmp.path().join("sled-before");
    copy_sled_part(&data.join("index"), &saved);

    let (store, _) = open(&data);
    let mrn = |i: usize| aci_gateway::ids::Mrn::parse(&mrns[i]).expect("mrn");
    change_each_way(&store, "LAG", &mrns).await;
    store.caught_up().await.expect("indexed");
    let once = store.index().dump().expect("dump");
    let feed = store
        .index()
        .notifications(&mrns_filer(&store, &mrn(3)), 0, 100);
    store.close().await;

    // The crash: sled and the mark as they were before the changes, the tables as they are.
    let index = data.join("index");
    for entry in std::fs::read_dir(&index).expect("read_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if [".records", ".slots", ".positions"]
            .iter()
            .any(|t| name.ends_with(t))
        {
            continue;
        }
        if entry.file_type().expect("type").is_dir() {
            std::fs::remove_dir_all(entry.path()).expect("remove");
        } else {
            std::fs::remove_file(entry.path()).expect("remove");
        }
    }
    copy_sled_part(&saved, &index);

    let (store, _) = open(&data);
    let replayed = store.index().dump().expect("dump");
    fn without_timers(dump: &[store::IndexEntry]) -> Vec<&store::IndexEntry> {
        dump.iter()
            .filter(|(tree, _, _)| *tree != "timers")
            .collect()
    }
    assert!(
        without_timers(&replayed) == without_timers(&once),
        "every tree but the timers is as if each record had been applied once"
    );
    assert_eq!(
        store
            .index()
            .notifications(&mrns_filer(&store, &mrn(3)), 0, 100)
            .expect("feed"),
        feed.expect("feed"),
        "the carrier's feed has the notice again"
    );
    let timers = |dump: &[store::IndexEntry]| {
        dump.iter()
            .filter(|(tree, _, _)| *tree == "timers")
            .map(|(_, key, _)| key.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (after, before) = (timers(&replayed), timers(&once));
    assert!(after.is_superset(&before), "no timer is lost");
    // The timers left over are of the arrived and the invalidated filing, and firing them
    // changes nothing: the scheduler drops them when they come due.
    let stale = [mrn(1), mrn(2)];
    for key in after.difference(&before) {
        let mrn_of_key = String::from_utf8_lossy(&key[8..8 + aci_gateway::ids::Mrn::LEN]);
        assert!(
            stale.iter().any(|m| m.as_str() == mrn_of_key),
            "a left-over timer of {mrn_of_key}"
        );
    }
    let far = SystemTime::now() + Duration::from_secs(400 * 86_400);
    let (due, _) = store.due_timers(far, 100).expect("timers");
    let mut left_over = 0;
    for (mrn_of_timer, timer) in due {
        if !stale.contains(&mrn_of_timer) {
            continue;
        }
        left_over += 1;
        let fired = store
            .change(mrn_of_timer, store::Change::Fire(timer), String::new())
            .await
            .expect("fire");
        assert!(
            !matches!(fired, store::Changed::Applied(_)),
            "a left-over timer does not apply: {fired:?}"
        );
    }
    assert_eq!(left_over, after.len() - before.len());
    store.close().await;
}

fn mrns_filer(store: &Store, mrn: &aci_gateway::ids::Mrn) -> String {
    store.status(mrn).expect("status").expect("a filing").filer
}

/// Automatic invalidations are read from the log, not kept in the index: each fires once (none
/// for a filing whose goods arrived), and a scheduler that lost its place (sled is not
/// fsynced) reads the log again without firing anything twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_invalidations_come_from_the_log_and_fire_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path();
    let quick = || {
        let mut options = options(64 * 1024 * 1024);
        options.timers.automatic_invalidation = Some(Duration::from_secs(1));
        options
    };
    let (store, _) = Store::open(data, quick()).expect("open");
    let mrns: Vec<_> = registered_mrns(&store, "AUTO", 3)
        .await
        .iter()
        .map(|mrn| aci_gateway::ids::Mrn::parse(mrn).expect("mrn"))
        .collect();
    let arrival = store::Change::Arrive {
        at: SystemTime::now(),
        facts: None,
    };
    store
        .change(mrns[1].clone(), arrival, String::new())
        .await
        .expect("arrive");
    store.caught_up().await.expect("indexed");
    assert!(
        store
            .index()
            .dump()
            .expect("dump")
            .iter()
            .all(|(tree, _, _)| *tree != "timers"),
        "no automatic invalidation in the index"
    );

    let state = |store: &Store, i: usize| {
        store
            .status(&mrns[i])
            .expect("status")
            .expect("a filing")
            .state()
    };
    let invalidations = |store: &Store| {
        common::log_records(store)
            .iter()
            .filter(|r| r.kind() == aci_gateway::pb::store::RecordKind::Invalidation)
            .count()
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let scheduler = tokio::spawn(store::scheduler::run(store.clone(), shutdown.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while [0, 2]
        .iter()
        .any(|&i| state(&store, i) != aci_gateway::pb::FilingState::Invalidated)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "not invalidated in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state(&store, 1), aci_gateway::pb::FilingState::Arrived);
    let swept = store.swept().expect("swept");
    shutdown.cancel();
    scheduler.await.expect("scheduler");
    assert_eq!(invalidations(&store), 2);

    // The scheduler's place lost: it reads the log from the start, and nothing fires again.
    store.set_swept(0).expect("forget");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let scheduler = tokio::spawn(store::scheduler::run(store.clone(), shutdown.clone()));
    while store.swept().expect("swept") < swept {
        assert!(
            std::time::Instant::now() < deadline,
            "not swept again in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    scheduler.await.expect("scheduler");
    assert_eq!(invalidations(&store), 2, "each fired once");
    store.close().await;
}

/// The log backend's contract, on the embedded log: records go exactly at the log's next
/// sequence or not at all, are sealed into the chain, wake the durable head, and read back.
#[test]
fn the_embedded_backend_keeps_the_log_backend_contract() {
    use aci_gateway::store::{EmbeddedLog, LogBackend};
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = std::sync::Arc::new(aci_gateway::store::OsDisk);
    let (log, recovery) = EmbeddedLog::open(disk, dir.path(), 1 << 20).expect("open");
    assert_eq!((recovery.last_seq, log.next_seq()), (0, Seq(1)));
    let head = log.durable_head();

    let record = |sequence| LogRecord {
        sequence,
        mrn: format!("record {sequence}"),
        ..LogRecord::default()
    };
    let mut out_of_order = vec![record(2)];
    assert!(matches!(
        log.append(&mut out_of_order, &Default::default()),
        Err(LogError::OutOfOrder {
            expected: 1,
            found: 2
        })
    ));
    log.repair().expect("nothing to repair");
    assert_eq!(log.next_seq(), Seq(1), "a refused batch takes no sequence");
    assert_eq!(*head.borrow(), 0);

    let mut batch = vec![record(1), record(2), record(3)];
    let appended = log.append(&mut batch, &Default::default()).expect("append");
    assert_eq!((appended.first, appended.last), (1, 3));
    assert!(head.has_changed().expect("open") && *head.borrow() == 3);
    assert_eq!(batch[1].prev_hash, batch[0].hash, "sealed into one chain");

    let mut cursor = log.cursor(Seq(2));
    let read = cursor.read(3, 10).expect("read");
    assert_eq!(read, batch[1..].to_vec());
    assert_eq!(cursor.next_seq(), 4);
}

/// The writer answers before it indexes a batch: a read that catches up first sees every write
/// acknowledged before it (what status, amendments and answers do), from any task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_after_catching_up_sees_every_acknowledged_filing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, _) = open(tmp.path());
    let filer = Eori::parse(common::CARRIER).expect("eori");
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (store, filer) = (store.clone(), filer.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let lrn = format!("SEEN-{worker}-{i}");
                let Registration::Registered(receipt) =
                    store.register(filing(&lrn)).await.expect("register")
                else {
                    panic!("{lrn} was new");
                };
                store.caught_up().await.expect("indexed");
                let status = store
                    .status_by_lrn(&filer, &Lrn::parse(&lrn).expect("lrn"))
                    .expect("index")
                    .unwrap_or_else(|| panic!("{lrn} acknowledged but not found"));
                assert_eq!(status.mrn, receipt.mrn);
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    store.close().await;
}
