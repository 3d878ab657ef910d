//! `edgectl deploy`: upload the module if the controller lacks it, then create or update the workload, and with
//! `--wait` follow it until every replica of the new revision is ready (the decision is `watch.rs`'s).
//!
//! Re-deploying an existing workload changes only what the flags name: the rest is read from the controller
//! first and sent back as it was (a list flag such as `--env` replaces that whole list). The fields that changed
//! are printed (`replicas: 2 → 3`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use edge_api::DeployRequest;
use edge_proto::quantity::{format_duration, parse_cpu, parse_memory, parse_volume};
use edge_proto::VolumeSpec;

use crate::cli::DeployArgs;
use crate::client::Client;
use crate::follow::{follow, Ended};
use crate::progress::Progress;
use crate::template;
use crate::watch::{self, count, Watch};

/// What the flags of one `deploy` set; `None`: not given, so kept (or defaulted for a new workload).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Given {
    pub replicas: Option<u32>,
    pub cpu_millis: Option<u32>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_limit_millis: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub volumes: Option<Vec<VolumeSpec>>,
    pub env: Option<Vec<(String, String)>>,
    pub args: Option<Vec<String>>,
    pub restart: Option<String>,
    pub on_node_loss: Option<String>,
    pub selector: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// The request for `module` with the flags `given` over the workload's `current` spec (or over the defaults of
/// a new workload). Pure.
pub fn merge(current: Option<&DeployRequest>, module: String, given: Given) -> DeployRequest {
    let base = current.cloned().unwrap_or_else(template::new_workload);
    template::normalize(DeployRequest {
        module,
        replicas: given.replicas.unwrap_or(base.replicas),
        cpu_millis: given.cpu_millis.unwrap_or(base.cpu_millis),
        memory_bytes: given.memory_bytes.unwrap_or(base.memory_bytes),
        env: given.env.unwrap_or(base.env),
        args: given.args.unwrap_or(base.args),
        restart: given.restart.or(base.restart),
        on_node_loss: given.on_node_loss.or(base.on_node_loss),
        selector: given.selector.unwrap_or(base.selector),
        memory_limit_bytes: given.memory_limit_bytes.or(base.memory_limit_bytes),
        cpu_limit_millis: given.cpu_limit_millis.or(base.cpu_limit_millis),
        // `--timeout 0` clears a timeout: normal form turns 0 into none.
        timeout_ms: given.timeout_ms.or(base.timeout_ms),
        volumes: given.volumes.unwrap_or(base.volumes),
        labels: given.labels.unwrap_or(base.labels),
    })
}

