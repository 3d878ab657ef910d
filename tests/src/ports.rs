//! Ports for brokers, which cannot be handed an already-bound socket and cannot report a port-0 bind (rumqttd
//! binds on its own thread and never says where; Mosquitto 2.0 reads port 0 as "a unix socket").
//!
//! A port picked by binding port 0 and releasing it races: the kernel hands the same number to the next
//! port-0 bind or outgoing connection (an agent, a proxy, the API) before the broker takes it. So brokers get
//! their ports this way instead:
//! - [`free_port`] picks at random *outside* the kernel's ephemeral range (which it reads), so no automatic
//!   assignment ever collides with it; only another explicit pick can, and
//! - whoever starts a broker on it detects the bind failure (rumqttd's `BrokerError::Bind`, Mosquitto's exit
//!   with "Address already in use", the controller process's exit) and tries again with a new port, at most
//!   [`TRIES`] times ([`retry_on_bind`]).
//!
//! Everything else (the controller's API, proxies) binds port 0 and reads its address.

use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::ops::RangeInclusive;

/// Attempts at starting a broker on a fresh port before giving up.
pub const TRIES: usize = 20;

/// Linux's default ephemeral range, used when `/proc` does not say.
const DEFAULT_EPHEMERAL: RangeInclusive<u16> = 32768..=60999;

/// Lowest port handed out: above the well-known and most registered service ports.
const LOWEST: u16 = 10_000;

/// A loopback port outside the ephemeral range that nothing listens on right now. Give it to a broker that
/// reports a failed bind, and retry with another on failure (see [`retry_on_bind`]).
pub fn free_port() -> u16 {
    let ephemeral = ephemeral_range();
    // The larger of the two ranges around the ephemeral one, [LOWEST, start) or (end, 65535].
    let below = (LOWEST, (*ephemeral.start()).max(LOWEST));
    let above = (ephemeral.end().saturating_add(1).max(LOWEST), u16::MAX);
    let (lo, hi) = if below.1 - below.0 >= above.1 - above.0 { below } else { above };
    assert!(hi > lo, "no loopback ports outside the ephemeral range {ephemeral:?}");
    for _ in 0..1000 {
        let port = lo + (random() % u64::from(hi - lo)) as u16;
        // Taken now (a listener, or a connection bound to it): pick again. Free now can still be taken before
        // the broker binds it, by another explicit pick; the broker's start then fails and is retried.
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {lo}..{hi} after 1000 picks")
}

/// Runs `start` with a port from [`free_port`] until it succeeds, retrying (with a new port) while
/// `is_bind_failure` says the port was taken; panics after [`TRIES`] attempts or on any other failure.
pub fn retry_on_bind<T, E: std::fmt::Display>(
    what: &str,
    mut start: impl FnMut(u16) -> Result<T, E>,
    is_bind_failure: impl Fn(&E) -> bool,
) -> T {
    let mut last = String::new();
    for _ in 0..TRIES {
        match start(free_port()) {
            Ok(v) => return v,
            Err(e) if is_bind_failure(&e) => last = e.to_string(),
            Err(e) => panic!("{what} failed to start: {e}"),
        }
    }
    panic!("{what}: no port could be bound in {TRIES} attempts; last: {last}")
}

/// The async form of [`retry_on_bind`].
pub async fn retry_on_bind_async<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    mut start: impl FnMut(u16) -> F,
    is_bind_failure: impl Fn(&E) -> bool,
) -> T {
    let mut last = String::new();
    for _ in 0..TRIES {
        match start(free_port()).await {
            Ok(v) => return v,
            Err(e) if is_bind_failure(&e) => last = e.to_string(),
            Err(e) => panic!("{what} failed to start: {e}"),
        }
    }
    panic!("{what}: no port could be bound in {TRIES} attempts; last: {last}")
}

/// Whether a controller failed to start because its embedded broker's port was taken.
pub fn broker_port_taken(e: &edge_controller::ControllerError) -> bool {
    matches!(e, edge_controller::ControllerError::Broker(edge_controller::broker::BrokerError::Bind { .. }))
}

/// The kernel's ephemeral port range (`/proc/sys/net/ipv4/ip_local_port_range`).
fn ephemeral_range() -> RangeInclusive<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>());
    match (parts.next(), parts.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => lo..=hi,
        _ => DEFAULT_EPHEMERAL,
    }
}

/// A random number (std's per-process random hash keys, and the clock).
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_outside_the_ephemeral_range_and_bindable() {
        let ephemeral = ephemeral_range();
        for _ in 0..50 {
            let p = free_port();
            assert!(!ephemeral.contains(&p) && p >= LOWEST, "{p} in {ephemeral:?}");
            assert!(TcpListener::bind(("127.0.0.1", p)).is_ok());
        }
    }

    #[test]
    fn a_taken_port_is_retried_and_other_failures_are_not() {
        let mut calls = 0;
        let got = retry_on_bind(
            "x",
            |p| {
                if {
                    calls += 1;
                    calls
                } < 3
                {
                    Err("taken")
                } else {
                    Ok(p)
                }
            },
            |e| *e == "taken",
        );
        assert!(got >= LOWEST);
        assert_eq!(calls, 3);
        let refused = std::panic::catch_unwind(|| retry_on_bind("x", |_| Err::<u16, _>("broken"), |e| *e == "taken"));
        assert!(refused.is_err());
    }
}
