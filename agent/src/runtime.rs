//! The WebAssembly runtime: one wasmtime engine per agent (built from the node's [`EngineProfile`]), loaded
//! modules cached by sha256, and one async task per running instance.
//!
//! Sandbox, deny by default: an instance gets only its declared args and env, stdout/stderr as log sinks,
//! clocks and random; no sockets, and no filesystem unless it declares volumes (each preopened as `/{name}`,
//! with a quota: see [`crate::volume`], enforced by the WASI shim in [`crate::quota`]). Limits that hold against
//! hostile guests:
//! - memory: a store limiter caps linear memories and tables; a refused growth is remembered, so the exit says
//!   `memory limit exceeded`;
//! - CPU: epoch interruption ([`EPOCH_TICK`]); at every tick the guest yields to the executor, so no guest
//!   monopolises a worker thread, and one with a CPU limit is paused for as long as its
//!   [`CpuThrottle`](crate::limits::CpuThrottle) says, measured on its own thread CPU time;
//! - time: a run past the spec's timeout is dropped (its store with it) and reported;
//! - output: rate-limited per instance in [`crate::logsink`].
//!
//! Modules arrive precompiled for this engine's profile (artifacts from the controller) and load without a
//! compiler; with the `cranelift` feature the agent can also compile WebAssembly itself (standalone mode).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_proto::{EngineProfile, InstanceSpec, LogLine, LogStream, Sha256};
use tokio::sync::mpsc;
use wasmtime::{Engine, Linker, Module, Store, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::limits::{CpuMeter, CpuThrottle, MemoryLimiter, Metered};
use crate::logsink::{LogSink, OutputRate};
use crate::quota::QuotaHost;
use crate::supervisor::Exit;
use crate::volume::Volumes;

/// How often the epoch advances: the granularity of yielding, of CPU limits and of stopping a busy guest.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot compile the module: {0}")]
    Compile(String),
    #[error("{0}")]
    Artifact(#[from] edge_engine::ArtifactError),
    #[error(
        "this agent has no compiler (built runtime-only): it runs modules its controller precompiled; \
         for local .wasm files build it with `--features cranelift`"
    )]
    NoCompiler,
}

/// Store data of one instance.
struct Ctx {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
    volumes: Option<Volumes>,
    cpu: Option<CpuLimit>,
}

impl QuotaHost for Ctx {
    fn wasi(&mut self) -> &mut WasiP1Ctx {
        &mut self.wasi
    }

    fn volumes(&mut self) -> Option<&mut Volumes> {
        self.volumes.as_mut()
    }
}

struct CpuLimit {
    throttle: CpuThrottle,
    meter: Arc<CpuMeter>,
    cpu_anchor: Duration,
    wall_anchor: Instant,
}

/// Shared by every instance of one agent. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    profile: EngineProfile,
    /// WASI preview 1.
    linker: Arc<Linker<Ctx>>,
    /// WASI preview 1 with the calls that grow files wrapped by volume quotas.
    volume_linker: Arc<Linker<Ctx>>,
    /// Loaded modules by content hash; loading (or compiling) is the slow part of a start.
    modules: Arc<Mutex<HashMap<Sha256, Module>>>,
    volumes_root: PathBuf,
    stop_ticker: Arc<AtomicBool>,
}

