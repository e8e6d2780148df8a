//! The single writer: the group-commit loop between the store's callers and the log.
//!
//! It runs on its own OS thread (a sync blocks). Each turn it gathers every command waiting (up
//! to the batch limit) and, while carriers' filings are still on their way to it, waits briefly
//! for them too (`store::arrivals`), so a burst shares one sync; large filings beyond a batch's
//! share wait, in order, and lead the next turn ([`LARGE_BYTES_PER_BATCH`]). Then it decides the
//! batch (`store::decide`, over the index), hands the records to the log backend, which seals,
//! writes and syncs them, answers, and then applies them to the index and publishes the new
//! durable (and indexed) head. Deciding here, in the one place that assigns sequences, is what
//! makes two concurrent submissions of one LRN produce exactly one record; the next batch is
//! decided only once the index has this one, and a read that must see an acknowledged write
//! waits until the index has it (`Store::caught_up`), so answering first costs no consistency.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::ids::Mrn;
use crate::pb::store::LogRecord;

use super::arrivals::GATHER_LIMIT;
use super::backend::LogBackend;
use super::decide::{Batch, Decided, Decision, Rules};
use super::index::Index;
use super::record::EncodedManifests;
use super::{
    Change, Changed, Delivery, LARGE_FILING, NewFiling, Noticed, Registration, Stats, StoreError,
};
use crate::pb::envelope::ReceivedManifest;

/// Span links a group commit records, at most (a batch can hold a thousand records).
const MAX_COMMIT_LINKS: usize = 128;

/// One batch takes large filings ([`LARGE_FILING`], amendments too) up to this many bytes (at
/// least one, however large), and none if the batch before took some and this one has other
/// work: the others wait, in order, for the next batches. Every filing of a batch waits for the
/// whole batch to be sealed, written and synced; without this, one carrier flooding 390 KB
/// filings made every commit take ~9 ms, and another carrier's small filing, arriving during one,
/// waited for two (its p50 beside the flood was ~17 ms, ~3 ms now; `benches/hostile.rs`). Now a
/// small filing waits for at most one batch with large filings in it, and the flood pays with
/// syncs of its own.
const LARGE_BYTES_PER_BATCH: usize = 256 * 1024;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub(super) enum Command {
    Register {
        filing: Box<NewFiling>,
        reply: Reply<Registration>,
    },
    Change {
        mrn: Mrn,
        change: Box<Change>,
        traceparent: String,
        reply: Reply<Changed>,
    },
    Receive {
        envelope: Box<crate::pb::EncodedEnvelope>,
        manifest: ReceivedManifest,
        at: std::time::SystemTime,
        reply: Reply<Delivery>,
    },
    Notify {
        peer: String,
        notice: Box<crate::pb::Notice>,
        at: std::time::SystemTime,
        reply: Reply<Noticed>,
    },
    /// Takes into the index what other replicas appended to a shared log (sent periodically,
    /// and by reads that must see every acknowledged write).
    Follow,
    /// Answered once every command sent before it has been answered.
    Close { reply: oneshot::Sender<()> },
}

/// What a command asks, apart from whom to answer: a shared log may need it decided again.
#[derive(Clone)]
enum Request {
    Register(Box<NewFiling>),
    Change(Mrn, Box<Change>, String),
    Receive(
        Box<crate::pb::EncodedEnvelope>,
        ReceivedManifest,
        std::time::SystemTime,
    ),
    Notify(String, Box<crate::pb::Notice>, std::time::SystemTime),
}

/// Whom to answer, and with what kind of answer.
enum Replier {
    Register(Reply<Registration>),
    Change(Reply<Changed>),
    Receive(Reply<Delivery>),
    Notify(Reply<Noticed>),
}

impl Replier {
    /// Answers with a failure: nothing of the request was written.
    fn fail(self, error: StoreError) {
        match self {
            Replier::Register(reply) => drop(reply.send(Err(error))),
            Replier::Change(reply) => drop(reply.send(Err(error))),
            Replier::Receive(reply) => drop(reply.send(Err(error))),
            Replier::Notify(reply) => drop(reply.send(Err(error))),
        }
    }
}

