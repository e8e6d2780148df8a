//! The gateway's TOML configuration: read, checked key by key, and sealed into [`Config`].
//!
//! Unknown keys are refused; every error names the file and the key. Relative paths are taken
//! relative to the directory of the config file, so a config works from any working directory.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ids::Eori;
use crate::validate::Severity;
use crate::validate::rules::{Deadline, Deadlines, RuleSettings};

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
    /// What an amendment may not change.
    pub immutable: crate::store::Immutable,
    /// Peer administrations this gateway exchanges with.
    pub peers: Vec<Peer>,
    /// Which peers receive which filings.
    pub routes: crate::exchange::route::Routes,
    /// Log format and trace export.
    pub telemetry: crate::telemetry::TelemetrySettings,
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
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        raw.seal(base, path)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    gateway: RawGateway,
    carrier_api: RawCarrierApi,
    peer_api: RawPeerApi,
    admin: RawListener,
    tls: RawTls,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    representatives: Vec<RawRepresentative>,
    #[serde(default)]
    validation: RawValidation,
    #[serde(default)]
    lifecycle: RawLifecycle,
    #[serde(default)]
    peers: Vec<RawPeer>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    telemetry: RawTelemetry,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    /// OTLP/gRPC collector endpoint, e.g. "http://otel-collector:4317".
    otlp_endpoint: Option<String>,
    /// "text" (default) or "json".
    log_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    id: String,
    #[serde(default)]
    endpoint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    peer: String,
    #[serde(default)]
    first_entry_countries: Vec<String>,
    #[serde(default)]
    routing_countries: Vec<String>,
    #[serde(default)]
    delivery_countries: Vec<String>,
    #[serde(default)]
    modes: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLifecycle {
    /// Fields an amendment may not change: "transport_mode", "master_documents" (the default
    /// is both; the LRN never changes).
    immutable_fields: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawValidation {
    /// "error" (default) or "warning": many real ships carry bad IMO numbers.
    imo_check: Option<String>,
    /// "warning" (default) or "error".
    late_filing: Option<String>,
    /// Tolerance between total gross mass and the sum over goods items, in percent.
    mass_tolerance_percent: Option<f64>,
    /// Replaces the built-in deny-list of generic descriptions.
    generic_descriptions: Option<Vec<String>>,
    /// "error" (default) or "warning".
    generic_description: Option<String>,
    /// Days a filer's master transport document may not be filed again (default 365).
    duplicate_document_window_days: Option<u32>,
    #[serde(default)]
    deadlines: RawDeadlines,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDeadlines {
    sea_containerised: Option<RawDeadline>,
    sea_bulk: Option<RawDeadline>,
    air: Option<RawDeadline>,
    road: Option<RawDeadline>,
    rail: Option<RawDeadline>,
    inland_waterway: Option<RawDeadline>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadline {
    /// "departure" or "arrival".
    before: String,
    hours: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    id: String,
    country: String,
    data_dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCarrierApi {
    listen: String,
    #[serde(default = "default_max_message_bytes")]
    max_message_bytes: usize,
    /// Writes (filings, amendments, invalidations, arrivals, answers) per second per carrier,
    /// sustained; absent: the default (5 000); 0: no limit.
    rate_per_carrier: Option<f64>,
    /// Writes one carrier may send at once above the rate (default: two seconds' worth).
    burst_per_carrier: Option<f64>,
    /// Reads (status, notification feeds) per second per carrier; absent: 10 000; 0: no limit.
    read_rate_per_carrier: Option<f64>,
    /// Reads at once above the read rate (default: two seconds' worth).
    read_burst_per_carrier: Option<f64>,
    /// Filings one carrier may have in flight (validated or stored) at once; absent: 256;
    /// 0: no limit.
    max_in_flight_per_carrier: Option<usize>,
    // HTTP/2 limits: see `RawLimits`. (Listed here, not flattened: serde's flatten would
    // let unknown keys through.)
    max_concurrent_streams: Option<u32>,
    max_header_list_bytes: Option<u32>,
    max_pending_message_bytes: Option<usize>,
    request_timeout_seconds: Option<u64>,
    max_connection_age_seconds: Option<u64>,
    max_connection_age_grace_seconds: Option<u64>,
    max_local_resets: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeerApi {
    listen: String,
    max_concurrent_streams: Option<u32>,
    max_header_list_bytes: Option<u32>,
    max_pending_message_bytes: Option<usize>,
    request_timeout_seconds: Option<u64>,
    max_connection_age_seconds: Option<u64>,
    max_connection_age_grace_seconds: Option<u64>,
    max_local_resets: Option<usize>,
}

/// A listener's HTTP/2 limits as written (see `http2::ListenerLimits`); absent keys take its
/// defaults.
struct RawLimits {
    section: &'static str,
    max_concurrent_streams: Option<u32>,
    max_header_list_bytes: Option<u32>,
    max_pending_message_bytes: Option<usize>,
    request_timeout_seconds: Option<u64>,
    max_connection_age_seconds: Option<u64>,
    max_connection_age_grace_seconds: Option<u64>,
    max_local_resets: Option<usize>,
}

impl RawLimits {
    fn seal(
        self,
        invalid: &dyn Fn(&'static str, String) -> ConfigError,
    ) -> Result<crate::http2::ListenerLimits, ConfigError> {
        let defaults = crate::http2::ListenerLimits::default();
        let section = self.section;
        // Each limit must be at least 1 (0 would refuse everything or mean "none").
        let positive = |key: &'static str, value: u64| {
            if value == 0 {
                Err(invalid(
                    key,
                    format!("{section}: must be at least 1 (there is no \"no limit\")"),
                ))
            } else {
                Ok(value)
            }
        };
        let seconds = |key, value: Option<u64>, default: std::time::Duration| {
            value.map_or(Ok(default), |v| {
                positive(key, v).map(std::time::Duration::from_secs)
            })
        };
        Ok(crate::http2::ListenerLimits {
            max_concurrent_streams: positive(
                "max_concurrent_streams",
                self.max_concurrent_streams
                    .map_or(defaults.max_concurrent_streams.into(), u64::from),
            )? as u32,
            max_header_list_bytes: positive(
                "max_header_list_bytes",
                self.max_header_list_bytes
                    .map_or(defaults.max_header_list_bytes.into(), u64::from),
            )? as u32,
            max_pending_message_bytes: positive(
                "max_pending_message_bytes",
                self.max_pending_message_bytes
                    .unwrap_or(defaults.max_pending_message_bytes) as u64,
            )? as usize,
            request_timeout: seconds(
                "request_timeout_seconds",
                self.request_timeout_seconds,
                defaults.request_timeout,
            )?,
            max_connection_age: seconds(
                "max_connection_age_seconds",
                self.max_connection_age_seconds,
                defaults.max_connection_age,
            )?,
            max_connection_age_grace: seconds(
                "max_connection_age_grace_seconds",
                self.max_connection_age_grace_seconds,
                defaults.max_connection_age_grace,
            )?,
            max_local_resets: positive(
                "max_local_resets",
                self.max_local_resets.unwrap_or(defaults.max_local_resets) as u64,
            )? as usize,
        })
    }
}

fn default_max_message_bytes() -> usize {
    4 * 1024 * 1024
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    listen: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    dev_pki: Option<PathBuf>,
    server_cert: Option<PathBuf>,
    server_key: Option<PathBuf>,
    carrier_ca: Option<PathBuf>,
    peer_ca: Option<PathBuf>,
    carrier_crls: Option<Vec<PathBuf>>,
    #[serde(default)]
    peer_crls: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default = "default_segment_bytes")]
    segment_bytes: u64,
    #[serde(default = "default_max_batch")]
    max_batch: usize,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            segment_bytes: default_segment_bytes(),
            max_batch: default_max_batch(),
        }
    }
}

fn default_segment_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_max_batch() -> usize {
    1024
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepresentative {
    agent: String,
    principals: Vec<String>,
}

impl RawConfig {
    fn seal(self, base: &Path, file: &Path) -> Result<Config, ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            key,
            message,
        };
        let gateway = self.gateway;
        if !is_gateway_id(&gateway.id) {
            return Err(invalid(
                "gateway.id",
                format!("{:?} must be letters, digits, '-' or '_'", gateway.id),
            ));
        }
        if gateway.country.len() != 2 || !gateway.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(
                "gateway.country",
                format!(
                    "{:?} is not an ISO 3166 alpha-2 code (two upper-case letters)",
                    gateway.country
                ),
            ));
        }
        let listen = |key: &'static str, text: &str| {
            text.parse::<SocketAddr>().map_err(|e| {
                invalid(
                    key,
                    format!("{text:?} is not an address such as 127.0.0.1:7443 ({e})"),
                )
            })
        };
        let carrier_listen = listen("carrier_api.listen", &self.carrier_api.listen)?;
        let peer_listen = listen("peer_api.listen", &self.peer_api.listen)?;
        let carrier = &self.carrier_api;
        let carrier_limits = RawLimits {
            section: "carrier_api",
            max_concurrent_streams: carrier.max_concurrent_streams,
            max_header_list_bytes: carrier.max_header_list_bytes,
            max_pending_message_bytes: carrier.max_pending_message_bytes,
            request_timeout_seconds: carrier.request_timeout_seconds,
            max_connection_age_seconds: carrier.max_connection_age_seconds,
            max_connection_age_grace_seconds: carrier.max_connection_age_grace_seconds,
            max_local_resets: carrier.max_local_resets,
        }
        .seal(&invalid)?;
        let peer = &self.peer_api;
        let peer_limits = RawLimits {
            section: "peer_api",
            max_concurrent_streams: peer.max_concurrent_streams,
            max_header_list_bytes: peer.max_header_list_bytes,
            max_pending_message_bytes: peer.max_pending_message_bytes,
            request_timeout_seconds: peer.request_timeout_seconds,
            max_connection_age_seconds: peer.max_connection_age_seconds,
            max_connection_age_grace_seconds: peer.max_connection_age_grace_seconds,
            max_local_resets: peer.max_local_resets,
        }
        .seal(&invalid)?;
        let admin_listen = listen("admin.listen", &self.admin.listen)?;
        const MESSAGE_LIMITS: std::ops::RangeInclusive<usize> = 1024..=(64 * 1024 * 1024);
        if !MESSAGE_LIMITS.contains(&self.carrier_api.max_message_bytes) {
            return Err(invalid(
                "carrier_api.max_message_bytes",
                format!(
                    "{} is outside {}..={}",
                    self.carrier_api.max_message_bytes,
                    MESSAGE_LIMITS.start(),
                    MESSAGE_LIMITS.end()
                ),
            ));
        }
        if self.store.segment_bytes < 64 * 1024 {
            return Err(invalid(
                "store.segment_bytes",
                format!("{} is below the minimum of 65536", self.store.segment_bytes),
            ));
        }
        if !(1..=65536).contains(&self.store.max_batch) {
            return Err(invalid(
                "store.max_batch",
                format!("{} is outside 1..=65536", self.store.max_batch),
            ));
        }
        let tls = self.tls.seal(base, &invalid)?;
        // A message is held whole before it is decoded: the budget must hold the largest.
        for (key, limits, largest) in [
            (
                "carrier_api.max_pending_message_bytes",
                &carrier_limits,
                self.carrier_api.max_message_bytes,
            ),
            (
                "peer_api.max_pending_message_bytes",
                &peer_limits,
                crate::server::peer_max_message(self.carrier_api.max_message_bytes),
            ),
        ] {
            if limits.max_pending_message_bytes < largest + 5 {
                return Err(invalid(
                    key,
                    format!(
                        "{} is below the largest message this listener takes ({largest} bytes \
                         and its 5-byte prefix)",
                        limits.max_pending_message_bytes
                    ),
                ));
            }
        }
        let mut representatives: HashMap<String, HashSet<String>> = HashMap::new();
        for entry in self.representatives {
            for eori in std::iter::once(&entry.agent).chain(&entry.principals) {
                if Eori::parse(eori).is_none() {
                    return Err(invalid(
                        "representatives",
                        format!("{eori:?} is not an EORI number"),
                    ));
                }
            }
            representatives
                .entry(entry.agent)
                .or_default()
                .extend(entry.principals);
        }
        let window_days = self
            .validation
            .duplicate_document_window_days
            .unwrap_or(365);
        if window_days > 3660 {
            return Err(invalid(
                "validation.duplicate_document_window_days",
                format!("{window_days} is more than ten years"),
            ));
        }
        let duplicate_document_window =
            std::time::Duration::from_secs(u64::from(window_days) * 86_400);
        let validation = self.validation.seal(&invalid)?;
        let mut peers: Vec<Peer> = Vec::new();
        for peer in self.peers {
            if !is_gateway_id(&peer.id) || peers.iter().any(|p| p.id == peer.id) {
                return Err(invalid(
                    "peers.id",
                    format!("{:?} is not a new gateway id", peer.id),
                ));
            }
            if let Some(endpoint) = &peer.endpoint {
                let uri: Result<http::Uri, _> = endpoint.parse();
                let ok = uri.as_ref().is_ok_and(|u| {
                    u.scheme_str() == Some("https") && u.host().is_some() && u.port().is_some()
                });
                if !ok {
                    return Err(invalid(
                        "peers.endpoint",
                        format!("{endpoint:?} is not an address such as https://host:7444"),
                    ));
                }
            }
            peers.push(Peer {
                id: peer.id,
                endpoint: peer.endpoint,
            });
        }
        let countries =
            crate::validate::codes::CodeLists::builtin().list(crate::validate::codes::COUNTRIES);
        let telemetry = self.telemetry.seal(&invalid)?;
        let defaults = crate::filing::limit::CarrierLimits::default();
        let rate = |key: &'static str,
                    rate: Option<f64>,
                    burst: Option<f64>,
                    default: Option<crate::filing::limit::Rate>| {
            match (rate, burst) {
                (None, None) => Ok(default),
                (Some(0.0), _) => Ok(None),
                (rate, burst) => {
                    let rate = rate.or(default.map(|d| d.per_second)).unwrap_or(1.0);
                    let burst = burst.unwrap_or((2.0 * rate).max(1.0));
                    if !(rate.is_finite() && rate >= 0.001 && burst.is_finite() && burst >= 1.0) {
                        return Err(invalid(
                            key,
                            format!(
                                "{rate} per second with a burst of {burst} is not a rate \
                                 (at least 0.001, burst at least 1; 0 turns the limit off)"
                            ),
                        ));
                    }
                    Ok(Some(crate::filing::limit::Rate {
                        per_second: rate,
                        burst,
                    }))
                }
            }
        };
        let per_carrier = crate::filing::limit::CarrierLimits {
            writes: rate(
                "carrier_api.rate_per_carrier",
                self.carrier_api.rate_per_carrier,
                self.carrier_api.burst_per_carrier,
                defaults.writes,
            )?,
            reads: rate(
                "carrier_api.read_rate_per_carrier",
                self.carrier_api.read_rate_per_carrier,
                self.carrier_api.read_burst_per_carrier,
                defaults.reads,
            )?,
            in_flight: match self.carrier_api.max_in_flight_per_carrier {
                None => defaults.in_flight,
                Some(0) => None,
                Some(limit) => Some(limit),
            },
        };
        let mut routes = Vec::new();
        for route in self.routes {
            if !peers.iter().any(|p| p.id == route.peer) {
                return Err(invalid(
                    "routes.peer",
                    format!("{:?} is not a configured peer", route.peer),
                ));
            }
            for country in route
                .first_entry_countries
                .iter()
                .chain(&route.routing_countries)
                .chain(&route.delivery_countries)
            {
                if !countries.contains(country) {
                    return Err(invalid(
                        "routes",
                        format!("{country:?} is not an ISO 3166 country code"),
                    ));
                }
            }
            let modes = route
                .modes
                .iter()
                .map(|m| {
                    crate::exchange::route::mode_by_name(m).ok_or_else(|| {
                        invalid("routes.modes", format!("{m:?} is not a transport mode"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if route.first_entry_countries.is_empty()
                && route.routing_countries.is_empty()
                && route.delivery_countries.is_empty()
                && modes.is_empty()
            {
                return Err(invalid(
                    "routes",
                    format!(
                        "the route to {} gives no criterion (list every mode to send everything)",
                        route.peer
                    ),
                ));
            }
            routes.push(crate::exchange::route::Route {
                peer: route.peer,
                first_entry_countries: route.first_entry_countries,
                routing_countries: route.routing_countries,
                delivery_countries: route.delivery_countries,
                modes,
            });
        }
        let immutable = match self.lifecycle.immutable_fields {
            None => crate::store::Immutable::default(),
            Some(fields) => {
                let mut immutable = crate::store::Immutable {
                    transport_mode: false,
                    master_documents: false,
                };
                for field in fields {
                    match field.as_str() {
                        "transport_mode" => immutable.transport_mode = true,
                        "master_documents" => immutable.master_documents = true,
                        other => {
                            return Err(invalid(
                                "lifecycle.immutable_fields",
                                format!(
                                    "{other:?}: say \"transport_mode\" or \"master_documents\""
                                ),
                            ));
                        }
                    }
                }
                immutable
            }
        };
        Ok(Config {
            gateway_id: gateway.id,
            country: gateway.country,
            data_dir: base.join(gateway.data_dir),
            carrier_api: CarrierApi {
                listen: carrier_listen,
                max_message_bytes: self.carrier_api.max_message_bytes,
                per_carrier,
                limits: carrier_limits,
            },
            peer_listen,
            peer_limits,
            admin_listen,
            tls,
            store: StoreSettings {
                segment_bytes: self.store.segment_bytes,
                max_batch: self.store.max_batch,
            },
            representatives,
            validation,
            duplicate_document_window,
            immutable,
            peers,
            routes: crate::exchange::route::Routes { routes },
            telemetry,
        })
    }
}

impl RawTelemetry {
    fn seal(
        self,
        invalid: &impl Fn(&'static str, String) -> ConfigError,
    ) -> Result<crate::telemetry::TelemetrySettings, ConfigError> {
        use crate::telemetry::LogFormat;
        let log_format = match self.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "telemetry.log_format",
                    format!("{other:?} is not \"text\" or \"json\""),
                ));
            }
        };
        if let Some(endpoint) = &self.otlp_endpoint {
            let uri: Result<http::Uri, _> = endpoint.parse();
            if !uri.is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            }) {
                return Err(invalid(
                    "telemetry.otlp_endpoint",
                    format!("{endpoint:?} is not an address such as http://otel-collector:4317"),
                ));
            }
        }
        Ok(crate::telemetry::TelemetrySettings {
            otlp_endpoint: self.otlp_endpoint,
            log_format,
        })
    }
}

