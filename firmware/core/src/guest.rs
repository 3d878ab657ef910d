//! Running MCU-ABI instances under wasmi (feature `wasm`), one slice of fuel at a time.
//!
//! Each instance has its own store with a memory limit (wasmi's `StoreLimits`: one memory of at most the
//! instance's limit, one table, one instance) and fuel metering. The core calls [`Runner::step`] whenever a
//! guest is runnable: it runs one guest for [`FUEL_SLICE`] units and returns, so the node's I/O and the other
//! guests get their turn (round robin). Host calls that wait are resumable host errors: `sleep_ms` suspends the
//! call until its wake time (the guest is not runnable meanwhile), `sensor` asks the core for a value and
//! resumes with it at once. A guest that burns [`FUEL_PER_WAKE`] without sleeping is stopped: a busy loop must
//! not take a microcontroller from its network stack for good.
//!
//! Without the `wasm` feature the same API starts nothing: every start fails, naming the missing engine.

use alloc::string::String;
use alloc::vec::Vec;

/// Fuel per slice (about one wasm instruction each): small enough that the node answers the broker promptly.
pub const FUEL_SLICE: u64 = 20_000;
/// Fuel a guest may burn between two sleeps before it is stopped.
pub const FUEL_PER_WAKE: u64 = 50_000_000;
/// Log lines (and publishes) a guest may queue before the node takes them; beyond, they are dropped and counted.
pub const OUTPUT_QUEUE: usize = 16;

/// Something a guest produced, for the core to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Line(String),
    Publish { topic: String, payload: Vec<u8> },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// `run` returned.
    Returned,
    Trapped(String),
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Still runnable or asleep; nothing to report.
    Ran,
    Ended {
        id: String,
        end: End,
    },
}

#[cfg(feature = "wasm")]
pub use engine::Runner;
#[cfg(not(feature = "wasm"))]
pub use none::Runner;

#[cfg(not(feature = "wasm"))]
mod none {
    use super::{Output, Step};
    use crate::platform::Sensors;

    /// No WebAssembly engine in this build (targets without compare-and-swap atomics).
    #[derive(Debug, Default)]
    pub struct Runner {
        /// Nothing runs here; the field keeps `Runner::default()` the one constructor in both builds.
        _nothing: (),
    }

    impl Runner {
        pub const ENGINE: edge_proto::EngineTarget = edge_proto::EngineTarget::None;

        pub fn start(&mut self, _: &str, _: &[u8], _: u64, _: u64) -> Result<(), alloc::string::String> {
            Err("this node has no WebAssembly engine (built without wasmi)".into())
        }
        pub fn stop(&mut self, _: &str) {}
        pub fn next_wake(&self) -> Option<u64> {
            None
        }
        pub fn step(&mut self, _: u64, _: &mut dyn Sensors) -> Step {
            Step::Ran
        }
        pub fn drain(&mut self, _: impl FnMut(&str, Output)) {}
        pub fn memory_bytes(&self, _: &str) -> u64 {
            0
        }
    }
}

#[cfg(feature = "wasm")]
mod engine {
    use alloc::format;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    use edge_proto::mcu;
    use wasmi::{
        Caller, Config, Engine, Extern, Func, Linker, Memory, Module, ResumableCall, Store, StoreLimits,
        StoreLimitsBuilder, Val,
    };

    use super::{End, Output, Step, FUEL_PER_WAKE, FUEL_SLICE, OUTPUT_QUEUE};
    use crate::platform::Sensors;

    /// A host call that waits: returned as a resumable host error.
    #[derive(Debug, Clone, Copy)]
    enum Effect {
        Sleep(u32),
        Sensor(i32),
    }

    impl core::fmt::Display for Effect {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    impl wasmi::core::HostError for Effect {}

    struct Host {
        limits: StoreLimits,
        output: heapless::Deque<Output, OUTPUT_QUEUE>,
        dropped: u32,
    }

    impl Host {
        fn push(&mut self, o: Output) {
            if self.output.push_back(o).is_err() {
                self.dropped = self.dropped.saturating_add(1);
            }
        }
    }

