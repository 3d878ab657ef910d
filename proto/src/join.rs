//! Joining a cluster with a join token, over MQTT (see `ARCHITECTURE.md`, "Trust").
//!
//! A new node holds a join token (`EJ1<fingerprint>::<id>.<secret>`, made by `edgectl token create`). It makes
//! its own key pair on the device, connects as `join.<id>` (password: the secret in hex), subscribes to
//! [`reply_topic`] and publishes a [`JoinRequest`] on [`request_topic`]. The controller checks the token
//! (known, not expired, uses left, node name allowed), registers the node with its public key, and answers with
//! a [`JoinReply`]: `Accepted`, signed by the cluster key, or `Refused` with the reason. The node checks that
//! the cluster key matches the token's fingerprint and the signature verifies before it trusts anything; from
//! then on it connects as itself (username and client id: its name).
//!
//! The node's MQTT password is not chosen and not sent: both ends derive it from the node's key and the
//! cluster key (`edge_trust::MqttPassword`), so the controller can write it into an external broker's password
//! file whenever it needs to. The request carries the token secret as well as the MQTT login: a broker that
//! does not know tokens (an external Mosquitto with a stale password file) lets the controller check it all
//! the same. Nothing in either message is secret beyond the token, which is single-use by default.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

/// Bytes of a token id, as in `edge-trust`.
pub const TOKEN_ID_LEN: usize = 8;
/// Bytes of a token secret, as in `edge-trust`.
pub const TOKEN_SECRET_LEN: usize = 16;
/// The MQTT username prefix of a joining node: `join.<token id in hex>`.
pub const JOIN_USER_PREFIX: &str = "join.";

/// A node asks to join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub token_id: [u8; TOKEN_ID_LEN],
    pub token_secret: [u8; TOKEN_SECRET_LEN],
    /// The name the node asks for (its MQTT username and client id from now on).
    pub node: String,
    /// The node's ed25519 public key, made on the device. With the cluster key it fixes the node's MQTT
    /// password (see the module doc).
    pub node_key: [u8; 32],
}

/// The controller's answer on the reply topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinReply {
    /// Registered. `signature` is the cluster key's ed25519 signature (context `edge/join/v1`) over
    /// [`accepted_body`]: the node checks it against `cluster_key`, and `cluster_key` against its token.
    Accepted {
        node: String,
        cluster_key: [u8; 32],
        signature: Vec<u8>,
    },
    Refused(JoinRefusal),
}

/// Why a join was refused. Each reads as one line after "join token refused: ".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinRefusal {
    /// The token's uses are spent.
    Used,
    /// The token's time is up.
    Expired,
    /// No such token, or its secret does not match (a deleted token reads the same).
    Unknown,
    /// The token was made for another node name.
    WrongNode { allowed: String },
    /// The name is not a valid node name.
    InvalidName { reason: String },
    /// A node of this name already joined with another key (delete it first: `edgectl delete node NAME`).
    NameTaken,
    /// The controller could not register the node (its store failed); try again.
    Unavailable,
    /// The node key in the request is not a usable ed25519 public key (not a point, or of small order).
    BadKey,
}

impl fmt::Display for JoinRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinRefusal::Used => f.write_str("the token was already used (make another: edgectl token create)"),
            JoinRefusal::Expired => f.write_str("the token has expired (make another: edgectl token create)"),
            JoinRefusal::Unknown => f.write_str("unknown token (the controller does not know it; was it deleted?)"),
            JoinRefusal::WrongNode { allowed } => write!(f, "the token is for node {allowed:?} only"),
            JoinRefusal::InvalidName { reason } => {
                f.write_str("invalid node name: ")?;
                escaped(f, reason)
            }
            JoinRefusal::NameTaken => {
                f.write_str("a node of this name already joined with another key (edgectl delete node NAME first)")
            }
            JoinRefusal::Unavailable => f.write_str("the controller cannot register nodes right now; try again"),
            JoinRefusal::BadKey => f.write_str("the node key is not a usable ed25519 public key"),
        }
    }
}

/// Writes `text` from the wire with its control characters escaped (`\n`, `\u{1b}`): a refusal is unsigned, so
/// whoever can publish on the reply topic chooses its text, and it must still print as one line.
fn escaped(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for c in text.chars() {
        if c.is_control() {
            write!(f, "{}", c.escape_default())?;
        } else {
            fmt::Write::write_char(f, c)?;
        }
    }
    Ok(())
}

