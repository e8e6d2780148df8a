//! Checking the configuration as written ([`super::raw`]) key by key, and sealing it into the
//! settings each module owns. Every refusal names the key.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::exchange::route::{Route, Routes};
use crate::filing::limit::{CarrierLimits, Rate};
use crate::ids::Eori;
use crate::validate::Severity;
use crate::validate::rules::{Deadline, Deadlines, RuleSettings};

use super::raw::*;
use super::{CarrierApi, Config, ConfigError, Peer, StoreSettings, TlsFiles};

/// Makes the refusal of a key.
type Invalid<'a> = &'a dyn Fn(&'static str, String) -> ConfigError;

/// The largest message either listener takes (carrier filings; a little more for peers).
const MESSAGE_LIMITS: std::ops::RangeInclusive<usize> = 1024..=(64 * 1024 * 1024);

impl RawConfig {
    pub(super) fn seal(self, base: &Path, file: &Path) -> Result<Config, ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            key,
            message,
        };
        let invalid: Invalid<'_> = &invalid;
        check_gateway(&self.gateway, invalid)?;
        let carrier_api = self.carrier_api.seal(invalid)?;
        let peer_limits = self.peer_api.limits().seal(invalid)?;
        check_pending_budgets(&carrier_api, &peer_limits, invalid)?;
        let peers = peers(self.peers, invalid)?;
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
        Ok(Config {
            gateway_id: self.gateway.id,
            country: self.gateway.country,
            data_dir: base.join(self.gateway.data_dir),
            carrier_api,
            peer_listen: listen("peer_api.listen", &self.peer_api.listen, invalid)?,
            peer_limits,
            admin_listen: listen("admin.listen", &self.admin.listen, invalid)?,
            tls: self.tls.seal(base, invalid)?,
            store: self.store.seal(base, invalid)?,
            representatives: representatives(self.representatives, invalid)?,
            duplicate_document_window: std::time::Duration::from_secs(
                u64::from(window_days) * 86_400,
            ),
            validation: self.validation.seal(invalid)?,
            lifecycle: self.lifecycle.seal(invalid)?,
            routes: routes(self.routes, &peers, invalid)?,
            peers,
            telemetry: self.telemetry.seal(invalid)?,
        })
    }
}

fn check_gateway(gateway: &RawGateway, invalid: Invalid<'_>) -> Result<(), ConfigError> {
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
    Ok(())
}

fn listen(key: &'static str, text: &str, invalid: Invalid<'_>) -> Result<SocketAddr, ConfigError> {
    text.parse::<SocketAddr>().map_err(|e| {
        invalid(
            key,
            format!("{text:?} is not an address such as 127.0.0.1:7443 ({e})"),
        )
    })
}

impl RawCarrierApi {
    fn seal(self, invalid: Invalid<'_>) -> Result<CarrierApi, ConfigError> {
        if !MESSAGE_LIMITS.contains(&self.max_message_bytes) {
            return Err(invalid(
                "carrier_api.max_message_bytes",
                format!(
                    "{} is outside {}..={}",
                    self.max_message_bytes,
                    MESSAGE_LIMITS.start(),
                    MESSAGE_LIMITS.end()
                ),
            ));
        }
        Ok(CarrierApi {
            listen: listen("carrier_api.listen", &self.listen, invalid)?,
            max_message_bytes: self.max_message_bytes,
            per_carrier: self.per_carrier(invalid)?,
            limits: self.limits().seal(invalid)?,
        })
    }

    fn limits(&self) -> RawLimits {
        RawLimits {
            section: "carrier_api",
            max_concurrent_streams: self.max_concurrent_streams,
            max_header_list_bytes: self.max_header_list_bytes,
            max_pending_message_bytes: self.max_pending_message_bytes,
            request_timeout_seconds: self.request_timeout_seconds,
            max_connection_age_seconds: self.max_connection_age_seconds,
            max_connection_age_grace_seconds: self.max_connection_age_grace_seconds,
            max_local_resets: self.max_local_resets,
        }
    }

    /// What one carrier may do (absent: the default; 0: no limit).
    fn per_carrier(&self, invalid: Invalid<'_>) -> Result<CarrierLimits, ConfigError> {
        let defaults = CarrierLimits::default();
        let rate = |key: &'static str, rate: Option<f64>, burst: Option<f64>, default| {
            rate_of(key, rate, burst, default, invalid)
        };
        Ok(CarrierLimits {
            writes: rate(
                "carrier_api.rate_per_carrier",
                self.rate_per_carrier,
                self.burst_per_carrier,
                defaults.writes,
            )?,
            reads: rate(
                "carrier_api.read_rate_per_carrier",
                self.read_rate_per_carrier,
                self.read_burst_per_carrier,
                defaults.reads,
            )?,
            in_flight: match self.max_in_flight_per_carrier {
                None => defaults.in_flight,
                Some(0) => None,
                Some(limit) => Some(limit),
            },
        })
    }
}

