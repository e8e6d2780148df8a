//! The operator's commands on a data directory: `log verify`, `log tail`, `reindex` (with the
//! gateway stopped).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::LogCommand;
use super::progress::Progress;
use crate::config::Config;
use crate::{pb, store};

/// `log verify` or `log tail`, on the log of the config's data directory.
pub(super) fn log(command: LogCommand, config: &Path) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let log = match &config.store.jetstream {
        Some(settings) => Log::Stream(settings),
        None => Log::Segments(config.data_dir.join("log")),
    };
    match command {
        LogCommand::Verify => verify(&log),
        LogCommand::Tail { from, limit } => tail(&log, from, limit),
    }
}

/// The log a config names: segment files, or a JetStream stream.
enum Log<'a> {
    Segments(std::path::PathBuf),
    Stream(&'a store::JetStreamSettings),
}

impl Log<'_> {
    fn read(
        &self,
        from: u64,
        visit: impl FnMut(pb::store::LogRecord) -> Result<(), store::LogError>,
    ) -> Result<(), store::LogError> {
        match self {
            Log::Segments(dir) => store::read_log(dir, crate::ids::Seq(from), visit),
            Log::Stream(settings) => store::read_stream(settings, crate::ids::Seq(from), visit),
        }
    }
}

/// Walks every record (CRCs, hashes, the chain); exit 1 at the first bad one.
fn verify(log: &Log<'_>) -> Result<ExitCode> {
    let mut count = 0u64;
    let mut last_hash = String::new();
    // Counted in bytes of segments: their sizes give the total before anything is read.
    let total: u64 = match log {
        Log::Segments(dir) => store::list_segments(dir)?
            .iter()
            .filter_map(|(_, path)| std::fs::metadata(path).ok())
            .map(|m| m.len())
            .sum(),
        Log::Stream(_) => 0,
    };
    let mut progress = Progress::new("log verify", "bytes", total);
    let verified = log.read(1, |record| {
        count += 1;
        last_hash = hex::encode(&record.hash);
        progress.advance(store::record::framed_len(&record));
        Ok(())
    });
    progress.finish();
    match verified {
        Ok(()) => {
            println!("{count} records verified; chain head {last_hash}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("after {count} good records: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Prints records from `from` as JSON lines (the original's size, not its bytes).
fn tail(log: &Log<'_>, from: u64, limit: Option<usize>) -> Result<ExitCode> {
    let mut printed = 0usize;
    let limit = limit.unwrap_or(usize::MAX);
    log.read(from, |mut record| {
        if printed < limit {
            let original_bytes = store::record::original_of(&record).len();
            record.original.clear();
            let mut json = pb::to_json(&record);
            json["original_bytes"] = original_bytes.into();
            println!("{json}");
            printed += 1;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `reindex`: the index rebuilt from the log.
pub(super) fn reindex(config: &Path) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let mut progress: Option<Progress> = None;
    let mut report = |replayed| match replayed {
        store::Replayed::Total(total) => {
            progress = Some(Progress::new("reindex", "records", total));
        }
        store::Replayed::Applied(n) => {
            if let Some(progress) = progress.as_mut() {
                progress.advance(n);
            }
        }
    };
    let records = match &config.store.jetstream {
        Some(settings) => store::reindex_from_stream(&config.data_dir, settings, &mut report)?,
        None => store::reindex(&config.data_dir, config.store.segment_bytes, &mut report)?,
    };
    if let Some(progress) = progress {
        progress.finish();
    }
    println!("index rebuilt from {records} log records");
    Ok(ExitCode::SUCCESS)
}
