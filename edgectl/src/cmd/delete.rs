use anyhow::Result;

use crate::client::Client;

pub async fn run(client: &Client, ns: &str, name: &str) -> Result<()> {
    client.delete(ns, name).await?;
    println!("workload {ns}/{name} deleted");
    Ok(())
}
