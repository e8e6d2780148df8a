//! Forwarders: one task per peer with an endpoint. Each tails the log from the peer's cursor,
//! sends the records the routes give the peer over one `Deliver` stream with a window of
//! envelopes in flight, and moves the cursor only as acknowledgements come back, in order.
//! When the peer is away or the stream breaks, it reconnects with exponential backoff and
//! jitter and resends everything after the cursor: delivery is at-least-once on the wire, and
//! the peer's de-duplication by (origin, sequence) makes it exactly-once in effect.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::ids::Seq;
use crate::pb::DeliveryAck;
use crate::pb::delivery_ack::Outcome;
use crate::store::record::SharedRecord;

use super::{EncodedEnvelope, Exchange, PeerState, envelope_of, record_millis};

/// Envelopes sent and not yet acknowledged, at most.
pub const WINDOW: usize = 1024;
/// Records read from the log at a time.
const READ_CHUNK: usize = 256;
/// How often, at most, a moving cursor is written to the index.
const CURSOR_SAVE_INTERVAL: Duration = Duration::from_millis(100);
/// Largest message a peer may answer with.
const MAX_ACK_BYTES: usize = 1024 * 1024;

/// Starts a forwarder for every peer with an endpoint; they stop when `shutdown` is cancelled.
pub fn spawn(
    exchange: &Arc<Exchange>,
    tls: &Arc<crate::tls::ClientFiles>,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    exchange
        .peers()
        .filter(|state| state.endpoint.is_some())
        .map(|state| {
            let forwarder = Forwarder {
                exchange: Arc::clone(exchange),
                state: Arc::clone(state),
                tls: Arc::clone(tls),
                shutdown: shutdown.clone(),
            };
            tokio::spawn(forwarder.run())
        })
        .collect()
}

/// The backoff between connection attempts: 100 ms doubling to 10 s, with jitter, forever.
fn backoff() -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Opens the `Deliver` stream on `channel`: the generated client's call, with envelopes of any
/// type with `Envelope`'s tags; the forwarder's carry their manifests as the log holds them
/// (the bytes on the wire are an `Envelope`'s).
pub(crate) async fn deliver<T: prost::Message + 'static>(
    channel: tonic::transport::Channel,
    envelopes: impl tokio_stream::Stream<Item = T> + Send + 'static,
) -> Result<tonic::Streaming<DeliveryAck>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_ACK_BYTES);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("the channel to the peer: {e}")))?;
    let codec = tonic_prost::ProstCodec::<T, DeliveryAck>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/aci.v1.PeerExchange/Deliver");
    let mut request = tonic::Request::new(envelopes);
    request
        .extensions_mut()
        .insert(tonic::GrpcMethod::new("aci.v1.PeerExchange", "Deliver"));
    Ok(grpc.streaming(request, path, codec).await?.into_inner())
}

struct Forwarder {
    exchange: Arc<Exchange>,
    state: Arc<PeerState>,
    /// Read for each connection: a rotated certificate or a new CRL applies from the next.
    tls: Arc<crate::tls::ClientFiles>,
    shutdown: CancellationToken,
}

