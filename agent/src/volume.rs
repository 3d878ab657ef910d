//! Volumes: per-instance directories under the agent's data dir, preopened in the guest as `/{name}`, each
//! with a size quota.
//!
//! The filesystem sandbox itself is wasmtime-wasi's (cap-std): paths resolve beneath a preopen only, so `..`,
//! absolute paths and symlinks leading out fail inside the guest. The quota is ours: the calls that can grow a
//! file (`fd_write`, `fd_pwrite`, `fd_allocate`, `fd_filestat_set_size`) are wrapped, and a growth past the
//! quota returns `ENOSPC` to the guest. Bytes written are counted as growth (an overwrite over-counts); when a
//! write would pass the quota the directory is measured again before refusing, so the count never refuses what
//! actually fits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use edge_proto::VolumeSpec;

/// WASI errno `nospc`.
pub const ENOSPC: i32 = 51;
/// WASI errno `notsup`.
pub const ENOTSUP: i32 = 58;
/// First descriptor after stdin, stdout, stderr: wasmtime-wasi numbers preopens from here, in order.
pub const FIRST_PREOPEN: u32 = 3;

/// One instance's volumes and what it has written to them.
#[derive(Debug)]
pub struct Volumes {
    volumes: Vec<Volume>,
    /// Which volume each open descriptor lives in.
    fds: HashMap<u32, usize>,
}

#[derive(Debug)]
struct Volume {
    dir: PathBuf,
    quota: u64,
    used: u64,
}

/// The host directory of an instance's volume `name`.
pub fn volume_dir(root: &Path, instance: &str, name: &str) -> PathBuf {
    root.join(safe_component(instance)).join(safe_component(name))
}

/// The directory holding every volume of `instance` (removed when the instance leaves the node).
pub fn instance_dir(root: &Path, instance: &str) -> PathBuf {
    root.join(safe_component(instance))
}

/// Names are validated by the controller; this keeps a hostile spec from naming a path anyway.
fn safe_component(s: &str) -> String {
    if !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && s != "."
        && s != ".."
    {
        s.to_string()
    } else {
        hex::encode(s.as_bytes())
    }
}

impl Volumes {
    /// Creates (or reuses: a restarted instance keeps its data) the directories of `specs`.
    pub fn prepare(root: &Path, instance: &str, specs: &[VolumeSpec]) -> std::io::Result<(Volumes, Vec<PathBuf>)> {
        let mut volumes = Vec::new();
        let mut fds = HashMap::new();
        let mut dirs = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let dir = volume_dir(root, instance, &spec.name);
            std::fs::create_dir_all(&dir)?;
            let used = disk_usage(&dir);
            fds.insert(FIRST_PREOPEN + i as u32, i);
            dirs.push(dir.clone());
            volumes.push(Volume { dir, quota: spec.size_bytes, used });
        }
        Ok((Volumes { volumes, fds }, dirs))
    }

    /// Whether `fd` may grow by `bytes`; counts them if so. Descriptors outside every volume (stdout, …) are
    /// not counted.
    pub fn reserve(&mut self, fd: u32, bytes: u64) -> Result<(), i32> {
        let Some(&i) = self.fds.get(&fd) else { return Ok(()) };
        let v = &mut self.volumes[i];
        if v.used.saturating_add(bytes) > v.quota {
            v.used = disk_usage(&v.dir);
            if v.used.saturating_add(bytes) > v.quota {
                return Err(ENOSPC);
            }
        }
        v.used += bytes;
        Ok(())
    }

    /// `opened` was opened relative to `dir_fd`: it belongs to the same volume.
    pub fn opened(&mut self, dir_fd: u32, opened: u32) {
        match self.fds.get(&dir_fd).copied() {
            Some(i) => self.fds.insert(opened, i),
            None => self.fds.remove(&opened),
        };
    }

    pub fn closed(&mut self, fd: u32) {
        if fd >= FIRST_PREOPEN + self.volumes.len() as u32 {
            self.fds.remove(&fd);
        }
    }

    /// `fd_renumber(from, to)` succeeded.
    pub fn renumbered(&mut self, from: u32, to: u32) {
        match self.fds.remove(&from) {
            Some(i) => self.fds.insert(to, i),
            None => self.fds.remove(&to),
        };
    }
}

/// Bytes of regular files under `dir`, not following symlinks.
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_counts_writes_and_remeasures_before_refusing() {
        let root = tempfile::tempdir().unwrap();
        let specs = [VolumeSpec { name: "data".into(), size_bytes: 100 }];
        let (mut v, dirs) = Volumes::prepare(root.path(), "w-1", &specs).unwrap();
        assert_eq!(dirs, [root.path().join("w-1").join("data")]);
        assert_eq!(v.reserve(3, 60), Ok(()));
        // Counted 60 but nothing is on disk: the re-measure lets the next 60 through.
        assert_eq!(v.reserve(3, 60), Ok(()));
        std::fs::write(dirs[0].join("f"), [0u8; 90]).unwrap();
        assert_eq!(v.reserve(3, 50), Err(ENOSPC));
        assert_eq!(v.reserve(3, 10), Ok(()));
        // stdout and unknown descriptors are not counted.
        assert_eq!(v.reserve(1, 1 << 40), Ok(()));
        v.opened(3, 9);
        assert_eq!(v.reserve(9, 50), Err(ENOSPC));
        v.renumbered(9, 12);
        assert_eq!(v.reserve(12, 50), Err(ENOSPC));
        v.closed(12);
        assert_eq!(v.reserve(12, 50), Ok(()));
    }

    #[test]
    fn hostile_names_never_leave_the_root() {
        let root = Path::new("/var/lib/edge/volumes");
        for bad in ["..", "../etc", "/etc", "a/b", ""] {
            let p = volume_dir(root, bad, bad);
            assert!(p.starts_with(root) && !p.components().any(|c| c == std::path::Component::ParentDir), "{p:?}");
        }
    }
}
