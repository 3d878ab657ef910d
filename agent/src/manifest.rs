//! Standalone manifests: the workloads a node runs with no controller at all (`edge-agent --standalone
//! --manifest FILE`). TOML, one `[[workload]]` table per workload, fields named like `edgectl deploy`'s flags:
//!
//! ```toml
//! [[workload]]
//! name = "tick"
//! module = "examples/ticker.wasm"   # relative to this file
//! replicas = 1                      # default 1
//! cpu = "100m"                      # default 100m
//! memory = "32Mi"                   # default 32Mi; also the memory limit unless memory_limit is set
//! memory_limit = "64Mi"             # cap on the guest's memory
//! cpu_limit = "200m"                # CPU cap (default none beyond fair sharing)
//! timeout = "30s"                   # stop a run after this long (default none)
//! volumes = ["data:16Mi"]           # directories preopened as /NAME, with a size quota
//! restart = "always"                # always | on-failure | never
//! args = ["--fast"]
//! env = { GREETING = "hi" }
//! ```
//!
//! Loading is pure apart from reading the module files: it yields the instances to run and the module bytes.
//! Instance ids are `{name}-{replica}-{template hash}`, so an unchanged workload keeps its ids across agent
//! restarts and a changed one gets new ids (and is restarted), exactly as with a controller.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use edge_proto::quantity::{parse_cpu, parse_duration_ms, parse_memory, parse_volume};
use edge_proto::{InstanceSpec, RestartPolicy, Sha256};
use serde::Deserialize;
use sha2::Digest;

/// Largest module a manifest may name (the same bound as a download from the controller).
const MAX_MODULE: u64 = crate::download::MAX_MODULE;
const MAX_REPLICAS: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the manifest {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("manifest {path}: {message}")]
    Syntax { path: String, message: String },
    #[error("manifest {path}, workload {workload:?}: {message}")]
    Workload { path: String, workload: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "workload")]
    workloads: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    module: PathBuf,
    #[serde(default = "one")]
    replicas: u32,
    #[serde(default)]
    cpu: Option<String>,
    #[serde(default)]
    memory: Option<String>,
    #[serde(default)]
    memory_limit: Option<String>,
    #[serde(default)]
    cpu_limit: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default)]
    restart: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

/// A manifest turned into what the agent runs.
#[derive(Debug)]
pub struct Loaded {
    pub instances: Vec<InstanceSpec>,
    /// Every module the instances use, with its sha256.
    pub modules: Vec<(Sha256, Vec<u8>)>,
}

pub fn load(path: &Path) -> Result<Loaded, ManifestError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: shown.clone(), source })?;
    parse(&text, &shown, path.parent().unwrap_or(Path::new(".")))
}

/// A manifest's text, named `shown` in errors, its module paths relative to `base`. Pure apart from reading the
/// module files (the fuzz targets call it with text they made).
pub fn parse(text: &str, shown: &str, base: &Path) -> Result<Loaded, ManifestError> {
    let shown = shown.to_string();
    let file: File =
        toml::from_str(text).map_err(|e| ManifestError::Syntax { path: shown.clone(), message: e.to_string() })?;
    if file.workloads.is_empty() {
        return Err(ManifestError::Syntax { path: shown, message: "no [[workload]] tables".into() });
    }
    let mut names = HashSet::new();
    let mut instances = Vec::new();
    let mut modules: Vec<(Sha256, Vec<u8>)> = Vec::new();
    for w in file.workloads {
        let bad = |message: String| ManifestError::Workload { path: shown.clone(), workload: w.name.clone(), message };
        edge_proto::validate_name(&w.name).map_err(|e| bad(format!("name: {e}")))?;
        if !names.insert(w.name.clone()) {
            return Err(bad("defined twice".into()));
        }
        if w.replicas > MAX_REPLICAS {
            return Err(bad(format!("replicas {} exceeds the limit of {MAX_REPLICAS}", w.replicas)));
        }
        let cpu_millis = parse_cpu(w.cpu.as_deref().unwrap_or("100m")).map_err(|e| bad(format!("cpu: {e}")))?;
        let memory = parse_memory(w.memory.as_deref().unwrap_or("32Mi")).map_err(|e| bad(format!("memory: {e}")))?;
        let memory_limit = match w.memory_limit.as_deref() {
            Some(m) => parse_memory(m).map_err(|e| bad(format!("memory_limit: {e}")))?,
            None => memory,
        };
        let cpu_limit = match w.cpu_limit.as_deref() {
            Some(c) => parse_cpu(c).map_err(|e| bad(format!("cpu_limit: {e}")))?,
            None => 0,
        };
        let timeout_ms = match w.timeout.as_deref() {
            Some(t) => parse_duration_ms(t).map_err(|e| bad(format!("timeout: {e}")))?,
            None => 0,
        };
        let volumes = w.volumes.iter().map(|v| parse_volume(v).map_err(&bad)).collect::<Result<Vec<_>, _>>()?;
        let restart: RestartPolicy = match w.restart.as_deref() {
            None => RestartPolicy::Always,
            Some(r) => r.parse().map_err(|e| bad(format!("restart {r:?}: {e}")))?,
        };
        for k in w.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(bad(format!("environment variable name {k:?} is invalid")));
            }
        }
        let module_path = base.join(&w.module);
        let bytes = read_module(&module_path).map_err(&bad)?;
        if !bytes.starts_with(b"\0asm") && wasmtime::Engine::detect_precompiled(&bytes).is_none() {
            return Err(bad(format!("{} is neither WebAssembly nor a precompiled artifact", module_path.display())));
        }
        let sha: Sha256 = sha2::Sha256::digest(&bytes).into();
        let template = InstanceSpec {
            id: String::new(),
            namespace: "default".into(),
            workload: w.name.clone(),
            module: sha,
            module_size: bytes.len() as u64,
            args: w.args,
            env: w.env.into_iter().collect(),
            cpu_millis,
            memory_limit_bytes: memory_limit,
            restart,
            cpu_limit_millis: cpu_limit,
            timeout_ms,
            volumes,
        };
        let hash = sha2::Sha256::digest(postcard::to_allocvec(&template).unwrap_or_default());
        for replica in 0..w.replicas {
            let id = format!("{}-{replica}-{}", w.name, hex::encode(&hash[..4]));
            instances.push(InstanceSpec { id, ..template.clone() });
        }
        if !modules.iter().any(|(s, _)| *s == sha) {
            modules.push((sha, bytes));
        }
    }
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Loaded { instances, modules })
}

