//! Hostile or broken peers: garbage, oversize packets, non-CONNECT openings, slow consumers.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, Packet};
use rumqttc::QoS::{AtLeastOnce, AtMostOnce};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{broker, broker_with, connect, options, within};

/// Reads until the broker closes the socket; returns what it sent before.
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    within("the broker to close the socket", async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    all
}

fn connect_bytes(id: &str) -> BytesMut {
    let mut buf = BytesMut::new();
    Packet::Connect(Connect::new(id)).write(&mut buf, usize::MAX).unwrap();
    buf
}

#[tokio::test]
async fn garbage_closes_only_that_connection() {
    let b = broker().await;
    let mut sub = connect(options("sub", b.local_addr())).await;
    sub.subscribed("ok", AtMostOnce).await;

    // Garbage instead of CONNECT: an invalid packet type.
    let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
    raw.write_all(&[0xFF; 64]).await.unwrap();
    assert!(read_to_close(&mut raw).await.is_empty());

    // An established connection, then garbage: a malformed remaining length.
    let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
    raw.write_all(&connect_bytes("raw")).await.unwrap();
    let mut connack = [0u8; 4];
    within("CONNACK", raw.read_exact(&mut connack)).await.unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
    raw.write_all(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).await.unwrap();
    read_to_close(&mut raw).await;

    // A PUBLISH before CONNECT.
    let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
    let mut buf = BytesMut::new();
    Packet::Publish(rumqttc::Publish::new("ok", AtMostOnce, "sneaky")).write(&mut buf, usize::MAX).unwrap();
    raw.write_all(&buf).await.unwrap();
    read_to_close(&mut raw).await;

    // Everyone else is unaffected.
    let publisher = connect(options("pub", b.local_addr())).await;
    publisher.client.publish("ok", AtMostOnce, false, "fine").await.unwrap();
    assert_eq!(sub.publish_received().await.payload, "fine");
    assert_eq!(b.handle().stats().protocol_errors, 3);
    assert_eq!(b.handle().stats().messages_in, 1);
}

#[tokio::test]
async fn oversize_packet_closes_its_connection() {
    let b = broker_with(edge_broker::AllowAll, |c| c.max_packet_size = 1024).await;
    let mut sub = connect(options("sub", b.local_addr())).await;
    sub.subscribed("big", AtMostOnce).await;
    let mut big = connect(options("big", b.local_addr())).await;
    big.client.publish("big", AtLeastOnce, false, vec![7u8; 2048]).await.unwrap();
    big.closed().await;
    let publisher = connect(options("pub", b.local_addr())).await;
    publisher.client.publish("big", AtMostOnce, false, vec![1u8; 512]).await.unwrap();
    assert_eq!(sub.publish_received().await.payload.len(), 512, "the oversize one was never routed");
    assert_eq!(b.handle().stats().protocol_errors, 1);
}

#[tokio::test]
async fn silent_socket_is_closed_after_the_connect_timeout() {
    let b = broker_with(edge_broker::AllowAll, |c| c.connect_timeout = std::time::Duration::from_millis(200)).await;
    let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
    read_to_close(&mut raw).await;
}

#[tokio::test]
async fn slow_consumer_is_disconnected_when_its_qos1_queue_overflows() {
    let b = broker_with(edge_broker::AllowAll, |c| {
        c.max_queued_messages = 4;
        c.max_inflight = 1;
    })
    .await;
    // A raw subscriber that never acknowledges nor reads.
    let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
    raw.write_all(&connect_bytes("slow")).await.unwrap();
    let mut buf = BytesMut::new();
    let mut s = rumqttc::Subscribe::new("flood", AtLeastOnce);
    s.pkid = 1;
    Packet::Subscribe(s).write(&mut buf, usize::MAX).unwrap();
    raw.write_all(&buf).await.unwrap();
    let mut head = [0u8; 9]; // CONNACK (4) + SUBACK (5)
    within("CONNACK and SUBACK", raw.read_exact(&mut head)).await.unwrap();
    assert_eq!(head[4], 0x90);

    let mut publisher = connect(options("pub", b.local_addr())).await;
    for i in 0..6 {
        publisher.client.publish("flood", AtLeastOnce, false, format!("{i}")).await.unwrap();
        publisher.puback().await;
    }
    read_to_close(&mut raw).await;
    let stats = b.handle().stats();
    assert_eq!(stats.slow_consumers_disconnected, 1);
    assert!(stats.dropped_queue_full >= 1);
}
