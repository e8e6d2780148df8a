//! The filing service: the carrier use-cases — file, amend, invalidate, arrive, status, the
//! notification feed, answer a referral — and who may do them (a carrier acts for itself and
//! for the principals it represents; it sees and changes only their filings).
//!
//! It knows nothing of gRPC: the carrier API (`ingest`) authenticates the caller, calls one
//! method here, and maps the [`FilingError`] with `crate::status`. Per-carrier limits
//! ([`limit`]) are applied here, before any work is spent; large filings are validated in the
//! [`pool`].

mod answer;
mod error;
mod feed;
pub mod limit;
pub mod pool;

pub use self::error::{DocumentPaths, FilingError};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::exchange::Exchange;
use crate::ids::{Eori, Lrn, Mrn};
use crate::pb::store::FilingEntry;
use crate::pb::{
    AmendRequest, ArriveRequest, FilingStatus, GetStatusRequest, InvalidateRequest, Manifest,
    Receipt, SubmitRequest, amend_request, arrive_request, get_status_request, submit_request,
};
use crate::store::{Change, Changed, NewFiling, Reads, Registration, Store, StoreError};
use crate::telemetry::{self, FilingAnswer, Metrics};
use crate::validate::Validator;

/// The carrier API's service, as the spans of its calls name it (`rpc.service`).
const CARRIER_SERVICE: &str = "aci.v1.CarrierGateway";
/// Longest invalidation reason, in characters.
const MAX_REASON_CHARS: usize = 512;

/// Who may file for whom.
#[derive(Debug, Default)]
pub struct Access {
    /// Agent EORI → the EORIs it may file for (besides its own).
    pub representatives: HashMap<String, HashSet<String>>,
}

impl Access {
    /// Whether `caller` may act for `filer`: itself, or a principal it represents.
    pub fn may_act_for(&self, caller: &Eori, filer: &str) -> bool {
        caller.as_str() == filer
            || self
                .representatives
                .get(caller.as_str())
                .is_some_and(|principals| principals.contains(filer))
    }

    /// The filers whose filings `caller` sees: itself and its principals.
    pub fn filers_of(&self, caller: &Eori) -> Vec<String> {
        let mut filers = vec![caller.to_string()];
        if let Some(principals) = self.representatives.get(caller.as_str()) {
            filers.extend(principals.iter().cloned());
        }
        filers
    }
}

/// A filing as it arrives: protobuf or XML.
pub enum Incoming {
    Manifest(Box<Manifest>),
    Xml(Vec<u8>),
}

impl Incoming {
    fn of_submit(filing: Option<submit_request::Filing>) -> Result<Incoming, FilingError> {
        match filing {
            Some(submit_request::Filing::Manifest(m)) => Ok(Incoming::Manifest(m)),
            Some(submit_request::Filing::Xml(xml)) => Ok(Incoming::Xml(xml)),
            None => Err(no_filing()),
        }
    }

    fn of_amend(filing: Option<amend_request::Filing>) -> Result<Incoming, FilingError> {
        match filing {
            Some(amend_request::Filing::Manifest(m)) => Ok(Incoming::Manifest(m)),
            Some(amend_request::Filing::Xml(xml)) => Ok(Incoming::Xml(xml)),
            None => Err(no_filing()),
        }
    }

    /// Its size as validation sees it: the encoded manifest, or the XML document.
    fn bytes(&self) -> usize {
        match self {
            Incoming::Manifest(manifest) => prost::Message::encoded_len(&**manifest),
            Incoming::Xml(xml) => xml.len(),
        }
    }
}

fn no_filing() -> FilingError {
    FilingError::Malformed("the request carries no filing".into())
}

/// The carrier use-cases over one store.
#[derive(Clone, Debug)]
pub struct FilingService {
    store: Store,
    validator: Arc<Validator>,
    /// Bounds on an XML filing's cost (the message size is bounded by the listener).
    xml_limits: crate::validate::xsd::Limits,
    access: Arc<Access>,
    metrics: Arc<Metrics>,
    /// Routes and peers' progress, for the delivery state in a filing's status.
    exchange: Arc<Exchange>,
    /// Ends notification feeds when the gateway stops.
    shutdown: CancellationToken,
    /// Per-carrier limits: writes, reads, filings in flight.
    writes: Option<Arc<limit::Limiter>>,
    reads: Option<Arc<limit::Limiter>>,
    in_flight: Option<(Arc<limit::InFlight>, usize)>,
    /// Where large filings are validated, off the async workers.
    pool: pool::ValidationPool,
    /// Largest total size of one referral answer's attachments.
    max_attachment_bytes: usize,
}

