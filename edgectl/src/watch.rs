//! When a `deploy --wait` or a `rollout status` is over, decided from successive [`WorkloadView`]s. Pure: the
//! caller (`follow.rs`) polls the controller and hands each view to [`Watch::observe`], which answers
//! [`Outcome::Ready`], [`Outcome::Failing`] with a one-line reason, or [`Outcome::Waiting`]. No I/O, no clock: the
//! caller owns the timeout.
//!
//! The rules:
//! - A replica counts only when the controller says it is `ready` (Running for its min-ready time without
//!   restarting, or Succeeded); under `--restart never`/`on-failure` a Succeeded replica counts as well. Merely
//!   Running is not enough: a crash-looping instance is Running between its crashes.
//! - **Ready**: no instance of an older revision is left, there are exactly `replicas` instances, and every one
//!   counts.
//! - **Failing**, at once rather than at the timeout: the controller halted the rollout; or an instance of the
//!   current revision is CrashLoopBackOff or Failed, or has restarted since the watch began. A module that exits 0
//!   under `--restart always` is said to keep exiting, plainly.
//! - Which instances are of the current revision: every one once the controller counts no old ones; until then,
//!   those the watch did not know before it began (ids are never reused and a new template gets new ids).
//!   Instances known before whose revision is unsure (a rollout was already under way) are judged by the
//!   controller's rollout state alone.
//! - The reason is the instance's last exit as seen in any view (a restarted instance reports Running with none).
//!   The controller may show a crash-loop's back-off before the exit's reason has reached it (the agent's next
//!   heartbeat carries it): such a failure says its exit is not known yet, so the caller can look a little longer.

use std::collections::{HashMap, HashSet};

use edge_api::{InstanceView, WorkloadView};

/// Where a wait stands after one view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every replica of the current revision is ready.
    Ready,
    /// It will not get there by waiting.
    Failing(Failure),
    Waiting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Why, in one line, naming the instance.
    pub reason: String,
    /// False while the exit behind it is not known yet (see the module doc): worth a heartbeat's wait for it.
    pub exit_known: bool,
}

/// What a wait remembers between views.
#[derive(Debug)]
pub struct Watch {
    /// The revision waited for (the newest seen: a deploy by someone else meanwhile is followed).
    revision: u64,
    /// Instances of an older revision, or possibly so: never judged one by one.
    old: HashSet<String>,
    seen: HashMap<String, Seen>,
}

/// One instance as the watch knows it.
#[derive(Debug, Default)]
struct Seen {
    /// Its restart count when the watch first knew it; 0 for instances created since (all their restarts
    /// happened while waiting).
    restarts_at_start: u32,
    /// The last exit it was seen with: a restarted instance reports Running with neither, so this is kept.
    exit_known: bool,
    exit_code: Option<i32>,
    reason: Option<String>,
}

impl Watch {
    /// `before`: the workload as it stood before the wait began (none for a new workload); `revision`: the
    /// revision to wait for.
    pub fn new(before: Option<&WorkloadView>, revision: u64) -> Watch {
        let mut watch = Watch { revision, old: HashSet::new(), seen: HashMap::new() };
        if let Some(b) = before {
            // Another revision: all of them are old. A rollout already under way: some may be, which is unknown.
            let unsure = b.revision != revision || b.rollout.old > 0;
            for i in &b.instances {
                watch.seen.insert(i.id.clone(), Seen { restarts_at_start: i.restarts, ..Seen::default() });
                if unsure {
                    watch.old.insert(i.id.clone());
                }
            }
        }
        watch
    }

    pub fn observe(&mut self, w: &WorkloadView) -> Outcome {
        if w.revision > self.revision {
            // Deployed again meanwhile: follow the newest revision; everything known so far predates it.
            self.old.extend(self.seen.keys().cloned());
            self.revision = w.revision;
        }
        for i in &w.instances {
            let seen = self.seen.entry(i.id.clone()).or_default();
            if !matches!(i.state.as_str(), "CrashLoopBackOff" | "Failed" | "Succeeded") {
                continue;
            }
            // From the controller's back-off event, until the next heartbeat says why it exited: not an exit's
            // reason, though an exit code beside it is the exit's.
            let note = i.state == "CrashLoopBackOff" && i.reason.as_deref().is_some_and(|r| r.starts_with("back-off "));
            if !note || i.exit_code.is_some() {
                seen.exit_known = true;
                seen.exit_code = i.exit_code;
                seen.reason = if note { None } else { i.reason.as_deref().map(one_line) };
            }
        }
        let all_current = w.rollout.old == 0;
        let failing = w
            .instances
            .iter()
            .filter(|i| all_current || !self.old.contains(&i.id))
            .find_map(|i| self.failing(w, i))
            .or_else(|| {
                (w.rollout.state == "halted").then(|| {
                    let why = w.rollout.reason.as_deref().map(one_line);
                    let why = why.as_deref().unwrap_or("a new instance is failing");
                    Failure { reason: format!("revision {} halted: {why}", w.revision), exit_known: true }
                })
            });
        if let Some(mut f) = failing {
            if w.rollout.old > 0 {
                f.reason = format!("{}; the old instances keep serving (edgectl rollout undo {})", f.reason, w.name);
            }
            return Outcome::Failing(f);
        }
        if all_current && w.instances.len() == w.replicas as usize && w.instances.iter().all(|i| counts(w, i)) {
            Outcome::Ready
        } else {
            Outcome::Waiting
        }
    }

