//! Durable storage: the log (the truth), the index derived from it, and the group-commit
//! writer between them.
//!
//! A batch goes: the writer (`writer`, the commit loop) gathers commands, the decisions
//! (`decide`, pure, over the index as a [`StateView`]) turn them into records, the log backend
//! (`backend`, [`LogBackend`]; the embedded segment log of `log` is the one implementation)
//! seals and makes them durable, the callers are answered, and the index takes them (`index`:
//! per-filing maps on disk of `table` and `positions`, and sled trees, its mark moved by
//! `checkpoint`; `projection`, what a filing's entry becomes with each record) before the next
//! batch is decided.
//!
//! `<data>/log/` holds the segments, `<data>/index/` the tables, the sled database and the mark. [`Store::open`] recovers
//! the log's tail, replays into the index whatever it has not seen, and starts the writer.
//! [`Store::register`] answers only after the filing's record is durable (`fdatasync`).

mod arrivals;
mod backend;
mod checkpoint;
mod decide;
mod disk;
mod facts;
mod index;
mod jetstream;
mod log;
mod positions;
mod projection;
pub mod record;
pub mod risk;
pub mod scheduler;
#[cfg(feature = "testing")]
mod sim;
mod stats;
mod table;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::ids::{Eori, Lrn, Mrn, Seq};
use crate::pb::store::LogRecord;
use crate::pb::{FilingStatus, Manifest, Receipt, Violation};

pub use self::arrivals::Arrival;
pub use self::backend::{Appended, EmbeddedLog, LogBackend, LogCursor};
pub use self::decide::StateView;
pub use self::disk::{Disk, OsDisk};
pub use self::facts::{route_facts, route_facts_encoded};
pub use self::index::{Entry as IndexEntry, Index, IndexError, Received};
pub use self::jetstream::{Held, JetStreamLog, JetStreamSettings, LEASE_TTL, Leases};
pub use self::log::{LogError, Recovery, TornTail, list_segments};
pub use self::projection::receipt_of;
#[cfg(feature = "testing")]
pub use self::sim::{PowerLoss, SimDisk};
pub use self::stats::Stats;
pub use self::table::{Reads, WouldWait};

/// Index reads that gave up on an async worker and run on blocking threads at once, at most:
/// enough to keep a disk's queue busy, not a thread per caller in a burst of cold reads.
const WAITING_READS: usize = 64;

/// Commands waiting for the writer before `register` callers wait for room (backpressure).
const QUEUE_DEPTH: usize = 8192;
/// How often the writer looks for what other replicas appended to a shared log.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);
/// How long a read waits for the index to reach the log's head (a shared log's: other replicas'
/// records too).
const READ_YOUR_WRITES_BOUND: Duration = Duration::from_secs(3);

/// The maps the writer fills for one batch (built for it, or, the tables' vacancies, cleared
/// after it): keyed with foldhash, a fraction of SipHash's cost on the short keys they hold
/// (LRNs, MRNs, document numbers, sequences). Its `RandomState` is seeded at random, and a
/// batch bounds what callers can put in any of them (the vacancies hold at most 8192).
type BatchMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A filing at least this large as submitted (protobuf or XML, encoded bytes) is a large one:
/// it is validated on the validation pool's threads (`filing::pool`), not on the calling task,
/// and a group commit takes large ones only within a share (`store::writer`).
pub const LARGE_FILING: usize = 32 * 1024;

/// A filing that passed validation, ready to be registered.
#[derive(Debug, Clone)]
pub struct NewFiling {
    pub filer: Eori,
    pub lrn: Lrn,
    pub manifest: Box<Manifest>,
    /// The manifest's canonical encoding (the validator's), sealed into the record as it is;
    /// `None`: encoded when sealed.
    pub manifest_encoding: Option<bytes::Bytes>,
    /// SHA-256 of the canonical manifest encoding.
    pub digest: [u8; 32],
    /// For a filing sent in version 1's form: the digest of that form, which is what a gateway
    /// before version 2 registered it under; a retry of such a filing matches either.
    pub version_1_digest: Option<[u8; 32]>,
    /// The bytes as submitted, and their media type.
    pub original: Vec<u8>,
    pub original_type: &'static str,
    /// How large the filing was as submitted (protobuf or XML): what it weighs in a group
    /// commit (see [`LARGE_FILING`]).
    pub submitted_bytes: usize,
    pub warnings: Vec<Violation>,
    pub received_at: SystemTime,
    pub traceparent: String,
    /// Master-level transport document numbers: a filer files each once per window.
    pub master_documents: Vec<String>,
    /// Master documents this house-level filing refers to (linking it to partial filings).
    pub house_references: Vec<String>,
    /// For a partial filing: who is expected to complete it.
    pub next_filing_party: Option<String>,
    /// When the filing is due (its mode's filing deadline), if the manifest says.
    pub due: Option<SystemTime>,
}

