//! `api-latency`: the controller's API latency under fleet load. `GET /v1/workloads` (100 workloads × 3 replicas),
//! `GET` of one workload (a cheap call: mostly the wait for the cluster's owner), and a deploy (a `PUT` of an
//! existing workload with a new env value: a new revision, a reconcile pass and a commit), p50/p99 each, with no
//! fleet traffic and while simulated nodes heartbeat through Mosquitto. Prints the table recorded in
//! BENCHMARKS.md.
//!
//! ```text
//! apt-get install -y mosquitto
//! cargo build --release -p edge-tests --bin api-latency && target/release/api-latency
//!     [--nodes 10000] [--rate 40000] [--samples 1000] [--workloads 100] [--replicas 3] [--data DIR] [--quick]
//! ```
//! `--quick` (a smoke run, about 15 s): 1,000 nodes at the same rate, 200 samples. `--data /dev/shm` puts the
//! controller's store on tmpfs, which takes the fsync out of the deploy's time.
//!
//! Set-up. A Mosquitto child process with `set_tcp_nodelay true` (the recommended external-broker setting, see
//! *Deploy → first log line*); the controller in this process (`edge_controller::start`) as its client, on a
//! runtime of its own (2 workers) plus its owner thread; the simulator ([`edge_tests::sim`]) on another runtime;
//! the measuring client alone on the main thread, one request at a time over one keep-alive connection, timed
//! from sending to the last byte of the body. Nothing is pinned: the 2 cores are shared by all of them and
//! Mosquitto. The node timeout is an hour so that nodes stay Ready, and their instances Running, while the
//! simulator is stopped: both phases see the same cluster.
//!
//! Order: the fleet joins, the workloads are deployed and reported Running; the simulator stops (the owner's
//! queue drains) and the reads are measured without load; the simulator starts again (every node says hello
//! again; measuring starts once heartbeats are handled at the offered rate) and reads then deploys are measured
//! under load, each series noting the heartbeat rate the controller kept up with; the simulator stops and deploys
//! are measured without load.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use edge_controller::{BrokerMode, ControllerConfig};
use edge_tests::measure::{loadavg, pct, timed_get};
use edge_tests::sim::{self, SimConfig, SimStats};
use edge_tests::{example, Api, Mosquitto};
use serde_json::{json, Value};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The issue's goals for p99.
const READ_GOAL: Duration = Duration::from_millis(20);
const WRITE_GOAL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
struct Options {
    nodes: usize,
    /// Heartbeats per second offered by the whole simulated fleet.
    rate: u64,
    samples: usize,
    workloads: usize,
    replicas: u32,
    /// Where the controller's data dir goes (a temp dir inside it); `/dev/shm` takes the fsync out.
    data: Option<PathBuf>,
}

impl Options {
    fn from_args() -> anyhow::Result<Options> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = Options {
            nodes: if quick { 1_000 } else { 10_000 },
            rate: 40_000,
            samples: if quick { 200 } else { 1_000 },
            workloads: 100,
            replicas: 3,
            data: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().with_context(|| format!("{a} needs a value"));
            match a.as_str() {
                "--quick" => {}
                "--nodes" => o.nodes = value()?.parse().context("--nodes")?,
                "--rate" => o.rate = value()?.parse().context("--rate")?,
                "--samples" => o.samples = value()?.parse().context("--samples")?,
                "--workloads" => o.workloads = value()?.parse().context("--workloads")?,
                "--replicas" => o.replicas = value()?.parse().context("--replicas")?,
                "--data" => o.data = Some(PathBuf::from(value()?)),
                other => bail!("unknown argument {other:?} (see the module doc of tests/src/bin/api-latency.rs)"),
            }
        }
        if o.nodes == 0 || o.rate == 0 || o.samples == 0 || o.workloads == 0 {
            bail!("--nodes, --rate, --samples and --workloads must be positive");
        }
        Ok(o)
    }

    /// Each node heartbeats every `nodes / rate` seconds, so the fleet offers `rate` per second.
    fn heartbeat(&self) -> Duration {
        Duration::from_secs_f64(self.nodes as f64 / self.rate as f64)
    }
}

