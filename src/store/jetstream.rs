//! The replicated log: the records in a NATS JetStream stream that several gateway replicas of
//! one administration share, so that no single machine's loss loses an acknowledged filing.
//!
//! # Which JetStream primitive guarantees what
//!
//! - **One message per batch**, on the subject `<stream>.log`, its payload the batch's records
//!   framed exactly as in a segment file; headers `Aci-First` / `Aci-Last` say which record
//!   sequences it holds (the stream's own sequence counts batches, ours counts records).
//! - **Compare-and-set on the whole stream** (`Nats-Expected-Last-Sequence`): a batch is
//!   published expecting the stream sequence this replica last applied, so it is stored only if
//!   no other replica appended since. A batch is therefore always decided over an index that had
//!   seen every record before it, as with one writer: the same (filer, LRN) gets one MRN, a
//!   master document is taken once, lifecycle changes to one MRN are serialized and a timer
//!   fires once, across replicas. The loser hears [`LogError::Behind`]; the writer then
//!   [follows](LogBackend::follow) the stream (applies what it missed) and decides its batch
//!   again, so the other caller gets the same receipt or `ALREADY_EXISTS`.
//! - **The hash chain** is sealed by whichever replica wins the compare-and-set, over the
//!   record before it in stream order (which that replica has applied); every reader verifies
//!   it. A receipt's `chain_hash` is its record's hash, as with the embedded log.
//! - **Durable** means acknowledged: JetStream answers a publish once a quorum of the stream's
//!   replicas (R3: two) stored it, and the servers run with `sync_interval: always` (an fsync
//!   on every write on each replica; a server setting, see `deploy/nats/`). Anything short of
//!   that acknowledgement (no quorum, NATS unreachable, a timeout) is [`LogError::Unavailable`]
//!   and nobody is answered "registered". A timed-out publish may still have been stored: the
//!   next append then finds the stream moved, follows it and sees those records as any other.
//! - **Leases** (a key-value bucket `<stream>_LEASES` whose entries expire after [`LEASE_TTL`]):
//!   `create` takes a lease only if nobody holds it, `update` with the last revision renews it
//!   only if still held; forwarders hold one per peer, so one replica at a time serves a peer.
//! - **Deletes and purges are denied** on the stream: records are removed by nobody.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream::Stream};
use bytes::Bytes;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ids::Seq;
use crate::pb::store::LogRecord;

use super::backend::{Appended, LogBackend, LogCursor};
use super::log::LogError;
use super::record::{self, EncodedManifests};

/// How long a JetStream request (publish acknowledgement, read) may take before the log counts
/// as unavailable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a lease lasts without renewal: a dead replica's peers move on after this.
pub const LEASE_TTL: Duration = Duration::from_secs(6);
/// Bytes left for headers below the server's `max_payload` when a batch is cut into messages.
const HEADER_ROOM: usize = 512;

const FIRST: &str = "Aci-First";
const LAST: &str = "Aci-Last";

/// How to reach the stream (the `[store.jetstream]` config section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamSettings {
    pub servers: Vec<String>,
    pub stream: String,
    pub replicas: usize,
    /// NATS credentials file (JWT + nkey seed), for a secured cluster.
    pub creds: Option<PathBuf>,
    /// CA the NATS servers' certificates are checked against (turns TLS on).
    pub ca: Option<PathBuf>,
    /// Client certificate and key, for NATS servers that verify clients.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The shared log on a JetStream stream (see the module doc).
#[derive(Debug)]
pub struct JetStreamLog {
    inner: Arc<Inner>,
    head: watch::Sender<u64>,
}

#[derive(Debug)]
struct Inner {
    /// Its own runtime: the writer thread and the log's readers block on it, never on the
    /// gateway's workers.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    context: jetstream::Context,
    stream: Stream,
    subject: String,
    leases: jetstream::kv::Store,
    progress: jetstream::kv::Store,
    max_payload: usize,
    tail: Mutex<Tail>,
}

