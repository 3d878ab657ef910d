//! Child processes of the real binaries (`edge-controller`, `edge-agent`), for faults a library call cannot
//! produce: SIGKILL at any instant, a restart on the same store, a controller whose embedded broker dies with it.
//!
//! A controller process listens for its API on port 0 and says where ([`ControllerProc`]); its embedded
//! broker's port comes from [`crate::ports::free_port`], and a start that fails because the port was taken is
//! retried on another.
//!
//! The binaries are the ones `cargo test --workspace` builds next to the test executables (`target/debug/`):
//! the agent and controller packages have integration tests, which makes Cargo build their binaries too.

use std::net::SocketAddr;
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

impl Proc {
    /// Waits until the output contains `needle` (`Ok`, with the time since the spawn), or the process exits
    /// first (`Err` with its output). Panics after `timeout`.
    pub fn wait_started(&mut self, needle: &str, timeout: Duration) -> Result<Duration, String> {
        loop {
            if self.output().contains(needle) {
                return Ok(self.started.elapsed());
            }
            if !self.is_running() {
                // It may have printed the needle just before exiting.
                let out = self.output();
                return if out.contains(needle) { Ok(self.started.elapsed()) } else { Err(out) };
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

/// Where a controller process's MQTT traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mqtt {
    /// Its embedded broker, listening on this loopback port.
    Embedded(u16),
    /// An external broker on this loopback port.
    External(u16),
}

impl Mqtt {
    pub fn port(self) -> u16 {
        match self {
            Mqtt::Embedded(p) | Mqtt::External(p) => p,
        }
    }
}

/// Arguments of an `edge-controller` whose API listens on port 0 (it prints the address it got).
pub fn controller_args(data: &Path, mqtt: Mqtt, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["--data".to_string(), data.display().to_string(), "--api".into(), "127.0.0.1:0".into()];
    match mqtt {
        Mqtt::Embedded(port) => a.extend(["--mqtt-listen".to_string(), format!("127.0.0.1:{port}")]),
        Mqtt::External(port) => a.extend(["--broker".to_string(), format!("mqtt://127.0.0.1:{port}")]),
    }
    // The agents and simulated nodes of the tests written before identities do not join: they run against an
    // open embedded broker unless the test asks for identities with [`SECURE`].
    if matches!(mqtt, Mqtt::Embedded(_)) && !extra.contains(&SECURE) {
        a.push("--mqtt-allow-anonymous".into());
    }
    a.extend(extra.iter().filter(|s| **s != SECURE).map(|s| s.to_string()));
    a
}

/// Put in a controller's `extra` arguments: its embedded broker enforces identities (no anonymous clients).
pub const SECURE: &str = "<secure>";

/// A running `edge-controller` process and where it listens.
pub struct ControllerProc {
    pub proc: Proc,
    pub api: SocketAddr,
    pub mqtt: Mqtt,
    /// Its admin credential (`admin.token` in its data dir, written at its first start).
    pub admin: Option<String>,
}

/// What the controller prints once it serves (`edge-controller: API on http://ADDR, MQTT on …`).
const API_BANNER: &str = "API on http://";

impl ControllerProc {
    /// One attempt: starts the controller and waits until it says where its API is. `Err` with its output when
    /// it exits first (e.g. its MQTT port was taken).
    pub fn try_start(name: &str, data: &Path, mqtt: Mqtt, extra: &[&str], log_dir: &Path) -> Result<Self, String> {
        Self::try_start_via(&[], name, data, mqtt, extra, log_dir)
    }

    /// [`ControllerProc::try_start`] through a launcher: `via` is a command line the controller's own is appended
    /// to (e.g. `["/usr/bin/taskset", "-c", "0"]`); empty runs the controller directly.
    pub fn try_start_via(
        via: &[&str],
        name: &str,
        data: &Path,
        mqtt: Mqtt,
        extra: &[&str],
        log_dir: &Path,
    ) -> Result<Self, String> {
        let bin = binary("edge-controller");
        let mut args = controller_args(data, mqtt, extra);
        let program = match via.split_first() {
            None => bin,
            Some((program, rest)) => {
                let mut a: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
                a.push(bin.display().to_string());
                a.append(&mut args);
                args = a;
                PathBuf::from(program)
            }
        };
        let mut proc = Proc::spawn(name, &program, &args, log_dir);
        proc.wait_started(API_BANNER, Duration::from_secs(30))?;
        let out = proc.output();
        let at = out.find(API_BANNER).map(|i| &out[i + API_BANNER.len()..]).unwrap_or_default();
        let addr = at.split(|c: char| c == ',' || c.is_whitespace()).next().unwrap_or_default();
        let api = addr.parse().unwrap_or_else(|e| panic!("{name}: cannot read the API address {addr:?}: {e}"));
        let admin = std::fs::read_to_string(data.join("admin.token")).ok().map(|t| t.trim().to_string());
        Ok(ControllerProc { proc, api, mqtt, admin })
    }

    /// Starts a controller. With an embedded broker (`external: None`) its port is picked, and picked again
    /// when the controller exits because it was taken; with `Some(port)` it uses the broker there.
    pub fn start(name: &str, data: &Path, external: Option<u16>, extra: &[&str], log_dir: &Path) -> Self {
        Self::start_via(&[], name, data, external, extra, log_dir)
    }

    /// [`ControllerProc::start`] through a launcher (see [`ControllerProc::try_start_via`]).
    pub fn start_via(
        via: &[&str],
        name: &str,
        data: &Path,
        external: Option<u16>,
        extra: &[&str],
        log_dir: &Path,
    ) -> Self {
        if let Some(port) = external {
            return Self::try_start_via(via, name, data, Mqtt::External(port), extra, log_dir)
                .unwrap_or_else(|out| panic!("{name} exited at its start:\n{out}"));
        }
        crate::ports::retry_on_bind(
            "a controller process",
            |port| Self::try_start_via(via, name, data, Mqtt::Embedded(port), extra, log_dir),
            |out| out.contains("cannot listen for MQTT"),
        )
    }

    /// Starts a controller on a store and broker port agents already use (a restart): the port must be free.
    pub fn restart(name: &str, data: &Path, mqtt: Mqtt, extra: &[&str], log_dir: &Path) -> Self {
        Self::try_start(name, data, mqtt, extra, log_dir)
            .unwrap_or_else(|out| panic!("{name} exited at its start:\n{out}"))
    }

    pub fn mqtt_port(&self) -> u16 {
        self.mqtt.port()
    }

    /// A client of its API with its admin credential.
    pub fn client(&self) -> crate::Api {
        crate::Api::new(self.api).with_token(self.admin.clone())
    }
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
