//! The filing projection: what a filing's entry (its status, history, notices, and what an
//! amendment may not change) becomes with each record. Pure functions of the entry and the
//! record, so the live index, an index rebuilt from the log and the decisions of a batch
//! (`store::decide`) all see the same thing.

use crate::pb::store::{FilingEntry, LogRecord, RecordKind};
use crate::pb::{FilingState, FilingStatus, Notification, Receipt, Transition};

/// The receipt a filing record stands for; a pure function of the record, so an index rebuilt
/// from the log answers exactly what the live one did.
pub fn receipt_of(record: &LogRecord) -> Receipt {
    Receipt {
        mrn: record.mrn.clone(),
        lrn: record.lrn.clone(),
        filer: record.filer.clone(),
        sequence: record.sequence,
        version: record.version,
        digest: hex::encode(&record.digest),
        chain_hash: hex::encode(&record.hash),
        received_at: record.received_at,
        warnings: record.warnings.clone(),
    }
}

fn transition(record: &LogRecord, event: &str, version: u32, detail: String) -> Transition {
    Transition {
        event: event.to_owned(),
        version,
        at: record.received_at,
        sequence: record.sequence,
        detail,
    }
}

fn mode_of(record: &LogRecord) -> i32 {
    record.manifest.as_ref().map_or(0, |m| m.transport_mode)
}

/// Whether `entry` already took the record at `sequence` (for a link, the link of `document`):
/// what makes applying a record twice, after a crash between its effects, a no-op.
pub(super) fn holds(entry: &FilingEntry, sequence: u64, document: Option<&str>) -> bool {
    entry.status.as_ref().is_some_and(|status| {
        status.history.iter().any(|t| {
            t.sequence == sequence
                && document
                    .is_none_or(|d| t.event == "linked" && t.detail.starts_with(&format!("{d}: ")))
        })
    })
}

/// A partial filing's entry after a house-level filing for one of its master documents.
pub(super) fn link_house_filing(
    mut entry: FilingEntry,
    house: &LogRecord,
    document: &str,
) -> FilingEntry {
    let status = entry.status.get_or_insert_with(FilingStatus::default);
    let before = status.missing_links.len();
    status.missing_links.retain(|d| d != document);
    let version = status.version;
    status.history.push(transition(
        house,
        "linked",
        version,
        format!("{document}: house filing {}", house.mrn),
    ));
    if before > 0 && status.missing_links.is_empty() && status.state() == FilingState::Incomplete {
        status.state = FilingState::Registered as i32;
        status
            .history
            .push(transition(house, "completed", version, String::new()));
    }
    entry
}

/// The entry a new filing starts.
pub(super) fn new_entry(record: &LogRecord) -> FilingEntry {
    let partial = !record.next_filing_party.is_empty();
    let mut missing_links = if partial {
        record.master_documents.clone()
    } else {
        Vec::new()
    };
    missing_links.sort();
    FilingEntry {
        status: Some(FilingStatus {
            missing_links,
            mrn: record.mrn.clone(),
            lrn: record.lrn.clone(),
            filer: record.filer.clone(),
            state: if partial {
                FilingState::Incomplete
            } else {
                FilingState::Registered
            } as i32,
            version: record.version,
            receipt: Some(receipt_of(record)),
            history: vec![transition(
                record,
                "registered",
                record.version,
                hex::encode(&record.digest),
            )],
            ..FilingStatus::default()
        }),
        transport_mode: mode_of(record),
        master_documents: record.master_documents.clone(),
        next_filing_party: record.next_filing_party.clone(),
        routing: record.manifest.as_ref().map(super::route_facts),
    }
}

/// The entry after a lifecycle record: a pure function of the entry and the record.
pub(super) fn evolve(mut entry: FilingEntry, record: &LogRecord) -> FilingEntry {
    let status = entry.status.get_or_insert_with(FilingStatus::default);
    match record.kind() {
        RecordKind::Amendment => {
            status.version = record.version;
            status.receipt = Some(receipt_of(record));
            status.history.push(transition(
                record,
                "amended",
                record.version,
                hex::encode(&record.digest),
            ));
            entry.transport_mode = mode_of(record);
            entry.master_documents = record.master_documents.clone();
            entry.routing = record.manifest.as_ref().map(super::route_facts);
        }
        RecordKind::Notice => notice_received(status, record),
        RecordKind::ReferralAnswer => referral_answered(status, record),
        RecordKind::Invalidation => {
            status.state = FilingState::Invalidated as i32;
            let version = status.version;
            status.history.push(transition(
                record,
                "invalidated",
                version,
                record.reason.clone(),
            ));
        }
        RecordKind::Arrival => {
            status.state = FilingState::Arrived as i32;
            let version = status.version;
            status
                .history
                .push(transition(record, "arrived", version, String::new()));
        }
        RecordKind::Filing
        | RecordKind::Received
        | RecordKind::ReceivedRefused
        | RecordKind::Unspecified => {}
    }
    entry
}

/// A peer's notice joins the filing's notices and history.
fn notice_received(status: &mut FilingStatus, record: &LogRecord) {
    let notice = record.notice.clone().unwrap_or_default();
    let version = status.version;
    status.history.push(transition(
        record,
        "notice",
        version,
        format!(
            "{} from {}: {}",
            notice.kind().as_str_name(),
            record.origin,
            notice.notice_id
        ),
    ));
    status.notices.push(Notification {
        sequence: record.sequence,
        mrn: record.mrn.clone(),
        lrn: status.lrn.clone(),
        administration: record.origin.clone(),
        notice_id: notice.notice_id,
        kind: notice.kind,
        text: notice.text,
        deadline: notice.deadline,
        received_at: record.received_at,
        answer: String::new(),
    });
}

/// The carrier's answer is kept with the referral it answers.
fn referral_answered(status: &mut FilingStatus, record: &LogRecord) {
    let notice_id = record
        .notice
        .as_ref()
        .map(|n| n.notice_id.clone())
        .unwrap_or_default();
    if let Some(notification) = status
        .notices
        .iter_mut()
        .find(|n| n.administration == record.origin && n.notice_id == notice_id)
    {
        notification.answer = record.reason.clone();
    }
    let version = status.version;
    status.history.push(transition(
        record,
        "referral answered",
        version,
        format!("{} to {}", notice_id, record.origin),
    ));
}
