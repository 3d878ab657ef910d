//! `edgectl delete NAME`, `delete workload NAME`, `delete -f FILE`.

use anyhow::{bail, Result};

use crate::cli::DeleteArgs;
use crate::client::{Client, Refused};

pub async fn run(client: &Client, ns: &str, args: DeleteArgs) -> Result<()> {
    if !args.files.is_empty() {
        if !args.names.is_empty() {
            bail!("give either names or -f manifests, not both");
        }
        return super::apply::delete(client, ns, &args.files, args.ignore_not_found).await;
    }
    let name = match args.names.as_slice() {
        [name] => super::edit::workload_name(name),
        [kind, name] if matches!(kind.as_str(), "workload" | "workloads" | "wl") => name.as_str(),
        [kind, _] => bail!("cannot delete {kind:?} (delete a workload: edgectl delete workload NAME)"),
        _ => bail!("name a workload (edgectl delete NAME) or manifests (edgectl delete -f FILE)"),
    };
    match client.delete(ns, name).await {
        Err(e)
            if args.ignore_not_found
                && e.downcast_ref::<Refused>().is_some_and(|r| r.status == reqwest::StatusCode::NOT_FOUND) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
        Ok(()) => {
            println!("workload {ns}/{name} deleted");
            Ok(())
        }
    }
}
