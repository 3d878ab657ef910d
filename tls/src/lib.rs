//! `edge-tls`: TLS for the controller's API and MQTT listeners, and for the clients that talk to them.
//!
//! **The cluster CA is the cluster key.** The root certificate is self-signed by the cluster's ed25519 key
//! (`cluster.key`), whose fingerprint every join token already carries and `edge-controller` prints at start.
//! So a client pins the cluster, not a certificate: an agent holding a join token, or `edgectl` holding the
//! fingerprint or the CA file, accepts exactly the servers whose certificate chain ends in a certificate of
//! that key ([`verify::Pinned`]), whatever name or address it dialled, and needs no other trust store. The
//! key's other use, signing desired state, is domain-separated from certificates: its documents start with the
//! byte 0x01 (`edge_trust`'s frame), a TBSCertificate with 0x30 (a DER SEQUENCE).
//!
//! - [`ca`]: the root certificate and the short-lived server identities it issues (a fresh P-256 key each start).
//! - [`verify`]: the pinned verifier and the client configs built on it.
//! - [`server_config`]: a rustls server config for an identity.

pub mod ca;
pub mod verify;

use std::sync::Arc;

pub use ca::{ClusterCa, ServerIdentity};
pub use rustls;
pub use tokio_rustls;
pub use verify::{client_config, fingerprint_of_ca_pem, pin_from, Pinned};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make a certificate: {0}")]
    Certificate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("{0}")]
    CaFile(String),
}

/// Makes ring the process's default rustls provider, once (later calls do nothing). Needed before any
/// `reqwest::Client::new()` in a process whose reqwest has rustls without a provider of its own (edgectl's, and
/// through feature unification every reqwest of this workspace's test builds).
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The crypto provider every config here uses (ring), so no process-wide default need be installed.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config presenting `identity` (its chain ends with the cluster root), TLS 1.2 and 1.3, no client
/// certificates (clients authenticate inside the protocol: bearer tokens, MQTT logins).
pub fn server_config(identity: &ServerIdentity, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
