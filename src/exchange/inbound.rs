//! What peers ask of this gateway: deliver envelopes (stored durably, once per origin and
//! sequence, acknowledged in the stream's order), pull their feed from a cursor, and send risk
//! notices about filings shared with them (which reach the filing carrier's feed).
//!
//! It knows nothing of gRPC: the peer API (`exchange::service`) proves the caller is a
//! configured peer, calls one method here and maps the [`ExchangeError`] with `crate::status`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::ids::{Mrn, Seq};
use crate::pb::delivery_ack::Outcome;
use crate::pb::{
    Delivered, DeliveryAck, EncodedEnvelope, Notice, NoticeAck, NoticeKind, NoticeTarget, Refusal,
    TargetType,
};
use crate::store::{Delivery, LogCursor, Noticed, StoreError};
use crate::telemetry::Metrics;

use super::{Exchange, PeerState, envelope_of};

/// Envelopes of one delivery stream being stored at once, and acknowledgements waiting to be
/// read: a sender that does not read its acknowledgements stops being read.
const DELIVER_WINDOW: usize = 1024;
/// Envelopes of a feed waiting for the subscriber to read them.
const FEED_BUFFER: usize = 256;
/// Records read from the log at a time for a feed.
const FEED_CHUNK: usize = 256;
const MAX_NOTICE_ID: usize = 128;
const MAX_NOTICE_TEXT: usize = 8192;
/// Most targets of a notice or request.
const MAX_TARGETS: usize = 9999;
/// Most requests of a referral (ICS2: 999).
const MAX_REQUESTS: usize = 999;

/// Why a peer's request was not done.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The request itself is unusable.
    #[error("{0}")]
    Malformed(String),
    /// One field of the request is not as it may be (a code not in its list, a target that is
    /// not an item of the filing): its path, a stable code, and why.
    #[error("{field}: {message}")]
    InvalidField {
        field: String,
        code: &'static str,
        message: String,
    },
    /// No such filing was shared with the peer (whether it exists is not the peer's business).
    #[error("no filing {mrn} was shared with {peer}")]
    NotShared { mrn: String, peer: String },
    /// The log could not be read for a feed (logged).
    #[error("the log cannot be read")]
    LogUnreadable,
    /// Nothing was stored: the same request may be retried.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An ordered stream of answers that ends with an error, at shutdown, or when dropped.
pub type Answers<T> = mpsc::Receiver<Result<T, ExchangeError>>;

/// The peer use-cases over one exchange.
#[derive(Debug, Clone)]
pub struct Inbound {
    exchange: Arc<Exchange>,
    metrics: Arc<Metrics>,
    /// Ends the open streams when the gateway stops.
    shutdown: CancellationToken,
}

/// An envelope's answer: ready now, or once the store has decided it.
enum Pending {
    Ready(DeliveryAck),
    /// The store cannot take deliveries: the stream ends with this.
    Failed(StoreError),
    Storing(
        u64,
        Pin<Box<dyn Future<Output = Result<Delivery, StoreError>> + Send>>,
        /// `exchange.receive`, open until the acknowledgement.
        tracing::Span,
    ),
}

impl Inbound {
    pub fn new(
        exchange: Arc<Exchange>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Inbound {
        Inbound {
            exchange,
            metrics,
            shutdown,
        }
    }

    /// The configured peer with this id.
    pub fn peer(&self, id: &str) -> Option<Arc<PeerState>> {
        self.exchange.peer(id).cloned()
    }

    /// Takes the envelopes `peer` delivers, in order: each is stored (or refused) durably once
    /// per origin sequence, and acknowledged in the stream's order. Many envelopes of a stream
    /// share one group commit. The envelopes come as the peer API reads them (with their
    /// manifests left encoded: [`EncodedEnvelope`]) or decoded.
    pub fn deliver<S, T, E>(&self, peer: Arc<PeerState>, inbound: S) -> Answers<DeliveryAck>
    where
        S: Stream<Item = Result<T, E>> + Send + Unpin + 'static,
        T: Into<EncodedEnvelope> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let (pending_tx, pending_rx) = mpsc::channel::<Pending>(DELIVER_WINDOW);
        let (answers, answers_rx) = mpsc::channel(DELIVER_WINDOW);
        peer.connected.store(true, Ordering::Relaxed);
        tokio::spawn(queue_envelopes(
            self.exchange.store().clone(),
            peer.id.clone(),
            inbound,
            pending_tx,
            self.shutdown.clone(),
        ));
        tokio::spawn(acknowledge(
            pending_rx,
            answers,
            peer,
            Arc::clone(&self.metrics),
        ));
        answers_rx
    }

