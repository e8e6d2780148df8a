//! The index's per-filing maps on disk: a hash table of byte keys to byte values whose memory
//! does not grow with the number of keys and which opens in constant time.
//!
//! Why not sled for these: sled 0.34 keeps a page-table entry and cache bookkeeping in memory
//! for every page of its trees, cached or not (a leaf splits at 16 entries), about 30 bytes of
//! RSS per key; and it snapshots only while starting, so the first start after N writes replays
//! all of them. The maps that grow with every filing (`lrn`, `documents`, `received`) live here
//! (`filings`, whose keys name their place, in `store::positions`, over the same records); the
//! small trees stay in sled.
//!
//! Two files per map:
//! - `<name>.records`: append-only records (key length, value length, CRC32C, key, value) after
//!   a header holding the map's hash secret. A replaced value is appended again; the old record
//!   stays as garbage until the index is rebuilt (`aci-gateway reindex`).
//! - `<name>.slots`: open addressing with linear probing over 16-byte slots (a 64-bit keyed hash
//!   of the key, the offset of its latest record; offset 0 is empty). A lookup reads a group of
//!   slots and the record a matching hash points to, and compares the key, so a collision costs a
//!   read, never a wrong answer. The hash is keyed (SHA-256 under the map's random secret), so a
//!   carrier cannot choose LRNs that pile into one probe sequence.
//!
//! At half full the slots double, a little at a time: a new slots file takes every insert, each
//! insert also moves a few slots of the old one (`<name>.slots.old`), and lookups consult the old
//! file until it is empty. Only the index's writer inserts; readers share the map under a
//! read-write lock held for a lookup's few reads. A lookup on an async worker waits neither for
//! that lock nor for the disk ([`Reads::NeverWait`]). Records are written before the slots that
//! point to them, so neither a reader nor a restart after a killed process meets a slot pointing
//! at nothing. As with sled, nothing is fsynced: the log is the truth, the index is replayed
//! from its high-water mark, and a record the disk lost in a power cut fails its CRC when read.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use sha2::{Digest, Sha256};

use super::disk::PRIVATE_FILE;

const RECORDS_MAGIC: &[u8; 8] = b"ACIREC01";
const SLOTS_MAGIC: &[u8; 8] = b"ACISLT01";
const SECRET_LEN: usize = 16;
/// Magic and secret; the first record starts after it, so no record is at offset 0.
const RECORDS_HEADER: u64 = (RECORDS_MAGIC.len() + SECRET_LEN) as u64;
/// Key length (u16), value length (u32), CRC32C of key and value (u32), all little-endian.
const FRAME: usize = 10;
/// The longest key an insert's probe reads in one go (the index's keys: an EORI, a separator
/// and an LRN or a document number); a lookup reads the whole record at once.
const SHORT_KEY: usize = 96;
/// What a lookup reads of a record at first; a longer one takes a second read.
const READ_AHEAD: usize = 2048;

const SLOT: u64 = 16;
/// Magic, capacity, count, the old file's capacity (0: none), how many of its slots moved.
const SLOTS_HEADER: u64 = 64;
/// Slots of a new map (64 KiB of file).
const FIRST_CAPACITY: u64 = 1 << 12;
/// Slots read at once while probing.
const GROUP: usize = 8;
/// Space kept allocated past the records' end. The index writes a batch only after the log has
/// it and its callers were answered, so that write must not meet a full disk: the writer
/// reserves before it appends ([`Table::reserve`]), and a disk too full to reserve refuses the
/// batch, as a full log does. A batch writes far less than this to one map.
const RESERVE: u64 = 4 << 20;
/// Old slots moved per insert while the slots double: the move ends after capacity / 8 inserts,
/// well before the new file is half full.
const MOVES_PER_INSERT: u64 = 8;
/// Old slots moved together (4 KiB of them): read in one go, and placed into windows of the new
/// file read and written whole, so that a move costs a few syscalls per block, not two per slot.
/// Moves are owed per insert and made a block at a time: 32 inserts apart.
const MOVE_BLOCK: u64 = 256;
/// Slots a window of the new file reaches past the last home placed in it, for probe runs.
const WINDOW_SPILL: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {reason} (rebuild the index: aci-gateway reindex)")]
    Corrupt { path: PathBuf, reason: String },
    #[error("a {what} of {len} bytes is longer than the index takes")]
    TooLong { what: &'static str, len: usize },
    /// A key of a map placed by position (`store::positions`) that names no position.
    #[error("{path}: the key {key:?} names no position in this map")]
    NoPosition { path: PathBuf, key: String },
    /// A lookup made with [`Reads::NeverWait`] would have waited: look up again where waiting
    /// is allowed.
    #[error("{path}: {}", .cause.describe())]
    WouldWait { path: PathBuf, cause: WouldWait },
}

impl TableError {
    /// Whether the disk (or the quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, TableError::Io { source, .. } if matches!(
            source.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        ))
    }

    /// Why a [`Reads::NeverWait`] lookup gave up, if it did.
    pub fn would_wait(&self) -> Option<WouldWait> {
        match self {
            TableError::WouldWait { cause, .. } => Some(*cause),
            _ => None,
        }
    }
}

/// How a lookup may read the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// Waits for the disk, and for the index writer, as long as it takes.
    MayWait,
    /// Gives up at once ([`TableError::WouldWait`]) where it would wait: for a page the page
    /// cache does not hold (read with `RWF_NOWAIT`), or for the index writer, which holds the
    /// map while it inserts a batch. An async worker, which serves every caller, looks up this
    /// way; a lookup that gives up is done again on a thread that may wait. Where the system
    /// cannot tell what is cached (not Linux, a file system or sandbox without `RWF_NOWAIT`),
    /// it reads as [`Reads::MayWait`] does.
    NeverWait,
    /// As [`Reads::MayWait`], by the index's writer deciding a batch, before it inserts the
    /// batch's keys: where an absent key's probe ended is noted, so that inserting the key
    /// writes that slot without probing (and hashing) again ([`Vacancies`]).
    Deciding,
}

/// What a [`Reads::NeverWait`] lookup would have waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WouldWait {
    /// The disk: a page it needed was not in memory.
    NotInMemory,
    /// The index writer, inserting a batch.
    WriterBusy,
}

impl WouldWait {
    pub const ALL: [WouldWait; 2] = [WouldWait::NotInMemory, WouldWait::WriterBusy];

