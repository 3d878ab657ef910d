//! Starting and stopping a whole controller: store, broker, MQTT shell, control loop and HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use edge_proto::Topics;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::broker::{self, BrokerError};
use crate::cluster::{Cluster, Timing, Trust};
use crate::registry::{BrokerPolicy, Registry};
use crate::store::{Store, StoreError};

/// The cluster signing key's file in the data dir (mode 0600).
pub const KEY_FILE: &str = "cluster.key";
/// The admin credential's bearer token, written at first start (mode 0600); see `cluster/credentials.rs`.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// How often the control loop checks node readiness.
const TICK: Duration = Duration::from_millis(200);

/// The CA certificate of the cluster (its root, self-signed by the cluster key), written at every start for
/// `edgectl config set-context --certificate-authority`.
pub const CA_FILE: &str = "ca.crt";

/// Whether a listener speaks TLS (`--api-tls`, `--mqtt-tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tls {
    /// TLS unless the API listens on a loopback address only.
    #[default]
    Auto,
    On,
    Off,
}

impl Tls {
    /// Whether a listener on `addr` speaks TLS.
    pub fn applies(self, addr: SocketAddr) -> bool {
        match self {
            Tls::On => true,
            Tls::Off => false,
            Tls::Auto => !addr.ip().is_loopback(),
        }
    }
}

/// Where the controller's MQTT traffic goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerMode {
    /// Run the embedded broker (`edge-broker`) inside the controller, listening here.
    Embedded(SocketAddr),
    /// Use an external MQTT 3.1.1/5 broker.
    External { host: String, port: u16 },
}

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub data_dir: PathBuf,
    pub api_listen: SocketAddr,
    pub broker: BrokerMode,
    pub prefix: String,
    /// A node that has not heartbeated for this long is NotReady.
    pub node_timeout: Duration,
    /// A node NotReady for this long is lost: instances of workloads with `on_node_loss: reschedule` move.
    pub reschedule_after: Duration,
    /// During a rollout, each new instance runs this long before the next one starts.
    pub min_ready: Duration,
    /// The embedded broker admits anonymous clients, and nodes that never joined are believed: the open mode
    /// of a lab with no identities. Off by default.
    pub allow_anonymous: bool,
    /// Only nodes that joined with a token may connect to the embedded broker (see `registry.rs`).
    pub require_join: bool,
    /// With an external broker: keep Mosquitto's password, ACL and config files in this directory
    /// (`crate::mosquitto`), rewritten at start and after every token, join and node deletion.
    pub mosquitto_dir: Option<PathBuf>,
    /// Mosquitto's pid file: it gets SIGHUP (reload the files) after every rewrite.
    pub mosquitto_pid: Option<PathBuf>,
    /// With `mosquitto_dir`: a second Mosquitto listener on this port, MQTT over TLS with a certificate of the
    /// cluster CA written beside the other files (`--mosquitto-tls-port`).
    pub mosquitto_tls_port: Option<u16>,
    /// TLS on the API (`--api-tls`).
    pub api_tls: Tls,
    /// TLS on the embedded broker's listener (`--mqtt-tls`): agents then connect with `mqtts://`.
    pub mqtt_tls: Tls,
    /// Extra names (DNS or IP) the API's and broker's certificates carry, for clients that check names
    /// against `ca.crt` (`--tls-san`); pinned clients (agents, edgectl with a fingerprint) need none.
    pub tls_names: Vec<String>,
    /// Make a new admin credential at start even if one exists (`--reset-admin`: its token was lost).
    pub reset_admin: bool,
}

