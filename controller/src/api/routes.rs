//! The axum router. Handlers do the work that needs no state (decoding, validating and hashing an upload) on
//! their own task, then hand one call to the cluster's owner (`crate::owner`) and map its errors to JSON.
//!
//! | method + path                                   | what                                          |
//! |-------------------------------------------------|-----------------------------------------------|
//! | `GET /healthz`                                  | 200 `ok`, or 503 naming what is down (broker link) |
//! | `GET /v1/stats`                                 | `StatsView`: counts of nodes, messages handled |
//! | `GET /v1/version`                               | `VersionView`: controller version, protocols  |
//! | `GET /v1/events[?namespace=NS][&for=KIND/NAME]` | `[EventView]`: see `events.rs`                |
//! | `GET /v1/top/nodes`, `/v1/top/instances[?namespace=NS]` | reported usage: see `top.rs`          |
//! | `POST /v1/modules` (body: wasm bytes)           | validate and store a module → `ModuleView`    |
//! | `GET /v1/modules`, `GET /v1/modules/{sha256}`   | list / one                                    |
//! | `GET /v1/nodes`                                 | `[NodeView]`                                  |
//! | `GET /v1/nodes/{name}`                          | `NodeDetail`                                  |
//! | `DELETE /v1/nodes/{name}`, `/v1/tokens…`        | membership: see `tokens.rs`                    |
//! | `POST /v1/nodes/{name}/cordon`, `…/uncordon`, `…/drain` | node operations → `NodeView`          |
//! | `PUT /v1/nodes/{name}/labels` (`LabelRequest`)  | set / remove user labels → `NodeView`         |
//! | `GET /v1/workloads[?namespace=NS][&limit=N][&continue=T]` | `[WorkloadView]`, one page: see below |
//! | `GET /v1/namespaces`, `PUT /v1/namespaces/{ns}` | `[NamespaceView]`; create or set the quota    |
//! | `PUT /v1/namespaces/{ns}/workloads/{name}`      | create or update from a `DeployRequest`       |
//! | either PUT with `?dry_run=true`                 | every check, nothing stored → `DryRunView`    |
//! | `GET`/`DELETE /v1/namespaces/{ns}/workloads/{name}` | one / delete                              |
//! | `GET /v1/namespaces/{ns}/workloads/{name}/logs?since=N` | `LogsResponse`                        |
//! | `GET /v1/namespaces/{ns}/workloads/{name}/events` | recent lifecycle events, one line each     |
//! | `POST /v1/namespaces/{ns}/workloads/{name}/undo[?to_revision=N]` | roll back → `WorkloadView`  |
//! | `/v1/credentials…`, `GET /v1/audit`             | API credentials, the audit trail: see `credentials.rs` |
//!
//! Every route but `/healthz` needs a bearer credential with the right role (`auth.rs`, `crate::access`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use edge_api::{
    DeployRequest, DryRunView, LabelRequest, LogsResponse, ModuleView, NamespaceRequest, NamespaceView, NodeDetail,
    NodeView, StatsView, WorkloadView,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::admission::admit;
use super::error::ApiError;
use crate::cluster::{Cluster, ClusterError};
use crate::model::{workload_key, Quota, WorkloadSpec};
use crate::owner::ClusterHandle;
use crate::validate::validate_module;

/// Largest module accepted by `POST /v1/modules`.
pub const MAX_MODULE_BYTES: usize = 64 * 1024 * 1024;

