//! The append-only segment log: the gateway's source of truth.
//!
//! Segment files live in `<data>/log/`, named by the sequence of their first record
//! (`00000000000000000001.seg`). Only the writer appends, and only to the newest segment; a new
//! segment and the directory are fsynced when it is created. At open, only the newest segment is
//! read: a torn tail (a frame cut short, a CRC mismatch or zeroed space at the end) is moved
//! aside into a `.torn` file and cut off; damage followed by intact frames is corruption of
//! synced data, and opening refuses rather than discard acknowledged records.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ids::Seq;
use crate::pb::store::LogRecord;

use super::disk::{AppendFile, Disk, OsDisk};
use super::record::{self, FrameError, GENESIS, Opened, RecordHead, SharedRecord};

/// What opening the log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Sequence of the last intact record (0 for an empty log).
    pub last_seq: u64,
    /// Bytes cut from the end of the newest segment, and where they were kept.
    pub cut: Option<TornTail>,
    /// Sequences the index knew (so they had been acknowledged) but the log no longer holds:
    /// synced data was lost below us. The index was rebuilt from the log.
    pub acknowledged_lost: Option<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    pub offset: u64,
    pub bytes: u64,
    pub reason: String,
    pub kept_in: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{segment} at byte {offset}: {reason}; refusing to discard the records after it")]
    Corrupt {
        segment: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A record handed to the log does not carry the sequence the log would give it next.
    #[error("the log's next record is {expected}, not {found}")]
    OutOfOrder { expected: u64, found: u64 },
    /// A shared log moved on since this writer last read it: another writer appended first.
    /// Nothing of the batch was appended; follow the log and decide it again.
    #[error("another replica appended to the shared log first")]
    Behind,
    /// A shared log cannot be reached or has no quorum now; nothing was acknowledged.
    #[error("the shared log is unavailable: {reason}")]
    Unavailable { reason: String },
    /// A message of the shared log's stream is not what this gateway wrote.
    #[error("stream message {stream_seq}: {reason}")]
    Stream { stream_seq: u64, reason: String },
}

impl LogError {
    /// Whether the write failed for want of space (a full disk or an exhausted quota).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, LogError::Io { source, .. } if matches!(
            source.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ))
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The largest batch buffer kept for the next batch (one of huge filings is let go).
const BATCH_BUFFER_KEPT: usize = 8 * 1024 * 1024;

/// How much of the log, counted back from its end, stays in the operating system's page cache
/// once synced. Readers that keep up (forwarders, pull feeds) read records just after they are
/// written; the rest of the log is read, if ever, front to back by a reader catching up, which
/// the kernel's read-ahead serves well from disk. The memory is the index's: its reads (a
/// status, a duplicate check) go anywhere in its files, and 10 000 000 filings write ~10 GB of
/// log beside ~7 GB of index. Where memory is limited (a container's limit counts the page
/// cache), the log's cold pages would otherwise compete with the index's.
const CACHED_TAIL: u64 = 32 * 1024 * 1024;
/// The log's cache is released behind [`CACHED_TAIL`] this many bytes at a time.
const RELEASE_STEP: u64 = 4 * 1024 * 1024;

/// The appending side of the segment log (held by [`super::EmbeddedLog`] for the writer).
/// Readers need no handle: [`LogReader`] tails the files, [`read_from`] reads them through.
pub struct SegmentLog {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    segment_bytes: u64,
    file: Box<dyn AppendFile>,
    file_path: PathBuf,
    file_len: u64,
    /// How far from its start the newest segment's page cache was released.
    released: u64,
    /// The segment before the newest, while its end is still within [`CACHED_TAIL`].
    finished: Option<FinishedSegment>,
    next_seq: u64,
    last_hash: [u8; 32],
    /// A batch's bytes on their way to the file. Kept from batch to batch: a buffer allocated
    /// afresh each time came from newly mapped pages, and the kernel zeroing them was 2.6 % of
    /// the gateway's core under load.
    batch: Vec<u8>,
    /// fdatasync calls made, for the metrics and the benchmark.
    pub syncs: u64,
    /// Time spent in `fdatasync` of segment data, in total.
    pub sync_time: std::time::Duration,
    /// Whether batches are synced (always, but for benchmarks measuring the cost of the sync).
    pub sync_data: bool,
}

