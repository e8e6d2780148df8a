//! The index: maps derived from the log, so queries need not read it.
//!
//! The four that grow with every filing or delivery are maps on disk whose memory and start-up
//! do not grow with them: `filings` (MRN → `FilingEntry`), placed by the sequence each MRN was
//! issued for (`store::positions`), and three hash tables (`store::table`): `lrn` ((filer, LRN)
//! → MRN), `documents` ((filer, master transport document) → MRN and filing time, big-endian
//! seconds), `received` ((origin, its sequence) → what became of a delivered envelope). The
//! rest are sled trees: `meta` (the format), `awaiting` (partial
//! filings), `notices` ((filer, sequence) → `Notification`,
//! the carriers' feeds), `notice_ids` ((peer, notice id) → sequence), `timers` ((due, MRN,
//! timer) → the timer: what the scheduler fires, but the automatic invalidations, which it reads
//! from the log; a timer leaves it when its record is applied, when its filing arrives or is
//! invalidated, or when it came due and no longer applied). The high-water mark (the last record
//! applied) is the checkpoint's (`store::checkpoint`), on disk once both stores hold what it
//! covers; every effect is idempotent, so after a crash the records past the mark are replayed
//! and the index is again the image of a log prefix. Neither store's own durability matters for
//! correctness: the log is the truth and replay is idempotent.
//!
//! Three trees are not derived from the log, and survive a rebuild: `cursors` (peer → the last
//! sequence it acknowledged), `refusals` ((peer, sequence) → its refusal) and `scheduler` (how far
//! it fired the automatic invalidations, which it reads from the log). Losing a cursor update
//! (sled is not fsynced) only means a redelivery, which the peer absorbs; losing the scheduler's,
//! that a few timers are looked at again and no longer apply.

use std::sync::Arc;

use prost::Message;

use crate::ids::{Eori, Lrn, Mrn, Seq};
use crate::pb::store::{FilingEntry, LogRecord, RecordKind, Timer};
use crate::pb::{FilingStatus, NoticeKind, Notification};

use super::checkpoint::{Checkpoint, CheckpointError};
use super::positions::PositionTable;
use super::projection::{evolve, holds, link_house_filing, new_entry, pushed};
use super::table::{Reads, Table, TableError, WouldWait};

/// Where sled held the high-water mark before the checkpoint (`store::checkpoint`) did: an
/// index that has it and no format is of format 1.
const LEGACY_HIGH_WATER: &[u8] = b"hwm";
/// Key of the scheduler's place in the log.
const SWEPT: &[u8] = b"swept";

/// Whether the scheduler finds `timer` in the log rather than in the index's timers.
pub fn is_read_from_the_log(timer: &Timer) -> bool {
    timer.kind() == crate::pb::store::TimerKind::AutomaticInvalidation
}
const FORMAT_KEY: &[u8] = b"format";
/// What the entries hold, as this binary derives them. An index of another format (entries
/// without the items notices target, without their links) is rebuilt from the log at start.
/// Format 3: `lrn`, `filings` and `documents` moved from sled to `store::table`; 4: the
/// automatic invalidations left `timers` (the scheduler reads them from the log); 5: `received`
/// moved from sled to a table (a gateway receiving from peers grew sled by a key per record);
/// 6: `filings` placed by the sequence its MRNs were issued for (`store::positions`), not hashed.
pub const FORMAT: u32 = 6;
/// The sled trees of earlier formats that are tables now; dropped when the index is cleared.
const SLED_TREES_BEFORE_TABLES: [&str; 4] = ["lrn", "filings", "documents", "received"];

/// sled's page cache (its default, 1 GiB, let a gateway with a million filings grow past 800 MB
/// of RSS when the filings were in sled; the trees left there are small).
const INDEX_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The timers due (with their MRNs), and when the next one after them is due.
pub type DueTimers = (Vec<(Mrn, Timer)>, Option<std::time::SystemTime>);

