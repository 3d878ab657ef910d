//! The edge agent: the kubelet of this system. It runs on a board, keeps its desired state in a local redb
//! store, runs WebAssembly workloads in wasmtime, and reports over MQTT. It keeps running its last spec when
//! the controller or the broker is unreachable.
//!
//! Tasks: the core (one task owning the node's state, fed [`mail::Input`]s), the session (the only writer to
//! MQTT, fed [`mail::Outgoing`] messages), the log forwarder, and one task per running instance.
//!
//! Layout:
//! - [`config`]: configuration, the bounds of local state, and the node identity it announces.
//! - [`session`]: the MQTT connection over [`edge_link`] (Last Will, resubscribe on every ConnAck, back-off).
//! - [`join`]: the node's half of joining with a token (node key, password, the exchange, checking the answer).
//! - [`identity`]: the node's name, pinned cluster key and MQTT password, kept in the store from the join on.
//! - [`tagger`]: a joined node's report tags (counter + HMAC under its report key) and their counter blocks.
//! - [`mail`]: the messages between the tasks (inputs of the core, outgoing messages of the session).
//! - [`core`]: the single task that owns the node's state: specs, instances, events, module downloads.
//! - [`outbox`]: the event outbox as a pure state machine (numbering, acks, resend pacing).
//! - [`download`]: one module download as a pure state machine (ranges, verification, failures).
//! - [`verify`]: what a joined node believes from the controller (signed specs, signed artifact statements).
//! - [`supervisor`]: pure restart-policy and back-off decisions per instance.
//! - [`runtime`]: the wasmtime engine for the node's profile, loaded-module cache, running one instance.
//! - [`quota`]: the WASI shim enforcing volume quotas.
//! - [`limits`]: memory limiter and CPU throttle per instance.
//! - [`usage`]: what each running instance consumes (CPU, memory), for the usage reports behind `edgectl top`.
//! - [`volume`]: per-instance volume directories and their quotas.
//! - [`logsink`]: guest stdout/stderr split into bounded log lines; [`logring`] forwards them.
//! - [`store`]: the agent's redb file (spec, artifact cache, event outbox, restart counters, finished instances).
//! - [`manifest`]: local manifests for standalone mode (no controller).

pub mod clock;
pub mod config;
pub mod core;
pub mod download;
pub mod error;
pub mod identity;
pub mod join;
pub mod limits;
pub mod logring;
pub mod logsink;
pub mod mail;
pub mod manifest;
mod node;
pub mod outbox;
pub mod quota;
pub mod runtime;
pub mod session;
pub mod store;
pub mod supervisor;
pub mod tagger;
pub mod usage;
pub mod verify;
pub mod volume;

use std::path::Path;
use std::sync::Arc;

use edge_proto::Topics;
use tokio::sync::{mpsc, watch};

pub use config::AgentConfig;
pub use error::AgentError;

use node::Node;
use verify::Verifier;

/// Runs the agent until `shutdown` turns true (or its sender is dropped). On return every instance is stopped.
///
/// First the node's identity ([`identity::establish`]): the stored one, or a join with `config.join`, or none
/// (anonymous, for an open broker). A join that fails is an error and nothing runs; one interrupted by
/// `shutdown` returns `Ok`.
pub async fn run(config: AgentConfig, mut shutdown: watch::Receiver<bool>) -> Result<(), AgentError> {
    let identity = match identity::establish(&config, &mut shutdown).await {
        Ok(identity) => identity,
        Err(e) if identity::stopped(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    // Before the node opens the store: the tagger reserves its counters in it and closes it again.
    let tagger = tagger::Tagger::open(&config.data_dir, identity.as_ref())?;
    let topics = Topics::new(&config.prefix);
    let (core_tx, core_rx) = mpsc::channel(session::CORE_QUEUE);
    let (logs_tx, logs_rx) = mpsc::channel(session::LOG_QUEUE);
    let verifier = match &identity {
        Some(i) => Verifier::pinned(
            &i.node,
            i.cluster_key().map_err(|e| AgentError::Config(format!("the stored cluster key is unusable: {e}")))?,
        ),
        None => Verifier::unpinned(&config.node),
    };
    let mut node = Node::open(&config, Some(core_tx), verifier)?;
    node.core.boot()?;
    let password = identity.as_ref().map(|i| i.password.as_str());
    let mut link = session::link_options(&config.node, &config.broker_host, config.broker_port, &topics, password);
    if config.broker_tls {
        let Some(identity) = &identity else {
            return Err(AgentError::Config(
                "mqtts:// needs the cluster's key to pin: join with --join TOKEN (its fingerprint names the cluster)"
                    .into(),
            ));
        };
        let key = identity
            .cluster_key()
            .map_err(|e| AgentError::Config(format!("the stored cluster key is unusable: {e}")))?;
        link = link
            .tls_pinned(*key.fingerprint().as_bytes())
            .map_err(|e| AgentError::Config(format!("cannot set up TLS to the broker: {e}")))?;
    }
    let mailboxes = session::Mailboxes { core: core_rx, logs: logs_rx };
    let session = tokio::spawn(session::run(link, topics, node.inputs_tx.clone(), mailboxes, tagger, shutdown.clone()));
    // Up: the store is open, the persisted spec runs, the session is started (a service manager may go on).
    if let Some(ready) = &config.ready {
        ready.notify_one();
    }
    let logs = node.logs_rx.take().expect("taken once");
    let forwarder =
        tokio::spawn(logring::forward(logs, Some(logs_tx), node.connected.subscribe(), node.log_stats.clone()));
    node.serve(config.heartbeat, shutdown).await;
    forwarder.abort();
    let _ = session.await;
    Ok(())
}

/// Runs the workloads of a local manifest with no broker and no controller, until `shutdown`.
/// Same store, runtime and restart policies as [`run`]; events and guest output go to the agent's log.
pub async fn run_standalone(
    config: AgentConfig,
    manifest: &Path,
    shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let loaded = manifest::load(manifest).map_err(|e| AgentError::Config(e.to_string()))?;
    // Standalone: the manifest on local disk is the desired state; there is no controller to verify against.
    let mut node = Node::open(&config, None, Verifier::unpinned(&config.node))?;
    let runtime = node.runtime.clone();
    for (sha, bytes) in &loaded.modules {
        // Load now so an invalid module is an error naming it, before anything runs.
        runtime
            .load(*sha, Arc::new(bytes.clone()))
            .await
            .map_err(|e| AgentError::Config(format!("manifest {}: {e}", manifest.display())))?;
        node.core.put_local_module(sha, bytes)?;
    }
    node.core.boot()?;
    node.core.apply_local(loaded.instances);
    if let Some(ready) = &config.ready {
        ready.notify_one();
    }
    let logs = node.logs_rx.take().expect("taken once");
    let forwarder = tokio::spawn(logring::forward(logs, None, node.connected.subscribe(), node.log_stats.clone()));
    node.serve(config.heartbeat, shutdown).await;
    forwarder.abort();
    Ok(())
}
