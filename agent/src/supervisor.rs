//! Per-instance supervision: lifecycle state, restart policy and back-off. Pure: no clock reads, no I/O.
//!
//! The runtime reports what happened ([`Supervisor::started`], [`Supervisor::exited`]); the supervisor answers
//! whether and when to start again. Back-off starts at [`BACKOFF_START`], doubles per consecutive failure up to
//! [`BACKOFF_MAX`], and resets once an instance has run for [`BACKOFF_RESET_AFTER`].
//!
//! A run-to-completion instance whose policy says not to start it again is [`Finished`]: that state is final,
//! persisted by the core, and restored as it was ([`Supervisor::restore`]) when the agent starts again.

use std::time::Duration;

use edge_proto::{InstanceState, InstanceStatus, RestartPolicy};
use serde::{Deserialize, Serialize};

pub const BACKOFF_START: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// How one run of an instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The guest returned (code 0) or called `proc_exit(code)`.
    Code(i32),
    /// The guest trapped or hit a limit.
    Trap(String),
    /// The instance could not be started (module invalid, instantiation refused).
    Failed(String),
}

/// What to do after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    RestartAfter(Duration),
    Done,
}

/// How a run-to-completion instance ended for good (its restart policy said not to start it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    /// `Succeeded` or `Failed`.
    pub state: InstanceState,
    pub restarts: u32,
    pub started_at_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Supervisor {
    pub id: String,
    policy: RestartPolicy,
    pub state: InstanceState,
    pub restarts: u32,
    pub started_at_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    backoff: Duration,
}

impl Supervisor {
    pub fn new(id: String, policy: RestartPolicy) -> Supervisor {
        Supervisor {
            id,
            policy,
            state: InstanceState::Starting,
            restarts: 0,
            started_at_ms: None,
            exit_code: None,
            reason: None,
            backoff: BACKOFF_START,
        }
    }

    /// An instance that ended for good in an earlier run of the agent: it reports exactly as it ended (state,
    /// restart count, exit) and is never started again.
    pub fn restore(id: String, policy: RestartPolicy, finished: &Finished) -> Supervisor {
        Supervisor {
            state: finished.state,
            restarts: finished.restarts,
            started_at_ms: finished.started_at_ms,
            exit_code: finished.exit_code,
            reason: finished.reason.clone(),
            ..Supervisor::new(id, policy)
        }
    }

    /// The final state, once the instance has ended for good.
    pub fn finished(&self) -> Option<Finished> {
        matches!(self.state, InstanceState::Succeeded | InstanceState::Failed).then(|| Finished {
            state: self.state,
            restarts: self.restarts,
            started_at_ms: self.started_at_ms,
            exit_code: self.exit_code,
            reason: self.reason.clone(),
        })
    }

    /// Waiting for something before the first start (e.g. the module download).
    pub fn waiting(&mut self, why: &str) {
        self.state = InstanceState::Starting;
        self.reason = Some(why.to_string());
    }

    /// A run is about to begin (again).
    pub fn starting(&mut self) {
        self.state = InstanceState::Starting;
    }

    /// The guest's entry point is running.
    pub fn started(&mut self, at_ms: u64) {
        self.state = InstanceState::Running;
        self.started_at_ms = Some(at_ms);
        self.exit_code = None;
        self.reason = None;
    }

    /// The run ended after `ran_for`; returns whether to restart and when.
    pub fn exited(&mut self, exit: &Exit, ran_for: Duration) -> Decision {
        let code = match exit {
            Exit::Code(c) => Some(*c),
            Exit::Trap(_) | Exit::Failed(_) => None,
        };
        self.exit_code = code;
        self.reason = match exit {
            Exit::Code(0) => None,
            Exit::Code(c) => Some(format!("exited with code {c}")),
            Exit::Trap(r) | Exit::Failed(r) => Some(r.clone()),
        };
        if ran_for >= BACKOFF_RESET_AFTER {
            self.backoff = BACKOFF_START;
        }
        if self.policy.restarts_after(code) {
            let delay = self.backoff;
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            self.state = InstanceState::CrashLoopBackOff;
            Decision::RestartAfter(delay)
        } else {
            self.state = if code == Some(0) { InstanceState::Succeeded } else { InstanceState::Failed };
            Decision::Done
        }
    }

    /// Counts a restart that is now beginning.
    pub fn restarting(&mut self) {
        self.restarts = self.restarts.saturating_add(1);
        self.state = InstanceState::Starting;
    }

    pub fn status(&self) -> InstanceStatus {
        InstanceStatus {
            id: self.id.clone(),
            state: self.state,
            restarts: self.restarts,
            started_at_ms: self.started_at_ms,
            exit_code: self.exit_code,
            reason: self.reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_restarts_with_doubling_backoff_capped_and_reset_after_a_long_run() {
        let mut s = Supervisor::new("i".into(), RestartPolicy::Always);
        s.started(1);
        assert_eq!(s.state, InstanceState::Running);
        let short = Duration::from_millis(10);
        let delays: Vec<Decision> = (0..8).map(|_| s.exited(&Exit::Code(1), short)).collect();
        assert_eq!(delays[0], Decision::RestartAfter(Duration::from_secs(1)));
        assert_eq!(delays[1], Decision::RestartAfter(Duration::from_secs(2)));
        assert_eq!(delays[7], Decision::RestartAfter(BACKOFF_MAX));
        assert_eq!(s.state, InstanceState::CrashLoopBackOff);
        assert_eq!(s.reason.as_deref(), Some("exited with code 1"));
        assert_eq!(s.exited(&Exit::Code(0), BACKOFF_RESET_AFTER), Decision::RestartAfter(BACKOFF_START));
        s.restarting();
        assert_eq!(s.restarts, 1);
    }

    #[test]
    fn on_failure_and_never_end_as_succeeded_or_failed() {
        let mut s = Supervisor::new("i".into(), RestartPolicy::OnFailure);
        assert_eq!(s.exited(&Exit::Code(0), Duration::ZERO), Decision::Done);
        assert_eq!(s.state, InstanceState::Succeeded);
        assert!(matches!(s.exited(&Exit::Trap("unreachable".into()), Duration::ZERO), Decision::RestartAfter(_)));
        let mut s = Supervisor::new("i".into(), RestartPolicy::Never);
        assert_eq!(s.exited(&Exit::Code(3), Duration::ZERO), Decision::Done);
        assert_eq!(s.state, InstanceState::Failed);
        assert_eq!(s.status().exit_code, Some(3));
    }

    #[test]
    fn a_finished_instance_is_restored_exactly_as_it_ended() {
        let mut s = Supervisor::new("i".into(), RestartPolicy::Never);
        assert_eq!(s.finished(), None);
        s.restarts = 2;
        s.started(7);
        assert_eq!(s.finished(), None, "running is not final");
        assert_eq!(s.exited(&Exit::Code(0), Duration::ZERO), Decision::Done);
        let done = s.finished().expect("succeeded under never is final");
        assert_eq!((done.state, done.restarts, done.exit_code), (InstanceState::Succeeded, 2, Some(0)));
        let again = Supervisor::restore("i".into(), RestartPolicy::Never, &done);
        assert_eq!(again.status(), s.status());
        // Restart counters never wrap.
        let mut s = Supervisor::new("i".into(), RestartPolicy::Always);
        s.restarts = u32::MAX;
        s.restarting();
        assert_eq!(s.restarts, u32::MAX);
    }
}
