//! Handlers for join tokens and for deleting nodes (membership; see `cluster/members.rs`).
//!
//! | method + path                          | what                                                   |
//! |----------------------------------------|--------------------------------------------------------|
//! | `POST /v1/tokens` (`TokenRequest`)     | a new join token → 201 `TokenCreated` (the token, once) |
//! | `GET /v1/tokens`                       | `[TokenView]` (never a secret)                          |
//! | `DELETE /v1/tokens/{id}`               | 204; nodes that joined with it stay                    |
//! | `DELETE /v1/nodes/{name}[?force=true]` | revoke and remove a node → 204; 409 while it is Ready  |

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use edge_api::{TokenCreated, TokenRequest, TokenView};
use serde::Deserialize;

use super::error::ApiError;
use super::routes::{call, Shared};

pub async fn create_token(
    State(s): State<Shared>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let Json(req) = body.map_err(|e| super::error::body_refused("token request", e))?;
    let created = call(&s, move |c| c.create_token(req)).await??;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list_tokens(State(s): State<Shared>) -> Result<Json<Vec<TokenView>>, ApiError> {
    Ok(Json(call(&s, |c| c.token_views()).await?))
}

pub async fn delete_token(State(s): State<Shared>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    call(&s, move |c| c.delete_token(&id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct DeleteNodeQuery {
    #[serde(default)]
    force: bool,
}

pub async fn delete_node(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<DeleteNodeQuery>,
) -> Result<StatusCode, ApiError> {
    call(&s, move |c| c.delete_node(&name, q.force)).await??;
    Ok(StatusCode::NO_CONTENT)
}
