//! Broker addresses as users write them: `mqtt://HOST:PORT` (also `tcp://HOST:PORT` or a bare `HOST:PORT`), or
//! `mqtts://HOST:PORT` for MQTT over TLS ([`parse_broker_endpoint`]).

use alloc::string::{String, ToString};
use core::fmt;

/// The text is not `mqtt://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBrokerUrl(pub String);

impl fmt::Display for BadBrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid broker URL {:?}: expected mqtt://HOST:PORT", self.0)
    }
}

impl core::error::Error for BadBrokerUrl {}

/// Where a broker is, and whether it speaks TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: MQTT over TLS.
    pub tls: bool,
}

/// [`parse_broker_url`], also taking `mqtts://HOST:PORT` (TLS).
pub fn parse_broker_endpoint(url: &str) -> Result<BrokerEndpoint, BadBrokerUrl> {
    let (rest, tls) = match url.strip_prefix("mqtts://") {
        Some(rest) => (rest, true),
        None => (url, false),
    };
    if tls && rest.contains("://") {
        return Err(BadBrokerUrl(url.to_string()));
    }
    let (host, port) = parse_broker_url(rest).map_err(|_| BadBrokerUrl(url.to_string()))?;
    Ok(BrokerEndpoint { host, port, tls })
}

/// Splits a broker URL into host and port. IPv6 hosts may be bracketed (`mqtt://[::1]:1883`).
pub fn parse_broker_url(url: &str) -> Result<(String, u16), BadBrokerUrl> {
    let bad = || BadBrokerUrl(url.to_string());
    let rest = url.strip_prefix("mqtt://").or_else(|| url.strip_prefix("tcp://")).unwrap_or(url);
    let (host, port) = rest.trim_end_matches('/').rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok((host.to_string(), port.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_urls() {
        assert_eq!(parse_broker_url("mqtt://127.0.0.1:1883").unwrap(), ("127.0.0.1".into(), 1883));
        assert_eq!(parse_broker_url("broker.local:8883").unwrap(), ("broker.local".into(), 8883));
        assert_eq!(parse_broker_url("mqtt://[::1]:1883").unwrap(), ("::1".into(), 1883));
        for bad in ["mqtt://host", "mqtt://:1883", "mqtt://h:99999", "http://h:1/x", "mqtts://h:1"] {
            assert!(parse_broker_url(bad).is_err(), "{bad}");
        }
        let e = parse_broker_endpoint("mqtts://ctl.local:8883").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.tls), ("ctl.local", 8883, true));
        assert!(!parse_broker_endpoint("mqtt://ctl.local:1883").unwrap().tls);
        assert!(parse_broker_endpoint("mqtts://mqtt://h:1").is_err());
    }
}
