//! The command line of `edge-mcu-sim`: bad flags are refused with one line naming the problem, before any
//! connection is tried. (Its behaviour on the wire is `tests/tests/mcu.rs`'s, with a real controller.)

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edge-mcu-sim")).args(args).output().expect("run edge-mcu-sim");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_flags_are_refused_naming_the_problem() {
    let data = tempfile_dir();
    let base = ["--node", "mcu-1", "--broker", "mqtt://127.0.0.1:1", "--data", data.as_str()];
    let (ok, err) = run(&[&base[..], &["--board", "rpi-4"]].concat());
    assert!(!ok && err.contains("unknown board") && err.contains("pico-2-w"), "{err}");
    let (ok, err) = run(&["--node", "Bad/Name", "--broker", "mqtt://127.0.0.1:1", "--data", data.as_str()]);
    assert!(!ok && err.contains("--node"), "{err}");
    let (ok, err) = run(&["--node", "n", "--broker", "nowhere", "--data", data.as_str()]);
    assert!(!ok && err.contains("--broker"), "{err}");
    // No identity in flash and no token: nothing to connect as.
    let (ok, err) = run(&base);
    assert!(!ok && err.contains("join token"), "{err}");
}

fn tempfile_dir() -> String {
    let dir = std::env::temp_dir().join(format!("edge-mcu-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.display().to_string()
}
