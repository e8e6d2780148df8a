//! The peer API (`aci.v1.PeerExchange`): what this gateway serves to the administrations it
//! exchanges with. Every call is from a configured peer, proven by its certificate
//! (`urn:aci:admin:<id>` from the peer CA); anyone else is refused before anything is read.
//!
//! - `Deliver` stores each envelope durably (once per origin and sequence) and acknowledges in
//!   the stream's order; many envelopes of a stream share one group commit.
//! - `Subscribe` streams the caller's own feed from a cursor, then follows the log.
//! - `Notify` stores a risk notice about a filing shared with the caller; it reaches the filing
//!   carrier's notification stream.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::ids::{Mrn, Seq};
use crate::pb::delivery_ack::Outcome;
use crate::pb::peer_exchange_server::PeerExchange;
use crate::pb::{
    Delivered, DeliveryAck, Envelope, Notice, NoticeAck, NoticeKind, Refusal, SubscribeRequest,
};
use crate::status::store_failure;
use crate::store::{Delivery, Noticed, StoreError};
use crate::telemetry::Metrics;
use crate::tls::{Identity, PeerInfo};

use super::{Exchange, PeerState, envelope_of};

/// Envelopes of one `Deliver` stream being stored at once, and acknowledgements waiting to be
/// read: a sender that does not read its acknowledgements stops being read.
const DELIVER_WINDOW: usize = 1024;
/// Envelopes of a feed waiting for the subscriber to read them.
const FEED_BUFFER: usize = 256;
/// Records read from the log at a time for a feed.
const FEED_CHUNK: usize = 256;
const MAX_NOTICE_ID: usize = 128;
const MAX_NOTICE_TEXT: usize = 8192;

/// Fault injection for crash tests (the `testing` feature only): with
/// `ACI_FAULT_ABORT_BEFORE_ACK=N` in its environment, the process aborts once the N-th new
/// envelope it received is durable, before that envelope is acknowledged: the crash between
/// the receiver's fsync and its ack, made deterministic.
#[cfg(not(feature = "testing"))]
fn abort_before_ack(_stored: u64) {}

