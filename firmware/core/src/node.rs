//! The node: one future that joins, connects, says hello, heartbeats, applies its signed spec, runs its
//! instances and reports, reconnecting with back-off, for ever. [`run`] is the entry point.
//!
//! Layout: this file holds the state, boot (identity, join, stored spec) and the connection loop; `work`
//! handles what arrives (specs, module chunks, acks), the instances, and what goes up (hello, heartbeats,
//! events, logs, module requests).
//!
//! **Invariants** (as the Linux agent's core):
//! - Nothing from the controller is believed unsigned: the spec must verify under the pinned cluster key for
//!   this node's name, and module bytes must hash to the sha256 the signed spec names.
//! - A spec is persisted (with its signature and the modules it keeps) before anything starts or stops; at
//!   boot the stored spec is verified again and run with no broker at all.
//! - Reports carry the node's tag with a counter never used before: a block above the persisted mark is
//!   reserved (written to flash) at every boot before the first tag.
//! - The loop never blocks on one thing: reads race the next deadline (guest wake, tick, keep-alive), guests
//!   run one fuel slice per turn, and every wait is bounded.

mod work;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use edge_proto::backoff::Backoff;
use edge_proto::join::{self as proto_join, JoinRequest};
use edge_proto::{Channel, EngineProfile, Hello, InstanceSpec, LogLine, Message, NodeSpec, NodeStatus, Topics};
use edge_trust::{JoinToken, KeyPair, MqttPassword, PublicKey, ReportKey};
use rand_core::{CryptoRng, RngCore};

use crate::board::Board;
use crate::guest::Runner;
use crate::link::{Link, LinkError};
use crate::mqtt::{self, Connect as ConnectPacket, Incoming, QoS, Will};
use crate::outbox::Outbox;
use crate::platform::{Clock, Connect, Sensors, Storage};
use crate::record::IdentityRecord;
use crate::select::{select, Either};
use crate::store::{Store, StoredModule};
use crate::verify;

/// Module bytes asked for per request: a chunk and its envelope fit [`crate::link::RX_BUF`].
pub const CHUNK: u32 = 4096;
/// Report counters reserved per boot (as the agent's `tagger::BLOCK`).
pub const COUNTER_BLOCK: u64 = 1 << 32;
/// How long a connection attempt (TCP and CONNACK) may take.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// How long a join waits for the controller's answer on one connection.
pub const JOIN_TIMEOUT_MS: u64 = 30_000;
/// Instances one node holds at most (more are refused with the spec).
pub const MAX_INSTANCES: usize = 8;
/// Log lines kept while they cannot be sent (the oldest go first, counted).
pub const LOG_RING: usize = 32;

/// What the board (or the host runner) tells the core about the node.
#[derive(Debug, Clone)]
pub struct Config<'a> {
    /// The node's name: its MQTT client id and username once joined.
    pub node: &'a str,
    /// Topic prefix (`edge/v1`).
    pub prefix: &'a str,
    /// A join token (`edgectl token create`), used only while the node has no identity in flash.
    pub join_token: Option<&'a str>,
    pub board: Board,
    /// RAM to announce (the board's, unless overridden).
    pub ram_bytes: u64,
    /// The longest gap between heartbeats (`edge_proto::timing::HEARTBEAT`).
    pub heartbeat_ms: u64,
    /// The firmware's version, for the hello.
    pub version: &'a str,
}

/// Why the node stopped for good (everything else is retried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fatal {
    /// No identity in flash and no join token to get one.
    NoIdentity,
    BadToken(String),
    /// The controller refused the join (or its acceptance did not verify).
    Join(verify::JoinError),
    Flash(String),
    Random,
}

impl core::fmt::Display for Fatal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Fatal::NoIdentity => f.write_str("this node has no identity yet: give it a join token"),
            Fatal::BadToken(e) => write!(f, "join token: {e}"),
            Fatal::Join(e) => write!(f, "{e}"),
            Fatal::Flash(e) => write!(f, "flash: {e}"),
            Fatal::Random => f.write_str("the random number source failed"),
        }
    }
}

/// A diagnostic line for the board's log (defmt, UART, stderr): the core has no logger of its own.
pub type Trace = fn(&str);

