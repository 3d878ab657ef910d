//! The embedded broker's policy for an external Mosquitto 2.x: a password file, an ACL file and a config
//! snippet, rendered from the cluster's tokens and members and kept current (`--mosquitto-dir`).
//!
//! Files in the directory, each replaced atomically (written beside, then renamed over):
//! - `passwd` (mode 0600): `USER:$7$ITER$SALT$HASH` lines, Mosquitto's salted PBKDF2-SHA512. Users: the
//!   controller ([`CONTROLLER_USER`], password [`edge_trust::MqttPassword::of_controller`]), every member
//!   (username = its node name, password derived from its key and the cluster key, so the controller can
//!   compute it at any time), and every token (`join.<id>`, password the secret in hex, which the controller
//!   sees only when it makes the token: its hash is kept in the [`TokenRecord`]).
//! - `acl`: `pattern` rules on `%u` equal to the embedded [`BrokerPolicy`](crate::registry::BrokerPolicy):
//!   a node writes only its uplink topics and reads only its downlink topics; a `user join.<id>` block per
//!   token (write its request topic, read its reply topic); the controller reads and writes the whole prefix.
//!   Node names are DNS labels (`edge_proto::validate_name`, checked at join), so a name never carries `/`,
//!   `+`, `#` or a leading `$` into a pattern; `join.` and `edge.controller` hold a `.`, which no node name
//!   does, so no node can take their rules.
//! - `edge.conf`: `per_listener_settings false`, `allow_anonymous false`, the two files, `set_tcp_nodelay
//!   true`, and a listener with `use_username_as_clientid true` (a per-listener option in Mosquitto: placed
//!   before any listener it opens a default one on 1883 instead); with a TLS port (`--mosquitto-tls-port`), a
//!   second listener speaking MQTT over TLS on `broker.crt` (a leaf of the cluster CA, then the root: agents
//!   pinned to the cluster key find it there) and `broker.key` (mode 0600), both issued anew at every start.
//!
//! **Reload and revocation.** After every rewrite the controller sends SIGHUP to the pid in
//! `--mosquitto-pid`. Mosquitto 2.0 then re-reads both files and checks every connected client against the
//! new password file: a client whose user is gone, or whose password changed, is disconnected at once (seen
//! with 2.0.11; `tests/tests/mosquitto_policy.rs` checks it), and cannot log in again. So deleting a node or a
//! token needs nothing beyond the rewrite, and there is no window in which a revoked node could reconnect: it
//! either connects before the reload (and is cut by it) or after (and is refused).
//!
//! Differences from the embedded broker, stated plainly: Mosquitto's ACL file grants every SUBSCRIBE (MQTT
//! 3.1.1 SUBACK success, even for `#`) and then delivers only what the ACL lets the user read; a second login
//! with valid credentials takes the session over (`use_username_as_clientid`) where the embedded broker
//! refuses it; and nodes that never joined cannot connect at all (no password, no login).
//!
//! The cost: one X25519 and one PBKDF2 per member when it first appears (cached, see [`Keeper`]); every
//! change rewrites the whole password file and Mosquitto re-verifies every connected client, which is why the
//! PBKDF2 iteration count is 1 (see [`ITERATIONS`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use edge_proto::{join, Channel, Topics};
use edge_trust::{ClusterKey, MqttPassword, PublicKey};
use hmac::{Hmac, Mac};
use sha2::Sha512;

use crate::model::{MemberRecord, TokenRecord};

/// The controller's own username on an external broker. The `.` keeps it apart from every node name.
pub const CONTROLLER_USER: &str = "edge.controller";
pub const PASSWD_FILE: &str = "passwd";
pub const ACL_FILE: &str = "acl";
pub const CONF_FILE: &str = "edge.conf";
pub const CERT_FILE: &str = "broker.crt";
pub const CERT_KEY_FILE: &str = "broker.key";
/// PBKDF2 rounds. Every password here is 128 random (or pseudo-random) bits, so stretching buys nothing
/// against guessing, while Mosquitto pays it for every connected client at every reload; `mosquitto_passwd`
/// would use 101.
pub const ITERATIONS: u32 = 1;
/// Salt bytes, as `mosquitto_passwd` makes them.
const SALT_LEN: usize = 12;

