//! What the cluster key signs and what a node's tag covers, and how both travel: in the envelope's `auth`
//! field ([`crate::envelope::Envelope::auth`]), so no message shape changes and a protocol 3 or 4 peer that
//! does not check them decodes the same bytes as before.
//!
//! - **A node's spec** ([`crate::Message::Spec`]): `auth` is the cluster key's ed25519 signature (context
//!   `edge/spec/v1`, see `edge-trust`) over [`spec_document`]: the node's name and the whole [`NodeSpec`]
//!   (issuer, generation, every instance with its module's sha256). Binding the name means a spec replayed
//!   from another node's topic never verifies; binding the generation lets the agent refuse an old one.
//! - **A precompiled artifact** ([`crate::ModuleReply::Chunk`] with `artifact: Some`): `auth` is the cluster
//!   key's signature (context `edge/artifact/v1`) over [`artifact_document`]: the module's sha256, the engine
//!   profile it was built for, and the artifact's sha256 and size. Artifacts are compiled in the background
//!   after a spec is published, so the binding from a module in a signed spec to the native code built from it
//!   is its own signed statement, the same for every node of that profile; the agent trusts a chunk's announced
//!   hash only under it. WebAssembly bytes need no statement: their hash is the module's, in the signed spec.
//! - **A node's report** (hello, heartbeat, events, logs, module requests): `auth` is a [`ReportAuth`], a
//!   counter and a 16-byte tag under the node's report key over [`message_bytes`].
//!
//! Documents are postcard, which encodes a value one way only, so signer and verifier rebuild the same bytes
//! from the decoded message: nothing is signed that is not also acted on.

use alloc::vec::Vec;

use serde::Serialize;

use crate::message::{EngineProfile, Message, NodeSpec, Sha256};

/// Bytes of an ed25519 signature in `auth`.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes of a report tag.
pub const TAG_LEN: usize = 16;
/// Bytes of a [`ReportAuth`] in `auth`: the counter (8) and the tag.
pub const REPORT_AUTH_LEN: usize = 8 + TAG_LEN;

#[derive(Serialize)]
struct SpecDocument<'a> {
    node: &'a str,
    spec: &'a NodeSpec,
}

#[derive(Serialize)]
struct ArtifactDocument<'a> {
    module: &'a Sha256,
    profile: &'a EngineProfile,
    sha256: &'a Sha256,
    size: u64,
}

/// The bytes the cluster key signs for `node`'s `spec`.
pub fn spec_document(node: &str, spec: &NodeSpec) -> Vec<u8> {
    // Plain data with serde derives: serialising to a Vec cannot fail.
    postcard::to_allocvec(&SpecDocument { node, spec }).unwrap_or_default()
}

/// The bytes the cluster key signs for the artifact of `module` built for `profile`.
pub fn artifact_document(module: &Sha256, profile: &EngineProfile, sha256: &Sha256, size: u64) -> Vec<u8> {
    postcard::to_allocvec(&ArtifactDocument { module, profile, sha256, size }).unwrap_or_default()
}

/// The bytes a report tag covers: the message alone, as the current protocol encodes it.
pub fn message_bytes(message: &Message) -> Vec<u8> {
    postcard::to_allocvec(message).unwrap_or_default()
}

/// A report's authentication: a counter the node never repeats and the tag over (context, node, counter,
/// [`message_bytes`]). Wire form: the counter big-endian, then the tag ([`REPORT_AUTH_LEN`] bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportAuth {
    pub counter: u64,
    pub tag: [u8; TAG_LEN],
}

impl ReportAuth {
    pub fn to_bytes(&self) -> [u8; REPORT_AUTH_LEN] {
        let mut out = [0u8; REPORT_AUTH_LEN];
        out[..8].copy_from_slice(&self.counter.to_be_bytes());
        out[8..].copy_from_slice(&self.tag);
        out
    }

    /// Parses `auth`; `None` unless it is exactly [`REPORT_AUTH_LEN`] bytes.
    pub fn from_bytes(auth: &[u8]) -> Option<ReportAuth> {
        let bytes: &[u8; REPORT_AUTH_LEN] = auth.try_into().ok()?;
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&bytes[..8]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&bytes[8..]);
        Some(ReportAuth { counter: u64::from_be_bytes(counter), tag })
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::message::EngineTarget;

    #[test]
    fn the_spec_document_binds_the_node_name() {
        let spec = NodeSpec { issuer: 5, generation: 3, instances: vec![] };
        assert_eq!(spec_document("a", &spec), vec![1, b'a', 5, 3, 0]);
        assert_ne!(spec_document("a", &spec), spec_document("b", &spec));
    }

    #[test]
    fn the_artifact_document_covers_module_profile_hash_and_size() {
        let profile = EngineProfile { target: EngineTarget::Aarch64, memory_reservation: 1, memory_guard: 2 };
        let doc = artifact_document(&[1; 32], &profile, &[2; 32], 9);
        assert_eq!(doc.len(), 32 + 3 + 32 + 1);
        let other = EngineProfile { target: EngineTarget::Pulley64, ..profile };
        assert_ne!(doc, artifact_document(&[1; 32], &other, &[2; 32], 9));
        assert_ne!(doc, artifact_document(&[1; 32], &profile, &[2; 32], 10));
    }

    #[test]
    fn report_auth_round_trips_and_refuses_other_lengths() {
        let auth = ReportAuth { counter: u64::MAX, tag: [7; TAG_LEN] };
        assert_eq!(ReportAuth::from_bytes(&auth.to_bytes()), Some(auth));
        assert_eq!(ReportAuth::from_bytes(&[0; REPORT_AUTH_LEN - 1]), None);
        assert_eq!(ReportAuth::from_bytes(&[0; REPORT_AUTH_LEN + 1]), None);
        assert_eq!(ReportAuth::from_bytes(&[]), None);
    }
}
