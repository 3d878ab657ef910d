//! The controller binary's command line: bad flags are one clear error, not a panic or a half-started server.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edge-controller")).args(args).output().expect("run edge-controller");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_flags_are_named() {
    let (ok, err) = run(&["--reschedule-after", "soon"]);
    assert!(!ok && err.contains("--reschedule-after") && err.contains("invalid duration"), "{err}");
    let (ok, err) = run(&["--node-timeout", "5x"]);
    assert!(!ok && err.contains("--node-timeout") && err.contains("invalid duration"), "{err}");
    let (ok, err) = run(&["--broker", "http://nowhere"]);
    assert!(!ok && err.contains("invalid broker URL"), "{err}");
    let (ok, err) = run(&["--broker", "mqtt://127.0.0.1:1", "--mqtt-listen", "127.0.0.1:1"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
}
