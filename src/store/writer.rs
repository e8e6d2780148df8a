//! The single writer: owns sequence assignment, the (filer, LRN) uniqueness decision and the
//! append path, with group commit.
//!
//! It runs on its own OS thread (fdatasync blocks). Each turn it takes every command waiting (up
//! to the batch limit) and, while carriers' filings are still on their way to it, waits briefly
//! for them too (`store::arrivals`), so a burst shares one sync. Then it decides each
//! registration against the index and the batch itself, seals the new records, writes them,
//! calls fdatasync once, applies them to the index, and only then answers. Deciding uniqueness here, in the one place that assigns sequences, is what makes two
//! concurrent submissions of one LRN produce exactly one record.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prost_types::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::ids::{Eori, Lrn, Mrn, Seq};
use crate::pb::Receipt;
use crate::pb::store::{Link, LogRecord, RecordKind};

use super::arrivals::GATHER_LIMIT;
use super::index::Received;
use super::index::{Index, receipt_of};
use super::log::SegmentLog;
use super::{
    Change, Changed, Delivery, LifecycleError, NewFiling, Noticed, Registration, Stats, StoreError,
};
use crate::pb::store::FilingEntry;
use crate::pb::{FilingState, FilingStatus};

type Reply = oneshot::Sender<Result<Registration, StoreError>>;

/// Span links a group commit records, at most (a batch can hold a thousand records).
const MAX_COMMIT_LINKS: usize = 128;

type ChangeReply = oneshot::Sender<Result<Changed, StoreError>>;

pub(super) enum Command {
    Register {
        filing: Box<NewFiling>,
        reply: Reply,
    },
    Change {
        mrn: Mrn,
        change: Box<Change>,
        traceparent: String,
        reply: ChangeReply,
    },
    Receive {
        envelope: Box<crate::pb::Envelope>,
        at: std::time::SystemTime,
        reply: oneshot::Sender<Result<Delivery, StoreError>>,
    },
    Notify {
        peer: String,
        notice: Box<crate::pb::Notice>,
        at: std::time::SystemTime,
        reply: oneshot::Sender<Result<Noticed, StoreError>>,
    },
    /// Answered once every command sent before it has been answered.
    Close { reply: oneshot::Sender<()> },
}

pub(super) struct Writer {
    pub log: SegmentLog,
    pub index: Index,
    pub country: String,
    pub max_batch: usize,
    pub document_window: Duration,
    pub immutable: super::Immutable,
    pub stats: Arc<Stats>,
    /// The last durable sequence, for the log's readers (forwarders, feeds).
    pub durable: tokio::sync::watch::Sender<u64>,
    /// Filings on their way: a batch waits for them before it is synced.
    pub arrivals: Arc<super::arrivals::Arrivals>,
}

/// A command of the batch and how to answer it once the batch is durable.
enum Answer {
    Register(Outcome, Reply),
    Change(ChangeOutcome, ChangeReply),
    Receive(
        ReceiveOutcome,
        oneshot::Sender<Result<Delivery, StoreError>>,
    ),
    Notify(NoticeOutcome, oneshot::Sender<Result<Noticed, StoreError>>),
}

/// How a notice is answered.
enum NoticeOutcome {
    /// A new record at this position of the batch.
    New(usize),
    /// The same notice id twice in this batch: the first one's record.
    SameAs(usize),
    Ready(Result<Noticed, StoreError>),
}

/// How a delivered envelope is answered.
enum ReceiveOutcome {
    /// A record (stored or refused) at this position of the batch.
    New(usize),
    /// Delivered twice in this batch: the first one's answer, as a duplicate.
    SameAs(usize),
    Ready(Result<Delivery, StoreError>),
}

/// The answer a received-envelope record stands for.
fn delivery(record: &LogRecord, duplicate: bool) -> Delivery {
    if record.kind() == RecordKind::Received {
        Delivery::Stored {
            local_sequence: record.sequence,
            duplicate,
        }
    } else {
        Delivery::Refused {
            code: record.refusal.clone(),
            message: record.reason.clone(),
            duplicate,
        }
    }
}

