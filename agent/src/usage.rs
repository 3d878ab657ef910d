//! What each running instance consumes, for `edgectl top`: CPU in millicores averaged between two reports,
//! and the linear memory it holds now.
//!
//! Counting: every run of an instance gets a [`Consumption`], put in scope of its task ([`counted`]). The
//! CPU meter around the guest's polls and the memory limiter ([`crate::limits`]) add to whatever consumption
//! is in scope, so the runtime's signature is unchanged and a run outside any scope (tests, tools) counts
//! nothing. Reporting: [`Meter`] is pure arithmetic over those counters (saturating, never dividing by zero);
//! the core sends its [`NodeUsage`] at the heartbeat's refresh cadence, never as a heartbeat change.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_proto::message::{InstanceUsage, NodeUsage};
use edge_proto::Resources;

/// What one run of an instance has consumed so far. Written by the run's task, read by the core.
#[derive(Debug)]
pub struct Consumption {
    /// When the run started: the first report averages its CPU from here.
    started: Instant,
    /// Thread CPU time spent inside the guest's polls, in nanoseconds (added after each poll).
    cpu_ns: AtomicU64,
    /// Bytes of linear memory the limiter let the guest have.
    memory_bytes: AtomicU64,
}

impl Consumption {
    pub fn new(started: Instant) -> Consumption {
        Consumption { started, cpu_ns: AtomicU64::new(0), memory_bytes: AtomicU64::new(0) }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// CPU used by the run's completed polls (a poll lasts at most one epoch tick).
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(self.cpu_ns.load(Ordering::Relaxed))
    }

    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes.load(Ordering::Relaxed)
    }
}

tokio::task_local! {
    static CONSUMPTION: Arc<Consumption>;
}

/// Runs `f` with `consumption` counting what the CPU meter and the memory limiter see inside it.
pub fn counted<F: Future>(consumption: Arc<Consumption>, f: F) -> impl Future<Output = F::Output> {
    CONSUMPTION.scope(consumption, f)
}

/// Adds `ns` of CPU time to the consumption in scope, if any.
pub(crate) fn add_cpu(ns: u64) {
    let _ = CONSUMPTION.try_with(|c| c.cpu_ns.fetch_add(ns, Ordering::Relaxed));
}

/// A linear memory of the run in scope grew from `current` to `desired` bytes.
pub(crate) fn memory_grew(current: usize, desired: usize) {
    let grown = u64::try_from(desired.saturating_sub(current)).unwrap_or(u64::MAX);
    let _ = CONSUMPTION.try_with(|c| {
        let _ = c.memory_bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| Some(m.saturating_add(grown)));
    });
}

/// Thousandths of one core that `cpu` of CPU time over `wall` of elapsed time amount to; 0 for an empty window,
/// `u32::MAX` at most.
pub fn millicores(cpu: Duration, wall: Duration) -> u32 {
    let wall = wall.as_nanos();
    if wall == 0 {
        return 0;
    }
    u32::try_from(cpu.as_nanos().saturating_mul(1000) / wall).unwrap_or(u32::MAX)
}

/// The sum of the instances' usage: the node's.
pub fn total(instances: &[InstanceUsage]) -> Resources {
    instances.iter().fold(Resources::ZERO, |sum, i| {
        sum.saturating_add(Resources { cpu_millis: i.cpu_millis, memory_bytes: i.memory_bytes })
    })
}

/// One instance's counters as the core reads them for a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// When the run being read started (a new value: a new run, counted from zero).
    pub started: Instant,
    pub cpu: Duration,
    pub memory_bytes: u64,
}

impl Reading {
    pub fn of(c: &Consumption) -> Reading {
        Reading { started: c.started(), cpu: c.cpu(), memory_bytes: c.memory_bytes() }
    }
}

/// The previous reading of every instance reported, so the next report averages CPU over the time between.
#[derive(Debug, Default)]
pub struct Meter {
    last: HashMap<String, (Instant, Reading)>,
}

impl Meter {
    /// A report at `now` of the running instances' `readings` (by id); instances not among them are forgotten.
    pub fn report(&mut self, now: Instant, at_ms: u64, readings: Vec<(String, Reading)>) -> NodeUsage {
        let mut window = Duration::ZERO;
        let mut next = HashMap::with_capacity(readings.len());
        let mut instances = Vec::with_capacity(readings.len());
        for (id, r) in readings {
            // The same run: since its last reading. A new run (or none before): since it started.
            let (since, cpu_before) = match self.last.get(&id) {
                Some((at, prev)) if prev.started == r.started => (*at, prev.cpu),
                _ => (r.started, Duration::ZERO),
            };
            let wall = now.saturating_duration_since(since);
            window = window.max(wall);
            instances.push(InstanceUsage {
                id: id.clone(),
                cpu_millis: millicores(r.cpu.saturating_sub(cpu_before), wall),
                memory_bytes: r.memory_bytes,
            });
            next.insert(id, (now, r));
        }
        self.last = next;
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        NodeUsage { at_ms, window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX), instances }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn millicores_average_and_saturate_without_dividing_by_zero() {
        assert_eq!(millicores(S / 2, S), 500);
        assert_eq!(millicores(3 * S, 2 * S), 1500, "several threads' worth is more than a core");
        assert_eq!(millicores(S, Duration::ZERO), 0);
        assert_eq!(millicores(Duration::ZERO, S), 0);
        assert_eq!(millicores(Duration::MAX, Duration::from_nanos(1)), u32::MAX);
        assert_eq!(millicores(Duration::from_micros(999), S), 0, "below a millicore rounds down");
    }