    /// `peer`'s feed after `after`: the records the routes give it, in log order, then each new
    /// one as it is made durable, with manifests as the log holds them. Asking from a cursor
    /// says everything up to it arrived.
    pub fn feed(
        &self,
        peer: Arc<PeerState>,
        after: u64,
    ) -> Result<Answers<EncodedEnvelope>, ExchangeError> {
        let store = self.exchange.store().clone();
        let durable_now = *store.durable().borrow();
        self.exchange.acknowledge(&peer, after.min(durable_now))?;
        let (feed, feed_rx) = mpsc::channel(FEED_BUFFER);
        peer.connected.store(true, Ordering::Relaxed);
        tracing::info!(peer = %peer.id, after, "pull feed opened");
        let exchange = Arc::clone(&self.exchange);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            follow(
                &exchange,
                &peer,
                store.reader(Seq(after + 1)),
                &feed,
                &shutdown,
            )
            .await;
            peer.connected.store(false, Ordering::Relaxed);
        });
        Ok(feed_rx)
    }

    /// Checks and stores a risk notice from `peer` about a filing shared with it.
    pub async fn notice(
        &self,
        peer: &PeerState,
        notice: Notice,
    ) -> Result<NoticeAck, ExchangeError> {
        let kind = NoticeKind::try_from(notice.kind).unwrap_or(NoticeKind::Unspecified);
        tracing::Span::current().record("kind", kind.as_str_name());
        check_notice(&notice, kind)?;
        let mrn = Mrn::parse(&notice.mrn).map_err(|e| {
            ExchangeError::Malformed(format!("{:?} is not an MRN: {e}", notice.mrn))
        })?;
        let not_shared = || ExchangeError::NotShared {
            mrn: mrn.to_string(),
            peer: peer.id.clone(),
        };
        let entry = self
            .exchange
            .store()
            .entry_caught_up(&mrn)
            .await?
            .ok_or_else(not_shared)?;
        let shared = entry
            .routing
            .as_ref()
            .is_some_and(|facts| self.exchange.routes.sends_to(&peer.id, facts));
        if !shared {
            return Err(not_shared());
        }
        match self.exchange.store().notify(&peer.id, notice).await? {
            Noticed::Stored {
                sequence,
                duplicate,
            } => {
                if !duplicate {
                    self.metrics.notice(&peer.id, kind.as_str_name());
                    tracing::info!(peer = %peer.id, %mrn, kind = kind.as_str_name(), sequence, "risk notice received");
                }
                Ok(NoticeAck {
                    sequence,
                    duplicate,
                })
            }
            Noticed::NotFound => Err(not_shared()),
            Noticed::Refused { code, message } => Err(ExchangeError::InvalidField {
                field: "targets".into(),
                code,
                message,
            }),
        }
    }
}

/// A notice's kind, id, text, targets, requests and control, as a peer may send them (whether
/// its targets are items of the filing is decided with the filing, in the store).
fn check_notice(notice: &Notice, kind: NoticeKind) -> Result<(), ExchangeError> {
    if !crate::store::risk::is_administration_kind(kind) {
        return Err(ExchangeError::Malformed(format!(
            "notice kind {} is not one of assessment complete, referral for information, \
             referral for screening, do not load, control",
            notice.kind
        )));
    }
    if notice.notice_id.is_empty()
        || notice.notice_id.len() > MAX_NOTICE_ID
        || notice.notice_id.chars().any(char::is_control)
    {
        return Err(ExchangeError::Malformed(format!(
            "notice_id must be 1 to {MAX_NOTICE_ID} characters, without control characters"
        )));
    }
    if notice.text.len() > MAX_NOTICE_TEXT {
        return Err(ExchangeError::Malformed(format!(
            "text is longer than {MAX_NOTICE_TEXT} bytes"
        )));
    }
    crate::validate::check_free_text("the notice's text", &notice.text)
        .map_err(ExchangeError::Malformed)?;
    // Within what a timer can hold (years 1970 to 9999).
    if notice.deadline.is_some_and(|d| {
        !(0..=253_402_300_799).contains(&d.seconds) || !(0..1_000_000_000).contains(&d.nanos)
    }) {
        return Err(ExchangeError::Malformed(
            "the deadline is not a time between 1970 and 9999".into(),
        ));
    }
    check_targets("targets", &notice.targets)?;
    check_requests(notice, kind)?;
    check_control(notice, kind)
}

