//! Harness for end-to-end tests: real controllers, agents and brokers, in this process or as child processes.
//!
//! - [`ports`]: ports for brokers (which cannot report a port-0 bind) without a bind-then-release race:
//!   picked outside the ephemeral range, and retried when the bind fails.
//! - [`mosquitto`]: a real Mosquitto child process, killed on drop.
//! - [`policy`]: the broker policy as one suite, run against the embedded broker and against Mosquitto.
//! - [`Fleet`]: a controller plus named agents, all in-process, each agent stoppable on its own.
//! - [`Api`]: a small JSON client for the controller's HTTP API.
//! - [`eventually`]: polls a condition until it holds or a deadline passes, then fails loudly.
//! - [`proc`]: the real binaries as child processes (SIGKILL, restart on the same store).
//! - [`proxy`]: a TCP proxy to cut one node off its broker and heal it.
//! - [`wire`]: a test-side MQTT peer that drives one agent with exact specs (protocol 4, or 3).
//! - [`node`]: a fake agent, protocol only, speaking protocol 4 or 3, that drives a controller with exact messages.
//! - [`hostile`]: well-formed messages with extreme values, and a stranger that publishes anywhere.
//! - [`sim`]: a fleet simulator (thousands of protocol-only nodes over a few MQTT connections).
//! - [`scenario`]: fault and failover scenarios shared by tests and bench binaries.

pub mod hostile;
pub mod measure;
pub mod mosquitto;
pub mod node;
pub mod policy;
pub mod ports;
pub mod proc;
pub mod proxy;
pub mod scenario;
pub mod sim;
pub mod wire;

pub use mosquitto::Mosquitto;
pub use ports::free_port;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edge_agent::AgentConfig;
use edge_controller::{BrokerMode, ControllerConfig, Running};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The repository's `examples/` directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

pub fn example(name: &str) -> Vec<u8> {
    let path = examples().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A controller and its agents, in this process.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub controller: Option<Running>,
    pub api: Api,
    pub broker: BrokerMode,
    /// Agents join with a token made for them (default): their specs are signed and verified, their reports
    /// tagged. `false` for a test whose agents must follow a controller with another cluster key.
    pub join_agents: bool,
    /// Whether the broker speaks TLS: agents then connect over it, pinned to the cluster (`broker_tls`).
    pub mqtt_tls: bool,
    agents: Vec<(String, watch::Sender<bool>, JoinHandle<()>)>,
}

impl Fleet {
    /// A controller with its own embedded broker on a free port, and no agents yet.
    pub async fn embedded() -> Fleet {
        Fleet::embedded_with(|_| {}).await
    }

