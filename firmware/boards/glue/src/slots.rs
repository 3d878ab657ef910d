//! The core's four flash slots ([`edge_firmware::platform::Storage`]) over a region of a board's NOR flash
//! (`embedded-storage`'s blocking `NorFlash`, which embassy-rp's `Flash` and esp-storage's `FlashStorage` are).
//!
//! The region is `4 × slot_len` bytes from `base`, slot `i` at `base + i × slot_len`; both must be multiples of
//! the flash's erase size. The core writes at any offset and length, but a flash may only program aligned words
//! (esp-storage: 4 bytes) and read aligned words. Unaligned heads and tails are padded with `0xFF`: on NOR flash
//! programming only clears bits, so a padding byte leaves what is there unchanged. That is why the flash must be
//! a `MultiwriteNorFlash` (a word may be programmed more than once).
//!
//! **Invariant:** no access leaves the region: every offset is checked against `slot_len` before it reaches
//! the flash, so the core can never overwrite the firmware image.

use edge_firmware::platform::{Slot, Storage};
use embedded_storage::nor_flash::{MultiwriteNorFlash, NorFlashError, NorFlashErrorKind};

/// Largest `READ_SIZE`/`WRITE_SIZE` supported (bytes of the bounce buffer for unaligned words).
const MAX_WORD: usize = 16;
/// Bytes moved per flash call when a transfer must be bounced through an aligned buffer.
const CHUNK: usize = 256;

/// Why a flash access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotError {
    /// The access would leave its slot (`offset + len > slot_len`).
    OutOfSlot { offset: usize, len: usize, slot_len: usize },
    /// The region is not aligned to the flash's erase size, or does not fit the flash.
    BadRegion,
    /// The flash itself refused or failed.
    Flash(NorFlashErrorKind),
}

/// Four slots of `slot_len` bytes in `flash` from `base`.
pub struct FlashSlots<F> {
    flash: F,
    base: u32,
    slot_len: u32,
}

impl<F: MultiwriteNorFlash> FlashSlots<F> {
    /// Checks the region against the flash's geometry: aligned to its erase size and inside its capacity.
    pub fn new(flash: F, base: u32, slot_len: u32) -> Result<FlashSlots<F>, SlotError> {
        let erase = F::ERASE_SIZE as u32;
        let end = (slot_len as u64) * Slot::ALL.len() as u64 + base as u64;
        let words_ok = F::READ_SIZE <= MAX_WORD && F::WRITE_SIZE <= MAX_WORD;
        if slot_len == 0 || base % erase != 0 || slot_len % erase != 0 || end > flash.capacity() as u64 || !words_ok {
            return Err(SlotError::BadRegion);
        }
        Ok(FlashSlots { flash, base, slot_len })
    }

    fn at(&self, slot: Slot, offset: usize, len: usize) -> Result<u32, SlotError> {
        let slot_len = self.slot_len as usize;
        if offset.checked_add(len).is_none_or(|end| end > slot_len) {
            return Err(SlotError::OutOfSlot { offset, len, slot_len });
        }
        Ok(self.base + index(slot) as u32 * self.slot_len + offset as u32)
    }

    fn read_at(&mut self, at: u32, buf: &mut [u8]) -> Result<(), SlotError> {
        let word = F::READ_SIZE;
        if at as usize % word == 0 && buf.len() % word == 0 {
            return self.flash.read(at, buf).map_err(flash_error);
        }
        // Bounce: read the aligned span around each chunk, copy out the wanted bytes.
        let mut bounce = [0u8; CHUNK + 2 * MAX_WORD];
        let mut done = 0;
        while done < buf.len() {
            let pos = at as usize + done;
            let len = (buf.len() - done).min(CHUNK);
            let (start, span) = aligned_span(pos, len, word);
            self.flash.read(start as u32, &mut bounce[..span]).map_err(flash_error)?;
            let skip = pos - start;
            buf[done..done + len].copy_from_slice(&bounce[skip..skip + len]);
            done += len;
        }
        Ok(())
    }

