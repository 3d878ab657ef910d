//! Benchmark: the agent's WebAssembly runtime on this machine.
//!
//! Run: `cargo build --release --bins && cargo run --release -p edge-tests --bin wasm-runtime`
//!
//! 1. Instance start from a cached precompiled module, from the run decision to the guest's entry point.
//! 2. Memory overhead per idle instance (100 instances sleeping in `poll_oneoff`), beyond guest memory.
//! 3. RSS of a real `edge-agent` process (release) idle and with 10 `ticker` instances.
//! 4. Guest speed of one CPU-bound module under Cranelift (native) and Pulley (interpreter).

use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_agent::runtime::Runtime;
use edge_proto::{EngineProfile, InstanceSpec};
use edge_tests::example;
use edge_tests::proc::{agent_args, binary, ControllerProc, Proc};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let native = edge_engine::profile_for(edge_engine::host_target(), 4 << 30);
    let pulley = edge_engine::profile_for(edge_engine::pulley_target(), 4 << 30);

    // 1. Start latency.
    let rt = Runtime::new(native, dir.path()).expect("runtime");
    let empty = wat(r#"(module (memory (export "memory") 1) (func (export "_start")))"#);
    let module = load(&rt, &empty).await;
    let mut starts = Vec::new();
    for _ in 0..2_000 {
        let (tx, _rx) = mpsc::channel(16);
        let t0 = Instant::now();
        let mut at = Duration::ZERO;
        rt.run(&module, &spec("s"), tx, Arc::default(), || at = t0.elapsed()).await;
        starts.push(at);
    }
    let hello = load(&rt, &example("hello.wasm")).await;
    let mut hello_starts = Vec::new();
    for _ in 0..500 {
        let (tx, _rx) = mpsc::channel(16);
        let t0 = Instant::now();
        let mut at = Duration::ZERO;
        rt.run(&hello, &spec("h"), tx, Arc::default(), || at = t0.elapsed()).await;
        hello_starts.push(at);
    }
    println!("instance start, cached artifact, decision -> _start (2,000 runs, empty module): {}", pct(&mut starts));
    println!(
        "instance start, cached artifact, decision -> _start (500 runs, hello.wasm 68 KB): {}",
        pct(&mut hello_starts)
    );

    // 2. Per-instance overhead: N guests asleep in poll_oneoff (one 64 KiB page of guest memory each).
    let sleeper = wat(r#"(module
            (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (func (export "_start")
              ;; one clock subscription at 0: userdata 0, tag 0 (clock), id 1 (monotonic), timeout 1 h
              (i32.store8 (i32.const 8) (i32.const 0))
              (i32.store (i32.const 16) (i32.const 1))
              (i64.store (i32.const 24) (i64.const 3600000000000))
              (loop $again
                (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))
                (br $again))))"#);
    let sleeper = load(&rt, &sleeper).await;
    const N: usize = 100;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(std::process::id());
    let mut tasks = Vec::new();
    for i in 0..N {
        let (rt, m) = (rt.clone(), sleeper.clone());
        tasks.push(tokio::spawn(async move {
            let (tx, _rx) = mpsc::channel(16);
            rt.run(&m, &spec(&format!("idle-{i}")), tx, Arc::default(), || {}).await
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(std::process::id());
    let per = (after.saturating_sub(before)) as f64 / N as f64;
    println!(
        "idle instances: {N} add {} KiB RSS = {per:.0} KiB each, of which at most 64 KiB is guest memory \
         (one page): overhead <= {:.0} KiB per instance",
        after.saturating_sub(before),
        (per - 64.0).max(0.0)
    );
    for t in tasks {
        t.abort();
    }

    // 4. Guest speed: Cranelift against Pulley on the same CPU-bound module.
    let busy = wat(r#"(module (memory (export "memory") 1)
            (func (export "_start") (local $x i64) (local $i i32)
              (local.set $x (i64.const 88172645463325252))
              (loop $l
                (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
                (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
                (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $l (i32.lt_u (local.get $i) (i32.const 50000000))))
              (i64.store (i32.const 0) (local.get $x))))"#);
    let mut times = Vec::new();
    for profile in [native, pulley] {
        let rt = Runtime::new(profile, dir.path()).expect("runtime");
        let m = load(&rt, &busy).await;
        let (tx, _rx) = mpsc::channel(16);
        let t0 = Instant::now();
        rt.run(&m, &spec("busy"), tx, Arc::default(), || {}).await;
        times.push(t0.elapsed());
        rt.shutdown();
    }
    println!(
        "guest speed, 50M xorshift steps: Cranelift ({}) {:.2} s, Pulley ({}) {:.2} s: Pulley {:.1}x slower",
        native.target,
        times[0].as_secs_f64(),
        pulley.target,
        times[1].as_secs_f64(),
        times[1].as_secs_f64() / times[0].as_secs_f64()
    );

    // 3. A real agent process.
    let c = ControllerProc::start("controller", &dir.path().join("c"), None, &[], dir.path());
    let api = c.client();
    let (controller, mqtt_port) = (c.proc, c.mqtt.port());
    let mut agent = Proc::spawn(
        "agent",
        &binary("edge-agent"),
        &agent_args("rss", mqtt_port, &dir.path().join("a"), &[]),
        dir.path(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.try_get("/v1/nodes").await.is_none_or(|n| n[0]["status"] != "Ready") {
        assert!(
            Instant::now() < deadline,
            "the agent is not Ready after 30 s\ncontroller:\n{}\nagent:\n{}",
            controller.output(),
            agent.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = rss_kib(agent.pid());
    let sha = api.upload(example("ticker.wasm")).await;
    api.deploy_with("tick", &sha, 10, serde_json::json!({"cpu_millis": 50, "memory_bytes": 16u64 << 20})).await;
    api.wait_running("tick", 10).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let busy_rss = rss_kib(agent.pid());
    println!(
        "edge-agent RSS: idle {:.1} MiB; with 10 ticker instances {:.1} MiB",
        idle as f64 / 1024.0,
        busy_rss as f64 / 1024.0
    );
    agent.kill9();
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("wat")
}

/// Precompiles like the controller, then loads the artifact like an agent (and keeps it cached).
async fn load(rt: &Runtime, wasm: &[u8]) -> wasmtime::Module {
    let profile: EngineProfile = rt.profile();
    let artifact = edge_engine::Compiler::new().precompile(&profile, wasm).expect("precompile");
    let sha: [u8; 32] = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&artifact)).into();
    rt.load(sha, Arc::new(artifact)).await.expect("load")
}

fn spec(id: &str) -> InstanceSpec {
    InstanceSpec {
        id: id.into(),
        namespace: "default".into(),
        workload: "bench".into(),
        module: [0; 32],
        module_size: 0,
        args: vec![],
        env: vec![],
        cpu_millis: 10,
        memory_limit_bytes: 64 << 20,
        restart: Default::default(),
        cpu_limit_millis: 0,
        timeout_ms: 0,
        volumes: vec![],
    }
}

fn pct(v: &mut [Duration]) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    format!("p50 {:.0} µs, p99 {:.0} µs, min {:.0} µs", at(0.5), at(0.99), at(0.0))
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
