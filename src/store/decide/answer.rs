//! Turning a batch's decisions into answers, once its records are durable and sealed.

use std::collections::HashMap;

use crate::ids::Mrn;
use crate::pb::FilingStatus;
use crate::pb::store::{FilingEntry, LogRecord, RecordKind};

use super::Decision;
use crate::store::projection::{evolve, receipt_of};
use crate::store::record::EncodedManifests;
use crate::store::{BatchMap, Changed, Delivery, Noticed, Registration, StoreError};

/// A decided batch: its records, and what turning its decisions into answers needs once the
/// records are durable (sealed: with their chain hashes, which receipts carry).
#[derive(Debug)]
pub struct Decided {
    pub records: Vec<LogRecord>,
    /// The manifests of the records that came encoded, to seal with them.
    pub manifests: EncodedManifests,
    before: BatchMap<Mrn, FilingEntry>,
}

impl Decided {
    pub(super) fn new(
        records: Vec<LogRecord>,
        manifests: EncodedManifests,
        before: BatchMap<Mrn, FilingEntry>,
    ) -> Decided {
        Decided {
            records,
            manifests,
            before,
        }
    }

    /// The answer to a registration.
    pub fn registration(
        &self,
        decision: Decision<Registration>,
    ) -> Result<Registration, StoreError> {
        match decision {
            Decision::Now(answer) => answer,
            Decision::New(i) => Ok(Registration::Registered(receipt_of(&self.records[i]))),
            Decision::Repeat(i) => Ok(Registration::Duplicate(receipt_of(&self.records[i]))),
        }
    }

    /// The answers to the batch's changes: the status after each change record, by position
    /// (the entries replayed from before the batch through the sealed records).
    pub fn changed(&self) -> HashMap<usize, FilingStatus> {
        let mut entries = self.before.clone();
        let mut after = HashMap::new();
        for (i, record) in self.records.iter().enumerate() {
            if !is_change(record.kind()) {
                continue;
            }
            let Ok(mrn) = Mrn::parse(&record.mrn) else {
                continue;
            };
            if let Some(entry) = entries.remove(&mrn) {
                let entry = evolve(entry, record);
                after.insert(i, entry.status.clone().unwrap_or_default());
                entries.insert(mrn, entry);
            }
        }
        after
    }

    /// The answer to a change, given [`Decided::changed`].
    pub fn change(
        &self,
        decision: Decision<Changed>,
        changed: &HashMap<usize, FilingStatus>,
    ) -> Result<Changed, StoreError> {
        match decision {
            Decision::Now(answer) => answer,
            Decision::New(i) => self.status_after(i, changed).map(Changed::Applied),
            // A change that changes nothing, after a record of this batch changed the filing.
            Decision::Repeat(i) => self.status_after(i, changed).map(Changed::Unchanged),
        }
    }

    fn status_after(
        &self,
        i: usize,
        changed: &HashMap<usize, FilingStatus>,
    ) -> Result<FilingStatus, StoreError> {
        changed
            .get(&i)
            .cloned()
            .ok_or_else(|| StoreError::Inconsistent(format!("change record {i} has no entry")))
    }

    /// The answer to a delivered envelope.
    pub fn delivery(&self, decision: Decision<Delivery>) -> Result<Delivery, StoreError> {
        match decision {
            Decision::Now(answer) => answer,
            Decision::New(i) => Ok(delivery(&self.records[i], false)),
            Decision::Repeat(i) => Ok(delivery(&self.records[i], true)),
        }
    }

    /// The answer to a peer's notice.
    pub fn noticed(&self, decision: Decision<Noticed>) -> Result<Noticed, StoreError> {
        match decision {
            Decision::Now(answer) => answer,
            Decision::New(i) => Ok(Noticed::Stored {
                sequence: self.records[i].sequence,
                duplicate: false,
            }),
            Decision::Repeat(i) => Ok(Noticed::Stored {
                sequence: self.records[i].sequence,
                duplicate: true,
            }),
        }
    }
}

/// Whether a record kind changes a registered filing (so has an entry before it).
fn is_change(kind: RecordKind) -> bool {
    matches!(
        kind,
        RecordKind::Amendment
            | RecordKind::Invalidation
            | RecordKind::Arrival
            | RecordKind::Notice
            | RecordKind::ReferralAnswer
            | RecordKind::TimerFired
    )
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
