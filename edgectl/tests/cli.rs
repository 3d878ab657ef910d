//! The `edgectl` binary against a real in-process controller and agents (the `edge-tests` harness): exit codes,
//! one-line errors, the shared duration syntax, a `--wait` that never calls a crash-looping workload ready, and
//! manifests (`apply`, `diff`, `delete -f`, `get -o yaml`) with the edits that touch only what they name.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::Fleet;

struct Out {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the real binary (off the runtime's threads: the controller answers it from this process). Every call is
/// bounded by the timeouts it is given (`--wait-timeout`, `--timeout`).
/// A controller's address and admin credential, as every command here passes them.
struct Server {
    url: String,
    token: String,
}

async fn edgectl(server: &Server, args: &[&str]) -> Out {
    edgectl_fed(server, args, None).await
}

/// [`edgectl`] with `input` on its standard input (closed, so the binary sees its end).
async fn edgectl_fed(server: &Server, args: &[&str], input: Option<String>) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgectl"));
    cmd.arg("--server").arg(&server.url).env("EDGE_TOKEN", &server.token).args(args);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("run edgectl");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(text) = input {
            stdin.write_all(text.as_bytes()).expect("feed edgectl");
        }
        drop(stdin);
        child.wait_with_output().expect("edgectl output")
    })
    .await
    .unwrap();
    Out {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn example(name: &str) -> String {
    format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn server(fleet: &Fleet) -> Server {
    let c = fleet.controller.as_ref().unwrap();
    Server { url: format!("http://{}", c.api_addr), token: c.admin_token.clone().expect("an admin credential") }
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
    assert!(
        one_line_error(&out).starts_with("error: nope is neither a workload nor an instance in namespace default"),
        "{}",
        out.stderr
    );
    let out = edgectl(&server, &["-n", "missing", "get", "workloads"]).await;
    assert!(one_line_error(&out).contains("namespace missing not found"), "{}", out.stderr);
    let out = edgectl(&server, &["get", "pods"]).await;
    assert_eq!((out.ok, out.stdout.as_str()), (true, ""), "{}", out.stderr);
    assert_eq!(out.stderr, "No resources found in default namespace.\n");

    let out = edgectl(&server, &["get", "workloads", "-o", "json"]).await;
    assert!(out.ok);
    assert_eq!(out.stdout.trim(), "[]", "nothing was stored");

    let nowhere = Server { url: "http://127.0.0.1:9".into(), token: String::new() };
    let out = edgectl(&nowhere, &["get", "nodes"]).await;
    assert!(one_line_error(&out).starts_with("error: cannot reach the controller"), "{}", out.stderr);

    // Usage errors too: clap's several lines of usage and tips are cut to the first.
    let out = edgectl(&server, &["get", "workloads", "--no-such-flag"]).await;
    assert!(one_line_error(&out).contains("--no-such-flag"), "{}", out.stderr);
    fleet.stop().await;
}

/// Credentials from the command line: `create credential` prints the token alone on its last line, a `view`
/// token lists but cannot deploy, an `edit` token for a namespace deploys there only, `get credentials` never shows
/// a token, `events --audit` names who changed what, and no token at all is one line naming what to send.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_from_the_command_line() {
    let fleet = Fleet::embedded().await;
    let server = server(&fleet);
    let as_token = |token: &str| Server { url: server.url.clone(), token: token.to_string() };
    let ticker = example("ticker.wasm");
    assert!(edgectl(&server, &["create", "namespace", "team-a"]).await.ok);
    let out = edgectl(&server, &["create", "credential", "viewer", "--role", "view"]).await;
    assert!(out.ok, "{}", out.stderr);
    let view = as_token(out.stdout.lines().last().unwrap().trim());
    assert!(view.token.starts_with("ecr_"), "{}", out.stdout);
    let out =
        edgectl(&server, &["create", "credential", "dev-a", "-n", "team-a", "--role", "edit", "--ttl", "1h"]).await;
    assert!(out.ok && out.stdout.contains("namespace team-a"), "{}", out.stderr);
    let edit = as_token(out.stdout.lines().last().unwrap().trim());

    assert!(edgectl(&view, &["get", "workloads", "-A"]).await.ok);
    let out = edgectl(&view, &["deploy", "v", &ticker]).await;
    assert!(one_line_error(&out).contains("viewer (view)"), "{}", out.stderr);
    let out = edgectl(&edit, &["-n", "team-a", "deploy", "t", &ticker]).await;
    assert!(out.ok, "{}", out.stderr);
    let out = edgectl(&edit, &["deploy", "t", &ticker]).await;
    assert!(one_line_error(&out).contains("namespace default"), "{}", out.stderr);

    let out = edgectl(&server, &["get", "credentials"]).await;
    assert!(out.ok && out.stdout.contains("dev-a") && out.stdout.contains("team-a"), "{}", out.stdout);
    assert!(!out.stdout.contains(&edit.token), "never a token");
    // The trail is written just after each reply: ask until the refused deploy is there (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    let audit = loop {
        let out = edgectl(&server, &["events", "--audit"]).await;
        if out.stdout.contains("may not change namespace default") || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(audit.ok && audit.stdout.contains("PUT /v1/namespaces/team-a/workloads/t"), "{}", audit.stdout);
    assert!(audit.stdout.contains("dev-a") && audit.stdout.contains("403"), "{}", audit.stdout);
    assert!(edgectl(&server, &["delete", "credential", "viewer"]).await.ok);
    let out = edgectl(&view, &["get", "workloads"]).await;
    assert!(one_line_error(&out).contains("unknown credential"), "{}", out.stderr);
    let out = edgectl(&as_token(""), &["get", "workloads"]).await;
    assert!(one_line_error(&out).contains("no credential"), "{}", out.stderr);
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

/// What the controller holds for `ns/name`, as JSON.
async fn workload_json(fleet: &Fleet, ns: &str, name: &str) -> serde_json::Value {
    fleet.api.get(&format!("/v1/namespaces/{ns}/workloads/{name}")).await
}

/// The fields of a workload's spec (everything but status).
fn spec_of(w: &serde_json::Value) -> serde_json::Value {
    let keys =
        ["module", "replicas", "cpu_millis", "memory_bytes", "env", "args", "restart", "on_node_loss", "selector"];
    serde_json::Value::Object(keys.iter().map(|k| (k.to_string(), w[*k].clone())).collect())
}

fn ok(out: Out) -> String {
    assert!(out.ok, "edgectl failed: {}{}", out.stderr, out.stdout);
    out.stdout
}

const MANIFESTS: &str = "apiVersion: edge/v1
kind: Workload
metadata:
  name: tick
  namespace: team-a
spec:
  module: ../ticker.wasm
  replicas: 2
  nodeSelector:
    role: edge
  resources:
    memory: 16Mi
  env:
    - name: LEVEL
      value: debug
---
apiVersion: edge/v1
kind: Namespace
metadata:
  name: team-a
spec:
  quota: {instances: 4}
---
apiVersion: edge/v1
kind: Workload
metadata: {name: tock}
spec: {module: ../ticker.wasm}
";

/// Manifests end to end: a multi-document file is created, then unchanged; `get -o yaml | apply -f -` is a no-op;
/// `scale` keeps the selector and `set env` changes only the environment; `diff` and `--dry-run` show and check
/// without storing; a re-applied manifest keeps a restart; `delete -f` removes what the file names.
#[tokio::test(flavor = "multi_thread")]
async fn manifests_apply_diff_and_delete_and_edits_touch_only_what_they_name() {
    let mut fleet = Fleet::embedded().await;
    fleet.start_agent("edge-1");
    fleet.start_agent("edge-2");
    fleet.wait_ready_nodes(2).await;
    let server = server(&fleet);
    for node in ["edge-1", "edge-2"] {
        ok(edgectl(&server, &["label", "node", node, "role=edge"]).await);
    }
    let dir = fleet.dir.path().join("manifests");
    std::fs::create_dir_all(dir.join("apps")).unwrap();
    std::fs::copy(example("ticker.wasm"), dir.join("ticker.wasm")).unwrap();
    let file = dir.join("apps").join("tick.yaml");
    std::fs::write(&file, MANIFESTS).unwrap();
    let file = file.display().to_string();

    // Created (the namespace first, though it is the second document), then unchanged.
    let out = ok(edgectl(&server, &["apply", "-f", &file]).await);
    assert_eq!(out, "namespace/team-a created\nworkload/tick created\nworkload/tock created\n");
    edge_tests::eventually(Duration::from_secs(30), "tick Running twice", || async {
        let w = workload_json(&fleet, "team-a", "tick").await;
        let running = w["instances"].as_array()?.iter().filter(|i| i["state"] == "Running").count();
        (running == 2).then_some(())
    })
    .await;
    let out = ok(edgectl(&server, &["apply", "-f", &dir.join("apps").display().to_string()]).await);
    assert_eq!(out, "namespace/team-a unchanged\nworkload/tick unchanged\nworkload/tock unchanged\n");
    let out = edgectl(&server, &["diff", "-f", &file]).await;
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""), "{}", out.stderr);

    // A manifest printed by `get` reads back as unchanged.
    let yaml = ok(edgectl(&server, &["-n", "team-a", "get", "workload", "tick", "-o", "yaml"]).await);
    assert!(yaml.contains("role: edge") && yaml.contains("replicas: 2"), "{yaml}");
    let out = ok(edgectl_fed(&server, &["apply", "-f", "-"], Some(yaml)).await);
    assert_eq!(out, "workload/tick unchanged\n");

    // Scale changes the replica count only.
    let before = spec_of(&workload_json(&fleet, "team-a", "tick").await);
    let out = ok(edgectl(&server, &["-n", "team-a", "scale", "tick", "--replicas", "3"]).await);
    assert!(out.starts_with("workload/tick scaled (revision 1)\n  replicas: 2 → 3\n"), "{out}");
    let mut want = before.clone();
    want["replicas"] = 3.into();
    assert_eq!(spec_of(&workload_json(&fleet, "team-a", "tick").await), want, "scale kept everything else");

    // Set env changes the environment only.
    let out = ok(edgectl(&server, &["-n", "team-a", "set", "env", "tick", "LEVEL=info", "EXTRA=1"]).await);
    assert!(out.contains("  env.LEVEL: debug → info\n  env.EXTRA: (unset) → 1\n"), "{out}");
    want["env"] = serde_json::json!([["LEVEL", "info"], ["EXTRA", "1"]]);
    assert_eq!(spec_of(&workload_json(&fleet, "team-a", "tick").await), want, "set env kept everything else");
    let out = ok(edgectl(&server, &["-n", "team-a", "rollout", "history", "tick"]).await);
    assert!(out.contains("2 (current)") && out.contains("env.LEVEL debug → info"), "{out}");

    // Diff shows the way back, field by field, and exits 1; a dry run checks it and stores nothing.
    let out = edgectl(&server, &["diff", "-f", &file]).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    for line in [
        "--- workload/tick (live, namespace team-a)",
        "-  spec.replicas: 3",
        "+  spec.replicas: 2",
        "-  spec.env.EXTRA: 1",
    ] {
        assert!(out.stdout.contains(line), "{line:?} in\n{}", out.stdout);
    }
    let out = ok(edgectl(&server, &["apply", "--dry-run", "-f", &file]).await);
    assert!(out.contains("workload/tick configured (server dry run)"), "{out}");
    assert_eq!(spec_of(&workload_json(&fleet, "team-a", "tick").await), want, "a dry run stores nothing");
    // The controller's checks run in a dry run: team-a's quota is 4 instances.
    let over = dir.join("apps").join("over.yaml");
    std::fs::write(&over, MANIFESTS.replace("replicas: 2", "replicas: 9")).unwrap();
    let out = edgectl(&server, &["apply", "--dry-run", "-f", &over.display().to_string()]).await;
    let err = one_line_error(&out);
    assert!(err.contains("over.yaml:1:1: workload/tick: ") && err.contains("quota"), "{err}");

    // A restart is a new revision; re-applying the manifest restores its fields and keeps the restart.
    let out = ok(edgectl(&server, &["-n", "team-a", "rollout", "restart", "tick"]).await);
    assert!(out.starts_with("workload/tick restarted (revision 3)\n  env.EDGE_RESTARTED_AT: (unset) → "), "{out}");
    let out = ok(edgectl(&server, &["apply", "-f", &file]).await);
    assert!(out.contains("workload/tick configured\n"), "{out}");
    let w = workload_json(&fleet, "team-a", "tick").await;
    assert_eq!(w["replicas"], 2);
    let env = w["env"].as_array().unwrap();
    assert_eq!(env[0], serde_json::json!(["LEVEL", "debug"]));
    assert!(env.len() == 2 && env[1][0] == "EDGE_RESTARTED_AT", "{env:?}");
    assert!(ok(edgectl(&server, &["apply", "-f", &file]).await).contains("workload/tick unchanged"));

    // A re-deploy keeps what it does not name, and says what changed.
    let ticker = example("ticker.wasm");
    ok(edgectl(&server, &["deploy", "tock", &ticker, "--selector", "role=edge", "--memory", "16Mi"]).await);
    let out = ok(edgectl(&server, &["deploy", "tock", &ticker, "--replicas", "2"]).await);
    assert!(out.contains("deployed (revision 2, 2 replicas)\n  replicas: 1 → 2\n"), "{out}");
    let w = workload_json(&fleet, "default", "tock").await;
    assert_eq!((w["selector"]["role"].as_str(), w["memory_bytes"].as_u64()), (Some("edge"), Some(16 << 20)));

    // Errors in a manifest name file, line, column and field, and nothing is applied.
    let bad = dir.join("apps").join("bad.yaml");
    std::fs::write(&bad, MANIFESTS.replace("memory: 16Mi", "memory: 16MB")).unwrap();
    let out = edgectl(&server, &["apply", "-f", &bad.display().to_string()]).await;
    assert!(
        one_line_error(&out).ends_with("bad.yaml:12:5: spec.resources.memory: \"16MB\" is not a quantity (try 16Mi)"),
        "{}",
        out.stderr
    );

    let out = ok(edgectl(&server, &["delete", "-f", &file]).await);
    assert_eq!(
        out,
        "workload/tock deleted\nnamespace/team-a not deleted (the controller cannot delete namespaces yet)\nworkload/tick deleted\n"
    );
    let out = ok(edgectl(&server, &["get", "workloads", "-A", "-o", "json"]).await);
    assert_eq!(out.trim(), "[]");
    // Each workload not deleted is one `error:` line.
    let out = edgectl(&server, &["delete", "-f", &file]).await;
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(!out.ok && lines.len() == 2 && lines.iter().all(|l| l.starts_with("error: ")), "{}", out.stderr);
    assert!(
        lines[0].ends_with("tick.yaml:24:1: workload/tock: workload tock not found in namespace default"),
        "{}",
        out.stderr
    );
    assert!(lines[1].contains("workload/tick: workload tick not found in namespace team-a"), "{}", out.stderr);
    ok(edgectl(&server, &["delete", "-f", &file, "--ignore-not-found"]).await);
    fleet.stop().await;
}

