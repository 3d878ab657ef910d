//! Authentication, per-topic authorisation, takeover and revocation.

use edge_broker::{Credentials, Identity, Policy, Refusal};
use rumqttc::mqttbytes::v4::{ConnectReturnCode, SubscribeReasonCode};
use rumqttc::ConnectionError;
use rumqttc::QoS::AtLeastOnce;

use crate::common::{broker_with, connect, options, try_connect};

/// Users `n1`, `n2` (password = name + "-pw") confined to `nodes/{name}/…`; `admin` may do anything.
struct Nodes;

impl Policy for Nodes {
    fn connect(&self, c: &Credentials<'_>) -> Result<Identity, Refusal> {
        let user = c.username.ok_or(Refusal::NotAuthorized)?;
        if !["n1", "n2", "admin"].contains(&user) {
            return Err(Refusal::NotAuthorized);
        }
        if c.password != Some(format!("{user}-pw").as_bytes()) {
            return Err(Refusal::BadCredentials);
        }
        Ok(Identity::principal(user))
    }

    fn may_publish(&self, id: &Identity, topic: &str) -> bool {
        id.name() == Some("admin") || id.name().is_some_and(|n| topic.starts_with(&format!("nodes/{n}/")))
    }

    fn may_subscribe(&self, id: &Identity, filter: &str) -> bool {
        id.name() == Some("admin")
            || id.name().is_some_and(|n| rumqttc::matches(filter, &format!("nodes/{n}/#")) && !filter.starts_with('#'))
    }
}

fn login(client_id: &str, user: &str, addr: std::net::SocketAddr) -> rumqttc::MqttOptions {
    let mut o = options(client_id, addr);
    o.set_credentials(user, format!("{user}-pw"));
    o
}

fn refused_with(r: Result<impl Sized, ConnectionError>) -> ConnectReturnCode {
    match r {
        Err(ConnectionError::ConnectionRefused(code)) => code,
        Err(e) => panic!("expected a CONNACK refusal, got {e}"),
        Ok(_) => panic!("expected a CONNACK refusal, got a connection"),
    }
}

#[tokio::test]
async fn bad_password_and_unknown_user_are_refused_with_their_codes() {
    let b = broker_with(Nodes, |_| {}).await;
    let mut o = options("n1", b.local_addr());
    o.set_credentials("n1", "wrong");
    assert_eq!(refused_with(try_connect(o).await), ConnectReturnCode::BadUserNamePassword);
    let mut o = options("x", b.local_addr());
    o.set_credentials("mallory", "mallory-pw");
    assert_eq!(refused_with(try_connect(o).await), ConnectReturnCode::NotAuthorized);
    assert_eq!(refused_with(try_connect(options("anon", b.local_addr())).await), ConnectReturnCode::NotAuthorized);
    assert_eq!(b.handle().stats().connect_refused, 3);
    connect(login("n1", "n1", b.local_addr())).await;
}

#[tokio::test]
async fn publish_outside_own_topics_is_acked_and_dropped() {
    let b = broker_with(Nodes, |_| {}).await;
    let mut admin = connect(login("admin", "admin", b.local_addr())).await;
    admin.subscribed("nodes/#", AtLeastOnce).await;
    let mut n1 = connect(login("n1", "n1", b.local_addr())).await;
    n1.client.publish("nodes/n2/spec", AtLeastOnce, false, "forged").await.unwrap();
    n1.puback().await;
    n1.client.publish("nodes/n1/events", AtLeastOnce, false, "mine").await.unwrap();
    n1.puback().await;
    // Same connection, in order: had the forged one been routed, it would arrive first.
    let p = admin.publish_received().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("nodes/n1/events", &b"mine"[..]));
    assert_eq!(b.handle().stats().publish_refused, 1);
}

#[tokio::test]
async fn subscribe_outside_own_topics_gets_failure_per_filter() {
    let b = broker_with(Nodes, |_| {}).await;
    let mut n1 = connect(login("n1", "n1", b.local_addr())).await;
    n1.client
        .subscribe_many([
            rumqttc::SubscribeFilter::new("nodes/n1/#".into(), AtLeastOnce),
            rumqttc::SubscribeFilter::new("nodes/+/spec".into(), AtLeastOnce),
            rumqttc::SubscribeFilter::new("#".into(), AtLeastOnce),
        ])
        .await
        .unwrap();
    assert_eq!(
        n1.suback().await,
        vec![SubscribeReasonCode::Success(AtLeastOnce), SubscribeReasonCode::Failure, SubscribeReasonCode::Failure]
    );
    assert_eq!(b.handle().stats().subscribe_refused, 2);
}

#[tokio::test]
async fn forbidden_last_will_refuses_the_connect() {
    let b = broker_with(Nodes, |_| {}).await;
    let mut o = login("n1", "n1", b.local_addr());
    o.set_last_will(rumqttc::LastWill::new("nodes/n2/status", "offline", AtLeastOnce, true));
    assert_eq!(refused_with(try_connect(o).await), ConnectReturnCode::NotAuthorized);
}

#[tokio::test]
async fn takeover_by_another_identity_is_refused_and_by_the_same_allowed() {
    let b = broker_with(Nodes, |_| {}).await;
    let mut first = connect(login("node-1", "n1", b.local_addr())).await;
    assert_eq!(
        refused_with(try_connect(login("node-1", "n2", b.local_addr())).await),
        ConnectReturnCode::NotAuthorized
    );
    // The first connection is untouched.
    first.subscribed("nodes/n1/x", AtLeastOnce).await;
    first.client.publish("nodes/n1/x", AtLeastOnce, false, "still here").await.unwrap();
    assert_eq!(first.publish_received().await.payload, "still here");
    // The same identity takes over (a node reconnecting over a half-open socket).
    let _second = connect(login("node-1", "n1", b.local_addr())).await;
    first.closed().await;
    assert_eq!(b.handle().stats().takeovers, 1);
}

#[tokio::test]
async fn disconnect_closes_at_once_and_revoke_refuses_afterwards() {
    let b = broker_with(Nodes, |_| {}).await;
    let h = b.handle();
    let mut c = connect(login("node-1", "n1", b.local_addr())).await;
    assert!(h.disconnect("node-1"));
    c.closed().await;
    assert!(!h.disconnect("node-1"), "nothing left to close");
    let mut c = connect(login("node-1", "n1", b.local_addr())).await;
    assert!(h.revoke("node-1"));
    c.closed().await;
    assert_eq!(
        refused_with(try_connect(login("node-1", "n1", b.local_addr())).await),
        ConnectReturnCode::NotAuthorized
    );
    assert!(h.reinstate("node-1"));
    connect(login("node-1", "n1", b.local_addr())).await;
    assert_eq!(h.stats().kicked, 2);
}
