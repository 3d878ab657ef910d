//! Every subcommand's `--help` works and every argument error is one line: walks the command tree as
//! `edgectl --help` lists it (so a new subcommand is covered without editing this file), runs `--help` and an
//! unknown flag on each, and checks the flags users trip on (a server without a scheme, duration syntax).

use std::process::Command;

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn edgectl(args: &[&str]) -> Out {
    let out =
        Command::new(env!("CARGO_BIN_EXE_edgectl")).args(args).env_remove("EDGE_SERVER").output().expect("run edgectl");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// The subcommands a `--help` page lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Every command path: `[]`, `["get"]`, `["set", "env"]`, …
fn tree() -> Vec<Vec<String>> {
    let mut paths = vec![Vec::<String>::new()];
    let mut i = 0;
    while i < paths.len() {
        let path = paths[i].clone();
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = edgectl(&args);
        assert!(out.ok, "{args:?}: {}", out.stderr);
        for sub in subcommands(&out.stdout) {
            let mut p = path.clone();
            p.push(sub);
            paths.push(p);
        }
        i += 1;
    }
    paths
}

fn one_line_error(args: &[&str]) -> String {
    let out = edgectl(args);
    assert!(!out.ok, "{args:?} succeeded: {}", out.stdout);
    assert_eq!(out.stderr.lines().count(), 1, "{args:?}: not one line:\n{}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{args:?}: {}", out.stderr);
    out.stderr.trim_end().to_string()
}

#[test]
fn every_subcommand_has_help_and_one_line_argument_errors() {
    let paths = tree();
    for want in
        ["get", "events", "logs", "version", "completion", "describe", "set env", "rollout status", "token create"]
    {
        assert!(paths.iter().any(|p| p.join(" ") == want), "{want} missing from {paths:?}");
    }
    for path in &paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        let mut help = args.clone();
        help.push("--help");
        let out = edgectl(&help);
        assert!(out.stdout.contains(&format!("Usage: edgectl {}", path.join(" ")).trim_end().to_string()), "{path:?}");
        args.push("--no-such-flag");
        let err = one_line_error(&args);
        assert!(err.contains("--no-such-flag") && err.ends_with("(see --help)"), "{path:?}: {err}");
    }
}

#[test]
fn get_help_names_the_kinds_and_short_names_and_formats() {
    let help = edgectl(&["get", "--help"]).stdout;
    for word in [
        "instances",
        "workloads",
        "nodes",
        "namespaces",
        "po, wl, no, ns",
        "wide",
        "name",
        "--selector",
        "--show-labels",
    ] {
        assert!(help.contains(word), "{word} not in get --help:\n{help}");
    }
    let help = edgectl(&["describe", "--help"]).stdout;
    assert!(help.contains("workload"), "{help}");
}

#[test]
fn values_users_write_are_read_or_refused_in_one_line() {
    // Unknown kinds and bad values: one line, naming the value.
    assert!(one_line_error(&["get", "secrets"]).contains("'secrets'"));
    assert!(one_line_error(&["logs", "x", "--since", "soon"]).contains("soon"));
    assert!(one_line_error(&["completion", "tcsh"]).contains("tcsh"));
    // Every duration flag reads 500ms|30s|5m: the error is the missing module, not the duration.
    let err = one_line_error(&["deploy", "t", "/nonexistent.wasm", "--wait", "--wait-timeout", "30s"]);
    assert!(!err.contains("invalid") && err.contains("nonexistent.wasm"), "{err}");
    // A server without a scheme is http (nothing listens on port 9).
    let err = one_line_error(&["--server", "127.0.0.1:9", "get", "nodes"]);
    assert!(err.starts_with("error: cannot reach the controller at http://127.0.0.1:9"), "{err}");
}

#[test]
fn version_and_completion_work_without_a_controller() {
    let out = edgectl(&["version", "--client"]);
    assert_eq!(out.stdout, format!("Client Version: {}\n", env!("CARGO_PKG_VERSION")));
    let out = edgectl(&["--server", "127.0.0.1:9", "version"]);
    assert!(out.stdout.starts_with("Client Version: ") && !out.ok, "{}", out.stdout);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    for shell in ["bash", "zsh", "fish"] {
        let out = edgectl(&["completion", shell]);
        assert!(out.ok && out.stdout.contains("edgectl") && out.stdout.len() > 1000, "{shell}: {}", out.stderr);
    }
}
