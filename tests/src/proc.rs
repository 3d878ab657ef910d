//! Child processes of the real binaries (`edge-controller`, `edge-agent`), for faults a library call cannot
//! produce: SIGKILL at any instant, a restart on the same store, a controller whose embedded broker dies with it.
//!
//! The binaries are the ones `cargo test --workspace` builds next to the test executables (`target/debug/`):
//! the agent and controller packages have integration tests, which makes Cargo build their binaries too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary built beside the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/e2e-hash → target/debug/NAME; a bench binary lives in target/release/ itself.
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join(name));
        if let Some(up) = dir.parent() {
            candidates.push(up.join(name));
        }
    }
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "binary {name} not found beside {}: build it first (cargo test --workspace builds it; for a bench, \
             cargo build --release --bins)",
            exe.display()
        )
    })
}

/// A child process whose stdout and stderr go to a file the test can search. Killed (SIGKILL) on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
    pub started: Instant,
}

impl Proc {
    pub fn spawn(name: &str, bin: &Path, args: &[String], log_dir: &Path) -> Proc {
        std::fs::create_dir_all(log_dir).expect("log dir");
        let log = unique(log_dir.join(format!("{name}.log")));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let started = Instant::now();
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "info,rumqttd=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Proc { name: name.to_string(), child, log, started }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (polling every 10 ms) until the output contains `needle`; returns when it first appeared, measured
    /// from the spawn. Panics with the output after `timeout`.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> Duration {
        loop {
            if self.output().contains(needle) {
                return self.started.elapsed();
            }
            if self.started.elapsed() >= timeout {
                panic!("{}: {needle:?} not printed within {timeout:?}; output:\n{}", self.name, self.output());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unique(path: PathBuf) -> PathBuf {
    let mut n = 0;
    let mut p = path.clone();
    while p.exists() {
        n += 1;
        p = path.with_extension(format!("{n}.log"));
    }
    p
}

/// Arguments of an `edge-controller` with an embedded broker.
pub fn controller_args(data: &Path, api_port: u16, mqtt_port: u16, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "--data".to_string(),
        data.display().to_string(),
        "--api".into(),
        format!("127.0.0.1:{api_port}"),
        "--mqtt-listen".into(),
        format!("127.0.0.1:{mqtt_port}"),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Arguments of an `edge-agent` for node `node` on the broker at `127.0.0.1:port`.
pub fn agent_args(node: &str, port: u16, data: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "--node".to_string(),
        node.to_string(),
        "--broker".into(),
        format!("mqtt://127.0.0.1:{port}"),
        "--data".into(),
        data.display().to_string(),
        "--heartbeat".into(),
        "0.5".into(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}