/// Gateway ids: letters, digits, '-' and '_'.
fn is_gateway_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl RawValidation {
    fn seal(
        self,
        invalid: &dyn Fn(&'static str, String) -> ConfigError,
    ) -> Result<RuleSettings, ConfigError> {
        let severity =
            |key: &'static str, value: Option<String>, default: Severity| match value.as_deref() {
                None => Ok(default),
                Some("error") => Ok(Severity::Error),
                Some("warning") => Ok(Severity::Warning),
                Some(other) => Err(invalid(
                    key,
                    format!("{other:?} is neither \"error\" nor \"warning\""),
                )),
            };
        let defaults = RuleSettings::default();
        let mass_tolerance = match self.mass_tolerance_percent {
            None => defaults.mass_tolerance,
            Some(p) if (0.0..=100.0).contains(&p) => p / 100.0,
            Some(p) => {
                return Err(invalid(
                    "validation.mass_tolerance_percent",
                    format!("{p} is outside 0..=100"),
                ));
            }
        };
        let d = self.deadlines;
        let base = Deadlines::default();
        let deadline = |key: &'static str, raw: Option<RawDeadline>, default: Deadline| {
            let Some(raw) = raw else { return Ok(default) };
            if !(0.0..=24.0 * 30.0).contains(&raw.hours) {
                return Err(invalid(
                    key,
                    format!("hours = {} is outside 0..=720", raw.hours),
                ));
            }
            let lead = std::time::Duration::from_secs_f64(raw.hours * 3600.0);
            match raw.before.as_str() {
                "departure" => Ok(Deadline::BeforeDeparture(lead)),
                "arrival" => Ok(Deadline::BeforeArrival(lead)),
                other => Err(invalid(
                    key,
                    format!("before = {other:?}: say \"departure\" or \"arrival\""),
                )),
            }
        };
        Ok(RuleSettings {
            imo_severity: severity(
                "validation.imo_check",
                self.imo_check,
                defaults.imo_severity,
            )?,
            late_filing_severity: severity(
                "validation.late_filing",
                self.late_filing,
                defaults.late_filing_severity,
            )?,
            mass_tolerance,
            generic_descriptions: self
                .generic_descriptions
                .map(|list| list.iter().map(|d| d.to_lowercase()).collect())
                .unwrap_or(defaults.generic_descriptions),
            generic_description_severity: severity(
                "validation.generic_description",
                self.generic_description,
                defaults.generic_description_severity,
            )?,
            deadlines: Deadlines {
                sea_containerised: deadline(
                    "validation.deadlines.sea_containerised",
                    d.sea_containerised,
                    base.sea_containerised,
                )?,
                sea_bulk: deadline("validation.deadlines.sea_bulk", d.sea_bulk, base.sea_bulk)?,
                air: deadline("validation.deadlines.air", d.air, base.air)?,
                road: deadline("validation.deadlines.road", d.road, base.road)?,
                rail: deadline("validation.deadlines.rail", d.rail, base.rail)?,
                inland_waterway: deadline(
                    "validation.deadlines.inland_waterway",
                    d.inland_waterway,
                    base.inland_waterway,
                )?,
            },
        })
    }
}