    /// Why an instance of the current revision will not become ready by waiting, if it will not.
    fn failing(&self, w: &WorkloadView, i: &InstanceView) -> Option<Failure> {
        let seen = self.seen.get(&i.id)?;
        let state = i.state.as_str();
        let restarted = i.restarts > seen.restarts_at_start;
        if !(restarted || state == "CrashLoopBackOff" || state == "Failed") {
            return None;
        }
        let restarts = count(i.restarts as usize, "restart");
        let failure = |reason: String| Some(Failure { reason, exit_known: seen.exit_known });
        if w.restart == "always" && seen.exit_code == Some(0) {
            return failure(format!(
                "instance {} keeps exiting (exit code 0, {restarts}) under --restart always; a module that runs to \
                 completion wants --restart on-failure or never",
                i.id
            ));
        }
        let why = match (&seen.reason, seen.exit_code) {
            (Some(r), _) => Some(r.clone()),
            (None, Some(code)) => Some(format!("exit code {code}")),
            (None, None) => None,
        };
        // Failed is final only under --restart never; otherwise the agent restarts it (a crash-loop's first beat).
        let looping = state == "CrashLoopBackOff" || (state == "Failed" && w.restart != "never");
        failure(match (state, why) {
            ("Failed", Some(why)) if !looping => format!("instance {} failed: {why}", i.id),
            ("Failed", None) if !looping => format!("instance {} failed", i.id),
            (_, Some(why)) if looping => format!("instance {} is crash-looping: {why} ({restarts})", i.id),
            (_, None) if looping => format!("instance {} is crash-looping ({restarts})", i.id),
            (_, Some(why)) => format!("instance {} keeps restarting: {why} ({restarts})", i.id),
            (_, None) => format!("instance {} keeps restarting ({restarts})", i.id),
        })
    }
}

/// Whether a replica counts towards the goal.
fn counts(w: &WorkloadView, i: &InstanceView) -> bool {
    i.ready || (w.restart != "always" && i.state == "Succeeded")
}

/// What a wait waits for, to print before it starts: "2 replicas of default/tick (revision 1) to be ready …".
pub fn goal(w: &WorkloadView) -> String {
    let ready = "ready (Running for the controller's min-ready time without restarting)";
    format!(
        "{} of {}/{} (revision {}) to be {}",
        count(w.replicas as usize, "replica"),
        w.namespace,
        w.name,
        w.revision,
        if w.restart == "always" { ready.to_string() } else { format!("{ready} or Succeeded") }
    )
}

/// What is still missing, for the message of a wait that timed out.
pub fn shortfall(w: &WorkloadView) -> String {
    let mut parts = Vec::new();
    if w.instances.len() < w.replicas as usize {
        parts.push(format!("{} of {} created", w.instances.len(), count(w.replicas as usize, "replica")));
    }
    if w.rollout.old > 0 {
        parts.push(format!("{} still serving", count(w.rollout.old, "old instance")));
    }
    for i in w.instances.iter().filter(|i| !counts(w, i)) {
        let detail = match (&i.reason, i.exit_code) {
            (Some(r), _) => format!(" ({})", one_line(r)),
            (None, Some(code)) => format!(" (exit code {code})"),
            (None, None) if i.state == "Running" => ", not ready yet".to_string(),
            (None, None) => String::new(),
        };
        parts.push(format!("{} {}{detail}", i.id, i.state));
    }
    if parts.is_empty() {
        "no instances".to_string()
    } else {
        parts.join("; ")
    }
}

