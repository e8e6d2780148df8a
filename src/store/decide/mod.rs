//! The store's decisions: what each command of a batch comes to — a new record, the answer an
//! earlier record already got, or a refusal — decided over the state before the batch (a
//! [`StateView`], the index) plus what the batch itself decided so far.
//!
//! Nothing here writes or syncs, and nothing depends on which log the records go to: the
//! writer's commit loop (`store::writer`) runs these functions, hands the records to the log
//! backend, and only then turns each [`Decision`] into an answer ([`Decided`]). The records a
//! batch makes carry their sequences (the batch starts at the log's next one, so an MRN can be
//! issued from it); the backend seals them into the hash chain.
//!
//! What the decisions guarantee: one record per (filer, LRN) however the submissions interleave;
//! one filing per master transport document and filer within the window; the first partial
//! filing of a master document keeps it; only the next filing party it named completes it; one
//! record per delivered envelope (origin, origin sequence) and per peer notice id; no change to a
//! filing that is invalidated or arrived, and none to what an amendment may not change.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::ids::{Eori, Lrn, Mrn, Seq};
use crate::pb::store::{FilingEntry, Link, LogRecord, RecordKind, Timer, TimerKind};
use crate::pb::{FilingState, FilingStatus};

mod answer;
mod records;
#[cfg(test)]
mod tests;

pub use self::answer::Decided;
use self::records::{awaits, lifecycle_record, new_record, received_record};
use super::index::{Index, IndexError, Received};
use super::projection::{evolve, referral, referral_mut, request_mut};
use super::record::EncodedManifests;
use super::risk::target_label;
use super::table::Reads;
use super::{
    BatchMap, Change, ChangeRefusal, Changed, Delivery, NewFiling, Noticed, Registration,
    StoreError,
};

/// What the decisions read of the state before the batch. The index is the one implementation;
/// any log backend reuses the decisions over it unchanged.
pub trait StateView {
    /// The MRN registered for a filer's LRN.
    fn mrn_for(&self, filer: &Eori, lrn: &Lrn) -> Result<Option<Mrn>, IndexError>;
    /// A filing's entry: its status and what an amendment may not change.
    fn entry(&self, mrn: &Mrn) -> Result<Option<FilingEntry>, IndexError>;
    /// The MRN and filing time under which a filer filed a master document, if it did.
    fn document(
        &self,
        filer: &Eori,
        document: &str,
    ) -> Result<Option<(Mrn, SystemTime)>, IndexError>;
    /// The partial filing awaiting house filings of a master document, and who may file them.
    fn awaiting(&self, document: &str) -> Result<Option<(Mrn, String)>, IndexError>;
    /// What became of an envelope a peer delivered before.
    fn received(&self, origin: &str, origin_sequence: u64) -> Result<Option<Received>, IndexError>;
    /// The sequence of a peer's notice, if it was received.
    fn notice(&self, peer: &str, notice_id: &str) -> Result<Option<u64>, IndexError>;
}

impl StateView for Index {
    fn mrn_for(&self, filer: &Eori, lrn: &Lrn) -> Result<Option<Mrn>, IndexError> {
        Index::mrn_for(self, filer, lrn, Reads::Deciding)
    }
    fn entry(&self, mrn: &Mrn) -> Result<Option<FilingEntry>, IndexError> {
        Index::entry(self, mrn, Reads::MayWait)
    }
    fn document(
        &self,
        filer: &Eori,
        document: &str,
    ) -> Result<Option<(Mrn, SystemTime)>, IndexError> {
        Index::document(self, filer, document, Reads::Deciding)
    }
    fn awaiting(&self, document: &str) -> Result<Option<(Mrn, String)>, IndexError> {
        Index::awaiting(self, document)
    }
    fn received(&self, origin: &str, origin_sequence: u64) -> Result<Option<Received>, IndexError> {
        Index::received(self, origin, origin_sequence)
    }
    fn notice(&self, peer: &str, notice_id: &str) -> Result<Option<u64>, IndexError> {
        Index::notice(self, peer, notice_id)
    }
}

/// The administration's rules the decisions apply.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Country code of the MRNs issued.
    pub country: String,
    /// How long a master transport document stays reserved to its first filing.
    pub document_window: Duration,
    /// What an amendment may not change.
    pub immutable: super::Immutable,
    /// When a filing's timers fire.
    pub timers: super::TimerSettings,
}

