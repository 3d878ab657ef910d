//! The wasmtime set-up shared by the controller and the agents.
//!
//! Precompiled code loads only into an engine configured exactly like the one that compiled it (target, memory
//! reservation and guard, epoch interruption, wasmtime version). Both sides therefore build their engines from
//! one function, [`profile::config`], fed by the [`EngineProfile`](edge_proto::EngineProfile) the agent
//! announces in its `Hello`:
//! - [`profile`]: choosing a node's profile from its CPU and RAM, the wasmtime `Config` for a profile, and the
//!   fingerprint artifacts are cached under.
//! - [`artifact`]: precompiling for a profile (feature `compiler`) and loading an artifact after wasmtime's
//!   compatibility checks.
//! - [`cpu`]: per-thread CPU time, for CPU limits.
//! - [`wasi`]: the import surface the agent's runtime provides, checked at upload.

pub mod artifact;
pub mod cpu;
pub mod profile;
pub mod wasi;

#[cfg(feature = "compiler")]
pub use artifact::{compile_local, Compiler};
pub use artifact::{load_artifact, ArtifactError};
pub use cpu::thread_cpu_time;
pub use profile::{compile_config, config, fingerprint, host_target, profile_for, pulley_target};
