//! The operations users ask for on workloads, namespaces and modules. Each validates against the state,
//! commits, and runs a pass where placement may change; each returns only once its change is durable.
//!
//! Requests arrive already admitted (`crate::api::admission` turns a `DeployRequest` into a [`WorkloadSpec`]);
//! what needs the state (the module was uploaded, the namespace exists, its quota holds, some Ready node has
//! the memory asked for) and the rule that one instance fits well inside its node's spec message
//! (`crate::spec_size`) are checked here.

use std::collections::BTreeSet;
use std::sync::Arc;

use edge_proto::mcu::ModuleAbi;
use edge_proto::EngineProfile;

use super::{check_name, Cluster, ClusterError, DEFAULT_NAMESPACE};
use crate::api::bounds::truncated;
use crate::clock::now_ms;
use crate::model::{usage_of, workload_key, ModuleRecord, NamespaceRecord, Quota, WorkloadRecord, WorkloadSpec};
use crate::spec_size::INSTANCE_BUDGET;
use crate::store::Change;
use crate::validate::ModuleClass;

impl Cluster {
    /// Stores a module that was validated and hashed off the owner (`sha` is the hex sha256 of `bytes`), and
    /// queues its precompilation for every engine profile in the fleet. Returns whether it was new.
    /// `class` is what validation found it written for; only WASI modules are precompiled (MCU nodes fetch
    /// WebAssembly bytes).
    pub fn put_module(&mut self, sha: String, bytes: Arc<Vec<u8>>, class: ModuleClass) -> Result<bool, ClusterError> {
        if self.modules.contains_key(&sha) {
            return Ok(false);
        }
        let record = ModuleRecord {
            sha256: sha.clone(),
            size: bytes.len() as u64,
            uploaded_ms: now_ms(),
            abi: class.abi,
            mcu_memory_bytes: class.mcu_memory_bytes,
        };
        self.store.put_module(&record, &bytes)?;
        self.modules.insert(sha.clone(), record);
        if class.abi != ModuleAbi::Wasi {
            return Ok(true);
        }
        let profiles: BTreeSet<EngineProfile> = self
            .nodes
            .values()
            .filter_map(|n| n.engine_profile)
            .filter(|p| p.target.runs() == Some(ModuleAbi::Wasi))
            .collect();
        for profile in profiles {
            self.artifacts.want(&sha, &profile, || Some(bytes.clone()));
        }
        Ok(true)
    }

    /// Creates `name`, or replaces its quota. Returns whether it was created.
    pub fn put_namespace(&mut self, name: &str, quota: Quota) -> Result<bool, ClusterError> {
        check_name("namespace", name)?;
        let created = !self.namespaces.contains_key(name);
        let record = NamespaceRecord {
            name: name.to_string(),
            quota,
            created_ms: self.namespaces.get(name).map_or_else(now_ms, |n| n.created_ms),
        };
        self.store.commit(&[Change::PutNamespace(&record)])?;
        self.namespaces.insert(name.to_string(), record);
        Ok(created)
    }

    /// `spec` with what its module decides: its host ABI (so the scheduler matches engines), and for an MCU-ABI
    /// module the memory an instance takes (linear memory plus wasmi's share), whatever the request said: a
    /// default sized for Linux boards would fit no microcontroller. A module not uploaded changes nothing.
    pub(crate) fn fit_to_module(&self, mut spec: WorkloadSpec) -> WorkloadSpec {
        if let Some(m) = self.modules.get(&spec.module) {
            spec.abi = m.abi;
            if m.abi == ModuleAbi::Mcu {
                spec.memory_bytes = m.mcu_memory_bytes;
                spec.memory_limit_bytes = None;
            }
        }
        spec
    }

    /// Refuses a deploy of `spec` as `namespace/name` that the namespace does not exist for or whose quota it
    /// would exceed (counting `spec` in place of the workload's current spec).
    fn admit(&self, namespace: &str, name: &str, spec: &WorkloadSpec) -> Result<(), ClusterError> {
        if !self.modules.contains_key(&spec.module) {
            return Err(ClusterError::Invalid(format!(
                "module {} has not been uploaded (POST /v1/modules)",
                spec.module
            )));
        }
        self.admit_to_namespace(namespace, name, spec)
    }

