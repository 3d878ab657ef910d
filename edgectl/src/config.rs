//! The client's configuration file, `$XDG_CONFIG_HOME/edge/config.yaml` (else `~/.config/edge/config.yaml`): named
//! contexts, each a controller's address, and the current one, in the shape of a (much smaller) kubeconfig:
//!
//! ```yaml
//! current-context: dev
//! contexts:
//! - name: dev
//!   server: http://127.0.0.1:7700
//! ```
//!
//! Which controller a command talks to ([`resolve`]): `--server`, else `$EDGE_SERVER`, else the context named by
//! `--context` or `current-context`, else [`DEFAULT_SERVER`]. A missing file is no error (the default applies);
//! a broken or unreadable one is an error only when a command needs it, one line naming the file and line.
//!
//! A context may carry the bearer `token` its requests send (`edgectl dev` writes its admin token) and the
//! `certificate-authority` (a PEM file) that an `https://` server's certificate must chain to. The token a
//! command sends ([`resolve`]): `--token`, else `$EDGE_TOKEN`, else the token of the context it talks to; with
//! `--server`/`$EDGE_SERVER` that is the first context with the same server, so a context's token never goes to
//! another controller. Keys this version does not know, in a
//! context or at the top, are kept as they were when the file is written again, so an older edgectl switching
//! contexts does not drop a newer one's fields. The file is written whole to a temporary file of mode 0600
//! beside it, then renamed over it (it will hold credentials; a crash leaves the old file or the new, never half).
//!
//! Parsing and rendering are pure ([`Config::parse`], [`Config::render`]); [`load`] and [`save`] do the I/O.

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter};

use crate::manifest::tree::{documents, Mark, Node, Value};

/// The controller a command talks to when nothing says otherwise (`edgectl dev`'s default API address).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

/// The context `edgectl dev` writes.
pub const DEV_CONTEXT: &str = "dev";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub current: Option<String>,
    pub contexts: Vec<Context>,
    /// Top-level keys this version does not read, kept as written.
    extra: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub name: String,
    pub server: String,
    /// The bearer token its requests send.
    pub token: Option<String>,
    /// A PEM file of the CA an `https://` server's certificate must chain to.
    pub certificate_authority: Option<String>,
    /// Keys this version does not read, kept as written.
    extra: Vec<(String, String)>,
}

/// What a command talks to: the server, where it came from, and the credential and CA that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub server: String,
    pub source: Source,
    pub token: Option<String>,
    pub certificate_authority: Option<String>,
}

/// Where the file is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub at: Mark,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Where the server of a command came from (`config current-context` and errors say it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    Context(String),
    Default,
}

fn error(at: Mark, message: impl Into<String>) -> ParseError {
    ParseError { at, message: message.into() }
}

/// A scalar's text, or an error naming what `field` should have been.
fn scalar(node: &Node, field: &str) -> Result<String, ParseError> {
    match &node.value {
        Value::Scalar { text, .. } if !node.is_null() => Ok(text.clone()),
        _ => Err(error(node.at, format!("{field}: expected a string, found {}", node.kind()))),
    }
}

/// The entries of a mapping as (key, value node), refusing repeated keys.
fn entries<'a>(node: &'a Node, field: &str) -> Result<Vec<(String, &'a Node)>, ParseError> {
    let Value::Map(pairs) = &node.value else {
        return Err(error(node.at, format!("{field}: expected a mapping, found {}", node.kind())));
    };
    let mut out: Vec<(String, &Node)> = Vec::new();
    for (k, v) in pairs {
        let key = scalar(k, field)?;
        if out.iter().any(|(seen, _)| *seen == key) {
            return Err(error(k.at, format!("{field}: {key} is given twice")));
        }
        out.push((key, v));
    }
    Ok(out)
}

/// An unknown key's value, kept if it is a scalar (what a later field would be); refused otherwise, since it
/// could not be written back as it was.
fn keep(key: &str, node: &Node, field: &str) -> Result<(String, String), ParseError> {
    match &node.value {
        Value::Scalar { text, .. } => Ok((key.to_string(), text.clone())),
        _ => Err(error(
            node.at,
            format!("{field}{key}: unknown field (this edgectl reads name, server, token and certificate-authority)"),
        )),
    }
}

