//! `edgectl` against a controller serving HTTPS: it pins the cluster from `--certificate-authority` (the
//! controller's `ca.crt` or its fingerprint) or the context, refuses a controller of another cluster, and says
//! what to do when it has no pin at all.

use std::process::Command;

use edge_controller::server::{Tls, CA_FILE};
use edge_tests::Fleet;

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the real binary with `args` (off the runtime's threads: the controller answers from this process), with
/// an empty configuration directory so no context of the user's is read.
async fn edgectl(config_home: &std::path::Path, args: Vec<String>) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgectl"));
    cmd.env("XDG_CONFIG_HOME", config_home).env("HOME", config_home).env_remove("EDGE_SERVER").env_remove("EDGE_CA");
    cmd.env_remove("EDGE_TOKEN").env_remove("EDGE_CONTEXT").args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run edgectl")).await.unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

async fn https_fleet() -> Fleet {
    Fleet::embedded_with(|c| c.api_tls = Tls::On).await
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edgectl_pins_the_cluster_and_refuses_another() {
    let ours = https_fleet().await;
    let theirs = https_fleet().await;
    let home = tempfile::tempdir().unwrap();
    let c = ours.controller.as_ref().unwrap();
    let url = format!("https://{}", c.api_addr);
    let token = c.admin_token.clone().unwrap();
    let our_ca = ours.dir.path().join("controller").join(CA_FILE).display().to_string();
    let their_ca = theirs.dir.path().join("controller").join(CA_FILE).display().to_string();
    let base = |extra: &[&str]| {
        let mut args = strings(&["--server", &url, "--token", &token]);
        args.extend(strings(extra));
        args
    };

    // Pinned by the CA file, and by the fingerprint: answered.
    let out = edgectl(home.path(), base(&["--certificate-authority", &our_ca, "get", "nodes"])).await;
    assert!(out.ok, "pinned by ca.crt: {}", out.stderr);
    let out = edgectl(home.path(), base(&["--certificate-authority", &c.fingerprint, "get", "nodes"])).await;
    assert!(out.ok, "pinned by fingerprint: {}", out.stderr);

    // Pinned to another cluster: refused, and the token never reaches the server.
    let out = edgectl(home.path(), base(&["--certificate-authority", &their_ca, "get", "nodes"])).await;
    assert!(!out.ok, "a controller of another cluster was believed: {}", out.stdout);
    assert!(out.stderr.contains("certificate is not from this cluster"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);

    // No pin at all: refused, saying how to pin.
    let out = edgectl(home.path(), base(&["get", "nodes"])).await;
    assert!(!out.ok, "an unpinned HTTPS controller was believed: {}", out.stdout);
    assert!(out.stderr.contains("--certificate-authority"), "{}", out.stderr);

    // A context carrying the pin: answered with no flags; a context pinned to another cluster refuses.
    let set = |name: &str, ca: &str| {
        strings(&["config", "set-context", name, "--server", &url, "--token", &token, "--certificate-authority", ca])
    };
    assert!(edgectl(home.path(), set("ours", &our_ca)).await.ok);
    assert!(edgectl(home.path(), set("theirs", &their_ca)).await.ok);
    let out = edgectl(home.path(), strings(&["--context", "ours", "get", "nodes"])).await;
    assert!(out.ok, "context with the pin: {}", out.stderr);
    let out = edgectl(home.path(), strings(&["--context", "theirs", "get", "nodes"])).await;
    assert!(!out.ok, "a context pinned to another cluster was answered: {}", out.stdout);
    ours.stop().await;
    theirs.stop().await;
}
