//! The versioned envelope around every MQTT payload.
//!
//! Layout on the wire (postcard): `version: varint u16`, then the [`Message`], then `auth: Option<bytes>`.
//! The version comes first so a peer can refuse a newer protocol before trying to decode its body.
//! `auth` carries a signature or a tag over the message (see [`crate::auth`]): the cluster key's signature on
//! specs and artifact chunks, a node's report tag on what it sends. Its absence is for the receiver to judge.
//!
//! **Version skew policy** (as Kubernetes has it for kubelets): a controller of protocol N serves agents of N
//! and N − 1 ([`MIN_PROTOCOL_VERSION`]); upgrade the controller first, then the agents at leisure. [`decode`]
//! accepts both and returns the message in today's shapes (fields the older peer did not send are 0), with the
//! version it came in, and [`encode_for`] writes a message in the version its receiver speaks. An agent newer
//! than its controller is not supported: its messages are refused as an unsupported version.

use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::message::Message;

/// The protocol version this build speaks. Bump it on any incompatible change to [`Message`].
pub const PROTOCOL_VERSION: u16 = 4;

/// The oldest protocol version this build still decodes and can encode for (one version of skew).
pub const MIN_PROTOCOL_VERSION: u16 = crate::v3::VERSION;

/// One payload on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The version the sender wrote (between [`MIN_PROTOCOL_VERSION`] and [`PROTOCOL_VERSION`]).
    pub version: u16,
    pub message: Message,
    /// A signature or tag over `message` (see [`crate::auth`]), or none.
    pub auth: Option<Vec<u8>>,
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The payload is larger than [`crate::MAX_PAYLOAD`].
    TooLarge(usize),
    /// The payload was written by a protocol version this build does not speak.
    UnsupportedVersion(u16),
    /// The bytes are not a valid envelope.
    Malformed,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge(n) => write!(f, "payload of {n} bytes exceeds the {} byte limit", crate::MAX_PAYLOAD),
            DecodeError::UnsupportedVersion(v) => write!(
                f,
                "protocol version {v} is not supported (this build speaks {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION})"
            ),
            DecodeError::Malformed => f.write_str("payload is not a valid envelope"),
        }
    }
}

impl core::error::Error for DecodeError {}

#[derive(Serialize)]
struct Borrowed<'a, M> {
    version: u16,
    message: &'a M,
    auth: Option<&'a [u8]>,
}

/// Encodes a message in the current protocol version, without an authentication tag.
pub fn encode(message: &Message) -> Vec<u8> {
    encode_with_auth(message, None)
}

/// Encodes a message in the current protocol version with `auth` (a signature or tag over it).
pub fn encode_with_auth(message: &Message, auth: Option<&[u8]>) -> Vec<u8> {
    // Serialising owned data to a Vec cannot fail: every type here is plain data with serde derives.
    postcard::to_allocvec(&Borrowed { version: PROTOCOL_VERSION, message, auth }).unwrap_or_default()
}

/// Encodes a message for a peer speaking `version`: protocol 3 gets protocol 3's shapes; any other version
/// (the current one, or one this build does not know) gets the current protocol.
pub fn encode_for(version: u16, message: &Message) -> Vec<u8> {
    encode_for_with_auth(version, message, None)
}

/// As [`encode_for`], with `auth`. A protocol 3 peer gets it too, and ignores it.
pub fn encode_for_with_auth(version: u16, message: &Message, auth: Option<&[u8]>) -> Vec<u8> {
    if version == crate::v3::VERSION {
        let old = crate::v3::Message::from(message);
        return postcard::to_allocvec(&Borrowed { version, message: &old, auth }).unwrap_or_default();
    }
    encode_with_auth(message, auth)
}

