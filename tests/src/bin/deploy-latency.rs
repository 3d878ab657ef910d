//! Benchmark: time from invoking `edgectl deploy` to the workload's first log line being readable through the
//! API that `edgectl logs` reads, for a module the controller already has and for one it has never seen.
//!
//! Run: `cargo build --release --bin edgectl && cargo run --release -p edge-tests --bin deploy-latency`
//! It starts a controller with its embedded broker and two agents in this process, and runs the real `edgectl`
//! binary (default `target/release/edgectl`, or the path given as the first argument) for every deploy.
//! With `BENCH_BROKER=mqtt://HOST:PORT` the controller and agents use that external broker instead.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use edge_tests::{example, examples, Fleet};

const TRIALS: usize = 10;

#[tokio::main]
async fn main() {
    let edgectl: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/edgectl"));
    assert!(edgectl.exists(), "{} not found: build it with cargo build --release --bin edgectl", edgectl.display());
    let mut fleet = match std::env::var("BENCH_BROKER") {
        Ok(url) => {
            let (host, port) = edge_controller::parse_broker_url(&url).expect("BENCH_BROKER=mqtt://HOST:PORT");
            Fleet::with_broker(edge_controller::BrokerMode::External { host, port }).await
        }
        Err(_) => Fleet::embedded().await,
    };
    fleet.start_agent("bench-1");
    fleet.start_agent("bench-2");
    fleet.wait_ready_nodes(2).await;
    let server = format!("http://{}", fleet.controller.as_ref().unwrap().api_addr);
    let ticker = examples().join("ticker.wasm");
    // Warm-up: the module is uploaded and cached on both agents, as in "its module already uploaded".
    fleet.api.upload(example("ticker.wasm")).await;
    let warm = measure(&fleet, &edgectl, &server, "warm", &ticker).await;
    eprintln!("warm-up deploy: {warm:.1} ms");

    let mut known = Vec::new();
    for i in 0..TRIALS {
        known.push(measure(&fleet, &edgectl, &server, &format!("known-{i}"), &ticker).await);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fresh = Vec::new();
    for i in 0..TRIALS {
        // A never-seen module: ticker plus a custom section with unique bytes (a new sha256, a new compile).
        let path = dir.path().join(format!("fresh-{i}.wasm"));
        std::fs::write(&path, with_custom_section(&example("ticker.wasm"), i)).expect("write module");
        fresh.push(measure(&fleet, &edgectl, &server, &format!("fresh-{i}"), &path).await);
    }
    report("module already uploaded", &mut known);
    report("module never seen", &mut fresh);
    fleet.stop().await;
}

/// Milliseconds from spawning `edgectl deploy` to the first log line of the new workload.
async fn measure(fleet: &Fleet, edgectl: &PathBuf, server: &str, name: &str, module: &PathBuf) -> f64 {
    let t0 = Instant::now();
    let status = Command::new(edgectl)
        .args(["--server", server, "deploy", name])
        .arg(module)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run edgectl");
    assert!(status.success(), "edgectl deploy {name} failed");
    let deadline = t0 + Duration::from_secs(30);
    loop {
        if !fleet.api.logs(name).await.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no log line from {name} within 30 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let (status, _) =
        fleet.api.send(reqwest::Method::DELETE, &format!("/v1/namespaces/default/workloads/{name}"), None, None).await;
    assert_eq!(status, 204);
    ms
}

fn with_custom_section(module: &[u8], i: usize) -> Vec<u8> {
    let name = b"bench";
    let payload = format!("{i}-{}", std::process::id());
    let body_len = 1 + name.len() + payload.len();
    assert!(body_len < 128, "single-byte LEB128 lengths only");
    let mut out = module.to_vec();
    out.push(0); // custom section id
    out.push(body_len as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(payload.as_bytes());
    out
}

fn report(what: &str, samples: &mut [f64]) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let median = (samples[samples.len() / 2 - 1] + samples[samples.len() / 2]) / 2.0;
    println!(
        "deploy -> first log line, {what}: median {median:.1} ms, min {:.1} ms, max {:.1} ms (n={})",
        samples[0],
        samples[samples.len() - 1],
        samples.len()
    );
}