impl ControllerConfig {
    pub fn new(data_dir: PathBuf, api_listen: SocketAddr, broker: BrokerMode) -> ControllerConfig {
        ControllerConfig {
            data_dir,
            api_listen,
            broker,
            prefix: edge_proto::topic::DEFAULT_PREFIX.to_string(),
            node_timeout: edge_proto::timing::NODE_TIMEOUT,
            reschedule_after: edge_proto::timing::RESCHEDULE_AFTER,
            min_ready: edge_proto::timing::MIN_READY,
            allow_anonymous: false,
            require_join: false,
            mosquitto_dir: None,
            mosquitto_pid: None,
            mosquitto_tls_port: None,
            api_tls: Tls::Auto,
            mqtt_tls: Tls::Auto,
            tls_names: Vec::new(),
            reset_admin: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("cannot listen for the API on {addr}")]
    ApiBind { addr: SocketAddr, source: std::io::Error },
    #[error("invalid broker URL {url:?}: expected mqtt://HOST:PORT")]
    BrokerUrl { url: String },
    #[error("cannot start the cluster's owner thread: {0}")]
    Owner(String),
    #[error("cannot load or create the cluster key {path}")]
    Key { path: String, source: edge_trust::KeyFileError },
    #[error("--mosquitto-dir needs an external broker (--broker mqtt://HOST:PORT)")]
    MosquittoWithoutBroker,
    #[error("cannot write Mosquitto's files")]
    Mosquitto(#[from] crate::mosquitto::MosquittoError),
    #[error("cannot set up TLS")]
    Tls(#[from] edge_tls::TlsError),
    #[error("cannot write {path}")]
    CaFile { path: String, source: std::io::Error },
    #[error("cannot make the admin credential")]
    Admin(#[source] crate::cluster::ClusterError),
    #[error("cannot write the admin credential to {path}")]
    AdminFile { path: String, source: std::io::Error },
}

/// A running controller. Dropping it without [`Running::shutdown`] leaves its tasks running.
pub struct Running {
    pub api_addr: SocketAddr,
    /// Whether the API speaks TLS (then its URL is `https://`).
    pub api_tls: bool,
    /// Host and port agents should connect to.
    pub mqtt: (String, u16),
    /// Whether the embedded broker speaks TLS (then agents use `mqtts://`); false with an external broker.
    pub mqtt_tls: bool,
    /// The cluster key's fingerprint (`sha256:…`), which every join token carries.
    pub fingerprint: String,
    /// The admin credential's token, as `admin.token` in the data dir holds it (`None`: that file is gone).
    pub admin_token: Option<String>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    broker: Option<edge_broker::Broker>,
}

impl Running {
    /// Stops the API, the MQTT connection, the cluster's owner and the embedded broker, and closes the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(broker) = self.broker {
            broker.shutdown().await;
        }
    }

    /// The embedded broker's counters (its retained store's size, refused retains, throttled readers);
    /// `None` with an external broker.
    pub fn broker_stats(&self) -> Option<edge_broker::Stats> {
        self.broker.as_ref().map(|b| b.handle().stats())
    }
}

/// Parses `mqtt://HOST:PORT` (or `tcp://`, or a bare `HOST:PORT`).
pub fn parse_broker_url(url: &str) -> Result<(String, u16), ControllerError> {
    edge_proto::parse_broker_url(url).map_err(|_| ControllerError::BrokerUrl { url: url.to_string() })
}

pub async fn start(config: ControllerConfig) -> Result<Running, ControllerError> {
    let store = Store::open(&config.data_dir)?;
    let key_path = config.data_dir.join(KEY_FILE);
    let key = edge_trust::ClusterKey::load_or_create(&key_path)
        .map_err(|source| ControllerError::Key { path: key_path.display().to_string(), source })?;
    let key = Arc::new(key);
    let ca = edge_tls::ClusterCa::new(&key)?;
    let ca_path = config.data_dir.join(CA_FILE);
    std::fs::write(&ca_path, ca.root_pem())
        .map_err(|source| ControllerError::CaFile { path: ca_path.display().to_string(), source })?;
    // One leaf per start for every TLS listener (API, embedded broker, Mosquitto's files): they serve the same
    // names, and each client pins the cluster key, not the leaf.
    let identity = ca.issue(&server_names(&config))?;
    let topics = Topics::new(&config.prefix);
    let registry = Arc::new(Registry::default());
    let mqtt_tls = matches!(config.broker, BrokerMode::Embedded(listen) if config.mqtt_tls.applies(listen));
    let (mqtt, embedded) = match &config.broker {
        BrokerMode::Embedded(listen) => {
            let policy =
                BrokerPolicy::new(registry.clone(), topics.clone(), config.allow_anonymous, config.require_join);
            // No ALPN: MQTT clients (rumqttc, mosquitto_sub --cafile) commonly offer none.
            let tls = if mqtt_tls { Some(edge_tls::server_config(&identity, &[])?) } else { None };
            let broker = broker::start_embedded(*listen, policy, tls).await?;
            let addr = broker.local_addr();
            let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
            ((host, addr.port()), Some(broker))
        }
        BrokerMode::External { host, port } => ((host.clone(), *port), None),
    };
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .map_err(|source| ControllerError::ApiBind { addr: config.api_listen, source })?;
    let api_addr =
        listener.local_addr().map_err(|source| ControllerError::ApiBind { addr: config.api_listen, source })?;

    let (publish_tx, publish_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut cluster = Cluster::load(
        store,
        topics.clone(),
        Timing {
            node_timeout: config.node_timeout,
            reschedule_after: config.reschedule_after,
            min_ready: config.min_ready,
        },
        publish_tx,
    )?;
    let fingerprint = key.fingerprint().to_string();
    let keeper = match (&config.mosquitto_dir, &config.broker) {
        (None, _) => None,
        (Some(_), BrokerMode::Embedded(_)) => return Err(ControllerError::MosquittoWithoutBroker),
        (Some(dir), BrokerMode::External { port, .. }) => {
            let keeper =
                crate::mosquitto::Keeper::new(dir.clone(), config.mosquitto_pid.clone(), topics.clone(), *port, &key);
            Some(match config.mosquitto_tls_port {
                Some(tls_port) => keeper.with_tls(tls_port, &identity),
                None => keeper,
            })
        }
    };
    let controller_password = edge_trust::MqttPassword::of_controller(&key);
    cluster.set_trust(Trust {
        key: key.clone(),
        registry,
        broker: embedded.as_ref().map(|b| b.handle()),
        // Without a policy on the wire (the embedded broker's, or Mosquitto's files kept by this controller)
        // nobody enforces identities (an external broker's ACLs are its operator's): nodes that never joined
        // are still believed.
        open: config.allow_anonymous || (embedded.is_none() && keeper.is_none()) || !config.require_join,
        mosquitto: keeper,
    });
    let access = cluster.api_access();
    if let Some(token) = cluster.ensure_admin(config.reset_admin).map_err(ControllerError::Admin)? {
        let path = config.data_dir.join(ADMIN_TOKEN_FILE);
        write_secret(&path, &token)
            .map_err(|source| ControllerError::AdminFile { path: path.display().to_string(), source })?;
        // Once, at the start that made it: the file keeps it from then on.
        println!("admin credential created; its token (also in {}, mode 0600):\n{token}", path.display());
    }
    let keeps_mosquitto = config.mosquitto_dir.is_some();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    // The artifact builder reports on `built_tx`; it ends when the cluster (holding the only job sender) ends.
    let (jobs_tx, jobs_rx) = tokio::sync::mpsc::unbounded_channel();
    let (built_tx, built_rx) = tokio::sync::mpsc::unbounded_channel();
    cluster.set_artifact_builder(jobs_tx);
    tasks.push(tokio::spawn(crate::artifacts::run_builder(jobs_rx, built_tx)));
    let (handle, owner) = crate::owner::spawn(cluster, built_rx, TICK, shutdown_rx.clone())
        .map_err(|e| ControllerError::Owner(e.to_string()))?;
    if keeps_mosquitto {
        // The owner's first job, before the MQTT link (which logs in with the files' credentials) and the API:
        // write the files once, failing the start if they cannot be written; the cluster keeps them from then on.
        let written = handle.call(|c| c.write_mosquitto()).await.map_err(|e| ControllerError::Owner(e.to_string()))?;
        match written {
            Ok(()) => {}
            // Mosquitto may not run yet (it is often started after the files exist): it reads them at start.
            Err(
                e @ crate::mosquitto::MosquittoError::Pid { .. } | e @ crate::mosquitto::MosquittoError::Signal { .. },
            ) => {
                tracing::warn!(error = %e, "Mosquitto's files written, but it could not be told to reload");
            }
            Err(e) => return Err(e.into()),
        }
    }

    let (link_tx, link_rx) = watch::channel(Err("not connected to the MQTT broker yet".to_string()));
    let publisher = match &embedded {
        Some(broker) => tokio::spawn(crate::mqtt::run_link(
            broker.handle(),
            topics,
            handle.clone(),
            publish_rx,
            link_tx,
            shutdown_rx.clone(),
        )),
        None => {
            let client_id = format!("edge-controller-{:032x}", rand::random::<u128>());
            // Always with the derived login: a broker without a password file ignores it, Mosquitto with the
            // files of `crate::mosquitto` expects it.
            let options = crate::mqtt::options(&mqtt.0, mqtt.1, &client_id)
                .credentials(crate::mosquitto::CONTROLLER_USER, controller_password.as_str());
            tokio::spawn(crate::mqtt::run_event_loop(
                options,
                topics,
                handle.clone(),
                link_tx,
                publish_rx,
                shutdown_rx.clone(),
            ))
        }
    };

    let api_tls = config.api_tls.applies(api_addr);
    let app = crate::api::routes::router(crate::api::routes::Shared {
        cluster: handle,
        link: link_rx,
        access,
        unauthenticated: Default::default(),
    });
    let mut api_shutdown = shutdown_rx.clone();
    if api_tls {
        let tls = crate::api::tls::TlsListener::new(listener, edge_tls::server_config(&identity, &[b"http/1.1"])?)
            .map_err(|source| ControllerError::ApiBind { addr: config.api_listen, source })?;
        tasks.push(tokio::spawn(async move {
            let serve = axum::serve(tls, app).with_graceful_shutdown(async move {
                let _ = api_shutdown.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "API server failed");
            }
        }));
    } else {
        tasks.push(tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = api_shutdown.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "API server failed");
            }
        }));
    }
    // The owner thread ends on shutdown, dropping the cluster and with it the publisher's only sender.
    tasks.push(tokio::spawn(async move {
        let _ = tokio::task::spawn_blocking(move || owner.join()).await;
        let _ = publisher.await;
    }));
    let scheme = if api_tls { "https" } else { "http" };
    let mqtt_scheme = if mqtt_tls { "mqtts" } else { "mqtt" };
    tracing::info!(api = %format!("{scheme}://{api_addr}"), mqtt = %format!("{mqtt_scheme}://{}:{}", mqtt.0, mqtt.1), %fingerprint, "controller started");
    let admin_token =
        std::fs::read_to_string(config.data_dir.join(ADMIN_TOKEN_FILE)).ok().map(|t| t.trim().to_string());
    Ok(Running { api_addr, api_tls, mqtt, mqtt_tls, fingerprint, admin_token, shutdown, tasks, broker: embedded })
}

/// Writes `text` to `path` with mode 0600, whole or not at all (a temporary file renamed over it).
fn write_secret(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    // `mode` applies only when the file is created: a leftover temporary file keeps its own otherwise.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The names the cluster's server certificates carry: the listen addresses when specific, loopback, the host's
/// name, and `--tls-san`.
fn server_names(config: &ControllerConfig) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !config.api_listen.ip().is_unspecified() {
        names.push(config.api_listen.ip().to_string());
    }
    if let BrokerMode::Embedded(mqtt) = config.broker {
        if !mqtt.ip().is_unspecified() {
            names.push(mqtt.ip().to_string());
        }
    }
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(host.trim().to_string());
    }
    names.extend(config.tls_names.iter().cloned());
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
    names
}