/// A rate limit as written: absent, the default; 0, none; a burst defaulting to two seconds'.
fn rate_of(
    key: &'static str,
    rate: Option<f64>,
    burst: Option<f64>,
    default: Option<Rate>,
    invalid: Invalid<'_>,
) -> Result<Option<Rate>, ConfigError> {
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
            Ok(Some(Rate {
                per_second: rate,
                burst,
            }))
        }
    }
}

impl RawPeerApi {
    fn limits(&self) -> RawLimits {
        RawLimits {
            section: "peer_api",
            max_concurrent_streams: self.max_concurrent_streams,
            max_header_list_bytes: self.max_header_list_bytes,
            max_pending_message_bytes: self.max_pending_message_bytes,
            request_timeout_seconds: self.request_timeout_seconds,
            max_connection_age_seconds: self.max_connection_age_seconds,
            max_connection_age_grace_seconds: self.max_connection_age_grace_seconds,
            max_local_resets: self.max_local_resets,
        }
    }
}

/// A message is held whole before it is decoded: each listener's budget must hold its largest.
fn check_pending_budgets(
    carrier_api: &CarrierApi,
    peer_limits: &crate::http2::ListenerLimits,
    invalid: Invalid<'_>,
) -> Result<(), ConfigError> {
    for (key, limits, largest) in [
        (
            "carrier_api.max_pending_message_bytes",
            &carrier_api.limits,
            carrier_api.max_message_bytes,
        ),
        (
            "peer_api.max_pending_message_bytes",
            peer_limits,
            crate::exchange::peer_max_message(carrier_api.max_message_bytes),
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
    Ok(())
}

impl RawStore {
    fn seal(self, base: &Path, invalid: Invalid<'_>) -> Result<StoreSettings, ConfigError> {
        let jetstream = match (self.backend.as_deref(), self.jetstream) {
            (None | Some("embedded"), _) => None,
            (Some("jetstream"), None) => {
                return Err(invalid(
                    "store.jetstream",
                    "backend \"jetstream\" needs a [store.jetstream] section with `servers`".into(),
                ));
            }
            (Some("jetstream"), Some(raw)) => Some(raw.seal(base, invalid)?),
            (Some(other), _) => {
                return Err(invalid(
                    "store.backend",
                    format!("{other:?} is not \"embedded\" or \"jetstream\""),
                ));
            }
        };
        if self.segment_bytes < 64 * 1024 {
            return Err(invalid(
                "store.segment_bytes",
                format!("{} is below the minimum of 65536", self.segment_bytes),
            ));
        }
        if !(1..=65536).contains(&self.max_batch) {
            return Err(invalid(
                "store.max_batch",
                format!("{} is outside 1..=65536", self.max_batch),
            ));
        }
        Ok(StoreSettings {
            segment_bytes: self.segment_bytes,
            max_batch: self.max_batch,
            jetstream,
        })
    }
}

impl RawJetStream {
    fn seal(
        self,
        base: &Path,
        invalid: Invalid<'_>,
    ) -> Result<crate::store::JetStreamSettings, ConfigError> {
        if self.servers.is_empty() {
            return Err(invalid(
                "store.jetstream.servers",
                "name at least one NATS server".into(),
            ));
        }
        for server in &self.servers {
            if server.parse::<async_nats::ServerAddr>().is_err() {
                return Err(invalid(
                    "store.jetstream.servers",
                    format!("{server:?} is not a NATS server address (nats://host:port)"),
                ));
            }
        }
        let valid_name = !self.stream.is_empty()
            && self
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(invalid(
                "store.jetstream.stream",
                format!("{:?}: use letters, digits, - and _", self.stream),
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(invalid(
                "store.jetstream.replicas",
                format!("{} is outside 1..=5 (JetStream's limit)", self.replicas),
            ));
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(invalid(
                "store.jetstream.cert",
                "give both `cert` and `key`, or neither".into(),
            ));
        }
        Ok(crate::store::JetStreamSettings {
            servers: self.servers,
            stream: self.stream,
            replicas: self.replicas,
            creds: self.creds.map(|p| base.join(p)),
            ca: self.ca.map(|p| base.join(p)),
            cert: self.cert.map(|p| base.join(p)),
            key: self.key.map(|p| base.join(p)),
        })
    }
}

fn representatives(
    entries: Vec<RawRepresentative>,
    invalid: Invalid<'_>,
) -> Result<HashMap<String, HashSet<String>>, ConfigError> {
    let mut representatives: HashMap<String, HashSet<String>> = HashMap::new();
    for entry in entries {
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
    Ok(representatives)
}

fn peers(raw: Vec<RawPeer>, invalid: Invalid<'_>) -> Result<Vec<Peer>, ConfigError> {
    let mut peers: Vec<Peer> = Vec::new();
    for peer in raw {
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
    Ok(peers)
}

fn routes(raw: Vec<RawRoute>, peers: &[Peer], invalid: Invalid<'_>) -> Result<Routes, ConfigError> {
    let countries =
        crate::validate::codes::CodeLists::builtin().list(crate::validate::codes::COUNTRIES);
    let mut routes = Vec::new();
    for route in raw {
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
        routes.push(Route {
            peer: route.peer,
            first_entry_countries: route.first_entry_countries,
            routing_countries: route.routing_countries,
            delivery_countries: route.delivery_countries,
            modes,
        });
    }
    Ok(Routes { routes })
}

impl RawLifecycle {
    fn seal(self, invalid: Invalid<'_>) -> Result<super::Lifecycle, ConfigError> {
        let defaults = crate::store::TimerSettings::default();
        let automatic_invalidation = match self.automatic_invalidation_after.as_deref() {
            None => defaults.automatic_invalidation,
            Some("never") => None,
            Some(text) => Some(duration(
                "lifecycle.automatic_invalidation_after",
                text,
                invalid,
            )?),
        };
        let incomplete_reminder = match self.incomplete_reminder_before.as_deref() {
            None => defaults.incomplete_reminder,
            Some(text) => duration("lifecycle.incomplete_reminder_before", text, invalid)?,
        };
        let max_attachment_bytes = self.max_attachment_bytes.unwrap_or(1024 * 1024);
        if max_attachment_bytes > 16 * 1024 * 1024 {
            return Err(invalid(
                "lifecycle.max_attachment_bytes",
                format!(
                    "{max_attachment_bytes} is more than 16 MiB: attachments travel in the log and to peers"
                ),
            ));
        }
        Ok(super::Lifecycle {
            immutable: immutable(self.immutable_fields, invalid)?,
            timers: crate::store::TimerSettings {
                automatic_invalidation,
                incomplete_reminder,
            },
            max_attachment_bytes,
        })
    }
}

/// A duration as the config writes it: a whole number and a unit, `s`, `m`, `h` or `d`.
fn duration(
    key: &'static str,
    text: &str,
    invalid: Invalid<'_>,
) -> Result<std::time::Duration, ConfigError> {
    let (number, seconds) = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        .into_iter()
        .find_map(|(unit, seconds)| text.strip_suffix(unit).map(|n| (n, seconds)))
        .unwrap_or((text, 0));
    match number.parse::<u64>() {
        Ok(n) if seconds > 0 && n > 0 && n <= 36_600 * 86_400 / seconds => {
            Ok(std::time::Duration::from_secs(n * seconds))
        }
        _ => Err(invalid(
            key,
            format!(
                "{text:?}: say a positive whole number and a unit, as \"200d\", \"2h\", \"30s\""
            ),
        )),
    }
}

fn immutable(
    fields: Option<Vec<String>>,
    invalid: Invalid<'_>,
) -> Result<crate::store::Immutable, ConfigError> {
    let Some(fields) = fields else {
        return Ok(crate::store::Immutable::default());
    };
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
                    format!("{other:?}: say \"transport_mode\" or \"master_documents\""),
                ));
            }
        }
    }
    Ok(immutable)
}

