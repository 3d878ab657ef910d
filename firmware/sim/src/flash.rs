//! Simulated flash: the four slots of `edge_firmware::platform::Storage` in one file, `SLOT_LEN` bytes each.
//! Erased bytes read 0xFF, as on NOR flash. A record's header is its last write, synced to disk, so a process
//! killed mid-write leaves the previous record in force, as a power cut would on a board.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};
use edge_firmware::platform::{Slot, Storage};

/// Bytes per slot: a spec and a few MCU modules (at most 128 KiB each).
pub const SLOT_LEN: usize = 512 * 1024;

pub struct FileFlash {
    file: File,
    slot_len: usize,
}

impl FileFlash {
    pub fn open(path: &Path, slot_len: usize) -> Result<FileFlash> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let want = (slot_len * Slot::ALL.len()) as u64;
        if file.metadata()?.len() < want {
            // New (or short) flash: every slot erased.
            let erased = vec![0xffu8; slot_len];
            for i in 0..Slot::ALL.len() {
                file.write_all_at(&erased, (i * slot_len) as u64)?;
            }
            file.sync_all()?;
        }
        Ok(FileFlash { file, slot_len })
    }

    fn at(&self, slot: Slot, offset: usize, len: usize) -> io::Result<u64> {
        if offset.checked_add(len).is_none_or(|end| end > self.slot_len) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "outside the slot"));
        }
        Ok((slot as usize * self.slot_len + offset) as u64)
    }
}

impl Storage for FileFlash {
    type Error = io::Error;

    fn slot_len(&self) -> usize {
        self.slot_len
    }

    async fn read(&mut self, slot: Slot, offset: usize, buf: &mut [u8]) -> Result<(), Self::Error> {
        let at = self.at(slot, offset, buf.len())?;
        self.file.read_exact_at(buf, at)
    }

    async fn erase(&mut self, slot: Slot) -> Result<(), Self::Error> {
        let at = self.at(slot, 0, self.slot_len)?;
        self.file.write_all_at(&vec![0xffu8; self.slot_len], at)
    }

    async fn write(&mut self, slot: Slot, offset: usize, data: &[u8]) -> Result<(), Self::Error> {
        let at = self.at(slot, offset, data.len())?;
        self.file.write_all_at(data, at)?;
        if offset == 0 {
            // The header commits the record: the body before it must be on disk first.
            self.file.sync_data()?;
        }
        Ok(())
    }
}
