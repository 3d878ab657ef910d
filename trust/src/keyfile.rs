//! Key files (std, unix): the 32 raw secret bytes of a [`KeyPair`], readable by its owner only (mode 0600).
//!
//! **Invariants:** a key file is never observed half-written and never silently replaced. A new key is
//! written to a temporary file created with mode 0600 (so the secret is never readable by others, not even
//! briefly), synced, then hard-linked to the final name, which fails if that name exists (unlike `rename`,
//! which would replace a key another process just created and is already using). A file that exists is used
//! only if it is a regular file of exactly 32 bytes that group and others cannot read or write; anything else
//! is an error naming the problem, never a new key written over it.

use crate::key::{KeyPair, SECRET_LEN};
// The crate is `no_std`; this std-only module takes std's prelude back.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::prelude::rust_2021::*;
use zeroize::Zeroize;

/// Why a key file could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("reading key file {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("writing key file {path}")]
    Write { path: PathBuf, source: io::Error },
    #[error("key file {path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("key file {path} has {found} bytes, expected {SECRET_LEN} (not a key file of this format?)")]
    WrongLength { path: PathBuf, found: u64 },
    #[error("key file {path} has mode {mode:04o}: group or others may access it; `chmod 600` it")]
    LoosePermissions { path: PathBuf, mode: u32 },
    #[error("generating a key for {path}")]
    Random { path: PathBuf, source: crate::RandomError },
}

impl KeyPair {
    /// Loads the key at `path`, or creates one there if the file does not exist. The parent directory must
    /// exist. Two processes racing to create the same file both end up with the one that won.
    pub fn load_or_create(path: &Path) -> Result<KeyPair, KeyFileError> {
        match read_key(path) {
            Err(KeyFileError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let key = KeyPair::generate().map_err(|source| KeyFileError::Random { path: path.to_owned(), source })?;
        match write_new(path, &key)? {
            Created::Linked => Ok(key),
            // Someone else created it between our look and our link: theirs is the key.
            Created::Exists => read_key(path),
        }
    }

    /// Loads the key at `path`; a missing file is an error.
    pub fn load(path: &Path) -> Result<KeyPair, KeyFileError> {
        read_key(path)
    }
}

fn read_key(path: &Path) -> Result<KeyPair, KeyFileError> {
    let read_err = |source| KeyFileError::Read { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(read_err)?;
    // Checked on the open file, not the path, so the file checked is the file read.
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile { path: path.to_owned() });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::LoosePermissions { path: path.to_owned(), mode });
    }
    if meta.len() != SECRET_LEN as u64 {
        return Err(KeyFileError::WrongLength { path: path.to_owned(), found: meta.len() });
    }
    // Read one byte more than a key so a file that grew since `metadata` is still refused, and never read
    // more than that whatever the file claims.
    let mut buf = [0u8; SECRET_LEN + 1];
    let mut filled = 0;
    loop {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.zeroize();
                return Err(read_err(e));
            }
        }
        if filled == buf.len() {
            break;
        }
    }
    let result = if filled == SECRET_LEN {
        let mut secret = [0u8; SECRET_LEN];
        secret.copy_from_slice(&buf[..SECRET_LEN]);
        let key = KeyPair::from_secret_bytes(&secret);
        secret.zeroize();
        Ok(key)
    } else {
        Err(KeyFileError::WrongLength { path: path.to_owned(), found: filled as u64 })
    };
    buf.zeroize();
    result
}

/// What `write_new` did.
enum Created {
    /// Our key is now at the path.
    Linked,
    /// The path existed when we tried to link ours there; ours was discarded.
    Exists,
}

fn write_new(path: &Path, key: &KeyPair) -> Result<Created, KeyFileError> {
    let write_err = |source| KeyFileError::Write { path: path.to_owned(), source };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| write_err(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    // Unique per call (pid + a random word), so concurrent creators, in one process or several, never
    // share a temporary file; `create_new` makes a collision an error rather than a shared write.
    let mut nonce = [0u8; 8];
    crate::random::fill(&mut crate::random::os(), &mut nonce)
        .map_err(|source| KeyFileError::Random { path: path.to_owned(), source })?;
    let nonce = u64::from_ne_bytes(nonce);
    tmp_name.push(format!(".tmp.{}.{nonce:016x}", std::process::id()));
    let tmp = dir.join(tmp_name);

    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(write_err)?;
    let written = file.write_all(key.secret_bytes()).and_then(|()| file.sync_all());
    drop(file);
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    // Whether or not it was linked, the temporary name goes; the key (if linked) lives on under `path`.
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Created::Exists),
        Err(e) => return Err(write_err(e)),
    }
    // Make the new directory entry durable, so a power cut cannot bring back a node with no key after it
    // has announced this one.
    File::open(dir).and_then(|d| d.sync_all()).map_err(write_err)?;
    Ok(Created::Linked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_then_loads_the_same_key_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        let created = KeyPair::load_or_create(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap(), created.secret_bytes());
        let loaded = KeyPair::load_or_create(&path).unwrap();
        assert_eq!(loaded.public(), created.public());
        assert_eq!(KeyPair::load(&path).unwrap().public(), created.public());
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_file_is_an_error_for_load() {
        let dir = tempfile::tempdir().unwrap();
        let err = KeyPair::load(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(err, KeyFileError::Read { ref source, .. } if source.kind() == io::ErrorKind::NotFound));
    }

    #[test]
    fn refuses_loose_permissions_without_touching_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        fs::write(&path, [9u8; 32]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyPair::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::LoosePermissions { mode: 0o644, .. }), "{err:?}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), [9u8; 32]);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(KeyPair::load_or_create(&path).unwrap().secret_bytes(), &[9u8; 32]);
    }

    #[test]
    fn refuses_wrong_lengths() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 31, 33, 64, 4096] {
            let path = dir.path().join(format!("k{len}"));
            fs::write(&path, vec![1u8; len]).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let err = KeyPair::load_or_create(&path).unwrap_err();
            assert!(matches!(err, KeyFileError::WrongLength { found, .. } if found == len as u64), "{err:?}");
            assert_eq!(fs::read(&path).unwrap().len(), len, "left as it was");
        }
    }

    #[test]
    fn refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub");
        fs::create_dir(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        let err = KeyPair::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::NotAFile { .. }), "{err:?}");
    }

    #[test]
    fn missing_directory_is_a_write_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = KeyPair::load_or_create(&dir.path().join("no/such/dir/key")).unwrap_err();
        assert!(matches!(err, KeyFileError::Write { .. }), "{err:?}");
    }

    #[test]
    fn racing_creators_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.key");
        let keys: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(|| KeyPair::load_or_create(&path))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // Every thread comes back with the one key on disk, the winner's.
        let on_disk = KeyPair::load(&path).unwrap().public();
        for key in keys {
            assert_eq!(key.unwrap().public(), on_disk);
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }
}
