//! A map of the index on disk whose keys name their own place: each key gives a position (for
//! `filings`, the sequence its MRN was issued for), and the map keeps, at that position, the
//! offset of the key's latest record. The records are those of `store::table` (append-only, CRC
//! checked); what differs is how a key finds its record: no hash, no probe and no doubling.
//!
//! Two files:
//! - `<name>.records`: as in `store::table`.
//! - `<name>.positions`: a header, then one little-endian u64 per position: the offset of the
//!   record of the key at that position (none where it is 0, past the end of the records, or
//!   past the end of the file). It grows 8 bytes per position, 80 MB for ten million log
//!   records, and new keys come in position order, so a batch of new filings writes its offsets
//!   in one write.
//!
//! A lookup reads 8 bytes and the record, and compares the record's key with the one asked for,
//! so a key whose position holds another's record (an MRN this gateway never issued) is absent.
//! Readers and the one writer share the map as in `store::table` (a read-write lock, held for a
//! lookup's two reads or an insert's writes), and a lookup may refuse to wait
//! ([`Reads::NeverWait`]). Records are written before the offsets that point to them; nothing
//! is fsynced but by the index's checkpoint (the log is the truth, replay is idempotent).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::table::{
    KeyValue, OnDisk, Reads, Records, TableError, allocate, corrupt, duplicate, io_error, len_of,
    not_in_memory, open_file, read_exact_at, read_lock, read_lock_for, remove, sync_duplicates,
    write_lock,
};

const POSITIONS_MAGIC: &[u8; 8] = b"ACIPOS01";
/// The magic, then room for later use.
const POSITIONS_HEADER: u64 = 64;
const OFFSET: u64 = 8;
/// Space kept allocated past the highest position reserved: 128 Ki positions. Writing an
/// offset must not meet a full disk (it is written after the log has the record), so the
/// writer reserves before it appends ([`PositionTable::reserve`]).
const RESERVE: u64 = 1 << 20;
/// Offsets read at once when every entry is listed.
const SCAN: usize = 4096;

/// Where a key goes: its position, or `None` for a key that names none (never inserted).
pub type PositionOf = fn(&[u8]) -> Option<u64>;

/// One map: keys that name their position to byte values, on disk.
#[derive(Debug)]
pub struct PositionTable {
    base: PathBuf,
    position_of: PositionOf,
    /// Written by the index's writer only; read by everyone. Held for one lookup or one batch.
    state: RwLock<State>,
    /// Until the first sync after opening: the folder is synced too (the files may be new).
    unsynced_folder: AtomicBool,
}

#[derive(Debug)]
struct State {
    records: Records,
    positions: File,
    positions_path: PathBuf,
    /// How far the positions file has space allocated.
    reserved_to: u64,
}

impl PositionTable {
    /// Opens (or creates) the map `name` in `dir`, whose keys are placed by `position_of`.
    pub fn open(
        dir: &Path,
        name: &str,
        position_of: PositionOf,
    ) -> Result<PositionTable, TableError> {
        let base = dir.join(name);
        let positions_path = base.with_extension("positions");
        let existed = positions_path.exists();
        let (records, _) = Records::open(&base.with_extension("records"))?;
        if !existed && !records.is_empty() {
            return Err(corrupt(&positions_path, "missing while its records exist"));
        }
        let positions = open_file(&positions_path)?;
        let len = len_of(&positions, &positions_path)?;
        if len < POSITIONS_HEADER {
            // New, or killed before its header was written (then no offset was either).
            let mut header = [0u8; POSITIONS_HEADER as usize];
            header[..8].copy_from_slice(POSITIONS_MAGIC);
            positions
                .write_all_at(&header, 0)
                .map_err(|e| io_error(&positions_path, e))?;
        } else {
            let mut magic = [0u8; 8];
            positions
                .read_exact_at(&mut magic, 0)
                .map_err(|e| io_error(&positions_path, e))?;
            if &magic != POSITIONS_MAGIC {
                return Err(corrupt(&positions_path, "not an index positions file"));
            }
        }
        let reserved_to = len.max(POSITIONS_HEADER);
        Ok(PositionTable {
            base,
            position_of,
            state: RwLock::new(State {
                records,
                positions,
                positions_path,
                reserved_to,
            }),
            unsynced_folder: AtomicBool::new(true),
        })
    }

