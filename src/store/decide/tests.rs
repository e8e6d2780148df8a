//! The decisions over an in-memory state view: no index, no log.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::ids::{Eori, Lrn, Mrn, Seq};
use crate::pb::store::FilingEntry;
use crate::pb::{Manifest, TransportMode};
use crate::store::projection::{evolve, new_entry};
use crate::store::{Change, ChangeRefusal, Changed, IndexError, NewFiling, Received, Registration};

use super::{Batch, Decision, Rules, StateView};

/// The state before a batch, as plain maps.
#[derive(Default)]
struct Memory {
    lrns: HashMap<(Eori, Lrn), Mrn>,
    entries: HashMap<Mrn, FilingEntry>,
}

impl StateView for Memory {
    fn mrn_for(&self, filer: &Eori, lrn: &Lrn) -> Result<Option<Mrn>, IndexError> {
        Ok(self.lrns.get(&(filer.clone(), lrn.clone())).cloned())
    }
    fn entry(&self, mrn: &Mrn) -> Result<Option<FilingEntry>, IndexError> {
        Ok(self.entries.get(mrn).cloned())
    }
    fn document(&self, _: &Eori, _: &str) -> Result<Option<(Mrn, SystemTime)>, IndexError> {
        Ok(None)
    }
    fn awaiting(&self, _: &str) -> Result<Option<(Mrn, String)>, IndexError> {
        Ok(None)
    }
    fn received(&self, _: &str, _: u64) -> Result<Option<Received>, IndexError> {
        Ok(None)
    }
    fn notice(&self, _: &str, _: &str) -> Result<Option<u64>, IndexError> {
        Ok(None)
    }
}

fn rules() -> Rules {
    Rules {
        country: "DE".into(),
        document_window: Duration::from_secs(3600),
        immutable: crate::store::Immutable::default(),
        timers: crate::store::TimerSettings::default(),
    }
}

fn filing(lrn: &str, digest: u8, documents: &[&str]) -> NewFiling {
    NewFiling {
        filer: Eori::parse("DE123456789012").expect("valid EORI"),
        lrn: Lrn::parse(lrn).expect("valid LRN"),
        manifest: Box::new(Manifest {
            transport_mode: TransportMode::Sea as i32,
            ..Manifest::default()
        }),
        manifest_encoding: None,
        digest: [digest; 32],
        version_1_digest: None,
        original: Vec::new(),
        original_type: "application/x-protobuf",
        submitted_bytes: 0,
        warnings: Vec::new(),
        received_at: SystemTime::now(),
        traceparent: String::new(),
        master_documents: documents.iter().map(|d| d.to_string()).collect(),
        house_references: Vec::new(),
        next_filing_party: None,
        due: None,
    }
}

#[test]
fn one_lrn_twice_in_a_batch_is_one_record_and_a_conflict_when_it_differs() {
    let (memory, rules) = (Memory::default(), rules());
    let mut batch = Batch::new(&memory, &rules, Seq(7));
    assert!(matches!(
        batch.register(filing("L1", 1, &[])),
        Decision::New(0)
    ));
    assert!(matches!(
        batch.register(filing("L1", 1, &[])),
        Decision::Repeat(0)
    ));
    let Decision::Now(Ok(Registration::Conflict { mrn })) = batch.register(filing("L1", 2, &[]))
    else {
        panic!("different content under one LRN is a conflict");
    };
    let decided = batch.finish();
    assert_eq!(decided.records.len(), 1);
    assert_eq!(
        decided.records[0].sequence, 7,
        "the batch starts at the log's next sequence"
    );
    assert_eq!(mrn.as_str(), decided.records[0].mrn);
}

#[test]
fn a_master_document_is_taken_within_the_batch() {
    let (memory, rules) = (Memory::default(), rules());
    let mut batch = Batch::new(&memory, &rules, Seq(1));
    // A master document is each filer's own: another filer's of the same number, first in the
    // batch, takes nothing from this filer, and is never named to it.
    let other = NewFiling {
        filer: Eori::parse("FR123456789012").expect("valid EORI"),
        ..filing("F1", 1, &["MBL1"])
    };
    assert!(matches!(batch.register(other), Decision::New(0)));
    assert!(matches!(
        batch.register(filing("L1", 2, &["MBL1"])),
        Decision::New(1)
    ));
    let own = batch.records[1].mrn.clone();
    for (lrn, documents) in [("L2", &["MBL1"][..]), ("L3", &["MBL2", "MBL1"][..])] {
        match batch.register(filing(lrn, 3, documents)) {
            Decision::Now(Ok(Registration::DuplicateDocument { document, mrn })) => {
                assert_eq!(document, "MBL1");
                assert_eq!(mrn.as_str(), own, "the filer's own filing is named");
            }
            other => panic!("{lrn}: expected the document taken, got {other:?}"),
        }
    }
}

