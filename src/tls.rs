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

use std::path::PathBuf;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
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
    /// The bytes this connection holds for messages not yet received whole.
    pub budget: Arc<crate::http2::ConnectionBudget>,
}

impl PeerInfo {
    /// What is known of the connection a request came on: the one way both listeners read
    /// their caller's identity.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&PeerInfo, tonic::Status> {
        request
            .extensions()
            .get::<PeerInfo>()
            .ok_or_else(|| tonic::Status::unauthenticated("no connection identity"))
    }
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

/// The files a listener's TLS configuration is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA(s) client certificates must chain to.
    pub client_ca: PathBuf,
    /// Revocation lists (PEM) checked at each handshake.
    pub crls: Vec<PathBuf>,
}

impl ServerFiles {
    /// Every file the configuration is read from (what a reload watches).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        [&self.cert, &self.key, &self.client_ca]
            .into_iter()
            .chain(&self.crls)
            .map(PathBuf::as_path)
    }
}

/// A server configuration that requires client certificates chaining to `client_ca`, not
/// revoked by the CRLs, with the client profile (see [`ProfileVerifier`]).
pub fn server_config(files: &ServerFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = root_store(&files.client_ca)?;
    let crls = read_crls(&files.crls)?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .with_crls(crls)
            // A CA without a list of its own (a peer CA bundle) is not a refusal.
            .allow_unknown_revocation_status()
            .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(ProfileVerifier { inner: verifier }))
        .with_single_cert(read_certs(&files.cert)?, read_key(&files.key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A listener's server configuration that can be replaced while the listener runs: each new
/// connection takes the current one, so a new certificate, key or CRL applies from the next
/// handshake on, and connections already open keep theirs.
#[derive(Debug)]
pub struct Reloadable {
    files: ServerFiles,
    current: std::sync::RwLock<Arc<rustls::ServerConfig>>,
}

impl Reloadable {
    pub fn new(files: ServerFiles) -> Result<Reloadable, TlsError> {
        let current = std::sync::RwLock::new(server_config(&files)?);
        Ok(Reloadable { files, current })
    }

    pub fn files(&self) -> &ServerFiles {
        &self.files
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        let guard = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(&guard)
    }

    /// Reads the files again; on any error the configuration in force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = server_config(&self.files)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }
}

/// How often the files of the listeners' TLS are looked at for a change.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// Reloads the listeners' TLS configurations on SIGHUP and when one of their files changes
/// (size, time or inode: a rename into place counts), until `shutdown`. A file that does not
/// read or parse leaves the configuration in force, and says why.
pub async fn reload_on_change(listeners: Vec<Arc<Reloadable>>, shutdown: CancellationToken) {
    let fingerprint = |tls: &Reloadable| -> Vec<Option<(u64, u64, std::time::SystemTime)>> {
        use std::os::unix::fs::MetadataExt;
        tls.files()
            .paths()
            .map(|path| {
                let meta = std::fs::metadata(path).ok()?;
                Some((meta.ino(), meta.len(), meta.modified().ok()?))
            })
            .collect()
    };
    let mut seen: Vec<_> = listeners.iter().map(|tls| fingerprint(tls)).collect();
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler; TLS files are still watched");
            None
        }
    };
    let mut poll = tokio::time::interval(RELOAD_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let signalled = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = poll.tick() => false,
            Some(()) = async { match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            } } => true,
        };
        for (tls, seen) in listeners.iter().zip(seen.iter_mut()) {
            let now = fingerprint(tls);
            if !signalled && now == *seen {
                continue;
            }
            *seen = now;
            match tls.reload() {
                Ok(()) => tracing::info!(
                    client_ca = %tls.files().client_ca.display(),
                    crls = tls.files().crls.len(),
                    "TLS certificate, key and revocation lists reloaded"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "TLS files changed but do not load; the configuration in force stays"
                ),
            }
        }
    }
}

/// What a gateway's client configuration (for calling its peers) is made from. It is read
/// again for every connection, so a rotated certificate or a new CRL applies from the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_ca: PathBuf,
    pub crls: Vec<PathBuf>,
}

impl ClientFiles {
    pub fn config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        client_config_with_crls(&self.cert, &self.key, &self.server_ca, &self.crls)
    }
}

/// A client configuration presenting `cert` and trusting servers chained to `server_ca` whose
/// certificates carry the serverAuth purpose.
pub fn client_config(
    cert: &Path,
    key: &Path,
    server_ca: &Path,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    client_config_with_crls(cert, key, server_ca, &[])
}

