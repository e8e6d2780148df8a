//! The cost of tracing: the same bulk load against two gateway processes, one exporting every
//! span over OTLP/gRPC to a sink served here, one with export off, alternated round by round
//! in one run. `cargo bench --bench tracing` prints filings/s for each and the ratio.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use aci_gateway::client::CarrierClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use common::{GatewayBuilder, GatewayProcess};

const STREAMS: usize = 8;
const PER_ROUND: usize = 10_000;
const ROUNDS: usize = 5;

/// An OTLP collector that counts spans and drops them.
#[derive(Default, Clone)]
struct Sink {
    spans: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans
            .fetch_add(spans as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn load(carrier: &CarrierClient, prefix: &str) -> Duration {
    let started = Instant::now();
    let lrns = (0..PER_ROUND).map(|i| format!("{prefix}-{i:06}")).collect();
    common::file_bulk(carrier, lrns, STREAMS).await;
    started.elapsed()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sink = Sink::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("sink port");
        let otlp = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(sink.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let plain_site = GatewayBuilder::default().site();
        let traced_site = GatewayBuilder::default().otlp(&otlp).site();
        let plain = GatewayProcess::start(&plain_site);
        let traced = GatewayProcess::start(&traced_site);
        // Each carrier call carries a trace context, as a traced carrier's would.
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let plain_carrier = common::client(&plain.endpoint, &plain_site.carrier())
            .await
            .with_traceparent(traceparent);
        let traced_carrier = common::client(&traced.endpoint, &traced_site.carrier())
            .await
            .with_traceparent(traceparent);
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let prefix = format!("R{round}");
            off.push(PER_ROUND as f64 / load(&plain_carrier, &prefix).await.as_secs_f64());
            on.push(PER_ROUND as f64 / load(&traced_carrier, &prefix).await.as_secs_f64());
        }
        tokio::time::sleep(Duration::from_secs(6)).await; // the batch exporter's interval
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (off_rate, on_rate) = (median(&mut off), median(&mut on));
        println!(
            "tracing cost: {STREAMS} bulk streams, {ROUNDS} rounds of {PER_ROUND} filings each, alternated"
        );
        println!("  export off:  {off_rate:>8.0} filings/s (rounds {off:.0?})");
        println!("  OTLP export: {on_rate:>8.0} filings/s (rounds {on:.0?})");
        println!(
            "  ratio {:.3} (cost {:.1} %); spans the sink received: {}",
            on_rate / off_rate,
            (1.0 - on_rate / off_rate) * 100.0,
            sink.spans.load(std::sync::atomic::Ordering::Relaxed)
        );
        drop(plain);
        drop(traced);
    });
}
