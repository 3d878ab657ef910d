//! The operations users ask for on workloads, namespaces and modules. Each validates against the state,
//! commits, and runs a pass where placement may change; each returns only once its change is durable.
//!
//! Requests arrive already admitted (`crate::api::admission` turns a `DeployRequest` into a [`WorkloadSpec`]);
//! what needs the state (the module was uploaded, the namespace exists, its quota holds) is checked here.

use std::collections::BTreeSet;
use std::sync::Arc;

use edge_proto::EngineProfile;

use super::{check_name, Cluster, ClusterError, DEFAULT_NAMESPACE};
use crate::clock::now_ms;
use crate::model::{usage_of, workload_key, ModuleRecord, NamespaceRecord, Quota, WorkloadRecord, WorkloadSpec};
use crate::store::Change;

impl Cluster {
    /// Stores a module that was validated and hashed off the owner (`sha` is the hex sha256 of `bytes`), and
    /// queues its precompilation for every engine profile in the fleet. Returns whether it was new.
    pub fn put_module(&mut self, sha: String, bytes: Arc<Vec<u8>>) -> Result<bool, ClusterError> {
        if self.modules.contains_key(&sha) {
            return Ok(false);
        }
        let record = ModuleRecord { sha256: sha.clone(), size: bytes.len() as u64, uploaded_ms: now_ms() };
        self.store.put_module(&record, &bytes)?;
        self.modules.insert(sha.clone(), record);
        let profiles: BTreeSet<EngineProfile> = self.nodes.values().filter_map(|n| n.engine_profile).collect();
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

    /// The namespace part of [`Cluster::admit`] (it exists, its quota holds); a dry run checks this alone.
    pub(crate) fn admit_to_namespace(
        &self,
        namespace: &str,
        name: &str,
        spec: &WorkloadSpec,
    ) -> Result<(), ClusterError> {
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
        ClusterError::NotFound(format!(
            "namespace {namespace} not found (create it with: edgectl create namespace {namespace})"
        ))
    }

    /// Creates or updates `namespace/name` from an admitted spec. A new template is a new revision.
    pub fn deploy(&mut self, namespace: &str, name: &str, spec: WorkloadSpec) -> Result<(), ClusterError> {
        check_name("namespace", namespace)?;
        check_name("workload name", name)?;
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
        ClusterError::NotFound(format!("workload {name} not found in namespace {namespace}"))
    }
}
