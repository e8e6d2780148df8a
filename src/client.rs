//! Clients: a carrier's client of the carrier API (mutual TLS, or plaintext to a
//! `--insecure-dev` server), and an administration's client of a peer's API. Used by the CLI
//! and by the tests.

use std::path::PathBuf;

use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

use crate::ingest::DEV_CARRIER_HEADER;
use crate::pb::carrier_gateway_client::CarrierGatewayClient;
use crate::pb::peer_exchange_client::PeerExchangeClient;
use crate::pb::{
    AmendRequest, ArriveRequest, FilingStatus, GetStatusRequest, InvalidateRequest, Manifest,
    Receipt, SubmitRequest, SubmitResult, amend_request, arrive_request, get_status_request,
    submit_request,
};
use crate::pb::{
    AnswerReferralRequest, DeliveryAck, Envelope, Notice, NoticeAck, Notification,
    SubscribeRequest, WatchNotificationsRequest,
};

/// Files presenting a carrier to the gateway.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// The CA that issued the gateway's certificate.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How a client authenticates.
#[derive(Clone, Debug)]
pub enum Credentials {
    Tls(ClientTls),
    /// Plaintext to a development server, claiming to be this EORI.
    InsecureDev {
        eori: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("endpoint {endpoint}: {source}")]
    Endpoint {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// A connected carrier client.
#[derive(Clone, Debug)]
pub struct CarrierClient {
    inner: CarrierGatewayClient<Channel>,
    dev_eori: Option<MetadataValue<tonic::metadata::Ascii>>,
    /// W3C trace context sent with every call, so the gateway's spans join the caller's trace.
    traceparent: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl CarrierClient {
    /// Connects to `endpoint` (`https://host:port`, or `http://` for `--insecure-dev`).
    pub async fn connect(
        endpoint: &str,
        credentials: &Credentials,
    ) -> Result<CarrierClient, ClientError> {
        crate::tls::install_crypto_provider();
        let endpoint_error = |source| ClientError::Endpoint {
            endpoint: endpoint.to_owned(),
            source,
        };
        let mut builder = Endpoint::from_shared(endpoint.to_owned()).map_err(endpoint_error)?;
        let mut dev_eori = None;
        match credentials {
            Credentials::Tls(files) => {
                let read = |path: &PathBuf| {
                    std::fs::read(path).map_err(|source| ClientError::Read {
                        path: path.clone(),
                        source,
                    })
                };
                let tls = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(read(&files.ca)?))
                    .identity(Identity::from_pem(read(&files.cert)?, read(&files.key)?));
                builder = builder.tls_config(tls).map_err(endpoint_error)?;
            }
            Credentials::InsecureDev { eori } => {
                dev_eori = Some(eori.parse().map_err(|_| ClientError::Read {
                    path: PathBuf::from(eori),
                    source: std::io::Error::other("the EORI is not valid header text"),
                })?);
            }
        }
        let channel = builder
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                endpoint: endpoint.to_owned(),
                source,
            })?;
        Ok(CarrierClient {
            inner: CarrierGatewayClient::new(channel).max_decoding_message_size(64 * 1024 * 1024),
            dev_eori,
            traceparent: None,
        })
    }

    /// Sends this W3C `traceparent` with every call (e.g. from the `TRACEPARENT` variable).
    /// Text that is not valid header text is ignored.
    pub fn with_traceparent(mut self, traceparent: &str) -> CarrierClient {
        self.traceparent = traceparent.parse().ok();
        self
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(eori) = &self.dev_eori {
            request
                .metadata_mut()
                .insert(DEV_CARRIER_HEADER, eori.clone());
        }
        if let Some(traceparent) = &self.traceparent {
            request
                .metadata_mut()
                .insert("traceparent", traceparent.clone());
        }
        request
    }

    pub async fn submit(&mut self, manifest: impl Into<Box<Manifest>>) -> Result<Receipt, Status> {
        let request = self.request(SubmitRequest {
            filing: Some(submit_request::Filing::Manifest(manifest.into())),
        });
        Ok(self.inner.submit(request).await?.into_inner())
    }

    /// Files an XML document as it is.
    pub async fn submit_xml(&mut self, xml: Vec<u8>) -> Result<Receipt, Status> {
        let request = self.request(SubmitRequest {
            filing: Some(submit_request::Filing::Xml(xml)),
        });
        Ok(self.inner.submit(request).await?.into_inner())
    }

    /// Files many filings on one stream; the answers come back as they complete.
    pub async fn submit_stream(
        &mut self,
        filings: impl tokio_stream::Stream<Item = SubmitRequest> + Send + 'static,
    ) -> Result<tonic::Streaming<SubmitResult>, Status> {
        let request = self.request(filings);
        Ok(self.inner.submit_stream(request).await?.into_inner())
    }

    /// Files a new version of a filing (protobuf).
    pub async fn amend(
        &mut self,
        mrn: &str,
        manifest: impl Into<Box<Manifest>>,
    ) -> Result<Receipt, Status> {
        let request = self.request(AmendRequest {
            mrn: mrn.to_owned(),
            filing: Some(amend_request::Filing::Manifest(manifest.into())),
        });
        Ok(self.inner.amend(request).await?.into_inner())
    }

    /// Files a new version of a filing (XML).
    pub async fn amend_xml(&mut self, mrn: &str, xml: Vec<u8>) -> Result<Receipt, Status> {
        let request = self.request(AmendRequest {
            mrn: mrn.to_owned(),
            filing: Some(amend_request::Filing::Xml(xml)),
        });
        Ok(self.inner.amend(request).await?.into_inner())
    }