    enum Call {
        /// Not started yet: call `run` fresh.
        Fresh(Func),
        /// Suspended in a host call or out of fuel.
        Host(wasmi::ResumableCallHostTrap, Option<Val>),
        Fuel(wasmi::ResumableCallOutOfFuel),
    }

    struct Guest {
        id: String,
        store: Store<Host>,
        memory: Memory,
        call: Option<Call>,
        /// Asleep until then (monotonic ms); `None`: runnable.
        wake_at: Option<u64>,
        /// Fuel burnt since the last sleep.
        busy: u64,
    }

    /// The node's wasmi engine and its instances.
    pub struct Runner {
        engine: Engine,
        guests: Vec<Guest>,
        /// Where the round robin resumes.
        next: usize,
    }

    impl Default for Runner {
        fn default() -> Self {
            let mut config = Config::default();
            config.consume_fuel(true);
            Runner { engine: Engine::new(&config), guests: Vec::new(), next: 0 }
        }
    }

    fn read(caller: &Caller<'_, Host>, ptr: i32, len: i32, max: usize) -> Result<Vec<u8>, wasmi::Error> {
        let mem = match caller.get_export(mcu::MEMORY_EXPORT) {
            Some(Extern::Memory(m)) => m,
            _ => return Err(wasmi::Error::new("the module exports no memory")),
        };
        let len = (len as u32 as usize).min(max);
        let mut buf = alloc::vec![0u8; len];
        mem.read(caller, ptr as u32 as usize, &mut buf).map_err(|_| wasmi::Error::new("out of bounds"))?;
        Ok(buf)
    }

