//! Per-instance limits that hold against hostile guests: memory (a store limiter that remembers it refused a
//! growth, so the exit can say `memory limit exceeded`) and CPU (a throttle over the guest's own CPU time).
//! Pure: the caller measures time and sleeps. Both also feed the usage reports of the run in scope (see
//! [`crate::usage`]): the memory a growth was granted, the CPU time of each poll.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Caps linear memories at `memory` bytes and tables at `table_elements`; records a refusal.
#[derive(Debug)]
pub struct MemoryLimiter {
    pub memory: usize,
    pub table_elements: usize,
    /// A growth (or an initial size) beyond the limit was refused.
    pub hit: bool,
}

impl MemoryLimiter {
    pub fn new(memory: usize) -> MemoryLimiter {
        MemoryLimiter { memory, table_elements: 1_000_000, hit: false }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory;
        self.hit |= !ok;
        if ok {
            crate::usage::memory_grew(current, desired);
        }
        Ok(ok)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let ok = desired <= self.table_elements;
        self.hit |= !ok;
        Ok(ok)
    }

    fn instances(&self) -> usize {
        1
    }
}

/// Pauses shorter than this are carried over rather than slept: a timer cannot sleep much less than a
/// millisecond accurately, and many tiny sleeps cost more than they hold back.
pub const MIN_PAUSE: Duration = Duration::from_millis(5);

/// Holds a guest to `limit_millis` thousandths of one core on average.
///
/// After the guest has used `cpu` it owes `cpu * (1000 - limit) / limit` of rest; rest it took by itself
/// (blocked in a host call, waiting for a thread) pays the debt down. Credit is never banked beyond zero, so an
/// idle guest cannot save up for a burst.
#[derive(Debug, Clone)]
pub struct CpuThrottle {
    limit_millis: u32,
    debt: Duration,
}

impl CpuThrottle {
    pub fn new(limit_millis: u32) -> CpuThrottle {
        CpuThrottle { limit_millis: limit_millis.max(1), debt: Duration::ZERO }
    }

    /// Since the last call the guest used `cpu` over `wall` of elapsed time (pauses this throttle imposed
    /// excluded). Returns how long to pause it now.
    pub fn account(&mut self, cpu: Duration, wall: Duration) -> Duration {
        if self.limit_millis >= 1000 {
            return Duration::ZERO;
        }
        let owed = cpu.mul_f64(f64::from(1000 - self.limit_millis) / f64::from(self.limit_millis));
        let idle = wall.saturating_sub(cpu);
        self.debt = (self.debt + owed).saturating_sub(idle);
        if self.debt >= MIN_PAUSE {
            std::mem::take(&mut self.debt)
        } else {
            Duration::ZERO
        }
    }
}

/// CPU time an instance's future has consumed, measured around every poll (each poll runs the guest on the
/// polling thread until it yields).
#[derive(Debug, Default)]
pub struct CpuMeter {
    total_ns: AtomicU64,
    poll_started_ns: AtomicU64,
}

impl CpuMeter {
    /// CPU used so far, including the poll in progress when called from inside one (the epoch callback).
    pub fn used(&self) -> Duration {
        let now = edge_engine::thread_cpu_time().as_nanos() as u64;
        let started = self.poll_started_ns.load(Ordering::Relaxed);
        let running = if started == 0 { 0 } else { now.saturating_sub(started) };
        Duration::from_nanos(self.total_ns.load(Ordering::Relaxed) + running)
    }
}

/// Wraps a future so `meter` counts the thread CPU time spent inside its polls.
pub struct Metered<F> {
    pub inner: Pin<Box<F>>,
    pub meter: Arc<CpuMeter>,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let t0 = edge_engine::thread_cpu_time().as_nanos() as u64;
        // Never 0 while polling (0 means "not in a poll").
        self.meter.poll_started_ns.store(t0.max(1), Ordering::Relaxed);
        let out = self.inner.as_mut().poll(cx);
        let t1 = edge_engine::thread_cpu_time().as_nanos() as u64;
        self.meter.poll_started_ns.store(0, Ordering::Relaxed);
        let spent = t1.saturating_sub(t0);
        self.meter.total_ns.fetch_add(spent, Ordering::Relaxed);
        crate::usage::add_cpu(spent);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_busy_guest_rests_four_times_what_it_ran_at_200m() {
        let mut t = CpuThrottle::new(200);
        // Busy for 10 ms of a 10 ms tick: owes 40 ms.
        assert_eq!(t.account(10 * MS, 10 * MS), 40 * MS);
        // Over a simulated second of ticks the share converges to 20 %.
        let (mut cpu, mut wall) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..100 {
            let pause = t.account(10 * MS, 10 * MS);
            cpu += 10 * MS;
            wall += 10 * MS + pause;
        }
        let share = cpu.as_secs_f64() / wall.as_secs_f64();
        assert!((share - 0.2).abs() < 0.01, "{share}");
    }

    #[test]
    fn a_guest_below_its_limit_is_never_paused_and_banks_no_credit() {
        let mut t = CpuThrottle::new(200);
        for _ in 0..100 {
            // 1 ms of work per 10 ms: 10 %.
            assert_eq!(t.account(MS, 10 * MS), Duration::ZERO);
        }
        // A long idle stretch then a burst: the burst still pays in full.
        assert_eq!(t.account(Duration::ZERO, Duration::from_secs(60)), Duration::ZERO);
        assert_eq!(t.account(10 * MS, 10 * MS), 40 * MS);
    }

    #[test]
    fn small_debts_carry_over_and_full_cores_are_free() {
        let mut t = CpuThrottle::new(500);
        assert_eq!(t.account(MS, MS), Duration::ZERO);
        assert_eq!(t.account(4 * MS, 4 * MS), 5 * MS);
        assert_eq!(CpuThrottle::new(1000).account(10 * MS, 10 * MS), Duration::ZERO);
        assert_eq!(CpuThrottle::new(2000).account(10 * MS, 10 * MS), Duration::ZERO);
    }

    #[test]
    fn the_limiter_refuses_and_remembers() {
        use wasmtime::ResourceLimiter;
        let mut l = MemoryLimiter::new(1 << 20);
        assert!(l.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!l.hit);
        assert!(!l.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert!(l.hit);
    }
}
