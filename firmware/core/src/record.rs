//! How records sit in a flash slot (pure: encoding and checks; `crate::store` does the I/O).
//!
//! A slot holds one record: a 48-byte header, then its body.
//! `magic "EDGF" | format u8 (1) | kind u8 | 0 0 | seq u32 LE | body length u32 LE | sha256 of the body`.
//! The body is written first and the header last, so a record whose write was cut has no valid header (an
//! erased header reads 0xFF) or a body that does not hash to it; either way it is ignored and the other slot of
//! the pair, with the older record, is used. Of two valid records the higher `seq` wins.
//!
//! Bodies: an identity is postcard of [`IdentityRecord`]. A state is `spec length u32 | postcard NodeSpec |
//! has signature u8 | signature [64] | module count u16 | per module: sha256 [32] | length u32 | bytes`.

use alloc::string::String;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 4] = *b"EDGF";
pub const FORMAT: u8 = 1;
pub const HEADER_LEN: usize = 48;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Identity = 1,
    State = 2,
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub seq: u32,
    pub len: u32,
    pub sha256: [u8; 32],
}

impl Header {
    pub fn new(kind: Kind, seq: u32, body: &[u8]) -> Header {
        Header { kind: kind as u8, seq, len: body.len() as u32, sha256: Sha256::digest(body).into() }
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4] = FORMAT;
        b[5] = self.kind;
        b[8..12].copy_from_slice(&self.seq.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b[16..].copy_from_slice(&self.sha256);
        b
    }

    /// The header in `bytes` if it is one of `kind` whose body fits a slot of `slot_len` bytes.
    pub fn parse(bytes: &[u8; HEADER_LEN], kind: Kind, slot_len: usize) -> Option<Header> {
        if bytes[..4] != MAGIC || bytes[4] != FORMAT || bytes[5] != kind as u8 {
            return None;
        }
        let seq = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if (len as usize) > slot_len.saturating_sub(HEADER_LEN) {
            return None;
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&bytes[16..]);
        Some(Header { kind: bytes[5], seq, len, sha256 })
    }
}

/// Of two slots' valid headers, the one to use (the newer: higher `seq`, wrapping never reached in practice).
pub fn newest(a: Option<Header>, b: Option<Header>) -> Option<(usize, Header)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.seq > a.seq { (1, b) } else { (0, a) }),
        (Some(a), None) => Some((0, a)),
        (None, Some(b)) => Some((1, b)),
        (None, None) => None,
    }
}

/// The node's identity after a join, and the report counters already handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// The name the cluster accepted (MQTT username and client id).
    pub node: String,
    /// The node's ed25519 secret, made on the device at its first join.
    pub node_secret: [u8; 32],
    /// The cluster key pinned at join (its fingerprint was in the token).
    pub cluster_key: [u8; 32],
    /// Report counters below this were (possibly) used: each boot reserves a block above it first.
    pub counter_mark: u64,
}

impl core::fmt::Display for IdentityRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "node {} (counters from {})", self.node, self.counter_mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_anything_else_is_no_record() {
        let h = Header::new(Kind::State, 7, b"body");
        let bytes = h.to_bytes();
        assert_eq!(Header::parse(&bytes, Kind::State, 1024), Some(h));
        assert_eq!(Header::parse(&bytes, Kind::Identity, 1024), None, "another kind");
        assert_eq!(Header::parse(&[0xff; HEADER_LEN], Kind::State, 1024), None, "erased flash");
        assert_eq!(Header::parse(&bytes, Kind::State, HEADER_LEN + 3), None, "a body longer than the slot");
        let mut other = bytes;
        other[4] = 2;
        assert_eq!(Header::parse(&other, Kind::State, 1024), None, "a format this build does not know");
    }

    #[test]
    fn the_newer_of_two_records_wins_and_a_lone_one_is_used() {
        let a = Header::new(Kind::State, 3, b"a");
        let b = Header::new(Kind::State, 4, b"b");
        assert_eq!(newest(Some(a), Some(b)), Some((1, b)));
        assert_eq!(newest(Some(b), Some(a)), Some((0, b)));
        assert_eq!(newest(None, Some(a)), Some((1, a)));
        assert_eq!(newest(None, None), None);
    }
}