impl Runtime {
    /// An engine for `profile`; volumes live under `data_dir/volumes`.
    pub fn new(profile: EngineProfile, data_dir: &Path) -> Result<Runtime, RuntimeError> {
        let engine = Engine::new(&edge_engine::config(&profile)).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |c: &mut Ctx| &mut c.wasi)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let mut volume_linker = linker.clone();
        crate::quota::add_to_linker(&mut volume_linker).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        Ok(Runtime {
            engine,
            profile,
            linker: Arc::new(linker),
            volume_linker: Arc::new(volume_linker),
            modules: Arc::default(),
            volumes_root: data_dir.join("volumes"),
            stop_ticker,
        })
    }

    pub fn profile(&self) -> EngineProfile {
        self.profile
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Where the volumes of `instance` live (removed when it leaves the node).
    pub fn instance_volumes(&self, instance: &str) -> PathBuf {
        crate::volume::instance_dir(&self.volumes_root, instance)
    }

    /// Stops the epoch thread. Instances still running afterwards no longer yield.
    pub fn shutdown(&self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }

    /// Drops a loaded module (its bytes were evicted from the store); running instances keep their copy.
    pub fn forget(&self, sha: &Sha256) {
        self.modules.lock().unwrap_or_else(|e| e.into_inner()).remove(sha);
    }

    pub fn is_loaded(&self, sha: &Sha256) -> bool {
        self.modules.lock().unwrap_or_else(|e| e.into_inner()).contains_key(sha)
    }

    /// Loads `bytes` (off the async threads) unless the module with this hash is already loaded: an artifact
    /// precompiled for this engine, or WebAssembly when this agent has a compiler.
    pub async fn load(&self, sha: Sha256, bytes: Arc<Vec<u8>>) -> Result<Module, RuntimeError> {
        if let Some(m) = self.modules.lock().unwrap_or_else(|e| e.into_inner()).get(&sha) {
            return Ok(m.clone());
        }
        let engine = self.engine.clone();
        let module = tokio::task::spawn_blocking(move || load_bytes(&engine, &bytes))
            .await
            .map_err(|e| RuntimeError::Compile(e.to_string()))??;
        self.modules.lock().unwrap_or_else(|e| e.into_inner()).insert(sha, module.clone());
        Ok(module)
    }

    /// Runs one instance to its end. `started` is called once the guest's `_start` is about to run.
    pub async fn run(
        &self,
        module: &Module,
        spec: &InstanceSpec,
        logs: mpsc::Sender<LogLine>,
        dropped_lines: Arc<AtomicU64>,
        started: impl FnOnce(),
    ) -> Exit {
        self.run_measured(module, spec, logs, dropped_lines, started).await.0
    }

    /// [`Runtime::run`], also returning the CPU time the instance consumed.
    pub async fn run_measured(
        &self,
        module: &Module,
        spec: &InstanceSpec,
        logs: mpsc::Sender<LogLine>,
        dropped_lines: Arc<AtomicU64>,
        started: impl FnOnce(),
    ) -> (Exit, Duration) {
        let rate = Arc::new(Mutex::new(OutputRate::new(Instant::now())));
        let stdout = LogSink::new(&spec.id, LogStream::Stdout, logs.clone(), dropped_lines.clone(), rate.clone());
        let stderr = LogSink::new(&spec.id, LogStream::Stderr, logs, dropped_lines, rate);
        let meter = Arc::new(CpuMeter::default());
        let exit = self.run_inner(module, spec, &stdout, &stderr, meter.clone(), started).await;
        stdout.finish();
        stderr.finish();
        (exit, meter.used())
    }

    async fn run_inner(
        &self,
        module: &Module,
        spec: &InstanceSpec,
        stdout: &LogSink,
        stderr: &LogSink,
        meter: Arc<CpuMeter>,
        started: impl FnOnce(),
    ) -> Exit {
        let mut argv = vec![spec.workload.clone()];
        argv.extend(spec.args.iter().cloned());
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&argv).envs(&spec.env).stdout(stdout.clone()).stderr(stderr.clone());
        let volumes = if spec.volumes.is_empty() {
            None
        } else {
            let (volumes, dirs) = match Volumes::prepare(&self.volumes_root, &spec.id, &spec.volumes) {
                Ok(v) => v,
                Err(e) => return Exit::Failed(format!("cannot create the instance's volumes: {e}")),
            };
            for (v, dir) in spec.volumes.iter().zip(dirs) {
                if let Err(e) = wasi.preopened_dir(&dir, format!("/{}", v.name), FsPerms::ReadWrite) {
                    return Exit::Failed(format!("cannot open volume {}: {e}", v.name));
                }
            }
            Some(volumes)
        };
        let memory = usize::try_from(spec.memory_limit_bytes).unwrap_or(usize::MAX);
        let cpu = (spec.cpu_limit_millis > 0).then(|| CpuLimit {
            throttle: CpuThrottle::new(spec.cpu_limit_millis),
            meter: meter.clone(),
            cpu_anchor: Duration::ZERO,
            wall_anchor: Instant::now(),
        });
        let has_volumes = volumes.is_some();
        let ctx = Ctx { wasi: wasi.build_p1(), limiter: MemoryLimiter::new(memory), volumes, cpu };
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|c| &mut c.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(on_epoch);
        let linker = if has_volumes { &self.volume_linker } else { &self.linker };

        let run = async {
            let instance = match linker.instantiate_async(&mut store, module).await {
                Ok(i) => i,
                Err(e) => return (Err(e), true),
            };
            let entry = match instance.get_typed_func::<(), ()>(&mut store, "_start") {
                Ok(f) => f,
                Err(e) => return (Err(e.context("no usable _start export")), true),
            };
            started();
            (entry.call_async(&mut store, ()).await, false)
        };
        let metered = Metered { inner: Box::pin(run), meter };
        let outcome = match spec.timeout_ms {
            0 => Some(metered.await),
            ms => tokio::time::timeout(Duration::from_millis(ms), metered).await.ok(),
        };
        let memory_hit = store.data().limiter.hit;
        let memory_note = || {
            format!("memory limit exceeded (limit {})", edge_proto::quantity::format_memory(spec.memory_limit_bytes))
        };
        match outcome {
            None => Exit::Trap(format!(
                "deadline exceeded: still running after its timeout of {}",
                format_duration(Duration::from_millis(spec.timeout_ms))
            )),
            Some((Ok(()), _)) => Exit::Code(0),
            Some((Err(e), before_start)) => {
                let code = e.downcast_ref::<I32Exit>().map(|c| c.0);
                match (code, memory_hit, before_start) {
                    (Some(0), _, _) => Exit::Code(0),
                    (Some(c), true, _) => Exit::Trap(format!("{}: exited with code {c}", memory_note())),
                    (Some(c), false, _) => Exit::Code(c),
                    (None, true, true) => Exit::Failed(format!("{}: {}", memory_note(), first_line(&format!("{e:#}")))),
                    (None, true, false) => Exit::Trap(format!("{}: {}", memory_note(), describe(&e))),
                    (None, false, true) => Exit::Failed(first_line(&format!("{e:#}")).to_string()),
                    (None, false, false) => Exit::Trap(describe(&e)),
                }
            }
        }
    }
}