#[cfg(feature = "testing")]
fn abort_before_ack(stored: u64) {
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("ACI_FAULT_ABORT_BEFORE_ACK")
            .ok()
            .and_then(|n| n.parse().ok())
    });
    if *at == Some(stored) {
        tracing::error!(
            stored,
            "ACI_FAULT_ABORT_BEFORE_ACK: aborting before the acknowledgement"
        );
        std::process::abort();
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The `PeerExchange` service.
#[derive(Debug, Clone)]
pub struct PeerService {
    exchange: Arc<Exchange>,
    metrics: Arc<Metrics>,
    /// Ends the open streams when the gateway stops.
    shutdown: CancellationToken,
}

impl PeerService {
    pub fn new(
        exchange: Arc<Exchange>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> PeerService {
        PeerService {
            exchange,
            metrics,
            shutdown,
        }
    }

    /// The configured peer behind a request.
    fn caller<T>(&self, request: &Request<T>) -> Result<Arc<PeerState>, Status> {
        match PeerInfo::of(request)?.identity.clone() {
            Some(Identity::Admin(id)) => self.exchange.peer(&id).cloned().ok_or_else(|| {
                Status::permission_denied(format!("administration {id} is not a configured peer"))
            }),
            Some(Identity::Carrier(eori)) => Err(Status::permission_denied(format!(
                "carrier {eori} cannot use the peer API"
            ))),
            None => Err(Status::unauthenticated(
                "the client certificate carries no urn:aci:admin:<id> identity",
            )),
        }
    }
}

fn refusal(origin_sequence: u64, code: &str, message: String) -> DeliveryAck {
    DeliveryAck {
        origin_sequence,
        outcome: Some(Outcome::Refused(Refusal {
            code: code.to_owned(),
            message,
        })),
    }
}

/// An envelope's answer: ready now, or once the store has decided it.
enum Pending {
    Ready(DeliveryAck),
    /// The store cannot take deliveries: the stream ends with this status.
    Failed(Status),
    Storing(
        u64,
        Pin<Box<dyn Future<Output = Result<Delivery, StoreError>> + Send>>,
        /// `exchange.receive`, open until the acknowledgement.
        tracing::Span,
    ),
}

#[tonic::async_trait]
impl PeerExchange for PeerService {
    type DeliverStream = BoxStream<DeliveryAck>;

    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, Status> {
        let peer = self.caller(&request)?;
        let mut inbound = request.into_inner();
        let (pending_tx, mut pending_rx) = mpsc::channel::<Pending>(DELIVER_WINDOW);
        let (answers, answers_rx) = mpsc::channel(DELIVER_WINDOW);
        let store = self.exchange.store().clone();
        let shutdown = self.shutdown.clone();
        let origin = peer.id.clone();
        peer.connected.store(true, Ordering::Relaxed);
        // Reads envelopes and queues them for the writer, in order.
        tokio::spawn(async move {
            loop {
                let envelope = tokio::select! {
                    () = shutdown.cancelled() => break,
                    message = inbound.message() => match message {
                        Ok(Some(envelope)) => envelope,
                        Ok(None) => break,
                        Err(status) => {
                            tracing::debug!(peer = %origin, %status, "delivery stream ended");
                            break;
                        }
                    },
                };
                let sequence = envelope.origin_sequence;
                let pending = if envelope.origin != origin {
                    Pending::Ready(refusal(
                        sequence,
                        "ORIGIN_MISMATCH",
                        format!(
                            "{origin} may deliver only its own records, not {:?}'s",
                            envelope.origin
                        ),
                    ))
                } else {
                    // The sender's trace goes on here; the stored record continues from this span.
                    let span = tracing::info_span!(
                        parent: None,
                        "exchange.receive",
                        peer = %origin,
                        mrn = %envelope.mrn,
                        origin_sequence = sequence,
                        outcome = tracing::field::Empty,
                    );
                    let mut envelope = envelope;
                    envelope.traceparent = crate::telemetry::continue_from(
                        &span,
                        std::mem::take(&mut envelope.traceparent),
                    );
                    match store.queue_receive(envelope).await {
                        Ok(answer) => Pending::Storing(sequence, Box::pin(answer), span),
                        Err(e) => {
                            let _ = pending_tx.send(Pending::Failed(store_failure(&e))).await;
                            break;
                        }
                    }
                };
                if pending_tx.send(pending).await.is_err() {
                    break;
                }
            }
        });
        // Answers each envelope once it is durable, in the stream's order.
        let metrics = Arc::clone(&self.metrics);
        static STORED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        tokio::spawn(async move {
            while let Some(pending) = pending_rx.recv().await {
                let answer = match pending {
                    Pending::Failed(status) => Err(status),
                    Pending::Ready(ack) => {
                        metrics.received(&peer.id, "refused");
                        Ok(ack)
                    }
                    Pending::Storing(sequence, answer, span) => match answer.await {
                        Ok(Delivery::Stored {
                            local_sequence,
                            duplicate,
                        }) => {
                            let outcome = if duplicate { "duplicate" } else { "stored" };
                            span.record("outcome", outcome);
                            metrics.received(&peer.id, outcome);
                            if !duplicate {
                                abort_before_ack(STORED.fetch_add(1, Ordering::Relaxed) + 1);
                            }
                            Ok(DeliveryAck {
                                origin_sequence: sequence,
                                outcome: Some(Outcome::Delivered(Delivered {
                                    local_sequence,
                                    duplicate,
                                })),
                            })
                        }
                        Ok(Delivery::Refused { code, message, .. }) => {
                            span.record("outcome", "refused");
                            metrics.received(&peer.id, "refused");
                            Ok(refusal(sequence, &code, message))
                        }
                        Err(e) => Err(store_failure(&e)),
                    },
                };
                let failed = answer.is_err();
                if answers.send(answer).await.is_err() || failed {
                    break;
                }
            }
            peer.connected.store(false, Ordering::Relaxed);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(answers_rx))))
    }

    type SubscribeStream = BoxStream<Envelope>;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let peer = self.caller(&request)?;
        let after = request.into_inner().after_sequence;
        let store = self.exchange.store().clone();
        let durable_now = *store.durable().borrow();
        // Asking from a cursor says everything up to it arrived.
        self.exchange
            .acknowledge(&peer, after.min(durable_now))
            .map_err(|e| store_failure(&e))?;
        let (feed, feed_rx) = mpsc::channel(FEED_BUFFER);
        let exchange = Arc::clone(&self.exchange);
        let shutdown = self.shutdown.clone();
        peer.connected.store(true, Ordering::Relaxed);
        tracing::info!(peer = %peer.id, after, "pull feed opened");
        tokio::spawn(async move {
            let mut reader = Some(store.reader(Seq(after + 1)));
            let mut durable = store.durable();
            'feed: loop {
                // A long stretch of records for other peers never waits below: look here too.
                if shutdown.is_cancelled() || feed.is_closed() {
                    break;
                }
                let durable_now = *durable.borrow_and_update();
                let Some(mut taken) = reader.take() else {
                    break;
                };
                if taken.next_seq() <= durable_now {
                    let read = tokio::task::spawn_blocking(move || {
                        let records = taken.read(durable_now, FEED_CHUNK);
                        (taken, records)
                    })
                    .await;
                    let Ok((back, records)) = read else {
                        break;
                    };
                    reader = Some(back);
                    let records = match records {
                        Ok(records) => records,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read the log for a feed");
                            let _ = feed
                                .send(Err(Status::internal("the log cannot be read")))
                                .await;
                            break;
                        }
                    };
                    for record in records {
                        if !exchange.is_for(&peer.id, &record) {
                            continue;
                        }
                        let sequence = record.sequence;
                        let envelope = envelope_of(&exchange.gateway_id, record);
                        if feed.send(Ok(envelope)).await.is_err() {
                            break 'feed;
                        }
                        peer.sent.fetch_max(sequence, Ordering::AcqRel);
                    }
                    continue;
                }
                reader = Some(taken);
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = feed.closed() => break,
                    changed = durable.changed() => if changed.is_err() { break },
                }
            }
            peer.connected.store(false, Ordering::Relaxed);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(feed_rx))))
    }

    async fn notify(&self, request: Request<Notice>) -> Result<Response<NoticeAck>, Status> {
        let peer = self.caller(&request)?;
        let span = tracing::info_span!(
            "exchange.notice",
            peer = %peer.id,
            mrn = tracing::field::Empty,
            kind = tracing::field::Empty,
        );
        crate::telemetry::continue_trace(
            &span,
            &crate::telemetry::traceparent_of(request.metadata()),
        );
        let notice = request.into_inner();
        span.record("mrn", notice.mrn.as_str());
        self.take_notice(peer, notice).instrument(span).await
    }
}

