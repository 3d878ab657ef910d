//! The fuzz corpus against a live controller: every API seed and every hostile input of `fuzz/` (giant numbers,
//! long keys, deep nesting, binary garbage) is sent as the JSON body of every endpoint that takes one. Each is
//! applied or refused with a 4xx naming the problem in a bounded message, never a 5xx; and afterwards the
//! controller answers, its node is Ready and the workload deployed before runs as it did.

use std::path::Path;

use edge_tests::{example, Fleet};
use reqwest::Method;
use serde_json::Value;

/// Longest refusal body the API writes (`api/error.rs` caps messages at 1,024 characters), with JSON framing.
const MAX_REFUSAL: usize = 1_200;

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_bodies_from_the_fuzz_corpus_are_applied_or_refused_never_a_5xx() {
    let mut f = Fleet::embedded().await;
    f.start_agent("a");
    f.wait_ready_nodes(1).await;
    let api = f.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    api.deploy("keep", &sha, 1).await;
    let before = api.wait_running("keep", 1).await;

    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut bodies = files(&fuzz.join("corpus/api"));
    bodies.extend(files(&fuzz.join("hostile")));
    assert!(bodies.len() > 30, "the corpus is missing: {} files", bodies.len());
    let endpoints = [
        (Method::PUT, "/v1/namespaces/default/workloads/hostile"),
        (Method::POST, "/v1/namespaces"),
        (Method::POST, "/v1/tokens"),
        (Method::POST, "/v1/credentials"),
        (Method::PUT, "/v1/nodes/a/labels"),
    ];
    let mut refused = 0;
    for (name, body) in &bodies {
        for (method, path) in &endpoints {
            let (status, text) = api.send_raw_json(method.clone(), path, body.clone()).await;
            assert!(status < 500, "{method} {path} with {name}: {status} {text}");
            if status >= 400 {
                refused += 1;
                assert!(text.len() <= MAX_REFUSAL, "{method} {path} with {name}: a {}-byte refusal", text.len());
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let message = v["error"].as_str().unwrap_or_default();
                assert!(!message.is_empty(), "{method} {path} with {name}: {status} without a message: {text}");
            }
        }
    }
    assert!(refused > bodies.len(), "almost nothing refused ({refused}): the bodies did not reach the parsers");

    // Nothing lost: the controller answers, the node is Ready, the workload runs where it ran.
    f.wait_ready_nodes(1).await;
    let after = api.wait_running("keep", 1).await;
    assert_eq!(after[0]["node"], before[0]["node"]);
    f.stop().await;
}
