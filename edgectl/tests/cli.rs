//! The `edgectl` binary against a real in-process controller and agents (the `edge-tests` harness): exit codes,
//! one-line errors, the shared duration syntax, and a `--wait` that never calls a crash-looping workload ready.

use std::process::Command;
use std::time::{Duration, Instant};

use edge_tests::Fleet;

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the real binary (off the runtime's threads: the controller answers it from this process). Every call is
/// bounded by the timeouts it is given (`--wait-timeout`, `--timeout`).
async fn edgectl(server: &str, args: &[&str]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgectl"));
    cmd.arg("--server").arg(server).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run edgectl")).await.unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn example(name: &str) -> String {
    format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn server(fleet: &Fleet) -> String {
    format!("http://{}", fleet.controller.as_ref().unwrap().api_addr)
}

/// One `error: …` line on stderr, and failure.
fn one_line_error(out: &Out) -> &str {
    assert!(!out.ok, "expected a failure; stdout: {}", out.stdout);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    out.stderr.trim_end()
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_bad_modules_and_unknown_names_with_one_line_errors() {
    let fleet = Fleet::embedded().await;
    let server = server(&fleet);
    let bad = fleet.dir.path().join("x.wasm");
    std::fs::write(&bad, b"definitely not wasm, just some bytes").unwrap();

    let out = edgectl(&server, &["deploy", "x", &bad.display().to_string()]).await;
    assert!(one_line_error(&out).contains("is not a WebAssembly module"), "{}", out.stderr);

    let out = edgectl(&server, &["logs", "nope"]).await;
    assert_eq!(one_line_error(&out), "error: workload nope not found in namespace default");

    let out = edgectl(&server, &["get", "workloads", "-o", "json"]).await;
    assert!(out.ok);
    assert_eq!(out.stdout.trim(), "[]", "nothing was stored");

    let out = edgectl("http://127.0.0.1:9", &["get", "nodes"]).await;
    assert!(one_line_error(&out).starts_with("error: cannot reach the controller"), "{}", out.stderr);

    // Usage errors too: clap's several lines of usage and tips are cut to the first.
    let out = edgectl(&server, &["get", "workloads", "--no-such-flag"]).await;
    assert!(one_line_error(&out).contains("--no-such-flag"), "{}", out.stderr);
    fleet.stop().await;
}

/// Regression: `--wait-timeout 30s` was refused ("invalid digit"); every duration flag takes 500ms, 30s, 5m or bare
/// seconds. With no agent the replica stays Pending, so the wait ends at its timeout saying so, in one line.
#[tokio::test(flavor = "multi_thread")]
async fn duration_flags_take_the_shared_syntax_and_a_timed_out_wait_says_what_is_missing() {
    let fleet = Fleet::embedded().await;
    let server = server(&fleet);
    let ticker = example("ticker.wasm");

    let started = Instant::now();
    let out = edgectl(&server, &["deploy", "tick", &ticker, "--wait", "--wait-timeout", "500ms"]).await;
    let err = one_line_error(&out);
    assert!(err.starts_with("error: default/tick not ready after 500ms: tick-"), "{err}");
    assert!(err.contains("Pending"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "the wait took {:?}", started.elapsed());
    assert!(out.stdout.contains("deployed (revision 1, 1 replica)"), "{}", out.stdout);
    assert!(
        out.stdout.contains("waiting up to 500ms for 1 replica of default/tick (revision 1) to be ready"),
        "{}",
        out.stdout
    );

    let out =
        edgectl(&server, &["deploy", "once", &example("hello.wasm"), "--restart", "never", "--timeout", "1.5s"]).await;
    assert!(out.ok, "{}", out.stderr);
    let out = edgectl(&server, &["deploy", "tick", &ticker, "--wait", "--wait-timeout", "1"]).await;
    assert!(one_line_error(&out).contains("not ready after 1s"), "{}", out.stderr);

    let out = edgectl(&server, &["rollout", "status", "tick", "--timeout", "300ms"]).await;
    assert!(
        one_line_error(&out).starts_with("error: rollout of default/tick not complete after 300ms"),
        "{}",
        out.stderr
    );

    let out = edgectl(&server, &["deploy", "tick", &ticker, "--wait-timeout", "soon"]).await;
    let err = one_line_error(&out);
    assert!(err.contains("invalid value 'soon' for '--wait-timeout"), "{err}");
    fleet.stop().await;
}

/// Regression: `deploy bomb membomb.wasm --memory 16Mi --wait` printed `1 of 1 replicas ready` and exited 0 while
/// the instance crash-looped, and a module exiting 0 under `--restart always` waited out the whole timeout.
#[tokio::test(flavor = "multi_thread")]
async fn wait_fails_at_once_for_crash_loops_and_succeeds_only_for_ready_replicas() {
    let mut fleet = Fleet::embedded_with(|c| c.min_ready = Duration::from_millis(500)).await;
    fleet.start_agent("edge-1");
    fleet.wait_ready_nodes(1).await;
    let server = server(&fleet);
    let wait = ["--wait", "--wait-timeout", "60s"];

    let started = Instant::now();
    let bomb = example("membomb.wasm");
    let out = edgectl(&server, &[&["deploy", "bomb", &bomb, "--memory", "16Mi"][..], &wait].concat()).await;
    let err = one_line_error(&out);
    assert!(err.starts_with("error: default/bomb is not ready: instance bomb-"), "{err}");
    assert!(err.contains("memory limit exceeded"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "failed only after {:?}", started.elapsed());

    let started = Instant::now();
    let hello = example("hello.wasm");
    let out = edgectl(&server, &[&["deploy", "hi", &hello][..], &wait].concat()).await;
    let err = one_line_error(&out);
    assert!(err.contains("keeps exiting (exit code 0, ") && err.contains("under --restart always"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "failed only after {:?}", started.elapsed());

    let out = edgectl(&server, &[&["deploy", "once", &hello, "--restart", "never"][..], &wait].concat()).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("1 of 1 replica ready after"), "{}", out.stdout);

    let ticker = example("ticker.wasm");
    let out = edgectl(&server, &[&["deploy", "tick", &ticker, "--replicas", "2"][..], &wait].concat()).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("2 of 2 replicas ready after"), "{}", out.stdout);

    // A new revision that crash-loops: the wait names the new instance and the way back; the old ones serve.
    let out =
        edgectl(&server, &[&["deploy", "tick", &bomb, "--replicas", "2", "--memory", "16Mi"][..], &wait].concat())
            .await;
    let err = one_line_error(&out);
    assert!(err.contains("memory limit exceeded"), "{err}");
    assert!(err.ends_with("the old instances keep serving (edgectl rollout undo tick)"), "{err}");
    let out = edgectl(&server, &["rollout", "status", "tick", "--timeout", "60s"]).await;
    assert!(one_line_error(&out).contains("the old instances keep serving"), "{}", out.stderr);

    let out = edgectl(&server, &["rollout", "undo", "tick"]).await;
    assert!(out.ok, "{}", out.stderr);
    let out = edgectl(&server, &["rollout", "status", "tick", "--timeout", "60s"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("rollout of default/tick complete"), "{}", out.stdout);
    fleet.stop().await;
}