/// How a registration ended. Each is a normal business outcome, not an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// Newly registered and durable.
    Registered(Receipt),
    /// The same (filer, LRN) with the same content was registered before: its original receipt.
    Duplicate(Receipt),
    /// The (filer, LRN) is registered with different content, under this MRN.
    Conflict { mrn: Mrn },
    /// A master transport document of the filing was filed by the same filer, under this MRN,
    /// within the window.
    DuplicateDocument { document: String, mrn: Mrn },
    /// The filing refers to `document`, whose partial filing awaits a house-level filing from
    /// another party. Who filed it and whom it named are not the caller's business: neither is
    /// said.
    NotNextFilingParty { document: String },
    /// A partial filing for `document` is already awaiting completion (first wins, within the
    /// duplicate-document window), filed by someone else: which filing, and whose, is not said.
    PartialFilingExists { document: String },
}

/// A change to a registered filing.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new version (full replacement).
    Amend(Box<NewFiling>),
    Invalidate {
        reason: String,
        at: SystemTime,
    },
    Arrive {
        at: SystemTime,
        /// What the carrier declared of the arrival.
        facts: Option<crate::pb::ArrivalFacts>,
    },
    /// The carrier's answer to one request of a referral `administration` sent.
    AnswerReferral {
        administration: String,
        notice_id: String,
        answer: crate::pb::ReferralAnswer,
        /// The free text (kept as the notice's answer too, as before structured answers).
        text: String,
        at: SystemTime,
    },
    /// A timer of the filing came due: its record, if it still applies (else `Unchanged`).
    Fire(crate::pb::store::Timer),
}

/// When filings' timers fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerSettings {
    /// A filing whose goods have not arrived this long after it was filed is invalidated
    /// (none: never).
    pub automatic_invalidation: Option<Duration>,
    /// A partial filing still incomplete this long before its deadline is reminded of it.
    pub incomplete_reminder: Duration,
}

impl Default for TimerSettings {
    fn default() -> Self {
        TimerSettings {
            // UCC Art. 129: 200 days after lodging, if the goods have not arrived.
            automatic_invalidation: Some(Duration::from_secs(200 * 86_400)),
            incomplete_reminder: Duration::from_secs(2 * 3600),
        }
    }
}

/// Why a lifecycle change is refused: business outcomes with their own codes, not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRefusal {
    /// The filing was invalidated; it can no longer change.
    Invalidated,
    /// The goods arrived; the filing can no longer change.
    Arrived,
    /// An amendment changes what may not change.
    ImmutableField(&'static str),
    /// The filing has no referral with that id (from that administration).
    UnknownReferral,
    /// The referral was answered before, differently.
    AlreadyAnswered,
    /// An administration announced a control: no amendment, no invalidation.
    UnderControl,
}

impl ChangeRefusal {
    /// The stable violation type reported to the carrier.
    pub fn code(self) -> &'static str {
        match self {
            ChangeRefusal::Invalidated => "LIFECYCLE_INVALIDATED",
            ChangeRefusal::Arrived => "LIFECYCLE_ARRIVED",
            ChangeRefusal::ImmutableField(_) => "LIFECYCLE_IMMUTABLE_FIELD",
            ChangeRefusal::UnknownReferral => "REFERRAL_UNKNOWN",
            ChangeRefusal::AlreadyAnswered => "REFERRAL_ANSWERED",
            ChangeRefusal::UnderControl => "LIFECYCLE_UNDER_CONTROL",
        }
    }
}

