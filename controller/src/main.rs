//! `edge-controller`: runs one controller until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use edge_controller::{parse_broker_url, BrokerMode, ControllerConfig};
use edge_proto::quantity::{format_duration, parse_duration};
use edge_proto::timing;
use edge_proto::topic::DEFAULT_PREFIX;

// Flag defaults rendered from the shared timing constants, so `--help`, the flag and the agents never disagree.
static NODE_TIMEOUT: LazyLock<String> = LazyLock::new(|| format_duration(timing::NODE_TIMEOUT));
static RESCHEDULE_AFTER: LazyLock<String> = LazyLock::new(|| format_duration(timing::RESCHEDULE_AFTER));
static MIN_READY: LazyLock<String> = LazyLock::new(|| format_duration(timing::MIN_READY));

/// Every duration flag takes the one syntax of `edge_proto::quantity::parse_duration`: 500ms, 30s, 5m, or a bare
/// number of seconds.
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
    /// Let the embedded broker admit anonymous clients, and believe nodes that never joined (a lab with no
    /// identities; anyone who reaches the MQTT port then owns the fleet).
    #[arg(long)]
    mqtt_allow_anonymous: bool,
    /// Admit only nodes that joined with a token (`edgectl token create`, `edge-agent --join`); by default an
    /// agent started without one may still connect under a name no joined node holds, confined to its own topics.
    #[arg(long)]
    require_join: bool,
    /// With --broker: keep an external Mosquitto 2.x's password file, ACL file and config snippet (edge.conf)
    /// in this directory, equal to the embedded broker's policy, rewritten on every token, join and deletion.
    #[arg(long, value_name = "DIR", requires = "broker")]
    mosquitto_dir: Option<PathBuf>,
    /// Mosquitto's pid file: it is sent SIGHUP (reload) after every rewrite of --mosquitto-dir.
    #[arg(long, value_name = "FILE", requires = "mosquitto_dir")]
    mosquitto_pid: Option<PathBuf>,
    /// With --mosquitto-dir: add a listener on this port speaking MQTT over TLS, with a certificate of the
    /// cluster CA written there (broker.crt, broker.key); agents connect with --broker mqtts://HOST:PORT.
    #[arg(long, value_name = "PORT", requires = "mosquitto_dir")]
    mosquitto_tls_port: Option<u16>,
    /// HTTPS on the API, with a certificate of the cluster CA (`ca.crt` in --data; its key is the cluster
    /// key): auto = whenever the API listens beyond loopback.
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE")]
    api_tls: TlsMode,
    /// MQTT over TLS on the embedded broker's listener, with a certificate of the cluster CA: auto = whenever
    /// it listens beyond loopback. Agents then connect with --broker mqtts://HOST:PORT (pinned by their token).
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE", conflicts_with = "broker")]
    mqtt_tls: TlsMode,
    /// An extra name (DNS or IP) in the API's and broker's certificates, for clients that check names (repeatable).
    #[arg(long = "tls-san", value_name = "NAME")]
    tls_san: Vec<String>,
    /// Make a new admin credential and write its token to admin.token in --data, even though one exists (the
    /// way back in when every admin token is lost).
    #[arg(long)]
    reset_admin: bool,
    /// MQTT topic prefix (the same on the agents).
    #[arg(long = "topic-prefix", alias = "prefix", value_name = "PREFIX", default_value = DEFAULT_PREFIX)]
    topic_prefix: String,
    /// A node silent for this long is NotReady (e.g. 6s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = NODE_TIMEOUT.as_str(), value_parser = parse_duration)]
    node_timeout: Duration,
    /// A node NotReady for this long is lost: its reschedulable instances are placed elsewhere (e.g. 30s, 1m).
    #[arg(long, value_name = "DURATION", default_value = RESCHEDULE_AFTER.as_str(), value_parser = parse_duration)]
    reschedule_after: Duration,
    /// A replica is ready once Running this long without restarting; rollouts replace one old replica per ready new
    /// one, and `edgectl deploy --wait` waits for it (e.g. 3s).
    #[arg(long, value_name = "DURATION", default_value = MIN_READY.as_str(), value_parser = parse_duration)]
    min_ready: Duration,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TlsMode {
    Auto,
    On,
    Off,
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
    config.prefix = args.topic_prefix;
    config.node_timeout = args.node_timeout;
    config.reschedule_after = args.reschedule_after;
    config.min_ready = args.min_ready;
    config.allow_anonymous = args.mqtt_allow_anonymous;
    config.require_join = args.require_join;
    config.mosquitto_dir = args.mosquitto_dir;
    config.mosquitto_pid = args.mosquitto_pid;
    config.mosquitto_tls_port = args.mosquitto_tls_port;
    let tls = |mode: TlsMode| match mode {
        TlsMode::Auto => edge_controller::server::Tls::Auto,
        TlsMode::On => edge_controller::server::Tls::On,
        TlsMode::Off => edge_controller::server::Tls::Off,
    };
    config.api_tls = tls(args.api_tls);
    config.mqtt_tls = tls(args.mqtt_tls);
    config.tls_names = args.tls_san;
    config.reset_admin = args.reset_admin;
    let running = edge_controller::start(config).await.context("cannot start the controller")?;
    let scheme = if running.api_tls { "https" } else { "http" };
    let mqtt_scheme = if running.mqtt_tls { "mqtts" } else { "mqtt" };
    println!(
        "edge-controller: API on {scheme}://{}, MQTT on {mqtt_scheme}://{}:{}, cluster {}",
        running.api_addr, running.mqtt.0, running.mqtt.1, running.fingerprint
    );
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

#[cfg(test)]
mod tests {
    use super::Args;
    use clap::Parser;
    use edge_proto::timing;

    #[test]
    fn defaults_are_the_shared_ones_and_durations_take_the_shared_syntax() {
        let a = Args::try_parse_from(["edge-controller"]).unwrap();
        assert_eq!(a.node_timeout, timing::NODE_TIMEOUT);
        assert_eq!(a.reschedule_after, timing::RESCHEDULE_AFTER);
        assert_eq!(a.min_ready, timing::MIN_READY);
        assert_eq!(a.topic_prefix, edge_proto::topic::DEFAULT_PREFIX);
        let a = Args::try_parse_from(["edge-controller", "--node-timeout", "1.5s", "--min-ready", "500ms"]).unwrap();
        assert_eq!(a.node_timeout, std::time::Duration::from_millis(1500));
        assert_eq!(a.min_ready, std::time::Duration::from_millis(500));
        let a = Args::try_parse_from(["edge-controller", "--reschedule-after", "2m"]).unwrap();
        assert_eq!(a.reschedule_after, std::time::Duration::from_secs(120));
        assert!(Args::try_parse_from(["edge-controller", "--node-timeout", "6x"]).is_err());
    }

    #[test]
    fn mosquitto_files_need_an_external_broker() {
        assert!(Args::try_parse_from(["edge-controller", "--mosquitto-dir", "/m"]).is_err());
        assert!(Args::try_parse_from(["edge-controller", "--broker", "mqtt://h:1", "--mosquitto-pid", "/p"]).is_err());
        let a = Args::try_parse_from([
            "edge-controller",
            "--broker",
            "mqtt://h:1",
            "--mosquitto-dir",
            "/m",
            "--mosquitto-pid",
            "/p",
        ])
        .unwrap();
        assert_eq!(a.mosquitto_dir.as_deref(), Some(std::path::Path::new("/m")));
        assert_eq!(a.mosquitto_pid.as_deref(), Some(std::path::Path::new("/p")));
    }

    #[test]
    fn the_topic_prefix_is_one_flag_with_the_old_name_kept() {
        let a = Args::try_parse_from(["edge-controller", "--topic-prefix", "site/a"]).unwrap();
        assert_eq!(a.topic_prefix, "site/a");
        let a = Args::try_parse_from(["edge-controller", "--prefix", "site/b"]).unwrap();
        assert_eq!(a.topic_prefix, "site/b");
    }
}
