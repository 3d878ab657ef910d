//! Fault scenarios on real processes, shared by the fault tests (which assert) and the `reliability` bench
//! binary (which prints figures). Each one builds its own fleet in a temporary directory and tears it down.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use edge_proto::{InstanceSpec, NodeSpec, RestartPolicy, Sha256};
use serde_json::Value;

use crate::proc::{agent_args, binary, ControllerProc, Mqtt, Proc};
use crate::wire::{Peer, PEER_ISSUER};
use crate::{eventually, example, Api, Mosquitto};

fn sha256(bytes: &[u8]) -> Sha256 {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// An instance of `module` (of `size` bytes) with small requests and no limits beyond memory.
pub fn instance(id: String, module: Sha256, size: u64) -> InstanceSpec {
    InstanceSpec {
        id,
        namespace: "default".into(),
        workload: "t".into(),
        module,
        module_size: size,
        args: vec![],
        env: vec![],
        cpu_millis: 10,
        memory_limit_bytes: 16 << 20,
        restart: RestartPolicy::Always,
        cpu_limit_millis: 0,
        timeout_ms: 0,
        volumes: vec![],
    }
}

/// Outcome of [`crash_during_apply`].
#[derive(Debug, Default)]
pub struct CrashApply {
    pub trials: usize,
    /// Trials after which the agent ran the spec it had before the kill, or the one being applied.
    pub old: usize,
    pub new: usize,
    /// Time from the agent's restart to its first heartbeat (median), over the trials.
    pub restart_to_report_p50: Duration,
}

/// `trials` times: publish a new spec (a different number of instances, new ids), SIGKILL the agent 0–40 ms
/// later, restart it with no spec on offer, and check it runs exactly the old or exactly the new generation.
/// Panics on a mix, a store that does not open, or a generation that disagrees with the instances.
pub async fn crash_during_apply(trials: usize) -> CrashApply {
    let dir = tempfile::tempdir().expect("tempdir");
    let mosquitto = Mosquitto::start();
    let ticker = example("ticker.wasm");
    let sha = sha256(&ticker);
    let size = ticker.len() as u64;
    let mut peer = Peer::connect(mosquitto.port, "crash", HashMap::from([(sha, ticker)])).await;
    let data = dir.path().join("agent");
    let bin = binary("edge-agent");
    let args = agent_args("crash", mosquitto.port, &data, &[]);
    let mut agent = Proc::spawn("agent", &bin, &args, dir.path());
    let ids = |g: u64| -> Vec<String> { (0..1 + g % 3).map(|i| format!("g{g}-{i}")).collect() };
    let spec = |g: u64| NodeSpec {
        issuer: PEER_ISSUER,
        generation: g,
        instances: ids(g).into_iter().map(|id| instance(id, sha, size)).collect(),
    };
    // Generation 1 is applied and running before the first kill (retained: the agent may subscribe later).
    peer.publish_spec(&spec(1), true).await;
    peer.heartbeat_where(Duration::from_secs(60), |h| h.applied_generation == 1 && h.instances.len() == 2).await;
    let mut current = 1u64;
    let mut report = CrashApply { trials, ..Default::default() };
    let mut report_times = Vec::new();
    for _ in 0..trials {
        let next = current + 1;
        peer.publish_spec(&spec(next), false).await;
        tokio::time::sleep(Duration::from_millis(rand_below(40))).await;
        agent.kill9();
        let since_ms = edge_agent::clock::now_ms();
        agent = Proc::spawn("agent", &bin, &args, dir.path());
        let t0 = Instant::now();
        let hb = peer.heartbeat_where(Duration::from_secs(30), |h| h.at_ms >= since_ms).await;
        report_times.push(t0.elapsed());
        let running: BTreeSet<String> = hb.instances.iter().map(|i| i.id.clone()).collect();
        let expect: BTreeSet<String> = ids(hb.applied_generation).into_iter().collect();
        assert!(
            hb.applied_generation == current || hb.applied_generation == next,
            "after a kill while applying generation {next} over {current}, the agent reports generation {}",
            hb.applied_generation
        );
        assert_eq!(running, expect, "generation {} but instances {running:?}: a mix", hb.applied_generation);
        if hb.applied_generation == next {
            report.new += 1;
        } else {
            report.old += 1;
        }
        current = hb.applied_generation;
    }
    report_times.sort();
    report.restart_to_report_p50 = report_times.get(report_times.len() / 2).copied().unwrap_or_default();
    report
}

fn rand_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(edge_agent::clock::now_ms());
    h.finish() % n.max(1)
}

