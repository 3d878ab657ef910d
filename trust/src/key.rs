//! Identities: an ed25519 [`KeyPair`] and the [`PublicKey`] others pin it by.
//!
//! The cluster has one key pair ([`ClusterKey`]), which signs desired state; every node makes its own
//! ([`NodeKey`]) on the device at join, and the secret never leaves it. Both are the same type: the aliases
//! only say which role a value plays.
//!
//! A [`Fingerprint`] is the first 16 bytes of sha256(public key), printed `sha256:` + 32 lowercase hex
//! digits. 128 bits keep join tokens short while finding *another* key with a given fingerprint (a second
//! preimage) still costs 2^128 hashes. Collisions (2^64) do not matter: they need the key owner to make
//! both keys.

use crate::hex;
use crate::random::{self, RandomError};
use core::fmt;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// The length of a secret key file and of [`KeyPair::secret_bytes`].
pub const SECRET_LEN: usize = 32;
/// The length of an encoded [`PublicKey`].
pub const PUBLIC_LEN: usize = 32;
/// The length of a [`Fingerprint`].
pub const FINGERPRINT_LEN: usize = 16;

/// An ed25519 signing key. Its secret is wiped from memory when it is dropped (dalek's `zeroize` feature);
/// `Debug` prints only the fingerprint.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
}

/// The cluster's key pair: it signs every node's desired state. Kept by the controller.
pub type ClusterKey = KeyPair;
/// A node's own key pair, generated on the device at join.
pub type NodeKey = KeyPair;

impl KeyPair {
    /// Rebuilds a key pair from its 32-byte secret (as stored by [`KeyPair::secret_bytes`]). Every 32-byte
    /// string is a valid ed25519 secret.
    pub fn from_secret_bytes(secret: &[u8; SECRET_LEN]) -> KeyPair {
        KeyPair { signing: SigningKey::from_bytes(secret) }
    }

    /// A new key pair from `rng` (on firmware: the hardware RNG).
    pub fn generate_with<R: RngCore + CryptoRng>(rng: &mut R) -> Result<KeyPair, RandomError> {
        let mut secret = [0u8; SECRET_LEN];
        let result = random::fill(rng, &mut secret).map(|()| KeyPair::from_secret_bytes(&secret));
        secret.zeroize();
        result
    }

    /// A new key pair from the operating system's random source.
    #[cfg(feature = "std")]
    pub fn generate() -> Result<KeyPair, RandomError> {
        KeyPair::generate_with(&mut random::os())
    }

    /// The public half, which others pin and verify with.
    pub fn public(&self) -> PublicKey {
        PublicKey { verifying: self.signing.verifying_key() }
    }

    /// The fingerprint of the public half.
    pub fn fingerprint(&self) -> Fingerprint {
        self.public().fingerprint()
    }

    /// The 32-byte secret, for persisting it. Handle with care: whoever reads it is this identity.
    pub fn secret_bytes(&self) -> &[u8; SECRET_LEN] {
        self.signing.as_bytes()
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

/// Why bytes are not an acceptable public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The bytes do not encode a point on the curve.
    #[error("not an ed25519 public key")]
    NotAPoint,
    /// The point has small order: signatures under it prove nothing (and key agreement with it yields a
    /// secret anyone can compute).
    #[error("weak ed25519 public key (small order)")]
    Weak,
}

/// An ed25519 public key, checked to be a point of large order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey {
    verifying: VerifyingKey,
}

