//! A carrier API that answers without validating or storing anything: the ceiling of the stack
//! itself (TLS, HTTP/2, gRPC, protobuf) on this machine, for benchmarks to divide by
//! (`serve --echo`). Never for production: it accepts everything and keeps nothing.

use tonic::{Request, Response, Status};

use crate::pb::carrier_gateway_server::CarrierGateway;
use crate::pb::submit_request::Filing;
use crate::pb::{
    AmendRequest, AnswerReferralRequest, ArriveRequest, FilingStatus, GetStatusRequest,
    InvalidateRequest, Notification, Receipt, SubmitRequest, SubmitResult,
    WatchNotificationsRequest, submit_result,
};

/// The echo carrier API: a receipt naming the LRN, at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoCarrier;

fn receipt(request: &SubmitRequest) -> Receipt {
    Receipt {
        lrn: match &request.filing {
            Some(Filing::Manifest(manifest)) => manifest.lrn.clone(),
            _ => String::new(),
        },
        ..Receipt::default()
    }
}

/// The echo server keeps nothing, so there is no filing to look up or change.
fn not_here() -> Status {
    Status::not_found("the echo server keeps no filings")
}

type Stream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl CarrierGateway for EchoCarrier {
    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<Receipt>, Status> {
        Ok(Response::new(receipt(request.get_ref())))
    }

    type SubmitStreamStream = Stream<SubmitResult>;

    async fn submit_stream(
        &self,
        request: Request<tonic::Streaming<SubmitRequest>>,
    ) -> Result<Response<Self::SubmitStreamStream>, Status> {
        let mut input = request.into_inner();
        let (answers, output) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            let mut position = 0;
            while let Ok(Some(request)) = input.message().await {
                position += 1;
                let receipt = receipt(&request);
                let answer = SubmitResult {
                    position,
                    lrn: receipt.lrn.clone(),
                    outcome: Some(submit_result::Outcome::Receipt(receipt)),
                };
                if answers.send(Ok(answer)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(output),
        )))
    }

    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<FilingStatus>, Status> {
        Err(not_here())
    }

    async fn amend(&self, _: Request<AmendRequest>) -> Result<Response<Receipt>, Status> {
        Err(not_here())
    }

    async fn invalidate(
        &self,
        _: Request<InvalidateRequest>,
    ) -> Result<Response<FilingStatus>, Status> {
        Err(not_here())
    }

    async fn arrive(&self, _: Request<ArriveRequest>) -> Result<Response<FilingStatus>, Status> {
        Err(not_here())
    }

    type WatchNotificationsStream = Stream<Notification>;

    /// No filings, so no notices: a feed that ends at once.
    async fn watch_notifications(
        &self,
        _: Request<WatchNotificationsRequest>,
    ) -> Result<Response<Self::WatchNotificationsStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::empty())))
    }

    async fn answer_referral(
        &self,
        _: Request<AnswerReferralRequest>,
    ) -> Result<Response<FilingStatus>, Status> {
        Err(not_here())
    }

    async fn register_arrival(
        &self,
        _: Request<crate::pb::ArrivalNotification>,
    ) -> Result<Response<crate::pb::ArrivalRegistration>, Status> {
        Err(not_here())
    }
}