impl FilingService {
    pub fn new(
        store: Store,
        validator: Arc<Validator>,
        access: Arc<Access>,
        metrics: Arc<Metrics>,
        exchange: Arc<Exchange>,
        shutdown: CancellationToken,
    ) -> std::io::Result<FilingService> {
        Ok(FilingService {
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
            max_attachment_bytes: 1024 * 1024,
        })
    }

    /// Bounds the total size of one referral answer's attachments.
    pub fn with_attachment_limit(mut self, bytes: usize) -> FilingService {
        self.max_attachment_bytes = bytes;
        self
    }

    /// Applies per-carrier limits (see [`limit::CarrierLimits`]).
    pub fn with_limits(mut self, limits: limit::CarrierLimits) -> FilingService {
        let limiter = |rate| Arc::new(limit::Limiter::new(rate));
        self.writes = limits.writes.map(limiter);
        self.reads = limits.reads.map(limiter);
        self.in_flight = limits
            .in_flight
            .map(|limit| (Arc::new(limit::InFlight::default()), limit));
        self
    }

    /// Files one submission: validation, then registration; the receipt (the original one for
    /// an idempotent retry) or why not. Traced as `filing.receive`, continuing the carrier's
    /// trace.
    pub async fn file(
        &self,
        caller: &Eori,
        request: SubmitRequest,
        received_at: SystemTime,
        traceparent: String,
    ) -> Result<Receipt, FilingError> {
        let span = tracing::info_span!(
            "filing.receive",
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = CARRIER_SERVICE,
            rpc.method = "Submit",
            filer = %caller,
            lrn = tracing::field::Empty,
            mrn = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        // Downstream stages (forwarding, the peer) continue from this span.
        let traceparent = telemetry::continue_from(&span, traceparent);
        let filed = self
            .register(caller, request, received_at, traceparent)
            .instrument(span.clone())
            .await;
        // A registration recorded whether it was new or an idempotent retry.
        if let Err(error) = &filed {
            span.record("outcome", error.label());
        }
        filed
    }

    async fn register(
        &self,
        caller: &Eori,
        request: SubmitRequest,
        received_at: SystemTime,
        traceparent: String,
    ) -> Result<Receipt, FilingError> {
        let _in_flight = self.admit_filing(caller)?;
        let incoming = Incoming::of_submit(request.filing)?;
        // A small filing is counted from here, so the writer's group commit waits for it; the
        // yield lets every filing that came in with it be counted before any of them is
        // validated. A large one is counted once validated: the commit must not wait for a
        // validation of milliseconds in the pool (other carriers' filings would wait with it).
        let bytes = incoming.bytes();
        let early = (bytes < crate::store::LARGE_FILING).then(|| self.store.arrival());
        tokio::task::yield_now().await;
        let filing = self
            .accept(caller, incoming, bytes, received_at, traceparent)
            .await?;
        let arrival = early.unwrap_or_else(|| self.store.arrival());
        let lrn = filing.lrn.clone();
        let mode = filing.manifest.transport_mode;
        let paths = crate::status::document_paths(&filing.manifest);
        let registration = self
            .store
            .register_arrived(filing, arrival)
            .instrument(tracing::info_span!("store.append"))
            .await?;
        let (answer, result) = match registration {
            Registration::Registered(receipt) => {
                tracing::info!(mrn = %receipt.mrn, %lrn, filer = %receipt.filer, seq = receipt.sequence, "filing registered");
                (FilingAnswer::Registered, Ok(receipt))
            }
            Registration::Duplicate(receipt) => {
                tracing::info!(mrn = %receipt.mrn, %lrn, filer = %receipt.filer, "filing resubmitted with the same content: its original receipt");
                (FilingAnswer::Duplicate, Ok(receipt))
            }
            Registration::Conflict { mrn } => (
                FilingAnswer::Conflict,
                Err(FilingError::Conflict { lrn, mrn }),
            ),
            Registration::DuplicateDocument { document, mrn } => (
                FilingAnswer::Rejected,
                Err(FilingError::DuplicateDocument {
                    document,
                    mrn,
                    paths,
                }),
            ),
            Registration::NotNextFilingParty { document } => (
                FilingAnswer::Forbidden,
                Err(FilingError::NotNextFilingParty {
                    document,
                    caller: caller.clone(),
                }),
            ),
            Registration::PartialFilingExists { document } => (
                FilingAnswer::Rejected,
                Err(FilingError::PartialFilingExists { document, paths }),
            ),
        };
        self.metrics.filing(mode, answer);
        let span = tracing::Span::current();
        span.record("outcome", answer.label());
        if let Ok(receipt) = &result {
            span.record("mrn", receipt.mrn.as_str());
        }
        result
    }

    /// Amends one of the caller's filings with a new version; its receipt.
    pub async fn amend(
        &self,
        caller: &Eori,
        request: AmendRequest,
        received_at: SystemTime,
        traceparent: String,
    ) -> Result<Receipt, FilingError> {
        let _in_flight = self.admit_filing(caller)?;
        let (mrn, _) = self.own_filing(caller, &request.mrn).await?;
        let incoming = Incoming::of_amend(request.filing)?;
        let bytes = incoming.bytes();
        let filing = self
            .accept(caller, incoming, bytes, received_at, traceparent.clone())
            .await?;
        let status = self
            .change(mrn.clone(), Change::Amend(Box::new(filing)), traceparent)
            .await?;
        tracing::info!(%mrn, version = status.version, "filing amended");
        status.receipt.ok_or_else(|| {
            tracing::error!(%mrn, "an amended filing has no receipt");
            FilingError::Internal("an amended filing has a receipt".into())
        })
    }

    /// Invalidates one of the caller's filings, for a reason.
    pub async fn invalidate(
        &self,
        caller: &Eori,
        request: InvalidateRequest,
        traceparent: String,
    ) -> Result<FilingStatus, FilingError> {
        self.throttle(caller)?;
        let reason = request.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(FilingError::Malformed(format!(
                "give a reason of 1 to {MAX_REASON_CHARS} characters"
            )));
        }
        crate::validate::check_free_text("the reason", reason).map_err(FilingError::Malformed)?;
        let (mrn, _) = self.own_filing(caller, &request.mrn).await?;
        let change = Change::Invalidate {
            reason: reason.to_owned(),
            at: SystemTime::now(),
        };
        let status = self.change(mrn.clone(), change, traceparent).await?;
        tracing::info!(%mrn, "filing invalidated");
        Ok(status)
    }

