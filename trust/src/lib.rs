//! Cryptographic primitives for cluster trust: who a node is, how it joins, why it may believe its desired
//! state, and why the controller may believe its reports. `no_std` + `alloc`, so firmware verifies with the
//! same code; the `std` feature (default) adds OS randomness and key files.
//!
//! Layout, one concept per file:
//! - [`context`]: domain-separation labels. Every signature and tag covers one, so bytes signed for one
//!   purpose (a spec) are never accepted for another (a heartbeat).
//! - [`key`]: [`KeyPair`] (an ed25519 signing key; aliased [`ClusterKey`] and [`NodeKey`]), [`PublicKey`] and
//!   its [`Fingerprint`] (the first 16 bytes of its sha256, printed `sha256:` + 32 hex digits).
//! - `keyfile` (std, unix): [`KeyPair::load_or_create`], a 32-byte secret file with mode 0600.
//! - [`token`]: join tokens `EJ1<fingerprint>::<id>.<secret>`; the controller keeps only a [`StoredToken`]
//!   (id and sha256 of the secret).
//! - [`signed`]: the [`Signed`] envelope for desired state: opaque body + ed25519 signature over
//!   (context, body), size-bounded before any hashing.
//! - [`tag`]: authentic reports: an HMAC-SHA256 [`Tag`] (16 bytes) under a per-node [`ReportKey`], and the
//!   ed25519 alternative [`sign_report`] / [`verify_report`]; both cover (context, node, counter, payload).
//! - [`agree`]: derives a node's [`ReportKey`] and [`MqttPassword`] on both sides from the keys they already hold (X25519 on the
//!   ed25519 keys), so no secret crosses the (today unencrypted) join exchange.
//! - [`replay`]: [`ReplayWindow`], the pure check that a report counter was not seen before.
//! - `frame` and `hex`: the byte layouts that signatures cover, and printable encodings.
//!
//! **Invariant:** nothing here trusts a length or a counter from the wire: sizes are checked before work,
//! counters are compared without arithmetic that can overflow, and no input panics.
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod agree;
pub mod context;
mod frame;
mod hex;
pub mod key;
#[cfg(all(feature = "std", unix))]
mod keyfile;
mod random;
pub mod replay;
pub mod signed;
pub mod tag;
pub mod token;

pub use agree::{AgreeError, MqttPassword};
pub use context::Context;
pub use key::{ClusterKey, Fingerprint, KeyError, KeyPair, NodeKey, PublicKey};
#[cfg(all(feature = "std", unix))]
pub use keyfile::KeyFileError;
pub use random::RandomError;
pub use replay::{ReplayError, ReplayWindow};
pub use signed::{sign, verify, DecodeError, Signed, VerifyError, DEFAULT_MAX_BODY};
pub use tag::{sign_report, verify_report, ReportKey, ReportSignature, Tag, TagError};
pub use token::{JoinToken, StoredToken, TokenError, TokenId, TokenSecret};