impl Config {
    /// Reads a config file's text; an empty file is an empty config.
    pub fn parse(text: &str) -> Result<Config, ParseError> {
        let docs = documents(text).map_err(|e| error(e.at, e.message))?;
        let mut config = Config::default();
        let Some(doc) = docs.first() else { return Ok(config) };
        if let Some(second) = docs.get(1) {
            return Err(error(second.at, "one document expected"));
        }
        if doc.is_null() {
            return Ok(config);
        }
        for (key, value) in entries(doc, "the file")? {
            match key.as_str() {
                "current-context" if value.is_null() => {}
                "current-context" => config.current = Some(scalar(value, "current-context")?),
                "contexts" if value.is_null() => {}
                "contexts" => {
                    let Value::Seq(items) = &value.value else {
                        return Err(error(value.at, format!("contexts: expected a list, found {}", value.kind())));
                    };
                    for (i, item) in items.iter().enumerate() {
                        let c = Context::parse(item, &format!("contexts[{i}]"))?;
                        if config.context(&c.name).is_some() {
                            return Err(error(item.at, format!("contexts[{i}]: context {} is given twice", c.name)));
                        }
                        config.contexts.push(c);
                    }
                }
                _ => config.extra.push(keep(&key, value, "")?),
            }
        }
        Ok(config)
    }

    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// Creates context `name` or sets its server; true when it was created.
    pub fn set_context(&mut self, name: &str, server: &str) -> bool {
        match self.contexts.iter_mut().find(|c| c.name == name) {
            Some(c) => {
                c.server = server.to_string();
                false
            }
            None => {
                self.contexts.push(Context {
                    name: name.to_string(),
                    server: server.to_string(),
                    token: None,
                    certificate_authority: None,
                    extra: Vec::new(),
                });
                true
            }
        }
    }

    /// Makes `name` the current context; it must exist.
    pub fn use_context(&mut self, name: &str) -> Result<()> {
        if self.context(name).is_none() {
            return Err(anyhow!("no context exists with the name {name:?} ({})", self.known()));
        }
        self.current = Some(name.to_string());
        Ok(())
    }

    /// The contexts there are, for an error message.
    pub fn known(&self) -> String {
        if self.contexts.is_empty() {
            "there are none: `edgectl config set-context NAME --server URL` adds one".into()
        } else {
            let names: Vec<&str> = self.contexts.iter().map(|c| c.name.as_str()).collect();
            format!("there are: {}", names.join(", "))
        }
    }

    pub fn render(&self) -> String {
        let s = |t: &str| Yaml::String(t.to_string());
        let mut top = Hash::new();
        if let Some(c) = &self.current {
            top.insert(s("current-context"), s(c));
        }
        let contexts = self
            .contexts
            .iter()
            .map(|c| {
                let mut h = Hash::new();
                h.insert(s("name"), s(&c.name));
                h.insert(s("server"), s(&c.server));
                if let Some(t) = &c.token {
                    h.insert(s("token"), s(t));
                }
                if let Some(ca) = &c.certificate_authority {
                    h.insert(s("certificate-authority"), s(ca));
                }
                for (k, v) in &c.extra {
                    h.insert(s(k), s(v));
                }
                Yaml::Hash(h)
            })
            .collect();
        top.insert(s("contexts"), Yaml::Array(contexts));
        for (k, v) in &self.extra {
            top.insert(s(k), s(v));
        }
        let mut out = String::new();
        // Writing into a String cannot fail; an error would be the emitter's bug, shown rather than hidden.
        if let Err(e) = YamlEmitter::new(&mut out).dump(&Yaml::Hash(top)) {
            out = format!("# cannot render: {e}");
        }
        // The emitter starts with a `---` line: a config file is one document, written without it.
        let body = out.strip_prefix("---\n").unwrap_or(&out);
        format!("{body}\n")
    }
}