/// How a lifecycle change ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Changed {
    /// Applied and durable; the status after it (with the new receipt for an amendment).
    Applied(FilingStatus),
    /// An amendment with the current version's content: nothing written.
    Unchanged(FilingStatus),
    NotFound,
    Refused(ChangeRefusal),
}

/// What became of an envelope a peer delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Stored (durable) at this sequence of the local log.
    Stored {
        local_sequence: u64,
        duplicate: bool,
    },
    /// Refused, durably: a redelivery is refused again, never taken as delivered.
    Refused {
        code: String,
        message: String,
        duplicate: bool,
    },
}

/// What became of a peer's risk notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Noticed {
    /// Stored (durable) at this sequence; `duplicate` when the notice id had been received.
    Stored { sequence: u64, duplicate: bool },
    /// No filing with that MRN here.
    NotFound,
    /// The notice does not fit the filing (a target that is not one of its items); nothing
    /// was stored.
    Refused { code: &'static str, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Nothing can be appended now (the batch was not made durable): a full disk, or an I/O
    /// error. The writer retries its repair with every later batch.
    #[error("the log cannot be written: {reason}")]
    Unwritable { reason: String, disk_full: bool },
    #[error("the index is inconsistent: {0}")]
    Inconsistent(String),
    /// A request whose records are larger than the log takes in one append (a shared log's
    /// message size, the NATS servers' `max_payload`); nothing was stored.
    #[error(
        "this request makes {bytes} bytes of records; the shared log takes at most {limit} at once"
    )]
    TooLarge { bytes: u64, limit: u64 },
    #[error("the store is closed")]
    Closed,
    /// A bug: an index read on a blocking thread panicked.
    #[error("an index read failed: {0}")]
    ReadFailed(String),
    #[error("cannot start the log writer: {0}")]
    Thread(std::io::Error),
    #[error("cannot make {path} private to the gateway's user: {source}")]
    Permissions {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is in use by another gateway process (or cannot be locked: {source})")]
    Locked {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Why a [`Reads::NeverWait`] lookup gave up, if it did.
    pub fn would_wait(&self) -> Option<WouldWait> {
        match self {
            StoreError::Index(e) => e.would_wait(),
            _ => None,
        }
    }
}

/// Settings of an open store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Country code for the MRNs issued.
    pub country: String,
    pub segment_bytes: u64,
    pub max_batch: usize,
    /// How long a master transport document stays reserved to its first filing.
    pub duplicate_document_window: Duration,
    /// What an amendment may not change (the LRN never changes: it names the filing).
    pub immutable: Immutable,
    /// When filings' timers fire.
    pub timers: TimerSettings,
    /// `fdatasync` each batch. Only benchmarks turn this off, to measure what the sync costs:
    /// without it an acknowledged filing can be lost (the `testing` feature only).
    #[cfg(feature = "testing")]
    pub sync: bool,
    /// Where the log's files live: [`OsDisk`], but for the tests that simulate power loss and
    /// full disks.
    pub disk: Arc<dyn Disk>,
    /// The log on a JetStream stream shared with other replicas, instead of the segment files.
    pub jetstream: Option<JetStreamSettings>,
}

/// The fields an amendment may not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Immutable {
    pub transport_mode: bool,
    pub master_documents: bool,
}

impl Default for Immutable {
    fn default() -> Self {
        Immutable {
            transport_mode: true,
            master_documents: true,
        }
    }
}

/// A cheap, clonable handle on the store.
#[derive(Clone, Debug)]
pub struct Store {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    commands: mpsc::Sender<writer::Command>,
    index: Index,
    log: Arc<dyn LogBackend>,
    /// Leases on duties one replica at a time does (a shared log's).
    leases: Option<Leases>,
    stats: Arc<Stats>,
    arrivals: Arc<arrivals::Arrivals>,
    /// The last durable sequence the index has, published by the writer after each batch
    /// (`stats.durable_seq` is the log's, ahead of it while a batch is being indexed).
    durable: tokio::sync::watch::Receiver<u64>,
    /// Whether filings get an automatic invalidation timer (the scheduler then reads the log).
    automatic_invalidation: bool,
    /// Held for the store's lifetime: one process per data directory.
    _lock: std::fs::File,
    /// Joined by `close`; the writer exits on its own if every handle is dropped.
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Turns of the index reads that gave up on an async worker (see [`Store::read_index`]).
    waiting_reads: tokio::sync::Semaphore,
}

