//! Mutual TLS: rustls configurations (ring provider, TLS 1.2 and 1.3), the accepting side with a
//! handshake deadline, and the caller's identity read once per connection from its certificate.
//!
//! Identities are SAN URIs: `urn:aci:carrier:<EORI>` or `urn:aci:admin:<gateway id>`. A connection
//! whose certificate carries neither still connects (the chain was valid) and is refused with
//! `UNAUTHENTICATED` on its first call, which tells the client why; a certificate that does not
//! chain to the listener's CA, has expired or is absent fails the handshake.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::ids::Eori;

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client that finished the handshake may stay silent before its first bytes (the
/// HTTP/2 preface, which every real client sends at once).
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no {what} found in the PEM file")]
    Empty { path: String, what: &'static str },
    #[error("{path}: {message}")]
    Pem { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Who is calling, as proven by the client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    Carrier(Eori),
    Admin(String),
}

/// What the gRPC layer knows about a connection (available in every request's extensions).
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// `None` on plaintext connections, or when the certificate names no identity we know.
    pub identity: Option<Identity>,
    /// Plaintext connection of a development server (`--insecure-dev`).
    pub insecure: bool,
}

/// Makes ring the process's rustls provider (idempotent). tonic's client builds its rustls
/// config from the process default.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads every certificate of a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown.clone(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: shown,
            what: "certificate",
        });
    }
    Ok(certs)
}

/// Reads a private key from a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown.clone(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            path: shown,
            what: "private key",
        },
        other => TlsError::Pem {
            path: shown,
            message: other.to_string(),
        },
    })
}

/// A server configuration that requires client certificates chaining to `client_ca`.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in read_certs(client_ca)? {
        roots.add(ca)?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(cert)?, read_key(key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration presenting `cert` and trusting servers chained to `server_ca`: what
/// a gateway uses to call its peers.
pub fn client_config(
    cert: &Path,
    key: &Path,
    server_ca: &Path,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in read_certs(server_ca)? {
        roots.add(ca)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(read_certs(cert)?, read_key(key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The identity named by a certificate's SAN URIs, if any.
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<Identity> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        x509_parser::extensions::GeneralName::URI(uri) => {
            if let Some(eori) = uri.strip_prefix("urn:aci:carrier:") {
                Eori::parse(eori).map(Identity::Carrier)
            } else {
                uri.strip_prefix("urn:aci:admin:")
                    .filter(|id| !id.is_empty())
                    .map(|id| Identity::Admin(id.to_owned()))
            }
        }
        _ => None,
    })
}

/// A byte stream the gRPC server runs over: TLS or (development only) plain TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// An accepted connection with what is known about its peer.
pub struct Connection {
    io: Box<dyn Io>,
    info: PeerInfo,
    /// Until the first bytes arrive: when the silent connection is dropped.
    silence: Option<Silence>,
}

/// The deadline of a connection that has not said anything yet.
struct Silence {
    deadline: Pin<Box<tokio::time::Sleep>>,
    listener: &'static str,
    metrics: Arc<crate::telemetry::Metrics>,
}

impl Connection {
    fn new(
        io: Box<dyn Io>,
        info: PeerInfo,
        listener: &'static str,
        metrics: &Arc<crate::telemetry::Metrics>,
    ) -> Connection {
        Connection {
            io,
            info,
            silence: Some(Silence {
                deadline: Box::pin(tokio::time::sleep(FIRST_BYTES_TIMEOUT)),
                listener,
                metrics: Arc::clone(metrics),
            }),
        }
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let filled = buf.filled().len();
        let this = &mut *self;
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some(silence) = &mut this.silence {
            if read.is_ready() {
                if buf.filled().len() > filled {
                    this.silence = None;
                }
            } else if silence.deadline.as_mut().poll(cx).is_ready() {
                silence.metrics.handshake_failed(silence.listener, "silent");
                tracing::info!(listener = silence.listener, remote = ?this.info.remote, "connection closed: nothing sent after the handshake");
                return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
            }
        }
        read
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Accepts connections on `listener` until `shutdown`, completing each TLS handshake in its own
/// task (so a slow client holds up nobody), and yields the connections that finished it.
/// With `tls` absent, connections are plain TCP (development only).
pub fn accept(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    listener_name: &'static str,
    metrics: Arc<crate::telemetry::Metrics>,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<Connection>> {
    let (sender, receiver) = mpsc::channel(256);
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(listener = listener_name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let sender = sender.clone();
            let acceptor = acceptor.clone();
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                if let Some(connection) =
                    handshake(tcp, remote, acceptor, listener_name, &metrics).await
                    && sender.send(Ok(connection)).await.is_err()
                {
                    tracing::debug!(%remote, "server stopped before the connection was served");
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Why a handshake failed, in a few stable words (for metrics).
fn failure_reason(error: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
    {
        Some(Error::NoCertificatesPresented) => "no_certificate",
        Some(Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => "expired",
        Some(Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => "not_yet_valid",
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => "unknown_issuer",
        Some(Error::InvalidCertificate(CertificateError::Revoked)) => "revoked",
        Some(Error::InvalidCertificate(_)) => "bad_certificate",
        Some(Error::PeerIncompatible(_) | Error::NoApplicationProtocol) => "incompatible",
        Some(_) => "protocol",
        None => "io",
    }
}

async fn handshake(
    tcp: TcpStream,
    remote: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    listener_name: &'static str,
    metrics: &Arc<crate::telemetry::Metrics>,
) -> Option<Connection> {
    let Some(acceptor) = acceptor else {
        let info = PeerInfo {
            remote: Some(remote),
            identity: None,
            insecure: true,
        };
        return Some(Connection::new(Box::new(tcp), info, listener_name, metrics));
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(identity_of);
            let info = PeerInfo {
                remote: Some(remote),
                identity,
                insecure: false,
            };
            Some(Connection::new(
                Box::new(stream),
                info,
                listener_name,
                metrics,
            ))
        }
        Ok(Err(e)) => {
            let reason = failure_reason(&e);
            metrics.handshake_failed(listener_name, reason);
            tracing::info!(listener = listener_name, %remote, reason, error = %e, "TLS handshake refused");
            None
        }
        Err(_) => {
            metrics.handshake_failed(listener_name, "timeout");
            tracing::info!(listener = listener_name, %remote, "TLS handshake timed out");
            None
        }
    }
}
