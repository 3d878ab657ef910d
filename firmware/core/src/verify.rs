//! What the node believes from the controller, as the Linux agent decides it (`agent/src/verify.rs`,
//! `agent/src/join.rs`). Pure: no I/O, no clock.
//!
//! - A join reply is believed only for this node's name and key, under a cluster key that matches the token's
//!   fingerprint, with a valid signature (context `edge/join/v1`).
//! - A spec must carry the pinned cluster key's signature over `spec_document(this node, spec)`; a spec of
//!   the same issuer with an older generation than the applied one is a replay; an equal one is the retained
//!   copy again (nothing to apply); another issuer or a newer generation is applied.
//! - Module bytes are believed when they hash to the sha256 the signed spec names (checked by the download).

use alloc::string::String;

use edge_proto::auth::{spec_document, SIGNATURE_LEN};
use edge_proto::join::{accepted_body, JoinRefusal, JoinReply};
use edge_proto::NodeSpec;
use edge_trust::{Context, JoinToken, PublicKey, Signed};

/// Why a join reply was not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    Refused(JoinRefusal),
    WrongNode(String),
    BadClusterKey,
    ClusterKeyMismatch,
    BadSignature,
}

impl core::fmt::Display for JoinError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            JoinError::Refused(r) => write!(f, "join token refused: {r}"),
            JoinError::WrongNode(got) => write!(f, "join refused: the controller accepted node {got:?}"),
            JoinError::BadClusterKey => f.write_str("join refused: the controller's key is not usable"),
            JoinError::ClusterKeyMismatch => {
                f.write_str("join refused: the controller's key does not match the token's fingerprint")
            }
            JoinError::BadSignature => f.write_str("join refused: the acceptance is not signed by the cluster key"),
        }
    }
}

/// Checks the controller's answer to the join of `node` (public key `node_key`) with `token`; returns the
/// cluster key to pin.
pub fn join_reply(token: &JoinToken, node: &str, node_key: &[u8; 32], reply: JoinReply) -> Result<[u8; 32], JoinError> {
    let (accepted, cluster_key, signature) = match reply {
        JoinReply::Refused(reason) => return Err(JoinError::Refused(reason)),
        JoinReply::Accepted { node, cluster_key, signature } => (node, cluster_key, signature),
    };
    if accepted != node {
        return Err(JoinError::WrongNode(accepted));
    }
    let key = PublicKey::from_bytes(&cluster_key).map_err(|_| JoinError::BadClusterKey)?;
    if !token.fingerprint().matches(&key) {
        return Err(JoinError::ClusterKeyMismatch);
    }
    let signature: [u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| JoinError::BadSignature)?;
    let body = accepted_body(node, node_key, token.id().as_bytes());
    let max = body.len();
    edge_trust::verify(&key, Context::JOIN, max, &Signed::from_parts(body, signature))
        .map_err(|_| JoinError::BadSignature)?;
    Ok(cluster_key)
}

/// Why a spec was refused; its `Display` is the reason of the node's `Rejected` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Unsigned { generation: u64 },
    BadSignature { generation: u64 },
    Replayed { generation: u64, running: u64 },
    TooManyInstances { generation: u64, instances: usize },
}

impl core::fmt::Display for Rejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Rejection::Unsigned { generation } => {
                write!(f, "spec generation {generation} refused: it is not signed by the cluster")
            }
            Rejection::BadSignature { generation } => write!(
                f,
                "spec generation {generation} refused: its signature does not verify for this node under the \
                 pinned cluster key (signed by another key, meant for another node, or altered)"
            ),
            Rejection::Replayed { generation, running } => {
                write!(
                    f,
                    "spec generation {generation} refused: this node already runs generation {running} (a replay)"
                )
            }
            Rejection::TooManyInstances { generation, instances } => write!(
                f,
                "spec generation {generation} refused: {instances} instances, more than this microcontroller runs"
            ),
        }
    }
}

/// What to do with a spec that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Verified and newer: persist it with this signature, then run it.
    Apply([u8; SIGNATURE_LEN]),
    /// The spec already applied (the retained copy delivered again): report, change nothing.
    Current,
    Reject(Rejection),
}

/// Judges `spec` as it arrived with `auth`, for node `node` pinned to `cluster`, running `applied` (issuer and
/// generation), holding at most `max_instances`.
pub fn spec(
    node: &str,
    cluster: &PublicKey,
    spec: &NodeSpec,
    auth: Option<&[u8]>,
    applied: Option<(u64, u64)>,
    max_instances: usize,
) -> Decision {
    let generation = spec.generation;
    let Some(signature) = auth.and_then(|a| <[u8; SIGNATURE_LEN]>::try_from(a).ok()) else {
        return Decision::Reject(Rejection::Unsigned { generation });
    };
    if !signature_holds(node, cluster, spec, &signature) {
        return Decision::Reject(Rejection::BadSignature { generation });
    }
    match applied {
        Some((issuer, running)) if issuer == spec.issuer && generation < running => {
            return Decision::Reject(Rejection::Replayed { generation, running })
        }
        Some((issuer, running)) if issuer == spec.issuer && generation == running => return Decision::Current,
        _ => {}
    }
    if spec.instances.len() > max_instances {
        return Decision::Reject(Rejection::TooManyInstances { generation, instances: spec.instances.len() });
    }
    Decision::Apply(signature)
}