    /// The metrics' label.
    pub fn label(self) -> &'static str {
        match self {
            WouldWait::NotInMemory => "not_in_memory",
            WouldWait::WriterBusy => "writer_busy",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            WouldWait::NotInMemory => {
                "not in memory (read it where waiting for the disk is allowed)"
            }
            WouldWait::WriterBusy => "the index writer holds it (read it where waiting is allowed)",
        }
    }
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A map of the index on disk, as the index's checkpoint sees it (`store::checkpoint`).
pub trait OnDisk: std::fmt::Debug + Send + Sync {
    /// Puts everything written so far on disk (fdatasync), without holding up inserts or
    /// lookups meanwhile.
    fn sync(&self) -> Result<(), TableError>;

    /// Moves the map's background work (a doubling) ahead a step: whether more is left.
    fn move_ahead(&self) -> Result<bool, TableError> {
        Ok(false)
    }
}

impl OnDisk for Table {
    fn sync(&self) -> Result<(), TableError> {
        Table::sync(self)
    }

    fn move_ahead(&self) -> Result<bool, TableError> {
        Table::move_ahead(self)
    }
}

/// One map: byte keys to byte values, on disk.
#[derive(Debug)]
pub struct Table {
    /// `<dir>/<name>`, to which the files' extensions are added.
    base: PathBuf,
    /// Keys the hash, so that its values cannot be chosen from outside.
    secret: [u8; SECRET_LEN],
    /// Written by the index's writer only; read by everyone. Held for one lookup or one batch.
    state: RwLock<State>,
    /// Tests narrow the hash to make keys collide.
    #[cfg(test)]
    tag_mask: u64,
}

#[derive(Debug)]
struct State {
    records: Records,
    slots: Slots,
    /// While the slots double: the old file, and how many of its slots moved so far.
    old: Option<(Slots, u64)>,
    /// Old slots owed a move by the inserts since the last block moved (not kept on disk: after
    /// a reopen the move only starts a little later).
    owed: u64,
    /// Whether slots files were renamed or removed since the last sync (the folder needs one).
    renamed: AtomicBool,
    /// Noted by lookups (under the read lock), taken by inserts.
    vacancies: Mutex<Vacancies>,
}

/// Where the writer's lookups while deciding a batch ([`Reads::Deciding`]) found keys absent:
/// the empty slot of the current slots where each probe ended. Inserting such a key next fills
/// that slot without a probe: it is still where the key goes unless an insert took it since
/// (the slots a probe passes were full already, and a slot is never emptied but by a doubling).
/// So the slots filled since are kept too, and everything is forgotten when the slots change
/// otherwise (a doubling starts, old slots move in, the map is cleared) and after each batch of
/// inserts, which takes what its batch's decisions noted.
#[derive(Debug, Default)]
struct Vacancies {
    /// Key → its hash, and its empty slot.
    by_key: super::BatchMap<Vec<u8>, (u64, u64)>,
    /// Slots filled since the vacancies were noted.
    taken: HashSet<u64, foldhash::fast::RandomState>,
}

/// Vacancies noted at most between two batches of inserts (a batch decides up to a thousand
/// filings, each noting a key or two per map).
const MAX_VACANCIES: usize = 8192;

impl Vacancies {
    fn note(&mut self, key: &[u8], tag: u64, at: u64) {
        if self.by_key.len() < MAX_VACANCIES {
            self.by_key.insert(key.to_vec(), (tag, at));
        }
    }

    /// The hash and slot noted for `key`, if the slot is still empty (it is taken now).
    fn take(&mut self, key: &[u8]) -> Option<(u64, u64)> {
        let (tag, at) = self.by_key.remove(key)?;
        self.taken.insert(at).then_some((tag, at))
    }

    fn forget(&mut self) {
        self.by_key.clear();
        self.taken.clear();
    }
}

#[derive(Debug)]
struct Slots {
    file: File,
    path: PathBuf,
    /// A power of two.
    capacity: u64,
    /// Occupied slots.
    count: u64,
}

/// Where a key is, or would go, in one slots file.
enum Probe {
    Found(u64),
    Vacant(u64),
}

/// A key to compare a slot's key with: given, or read from the record at an offset.
#[derive(Clone, Copy)]
enum Key<'a> {
    Bytes(&'a [u8]),
    At(u64),
}

impl Table {
    /// Opens (or creates) the map `name` in `dir`, finishing a doubling a killed process left
    /// between its two renames.
    pub fn open(dir: &Path, name: &str) -> Result<Table, TableError> {
        let base = dir.join(name);
        let (records, secret) = Records::open(&base.with_extension("records"))?;
        let slots_path = base.with_extension("slots");
        let new_path = base.with_extension("slots.new");
        let old_path = base.with_extension("slots.old");
        if new_path.exists() {
            if slots_path.exists() {
                remove(&new_path)?;
            } else {
                std::fs::rename(&new_path, &slots_path).map_err(|e| io_error(&new_path, e))?;
            }
        }
        let (slots, old_capacity, moved) = if slots_path.exists() {
            Slots::open(&slots_path)?
        } else if !records.is_empty() {
            return Err(corrupt(&slots_path, "missing while its records exist"));
        } else {
            (Slots::create(&slots_path, FIRST_CAPACITY, 0)?, 0, 0)
        };
        let old = if old_capacity > 0 && old_path.exists() {
            let (old, _, _) = Slots::open(&old_path)?;
            Some((old, moved))
        } else {
            if old_path.exists() {
                remove(&old_path)?;
            }
            None
        };
        let state = State {
            records,
            slots,
            old,
            owed: 0,
            renamed: AtomicBool::new(true),
            vacancies: Mutex::new(Vacancies::default()),
        };
        state.write_header()?;
        Ok(Table {
            base,
            secret,
            state: RwLock::new(state),
            #[cfg(test)]
            tag_mask: u64::MAX,
        })
    }

    /// The value of `key`, if it has one: a read of a group of slots and one of the record,
    /// unless hashes collide.
    pub fn get(&self, key: &[u8], reads: Reads) -> Result<Option<Vec<u8>>, TableError> {
        let state = self.read_for(reads)?;
        let tag = self.tag(key);
        for (i, slots) in state.all_slots().enumerate() {
            let mut value = None;
            // The whole record is read at once, its key compared and its value kept.
            let probe = state.probe(slots, tag, reads, |offset| {
                let (found_key, found_value) = state.records.record(offset, reads)?;
                let same = found_key == key;
                if same {
                    value = Some(found_value);
                }
                Ok(same)
            })?;
            if value.is_some() {
                return Ok(value);
            }
            // The current slots (the first): where an insert of the key goes.
            if let (0, Reads::Deciding, Probe::Vacant(at)) = (i, reads, probe) {
                lock(&state.vacancies).note(key, tag, at);
            }
        }
        Ok(None)
    }

