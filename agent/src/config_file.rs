//! The agent's config file (`edge-agent --config /etc/edge/agent.toml`) and how it merges with the flags.
//!
//! One TOML table whose keys are the flags' names without the dashes in front (`topic-prefix`, `outbox-limit`,
//! …), plus a `[labels]` table for the repeatable `--label`. Every key is optional; unknown keys are errors
//! naming their line. A flag given on the command line (or `EDGE_JOIN` for `join`) overrides the file's key; a
//! `--label k=v` overrides the file's label `k` and keeps the others. Relative paths in the file are relative to
//! the file's directory. `deploy/agent.toml` is the commented example.
//!
//! [`Settings`] is both halves: the file deserialises into it, the flags are converted into it, then
//! [`Settings::over`] lays the flags over the file and [`Settings::resolve`] turns the result into what `main`
//! runs. Pure apart from reading the file, and unit-tested.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use edge_agent::AgentConfig;
use serde::Deserialize;

/// The default data directory when neither a flag nor the file names one and systemd gives no
/// `$STATE_DIRECTORY` (`StateDirectory=edge-agent` in the unit).
pub const DEFAULT_DATA: &str = "edge-agent-data";
pub const DEFAULT_BROKER: &str = "mqtt://127.0.0.1:1883";
pub const DEFAULT_MODULE_CACHE: &str = "256Mi";
pub const DEFAULT_ENGINE: &str = "auto";

/// Every setting of the agent, each optional: what one source (the file, or the flags) says.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    pub node: Option<String>,
    pub broker: Option<String>,
    pub data: Option<PathBuf>,
    pub join: Option<String>,
    pub board: Option<String>,
    /// Millicores, as `--cpu`.
    pub cpu: Option<u32>,
    /// Bytes or a quantity (`4Gi`), as `--memory`.
    pub memory: Option<Text>,
    pub reserve_cpu: Option<Text>,
    pub reserve_memory: Option<Text>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A duration (`60s`) or bare seconds.
    pub heartbeat: Option<Text>,
    pub topic_prefix: Option<String>,
    pub outbox_limit: Option<usize>,
    pub module_cache: Option<Text>,
    pub engine: Option<String>,
    pub standalone: Option<bool>,
    pub manifest: Option<PathBuf>,
}

/// A value written as a string or a bare integer (`memory = 1073741824` or `memory = "1Gi"`), kept as text for
/// the quantity parsers the flags use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Text, E> {
                if v < 0 {
                    return Err(E::custom(format!("{v} is negative")));
                }
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(s)
    }
}

/// What `main` runs: the agent's configuration, and the manifest when standalone.
#[derive(Debug)]
pub struct Launch {
    pub config: AgentConfig,
    pub manifest: Option<PathBuf>,
}