    pub async fn invalidate(&mut self, mrn: &str, reason: &str) -> Result<FilingStatus, Status> {
        let request = self.request(InvalidateRequest {
            mrn: mrn.to_owned(),
            reason: reason.to_owned(),
        });
        Ok(self.inner.invalidate(request).await?.into_inner())
    }

    pub async fn arrive(&mut self, mrn: &str) -> Result<FilingStatus, Status> {
        let request = self.request(ArriveRequest {
            key: Some(arrive_request::Key::Mrn(mrn.to_owned())),
        });
        Ok(self.inner.arrive(request).await?.into_inner())
    }

    /// Records an arrival by one of the filing's master transport documents.
    pub async fn arrive_by_document(&mut self, document: &str) -> Result<FilingStatus, Status> {
        let request = self.request(ArriveRequest {
            key: Some(arrive_request::Key::TransportDocument(document.to_owned())),
        });
        Ok(self.inner.arrive(request).await?.into_inner())
    }

    pub async fn status_by_mrn(&mut self, mrn: &str) -> Result<FilingStatus, Status> {
        let request = self.request(GetStatusRequest {
            key: Some(get_status_request::Key::Mrn(mrn.to_owned())),
        });
        Ok(self.inner.get_status(request).await?.into_inner())
    }

    pub async fn status_by_lrn(&mut self, lrn: &str) -> Result<FilingStatus, Status> {
        let request = self.request(GetStatusRequest {
            key: Some(get_status_request::Key::Lrn(lrn.to_owned())),
        });
        Ok(self.inner.get_status(request).await?.into_inner())
    }
}

impl CarrierClient {
    /// The notices about the caller's filings after `after_sequence`, then each new one.
    pub async fn watch_notifications(
        &mut self,
        after_sequence: u64,
    ) -> Result<tonic::Streaming<Notification>, Status> {
        let request = self.request(WatchNotificationsRequest { after_sequence });
        Ok(self.inner.watch_notifications(request).await?.into_inner())
    }

    /// Answers a referral an administration sent about one of the caller's filings.
    pub async fn answer_referral(
        &mut self,
        mrn: &str,
        notice_id: &str,
        text: &str,
    ) -> Result<FilingStatus, Status> {
        self.answer(mrn, notice_id, text, None).await
    }

    /// Answers one request of a referral, with a structured answer (result, methods, facility,
    /// attachments).
    pub async fn answer(
        &mut self,
        mrn: &str,
        notice_id: &str,
        text: &str,
        answer: Option<crate::pb::ReferralAnswer>,
    ) -> Result<FilingStatus, Status> {
        let request = self.request(AnswerReferralRequest {
            mrn: mrn.to_owned(),
            notice_id: notice_id.to_owned(),
            text: text.to_owned(),
            answer,
            administration: String::new(),
        });
        Ok(self.inner.answer_referral(request).await?.into_inner())
    }

    /// Registers the arrival of several filings with its facts; an answer per filing.
    pub async fn register_arrival(
        &mut self,
        notification: crate::pb::ArrivalNotification,
    ) -> Result<crate::pb::ArrivalRegistration, Status> {
        let request = self.request(notification);
        Ok(self.inner.register_arrival(request).await?.into_inner())
    }
}

/// An administration's client of a peer gateway's API (`PeerExchange`), over mutual TLS with
/// the peer's identity checked: what the CLI's `notify` and the tests use.
#[derive(Clone, Debug)]
pub struct PeerClient {
    inner: PeerExchangeClient<Channel>,
    channel: Channel,
}

impl PeerClient {
    /// Connects to `endpoint` (`https://host:port`), which must present the certificate of
    /// `peer_id`, as the administration whose certificate is `cert`.
    pub async fn connect(
        endpoint: &str,
        peer_id: &str,
        files: &ClientTls,
    ) -> Result<PeerClient, PeerClientError> {
        crate::tls::install_crypto_provider();
        let tls = crate::tls::client_config(&files.cert, &files.key, &files.ca)?;
        let channel = crate::exchange::connect(endpoint, peer_id, tls).await?;
        Ok(PeerClient {
            inner: PeerExchangeClient::new(channel.clone())
                .max_decoding_message_size(64 * 1024 * 1024),
            channel,
        })
    }

    pub async fn notify(&mut self, notice: Notice) -> Result<NoticeAck, Status> {
        Ok(self.inner.notify(notice).await?.into_inner())
    }

    /// The caller's feed after `after_sequence`.
    pub async fn subscribe(
        &mut self,
        after_sequence: u64,
    ) -> Result<tonic::Streaming<Envelope>, Status> {
        Ok(self
            .inner
            .subscribe(SubscribeRequest { after_sequence })
            .await?
            .into_inner())
    }

    /// Delivers envelopes (an `Envelope`, or any message with its tags, such as a
    /// [`crate::pb::EncodedEnvelope`] whose manifest is bytes); the acknowledgements come back
    /// in order.
    pub async fn deliver<T: prost::Message + 'static>(
        &mut self,
        envelopes: impl tokio_stream::Stream<Item = T> + Send + 'static,
    ) -> Result<tonic::Streaming<DeliveryAck>, Status> {
        crate::exchange::forward::deliver(self.channel.clone(), envelopes).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeerClientError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Connect(#[from] crate::exchange::ConnectError),
}
