//! Artifacts: WebAssembly precompiled for one engine profile.
//!
//! Trust: loading precompiled code skips validation, so it is `unsafe` in wasmtime. An agent loads only bytes
//! that came from its controller (over its authenticated MQTT session) and whose sha256 matched the hash the
//! controller announced; wasmtime then checks the header (target, engine settings, version) before mapping
//! anything, which is what turns a wrong-target or wrong-version artifact into an error instead of a crash.

#[cfg(feature = "compiler")]
use std::collections::HashMap;
#[cfg(feature = "compiler")]
use std::sync::Mutex;

#[cfg(feature = "compiler")]
use edge_proto::EngineProfile;
use wasmtime::{Engine, Module, Precompiled};

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("precompiled code is corrupt or incomplete (no valid wasmtime artifact header)")]
    NotAnArtifact,
    #[error("precompiled code does not fit this engine: {0}")]
    Incompatible(String),
    #[error("cannot compile for {target}: {reason}")]
    Compile { target: String, reason: String },
    #[error("cannot set up an engine for {target}: {reason}")]
    Engine { target: String, reason: String },
}

/// Loads an artifact compiled for `engine`'s profile. Bytes that are not an artifact, or an artifact for
/// another target, engine configuration or wasmtime version, are refused with the reason.
pub fn load_artifact(engine: &Engine, bytes: &[u8]) -> Result<Module, ArtifactError> {
    match Engine::detect_precompiled(bytes) {
        Some(Precompiled::Module) => {}
        Some(Precompiled::Component) | None => return Err(ArtifactError::NotAnArtifact),
    }
    // SAFETY: see the module docs: the bytes were produced by `Engine::precompile_module` on the controller
    // and arrived hash-verified; wasmtime validates the header and configuration before using the code.
    #[allow(unsafe_code)]
    let module = unsafe { Module::deserialize(engine, bytes) };
    module.map_err(|e| ArtifactError::Incompatible(format!("{e:#}")))
}

/// Compiles WebAssembly in-process for `engine` (agents built with Cranelift, standalone mode).
#[cfg(feature = "compiler")]
pub fn compile_local(engine: &Engine, wasm: &[u8]) -> Result<Module, ArtifactError> {
    Module::new(engine, wasm)
        .map_err(|e| ArtifactError::Compile { target: "this node".to_string(), reason: format!("{e:#}") })
}

/// Precompiles modules for any profile, keeping one engine per profile (creating one costs milliseconds).
#[cfg(feature = "compiler")]
#[derive(Default)]
pub struct Compiler {
    engines: Mutex<HashMap<EngineProfile, Engine>>,
}

#[cfg(feature = "compiler")]
impl Compiler {
    pub fn new() -> Compiler {
        Compiler::default()
    }

    /// The artifact of `wasm` for `profile`. CPU-heavy (Cranelift): call it off async threads.
    pub fn precompile(&self, profile: &EngineProfile, wasm: &[u8]) -> Result<Vec<u8>, ArtifactError> {
        if profile.target.runs() != Some(edge_proto::mcu::ModuleAbi::Wasi) {
            // wasmi nodes load WebAssembly bytes; nothing is compiled for them (nor for nodes with no engine).
            let reason = "microcontroller targets run WebAssembly bytes, not precompiled code".to_string();
            return Err(ArtifactError::Compile { target: profile.target.to_string(), reason });
        }
        let engine = self.engine(profile)?;
        engine.precompile_module(wasm).map_err(|e| ArtifactError::Compile {
            target: profile.target.to_string(),
            reason: first_line(&format!("{e:#}")).to_string(),
        })
    }

    fn engine(&self, profile: &EngineProfile) -> Result<Engine, ArtifactError> {
        let mut engines = self.engines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = engines.get(profile) {
            return Ok(e.clone());
        }
        let engine = Engine::new(&crate::profile::compile_config(profile))
            .map_err(|e| ArtifactError::Engine { target: profile.target.to_string(), reason: format!("{e:#}") })?;
        engines.insert(*profile, engine.clone());
        Ok(engine)
    }
}

#[cfg(feature = "compiler")]
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(all(test, feature = "compiler"))]
mod tests {
    use super::*;
    use crate::profile::{config, host_target, profile_for};
    use edge_proto::EngineTarget;

    const TICK: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;

    fn wasm() -> Vec<u8> {
        wat::parse_str(TICK).unwrap()
    }

    #[test]
    fn precompiles_for_every_target_and_loads_only_into_its_own_profile() {
        let compiler = Compiler::new();
        let ram = 1 << 30;
        let mut artifacts = Vec::new();
        for target in EngineTarget::ALL {
            let profile = profile_for(target, ram);
            let bytes = compiler.precompile(&profile, &wasm()).unwrap();
            assert!(Engine::detect_precompiled(&bytes).is_some(), "{target}");
            artifacts.push((profile, bytes));
        }
        // What this host can load: its own target and Pulley with its pointer width.
        for (profile, bytes) in &artifacts {
            let runnable = profile.target == host_target() || profile.target == crate::pulley_target();
            if !runnable {
                continue;
            }
            let engine = Engine::new(&config(profile)).unwrap();
            load_artifact(&engine, bytes).unwrap();
            // Every other artifact is refused by this engine with a reason, never loaded.
            for (other, other_bytes) in &artifacts {
                if other != profile {
                    let err = load_artifact(&engine, other_bytes).unwrap_err();
                    assert!(
                        matches!(err, ArtifactError::Incompatible(_)),
                        "{} into {}: {err}",
                        other.target,
                        profile.target
                    );
                }
            }
        }
    }

    #[test]
    fn a_different_memory_reservation_is_refused() {
        let compiler = Compiler::new();
        let small = profile_for(host_target(), 64 << 20);
        let big = profile_for(host_target(), 8 << 30);
        let bytes = compiler.precompile(&small, &wasm()).unwrap();
        let engine = Engine::new(&config(&big)).unwrap();
        assert!(matches!(load_artifact(&engine, &bytes), Err(ArtifactError::Incompatible(_))));
        assert!(matches!(load_artifact(&engine, &wasm()), Err(ArtifactError::NotAnArtifact)));
        let mut truncated = bytes.clone();
        truncated.truncate(bytes.len() / 2);
        assert!(load_artifact(&Engine::new(&config(&small)).unwrap(), &truncated).is_err());
    }
}