    /// Makes sure that a batch of up to `keys` new keys can be written without meeting a full
    /// disk: space for its records, and the slots doubled ahead if it would fill them past half.
    pub fn reserve(&self, keys: u64) -> Result<(), TableError> {
        let mut state = self.write();
        state.records.reserve()?;
        if state.old.is_none() && (state.slots.count + keys) * 2 > state.slots.capacity {
            self.start_doubling(&mut state)?;
        }
        Ok(())
    }

    /// Sets each key to its value, in order (a key twice ends with its last value).
    pub fn insert_all(&self, entries: &[KeyValue]) -> Result<(), TableError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut state = self.write();
        // The records first: no slot may point past what is written.
        let offsets = state.records.append(entries)?;
        for ((key, _), offset) in entries.iter().zip(offsets) {
            match state.vacancies_mut().take(key) {
                Some((tag, at)) => state.fill(at, tag, offset)?,
                None => state.place(self.tag(key), Key::Bytes(key), offset)?,
            }
            self.grow_step(&mut state)?;
        }
        state.vacancies_mut().forget();
        state.write_header()
    }

    /// Removes the files of the map `name` in `dir`: the records first, the slots last, so
    /// that a removal cut short still shows (by its slots) at the next try.
    pub fn remove_files(dir: &Path, name: &str) -> Result<(), TableError> {
        let base = dir.join(name);
        for extension in ["records", "slots", "slots.old", "slots.new"] {
            remove(&base.with_extension(extension))?;
        }
        Ok(())
    }

    /// Puts everything written so far on disk (fdatasync), for the index's checkpoint.
    pub fn sync(&self) -> Result<(), TableError> {
        let (files, renamed) = {
            let state = self.read();
            let slots = state.all_slots().map(|s| (&s.file, s.path.as_path()));
            let files = duplicate(std::iter::once(state.records.file()).chain(slots))?;
            (files, state.renamed.swap(false, Ordering::AcqRel))
        };
        sync_duplicates(files, renamed.then_some(&self.base)).inspect_err(|_| {
            self.read().renamed.store(renamed, Ordering::Release);
        })
    }

    /// Every key and its value, in key order (for comparing two indexes).
    pub fn entries(&self) -> Result<Vec<KeyValue>, TableError> {
        let state = self.read();
        let mut out = BTreeMap::new();
        // The current slots first: where a key is in both, its value there is the newer.
        for slots in state.all_slots() {
            for index in 0..slots.capacity {
                let (_, offset) = slots.slot(index)?;
                if offset != 0 {
                    let (key, value) = state.records.record(offset, Reads::MayWait)?;
                    out.entry(key).or_insert(value);
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Empties the map (the secret stays).
    pub fn clear(&self) -> Result<(), TableError> {
        let mut state = self.write();
        state.records.clear()?;
        if let Some((old, _)) = state.old.take() {
            remove(&old.path)?;
        }
        state.slots = Slots::create(&self.base.with_extension("slots"), FIRST_CAPACITY, 0)?;
        state.vacancies_mut().forget();
        state.renamed.store(true, Ordering::Release);
        Ok(())
    }

    fn tag(&self, key: &[u8]) -> u64 {
        let digest = Sha256::new()
            .chain_update(self.secret)
            .chain_update(key)
            .finalize();
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&digest[..8]);
        let tag = u64::from_le_bytes(tag);
        #[cfg(test)]
        let tag = tag & self.tag_mask;
        tag
    }

    /// After an insert: starts doubling the slots at half full, or owes the move a few old
    /// slots and, once a block is owed, moves it.
    fn grow_step(&self, state: &mut State) -> Result<(), TableError> {
        let Some((old, from)) = &state.old else {
            // Normally begun by `reserve`; a replay at start does not reserve.
            if state.slots.count * 2 > state.slots.capacity {
                self.start_doubling(state)?;
            }
            return Ok(());
        };
        state.owed += MOVES_PER_INSERT;
        if state.owed >= MOVE_BLOCK || *from + state.owed >= old.capacity {
            state.move_block()?;
        }
        Ok(())
    }

    /// Moves the next block of a doubling in progress, if one is: for the index's checkpoint,
    /// so that a doubling also ends while no filings come (inserts move it otherwise). Whether
    /// the doubling still goes on.
    pub fn move_ahead(&self) -> Result<bool, TableError> {
        let mut state = self.write();
        if state.old.is_none() {
            return Ok(false);
        }
        state.move_block()?;
        state.write_header()?;
        Ok(state.old.is_some())
    }

    /// A slots file of twice the capacity takes every insert from now on; the old one moves
    /// into it a few slots per insert.
    fn start_doubling(&self, state: &mut State) -> Result<(), TableError> {
        let capacity = state.slots.capacity * 2;
        let slots_path = self.base.with_extension("slots");
        let new_path = self.base.with_extension("slots.new");
        let old_path = self.base.with_extension("slots.old");
        let mut new = match Slots::create(&new_path, capacity, state.slots.capacity) {
            Ok(new) => new,
            Err(e) => {
                let _ = std::fs::remove_file(&new_path);
                return Err(e);
            }
        };
        std::fs::rename(&slots_path, &old_path).map_err(|e| io_error(&slots_path, e))?;
        std::fs::rename(&new_path, &slots_path).map_err(|e| io_error(&new_path, e))?;
        new.path = slots_path;
        let mut old = std::mem::replace(&mut state.slots, new);
        old.path = old_path;
        state.old = Some((old, 0));
        state.owed = 0;
        state.vacancies_mut().forget();
        state.renamed.store(true, Ordering::Release);
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
}

/// A map's state for reading. A panic while the lock was held cannot leave the files
/// inconsistent (records are written before what points to them), so a poisoned lock is good.
pub(super) fn read_lock<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A map's state for a lookup; with [`Reads::NeverWait`], only if the writer does not hold it.
pub(super) fn read_lock_for<'a, T>(
    lock: &'a RwLock<T>,
    reads: Reads,
    base: &Path,
) -> Result<RwLockReadGuard<'a, T>, TableError> {
    match reads {
        Reads::MayWait | Reads::Deciding => Ok(read_lock(lock)),
        Reads::NeverWait => match lock.try_read() {
            Ok(state) => Ok(state),
            Err(TryLockError::Poisoned(poisoned)) => Ok(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => Err(TableError::WouldWait {
                path: base.to_owned(),
                cause: WouldWait::WriterBusy,
            }),
        },
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A map's state for the writer (see [`read_lock`] on poisoning).
pub(super) fn write_lock<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    /// The current slots, then the old ones while the slots double.
    fn all_slots(&self) -> impl Iterator<Item = &Slots> {
        std::iter::once(&self.slots).chain(self.old.as_ref().map(|(old, _)| old))
    }

    /// Points `key` (whose hash is `tag`) at the record at `offset` in the current slots.
    fn place(&mut self, tag: u64, key: Key<'_>, offset: u64) -> Result<(), TableError> {
        match self.probe(&self.slots, tag, Reads::MayWait, |at| {
            self.same_key(at, key)
        })? {
            Probe::Found(index) => self.slots.set(index, tag, offset),
            Probe::Vacant(index) => {
                self.vacancies_mut().taken.insert(index);
                self.fill(index, tag, offset)
            }
        }
    }

    /// Points the empty slot `at` of the current slots at the record at `offset`.
    fn fill(&mut self, at: u64, tag: u64, offset: u64) -> Result<(), TableError> {
        self.slots.set(at, tag, offset)?;
        self.slots.count += 1;
        Ok(())
    }

    fn vacancies_mut(&mut self) -> &mut Vacancies {
        self.vacancies
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the next block of old slots into the current slots, and ends the doubling after
    /// the last.
    fn move_block(&mut self) -> Result<(), TableError> {
        let Some((old, from)) = &self.old else {
            return Ok(());
        };
        let to = (*from + MOVE_BLOCK).min(old.capacity);
        let mut block = vec![0u8; ((to - *from) * SLOT) as usize];
        old.read_at(&mut block, SLOTS_HEADER + *from * SLOT, Reads::MayWait)?;
        let done = to == old.capacity;
        let moving: Vec<(u64, u64)> = block
            .chunks_exact(SLOT as usize)
            .map(decode_slot)
            .filter(|&(_, offset)| offset != 0)
            .collect();
        self.move_into_slots(moving)?;
        self.owed = 0;
        if done {
            if let Some((old, _)) = self.old.take() {
                self.write_header()?;
                remove(&old.path)?;
                self.renamed.store(true, Ordering::Release);
            }
        } else if let Some((_, moved)) = &mut self.old {
            *moved = to;
        }
        Ok(())
    }

    /// Puts moved slots (hash, record offset) into the current slots, unless their key is there
    /// already (inserted since the doubling began, with a newer value). Slots of one block of
    /// the old file land near each other (at their home, or a capacity of the old file after it),
    /// so they are placed in windows of the current slots read and written whole; one whose
    /// probe runs past its window is placed alone.
    fn move_into_slots(&mut self, mut moving: Vec<(u64, u64)>) -> Result<(), TableError> {
        // Moved slots fill empty ones without saying which.
        self.vacancies_mut().forget();
        let mask = self.slots.capacity - 1;
        moving.sort_unstable_by_key(|&(tag, _)| tag & mask);
        let mut alone = Vec::new();
        let mut rest = moving.as_slice();
        while let Some(&(first_tag, _)) = rest.first() {
            let start = first_tag & mask;
            // A window: slots whose homes are close, and room after the last for its probe.
            let mut len = 1;
            while len < rest.len()
                && (rest[len].0 & mask) <= (rest[len - 1].0 & mask) + WINDOW_SPILL
            {
                len += 1;
            }
            let (cluster, after) = rest.split_at(len);
            rest = after;
            let last_home = cluster[len - 1].0 & mask;
            let end = (last_home + len as u64 + WINDOW_SPILL).min(self.slots.capacity);
            let mut window = vec![0u8; ((end - start) * SLOT) as usize];
            self.slots
                .read_at(&mut window, SLOTS_HEADER + start * SLOT, Reads::MayWait)?;
            let mut placed = 0;
            for &(tag, offset) in cluster {
                match self.place_in_window(&mut window, start, tag, offset)? {
                    Some(true) => placed += 1,
                    Some(false) => {}
                    None => alone.push((tag, offset)),
                }
            }
            if placed > 0 {
                self.slots.write_at(&window, SLOTS_HEADER + start * SLOT)?;
                self.slots.count += placed;
            }
        }
        for (tag, offset) in alone {
            let same = |at| self.same_key(at, Key::At(offset));
            if let Probe::Vacant(index) = self.probe(&self.slots, tag, Reads::MayWait, same)? {
                self.slots.set(index, tag, offset)?;
                self.slots.count += 1;
            }
        }
        Ok(())
    }

    /// Places one moved slot in a window of the current slots that starts at slot `start`:
    /// `Some(true)` placed, `Some(false)` its key is there already, `None` its probe runs past
    /// the window.
    fn place_in_window(
        &self,
        window: &mut [u8],
        start: u64,
        tag: u64,
        offset: u64,
    ) -> Result<Option<bool>, TableError> {
        let home = (tag & (self.slots.capacity - 1)) - start;
        for slot in window.chunks_exact_mut(SLOT as usize).skip(home as usize) {
            let (found_tag, found) = decode_slot(slot);
            if found == 0 {
                slot.copy_from_slice(&encode_slot(tag, offset));
                return Ok(Some(true));
            }
            if found_tag == tag && self.same_key(found, Key::At(offset))? {
                return Ok(Some(false));
            }
        }
        Ok(None)
    }

    /// The slot of `slots` whose record `is_key` accepts (of those whose hash is `tag`), or the
    /// empty one where the key would go.
    fn probe(
        &self,
        slots: &Slots,
        tag: u64,
        reads: Reads,
        mut is_key: impl FnMut(u64) -> Result<bool, TableError>,
    ) -> Result<Probe, TableError> {
        let mask = slots.capacity - 1;
        let mut index = tag & mask;
        let mut group = [0u8; GROUP * SLOT as usize];
        let mut seen = 0;
        while seen < slots.capacity {
            let n = (GROUP as u64).min(slots.capacity - index);
            let bytes = &mut group[..(n * SLOT) as usize];
            slots.read_at(bytes, SLOTS_HEADER + index * SLOT, reads)?;
            for (i, slot) in bytes.chunks_exact(SLOT as usize).enumerate() {
                let (found_tag, offset) = decode_slot(slot);
                let at = index + i as u64;
                if offset == 0 {
                    return Ok(Probe::Vacant(at));
                }
                if found_tag == tag && is_key(offset)? {
                    return Ok(Probe::Found(at));
                }
            }
            seen += n;
            index = (index + n) & mask;
        }
        Err(corrupt(&slots.path, "no empty slot"))
    }

    /// Whether the record at `offset` is of `key`.
    fn same_key(&self, offset: u64, key: Key<'_>) -> Result<bool, TableError> {
        Ok(match key {
            Key::Bytes(key) => self.records.key_at(offset)? == key,
            Key::At(other) => {
                other == offset || self.records.key_at(offset)? == self.records.key_at(other)?
            }
        })
    }

    fn write_header(&self) -> Result<(), TableError> {
        let (old_capacity, moved) = self
            .old
            .as_ref()
            .map_or((0, 0), |(old, moved)| (old.capacity, *moved));
        self.slots.write_header(old_capacity, moved)
    }
}

/// The records file of a map: append-only records (key length, value length, CRC32C, key,
/// value) after a header holding the map's hash secret; a record is found by its offset.
#[derive(Debug)]
pub(super) struct Records {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    end: u64,
    /// How far the file has space allocated (see [`RESERVE`]).
    reserved_to: u64,
}

impl Records {
    /// Opens (or creates) a records file, with its secret.
    pub(super) fn open(path: &Path) -> Result<(Records, [u8; SECRET_LEN]), TableError> {
        let file = open_file(path)?;
        let mut end = len_of(&file, path)?;
        let mut secret = [0u8; SECRET_LEN];
        // Shorter than its header: new, or killed before the header was written.
        if end < RECORDS_HEADER {
            rustix::rand::getrandom(&mut secret, rustix::rand::GetRandomFlags::empty())
                .map_err(|e| io_error(path, e.into()))?;
            let mut header = RECORDS_MAGIC.to_vec();
            header.extend_from_slice(&secret);
            file.write_all_at(&header, 0)
                .map_err(|e| io_error(path, e))?;
            end = RECORDS_HEADER;
        } else {
            let mut header = [0u8; RECORDS_HEADER as usize];
            file.read_exact_at(&mut header, 0)
                .map_err(|e| io_error(path, e))?;
            if &header[..8] != RECORDS_MAGIC {
                return Err(corrupt(path, "not an index records file"));
            }
            secret.copy_from_slice(&header[8..]);
        }
        let records = Records {
            file,
            path: path.to_owned(),
            end,
            reserved_to: end,
        };
        Ok((records, secret))
    }

    /// Where the next record goes: every record is before it.
    pub(super) fn end(&self) -> u64 {
        self.end
    }

    /// Whether no record was ever written.
    pub(super) fn is_empty(&self) -> bool {
        self.end <= RECORDS_HEADER
    }

    /// Keeps space allocated past the end for a batch's records (see [`RESERVE`]).
    pub(super) fn reserve(&mut self) -> Result<(), TableError> {
        if self.end + RESERVE > self.reserved_to {
            let from = self.reserved_to.max(self.end);
            let to = self.end + 2 * RESERVE;
            allocate(&self.file, from, to - from, true).map_err(|e| io_error(&self.path, e))?;
            self.reserved_to = to;
        }
        Ok(())
    }

    /// Appends a record for each key and value, in one write; their offsets, in order.
    pub(super) fn append(&mut self, entries: &[KeyValue]) -> Result<Vec<u64>, TableError> {
        let size = entries.iter().map(|(k, v)| FRAME + k.len() + v.len()).sum();
        let mut buffer = Vec::with_capacity(size);
        let mut offsets = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            offsets.push(self.end + buffer.len() as u64);
            encode_record(&mut buffer, key, value)?;
        }
        self.file
            .write_all_at(&buffer, self.end)
            .map_err(|e| io_error(&self.path, e))?;
        self.end += buffer.len() as u64;
        Ok(offsets)
    }

    /// The file and its path (to sync a duplicate of the handle outside a map's lock).
    pub(super) fn file(&self) -> (&File, &Path) {
        (&self.file, &self.path)
    }

    /// Drops every record (the secret stays).
    pub(super) fn clear(&mut self) -> Result<(), TableError> {
        self.file
            .set_len(RECORDS_HEADER)
            .map_err(|e| io_error(&self.path, e))?;
        self.end = RECORDS_HEADER;
        self.reserved_to = RECORDS_HEADER;
        Ok(())
    }

    /// The key of the record at `offset`, read alone (an insert compares keys; the value and its
    /// CRC are read by whoever wants the value): one short read, for keys up to [`SHORT_KEY`].
    pub(super) fn key_at(&self, offset: u64) -> Result<Vec<u8>, TableError> {
        let (mut bytes, _, _) =
            self.read_record(offset, FRAME + SHORT_KEY, false, Reads::MayWait)?;
        Ok(bytes.split_off(FRAME))
    }

    /// The key and value of the record at `offset`, checked against its CRC.
    pub(super) fn record(
        &self,
        offset: u64,
        reads: Reads,
    ) -> Result<(Vec<u8>, Vec<u8>), TableError> {
        let (mut bytes, key_len, crc) = self.read_record(offset, READ_AHEAD, true, reads)?;
        if crc32c::crc32c(&bytes[FRAME..]) != crc {
            return Err(self.corrupt_record(offset, "CRC mismatch"));
        }
        let value = bytes.split_off(FRAME + key_len);
        let key = bytes.split_off(FRAME);
        Ok((key, value))
    }

    /// The record at `offset` up to the end of its key (or of its value, `whole`), read
    /// `read_ahead` bytes at first and the rest only if it is longer; with its key length and CRC.
    fn read_record(
        &self,
        offset: u64,
        read_ahead: usize,
        whole: bool,
        reads: Reads,
    ) -> Result<(Vec<u8>, usize, u32), TableError> {
        let corrupt_at = |reason: &str| self.corrupt_record(offset, reason);
        let read_error = |e: io::Error| match e.kind() {
            io::ErrorKind::WouldBlock => not_in_memory(&self.path),
            _ => corrupt_at(&e.to_string()),
        };
        let available = self.end.saturating_sub(offset).min(read_ahead as u64) as usize;
        if available < FRAME {
            return Err(corrupt_at("past the end"));
        }
        let mut bytes = vec![0u8; available];
        read_exact_at(&self.file, &mut bytes, offset, reads).map_err(read_error)?;
        let key_len = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
        let value_len = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
        let crc = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
        let wanted = FRAME + key_len + if whole { value_len } else { 0 };
        if offset + wanted as u64 > self.end {
            return Err(corrupt_at("runs past the end"));
        }
        if wanted > bytes.len() {
            let have = bytes.len();
            bytes.resize(wanted, 0);
            read_exact_at(&self.file, &mut bytes[have..], offset + have as u64, reads)
                .map_err(read_error)?;
        }
        bytes.truncate(wanted);
        Ok((bytes, key_len, crc))
    }

    fn corrupt_record(&self, offset: u64, reason: &str) -> TableError {
        corrupt(&self.path, &format!("record at {offset}: {reason}"))
    }
}

impl Slots {
    /// A new slots file of `capacity` empty slots, its space allocated (writing a slot must not
    /// meet a full disk).
    fn create(path: &Path, capacity: u64, old_capacity: u64) -> Result<Slots, TableError> {
        let file = open_with(path, true)?;
        allocate(&file, 0, SLOTS_HEADER + capacity * SLOT, false).map_err(|e| io_error(path, e))?;
        let slots = Slots {
            file,
            path: path.to_owned(),
            capacity,
            count: 0,
        };
        slots.write_header(old_capacity, 0)?;
        Ok(slots)
    }

    /// An existing slots file, with the old file's capacity and how many of its slots moved.
    fn open(path: &Path) -> Result<(Slots, u64, u64), TableError> {
        let file = open_file(path)?;
        let mut header = [0u8; SLOTS_HEADER as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| io_error(path, e))?;
        let field = |i: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&header[8 * i..8 * i + 8]);
            u64::from_le_bytes(bytes)
        };
        if &header[..8] != SLOTS_MAGIC {
            return Err(corrupt(path, "not an index slots file"));
        }
        let capacity = field(1);
        if !capacity.is_power_of_two()
            || len_of(&file, path)? != SLOTS_HEADER + capacity.saturating_mul(SLOT)
        {
            return Err(corrupt(path, "its length does not match its capacity"));
        }
        let slots = Slots {
            file,
            path: path.to_owned(),
            capacity,
            count: field(2),
        };
        Ok((slots, field(3), field(4)))
    }

    fn slot(&self, index: u64) -> Result<(u64, u64), TableError> {
        let mut bytes = [0u8; SLOT as usize];
        self.read_at(&mut bytes, SLOTS_HEADER + index * SLOT, Reads::MayWait)?;
        Ok(decode_slot(&bytes))
    }

    fn set(&self, index: u64, tag: u64, offset: u64) -> Result<(), TableError> {
        self.write_at(&encode_slot(tag, offset), SLOTS_HEADER + index * SLOT)
    }

    fn write_at(&self, bytes: &[u8], at: u64) -> Result<(), TableError> {
        self.file
            .write_all_at(bytes, at)
            .map_err(|e| io_error(&self.path, e))
    }

    fn read_at(&self, bytes: &mut [u8], at: u64, reads: Reads) -> Result<(), TableError> {
        read_exact_at(&self.file, bytes, at, reads).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => not_in_memory(&self.path),
            _ => io_error(&self.path, e),
        })
    }

    fn write_header(&self, old_capacity: u64, moved: u64) -> Result<(), TableError> {
        let mut header = [0u8; SLOTS_HEADER as usize];
        header[..8].copy_from_slice(SLOTS_MAGIC);
        for (i, value) in [self.capacity, self.count, old_capacity, moved]
            .into_iter()
            .enumerate()
        {
            header[8 * (i + 1)..8 * (i + 2)].copy_from_slice(&value.to_le_bytes());
        }
        self.write_at(&header, 0)
    }
}

