//! Authentication and authorisation of every API request, as a layer on the router's matched routes.
//!
//! Order: the route is matched first (axum's `MatchedPath`), its rule looked up (`crate::access::need`, fail
//! closed for a route without one), the bearer token authenticated (401 with why not), the grant checked
//! (403 naming the credential and what it lacks), then the handler runs. A change (any method but GET/HEAD) by
//! a known credential is recorded in the audit trail after its reply is made, off the request's path. Requests
//! without a valid credential are not recorded (anyone could fill the trail with them); they are counted.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, RequestPartsExt};
use edge_api::ErrorBody;
use serde::Deserialize;

use super::routes::Shared;
use crate::access::{need, Need};
use crate::clock::now_ms;

/// The query parameters a rule reads, decoded as the handlers decode theirs.
#[derive(Deserialize)]
struct RuleQuery {
    namespace: Option<String>,
    #[serde(rename = "for")]
    about: Option<String>,
}

fn refuse(status: StatusCode, why: String) -> Response {
    (status, Json(ErrorBody { error: why })).into_response()
}

pub async fn check(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let Some(template) = parts.extensions.get::<MatchedPath>().map(|m| m.as_str().to_string()) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "no route matched before the access check".into());
    };
    let params: HashMap<String, String> = match parts.extract::<Path<HashMap<String, String>>>().await {
        Ok(Path(p)) => p,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("invalid path: {}", e.body_text())),
    };
    let query = match parts.extract::<Query<RuleQuery>>().await {
        Ok(Query(q)) => q,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("invalid query: {}", e.body_text())),
    };
    let Some(need) = need(
        &method,
        &template,
        params.get("ns").map(String::as_str),
        query.namespace.as_deref(),
        query.about.as_deref(),
    ) else {
        return refuse(StatusCode::FORBIDDEN, format!("{method} {template} has no access rule: refused to everyone"));
    };
    if need == Need::Nothing {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let entry = match s.access.authenticate(parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes()), now_ms()) {
        Ok(e) => e,
        Err(why) => {
            s.unauthenticated.fetch_add(1, Ordering::Relaxed);
            return refuse(StatusCode::UNAUTHORIZED, why.to_string());
        }
    };
    let what = format!("{method} {}", parts.uri.path());
    let change = Need::is_change(&method);
    let (response, reason) = match entry.grant.permits(&need) {
        Ok(()) => (next.run(Request::from_parts(parts, body)).await, None),
        Err(why) => (refuse(StatusCode::FORBIDDEN, why.clone()), Some(why)),
    };
    if change {
        let status = response.status().as_u16();
        let who = entry.grant.name.clone();
        let shared = s.clone();
        // After the reply is made and off its path: the trail's commit never delays the caller.
        tokio::spawn(async move {
            let _ = super::routes::call(&shared, move |c| c.record_audit(who, what, status, reason)).await;
        });
    }
    response
}
