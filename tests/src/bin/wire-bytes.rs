//! Bytes on the wire per idle node, and how long a silently dead node takes to be noticed (issue 11).
//!
//! ```text
//! cargo build --release --bins && target/release/wire-bytes [--minutes 10]
//! ```
//! One controller process (embedded broker) and three agent processes on this machine, all idle (no workload):
//! `joined` (defaults, joined with a token: every report tagged), `unjoined` (defaults, no identity) and
//! `old-cadence` (joined, `--heartbeat 2s`: the heartbeat interval before this issue). After a minute to
//! settle, each agent's TCP connection to the broker is read with `ss -tinp` (the kernel's `bytes_sent` and
//! `bytes_received`: MQTT bytes, without TCP/IP headers) at the start and the end of the window.
//!
//! Then the `joined` agent is frozen with SIGSTOP (its socket stays open: no FIN, no RST, as a board that lost
//! power behind a NAT looks to the broker) and the time until the controller reports it NotReady is measured.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use edge_tests::proc::{binary, ControllerProc, Proc};
use edge_tests::Api;
use serde_json::json;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `(bytes_sent, bytes_received)` of process `pid`'s TCP connection to the broker on `port`.
fn socket_bytes(pid: u32, port: u16) -> (u64, u64) {
    let out = Command::new("ss")
        .args(["-tinpH", "state", "established", "dport", "=", &format!(":{port}")])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    // `ss -i` prints each socket on a line and its counters on the next.
    let lines: Vec<&str> = text.lines().collect();
    let mine = format!("pid={pid},");
    let at = lines.iter().position(|l| l.contains(&mine)).unwrap_or_else(|| panic!("no socket of pid {pid}:\n{text}"));
    let counters = lines.get(at + 1).copied().unwrap_or_default();
    let field = |name: &str| {
        counters.split_whitespace().find_map(|f| f.strip_prefix(name)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
    };
    (field("bytes_sent:"), field("bytes_received:"))
}

async fn token(api: &Api, node: &str) -> String {
    let (status, v) = api.send(reqwest::Method::POST, "/v1/tokens", None, Some(json!({ "node": node }))).await;
    assert_eq!(status, 201, "{v}");
    v["token"].as_str().unwrap().to_string()
}

fn agent(name: &str, port: u16, dir: &Path, extra: &[String]) -> Proc {
    let mut args = vec![
        "--node".to_string(),
        name.to_string(),
        "--broker".into(),
        format!("mqtt://127.0.0.1:{port}"),
        "--data".into(),
        dir.join(name).display().to_string(),
    ];
    args.extend(extra.iter().cloned());
    Proc::spawn(name, &binary("edge-agent"), &args, dir)
}

async fn node_status(api: &Api, node: &str) -> String {
    api.get(&format!("/v1/nodes/{node}")).await["node"]["status"].as_str().unwrap_or_default().to_string()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let minutes = arg("--minutes", 10);
    let dir = tempfile::tempdir().unwrap();
    let controller = ControllerProc::start("controller", &dir.path().join("controller"), None, &[], dir.path());
    let port = controller.mqtt_port();
    let api = controller.client();
    let joined_token = token(&api, "joined").await;
    let old_token = token(&api, "old-cadence").await;
    let mut agents = vec![
        ("joined", agent("joined", port, dir.path(), &["--join".into(), joined_token])),
        ("unjoined", agent("unjoined", port, dir.path(), &[])),
        (
            "old-cadence",
            agent("old-cadence", port, dir.path(), &["--join".into(), old_token, "--heartbeat".into(), "2s".into()]),
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    for (name, _) in &agents {
        while node_status(&api, name).await != "Ready" {
            assert!(Instant::now() < deadline, "{name} not Ready within 60 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(60)).await; // past the join and the first refresh
    let before: Vec<(u64, u64)> = agents.iter().map(|(_, p)| socket_bytes(p.pid(), port)).collect();
    let window = Duration::from_secs(60 * minutes);
    tokio::time::sleep(window).await;
    println!("idle node, {minutes} min window, bytes per minute (MQTT payload bytes, from the agent's socket):");
    println!("| agent | uplink B/min | downlink B/min |");
    println!("|---|---|---|");
    for ((name, p), (sent0, recv0)) in agents.iter().zip(&before) {
        let (sent, recv) = socket_bytes(p.pid(), port);
        let per_min = |a: u64, b: u64| a.saturating_sub(b) as f64 / minutes as f64;
        println!("| {name} | {:.0} | {:.0} |", per_min(sent, *sent0), per_min(recv, *recv0));
    }

    // A silently dead node: frozen, its socket open.
    let pid = agents[0].1.pid().to_string();
    let frozen = Instant::now();
    Command::new("kill").args(["-STOP", &pid]).status().expect("kill -STOP");
    while node_status(&api, "joined").await == "Ready" {
        assert!(frozen.elapsed() < Duration::from_secs(600), "still Ready 10 min after freezing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("silently dead node (SIGSTOP, socket left open): NotReady after {:.1} s", frozen.elapsed().as_secs_f64());
    Command::new("kill").args(["-CONT", &pid]).status().expect("kill -CONT");
    for (_, p) in &mut agents {
        p.kill9();
    }
}
