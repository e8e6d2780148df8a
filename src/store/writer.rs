//! The single writer: owns sequence assignment, the (filer, LRN) uniqueness decision and the
//! append path, with group commit.
//!
//! It runs on its own OS thread (fdatasync blocks). Each turn it takes every command waiting (up
//! to the batch limit), decides each registration against the index and the batch itself, seals
//! the new records, writes them, calls fdatasync once, applies them to the index, and only then
//! answers. Deciding uniqueness here, in the one place that assigns sequences, is what makes two
//! concurrent submissions of one LRN produce exactly one record.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prost_types::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::ids::{Eori, Lrn, Mrn, Seq};
use crate::pb::Receipt;
use crate::pb::store::{LogRecord, RecordKind};

use super::index::{Index, receipt_of};
use super::log::SegmentLog;
use super::{NewFiling, Registration, Stats, StoreError};

type Reply = oneshot::Sender<Result<Registration, StoreError>>;

pub(super) enum Command {
    Register {
        filing: Box<NewFiling>,
        reply: Reply,
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
    pub stats: Arc<Stats>,
}

/// How one command of a batch is answered once the batch is durable.
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
        let mut failed: Option<String> = None;
        while let Some(first) = commands.blocking_recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match commands.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let mut closing = Vec::new();
            let mut registrations = Vec::with_capacity(batch.len());
            for command in batch.drain(..) {
                match command {
                    Command::Register { filing, reply } => registrations.push((filing, reply)),
                    Command::Close { reply } => closing.push(reply),
                }
            }
            if let Some(reason) = &failed {
                for (_, reply) in registrations {
                    let _ = reply.send(Err(StoreError::Failed(reason.clone())));
                }
            } else if let Err(reason) = self.commit(registrations) {
                tracing::error!(%reason, "the log writer stopped accepting appends");
                failed = Some(reason);
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

    /// Decides, writes, syncs and answers one batch. An error means the log can no longer be
    /// trusted to append (every caller of the batch has been answered with it).
    fn commit(&mut self, registrations: Vec<(Box<NewFiling>, Reply)>) -> Result<(), String> {
        let mut records: Vec<LogRecord> = Vec::new();
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut in_batch: HashMap<(Eori, Lrn), usize> = HashMap::new();
        // Master documents of this batch's new records: (filer, document) → record position.
        let mut documents_in_batch: HashMap<(Eori, String), usize> = HashMap::new();
        let mut outcomes = Vec::with_capacity(registrations.len());
        let first_seq = self.log.next_seq();
        for (filing, reply) in registrations {
            let key = (filing.filer.clone(), filing.lrn.clone());
            let outcome = if let Some(&i) = in_batch.get(&key) {
                if records[i].digest == filing.digest {
                    Outcome::SameAs(i)
                } else {
                    Outcome::Ready(Ok(Registration::Conflict {
                        mrn: Mrn::parse(&records[i].mrn).expect("issued here"),
                    }))
                }
            } else {
                let decided = self.existing(&filing).and_then(|found| match found {
                    Some(registration) => Ok(Some(registration)),
                    None => self.document_taken(&filing, &documents_in_batch, &records),
                });
                match decided {
                    Ok(Some(registration)) => Outcome::Ready(Ok(registration)),
                    Err(e) => Outcome::Ready(Err(e)),
                    Ok(None) => {
                        for document in &filing.master_documents {
                            documents_in_batch
                                .insert((filing.filer.clone(), document.clone()), records.len());
                        }
                        let mut record = new_record(*filing, self.log.next_seq(), &self.country);
                        frames.push(self.log.seal_next(&mut record));
                        records.push(record);
                        in_batch.insert(key, records.len() - 1);
                        Outcome::New(records.len() - 1)
                    }
                }
            };
            outcomes.push((outcome, reply));
        }

        let durable = if frames.is_empty() {
            Ok(())
        } else {
            let started = Instant::now();
            let syncs_before = self.log.syncs;
            let written = self
                .log
                .write_batch(first_seq.0, &frames)
                .map_err(|e| e.to_string());
            self.stats.record_batch(
                records.len() as u64,
                self.log.syncs - syncs_before,
                started.elapsed(),
            );
            written.and_then(|()| self.index.apply(&records).map_err(|e| e.to_string()))
        };
        if let Ok(()) = durable {
            self.stats
                .durable_seq
                .store(self.log.next_seq().0 - 1, Ordering::Release);
        }
        // Receipts are built only now: a caller hears "registered" only after fdatasync.
        let receipts: Vec<Receipt> = records.iter().map(receipt_of).collect();
        for (outcome, reply) in outcomes {
            let answer = match (&durable, outcome) {
                (_, Outcome::Ready(answer)) => answer,
                (Ok(()), Outcome::New(i)) => Ok(Registration::Registered(receipts[i].clone())),
                (Ok(()), Outcome::SameAs(i)) => Ok(Registration::Duplicate(receipts[i].clone())),
                (Err(reason), _) => Err(StoreError::Failed(reason.clone())),
            };
            let _ = reply.send(answer);
        }
        durable
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

    /// The answer for a filing whose (filer, LRN) is already registered, if it is.
    fn existing(&self, filing: &NewFiling) -> Result<Option<Registration>, StoreError> {
        let Some(mrn) = self.index.mrn_for(&filing.filer, &filing.lrn)? else {
            return Ok(None);
        };
        let status = self
            .index
            .status(&mrn)?
            .ok_or_else(|| StoreError::Failed(format!("index names {mrn} but has no entry")))?;
        let receipt = status.receipt.unwrap_or_default();
        if receipt.digest == hex::encode(filing.digest) {
            Ok(Some(Registration::Duplicate(receipt)))
        } else {
            Ok(Some(Registration::Conflict { mrn }))
        }
    }
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
        ..LogRecord::default()
    }
}
