//! Counters of the append path, shared with the metrics endpoint and the benchmark.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::table::WouldWait;

/// Histogram bounds for the append path's latencies, in seconds.
const LATENCY_BOUNDS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Counters of the append path (shared with the metrics endpoint and the benchmark).
#[derive(Debug)]
pub struct Stats {
    /// Seconds to write and sync each batch made durable (a failed one is not counted).
    pub commit_latency: crate::telemetry::Histogram,
    /// Records per batch made durable.
    pub batch_size: crate::telemetry::Histogram,
    /// Seconds in `fdatasync` per batch made durable.
    pub sync_latency: crate::telemetry::Histogram,
    /// Seconds from asking to register a filing to its answer (queue, batch, sync, index).
    pub append_latency: crate::telemetry::Histogram,
    pub records: AtomicU64,
    pub batches: AtomicU64,
    pub syncs: AtomicU64,
    /// The last sequence known to be on disk.
    pub durable_seq: AtomicU64,
    /// Whether the last batch could be written (false while the disk is full or failing).
    pub writable: AtomicBool,
    /// Index reads that gave up on an async worker, by [`WouldWait`] (in its `ALL` order).
    pub reads_waited: [AtomicU64; WouldWait::ALL.len()],
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            commit_latency: crate::telemetry::Histogram::new(LATENCY_BOUNDS),
            batch_size: crate::telemetry::Histogram::new(&[
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ]),
            sync_latency: crate::telemetry::Histogram::new(LATENCY_BOUNDS),
            append_latency: crate::telemetry::Histogram::new(LATENCY_BOUNDS),
            records: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            durable_seq: AtomicU64::new(0),
            writable: AtomicBool::new(true),
            reads_waited: Default::default(),
        }
    }
}

impl Stats {
    /// The values of these counters now, for the metrics endpoint.
    pub fn series(&self) -> crate::telemetry::StoreSeries<'_> {
        crate::telemetry::StoreSeries {
            commit_latency: &self.commit_latency,
            batch_size: &self.batch_size,
            sync_latency: &self.sync_latency,
            append_latency: &self.append_latency,
            records: self.records.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            durable_seq: self.durable_seq.load(Ordering::Relaxed),
            writable: self.writable.load(Ordering::Relaxed),
            reads_waited: WouldWait::ALL.map(|cause| {
                (
                    cause.label(),
                    self.reads_waited[cause as usize].load(Ordering::Relaxed),
                )
            }),
        }
    }

    /// Counts an index read that gave up on an async worker.
    pub(super) fn read_waited(&self, cause: WouldWait) {
        self.reads_waited[cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_batch(
        &self,
        records: u64,
        syncs: u64,
        sync_time: Duration,
        elapsed: Duration,
    ) {
        self.commit_latency.observe(elapsed.as_secs_f64());
        self.sync_latency.observe(sync_time.as_secs_f64());
        self.batch_size.observe(records as f64);
        self.records.fetch_add(records, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.syncs.fetch_add(syncs, Ordering::Relaxed);
    }
}
