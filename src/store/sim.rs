//! A simulated disk for the power-loss and disk-full tests (the `testing` feature only).
//!
//! It keeps what was synced apart from what was only written. At a simulated power loss it
//! keeps, drops or tears the unsynced bytes of each file (seeded), and forgets files whose
//! directory entry was never synced, which is what a real disk may do. It can also run out of
//! space, and fail syncs, on command.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::disk::{AppendFile, Disk, SegmentRead};

/// A disk in memory that loses unsynced writes at a simulated power loss. Clones share it.
#[derive(Debug, Clone)]
pub struct SimDisk {
    state: Arc<Mutex<SimState>>,
}

#[derive(Debug)]
struct SimState {
    files: BTreeMap<PathBuf, SimFile>,
    /// After [`SimDisk::cut_power`] every operation fails until [`SimDisk::power_on`].
    powered: bool,
    /// Total bytes the disk holds; an append past it writes what fits, then fails.
    capacity: Option<u64>,
    /// Syncs still to fail with an I/O error.
    failing_syncs: u32,
    /// Writes and syncs still to go before the power is cut (none: not armed).
    power_left: Option<u64>,
    rng: SplitMix,
}

#[derive(Debug, Clone, Default)]
struct SimFile {
    data: Vec<u8>,
    /// Bytes from the start that are on the medium.
    synced: usize,
    /// Whether the directory entry is on the medium.
    linked: bool,
}

/// What a power loss did, for the test's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PowerLoss {
    pub files_forgotten: u32,
    pub tails_dropped: u32,
    pub tails_torn: u32,
    pub tails_kept: u32,
    pub unsynced_bytes: u64,
}

impl SimDisk {
    pub fn new(seed: u64) -> SimDisk {
        SimDisk {
            state: Arc::new(Mutex::new(SimState {
                files: BTreeMap::new(),
                powered: true,
                capacity: None,
                failing_syncs: 0,
                power_left: None,
                rng: SplitMix(seed),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, SimState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every operation fails from now on, as if the machine had stopped.
    pub fn cut_power(&self) {
        self.state().powered = false;
    }

    /// Cuts the power just before the `operations`-th next write, sync, truncation or removal
    /// from now (0: the very next one), so that it lands between a write and its sync as often
    /// as anywhere else.
    pub fn cut_power_after(&self, operations: u64) {
        self.state().power_left = Some(operations);
    }

    /// Restarts the disk after [`SimDisk::cut_power`]: files never linked by a directory sync
    /// are gone, and each file's unsynced tail is kept, dropped, or torn (cut short, or cut and
    /// followed by zeros or garbage), as the seed decides.
    pub fn power_on(&self) -> PowerLoss {
        let mut state = self.state();
        let SimState { files, rng, .. } = &mut *state;
        let mut loss = PowerLoss::default();
        files.retain(|_, file| {
            if !file.linked {
                loss.files_forgotten += 1;
            }
            file.linked
        });
        for file in files.values_mut() {
            let unsynced = file.data.len() - file.synced;
            if unsynced == 0 {
                continue;
            }
            loss.unsynced_bytes += unsynced as u64;
            let kept = rng.below(unsynced as u64 + 1) as usize;
            match rng.below(4) {
                0 => {
                    file.data.truncate(file.synced);
                    loss.tails_dropped += 1;
                }
                1 => {
                    file.data.truncate(file.synced + kept);
                    loss.tails_torn += 1;
                }
                2 => {
                    // The size reached the medium, not all the data: zeros, or stale garbage.
                    let garbage = rng.below(2) == 0;
                    for byte in &mut file.data[file.synced + kept..] {
                        *byte = if garbage { rng.next() as u8 } else { 0 };
                    }
                    loss.tails_torn += 1;
                }
                _ => loss.tails_kept += 1,
            }
            file.synced = file.data.len();
        }
        state.powered = true;
        state.power_left = None;
        loss
    }

    /// Limits the bytes the disk holds (`None`: unlimited).
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state().capacity = bytes;
    }

    /// Bytes in use, over all files.
    pub fn used(&self) -> u64 {
        self.state().used()
    }

    /// The next `count` syncs fail with an I/O error (the data stays unsynced).
    pub fn fail_syncs(&self, count: u32) {
        self.state().failing_syncs = count;
    }

    fn live(&self) -> io::Result<MutexGuard<'_, SimState>> {
        let state = self.state();
        if state.powered {
            Ok(state)
        } else {
            Err(io::Error::other("simulated power loss"))
        }
    }

    /// [`SimDisk::live`] for an operation that changes the disk: counts down to a power cut.
    fn changing(&self) -> io::Result<MutexGuard<'_, SimState>> {
        let mut state = self.live()?;
        match state.power_left {
            Some(0) => {
                state.powered = false;
                Err(io::Error::other("simulated power loss"))
            }
            Some(left) => {
                state.power_left = Some(left - 1);
                Ok(state)
            }
            None => Ok(state),
        }
    }
}

impl SimState {
    fn used(&self) -> u64 {
        self.files.values().map(|f| f.data.len() as u64).sum()
    }

    fn file(&mut self, path: &Path) -> io::Result<&mut SimFile> {
        self.files
            .get_mut(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))
    }

    fn sync(&mut self, path: &Path) -> io::Result<()> {
        if self.failing_syncs > 0 {
            self.failing_syncs -= 1;
            return Err(io::Error::other("simulated I/O error in fsync"));
        }
        let file = self.file(path)?;
        file.synced = file.data.len();
        Ok(())
    }
}

impl Disk for SimDisk {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        self.live().map(drop)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let state = self.live()?;
        Ok(state
            .files
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .cloned()
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut state = self.live()?;
        Ok(state.file(path)?.data.clone())
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn SegmentRead>> {
        self.live()?.file(path)?;
        Ok(Box::new(SimReader {
            disk: self.clone(),
            path: path.to_owned(),
            position: 0,
        }))
    }

    fn create_new(&self, path: &Path) -> io::Result<()> {
        let mut state = self.changing()?;
        if state.files.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                path.display().to_string(),
            ));
        }
        state.files.insert(path.to_owned(), SimFile::default());
        Ok(())
    }

    fn open_append(&self, path: &Path, len: u64) -> io::Result<Box<dyn AppendFile>> {
        let mut state = self.live()?;
        let data = &state.file(path)?.data;
        // This disk does not preallocate, but a power loss can leave zeros after the records
        // (a size that reached the medium before its data). Appends write over them, as they
        // write over the preallocated zeros of the operating system's disk.
        let after = usize::try_from(len)
            .ok()
            .and_then(|len| data.get(len..))
            .filter(|after| after.iter().all(|&byte| byte == 0));
        if after.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} has {} bytes, not {len} and then zeros",
                    path.display(),
                    data.len()
                ),
            ));
        }
        Ok(Box::new(SimAppend {
            disk: self.clone(),
            path: path.to_owned(),
            len: len as usize,
        }))
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.changing()?;
        let previous = state.files.get(path).map_or(0, |f| f.data.len() as u64);
        if let Some(capacity) = state.capacity
            && state.used() - previous + bytes.len() as u64 > capacity
        {
            return Err(io::ErrorKind::StorageFull.into());
        }
        let linked = state.files.get(path).is_some_and(|f| f.linked);
        state.files.insert(
            path.to_owned(),
            SimFile {
                data: bytes.to_vec(),
                synced: bytes.len(),
                linked,
            },
        );
        Ok(())
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut state = self.changing()?;
        let file = state.file(path)?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        file.data.resize(len, 0);
        file.synced = len;
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.changing()?;
        state
            .files
            .remove(path)
            .map(drop)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.changing()?;
        for (path, file) in state.files.iter_mut() {
            if path.parent() == Some(dir) {
                file.linked = true;
            }
        }
        Ok(())
    }
}

