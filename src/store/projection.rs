//! The filing projection: what a filing's entry (its status, history, notices, and what an
//! amendment may not change) becomes with each record. Pure functions of the entry and the
//! record, so the live index, an index rebuilt from the log and the decisions of a batch
//! (`store::decide`) all see the same thing.

use crate::pb::store::{FilingEntry, LogRecord, RecordKind, TimerKind};
use crate::pb::{
    FilingState, FilingStatus, NoticeKind, Notification, Receipt, RiskState, Transition,
};

use super::risk;

/// The receipt a filing record stands for; a pure function of the record, so an index rebuilt
/// from the log answers exactly what the live one did.
pub fn receipt_of(record: &LogRecord) -> Receipt {
    Receipt {
        mrn: record.mrn.clone(),
        lrn: record.lrn.clone(),
        filer: record.filer.clone(),
        sequence: record.sequence,
        version: record.version,
        digest: lower_hex(&record.digest),
        chain_hash: lower_hex(&record.hash),
        received_at: record.received_at,
        warnings: record.warnings.clone(),
    }
}

/// Bytes as lowercase hex (what `hex::encode` gives, without its iterator of chars: four of
/// these per filing showed in profiles). Written into a buffer of the final size, pair by
/// pair, with no capacity check per character.
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = vec![0; bytes.len() * 2];
    for (pair, &byte) in text.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    String::from_utf8(text).unwrap_or_default()
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
    entry.links.push(crate::pb::store::Link {
        document: document.to_owned(),
        mrn: house.mrn.clone(),
    });
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
    let receipt = receipt_of(record);
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
            history: vec![transition(
                record,
                "registered",
                record.version,
                receipt.digest.clone(),
            )],
            receipt: Some(receipt),
            ..FilingStatus::default()
        }),
        transport_mode: mode_of(record),
        master_documents: record.master_documents.clone(),
        next_filing_party: record.next_filing_party.clone(),
        routing: record.manifest.as_deref().map(super::route_facts),
        targets: record
            .manifest
            .as_deref()
            .map(risk::targets_of)
            .unwrap_or_default(),
        due: record.due,
        timers: record.timers.clone(),
        links: record.links.clone(),
    }
}

/// The entry after a lifecycle record: a pure function of the entry and the record.
pub(super) fn evolve(mut entry: FilingEntry, record: &LogRecord) -> FilingEntry {
    let status = entry.status.get_or_insert_with(FilingStatus::default);
    match record.kind() {
        RecordKind::Amendment => {
            status.version = record.version;
            let receipt = receipt_of(record);
            status.history.push(transition(
                record,
                "amended",
                record.version,
                receipt.digest.clone(),
            ));
            status.receipt = Some(receipt);
            entry.transport_mode = mode_of(record);
            entry.master_documents = record.master_documents.clone();
            entry.routing = record.manifest.as_deref().map(super::route_facts);
            if let Some(manifest) = &record.manifest {
                entry.targets = risk::targets_of(manifest);
            }
        }
        RecordKind::Notice => {
            notice_received(status, record);
            entry.timers.extend(record.timers.iter().cloned());
        }
        RecordKind::ReferralAnswer => referral_answered(status, record),
        RecordKind::Invalidation => {
            status.state = FilingState::Invalidated as i32;
            let version = status.version;
            let event = if record.timer.is_some() {
                "invalidated automatically"
            } else {
                "invalidated"
            };
            status
                .history
                .push(transition(record, event, version, record.reason.clone()));
            entry.timers.clear();
        }
        RecordKind::Arrival => {
            status.state = FilingState::Arrived as i32;
            let version = status.version;
            let detail = record.arrival.as_ref().map_or_else(String::new, |facts| {
                [facts.office.as_str(), facts.means_of_transport.as_str()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            status
                .history
                .push(transition(record, "arrived", version, detail));
            entry.timers.clear();
        }
        RecordKind::TimerFired => {
            timer_fired(status, record);
            if let Some(fired) = &record.timer {
                entry.timers.retain(|t| t != fired);
            }
        }
        RecordKind::Filing
        | RecordKind::Received
        | RecordKind::ReceivedRefused
        | RecordKind::Unspecified => {}
    }
    entry
}

/// What a timer that fired changed: overdue requests, or a reminder in the history.
fn timer_fired(status: &mut FilingStatus, record: &LogRecord) {
    let timer = record.timer.clone().unwrap_or_default();
    let version = status.version;
    let (event, detail) = match timer.kind() {
        TimerKind::ReferralDeadline => {
            let mut overdue = Vec::new();
            if let Some(notice) = referral_mut(status, &timer.administration, &timer.notice_id) {
                for request in &mut notice.requests {
                    if request.state() == RiskState::ReferralOpen {
                        request.state = RiskState::ReferralOverdue as i32;
                        overdue.push(
                            request
                                .request
                                .as_ref()
                                .map(|r| r.reference.clone())
                                .unwrap_or_default(),
                        );
                    }
                }
            }
            risk::assess(status);
            (
                "referral overdue",
                format!(
                    "{} from {}: requests {}",
                    timer.notice_id,
                    timer.administration,
                    overdue.join(", ")
                ),
            )
        }
        TimerKind::IncompleteReminder => ("incomplete reminder", status.missing_links.join(", ")),
        TimerKind::IncompleteDeadline => ("incomplete overdue", status.missing_links.join(", ")),
        TimerKind::AutomaticInvalidation | TimerKind::Unspecified => ("timer", String::new()),
    };
    status
        .history
        .push(transition(record, event, version, detail));
}

/// Whether `notice` is the referral `notice_id` from `administration`.
fn is_the_referral(notice: &Notification, administration: &str, notice_id: &str) -> bool {
    notice.notice_id == notice_id
        && notice.administration == administration
        && risk::is_referral(notice.kind())
}

/// The referral `notice_id` from `administration` among the filing's notices.
pub(super) fn referral<'a>(
    status: &'a FilingStatus,
    administration: &str,
    notice_id: &str,
) -> Option<&'a Notification> {
    status
        .notices
        .iter()
        .find(|n| is_the_referral(n, administration, notice_id))
}

/// [`referral`], to change it.
pub(super) fn referral_mut<'a>(
    status: &'a mut FilingStatus,
    administration: &str,
    notice_id: &str,
) -> Option<&'a mut Notification> {
    status
        .notices
        .iter_mut()
        .find(|n| is_the_referral(n, administration, notice_id))
}