impl Context {
    fn parse(node: &Node, field: &str) -> Result<Context, ParseError> {
        let (mut name, mut server, mut extra) = (None, None, Vec::new());
        let (mut token, mut certificate_authority) = (None, None);
        for (key, value) in entries(node, field)? {
            match key.as_str() {
                "name" => name = Some(scalar(value, &format!("{field}.name"))?),
                "server" => server = Some(scalar(value, &format!("{field}.server"))?),
                "token" => token = Some(scalar(value, &format!("{field}.token"))?),
                "certificate-authority" => {
                    certificate_authority = Some(scalar(value, &format!("{field}.certificate-authority"))?)
                }
                _ => extra.push(keep(&key, value, &format!("{field}."))?),
            }
        }
        let name = name.ok_or_else(|| error(node.at, format!("{field}: name is required")))?;
        let server = server.ok_or_else(|| error(node.at, format!("{field} ({name}): server is required")))?;
        Ok(Context { name, server, token, certificate_authority, extra })
    }
}

/// The config file's path: under `$XDG_CONFIG_HOME` if set (and absolute, as the XDG spec asks), else under
/// `$HOME/.config`; none without either.
pub fn path() -> Option<PathBuf> {
    path_from(std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME"))
}

fn path_from(xdg: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let base = match xdg.map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(x) => x,
        None => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("edge").join("config.yaml"))
}

/// The config at `path`; `None` when there is no such file.
pub fn load(path: &Path) -> Result<Option<Config>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
    };
    Config::parse(&text).map(Some).map_err(|e| anyhow!("{}:{e}", path.display()))
}

/// Writes `config` to `path` (mode 0600, its directory created 0700 if missing), replacing the file at once.
pub fn save(path: &Path, config: &Config) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().ok_or_else(|| anyhow!("{} has no directory", path.display()))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".config.yaml.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(config.render().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("cannot write {}: {e}", path.display())
    })
}

/// Creates or updates context `name` with `server` and makes it current (`edgectl dev`); the other contexts stay
/// as they were. A broken file is left alone (the error says where it is broken).
pub fn make_current(path: &Path, name: &str, server: &str, token: Option<&str>, ca: Option<&str>) -> Result<()> {
    let mut config = load(path)?.unwrap_or_default();
    config.set_context(name, server);
    if let Some(c) = config.contexts.iter_mut().find(|c| c.name == name) {
        c.token = token.map(str::to_string);
        c.certificate_authority = ca.map(str::to_string);
    }
    config.current = Some(name.to_string());
    save(path, &config)
}

/// What a command talks to (see the module doc). The file is read only when it is needed: for the server when
/// neither `flag` nor `env` gives it, and for the token when neither `token_flag` nor `token_env` does (then a
/// broken file only means no token).
pub fn resolve(
    flag: Option<&str>,
    env: Option<&str>,
    context: Option<&str>,
    file: Option<&Path>,
    token_flag: Option<&str>,
    token_env: Option<&str>,
) -> Result<Target> {
    let given = |v: Option<&str>| v.filter(|s| !s.trim().is_empty()).map(|s| s.trim().to_string());
    let explicit = match (given(flag), given(env)) {
        (Some(s), _) => Some((s, Source::Flag)),
        (None, Some(s)) => Some((s, Source::Env)),
        (None, None) => None,
    };
    let token = given(token_flag).or_else(|| given(token_env));
    let config = match (&explicit, file) {
        (_, None) => None,
        // The server is given: the file only lends a token and a CA, so a broken one is no error.
        (Some(_), Some(path)) => load(path).ok().flatten(),
        (None, Some(path)) => load(path)?,
    };
    let (server, source, ctx) = match explicit {
        Some((server, source)) => {
            // The context of this server: the current one first, else the first with it.
            let config = config.as_ref();
            let current = config.and_then(|c| c.current.as_deref()).and_then(|n| config?.context(n));
            let same = |c: &&Context| crate::client::base_url(&c.server) == crate::client::base_url(&server);
            let ctx = current.filter(same).or_else(|| config.and_then(|c| c.contexts.iter().find(same)));
            (server, source, ctx.cloned())
        }
        None => {
            let (server, source) = choose(config.as_ref(), context, file)?;
            let ctx = match &source {
                Source::Context(name) => config.as_ref().and_then(|c| c.context(name)).cloned(),
                _ => None,
            };
            (server, source, ctx)
        }
    };
    Ok(Target {
        server,
        source,
        token: token.or_else(|| ctx.as_ref().and_then(|c| c.token.clone())),
        certificate_authority: ctx.and_then(|c| c.certificate_authority),
    })
}