impl Store {
    /// Opens the store in `data_dir`: recovers the log, brings the index up to date, starts the
    /// writer. Returns what recovery found.
    pub fn open(data_dir: &Path, options: StoreOptions) -> Result<(Store, Recovery), StoreError> {
        let lock = lock_data_dir(data_dir)?;
        let (log, mut recovery, leases): (Arc<dyn LogBackend>, _, _) = match &options.jetstream {
            None => {
                let (log, recovery) =
                    EmbeddedLog::open(options.disk, &data_dir.join("log"), options.segment_bytes)?;
                #[cfg(feature = "testing")]
                log.set_sync(options.sync);
                (Arc::new(log), recovery, None)
            }
            Some(settings) => {
                let replica = replica_name(data_dir);
                let log = JetStreamLog::open(settings, &replica)?;
                let recovery = Recovery {
                    last_seq: log.next_seq().0 - 1,
                    ..Recovery::default()
                };
                let leases = log.leases(&replica);
                (Arc::new(log), recovery, Some(leases))
            }
        };
        let index = open_index(data_dir)?;
        recovery.acknowledged_lost = catch_up(&index, &*log, recovery.last_seq)?;
        let rules = decide::Rules {
            country: options.country,
            document_window: options.duplicate_document_window,
            immutable: options.immutable,
            timers: options.timers,
        };
        let store = Store::start(
            lock,
            log,
            index,
            rules,
            options.max_batch,
            recovery.last_seq,
            leases,
        )?;
        store.start_following();
        Ok((store, recovery))
    }

    /// Starts the writer over a recovered log and an index that has caught up with it.
    fn start(
        lock: std::fs::File,
        log: Arc<dyn LogBackend>,
        index: Index,
        rules: decide::Rules,
        max_batch: usize,
        last_seq: u64,
        leases: Option<Leases>,
    ) -> Result<Store, StoreError> {
        let stats = Arc::new(Stats::default());
        stats.durable_seq.store(last_seq, Ordering::Release);
        let (commands, receiver) = mpsc::channel(QUEUE_DEPTH);
        let (durable_sender, durable) = tokio::sync::watch::channel(last_seq);
        let arrivals = Arc::new(arrivals::Arrivals::default());
        let automatic_invalidation = rules.timers.automatic_invalidation.is_some();
        let writer = writer::Writer {
            log: Arc::clone(&log),
            index: index.clone(),
            rules,
            max_batch,
            stats: Arc::clone(&stats),
            durable: durable_sender,
            arrivals: Arc::clone(&arrivals),
        };
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(StoreError::Thread)?;
        Ok(Store {
            shared: Arc::new(Shared {
                commands,
                index,
                log,
                leases,
                stats,
                arrivals,
                durable,
                automatic_invalidation,
                _lock: lock,
                thread: std::sync::Mutex::new(Some(thread)),
                waiting_reads: tokio::sync::Semaphore::new(WAITING_READS),
            }),
        })
    }

    /// For a shared log: a thread that asks the writer to follow it every [`FOLLOW_INTERVAL`]
    /// (a no-op round trip when no other replica appended); it ends with the writer.
    fn start_following(&self) {
        if !self.shared.log.is_shared() {
            return;
        }
        let commands = self.shared.commands.downgrade();
        let spawned = std::thread::Builder::new()
            .name("log-follower".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FOLLOW_INTERVAL);
                    let Some(commands) = commands.upgrade() else {
                        return;
                    };
                    // A full queue means a busy writer, and each batch follows the log anyway.
                    if let Err(mpsc::error::TrySendError::Closed(_)) =
                        commands.try_send(writer::Command::Follow)
                    {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start following the shared log; only batches will");
        }
    }

