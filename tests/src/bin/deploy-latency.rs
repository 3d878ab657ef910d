//! Benchmark: time from invoking `edgectl deploy` to the workload's first log line being readable through the
//! API that `edgectl logs` reads, for a module the controller already has and for one it has never seen.
//!
//! Run: `cargo build --release --bin edgectl && cargo run --release -p edge-tests --bin deploy-latency`
//! It starts a controller with its embedded broker and two agents in this process, and runs the real `edgectl`
//! binary (default `target/release/edgectl`, or the path given as the first argument) for every deploy.
//! With `BENCH_BROKER=mqtt://HOST:PORT` the controller and agents use that external broker instead.
//!
//! Two rounds, one after the other on fresh clusters: agents that never joined (nothing verified, nothing
//! tagged), then agents that joined with tokens (every spec and artifact chunk verified under the cluster key,
//! every report tagged): the cost of signing, verifying and tagging is the difference.
//!
//! Beside it, in the same run, `crun` and `runc` (Debian packages) start a trivial container (`busybox echo`
//! from a busybox-static rootfs) the same number of times, timed from spawning the runtime to its exit (the
//! echo's output is read by then). Skipped with a note when a runtime or busybox is missing.

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
    for joined in [false, true] {
        round(&edgectl, joined).await;
    }
    containers();
}

/// One cluster, two agents (joined with tokens or not), TRIALS deploys of a known and of a new module.
async fn round(edgectl: &PathBuf, joined: bool) {
    let mut fleet = match std::env::var("BENCH_BROKER") {
        Ok(url) => {
            let (host, port) = edge_controller::parse_broker_url(&url).expect("BENCH_BROKER=mqtt://HOST:PORT");
            Fleet::with_broker(edge_controller::BrokerMode::External { host, port }).await
        }
        Err(_) => Fleet::embedded().await,
    };
    let (host, port) = fleet.broker_addr();
    for name in ["bench-1", "bench-2"] {
        let join = if joined {
            let body = serde_json::json!({ "node": name });
            let (status, v) = fleet.api.send(reqwest::Method::POST, "/v1/tokens", None, Some(body)).await;
            assert_eq!(status, 201, "{v}");
            v["token"].as_str().map(str::to_string)
        } else {
            None
        };
        fleet.start_agent_with(name, &host, port, |c| c.join = join);
    }
    fleet.wait_ready_nodes(2).await;
    let agents = if joined { "joined agents (verify + tags)" } else { "unjoined agents" };
    let server = format!("http://{}", fleet.controller.as_ref().unwrap().api_addr);
    let ticker = examples().join("ticker.wasm");
    // Warm-up: the module is uploaded and cached on both agents, as in "its module already uploaded".
    fleet.api.upload(example("ticker.wasm")).await;
    let warm = measure(&fleet, edgectl, &server, "warm", &ticker).await;
    eprintln!("warm-up deploy: {warm:.1} ms");

    let mut known = Vec::new();
    for i in 0..TRIALS {
        known.push(measure(&fleet, edgectl, &server, &format!("known-{i}"), &ticker).await);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fresh = Vec::new();
    for i in 0..TRIALS {
        // A never-seen module: ticker plus a custom section with unique bytes (a new sha256, a new compile).
        let path = dir.path().join(format!("fresh-{i}.wasm"));
        std::fs::write(&path, with_custom_section(&example("ticker.wasm"), i)).expect("write module");
        fresh.push(measure(&fleet, edgectl, &server, &format!("fresh-{i}"), &path).await);
    }
    report(&format!("{agents}, module already uploaded"), &mut known);
    report(&format!("{agents}, module never seen"), &mut fresh);
    fleet.stop().await;
}

fn containers() {
    for runtime in ["crun", "runc"] {
        match container_starts(runtime) {
            Ok(mut samples) => {
                samples.sort_by(|a, b| a.total_cmp(b));
                let median = (samples[samples.len() / 2 - 1] + samples[samples.len() / 2]) / 2.0;
                println!(
                    "{runtime} run (busybox echo, rootfs from busybox-static): median {median:.1} ms, min {:.1} ms, \
                     max {:.1} ms (n={})",
                    samples[0],
                    samples[samples.len() - 1],
                    samples.len()
                );
            }
            Err(why) => println!("{runtime}: not measured ({why})"),
        }
    }
}

/// Milliseconds of `RUNTIME run` of a busybox echo container, TRIALS times after one warm-up.
fn container_starts(runtime: &str) -> Result<Vec<f64>, String> {
    let busybox = std::path::Path::new("/usr/bin/busybox");
    if !busybox.exists() {
        return Err("no /usr/bin/busybox: apt-get install busybox-static".into());
    }
    let bundle = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(bundle.path().join("rootfs/bin")).map_err(|e| e.to_string())?;
    std::fs::copy(busybox, bundle.path().join("rootfs/bin/busybox")).map_err(|e| e.to_string())?;
    let spec = Command::new(runtime).arg("spec").current_dir(bundle.path()).status();
    if !spec.map(|s| s.success()).unwrap_or(false) {
        return Err(format!("{runtime} not installed or `{runtime} spec` failed"));
    }
    let path = bundle.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    config["process"]["args"] = serde_json::json!(["/bin/busybox", "echo", "hello"]);
    config["process"]["terminal"] = serde_json::json!(false);
    std::fs::write(&path, config.to_string()).map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for i in 0..=TRIALS {
        let id = format!("bench-{}-{i}", std::process::id());
        let t0 = Instant::now();
        let out = Command::new(runtime)
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(&id)
            .output()
            .map_err(|e| e.to_string())?;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        if !String::from_utf8_lossy(&out.stdout).contains("hello") {
            return Err(format!("{runtime} run failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        if i > 0 {
            samples.push(ms);
        }
    }
    Ok(samples)
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