/// A finished segment whose page cache is not all released yet.
struct FinishedSegment {
    file: Box<dyn AppendFile>,
    path: PathBuf,
    len: u64,
    released: u64,
}

/// Where the log stood before a batch: what [`SegmentLog::roll_back`] returns it to.
#[derive(Debug, Clone)]
pub struct Mark {
    file_path: PathBuf,
    file_len: u64,
    next_seq: u64,
    last_hash: [u8; 32],
}

impl SegmentLog {
    /// Opens (or creates) the log in `dir` on `disk` and recovers its tail.
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        segment_bytes: u64,
    ) -> Result<(SegmentLog, Recovery), LogError> {
        disk.create_dir_all(dir).map_err(io_error(dir))?;
        let mut segments = list_segments_on(&*disk, dir)?;
        let mut recovery = Recovery::default();
        if segments.is_empty() {
            let path = segment_path(dir, 1);
            create_segment(&*disk, dir, &path)?;
            segments.push((1, path));
        }
        let (newest_first, newest_path) = segments.last().cloned().expect("at least one segment");
        let scan = scan_segment(&*disk, &newest_path, newest_first)?;
        if let Some(damage) = scan.damage {
            recovery.cut = Some(cut_tail(&*disk, &newest_path, scan.valid_len, damage)?);
        }
        let (last_seq, last_hash) = match scan.last {
            Some(last) => last,
            None if segments.len() > 1 => {
                let (first, path) = &segments[segments.len() - 2];
                let previous = scan_segment(&*disk, path, *first)?;
                if let Some(damage) = previous.damage {
                    return Err(LogError::Corrupt {
                        segment: path.clone(),
                        offset: previous.valid_len,
                        reason: damage,
                    });
                }
                previous.last.unwrap_or((newest_first - 1, GENESIS))
            }
            None => (newest_first - 1, GENESIS),
        };
        recovery.last_seq = last_seq;
        let file_len = scan.valid_len;
        let file = disk
            .open_append(&newest_path, file_len)
            .map_err(io_error(&newest_path))?;
        Ok((
            SegmentLog {
                disk,
                dir: dir.to_owned(),
                segment_bytes,
                file,
                file_path: newest_path,
                file_len,
                released: 0,
                finished: None,
                next_seq: last_seq + 1,
                last_hash,
                batch: Vec::new(),
                syncs: 0,
                sync_time: std::time::Duration::ZERO,
                sync_data: true,
            },
            recovery,
        ))
    }

    /// The sequence the next appended record will get.
    pub fn next_seq(&self) -> Seq {
        Seq(self.next_seq)
    }

    /// Seals `record`, which must carry the next sequence, into the chain (with its encoded
    /// `manifest`, if it came so) and returns its frame. Nothing is written until
    /// [`SegmentLog::write_batch`].
    pub fn seal_next(
        &mut self,
        record: &mut LogRecord,
        manifest: Option<&[u8]>,
    ) -> Result<Vec<u8>, LogError> {
        if record.sequence != self.next_seq {
            return Err(LogError::OutOfOrder {
                expected: self.next_seq,
                found: record.sequence,
            });
        }
        let (frame, hash) = record::seal(record, manifest, self.last_hash);
        self.next_seq += 1;
        self.last_hash = hash;
        Ok(frame)
    }

    /// Where the log stands now, to [`SegmentLog::roll_back`] to if a batch fails.
    pub fn mark(&self) -> Mark {
        Mark {
            file_path: self.file_path.clone(),
            file_len: self.file_len,
            next_seq: self.next_seq,
            last_hash: self.last_hash,
        }
    }

    /// Undoes everything since `mark`: segments created since are removed, the segment then
    /// newest is cut back to its length then, and the next sequence and hash are restored. What
    /// a failed batch wrote was never acknowledged nor read (readers stop at the durable
    /// sequence), so it can go. On success the log appends again, from the mark.
    pub fn roll_back(&mut self, mark: &Mark) -> Result<(), LogError> {
        let mut removed = Vec::new();
        for (first, path) in list_segments_on(&*self.disk, &self.dir)? {
            if first >= mark.next_seq && path != mark.file_path {
                self.disk.remove(&path).map_err(io_error(&path))?;
                removed.push(path);
            }
        }
        if !removed.is_empty() {
            self.disk.sync_dir(&self.dir).map_err(io_error(&self.dir))?;
        }
        // The finished segment is followed on, unless it is gone or appended to again.
        if self.finished.as_ref().is_some_and(|finished| {
            finished.path == mark.file_path || removed.contains(&finished.path)
        }) {
            self.finished = None;
        }
        self.disk
            .truncate(&mark.file_path, mark.file_len)
            .map_err(io_error(&mark.file_path))?;
        self.file = self
            .disk
            .open_append(&mark.file_path, mark.file_len)
            .map_err(io_error(&mark.file_path))?;
        self.file_path = mark.file_path.clone();
        self.file_len = mark.file_len;
        // Released from its start again: advice over bytes already released costs little.
        self.released = 0;
        self.next_seq = mark.next_seq;
        self.last_hash = mark.last_hash;
        Ok(())
    }

    /// Writes the frames of consecutive sealed records and makes them durable: one fdatasync per
    /// segment touched. `first_seq` is the sequence of the first frame.
    pub fn write_batch(&mut self, first_seq: u64, frames: &[Vec<u8>]) -> Result<(), LogError> {
        let mut pending = std::mem::take(&mut self.batch);
        pending.clear();
        let written = self.write_frames(first_seq, frames, &mut pending);
        if pending.capacity() <= BATCH_BUFFER_KEPT {
            self.batch = pending;
        }
        written
    }

    fn write_frames(
        &mut self,
        first_seq: u64,
        frames: &[Vec<u8>],
        pending: &mut Vec<u8>,
    ) -> Result<(), LogError> {
        for (i, frame) in frames.iter().enumerate() {
            let frame_len = frame.len() as u64;
            let unwritten = pending.len() as u64;
            if self.file_len + unwritten > 0
                && self.file_len + unwritten + frame_len > self.segment_bytes
            {
                self.flush(pending)?;
                self.roll(first_seq + i as u64)?;
            }
            pending.extend_from_slice(frame);
        }
        self.flush(pending)
    }

    fn flush(&mut self, pending: &mut Vec<u8>) -> Result<(), LogError> {
        if pending.is_empty() {
            return Ok(());
        }
        self.file
            .append(pending)
            .map_err(io_error(&self.file_path))?;
        if self.sync_data {
            let started = std::time::Instant::now();
            self.file.sync_data().map_err(io_error(&self.file_path))?;
            self.sync_time += started.elapsed();
            self.syncs += 1;
        }
        self.file_len += pending.len() as u64;
        pending.clear();
        Ok(())
    }

    /// Releases the page cache of the synced log more than [`CACHED_TAIL`] behind its end. For
    /// after a batch's callers are answered: a step's advice takes ~150 us.
    ///
    /// Release points are multiples of [`RELEASE_STEP`] (so of the page size): the kernel keeps
    /// a page the range covers only in part, and the next range starting inside it would keep
    /// it again.
    pub fn release_behind(&mut self) {
        // Unsynced pages are dirty: the advice would start their writeback instead.
        if !self.sync_data {
            return;
        }
        let keep_from = step_down(self.file_len.saturating_sub(CACHED_TAIL));
        if keep_from >= self.released + RELEASE_STEP {
            release(&mut *self.file, &self.file_path, self.released, keep_from);
            self.released = keep_from;
        }
        if let Some(finished) = &mut self.finished {
            let keep_from = match finished
                .len
                .saturating_sub(CACHED_TAIL.saturating_sub(self.file_len))
            {
                // Its end: the last page goes too (a range to the file's end takes it).
                all if all == finished.len => all,
                part => step_down(part),
            };
            if keep_from == finished.len || keep_from >= finished.released + RELEASE_STEP {
                release(
                    &mut *finished.file,
                    &finished.path,
                    finished.released,
                    keep_from,
                );
                finished.released = keep_from;
            }
            if finished.released == finished.len {
                self.finished = None;
            }
        }
    }

    fn roll(&mut self, first_seq: u64) -> Result<(), LogError> {
        // A finished segment ends with its last record, not with zeros preallocated for more:
        // only the newest segment can have a zero-filled end.
        self.disk
            .truncate(&self.file_path, self.file_len)
            .map_err(io_error(&self.file_path))?;
        let path = segment_path(&self.dir, first_seq);
        create_segment(&*self.disk, &self.dir, &path)?;
        let file = self.disk.open_append(&path, 0).map_err(io_error(&path))?;
        // Only one finished segment is followed: the one before it goes whole now, even within
        // the cached tail when segments are smaller than it.
        if let Some(mut older) = self.finished.take() {
            release(&mut *older.file, &older.path, older.released, older.len);
        }
        self.finished = Some(FinishedSegment {
            file: std::mem::replace(&mut self.file, file),
            path: std::mem::replace(&mut self.file_path, path),
            len: self.file_len,
            released: self.released,
        });
        self.file_len = 0;
        self.released = 0;
        self.syncs += 3;
        Ok(())
    }
}