/// WebAssembly (`\0asm`) is compiled, when this agent has a compiler; anything else must be an artifact for
/// this engine (a corrupt one is refused by [`edge_engine::load_artifact`], never compiled).
fn load_bytes(engine: &Engine, bytes: &[u8]) -> Result<Module, RuntimeError> {
    if !bytes.starts_with(b"\0asm") {
        return Ok(edge_engine::load_artifact(engine, bytes)?);
    }
    #[cfg(feature = "cranelift")]
    return Ok(edge_engine::compile_local(engine, bytes)?);
    #[cfg(not(feature = "cranelift"))]
    Err(RuntimeError::NoCompiler)
}

/// At every epoch tick: yield to the executor, after the pause the CPU limit asks for, if any.
fn on_epoch(mut cx: wasmtime::StoreContextMut<'_, Ctx>) -> wasmtime::Result<UpdateDeadline> {
    if let Some(limit) = cx.data_mut().cpu.as_mut() {
        let now = Instant::now();
        let used = limit.meter.used();
        let pause = limit.throttle.account(used.saturating_sub(limit.cpu_anchor), now - limit.wall_anchor);
        limit.cpu_anchor = used;
        limit.wall_anchor = now + pause;
        if !pause.is_zero() {
            return Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(pause))));
        }
    }
    Ok(UpdateDeadline::Yield(1))
}