/// Why the files could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum MosquittoError {
    #[error("cannot write {path}")]
    Write { path: String, source: std::io::Error },
    #[error("cannot read Mosquitto's pid from {path}")]
    Pid { path: String, source: std::io::Error },
    #[error("{path} does not hold a process id")]
    BadPid { path: String },
    #[error("cannot signal Mosquitto (pid {pid}) to reload")]
    Signal { pid: i32, source: std::io::Error },
}

/// The three files' contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub passwd: String,
    pub acl: String,
    pub conf: String,
}

/// `$7$ITER$SALT$HASH` of `password` under a fresh random salt.
pub fn hash_password(password: &str) -> String {
    hash_with(password, &rand::random::<[u8; SALT_LEN]>(), ITERATIONS)
}

/// `$7$ITER$SALT$HASH`: PBKDF2-HMAC-SHA512 with one 64-byte block, standard base64 with padding (what
/// Mosquitto 2.0's `pw__digest` computes and its password file holds).
pub fn hash_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let mac = || <Hmac<Sha512> as Mac>::new_from_slice(password.as_bytes()).expect("HMAC accepts keys of any length");
    let mut u = mac();
    u.update(salt);
    u.update(&1u32.to_be_bytes());
    let mut u: [u8; 64] = u.finalize().into_bytes().into();
    let mut t = u;
    for _ in 1..iterations.max(1) {
        let mut next = mac();
        next.update(&u);
        u = next.finalize().into_bytes().into();
        t.iter_mut().zip(u).for_each(|(t, u)| *t ^= u);
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    format!("$7${}${}${}", iterations.max(1), b64.encode(salt), b64.encode(t))
}

/// Whether `hash` (`$7$…`) is of `password`: for tests and for checking a kept hash.
pub fn verify(hash: &str, password: &str) -> bool {
    let mut parts = hash.split('$');
    let (Some(""), Some("7"), Some(iter), Some(salt), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(iterations), Ok(salt)) = (iter.parse(), base64::engine::general_purpose::STANDARD.decode(salt)) else {
        return false;
    };
    hash_with(password, &salt, iterations) == hash
}

/// The password line of one member, or `None` when its stored key is not usable (logged).
fn member_line(key: &ClusterKey, m: &MemberRecord) -> Option<String> {
    let mut bytes = [0u8; 32];
    let public = hex::decode_to_slice(&m.public_key, &mut bytes).ok().and_then(|()| PublicKey::from_bytes(&bytes).ok());
    let password = public.and_then(|p| MqttPassword::for_controller(key, &p, &m.name).ok());
    match password {
        Some(p) => Some(format!("{}:{}", m.name, hash_password(p.as_str()))),
        None => {
            tracing::warn!(node = %m.name, "member's stored key is unusable; left out of Mosquitto's password file");
            None
        }
    }
}