/// How long a batch is decided again while other replicas keep appending first, before its
/// callers are told to retry.
const MAX_CONTENTION: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) struct Writer {
    pub log: Arc<dyn LogBackend>,
    pub index: Index,
    pub rules: Rules,
    pub max_batch: usize,
    pub stats: Arc<Stats>,
    /// The last durable and indexed sequence, for the log's readers (forwarders, feeds).
    pub durable: tokio::sync::watch::Sender<u64>,
    /// Filings on their way: a batch waits for them before it is synced.
    pub arrivals: Arc<super::arrivals::Arrivals>,
}

/// A command of the batch, decided (answered once the batch is durable).
enum Pending {
    Register(Decision<Registration>),
    Change(Box<Decision<Changed>>),
    Receive(Decision<Delivery>),
    Notify(Decision<Noticed>),
}

/// Why the writer cannot append now.
#[derive(Debug, Clone)]
struct WriteError {
    reason: String,
    disk_full: bool,
}

impl WriteError {
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

/// Why a batch failed, and what it left to repair, if anything.
struct Failed {
    error: WriteError,
    damage: Option<Damage>,
    /// Another replica appended to the shared log first: follow it and decide again.
    behind: bool,
}

impl Failed {
    fn new(error: WriteError, damage: Option<Damage>) -> Failed {
        Failed {
            error,
            damage,
            behind: false,
        }
    }
}

/// A batch that failed, and what it left to repair before anything else is written.
struct Broken {
    error: WriteError,
    damage: Damage,
}

enum Damage {
    /// The log's append failed and what it left could not be cut off yet
    /// ([`LogBackend::repair`] retries).
    Log,
    /// Durable records the index has not taken yet (nothing after them is written until it has).
    Unindexed(Vec<LogRecord>),
}

impl Command {
    /// The bytes of the filing this command writes, as submitted (0: not a filing).
    fn filing_bytes(&self) -> usize {
        match self {
            Command::Register { filing, .. } => filing.submitted_bytes,
            Command::Change { change, .. } => match change.as_ref() {
                Change::Amend(filing) => filing.submitted_bytes,
                _ => 0,
            },
            _ => 0,
        }
    }
}

/// The large filings a batch may take, and has taken (see [`LARGE_BYTES_PER_BATCH`]).
struct LargeShare {
    budget: usize,
    taken: usize,
    /// A large filing had to wait: the later ones wait behind it, in order.
    full: bool,
}

impl LargeShare {
    /// The share of a batch of `commands`, given whether the batch before took large filings.
    fn of<'a>(
        commands: impl IntoIterator<Item = &'a Command>,
        last_took_large: bool,
    ) -> LargeShare {
        let mut commands = commands.into_iter();
        let other_work = commands.any(|c| {
            !matches!(c, Command::Follow | Command::Close { .. }) && c.filing_bytes() < LARGE_FILING
        });
        let budget = if last_took_large && other_work {
            0
        } else {
            LARGE_BYTES_PER_BATCH
        };
        LargeShare {
            budget,
            taken: 0,
            full: false,
        }
    }

    /// Whether a filing of `bytes` goes into this batch (counting it if so) or waits.
    fn takes(&mut self, bytes: usize) -> bool {
        if bytes < LARGE_FILING {
            return true;
        }
        let first = self.taken == 0 && self.budget > 0;
        if self.full || !first && self.taken + bytes > self.budget {
            self.full = true;
            return false;
        }
        self.taken += bytes;
        true
    }

    fn took_large(&self) -> bool {
        self.taken > 0
    }
}