/// The joined node's keys.
struct Identity {
    record: IdentityRecord,
    cluster: PublicKey,
    password: String,
    report: ReportKey,
    /// The next report counter.
    counter: u64,
}

/// One instance of the applied spec.
struct Inst {
    spec: InstanceSpec,
    state: edge_proto::InstanceState,
    restarts: u32,
    started_at_ms: Option<u64>,
    exit_code: Option<i32>,
    reason: Option<String>,
    /// Monotonic time of a restart after back-off.
    restart_at: Option<u64>,
    /// Waiting for its module to download.
    waiting: bool,
    /// Ended for good (its restart policy says so).
    finished: bool,
    /// When it last started (monotonic), to reset the back-off after a good run.
    began: u64,
}

/// A module download (one at a time: specs for a microcontroller are small).
struct Fetch {
    sha: edge_proto::Sha256,
    size: u64,
    buf: Vec<u8>,
    asked_at: u64,
}

/// The node's state, owned by [`run`].
pub struct Core<'c, C: Clock, S: Storage, R: RngCore + CryptoRng, X: Sensors> {
    cfg: Config<'c>,
    clock: C,
    store: Store<S>,
    rng: R,
    sensors: X,
    trace: Trace,
    topics: Topics,
    id: Option<Identity>,
    link: Link,
    runner: Runner,
    applied: Option<(NodeSpec, [u8; 64])>,
    modules: Vec<StoredModule>,
    instances: Vec<Inst>,
    fetch: Option<Fetch>,
    outbox: Outbox,
    logs: heapless::Deque<LogLine, LOG_RING>,
    logs_dropped: u64,
    store_id: u64,
    /// When the last heartbeat went and what it said (time zeroed).
    last_heartbeat: Option<(u64, edge_proto::Heartbeat)>,
    /// When the heartbeat's content was last compared with the last one sent (every `TICK`).
    heartbeat_checked: u64,
    backoff: Backoff,
    connected: bool,
    next_tick: u64,
    /// Last packet sent and received on the connection (keep-alive).
    last_tx: u64,
    last_rx: u64,
}

/// Runs the node for ever; returns only for what retrying cannot fix. `net` opens broker connections; the
/// rest is the board.
pub async fn run<N: Connect, C: Clock, S: Storage, R: RngCore + CryptoRng, X: Sensors>(
    cfg: Config<'_>,
    net: &mut N,
    clock: C,
    storage: S,
    mut rng: R,
    sensors: X,
    trace: Trace,
) -> Fatal {
    let store_id = rng.next_u64().max(1);
    let mut core = Core {
        topics: Topics::new(cfg.prefix),
        cfg,
        clock,
        store: Store::new(storage),
        rng,
        sensors,
        trace,
        id: None,
        link: Link::default(),
        runner: Runner::default(),
        applied: None,
        modules: Vec::new(),
        instances: Vec::new(),
        fetch: None,
        outbox: Outbox::new(store_id),
        logs: heapless::Deque::new(),
        logs_dropped: 0,
        store_id,
        last_heartbeat: None,
        heartbeat_checked: 0,
        backoff: Backoff::default(),
        connected: false,
        next_tick: 0,
        last_tx: 0,
        last_rx: 0,
    };
    if let Err(f) = core.identity(net).await {
        return f;
    }
    if let Err(f) = core.boot().await {
        return f;
    }
    loop {
        let deadline = core.clock.now_ms() + CONNECT_TIMEOUT_MS;
        let attempt = select(net.connect(), core.clock.sleep_until(deadline)).await;
        match attempt {
            Either::First(Ok(mut conn)) => {
                let end = core.serve(&mut conn).await;
                core.connected = false;
                (core.trace)(&format!("disconnected from the broker: {end:?}"));
            }
            Either::First(Err(e)) => (core.trace)(&format!("cannot reach the broker: {e:?}")),
            Either::Second(()) => (core.trace)("cannot reach the broker: timed out"),
        }
        let delay = core.backoff.next_delay(core.rng.next_u32());
        let until = core.clock.now_ms() + delay.as_millis() as u64;
        core.idle_until(until).await;
    }
}