/// Set once a read without waiting was refused as unsupported.
#[cfg(target_os = "linux")]
static NOWAIT_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Reads `bytes.len()` bytes of `file` at `at`; with [`Reads::NeverWait`], only from the page
/// cache (an [`io::ErrorKind::WouldBlock`] error where a page is not there).
pub(super) fn read_exact_at(
    file: &File,
    bytes: &mut [u8],
    at: u64,
    reads: Reads,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if reads == Reads::NeverWait && !NOWAIT_UNSUPPORTED.load(Ordering::Relaxed) {
        use rustix::io::{Errno, ReadWriteFlags};
        let mut done = 0;
        while done < bytes.len() {
            let mut rest = [io::IoSliceMut::new(&mut bytes[done..])];
            match rustix::io::preadv2(file, &mut rest, at + done as u64, ReadWriteFlags::NOWAIT) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(Errno::AGAIN) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(Errno::INTR) => {}
                // A file system, kernel or sandbox that cannot tell: from now on every read
                // waits as any other (said once).
                Err(e @ (Errno::OPNOTSUPP | Errno::NOSYS | Errno::PERM | Errno::INVAL)) => {
                    if !NOWAIT_UNSUPPORTED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            error = %e,
                            "reads without waiting (RWF_NOWAIT) are refused: index lookups may \
                             wait for the disk on the async workers"
                        );
                    }
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        return file.read_exact_at(&mut bytes[done..], at + done as u64);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = reads;
    file.read_exact_at(bytes, at)
}

fn encode_slot(tag: u64, offset: u64) -> [u8; SLOT as usize] {
    let mut bytes = [0u8; SLOT as usize];
    bytes[..8].copy_from_slice(&tag.to_le_bytes());
    bytes[8..].copy_from_slice(&offset.to_le_bytes());
    bytes
}

fn decode_slot(slot: &[u8]) -> (u64, u64) {
    let mut tag = [0u8; 8];
    let mut offset = [0u8; 8];
    tag.copy_from_slice(&slot[..8]);
    offset.copy_from_slice(&slot[8..16]);
    (u64::from_le_bytes(tag), u64::from_le_bytes(offset))
}

fn encode_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) -> Result<(), TableError> {
    let too_long = |what, len| TableError::TooLong { what, len };
    let key_len = u16::try_from(key.len()).map_err(|_| too_long("key", key.len()))?;
    let value_len = u32::try_from(value.len()).map_err(|_| too_long("value", value.len()))?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(key), value);
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(&value_len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    Ok(())
}