impl PeerService {
    /// Checks and stores a notice (see `Notify`).
    async fn take_notice(
        &self,
        peer: Arc<PeerState>,
        notice: Notice,
    ) -> Result<Response<NoticeAck>, Status> {
        let kind = NoticeKind::try_from(notice.kind).unwrap_or(NoticeKind::Unspecified);
        tracing::Span::current().record("kind", kind.as_str_name());
        if kind == NoticeKind::Unspecified {
            return Err(Status::invalid_argument(format!(
                "notice kind {} is not one of assessment complete, referral for information, \
                 referral for screening, do not load",
                notice.kind
            )));
        }
        if notice.notice_id.is_empty()
            || notice.notice_id.len() > MAX_NOTICE_ID
            || notice.notice_id.chars().any(char::is_control)
        {
            return Err(Status::invalid_argument(format!(
                "notice_id must be 1 to {MAX_NOTICE_ID} characters, without control characters"
            )));
        }
        if notice.text.len() > MAX_NOTICE_TEXT {
            return Err(Status::invalid_argument(format!(
                "text is longer than {MAX_NOTICE_TEXT} bytes"
            )));
        }
        crate::validate::check_free_text("the notice's text", &notice.text)
            .map_err(Status::invalid_argument)?;
        let mrn = Mrn::parse(&notice.mrn).map_err(|e| {
            Status::invalid_argument(format!("{:?} is not an MRN: {e}", notice.mrn))
        })?;
        let not_shared =
            || Status::not_found(format!("no filing {mrn} was shared with {}", peer.id));
        let entry = self
            .exchange
            .store()
            .entry(&mrn)
            .map_err(|e| store_failure(&e))?
            .ok_or_else(not_shared)?;
        let shared = entry
            .routing
            .as_ref()
            .is_some_and(|facts| self.exchange.routes.sends_to(&peer.id, facts));
        if !shared {
            return Err(not_shared());
        }
        match self
            .exchange
            .store()
            .notify(&peer.id, notice)
            .await
            .map_err(|e| store_failure(&e))?
        {
            Noticed::Stored {
                sequence,
                duplicate,
            } => {
                if !duplicate {
                    self.metrics.notice(&peer.id, kind.as_str_name());
                    tracing::info!(peer = %peer.id, %mrn, kind = kind.as_str_name(), sequence, "risk notice received");
                }
                Ok(Response::new(NoticeAck {
                    sequence,
                    duplicate,
                }))
            }
            Noticed::NotFound => Err(not_shared()),
        }
    }
}
