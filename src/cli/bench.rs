//! Measuring commands: `bench-fsync` (the disk's own sync) and `load` (the load generator
//! against a gateway).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::config::Config;

use super::ClientArgs;

/// Appends `count` 4 KiB records to a scratch file with one fdatasync per `batch`: records/s
/// and fdatasync latency percentiles, as JSON.
pub(super) fn bench_fsync(
    dir: &Path,
    count: u64,
    batch: u64,
    prezeroed: bool,
) -> Result<serde_json::Value> {
    use std::io::{Seek, Write};
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(".aci-bench-fsync-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let record = vec![0x5a_u8; 4096];
    if prezeroed {
        let zeros = vec![0_u8; 1 << 20];
        for _ in 0..(count * record.len() as u64).div_ceil(zeros.len() as u64) {
            file.write_all(&zeros)?;
        }
        file.sync_all()?;
        file.rewind()?;
    }
    let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    let started = std::time::Instant::now();
    for i in 1..=count {
        file.write_all(&record)?;
        if i % batch.max(1) == 0 || i == count {
            let sync = std::time::Instant::now();
            file.sync_data()?;
            latency.record(
                u64::try_from(sync.elapsed().as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(serde_json::json!({
        "records": count,
        "batch": batch,
        "prezeroed": prezeroed,
        "records_per_second": count as f64 / seconds,
        "fdatasync_us": {
            "p50": latency.value_at_quantile(0.5),
            "p99": latency.value_at_quantile(0.99),
            "max": latency.max(),
        },
    }))
}

/// `bench-fsync`: prints the report as JSON.
pub(super) async fn fsync(
    dir: PathBuf,
    count: u64,
    batch: u64,
    prezeroed: bool,
) -> Result<ExitCode> {
    let report =
        tokio::task::spawn_blocking(move || bench_fsync(&dir, count, batch, prezeroed)).await??;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// `load`: drives the gateway and prints the report (text, or JSON with `json`).
pub(super) async fn load(
    plan: LoadArgs,
    payloads: &Path,
    json: bool,
    client: &ClientArgs,
) -> Result<ExitCode> {
    if plan.stored.is_some() && plan.mode != super::load::Mode::Status {
        anyhow::bail!("--stored is for --mode status (the filings it reads)");
    }
    let (endpoint, credentials) = super::carrier::client_target(client)?;
    let stored = match plan.stored {
        Some(records) => {
            let config = Config::load(&client.config).with_context(|| {
                format!(
                    "the status mode reads the MRNs' country from {}",
                    client.config.display()
                )
            })?;
            Some(super::load::Stored {
                records,
                country: config.country,
                year: time::OffsetDateTime::now_utc().year(),
            })
        }
        None => None,
    };
    let plan = super::load::Plan {
        endpoint,
        credentials,
        connections: plan.connections.max(1),
        concurrency: plan.concurrency.max(1),
        mode: plan.mode,
        rate: plan.rate,
        duration: plan.duration.map(std::time::Duration::from_secs_f64),
        count: plan.count,
        stored,
    };
    let payloads = match plan.mode {
        super::load::Mode::Status => Vec::new(),
        _ => super::load::payloads(payloads)?,
    };
    let report = super::load::run(&plan, payloads).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(ExitCode::SUCCESS)
}

/// What `load` is asked to do.
#[derive(Debug)]
pub(super) struct LoadArgs {
    pub connections: usize,
    pub concurrency: usize,
    pub mode: super::load::Mode,
    pub rate: Option<f64>,
    pub duration: Option<f64>,
    pub count: Option<u64>,
    /// Status mode: how many filings the gateway holds.
    pub stored: Option<u64>,
}