/// How far this replica has the stream: the last message applied, the next record's sequence
/// and the hash the next record chains to.
#[derive(Debug, Clone, Copy)]
struct Tail {
    stream_seq: u64,
    next_seq: u64,
    last_hash: [u8; 32],
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable {
        reason: format!("{what}: {error}"),
    }
}

impl Inner {
    /// Runs `future` on the log's runtime and waits for it (from any thread, async or not).
    fn block<F>(&self, future: F) -> Result<F::Output, LogError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = sender.send(future.await);
        });
        receiver
            .recv()
            .map_err(|_| unavailable("the NATS client", "stopped"))
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The message at stream sequence `seq`, or `None` past the end.
    fn message(&self, seq: u64) -> Result<Option<Message>, LogError> {
        let stream = self.stream.clone();
        let got = self.block(async move {
            tokio::time::timeout(REQUEST_TIMEOUT, stream.get_raw_message(seq)).await
        })?;
        use async_nats::jetstream::stream::RawMessageErrorKind;
        match got {
            Err(_) => Err(unavailable("reading the stream", "timed out")),
            Ok(Ok(message)) => Ok(Some(Message {
                sequence: message.sequence,
                first: header_seq(&message.headers, FIRST),
                last: header_seq(&message.headers, LAST),
                payload: message.payload,
            })),
            Ok(Err(e)) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Ok(Err(e)) => Err(unavailable("reading the stream", e)),
        }
    }

    /// The stream sequence of the message holding record `seq`, which must be durable.
    fn locate(&self, seq: u64) -> Result<u64, LogError> {
        let tail = *self.tail();
        if seq >= tail.next_seq {
            return Ok(tail.stream_seq + 1);
        }
        // Binary search over the messages' record ranges (contiguous: deletes are denied).
        let (mut low, mut high) = (1, tail.stream_seq);
        while low < high {
            let middle = low + (high - low) / 2;
            let message = self
                .message(middle)?
                .ok_or_else(|| corrupt(middle, "missing".into()))?;
            match message.last {
                Some(last) if last < seq => low = middle + 1,
                Some(_) => high = middle,
                None => return Err(corrupt(middle, "no Aci-Last header".into())),
            }
        }
        Ok(low)
    }
}

/// A message of the stream: a batch of framed records.
struct Message {
    sequence: u64,
    first: Option<u64>,
    last: Option<u64>,
    payload: Bytes,
}

fn header_seq(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)
        .and_then(|value| value.as_str().parse().ok())
}

fn corrupt(stream_seq: u64, reason: String) -> LogError {
    LogError::Stream { stream_seq, reason }
}

/// The records of a message, each checked (frame, CRC, own hash).
fn records_of(message: &Message) -> Result<Vec<LogRecord>, LogError> {
    let mut bytes = &message.payload[..];
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let (payload, len) = record::read_frame(bytes)
            .map_err(|e| corrupt(message.sequence, format!("frame: {e}")))?;
        let opened =
            record::open(payload).map_err(|e| corrupt(message.sequence, format!("record: {e}")))?;
        records.push(opened);
        bytes = &bytes[len..];
    }
    let (first, last) = (records.first(), records.last());
    if first.map(|r| r.sequence) != message.first || last.map(|r| r.sequence) != message.last {
        return Err(corrupt(
            message.sequence,
            "its records are not the ones its headers name".into(),
        ));
    }
    Ok(records)
}

/// Checks that `record` comes next after `tail` in the chain and moves the tail past it.
fn chain(tail: &mut Tail, record: &LogRecord, stream_seq: u64) -> Result<(), LogError> {
    if record.sequence != tail.next_seq {
        return Err(corrupt(
            stream_seq,
            format!(
                "expected record {}, found {}",
                tail.next_seq, record.sequence
            ),
        ));
    }
    if tail.next_seq > 1 && record.prev_hash != tail.last_hash {
        return Err(corrupt(
            stream_seq,
            format!("record {} breaks the hash chain", record.sequence),
        ));
    }
    tail.next_seq += 1;
    tail.last_hash = record::hash_of(record);
    Ok(())
}

