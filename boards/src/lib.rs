//! Board profiles: what each supported board is, so an agent can describe itself and the scheduler can trust it.
//!
//! One profile per board, each a TOML file under `boards/profiles/` (see [`profile`] for the format). The build
//! script embeds every file there, so adding a board is adding a file; they are parsed and validated once, at
//! first use, and a test checks every shipped profile. A [`Board`] fixes the architecture, the Rust target triple
//! the agent (or firmware) is built for, the board's resources, the WebAssembly engine target its agent uses, the
//! resources reserved for the agent itself (so the scheduler only hands out the rest) and how a board is
//! provisioned (an OS image, SSH, firmware).
//!
//! - [`find`] / [`names`] / [`all`]: the table, sorted by name.
//! - [`profile`]: the file format, its parser and its checks.

pub mod profile;

use std::sync::OnceLock;

use serde::Serialize;

pub use profile::ProfileError;

/// How a board runs workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// A Linux board running `edge-agent` with wasmtime.
    Agent,
    /// A microcontroller running the `no_std` firmware (no WebAssembly instances).
    Firmware,
}

/// A way to put the agent (or the firmware) onto a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provision {
    /// Customise an OS image (or card) so the board joins on first boot: `edgectl flash`.
    Image,
    /// Install onto a running board over SSH.
    Ssh,
    /// Flash the `no_std` firmware (UF2, espflash).
    Firmware,
}

impl Provision {
    pub fn as_str(self) -> &'static str {
        match self {
            Provision::Image => "image",
            Provision::Ssh => "ssh",
            Provision::Firmware => "firmware",
        }
    }
}

/// A supported board. Built once from its profile file and then immutable, hence the `'static` borrows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Board {
    /// The name used on the command line (`--board rpi-4`) and in node labels; the profile's file stem.
    pub name: &'static str,
    pub description: &'static str,
    /// The CPU architecture in the profiles' words: `aarch64`, `armv7`, `armv6`, `thumbv6m`, `thumbv8m.main`,
    /// `riscv32imc`, `x86_64`. [`Board::rust_arch`] gives Rust's word for it.
    pub arch: &'static str,
    /// What the agent (or firmware) is built for: `cargo build --target TRIPLE`.
    pub target_triple: &'static str,
    pub runtime: Runtime,
    /// The wasmtime engine target name (`aarch64`, `pulley32`, …); empty for firmware boards.
    pub engine: &'static str,
    pub cores: u32,
    /// `cores` × 1000.
    pub cpu_millis: u32,
    pub memory_bytes: u64,
    /// CPU kept back for the agent and the OS.
    pub reserved_cpu_millis: u32,
    /// Memory kept back for the agent and the OS.
    pub reserved_memory_bytes: u64,
    /// The OS image the board runs (`Raspberry Pi OS Lite (64-bit)`), or how its firmware ships.
    pub os: &'static str,
    /// How the board is provisioned, in order of preference.
    pub provision: &'static [Provision],
}

/// ELF `e_machine` values of the architectures the profiles name.
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;

impl Board {
    /// The architecture as `std::env::consts::ARCH` says it on this board: 32-bit ARM of every flavour is `arm`.
    pub fn rust_arch(&self) -> &'static str {
        profile::rust_arch(self.arch).unwrap_or(self.arch)
    }

    /// The ELF class (32 or 64) and `e_machine` of a binary built for this board, to check an agent binary
    /// before it is written onto a card.
    pub fn elf(&self) -> (u8, u16) {
        match self.rust_arch() {
            "aarch64" => (64, EM_AARCH64),
            "x86_64" => (64, EM_X86_64),
            "riscv32" => (32, EM_RISCV),
            _ => (32, EM_ARM),
        }
    }

    /// Whether `how` is one of the ways this board is provisioned.
    pub fn provisioned_by(&self, how: Provision) -> bool {
        self.provision.contains(&how)
    }
}

/// The profiles embedded by the build script (`$OUT_DIR/profiles.rs`).
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/profiles.rs"));

    pub(crate) fn files() -> &'static [(&'static str, &'static str)] {
        PROFILES
    }
}

/// Every known board, sorted by name.
///
/// # Panics
/// If a shipped profile is invalid: a build defect, which `tests::every_shipped_profile_is_valid` catches.
pub fn all() -> &'static [Board] {
    static BOARDS: OnceLock<Vec<Board>> = OnceLock::new();
    BOARDS.get_or_init(|| match profile::parse_all(embedded::files()) {
        Ok(boards) => boards,
        Err(e) => panic!("invalid embedded board profile: {e}"),
    })
}

/// The profile named `name`, if any.
pub fn find(name: &str) -> Option<&'static Board> {
    all().iter().find(|b| b.name == name)
}

/// The names of every known board, for error messages.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|b| b.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_is_valid() {
        let boards = profile::parse_all(embedded::files()).unwrap();
        assert_eq!(boards.len(), embedded::files().len());
        assert_eq!(all().len(), boards.len());
    }

    #[test]
    fn the_boards_the_project_promises_are_there() {
        for (name, arch, engine) in [
            ("rpi-5", "aarch64", "aarch64"),
            ("rpi-4", "aarch64", "aarch64"),
            ("rpi-3", "aarch64", "aarch64"),
            ("rpi-zero-2w", "aarch64", "aarch64"),
            ("rpi-3-32", "armv7", "pulley32"),
            ("rpi-2", "armv7", "pulley32"),
            ("rpi-zero-w", "armv6", "pulley32"),
            ("pico-w", "thumbv6m", ""),
            ("pico-2w", "thumbv8m.main", ""),
            ("esp32-c3", "riscv32imc", ""),
        ] {
            let b = find(name).unwrap_or_else(|| panic!("no {name}"));
            assert_eq!((b.arch, b.engine), (arch, engine), "{name}");
            assert_eq!(b.runtime == Runtime::Firmware, engine.is_empty(), "{name}");
        }
        let pi = find("rpi-4").unwrap();
        assert_eq!((pi.cores, pi.cpu_millis, pi.memory_bytes), (4, 4000, 4 << 30));
        assert_eq!((pi.reserved_cpu_millis, pi.reserved_memory_bytes), (200, 256 << 20));
        assert!(pi.provisioned_by(Provision::Image) && pi.provisioned_by(Provision::Ssh));
        assert_eq!(pi.elf(), (64, EM_AARCH64));
        assert_eq!(find("rpi-zero-w").unwrap().rust_arch(), "arm");
        assert_eq!(find("rpi-2").unwrap().elf(), (32, EM_ARM));
        assert_eq!(find("esp32-c3").unwrap().provision, [Provision::Firmware]);
        assert_eq!(find("nope"), None);
        let names = names();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted and unique: {names:?}");
    }
}