    /// What [`Cluster::admit`] checks besides the module, which a dry run checks alone: one instance fits its
    /// budget of a node's spec, some Ready node has the memory asked for, the namespace exists and its quota
    /// holds.
    pub(crate) fn admit_to_namespace(
        &self,
        namespace: &str,
        name: &str,
        spec: &WorkloadSpec,
    ) -> Result<(), ClusterError> {
        // Every instance goes out in its node's spec, one retained MQTT message: one that could not fit would
        // leave its node unable to receive any spec at all (see `crate::spec_size`).
        let bytes = crate::spec_size::instance_bytes(namespace, name, spec);
        if bytes > INSTANCE_BUDGET {
            return Err(ClusterError::Invalid(format!(
                "one instance of {name} would take {bytes} bytes of its node's spec, above the limit of \
                 {INSTANCE_BUDGET} (env, args and volumes take most of it)"
            )));
        }
        let Some(ns) = self.namespaces.get(namespace) else {
            if namespace == DEFAULT_NAMESPACE {
                return Ok(());
            }
            return Err(self.namespace_not_found(namespace));
        };
        let others = self.workloads.values().filter(|w| w.namespace == namespace && w.name != name).map(|w| &w.spec);
        match ns.quota.exceeded_by(usage_of(others.chain([spec]))) {
            Some(what) => Err(ClusterError::Quota(format!(
                "deploying {name} would exceed the quota of namespace {namespace}: {what}"
            ))),
            None => Ok(()),
        }
    }

    pub(crate) fn namespace_not_found(&self, namespace: &str) -> ClusterError {
        let namespace = truncated(namespace);
        ClusterError::NotFound(format!(
            "namespace {namespace} not found (create it with: edgectl create namespace {namespace})"
        ))
    }

    /// Creates or updates `namespace/name` from an admitted spec. A new template is a new revision.
    pub fn deploy(&mut self, namespace: &str, name: &str, spec: WorkloadSpec) -> Result<(), ClusterError> {
        check_name("namespace", namespace)?;
        check_name("workload name", name)?;
        let spec = self.fit_to_module(spec);
        self.admit(namespace, name, &spec)?;
        let key = workload_key(namespace, name);
        let previous = self.workloads.get(&key).cloned();
        let record = match previous.clone() {
            Some(mut w) => {
                if !w.spec.same_template(&spec) {
                    w.revision = w.revision.saturating_add(1);
                    w.remember(w.revision, &spec, now_ms());
                }
                w.spec = spec;
                w
            }
            None => {
                let mut w = WorkloadRecord {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    spec,
                    revision: 1,
                    instances: Vec::new(),
                    created_ms: now_ms(),
                    history: Vec::new(),
                };
                w.remember(1, &w.spec.clone(), w.created_ms);
                w
            }
        };
        self.workloads.insert(key.clone(), record);
        if let Err(e) = self.reconcile_only(&BTreeSet::from([key.clone()]), Some(&key)) {
            // Keep memory equal to the store: undo the change that could not be committed.
            match previous {
                Some(w) => self.workloads.insert(key, w),
                None => self.workloads.remove(&key),
            };
            return Err(e);
        }
        Ok(())
    }

    /// `edgectl rollout undo`: rolls out the stored template of revision `to` (default: the last one before the
    /// current that differs from it) as a new revision, keeping the current replica count.
    pub fn rollout_undo(&mut self, namespace: &str, name: &str, to: Option<u64>) -> Result<(), ClusterError> {
        let w = self.workloads.get(&workload_key(namespace, name)).ok_or_else(|| self.not_found(namespace, name))?;
        let target = match to {
            Some(r) => w.history.iter().find(|h| h.revision == r),
            None => w.history.iter().rev().find(|h| h.revision < w.revision && !h.spec.same_template(&w.spec)),
        };
        let Some(target) = target else {
            return Err(ClusterError::Invalid(match to {
                Some(r) => format!("workload {name} has no revision {r} in its history"),
                None => format!("workload {name} has no earlier revision to go back to"),
            }));
        };
        let spec = WorkloadSpec { replicas: w.spec.replicas, labels: w.spec.labels.clone(), ..target.spec.clone() };
        self.deploy(namespace, name, spec)
    }

    /// Deletes a workload. Once the delete is committed it has happened: a pass that fails afterwards is
    /// retried by the next tick, and does not turn the answer into a failure.
    pub fn delete(&mut self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        let key = workload_key(namespace, name);
        let Some(previous) = self.workloads.remove(&key) else {
            return Err(self.not_found(namespace, name));
        };
        if let Err(e) = self.store.commit(&[Change::DeleteWorkload(key.clone())]) {
            self.workloads.insert(key, previous);
            return Err(e.into());
        }
        self.logs.forget(&key);
        self.workload_events.remove(&key);
        if let Err(e) = self.reconcile_only(&BTreeSet::from([key.clone()]), None) {
            tracing::error!(error = %e, workload = %key, "pass after a delete failed; the next tick tries again");
        }
        Ok(())
    }

    pub(crate) fn not_found(&self, namespace: &str, name: &str) -> ClusterError {
        if namespace != DEFAULT_NAMESPACE && !self.namespaces.contains_key(namespace) {
            return self.namespace_not_found(namespace);
        }
        ClusterError::NotFound(format!("workload {} not found in namespace {}", truncated(name), truncated(namespace)))
    }
}
