//! Traces across gateways: two real gateway processes export spans over OTLP/gRPC to a
//! collector run here (a tonic server of the OTLP trace service), and one trace follows a filing
//! from the carrier through gateway A to gateway B.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tonic::{Request, Response, Status};

use common::{GatewayBuilder, GatewayProcess, free_port, sea_filing};

/// A span as the collector received it, with the gateway that sent it.
#[derive(Clone, Debug)]
struct Collected {
    gateway: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    links: Vec<(String, String)>,
    attributes: HashMap<String, String>,
    /// The attributes exported as integers.
    integers: Vec<String>,
    /// OTLP span kind: 2 server, 3 client.
    kind: i32,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Collected>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().expect("collector lock");
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.unwrap_or_default();
            let gateway = resource
                .attributes
                .iter()
                .find(|a| a.key == "service.instance.id")
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|a| {
                            let value = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(Value::StringValue(s)) => s.clone(),
                                Some(Value::IntValue(i)) => i.to_string(),
                                other => format!("{other:?}"),
                            };
                            (a.key.clone(), value)
                        })
                        .collect();
                    let integers = span
                        .attributes
                        .iter()
                        .filter(|a| {
                            matches!(
                                a.value.as_ref().and_then(|v| v.value.as_ref()),
                                Some(Value::IntValue(_))
                            )
                        })
                        .map(|a| a.key.clone())
                        .collect();
                    spans.push(Collected {
                        kind: span.kind,
                        integers,
                        gateway: gateway.clone(),
                        name: span.name,
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        parent_span_id: hex::encode(&span.parent_span_id),
                        links: span
                            .links
                            .iter()
                            .map(|l| (hex::encode(&l.trace_id), hex::encode(&l.span_id)))
                            .collect(),
                        attributes,
                    });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

