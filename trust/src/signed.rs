//! Signed documents: the envelope desired state travels and rests in.
//!
//! A [`Signed`] is an opaque body (the caller's encoding, e.g. a postcard `NodeSpec` naming its node and
//! generation) and an ed25519 signature over the document frame `(0x01, context, body)`. The agent stores
//! the envelope as received and re-verifies it offline; nothing a broker relays is believed without it.
//!
//! Wire form (postcard): `varint(body.len()) | body | signature (64 bytes, no length)`.
//!
//! **Invariants:** sizes are checked before anything is hashed or copied ([`Signed::decode`] checks the
//! input length before parsing, [`verify`] the body length before hashing); verification is
//! `verify_strict` (no malleable or small-order signatures, no weak keys); the body is handed out only by
//! [`verify`], so unverified bytes cannot be mistaken for verified ones.

use crate::context::Context;
use crate::frame;
use crate::key::{KeyPair, PublicKey};
use alloc::vec::Vec;
use ed25519_dalek::{Signature, Signer};
use serde::{Deserialize, Serialize};

/// The length of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// A body limit that suits a node spec with hundreds of instances; callers pass their own.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// The most a postcard varint length prefix of a `usize` takes.
const MAX_VARINT: usize = 10;

/// A body and the signature that covers it (under some key and context, known to the verifier only).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    #[serde(with = "bytes")]
    body: Vec<u8>,
    #[serde(with = "sig64")]
    signature: [u8; SIGNATURE_LEN],
}

/// Why bytes are not a [`Signed`] envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("signed envelope of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("signed envelope is malformed")]
    Malformed(#[source] postcard::Error),
    #[error("signed envelope has {0} bytes after its end")]
    TrailingBytes(usize),
}

/// Why a signed document was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signed body of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("signature does not verify under this key and context")]
    BadSignature,
}

/// Signs `body` under `context` with `key`.
pub fn sign(key: &KeyPair, context: Context, body: Vec<u8>) -> Signed {
    let signature = key.signing_key().sign(&frame::document_vec(context, &body));
    Signed { body, signature: signature.to_bytes() }
}

/// Checks that `signed` was signed by `key` under `context`, with a body of at most `max_body` bytes, and
/// returns the body. The size check comes first, so an oversized body costs no hashing.
pub fn verify<'a>(
    key: &PublicKey,
    context: Context,
    max_body: usize,
    signed: &'a Signed,
) -> Result<&'a [u8], VerifyError> {
    if signed.body.len() > max_body {
        return Err(VerifyError::TooLarge { len: signed.body.len(), max: max_body });
    }
    let signature = Signature::from_bytes(&signed.signature);
    key.verifying_key()
        .verify_strict(&frame::document_vec(context, &signed.body), &signature)
        .map_err(|_| VerifyError::BadSignature)?;
    Ok(&signed.body)
}

impl Signed {
    /// Reassembles an envelope from stored parts (nothing is checked until [`verify`]).
    pub fn from_parts(body: Vec<u8>, signature: [u8; SIGNATURE_LEN]) -> Signed {
        Signed { body, signature }
    }

    /// The body **before** verification: for logging its size or storing it, never for acting on it.
    pub fn unverified_body(&self) -> &[u8] {
        &self.body
    }

    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The postcard wire form.
    pub fn encode(&self) -> Vec<u8> {
        // A byte string and a fixed array: postcard's `Vec` serializer has no failure path for them.
        postcard::to_allocvec(self).expect("postcard encodes bytes and arrays infallibly")
    }

    /// Decodes the wire form, refusing input that could not hold a body of at most `max_body` bytes before
    /// parsing it, and anything after the envelope. Allocation is bounded by the input's length.
    pub fn decode(input: &[u8], max_body: usize) -> Result<Signed, DecodeError> {
        let max = max_body.saturating_add(MAX_VARINT + SIGNATURE_LEN);
        if input.len() > max {
            return Err(DecodeError::TooLarge { len: input.len(), max });
        }
        let (signed, rest) = postcard::take_from_bytes::<Signed>(input).map_err(DecodeError::Malformed)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        if signed.body.len() > max_body {
            return Err(DecodeError::TooLarge { len: signed.body.len(), max: max_body });
        }
        Ok(signed)
    }
}

impl core::fmt::Debug for Signed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Signed").field("body_len", &self.body.len()).finish_non_exhaustive()
    }
}

/// The body as a postcard byte string (`varint len | bytes`), decoded in one copy rather than byte by
/// byte. Same wire bytes as serde's default for `Vec<u8>`.
mod bytes {
    use alloc::vec::Vec;
    use core::fmt;
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(body)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        // Self-describing formats may present bytes as a sequence; never preallocate from its hint.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// A 64-byte array as a fixed tuple (serde derives arrays only up to 32): postcard writes the 64 bytes
/// with no length prefix.
pub(crate) mod sig64 {
    use super::SIGNATURE_LEN;
    use core::fmt;
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(sig: &[u8; SIGNATURE_LEN], s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(SIGNATURE_LEN)?;
        for b in sig {
            t.serialize_element(b)?;
        }
        t.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; SIGNATURE_LEN], D::Error> {
        d.deserialize_tuple(SIGNATURE_LEN, SigVisitor)
    }

    struct SigVisitor;

