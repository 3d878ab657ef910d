//! Engine profiles: which code a node runs and how its linear memories are laid out.

use edge_proto::{EngineProfile, EngineTarget};
use sha2::{Digest, Sha256};
use wasmtime::Config;

/// Guard pages after each linear memory; small because memories below 4 GiB carry explicit bounds checks.
pub const MEMORY_GUARD: u64 = 64 << 10;
/// Instances a node is sized for when it reserves address space per memory.
pub const MAX_INSTANCES: u64 = 64;
const MIN_RESERVATION: u64 = 1 << 20;
const MAX_RESERVATION: u64 = 1 << 30;

/// The Cranelift target of this CPU, or Pulley where Cranelift has no backend (32-bit ARM, …).
pub fn host_target() -> EngineTarget {
    if cfg!(target_arch = "x86_64") {
        EngineTarget::X86_64
    } else if cfg!(target_arch = "aarch64") {
        EngineTarget::Aarch64
    } else {
        pulley_target()
    }
}

/// Pulley, wasmtime's portable interpreter, with this host's pointer width.
pub fn pulley_target() -> EngineTarget {
    if cfg!(target_pointer_width = "64") {
        EngineTarget::Pulley64
    } else {
        EngineTarget::Pulley32
    }
}

/// A node's profile: `target`, and a per-memory address-space reservation sized so [`MAX_INSTANCES`]
/// memories fit in the board's RAM (power of two, 1 MiB to 1 GiB) instead of wasmtime's default 4 GiB of
/// virtual space per memory, which a 32-bit board cannot even address. Memories larger than the reservation
/// still grow: wasmtime moves them.
pub fn profile_for(target: EngineTarget, ram_bytes: u64) -> EngineProfile {
    let share = (ram_bytes / MAX_INSTANCES).clamp(MIN_RESERVATION, MAX_RESERVATION);
    let reservation = if share.is_power_of_two() { share } else { share.next_power_of_two() >> 1 };
    EngineProfile { target, memory_reservation: reservation, memory_guard: MEMORY_GUARD }
}

/// The target triple wasmtime compiles for. Agents run on Linux; Pulley is OS-independent.
pub fn triple(target: EngineTarget) -> &'static str {
    match target {
        EngineTarget::X86_64 => "x86_64-unknown-linux-gnu",
        EngineTarget::Aarch64 => "aarch64-unknown-linux-gnu",
        EngineTarget::Pulley32 => "pulley32",
        EngineTarget::Pulley64 => "pulley64",
        // Microcontroller targets: never compiled for (the controller builds artifacts only for the targets
        // wasmtime runs, `EngineTarget::runs`); named so a stray attempt fails with a readable error.
        EngineTarget::Wasmi => "wasmi (not a wasmtime target)",
        EngineTarget::None => "none (no WebAssembly engine)",
    }
}

/// The configuration that compiles artifacts for `profile`: everything that decides whether precompiled code
/// is compatible. The target is always explicit, so no host CPU features are inferred and an artifact compiled
/// on the controller loads on every board of that architecture.
pub fn compile_config(profile: &EngineProfile) -> Config {
    let mut config = config(profile);
    set_target(&mut config, profile.target);
    config
}

/// The configuration an agent runs `profile` with. A native target stays the host's own triple (wasmtime
/// compares architecture and OS when loading, so a musl agent loads a `-gnu` artifact); Pulley is explicit.
/// Callers add runtime-only settings (async, stack sizes).
pub fn config(profile: &EngineProfile) -> Config {
    let mut config = Config::new();
    if profile.target != host_target() {
        set_target(&mut config, profile.target);
    }
    config
        .epoch_interruption(true)
        .memory_reservation(profile.memory_reservation)
        .memory_guard_size(profile.memory_guard)
        .memory_reservation_for_growth(0);
    config
}

fn set_target(config: &mut Config, target: EngineTarget) {
    // A fixed triple from `triple` always parses; an error here would be a wasmtime regression.
    if let Err(e) = config.target(triple(target)) {
        panic!("wasmtime refuses target {}: {e}", triple(target));
    }
}

/// Short hex id of everything that must match for an artifact to load: the profile and this build's
/// wasmtime. The controller caches artifacts by (module sha256, fingerprint).
pub fn fingerprint(profile: &EngineProfile) -> String {
    let mut h = Sha256::new();
    h.update(WASMTIME_MAJOR.as_bytes());
    h.update(triple(profile.target).as_bytes());
    h.update(profile.memory_reservation.to_le_bytes());
    h.update(profile.memory_guard.to_le_bytes());
    hex::encode(&h.finalize()[..8])
}

/// The wasmtime release this crate is built against (the workspace pins one major version).
const WASMTIME_MAJOR: &str = "wasmtime-48";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_follow_the_boards_ram() {
        let pi_zero = profile_for(EngineTarget::Pulley32, 512 << 20);
        assert_eq!(pi_zero.memory_reservation, 8 << 20);
        let pi4 = profile_for(EngineTarget::Aarch64, 4 << 30);
        assert_eq!(pi4.memory_reservation, 64 << 20);
        assert_eq!(profile_for(EngineTarget::X86_64, 3 << 30).memory_reservation, 32 << 20);
        assert_eq!(profile_for(EngineTarget::X86_64, 1 << 20).memory_reservation, 1 << 20);
        assert_eq!(profile_for(EngineTarget::X86_64, 1 << 50).memory_reservation, 1 << 30);
    }

    #[test]
    fn fingerprints_differ_by_profile_and_are_stable() {
        let a = profile_for(EngineTarget::Aarch64, 4 << 30);
        let b = profile_for(EngineTarget::Pulley64, 4 << 30);
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_eq!(fingerprint(&a).len(), 16);
    }

    #[test]
    fn every_target_has_a_config() {
        for target in EngineTarget::ALL {
            let _ = config(&profile_for(target, 1 << 30));
            let _ = compile_config(&profile_for(target, 1 << 30));
        }
    }
}