    fn linker(engine: &Engine) -> Result<Linker<Host>, wasmi::Error> {
        let mut l = Linker::new(engine);
        l.func_wrap(mcu::IMPORT_MODULE, "log", |caller: Caller<'_, Host>, ptr: i32, len: i32| {
            let bytes = read(&caller, ptr, len, mcu::MAX_LINE)?;
            let mut caller = caller;
            caller.data_mut().push(Output::Line(String::from_utf8_lossy(&bytes).into_owned()));
            Ok(())
        })?;
        l.func_wrap(mcu::IMPORT_MODULE, "sleep_ms", |ms: i32| -> Result<(), wasmi::Error> {
            Err(wasmi::Error::host(Effect::Sleep(ms as u32)))
        })?;
        l.func_wrap(mcu::IMPORT_MODULE, "sensor", |id: i32| -> Result<i32, wasmi::Error> {
            Err(wasmi::Error::host(Effect::Sensor(id)))
        })?;
        l.func_wrap(
            mcu::IMPORT_MODULE,
            "publish",
            |mut caller: Caller<'_, Host>, tp: i32, tl: i32, pp: i32, pl: i32| -> Result<i32, wasmi::Error> {
                if tl as u32 as usize > mcu::MAX_TOPIC || pl as u32 as usize > mcu::MAX_PUBLISH {
                    return Ok(mcu::PUBLISH_REFUSED);
                }
                let topic = read(&caller, tp, tl, mcu::MAX_TOPIC)?;
                let payload = read(&caller, pp, pl, mcu::MAX_PUBLISH)?;
                let Ok(topic) = String::from_utf8(topic) else { return Ok(mcu::PUBLISH_REFUSED) };
                if !mcu::valid_topic(&topic) {
                    return Ok(mcu::PUBLISH_REFUSED);
                }
                let host = caller.data_mut();
                if host.output.is_full() {
                    host.dropped = host.dropped.saturating_add(1);
                    return Ok(mcu::PUBLISH_DROPPED);
                }
                host.push(Output::Publish { topic, payload });
                Ok(0)
            },
        )?;
        Ok(l)
    }

    impl Runner {
        pub const ENGINE: edge_proto::EngineTarget = edge_proto::EngineTarget::Wasmi;

        /// Instantiates `wasm` as instance `id` with at most `memory_limit` bytes of linear memory, runnable now.
        pub fn start(&mut self, id: &str, wasm: &[u8], memory_limit: u64, _now: u64) -> Result<(), String> {
            self.stop(id);
            let module = Module::new(&self.engine, wasm).map_err(|e| format!("invalid module: {e}"))?;
            let limits = StoreLimitsBuilder::new()
                .memory_size(usize::try_from(memory_limit).unwrap_or(usize::MAX))
                .memories(1)
                .tables(1)
                .instances(1)
                .build();
            let host = Host { limits, output: heapless::Deque::new(), dropped: 0 };
            let mut store = Store::new(&self.engine, host);
            store.limiter(|h| &mut h.limits);
            store.set_fuel(FUEL_SLICE).map_err(|e| e.to_string())?;
            let linker = linker(&self.engine).map_err(|e| e.to_string())?;
            let instance = linker
                .instantiate(&mut store, &module)
                .and_then(|pre| pre.start(&mut store))
                .map_err(|e| format!("cannot instantiate: {e}"))?;
            let run = instance.get_func(&store, mcu::ENTRY).ok_or("the module exports no `run`")?;
            let memory = instance.get_memory(&store, mcu::MEMORY_EXPORT).ok_or("the module exports no memory")?;
            let guest =
                Guest { id: id.to_string(), store, memory, call: Some(Call::Fresh(run)), wake_at: None, busy: 0 };
            self.guests.push(guest);
            Ok(())
        }

        pub fn stop(&mut self, id: &str) {
            self.guests.retain(|g| g.id != id);
        }

        /// When a guest is next runnable: `Some(0)` when one is now, `None` when none will be.
        pub fn next_wake(&self) -> Option<u64> {
            self.guests.iter().filter(|g| g.call.is_some()).map(|g| g.wake_at.unwrap_or(0)).min()
        }

        /// Linear memory instance `id` holds now.
        pub fn memory_bytes(&self, id: &str) -> u64 {
            self.guests.iter().find(|g| g.id == id).map_or(0, |g| g.memory.data_size(&g.store) as u64)
        }

        /// Takes every guest's queued output.
        pub fn drain(&mut self, mut f: impl FnMut(&str, Output)) {
            for g in &mut self.guests {
                while let Some(o) = g.store.data_mut().output.pop_front() {
                    f(&g.id, o);
                }
                let dropped = core::mem::take(&mut g.store.data_mut().dropped);
                if dropped > 0 {
                    f(&g.id, Output::Line(format!("[{dropped} lines dropped: the node's queue was full]")));
                }
            }
        }

        /// Runs one slice of the next runnable guest (at `now`); reports its end, if it ended.
        pub fn step(&mut self, now: u64, sensors: &mut dyn Sensors) -> Step {
            let n = self.guests.len();
            for k in 0..n {
                let i = (self.next + k) % n;
                let g = &mut self.guests[i];
                if g.call.is_none() || g.wake_at.is_some_and(|t| t > now) {
                    continue;
                }
                self.next = (i + 1) % n;
                g.wake_at = None;
                return match slice(g, now, sensors) {
                    None => Step::Ran,
                    Some(end) => {
                        g.call = None;
                        Step::Ended { id: g.id.clone(), end }
                    }
                };
            }
            Step::Ran
        }
    }

    /// Runs `g` until it sleeps, runs out of its slice, or ends (`Some`).
    fn slice(g: &mut Guest, now: u64, sensors: &mut dyn Sensors) -> Option<End> {
        let _ = g.store.set_fuel(FUEL_SLICE);
        let result = match g.call.take()? {
            Call::Fresh(f) => f.call_resumable(&mut g.store, &[], &mut []),
            Call::Host(c, v) => {
                let inputs: &[Val] = match &v {
                    Some(v) => core::slice::from_ref(v),
                    None => &[],
                };
                c.resume(&mut g.store, inputs, &mut [])
            }
            Call::Fuel(c) => c.resume(&mut g.store, &mut []),
        };
        let burnt = FUEL_SLICE.saturating_sub(g.store.get_fuel().unwrap_or(0));
        g.busy = g.busy.saturating_add(burnt);
        match result {
            Ok(ResumableCall::Finished) => Some(End::Returned),
            Ok(ResumableCall::OutOfFuel(c)) => {
                if g.busy >= FUEL_PER_WAKE {
                    return Some(End::Trapped(format!(
                        "fuel budget exhausted: {FUEL_PER_WAKE} units without sleeping (call sleep_ms in loops)"
                    )));
                }
                g.call = Some(Call::Fuel(c));
                None
            }
            Ok(ResumableCall::HostTrap(c)) => match c.host_error().downcast_ref::<Effect>().copied() {
                Some(Effect::Sleep(ms)) => {
                    g.busy = 0;
                    g.wake_at = Some(now.saturating_add(u64::from(ms)));
                    g.call = Some(Call::Host(c, None));
                    None
                }
                Some(Effect::Sensor(id)) => {
                    let v = sensors.read(id).unwrap_or(mcu::SENSOR_MISSING);
                    g.call = Some(Call::Host(c, Some(Val::I32(v))));
                    None
                }
                None => Some(End::Trapped(c.into_host_error().to_string())),
            },
            Err(e) => Some(End::Trapped(trap_reason(&e))),
        }
    }

    fn trap_reason(e: &wasmi::Error) -> String {
        let text = e.to_string();
        if text.contains("memory") && text.contains("limit") {
            return format!("memory limit exceeded ({text})");
        }
        text
    }
}

