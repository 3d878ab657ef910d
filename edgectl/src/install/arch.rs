//! Which machine a binary is for, from its ELF header, and which machine a host is, from what `uname -m`
//! and `getconf LONG_BIT` print there: `install` refuses to put a binary on a host that cannot run it.
//!
//! The host's word size matters as much as its kernel: Raspberry Pi OS 32-bit boots a 64-bit kernel on a Pi 4
//! or 5, so `uname -m` says `aarch64` while every library is armhf, and a 64-bit agent would not start there.

use std::fmt;

/// The architectures an agent is built for (the ELF `e_machine` values of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// EM_AARCH64 (183): Pi 3, 4, 5, Zero 2 W on a 64-bit OS.
    Aarch64,
    /// EM_ARM (40): 32-bit ARM (armv6, armv7), e.g. Pi Zero W, Pi 2, or any Pi on a 32-bit OS.
    Arm,
    /// EM_X86_64 (62).
    X86_64,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::Aarch64 => "aarch64",
            Arch::Arm => "arm (32-bit)",
            Arch::X86_64 => "x86_64",
        })
    }
}

/// The architecture of an ELF file, from its first 20 bytes (read by `flash/elf.rs`, which `edgectl flash` uses
/// for the same check against a board profile).
pub fn elf_arch(header: &[u8]) -> Result<Arch, String> {
    let machine = crate::flash::elf::machine(header).map_err(|e| e.to_string())?;
    // Only little-endian files reach here as these three: `machine` reads a big-endian header's e_machine
    // big-endian, and no agent target is big-endian, so a big-endian header names no machine below.
    match (machine.e_machine, machine.bits, header[5]) {
        (183, 64, 1) => Ok(Arch::Aarch64),
        (40, 32, 1) => Ok(Arch::Arm),
        (62, 64, 1) => Ok(Arch::X86_64),
        _ => Err(format!(
            "an ELF file for {machine}{}, which no agent is built for",
            if header[5] == 2 { " (big-endian)" } else { "" }
        )),
    }
}

/// The architecture whose binaries a host runs, from `uname -m` and `getconf LONG_BIT` (`None` when getconf
/// gave nothing: the kernel's word is then taken for the userland's).
pub fn host_arch(machine: &str, long_bit: Option<u32>) -> Result<Arch, String> {
    let machine = machine.trim();
    let kernel = match machine {
        "aarch64" | "arm64" => Some(Arch::Aarch64),
        // armv6l, armv7l, armv8l (a 32-bit process's view of a 64-bit core); not big-endian armeb, armv7b.
        m if m.starts_with("arm") && !m.ends_with('b') => Some(Arch::Arm),
        "x86_64" | "amd64" => Some(Arch::X86_64),
        _ => None,
    };
    match (kernel, long_bit) {
        (None, _) => Err(format!("`uname -m` says {machine:?}, an architecture no agent is built for")),
        // A 64-bit ARM kernel under a 32-bit userland (Raspberry Pi OS 32-bit on a Pi 4 or 5).
        (Some(Arch::Aarch64), Some(32)) => Ok(Arch::Arm),
        (Some(arch), _) => Ok(arch),
    }
}

#[cfg(test)]
mod tests {
    use super::{elf_arch, host_arch, Arch};

    fn header(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut h = b"\x7fELF".to_vec();
        h.extend([class, data, 1, 0]);
        h.resize(16, 0);
        h.extend(2u16.to_le_bytes()); // ET_EXEC
        h.extend(if data == 2 { machine.to_be_bytes() } else { machine.to_le_bytes() });
        h
    }

    #[test]
    fn reads_the_machine_of_each_agent_target() {
        assert_eq!(elf_arch(&header(2, 1, 183)), Ok(Arch::Aarch64));
        assert_eq!(elf_arch(&header(1, 1, 40)), Ok(Arch::Arm));
        assert_eq!(elf_arch(&header(2, 1, 62)), Ok(Arch::X86_64));
    }

    #[test]
    fn refuses_other_files_and_machines() {
        assert!(elf_arch(b"#!/bin/sh\necho hi\n").unwrap_err().starts_with("not an ELF executable"));
        assert!(elf_arch(b"\x7fELF").is_err());
        assert_eq!(elf_arch(&header(2, 1, 243)).unwrap_err(), "an ELF file for riscv64, which no agent is built for");
        assert!(elf_arch(&header(2, 2, 183)).is_err(), "big-endian aarch64");
    }

    #[test]
    fn a_host_is_its_kernel_unless_its_userland_is_32_bit() {
        assert_eq!(host_arch("aarch64\n", Some(64)), Ok(Arch::Aarch64));
        assert_eq!(host_arch("aarch64", Some(32)), Ok(Arch::Arm), "Pi OS 32-bit on a 64-bit kernel");
        assert_eq!(host_arch("armv7l", Some(32)), Ok(Arch::Arm));
        assert_eq!(host_arch("armv6l", None), Ok(Arch::Arm));
        assert_eq!(host_arch("x86_64", Some(64)), Ok(Arch::X86_64));
        assert_eq!(host_arch("arm64", None), Ok(Arch::Aarch64));
        assert!(host_arch("riscv64", Some(64)).unwrap_err().contains("\"riscv64\""));
        assert!(host_arch("armv7b", None).is_err(), "big-endian");
    }
}
