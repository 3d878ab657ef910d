//! `edgectl install --ssh` and `uninstall --ssh`: log in, probe the host (architecture, uid, systemd), refuse a
//! binary it cannot run, run the steps of `install/plan.rs`, and (install) wait until the node is Ready on the
//! controller, saying on a timeout what the agent last logged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::cli::{InstallArgs, SshArgs, UninstallArgs};
use crate::client::Client;
use crate::install::arch::{self, Arch};
use crate::install::plan::{self, Digests, Options, Payload, Probe, Service, Step};
use crate::install::ssh::{self, HostKeys, Session, Target};
use crate::progress::Progress;

/// The unit installed: the repository's own (its comments say why each hardening option is or is not set).
use crate::agent_files::{unit_user, UNIT};

pub async fn install(client: &Client, server: &str, args: InstallArgs) -> Result<()> {
    let target = Target::parse(&args.ssh.ssh, args.ssh.port).map_err(|e| anyhow!(e))?;
    prefix(&args.ssh)?;
    let binary = agent_binary(args.agent_binary.as_deref())?;
    let built_for = binary_arch(&binary)?;
    let broker = match args.broker {
        Some(b) => b,
        None => default_broker(server, &target.host)?,
    };
    // Checked here, on this machine, rather than by an agent that would then never join.
    edge_proto::parse_broker_endpoint(&broker).map_err(|e| anyhow!("--broker {broker:?}: {e} (or mqtts://…)"))?;

    let session = connect(&args.ssh, &target).await?;
    let probe = probe(&session, &target).await?;
    let host = arch::host_arch(&probe.machine, probe.long_bit).map_err(|e| anyhow!("{target}: {e}"))?;
    if host != built_for {
        bail!(
            "{} is built for {built_for} but {target} runs {host} (`uname -m`: {}{}): build edge-agent for {}",
            binary.display(),
            probe.machine,
            probe.long_bit.map(|b| format!(", {b}-bit userland")).unwrap_or_default(),
            triple(host)
        );
    }
    let opts = options(&args.ssh, &probe, &target, Some(UNIT))?;

    let config = plan::agent_toml(&args.node, &broker, &opts.path(plan::DATA), &args.join, args.board.as_deref());
    let sums =
        Digests { binary: file_sha256(&binary)?, config: sha256(config.as_bytes()), unit: sha256(UNIT.as_bytes()) };
    for step in plan::install(&opts, &sums) {
        match step {
            Step::Upload { payload, path, command } => {
                let out = match payload {
                    Payload::Binary => {
                        let file = tokio::fs::File::open(&binary)
                            .await
                            .with_context(|| format!("cannot read {}", binary.display()))?;
                        let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
                        let bar = Progress::bytes(size, format!("uploading {}", binary.display()));
                        let out = session.run_with_input(&command, Counted { inner: file, bar: bar.clone() }).await;
                        bar.finish();
                        out?
                    }
                    Payload::Config => session.run_with_input(&command, config.as_bytes()).await?,
                    Payload::Unit => session.run_with_input(&command, UNIT.as_bytes()).await?,
                };
                check(&target, &format!("writing {path}"), &out)?;
            }
            Step::Run { what, command } => check(&target, &what, &session.run(&command).await?)?,
        }
    }
    let how = match opts.service {
        Service::Systemd => plan::SERVICE,
        Service::Nohup => "nohup (no systemd: nothing restarts it)",
    };
    println!("installed edge-agent on {target} ({host}, {how}) as node {}", args.node);

    if args.wait_timeout.is_zero() {
        session.close().await;
        return Ok(());
    }
    let waited = wait_ready(client, &args.node, args.wait_timeout).await;
    if let Err(why) = waited {
        let tail = session.run(&plan::log_tail(&opts, 20)).await.ok().map(|o| last_log_line(&o.stdout));
        session.close().await;
        let tail = tail.flatten().map(|l| format!("; the agent's last log line: {l}")).unwrap_or_default();
        bail!("node {} not Ready after {}: {why}{tail}", args.node, crate::age::human(args.wait_timeout));
    }
    session.close().await;
    println!("node {} is Ready", args.node);
    Ok(())
}