/// What one command of a batch comes to.
#[derive(Debug)]
pub enum Decision<T> {
    /// A new record, at this position of the batch: answered once the batch is durable.
    New(usize),
    /// The same as the new record at this position (sent twice within one batch); for a change,
    /// one that changes nothing after the record at this position changed the filing.
    Repeat(usize),
    /// Answered without writing anything.
    Now(Result<T, StoreError>),
}

/// One batch being decided.
pub struct Batch<'a, V: StateView> {
    view: &'a V,
    rules: &'a Rules,
    first_seq: Seq,
    records: Vec<LogRecord>,
    lrns: BatchMap<(Eori, Lrn), usize>,
    /// Master documents of this batch's new filings → their record positions (any filer's).
    documents: BatchMap<String, Vec<usize>>,
    /// Entries as this batch's changes leave them (two changes to one MRN see each other).
    entries: BatchMap<Mrn, FilingEntry>,
    /// Entries as they were before the batch, for the answers (see [`Decided::changed`]).
    before: BatchMap<Mrn, FilingEntry>,
    /// The position of the last record of this batch that changed each filing.
    last_change: BatchMap<Mrn, usize>,
    /// (origin, origin sequence) of envelopes received in this batch → record position.
    received: BatchMap<(String, u64), usize>,
    /// (peer, notice id) of notices received in this batch → record position.
    notices: BatchMap<(String, String), usize>,
    /// The encodings of the batch's manifests that come encoded (filings, amendments, received
    /// envelopes), sealed as they are.
    manifests: EncodedManifests,
}

impl<'a, V: StateView> Batch<'a, V> {
    /// A batch whose first record will be the log's `first_seq`.
    pub fn new(view: &'a V, rules: &'a Rules, first_seq: Seq) -> Self {
        Batch {
            view,
            rules,
            first_seq,
            records: Vec::new(),
            lrns: BatchMap::default(),
            documents: BatchMap::default(),
            entries: BatchMap::default(),
            before: BatchMap::default(),
            last_change: BatchMap::default(),
            received: BatchMap::default(),
            notices: BatchMap::default(),
            manifests: EncodedManifests::default(),
        }
    }

    /// Ends the decisions: the records to append, and what the answers need.
    pub fn finish(self) -> Decided {
        Decided::new(self.records, self.manifests, self.before)
    }

    /// Adds a record with the batch's next sequence, and its manifest's encoding if it has one
    /// to seal as it is; returns its position.
    fn push(&mut self, mut record: LogRecord, manifest: Option<Bytes>) -> usize {
        record.sequence = self.first_seq.0 + self.records.len() as u64;
        if let Some(manifest) = manifest {
            self.manifests.insert(record.sequence, manifest);
        }
        self.records.push(record);
        self.records.len() - 1
    }

    fn next_seq(&self) -> Seq {
        Seq(self.first_seq.0 + self.records.len() as u64)
    }

    /// A filing's entry as the batch has left it so far, else as the view has it.
    fn current(&mut self, mrn: &Mrn) -> Result<Option<FilingEntry>, StoreError> {
        if let Some(entry) = self.entries.get(mrn) {
            return Ok(Some(entry.clone()));
        }
        let entry = self.view.entry(mrn)?;
        if let Some(entry) = &entry {
            self.before.insert(mrn.clone(), entry.clone());
        }
        Ok(entry)
    }

    /// Decides a new filing.
    pub fn register(&mut self, filing: NewFiling) -> Decision<Registration> {
        let key = (filing.filer.clone(), filing.lrn.clone());
        if let Some(&i) = self.lrns.get(&key) {
            return if self.records[i].digest == filing.digest {
                Decision::Repeat(i)
            } else {
                Decision::Now(Ok(Registration::Conflict {
                    mrn: mrn_of(&self.records[i]),
                }))
            };
        }
        let links = match self.refusal_of(&filing) {
            Err(e) => return Decision::Now(Err(e)),
            Ok(Some(registration)) => return Decision::Now(Ok(registration)),
            Ok(None) => match self.links(&filing) {
                Err(e) => return Decision::Now(Err(e)),
                Ok(Err(refusal)) => return Decision::Now(Ok(refusal)),
                Ok(Ok(links)) => links,
            },
        };
        let position = self.records.len();
        let encoding = filing.manifest_encoding.clone();
        for document in &filing.master_documents {
            self.documents
                .entry(document.clone())
                .or_default()
                .push(position);
        }
        let mut record = new_record(filing, self.next_seq(), &self.rules.country);
        record.links = links;
        record.timers = filing_timers(&self.rules.timers, &record);
        let i = self.push(record, encoding);
        self.lrns.insert(key, i);
        Decision::New(i)
    }

