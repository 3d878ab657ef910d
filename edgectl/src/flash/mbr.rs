//! The MBR partition table of a disk image: where its FAT32 boot partition starts and how long it is.
//!
//! Raspberry Pi OS images are MBR-partitioned with the FAT32 `bootfs` first (type 0x0c) and the ext4 root
//! second. A GPT disk carries a protective MBR (one partition of type 0xee): refused, as the Pi's own images
//! never use one.

use std::fmt;

/// Bytes per sector: MBR LBAs count 512-byte sectors on every image and SD card a Pi boots from.
pub const SECTOR: u64 = 512;

/// One primary partition entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// 1-based, as `fdisk` numbers them.
    pub number: u8,
    pub kind: u8,
    pub start_lba: u32,
    pub sectors: u32,
}

impl Partition {
    pub fn offset(&self) -> u64 {
        u64::from(self.start_lba) * SECTOR
    }

    pub fn len(&self) -> u64 {
        u64::from(self.sectors) * SECTOR
    }

    /// FAT32 (CHS 0x0b or LBA 0x0c), what a Pi's firmware boots from.
    pub fn is_fat32(&self) -> bool {
        matches!(self.kind, 0x0b | 0x0c)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MbrError {
    TooShort(usize),
    NoSignature,
    Gpt,
    /// No FAT32 partition; the types of those there are.
    NoFat(Vec<u8>),
    /// The partition reaches past the end of the image.
    Truncated {
        partition: Partition,
        image_len: u64,
    },
}

impl fmt::Display for MbrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MbrError::TooShort(n) => write!(f, "no MBR: the image is only {n} bytes"),
            MbrError::NoSignature => write!(f, "no MBR partition table (no 0x55aa signature in the first sector)"),
            MbrError::Gpt => write!(f, "a GPT disk: only MBR images (as Raspberry Pi OS ships them) are supported"),
            MbrError::NoFat(kinds) if kinds.is_empty() => write!(f, "no FAT boot partition: the MBR has no partitions"),
            MbrError::NoFat(kinds) => {
                let kinds: Vec<String> = kinds.iter().map(|k| format!("0x{k:02x}")).collect();
                write!(f, "no FAT32 boot partition (type 0x0b/0x0c) in the MBR; it has types {}", kinds.join(", "))
            }
            MbrError::Truncated { partition, image_len } => write!(
                f,
                "partition {} ends at byte {}, past the end of the image ({image_len} bytes)",
                partition.number,
                partition.offset() + partition.len()
            ),
        }
    }
}

impl std::error::Error for MbrError {}

/// The non-empty primary partitions of the MBR in `sector0` (the image's first 512 bytes).
pub fn partitions(sector0: &[u8]) -> Result<Vec<Partition>, MbrError> {
    if sector0.len() < 512 {
        return Err(MbrError::TooShort(sector0.len()));
    }
    if sector0[510] != 0x55 || sector0[511] != 0xaa {
        return Err(MbrError::NoSignature);
    }
    let mut out = Vec::new();
    for i in 0..4u8 {
        let e = &sector0[446 + 16 * usize::from(i)..][..16];
        let kind = e[4];
        let start_lba = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
        let sectors = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
        if kind == 0 || sectors == 0 {
            continue;
        }
        if kind == 0xee {
            return Err(MbrError::Gpt);
        }
        out.push(Partition { number: i + 1, kind, start_lba, sectors });
    }
    Ok(out)
}

/// The first FAT32 partition of the MBR in `sector0`, checked to lie within an image of `image_len` bytes.
pub fn boot_partition(sector0: &[u8], image_len: u64) -> Result<Partition, MbrError> {
    let parts = partitions(sector0)?;
    let Some(boot) = parts.iter().find(|p| p.is_fat32()).copied() else {
        return Err(MbrError::NoFat(parts.iter().map(|p| p.kind).collect()));
    };
    if boot.offset() + boot.len() > image_len {
        return Err(MbrError::Truncated { partition: boot, image_len });
    }
    Ok(boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbr(entries: &[(u8, u32, u32)]) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        for (i, (kind, start, len)) in entries.iter().enumerate() {
            let e = &mut s[446 + 16 * i..][..16];
            e[4] = *kind;
            e[8..12].copy_from_slice(&start.to_le_bytes());
            e[12..16].copy_from_slice(&len.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xaa;
        s
    }

    #[test]
    fn finds_the_pi_os_layout() {
        // What `sfdisk` makes of "start=16384, size=262144, type=c / start=278528, type=83".
        let s = mbr(&[(0x0c, 16384, 262_144), (0x83, 278_528, 950_272)]);
        let p = boot_partition(&s, 600 << 20).unwrap();
        assert_eq!(p, Partition { number: 1, kind: 0x0c, start_lba: 16384, sectors: 262_144 });
        assert_eq!((p.offset(), p.len()), (16384 * 512, 262_144 * 512));
        assert_eq!(partitions(&s).unwrap().len(), 2);
    }

    #[test]
    fn takes_the_first_fat32_even_when_not_first() {
        let s = mbr(&[(0x83, 2048, 100), (0x0b, 4096, 100), (0x0c, 8192, 100)]);
        assert_eq!(boot_partition(&s, 1 << 30).unwrap().number, 2);
    }

    #[test]
    fn refuses_what_is_not_a_pi_image_with_the_reason() {
        let no_sig = vec![0u8; 512];
        assert_eq!(boot_partition(&no_sig, 512), Err(MbrError::NoSignature));
        assert_eq!(boot_partition(&[0u8; 100], 100), Err(MbrError::TooShort(100)));
        assert_eq!(boot_partition(&mbr(&[(0xee, 1, 1000)]), 1 << 20), Err(MbrError::Gpt));
        let e = boot_partition(&mbr(&[(0x83, 2048, 100), (0x06, 4096, 100)]), 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "no FAT32 boot partition (type 0x0b/0x0c) in the MBR; it has types 0x83, 0x06");
        assert!(boot_partition(&mbr(&[]), 1 << 20).unwrap_err().to_string().contains("no partitions"));
        let e = boot_partition(&mbr(&[(0x0c, 16384, 262_144)]), 1 << 20).unwrap_err();
        assert!(matches!(e, MbrError::Truncated { .. }), "{e}");
        for e in [MbrError::NoSignature, MbrError::Gpt, MbrError::NoFat(vec![0x83]), e] {
            assert!(!e.to_string().contains('\n'));
        }
    }
}