impl PublicKey {
    /// Decodes and checks a public key received from elsewhere.
    pub fn from_bytes(bytes: &[u8; PUBLIC_LEN]) -> Result<PublicKey, KeyError> {
        let verifying = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::NotAPoint)?;
        if verifying.is_weak() {
            return Err(KeyError::Weak);
        }
        Ok(PublicKey { verifying })
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_LEN] {
        self.verifying.to_bytes()
    }

    /// sha256 of the encoding, truncated to 16 bytes.
    pub fn fingerprint(&self) -> Fingerprint {
        let digest = Sha256::digest(self.verifying.as_bytes());
        let mut out = [0u8; FINGERPRINT_LEN];
        out.copy_from_slice(&digest[..FINGERPRINT_LEN]);
        Fingerprint(out)
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_bytes().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
        let bytes = <[u8; PUBLIC_LEN]>::deserialize(deserializer)?;
        PublicKey::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// A short, printable name for a public key: the first 16 bytes of its sha256. `Display` gives
/// `sha256:` + 32 lowercase hex digits; `FromStr` takes that form (or the bare 32 digits, either case).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

impl Fingerprint {
    /// The prefix of the printed form.
    pub const PREFIX: &'static str = "sha256:";

    /// Wraps 16 raw bytes.
    pub const fn from_bytes(bytes: [u8; FINGERPRINT_LEN]) -> Fingerprint {
        Fingerprint(bytes)
    }

    /// The raw 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; FINGERPRINT_LEN] {
        &self.0
    }

    /// Whether `key` is the key this fingerprint names: the check a joining node makes on the cluster key
    /// it is offered. Constant time, though fingerprints are not secret, so no caller needs to care.
    pub fn matches(&self, key: &PublicKey) -> bool {
        key.fingerprint().0.ct_eq(&self.0).into()
    }

    /// Parses the 32 hex digits of the bare form.
    pub(crate) fn from_hex(digits: &str) -> Result<Fingerprint, hex::HexError> {
        hex::decode(digits).map(Fingerprint)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::PREFIX)?;
        hex::write(f, &self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A fingerprint string was not `sha256:` + 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a fingerprint is `sha256:` followed by 32 hex digits")]
pub struct FingerprintParseError;

impl core::str::FromStr for Fingerprint {
    type Err = FingerprintParseError;

    fn from_str(s: &str) -> Result<Fingerprint, FingerprintParseError> {
        let digits = s.trim().strip_prefix(Self::PREFIX).unwrap_or(s.trim());
        Fingerprint::from_hex(digits).map_err(|_| FingerprintParseError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::testing::{CountingRng, FailingRng};
    use alloc::format;

    /// RFC 8032, section 7.1, test 1.
    const RFC_SECRET: [u8; 32] = [
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49,
        0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
    ];
    const RFC_PUBLIC: [u8; 32] = [
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1,
        0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
    ];

    #[test]
    fn secret_bytes_rebuild_the_same_key() {
        let key = KeyPair::from_secret_bytes(&RFC_SECRET);
        assert_eq!(key.public().to_bytes(), RFC_PUBLIC);
        assert_eq!(key.secret_bytes(), &RFC_SECRET);
    }

    #[test]
    fn fingerprint_is_truncated_sha256_and_prints_compactly() {
        let key = KeyPair::from_secret_bytes(&RFC_SECRET);
        let fp = key.fingerprint();
        assert_eq!(fp.as_bytes()[..], Sha256::digest(RFC_PUBLIC)[..16]);
        let printed = format!("{fp}");
        assert_eq!(printed.len(), 7 + 32);
        assert!(printed.starts_with("sha256:"));
        assert_eq!(printed.parse::<Fingerprint>(), Ok(fp));
        assert_eq!(printed[7..].to_uppercase().parse::<Fingerprint>(), Ok(fp));
        assert!(fp.matches(&key.public()));
        assert!(!fp.matches(&KeyPair::from_secret_bytes(&[7; 32]).public()));
    }

    #[test]
    fn fingerprint_parse_refuses_garbage() {
        for bad in ["", "sha256:", "sha256:abc", "md5:00000000000000000000000000000000", "sha256:zz"] {
            assert_eq!(bad.parse::<Fingerprint>(), Err(FingerprintParseError), "{bad:?}");
        }
    }

    #[test]
    fn generation_uses_the_rng_and_reports_its_failure() {
        let a = KeyPair::generate_with(&mut CountingRng(0)).unwrap();
        let b = KeyPair::generate_with(&mut CountingRng(0)).unwrap();
        let c = KeyPair::generate_with(&mut CountingRng(1)).unwrap();
        assert_eq!(a.public(), b.public());
        assert_ne!(a.public(), c.public());
        assert_eq!(KeyPair::generate_with(&mut FailingRng).unwrap_err(), RandomError);
    }

    #[cfg(feature = "std")]
    #[test]
    fn os_generation_gives_distinct_keys() {
        assert_ne!(KeyPair::generate().unwrap().public(), KeyPair::generate().unwrap().public());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let key = KeyPair::from_secret_bytes(&RFC_SECRET);
        let printed = format!("{key:?}");
        assert!(printed.contains("sha256:"), "{printed}");
        assert!(!printed.contains("9d61"), "{printed}");
    }

    #[test]
    fn public_key_checks_points() {
        assert_eq!(PublicKey::from_bytes(&RFC_PUBLIC).unwrap().to_bytes(), RFC_PUBLIC);
        // The identity point (y = 1) has order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKey::from_bytes(&identity), Err(KeyError::Weak));
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(PublicKey::from_bytes(&off_curve), Err(KeyError::NotAPoint));
    }

    #[test]
    fn public_key_serde_round_trips_and_checks() {
        let key = PublicKey::from_bytes(&RFC_PUBLIC).unwrap();
        let bytes = postcard::to_allocvec(&key).unwrap();
        assert_eq!(bytes, RFC_PUBLIC, "32 raw bytes, no length prefix");
        assert_eq!(postcard::from_bytes::<PublicKey>(&bytes).unwrap(), key);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(postcard::from_bytes::<PublicKey>(&identity).is_err());
        assert!(postcard::from_bytes::<PublicKey>(&RFC_PUBLIC[..31]).is_err());
    }
}
