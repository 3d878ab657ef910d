//! `edgectl install --ssh` and `uninstall --ssh` against a real OpenSSH server (`/usr/sbin/sshd`, started here on
//! a free loopback port with keys generated for the test) and a real in-process controller: the install ends with
//! a Ready node, the uninstall removes what it put; a binary of another architecture, an unknown host key and a
//! host without systemd are refused in one line.
//!
//! This machine has no systemd, so the install runs with `--no-systemd` (the agent started by nohup) under
//! `--prefix` (every remote path inside a temporary directory: the test never writes to /usr/local or /etc).
//! The agent binary is the workspace's `target/debug/edge-agent` (`cargo build -p edge-agent` makes it).

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::Fleet;

const SSHD: &str = "/usr/sbin/sshd";

/// An OpenSSH server for root on 127.0.0.1, killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    /// The client's private key, whose public half the server accepts.
    key: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> Sshd {
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} is missing: install the Debian package openssh-server (apt-get install openssh-server)"
        );
        let host_key = dir.join("host_ed25519");
        let key = dir.join("client_ed25519");
        keygen(&host_key);
        keygen(&key);
        let authorized = dir.join("authorized_keys");
        std::fs::copy(key.with_extension("pub"), &authorized).unwrap();
        // sshd refuses to start without its privilege separation directory (the package's unit makes it).
        std::fs::create_dir_all("/run/sshd").unwrap();
        for _ in 0..5 {
            let port = edge_tests::ports::free_port();
            let config = dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
                     StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\n",
                    host_key.display(),
                    authorized.display(),
                    dir.join("sshd.pid").display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sshd { child, port, key };
                }
                if child.try_wait().unwrap().is_some() {
                    break; // The port was taken meanwhile: another one.
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start: {}", std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default());
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "edgectl-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (package openssh-client)")
        .success();
    assert!(ok, "ssh-keygen failed for {}", path.display());
}

/// Kills the agent an install under `prefix` started, if it still runs (a failed test must not leave it).
struct AgentGuard(PathBuf);

impl Drop for AgentGuard {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.join("run/edge-agent.pid")) {
            let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
        }
    }
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// The real binary, off the runtime's threads (the controller answering it lives in this process).
async fn edgectl(args: Vec<String>) -> Out {
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_edgectl")).args(&args).stdin(Stdio::null()).output().expect("run edgectl")
    })
    .await
    .unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn one_line_error(out: &Out) -> &str {
    assert!(!out.ok, "expected a failure; stdout: {}", out.stdout);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    out.stderr.trim_end()
}

/// The workspace's agent binary, beside this test's edgectl.
fn agent_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_edgectl")).with_file_name("edge-agent");
    assert!(path.is_file(), "{} is missing: build it first (cargo build -p edge-agent)", path.display());
    path
}

