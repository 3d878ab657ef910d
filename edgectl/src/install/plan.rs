//! What `install` and `uninstall` do on a host, as data: the probe run first, then a list of [`Step`]s (files
//! sent on a command's standard input, and shell commands), each a `sh -c` line run over SSH, under `sudo -n`
//! when the login is not root. Pure: `ssh.rs` runs the steps, `cmd/install.rs` chooses them.
//!
//! Every file goes to a temporary name beside its target, is checked against its SHA-256, gets its mode and is
//! renamed into place, so a cut connection never leaves half a binary where systemd would start it, and a
//! running agent's binary is replaced rather than written over ("text file busy"). The join token travels only
//! inside `agent.toml`, on standard input: it never appears on a command line (`ps` on the board shows those).
//!
//! Without systemd ([`Service::Nohup`], for containers and minimal images) the agent is started with `nohup`
//! and a pid file, and stopped through that pid file; `--prefix` puts every path under a directory, which is
//! how the tests install onto this machine without touching `/usr/local` or `/etc`.

/// Where the agent's files live on the host (before any prefix).
pub const BINARY: &str = "/usr/local/bin/edge-agent";
pub const CONFIG: &str = "/etc/edge/agent.toml";
pub const UNIT: &str = "/etc/systemd/system/edge-agent.service";
/// The agent's state (its identity and module cache): the unit's `StateDirectory=edge-agent`.
pub const DATA: &str = "/var/lib/edge-agent";
/// Without systemd: the agent's output and its pid.
pub const LOG: &str = "/var/log/edge-agent.log";
pub const PID: &str = "/run/edge-agent.pid";
pub const SERVICE: &str = "edge-agent.service";

/// What the probe asks the host: its kernel's machine, its userland's word size (empty without getconf), the
/// login's uid, and whether systemd is the init (`/run/systemd/system` exists: sd_booted(3)'s test).
pub const PROBE: &str = "uname -m; getconf LONG_BIT 2>/dev/null || echo; id -u; \
                         if [ -d /run/systemd/system ]; then echo systemd; else echo none; fi";

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub machine: String,
    pub long_bit: Option<u32>,
    pub uid: u32,
    pub systemd: bool,
}

impl Probe {
    /// The four lines [`PROBE`] prints.
    pub fn parse(out: &str) -> Result<Probe, String> {
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        let [machine, long_bit, uid, init] = lines[..] else {
            return Err(format!("the host's answer to `uname -m; getconf LONG_BIT; id -u` is unreadable: {out:?}"));
        };
        let uid = uid.parse().map_err(|_| format!("`id -u` printed {uid:?}"))?;
        Ok(Probe { machine: machine.to_string(), long_bit: long_bit.parse().ok(), uid, systemd: init == "systemd" })
    }
}

/// How the agent is kept running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The unit, enabled and started with systemctl.
    Systemd,
    /// `nohup` and a pid file: hosts without systemd. Nothing restarts the agent if it dies or the host reboots.
    Nohup,
}

/// The choices that shape the steps.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run every command under `sudo -n` (the login is not root).
    pub sudo: bool,
    /// Prepended to every path on the host ("" for none; no trailing slash).
    pub prefix: String,
    pub service: Service,
    /// The unit's `User=` (systemd only; `None`: root): created if missing, and the group of `agent.toml`.
    pub unit_user: Option<String>,
}

/// The files `install` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    Binary,
    Config,
    Unit,
}

/// The SHA-256 (hex) of each payload, checked on the host before a file is renamed into place.
#[derive(Debug, Clone)]
pub struct Digests {
    pub binary: String,
    pub config: String,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send `payload` on the standard input of `command`, which puts it at `path`.
    Upload { payload: Payload, path: String, command: String },
    /// Run `command`; `what` names it in an error (`start edge-agent.service`).
    Run { what: String, command: String },
}

impl Options {
    /// `path` under the prefix.
    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// `path` under the prefix, quoted for the shell.
    fn q(&self, path: &str) -> String {
        quote(&self.path(path))
    }

    /// `script` as one command line for the login shell: `sh -c '…'`, under `sudo -n` unless root. `-n`: a
    /// sudo that wants a password fails at once rather than waiting for one nobody will type.
    pub fn wrap(&self, script: &str) -> String {
        let sh = format!("sh -c {}", quote(script));
        if self.sudo {
            format!("sudo -n {sh}")
        } else {
            sh
        }
    }

    fn run(&self, what: impl Into<String>, script: &str) -> Step {
        Step::Run { what: what.into(), command: self.wrap(script) }
    }

