//! The versioned envelope around every MQTT payload.
//!
//! Layout on the wire (postcard): `version: varint u16`, then the [`Message`], then `auth: Option<bytes>`.
//! The version comes first so a peer can refuse a newer protocol before trying to decode its body.
//! `auth` is reserved for a message authentication tag; today it is always `None`.

use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::message::Message;

/// The protocol version this build speaks. Bump it on any incompatible change to [`Message`].
pub const PROTOCOL_VERSION: u16 = 3;

/// One payload on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u16,
    pub message: Message,
    /// Reserved for a signature or MAC over `version` and `message` (a later protocol feature).
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
            DecodeError::UnsupportedVersion(v) => {
                write!(f, "protocol version {v} is not supported (this build speaks {PROTOCOL_VERSION})")
            }
            DecodeError::Malformed => f.write_str("payload is not a valid envelope"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Encodes a message in the current protocol version, without an authentication tag.
pub fn encode(message: &Message) -> Vec<u8> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        version: u16,
        message: &'a Message,
        auth: Option<&'a [u8]>,
    }
    // Serialising owned data to a Vec cannot fail: every type here is plain data with serde derives.
    postcard::to_allocvec(&Borrowed { version: PROTOCOL_VERSION, message, auth: None }).unwrap_or_default()
}

/// Decodes a payload, refusing oversize payloads, other protocol versions and malformed bytes.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    if bytes.len() > crate::MAX_PAYLOAD {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let (version, _) = postcard::take_from_bytes::<u16>(bytes).map_err(|_| DecodeError::Malformed)?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let (envelope, rest) = postcard::take_from_bytes::<Envelope>(bytes).map_err(|_| DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;

    use super::*;
    use crate::message::{
        EngineProfile, EngineTarget, Event, EventKind, Heartbeat, Hello, InstanceSpec, LogLine, LogStream, NodeSpec,
        NodeStatus, Outage, Resources, RestartPolicy, VolumeSpec,
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

    // Golden vectors: if one of these changes, the wire format changed. That needs a PROTOCOL_VERSION bump.
    #[test]
    fn golden_hello() {
        assert_eq!(
            encode(&hello()),
            vec![
                3, 0, 5, 48, 46, 49, 46, 48, 5, 114, 112, 105, 45, 52, 7, 97, 97, 114, 99, 104, 54, 52, 1, 128, 128,
                128, 8, 128, 128, 4, 160, 31, 128, 128, 128, 128, 16, 1, 4, 122, 111, 110, 101, 1, 97, 7, 172, 2, 100,
                0, 0
            ]
        );
    }

    #[test]
    fn golden_status() {
        assert_eq!(encode(&Message::Status(NodeStatus { online: false })), vec![3, 7, 0, 0]);
    }

    #[test]
    fn golden_spec() {
        let spec = Message::Spec(NodeSpec {
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
        });
        let bytes = encode(&spec);
        assert_eq!(&bytes[..4], &[3, 2, 3, 1]);
        assert_eq!(decode(&bytes).unwrap().message, spec);
    }

    #[test]
    fn round_trips_every_kind() {
        let messages = [
            hello(),
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
            Message::Heartbeat(Heartbeat {
                at_ms: 8,
                applied_generation: 2,
                instances: vec![],
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
            }),
            Message::EventsAck(44),
            Message::HelloRequest,
        ];
        for m in messages {
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
