//! A real Mosquitto broker as a child process, killed on drop.
//!
//! Mosquitto cannot listen on port 0 (2.0 reads it as a unix socket), so it gets a port from
//! [`crate::ports::free_port`] and is started again on another one when the bind fails: Mosquitto logs
//! `Error: Address already in use` and exits, while a broker that bound its port logs `… running` (after its
//! listeners are open) and stays up. Both are read from its log, so a port some other process holds is never
//! mistaken for ours.
//!
//! [`Mosquitto::start_edge`] runs it on the files a controller keeps (`--mosquitto-dir`: password file, ACL
//! file, and `edge.conf` with the listener), and writes its pid where the controller looks for it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Mosquitto may take to say it runs or that it failed.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Mosquitto {
    child: Child,
    pub port: u16,
    /// Mosquitto's own log (stderr).
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Why a Mosquitto did not start.
#[derive(Debug)]
pub struct StartFailure {
    pub port: u16,
    pub log: String,
}

impl StartFailure {
    fn port_taken(&self) -> bool {
        self.log.contains("Address already in use")
    }
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mosquitto on port {} exited: {}", self.port, self.log.trim())
    }
}

impl Mosquitto {
    /// On a free loopback port (another one if that port turns out to be taken).
    pub fn start() -> Mosquitto {
        Mosquitto::start_with("")
    }

    /// With extra configuration lines (e.g. `set_tcp_nodelay true`), on a free port.
    pub fn start_with(extra_conf: &str) -> Mosquitto {
        crate::ports::retry_on_bind(
            "mosquitto",
            |port| Mosquitto::try_start(port, extra_conf),
            StartFailure::port_taken,
        )
    }

    /// On a given port: a broker restarted where the fleet expects it. Panics if the port is taken.
    pub fn start_on(port: u16) -> Mosquitto {
        Mosquitto::try_start(port, "").unwrap_or_else(|e| panic!("{e}"))
    }

    /// One attempt on `port`: returns once Mosquitto says it runs, or why it exited.
    pub fn try_start(port: u16, extra_conf: &str) -> Result<Mosquitto, StartFailure> {
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n{extra_conf}\n"
        );
        Mosquitto::run(port, &text)
    }

    /// On the files of a controller's `--mosquitto-dir` (`edge_dir/edge.conf` names the port, which must be
    /// `port`), with its pid written to `pid_file` for the controller's reload signals.
    pub fn start_edge(port: u16, edge_dir: &Path, pid_file: &Path) -> Result<Mosquitto, StartFailure> {
        let conf = edge_dir.join("edge.conf");
        let edge = std::fs::read_to_string(&conf).unwrap_or_default();
        assert!(edge.contains(&format!("listener {port}\n")), "{} listens elsewhere: {edge}", conf.display());
        // As root Mosquitto would switch to its own user, which cannot read the controller's 0600 files (in
        // production the controller runs as Mosquitto's user, or hands it the files); `user root` keeps it.
        let text = format!("user root\npersistence false\nlog_dest stderr\ninclude_dir {}\n", edge_dir.display());
        let m = Mosquitto::run(port, &text)?;
        std::fs::write(pid_file, format!("{}\n", m.child.id())).expect("write the pid file");
        Ok(m)
    }

    fn run(port: u16, text: &str) -> Result<Mosquitto, StartFailure> {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, text).expect("write mosquitto.conf");
        let log = dir.path().join("mosquitto.log");
        let out = std::fs::File::create(&log).expect("mosquitto log");
        let bin = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start mosquitto ({bin}): {e}; install it with apt-get install mosquitto")
            });
        let mut m = Mosquitto { child, port, log, _dir: dir };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = m.output();
            if text.contains(" running") {
                return Ok(m);
            }
            if let Ok(Some(_)) = m.child.try_wait() {
                return Err(StartFailure { port, log: m.output() });
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto on {port} neither ran nor failed within {START_TIMEOUT:?}: {text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
