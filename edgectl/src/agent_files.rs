//! The files edgectl puts on a board for its agent, whichever way it gets there (`edgectl flash` onto a card,
//! `edgectl install --ssh` onto a running board): its `agent.toml` and the systemd unit that runs it. One
//! renderer, so a flashed and an installed node are configured alike. Pure.

use std::fmt::Write as _;

/// The systemd unit shipped in the repository (`deploy/edge-agent.service`).
pub const UNIT: &str = include_str!("../../deploy/edge-agent.service");

/// What goes into a board's `agent.toml`: the keys are `edge-agent`'s flags (see `deploy/agent.toml`).
#[derive(Debug, Clone, Copy)]
pub struct AgentToml<'a> {
    /// A comment line saying who wrote the file.
    pub written_by: &'a str,
    pub node: &'a str,
    pub broker: &'a str,
    pub data: &'a str,
    pub join: &'a str,
    pub board: Option<&'a str>,
}

impl AgentToml<'_> {
    pub fn render(&self) -> String {
        let mut out = format!(
            "# {}. The join token is used once: the node's identity is then kept in `data`.\n",
            self.written_by
        );
        let fields = [
            ("node", Some(self.node)),
            ("broker", Some(self.broker)),
            ("data", Some(self.data)),
            ("board", self.board),
            ("join", Some(self.join)),
        ];
        for (key, value) in fields {
            if let Some(v) = value {
                let _ = writeln!(out, "{key} = {}", toml_string(v));
            }
        }
        out
    }
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `User=` a unit runs as, or `None` for root (no `User=`, or `DynamicUser=yes`, whose user has no name
/// before the unit starts).
pub fn unit_user(unit: &str) -> Option<String> {
    let mut user = None;
    for line in unit.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("DynamicUser=") {
            if matches!(v.trim(), "yes" | "true" | "1" | "on") {
                return None;
            }
        }
        if let Some(v) = line.strip_prefix("User=") {
            let v = v.trim();
            user = (!v.is_empty() && v != "root").then(|| v.to_string());
        }
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_toml_parses_back_with_every_field_and_escapes() {
        let t = AgentToml {
            written_by: "test",
            node: "n1",
            broker: "mqtt://h:1883",
            data: "/d",
            join: "EJ1\"x",
            board: Some("rpi-4"),
        };
        let v: toml::Table = t.render().parse().unwrap();
        assert_eq!(v["node"].as_str(), Some("n1"));
        assert_eq!(v["join"].as_str(), Some("EJ1\"x"));
        assert_eq!(v["board"].as_str(), Some("rpi-4"));
        assert!(!AgentToml { board: None, ..t }.render().contains("board"));
    }

    #[test]
    fn the_shipped_unit_runs_as_its_own_user() {
        assert_eq!(unit_user(UNIT).as_deref(), Some("edge-agent"));
        assert_eq!(unit_user("[Service]\nDynamicUser=yes\nUser=x\n"), None);
        assert_eq!(unit_user("[Service]\nUser=root\n"), None);
    }
}