    /// `owner`: `chown`'s `USER:GROUP` for the file (default: the login's, root).
    fn upload(&self, payload: Payload, path: &str, mode: &str, sha256: &str, owner: Option<&str>) -> Step {
        let target = self.path(path);
        let (dir, name) = target.rsplit_once('/').unwrap_or((".", &target));
        let tmp = quote(&format!("{dir}/.{name}.edgectl-new"));
        let script = format!(
            "umask 022; mkdir -p {dir} || exit 1; umask 077; cat > {tmp} || exit 1; \
             if command -v sha256sum >/dev/null && [ \"$(sha256sum < {tmp} | cut -c1-64)\" != {sha} ]; then \
             rm -f {tmp}; echo {cut} >&2; exit 1; fi; {chown}chmod {mode} {tmp} && mv -f {tmp} {target}",
            dir = quote(if dir.is_empty() { "/" } else { dir }),
            sha = quote(sha256),
            cut = quote(&format!("{target}: the copy differs from what was sent (sha256)")),
            target = quote(&target),
            chown = owner.map(|o| format!("chown {} {tmp} && ", quote(o))).unwrap_or_default(),
        );
        Step::Upload { payload, path: target, command: self.wrap(&script) }
    }

    /// Stops the agent started by [`Service::Nohup`], if its pid file names a live edge-agent: TERM, up to 10 s
    /// to exit, then KILL. The `/proc/PID/exe` check keeps a stale pid file from killing whatever reused the
    /// pid (`(deleted)` follows the path once an upgrade replaced the binary).
    fn stop_nohup(&self) -> String {
        format!(
            "if [ -f {pid} ]; then p=$(cat {pid}); case \"$(readlink /proc/$p/exe 2>/dev/null)\" in {bin}*) \
             kill \"$p\"; i=0; while kill -0 \"$p\" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
             kill -9 \"$p\" 2>/dev/null;; esac; rm -f {pid}; fi",
            pid = self.q(PID),
            bin = self.q(BINARY),
        )
    }
}

/// The steps of `install`: files first, then (re)start. A second install replaces the files and restarts the
/// agent, which keeps its identity in its state directory.
pub fn install(opts: &Options, sums: &Digests) -> Vec<Step> {
    let mut steps = Vec::new();
    if opts.sudo {
        steps.push(Step::Run { what: "sudo -n true (sudo without a password)".into(), command: "sudo -n true".into() });
    }
    // The unit's own user (systemd creates its StateDirectory for it), made as `edgectl flash`'s first boot does.
    let user = opts.unit_user.as_deref().filter(|_| opts.service == Service::Systemd);
    if let Some(u) = user {
        steps.push(opts.run(
            format!("create the user {u}"),
            &format!(
                "getent passwd {u} >/dev/null || useradd --system --user-group --home-dir {DATA} --no-create-home \
                 --shell /usr/sbin/nologin {u}",
                u = quote(u)
            ),
        ));
    }
    steps.push(opts.upload(Payload::Binary, BINARY, "0755", &sums.binary, None));
    // It holds the join token (spent once the node has joined, but a secret until then): root's and the agent's
    // alone, as deploy/edge-agent.service says (root:edge-agent 0640); root's alone (0600) when the agent is root.
    match user {
        Some(u) => steps.push(opts.upload(Payload::Config, CONFIG, "0640", &sums.config, Some(&format!("root:{u}")))),
        None => steps.push(opts.upload(Payload::Config, CONFIG, "0600", &sums.config, None)),
    }
    steps.push(opts.upload(Payload::Unit, UNIT, "0644", &sums.unit, None));
    steps.push(match opts.service {
        Service::Systemd => opts.run(
            format!("start {SERVICE}"),
            &format!("systemctl daemon-reload && systemctl enable {SERVICE} && systemctl restart {SERVICE}"),
        ),
        Service::Nohup => opts.run(
            "start edge-agent with nohup",
            &format!(
                "{stop}; umask 022; mkdir -p {logdir} {piddir} || exit 1; mkdir -p -m 0700 {data} || exit 1; \
                 cd /; nohup {bin} --config {config} >> {log} 2>&1 < /dev/null & echo $! > {pid}",
                stop = opts.stop_nohup(),
                logdir = quote(parent(&opts.path(LOG))),
                piddir = quote(parent(&opts.path(PID))),
                data = opts.q(DATA),
                bin = opts.q(BINARY),
                config = opts.q(CONFIG),
                log = opts.q(LOG),
                pid = opts.q(PID),
            ),
        ),
    });
    steps
}