    /// Records the arrival of the goods of one of the caller's filings (by MRN, or by a master
    /// transport document it declared).
    pub async fn arrive(
        &self,
        caller: &Eori,
        request: ArriveRequest,
        traceparent: String,
    ) -> Result<FilingStatus, FilingError> {
        self.throttle(caller)?;
        let mrn = match request.key {
            Some(arrive_request::Key::Mrn(mrn)) => mrn,
            Some(arrive_request::Key::TransportDocument(document)) => self
                .document_mrn(caller, &document)
                .await?
                .ok_or_else(|| {
                    FilingError::NotFound(format!("no filing of yours declares {document}"))
                })?
                .to_string(),
            None => {
                return Err(FilingError::Malformed(
                    "give an MRN or a transport document".into(),
                ));
            }
        };
        let (mrn, _) = self.own_filing(caller, &mrn).await?;
        let change = Change::Arrive {
            at: SystemTime::now(),
            facts: None,
        };
        let status = self.change(mrn.clone(), change, traceparent).await?;
        tracing::info!(%mrn, "arrival recorded");
        Ok(status)
    }

    /// The status of one of the caller's filings, with its deliveries to peers; with a shared
    /// log, including every change acknowledged at any replica before the call.
    pub async fn status(
        &self,
        caller: &Eori,
        request: GetStatusRequest,
    ) -> Result<FilingStatus, FilingError> {
        self.throttle_read(caller)?;
        let key = match request.key {
            Some(get_status_request::Key::Mrn(text)) => StatusKey::Mrn(parse_mrn(&text)?),
            Some(get_status_request::Key::Lrn(text)) => StatusKey::Lrn(
                caller.clone(),
                Lrn::parse(&text)
                    .ok_or_else(|| FilingError::Malformed(format!("{text:?} is not an LRN")))?,
            ),
            None => return Err(FilingError::Malformed("give an MRN or an LRN".into())),
        };
        let found = self
            .read_acknowledged(move |store, reads| key.entry(store, reads))
            .await?;
        // Another filer's filing is reported as absent: its existence is not the caller's business.
        let Some(mut entry) = found else {
            return Err(not_yours());
        };
        match entry.status.take() {
            Some(mut status) if self.access.may_act_for(caller, &status.filer) => {
                status.deliveries = self
                    .exchange
                    .deliveries(&status, entry.routing.as_ref())
                    .map_err(FilingError::Unreadable)?;
                Ok(status)
            }
            _ => Err(not_yours()),
        }
    }

