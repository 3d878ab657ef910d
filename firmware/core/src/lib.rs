//! `edge-firmware`: the `no_std` core of a microcontroller node. It speaks the same protocol as the Linux agent
//! (`edge-proto`'s messages in postcard envelopes over MQTT 3.1.1) and trusts the same way (`edge-trust`): it
//! joins with a join token, says hello with its real capacity (board, RAM, engine), heartbeats on change and
//! every minute, verifies its signed spec, persists it to flash so it runs offline after a reboot, runs its
//! MCU-ABI instances under wasmi with fuel and memory budgets (feature `wasm`), reports events and logs tagged
//! with its report key, and reconnects with jittered back-off.
//!
//! # Public API
//! - [`run`] (in [`node`]): the node, one future for ever; it returns only a [`Fatal`] error.
//! - [`Config`]: the node's name, topic prefix, join token, [`board::Board`], RAM, heartbeat period, version.
//! - [`platform`]: what a board provides: [`platform::Connect`] (broker connections as `embedded-io-async`
//!   `Read + Write`, e.g. embassy-net's `TcpSocket`), [`platform::Clock`], [`platform::Storage`] (four flash
//!   slots, see [`record`]), [`platform::Sensors`]; randomness is any `rand_core` 0.6 `RngCore + CryptoRng`.
//! - [`board`]: the boards as data (`PICO_W`, `PICO_2_W`, `ESP32_C3`).
//!
//! # Layout
//! - `node` (+ `node/work`): the state and the loop; [`verify`] (pure): join replies and spec decisions;
//!   [`outbox`] (pure): events until acknowledged; [`record`] (pure) and [`store`]: the flash layout and its
//!   I/O; [`mqtt`] (pure): an MQTT 3.1.1 client codec; [`link`]: packets over a stream; [`guest`]: wasmi
//!   instances (or none without `wasm`); `select`: racing a read against a deadline.
//!
//! # Memory
//! Protocol types use `alloc` (`edge-proto` is `no_std` + `alloc`), and so does wasmi. The core sets up no
//! allocator: the board binary installs a `#[global_allocator]` over a fixed arena (e.g. `embedded-alloc` over
//! a static array), so the heap cannot grow past it; the host runner uses the system allocator. What the core
//! keeps is bounded: fixed MQTT buffers ([`link::RX_BUF`], [`link::TX_BUF`]), `heapless` queues for events,
//! log lines and guest output, at most [`node::MAX_INSTANCES`] instances, one module download of at most
//! `edge_proto::mcu::MAX_MODULE` bytes; everything else per message is dropped when the message is handled.
//!
//! # Targets
//! Builds for `thumbv6m-none-eabi`, `thumbv8m.main-none-eabihf` and `riscv32imc-unknown-none-elf` with `core` +
//! `alloc`. The `wasm` feature needs compare-and-swap atomics (wasmi): Pico 2 W (thumbv8m) and hosts; without
//! it the node announces `EngineTarget::None` and runs no instances (the scheduler places none there).
#![no_std]

extern crate alloc;

pub mod board;
pub mod guest;
pub mod link;
pub mod mqtt;
pub mod node;
pub mod outbox;
pub mod platform;
pub mod record;
mod select;
pub mod store;
pub mod verify;

#[cfg(test)]
mod test_util;

pub use node::{run, Config, Fatal, Trace};
