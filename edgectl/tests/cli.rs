//! The `edgectl` binary against a real in-process controller: exit codes and one-line errors.

use std::net::SocketAddr;
use std::process::Command;

use edge_controller::{BrokerMode, ControllerConfig};

fn edgectl(server: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgectl"))
        .arg("--server")
        .arg(server)
        .args(args)
        .output()
        .expect("run edgectl");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_bad_modules_and_unknown_names_with_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerMode::Embedded(SocketAddr::from(([127, 0, 0, 1], free_port())));
    let c = edge_controller::start(ControllerConfig::new(dir.path().join("c"), "127.0.0.1:0".parse().unwrap(), broker))
        .await
        .unwrap();
    let server = format!("http://{}", c.api_addr);
    let bad = dir.path().join("x.wasm");
    std::fs::write(&bad, b"definitely not wasm, just some bytes").unwrap();
    let bad_path = bad.display().to_string();

    let s = server.clone();
    let (ok, _, err) = tokio::task::spawn_blocking(move || edgectl(&s, &["deploy", "x", &bad_path])).await.unwrap();
    assert!(!ok, "a bad module must fail the deploy");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: ") && err.contains("is not a WebAssembly module"), "{err}");

    let s = server.clone();
    let (ok, _, err) = tokio::task::spawn_blocking(move || edgectl(&s, &["logs", "nope"])).await.unwrap();
    assert!(!ok);
    assert_eq!(err.trim(), "error: workload nope not found in namespace default");

    let (ok, out, _) =
        tokio::task::spawn_blocking(move || edgectl(&server, &["get", "workloads", "-o", "json"])).await.unwrap();
    assert!(ok);
    assert_eq!(out.trim(), "[]", "nothing was stored");

    let (ok, _, err) = tokio::task::spawn_blocking(|| edgectl("http://127.0.0.1:9", &["get", "nodes"])).await.unwrap();
    assert!(!ok);
    assert!(err.starts_with("error: cannot reach the controller"), "{err}");
    c.shutdown().await;
}
