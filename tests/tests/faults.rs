//! Fault tests on real processes: SIGKILLed agents and controllers, brokers stopped and restarted, a node cut
//! off its broker. The same scenarios run longer in the `reliability` bench (see BENCHMARKS.md).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use edge_tests::proxy::Proxy;
use edge_tests::scenario::{self, starts, ProcFleet};
use edge_tests::{eventually, example, Fleet};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_killed_while_applying_specs_runs_the_old_or_the_new_generation_never_a_mix() {
    let r = scenario::crash_during_apply(20).await;
    assert_eq!(r.old + r.new, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_write_the_controller_acknowledged_survives_its_sigkill() {
    let r = scenario::controller_kill_during_writes(1_000, 300).await;
    assert!(r.acknowledged < 1_000, "the kill came too late to test anything: {r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_restarted_without_a_broker_runs_its_instances_at_once() {
    let back = scenario::agent_restart_offline().await;
    // The goal (≤ 1 s) is measured by the reliability bench; here: well before any reconnect could happen.
    assert!(back < Duration::from_secs(10), "instance back {back:?} after the agent's start");
}

/// The autonomy acceptance, with processes: the controller (and its embedded broker) is SIGKILLed; one agent
/// is SIGKILLed and restarted during the outage and resumes on its own; when the controller returns, the
/// untouched node's instance was never restarted and the other's new start is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controller_outage_with_an_agent_restart_restarts_nothing_else() {
    let mut fleet = ProcFleet::start(2, None, &[]).await;
    let before = fleet.deploy_workloads().await;
    fleet.controller.as_mut().unwrap().kill9();
    // Both tickers keep printing: each agent logs more ticks after the controller is gone.
    let ticks = |p: &edge_tests::proc::Proc| p.output().matches("tick ").count();
    let counts: Vec<usize> = fleet.agents.iter().map(ticks).collect();
    eventually(Duration::from_secs(10), "ticks on both nodes with the controller down", || {
        let now: Vec<usize> = fleet.agents.iter().map(ticks).collect();
        let counts = counts.clone();
        async move { now.iter().zip(&counts).all(|(n, c)| n >= &(c + 2)).then_some(()) }
    })
    .await;
    fleet.agents[1].kill9();
    let n2 = fleet.spawn_agent("n2").await;
    n2.wait_for_output("event=Started", Duration::from_secs(20));
    fleet.agents[1] = n2;
    fleet.start_controller().await;
    let (_, after) = fleet.wait_converged(Duration::from_secs(60)).await;
    let by_node = |v: &[Value], n: &str| v.iter().find(|i| i["node"] == n).cloned().unwrap();
    let (b1, a1) = (by_node(&before, "n1"), by_node(&after, "n1"));
    assert_eq!((&a1["started_at"], &a1["restarts"]), (&b1["started_at"], &b1["restarts"]), "n1 was restarted");
    let (b2, a2) = (by_node(&before, "n2"), by_node(&after, "n2"));
    assert_ne!(a2["started_at"], b2["started_at"], "n2's new start is not reported");
    assert_eq!(a2["restarts"].as_u64(), Some(b2["restarts"].as_u64().unwrap() + 1), "an agent restart is a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restart_restarts_nothing_and_loses_no_event() {
    let r = scenario::broker_outage(2, Duration::from_secs(3)).await;
    assert_eq!(r.restarted, 0, "{r:?}");
    assert_eq!(r.events_lost, 0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_controller_restart_restarts_nothing_and_loses_no_event() {
    let r = scenario::controller_outage(2, Duration::from_secs(3)).await;
    assert_eq!(r.restarted, 0, "{r:?}");
    assert_eq!(r.events_lost, 0, "{r:?}");
    assert!(r.events_buffered > 0 || r.convergence > Duration::ZERO, "{r:?}");
}

/// A node cut off its broker while its reschedulable replica moves elsewhere stops that replica when the
/// partition heals: no lasting duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_node_stops_the_moved_replica_when_it_heals() {
    let mut fleet = Fleet::embedded_with(|c| {
        c.node_timeout = Duration::from_secs(2);
        c.reschedule_after = Duration::from_secs(1);
    })
    .await;
    let (_, port) = fleet.broker_addr();
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], port))).await;
    fleet.start_agent_at("cut", "127.0.0.1", proxy.port);
    fleet.start_agent("kept");
    fleet.wait_ready_nodes(2).await;
    let api = fleet.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    api.deploy("tick", &sha, 2).await;
    let running = api.wait_running("tick", 2).await;
    let nodes: HashSet<&str> = running.iter().map(|i| i["node"].as_str().unwrap()).collect();
    assert_eq!(nodes, HashSet::from(["cut", "kept"]));

    // Let the controller run longer than node-timeout + reschedule-after: a lost node must be measured from its
    // own Last Will, not from the controller's start (a bug that once moved replicas at once).
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.cut();
    let cut_at = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let w = api.workload("tick").await;
    assert!(
        w["instances"].as_array().unwrap().iter().any(|i| i["node"] == "cut"),
        "replica moved {:?} after the cut, before --reschedule-after (1 s): {w}",
        cut_at.elapsed()
    );
    eventually(Duration::from_secs(30), "both replicas Running on the kept node", || {
        let api = api.clone();
        async move {
            let w = api.workload("tick").await;
            let on_kept = w["instances"].as_array()?.iter().filter(|i| i["state"] == "Running" && i["node"] == "kept");
            (on_kept.count() == 2).then_some(())
        }
    })
    .await;
    proxy.heal();
    eventually(Duration::from_secs(60), "the healed node Ready and running nothing", || {
        let api = api.clone();
        async move {
            let nodes = api.get("/v1/nodes").await;
            let cut = nodes.as_array()?.iter().find(|n| n["name"] == "cut")?.clone();
            (cut["status"] == "Ready" && cut["instances"] == 0).then_some(())
        }
    })
    .await;
    let w = api.workload("tick").await;
    let instances = w["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2);
    assert!(instances.iter().all(|i| i["node"] == "kept"), "{w}");
    let _ = starts(instances);
    fleet.stop().await;
}
