//! The carrier API (`aci.v1.CarrierGateway`): a thin adapter that authenticates the caller,
//! hands the filing to validation and the store, and translates outcomes to gRPC.

#[cfg(feature = "testing")]
pub mod echo;
pub mod limit;
pub mod pool;
/// Outcomes as gRPC statuses: one mapping, shared with the peer listener.
pub use crate::status;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::exchange::Exchange;
use crate::ids::{Eori, Lrn, Mrn};
use crate::pb::carrier_gateway_server::CarrierGateway;
use crate::pb::submit_request::Filing;
use crate::pb::{
    AmendRequest, ArriveRequest, FilingStatus, GetStatusRequest, InvalidateRequest, Receipt,
    Rejection, SubmitRequest, SubmitResult, amend_request, arrive_request, get_status_request,
    submit_result,
};
use crate::pb::{AnswerReferralRequest, Notification, WatchNotificationsRequest};
use crate::store::{Change, Changed, NewFiling, Registration, Store};
use crate::telemetry::{self, Metrics, Outcome};
use crate::tls::{Identity, PeerInfo};
use crate::validate::Validator;
use tokio_util::sync::CancellationToken;

/// Notifications waiting for the carrier to read them.
const NOTIFICATION_BUFFER: usize = 64;
/// Notifications read from the index at a time.
const NOTIFICATION_CHUNK: usize = 256;
/// Longest referral answer.
const MAX_ANSWER_TEXT: usize = 8192;

/// Filings of one stream being worked on at once.
const STREAM_IN_FLIGHT: usize = 64;
/// Answers of one stream waiting for the client to read them.
const STREAM_ANSWERS: usize = 256;

/// The W3C trace context a carrier sent, if any.
fn traceparent<T>(request: &Request<T>) -> String {
    telemetry::traceparent_of(request.metadata())
}

/// A short label for a gRPC code, for span fields.
fn code_label(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::InvalidArgument => "rejected",
        tonic::Code::AlreadyExists => "conflict",
        tonic::Code::PermissionDenied => "forbidden",
        tonic::Code::ResourceExhausted => "too_large",
        _ => "failed",
    }
}

/// Metadata a development client sends on a plaintext connection to say which carrier it is.
pub const DEV_CARRIER_HEADER: &str = "x-aci-dev-carrier";

/// Who may file for whom.
#[derive(Debug, Default)]
pub struct Access {
    /// Agent EORI → the EORIs it may file for (besides its own).
    pub representatives: HashMap<String, HashSet<String>>,
}

impl Access {
    fn may_act_for(&self, caller: &Eori, filer: &str) -> bool {
        caller.as_str() == filer
            || self
                .representatives
                .get(caller.as_str())
                .is_some_and(|principals| principals.contains(filer))
    }
}

/// The `CarrierGateway` service.
#[derive(Clone, Debug)]
pub struct CarrierService {
    store: Store,
    validator: Arc<Validator>,
    /// Bounds on an XML filing's cost (size from `carrier_api.max_message_bytes`).
    xml_limits: crate::validate::xsd::Limits,
    access: Arc<Access>,
    metrics: Arc<Metrics>,
    /// Routes and peers' progress, for the delivery state in a filing's status.
    exchange: Arc<Exchange>,
    /// Ends notification streams when the gateway stops.
    shutdown: CancellationToken,
    /// Per-carrier limits: writes, reads, filings in flight.
    writes: Option<Arc<limit::Limiter>>,
    reads: Option<Arc<limit::Limiter>>,
    in_flight: Option<(Arc<limit::InFlight>, usize)>,
    /// Where filings are validated, off the async workers.
    pool: pool::ValidationPool,
}

impl CarrierService {
    pub fn new(
        store: Store,
        validator: Arc<Validator>,
        access: Arc<Access>,
        metrics: Arc<Metrics>,
        exchange: Arc<Exchange>,
        shutdown: CancellationToken,
    ) -> std::io::Result<CarrierService> {
        // The gRPC layer already bounds the message; the XML pass bounds nesting, counts, text.
        Ok(CarrierService {
            store,
            validator,
            xml_limits: crate::validate::xsd::Limits {
                max_bytes: 64 * 1024 * 1024,
                ..crate::validate::xsd::Limits::default()
            },
            access,
            metrics,
            exchange,
            shutdown,
            writes: None,
            reads: None,
            in_flight: None,
            pool: pool::ValidationPool::start()?,
        })
    }