/// `K=V` pairs of a repeatable flag; `None` when the flag was not given.
pub fn pairs(flag: &str, values: &[String]) -> Result<Option<Vec<(String, String)>>> {
    if values.is_empty() {
        return Ok(None);
    }
    values
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').ok_or_else(|| anyhow!("{flag} {kv:?}: expected K=V"))?;
            Ok((k.to_string(), v.to_string()))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

fn given(args: &DeployArgs) -> Result<Given> {
    let opt = |v: &Option<String>, parse: fn(&str) -> Result<u64, String>, flag: &str| -> Result<Option<u64>> {
        v.as_deref().map(|s| parse(s).map_err(|e| anyhow!("{flag}: {e}"))).transpose()
    };
    let cpu = |s: &str| parse_cpu(s).map(u64::from);
    let to_u32 = |v: Option<u64>| v.map(|c| u32::try_from(c).unwrap_or(u32::MAX));
    Ok(Given {
        replicas: args.replicas,
        cpu_millis: to_u32(opt(&args.cpu, cpu, "--cpu")?),
        memory_bytes: opt(&args.memory, parse_memory, "--memory")?,
        memory_limit_bytes: opt(&args.memory_limit, parse_memory, "--memory-limit")?,
        cpu_limit_millis: to_u32(opt(&args.cpu_limit, cpu, "--cpu-limit")?),
        timeout_ms: args.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        volumes: if args.volumes.is_empty() {
            None
        } else {
            Some(
                args.volumes
                    .iter()
                    .map(|v| parse_volume(v).map_err(|e| anyhow!("--volume: {e}")))
                    .collect::<Result<Vec<_>>>()?,
            )
        },
        env: pairs("--env", &args.env)?,
        args: (!args.args.is_empty()).then(|| args.args.clone()),
        restart: args.restart.map(|r| r.as_str().to_string()),
        on_node_loss: args.on_node_loss.map(|p| p.as_str().to_string()),
        selector: pairs("--selector", &args.selector)?.map(|p| p.into_iter().collect()),
        labels: pairs("--label", &args.labels)?.map(|p| p.into_iter().collect()),
    })
}

pub async fn run(client: &Client, ns: &str, args: DeployArgs) -> Result<()> {
    let path = args.module.display().to_string();
    let given = given(&args)?;
    let bytes = crate::module::read(&args.module)?;
    let sha = crate::module::ensure_uploaded(client, &path, bytes).await?;
    // What stood before: the fields the flags do not name, and for the wait, the old revision's instances.
    let before = client.find_workload(ns, &args.name).await?;
    let current = before.as_ref().map(template::from_view);
    let mut req = merge(current.as_ref(), sha, given);
    if let Some(current) = &current {
        // A new --env list does not undo a `rollout restart`.
        template::keep_restart_marker(&mut req, current);
    }
    let w = client.deploy(ns, &args.name, &req).await?;
    let replicas = count(w.replicas as usize, "replica");
    match &current {
        None => println!("workload {ns}/{} deployed (revision {}, {replicas})", w.name, w.revision),
        Some(current) => {
            let changes = template::changes(current, &req);
            let what = if changes.is_empty() { "unchanged" } else { "deployed" };
            println!("workload {ns}/{} {what} (revision {}, {replicas})", w.name, w.revision);
            for c in changes {
                println!("  {c}");
            }
        }
    }
    if args.wait {
        println!("waiting up to {} for {}", format_duration(args.wait_timeout), watch::goal(&w));
        wait(client, ns, &args.name, Watch::new(before.as_ref(), w.revision), args.wait_timeout).await?;
    }
    Ok(())
}

/// Follows the new revision until every replica is ready, one is failing, or `timeout` passes.
async fn wait(client: &Client, ns: &str, name: &str, watch: Watch, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let progress = Progress::spinner("waiting");
    let seen = |w: &edge_api::WorkloadView| {
        let ready = w.instances.iter().filter(|i| i.revision == w.revision && i.ready).count();
        progress.set_message(format!(
            "revision {}: {ready} of {} ready",
            w.revision,
            count(w.replicas as usize, "replica")
        ));
    };
    let ended = follow(client, (ns, name), watch, timeout, Duration::from_millis(50), seen).await;
    progress.finish();
    match ended? {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> DeployRequest {
        merge(
            None,
            "ab".repeat(32),
            Given {
                replicas: Some(2),
                selector: Some(BTreeMap::from([("zone".into(), "b".into())])),
                env: Some(vec![("V".into(), "1".into())]),
                memory_limit_bytes: Some(64 << 20),
                timeout_ms: Some(5_000),
                ..Given::default()
            },
        )
    }

    /// The README's sequence: `--selector zone=b`, then `--replicas 2 --env V=2`, kept the selector.
    #[test]
    fn a_redeploy_keeps_what_it_does_not_name() {
        let before = current();
        let after = merge(
            Some(&before),
            before.module.clone(),
            Given { env: Some(vec![("V".into(), "2".into())]), ..Given::default() },
        );
        assert_eq!(after.selector, before.selector);
        assert_eq!((after.replicas, after.memory_limit_bytes, after.timeout_ms), (2, Some(64 << 20), Some(5_000)));
        let shown: Vec<String> = template::changes(&before, &after).iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["env.V: 1 → 2"]);
        let scaled = merge(Some(&after), after.module.clone(), Given { replicas: Some(3), ..Given::default() });
        assert_eq!(template::changes(&after, &scaled)[0].to_string(), "replicas: 2 → 3");
    }

    #[test]
    fn labels_are_kept_unless_given_and_make_no_new_template() {
        let labels = BTreeMap::from([("app".into(), "tick".into())]);
        let before = current();
        let labelled =
            merge(Some(&before), before.module.clone(), Given { labels: Some(labels.clone()), ..Given::default() });
        let shown: Vec<String> = template::changes(&before, &labelled).iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["metadata.labels.app: (unset) → tick"]);
        assert!(template::template_changes(&before, &labelled).is_empty(), "relabelling rolls nothing out");
        let scaled = merge(Some(&labelled), before.module.clone(), Given { replicas: Some(5), ..Given::default() });
        assert_eq!(scaled.labels, labels);
    }

    #[test]
    fn a_new_workload_gets_the_defaults_and_a_zero_timeout_clears() {
        let new = merge(None, "cd".repeat(32), Given::default());
        assert_eq!((new.replicas, new.cpu_millis, new.memory_bytes), (1, 100, 32 << 20));
        assert_eq!(new.restart.as_deref(), Some("always"));
        let before = current();
        let cleared = merge(Some(&before), before.module.clone(), Given { timeout_ms: Some(0), ..Given::default() });
        assert_eq!(cleared.timeout_ms, None);
    }

    #[test]
    fn pairs_need_an_equals_sign() {
        assert_eq!(pairs("--env", &[]).unwrap(), None);
        assert_eq!(pairs("--env", &["A=b=c".into()]).unwrap(), Some(vec![("A".into(), "b=c".into())]));
        assert!(pairs("--env", &["A".into()]).unwrap_err().to_string().contains("expected K=V"));
    }
}