/// A module file's bytes. Only a regular file is read (`/dev/zero`, a FIFO or a terminal would never end, or
/// block), and never past [`MAX_MODULE`], even if the file grows between the size check and the read.
fn read_module(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read module {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("module {} is not a regular file", path.display()));
    }
    let over = |size: u64| format!("module {} is {size} bytes, over the limit of {MAX_MODULE}", path.display());
    if meta.len() > MAX_MODULE {
        return Err(over(meta.len()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|f| f.take(MAX_MODULE + 1).read_to_end(&mut bytes)).map_err(cannot)?;
    if bytes.len() as u64 > MAX_MODULE {
        return Err(over(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, manifest: &str) -> PathBuf {
        std::fs::write(dir.join("m.wasm"), b"\0asm\x01\0\0\0").unwrap();
        let p = dir.join("edge.toml");
        std::fs::write(&p, manifest).unwrap();
        p
    }

    #[test]
    fn loads_workloads_with_defaults_and_stable_ids() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[[workload]]\nname = \"tick\"\nmodule = \"m.wasm\"\nreplicas = 2\nenv = { A = \"1\" }\n";
        let p = write(dir.path(), text);
        let a = load(&p).unwrap();
        assert_eq!(a.instances.len(), 2);
        assert_eq!(a.modules.len(), 1);
        let i = &a.instances[0];
        assert!(i.id.starts_with("tick-0-"), "{}", i.id);
        assert_eq!((i.cpu_millis, i.memory_limit_bytes, i.restart), (100, 32 << 20, RestartPolicy::Always));
        assert_eq!(i.env, [("A".to_string(), "1".to_string())]);
        // Same manifest, same ids; a changed template, new ids.
        assert_eq!(load(&p).unwrap().instances[0].id, i.id);
        let p = write(dir.path(), &text.replace("\"1\"", "\"2\""));
        assert_ne!(load(&p).unwrap().instances[0].id, i.id);
    }

    #[test]
    fn refuses_bad_manifests_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        for (text, expect) in [
            ("[[workload]]\nname = \"Bad\"\nmodule = \"m.wasm\"\n", "name"),
            ("[[workload]]\nname = \"a\"\nmodule = \"nope.wasm\"\n", "cannot read module"),
            ("[[workload]]\nname = \"a\"\nmodule = \"/dev/zero\"\n", "is not a regular file"),
            ("[[workload]]\nname = \"a\"\nmodule = \".\"\n", "is not a regular file"),
            ("[[workload]]\nname = \"a\"\nmodule = \"m.wasm\"\nmemory = \"lots\"\n", "memory"),
            ("[[workload]]\nname = \"a\"\nmodule = \"m.wasm\"\nrestart = \"sometimes\"\n", "restart"),
            ("[[workload]]\nname = \"a\"\nmodule = \"m.wasm\"\ncolour = 1\n", "colour"),
            ("[[workload]]\nname = \"a\"\nmodule = \"edge.toml\"\n", "neither WebAssembly nor a precompiled artifact"),
            ("workload = 3", "invalid type"),
            ("", "no [[workload]]"),
        ] {
            let p = write(dir.path(), text);
            let e = load(&p).unwrap_err().to_string();
            assert!(e.contains(expect), "{text:?}: {e}");
        }
    }
}
