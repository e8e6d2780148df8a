//! The peer API (`aci.v1.PeerExchange`): a thin gRPC adapter over [`Inbound`]. Every call is
//! from a configured peer, proven by its certificate (`urn:aci:admin:<id>` from the peer CA);
//! anyone else is refused before anything is read. Each method then calls one use-case and
//! maps its error with [`crate::status`].
//!
//! [`PeerApi`] serves it: the generated server, but for the two streams of envelopes, which it
//! reads and writes as [`EncodedEnvelope`]s, manifests left encoded: a receiver stores a
//! manifest as it came (decoding each one only to encode it again was a third of a backlog's
//! drain), and the feed sends manifests as the log holds them.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::pb::peer_exchange_server::{PeerExchange, PeerExchangeServer};
use crate::pb::{DeliveryAck, EncodedEnvelope, Envelope, Notice, NoticeAck, SubscribeRequest};
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

    /// The envelopes of one delivery stream, stored in order, and their acknowledgements.
    fn deliver_stream<T>(
        &self,
        request: Request<Streaming<T>>,
    ) -> Result<Response<BoxStream<DeliveryAck>>, Status>
    where
        T: Into<EncodedEnvelope> + Send + 'static,
        Streaming<T>: Stream<Item = Result<T, Status>> + Send + Unpin + 'static,
    {
        let peer = self.caller(&request)?;
        let answers = self.inbound.deliver(peer, request.into_inner());
        Ok(Response::new(streamed(answers)))
    }

    /// The caller's feed from its cursor.
    fn feed(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<BoxStream<EncodedEnvelope>>, Status> {
        let peer = self.caller(&request)?;
        let feed = self
            .inbound
            .feed(peer, request.into_inner().after_sequence)?;
        Ok(Response::new(streamed(feed)))
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

    /// Envelopes decoded whole (the generated server's `Deliver`; [`PeerApi`] reads them with
    /// the manifests encoded instead).
    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, Status> {
        self.deliver_stream(request)
    }

    type SubscribeStream = BoxStream<Envelope>;

    /// The feed with each envelope decoded whole (the generated server's `Subscribe`;
    /// [`PeerApi`] sends them with the manifests as stored instead).
    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let feed = self.feed(request)?.into_inner();
        Ok(Response::new(Box::pin(feed.map(|envelope| {
            envelope?
                .decoded()
                .map_err(|e| Status::internal(format!("a record of the feed: {e}")))
        }))))
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

/// The peer API's gRPC service: [`PeerExchangeServer`] over a [`PeerService`], but for
/// `Deliver` and `Subscribe`, served here with [`EncodedEnvelope`]s (the generated trait's
/// methods for them decode whole).
#[derive(Debug, Clone)]
pub struct PeerApi {
    generated: PeerExchangeServer<PeerService>,
    service: PeerService,
    max_message: usize,
}

impl PeerApi {
    /// The service, taking messages of up to `max_message` bytes.
    pub fn new(service: PeerService, max_message: usize) -> PeerApi {
        PeerApi {
            generated: PeerExchangeServer::new(service.clone())
                .max_decoding_message_size(max_message),
            service,
            max_message,
        }
    }
}

impl tonic::server::NamedService for PeerApi {
    const NAME: &'static str =
        <PeerExchangeServer<PeerService> as tonic::server::NamedService>::NAME;
}

type HttpResponse = http::Response<tonic::body::Body>;

impl<B> tower::Service<http::Request<B>> for PeerApi
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = HttpResponse;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let service = self.service.clone();
        let max_message = Some(self.max_message);
        match request.uri().path() {
            "/aci.v1.PeerExchange/Deliver" => Box::pin(async move {
                let codec = tonic_prost::ProstCodec::<DeliveryAck, EncodedEnvelope>::default();
                let mut grpc = tonic::server::Grpc::new(codec)
                    .apply_max_message_size_config(max_message, None);
                Ok(grpc.streaming(Deliver(service), request).await)
            }),
            "/aci.v1.PeerExchange/Subscribe" => Box::pin(async move {
                let codec = tonic_prost::ProstCodec::<EncodedEnvelope, SubscribeRequest>::default();
                let mut grpc = tonic::server::Grpc::new(codec)
                    .apply_max_message_size_config(max_message, None);
                Ok(grpc.server_streaming(Subscribe(service), request).await)
            }),
            _ => self.generated.call(request),
        }
    }
}

/// `Deliver` over envelopes with their manifests left encoded.
struct Deliver(PeerService);

impl tonic::server::StreamingService<EncodedEnvelope> for Deliver {
    type Response = DeliveryAck;
    type ResponseStream = BoxStream<DeliveryAck>;
    type Future = std::future::Ready<Result<Response<BoxStream<DeliveryAck>>, Status>>;

    fn call(&mut self, request: Request<Streaming<EncodedEnvelope>>) -> Self::Future {
        std::future::ready(self.0.deliver_stream(request))
    }
}

/// `Subscribe` with envelopes whose manifests are as the log holds them.
struct Subscribe(PeerService);

impl tonic::server::ServerStreamingService<SubscribeRequest> for Subscribe {
    type Response = EncodedEnvelope;
    type ResponseStream = BoxStream<EncodedEnvelope>;
    type Future = std::future::Ready<Result<Response<BoxStream<EncodedEnvelope>>, Status>>;

    fn call(&mut self, request: Request<SubscribeRequest>) -> Self::Future {
        std::future::ready(self.0.feed(request))
    }
}
