//! wasmi's RAM per instance, measured: what `Runner::start` and a few slices of the MCU example allocate and
//! keep, counted by a global allocator on this thread only. The scheduler books `edge_proto::mcu::memory_need`
//! on a node for each instance; this checks that the formula covers what the interpreter really holds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

use edge_firmware::guest::{Runner, Step};
use edge_firmware::platform::NoSensors;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn counted(delta: isize) {
    if MEASURING.with(|m| m.get()) {
        let now = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        counted(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn an_instance_of_the_example_fits_what_the_scheduler_books() {
    let wasm = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/mcu-blink.wasm")).unwrap();
    let mut runner = Runner::default();
    MEASURING.with(|m| m.set(true));
    runner.start("b-1", &wasm, 64 * 1024, 0).unwrap();
    for _ in 0..20 {
        assert_eq!(runner.step(0, &mut NoSensors), Step::Ran);
    }
    runner.drain(|_, _| {});
    MEASURING.with(|m| m.set(false));
    let (live, peak) = (LIVE.load(Ordering::Relaxed), PEAK.load(Ordering::Relaxed));
    let need = edge_proto::mcu::memory_need(1, wasm.len() as u64);
    eprintln!("wasmi instance of mcu-blink ({} bytes): {live} bytes held, {peak} at peak; booked {need}", wasm.len());
    assert!(peak as u64 <= need, "peak {peak} > booked {need}");
}