fn main() -> anyhow::Result<()> {
    let opts = Options::from_args()?;
    let controller_rt = runtime("controller")?;
    let sim_rt = runtime("sim")?;
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let broker = Mosquitto::start_with("set_tcp_nodelay true");
    let dir = match &opts.data {
        Some(parent) => tempfile::tempdir_in(parent)?,
        None => tempfile::tempdir()?,
    };
    let mut cfg = ControllerConfig::new(
        dir.path().join("controller"),
        ([127, 0, 0, 1], 0).into(),
        BrokerMode::External { host: "127.0.0.1".into(), port: broker.port },
    );
    // Nodes stay Ready (and their instances Running) while the simulator is stopped between phases.
    cfg.node_timeout = Duration::from_secs(3600);
    cfg.reschedule_after = Duration::from_secs(3600);
    let controller = controller_rt.block_on(edge_controller::start(cfg)).context("controller starts")?;
    println!(
        "api-latency: {} simulated nodes offering {} heartbeats/s through Mosquitto (set_tcp_nodelay true), {} \
         workloads × {} replicas, {} samples per series, controller data in {}; load average at start {}",
        opts.nodes,
        opts.rate,
        opts.workloads,
        opts.replicas,
        opts.samples,
        dir.path().display(),
        loadavg()
    );
    let result = client_rt.block_on(bench(&opts, &controller, sim_rt.handle(), broker.port));
    controller_rt.block_on(controller.shutdown());
    let report = result?;
    report.print(&opts);
    Ok(())
}

fn runtime(name: &str) -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name(name).enable_all().build()
}

