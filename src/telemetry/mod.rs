//! What operators see: logs (text or JSON; `serve` writes them to stdout), traces
//! (OpenTelemetry over OTLP/gRPC when configured), and metrics ([`metrics`], Prometheus text on
//! the admin port).
//!
//! Traces follow a filing across gateways with W3C trace context: the carrier's `traceparent`
//! is the parent of the gateway's `filing.receive` span; the record keeps that span's context;
//! a forwarder's `exchange.forward` span continues it and hands its own context to the peer in
//! the envelope, whose `exchange.receive` span joins the same trace, however much later.

mod metrics;

pub use self::metrics::{
    FilingAnswer, Histogram, HostSeries, Metrics, PeerSeries, StoreSeries, openmetrics,
};

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Where log lines go: the gateway's own output (`serve`: stdout, as containers and systemd
/// collect it), or stderr for commands whose stdout is their answer (`demo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTo {
    Stdout,
    Stderr,
}

/// `[telemetry]` in the config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// OTLP/gRPC collector, e.g. `http://otel-collector:4317`. Without it, the standard
    /// `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` variables still turn export on.
    pub otlp_endpoint: Option<String>,
    pub log_format: LogFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Spans buffered for export, at most.
const SPAN_QUEUE: usize = 65_536;

/// Whether spans are exported: when not, nothing spends time on span links.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether traces leave the process.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The running trace pipeline; [`Telemetry::shutdown`] flushes what is buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "trace export did not shut down cleanly");
        }
    }
}

/// Starts logging to stderr, filtered by `RUST_LOG` (default `info`), as text. For the commands
/// other than `serve`. Safe to call twice.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter("info"))
        .with_writer(std::io::stderr)
        .try_init();
}

/// `RUST_LOG`, or `default` when it is not set.
fn env_filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},{QUIET_BY_DEFAULT}")))
}

/// What is logged only when asked for by name in `RUST_LOG`: rustls warns at every connection
/// of a client that names the server by IP address in SNI (which the TLS RFC forbids, and
/// which the gateway simply ignores, as rustls does).
const QUIET_BY_DEFAULT: &str = "rustls::server::hs=error";

/// Starts logging (to `to`) as configured and, when an OTLP endpoint is configured (or given by the
/// `OTEL_*` variables, unless `OTEL_SDK_DISABLED=true`), trace export with the service name
/// (`OTEL_SERVICE_NAME`, default `aci-gateway`), version and instance (`gateway_id`) as
/// resource attributes. Logs are filtered by `RUST_LOG`, else `default_filter`. Must run inside
/// the tokio runtime (the exporter's client lives there).
pub fn init(
    settings: &TelemetrySettings,
    gateway_id: &str,
    default_filter: &str,
    to: LogTo,
) -> Result<Telemetry, TelemetryError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let endpoint_given = settings.otlp_endpoint.is_some()
        || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some();
    let provider = if endpoint_given && !disabled {
        use opentelemetry_otlp::WithExportConfig;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
        if let Some(endpoint) = &settings.otlp_endpoint {
            exporter = exporter.with_endpoint(endpoint.clone());
        }
        let mut resource = opentelemetry_sdk::Resource::builder();
        if env("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("aci-gateway");
        }
        let resource = resource
            .with_attributes([
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("service.instance.id", gateway_id.to_owned()),
            ])
            .build();
        // A queue deep enough for bursts (the default 2 048 drops spans at a few thousand
        // filings a second), unless OTEL_BSP_MAX_QUEUE_SIZE says otherwise.
        let mut batch = opentelemetry_sdk::trace::BatchConfigBuilder::default();
        if env("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
            batch = batch.with_max_queue_size(SPAN_QUEUE);
        }
        let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter.build()?)
            .with_batch_config(batch.build())
            .build();
        Some(
            SdkTracerProvider::builder()
                .with_span_processor(processor)
                .with_resource(resource)
                .build(),
        )
    } else {
        None
    };
    // The exporter sees the gateway's own spans at info and above, whatever RUST_LOG says.
    let otel_layer = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("aci-gateway"))
            // Each costs time or attributes on every span, and says little here.
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_level(false)
            .with_filter(Targets::new().with_target("aci_gateway", LevelFilter::INFO))
    });
    let writer = move || -> Box<dyn std::io::Write> {
        match to {
            LogTo::Stdout => Box::new(std::io::stdout()),
            LogTo::Stderr => Box::new(std::io::stderr()),
        }
    };
    let fmt_layer = match settings.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(to == LogTo::Stderr || std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_filter(env_filter(default_filter))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .with_filter(env_filter(default_filter))
            .boxed(),
    };
    let installed = Registry::default()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .is_ok();
    EXPORTING.store(installed && provider.is_some(), Ordering::Relaxed);
    if installed && let Some(endpoint) = &settings.otlp_endpoint {
        tracing::info!(%endpoint, "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

/// An error and its causes on one line, skipping causes its message already quotes: how errors
/// are shown to operators (logs, `peers`, the CLI).
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The remote span context a W3C `traceparent` names (`00-<trace id>-<span id>-<flags>`).
pub fn span_context(traceparent: &str) -> Option<SpanContext> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace_id, span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || trace_id.len() != 32 || span_id.len() != 16 {
        return None;
    }
    let context = SpanContext::new(
        TraceId::from_hex(trace_id).ok()?,
        SpanId::from_hex(span_id).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// Makes `span` a child of the context a `traceparent` names (nothing if it names none).
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    if let Some(parent) = span_context(traceparent) {
        let _ = span.set_parent(Context::new().with_remote_span_context(parent));
    }
}

/// A count or sequence as a span field that OpenTelemetry exports as an integer (a `u64` or
/// `usize` field would be exported as a string).
pub fn number(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// Makes `span` a child of the trace `traceparent` names and returns the `traceparent` what
/// comes next (a stored record, a forwarded envelope) continues from: `span`'s own when traces
/// are exported, else the one given, passed on as it came.
pub fn continue_from(span: &tracing::Span, traceparent: String) -> String {
    continue_trace(span, &traceparent);
    self::traceparent(span).unwrap_or(traceparent)
}

/// The W3C `traceparent` a caller sent in its request metadata ("" when none).
pub fn traceparent_of(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Links `span` to the context a `traceparent` names (when exporting).
pub fn link(span: &tracing::Span, traceparent: &str) {
    if exporting()
        && let Some(context) = span_context(traceparent)
    {
        span.add_link(context);
    }
}

/// The W3C `traceparent` of `span`, when traces are exported and it has a valid context.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !exporting() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_as_w3c_says() {
        let context =
            span_context("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").expect("valid");
        assert_eq!(
            context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(context.span_id().to_string(), "b7ad6b7169203331");
        assert!(context.is_sampled() && context.is_remote());
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            "00-xyz7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert!(span_context(bad).is_none(), "{bad:?}");
        }
    }
}