    /// Validates an incoming filing of `bytes` (authorizing its filer) into what the store
    /// takes. A large filing is validated in the pool, in the caller's span.
    async fn accept(
        &self,
        caller: &Eori,
        incoming: Incoming,
        bytes: usize,
        received_at: SystemTime,
        traceparent: String,
    ) -> Result<NewFiling, FilingError> {
        let validator = Arc::clone(&self.validator);
        let xml_limits = self.xml_limits;
        let span = tracing::Span::current();
        // Unknown until read (an XML filing that fails its schema has none).
        let mut mode = 0;
        let (validated, original, original_type) = match incoming {
            Incoming::Manifest(manifest) => {
                mode = manifest.transport_mode;
                // Readable before validation, so a refused filing's span names it too.
                if !manifest.lrn.is_empty() {
                    span.record("lrn", manifest.lrn.as_str());
                }
                self.authorize(caller, mode, manifest.declarant.as_ref())?;
                // Its original is the manifest's canonical encoding (prost keeps no unknown
                // fields), which the record holds already: not stored twice (see
                // `store::record::original_of`).
                let validated = self
                    .pool
                    .validate(bytes, move || {
                        span.in_scope(|| validator.validate(manifest, received_at))
                    })
                    .await?;
                (validated, None, crate::store::record::PROTOBUF)
            }
            Incoming::Xml(xml) => {
                let (validated, xml) = self
                    .pool
                    .validate(bytes, move || {
                        let validated = span
                            .in_scope(|| validator.validate_xml(&xml, &xml_limits, received_at));
                        (validated, xml)
                    })
                    .await?;
                if let Ok(accepted) = &validated {
                    mode = accepted.manifest.transport_mode;
                    tracing::Span::current().record("lrn", accepted.lrn.as_str());
                    self.authorize(caller, mode, accepted.manifest.declarant.as_ref())?;
                }
                (validated, Some(xml), "application/xml")
            }
        };
        let accepted = match validated {
            Ok(accepted) => accepted,
            Err(report) => {
                self.metrics.filing(mode, FilingAnswer::Rejected);
                self.metrics
                    .findings(report.findings().iter().map(|f| f.code.as_str()));
                tracing::info!(%caller, findings = report.findings().len(), original_type, "filing rejected");
                return Err(FilingError::Rejected(Box::new(report)));
            }
        };
        self.metrics
            .findings(accepted.warnings.iter().map(|f| f.code.as_str()));
        Ok(NewFiling {
            filer: accepted.filer,
            lrn: accepted.lrn,
            digest: accepted.digest,
            version_1_digest: accepted.version_1_digest,
            manifest: accepted.manifest,
            manifest_encoding: Some(accepted.encoded),
            original: original.unwrap_or_default(),
            original_type,
            submitted_bytes: bytes,
            warnings: accepted.warnings.iter().map(|f| f.to_proto()).collect(),
            received_at,
            traceparent,
            master_documents: accepted.master_documents,
            house_references: accepted.house_references,
            next_filing_party: accepted.next_filing_party,
            due: accepted.due,
        })
    }

    /// Refuses a filer the caller may not act for, before telling it anything about its filing.
    fn authorize(
        &self,
        caller: &Eori,
        mode: i32,
        declarant: Option<&crate::pb::Party>,
    ) -> Result<(), FilingError> {
        match declarant {
            Some(declarant)
                if !declarant.eori.is_empty()
                    && !self.access.may_act_for(caller, &declarant.eori) =>
            {
                self.metrics.filing(mode, FilingAnswer::Forbidden);
                Err(FilingError::Forbidden(format!(
                    "{caller} may not file as {}",
                    declarant.eori
                )))
            }
            _ => Ok(()),
        }
    }

    /// The filing in which the caller last declared a master transport document, as of every
    /// write acknowledged before the call (a later filing may have declared it again).
    async fn document_mrn(
        &self,
        caller: &Eori,
        document: &str,
    ) -> Result<Option<Mrn>, FilingError> {
        let (caller, document) = (caller.clone(), document.to_owned());
        let document_mrn =
            move |store: &Store, reads| store.mrn_by_document(&caller, &document, reads);
        self.read_acknowledged(document_mrn).await
    }

    /// Reads the index as of every write acknowledged before the call (with a shared log, at
    /// any replica). A failure is a failed read: the request changed nothing.
    async fn read_acknowledged<T: Send + 'static>(
        &self,
        read: impl Fn(&Store, Reads) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, FilingError> {
        self.store
            .caught_up()
            .await
            .map_err(FilingError::Unreadable)?;
        self.store
            .read_index(read)
            .await
            .map_err(FilingError::Unreadable)
    }

