//! How a node and the controller come to share the node's [`ReportKey`] without sending it.
//!
//! Both already hold what is needed after join: the node its own key pair and the cluster's public key
//! (pinned by the token's fingerprint); the controller the cluster key pair and the node's public key (sent
//! at join, bound to the token). Each side runs X25519 on the Montgomery forms of those ed25519 keys
//! (static-static Diffie-Hellman: `node_scalar * cluster_point == cluster_scalar * node_point`), and derives
//! the report key with HKDF-SHA256 over the shared point, both public keys and the node's name.
//!
//! Why this and not "the controller draws a random key and returns it in the join reply": the join exchange
//! runs over the controller's plain-HTTP API today, so a key sent in it is readable by anyone on the path,
//! for as long as the key lives. Here nothing secret crosses the wire; a passive eavesdropper of the join
//! learns nothing. It costs one X25519 scalar multiplication per node per process start (cache the result),
//! and no new dependency (curve25519-dalek is already under ed25519-dalek).
//!
//! Caveats, stated plainly:
//! - **Key reuse.** The same ed25519 key signs and does DH. That is the conversion libsodium and age use,
//!   and its safety has been analysed ("On using the same key pair for Ed25519 and an X25519 based KEM",
//!   eprint 2021/509), but dalek's own docs advise a separate key where one can help it.
//! - **No forward secrecy, no rotation by itself.** The key is fixed per (cluster key, node key, name):
//!   rotating either key pair rotates it. Whoever steals the cluster secret can compute every node's report
//!   key, but such a thief can already sign any node's desired state.
//! - The controller may still use [`ReportKey::from_bytes`] with a stored random key if the join exchange
//!   moves under TLS; both ends then just keep it.

use crate::key::{ClusterKey, NodeKey, PublicKey};
use crate::tag::{ReportKey, REPORT_KEY_LEN};
use curve25519_dalek::montgomery::MontgomeryPoint;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// HKDF salt: names this derivation, so the shared point is never reused for anything else by accident.
const SALT: &[u8] = b"edge-trust/report-key/v1";

/// Why no report key could be agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AgreeError {
    /// The shared point is the identity: the peer's key has small order. [`PublicKey::from_bytes`] already
    /// refuses such keys, so this is a second line of defence.
    #[error("key agreement produced no secret (peer key of small order)")]
    NoSecret,
}

impl ReportKey {
    /// The node's side: its own key, the cluster's public key, its own name.
    pub fn for_node(node_key: &NodeKey, cluster: &PublicKey, node_name: &str) -> Result<ReportKey, AgreeError> {
        derive(node_key, cluster, &cluster.to_bytes(), &node_key.public().to_bytes(), node_name)
    }

    /// The controller's side: the cluster key, the node's public key (from its join), the node's name.
    pub fn for_controller(
        cluster_key: &ClusterKey,
        node: &PublicKey,
        node_name: &str,
    ) -> Result<ReportKey, AgreeError> {
        derive(cluster_key, node, &cluster_key.public().to_bytes(), &node.to_bytes(), node_name)
    }
}

fn derive(
    own: &crate::KeyPair,
    peer: &PublicKey,
    cluster: &[u8; 32],
    node: &[u8; 32],
    node_name: &str,
) -> Result<ReportKey, AgreeError> {
    // `to_scalar_bytes` is the unclamped first half of SHA-512(secret); `mul_clamped` clamps it as X25519
    // does, giving the same scalar ed25519 signs with.
    let mut scalar = own.signing_key().to_scalar_bytes();
    let shared: MontgomeryPoint = peer.verifying_key().to_montgomery().mul_clamped(scalar);
    scalar.zeroize();
    let mut shared = shared.to_bytes();
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return Err(AgreeError::NoSecret);
    }

    // HKDF-SHA256 (RFC 5869) with one output block: PRK = HMAC(salt, IKM); OKM = HMAC(PRK, info | 0x01).
    let mut extract = <Hmac<Sha256> as Mac>::new_from_slice(SALT).expect("HMAC accepts keys of any length");
    extract.update(&shared);
    shared.zeroize();
    let mut prk = extract.finalize().into_bytes();
    let mut expand = <Hmac<Sha256> as Mac>::new_from_slice(&prk).expect("HMAC accepts keys of any length");
    prk.zeroize();
    expand.update(cluster);
    expand.update(node);
    expand.update(&(node_name.len() as u64).to_be_bytes());
    expand.update(node_name.as_bytes());
    expand.update(&[1]);
    let mut okm: [u8; REPORT_KEY_LEN] = expand.finalize().into_bytes().into();
    let key = ReportKey::from_bytes(&okm);
    okm.zeroize();
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::KeyPair;

    #[test]
    fn both_sides_derive_the_same_key() {
        let cluster = KeyPair::from_secret_bytes(&[1; 32]);
        let node = KeyPair::from_secret_bytes(&[2; 32]);
        let on_node = ReportKey::for_node(&node, &cluster.public(), "n1").unwrap();
        let on_controller = ReportKey::for_controller(&cluster, &node.public(), "n1").unwrap();
        let tag = on_node.tag(Context::HEARTBEAT, "n1", 1, b"hb");
        assert_eq!(on_controller.verify(Context::HEARTBEAT, "n1", 1, b"hb", &tag), Ok(()));
    }

    #[test]
    fn key_is_bound_to_name_node_and_cluster() {
        let cluster = KeyPair::from_secret_bytes(&[1; 32]);
        let node = KeyPair::from_secret_bytes(&[2; 32]);
        let tag = ReportKey::for_node(&node, &cluster.public(), "n1").unwrap().tag(Context::HEARTBEAT, "n1", 1, b"");
        let check = |key: ReportKey| key.verify(Context::HEARTBEAT, "n1", 1, b"", &tag).is_ok();
        // Another name for the same key pair (a node claiming to be another): a different report key.
        assert!(!check(ReportKey::for_controller(&cluster, &node.public(), "n2").unwrap()));
        // Another node, another cluster.
        let other = KeyPair::from_secret_bytes(&[3; 32]);
        assert!(!check(ReportKey::for_controller(&cluster, &other.public(), "n1").unwrap()));
        assert!(!check(ReportKey::for_controller(&other, &node.public(), "n1").unwrap()));
        assert!(check(ReportKey::for_controller(&cluster, &node.public(), "n1").unwrap()));
    }

    #[test]
    fn shared_point_matches_plain_x25519() {
        // The two sides' scalars times each other's base-point multiple: checks the conversion itself.
        let a = KeyPair::from_secret_bytes(&[8; 32]);
        let b = KeyPair::from_secret_bytes(&[9; 32]);
        let a_pub = MontgomeryPoint::mul_base_clamped(a.signing_key().to_scalar_bytes());
        assert_eq!(a_pub, a.public().verifying_key().to_montgomery());
        let ab = b.public().verifying_key().to_montgomery().mul_clamped(a.signing_key().to_scalar_bytes());
        let ba = a_pub.mul_clamped(b.signing_key().to_scalar_bytes());
        assert_eq!(ab, ba);
    }
}