/// The state after one filing (LRN "L1") was registered, with its record and MRN.
fn registered(rules: &Rules) -> (Memory, crate::pb::store::LogRecord, Mrn) {
    let empty = Memory::default();
    let mut first = Batch::new(&empty, rules, Seq(1));
    assert!(matches!(
        first.register(filing("L1", 1, &[])),
        Decision::New(0)
    ));
    let record = first.finish().records.remove(0);
    let mrn = Mrn::parse(&record.mrn).expect("issued");
    let mut memory = Memory::default();
    memory.entries.insert(mrn.clone(), new_entry(&record));
    (memory, record, mrn)
}

#[test]
fn changes_see_each_other_and_answer_with_the_status_after_them() {
    let rules = rules();
    // A registered filing, as the state before the batch holds it.
    let (memory, record, mrn) = registered(&rules);

    let mut batch = Batch::new(&memory, &rules, Seq(2));
    let arrive = batch.change(
        &mrn,
        Change::Arrive {
            at: SystemTime::now(),
            facts: None,
        },
        String::new(),
    );
    let amend = batch.change(
        &mrn,
        Change::Amend(Box::new(filing("L1", 9, &[]))),
        String::new(),
    );
    assert!(matches!(
        amend,
        Decision::Now(Ok(Changed::Refused(ChangeRefusal::Arrived)))
    ));
    let decided = batch.finish();
    let changed = decided.changed();
    let Ok(Changed::Applied(status)) = decided.change(arrive, &changed) else {
        panic!("the arrival is applied");
    };
    let expected = evolve(new_entry(&record), &decided.records[0]);
    assert_eq!(Some(status), expected.status);
}

#[test]
fn an_amendment_repeated_in_its_batch_is_answered_after_sealing() {
    let rules = rules();
    let (memory, _, mrn) = registered(&rules);

    let mut batch = Batch::new(&memory, &rules, Seq(2));
    let amend = || Change::Amend(Box::new(filing("L1", 2, &[])));
    let first = batch.change(&mrn, amend(), String::new());
    let again = batch.change(&mrn, amend(), String::new());
    assert!(matches!(first, Decision::New(0)));
    assert!(matches!(again, Decision::Repeat(0)));
    let mut decided = batch.finish();
    // What the log does when it appends: the record gets its place in the hash chain.
    decided.records[0].hash = vec![7; 32];
    let changed = decided.changed();
    let Ok(Changed::Unchanged(status)) = decided.change(again, &changed) else {
        panic!("the repeat changes nothing");
    };
    let receipt = status.receipt.expect("a receipt");
    assert_eq!(receipt.chain_hash, hex::encode([7u8; 32]));
    assert_eq!(receipt.version, 2);
}

#[test]
fn a_filing_sets_its_timers_and_a_timer_fires_once() {
    let rules = rules();
    let (mut memory, record, mrn) = registered(&rules);
    let automatic = record
        .timers
        .iter()
        .find(|t| t.kind() == crate::pb::store::TimerKind::AutomaticInvalidation)
        .cloned()
        .expect("every filing is invalidated if its goods never arrive");
    assert_eq!(record.timers.len(), 1, "not partial: no incomplete timers");

    let mut batch = Batch::new(&memory, &rules, Seq(2));
    let fired = batch.change(&mrn, Change::Fire(automatic.clone()), String::new());
    assert!(matches!(fired, Decision::New(0)));
    let decided = batch.finish();
    let invalidation = &decided.records[0];
    assert_eq!(
        invalidation.kind(),
        crate::pb::store::RecordKind::Invalidation
    );
    assert!(invalidation.reason.starts_with("automatic"));
    let entry = evolve(new_entry(&record), invalidation);
    assert!(
        entry.timers.is_empty(),
        "an invalidated filing has no timer left"
    );
    memory.entries.insert(mrn.clone(), entry);

    // Fired again (a crash before the index forgot it): nothing more is written.
    let mut batch = Batch::new(&memory, &rules, Seq(3));
    let again = batch.change(&mrn, Change::Fire(automatic), String::new());
    assert!(matches!(again, Decision::Now(Ok(Changed::Unchanged(_)))));
    assert!(batch.finish().records.is_empty());
}

#[test]
fn a_partial_filing_with_a_deadline_is_reminded_before_it_and_told_at_it() {
    let rules = Rules {
        timers: crate::store::TimerSettings {
            automatic_invalidation: None,
            incomplete_reminder: Duration::from_secs(7200),
        },
        ..rules()
    };
    let due = SystemTime::now() + Duration::from_secs(86_400);
    let partial = NewFiling {
        next_filing_party: Some("NL123456789".into()),
        due: Some(due),
        ..filing("P1", 1, &["MBL-1"])
    };
    let memory = Memory::default();
    let mut batch = Batch::new(&memory, &rules, Seq(1));
    assert!(matches!(batch.register(partial), Decision::New(0)));
    let record = batch.finish().records.remove(0);
    let kinds: Vec<_> = record
        .timers
        .iter()
        .map(|t| (t.kind(), t.due.map(|d| d.seconds)))
        .collect();
    let at = |t: SystemTime| Some(prost_types::Timestamp::from(t).seconds);
    assert_eq!(
        kinds,
        [
            (
                crate::pb::store::TimerKind::IncompleteReminder,
                at(due - Duration::from_secs(7200))
            ),
            (crate::pb::store::TimerKind::IncompleteDeadline, at(due)),
        ]
    );
}
