//! The in-process link: same routing, no socket, no policy.

use edge_broker::{Identity, LocalError, Policy, QoS};
use rumqttc::QoS::AtLeastOnce;

use crate::common::{broker_with, connect, options, within};

/// Network clients may do nothing but subscribe to `down/#` and publish to `up/…`.
struct Narrow;

impl Policy for Narrow {
    fn connect(&self, _: &edge_broker::Credentials<'_>) -> Result<Identity, edge_broker::Refusal> {
        Ok(Identity::anonymous())
    }
    fn may_publish(&self, _: &Identity, topic: &str) -> bool {
        topic.starts_with("up/")
    }
    fn may_subscribe(&self, _: &Identity, filter: &str) -> bool {
        filter.starts_with("down/")
    }
}

#[tokio::test]
async fn local_link_publishes_and_subscribes_past_the_policy() {
    let b = broker_with(Narrow, |_| {}).await;
    let (tx, mut rx) = b.handle().local_client("controller").unwrap();
    assert_eq!(tx.subscribe("up/#", QoS::ExactlyOnce), Ok(QoS::AtLeastOnce));
    assert_eq!(tx.subscribe("a/#/b", QoS::AtLeastOnce), Err(LocalError::InvalidFilter));

    let mut node = connect(options("node", b.local_addr())).await;
    node.subscribed("down/#", AtLeastOnce).await;
    node.client.publish("up/hello", AtLeastOnce, false, "hi").await.unwrap();
    let m = within("local receive", rx.recv()).await.expect("message");
    assert_eq!((&*m.topic, &m.payload[..], m.qos), ("up/hello", &b"hi"[..], QoS::AtLeastOnce));

    // The policy would refuse a network client this topic; the local link is the authority.
    tx.publish("down/spec", "v1", QoS::AtLeastOnce, true).unwrap();
    let p = node.publish_received().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("down/spec", &b"v1"[..]));
    assert_eq!(tx.publish("bad/+", "x", QoS::AtMostOnce, false), Err(LocalError::InvalidTopic));
    // Retained messages published locally reach a late local subscriber with the retain flag.
    let (tx2, mut rx2) = b.handle().local_client("second").unwrap();
    tx2.subscribe("down/+", QoS::AtLeastOnce).unwrap();
    assert!(rx2.try_recv().expect("retained queued at subscribe").retain);
}

#[tokio::test]
async fn local_client_id_is_not_taken_over_by_a_network_client() {
    let b = broker_with(edge_broker::AllowAll, |_| {}).await;
    let (tx, _rx) = b.handle().local_client("controller").unwrap();
    match crate::common::try_connect(options("controller", b.local_addr())).await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::mqttbytes::v4::ConnectReturnCode::BadClientId)
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a network client took the local link's id"),
    }
    assert!(tx.publish("x", "still mine", QoS::AtMostOnce, false).is_ok());
    // Dropping the receiver ends the link.
    drop(_rx);
    assert_eq!(tx.publish("x", "y", QoS::AtMostOnce, false), Err(LocalError::Closed));
}
