//! Shared helpers: start a broker, connect a client whose event loop runs in its own task, await events.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use edge_broker::{AllowAll, Broker, Config, Policy};
use rumqttc::mqttbytes::v4::{ConnAck, Packet, Publish, SubscribeReasonCode};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions};
use tokio::sync::mpsc;

/// Upper bound on every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(5);

/// Awaits `f`, failing the test with `what` after [`WAIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

pub async fn broker_with(policy: impl Policy, tune: impl FnOnce(&mut Config)) -> Broker {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap());
    tune(&mut config);
    Broker::bind(config, policy).await.expect("bind")
}

pub async fn broker() -> Broker {
    broker_with(AllowAll, |_| {}).await
}

pub fn options(id: &str, addr: SocketAddr) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    o
}

pub fn event_loop(opts: MqttOptions) -> (AsyncClient, EventLoop) {
    let (client, mut el) = AsyncClient::new(opts, 64);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    (client, el)
}

/// A connected client; its event loop runs in a task that forwards events and stops at the first error
/// (no silent reconnects).
pub struct Client {
    pub client: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Event, ConnectionError>>,
    pub connack: ConnAck,
}

/// Connects and waits for the CONNACK; `Err` carries the connection error (e.g. a refusal).
pub async fn try_connect(opts: MqttOptions) -> Result<Client, ConnectionError> {
    let (client, mut el) = event_loop(opts);
    let connack = within("CONNACK", async {
        loop {
            match el.poll().await? {
                Event::Incoming(Packet::ConnAck(c)) => return Ok::<_, ConnectionError>(c),
                _ => continue,
            }
        }
    })
    .await?;
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let e = el.poll().await;
            let stop = e.is_err();
            if tx.send(e).is_err() || stop {
                return;
            }
        }
    });
    Ok(Client { client, events, connack })
}

pub async fn connect(opts: MqttOptions) -> Client {
    try_connect(opts).await.expect("connect")
}

impl Client {
    /// The next event that `pick` accepts, skipping others; panics on a connection error.
    async fn next<T>(&mut self, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> T {
        within(what, async {
            loop {
                match self.events.recv().await {
                    Some(Ok(e)) => {
                        if let Some(t) = pick(e) {
                            return t;
                        }
                    }
                    Some(Err(e)) => panic!("connection failed while waiting for {what}: {e}"),
                    None => panic!("event loop ended while waiting for {what}"),
                }
            }
        })
        .await
    }

    pub async fn publish_received(&mut self) -> Publish {
        self.next("a PUBLISH", |e| match e {
            Event::Incoming(Packet::Publish(p)) => Some(p),
            _ => None,
        })
        .await
    }

    pub async fn suback(&mut self) -> Vec<SubscribeReasonCode> {
        self.next("a SUBACK", |e| match e {
            Event::Incoming(Packet::SubAck(s)) => Some(s.return_codes),
            _ => None,
        })
        .await
    }

    pub async fn puback(&mut self) {
        self.next("a PUBACK", |e| matches!(e, Event::Incoming(Packet::PubAck(_))).then_some(())).await
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribed(&mut self, filter: &str, qos: rumqttc::QoS) -> Vec<SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.expect("subscribe request");
        self.suback().await
    }

    /// Waits until the connection fails (the broker closed it), skipping any events before that.
    pub async fn closed(&mut self) -> ConnectionError {
        within("the connection to close", async {
            loop {
                match self.events.recv().await {
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return e,
                    None => panic!("event loop ended without an error"),
                }
            }
        })
        .await
    }
}