impl Writer {
    pub fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        // Large filings beyond a batch's share, oldest first: they lead the next batch.
        let mut held: Vec<Command> = Vec::new();
        let mut last_took_large = false;
        let mut broken: Option<Broken> = None;
        self.arrivals.set_writer();
        loop {
            if held.is_empty() {
                match commands.blocking_recv() {
                    Some(first) => batch.push(first),
                    None => return,
                }
            }
            // New commands up to the batch limit besides the held ones (counted against it, a
            // backlog of held filings would let one new command in per turn).
            self.arrivals
                .gather(&mut commands, &mut batch, self.max_batch, GATHER_LIMIT);
            let earlier = std::mem::take(&mut held);
            let mut share = LargeShare::of(earlier.iter().chain(&batch), last_took_large);
            let mut closing = Vec::new();
            let mut follow = false;
            let mut work = Vec::with_capacity(earlier.len() + batch.len());
            for command in earlier.into_iter().chain(batch.drain(..)) {
                match command {
                    Command::Follow => follow = true,
                    // A close is answered after everything sent before it, so after what waits.
                    close @ Command::Close { .. } if !held.is_empty() => held.push(close),
                    Command::Close { reply } => closing.push(reply),
                    other if share.takes(other.filing_bytes()) => work.push(other),
                    other => held.push(other),
                }
            }
            last_took_large = share.took_large();
            // A failed batch left something to repair first; until it is, nothing is written
            // and every caller hears why (the disk may have filled: it is tried every batch).
            if let Some(damage) = broken.take() {
                broken = self.repair(damage);
            }
            match &broken {
                Some(damage) => {
                    self.stats.writable.store(false, Ordering::Relaxed);
                    let repliers = work.into_iter().filter_map(split).map(|(_, r)| r);
                    refuse(repliers.collect(), &damage.error);
                }
                // Batches follow a shared log themselves; a follow alone is for when idle.
                None if work.is_empty() && follow => broken = self.follow_alone(),
                None if work.is_empty() => {}
                None => broken = self.commit(work).err().flatten(),
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
    fn repair(&mut self, broken: Broken) -> Option<Broken> {
        let repaired = match &broken.damage {
            Damage::Log => self.log.repair().map_err(|e| WriteError {
                reason: e.to_string(),
                disk_full: e.is_disk_full(),
            }),
            Damage::Unindexed(records) => self
                .index
                .apply(records)
                .map(|()| self.publish_durable(records))
                .map_err(|e| index_failure(&e)),
        };
        match repaired {
            Ok(()) => {
                tracing::info!(was = %broken.error, "the log accepts appends again");
                None
            }
            Err(error) => Some(Broken { error, ..broken }),
        }
    }

    /// Tells the log's readers how far it is durable (and indexed).
    fn publish_durable(&self, records: &[LogRecord]) {
        let Some(last) = records.last().map(|r| r.sequence) else {
            return;
        };
        self.stats.durable_seq.store(last, Ordering::Release);
        self.durable.send_if_modified(|known| {
            let moved = *known != last;
            *known = last;
            moved
        });
    }

    /// Decides, appends and answers one batch. If the batch could not be made durable, every
    /// caller of it has been told so, and what is left to repair (if anything) is returned.
    fn commit(&mut self, commands: Vec<Command>) -> Result<(), Option<Broken>> {
        let (requests, repliers): (Vec<Request>, Vec<Replier>) =
            commands.into_iter().filter_map(split).unzip();
        self.commit_requests(requests, repliers)
    }

    fn commit_requests(
        &mut self,
        mut requests: Vec<Request>,
        repliers: Vec<Replier>,
    ) -> Result<(), Option<Broken>> {
        let shared = self.log.is_shared();
        let started = Instant::now();
        let mut decisions = 0u32;
        let (pending, decided, durable) = loop {
            decisions += 1;
            // A shared log: first take what other replicas appended, so that this batch is
            // decided over all of it (the log refuses it otherwise). Without that, nothing is
            // decided: an answer that needs no record could be from a stale index.
            if shared && let Err(Failed { error, damage, .. }) = self.follow() {
                self.stats.writable.store(false, Ordering::Relaxed);
                refuse(repliers, &error);
                return Err(damage.map(|damage| Broken { error, damage }));
            }
            let mut batch = Batch::new(&self.index, &self.rules, self.log.next_seq());
            // Decided from copies where the log may refuse the batch and it is decided again.
            let pending: Vec<Pending> = if shared {
                requests
                    .iter()
                    .cloned()
                    .map(|r| decide(&mut batch, r))
                    .collect()
            } else {
                std::mem::take(&mut requests)
                    .into_iter()
                    .map(|r| decide(&mut batch, r))
                    .collect()
            };
            let mut decided = batch.finish();
            if let Some(limit) = self.log.max_append_bytes() {
                let bytes = sealed_bytes(&decided.records, &decided.manifests);
                if bytes > limit {
                    return self.commit_in_halves(requests, repliers, bytes, limit);
                }
            }
            let durable = self.make_durable(&mut decided.records, &decided.manifests);
            match durable {
                Err(Failed { behind: true, .. }) if started.elapsed() < MAX_CONTENTION => {
                    // Lost the race for the stream's next sequence: a random pause, growing with
                    // the losses, lets this replica's next try land between the other's batches.
                    std::thread::sleep(contention_pause(decisions));
                }
                durable => break (pending, decided, durable),
            }
        };
        if let (Ok(()), Some(last)) = (&durable, decided.records.last()) {
            self.stats
                .durable_seq
                .store(last.sequence, Ordering::Release);
        }
        // Before anyone is answered, so that what they see next agrees.
        self.stats
            .writable
            .store(durable.is_ok(), Ordering::Relaxed);
        // Answers are built only now: a caller hears "registered" only once it is durable.
        answer(
            pending,
            repliers,
            &decided,
            durable.as_ref().map(|_| ()).map_err(|f| &f.error),
        );
        // Where this thread shares a core with the async workers (the benchmark pins the
        // gateway to one), the worker woken to send these answers runs before the index update
        // below instead of after it: at concurrency 1 that took ~25 us off the ack p50.
        std::thread::yield_now();
        // Indexed after answering, off the acknowledgement's path: this thread decides nothing
        // before the index has the batch, and reads that must see an acknowledged write wait
        // for it (`Store::caught_up`, against the durable sequence set above).
        let indexed = durable.and_then(|()| self.index_batch(&decided.records));
        match indexed {
            Ok(()) => self.publish_durable(&decided.records),
            Err(_) => self.stats.writable.store(false, Ordering::Relaxed),
        }
        self.log.after_answers();
        indexed
            .map_err(|Failed { error, damage, .. }| damage.map(|damage| Broken { error, damage }))
    }

    /// A batch whose records exceed what the log takes in one append (a shared log's message):
    /// each half is a batch of its own, so that every batch is still appended whole or not at
    /// all. A single request that alone exceeds it is refused.
    fn commit_in_halves(
        &mut self,
        mut requests: Vec<Request>,
        mut repliers: Vec<Replier>,
        bytes: u64,
        limit: u64,
    ) -> Result<(), Option<Broken>> {
        if requests.len() <= 1 {
            for replier in repliers {
                replier.fail(StoreError::TooLarge { bytes, limit });
            }
            return Ok(());
        }
        let half = requests.len() / 2;
        let (later, later_repliers) = (requests.split_off(half), repliers.split_off(half));
        if let Err(Some(broken)) = self.commit_requests(requests, repliers) {
            refuse(later_repliers, &broken.error);
            return Err(Some(broken));
        }
        self.commit_requests(later, later_repliers)
    }

    /// Takes into the index what other replicas appended to a shared log, and publishes it.
    fn follow(&mut self) -> Result<(), Failed> {
        let records = self.log.follow().map_err(|e| {
            Failed::new(
                WriteError {
                    reason: e.to_string(),
                    disk_full: false,
                },
                None,
            )
        })?;
        if records.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.index.apply(&records) {
            let error = index_failure(&e);
            tracing::error!(%error, "records of the shared log could not be indexed");
            return Err(Failed::new(error, Some(Damage::Unindexed(records))));
        }
        self.publish_durable(&records);
        Ok(())
    }

    /// A follow with no batch to decide: says whether the shared log is reachable.
    fn follow_alone(&mut self) -> Option<Broken> {
        match self.follow() {
            Ok(()) => {
                self.stats.writable.store(true, Ordering::Relaxed);
                None
            }
            Err(Failed { error, damage, .. }) => {
                self.stats.writable.store(false, Ordering::Relaxed);
                tracing::warn!(%error, "cannot follow the shared log");
                damage.map(|damage| Broken { error, damage })
            }
        }
    }

    /// Appends the batch's records durably (sealing them).
    fn make_durable(
        &mut self,
        records: &mut [LogRecord],
        manifests: &EncodedManifests,
    ) -> Result<(), Failed> {
        if records.is_empty() {
            return Ok(());
        }
        // Before anything is appended: the index must be able to take what the log does.
        if let Err(e) = self.index.reserve(records) {
            let error = index_failure(&e);
            tracing::error!(%error, records = records.len(), "no room for the batch in the index");
            return Err(Failed::new(error, None));
        }
        // One span per group commit, linked to the traces of the records it made durable.
        let span = tracing::info_span!(
            "log.group_commit",
            records = crate::telemetry::number(records.len()),
            first = crate::telemetry::number(records[0].sequence),
        );
        for record in records.iter().take(MAX_COMMIT_LINKS) {
            crate::telemetry::link(&span, &record.traceparent);
        }
        let _entered = span.enter();
        let started = Instant::now();
        match self.log.append(records, manifests) {
            Ok(appended) => self.stats.record_batch(
                records.len() as u64,
                appended.syncs,
                appended.sync_time,
                started.elapsed(),
            ),
            Err(super::LogError::Behind) => {
                return Err(Failed {
                    error: WriteError {
                        reason: "other replicas kept appending first; retry".into(),
                        disk_full: false,
                    },
                    damage: None,
                    behind: true,
                });
            }
            Err(e) => {
                // Nothing of the batch was acknowledged nor published; the backend cuts it off
                // (or, if it cannot yet, the next batches retry until it has).
                let error = WriteError {
                    reason: e.to_string(),
                    disk_full: e.is_disk_full(),
                };
                tracing::error!(%error, records = records.len(), "a batch could not be made durable");
                let damage = self.log.repair().err().map(|_| Damage::Log);
                return Err(Failed::new(error, damage));
            }
        }
        Ok(())
    }

    /// Takes a durable batch into the index (uniqueness, status), before the next is decided.
    fn index_batch(&self, records: &[LogRecord]) -> Result<(), Failed> {
        self.index.apply(records).map_err(|e| {
            let error = index_failure(&e);
            tracing::error!(%error, "a durable batch could not be indexed");
            Failed::new(error, Some(Damage::Unindexed(records.to_vec())))
        })
    }
}

fn index_failure(error: &super::IndexError) -> WriteError {
    WriteError {
        reason: format!("index: {error}"),
        disk_full: error.is_disk_full(),
    }
}

/// A random pause of up to `losses` (at most 8) milliseconds.
fn contention_pause(losses: u32) -> std::time::Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // The clock's low bits, mixed (xorshift): random enough to break a tie between replicas.
    let mut x = u64::from(nanos) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    let ceiling = u64::from(losses.min(8)) * 1_000_000;
    std::time::Duration::from_nanos(x % ceiling.max(1))
}

/// Splits a command into what it asks and whom to answer (`None` for the writer's own).
fn split(command: Command) -> Option<(Request, Replier)> {
    Some(match command {
        Command::Register { filing, reply } => {
            (Request::Register(filing), Replier::Register(reply))
        }
        Command::Change {
            mrn,
            change,
            traceparent,
            reply,
        } => (
            Request::Change(mrn, change, traceparent),
            Replier::Change(reply),
        ),
        Command::Receive {
            envelope,
            manifest,
            at,
            reply,
        } => (
            Request::Receive(envelope, manifest, at),
            Replier::Receive(reply),
        ),
        Command::Notify {
            peer,
            notice,
            at,
            reply,
        } => (Request::Notify(peer, notice, at), Replier::Notify(reply)),
        Command::Follow | Command::Close { .. } => return None,
    })
}

/// Decides one request into the batch.
fn decide(batch: &mut Batch<'_, Index>, request: Request) -> Pending {
    match request {
        Request::Register(filing) => Pending::Register(batch.register(*filing)),
        Request::Change(mrn, change, traceparent) => {
            Pending::Change(Box::new(batch.change(&mrn, *change, traceparent)))
        }
        Request::Receive(envelope, manifest, at) => {
            Pending::Receive(batch.receive(*envelope, manifest, at))
        }
        Request::Notify(peer, notice, at) => Pending::Notify(batch.notify(peer, *notice, at)),
    }
}

/// Answers each command of a batch: from its decision if the batch is durable, else with the
/// failure (but for the decisions that needed no record).
fn answer(
    pending: Vec<Pending>,
    repliers: Vec<Replier>,
    decided: &Decided,
    durable: Result<(), &WriteError>,
) {
    fn settle<T>(
        durable: Result<(), &WriteError>,
        decision: Decision<T>,
        answer: impl FnOnce(Decision<T>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match (durable, decision) {
            (_, Decision::Now(answer)) => answer,
            (Err(error), _) => Err(error.to_store_error()),
            (Ok(()), decision) => answer(decision),
        }
    }
    let changed = decided.changed();
    for (pending, replier) in pending.into_iter().zip(repliers) {
        match (pending, replier) {
            (Pending::Register(d), Replier::Register(reply)) => {
                let _ = reply.send(settle(durable, d, |d| decided.registration(d)));
            }
            (Pending::Change(d), Replier::Change(reply)) => {
                let _ = reply.send(settle(durable, *d, |d| decided.change(d, &changed)));
            }
            (Pending::Receive(d), Replier::Receive(reply)) => {
                let _ = reply.send(settle(durable, d, |d| decided.delivery(d)));
            }
            (Pending::Notify(d), Replier::Notify(reply)) => {
                let _ = reply.send(settle(durable, d, |d| decided.noticed(d)));
            }
            _ => unreachable!("a request is decided into a decision of its own kind"),
        }
    }
}

/// Answers every caller with the writer's failure: nothing of theirs was written.
fn refuse(repliers: Vec<Replier>, error: &WriteError) {
    for replier in repliers {
        replier.fail(error.to_store_error());
    }
}

/// What records take once sealed (their hashes) and framed.
fn sealed_bytes(records: &[LogRecord], manifests: &EncodedManifests) -> u64 {
    /// The two hash fields sealing adds, their tags, and the format field, at most.
    const SEAL_BYTES: u64 = 96;
    records
        .iter()
        .map(|r| manifests.framed_len(r) + SEAL_BYTES)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close() -> Command {
        Command::Close {
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn a_batch_takes_small_filings_always_and_large_ones_up_to_its_share() {
        let mut share = LargeShare::of(&[], false);
        assert!(share.takes(0), "not a filing");
        assert!(share.takes(LARGE_FILING - 1), "small");
        assert!(
            share.takes(LARGE_BYTES_PER_BATCH * 4),
            "the first large one, however large"
        );
        assert!(!share.takes(LARGE_FILING), "then none");
        assert!(share.takes(LARGE_FILING - 1), "small ones still");
        assert!(share.took_large());

        let mut share = LargeShare::of(&[], false);
        assert!(share.takes(LARGE_BYTES_PER_BATCH / 2 + 1));
        assert!(!share.takes(LARGE_BYTES_PER_BATCH / 2), "over the share");
        assert!(
            !share.takes(LARGE_FILING),
            "within it, but after one that waits: large filings keep their order"
        );

        let mut share = LargeShare::of(&[], false);
        for _ in 0..LARGE_BYTES_PER_BATCH / LARGE_FILING {
            assert!(share.takes(LARGE_FILING));
        }
        assert!(!share.takes(LARGE_FILING), "the share is full");
    }

    #[test]
    fn after_a_batch_with_large_filings_the_next_takes_none_if_it_has_other_work() {
        // Only a close (no other work): large filings go on being written.
        let mut share = LargeShare::of(&[close(), Command::Follow], true);
        assert!(share.takes(LARGE_FILING));
        // Other work: small filings go first, in a batch of their own.
        let (reply, _) = oneshot::channel();
        let change = Command::Change {
            mrn: Mrn::parse("26GB00000000000010").expect("MRN"),
            change: Box::new(Change::Invalidate {
                reason: "withdrawn".into(),
                at: std::time::SystemTime::now(),
            }),
            traceparent: String::new(),
            reply,
        };
        let mut share = LargeShare::of(&[change], true);
        assert!(!share.takes(LARGE_FILING));
        assert!(share.takes(LARGE_FILING - 1));
        assert!(!share.took_large());
    }
}
