//! The admin port, plain HTTP/1.1 on hyper: `/healthz` (alive), `/readyz` (ready: 503 while
//! stopping or while the log cannot be written), `/metrics` (Prometheus text, or OpenMetrics when
//! asked) and `/peers` (the
//! peers' progress as JSON, for `aci-gateway peers`); and [`get`], the client the CLI reads it
//! with.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::exchange::Exchange;
use crate::telemetry::{HostSeries, Metrics};

/// How long a client may take to send its request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin port reads from the running gateway.
#[derive(Debug)]
struct Sources {
    exchange: Arc<Exchange>,
    metrics: Arc<Metrics>,
    host: HostFiles,
    shutdown: CancellationToken,
}

/// The files whose state the metrics report, read at each scrape.
#[derive(Debug, Clone)]
pub struct HostFiles {
    /// The data directory: its file system's free space.
    pub data_dir: PathBuf,
    /// Certificate files by name ("server", "carrier_ca", "peer_ca"): when they expire.
    pub certificates: Vec<(&'static str, PathBuf)>,
}

impl HostFiles {
    fn series(&self) -> HostSeries {
        let disk = rustix::fs::statvfs(&self.data_dir).ok().map(|fs| {
            let block = fs.f_frsize.max(1);
            (
                fs.f_bavail.saturating_mul(block),
                fs.f_blocks.saturating_mul(block),
            )
        });
        let certificates = self
            .certificates
            .iter()
            .filter_map(|(name, path)| Some((*name, crate::tls::earliest_expiry(path)?)))
            .collect();
        HostSeries { disk, certificates }
    }
}

/// Serves the admin port until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    exchange: Arc<Exchange>,
    metrics: Arc<Metrics>,
    host: HostFiles,
    shutdown: CancellationToken,
) {
    let sources = Arc::new(Sources {
        exchange,
        metrics,
        host,
        shutdown: shutdown.clone(),
    });
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => continue,
            },
        };
        let sources = Arc::clone(&sources);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let sources = Arc::clone(&sources);
                async move { Ok::<_, Infallible>(answer(&sources, &request)) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}

/// The answer to one request.
fn answer<B>(sources: &Sources, request: &Request<B>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &str| respond(status, "text/plain", body.to_owned());
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    let writable = || {
        sources
            .exchange
            .store()
            .stats()
            .writable
            .load(Ordering::Relaxed)
    };
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if sources.shutdown.is_cancelled() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "stopping\n")
        }
        "/readyz" if !writable() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the log cannot be written (disk full or failing); status is still served\n",
        ),
        "/readyz" => text(StatusCode::OK, "ready\n"),
        "/metrics" => metrics(sources, request),
        "/peers" => respond(
            StatusCode::OK,
            "application/json",
            serde_json::to_string_pretty(&sources.exchange.reports()).unwrap_or_default() + "\n",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The metrics, in the OpenMetrics text format if the scraper asks for it (Prometheus does),
/// else in Prometheus' text format.
fn metrics<B>(sources: &Sources, request: &Request<B>) -> Response<Full<Bytes>> {
    let text = sources.metrics.render(
        &sources.exchange.store().stats().series(),
        &sources
            .exchange
            .reports()
            .iter()
            .map(crate::exchange::PeerReport::series)
            .collect::<Vec<_>>(),
        &sources.host.series(),
    );
    let wants_openmetrics = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"));
    if wants_openmetrics {
        respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            crate::telemetry::openmetrics(&text),
        )
    } else {
        respond(StatusCode::OK, "text/plain; version=0.0.4", text)
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// Why the admin port could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("HTTP request: {0}")]
    Request(#[from] http::Error),
    #[error("{0}")]
    Status(StatusCode),
    #[error("the answer is not UTF-8")]
    NotText,
}

/// A GET on an admin port: the body of a 200 answer.
pub async fn get(addr: SocketAddr, path: &str) -> Result<String, AdminError> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| AdminError::Connect { addr, source })?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await?;
    let driver = tokio::spawn(connection);
    let request = Request::get(path)
        .header(header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    driver.abort();
    if status != StatusCode::OK {
        return Err(AdminError::Status(status));
    }
    String::from_utf8(body.to_vec()).map_err(|_| AdminError::NotText)
}