/// What the cluster key signs in `JoinReply::Accepted`: the node's name, its key and the token used.
pub fn accepted_body(node: &str, node_key: &[u8; 32], token_id: &[u8; TOKEN_ID_LEN]) -> Vec<u8> {
    // Plain data into a Vec: postcard cannot fail here.
    postcard::to_allocvec(&(node, node_key, token_id)).unwrap_or_default()
}

/// `{prefix}/join/{id}/request`: the joining node publishes here, the controller subscribes.
pub fn request_topic(prefix: &str, token_id: &[u8; TOKEN_ID_LEN]) -> String {
    format!("{}/join/{}/request", prefix.trim_end_matches('/'), hex(token_id))
}

/// `{prefix}/join/{id}/reply`: the controller answers here, only the joining node may subscribe.
pub fn reply_topic(prefix: &str, token_id: &[u8; TOKEN_ID_LEN]) -> String {
    format!("{}/join/{}/reply", prefix.trim_end_matches('/'), hex(token_id))
}

/// The filter matching every join request, for the controller.
pub fn all_requests(prefix: &str) -> String {
    format!("{}/join/+/request", prefix.trim_end_matches('/'))
}

/// The token id (lowercase hex) of a join topic of either kind, with the kind's last level.
pub fn parse_topic<'t>(prefix: &str, topic: &'t str) -> Option<(&'t str, &'t str)> {
    let rest = topic.strip_prefix(prefix.trim_end_matches('/'))?.strip_prefix("/join/")?;
    let (id, kind) = rest.split_once('/')?;
    let hex_ok = id.len() == 2 * TOKEN_ID_LEN && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex_ok && (kind == "request" || kind == "reply")).then_some((id, kind))
}

/// The MQTT username of a joining node.
pub fn join_username(token_id: &[u8; TOKEN_ID_LEN]) -> String {
    format!("{JOIN_USER_PREFIX}{}", hex(token_id))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_foreign_ones_are_ignored() {
        let id = [0xab, 0, 1, 2, 3, 4, 5, 0xff];
        assert_eq!(request_topic("edge/v1/", &id), "edge/v1/join/ab000102030405ff/request");
        assert_eq!(parse_topic("edge/v1", &request_topic("edge/v1", &id)), Some(("ab000102030405ff", "request")));
        assert_eq!(parse_topic("edge/v1", &reply_topic("edge/v1", &id)), Some(("ab000102030405ff", "reply")));
        for bad in [
            "edge/v1/join/AB00010203040506/request",
            "edge/v1/join/ab000102030405/request",
            "edge/v1/join/ab00010203040506/other",
            "edge/v1/join/ab00010203040506",
            "other/join/ab00010203040506/request",
        ] {
            assert_eq!(parse_topic("edge/v1", bad), None, "{bad}");
        }
        assert_eq!(join_username(&id), "join.ab000102030405ff");
    }

    #[test]
    fn a_join_request_encodes_as_pinned() {
        // postcard: two fixed arrays, the name (length-prefixed), the key. No password of any kind.
        let request = JoinRequest { token_id: [1; 8], token_secret: [2; 16], node: "pi-1".into(), node_key: [3; 32] };
        let bytes = postcard::to_allocvec(&request).unwrap();
        let mut expected = Vec::new();
        expected.extend_from_slice(&[1; 8]);
        expected.extend_from_slice(&[2; 16]);
        expected.extend_from_slice(b"\x04pi-1");
        expected.extend_from_slice(&[3; 32]);
        assert_eq!(bytes, expected);
        assert_eq!(postcard::from_bytes::<JoinRequest>(&bytes).unwrap(), request);
    }

    #[test]
    fn every_refusal_reads_as_one_line() {
        for r in [
            JoinRefusal::Used,
            JoinRefusal::Expired,
            JoinRefusal::Unknown,
            JoinRefusal::WrongNode { allowed: "pi-1".into() },
            JoinRefusal::InvalidName { reason: "contains '/'".into() },
            JoinRefusal::InvalidName { reason: "forged\r\nsecond line \u{1b}[31m".into() },
            JoinRefusal::NameTaken,
            JoinRefusal::Unavailable,
            JoinRefusal::BadKey,
        ] {
            let s = alloc::string::ToString::to_string(&r);
            assert!(!s.is_empty() && !s.contains(['\n', '\r', '\u{1b}']), "{s}");
        }
    }
}
