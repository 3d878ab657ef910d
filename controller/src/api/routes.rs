//! The axum router. Handlers lock the cluster briefly (never across an await) and map errors to JSON.
//!
//! | method + path                                   | what                                          |
//! |-------------------------------------------------|-----------------------------------------------|
//! | `GET /healthz`                                  | liveness                                      |
//! | `GET /v1/stats`                                 | `StatsView`: counts of nodes, messages handled |
//! | `POST /v1/modules` (body: wasm bytes)           | validate and store a module → `ModuleView`    |
//! | `GET /v1/modules`, `GET /v1/modules/{sha256}`   | list / one                                    |
//! | `GET /v1/nodes`                                 | `[NodeView]`                                  |
//! | `GET /v1/nodes/{name}`                          | `NodeDetail`                                  |
//! | `POST /v1/nodes/{name}/cordon`, `…/uncordon`, `…/drain` | node operations → `NodeView`          |
//! | `PUT /v1/nodes/{name}/labels` (`LabelRequest`)  | set / remove user labels → `NodeView`         |
//! | `GET /v1/workloads[?namespace=NS]`              | `[WorkloadView]`                              |
//! | `GET /v1/namespaces`, `PUT /v1/namespaces/{ns}` | `[NamespaceView]`; create or set the quota    |
//! | `PUT /v1/namespaces/{ns}/workloads/{name}`      | create or update from a `DeployRequest`       |
//! | `GET`/`DELETE /v1/namespaces/{ns}/workloads/{name}` | one / delete                              |
//! | `GET /v1/namespaces/{ns}/workloads/{name}/logs?since=N` | `LogsResponse`                        |
//! | `GET /v1/namespaces/{ns}/workloads/{name}/events` | recent lifecycle events, one line each     |
//! | `POST /v1/namespaces/{ns}/workloads/{name}/undo[?to_revision=N]` | roll back → `WorkloadView`  |

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::ApiError;
use super::types::{
    DeployRequest, LabelRequest, LogsResponse, ModuleView, NamespaceRequest, NamespaceView, NodeDetail, NodeView,
    StatsView, WorkloadView,
};
use crate::cluster::Cluster;

/// Largest module accepted by `POST /v1/modules`.
pub const MAX_MODULE_BYTES: usize = 64 * 1024 * 1024;

type Shared = Arc<Mutex<Cluster>>;

pub fn router(cluster: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/stats", get(stats))
        .route("/v1/modules", post(upload_module).get(list_modules))
        .route("/v1/modules/{sha}", get(get_module))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{name}", get(get_node))
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
        .layer(DefaultBodyLimit::max(MAX_MODULE_BYTES))
        .with_state(cluster)
}

fn lock(cluster: &Shared) -> MutexGuard<'_, Cluster> {
    cluster.lock().unwrap_or_else(|e| e.into_inner())
}

async fn upload_module(State(c): State<Shared>, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let (view, created) = lock(&c).upload_module(&body)?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view)))
}

async fn list_modules(State(c): State<Shared>) -> Json<Vec<ModuleView>> {
    Json(lock(&c).modules())
}

async fn get_module(State(c): State<Shared>, Path(sha): Path<String>) -> Result<Json<ModuleView>, ApiError> {
    lock(&c).module(&sha).map(Json).ok_or_else(|| ApiError::NotFound(format!("module {sha} not found")))
}

async fn list_nodes(State(c): State<Shared>) -> Json<Vec<NodeView>> {
    Json(lock(&c).nodes())
}

async fn get_node(State(c): State<Shared>, Path(name): Path<String>) -> Result<Json<NodeDetail>, ApiError> {
    lock(&c).node_detail(&name).map(Json)
}

async fn stats(State(c): State<Shared>) -> Json<StatsView> {
    Json(lock(&c).stats())
}

async fn list_namespaces(State(c): State<Shared>) -> Json<Vec<NamespaceView>> {
    Json(lock(&c).namespaces())
}

async fn put_namespace(
    State(c): State<Shared>,
    Path(ns): Path<String>,
    body: Result<Json<NamespaceRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::BadRequest(format!("invalid namespace request: {}", e.body_text())))?;
    let (view, created) = lock(&c).put_namespace(&ns, req.quota)?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view)))
}

async fn cordon(State(c): State<Shared>, Path(name): Path<String>) -> Result<Json<NodeView>, ApiError> {
    lock(&c).cordon(&name, true).map(Json)
}

async fn uncordon(State(c): State<Shared>, Path(name): Path<String>) -> Result<Json<NodeView>, ApiError> {
    lock(&c).cordon(&name, false).map(Json)
}

async fn drain(State(c): State<Shared>, Path(name): Path<String>) -> Result<Json<NodeView>, ApiError> {
    lock(&c).drain(&name).map(Json)
}

async fn label(
    State(c): State<Shared>,
    Path(name): Path<String>,
    body: Result<Json<LabelRequest>, JsonRejection>,
) -> Result<Json<NodeView>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::BadRequest(format!("invalid label request: {}", e.body_text())))?;
    lock(&c).label(&name, req.set, req.remove).map(Json)
}

#[derive(Deserialize)]
struct NamespaceQuery {
    namespace: Option<String>,
}

async fn list_workloads(State(c): State<Shared>, Query(q): Query<NamespaceQuery>) -> Json<Vec<WorkloadView>> {
    Json(lock(&c).workloads(q.namespace.as_deref()))
}

async fn deploy(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    body: Result<Json<DeployRequest>, JsonRejection>,
) -> Result<Json<WorkloadView>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::BadRequest(format!("invalid deploy request: {}", e.body_text())))?;
    lock(&c).deploy(&ns, &name, req).map(Json)
}

async fn get_workload(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<WorkloadView>, ApiError> {
    lock(&c).workload(&ns, &name).map(Json)
}

async fn delete_workload(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    lock(&c).delete(&ns, &name).map(|()| StatusCode::NO_CONTENT)
}

async fn workload_events(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Vec<String>>, ApiError> {
    lock(&c).workload_events(&ns, &name).map(Json)
}

#[derive(Deserialize)]
struct UndoQuery {
    to_revision: Option<u64>,
}

async fn undo(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<UndoQuery>,
) -> Result<Json<WorkloadView>, ApiError> {
    lock(&c).rollout_undo(&ns, &name, q.to_revision).map(Json)
}

#[derive(Deserialize)]
struct LogsQuery {
    #[serde(default)]
    since: u64,
    limit: Option<usize>,
}

async fn logs(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<LogsResponse>, ApiError> {
    lock(&c).logs(&ns, &name, q.since, q.limit.unwrap_or(1_000).min(10_000)).map(Json)
}