    /// The answer a filing gets without a record, if any: its (filer, LRN) is registered, a
    /// master document of it is taken, or a partial filing holds it.
    fn refusal_of(&self, filing: &NewFiling) -> Result<Option<Registration>, StoreError> {
        if let Some(registration) = self.existing(filing)? {
            return Ok(Some(registration));
        }
        if let Some(registration) = self.document_taken(filing)? {
            return Ok(Some(registration));
        }
        self.partial_taken(filing)
    }

    /// The answer for a filing whose (filer, LRN) is already registered, if it is.
    fn existing(&self, filing: &NewFiling) -> Result<Option<Registration>, StoreError> {
        let Some(mrn) = self.view.mrn_for(&filing.filer, &filing.lrn)? else {
            return Ok(None);
        };
        let status = self.status(&mrn)?.ok_or_else(|| {
            StoreError::Inconsistent(format!("index names {mrn} but has no entry"))
        })?;
        let receipt = status.receipt.unwrap_or_default();
        if same_content(&receipt.digest, filing) {
            Ok(Some(Registration::Duplicate(receipt)))
        } else {
            Ok(Some(Registration::Conflict { mrn }))
        }
    }

    fn status(&self, mrn: &Mrn) -> Result<Option<FilingStatus>, StoreError> {
        Ok(self.view.entry(mrn)?.and_then(|entry| entry.status))
    }