/// Why an envelope cannot be taken, if it cannot: (code, message).
fn envelope_problem(envelope: &crate::pb::Envelope) -> Option<(&'static str, String)> {
    use crate::pb::EnvelopeKind;
    let kind = EnvelopeKind::try_from(envelope.kind).unwrap_or(EnvelopeKind::Unspecified);
    if kind == EnvelopeKind::Unspecified {
        return Some((
            "INVALID_ENVELOPE",
            format!("unknown envelope kind {}", envelope.kind),
        ));
    }
    if let Err(e) = Mrn::parse(&envelope.mrn) {
        return Some(("INVALID_ENVELOPE", format!("MRN {:?}: {e}", envelope.mrn)));
    }
    if matches!(kind, EnvelopeKind::Filing | EnvelopeKind::Amendment) && envelope.manifest.is_none()
    {
        return Some((
            "INVALID_ENVELOPE",
            "a filing or amendment carries its manifest".into(),
        ));
    }
    if kind == EnvelopeKind::ReferralAnswer && envelope.notice_id.is_empty() {
        return Some((
            "INVALID_ENVELOPE",
            "a referral answer names the notice it answers".into(),
        ));
    }
    None
}

/// How a lifecycle change is answered.
enum ChangeOutcome {
    /// A record was written; this is the status after it.
    Applied(FilingStatus),
    Ready(Result<Changed, StoreError>),
}

/// Why the writer cannot append now.
#[derive(Debug, Clone)]
pub(super) struct WriteError {
    reason: String,
    disk_full: bool,
}

impl WriteError {
    fn of_log(error: &super::LogError) -> WriteError {
        WriteError {
            reason: error.to_string(),
            disk_full: error.is_disk_full(),
        }
    }

    fn of_index(error: &super::IndexError) -> WriteError {
        WriteError {
            reason: format!("index: {error}"),
            disk_full: error.is_disk_full(),
        }
    }

    fn to_store_error(&self) -> StoreError {
        StoreError::Unwritable {
            reason: self.reason.clone(),
            disk_full: self.disk_full,
        }
    }
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// A batch that failed, and what it left.
struct Broken {
    error: WriteError,
    state: Leftover,
}

enum Leftover {
    /// Bytes after this mark were written but are not durable: the log must be cut back to it.
    Unsynced(super::log::Mark),
    /// Durable records the index has not taken yet (nothing after them is written until it has).
    Unindexed(Vec<LogRecord>),
}

/// Answers every command with the writer's failure: nothing of theirs was written.
fn refuse(commands: Vec<Command>, error: &WriteError) {
    for command in commands {
        match command {
            Command::Register { reply, .. } => {
                let _ = reply.send(Err(error.to_store_error()));
            }
            Command::Change { reply, .. } => {
                let _ = reply.send(Err(error.to_store_error()));
            }
            Command::Receive { reply, .. } => {
                let _ = reply.send(Err(error.to_store_error()));
            }
            Command::Notify { reply, .. } => {
                let _ = reply.send(Err(error.to_store_error()));
            }
            Command::Close { .. } => {}
        }
    }
}

fn refused(error: LifecycleError) -> ChangeOutcome {
    ChangeOutcome::Ready(Ok(Changed::Refused(error)))
}

/// The field an amendment may not change that it does change, if any.
fn immutable_change(
    immutable: super::Immutable,
    entry: &FilingEntry,
    status: &FilingStatus,
    filing: &NewFiling,
) -> Option<&'static str> {
    if filing.lrn.as_str() != status.lrn || filing.filer.as_str() != status.filer {
        return Some("lrn");
    }
    if immutable.transport_mode && filing.manifest.transport_mode != entry.transport_mode {
        return Some("transport_mode");
    }
    if !immutable.master_documents {
        return None;
    }
    let mut before = entry.master_documents.clone();
    let mut after = filing.master_documents.clone();
    before.sort();
    after.sort();
    (before != after).then_some("master_documents")
}

/// A record of a change that carries no manifest (invalidation, arrival, notice, referral
/// answer), with the routing facts of the filing's current version.
fn lifecycle_record(
    kind: RecordKind,
    entry: &FilingEntry,
    at: std::time::SystemTime,
    reason: String,
) -> LogRecord {
    let status = entry.status.clone().unwrap_or_default();
    LogRecord {
        kind: kind as i32,
        mrn: status.mrn,
        filer: status.filer,
        lrn: status.lrn,
        version: status.version,
        received_at: Some(Timestamp::from(at)),
        reason,
        routing: entry.routing.clone(),
        ..LogRecord::default()
    }
}

