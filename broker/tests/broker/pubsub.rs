//! Routing: QoS 0/1 round trips, wildcards, retained messages, persistent sessions, latency.

use std::time::Instant;

use rumqttc::mqttbytes::v4::SubscribeReasonCode;
use rumqttc::QoS::{AtLeastOnce, AtMostOnce, ExactlyOnce};

use crate::common::{broker, connect, options};

#[tokio::test]
async fn qos0_and_qos1_round_trip() {
    let b = broker().await;
    let mut sub = connect(options("sub", b.local_addr())).await;
    assert_eq!(sub.subscribed("t/0", AtMostOnce).await, vec![SubscribeReasonCode::Success(AtMostOnce)]);
    assert_eq!(sub.subscribed("t/1", AtLeastOnce).await, vec![SubscribeReasonCode::Success(AtLeastOnce)]);
    let mut publisher = connect(options("pub", b.local_addr())).await;
    publisher.client.publish("t/0", AtMostOnce, false, "zero").await.unwrap();
    let p = sub.publish_received().await;
    assert_eq!((p.topic.as_str(), &p.payload[..], p.qos), ("t/0", &b"zero"[..], AtMostOnce));
    publisher.client.publish("t/1", AtLeastOnce, false, "one").await.unwrap();
    publisher.puback().await;
    let p = sub.publish_received().await;
    assert_eq!((p.topic.as_str(), &p.payload[..], p.qos, p.retain), ("t/1", &b"one"[..], AtLeastOnce, false));
    // Downgrades: a QoS 1 publish to a QoS 0 subscription arrives as QoS 0; QoS 2 is granted as 1.
    publisher.client.publish("t/0", AtLeastOnce, false, "down").await.unwrap();
    assert_eq!(sub.publish_received().await.qos, AtMostOnce);
    assert_eq!(sub.subscribed("t/2", ExactlyOnce).await, vec![SubscribeReasonCode::Success(AtLeastOnce)]);
    let stats = b.handle().stats();
    assert_eq!(stats.messages_in, 3);
    assert!(stats.messages_out >= 3);
    b.shutdown().await;
}

#[tokio::test]
async fn qos2_publish_completes_its_handshake_and_is_delivered() {
    let b = broker().await;
    let mut sub = connect(options("sub", b.local_addr())).await;
    sub.subscribed("q2", AtLeastOnce).await;
    let publisher = connect(options("pub", b.local_addr())).await;
    publisher.client.publish("q2", ExactlyOnce, false, "x").await.unwrap();
    let p = sub.publish_received().await;
    assert_eq!(p.qos, AtLeastOnce);
}

#[tokio::test]
async fn wildcards_match_by_level() {
    let b = broker().await;
    let mut sub = connect(options("sub", b.local_addr())).await;
    sub.subscribed("w/+/x", AtMostOnce).await;
    sub.subscribed("z/#", AtMostOnce).await;
    sub.subscribed("#", AtMostOnce).await; // must not see $-topics
    let mut sub2 = connect(options("sub2", b.local_addr())).await;
    sub2.subscribed("$SYS/#", AtMostOnce).await;
    let publisher = connect(options("pub", b.local_addr())).await;
    for topic in ["$SYS/hidden", "w/a/x", "z", "z/a/b"] {
        publisher.client.publish(topic, AtMostOnce, false, topic).await.unwrap();
    }
    // One connection's messages arrive in order; overlapping filters deliver once.
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(sub.publish_received().await.topic);
    }
    assert_eq!(got, ["w/a/x", "z", "z/a/b"]);
    assert_eq!(sub2.publish_received().await.topic, "$SYS/hidden");
}

#[tokio::test]
async fn retained_reaches_a_late_subscriber_and_an_empty_payload_clears_it() {
    let b = broker().await;
    let mut publisher = connect(options("pub", b.local_addr())).await;
    publisher.client.publish("r/a", AtLeastOnce, true, "kept").await.unwrap();
    publisher.puback().await;
    publisher.client.publish("r/b", AtLeastOnce, true, "gone").await.unwrap();
    publisher.puback().await;
    publisher.client.publish("r/b", AtLeastOnce, true, "").await.unwrap();
    publisher.puback().await;
    assert_eq!(b.handle().stats().retained, 1);
    let mut late = connect(options("late", b.local_addr())).await;
    late.subscribed("r/+", AtLeastOnce).await;
    let p = late.publish_received().await;
    assert_eq!((p.topic.as_str(), &p.payload[..], p.retain, p.qos), ("r/a", &b"kept"[..], true, AtLeastOnce));
    // A live subscriber gets later retained publishes with the retain flag cleared.
    publisher.client.publish("r/a", AtMostOnce, true, "new").await.unwrap();
    let p = late.publish_received().await;
    assert_eq!((&p.payload[..], p.retain), (&b"new"[..], false));
}

#[tokio::test]
async fn persistent_session_gets_queued_qos1_after_reconnect() {
    let b = broker().await;
    let mut opts = options("persist", b.local_addr());
    opts.set_clean_session(false);
    let mut p = connect(opts.clone()).await;
    assert!(!p.connack.session_present);
    p.subscribed("q/#", AtLeastOnce).await;
    p.client.disconnect().await.unwrap();
    p.closed().await;

    let mut publisher = connect(options("pub", b.local_addr())).await;
    for i in 0..3 {
        publisher.client.publish(format!("q/{i}"), AtLeastOnce, false, format!("m{i}")).await.unwrap();
        publisher.puback().await;
    }
    publisher.client.publish("q/zero", AtMostOnce, false, "not kept offline").await.unwrap();

    let mut p = connect(opts).await;
    assert!(p.connack.session_present);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(p.publish_received().await.payload);
    }
    assert_eq!(got, ["m0", "m1", "m2"]);
    // Its subscription survived too (rumqttc does not resubscribe by itself).
    publisher.client.publish("q/live", AtLeastOnce, false, "live").await.unwrap();
    assert_eq!(p.publish_received().await.payload, "live");
}

/// With TCP_NODELAY on both ends, a QoS 1 publish→receive on one connection takes well under a millisecond
/// on loopback; Nagle on the broker's socket would add about 40 ms to each.
#[tokio::test]
async fn qos1_exchange_has_no_nagle_stall() {
    let b = broker().await;
    let mut c = connect(options("echo", b.local_addr())).await;
    c.subscribed("echo", AtLeastOnce).await;
    let mut times = Vec::new();
    for i in 0..20 {
        let start = Instant::now();
        c.client.publish("echo", AtLeastOnce, false, format!("{i}")).await.unwrap();
        c.publish_received().await;
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    assert!(median.as_millis() < 20, "median QoS 1 exchange took {median:?}");
}