impl JetStreamLog {
    /// Connects to the NATS servers, creates the stream if it is absent, and finds its tail.
    /// `client_name` names this replica's connection (seen in the NATS monitoring).
    pub fn open(settings: &JetStreamSettings, client_name: &str) -> Result<JetStreamLog, LogError> {
        JetStreamLog::connect(settings, client_name, Setup::Create)
    }

    /// Opens an existing stream only (for tools that read it): nothing is created.
    pub fn open_existing(
        settings: &JetStreamSettings,
        client_name: &str,
    ) -> Result<JetStreamLog, LogError> {
        JetStreamLog::connect(settings, client_name, Setup::Existing)
    }

    fn connect(
        settings: &JetStreamSettings,
        client_name: &str,
        setup: Setup,
    ) -> Result<JetStreamLog, LogError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nats-client")
            .enable_all()
            .build()
            .map_err(|e| unavailable("starting the NATS client", e))?;
        let handle = runtime.handle().clone();
        let connect = connect(settings.clone(), client_name.to_owned(), setup);
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        handle.spawn(async move {
            let _ = sender.send(connect.await);
        });
        let connected = receiver
            .recv()
            .map_err(|_| unavailable("the NATS client", "stopped"))
            .and_then(|connected| connected);
        let (client, context, stream, leases, progress) = match connected {
            Ok(connected) => connected,
            Err(e) => {
                // Dropped as is, a runtime may not be inside another's (the CLI's) context.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        let inner = Inner {
            max_payload: client.server_info().max_payload,
            runtime: Some(runtime),
            handle,
            context,
            stream,
            subject: subject_of(&settings.stream),
            leases,
            progress,
            tail: Mutex::new(Tail {
                stream_seq: 0,
                next_seq: 1,
                last_hash: [0; 32],
            }),
        };
        let tail = find_tail(&inner)?;
        *inner.tail() = tail;
        let (head, _) = watch::channel(tail.next_seq - 1);
        Ok(JetStreamLog {
            inner: Arc::new(inner),
            head,
        })
    }

    /// The leases of this stream's replicas.
    pub fn leases(&self, holder: &str) -> Leases {
        Leases {
            kv: self.inner.leases.clone(),
            progress: self.inner.progress.clone(),
            holder: holder.to_owned(),
            handle: self.inner.handle.clone(),
        }
    }
}

fn subject_of(stream: &str) -> String {
    format!("{stream}.log")
}

type Connected = (
    async_nats::Client,
    jetstream::Context,
    Stream,
    jetstream::kv::Store,
    jetstream::kv::Store,
);

/// Whether opening creates what is missing (the gateway) or only reads (tools).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    Create,
    Existing,
}

