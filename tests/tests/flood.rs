//! One client flooding the controller's embedded broker with retained messages: 600 of 560 KiB on topics of its
//! own choosing, the attack that once grew a controller from 35 to 535 MB. Now the broker keeps no more than
//! that client's retained budget, reads it no faster than its inbound rate (back-pressure, not a disconnection),
//! and serves everyone else throughout: another client's publish → subscribe round trip and the controller's
//! API stay prompt during and after the flood.
//!
//! The controller runs in this process, so the RSS measured is this test process's (`/proc/self/status`):
//! controller, broker and both clients. The flooder shares one payload buffer for all its messages and keeps
//! at most 4 unacknowledged, so its own share stays about 2 MiB (that buffer and its write buffer) whatever the
//! flood's length.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_tests::hostile::Watchdog;
use edge_tests::Fleet;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};

/// The attack: 600 retained messages of 560 KiB, each on a topic of its own.
const MESSAGES: u64 = 600;
const PAYLOAD: usize = 560 * 1024;
/// The embedded broker's per-client retained budget (`edge_broker::Config` default): all it may keep of them.
const PER_CLIENT_RETAINED: u64 = 1024 * 1024;
/// Largest growth of this process's RSS the flood may cause. Measured: 6.2–6.9 MiB (the one message kept,
/// read and write buffers, allocator slack). With the per-client budget off, the clients' total (64 MiB) held
/// and the growth was 69 MiB; with no budget at all the flood's 336 MiB would stay.
const RSS_GROWTH_MAX_KIB: u64 = 48 * 1024;
/// Bounds: the whole flood (about 20 s at the default 16 MiB/s), and one probe round trip.
const FLOOD_WITHIN: Duration = Duration::from_secs(120);
const ROUND_TRIP_WITHIN: Duration = Duration::from_secs(5);
/// What a probe round trip and an API answer must stay under, during and after the flood.
const PROMPT: Duration = Duration::from_secs(1);

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).expect("a VmRSS line");
    line.trim().trim_end_matches("kB").trim().parse().expect("VmRSS in kB")
}

fn options(id: &str, host: &str, port: u16) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(id, host, port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(PAYLOAD + 64 * 1024, PAYLOAD + 64 * 1024);
    // Few requests queued and few publishes unacknowledged: the flooder holds little of its own flood.
    o.set_request_channel_capacity(4);
    o.set_inflight(4);
    let (client, mut el) = AsyncClient::new(o, 4);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    (client, el)
}

/// Drives `el` until it fails: counts PUBACKs in `acks`, forwards incoming payloads to `inbox`, flags a ConnAck
/// in `up` and any connection error in `failed` (a client the broker disconnected shows there).
fn drive(
    mut el: EventLoop,
    acks: Arc<AtomicU64>,
    inbox: mpsc::UnboundedSender<Bytes>,
    up: watch::Sender<bool>,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    up.send_replace(true);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = inbox.send(p.payload);
                }
                Ok(_) => {}
                Err(e) => return e.to_string(),
            }
        }
    })
}

struct Peer {
    client: AsyncClient,
    acks: Arc<AtomicU64>,
    inbox: mpsc::UnboundedReceiver<Bytes>,
    task: tokio::task::JoinHandle<String>,
}

async fn peer(id: &str, host: &str, port: u16) -> Peer {
    let (client, el) = options(id, host, port);
    let acks = Arc::new(AtomicU64::new(0));
    let (tx, inbox) = mpsc::unbounded_channel();
    let (up_tx, mut up) = watch::channel(false);
    let task = drive(el, acks.clone(), tx, up_tx);
    tokio::time::timeout(ROUND_TRIP_WITHIN, up.wait_for(|u| *u))
        .await
        .unwrap_or_else(|_| panic!("{id} not connected within {ROUND_TRIP_WITHIN:?}"))
        .expect("event loop alive");
    Peer { client, acks, inbox, task }
}