const CARRIER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CARRIER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_filing_from_the_carrier_through_a_to_b() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("collector port");
    let otlp = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let network = GatewayBuilder::default().id("TEST-N").site();
    let b_port = free_port();
    let b_site = GatewayBuilder::default()
        .id("TEST-B")
        .network_of(&network)
        .peer_port(b_port)
        .peer("TEST-A", None)
        .otlp(&otlp)
        .site();
    let a_site = GatewayBuilder::default()
        .network_of(&network)
        .peer("TEST-B", Some(format!("https://127.0.0.1:{b_port}")))
        .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
        .otlp(&otlp)
        .site();
    let b = GatewayProcess::start(&b_site);
    let a = GatewayProcess::start(&a_site);
    let mut carrier = common::client(&a.endpoint, &a_site.carrier())
        .await
        .with_traceparent(&format!("00-{CARRIER_TRACE}-{CARRIER_SPAN}-01"));
    let receipt = carrier.submit(sea_filing("TRACE-1")).await.expect("filed");
    // A change later in the carrier's trace travels too.
    let invalidation_trace = "5cf92f3577b34da6a3ce929d0e0e4737";
    let mut later = common::client(&a.endpoint, &a_site.carrier())
        .await
        .with_traceparent(&format!("00-{invalidation_trace}-{CARRIER_SPAN}-01"));
    later
        .invalidate(&receipt.mrn, "voyage cancelled")
        .await
        .expect("invalidated");
    // An idempotent retry, and a refused filing whose LRN was readable, in a trace of their own.
    let retry_trace = "6df92f3577b34da6a3ce929d0e0e4738";
    let mut retrying = common::client(&a.endpoint, &a_site.carrier())
        .await
        .with_traceparent(&format!("00-{retry_trace}-{CARRIER_SPAN}-01"));
    retrying
        .submit(sea_filing("TRACE-1"))
        .await
        .expect("the same receipt");
    let mut refused = sea_filing("TRACE-BAD");
    refused.consignments[0].goods_items[0].hs_code = "82041".into();
    retrying.submit(refused).await.expect_err("refused");

    let b_admin = b.admin();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = common::admin_get(b_admin, "/metrics").await;
        if metrics.contains("aci_received_envelopes_total{peer=\"TEST-A\",outcome=\"stored\"} 2") {
            break;
        }
        assert!(Instant::now() < deadline, "B never received the filing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A clean stop flushes the spans still buffered.
    let a_exit = tokio::task::spawn_blocking(move || a.terminate());
    assert!(a_exit.await.expect("join").success());
    let b_exit = tokio::task::spawn_blocking(move || b.terminate());
    assert!(b_exit.await.expect("join").success());

    let spans = collector.spans.lock().expect("lock").clone();
    let find = |gateway: &str, name: &str| -> Collected {
        spans
            .iter()
            .find(|s| s.gateway.contains(gateway) && s.name == name)
            .cloned()
            .unwrap_or_else(|| {
                let seen: Vec<(&str, &str)> = spans
                    .iter()
                    .map(|s| (s.gateway.as_str(), s.name.as_str()))
                    .collect();
                panic!("no {name} span from {gateway}; got {seen:?}")
            })
    };
    // Gateway A: the carrier's span is the parent of the filing's; its stages are children.
    let receive = find("TEST-A", "filing.receive");
    assert_eq!(receive.trace_id, CARRIER_TRACE);
    assert_eq!(receive.parent_span_id, CARRIER_SPAN);
    assert_eq!(receive.attributes.get("mrn"), Some(&receipt.mrn));
    assert_eq!(
        receive.attributes.get("lrn").map(String::as_str),
        Some("TRACE-1")
    );
    assert_eq!(
        receive.attributes.get("filer").map(String::as_str),
        Some(common::CARRIER)
    );
    // A server span of the gRPC call, with its rpc.* attributes.
    assert_eq!(receive.kind, 2, "filing.receive is a server span");
    for (key, value) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "aci.v1.CarrierGateway"),
        ("rpc.method", "Submit"),
        ("outcome", "registered"),
    ] {
        assert_eq!(
            receive.attributes.get(key).map(String::as_str),
            Some(value),
            "{key}"
        );
    }
    for stage in ["filing.rules", "store.append"] {
        let child = find("TEST-A", stage);
        assert_eq!(child.trace_id, CARRIER_TRACE, "{stage}");
        assert_eq!(child.parent_span_id, receive.span_id, "{stage}");
    }
    // The group commit is its own span, linked to the filings it made durable.
    let commit = find("TEST-A", "log.group_commit");
    assert!(
        commit
            .links
            .contains(&(CARRIER_TRACE.to_owned(), receive.span_id.clone())),
        "{commit:?}"
    );
    // Forwarding continues the filing's trace; B's span is the forward span's child.
    let forward = find("TEST-A", "exchange.forward");
    assert_eq!(forward.trace_id, CARRIER_TRACE);
    assert_eq!(forward.parent_span_id, receive.span_id);
    assert_eq!(
        forward.attributes.get("peer").map(String::as_str),
        Some("TEST-B")
    );
    assert_eq!(
        forward.attributes.get("outcome").map(String::as_str),
        Some("delivered")
    );
    assert_eq!(forward.kind, 3, "the forward is a client span");
    assert!(
        forward.integers.contains(&"sequence".to_owned()),
        "{forward:?}"
    );
    assert!(
        commit.integers.contains(&"records".to_owned()),
        "{commit:?}"
    );
    let at_b = find("TEST-B", "exchange.receive");
    assert_eq!(
        at_b.trace_id, CARRIER_TRACE,
        "the carrier's trace reaches B"
    );
    assert_eq!(at_b.parent_span_id, forward.span_id);
    assert_eq!(at_b.attributes.get("mrn"), Some(&receipt.mrn));
    assert_eq!(
        at_b.attributes.get("outcome").map(String::as_str),
        Some("stored")
    );
    assert_eq!(at_b.kind, 2, "B's receipt is a server span");
    assert!(at_b.integers.contains(&"origin_sequence".to_owned()));

    // The retry is counted as a duplicate, in the span as in the metrics; the refused filing's
    // span names its LRN.
    let retried: Vec<&Collected> = spans
        .iter()
        .filter(|s| s.name == "filing.receive" && s.trace_id == retry_trace)
        .collect();
    let outcome_of = |lrn: &str| {
        retried
            .iter()
            .find(|s| s.attributes.get("lrn").map(String::as_str) == Some(lrn))
            .and_then(|s| s.attributes.get("outcome").cloned())
    };
    assert_eq!(
        outcome_of("TRACE-1").as_deref(),
        Some("duplicate"),
        "{retried:?}"
    );
    assert_eq!(
        outcome_of("TRACE-BAD").as_deref(),
        Some("rejected"),
        "{retried:?}"
    );

    // The invalidation: filing.change in its caller's trace, its forward and B's receipt too.
    let in_trace = |gateway: &str, name: &str| {
        spans
            .iter()
            .find(|s| {
                s.gateway.contains(gateway) && s.name == name && s.trace_id == invalidation_trace
            })
            .cloned()
            .unwrap_or_else(|| panic!("no {name} from {gateway} in the invalidation's trace"))
    };
    let change = in_trace("TEST-A", "filing.change");
    assert_eq!(change.parent_span_id, CARRIER_SPAN);
    assert_eq!(
        change.attributes.get("change").map(String::as_str),
        Some("invalidate")
    );
    let forward = in_trace("TEST-A", "exchange.forward");
    assert_eq!(forward.parent_span_id, change.span_id);
    let at_b = in_trace("TEST-B", "exchange.receive");
    assert_eq!(at_b.parent_span_id, forward.span_id);
}

/// Every query of the Grafana dashboard names metrics a running gateway (with a peer) exports,
/// and `/metrics` served as OpenMetrics names counters without `_total` and ends with `# EOF`.
#[tokio::test]
async fn the_dashboard_queries_only_metrics_the_gateway_exports() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/grafana/aci-gateway.json"),
        )
        .expect("the dashboard"),
    )
    .expect("the dashboard is JSON");
    let (_site, gateway) = GatewayBuilder::default().peer("TEST-B", None).start().await;
    let text = aci_gateway::admin::get(gateway.admin_addr, "/metrics")
        .await
        .expect("metrics");
    let exported: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    let name = regex::Regex::new(r"\baci_[a-z_]+").expect("regex");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}: no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            for found in name.find_iter(expr) {
                let metric = found.as_str();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| metric.strip_suffix(suffix))
                    .filter(|base| exported.contains(base))
                    .unwrap_or(metric);
                assert!(
                    exported.contains(family),
                    "panel {}: {metric} is not exported",
                    panel["title"]
                );
            }
        }
    }
    for metric in [
        "aci_disk_free_bytes",
        "aci_disk_size_bytes",
        "aci_tls_certificate_expiry_timestamp_seconds",
    ] {
        assert!(exported.contains(metric), "{metric} missing");
    }
    let openmetrics = aci_gateway::telemetry::openmetrics(&text);
    assert!(openmetrics.ends_with("# EOF\n"));
    assert!(openmetrics.contains("# TYPE aci_filings counter\n"));
    assert!(openmetrics.contains("aci_filings_total{"));
    assert!(!openmetrics.contains("# TYPE aci_log_commit_seconds_total"));
    gateway.stop().await.expect("stop");
}