/// Allocates `len` bytes of `file` from `offset` (beyond its size only when `keep_size`); on a
/// file system that cannot, a plain length change (nothing reserved, but nothing refused).
pub(super) fn allocate(file: &File, offset: u64, len: u64, keep_size: bool) -> io::Result<()> {
    let flags = if keep_size {
        rustix::fs::FallocateFlags::KEEP_SIZE
    } else {
        rustix::fs::FallocateFlags::empty()
    };
    match rustix::fs::fallocate(file, flags, offset, len) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) if !keep_size => file.set_len(offset + len),
        Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens a file of the index for reading and writing, created private if new.
pub(super) fn open_file(path: &Path) -> Result<File, TableError> {
    open_with(path, false)
}

/// Opens a file of the index for reading and writing, created private if new, emptied first
/// if `truncate`, to be read without read-ahead ([`advise_random`]). Without access-time
/// updates where the system allows (the gateway owns the file): the writer changes the files
/// with every batch, so with `relatime` the first read after each batch would write the inode,
/// which may wait for the file system's journal.
fn open_with(path: &Path, truncate: bool) -> Result<File, TableError> {
    let open = |flags: i32| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(truncate)
            .mode(PRIVATE_FILE)
            .custom_flags(flags)
            .open(path)
    };
    #[cfg(target_os = "linux")]
    let opened = match open(rustix::fs::OFlags::NOATIME.bits() as i32) {
        // Not the file's owner: access times are kept.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => open(0),
        opened => opened,
    };
    #[cfg(not(target_os = "linux"))]
    let opened = open(0);
    let file = opened.map_err(|e| io_error(path, e))?;
    advise_random(&file);
    Ok(file)
}