fn invalid(field: String, code: &'static str, message: String) -> ExchangeError {
    ExchangeError::InvalidField {
        field,
        code,
        message,
    }
}

/// Targets with a type and a bounded reference, at most [`MAX_TARGETS`].
fn check_targets(field: &str, targets: &[NoticeTarget]) -> Result<(), ExchangeError> {
    if targets.len() > MAX_TARGETS {
        return Err(invalid(
            field.to_owned(),
            "NOTICE_TOO_MANY_TARGETS",
            format!("at most {MAX_TARGETS} targets"),
        ));
    }
    for (i, target) in targets.iter().enumerate() {
        let known = TargetType::try_from(target.r#type).is_ok_and(|t| t != TargetType::Unspecified);
        if !known
            || target.reference.is_empty()
            || target.reference.len() > 70
            || target.reference.chars().any(char::is_control)
        {
            return Err(invalid(
                format!("{field}[{i}]"),
                "NOTICE_UNKNOWN_TARGET",
                "a target is a house document, container, receptacle or goods item, with a \
                 reference of 1 to 70 characters"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// A referral's requests: unique references, request types and methods from their lists.
fn check_requests(notice: &Notice, kind: NoticeKind) -> Result<(), ExchangeError> {
    if notice.requests.is_empty() {
        return Ok(());
    }
    if !crate::store::risk::is_referral(kind) {
        return Err(invalid(
            "requests".into(),
            "NOTICE_REQUESTS_NOT_REFERRAL",
            "only a referral carries requests".into(),
        ));
    }
    if notice.requests.len() > MAX_REQUESTS {
        return Err(invalid(
            "requests".into(),
            "NOTICE_TOO_MANY_REQUESTS",
            format!("at most {MAX_REQUESTS} requests"),
        ));
    }
    let codes = crate::validate::codes::CodeLists::builtin();
    let mut seen = std::collections::HashSet::new();
    for (i, request) in notice.requests.iter().enumerate() {
        let field = |name: &str| format!("requests[{i}].{name}");
        let reference = &request.reference;
        if reference.is_empty()
            || reference.len() > 35
            || reference.chars().any(char::is_control)
            || !seen.insert(reference.as_str())
        {
            return Err(invalid(
                field("reference"),
                "NOTICE_BAD_REQUEST_REFERENCE",
                "each request has its own reference of 1 to 35 characters".into(),
            ));
        }
        if !codes
            .list(crate::validate::codes::REFERRAL_REQUEST_TYPES)
            .contains(&request.request_type)
        {
            return Err(invalid(
                field("request_type"),
                "NOTICE_UNKNOWN_CODE",
                format!(
                    "{:?} is not in the code list referral-request-types (CL735)",
                    request.request_type
                ),
            ));
        }
        if let Some((j, method)) = request
            .recommended_methods
            .iter()
            .enumerate()
            .find(|(_, m)| {
                !codes
                    .list(crate::validate::codes::SCREENING_METHODS)
                    .contains(m)
            })
        {
            return Err(invalid(
                field(&format!("recommended_methods[{j}]")),
                "NOTICE_UNKNOWN_CODE",
                format!("{method:?} is not in the code list screening-methods (CL724)"),
            ));
        }
        if request.text.len() > MAX_NOTICE_TEXT {
            return Err(ExchangeError::Malformed(format!(
                "{} is longer than {MAX_NOTICE_TEXT} bytes",
                field("text")
            )));
        }
        crate::validate::check_free_text("a request's text", &request.text)
            .map_err(ExchangeError::Malformed)?;
        check_targets(&field("targets"), &request.targets)?;
    }
    Ok(())
}

/// A control notice names the office that controls; no other notice carries a control.
fn check_control(notice: &Notice, kind: NoticeKind) -> Result<(), ExchangeError> {
    let Some(control) = &notice.control else {
        return if kind == NoticeKind::Control {
            Err(invalid(
                "control".into(),
                "NOTICE_CONTROL_MISSING",
                "a control notice names the office that controls".into(),
            ))
        } else {
            Ok(())
        };
    };
    if kind != NoticeKind::Control {
        return Err(invalid(
            "control".into(),
            "NOTICE_CONTROL_NOT_CONTROL",
            "only a control notice carries a control".into(),
        ));
    }
    if !crate::ids::is_customs_office(&control.office) {
        return Err(invalid(
            "control.office".into(),
            "NOTICE_BAD_OFFICE",
            format!(
                "{:?} is not a customs office code (2 letters and 6 letters or digits)",
                control.office
            ),
        ));
    }
    if control.place.len() > 256 {
        return Err(ExchangeError::Malformed(
            "control.place is longer than 256 bytes".into(),
        ));
    }
    crate::validate::check_free_text("the control's place", &control.place)
        .map_err(ExchangeError::Malformed)
}

/// Reads a delivery stream and queues each envelope for the writer, in order.
async fn queue_envelopes<S, T, E>(
    store: crate::store::Store,
    origin: String,
    mut inbound: S,
    pending: mpsc::Sender<Pending>,
    shutdown: CancellationToken,
) where
    S: Stream<Item = Result<T, E>> + Send + Unpin,
    T: Into<EncodedEnvelope>,
    E: std::fmt::Display,
{
    loop {
        let envelope: EncodedEnvelope = tokio::select! {
            () = shutdown.cancelled() => return,
            message = inbound.next() => match message {
                Some(Ok(envelope)) => envelope.into(),
                None => return,
                Some(Err(error)) => {
                    tracing::debug!(peer = %origin, %error, "delivery stream ended");
                    return;
                }
            },
        };
        let sequence = envelope.origin_sequence;
        let next = if envelope.origin != origin {
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
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = "aci.v1.PeerExchange",
                rpc.method = "Deliver",
                peer = %origin,
                mrn = %envelope.mrn,
                origin_sequence = crate::telemetry::number(sequence),
                outcome = tracing::field::Empty,
            );
            let mut envelope = envelope;
            envelope.traceparent =
                crate::telemetry::continue_from(&span, std::mem::take(&mut envelope.traceparent));
            match store.queue_receive(envelope).await {
                Ok(answer) => Pending::Storing(sequence, Box::pin(answer), span),
                Err(e) => {
                    let _ = pending.send(Pending::Failed(e)).await;
                    return;
                }
            }
        };
        if pending.send(next).await.is_err() {
            return;
        }
    }
}

/// Answers each envelope once it is durable, in the stream's order.
async fn acknowledge(
    mut pending: mpsc::Receiver<Pending>,
    answers: mpsc::Sender<Result<DeliveryAck, ExchangeError>>,
    peer: Arc<PeerState>,
    metrics: Arc<Metrics>,
) {
    static STORED: AtomicU64 = AtomicU64::new(0);
    while let Some(next) = pending.recv().await {
        let answer = match next {
            Pending::Failed(error) => Err(ExchangeError::Store(error)),
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
                Err(e) => Err(ExchangeError::Store(e)),
            },
        };
        let failed = answer.is_err();
        if answers.send(answer).await.is_err() || failed {
            break;
        }
    }
    peer.connected.store(false, Ordering::Relaxed);
}

/// Sends `peer` its records from `reader` on, following the durable head, until the feed is
/// closed, the gateway stops, or the log cannot be read.
async fn follow(
    exchange: &Exchange,
    peer: &PeerState,
    reader: Box<dyn LogCursor>,
    feed: &mpsc::Sender<Result<EncodedEnvelope, ExchangeError>>,
    shutdown: &CancellationToken,
) {
    let mut reader = Some(reader);
    let mut durable = exchange.store().durable();
    loop {
        // A long stretch of records for other peers never waits below: look here too.
        if shutdown.is_cancelled() || feed.is_closed() {
            return;
        }
        let durable_now = *durable.borrow_and_update();
        let Some(mut taken) = reader.take() else {
            return;
        };
        if taken.next_seq() > durable_now {
            reader = Some(taken);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = feed.closed() => return,
                changed = durable.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let read = tokio::task::spawn_blocking(move || {
            let records = taken.read_shared(durable_now, FEED_CHUNK);
            (taken, records)
        })
        .await;
        let Ok((back, records)) = read else {
            return;
        };
        reader = Some(back);
        let records = match records {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the log for a feed");
                let _ = feed.send(Err(ExchangeError::LogUnreadable)).await;
                return;
            }
        };
        for record in records {
            match exchange.is_for(&peer.id, &record) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot route a record for a feed");
                    let _ = feed.send(Err(ExchangeError::LogUnreadable)).await;
                    return;
                }
            }
            let sequence = record.sequence;
            if feed
                .send(Ok(envelope_of(&exchange.gateway_id, record)))
                .await
                .is_err()
            {
                return;
            }
            peer.sent.fetch_max(sequence, Ordering::AcqRel);
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