/// `offset` rounded down to a multiple of [`RELEASE_STEP`].
fn step_down(offset: u64) -> u64 {
    offset / RELEASE_STEP * RELEASE_STEP
}

/// Releases the page cache of `from..to` of a segment (see [`CACHED_TAIL`]). Advice only: a
/// failure is logged and costs nothing but memory.
fn release(file: &mut dyn AppendFile, path: &Path, from: u64, to: u64) {
    if let Err(error) = file.release_cache(from, to) {
        tracing::debug!(path = %path.display(), %error, "releasing the log's page cache failed");
    }
}

/// Reads every record from `from` (inclusive) to the end of the log, verifying frames, hashes
/// and the chain, and calls `visit` with each.
pub fn read_from<E: From<LogError>>(
    dir: &Path,
    from: Seq,
    visit: impl FnMut(LogRecord) -> Result<(), E>,
) -> Result<(), E> {
    read_from_on(&OsDisk, dir, from, visit)
}

/// [`read_from`] on a given disk.
pub fn read_from_on<E: From<LogError>>(
    disk: &dyn Disk,
    dir: &Path,
    from: Seq,
    mut visit: impl FnMut(LogRecord) -> Result<(), E>,
) -> Result<(), E> {
    let segments = list_segments_on(disk, dir)?;
    let start = segments
        .iter()
        .rposition(|(first, _)| *first <= from.0)
        .unwrap_or(0);
    let mut expected_prev: Option<[u8; 32]> = None;
    for (first, path) in &segments[start..] {
        let bytes = disk.read(path).map_err(io_error(path))?;
        let mut offset = 0usize;
        let mut seq = *first;
        while offset < bytes.len() {
            let corrupt = |reason: String| LogError::Corrupt {
                segment: path.clone(),
                offset: offset as u64,
                reason,
            };
            let (payload, used) = match record::read_frame(&bytes[offset..]) {
                Ok(frame) => frame,
                // Zeros preallocated by the disk, never written: the records end here.
                Err(_) if is_zero_filled(&bytes[offset..]) => break,
                Err(e) => return Err(corrupt(format!("record {seq}: {e}")).into()),
            };
            let rec = record::open(payload).map_err(|e| corrupt(format!("record {seq}: {e}")))?;
            if rec.sequence != seq {
                return Err(
                    corrupt(format!("expected record {seq}, found {}", rec.sequence)).into(),
                );
            }
            if let Some(prev) = expected_prev
                && rec.prev_hash != prev
            {
                return Err(corrupt(format!("record {seq} breaks the hash chain")).into());
            }
            expected_prev = Some(record::hash_of(&rec));
            if seq >= from.0 {
                visit(rec)?;
            }
            offset += used;
            seq += 1;
        }
    }
    Ok(())
}