/// Decodes a payload, refusing oversize payloads, unsupported protocol versions and malformed bytes. A protocol
/// 3 payload comes back in today's shapes, with `version: 3`.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    if bytes.len() > crate::MAX_PAYLOAD {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let (version, _) = postcard::take_from_bytes::<u16>(bytes).map_err(|_| DecodeError::Malformed)?;
    let (envelope, rest) = match version {
        PROTOCOL_VERSION => postcard::take_from_bytes::<Envelope>(bytes).map_err(|_| DecodeError::Malformed)?,
        crate::v3::VERSION => {
            let (old, rest) =
                postcard::take_from_bytes::<crate::v3::Envelope>(bytes).map_err(|_| DecodeError::Malformed)?;
            (Envelope { version: old.version, message: old.message.into(), auth: old.auth }, rest)
        }
        other => return Err(DecodeError::UnsupportedVersion(other)),
    };
    if !rest.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::message::{
        EngineProfile, EngineTarget, Event, EventKind, EventsAck, Heartbeat, Hello, InstanceSpec, InstanceState,
        InstanceStatus, InstanceUsage, LogLine, LogStream, ModuleChunk, ModuleReply, ModuleRequest, NodeSpec,
        NodeStatus, NodeUsage, Outage, Resources, RestartPolicy, VolumeSpec,
    };

    fn hello() -> Message {
        Message::Hello(Hello {
            agent_version: "0.1.0".to_string(),
            board: "rpi-4".to_string(),
            arch: "aarch64".to_string(),
            engine: EngineProfile { target: EngineTarget::Aarch64, memory_reservation: 1 << 24, memory_guard: 1 << 16 },
            capacity: Resources { cpu_millis: 4000, memory_bytes: 4 << 30 },
            labels: vec![("zone".to_string(), "a".to_string())],
            applied_generation: 7,
            store_id: 300,
            reserved: Resources { cpu_millis: 100, memory_bytes: 0 },
        })
    }

    /// One message of every kind, as both versions can carry it (protocol 4's extra fields at 0).
    fn samples() -> Vec<Message> {
        vec![
            hello(),
            Message::Heartbeat(Heartbeat {
                at_ms: 8,
                applied_generation: 2,
                instances: vec![InstanceStatus {
                    id: "x".to_string(),
                    state: InstanceState::Running,
                    restarts: 1,
                    started_at_ms: Some(5),
                    exit_code: None,
                    reason: None,
                }],
                events_dropped: 1,
                last_event_seq: 44,
                oldest_unacked_seq: 40,
                last_outage: Some(Outage {
                    started_ms: 1,
                    ended_ms: 2,
                    events_buffered: 3,
                    events_dropped: 1,
                    logs_buffered: 9,
                    logs_dropped: 0,
                }),
                store_id: 0,
            }),
            Message::Spec(NodeSpec {
                issuer: 0,
                generation: 3,
                instances: vec![InstanceSpec {
                    id: "t-1".to_string(),
                    namespace: "default".to_string(),
                    workload: "t".to_string(),
                    module: [0xab; 32],
                    module_size: 10,
                    args: vec!["a".to_string()],
                    env: vec![("K".to_string(), "V".to_string())],
                    cpu_millis: 250,
                    memory_limit_bytes: 1 << 20,
                    restart: RestartPolicy::OnFailure,
                    cpu_limit_millis: 200,
                    timeout_ms: 0,
                    volumes: vec![VolumeSpec { name: "data".to_string(), size_bytes: 1 << 20 }],
                }],
            }),
            Message::Events(vec![Event {
                seq: 9,
                at_ms: 1,
                instance: "x".to_string(),
                restarts: 2,
                kind: EventKind::Exited { code: 3 },
            }]),
            Message::Logs(vec![LogLine {
                instance: "x".to_string(),
                stream: LogStream::Stderr,
                at_ms: 5,
                line: "boom".to_string(),
            }]),
            Message::ModuleRequest(ModuleRequest {
                module: [1; 32],
                artifact: Some(EngineProfile {
                    target: EngineTarget::Pulley32,
                    memory_reservation: 1 << 20,
                    memory_guard: 0,
                }),
                offset: 7,
                max_len: 9,
            }),
            Message::ModuleReply(ModuleReply::Chunk(ModuleChunk {
                module: [2; 32],
                artifact: None,
                sha256: [3; 32],
                offset: 0,
                total: 2,
                data: vec![0, 97],
            })),
            Message::Status(NodeStatus { online: false }),
            Message::EventsAck(EventsAck { store_id: 0, up_to: 44 }),
            Message::HelloRequest,
        ]
    }

    // Golden vectors: if one of these changes, the wire format changed. That needs a PROTOCOL_VERSION bump.
    #[test]
    fn golden_hello() {
        assert_eq!(
            encode(&hello()),
            vec![
                4, 0, 5, 48, 46, 49, 46, 48, 5, 114, 112, 105, 45, 52, 7, 97, 97, 114, 99, 104, 54, 52, 1, 128, 128,
                128, 8, 128, 128, 4, 160, 31, 128, 128, 128, 128, 16, 1, 4, 122, 111, 110, 101, 1, 97, 7, 172, 2, 100,
                0, 0
            ]
        );
    }

    /// Usage, appended after the join messages (index 12) without a bump: only nodes send it.
    #[test]
    fn golden_usage() {
        let usage = Message::Usage(NodeUsage {
            at_ms: 8,
            window_ms: 60_000,
            instances: vec![InstanceUsage { id: "x".to_string(), cpu_millis: 250, memory_bytes: 1 << 20 }],
        });
        let bytes = encode(&usage);
        assert_eq!(bytes, vec![4, 12, 8, 224, 212, 3, 1, 1, 120, 250, 1, 128, 128, 64, 0]);
        assert_eq!(decode(&bytes).unwrap().message, usage);
        // A protocol 3 peer is never sent one; the conversion stays total with a harmless stand-in.
        assert_eq!(decode(&encode_for(3, &usage)).unwrap().message, Message::HelloRequest);
    }

    #[test]
    fn golden_v4_bodies_that_differ_from_v3() {
        let ack = Message::EventsAck(EventsAck { store_id: 300, up_to: 44 });
        assert_eq!(encode(&ack), vec![4, 8, 172, 2, 44, 0]);
        let spec = Message::Spec(NodeSpec { issuer: 5, generation: 3, instances: vec![] });
        assert_eq!(encode(&spec), vec![4, 2, 5, 3, 0, 0]);
        let Message::Heartbeat(mut hb) = samples()[1].clone() else { unreachable!() };
        hb.store_id = 300;
        let bytes = encode(&Message::Heartbeat(hb.clone()));
        assert_eq!(&bytes[bytes.len() - 3..], &[172, 2, 0], "store_id is the heartbeat's last field");
        assert_eq!(decode(&bytes).unwrap().message, Message::Heartbeat(hb));
    }

    /// Protocol 3 bytes of [`samples`], as a protocol 3 peer wrote them (captured from the v3 build, commit
    /// 01895bf): the fixtures a v3 agent sends and is served with.
    const V3_FIXTURES: [&[u8]; 10] = [
        &[
            3, 0, 5, 48, 46, 49, 46, 48, 5, 114, 112, 105, 45, 52, 7, 97, 97, 114, 99, 104, 54, 52, 1, 128, 128, 128,
            8, 128, 128, 4, 160, 31, 128, 128, 128, 128, 16, 1, 4, 122, 111, 110, 101, 1, 97, 7, 172, 2, 100, 0, 0,
        ],
        &[3, 1, 8, 2, 1, 1, 120, 2, 1, 1, 5, 0, 0, 1, 44, 40, 1, 1, 2, 3, 1, 9, 0, 0],
        &[
            3, 2, 3, 1, 3, 116, 45, 49, 7, 100, 101, 102, 97, 117, 108, 116, 1, 116, 171, 171, 171, 171, 171, 171, 171,
            171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171,
            171, 171, 171, 171, 10, 1, 1, 97, 1, 1, 75, 1, 86, 250, 1, 128, 128, 64, 1, 200, 1, 0, 1, 4, 100, 97, 116,
            97, 128, 128, 64, 0,
        ],
        &[3, 3, 1, 9, 1, 1, 120, 2, 2, 6, 0],
        &[3, 4, 1, 1, 120, 1, 5, 4, 98, 111, 111, 109, 0],
        &[
            3, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2,
            128, 128, 64, 0, 7, 9, 0,
        ],
        &[
            3, 6, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0,
            3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 2, 2, 0,
            97, 0,
        ],
        &[3, 7, 0, 0],
        &[3, 8, 44, 0],
        &[3, 9, 0],
    ];

    #[test]
    fn protocol_3_fixtures_decode_and_are_what_encode_for_3_writes() {
        for (message, fixture) in samples().into_iter().zip(V3_FIXTURES) {
            let bytes = encode_for(3, &message);
            assert_eq!(bytes, fixture, "{message:?}");
            assert_eq!(decode(fixture).unwrap().message, message);
            let envelope = decode(&bytes).unwrap();
            assert_eq!(envelope.version, 3);
            assert_eq!(envelope.message, message);
        }
    }

    #[test]
    fn a_v3_peer_loses_only_the_fields_it_does_not_know() {
        let ack = Message::EventsAck(EventsAck { store_id: 300, up_to: 44 });
        assert_eq!(
            decode(&encode_for(3, &ack)).unwrap().message,
            Message::EventsAck(EventsAck { store_id: 0, up_to: 44 })
        );
        let spec = Message::Spec(NodeSpec { issuer: 9, generation: 3, instances: vec![] });
        let Message::Spec(old) = decode(&encode_for(3, &spec)).unwrap().message else { panic!() };
        assert_eq!((old.issuer, old.generation), (0, 3));
        assert_eq!(encode_for(4, &ack), encode(&ack));
    }

    #[test]
    fn auth_travels_after_the_message_and_comes_back() {
        for m in samples() {
            let bytes = encode_with_auth(&m, Some(&[9; 24]));
            let plain = encode(&m);
            assert_eq!(&bytes[..plain.len() - 1], &plain[..plain.len() - 1], "only the tail differs");
            let env = decode(&bytes).unwrap();
            assert_eq!((env.message, env.auth), (m.clone(), Some(vec![9; 24])));
            let old = decode(&encode_for_with_auth(3, &m, Some(&[1, 2]))).unwrap();
            assert_eq!((old.version, old.auth), (3, Some(vec![1, 2])));
        }
    }

    #[test]
    fn round_trips_every_kind() {
        for m in samples() {
            let env = decode(&encode(&m)).unwrap();
            assert_eq!(env.version, PROTOCOL_VERSION);
            assert_eq!(env.message, m);
            assert_eq!(env.auth, None);
        }
    }

    #[test]
    fn refuses_garbage_versions_and_oversize() {
        assert_eq!(decode(&[]), Err(DecodeError::Malformed));
        assert_eq!(decode(&[3, 250, 3]), Err(DecodeError::Malformed));
        assert_eq!(decode(&[1, 0]), Err(DecodeError::UnsupportedVersion(1)));
        assert_eq!(decode(&[2, 0]), Err(DecodeError::UnsupportedVersion(2)));
        assert_eq!(decode(&[5, 0]), Err(DecodeError::UnsupportedVersion(5)));
        let mut trailing = encode(&hello());
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(DecodeError::Malformed));
        assert_eq!(decode(&vec![0; crate::MAX_PAYLOAD + 1]), Err(DecodeError::TooLarge(crate::MAX_PAYLOAD + 1)));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics() {
        // A cheap deterministic fuzz: every prefix and every single-byte corruption of valid payloads.
        let valid = encode(&hello());
        for cut in 0..valid.len() {
            let _ = decode(&valid[..cut]);
        }
        for i in 0..valid.len() {
            for b in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut v = valid.clone();
                v[i] = b;
                let _ = decode(&v);
            }
        }
    }
}
