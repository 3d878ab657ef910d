//! Regression tests, end to end on real controllers and brokers, for bugs found reading and trying the
//! controller (issue 10). Each one failed against the behaviour it names.

use std::time::Duration;

use edge_controller::BrokerMode;
use edge_proto::{Channel, EngineProfile, EngineTarget, EventKind, Heartbeat, Message, ModuleReply, ModuleRequest};
use edge_tests::hostile::Stranger;
use edge_tests::node::{event, heartbeat, FakeNode};
use edge_tests::{eventually, example, Api, Fleet, Mosquitto};
use serde_json::Value;

const V4: u16 = edge_proto::PROTOCOL_VERSION;

fn sha_bytes(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// Waits until the controller has handled `n` more heartbeats than it had when called.
async fn heartbeats_handled(api: &Api, n: u64) {
    let before = api.get("/v1/stats").await["heartbeats"].as_u64().unwrap();
    let api = api.clone();
    eventually(Duration::from_secs(10), &format!("{n} more heartbeats handled"), || {
        let api = api.clone();
        async move { (api.get("/v1/stats").await["heartbeats"].as_u64()? >= before + n).then_some(()) }
    })
    .await
}

/// Was: an agent whose store was reset (new store id) and whose `Hello` was lost had its new, low sequence
/// numbers taken for duplicates of the old store's and acknowledged against the old watermark: its events
/// vanished. Protocol 4 heartbeats carry the store id, so the controller starts the numbering again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_store_whose_hello_was_lost_has_its_events_applied() {
    let fleet = Fleet::embedded_with(edge_tests::open).await;
    let api = fleet.api.clone();
    let (host, port) = fleet.broker_addr();
    let mut node = FakeNode::connect(&host, port, "reset", V4).await;
    node.hello_mut().store_id = 100;
    node.say_hello().await;
    node.set_heartbeat(heartbeat(100, 0, vec![])).await;
    fleet.wait_ready_nodes(1).await;
    node.events((1..=5).map(|s| event(s, &format!("before-{s}"), EventKind::Starting)).collect()).await;
    node.wait(Duration::from_secs(10), "store 100 acknowledged up to 5", |i| (i.acked(100) == Some(5)).then_some(()))
        .await;
    node.set_heartbeat(Heartbeat { last_event_seq: 5, ..heartbeat(100, 0, vec![]) }).await;

    // The store is reset: id 200, numbering from 1 again. Its hello is lost, and lost again when asked for.
    node.answer_hello_requests(false);
    node.set_heartbeat(Heartbeat { last_event_seq: 3, oldest_unacked_seq: 1, ..heartbeat(200, 0, vec![]) }).await;
    // Heartbeats of one client on one topic arrive in order: once three more are handled, the new store's is.
    heartbeats_handled(&api, 3).await;
    node.events((1..=3).map(|s| event(s, &format!("after-{s}"), EventKind::Starting)).collect()).await;
    node.wait(Duration::from_secs(10), "store 200 acknowledged up to 3", |i| (i.acked(200) == Some(3)).then_some(()))
        .await;
    let detail = api.get("/v1/nodes/reset").await;
    let e = &detail["events"];
    assert_eq!(
        (e["received"].as_u64(), e["duplicates"].as_u64(), e["missing"].as_u64(), e["applied_up_to"].as_u64()),
        (Some(8), Some(0), Some(0), Some(3)),
        "{detail}"
    );
    let recent = e["recent"].to_string();
    assert!((1..=3).all(|s| recent.contains(&format!("after-{s}"))), "the new store's events: {recent}");
    let inbox = node.inbox();
    assert!(inbox.acks.iter().all(|(_, a)| a.store_id != 200 || a.up_to <= 3), "{:?}", inbox.acks);
    assert_eq!(api.get("/v1/nodes").await.as_array().unwrap().len(), 1);
    drop(node);
    fleet.stop().await;
}

