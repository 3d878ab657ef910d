//! Pacing between connection attempts, the same for every client.
//!
//! After a failed attempt or a lost connection the next attempt waits a jittered back-off (1 s doubling to
//! 30 s, [`edge_proto::backoff::Backoff`]): a broker that answers and refuses or drops us (bad credentials, a
//! client-id takeover, overload) is not hammered. When the error says nothing answers at all ([`unreachable`]:
//! refused port, no route, timeout), the wait is cut short by a bare TCP probe about once a second, so a
//! fleet is back about a second after its broker instead of up to 30 s later. Every wait ends at once when the
//! shutdown watch turns true (or its sender is dropped).
//!
//! [`Reconnect::plan`] is the pure part (what to wait and whether to probe, given the randomness);
//! [`Reconnect::wait`] carries it out.

use std::time::Duration;

use edge_proto::backoff::Backoff;
use rumqttc::ConnectionError;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::LinkOptions;

/// Probes while the broker is unreachable are this far apart, plus up to [`PROBE_JITTER`].
pub const PROBE_EVERY: Duration = Duration::from_millis(700);
/// The spread of the probe interval, so a fleet's probes do not arrive in lock-step.
pub const PROBE_JITTER: Duration = Duration::from_millis(600);
/// A probe that has not connected by then counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// True when the error says the broker could not be reached at all (nothing listening, no route, timeout), as
/// opposed to a broker that answered and refused or dropped us: only then is probing worth it.
pub fn unreachable(e: &ConnectionError) -> bool {
    use std::io::ErrorKind::*;
    match e {
        ConnectionError::Io(io) => {
            matches!(io.kind(), ConnectionRefused | TimedOut | HostUnreachable | NetworkUnreachable | AddrNotAvailable)
        }
        ConnectionError::NetworkTimeout => true,
        _ => false,
    }
}

/// What to do before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The longest wait.
    pub delay: Duration,
    /// Whether a TCP probe may end the wait early (the broker was plainly unreachable).
    pub probe: bool,
}

/// How a [`Reconnect::wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// Time to try again: poll the event loop (it reconnects).
    Retry,
    /// The shutdown watch turned true or its sender went away: stop.
    Shutdown,
}

/// Whether `error` is an answer that did not decode as MQTT (rather than a refused or lost connection).
fn not_mqtt(error: &ConnectionError) -> bool {
    matches!(error, ConnectionError::MqttState(rumqttc::StateError::Deserialization(_)))
}

/// The back-off state of one link. Call [`Reconnect::connected`] on every ConnAck and [`Reconnect::wait`] on
/// every [`ConnectionError`].
#[derive(Debug, Clone)]
pub struct Reconnect {
    backoff: Backoff,
    host: String,
    port: u16,
    /// Whether the link speaks TLS: a plain link that gets garbage back is told the broker may want `mqtts://`.
    tls: bool,
}

impl Reconnect {
    /// Pacing for the link `options` describe (its broker is what the probe tries).
    pub fn new(options: &LinkOptions) -> Reconnect {
        let (host, port) = options.broker();
        Reconnect { backoff: Backoff::default(), host: host.to_string(), port, tls: options.tls.is_some() }
    }

    /// A connection was established: the next failure waits the minimum again.
    pub fn connected(&mut self) {
        self.backoff.reset();
    }

    /// The wait after `error`, advancing the back-off; `random` is any uniformly random `u32` (the jitter).
    pub fn plan(&mut self, error: &ConnectionError, random: u32) -> Plan {
        Plan { delay: self.backoff.next_delay(random), probe: unreachable(error) }
    }

    /// Logs `error` once and waits as [`Reconnect::plan`] says, until the next attempt is due or shutdown.
    pub async fn wait(&mut self, error: &ConnectionError, shutdown: &mut watch::Receiver<bool>) -> Waited {
        let plan = self.plan(error, rand::random());
        if plan.probe {
            let (broker, port) = (&self.host, self.port);
            tracing::warn!(%error, %broker, port, "MQTT broker unreachable; reconnecting as soon as it answers");
        } else if !self.tls && not_mqtt(error) {
            // What a TLS listener answers a plain CONNECT with (an alert) does not decode as MQTT.
            tracing::warn!(%error, retry_in_ms = plan.delay.as_millis() as u64,
                "MQTT connection failed: the broker's answer is not MQTT; if it speaks TLS, use --broker mqtts://");
        } else {
            tracing::warn!(%error, retry_in_ms = plan.delay.as_millis() as u64, "MQTT connection failed");
        }
        tokio::select! {
            _ = self.pace(plan) => Waited::Retry,
            _ = stopped(shutdown) => Waited::Shutdown,
        }
    }

