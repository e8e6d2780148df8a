//! The carrier API (`aci.v1.CarrierGateway`): a thin gRPC adapter over the filing service.
//! Each method reads who the caller is and the trace it continues, calls one use-case of
//! [`FilingService`], and maps its error with [`crate::status`].

#[cfg(feature = "testing")]
pub mod echo;

use std::sync::Arc;
use std::time::SystemTime;

use tonic::{Request, Response, Status};

use crate::filing::FilingService;
use crate::ids::Eori;
use crate::pb::carrier_gateway_server::CarrierGateway;
use crate::pb::submit_request::Filing;
use crate::pb::{
    AmendRequest, AnswerReferralRequest, ArrivalNotification, ArrivalRegistration, ArrivalResult,
    ArriveRequest, FilingStatus, GetStatusRequest, InvalidateRequest, Notification, Receipt,
    Rejection, SubmitRequest, SubmitResult, WatchNotificationsRequest, arrival_result,
    submit_result,
};
use crate::telemetry;
use crate::tls::{Identity, PeerInfo};

/// Filings of one stream being worked on at once.
const STREAM_IN_FLIGHT: usize = 64;
/// Answers of one stream waiting for the client to read them.
const STREAM_ANSWERS: usize = 256;

/// Metadata a development client sends on a plaintext connection to say which carrier it is.
pub const DEV_CARRIER_HEADER: &str = "x-aci-dev-carrier";

/// The `CarrierGateway` service.
#[derive(Clone, Debug)]
pub struct CarrierService {
    filings: FilingService,
}

impl CarrierService {
    pub fn new(filings: FilingService) -> CarrierService {
        CarrierService { filings }
    }
}

/// The authenticated carrier behind a request, and the W3C trace context it sent (if any).
fn caller<T>(request: &Request<T>) -> Result<(Eori, String), Status> {
    let info = PeerInfo::of(request)?;
    let traceparent = telemetry::traceparent_of(request.metadata());
    if info.insecure {
        // Development plaintext: the caller says who it is. `serve --insecure-dev` warns loudly.
        let claimed = request
            .metadata()
            .get(DEV_CARRIER_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(Eori::parse);
        return claimed.map(|eori| (eori, traceparent)).ok_or_else(|| {
            Status::unauthenticated(format!(
                "plaintext development server: send your EORI in the {DEV_CARRIER_HEADER} header"
            ))
        });
    }
    match &info.identity {
        Some(Identity::Carrier(eori)) => Ok((eori.clone(), traceparent)),
        Some(Identity::Admin(id)) => Err(Status::permission_denied(format!(
            "administration {id} cannot use the carrier API"
        ))),
        None => Err(Status::unauthenticated(
            "the client certificate carries no urn:aci:carrier:<EORI> identity",
        )),
    }
}

type Stream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl CarrierGateway for CarrierService {
    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<Receipt>, Status> {
        let received_at = SystemTime::now();
        let (caller, traceparent) = caller(&request)?;
        let filed = self
            .filings
            .file(&caller, request.into_inner(), received_at, traceparent);
        Ok(Response::new(filed.await?))
    }

    type SubmitStreamStream = Stream<SubmitResult>;

    async fn submit_stream(
        &self,
        request: Request<tonic::Streaming<SubmitRequest>>,
    ) -> Result<Response<Self::SubmitStreamStream>, Status> {
        let (caller, traceparent) = caller(&request)?;
        let (answers, output) = tokio::sync::mpsc::channel(STREAM_ANSWERS);
        let stream = FilingStream {
            filings: self.filings.clone(),
            caller,
            traceparent,
            answers,
        };
        tokio::spawn(stream.run(request.into_inner()));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(output),
        )))
    }

    async fn amend(&self, request: Request<AmendRequest>) -> Result<Response<Receipt>, Status> {
        let received_at = SystemTime::now();
        let (caller, traceparent) = caller(&request)?;
        let amended = self
            .filings
            .amend(&caller, request.into_inner(), received_at, traceparent);
        Ok(Response::new(amended.await?))
    }

    async fn invalidate(
        &self,
        request: Request<InvalidateRequest>,
    ) -> Result<Response<FilingStatus>, Status> {
        let (caller, traceparent) = caller(&request)?;
        let invalidated = self
            .filings
            .invalidate(&caller, request.into_inner(), traceparent);
        Ok(Response::new(invalidated.await?))
    }

    async fn arrive(
        &self,
        request: Request<ArriveRequest>,
    ) -> Result<Response<FilingStatus>, Status> {
        let (caller, traceparent) = caller(&request)?;
        let arrived = self
            .filings
            .arrive(&caller, request.into_inner(), traceparent);
        Ok(Response::new(arrived.await?))
    }

    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<FilingStatus>, Status> {
        let (caller, _) = caller(&request)?;
        Ok(Response::new(
            self.filings.status(&caller, request.into_inner()).await?,
        ))
    }

    type WatchNotificationsStream = Stream<Notification>;

    async fn watch_notifications(
        &self,
        request: Request<WatchNotificationsRequest>,
    ) -> Result<Response<Self::WatchNotificationsStream>, Status> {
        use tokio_stream::StreamExt;
        let (caller, _) = caller(&request)?;
        let feed = self.filings.notifications(&caller, request.into_inner())?;
        let feed = tokio_stream::wrappers::ReceiverStream::new(feed).map(|n| Ok(n?));
        Ok(Response::new(Box::pin(feed)))
    }

    async fn answer_referral(
        &self,
        request: Request<AnswerReferralRequest>,
    ) -> Result<Response<FilingStatus>, Status> {
        let (caller, traceparent) = caller(&request)?;
        let answered = self
            .filings
            .answer_referral(&caller, request.into_inner(), traceparent);
        Ok(Response::new(answered.await?))
    }

    async fn register_arrival(
        &self,
        request: Request<ArrivalNotification>,
    ) -> Result<Response<ArrivalRegistration>, Status> {
        let (caller, traceparent) = caller(&request)?;
        let arrivals = self
            .filings
            .register_arrival(&caller, request.into_inner(), traceparent)
            .await?;
        let results = arrivals
            .into_iter()
            .map(|(key, arrived)| ArrivalResult {
                key,
                outcome: Some(match arrived {
                    Ok(status) => arrival_result::Outcome::Status(status),
                    Err(error) => {
                        let status = Status::from(error);
                        arrival_result::Outcome::Rejection(Rejection {
                            code: status.code() as i32,
                            message: status.message().to_owned(),
                            report: None,
                        })
                    }
                }),
            })
            .collect();
        Ok(Response::new(ArrivalRegistration { results }))
    }
}

