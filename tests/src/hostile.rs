//! Hostile but well-formed input: a [`Stranger`] that publishes anything on any topic under any client id, and
//! builders of valid messages carrying extreme values (u64::MAX sequence numbers and generations, floods of
//! instance statuses, names no node may have). Garbage bytes are tested elsewhere (`e2e.rs`); these pass every
//! decoder and must still leave the controller responsive and its state correct.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edge_proto::{Channel, Heartbeat, InstanceState, InstanceStatus, Message, NodeSpec, Topics};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use tokio::sync::watch;

/// The issuer id a stranger's forged specs carry.
pub const STRANGER_ISSUER: u64 = 0xbad;

/// An MQTT client nobody trusts. It reconnects by itself (counting its ConnAcks) like any client would.
pub struct Stranger {
    client: AsyncClient,
    pub topics: Topics,
    connacks: watch::Receiver<usize>,
    /// Connection errors seen (e.g. the broker closed it because another client took its id).
    pub errors: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Stranger {
    /// Connects as `client_id` and waits for the broker's ConnAck.
    pub async fn connect(host: &str, port: u16, client_id: &str) -> Stranger {
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_max_packet_size(edge_proto::MAX_PAYLOAD + 4096, edge_proto::MAX_PAYLOAD + 4096);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let (tx, mut connacks) = watch::channel(0usize);
        let errors = Arc::new(AtomicUsize::new(0));
        let errs = errors.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => tx.send_modify(|n| *n += 1),
                    Ok(_) => {}
                    Err(_) => {
                        errs.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connacks.wait_for(|n| *n > 0))
            .await
            .unwrap_or_else(|_| panic!("stranger {client_id:?} not connected within 10 s"))
            .expect("stranger task alive");
        Stranger { client, topics: Topics::default(), connacks, errors, task }
    }

    /// How many times the broker accepted this client's connection.
    pub fn connacks(&self) -> usize {
        *self.connacks.borrow()
    }

    pub async fn publish(&self, topic: String, payload: Vec<u8>, retain: bool) {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload).await.expect("publish");
    }

    /// Publishes `message` in protocol `version` on `node`'s `channel`, whatever `node` is.
    pub async fn publish_as(&self, node: &str, channel: Channel, message: &Message, version: u16, retain: bool) {
        let topic = self.topics.node(node, channel);
        self.publish(topic, edge_proto::encode_for(version, message), retain).await;
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A name of `len` letters: 253 is a full DNS name's length, far past a node name's 63.
pub fn long_name(len: usize) -> String {
    "a".repeat(len)
}

/// A heartbeat from a node whose counters are at the end of their range: the last event `u64::MAX`, the
/// oldest unacknowledged one just below it, generation `u64::MAX`, nothing dropped.
pub fn extreme_heartbeat(store_id: u64) -> Heartbeat {
    Heartbeat {
        at_ms: edge_agent::clock::now_ms(),
        applied_generation: u64::MAX,
        instances: Vec::new(),
        events_dropped: u64::MAX,
        last_event_seq: u64::MAX,
        oldest_unacked_seq: u64::MAX - 1,
        last_outage: None,
        store_id,
    }
}

/// `n` instance statuses with made-up ids (`ghost-0`, …), all Running: what no controller placed.
pub fn phantom_statuses(n: usize) -> Vec<InstanceStatus> {
    (0..n)
        .map(|i| InstanceStatus {
            id: format!("ghost-{i}"),
            state: InstanceState::Running,
            restarts: u32::MAX,
            started_at_ms: Some(u64::MAX),
            exit_code: None,
            reason: None,
        })
        .collect()
}

/// A spec no controller issued: generation `u64::MAX`, nothing to run.
pub fn forged_spec() -> NodeSpec {
    NodeSpec { issuer: STRANGER_ISSUER, generation: u64::MAX, instances: Vec::new() }
}

/// Asks the controller's API for `path` every 100 ms and records how long each answer took: a controller busy
/// looping over a peer's numbers (or blocked behind one) shows as a slow or missing answer.
pub struct Watchdog {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<Result<Duration, String>>>,
}

impl Watchdog {
    pub fn start(api: crate::Api, path: &str) -> Watchdog {
        let (stop, mut stopped) = watch::channel(false);
        let path = path.to_string();
        let task = tokio::spawn(async move {
            let mut answers = Vec::new();
            loop {
                let t0 = tokio::time::Instant::now();
                // Bounded well past any limit a test asserts, so a frozen controller cannot hang the test.
                let answer = match tokio::time::timeout(Duration::from_secs(5), api.try_text(&path)).await {
                    Ok(Some((200, _))) => Ok(t0.elapsed()),
                    Ok(Some((status, body))) => Err(format!("{status} {body}")),
                    Ok(None) => Err("no answer".to_string()),
                    Err(_) => Err("no answer within 5 s".to_string()),
                };
                answers.push(answer);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped.wait_for(|s| *s) => return answers,
                }
            }
        });
        Watchdog { stop, task }
    }

    /// Stops and checks every answer was a 200 within `limit`; returns the slowest.
    pub async fn finish(self, limit: Duration) -> Duration {
        let _ = self.stop.send(true);
        let answers = self.task.await.expect("watchdog");
        let mut slowest = Duration::ZERO;
        for (i, a) in answers.iter().enumerate() {
            match a {
                Ok(d) => {
                    assert!(*d <= limit, "answer {i} of {} took {d:?} (limit {limit:?})", answers.len());
                    slowest = slowest.max(*d);
                }
                Err(e) => panic!("answer {i} of {} failed: {e}", answers.len()),
            }
        }
        assert!(!answers.is_empty(), "the watchdog asked nothing");
        slowest
    }
}
