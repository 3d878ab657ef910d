//! Test helpers: a RAM flash with fault injection and a `block_on` for futures that never wait on I/O.

extern crate std;

use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use crate::platform::{Slot, Storage};

/// Runs a future whose awaits all complete at once (RAM storage), panicking if it ever waits.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the future waited"),
    }
}

/// Four slots in RAM, behaving as NOR flash: erase sets 0xFF, writes only clear bits.
#[derive(Debug, Clone)]
pub struct MemFlash {
    slots: Vec<Vec<u8>>,
    /// Fail every write at offset 0 (the header): a power cut right before a record's commit.
    pub fail_header_writes: bool,
}

impl MemFlash {
    pub fn new(slot_len: usize) -> MemFlash {
        MemFlash { slots: vec![vec![0xff; slot_len]; 4], fail_header_writes: false }
    }

    pub fn corrupt(&mut self, slot: Slot, at: usize) {
        let b = &mut self.slots[slot as usize][at];
        *b = !*b;
    }
}

impl Storage for MemFlash {
    type Error = &'static str;
    fn slot_len(&self) -> usize {
        self.slots[0].len()
    }
    async fn read(&mut self, slot: Slot, offset: usize, buf: &mut [u8]) -> Result<(), Self::Error> {
        let s = &self.slots[slot as usize];
        buf.copy_from_slice(s.get(offset..offset + buf.len()).ok_or("read out of bounds")?);
        Ok(())
    }
    async fn erase(&mut self, slot: Slot) -> Result<(), Self::Error> {
        self.slots[slot as usize].fill(0xff);
        Ok(())
    }
    async fn write(&mut self, slot: Slot, offset: usize, data: &[u8]) -> Result<(), Self::Error> {
        if offset == 0 && self.fail_header_writes {
            return Err("power cut");
        }
        let s = self.slots[slot as usize].get_mut(offset..offset + data.len()).ok_or("write out of bounds")?;
        for (d, b) in s.iter_mut().zip(data) {
            *d &= *b;
        }
        Ok(())
    }
}

/// A deterministic "RNG" (a counter) for reproducible tests; never outside them.
pub struct CountingRng(pub u8);

impl rand_core::RngCore for CountingRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::CryptoRng for CountingRng {}
