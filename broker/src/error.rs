//! Error types, one per operation.

use std::net::SocketAddr;

/// Why [`crate::Broker::bind`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("no tokio runtime: the broker spawns its tasks on the caller's runtime")]
    NoRuntime,
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Why an operation on a local link failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    #[error("invalid client id (empty or longer than {max} bytes)")]
    InvalidClientId { max: usize },
    #[error("invalid topic name")]
    InvalidTopic,
    #[error("invalid topic filter")]
    InvalidFilter,
    #[error("payload of {size} bytes exceeds the broker's maximum packet size of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("subscription refused (the per-session subscription bound is reached)")]
    SubscriptionRefused,
    #[error("the local link is closed (its receiver was dropped, another local link took its client id, or the broker shut down)")]
    Closed,
    #[error("the broker refused the local link ({0:?})")]
    Refused(crate::Refusal),
}
