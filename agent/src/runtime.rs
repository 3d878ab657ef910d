//! The WebAssembly runtime: one wasmtime engine per agent, compiled modules cached by sha256, and one async
//! task per running instance.
//!
//! Guests run on the tokio runtime with epoch interruption: a background thread advances the epoch every
//! [`EPOCH_TICK`], and each store yields to the executor at every tick, so a busy guest never monopolises a
//! worker thread and stopping an instance (aborting its task, which drops its store) takes effect promptly.
//! Each instance gets only its declared args and env, stdout/stderr as log sinks, no files and no sockets, and
//! a store limiter capping its linear memories at the workload's memory limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_proto::{InstanceSpec, LogLine, LogStream, Sha256};
use tokio::sync::mpsc;
use wasmtime::{Config, Engine, Linker, Module, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::logsink::LogSink;
use crate::supervisor::Exit;

/// How often the epoch advances: the granularity of yielding and of stopping a busy guest.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot compile the module: {0}")]
    Compile(String),
}

/// Store data of one instance.
struct Ctx {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
}

/// Shared by every instance of one agent. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<Ctx>>,
    /// Compiled modules by content hash. Compiling is the slow part of a start; a module compiles once.
    modules: Arc<Mutex<HashMap<Sha256, Module>>>,
    stop_ticker: Arc<AtomicBool>,
}

impl Runtime {
    pub fn new() -> Result<Runtime, RuntimeError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |c: &mut Ctx| &mut c.wasi)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
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
        Ok(Runtime { engine, linker: Arc::new(linker), modules: Arc::default(), stop_ticker })
    }

    /// Stops the epoch thread. Instances still running afterwards no longer yield.
    pub fn shutdown(&self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }

    /// Drops a compiled module (its bytes were evicted from the store); running instances keep their copy.
    pub fn forget(&self, sha: &Sha256) {
        self.modules.lock().unwrap_or_else(|e| e.into_inner()).remove(sha);
    }

    pub fn is_compiled(&self, sha: &Sha256) -> bool {
        self.modules.lock().unwrap_or_else(|e| e.into_inner()).contains_key(sha)
    }

    /// Compiles `bytes` (off the async threads) unless a module with this hash is already compiled.
    pub async fn compile(&self, sha: Sha256, bytes: Arc<Vec<u8>>) -> Result<Module, RuntimeError> {
        if let Some(m) = self.modules.lock().unwrap_or_else(|e| e.into_inner()).get(&sha) {
            return Ok(m.clone());
        }
        let engine = self.engine.clone();
        let module = tokio::task::spawn_blocking(move || Module::new(&engine, &bytes[..]))
            .await
            .map_err(|e| RuntimeError::Compile(e.to_string()))?
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))?;
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
        let stdout = LogSink::new(&spec.id, LogStream::Stdout, logs.clone(), dropped_lines.clone());
        let stderr = LogSink::new(&spec.id, LogStream::Stderr, logs, dropped_lines);
        let mut argv = vec![spec.workload.clone()];
        argv.extend(spec.args.iter().cloned());
        let wasi =
            WasiCtxBuilder::new().args(&argv).envs(&spec.env).stdout(stdout.clone()).stderr(stderr.clone()).build_p1();
        let memory = usize::try_from(spec.memory_limit_bytes).unwrap_or(usize::MAX);
        let limits = StoreLimitsBuilder::new().memory_size(memory).table_elements(1_000_000).instances(1).build();
        let mut store = Store::new(&self.engine, Ctx { wasi, limits });
        store.limiter(|c| &mut c.limits);
        store.epoch_deadline_async_yield_and_update(1);

        let exit = async {
            let instance = match self.linker.instantiate_async(&mut store, module).await {
                Ok(i) => i,
                Err(e) => return Exit::Failed(describe(&e, memory)),
            };
            let entry = match instance.get_typed_func::<(), ()>(&mut store, "_start") {
                Ok(f) => f,
                Err(e) => return Exit::Failed(format!("no usable _start export: {e}")),
            };
            started();
            match entry.call_async(&mut store, ()).await {
                Ok(()) => Exit::Code(0),
                Err(e) => match e.downcast_ref::<I32Exit>() {
                    Some(code) => Exit::Code(code.0),
                    None => Exit::Trap(describe(&e, memory)),
                },
            }
        }
        .await;
        stdout.finish();
        stderr.finish();
        exit
    }
}

/// One line for a trap or instantiation error, naming the memory limit when that is what was hit.
fn describe(e: &wasmtime::Error, memory_limit: usize) -> String {
    let text = format!("{e:#}");
    if text.contains("memory") && (text.contains("limit") || text.contains("grow") || text.contains("minimum")) {
        return format!("memory limit exceeded ({} bytes): {}", memory_limit, first_line(&text));
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return format!("trapped: {trap}");
    }
    first_line(&text).to_string()
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    async fn run(rt: &Runtime, wasm: Vec<u8>, memory: u64) -> (Exit, Vec<String>, bool) {
        let module = rt.compile([7; 32], Arc::new(wasm)).await.unwrap();
        let (tx, mut rx) = mpsc::channel(100);
        let mut started = false;
        let exit = rt.run(&module, &spec(memory), tx, Arc::default(), || started = true).await;
        let mut lines = Vec::new();
        while let Ok(l) = rx.try_recv() {
            lines.push(l.line);
        }
        (exit, lines, started)
    }

    #[tokio::test]
    async fn runs_the_hello_example_with_env_and_captures_stdout() {
        let rt = Runtime::new().unwrap();
        let wasm = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello.wasm")).unwrap();
        let (exit, lines, started) = run(&rt, wasm, 32 << 20).await;
        assert!(started);
        assert_eq!(exit, Exit::Code(0));
        assert_eq!(lines, ["Hello, edge!"]);
        rt.shutdown();
    }

    #[tokio::test]
    async fn proc_exit_codes_and_traps_are_reported() {
        let rt = Runtime::new().unwrap();
        let exit3 = wat::parse_str(
            r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                 (memory (export "memory") 1)
                 (func (export "_start") (call $exit (i32.const 3))))"#,
        )
        .unwrap();
        assert_eq!(run(&rt, exit3, 1 << 20).await.0, Exit::Code(3));
        let rt = Runtime::new().unwrap();
        let trap =
            wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#).unwrap();
        match run(&rt, trap, 1 << 20).await.0 {
            Exit::Trap(reason) => assert!(reason.contains("unreachable"), "{reason}"),
            other => panic!("expected a trap, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn memory_beyond_the_limit_is_refused_to_the_guest() {
        // Grows memory by 64 pages (4 MiB) with a 1 MiB limit: memory.grow returns -1, and the guest traps on it.
        let rt = Runtime::new().unwrap();
        let bomb = wat::parse_str(
            r#"(module (memory (export "memory") 1)
                 (func (export "_start")
                   (if (i32.lt_s (memory.grow (i32.const 64)) (i32.const 0)) (then unreachable))))"#,
        )
        .unwrap();
        assert!(matches!(run(&rt, bomb, 1 << 20).await.0, Exit::Trap(_)));
        // A module whose initial memory exceeds the limit cannot even be instantiated.
        let rt = Runtime::new().unwrap();
        let big = wat::parse_str(r#"(module (memory (export "memory") 100) (func (export "_start")))"#).unwrap();
        match run(&rt, big, 1 << 20).await.0 {
            Exit::Failed(reason) => assert!(reason.starts_with("memory limit exceeded"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