/// Time from spawning an agent, with its broker down, to its persisted instance running again (its own log
/// says `Started`). The spec came from a test peer before the broker went away.
pub async fn agent_restart_offline() -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let mosquitto = Mosquitto::start();
    let ticker = example("ticker.wasm");
    let sha = sha256(&ticker);
    let size = ticker.len() as u64;
    let mut peer = Peer::connect(mosquitto.port, "offline", HashMap::from([(sha, ticker)])).await;
    let data = dir.path().join("agent");
    let bin = binary("edge-agent");
    let args = agent_args("offline", mosquitto.port, &data, &[]);
    let mut agent = Proc::spawn("agent", &bin, &args, dir.path());
    peer.publish_spec(
        &NodeSpec { issuer: PEER_ISSUER, generation: 1, instances: vec![instance("t-1".into(), sha, size)] },
        true,
    )
    .await;
    peer.heartbeat_where(Duration::from_secs(60), |h| {
        h.instances.iter().any(|i| i.state == edge_proto::InstanceState::Running)
    })
    .await;
    drop(peer);
    drop(mosquitto);
    agent.kill9();
    let agent = Proc::spawn("agent-again", &bin, &args, dir.path());
    let back = agent.wait_for_output("event=Started", Duration::from_secs(30));
    assert!(!agent.output().contains("connected to the MQTT broker"), "the broker was supposed to be down");
    back
}

/// A controller process with its embedded broker, `agents` agent processes, `tick` (one replica per node) and
/// a crash-looping `hi` producing events. Used by the outage scenarios.
pub struct ProcFleet {
    pub dir: tempfile::TempDir,
    /// The broker's port: the embedded one's (kept across controller restarts) or the external one's.
    pub mqtt: Mqtt,
    pub controller: Option<Proc>,
    pub agents: Vec<Proc>,
    /// The controller's API; a restarted controller listens on a new port and this follows it.
    pub api: Api,
    controller_extra: Vec<String>,
}