impl<C: Clock, S: Storage, R: RngCore + CryptoRng, X: Sensors> Core<'_, C, S, R, X> {
    fn flash<E: core::fmt::Debug>(e: crate::store::StoreError<E>) -> Fatal {
        Fatal::Flash(format!("{e}"))
    }

    /// Times reported to the controller: wall clock when known, else time since boot.
    fn at_ms(&self) -> u64 {
        self.clock.unix_ms().unwrap_or_else(|| self.clock.now_ms())
    }

    /// Loads the identity from flash, or joins with the token; then reserves this boot's report counters.
    async fn identity<N: Connect>(&mut self, net: &mut N) -> Result<(), Fatal> {
        let record = match self.store.load_identity().await.map_err(Self::flash)? {
            Some(r) if r.node == self.cfg.node => r,
            _ => self.join(net).await?,
        };
        let keys = KeyPair::from_secret_bytes(&record.node_secret);
        let cluster = PublicKey::from_bytes(&record.cluster_key).map_err(|_| Fatal::NoIdentity)?;
        let node = record.node.as_str();
        let password = MqttPassword::for_node(&keys, &cluster, node).map_err(|_| Fatal::NoIdentity)?.into_string();
        let report = ReportKey::for_node(&keys, &cluster, node).map_err(|_| Fatal::NoIdentity)?;
        // A block above the mark and the wall clock (when the board has one), persisted before the first tag.
        let floor = self.clock.unix_ms().map_or(0, |ms| ms / 1000).saturating_mul(COUNTER_BLOCK);
        let counter = record.counter_mark.max(floor).max(1);
        let record = IdentityRecord { counter_mark: counter.saturating_add(COUNTER_BLOCK), ..record };
        self.store.save_identity(&record).await.map_err(Self::flash)?;
        self.id = Some(Identity { record, cluster, password, report, counter });
        Ok(())
    }

    /// Joins with the configured token, retrying unreachable brokers and unanswered requests with back-off;
    /// a refusal is final. The node's key is made here, on the device.
    async fn join<N: Connect>(&mut self, net: &mut N) -> Result<IdentityRecord, Fatal> {
        let token = self.cfg.join_token.ok_or(Fatal::NoIdentity)?;
        let token = JoinToken::parse(token).map_err(|e| Fatal::BadToken(format!("{e}")))?;
        let keys = KeyPair::generate_with(&mut self.rng).map_err(|_| Fatal::Random)?;
        let node_key = keys.public().to_bytes();
        let id = *token.id().as_bytes();
        let request = JoinRequest {
            token_id: id,
            token_secret: *token.secret().as_bytes(),
            node: self.cfg.node.into(),
            node_key,
        };
        let request = edge_proto::encode(&Message::JoinRequest(request));
        let user = proto_join::join_username(&id);
        let secret = proto_join::hex(token.secret().as_bytes());
        let request_topic = proto_join::request_topic(self.cfg.prefix, &id);
        let reply_topic = proto_join::reply_topic(self.cfg.prefix, &id);
        let mut backoff = Backoff::default();
        loop {
            (self.trace)("joining the cluster");
            let deadline = self.clock.now_ms() + JOIN_TIMEOUT_MS;
            let reply = match select(net.connect(), self.clock.sleep_until(deadline)).await {
                Either::First(Ok(mut conn)) => {
                    let hello = ConnectPacket {
                        client_id: &user,
                        keep_alive_secs: 15,
                        username: Some(&user),
                        password: Some(secret.as_bytes()),
                        will: None,
                    };
                    let exchange = exchange(&mut self.link, &mut conn, &hello, &request_topic, &reply_topic, &request);
                    let r = match select(exchange, self.clock.sleep_until(deadline)).await {
                        Either::First(r) => r,
                        Either::Second(()) => Err(JoinStep::Retry),
                    };
                    let _ = self.link.send(&mut conn, mqtt::disconnect).await;
                    r
                }
                _ => Err(JoinStep::Retry),
            };
            match reply {
                Ok(reply) => {
                    let cluster_key =
                        verify::join_reply(&token, self.cfg.node, &node_key, reply).map_err(Fatal::Join)?;
                    let record = IdentityRecord {
                        node: self.cfg.node.into(),
                        node_secret: *keys.secret_bytes(),
                        cluster_key,
                        counter_mark: 0,
                    };
                    self.store.save_identity(&record).await.map_err(Self::flash)?;
                    (self.trace)("joined the cluster");
                    return Ok(record);
                }
                Err(JoinStep::Refused) => {
                    return Err(Fatal::Join(verify::JoinError::Refused(edge_proto::JoinRefusal::Unknown)))
                }
                Err(JoinStep::Retry) => {
                    let delay = backoff.next_delay(self.rng.next_u32());
                    self.clock.sleep_until(self.clock.now_ms() + delay.as_millis() as u64).await;
                }
            }
        }
    }

    /// Runs the stored spec, if it still verifies: a node runs its last desired state with no broker at all.
    async fn boot(&mut self) -> Result<(), Fatal> {
        let Some(state) = self.store.load_state().await.map_err(Self::flash)? else { return Ok(()) };
        let Some(id) = &self.id else { return Ok(()) };
        let holds =
            state.signature.is_some_and(|s| verify::signature_holds(self.cfg.node, &id.cluster, &state.spec, &s));
        if !holds {
            let reason = format!(
                "the stored spec (generation {}) does not verify under the pinned cluster key; not run",
                state.spec.generation
            );
            self.event("", 0, edge_proto::EventKind::Rejected { reason });
            return Ok(());
        }
        (self.trace)(&format!("resuming the stored spec, generation {}", state.spec.generation));
        let instances = state.spec.instances.clone();
        let signature = state.signature.unwrap_or([0; 64]);
        self.modules = state.modules;
        // Kept whole: it is re-persisted with each downloaded module, and the signature covers every instance.
        self.applied = Some((state.spec, signature));
        self.converge(instances).await;
        Ok(())
    }

    /// Waits until `until` while running guests and restarts (no connection).
    async fn idle_until(&mut self, until: u64) {
        loop {
            let now = self.clock.now_ms();
            if now >= until {
                return;
            }
            let deadline = self.local_deadline().min(until);
            self.clock.sleep_until(deadline).await;
            self.local_work().await;
        }
    }

    /// One connection: log in, subscribe, announce, then serve until it fails.
    async fn serve<T: embedded_io_async::Read + embedded_io_async::Write>(
        &mut self,
        conn: &mut T,
    ) -> Result<(), LinkError> {
        self.link.reset();
        let Some(id) = &self.id else { return Err(LinkError::Closed) };
        let node = self.cfg.node;
        let status = self.topics.node(node, Channel::Status);
        let offline = edge_proto::encode(&Message::Status(NodeStatus { online: false }));
        let will = Will { topic: &status, payload: &offline, qos: QoS::AtLeastOnce, retain: true };
        let keep_alive = edge_proto::timing::KEEP_ALIVE.as_secs() as u16;
        let hello = ConnectPacket {
            client_id: node,
            keep_alive_secs: keep_alive,
            username: Some(node),
            password: Some(id.password.as_bytes()),
            will: Some(will),
        };
        self.link.send(conn, |b| mqtt::connect(b, &hello)).await?;
        let deadline = self.clock.now_ms() + CONNECT_TIMEOUT_MS;
        let len = match select(self.link.next(conn), self.clock.sleep_until(deadline)).await {
            Either::First(r) => r?,
            Either::Second(()) => return Err(LinkError::Closed),
        };
        match mqtt::decode(self.link.packet(len)) {
            Ok(Incoming::ConnAck { code: 0 }) => {}
            _ => return Err(LinkError::Closed),
        }
        self.backoff.reset();
        for channel in Channel::DOWNLINK {
            let topic = self.topics.node(node, channel);
            let pkid = self.link.next_pkid();
            self.link.send(conn, |b| mqtt::subscribe(b, pkid, &topic)).await?;
        }
        let online = edge_proto::encode(&Message::Status(NodeStatus { online: true }));
        let pkid = self.link.next_pkid();
        let p = mqtt::Publish { topic: &status, payload: &online, qos: QoS::AtLeastOnce, retain: true, pkid };
        self.link.send(conn, |b| mqtt::publish(b, &p)).await?;
        (self.trace)("connected to the broker");
        self.connected = true;
        let now = self.clock.now_ms();
        (self.last_tx, self.last_rx) = (now, now);
        self.outbox.resend_if(now, 0, true);
        let hello = self.hello();
        self.publish(conn, Channel::Hello, QoS::AtLeastOnce, Message::Hello(hello)).await?;
        self.heartbeat(conn).await?;
        if let Some(f) = &mut self.fetch {
            f.asked_at = 0;
        }
        loop {
            self.uplink(conn).await?;
            let deadline = self.local_deadline().min(self.uplink_deadline());
            match select(self.link.next(conn), self.clock.sleep_until(deadline)).await {
                Either::First(len) => {
                    let len = len?;
                    self.last_rx = self.clock.now_ms();
                    self.incoming(conn, len).await?;
                }
                Either::Second(()) => {}
            }
            self.local_work().await;
            let now = self.clock.now_ms();
            // Nothing heard for 1.5 keep-alives (a PINGRESP at least): the connection is dead.
            if now.saturating_sub(self.last_rx) > u64::from(keep_alive) * 1500 {
                return Err(LinkError::Closed);
            }
        }
    }

    /// What the node says of itself.
    fn hello(&self) -> Hello {
        let board = &self.cfg.board;
        let capacity = board.capacity(self.cfg.ram_bytes);
        let reserved = board.reserved(self.cfg.ram_bytes);
        let engine = board.engine();
        let reservation =
            if engine == edge_proto::EngineTarget::None { 0 } else { capacity.memory_bytes - reserved.memory_bytes };
        Hello {
            agent_version: self.cfg.version.into(),
            board: board.name.into(),
            arch: board.arch.into(),
            engine: EngineProfile { target: engine, memory_reservation: reservation, memory_guard: 0 },
            capacity,
            labels: alloc::vec![("board".into(), board.name.into())],
            applied_generation: self.applied.as_ref().map_or(0, |(s, _)| s.generation),
            store_id: self.store_id,
            reserved,
        }
    }
}

