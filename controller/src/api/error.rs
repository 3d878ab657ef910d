//! API errors: each maps to an HTTP status and a JSON body `{"error": "…"}` a person can act on, never longer
//! than `bounds::MAX_ERROR` characters (whatever a decoder's message echoes of the input).

use axum::extract::rejection::JsonRejection;
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
    /// The body is larger than the endpoint accepts (`bounds::MAX_JSON_BYTES`).
    #[error("{0}")]
    TooLarge(String),
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
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let error = super::bounds::cut(&self.to_string(), super::bounds::MAX_ERROR);
        (status, Json(ErrorBody { error })).into_response()
    }
}

/// A JSON body its extractor refused (`what`: `deploy request`, …): too large (413, naming the limit), or not
/// the shape expected (400, with the decoder's words).
pub fn body_refused(what: &str, e: JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge(format!(
            "{what}: the body is larger than the limit of {} bytes",
            super::bounds::MAX_JSON_BYTES
        ));
    }
    ApiError::BadRequest(format!("invalid {what}: {}", e.body_text()))
}