pub async fn uninstall(args: UninstallArgs) -> Result<()> {
    let target = Target::parse(&args.ssh.ssh, args.ssh.port).map_err(|e| anyhow!(e))?;
    prefix(&args.ssh)?;
    let session = connect(&args.ssh, &target).await?;
    let probe = probe(&session, &target).await?;
    let opts = options(&args.ssh, &probe, &target, None)?;
    for step in plan::uninstall(&opts, args.purge) {
        let (Step::Run { what, command } | Step::Upload { path: what, command, .. }) = step;
        check(&target, &what, &session.run(&command).await?)?;
    }
    session.close().await;
    let state = if args.purge { " and its state" } else { "" };
    println!(
        "removed edge-agent{state} from {target} (its node stays listed, NotReady, until `edgectl delete node NAME`)"
    );
    Ok(())
}

async fn connect(args: &SshArgs, target: &Target) -> Result<Session> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let identity = ssh::default_identity(args.identity.as_deref(), home.as_deref())?;
    let known_hosts = match (&args.known_hosts, &home) {
        (Some(path), _) => path.clone(),
        (None, Some(home)) => home.join(".ssh/known_hosts"),
        (None, None) => bail!("no home directory for ~/.ssh/known_hosts: give --known-hosts FILE"),
    };
    Session::connect(target, &identity, HostKeys { known_hosts, accept_new: args.accept_new_host_key }).await
}

async fn probe(session: &Session, target: &Target) -> Result<Probe> {
    let out = session.run(plan::PROBE).await?;
    check(target, "uname -m", &out)?;
    Probe::parse(&String::from_utf8_lossy(&out.stdout)).map_err(|e| anyhow!("{target}: {e}"))
}

/// The options for this host: sudo unless uid 0, nohup only when asked, and a clear refusal without systemd.
fn options(args: &SshArgs, probe: &Probe, target: &Target, unit: Option<&str>) -> Result<Options> {
    let service = if args.no_systemd {
        Service::Nohup
    } else if probe.systemd {
        Service::Systemd
    } else {
        bail!(
            "{target} does not run systemd (no /run/systemd/system): give --no-systemd to start the agent with \
             nohup instead"
        );
    };
    Ok(Options { sudo: probe.uid != 0, prefix: prefix(args)?, service, unit_user: unit.and_then(unit_user) })
}

/// `--prefix` without its trailing slash ("" without one).
fn prefix(args: &SshArgs) -> Result<String> {
    match args.prefix.as_deref().map(|p| p.trim_end_matches('/')) {
        // systemd reads units from /etc/systemd/system, not from under a prefix.
        Some(_) if !args.no_systemd => bail!("--prefix needs --no-systemd: systemd would not find a unit under it"),
        Some(p) if !p.starts_with('/') => bail!("--prefix {p:?}: must be an absolute path"),
        Some(p) => Ok(p.to_string()),
        None => Ok(String::new()),
    }
}

/// Fails with what failed, where, and the command's last line of output.
fn check(target: &Target, what: &str, out: &ssh::Output) -> Result<()> {
    if out.success() {
        return Ok(());
    }
    let status = out.status.map(|s| format!("exit {s}")).unwrap_or_else(|| "no exit status".into());
    let line = out.last_line();
    let line = if line.is_empty() { String::new() } else { format!(": {line}") };
    bail!("{what} failed on {target} ({status}){line}")
}

/// The agent binary: `--agent-binary`, else `edge-agent` beside this edgectl (as a release archive ships them).
fn agent_binary(given: Option<&Path>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("edge-agent")))
            .unwrap_or_else(|| PathBuf::from("edge-agent")),
    };
    if !path.is_file() {
        bail!(
            "no agent binary at {} (give --agent-binary PATH: see docs/boards.md for building one for a board)",
            path.display()
        );
    }
    Ok(path)
}

