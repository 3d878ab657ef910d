//! What the agent believes from the controller: a joined node checks every spec and every artifact chunk
//! against the cluster key it pinned at join ([`crate::identity`]), so neither the broker nor anyone able to
//! publish on its topics can give it desired state or native code. Pure: no I/O, no clock.
//!
//! - A spec must carry the cluster key's signature over `edge_proto::auth::spec_document` for **this** node's
//!   name: a spec meant for another node, or altered, or signed by another key, does not verify.
//! - A chunk of a precompiled artifact must carry the cluster's statement binding (module, engine profile) to
//!   the artifact's sha256 and size, and announce exactly those: the download then checks its bytes against a
//!   hash the cluster vouched for, never one the chunk made up.
//! - A node that never joined (no pinned key) has nothing to check against and believes its broker, as before;
//!   SECURITY.md says what that leaves open.
//!
//! Whether a verified spec is *newer* than the one running (a replay) is the core's decision
//! ([`edge_proto::NodeSpec::supersedes`]); [`Rejection::Replayed`] is how it reports one.

use edge_proto::auth::{artifact_document, spec_document, SIGNATURE_LEN};
use edge_proto::{ModuleChunk, NodeSpec};
use edge_trust::{Context, PublicKey, Signed};

/// Why something from the controller was refused. Its `Display` is the reason of the node's `Rejected` event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("spec generation {generation} refused: it is not signed by the cluster")]
    UnsignedSpec { generation: u64 },
    #[error(
        "spec generation {generation} refused: its signature does not verify for node {node} under the pinned \
         cluster key (signed by another key, meant for another node, or altered)"
    )]
    BadSpecSignature { generation: u64, node: String },
    #[error("spec generation {generation} refused: this node already runs generation {running} (a replay)")]
    Replayed { generation: u64, running: u64 },
    #[error(
        "spec generation {generation} refused: it comes from a controller store this node has since left behind \
         (a replay)"
    )]
    RetiredIssuer { generation: u64 },
    #[error("artifact chunk refused: it carries no statement signed by the cluster")]
    UnsignedArtifact,
    #[error(
        "artifact chunk refused: its sha256 {} is not the one the cluster signed for this module and engine",
        hex::encode(sha256)
    )]
    BadArtifactStatement { sha256: [u8; 32] },
    #[error("the stored spec (generation {generation}) does not verify under the pinned cluster key; not run")]
    StoredSpec { generation: u64 },
}

/// The node's name and, once joined, the cluster key everything from the controller must verify under.
#[derive(Debug, Clone)]
pub struct Verifier {
    node: String,
    cluster: Option<PublicKey>,
}

impl Verifier {
    /// A node that never joined: nothing is checked.
    pub fn unpinned(node: &str) -> Verifier {
        Verifier { node: node.to_string(), cluster: None }
    }

    /// A joined node: specs and artifacts must verify under `cluster`.
    pub fn pinned(node: &str, cluster: PublicKey) -> Verifier {
        Verifier { node: node.to_string(), cluster: Some(cluster) }
    }

    pub fn is_pinned(&self) -> bool {
        self.cluster.is_some()
    }

    /// Checks `spec` as it arrived with `auth`; returns the signature to store beside it (none when unpinned).
    pub fn spec(&self, spec: &NodeSpec, auth: Option<&[u8]>) -> Result<Option<[u8; SIGNATURE_LEN]>, Rejection> {
        let Some(key) = &self.cluster else { return Ok(None) };
        let generation = spec.generation;
        let signature: [u8; SIGNATURE_LEN] =
            auth.and_then(|a| a.try_into().ok()).ok_or(Rejection::UnsignedSpec { generation })?;
        self.check_spec(key, spec, &signature)
            .then_some(Some(signature))
            .ok_or_else(|| Rejection::BadSpecSignature { generation, node: self.node.clone() })
    }

    /// Checks a spec read back from the store with the signature stored beside it (re-verified on every boot:
    /// the store file is not more trustworthy than the network).
    pub fn stored_spec(&self, spec: &NodeSpec, signature: Option<&[u8; SIGNATURE_LEN]>) -> Result<(), Rejection> {
        let Some(key) = &self.cluster else { return Ok(()) };
        match signature {
            Some(s) if self.check_spec(key, spec, s) => Ok(()),
            _ => Err(Rejection::StoredSpec { generation: spec.generation }),
        }
    }

    /// Checks that an artifact chunk's announced hash and size are what the cluster signed for its module and
    /// profile. WebAssembly chunks (`artifact: None`) are checked by the download against the module's own hash.
    pub fn chunk(&self, chunk: &ModuleChunk, auth: Option<&[u8]>) -> Result<(), Rejection> {
        let (Some(key), Some(profile)) = (&self.cluster, &chunk.artifact) else { return Ok(()) };
        let signature: [u8; SIGNATURE_LEN] = auth.and_then(|a| a.try_into().ok()).ok_or(Rejection::UnsignedArtifact)?;
        let body = artifact_document(&chunk.module, profile, &chunk.sha256, chunk.total);
        edge_trust::verify(key, Context::ARTIFACT, body.len(), &Signed::from_parts(body, signature))
            .map(|_| ())
            .map_err(|_| Rejection::BadArtifactStatement { sha256: chunk.sha256 })
    }

