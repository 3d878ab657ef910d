//! The one owner of the cluster state: a thread of its own that holds the [`Cluster`] and runs, one at a time,
//! API calls ([`ClusterHandle::call`]), agent messages ([`ClusterHandle::uplink`]), finished artifact builds and
//! the periodic tick. Nothing else touches the state, so there is no lock, and a commit (an fsync) blocks only
//! this thread, never a tokio worker of the API or the MQTT shell.
//!
//! **Batching.** After each item the owner takes whatever else is already queued (up to [`BATCH`] items), then
//! calls [`Cluster::flush`] once: agent messages that need a reconcile pass or a commit (hellos, event
//! watermarks) share one pass and one fsync, and event acknowledgements go out after it. API calls are served
//! before agent messages (a flood of heartbeats cannot starve `edgectl`); each API call commits before it
//! answers.
//!
//! **Backpressure.** Both queues are bounded: the MQTT shell awaits room (it is async; no thread blocks), which
//! slows its reading from the broker rather than growing the controller's memory.

use std::time::Duration;

use bytes::Bytes;
use edge_proto::Channel;
use tokio::sync::{mpsc, oneshot, watch};

use crate::artifacts::Built;
use crate::cluster::Cluster;

/// Items served between two flushes at most.
const BATCH: usize = 1_024;
const API_QUEUE: usize = 1_024;
const UPLINK_QUEUE: usize = 16_384;

type Job = Box<dyn FnOnce(&mut Cluster) + Send>;

/// One message from an agent, as the MQTT shell received it.
#[derive(Debug)]
pub struct Uplink {
    pub node: String,
    pub channel: Channel,
    pub payload: Bytes,
}

/// The owner is gone (the controller is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the controller is shutting down")]
pub struct Gone;

/// A cloneable way in to the cluster's owner.
#[derive(Clone)]
pub struct ClusterHandle {
    jobs: mpsc::Sender<Job>,
    uplink: mpsc::Sender<Uplink>,
}

impl ClusterHandle {
    /// Runs `f` on the cluster and returns its result.
    pub async fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Cluster) -> R + Send + 'static) -> Result<R, Gone> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        self.jobs.send(job).await.map_err(|_| Gone)?;
        rx.await.map_err(|_| Gone)
    }

    /// Hands one agent message to the owner, waiting for room in its queue.
    pub async fn uplink(&self, node: &str, channel: Channel, payload: Bytes) -> Result<(), Gone> {
        self.uplink.send(Uplink { node: node.to_string(), channel, payload }).await.map_err(|_| Gone)
    }
}

/// Starts the owner on its own thread. It runs until `shutdown` is set or every handle is dropped; the returned
/// thread handle ends with it.
pub fn spawn(
    cluster: Cluster,
    built: mpsc::UnboundedReceiver<Built>,
    tick: Duration,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(ClusterHandle, std::thread::JoinHandle<()>)> {
    let (jobs_tx, jobs) = mpsc::channel(API_QUEUE);
    let (uplink_tx, uplink) = mpsc::channel(UPLINK_QUEUE);
    let thread = std::thread::Builder::new().name("cluster-owner".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(r) => r,
            Err(e) => return tracing::error!(error = %e, "the cluster owner cannot start"),
        };
        runtime.block_on(serve(cluster, jobs, uplink, built, tick, shutdown));
    })?;
    Ok((ClusterHandle { jobs: jobs_tx, uplink: uplink_tx }, thread))
}

async fn serve(
    mut cluster: Cluster,
    mut jobs: mpsc::Receiver<Job>,
    mut uplink: mpsc::Receiver<Uplink>,
    mut built: mpsc::UnboundedReceiver<Built>,
    tick: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    // The tick is checked after every batch as well as awaited when idle: under a flood of agent messages the
    // select below always has input, and the tick must not starve (it notices lost nodes).
    let mut next_tick = tokio::time::Instant::now() + tick;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|s| *s) => break,
            job = jobs.recv() => match job {
                Some(job) => job(&mut cluster),
                None => break,
            },
            Some(b) = built.recv() => cluster.artifact_built(b),
            Some(u) = uplink.recv() => cluster.on_uplink(&u.node, u.channel, &u.payload),
            _ = tokio::time::sleep_until(next_tick) => {}
        }
        for _ in 0..BATCH {
            if let Ok(job) = jobs.try_recv() {
                job(&mut cluster);
            } else if let Ok(u) = uplink.try_recv() {
                cluster.on_uplink(&u.node, u.channel, &u.payload);
            } else {
                break;
            }
        }
        if tokio::time::Instant::now() >= next_tick {
            cluster.tick();
            next_tick = tokio::time::Instant::now() + tick;
        } else {
            cluster.flush();
        }
    }
    cluster.flush();
}