pub(super) fn len_of(file: &File, path: &Path) -> Result<u64, TableError> {
    Ok(file.metadata().map_err(|e| io_error(path, e))?.len())
}

/// Duplicates a map's file handles, so that they are synced outside its lock: an fdatasync
/// takes milliseconds, and neither inserts nor lookups wait for it.
pub(super) fn duplicate<'a>(
    handles: impl IntoIterator<Item = (&'a File, &'a Path)>,
) -> Result<Vec<(File, PathBuf)>, TableError> {
    handles
        .into_iter()
        .map(|(file, path)| {
            let copy = file.try_clone().map_err(|e| io_error(path, e))?;
            Ok((copy, path.to_owned()))
        })
        .collect()
}

/// Syncs duplicated handles ([`duplicate`]), then the folder of the map at `base` if given (its
/// files were created, renamed or removed since the last sync).
pub(super) fn sync_duplicates(
    files: Vec<(File, PathBuf)>,
    base: Option<&PathBuf>,
) -> Result<(), TableError> {
    for (file, path) in files {
        file.sync_data().map_err(|e| io_error(&path, e))?;
    }
    if let Some(base) = base {
        let dir = base.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(dir, e))?;
    }
    Ok(())
}

pub(super) fn remove(path: &Path) -> Result<(), TableError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(path, e)),
        _ => Ok(()),
    }
}