    /// Applies per-carrier limits (see [`limit::CarrierLimits`]).
    pub fn with_limits(mut self, limits: limit::CarrierLimits) -> CarrierService {
        let limiter = |rate| Arc::new(limit::Limiter::new(rate));
        self.writes = limits.writes.map(limiter);
        self.reads = limits.reads.map(limiter);
        self.in_flight = limits
            .in_flight
            .map(|limit| (Arc::new(limit::InFlight::default()), limit));
        self
    }

    /// Refuses a write (a filing, an amendment, a change) over the caller's rate, before any
    /// work is spent on it.
    fn throttle(&self, caller: &Eori) -> Result<(), Status> {
        let Some(limiter) = &self.writes else {
            return Ok(());
        };
        limiter.admit(caller).map_err(|wait| {
            self.metrics.filing(0, Outcome::Throttled);
            status::throttled(wait, "write")
        })
    }

    /// Refuses a read (status, notification feed) over the caller's read rate.
    fn throttle_read(&self, caller: &Eori) -> Result<(), Status> {
        let Some(limiter) = &self.reads else {
            return Ok(());
        };
        limiter
            .admit(caller)
            .map_err(|wait| status::throttled(wait, "read"))
    }

    /// Counts a filing in flight for the caller, or refuses it when the caller has as many
    /// in flight as it may.
    fn enter(&self, caller: &Eori) -> Result<Option<limit::InFlightGuard>, Status> {
        let Some((in_flight, limit)) = &self.in_flight else {
            return Ok(None);
        };
        match in_flight.enter(caller, *limit) {
            Some(guard) => Ok(Some(guard)),
            None => {
                self.metrics.filing(0, Outcome::Throttled);
                Err(status::too_many_in_flight(*limit))
            }
        }
    }
}

/// A filing as it arrives: protobuf or XML.
enum Incoming {
    Manifest(Box<crate::pb::Manifest>),
    Xml(Vec<u8>),
}

impl CarrierService {
    /// Validates an incoming filing (authorizing its filer) into what the store takes. A large
    /// filing is validated in the pool (see [`pool`]), in the caller's span.
    async fn accept(
        &self,
        caller: &Eori,
        incoming: Incoming,
        received_at: SystemTime,
        traceparent: String,
    ) -> Result<NewFiling, Status> {
        let validator = Arc::clone(&self.validator);
        let xml_limits = self.xml_limits;
        let span = tracing::Span::current();
        // Unknown until read (an XML filing that fails its schema has none).
        let mut mode = 0;
        let (validated, original, original_type) = match incoming {
            Incoming::Manifest(manifest) => {
                mode = manifest.transport_mode;
                self.authorize(caller, mode, manifest.declarant.as_ref())?;
                // Its original is the manifest's canonical encoding (prost keeps no unknown
                // fields), which the record holds already: not stored twice (see
                // `store::record::original_of`).
                let bytes = prost::Message::encoded_len(&*manifest);
                let validated = self
                    .pool
                    .validate(bytes, move || {
                        span.in_scope(|| validator.validate(*manifest, received_at))
                    })
                    .await
                    .map_err(|e| status::pool_failure(&e))?;
                (validated, None, crate::store::record::PROTOBUF)
            }
            Incoming::Xml(xml) => {
                let (validated, xml) = self
                    .pool
                    .validate(xml.len(), move || {
                        let validated = span
                            .in_scope(|| validator.validate_xml(&xml, &xml_limits, received_at));
                        (validated, xml)
                    })
                    .await
                    .map_err(|e| status::pool_failure(&e))?;
                if let Ok(accepted) = &validated {
                    mode = accepted.manifest.transport_mode;
                    self.authorize(caller, mode, accepted.manifest.declarant.as_ref())?;
                }
                (validated, Some(xml), "application/xml")
            }
        };
        let accepted = match validated {
            Ok(accepted) => accepted,
            Err(report) => {
                self.metrics.filing(mode, Outcome::Rejected);
                self.metrics
                    .findings(report.findings().iter().map(|f| f.code.as_str()));
                tracing::info!(%caller, findings = report.findings().len(), original_type, "filing rejected");
                return Err(status::rejected(&report));
            }
        };
        self.metrics
            .findings(accepted.warnings.iter().map(|f| f.code.as_str()));
        Ok(NewFiling {
            filer: accepted.filer,
            lrn: accepted.lrn,
            digest: accepted.digest,
            manifest: accepted.manifest,
            original: original.unwrap_or_default(),
            original_type,
            warnings: accepted.warnings.iter().map(|f| f.to_proto()).collect(),
            received_at,
            traceparent,
            master_documents: accepted.master_documents,
            house_references: accepted.house_references,
            next_filing_party: accepted.next_filing_party,
        })
    }