    fn write_at(&mut self, at: u32, data: &[u8]) -> Result<(), SlotError> {
        let word = F::WRITE_SIZE;
        if at as usize % word == 0 && data.len() % word == 0 {
            return self.flash.write(at, data).map_err(flash_error);
        }
        let mut bounce = [0xffu8; CHUNK + 2 * MAX_WORD];
        let mut done = 0;
        while done < data.len() {
            let pos = at as usize + done;
            let len = (data.len() - done).min(CHUNK);
            let (start, span) = aligned_span(pos, len, word);
            // 0xFF around the data: programming it changes no bit already there (see the module doc).
            bounce[..span].fill(0xff);
            let skip = pos - start;
            bounce[skip..skip + len].copy_from_slice(&data[done..done + len]);
            self.flash.write(start as u32, &bounce[..span]).map_err(flash_error)?;
            done += len;
        }
        Ok(())
    }
}

impl<F: MultiwriteNorFlash> Storage for FlashSlots<F> {
    type Error = SlotError;

    fn slot_len(&self) -> usize {
        self.slot_len as usize
    }

    async fn read(&mut self, slot: Slot, offset: usize, buf: &mut [u8]) -> Result<(), SlotError> {
        let at = self.at(slot, offset, buf.len())?;
        self.read_at(at, buf)
    }

    async fn erase(&mut self, slot: Slot) -> Result<(), SlotError> {
        let from = self.at(slot, 0, self.slot_len as usize)?;
        self.flash.erase(from, from + self.slot_len).map_err(flash_error)
    }

    async fn write(&mut self, slot: Slot, offset: usize, data: &[u8]) -> Result<(), SlotError> {
        let at = self.at(slot, offset, data.len())?;
        self.write_at(at, data)
    }
}

fn index(slot: Slot) -> usize {
    Slot::ALL.iter().position(|s| *s == slot).unwrap_or(0)
}

/// The word-aligned span `(start, len)` that covers `pos..pos + len`.
fn aligned_span(pos: usize, len: usize, word: usize) -> (usize, usize) {
    let start = pos - pos % word;
    let end = (pos + len).div_ceil(word) * word;
    (start, end - start)
}

