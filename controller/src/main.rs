//! `edge-controller`: runs one controller until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use edge_controller::{parse_broker_url, BrokerMode, ControllerConfig};

#[derive(Parser)]
#[command(version, about = "The edge orchestrator's controller: API, state store, scheduler and MQTT broker")]
struct Args {
    /// Directory of the state store (created if missing).
    #[arg(long, default_value = "edge-data")]
    data: PathBuf,
    /// Address of the HTTP/JSON API.
    #[arg(long, default_value = "127.0.0.1:7700")]
    api: SocketAddr,
    /// Listen address of the embedded MQTT broker (the default mode).
    #[arg(long, default_value = "127.0.0.1:1883", conflicts_with = "broker")]
    mqtt_listen: SocketAddr,
    /// Use this external MQTT broker (mqtt://HOST:PORT) instead of the embedded one.
    #[arg(long)]
    broker: Option<String>,
    /// MQTT topic prefix.
    #[arg(long, default_value = edge_proto_prefix())]
    prefix: String,
    /// A node silent for this long is NotReady (e.g. 6s, 500ms).
    #[arg(long, default_value = "6s", value_parser = parse_duration)]
    node_timeout: Duration,
    /// A node NotReady for this long is lost: its reschedulable instances are placed elsewhere (e.g. 30s, 1s).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    reschedule_after: Duration,
    /// During a rollout, each new instance runs this long before the next starts (e.g. 3s).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    min_ready: Duration,
}

fn edge_proto_prefix() -> &'static str {
    "edge/v1"
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?} (examples: 6s, 500ms, 1m)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("invalid duration unit in {s:?} (use ms, s or m)")),
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=warn".parse().expect("static filter")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();
    let broker = match &args.broker {
        Some(url) => {
            let (host, port) = parse_broker_url(url)?;
            BrokerMode::External { host, port }
        }
        None => BrokerMode::Embedded(args.mqtt_listen),
    };
    let mut config = ControllerConfig::new(args.data, args.api, broker);
    config.prefix = args.prefix;
    config.node_timeout = args.node_timeout;
    config.reschedule_after = args.reschedule_after;
    config.min_ready = args.min_ready;
    let running = edge_controller::start(config).await.context("cannot start the controller")?;
    println!("edge-controller: API on http://{}, MQTT on {}:{}", running.api_addr, running.mqtt.0, running.mqtt.1);
    wait_for_signal().await;
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