/// Was: a `ModuleRequest` compiled the module for whatever engine profile it named, from any client, and kept
/// an artifact record per profile forever. Now only the requesting node's announced profile is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_module_request_for_a_profile_the_node_did_not_announce_is_refused_and_builds_nothing() {
    let fleet = Fleet::embedded_with(edge_tests::open).await;
    let api = fleet.api.clone();
    let (host, port) = fleet.broker_addr();
    let mut a = FakeNode::connect(&host, port, "a", V4).await;
    a.say_hello().await;
    a.set_heartbeat(heartbeat(1, 0, vec![])).await;
    fleet.wait_ready_nodes(1).await;
    let sha = api.upload(example("ticker.wasm")).await;
    let module = sha_bytes(&sha);
    let ask = |artifact: Option<EngineProfile>| {
        Message::ModuleRequest(ModuleRequest { module, artifact, offset: 0, max_len: 1024 })
    };

    // Its own profile is served.
    a.send(Channel::ModuleRequest, &ask(Some(a.engine()))).await;
    let reply = a.wait(Duration::from_secs(60), "a reply", |i| i.replies.first().map(|(_, r)| r.clone())).await;
    assert!(matches!(reply, ModuleReply::Chunk(ref c) if c.artifact == Some(a.engine())), "{reply:?}");
    let artifacts = |v: &Value| v.as_array().unwrap().iter().map(|m| m["artifacts"].clone()).collect::<Vec<_>>();
    let before = artifacts(&api.get("/v1/modules").await);
    assert_eq!(before[0].as_array().unwrap().len(), 1, "{before:?}");

    // Other profiles are refused, each answered at once.
    let own = a.engine();
    let others = [
        EngineProfile { target: EngineTarget::Pulley32, memory_reservation: 1 << 20, memory_guard: 0 },
        EngineProfile { target: EngineTarget::X86_64, ..own },
        EngineProfile { memory_reservation: own.memory_reservation * 2, ..own },
        EngineProfile { memory_guard: 1 << 30, ..own },
    ];
    for (k, profile) in others.into_iter().enumerate() {
        a.send(Channel::ModuleRequest, &ask(Some(profile))).await;
        let reply = a.wait(Duration::from_secs(10), "a reply", |i| i.replies.get(k + 1).map(|(_, r)| r.clone())).await;
        assert!(
            matches!(reply, ModuleReply::Refused { .. } | ModuleReply::NotFound { .. }),
            "a request for {profile:?} from a node that announced {own:?} was answered {reply:?}"
        );
    }
    // A client that never said hello is refused even the profile another node announced.
    let mut stranger = FakeNode::connect(&host, port, "stranger", V4).await;
    stranger.send(Channel::ModuleRequest, &ask(Some(own))).await;
    let reply = stranger.wait(Duration::from_secs(10), "a reply", |i| i.replies.first().map(|(_, r)| r.clone())).await;
    assert!(matches!(reply, ModuleReply::Refused { .. } | ModuleReply::NotFound { .. }), "{reply:?}");

    // Nothing was built: the artifact records are as they were, also after one more round trip (its own
    // profile again, served from what was built).
    a.send(Channel::ModuleRequest, &ask(Some(own))).await;
    let n = others.len() + 2;
    let reply = a.wait(Duration::from_secs(10), "a reply", |i| i.replies.get(n - 1).map(|(_, r)| r.clone())).await;
    assert!(matches!(reply, ModuleReply::Chunk(_)), "{reply:?}");
    assert_eq!(artifacts(&api.get("/v1/modules").await), before, "a refused request left an artifact record");
    drop((a, stranger));
    fleet.stop().await;
}

