//! The agent's error type.

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Join(#[from] crate::join::JoinError),
    /// The data directory belongs to another node: one directory holds one identity.
    #[error(
        "the data directory {dir} holds the identity of node {stored:?}, not {node:?} \
         (run it as --node {stored}, or give this node another --data)"
    )]
    OtherNode { dir: String, stored: String, node: String },
}