/// One `SubmitStream` call: each filing read is filed concurrently with the others (at most
/// [`STREAM_IN_FLIGHT`] at once) and answered with its position, in the order answers come.
struct FilingStream {
    filings: FilingService,
    caller: Eori,
    traceparent: String,
    answers: tokio::sync::mpsc::Sender<Result<SubmitResult, Status>>,
}

impl FilingStream {
    async fn run(self, mut input: tonic::Streaming<SubmitRequest>) {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(STREAM_IN_FLIGHT));
        let mut position = 0u64;
        loop {
            // Read the next filing only when there is room to work on it.
            let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                return;
            };
            let request = match input.message().await {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(status) => {
                    let _ = self.answers.send(Err(status)).await;
                    return;
                }
            };
            position += 1;
            let (filings, caller, traceparent, answers) = (
                self.filings.clone(),
                self.caller.clone(),
                self.traceparent.clone(),
                self.answers.clone(),
            );
            tokio::spawn(async move {
                let lrn = match &request.filing {
                    Some(Filing::Manifest(m)) => m.lrn.clone(),
                    _ => String::new(),
                };
                let filed = filings
                    .file(&caller, request, SystemTime::now(), traceparent)
                    .await;
                let (lrn, outcome) = match filed {
                    Ok(receipt) => (
                        receipt.lrn.clone(),
                        submit_result::Outcome::Receipt(receipt),
                    ),
                    Err(error) => (lrn, rejection(Status::from(error))),
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
    }
}

/// A refused filing of a stream: its status as a `Rejection` (code, message, findings).
fn rejection(status: Status) -> submit_result::Outcome {
    submit_result::Outcome::Rejection(Rejection {
        code: status.code() as i32,
        message: status.message().to_owned(),
        report: crate::status::report_of(&status),
    })
}