/// How one join attempt ended without a reply.
enum JoinStep {
    /// The broker refused the token's login or its subscription.
    Refused,
    Retry,
}

/// One join exchange on `conn`: CONNECT as the token, subscribe to the reply, publish the request once the
/// subscription stands, wait for the reply.
async fn exchange<T: embedded_io_async::Read + embedded_io_async::Write>(
    link: &mut Link,
    conn: &mut T,
    hello: &ConnectPacket<'_>,
    request_topic: &str,
    reply_topic: &str,
    request: &[u8],
) -> Result<edge_proto::JoinReply, JoinStep> {
    link.reset();
    link.send(conn, |b| mqtt::connect(b, hello)).await.map_err(|_| JoinStep::Retry)?;
    let sub = link.next_pkid();
    loop {
        let len = link.next(conn).await.map_err(|_| JoinStep::Retry)?;
        let packet = link.packet(len);
        match mqtt::decode(packet).map_err(|_| JoinStep::Retry)? {
            // Not authorised / bad credentials: the broker does not know the token.
            Incoming::ConnAck { code: 4 | 5 } => return Err(JoinStep::Refused),
            Incoming::ConnAck { code: 0 } => {
                link.send(conn, |b| mqtt::subscribe(b, sub, reply_topic)).await.map_err(|_| JoinStep::Retry)?;
            }
            Incoming::ConnAck { .. } => return Err(JoinStep::Retry),
            Incoming::SubAck { refused: true, .. } => return Err(JoinStep::Refused),
            Incoming::SubAck { .. } => {
                let pkid = link.next_pkid();
                let p = mqtt::Publish {
                    topic: request_topic,
                    payload: request,
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    pkid,
                };
                link.send(conn, |b| mqtt::publish(b, &p)).await.map_err(|_| JoinStep::Retry)?;
            }
            Incoming::Publish(p) if p.topic == reply_topic => {
                let pkid = (p.qos == QoS::AtLeastOnce).then_some(p.pkid);
                let reply = match edge_proto::decode(p.payload) {
                    Ok(e) => match e.message {
                        Message::JoinReply(r) => Some(r),
                        _ => None,
                    },
                    Err(_) => None,
                };
                if let Some(pkid) = pkid {
                    let _ = link.send(conn, |b| mqtt::puback(b, pkid)).await;
                }
                if let Some(r) = reply {
                    return Ok(r);
                }
            }
            _ => {}
        }
    }
}