    /// [`Fleet::embedded`] with the controller's configuration adjusted by `tune`. The broker's port is picked by
    /// [`ports::free_port`]; a port taken before the broker bound it fails the start, which is retried.
    pub async fn embedded_with(tune: impl Fn(&mut ControllerConfig)) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let (controller, broker) = ports::retry_on_bind_async(
            "the controller's embedded broker",
            |port| {
                let broker = BrokerMode::Embedded(SocketAddr::from(([127, 0, 0, 1], port)));
                let mut cfg = controller_config(dir.path(), broker.clone());
                tune(&mut cfg);
                async move { edge_controller::start(cfg).await.map(|c| (c, broker)) }
            },
            ports::broker_port_taken,
        )
        .await;
        let api = Api::of(&controller);
        let mqtt_tls = controller.mqtt_tls;
        Fleet { dir, controller: Some(controller), api, broker, join_agents: true, mqtt_tls, agents: Vec::new() }
    }

    pub async fn with_broker(broker: BrokerMode) -> Fleet {
        Fleet::configured(broker, |_| {}).await
    }

    /// With the controller's configuration adjusted by `tune` (timeouts, for example). For an embedded broker,
    /// prefer [`Fleet::embedded_with`], which retries when the port is taken.
    pub async fn configured(broker: BrokerMode, tune: impl Fn(&mut ControllerConfig)) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = controller_config(dir.path(), broker.clone());
        tune(&mut cfg);
        let controller = edge_controller::start(cfg).await.expect("controller starts");
        let api = Api::of(&controller);
        let mqtt_tls = controller.mqtt_tls;
        Fleet { dir, controller: Some(controller), api, broker, join_agents: true, mqtt_tls, agents: Vec::new() }
    }

    /// The broker agents and restarted controllers use (an embedded broker outlives its controller).
    pub fn broker_addr(&self) -> (String, u16) {
        match &self.broker {
            BrokerMode::Embedded(a) => (a.ip().to_string(), a.port()),
            BrokerMode::External { host, port } => (host.clone(), *port),
        }
    }

    pub fn start_agent(&mut self, name: &str) {
        let (host, port) = self.broker_addr();
        self.start_agent_at(name, &host, port);
    }

    /// An agent connecting to `host:port` (e.g. a [`proxy::Proxy`] in front of the broker).
    pub fn start_agent_at(&mut self, name: &str, host: &str, port: u16) {
        self.start_agent_with(name, host, port, |_| {});
    }

    /// An agent whose configuration `tune` adjusts (capacity, labels, …). Unless [`Fleet::join_agents`] is off
    /// (or `tune` gave it a token), an agent without an identity joins with a token made for it.
    pub fn start_agent_with(&mut self, name: &str, host: &str, port: u16, tune: impl FnOnce(&mut AgentConfig)) {
        let mut cfg = edge_agent::AgentConfig::new(name, host, port, self.dir.path().join("agents").join(name));
        cfg.heartbeat = Duration::from_millis(500);
        cfg.broker_tls = self.mqtt_tls;
        tune(&mut cfg);
        let (tx, rx) = watch::channel(false);
        let api = self.join_agents.then(|| self.api.clone());
        let task = tokio::spawn(async move {
            let joined = edge_agent::identity::load(&cfg.data_dir).ok().flatten().is_some();
            if let (Some(api), None, false) = (api, &cfg.join, joined) {
                cfg.join = Some(api.join_token(&cfg.node).await);
            }
            if let Err(e) = edge_agent::run(cfg, rx).await {
                panic!("agent failed: {e}");
            }
        });
        self.agents.push((name.to_string(), tx, task));
    }

    /// Stops the controller and starts a new one on the same store. Its broker keeps running.
    pub async fn restart_controller(&mut self) {
        if let Some(c) = self.controller.take() {
            c.shutdown().await;
        }
        let (host, port) = self.broker_addr();
        let c = start_controller(self.dir.path(), BrokerMode::External { host, port }).await;
        self.api = Api::of(&c);
        self.controller = Some(c);
    }

    /// Stops the controller and starts a new one with an empty store (`fresh` names its directory) on the same
    /// broker: it knows no node, and the agents, still connected, have no reason to say hello again.
    pub async fn replace_controller(&mut self, fresh: &str) {
        if let Some(c) = self.controller.take() {
            c.shutdown().await;
        }
        let (host, port) = self.broker_addr();
        let c = start_controller(&self.dir.path().join(fresh), BrokerMode::External { host, port }).await;
        self.api = Api::of(&c);
        self.controller = Some(c);
    }

    /// Stops one agent cleanly (its instances stop with it); it can be started again on the same store.
    pub async fn stop_agent(&mut self, name: &str) {
        let Some(i) = self.agents.iter().position(|(n, _, _)| n == name) else { panic!("no agent {name}") };
        let (_, tx, task) = self.agents.remove(i);
        let _ = tx.send(true);
        tokio::time::timeout(Duration::from_secs(10), task).await.expect("agent stops within 10 s").expect("agent");
    }

    pub async fn wait_ready_nodes(&self, n: usize) {
        let api = self.api.clone();
        eventually(Duration::from_secs(30), &format!("{n} Ready nodes"), || {
            let api = api.clone();
            async move {
                let nodes = api.get("/v1/nodes").await;
                let ready = nodes.as_array()?.iter().filter(|x| x["status"] == "Ready").count();
                (ready >= n).then_some(())
            }
        })
        .await
    }

    pub async fn stop(mut self) {
        for (_, tx, task) in self.agents.drain(..) {
            let _ = tx.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        if let Some(c) = self.controller.take() {
            c.shutdown().await;
        }
    }
}