impl RawLimits {
    fn seal(self, invalid: Invalid<'_>) -> Result<crate::http2::ListenerLimits, ConfigError> {
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

impl RawTelemetry {
    fn seal(
        self,
        invalid: Invalid<'_>,
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
    fn seal(self, invalid: Invalid<'_>) -> Result<RuleSettings, ConfigError> {
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
                short_sea: deadline(
                    "validation.deadlines.short_sea",
                    d.short_sea,
                    base.short_sea,
                )?,
                short_sea_countries: short_sea_countries(d.short_sea_countries, invalid)?
                    .unwrap_or(base.short_sea_countries),
            },
        })
    }
}

impl RawTls {
    fn seal(self, base: &Path, invalid: Invalid<'_>) -> Result<TlsFiles, ConfigError> {
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

/// A list of short-sea loading countries, each an ISO 3166 alpha-2 code.
fn short_sea_countries(
    raw: Option<Vec<String>>,
    invalid: Invalid<'_>,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(countries) = raw else {
        return Ok(None);
    };
    let known =
        crate::validate::codes::CodeLists::builtin().list(crate::validate::codes::COUNTRIES);
    if let Some(bad) = countries.iter().find(|c| !known.contains(c)) {
        return Err(invalid(
            "validation.deadlines.short_sea_countries",
            format!("{bad:?} is not an ISO 3166 country code"),
        ));
    }
    Ok(Some(countries))
}