impl Settings {
    /// Reads and parses a config file; relative paths in it become relative to its directory. Errors are one
    /// line: `config FILE: line N: what`.
    pub fn read(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path).with_context(|| format!("config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        Settings::parse(&text, base).map_err(|e| anyhow!("config {}: {e}", path.display()))
    }

    /// Parses a config file's text; `base` is the directory relative paths are taken from.
    pub fn parse(text: &str, base: &Path) -> Result<Settings, String> {
        let mut s: Settings = toml::from_str(text).map_err(|e| one_line(text, &e))?;
        for p in [&mut s.data, &mut s.manifest].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(s)
    }

    /// These settings (the flags) laid over `file`'s: each key given here wins; labels merge by key.
    pub fn over(self, file: Settings) -> Settings {
        let mut labels = file.labels;
        labels.extend(self.labels);
        Settings {
            node: self.node.or(file.node),
            broker: self.broker.or(file.broker),
            data: self.data.or(file.data),
            join: self.join.or(file.join),
            board: self.board.or(file.board),
            cpu: self.cpu.or(file.cpu),
            memory: self.memory.or(file.memory),
            reserve_cpu: self.reserve_cpu.or(file.reserve_cpu),
            reserve_memory: self.reserve_memory.or(file.reserve_memory),
            labels,
            heartbeat: self.heartbeat.or(file.heartbeat),
            topic_prefix: self.topic_prefix.or(file.topic_prefix),
            outbox_limit: self.outbox_limit.or(file.outbox_limit),
            module_cache: self.module_cache.or(file.module_cache),
            engine: self.engine.or(file.engine),
            standalone: self.standalone.or(file.standalone),
            manifest: self.manifest.or(file.manifest),
        }
    }

    /// The agent's configuration from the merged settings, with the defaults for what neither source gave.
    /// `state_directory` is systemd's `$STATE_DIRECTORY`, the data directory when none is named. Errors name
    /// the setting as both a flag and a key (`--outbox-limit / outbox-limit`).
    pub fn resolve(self, state_directory: Option<PathBuf>) -> anyhow::Result<Launch> {
        let standalone = self.standalone.unwrap_or(false);
        match (standalone, &self.manifest) {
            (true, None) => return Err(anyhow!("standalone needs a manifest (--manifest / manifest)")),
            (false, Some(_)) => return Err(anyhow!("a manifest is for standalone mode (--standalone / standalone)")),
            _ => {}
        }
        let node = match self.node {
            Some(node) => node,
            None if standalone => "standalone".to_string(),
            None => return Err(anyhow!("no node name: give --node NAME, or node = \"NAME\" in the config file")),
        };
        let broker = self.broker.as_deref().unwrap_or(DEFAULT_BROKER);
        let endpoint =
            edge_proto::parse_broker_endpoint(broker).map_err(|e| anyhow!("--broker / broker: {e} (or mqtts://…)"))?;
        let data = self.data.or(state_directory).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let mut config = AgentConfig::new(node, endpoint.host, endpoint.port, data);
        config.broker_tls = endpoint.tls;
        config.limits.outbox = match self.outbox_limit {
            Some(0) => return Err(anyhow!("--outbox-limit / outbox-limit must be at least 1")),
            Some(n) => n,
            None => edge_agent::core::OUTBOX_LIMIT,
        };
        let module_cache = self.module_cache.map_or(DEFAULT_MODULE_CACHE.to_string(), |t| t.0);
        config.limits.module_budget = edge_proto::quantity::parse_memory(&module_cache)
            .map_err(|e| anyhow!("--module-cache / module-cache: {e}"))?;
        config.engine = match self.engine.as_deref().unwrap_or(DEFAULT_ENGINE) {
            "auto" => None,
            "pulley" => Some(edge_engine::pulley_target()),
            name => Some(name.parse().map_err(|e| anyhow!("--engine / engine {name:?}: {e}, auto or pulley"))?),
        };
        config.board = self.board;
        config.cpu_millis = self.cpu;
        config.memory_bytes = match self.memory {
            Some(t) => Some(edge_proto::quantity::parse_memory(&t.0).map_err(|e| anyhow!("--memory / memory: {e}"))?),
            None => None,
        };
        config.prefix = self.topic_prefix.unwrap_or_else(|| edge_proto::topic::DEFAULT_PREFIX.to_string());
        if self.reserve_cpu.is_some() || self.reserve_memory.is_some() {
            let cpu = self
                .reserve_cpu
                .map_or(Ok(0), |t| edge_proto::quantity::parse_cpu(&t.0))
                .map_err(|e| anyhow!("--reserve-cpu / reserve-cpu: {e}"))?;
            let memory = self
                .reserve_memory
                .map_or(Ok(0), |t| edge_proto::quantity::parse_memory(&t.0))
                .map_err(|e| anyhow!("--reserve-memory / reserve-memory: {e}"))?;
            config.reserved = Some(edge_proto::Resources { cpu_millis: cpu, memory_bytes: memory });
        }
        config.heartbeat = match self.heartbeat {
            Some(t) => interval(&t.0).map_err(|e| anyhow!("--heartbeat / heartbeat: {e}"))?,
            None => edge_proto::timing::HEARTBEAT,
        };
        config.join = self.join;
        config.labels = self.labels.into_iter().collect();
        Ok(Launch { config, manifest: self.manifest.filter(|_| standalone) })
    }
}

/// A periodic interval in the shared duration syntax, within (0, 1h]: a zero interval would spin, a longer one
/// never reports.
pub fn interval(s: &str) -> Result<Duration, String> {
    let d = edge_proto::quantity::parse_duration(s)?;
    if d.is_zero() || d > Duration::from_secs(3600) {
        return Err(format!("{s:?} is not between 1ms and 1h"));
    }
    Ok(d)
}

// A TOML error on one line, `line N: what` (shared with the board profiles' parser).
use edge_boards::profile::one_line;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, String> {
        Settings::parse(text, Path::new("/etc/edge"))
    }

