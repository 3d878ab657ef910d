//! The polling shell around [`Watch`], shared by `deploy --wait` and `rollout status`: fetch the workload, let the
//! watch decide, sleep, until it is ready, failing, or out of time.

use std::time::{Duration, Instant};

use anyhow::Result;
use edge_api::WorkloadView;
use edge_proto::timing;

use crate::client::Client;
use crate::watch::{Outcome, Watch};

/// How a follow ended.
pub enum Ended {
    Ready(WorkloadView),
    /// Why, in one line.
    Failing(String),
    /// The last view, for what is still missing.
    TimedOut(WorkloadView),
}

/// Polls `ns/name` every `every`, showing each view to `seen` first (progress lines), for at most `timeout` (and
/// a failure's grace, below).
pub async fn follow(
    client: &Client,
    (ns, name): (&str, &str),
    mut watch: Watch,
    timeout: Duration,
    every: Duration,
    mut seen: impl FnMut(&WorkloadView),
) -> Result<Ended> {
    // A failure whose exit is not known yet is followed this much longer for its reason, which the agent's next
    // heartbeat carries (two, should one fall between a crash and the restart). It still ends the wait early.
    let grace = timing::HEARTBEAT * 2;
    let start = Instant::now();
    let mut pending: Option<(String, Instant)> = None;
    loop {
        let w = client.workload(ns, name).await?;
        seen(&w);
        match watch.observe(&w) {
            Outcome::Ready => return Ok(Ended::Ready(w)),
            Outcome::Failing(f) if f.exit_known => return Ok(Ended::Failing(f.reason)),
            Outcome::Failing(f) => {
                let until = pending.as_ref().map_or_else(|| Instant::now() + grace, |(_, until)| *until);
                pending = Some((f.reason, until));
            }
            Outcome::Waiting => {}
        }
        match pending {
            Some((reason, until)) if Instant::now() >= until => return Ok(Ended::Failing(reason)),
            None if start.elapsed() >= timeout => return Ok(Ended::TimedOut(w)),
            _ => {}
        }
        tokio::time::sleep(every).await;
    }
}
