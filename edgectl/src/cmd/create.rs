//! `edgectl create namespace NS [--quota-cpu Q] [--quota-memory Q] [--quota-instances N]`.

use anyhow::{anyhow, Result};
use edge_api::{NamespaceRequest, Quota};
use edge_proto::quantity::{parse_cpu, parse_memory};

use crate::cli::CreateArgs;
use crate::client::Client;

pub async fn namespace(client: &Client, args: &CreateArgs) -> Result<()> {
    let quota = Quota {
        cpu_millis: args
            .quota_cpu
            .as_deref()
            .map(|q| parse_cpu(q).map(u64::from).map_err(|e| anyhow!("--quota-cpu: {e}")))
            .transpose()?,
        memory_bytes: args
            .quota_memory
            .as_deref()
            .map(|q| parse_memory(q).map_err(|e| anyhow!("--quota-memory: {e}")))
            .transpose()?,
        instances: args.quota_instances,
    };
    let (ns, created) = client.put_namespace(&args.name, &NamespaceRequest { quota }).await?;
    println!("namespace/{} {}", ns.name, if created { "created" } else { "configured" });
    Ok(())
}
