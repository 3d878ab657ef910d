//! The agent binary in standalone mode: workloads from a local manifest, no broker, no controller.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn runs_a_manifest_without_any_controller_and_restarts_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("edge.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[workload]]\nname = \"tick\"\nmodule = \"{0}/ticker.wasm\"\n\n\
             [[workload]]\nname = \"hi\"\nmodule = \"{0}/hello.wasm\"\nrestart = \"on-failure\"\n",
            examples().display()
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