/// Was: a client connecting to the embedded broker with the controller's own client id (`edge-controller`)
/// closed the controller's link for good: every node went NotReady and deploys were never delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_taking_the_controllers_client_id_does_not_cut_it_off() {
    let mut fleet = Fleet::embedded_with(edge_tests::open).await;
    fleet.start_agent("n1");
    fleet.wait_ready_nodes(1).await;
    let api = fleet.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    api.deploy("tick", &sha, 1).await;
    let before = api.wait_running("tick", 1).await;
    assert_eq!(api.try_text("/healthz").await, Some((200, "ok".to_string())));

    let (host, port) = fleet.broker_addr();
    let intruder = Stranger::connect(&host, port, "edge-controller").await;
    // A lost link shows only after node-timeout (3 s here) of silence: a window past it, then the node must be
    // (or be again) Ready and the controller must say it has its link.
    tokio::time::sleep(Duration::from_secs(4)).await;
    fleet.wait_ready_nodes(1).await;
    let a = api.clone();
    eventually(Duration::from_secs(10), "/healthz ok", || {
        let a = a.clone();
        async move { (a.try_text("/healthz").await? == (200, "ok".to_string())).then_some(()) }
    })
    .await;
    // A deploy after the takeover is delivered (a bounded wait: the broken controller never delivers it).
    api.deploy("tock", &sha, 1).await;
    let a = api.clone();
    eventually(Duration::from_secs(20), "tock Running after the takeover", || {
        let a = a.clone();
        async move {
            let w = a.workload("tock").await;
            (w["instances"][0]["state"] == "Running").then_some(())
        }
    })
    .await;
    let after = api.wait_running("tick", 1).await;
    assert_eq!(after[0]["started_at"], before[0]["started_at"], "tick was restarted");
    assert!(intruder.connacks() >= 1);
    drop(intruder);
    fleet.stop().await;
}

/// Was: `/healthz` said `ok` whatever became of the controller's broker link. It must say when there is none,
/// and the controller must get its link back by itself when the broker returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthz_says_when_the_broker_link_is_down_and_the_link_comes_back_by_itself() {
    let mosquitto = Mosquitto::start();
    let port = mosquitto.port;
    let mut fleet = Fleet::with_broker(BrokerMode::External { host: "127.0.0.1".into(), port }).await;
    fleet.start_agent("n1");
    fleet.wait_ready_nodes(1).await;
    let api = fleet.api.clone();
    assert_eq!(api.try_text("/healthz").await, Some((200, "ok".to_string())));

    drop(mosquitto);
    let a = api.clone();
    let down = eventually(Duration::from_secs(15), "/healthz to report the lost broker link", || {
        let a = a.clone();
        async move {
            let (status, body) = a.try_text("/healthz").await?;
            (status != 200 || body.trim() != "ok").then_some((status, body))
        }
    })
    .await;
    eprintln!("/healthz without a broker: {down:?}");

    let _mosquitto = Mosquitto::start_on(port);
    let a = api.clone();
    eventually(Duration::from_secs(30), "/healthz ok once the broker is back", || {
        let a = a.clone();
        async move { (a.try_text("/healthz").await? == (200, "ok".to_string())).then_some(()) }
    })
    .await;
    fleet.wait_ready_nodes(1).await;
    let sha = api.upload(example("ticker.wasm")).await;
    api.deploy("tick", &sha, 1).await;
    api.wait_running("tick", 1).await;
    fleet.stop().await;
}

/// The store's file, and the controller process writing it: its writes can be made to fail (`EFBIG`) by
/// lowering its file size limit (`prlimit`), with SIGXFSZ ignored so a failed write is an error, not a death.
fn set_file_size_limit(pid: u32, limit: Option<u64>) {
    // The soft limit only: lowering it and raising it again up to the hard limit needs no privilege.
    let value = limit.map_or("unlimited:".to_string(), |l| format!("{l}:"));
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--fsize={value}")])
        .output()
        .expect("prlimit (util-linux)");
    assert!(out.status.success(), "prlimit: {}", String::from_utf8_lossy(&out.stderr));
}

/// Bytes of one filler workload's environment. Its record holds it twice (the spec and the revision history):
/// about 60 KiB, a 64 KiB allocation in redb's buddy allocator.
/// (A filler has one replica that nothing can run, Pending: a workload whose deploy changes no instance is not
/// stored today, see `a_deploy_that_changes_no_instance_is_committed`.)
const FILLER: usize = 30_000;
const FILLER_ALLOCATION: usize = 64 << 10;

