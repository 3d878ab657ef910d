//! Node liveness, pure: whether a node is Ready, since when it is not, and whether it is lost. Every question
//! takes `now`, so the rules are tested without a clock.
//!
//! **Rules:** a node is Ready while it is online (no Last Will since its last message) and heard from within
//! `node_timeout`. It is NotReady since the earlier of its Last Will and `last heard + node_timeout`; a node not
//! heard from since this controller started counts from `started + node_timeout`, so a controller restart alone
//! never makes a node lost. A node NotReady for `reschedule_after` is lost.

use std::time::{Duration, Instant};

/// The timing the rules use.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub started: Instant,
    pub node_timeout: Duration,
    pub reschedule_after: Duration,
}

/// What is known of one node's connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct Liveness {
    online: bool,
    last_heard: Option<Instant>,
    /// When its Last Will (or a clean `offline` status) arrived.
    offline_at: Option<Instant>,
}

impl Liveness {
    /// A hello or heartbeat arrived: the node is online and current.
    pub fn heard(&mut self, now: Instant) {
        self.online = true;
        self.last_heard = Some(now);
    }

    /// Its retained status changed. `last_heard` stays when it goes offline: NotReady-since is the earlier of the
    /// Last Will and the silence, never the controller's start.
    pub fn status(&mut self, online: bool, now: Instant) {
        self.online = online;
        if !online {
            self.offline_at = Some(now);
        }
    }

    pub fn is_ready(&self, p: &Policy, now: Instant) -> bool {
        self.online && self.last_heard.is_some_and(|t| now.saturating_duration_since(t) < p.node_timeout)
    }

    /// When the node became NotReady (possibly in the future for a node not heard from since the controller
    /// started); `None` while it is Ready.
    pub fn not_ready_since(&self, p: &Policy, now: Instant) -> Option<Instant> {
        if self.is_ready(p, now) {
            return None;
        }
        let silent = self.last_heard.unwrap_or(p.started) + p.node_timeout;
        match self.offline_at.filter(|_| !self.online) {
            Some(will) => Some(will.min(silent)),
            None => Some(silent),
        }
    }

    pub fn is_lost(&self, p: &Policy, now: Instant) -> bool {
        self.not_ready_since(p, now).is_some_and(|t| now.saturating_duration_since(t) >= p.reschedule_after)
    }

    /// The next instant at which, without any new message, this node's Ready or lost status changes by the
    /// passing of time alone: a Ready node goes NotReady when its silence reaches `node_timeout`, a NotReady
    /// one is lost `reschedule_after` later. `None` once it is lost (only a message changes it then).
    pub fn next_change(&self, p: &Policy, now: Instant) -> Option<Instant> {
        match self.not_ready_since(p, now) {
            None => self.last_heard.map(|t| t + p.node_timeout),
            Some(since) => {
                let lost_at = since + p.reschedule_after;
                (lost_at > now).then_some(lost_at)
            }
        }
    }

    /// The Ready condition's status and reason, worded for `edgectl describe node`. `known`: whether the node
    /// has been heard from at all since the controller started.
    pub fn condition(&self, p: &Policy, now: Instant, known: bool) -> (bool, String) {
        if self.is_ready(p, now) {
            return (true, "heartbeats are current".to_string());
        }
        if !known {
            return (false, "not heard from since the controller started".to_string());
        }
        if !self.online && self.offline_at.is_some() {
            return (false, "its MQTT connection closed (Last Will received)".to_string());
        }
        match self.last_heard {
            Some(t) => (false, format!("no heartbeat for {:.1} s", now.saturating_duration_since(t).as_secs_f64())),
            None => (false, "no heartbeat yet".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(started: Instant) -> Policy {
        Policy { started, node_timeout: Duration::from_secs(6), reschedule_after: Duration::from_secs(30) }
    }

    #[test]
    fn ready_while_heard_within_the_timeout() {
        let t0 = Instant::now();
        let p = policy(t0);
        let mut l = Liveness::default();
        assert!(!l.is_ready(&p, t0));
        l.heard(t0);
        assert!(l.is_ready(&p, t0 + Duration::from_secs(5)));
        assert!(!l.is_ready(&p, t0 + Duration::from_secs(6)));
        assert_eq!(l.not_ready_since(&p, t0 + Duration::from_secs(7)), Some(t0 + Duration::from_secs(6)));
    }

    #[test]
    fn a_last_will_makes_it_not_ready_at_once() {
        let t0 = Instant::now();
        let p = policy(t0);
        let mut l = Liveness::default();
        l.heard(t0);
        l.status(false, t0 + Duration::from_secs(1));
        assert!(!l.is_ready(&p, t0 + Duration::from_secs(1)));
        assert_eq!(l.not_ready_since(&p, t0 + Duration::from_secs(2)), Some(t0 + Duration::from_secs(1)));
        assert!(l.is_lost(&p, t0 + Duration::from_secs(31)));
        assert!(!l.is_lost(&p, t0 + Duration::from_secs(30)));
        l.heard(t0 + Duration::from_secs(32));
        assert!(l.is_ready(&p, t0 + Duration::from_secs(32)));
    }

    #[test]
    fn a_node_unheard_since_the_start_gets_one_timeout_of_grace() {
        let t0 = Instant::now();
        let p = policy(t0);
        let l = Liveness::default();
        assert_eq!(l.not_ready_since(&p, t0), Some(t0 + Duration::from_secs(6)));
        assert!(!l.is_lost(&p, t0 + Duration::from_secs(35)));
        assert!(l.is_lost(&p, t0 + Duration::from_secs(36)));
        assert_eq!(l.condition(&p, t0, false).1, "not heard from since the controller started");
    }

    #[test]
    fn the_next_change_is_when_time_alone_moves_it_to_not_ready_then_lost() {
        let t0 = Instant::now();
        let p = policy(t0);
        let mut l = Liveness::default();
        // Never heard: NotReady from the grace's end, lost reschedule_after later.
        assert_eq!(l.next_change(&p, t0), Some(t0 + Duration::from_secs(36)));
        l.heard(t0 + Duration::from_secs(1));
        let not_ready = l.next_change(&p, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(not_ready, t0 + Duration::from_secs(7));
        assert!(l.is_ready(&p, not_ready - Duration::from_millis(1)) && !l.is_ready(&p, not_ready));
        let lost = l.next_change(&p, not_ready).unwrap();
        assert_eq!(lost, t0 + Duration::from_secs(37));
        assert!(!l.is_lost(&p, lost - Duration::from_millis(1)) && l.is_lost(&p, lost));
        assert_eq!(l.next_change(&p, lost), None);
    }

    #[test]
    fn a_clock_that_seems_to_go_back_never_panics() {
        let t0 = Instant::now();
        let p = policy(t0);
        let mut l = Liveness::default();
        l.heard(t0 + Duration::from_secs(10));
        assert!(l.is_ready(&p, t0));
        assert!(!l.is_lost(&p, t0));
    }
}
