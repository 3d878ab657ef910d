//! A counting allocator, so a target's memory use is measured rather than guessed: [`measure`] gives the peak
//! of bytes live on the calling thread while a closure ran, above what was live before. The runner checks that
//! peak against [`bound`] for the input's length, which catches a decoder that trusts a length from the input
//! (`Vec::with_capacity(n)` with `n` off the wire) long before such an allocation could exhaust the machine.
//!
//! Counting is per thread (tests run in parallel, and a target runs on one thread); memory freed on another
//! thread than it was allocated on skews only that other thread's count, hence the signed counters.
//!
//! Install it where the check is wanted (the `edge-fuzz` binary, the corpus and smoke tests):
//! `#[global_allocator] static ALLOC: edge_fuzz::alloc::Counting = edge_fuzz::alloc::Counting;`
//! [`installed`] says whether it is; without it [`measure`] reports 0.
#![allow(unsafe_code)] // `GlobalAlloc` is an unsafe trait; this file only forwards to `System` and counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Peak bytes a target may hold for an input of `len` bytes: a fixed allowance (serde preallocates at most
/// 1 MiB per list from a declared length, and types nest a few lists deep) plus a generous linear term (a
/// one-byte YAML scalar becomes a tree node of about a hundred bytes).
pub fn bound(len: usize) -> usize {
    8 * 1024 * 1024 + 256 * len
}

/// The system allocator, counting live bytes per thread.
#[derive(Debug, Clone, Copy)]
pub struct Counting;

thread_local! {
    // `const` thread locals without destructors: reading them never allocates, so the allocator may.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grew(bytes: usize) {
    // `try_with`: a thread being torn down has no locals left; its allocations simply go uncounted.
    let _ = LIVE.try_with(|live| {
        let now = live.get().wrapping_add(bytes as isize);
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now);
            }
        });
    });
}

fn shrank(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().wrapping_sub(bytes as isize)));
}

// SAFETY: every method forwards to `System` with the caller's own arguments and returns its result unchanged;
// the counting touches only `const` thread locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is the caller's, checked by it.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}

/// Runs `f` and returns its result with the peak of bytes live on this thread meanwhile, above those live
/// when it started.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, peak.saturating_sub(start).max(0) as usize)
}

/// Whether [`Counting`] is this program's global allocator (else [`measure`] always reports 0).
pub fn installed() -> bool {
    let (_, peak) = measure(|| std::hint::black_box(vec![0u8; 4096]));
    peak >= 4096
}
