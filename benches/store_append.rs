//! Durable appends: the store's group commit at 1, 16 and 64 concurrent appenders (records of
//! about 5 KB), against the raw rate of one 4 KiB write + fdatasync per record on the same disk.
//!
//! `cargo bench --bench store_append` prints criterion's figures for each, then a side-by-side
//! summary measured in one run: records/s, fdatasync calls per record, and the ratio of group
//! commit to one fdatasync per record.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aci_gateway::store::{NewFiling, Store, StoreOptions};
use aci_gateway::validate;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const RECORD_BYTES: usize = 5 * 1024;
const CONCURRENCY: [usize; 3] = [1, 16, 64];

static NEXT_LRN: AtomicU64 = AtomicU64::new(0);
static SAMPLE: std::sync::LazyLock<aci_gateway::pb::Manifest> = std::sync::LazyLock::new(|| {
    aci_gateway::pb::from_json(include_str!("../schemas/examples/sea-f10.json")).expect("sample")
});

fn bench_dir() -> tempfile::TempDir {
    // Beside target/, on the project's disk (not a tmpfs).
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("bench dir")
}

/// A filing whose log record is about 5 KB: the sea sample plus original bytes to make up the size.
fn filing() -> NewFiling {
    let mut manifest = SAMPLE.clone();
    let n = NEXT_LRN.fetch_add(1, Ordering::Relaxed);
    manifest.lrn = format!("BENCH-{n}");
    if let Some(document) = manifest.consignments[0].transport_document.as_mut() {
        document.number = format!("BL-BENCH-{n}");
    }
    let accepted = validate::Validator::standard()
        .validate(manifest, SystemTime::now())
        .expect("valid");
    let manifest_len = prost::Message::encoded_len(&accepted.manifest);
    NewFiling {
        filer: accepted.filer,
        lrn: accepted.lrn,
        digest: accepted.digest,
        version_1_digest: accepted.version_1_digest,
        manifest: accepted.manifest,
        manifest_encoding: Some(accepted.encoded),
        original: vec![b'x'; RECORD_BYTES.saturating_sub(manifest_len)],
        original_type: "application/x-protobuf",
        submitted_bytes: RECORD_BYTES,
        warnings: Vec::new(),
        received_at: SystemTime::now(),
        traceparent: String::new(),
        master_documents: accepted.master_documents,
        house_references: accepted.house_references,
        next_filing_party: accepted.next_filing_party,
        due: accepted.due,
    }
}

fn open_store(dir: &Path) -> Store {
    let (store, _) = Store::open(
        dir,
        StoreOptions {
            country: "GB".into(),
            segment_bytes: 64 * 1024 * 1024,
            max_batch: 1024,
            duplicate_document_window: Duration::from_secs(365 * 86_400),
            immutable: Default::default(),
            timers: Default::default(),
            sync: true,
            disk: std::sync::Arc::new(aci_gateway::store::OsDisk),
            jetstream: None,
        },
    )
    .expect("store");
    store
}

/// Registers `count` filings from `concurrency` tasks; returns the elapsed time.
async fn append(store: &Store, count: u64, concurrency: usize) -> Duration {
    let filings: Vec<Vec<NewFiling>> = (0..concurrency)
        .map(|c| {
            let share =
                count / concurrency as u64 + u64::from((c as u64) < count % concurrency as u64);
            (0..share).map(|_| filing()).collect()
        })
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = filings
        .into_iter()
        .map(|batch| {
            let store = store.clone();
            tokio::spawn(async move {
                for f in batch {
                    store.register(f).await.expect("register");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("appender");
    }
    started.elapsed()
}

/// `count` times: write 4 KiB, fdatasync. Returns the elapsed time.
fn raw_fdatasync(file: &mut File, count: u64) -> Duration {
    let block = [0x5au8; 4096];
    let started = Instant::now();
    for _ in 0..count {
        file.write_all(&block).expect("write");
        file.sync_data().expect("fdatasync");
    }
    started.elapsed()
}

fn raw_file(dir: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("raw.bin"))
        .expect("raw file")
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = bench_dir();

    let mut group = c.benchmark_group("durable_append");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    let mut file = raw_file(dir.path());
    group.bench_function("raw_4k_write_fdatasync", |b| {
        b.iter_custom(|iters| raw_fdatasync(&mut file, iters))
    });
    let store = runtime.block_on(async { open_store(&dir.path().join("store")) });
    for concurrency in CONCURRENCY {
        group.bench_function(format!("store_5k_concurrency_{concurrency}"), |b| {
            b.iter_custom(|iters| runtime.block_on(append(&store, iters, concurrency)))
        });
    }
    group.finish();
    runtime.block_on(store.close());

    summary(&runtime);
}

/// One side-by-side run of every configuration, with fdatasync calls per record.
fn summary(runtime: &tokio::runtime::Runtime) {
    let dir = bench_dir();
    let mut file = raw_file(dir.path());
    raw_fdatasync(&mut file, 20); // warm up
    let raw_count = 400;
    let raw_rate = raw_count as f64 / raw_fdatasync(&mut file, raw_count).as_secs_f64();
    println!("\nsummary (one run, same disk):");
    println!(
        "  raw 4 KiB write + fdatasync per record: {raw_rate:>9.0} records/s, 1.000 fdatasync/record"
    );
    for concurrency in CONCURRENCY {
        let store = open_store(&dir.path().join(format!("store-{concurrency}")));
        let count = (concurrency as u64 * 100).clamp(400, 6400);
        runtime.block_on(append(&store, 64, concurrency)); // warm up
        let records_before = store.stats().records.load(Ordering::Relaxed);
        let syncs_before = store.stats().syncs.load(Ordering::Relaxed);
        let elapsed = runtime.block_on(append(&store, count, concurrency));
        let records = store.stats().records.load(Ordering::Relaxed) - records_before;
        let syncs = store.stats().syncs.load(Ordering::Relaxed) - syncs_before;
        let rate = count as f64 / elapsed.as_secs_f64();
        println!(
            "  store, 5 KB records, {concurrency:>2} appenders:      {rate:>9.0} records/s, {:.3} fdatasync/record, {:.1}x raw",
            syncs as f64 / records as f64,
            rate / raw_rate
        );
        runtime.block_on(store.close());
    }
}

criterion_group!(store_append, benches);
criterion_main!(store_append);
