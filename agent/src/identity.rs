//! The node's identity in its cluster: its name, the cluster key it pinned when it joined, and the MQTT
//! password derived at join (`edge_trust::MqttPassword`). Kept in the agent's store ([`crate::store`], table
//! `identity`) from the join on.
//!
//! [`establish`] makes the one decision each start needs:
//! - an identity is stored: use it (a `--join` given again is logged and ignored); one stored for another
//!   node name than `--node` is an error naming both, never a silent second identity;
//! - none is stored and a token was given: join ([`crate::join`]) and store what the controller accepted;
//! - neither: `None`, and the agent connects anonymously as before (an open broker keeps working).
//!
//! The cluster key is what signed specs will be checked against; it comes only from an acceptance verified
//! under the token's fingerprint.

use std::fmt;
use std::path::Path;

use edge_trust::{Fingerprint, KeyError, PublicKey};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::AgentConfig;
use crate::error::AgentError;
use crate::join::{self, JoinError};
use crate::store::Store;

/// Who this node is to its cluster. `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The node's name: its MQTT username and client id.
    pub node: String,
    /// The cluster's ed25519 public key, pinned at join (it matched the token's fingerprint).
    pub cluster_key: [u8; 32],
    /// The MQTT password (32 lowercase hex digits), derived from the node key and the cluster key.
    pub password: String,
}

impl Identity {
    /// The pinned cluster key, checked to be usable (it was checked at join; a store edited since is caught).
    pub fn cluster_key(&self) -> Result<PublicKey, KeyError> {
        PublicKey::from_bytes(&self.cluster_key)
    }

    /// The fingerprint of the pinned cluster key, as a join token prints it.
    pub fn cluster_fingerprint(&self) -> Option<Fingerprint> {
        self.cluster_key().ok().map(|k| k.fingerprint())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("node", &self.node)
            .field("cluster", &self.cluster_fingerprint())
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The identity stored in `data_dir`, if the node joined. Opens the store and closes it again.
pub fn load(data_dir: &Path) -> Result<Option<Identity>, AgentError> {
    Ok(Store::open(data_dir)?.identity()?)
}

/// The identity to connect with (see the module doc): the stored one, a new one from joining with
/// `config.join`, or `None` (anonymous). Joining waits at most [`join::JOIN_TIMEOUT`] for the controller and
/// ends early with [`JoinError::Stopped`] when `shutdown` turns true.
pub async fn establish(
    config: &AgentConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Identity>, AgentError> {
    // Closed before the join's network wait and before the node opens the store for itself.
    let stored = load(&config.data_dir)?;
    if let Some(identity) = stored {
        if identity.node != config.node {
            return Err(AgentError::OtherNode {
                dir: config.data_dir.display().to_string(),
                stored: identity.node,
                node: config.node.clone(),
            });
        }
        if config.join.is_some() {
            tracing::info!("already joined as {}; --join ignored", identity.node);
        }
        return Ok(Some(identity));
    }
    let Some(token) = &config.join else { return Ok(None) };
    edge_proto::validate_name(&config.node)
        .map_err(|e| AgentError::Config(format!("node name {:?}: {e}", config.node)))?;
    let identity = join::join(config, token, join::JOIN_TIMEOUT, shutdown).await?;
    Store::open(&config.data_dir)?.put_identity(&identity)?;
    tracing::info!(
        node = %identity.node,
        cluster = %identity.cluster_fingerprint().map(|f| f.to_string()).unwrap_or_default(),
        "joined the cluster"
    );
    Ok(Some(identity))
}

/// Whether `e` is a join that ended because the agent is shutting down (not a failure to report).
pub fn stopped(e: &AgentError) -> bool {
    matches!(e, AgentError::Join(JoinError::Stopped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(node: &str) -> Identity {
        Identity { node: node.into(), cluster_key: [9; 32], password: "0123456789abcdef".repeat(2) }
    }

    #[test]
    fn debug_never_prints_the_password() {
        let printed = format!("{:?}", identity("pi-1"));
        assert!(printed.contains("pi-1") && printed.contains("<redacted>"), "{printed}");
        assert!(!printed.contains("0123456789abcdef"), "{printed}");
    }

    #[tokio::test]
    async fn without_identity_or_token_the_node_stays_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let config = AgentConfig::new("pi-1", "127.0.0.1", 1, dir.path().to_path_buf());
        let (_tx, mut rx) = watch::channel(false);
        assert_eq!(establish(&config, &mut rx).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_stored_identity_wins_over_a_token_and_another_node_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path()).unwrap().put_identity(&identity("pi-1")).unwrap();
        let mut config = AgentConfig::new("pi-1", "127.0.0.1", 1, dir.path().to_path_buf());
        // Not even parsed: the broker on port 1 is never asked either.
        config.join = Some("not a token".into());
        let (_tx, mut rx) = watch::channel(false);
        assert_eq!(establish(&config, &mut rx).await.unwrap(), Some(identity("pi-1")));
        config.node = "pi-2".into();
        let e = establish(&config, &mut rx).await.unwrap_err().to_string();
        assert!(e.contains("\"pi-1\"") && e.contains("\"pi-2\""), "{e}");
    }
}
