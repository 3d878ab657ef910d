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

use super::Node;
use crate::config::{AgentConfig, NodeIdentity};
use crate::mail::{Input, Outgoing};

const WAIT: Duration = Duration::from_secs(30);

/// A running node and the simulated session around it.
struct Agent {
    inputs: mpsc::UnboundedSender<Input>,
    out: mpsc::Receiver<Outgoing>,
    /// Artifacts served to module requests, by module hash.
    artifacts: HashMap<Sha256, Vec<u8>>,
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
    let c = config(dir);
    let (tx, out) = mpsc::channel(crate::session::CORE_QUEUE);
    let mut node = Node::open(&c, Some(tx)).unwrap();
    node.core.boot().unwrap();
    let inputs = node.inputs_tx.clone();
    let (stop, rx) = watch::channel(false);
    let heartbeat = c.heartbeat;
    let task = tokio::spawn(async move { node.serve(heartbeat, rx).await });
    inputs.send(Input::Connected).unwrap();
    Agent { inputs, out, artifacts, stop, task }
}

impl Agent {
    fn send(&self, message: Message) {
        self.inputs.send(Input::Message(message)).unwrap();
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
                    self.send(Message::ModuleReply(ModuleReply::Chunk(chunk)));
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
        self.send(Message::Spec(resend.clone()));
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
