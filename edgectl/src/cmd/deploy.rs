//! `edgectl deploy`: upload the module if the controller lacks it, then create or update the workload, and with
//! `--wait` follow it until every replica of the new revision is ready (the decision is `watch.rs`'s).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use edge_api::DeployRequest;
use edge_proto::quantity::{format_duration, parse_cpu, parse_memory, parse_volume};
use sha2::{Digest, Sha256};

use crate::cli::DeployArgs;
use crate::client::{Client, Refused};
use crate::follow::{follow, Ended};
use crate::watch::{self, count, Watch};

pub async fn run(client: &Client, ns: &str, args: DeployArgs) -> Result<()> {
    let path = args.module.display().to_string();
    let cpu_millis = parse_cpu(&args.cpu).map_err(|e| anyhow!("--cpu: {e}"))?;
    let memory_bytes = parse_memory(&args.memory).map_err(|e| anyhow!("--memory: {e}"))?;
    let mut env = Vec::new();
    for kv in &args.env {
        let (k, v) = kv.split_once('=').ok_or_else(|| anyhow!("--env {kv:?}: expected K=V"))?;
        env.push((k.to_string(), v.to_string()));
    }
    let mut selector = std::collections::BTreeMap::new();
    for kv in &args.selector {
        let (k, v) = kv.split_once('=').ok_or_else(|| anyhow!("--selector {kv:?}: expected K=V"))?;
        selector.insert(k.to_string(), v.to_string());
    }
    let bytes = std::fs::read(&args.module).with_context(|| format!("cannot read {path}"))?;
    let sha = hex::encode(Sha256::digest(&bytes));
    // Content-addressed: skip the upload when the controller already has these bytes.
    if client.module(&sha).await?.is_none() {
        let size = bytes.len();
        client.upload_module(bytes).await.map_err(|e| match e.downcast_ref::<Refused>() {
            Some(r) if r.status == reqwest::StatusCode::PAYLOAD_TOO_LARGE => {
                anyhow!("{path} is {size} bytes, over the controller's module size limit")
            }
            Some(r) if r.message.starts_with("not a WebAssembly module") => anyhow!("{path} is {}", r.message),
            Some(r) => anyhow!("{path} was refused: {}", r.message),
            None => e,
        })?;
    }
    let req = DeployRequest {
        module: sha,
        replicas: args.replicas,
        cpu_millis,
        memory_bytes,
        env,
        args: args.args,
        restart: Some(args.restart.as_str().to_string()),
        on_node_loss: Some(args.on_node_loss.as_str().to_string()),
        selector,
        memory_limit_bytes: match &args.memory_limit {
            Some(m) => Some(parse_memory(m).map_err(|e| anyhow!("--memory-limit: {e}"))?),
            None => None,
        },
        cpu_limit_millis: match &args.cpu_limit {
            Some(c) => Some(parse_cpu(c).map_err(|e| anyhow!("--cpu-limit: {e}"))?),
            None => None,
        },
        timeout_ms: args.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        volumes: args
            .volumes
            .iter()
            .map(|v| parse_volume(v).map_err(|e| anyhow!("--volume: {e}")))
            .collect::<Result<Vec<_>>>()?,
    };
    // What stood before, so the wait can tell the new revision's instances from the old ones.
    let before = if args.wait { client.find_workload(ns, &args.name).await? } else { None };
    let w = client.deploy(ns, &args.name, &req).await?;
    println!("workload {ns}/{} deployed (revision {}, {})", w.name, w.revision, count(w.replicas as usize, "replica"));
    if args.wait {
        println!("waiting up to {} for {}", format_duration(args.wait_timeout), watch::goal(&w));
        wait(client, ns, &args.name, Watch::new(before.as_ref(), w.revision), args.wait_timeout).await?;
    }
    Ok(())
}

/// Follows the new revision until every replica is ready, one is failing, or `timeout` passes.
async fn wait(client: &Client, ns: &str, name: &str, watch: Watch, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    match follow(client, (ns, name), watch, timeout, Duration::from_millis(50), |_| {}).await? {
        Ended::Ready(w) => {
            let replicas = count(w.replicas as usize, "replica");
            println!("{} of {replicas} ready after {:.1} s", w.replicas, start.elapsed().as_secs_f64());
            Ok(())
        }
        Ended::Failing(why) => bail!("{ns}/{name} is not ready: {why}"),
        Ended::TimedOut(w) => {
            bail!("{ns}/{name} not ready after {}: {}", format_duration(timeout), watch::shortfall(&w))
        }
    }
}