/// Fills the store's file until little room is left in it without growing: redb grows its file by doubling, so
/// after the first growth seen the room is about the growth, and fillers of known size take 90 % of it.
/// Returns the file's size.
async fn fill_store(api: &Api, module: &str, file: &std::path::Path) -> u64 {
    let size = || std::fs::metadata(file).unwrap().len();
    let mut n = 0usize;
    for _ in 0..4 {
        let before = size();
        let mut grew = false;
        for _ in 0..4096 {
            n += 1;
            put_filler(api, module, n).await;
            if size() > before {
                grew = true;
                break;
            }
        }
        assert!(grew, "the store did not grow after 4096 fillers");
        let grown = size();
        let fillers = (grown - before) as usize * 9 / 10 / FILLER_ALLOCATION;
        eprintln!("store grew {before} -> {grown} after {n} fillers; {fillers} more");
        let mut steady = true;
        for _ in 0..fillers {
            n += 1;
            put_filler(api, module, n).await;
            if size() != grown {
                steady = false;
                break;
            }
        }
        if steady {
            return grown;
        }
    }
    panic!("the store kept growing sooner than its size said")
}

async fn put_filler(api: &Api, module: &str, n: usize) {
    let body = serde_json::json!({
        "module": module, "replicas": 1, "cpu_millis": 10, "memory_bytes": 1 << 20,
        // Two variables: one value may hold at most 16 KiB (`controller/src/api/bounds.rs`).
        "env": [["FILL", "f".repeat(FILLER / 2)], ["FILM", "f".repeat(FILLER / 2)]],
        "selector": {"filler": "never-matches"},
    });
    let path = format!("/v1/namespaces/default/workloads/filler-{n}");
    let (status, v) = api.send(reqwest::Method::PUT, &path, None, Some(body)).await;
    assert_eq!(status, 200, "filler {n} refused: {v}");
}

/// Was: `DELETE` committed the delete, then ran a reconcile pass, and answered 500 when the pass failed: the
/// caller was told a delete that had happened did not. Here the pass's commit fails for real: 100 simulated
/// nodes with large records each lose their replica, so the pass rewrites far more than the file has room
/// for, under a file size limit set at the store's size before the delete (the delete itself writes little).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_committed_delete_is_answered_success_even_when_the_following_pass_fails() {
    use edge_tests::proc::ControllerProc;
    use edge_tests::sim::{self, SimConfig, SimStats};

    const NODES: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("controller");
    // SIGXFSZ ignored (an ignored signal stays ignored across exec): a write past the limit fails with EFBIG.
    let via = ["/bin/sh", "-c", "trap '' XFSZ; exec \"$0\" \"$@\""];
    let c = ControllerProc::start_via(&via, "controller", &data, None, &[], dir.path());
    let api = c.client();
    let mut cfg = SimConfig::new("127.0.0.1", c.mqtt.port(), NODES);
    cfg.per_connection = 50;
    cfg.heartbeat = Duration::from_secs(1);
    // Records of about 6 KiB: 50 labels of Kubernetes' largest name and value.
    cfg.labels = (0..50).map(|i| (format!("l{i:02}-{}", "k".repeat(56)), "v".repeat(63))).collect();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let stats = std::sync::Arc::new(SimStats::default());
    let simulator = tokio::spawn(sim::run(cfg, stats.clone(), rx));
    let a = api.clone();
    eventually(Duration::from_secs(30), &format!("{NODES} Ready nodes"), || {
        let a = a.clone();
        async move { (a.try_get("/v1/stats").await?["ready_nodes"].as_u64()? >= NODES as u64).then_some(()) }
    })
    .await;
    let tiny = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#).unwrap();
    let sha = api.upload(tiny).await;
    let body = serde_json::json!({"module": sha, "replicas": NODES, "cpu_millis": 10, "memory_bytes": 1 << 20});
    let (status, v) = api.send(reqwest::Method::PUT, "/v1/namespaces/default/workloads/doomed", None, Some(body)).await;
    assert_eq!(status, 200, "{v}");
    let a = api.clone();
    eventually(Duration::from_secs(30), "every replica Running", || {
        let a = a.clone();
        async move {
            let w = a.try_get("/v1/namespaces/default/workloads/doomed").await?;
            let running = w["instances"].as_array()?.iter().filter(|i| i["state"] == "Running").count();
            (running == NODES).then_some(())
        }
    })
    .await;
    let file = data.join("controller.redb");
    let size = fill_store(&api, &sha, &file).await;
    eprintln!("store {size} bytes before the delete");
    let generations = |nodes: &Value| -> Vec<u64> {
        nodes.as_array().unwrap().iter().map(|n| n["spec_generation"].as_u64().unwrap()).collect()
    };
    let before = generations(&api.get("/v1/nodes").await);
    set_file_size_limit(c.proc.pid(), Some(size));
    let (status, body) = api.send(reqwest::Method::DELETE, "/v1/namespaces/default/workloads/doomed", None, None).await;
    // The pass that follows a delete runs before the answer: had it committed, every node (each lost its
    // replica) would show a new spec generation now.
    let after = generations(&api.get("/v1/nodes").await);
    set_file_size_limit(c.proc.pid(), None);
    assert!(
        status == 500 || after == before,
        "the fault was not injected (the store had room for the pass), so this test proved nothing; store {size} \
         bytes, DELETE answered {status}"
    );
    assert!(status == 200 || status == 204, "a committed delete was answered {status} {body}");
    let (status, v) = api.send(reqwest::Method::GET, "/v1/namespaces/default/workloads/doomed", None, None).await;
    assert_eq!(status, 404, "{v}");

    // Committed for good: a controller started again on the store does not have it, and it tells every node
    // (the pass the limit refused happens).
    let (mut proc, mqtt) = (c.proc, c.mqtt);
    proc.kill9();
    let again = ControllerProc::restart("controller-again", &data, mqtt, &[], dir.path());
    let api = again.client();
    let (status, v) = api.send(reqwest::Method::GET, "/v1/namespaces/default/workloads/doomed", None, None).await;
    assert_eq!(status, 404, "the delete answered as done was not committed: {v}");
    let a = api.clone();
    eventually(Duration::from_secs(30), "every node told its replica is gone", || {
        let a = a.clone();
        let before = before.clone();
        async move {
            let nodes = a.try_get("/v1/nodes").await?;
            let now = generations(&nodes);
            (now.len() == before.len() && now.iter().zip(&before).all(|(n, b)| n > b)).then_some(())
        }
    })
    .await;
    let _ = stop.send(true);
    simulator.abort();
}

