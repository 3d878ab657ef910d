//! Contexts end to end, with a temporary `$XDG_CONFIG_HOME`: `config set-context`, `use-context`,
//! `get-contexts`, `current-context`, and which server a command then talks to (`--server` > `EDGE_SERVER` >
//! the current context > the default), seen in the error naming the controller it could not reach (no controller
//! runs: every address is a closed port).

use std::path::Path;
use std::process::Command;

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn edgectl(config_home: &Path, env_server: Option<&str>, args: &[&str]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgectl"));
    cmd.args(args).env("XDG_CONFIG_HOME", config_home).env_remove("EDGE_SERVER");
    if let Some(s) = env_server {
        cmd.env("EDGE_SERVER", s);
    }
    let out = cmd.output().expect("run edgectl");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn contexts_choose_the_server() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (a, b, e) = (closed_port(), closed_port(), closed_port());

    let out = edgectl(h, None, &["config", "get-contexts"]);
    assert!(out.ok && out.stdout.is_empty() && out.stderr.contains("No contexts"), "{}", out.stderr);
    let out = edgectl(h, None, &["config", "current-context"]);
    assert!(!out.ok && out.stderr.lines().count() == 1, "{}", out.stderr);

    let out = edgectl(h, None, &["config", "set-context", "lab", "--server", &format!("127.0.0.1:{a}")]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "Context \"lab\" created.\n");
    let out = edgectl(h, None, &["config", "set-context", "other", "--server", &format!("http://127.0.0.1:{b}")]);
    assert!(out.ok, "{}", out.stderr);
    let out = edgectl(h, None, &["config", "use-context", "lab"]);
    assert_eq!(out.stdout, "Switched to context \"lab\".\n", "{}", out.stderr);
    let out = edgectl(h, None, &["config", "current-context"]);
    assert_eq!(out.stdout, "lab\n");
    let out = edgectl(h, None, &["config", "get-contexts"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("CURRENT   NAME    SERVER"), "{}", out.stdout);
    assert!(lines[1].starts_with("*         lab     http://127.0.0.1:"), "{}", out.stdout);

    let file = h.join("edge").join("config.yaml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    // The current context, then --context, then EDGE_SERVER, then --server.
    let reach = |env: Option<&str>, args: &[&str]| {
        let out = edgectl(h, env, args);
        assert!(!out.ok && out.stderr.lines().count() == 1, "{args:?}: {}", out.stderr);
        out.stderr
    };
    assert!(reach(None, &["get", "nodes"]).contains(&format!(":{a} ")));
    assert!(reach(None, &["--context", "other", "get", "nodes"]).contains(&format!(":{b} ")));
    let env = format!("127.0.0.1:{e}");
    assert!(reach(Some(&env), &["get", "nodes"]).contains(&format!(":{e} ")));
    let flag = format!("127.0.0.1:{b}");
    assert!(reach(Some(&env), &["--server", &flag, "get", "nodes"]).contains(&format!(":{b} ")));
    let err = reach(None, &["--context", "nope", "get", "nodes"]);
    assert!(err.contains("\"nope\" is not a context") && err.contains("lab, other"), "{err}");

    let out = edgectl(h, None, &["config", "use-context", "nope"]);
    assert!(!out.ok && out.stderr.contains("no context exists with the name \"nope\""), "{}", out.stderr);

    // A broken file: one line naming file and line, only for the commands that need it.
    std::fs::write(&file, "current-context: lab\ncontexts: 3\n").unwrap();
    let err = reach(None, &["get", "nodes"]);
    assert!(err.contains(&format!("{}:2:11: contexts: expected a list", file.display())), "{err}");
    assert!(reach(None, &["--server", &flag, "get", "nodes"]).contains("cannot reach"), "--server needs no file");
    assert!(edgectl(h, None, &["completion", "bash"]).ok, "completion needs no server");
    assert!(edgectl(h, None, &["version", "--client"]).ok, "version --client needs no server");
}

#[test]
fn no_config_file_means_the_default_server() {
    let home = tempfile::tempdir().unwrap();
    let out = edgectl(home.path(), None, &["--server", "", "get", "nodes"]);
    // An empty --server is not a server: the default (nothing listens there in tests, or a dev cluster does).
    assert!(out.ok || out.stderr.contains("127.0.0.1:7700"), "{}", out.stderr);
    assert!(!home.path().join("edge").exists(), "reading never creates the file");
}