/// What the handlers share: the way to the cluster, and whether the controller has its broker link.
#[derive(Clone)]
pub struct Shared {
    pub cluster: ClusterHandle,
    /// `Ok` while the controller's MQTT link is up; otherwise why not.
    pub link: watch::Receiver<Result<(), String>>,
    /// The credentials every request is checked against (`auth.rs`).
    pub access: crate::access::Access,
    /// Requests refused for want of a valid credential (401), since start.
    pub unauthenticated: Arc<std::sync::atomic::AtomicU64>,
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/stats", get(stats))
        .route("/v1/version", get(super::version::version))
        .route("/v1/events", get(super::events::list_events))
        .route("/v1/top/nodes", get(super::top::top_nodes))
        .route("/v1/top/instances", get(super::top::top_instances))
        .route("/v1/modules", post(upload_module).layer(DefaultBodyLimit::max(MAX_MODULE_BYTES)).get(list_modules))
        .route("/v1/modules/{sha}", get(get_module))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{name}", get(get_node).delete(super::tokens::delete_node))
        .route("/v1/tokens", post(super::tokens::create_token).get(super::tokens::list_tokens))
        .route("/v1/tokens/{id}", axum::routing::delete(super::tokens::delete_token))
        .route("/v1/nodes/{name}/cordon", post(cordon))
        .route("/v1/nodes/{name}/uncordon", post(uncordon))
        .route("/v1/nodes/{name}/drain", post(drain))
        .route("/v1/nodes/{name}/labels", put(label))
        .route("/v1/workloads", get(list_workloads))
        .route("/v1/namespaces", get(list_namespaces))
        .route("/v1/namespaces/{ns}", put(put_namespace))
        .route("/v1/namespaces/{ns}/workloads/{name}", put(deploy).get(get_workload).delete(delete_workload))
        .route("/v1/namespaces/{ns}/workloads/{name}/logs", get(logs))
        .route("/v1/namespaces/{ns}/workloads/{name}/events", get(workload_events))
        .route("/v1/namespaces/{ns}/workloads/{name}/undo", post(undo))
        .route("/v1/credentials", post(super::credentials::create_credential).get(super::credentials::list_credentials))
        .route("/v1/credentials/{name}", axum::routing::delete(super::credentials::delete_credential))
        .route("/v1/audit", get(super::credentials::audit))
        // On matched routes only, so the rule is the route's own (`auth.rs`); an unknown path is a plain 404.
        .route_layer(axum::middleware::from_fn_with_state(shared.clone(), super::auth::check))
        // JSON bodies are bounded well below what any valid request needs (`bounds::MAX_JSON_BYTES`); only a
        // module upload is larger (its route's own limit, the inner layer, wins).
        .layer(DefaultBodyLimit::max(super::bounds::MAX_JSON_BYTES))
        .with_state(shared)
}

/// Runs `f` on the cluster's owner.
pub(super) async fn call<R: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&mut Cluster) -> R + Send + 'static,
) -> Result<R, ApiError> {
    s.cluster.call(f).await.map_err(|e| ApiError::Unavailable(e.to_string()))
}

async fn healthz(State(s): State<Shared>) -> impl IntoResponse {
    match &*s.link.borrow() {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("no broker link: {why}")),
    }
}

async fn upload_module(State(s): State<Shared>, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    // Validation and hashing are CPU work on this request's own thread, never on the owner.
    let (sha, bytes, class) = tokio::task::spawn_blocking(move || {
        let class = validate_module(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok::<_, ApiError>((hex::encode(Sha256::digest(&body)), Arc::new(body.to_vec()), class))
    })
    .await
    .map_err(|e| ApiError::BadRequest(format!("module validation failed: {e}")))??;
    let (view, created) = call(&s, move |c| {
        let created = c.put_module(sha.clone(), bytes, class)?;
        Ok::<_, ClusterError>((c.module_view(&sha), created))
    })
    .await??;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view)))
}

async fn list_modules(State(s): State<Shared>) -> Result<Json<Vec<ModuleView>>, ApiError> {
    Ok(Json(call(&s, |c| c.modules_view()).await?))
}

async fn get_module(State(s): State<Shared>, Path(sha): Path<String>) -> Result<Json<ModuleView>, ApiError> {
    let key = sha.to_ascii_lowercase();
    call(&s, move |c| c.module(&key))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("module {} not found", super::bounds::truncated(&sha))))
}