    /// Files one submission: validation, then registration; the receipt or the refusal. Traced
    /// as `filing.receive`, continuing the carrier's trace.
    async fn file(
        &self,
        caller: &Eori,
        request: SubmitRequest,
        received_at: SystemTime,
        traceparent: String,
    ) -> Result<Receipt, Status> {
        let span = tracing::info_span!(
            "filing.receive",
            filer = %caller,
            lrn = tracing::field::Empty,
            mrn = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        // Downstream stages (forwarding, the peer) continue from this span.
        let traceparent = telemetry::continue_from(&span, traceparent);
        let filed = self
            .file_traced(caller, request, received_at, traceparent)
            .instrument(span.clone())
            .await;
        span.record(
            "outcome",
            match &filed {
                Ok(_) => "registered",
                Err(status) => code_label(status.code()),
            },
        );
        filed
    }

    async fn file_traced(
        &self,
        caller: &Eori,
        request: SubmitRequest,
        received_at: SystemTime,
        traceparent: String,
    ) -> Result<Receipt, Status> {
        self.throttle(caller)?;
        let _in_flight = self.enter(caller)?;
        let incoming = match request.filing {
            Some(Filing::Manifest(manifest)) => Incoming::Manifest(Box::new(manifest)),
            Some(Filing::Xml(xml)) => Incoming::Xml(xml),
            None => return Err(Status::invalid_argument("the request carries no filing")),
        };
        // Counted from here, so the writer's group commit waits for this filing; the yield lets
        // every filing that came in with it be counted before any of them is validated.
        let arrival = self.store.arrival();
        tokio::task::yield_now().await;
        let filing = self
            .accept(caller, incoming, received_at, traceparent)
            .await?;
        let lrn = filing.lrn.clone();
        let mode = filing.manifest.transport_mode;
        tracing::Span::current().record("lrn", lrn.as_str());
        let document_paths = status::document_paths(&filing.manifest);
        let registration = self
            .store
            .register_arrived(filing, arrival)
            .instrument(tracing::info_span!("store.append"))
            .await
            .map_err(|e| status::store_failure(&e))?;
        if let Registration::Registered(receipt) | Registration::Duplicate(receipt) = &registration
        {
            tracing::Span::current().record("mrn", receipt.mrn.as_str());
        }
        match registration {
            Registration::Registered(receipt) => {
                self.metrics.filing(mode, Outcome::Registered);
                tracing::info!(mrn = %receipt.mrn, %lrn, filer = %receipt.filer, seq = receipt.sequence, "filing registered");
                Ok(receipt)
            }
            Registration::Duplicate(receipt) => {
                self.metrics.filing(mode, Outcome::Duplicate);
                Ok(receipt)
            }
            Registration::Conflict { mrn } => {
                self.metrics.filing(mode, Outcome::Conflict);
                Err(status::conflict(lrn.as_str(), &mrn))
            }
            Registration::DuplicateDocument { document, mrn } => {
                self.metrics.filing(mode, Outcome::Rejected);
                Err(status::duplicate_document(&document, &mrn, &document_paths))
            }
            Registration::NotNextFilingParty { document } => {
                self.metrics.filing(mode, Outcome::Forbidden);
                Err(Status::permission_denied(format!(
                    "master document {document} does not await a house-level filing from {caller}"
                )))
            }
            Registration::PartialFilingExists { document } => {
                self.metrics.filing(mode, Outcome::Rejected);
                Err(status::partial_filing_exists(&document, &document_paths))
            }
        }
    }

    /// The status of one of the caller's filings, or NOT_FOUND.
    fn own_filing(&self, caller: &Eori, mrn: &str) -> Result<(Mrn, FilingStatus), Status> {
        let mrn = Mrn::parse(mrn)
            .map_err(|e| Status::invalid_argument(format!("{mrn:?} is not an MRN: {e}")))?;
        match self
            .store
            .status(&mrn)
            .map_err(|e| status::store_failure(&e))?
        {
            Some(status) if self.access.may_act_for(caller, &status.filer) => Ok((mrn, status)),
            _ => Err(Status::not_found("no such filing of yours")),
        }
    }

    /// Applies a change to one of the caller's filings, traced as `filing.change` in the
    /// caller's trace (the record keeps the span's context, so its forward continues it).
    async fn change(
        &self,
        mrn: Mrn,
        change: Change,
        traceparent: String,
    ) -> Result<FilingStatus, Status> {
        let kind = match &change {
            Change::Amend(_) => "amend",
            Change::Invalidate { .. } => "invalidate",
            Change::Arrive { .. } => "arrive",
            Change::AnswerReferral { .. } => "answer_referral",
        };
        let span = tracing::info_span!("filing.change", %mrn, change = kind);
        let traceparent = telemetry::continue_from(&span, traceparent);
        match self
            .store
            .change(mrn.clone(), change, traceparent)
            .instrument(span)
            .await
            .map_err(|e| status::store_failure(&e))?
        {
            Changed::Applied(status) | Changed::Unchanged(status) => Ok(status),
            Changed::NotFound => Err(Status::not_found("no such filing of yours")),
            Changed::Refused(error) => {
                self.metrics.lifecycle_refused(error.code());
                tracing::info!(%mrn, code = error.code(), "lifecycle change refused");
                Err(status::lifecycle(&mrn, error))
            }
        }
    }

    /// Refuses a filer the caller may not act for, before telling it anything about its filing.
    fn authorize(
        &self,
        caller: &Eori,
        mode: i32,
        declarant: Option<&crate::pb::Party>,
    ) -> Result<(), Status> {
        match declarant {
            Some(declarant)
                if !declarant.eori.is_empty()
                    && !self.access.may_act_for(caller, &declarant.eori) =>
            {
                self.metrics.filing(mode, Outcome::Forbidden);
                Err(Status::permission_denied(format!(
                    "{caller} may not file as {}",
                    declarant.eori
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The authenticated carrier behind a request.
fn caller<T>(request: &Request<T>) -> Result<Eori, Status> {
    let info = PeerInfo::of(request)?;
    if info.insecure {
        // Development plaintext: the caller says who it is. `serve --insecure-dev` warns loudly.
        let claimed = request
            .metadata()
            .get(DEV_CARRIER_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(Eori::parse);
        return claimed.ok_or_else(|| {
            Status::unauthenticated(format!(
                "plaintext development server: send your EORI in the {DEV_CARRIER_HEADER} header"
            ))
        });
    }
    match &info.identity {
        Some(Identity::Carrier(eori)) => Ok(eori.clone()),
        Some(Identity::Admin(id)) => Err(Status::permission_denied(format!(
            "administration {id} cannot use the carrier API"
        ))),
        None => Err(Status::unauthenticated(
            "the client certificate carries no urn:aci:carrier:<EORI> identity",
        )),
    }
}

#[tonic::async_trait]
impl CarrierGateway for CarrierService {
    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<Receipt>, Status> {
        let received_at = SystemTime::now();
        let caller = caller(&request)?;
        let traceparent = traceparent(&request);
        let receipt = self
            .file(&caller, request.into_inner(), received_at, traceparent)
            .await?;
        Ok(Response::new(receipt))
    }

    type SubmitStreamStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<SubmitResult, Status>> + Send>>;

    async fn submit_stream(
        &self,
        request: Request<tonic::Streaming<SubmitRequest>>,
    ) -> Result<Response<Self::SubmitStreamStream>, Status> {
        let caller = caller(&request)?;
        let traceparent = traceparent(&request);
        let mut input = request.into_inner();
        let (answers, output) = tokio::sync::mpsc::channel(STREAM_ANSWERS);
        let service = self.clone();
        tokio::spawn(async move {
            let in_flight = Arc::new(tokio::sync::Semaphore::new(STREAM_IN_FLIGHT));
            let mut position = 0u64;
            loop {
                // Read the next filing only when there is room to work on it.
                let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                    break;
                };
                let request = match input.message().await {
                    Ok(Some(request)) => request,
                    Ok(None) => break,
                    Err(status) => {
                        let _ = answers.send(Err(status)).await;
                        break;
                    }
                };
                position += 1;
                let (service, caller, traceparent, answers) = (
                    service.clone(),
                    caller.clone(),
                    traceparent.clone(),
                    answers.clone(),
                );
                tokio::spawn(async move {
                    let lrn = match &request.filing {
                        Some(Filing::Manifest(m)) => m.lrn.clone(),
                        _ => String::new(),
                    };
                    let outcome = match service
                        .file(&caller, request, SystemTime::now(), traceparent)
                        .await
                    {
                        Ok(receipt) => submit_result::Outcome::Receipt(receipt),
                        Err(status) => submit_result::Outcome::Rejection(Rejection {
                            code: status.code() as i32,
                            message: status.message().to_owned(),
                            report: status::report_of(&status),
                        }),
                    };
                    let lrn = match &outcome {
                        submit_result::Outcome::Receipt(receipt) => receipt.lrn.clone(),
                        _ => lrn,
                    };
                    let answer = SubmitResult {
                        position,
                        lrn,
                        outcome: Some(outcome),
                    };
                    // A client that went away just stops the answers.
                    let _ = answers.send(Ok(answer)).await;
                    drop(permit);
                });
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(output),
        )))
    }

    async fn amend(&self, request: Request<AmendRequest>) -> Result<Response<Receipt>, Status> {
        let received_at = SystemTime::now();
        let caller = caller(&request)?;
        let traceparent = traceparent(&request);
        let request = request.into_inner();
        self.throttle(&caller)?;
        let _in_flight = self.enter(&caller)?;
        let (mrn, _) = self.own_filing(&caller, &request.mrn)?;
        let incoming = match request.filing {
            Some(amend_request::Filing::Manifest(manifest)) => {
                Incoming::Manifest(Box::new(manifest))
            }
            Some(amend_request::Filing::Xml(xml)) => Incoming::Xml(xml),
            None => return Err(Status::invalid_argument("the request carries no filing")),
        };
        let filing = self
            .accept(&caller, incoming, received_at, traceparent.clone())
            .await?;
        let status = self
            .change(mrn.clone(), Change::Amend(Box::new(filing)), traceparent)
            .await?;
        tracing::info!(%mrn, version = status.version, "filing amended");
        status
            .receipt
            .map(Response::new)
            .ok_or_else(|| Status::internal("an amended filing has a receipt"))
    }

    async fn invalidate(
        &self,
        request: Request<InvalidateRequest>,
    ) -> Result<Response<FilingStatus>, Status> {
        let caller = caller(&request)?;
        self.throttle(&caller)?;
        let traceparent = traceparent(&request);
        let request = request.into_inner();
        let reason = request.reason.trim();
        if reason.is_empty() || reason.chars().count() > 512 {
            return Err(Status::invalid_argument(
                "give a reason of 1 to 512 characters",
            ));
        }
        crate::validate::check_free_text("the reason", reason).map_err(Status::invalid_argument)?;
        let (mrn, _) = self.own_filing(&caller, &request.mrn)?;
        let change = Change::Invalidate {
            reason: reason.to_owned(),
            at: SystemTime::now(),
        };
        let status = self.change(mrn.clone(), change, traceparent).await?;
        tracing::info!(%mrn, "filing invalidated");
        Ok(Response::new(status))
    }

    async fn arrive(
        &self,
        request: Request<ArriveRequest>,
    ) -> Result<Response<FilingStatus>, Status> {
        let caller = caller(&request)?;
        self.throttle(&caller)?;
        let traceparent = traceparent(&request);
        let mrn = match request.into_inner().key {
            Some(arrive_request::Key::Mrn(mrn)) => mrn,
            Some(arrive_request::Key::TransportDocument(document)) => self
                .store
                .mrn_by_document(&caller, &document)
                .map_err(|e| status::store_failure(&e))?
                .ok_or_else(|| {
                    Status::not_found(format!("no filing of yours declares {document}"))
                })?
                .to_string(),
            None => {
                return Err(Status::invalid_argument(
                    "give an MRN or a transport document",
                ));
            }
        };
        let (mrn, _) = self.own_filing(&caller, &mrn)?;
        let status = self
            .change(
                mrn.clone(),
                Change::Arrive {
                    at: SystemTime::now(),
                },
                traceparent,
            )
            .await?;
        tracing::info!(%mrn, "arrival recorded");
        Ok(Response::new(status))
    }

    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<FilingStatus>, Status> {
        let caller = caller(&request)?;
        self.throttle_read(&caller)?;
        let found = match request.into_inner().key {
            Some(get_status_request::Key::Mrn(text)) => {
                let mrn = Mrn::parse(&text).map_err(|e| {
                    Status::invalid_argument(format!("{text:?} is not an MRN: {e}"))
                })?;
                self.store.status(&mrn)
            }
            Some(get_status_request::Key::Lrn(text)) => {
                let lrn = Lrn::parse(&text)
                    .ok_or_else(|| Status::invalid_argument(format!("{text:?} is not an LRN")))?;
                self.store.status_by_lrn(&caller, &lrn)
            }
            None => return Err(Status::invalid_argument("give an MRN or an LRN")),
        }
        .map_err(|e| status::store_failure(&e))?;
        // Another filer's filing is reported as absent: its existence is not the caller's business.
        match found {
            Some(mut status) if self.access.may_act_for(&caller, &status.filer) => {
                status.deliveries = self
                    .exchange
                    .deliveries(&status)
                    .map_err(|e| status::store_failure(&e))?;
                Ok(Response::new(status))
            }
            _ => Err(Status::not_found("no such filing of yours")),
        }
    }

    type WatchNotificationsStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<Notification, Status>> + Send>>;

    async fn watch_notifications(
        &self,
        request: Request<WatchNotificationsRequest>,
    ) -> Result<Response<Self::WatchNotificationsStream>, Status> {
        let caller = caller(&request)?;
        self.throttle_read(&caller)?;
        let mut after = request.into_inner().after_sequence;
        // The caller's own filings and those of the parties it represents.
        let mut filers = vec![caller.to_string()];
        if let Some(principals) = self.access.representatives.get(caller.as_str()) {
            filers.extend(principals.iter().cloned());
        }
        let (out, out_rx) = tokio::sync::mpsc::channel(NOTIFICATION_BUFFER);
        let store = self.store.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut durable = store.durable();
            loop {
                durable.borrow_and_update();
                let mut batch = Vec::new();
                for filer in &filers {
                    match store
                        .index()
                        .notifications(filer, after, NOTIFICATION_CHUNK)
                    {
                        Ok(found) => batch.extend(found),
                        Err(e) => {
                            let failure = status::store_failure(&e.into());
                            let _ = out.send(Err(failure)).await;
                            return;
                        }
                    }
                }
                batch.sort_by_key(|n| n.sequence);
                batch.truncate(NOTIFICATION_CHUNK);
                let full = batch.len() == NOTIFICATION_CHUNK;
                for notification in batch {
                    after = notification.sequence;
                    if out.send(Ok(notification)).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = out.closed() => return,
                    changed = durable.changed() => if changed.is_err() { return },
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out_rx),
        )))
    }

    async fn answer_referral(
        &self,
        request: Request<AnswerReferralRequest>,
    ) -> Result<Response<FilingStatus>, Status> {
        let at = SystemTime::now();
        let caller = caller(&request)?;
        self.throttle(&caller)?;
        let traceparent = traceparent(&request);
        let request = request.into_inner();
        if request.text.trim().is_empty() || request.text.len() > MAX_ANSWER_TEXT {
            return Err(Status::invalid_argument(format!(
                "the answer's text must be 1 to {MAX_ANSWER_TEXT} bytes"
            )));
        }
        crate::validate::check_free_text("the answer's text", &request.text)
            .map_err(Status::invalid_argument)?;
        let (mrn, current) = self.own_filing(&caller, &request.mrn)?;
        let administration = current
            .notices
            .iter()
            .find(|n| n.notice_id == request.notice_id)
            .map(|n| n.administration.clone())
            .unwrap_or_default();
        let status = self
            .change(
                mrn.clone(),
                Change::AnswerReferral {
                    administration: administration.clone(),
                    notice_id: request.notice_id,
                    text: request.text,
                    at,
                },
                traceparent,
            )
            .await?;
        tracing::info!(%mrn, %administration, "referral answered");
        Ok(Response::new(status))
    }
}