    /// Waits `plan.delay`; when `plan.probe`, returns early once a TCP connection to the broker succeeds.
    async fn pace(&self, plan: Plan) {
        let deadline = Instant::now() + plan.delay;
        if !plan.probe {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        loop {
            let next = (Instant::now() + probe_step(rand::random())).min(deadline);
            tokio::time::sleep_until(next).await;
            if next >= deadline {
                return;
            }
            let timeout = PROBE_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
            let attempt = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
            if let Ok(Ok(_)) = tokio::time::timeout(timeout, attempt).await {
                return;
            }
        }
    }
}

/// The interval before the next probe: [`PROBE_EVERY`] plus a jitter below [`PROBE_JITTER`] drawn from `random`.
pub fn probe_step(random: u64) -> Duration {
    PROBE_EVERY + Duration::from_millis(random % PROBE_JITTER.as_millis() as u64)
}

/// Resolves once `shutdown` is true or its sender is dropped. The watch's guard is dropped before returning,
/// so this can race other branches of a `select!` in a task that must be `Send`.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::ConnectReturnCode;
    use std::io::{Error, ErrorKind};

    fn io(kind: ErrorKind) -> ConnectionError {
        ConnectionError::Io(Error::from(kind))
    }

    #[test]
    fn only_errors_where_nothing_answers_are_unreachable() {
        for kind in [ErrorKind::ConnectionRefused, ErrorKind::TimedOut, ErrorKind::HostUnreachable] {
            assert!(unreachable(&io(kind)), "{kind:?}");
        }
        assert!(unreachable(&ConnectionError::NetworkTimeout));
        // A broker that answered: it refused us, dropped us, or the name did not resolve.
        assert!(!unreachable(&ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)));
        assert!(!unreachable(&io(ErrorKind::ConnectionReset)));
        assert!(!unreachable(&io(ErrorKind::UnexpectedEof)));
        assert!(!unreachable(&ConnectionError::FlushTimeout));
    }

    #[test]
    fn an_answer_that_is_not_mqtt_is_told_apart() {
        // The bytes of a TLS alert read as a packet whose length runs past what arrived.
        let garbage = rumqttc::mqttbytes::Error::BoundaryCrossed(768);
        assert!(not_mqtt(&ConnectionError::MqttState(rumqttc::StateError::Deserialization(garbage))));
        assert!(!not_mqtt(&io(ErrorKind::ConnectionReset)));
        assert!(!not_mqtt(&ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)));
    }

    #[test]
    fn plans_back_off_from_one_to_thirty_seconds_and_reset_on_connect() {
        let mut r = Reconnect::new(&LinkOptions::new("c", "127.0.0.1", 1));
        let refused = io(ErrorKind::ConnectionRefused);
        let first = r.plan(&refused, u32::MAX);
        assert!(first.probe);
        assert!(first.delay >= Backoff::MIN / 2 && first.delay <= Backoff::MIN, "{first:?}");
        let delays: Vec<Duration> = (0..10).map(|_| r.plan(&refused, u32::MAX).delay).collect();
        assert!(delays[0] >= Duration::from_secs(1) && delays[0] <= Duration::from_secs(2), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= Backoff::MAX), "{delays:?}");
        assert!(*delays.last().unwrap() >= Backoff::MAX / 2, "{delays:?}");
        let denied = ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword);
        assert!(!r.plan(&denied, 0).probe);
        r.connected();
        assert!(r.plan(&denied, u32::MAX).delay <= Backoff::MIN);
    }

    #[test]
    fn probes_are_about_a_second_apart() {
        for random in [0, 1, 599, 600, u64::MAX] {
            let step = probe_step(random);
            assert!(step >= Duration::from_millis(700) && step < Duration::from_millis(1300), "{step:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_broker_that_refused_gets_the_full_back_off() {
        let mut r = Reconnect::new(&LinkOptions::new("c", "127.0.0.1", 1));
        let denied = ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized);
        for _ in 0..5 {
            r.plan(&denied, 0); // Grow the back-off to 32 s → capped 30 s.
        }
        let (_tx, mut rx) = watch::channel(false);
        let t0 = Instant::now();
        assert_eq!(r.wait(&denied, &mut rx).await, Waited::Retry);
        let waited = t0.elapsed();
        assert!(waited >= Backoff::MAX / 2 && waited <= Backoff::MAX, "{waited:?}");
    }

    #[tokio::test]
    async fn a_probe_ends_the_wait_once_the_port_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut r = Reconnect::new(&LinkOptions::new("c", "127.0.0.1", port));
        let refused = io(ErrorKind::ConnectionRefused);
        for _ in 0..5 {
            r.plan(&refused, 0);
        }
        let (_tx, mut rx) = watch::channel(false);
        let t0 = std::time::Instant::now();
        let waited = tokio::time::timeout(Duration::from_secs(10), r.wait(&refused, &mut rx)).await;
        assert_eq!(waited, Ok(Waited::Retry), "the wait was not cut short by the probe");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_cancels_a_wait() {
        let mut r = Reconnect::new(&LinkOptions::new("c", "127.0.0.1", 1));
        let refused = io(ErrorKind::ConnectionRefused);
        let (tx, mut rx) = watch::channel(false);
        let waiting = tokio::spawn(async move { r.wait(&refused, &mut rx).await });
        tokio::task::yield_now().await;
        tx.send_replace(true);
        assert_eq!(tokio::time::timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap(), Waited::Shutdown);
        // A dropped sender counts as shutdown too.
        let mut r = Reconnect::new(&LinkOptions::new("c", "127.0.0.1", 1));
        let (tx, mut rx) = watch::channel(false);
        drop(tx);
        let denied = ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized);
        assert_eq!(r.wait(&denied, &mut rx).await, Waited::Shutdown);
    }
}
