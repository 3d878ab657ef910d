//! Joining (`edge_proto::join`): the request a joining node sends and the reply it gets, in postcard.
//!
//! Invariants: each decoded message re-encodes to itself; every refusal reads as one line (it is printed after
//! `join token refused: `); the document the cluster signs for an acceptance is a pure function of its parts.

use edge_proto::join::{accepted_body, JoinReply, JoinRequest, TOKEN_ID_LEN};

use super::{postcard_exact, Target};

pub const TARGET: Target = Target {
    name: "join",
    about: "JoinRequest and JoinReply (postcard)",
    run,
    dict: &[&[0], &[1], &[3], &[64], &[32]],
    max_len: 1024,
};

fn run(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Some(request) = postcard_exact::<JoinRequest>(data) {
        let bytes = postcard::to_allocvec(&request).expect("plain data encodes");
        assert_eq!(postcard::from_bytes::<JoinRequest>(&bytes).as_ref(), Ok(&request), "request round trip");
        let body = accepted_body(&request.node, &request.node_key, &request.token_id);
        assert_eq!(body, accepted_body(&request.node, &request.node_key, &request.token_id));
        accepted = true;
    }
    if let Some(reply) = postcard_exact::<JoinReply>(data) {
        let bytes = postcard::to_allocvec(&reply).expect("plain data encodes");
        assert_eq!(postcard::from_bytes::<JoinReply>(&bytes).as_ref(), Ok(&reply), "reply round trip");
        if let JoinReply::Refused(refusal) = &reply {
            let line = refusal.to_string();
            assert!(!line.contains(['\n', '\r']), "a refusal prints over several lines: {line:?}");
        }
        if let JoinReply::Accepted { node, cluster_key, .. } = &reply {
            let id = [0u8; TOKEN_ID_LEN];
            assert_ne!(accepted_body(node, cluster_key, &id), accepted_body(&format!("{node}x"), cluster_key, &id));
        }
        accepted = true;
    }
    accepted
}
