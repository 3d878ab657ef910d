//! Where secret bytes come from. Callers without `std` (firmware) pass their own `rand_core` 0.6 RNG
//! (the hardware RNG); with `std` the operating system's (`getrandom`) is used.
//!
//! ed25519-dalek 2 speaks rand_core 0.6 while the workspace's `rand` 0.9 speaks rand_core 0.9, so keys are
//! never made by handing an RNG to dalek: 32 random bytes are drawn here and given to
//! `SigningKey::from_bytes`. That keeps one RNG interface (rand_core 0.6's) in this crate.

use rand_core::{CryptoRng, RngCore};

/// The random source failed (the OS refused, or a hardware RNG reported an error). Nothing was generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the random number source failed")]
pub struct RandomError;

/// Fills `out` from `rng`, reporting failure instead of panicking (`fill_bytes` may panic on some RNGs).
pub(crate) fn fill<R: RngCore + CryptoRng>(rng: &mut R, out: &mut [u8]) -> Result<(), RandomError> {
    rng.try_fill_bytes(out).map_err(|_| RandomError)
}

/// The operating system's random source.
#[cfg(feature = "std")]
pub(crate) fn os() -> rand_core::OsRng {
    rand_core::OsRng
}

#[cfg(test)]
pub(crate) mod testing {
    use rand_core::{CryptoRng, Error, RngCore};

    /// A deterministic RNG for reproducible tests (a counter, not random at all). Marked `CryptoRng` only
    /// because the APIs under test demand it; never use outside tests.
    pub(crate) struct CountingRng(pub u8);

    impl RngCore for CountingRng {
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
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl CryptoRng for CountingRng {}

    /// An RNG that always fails, like an unready hardware RNG.
    pub(crate) struct FailingRng;

    impl RngCore for FailingRng {
        fn next_u32(&mut self) -> u32 {
            0
        }
        fn next_u64(&mut self) -> u64 {
            0
        }
        fn fill_bytes(&mut self, _dest: &mut [u8]) {}
        fn try_fill_bytes(&mut self, _dest: &mut [u8]) -> Result<(), Error> {
            Err(Error::from(core::num::NonZeroU32::new(Error::CUSTOM_START).unwrap()))
        }
    }
    impl CryptoRng for FailingRng {}
}
