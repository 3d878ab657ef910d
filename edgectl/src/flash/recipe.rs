//! What `edgectl flash` writes to a boot partition, as text: the agent's `agent.toml`, the first-boot recipe the
//! image's own OS runs, and the edited `cmdline.txt`. Pure: [`plan`] takes what the partition holds and returns
//! the files to write and to remove, so that every decision is unit-tested without an image.
//!
//! Two recipes, never both on one card:
//! - **cloud-init** (current Trixie images, which carry a `user-data`): `user-data` whose `runcmd` installs the
//!   agent from `/boot/firmware`, `meta-data` with a fresh `instance-id`, `network-config` (netplan v2) only with
//!   Wi-Fi, and ` ds=nocloud;i=<id>` on `cmdline.txt` — rpi-imager's form (`src/downloadthread.cpp`).
//! - **firstrun** (Bookworm): rpi-imager's `firstrun.sh` started by `systemd.run=` on `cmdline.txt`, which
//!   removes itself and its `cmdline.txt` tokens when done (`src/customization_generator.cpp`). Unlike
//!   rpi-imager (`/boot/firstrun.sh`) the script is named by its real path, `/boot/firmware/firstrun.sh`.
//!
//! Both run the same [`install_steps`]. The join token is only ever in `agent.toml`, which the steps move to
//! `/etc/edge` (mode 0640, group the unit's user, or 0600 for root) and delete from the boot partition, a FAT volume any card reader can read.
//!
//! Idempotent: the tokens this module adds to `cmdline.txt` are removed before they are added again, and the
//! files it wrote before carry [`MARKER`], so a second flash replaces them rather than adding to them.

use std::fmt::Write as _;

/// On every text file written here that allows comments: how a later flash knows the file is its own.
pub const MARKER: &str = "written by edgectl flash";
/// Where Raspberry Pi OS mounts the boot partition.
pub const BOOT: &str = "/boot/firmware";
pub const AGENT_BINARY: &str = "edge-agent";
pub const AGENT_TOML: &str = "agent.toml";
pub const UNIT: &str = "edge-agent.service";
pub const SSH_KEY: &str = "edge-authorized-keys";
pub const CMDLINE: &str = "cmdline.txt";
pub const USER_DATA: &str = "user-data";
pub const META_DATA: &str = "meta-data";
pub const NETWORK_CONFIG: &str = "network-config";
pub const FIRSTRUN: &str = "firstrun.sh";

/// Where the steps install the agent, its configuration and its unit on the root filesystem.
pub const BIN_PATH: &str = "/usr/local/bin/edge-agent";
pub const CONFIG_DIR: &str = "/etc/edge";
pub const CONFIG_PATH: &str = "/etc/edge/agent.toml";
pub const UNIT_PATH: &str = "/etc/systemd/system/edge-agent.service";
/// The agent's store: the unit's `StateDirectory=edge-agent`.
pub const DATA_DIR: &str = "/var/lib/edge-agent";

use crate::agent_files::AgentToml;
/// The systemd unit put on the card: the repository's own (`User=edge-agent`, `StateDirectory=edge-agent`).
pub use crate::agent_files::{unit_user, UNIT as SHIPPED_UNIT};

/// The first-boot recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    CloudInit,
    Firstrun,
}

