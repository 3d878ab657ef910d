//! Arguments of the commands that put the agent onto boards: `boards`, `flash`, `install` and `uninstall`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::Output;
use edge_proto::quantity::parse_duration;

#[derive(Args)]
pub struct BoardsArgs {
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args)]
pub struct FlashArgs {
    /// The Raspberry Pi OS image (uncompressed .img); it is changed in place (with --device: copied onto the
    /// card, which is then changed, and the image is left as it was).
    pub image: PathBuf,
    /// The board profile (`edgectl boards`): the agent binary must be built for its architecture.
    #[arg(long, value_name = "NAME")]
    pub board: String,
    /// The node's name (lowercase letters, digits and '-').
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// The join token (`edgectl token create`), written to agent.toml only, which first boot moves to
    /// /etc/edge (readable by root and the agent only) and deletes from the boot partition.
    #[arg(long, value_name = "TOKEN", env = "EDGE_JOIN", hide_env_values = true)]
    pub join: String,
    /// The MQTT broker as the board reaches it (default: the --server's host on :1883, mqtts:// for an https
    /// --server, else mqtt://; a loopback --server is refused).
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
    /// The edge-agent built for the board (default: target/TRIPLE/release/edge-agent, TRIPLE the board's).
    #[arg(long, value_name = "PATH")]
    pub agent_binary: Option<PathBuf>,
    /// Set the board's hostname on first boot (default: the image's).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// An OpenSSH public key file: authorised for root, and ssh enabled.
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// The Wi-Fi network to join (with --wifi-password and --wifi-country).
    #[arg(long, value_name = "SSID", requires_all = ["wifi_password", "wifi_country"])]
    pub wifi_ssid: Option<String>,
    #[arg(long, value_name = "PASSPHRASE", env = "EDGE_WIFI_PASSWORD", hide_env_values = true, requires = "wifi_ssid")]
    pub wifi_password: Option<String>,
    /// The Wi-Fi regulatory domain, a two-letter country code (GB, DE, US, …).
    #[arg(long, value_name = "CC", requires = "wifi_ssid")]
    pub wifi_country: Option<String>,
    /// The first-boot recipe (default: cloud-init when the boot partition has a user-data file, as current
    /// Trixie images do; firstrun, rpi-imager's firstrun.sh, otherwise, as on Bookworm).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<FlashFormat>,
    /// Print what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Copy the image onto this card (a whole disk: /dev/sdX, /dev/mmcblkN), then customise the card. Refused
    /// when anything on it is mounted or it holds /.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<PathBuf>,
    /// Do not ask before overwriting --device.
    #[arg(long, requires = "device")]
    pub yes: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlashFormat {
    /// user-data, meta-data (and network-config) read by cloud-init, `ds=nocloud` on cmdline.txt.
    CloudInit,
    /// rpi-imager's firstrun.sh, run by `systemd.run=` on cmdline.txt.
    Firstrun,
}

/// How `install` and `uninstall` reach the board.
#[derive(Args)]
pub struct SshArgs {
    /// The board: USER@HOST. USER is root, or may run sudo without a password.
    #[arg(long, value_name = "USER@HOST")]
    pub ssh: String,
    /// The board's SSH port.
    #[arg(long, default_value_t = 22)]
    pub port: u16,
    /// The private key to log in with (default: ~/.ssh/id_ed25519, else ~/.ssh/id_rsa; no passphrase, no
    /// ssh-agent).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// The known_hosts file holding the board's host key (default: ~/.ssh/known_hosts).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Trust a board whose host key is not in known_hosts yet, and record it there (an unknown host is refused
    /// otherwise; a changed key always is).
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// For hosts without systemd (containers, minimal images): start the agent with nohup and a pid file
    /// instead of the unit. Nothing restarts it if it dies or the host reboots.
    #[arg(long)]
    pub no_systemd: bool,
    /// Put every path on the host under DIR (DIR/usr/local/bin/edge-agent, DIR/etc/edge/agent.toml, …), to
    /// stage an install or to test one without touching the host's own directories. Needs --no-systemd.
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<String>,
}

#[derive(Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub ssh: SshArgs,
    /// The node's name.
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// The join token (`edgectl token create`), written to the board's agent.toml (readable by root and the
    /// agent only), never onto a command line.
    #[arg(long, value_name = "TOKEN", env = "EDGE_JOIN", hide_env_values = true)]
    pub join: String,
    /// The edge-agent built for the board (default: `edge-agent` beside this edgectl).
    #[arg(long, value_name = "PATH")]
    pub agent_binary: Option<PathBuf>,
    /// The MQTT broker as the board reaches it (default: SERVER:1883, SERVER the --server's host, mqtts:// for
    /// an https --server, else mqtt://).
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
    /// The board profile (`edgectl boards`) written to agent.toml.
    #[arg(long, value_name = "NAME")]
    pub board: Option<String>,
    /// How long to wait for the node to be Ready, e.g. 90s, 5m (0: do not wait).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub wait_timeout: Duration,
}

#[derive(Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Also remove the agent's state (its identity: the node must then join again with a new token).
    #[arg(long)]
    pub purge: bool,
}
