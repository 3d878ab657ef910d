//! One SSH session to a host (russh): key login, the host's key checked against known_hosts, and commands run
//! on exec channels, some with a file on their standard input (how `install` sends files: no SFTP needed, and
//! `sudo` works the same for both).
//!
//! Host keys are trusted as OpenSSH's `StrictHostKeyChecking=yes` does unless told otherwise: an unknown host
//! is refused, naming its fingerprint and the flag that accepts it (`--accept-new-host-key`, which records the
//! key, as `accept-new` does); a host whose key changed is always refused.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::ChannelMsg;
use tokio::io::AsyncRead;

/// `USER@HOST` and the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl Target {
    /// `USER@HOST` (HOST a name, an IPv4 address, or an IPv6 one with or without brackets).
    pub fn parse(s: &str, port: u16) -> Result<Target, String> {
        let (user, host) = s.rsplit_once('@').ok_or_else(|| format!("--ssh {s:?}: expected USER@HOST"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if user.is_empty() || host.is_empty() {
            return Err(format!("--ssh {s:?}: expected USER@HOST"));
        }
        Ok(Target { user: user.to_string(), host: host.to_string(), port })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.user, self.host)?;
        if self.port != 22 {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// How the host's key is trusted.
#[derive(Debug, Clone)]
pub struct HostKeys {
    pub known_hosts: PathBuf,
    /// Trust a host absent from `known_hosts` and record its key there.
    pub accept_new: bool,
}

/// What a command did.
#[derive(Debug)]
pub struct Output {
    /// The exit status (`None`: killed by a signal or no status sent).
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// The last line of stderr (else stdout), for a one-line error.
    pub fn last_line(&self) -> String {
        let text = if self.stderr.iter().any(|b| !b.is_ascii_whitespace()) { &self.stderr } else { &self.stdout };
        String::from_utf8_lossy(text).lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string()
    }
}

/// An authenticated session.
pub struct Session {
    handle: Handle<Checker>,
}

/// Checks the host's key; records why it refused one, since russh reports only that the handshake failed.
struct Checker {
    target: Target,
    keys: HostKeys,
    refusal: Arc<Mutex<Option<String>>>,
}

impl Checker {
    fn verdict(&self, key: &PublicKeyOrCertificate) -> Result<(), String> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Err(format!("{} offered a host certificate, which edgectl does not check", self.target.host));
        };
        let (host, port, path) = (&self.target.host, self.target.port, &self.keys.known_hosts);
        let fingerprint = key.fingerprint(HashAlg::Sha256);
        match russh::keys::check_known_hosts_path(host, port, key, path) {
            Ok(true) => Ok(()),
            Ok(false) if self.keys.accept_new => {
                russh::keys::known_hosts::learn_known_hosts_path(host, port, key, path)
                    .map_err(|e| format!("cannot record the host key in {}: {e}", path.display()))
            }
            Ok(false) => Err(format!(
                "the host key of {host}:{port} ({fingerprint}) is not in {}: check it (`ssh-keyscan -p {port} {host}` \
                 on a trusted network, or the board's console) and give --accept-new-host-key to trust and record it",
                path.display()
            )),
            Err(russh::keys::Error::KeyChanged { line }) => Err(format!(
                "the host key of {host}:{port} ({fingerprint}) differs from the one on line {line} of {}: someone \
                 may be impersonating the host, or it was reinstalled (then remove that line)",
                path.display()
            )),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        match self.verdict(key) {
            Ok(()) => Ok(true),
            Err(why) => {
                *self.refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                Ok(false)
            }
        }
    }
}

/// The key to log in with: `identity`, else ~/.ssh/id_ed25519, else ~/.ssh/id_rsa.
pub fn default_identity(identity: Option<&Path>, home: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = identity {
        return Ok(path.to_path_buf());
    }
    let home = home.ok_or_else(|| anyhow!("no home directory to find an SSH key in: give --identity FILE"))?;
    let candidates = [home.join(".ssh/id_ed25519"), home.join(".ssh/id_rsa")];
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        anyhow!(
            "no SSH key: {} and {} are missing (give --identity FILE)",
            candidates[0].display(),
            candidates[1].display()
        )
    })
}

/// How long the TCP connection, the handshake and the login may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