impl Format {
    /// The recipe a boot partition's own OS reads: cloud-init when it ships a `user-data` (Trixie), rpi-imager's
    /// firstrun.sh otherwise (Bookworm).
    pub fn detect(has_user_data: bool) -> Format {
        if has_user_data {
            Format::CloudInit
        } else {
            Format::Firstrun
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::CloudInit => "cloud-init",
            Format::Firstrun => "firstrun",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wifi {
    pub ssid: String,
    pub password: String,
    /// ISO 3166 alpha-2, upper case (the regulatory domain).
    pub country: String,
}

/// Everything the recipe needs to know about the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub node: String,
    pub join: String,
    /// mqtt://HOST:PORT, as the board reaches the broker.
    pub broker: String,
    pub board: String,
    pub hostname: Option<String>,
    /// `authorized_keys` lines for root.
    pub ssh_key: Option<String>,
    pub wifi: Option<Wifi>,
    /// The unit's `User=`, who must read the config file; `None`: root.
    pub unit_user: Option<String>,
}

/// The agent's `agent.toml`: one field per `edge-agent` flag, snake_case (the agent reads it with `--config`).
/// Kept to this one function so that it follows the agent's field names in one place.
pub fn agent_toml(s: &Settings) -> String {
    AgentToml {
        written_by: MARKER,
        node: &s.node,
        broker: &s.broker,
        data: DATA_DIR,
        join: &s.join,
        board: Some(&s.board),
    }
    .render()
}

/// One argument of an install step: a literal, or an absolute path on the board, which the firstrun script
/// prefixes with `$R` (empty on a board, a throwaway root in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Lit(String),
    Path(String),
}

fn lit(s: &str) -> Arg {
    Arg::Lit(s.to_string())
}

fn path(s: &str) -> Arg {
    Arg::Path(s.to_string())
}

fn boot(name: &str) -> Arg {
    Arg::Path(format!("{BOOT}/{name}"))
}

/// One command, as an argument vector (no shell, except where a step says `sh -c`).
pub type Step = Vec<Arg>;

/// What first boot runs, in order: create the unit's user, install the binary, config and unit from the boot
/// partition, delete them there (the token with them), install the SSH key, enable the agent. `now`: start
/// units at once (cloud-init runs late in a normal boot; firstrun.sh runs before a reboot, so it only enables).
pub fn install_steps(s: &Settings, now: bool) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let enable = |unit: &str| {
        let mut v = vec![lit("systemctl"), lit("enable")];
        if now {
            v.push(lit("--now"));
        }
        v.push(lit(unit));
        v
    };
    if let Some(u) = &s.unit_user {
        steps.push(vec![
            lit("sh"),
            lit("-c"),
            Arg::Lit(format!(
                "getent passwd {u} >/dev/null || useradd --system --user-group --home-dir {DATA_DIR} \
                 --no-create-home --shell /usr/sbin/nologin {u}"
            )),
        ]);
    }
    steps.push(vec![lit("install"), lit("-d"), lit("-m"), lit("0755"), path(CONFIG_DIR)]);
    steps.push(vec![lit("install"), lit("-m"), lit("0755"), boot(AGENT_BINARY), path(BIN_PATH)]);
    // Readable by root and the unit's group only, as deploy/agent.toml asks (the agent cannot rewrite it).
    let mode = if s.unit_user.is_some() { "0640" } else { "0600" };
    steps.push(vec![lit("install"), lit("-m"), lit(mode), boot(AGENT_TOML), path(CONFIG_PATH)]);
    if let Some(u) = &s.unit_user {
        steps.push(vec![lit("chown"), Arg::Lit(format!("root:{u}")), path(CONFIG_PATH)]);
    }
    steps.push(vec![lit("install"), lit("-m"), lit("0644"), boot(UNIT), path(UNIT_PATH)]);
    if s.ssh_key.is_some() {
        steps.push(vec![lit("install"), lit("-d"), lit("-m"), lit("0700"), path("/root/.ssh")]);
        steps.push(vec![lit("install"), lit("-m"), lit("0600"), boot(SSH_KEY), path("/root/.ssh/authorized_keys")]);
    }
    let mut rm = vec![lit("rm"), lit("-f"), boot(AGENT_TOML), boot(AGENT_BINARY), boot(UNIT)];
    if s.ssh_key.is_some() {
        rm.push(boot(SSH_KEY));
    }
    steps.push(rm);
    if s.ssh_key.is_some() {
        steps.push(enable("ssh"));
    }
    if now {
        steps.push(vec![lit("systemctl"), lit("daemon-reload")]);
    }
    steps.push(enable("edge-agent"));
    steps
}

