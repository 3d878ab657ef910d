//! The core driven through its real channels, with a simulated session: the test plays the session (inputs
//! in, outgoing messages out) and the controller (specs, module chunks, acks), over a real store and real
//! wasmtime. No broker: the session's boundary is the channel pair.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use edge_proto::{
    EventKind, EventsAck, Heartbeat, InstanceSpec, InstanceState, Message, ModuleChunk, ModuleReply, NodeSpec,
    RestartPolicy, Sha256,
};
use sha2::Digest;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use edge_trust::{ClusterKey, Context};

use super::Node;
use crate::config::{AgentConfig, NodeIdentity};
use crate::mail::{Input, Outgoing};
use crate::verify::Verifier;

const WAIT: Duration = Duration::from_secs(30);

/// A running node and the simulated session around it.
struct Agent {
    inputs: mpsc::UnboundedSender<Input>,
    out: mpsc::Receiver<Outgoing>,
    /// Artifacts served to module requests, by module hash.
    artifacts: HashMap<Sha256, Vec<u8>>,
    /// The cluster key this (joined) node pinned: chunks served are signed with it. `None`: never joined.
    key: Option<ClusterKey>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn config(dir: &Path) -> AgentConfig {
    let mut c = AgentConfig::new("n1", "127.0.0.1", 1, dir.to_path_buf());
    // No periodic heartbeats after the first tick: every later one is prompted by an input (a connection, a
    // spec, an exit), so the heartbeat read after an input describes the state after it.
    c.heartbeat = Duration::from_secs(3600);
    c
}

/// Opens (or reopens) the agent on `dir`, boots its persisted spec and connects it.
async fn start(dir: &Path, artifacts: HashMap<Sha256, Vec<u8>>) -> Agent {
    start_joined(dir, artifacts, None).await
}

/// As [`start`], for a node that pinned `key` when it joined (`None`: it never joined).
async fn start_joined(dir: &Path, artifacts: HashMap<Sha256, Vec<u8>>, key: Option<ClusterKey>) -> Agent {
    let c = config(dir);
    let (tx, out) = mpsc::channel(crate::session::CORE_QUEUE);
    let verifier = match &key {
        Some(k) => Verifier::pinned(&c.node, k.public()),
        None => Verifier::unpinned(&c.node),
    };
    let mut node = Node::open(&c, Some(tx), verifier).unwrap();
    node.core.boot().unwrap();
    let inputs = node.inputs_tx.clone();
    let (stop, rx) = watch::channel(false);
    let heartbeat = c.heartbeat;
    let task = tokio::spawn(async move { node.serve(heartbeat, rx).await });
    inputs.send(Input::Connected).unwrap();
    Agent { inputs, out, artifacts, key, stop, task }
}

/// The cluster's signature of `spec` for node `node`, as the controller puts it in the envelope.
fn spec_signature(key: &ClusterKey, node: &str, spec: &NodeSpec) -> Vec<u8> {
    edge_trust::sign(key, Context::SPEC, edge_proto::auth::spec_document(node, spec)).signature().to_vec()
}

impl Agent {
    fn send(&self, message: Message) {
        self.send_with(message, None);
    }

    fn send_with(&self, message: Message, auth: Option<Vec<u8>>) {
        self.inputs.send(Input::Message(message, auth)).unwrap();
    }