/// [`client_config`], refusing servers whose certificates `crls` revoke: what a gateway uses
/// to call its peers.
pub fn client_config_with_crls(
    cert: &Path,
    key: &Path,
    server_ca: &Path,
    crls: &[PathBuf],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = root_store(server_ca)?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .with_crls(read_crls(crls)?)
    .allow_unknown_revocation_status()
    .build()
    .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerProfileVerifier { inner: verifier }))
        .with_client_auth_cert(read_certs(cert)?, read_key(key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn root_store(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// Reads every CRL of the PEM files.
fn read_crls(paths: &[PathBuf]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut crls = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
            path: shown.clone(),
            source,
        })?;
        let found = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        if found.is_empty() {
            return Err(TlsError::Empty {
                path: shown,
                what: "certificate revocation list",
            });
        }
        crls.extend(found);
    }
    Ok(crls)
}

/// Why a certificate that chains and is not revoked is still refused: it is not made for the
/// use it is put to.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("the certificate lacks the {0} extended key usage")]
    Purpose(&'static str),
    #[error("the certificate's key usage lacks digitalSignature")]
    KeyUsage,
    #[error("the certificate names {0} identities (urn:aci:...); it must name exactly one")]
    Identities(usize),
    #[error("the certificate does not parse")]
    Unparsable,
}

impl ProfileError {
    /// A few stable words for the handshake-failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            ProfileError::Purpose(_) | ProfileError::KeyUsage => "wrong_usage",
            ProfileError::Identities(_) => "several_identities",
            ProfileError::Unparsable => "bad_certificate",
        }
    }
}

/// Checks a leaf certificate's profile: the extended key usage `purpose` present (webpki
/// accepts a certificate without any), digitalSignature among its key usages, and at most one
/// identity URI (with two, which one counts would be a guess).
fn check_profile(cert: &CertificateDer<'_>, client: bool) -> Result<(), ProfileError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| ProfileError::Unparsable)?;
    let eku = parsed
        .extended_key_usage()
        .map_err(|_| ProfileError::Unparsable)?;
    let purpose_present = eku.is_some_and(|eku| {
        if client {
            eku.value.client_auth
        } else {
            eku.value.server_auth
        }
    });
    if !purpose_present {
        return Err(ProfileError::Purpose(if client {
            "clientAuth"
        } else {
            "serverAuth"
        }));
    }
    if client {
        let signs = parsed
            .key_usage()
            .map_err(|_| ProfileError::Unparsable)?
            .is_some_and(|ku| ku.value.digital_signature());
        if !signs {
            return Err(ProfileError::KeyUsage);
        }
        let identities = identity_uris(&parsed).len();
        if identities > 1 {
            return Err(ProfileError::Identities(identities));
        }
    }
    Ok(())
}

fn profile_refusal(error: ProfileError) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(error),
    )))
}

/// The handshake-signature methods of a verifier wrapper: webpki's (its `inner`), as they are.
macro_rules! signatures_checked_by_inner {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// The client certificate verifier of both listeners: webpki's chain, validity and revocation
/// checks, then [`check_profile`].
#[derive(Debug)]
struct ProfileVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for ProfileVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_profile(end_entity, true).map_err(profile_refusal)?;
        Ok(verified)
    }

    signatures_checked_by_inner!();
}

/// The verifier of peers' server certificates: webpki's checks, then the serverAuth purpose.
#[derive(Debug)]
struct ServerProfileVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for ServerProfileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        check_profile(end_entity, false).map_err(profile_refusal)?;
        Ok(verified)
    }

    signatures_checked_by_inner!();
}

/// The certificate's SAN URIs that name an identity of ours.
fn identity_uris<'a>(cert: &'a x509_parser::certificate::X509Certificate<'_>) -> Vec<&'a str> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri)
                if uri.starts_with("urn:aci:carrier:") || uri.starts_with("urn:aci:admin:") =>
            {
                Some(*uri)
            }
            _ => None,
        })
        .collect()
}

/// The identity named by a certificate's SAN URI: none if it names none, or more than one.
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<Identity> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let [uri] = identity_uris(&parsed)[..] else {
        return None;
    };
    if let Some(eori) = uri.strip_prefix("urn:aci:carrier:") {
        Eori::parse(eori).map(Identity::Carrier)
    } else {
        uri.strip_prefix("urn:aci:admin:")
            .filter(|id| !id.is_empty())
            .map(|id| Identity::Admin(id.to_owned()))
    }
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
    tls: Option<Arc<Reloadable>>,
    listener_name: &'static str,
    metrics: Arc<crate::telemetry::Metrics>,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<Connection>> {
    let (sender, receiver) = mpsc::channel(256);
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
            // The configuration in force now: a reload applies from the next handshake.
            let acceptor = tls.as_ref().map(|tls| TlsAcceptor::from(tls.current()));
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
        Some(Error::InvalidCertificate(CertificateError::Other(other))) => other
            .0
            .downcast_ref::<ProfileError>()
            .map_or("bad_certificate", ProfileError::reason),
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
            budget: Arc::default(),
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
                budget: Arc::default(),
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
