//! `sim`: connects N simulated nodes (protocol only, no wasm) to a broker, for loading a controller at scale.
//!
//! ```text
//! cargo run --release -p edge-tests --bin sim -- --broker mqtt://127.0.0.1:1883 --nodes 1000 [--heartbeat-ms 2000]
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use edge_tests::sim::{self, SimConfig, SimStats};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (host, port) =
        edge_proto::parse_broker_url(&arg("--broker").unwrap_or_else(|| "mqtt://127.0.0.1:1883".into()))?;
    let nodes: usize = arg("--nodes").unwrap_or_else(|| "1000".into()).parse()?;
    let mut cfg = SimConfig::new(&host, port, nodes);
    cfg.heartbeat = Duration::from_millis(arg("--heartbeat-ms").unwrap_or_else(|| "2000".into()).parse()?);
    let stats = Arc::new(SimStats::default());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(sim::run(cfg, stats.clone(), rx));
    println!("simulating {nodes} nodes on {host}:{port}; Ctrl-C to stop");
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => println!(
                "heartbeats sent {}, specs received {}",
                stats.heartbeats_sent.load(Ordering::Relaxed),
                stats.specs_received.load(Ordering::Relaxed)
            ),
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let _ = tx.send(true);
    let _ = run.await;
    Ok(())
}