impl RawTls {
    fn seal(
        self,
        base: &Path,
        invalid: &dyn Fn(&'static str, String) -> ConfigError,
    ) -> Result<TlsFiles, ConfigError> {
        let dev_pki = self.dev_pki.map(|dir| base.join(dir));
        let file = |key: &'static str, explicit: Option<PathBuf>, dev_name: &str| match (
            explicit, &dev_pki,
        ) {
            (Some(path), _) => Ok(base.join(path)),
            (None, Some(dir)) => Ok(dir.join(dev_name)),
            (None, None) => Err(invalid(
                key,
                "missing: give the file, or set tls.dev_pki to use a development PKI".into(),
            )),
        };
        Ok(TlsFiles {
            server_cert: file(
                "tls.server_cert",
                self.server_cert,
                crate::pki::GATEWAY_CERT,
            )?,
            server_key: file("tls.server_key", self.server_key, crate::pki::GATEWAY_KEY)?,
            carrier_ca: file(
                "tls.carrier_ca",
                self.carrier_ca,
                crate::pki::CARRIER_CA_CERT,
            )?,
            peer_ca: file("tls.peer_ca", self.peer_ca, crate::pki::ADMIN_CA_CERT)?,
            carrier_crls: match (self.carrier_crls, &dev_pki) {
                (Some(files), _) => files.into_iter().map(|f| base.join(f)).collect(),
                (None, Some(dir)) => vec![dir.join(crate::pki::CARRIER_CRL)],
                (None, None) => Vec::new(),
            },
            peer_crls: self.peer_crls.into_iter().map(|f| base.join(f)).collect(),
            dev_pki,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = include_str!("../config/gateway.toml");
    const PRODUCTION: &str = include_str!("../config/production.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/aci/gateway.toml"))
    }

    #[test]
    fn shipped_configs_are_valid() {
        let dev = parse(DEV).expect("dev config");
        assert_eq!(dev.carrier_api.listen.port(), 7443);
        assert_eq!(dev.data_dir, Path::new("/etc/aci/../var/data"));
        assert!(dev.tls.dev_pki.is_some());
        let production = parse(PRODUCTION).expect("production config");
        assert!(production.tls.dev_pki.is_none());
        // The production example spells out the defaults.
        let defaults = RuleSettings::default();
        assert_eq!(production.validation.deadlines, defaults.deadlines);
        assert_eq!(
            production.validation.mass_tolerance,
            defaults.mass_tolerance
        );
        assert_eq!(
            production.duplicate_document_window,
            std::time::Duration::from_secs(365 * 86_400)
        );
        assert_eq!(production.immutable, crate::store::Immutable::default());
        assert_eq!(
            production.carrier_api.limits,
            crate::http2::ListenerLimits::default()
        );
        assert_eq!(
            production.peer_limits.max_connection_age,
            std::time::Duration::from_secs(86_400)
        );
        // Limits are on in both shipped configs.
        for config in [&dev, &production] {
            let limits = config.carrier_api.per_carrier;
            assert!(limits.writes.is_some() && limits.reads.is_some());
            assert!(limits.in_flight.is_some());
        }
        let no_streams = DEV.replace(
            "max_message_bytes = 4194304",
            "max_message_bytes = 4194304\nmax_concurrent_streams = 0",
        );
        let message = parse(&no_streams).expect_err("0 streams").to_string();
        assert!(message.contains("max_concurrent_streams"), "{message}");
        let unknown = DEV.replace(
            "max_message_bytes = 4194304",
            "max_message_bytes = 4194304\nmax_streams = 5",
        );
        assert!(parse(&unknown).is_err(), "unknown keys are refused");
        let relaxed = format!("{DEV}\n[lifecycle]\nimmutable_fields = [\"master_documents\"]\n");
        assert!(!parse(&relaxed).expect("valid").immutable.transport_mode);
        let wrong = format!("{DEV}\n[lifecycle]\nimmutable_fields = [\"colour\"]\n");
        let message = parse(&wrong).expect_err("unknown field").to_string();
        assert!(message.contains("lifecycle.immutable_fields"), "{message}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let text = DEV.replace("[gateway]", "[gateway]\ncolour = \"blue\"");
        let message = parse(&text).expect_err("unknown key").to_string();
        assert!(message.contains("gateway.toml"), "{message}");
        assert!(message.contains("colour"), "{message}");
    }

    #[test]
    fn peers_and_routes_are_checked() {
        let peers = "\n[[peers]]\nid = \"NL-1\"\nendpoint = \"https://nl.example:7444\"\n";
        let route =
            "\n[[routes]]\npeer = \"NL-1\"\nfirst_entry_countries = [\"NL\"]\nmodes = [\"sea\"]\n";
        let config = parse(&format!("{DEV}{peers}{route}")).expect("valid");
        assert_eq!(config.peers[0].id, "NL-1");
        assert_eq!(
            config.routes.routes[0].modes,
            [crate::pb::TransportMode::Sea]
        );
        for (bad, key) in [
            (route.replace("NL-1", "XX-9"), "routes.peer"),
            (route.replace("[\"NL\"]", "[\"QQ\"]"), "routes"),
            (route.replace("\"sea\"", "\"boat\""), "routes.modes"),
            ("\n[[routes]]\npeer = \"NL-1\"\n".to_owned(), "routes"),
        ] {
            let message = parse(&format!("{DEV}{peers}{bad}"))
                .expect_err(key)
                .to_string();
            assert!(message.contains(&format!("key `{key}`")), "{message}");
        }
        let bad_endpoint = peers.replace("https://nl.example:7444", "nl.example");
        let message = parse(&format!("{DEV}{bad_endpoint}"))
            .expect_err("endpoint")
            .to_string();
        assert!(message.contains("peers.endpoint"), "{message}");
    }

    #[test]
    fn rule_settings_are_checked() {
        let text = format!("{DEV}\n[validation]\nlate_filing = \"fatal\"\n");
        let message = parse(&text).expect_err("bad severity").to_string();
        assert!(message.contains("validation.late_filing"), "{message}");
        let text =
            format!("{DEV}\n[validation.deadlines]\nroad = {{ before = \"lunch\", hours = 1 }}\n");
        let message = parse(&text).expect_err("bad deadline").to_string();
        assert!(message.contains("validation.deadlines.road"), "{message}");
        let text = format!("{DEV}\n[validation]\nlate_filing = \"error\"\n");
        let config = parse(&text).expect("valid");
        assert_eq!(config.validation.late_filing_severity, Severity::Error);
    }

    #[test]
    fn bad_values_name_file_and_key() {
        let text = DEV.replace("country = \"GB\"", "country = \"gbr\"");
        let message = parse(&text).expect_err("bad country").to_string();
        assert!(
            message.contains("/etc/aci/gateway.toml: key `gateway.country`"),
            "{message}"
        );
        let text = DEV.replace("127.0.0.1:7443", "localhost");
        let message = parse(&text).expect_err("bad address").to_string();
        assert!(message.contains("carrier_api.listen"), "{message}");
    }
}
