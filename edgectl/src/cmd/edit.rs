//! Changes that touch only what they name: `scale`, `set env|module|resources`, `rollout restart`. Each reads
//! the workload, changes one part of its spec, and sends the whole spec back (the API has no partial update);
//! nothing is sent when nothing changed. Prints the fields that changed (`replicas: 2 → 3`).
//!
//! Two clients editing the same workload at once can lose one edit: the API has no precondition to send.

use anyhow::{anyhow, bail, Result};
use edge_api::DeployRequest;
use edge_proto::quantity::{parse_cpu, parse_memory};

use crate::cli::SetCommand;
use crate::client::Client;
use crate::template::{self, RESTARTED_AT};

/// `tick`, `workload/tick` or `wl/tick` → `tick`.
pub fn workload_name(arg: &str) -> &str {
    ["workload/", "workloads/", "wl/"].iter().find_map(|p| arg.strip_prefix(p)).unwrap_or(arg)
}

/// Reads `name`, applies `edit` to its spec, and stores the result if it differs.
async fn update(
    client: &Client,
    ns: &str,
    name: &str,
    verb: &str,
    edit: impl FnOnce(&mut DeployRequest) -> Result<()>,
) -> Result<()> {
    let name = workload_name(name);
    let current = template::from_view(&client.workload(ns, name).await?);
    let mut wanted = current.clone();
    edit(&mut wanted)?;
    let wanted = template::normalize(wanted);
    let changes = template::changes(&current, &wanted);
    if changes.is_empty() {
        println!("workload/{name} unchanged");
        return Ok(());
    }
    let w = client.deploy(ns, name, &wanted).await?;
    println!("workload/{name} {verb} (revision {})", w.revision);
    for c in changes {
        println!("  {c}");
    }
    Ok(())
}

pub async fn scale(client: &Client, ns: &str, name: &str, replicas: u32) -> Result<()> {
    update(client, ns, name, "scaled", |r| {
        r.replicas = replicas;
        Ok(())
    })
    .await
}

pub async fn set(client: &Client, ns: &str, what: SetCommand) -> Result<()> {
    match what {
        SetCommand::Env { name, changes } => {
            update(client, ns, &name, "env updated", |r| edit_env(&mut r.env, &changes)).await
        }
        SetCommand::Module { name, module } => {
            let path = module.display().to_string();
            let sha = crate::module::ensure_uploaded(client, &path, crate::module::read(&module)?).await?;
            update(client, ns, &name, "module updated", |r| {
                r.module = sha;
                Ok(())
            })
            .await
        }
        SetCommand::Resources { name, cpu, memory, cpu_limit, memory_limit } => {
            if cpu.is_none() && memory.is_none() && cpu_limit.is_none() && memory_limit.is_none() {
                bail!("name at least one of --cpu, --memory, --cpu-limit, --memory-limit");
            }
            let cpu_of = |flag: &str, v: &Option<String>| {
                v.as_deref().map(|s| parse_cpu(s).map_err(|e| anyhow!("{flag}: {e}"))).transpose()
            };
            let memory_of = |flag: &str, v: &Option<String>| {
                v.as_deref().map(|s| parse_memory(s).map_err(|e| anyhow!("{flag}: {e}"))).transpose()
            };
            let (cpu, cpu_limit) = (cpu_of("--cpu", &cpu)?, cpu_of("--cpu-limit", &cpu_limit)?);
            let (memory, memory_limit) = (memory_of("--memory", &memory)?, memory_of("--memory-limit", &memory_limit)?);
            update(client, ns, &name, "resources updated", |r| {
                r.cpu_millis = cpu.unwrap_or(r.cpu_millis);
                r.memory_bytes = memory.unwrap_or(r.memory_bytes);
                r.cpu_limit_millis = cpu_limit.or(r.cpu_limit_millis);
                r.memory_limit_bytes = memory_limit.or(r.memory_limit_bytes);
                Ok(())
            })
            .await
        }
    }
}

/// A new revision of the same template: [`RESTARTED_AT`] set to now.
pub async fn restart(client: &Client, ns: &str, name: &str) -> Result<()> {
    let now = time::OffsetDateTime::now_utc();
    // Milliseconds: short enough to read, fine enough that two restarts are two revisions.
    let now = now
        .replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| anyhow!("cannot format the time: {e}"))?;
    update(client, ns, name, "restarted", |r| edit_env(&mut r.env, &[format!("{RESTARTED_AT}={now}")])).await
}

/// Applies `K=V` (set, in place when present) and `K-` (remove) to an environment, in order. Pure.
pub fn edit_env(env: &mut Vec<(String, String)>, changes: &[String]) -> Result<()> {
    for change in changes {
        if let Some((k, v)) = change.split_once('=') {
            if k.is_empty() {
                bail!("{change:?}: the variable name is empty");
            }
            match env.iter().position(|(name, _)| name == k) {
                Some(i) => {
                    env[i].1 = v.to_string();
                    // A name set twice (possible through the API) keeps its first place only.
                    let mut seen = false;
                    env.retain(|(name, _)| name != k || !std::mem::replace(&mut seen, true));
                }
                None => env.push((k.to_string(), v.to_string())),
            }
        } else if let Some(k) = change.strip_suffix('-').filter(|k| !k.is_empty()) {
            env.retain(|(name, _)| name != k);
        } else {
            bail!("{change:?}: expected K=V to set a variable or K- to remove one");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn set_env_sets_in_place_appends_and_removes() {
        let mut e = env(&[("A", "1"), ("B", "2"), ("A", "dup")]);
        edit_env(&mut e, &["A=3".into(), "C=x=y".into(), "B-".into(), "MISSING-".into()]).unwrap();
        assert_eq!(e, env(&[("A", "3"), ("C", "x=y")]));
        assert!(edit_env(&mut e, &["A".into()]).unwrap_err().to_string().contains("expected K=V"));
        assert!(edit_env(&mut e, &["-".into()]).is_err());
        assert!(edit_env(&mut e, &["=v".into()]).is_err());
    }

    #[test]
    fn names_take_a_kind_prefix() {
        assert_eq!(workload_name("workload/tick"), "tick");
        assert_eq!(workload_name("wl/tick"), "tick");
        assert_eq!(workload_name("tick"), "tick");
    }
}