/// The figures of one run.
struct Report {
    /// (what, sorted samples), in the order printed.
    rows: Vec<(String, Vec<Duration>)>,
    /// What `GET /v1/workloads` returned: instances and bytes, without load and under load.
    listed: [(usize, usize); 2],
    /// Per loaded series: its name, heartbeats per second offered by the simulator and handled by the controller.
    load: Vec<(&'static str, f64, f64)>,
    /// Heartbeats sent during the loaded series, and handled by the controller once its queue drained.
    loaded_total: (u64, u64),
    join: Duration,
    rejoin: Duration,
    /// p99 of the loaded read and write series.
    loaded_p99: (Duration, Duration),
}

impl Report {
    fn print(&self, opts: &Options) {
        println!(
            "fleet: {} nodes Ready {:.1} s after the simulator started; after its restart, heartbeats handled at \
             the offered rate again within {:.1} s",
            opts.nodes,
            self.join.as_secs_f64(),
            self.rejoin.as_secs_f64()
        );
        println!("{:<72} {:>9} {:>9} {:>9} {:>9}", "request", "p50", "p99", "max", "mean");
        for (what, s) in &self.rows {
            println!(
                "{what:<72} {:>9} {:>9} {:>9} {:>9}",
                ms(pct(s, 0.50)),
                ms(pct(s, 0.99)),
                ms(s[s.len() - 1]),
                ms(s.iter().sum::<Duration>() / s.len() as u32)
            );
        }
        let [(i0, b0), (i1, b1)] = self.listed;
        println!(
            "GET /v1/workloads returned {i0} instances ({} KiB) without load and {i1} ({} KiB) under load",
            b0 / 1024,
            b1 / 1024
        );
        for (series, offered, handled) in &self.load {
            println!(
                "while measuring {series} under load: {offered:.0} heartbeats/s offered by the simulator, \
                 {handled:.0}/s handled by the controller"
            );
        }
        let (sent, handled) = self.loaded_total;
        println!(
            "of the {sent} heartbeats sent during the loaded series the controller handled {handled} once its queue \
             had drained ({:.1} % dropped by the broker)",
            100.0 * sent.saturating_sub(handled) as f64 / sent.max(1) as f64
        );
        let verdict = |d: Duration, goal: Duration| if d <= goal { "met" } else { "MISSED" };
        let (r, w) = self.loaded_p99;
        println!(
            "goals under load: read p99 {} ≤ {}: {}; write p99 {} ≤ {}: {}",
            ms(r),
            ms(READ_GOAL),
            verdict(r, READ_GOAL),
            ms(w),
            ms(WRITE_GOAL),
            verdict(w, WRITE_GOAL)
        );
        println!("load average at the end {}", loadavg());
    }
}

async fn bench(
    opts: &Options,
    controller: &edge_controller::Running,
    sim_rt: &Handle,
    port: u16,
) -> anyhow::Result<Report> {
    let api = Api::of(controller);
    let api_addr = controller.api_addr;
    let base = format!("http://{api_addr}");
    // One client, one keep-alive connection: requests are sequential, each with the admin credential (checking
    // it is part of every request's cost).
    let mut headers = reqwest::header::HeaderMap::new();
    let token = controller.admin_token.clone().unwrap_or_default();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
    edge_tls::install_default_provider();
    let http = reqwest::Client::builder().pool_max_idle_per_host(1).default_headers(headers).build()?;
    let list = format!("{base}/v1/workloads");
    let one = format!("{base}/v1/namespaces/default/workloads/{}", workload(0));

    let sim = Sim::start(sim_rt, port, opts);
    let t = Instant::now();
    wait_stat(&api, "ready_nodes", opts.nodes as u64).await?;
    let join = t.elapsed();
    let module = api.upload(example("ticker.wasm")).await;
    for w in 0..opts.workloads {
        api.deploy_with(&workload(w), &module, opts.replicas, json!({"env": [["BENCH_REV", "0"]]})).await;
    }
    wait_running(&api, opts.workloads * opts.replicas as usize).await?;
    sim.stop().await;
    wait_quiet(&api).await?;

    // Warm-up reads (connection, allocator); not counted. The set-up deploys above warmed the write path, and a
    // warm-up deploy here would start rollouts that change what the reads return.
    for _ in 0..20 {
        timed_get(&http, &list).await?;
        timed_get(&http, &one).await?;
    }
    let mut rows = Vec::new();
    let (list_idle, listed_idle) = reads(&http, &list, opts.samples).await?;
    let (one_idle, _) = reads(&http, &one, opts.samples).await?;

    let sim = Sim::start(sim_rt, port, opts);
    let t = Instant::now();
    wait_steady(&api, opts.rate).await?;
    let rejoin = t.elapsed();
    // Let the rate settle before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut load = Vec::new();
    let mark = Mark::now(&api, &sim).await?;
    let (handled_before, sent_before) = (mark.handled, mark.sent);
    let (list_loaded, listed_loaded) = reads(&http, &list, opts.samples).await?;
    let (one_loaded, _) = reads(&http, &one, opts.samples).await?;
    load.push(mark.rates("the reads", &api, &sim).await?);
    let mut writer = Writer { module, replicas: opts.replicas, workloads: opts.workloads, next: 1 };
    let mark = Mark::now(&api, &sim).await?;
    let writes_loaded = writer.series(&http, &base, opts.samples).await?;
    load.push(mark.rates("the deploys", &api, &sim).await?);
    let sent = sim.sent() - sent_before;
    sim.stop().await;
    wait_quiet(&api).await?;
    // Once the owner's queue has drained: what never arrived was dropped by the broker.
    let loaded_total = (sent, stat(&api, "heartbeats").await? - handled_before);
    let writes_idle = writer.series(&http, &base, opts.samples).await?;

    let under = format!("under {:.0} heartbeats/s offered", opts.rate);
    let loaded_p99 = (pct(&list_loaded, 0.99), pct(&writes_loaded, 0.99));
    rows.push(("GET /v1/workloads, no fleet traffic".to_string(), list_idle));
    rows.push((format!("GET /v1/workloads, {under}"), list_loaded));
    rows.push(("GET one workload (an owner round trip), no fleet traffic".to_string(), one_idle));
    rows.push((format!("GET one workload (an owner round trip), {under}"), one_loaded));
    rows.push(("deploy (PUT, new revision), no fleet traffic".to_string(), writes_idle));
    rows.push((format!("deploy (PUT, new revision), {under}"), writes_loaded));
    Ok(Report { rows, listed: [listed_idle, listed_loaded], load, loaded_total, join, rejoin, loaded_p99 })
}

fn workload(w: usize) -> String {
    format!("w{w:03}")
}

/// Sends deploys round-robin over the workloads, each with a new `BENCH_REV`: a new revision every time.
struct Writer {
    module: String,
    replicas: u32,
    workloads: usize,
    next: u64,
}

impl Writer {
    async fn write(&mut self, http: &reqwest::Client, base: &str) -> anyhow::Result<Duration> {
        let name = workload(self.next as usize % self.workloads);
        let body = json!({
            "module": self.module, "replicas": self.replicas, "cpu_millis": 100, "memory_bytes": 32u64 << 20,
            "env": [["BENCH_REV", self.next.to_string()]],
        });
        self.next += 1;
        let url = format!("{base}/v1/namespaces/default/workloads/{name}");
        let t = Instant::now();
        let resp = http.put(url).json(&body).send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let took = t.elapsed();
        if !status.is_success() {
            bail!("deploy of {name} answered {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(took)
    }

    /// `n` deploys; their times, sorted.
    async fn series(&mut self, http: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            samples.push(self.write(http, base).await?);
        }
        samples.sort();
        Ok(samples)
    }
}

/// `n` GETs of `url`: their times, sorted, and the instances and bytes of the last body.
async fn reads(http: &reqwest::Client, url: &str, n: usize) -> anyhow::Result<(Vec<Duration>, (usize, usize))> {
    let mut samples = Vec::with_capacity(n);
    let mut last = Vec::new();
    for _ in 0..n {
        let (took, body) = timed_get(http, url).await?;
        samples.push(took);
        last = body;
    }
    samples.sort();
    let v: Value = serde_json::from_slice(&last).with_context(|| format!("GET {url} is JSON"))?;
    let count = |w: &Value| w["instances"].as_array().map_or(0, Vec::len);
    let instances = match v.as_array() {
        Some(ws) => ws.iter().map(count).sum(),
        None => count(&v),
    };
    Ok((samples, (instances, last.len())))
}

/// The simulated fleet, on its own runtime; stopping it closes its MQTT connections (no Last Will: the nodes
/// simply fall silent).
struct Sim {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    stats: Arc<SimStats>,
}

impl Sim {
    fn start(rt: &Handle, port: u16, opts: &Options) -> Sim {
        let mut cfg = SimConfig::new("127.0.0.1", port, opts.nodes);
        cfg.heartbeat = opts.heartbeat();
        let stats = Arc::new(SimStats::default());
        let (stop, rx) = watch::channel(false);
        let task = rt.spawn(sim::run(cfg, stats.clone(), rx));
        Sim { stop, task, stats }
    }