    /// Reads outgoing messages until `f` picks one, answering module requests like a controller on the way.
    async fn until<T>(&mut self, what: &str, mut f: impl FnMut(&Message) -> Option<T>) -> T {
        let wait = async {
            loop {
                let out = self.out.recv().await.expect("the core stopped");
                if let Message::ModuleRequest(r) = &out.message {
                    let bytes = &self.artifacts[&r.module];
                    let start = (r.offset as usize).min(bytes.len());
                    let end = (start + r.max_len as usize).min(bytes.len());
                    let chunk = ModuleChunk {
                        module: r.module,
                        artifact: r.artifact,
                        sha256: sha2::Sha256::digest(bytes).into(),
                        offset: start as u64,
                        total: bytes.len() as u64,
                        data: bytes[start..end].to_vec(),
                    };
                    let auth = self.key.as_ref().map(|k| {
                        let p = chunk.artifact.unwrap();
                        let doc = edge_proto::auth::artifact_document(&chunk.module, &p, &chunk.sha256, chunk.total);
                        edge_trust::sign(k, Context::ARTIFACT, doc).signature().to_vec()
                    });
                    self.send_with(Message::ModuleReply(ModuleReply::Chunk(chunk)), auth);
                }
                if let Some(t) = f(&out.message) {
                    return t;
                }
            }
        };
        tokio::time::timeout(WAIT, wait).await.unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
    }

    async fn heartbeat_where(&mut self, what: &str, f: impl Fn(&Heartbeat) -> bool) -> Heartbeat {
        self.until(what, |m| match m {
            Message::Heartbeat(h) if f(h) => Some(h.clone()),
            _ => None,
        })
        .await
    }

    /// The next heartbeat, prompted at once by re-sending a spec the node already runs.
    async fn heartbeat_now(&mut self, resend: &NodeSpec) -> Heartbeat {
        let auth = self.key.as_ref().map(|k| spec_signature(k, "n1", resend));
        self.send_with(Message::Spec(resend.clone()), auth);
        self.heartbeat_where("heartbeat", |_| true).await
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(WAIT, self.task).await.expect("the node stops").unwrap();
    }
}

fn instance(id: &str, module: Sha256, restart: RestartPolicy) -> InstanceSpec {
    InstanceSpec {
        id: id.into(),
        namespace: "default".into(),
        workload: "hello".into(),
        module,
        module_size: 0,
        args: vec![],
        env: vec![],
        cpu_millis: 100,
        memory_limit_bytes: 32 << 20,
        restart,
        cpu_limit_millis: 0,
        timeout_ms: 0,
        volumes: vec![],
    }
}

/// The hello example precompiled for this node's profile, keyed by the artifact's hash.
fn hello_artifact(dir: &Path) -> (Sha256, HashMap<Sha256, Vec<u8>>) {
    let profile = NodeIdentity::resolve(&config(dir)).unwrap().engine;
    let wasm = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello.wasm")).unwrap();
    let artifact = edge_engine::Compiler::new().precompile(&profile, &wasm).unwrap();
    let sha: Sha256 = sha2::Sha256::digest(&artifact).into();
    (sha, [(sha, artifact)].into())
}

/// Regression (issue 10): a `never` instance that had Succeeded ran again after an agent restart on the same
/// data dir, with RESTARTS 1. A terminal state is final.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_to_completion_instance_never_runs_again_after_an_agent_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (sha, artifacts) = hello_artifact(dir.path());
    let spec = NodeSpec {
        issuer: 9,
        generation: 1,
        instances: vec![
            instance("once-1", sha, RestartPolicy::Never),
            instance("job-1", sha, RestartPolicy::OnFailure),
        ],
    };
    let mut agent = start(dir.path(), artifacts.clone()).await;
    agent.send(Message::Spec(spec.clone()));
    let done =
        |h: &Heartbeat| h.instances.len() == 2 && h.instances.iter().all(|s| s.state == InstanceState::Succeeded);
    let before = agent.heartbeat_where("both instances Succeeded", done).await;
    assert!(before.instances.iter().all(|s| s.restarts == 0 && s.exit_code == Some(0)), "{before:?}");
    let last_seq = before.last_event_seq;
    agent.stop().await;