/// cloud-init's `user-data`: the install steps as `runcmd` argument lists, and the hostname.
pub fn user_data(s: &Settings) -> String {
    let mut out = String::from("#cloud-config\n");
    let _ =
        writeln!(out, "# {MARKER}: on first boot, installs edge-agent (node {}) from {BOOT} and starts it.", s.node);
    if let Some(h) = &s.hostname {
        let _ = writeln!(out, "hostname: {}\nmanage_etc_hosts: true", yaml_string(h));
    }
    out.push_str("runcmd:\n");
    for step in install_steps(s, true) {
        let args: Vec<String> = step
            .iter()
            .map(|a| match a {
                Arg::Lit(v) | Arg::Path(v) => yaml_string(v),
            })
            .collect();
        let _ = writeln!(out, "  - [{}]", args.join(", "));
    }
    out
}

/// cloud-init's `meta-data`: a fresh instance id, so cloud-init runs the user-data of this flash once.
pub fn meta_data(instance_id: &str) -> String {
    format!("instance-id: {instance_id}\n")
}

/// A fresh cloud-init instance id, as rpi-imager makes them (`rpi-imager-<ms>`).
pub fn instance_id(node: &str, unix_ms: u128) -> String {
    format!("edgectl-{node}-{unix_ms}")
}

/// cloud-init's `network-config` (netplan v2), rpi-imager's shape: Ethernet by DHCP as before, and the Wi-Fi.
pub fn network_config(w: &Wifi) -> String {
    format!(
        "# {MARKER}\nnetwork:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n      optional: true\n  \
         wifis:\n    wlan0:\n      dhcp4: true\n      regulatory-domain: {}\n      access-points:\n        {}:\n          \
         password: {}\n      optional: true\n",
        yaml_string(&w.country),
        yaml_string(&w.ssid),
        yaml_string(&w.password)
    )
}

/// rpi-imager's `firstrun.sh` for Bookworm: hostname, Wi-Fi, the install steps, then it removes itself and its
/// `cmdline.txt` tokens. `EDGE_FLASH_ROOT` (unset on a board) runs it against another root, for tests.
pub fn firstrun(s: &Settings) -> String {
    let mut out = String::from("#!/bin/sh\n");
    let _ = writeln!(out, "# {MARKER}: installs edge-agent (node {}) from {BOOT}, once.", s.node);
    out.push_str("\nset +e\n\n# Unset on a board; a throwaway root in tests.\nR=\"${EDGE_FLASH_ROOT:-}\"\n");
    let custom = "\"$R\"/usr/lib/raspberrypi-sys-mods/imager_custom";
    if let Some(h) = &s.hostname {
        let h = shell_quote(h);
        let _ = write!(
            out,
            "\nCURRENT_HOSTNAME=$(cat \"$R\"/etc/hostname | tr -d \" \\t\\n\\r\")\n\
             if [ -f {custom} ]; then\n   {custom} set_hostname {h}\nelse\n   echo {h} >\"$R\"/etc/hostname\n   \
             sed -i \"s/127.0.1.1.*$CURRENT_HOSTNAME/127.0.1.1\\t\"{h}\"/g\" \"$R\"/etc/hosts\nfi\n"
        );
    }
    if let Some(w) = &s.wifi {
        let _ = write!(
            out,
            "\nif [ -f {custom} ]; then\n   {custom} set_wlan {} {} {}\nelse\n   \
             echo 'edgectl flash: no imager_custom on this image, Wi-Fi not configured' >&2\nfi\n",
            shell_quote(&w.ssid),
            shell_quote(&w.password),
            shell_quote(&w.country)
        );
    }
    out.push('\n');
    for step in install_steps(s, false) {
        let line: Vec<String> = step
            .iter()
            .map(|a| match a {
                Arg::Lit(v) => shell_quote(v),
                Arg::Path(p) => format!("\"$R\"{}", shell_quote(p)),
            })
            .collect();
        let _ = writeln!(out, "{}", line.join(" "));
    }
    let _ =
        write!(out, "\nrm -f \"$R\"{BOOT}/{FIRSTRUN}\nsed -i 's| systemd.run.*||g' \"$R\"{BOOT}/{CMDLINE}\nexit 0\n");
    out
}