/// Reads the log forward from a sequence, a bounded batch at a time, while the writer appends:
/// what forwarders and feeds tail. Only durable records are asked for, so every frame read is
/// whole. Each record is verified (CRC, own hash, and its link to the one read before).
/// A segment file read front to back.
type SegmentReader = std::io::BufReader<Box<dyn super::disk::SegmentRead>>;

pub struct LogReader {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    next: u64,
    /// The open segment, positioned at record `next`.
    segment: Option<(PathBuf, SegmentReader, u64)>,
    prev_hash: Option<[u8; 32]>,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("dir", &self.dir)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl LogReader {
    /// A reader of the log in `dir` on `disk`, whose first record is `from`.
    pub fn new(disk: Arc<dyn Disk>, dir: &Path, from: Seq) -> LogReader {
        LogReader {
            disk,
            dir: dir.to_owned(),
            next: from.0.max(1),
            segment: None,
            prev_hash: None,
        }
    }

    /// The sequence of the next record to read.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Reads records from the next one up to `last` (inclusive, durable), at most `max`.
    pub fn read(&mut self, last: u64, max: usize) -> Result<Vec<LogRecord>, LogError> {
        self.read_as(last, max)
    }

    /// As [`LogReader::read`], each record decoded only as far as its head (still verified).
    pub fn read_heads(&mut self, last: u64, max: usize) -> Result<Vec<RecordHead>, LogError> {
        self.read_as(last, max)
    }

    /// As [`LogReader::read`], each record as it is shared with peers (its manifest left
    /// encoded; still verified).
    pub fn read_shared(&mut self, last: u64, max: usize) -> Result<Vec<SharedRecord>, LogError> {
        self.read_as(last, max)
    }

    fn read_as<R: Opened>(&mut self, last: u64, max: usize) -> Result<Vec<R>, LogError> {
        let mut out = Vec::new();
        while self.next <= last && out.len() < max {
            let record = match self.read_one()? {
                Some(record) => record,
                // The end of this segment: the next record starts the following one.
                None => {
                    self.open_segment_of(self.next, true)?;
                    match self.read_one()? {
                        Some(record) => record,
                        None => {
                            return Err(self.corrupt(format!(
                                "record {} is durable but not in the log",
                                self.next
                            )));
                        }
                    }
                }
            };
            out.push(record);
        }
        Ok(out)
    }

    fn corrupt(&self, reason: String) -> LogError {
        let segment = self
            .segment
            .as_ref()
            .map_or_else(|| self.dir.clone(), |(path, _, _)| path.clone());
        LogError::Corrupt {
            segment,
            offset: self.segment.as_ref().map_or(0, |(_, _, offset)| *offset),
            reason,
        }
    }

    /// Opens the segment holding `seq` and skips to it. `starting` says `seq` must be the
    /// segment's first record (when moving on from a finished segment).
    fn open_segment_of(&mut self, seq: u64, starting: bool) -> Result<(), LogError> {
        let segments = list_segments_on(&*self.disk, &self.dir)?;
        let found = if starting {
            segments.iter().find(|(first, _)| *first == seq)
        } else {
            segments.iter().rev().find(|(first, _)| *first <= seq)
        };
        let Some((first, path)) = found else {
            return Err(LogError::Corrupt {
                segment: self.dir.clone(),
                offset: 0,
                reason: format!("no segment holds record {seq}"),
            });
        };
        let file = self.disk.open_read(path).map_err(io_error(path))?;
        self.segment = Some((path.clone(), std::io::BufReader::new(file), 0));
        self.next = *first;
        while self.next < seq {
            if self.read_one::<RecordHead>()?.is_none() {
                return Err(self.corrupt(format!("the segment ends before record {seq}")));
            }
        }
        Ok(())
    }

    /// The record at the reader's position, or `None` at the end of the segment.
    fn read_one<R: Opened>(&mut self) -> Result<Option<R>, LogError> {
        use std::io::{Seek, SeekFrom};
        if self.segment.is_none() {
            self.open_segment_of(self.next, false)?;
        }
        let seq = self.next;
        let Some((path, reader, offset)) = self.segment.as_mut() else {
            return Ok(None);
        };
        let mut frame = next_frame(reader, path)?;
        if frame
            .as_deref()
            .is_none_or(|f| record::read_frame(f).is_err())
        {
            // The buffer may have been filled ahead of the writer: with preallocated zeros, or
            // with part of a frame being written. This record is durable now: look again.
            reader
                .seek(SeekFrom::Start(*offset))
                .map_err(io_error(path))?;
            frame = next_frame(reader, path)?;
        }
        let Some(frame) = frame else {
            return Ok(None);
        };
        *offset += frame.len() as u64;
        let checked = record::read_frame(&frame)
            .map_err(|e| e.to_string())
            .and_then(|(payload, _)| R::open(payload).map_err(|e| e.to_string()));
        let rec = checked.map_err(|reason| self.corrupt(format!("record {seq}: {reason}")))?;
        if rec.sequence() != seq {
            return Err(self.corrupt(format!("expected record {seq}, found {}", rec.sequence())));
        }
        if let Some(prev) = self.prev_hash
            && rec.prev_hash() != prev
        {
            return Err(self.corrupt(format!("record {seq} breaks the hash chain")));
        }
        self.prev_hash = Some(record::hash_of(&rec));
        self.next += 1;
        Ok(Some(rec))
    }
}

/// The bytes of the frame at a reader's position (checked by the caller), or `None` where the
/// segment's records end: the end of the file, or preallocated zeros.
fn next_frame(reader: &mut SegmentReader, path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    use std::io::Read;
    let mut frame = vec![0u8; record::HEADER_LEN];
    match reader.read_exact(&mut frame) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    }
    if is_zero_filled(&frame) {
        return Ok(None);
    }
    let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    if len > record::MAX_PAYLOAD {
        return Ok(Some(frame));
    }
    frame.resize(record::HEADER_LEN + len, 0);
    match reader.read_exact(&mut frame[record::HEADER_LEN..]) {
        Ok(()) => Ok(Some(frame)),
        // Short: `read_frame` says so.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            frame.truncate(record::HEADER_LEN);
            Ok(Some(frame))
        }
        Err(e) => Err(io_error(path)(e)),
    }
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.seg"))
}

