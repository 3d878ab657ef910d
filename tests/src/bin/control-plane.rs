//! Control-plane figures (release build): the pure scheduler, placements through the store, the controller
//! under a simulated fleet, and failover after SIGKILL. Prints the table recorded in BENCHMARKS.md.
//!
//! ```text
//! cargo build --release --bins && target/release/control-plane [--skip-fleet | --fleet 1000,10000]
//!     [--fleet-broker embedded|mosquitto] [--trials 20]
//! With `--fleet-broker mosquitto` the fleet runs through a Mosquitto started here (the controller connects to it as
//! an external broker), so the controller's figures exclude a broker.
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_controller::model::{InstanceRecord, WorkloadRecord, WorkloadSpec};
use edge_controller::scheduler::{NodeSlot, Snapshot};
use edge_controller::store::{Change, Store};
use edge_proto::Resources;
use edge_tests::proc::ControllerProc;
use edge_tests::sim::{self, SimConfig, SimStats};
use edge_tests::{eventually, scenario};

const NODES: usize = 10_000;
const WORKLOADS: usize = 1_000;
const REPLICAS: usize = 100;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let placements = scheduler_and_store();
    println!("{placements}");
    if !flag("--skip-fleet") {
        let sizes: Vec<usize> = match arg("--fleet") {
            Some(list) => list.split(',').filter_map(|n| n.parse().ok()).collect(),
            None => vec![1_000, 10_000],
        };
        let mosquitto = arg("--fleet-broker").as_deref() == Some("mosquitto");
        for nodes in sizes {
            fleet(nodes, mosquitto).await;
        }
    }
    let trials = arg("--trials").and_then(|t| t.parse().ok()).unwrap_or(20);
    let times = scenario::failover(trials).await;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "failover, --reschedule-after 1s, SIGKILLed agent, {trials} trials: p50 {:.0} ms, p99 {:.0} ms (min {:.0}, max {:.0})",
        ms(p(0.5)),
        ms(p(0.99)),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
}

/// 100,000 placements on 10,000 nodes, one core; then the same placements committed to a redb store.
fn scheduler_and_store() -> String {
    let zones = ["z0", "z1", "z2", "z3", "z4"];
    let nodes: Vec<NodeSlot> = (0..NODES)
        .map(|i| {
            let labels = BTreeMap::from([("zone".to_string(), zones[i % zones.len()].to_string())]);
            NodeSlot::new(format!("n{i:05}"), Resources { cpu_millis: 4000, memory_bytes: 8 << 30 }).with_labels(labels)
        })
        .collect();
    let mut snap = Snapshot::new(nodes);
    let request = Resources { cpu_millis: 30, memory_bytes: 64 << 20 };
    let keys: Vec<String> = (0..WORKLOADS).map(|w| format!("default/w{w:04}")).collect();
    let t0 = Instant::now();
    let mut placed: Vec<Vec<String>> = (0..WORKLOADS).map(|_| Vec::with_capacity(REPLICAS)).collect();
    for (w, key) in keys.iter().enumerate() {
        for _ in 0..REPLICAS {
            placed[w].push(snap.place(key, request).expect("room for every replica"));
        }
    }
    let sched = t0.elapsed();
    let max_per_node = snap.nodes.iter().map(|n| n.replicas.values().sum::<u32>()).max().unwrap_or(0);

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let records: Vec<WorkloadRecord> = placed
        .into_iter()
        .enumerate()
        .map(|(w, nodes)| WorkloadRecord {
            namespace: "default".into(),
            name: format!("w{w:04}"),
            spec: WorkloadSpec {
                module: "ab".repeat(32),
                replicas: REPLICAS as u32,
                cpu_millis: request.cpu_millis,
                memory_bytes: request.memory_bytes,
                ..Default::default()
            },
            revision: 1,
            instances: nodes
                .into_iter()
                .enumerate()
                .map(|(i, n)| InstanceRecord {
                    id: format!("w{w:04}-{i:03}"),
                    revision: 1,
                    node: Some(n),
                    reason: None,
                })
                .collect(),
            created_ms: 0,
            history: vec![],
        })
        .collect();
    let t1 = Instant::now();
    for batch in records.chunks(100) {
        let changes: Vec<Change<'_>> = batch.iter().map(Change::PutWorkload).collect();
        store.commit(&changes).expect("commit");
    }
    let stored = t1.elapsed();
    format!(
        "scheduler: {} placements on {NODES} nodes in {:.3} s = {:.0} placements/s on one core (at most {max_per_node} \
         replicas on a node)\nstore: the same placements committed to redb in {} batches in {:.3} s",
        WORKLOADS * REPLICAS,
        sched.as_secs_f64(),
        (WORKLOADS * REPLICAS) as f64 / sched.as_secs_f64(),
        WORKLOADS / 100,
        stored.as_secs_f64()
    )
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A controller pinned to one core (`taskset -c 0`), with its embedded broker, under `nodes` simulated nodes
/// heartbeating faster than it can keep up with; reports heartbeats handled per second and RSS per node.
async fn fleet(nodes: usize, external: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mosquitto = external.then(edge_tests::Mosquitto::start);
    let pinned = ["/usr/bin/taskset", "-c", "0"];
    let data = dir.path().join("controller");
    let c =
        ControllerProc::start_via(&pinned, "controller", &data, mosquitto.as_ref().map(|m| m.port), &[], dir.path());
    let api = c.client();
    let (controller, mqtt_port) = (c.proc, c.mqtt.port());
    let up = || {
        let api = api.clone();
        async move { api.try_get("/healthz").await.map(|_| ()) }
    };
    eventually(Duration::from_secs(30), "the controller", up).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let empty = rss_kib(controller.pid());

    let mut cfg = SimConfig::new("127.0.0.1", mqtt_port, nodes);
    // Offer about 40,000 heartbeats/s whatever the fleet size.
    cfg.heartbeat = Duration::from_micros(nodes as u64 * 25);
    let stats = Arc::new(SimStats::default());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(sim::run(cfg, stats.clone(), rx));
    let joined = Instant::now();
    let ready = || {
        let api = api.clone();
        async move {
            let s = api.try_get("/v1/stats").await?;
            (s["ready_nodes"].as_u64()? as usize >= nodes).then_some(())
        }
    };
    eventually(Duration::from_secs(300), &format!("{nodes} simulated nodes Ready"), ready).await;
    let join_time = joined.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let handled = |s: serde_json::Value| s["heartbeats"].as_u64().unwrap_or(0);
    let (h0, s0) = (handled(api.get("/v1/stats").await), stats.heartbeats_sent.load(Ordering::Relaxed));
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let (h1, s1) = (handled(api.get("/v1/stats").await), stats.heartbeats_sent.load(Ordering::Relaxed));
    let rss = rss_kib(controller.pid());
    let _ = stop.send(true);
    run.abort();
    let broker = if external { "Mosquitto (external)" } else { "its embedded broker" };
    println!(
        "fleet of {nodes} simulated nodes via {broker}: all Ready {:.1} s after the simulator started; controller \
         pinned to one core handled {:.0} heartbeats/s ({:.0}/s offered); RSS {} MiB ({} MiB empty) = {:.1} \
         KiB per node",
        join_time.as_secs_f64(),
        (h1 - h0) as f64 / window.as_secs_f64(),
        (s1 - s0) as f64 / window.as_secs_f64(),
        rss / 1024,
        empty / 1024,
        (rss.saturating_sub(empty)) as f64 / nodes as f64
    );
}