/// The kernel command line tokens of `format`.
pub fn cmdline_tokens(format: Format, instance_id: &str) -> Vec<String> {
    match format {
        Format::CloudInit => vec![format!("ds=nocloud;i={instance_id}")],
        Format::Firstrun => [
            format!("systemd.run={BOOT}/{FIRSTRUN}"),
            "systemd.run_success_action=reboot".to_string(),
            "systemd.unit=kernel-command-line.target".to_string(),
        ]
        .to_vec(),
    }
}

/// A token either recipe adds (from this or an earlier flash, or rpi-imager's): removed before adding.
fn is_recipe_token(t: &str) -> bool {
    t.starts_with("ds=nocloud")
        || t.starts_with("systemd.run=")
        || t.starts_with("systemd.run_success_action=")
        || t == "systemd.unit=kernel-command-line.target"
}

/// `cmdline.txt` with `tokens` appended, and without any recipe token from before (and without an earlier
/// regulatory domain when `regdom` sets one). The firmware reads one line: whatever was on several lines is
/// joined into one, ending with a newline.
pub fn edit_cmdline(current: &str, format: Format, instance_id: &str, regdom: Option<&str>) -> String {
    let mut tokens: Vec<String> = current
        .split_whitespace()
        .filter(|t| !is_recipe_token(t))
        .filter(|t| regdom.is_none() || !t.starts_with("cfg80211.ieee80211_regdom="))
        .map(str::to_string)
        .collect();
    if let Some(cc) = regdom {
        tokens.push(format!("cfg80211.ieee80211_regdom={cc}"));
    }
    tokens.extend(cmdline_tokens(format, instance_id));
    tokens.join(" ") + "\n"
}

/// What the boot partition holds before the flash, as far as the plan cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    pub cmdline: String,
    pub user_data: Option<String>,
    pub network_config: Option<String>,
    pub firstrun: Option<String>,
}

/// The text files to write (name, contents) and the files to delete, in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub writes: Vec<(&'static str, String)>,
    pub removes: Vec<&'static str>,
}

fn ours(file: &Option<String>) -> bool {
    file.as_deref().is_some_and(|f| f.contains(MARKER))
}

/// Everything but the agent binary that a flash of `format` writes, given what the partition holds.
pub fn plan(format: Format, s: &Settings, unit: &str, existing: &Existing, instance_id: &str) -> Plan {
    let mut p = Plan::default();
    p.writes.push((AGENT_TOML, agent_toml(s)));
    p.writes.push((UNIT, unit.to_string()));
    if let Some(k) = &s.ssh_key {
        p.writes.push((SSH_KEY, k.trim_end().to_string() + "\n"));
    }
    match format {
        Format::CloudInit => {
            p.writes.push((USER_DATA, user_data(s)));
            p.writes.push((META_DATA, meta_data(instance_id)));
            match &s.wifi {
                Some(w) => p.writes.push((NETWORK_CONFIG, network_config(w))),
                None if ours(&existing.network_config) => p.removes.push(NETWORK_CONFIG),
                None => {}
            }
            if existing.firstrun.is_some() {
                p.removes.push(FIRSTRUN);
            }
        }
        Format::Firstrun => {
            p.writes.push((FIRSTRUN, firstrun(s)));
            // An earlier cloud-init flash of this card: neutralised, so that only one recipe runs.
            if ours(&existing.user_data) {
                p.writes.push((
                    USER_DATA,
                    format!("#cloud-config\n# {MARKER}: nothing (firstrun.sh installs the agent)\n"),
                ));
            }
            if ours(&existing.network_config) {
                p.removes.push(NETWORK_CONFIG);
            }
        }
    }
    if s.ssh_key.is_none() {
        p.removes.push(SSH_KEY);
    }
    let regdom = s.wifi.as_ref().map(|w| w.country.as_str());
    p.writes.push((CMDLINE, edit_cmdline(&existing.cmdline, format, instance_id, regdom)));
    p
}

/// A YAML double-quoted scalar: a JSON string is one.
pub fn yaml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// One word for `sh`, in single quotes.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@".contains(&b)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests;