    /// Waits, boundedly, until the index has every record the log held when this was called:
    /// a read then sees every write acknowledged before it (the writer answers before it
    /// indexes), and with a shared log also what other replicas acknowledged (read your writes).
    pub async fn caught_up(&self) -> Result<(), StoreError> {
        let latest = if self.shared.log.is_shared() {
            let log = Arc::clone(&self.shared.log);
            tokio::task::spawn_blocking(move || log.latest())
                .await
                .map_err(|_| StoreError::Closed)??
        } else {
            self.shared.stats.durable_seq.load(Ordering::Acquire)
        };
        let mut indexed = self.shared.durable.clone();
        if *indexed.borrow() >= latest {
            return Ok(());
        }
        // A shared log's writer follows it; an index the embedded log's writer failed to update
        // is repaired when it next has a command.
        let _ = self.shared.commands.try_send(writer::Command::Follow);
        let reached =
            tokio::time::timeout(READ_YOUR_WRITES_BOUND, indexed.wait_for(|&d| d >= latest))
                .await
                .map(|waited| waited.is_ok());
        match reached {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Closed),
            Err(_) => Err(StoreError::Unwritable {
                reason: format!(
                    "the index is at record {} of the log's {latest}",
                    *self.shared.durable.borrow()
                ),
                disk_full: false,
            }),
        }
    }

    /// The leases of a shared log's replicas (`None` for the embedded log: one process).
    pub fn leases(&self) -> Option<&Leases> {
        self.shared.leases.as_ref()
    }

    /// Counts a filing as on its way to [`Store::register_arrived`] from now, so the writer's
    /// group commit waits for it rather than syncing without it (see `store::arrivals`).
    pub fn arrival(&self) -> Arrival {
        self.shared.arrivals.arrival()
    }

    /// Registers a filing; answers once it is durable (or was already registered).
    pub async fn register(&self, filing: NewFiling) -> Result<Registration, StoreError> {
        self.register_inner(filing, None).await
    }

    /// [`Store::register`] for a filing counted since it arrived.
    pub async fn register_arrived(
        &self,
        filing: NewFiling,
        arrival: Arrival,
    ) -> Result<Registration, StoreError> {
        self.register_inner(filing, Some(arrival)).await
    }

    async fn register_inner(
        &self,
        filing: NewFiling,
        arrival: Option<Arrival>,
    ) -> Result<Registration, StoreError> {
        let started = std::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        let into_queue = self.shared.commands.send(writer::Command::Register {
            filing: Box::new(filing),
            reply,
        });
        match arrival {
            Some(arrival) => arrival.hand_over(into_queue).await,
            None => into_queue.await,
        }
        .map_err(|_| StoreError::Closed)?;
        let answered = answer.await.map_err(|_| StoreError::Closed)?;
        self.shared
            .stats
            .append_latency
            .observe(started.elapsed().as_secs_f64());
        answered
    }

    /// Applies a lifecycle change to a filing; answers once it is durable. `traceparent` (W3C,
    /// may be empty) is kept with the record, so forwarding it continues the caller's trace.
    pub async fn change(
        &self,
        mrn: Mrn,
        change: Change,
        traceparent: String,
    ) -> Result<Changed, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .commands
            .send(writer::Command::Change {
                mrn,
                change: Box::new(change),
                traceparent,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The status of an MRN.
    pub fn status(&self, mrn: &Mrn) -> Result<Option<FilingStatus>, StoreError> {
        Ok(self.shared.index.status(mrn)?)
    }

    /// Takes an envelope a peer delivered: stores it, or refuses it, durably and once per
    /// (origin, origin sequence); a redelivery gets the first answer again.
    pub async fn receive(
        &self,
        envelope: impl Into<crate::pb::EncodedEnvelope>,
    ) -> Result<Delivery, StoreError> {
        self.queue_receive(envelope.into()).await?.await
    }

    /// Queues an envelope for the writer and returns how to await its answer. Envelopes queued
    /// one after another are decided, and stored, in that order: a receiver keeps a stream's
    /// order while many envelopes share one commit.
    pub async fn queue_receive(
        &self,
        mut envelope: crate::pb::EncodedEnvelope,
    ) -> Result<impl Future<Output = Result<Delivery, StoreError>> + use<>, StoreError> {
        // Checked here, on the receiving stream's task, not on the writer's thread; the parts
        // go once merged.
        let manifest = envelope.manifest();
        envelope.manifest_parts.clear();
        let (reply, answer) = oneshot::channel();
        self.shared
            .commands
            .send(writer::Command::Receive {
                envelope: Box::new(envelope),
                manifest,
                at: SystemTime::now(),
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(async move { answer.await.map_err(|_| StoreError::Closed)? })
    }

    /// Takes a risk notice from `peer` about one of this gateway's filings: stores it durably,
    /// once per (peer, notice id).
    pub async fn notify(
        &self,
        peer: &str,
        notice: crate::pb::Notice,
    ) -> Result<Noticed, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .commands
            .send(writer::Command::Notify {
                peer: peer.to_owned(),
                notice: Box::new(notice),
                at: SystemTime::now(),
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The timers due by `now`, earliest first, at most `limit`; and when the next one after
    /// them is due.
    pub fn due_timers(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<index::DueTimers, StoreError> {
        Ok(self.shared.index.due_timers(now, limit)?)
    }

    /// Whether filings get an automatic invalidation, which the scheduler reads from the log.
    pub fn invalidates_automatically(&self) -> bool {
        self.shared.automatic_invalidation
    }

    /// How far the scheduler fired the automatic invalidations it reads from the log.
    pub fn swept(&self) -> Result<u64, StoreError> {
        Ok(self.shared.index.swept()?)
    }

    /// Records that the scheduler fired the automatic invalidations up to `sequence`.
    pub fn set_swept(&self, sequence: u64) -> Result<(), StoreError> {
        Ok(self.shared.index.set_swept(sequence)?)
    }

    /// Forgets a timer that no longer applies (its filing changed since it was set).
    pub fn drop_timer(&self, mrn: &Mrn, timer: &crate::pb::store::Timer) -> Result<(), StoreError> {
        Ok(self.shared.index.drop_timer(mrn, timer)?)
    }

    /// Reads the index for a caller on an async worker, which serves every caller: without
    /// waiting first ([`Reads::NeverWait`]). A read that would wait, for the disk or for the
    /// index writer, is counted and done again on a blocking thread (at most
    /// [`WAITING_READS`] at once; more wait their turn without holding a worker).
    pub async fn read_index<T: Send + 'static>(
        &self,
        read: impl Fn(&Store, Reads) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let cause = match read(self, Reads::NeverWait) {
            Err(e) => e.would_wait().ok_or(e)?,
            done => return done,
        };
        self.shared.stats.read_waited(cause);
        let _turn = self
            .shared
            .waiting_reads
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || read(&store, Reads::MayWait))
            .await
            .map_err(|e| StoreError::ReadFailed(e.to_string()))?
    }

    /// Everything the index holds about an MRN (status, routing facts).
    pub fn entry(
        &self,
        mrn: &Mrn,
        reads: Reads,
    ) -> Result<Option<crate::pb::store::FilingEntry>, StoreError> {
        Ok(self.shared.index.entry(mrn, reads)?)
    }

    /// The MRN of a filer's LRN.
    pub fn mrn_for(
        &self,
        filer: &Eori,
        lrn: &Lrn,
        reads: Reads,
    ) -> Result<Option<Mrn>, StoreError> {
        Ok(self.shared.index.mrn_for(filer, lrn, reads)?)
    }

    /// [`Store::entry`], looked for again once the index caught up with a shared log when this
    /// replica does not have it (yet): another replica may have just stored it.
    pub async fn entry_caught_up(
        &self,
        mrn: &Mrn,
    ) -> Result<Option<crate::pb::store::FilingEntry>, StoreError> {
        let entry = |mrn: Mrn| move |store: &Store, reads| store.entry(&mrn, reads);
        if let Some(entry) = self.read_index(entry(mrn.clone())).await? {
            return Ok(Some(entry));
        }
        self.caught_up().await?;
        self.read_index(entry(mrn.clone())).await
    }

    /// The last durable sequence the index has, and its changes: what a reader of the log that
    /// also reads the index (routing facts, cursors) may read up to.
    pub fn durable(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.durable.clone()
    }

    /// A reader of the log from `from` on, for tailing it while it grows.
    pub fn reader(&self, from: Seq) -> Box<dyn LogCursor> {
        self.shared.log.cursor(from)
    }

    /// The filing in which a filer declared a master transport document.
    pub fn mrn_by_document(
        &self,
        filer: &Eori,
        document: &str,
        reads: Reads,
    ) -> Result<Option<Mrn>, StoreError> {
        Ok(self
            .shared
            .index
            .document(filer, document, reads)?
            .map(|(mrn, _)| mrn))
    }

    /// The status of a filer's LRN.
    pub fn status_by_lrn(
        &self,
        filer: &Eori,
        lrn: &Lrn,
    ) -> Result<Option<FilingStatus>, StoreError> {
        match self.mrn_for(filer, lrn, Reads::MayWait)? {
            Some(mrn) => self.status(&mrn),
            None => Ok(None),
        }
    }

    /// Reads every durable record from `from` on, verified.
    pub fn read_from<E: From<LogError>>(
        &self,
        from: Seq,
        mut visit: impl FnMut(LogRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        let last = self.shared.stats.durable_seq.load(Ordering::Acquire);
        let mut cursor = self.shared.log.cursor(from);
        loop {
            let records = cursor.read(last, READ_BATCH)?;
            if records.is_empty() {
                return Ok(());
            }
            records.into_iter().try_for_each(&mut visit)?;
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    pub fn index(&self) -> &Index {
        &self.shared.index
    }

    /// Answers every registration already queued, flushes the index and stops the writer.
    /// Consumes this handle; the index is released once every other clone is dropped too.
    pub async fn close(self) {
        let (reply, done) = oneshot::channel();
        if self
            .shared
            .commands
            .send(writer::Command::Close { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        let thread = self
            .shared
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// This replica's name among those sharing a log: its host and process.
fn replica_name(data_dir: &Path) -> String {
    let host = rustix::system::uname();
    let host = host.nodename().to_string_lossy();
    let dir = data_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{host}:{}:{dir}", std::process::id())
}

/// Opens the index in `data_dir`, then makes everything in the data directory private to the
/// gateway's user (0700 directories, 0600 files): sled creates its files under the umask, and
/// a data directory from before this rule is brought under it.
fn open_index(data_dir: &Path) -> Result<Index, StoreError> {
    let index = Index::open(&data_dir.join("index"))?;
    disk::make_private(data_dir).map_err(|source| StoreError::Permissions {
        path: data_dir.to_owned(),
        source,
    })?;
    Ok(index)
}

/// Takes the data directory's lock, so that no second process recovers (and cuts) a log that
/// another is writing. Released when the returned file is dropped.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = data_dir.join("LOCK");
    let locked = disk::create_private_dir(data_dir)
        .and_then(|()| {
            std::os::unix::fs::OpenOptionsExt::mode(
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true),
                disk::PRIVATE_FILE,
            )
            .open(&path)
        })
        .and_then(|file| match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "locked by another process",
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        });
    locked.map_err(|source| StoreError::Locked { path, source })
}

/// Replays into the index the records it has not seen. If the index is ahead of the log, the
/// log lost records that had been acknowledged: the index is rebuilt to match the log, and the
/// lost range is returned so that it is reported.
fn catch_up(
    index: &Index,
    log: &dyn LogBackend,
    log_end: u64,
) -> Result<Option<(u64, u64)>, StoreError> {
    let high_water = index.high_water()?.0;
    let format = index.format()?;
    if format != 0 && format != index::FORMAT {
        tracing::warn!(
            from = format,
            to = index::FORMAT,
            "the index was derived by another version; rebuilding it from the log"
        );
        index.clear()?;
        replay(index, log, Seq(1), log_end, &mut |_| {})?;
        index.set_format()?;
        return Ok((high_water > log_end).then_some((log_end + 1, high_water)));
    }
    index.set_format()?;
    if high_water > log_end {
        tracing::error!(
            from = log_end + 1,
            to = high_water,
            "the log lost acknowledged records (disk or tampering); rebuilding the index from the log"
        );
        index.clear()?;
        replay(index, log, Seq(1), log_end, &mut |_| {})?;
        index.set_format()?;
        return Ok(Some((log_end + 1, high_water)));
    }
    if high_water < log_end {
        replay(index, log, Seq(high_water + 1), log_end, &mut |_| {})?;
        tracing::info!(
            from = high_water + 1,
            to = log_end,
            "index caught up with the log"
        );
    }
    Ok(None)
}

/// Records read at once when replaying or reading the log through.
const READ_BATCH: usize = 4096;

/// Applies the log from `from` to `last` to the index, in batches; `applied` hears how many
/// records each batch held.
fn replay(
    index: &Index,
    log: &dyn LogBackend,
    from: Seq,
    last: u64,
    applied: &mut dyn FnMut(u64),
) -> Result<(), StoreError> {
    let mut cursor = log.cursor(from);
    loop {
        let batch = cursor.read(last, READ_BATCH)?;
        if batch.is_empty() {
            return Ok(());
        }
        index.apply(&batch)?;
        applied(batch.len() as u64);
    }
}

/// Reads every record of the log in `log_dir` from `from` on, verified (frames, CRCs, hashes,
/// the chain), without opening the store: for tools, while the gateway runs or not.
pub fn read_log<E: From<LogError>>(
    log_dir: &Path,
    from: Seq,
    visit: impl FnMut(LogRecord) -> Result<(), E>,
) -> Result<(), E> {
    log::read_from(log_dir, from, visit)
}

/// How far a rebuild of the index is.
#[derive(Debug, Clone, Copy)]
pub enum Replayed {
    /// Records the log holds, all to be replayed.
    Total(u64),
    /// Records just applied.
    Applied(u64),
}

/// Rebuilds the index of the store in `data_dir` from scratch (the store must not be open).
/// Returns the number of records replayed.
/// `progress` hears the number of records to replay, then how many each batch applied.
pub fn reindex(
    data_dir: &Path,
    segment_bytes: u64,
    progress: &mut dyn FnMut(Replayed),
) -> Result<u64, StoreError> {
    let lock = lock_data_dir(data_dir)?;
    let (log, recovery) =
        EmbeddedLog::open(Arc::new(OsDisk), &data_dir.join("log"), segment_bytes)?;
    rebuild_index(lock, data_dir, &log, recovery.last_seq, progress)
}

/// [`reindex`] for a replica of a shared log: its index rebuilt from the JetStream stream.
pub fn reindex_from_stream(
    data_dir: &Path,
    settings: &JetStreamSettings,
    progress: &mut dyn FnMut(Replayed),
) -> Result<u64, StoreError> {
    let lock = lock_data_dir(data_dir)?;
    let log = JetStreamLog::open_existing(settings, &replica_name(data_dir))?;
    let last = log.next_seq().0 - 1;
    rebuild_index(lock, data_dir, &log, last, progress)
}

fn rebuild_index(
    _lock: std::fs::File,
    data_dir: &Path,
    log: &dyn LogBackend,
    last: u64,
    progress: &mut dyn FnMut(Replayed),
) -> Result<u64, StoreError> {
    // First: a damaged map refuses to open, and must not refuse its own repair.
    index::remove_maps(&data_dir.join("index"))?;
    let index = open_index(data_dir)?;
    index.clear()?;
    progress(Replayed::Total(last));
    replay(&index, log, Seq(1), last, &mut |n| {
        progress(Replayed::Applied(n))
    })?;
    index.set_format()?;
    index.flush()?;
    Ok(last)
}

/// [`read_log`] for a JetStream stream: every record from `from` to the stream's end, verified
/// (frames, hashes, the chain in stream order).
pub fn read_stream<E: From<LogError>>(
    settings: &JetStreamSettings,
    from: Seq,
    mut visit: impl FnMut(LogRecord) -> Result<(), E>,
) -> Result<(), E> {
    let log = JetStreamLog::open_existing(settings, "aci-gateway log reader")?;
    let last = log.next_seq().0 - 1;
    let mut cursor = log.cursor(from);
    loop {
        let records = cursor.read(last, READ_BATCH)?;
        if records.is_empty() {
            return Ok(());
        }
        records.into_iter().try_for_each(&mut visit)?;
    }
}
