//! The kubectl-shaped outputs against a real in-process controller and agent: `get pods` and its short names,
//! `events` as sentences, `logs` by instance id with `--tail` and `--timestamps`, `version`.

use std::process::Command;
use std::time::Duration;

use edge_tests::{eventually, Fleet};

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// The controller's admin credential, which every command sends (one controller per test binary run).
static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn edgectl(server: &str, args: &[&str]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgectl"));
    // No scheme: `--server HOST:PORT` is http.
    cmd.arg("--server").arg(server).args(args);
    if let Some(token) = TOKEN.get() {
        cmd.env("EDGE_TOKEN", token);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run edgectl")).await.unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn ok(out: Out) -> String {
    assert!(out.ok, "edgectl failed: {}{}", out.stderr, out.stdout);
    out.stdout
}

fn example(name: &str) -> String {
    format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_events_logs_and_version_read_as_kubectl_users_expect() {
    let mut fleet = Fleet::embedded_with(|c| c.min_ready = Duration::from_millis(200)).await;
    fleet.start_agent("edge-1");
    fleet.wait_ready_nodes(1).await;
    let server = fleet.controller.as_ref().unwrap().api_addr.to_string();
    let _ = TOKEN.set(fleet.controller.as_ref().unwrap().admin_token.clone().expect("an admin credential"));
    let wait = ["--wait", "--wait-timeout", "60s"];
    ok(edgectl(&server, &[&["deploy", "tick", &example("ticker.wasm"), "--replicas", "2"][..], &wait].concat()).await);
    ok(edgectl(&server, &[&["deploy", "once", &example("hello.wasm"), "--restart", "never"][..], &wait].concat())
        .await);

    for kind in ["pods", "po", "pod", "instances", "instance"] {
        let pods = ok(edgectl(&server, &["get", kind]).await);
        let lines: Vec<&str> = pods.lines().collect();
        assert!(
            lines[0].starts_with("NAME ") && lines[0].ends_with("READY   STATUS      RESTARTS   AGE   NODE"),
            "{pods}"
        );
        assert_eq!(lines.len(), 4, "{pods}");
        assert!(lines.iter().filter(|l| l.starts_with("tick-") && l.contains(" Running ")).count() == 2, "{pods}");
        assert!(lines.iter().any(|l| l.starts_with("once-") && l.contains(" Succeeded ")), "{pods}");
    }
    let names = ok(edgectl(&server, &["get", "po", "-o", "name"]).await);
    let tick_id = names.lines().find_map(|l| l.strip_prefix("instance/tick-")).map(|s| format!("tick-{s}")).unwrap();
    let one = ok(edgectl(&server, &["get", "pod", &tick_id, "-o", "json"]).await);
    let v: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!((v["workload"].as_str(), v["id"].as_str()), (Some("tick"), Some(tick_id.as_str())));
    let wl = ok(edgectl(&server, &["get", "wl"]).await);
    assert!(wl.starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE\n"), "{wl}");
    assert!(wl.contains("\ntick   2/2     2            2"), "{wl}");

    let events = ok(edgectl(&server, &["events"]).await);
    assert!(events.starts_with("LAST SEEN   TYPE     OBJECT"), "{events}");
    assert!(!events.contains('{') && events.contains("Started") && events.contains("Exited with code 0"), "{events}");
    let for_tick = ok(edgectl(&server, &["events", "--for", "workload/tick"]).await);
    assert!(!for_tick.contains("once-") && for_tick.contains(&tick_id), "{for_tick}");
    let json = ok(edgectl(&server, &["events", "--for", "node/edge-1", "-o", "json"]).await);
    let list: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert!(list.iter().all(|e| e["node"] == "edge-1" && (e["type"] == "Normal" || e["type"] == "Warning")), "{json}");

    // An instance's own lines, bare; the workload's, prefixed.
    let server2 = server.clone();
    let id = tick_id.clone();
    let tail = eventually(Duration::from_secs(20), "two lines of one instance", || {
        let (server, id) = (server2.clone(), id.clone());
        async move {
            let out = ok(edgectl(&server, &["logs", &id, "--tail", "2", "--timestamps"]).await);
            (out.lines().count() == 2).then_some(out)
        }
    })
    .await;
    for line in tail.lines() {
        let (at, text) = line.split_once(' ').unwrap();
        assert!(at.len() == "2025-06-01T12:00:00.000Z".len() && at.ends_with('Z'), "{tail}");
        assert!(text.starts_with("tick "), "{tail}");
    }
    let all = ok(edgectl(&server, &["logs", "tick", "--tail", "1"]).await);
    assert!(all.lines().count() == 1 && all.starts_with("[tick-"), "{all}");
    assert_eq!(
        ok(edgectl(&server, &["logs", "once", "--since", "1h"]).await),
        format!("[{}] Hello, world!\n", {
            let pods = ok(edgectl(&server, &["get", "pods", "-o", "name"]).await);
            pods.lines().find_map(|l| l.strip_prefix("instance/once-")).map(|s| format!("once-{s}")).unwrap()
        })
    );

    let version = ok(edgectl(&server, &["version"]).await);
    assert!(version.starts_with("Client Version: ") && version.contains("\nServer Version: "), "{version}");
    assert!(version.contains("\nProtocol: "), "{version}");
    fleet.stop().await;
}