/// The password file: the controller, then tokens, then members, one `USER:HASH` line each, sorted.
pub fn render_passwd<'a>(
    controller_hash: &str,
    tokens: impl IntoIterator<Item = (&'a str, &'a str)>,
    members: impl IntoIterator<Item = &'a str>,
) -> String {
    let mut out = format!("{CONTROLLER_USER}:{controller_hash}\n");
    for (id, hash) in tokens {
        let _ = writeln!(out, "{}{id}:{hash}", join::JOIN_USER_PREFIX);
    }
    for line in members {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The ACL file for topics under `topics`' prefix and the token ids `tokens` (16 lowercase hex digits each).
pub fn render_acl<'a>(topics: &Topics, tokens: impl IntoIterator<Item = &'a str>) -> String {
    let prefix = topics.prefix();
    let mut out =
        String::from("# Written by edge-controller from its tokens and members; rewritten on every change.\n");
    let _ = write!(
        out,
        "\n# The controller: everything under the prefix.\nuser {CONTROLLER_USER}\ntopic readwrite {prefix}/#\n"
    );
    for id in tokens {
        // A token id is hex (`parse_topic` insists): it cannot widen a topic.
        let _ = write!(
            out,
            "\nuser {user}\ntopic write {prefix}/join/{id}/request\ntopic read {prefix}/join/{id}/reply\n",
            user = format_args!("{}{id}", join::JOIN_USER_PREFIX),
        );
    }
    out.push_str(
        "\n# Every node (username = node name): its own uplink topics to write, its downlink topics to read.\n",
    );
    for ch in Channel::UPLINK {
        let _ = writeln!(out, "pattern write {}", topics.node("%u", ch));
    }
    for ch in Channel::DOWNLINK {
        let _ = writeln!(out, "pattern read {}", topics.node("%u", ch));
    }
    out
}

/// `edge.conf` for files in `dir`, listening on `port` (all interfaces), and with MQTT over TLS on `tls_port`.
pub fn render_conf(dir: &Path, port: u16, tls_port: Option<u16>) -> String {
    let tls = match tls_port {
        Some(p) => format!(
            "listener {p}\ncertfile {dir}/{CERT_FILE}\nkeyfile {dir}/{CERT_KEY_FILE}\nuse_username_as_clientid true\n",
            dir = dir.display()
        ),
        None => String::new(),
    };
    let dir = dir.display();
    format!(
        "# Mosquitto 2.x settings for an edge cluster, written by edge-controller (rewritten at every start).\n\
         # Run `mosquitto -c {dir}/{CONF_FILE}`, or `include_dir {dir}` from a mosquitto.conf with no listener of\n\
         # its own (put `use_username_as_clientid true` under every listener you add).\n\
         per_listener_settings false\n\
         allow_anonymous false\n\
         password_file {dir}/{PASSWD_FILE}\n\
         acl_file {dir}/{ACL_FILE}\n\
         set_tcp_nodelay true\n\
         listener {port}\n\
         use_username_as_clientid true\n\
         {tls}"
    )
}

/// Renders all three files from scratch (`edgectl broker mosquitto-config`); a [`Keeper`] caches instead.
pub fn render(
    key: &ClusterKey,
    topics: &Topics,
    tokens: &BTreeMap<String, TokenRecord>,
    members: &BTreeMap<String, MemberRecord>,
    dir: &Path,
    port: u16,
) -> Rendered {
    let lines: Vec<String> = members.values().filter_map(|m| member_line(key, m)).collect();
    let controller = hash_password(MqttPassword::of_controller(key).as_str());
    Rendered {
        passwd: render_passwd(&controller, token_hashes(tokens), lines.iter().map(String::as_str)),
        acl: render_acl(topics, tokens_with_hash(tokens)),
        conf: render_conf(dir, port, None),
    }
}

/// Tokens with a kept hash (tokens made before hashes were kept cannot log in to Mosquitto).
fn token_hashes(tokens: &BTreeMap<String, TokenRecord>) -> impl Iterator<Item = (&str, &str)> {
    tokens.values().filter_map(|t| t.mosquitto_hash.as_deref().map(|h| (t.id.as_str(), h)))
}

fn tokens_with_hash(tokens: &BTreeMap<String, TokenRecord>) -> impl Iterator<Item = &str> {
    token_hashes(tokens).map(|(id, _)| id)
}

/// Keeps one Mosquitto's files current: owns the directory, remembers each member's password line (so a
/// member is hashed once, not at every change) and signals Mosquitto after each rewrite.
pub struct Keeper {
    dir: PathBuf,
    pid_file: Option<PathBuf>,
    topics: Topics,
    port: u16,
    controller: String,
    /// Member name → (its public key hex, its password line). Rebuilt lines only for new or re-keyed members.
    lines: HashMap<String, (String, String)>,
    /// The TLS listener's port and its certificate chain and key (PEM), written once at the first sync.
    tls: Option<(u16, String, String)>,
    tls_written: bool,
}

impl std::fmt::Debug for Keeper {
    // By hand: the TLS listener's private key must not reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("tls_port", &self.tls.as_ref().map(|(p, _, _)| *p))
            .field("members", &self.lines.len())
            .finish_non_exhaustive()
    }
}

