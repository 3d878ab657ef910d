//! Node operations users ask for: cordon, drain, label. Each commits the node's record before answering.

use std::collections::{BTreeMap, HashSet};

use super::{Cluster, ClusterError};
use crate::model::NodeRecord;
use crate::store::Change;

impl Cluster {
    /// `edgectl cordon` / `uncordon`: whether the scheduler may place new instances on `name`.
    pub fn cordon(&mut self, name: &str, cordoned: bool) -> Result<(), ClusterError> {
        self.update_node(name, |n| n.cordoned = cordoned)?;
        self.pass_after_node_change();
        Ok(())
    }

    /// `edgectl drain`: cordons `name` and moves its reschedulable instances to other nodes.
    pub fn drain(&mut self, name: &str) -> Result<(), ClusterError> {
        self.update_node(name, |n| n.cordoned = true)?;
        self.reconcile_draining(&HashSet::from([name.to_string()]))
    }

    /// `edgectl label node`: sets and removes user labels (which override the agent's; the agent's own labels
    /// come from its configuration and return with its next hello).
    pub fn label(
        &mut self,
        name: &str,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    ) -> Result<(), ClusterError> {
        check_labels(&set)?;
        crate::api::bounds::label_removals(&remove)?;
        let mut labels = self.nodes.get(name).map(|n| n.user_labels.clone()).unwrap_or_default();
        for k in &remove {
            labels.remove(k);
        }
        labels.extend(set);
        // Bounded after the change, so that many small requests cannot grow a node's record either.
        crate::api::bounds::labels("label", &labels)
            .map_err(|e| ClusterError::Invalid(format!("node {}: {e}", crate::api::bounds::truncated(name))))?;
        self.update_node(name, |n| n.user_labels = labels)?;
        self.pass_after_node_change();
        Ok(())
    }

    /// The node change is committed; a pass that fails after it is retried by the next tick.
    fn pass_after_node_change(&mut self) {
        if let Err(e) = self.reconcile() {
            tracing::error!(error = %e, "pass after a node change failed; the next tick tries again");
        }
    }

    fn update_node(&mut self, name: &str, change: impl FnOnce(&mut NodeRecord)) -> Result<(), ClusterError> {
        let mut record = self.nodes.get(name).cloned().ok_or_else(|| node_not_found(name))?;
        change(&mut record);
        self.store.commit(&[Change::PutNode(&record)])?;
        self.nodes.insert(name.to_string(), record);
        Ok(())
    }
}

/// Label maps: at most 64 entries, keys and values of 1–63 and 0–63 bytes, no `=` (`crate::api::bounds`).
pub(crate) fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ClusterError> {
    crate::api::bounds::labels("label", labels)
}

/// `node NAME not found`, the name truncated (it comes from a path, of any length).
pub(crate) fn node_not_found(name: &str) -> ClusterError {
    ClusterError::NotFound(format!("node {} not found", crate::api::bounds::truncated(name)))
}