    impl<'de> Visitor<'de> for SigVisitor {
        type Value = [u8; SIGNATURE_LEN];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("64 signature bytes")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; SIGNATURE_LEN], A::Error> {
            let mut out = [0u8; SIGNATURE_LEN];
            for (i, b) in out.iter_mut().enumerate() {
                *b = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(i, &self))?;
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const CTX: Context = Context::SPEC;

    fn key() -> KeyPair {
        KeyPair::from_secret_bytes(&[1; 32])
    }

    #[test]
    fn sign_then_verify_returns_the_body() {
        let signed = sign(&key(), CTX, b"spec for n1, generation 7".to_vec());
        assert_eq!(verify(&key().public(), CTX, DEFAULT_MAX_BODY, &signed), Ok(&b"spec for n1, generation 7"[..]));
        assert_eq!(signed.unverified_body(), b"spec for n1, generation 7");
    }

    #[test]
    fn signature_is_deterministic_and_pinned() {
        // ed25519 is deterministic: pin the signature so any change to the frame layout is noticed.
        let a = sign(&key(), CTX, b"x".to_vec());
        let b = sign(&key(), CTX, b"x".to_vec());
        assert_eq!(a, b);
        let expected = Signature::from_bytes(a.signature());
        let framed = [&[0x01, 12][..], b"edge/spec/v1", b"x"].concat();
        assert_eq!(key().signing_key().sign(&framed), expected);
    }

    #[test]
    fn wrong_key_context_or_flipped_bit_is_refused() {
        let signed = sign(&key(), CTX, vec![7; 300]);
        let other = KeyPair::from_secret_bytes(&[2; 32]).public();
        assert_eq!(verify(&other, CTX, DEFAULT_MAX_BODY, &signed), Err(VerifyError::BadSignature));
        assert_eq!(
            verify(&key().public(), Context::HEARTBEAT, DEFAULT_MAX_BODY, &signed),
            Err(VerifyError::BadSignature)
        );
        let encoded = signed.encode();
        for bit in 0..encoded.len() * 8 {
            let mut flipped = encoded.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            // A flip may break the encoding itself (the length prefix) or the signature; never both pass.
            if let Ok(decoded) = Signed::decode(&flipped, DEFAULT_MAX_BODY) {
                assert!(verify(&key().public(), CTX, DEFAULT_MAX_BODY, &decoded).is_err(), "bit {bit}");
            }
        }
    }

    #[test]
    fn empty_body_signs_and_verifies() {
        let signed = sign(&key(), CTX, Vec::new());
        assert_eq!(verify(&key().public(), CTX, 0, &signed), Ok(&[][..]));
        assert_eq!(Signed::decode(&signed.encode(), 0).unwrap(), signed);
    }

    #[test]
    fn wire_form_is_pinned_and_round_trips() {
        let signed = sign(&key(), CTX, b"abc".to_vec());
        let encoded = signed.encode();
        assert_eq!(encoded.len(), 1 + 3 + 64);
        assert_eq!(&encoded[..4], &[3, b'a', b'b', b'c']);
        assert_eq!(&encoded[4..], signed.signature());
        assert_eq!(Signed::decode(&encoded, 3).unwrap(), signed);
    }

    #[test]
    fn oversized_bodies_are_refused_before_hashing() {
        let signed = sign(&key(), CTX, vec![0; 1000]);
        assert_eq!(verify(&key().public(), CTX, 999, &signed), Err(VerifyError::TooLarge { len: 1000, max: 999 }));
        let encoded = signed.encode();
        // Just over the body limit: parses, then refused by the body check.
        assert!(matches!(Signed::decode(&encoded, 999), Err(DecodeError::TooLarge { len: 1000, max: 999 })));
        // Far over: refused on the input length alone.
        assert!(matches!(Signed::decode(&encoded, 10), Err(DecodeError::TooLarge { len: 1066, max: 84 })));
        assert!(Signed::decode(&encoded, usize::MAX).is_ok());
    }

    #[test]
    fn truncated_garbage_and_trailing_input_is_refused() {
        let encoded = sign(&key(), CTX, b"abc".to_vec()).encode();
        for len in 0..encoded.len() {
            assert!(
                matches!(Signed::decode(&encoded[..len], DEFAULT_MAX_BODY), Err(DecodeError::Malformed(_))),
                "truncated to {len}"
            );
        }
        let mut long = encoded.clone();
        long.push(0);
        assert!(matches!(Signed::decode(&long, DEFAULT_MAX_BODY), Err(DecodeError::TrailingBytes(1))));
        // A length prefix claiming far more than the input holds must not allocate it.
        let lie = [0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3];
        assert!(matches!(Signed::decode(&lie, usize::MAX), Err(DecodeError::Malformed(_))));
        // An over-long varint.
        let overlong = [0xff; 11];
        assert!(matches!(Signed::decode(&overlong, usize::MAX), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn malleated_signature_is_refused() {
        // Adding the group order L to S gives a signature `verify` (non-strict) might accept on some
        // implementations; `verify_strict` refuses non-canonical S.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let signed = sign(&key(), CTX, b"abc".to_vec());
        let mut sig = *signed.signature();
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = sig[32 + i] as u16 + L[i] as u16 + carry;
            sig[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        let malleated = Signed::from_parts(signed.unverified_body().to_vec(), sig);
        assert_eq!(verify(&key().public(), CTX, DEFAULT_MAX_BODY, &malleated), Err(VerifyError::BadSignature));
    }
}