async fn list_nodes(State(s): State<Shared>) -> Result<Json<Vec<NodeView>>, ApiError> {
    Ok(Json(call(&s, |c| c.nodes_view()).await?))
}

async fn get_node(State(s): State<Shared>, Path(name): Path<String>) -> Result<Json<NodeDetail>, ApiError> {
    Ok(Json(call(&s, move |c| c.node_detail(&name)).await??))
}

async fn stats(State(s): State<Shared>) -> Result<Json<StatsView>, ApiError> {
    Ok(Json(call(&s, |c| c.stats()).await?))
}

async fn list_namespaces(State(s): State<Shared>) -> Result<Json<Vec<NamespaceView>>, ApiError> {
    Ok(Json(call(&s, |c| c.namespaces_view()).await?))
}

/// `?dry_run=true` on a PUT: check everything, store nothing.
#[derive(Deserialize)]
struct DryRunQuery {
    #[serde(default)]
    dry_run: bool,
}

async fn put_namespace(
    State(s): State<Shared>,
    Path(ns): Path<String>,
    Query(q): Query<DryRunQuery>,
    body: Result<Json<NamespaceRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| super::error::body_refused("namespace request", e))?;
    if q.dry_run {
        return Ok(Json(call(&s, move |c| dry_run_namespace(c, &ns, req.quota)).await??).into_response());
    }
    let (view, created) = call(&s, move |c| {
        let created = c.put_namespace(&ns, req.quota)?;
        Ok::<_, ClusterError>((c.namespace_view(&ns), created))
    })
    .await??;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view)).into_response())
}

/// What `PUT /v1/namespaces/{ns}` would do with `quota`. Mirrors `Cluster::put_namespace`: the default namespace
/// has no record until it is first PUT, so that PUT counts as a create.
fn dry_run_namespace(c: &Cluster, ns: &str, quota: Quota) -> Result<DryRunView, ClusterError> {
    valid_name("namespace", ns)?;
    let current = c.namespaces.get(ns).map(|n| n.quota);
    Ok(DryRunView { created: current.is_none(), changed: current != Some(quota), ..DryRunView::default() })
}

/// What `PUT …/workloads/{name}` would do with an admitted `spec`: the checks of `Cluster::deploy` (names, the
/// namespace, its quota counting `spec` in place of the current one). A module not uploaded yet is reported, not
/// refused, so a client can check a manifest before it uploads.
fn dry_run_deploy(c: &Cluster, ns: &str, name: &str, spec: &WorkloadSpec) -> Result<DryRunView, ClusterError> {
    valid_name("namespace", ns)?;
    valid_name("workload name", name)?;
    let spec = &c.fit_to_module(spec.clone());
    c.admit_to_namespace(ns, name, spec)?;
    let current = c.workloads.get(&workload_key(ns, name)).map(|w| &w.spec);
    Ok(DryRunView {
        created: current.is_none(),
        changed: current != Some(spec),
        new_revision: current.is_none_or(|cur| !cur.same_template(spec)),
        module_missing: !c.modules.contains_key(&spec.module),
    })
}

/// The name rule of `Cluster::deploy` and `put_namespace`, with their wording.
fn valid_name(what: &str, name: &str) -> Result<(), ClusterError> {
    super::bounds::check_name(what, name)
}

async fn node_op(
    s: &Shared,
    name: String,
    op: impl FnOnce(&mut Cluster, &str) -> Result<(), ClusterError> + Send + 'static,
) -> Result<Json<NodeView>, ApiError> {
    let view = call(s, move |c| {
        op(c, &name)?;
        c.node_view(&name)
    })
    .await??;
    Ok(Json(view))
}

async fn cordon(State(s): State<Shared>, Path(name): Path<String>) -> Result<Json<NodeView>, ApiError> {
    node_op(&s, name, |c, n| c.cordon(n, true)).await
}

