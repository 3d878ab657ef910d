//! `edge-board-glue`: what the board binaries (`firmware/boards/pico`, `firmware/boards/esp32c3`) share, so
//! each board's `main.rs` is only its wiring.
//!
//! - [`slots`]: the core's four flash slots over a region of a NOR flash (unaligned access padded, bounds checked).
//! - [`settings`]: the compiled-in Wi-Fi network, broker, join token and node name, checked at boot.
//! - [`clock`] (feature `embassy`): embassy-time as the core's clock.
//! - [`net`] (feature `embassy`): embassy-net TCP sockets as the core's broker connections.
//!
//! Not a member of the project's workspace: it is built by `firmware/check.sh` with Debian's rustc 1.85 for the
//! microcontroller targets, and its pure parts are tested on the host there (`cargo test` in this directory).
#![no_std]

extern crate alloc;

#[cfg(feature = "embassy")]
pub mod clock;
#[cfg(feature = "embassy")]
pub mod net;
pub mod settings;
pub mod slots;

pub use settings::{node_name, BadSetting, Settings};
pub use slots::{FlashSlots, SlotError};
