//! One network connection: CONNECT handshake, then a single task multiplexing reads, writes, queue wake-ups,
//! the keep-alive deadline, kills and shutdown.
//!
//! The task never blocks the router: it takes the lock only for short synchronous calls, asks the policy
//! outside it, and encodes and writes outside it. Memory per connection is bounded: the read buffer by
//! `max_packet_size` (a larger header closes the connection before its body arrives) plus one read, the write
//! buffer by [`WRITE_HIGH_WATER`] plus one batch (above it the task neither reads nor takes from the queue, so
//! a client that does not read cannot make the broker buffer acks for it).
//!
//! Inbound pace: each packet handled spends its size and one packet from the connection's [`Inbound`] buckets
//! (`Config::inbound_bytes`, `Config::inbound_packets`). Once they say wait, the task handles nothing more and
//! reads nothing more until they refill: the unread bytes stay in the kernel, TCP's window closes and the
//! client's own writes block. So a flooding client slows itself down while every other connection is served,
//! and it is not disconnected (its keep-alive deadline is suspended while it waits, and restarts after).
//!
//! Every way out ends in [`Router::detach`](crate::router::Router::detach); only a clean DISCONNECT skips the
//! Last Will.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Login, Packet, PubAck, PubComp, PubRec, Publish, SubAck, UnsubAck,
};
use rumqttc::mqttbytes::{Error as CodecError, Protocol, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, sleep_until, timeout_at, Instant};
use tracing::debug;

use crate::broker::Shared;
use crate::message::{cap_qos, Message};
use crate::policy::{Credentials, Identity, Refusal};
use crate::rate::Inbound;
use crate::router::Attach;
use crate::session::{ConnId, Outgoing, SessionId, Signal};
use crate::stats::bump;
use crate::topic::{valid_filter, valid_topic_name, SHARED_PREFIX};

/// Above this many unwritten bytes the task stops reading and stops taking from the queue.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Messages and bytes taken from the queue per lock.
const TAKE_MAX: usize = 64;
const TAKE_BUDGET: usize = 128 * 1024;
const READ_CHUNK: usize = 16 * 1024;
/// Longest client id accepted (MQTT 3.1.1 lets a server choose; 23 is the minimum it must allow).
pub(crate) const MAX_CLIENT_ID: usize = 256;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client sent DISCONNECT: no will.
    Clean,
    /// Socket closed or failed.
    Lost,
    /// Malformed, oversize or out-of-order packet.
    Protocol(&'static str),
    /// No packet within 1.5 × keep alive.
    Expired,
    /// Taken over, kicked, disconnected as a slow consumer, or shut down: whoever did it has already ended the
    /// attachment.
    Stopped,
}