    /// The value of `key`, if it has one: a read of its offset and one of the record.
    pub fn get(&self, key: &[u8], reads: Reads) -> Result<Option<Vec<u8>>, TableError> {
        let Some(at) = (self.position_of)(key).and_then(offset_at) else {
            return Ok(None);
        };
        let state = self.read_for(reads)?;
        let Some(offset) = state.offset(at, reads)? else {
            return Ok(None);
        };
        let (found_key, value) = state.records.record(offset, reads)?;
        Ok((found_key == key).then_some(value))
    }

    /// Makes sure that a batch whose keys are at positions up to `last` can be written without
    /// meeting a full disk: space for its records and for its offsets.
    pub fn reserve(&self, last: u64) -> Result<(), TableError> {
        let mut state = self.write();
        state.records.reserve()?;
        let needed = offset_at(last).map_or(u64::MAX, |at| at + OFFSET);
        if needed > state.reserved_to {
            let to = needed.saturating_add(RESERVE);
            let from = state.reserved_to;
            allocate(&state.positions, from, to - from, true)
                .map_err(|e| io_error(&state.positions_path, e))?;
            state.reserved_to = to;
        }
        Ok(())
    }

    /// Sets each key to its value, in order (a key twice ends with its last value).
    pub fn insert_all(&self, entries: &[KeyValue]) -> Result<(), TableError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut placed = Vec::with_capacity(entries.len());
        for (key, _) in entries {
            let at = (self.position_of)(key).and_then(offset_at).ok_or_else(|| {
                TableError::NoPosition {
                    path: self.base.clone(),
                    key: String::from_utf8_lossy(key).into_owned(),
                }
            })?;
            placed.push(at);
        }
        let mut state = self.write();
        // The records first: no offset may point past what is written.
        let offsets = state.records.append(entries)?;
        let mut writes: Vec<(u64, u64)> = placed.into_iter().zip(offsets).collect();
        // By position, the last value of a key kept (the sort is stable; the later comes last).
        writes.sort_by_key(|&(at, _)| at);
        writes.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = later.1;
            }
            same
        });
        // Consecutive positions (a batch's new filings) in one write.
        let mut run = Vec::with_capacity(writes.len() * OFFSET as usize);
        let mut start = 0;
        for (i, &(at, offset)) in writes.iter().enumerate() {
            if i > 0 && at != writes[i - 1].0 + OFFSET {
                state.write_offsets(&run, start)?;
                run.clear();
            }
            if run.is_empty() {
                start = at;
            }
            run.extend_from_slice(&offset.to_le_bytes());
        }
        state.write_offsets(&run, start)
    }

    /// Every key and its value, in key order (for comparing two indexes).
    pub fn entries(&self) -> Result<Vec<KeyValue>, TableError> {
        let state = self.read();
        let len = len_of(&state.positions, &state.positions_path)?;
        let mut out = BTreeMap::new();
        let mut chunk = vec![0u8; SCAN * OFFSET as usize];
        let mut at = POSITIONS_HEADER;
        while at < len {
            let n = ((len - at) as usize).min(chunk.len()) / OFFSET as usize * OFFSET as usize;
            if n == 0 {
                break;
            }
            read_exact_at(&state.positions, &mut chunk[..n], at, Reads::MayWait)
                .map_err(|e| io_error(&state.positions_path, e))?;
            for bytes in chunk[..n].chunks_exact(OFFSET as usize) {
                let offset = decode_offset(bytes);
                if offset != 0 && offset < state.records.end() {
                    let (key, value) = state.records.record(offset, Reads::MayWait)?;
                    out.insert(key, value);
                }
            }
            at += n as u64;
        }
        Ok(out.into_iter().collect())
    }

    /// Empties the map.
    pub fn clear(&self) -> Result<(), TableError> {
        let mut state = self.write();
        state.records.clear()?;
        state
            .positions
            .set_len(POSITIONS_HEADER)
            .map_err(|e| io_error(&state.positions_path, e))?;
        state.reserved_to = POSITIONS_HEADER;
        Ok(())
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        read_lock(&self.state)
    }

    fn read_for(&self, reads: Reads) -> Result<RwLockReadGuard<'_, State>, TableError> {
        read_lock_for(&self.state, reads, &self.base)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        write_lock(&self.state)
    }

    /// Removes the files of the map `name` in `dir`.
    pub fn remove_files(dir: &Path, name: &str) -> Result<(), TableError> {
        let base = dir.join(name);
        remove(&base.with_extension("records"))?;
        remove(&base.with_extension("positions"))
    }
}