fn flash_error<E: NorFlashError>(e: E) -> SlotError {
    SlotError::Flash(e.kind())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};

    use super::*;

    /// A NOR flash in RAM that enforces what real ones do: aligned reads and writes, programming clears bits
    /// only, erase sets a whole sector to 0xFF.
    struct RamNor<const WORD: usize> {
        bytes: Vec<u8>,
    }

    #[derive(Debug)]
    struct RamError(NorFlashErrorKind);

    impl NorFlashError for RamError {
        fn kind(&self) -> NorFlashErrorKind {
            self.0
        }
    }

    impl<const WORD: usize> ErrorType for RamNor<WORD> {
        type Error = RamError;
    }

    impl<const WORD: usize> ReadNorFlash for RamNor<WORD> {
        const READ_SIZE: usize = WORD;
        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), RamError> {
            let at = offset as usize;
            if at % WORD != 0 || bytes.len() % WORD != 0 {
                return Err(RamError(NorFlashErrorKind::NotAligned));
            }
            bytes
                .copy_from_slice(self.bytes.get(at..at + bytes.len()).ok_or(RamError(NorFlashErrorKind::OutOfBounds))?);
            Ok(())
        }
        fn capacity(&self) -> usize {
            self.bytes.len()
        }
    }

    impl<const WORD: usize> NorFlash for RamNor<WORD> {
        const WRITE_SIZE: usize = WORD;
        const ERASE_SIZE: usize = 4096;
        fn erase(&mut self, from: u32, to: u32) -> Result<(), RamError> {
            if from % 4096 != 0 || to % 4096 != 0 {
                return Err(RamError(NorFlashErrorKind::NotAligned));
            }
            self.bytes[from as usize..to as usize].fill(0xff);
            Ok(())
        }
        fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), RamError> {
            let at = offset as usize;
            if at % WORD != 0 || bytes.len() % WORD != 0 {
                return Err(RamError(NorFlashErrorKind::NotAligned));
            }
            for (cell, b) in self.bytes[at..at + bytes.len()].iter_mut().zip(bytes) {
                *cell &= *b;
            }
            Ok(())
        }
    }

    impl<const WORD: usize> MultiwriteNorFlash for RamNor<WORD> {}

    fn block_on<T>(f: impl core::future::Future<Output = T>) -> T {
        // The adapter's futures never wait: one poll completes them.
        let mut f = core::pin::pin!(f);
        let waker = core::task::Waker::noop();
        match f.as_mut().poll(&mut core::task::Context::from_waker(waker)) {
            core::task::Poll::Ready(v) => v,
            core::task::Poll::Pending => panic!("a flash slot operation waited"),
        }
    }

    fn slots<const WORD: usize>() -> FlashSlots<RamNor<WORD>> {
        // Garbage before the region, to show nothing outside it is touched.
        let flash = RamNor::<WORD> { bytes: vec![0x5a; 4096 * 10] };
        FlashSlots::new(flash, 4096 * 2, 4096 * 2).unwrap()
    }

    fn unaligned_writes_read_back_and_stay_in_their_slot<const WORD: usize>() {
        let mut s = slots::<WORD>();
        for slot in Slot::ALL {
            block_on(s.erase(slot)).unwrap();
        }
        // Increasing offsets, odd lengths, as the core writes a record: body pieces then the header at 0.
        let body: Vec<u8> = (0..700u32).map(|i| (i * 7 + 3) as u8).collect();
        block_on(s.write(Slot::StateB, 13, &body[..333])).unwrap();
        block_on(s.write(Slot::StateB, 13 + 333, &body[333..])).unwrap();
        block_on(s.write(Slot::StateB, 0, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13])).unwrap();
        let mut back = vec![0u8; 713];
        block_on(s.read(Slot::StateB, 0, &mut back)).unwrap();
        assert_eq!(&back[..13], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
        assert_eq!(&back[13..], &body[..]);
        let mut odd = [0u8; 5];
        block_on(s.read(Slot::StateB, 14, &mut odd)).unwrap();
        assert_eq!(&odd, &body[1..6]);
        // The neighbouring slots are still erased, the bytes before the region untouched.
        let mut other = vec![0u8; 8192];
        block_on(s.read(Slot::StateA, 0, &mut other)).unwrap();
        assert!(other.iter().all(|b| *b == 0xff));
        assert!(s.flash.bytes[..8192].iter().all(|b| *b == 0x5a));
        assert!(s.flash.bytes[8192 * 5..].iter().all(|b| *b == 0x5a));
    }

    #[test]
    fn byte_and_word_flashes_take_unaligned_records() {
        unaligned_writes_read_back_and_stay_in_their_slot::<1>();
        unaligned_writes_read_back_and_stay_in_their_slot::<4>();
    }

    #[test]
    fn an_access_past_its_slot_is_refused_before_the_flash_sees_it() {
        let mut s = slots::<4>();
        let err = block_on(s.write(Slot::IdentityA, 8190, &[0, 0, 0])).unwrap_err();
        assert_eq!(err, SlotError::OutOfSlot { offset: 8190, len: 3, slot_len: 8192 });
        assert!(block_on(s.read(Slot::IdentityB, usize::MAX, &mut [0u8; 2])).is_err());
        assert!(s.flash.bytes.iter().all(|b| *b == 0x5a));
    }

    #[test]
    fn a_region_off_the_erase_grid_or_past_the_flash_is_refused() {
        let flash = || RamNor::<4> { bytes: vec![0xff; 4096 * 8] };
        assert_eq!(FlashSlots::new(flash(), 100, 4096).err(), Some(SlotError::BadRegion));
        assert_eq!(FlashSlots::new(flash(), 0, 1000).err(), Some(SlotError::BadRegion));
        assert_eq!(FlashSlots::new(flash(), 4096 * 5, 4096).err(), Some(SlotError::BadRegion));
        assert!(FlashSlots::new(flash(), 4096 * 4, 4096).is_ok());
    }
}