/// What a connection runs over: a TCP socket, or a TLS stream on one.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Decrements the open-connection gauge however the connection ends (from its TLS handshake on, if any).
pub(crate) struct OpenGuard(pub(crate) Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.stats.connections_open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Serves one accepted socket to the end; its CONNECT must have arrived by `deadline` (the accept's time plus
/// `connect_timeout`, which a TLS handshake before it shares). `_done` is held until the task ends (shutdown
/// waits for all of them).
pub(crate) async fn serve(
    shared: Arc<Shared>,
    _open: OpenGuard,
    mut stream: impl Stream,
    peer: SocketAddr,
    deadline: Instant,
    _done: mpsc::Sender<()>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    let conn = ConnId(shared.next_conn());
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let connect = tokio::select! {
        c = timeout_at(deadline, read_connect(&mut stream, &mut rbuf, shared.max_packet_size)) => c,
        _ = shutdown.wait_for(|stop| *stop) => return,
    };
    let connect = match connect {
        Ok(Ok(c)) => c,
        Ok(Err(End::Lost)) => return,
        Ok(Err(_)) | Err(_) => {
            bump(&shared.stats.protocol_errors);
            return;
        }
    };
    let live = match accept(&shared, connect, conn, peer) {
        Ok(live) => live,
        Err(Rejected::Code(code)) => {
            bump(&shared.stats.connect_refused);
            write_packet_now(&mut stream, &Packet::ConnAck(ConnAck::new(code, false))).await;
            return;
        }
        Err(Rejected::Malformed) => {
            bump(&shared.stats.protocol_errors);
            return;
        }
    };
    let mut wbuf = BytesMut::new();
    let ack = ConnAck::new(ConnectReturnCode::Success, live.session_present);
    let end = match encode(&mut wbuf, &Packet::ConnAck(ack)) {
        Ok(()) => run(&shared, &live, &mut stream, rbuf, wbuf, &mut shutdown).await,
        Err(e) => e,
    };
    debug!(client_id = %live.client_id, ?end, "connection ended");
    match end {
        End::Protocol(_) => bump(&shared.stats.protocol_errors),
        End::Expired => bump(&shared.stats.keep_alive_expired),
        _ => {}
    }
    shared.router().detach(live.session, live.conn, end != End::Clean);
}

/// Reads until one whole packet is buffered; it must be CONNECT.
async fn read_connect(stream: &mut impl Stream, rbuf: &mut BytesMut, max: usize) -> Result<Connect, End> {
    loop {
        match Packet::read(rbuf, max) {
            Ok(Packet::Connect(c)) => return Ok(c),
            Ok(_) => return Err(End::Protocol("first packet is not CONNECT")),
            Err(CodecError::InsufficientBytes(_)) => {}
            Err(_) => return Err(End::Protocol("bad CONNECT")),
        }
        rbuf.reserve(READ_CHUNK);
        match stream.read_buf(rbuf).await {
            Ok(0) | Err(_) => return Err(End::Lost),
            Ok(_) => {}
        }
    }
}

/// An attached connection.
struct Live {
    client_id: Arc<str>,
    identity: Identity,
    session: SessionId,
    conn: ConnId,
    session_present: bool,
    signal: Arc<Signal>,
    /// 1.5 × the client's keep alive; `None` for keep alive 0 (no timeout, as MQTT says).
    grace: Option<Duration>,
}

enum Rejected {
    Code(ConnectReturnCode),
    Malformed,
}

impl From<Refusal> for Rejected {
    fn from(r: Refusal) -> Rejected {
        Rejected::Code(r.code())
    }
}

/// Checks a CONNECT, asks the policy, attaches to the router.
fn accept(shared: &Shared, connect: Connect, conn: ConnId, peer: SocketAddr) -> Result<Live, Rejected> {
    if connect.protocol != Protocol::V4 {
        return Err(Rejected::Code(ConnectReturnCode::RefusedProtocolVersion));
    }
    let client_id: Arc<str> = match (connect.client_id.is_empty(), connect.clean_session) {
        // MQTT 3.1.1 section 3.1.3.1: the server assigns an id to a clean session that sent none.
        (true, true) => format!("auto-{}", conn.0).into(),
        (true, false) => return Err(Refusal::BadClientId.into()),
        (false, _) if connect.client_id.len() > MAX_CLIENT_ID => return Err(Refusal::BadClientId.into()),
        (false, _) => connect.client_id.into(),
    };
    let will = match connect.last_will {
        Some(w) if !valid_topic_name(&w.topic) => return Err(Rejected::Malformed),
        Some(w) => Some(Message::new(w.topic, Bytes::copy_from_slice(&w.message), cap_qos(w.qos), w.retain)),
        None => None,
    };
    let (username, password) = match &connect.login {
        Some(Login { username, password }) => {
            (Some(username.as_str()).filter(|u| !u.is_empty()), Some(password.as_bytes()).filter(|p| !p.is_empty()))
        }
        None => (None, None),
    };
    let credentials = Credentials { client_id: &client_id, username, password, peer };
    let identity = shared.policy.connect(&credentials)?;
    if let Some(w) = &will {
        if !shared.policy.may_publish(&identity, &w.topic) {
            return Err(Refusal::NotAuthorized.into());
        }
    }
    let signal = Arc::new(Signal::default());
    let attached = shared.router().attach(Attach {
        client_id: client_id.clone(),
        identity: identity.clone(),
        clean: connect.clean_session,
        will,
        local: false,
        conn,
        signal: signal.clone(),
    })?;
    let grace = (connect.keep_alive > 0).then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
    Ok(Live {
        client_id,
        identity,
        session: attached.session,
        conn,
        session_present: attached.session_present,
        signal,
        grace,
    })
}

/// The attached connection's loop.
async fn run(
    shared: &Shared,
    live: &Live,
    stream: &mut impl Stream,
    mut rbuf: BytesMut,
    mut wbuf: BytesMut,
    shutdown: &mut watch::Receiver<bool>,
) -> End {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut batch: Vec<Outgoing> = Vec::new();
    // Bytes handed to the stream but perhaps not to the socket: a TLS stream buffers what it encrypts and says
    // "written" before the socket took it, so once `wbuf` is empty the stream is flushed.
    let mut unflushed = false;
    // Whether the session queue may hold something to send; set by wake-ups, acks and subscribes.
    let mut pull = true;
    let mut last_packet = Instant::now();
    let mut inbound = Inbound::new(shared.inbound_bytes, shared.inbound_packets, last_packet.into_std());
    // Whether `rbuf` may hold whole packets not handled yet: those that arrived with CONNECT, bytes just read,
    // or what was left when the inbound rate said wait. Nothing more is read until they are handled.
    let mut pending = true;
    loop {
        if pending && wbuf.len() < WRITE_HIGH_WATER && inbound.wait(Instant::now().into_std()).is_zero() {
            match handle_buffered(shared, live, &mut rbuf, &mut wbuf, &mut pull, &mut last_packet, &mut inbound) {
                Ok(paused) => {
                    pending = paused;
                    if paused {
                        bump(&shared.stats.inbound_throttled);
                    }
                }
                Err(end) => return end,
            }
        }
        if pull && wbuf.len() < WRITE_HIGH_WATER {
            batch.clear();
            match shared.router().take(live.session, live.conn, TAKE_MAX, TAKE_BUDGET, &mut batch) {
                Some(more) => pull = more,
                None => return End::Stopped,
            }
            for out in batch.drain(..) {
                if let Err(end) = encode(&mut wbuf, &Packet::Publish(to_publish(out))) {
                    return end;
                }
            }
        }
        let pause = if pending { inbound.wait(Instant::now().into_std()) } else { Duration::ZERO };
        let reading = !pending && wbuf.len() < WRITE_HIGH_WATER;
        if reading {
            rbuf.reserve(READ_CHUNK);
        }
        // A client held back by its rate has sent what we have not handled yet: it is alive.
        let expiry = live.grace.filter(|_| pause.is_zero()).map(|g| last_packet + g);
        tokio::select! {
            biased;
            _ = live.signal.killed() => return End::Stopped,
            _ = shutdown.wait_for(|stop| *stop) => return End::Stopped,
            r = write_or_flush(&mut writer, &mut wbuf), if !wbuf.is_empty() || unflushed => match r {
                Ok(Some(0)) | Err(_) => return End::Lost,
                Ok(Some(_)) => unflushed = true,
                Ok(None) => unflushed = false,
            },
            r = reader.read_buf(&mut rbuf), if reading => {
                match r {
                    Ok(0) | Err(_) => return End::Lost,
                    Ok(_) => pending = true,
                }
            }
            _ = sleep(pause), if !pause.is_zero() => last_packet = Instant::now(),
            _ = live.signal.woken() => pull = true,
            _ = sleep_until(expiry.unwrap_or_else(Instant::now)), if expiry.is_some() => return End::Expired,
        }
    }
}

/// Writes from `buf`, or flushes once it is empty: `Some(bytes written)`, `None` after a flush.
async fn write_or_flush(writer: &mut (impl AsyncWrite + Unpin), buf: &mut BytesMut) -> std::io::Result<Option<usize>> {
    if buf.is_empty() {
        writer.flush().await.map(|()| None)
    } else {
        writer.write_buf(buf).await.map(Some)
    }
}

/// Handles the complete packets in `rbuf` while the inbound rate allows. `Ok(true)`: it stopped because the
/// rate says wait (packets may be left); `Ok(false)`: every complete packet was handled.
fn handle_buffered(
    shared: &Shared,
    live: &Live,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    pull: &mut bool,
    last_packet: &mut Instant,
    inbound: &mut Inbound,
) -> Result<bool, End> {
    // One clock reading per batch: time does not advance for the buckets within it, which only errs strict.
    let now = Instant::now();
    loop {
        if !inbound.wait(now.into_std()).is_zero() {
            return Ok(true);
        }
        let before = rbuf.len();
        match Packet::read(rbuf, shared.max_packet_size) {
            Ok(packet) => {
                inbound.spend(now.into_std(), before.saturating_sub(rbuf.len()));
                *last_packet = now;
                handle(shared, live, packet, wbuf, pull)?;
            }
            Err(CodecError::InsufficientBytes(_)) => return Ok(false),
            Err(CodecError::PayloadSizeLimitExceeded(_)) => return Err(End::Protocol("packet too large")),
            Err(_) => return Err(End::Protocol("malformed packet")),
        }
    }
}

fn handle(shared: &Shared, live: &Live, packet: Packet, wbuf: &mut BytesMut, pull: &mut bool) -> Result<(), End> {
    match packet {
        Packet::Publish(p) => {
            if !valid_topic_name(&p.topic) {
                return Err(End::Protocol("invalid topic name"));
            }
            if shared.policy.may_publish(&live.identity, &p.topic) {
                // Copied so a stored or queued payload owns exactly its bytes, not a slice pinning a read buffer.
                let message = Message::new(p.topic, Bytes::copy_from_slice(&p.payload), cap_qos(p.qos), p.retain);
                if !shared.router().publish(live.session, live.conn, message) {
                    return Err(End::Stopped);
                }
            } else {
                bump(&shared.stats.publish_refused);
            }
            match p.qos {
                QoS::AtMostOnce => Ok(()),
                QoS::AtLeastOnce => encode(wbuf, &Packet::PubAck(PubAck::new(p.pkid))),
                // QoS 2 is accepted with its handshake but delivered at least once (see the crate docs).
                QoS::ExactlyOnce => encode(wbuf, &Packet::PubRec(PubRec::new(p.pkid))),
            }
        }
        Packet::PubAck(a) => {
            if !shared.router().ack(live.session, live.conn, a.pkid) {
                return Err(End::Stopped);
            }
            *pull = true;
            Ok(())
        }
        Packet::PubRel(r) => encode(wbuf, &Packet::PubComp(PubComp::new(r.pkid))),
        // The broker never sends QoS 2, so these answer nothing; tolerated rather than fatal.
        Packet::PubRec(_) | Packet::PubComp(_) => Ok(()),
        Packet::Subscribe(s) => {
            let filters: Vec<(String, Option<QoS>)> = s
                .filters
                .into_iter()
                .map(|f| {
                    let ok = valid_filter(&f.path)
                        && !f.path.starts_with(SHARED_PREFIX)
                        && shared.policy.may_subscribe(&live.identity, &f.path);
                    let grant = ok.then(|| cap_qos(f.qos));
                    (f.path, grant)
                })
                .collect();
            let Some(codes) = shared.router().subscribe(live.session, live.conn, filters) else {
                return Err(End::Stopped);
            };
            *pull = true;
            encode(wbuf, &Packet::SubAck(SubAck::new(s.pkid, codes)))
        }
        Packet::Unsubscribe(u) => {
            if !shared.router().unsubscribe(live.session, live.conn, &u.topics) {
                return Err(End::Stopped);
            }
            encode(wbuf, &Packet::UnsubAck(UnsubAck::new(u.pkid)))
        }
        Packet::PingReq => encode(wbuf, &Packet::PingResp),
        Packet::Disconnect => Err(End::Clean),
        Packet::Connect(_) => Err(End::Protocol("second CONNECT")),
        Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
            Err(End::Protocol("server-to-client packet from a client"))
        }
    }
}

fn to_publish(out: Outgoing) -> Publish {
    let m = out.message;
    Publish {
        dup: out.dup,
        qos: m.qos,
        retain: m.retain,
        topic: m.topic.to_string(),
        pkid: out.pkid,
        payload: m.payload,
    }
}

fn encode(wbuf: &mut BytesMut, packet: &Packet) -> Result<(), End> {
    // Outgoing sizes are bounded by what came in (max_packet_size), so no outgoing limit is applied here.
    packet.write(wbuf, usize::MAX).map(|_| ()).map_err(|_| End::Protocol("unencodable packet"))
}

/// Writes one packet and closes our side; used for a refusing CONNACK before the socket is dropped. Bounded in
/// time: a peer that does not read cannot hold the task.
async fn write_packet_now(stream: &mut impl Stream, packet: &Packet) {
    let mut buf = BytesMut::new();
    if encode(&mut buf, packet).is_err() {
        return;
    }
    let write = async {
        stream.write_all(&buf).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::{LastWill, Subscribe, Unsubscribe};

    /// The decoder on our hostile-input path must return errors, never panic: mutate valid packets of every
    /// kind a client sends (deterministic xorshift, so a failure reproduces) and decode the results.
    #[test]
    fn decoder_survives_mutated_packets() {
        let mut connect = Connect::new("client");
        connect.set_login("user", "pass");
        connect.last_will = Some(LastWill::new("will/t", "bye", QoS::AtLeastOnce, true));
        let mut publish = Publish::new("a/b", QoS::AtLeastOnce, vec![1, 2, 3]);
        publish.pkid = 7;
        let mut subscribe = Subscribe::new("a/+", QoS::AtLeastOnce);
        subscribe.pkid = 3;
        let mut unsubscribe = Unsubscribe::new("a/+");
        unsubscribe.pkid = 4;
        let packets = [
            Packet::Connect(connect),
            Packet::Publish(publish),
            Packet::Subscribe(subscribe),
            Packet::Unsubscribe(unsubscribe),
            Packet::PubAck(PubAck::new(1)),
            Packet::PingReq,
            Packet::Disconnect,
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20_000 {
            let mut buf = BytesMut::new();
            packets[round % packets.len()].write(&mut buf, usize::MAX).unwrap();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % buf.len();
                buf[i] = next() as u8;
            }
            if next() % 3 == 0 {
                let keep = (next() as usize) % (buf.len() + 1);
                buf.truncate(keep);
            }
            // Like `handle_buffered`: decode until an error or more bytes are needed.
            let mut steps = 0;
            while Packet::read(&mut buf, 1024).is_ok() {
                steps += 1;
                assert!(steps < 100, "decoder did not consume input");
            }
        }
    }
}
