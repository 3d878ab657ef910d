//! What one client may cost the broker: retained budgets (per client, all clients, local links apart) and the
//! inbound pace that holds a flooding connection back without disconnecting it or slowing anyone else.

use std::time::{Duration, Instant};

use edge_broker::{AllowAll, QoS, Rate};
use rumqttc::QoS::{AtLeastOnce, AtMostOnce};

use crate::common::{broker_with, connect, options, within, Client};

/// Publishes on `topic` from `probe` (subscribed to it) and returns how long the message took to come back.
async fn round_trip(probe: &mut Client, topic: &str, n: usize) -> Duration {
    let t0 = Instant::now();
    probe.client.publish(topic, AtLeastOnce, false, format!("probe {n}")).await.unwrap();
    loop {
        let p = probe.publish_received().await;
        if p.payload == format!("probe {n}") {
            return t0.elapsed();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_paced_while_others_are_served() {
    // 200 KiB/s with a 50 KiB burst: 20 packets of 20 KiB cannot take less than (400 - 50 - 20) / 200 s.
    let b = broker_with(AllowAll, |c| {
        c.inbound_bytes = Some(Rate::new(200 * 1024, 50 * 1024));
        c.inbound_packets = None;
    })
    .await;
    let mut sink = connect(options("sink", b.local_addr())).await;
    sink.subscribed("flood", AtMostOnce).await;
    let mut probe = connect(options("probe", b.local_addr())).await;
    probe.subscribed("probe", AtLeastOnce).await;
    let flooder = connect(options("flooder", b.local_addr())).await;

    let t0 = Instant::now();
    let flood = tokio::spawn(async move {
        for _ in 0..20 {
            flooder.client.publish("flood", AtMostOnce, false, vec![7u8; 20 * 1024]).await.unwrap();
        }
        flooder
    });
    let mut slowest = Duration::ZERO;
    for n in 0..5 {
        slowest = slowest.max(round_trip(&mut probe, "probe", n).await);
    }
    for _ in 0..20 {
        assert_eq!(sink.publish_received().await.payload.len(), 20 * 1024);
    }
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(1500), "20 × 20 KiB at 200 KiB/s arrived in {took:?}");
    assert!(slowest < Duration::from_secs(1), "another client's round trip took {slowest:?} during the flood");
    let stats = b.handle().stats();
    assert!(stats.inbound_throttled > 0, "{stats:?}");
    assert_eq!((stats.protocol_errors, stats.keep_alive_expired), (0, 0), "nobody was disconnected: {stats:?}");
    // Paced, not cut off: the flooder is still connected and served.
    let mut flooder = within("the flood task", flood).await.unwrap();
    flooder.subscribed("after", AtMostOnce).await;
}

#[tokio::test]
async fn packets_are_paced_as_well_as_bytes() {
    let b = broker_with(AllowAll, |c| {
        c.inbound_bytes = None;
        c.inbound_packets = Some(Rate::new(100, 10));
    })
    .await;
    let mut sink = connect(options("sink", b.local_addr())).await;
    sink.subscribed("tiny", AtMostOnce).await;
    let flooder = connect(options("flooder", b.local_addr())).await;
    let t0 = Instant::now();
    for i in 0..60 {
        flooder.client.publish("tiny", AtMostOnce, false, format!("{i}")).await.unwrap();
    }
    for _ in 0..60 {
        sink.publish_received().await;
    }
    // 60 packets at 100/s after a burst of 10 (and one overdraw): at least 0.49 s.
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(450), "60 packets at 100/s arrived in {took:?}");
    assert!(b.handle().stats().inbound_throttled > 0);
}

#[tokio::test]
async fn a_client_over_its_retained_budget_is_refused_the_retain_but_still_delivers() {
    let b = broker_with(AllowAll, |c| {
        c.max_retained_messages_per_client = 2;
        c.max_retained_bytes_per_client = 1024;
    })
    .await;
    let mut live = connect(options("live", b.local_addr())).await;
    live.subscribed("r/#", AtLeastOnce).await;
    let mut greedy = connect(options("greedy", b.local_addr())).await;
    for i in 0..5 {
        greedy.client.publish(format!("r/{i}"), AtLeastOnce, true, "v").await.unwrap();
        greedy.puback().await;
    }
    for _ in 0..5 {
        live.publish_received().await;
    }
    let stats = b.handle().stats();
    assert_eq!((stats.retained, stats.retained_bytes, stats.retained_refused), (2, 8, 3), "{stats:?}");

    let mut late = connect(options("late", b.local_addr())).await;
    late.subscribed("r/#", AtMostOnce).await;
    let mut got = vec![late.publish_received().await.topic, late.publish_received().await.topic];
    got.sort();
    assert_eq!(got, ["r/0", "r/1"]);

    // Another client has its own budget; clearing always works and gives the budget back.
    let mut other = connect(options("other", b.local_addr())).await;
    other.client.publish("o/1", AtLeastOnce, true, "v").await.unwrap();
    other.puback().await;
    greedy.client.publish("r/0", AtLeastOnce, true, "").await.unwrap();
    greedy.puback().await;
    greedy.client.publish("r/9", AtLeastOnce, true, "v").await.unwrap();
    greedy.puback().await;
    let stats = b.handle().stats();
    assert_eq!((stats.retained, stats.retained_refused), (3, 3), "{stats:?}");
}

#[tokio::test]
async fn local_links_are_not_held_to_the_clients_budgets() {
    let b = broker_with(AllowAll, |c| {
        c.max_retained_messages = 1;
        c.max_retained_bytes = 64;
    })
    .await;
    let mut squatter = connect(options("squatter", b.local_addr())).await;
    squatter.client.publish("junk", AtLeastOnce, true, vec![0u8; 60]).await.unwrap();
    squatter.puback().await;
    let (tx, _rx) = b.handle().local_client("controller").unwrap();
    for i in 0..50 {
        tx.publish(&format!("nodes/n{i}/spec"), vec![1u8; 4096], QoS::AtLeastOnce, true).unwrap();
    }
    let stats = b.handle().stats();
    assert_eq!((stats.retained, stats.retained_refused), (51, 0), "{stats:?}");
}
