//! A small MQTT 3.1.1 codec for the client side, without allocation: what the node sends (CONNECT with Last
//! Will and credentials, SUBSCRIBE, PUBLISH at QoS 0/1, PUBACK, PINGREQ, DISCONNECT) is written into a caller's
//! buffer, and what it receives (CONNACK, SUBACK, PUBLISH, PUBACK, PINGRESP) is parsed in place, borrowing the
//! buffer. Pure: no I/O (`crate::link` does it).
//!
//! Why our own: the embedded broker speaks 3.1.1 only, and the maintained `no_std` clients over
//! `embedded-io-async` speak MQTT 5 (`rust-mqtt`, `minimq`) or sit on other I/O traits (`mqttrust`). The tests
//! check every packet against the broker's own codec (`rumqttc::mqttbytes::v4`) byte for byte.
//!
//! **Invariant:** no input panics: lengths are checked before slicing, the remaining length is at most four
//! bytes of varint, and strings must be UTF-8.

/// Why a packet could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer is too small for the packet.
    BufferTooSmall,
    /// A string or payload is longer than MQTT allows (65,535 bytes for strings, 256 MiB for a packet).
    TooLong,
}

/// Why received bytes are not a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Malformed: a bad remaining length, a truncated field, invalid UTF-8, an unknown packet type.
    Malformed,
}

/// QoS of a publish (QoS 2 is neither sent nor subscribed to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
}

/// The Last Will the broker publishes when the connection ends uncleanly.
#[derive(Debug, Clone, Copy)]
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: QoS,
    pub retain: bool,
}

/// What CONNECT says.
#[derive(Debug, Clone, Copy)]
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub keep_alive_secs: u16,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub will: Option<Will<'a>>,
}

/// A PUBLISH, outgoing or received (then borrowing the receive buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: QoS,
    pub retain: bool,
    /// Non-zero for QoS 1.
    pub pkid: u16,
}

/// A packet the broker sends a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// `session_present`, return code (0: accepted).
    ConnAck {
        code: u8,
    },
    SubAck {
        pkid: u16,
        refused: bool,
    },
    Publish(Publish<'a>),
    PubAck {
        pkid: u16,
    },
    PingResp,
    /// Anything else a client may get and can ignore (UNSUBACK, QoS 2 flow).
    Other,
}

/// The size of the packet at the start of `buf`: `Ok(Some((header_len, total_len)))`, `Ok(None)` while more
/// bytes are needed to know.
pub fn frame(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut len: usize = 0;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else { return Ok(None) };
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((2 + i, 2 + i + len)));
        }
    }
    Err(DecodeError::Malformed)
}

/// Parses one whole packet (`packet` is exactly [`frame`]'s total length).
pub fn decode(packet: &[u8]) -> Result<Incoming<'_>, DecodeError> {
    let (header, total) = frame(packet)?.ok_or(DecodeError::Malformed)?;
    if total != packet.len() {
        return Err(DecodeError::Malformed);
    }
    let first = packet[0];
    let body = &packet[header..];
    let u16_at = |at: usize| -> Result<u16, DecodeError> {
        match body.get(at..at + 2) {
            Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
            None => Err(DecodeError::Malformed),
        }
    };
    match first >> 4 {
        2 => Ok(Incoming::ConnAck { code: *body.get(1).ok_or(DecodeError::Malformed)? }),
        3 => {
            let qos = match (first >> 1) & 3 {
                0 => QoS::AtMostOnce,
                1 | 2 => QoS::AtLeastOnce,
                _ => return Err(DecodeError::Malformed),
            };
            let topic_len = usize::from(u16_at(0)?);
            let topic = body.get(2..2 + topic_len).ok_or(DecodeError::Malformed)?;
            let topic = core::str::from_utf8(topic).map_err(|_| DecodeError::Malformed)?;
            let mut at = 2 + topic_len;
            let pkid = if (first >> 1) & 3 == 0 {
                0
            } else {
                at += 2;
                u16_at(at - 2)?
            };
            let payload = body.get(at..).ok_or(DecodeError::Malformed)?;
            Ok(Incoming::Publish(Publish { topic, payload, qos, retain: first & 1 == 1, pkid }))
        }
        4 => Ok(Incoming::PubAck { pkid: u16_at(0)? }),
        9 => {
            let pkid = u16_at(0)?;
            let codes = body.get(2..).ok_or(DecodeError::Malformed)?;
            Ok(Incoming::SubAck { pkid, refused: codes.is_empty() || codes.contains(&0x80) })
        }
        13 => Ok(Incoming::PingResp),
        5 | 6 | 7 | 11 => Ok(Incoming::Other),
        _ => Err(DecodeError::Malformed),
    }
}