/// An `edge-broker` on its own with no policy (as an open external broker would be), on a free port. It runs
/// on the caller's runtime until dropped.
pub async fn standalone_broker() -> (edge_broker::Broker, u16) {
    let broker = edge_broker::Broker::bind(edge_broker::Config::new(([127, 0, 0, 1], 0).into()), edge_broker::AllowAll)
        .await
        .expect("a standalone broker binds a free port");
    let port = broker.local_addr().port();
    (broker, port)
}

fn controller_config(dir: &Path, broker: BrokerMode) -> ControllerConfig {
    let mut cfg = ControllerConfig::new(dir.join("controller"), SocketAddr::from(([127, 0, 0, 1], 0)), broker);
    cfg.node_timeout = Duration::from_secs(3);
    // Only clients with credentials: agents join (`Fleet::join_agents`); tests whose fake peers log in with none
    // say so (`open`).
    cfg.allow_anonymous = false;
    cfg
}

async fn start_controller(dir: &Path, broker: BrokerMode) -> Running {
    edge_controller::start(controller_config(dir, broker)).await.expect("controller starts")
}

/// Adjusts a controller for tests whose fake peers (`node::FakeNode`, `hostile::Stranger`, `wire`) connect
/// without credentials, under any client id: its embedded broker admits anonymous clients.
pub fn open(c: &mut ControllerConfig) {
    c.allow_anonymous = true;
}

/// JSON over HTTP to a controller.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    /// The bearer credential every request sends (the controller's admin token, by default).
    token: Option<String>,
}

impl Api {
    /// A client without a credential (every request but `/healthz` is refused with 401).
    pub fn new(addr: SocketAddr) -> Api {
        edge_tls::install_default_provider();
        Api { base: format!("http://{addr}"), http: reqwest::Client::new(), token: None }
    }

    /// A client of an in-process controller with its admin credential; over HTTPS pinned to its cluster when
    /// its API speaks TLS.
    pub fn of(c: &Running) -> Api {
        let api = Api::new(c.api_addr).with_token(c.admin_token.clone());
        if c.api_tls {
            api.pinned(&c.fingerprint)
        } else {
            api
        }
    }

    /// The same client over HTTPS, trusting only the cluster whose fingerprint (`sha256:…`) is `pin`.
    pub fn pinned(mut self, pin: &str) -> Api {
        let pin = edge_tls::pin_from(pin).expect("a cluster fingerprint");
        let tls = edge_tls::client_config(pin, &[b"http/1.1"]).expect("a TLS client config");
        self.http = reqwest::Client::builder().use_preconfigured_tls((*tls).clone()).build().expect("an HTTPS client");
        self.base = self.base.replacen("http://", "https://", 1);
        self
    }