async fn connect(
    settings: JetStreamSettings,
    name: String,
    setup: Setup,
) -> Result<Connected, LogError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(REQUEST_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT));
    if let Some(creds) = &settings.creds {
        options = options
            .credentials_file(creds)
            .await
            .map_err(|e| unavailable(&format!("NATS credentials {}", creds.display()), e))?;
    }
    if let Some(ca) = &settings.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&settings.cert, &settings.key) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let servers = settings
        .servers
        .iter()
        .map(|s| s.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unavailable("NATS server address", e))?;
    let client = options
        .connect(servers)
        .await
        .map_err(|e| unavailable("connecting to NATS", e))?;
    let mut context = jetstream::new(client.clone());
    context.set_timeout(REQUEST_TIMEOUT);
    // A fresh cluster elects the stream's group first; replicas starting together race to create.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match ensure_stream(&context, &settings, setup).await {
            Ok((stream, leases, progress)) => {
                return Ok((client, context, stream, leases, progress));
            }
            Err(e) if attempts < SETUP_ATTEMPTS => {
                tracing::info!(error = %e, "the stream is not ready yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Times the stream and its buckets are looked for (or created) before opening fails.
const SETUP_ATTEMPTS: u32 = 20;

async fn ensure_stream(
    context: &jetstream::Context,
    settings: &JetStreamSettings,
    setup: Setup,
) -> Result<(Stream, jetstream::kv::Store, jetstream::kv::Store), LogError> {
    let name = &settings.stream;
    let stream = match setup {
        Setup::Create => context
            .get_or_create_stream(jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![subject_of(name)],
                num_replicas: settings.replicas,
                storage: jetstream::stream::StorageType::File,
                deny_delete: true,
                deny_purge: true,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(&format!("stream {name}"), e))?,
        Setup::Existing => context
            .get_stream(name)
            .await
            .map_err(|e| unavailable(&format!("stream {name}"), e))?,
    };
    check_stream(&stream.cached_info().config, settings)?;
    let leases = bucket(context, settings, "LEASES", LEASE_TTL).await?;
    let progress = bucket(context, settings, "PROGRESS", Duration::ZERO).await?;
    Ok((stream, leases, progress))
}

/// Refuses a stream (made by someone else, or by hand) that would not keep what it is given:
/// fewer replicas than configured (an acknowledgement from fewer copies), records that age
/// out or can be deleted, another subject.
fn check_stream(
    config: &jetstream::stream::Config,
    settings: &JetStreamSettings,
) -> Result<(), LogError> {
    let mut wrong = Vec::new();
    if config.num_replicas < settings.replicas {
        wrong.push(format!(
            "{} replicas, not {}",
            config.num_replicas, settings.replicas
        ));
    }
    if config.max_age != Duration::ZERO || config.max_messages > 0 || config.max_bytes > 0 {
        wrong.push("limits that drop records (max_age, max_msgs or max_bytes)".to_owned());
    }
    if !config.deny_delete || !config.deny_purge {
        wrong.push("deletes or purges allowed".to_owned());
    }
    if config.subjects != [subject_of(&settings.stream)] {
        wrong.push(format!("subjects {:?}", config.subjects));
    }
    if config.storage != jetstream::stream::StorageType::File {
        wrong.push("memory storage".to_owned());
    }
    if wrong.is_empty() {
        return Ok(());
    }
    Err(unavailable(
        &format!("stream {}", settings.stream),
        format!(
            "exists with {}; fix it with the NATS tools or name another stream",
            wrong.join(", ")
        ),
    ))
}

/// The key-value bucket `<stream>_<name>`, created if absent; entries expire after `max_age`
/// (never if zero).
async fn bucket(
    context: &jetstream::Context,
    settings: &JetStreamSettings,
    name: &str,
    max_age: Duration,
) -> Result<jetstream::kv::Store, LogError> {
    let bucket = format!("{}_{name}", settings.stream);
    if let Ok(store) = context.get_key_value(&bucket).await {
        return Ok(store);
    }
    context
        .create_key_value(jetstream::kv::Config {
            bucket: bucket.clone(),
            history: 1,
            max_age,
            num_replicas: settings.replicas,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(&format!("bucket {bucket}"), e))
}

/// Where the stream ends: its last message's last record.
fn find_tail(inner: &Inner) -> Result<Tail, LogError> {
    let mut stream = inner.stream.clone();
    let info = inner.block(async move {
        tokio::time::timeout(REQUEST_TIMEOUT, async move {
            stream.info().await.map(|info| info.state.last_sequence)
        })
        .await
    })?;
    let last = match info {
        Ok(Ok(last)) => last,
        Ok(Err(e)) => return Err(unavailable("stream info", e)),
        Err(_) => return Err(unavailable("stream info", "timed out")),
    };
    if last == 0 {
        return Ok(Tail {
            stream_seq: 0,
            next_seq: 1,
            last_hash: [0; 32],
        });
    }
    let message = inner
        .message(last)?
        .ok_or_else(|| corrupt(last, "missing".into()))?;
    let records = records_of(&message)?;
    let last_record = records
        .last()
        .ok_or_else(|| corrupt(last, "an empty batch".into()))?;
    Ok(Tail {
        stream_seq: last,
        next_seq: last_record.sequence + 1,
        last_hash: record::hash_of(last_record),
    })
}

impl LogBackend for JetStreamLog {
    fn next_seq(&self) -> Seq {
        Seq(self.inner.tail().next_seq)
    }

    fn append(
        &self,
        records: &mut [LogRecord],
        manifests: &EncodedManifests,
    ) -> Result<Appended, LogError> {
        let Some(first) = records.first().map(|r| r.sequence) else {
            return Ok(Appended::default());
        };
        let inner = &self.inner;
        let mut tail = inner.tail();
        if first != tail.next_seq {
            return Err(LogError::OutOfOrder {
                expected: tail.next_seq,
                found: first,
            });
        }
        let started = Instant::now();
        // Sealed over the tail this replica has applied: if the stream moved, the publish fails.
        let mut sealed = *tail;
        let mut payload = Vec::new();
        for record in records.iter_mut() {
            let (frame, hash) =
                record::seal(record, manifests.get(record.sequence), sealed.last_hash);
            sealed.last_hash = hash;
            sealed.next_seq += 1;
            payload.extend_from_slice(&frame);
        }
        let last = sealed.next_seq - 1;
        // The writer cuts batches to `max_append_bytes`; one message holds the whole batch, so
        // it is stored whole or not at all.
        if payload.len() > inner.max_payload.saturating_sub(HEADER_ROOM) {
            return Err(LogError::Unavailable {
                reason: format!(
                    "a batch of {} bytes exceeds the NATS servers' max_payload {}",
                    payload.len(),
                    inner.max_payload
                ),
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
            tail.stream_seq.to_string().as_str(),
        );
        headers.insert(FIRST, first.to_string().as_str());
        headers.insert(LAST, last.to_string().as_str());
        let context = inner.context.clone();
        let subject = inner.subject.clone();
        let published = inner.block(async move {
            let ack = context
                .publish_with_headers(subject, headers, Bytes::from(payload))
                .await?;
            ack.await
        })?;
        use async_nats::jetstream::context::PublishErrorKind;
        match published {
            Ok(ack) => sealed.stream_seq = ack.sequence,
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                return Err(LogError::Behind);
            }
            // A timeout may hide a stored message: the tail stays, and the next append finds
            // the stream moved and follows it (reading the batch back like another's).
            Err(e) => return Err(unavailable("publishing to the stream", e)),
        }
        *tail = sealed;
        drop(tail);
        self.head.send_replace(last);
        Ok(Appended {
            first,
            last,
            syncs: 1,
            sync_time: started.elapsed(),
        })
    }

    fn repair(&self) -> Result<(), LogError> {
        // A failed publish leaves nothing of ours to undo: the stream stored it or not, and
        // `follow` reads whatever it did store.
        Ok(())
    }

    fn cursor(&self, from: Seq) -> Box<dyn LogCursor> {
        Box::new(StreamCursor {
            inner: Arc::clone(&self.inner),
            next: from.0.max(1),
            stream_seq: None,
            pending: VecDeque::new(),
            prev_hash: None,
        })
    }

    fn durable_head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn max_append_bytes(&self) -> Option<u64> {
        Some(self.inner.max_payload.saturating_sub(HEADER_ROOM) as u64)
    }

    fn follow(&self) -> Result<Vec<LogRecord>, LogError> {
        let inner = &self.inner;
        let mut tail = inner.tail();
        let mut moved = *tail;
        let mut records = Vec::new();
        while let Some(message) = inner.message(moved.stream_seq + 1)? {
            for record in records_of(&message)? {
                chain(&mut moved, &record, message.sequence)?;
                records.push(record);
            }
            moved.stream_seq = message.sequence;
        }
        *tail = moved;
        drop(tail);
        if !records.is_empty() {
            self.head.send_replace(moved.next_seq - 1);
        }
        Ok(records)
    }

    fn latest(&self) -> Result<u64, LogError> {
        let stream = self.inner.stream.clone();
        let subject = self.inner.subject.clone();
        let got = self.inner.block(async move {
            tokio::time::timeout(
                REQUEST_TIMEOUT,
                stream.get_last_raw_message_by_subject(&subject),
            )
            .await
        })?;
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match got {
            Ok(Ok(message)) => header_seq(&message.headers, LAST)
                .ok_or_else(|| corrupt(message.sequence, "no Aci-Last header".into())),
            Ok(Err(e)) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Ok(Err(e)) => Err(unavailable("reading the stream's head", e)),
            Err(_) => Err(unavailable("reading the stream's head", "timed out")),
        }
    }
}

/// Reads the stream forward from a record sequence, a message at a time.
#[derive(Debug)]
struct StreamCursor {
    inner: Arc<Inner>,
    next: u64,
    /// The next message to fetch, once located.
    stream_seq: Option<u64>,
    /// Records of the last message fetched, not yet read.
    pending: VecDeque<LogRecord>,
    prev_hash: Option<[u8; 32]>,
}

impl LogCursor for StreamCursor {
    fn next_seq(&self) -> u64 {
        self.next
    }

    fn read(&mut self, last: u64, max: usize) -> Result<Vec<LogRecord>, LogError> {
        let mut records = Vec::new();
        while records.len() < max && self.next <= last {
            if self.pending.is_empty() {
                let stream_seq = match self.stream_seq {
                    Some(seq) => seq,
                    None => self.inner.locate(self.next)?,
                };
                let message = self.inner.message(stream_seq)?.ok_or_else(|| {
                    unavailable(
                        "reading the stream",
                        format!("record {} is not in the stream yet", self.next),
                    )
                })?;
                self.pending = records_of(&message)?
                    .into_iter()
                    .filter(|r| r.sequence >= self.next)
                    .collect();
                self.stream_seq = Some(stream_seq + 1);
                if self.pending.is_empty() {
                    continue;
                }
            }
            let Some(record) = self.pending.pop_front() else {
                continue;
            };
            let stream_seq = self.stream_seq.unwrap_or(0).saturating_sub(1);
            if record.sequence != self.next {
                return Err(corrupt(
                    stream_seq,
                    format!("expected record {}, found {}", self.next, record.sequence),
                ));
            }
            if let Some(prev) = self.prev_hash
                && record.prev_hash != prev
            {
                return Err(corrupt(
                    stream_seq,
                    format!("record {} breaks the hash chain", record.sequence),
                ));
            }
            self.prev_hash = Some(record::hash_of(&record));
            self.next += 1;
            records.push(record);
        }
        Ok(records)
    }
}

/// Leases on named duties (forwarding to a peer), one holder at a time across replicas.
#[derive(Debug, Clone)]
pub struct Leases {
    kv: jetstream::kv::Store,
    /// How far each leased duty got (a forwarder's cursor), kept past the lease.
    progress: jetstream::kv::Store,
    holder: String,
    handle: tokio::runtime::Handle,
}

impl Leases {
    /// Waits until this replica holds the lease `name` (or `stop` is cancelled: `None`). The
    /// lease is renewed in the background until it is dropped; [`Held::lost`] is cancelled
    /// when a renewal fails (another replica may hold it from then on).
    pub async fn hold(&self, name: &str, stop: &CancellationToken) -> Option<Held> {
        let key = lease_key(name);
        loop {
            let kv = self.kv.clone();
            let (k, holder) = (key.clone(), self.holder.clone());
            let created = self
                .handle
                .spawn(async move { kv.create(&k, Bytes::from(holder)).await })
                .await;
            match created {
                Ok(Ok(revision)) => {
                    tracing::info!(lease = %name, holder = %self.holder, "lease taken");
                    return Some(self.keep(key, name.to_owned(), revision));
                }
                Ok(Err(e)) => {
                    use async_nats::jetstream::kv::CreateErrorKind;
                    if e.kind() != CreateErrorKind::AlreadyExists {
                        tracing::debug!(lease = %name, error = %e, "cannot take the lease yet");
                    }
                }
                Err(e) => tracing::debug!(lease = %name, error = %e, "lease task"),
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(LEASE_TTL / 3) => {}
            }
        }
    }

    /// How far the holders of lease `name` got, as they last said ([`Leases::save_progress`]).
    pub async fn progress(&self, name: &str) -> Option<u64> {
        let kv = self.progress.clone();
        let key = lease_key(name);
        let entry = self.handle.spawn(async move { kv.get(&key).await }).await;
        match entry {
            Ok(Ok(Some(value))) => std::str::from_utf8(&value).ok()?.parse().ok(),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                tracing::warn!(lease = %name, error = %e, "cannot read the lease's progress");
                None
            }
            Err(_) => None,
        }
    }

    /// Says how far the duty under lease `name` got, for the next holder (never less than
    /// what is saved: a holder that lost the lease unknowingly does not move it back).
    pub async fn save_progress(&self, name: &str, value: u64) {
        let kv = self.progress.clone();
        let key = lease_key(name);
        let saved = self
            .handle
            .spawn(async move {
                let current = match kv.entry(&key).await? {
                    Some(entry) => {
                        let known = std::str::from_utf8(&entry.value)
                            .ok()
                            .and_then(|v| v.parse::<u64>().ok());
                        if known.is_some_and(|known| known >= value) {
                            return Ok(());
                        }
                        Some(entry.revision)
                    }
                    None => None,
                };
                let value = Bytes::from(value.to_string());
                match current {
                    Some(revision) => kv.update(&key, value, revision).await.map(drop)?,
                    None => kv.create(&key, value).await.map(drop)?,
                }
                Ok::<(), async_nats::Error>(())
            })
            .await;
        if let Ok(Err(e)) = saved {
            tracing::debug!(lease = %name, error = %e, "cannot save the lease's progress");
        }
    }

    fn keep(&self, key: String, name: String, mut revision: u64) -> Held {
        let lost = CancellationToken::new();
        let kv = self.kv.clone();
        let holder = self.holder.clone();
        let signal = lost.clone();
        let renewal = self.handle.spawn(async move {
            let mut renewed_at = Instant::now();
            loop {
                tokio::time::sleep(LEASE_TTL / 3).await;
                // Paused past the TTL (SIGSTOP, a stalled machine): another replica may hold it
                // by now, whatever the renewal would say.
                let lapsed = renewed_at.elapsed() >= LEASE_TTL;
                let renewed = if lapsed {
                    Err("lapsed while this replica was paused".to_owned())
                } else {
                    let attempt = Instant::now();
                    match tokio::time::timeout(
                        LEASE_TTL / 3,
                        kv.update(&key, Bytes::from(holder.clone()), revision),
                    )
                    .await
                    {
                        Ok(Ok(next)) => {
                            renewed_at = attempt;
                            Ok(next)
                        }
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("timed out".to_owned()),
                    }
                };
                match renewed {
                    Ok(next) => revision = next,
                    Err(error) => {
                        tracing::warn!(lease = %name, %error, "lease lost");
                        signal.cancel();
                        return;
                    }
                }
            }
        });
        Held { lost, renewal }
    }
}

/// A lease this replica holds; renewal stops when it is dropped (it then lapses after the TTL).
#[derive(Debug)]
pub struct Held {
    lost: CancellationToken,
    renewal: tokio::task::JoinHandle<()>,
}

impl Held {
    /// Cancelled once the lease is lost.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// A KV key for a lease name: letters, digits, `-`, `_` and `.` as they are, anything else hex.
fn lease_key(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("={other:02x}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_keys_are_valid_kv_keys() {
        assert_eq!(lease_key("forward.GB-DEV-1"), "forward.GB-DEV-1");
        assert_eq!(lease_key("a b/c"), "a=20b=2fc");
    }
}