impl Keeper {
    pub fn new(dir: PathBuf, pid_file: Option<PathBuf>, topics: Topics, port: u16, key: &ClusterKey) -> Keeper {
        let controller = hash_password(MqttPassword::of_controller(key).as_str());
        Keeper { dir, pid_file, topics, port, controller, lines: HashMap::new(), tls: None, tls_written: false }
    }

    /// Adds a TLS listener on `port` with `identity` (a leaf of the cluster CA) to the files.
    pub fn with_tls(mut self, port: u16, identity: &edge_tls::ServerIdentity) -> Keeper {
        self.tls = Some((port, identity.chain_pem.clone(), identity.key_pem.clone()));
        self
    }

    /// Rewrites the files for `tokens` and `members`, then tells Mosquitto to reload.
    pub fn sync(
        &mut self,
        key: &ClusterKey,
        tokens: &BTreeMap<String, TokenRecord>,
        members: &BTreeMap<String, MemberRecord>,
    ) -> Result<(), MosquittoError> {
        self.lines.retain(|name, (public, _)| members.get(name).is_some_and(|m| m.public_key == *public));
        for m in members.values() {
            if !self.lines.contains_key(&m.name) {
                if let Some(line) = member_line(key, m) {
                    self.lines.insert(m.name.clone(), (m.public_key.clone(), line));
                }
            }
        }
        let member_lines = members.keys().filter_map(|name| self.lines.get(name).map(|(_, l)| l.as_str()));
        let passwd = render_passwd(&self.controller, token_hashes(tokens), member_lines);
        let acl = render_acl(&self.topics, tokens_with_hash(tokens));
        std::fs::create_dir_all(&self.dir).map_err(|source| self.write_error(&self.dir, source))?;
        self.write(PASSWD_FILE, &passwd, 0o600)?;
        self.write(ACL_FILE, &acl, 0o644)?;
        if let (Some((_, chain, key)), false) = (&self.tls, self.tls_written) {
            self.write(CERT_KEY_FILE, key, 0o600)?;
            self.write(CERT_FILE, chain, 0o644)?;
            self.tls_written = true;
        }
        let tls_port = self.tls.as_ref().map(|(p, _, _)| *p);
        self.write(CONF_FILE, &render_conf(&self.dir, self.port, tls_port), 0o644)?;
        self.reload()
    }

    fn write_error(&self, path: &Path, source: std::io::Error) -> MosquittoError {
        MosquittoError::Write { path: path.display().to_string(), source }
    }

