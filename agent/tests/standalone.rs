//! The agent binary in standalone mode: workloads from a local manifest, no broker, no controller.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The example precompiled for the engine profile the agent binary picks on this machine, written to `dir`: a
/// runtime-only agent (no `cranelift` feature) runs artifacts, not WebAssembly.
fn artifact(dir: &Path, name: &str) -> std::path::PathBuf {
    let config = edge_agent::AgentConfig::new("standalone", "127.0.0.1", 1, dir.to_path_buf());
    let profile = edge_agent::config::NodeIdentity::resolve(&config).unwrap().engine;
    let wasm = std::fs::read(examples().join(format!("{name}.wasm"))).unwrap();
    let path = dir.join(format!("{name}.cwasm"));
    std::fs::write(&path, edge_engine::Compiler::new().precompile(&profile, &wasm).unwrap()).unwrap();
    path
}

#[test]
fn runs_a_manifest_without_any_controller_and_restarts_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("edge.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[workload]]\nname = \"tick\"\nmodule = \"{}\"\n\n\
             [[workload]]\nname = \"hi\"\nmodule = \"{}\"\nrestart = \"on-failure\"\n",
            artifact(dir.path(), "ticker").display(),
            artifact(dir.path(), "hello").display(),
        ),
    )
    .unwrap();
    let log = dir.path().join("agent.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["--standalone", "--manifest", &manifest.display().to_string()])
        .args(["--data", &dir.path().join("data").display().to_string()])
        .env("NO_COLOR", "1")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // ticker prints "tick N" each second; hello prints a greeting and exits 0 (on-failure: not restarted).
        if text.matches("tick ").count() >= 2 && text.contains("Exited { code: 0 }") {
            break text;
        }
        if start.elapsed() > Duration::from_secs(30) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("standalone agent did not run both workloads within 30 s:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(!text.contains("MQTT"), "standalone mode touched MQTT:\n{text}");
    assert!(text.matches("Started").count() >= 2, "both instances start:\n{text}");
}

#[test]
fn a_bad_manifest_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("edge.toml");
    std::fs::write(&manifest, "[[workload]]\nname = \"x\"\nmodule = \"missing.wasm\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["--standalone", "--manifest", &manifest.display().to_string()])
        .args(["--data", &dir.path().join("data").display().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("workload \"x\"") && err.contains("missing.wasm"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_edge-agent")).args(["--manifest", "x.toml"]).output().unwrap();
    assert!(!out.status.success(), "--manifest without --standalone must be refused");
}

#[test]
fn duration_and_prefix_flags_take_the_shared_syntax() {
    let agent = || Command::new(env!("CARGO_BIN_EXE_edge-agent"));
    let help = agent().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--topic-prefix") && help.contains("[default: edge/v1]"), "{help}");
    assert!(help.contains("[default: 1m]"), "the heartbeat default is edge_proto::timing::HEARTBEAT:\n{help}");
    assert!(!help.contains("--prefix "), "--prefix stays a hidden alias:\n{help}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml").display().to_string();
    // Accepted values get as far as the (missing) manifest; refused ones name the flag.
    for (flags, accepted) in [
        (&["--heartbeat", "500ms"][..], true),
        (&["--heartbeat", "0.5"], true),
        (&["--heartbeat", "2s", "--prefix", "site/a"], true),
        (&["--topic-prefix", "site/a"], true),
        (&["--heartbeat", "0"], false),
        (&["--heartbeat", "2h"], false),
        (&["--heartbeat", "soon"], false),
    ] {
        let out = agent()
            .args(["--standalone", "--manifest", &missing])
            .args(["--data", &dir.path().join("data").display().to_string()])
            .args(flags)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        if accepted {
            assert!(err.contains("missing.toml"), "{flags:?} should be accepted: {err}");
        } else {
            assert!(err.contains("--heartbeat"), "{flags:?} should be refused naming the flag: {err}");
        }
    }
}
