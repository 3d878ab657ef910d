//! What can go wrong in a cluster operation, in the cluster's own terms. The API maps each kind to an HTTP
//! status (`crate::api::error`); nothing here knows about HTTP.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A workload, node, namespace or revision that does not exist; the text names it and, where there is one,
    /// the fix.
    #[error("{0}")]
    NotFound(String),
    /// A request that cannot be carried out as asked (a bad name, a module never uploaded, …).
    #[error("{0}")]
    Invalid(String),
    /// Refused by policy: the namespace's quota would be exceeded.
    #[error("{0}")]
    Quota(String),
    /// The request contradicts the current state (e.g. deleting a node that is still Ready).
    #[error("{0}")]
    Conflict(String),
    /// The store refused a commit: nothing of the operation took effect.
    #[error("state store failure")]
    Store(#[from] StoreError),
}
