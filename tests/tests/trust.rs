//! Identities on the embedded broker, against a real controller (in process) and its real `edge-broker`: the
//! shared policy suite ([`edge_tests::policy`]): anonymous clients are refused, nodes join with tokens over
//! MQTT, each node touches only its own topics, used, expired and deleted tokens are refused with the reason,
//! and a deleted node is cut off and stays off. `mosquitto_policy.rs` runs the same suite against Mosquitto.

use edge_controller::BrokerMode;
use edge_tests::policy::{self, Broker};
use edge_tests::Fleet;

async fn secure_fleet() -> Fleet {
    let port = edge_tests::ports::free_port();
    Fleet::configured(BrokerMode::Embedded(([127, 0, 0, 1], port).into()), |c| {
        c.allow_anonymous = false;
        c.require_join = true;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_only_each_on_its_own_topics_and_a_deleted_node_stays_out() {
    let fleet = secure_fleet().await;
    let port = fleet.broker_addr().1;
    policy::members_only_each_on_its_own_topics(&fleet, port, Broker::Embedded).await;
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_wrong_node_and_deleted_tokens_are_refused_by_name() {
    let fleet = secure_fleet().await;
    let port = fleet.broker_addr().1;
    policy::spent_tokens_are_refused_by_name(&fleet, port, Broker::Embedded).await;
    fleet.stop().await;
}
