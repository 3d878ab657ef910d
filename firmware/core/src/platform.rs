//! What a board (or the host runner) provides the core: a way to open the broker connection, a clock, flash
//! storage, randomness and sensors. The core is generic over these and nothing else, so the same code runs on a
//! Pico 2 W (embassy-net's `TcpSocket`, embassy-time, the RP2350's flash and TRNG) and on a host (tokio).
//!
//! `async fn` in these traits is deliberate: the core runs as one task on a single-threaded executor (embassy's
//! or tokio's `LocalSet`), so no `Send` bound is wanted on the futures.
#![allow(async_fn_in_trait)]

use core::fmt::Debug;

/// Slots of flash the core persists to. Each pair is written alternately (A/B), so a power cut during a write
/// leaves the other, older record intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The node's identity (its key, the pinned cluster key) and its report counter mark.
    IdentityA,
    IdentityB,
    /// The last verified spec, its signature, and the module bytes its instances need.
    StateA,
    StateB,
}

impl Slot {
    pub const ALL: [Slot; 4] = [Slot::IdentityA, Slot::IdentityB, Slot::StateA, Slot::StateB];
}

/// Opens connections to the broker. On a board the connection is usually a borrowed socket that is reused.
pub trait Connect {
    type Error: Debug;
    /// A connected, ordered byte stream. Its `read` must be cancel-safe (dropping a pending read loses no byte),
    /// as embassy-net's `TcpSocket` and tokio's streams are: the core races reads against its timers.
    type Conn<'a>: embedded_io_async::Read + embedded_io_async::Write
    where
        Self: 'a;

    async fn connect(&mut self) -> Result<Self::Conn<'_>, Self::Error>;
}

/// Time. `now_ms` is monotonic since some start (boot); `unix_ms` is wall-clock time when the board knows it
/// (an RTC, SNTP), used for the times reported to the controller and the report-counter floor.
pub trait Clock {
    fn now_ms(&self) -> u64;
    fn unix_ms(&self) -> Option<u64>;
    /// Completes at or after `now_ms() >= at_ms`. Must be cancel-safe (it is raced against I/O).
    async fn sleep_until(&self, at_ms: u64);
}

/// Flash slots of [`Storage::slot_len`] bytes each. A write goes to an erased slot only, in increasing offsets;
/// the core erases a slot before it writes it.
pub trait Storage {
    type Error: Debug;
    fn slot_len(&self) -> usize;
    async fn read(&mut self, slot: Slot, offset: usize, buf: &mut [u8]) -> Result<(), Self::Error>;
    async fn erase(&mut self, slot: Slot) -> Result<(), Self::Error>;
    async fn write(&mut self, slot: Slot, offset: usize, data: &[u8]) -> Result<(), Self::Error>;
}

/// Sensor capabilities a guest may read with `sensor(id)`.
pub trait Sensors {
    /// The current value of sensor `id`, or `None` when the board has no such sensor.
    fn read(&mut self, id: i32) -> Option<i32>;
}

/// A board with no sensors.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSensors;

impl Sensors for NoSensors {
    fn read(&mut self, _id: i32) -> Option<i32> {
        None
    }
}