    let mut agent = start(dir.path(), artifacts).await;
    // Events sent on reconnecting come before its first heartbeat: nothing new may be among them.
    let mut fresh = Vec::new();
    let after = agent
        .until("the first heartbeat after the restart", |m| match m {
            Message::Events(batch) => {
                fresh.extend(batch.iter().filter(|e| e.seq > last_seq).cloned());
                None
            }
            Message::Heartbeat(h) => Some(h.clone()),
            _ => None,
        })
        .await;
    assert_eq!(fresh, vec![], "a finished instance produced events after the restart");
    assert_eq!(after.instances, before.instances, "reported exactly as it ended");
    // And it stays so: later heartbeats too, and a re-delivered spec changes nothing.
    let later = agent.heartbeat_now(&spec).await;
    assert_eq!(later.instances, before.instances);
    assert_eq!(later.last_event_seq, last_seq);
    agent.stop().await;
}

#[tokio::test]
async fn specs_apply_iff_they_supersede_the_persisted_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = start(dir.path(), HashMap::new()).await;
    let spec = |issuer, generation| NodeSpec { issuer, generation, instances: vec![] };
    agent.send(Message::Spec(spec(1, 5)));
    agent.heartbeat_where("generation 5", |h| h.applied_generation == 5).await;
    // Older or equal from the same issuer: ignored (the heartbeat it prompts still says 5).
    assert_eq!(agent.heartbeat_now(&spec(1, 3)).await.applied_generation, 5);
    // Another issuer (a controller with a new store) supersedes whatever its generation.
    agent.send(Message::Spec(spec(2, 1)));
    agent.heartbeat_where("issuer 2's generation 1", |h| h.applied_generation == 1).await;
    // Extreme generations are compared, never incremented.
    agent.send(Message::Spec(spec(2, u64::MAX)));
    agent.heartbeat_where("generation u64::MAX", |h| h.applied_generation == u64::MAX).await;
    assert_eq!(agent.heartbeat_now(&spec(2, u64::MAX)).await.applied_generation, u64::MAX);
    // A spec no node could run is refused, not persisted.
    let mut huge = spec(3, 1);
    huge.instances = (0..=crate::core::MAX_SPEC_INSTANCES)
        .map(|i| instance(&format!("i-{i}"), [1; 32], RestartPolicy::Never))
        .collect();
    agent.send(Message::Spec(huge));
    assert_eq!(agent.heartbeat_now(&spec(2, u64::MAX)).await.applied_generation, u64::MAX);
    agent.stop().await;
    // The applied spec survives a restart and is compared against, offline first.
    let mut agent = start(dir.path(), HashMap::new()).await;
    let h = agent.heartbeat_where("a heartbeat", |_| true).await;
    assert_eq!((h.applied_generation, h.store_id != 0), (u64::MAX, true));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_leave_the_outbox_only_on_an_ack_for_this_store() {
    let dir = tempfile::tempdir().unwrap();
    let (sha, artifacts) = hello_artifact(dir.path());
    let spec = NodeSpec { issuer: 9, generation: 1, instances: vec![instance("once-1", sha, RestartPolicy::Never)] };
    let mut agent = start(dir.path(), artifacts).await;
    agent.send(Message::Spec(spec.clone()));
    let exited = agent
        .until("the Exited event", |m| match m {
            Message::Events(batch) => batch.iter().find(|e| matches!(e.kind, EventKind::Exited { .. })).cloned(),
            _ => None,
        })
        .await;
    let h = agent.heartbeat_now(&spec).await;
    assert_eq!(h.oldest_unacked_seq, 1);
    assert!(h.last_event_seq >= exited.seq);
    // An ack naming another store (a reset store's predecessor) forgets nothing, however far it reaches.
    agent.send(Message::EventsAck(EventsAck { store_id: h.store_id ^ 1, up_to: u64::MAX }));
    assert_eq!(agent.heartbeat_now(&spec).await.oldest_unacked_seq, 1);
    // Ours, up to u64::MAX: everything queued goes, with bounded work.
    agent.send(Message::EventsAck(EventsAck { store_id: h.store_id, up_to: u64::MAX }));
    let acked = agent.heartbeat_now(&spec).await;
    assert_eq!((acked.oldest_unacked_seq, acked.last_event_seq), (0, h.last_event_seq));
    agent.stop().await;
    // Nothing is sent again after a restart: the store forgot them too.
    let mut agent = start(dir.path(), HashMap::new()).await;
    let mut resent = 0;
    agent
        .until("the first heartbeat after the restart", |m| match m {
            Message::Events(batch) => {
                resent += batch.len();
                None
            }
            Message::Heartbeat(_) => Some(()),
            _ => None,
        })
        .await;
    assert_eq!(resent, 0);
    agent.stop().await;
}

