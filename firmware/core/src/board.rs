//! The boards the firmware runs on, as data: what a node says of itself in its hello. One place, so the board
//! binaries and the host runner (`edge-mcu-sim --board`) describe a board the same way.

use edge_proto::{EngineTarget, Resources};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// As in node labels (`board=pico-2-w`) and `--board`.
    pub name: &'static str,
    /// The CPU architecture, as board profiles name it.
    pub arch: &'static str,
    pub cores: u32,
    pub ram_bytes: u64,
    /// Kept back for the firmware itself (stacks, network buffers, the core's own heap): guests get the rest.
    pub reserved_ram_bytes: u64,
    pub flash_bytes: u64,
    /// Whether wasmi builds for its target (it needs compare-and-swap atomics).
    pub wasm: bool,
}

pub const PICO_W: Board = Board {
    name: "pico-w",
    arch: "thumbv6m",
    cores: 2,
    ram_bytes: 264 * 1024,
    reserved_ram_bytes: 264 * 1024,
    flash_bytes: 2 * 1024 * 1024,
    wasm: false,
};

pub const PICO_2_W: Board = Board {
    name: "pico-2-w",
    arch: "thumbv8m.main",
    cores: 2,
    ram_bytes: 520 * 1024,
    reserved_ram_bytes: 200 * 1024,
    flash_bytes: 4 * 1024 * 1024,
    wasm: true,
};

pub const ESP32_C3: Board = Board {
    name: "esp32-c3",
    arch: "riscv32imc",
    cores: 1,
    ram_bytes: 400 * 1024,
    reserved_ram_bytes: 400 * 1024,
    flash_bytes: 4 * 1024 * 1024,
    wasm: false,
};

pub const ALL: [Board; 3] = [PICO_W, PICO_2_W, ESP32_C3];

/// The board named `name` (the board profiles' spelling `pico-2w` too).
pub fn find(name: &str) -> Option<Board> {
    let name = if name == "pico-2w" { "pico-2-w" } else { name };
    ALL.into_iter().find(|b| b.name == name)
}

impl Board {
    /// The engine this build runs on this board: wasmi where the board can hold it and the `wasm` feature is
    /// on, else none.
    pub fn engine(&self) -> EngineTarget {
        if self.wasm && cfg!(feature = "wasm") {
            EngineTarget::Wasmi
        } else {
            EngineTarget::None
        }
    }

    /// CPU: one core's worth for guests (the interpreter runs them on one); memory: all of RAM.
    pub fn capacity(&self, ram_bytes: u64) -> Resources {
        Resources { cpu_millis: 1000, memory_bytes: ram_bytes }
    }

    pub fn reserved(&self, ram_bytes: u64) -> Resources {
        Resources { cpu_millis: 0, memory_bytes: self.reserved_ram_bytes.min(ram_bytes) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_without_cas_atomics_run_no_engine() {
        assert_eq!(find("pico-w").unwrap().engine(), EngineTarget::None);
        assert_eq!(find("esp32-c3").unwrap().engine(), EngineTarget::None);
        assert_eq!(find("pico-2w"), find("pico-2-w"));
        assert!(find("rpi-4").is_none());
        for b in ALL {
            assert!(b.reserved_ram_bytes <= b.ram_bytes, "{}", b.name);
        }
    }
}
