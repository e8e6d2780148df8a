//! The narrow file-system surface the segment log goes through: the operating system's files
//! (here) and, with the `testing` feature, a simulated disk for the power-loss and disk-full
//! tests (`sim.rs`).
//!
//! On the operating system's disk an append file grows in zero-filled steps of [`PREALLOCATE`]
//! bytes ahead of what it holds, so most appends overwrite zeros in place: the file's size and
//! blocks do not change, and fdatasync has only the data to write (less than half the time of
//! a sync that must also persist a new size, on the disks measured here). The log reads a run of
//! zeros where a record would begin, up to the end of the file, as the end of its records.
//!
//! A large append ([`EXTENDING_APPEND`]) that runs past the zeros extends the file itself
//! instead: a step's zeros cost its sync more than a new size does once few appends share the
//! step, and a flood of 390 KB filings spent most of its tail in syncs of zero steps.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The operations the log needs; paths are files the log owns.
pub trait Disk: Send + Sync + std::fmt::Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The paths of the entries of `dir`, in no particular order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// A reader from the start of `path` that also sees what is appended later.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn SegmentRead>>;
    /// Creates an empty file (it fails if the file exists) and syncs it; the directory entry is
    /// durable only after [`Disk::sync_dir`].
    fn create_new(&self, path: &Path) -> io::Result<()>;
    /// Opens `path` to append after its first `len` bytes, what the log holds (any bytes after
    /// them are zeros this disk preallocated).
    fn open_append(&self, path: &Path, len: u64) -> io::Result<Box<dyn AppendFile>>;
    /// Writes a whole new file and syncs it (the directory entry needs [`Disk::sync_dir`]).
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Cuts `path` to `len` bytes and syncs it.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file open for reading: forward, and back to read again what was read ahead of the writer.
pub trait SegmentRead: Read + Seek + Send {}

impl<T: Read + Seek + Send> SegmentRead for T {}

/// A file open for appending.
pub trait AppendFile: Send {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn sync_data(&mut self) -> io::Result<()>;
    /// Bytes appended so far (preallocated zeros after them do not count).
    fn len(&self) -> io::Result<u64>;
    /// Lets the operating system drop its cached copy of bytes `from..to`, which are synced and
    /// will not be read again soon. Advice: nothing is lost if it is not taken.
    fn release_cache(&mut self, _from: u64, _to: u64) -> io::Result<()> {
        Ok(())
    }
}

/// How far ahead of its contents an append file on the operating system's disk is zero-filled.
/// The sync after each step also writes the step's zeros and the new size: 1 MiB keeps that
/// slower sync to a few milliseconds, once per several hundred filings (4 MiB doubled the p99 at
/// 64 in flight; 256 KiB made it more frequent for no gain).
pub const PREALLOCATE: u64 = 1024 * 1024;

/// What preallocation writes: in the zero-initialized data segment, so never allocated at run
/// time (a fresh 1 MiB each step cost page faults and zeroing).
static ZEROS: [u8; PREALLOCATE as usize] = [0; PREALLOCATE as usize];

/// An append at least this large that runs past the preallocated zeros is written past the
/// file's end, not over a zero step written first. Measured on this machine's disk (a sync
/// after each write, the writes 2 ms apart): a 1 MiB step of zeros added ~700 us to the sync
/// that carried it, whatever the data (954 B to 390 KB); a new size 70-250 us. Shared by the
/// appends a step holds, the step costs ~700 us x size / 1 MiB an append: more than a new size
/// from about 150-350 KB on (390 KB: 530 us a sync extending the file, against 960 us for the
/// one append in three that crossed a step). Below this size the steps stay.
pub const EXTENDING_APPEND: u64 = 256 * 1024;

/// An extending append leaves zeros after itself up to the next multiple of this (at least one
/// byte of them), so that the small appends after it, another carrier's filings among them, do
/// not each start a step.
pub const EXTENDING_ALIGN: u64 = 64 * 1024;

/// Permissions of every file the store writes: the records hold names, addresses, phone
/// numbers; only the gateway's own user reads them, whatever the umask.
pub const PRIVATE_FILE: u32 = 0o600;
/// Permissions of the data directory and every directory under it.
pub const PRIVATE_DIR: u32 = 0o700;

