//! The architecture of an executable, from its ELF header alone: enough to refuse an x86_64 agent binary for
//! an aarch64 board before it is written to a card that would then never join.

use std::fmt;

/// The machine an ELF file is built for: its class (32/64-bit) and `e_machine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    pub bits: u8,
    pub e_machine: u16,
}

impl Machine {
    /// The architecture name as board profiles spell it (`aarch64`, `arm`, `x86_64`, …).
    pub fn name(&self) -> String {
        match (self.e_machine, self.bits) {
            (183, 64) => "aarch64".into(),
            (40, 32) => "arm".into(),
            (62, 64) => "x86_64".into(),
            (3, 32) => "x86".into(),
            (243, 64) => "riscv64".into(),
            (243, 32) => "riscv32".into(),
            (m, b) => format!("e_machine {m} ({b}-bit)"),
        }
    }

    /// Whether a binary for this machine runs on a board of architecture `arch` (a board profile's `arch`:
    /// `aarch64`, `armv7`, `armv6`, …). Every 32-bit ARM flavour is `e_machine` 40; which one the binary needs
    /// is not in the header.
    pub fn runs_on(&self, arch: &str) -> bool {
        match arch {
            "aarch64" | "arm64" => (self.e_machine, self.bits) == (183, 64),
            a if a.starts_with("arm") => (self.e_machine, self.bits) == (40, 32),
            "x86_64" => (self.e_machine, self.bits) == (62, 64),
            "riscv64" | "riscv64gc" => (self.e_machine, self.bits) == (243, 64),
            _ => false,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    Truncated,
    BadClass(u8),
    BadEndianness(u8),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "not an ELF executable (no \\x7fELF magic)"),
            ElfError::Truncated => write!(f, "a truncated ELF header"),
            ElfError::BadClass(c) => write!(f, "an ELF header of unknown class {c}"),
            ElfError::BadEndianness(d) => write!(f, "an ELF header of unknown byte order {d}"),
        }
    }
}

impl std::error::Error for ElfError {}

/// The machine of the ELF file whose first bytes (at least 20) are `header`.
pub fn machine(header: &[u8]) -> Result<Machine, ElfError> {
    if header.len() < 4 || &header[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if header.len() < 20 {
        return Err(ElfError::Truncated);
    }
    let bits = match header[4] {
        1 => 32,
        2 => 64,
        c => return Err(ElfError::BadClass(c)),
    };
    let bytes = [header[18], header[19]];
    let e_machine = match header[5] {
        1 => u16::from_le_bytes(bytes),
        2 => u16::from_be_bytes(bytes),
        d => return Err(ElfError::BadEndianness(d)),
    };
    Ok(Machine { bits, e_machine })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header the acceptance check writes for its stand-in aarch64 agent.
    fn header(class: u8, e_machine: u16) -> Vec<u8> {
        let mut h = b"\x7fELF".to_vec();
        h.extend([class, 1, 1, 0]);
        h.extend([0; 8]);
        h.extend(2u16.to_le_bytes());
        h.extend(e_machine.to_le_bytes());
        h.extend([0; 44]);
        h
    }

    #[test]
    fn reads_the_architecture() {
        let arm64 = machine(&header(2, 183)).unwrap();
        assert_eq!(arm64, Machine { bits: 64, e_machine: 183 });
        assert_eq!(arm64.name(), "aarch64");
        assert!(arm64.runs_on("aarch64") && !arm64.runs_on("armv7") && !arm64.runs_on("x86_64"));
        let arm = machine(&header(1, 40)).unwrap();
        assert_eq!(arm.name(), "arm");
        assert!(arm.runs_on("armv7") && arm.runs_on("armv6") && !arm.runs_on("aarch64"));
        let x86 = machine(&header(2, 62)).unwrap();
        assert_eq!(x86.to_string(), "x86_64");
        assert!(!x86.runs_on("aarch64") && x86.runs_on("x86_64"));
        // A 64-bit class with the 32-bit ARM machine is not aarch64.
        assert!(!machine(&header(2, 40)).unwrap().runs_on("armv7"));
        assert!(!machine(&header(2, 183)).unwrap().runs_on("thumbv6m"));
        assert_eq!(machine(&header(2, 9999)).unwrap().name(), "e_machine 9999 (64-bit)");
    }

    #[test]
    fn big_endian_headers_read_their_machine_big_endian() {
        let mut h = header(2, 0);
        h[5] = 2;
        h[18..20].copy_from_slice(&183u16.to_be_bytes());
        assert_eq!(machine(&h).unwrap().name(), "aarch64");
    }

    #[test]
    fn refuses_what_is_not_elf() {
        assert_eq!(machine(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert_eq!(machine(b""), Err(ElfError::NotElf));
        assert_eq!(machine(b"\x7fELF\x02\x01"), Err(ElfError::Truncated));
        let mut h = header(3, 183);
        assert_eq!(machine(&h), Err(ElfError::BadClass(3)));
        h[4] = 2;
        h[5] = 9;
        assert_eq!(machine(&h), Err(ElfError::BadEndianness(9)));
    }
}
