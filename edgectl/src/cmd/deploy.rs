//! `edgectl deploy`: upload the module if the controller lacks it, then create or update the workload.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use edge_controller::api::types::{DeployRequest, WorkloadView};
use sha2::{Digest, Sha256};

use crate::cli::DeployArgs;
use crate::client::{Client, Refused};
use edge_proto::quantity::{parse_cpu, parse_duration_ms, parse_memory, parse_volume};

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
        timeout_ms: match &args.timeout {
            Some(t) => Some(parse_duration_ms(t).map_err(|e| anyhow!("--timeout: {e}"))?),
            None => None,
        },
        volumes: args
            .volumes
            .iter()
            .map(|v| parse_volume(v).map_err(|e| anyhow!("--volume: {e}")))
            .collect::<Result<Vec<_>>>()?,
    };
    let w = client.deploy(ns, &args.name, &req).await?;
    println!("workload {ns}/{} deployed (revision {}, {} replicas)", w.name, w.revision, w.replicas);
    if args.wait {
        wait(client, ns, &args.name, Duration::from_secs(args.wait_timeout)).await?;
    }
    Ok(())
}

/// Done when every replica of the current revision is Running or Succeeded.
fn settled(w: &WorkloadView) -> bool {
    w.instances.len() == w.replicas as usize
        && w.instances.iter().all(|i| i.state == "Running" || i.state == "Succeeded")
}

async fn wait(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let w = client.workload(ns, name).await?;
        if settled(&w) {
            println!("{} of {} replicas ready after {:.1} s", w.replicas, w.replicas, start.elapsed().as_secs_f64());
            return Ok(());
        }
        if w.restart == "never" {
            if let Some(i) = w.instances.iter().find(|i| i.state == "Failed") {
                bail!("instance {} failed: {}", i.id, describe(i));
            }
        }
        if start.elapsed() >= timeout {
            let states: Vec<String> = w.instances.iter().map(|i| format!("{} {}", i.id, describe(i))).collect();
            bail!(
                "{ns}/{name} not ready after {} s: {}",
                timeout.as_secs(),
                if states.is_empty() { "no instances".to_string() } else { states.join("; ") }
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn describe(i: &edge_controller::api::types::InstanceView) -> String {
    match (&i.reason, i.exit_code) {
        (Some(r), _) => format!("{} ({r})", i.state),
        (None, Some(code)) => format!("{} (exit code {code})", i.state),
        (None, None) => i.state.clone(),
    }
}