    /// With a shared log, a filing not (yet) in this replica's index is looked for again once
    /// the index has caught up with the log: it may have been filed at another replica.
    async fn own_filing(
        &self,
        caller: &Eori,
        mrn: &str,
    ) -> Result<(Mrn, FilingStatus), FilingError> {
        let mrn = parse_mrn(mrn)?;
        let found = self.store.entry_caught_up(&mrn).await?;
        match found.and_then(|entry| entry.status) {
            Some(status) if self.access.may_act_for(caller, &status.filer) => Ok((mrn, status)),
            _ => Err(not_yours()),
        }
    }

    /// Applies a change to one of the caller's filings, traced as `filing.change` in the
    /// caller's trace (the record keeps the span's context, so its forward continues it).
    async fn change(
        &self,
        mrn: Mrn,
        change: Change,
        traceparent: String,
    ) -> Result<FilingStatus, FilingError> {
        let (kind, method) = match &change {
            Change::Amend(_) => ("amend", "Amend"),
            Change::Invalidate { .. } => ("invalidate", "Invalidate"),
            Change::Arrive { .. } => ("arrive", "Arrive"),
            Change::AnswerReferral { .. } => ("answer_referral", "AnswerReferral"),
            Change::Fire(_) => ("timer", "Timer"),
        };
        let span = tracing::info_span!(
            "filing.change",
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = CARRIER_SERVICE,
            rpc.method = method,
            %mrn,
            change = kind,
        );
        let traceparent = telemetry::continue_from(&span, traceparent);
        match self
            .store
            .change(mrn.clone(), change, traceparent)
            .instrument(span)
            .await?
        {
            Changed::Applied(status) | Changed::Unchanged(status) => Ok(status),
            Changed::NotFound => Err(not_yours()),
            Changed::Refused(refusal) => {
                self.metrics.lifecycle_refused(refusal.code());
                tracing::info!(%mrn, code = refusal.code(), "lifecycle change refused");
                Err(FilingError::Refused { mrn, refusal })
            }
        }
    }

    /// Refuses a write (a filing, an amendment, a change) over the caller's rate, before any
    /// work is spent on it.
    fn throttle(&self, caller: &Eori) -> Result<(), FilingError> {
        let Some(limiter) = &self.writes else {
            return Ok(());
        };
        limiter.admit(caller).map_err(|wait| {
            self.metrics.filing(0, FilingAnswer::Throttled);
            FilingError::Throttled {
                wait,
                kind: "write",
            }
        })
    }

    /// Refuses a read (status, notification feed) over the caller's read rate.
    fn throttle_read(&self, caller: &Eori) -> Result<(), FilingError> {
        let Some(limiter) = &self.reads else {
            return Ok(());
        };
        limiter
            .admit(caller)
            .map_err(|wait| FilingError::Throttled { wait, kind: "read" })
    }

    /// Admits a filing or amendment: within the caller's write rate, and counted in flight
    /// until the guard is dropped.
    fn admit_filing(&self, caller: &Eori) -> Result<Option<limit::InFlightGuard>, FilingError> {
        self.throttle(caller)?;
        self.enter(caller)
    }

    /// Counts a filing in flight for the caller, or refuses it when the caller has as many
    /// in flight as it may.
    fn enter(&self, caller: &Eori) -> Result<Option<limit::InFlightGuard>, FilingError> {
        let Some((in_flight, limit)) = &self.in_flight else {
            return Ok(None);
        };
        match in_flight.enter(caller, *limit) {
            Some(guard) => Ok(Some(guard)),
            None => {
                self.metrics.filing(0, FilingAnswer::Throttled);
                Err(FilingError::TooManyInFlight { limit: *limit })
            }
        }
    }
}

fn parse_mrn(text: &str) -> Result<Mrn, FilingError> {
    Mrn::parse(text).map_err(|e| FilingError::Malformed(format!("{text:?} is not an MRN: {e}")))
}

/// What a status query names: an MRN, or a filer's LRN.
enum StatusKey {
    Mrn(Mrn),
    Lrn(Eori, Lrn),
}

impl StatusKey {
    /// The index entry of the filing named, read as `reads` allows.
    fn entry(&self, store: &Store, reads: Reads) -> Result<Option<FilingEntry>, StoreError> {
        match self {
            StatusKey::Mrn(mrn) => store.entry(mrn, reads),
            StatusKey::Lrn(filer, lrn) => match store.mrn_for(filer, lrn, reads)? {
                Some(mrn) => store.entry(&mrn, reads),
                None => Ok(None),
            },
        }
    }
}

fn not_yours() -> FilingError {
    FilingError::NotFound("no such filing of yours".into())
}