#[cfg(all(test, feature = "wasm"))]
mod tests {
    use alloc::string::ToString;
    use alloc::vec::Vec;

    use super::*;
    use crate::platform::Sensors;

    struct Fixed;
    impl Sensors for Fixed {
        fn read(&mut self, id: i32) -> Option<i32> {
            (id == 0).then_some(-7)
        }
    }

    fn lines(r: &mut Runner) -> Vec<Output> {
        let mut out = Vec::new();
        r.drain(|_, o| out.push(o));
        out
    }

    #[test]
    fn blink_logs_publishes_and_sleeps_between_slices() {
        let wasm = wat::parse_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/mcu-blink/blink.wat")).unwrap();
        let mut r = Runner::default();
        r.start("b-1", &wasm, 64 * 1024, 0).unwrap();
        assert_eq!(r.next_wake(), Some(0), "runnable at once");
        // Runs until its first sleep (the sensor call resumes within the same turns).
        for _ in 0..8 {
            assert_eq!(r.step(0, &mut Fixed), Step::Ran);
        }
        assert_eq!(r.next_wake(), Some(500), "asleep for 500 ms");
        let out = lines(&mut r);
        assert_eq!(out[0], Output::Line("blink 1 led=on   sensor=-7".to_string()));
        assert_eq!(out[1], Output::Publish { topic: "led".into(), payload: b"on".to_vec() });
        r.step(499, &mut Fixed);
        assert!(lines(&mut r).is_empty(), "not before its wake time");
        for _ in 0..8 {
            r.step(500, &mut Fixed);
        }
        assert_eq!(lines(&mut r)[0], Output::Line("blink 2 led=off  sensor=-7".to_string()));
        r.stop("b-1");
        assert_eq!(r.next_wake(), None);
    }

    #[test]
    fn a_busy_guest_is_stopped_by_its_fuel_budget_and_memory_is_capped() {
        let spin =
            wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "run") (loop $l (br $l))))"#).unwrap();
        let mut r = Runner::default();
        r.start("s-1", &spin, 64 * 1024, 0).unwrap();
        let mut end = None;
        for _ in 0..(FUEL_PER_WAKE / FUEL_SLICE + 10) {
            if let Step::Ended { end: e, .. } = r.step(0, &mut Fixed) {
                end = Some(e);
                break;
            }
        }
        let Some(End::Trapped(why)) = end else { panic!("{end:?}") };
        assert!(why.contains("fuel budget"), "{why}");
        let grow = wat::parse_str(
            r#"(module (memory (export "memory") 1) (func (export "run") (if (i32.lt_s (memory.grow (i32.const 4)) (i32.const 0)) (then unreachable))))"#,
        )
        .unwrap();
        r.start("g-1", &grow, 128 * 1024, 0).unwrap();
        assert!(
            matches!(r.step(0, &mut Fixed), Step::Ended { end: End::Trapped(_), .. }),
            "growth past the limit refused"
        );
        let foreign =
            wat::parse_str(r#"(module (import "env" "x" (func)) (memory (export "memory") 1) (func (export "run")))"#)
                .unwrap();
        assert!(r.start("f-1", &foreign, 64 * 1024, 0).unwrap_err().contains("instantiate"));
    }
}