/// "1 replica", "2 replicas", "0 restarts".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A reason from an agent on one line (a trap's backtrace spans several): errors stay one line.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_api::RolloutView;

    fn instance(id: &str, state: &str, restarts: u32, ready: bool) -> InstanceView {
        InstanceView {
            id: id.into(),
            node: Some("dev-1".into()),
            state: state.into(),
            restarts,
            started_at: None,
            exit_code: None,
            reason: None,
            ready,
            revision: 0,
        }
    }

    fn exited(mut i: InstanceView, code: Option<i32>, reason: Option<&str>) -> InstanceView {
        i.exit_code = code;
        i.reason = reason.map(str::to_string);
        i
    }

    fn workload(restart: &str, revision: u64, replicas: u32, old: usize, instances: Vec<InstanceView>) -> WorkloadView {
        WorkloadView {
            name: "bomb".into(),
            namespace: "default".into(),
            replicas,
            module: "ab".repeat(32),
            cpu_millis: 100,
            memory_bytes: 16 << 20,
            restart: restart.into(),
            on_node_loss: "reschedule".into(),
            selector: Default::default(),
            env: Vec::new(),
            args: Vec::new(),
            memory_limit_bytes: None,
            cpu_limit_millis: None,
            timeout_ms: None,
            volumes: Vec::new(),
            labels: Default::default(),
            revision,
            created: None,
            rollout: RolloutView {
                state: "progressing".into(),
                reason: None,
                updated: instances.len() - old,
                ready: 0,
                old,
            },
            instances,
            revisions: Vec::new(),
        }
    }

    fn failing(o: Outcome) -> String {
        match o {
            Outcome::Failing(f) => f.reason,
            other => panic!("expected Failing, got {other:?}"),
        }
    }

    #[test]
    fn ready_only_when_every_replica_is_ready() {
        let mut watch = Watch::new(None, 1);
        let two = |a: bool, b: bool| {
            workload("always", 1, 2, 0, vec![instance("t-a", "Running", 0, a), instance("t-b", "Running", 0, b)])
        };
        assert_eq!(watch.observe(&two(true, false)), Outcome::Waiting);
        assert_eq!(watch.observe(&two(true, true)), Outcome::Ready);
        // Fewer instances than replicas: the second is not even created yet.
        let one = workload("always", 1, 2, 0, vec![instance("t-a", "Running", 0, true)]);
        assert_eq!(Watch::new(None, 1).observe(&one), Outcome::Waiting);
        assert_eq!(Watch::new(None, 1).observe(&workload("always", 1, 0, 0, Vec::new())), Outcome::Ready);
    }

    /// The regression: `deploy bomb membomb.wasm --memory 16Mi --wait` said `1 of 1 replicas ready` because the
    /// instance was Running for a moment between crashes.
    #[test]
    fn running_between_crashes_is_not_ready_and_a_restart_fails_at_once() {
        let mut watch = Watch::new(None, 1);
        let running = workload("always", 1, 1, 0, vec![instance("bomb-x7k2p", "Running", 0, false)]);
        assert_eq!(watch.observe(&running), Outcome::Waiting);
        let crashed = workload(
            "always",
            1,
            1,
            0,
            vec![exited(
                instance("bomb-x7k2p", "CrashLoopBackOff", 1, false),
                None,
                Some("memory limit exceeded (limit 16Mi): grow by 1Mi refused"),
            )],
        );
        assert_eq!(
            failing(watch.observe(&crashed)),
            "instance bomb-x7k2p is crash-looping: memory limit exceeded (limit 16Mi): grow by 1Mi refused (1 restart)"
        );
    }

    #[test]
    fn a_restart_seen_only_as_a_grown_count_fails_with_the_last_exit_remembered() {
        let mut watch = Watch::new(None, 1);
        let at = |state: &str, restarts: u32| instance("bomb-x7k2p", state, restarts, false);
        let view = |i: InstanceView| workload("always", 1, 1, 0, vec![i]);
        assert_eq!(watch.observe(&view(at("Running", 0))), Outcome::Waiting);
        // Never seen crashing: only the count says so.
        assert_eq!(
            failing(watch.observe(&view(at("Running", 2)))),
            "instance bomb-x7k2p keeps restarting (2 restarts)"
        );

        let mut watch = Watch::new(None, 1);
        let crashed = exited(at("CrashLoopBackOff", 0), Some(1), Some("exited with code 1"));
        // CrashLoopBackOff fails at once, and the exit is remembered once it reports Running again.
        assert!(failing(watch.observe(&view(crashed))).contains("exited with code 1"));
        assert_eq!(
            failing(watch.observe(&view(at("Starting", 1)))),
            "instance bomb-x7k2p keeps restarting: exited with code 1 (1 restart)"
        );
    }

    #[test]
    fn exiting_zero_under_restart_always_is_said_plainly() {
        let mut watch = Watch::new(None, 1);
        let i = exited(instance("bomb-x7k2p", "CrashLoopBackOff", 2, false), Some(0), None);
        let why = failing(watch.observe(&workload("always", 1, 1, 0, vec![i])));
        assert!(
            why.starts_with("instance bomb-x7k2p keeps exiting (exit code 0, 2 restarts) under --restart always"),
            "{why}"
        );
        // Seen only Running with a grown count after an exit 0 was seen once: still "keeps exiting".
        let mut watch = Watch::new(None, 1);
        let first = exited(instance("bomb-x7k2p", "CrashLoopBackOff", 0, false), Some(0), None);
        assert!(failing(watch.observe(&workload("always", 1, 1, 0, vec![first]))).contains("keeps exiting"));
        let later = instance("bomb-x7k2p", "Running", 1, false);
        assert!(failing(watch.observe(&workload("always", 1, 1, 0, vec![later]))).contains("(exit code 0, 1 restart)"));
    }

    #[test]
    fn run_to_completion_succeeds_or_fails() {
        let done = instance("hi-abcde", "Succeeded", 0, false);
        for restart in ["never", "on-failure"] {
            let w = workload(restart, 1, 1, 0, vec![exited(done.clone(), Some(0), None)]);
            assert_eq!(Watch::new(None, 1).observe(&w), Outcome::Ready, "{restart}");
        }
        let failed = exited(instance("hi-abcde", "Failed", 0, false), Some(3), Some("exited with code 3"));
        let w = workload("never", 1, 1, 0, vec![failed]);
        assert_eq!(failing(Watch::new(None, 1).observe(&w)), "instance hi-abcde failed: exited with code 3");
    }

    #[test]
    fn restarts_from_before_the_wait_do_not_count() {
        let before = workload("always", 1, 1, 0, vec![instance("t-a", "Running", 5, true)]);
        let mut watch = Watch::new(Some(&before), 1);
        assert_eq!(watch.observe(&before), Outcome::Ready);
        let again = workload("always", 1, 1, 0, vec![instance("t-a", "Running", 6, false)]);
        assert_eq!(failing(watch.observe(&again)), "instance t-a keeps restarting (6 restarts)");
    }

    #[test]
    fn a_rollout_judges_only_the_new_revision_and_waits_for_the_old_to_go() {
        // Revision 1 crash-loops; revision 2 fixes it.
        let old = exited(instance("t-old", "CrashLoopBackOff", 7, false), Some(1), Some("exited with code 1"));
        let before = workload("always", 1, 1, 0, vec![old.clone()]);
        let mut watch = Watch::new(Some(&before), 2);
        let rolling = workload("always", 2, 1, 1, vec![old.clone(), instance("t-new", "Running", 0, false)]);
        assert_eq!(watch.observe(&rolling), Outcome::Waiting, "the old instance's crashes are not the new revision's");
        let new_ready = workload("always", 2, 1, 1, vec![old, instance("t-new", "Running", 0, true)]);
        assert_eq!(watch.observe(&new_ready), Outcome::Waiting, "the old instance is still there");
        let done = workload("always", 2, 1, 0, vec![instance("t-new", "Running", 0, true)]);
        assert_eq!(watch.observe(&done), Outcome::Ready);
    }

    #[test]
    fn a_failing_new_instance_or_a_halted_rollout_fails_naming_the_way_back() {
        let before = workload("always", 1, 1, 0, vec![instance("t-old", "Running", 0, true)]);
        let mut watch = Watch::new(Some(&before), 2);
        let new =
            exited(instance("t-new", "CrashLoopBackOff", 1, false), None, Some("trapped: wasm trap:\n  unreachable"));
        let w = workload("always", 2, 1, 1, vec![instance("t-old", "Running", 0, true), new]);
        assert_eq!(
            failing(watch.observe(&w)),
            "instance t-new is crash-looping: trapped: wasm trap: unreachable (1 restart); the old instances keep \
             serving (edgectl rollout undo bomb)"
        );

        // `rollout status` started mid-rollout: which instance is new is unknown, the controller's halt decides.
        let mut w = workload(
            "always",
            2,
            1,
            1,
            vec![instance("t-old", "Running", 0, true), instance("t-new", "Starting", 0, false)],
        );
        let mut watch = Watch::new(Some(&w), 2);
        assert_eq!(watch.observe(&w), Outcome::Waiting);
        w.rollout.state = "halted".into();
        w.rollout.reason = Some("instance t-new of revision 2 is failing".into());
        assert_eq!(
            failing(watch.observe(&w)),
            "revision 2 halted: instance t-new of revision 2 is failing; the old instances keep serving (edgectl \
             rollout undo bomb)"
        );
    }

    #[test]
    fn a_newer_revision_deployed_meanwhile_is_followed() {
        let mut watch = Watch::new(None, 1);
        let v1 = workload("always", 1, 1, 0, vec![instance("t-one", "Running", 0, false)]);
        assert_eq!(watch.observe(&v1), Outcome::Waiting);
        // Revision 2 replaces it; the rev-1 instance now crash-loops, which is no longer the question.
        let crashing = exited(instance("t-one", "CrashLoopBackOff", 1, false), Some(1), None);
        let v2 = workload("always", 2, 1, 1, vec![crashing, instance("t-two", "Running", 0, true)]);
        assert_eq!(watch.observe(&v2), Outcome::Waiting);
        let v2_done = workload("always", 2, 1, 0, vec![instance("t-two", "Running", 0, true)]);
        assert_eq!(watch.observe(&v2_done), Outcome::Ready);
    }

    #[test]
    fn messages_say_what_is_awaited_and_what_is_missing() {
        let w = workload("always", 1, 1, 0, vec![instance("bomb-x7k2p", "Running", 0, false)]);
        assert_eq!(
            goal(&w),
            "1 replica of default/bomb (revision 1) to be ready (Running for the controller's min-ready time without \
             restarting)"
        );
        assert!(goal(&workload("never", 3, 2, 0, Vec::new())).starts_with("2 replicas of default/bomb (revision 3)"));
        assert!(goal(&workload("never", 3, 2, 0, Vec::new())).ends_with("or Succeeded"));
        assert_eq!(shortfall(&w), "bomb-x7k2p Running, not ready yet");
        let mut pending = instance("t-b", "Pending", 0, false);
        pending.reason = Some("0/2 nodes available: 2 insufficient memory".into());
        let w = workload("always", 2, 2, 1, vec![instance("t-old", "Running", 0, true), pending]);
        assert_eq!(
            shortfall(&w),
            "1 old instance still serving; t-b Pending (0/2 nodes available: 2 insufficient memory)"
        );
        assert_eq!(count(1, "replica"), "1 replica");
        assert_eq!(count(0, "replica"), "0 replicas");
    }

    /// The controller shows the back-off before the agent's heartbeat says why the run ended: the failure is
    /// reported, saying its exit is not known yet, and the heartbeat's reason is taken once it comes.
    #[test]
    fn a_back_off_note_is_not_taken_for_the_exit_reason() {
        let mut watch = Watch::new(None, 1);
        let at = |restarts: u32, reason: &str| {
            let i = instance("bomb-x7k2p", "CrashLoopBackOff", restarts, false);
            workload("always", 1, 1, 0, vec![exited(i, None, Some(reason))])
        };
        let Outcome::Failing(f) = watch.observe(&at(0, "back-off 1000 ms before restarting")) else { panic!() };
        assert!(!f.exit_known);
        assert_eq!(f.reason, "instance bomb-x7k2p is crash-looping (0 restarts)");
        let Outcome::Failing(f) = watch.observe(&at(0, "memory limit exceeded (limit 16Mi)")) else { panic!() };
        assert!(f.exit_known);
        assert_eq!(f.reason, "instance bomb-x7k2p is crash-looping: memory limit exceeded (limit 16Mi) (0 restarts)");
        // The next back-off note does not erase what was learnt.
        assert!(failing(watch.observe(&at(1, "back-off 2000 ms before restarting"))).contains("memory limit exceeded"));
        // An exit code beside the note is the exit's.
        let i = exited(
            instance("hi-abcde", "CrashLoopBackOff", 0, false),
            Some(0),
            Some("back-off 1000 ms before restarting"),
        );
        let Outcome::Failing(f) = Watch::new(None, 1).observe(&workload("always", 1, 1, 0, vec![i])) else { panic!() };
        assert!(f.exit_known && f.reason.contains("keeps exiting (exit code 0, 0 restarts)"), "{f:?}");
        // A Failed run under a policy that restarts it is the first beat of a crash-loop.
        let i = exited(instance("t-a", "Failed", 0, false), None, Some("trapped: unreachable"));
        let w = workload("on-failure", 1, 1, 0, vec![i]);
        assert_eq!(
            failing(Watch::new(None, 1).observe(&w)),
            "instance t-a is crash-looping: trapped: unreachable (0 restarts)"
        );
    }
}
