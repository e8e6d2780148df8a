//! The records the decisions make: a new filing (with the MRN its sequence issues), a change
//! without a manifest, a delivered envelope (stored or refused).

use std::time::SystemTime;

use bytes::Bytes;
use prost_types::Timestamp;

use crate::ids::{Mrn, Seq};
use crate::pb::EncodedEnvelope;
use crate::pb::envelope::ReceivedManifest;
use crate::pb::store::{FilingEntry, LogRecord, RecordKind};
use crate::store::NewFiling;

/// The record of a delivered envelope, stored or refused with its code, and the manifest it
/// carries, encoded, to seal into the record as it came.
pub(super) fn received_record(
    envelope: EncodedEnvelope,
    manifest: ReceivedManifest,
    at: SystemTime,
) -> (LogRecord, Option<Bytes>) {
    let (manifest, problem) = match manifest {
        Ok(manifest) => {
            let problem = envelope_problem(&envelope, manifest.is_some());
            (manifest, problem)
        }
        Err(e) => (
            None,
            Some((
                "INVALID_ENVELOPE",
                format!("the manifest does not decode: {e}"),
            )),
        ),
    };
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
    if let Some((code, message)) = problem {
        record.refusal = code.to_owned();
        record.reason = message;
        return (record, None);
    }
    record.mrn = envelope.mrn;
    record.filer = envelope.filer;
    record.lrn = envelope.lrn;
    record.version = envelope.version;
    record.origin_digest = envelope.digest;
    record.traceparent = envelope.traceparent;
    record.arrival = envelope.arrival;
    match crate::pb::EnvelopeKind::try_from(envelope.kind) {
        Ok(crate::pb::EnvelopeKind::ReferralAnswer) => {
            record.reason = envelope.answer;
            record.referral_answer = envelope.referral_answer;
            record.notice = Some(crate::pb::Notice {
                notice_id: envelope.notice_id,
                mrn: record.mrn.clone(),
                ..crate::pb::Notice::default()
            });
        }
        Ok(crate::pb::EnvelopeKind::Control) => {
            // Who announced the control (the sender only shares it).
            record.reason = envelope.notice_administration;
            record.notice = envelope.notice;
        }
        _ => record.reason = envelope.reason,
    }
    (record, manifest)
}

/// Why an envelope cannot be taken, if it cannot: (code, message).
fn envelope_problem(
    envelope: &EncodedEnvelope,
    has_manifest: bool,
) -> Option<(&'static str, String)> {
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
    if matches!(kind, EnvelopeKind::Filing | EnvelopeKind::Amendment) && !has_manifest {
        return Some((
            "INVALID_ENVELOPE",
            "a filing or amendment carries its manifest".into(),
        ));
    }
    if kind == EnvelopeKind::Control && envelope.notice.is_none() {
        return Some((
            "INVALID_ENVELOPE",
            "a control envelope carries the notice".into(),
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

/// A record of a change that carries no manifest (invalidation, arrival, notice, referral
/// answer), with the routing facts of the filing's current version.
pub(super) fn lifecycle_record(
    kind: RecordKind,
    entry: &FilingEntry,
    at: SystemTime,
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

/// Whether `record` is a partial filing awaiting house-level filings for `document` (as the
/// index's `awaiting` tree has it: filings, not amendments).
pub(super) fn awaits(record: &LogRecord, document: &str) -> bool {
    record.kind() == RecordKind::Filing
        && !record.next_filing_party.is_empty()
        && record.master_documents.iter().any(|d| d == document)
}

/// The record of a new filing, with the MRN issued from the sequence it will have.
pub(super) fn new_record(filing: NewFiling, seq: Seq, country: &str) -> LogRecord {
    let received = time::OffsetDateTime::from(filing.received_at);
    let mrn = Mrn::issue(received.year(), country, seq);
    LogRecord {
        kind: RecordKind::Filing as i32,
        mrn: mrn.into(),
        filer: filing.filer.into(),
        lrn: filing.lrn.into(),
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
        due: filing.due.map(Timestamp::from),
        ..LogRecord::default()
    }
}
