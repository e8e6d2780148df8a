//! Mutual TLS: rustls configurations (ring provider, TLS 1.2 and 1.3) and their reload, the
//! accepting side with a handshake deadline (`accept.rs`), and the caller's identity read once
//! per connection from its certificate, whose profile is checked (`profile.rs`).
//!
//! Identities are SAN URIs: `urn:aci:carrier:<EORI>` or `urn:aci:admin:<gateway id>`. A connection
//! whose certificate carries neither still connects (the chain was valid) and is refused with
//! `UNAUTHENTICATED` on its first call, which tells the client why; a certificate that does not
//! chain to the listener's CA, has expired or is absent fails the handshake.

mod accept;
mod profile;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::ids::Eori;

pub use self::accept::{Connection, Io, accept};
pub use self::profile::{ProfileError, identity_of};
use self::profile::{ProfileVerifier, ServerProfileVerifier};

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
    read_pem_items(path, "certificate")
}

/// Reads every item of one kind (`what`) from a PEM file: at least one.
fn read_pem_items<T: PemObject>(path: &Path, what: &'static str) -> Result<Vec<T>, TlsError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown.clone(),
        source,
    })?;
    let items = T::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    if items.is_empty() {
        return Err(TlsError::Empty { path: shown, what });
    }
    Ok(items)
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
        crls.extend(read_pem_items(path, "certificate revocation list")?);
    }
    Ok(crls)
}

/// When the first certificate in a PEM file to expire does (Unix seconds); `None` when the
/// file cannot be read or holds no certificate.
pub fn earliest_expiry(path: &Path) -> Option<i64> {
    read_certs(path)
        .ok()?
        .iter()
        .filter_map(|cert| x509_parser::parse_x509_certificate(cert.as_ref()).ok())
        .map(|(_, parsed)| parsed.validity().not_after.timestamp())
        .min()
}
