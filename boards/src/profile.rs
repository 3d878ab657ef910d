//! The board profile file format, its parser and its checks.
//!
//! One TOML file per board under `boards/profiles/`, named after the board (`rpi-4.toml`). Every field but
//! `engine` (empty for firmware) and the two reserves (zero when absent) is required; unknown fields are errors.
//!
//! ```toml
//! name = "rpi-4"                      # the file stem; `--board rpi-4`, the node's `board` label
//! description = "Raspberry Pi 4 Model B (Cortex-A72, 64-bit Raspberry Pi OS)"
//! arch = "aarch64"                    # aarch64 | armv7 | armv6 | x86_64 | thumbv6m | thumbv8m.main | riscv32imc
//! target_triple = "aarch64-unknown-linux-gnu"
//! runtime = "agent"                   # agent (edge-agent + wasmtime) | firmware (the no_std firmware)
//! engine = "aarch64"                  # wasmtime target: aarch64 | x86_64 (Cranelift) | pulley32 | pulley64
//! cores = 4                           # capacity: cores × 1000 millicores
//! memory = "4Gi"                      # capacity, in the agent's quantity syntax
//! reserve_cpu = "200m"                # kept back for the agent and the OS
//! reserve_memory = "256Mi"
//! os = "Raspberry Pi OS Lite (64-bit)"
//! provision = ["image", "ssh"]        # image (edgectl flash) | ssh | firmware
//! ```
//!
//! Checks, beyond the types: the name is the file stem and unique; the triple is for the architecture; an agent
//! board has an engine its architecture runs (Cranelift for its own ISA, or Pulley of its pointer width) and is
//! provisioned by image or SSH; a firmware board has no engine, no reserve, and is provisioned by firmware; the
//! reserves are below the capacity.

use serde::Deserialize;

use crate::{Board, Provision, Runtime};

/// A profile that cannot be used, with the file it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ProfileError {
    pub file: String,
    pub message: String,
}

/// A profile file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    description: String,
    arch: String,
    target_triple: String,
    runtime: Runtime,
    #[serde(default)]
    engine: String,
    cores: u32,
    memory: String,
    #[serde(default)]
    reserve_cpu: Option<String>,
    #[serde(default)]
    reserve_memory: Option<String>,
    os: String,
    provision: Vec<Provision>,
}

/// `std::env::consts::ARCH`'s word for a profile architecture, or `None` for one the profiles do not know.
pub(crate) fn rust_arch(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "aarch64" => "aarch64",
        "x86_64" => "x86_64",
        "armv7" | "armv6" | "thumbv6m" | "thumbv7em" | "thumbv8m.main" => "arm",
        "riscv32imc" | "riscv32imac" => "riscv32",
        _ => return None,
    })
}

/// Parses one profile. `file` names it in errors and must be `NAME.toml`.
pub fn parse(file: &str, text: &str) -> Result<Board, ProfileError> {
    let err = |message: String| ProfileError { file: file.to_string(), message };
    let p: ProfileFile = toml::from_str(text).map_err(|e| err(one_line(text, &e)))?;
    check(file, &p).map_err(err)?;
    let cpu = |q: &Option<String>, field: &str| {
        q.as_deref().map_or(Ok(0), edge_proto::quantity::parse_cpu).map_err(|e| err(format!("{field}: {e}")))
    };
    let memory = |q: &str, field: &str| edge_proto::quantity::parse_memory(q).map_err(|e| err(format!("{field}: {e}")));
    let reserved_cpu_millis = cpu(&p.reserve_cpu, "reserve_cpu")?;
    let reserved_memory_bytes = p.reserve_memory.as_deref().map_or(Ok(0), |q| memory(q, "reserve_memory"))?;
    let memory_bytes = memory(&p.memory, "memory")?;
    let cpu_millis = p.cores.checked_mul(1000).ok_or_else(|| err(format!("cores = {}: too many", p.cores)))?;
    if reserved_cpu_millis >= cpu_millis || (memory_bytes > 0 && reserved_memory_bytes >= memory_bytes) {
        return Err(err("the reserve is not below the capacity".into()));
    }
    if p.runtime == Runtime::Firmware && (reserved_cpu_millis, reserved_memory_bytes) != (0, 0) {
        return Err(err("a firmware board reserves nothing (the firmware is all it runs)".into()));
    }
    // Profiles live as long as the program (they are the program's own data), so their strings are leaked once
    // rather than copied into every `Board` handed out.
    let p: &'static ProfileFile = Box::leak(Box::new(p));
    Ok(Board {
        name: &p.name,
        description: &p.description,
        arch: &p.arch,
        target_triple: &p.target_triple,
        runtime: p.runtime,
        engine: &p.engine,
        cores: p.cores,
        cpu_millis,
        memory_bytes,
        reserved_cpu_millis,
        reserved_memory_bytes,
        os: &p.os,
        provision: &p.provision,
    })
}

