//! A bare [`Message`] body in postcard: the bytes a report tag covers (`edge_proto::auth::message_bytes`), and
//! the body inside every envelope.
//!
//! Invariants: a decoded message encodes and decodes back to itself, bare and in an envelope of the current
//! protocol; sent to a protocol 3 peer it comes back as exactly its protocol 3 projection (the fields protocol 3
//! lacks at 0).

use edge_proto::auth::message_bytes;
use edge_proto::{decode, encode, encode_for, v3, Message};

use super::{postcard_exact, Target};

pub const TARGET: Target = Target {
    name: "message",
    about: "postcard Message bodies (what a report tag covers)",
    run,
    dict: &[&[0], &[1], &[2], &[12], &[32]],
    max_len: 4096,
};

fn run(data: &[u8]) -> bool {
    let Some(message) = postcard_exact::<Message>(data) else { return false };
    let bytes = message_bytes(&message);
    assert!(bytes.len() <= data.len(), "re-encoded to {} bytes from {}", bytes.len(), data.len());
    assert_eq!(postcard::from_bytes::<Message>(&bytes).as_ref(), Ok(&message), "bare round trip");
    let envelope = decode(&encode(&message)).expect("an encoded message decodes");
    assert_eq!(envelope.message, message, "enveloped round trip");
    let projected = Message::from(v3::Message::from(&message));
    let old = decode(&encode_for(v3::VERSION, &message)).expect("a protocol 3 encoding decodes");
    assert_eq!((old.version, old.message), (v3::VERSION, projected), "protocol 3 round trip");
    true
}
