//! CPU time of the calling thread: what a guest consumed while it ran on it (sleeping in a host call, or
//! waiting to be scheduled, does not count).

use std::time::Duration;

/// The calling thread's CPU time (user + system), or zero where the clock is unavailable.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call; the clock id is a constant
    // every Linux and BSD libc defines.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_work_not_sleep() {
        let t0 = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(50));
        let slept = thread_cpu_time() - t0;
        let t1 = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time() - t1 < Duration::from_millis(20) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(slept < Duration::from_millis(20), "sleeping counted as {slept:?}");
    }
}
