//! Artifacts: each module precompiled for each engine profile in the fleet, cached in the store by
//! (module sha256, profile fingerprint).
//!
//! Compiling is CPU-heavy (Cranelift), so it never runs on the cluster's owner: the cluster queues a [`Job`],
//! one builder task compiles on a blocking thread and reports a [`Built`] over a channel, which the owner hands
//! to [`Cluster::artifact_built`](crate::cluster::Cluster::artifact_built). Agents asking for an artifact that is
//! still being built wait in [`Artifacts::wait`] and are answered when it is ready (or refused with the
//! compiler's reason, which is also kept, so a module that cannot run on a target fails fast everywhere).
//!
//! Builds are triggered by an upload (for every profile the fleet has), by a node announcing a profile (for
//! every module in use) and by a request for a missing artifact.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use edge_proto::{EngineProfile, ModuleRequest};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

pub use crate::model::ArtifactRecord;

/// (module sha256 hex, profile fingerprint).
pub type Key = (String, String);

pub fn key(module: &str, profile: &EngineProfile) -> Key {
    (module.to_string(), edge_engine::fingerprint(profile))
}

/// A module to compile for a profile.
#[derive(Debug)]
pub struct Job {
    pub key: Key,
    pub profile: EngineProfile,
    pub wasm: Arc<Vec<u8>>,
}

/// Where an artifact stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Ready(ArtifactRecord),
    Failed(String),
    /// Queued or compiling (or no builder: then it never arrives).
    Missing,
}

/// The cluster's view of artifacts: records, builds in flight, agents waiting, recently served bytes.
#[derive(Default)]
pub struct Artifacts {
    records: HashMap<Key, ArtifactRecord>,
    building: HashSet<Key>,
    waiting: HashMap<Key, Vec<(String, ModuleRequest)>>,
    cache: HashMap<Key, Arc<Vec<u8>>>,
    jobs: Option<UnboundedSender<Job>>,
}

/// Artifacts' bytes kept in memory for chunked downloads.
const CACHED: usize = 16;
/// Most engine profiles one module is compiled for (a fleet has a handful: one per target and memory size).
pub const PROFILES_PER_MODULE: usize = 32;

impl Artifacts {
    pub fn new(records: Vec<ArtifactRecord>) -> Artifacts {
        Artifacts { records: records.into_iter().map(|r| (r.key(), r)).collect(), ..Artifacts::default() }
    }

    pub fn set_builder(&mut self, jobs: UnboundedSender<Job>) {
        self.jobs = Some(jobs);
    }

    pub fn lookup(&self, key: &Key) -> Lookup {
        match self.records.get(key) {
            Some(r) => match &r.error {
                Some(e) => Lookup::Failed(e.clone()),
                None => Lookup::Ready(r.clone()),
            },
            None => Lookup::Missing,
        }
    }

    /// Every artifact (and failure) of `module`.
    pub fn of_module<'a>(&'a self, module: &'a str) -> impl Iterator<Item = &'a ArtifactRecord> + 'a {
        self.records.values().filter(move |r| r.module == module)
    }

    /// Whether any module failed to compile for any profile.
    pub fn any_failed(&self) -> bool {
        self.records.values().any(|r| r.error.is_some())
    }

    /// Fingerprints of the engine profiles `module` cannot be compiled for (the scheduler avoids those nodes).
    pub fn failed_fingerprints(&self, module: &str) -> Vec<String> {
        self.of_module(module).filter(|r| r.error.is_some()).map(|r| r.fingerprint.clone()).collect()
    }

    /// Queues a build of `module` for `profile` unless it exists or is under way. `wasm` is read only then.
    /// At most [`PROFILES_PER_MODULE`] profiles are built per module: a node announcing ever new profiles
    /// cannot grow the store without bound.
    pub fn want(&mut self, module: &str, profile: &EngineProfile, wasm: impl FnOnce() -> Option<Arc<Vec<u8>>>) {
        let key = key(module, profile);
        if self.records.contains_key(&key) || self.building.contains(&key) {
            return;
        }
        let known = self.records.keys().chain(&self.building).filter(|(m, _)| m == module).count();
        if known >= PROFILES_PER_MODULE {
            tracing::warn!(module, "not building an artifact: the module already has one for {known} engine profiles");
            return;
        }
        let Some(jobs) = &self.jobs else { return };
        let Some(wasm) = wasm() else { return };
        if jobs.send(Job { key: key.clone(), profile: *profile, wasm }).is_ok() {
            self.building.insert(key);
        }
    }

    /// `node` asked for an artifact still being built: answer it once built.
    pub fn wait(&mut self, key: Key, node: &str, request: ModuleRequest) {
        let waiters = self.waiting.entry(key).or_default();
        if !waiters.iter().any(|(n, r)| n == node && r.module == request.module && r.offset == request.offset) {
            waiters.push((node.to_string(), request));
        }
    }

    /// A build finished (its record is already stored); returns who was waiting for it.
    pub fn built(&mut self, record: ArtifactRecord, bytes: Option<Arc<Vec<u8>>>) -> Vec<(String, ModuleRequest)> {
        let key = record.key();
        self.building.remove(&key);
        if let Some(b) = bytes {
            self.remember(key.clone(), b);
        }
        self.records.insert(key.clone(), record);
        self.waiting.remove(&key).unwrap_or_default()
    }

    pub fn cached(&self, key: &Key) -> Option<Arc<Vec<u8>>> {
        self.cache.get(key).cloned()
    }

    pub fn remember(&mut self, key: Key, bytes: Arc<Vec<u8>>) {
        if self.cache.len() >= CACHED {
            self.cache.clear();
        }
        self.cache.insert(key, bytes);
    }
}

/// A finished build, reported to the cluster's owner over a channel.
#[derive(Debug)]
pub struct Built {
    pub key: Key,
    pub profile: EngineProfile,
    pub result: Result<Vec<u8>, String>,
}

/// Compiles queued jobs one at a time (Cranelift itself uses every core for one module) and reports each result
/// on `done`, until the queue closes (the cluster, which holds the only job sender, is dropped) or nobody
/// listens any more. It knows nothing of the cluster.
pub async fn run_builder(mut jobs: UnboundedReceiver<Job>, done: tokio::sync::mpsc::UnboundedSender<Built>) {
    let compiler = Arc::new(edge_engine::Compiler::new());
    while let Some(job) = jobs.recv().await {
        let (c, profile, wasm) = (compiler.clone(), job.profile, job.wasm.clone());
        let started = std::time::Instant::now();
        let result = match tokio::task::spawn_blocking(move || c.precompile(&profile, &wasm)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("the compiler crashed: {e}")),
        };
        match &result {
            Ok(bytes) => tracing::info!(
                module = %job.key.0, target = %job.profile.target, bytes = bytes.len(),
                ms = started.elapsed().as_millis() as u64, "precompiled an artifact"
            ),
            Err(e) => {
                tracing::warn!(module = %job.key.0, target = %job.profile.target, error = %e, "cannot precompile")
            }
        }
        if done.send(Built { key: job.key, profile: job.profile, result }).is_err() {
            return;
        }
    }
}