    #[test]
    fn totals_are_saturating_sums() {
        let i = |cpu_millis, memory_bytes| InstanceUsage { id: "a".into(), cpu_millis, memory_bytes };
        assert_eq!(total(&[]), Resources::ZERO);
        assert_eq!(total(&[i(250, 10), i(750, 20)]), Resources { cpu_millis: 1000, memory_bytes: 30 });
        assert_eq!(
            total(&[i(u32::MAX, u64::MAX), i(1, 1)]),
            Resources { cpu_millis: u32::MAX, memory_bytes: u64::MAX }
        );
    }

    #[test]
    fn reports_average_since_the_last_reading_or_the_start_of_the_run() {
        let t0 = Instant::now();
        let mut meter = Meter::default();
        let run1 = |cpu, memory_bytes| Reading { started: t0, cpu, memory_bytes };
        // First report: since the run started (2 s ago), 1 s of CPU.
        let r = meter.report(t0 + 2 * S, 7, vec![("a".into(), run1(S, 64 << 10))]);
        assert_eq!((r.at_ms, r.window_ms), (7, 2000));
        assert_eq!(r.instances, [InstanceUsage { id: "a".into(), cpu_millis: 500, memory_bytes: 64 << 10 }]);
        // Next: 60 s later, 15 s more CPU.
        let r = meter.report(t0 + 62 * S, 8, vec![("a".into(), run1(16 * S, 128 << 10))]);
        assert_eq!((r.window_ms, r.instances[0].cpu_millis, r.instances[0].memory_bytes), (60_000, 250, 128 << 10));
        // Restarted: a new run counts from its own start, from zero.
        let run2 = Reading { started: t0 + 61 * S, cpu: S / 10, memory_bytes: 1 };
        let r = meter.report(t0 + 62 * S, 9, vec![("a".into(), run2), ("b".into(), run1(Duration::ZERO, 0))]);
        assert_eq!(
            r.instances.iter().map(|i| (i.id.as_str(), i.cpu_millis)).collect::<Vec<_>>(),
            [("a", 100), ("b", 0)]
        );
        // Gone instances are forgotten; a clock that went nowhere gives 0, not a division by zero.
        let r = meter.report(t0 + 62 * S, 10, vec![("a".into(), run2)]);
        assert_eq!((r.window_ms, r.instances.len(), r.instances[0].cpu_millis), (0, 1, 0));
        assert_eq!(meter.last.len(), 1);
    }

    /// What a report costs on the wire (BENCHMARKS.md's bytes per idle node): a joined node's tagged QoS 0
    /// PUBLISH on its heartbeat topic, about 16 bytes more per further instance.
    #[test]
    fn a_report_of_one_instance_is_88_bytes_of_mqtt() {
        use edge_proto::{Channel, Message, Topics};
        let one = |id: &str| InstanceUsage { id: id.into(), cpu_millis: 293, memory_bytes: 1_114_112 };
        let report = |instances| NodeUsage { at_ms: 1_800_000_000_000, window_ms: 60_000, instances };
        let tag = [0u8; edge_proto::auth::REPORT_AUTH_LEN];
        let payload = |u| edge_proto::encode_with_auth(&Message::Usage(u), Some(&tag)).len();
        let topic = Topics::new(edge_proto::topic::DEFAULT_PREFIX).node("node-a", Channel::Heartbeat).len();
        // Fixed header (type, remaining length), topic length, topic, payload; no packet id at QoS 0.
        let mqtt = 2 + 2 + topic + payload(report(vec![one("spin-xgphr")]));
        assert_eq!(mqtt, 88);
        assert_eq!(
            payload(report(vec![one("spin-xgphr"), one("tick-b4k9z")])) - payload(report(vec![one("spin-xgphr")])),
            16
        );
    }

    #[test]
    fn counters_count_only_inside_their_scope() {
        add_cpu(5);
        memory_grew(0, 10);
        let c = Arc::new(Consumption::new(Instant::now()));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(counted(c.clone(), async {
            add_cpu(1_000);
            memory_grew(0, 64 << 10);
            memory_grew(64 << 10, 128 << 10);
            memory_grew(10, 5);
        }));
        assert_eq!((c.cpu(), c.memory_bytes()), (Duration::from_micros(1), 128 << 10));
    }
}