/// Creates `dir` (and its missing parents) readable by the owner only, and makes an existing
/// one of ours so.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)?;
    restrict(dir, PRIVATE_DIR)
}

/// Makes every file below `dir` readable by its owner only and every directory private (what
/// another program, such as sled, created there under a wider umask).
pub fn make_private(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            make_private(&entry.path())?;
        } else if kind.is_file() {
            restrict(&entry.path(), PRIVATE_FILE)?;
        }
    }
    restrict(dir, PRIVATE_DIR)
}

/// Sets `mode` on a file or directory the gateway's user owns. What another user owns (a mount
/// point's `lost+found`, a directory shared through a group) is left as it is: changing it is
/// not ours to do, and would fail.
fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    let meta = fs::metadata(path)?;
    if meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o777 == mode {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// The disk the gateway runs on: the operating system's files.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsDisk;

impl Disk for OsDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        create_private_dir(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.path()))
            .collect()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn SegmentRead>> {
        Ok(Box::new(File::open(path)?))
    }

    fn create_new(&self, path: &Path) -> io::Result<()> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE)
            .open(path)?
            .sync_all()
    }

    fn open_append(&self, path: &Path, len: u64) -> io::Result<Box<dyn AppendFile>> {
        let file = OpenOptions::new().write(true).open(path)?;
        let allocated = file.metadata()?.len();
        if allocated < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has {allocated} bytes, not {len}", path.display()),
            ));
        }
        Ok(Box::new(PreallocatedFile {
            file,
            len,
            allocated,
        }))
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(PRIVATE_FILE)
            .open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// An append file zero-filled ahead of its contents (see the module's documentation).
struct PreallocatedFile {
    file: File,
    /// Bytes appended: where the next append goes.
    len: u64,
    /// The file's size: appended bytes, then zeros.
    allocated: u64,
}

impl AppendFile for PreallocatedFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let end = self.len + bytes.len() as u64;
        let extending = end > self.allocated && bytes.len() as u64 >= EXTENDING_APPEND;
        // Where the file will end: where it does, or past a large append and zeros up to the
        // next boundary after it, or at the end of the zero steps that take the append.
        let target = if end <= self.allocated {
            self.allocated
        } else if extending {
            (end / EXTENDING_ALIGN + 1) * EXTENDING_ALIGN
        } else {
            end.div_ceil(PREALLOCATE) * PREALLOCATE
        };
        // Space preallocated is not a licence to run the file system dry: like an appending
        // log, refuse when it has no room for these bytes (or for what the file grows by).
        // Otherwise the index would be first to find the disk full, and sled does not recover
        // from that without a restart.
        let needed = (bytes.len() as u64).max(target - self.allocated);
        let free = rustix::fs::fstatvfs(&self.file).map_err(io::Error::from)?;
        if free.f_bavail.saturating_mul(free.f_frsize) < needed {
            return Err(io::ErrorKind::StorageFull.into());
        }
        if extending {
            self.file.write_all_at(bytes, self.len)?;
            self.file
                .write_all_at(&ZEROS[..(target - end) as usize], end)?;
        } else {
            // Real zeros, not a hole or fallocate's unwritten extents: writing over either
            // changes the file's metadata again, which is what this avoids. The next sync_data
            // makes them and the new size durable together with the data.
            let mut at = self.allocated;
            while at < target {
                let step = (target - at).min(PREALLOCATE);
                self.file.write_all_at(&ZEROS[..step as usize], at)?;
                at += step;
            }
            self.file.write_all_at(bytes, self.len)?;
        }
        self.allocated = target;
        self.len = end;
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.len)
    }

    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    fn release_cache(&mut self, from: u64, to: u64) -> io::Result<()> {
        let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(from)) else {
            return Ok(());
        };
        rustix::fs::fadvise(&self.file, from, Some(len), rustix::fs::Advice::DontNeed)
            .map_err(io::Error::from)
    }
}

/// What the tests that watch the page cache share.
#[cfg(test)]
pub(super) mod page_cache {
    use std::path::Path;

    /// Bytes of `path` in the page cache, as `fincore` (util-linux) counts them.
    pub fn cached_bytes(path: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(path)
            .output()
            .expect("fincore (util-linux; Debian's util-linux-extra, which .ci/run installs) runs");
        assert!(out.status.success(), "fincore: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a byte count")
    }

