//! The write-ahead log file, `{data}/controller.wal`: the I/O shell around [`super::record`].
//!
//! The file is preallocated at its full size with zeros, made under a temporary name, synced with its directory
//! and then renamed into place, so an existing `controller.wal` is always fully allocated. An append then only
//! overwrites allocated blocks and never changes the file's size: `fdatasync` has data to write but no metadata
//! to commit, which is what makes a durable append one write and one flush.
//!
//! **Invariant:** records are written at increasing offsets from 0; the writer ([`super::Store`]) moves back to
//! offset 0 only after a durable redb commit that holds every record written so far (a checkpoint).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The log's file name in the data directory.
pub(crate) const FILE_NAME: &str = "controller.wal";

/// How the log is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// The file's size in bytes. A commit whose record does not fit in what is left of the log first checkpoints
    /// (a durable redb commit) and starts again at offset 0; a record larger than the whole log is committed to
    /// redb directly, durably. A larger log checkpoints less often and costs this much disk and one read of the
    /// file per open.
    pub size: u64,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions { size: 16 << 20 }
    }
}

/// The open log, positioned where the next record goes.
#[derive(Debug)]
pub(crate) struct WalFile {
    file: File,
    path: PathBuf,
    size: u64,
    /// Where the next record is written; at most `size`.
    offset: u64,
}

/// The bytes of the log at `path`, or none when there is no log yet.
pub(crate) fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    match File::open(path) {
        Ok(mut file) => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok(bytes)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

impl WalFile {
    /// Opens the log in `dir` for writing from offset 0, first replacing it with a fresh zeroed file unless it
    /// already has `size` bytes. Only call this once every record in the old file is durable in redb.
    pub(crate) fn prepare(dir: &Path, size: u64) -> std::io::Result<WalFile> {
        let path = dir.join(FILE_NAME);
        let reusable = std::fs::metadata(&path).map(|m| m.is_file() && m.len() == size).unwrap_or(false);
        if !reusable {
            let tmp = dir.join(format!("{FILE_NAME}.tmp"));
            {
                let mut file = File::create(&tmp)?;
                let zeros = vec![0u8; 1 << 20];
                let mut left = size;
                while left > 0 {
                    let n = left.min(zeros.len() as u64);
                    file.write_all(&zeros[..n as usize])?;
                    left -= n;
                }
                file.sync_all()?;
            }
            std::fs::rename(&tmp, &path)?;
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        Ok(WalFile { file, path, size, offset: 0 })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Whether `len` more bytes fit after the records written so far.
    pub(crate) fn fits(&self, len: usize) -> bool {
        u64::try_from(len).is_ok_and(|len| len <= self.size - self.offset)
    }

    /// Writes `record` at the current offset and waits until it is on the disk. The caller checked
    /// [`WalFile::fits`]. On an error the log's state is unknown and it must not be written again.
    pub(crate) fn append(&mut self, record: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(record, self.offset)?;
        self.file.sync_data()?;
        self.offset += record.len() as u64;
        Ok(())
    }

    /// Starts again at offset 0. Only after a checkpoint (see the module invariant).
    pub(crate) fn rewind(&mut self) {
        self.offset = 0;
    }
}