    #[test]
    fn every_key_parses_and_relative_paths_follow_the_file() {
        let s = parse(
            r#"
node = "kitchen"
broker = "mqtt://10.0.0.2:1884"
data = "state"
join = "edge1.abc"
board = "rpi-4"
cpu = 3500
memory = "2Gi"
reserve-cpu = "300m"
reserve-memory = 134217728
heartbeat = "30s"
topic-prefix = "lab"
outbox-limit = 500
module-cache = "64Mi"
engine = "pulley"
standalone = false
[labels]
zone = "house"
"#,
        )
        .unwrap();
        assert_eq!(s.data, Some(PathBuf::from("/etc/edge/state")));
        assert_eq!(s.reserve_memory, Some(Text("134217728".into())));
        let l = s.resolve(None).unwrap();
        let c = &l.config;
        assert_eq!((c.node.as_str(), c.broker_host.as_str(), c.broker_port), ("kitchen", "10.0.0.2", 1884));
        assert_eq!((c.cpu_millis, c.memory_bytes), (Some(3500), Some(2 << 30)));
        assert_eq!(c.reserved, Some(edge_proto::Resources { cpu_millis: 300, memory_bytes: 128 << 20 }));
        assert_eq!((c.heartbeat, c.prefix.as_str(), c.limits.outbox), (Duration::from_secs(30), "lab", 500));
        assert_eq!((c.limits.module_budget, c.engine), (64 << 20, Some(edge_engine::pulley_target())));
        assert_eq!((c.board.as_deref(), c.join.as_deref()), (Some("rpi-4"), Some("edge1.abc")));
        assert_eq!(c.labels, [("zone".to_string(), "house".to_string())]);
        assert_eq!(l.manifest, None);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_one_line_errors_naming_the_line() {
        let e = parse("node = \"a\"\n\nnod = \"b\"\n").unwrap_err();
        assert!(e.starts_with("line 3: unknown field `nod`, expected one of"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = parse("node = \"a\"\ncpu = \"lots\"\n").unwrap_err();
        assert!(e.starts_with("line 2:") && e.contains("u32"), "{e}");
        let e = parse("memory = -1\n").unwrap_err();
        assert!(e.starts_with("line 1:") && e.contains("negative"), "{e}");
        let e = parse("[labels]\nzone = 3\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse("node = \n").unwrap_err();
        assert!(e.starts_with("line 1:"), "{e}");
        let bad = |text: &str| parse(text).unwrap().resolve(None).unwrap_err().to_string();
        assert!(bad("node = \"a\"\noutbox-limit = 0").contains("outbox-limit must be at least 1"));
        assert!(bad("node = \"a\"\nheartbeat = \"0s\"").contains("--heartbeat / heartbeat"));
        assert!(bad("node = \"a\"\nengine = \"mips\"").contains("--engine / engine \"mips\""));
        assert!(bad("broker = \"x\"").contains("no node name"));
        assert!(bad("standalone = true").contains("needs a manifest"));
    }

    #[test]
    fn flags_override_the_file_and_labels_merge() {
        let file = parse("node = \"a\"\nbroker = \"mqtt://h:1\"\ncpu = 1000\n[labels]\nzone = \"x\"\nrack = \"1\"\n");
        let flags = Settings {
            node: Some("b".into()),
            cpu: Some(2000),
            labels: [("zone".to_string(), "y".to_string())].into(),
            ..Settings::default()
        };
        let c = flags.over(file.unwrap()).resolve(None).unwrap().config;
        assert_eq!((c.node.as_str(), c.broker_host.as_str(), c.cpu_millis), ("b", "h", Some(2000)));
        assert_eq!(c.labels, [("rack".to_string(), "1".to_string()), ("zone".to_string(), "y".to_string())]);
    }

    #[test]
    fn defaults_fill_what_neither_gives_and_systemd_names_the_data_directory() {
        let node = || Settings { node: Some("n".into()), ..Settings::default() };
        let c = node().resolve(None).unwrap().config;
        assert_eq!((c.broker_host.as_str(), c.broker_port), ("127.0.0.1", 1883));
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA));
        assert_eq!((c.heartbeat, c.limits.module_budget), (edge_proto::timing::HEARTBEAT, 256 << 20));
        assert_eq!((c.engine, c.reserved), (None, None));
        let c = node().resolve(Some("/var/lib/edge-agent".into())).unwrap().config;
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/edge-agent"));
        let s = Settings { standalone: Some(true), manifest: Some("m.toml".into()), ..Settings::default() };
        let l = s.resolve(None).unwrap();
        assert_eq!((l.config.node.as_str(), l.manifest), ("standalone", Some(PathBuf::from("m.toml"))));
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../deploy/agent.toml");
        let s = parse(text).unwrap();
        let l = s.resolve(None).unwrap();
        assert_eq!(l.config.board.as_deref(), Some("rpi-4"));
    }
}
