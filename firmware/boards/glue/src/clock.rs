//! embassy-time as the core's [`Clock`]: the board's time driver (embassy-rp's timer, esp-hal-embassy's
//! systimer) counts from boot. Boards have no RTC set and no SNTP here, so there is no wall-clock time:
//! the core then reports times relative to boot, as its `Clock` contract allows.

use edge_firmware::platform::Clock;
use embassy_time::{Instant, Timer, TICK_HZ};

/// Milliseconds since boot from embassy-time.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmbassyClock;

/// Beyond this many milliseconds `Instant::from_millis` would overflow its tick count; a deadline that far is
/// "never" anyway (over 500,000 years at a 1 MHz tick).
const MAX_MS: u64 = u64::MAX / TICK_HZ;

impl Clock for EmbassyClock {
    fn now_ms(&self) -> u64 {
        Instant::now().as_millis()
    }

    fn unix_ms(&self) -> Option<u64> {
        None
    }

    async fn sleep_until(&self, at_ms: u64) {
        // Cancel-safe: dropping a Timer only forgets its wake-up.
        Timer::at(Instant::from_millis(at_ms.min(MAX_MS))).await
    }
}
