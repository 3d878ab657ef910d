//! `edgectl delete NAME`, `delete workload NAME`, `delete -f FILE`, `delete node NAME [--force]`.

use anyhow::{bail, Result};
use reqwest::StatusCode;

use crate::cli::DeleteArgs;
use crate::client::{Client, Refused};

pub async fn run(client: &Client, ns: &str, args: DeleteArgs) -> Result<()> {
    if !args.files.is_empty() {
        if !args.names.is_empty() {
            bail!("give either names or -f manifests, not both");
        }
        if args.force {
            bail!("--force is for `delete node NAME` only");
        }
        return super::apply::delete(client, ns, &args.files, args.ignore_not_found).await;
    }
    let name = match args.names.as_slice() {
        [kind, name] if matches!(kind.as_str(), "node" | "nodes" | "no") => {
            return node(client, name, args.force, args.ignore_not_found).await
        }
        [kind, name] if matches!(kind.as_str(), "credential" | "credentials" | "cred") && !args.force => {
            return match super::credential::delete(client, name).await {
                Err(e) if args.ignore_not_found && is_status(&e, StatusCode::NOT_FOUND) => Ok(()),
                r => r,
            };
        }
        _ if args.force => bail!("--force is for `delete node NAME` only"),
        [name] => super::edit::workload_name(name),
        [kind, name] if matches!(kind.as_str(), "workload" | "workloads" | "wl") => name.as_str(),
        [kind, _] => bail!(
            "cannot delete {kind:?} (delete a workload: edgectl delete workload NAME, a node: edgectl delete node NAME, \
             a credential: edgectl delete credential NAME)"
        ),
        _ => bail!("name a workload (edgectl delete NAME) or manifests (edgectl delete -f FILE)"),
    };
    match client.delete(ns, name).await {
        Err(e) if args.ignore_not_found && is_status(&e, StatusCode::NOT_FOUND) => Ok(()),
        Err(e) => Err(e),
        Ok(()) => {
            println!("workload {ns}/{name} deleted");
            Ok(())
        }
    }
}

/// The controller revokes the node's credentials and moves its instances; while the node is Ready it refuses
/// (409) unless `force`, since a working agent would be cut off mid-flight.
async fn node(client: &Client, name: &str, force: bool, ignore_not_found: bool) -> Result<()> {
    match client.delete_node(name, force).await {
        Err(e) if ignore_not_found && is_status(&e, StatusCode::NOT_FOUND) => Ok(()),
        Err(e) => match e.downcast_ref::<Refused>() {
            // The controller's message says what to do; an older or terser one still gets the hint.
            Some(r) if r.status == StatusCode::CONFLICT && !r.message.contains("--force") => {
                bail!("{} (delete it anyway with --force)", r.message)
            }
            _ => Err(e),
        },
        Ok(()) => {
            println!("node/{name} deleted");
            Ok(())
        }
    }
}

fn is_status(e: &anyhow::Error, status: StatusCode) -> bool {
    e.downcast_ref::<Refused>().is_some_and(|r| r.status == status)
}
