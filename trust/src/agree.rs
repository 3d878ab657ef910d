//! How a node and the controller come to share the node's [`ReportKey`] and its [`MqttPassword`] without
//! sending either.
//!
//! Both already hold what is needed after join: the node its own key pair and the cluster's public key
//! (pinned by the token's fingerprint); the controller the cluster key pair and the node's public key (sent
//! at join, bound to the token). Each side runs X25519 on the Montgomery forms of those ed25519 keys
//! (static-static Diffie-Hellman: `node_scalar * cluster_point == cluster_scalar * node_point`), and derives
//! the report key with HKDF-SHA256 over the shared point, both public keys and the node's name. The node's
//! MQTT password comes out of the same shared point under another HKDF salt (`edge-trust/mqtt-password/v1`),
//! so the controller can compute any member's plaintext password whenever it writes an external broker's
//! password file, and a password seen on the wire (MQTT sends it in clear without TLS) says nothing about the
//! report key. The controller's own MQTT password is HKDF of the cluster secret under a third label.
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
use crate::tag::ReportKey;
use alloc::string::String;
use core::fmt;
use curve25519_dalek::montgomery::MontgomeryPoint;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// HKDF salt of the report key: names this derivation, so the shared point is never reused for anything else
/// by accident.
const SALT: &[u8] = b"edge-trust/report-key/v1";
/// HKDF salt of a node's MQTT password: another label over the same shared point, so the password (which
/// travels in clear in every MQTT CONNECT until the broker speaks TLS) tells nothing about the report key.
const MQTT_PASSWORD_SALT: &[u8] = b"edge-trust/mqtt-password/v1";
/// HKDF salt of the controller's own MQTT password, derived from the cluster secret alone.
const CONTROLLER_PASSWORD_SALT: &[u8] = b"edge-trust/controller-mqtt-password/v1";
/// Bytes of an MQTT password before hex: 128 bits, as many as a join token's secret.
const MQTT_PASSWORD_BYTES: usize = 16;

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
        let mut okm = derive(SALT, node_key, cluster, &cluster.to_bytes(), &node_key.public().to_bytes(), node_name)?;
        let key = ReportKey::from_bytes(&okm);
        okm.zeroize();
        Ok(key)
    }

    /// The controller's side: the cluster key, the node's public key (from its join), the node's name.
    pub fn for_controller(
        cluster_key: &ClusterKey,
        node: &PublicKey,
        node_name: &str,
    ) -> Result<ReportKey, AgreeError> {
        let mut okm = derive(SALT, cluster_key, node, &cluster_key.public().to_bytes(), &node.to_bytes(), node_name)?;
        let key = ReportKey::from_bytes(&okm);
        okm.zeroize();
        Ok(key)
    }
}

/// A node's MQTT password (32 lowercase hex digits), derived rather than chosen: both ends compute it from the
/// keys they hold after join, like the [`ReportKey`] but under its own HKDF label. The controller can so
/// write any member's password into an external broker's password file (Mosquitto wants a salted hash of
/// the plaintext, not a hash the node sent) and nothing secret crosses the join. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttPassword(String);

impl MqttPassword {
    /// The node's side: its own key, the cluster's public key, its own name.
    pub fn for_node(node_key: &NodeKey, cluster: &PublicKey, node_name: &str) -> Result<MqttPassword, AgreeError> {
        let okm = derive(
            MQTT_PASSWORD_SALT,
            node_key,
            cluster,
            &cluster.to_bytes(),
            &node_key.public().to_bytes(),
            node_name,
        )?;
        Ok(MqttPassword::from_okm(okm))
    }

    /// The controller's side: the cluster key, the node's public key (from its join), the node's name.
    pub fn for_controller(
        cluster_key: &ClusterKey,
        node: &PublicKey,
        node_name: &str,
    ) -> Result<MqttPassword, AgreeError> {
        let okm = derive(
            MQTT_PASSWORD_SALT,
            cluster_key,
            node,
            &cluster_key.public().to_bytes(),
            &node.to_bytes(),
            node_name,
        )?;
        Ok(MqttPassword::from_okm(okm))
    }

    /// The controller's own password on an external broker: HKDF of the cluster secret under its own label,
    /// so it needs no configuration and changes only with the cluster key.
    pub fn of_controller(cluster_key: &ClusterKey) -> MqttPassword {
        let okm = hkdf(CONTROLLER_PASSWORD_SALT, cluster_key.secret_bytes(), &[&cluster_key.public().to_bytes()]);
        MqttPassword::from_okm(okm)
    }

    /// The password as sent in MQTT CONNECT.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The password, for storing it.
    pub fn into_string(self) -> String {
        self.0
    }

    fn from_okm(mut okm: [u8; 32]) -> MqttPassword {
        let mut s = String::with_capacity(2 * MQTT_PASSWORD_BYTES);
        // Writing into a String cannot fail.
        let _ = crate::hex::write(&mut s, &okm[..MQTT_PASSWORD_BYTES]);
        okm.zeroize();
        MqttPassword(s)
    }
}