impl ProcFleet {
    /// `broker`: `None` for the embedded broker, or the port of an external one.
    pub async fn start(agents: usize, broker: Option<u16>, controller_extra: &[&str]) -> ProcFleet {
        let dir = tempfile::tempdir().expect("tempdir");
        // Identities on: the embedded broker admits only joined nodes' credentials, agents join with tokens.
        let mut extra: Vec<&str> = controller_extra.to_vec();
        extra.push(crate::proc::SECURE);
        let c = ControllerProc::start("controller", &dir.path().join("controller"), broker, &extra, dir.path());
        let mut fleet = ProcFleet {
            mqtt: c.mqtt,
            api: c.client(),
            controller: Some(c.proc),
            dir,
            agents: Vec::new(),
            controller_extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        fleet.wait_api().await;
        for i in 1..=agents {
            let agent = fleet.spawn_agent(&format!("n{i}")).await;
            fleet.agents.push(agent);
        }
        fleet.wait_ready(agents).await;
        fleet
    }

    pub fn mqtt_port(&self) -> u16 {
        self.mqtt.port()
    }

    /// Starts the controller again on the same store and broker port (after a kill).
    pub async fn start_controller(&mut self) {
        let data = self.dir.path().join("controller");
        let extra: Vec<&str> = self.controller_extra.iter().map(String::as_str).collect();
        let c = ControllerProc::restart("controller", &data, self.mqtt, &extra, self.dir.path());
        self.api = c.client();
        self.controller = Some(c.proc);
        self.wait_api().await;
    }

    async fn wait_api(&self) {
        let api = self.api.clone();
        eventually(Duration::from_secs(30), "the controller's API", || {
            let api = api.clone();
            async move { api.try_get("/healthz").await.map(|_| ()) }
        })
        .await;
    }

    /// Starts agent `node`; the first time, it joins with a token made for it (after that its identity is in
    /// its store).
    pub async fn spawn_agent(&self, node: &str) -> Proc {
        let data = self.dir.path().join(node);
        let mut extra = Vec::new();
        if edge_agent::identity::load(&data).ok().flatten().is_none_or(|i| i.node != node) {
            extra = vec!["--join".to_string(), self.api.join_token(node).await];
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let args = agent_args(node, self.mqtt_port(), &data, &extra);
        Proc::spawn(node, &binary("edge-agent"), &args, self.dir.path())
    }

    pub async fn wait_ready(&self, n: usize) {
        let api = self.api.clone();
        eventually(Duration::from_secs(60), &format!("{n} Ready nodes"), || {
            let api = api.clone();
            async move {
                let nodes = api.try_get("/v1/nodes").await?;
                (nodes.as_array()?.iter().filter(|x| x["status"] == "Ready").count() >= n).then_some(())
            }
        })
        .await
    }

    /// Deploys `tick` with a replica per agent and a crash-looping `hi`; returns tick's instances once Running.
    pub async fn deploy_workloads(&self) -> Vec<Value> {
        let tick = self.api.upload(example("ticker.wasm")).await;
        let hello = self.api.upload(example("hello.wasm")).await;
        self.api.deploy("tick", &tick, self.agents.len() as u32).await;
        self.api.deploy("hi", &hello, 1).await;
        self.api.wait_running("tick", self.agents.len()).await
    }

    /// Converged: every node Ready and caught up on events (none missing), and `tick` Running everywhere.
    pub async fn converged(&self) -> Option<Vec<Value>> {
        let nodes = self.api.try_get("/v1/nodes").await?;
        for n in nodes.as_array()? {
            if n["status"] != "Ready" {
                return None;
            }
            let d = self.api.try_get(&format!("/v1/nodes/{}", n["name"].as_str()?)).await?;
            let e = &d["events"];
            if e["applied_up_to"].as_u64()? < e["agent_last_seq"].as_u64()? || e["missing"].as_u64()? != 0 {
                return None;
            }
        }
        let w = self.api.try_get("/v1/namespaces/default/workloads/tick").await?;
        let running: Vec<Value> =
            w["instances"].as_array()?.iter().filter(|i| i["state"] == "Running").cloned().collect();
        (running.len() == self.agents.len()).then_some(running)
    }

    /// Waits for [`ProcFleet::converged`]; returns the time it took and tick's instances.
    pub async fn wait_converged(&self, timeout: Duration) -> (Duration, Vec<Value>) {
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        loop {
            if let Some(v) = self.converged().await {
                return (t0.elapsed(), v);
            }
            if Instant::now() >= deadline {
                let nodes = self.api.try_get("/v1/nodes").await;
                let mut details = Vec::new();
                for n in 1..=self.agents.len() {
                    details.push(self.api.try_get(&format!("/v1/nodes/n{n}")).await);
                }
                let tick = self.api.try_get("/v1/namespaces/default/workloads/tick").await;
                panic!("not converged within {timeout:?}: nodes {nodes:?}\ndetails {details:?}\ntick {tick:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `(node, started_at, restarts)` of each instance, for before/after comparisons.
pub fn starts(instances: &[Value]) -> BTreeSet<(String, String, u64)> {
    instances
        .iter()
        .map(|i| {
            (
                i["node"].as_str().unwrap_or_default().to_string(),
                i["started_at"].as_str().unwrap_or_default().to_string(),
                i["restarts"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Outcome of an outage scenario.
#[derive(Debug)]
pub struct Outage {
    pub outage: Duration,
    /// From the end of the fault (the process is back) to convergence.
    pub convergence: Duration,
    /// Instances whose `started_at` or `restarts` changed.
    pub restarted: usize,
    /// Events the controller never received (sequence gaps), summed over nodes.
    pub events_lost: u64,
    /// Events the agents buffered during the outage, summed over nodes (as their last outage reports say).
    pub events_buffered: u64,
}

async fn outage_report(fleet: &ProcFleet, outage: Duration, before: &[Value], back: Instant) -> Outage {
    let (_, after) = fleet.wait_converged(Duration::from_secs(120)).await;
    let convergence = back.elapsed();
    let (b, a) = (starts(before), starts(&after));
    let restarted = b.difference(&a).count();
    let mut events_lost = 0;
    let mut events_buffered = 0;
    for n in 1..=fleet.agents.len() {
        let d = fleet.api.get(&format!("/v1/nodes/n{n}")).await;
        events_lost += d["events"]["missing"].as_u64().unwrap_or(0);
        events_buffered += d["last_outage"]["events_buffered"].as_u64().unwrap_or(0);
    }
    Outage { outage, convergence, restarted, events_lost, events_buffered }
}

/// The controller (with its embedded broker) SIGKILLed for `outage`, then started again on the same store.
pub async fn controller_outage(agents: usize, outage: Duration) -> Outage {
    let mut fleet = ProcFleet::start(agents, None, &[]).await;
    let before = fleet.deploy_workloads().await;
    fleet.controller.as_mut().expect("controller").kill9();
    tokio::time::sleep(outage).await;
    fleet.start_controller().await;
    let back = fleet.controller.as_ref().expect("controller").started;
    outage_report(&fleet, outage, &before, back).await
}

/// An external Mosquitto stopped for `outage`, then started again on the same port.
pub async fn broker_outage(agents: usize, outage: Duration) -> Outage {
    let mut mosquitto = Some(Mosquitto::start());
    let port = mosquitto.as_ref().expect("mosquitto").port;
    let fleet = ProcFleet::start(agents, Some(port), &[]).await;
    let before = fleet.deploy_workloads().await;
    drop(mosquitto.take());
    tokio::time::sleep(outage).await;
    let back = Instant::now();
    let _mosquitto = Mosquitto::start_on(port);
    outage_report(&fleet, outage, &before, back).await
}

/// Outcome of [`controller_kill_during_writes`].
#[derive(Debug)]
pub struct WriteStream {
    pub acknowledged: usize,
    /// Acknowledged writes missing after the restart.
    pub lost: usize,
}

/// Four writers stream up to `total` deploys to a controller process, which is SIGKILLed once `kill_after`
/// writes have been acknowledged; after a restart on the same store, counts acknowledged writes that are gone.
pub async fn controller_kill_during_writes(total: usize, kill_after: usize) -> WriteStream {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("controller");
    let c = ControllerProc::start("controller", &data, None, &[], dir.path());
    let api = c.client();
    let (mut controller, mqtt) = (c.proc, c.mqtt);
    let ready = || {
        let api = api.clone();
        async move { api.try_get("/healthz").await.map(|_| ()) }
    };
    eventually(Duration::from_secs(30), "the controller's API", ready).await;
    let sha = api.upload(example("hello.wasm")).await;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (api, sha, acked) = (api.clone(), sha.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..total / 4 {
                let name = format!("w{w}-{i}");
                let body = serde_json::json!({"module": sha, "replicas": 1, "cpu_millis": 10, "memory_bytes": 1 << 20});
                let path = format!("/v1/namespaces/default/workloads/{name}");
                match api.try_send(reqwest::Method::PUT, &path, body).await {
                    Some(200) => {
                        acked.lock().expect("lock").insert(name);
                    }
                    Some(status) => panic!("write {name} refused with {status}"),
                    None => return, // The controller is gone.
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().expect("lock").len() < kill_after {
        assert!(Instant::now() < deadline, "fewer than {kill_after} writes acknowledged within 120 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    controller.kill9();
    for w in writers {
        w.await.expect("writer");
    }
    let acked = acked.lock().expect("lock").clone();
    let again = ControllerProc::restart("controller-again", &data, mqtt, &[], dir.path());
    let api = again.client();
    let ready = || {
        let api = api.clone();
        async move { api.try_get("/healthz").await.map(|_| ()) }
    };
    eventually(Duration::from_secs(30), "the restarted controller's API", ready).await;
    // Each acknowledged write looked up on its own: `GET /v1/workloads` answers one page (500) at a time.
    let mut lost = 0;
    for name in &acked {
        let path = format!("/v1/namespaces/default/workloads/{name}");
        if api.try_text(&path).await.expect("the restarted controller answers").0 == 404 {
            lost += 1;
        }
    }
    WriteStream { acknowledged: acked.len(), lost }
}

/// Failover times over `trials`: with `--reschedule-after 1s` and 3 agents running 2 replicas of `tick`, the
/// agent of one replica is SIGKILLed; the time until 2 replicas are Running elsewhere is measured; the agent is
/// restarted (it stops its moved copy) before the next trial. Returns the sorted times.
pub async fn failover(trials: usize) -> Vec<Duration> {
    let mut fleet = ProcFleet::start(3, None, &["--reschedule-after", "1s"]).await;
    let tick = fleet.api.upload(example("ticker.wasm")).await;
    fleet.api.deploy("tick", &tick, 2).await;
    fleet.api.wait_running("tick", 2).await;
    let mut times = Vec::new();
    for _ in 0..trials {
        let w = fleet.api.workload("tick").await;
        let victim = w["instances"][0]["node"].as_str().expect("placed").to_string();
        let index: usize = victim.trim_start_matches('n').parse::<usize>().expect("node name") - 1;
        fleet.agents[index].kill9();
        let t0 = Instant::now();
        let api = fleet.api.clone();
        let v = victim.clone();
        eventually(Duration::from_secs(60), "replicas Running off the killed node", || {
            let (api, v) = (api.clone(), v.clone());
            async move {
                let w = api.try_get("/v1/namespaces/default/workloads/tick").await?;
                let elsewhere =
                    w["instances"].as_array()?.iter().filter(|i| i["state"] == "Running" && i["node"] != v.as_str());
                (elsewhere.count() == 2).then_some(())
            }
        })
        .await;
        times.push(t0.elapsed());
        fleet.agents[index] = fleet.spawn_agent(&victim).await;
        eventually(Duration::from_secs(60), "the killed node back, running nothing", || {
            let (api, v) = (api.clone(), victim.clone());
            async move {
                let d = api.try_get(&format!("/v1/nodes/{v}")).await?;
                (d["node"]["status"] == "Ready" && d["node"]["instances"] == 0).then_some(())
            }
        })
        .await;
    }
    times.sort();
    times
}
