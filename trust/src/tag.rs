//! Authentic reports: proof that a heartbeat, event or log batch comes from the node it names.
//!
//! Both options cover the report frame `(0x02, context, node name, counter, payload)`; the counter is the
//! caller's monotonically increasing `u64` for that node, checked with a [`crate::ReplayWindow`] so a
//! recorded report cannot be played back.
//!
//! - **MAC** (recommended for reports): [`ReportKey::tag`], HMAC-SHA256 truncated to 16 bytes, under a
//!   32-byte key per node (see [`crate::agree`] for how both ends get it without sending it). Cost is a
//!   few SHA-256 compressions, microseconds even on a Cortex-A53, and the same on the controller, whose
//!   per-node cost must stay tiny. 128 bits of tag leave 2^-128 per forgery attempt.
//! - **Signature**: [`sign_report`] / [`verify_report`], ed25519 under the node's own key. No shared
//!   secret at all, and anyone holding the node's public key can check it, but both ends pay
//!   scalar multiplications: tens of microseconds on x86, about ten times that on an A53.
//!
//! Reports have one verifier (the controller), so the signature's public verifiability buys nothing; the MAC
//! is the cheaper tool. See `examples/cost.rs` for measured figures.
//!
//! The payload is hashed whole: the caller bounds it first (the MQTT packet limit already does).

use crate::context::Context;
use crate::frame::{self, Sink};
use crate::key::{NodeKey, PublicKey};
use ed25519_dalek::{Signature, Signer};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Bytes of a report [`Tag`].
pub const TAG_LEN: usize = 16;
/// Bytes of a report key.
pub const REPORT_KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

impl Sink for HmacSha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// A truncated HMAC-SHA256 over a report frame. No `PartialEq`: compare only with [`ReportKey::verify`],
/// which is constant time.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Tag([u8; TAG_LEN]);

impl Tag {
    pub const fn from_bytes(bytes: [u8; TAG_LEN]) -> Tag {
        Tag(bytes)
    }
    pub const fn as_bytes(&self) -> &[u8; TAG_LEN] {
        &self.0
    }
}

/// Why a report's tag or signature was refused. Deliberately one variant: a forger learns nothing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("report does not authenticate under this node's key")]
    Invalid,
}

/// A node's 32-byte report key, held by the node and by the controller.
///
/// It keeps HMAC's keyed state (the inner and outer pads already hashed), so each tag costs two fewer
/// SHA-256 compressions than keying afresh; tagging clones that state.
#[derive(Clone)]
pub struct ReportKey {
    keyed: HmacSha256,
}

impl ReportKey {
    /// A report key from its 32 bytes (e.g. one the controller drew at random and stored).
    pub fn from_bytes(key: &[u8; REPORT_KEY_LEN]) -> ReportKey {
        // HMAC takes any key length; `new_from_slice` cannot fail for it.
        let keyed = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
        ReportKey { keyed }
    }

    /// The tag of a report from `node` with `counter` and `payload`, under `context`.
    pub fn tag(&self, context: Context, node: &str, counter: u64, payload: &[u8]) -> Tag {
        let full = self.mac(context, node, counter, payload).finalize().into_bytes();
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&full[..TAG_LEN]);
        Tag(out)
    }

    /// Checks `tag` in constant time (`hmac`'s `verify_truncated_left`, built on `subtle`).
    pub fn verify(
        &self,
        context: Context,
        node: &str,
        counter: u64,
        payload: &[u8],
        tag: &Tag,
    ) -> Result<(), TagError> {
        self.mac(context, node, counter, payload).verify_truncated_left(&tag.0).map_err(|_| TagError::Invalid)
    }

    fn mac(&self, context: Context, node: &str, counter: u64, payload: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        frame::report(&mut mac, context, node, counter, payload);
        mac
    }
}

impl core::fmt::Debug for ReportKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ReportKey(<redacted>)")
    }
}

/// An ed25519 signature over a report frame (the signature option). Wire form: 64 raw bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSignature(#[serde(with = "crate::signed::sig64")] [u8; 64]);