    fn check_spec(&self, key: &PublicKey, spec: &NodeSpec, signature: &[u8; SIGNATURE_LEN]) -> bool {
        let body = spec_document(&self.node, spec);
        edge_trust::verify(key, Context::SPEC, body.len(), &Signed::from_parts(body, *signature)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use edge_proto::{EngineProfile, EngineTarget};
    use edge_trust::ClusterKey;

    use super::*;

    fn key(seed: u8) -> ClusterKey {
        ClusterKey::from_secret_bytes(&[seed; 32])
    }

    fn spec(generation: u64) -> NodeSpec {
        NodeSpec { issuer: 7, generation, instances: vec![] }
    }

    fn sign_spec(k: &ClusterKey, node: &str, s: &NodeSpec) -> Vec<u8> {
        edge_trust::sign(k, Context::SPEC, spec_document(node, s)).signature().to_vec()
    }

    fn chunk(sha256: [u8; 32]) -> ModuleChunk {
        let profile = EngineProfile { target: EngineTarget::Aarch64, memory_reservation: 1 << 20, memory_guard: 0 };
        ModuleChunk { module: [1; 32], artifact: Some(profile), sha256, offset: 0, total: 3, data: vec![1, 2, 3] }
    }

    fn sign_chunk(k: &ClusterKey, c: &ModuleChunk) -> Vec<u8> {
        let body = artifact_document(&c.module, c.artifact.as_ref().unwrap(), &c.sha256, c.total);
        edge_trust::sign(k, Context::ARTIFACT, body).signature().to_vec()
    }

    #[test]
    fn a_pinned_node_takes_only_specs_signed_for_it_by_its_cluster() {
        let v = Verifier::pinned("a", key(1).public());
        let s = spec(3);
        let good = sign_spec(&key(1), "a", &s);
        assert_eq!(v.spec(&s, Some(&good)).unwrap().map(|x| x.to_vec()), Some(good.clone()));
        assert_eq!(v.spec(&s, None), Err(Rejection::UnsignedSpec { generation: 3 }));
        assert_eq!(v.spec(&s, Some(&good[..63])), Err(Rejection::UnsignedSpec { generation: 3 }));
        let bad = |auth: &[u8], s: &NodeSpec| v.spec(s, Some(auth)).unwrap_err();
        assert!(matches!(bad(&sign_spec(&key(2), "a", &s), &s), Rejection::BadSpecSignature { .. }), "other key");
        assert!(matches!(bad(&sign_spec(&key(1), "b", &s), &s), Rejection::BadSpecSignature { .. }), "other node");
        assert!(matches!(bad(&good, &spec(4)), Rejection::BadSpecSignature { .. }), "altered generation");
    }

    #[test]
    fn an_unpinned_node_checks_nothing() {
        let v = Verifier::unpinned("a");
        assert_eq!(v.spec(&spec(1), None), Ok(None));
        assert_eq!(v.chunk(&chunk([5; 32]), None), Ok(()));
        assert_eq!(v.stored_spec(&spec(1), None), Ok(()));
    }

    #[test]
    fn stored_specs_are_verified_again() {
        let v = Verifier::pinned("a", key(1).public());
        let s = spec(9);
        let sig: [u8; 64] = sign_spec(&key(1), "a", &s).try_into().unwrap();
        assert_eq!(v.stored_spec(&s, Some(&sig)), Ok(()));
        assert_eq!(v.stored_spec(&s, None), Err(Rejection::StoredSpec { generation: 9 }));
        assert_eq!(v.stored_spec(&spec(10), Some(&sig)), Err(Rejection::StoredSpec { generation: 10 }));
    }

    #[test]
    fn an_artifact_chunk_must_announce_what_the_cluster_signed() {
        let v = Verifier::pinned("a", key(1).public());
        let honest = chunk([5; 32]);
        let statement = sign_chunk(&key(1), &honest);
        assert_eq!(v.chunk(&honest, Some(&statement)), Ok(()));
        assert_eq!(v.chunk(&honest, None), Err(Rejection::UnsignedArtifact));
        // A forged chunk with a self-consistent hash, under the honest statement or its own forged one.
        let forged = chunk([6; 32]);
        assert!(matches!(v.chunk(&forged, Some(&statement)), Err(Rejection::BadArtifactStatement { .. })));
        assert!(v.chunk(&forged, Some(&sign_chunk(&key(2), &forged))).is_err());
        // WebAssembly bytes are checked against the module hash by the download, not here.
        assert_eq!(v.chunk(&ModuleChunk { artifact: None, ..forged }, None), Ok(()));
    }
}