async fn uncordon(State(s): State<Shared>, Path(name): Path<String>) -> Result<Json<NodeView>, ApiError> {
    node_op(&s, name, |c, n| c.cordon(n, false)).await
}

async fn drain(State(s): State<Shared>, Path(name): Path<String>) -> Result<Json<NodeView>, ApiError> {
    node_op(&s, name, |c, n| c.drain(n)).await
}

async fn label(
    State(s): State<Shared>,
    Path(name): Path<String>,
    body: Result<Json<LabelRequest>, JsonRejection>,
) -> Result<Json<NodeView>, ApiError> {
    let Json(req) = body.map_err(|e| super::error::body_refused("label request", e))?;
    node_op(&s, name, move |c, n| c.label(n, req.set, req.remove)).await
}

/// The response header of `GET /v1/workloads` holding the token of the next page, when there is one.
pub const CONTINUE_HEADER: &str = "x-edge-continue";

/// `GET /v1/workloads`: one namespace or all; one page of at most `limit` (default and most:
/// `bounds::WORKLOADS_PAGE`) after the page whose [`CONTINUE_HEADER`] gave `continue`. The body stays a plain
/// array of `WorkloadView`, so a client that knows nothing of pages reads the first.
#[derive(Deserialize)]
struct WorkloadsQuery {
    namespace: Option<String>,
    limit: Option<usize>,
    #[serde(rename = "continue")]
    after: Option<String>,
}

async fn list_workloads(State(s): State<Shared>, Query(q): Query<WorkloadsQuery>) -> Result<Response, ApiError> {
    let limit = super::bounds::page_limit(q.limit);
    if let Some(token) = &q.after {
        super::bounds::continue_token(token)?;
    }
    let (page, next) = call(&s, move |c| c.workloads_page(q.namespace.as_deref(), q.after.as_deref(), limit)).await??;
    let mut response = Json::<Vec<WorkloadView>>(page).into_response();
    // A workload key is a header value: two DNS labels and a `/`.
    if let Some(value) = next.and_then(|n| axum::http::HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert(CONTINUE_HEADER, value);
    }
    Ok(response)
}

async fn deploy(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<DryRunQuery>,
    body: Result<Json<DeployRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| super::error::body_refused("deploy request", e))?;
    let spec = admit(req)?;
    if q.dry_run {
        return Ok(Json(call(&s, move |c| dry_run_deploy(c, &ns, &name, &spec)).await??).into_response());
    }
    let view = call(&s, move |c| {
        c.deploy(&ns, &name, spec)?;
        c.workload(&ns, &name)
    })
    .await??;
    Ok(Json(view).into_response())
}

async fn get_workload(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<WorkloadView>, ApiError> {
    Ok(Json(call(&s, move |c| c.workload(&ns, &name)).await??))
}

async fn delete_workload(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    call(&s, move |c| c.delete(&ns, &name)).await??;
    Ok(StatusCode::NO_CONTENT)
}

async fn workload_events(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(call(&s, move |c| c.workload_events(&ns, &name)).await??))
}

#[derive(Deserialize)]
struct UndoQuery {
    to_revision: Option<u64>,
}

async fn undo(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<UndoQuery>,
) -> Result<Json<WorkloadView>, ApiError> {
    let view = call(&s, move |c| {
        c.rollout_undo(&ns, &name, q.to_revision)?;
        c.workload(&ns, &name)
    })
    .await??;
    Ok(Json(view))
}

#[derive(Deserialize)]
struct LogsQuery {
    #[serde(default)]
    since: u64,
    limit: Option<usize>,
}

async fn logs(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<LogsResponse>, ApiError> {
    let limit = q.limit.unwrap_or(1_000).min(10_000);
    Ok(Json(call(&s, move |c| c.logs(&ns, &name, q.since, limit)).await??))
}