/// Writes into a fixed buffer, refusing to overrun it.
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        let end = self.at.checked_add(b.len()).ok_or(EncodeError::BufferTooSmall)?;
        self.buf.get_mut(self.at..end).ok_or(EncodeError::BufferTooSmall)?.copy_from_slice(b);
        self.at = end;
        Ok(())
    }

    fn u16(&mut self, v: u16) -> Result<(), EncodeError> {
        self.bytes(&v.to_be_bytes())
    }

    /// A length-prefixed string or binary field.
    fn field(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        self.u16(u16::try_from(b.len()).map_err(|_| EncodeError::TooLong)?)?;
        self.bytes(b)
    }
}

/// Writes the fixed header for `first` and `remaining` bytes, then `body` writes them.
fn packet(
    buf: &mut [u8],
    first: u8,
    remaining: usize,
    body: impl FnOnce(&mut Writer<'_>) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    if remaining > 268_435_455 {
        return Err(EncodeError::TooLong);
    }
    let mut w = Writer { buf, at: 0 };
    w.bytes(&[first])?;
    let mut len = remaining;
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        w.bytes(&[b])?;
        if len == 0 {
            break;
        }
    }
    let start = w.at;
    body(&mut w)?;
    debug_assert_eq!(w.at - start, remaining);
    Ok(w.at)
}

/// CONNECT (clean session: the node resubscribes and re-announces on every connection).
pub fn connect(buf: &mut [u8], c: &Connect<'_>) -> Result<usize, EncodeError> {
    let mut remaining = 10 + 2 + c.client_id.len();
    let mut flags = 0x02u8;
    if let Some(w) = &c.will {
        remaining += 2 + w.topic.len() + 2 + w.payload.len();
        flags |= 0x04 | ((w.qos as u8) << 3) | if w.retain { 0x20 } else { 0 };
    }
    if let Some(u) = c.username {
        remaining += 2 + u.len();
        flags |= 0x80;
    }
    if let Some(p) = c.password {
        remaining += 2 + p.len();
        flags |= 0x40;
    }
    packet(buf, 0x10, remaining, |w| {
        w.field(b"MQTT")?;
        w.bytes(&[4, flags])?;
        w.u16(c.keep_alive_secs)?;
        w.field(c.client_id.as_bytes())?;
        if let Some(will) = &c.will {
            w.field(will.topic.as_bytes())?;
            w.field(will.payload)?;
        }
        if let Some(u) = c.username {
            w.field(u.as_bytes())?;
        }
        if let Some(p) = c.password {
            w.field(p)?;
        }
        Ok(())
    })
}

/// SUBSCRIBE to one filter at QoS 1.
pub fn subscribe(buf: &mut [u8], pkid: u16, filter: &str) -> Result<usize, EncodeError> {
    packet(buf, 0x82, 2 + 2 + filter.len() + 1, |w| {
        w.u16(pkid)?;
        w.field(filter.as_bytes())?;
        w.bytes(&[1])
    })
}

/// PUBLISH (`p.pkid` is used for QoS 1 only).
pub fn publish(buf: &mut [u8], p: &Publish<'_>) -> Result<usize, EncodeError> {
    let id = if p.qos == QoS::AtLeastOnce { 2 } else { 0 };
    let first = 0x30 | ((p.qos as u8) << 1) | u8::from(p.retain);
    packet(buf, first, 2 + p.topic.len() + id + p.payload.len(), |w| {
        w.field(p.topic.as_bytes())?;
        if id > 0 {
            w.u16(p.pkid)?;
        }
        w.bytes(p.payload)
    })
}

pub fn puback(buf: &mut [u8], pkid: u16) -> Result<usize, EncodeError> {
    packet(buf, 0x40, 2, |w| w.u16(pkid))
}

pub fn pingreq(buf: &mut [u8]) -> Result<usize, EncodeError> {
    packet(buf, 0xc0, 0, |_| Ok(()))
}

