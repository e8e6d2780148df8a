//! The configuration file as written: serde structures, every section refusing unknown keys.
//! `seal` checks them into the settings types of [`super::Config`].

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) gateway: RawGateway,
    pub(super) carrier_api: RawCarrierApi,
    pub(super) peer_api: RawPeerApi,
    pub(super) admin: RawListener,
    pub(super) tls: RawTls,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) representatives: Vec<RawRepresentative>,
    #[serde(default)]
    pub(super) validation: RawValidation,
    #[serde(default)]
    pub(super) lifecycle: RawLifecycle,
    #[serde(default)]
    pub(super) peers: Vec<RawPeer>,
    #[serde(default)]
    pub(super) routes: Vec<RawRoute>,
    #[serde(default)]
    pub(super) telemetry: RawTelemetry,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    /// OTLP/gRPC collector endpoint, e.g. "http://otel-collector:4317".
    pub(super) otlp_endpoint: Option<String>,
    /// "text" (default) or "json".
    pub(super) log_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub(super) id: String,
    #[serde(default)]
    pub(super) endpoint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) peer: String,
    #[serde(default)]
    pub(super) first_entry_countries: Vec<String>,
    #[serde(default)]
    pub(super) routing_countries: Vec<String>,
    #[serde(default)]
    pub(super) delivery_countries: Vec<String>,
    #[serde(default)]
    pub(super) modes: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLifecycle {
    /// Fields an amendment may not change: "transport_mode", "master_documents" (the default
    /// is both; the LRN never changes).
    pub(super) immutable_fields: Option<Vec<String>>,
    /// A filing whose goods have not arrived this long after filing is invalidated: "200d"
    /// (the default, UCC Art. 129), "12h", "30s", or "never".
    pub(super) automatic_invalidation_after: Option<String>,
    /// How long before its deadline an incomplete partial filing's carrier is reminded
    /// (default "2h").
    pub(super) incomplete_reminder_before: Option<String>,
    /// Largest total size of the attachments of one referral answer (default 1 MiB).
    pub(super) max_attachment_bytes: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawValidation {
    /// "error" (default) or "warning": many real ships carry bad IMO numbers.
    pub(super) imo_check: Option<String>,
    /// "warning" (default) or "error".
    pub(super) late_filing: Option<String>,
    /// Tolerance between total gross mass and the sum over goods items, in percent.
    pub(super) mass_tolerance_percent: Option<f64>,
    /// Replaces the built-in deny-list of generic descriptions.
    pub(super) generic_descriptions: Option<Vec<String>>,
    /// "error" (default) or "warning".
    pub(super) generic_description: Option<String>,
    /// Days a filer's master transport document may not be filed again (default 365).
    pub(super) duplicate_document_window_days: Option<u32>,
    #[serde(default)]
    pub(super) deadlines: RawDeadlines,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDeadlines {
    pub(super) sea_containerised: Option<RawDeadline>,
    pub(super) sea_bulk: Option<RawDeadline>,
    pub(super) air: Option<RawDeadline>,
    pub(super) road: Option<RawDeadline>,
    pub(super) rail: Option<RawDeadline>,
    pub(super) inland_waterway: Option<RawDeadline>,
    pub(super) short_sea: Option<RawDeadline>,
    /// Countries whose ports are short-sea loading places (replaces the built-in list).
    pub(super) short_sea_countries: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDeadline {
    /// "departure" or "arrival".
    pub(super) before: String,
    pub(super) hours: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    pub(super) id: String,
    pub(super) country: String,
    pub(super) data_dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCarrierApi {
    pub(super) listen: String,
    #[serde(default = "default_max_message_bytes")]
    pub(super) max_message_bytes: usize,
    /// Writes (filings, amendments, invalidations, arrivals, answers) per second per carrier,
    /// sustained; absent: the default (5 000); 0: no limit.
    pub(super) rate_per_carrier: Option<f64>,
    /// Writes one carrier may send at once above the rate (default: two seconds' worth).
    pub(super) burst_per_carrier: Option<f64>,
    /// Reads (status, notification feeds) per second per carrier; absent: 10 000; 0: no limit.
    pub(super) read_rate_per_carrier: Option<f64>,
    /// Reads at once above the read rate (default: two seconds' worth).
    pub(super) read_burst_per_carrier: Option<f64>,
    /// Filings one carrier may have in flight (validated or stored) at once; absent: 256;
    /// 0: no limit.
    pub(super) max_in_flight_per_carrier: Option<usize>,
    // HTTP/2 limits: see `RawLimits`. (Listed here, not flattened: serde's flatten would
    // let unknown keys through.)
    pub(super) max_concurrent_streams: Option<u32>,
    pub(super) max_header_list_bytes: Option<u32>,
    pub(super) max_pending_message_bytes: Option<usize>,
    pub(super) request_timeout_seconds: Option<u64>,
    pub(super) max_connection_age_seconds: Option<u64>,
    pub(super) max_connection_age_grace_seconds: Option<u64>,
    pub(super) max_local_resets: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeerApi {
    pub(super) listen: String,
    pub(super) max_concurrent_streams: Option<u32>,
    pub(super) max_header_list_bytes: Option<u32>,
    pub(super) max_pending_message_bytes: Option<usize>,
    pub(super) request_timeout_seconds: Option<u64>,
    pub(super) max_connection_age_seconds: Option<u64>,
    pub(super) max_connection_age_grace_seconds: Option<u64>,
    pub(super) max_local_resets: Option<usize>,
}

/// A listener's HTTP/2 limits as written (see `http2::ListenerLimits`); absent keys take its
/// defaults.
pub(super) struct RawLimits {
    pub(super) section: &'static str,
    pub(super) max_concurrent_streams: Option<u32>,
    pub(super) max_header_list_bytes: Option<u32>,
    pub(super) max_pending_message_bytes: Option<usize>,
    pub(super) request_timeout_seconds: Option<u64>,
    pub(super) max_connection_age_seconds: Option<u64>,
    pub(super) max_connection_age_grace_seconds: Option<u64>,
    pub(super) max_local_resets: Option<usize>,
}

pub(super) fn default_max_message_bytes() -> usize {
    4 * 1024 * 1024
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener {
    pub(super) listen: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) dev_pki: Option<PathBuf>,
    pub(super) server_cert: Option<PathBuf>,
    pub(super) server_key: Option<PathBuf>,
    pub(super) carrier_ca: Option<PathBuf>,
    pub(super) peer_ca: Option<PathBuf>,
    pub(super) carrier_crls: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub(super) peer_crls: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    #[serde(default = "default_segment_bytes")]
    pub(super) segment_bytes: u64,
    #[serde(default = "default_max_batch")]
    pub(super) max_batch: usize,
    /// "embedded" (default) or "jetstream".
    pub(super) backend: Option<String>,
    pub(super) jetstream: Option<RawJetStream>,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            segment_bytes: default_segment_bytes(),
            max_batch: default_max_batch(),
            backend: None,
            jetstream: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJetStream {
    pub(super) servers: Vec<String>,
    #[serde(default = "default_stream")]
    pub(super) stream: String,
    #[serde(default = "default_replicas")]
    pub(super) replicas: usize,
    pub(super) creds: Option<PathBuf>,
    pub(super) ca: Option<PathBuf>,
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
}

fn default_stream() -> String {
    "ACI".into()
}

fn default_replicas() -> usize {
    3
}

fn default_segment_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_max_batch() -> usize {
    1024
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRepresentative {
    pub(super) agent: String,
    pub(super) principals: Vec<String>,
}
