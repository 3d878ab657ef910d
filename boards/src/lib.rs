//! Board profiles: what each supported board is, so an agent can describe itself and the scheduler can trust it.
//!
//! One [`Board`] per supported board, looked up by name with [`find`]. A profile fixes the architecture, the Rust
//! target triple the agent (or firmware) is built for, the board's resources, the WebAssembly engine target its
//! agent uses, and the resources reserved for the agent itself (so the scheduler only hands out the rest).

/// How a board runs workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// A Linux board running `edge-agent` with wasmtime.
    Agent,
    /// A microcontroller running the `no_std` firmware (no WebAssembly instances).
    Firmware,
}

/// A supported board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// The name used on the command line (`--board rpi-4`) and in node labels.
    pub name: &'static str,
    pub description: &'static str,
    pub arch: &'static str,
    pub target_triple: &'static str,
    pub cpu_millis: u32,
    pub memory_bytes: u64,
    /// The wasmtime engine target name (`aarch64`, `pulley32`, …); empty for firmware boards.
    pub engine: &'static str,
    pub runtime: Runtime,
    /// CPU kept back for the agent and the OS.
    pub reserved_cpu_millis: u32,
    /// Memory kept back for the agent and the OS.
    pub reserved_memory_bytes: u64,
}

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Every known board. The first entries are the Raspberry Pis; `generic` describes "whatever this machine is".
pub const BOARDS: &[Board] = &[
    Board {
        name: "rpi-5",
        description: "Raspberry Pi 5 (Cortex-A76, 64-bit OS)",
        arch: "aarch64",
        target_triple: "aarch64-unknown-linux-gnu",
        cpu_millis: 4000,
        memory_bytes: 8 * GIB,
        engine: "aarch64",
        runtime: Runtime::Agent,
        reserved_cpu_millis: 200,
        reserved_memory_bytes: 256 * MIB,
    },
    Board {
        name: "rpi-4",
        description: "Raspberry Pi 4 Model B (Cortex-A72, 64-bit OS)",
        arch: "aarch64",
        target_triple: "aarch64-unknown-linux-gnu",
        cpu_millis: 4000,
        memory_bytes: 4 * GIB,
        engine: "aarch64",
        runtime: Runtime::Agent,
        reserved_cpu_millis: 200,
        reserved_memory_bytes: 256 * MIB,
    },
    Board {
        name: "rpi-3",
        description: "Raspberry Pi 3 Model B+ (Cortex-A53, 32-bit Raspberry Pi OS)",
        arch: "armv7",
        target_triple: "armv7-unknown-linux-gnueabihf",
        cpu_millis: 4000,
        memory_bytes: GIB,
        engine: "pulley32",
        runtime: Runtime::Agent,
        reserved_cpu_millis: 200,
        reserved_memory_bytes: 128 * MIB,
    },
    Board {
        name: "rpi-zero-2w",
        description: "Raspberry Pi Zero 2 W (Cortex-A53, 64-bit OS, 512 MB)",
        arch: "aarch64",
        target_triple: "aarch64-unknown-linux-gnu",
        cpu_millis: 4000,
        memory_bytes: 512 * MIB,
        engine: "aarch64",
        runtime: Runtime::Agent,
        reserved_cpu_millis: 200,
        reserved_memory_bytes: 96 * MIB,
    },
    Board {
        name: "pico-w",
        description: "Raspberry Pi Pico W (RP2040, Cortex-M0+, 264 KB SRAM)",
        arch: "thumbv6m",
        target_triple: "thumbv6m-none-eabi",
        cpu_millis: 2000,
        memory_bytes: 264 * 1024,
        engine: "",
        runtime: Runtime::Firmware,
        reserved_cpu_millis: 0,
        reserved_memory_bytes: 0,
    },
    Board {
        name: "esp32-c3",
        description: "ESP32-C3 (RISC-V RV32IMC, 400 KB SRAM)",
        arch: "riscv32imc",
        target_triple: "riscv32imc-unknown-none-elf",
        cpu_millis: 1000,
        memory_bytes: 400 * 1024,
        engine: "",
        runtime: Runtime::Firmware,
        reserved_cpu_millis: 0,
        reserved_memory_bytes: 0,
    },
];

/// The profile named `name`, if any.
pub fn find(name: &str) -> Option<&'static Board> {
    BOARDS.iter().find(|b| b.name == name)
}

/// The names of every known board, for error messages.
pub fn names() -> Vec<&'static str> {
    BOARDS.iter().map(|b| b.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_profiles_consistent() {
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BOARDS.len());
        for b in BOARDS {
            assert!(b.reserved_cpu_millis < b.cpu_millis, "{}", b.name);
            assert!(b.reserved_memory_bytes < b.memory_bytes, "{}", b.name);
            assert_eq!(b.runtime == Runtime::Agent, !b.engine.is_empty(), "{}", b.name);
            assert!(b.target_triple.starts_with(b.arch.trim_end_matches("imc")) || b.arch == "armv7");
        }
        assert_eq!(find("rpi-4").map(|b| b.engine), Some("aarch64"));
        assert_eq!(find("nope"), None);
    }
}
