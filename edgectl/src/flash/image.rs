//! The FAT32 boot partition of an image file or a card, opened in-process with the `fatfs` crate: files in its
//! root directory are listed, read, written and removed — nothing else.
//!
//! **Invariant: only the root directory is ever written.** `fatfs` 0.3.6 corrupts a volume when it creates a
//! subdirectory (it gives `.` and `..` long-name entries); files in the root are sound, which the integration
//! tests check with `fsck.fat -n` after every flash.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use fatfs::{FileSystem, FsOptions};

use super::mbr::{self, Partition};

/// The bytes of one partition of a disk image, as a stream of its own; writes refused unless `writable`.
struct Slice {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
    writable: bool,
}

impl Slice {
    fn remaining(&self, want: usize) -> usize {
        usize::try_from(self.len.saturating_sub(self.pos)).map_or(want, |r| r.min(want))
    }
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.remaining(buf.len());
        if n == 0 {
            return Ok(0);
        }
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.file.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Slice {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.writable {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "opened read-only (--dry-run)"));
        }
        let n = self.remaining(buf.len());
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "past the end of the boot partition"));
        }
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.file.write(&buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Slice {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        match pos {
            Some(p) if p <= self.len => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "seek outside the boot partition")),
        }
    }
}

/// Timestamps of written files: now, in UTC (FAT has no time zone; the default without `chrono` is 1980).
#[derive(Debug)]
struct Clock;

impl fatfs::TimeProvider for Clock {
    fn get_current_date(&self) -> fatfs::Date {
        self.get_current_date_time().date
    }

    fn get_current_date_time(&self) -> fatfs::DateTime {
        let t = time::OffsetDateTime::now_utc();
        let year = u16::try_from(t.year()).unwrap_or(1980).clamp(1980, 2107);
        fatfs::DateTime {
            date: fatfs::Date { year, month: u8::from(t.month()).into(), day: t.day().into() },
            time: fatfs::Time { hour: t.hour().into(), min: t.minute().into(), sec: t.second().into(), millis: 0 },
        }
    }
}

static CLOCK: Clock = Clock;

/// The boot partition of an image, open for reading (and writing unless opened with `dry_run`).
pub struct BootFs {
    fs: FileSystem<Slice>,
    pub partition: Partition,
}

impl BootFs {
    /// Opens the first FAT32 partition of the MBR of `image` (a file or a block device).
    pub fn open(image: &Path, writable: bool) -> anyhow::Result<BootFs> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(image)
            .with_context(|| format!("cannot open {}", image.display()))?;
        // A block device has no file length: its size is where seeking to the end lands.
        let image_len = file.seek(SeekFrom::End(0)).with_context(|| format!("cannot size {}", image.display()))?;
        file.seek(SeekFrom::Start(0))?;
        let mut sector0 = vec![0u8; 512];
        let n = read_full(&mut file, &mut sector0)?;
        sector0.truncate(n);
        let partition = mbr::boot_partition(&sector0, image_len).map_err(|e| anyhow!("{}: {e}", image.display()))?;
        let slice = Slice { file, start: partition.offset(), len: partition.len(), pos: 0, writable };
        let fs = FileSystem::new(slice, FsOptions::new().update_accessed_date(false).time_provider(&CLOCK)).map_err(
            |e| anyhow!("{}: partition {} is not a FAT file system: {e}", image.display(), partition.number),
        )?;
        if fs.fat_type() != fatfs::FatType::Fat32 {
            bail!("{}: partition {} is {:?}, not FAT32", image.display(), partition.number, fs.fat_type());
        }
        Ok(BootFs { fs, partition })
    }

    /// The names of the files in the root directory.
    pub fn names(&self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in self.fs.root_dir().iter() {
            let e = e.context("cannot list the boot partition")?;
            if e.is_file() {
                out.push(e.file_name());
            }
        }
        Ok(out)
    }

    /// Whether the root directory holds a file `name` (FAT names compare without case).
    pub fn exists(&self, name: &str) -> anyhow::Result<bool> {
        Ok(self.names()?.iter().any(|n| n.eq_ignore_ascii_case(name)))
    }

    /// The contents of `name`, if there is such a file.
    pub fn read(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        if !self.exists(name)? {
            return Ok(None);
        }
        let mut f = self.fs.root_dir().open_file(name).with_context(|| format!("cannot open {name}"))?;
        let mut out = Vec::new();
        f.read_to_end(&mut out).with_context(|| format!("cannot read {name}"))?;
        Ok(Some(out))
    }

    pub fn read_text(&self, name: &str) -> anyhow::Result<Option<String>> {
        Ok(self.read(name)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Replaces (or creates) `name` in the root directory with what `from` yields; returns the bytes written.
    pub fn write(&self, name: &str, from: &mut dyn Read) -> anyhow::Result<u64> {
        if name.contains('/') {
            bail!("{name}: only the boot partition's root directory is written");
        }
        let mut f = self.fs.root_dir().create_file(name).with_context(|| format!("cannot create {name}"))?;
        f.truncate().with_context(|| format!("cannot truncate {name}"))?;
        let n = io::copy(from, &mut f).with_context(|| format!("cannot write {name}"))?;
        f.flush().with_context(|| format!("cannot write {name}"))?;
        Ok(n)
    }

    /// Removes `name` if it is there; whether it was.
    pub fn remove(&self, name: &str) -> anyhow::Result<bool> {
        if !self.exists(name)? {
            return Ok(false);
        }
        self.fs.root_dir().remove(name).with_context(|| format!("cannot remove {name}"))?;
        Ok(true)
    }

    /// Free space, in bytes.
    pub fn free_bytes(&self) -> anyhow::Result<u64> {
        let s = self.fs.stats().context("cannot read the boot partition's free space")?;
        Ok(u64::from(s.free_clusters()) * u64::from(s.cluster_size()))
    }

    /// Writes what is pending (the FS info sector, the clean flag) and closes the partition.
    pub fn close(self) -> anyhow::Result<()> {
        self.fs.unmount().context("cannot finish writing the boot partition")
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
