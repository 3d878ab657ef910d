//! The controller binary under SIGKILL: every API write it acknowledged is in its store after a restart.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind")
}

struct Controller {
    child: Child,
    base: String,
}

impl Controller {
    async fn start(data: &Path) -> Controller {
        let api = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_edge-controller"))
            .args(["--data", &data.display().to_string(), "--api", &format!("127.0.0.1:{api}")])
            .args(["--mqtt-listen", &format!("127.0.0.1:{}", free_port())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start edge-controller");
        let c = Controller { child, base: format!("http://127.0.0.1:{api}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{}/healthz", c.base)).await.is_err() {
            assert!(Instant::now() < deadline, "controller API not up within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Controller::start(dir.path()).await;
    let http = reqwest::Client::new();
    let module = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello.wasm")).unwrap();
    let up: serde_json::Value =
        http.post(format!("{}/v1/modules", c.base)).body(module).send().await.unwrap().json().await.unwrap();
    let sha = up["sha256"].as_str().unwrap().to_string();

    // Four writers stream 1,000 deploys between them; the controller is SIGKILLed part-way.
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, base, sha, acked) = (http.clone(), c.base.clone(), sha.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..250 {
                let name = format!("w{w}-{i}");
                let body = serde_json::json!({"module": sha, "replicas": 1, "cpu_millis": 10, "memory_bytes": 1 << 20});
                let url = format!("{base}/v1/namespaces/default/workloads/{name}");
                match http.put(url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        acked.lock().unwrap().insert(name);
                    }
                    Ok(r) => panic!("write {name} refused: {}", r.status()),
                    Err(_) => return, // The controller is gone.
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 300 {
        assert!(Instant::now() < deadline, "fewer than 300 writes acknowledged within 60 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _ = c.child.kill();
    let _ = c.child.wait();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() < 1000, "the kill came too late to test anything");

    let c = Controller::start(dir.path()).await;
    let all: serde_json::Value =
        http.get(format!("{}/v1/workloads", c.base)).send().await.unwrap().json().await.unwrap();
    let stored: HashSet<String> =
        all.as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap().to_string()).collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !stored.contains(*n)).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost after SIGKILL: {lost:?}", lost.len());
}