pub fn disconnect(buf: &mut [u8]) -> Result<usize, EncodeError> {
    packet(buf, 0xe0, 0, |_| Ok(()))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use bytes::BytesMut;
    use rumqttc::mqttbytes::v4 as theirs;
    use rumqttc::mqttbytes::QoS as TheirQoS;

    use super::*;

    fn ours(f: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>) -> Vec<u8> {
        let mut buf = [0u8; 512];
        let n = f(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn written(p: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut b = BytesMut::new();
        p(&mut b);
        b.to_vec()
    }

    #[test]
    fn outgoing_packets_are_what_the_brokers_codec_writes() {
        let will =
            Will { topic: "edge/v1/nodes/n/status", payload: &[4, 7, 0, 0], qos: QoS::AtLeastOnce, retain: true };
        let c = Connect {
            client_id: "n",
            keep_alive_secs: 15,
            username: Some("n"),
            password: Some(b"secret"),
            will: Some(will),
        };
        let mut expected = theirs::Connect::new("n");
        expected.keep_alive = 15;
        expected.clean_session = true;
        expected.set_login("n", "secret");
        expected.last_will =
            Some(theirs::LastWill::new("edge/v1/nodes/n/status", &[4u8, 7, 0, 0][..], TheirQoS::AtLeastOnce, true));
        assert_eq!(ours(|b| connect(b, &c)), written(|b| drop(expected.write(b))));
        let bare = Connect { client_id: "join.ab", keep_alive_secs: 15, username: None, password: None, will: None };
        let mut expected = theirs::Connect::new("join.ab");
        expected.keep_alive = 15;
        expected.clean_session = true;
        assert_eq!(ours(|b| connect(b, &bare)), written(|b| drop(expected.write(b))));

        let sub = theirs::Subscribe::new("edge/v1/nodes/n/spec", TheirQoS::AtLeastOnce);
        let mut sub = sub;
        sub.pkid = 3;
        assert_eq!(ours(|b| subscribe(b, 3, "edge/v1/nodes/n/spec")), written(|b| drop(sub.write(b))));

        let payload = [9u8; 300];
        for (qos, their) in [(QoS::AtMostOnce, TheirQoS::AtMostOnce), (QoS::AtLeastOnce, TheirQoS::AtLeastOnce)] {
            let p = Publish { topic: "t/x", payload: &payload, qos, retain: false, pkid: 7 };
            let mut expected = theirs::Publish::new("t/x", their, payload.to_vec());
            expected.pkid = if qos == QoS::AtLeastOnce { 7 } else { 0 };
            assert_eq!(ours(|b| publish(b, &p)), written(|b| drop(expected.write(b))));
        }
        assert_eq!(ours(|b| puback(b, 9)), written(|b| drop(theirs::PubAck::new(9).write(b))));
        assert_eq!(ours(pingreq), written(|b| drop(theirs::PingReq.write(b))));
        assert_eq!(ours(disconnect), written(|b| drop(theirs::Disconnect.write(b))));
    }

    #[test]
    fn incoming_packets_parse_as_the_broker_writes_them() {
        let ack = written(|b| drop(theirs::ConnAck::new(theirs::ConnectReturnCode::NotAuthorized, false).write(b)));
        assert_eq!(decode(&ack), Ok(Incoming::ConnAck { code: 5 }));
        let mut p = theirs::Publish::new("edge/v1/nodes/n/spec", TheirQoS::AtLeastOnce, vec![1, 2, 3]);
        p.pkid = 42;
        p.retain = true;
        let bytes = written(|b| drop(p.write(b)));
        assert_eq!(frame(&bytes), Ok(Some((2, bytes.len()))));
        let Ok(Incoming::Publish(got)) = decode(&bytes) else { panic!() };
        assert_eq!(
            (got.topic, got.payload, got.qos, got.retain, got.pkid),
            ("edge/v1/nodes/n/spec", &[1u8, 2, 3][..], QoS::AtLeastOnce, true, 42)
        );
        let sub = written(|b| {
            drop(theirs::SubAck::new(4, vec![theirs::SubscribeReasonCode::Success(TheirQoS::AtLeastOnce)]).write(b))
        });
        assert_eq!(decode(&sub), Ok(Incoming::SubAck { pkid: 4, refused: false }));
        let refused = written(|b| drop(theirs::SubAck::new(4, vec![theirs::SubscribeReasonCode::Failure]).write(b)));
        assert_eq!(decode(&refused), Ok(Incoming::SubAck { pkid: 4, refused: true }));
        assert_eq!(decode(&written(|b| drop(theirs::PingResp.write(b)))), Ok(Incoming::PingResp));
        assert_eq!(decode(&written(|b| drop(theirs::PubAck::new(5).write(b)))), Ok(Incoming::PubAck { pkid: 5 }));
        // A large packet's remaining length spans several bytes.
        let big = theirs::Publish::new("t", TheirQoS::AtMostOnce, vec![0u8; 20_000]);
        let bytes = written(|b| drop(big.write(b)));
        assert_eq!(frame(&bytes[..4]), Ok(Some((4, bytes.len()))));
        assert_eq!(frame(&bytes[..3]), Ok(None));
    }

    #[test]
    fn garbage_never_panics() {
        assert_eq!(frame(&[0x30, 0xff, 0xff, 0xff, 0xff]), Err(DecodeError::Malformed));
        let mut p = theirs::Publish::new("topic", TheirQoS::AtLeastOnce, vec![1, 2, 3]);
        p.pkid = 1;
        let valid = written(|b| drop(p.write(b)));
        for cut in 0..valid.len() {
            let _ = decode(&valid[..cut]);
        }
        for i in 0..valid.len() {
            for b in [0u8, 0x7f, 0x80, 0xff] {
                let mut v = valid.clone();
                v[i] = b;
                let _ = frame(&v);
                let _ = decode(&v);
            }
        }
        let mut tiny = [0u8; 3];
        assert_eq!(subscribe(&mut tiny, 1, "long/filter"), Err(EncodeError::BufferTooSmall));
    }
}