pub(super) fn not_in_memory(path: &Path) -> TableError {
    TableError::WouldWait {
        path: path.to_owned(),
        cause: WouldWait::NotInMemory,
    }
}

/// Tells the kernel that reads of an index file land anywhere: no read-ahead around them. It
/// would fill the page cache with neighbours a hash lookup rarely wants, and the pages it
/// marks make a read without waiting give up though they are cached (`RWF_NOWAIT` starts no
/// read-ahead). Advice only: a failure changes nothing but speed.
fn advise_random(file: &File) {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    if let Err(e) = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Random) {
        tracing::debug!(error = %e, "no random-access advice for an index file");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let _ = file;
}

pub(super) fn io_error(path: &Path, source: io::Error) -> TableError {
    TableError::Io {
        path: path.to_owned(),
        source,
    }
}

pub(super) fn corrupt(path: &Path, reason: &str) -> TableError {
    TableError::Corrupt {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn key(i: u32) -> Vec<u8> {
        format!("GB123456789000\x1fLRN-{i}").into_bytes()
    }

    #[test]
    fn values_are_found_replaced_and_kept_across_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = Table::open(dir.path(), "lrn").expect("open");
        assert_eq!(table.get(b"absent", Reads::MayWait).expect("get"), None);
        table
            .insert_all(&[(key(1), b"one".to_vec()), (key(2), b"two".to_vec())])
            .expect("insert");
        table
            .insert_all(&[(key(1), b"uno".to_vec()), (key(1), b"eins".to_vec())])
            .expect("replace");
        assert_eq!(
            table.get(&key(1), Reads::MayWait).expect("get"),
            Some(b"eins".to_vec())
        );
        drop(table);
        let table = Table::open(dir.path(), "lrn").expect("reopen");
        assert_eq!(
            table.get(&key(1), Reads::MayWait).expect("get"),
            Some(b"eins".to_vec())
        );
        assert_eq!(
            table.get(&key(2), Reads::MayWait).expect("get"),
            Some(b"two".to_vec())
        );
        assert_eq!(table.entries().expect("entries").len(), 2);
        table.clear().expect("clear");
        assert_eq!(table.get(&key(1), Reads::MayWait).expect("get"), None);
        assert!(table.entries().expect("entries").is_empty());
    }

    /// Keys looked up while deciding note where they would go; when two note the same empty
    /// slot, the first inserted takes it and the second probes again: neither is lost.
    #[test]
    fn keys_noting_the_same_vacancy_both_land() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut table = Table::open(dir.path(), "lrn").expect("open");
        table.tag_mask = 0; // every key at the same home
        for i in [1, 2] {
            assert_eq!(table.get(&key(i), Reads::Deciding).expect("get"), None);
        }
        assert_eq!(table.read().vacancies.lock().expect("lock").by_key.len(), 2);
        table
            .insert_all(&[(key(1), b"one".to_vec()), (key(2), b"two".to_vec())])
            .expect("insert");
        assert_eq!(
            table.get(&key(1), Reads::MayWait).expect("get"),
            Some(b"one".to_vec())
        );
        assert_eq!(
            table.get(&key(2), Reads::MayWait).expect("get"),
            Some(b"two".to_vec())
        );
        let state = table.read();
        assert_eq!(state.slots.count, 2);
        let vacancies = state.vacancies.lock().expect("lock");
        assert!(
            vacancies.by_key.is_empty() && vacancies.taken.is_empty(),
            "forgotten"
        );
    }

    /// An async worker must not wait for the disk: a lookup that may not wait gives up on what
    /// is not in memory, and the same lookup allowed to wait finds it (and brings it back).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_lookup_that_may_not_wait_gives_up_on_what_is_not_in_memory() {
        use crate::store::disk::page_cache::{evict, folder_on_disk};
        let Some(dir) = folder_on_disk() else {
            return;
        };
        let table = Table::open(dir.path(), "filings").expect("open");
        let entries: Vec<KeyValue> = (0..200).map(|i| (key(i), vec![b'v'; 300])).collect();
        table.reserve(200).expect("reserve");
        table.insert_all(&entries).expect("insert");
        let value = Some(vec![b'v'; 300]);
        assert_eq!(
            table.get(&key(7), Reads::NeverWait).expect("in memory"),
            value
        );
        // Reopened, as after a restart: every page of its files may hold something. Written
        // pages stay until they are on disk; then they can be dropped (after the opening read
        // the headers).
        table.sync().expect("sync");
        drop(table);
        let table = Table::open(dir.path(), "filings").expect("reopen");
        for file in ["filings.records", "filings.slots"] {
            if !evict(&dir.path().join(file)) {
                return;
            }
        }
        for present_or_not in [key(7), key(1000)] {
            let error = table
                .get(&present_or_not, Reads::NeverWait)
                .expect_err("not in memory");
            assert_eq!(error.would_wait(), Some(WouldWait::NotInMemory), "{error}");
        }
        assert_eq!(
            table.get(&key(7), Reads::MayWait).expect("from disk"),
            value
        );
        // No read-ahead mark on what that read brought back, so nothing makes this give up.
        assert_eq!(
            table
                .get(&key(7), Reads::NeverWait)
                .expect("in memory again"),
            value
        );
    }

    /// Nor must it wait for the index writer, which holds the table while it inserts a batch.
    #[test]
    fn a_lookup_that_may_not_wait_gives_up_while_the_writer_holds_the_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = Table::open(dir.path(), "lrn").expect("open");
        table
            .insert_all(&[(key(1), b"one".to_vec())])
            .expect("insert");
        let writer = table.write();
        let error = table
            .get(&key(1), Reads::NeverWait)
            .expect_err("the writer holds it");
        assert_eq!(error.would_wait(), Some(WouldWait::WriterBusy), "{error}");
        drop(writer);
        assert_eq!(
            table.get(&key(1), Reads::NeverWait).expect("free again"),
            Some(b"one".to_vec())
        );
    }

    /// Many keys (several doublings), some replaced while the slots move, the table reopened in
    /// the middle of a move; colliding hashes make every probe compare keys.
    #[test]
    fn doubling_keeps_every_key_and_its_latest_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut model = BTreeMap::new();
        let mut table = Table::open(dir.path(), "filings").expect("open");
        table.tag_mask = 0xffff;
        let mut reopened_while_moving = false;
        for round in 0..40u32 {
            let batch: Vec<_> = (0..500)
                .map(|i| {
                    let k = key((round * 500 + i) % 15_000);
                    (k, format!("value {round} {i}").into_bytes())
                })
                .collect();
            table.insert_all(&batch).expect("insert");
            model.extend(batch);
            if table.read().old.is_some() && !reopened_while_moving {
                drop(table);
                table = Table::open(dir.path(), "filings").expect("reopen");
                table.tag_mask = 0xffff;
                assert!(
                    table.read().old.is_some(),
                    "the move goes on after a reopen"
                );
                reopened_while_moving = true;
            }
        }
        assert!(reopened_while_moving);
        assert!(table.read().slots.capacity >= 2 * model.len() as u64 / 2);
        for (k, v) in &model {
            assert_eq!(table.get(k, Reads::MayWait).expect("get").as_ref(), Some(v));
        }
        let entries: BTreeMap<_, _> = table.entries().expect("entries").into_iter().collect();
        assert_eq!(entries, model);
    }

    /// Hashes narrowed to 1 024 values pile every key into long probe runs: moved slots overrun
    /// their windows and are placed alone, and single inserts owe the move block by block.
    #[test]
    fn moves_whose_probes_run_past_their_window_keep_every_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut table = Table::open(dir.path(), "lrn").expect("open");
        table.tag_mask = 0x3ff;
        let keys = 3_000;
        let mut doubled = false;
        for i in 0..keys {
            table
                .insert_all(&[(key(i), i.to_le_bytes().to_vec())])
                .expect("insert");
            doubled |= table.read().old.is_some();
        }
        assert!(doubled, "the slots doubled on the way");
        let state = table.read();
        assert!(state.old.is_none(), "the move finished");
        assert_eq!(state.slots.count, u64::from(keys));
        drop(state);
        for i in 0..keys {
            assert_eq!(
                table.get(&key(i), Reads::MayWait).expect("get"),
                Some(i.to_le_bytes().to_vec())
            );
        }
    }

    /// A doubling left half done by the last inserts is finished by the checkpoint's moves.
    #[test]
    fn a_doubling_ends_without_inserts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = Table::open(dir.path(), "filings").expect("open");
        let keys = 2_100u32;
        let batch: Vec<_> = (0..keys)
            .map(|i| (key(i), i.to_le_bytes().to_vec()))
            .collect();
        table.insert_all(&batch).expect("insert");
        assert!(table.read().old.is_some(), "doubling, with old slots left");
        let old = dir.path().join("filings.slots.old");
        assert!(old.exists());
        let mut moves = 0;
        while table.move_ahead().expect("move") {
            moves += 1;
        }
        assert!(moves > 0);
        assert!(!old.exists(), "the old slots are gone");
        drop(table);
        let table = Table::open(dir.path(), "filings").expect("reopen");
        assert_eq!(table.read().slots.count, u64::from(keys));
        for i in 0..keys {
            assert_eq!(
                table.get(&key(i), Reads::MayWait).expect("get"),
                Some(i.to_le_bytes().to_vec())
            );
        }
    }

    #[test]
    fn a_doubling_cut_between_its_renames_is_finished_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = Table::open(dir.path(), "documents").expect("open");
        table
            .insert_all(&[(key(7), b"seven".to_vec())])
            .expect("insert");
        drop(table);
        let base = dir.path().join("documents");
        std::fs::rename(
            base.with_extension("slots"),
            base.with_extension("slots.new"),
        )
        .expect("rename");
        let table = Table::open(dir.path(), "documents").expect("reopen");
        assert_eq!(
            table.get(&key(7), Reads::MayWait).expect("get"),
            Some(b"seven".to_vec())
        );
        assert!(!base.with_extension("slots.new").exists());
    }

    #[test]
    fn a_damaged_record_is_an_error_not_an_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = Table::open(dir.path(), "filings").expect("open");
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

    #[test]
    fn slots_without_their_records_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = Table::open(dir.path(), "lrn").expect("open");
        table
            .insert_all(&[(key(1), b"x".to_vec())])
            .expect("insert");
        drop(table);
        std::fs::remove_file(dir.path().join("lrn.slots")).expect("remove");
        let error = Table::open(dir.path(), "lrn").expect_err("refused");
        assert!(error.to_string().contains("reindex"), "{error}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Any sequence of batches and reopens reads like a map.
        #[test]
        fn reads_like_a_map(
            batches in prop::collection::vec(
                (
                    prop::collection::vec((0u32..3000, any::<u16>()), 1..400),
                    any::<bool>(),
                    any::<bool>(),
                ),
                1..20,
            )
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut table = Table::open(dir.path(), "t").expect("open");
            table.tag_mask = 0xfff;
            let mut model = BTreeMap::new();
            for (batch, reopen, decided) in batches {
                let batch: Vec<_> = batch
                    .into_iter()
                    .map(|(k, v)| (key(k), v.to_le_bytes().to_vec()))
                    .collect();
                // As the writer does: each key looked up while deciding, room reserved (which
                // may start a doubling), then the inserts, which take the vacancies noted.
                if decided {
                    for (k, _) in &batch {
                        let found = table.get(k, Reads::Deciding).expect("get");
                        prop_assert_eq!(found.as_ref(), model.get(k));
                    }
                    table.reserve(batch.len() as u64).expect("reserve");
                }
                table.insert_all(&batch).expect("insert");
                model.extend(batch);
                if reopen {
                    drop(table);
                    table = Table::open(dir.path(), "t").expect("reopen");
                    table.tag_mask = 0xfff;
                }
            }
            let entries: BTreeMap<_, _> = table.entries().expect("entries").into_iter().collect();
            prop_assert_eq!(&entries, &model);
            for (k, v) in &model {
                let found = table.get(k, Reads::MayWait).expect("get");
                prop_assert_eq!(found.as_ref(), Some(v));
            }
        }
    }
}