/// [`resolve`]'s choice once the file is read (pure).
fn choose(config: Option<&Config>, context: Option<&str>, file: Option<&Path>) -> Result<(String, Source)> {
    let shown = || file.map_or_else(|| "no config file".to_string(), |p| p.display().to_string());
    let wanted = context.map(str::to_string).or_else(|| config.and_then(|c| c.current.clone()));
    let Some(name) = wanted else { return Ok((DEFAULT_SERVER.to_string(), Source::Default)) };
    match config.and_then(|c| c.context(&name)) {
        Some(c) => Ok((c.server.clone(), Source::Context(name))),
        None => {
            let known = config.map_or_else(|| "there is no config file".to_string(), Config::known);
            let by = if context.is_some() { "--context" } else { "current-context" };
            Err(anyhow!("{by} {name:?} is not a context in {} ({known})", shown()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
current-context: dev
contexts:
- name: dev
  server: http://127.0.0.1:7700
- name: pi-lab
  server: http://10.0.0.5:7700
  token: ecr_lab
  proxy: later
";

    #[test]
    fn a_file_reads_and_writes_back_the_same() {
        let c = Config::parse(FILE).unwrap();
        assert_eq!(c.current.as_deref(), Some("dev"));
        assert_eq!(c.contexts.len(), 2);
        assert_eq!(c.context("pi-lab").unwrap().server, "http://10.0.0.5:7700");
        let written = "current-context: dev\ncontexts:\n  - name: dev\n    server: \"http://127.0.0.1:7700\"\n  \
                       - name: pi-lab\n    server: \"http://10.0.0.5:7700\"\n    token: ecr_lab\n    proxy: later\n";
        assert_eq!(c.context("pi-lab").unwrap().token.as_deref(), Some("ecr_lab"));
        assert_eq!(c.render(), written, "unknown fields (a later one) are kept");
        assert_eq!(Config::parse(written).unwrap(), c);
    }

    #[test]
    fn an_empty_file_is_an_empty_config() {
        for text in ["", "\n", "# nothing\n", "~\n", "contexts:\n"] {
            assert_eq!(Config::parse(text).unwrap(), Config::default(), "{text:?}");
        }
    }

    #[test]
    fn errors_name_line_and_field() {
        for (text, at, says) in [
            ("contexts: {dev: 1}\n", "1:12", "contexts: expected a list"),
            ("contexts:\n- name: dev\n", "2:3", "contexts[0] (dev): server is required"),
            ("contexts:\n- server: x\n", "2:3", "contexts[0]: name is required"),
            (
                "contexts:\n- {name: a, server: x}\n- {name: a, server: y}\n",
                "3:4",
                "contexts[1]: context a is given twice",
            ),
            ("current-context: [a]\n", "1:18", "current-context: expected a string"),
            ("contexts:\n- name: a\n  server: x\n  users: [u]\n", "4:10", "contexts[0].users: unknown field"),
            ("contexts: [\n", "2:1", "did not find expected node content"),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert_eq!(e.at.to_string(), at, "{text:?}: {e}");
            assert!(e.to_string().contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn set_and_use_context() {
        let mut c = Config::default();
        assert!(c.set_context("dev", "http://127.0.0.1:1"));
        assert!(!c.set_context("dev", "http://127.0.0.1:2"), "an existing context is modified");
        assert_eq!(c.context("dev").unwrap().server, "http://127.0.0.1:2");
        assert!(c.use_context("nope").unwrap_err().to_string().contains("there are: dev"));
        c.use_context("dev").unwrap();
        assert_eq!(c.current.as_deref(), Some("dev"));
    }

    #[test]
    fn the_path_honours_xdg_config_home() {
        let p = |x: Option<&str>, h: Option<&str>| path_from(x.map(Into::into), h.map(Into::into));
        assert_eq!(p(Some("/x"), Some("/home/a")), Some(PathBuf::from("/x/edge/config.yaml")));
        assert_eq!(p(None, Some("/home/a")), Some(PathBuf::from("/home/a/.config/edge/config.yaml")));
        assert_eq!(p(Some("rel"), Some("/h")), Some(PathBuf::from("/h/.config/edge/config.yaml")), "not absolute");
        assert_eq!(p(None, None), None);
    }

    #[test]
    fn the_flag_beats_the_env_beats_the_context_beats_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edge").join("config.yaml");
        let r = |flag, env, ctx| resolve(flag, env, ctx, Some(&file), None, None).map(|t| (t.server, t.source));
        // No file: the default.
        assert_eq!(r(None, None, None).unwrap(), (DEFAULT_SERVER.to_string(), Source::Default));
        save(&file, &Config::parse(FILE).unwrap()).unwrap();
        assert_eq!(r(None, None, None).unwrap(), ("http://127.0.0.1:7700".into(), Source::Context("dev".into())));
        assert_eq!(r(None, None, Some("pi-lab")).unwrap().0, "http://10.0.0.5:7700");
        let t = |flag, env, ctx, tf, te| resolve(flag, env, ctx, Some(&file), tf, te).unwrap().token;
        assert_eq!(t(None, None, Some("pi-lab"), None, None).as_deref(), Some("ecr_lab"), "the context's token");
        assert_eq!(t(None, None, Some("pi-lab"), None, Some("ecr_env")).as_deref(), Some("ecr_env"), "env wins");
        assert_eq!(t(None, None, None, Some("ecr_f"), Some("ecr_env")).as_deref(), Some("ecr_f"), "flag wins");
        assert_eq!(t(Some("http://10.0.0.5:7700"), None, None, None, None).as_deref(), Some("ecr_lab"), "same server");
        assert_eq!(t(Some("10.0.0.5:7700"), None, None, None, None).as_deref(), Some("ecr_lab"), "http assumed");
        assert_eq!(t(Some("http://10.9.9.9:7700"), None, None, None, None), None, "never to another server");
        assert_eq!(r(None, Some("e:1"), Some("pi-lab")).unwrap(), ("e:1".into(), Source::Env));
        assert_eq!(r(Some("f:1"), Some("e:1"), None).unwrap(), ("f:1".into(), Source::Flag));
        let e = r(None, None, Some("nope")).unwrap_err().to_string();
        assert!(e.contains("--context \"nope\" is not a context in") && e.contains("there are: dev, pi-lab"), "{e}");
    }

    #[test]
    fn a_broken_file_is_one_line_naming_file_and_line_and_only_when_needed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "current-context: dev\ncontexts: 7\n").unwrap();
        let e = resolve(None, None, None, Some(&file), None, None).unwrap_err().to_string();
        assert_eq!(e, format!("{}:2:11: contexts: expected a list, found a scalar", file.display()));
        assert!(resolve(Some("f:1"), None, None, Some(&file), None, None).is_ok(), "--server needs no file");
        assert!(resolve(None, Some("e:1"), None, Some(&file), None, None).is_ok(), "EDGE_SERVER needs no file");
    }

    #[test]
    fn make_current_keeps_the_other_contexts_and_leaves_a_broken_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        save(&file, &Config::parse(FILE).unwrap()).unwrap();
        make_current(&file, "dev", "http://127.0.0.1:4242", None, None).unwrap();
        make_current(&file, "dev", "http://127.0.0.1:4343", Some("ecr_dev"), None).unwrap();
        let c = load(&file).unwrap().unwrap();
        assert_eq!(c.context("dev").unwrap().server, "http://127.0.0.1:4343");
        assert_eq!(c.context("dev").unwrap().token.as_deref(), Some("ecr_dev"));
        assert_eq!(c.context("pi-lab").unwrap().extra, [("proxy".to_string(), "later".to_string())]);
        assert_eq!(c.contexts.len(), 2);
        std::fs::write(&file, "contexts: [\n").unwrap();
        assert!(make_current(&file, "dev", "http://x", None, None).is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "contexts: [\n");
        // No file yet: made, with the one context.
        let fresh = dir.path().join("new").join("config.yaml");
        make_current(&fresh, "dev", "http://127.0.0.1:7700", None, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&fresh).unwrap(),
            "current-context: dev\ncontexts:\n  - name: dev\n    server: \"http://127.0.0.1:7700\"\n"
        );
    }

    #[test]
    fn save_writes_mode_0600_and_keeps_nothing_behind() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edge").join("config.yaml");
        let mut c = Config::default();
        c.set_context("dev", "http://127.0.0.1:7700");
        save(&file, &c).unwrap();
        save(&file, &c).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::read_dir(file.parent().unwrap()).unwrap().count(), 1, "no temporary file left");
        assert_eq!(load(&file).unwrap(), Some(c));
    }
}