impl OnDisk for PositionTable {
    fn sync(&self) -> Result<(), TableError> {
        let files = {
            let state = self.read();
            let positions = (&state.positions, state.positions_path.as_path());
            duplicate([state.records.file(), positions])?
        };
        let folder = self.unsynced_folder.swap(false, Ordering::AcqRel);
        sync_duplicates(files, folder.then_some(&self.base)).inspect_err(|_| {
            self.unsynced_folder.store(folder, Ordering::Release);
        })
    }
}

impl State {
    /// The record offset at byte `at` of the positions file (`None`: no key there).
    fn offset(&self, at: u64, reads: Reads) -> Result<Option<u64>, TableError> {
        let mut bytes = [0u8; OFFSET as usize];
        match read_exact_at(&self.positions, &mut bytes, at, reads) {
            // Past the records' end: an offset whose record a power cut lost (the log replays it).
            Ok(()) => Ok(Some(decode_offset(&bytes))
                .filter(|&offset| offset != 0 && offset < self.records.end())),
            // Past the end: a position not written yet.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Err(not_in_memory(&self.positions_path))
            }
            Err(e) => Err(io_error(&self.positions_path, e)),
        }
    }

    fn write_offsets(&self, bytes: &[u8], at: u64) -> Result<(), TableError> {
        self.positions
            .write_all_at(bytes, at)
            .map_err(|e| io_error(&self.positions_path, e))
    }
}

/// The byte of the positions file where `position`'s offset is (`None` past what a file holds).
fn offset_at(position: u64) -> Option<u64> {
    position
        .checked_mul(OFFSET)?
        .checked_add(POSITIONS_HEADER)
        .filter(|&at| at <= i64::MAX as u64 - OFFSET)
}

