//! The files of the harness: seeds under `fuzz/corpus/TARGET/`, hand-made hostile inputs under `fuzz/hostile/`
//! (replayed through every target by `tests/corpus.rs`), and findings saved as `fuzz/crashes/TARGET-HASH`.

use std::io;
use std::path::{Path, PathBuf};

/// The fuzz crate's directory (where `corpus/`, `hostile/` and `crashes/` are).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file directly in `dir`, by name; a missing directory is empty.
pub fn load(dir: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            files.push((entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path())?));
        }
    }
    files.sort();
    Ok(files)
}

/// FNV-1a, 64 bits: a stable short name for an input (not a security property).
pub fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Saves a crashing input as `dir/TARGET-HASH` and returns the path.
pub fn save_crash(dir: &Path, target: &str, input: &[u8]) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{target}-{:016x}", fnv64(input)));
    std::fs::write(&path, input)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable_and_crashes_are_named_by_it() {
        assert_eq!(fnv64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let dir = std::env::temp_dir().join(format!("edge-fuzz-test-{}", std::process::id()));
        let path = save_crash(&dir, "envelope", b"a").unwrap();
        assert_eq!(path.file_name().unwrap(), "envelope-af63dc4c8601ec8c");
        assert_eq!(load(&dir).unwrap(), vec![("envelope-af63dc4c8601ec8c".to_string(), b"a".to_vec())]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(load(&dir).unwrap().is_empty());
    }
}
