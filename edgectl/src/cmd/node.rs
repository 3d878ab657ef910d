//! Node operations: `edgectl cordon|uncordon|drain NODE` and `edgectl label node NODE k=v k-`.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use edge_api::LabelRequest;

use crate::client::Client;

pub enum Op {
    Cordon,
    Uncordon,
    Drain,
}

pub async fn run(client: &Client, node: &str, op: Op) -> Result<()> {
    let (path, done) = match op {
        Op::Cordon => ("cordon", "cordoned"),
        Op::Uncordon => ("uncordon", "uncordoned"),
        Op::Drain => ("drain", "drained"),
    };
    client.node_op(node, path).await?;
    println!("node/{node} {done}");
    Ok(())
}

pub async fn label(client: &Client, node: &str, labels: &[String]) -> Result<()> {
    let mut req = LabelRequest { set: BTreeMap::new(), remove: Vec::new() };
    for l in labels {
        match (l.split_once('='), l.strip_suffix('-')) {
            (Some((k, v)), _) => {
                req.set.insert(k.to_string(), v.to_string());
            }
            (None, Some(k)) if !k.is_empty() => req.remove.push(k.to_string()),
            _ => return Err(anyhow!("label {l:?}: expected K=V to set or K- to remove")),
        }
    }
    let n = client.label(node, &req).await?;
    let shown: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("node/{node} labeled: {}", if shown.is_empty() { "<none>".to_string() } else { shown.join(", ") });
    Ok(())
}