/// The notification a record pushes to its own filer's feed, if any: an administration's
/// notice, or the gateway's own word on a timer, an arrival or an invalidation. (A linked
/// filing's amendment is pushed to the other filers by the index, which can look them up.)
pub(super) fn pushed(record: &LogRecord, after: &FilingEntry) -> Option<Notification> {
    let status = after.status.as_ref()?;
    let own = |kind: NoticeKind| Notification {
        sequence: record.sequence,
        mrn: record.mrn.clone(),
        lrn: status.lrn.clone(),
        kind: kind as i32,
        received_at: record.received_at,
        ..Notification::default()
    };
    match record.kind() {
        // By sequence, not the last: replayed after a crash, the entry may hold later notices.
        RecordKind::Notice => status
            .notices
            .iter()
            .rev()
            .find(|n| n.sequence == record.sequence)
            .cloned(),
        RecordKind::Arrival => Some(Notification {
            arrival: record.arrival.clone(),
            ..own(NoticeKind::ArrivalRegistered)
        }),
        RecordKind::Invalidation => Some(Notification {
            detail: record.reason.clone(),
            ..own(NoticeKind::Invalidated)
        }),
        RecordKind::TimerFired => {
            let timer = record.timer.as_ref()?;
            match timer.kind() {
                TimerKind::ReferralDeadline => {
                    let referral = referral(status, &timer.administration, &timer.notice_id)?;
                    Some(Notification {
                        administration: timer.administration.clone(),
                        notice_id: timer.notice_id.clone(),
                        deadline: timer.due,
                        targets: referral.targets.clone(),
                        requests: referral
                            .requests
                            .iter()
                            .filter(|r| r.state() == RiskState::ReferralOverdue)
                            .cloned()
                            .collect(),
                        ..own(NoticeKind::ReferralOverdue)
                    })
                }
                TimerKind::IncompleteReminder | TimerKind::IncompleteDeadline => {
                    let kind = if timer.kind() == TimerKind::IncompleteReminder {
                        NoticeKind::IncompleteReminder
                    } else {
                        NoticeKind::IncompleteOverdue
                    };
                    Some(Notification {
                        deadline: after.due,
                        missing_links: status.missing_links.clone(),
                        next_filing_party: after.next_filing_party.clone(),
                        ..own(kind)
                    })
                }
                TimerKind::AutomaticInvalidation | TimerKind::Unspecified => None,
            }
        }
        _ => None,
    }
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
        requests: risk::requests_of(notice.kind(), &notice.requests, &notice.targets),
        notice_id: notice.notice_id,
        kind: notice.kind,
        text: notice.text,
        deadline: notice.deadline,
        received_at: record.received_at,
        targets: notice.targets,
        control: notice.control,
        ..Notification::default()
    });
    risk::assess(status);
}

/// The carrier's answer is kept with the referral it answers.
fn referral_answered(status: &mut FilingStatus, record: &LogRecord) {
    let notice_id = record
        .notice
        .as_ref()
        .map(|n| n.notice_id.clone())
        .unwrap_or_default();
    let answer = record.referral_answer.clone().unwrap_or_default();
    let mut answered = String::new();
    if let Some(notification) = referral_mut(status, &record.origin, &notice_id) {
        if !record.reason.is_empty() {
            notification.answer = record.reason.clone();
        }
        if let Some(request) = request_mut(notification, &answer.request_reference) {
            answered = request
                .request
                .as_ref()
                .map(|r| r.reference.clone())
                .unwrap_or_default();
            request.state = RiskState::ReferralAnswered as i32;
            request.answer = Some(answer);
        }
    }
    risk::assess(status);
    let version = status.version;
    status.history.push(transition(
        record,
        "referral answered",
        version,
        format!("{notice_id} request {answered} to {}", record.origin),
    ));
}

/// The request `reference` of a referral; with no reference, its only request.
pub(super) fn request_mut<'a>(
    notification: &'a mut Notification,
    reference: &str,
) -> Option<&'a mut crate::pb::RequestStatus> {
    if reference.is_empty() {
        return match notification.requests.as_mut_slice() {
            [only] => Some(only),
            _ => None,
        };
    }
    notification
        .requests
        .iter_mut()
        .find(|r| r.request.as_ref().is_some_and(|q| q.reference == reference))
}

#[cfg(test)]
mod tests {
    #[test]
    fn lower_hex_is_hex_encode() {
        let every_byte: Vec<u8> = (0..=255).collect();
        assert_eq!(super::lower_hex(&every_byte), hex::encode(&every_byte));
        assert_eq!(super::lower_hex(&[]), "");
    }
}