/// The steps of `uninstall`: stop, then remove the three files (and with `purge` the agent's state: its
/// identity, so the node must join again with a new token). Each step is a no-op where there is nothing to do,
/// so an uninstall after a half-done install, or a second uninstall, succeeds.
pub fn uninstall(opts: &Options, purge: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    if opts.sudo {
        steps.push(Step::Run { what: "sudo -n true (sudo without a password)".into(), command: "sudo -n true".into() });
    }
    let files = format!("{} {} {}", opts.q(BINARY), opts.q(CONFIG), opts.q(UNIT));
    let remove = format!("rm -f {files}; rmdir {} 2>/dev/null; true", quote(parent(&opts.path(CONFIG))));
    match opts.service {
        Service::Systemd => {
            steps.push(opts.run(
                format!("stop {SERVICE}"),
                &format!("if systemctl cat {SERVICE} >/dev/null 2>&1; then systemctl disable --now {SERVICE}; fi"),
            ));
            steps.push(opts.run("remove the agent's files", &format!("{remove}; systemctl daemon-reload")));
        }
        Service::Nohup => {
            steps.push(opts.run("stop edge-agent", &opts.stop_nohup()));
            steps.push(opts.run("remove the agent's files", &format!("{remove}; rm -f {}", opts.q(LOG))));
        }
    }
    if purge {
        steps.push(opts.run("remove the agent's state", &format!("rm -rf {}", opts.q(DATA))));
    }
    steps
}

/// A command printing the agent's last log lines (for an error saying why the node is not Ready).
pub fn log_tail(opts: &Options, lines: u32) -> String {
    match opts.service {
        Service::Systemd => opts.wrap(&format!("journalctl -u {SERVICE} -n {lines} --no-pager -o cat")),
        Service::Nohup => opts.wrap(&format!("tail -n {lines} {}", opts.q(LOG))),
    }
}

/// The agent's config file: its flags as fields (`edge-agent --config`), flags given beside it still winning.
pub fn agent_toml(node: &str, broker: &str, data: &str, join: &str, board: Option<&str>) -> String {
    let written_by = "Written by `edgectl install`";
    crate::agent_files::AgentToml { written_by, node, broker, data, join, board }.render()
}

/// `s` in single quotes for a POSIX shell (a `'` inside becomes `'\''`).
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((dir, _)) => dir,
        None => ".",
    }
}

#[cfg(test)]
mod tests {
    use super::{agent_toml, install, quote, uninstall, Digests, Options, Payload, Probe, Service, Step};

    fn sums() -> Digests {
        Digests { binary: "b".repeat(64), config: "c".repeat(64), unit: "u".repeat(64) }
    }

    fn opts(sudo: bool, prefix: &str, service: Service) -> Options {
        Options { sudo, prefix: prefix.into(), service, unit_user: None }
    }

    fn commands(steps: &[Step]) -> Vec<&str> {
        steps
            .iter()
            .map(|s| match s {
                Step::Upload { command, .. } | Step::Run { command, .. } => command.as_str(),
            })
            .collect()
    }

    /// Runs `command` as the remote login shell would, with `stdin`, and returns its exit status.
    fn sh(command: &str, stdin: &[u8]) -> std::process::ExitStatus {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait().unwrap()
    }

    #[test]
    fn the_probe_reads_four_lines() {
        let p = Probe::parse("aarch64\n32\n1000\nsystemd\n").unwrap();
        assert_eq!(p, Probe { machine: "aarch64".into(), long_bit: Some(32), uid: 1000, systemd: true });
        let p = Probe::parse("x86_64\n\n0\nnone\n").unwrap();
        assert_eq!((p.long_bit, p.uid, p.systemd), (None, 0, false));
        assert!(Probe::parse("x86_64\n").unwrap_err().contains("unreadable"));
    }

