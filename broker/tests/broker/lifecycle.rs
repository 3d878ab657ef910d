//! Connection ends: Last Will on abrupt close and keep-alive expiry, none on DISCONNECT; shutdown.

use std::time::{Duration, Instant};

use rumqttc::mqttbytes::v4::Packet;
use rumqttc::QoS::AtLeastOnce;
use rumqttc::{Event, LastWill};

use crate::common::{broker, connect, event_loop, options, within};

fn with_will(id: &str, addr: std::net::SocketAddr) -> rumqttc::MqttOptions {
    let mut o = options(id, addr);
    o.set_last_will(LastWill::new(format!("status/{id}"), "offline", AtLeastOnce, true));
    o
}

/// Connects with rumqttc and returns the event loop without polling it further.
async fn connected_event_loop(opts: rumqttc::MqttOptions) -> rumqttc::EventLoop {
    let (_client, mut el) = event_loop(opts);
    within("CONNACK", async {
        loop {
            if let Event::Incoming(Packet::ConnAck(_)) = el.poll().await.expect("connect") {
                return;
            }
        }
    })
    .await;
    el
}

#[tokio::test]
async fn will_is_published_when_the_socket_drops() {
    let b = broker().await;
    let mut watcher = connect(options("watcher", b.local_addr())).await;
    watcher.subscribed("status/#", AtLeastOnce).await;
    let el = connected_event_loop(with_will("node-a", b.local_addr())).await;
    drop(el); // closes the TCP socket with no DISCONNECT
    let p = watcher.publish_received().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("status/node-a", &b"offline"[..]));
    // It was retained, too.
    let mut late = connect(options("late", b.local_addr())).await;
    late.subscribed("status/node-a", AtLeastOnce).await;
    assert!(late.publish_received().await.retain);
    assert_eq!(b.handle().stats().wills_published, 1);
}

#[tokio::test]
async fn will_is_published_on_keep_alive_expiry() {
    let b = broker().await;
    let mut watcher = connect(options("watcher", b.local_addr())).await;
    watcher.subscribed("status/#", AtLeastOnce).await;
    let mut opts = with_will("sleepy", b.local_addr());
    opts.set_keep_alive(Duration::from_secs(1));
    let started = Instant::now();
    // Connected, then never polled again: no PINGREQ, but the socket stays open.
    let _el = connected_event_loop(opts).await;
    let p = watcher.publish_received().await;
    assert_eq!(p.topic, "status/sleepy");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1400), "expired after {waited:?}, before 1.5 × keep alive");
    assert_eq!(b.handle().stats().keep_alive_expired, 1);
}

#[tokio::test]
async fn clean_disconnect_publishes_no_will() {
    let b = broker().await;
    let mut watcher = connect(options("watcher", b.local_addr())).await;
    watcher.subscribed("status/#", AtLeastOnce).await;
    let mut polite = connect(with_will("polite", b.local_addr())).await;
    polite.client.disconnect().await.unwrap();
    polite.closed().await;
    // A later will on the same topic tree arrives first, so the polite one was never sent.
    drop(connected_event_loop(with_will("rude", b.local_addr())).await);
    assert_eq!(watcher.publish_received().await.topic, "status/rude");
}

#[tokio::test]
async fn shutdown_closes_every_connection_and_the_listener() {
    let b = broker().await;
    let addr = b.local_addr();
    let mut c1 = connect(options("c1", addr)).await;
    let mut c2 = connect(options("c2", addr)).await;
    let (_tx, mut rx) = b.handle().local_client("ctl").unwrap();
    within("shutdown", b.shutdown()).await;
    c1.closed().await;
    c2.closed().await;
    assert!(within("local link end", rx.recv()).await.is_none());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener still open");
}
