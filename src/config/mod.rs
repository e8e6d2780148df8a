//! The gateway's TOML configuration: read, checked key by key, and sealed into [`Config`].
//!
//! Unknown keys are refused; every error names the file and the key. Relative paths are taken
//! relative to the directory of the config file, so a config works from any working directory.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod raw;
mod seal;
#[cfg(test)]
mod tests;

use crate::validate::rules::RuleSettings;

/// A configuration that passed every check.
#[derive(Clone, Debug)]
pub struct Config {
    /// This gateway's identity among administrations (origin of what it forwards).
    pub gateway_id: String,
    /// ISO 3166 alpha-2 country code written into the MRNs this gateway issues.
    pub country: String,
    /// Where the log and its index live.
    pub data_dir: PathBuf,
    pub carrier_api: CarrierApi,
    /// Listener for peer administrations (mutual TLS against the peer CA).
    pub peer_listen: SocketAddr,
    /// HTTP/2 limits of the peer listener.
    pub peer_limits: crate::http2::ListenerLimits,
    /// Plain HTTP listener for health checks and metrics.
    pub admin_listen: SocketAddr,
    pub tls: TlsFiles,
    pub store: StoreSettings,
    /// Carriers allowed to file on behalf of others: agent EORI → principals' EORIs.
    pub representatives: HashMap<String, HashSet<String>>,
    /// Settings of the business rules.
    pub validation: RuleSettings,
    /// How long a master transport document stays reserved to the filing that first named it.
    pub duplicate_document_window: std::time::Duration,
    /// What an amendment may not change, the filings' timers, the attachments' bound.
    pub lifecycle: Lifecycle,
    /// Peer administrations this gateway exchanges with.
    pub peers: Vec<Peer>,
    /// Which peers receive which filings.
    pub routes: crate::exchange::route::Routes,
    /// Log format and trace export.
    pub telemetry: crate::telemetry::TelemetrySettings,
}

/// The `[lifecycle]` section.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    /// What an amendment may not change.
    pub immutable: crate::store::Immutable,
    /// When filings' timers fire (automatic invalidation, incomplete partial filings).
    pub timers: crate::store::TimerSettings,
    /// Largest total size of one referral answer's attachments.
    pub max_attachment_bytes: usize,
}

/// A peer administration's gateway (the exchange's own settings type).
pub use crate::exchange::Peer;

#[derive(Clone, Debug)]
pub struct CarrierApi {
    pub listen: SocketAddr,
    /// Largest gRPC message accepted, in bytes; larger ones are refused before decoding.
    pub max_message_bytes: usize,
    /// What one carrier may do: writes and reads per second (sustained, and in a burst),
    /// filings in flight; beyond, RESOURCE_EXHAUSTED with a retry-after.
    pub per_carrier: crate::filing::limit::CarrierLimits,
    /// HTTP/2 limits of the carrier listener.
    pub limits: crate::http2::ListenerLimits,
}

/// Certificate and key files. With `dev_pki` set, they live in that directory and are created
/// on first start.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub dev_pki: Option<PathBuf>,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub carrier_ca: PathBuf,
    pub peer_ca: PathBuf,
    /// Revocation lists (PEM) of the carrier CA, checked at each carrier handshake. With
    /// `dev_pki`, the development CA's list unless given.
    pub carrier_crls: Vec<PathBuf>,
    /// Revocation lists (PEM) of the peer CAs: checked on the peer listener and when calling
    /// peers.
    pub peer_crls: Vec<PathBuf>,
}

impl TlsFiles {
    /// What the carrier listener's TLS is made from.
    pub fn carrier_listener(&self) -> crate::tls::ServerFiles {
        crate::tls::ServerFiles {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: self.carrier_ca.clone(),
            crls: self.carrier_crls.clone(),
        }
    }

    /// What the peer listener's TLS is made from.
    pub fn peer_listener(&self) -> crate::tls::ServerFiles {
        crate::tls::ServerFiles {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: self.peer_ca.clone(),
            crls: self.peer_crls.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// A segment file is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// Most appends written under one fdatasync.
    pub max_batch: usize,
    /// Where the log lives: the embedded segment log (default), or a JetStream stream.
    pub jetstream: Option<crate::store::JetStreamSettings>,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: key `{key}`: {message}")]
    Invalid {
        file: PathBuf,
        key: &'static str,
        message: String,
    },
}

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Checks config text; `path` names the file in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        raw.seal(base, path)
    }
}
