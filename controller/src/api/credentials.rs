//! Handlers for API credentials and the audit trail (admin only; see `crate::access::rule`).
//!
//! | method + path                                 | what                                                     |
//! |-----------------------------------------------|----------------------------------------------------------|
//! | `POST /v1/credentials` (`CredentialRequest`)  | a new credential → 201 `CredentialCreated` (its token, once) |
//! | `GET /v1/credentials`                         | `[CredentialView]` (never a token)                        |
//! | `DELETE /v1/credentials/{name}`               | 204; its token stops working with this reply              |
//! | `GET /v1/audit[?limit=N]`                     | `[AuditView]`, the last N (default 500) mutating calls, oldest first |

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use edge_api::{AuditView, CredentialCreated, CredentialRequest, CredentialView};
use serde::Deserialize;

use super::error::ApiError;
use super::routes::{call, Shared};
use crate::cluster::credentials::AUDIT_KEPT;

pub async fn create_credential(
    State(s): State<Shared>,
    body: Result<Json<CredentialRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CredentialCreated>), ApiError> {
    let Json(req) = body.map_err(|e| ApiError::BadRequest(format!("invalid credential request: {}", e.body_text())))?;
    let created = call(&s, move |c| c.create_credential(req)).await??;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list_credentials(State(s): State<Shared>) -> Result<Json<Vec<CredentialView>>, ApiError> {
    Ok(Json(call(&s, |c| c.credential_views()).await?))
}

pub async fn delete_credential(State(s): State<Shared>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    call(&s, move |c| c.delete_credential(&name)).await??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<usize>,
}

pub async fn audit(State(s): State<Shared>, Query(q): Query<AuditQuery>) -> Result<Json<Vec<AuditView>>, ApiError> {
    let limit = q.limit.unwrap_or(500).min(AUDIT_KEPT);
    Ok(Json(call(&s, move |c| c.audit_views(limit)).await?))
}