/// Why a session with the peer ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Connect(#[from] super::ConnectError),
    #[error("TLS files: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("the peer refused the stream: {0}")]
    Rpc(#[from] tonic::Status),
    #[error("the peer closed the stream")]
    Closed,
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("the local log: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the local log: {0}")]
    Log(#[from] crate::store::LogError),
    #[error("the local index: {0}")]
    Index(#[from] crate::store::IndexError),
    #[error("log reader task: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the local log: {0}")]
    Unroutable(#[from] super::Unroutable),
}

/// An envelope sent and not yet acknowledged.
struct InFlight {
    sequence: u64,
    /// When its record was received, in Unix ms (for the lag in seconds).
    received_ms: u64,
    /// `exchange.forward`, open from sending to the acknowledgement.
    span: tracing::Span,
}

/// A session's progress: what is in flight, how far the log was read.
struct Window {
    /// Each envelope sent and not yet acknowledged, oldest first.
    in_flight: VecDeque<InFlight>,
    /// The last record read from the log (sent, or not for this peer).
    read_upto: u64,
    /// The cursor as last written to the index, and when.
    saved: u64,
    saved_at: Instant,
}

/// How often a forwarder on a shared log says how far it got, for the replica after it.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

impl Forwarder {
    /// Forwards to the peer; with a shared log, only while this replica holds the peer's lease
    /// (one replica at a time), starting from where the last holder got.
    async fn run(self) {
        let Some(leases) = self.exchange.store().leases().cloned() else {
            return self.forward().await;
        };
        let lease = format!("forward.{}", self.state.id);
        loop {
            let Some(held) = leases.hold(&lease, &self.shutdown).await else {
                return;
            };
            if let Some(got) = leases.progress(&lease).await {
                self.take_cursor(got);
            }
            let lost = held.lost();
            let reporting = async {
                let mut said = 0;
                loop {
                    tokio::time::sleep(PROGRESS_INTERVAL).await;
                    let cursor = self.state.cursor.load(Ordering::Acquire);
                    if cursor > said {
                        leases.save_progress(&lease, cursor).await;
                        said = cursor;
                    }
                }
            };
            tokio::select! {
                () = self.forward() => return,
                () = reporting => return,
                () = lost.cancelled() => {
                    tracing::warn!(peer = %self.state.id, "lease lost: another replica forwards to this peer");
                    self.state.connected.store(false, Ordering::Relaxed);
                }
            }
        }
    }

    /// Moves the cursor up to where another replica's forwarder got (never back).
    fn take_cursor(&self, cursor: u64) {
        let before = self.state.cursor.fetch_max(cursor, Ordering::AcqRel);
        if cursor > before
            && let Err(e) = self
                .exchange
                .store()
                .index()
                .advance_cursor(&self.state.id, cursor)
        {
            tracing::warn!(peer = %self.state.id, error = %e, "cannot save the cursor taken over");
        }
    }

    async fn forward(&self) {
        let peer = self.state.id.clone();
        let mut delays = backoff();
        loop {
            let cursor_before = self.state.cursor.load(Ordering::Acquire);
            let ended = self.session().await;
            self.state.connected.store(false, Ordering::Relaxed);
            match ended {
                Ok(()) => return,
                Err(error) => {
                    self.state.retries.fetch_add(1, Ordering::Relaxed);
                    // Transport errors say little without their causes.
                    let error = crate::telemetry::one_line(&error);
                    tracing::warn!(%peer, %error, "forwarding interrupted; will retry");
                    self.state.set_error(Some(error));
                    self.note_oldest_pending().await;
                }
            }
            if self.state.cursor.load(Ordering::Acquire) > cursor_before {
                delays = backoff();
            }
            let delay = delays.next().unwrap_or(Duration::from_secs(10));
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// While disconnected, lag in seconds is the age of the first record after the cursor.
    async fn note_oldest_pending(&self) {
        let cursor = self.state.cursor.load(Ordering::Acquire);
        let durable = *self.exchange.store().durable().borrow();
        if cursor >= durable {
            self.state.oldest_pending_ms.store(0, Ordering::Relaxed);
            return;
        }
        if self.state.oldest_pending_ms.load(Ordering::Relaxed) != 0 {
            return;
        }
        // A read of the log may wait on the network (a shared log): off the async workers.
        let store = self.exchange.store().clone();
        let read = tokio::task::spawn_blocking(move || {
            store.reader(Seq(cursor + 1)).read_shared(cursor + 1, 1)
        })
        .await;
        if let Ok(Ok(records)) = read
            && let Some(record) = records.first()
        {
            let at = record_millis(record);
            self.state.oldest_pending_ms.store(at, Ordering::Relaxed);
        }
    }

    /// One connection: deliver until the stream breaks or shutdown (`Ok`).
    async fn session(&self) -> Result<(), SessionError> {
        let Some(endpoint) = self.state.endpoint.as_deref() else {
            return Ok(());
        };
        let channel = tokio::select! {
            () = self.shutdown.cancelled() => return Ok(()),
            connected = super::connect(endpoint, &self.state.id, self.tls.config()?) => connected?,
        };
        let (envelopes, outgoing) = mpsc::channel::<EncodedEnvelope>(WINDOW);
        let mut acks = deliver(channel, ReceiverStream::new(outgoing)).await?;
        self.state.connected.store(true, Ordering::Relaxed);
        self.state.set_error(None);
        let cursor = self.state.cursor.load(Ordering::Acquire);
        tracing::info!(peer = %self.state.id, %endpoint, cursor, "forwarding");
        let mut window = Window {
            in_flight: VecDeque::new(),
            read_upto: cursor,
            saved: cursor,
            saved_at: Instant::now(),
        };
        let mut reader = Some(self.exchange.store().reader(Seq(cursor + 1)));
        let mut durable = self.exchange.store().durable();
        let result = loop {
            // Reading a long stretch of records that are not for this peer never waits on the
            // select below: look at shutdown here too.
            if self.shutdown.is_cancelled() {
                break Ok(());
            }
            let durable_now = *durable.borrow_and_update();
            let room = WINDOW - window.in_flight.len();
            if window.read_upto < durable_now && room >= WINDOW / 4 {
                let mut taken = reader.take().ok_or(SessionError::Closed)?;
                let limit = room.min(READ_CHUNK);
                let (back, records) = tokio::task::spawn_blocking(move || {
                    let records = taken.read_shared(durable_now, limit);
                    (taken, records)
                })
                .await?;
                reader = Some(back);
                if let Err(e) = self.send(records?, &mut window, &envelopes).await {
                    break Err(e);
                }
                continue;
            }
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break Ok(()),
                ack = acks.message() => match ack {
                    Ok(Some(ack)) => {
                        if let Err(e) = self.acknowledged(&ack, &mut window) {
                            break Err(e);
                        }
                    }
                    Ok(None) => break Err(SessionError::Closed),
                    Err(status) => break Err(SessionError::Rpc(status)),
                },
                changed = durable.changed(), if window.read_upto >= durable_now => {
                    if changed.is_err() {
                        break Ok(());
                    }
                }
            }
        };
        self.save_cursor(&mut window, true)?;
        result
    }

    /// Sends the records that are for this peer; the rest only move the read position.
    async fn send(
        &self,
        records: Vec<SharedRecord>,
        window: &mut Window,
        envelopes: &mpsc::Sender<EncodedEnvelope>,
    ) -> Result<(), SessionError> {
        for record in records {
            let sequence = record.sequence;
            window.read_upto = sequence;
            if !self.exchange.is_for(&self.state.id, &record)? {
                continue;
            }
            let received_ms = record_millis(&record);
            if window.in_flight.is_empty() {
                self.state
                    .oldest_pending_ms
                    .store(received_ms, Ordering::Relaxed);
            }
            // The record's trace goes on, however long after the filing: the peer's spans are
            // children of this one.
            let span = tracing::info_span!(
                parent: None,
                "exchange.forward",
                otel.kind = "client",
                rpc.system = "grpc",
                rpc.service = "aci.v1.PeerExchange",
                rpc.method = "Deliver",
                peer = %self.state.id,
                mrn = %record.mrn,
                sequence = crate::telemetry::number(sequence),
                outcome = tracing::field::Empty,
            );
            let mut envelope = envelope_of(&self.exchange.gateway_id, record);
            // The record's trace goes on here; the peer continues from this span.
            envelope.traceparent =
                crate::telemetry::continue_from(&span, std::mem::take(&mut envelope.traceparent));
            window.in_flight.push_back(InFlight {
                sequence,
                received_ms,
                span,
            });
            envelopes
                .send(envelope)
                .await
                .map_err(|_| SessionError::Closed)?;
            self.state.sent.fetch_max(sequence, Ordering::AcqRel);
        }
        self.save_cursor(window, false)?;
        Ok(())
    }

    /// Takes one acknowledgement: it must be for the oldest envelope in flight.
    fn acknowledged(&self, ack: &DeliveryAck, window: &mut Window) -> Result<(), SessionError> {
        let Some(expected) = window.in_flight.front().map(|f| f.sequence) else {
            return Err(SessionError::Protocol(format!(
                "an acknowledgement for {} with nothing in flight",
                ack.origin_sequence
            )));
        };
        if ack.origin_sequence != expected {
            return Err(SessionError::Protocol(format!(
                "an acknowledgement for {} where {expected} was due",
                ack.origin_sequence
            )));
        }
        let outcome = match &ack.outcome {
            Some(Outcome::Delivered(delivered)) => {
                self.state.delivered.fetch_add(1, Ordering::Relaxed);
                if delivered.duplicate {
                    self.state.duplicates.fetch_add(1, Ordering::Relaxed);
                    "duplicate"
                } else {
                    "delivered"
                }
            }
            Some(Outcome::Refused(refusal)) => {
                self.state.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    peer = %self.state.id, sequence = expected, code = %refusal.code,
                    message = %refusal.message, "the peer refused a record"
                );
                self.exchange.store().index().record_refusal(
                    &self.state.id,
                    expected,
                    &refusal.code,
                    &refusal.message,
                )?;
                "refused"
            }
            None => {
                return Err(SessionError::Protocol(format!(
                    "the acknowledgement for {expected} has no outcome"
                )));
            }
        };
        if let Some(acknowledged) = window.in_flight.pop_front() {
            acknowledged.span.record("outcome", outcome);
        }
        let oldest = window.in_flight.front().map_or(0, |f| f.received_ms);
        self.state
            .oldest_pending_ms
            .store(oldest, Ordering::Relaxed);
        self.save_cursor(window, false)
    }

    /// Moves the cursor to just before the oldest envelope in flight (or to the read position
    /// when none is), writing it to the index when idle, at the session's end, and otherwise at
    /// most every [`CURSOR_SAVE_INTERVAL`]: a cursor update lost in a crash only means a
    /// redelivery.
    fn save_cursor(&self, window: &mut Window, now: bool) -> Result<(), SessionError> {
        let cursor = window
            .in_flight
            .front()
            .map_or(window.read_upto, |f| f.sequence - 1);
        self.state.cursor.fetch_max(cursor, Ordering::AcqRel);
        let idle = window.in_flight.is_empty();
        if cursor > window.saved
            && (now || idle || window.saved_at.elapsed() >= CURSOR_SAVE_INTERVAL)
        {
            self.exchange
                .store()
                .index()
                .advance_cursor(&self.state.id, cursor)?;
            window.saved = cursor;
            window.saved_at = Instant::now();
        }
        Ok(())
    }
}
