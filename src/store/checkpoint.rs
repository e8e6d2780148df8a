//! The index's checkpoint: its high-water mark (the sequence of the last record applied),
//! written to disk only once everything up to it is on disk in both the tables and sled.
//!
//! The index writes to two stores that reach the disk on their own schedules: the tables
//! (`store::table`) write through the page cache at once, sled buffers and flushes in the
//! background. Neither is fsynced per batch (the log is). So the mark lives in its own file, and a
//! background thread moves it every [`INTERVAL`]: it reads the mark applied so far, fdatasyncs
//! the tables, flushes sled, and only then writes the mark. After a killed process or a power
//! cut, both stores hold at least every record up to the mark, perhaps more, and the records after
//! it are replayed (each effect idempotent; see `Index::apply`). The same thread moves the
//! tables' doublings ahead, so that they end on an idle gateway too.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::table::{self, OnDisk, TableError};

/// How often the mark moves: what a killed process replays at most.
pub const INTERVAL: Duration = Duration::from_millis(500);
/// Blocks of old slots a table doubling moves each [`INTERVAL`] (besides the moves its inserts
/// make): a doubling also ends while no filings come, a 16-million-slot one in about eight
/// minutes (64 blocks of 256 slots a tick).
const MOVES_PER_TICK: usize = 64;

/// The mark applied so far and the one on disk; a thread that moves the one to the other.
#[derive(Debug)]
pub struct Checkpoint {
    shared: Arc<Shared>,
    /// Stopped and joined on drop (the last handle on the index).
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// The sequence of the last record applied to both stores (not necessarily on disk).
    applied: AtomicU64,
    /// The mark file, and what it holds; one writer at a time (the thread, or a flush at close).
    written: Mutex<(File, u64)>,
    path: PathBuf,
    tables: Vec<Arc<dyn OnDisk>>,
    sled: sled::Db,
    /// Set to stop the thread; its condition variable wakes it early.
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Checkpoint {
    /// Opens the mark file `path` (0 when new) and starts moving it.
    pub fn open(
        path: &Path,
        tables: Vec<Arc<dyn OnDisk>>,
        sled: sled::Db,
    ) -> Result<Self, TableError> {
        let io = |source| TableError::Io {
            path: path.to_owned(),
            source,
        };
        let file = table::open_file(path)?;
        let mut bytes = [0u8; 8];
        let mark = match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => u64::from_le_bytes(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(io(e)),
        };
        let shared = Arc::new(Shared {
            applied: AtomicU64::new(mark),
            written: Mutex::new((file, mark)),
            path: path.to_owned(),
            tables,
            sled,
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("index-checkpoint".into())
                .spawn(move || shared.run())
                .map_err(io)?
        };
        Ok(Checkpoint {
            shared,
            thread: Some(thread),
        })
    }

    /// The sequence of the last record applied.
    pub fn applied(&self) -> u64 {
        self.shared.applied.load(Ordering::Acquire)
    }

    /// Records that everything up to `sequence` is applied (written, not yet synced).
    pub fn set_applied(&self, sequence: u64) {
        self.shared.applied.store(sequence, Ordering::Release);
    }

    /// Moves the mark on disk to what is applied now, after syncing both stores.
    pub fn write(&self) -> Result<(), CheckpointError> {
        self.shared.write()
    }

    /// Sets the mark to 0 on disk, before the stores are cleared for a rebuild: a rebuild cut
    /// short must start again from the beginning.
    pub fn reset(&self) -> Result<(), TableError> {
        let mut written = self
            .shared
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.shared.applied.store(0, Ordering::Release);
        let io = |source| TableError::Io {
            path: self.shared.path.clone(),
            source,
        };
        written.0.write_all_at(&0u64.to_le_bytes(), 0).map_err(io)?;
        written.0.sync_data().map_err(io)?;
        written.1 = 0;
        Ok(())
    }
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        *self
            .shared
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread writes a last mark before it ends; a panic there was already reported.
            let _ = thread.join();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("index database: {0}")]
    Sled(#[from] sled::Error),
}

impl Shared {
    fn run(&self) {
        let mut stop = self
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            let stopping = *stop;
            drop(stop);
            if !stopping {
                self.move_doublings();
            }
            if let Err(error) = self.write() {
                tracing::error!(%error, "the index checkpoint could not be written; a restart replays more of the log");
            }
            if stopping {
                return;
            }
            stop = self
                .stop
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !*stop {
                stop = self
                    .wake
                    .wait_timeout(stop, INTERVAL)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        }
    }

    /// Moves the tables' doublings ahead (a block at a time, each under its table's lock).
    fn move_doublings(&self) {
        for table in &self.tables {
            for _ in 0..MOVES_PER_TICK {
                match table.move_ahead() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => {
                        tracing::warn!(%error, "an index table's doubling could not move ahead; its inserts will");
                        break;
                    }
                }
            }
        }
    }

    fn write(&self) -> Result<(), CheckpointError> {
        let mut written = self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Read before the syncs: everything applied up to it was written before they began.
        let applied = self.applied.load(Ordering::Acquire);
        if applied == written.1 {
            return Ok(());
        }
        for table in &self.tables {
            table.sync()?;
        }
        self.sled.flush()?;
        let io = |source| TableError::Io {
            path: self.path.clone(),
            source,
        };
        written
            .0
            .write_all_at(&applied.to_le_bytes(), 0)
            .map_err(io)?;
        written.0.sync_data().map_err(io)?;
        written.1 = applied;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::store::table::Table;

    /// A doubling the last inserts left half done ends with no insert after it: the checkpoint
    /// moves it (an idle gateway keeps no `*.slots.old`).
    #[test]
    fn the_checkpoint_ends_a_doubling_no_insert_moves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = Arc::new(Table::open(dir.path(), "lrn").expect("open"));
        let batch: Vec<_> = (0..2_100u32)
            .map(|i| (format!("key {i}").into_bytes(), i.to_le_bytes().to_vec()))
            .collect();
        table.insert_all(&batch).expect("insert");
        let old = dir.path().join("lrn.slots.old");
        assert!(old.exists(), "doubling, with old slots left");
        let sled = sled::Config::new().temporary(true).open().expect("sled");
        let checkpoint = Checkpoint::open(&dir.path().join("mark"), vec![table.clone()], sled)
            .expect("checkpoint");
        // Its first tick is at once; the bound is only there so a broken thread fails the test.
        let deadline = Instant::now() + Duration::from_secs(30);
        while old.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!old.exists(), "the checkpoint finished the doubling");
        drop(checkpoint);
        for (key, value) in &batch {
            assert_eq!(
                table.get(key, table::Reads::MayWait).expect("get").as_ref(),
                Some(value)
            );
        }
    }
}