/// Found writing these tests: a deploy that changes no instance (a new workload with 0 replicas, or an update of
/// `on_node_loss` alone) was answered 200 and kept in memory but never committed, so a controller restart lost
/// it. Every acknowledged deploy must survive a SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deploy_that_changes_no_instance_is_committed() {
    use edge_tests::proc::ControllerProc;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("controller");
    let c = ControllerProc::start("controller", &data, None, &[], dir.path());
    let api = c.client();
    let sha = api.upload(example("hello.wasm")).await;
    let deploy = |name: &'static str, replicas: u32, on_node_loss: &'static str| {
        let (api, sha) = (api.clone(), sha.clone());
        async move {
            let body = serde_json::json!({
                "module": sha, "replicas": replicas, "cpu_millis": 10, "memory_bytes": 1 << 20,
                "on_node_loss": on_node_loss,
            });
            let path = format!("/v1/namespaces/default/workloads/{name}");
            let (status, v) = api.send(reqwest::Method::PUT, &path, None, Some(body)).await;
            assert_eq!(status, 200, "{name}: {v}");
        }
    };
    deploy("idle", 0, "reschedule").await;
    deploy("kept", 1, "reschedule").await;
    deploy("kept", 1, "stay").await;
    let (mut proc, mqtt) = (c.proc, c.mqtt);
    proc.kill9();
    let again = ControllerProc::restart("controller-again", &data, mqtt, &[], dir.path());
    let api = again.client();
    let (status, idle) = api.send(reqwest::Method::GET, "/v1/namespaces/default/workloads/idle", None, None).await;
    assert_eq!(status, 200, "the acknowledged 0-replica workload is gone after a restart: {idle}");
    let kept = api.workload("kept").await;
    assert_eq!(kept["on_node_loss"], "stay", "the acknowledged update is gone after a restart: {kept}");
}