/// The `--ssh …` flags for this server.
fn ssh_args(sshd: &Sshd, known_hosts: &Path) -> Vec<String> {
    [
        "--ssh",
        "root@127.0.0.1",
        "--port",
        &sshd.port.to_string(),
        "--identity",
        &sshd.key.display().to_string(),
        "--known-hosts",
        &known_hosts.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn install_over_ssh_ends_with_a_ready_node_and_uninstall_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    let fleet = Fleet::embedded().await;
    let server = format!("http://{}", fleet.controller.as_ref().unwrap().api_addr);
    let (host, port) = fleet.broker_addr();
    let token = fleet.api.join_token("n1").await;
    let prefix = dir.path().join("board");
    let _agent = AgentGuard(prefix.clone());
    let known_hosts = dir.path().join("known_hosts");

    let admin = fleet.controller.as_ref().unwrap().admin_token.clone().unwrap();
    let mut args = strings(&["--server", &server, "--token", &admin, "install"]);
    args.extend(ssh_args(&sshd, &known_hosts));
    args.extend(strings(&[
        "--accept-new-host-key",
        "--no-systemd",
        "--prefix",
        &prefix.display().to_string(),
        "--node",
        "n1",
        "--join",
        &token,
        "--agent-binary",
        &agent_binary().display().to_string(),
        "--broker",
        &format!("mqtt://{host}:{port}"),
        "--wait-timeout",
        "60s",
    ]));
    let started = Instant::now();
    let out = edgectl(args).await;
    assert!(out.ok, "install failed: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("installed edge-agent on root@127.0.0.1:"), "{}", out.stdout);
    assert!(out.stdout.trim_end().ends_with("node n1 is Ready"), "{}", out.stdout);
    eprintln!("install took {:?}", started.elapsed());

    let nodes = fleet.api.get("/v1/nodes").await;
    let n1 = nodes.as_array().unwrap().iter().find(|n| n["name"] == "n1").expect("node n1");
    assert_eq!(n1["status"], "Ready", "{n1}");
    let (bin, config, unit) = (
        prefix.join("usr/local/bin/edge-agent"),
        prefix.join("etc/edge/agent.toml"),
        prefix.join("etc/systemd/system/edge-agent.service"),
    );
    assert_eq!((mode(&bin), mode(&config), mode(&unit)), (0o755, 0o600, 0o644));
    assert_eq!(std::fs::metadata(&bin).unwrap().len(), std::fs::metadata(agent_binary()).unwrap().len());
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(toml.contains("node = \"n1\"") && toml.contains(&format!("join = \"{token}\"")), "{toml}");
    assert!(known_hosts.is_file(), "the host key was recorded");
    let pid = std::fs::read_to_string(prefix.join("run/edge-agent.pid")).unwrap().trim().to_string();
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the agent runs as pid {pid}");

    // The host key recorded by the install is trusted now: no flag needed.
    let mut args = strings(&["uninstall"]);
    args.extend(ssh_args(&sshd, &known_hosts));
    args.extend(strings(&["--no-systemd", "--prefix", &prefix.display().to_string(), "--purge"]));
    let out = edgectl(args).await;
    assert!(out.ok, "uninstall failed: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("removed edge-agent and its state from root@127.0.0.1:"), "{}", out.stdout);
    for gone in [&bin, &config, &unit, &prefix.join("var/lib/edge-agent"), &prefix.join("run/edge-agent.pid")] {
        assert!(!gone.exists(), "{} is still there", gone.display());
    }
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the agent (pid {pid}) was stopped");
    edge_tests::eventually(Duration::from_secs(60), "n1 NotReady", || async {
        let nodes = fleet.api.get("/v1/nodes").await;
        let n1 = nodes.as_array()?.iter().find(|n| n["name"] == "n1")?.clone();
        (n1["status"] != "Ready").then_some(())
    })
    .await;
    fleet.stop().await;
}

/// Refusals before anything is written: an unknown host key, a binary for another architecture (a stand-in
/// aarch64 ELF header), a host without systemd when --no-systemd is not given; and a wait that times out.
#[tokio::test(flavor = "multi_thread")]
async fn install_refuses_an_unknown_host_another_architecture_and_a_host_without_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    let known_hosts = dir.path().join("known_hosts");
    let aarch64 = dir.path().join("edge-agent-aarch64");
    let mut header = b"\x7fELF\x02\x01\x01\x00".to_vec();
    header.extend([0; 8]);
    header.extend(2u16.to_le_bytes()); // ET_EXEC
    header.extend(183u16.to_le_bytes()); // EM_AARCH64
    header.extend([0; 44]);
    std::fs::write(&aarch64, &header).unwrap();
    let prefix = dir.path().join("board");
    let install = |binary: &Path, extra: &[&str]| {
        let mut args = strings(&["--server", "http://127.0.0.1:9", "install"]);
        args.extend(ssh_args(&sshd, &known_hosts));
        args.extend(strings(&["--node", "n1", "--join", "t", "--broker", "mqtt://127.0.0.1:1883"]));
        args.extend(strings(&["--agent-binary", &binary.display().to_string()]));
        args.extend(strings(extra));
        args
    };

    let out = edgectl(install(&agent_binary(), &[])).await;
    let err = one_line_error(&out);
    assert!(err.contains("is not in") && err.contains("--accept-new-host-key") && err.contains("SHA256:"), "{err}");
    assert!(!known_hosts.exists(), "nothing recorded without the flag");

    let out = edgectl(install(&aarch64, &["--accept-new-host-key"])).await;
    let err = one_line_error(&out);
    assert!(err.contains("is built for aarch64 but root@127.0.0.1:"), "{err}");
    assert!(err.contains("x86_64") && err.contains("uname -m"), "{err}");

    // Only where this machine (the sshd's host) has no systemd: elsewhere the install would go ahead, for real.
    if !Path::new("/run/systemd/system").exists() {
        let out = edgectl(install(&agent_binary(), &[])).await;
        let err = one_line_error(&out);
        assert!(err.contains("does not run systemd") && err.contains("--no-systemd"), "{err}");
    }

    let out = edgectl(install(&agent_binary(), &["--prefix", &prefix.display().to_string()])).await;
    assert!(one_line_error(&out).contains("--no-systemd"), "{}", out.stderr);
    assert!(!prefix.exists(), "nothing was written");

    // Installed, but no controller: the timeout names what it saw and what the agent last logged.
    let _agent = AgentGuard(prefix.clone());
    let p = prefix.display().to_string();
    let out = edgectl(install(&agent_binary(), &["--no-systemd", "--prefix", &p, "--wait-timeout", "2s"])).await;
    let err = one_line_error(&out);
    assert!(err.starts_with("error: node n1 not Ready after 2s: cannot reach the controller"), "{err}");
    assert!(err.contains("; the agent's last log line: "), "{err}");
    eprintln!("{err}");
    let mut args = strings(&["uninstall"]);
    args.extend(ssh_args(&sshd, &known_hosts));
    args.extend(strings(&["--no-systemd", "--prefix", &p]));
    assert!(edgectl(args).await.ok);
}