/// The segments in `dir`, in order, with the sequence of their first record.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    list_segments_on(&OsDisk, dir)
}

fn list_segments_on(disk: &dyn Disk, dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut segments = Vec::new();
    for path in disk.list_dir(dir).map_err(io_error(dir))? {
        let first = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".seg"))
            .and_then(|stem| stem.parse::<u64>().ok());
        if let Some(first) = first {
            segments.push((first, path));
        }
    }
    segments.sort();
    Ok(segments)
}

fn create_segment(disk: &dyn Disk, dir: &Path, path: &Path) -> Result<(), LogError> {
    disk.create_new(path).map_err(io_error(path))?;
    disk.sync_dir(dir).map_err(io_error(dir))
}

struct Scan {
    /// Bytes of intact records from the start.
    valid_len: u64,
    /// Sequence and hash of the last intact record.
    last: Option<(u64, [u8; 32])>,
    /// Why the bytes after `valid_len` are not records, if there are any.
    damage: Option<String>,
}

/// Reads a segment front to back, stopping at the first frame that is not intact.
fn scan_segment(disk: &dyn Disk, path: &Path, first_seq: u64) -> Result<Scan, LogError> {
    let bytes = disk.read(path).map_err(io_error(path))?;
    let mut offset = 0usize;
    let mut seq = first_seq;
    let mut last: Option<(u64, [u8; 32])> = None;
    while offset < bytes.len() {
        let corrupt = |reason: String| LogError::Corrupt {
            segment: path.to_owned(),
            offset: offset as u64,
            reason,
        };
        match record::read_frame(&bytes[offset..]) {
            Ok((payload, used)) => {
                // An intact frame whose record is wrong was written that way: not a torn write.
                let rec = record::open(payload).map_err(|e| corrupt(e.to_string()))?;
                if rec.sequence != seq {
                    return Err(corrupt(format!(
                        "expected record {seq}, found {}",
                        rec.sequence
                    )));
                }
                if let Some((_, prev)) = last
                    && rec.prev_hash != prev
                {
                    return Err(corrupt(format!("record {seq} breaks the hash chain")));
                }
                last = Some((seq, record::hash_of(&rec)));
                offset += used;
                seq += 1;
            }
            // Zeros preallocated by the disk, never written: the records end here.
            Err(_) if is_zero_filled(&bytes[offset..]) => break,
            Err(damage) => {
                if intact_frame_follows(&bytes[offset..], &damage) {
                    return Err(corrupt(format!(
                        "{damage}, yet intact records follow (not a torn write)"
                    )));
                }
                return Ok(Scan {
                    valid_len: offset as u64,
                    last,
                    damage: Some(damage.to_string()),
                });
            }
        }
    }
    Ok(Scan {
        valid_len: offset as u64,
        last,
        damage: None,
    })
}

