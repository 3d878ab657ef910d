//! The coverage-free mutational loop: run the seeds, then, until the budget of executions or seconds is
//! spent, take a base (a seed, or one of the accepted mutants kept so far), mutate it ([`crate::mutate`]),
//! and run the target on it. A run fails when the target panics or holds more memory than
//! [`crate::alloc::bound`] allows for the input's length; the failing input is returned, never lost.
//!
//! Panics inside a target are caught ([`std::panic::catch_unwind`]) and their message kept, without the
//! default hook printing each one; panics on other threads (other tests) print as usual. An abort (stack
//! overflow, failed allocation) cannot be caught: the campaign is deterministic for its `--seed`, so it replays.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::alloc::{bound, measure};
use crate::corpus::fnv64;
use crate::mutate::mutate;
use crate::rng::Rng;
use crate::targets::Target;

/// Accepted mutants kept as bases; beyond this a random one is replaced.
const POOL: usize = 512;
/// Distinct failures a `keep_going` campaign collects before it stops.
const MAX_CRASHES: usize = 64;

#[derive(Debug, Clone)]
pub struct Options {
    pub execs: u64,
    pub seconds: Option<f64>,
    pub seed: u64,
    /// Go on after a failure (collecting distinct ones) rather than stopping at the first.
    pub keep_going: bool,
}

/// A failing input and why it failed.
#[derive(Debug, Clone)]
pub struct Crash {
    pub input: Vec<u8>,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub execs: u64,
    pub accepted: u64,
    pub elapsed: Duration,
    /// The largest peak of memory any one execution held, in bytes (0 without the counting allocator).
    pub peak_alloc: usize,
    pub crashes: Vec<Crash>,
}

impl Report {
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

thread_local! {
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Installs (once) a panic hook that records the message of a panic on a thread running a target, and leaves
/// every other panic to the hook that was there before.
fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) {
                LAST_PANIC.with(|m| *m.borrow_mut() = info.to_string());
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `target` on one input: `Ok(accepted, peak bytes)`, or why it failed.
pub fn exec(target: &Target, input: &[u8]) -> Result<(bool, usize), String> {
    quiet_panics();
    CATCHING.with(|c| c.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| measure(|| (target.run)(input))));
    CATCHING.with(|c| c.set(false));
    match outcome {
        Ok((accepted, peak)) if peak <= bound(input.len()) => Ok((accepted, peak)),
        Ok((_, peak)) => Err(format!(
            "allocation bound exceeded: {peak} bytes held for a {}-byte input (bound {})",
            input.len(),
            bound(input.len())
        )),
        Err(_) => Err(LAST_PANIC.with(|m| std::mem::take(&mut *m.borrow_mut()))),
    }
}

/// Fuzzes `target` from `seeds` within `options`' budget. `progress` is called about once a second.
pub fn fuzz(target: &Target, seeds: &[Vec<u8>], options: &Options, mut progress: impl FnMut(&Report)) -> Report {
    let start = Instant::now();
    let mut rng = Rng::new(options.seed);
    let mut report = Report::default();
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut known: HashSet<u64> = seeds.iter().map(|s| fnv64(s)).collect();
    let mut failures: HashSet<String> = HashSet::new();
    let empty = [Vec::new()];
    let bases: &[Vec<u8>] = if seeds.is_empty() { &empty } else { seeds };
    let mut last_progress = Instant::now();
    let mut buf = Vec::new();
    while report.execs < options.execs {
        let index = report.execs as usize;
        buf.clear();
        if index < seeds.len() {
            buf.extend_from_slice(&seeds[index]);
        } else {
            let base = if !pool.is_empty() && rng.one_in(3) { rng.pick(&pool) } else { rng.pick(bases) };
            buf.extend_from_slice(base);
            let other = if !pool.is_empty() && rng.bool() { rng.pick(&pool) } else { rng.pick(bases) };
            mutate(&mut buf, &mut rng, target.dict, other, target.max_len);
        }
        report.execs += 1;
        match exec(target, &buf) {
            Ok((accepted, peak)) => {
                report.peak_alloc = report.peak_alloc.max(peak);
                if accepted {
                    report.accepted += 1;
                    if known.insert(fnv64(&buf)) {
                        if pool.len() < POOL {
                            pool.push(buf.clone());
                        } else {
                            let slot = rng.below(POOL);
                            pool[slot] = buf.clone();
                        }
                    }
                }
            }
            Err(message) => {
                // One finding per distinct message (its first line names the assertion and place).
                let key = message.lines().next().unwrap_or_default().to_string();
                if failures.insert(key) {
                    report.crashes.push(Crash { input: buf.clone(), message });
                }
                if !options.keep_going || report.crashes.len() >= MAX_CRASHES {
                    break;
                }
            }
        }
        if report.execs % 256 == 0 {
            report.elapsed = start.elapsed();
            if options.seconds.is_some_and(|s| report.elapsed.as_secs_f64() >= s) {
                break;
            }
            if last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                progress(&report);
            }
        }
    }
    report.elapsed = start.elapsed();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picky(data: &[u8]) -> bool {
        assert!(!data.starts_with(b"boom"), "found the bomb");
        data.first() == Some(&b'b')
    }

    const PICKY: Target = Target { name: "picky", about: "", run: picky, dict: &[b"boom"], max_len: 64 };

    #[test]
    fn finds_a_planted_panic_and_keeps_its_input() {
        let options = Options { execs: 1_000_000, seconds: Some(30.0), seed: 1, keep_going: false };
        let report = fuzz(&PICKY, &[b"bo".to_vec(), b"xyz".to_vec()], &options, |_| {});
        assert_eq!(report.crashes.len(), 1, "{report:?}");
        let crash = &report.crashes[0];
        assert!(crash.input.starts_with(b"boom"), "{:?}", crash.input);
        assert!(crash.message.contains("found the bomb"), "{}", crash.message);
        assert!(report.execs < options.execs);
    }

    #[test]
    fn runs_the_budget_when_nothing_fails_and_replays_by_seed() {
        fn fine(data: &[u8]) -> bool {
            data.len() > 3
        }
        let t = Target { name: "fine", about: "", run: fine, dict: &[], max_len: 16 };
        let options = Options { execs: 5_000, seconds: None, seed: 9, keep_going: false };
        let a = fuzz(&t, &[b"seed".to_vec()], &options, |_| {});
        assert_eq!((a.execs, a.crashes.len()), (5_000, 0));
        assert!(a.accepted > 0 && a.accepted < 5_000, "{}", a.accepted);
        let b = fuzz(&t, &[b"seed".to_vec()], &options, |_| {});
        assert_eq!(a.accepted, b.accepted, "the same seed, the same campaign");
    }

    #[test]
    fn a_panic_elsewhere_is_not_swallowed_by_the_hook() {
        quiet_panics();
        let caught = panic::catch_unwind(|| panic!("ordinary"));
        assert!(caught.is_err());
        assert!(LAST_PANIC.with(|m| m.borrow().is_empty()), "recorded a panic outside a target");
    }
}
