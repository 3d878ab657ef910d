//! The HTTP/JSON API, the only entry point for users and `edgectl`.
//!
//! - [`types`]: the JSON shapes (shared with `edgectl`).
//! - [`routes`]: the axum router and its handlers.
//! - [`error`]: how failures become HTTP statuses.

pub mod error;
pub mod routes;
pub mod types;