struct SimAppend {
    disk: SimDisk,
    path: PathBuf,
    /// Bytes appended: where the next append goes (zeros may follow).
    len: usize,
}

impl AppendFile for SimAppend {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.disk.changing()?;
        // Zeros already there take no new room.
        let zeros = state.file(&self.path)?.data.len().saturating_sub(self.len);
        let room = match state.capacity {
            Some(capacity) => usize::try_from(capacity.saturating_sub(state.used()))
                .unwrap_or(usize::MAX)
                .saturating_add(zeros)
                .min(bytes.len()),
            None => bytes.len(),
        };
        let file = state.file(&self.path)?;
        let end = self.len + room;
        if end > file.data.len() {
            file.data.resize(end, 0);
        }
        file.data[self.len..end].copy_from_slice(&bytes[..room]);
        // What is written over is not on the medium until the next sync.
        file.synced = file.synced.min(self.len);
        self.len = end;
        if room < bytes.len() {
            return Err(io::ErrorKind::StorageFull.into());
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.disk.changing()?.sync(&self.path)
    }

    fn len(&self) -> io::Result<u64> {
        self.disk.live().map(|_| self.len as u64)
    }
}

struct SimReader {
    disk: SimDisk,
    path: PathBuf,
    position: usize,
}

impl Read for SimReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = self.disk.live()?;
        let data = &state.file(&self.path)?.data;
        let available = data.get(self.position..).unwrap_or_default();
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.position += n;
        Ok(n)
    }
}

impl Seek for SimReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let len = self.disk.live()?.file(&self.path)?.data.len() as i128;
        let target = match to {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(n) => len + i128::from(n),
            SeekFrom::Current(n) => self.position as i128 + i128::from(n),
        };
        self.position = usize::try_from(target)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.position as u64)
    }
}

/// A small seeded generator (SplitMix64): the simulation must replay from its seed.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 { 0 } else { self.next() % bound }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_power_loss_keeps_synced_bytes_and_forgets_unlinked_files() {
        let disk = SimDisk::new(7);
        let dir = Path::new("/sim");
        let linked = dir.join("a");
        let unlinked = dir.join("b");
        disk.create_new(&linked).expect("create");
        disk.sync_dir(dir).expect("sync dir");
        disk.create_new(&unlinked).expect("create");
        let mut file = disk.open_append(&linked, 0).expect("open");
        file.append(b"synced").expect("append");
        file.sync_data().expect("sync");
        file.append(b" and not").expect("append");
        disk.cut_power();
        assert!(file.append(b"x").is_err(), "no writes without power");
        let loss = disk.power_on();
        assert_eq!(loss.files_forgotten, 1);
        assert_eq!(loss.unsynced_bytes, 8);
        let data = disk.read(&linked).expect("read");
        assert!(data.starts_with(b"synced"), "{data:?}");
        assert!(data.len() <= b"synced and not".len());
        assert!(disk.read(&unlinked).is_err());
    }

    #[test]
    fn a_full_disk_writes_what_fits_then_refuses() {
        let disk = SimDisk::new(1);
        let path = Path::new("/sim/a");
        disk.create_new(path).expect("create");
        disk.set_capacity(Some(4));
        let mut file = disk.open_append(path, 0).expect("open");
        let error = file.append(b"abcdef").expect_err("full");
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert_eq!(file.len().expect("len"), 4);
        disk.truncate(path, 0).expect("truncate frees space");
        disk.set_capacity(None);
        file.append(b"abcdef").expect("room again");
    }
}
