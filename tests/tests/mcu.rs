//! Microcontroller nodes: the firmware core on the host (`edge-mcu-sim`) joins a real controller through its
//! embedded broker with a join token, is Ready with its board and engine, runs an MCU-ABI workload whose log
//! lines reach the API, is never given a WASI workload (which stays Pending, saying why), and after a reboot
//! with the controller gone runs its persisted spec from flash.

use std::time::Duration;

use edge_tests::eventually;
use edge_tests::proc::{binary, ControllerProc, Proc, SECURE};
use serde_json::Value;

fn sim_args(node: &str, port: u16, data: &std::path::Path, join: Option<&str>) -> Vec<String> {
    let mut a = vec![
        "--node".to_string(),
        node.into(),
        "--broker".into(),
        format!("mqtt://127.0.0.1:{port}"),
        "--data".into(),
        data.display().to_string(),
    ];
    if let Some(t) = join {
        a.extend(["--join".to_string(), t.to_string()]);
    }
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcu_node_joins_runs_mcu_modules_only_and_runs_its_spec_offline() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let ctl = ControllerProc::start("controller", &dir.path().join("ctl"), None, &[SECURE], &logs);
    let api = ctl.client();
    let token = api.join_token("mcu-1").await;
    let data = dir.path().join("mcu");
    let sim =
        Proc::spawn("mcu", &binary("edge-mcu-sim"), &sim_args("mcu-1", ctl.mqtt_port(), &data, Some(&token)), &logs);

    let node: Value = eventually(Duration::from_secs(30), "mcu-1 Ready", || {
        let api = api.clone();
        async move {
            let nodes = api.get("/v1/nodes").await;
            nodes.as_array()?.iter().find(|n| n["name"] == "mcu-1" && n["status"] == "Ready").cloned()
        }
    })
    .await;
    assert_eq!((node["board"].as_str(), node["engine"].as_str()), (Some("pico-2-w"), Some("wasmi")), "{node}");
    assert!(node["joined"].is_string(), "joined with its token: {node}");
    assert_eq!(node["labels"]["board"], "pico-2-w");

    // The MCU-ABI example lands on it (its memory is what the module needs, not the 32Mi asked) and logs.
    let blink = api.upload(edge_tests::example("mcu-blink.wasm")).await;
    api.deploy("blink", &blink, 1).await;
    let running = api.wait_running("blink", 1).await;
    assert_eq!(running[0]["node"], "mcu-1");
    let lines: Vec<Value> = eventually(Duration::from_secs(30), "blink's lines through the API", || {
        let api = api.clone();
        async move {
            let lines = api.logs("blink").await;
            (lines.iter().filter(|l| l["line"].as_str().is_some_and(|t| t.starts_with("blink "))).count() >= 2)
                .then_some(lines)
        }
    })
    .await;
    assert!(lines.iter().any(|l| l["line"].as_str().is_some_and(|t| t.contains("led=on"))), "{lines:?}");

    // A WASI module is never placed on it, and says why, naming the engine.
    let ticker = api.upload(edge_tests::example("ticker.wasm")).await;
    api.deploy("tick", &ticker, 1).await;
    let reason: String = eventually(Duration::from_secs(10), "tick Pending with a reason", || {
        let api = api.clone();
        async move {
            let w = api.workload("tick").await;
            let i = &w["instances"][0];
            (i["state"] == "Pending").then(|| i["reason"].as_str().map(str::to_string)).flatten()
        }
    })
    .await;
    assert!(reason.contains("wasmi") && reason.contains("WASI"), "{reason}");

    // Reboot with the controller (and its broker) gone: the stored, signed spec runs from flash.
    drop(ctl);
    drop(sim);
    let rebooted = Proc::spawn("mcu-rebooted", &binary("edge-mcu-sim"), &sim_args("mcu-1", 1, &data, None), &logs);
    rebooted.wait_for_output("resuming the stored spec", Duration::from_secs(10));
    rebooted.wait_for_output("blink 2 led=off", Duration::from_secs(10));
    assert!(rebooted.output().contains("cannot reach the broker"), "{}", rebooted.output());
}