/// One line for a trap: wasmtime's trap code (`wasm trap: integer divide by zero`, `call stack exhausted`, …).
fn describe(e: &wasmtime::Error) -> String {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return format!("trapped: {trap}");
    }
    // The outer context is a backtrace header; the root cause is the reason.
    first_line(&e.root_cause().to_string()).to_string()
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_proto::VolumeSpec;

    fn spec(memory: u64) -> InstanceSpec {
        InstanceSpec {
            id: "i-1".into(),
            namespace: "default".into(),
            workload: "w".into(),
            module: [0; 32],
            module_size: 0,
            args: vec![],
            env: vec![("NAME".into(), "edge".into())],
            cpu_millis: 100,
            memory_limit_bytes: memory,
            restart: Default::default(),
            cpu_limit_millis: 0,
            timeout_ms: 0,
            volumes: vec![],
        }
    }

    struct Rig {
        rt: Runtime,
        _dir: tempfile::TempDir,
    }

    fn rig() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let profile = edge_engine::profile_for(edge_engine::host_target(), 1 << 30);
        Rig { rt: Runtime::new(profile, dir.path()).unwrap(), _dir: dir }
    }

    /// Precompiles like the controller does, then loads the artifact like an agent.
    async fn load(rt: &Runtime, wasm: &[u8]) -> Module {
        let artifact = edge_engine::Compiler::new().precompile(&rt.profile(), wasm).unwrap();
        let sha: Sha256 = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&artifact)).into();
        rt.load(sha, Arc::new(artifact)).await.unwrap()
    }

    async fn run_spec(rt: &Runtime, wasm: &[u8], spec: &InstanceSpec) -> (Exit, Vec<String>, bool) {
        let module = load(rt, wasm).await;
        let (tx, mut rx) = mpsc::channel(100);
        let mut started = false;
        let exit = rt.run(&module, spec, tx, Arc::default(), || started = true).await;
        let mut lines = Vec::new();
        while let Ok(l) = rx.try_recv() {
            lines.push(l.line);
        }
        (exit, lines, started)
    }

    async fn run(rt: &Runtime, wasm: &[u8], memory: u64) -> (Exit, Vec<String>, bool) {
        run_spec(rt, wasm, &spec(memory)).await
    }

    fn wat(text: &str) -> Vec<u8> {
        wat::parse_str(text).unwrap()
    }

    fn example(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/../examples/{name}.wasm", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[tokio::test]
    async fn runs_the_hello_example_with_env_and_captures_stdout() {
        let r = rig();
        let (exit, lines, started) = run(&r.rt, &example("hello"), 32 << 20).await;
        assert!(started);
        assert_eq!(exit, Exit::Code(0));
        assert_eq!(lines, ["Hello, edge!"]);
        r.rt.shutdown();
    }

    #[tokio::test]
    async fn raw_webassembly_needs_a_compiler() {
        let r = rig();
        let err = r.rt.load([9; 32], Arc::new(example("hello"))).await;
        if cfg!(feature = "cranelift") {
            assert!(err.is_ok());
        } else {
            assert!(matches!(err, Err(RuntimeError::NoCompiler)), "{:?}", err.err());
        }
    }

    #[tokio::test]
    async fn proc_exit_codes_and_traps_are_reported_with_their_reason() {
        let r = rig();
        let exit3 = wat(r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                 (memory (export "memory") 1)
                 (func (export "_start") (call $exit (i32.const 3))))"#);
        assert_eq!(run(&r.rt, &exit3, 1 << 20).await.0, Exit::Code(3));
        let cases = [
            (r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#, "unreachable"),
            (
                r#"(module (memory (export "memory") 1)
                     (func (export "_start") (drop (i32.div_s (i32.const 1) (i32.const 0)))))"#,
                "divide by zero",
            ),
            (
                r#"(module (memory (export "memory") 1)
                     (func $f (export "_start") (call $f)))"#,
                "call stack exhausted",
            ),
        ];
        for (text, want) in cases {
            match run(&r.rt, &wat(text), 1 << 20).await.0 {
                Exit::Trap(reason) => assert!(reason.contains(want), "{reason} should name {want}"),
                other => panic!("expected a trap naming {want}, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn memory_beyond_the_limit_ends_as_memory_limit_exceeded() {
        let r = rig();
        // Grows memory by 64 pages (4 MiB) with a 1 MiB limit: memory.grow returns -1, and the guest traps on it.
        let bomb = wat(r#"(module (memory (export "memory") 1)
                 (func (export "_start")
                   (if (i32.lt_s (memory.grow (i32.const 64)) (i32.const 0)) (then unreachable))))"#);
        match run(&r.rt, &bomb, 1 << 20).await.0 {
            Exit::Trap(reason) => assert!(reason.starts_with("memory limit exceeded (limit 1Mi)"), "{reason}"),
            other => panic!("expected a trap, got {other:?}"),
        }
        // A module whose initial memory exceeds the limit cannot even be instantiated.
        let big = wat(r#"(module (memory (export "memory") 100) (func (export "_start")))"#);
        match run(&r.rt, &big, 1 << 20).await.0 {
            Exit::Failed(reason) => assert!(reason.starts_with("memory limit exceeded"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // The Rust example that allocates until it fails: std aborts, and the reason says why.
        let (exit, lines, _) = run(&r.rt, &example("membomb"), 16 << 20).await;
        match exit {
            Exit::Trap(reason) => assert!(reason.starts_with("memory limit exceeded (limit 16Mi)"), "{reason}"),
            other => panic!("expected a trap, got {other:?}"),
        }
        assert!(lines.iter().any(|l| l.starts_with("allocated")), "{lines:?}");
    }

    #[tokio::test]
    async fn a_stdout_flood_is_rate_limited_and_counted() {
        let r = rig();
        // Writes "flood\n" 100,000 times.
        let flood = wat(r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 100) "flood\n")
            (func (export "_start") (local $i i32)
              (i32.store (i32.const 200) (i32.const 100))
              (i32.store (i32.const 204) (i32.const 6))
              (loop $more
                (drop (call $write (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 300)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $more (i32.lt_u (local.get $i) (i32.const 100000))))))"#);
        let module = load(&r.rt, &flood).await;
        let (tx, mut rx) = mpsc::channel(100_000);
        let dropped = Arc::new(AtomicU64::new(0));
        let exit = r.rt.run(&module, &spec(1 << 20), tx, dropped.clone(), || {}).await;
        assert_eq!(exit, Exit::Code(0));
        let (mut lines, mut notes) = (0u64, 0u64);
        while let Ok(l) = rx.try_recv() {
            if l.line == "flood" {
                lines += 1;
            } else {
                assert!(l.line.contains("lines dropped by the output rate limit"), "{}", l.line);
                notes += 1;
            }
        }
        // The burst (200) plus what refilled while it ran; the rest counted as dropped and announced.
        assert!(lines < 1_000, "{lines} lines got through");
        assert!(notes > 0);
        assert_eq!(lines + dropped.load(Ordering::Relaxed), 100_000);
    }

    #[tokio::test]
    async fn a_timeout_stops_a_run_that_never_ends() {
        let r = rig();
        let forever = wat(r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#);
        let mut s = spec(1 << 20);
        s.timeout_ms = 200;
        let t0 = Instant::now();
        match run_spec(&r.rt, &forever, &s).await.0 {
            Exit::Trap(reason) => assert!(reason.contains("timeout of 200ms"), "{reason}"),
            other => panic!("expected a deadline trap, got {other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cpu_limit_holds_a_busy_loop_near_its_share() {
        let r = rig();
        let forever = wat(r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#);
        let module = load(&r.rt, &forever).await;
        let mut s = spec(1 << 20);
        s.cpu_limit_millis = 200;
        s.timeout_ms = 2000;
        let (tx, _rx) = mpsc::channel(10);
        let t0 = Instant::now();
        let (exit, cpu) = r.rt.run_measured(&module, &s, tx, Arc::default(), || {}).await;
        let share = cpu.as_secs_f64() / t0.elapsed().as_secs_f64();
        assert!(matches!(exit, Exit::Trap(_)), "{exit:?}");
        // Unthrottled it would be ~100 %.
        assert!(share < 0.25, "a 200m guest used {:.0} % of a core", share * 100.0);
        assert!(share > 0.10, "a 200m guest used only {:.0} % of a core", share * 100.0);
    }

    #[tokio::test]
    async fn volumes_are_preopened_with_a_quota_and_nothing_else_is_visible() {
        let r = rig();
        // Writes 1000 bytes per call to /data/f until a write fails; exits with the number of writes that
        // succeeded. Then tries to open ../escape and /etc/passwd and exits 100 + the errno if either works.
        let guest = wat(r#"(module
            (import "wasi_snapshot_preview1" "path_open"
              (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (data (i32.const 100) "f")
            (data (i32.const 110) "../escape")
            (data (i32.const 130) "/etc/passwd")
            (func (export "_start") (local $fd i32) (local $n i32)
              ;; path_open(3, 0, "f", 1, O_CREAT, rights all, all, 0, &fd@200)
              (local.set $n (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 1)
                    (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 200)))
              (if (local.get $n) (then (call $exit (i32.add (i32.const 60) (local.get $n)))))
              (local.set $fd (i32.load (i32.const 200)))
              ;; iovec at 300: buf 1000 (1000 bytes of zeros), len 1000
              (i32.store (i32.const 300) (i32.const 1000))
              (i32.store (i32.const 304) (i32.const 1000))
              (block $full (loop $more
                (br_if $full (call $write (local.get $fd) (i32.const 300) (i32.const 1) (i32.const 400)))
                (local.set $n (i32.add (local.get $n) (i32.const 1)))
                (br_if $full (i32.ge_u (local.get $n) (i32.const 100)))
                (br $more)))
              (if (i32.eqz (call $open (i32.const 3) (i32.const 0) (i32.const 110) (i32.const 9) (i32.const 1)
                    (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 200)))
                (then (call $exit (i32.const 101))))
              (if (i32.eqz (call $open (i32.const 3) (i32.const 0) (i32.const 130) (i32.const 11) (i32.const 0)
                    (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 200)))
                (then (call $exit (i32.const 102))))
              (call $exit (local.get $n))))"#);
        let mut s = spec(1 << 20);
        s.volumes = vec![VolumeSpec { name: "data".into(), size_bytes: 10_500 }];
        // 10 writes of 1000 fit in 10,500 bytes; the 11th is refused with ENOSPC.
        assert_eq!(run_spec(&r.rt, &guest, &s).await.0, Exit::Code(10));
        let file = r.rt.instance_volumes("i-1").join("data").join("f");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 10_000);
        // Without a volume the same guest has no descriptor 3 at all: EBADF (8).
        assert_eq!(run(&r.rt, &guest, 1 << 20).await.0, Exit::Code(68));
    }

    #[tokio::test]
    async fn a_symlink_out_of_the_volume_is_not_followed() {
        let r = rig();
        let vol = r.rt.instance_volumes("i-1").join("data");
        std::fs::create_dir_all(&vol).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", vol.join("link")).unwrap();
        let guest = wat(r#"(module
            (import "wasi_snapshot_preview1" "path_open"
              (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (data (i32.const 100) "link")
            (func (export "_start")
              ;; follow symlinks (dirflags 1): opening must still fail
              (call $exit (call $open (i32.const 3) (i32.const 1) (i32.const 100) (i32.const 4) (i32.const 0)
                    (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 200)))))"#);
        let mut s = spec(1 << 20);
        s.volumes = vec![VolumeSpec { name: "data".into(), size_bytes: 1 << 20 }];
        match run_spec(&r.rt, &guest, &s).await.0 {
            Exit::Code(errno) => assert_ne!(errno, 0, "the guest opened a file outside its volume"),
            other => panic!("{other:?}"),
        }
    }
}