    /// Writes `name` beside itself and renames it over: Mosquitto never reads half a file.
    fn write(&self, name: &str, text: &str, mode: u32) -> Result<(), MosquittoError> {
        let path = self.dir.join(name);
        let temp = self.dir.join(format!(".{name}.new"));
        let result = (|| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
            let mut file = options.open(&temp)?;
            // The mode of a file that existed already is not changed by `open`.
            #[cfg(unix)]
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            file.write_all(text.as_bytes())?;
            // No fsync: the files are rendered again at every start, so a crash loses nothing.
            std::fs::rename(&temp, &path)
        })();
        result.map_err(|source| self.write_error(&path, source))
    }

    /// SIGHUP to the pid in the pid file, read afresh each time (Mosquitto may have been restarted).
    fn reload(&self) -> Result<(), MosquittoError> {
        let Some(pid_file) = &self.pid_file else { return Ok(()) };
        let path = pid_file.display().to_string();
        let text =
            std::fs::read_to_string(pid_file).map_err(|source| MosquittoError::Pid { path: path.clone(), source })?;
        let pid: i32 = text.trim().parse().map_err(|_| MosquittoError::BadPid { path: path.clone() })?;
        let target = rustix::process::Pid::from_raw(pid).ok_or(MosquittoError::BadPid { path })?;
        rustix::process::kill_process(target, rustix::process::Signal::HUP)
            .map_err(|e| MosquittoError::Signal { pid, source: e.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_mosquitto_passwd() {
        // `mosquitto_passwd -b` (2.0.11, 101 rounds) wrote this for user a, password pwa.
        let line = "$7$101$d6qbg8//AMmZFhTY$XEJJrgl7o/HoiUE4R/xIpG1ZC8KT3sWpGnWUwObZbn/leMqQ5+qRg9gWU47PdOhcnjAbrYS8cjzoXWzBfVJjeg==";
        assert!(verify(line, "pwa"));
        assert!(!verify(line, "pwb"));
        let mine = hash_password("secret");
        assert!(mine.starts_with("$7$1$") && verify(&mine, "secret") && !verify(&mine, "secreT"), "{mine}");
        assert_ne!(hash_password("secret"), mine, "a fresh salt every time");
        assert!(!verify("$6$abc$def", "x") && !verify("", "x") && !verify("$7$x$AA==$AA==", "x"));
    }

    #[test]
    fn the_acl_confines_nodes_and_join_users_to_their_topics() {
        let acl = render_acl(&Topics::default(), ["00112233445566ff"]);
        for line in [
            "user edge.controller\ntopic readwrite edge/v1/#\n",
            "user join.00112233445566ff\ntopic write edge/v1/join/00112233445566ff/request\n\
             topic read edge/v1/join/00112233445566ff/reply\n",
            "pattern write edge/v1/nodes/%u/status\n",
            "pattern write edge/v1/nodes/%u/module/req\n",
            "pattern read edge/v1/nodes/%u/spec\n",
            "pattern read edge/v1/nodes/%u/module/chunk\n",
            "pattern read edge/v1/nodes/%u/ack\n",
        ] {
            assert!(acl.contains(line), "{line} not in\n{acl}");
        }
        let patterns = acl.lines().filter(|l| l.starts_with("pattern")).count();
        assert_eq!(patterns, Channel::UPLINK.len() + Channel::DOWNLINK.len());
        assert!(!acl.contains("pattern readwrite") && !acl.contains("pattern read edge/v1/nodes/%u/hello"));
    }

    #[test]
    fn the_password_file_holds_the_controller_tokens_and_members() {
        let key = ClusterKey::from_secret_bytes(&[1; 32]);
        let node = ClusterKey::from_secret_bytes(&[2; 32]);
        let mut members = BTreeMap::new();
        members.insert(
            "pi-1".to_string(),
            MemberRecord {
                name: "pi-1".into(),
                public_key: hex::encode(node.public().to_bytes()),
                password_sha256: String::new(),
                joined_ms: 0,
                token: "00".into(),
                labels: BTreeMap::new(),
            },
        );
        let mut broken = members["pi-1"].clone();
        broken.name = "broken".into();
        broken.public_key = "zz".into();
        members.insert("broken".into(), broken);
        let secret = "00112233445566778899aabbccddeeff";
        let mut tokens = BTreeMap::new();
        tokens.insert(
            "00112233445566ff".to_string(),
            TokenRecord {
                id: "00112233445566ff".into(),
                secret_sha256: String::new(),
                created_ms: 0,
                expires_ms: 0,
                uses: 1,
                uses_left: 1,
                node: None,
                labels: BTreeMap::new(),
                joined: Vec::new(),
                mosquitto_hash: Some(hash_password(secret)),
            },
        );
        let r = render(&key, &Topics::default(), &tokens, &members, Path::new("/etc/edge"), 1883);
        let users: BTreeMap<&str, &str> = r.passwd.lines().filter_map(|l| l.split_once(':')).collect();
        assert_eq!(users.len(), 3, "{}", r.passwd);
        assert!(verify(users["edge.controller"], MqttPassword::of_controller(&key).as_str()));
        assert!(verify(users["join.00112233445566ff"], secret));
        let pi = MqttPassword::for_node(&node, &key.public(), "pi-1").unwrap();
        assert!(verify(users["pi-1"], pi.as_str()), "the node's own derivation logs in");
        assert!(r.conf.contains("password_file /etc/edge/passwd\n") && r.conf.contains("acl_file /etc/edge/acl\n"));
        let listener = r.conf.find("listener 1883").unwrap();
        assert!(r.conf.find("\nuse_username_as_clientid true\n").unwrap() > listener, "{}", r.conf);
        for setting in ["allow_anonymous false", "set_tcp_nodelay true", "per_listener_settings false"] {
            assert!(r.conf.contains(setting), "{setting}");
        }
    }

    #[test]
    fn a_keeper_writes_the_files_and_hashes_a_member_once() {
        let dir = tempfile::tempdir().unwrap();
        let key = ClusterKey::from_secret_bytes(&[1; 32]);
        let mut keeper = Keeper::new(dir.path().to_path_buf(), None, Topics::default(), 1883, &key);
        let member = |name: &str, seed: u8| MemberRecord {
            name: name.into(),
            public_key: hex::encode(ClusterKey::from_secret_bytes(&[seed; 32]).public().to_bytes()),
            password_sha256: String::new(),
            joined_ms: 0,
            token: "00".into(),
            labels: BTreeMap::new(),
        };
        let mut members = BTreeMap::from([("a".to_string(), member("a", 2))]);
        keeper.sync(&key, &BTreeMap::new(), &members).unwrap();
        let first = std::fs::read_to_string(dir.path().join(PASSWD_FILE)).unwrap();
        members.insert("b".into(), member("b", 3));
        keeper.sync(&key, &BTreeMap::new(), &members).unwrap();
        let second = std::fs::read_to_string(dir.path().join(PASSWD_FILE)).unwrap();
        let line_a = first.lines().find(|l| l.starts_with("a:")).unwrap();
        assert!(second.contains(line_a), "a's salted line is kept, not hashed again");
        assert!(second.lines().any(|l| l.starts_with("b:")));
        // Deleted: gone from the file. Re-keyed under the same name: a new line.
        members.remove("a");
        members.insert("b".into(), member("b", 4));
        keeper.sync(&key, &BTreeMap::new(), &members).unwrap();
        let third = std::fs::read_to_string(dir.path().join(PASSWD_FILE)).unwrap();
        assert!(!third.lines().any(|l| l.starts_with("a:")));
        let b = third.lines().find(|l| l.starts_with("b:")).unwrap().split_once(':').unwrap().1;
        let new_b = MqttPassword::for_node(&ClusterKey::from_secret_bytes(&[4; 32]), &key.public(), "b").unwrap();
        assert!(verify(b, new_b.as_str()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(PASSWD_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(std::fs::read_to_string(dir.path().join(CONF_FILE)).unwrap().contains("allow_anonymous false"));
    }

    #[test]
    fn a_missing_or_bad_pid_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = ClusterKey::from_secret_bytes(&[1; 32]);
        let pid = dir.path().join("mosquitto.pid");
        let mut keeper = Keeper::new(dir.path().join("m"), Some(pid.clone()), Topics::default(), 1883, &key);
        let e = keeper.sync(&key, &BTreeMap::new(), &BTreeMap::new()).unwrap_err();
        assert!(matches!(e, MosquittoError::Pid { .. }) && e.to_string().contains("mosquitto.pid"), "{e}");
        std::fs::write(&pid, "not a pid\n").unwrap();
        let e = keeper.sync(&key, &BTreeMap::new(), &BTreeMap::new()).unwrap_err();
        assert!(matches!(e, MosquittoError::BadPid { .. }), "{e}");
    }
}
