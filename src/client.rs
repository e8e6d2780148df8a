//! A carrier's client: connects to the carrier API with mutual TLS (or plaintext to a
//! `--insecure-dev` server) and makes calls. Used by the CLI and by the tests.

use std::path::PathBuf;

use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

use crate::ingest::DEV_CARRIER_HEADER;
use crate::pb::carrier_gateway_client::CarrierGatewayClient;
use crate::pb::{
    AmendRequest, ArriveRequest, FilingStatus, GetStatusRequest, InvalidateRequest, Manifest,
    Receipt, SubmitRequest, SubmitResult, amend_request, arrive_request, get_status_request,
    submit_request,
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
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(eori) = &self.dev_eori {
            request
                .metadata_mut()
                .insert(DEV_CARRIER_HEADER, eori.clone());
        }
        request
    }

    pub async fn submit(&mut self, manifest: Manifest) -> Result<Receipt, Status> {
        let request = self.request(SubmitRequest {
            filing: Some(submit_request::Filing::Manifest(manifest)),
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
    pub async fn amend(&mut self, mrn: &str, manifest: Manifest) -> Result<Receipt, Status> {
        let request = self.request(AmendRequest {
            mrn: mrn.to_owned(),
            filing: Some(amend_request::Filing::Manifest(manifest)),
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