impl Peer {
    /// Publishes a numbered message on `probe/echo` (which this peer subscribes to) and waits for it to come back.
    async fn round_trip(&mut self, n: u64) -> Duration {
        let body = Bytes::from(format!("probe {n}"));
        let t0 = Instant::now();
        self.client.publish_bytes("probe/echo", QoS::AtLeastOnce, false, body.clone()).await.expect("publish");
        let back = async {
            while let Some(p) = self.inbox.recv().await {
                if p == body {
                    return;
                }
            }
            panic!("the probe's event loop ended");
        };
        tokio::time::timeout(ROUND_TRIP_WITHIN, back)
            .await
            .unwrap_or_else(|_| panic!("probe {n} not back within {ROUND_TRIP_WITHIN:?}"));
        t0.elapsed()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retained_flood_is_capped_paced_and_starves_nobody() {
    let fleet = Fleet::embedded_with(edge_tests::open).await;
    let (host, port) = fleet.broker_addr();
    let stats = || fleet.controller.as_ref().expect("controller").broker_stats().expect("an embedded broker");
    let mut probe = peer("probe", &host, port).await;
    probe.client.subscribe("probe/echo", QoS::AtLeastOnce).await.expect("subscribe");
    probe.round_trip(0).await;
    let mut flooder = peer("flooder", &host, port).await;
    let watchdog = Watchdog::start(fleet.api.clone(), "/v1/nodes");
    let before = stats();
    let rss_before = rss_kib();

    let payload = Bytes::from(vec![0x5a; PAYLOAD]);
    let client = flooder.client.clone();
    let started = Instant::now();
    let flood = tokio::spawn(async move {
        for i in 0..MESSAGES {
            // Topics of the attacker's choosing: anywhere, of varying depth and length.
            let topic = format!("junk/{i:04}/{}", "z".repeat(i as usize % 40));
            client.publish_bytes(topic, QoS::AtLeastOnce, true, payload.clone()).await.expect("flood publish");
        }
    });

    // While the flood lasts: probe round trips, and the retained store's size as the broker reports it.
    let mut during = Vec::new();
    let mut retained_max = before.retained_bytes;
    let deadline = Instant::now() + FLOOD_WITHIN;
    while flooder.acks.load(Ordering::Relaxed) < MESSAGES {
        assert!(Instant::now() < deadline, "the flood not acknowledged within {FLOOD_WITHIN:?}");
        if flooder.task.is_finished() {
            panic!("the flooder was disconnected: {:?}", (&mut flooder.task).await);
        }
        during.push(probe.round_trip(during.len() as u64 + 1).await);
        retained_max = retained_max.max(stats().retained_bytes);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    flood.await.expect("flood task");
    let after = stats();
    let rss_after = rss_kib();
    let after_flood = probe.round_trip(u64::MAX).await;
    let slowest_api = watchdog.finish(PROMPT).await;

    let slowest = during.iter().copied().max().unwrap_or_default();
    let growth = rss_after.saturating_sub(rss_before);
    eprintln!(
        "flood of {MESSAGES} × {PAYLOAD} B retained: acknowledged in {took:.1?}; retained bytes {} → {} (max {}); \
         {} refused; reads throttled {} times; RSS {} → {} KiB (+{growth} KiB); {} probe round trips during the \
         flood, slowest {slowest:?}, after {after_flood:?}; slowest API answer {slowest_api:?}",
        before.retained_bytes,
        after.retained_bytes,
        retained_max,
        after.retained_refused - before.retained_refused,
        after.inbound_throttled - before.inbound_throttled,
        rss_before,
        rss_after,
        during.len(),
    );
    // (a) The store keeps at most the flooder's budget, and says why it refused the rest.
    assert!(retained_max - before.retained_bytes <= PER_CLIENT_RETAINED, "retained grew to {retained_max} B");
    assert!(after.retained_bytes > before.retained_bytes, "the first message fits the budget and is kept");
    assert_eq!(after.retained_refused - before.retained_refused, MESSAGES - 1, "{after:?}");
    // Back-pressure, not a disconnection: the flooder was read at its rate and is still connected.
    assert!(after.inbound_throttled > before.inbound_throttled, "{after:?}");
    assert!(!flooder.task.is_finished(), "the flooder was disconnected");
    // (b) The controller's memory did not follow the flood.
    assert!(growth <= RSS_GROWTH_MAX_KIB, "RSS grew by {growth} KiB (limit {RSS_GROWTH_MAX_KIB} KiB)");
    // (c) Everyone else was served throughout.
    assert!(during.len() >= 5, "only {} probe round trips during the flood", during.len());
    assert!(
        slowest <= PROMPT && after_flood <= PROMPT,
        "probe round trips: slowest {slowest:?}, after {after_flood:?}"
    );

    flooder.task.abort();
    probe.task.abort();
    fleet.stop().await;
}
