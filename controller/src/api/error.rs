//! API errors: each maps to an HTTP status and a JSON body `{"error": "…"}` a person can act on.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use edge_api::ErrorBody;

use crate::cluster::ClusterError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// Refused by policy (a namespace quota).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// The store failed; the text chains every cause, once.
    #[error("state store failure: {0}")]
    Store(String),
    /// The controller is shutting down.
    #[error("{0}")]
    Unavailable(String),
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::NotFound(t) => ApiError::NotFound(t),
            ClusterError::Invalid(t) => ApiError::BadRequest(t),
            ClusterError::Quota(t) => ApiError::Forbidden(t),
            ClusterError::Conflict(t) => ApiError::Conflict(t),
            ClusterError::Store(e) => {
                // Chain the sources into one line: the user sees the whole cause, once.
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    source = s.source();
                }
                ApiError::Store(text)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(ErrorBody { error: self.to_string() })).into_response()
    }
}
