//! Module delivery: chunks of a module's WebAssembly bytes or of its artifact for the asking node's engine
//! profile, and the artifact builds that feed them.
//!
//! A node may ask only for an artifact of the profile it announced in its hello: a request naming another
//! profile is refused and builds nothing, so no client can make the controller compile for arbitrary profiles
//! (and the artifact records stay bounded, see `crate::artifacts::PROFILES_PER_MODULE`).

use std::collections::BTreeSet;
use std::sync::Arc;

use edge_proto::mcu::ModuleAbi;
use edge_proto::{Channel, EngineProfile, Message, ModuleChunk, ModuleReply, ModuleRequest};
use sha2::{Digest, Sha256};

use super::Cluster;
use crate::artifacts::{self, Built, Lookup};
use crate::clock::now_ms;
use crate::model::ArtifactRecord;

/// Modules' WebAssembly bytes kept in memory for chunked downloads.
const CACHED_MODULES: usize = 16;

impl Cluster {
    /// Queues builds of every module in use for `profile` (a node announced it).
    /// Only for the targets wasmtime runs, and only WASI modules: MCU nodes fetch WebAssembly bytes.
    pub(crate) fn build_for_profile(&mut self, profile: &EngineProfile) {
        if profile.target.runs() != Some(ModuleAbi::Wasi) {
            return;
        }
        let in_use: BTreeSet<String> =
            self.workloads.values().filter(|w| w.spec.abi == ModuleAbi::Wasi).map(|w| w.spec.module.clone()).collect();
        for sha in in_use {
            let (store, cache) = (&self.store, &self.module_cache);
            self.artifacts.want(&sha, profile, || module_bytes(store, cache, &sha));
        }
    }

    /// A build finished: store it, then answer the agents waiting for it.
    pub fn artifact_built(&mut self, built: Built) {
        let Built { key: (module, fingerprint), profile, result } = built;
        let record = ArtifactRecord {
            size: result.as_ref().map_or(0, |b| b.len() as u64),
            sha256: result.as_ref().map_or_else(|_| String::new(), |b| hex::encode(Sha256::digest(b))),
            error: result.as_ref().err().cloned(),
            module,
            fingerprint,
            profile,
            built_ms: now_ms(),
        };
        let bytes = result.ok().map(Arc::new);
        // Which engines cannot run which module may have changed: the next pass builds its snapshot afresh.
        self.sched = None;
        if let Err(e) = self.store.put_artifact(&record, bytes.as_deref().map(|b| b.as_slice())) {
            // Still serve what was built; it is compiled again after a restart.
            tracing::error!(error = %e, "cannot store an artifact");
        }
        for (node, request) in self.artifacts.built(record, bytes) {
            self.on_module_request(&node, request);
        }
    }

    pub(crate) fn module_bytes(&self, sha: &str) -> Option<Arc<Vec<u8>>> {
        module_bytes(&self.store, &self.module_cache, sha)
    }

    /// Serves one chunk of a module or of its artifact for the node's profile. An artifact still being built is
    /// answered when it is ready; one that cannot be built is refused with why.
    pub(crate) fn on_module_request(&mut self, node: &str, r: ModuleRequest) {
        let sha = hex::encode(r.module);
        let payload = match r.artifact {
            None => self.module_bytes(&sha).map(|b| {
                if !self.module_cache.contains_key(&sha) {
                    if self.module_cache.len() >= CACHED_MODULES {
                        self.module_cache.clear();
                    }
                    self.module_cache.insert(sha.clone(), b.clone());
                }
                (b, r.module)
            }),
            Some(profile) if self.nodes.get(node).and_then(|n| n.engine_profile) != Some(profile) => {
                let reason = "an artifact can only be requested for the engine profile the node announced";
                tracing::warn!(node, "module request for another engine profile refused");
                let reply = ModuleReply::Refused { module: r.module, artifact: r.artifact, reason: reason.into() };
                return self.send(node, Channel::ModuleChunk, &Message::ModuleReply(reply), false);
            }
            Some(profile) if self.modules.contains_key(&sha) => {
                let key = artifacts::key(&sha, &profile);
                match self.artifacts.lookup(&key) {
                    Lookup::Ready(record) => {
                        let bytes = self.artifacts.cached(&key).or_else(|| {
                            let b = self.store.artifact_bytes(&key.0, &key.1).ok().flatten().map(Arc::new);
                            if let Some(b) = &b {
                                self.artifacts.remember(key.clone(), b.clone());
                            }
                            b
                        });
                        let mut announced = [0u8; 32];
                        match (bytes, hex::decode_to_slice(&record.sha256, &mut announced)) {
                            (Some(b), Ok(())) => Some((b, announced)),
                            _ => None,
                        }
                    }
                    Lookup::Failed(reason) => {
                        let reply = ModuleReply::Refused { module: r.module, artifact: r.artifact, reason };
                        return self.send(node, Channel::ModuleChunk, &Message::ModuleReply(reply), false);
                    }
                    Lookup::Missing => {
                        let (store, cache) = (&self.store, &self.module_cache);
                        self.artifacts.want(&sha, &profile, || module_bytes(store, cache, &sha));
                        self.artifacts.wait(key, node, r);
                        return;
                    }
                }
            }
            Some(_) => None,
        };
        let reply = match payload {
            Some((b, hash)) => {
                // Offsets and lengths from the wire are clamped to the payload: no overflow, no over-read.
                let start = usize::try_from(r.offset).unwrap_or(usize::MAX).min(b.len());
                let len = (r.max_len.min(edge_proto::MODULE_CHUNK) as usize).min(b.len() - start);
                ModuleReply::Chunk(ModuleChunk {
                    module: r.module,
                    artifact: r.artifact,
                    sha256: hash,
                    offset: start as u64,
                    total: b.len() as u64,
                    data: b[start..start + len].to_vec(),
                })
            }
            None => ModuleReply::NotFound { module: r.module },
        };
        self.send(node, Channel::ModuleChunk, &Message::ModuleReply(reply), false);
    }
}

/// A module's WebAssembly bytes, from the cache or the store (read only when needed: a free function so it can
/// borrow the store while the artifacts are borrowed mutably).
fn module_bytes(
    store: &crate::store::Store,
    cache: &std::collections::HashMap<String, Arc<Vec<u8>>>,
    sha: &str,
) -> Option<Arc<Vec<u8>>> {
    if let Some(b) = cache.get(sha) {
        return Some(b.clone());
    }
    store.module_bytes(sha).ok().flatten().map(Arc::new)
}