/// Join tokens and node removal: `token create` ends with the token alone (what scripts take with `tail -n 1`),
/// `token list` shows it without its secret, `token delete` and `delete node` answer in one line, and a Ready
/// node is only deleted with --force.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_created_listed_and_deleted_and_a_ready_node_needs_force() {
    let mut fleet = Fleet::embedded().await;
    let server = server(&fleet);

    assert_eq!(ok(edgectl(&server, &["token", "list"]).await), "No join tokens.\n");
    assert_eq!(ok(edgectl(&server, &["token", "ls", "-o", "json"]).await).trim(), "[]");

    let out = edgectl(&server, &["token", "create", "--uses", "0"]).await;
    assert_eq!(out.code, Some(2), "a usage error");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("error: ") && out.stderr.contains("at least 1 use"), "{}", out.stderr);

    let args = ["token", "create", "--ttl", "2h", "--uses", "2", "--node", "edge-9", "--label", "zone=a"];
    let out = ok(edgectl(&server, &args).await);
    let first = out.lines().next().unwrap();
    assert!(first.starts_with("token/") && first.contains("created: 2 uses, node edge-9, expires in 2h"), "{out}");
    assert!(first.ends_with(", labels zone=a"), "{out}");
    let token = out.lines().last().unwrap().split_whitespace().last().unwrap().to_string();
    assert!(token.starts_with("EJ1"), "{out}");
    let id = first.trim_start_matches("token/").split(' ').next().unwrap().to_string();

    let list = ok(edgectl(&server, &["token", "list"]).await);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["ID", "USES-LEFT", "EXPIRES", "NODE", "LABELS", "JOINED"], "{list}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], id, "{list}");
    assert_eq!(&row[1..], ["2/2", row[2], "edge-9", "zone=a", "-"], "{list}");
    assert!(row[2] == "119m" || row[2] == "120m", "expires in about 2h: {list}");
    assert!(!list.contains(&token), "the secret is never listed");
    let json: serde_json::Value = serde_json::from_str(&ok(edgectl(&server, &["token", "list", "-o", "json"]).await))
        .expect("token list -o json");
    assert_eq!(json[0]["id"], id.as_str());

    assert_eq!(ok(edgectl(&server, &["token", "delete", &id]).await), format!("token/{id} deleted\n"));
    one_line_error(&edgectl(&server, &["token", "delete", &id]).await);
    assert_eq!(ok(edgectl(&server, &["token", "list"]).await), "No join tokens.\n");

    one_line_error(&edgectl(&server, &["delete", "node", "nope"]).await);
    ok(edgectl(&server, &["delete", "node", "nope", "--ignore-not-found"]).await);
    let out = edgectl(&server, &["delete", "tick", "--force"]).await;
    assert_eq!(one_line_error(&out), "error: --force is for `delete node NAME` only");

    fleet.start_agent("edge-1");
    fleet.wait_ready_nodes(1).await;
    let nodes = ok(edgectl(&server, &["get", "nodes", "-o", "wide"]).await);
    assert!(nodes.lines().next().unwrap().ends_with("JOINED"), "{nodes}");
    // The test fleet's agents join with tokens made for them: JOINED is an age.
    assert!(nodes.lines().nth(1).unwrap().ends_with('s'), "edge-1 joined: {nodes}");
    let out = edgectl(&server, &["delete", "node", "edge-1"]).await;
    assert!(one_line_error(&out).contains("--force"), "{}", out.stderr);
    assert_eq!(ok(edgectl(&server, &["delete", "node", "edge-1", "--force"]).await), "node/edge-1 deleted\n");
    fleet.stop().await;
}
