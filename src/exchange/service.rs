//! The peer API (`aci.v1.PeerExchange`): a thin gRPC adapter over [`Inbound`]. Every call is
//! from a configured peer, proven by its certificate (`urn:aci:admin:<id>` from the peer CA);
//! anyone else is refused before anything is read. Each method then calls one use-case and
//! maps its error with [`crate::status`].

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::pb::peer_exchange_server::PeerExchange;
use crate::pb::{DeliveryAck, Envelope, Notice, NoticeAck, SubscribeRequest};
use crate::tls::{Identity, PeerInfo};

use super::PeerState;
use super::inbound::{Answers, Inbound};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The `PeerExchange` service.
#[derive(Debug, Clone)]
pub struct PeerService {
    inbound: Inbound,
}

impl PeerService {
    pub fn new(inbound: Inbound) -> PeerService {
        PeerService { inbound }
    }

    /// The configured peer behind a request.
    fn caller<T>(&self, request: &Request<T>) -> Result<Arc<PeerState>, Status> {
        match PeerInfo::of(request)?.identity.clone() {
            Some(Identity::Admin(id)) => self.inbound.peer(&id).ok_or_else(|| {
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

/// A stream of answers as gRPC messages and statuses.
fn streamed<T: Send + 'static>(answers: Answers<T>) -> BoxStream<T> {
    Box::pin(ReceiverStream::new(answers).map(|answer| Ok(answer?)))
}

#[tonic::async_trait]
impl PeerExchange for PeerService {
    type DeliverStream = BoxStream<DeliveryAck>;

    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, Status> {
        let peer = self.caller(&request)?;
        let answers = self.inbound.deliver(peer, request.into_inner());
        Ok(Response::new(streamed(answers)))
    }

    type SubscribeStream = BoxStream<Envelope>;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let peer = self.caller(&request)?;
        let feed = self
            .inbound
            .feed(peer, request.into_inner().after_sequence)?;
        Ok(Response::new(streamed(feed)))
    }

    async fn notify(&self, request: Request<Notice>) -> Result<Response<NoticeAck>, Status> {
        let peer = self.caller(&request)?;
        let span = tracing::info_span!(
            "exchange.notice",
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = "aci.v1.PeerExchange",
            rpc.method = "Notify",
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
        let ack = self.inbound.notice(&peer, notice).instrument(span).await?;
        Ok(Response::new(ack))
    }
}
