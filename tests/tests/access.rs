//! API access end to end, against a real controller: 401 without a valid credential, 403 with one lacking the
//! right (per role and per namespace), the audit trail, deletion and expiry taking effect at once, and
//! credentials surviving a restart.

use std::time::Duration;

use edge_tests::{eventually, example, Api, Fleet};
use reqwest::Method;
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(30);

async fn credential(admin: &Api, name: &str, role: &str, ns: Option<&str>) -> String {
    let (status, v) = admin
        .send(Method::POST, "/v1/credentials", None, Some(json!({"name": name, "role": role, "namespace": ns})))
        .await;
    assert_eq!(status, 201, "credential {name}: {v}");
    let token = v["token"].as_str().expect("a token").to_string();
    assert!(token.starts_with("ecr_"), "{token}");
    token
}

fn deploy_body(module: &str) -> Value {
    json!({"module": module, "replicas": 1, "cpu_millis": 100, "memory_bytes": 16u64 << 20})
}

fn error(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_and_namespaces_are_enforced_and_changes_audited() {
    let mut fleet = Fleet::embedded().await;
    fleet.start_agent("n1");
    fleet.wait_ready_nodes(1).await;
    let addr = fleet.controller.as_ref().unwrap().api_addr;
    let admin = fleet.api.clone();

    // No credential, a malformed one, an unknown one: 401, each with its reason; /healthz stays open.
    let anon = Api::new(addr);
    let (status, v) = anon.send(Method::GET, "/v1/workloads", None, None).await;
    assert_eq!(status, 401, "{v}");
    assert!(error(&v).contains("no credential"), "{v}");
    let (status, v) = anon.clone().with_token(Some("ecr_nope".into())).send(Method::GET, "/v1/nodes", None, None).await;
    assert_eq!((status, error(&v).contains("unknown credential")), (401, true), "{v}");
    assert_eq!(anon.try_text("/healthz").await.map(|(s, _)| s), Some(200));

    for ns in ["team-a", "team-b"] {
        let (status, v) = admin.send(Method::PUT, &format!("/v1/namespaces/{ns}"), None, Some(json!({}))).await;
        assert_eq!(status, 201, "{v}");
    }
    let module = admin.upload(example("ticker.wasm")).await;
    let view = Api::new(addr).with_token(Some(credential(&admin, "viewer", "view", None).await));
    let edit = Api::new(addr).with_token(Some(credential(&admin, "team-a-dev", "edit", Some("team-a")).await));

    // view: reads everything, changes nothing.
    assert_eq!(view.send(Method::GET, "/v1/workloads", None, None).await.0, 200);
    assert_eq!(view.send(Method::GET, "/v1/nodes", None, None).await.0, 200);
    let (status, v) =
        view.send(Method::PUT, "/v1/namespaces/team-a/workloads/v", None, Some(deploy_body(&module))).await;
    assert_eq!(status, 403, "{v}");
    assert!(error(&v).contains("viewer (view)") && error(&v).contains("edit role"), "{v}");
    let (status, _) = view.send(Method::POST, "/v1/modules", Some(example("hello.wasm").into()), None).await;
    assert_eq!(status, 403);

    // edit in team-a: deploys and reads there, and nowhere else; no node or namespace operations.
    let (status, v) =
        edit.send(Method::PUT, "/v1/namespaces/team-a/workloads/t", None, Some(deploy_body(&module))).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) =
        edit.send(Method::PUT, "/v1/namespaces/team-b/workloads/t", None, Some(deploy_body(&module))).await;
    assert_eq!(status, 403, "{v}");
    assert!(error(&v).contains("may not change namespace team-b"), "{v}");
    let (status, _) =
        admin.send(Method::PUT, "/v1/namespaces/team-b/workloads/b", None, Some(deploy_body(&module))).await;
    assert_eq!(status, 200);
    let (status, v) = edit.send(Method::GET, "/v1/namespaces/team-b/workloads/b/logs", None, None).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(edit.send(Method::GET, "/v1/namespaces/team-a/workloads/t/logs", None, None).await.0, 200);
    let (status, v) = edit.send(Method::POST, "/v1/nodes/n1/cordon", None, None).await;
    assert_eq!(status, 403, "{v}");
    assert!(error(&v).contains("admin"), "{v}");
    assert_eq!(edit.send(Method::GET, "/v1/workloads", None, None).await.0, 403, "not across namespaces");
    let (status, v) = edit.send(Method::GET, "/v1/workloads?namespace=team-a", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(edit.send(Method::GET, "/v1/workloads?namespace=team-b", None, None).await.0, 403);
    let (status, _) = edit.send(Method::GET, "/v1/workloads?namespace=team-a&namespace=team-b", None, None).await;
    assert_eq!(status, 400, "a repeated namespace is refused, not read one way here and another in the handler");
    assert_eq!(edit.send(Method::PUT, "/v1/namespaces/team-a", None, Some(json!({}))).await.0, 403, "quotas: admin");
    assert_eq!(edit.send(Method::GET, "/v1/credentials", None, None).await.0, 403);
    assert_eq!(edit.send(Method::POST, "/v1/tokens", None, Some(json!({}))).await.0, 403);
    // Nothing of the refused deploys was stored.
    let (_, a) = admin.send(Method::GET, "/v1/workloads?namespace=team-b", None, None).await;
    assert_eq!(a.as_array().map(|w| w.iter().map(|w| w["name"].clone()).collect::<Vec<_>>()), Some(vec![json!("b")]));

    // The trail: who changed what, refusals with their reason; reads are not recorded.
    let trail = eventually(TIMEOUT, "the audit trail records the refused deploy", || {
        let admin = admin.clone();
        async move {
            let (_, v) = admin.send(Method::GET, "/v1/audit", None, None).await;
            let rows = v.as_array().cloned().unwrap_or_default();
            rows.iter().any(|r| r["who"] == "team-a-dev" && r["status"] == 403).then_some(rows)
        }
    })
    .await;
    assert!(trail.iter().any(|r| r["who"] == "team-a-dev"
        && r["status"] == 200
        && r["what"] == "PUT /v1/namespaces/team-a/workloads/t"));
    assert!(trail.iter().all(|r| !r["what"].as_str().unwrap_or_default().starts_with("GET ")), "{trail:?}");

    // Deleting a credential stops it with that reply; the last admin credential cannot be deleted.
    assert_eq!(admin.send(Method::DELETE, "/v1/credentials/viewer", None, None).await.0, 204);
    assert_eq!(view.send(Method::GET, "/v1/workloads", None, None).await.0, 401);
    let (status, v) = admin.send(Method::DELETE, "/v1/credentials/admin", None, None).await;
    assert_eq!(status, 409, "{v}");
    assert!(error(&v).contains("last admin credential"), "{v}");
    // An admin credential cannot be held to a namespace.
    let (status, v) = admin
        .send(Method::POST, "/v1/credentials", None, Some(json!({"name": "x", "role": "admin", "namespace": "team-a"})))
        .await;
    assert_eq!(status, 400, "{v}");

    // An expired credential is refused, saying so.
    let (status, v) = admin
        .send(Method::POST, "/v1/credentials", None, Some(json!({"name": "brief", "role": "view", "ttl_ms": 1})))
        .await;
    assert_eq!(status, 201, "{v}");
    let brief = Api::new(addr).with_token(v["token"].as_str().map(str::to_string));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, v) = brief.send(Method::GET, "/v1/workloads", None, None).await;
    assert_eq!((status, error(&v).contains("expired")), (401, true), "{v}");

    // Credentials are stored (hashed): they work after a restart, and the admin token file is not rewritten.
    let admin_file = fleet.dir.path().join("controller").join("admin.token");
    let before = std::fs::read_to_string(&admin_file).unwrap();
    fleet.restart_controller().await;
    assert_eq!(std::fs::read_to_string(&admin_file).unwrap(), before);
    let edit = Api::new(fleet.controller.as_ref().unwrap().api_addr).with_token(edit_token(&edit));
    assert_eq!(edit.send(Method::GET, "/v1/workloads?namespace=team-a", None, None).await.0, 200);
    assert_eq!(fleet.api.send(Method::GET, "/v1/credentials", None, None).await.0, 200);
    let stored = std::fs::read(fleet.dir.path().join("controller").join("controller.redb")).unwrap();
    let secret = edit_token(&edit).unwrap();
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()), "the token itself is never stored");
    fleet.stop().await;
}

fn edit_token(api: &Api) -> Option<String> {
    api.token().map(str::to_string)
}
