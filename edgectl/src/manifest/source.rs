//! Reading manifests: `-f FILE`, `-f DIR` (its `.yaml`, `.yml` and `.json` files, by name, not recursing) or
//! `-f -` (standard input). Every error starts with where it is (`tick.yaml:7:5: …`). The I/O shell around
//! [`super::tree`] and [`super::decode`].

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::decode::{decode, Object};
use super::tree::{documents, Mark};

/// Largest manifest file read (a manifest is a few hundred bytes; this bounds a mistaken `-f` on a big file).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// One object of a manifest, and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file as given (or `<stdin>`), for messages.
    pub file: String,
    /// Where relative module paths start: the file's directory (the working directory for stdin).
    pub dir: PathBuf,
    /// Where the document starts.
    pub at: Mark,
    pub object: Object,
}

impl Loaded {
    /// `tick.yaml:3:1`-style prefix for a message about this object at `at`.
    pub fn place(&self, at: Mark) -> String {
        format!("{}:{at}", self.file)
    }
}

/// Every object of every manifest named, in order. Nothing is sent anywhere until all of them decoded.
pub fn load(names: &[String]) -> Result<Vec<Loaded>> {
    let mut out = Vec::new();
    for name in names {
        if name == "-" {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_MANIFEST_BYTES + 1)
                .read_to_string(&mut text)
                .context("cannot read manifests from standard input")?;
            check_size("<stdin>", text.len() as u64)?;
            out.extend(parse("<stdin>", Path::new("."), &text)?);
            continue;
        }
        let path = Path::new(name);
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {name}"))?;
        let files = if meta.is_dir() { manifests_in(path)? } else { vec![path.to_path_buf()] };
        for file in files {
            let shown = file.display().to_string();
            let size = std::fs::metadata(&file).with_context(|| format!("cannot read {shown}"))?.len();
            check_size(&shown, size)?;
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {shown}"))?;
            let dir = file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            out.extend(parse(&shown, &dir, &text)?);
        }
    }
    if out.is_empty() {
        bail!("no manifests in {} (expected apiVersion: edge/v1 documents)", names.join(", "));
    }
    Ok(out)
}

fn check_size(name: &str, size: u64) -> Result<()> {
    if size > MAX_MANIFEST_BYTES {
        bail!("{name} is over {} MiB: not a manifest", MAX_MANIFEST_BYTES >> 20);
    }
    Ok(())
}

/// The manifests of a directory, by name.
fn manifests_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if path.is_file() && matches!(ext, "yaml" | "yml" | "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The objects of one manifest text (pure).
pub fn parse(file: &str, dir: &Path, text: &str) -> Result<Vec<Loaded>> {
    let docs = documents(text).map_err(|e| anyhow!("{file}:{e}"))?;
    let mut out = Vec::new();
    for doc in &docs {
        if let Some(object) = decode(doc).map_err(|e| anyhow!("{file}:{e}"))? {
            out.push(Loaded { file: file.to_string(), dir: dir.to_path_buf(), at: doc.at, object });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::decode::ModuleRef;

    #[test]
    fn errors_name_the_file_and_documents_keep_their_directory() {
        let text = "apiVersion: edge/v1\nkind: Workload\nmetadata: {name: a}\nspec: {module: m.wasm}\n---\n\
                    apiVersion: edge/v1\nkind: Workload\nmetadata: {name: b}\nspec: {module: m.wasm, replicas: x}\n";
        let e = parse("dir/tick.yaml", Path::new("dir"), text).unwrap_err().to_string();
        assert!(e.starts_with("dir/tick.yaml:9:24: spec.replicas: expected a whole number"), "{e}");
        let e = parse("t.yaml", Path::new("."), "a: [\n").unwrap_err().to_string();
        assert!(e.starts_with("t.yaml:"), "{e}");
    }

    #[test]
    fn a_directory_is_read_in_name_order_with_module_paths_relative_to_each_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("apps");
        std::fs::create_dir(&sub).unwrap();
        let doc = |name: &str| {
            format!(
                "apiVersion: edge/v1\nkind: Workload\nmetadata: {{name: {name}}}\nspec: {{module: ./{name}.wasm}}\n"
            )
        };
        std::fs::write(sub.join("b.yaml"), doc("b")).unwrap();
        std::fs::write(sub.join("a.yml"), doc("a")).unwrap();
        std::fs::write(sub.join("notes.txt"), "not a manifest").unwrap();
        let loaded = load(&[sub.display().to_string()]).unwrap();
        let names: Vec<String> = loaded
            .iter()
            .map(|l| match &l.object {
                Object::Workload(w) => {
                    assert_eq!(w.module, ModuleRef::Path(format!("./{}.wasm", w.name)));
                    w.name.clone()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert!(loaded.iter().all(|l| l.dir == sub));
        let e = load(&[dir.path().join("none.yaml").display().to_string()]).unwrap_err().to_string();
        assert!(e.starts_with("cannot read"), "{e}");
        std::fs::write(dir.path().join("empty.yaml"), "---\n").unwrap();
        let e = load(&[dir.path().join("empty.yaml").display().to_string()]).unwrap_err().to_string();
        assert!(e.starts_with("no manifests in"), "{e}");
    }
}
