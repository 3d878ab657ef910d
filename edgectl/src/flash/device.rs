//! The checks before `edgectl flash --device` overwrites a card: it must be a block device, nothing on it may be
//! mounted, and it must not be the disk this machine runs from. The parsing is pure (tested on text); [`check`]
//! reads `/proc/mounts` and `/sys` for it.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Whether kernel device name `dev` (`sdb1`, `mmcblk0p2`, `nvme0n1p1`) is `disk` or one of its partitions.
pub fn on_disk(dev: &str, disk: &str) -> bool {
    let Some(rest) = dev.strip_prefix(disk) else { return false };
    if rest.is_empty() {
        return true;
    }
    // `sdb` → `sdb1`; a name ending in a digit (`mmcblk0`, `nvme0n1`) → `mmcblk0p1`.
    let digits = if disk.ends_with(|c: char| c.is_ascii_digit()) { rest.strip_prefix('p') } else { Some(rest) };
    digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The mount points, in `/proc/mounts` text, of file systems on `disk` (a kernel name, `sdb`) or its partitions.
pub fn mounts_on(proc_mounts: &str, disk: &str) -> Vec<String> {
    proc_mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (source, target) = (f.next()?, f.next()?);
            let name = source.strip_prefix("/dev/")?;
            on_disk(name, disk).then(|| unescape(target))
        })
        .collect()
}

/// `/proc/mounts` writes space, tab, newline and backslash in paths as octal escapes (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).filter(|o| b[i] == b'\\' && o.iter().all(|d| (b'0'..=b'7').contains(d)));
        match oct {
            Some(o) => {
                out.push(o.iter().fold(0u8, |v, d| v.wrapping_mul(8).wrapping_add(d - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The kernel name of the whole disk of block device `maj:min` per `/sys/dev/block` (a partition's directory
/// sits inside its disk's).
fn disk_of(major: u64, minor: u64) -> Option<String> {
    let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let dir = if sys.join("partition").exists() { sys.parent()?.to_path_buf() } else { sys };
    Some(dir.file_name()?.to_string_lossy().into_owned())
}

/// Linux's `dev_t` as (major, minor), the way glibc's `major()` and `minor()` split it.
fn split_dev(dev: u64) -> (u64, u64) {
    (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff), (dev & 0xff) | ((dev >> 12) & !0xff))
}

/// What a device is, for the confirmation prompt: kernel name, size and model as `/sys/block` says.
#[derive(Debug)]
pub struct Device {
    pub path: PathBuf,
    pub name: String,
    pub bytes: u64,
    pub model: String,
}

/// Refuses, with the reason, a path that is not a whole-disk block device, a device with something mounted,
/// and the disk holding `/`.
pub fn check(path: &Path) -> anyhow::Result<Device> {
    let meta = std::fs::metadata(path).with_context(|| format!("--device {}", path.display()))?;
    if !meta.file_type().is_block_device() {
        bail!(
            "--device {}: not a block device (give the card's whole disk, e.g. /dev/sdb or /dev/mmcblk0)",
            path.display()
        );
    }
    let (major, minor) = split_dev(meta.rdev());
    let name = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .with_context(|| format!("--device {}: not in /sys/dev/block", path.display()))?;
    if Path::new(&format!("/sys/class/block/{name}/partition")).exists() {
        bail!("--device {}: a partition; give the whole disk it is on", path.display());
    }
    let mounts = std::fs::read_to_string("/proc/mounts").context("cannot read /proc/mounts")?;
    let mounted = mounts_on(&mounts, &name);
    if !mounted.is_empty() {
        bail!("--device {}: mounted at {} (unmount it first)", path.display(), mounted.join(", "));
    }
    let (root_major, root_minor) = split_dev(std::fs::metadata("/").context("cannot stat /")?.dev());
    if disk_of(root_major, root_minor).as_deref() == Some(name.as_str()) {
        bail!("--device {}: the disk holding / (this machine's own)", path.display());
    }
    let sys = |f: &str| std::fs::read_to_string(format!("/sys/class/block/{name}/{f}")).unwrap_or_default();
    let bytes = sys("size").trim().parse::<u64>().unwrap_or(0) * 512;
    let model = sys("device/model").trim().to_string();
    Ok(Device { path: path.to_path_buf(), name, bytes, model })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
/dev/nvme0n1p2 / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid 0 0
/dev/sdb1 /media/me/bootfs vfat rw,nosuid 0 0
/dev/sdb2 /media/me/root\\040fs ext4 rw 0 0
/dev/mmcblk0p1 /mnt/boot vfat rw 0 0
tmpfs /run tmpfs rw 0 0
";

    #[test]
    fn finds_what_is_mounted_from_a_disk() {
        assert_eq!(mounts_on(MOUNTS, "sdb"), ["/media/me/bootfs", "/media/me/root fs"]);
        assert_eq!(mounts_on(MOUNTS, "mmcblk0"), ["/mnt/boot"]);
        assert_eq!(mounts_on(MOUNTS, "nvme0n1"), ["/"]);
        assert!(mounts_on(MOUNTS, "sdc").is_empty());
        assert!(mounts_on(MOUNTS, "sd").is_empty(), "a prefix of a name is not its disk");
        assert!(mounts_on(MOUNTS, "mmcblk").is_empty());
    }

    #[test]
    fn partition_names_follow_the_kernel() {
        assert!(on_disk("sdb", "sdb") && on_disk("sdb12", "sdb") && !on_disk("sdba", "sdb"));
        assert!(on_disk("mmcblk0p1", "mmcblk0") && !on_disk("mmcblk01", "mmcblk0") && !on_disk("mmcblk0p", "mmcblk0"));
        assert!(!on_disk("mmcblk1", "mmcblk0") && !on_disk("sda1", "sdb"));
    }

    #[test]
    fn refuses_what_is_not_a_block_device() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("card.img");
        std::fs::write(&file, b"x").unwrap();
        let e = check(&file).unwrap_err().to_string();
        assert!(e.contains("not a block device"), "{e}");
        let e = format!("{:#}", check(&dir.path().join("sdz")).unwrap_err());
        assert!(e.contains("--device") && e.contains("No such file"), "{e}");
    }
}
