//! Bounded input, end to end over HTTP: every bound of a deploy is refused with one clear line and nothing is
//! stored; the deploy that once cut a node off (a 600 KB env value in its retained spec) is refused while the
//! node stays Ready and keeps receiving specs; the largest deploy admission accepts reaches its node and runs;
//! JSON bodies stop at 1 MiB while module uploads do not; and `GET /v1/workloads` comes back in pages, whole.

use std::time::Duration;

use edge_tests::{eventually, example, Api, Fleet};
use reqwest::Method;
use serde_json::{json, Value};

/// The limits as `controller/src/api/bounds.rs` documents them (the test states them on its own, so a change
/// there is a change here too).
const MIB: usize = 1 << 20;

async fn fleet_with_node(memory: u64) -> Fleet {
    let mut f = Fleet::embedded().await;
    let (host, port) = f.broker_addr();
    f.start_agent_with("a", &host, port, |c| c.memory_bytes = Some(memory));
    f.wait_ready_nodes(1).await;
    f
}

/// A plain HTTP client of the fleet's controller with its credential, for what `Api` does not expose (headers,
/// raw bodies).
struct Raw {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Raw {
    fn of(f: &Fleet) -> Raw {
        let c = f.controller.as_ref().expect("a controller");
        assert!(!c.api_tls, "the test controller's API is plain HTTP on loopback");
        edge_tls::install_default_provider();
        Raw {
            base: format!("http://{}", c.api_addr),
            token: f.api.token().map(str::to_string),
            http: reqwest::Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// A GET's status, continue header and JSON body.
    async fn page(&self, path: &str) -> (u16, Option<String>, Value) {
        let resp = self.request(Method::GET, path).send().await.expect("GET");
        let status = resp.status().as_u16();
        let next = resp.headers().get("x-edge-continue").map(|v| v.to_str().expect("ASCII token").to_string());
        (status, next, resp.json().await.unwrap_or(Value::Null))
    }
}

fn deploy_body(sha: &str, extra: Value) -> Value {
    let mut body = json!({"module": sha, "replicas": 1, "cpu_millis": 100, "memory_bytes": 32u64 << 20});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    body
}

/// One refusal: its status, one line of at most a few hundred characters containing `want`, and nothing
/// stored anywhere.
async fn assert_refused(api: &Api, path: &str, body: Value, status: u16, want: &str) {
    let (got, v) = api.send(Method::PUT, path, None, Some(body)).await;
    let error = v["error"].as_str().unwrap_or_else(|| panic!("{path}: no error in {v}"));
    assert_eq!(got, status, "{path}: {error}");
    assert!(error.contains(want), "{error:?} should contain {want:?}");
    assert!(!error.contains('\n') && error.chars().count() < 300, "one short line: {error:?}");
    assert_no_workloads(api).await;
}

async fn assert_no_workloads(api: &Api) {
    let list = api.get("/v1/workloads").await;
    assert_eq!(list, json!([]), "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_bound_is_refused_with_one_line_and_nothing_is_stored() {
    let f = fleet_with_node(4 << 30).await;
    let api = f.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    let node_memory = api.get("/v1/nodes").await[0]["capacity"]["memory_bytes"].as_u64().expect("capacity");
    let path = "/v1/namespaces/default/workloads/w";
    let max = u64::MAX;
    let env = |n: usize, size: usize| -> Value { (0..n).map(|i| json!([format!("V{i}"), "v".repeat(size)])).collect() };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"replicas": 1_001}), "replicas 1001 is above the limit of 1000"),
        (json!({"cpu_millis": 1_000_001}), "cpu_millis 1000001m is above the limit of 1000000m"),
        (json!({"cpu_limit_millis": 2_000_000}), "cpu_limit_millis 2000000m is above the limit of 1000000m"),
        (json!({"memory_bytes": max}), "memory_bytes 18446744073709551615 bytes is above the limit of 1099511627776"),
        (json!({"memory_limit_bytes": max}), "memory_limit_bytes 18446744073709551615 bytes is above the limit"),
        (json!({"memory_bytes": 1024}), "memory_bytes 1024 bytes is below the minimum of 65536"),
        (json!({"timeout_ms": max}), "timeout_ms 18446744073709551615 ms is above the limit of 2592000000 ms"),
        (
            json!({"env": [["BIG", "x".repeat(600 * 1024)]]}),
            "env \"BIG\" value is 614400 bytes, above the limit of 16384",
        ),
        (json!({"env": env(257, 1)}), "env has 257 entries, above the limit of 256"),
        (json!({"env": env(3, 12 * 1024)}), "bytes in all, above the limit of 32768"),
        (json!({"env": [["N".repeat(300), "v"]]}), "is 300 bytes, above the limit of 256"),
        (json!({"args": ["x".repeat(5_000)]}), "args[0] is 5000 bytes, above the limit of 4096"),
        (json!({"args": vec!["x"; 257]}), "args has 257 entries, above the limit of 256"),
        (json!({"args": vec!["x".repeat(4096); 5]}), "args are 20480 bytes in all, above the limit of 16384"),
        (
            json!({"volumes": (0..17).map(|i| json!({"name": format!("v{i}"), "size_bytes": 1})).collect::<Vec<_>>()}),
            "volumes has 17 entries, above the limit of 16",
        ),
        (json!({"volumes": [{"name": "data", "size_bytes": max}]}), "volume data size 18446744073709551615 bytes"),
        (
            json!({"labels": (0..65).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
            "labels has 65",
        ),
        (
            json!({"selector": (0..65).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
            "selectors has 65",
        ),
        (json!({"labels": {"k".repeat(10_000): "v"}}), "is invalid (key 1-63 bytes"),
        (json!({"restart": "x".repeat(100_000)}), "unknown restart policy"),
        (json!({"module": "f".repeat(100_000)}), "(100000 bytes) is not a sha256"),
    ];
    for (extra, want) in cases {
        assert_refused(&api, path, deploy_body(&sha, extra), 400, want).await;
    }
    // Memory beyond any board: refused, naming the bound; memory no node has yet: accepted, Pending saying why.
    assert_refused(&api, path, deploy_body(&sha, json!({"memory_bytes": (1u64 << 40) + 1})), 400, "1Ti").await;
    let (status, w) =
        api.send(Method::PUT, path, None, Some(deploy_body(&sha, json!({"memory_bytes": 2 * node_memory})))).await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["instances"][0]["reason"], "0/1 nodes available: 1 insufficient memory", "{w}");
    assert_eq!(api.send(Method::DELETE, path, None, None).await.0, 204);
    // Names in the path: too long, refused with a truncated echo and their length.
    let long = "a".repeat(200);
    let want = format!("workload name \"{}…\": name is 200 characters long (at most 63)", "a".repeat(63));
    assert_refused(&api, &format!("/v1/namespaces/default/workloads/{long}"), deploy_body(&sha, json!({})), 400, &want)
        .await;
    let want = "namespace \"aaaa";
    assert_refused(&api, &format!("/v1/namespaces/{long}/workloads/w"), deploy_body(&sha, json!({})), 400, want).await;
    let (status, v) = api.send(Method::POST, &format!("/v1/nodes/{}/cordon", "n".repeat(10_000)), None, None).await;
    assert_eq!((status, v["error"].as_str()), (404, Some(format!("node {}… not found", "n".repeat(63)).as_str())));
    // A body over 1 MiB is not even parsed.
    let big = deploy_body(&sha, json!({"args": ["x".repeat(MIB + MIB / 2)]}));
    assert_refused(&api, path, big, 413, "deploy request: the body is larger than the limit of 1048576 bytes").await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_env_that_cut_a_node_off_is_refused_and_the_node_stays_ready() {
    let f = fleet_with_node(4 << 30).await;
    let api = f.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    let body = deploy_body(&sha, json!({"env": [["BIG", "x".repeat(600 * 1000)]]}));
    assert_refused(&api, "/v1/namespaces/default/workloads/big", body, 400, "above the limit of 16384").await;
    // 60 MB of args, the other attack: refused before it is read whole (the connection may be closed under the
    // rest of the upload), and nothing stored.
    let raw = Raw::of(&f);
    let huge = deploy_body(&sha, json!({"args": vec!["x".repeat(60_000); 1_000]}));
    match raw.request(Method::PUT, "/v1/namespaces/default/workloads/huge").json(&huge).send().await {
        Ok(resp) => assert_eq!(resp.status().as_u16(), 413),
        Err(e) => assert!(e.is_request() || e.is_body() || e.is_connect(), "{e}"),
    }
    assert_no_workloads(&api).await;
    // The largest deploy admission accepts goes out in the node's spec, and runs.
    let at_bounds = json!({
        "env": (0..256).map(|i| json!([format!("V{i:03}"), "v".repeat(124)])).collect::<Vec<_>>(),
        "args": vec!["a".repeat(64); 256],
        "volumes": (0..16).map(|i| json!({"name": format!("v{i}"), "size_bytes": 1 << 20})).collect::<Vec<_>>(),
    });
    api.deploy_with("tick", &sha, 1, at_bounds).await;
    api.wait_running("tick", 1).await;
    // Heard from all along: Ready, and its reported generation is the one published.
    eventually(Duration::from_secs(20), "node a Ready with its spec applied", || {
        let api = api.clone();
        async move {
            let n = api.get("/v1/nodes").await[0].clone();
            (n["status"] == "Ready" && n["generation"] == n["spec_generation"] && n["disconnected"] == false)
                .then_some(())
        }
    })
    .await;
    // Modules are still uploaded up to their own limit, not the JSON one: 2 MiB of non-wasm is read and judged.
    let (status, v) = api.send(Method::POST, "/v1/modules", Some(vec![0u8; 2 * MIB].into()), None).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("WebAssembly"), "{v}");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workload_list_longer_than_a_page_comes_back_whole_through_paging() {
    let f = Fleet::embedded().await;
    let api = f.api.clone();
    let raw = Raw::of(&f);
    let sha = api.upload(example("ticker.wasm")).await;
    let (status, v) = api.send(Method::PUT, "/v1/namespaces/team-b", None, Some(json!({}))).await;
    assert_eq!(status, 201, "{v}");
    // 501 workloads (no nodes: they stay Pending), one more than the default page; three in team-b.
    let mut want = Vec::new();
    for i in 0..501 {
        let ns = if i % 167 == 0 { "team-b" } else { "default" };
        let name = format!("w{i:03}");
        let path = format!("/v1/namespaces/{ns}/workloads/{name}");
        let (status, v) = api.send(Method::PUT, &path, None, Some(deploy_body(&sha, json!({"replicas": 0})))).await;
        assert_eq!(status, 200, "{v}");
        want.push(format!("{ns}/{name}"));
    }
    want.sort();
    let names = |page: &Value| -> Vec<String> {
        page.as_array()
            .expect("an array")
            .iter()
            .map(|w| format!("{}/{}", w["namespace"].as_str().unwrap(), w["name"].as_str().unwrap()))
            .collect()
    };
    // A client that knows nothing of pages gets the first 500, as before, and a header it may ignore.
    let (status, next, first) = raw.page("/v1/workloads").await;
    assert_eq!(status, 200);
    assert_eq!(names(&first), want[..500]);
    assert_eq!(next.as_deref(), Some(want[499].as_str()));
    // Following the header, in pages of 200, gives every workload once, in order.
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/workloads?limit=200&continue={t}"),
            None => "/v1/workloads?limit=200".to_string(),
        };
        let (status, next, page) = raw.page(&path).await;
        assert_eq!(status, 200, "{page}");
        got.extend(names(&page));
        pages += 1;
        assert!(pages <= 3, "501 workloads in pages of 200 take 3 pages");
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(got, want);
    // One namespace pages alone; a limit above the most is the most.
    let (_, next, team) = raw.page("/v1/workloads?namespace=team-b&limit=2").await;
    assert_eq!(names(&team), ["team-b/w000", "team-b/w167"]);
    let next = next.expect("a third team-b workload follows");
    let (_, last, rest) = raw.page(&format!("/v1/workloads?namespace=team-b&limit=2&continue={next}")).await;
    assert_eq!((names(&rest), last), (vec!["team-b/w334".to_string()], None));
    let (_, _, capped) = raw.page("/v1/workloads?limit=100000").await;
    assert_eq!(capped.as_array().map(Vec::len), Some(500));
    // A token no page gave is refused, echoed truncated.
    let (status, _, v) = raw.page(&format!("/v1/workloads?continue={}", "x".repeat(5_000))).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("(5000 bytes) is not one a previous page returned"), "{v}");
    f.stop().await;
}
