//! The log behind a trait: what the store needs of the log that holds its records, and the
//! embedded segment log as its implementation.
//!
//! # The contract
//!
//! - **Order and sequences.** Records are numbered 1, 2, 3, … without gaps. The store decides a
//!   batch against [`LogBackend::next_seq`] (an MRN is issued from its record's sequence) and
//!   hands the records over carrying those sequences; a backend appends them exactly there or
//!   not at all ([`LogError::OutOfOrder`] when they are not the next ones; [`LogError::Behind`]
//!   when a shared log moved on meanwhile, see below).
//! - **Sealing.** The backend seals each record into the hash chain (previous hash, own hash)
//!   on the way in; receipts carry the hash.
//! - **Durable.** [`LogBackend::append`] returns `Ok` only once every record of the batch would
//!   survive the loss of power of the machine that wrote it (the embedded log: written and
//!   `fdatasync`ed; a replicated backend: acknowledged by a quorum that syncs each write). Only
//!   then does the store answer anyone. On `Err`, none of the batch counts as appended: no
//!   reader is ever given it, and the next append starts at the same sequence, after
//!   [`LogBackend::repair`] undid whatever the failed write left.
//! - **A torn tail** is what a crash leaves past the last durable record: a frame cut short,
//!   a bad checksum, zeroed space. It was never acknowledged; opening the log cuts it off (and
//!   keeps it aside for the operator). Damage *followed by* intact records is corruption of
//!   durable data, and opening refuses rather than drop acknowledged records.
//! - **Reading.** [`LogBackend::cursor`] reads forward from any sequence up to a durable one,
//!   verifying each record (checksum, own hash, link to the one before).
//! - **Several writers.** A shared log ([`LogBackend::is_shared`], the JetStream log of
//!   `jetstream`) refuses a batch with [`LogError::Behind`] when another writer appended since
//!   this one last looked; the writer then takes their records ([`LogBackend::follow`]) into
//!   its index and decides the batch again. Between batches it follows the log too.
//! - **Waking.** [`LogBackend::durable_head`] moves whenever the durable head does, by this
//!   writer or (for a shared log) another: the log's own head, before any index has the
//!   records. Readers of the store wait on `Store::durable` instead, which moves only once the
//!   index has them too.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::ids::Seq;
use crate::pb::store::LogRecord;

use super::disk::Disk;
use super::log::{LogError, LogReader, Mark, Recovery, SegmentLog};
use super::record::{EncodedManifests, RecordHead, SharedRecord};

/// What appending one batch cost, for the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Appended {
    /// The sequences the batch took.
    pub first: u64,
    pub last: u64,
    /// Syncs made and the time spent in them.
    pub syncs: u64,
    pub sync_time: Duration,
}

/// A durable, ordered, hash-chained log of records (see the module doc for the contract).
pub trait LogBackend: Send + Sync + std::fmt::Debug {
    /// The sequence the next appended record gets (1 for an empty log).
    fn next_seq(&self) -> Seq;
    /// Seals and appends `records`, which carry the sequences `next_seq()..`, each with its
    /// manifest from `manifests` if it came encoded, and returns once all of them are durable.
    /// An empty batch is a no-op.
    fn append(
        &self,
        records: &mut [LogRecord],
        manifests: &EncodedManifests,
    ) -> Result<Appended, LogError>;
    /// Undoes what a failed append left, if anything; `Ok` once appends can go on.
    fn repair(&self) -> Result<(), LogError>;
    /// A reader of the log from `from` on.
    fn cursor(&self, from: Seq) -> Box<dyn LogCursor>;
    /// The last durable sequence, and its changes.
    fn durable_head(&self) -> watch::Receiver<u64>;
    /// Whether other processes append to this log too (its appends can then be
    /// [`LogError::Behind`], and [`LogBackend::follow`] brings what they appended).
    fn is_shared(&self) -> bool {
        false
    }
    /// The records other writers appended since this one last appended or followed, verified
    /// and in order; `next_seq` moves past them. Nothing for a log with one writer.
    fn follow(&self) -> Result<Vec<LogRecord>, LogError> {
        Ok(Vec::new())
    }
    /// The most bytes of sealed, framed records one append takes (a shared log's message size);
    /// the writer cuts batches to fit. `None`: no bound.
    fn max_append_bytes(&self) -> Option<u64> {
        None
    }
    /// Housekeeping for after a batch's callers are answered, off the acknowledgement's path
    /// (the embedded log releases the page cache behind its end). Nothing by default.
    fn after_answers(&self) {}
    /// The last record the log holds now, asked of the log itself (for a shared log, one round
    /// trip): what a read must wait for to see every write acknowledged before it.
    fn latest(&self) -> Result<u64, LogError> {
        Ok(*self.durable_head().borrow())
    }
}