fn binary_arch(path: &Path) -> Result<Arch> {
    let mut header = [0u8; 20];
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let n = std::io::Read::read(&mut file, &mut header).with_context(|| format!("cannot read {}", path.display()))?;
    arch::elf_arch(&header[..n]).map_err(|e| anyhow!("{} is {e}", path.display()))
}

/// The Rust target to build for a host of `arch` (Pi OS 64-bit, 32-bit, a PC).
fn triple(arch: Arch) -> &'static str {
    match arch {
        Arch::Aarch64 => "aarch64-unknown-linux-gnu",
        Arch::Arm => "armv7-unknown-linux-gnueabihf (arm-unknown-linux-gnueabihf on armv6: Pi Zero W, Pi 1)",
        Arch::X86_64 => "x86_64-unknown-linux-gnu",
    }
}

/// `mqtt://HOST:1883` with the controller's host (`mqtts://` when the controller serves HTTPS: then its broker
/// speaks TLS too), unless that is this machine's loopback and the board is not.
fn default_broker(server: &str, board_host: &str) -> Result<String> {
    let base = crate::client::base_url(server);
    let authority = base.split_once("://").map_or(base.as_str(), |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or(authority);
    let host = match authority.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or(v6)),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h).to_string(),
    };
    if is_loopback(&host) && !is_loopback(board_host) {
        bail!(
            "give --broker mqtt://HOST:PORT as {board_host} reaches the controller's broker: the controller's \
             address ({host}) is this machine's loopback"
        );
    }
    let scheme = if base.starts_with("https://") { "mqtts" } else { "mqtt" };
    Ok(format!("{scheme}://{host}:1883"))
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Polls the controller until `node` is Ready; `Err` says what it last saw.
async fn wait_ready(client: &Client, node: &str, timeout: Duration) -> Result<(), String> {
    let spinner = Progress::spinner(format!("waiting for node {node} to be Ready"));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match client.nodes().await {
            Ok(nodes) => match nodes.iter().find(|n| n.name == node) {
                Some(n) if n.status == "Ready" => {
                    spinner.finish();
                    return Ok(());
                }
                Some(n) => format!("the controller has node {node} {}", n.status),
                None => format!("the controller has no node {node} (it has not joined)"),
            },
            Err(e) => format!("{e:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            spinner.finish();
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The last non-empty line of the agent's log, without its ANSI colours.
fn last_log_line(out: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(out);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ … final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    Some(plain.trim().to_string())
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// A reader that moves a progress bar as it is read.
struct Counted<R> {
    inner: R,
    bar: Progress,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        self.bar.advance((buf.filled().len() - before) as u64);
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::{default_broker, last_log_line};

    #[test]
    fn the_default_broker_is_the_servers_host_unless_only_this_machine_reaches_it() {
        assert_eq!(default_broker("http://ctl.lan:7700", "kitchen").unwrap(), "mqtt://ctl.lan:1883");
        assert_eq!(default_broker("10.0.0.2:7700", "10.0.0.9").unwrap(), "mqtt://10.0.0.2:1883");
        assert_eq!(default_broker("http://[fd00::2]:7700/", "kitchen").unwrap(), "mqtt://[fd00::2]:1883");
        assert_eq!(default_broker("https://ctl.lan:7700", "kitchen").unwrap(), "mqtts://ctl.lan:1883");
        assert_eq!(default_broker("http://127.0.0.1:7700", "127.0.0.1").unwrap(), "mqtt://127.0.0.1:1883");
        let err = default_broker("http://127.0.0.1:7700", "kitchen.local").unwrap_err().to_string();
        assert!(err.starts_with("give --broker") && err.contains("loopback"), "{err}");
    }

    #[test]
    fn the_last_log_line_loses_its_colours() {
        let log = b"first\n\x1b[2m2026-01-01\x1b[0m \x1b[31mERROR\x1b[0m join refused\n\n";
        assert_eq!(last_log_line(log).as_deref(), Some("2026-01-01 ERROR join refused"));
        assert_eq!(last_log_line(b"\n"), None);
    }
}
