//! `serve` (with the benchmark switches of a `testing` build) and `demo`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use super::DEFAULT_CONFIG;
use crate::config::Config;
use crate::{server, telemetry};

/// Switches for benchmarks, in builds with the `testing` feature only (`benches/run.sh`).
#[cfg(feature = "testing")]
#[derive(Debug, Args)]
pub(super) struct BenchSwitches {
    /// Benchmarks only: answer filings without validating or storing them.
    #[arg(long)]
    echo: bool,
    /// Benchmarks only: do not fdatasync the log (a crash loses acknowledged filings).
    #[arg(long)]
    unsafe_no_fsync: bool,
}

/// A production build has no benchmark switches.
#[cfg(not(feature = "testing"))]
#[derive(Debug, Args)]
pub(super) struct BenchSwitches {}

impl BenchSwitches {
    pub(super) fn options(self, insecure_dev: bool) -> server::Options {
        #[cfg(feature = "testing")]
        return server::Options {
            insecure_dev,
            echo: self.echo,
            unsafe_no_fsync: self.unsafe_no_fsync,
            disk: None,
        };
        #[cfg(not(feature = "testing"))]
        server::Options { insecure_dev }
    }
}

/// `serve`: the gateway until SIGTERM or Ctrl-C; exit 64 on a bad config.
pub(super) async fn run(
    config_path: &Path,
    options: server::Options,
    ready_file: Option<PathBuf>,
) -> Result<ExitCode> {
    let insecure_dev = options.insecure_dev;
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(64));
        }
    };
    let telemetry = telemetry::init(
        &config.telemetry,
        &config.gateway_id,
        "info",
        telemetry::LogTo::Stdout,
    )?;
    let config_shown = config_path.display().to_string();
    let mut ready_error = None;
    let result = server::run(&config, options, shutdown_signal(), |gateway| {
        let scheme = if insecure_dev { "http" } else { "https" };
        let example = Path::new("schemas/examples/sea-f10.json");
        let config_arg = if config_shown == DEFAULT_CONFIG {
            String::new()
        } else {
            format!(" --config {config_shown}")
        };
        if example.exists() {
            tracing::info!(
                "ready: submit the sample filing with `cargo run --release -- submit {}{config_arg}`",
                example.display()
            );
        } else {
            tracing::info!(
                "ready: submit a filing (JSON or XML) with `aci-gateway submit FILE{config_arg}`; \
                 samples are in the repository's schemas/examples/"
            );
        }
        if let Some(path) = &ready_file {
            let ready = serde_json::json!({
                "carrier": format!("{scheme}://{}", gateway.carrier_addr),
                "peer": gateway.peer_addr.to_string(),
                "admin": gateway.admin_addr.to_string(),
                "recovered_records": gateway.recovery.last_seq,
                "cut_bytes": gateway.recovery.cut.as_ref().map(|c| c.bytes),
                "acknowledged_lost": gateway.recovery.acknowledged_lost,
            });
            let tmp = path.with_extension("tmp");
            if let Err(e) = std::fs::write(&tmp, ready.to_string())
                .and_then(|()| std::fs::rename(&tmp, path))
            {
                ready_error = Some(e);
            }
        }
    })
    .await;
    // Flush the spans buffered (the exporter blocks while it sends them).
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    result?;
    if let Some(e) = ready_error {
        bail!("could not write the ready file: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the gateway");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// `demo`: two administrations' gateways in one process, end to end.
pub(super) async fn demo(dir: Option<PathBuf>) -> Result<ExitCode> {
    let telemetry = telemetry::init(
        &Default::default(),
        "demo",
        "warn",
        telemetry::LogTo::Stderr,
    )?;
    let outcome = super::demo::run(dir).await;
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    outcome?;
    Ok(ExitCode::SUCCESS)
}
