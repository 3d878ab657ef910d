//! Property tests: every protocol message, drawn at random (`edge_fuzz::gen`, every variant of every enum,
//! numbers at their extremes), encodes and decodes back to itself: bare, in an envelope with and without
//! `auth`, and for a protocol 3 peer as its protocol 3 projection. Every strict prefix of an encoding is
//! refused, and so is a trailing byte. A fixed number of cases from fixed seeds: a failure replays.

use edge_fuzz::gen::{self, VARIANTS};
use edge_fuzz::rng::Rng;
use edge_proto::auth::message_bytes;
use edge_proto::join::{JoinReply, JoinRequest};
use edge_proto::{decode, encode, encode_for, encode_with_auth, v3, DecodeError, Message, PROTOCOL_VERSION};

const CASES_PER_KIND: usize = 2_000;

fn cases() -> impl Iterator<Item = Message> {
    let mut rng = Rng::new(0x5eed);
    (0..CASES_PER_KIND * VARIANTS).map(move |i| gen::message(&mut rng, i))
}

#[test]
fn every_message_round_trips_in_an_envelope() {
    let mut seen = [0usize; VARIANTS];
    for m in cases() {
        seen[gen::variant(&m)] += 1;
        let bytes = encode(&m);
        let envelope = decode(&bytes).unwrap_or_else(|e| panic!("{e}: {m:?}"));
        assert_eq!((envelope.version, &envelope.message, &envelope.auth), (PROTOCOL_VERSION, &m, &None));
        let auth = vec![0xa5; 64];
        let signed = decode(&encode_with_auth(&m, Some(&auth))).unwrap();
        assert_eq!((signed.message, signed.auth), (m.clone(), Some(auth)));
        assert!(bytes.len() <= edge_proto::MAX_PAYLOAD);
    }
    assert!(seen.iter().all(|&n| n == CASES_PER_KIND), "{seen:?}");
}

#[test]
fn every_message_round_trips_bare() {
    for m in cases() {
        let bytes = message_bytes(&m);
        assert_eq!(postcard::from_bytes::<Message>(&bytes).unwrap(), m);
    }
}

#[test]
fn a_protocol_3_peer_gets_the_projection_and_nothing_else_changes() {
    for m in cases() {
        let old = v3::Message::from(&m);
        let envelope = decode(&encode_for(v3::VERSION, &m)).unwrap_or_else(|e| panic!("{e}: {m:?}"));
        assert_eq!(envelope.version, v3::VERSION);
        assert_eq!(envelope.message, Message::from(old.clone()));
        assert_eq!(v3::Message::from(&envelope.message), old, "the projection is a fixed point");
        // A message protocol 3 can carry, with protocol 4's extra fields at 0, comes back whole.
        let zeroed = match m.clone() {
            Message::Heartbeat(mut h) => {
                h.store_id = 0;
                Message::Heartbeat(h)
            }
            Message::Spec(mut s) => {
                s.issuer = 0;
                Message::Spec(s)
            }
            Message::EventsAck(mut a) => {
                a.store_id = 0;
                Message::EventsAck(a)
            }
            Message::JoinRequest(_) | Message::JoinReply(_) | Message::Usage(_) => continue,
            other => other,
        };
        assert_eq!(decode(&encode_for(v3::VERSION, &zeroed)).unwrap().message, zeroed);
    }
}

#[test]
fn prefixes_and_trailing_bytes_are_refused() {
    let mut rng = Rng::new(3);
    for m in cases().step_by(7) {
        let bytes = encode(&m);
        for _ in 0..4 {
            let cut = rng.below(bytes.len());
            assert_eq!(decode(&bytes[..cut]), Err(DecodeError::Malformed), "prefix {cut} of {m:?}");
        }
        let mut longer = bytes.clone();
        longer.push(rng.next_u64() as u8);
        assert_eq!(decode(&longer), Err(DecodeError::Malformed));
    }
}

#[test]
fn join_messages_round_trip_on_their_own() {
    for m in cases() {
        match m {
            Message::JoinRequest(r) => {
                let bytes = postcard::to_allocvec(&r).unwrap();
                assert_eq!(postcard::from_bytes::<JoinRequest>(&bytes).unwrap(), r);
            }
            Message::JoinReply(r) => {
                let bytes = postcard::to_allocvec(&r).unwrap();
                assert_eq!(postcard::from_bytes::<JoinReply>(&bytes).unwrap(), r);
            }
            _ => {}
        }
    }
}