/// Whether a notice is a referral (which the carrier answers).
fn is_referral(kind: i32) -> bool {
    use crate::pb::NoticeKind;
    matches!(
        NoticeKind::try_from(kind),
        Ok(NoticeKind::ReferralInformation | NoticeKind::ReferralScreening)
    )
}

/// How one registration of a batch is answered once the batch is durable.
enum Outcome {
    /// A new record, at this position among the batch's new records.
    New(usize),
    /// The same content as the new record at this position, submitted twice in one batch.
    SameAs(usize),
    /// Decided without writing anything.
    Ready(Result<Registration, StoreError>),
}

impl Writer {
    pub fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut broken: Option<Broken> = None;
        self.arrivals.set_writer();
        while let Some(first) = commands.blocking_recv() {
            batch.push(first);
            self.arrivals
                .gather(&mut commands, &mut batch, self.max_batch, GATHER_LIMIT);
            let mut closing = Vec::new();
            let mut work = Vec::with_capacity(batch.len());
            for command in batch.drain(..) {
                match command {
                    Command::Close { reply } => closing.push(reply),
                    other => work.push(other),
                }
            }
            // A failed batch left something to repair first; until it is, nothing is written
            // and every caller hears why (the disk may have filled: it is tried every batch).
            if let Some(damage) = broken.take() {
                broken = self.repair(damage);
            }
            match &broken {
                Some(damage) => {
                    self.stats.writable.store(false, Ordering::Relaxed);
                    refuse(work, &damage.error);
                }
                None => {
                    if let Err(left) = self.commit(work) {
                        broken = left;
                    }
                }
            }
            if !closing.is_empty() {
                if let Err(e) = self.index.flush() {
                    tracing::warn!(error = %e, "index flush at close failed; it will be replayed");
                }
                for reply in closing {
                    let _ = reply.send(());
                }
                return;
            }
        }
    }

    /// Tries to undo what a failed batch left; gives the damage back if it is still there.
    fn repair(&mut self, damage: Broken) -> Option<Broken> {
        let repaired = match &damage.state {
            Leftover::Unsynced(mark) => {
                self.log.roll_back(mark).map_err(|e| WriteError::of_log(&e))
            }
            Leftover::Unindexed(records) => self
                .index
                .apply(records)
                .map(|()| self.publish_durable())
                .map_err(|e| WriteError::of_index(&e)),
        };
        match repaired {
            Ok(()) => {
                tracing::info!(was = %damage.error, "the log accepts appends again");
                None
            }
            Err(error) => Some(Broken { error, ..damage }),
        }
    }

    /// Tells the log's readers how far it is durable (and indexed).
    fn publish_durable(&self) {
        let last = self.log.next_seq().0 - 1;
        self.stats.durable_seq.store(last, Ordering::Release);
        self.durable.send_if_modified(|known| {
            let moved = *known != last;
            *known = last;
            moved
        });
    }

    /// Decides, writes, syncs and answers one batch. If the batch could not be made durable,
    /// every caller of it has been told so, and what is left to repair (if anything) is returned.
    fn commit(&mut self, commands: Vec<Command>) -> Result<(), Option<Broken>> {
        let mark = self.log.mark();
        let mut records: Vec<LogRecord> = Vec::new();
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut in_batch: HashMap<(Eori, Lrn), usize> = HashMap::new();
        // Master documents of this batch's new records: (filer, document) → record position.
        let mut documents_in_batch: HashMap<(Eori, String), usize> = HashMap::new();
        // Entries as this batch's changes leave them (so two changes to one MRN see each other).
        let mut overlay: HashMap<Mrn, FilingEntry> = HashMap::new();
        // Envelopes received in this batch: (origin, origin sequence) → record position.
        let mut received_in_batch: HashMap<(String, u64), usize> = HashMap::new();
        // Notices received in this batch: (peer, notice id) → record position.
        let mut notices_in_batch: HashMap<(String, String), usize> = HashMap::new();
        let mut pending = Vec::with_capacity(commands.len());
        let first_seq = self.log.next_seq();
        for command in commands {
            match command {
                Command::Register { filing, reply } => {
                    let outcome = self.decide_registration(
                        *filing,
                        &mut in_batch,
                        &mut documents_in_batch,
                        &mut records,
                        &mut frames,
                    );
                    pending.push(Answer::Register(outcome, reply));
                }
                Command::Change {
                    mrn,
                    change,
                    traceparent,
                    reply,
                } => {
                    let outcome = match self.decide_change(
                        &mrn,
                        *change,
                        traceparent,
                        &mut overlay,
                        &mut records,
                        &mut frames,
                    ) {
                        Ok(outcome) => outcome,
                        Err(e) => ChangeOutcome::Ready(Err(e)),
                    };
                    pending.push(Answer::Change(outcome, reply));
                }
                Command::Receive {
                    envelope,
                    at,
                    reply,
                } => {
                    let outcome = self
                        .decide_receive(
                            *envelope,
                            at,
                            &mut received_in_batch,
                            &mut records,
                            &mut frames,
                        )
                        .unwrap_or_else(|e| ReceiveOutcome::Ready(Err(e)));
                    pending.push(Answer::Receive(outcome, reply));
                }
                Command::Notify {
                    peer,
                    notice,
                    at,
                    reply,
                } => {
                    let outcome = self
                        .decide_notice(
                            peer,
                            *notice,
                            at,
                            &mut notices_in_batch,
                            &mut overlay,
                            &mut records,
                            &mut frames,
                        )
                        .unwrap_or_else(|e| NoticeOutcome::Ready(Err(e)));
                    pending.push(Answer::Notify(outcome, reply));
                }
                Command::Close { .. } => {}
            }
        }

        let durable = if frames.is_empty() {
            Ok(())
        } else {
            // One span per group commit, linked to the traces of the records it made durable.
            let span = tracing::info_span!(
                "log.group_commit",
                records = records.len(),
                first = first_seq.0,
            );
            for record in records.iter().take(MAX_COMMIT_LINKS) {
                crate::telemetry::link(&span, &record.traceparent);
            }
            let _entered = span.enter();
            let started = Instant::now();
            let syncs_before = self.log.syncs;
            let sync_time_before = self.log.sync_time;
            let written = self.log.write_batch(first_seq.0, &frames);
            self.stats.record_batch(
                records.len() as u64,
                self.log.syncs - syncs_before,
                self.log.sync_time - sync_time_before,
                started.elapsed(),
            );
            match written {
                Err(e) => {
                    // Nothing of the batch was acknowledged nor published: cut it off again.
                    let error = WriteError::of_log(&e);
                    tracing::error!(%error, records = records.len(), "a batch could not be made durable");
                    let left = match self.log.roll_back(&mark) {
                        Ok(()) => None,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot cut the failed batch off the log yet");
                            Some(Leftover::Unsynced(mark))
                        }
                    };
                    Err((error, left))
                }
                // Durable, but the index (uniqueness, status) must know it before anyone hears.
                Ok(()) => self.index.apply(&records).map_err(|e| {
                    let error = WriteError::of_index(&e);
                    tracing::error!(%error, "a durable batch could not be indexed");
                    (error, Some(Leftover::Unindexed(records.clone())))
                }),
            }
        };
        if durable.is_ok() {
            self.publish_durable();
        }
        // Before anyone is answered, so that what they see next agrees.
        self.stats
            .writable
            .store(durable.is_ok(), Ordering::Relaxed);
        let (durable, outcome) = match durable {
            Ok(()) => (Ok(()), Ok(())),
            Err((error, left)) => (
                Err(error.clone()),
                Err(left.map(|state| Broken { error, state })),
            ),
        };
        // Receipts are built only now: a caller hears "registered" only after fdatasync.
        let receipts: Vec<Receipt> = records.iter().map(receipt_of).collect();
        for answer in pending {
            let failed = |error: &WriteError| error.to_store_error();
            match answer {
                Answer::Register(outcome, reply) => {
                    let answer = match (&durable, outcome) {
                        (_, Outcome::Ready(answer)) => answer,
                        (Ok(()), Outcome::New(i)) => {
                            Ok(Registration::Registered(receipts[i].clone()))
                        }
                        (Ok(()), Outcome::SameAs(i)) => {
                            Ok(Registration::Duplicate(receipts[i].clone()))
                        }
                        (Err(reason), _) => Err(failed(reason)),
                    };
                    let _ = reply.send(answer);
                }
                Answer::Receive(outcome, reply) => {
                    let answer = match (&durable, outcome) {
                        (_, ReceiveOutcome::Ready(answer)) => answer,
                        (Ok(()), ReceiveOutcome::New(i)) => Ok(delivery(&records[i], false)),
                        (Ok(()), ReceiveOutcome::SameAs(i)) => Ok(delivery(&records[i], true)),
                        (Err(reason), _) => Err(failed(reason)),
                    };
                    let _ = reply.send(answer);
                }
                Answer::Notify(outcome, reply) => {
                    let answer = match (&durable, outcome) {
                        (_, NoticeOutcome::Ready(answer)) => answer,
                        (Ok(()), NoticeOutcome::New(i)) => Ok(Noticed::Stored {
                            sequence: records[i].sequence,
                            duplicate: false,
                        }),
                        (Ok(()), NoticeOutcome::SameAs(i)) => Ok(Noticed::Stored {
                            sequence: records[i].sequence,
                            duplicate: true,
                        }),
                        (Err(reason), _) => Err(failed(reason)),
                    };
                    let _ = reply.send(answer);
                }
                Answer::Change(outcome, reply) => {
                    let answer = match (&durable, outcome) {
                        (_, ChangeOutcome::Ready(answer)) => answer,
                        (Ok(()), ChangeOutcome::Applied(status)) => Ok(Changed::Applied(status)),
                        (Err(reason), ChangeOutcome::Applied(_)) => Err(failed(reason)),
                    };
                    let _ = reply.send(answer);
                }
            }
        }
        outcome
    }

    fn decide_registration(
        &mut self,
        filing: NewFiling,
        in_batch: &mut HashMap<(Eori, Lrn), usize>,
        documents_in_batch: &mut HashMap<(Eori, String), usize>,
        records: &mut Vec<LogRecord>,
        frames: &mut Vec<Vec<u8>>,
    ) -> Outcome {
        let key = (filing.filer.clone(), filing.lrn.clone());
        if let Some(&i) = in_batch.get(&key) {
            return if records[i].digest == filing.digest {
                Outcome::SameAs(i)
            } else {
                Outcome::Ready(Ok(Registration::Conflict {
                    mrn: Mrn::parse(&records[i].mrn).expect("issued here"),
                }))
            };
        }
        let decided = self.existing(&filing).and_then(|found| match found {
            Some(registration) => Ok(Some(registration)),
            None => match self.document_taken(&filing, documents_in_batch, records)? {
                Some(registration) => Ok(Some(registration)),
                None => self.partial_taken(&filing, records),
            },
        });
        let links = match decided {
            Ok(None) => self.links(&filing, records),
            Ok(Some(registration)) => Ok(Err(registration)),
            Err(e) => Err(e),
        };
        match links {
            Ok(Err(registration)) => Outcome::Ready(Ok(registration)),
            Err(e) => Outcome::Ready(Err(e)),
            Ok(Ok(links)) => {
                for document in &filing.master_documents {
                    documents_in_batch
                        .insert((filing.filer.clone(), document.clone()), records.len());
                }
                let mut record = new_record(filing, self.log.next_seq(), &self.country);
                record.links = links;
                frames.push(self.log.seal_next(&mut record));
                records.push(record);
                in_batch.insert(key, records.len() - 1);
                Outcome::New(records.len() - 1)
            }
        }
    }

    /// Decides a lifecycle change against the filing's current state; on success seals its
    /// record and returns the status after it.
    fn decide_change(
        &mut self,
        mrn: &Mrn,
        change: Change,
        traceparent: String,
        overlay: &mut HashMap<Mrn, FilingEntry>,
        records: &mut Vec<LogRecord>,
        frames: &mut Vec<Vec<u8>>,
    ) -> Result<ChangeOutcome, StoreError> {
        let entry = match overlay.get(mrn) {
            Some(entry) => entry.clone(),
            None => match self.index.entry(mrn)? {
                Some(entry) => entry,
                None => return Ok(ChangeOutcome::Ready(Ok(Changed::NotFound))),
            },
        };
        let status = entry.status.clone().unwrap_or_default();
        let answering = matches!(change, Change::AnswerReferral { .. });
        match status.state() {
            // A referral is answered whatever became of the filing since.
            _ if answering => {}
            FilingState::Invalidated => return Ok(refused(LifecycleError::Invalidated)),
            FilingState::Arrived => return Ok(refused(LifecycleError::Arrived)),
            _ => {}
        }
        let mut record = match change {
            Change::Amend(filing) => {
                let current_digest = status
                    .receipt
                    .as_ref()
                    .map(|r| r.digest.clone())
                    .unwrap_or_default();
                if current_digest == hex::encode(filing.digest) {
                    return Ok(ChangeOutcome::Ready(Ok(Changed::Unchanged(status))));
                }
                if let Some(field) = immutable_change(self.immutable, &entry, &status, &filing) {
                    return Ok(refused(LifecycleError::ImmutableField(field)));
                }
                let mut record = new_record(*filing, self.log.next_seq(), &self.country);
                record.kind = RecordKind::Amendment as i32;
                record.mrn = mrn.to_string();
                record.version = status.version + 1;
                record
            }
            Change::Invalidate { reason, at } => {
                lifecycle_record(RecordKind::Invalidation, &entry, at, reason)
            }
            Change::Arrive { at } => {
                lifecycle_record(RecordKind::Arrival, &entry, at, String::new())
            }
            Change::AnswerReferral {
                administration,
                notice_id,
                text,
                at,
            } => {
                let Some(notice) = status.notices.iter().find(|n| {
                    n.notice_id == notice_id
                        && n.administration == administration
                        && is_referral(n.kind)
                }) else {
                    return Ok(refused(LifecycleError::UnknownReferral));
                };
                if notice.answer == text {
                    return Ok(ChangeOutcome::Ready(Ok(Changed::Unchanged(status))));
                }
                if !notice.answer.is_empty() {
                    return Ok(refused(LifecycleError::AlreadyAnswered));
                }
                let mut record = lifecycle_record(RecordKind::ReferralAnswer, &entry, at, text);
                record.origin = administration;
                record.notice = Some(crate::pb::Notice {
                    notice_id,
                    mrn: status.mrn.clone(),
                    kind: notice.kind,
                    ..crate::pb::Notice::default()
                });
                record
            }
        };
        if !traceparent.is_empty() {
            record.traceparent = traceparent;
        }
        frames.push(self.log.seal_next(&mut record));
        let after = super::index::evolve(entry, &record);
        records.push(record);
        let status = after.status.clone().unwrap_or_default();
        overlay.insert(mrn.clone(), after);
        Ok(ChangeOutcome::Applied(status))
    }

    /// The partial filings a house-level filing completes, or its refusal if it is not from
    /// the next filing party they named (partial filings of this batch included).
    fn links(
        &self,
        filing: &NewFiling,
        records: &[LogRecord],
    ) -> Result<Result<Vec<Link>, Registration>, StoreError> {
        let mut links = Vec::new();
        for document in &filing.house_references {
            let in_batch = records.iter().rev().find(|r| awaits(r, document));
            let awaiting = match in_batch {
                Some(r) => Some((
                    Mrn::parse(&r.mrn).expect("issued here"),
                    r.next_filing_party.clone(),
                )),
                None => self.index.awaiting(document)?,
            };
            let Some((mrn, expected)) = awaiting else {
                continue;
            };
            if expected != filing.filer.as_str() {
                return Ok(Err(Registration::NotNextFilingParty {
                    document: document.clone(),
                }));
            }
            links.push(Link {
                document: document.clone(),
                mrn: mrn.to_string(),
            });
        }
        Ok(Ok(links))
    }

    /// Decides a delivered envelope: the first answer again for a redelivery, otherwise a new
    /// record (stored, or refused with its code).
    fn decide_receive(
        &mut self,
        envelope: crate::pb::Envelope,
        at: std::time::SystemTime,
        received_in_batch: &mut HashMap<(String, u64), usize>,
        records: &mut Vec<LogRecord>,
        frames: &mut Vec<Vec<u8>>,
    ) -> Result<ReceiveOutcome, StoreError> {
        let key = (envelope.origin.clone(), envelope.origin_sequence);
        if let Some(&i) = received_in_batch.get(&key) {
            return Ok(ReceiveOutcome::SameAs(i));
        }
        match self
            .index
            .received(&envelope.origin, envelope.origin_sequence)?
        {
            Some(Received::Stored(local_sequence)) => {
                return Ok(ReceiveOutcome::Ready(Ok(Delivery::Stored {
                    local_sequence,
                    duplicate: true,
                })));
            }
            Some(Received::Refused(code)) => {
                return Ok(ReceiveOutcome::Ready(Ok(Delivery::Refused {
                    message: format!("envelope {}/{} was refused before", key.0, key.1),
                    code,
                    duplicate: true,
                })));
            }
            None => {}
        }
        let problem = envelope_problem(&envelope);
        let mut record = LogRecord {
            kind: if problem.is_some() {
                RecordKind::ReceivedRefused
            } else {
                RecordKind::Received
            } as i32,
            origin: envelope.origin,
            origin_sequence: envelope.origin_sequence,
            envelope_kind: envelope.kind,
            received_at: Some(Timestamp::from(at)),
            ..LogRecord::default()
        };
        match problem {
            Some((code, message)) => {
                record.refusal = code.to_owned();
                record.reason = message;
            }
            None => {
                record.mrn = envelope.mrn;
                record.filer = envelope.filer;
                record.lrn = envelope.lrn;
                record.version = envelope.version;
                record.manifest = envelope.manifest;
                record.origin_digest = envelope.digest;
                record.traceparent = envelope.traceparent;
                if envelope.kind == crate::pb::EnvelopeKind::ReferralAnswer as i32 {
                    record.reason = envelope.answer;
                    record.notice = Some(crate::pb::Notice {
                        notice_id: envelope.notice_id,
                        mrn: record.mrn.clone(),
                        ..crate::pb::Notice::default()
                    });
                } else {
                    record.reason = envelope.reason;
                }
            }
        }
        frames.push(self.log.seal_next(&mut record));
        records.push(record);
        received_in_batch.insert(key, records.len() - 1);
        Ok(ReceiveOutcome::New(records.len() - 1))
    }

    /// Decides a peer's notice: the first answer again for a retried notice id, otherwise a
    /// new record on the filing it names.
    #[allow(clippy::too_many_arguments)]
    fn decide_notice(
        &mut self,
        peer: String,
        notice: crate::pb::Notice,
        at: std::time::SystemTime,
        notices_in_batch: &mut HashMap<(String, String), usize>,
        overlay: &mut HashMap<Mrn, FilingEntry>,
        records: &mut Vec<LogRecord>,
        frames: &mut Vec<Vec<u8>>,
    ) -> Result<NoticeOutcome, StoreError> {
        let key = (peer, notice.notice_id.clone());
        if let Some(&i) = notices_in_batch.get(&key) {
            return Ok(NoticeOutcome::SameAs(i));
        }
        if let Some(sequence) = self.index.notice(&key.0, &key.1)? {
            return Ok(NoticeOutcome::Ready(Ok(Noticed::Stored {
                sequence,
                duplicate: true,
            })));
        }
        let Ok(mrn) = Mrn::parse(&notice.mrn) else {
            return Ok(NoticeOutcome::Ready(Ok(Noticed::NotFound)));
        };
        let entry = match overlay.get(&mrn) {
            Some(entry) => entry.clone(),
            None => match self.index.entry(&mrn)? {
                Some(entry) => entry,
                None => return Ok(NoticeOutcome::Ready(Ok(Noticed::NotFound))),
            },
        };
        let mut record = lifecycle_record(RecordKind::Notice, &entry, at, String::new());
        record.origin = key.0.clone();
        record.notice = Some(notice);
        frames.push(self.log.seal_next(&mut record));
        overlay.insert(mrn, super::index::evolve(entry, &record));
        records.push(record);
        notices_in_batch.insert(key, records.len() - 1);
        Ok(NoticeOutcome::New(records.len() - 1))
    }

    /// A refusal if one of the filing's master documents was filed by the same filer within the
    /// window (in this batch or before).
    fn document_taken(
        &self,
        filing: &NewFiling,
        in_batch: &HashMap<(Eori, String), usize>,
        records: &[LogRecord],
    ) -> Result<Option<Registration>, StoreError> {
        for document in &filing.master_documents {
            if let Some(&i) = in_batch.get(&(filing.filer.clone(), document.clone())) {
                return Ok(Some(Registration::DuplicateDocument {
                    document: document.clone(),
                    mrn: Mrn::parse(&records[i].mrn).expect("issued here"),
                }));
            }
            if let Some((mrn, filed_at)) = self.index.document(&filing.filer, document)?
                && filing
                    .received_at
                    .duration_since(filed_at)
                    .map_or(true, |age| age < self.document_window)
            {
                return Ok(Some(Registration::DuplicateDocument {
                    document: document.clone(),
                    mrn,
                }));
            }
        }
        Ok(None)
    }

    /// A refusal if the filing is partial and one of its master documents already has a
    /// partial filing awaiting completion (in this batch, or in the index and filed within the
    /// window): the first partial filing of a master document keeps it, so nobody can replace
    /// the next filing party it named.
    fn partial_taken(
        &self,
        filing: &NewFiling,
        records: &[LogRecord],
    ) -> Result<Option<Registration>, StoreError> {
        if filing.next_filing_party.is_none() {
            return Ok(None);
        }
        for document in &filing.master_documents {
            let taken = records.iter().any(|r| awaits(r, document));
            let taken = taken
                || match self.index.awaiting(document)? {
                    None => false,
                    Some((mrn, _)) => {
                        // From its first registration: amendments do not extend the window.
                        let filed_at = self
                            .index
                            .status(&mrn)?
                            .and_then(|s| s.history.first().and_then(|t| t.at))
                            .map_or(std::time::UNIX_EPOCH, |t| {
                                std::time::UNIX_EPOCH
                                    + std::time::Duration::from_secs(t.seconds.max(0) as u64)
                            });
                        filing
                            .received_at
                            .duration_since(filed_at)
                            .map_or(true, |age| age < self.document_window)
                    }
                };
            if taken {
                return Ok(Some(Registration::PartialFilingExists {
                    document: document.clone(),
                }));
            }
        }
        Ok(None)
    }

    /// The answer for a filing whose (filer, LRN) is already registered, if it is.
    fn existing(&self, filing: &NewFiling) -> Result<Option<Registration>, StoreError> {
        let Some(mrn) = self.index.mrn_for(&filing.filer, &filing.lrn)? else {
            return Ok(None);
        };
        let status = self.index.status(&mrn)?.ok_or_else(|| {
            StoreError::Inconsistent(format!("index names {mrn} but has no entry"))
        })?;
        let receipt = status.receipt.unwrap_or_default();
        if receipt.digest == hex::encode(filing.digest) {
            Ok(Some(Registration::Duplicate(receipt)))
        } else {
            Ok(Some(Registration::Conflict { mrn }))
        }
    }
}

/// Whether `record` is a partial filing awaiting house-level filings for `document` (as the
/// index's `awaiting` tree has it: filings, not amendments).
fn awaits(record: &LogRecord, document: &str) -> bool {
    record.kind() == RecordKind::Filing
        && !record.next_filing_party.is_empty()
        && record.master_documents.iter().any(|d| d == document)
}

fn new_record(filing: NewFiling, seq: Seq, country: &str) -> LogRecord {
    let received = time::OffsetDateTime::from(filing.received_at);
    let mrn = Mrn::issue(received.year(), country, seq);
    LogRecord {
        kind: RecordKind::Filing as i32,
        mrn: mrn.to_string(),
        filer: filing.filer.to_string(),
        lrn: filing.lrn.to_string(),
        version: 1,
        received_at: Some(Timestamp::from(filing.received_at)),
        manifest: Some(filing.manifest),
        original: filing.original,
        original_type: filing.original_type.to_owned(),
        digest: filing.digest.to_vec(),
        warnings: filing.warnings,
        traceparent: filing.traceparent,
        master_documents: filing.master_documents,
        next_filing_party: filing.next_filing_party.unwrap_or_default(),
        ..LogRecord::default()
    }
}