impl fmt::Debug for MqttPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MqttPassword(<redacted>)")
    }
}

/// X25519 of `own` and `peer`, then HKDF under `salt` over (cluster key, node key, name): 32 bytes.
fn derive(
    salt: &[u8],
    own: &crate::KeyPair,
    peer: &PublicKey,
    cluster: &[u8; 32],
    node: &[u8; 32],
    node_name: &str,
) -> Result<[u8; 32], AgreeError> {
    // `to_scalar_bytes` is the unclamped first half of SHA-512(secret); `mul_clamped` clamps it as X25519
    // does, giving the same scalar ed25519 signs with.
    let mut scalar = own.signing_key().to_scalar_bytes();
    let shared: MontgomeryPoint = peer.verifying_key().to_montgomery().mul_clamped(scalar);
    scalar.zeroize();
    let mut shared = shared.to_bytes();
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return Err(AgreeError::NoSecret);
    }
    let okm = hkdf(salt, &shared, &[cluster, node, &(node_name.len() as u64).to_be_bytes(), node_name.as_bytes()]);
    shared.zeroize();
    Ok(okm)
}

/// HKDF-SHA256 (RFC 5869) with one output block: PRK = HMAC(salt, IKM); OKM = HMAC(PRK, info | 0x01).
fn hkdf(salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> [u8; 32] {
    let mut extract = <Hmac<Sha256> as Mac>::new_from_slice(salt).expect("HMAC accepts keys of any length");
    extract.update(ikm);
    let mut prk = extract.finalize().into_bytes();
    let mut expand = <Hmac<Sha256> as Mac>::new_from_slice(&prk).expect("HMAC accepts keys of any length");
    prk.zeroize();
    for part in info {
        expand.update(part);
    }
    expand.update(&[1]);
    expand.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::KeyPair;
    use alloc::string::String;

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
    fn both_sides_derive_the_same_mqtt_password_bound_to_name_node_and_cluster() {
        let cluster = KeyPair::from_secret_bytes(&[1; 32]);
        let node = KeyPair::from_secret_bytes(&[2; 32]);
        let on_node = MqttPassword::for_node(&node, &cluster.public(), "n1").unwrap();
        assert_eq!(on_node, MqttPassword::for_controller(&cluster, &node.public(), "n1").unwrap());
        let s = on_node.as_str();
        assert_eq!(s.len(), 32);
        assert!(s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{s}");
        let other = KeyPair::from_secret_bytes(&[3; 32]);
        for different in [
            MqttPassword::for_controller(&cluster, &node.public(), "n2").unwrap(),
            MqttPassword::for_controller(&cluster, &other.public(), "n1").unwrap(),
            MqttPassword::for_controller(&other, &node.public(), "n1").unwrap(),
            MqttPassword::of_controller(&cluster),
        ] {
            assert_ne!(on_node, different);
        }
        // Pinned, computed outside this code (Python's `cryptography`: X25519 on the Montgomery forms, HKDF):
        // a node and a controller of different versions must keep agreeing.
        assert_eq!(s, "7faadc9d9321a461c4e7ede434cefbcc");
    }

    #[test]
    fn the_mqtt_password_is_not_report_key_material() {
        // The same shared point under both labels: the password is neither the report key's first half nor a
        // tag under it, so a password read off the wire forges no report.
        let cluster = KeyPair::from_secret_bytes(&[1; 32]);
        let node = KeyPair::from_secret_bytes(&[2; 32]);
        let password = MqttPassword::for_node(&node, &cluster.public(), "n1").unwrap();
        let report =
            derive(SALT, &node, &cluster.public(), &cluster.public().to_bytes(), &node.public().to_bytes(), "n1")
                .unwrap();
        let mut report_hex = String::new();
        crate::hex::write(&mut report_hex, &report).unwrap();
        assert!(!report_hex.contains(password.as_str()));
        let from_password = ReportKey::from_bytes(&{
            let mut k = [0u8; 32];
            k[..32].copy_from_slice(&password.as_str().as_bytes()[..32]);
            k
        });
        let tag = ReportKey::for_node(&node, &cluster.public(), "n1").unwrap().tag(Context::HEARTBEAT, "n1", 1, b"");
        assert!(from_password.verify(Context::HEARTBEAT, "n1", 1, b"", &tag).is_err());
        assert!(!alloc::format!("{password:?}").contains(password.as_str()));
    }

    #[test]
    fn the_controller_password_is_fixed_per_cluster_key() {
        let cluster = KeyPair::from_secret_bytes(&[1; 32]);
        assert_eq!(MqttPassword::of_controller(&cluster), MqttPassword::of_controller(&cluster.clone()));
        assert_ne!(
            MqttPassword::of_controller(&cluster),
            MqttPassword::of_controller(&KeyPair::from_secret_bytes(&[4; 32]))
        );
        // Pinned likewise: HKDF-SHA256(salt = label, IKM = the cluster secret, info = its public key).
        assert_eq!(MqttPassword::of_controller(&cluster).as_str(), "0e65b2dfde38a408daeab1a3f09aff94");
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