/// One index entry: tree name, key, value.
pub type Entry = (&'static str, Vec<u8>, Vec<u8>);
/// Separates filer and LRN (or document number) in keys; none contains control characters.
const KEY_SEPARATOR: u8 = 0x1f;

impl From<CheckpointError> for IndexError {
    fn from(error: CheckpointError) -> Self {
        match error {
            CheckpointError::Table(e) => IndexError::Table(e),
            CheckpointError::Sled(e) => IndexError::Sled(e),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index database: {0}")]
    Sled(#[from] sled::Error),
    #[error("index table: {0}")]
    Table(#[from] TableError),
    #[error("index entry for {key} does not decode: {reason}")]
    Decode { key: String, reason: String },
}

impl IndexError {
    /// Whether the index could not write for want of space.
    pub fn is_disk_full(&self) -> bool {
        match self {
            IndexError::Sled(sled::Error::Io(e)) => matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            IndexError::Table(e) => e.is_disk_full(),
            _ => false,
        }
    }

    /// Why a [`Reads::NeverWait`] lookup gave up, if it did.
    pub fn would_wait(&self) -> Option<WouldWait> {
        match self {
            IndexError::Table(e) => e.would_wait(),
            _ => None,
        }
    }
}

/// A cheap handle on the index trees.
#[derive(Clone)]
pub struct Index {
    db: sled::Db,
    by_lrn: Arc<Table>,
    /// MRN → its entry, placed by the sequence the MRN was issued for.
    filings: Arc<PositionTable>,
    documents: Arc<Table>,
    /// (origin gateway, origin sequence) of each delivered envelope → what became of it.
    received: Arc<Table>,
    /// Master document of a partial filing → its MRN and next filing party.
    awaiting: sled::Tree,
    /// (filer, sequence) → the notification, for the carriers' feeds.
    notices: sled::Tree,
    /// (peer, notice id) → the notice's sequence, so a retried notice is one notice.
    notice_ids: sled::Tree,
    /// (due, MRN, timer) → the timer, for the scheduler.
    timers: sled::Tree,
    meta: sled::Tree,
    /// The high-water mark, on disk once both stores hold what it covers.
    checkpoint: Arc<Checkpoint>,
    /// Peer → acknowledged cursor (forwarding state; not derived from the log).
    cursors: sled::Tree,
    /// The scheduler's place in the log (`SWEPT`; not derived from the log).
    scheduler: sled::Tree,
    /// (peer, sequence) → refusal code and message (forwarding state; not derived from the log).
    refusals: sled::Tree,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").finish_non_exhaustive()
    }
}

impl Index {
    /// Opens the index. The caller holds the data directory's lock, so a sled lock still held
    /// can only be this process's previous instance, whose background threads release it a
    /// moment after its last handle is dropped: that is waited for, briefly.
    pub fn open(dir: &std::path::Path) -> Result<Index, IndexError> {
        let mut attempts = 0;
        let db = loop {
            match sled::Config::new()
                .path(dir)
                .cache_capacity(INDEX_CACHE_BYTES)
                .open()
            {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if attempts < 100 && e.to_string().contains("could not acquire lock") =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        };
        remove_hashed_filings(dir)?;
        let by_lrn = Arc::new(Table::open(dir, "lrn")?);
        let filings = Arc::new(PositionTable::open(dir, "filings", mrn_position)?);
        let documents = Arc::new(Table::open(dir, "documents")?);
        let received = Arc::new(Table::open(dir, "received")?);
        let checkpoint = Checkpoint::open(
            &dir.join("mark"),
            vec![
                by_lrn.clone(),
                filings.clone(),
                documents.clone(),
                received.clone(),
            ],
            db.clone(),
        )?;
        Ok(Index {
            by_lrn,
            filings,
            documents,
            received,
            checkpoint: Arc::new(checkpoint),
            awaiting: db.open_tree("awaiting")?,
            notices: db.open_tree("notices")?,
            notice_ids: db.open_tree("notice_ids")?,
            timers: db.open_tree("timers")?,
            meta: db.open_tree("meta")?,
            cursors: db.open_tree("cursors")?,
            scheduler: db.open_tree("scheduler")?,
            refusals: db.open_tree("refusals")?,
            db,
        })
    }

    /// The sequence of the last record applied (0 when none).
    pub fn high_water(&self) -> Result<Seq, IndexError> {
        Ok(Seq(self.checkpoint.applied()))
    }

    /// The format the index was derived in (1: before it said, 0: empty).
    pub fn format(&self) -> Result<u32, IndexError> {
        let stored = self
            .meta
            .get(FORMAT_KEY)?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes);
        Ok(match stored {
            Some(format) => format,
            None if self.high_water()?.0 > 0 || self.meta.contains_key(LEGACY_HIGH_WATER)? => 1,
            None => 0,
        })
    }

    /// Records that the index is derived in this binary's [`FORMAT`].
    pub fn set_format(&self) -> Result<(), IndexError> {
        self.meta.insert(FORMAT_KEY, &FORMAT.to_be_bytes())?;
        Ok(())
    }

    /// The MRN registered for a filer's LRN.
    pub fn mrn_for(
        &self,
        filer: &Eori,
        lrn: &Lrn,
        reads: Reads,
    ) -> Result<Option<Mrn>, IndexError> {
        let Some(value) = self
            .by_lrn
            .get(&lrn_key(filer.as_str(), lrn.as_str()), reads)?
        else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&value);
        Mrn::parse(&text).map(Some).map_err(|e| IndexError::Decode {
            key: format!("{filer}/{lrn}"),
            reason: e.to_string(),
        })
    }

    /// The MRN and filing time under which a filer's master document was filed, if it was.
    pub fn document(
        &self,
        filer: &Eori,
        document: &str,
        reads: Reads,
    ) -> Result<Option<(Mrn, std::time::SystemTime)>, IndexError> {
        let key = lrn_key(filer.as_str(), document);
        let Some(value) = self.documents.get(&key, reads)? else {
            return Ok(None);
        };
        let decode = |reason: &str| IndexError::Decode {
            key: format!("{filer}/{document}"),
            reason: reason.to_owned(),
        };
        let (mrn, seconds) = value
            .split_at_checked(Mrn::LEN)
            .ok_or_else(|| decode("short"))?;
        let mrn = Mrn::parse(&String::from_utf8_lossy(mrn)).map_err(|e| decode(&e.to_string()))?;
        let seconds = <[u8; 8]>::try_from(seconds).map_err(|_| decode("bad time"))?;
        let filed_at =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from_be_bytes(seconds));
        Ok(Some((mrn, filed_at)))
    }

    /// The partial filing waiting for house filings of a master document, and who may file them.
    pub fn awaiting(&self, document: &str) -> Result<Option<(Mrn, String)>, IndexError> {
        let Some(value) = self.awaiting.get(document)? else {
            return Ok(None);
        };
        let decode = |reason: &str| IndexError::Decode {
            key: document.to_owned(),
            reason: reason.to_owned(),
        };
        let (mrn, party) = value
            .split_at_checked(Mrn::LEN)
            .ok_or_else(|| decode("short"))?;
        let mrn = Mrn::parse(&String::from_utf8_lossy(mrn)).map_err(|e| decode(&e.to_string()))?;
        Ok(Some((mrn, String::from_utf8_lossy(party).into_owned())))
    }

    /// What became of an envelope a peer delivered before, if it did.
    pub fn received(
        &self,
        origin: &str,
        origin_sequence: u64,
    ) -> Result<Option<Received>, IndexError> {
        let key = received_key(origin, origin_sequence);
        let Some(value) = self.received.get(&key, Reads::MayWait)? else {
            return Ok(None);
        };
        decode_received(&value)
            .map(Some)
            .ok_or_else(|| IndexError::Decode {
                key: format!("{origin}/{origin_sequence}"),
                reason: "bad received entry".into(),
            })
    }

    /// The sequence of the notice `notice_id` from `peer`, if it was received.
    pub fn notice(&self, peer: &str, notice_id: &str) -> Result<Option<u64>, IndexError> {
        Ok(self
            .notice_ids
            .get(lrn_key(peer, notice_id))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// A filer's notifications after `after`, oldest first, at most `limit`.
    pub fn notifications(
        &self,
        filer: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Notification>, IndexError> {
        let start = sequence_key(filer, after.saturating_add(1));
        let end = sequence_key(filer, u64::MAX);
        let mut out = Vec::new();
        for item in self.notices.range(start..=end).take(limit) {
            let (key, value) = item?;
            out.push(
                Notification::decode(value.as_ref()).map_err(|e| IndexError::Decode {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    /// The last sequence `peer` acknowledged (0 when none).
    pub fn cursor(&self, peer: &str) -> Result<u64, IndexError> {
        Ok(self
            .cursors
            .get(peer)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// The sequence up to which the scheduler fired the automatic invalidations the log holds
    /// (0 when none).
    pub fn swept(&self) -> Result<u64, IndexError> {
        Ok(self
            .scheduler
            .get(SWEPT)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Records that the scheduler fired the automatic invalidations up to `sequence`. Not
    /// fsynced: after a crash the sweep goes over a few again, and they no longer apply.
    pub fn set_swept(&self, sequence: u64) -> Result<(), IndexError> {
        self.scheduler.insert(SWEPT, &sequence.to_be_bytes())?;
        Ok(())
    }

    /// Moves `peer`'s cursor forward to `sequence` (never backward).
    pub fn advance_cursor(&self, peer: &str, sequence: u64) -> Result<(), IndexError> {
        self.cursors.fetch_and_update(peer, |old| {
            let old = old
                .and_then(|v| <[u8; 8]>::try_from(v).ok())
                .map_or(0, u64::from_be_bytes);
            Some(old.max(sequence).to_be_bytes().to_vec())
        })?;
        Ok(())
    }

    /// Remembers that `peer` refused the record at `sequence`.
    pub fn record_refusal(
        &self,
        peer: &str,
        sequence: u64,
        code: &str,
        message: &str,
    ) -> Result<(), IndexError> {
        let mut value = code.as_bytes().to_vec();
        value.push(KEY_SEPARATOR);
        value.extend_from_slice(message.as_bytes());
        self.refusals.insert(sequence_key(peer, sequence), value)?;
        Ok(())
    }

    /// How `peer` refused the record at `sequence`, if it did: (code, message).
    pub fn refusal(
        &self,
        peer: &str,
        sequence: u64,
    ) -> Result<Option<(String, String)>, IndexError> {
        let Some(value) = self.refusals.get(sequence_key(peer, sequence))? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&value);
        let (code, message) = text
            .split_once(KEY_SEPARATOR as char)
            .unwrap_or((&text, ""));
        Ok(Some((code.to_owned(), message.to_owned())))
    }

    /// What is known about an MRN.
    pub fn status(&self, mrn: &Mrn) -> Result<Option<FilingStatus>, IndexError> {
        Ok(self
            .entry(mrn, Reads::MayWait)?
            .and_then(|entry| entry.status))
    }

    /// The whole index entry of an MRN (status and what an amendment may not change).
    pub fn entry(&self, mrn: &Mrn, reads: Reads) -> Result<Option<FilingEntry>, IndexError> {
        self.stored_entry(mrn.as_str(), reads)
    }

    fn stored_entry(&self, mrn: &str, reads: Reads) -> Result<Option<FilingEntry>, IndexError> {
        let Some(value) = self.filings.get(mrn.as_bytes(), reads)? else {
            return Ok(None);
        };
        FilingEntry::decode(value.as_ref())
            .map(Some)
            .map_err(|e| IndexError::Decode {
                key: mrn.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Applies records (consecutive, in log order) and moves the high-water mark past them.
    ///
    /// Not a transaction: the tables and sled reach the disk on their own schedules, and the
    /// mark moves on disk only once both hold everything it covers (`store::checkpoint`). So
    /// after a crash either store may hold effects of records past the mark, and replaying
    /// them must leave the index as if each had been applied once. Every effect is idempotent:
    /// inserts of derived keys, and lifecycle changes skipped when the entry's history already
    /// holds the record's sequence — while what the record adds to sled (notices, timers) is
    /// derived again from the entry that holds it, since sled may have lost it.
    pub fn apply(&self, records: &[LogRecord]) -> Result<(), IndexError> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        let mut batch = BatchWrites::default();
        for record in records {
            self.derive(record, &mut batch)?;
        }
        // In order: a timer set and dropped within the batch ends dropped.
        for (key, value) in batch.timers {
            match value {
                Some(value) => self.timers.insert(key, value)?,
                None => self.timers.remove(key)?,
            };
        }
        // Plain inserts: sled's batches, like its transactions, cost several times more right
        // after an fdatasync, and replay makes up for whatever a crash cut short.
        for (tree, writes) in [
            (&self.awaiting, batch.awaiting),
            (&self.notices, batch.notices),
            (&self.notice_ids, batch.notice_ids),
        ] {
            for (key, value) in writes.0 {
                tree.insert(key, value)?;
            }
        }
        self.by_lrn.insert_all(&batch.by_lrn.0)?;
        self.documents.insert_all(&batch.documents.0)?;
        self.received.insert_all(&batch.received.0)?;
        let filings: Vec<_> = batch
            .entries
            .iter()
            .map(|(mrn, entry)| (mrn.as_bytes().to_vec(), entry.encode_to_vec()))
            .collect();
        self.filings.insert_all(&filings)?;
        self.checkpoint.set_applied(last.sequence);
        Ok(())
    }

    /// Makes room for a batch of `records` before the log takes it: what `apply` then writes
    /// to the tables cannot meet a full disk (a disk too full refuses the batch instead).
    pub fn reserve(&self, records: &[LogRecord]) -> Result<(), IndexError> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        // A record adds at most one filing (at its own sequence), one LRN and a few documents,
        // or one delivery.
        let keys = records.len() as u64 * 4;
        for table in [&self.by_lrn, &self.documents, &self.received] {
            table.reserve(keys)?;
        }
        self.filings.reserve(last.sequence)?;
        Ok(())
    }

    /// Adds what one record changes in the index to the batch's writes.
    fn derive(&self, record: &LogRecord, batch: &mut BatchWrites) -> Result<(), IndexError> {
        match record.kind() {
            RecordKind::Filing => {
                batch
                    .by_lrn
                    .insert(lrn_key(&record.filer, &record.lrn), record.mrn.as_bytes());
                batch.entries.insert(record.mrn.clone(), new_entry(record));
                batch.set_timers(&record.mrn, &record.timers);
                if !record.next_filing_party.is_empty() {
                    for document in &record.master_documents {
                        let mut value = record.mrn.as_bytes().to_vec();
                        value.extend_from_slice(record.next_filing_party.as_bytes());
                        batch.awaiting.insert(document.as_bytes(), value);
                    }
                }
            }
            RecordKind::Amendment
            | RecordKind::Invalidation
            | RecordKind::Arrival
            | RecordKind::Notice
            | RecordKind::ReferralAnswer
            | RecordKind::TimerFired => self.derive_change(record, batch)?,
            RecordKind::Received | RecordKind::ReceivedRefused => {
                batch.received.insert(
                    received_key(&record.origin, record.origin_sequence),
                    encode_received(record),
                );
            }
            RecordKind::Unspecified => {}
        }
        for link in &record.links {
            let Some(current) = self.current(&batch.entries, &link.mrn)? else {
                continue;
            };
            if !holds(&current, record.sequence, Some(&link.document)) {
                let linked = link_house_filing(current, record, &link.document);
                batch.entries.insert(link.mrn.clone(), linked);
            }
        }
        if matches!(record.kind(), RecordKind::Filing | RecordKind::Amendment) {
            let seconds = record.received_at.map_or(0, |t| t.seconds.max(0) as u64);
            for document in &record.master_documents {
                let mut value = record.mrn.as_bytes().to_vec();
                value.extend_from_slice(&seconds.to_be_bytes());
                batch
                    .documents
                    .insert(lrn_key(&record.filer, document), value);
            }
        }
        Ok(())
    }

    /// A record that changes a registered filing: its entry, and a notice's feed entry.
    fn derive_change(&self, record: &LogRecord, batch: &mut BatchWrites) -> Result<(), IndexError> {
        let current =
            self.current(&batch.entries, &record.mrn)?
                .ok_or_else(|| IndexError::Decode {
                    key: record.mrn.clone(),
                    reason: format!(
                        "record {} changes {}, which the index does not have",
                        record.sequence, record.mrn
                    ),
                })?;
        // Taken already (a replay after a crash): the entry stays, what sled holds is derived again.
        let held = holds(&current, record.sequence, None);
        let before_timers = if held {
            Vec::new()
        } else {
            current.timers.clone()
        };
        let entry = if held {
            current
        } else {
            evolve(current, record)
        };
        match record.kind() {
            RecordKind::Notice => {
                if let Some(notice) = &record.notice {
                    batch.notice_ids.insert(
                        lrn_key(&record.origin, &notice.notice_id),
                        record.sequence.to_be_bytes(),
                    );
                }
                batch.set_timers(&record.mrn, &record.timers);
            }
            RecordKind::TimerFired => batch.drop_timers(&record.mrn, record.timer.iter()),
            // Held: the timers it dropped are no longer known; any left fire, find that they no
            // longer apply, and are dropped then.
            RecordKind::Arrival | RecordKind::Invalidation => {
                batch.drop_timers(&record.mrn, before_timers.iter());
            }
            RecordKind::Amendment => self.tell_linked(record, &entry, batch)?,
            _ => {}
        }
        if let Some(notification) = pushed(record, &entry) {
            batch.notices.insert(
                sequence_key(&record.filer, record.sequence),
                notification.encode_to_vec(),
            );
        }
        if !held {
            batch.entries.insert(record.mrn.clone(), entry);
        }
        Ok(())
    }

    /// Tells the filers of the filings linked to an amended one (once each, not the amending
    /// filer itself) that it changed.
    fn tell_linked(
        &self,
        record: &LogRecord,
        entry: &FilingEntry,
        batch: &mut BatchWrites,
    ) -> Result<(), IndexError> {
        let mut told = vec![record.filer.clone()];
        for link in &entry.links {
            let Some(linked) = self.current(&batch.entries, &link.mrn)? else {
                continue;
            };
            let Some(status) = linked.status else {
                continue;
            };
            if told.contains(&status.filer) {
                continue;
            }
            let notification = Notification {
                sequence: record.sequence,
                mrn: status.mrn.clone(),
                lrn: status.lrn.clone(),
                kind: NoticeKind::LinkedAmended as i32,
                received_at: record.received_at,
                related_mrn: record.mrn.clone(),
                detail: format!(
                    "{} (linked by {}) was amended to version {}",
                    record.mrn, link.document, record.version
                ),
                ..Notification::default()
            };
            batch.notices.insert(
                sequence_key(&status.filer, record.sequence),
                notification.encode_to_vec(),
            );
            told.push(status.filer);
        }
        Ok(())
    }

    /// The timers due by `now`, earliest first, at most `limit`; and when the next is due.
    pub fn due_timers(
        &self,
        now: std::time::SystemTime,
        limit: usize,
    ) -> Result<DueTimers, IndexError> {
        let mut due = Vec::new();
        for item in self.timers.iter() {
            let (key, value) = item?;
            let decode = |reason: &str| IndexError::Decode {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: reason.to_owned(),
            };
            let at = key
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(|b| {
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::from_be_bytes(b))
                })
                .ok_or_else(|| decode("short timer key"))?;
            if at > now || due.len() == limit {
                return Ok((due, Some(at)));
            }
            let mrn = key
                .get(8..8 + Mrn::LEN)
                .and_then(|b| Mrn::parse(&String::from_utf8_lossy(b)).ok())
                .ok_or_else(|| decode("no MRN in the timer key"))?;
            let timer = Timer::decode(value.as_ref()).map_err(|e| decode(&e.to_string()))?;
            due.push((mrn, timer));
        }
        Ok((due, None))
    }

    /// Forgets a timer that no longer applies.
    pub fn drop_timer(&self, mrn: &Mrn, timer: &Timer) -> Result<(), IndexError> {
        self.timers.remove(timer_key(mrn.as_str(), timer))?;
        Ok(())
    }

    /// An entry as this batch has left it so far, else as the index has it.
    fn current(
        &self,
        changed: &super::BatchMap<String, FilingEntry>,
        mrn: &str,
    ) -> Result<Option<FilingEntry>, IndexError> {
        match changed.get(mrn) {
            Some(entry) => Ok(Some(entry.clone())),
            None => self.stored_entry(mrn, Reads::MayWait),
        }
    }

    /// Empties every tree, for a rebuild from the log.
    pub fn clear(&self) -> Result<(), IndexError> {
        // First: a rebuild cut short starts again from the beginning.
        self.checkpoint.reset()?;
        for tree in SLED_TREES_BEFORE_TABLES {
            self.db.drop_tree(tree)?;
        }
        self.by_lrn.clear()?;
        self.filings.clear()?;
        self.documents.clear()?;
        self.received.clear()?;
        self.awaiting.clear()?;
        self.notices.clear()?;
        self.notice_ids.clear()?;
        self.timers.clear()?;
        self.meta.clear()?;
        Ok(())
    }

    /// Puts the index on disk and moves the high-water mark there (at close; the checkpoint
    /// does it every half second otherwise).
    pub fn flush(&self) -> Result<(), IndexError> {
        self.checkpoint.write()?;
        Ok(())
    }

    /// Every entry of every tree, for comparing two indexes.
    pub fn dump(&self) -> Result<Vec<Entry>, IndexError> {
        let mut out = Vec::new();
        for (name, entries) in [
            ("lrn", self.by_lrn.entries()?),
            ("filings", self.filings.entries()?),
            ("documents", self.documents.entries()?),
            ("received", self.received.entries()?),
        ] {
            for (k, v) in entries {
                out.push((name, k, v));
            }
        }
        out.push((
            "mark",
            b"applied".to_vec(),
            self.checkpoint.applied().to_be_bytes().to_vec(),
        ));
        for (name, tree) in [
            ("awaiting", &self.awaiting),
            ("notices", &self.notices),
            ("notice_ids", &self.notice_ids),
            ("timers", &self.timers),
            ("meta", &self.meta),
        ] {
            for item in tree.iter() {
                let (k, v) = item?;
                out.push((name, k.to_vec(), v.to_vec()));
            }
        }
        Ok(out)
    }
}

/// Where the `filings` map keeps an MRN: at the sequence it was issued for.
fn mrn_position(key: &[u8]) -> Option<u64> {
    let mrn = Mrn::parse(std::str::from_utf8(key).ok()?).ok()?;
    mrn.sequence().map(|seq| seq.0)
}

/// Removes the `filings` map of formats before 6 (a hash table): an index of such a format is
/// rebuilt from the log anyway, and its files would be taken for a damaged map of this one.
/// Any of its slots files tells (a doubling killed between its renames leaves no `.slots`).
fn remove_hashed_filings(dir: &std::path::Path) -> Result<(), IndexError> {
    let base = dir.join("filings");
    if ["slots", "slots.old", "slots.new"]
        .iter()
        .any(|extension| base.with_extension(extension).exists())
    {
        Table::remove_files(dir, "filings")?;
    }
    Ok(())
}

/// Removes the files of every map on disk, before a rebuild from the log: they hold nothing
/// else, and a damaged one (a file missing) would refuse to open, and so the rebuild that
/// repairs it. The sled trees stay (some are not derived).
pub fn remove_maps(dir: &std::path::Path) -> Result<(), IndexError> {
    for name in ["lrn", "documents", "received"] {
        Table::remove_files(dir, name)?;
    }
    PositionTable::remove_files(dir, "filings")?;
    Ok(())
}

/// `name`, the separator, and a big-endian sequence: keys that scan in sequence order.
fn sequence_key(name: &str, sequence: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 9);
    key.extend_from_slice(name.as_bytes());
    key.push(KEY_SEPARATOR);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

fn lrn_key(filer: &str, lrn: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(filer.len() + 1 + lrn.len());
    key.extend_from_slice(filer.as_bytes());
    key.push(KEY_SEPARATOR);
    key.extend_from_slice(lrn.as_bytes());
    key
}

/// What a batch of records writes, tree by tree, made once the whole batch is derived.
#[derive(Default)]
struct BatchWrites {
    by_lrn: Writes,
    documents: Writes,
    awaiting: Writes,
    received: Writes,
    notices: Writes,
    notice_ids: Writes,
    /// Timers set (with their value) and dropped (none), in the order of the records.
    timers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// The entries the batch changes, as it leaves them (two records of one MRN see each other).
    entries: super::BatchMap<String, FilingEntry>,
}

impl BatchWrites {
    /// Every timer but the automatic invalidation: one per filing, due in the order the filings
    /// came, the scheduler reads those from the log (`store::scheduler`), which keeps them out
    /// of sled, where they were most of its size and memory.
    fn set_timers(&mut self, mrn: &str, timers: &[Timer]) {
        for timer in timers.iter().filter(|t| !is_read_from_the_log(t)) {
            self.timers
                .push((timer_key(mrn, timer), Some(timer.encode_to_vec())));
        }
    }

    fn drop_timers<'a>(&mut self, mrn: &str, timers: impl Iterator<Item = &'a Timer>) {
        for timer in timers.filter(|t| !is_read_from_the_log(t)) {
            self.timers.push((timer_key(mrn, timer), None));
        }
    }
}

/// A timer's key: when it is due (milliseconds since the epoch, big-endian, so the tree scans
/// in due order), the MRN, and what tells the filing's timers apart.
fn timer_key(mrn: &str, timer: &Timer) -> Vec<u8> {
    let millis = timer.due.map_or(0, |t| {
        u64::try_from(t.seconds)
            .unwrap_or(0)
            .saturating_mul(1000)
            .saturating_add(u64::try_from(t.nanos / 1_000_000).unwrap_or(0))
    });
    let mut key = millis.to_be_bytes().to_vec();
    key.extend_from_slice(mrn.as_bytes());
    key.push(u8::try_from(timer.kind).unwrap_or(0));
    key.extend_from_slice(timer.administration.as_bytes());
    key.push(KEY_SEPARATOR);
    key.extend_from_slice(timer.notice_id.as_bytes());
    key
}

/// Key-value writes for one tree, made once the whole batch is decided.
#[derive(Default)]
struct Writes(Vec<(Vec<u8>, Vec<u8>)>);

impl Writes {
    fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.0
            .push((key.as_ref().to_vec(), value.as_ref().to_vec()));
    }
}

/// What became of a delivered envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// Stored at this sequence of the local log.
    Stored(u64),
    /// Refused with this code.
    Refused(String),
}

fn received_key(origin: &str, origin_sequence: u64) -> Vec<u8> {
    sequence_key(origin, origin_sequence)
}

fn encode_received(record: &LogRecord) -> Vec<u8> {
    if record.kind() == RecordKind::Received {
        let mut value = vec![b'S'];
        value.extend_from_slice(&record.sequence.to_be_bytes());
        value
    } else {
        let mut value = vec![b'R'];
        value.extend_from_slice(record.refusal.as_bytes());
        value
    }
}

fn decode_received(value: &[u8]) -> Option<Received> {
    match value.split_first()? {
        (b'S', rest) => Some(Received::Stored(u64::from_be_bytes(rest.try_into().ok()?))),
        (b'R', rest) => Some(Received::Refused(
            String::from_utf8_lossy(rest).into_owned(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A format-5 index left by a process killed in the middle of a doubling of its hashed
    /// `filings` (no `filings.slots`, only the old and new ones) still opens: every file of that
    /// map goes, and the format check then rebuilds the index from the log.
    #[test]
    fn the_hashed_filings_of_an_earlier_format_go_however_they_were_left() {
        for left in [&["slots"][..], &["slots.old", "slots.new"], &["slots.old"]] {
            let dir = tempfile::tempdir().expect("tempdir");
            let table = Table::open(dir.path(), "filings").expect("a format-5 filings map");
            table
                .insert_all(&[(b"26GB00000000000010".to_vec(), b"entry".to_vec())])
                .expect("insert");
            drop(table);
            let base = dir.path().join("filings");
            std::fs::remove_file(base.with_extension("slots")).expect("remove");
            for extension in left {
                std::fs::write(base.with_extension(extension), b"slots").expect("write");
            }
            let index = Index::open(dir.path()).expect("opens");
            assert_eq!(
                index.dump().expect("dump").len(),
                1,
                "only the mark: {left:?}"
            );
            for extension in ["slots", "slots.old", "slots.new"] {
                assert!(
                    !base.with_extension(extension).exists(),
                    "{extension} after {left:?}"
                );
            }
        }
    }
}
