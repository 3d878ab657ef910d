//! Protocol 3's envelope (`edge_proto::v3`), as a peer one version behind writes it.
//!
//! Invariants: it re-encodes to itself; its conversion to today's shapes and back is lossless; and when its
//! version field says 3, `edge_proto::decode` accepts the same bytes and returns that conversion.

use edge_proto::{decode, v3, Message};

use super::{postcard_exact, Target};

pub const TARGET: Target = Target {
    name: "v3",
    about: "protocol 3 envelopes (edge_proto::v3) and their conversion",
    run,
    dict: &[&[3], &[0], &[1], &[9], &[32]],
    max_len: 4096,
};

fn run(data: &[u8]) -> bool {
    let Some(old) = postcard_exact::<v3::Envelope>(data) else { return false };
    let bytes = postcard::to_allocvec(&old).expect("plain data encodes");
    assert!(bytes.len() <= data.len(), "re-encoded to {} bytes from {}", bytes.len(), data.len());
    assert_eq!(postcard::from_bytes::<v3::Envelope>(&bytes).as_ref(), Ok(&old), "round trip");
    let today = Message::from(old.message.clone());
    assert_eq!(v3::Message::from(&today), old.message, "protocol 3 → 4 → 3 loses something");
    if old.version == v3::VERSION && data.len() <= edge_proto::MAX_PAYLOAD {
        let envelope = decode(data).expect("a protocol 3 envelope decodes");
        assert_eq!((envelope.version, envelope.message, envelope.auth), (v3::VERSION, today, old.auth));
    }
    true
}