    fn sent(&self) -> u64 {
        self.stats.heartbeats_sent.load(Ordering::Relaxed)
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(30), self.task).await.is_err() {
            panic!("the simulator did not stop within 30 s");
        }
    }
}

/// One counter of `GET /v1/stats`.
async fn stat(api: &Api, field: &str) -> anyhow::Result<u64> {
    let stats = api.try_get("/v1/stats").await.context("GET /v1/stats")?;
    stats[field].as_u64().with_context(|| format!("/v1/stats has no {field}"))
}

/// Waits until the stats counter `field` reaches `want`.
async fn wait_stat(api: &Api, field: &str, want: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let now = stat(api, field).await?;
        if now >= want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("/v1/stats {field} is {now} after 300 s, waiting for {want}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the controller handles at least 90 % of `rate` heartbeats per second, over one second: the
/// reconnected fleet's hellos are through. (Mosquitto drops what overflows the controller's queue, hellos
/// included; the controller asks again only nodes it has never heard a hello from, so counting hellos would
/// wait for ever.)
async fn wait_steady(api: &Api, rate: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = stat(api, "heartbeats").await?;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = stat(api, "heartbeats").await?;
        if (now - last) * 10 >= rate * 9 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the controller handles {} heartbeats/s 120 s after the simulator started again", now - last);
        }
        last = now;
    }
}

/// Waits until `n` instances are Running and every rollout is complete.
async fn wait_running(api: &Api, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = api.get("/v1/workloads").await;
        let ws = list.as_array().cloned().unwrap_or_default();
        let running: usize = ws
            .iter()
            .map(|w| w["instances"].as_array().map_or(0, |is| is.iter().filter(|i| i["state"] == "Running").count()))
            .sum();
        let total: usize = ws.iter().map(|w| w["instances"].as_array().map_or(0, Vec::len)).sum();
        if running == n && total == n {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{running} of {n} instances Running ({total} in all) after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Heartbeat counters at the start of a loaded series.
struct Mark {
    handled: u64,
    sent: u64,
    at: Instant,
}

impl Mark {
    async fn now(api: &Api, sim: &Sim) -> anyhow::Result<Mark> {
        Ok(Mark { handled: stat(api, "heartbeats").await?, sent: sim.sent(), at: Instant::now() })
    }

    /// Heartbeats per second offered and handled since the mark.
    async fn rates(self, series: &'static str, api: &Api, sim: &Sim) -> anyhow::Result<(&'static str, f64, f64)> {
        let (handled, sent, secs) = (stat(api, "heartbeats").await?, sim.sent(), self.at.elapsed().as_secs_f64());
        Ok((series, (sent - self.sent) as f64 / secs, (handled - self.handled) as f64 / secs))
    }
}

/// Waits until the controller has handled every heartbeat already sent: its counter stands still for 1 s.
async fn wait_quiet(api: &Api) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = stat(api, "heartbeats").await?;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = stat(api, "heartbeats").await?;
        if now == last {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the controller still handles heartbeats 60 s after the simulator stopped");
        }
        last = now;
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
