//! `edgectl logs NAME [-f]`: every instance's lines, prefixed with the instance id.

use std::time::Duration;

use anyhow::Result;

use crate::client::Client;

pub async fn run(client: &Client, ns: &str, name: &str, follow: bool) -> Result<()> {
    let mut since = 0;
    loop {
        let page = client.logs(ns, name, since).await?;
        for l in &page.lines {
            println!("[{}] {}", l.instance, l.line);
        }
        let got = page.lines.len();
        since = page.next;
        if got > 0 {
            continue; // There may be more pages right away.
        }
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