/// Parses every (file name, contents), sorted by board name; duplicate names are refused.
pub fn parse_all(files: &[(&str, &str)]) -> Result<Vec<Board>, ProfileError> {
    let mut boards = files.iter().map(|(file, text)| parse(file, text)).collect::<Result<Vec<_>, _>>()?;
    boards.sort_by_key(|b| b.name);
    if let Some(w) = boards.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(ProfileError { file: format!("{}.toml", w[0].name), message: "name used twice".into() });
    }
    Ok(boards)
}

/// The checks on the fields themselves (quantities are checked as they are parsed).
fn check(file: &str, p: &ProfileFile) -> Result<(), String> {
    if file.strip_suffix(".toml") != Some(p.name.as_str()) {
        return Err(format!("name {:?} is not the file's name", p.name));
    }
    if p.name.is_empty() || !p.name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
        return Err(format!("name {:?}: lowercase letters, digits and '-' only", p.name));
    }
    let rust = rust_arch(&p.arch).ok_or_else(|| format!("unknown arch {:?}", p.arch))?;
    // Rust's triples start with the architecture, except ARMv6 Linux's, which is plain `arm-`.
    let triple_arch = p.target_triple.split('-').next().unwrap_or("");
    if triple_arch != p.arch && !(p.arch == "armv6" && triple_arch == "arm") {
        return Err(format!("target_triple {:?} is not for arch {}", p.target_triple, p.arch));
    }
    if p.cores == 0 {
        return Err("cores must be at least 1".into());
    }
    if p.provision.is_empty() {
        return Err("provision names no way to provision the board".into());
    }
    match p.runtime {
        Runtime::Agent => {
            let runs = match rust {
                "aarch64" => ["aarch64", "pulley64"],
                "x86_64" => ["x86_64", "pulley64"],
                _ => ["pulley32", "pulley32"],
            };
            if !runs.contains(&p.engine.as_str()) {
                return Err(format!("engine {:?} does not run on {} (expected {})", p.engine, p.arch, runs[0]));
            }
            if p.provision.contains(&Provision::Firmware) {
                return Err("an agent board is provisioned by image or ssh, not firmware".into());
            }
        }
        Runtime::Firmware => {
            if !p.engine.is_empty() {
                return Err("a firmware board has no engine".into());
            }
            if p.provision != [Provision::Firmware] {
                return Err("a firmware board is provisioned by firmware only".into());
            }
        }
    }
    Ok(())
}

/// A TOML error on one line: `line N: message` (toml's own rendering spans several lines with a source excerpt).
pub fn one_line(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text.get(..span.start).map_or(1, |before| before.matches('\n').count() + 1);
            format!("line {line}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PI: &str = r#"
name = "pi"
description = "a test board"
arch = "aarch64"
target_triple = "aarch64-unknown-linux-gnu"
runtime = "agent"
engine = "aarch64"
cores = 4
memory = "1Gi"
reserve_cpu = "200m"
reserve_memory = "128Mi"
os = "Raspberry Pi OS Lite (64-bit)"
provision = ["image", "ssh"]
"#;

    #[test]
    fn a_profile_parses_into_a_board() {
        let b = parse("pi.toml", PI).unwrap();
        assert_eq!((b.name, b.cpu_millis, b.memory_bytes, b.reserved_memory_bytes), ("pi", 4000, 1 << 30, 128 << 20));
        assert_eq!(b.provision, [Provision::Image, Provision::Ssh]);
    }

    #[test]
    fn bad_profiles_are_refused_with_file_and_line() {
        let e = parse("pi.toml", &PI.replace("cores = 4", "cores = 4\ncolour = \"red\"")).unwrap_err();
        assert_eq!(e.file, "pi.toml");
        assert!(e.message.starts_with("line 9: unknown field `colour`"), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
        for (from, to, says) in [
            ("name = \"pi\"", "name = \"other\"", "not the file's name"),
            ("arch = \"aarch64\"", "arch = \"m68k\"", "unknown arch"),
            ("aarch64-unknown", "armv7-unknown", "not for arch"),
            ("engine = \"aarch64\"", "engine = \"pulley32\"", "does not run on aarch64"),
            ("reserve_cpu = \"200m\"", "reserve_cpu = \"4\"", "not below"),
            ("memory = \"1Gi\"", "memory = \"lots\"", "memory:"),
            ("[\"image\", \"ssh\"]", "[\"firmware\"]", "not firmware"),
            ("[\"image\", \"ssh\"]", "[]", "no way"),
            ("runtime = \"agent\"", "runtime = \"kernel\"", "line 6"),
        ] {
            let e = parse("pi.toml", &PI.replace(from, to)).unwrap_err().to_string();
            assert!(e.contains(says), "{from} → {to}: {e}");
        }
        let e = parse_all(&[("pi.toml", PI), ("pi.toml", PI)]).unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
    }

    #[test]
    fn armv6_uses_the_plain_arm_triple_and_pulley() {
        let p = PI
            .replace("arch = \"aarch64\"", "arch = \"armv6\"")
            .replace("aarch64-unknown-linux-gnu", "arm-unknown-linux-gnueabihf")
            .replace("engine = \"aarch64\"", "engine = \"pulley32\"");
        assert_eq!(parse("pi.toml", &p).unwrap().rust_arch(), "arm");
    }
}