/// Issue 11: a joined node takes desired state and native code only as its cluster signed them, reports what
/// it refuses as events, and re-verifies its stored spec when it boots (offline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_node_believes_only_what_its_cluster_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (sha, artifacts) = hello_artifact(dir.path());
    let cluster = ClusterKey::from_secret_bytes(&[1; 32]);
    let spec = |generation| NodeSpec {
        issuer: 9,
        generation,
        instances: vec![instance(&format!("once-{generation}"), sha, RestartPolicy::Never)],
    };
    // Events a restarted core sends again (never acknowledged here) are told apart by their number.
    let mut seen = 0;
    let mut rejected = move |m: &Message| match m {
        Message::Events(batch) => batch.iter().find_map(|e| match &e.kind {
            EventKind::Rejected { reason } if e.instance.is_empty() && e.seq > seen => {
                seen = e.seq;
                Some(reason.clone())
            }
            _ => None,
        }),
        _ => None,
    };
    let mut agent = start_joined(dir.path(), artifacts.clone(), Some(cluster.clone())).await;

    // Unsigned: refused, reported, not applied.
    agent.send(Message::Spec(spec(1)));
    let why = agent.until("a Rejected event for the unsigned spec", &mut rejected).await;
    assert!(why.contains("not signed"), "{why}");
    // Signed by the cluster for this node: runs (its artifact chunks are signed too).
    agent.send_with(Message::Spec(spec(2)), Some(spec_signature(&cluster, "n1", &spec(2))));
    let done =
        |h: &Heartbeat| h.applied_generation == 2 && h.instances.iter().any(|s| s.state == InstanceState::Succeeded);
    agent.heartbeat_where("generation 2 ran", done).await;
    agent.stop().await;

    // Each case on a fresh core of the same store: what it compares against is what it persisted.
    let cases: [(&str, NodeSpec, Vec<u8>, &str); 3] = [
        (
            "another key",
            spec(3),
            spec_signature(&ClusterKey::from_secret_bytes(&[2; 32]), "n1", &spec(3)),
            "does not verify",
        ),
        ("another node's spec", spec(3), spec_signature(&cluster, "n2", &spec(3)), "does not verify"),
        ("an old generation replayed", spec(1), spec_signature(&cluster, "n1", &spec(1)), "a replay"),
    ];
    for (case, s, auth, expected) in cases {
        let mut agent = start_joined(dir.path(), artifacts.clone(), Some(cluster.clone())).await;
        agent.send_with(Message::Spec(s), Some(auth));
        let why = agent.until(case, &mut rejected).await;
        assert!(why.contains(expected), "{case}: {why}");
        let h = agent.heartbeat_now(&spec(2)).await;
        assert_eq!(h.applied_generation, 2, "{case} changed nothing");
        agent.stop().await;
    }

    // A forged artifact chunk with a self-consistent hash is refused before a byte is kept.
    let mut agent = start_joined(dir.path(), HashMap::new(), Some(cluster.clone())).await;
    let forged = b"not the artifact".to_vec();
    let chunk = ModuleChunk {
        module: sha,
        artifact: Some(NodeIdentity::resolve(&config(dir.path())).unwrap().engine),
        sha256: sha2::Sha256::digest(&forged).into(),
        offset: 0,
        total: forged.len() as u64,
        data: forged,
    };
    agent.send_with(Message::ModuleReply(ModuleReply::Chunk(chunk)), None);
    let why = agent.until("a Rejected event for the forged chunk", &mut rejected).await;
    assert!(why.contains("artifact chunk refused"), "{why}");
    agent.stop().await;

    // Rebooted offline, the stored spec verifies and is what runs; under another pinned key it does not.
    let mut agent = start_joined(dir.path(), HashMap::new(), Some(cluster.clone())).await;
    let h = agent.heartbeat_where("a heartbeat after reboot", |_| true).await;
    assert_eq!((h.applied_generation, h.instances.len()), (2, 1));
    agent.stop().await;
    let mut agent = start_joined(dir.path(), HashMap::new(), Some(ClusterKey::from_secret_bytes(&[3; 32]))).await;
    let why = agent.until("a Rejected event for the stored spec", &mut rejected).await;
    assert!(why.contains("stored spec"), "{why}");
    let h = agent.heartbeat_where("a heartbeat", |_| true).await;
    assert_eq!(h.instances.len(), 0, "an unverifiable stored spec runs nothing");
    agent.stop().await;
}