impl Session {
    pub async fn connect(target: &Target, identity: &Path, keys: HostKeys) -> Result<Session> {
        // Before connecting: a missing or locked key is the user's to fix, whatever the host says.
        let key = russh::keys::load_secret_key(identity, None).map_err(|e| match e {
            russh::keys::Error::KeyIsEncrypted => anyhow!(
                "the SSH key {} has a passphrase, which edgectl cannot ask for: use a key without one",
                identity.display()
            ),
            e => anyhow!("cannot load the SSH key {}: {e}", identity.display()),
        })?;
        let refusal = Arc::new(Mutex::new(None));
        let checker = Checker { target: target.clone(), keys, refusal: refusal.clone() };
        let config = Arc::new(client::Config {
            // A session that goes silent (a board unplugged mid-upload) ends instead of hanging.
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 3,
            ..Default::default()
        });
        let login = async {
            let mut handle = client::connect(config, (target.host.as_str(), target.port), checker).await.map_err(
                |e| match refusal.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    Some(why) => anyhow!("{why}"),
                    None => anyhow!("cannot connect to {}:{}: {e}", target.host, target.port),
                },
            )?;
            let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
            let auth = handle
                .authenticate_publickey(&target.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
                .await
                .with_context(|| format!("SSH login to {target} failed"))?;
            if !auth.success() {
                bail!(
                    "{target} refused the key {} (is its public half in ~{}/.ssh/authorized_keys?)",
                    identity.display(),
                    target.user
                );
            }
            Ok(Session { handle })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, login)
            .await
            .map_err(|_| anyhow!("no SSH session with {target} after {}s", CONNECT_TIMEOUT.as_secs()))?
    }

    /// Runs `command` with an empty standard input.
    pub async fn run(&self, command: &str) -> Result<Output> {
        self.run_with_input(command, tokio::io::empty()).await
    }

    /// Runs `command` with `input` on its standard input (closed at its end), collecting its output meanwhile:
    /// a command that writes while it reads never blocks on a full window.
    pub async fn run_with_input(&self, command: &str, input: impl AsyncRead + Unpin) -> Result<Output> {
        let channel = self.handle.channel_open_session().await.context("cannot open an SSH channel")?;
        let (mut read, write) = channel.split();
        write.exec(true, command).await.context("cannot start a command over SSH")?;
        let send = async {
            write.data(input).await?;
            write.eof().await
        };
        let collect = async {
            let mut out = Output { status: None, stdout: Vec::new(), stderr: Vec::new() };
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                    _ => {}
                }
            }
            out
        };
        let (sent, out) = tokio::join!(send, collect);
        // A command that failed early stops reading: its status says why better than the broken send.
        if let Err(e) = sent {
            if out.success() || out.status.is_none() {
                return Err(anyhow!("sending data over SSH failed: {e}"));
            }
        }
        Ok(out)
    }

    pub async fn close(self) {
        let _ = self.handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{default_identity, Output, Target};

    #[test]
    fn a_target_is_user_at_host() {
        let t = Target::parse("pi@kitchen.local", 22).unwrap();
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.to_string()),
            ("pi", "kitchen.local", "pi@kitchen.local".into())
        );
        assert_eq!(Target::parse("root@[::1]", 2222).unwrap().to_string(), "root@::1:2222");
        for bad in ["kitchen", "@host", "root@"] {
            assert!(Target::parse(bad, 22).unwrap_err().contains("expected USER@HOST"), "{bad}");
        }
    }

    #[test]
    fn the_default_key_is_ed25519_then_rsa() {
        let home = tempfile::tempdir().unwrap();
        let err = default_identity(None, Some(home.path())).unwrap_err().to_string();
        assert!(err.contains("id_ed25519") && err.contains("id_rsa") && err.contains("--identity"), "{err}");
        std::fs::create_dir(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/id_rsa"), "").unwrap();
        assert!(default_identity(None, Some(home.path())).unwrap().ends_with(".ssh/id_rsa"));
        std::fs::write(home.path().join(".ssh/id_ed25519"), "").unwrap();
        assert!(default_identity(None, Some(home.path())).unwrap().ends_with(".ssh/id_ed25519"));
        assert_eq!(default_identity(Some(Path::new("/k")), None).unwrap(), Path::new("/k"));
    }

    #[test]
    fn the_last_line_prefers_stderr() {
        let out = Output { status: Some(1), stdout: b"a\nb\n".to_vec(), stderr: b"x\nno space left\n\n".to_vec() };
        assert_eq!(out.last_line(), "no space left");
        let out = Output { status: Some(1), stdout: b"a\nb\n".to_vec(), stderr: b"\n".to_vec() };
        assert_eq!(out.last_line(), "b");
    }
}