/// Reads a log forward, a bounded batch at a time, while it grows.
pub trait LogCursor: Send + std::fmt::Debug {
    /// The sequence of the next record to read.
    fn next_seq(&self) -> u64;
    /// Records from the next one up to `last` (inclusive, durable), at most `max`.
    fn read(&mut self, last: u64, max: usize) -> Result<Vec<LogRecord>, LogError>;
    /// As [`LogCursor::read`], only the records' heads: for a reader that looks at every record
    /// for a few of them. A log that can read heads alone for less says so by overriding this.
    fn read_heads(&mut self, last: u64, max: usize) -> Result<Vec<RecordHead>, LogError> {
        Ok(self
            .read(last, max)?
            .into_iter()
            .map(RecordHead::from)
            .collect())
    }
    /// As [`LogCursor::read`], the records as they are shared with peers (their manifests
    /// left encoded): for the forwarder and the peers' feeds.
    fn read_shared(&mut self, last: u64, max: usize) -> Result<Vec<SharedRecord>, LogError> {
        Ok(self
            .read(last, max)?
            .into_iter()
            .map(SharedRecord::from)
            .collect())
    }
}

impl LogCursor for LogReader {
    fn next_seq(&self) -> u64 {
        LogReader::next_seq(self)
    }
    fn read(&mut self, last: u64, max: usize) -> Result<Vec<LogRecord>, LogError> {
        LogReader::read(self, last, max)
    }
    fn read_heads(&mut self, last: u64, max: usize) -> Result<Vec<RecordHead>, LogError> {
        LogReader::read_heads(self, last, max)
    }
    fn read_shared(&mut self, last: u64, max: usize) -> Result<Vec<SharedRecord>, LogError> {
        LogReader::read_shared(self, last, max)
    }
}

/// The embedded log: segment files in one directory, fdatasync'd per batch.
#[derive(Debug)]
pub struct EmbeddedLog {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    appender: Mutex<Appender>,
    head: watch::Sender<u64>,
}

#[derive(Debug)]
struct Appender {
    log: SegmentLog,
    /// Where a failed batch must be cut back to, if cutting it failed too.
    unsynced: Option<Mark>,
}

impl std::fmt::Debug for SegmentLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentLog")
            .field("next_seq", &self.next_seq())
            .finish_non_exhaustive()
    }
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir` and recovers its tail.
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        segment_bytes: u64,
    ) -> Result<(EmbeddedLog, Recovery), LogError> {
        let (log, recovery) = SegmentLog::open(Arc::clone(&disk), dir, segment_bytes)?;
        let (head, _) = watch::channel(recovery.last_seq);
        let embedded = EmbeddedLog {
            disk,
            dir: dir.to_owned(),
            appender: Mutex::new(Appender {
                log,
                unsynced: None,
            }),
            head,
        };
        Ok((embedded, recovery))
    }

    /// Leaves batches unsynced: for benchmarks measuring what the sync costs.
    #[cfg(feature = "testing")]
    pub fn set_sync(&self, sync: bool) {
        self.appender().log.sync_data = sync;
    }

    fn appender(&self) -> std::sync::MutexGuard<'_, Appender> {
        self.appender.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LogBackend for EmbeddedLog {
    fn next_seq(&self) -> Seq {
        self.appender().log.next_seq()
    }

    fn after_answers(&self) {
        self.appender().log.release_behind();
    }

    fn append(
        &self,
        records: &mut [LogRecord],
        manifests: &EncodedManifests,
    ) -> Result<Appended, LogError> {
        let Some(first) = records.first().map(|r| r.sequence) else {
            return Ok(Appended::default());
        };
        let mut appender = self.appender();
        let log = &mut appender.log;
        let mark = log.mark();
        let (syncs, sync_time) = (log.syncs, log.sync_time);
        let written = records
            .iter_mut()
            .map(|record| {
                let manifest = manifests.get(record.sequence);
                log.seal_next(record, manifest)
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|frames| log.write_batch(first, &frames));
        if let Err(error) = written {
            if let Err(e) = log.roll_back(&mark) {
                tracing::error!(error = %e, "cannot cut the failed batch off the log yet");
                appender.unsynced = Some(mark);
            }
            return Err(error);
        }
        let last = log.next_seq().0 - 1;
        let appended = Appended {
            first,
            last,
            syncs: log.syncs - syncs,
            sync_time: log.sync_time - sync_time,
        };
        self.head.send_replace(last);
        Ok(appended)
    }

    fn repair(&self) -> Result<(), LogError> {
        let mut appender = self.appender();
        let Some(mark) = appender.unsynced.take() else {
            return Ok(());
        };
        if let Err(e) = appender.log.roll_back(&mark) {
            appender.unsynced = Some(mark);
            return Err(e);
        }
        Ok(())
    }

    fn cursor(&self, from: Seq) -> Box<dyn LogCursor> {
        Box::new(LogReader::new(Arc::clone(&self.disk), &self.dir, from))
    }

    fn durable_head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }
}