impl ReportSignature {
    pub const fn from_bytes(bytes: [u8; 64]) -> ReportSignature {
        ReportSignature(bytes)
    }
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

/// Signs a report with the node's own key.
pub fn sign_report(key: &NodeKey, context: Context, node: &str, counter: u64, payload: &[u8]) -> ReportSignature {
    ReportSignature(key.signing_key().sign(&frame::report_vec(context, node, counter, payload)).to_bytes())
}

/// Verifies a report signature under the node's public key (`verify_strict`).
pub fn verify_report(
    key: &PublicKey,
    context: Context,
    node: &str,
    counter: u64,
    payload: &[u8],
    signature: &ReportSignature,
) -> Result<(), TagError> {
    key.verifying_key()
        .verify_strict(&frame::report_vec(context, node, counter, payload), &Signature::from_bytes(&signature.0))
        .map_err(|_| TagError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyPair;
    use alloc::vec;

    const HB: Context = Context::HEARTBEAT;

    fn key() -> ReportKey {
        ReportKey::from_bytes(&[5; 32])
    }

    #[test]
    fn tag_is_truncated_hmac_of_the_frame() {
        let tag = key().tag(HB, "n1", 9, b"payload");
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&[5; 32]).unwrap();
        mac.update(&frame::report_vec(HB, "n1", 9, b"payload"));
        assert_eq!(tag.as_bytes()[..], mac.finalize().into_bytes()[..16]);
        assert_eq!(key().verify(HB, "n1", 9, b"payload", &tag), Ok(()));
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // Pins that the keyed-state shortcut is plain HMAC-SHA256 (key "Jefe", data below).
        let mut mac = <HmacSha256 as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.put(b"what do ya want for nothing?");
        let expected: [u8; 16] =
            [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7];
        assert_eq!(mac.finalize().into_bytes()[..16], expected);
    }

    #[test]
    fn every_covered_field_matters() {
        let tag = key().tag(HB, "n1", 9, b"payload");
        let k = key();
        assert_eq!(k.verify(Context::EVENTS, "n1", 9, b"payload", &tag), Err(TagError::Invalid));
        assert_eq!(k.verify(HB, "n2", 9, b"payload", &tag), Err(TagError::Invalid));
        assert_eq!(k.verify(HB, "n1", 10, b"payload", &tag), Err(TagError::Invalid));
        assert_eq!(k.verify(HB, "n1", 9, b"payloaD", &tag), Err(TagError::Invalid));
        assert_eq!(ReportKey::from_bytes(&[6; 32]).verify(HB, "n1", 9, b"payload", &tag), Err(TagError::Invalid));
        for bit in 0..TAG_LEN * 8 {
            let mut flipped = *tag.as_bytes();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(k.verify(HB, "n1", 9, b"payload", &Tag::from_bytes(flipped)), Err(TagError::Invalid));
        }
    }

    #[test]
    fn extreme_counters_and_empty_fields_work() {
        let k = key();
        for counter in [0, 1, u64::MAX - 1, u64::MAX] {
            let tag = k.tag(HB, "", counter, b"");
            assert_eq!(k.verify(HB, "", counter, b"", &tag), Ok(()));
        }
        let max = k.tag(HB, "n", u64::MAX, b"");
        assert_eq!(k.verify(HB, "n", 0, b"", &max), Err(TagError::Invalid));
    }

    #[test]
    fn tag_wire_form_is_16_raw_bytes() {
        let tag = key().tag(HB, "n1", 1, b"");
        let encoded = postcard::to_allocvec(&tag).unwrap();
        assert_eq!(encoded, tag.as_bytes());
        assert!(postcard::from_bytes::<Tag>(&encoded[..15]).is_err());
    }

    #[test]
    fn report_signatures_verify_and_refuse_tampering() {
        let node = KeyPair::from_secret_bytes(&[3; 32]);
        let payload = vec![1u8; 200];
        let sig = sign_report(&node, HB, "n1", 42, &payload);
        assert_eq!(verify_report(&node.public(), HB, "n1", 42, &payload, &sig), Ok(()));
        let other = KeyPair::from_secret_bytes(&[4; 32]).public();
        assert_eq!(verify_report(&other, HB, "n1", 42, &payload, &sig), Err(TagError::Invalid));
        assert_eq!(verify_report(&node.public(), HB, "n1", 43, &payload, &sig), Err(TagError::Invalid));
        assert_eq!(verify_report(&node.public(), HB, "n2", 42, &payload, &sig), Err(TagError::Invalid));
        assert_eq!(verify_report(&node.public(), Context::LOGS, "n1", 42, &payload, &sig), Err(TagError::Invalid));
        let mut flipped = *sig.as_bytes();
        flipped[10] ^= 0x40;
        let flipped = ReportSignature::from_bytes(flipped);
        assert_eq!(verify_report(&node.public(), HB, "n1", 42, &payload, &flipped), Err(TagError::Invalid));
        assert_eq!(
            verify_report(&node.public(), HB, "n1", 42, &payload, &ReportSignature::from_bytes([0; 64])),
            Err(TagError::Invalid)
        );
    }

    #[test]
    fn report_signature_wire_form_is_64_raw_bytes() {
        let sig = sign_report(&KeyPair::from_secret_bytes(&[3; 32]), HB, "n1", 1, b"");
        let encoded = postcard::to_allocvec(&sig).unwrap();
        assert_eq!(encoded, sig.as_bytes());
        assert_eq!(postcard::from_bytes::<ReportSignature>(&encoded).unwrap(), sig);
        assert!(postcard::from_bytes::<ReportSignature>(&encoded[..63]).is_err());
    }

    #[test]
    fn debug_redacts_the_report_key() {
        assert_eq!(alloc::format!("{:?}", key()), "ReportKey(<redacted>)");
    }
}