    /// A refusal if one of the filing's master documents was filed by the same filer within the
    /// window (in this batch or before).
    fn document_taken(&self, filing: &NewFiling) -> Result<Option<Registration>, StoreError> {
        for document in &filing.master_documents {
            let in_batch = self.documents.get(document.as_str()).and_then(|positions| {
                positions
                    .iter()
                    .find(|&&i| self.records[i].filer == filing.filer.as_str())
            });
            if let Some(&i) = in_batch {
                return Ok(Some(Registration::DuplicateDocument {
                    document: document.clone(),
                    mrn: mrn_of(&self.records[i]),
                }));
            }
            if let Some((mrn, filed_at)) = self.view.document(&filing.filer, document)?
                && self.within_window(filing, filed_at)
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
    /// partial filing awaiting completion (in this batch, or before and filed within the
    /// window): the first partial filing of a master document keeps it, so nobody can replace
    /// the next filing party it named.
    fn partial_taken(&self, filing: &NewFiling) -> Result<Option<Registration>, StoreError> {
        if filing.next_filing_party.is_none() {
            return Ok(None);
        }
        for document in &filing.master_documents {
            let taken = self.records.iter().any(|r| awaits(r, document))
                || match self.view.awaiting(document)? {
                    None => false,
                    // From its first registration: amendments do not extend the window.
                    Some((mrn, _)) => {
                        let filed_at = self
                            .status(&mrn)?
                            .and_then(|s| s.history.first().and_then(|t| t.at))
                            .map_or(std::time::UNIX_EPOCH, |t| {
                                std::time::UNIX_EPOCH + Duration::from_secs(t.seconds.max(0) as u64)
                            });
                        self.within_window(filing, filed_at)
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

    /// Whether `filing` comes within the duplicate-document window of something filed at
    /// `filed_at` (a clock that went back counts as within).
    fn within_window(&self, filing: &NewFiling, filed_at: SystemTime) -> bool {
        filing
            .received_at
            .duration_since(filed_at)
            .map_or(true, |age| age < self.rules.document_window)
    }

    /// The partial filings a house-level filing completes, or its refusal if it is not from
    /// the next filing party they named (partial filings of this batch included).
    fn links(&self, filing: &NewFiling) -> Result<Result<Vec<Link>, Registration>, StoreError> {
        let mut links = Vec::new();
        for document in &filing.house_references {
            let in_batch = self.records.iter().rev().find(|r| awaits(r, document));
            let awaiting = match in_batch {
                Some(r) => Some((mrn_of(r), r.next_filing_party.clone())),
                None => self.view.awaiting(document)?,
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

    /// Decides a lifecycle change against the filing's current state.
    pub fn change(&mut self, mrn: &Mrn, change: Change, traceparent: String) -> Decision<Changed> {
        let encoding = match &change {
            Change::Amend(filing) => filing.manifest_encoding.clone(),
            _ => None,
        };
        match self.change_record(mrn, change) {
            Err(e) => Decision::Now(Err(e)),
            // Unchanged from what a record of this batch left: its status is only complete
            // (the receipt's chain hash) once that record is sealed, so it is answered then.
            Ok(Err(Changed::Unchanged(_))) if self.last_change.contains_key(mrn) => {
                Decision::Repeat(self.last_change[mrn])
            }
            Ok(Err(answer)) => Decision::Now(Ok(answer)),
            Ok(Ok((entry, mut record))) => {
                if !traceparent.is_empty() {
                    record.traceparent = traceparent;
                }
                let i = self.push(record, encoding);
                let after = evolve(entry, &self.records[i]);
                self.entries.insert(mrn.clone(), after);
                self.last_change.insert(mrn.clone(), i);
                Decision::New(i)
            }
        }
    }

    /// The record a change makes, with the entry it changes; or the answer it gets without one.
    fn change_record(
        &mut self,
        mrn: &Mrn,
        change: Change,
    ) -> Result<Result<(FilingEntry, LogRecord), Changed>, StoreError> {
        let Some(entry) = self.current(mrn)? else {
            return Ok(Err(Changed::NotFound));
        };
        let status = entry.status.clone().unwrap_or_default();
        match (&change, status.state()) {
            // A referral is answered whatever became of the filing since; a timer decides
            // for itself whether it still applies.
            (Change::AnswerReferral { .. } | Change::Fire(_), _) => {}
            (_, FilingState::Invalidated) => return Ok(Err(refused(ChangeRefusal::Invalidated))),
            (_, FilingState::Arrived) => return Ok(Err(refused(ChangeRefusal::Arrived))),
            // Once a control is announced, the filing may not be withdrawn (nor amended: below,
            // after a retry of the current version is answered as before).
            (Change::Invalidate { .. }, _) if status.under_control => {
                return Ok(Err(refused(ChangeRefusal::UnderControl)));
            }
            _ => {}
        }
        let record = match change {
            Change::Amend(filing) => {
                let current_digest = status.receipt.as_ref().map(|r| r.digest.as_str());
                if current_digest.is_some_and(|digest| same_content(digest, &filing)) {
                    return Ok(Err(Changed::Unchanged(status)));
                }
                if status.under_control {
                    return Ok(Err(refused(ChangeRefusal::UnderControl)));
                }
                if let Some(field) = immutable_change(self.rules.immutable, &entry, &filing) {
                    return Ok(Err(refused(ChangeRefusal::ImmutableField(field))));
                }
                let mut record = new_record(*filing, self.next_seq(), &self.rules.country);
                record.kind = RecordKind::Amendment as i32;
                record.mrn = mrn.to_string();
                record.version = status.version + 1;
                record
            }
            Change::Invalidate { reason, at } => {
                lifecycle_record(RecordKind::Invalidation, &entry, at, reason)
            }
            Change::Arrive { at, facts } => {
                let mut record = lifecycle_record(RecordKind::Arrival, &entry, at, String::new());
                record.arrival = facts;
                record
            }
            Change::AnswerReferral {
                administration,
                notice_id,
                answer,
                text,
                at,
            } => {
                let mut status = status;
                let Some(notice) = referral_mut(&mut status, &administration, &notice_id) else {
                    return Ok(Err(refused(ChangeRefusal::UnknownReferral)));
                };
                let kind = notice.kind;
                let Some(request) = request_mut(notice, &answer.request_reference) else {
                    return Ok(Err(refused(ChangeRefusal::UnknownReferral)));
                };
                if let Some(given) = &request.answer {
                    return Ok(Err(if super::risk::same_answer(given, &answer) {
                        Changed::Unchanged(status)
                    } else {
                        refused(ChangeRefusal::AlreadyAnswered)
                    }));
                }
                let reference = request
                    .request
                    .as_ref()
                    .map(|r| r.reference.clone())
                    .unwrap_or_default();
                let mut record = lifecycle_record(RecordKind::ReferralAnswer, &entry, at, text);
                record.origin = administration;
                record.notice = Some(crate::pb::Notice {
                    notice_id,
                    mrn: status.mrn.clone(),
                    kind,
                    ..crate::pb::Notice::default()
                });
                record.referral_answer = Some(crate::pb::ReferralAnswer {
                    request_reference: reference,
                    ..answer
                });
                record
            }
            Change::Fire(timer) => match fired_record(&entry, timer) {
                Some(record) => record,
                None => return Ok(Err(Changed::Unchanged(status))),
            },
        };
        Ok(Ok((entry, record)))
    }

    /// Decides a delivered envelope: the first answer again for a redelivery, otherwise a new
    /// record (stored, or refused with its code).
    pub fn receive(
        &mut self,
        envelope: crate::pb::EncodedEnvelope,
        manifest: crate::pb::envelope::ReceivedManifest,
        at: SystemTime,
    ) -> Decision<Delivery> {
        let key = (envelope.origin.clone(), envelope.origin_sequence);
        if let Some(&i) = self.received.get(&key) {
            return Decision::Repeat(i);
        }
        match self.view.received(&key.0, key.1) {
            Err(e) => return Decision::Now(Err(e.into())),
            Ok(Some(Received::Stored(local_sequence))) => {
                return Decision::Now(Ok(Delivery::Stored {
                    local_sequence,
                    duplicate: true,
                }));
            }
            Ok(Some(Received::Refused(code))) => {
                return Decision::Now(Ok(Delivery::Refused {
                    message: format!("envelope {}/{} was refused before", key.0, key.1),
                    code,
                    duplicate: true,
                }));
            }
            Ok(None) => {}
        }
        let (record, manifest) = received_record(envelope, manifest, at);
        let i = self.push(record, manifest);
        self.received.insert(key, i);
        Decision::New(i)
    }

    /// Decides a peer's notice: the first answer again for a retried notice id, otherwise a
    /// new record on the filing it names.
    pub fn notify(
        &mut self,
        peer: String,
        notice: crate::pb::Notice,
        at: SystemTime,
    ) -> Decision<Noticed> {
        match self.notice_record(peer, notice, at) {
            Ok(decision) => decision,
            Err(e) => Decision::Now(Err(e)),
        }
    }

    fn notice_record(
        &mut self,
        peer: String,
        notice: crate::pb::Notice,
        at: SystemTime,
    ) -> Result<Decision<Noticed>, StoreError> {
        let key = (peer, notice.notice_id.clone());
        if let Some(&i) = self.notices.get(&key) {
            return Ok(Decision::Repeat(i));
        }
        if let Some(sequence) = self.view.notice(&key.0, &key.1)? {
            return Ok(Decision::Now(Ok(Noticed::Stored {
                sequence,
                duplicate: true,
            })));
        }
        let Ok(mrn) = Mrn::parse(&notice.mrn) else {
            return Ok(Decision::Now(Ok(Noticed::NotFound)));
        };
        let Some(entry) = self.current(&mrn)? else {
            return Ok(Decision::Now(Ok(Noticed::NotFound)));
        };
        if let Err((code, message)) = check_targets(&entry, &notice) {
            return Ok(Decision::Now(Ok(Noticed::Refused { code, message })));
        }
        let mut record = lifecycle_record(RecordKind::Notice, &entry, at, String::new());
        record.origin = key.0.clone();
        if let Some(due) = notice.deadline
            && super::risk::is_referral(notice.kind())
        {
            record.timers.push(Timer {
                kind: TimerKind::ReferralDeadline as i32,
                due: Some(due),
                notice_id: notice.notice_id.clone(),
                administration: key.0.clone(),
            });
        }
        record.notice = Some(notice);
        let i = self.push(record, None);
        self.entries
            .insert(mrn.clone(), evolve(entry, &self.records[i]));
        self.last_change.insert(mrn, i);
        self.notices.insert(key, i);
        Ok(Decision::New(i))
    }
}

/// The timers a new filing starts: its automatic invalidation, and for a partial filing with a
/// deadline the reminder before it and the deadline itself.
fn filing_timers(settings: &super::TimerSettings, record: &LogRecord) -> Vec<Timer> {
    let timer = |kind: TimerKind, due: SystemTime| Timer {
        kind: kind as i32,
        due: Some(prost_types::Timestamp::from(due)),
        ..Timer::default()
    };
    let mut timers = Vec::new();
    let received = record
        .received_at
        .and_then(|t| SystemTime::try_from(t).ok());
    if let (Some(after), Some(received)) = (settings.automatic_invalidation, received)
        && let Some(due) = received.checked_add(after)
    {
        timers.push(timer(TimerKind::AutomaticInvalidation, due));
    }
    let due = record.due.and_then(|t| SystemTime::try_from(t).ok());
    if let Some(due) = due.filter(|_| !record.next_filing_party.is_empty()) {
        if let Some(reminder) = due.checked_sub(settings.incomplete_reminder) {
            timers.push(timer(TimerKind::IncompleteReminder, reminder));
        }
        timers.push(timer(TimerKind::IncompleteDeadline, due));
    }
    timers
}

/// The record a timer that came due makes, or none when it no longer applies (the filing
/// arrived, was invalidated or completed, the referral was answered, or it fired before).
fn fired_record(entry: &FilingEntry, timer: Timer) -> Option<LogRecord> {
    let status = entry.status.as_ref()?;
    let at = SystemTime::now();
    let fired_before = |event: &str| status.history.iter().any(|t| t.event == event);
    let open = matches!(
        status.state(),
        FilingState::Registered | FilingState::Incomplete
    );
    let applies = match timer.kind() {
        TimerKind::ReferralDeadline => referral(status, &timer.administration, &timer.notice_id)
            .is_some_and(|n| {
                n.requests
                    .iter()
                    .any(|r| r.state() == crate::pb::RiskState::ReferralOpen)
            }),
        TimerKind::IncompleteReminder => {
            status.state() == FilingState::Incomplete && !fired_before("incomplete reminder")
        }
        TimerKind::IncompleteDeadline => {
            status.state() == FilingState::Incomplete && !fired_before("incomplete overdue")
        }
        // A control holds the filing: it is not withdrawn under the administration's hands.
        TimerKind::AutomaticInvalidation => open && !status.under_control,
        TimerKind::Unspecified => false,
    };
    if !applies {
        return None;
    }
    let mut record = if timer.kind() == TimerKind::AutomaticInvalidation {
        let days = timer
            .due
            .zip(status.receipt.as_ref().and_then(|r| r.received_at))
            .map_or(0, |(due, filed)| (due.seconds - filed.seconds) / 86_400);
        lifecycle_record(
            RecordKind::Invalidation,
            entry,
            at,
            format!("automatic: the goods did not arrive within {days} days of the filing"),
        )
    } else {
        lifecycle_record(RecordKind::TimerFired, entry, at, String::new())
    };
    record.timer = Some(timer);
    Some(record)
}

/// Whether every target a notice names (and each of its requests) is an item of the filing's
/// current version; the refusal's code and message if not.
fn check_targets(
    entry: &FilingEntry,
    notice: &crate::pb::Notice,
) -> Result<(), (&'static str, String)> {
    let targets = notice
        .targets
        .iter()
        .chain(notice.requests.iter().flat_map(|r| r.targets.iter()));
    for target in targets {
        if !entry.targets.contains(target) {
            return Err((
                "NOTICE_UNKNOWN_TARGET",
                format!("{} is not an item of {}", target_label(target), notice.mrn),
            ));
        }
    }
    Ok(())
}

/// The MRN of a record this gateway issued.
fn mrn_of(record: &LogRecord) -> Mrn {
    Mrn::parse(&record.mrn).expect("the batch issued this MRN")
}

fn refused(refusal: ChangeRefusal) -> Changed {
    Changed::Refused(refusal)
}

/// The field an amendment may not change that it does change, if any.
fn immutable_change(
    immutable: super::Immutable,
    entry: &FilingEntry,
    filing: &NewFiling,
) -> Option<&'static str> {
    let status = entry.status.clone().unwrap_or_default();
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

/// Whether a registered digest (hex) is a filing's: its digest, or for a filing sent in version
/// 1's form, the digest of that form (what a gateway before version 2 registered it under).
fn same_content(registered: &str, filing: &NewFiling) -> bool {
    registered == hex::encode(filing.digest)
        || filing
            .version_1_digest
            .is_some_and(|digest| registered == hex::encode(digest))
}