    #[test]
    fn root_with_systemd_uploads_three_files_then_restarts_the_unit() {
        let steps = install(&opts(false, "", Service::Systemd), &sums());
        let targets: Vec<_> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Upload { payload, path, .. } => Some((*payload, path.as_str())),
                Step::Run { .. } => None,
            })
            .collect();
        assert_eq!(
            targets,
            [
                (Payload::Binary, "/usr/local/bin/edge-agent"),
                (Payload::Config, "/etc/edge/agent.toml"),
                (Payload::Unit, "/etc/systemd/system/edge-agent.service"),
            ]
        );
        let c = commands(&steps);
        assert!(c.iter().all(|c| c.starts_with("sh -c '")), "{c:?}");
        assert!(c[0].contains("chmod 0755") && c[1].contains("chmod 0600") && c[2].contains("chmod 0644"), "{c:?}");
        assert!(c[3].contains("systemctl daemon-reload && systemctl enable edge-agent.service && systemctl restart"));
        assert_eq!(steps.len(), 4);
    }

    #[test]
    fn a_unit_user_is_created_and_owns_the_config() {
        let o = Options { unit_user: Some("edge-agent".into()), ..opts(false, "", Service::Systemd) };
        let c = commands(&install(&o, &sums())).into_iter().map(String::from).collect::<Vec<_>>();
        assert!(c[0].contains("getent passwd '\\''edge-agent'\\'' >/dev/null || useradd --system"), "{}", c[0]);
        assert!(c[2].contains("chown '\\''root:edge-agent'\\''") && c[2].contains("chmod 0640"), "{}", c[2]);
        assert!(!c[1].contains("chown") && !c[3].contains("chown"));
        // Without systemd the agent runs as the login: no user.
        let o = Options { service: Service::Nohup, ..o };
        assert!(!commands(&install(&o, &sums())).join(" ").contains("useradd"));
    }

    #[test]
    fn another_user_checks_sudo_first_and_runs_everything_under_it() {
        let steps = install(&opts(true, "", Service::Systemd), &sums());
        assert_eq!(
            steps[0],
            Step::Run { what: "sudo -n true (sudo without a password)".into(), command: "sudo -n true".into() }
        );
        assert!(commands(&steps)[1..].iter().all(|c| c.starts_with("sudo -n sh -c '")));
        assert!(commands(&uninstall(&opts(true, "", Service::Systemd), false))
            .iter()
            .all(|c| c.starts_with("sudo -n ")));
    }

    #[test]
    fn a_prefix_is_put_before_every_path_and_nohup_replaces_systemctl() {
        let o = opts(false, "/tmp/x y", Service::Nohup);
        let all = commands(&install(&o, &sums())).join("\n") + &commands(&uninstall(&o, true)).join("\n");
        assert!(!all.contains("systemctl"), "{all}");
        for path in ["/usr/local/bin/edge-agent", "/etc/edge/agent.toml", "/var/lib/edge-agent", "/run/edge-agent.pid"]
        {
            // Each path appears only under the prefix (the quoting doubles the quote marks of `x y`).
            let bare = all.matches(path).count();
            let prefixed = all.matches(&format!("/tmp/x y{path}")).count();
            assert!(bare > 0 && bare == prefixed, "{path}: {bare} vs {prefixed}\n{all}");
        }
        assert!(all.contains("nohup '\\''/tmp/x y/usr/local/bin/edge-agent'\\'' --config"), "{all}");
    }

    #[test]
    fn purge_alone_removes_the_state() {
        let o = opts(false, "", Service::Systemd);
        assert!(!commands(&uninstall(&o, false)).join(" ").contains("rm -rf"));
        assert!(commands(&uninstall(&o, true)).last().unwrap().contains("rm -rf '\\''/var/lib/edge-agent'\\''"));
    }

    /// The upload and stop scripts, run for real by `sh` against a temporary prefix: the file lands with its
    /// mode, a corrupted copy is refused and leaves nothing, and uninstall removes what install put.
    #[test]
    fn the_scripts_work_in_a_real_shell() {
        use sha2::Digest;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("root 'q'").display().to_string();
        let o = opts(false, &prefix, Service::Nohup);
        let body = b"#!/bin/sh\nexit 0\n";
        let sums = Digests { binary: hex::encode(sha2::Sha256::digest(body)), ..sums() };
        let steps = install(&o, &sums);
        assert!(sh(commands(&steps)[0], body).success());
        let bin = std::path::Path::new(&prefix).join("usr/local/bin/edge-agent");
        assert_eq!(std::fs::read(&bin).unwrap(), body);
        assert_eq!(std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777, 0o755);
        // The config's digest is "ccc…": whatever is sent differs, so nothing lands.
        assert!(!sh(commands(&steps)[1], b"node = \"n1\"\n").success());
        let etc = std::path::Path::new(&prefix).join("etc/edge");
        assert_eq!(std::fs::read_dir(&etc).unwrap().count(), 0, "no temporary file left");
        for c in commands(&uninstall(&o, true)) {
            assert!(sh(c, b"").success(), "{c}");
        }
        assert!(!bin.exists() && !etc.exists());
    }

    #[test]
    fn the_config_escapes_what_toml_needs() {
        let toml = agent_toml("n1", "mqtt://h:1883", "/var/lib/edge-agent", "a\"b\\c", Some("rpi-4"));
        assert!(toml.contains("node = \"n1\"\n") && toml.contains("board = \"rpi-4\"\n"), "{toml}");
        assert!(toml.contains(r#"join = "a\"b\\c""#), "{toml}");
        assert!(!agent_toml("n1", "b", "d", "t", None).contains("board"));
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