    /// The credential it sends.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The same client with `token` as its credential.
    pub fn with_token(mut self, token: Option<String>) -> Api {
        self.token = token;
        self
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// `None` when the controller cannot be reached or does not answer 2xx with JSON.
    pub async fn try_get(&self, path: &str) -> Option<Value> {
        let resp = self.request(reqwest::Method::GET, path).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let text = resp.text().await.ok()?;
        Some(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The status and body text of a `GET`; `None` when the controller cannot be reached.
    pub async fn try_text(&self, path: &str) -> Option<(u16, String)> {
        let resp = self.request(reqwest::Method::GET, path).send().await.ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    pub async fn get(&self, path: &str) -> Value {
        let resp = self.request(reqwest::Method::GET, path).send().await.expect("GET");
        resp.json().await.expect("JSON body")
    }

    /// Sends JSON; `None` when the controller cannot be reached, else the status.
    pub async fn try_send(&self, method: reqwest::Method, path: &str, json: Value) -> Option<u16> {
        let resp = self.request(method, path).json(&json).send().await.ok()?;
        let status = resp.status().as_u16();
        resp.bytes().await.ok()?;
        Some(status)
    }

    /// Sends `body` and returns the status and the JSON reply.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<reqwest::Body>,
        json: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.request(method, path);
        if let Some(b) = body {
            rb = rb.body(b);
        }
        if let Some(j) = json {
            rb = rb.json(&j);
        }
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends `bytes` as a JSON body (`content-type: application/json`, whatever they hold) and returns the
    /// status and the reply's text.
    pub async fn send_raw_json(&self, method: reqwest::Method, path: &str, bytes: Vec<u8>) -> (u16, String) {
        let rb = self.request(method, path).header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes);
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Uploads a module; returns its sha256.
    /// A join token for node `name` (`POST /v1/tokens`).
    pub async fn join_token(&self, name: &str) -> String {
        let body = serde_json::json!({ "node": name });
        let (status, v) = self.send(reqwest::Method::POST, "/v1/tokens", None, Some(body)).await;
        assert_eq!(status, 201, "token for {name} refused: {v}");
        v["token"].as_str().expect("a token").to_string()
    }

    pub async fn upload(&self, bytes: Vec<u8>) -> String {
        let (status, v) = self.send(reqwest::Method::POST, "/v1/modules", Some(bytes.into()), None).await;
        assert!(status == 200 || status == 201, "upload refused: {status} {v}");
        v["sha256"].as_str().expect("sha256").to_string()
    }

    pub async fn deploy(&self, name: &str, module: &str, replicas: u32) -> Value {
        self.deploy_with(name, module, replicas, serde_json::json!({})).await
    }

    /// A deploy whose body gets the fields of `extra` (e.g. `{"selector": {"zone": "a"}}`).
    pub async fn deploy_with(&self, name: &str, module: &str, replicas: u32, extra: Value) -> Value {
        let mut body = serde_json::json!({
            "module": module, "replicas": replicas, "cpu_millis": 100, "memory_bytes": 32u64 << 20,
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let (status, v) = self
            .send(reqwest::Method::PUT, &format!("/v1/namespaces/default/workloads/{name}"), None, Some(body))
            .await;
        assert_eq!(status, 200, "deploy refused: {v}");
        v
    }

    /// `POST`s to a node operation (`cordon`, `uncordon`, `drain`) and checks it succeeded.
    pub async fn node_op(&self, node: &str, op: &str) {
        let (status, v) = self.send(reqwest::Method::POST, &format!("/v1/nodes/{node}/{op}"), None, None).await;
        assert_eq!(status, 200, "{op} {node}: {v}");
    }

    pub async fn workload(&self, name: &str) -> Value {
        self.get(&format!("/v1/namespaces/default/workloads/{name}")).await
    }

    pub async fn logs(&self, name: &str) -> Vec<Value> {
        let v = self.get(&format!("/v1/namespaces/default/workloads/{name}/logs?since=0")).await;
        v["lines"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `name` has `n` Running instances and returns them.
    pub async fn wait_running(&self, name: &str, n: usize) -> Vec<Value> {
        let api = self.clone();
        eventually(Duration::from_secs(60), &format!("{n} Running instances of {name}"), || {
            let api = api.clone();
            async move {
                let w = api.workload(name).await;
                let running: Vec<Value> =
                    w["instances"].as_array()?.iter().filter(|i| i["state"] == "Running").cloned().collect();
                (running.len() == n).then_some(running)
            }
        })
        .await
    }
}