/// Issue 11 (bytes on the wire): an idle node says nothing between refreshes; a change is sent at once.
#[tokio::test]
async fn an_idle_node_heartbeats_only_on_change_or_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut out) = mpsc::channel(crate::session::CORE_QUEUE);
    let mut node = Node::open(&config(dir.path()), Some(tx), Verifier::unpinned("n1")).unwrap();
    node.core.boot().unwrap();
    let mut heartbeats = move || {
        let mut n = Vec::new();
        while let Ok(o) = out.try_recv() {
            if let Message::Heartbeat(h) = o.message {
                n.push(h.applied_generation);
            }
        }
        n
    };
    let long = Duration::from_secs(3600);
    node.core.handle(Input::Connected);
    assert_eq!(heartbeats(), vec![0], "one on connecting");
    node.core.tick(long);
    node.core.tick(long);
    assert_eq!(heartbeats(), Vec::<u64>::new(), "nothing changed, no refresh due");
    node.core.handle(Input::Message(Message::Spec(NodeSpec { issuer: 1, generation: 4, instances: vec![] }), None));
    assert_eq!(heartbeats(), vec![4], "a change is reported at once");
    node.core.tick(long);
    assert_eq!(heartbeats(), Vec::<u64>::new());
    node.core.tick(Duration::ZERO);
    assert_eq!(heartbeats(), vec![4], "the refresh");
    node.core.shutdown();
}

/// A spec of an issuer the node has left behind (a controller store since replaced) is a replay, even when
/// the cluster key signed it: else two captured specs of two issuers could be played against each other.
#[tokio::test]
async fn a_joined_node_never_goes_back_to_an_issuer_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = ClusterKey::from_secret_bytes(&[1; 32]);
    let mut agent = start_joined(dir.path(), HashMap::new(), Some(cluster.clone())).await;
    let spec = |issuer, generation| NodeSpec { issuer, generation, instances: vec![] };
    let signed = |s: &NodeSpec| Some(spec_signature(&cluster, "n1", s));
    agent.send_with(Message::Spec(spec(1, 9)), signed(&spec(1, 9)));
    agent.heartbeat_where("issuer 1's generation 9", |h| h.applied_generation == 9).await;
    agent.send_with(Message::Spec(spec(2, 1)), signed(&spec(2, 1)));
    agent.heartbeat_where("issuer 2's generation 1", |h| h.applied_generation == 1).await;
    agent.send_with(Message::Spec(spec(1, 10)), signed(&spec(1, 10)));
    let why = agent
        .until("a Rejected event", |m| match m {
            Message::Events(b) => b.iter().find_map(|e| match &e.kind {
                EventKind::Rejected { reason } => Some(reason.clone()),
                _ => None,
            }),
            _ => None,
        })
        .await;
    assert!(why.contains("left behind"), "{why}");
    assert_eq!(agent.heartbeat_now(&spec(2, 1)).await.applied_generation, 1);
    agent.stop().await;
}