/// Whether `bytes` (a segment from some offset to its end) are zeros only: preallocated space
/// after the last record, not damage.
fn is_zero_filled(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Whether a damaged frame is followed by an intact one where its length says the next begins.
/// A torn write leaves nothing intact after it: the writer appends in order and syncs.
fn intact_frame_follows(bytes: &[u8], damage: &FrameError) -> bool {
    if *damage != FrameError::Crc {
        return false;
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let next = record::HEADER_LEN + len;
    bytes
        .get(next..)
        .is_some_and(|rest| !rest.is_empty() && record::read_frame(rest).is_ok())
}

/// Moves the damaged tail of `path` (from `offset`) into a `.torn` file, then cuts it off.
fn cut_tail(
    disk: &dyn Disk,
    path: &Path,
    offset: u64,
    reason: String,
) -> Result<TornTail, LogError> {
    let bytes = disk.read(path).map_err(io_error(path))?;
    let tail = &bytes[usize::try_from(offset).expect("offset within a file we read")..];
    // A torn write into preallocated space is followed by zeros: keep only what was written.
    let written = tail
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    let tail = &tail[..written];
    let kept_in = path.with_extension(format!("seg.torn-{offset}"));
    disk.write_synced(&kept_in, tail)
        .map_err(io_error(&kept_in))?;
    if let Some(dir) = path.parent() {
        disk.sync_dir(dir).map_err(io_error(dir))?;
    }
    disk.truncate(path, offset).map_err(io_error(path))?;
    Ok(TornTail {
        segment: path.to_owned(),
        offset,
        bytes: tail.len() as u64,
        reason,
        kept_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk::OsDisk;
    use crate::store::disk::page_cache::{cached_bytes, folder_on_disk};

    fn segment_lens(dir: &Path) -> Vec<(PathBuf, u64)> {
        list_segments_on(&OsDisk, dir)
            .expect("segments")
            .into_iter()
            .map(|(_, path)| {
                let len = std::fs::metadata(&path).expect("meta").len();
                (path, len)
            })
            .collect()
    }

    /// Appends a record of 1 MiB as a batch of its own, as the writer does: synced, then the
    /// cache behind released.
    fn append_mib(log: &mut SegmentLog, sequence: u64) {
        let mut record = LogRecord {
            sequence,
            lrn: "x".repeat(1 << 20),
            ..Default::default()
        };
        let frame = log.seal_next(&mut record, None).expect("seal");
        log.write_batch(sequence, &[frame]).expect("write");
        log.release_behind();
    }

    #[test]
    fn once_synced_only_the_newest_bytes_of_the_log_stay_cached() {
        let Some(tmp) = folder_on_disk() else {
            return;
        };
        let page = rustix::param::page_size() as u64;
        let bound = CACHED_TAIL + RELEASE_STEP + crate::store::disk::PREALLOCATE + 2 * page;
        let (mut log, _) = SegmentLog::open(Arc::new(OsDisk), tmp.path(), 48 << 20).expect("open");
        // Records of 1 MiB: 47 to a segment. Within the first: released behind its newest bytes.
        for sequence in 1..=45 {
            append_mib(&mut log, sequence);
        }
        let segments = segment_lens(tmp.path());
        assert_eq!(segments.len(), 1);
        let cached = cached_bytes(&segments[0].0);
        assert!(cached <= bound, "{cached} bytes of one segment cached");
        assert!(cached >= CACHED_TAIL, "its newest bytes stay: {cached}");

        // Three segments on: the first released whole, the second's end and the third cached.
        for sequence in 46..=110 {
            append_mib(&mut log, sequence);
        }
        let segments = segment_lens(tmp.path());
        assert_eq!(segments.len(), 3, "{segments:?}");
        let cached: Vec<u64> = segments
            .iter()
            .map(|(path, _)| cached_bytes(path))
            .collect();
        assert_eq!(cached[0], 0, "the oldest segment is released: {cached:?}");
        let newest_len = log.file_len;
        assert!(
            cached[2] >= newest_len,
            "the newest segment stays cached ({newest_len} bytes written): {cached:?}"
        );
        assert!(
            cached[1] + page >= (CACHED_TAIL - RELEASE_STEP - newest_len).min(segments[1].1),
            "so does the end of the one before it: {cached:?}"
        );
        let total: u64 = cached.iter().sum();
        assert!(
            total <= bound,
            "{total} bytes cached: {cached:?} of {segments:?}"
        );

        // Released, the records still read back, from disk, as written.
        let mut read = 0;
        read_from::<LogError>(tmp.path(), Seq(1), |record| {
            read += 1;
            assert_eq!(record.sequence, read);
            assert_eq!(record.lrn.len(), 1 << 20);
            Ok(())
        })
        .expect("the log reads back");
        assert_eq!(read, 110);
    }

    #[test]
    fn a_batch_rolled_back_within_a_segment_leaves_the_one_before_to_be_released() {
        let Some(tmp) = folder_on_disk() else {
            return;
        };
        let (mut log, _) = SegmentLog::open(Arc::new(OsDisk), tmp.path(), 48 << 20).expect("open");
        // A segment of 47 and 3 of the next: the end of the first is still cached.
        for sequence in 1..=50 {
            append_mib(&mut log, sequence);
        }
        let first = segment_lens(tmp.path())[0].0.clone();
        assert!(cached_bytes(&first) > 0);
        let mark = log.mark();
        append_mib(&mut log, 51);
        log.roll_back(&mark).expect("rolled back");
        // The newest segment grows past the cached tail: the first goes whole.
        for sequence in 51..=85 {
            append_mib(&mut log, sequence);
        }
        assert_eq!(cached_bytes(&first), 0, "the first segment is released");
        let mut read = 0;
        read_from::<LogError>(tmp.path(), Seq(1), |record| {
            read += 1;
            assert_eq!(record.sequence, read);
            Ok(())
        })
        .expect("the log reads back");
        assert_eq!(read, 85);
    }
}
