//! The agent's parsers of what reaches it: the verifier of what the controller sends (`edge_agent::verify`),
//! standalone TOML manifests (`edge_agent::manifest`) and its config file (`agent/src/config_file.rs`).
//!
//! Invariants:
//! - `verify`: a spec or artifact chunk from a decoded envelope is believed by the pinned node `pi-1` only
//!   with the signature the harness's cluster key makes over that node's document (so never a spec meant for
//!   another node, nor an altered one); every refusal reads as one line (it becomes an event's reason);
//! - `agent-manifest`: every instance it yields has a valid workload name, an id made from it, and the one
//!   module of the assets;
//! - `agent-config`: errors are one line; relative paths become absolute; laying empty settings over parsed
//!   ones (or the reverse) changes nothing; resolving never panics.

use std::path::Path;

use edge_agent::verify::Verifier;
use edge_proto::auth::{artifact_document, spec_document};
use edge_proto::{decode, Message, ModuleReply};
use edge_trust::{sign, Context};

use super::trust::harness_key;
use super::{text, Target};
use crate::agent_config_file::Settings;

/// The node the verifier speaks for. Seeds signed for another node (`pi-2`) must be refused.
pub const NODE: &str = "pi-1";

pub const VERIFY: Target = Target {
    name: "verify",
    about: "edge_agent::verify::Verifier on decoded specs and artifact chunks",
    run: verify,
    dict: &[&[4], &[2], &[6], &[64], &[1], &[0]],
    max_len: 4096,
};

pub const MANIFEST: Target = Target {
    name: "agent-manifest",
    about: "edge_agent::manifest::parse (standalone TOML manifests)",
    run: manifest,
    dict: &[
        b"[[workload]]",
        b"name",
        b"module",
        b"\"m.wasm\"",
        b"replicas",
        b"cpu",
        b"memory",
        b"memory_limit",
        b"cpu_limit",
        b"timeout",
        b"volumes",
        b"restart",
        b"args",
        b"env",
        b" = ",
        b"\"",
        b"'''",
        b"[",
        b"{",
    ],
    max_len: 2048,
};

pub const CONFIG: Target = Target {
    name: "agent-config",
    about: "the agent's config file (Settings::parse, over, resolve)",
    run: config,
    dict: &[
        b"node",
        b"broker",
        b"data",
        b"join",
        b"board",
        b"cpu",
        b"memory",
        b"reserve-cpu",
        b"reserve-memory",
        b"[labels]",
        b"heartbeat",
        b"topic-prefix",
        b"outbox-limit",
        b"module-cache",
        b"engine",
        b"standalone",
        b"manifest",
        b" = ",
        b"\"",
        b"true",
        b"pulley",
        b"mqtt://h:1",
    ],
    max_len: 2048,
};

fn verify(data: &[u8]) -> bool {
    let Ok(envelope) = decode(data) else { return false };
    let key = harness_key();
    let verifier = Verifier::pinned(NODE, key.public());
    let auth = envelope.auth.as_deref();
    let one_line = |e: &dyn std::fmt::Display| {
        let line = e.to_string();
        assert!(!line.contains(['\n', '\r']), "a rejection prints over several lines: {line:?}");
    };
    match &envelope.message {
        Message::Spec(spec) => {
            assert_eq!(Verifier::unpinned(NODE).spec(spec, auth), Ok(None), "an unpinned node checks nothing");
            match verifier.spec(spec, auth) {
                Ok(signature) => {
                    let genuine = sign(key, Context::SPEC, spec_document(NODE, spec));
                    assert_eq!(signature.as_ref(), Some(genuine.signature()), "a forged spec was believed");
                    assert_eq!(verifier.stored_spec(spec, signature.as_ref()), Ok(()));
                    true
                }
                Err(e) => {
                    one_line(&e);
                    false
                }
            }
        }
        Message::ModuleReply(ModuleReply::Chunk(chunk)) => match verifier.chunk(chunk, auth) {
            Ok(()) => {
                if let Some(profile) = &chunk.artifact {
                    let body = artifact_document(&chunk.module, profile, &chunk.sha256, chunk.total);
                    let genuine = sign(key, Context::ARTIFACT, body);
                    assert_eq!(auth, Some(&genuine.signature()[..]), "a forged artifact statement was believed");
                }
                true
            }
            Err(e) => {
                one_line(&e);
                false
            }
        },
        _ => false,
    }
}

/// Where module paths in fuzzed manifests resolve: `fuzz/assets/`, which holds `m.wasm`.
fn assets() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets"))
}

fn manifest(data: &[u8]) -> bool {
    let input = text(data);
    // A module path may name any file; keep the fuzzer inside the assets (no directories, no escapes that could
    // spell a `/`). The agent's own bounds on what it reads are checked by its unit tests and hostile inputs.
    if input.contains(['/', '\\']) {
        return false;
    }
    match edge_agent::manifest::parse(&input, "fuzz.toml", assets()) {
        Ok(loaded) => {
            // `replicas = 0` runs nothing, but its module is still read and checked.
            assert_eq!(loaded.modules.len(), 1, "{loaded:?}");
            for i in &loaded.instances {
                assert!(edge_proto::validate_name(&i.workload).is_ok(), "{:?}", i.workload);
                assert!(i.id.starts_with(&format!("{}-", i.workload)));
                assert_eq!(i.module, loaded.modules[0].0);
            }
            true
        }
        Err(e) => {
            // The syntax error is toml's own (several lines with an excerpt); the others are one line.
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

fn config(data: &[u8]) -> bool {
    let input = text(data);
    match Settings::parse(&input, Path::new("/etc/edge")) {
        Ok(settings) => {
            for p in [&settings.data, &settings.manifest].into_iter().flatten() {
                assert!(p.is_absolute() || p.as_os_str().is_empty(), "{p:?} stayed relative");
            }
            assert_eq!(Settings::default().over(settings.clone()), settings);
            assert_eq!(settings.clone().over(Settings::default()), settings);
            if let Err(e) = settings.resolve(None) {
                let line = e.to_string();
                assert!(!line.contains('\n'), "{line:?}");
            }
            true
        }
        Err(e) => {
            assert!(!e.contains('\n'), "{e:?}");
            false
        }
    }
}
