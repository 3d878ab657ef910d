//! The MCU host ABI: what a WebAssembly module for a microcontroller node imports and exports, defined once for
//! the controller (which validates and classifies modules at upload, so boards can run wasmi without its
//! validator) and the firmware (which links exactly these functions).
//!
//! A module for this ABI:
//! - imports functions only from the module [`IMPORT_MODULE`] (`edge`), each with the signature in [`IMPORTS`];
//! - defines (not imports) one linear memory and exports it as [`MEMORY_EXPORT`] (`memory`);
//! - exports [`ENTRY`] (`run`), a function `() -> ()`; the instance is Running while it runs and exits with
//!   code 0 when it returns (a trap is a failure).
//!
//! Host functions (pointers and lengths address the guest's own memory; out of bounds traps the guest):
//! - `log(ptr, len)`: one line of UTF-8 (longer lines are cut at [`MAX_LINE`]) to the instance's logs.
//! - `sleep_ms(ms)`: suspends the guest for `ms` milliseconds (other instances and the node keep running).
//! - `sensor(id) -> i32`: reads sensor capability `id` from the board ([`SENSOR_MISSING`] if it has none).
//! - `publish(topic_ptr, topic_len, payload_ptr, payload_len) -> i32`: publishes within the instance's
//!   namespace: the topic is relative (levels of name characters, no wildcards); 0 on success, negative when
//!   refused ([`PUBLISH_REFUSED`]) or dropped because the node's queue is full ([`PUBLISH_DROPPED`]).
//!
//! RAM: an instance needs its linear memory (the declared maximum, else the initial size) plus what wasmi keeps
//! per instance, which grows with the module's code ([`memory_need`]). The scheduler books exactly that on an
//! MCU node, whatever memory the deploy asked for.

use core::fmt;

use serde::{Deserialize, Serialize};

/// Which host interface a module is written for, decided from its imports and exports at upload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ModuleAbi {
    /// WASI preview 1 command (`_start`), run by wasmtime on Linux agents.
    #[default]
    Wasi,
    /// The MCU ABI of this module (`edge` imports, `run`), run by wasmi on microcontroller nodes.
    Mcu,
}

impl ModuleAbi {
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleAbi::Wasi => "wasi",
            ModuleAbi::Mcu => "mcu",
        }
    }
}

impl fmt::Display for ModuleAbi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The import module every host function lives in.
pub const IMPORT_MODULE: &str = "edge";
/// The entry point.
pub const ENTRY: &str = "run";
/// The linear memory's export name.
pub const MEMORY_EXPORT: &str = "memory";

/// A WebAssembly value type of the ABI (only these two occur).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValType {
    I32,
    I64,
}

/// One host function: name, parameters, results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFn {
    pub name: &'static str,
    pub params: &'static [ValType],
    pub results: &'static [ValType],
}

use ValType::I32;

/// Every function of [`IMPORT_MODULE`]; a module may import any subset.
pub const IMPORTS: [HostFn; 4] = [
    HostFn { name: "log", params: &[I32, I32], results: &[] },
    HostFn { name: "sleep_ms", params: &[I32], results: &[] },
    HostFn { name: "sensor", params: &[I32], results: &[I32] },
    HostFn { name: "publish", params: &[I32, I32, I32, I32], results: &[I32] },
];

/// The host function `name` of the ABI, if there is one.
pub fn host_fn(name: &str) -> Option<&'static HostFn> {
    IMPORTS.iter().find(|f| f.name == name)
}

/// Longest log line (bytes) a guest writes with `log`; the rest is cut.
pub const MAX_LINE: usize = 256;
/// Longest topic (bytes, relative to the namespace) and payload a guest may `publish`.
pub const MAX_TOPIC: usize = 64;
pub const MAX_PUBLISH: usize = 256;
/// `sensor` of a capability the board does not have.
pub const SENSOR_MISSING: i32 = i32::MIN;
/// `publish` results.
pub const PUBLISH_REFUSED: i32 = -1;
pub const PUBLISH_DROPPED: i32 = -2;

/// Largest MCU-ABI module (bytes): it must fit a board's flash slot beside the spec.
pub const MAX_MODULE: u64 = 128 * 1024;
/// One WebAssembly page.
pub const PAGE: u64 = 64 * 1024;
/// What wasmi holds per instance beside its linear memory and compiled code: store, instance, value and call
/// stacks. Measured by `firmware/sim/tests/ram.rs` (a counting allocator around starting and running
/// `examples/mcu-blink`, 722 bytes, one page): 77.8 KiB held, 12.3 KiB beside its memory on a 64-bit host
/// (less with 32-bit pointers); rounded up, with room for deeper guests.
pub const INSTANCE_OVERHEAD: u64 = 24 * 1024;
/// wasmi's compiled code per byte of module (its register bytecode is larger than WebAssembly's).
pub const CODE_FACTOR: u64 = 4;

/// RAM an instance of a module of `module_size` bytes with `memory_pages` pages of linear memory needs.
pub fn memory_need(memory_pages: u64, module_size: u64) -> u64 {
    memory_pages
        .saturating_mul(PAGE)
        .saturating_add(module_size.saturating_mul(CODE_FACTOR))
        .saturating_add(INSTANCE_OVERHEAD)
}

/// Whether `topic` is a topic a guest may publish on (relative to its namespace): 1 to [`MAX_TOPIC`] bytes of
/// `/`-separated levels, each non-empty and made of ASCII letters, digits, `-`, `_` and `.`.
pub fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC
        && topic.split('/').all(|level| {
            !level.is_empty() && level.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_need_grows_with_memory_and_code_and_never_overflows() {
        assert_eq!(memory_need(1, 0), PAGE + INSTANCE_OVERHEAD);
        assert_eq!(memory_need(1, 1000), PAGE + 4000 + INSTANCE_OVERHEAD);
        assert_eq!(memory_need(u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn topics_are_relative_plain_levels() {
        for ok in ["led", "sensors/temp", "a.b-c_d/9"] {
            assert!(valid_topic(ok), "{ok}");
        }
        let long = "a".repeat(MAX_TOPIC + 1);
        for bad in ["", "/a", "a/", "a//b", "a/+", "#", "a b", "$SYS/x", long.as_str()] {
            assert!(!valid_topic(bad), "{bad}");
        }
        assert_eq!(host_fn("log").map(|f| f.params.len()), Some(2));
        assert!(host_fn("proc_exit").is_none());
    }
}
