//! Risk state: what administrations' notices make of a filing and of each item they target.
//! Pure functions of the notices as recorded (in order) and the filing's current version, so
//! the live index, a rebuilt one and the decisions agree.
//!
//! Per target (a house document, a container, a receptacle, a goods item; or the whole filing):
//! a do-not-load holds until an assessment complete *of the same administration* on the same
//! target or on the whole filing lifts it; a control holds from its notice on (the filing may
//! then neither be amended nor invalidated); a referral's requests are open until answered, or
//! overdue once their deadline fired.

use std::collections::{BTreeMap, BTreeSet};

use crate::pb::{
    FilingStatus, ItemRisk, Manifest, NoticeKind, NoticeTarget, ReferralRequest, RequestStatus,
    RiskState, TargetType,
};

/// What a notice may target in a filing: its consignments' own documents, its containers, its
/// postal receptacles and its goods items (`<consignment>/<item>`), each once, in order. The
/// log's writer derives these for every filing it indexes (999 goods items in a large one): a
/// reference is built in one allocation, and the list sorted once (70 µs for 999 items, 150
/// with a `format!` each and a set of owned pairs).
pub fn targets_of(manifest: &Manifest) -> Vec<NoticeTarget> {
    let mut targets = Vec::new();
    let mut add = |kind: TargetType, reference: String| {
        if !reference.is_empty() {
            targets.push(NoticeTarget {
                r#type: kind as i32,
                reference,
            });
        }
    };
    for consignment in &manifest.consignments {
        if let Some(document) = &consignment.transport_document {
            add(TargetType::HouseDocument, document.number.clone());
        }
        for receptacle in &consignment.receptacle_ids {
            add(TargetType::Receptacle, receptacle.clone());
        }
        for item in &consignment.goods_items {
            add(
                TargetType::GoodsItem,
                goods_item_reference(consignment.sequence, item.sequence),
            );
        }
    }
    for equipment in &manifest.transport_equipment {
        add(TargetType::Container, equipment.container_number.clone());
    }
    targets.sort_unstable_by(|a, b| (a.r#type, &a.reference).cmp(&(b.r#type, &b.reference)));
    targets.dedup();
    targets
}

/// `<consignment>/<item>`, written into a string sized for it.
fn goods_item_reference(consignment: u32, item: u32) -> String {
    use std::fmt::Write;
    let mut reference = String::with_capacity(21);
    let _ = write!(reference, "{consignment}/{item}");
    reference
}

/// How a target is written in messages and on the command line: `container:MSKU1234565`.
pub fn target_label(target: &NoticeTarget) -> String {
    let kind = match target.r#type() {
        TargetType::HouseDocument => "house-document",
        TargetType::Container => "container",
        TargetType::Receptacle => "receptacle",
        TargetType::GoodsItem => "goods-item",
        TargetType::Unspecified => "unspecified",
    };
    format!("{kind}:{}", target.reference)
}

/// Whether `kind` is a referral (which the carrier answers).
pub fn is_referral(kind: NoticeKind) -> bool {
    matches!(
        kind,
        NoticeKind::ReferralInformation | NoticeKind::ReferralScreening
    )
}

/// Whether an administration may send `kind` (the others the gateway pushes itself).
pub fn is_administration_kind(kind: NoticeKind) -> bool {
    matches!(
        kind,
        NoticeKind::AssessmentComplete
            | NoticeKind::ReferralInformation
            | NoticeKind::ReferralScreening
            | NoticeKind::DoNotLoad
            | NoticeKind::Control
    )
}

/// A referral's requests as recorded: the notice's own, or for a notice that names none, one
/// request (reference "1") about the notice's targets.
pub fn requests_of(
    kind: NoticeKind,
    requests: &[ReferralRequest],
    targets: &[NoticeTarget],
) -> Vec<RequestStatus> {
    if !is_referral(kind) {
        return Vec::new();
    }
    let open = |request: ReferralRequest| RequestStatus {
        request: Some(request),
        state: RiskState::ReferralOpen as i32,
        answer: None,
    };
    if requests.is_empty() {
        return vec![open(ReferralRequest {
            reference: "1".into(),
            targets: targets.to_vec(),
            ..ReferralRequest::default()
        })];
    }
    requests.iter().cloned().map(open).collect()
}

/// Whether two answers to a request say the same (whichever way the request was named).
pub fn same_answer(a: &crate::pb::ReferralAnswer, b: &crate::pb::ReferralAnswer) -> bool {
    a.text == b.text
        && a.result == b.result
        && a.methods == b.methods
        && a.facility == b.facility
        && a.attachments == b.attachments
}

/// Recomputes the filing's per-item risk state and its control flag from its notices.
pub fn assess(status: &mut FilingStatus) {
    // Key: (target type, reference); the whole filing is (0, "").
    type Key = (i32, String);
    let key_of = |t: &NoticeTarget| (t.r#type, t.reference.clone());
    let whole: Key = (0, String::new());
    let mut items: BTreeMap<Key, (BTreeSet<i32>, Vec<u64>)> = BTreeMap::new();
    // (administration, target) of each do-not-load in force.
    let mut stopped: BTreeSet<(String, Key)> = BTreeSet::new();
    let mut completed: BTreeSet<Key> = BTreeSet::new();
    let mut controlled: BTreeSet<Key> = BTreeSet::new();
    let mut under_control = false;
    for notice in &status.notices {
        let kind = notice.kind();
        if !is_administration_kind(kind) {
            continue;
        }
        let keys: Vec<Key> = if notice.targets.is_empty() {
            vec![whole.clone()]
        } else {
            notice.targets.iter().map(key_of).collect()
        };
        for key in &keys {
            items
                .entry(key.clone())
                .or_default()
                .1
                .push(notice.sequence);
        }
        match kind {
            NoticeKind::DoNotLoad => {
                for key in keys {
                    completed.remove(&key);
                    stopped.insert((notice.administration.clone(), key));
                }
            }
            NoticeKind::AssessmentComplete => {
                let lifts_all = notice.targets.is_empty();
                stopped.retain(|(administration, key)| {
                    *administration != notice.administration || !(lifts_all || keys.contains(key))
                });
                completed.extend(keys);
            }
            NoticeKind::Control => {
                under_control = true;
                controlled.extend(keys);
            }
            _ => {
                for request in &notice.requests {
                    let targets = request
                        .request
                        .as_ref()
                        .map(|r| r.targets.as_slice())
                        .filter(|t| !t.is_empty())
                        .unwrap_or(&notice.targets);
                    let request_keys: Vec<Key> = if targets.is_empty() {
                        vec![whole.clone()]
                    } else {
                        targets.iter().map(key_of).collect()
                    };
                    for key in request_keys {
                        let item = items.entry(key).or_default();
                        item.0.insert(request.state);
                        if item.1.last() != Some(&notice.sequence) {
                            item.1.push(notice.sequence);
                        }
                    }
                }
            }
        }
    }
    for (_, key) in &stopped {
        items
            .entry(key.clone())
            .or_default()
            .0
            .insert(RiskState::DoNotLoad as i32);
    }
    for key in completed.iter().filter(|key| {
        !stopped
            .iter()
            .any(|(_, stopped)| stopped == *key || *stopped == whole)
    }) {
        items
            .entry(key.clone())
            .or_default()
            .0
            .insert(RiskState::AssessmentComplete as i32);
    }
    for key in &controlled {
        items
            .entry(key.clone())
            .or_default()
            .0
            .insert(RiskState::UnderControl as i32);
    }
    status.under_control = under_control;
    status.items = items
        .into_iter()
        .map(|((r#type, reference), (states, notices))| ItemRisk {
            target: (r#type != 0).then_some(NoticeTarget { r#type, reference }),
            states: states.into_iter().collect(),
            notices,
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::Notification;

    /// Every sample, and one with repeated references: each target once, ordered by kind and
    /// reference, goods items numbered `<consignment>/<item>` in decimal.
    #[test]
    fn a_filings_targets_are_each_once_in_order() {
        let mut manifests: Vec<Manifest> = crate::pb::sample_manifests()
            .into_iter()
            .map(|(_, manifest)| manifest)
            .collect();
        let mut repeated = manifests
            .iter()
            .find(|m| !m.transport_equipment.is_empty())
            .cloned()
            .expect("a sample with containers");
        let consignment = repeated.consignments[0].clone();
        repeated.consignments.push(consignment);
        repeated.consignments[0].sequence = 4_294_967_295;
        let equipment = repeated.transport_equipment[0].clone();
        repeated.transport_equipment.push(equipment);
        manifests.push(repeated);
        for manifest in &manifests {
            // What the targets are, said the plain way.
            let mut expected = BTreeSet::new();
            for c in &manifest.consignments {
                if let Some(d) = c
                    .transport_document
                    .as_ref()
                    .filter(|d| !d.number.is_empty())
                {
                    expected.insert((TargetType::HouseDocument as i32, d.number.clone()));
                }
                for r in c.receptacle_ids.iter().filter(|r| !r.is_empty()) {
                    expected.insert((TargetType::Receptacle as i32, r.clone()));
                }
                for item in &c.goods_items {
                    let reference = format!("{}/{}", c.sequence, item.sequence);
                    expected.insert((TargetType::GoodsItem as i32, reference));
                }
            }
            for e in manifest.transport_equipment.iter() {
                if !e.container_number.is_empty() {
                    expected.insert((TargetType::Container as i32, e.container_number.clone()));
                }
            }
            let targets: Vec<(i32, String)> = targets_of(manifest)
                .into_iter()
                .map(|t| (t.r#type, t.reference))
                .collect();
            assert_eq!(
                targets,
                expected.into_iter().collect::<Vec<_>>(),
                "{}",
                manifest.lrn
            );
        }
        let last = targets_of(manifests.last().expect("one"));
        assert!(last.iter().any(|t| t.reference.starts_with("4294967295/")));
    }

    fn container(reference: &str) -> NoticeTarget {
        NoticeTarget {
            r#type: TargetType::Container as i32,
            reference: reference.into(),
        }
    }

    fn notice(
        sequence: u64,
        from: &str,
        kind: NoticeKind,
        targets: Vec<NoticeTarget>,
    ) -> Notification {
        Notification {
            sequence,
            administration: from.into(),
            kind: kind as i32,
            requests: requests_of(kind, &[], &targets),
            targets,
            ..Notification::default()
        }
    }

    fn states(status: &FilingStatus, reference: &str) -> Vec<RiskState> {
        status
            .items
            .iter()
            .find(|i| i.target.as_ref().map_or("", |t| t.reference.as_str()) == reference)
            .map(|i| i.states().collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_do_not_load_stops_its_container_until_the_same_administration_completes_it() {
        let mut status = FilingStatus {
            notices: vec![notice(5, "NL", NoticeKind::DoNotLoad, vec![container("A")])],
            ..FilingStatus::default()
        };
        assess(&mut status);
        assert_eq!(states(&status, "A"), [RiskState::DoNotLoad]);
        assert!(states(&status, "B").is_empty());
        // Another administration's assessment complete does not lift it.
        status.notices.push(notice(
            6,
            "DE",
            NoticeKind::AssessmentComplete,
            vec![container("A")],
        ));
        assess(&mut status);
        assert!(states(&status, "A").contains(&RiskState::DoNotLoad));
        status.notices.push(notice(
            7,
            "NL",
            NoticeKind::AssessmentComplete,
            vec![container("A")],
        ));
        assess(&mut status);
        assert_eq!(states(&status, "A"), [RiskState::AssessmentComplete]);
        assert_eq!(status.items[0].notices, [5, 6, 7]);
    }

    #[test]
    fn a_control_marks_the_filing_and_its_targets() {
        let mut status = FilingStatus {
            notices: vec![notice(3, "NL", NoticeKind::Control, vec![container("A")])],
            ..FilingStatus::default()
        };
        assess(&mut status);
        assert!(status.under_control);
        assert_eq!(states(&status, "A"), [RiskState::UnderControl]);
    }

    #[test]
    fn a_referral_without_requests_is_one_open_request_on_the_whole_filing() {
        let mut status = FilingStatus {
            notices: vec![notice(3, "NL", NoticeKind::ReferralInformation, vec![])],
            ..FilingStatus::default()
        };
        assess(&mut status);
        assert_eq!(states(&status, ""), [RiskState::ReferralOpen]);
        assert_eq!(
            status.notices[0].requests[0]
                .request
                .as_ref()
                .map(|r| r.reference.as_str()),
            Some("1")
        );
    }
}
