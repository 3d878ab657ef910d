//! The settings a board image is built with. A microcontroller has no command line, so the Wi-Fi network, the
//! broker and the join token are compiled in from the environment of the build (each board's `main.rs` reads
//! them with `env!`/`option_env!`; docs/firmware.md lists them). This module checks them once at boot, so a
//! bad value is named on the log instead of failing later as a connection error.

use alloc::string::{String, ToString};

use edge_proto::{parse_broker_url, validate_name};

/// Validated settings, borrowing the compiled-in strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings<'a> {
    pub ssid: &'a str,
    pub password: &'a str,
    /// Broker host (a name resolved over DNS, or an IPv4 address) and port.
    pub broker_host: String,
    pub broker_port: u16,
    pub join_token: Option<&'a str>,
    /// Topic prefix (`edge/v1` unless built with another).
    pub prefix: &'a str,
}

/// A compiled-in setting that cannot work; names the variable to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadSetting {
    EmptySsid,
    /// An SSID is at most 32 bytes.
    LongSsid {
        len: usize,
    },
    /// WPA2 passphrases are 8 to 63 characters (an empty one means an open network).
    Password {
        len: usize,
    },
    Broker(String),
    NodeName(String),
}

impl core::fmt::Display for BadSetting {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BadSetting::EmptySsid => f.write_str("EDGE_WIFI_SSID is empty"),
            BadSetting::LongSsid { len } => write!(f, "EDGE_WIFI_SSID has {len} bytes: an SSID has at most 32"),
            BadSetting::Password { len } => {
                write!(f, "EDGE_WIFI_PASSWORD has {len} characters: WPA2 wants 8 to 63 (or none for an open network)")
            }
            BadSetting::Broker(e) => write!(f, "EDGE_BROKER: {e}"),
            BadSetting::NodeName(e) => write!(f, "EDGE_NODE: {e}"),
        }
    }
}

impl<'a> Settings<'a> {
    /// The core's configuration for node `node` on `board`, announcing the board's RAM and the protocol's
    /// heartbeat, with `version` (the board binary's) in its hello.
    pub fn node_config(&'a self, node: &'a str, board: edge_firmware::board::Board, version: &'a str) -> edge_firmware::Config<'a> {
        edge_firmware::Config {
            node,
            prefix: self.prefix,
            join_token: self.join_token,
            board,
            ram_bytes: board.ram_bytes,
            heartbeat_ms: edge_proto::timing::HEARTBEAT.as_millis() as u64,
            version,
        }
    }

    /// `broker` as users write it (`mqtt://HOST:PORT`, the same parser as the agent's `--broker`).
    pub fn parse(
        ssid: &'a str,
        password: &'a str,
        broker: &'a str,
        join_token: Option<&'a str>,
        prefix: Option<&'a str>,
    ) -> Result<Settings<'a>, BadSetting> {
        if ssid.is_empty() {
            return Err(BadSetting::EmptySsid);
        }
        if ssid.len() > 32 {
            return Err(BadSetting::LongSsid { len: ssid.len() });
        }
        if !password.is_empty() && !(8..=63).contains(&password.len()) {
            return Err(BadSetting::Password { len: password.len() });
        }
        let (broker_host, broker_port) = parse_broker_url(broker).map_err(|e| BadSetting::Broker(e.to_string()))?;
        Ok(Settings {
            ssid,
            password,
            broker_host,
            broker_port,
            join_token: join_token.filter(|t| !t.is_empty()),
            prefix: prefix.filter(|p| !p.is_empty()).unwrap_or(edge_proto::topic::DEFAULT_PREFIX),
        })
    }
}

/// The node's name: `EDGE_NODE` when the image was built with one, else the board's name and the chip's unique
/// id (`pico-w-e6614c311b6d5c2a`), so one image can be flashed onto many boards.
pub fn node_name(given: Option<&str>, board: &str, chip_id: &[u8]) -> Result<String, BadSetting> {
    use core::fmt::Write;
    let name = match given.filter(|n| !n.is_empty()) {
        Some(n) => n.into(),
        None => {
            let mut name = String::from(board);
            name.push('-');
            for b in chip_id {
                // Writing to a String cannot fail.
                let _ = write!(name, "{b:02x}");
            }
            name
        }
    };
    validate_name(&name).map_err(|e| BadSetting::NodeName(e.to_string()))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_settings_parse_with_defaults() {
        let s = Settings::parse("lab", "correct horse", "mqtt://10.0.0.2:1883", Some(""), None).unwrap();
        assert_eq!((s.broker_host.as_str(), s.broker_port), ("10.0.0.2", 1883));
        assert_eq!(s.join_token, None, "an empty token means none");
        assert_eq!(s.prefix, "edge/v1");
        let open = Settings::parse("cafe", "", "mqtt://broker.lan:1883", Some("tok"), Some("lab/v1")).unwrap();
        assert_eq!((open.join_token, open.prefix), (Some("tok"), "lab/v1"));
    }

    #[test]
    fn bad_settings_name_the_variable() {
        assert_eq!(Settings::parse("", "", "mqtt://h:1", None, None), Err(BadSetting::EmptySsid));
        let long = "x".repeat(33);
        assert_eq!(Settings::parse(&long, "", "mqtt://h:1", None, None), Err(BadSetting::LongSsid { len: 33 }));
        let short = Settings::parse("lab", "short", "mqtt://h:1", None, None).unwrap_err();
        assert!(short.to_string().starts_with("EDGE_WIFI_PASSWORD"));
        let broker = Settings::parse("lab", "", "http://h", None, None).unwrap_err();
        assert!(matches!(broker, BadSetting::Broker(_)));
        assert!(broker.to_string().starts_with("EDGE_BROKER: "));
    }

    #[test]
    fn the_default_name_is_the_board_and_chip_id() {
        assert_eq!(node_name(None, "pico-w", &[0xe6, 0x61, 0x4c, 0x31]).unwrap(), "pico-w-e6614c31");
        assert_eq!(node_name(Some("greenhouse-3"), "pico-w", &[1]).unwrap(), "greenhouse-3");
        assert!(matches!(node_name(Some("Bad Name!"), "pico-w", &[]), Err(BadSetting::NodeName(_))));
    }
}