    /// A folder under the build's, on a disk: a tmpfs (/tmp on some machines) keeps every page,
    /// so there the cache tests are skipped (`None`).
    pub fn folder_on_disk() -> Option<tempfile::TempDir> {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&target).expect("target folder");
        let tmp = tempfile::tempdir_in(&target).expect("tmp");
        const TMPFS: u64 = 0x0102_1994;
        let fs = rustix::fs::statfs(tmp.path()).expect("statfs");
        if u64::try_from(fs.f_type).ok() == Some(TMPFS) {
            eprintln!(
                "skipped: {} is on a tmpfs, whose pages stay",
                tmp.path().display()
            );
            return None;
        }
        Some(tmp)
    }

    /// Drops what the page cache holds of `path` (its written pages, once on disk), and says
    /// whether that worked: whether a read that may not wait now gives up on its first byte.
    /// Some file systems keep their pages (a tmpfs, FUSE) or wait anyway; their tests skip.
    #[cfg(target_os = "linux")]
    pub fn evict(path: &Path) -> bool {
        let file = std::fs::File::open(path).expect("open");
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
        let mut byte = [0u8; 1];
        let mut bufs = [std::io::IoSliceMut::new(&mut byte)];
        let flags = rustix::io::ReadWriteFlags::NOWAIT;
        let evicted =
            rustix::io::preadv2(&file, &mut bufs, 0, flags) == Err(rustix::io::Errno::AGAIN);
        if !evicted {
            eprintln!("skipped: {} stays readable without waiting", path.display());
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_disk_appends_over_zeros_it_preallocated() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("segment");
        OsDisk.create_new(&path).expect("create");
        let mut file = OsDisk.open_append(&path, 0).expect("open");
        file.append(b"first").expect("append");
        file.sync_data().expect("sync");
        assert_eq!(file.len().expect("len"), 5);
        assert_eq!(fs::metadata(&path).expect("meta").len(), PREALLOCATE);
        drop(file);
        // Reopened where its contents end, it writes over the zeros, not after them.
        let mut file = OsDisk.open_append(&path, 5).expect("reopen");
        file.append(b" second").expect("append");
        let filler = vec![5u8; usize::try_from(PREALLOCATE).expect("fits") - 12 - 1000];
        file.append(&filler)
            .expect("a large append within the zeros");
        assert_eq!(fs::metadata(&path).expect("meta").len(), PREALLOCATE);
        let small = vec![6u8; 100_000];
        file.append(&small)
            .expect("append past the preallocated end");
        file.sync_data().expect("sync");
        assert_eq!(
            fs::metadata(&path).expect("meta").len(),
            2 * PREALLOCATE,
            "a small append crossing the zeros zero-fills the next step"
        );
        let big = vec![7u8; usize::try_from(PREALLOCATE).expect("fits")];
        file.append(&big).expect("append past the preallocated end");
        file.sync_data().expect("sync");
        let start = 12 + filler.len();
        let end = start + small.len() + big.len();
        let extended = (end as u64 / EXTENDING_ALIGN + 1) * EXTENDING_ALIGN;
        assert_eq!(
            fs::metadata(&path).expect("meta").len(),
            extended,
            "a large one extends the file, with zeros to the next boundary after it"
        );
        file.append(b"after").expect("append over the tail");
        file.sync_data().expect("sync");
        assert_eq!(file.len().expect("len"), end as u64 + 5);
        let bytes = fs::read(&path).expect("read");
        assert_eq!(bytes.len() as u64, extended, "the tail took it");
        assert!(bytes.starts_with(b"first second\x05"));
        assert!(bytes[12..start].iter().all(|&b| b == 5));
        assert!(bytes[start..start + small.len()].iter().all(|&b| b == 6));
        assert!(bytes[start + small.len()..end].iter().all(|&b| b == 7));
        assert!(bytes[end..].starts_with(b"after"));
        assert!(bytes[end + 5..].iter().all(|&b| b == 0));
        assert!(
            OsDisk.open_append(&path, 3 * PREALLOCATE).is_err(),
            "past the file's end"
        );
    }
}