fn decode_offset(bytes: &[u8]) -> u64 {
    let mut offset = [0u8; OFFSET as usize];
    offset.copy_from_slice(&bytes[..OFFSET as usize]);
    u64::from_le_bytes(offset)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::store::table::WouldWait;

    /// Test keys name their position: `K<n>` is at `n`, with a suffix to tell keys of one
    /// position apart (`K<n>/<other>`).
    fn position_of(key: &[u8]) -> Option<u64> {
        let text = std::str::from_utf8(key).ok()?.strip_prefix('K')?;
        text.split('/').next()?.parse().ok()
    }

    fn key(n: u64) -> Vec<u8> {
        format!("K{n}").into_bytes()
    }

    fn open(dir: &Path) -> PositionTable {
        PositionTable::open(dir, "filings", position_of).expect("open")
    }

    fn get(table: &PositionTable, key: &[u8]) -> Option<Vec<u8>> {
        table.get(key, Reads::MayWait).expect("get")
    }

    #[test]
    fn values_are_found_replaced_and_kept_across_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = open(dir.path());
        assert_eq!(get(&table, &key(1)), None, "nothing written yet");
        table
            .insert_all(&[(key(1), b"one".to_vec()), (key(2), b"two".to_vec())])
            .expect("insert");
        table
            .insert_all(&[(key(1), b"uno".to_vec()), (key(1), b"eins".to_vec())])
            .expect("replace");
        assert_eq!(
            get(&table, &key(1)),
            Some(b"eins".to_vec()),
            "the last value"
        );
        drop(table);
        let table = open(dir.path());
        assert_eq!(get(&table, &key(1)), Some(b"eins".to_vec()));
        assert_eq!(get(&table, &key(2)), Some(b"two".to_vec()));
        assert_eq!(
            table.entries().expect("entries"),
            vec![(key(1), b"eins".to_vec()), (key(2), b"two".to_vec())]
        );
        table.clear().expect("clear");
        assert_eq!(get(&table, &key(1)), None);
        assert!(table.entries().expect("entries").is_empty());
    }

    /// A key is found only by itself: another key of its position (an MRN of another gateway
    /// with the same sequence), a position past the end, or a key naming none are absent.
    #[test]
    fn only_the_key_itself_finds_its_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = open(dir.path());
        table
            .insert_all(&[(key(5), b"five".to_vec())])
            .expect("insert");
        assert_eq!(get(&table, b"K5/other"), None, "same position, other key");
        assert_eq!(get(&table, &key(4)), None, "an empty position before it");
        assert_eq!(get(&table, &key(1 << 40)), None, "far past the end");
        assert_eq!(get(&table, &key(u64::MAX)), None, "past what a file holds");
        assert_eq!(get(&table, b"no position"), None);
        let error = table
            .insert_all(&[(b"no position".to_vec(), b"x".to_vec())])
            .expect_err("nowhere to put it");
        assert!(matches!(error, TableError::NoPosition { .. }), "{error}");
        assert_eq!(get(&table, &key(5)), Some(b"five".to_vec()), "unharmed");
    }

    /// A batch's new keys come in position order, with gaps and older keys among them: each
    /// run of consecutive positions is one write, and every key lands where it belongs.
    #[test]
    fn runs_gaps_and_older_keys_in_one_batch_land_where_they_belong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = open(dir.path());
        table.reserve(3).expect("reserve");
        table
            .insert_all(&[(key(3), b"old".to_vec())])
            .expect("insert");
        let batch: Vec<KeyValue> = [10, 11, 12, 14, 15, 3, 20, 11]
            .into_iter()
            .enumerate()
            .map(|(i, n)| (key(n), format!("v{i}").into_bytes()))
            .collect();
        table.reserve(20).expect("reserve");
        table.insert_all(&batch).expect("insert");
        let expected: BTreeMap<Vec<u8>, Vec<u8>> = std::iter::once((key(3), b"old".to_vec()))
            .chain(batch)
            .collect();
        for (key, value) in &expected {
            assert_eq!(get(&table, key).as_ref(), Some(value));
        }
        for absent in [13, 16, 19, 21] {
            assert_eq!(get(&table, &key(absent)), None);
        }
        assert_eq!(
            table.entries().expect("entries"),
            expected.into_iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_lookup_that_may_not_wait_gives_up_while_the_writer_holds_the_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = open(dir.path());
        table
            .insert_all(&[(key(1), b"one".to_vec())])
            .expect("insert");
        let writing = table.write();
        let error = table
            .get(&key(1), Reads::NeverWait)
            .expect_err("the writer holds it");
        assert_eq!(error.would_wait(), Some(WouldWait::WriterBusy), "{error}");
        drop(writing);
        assert_eq!(
            table.get(&key(1), Reads::NeverWait).expect("free again"),
            Some(b"one".to_vec())
        );
    }

    /// An async worker must not wait for the disk: a lookup that may not wait gives up on an
    /// offset or a record not in memory, and one allowed to wait finds it.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_lookup_that_may_not_wait_gives_up_on_what_is_not_in_memory() {
        use crate::store::disk::page_cache::{evict, folder_on_disk};
        let Some(dir) = folder_on_disk() else {
            return;
        };
        let table = open(dir.path());
        let entries: Vec<KeyValue> = (1..=200).map(|i| (key(i), vec![b'v'; 300])).collect();
        table.reserve(200).expect("reserve");
        table.insert_all(&entries).expect("insert");
        let value = Some(vec![b'v'; 300]);
        assert_eq!(
            table.get(&key(7), Reads::NeverWait).expect("in memory"),
            value
        );
        table.sync().expect("sync");
        drop(table);
        let table = open(dir.path());
        for file in ["filings.records", "filings.positions"] {
            if !evict(&dir.path().join(file)) {
                return;
            }
        }
        let error = table
            .get(&key(7), Reads::NeverWait)
            .expect_err("not in memory");
        assert_eq!(error.would_wait(), Some(WouldWait::NotInMemory), "{error}");
        assert_eq!(
            table.get(&key(7), Reads::MayWait).expect("from disk"),
            value
        );
    }

    #[test]
    fn a_damaged_record_is_an_error_not_an_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = open(dir.path());
        table
            .insert_all(&[(key(1), b"entry".to_vec())])
            .expect("insert");
        let records = dir.path().join("filings.records");
        let mut bytes = std::fs::read(&records).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&records, bytes).expect("write");
        let error = table
            .get(&key(1), Reads::MayWait)
            .expect_err("a CRC mismatch");
        assert!(error.to_string().contains("CRC"), "{error}");
    }

    /// A power cut can keep an offset whose record it lost (the log replays the record): the
    /// key is absent until then, not an error.
    #[test]
    fn an_offset_past_the_records_end_is_no_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = open(dir.path());
        table
            .insert_all(&[(key(1), b"kept".to_vec())])
            .expect("insert");
        let end = std::fs::metadata(dir.path().join("filings.records"))
            .expect("metadata")
            .len();
        table
            .insert_all(&[(key(2), b"lost".to_vec())])
            .expect("insert");
        drop(table);
        let records = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("filings.records"))
            .expect("open");
        records.set_len(end).expect("cut");
        let table = open(dir.path());
        assert_eq!(get(&table, &key(2)), None);
        assert_eq!(get(&table, &key(1)), Some(b"kept".to_vec()));
    }

    #[test]
    fn records_without_their_positions_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = open(dir.path());
        table
            .insert_all(&[(key(1), b"x".to_vec())])
            .expect("insert");
        drop(table);
        std::fs::remove_file(dir.path().join("filings.positions")).expect("remove");
        let error = PositionTable::open(dir.path(), "filings", position_of).expect_err("refused");
        assert!(error.to_string().contains("reindex"), "{error}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Any sequence of batches, reservations and reopens reads like a map.
        #[test]
        fn reads_like_a_map(
            batches in prop::collection::vec(
                (prop::collection::vec((1u64..3000, any::<u16>()), 1..400), any::<bool>()),
                1..20,
            )
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut table = open(dir.path());
            let mut model = BTreeMap::new();
            for (batch, reopen) in batches {
                let batch: Vec<_> = batch
                    .into_iter()
                    .map(|(n, v)| (key(n), v.to_le_bytes().to_vec()))
                    .collect();
                let last = batch.iter().filter_map(|(k, _)| position_of(k)).max();
                if let Some(last) = last.filter(|_| reopen) {
                    table.reserve(last).expect("reserve");
                }
                table.insert_all(&batch).expect("insert");
                model.extend(batch);
                if reopen {
                    drop(table);
                    table = open(dir.path());
                }
            }
            for (key, value) in &model {
                let found = table.get(key, Reads::MayWait).expect("get");
                prop_assert_eq!(found.as_ref(), Some(value));
            }
            prop_assert_eq!(table.entries().expect("entries"), model.into_iter().collect::<Vec<_>>());
        }
    }
}