/// Whether `signature` is the cluster's over `spec` for `node` (also used on the stored spec at every boot).
pub fn signature_holds(node: &str, cluster: &PublicKey, spec: &NodeSpec, signature: &[u8; SIGNATURE_LEN]) -> bool {
    let body = spec_document(node, spec);
    edge_trust::verify(cluster, Context::SPEC, body.len(), &Signed::from_parts(body, *signature)).is_ok()
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use edge_trust::{ClusterKey, KeyPair};

    use super::*;

    fn key(seed: u8) -> ClusterKey {
        ClusterKey::from_secret_bytes(&[seed; 32])
    }

    fn s(issuer: u64, generation: u64) -> NodeSpec {
        NodeSpec { issuer, generation, instances: vec![] }
    }

    fn sign(k: &ClusterKey, node: &str, spec: &NodeSpec) -> Vec<u8> {
        edge_trust::sign(k, Context::SPEC, spec_document(node, spec)).signature().to_vec()
    }

    #[test]
    fn only_specs_signed_for_this_node_by_its_cluster_and_not_older_are_applied() {
        let cluster = key(1).public();
        let judge = |spec: &NodeSpec, auth: Option<&[u8]>, applied| super::spec("a", &cluster, spec, auth, applied, 8);
        let g3 = s(7, 3);
        let good = sign(&key(1), "a", &g3);
        assert!(matches!(judge(&g3, Some(&good), None), Decision::Apply(_)));
        assert!(matches!(judge(&g3, Some(&good), Some((7, 2))), Decision::Apply(_)));
        assert_eq!(judge(&g3, Some(&good), Some((7, 3))), Decision::Current);
        assert_eq!(
            judge(&g3, Some(&good), Some((7, 4))),
            Decision::Reject(Rejection::Replayed { generation: 3, running: 4 })
        );
        // Another issuer (a replaced controller store) starts its own numbering: applied.
        assert!(matches!(judge(&g3, Some(&good), Some((8, 40))), Decision::Apply(_)));
        assert_eq!(judge(&g3, None, None), Decision::Reject(Rejection::Unsigned { generation: 3 }));
        assert_eq!(judge(&g3, Some(&good[..63]), None), Decision::Reject(Rejection::Unsigned { generation: 3 }));
        let bad = Decision::Reject(Rejection::BadSignature { generation: 3 });
        assert_eq!(judge(&g3, Some(&sign(&key(2), "a", &g3)), None), bad, "another key");
        assert_eq!(judge(&g3, Some(&sign(&key(1), "b", &g3)), None), bad, "another node's spec");
        assert_eq!(judge(&s(7, 4), Some(&good), None), Decision::Reject(Rejection::BadSignature { generation: 4 }));
        let e = alloc::string::ToString::to_string(&Rejection::Replayed { generation: 3, running: 4 });
        assert!(e.contains("replay"), "{e}");
    }

    #[test]
    fn a_join_acceptance_is_believed_only_as_the_agent_believes_it() {
        let cluster = KeyPair::from_secret_bytes(&[1; 32]);
        let other = KeyPair::from_secret_bytes(&[3; 32]);
        let mut rng = crate::test_util::CountingRng(1);
        let (token, _) = JoinToken::generate_with(cluster.fingerprint(), &mut rng).unwrap();
        let node_key = KeyPair::from_secret_bytes(&[2; 32]).public().to_bytes();
        let accepted = |signer: &KeyPair, offered: &KeyPair, node: &str| JoinReply::Accepted {
            node: node.into(),
            cluster_key: offered.public().to_bytes(),
            signature: edge_trust::sign(signer, Context::JOIN, accepted_body(node, &node_key, token.id().as_bytes()))
                .signature()
                .to_vec(),
        };
        let check = |reply| join_reply(&token, "mcu-1", &node_key, reply);
        assert_eq!(check(accepted(&cluster, &cluster, "mcu-1")), Ok(cluster.public().to_bytes()));
        assert_eq!(check(accepted(&cluster, &cluster, "mcu-2")), Err(JoinError::WrongNode("mcu-2".into())));
        assert_eq!(check(accepted(&other, &other, "mcu-1")), Err(JoinError::ClusterKeyMismatch));
        assert_eq!(check(accepted(&other, &cluster, "mcu-1")), Err(JoinError::BadSignature));
        assert_eq!(check(JoinReply::Refused(JoinRefusal::Used)), Err(JoinError::Refused(JoinRefusal::Used)));
    }
}
