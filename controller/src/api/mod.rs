//! The HTTP/JSON API, the only entry point for users and `edgectl`. The boundary: below `api/` nothing knows
//! about HTTP or JSON; the JSON shapes are the `edge-api` crate, shared with clients.
//!
//! - [`types`]: the JSON shapes, crate `edge-api` (shared with `edgectl`).
//! - [`admission`]: a `DeployRequest` becomes a validated `WorkloadSpec` (pure), each field held to its bound in
//!   [`bounds`] (every input's documented limit, pure).
//! - [`views`]: the cluster's state as those shapes.
//! - [`routes`]: the axum router and its handlers; [`tokens`]: those for join tokens and node deletion.
//! - [`events`]: recent lifecycle events, structured; [`version`]: what the controller runs.
//! - [`top`]: the usage agents report, for `edgectl top`.
//! - [`auth`]: every request's credential and right, checked before its handler (rules: `crate::access`);
//!   [`credentials`]: the handlers for credentials and the audit trail.
//! - [`tls`]: the API served over TLS (the certificate: `edge-tls`).
//! - [`error`]: how failures become HTTP statuses.

pub mod admission;
pub mod auth;
pub mod bounds;
pub mod credentials;
pub mod error;
pub mod events;
pub mod routes;
pub mod tls;
pub mod tokens;
pub mod top;
pub mod version;
pub mod views;
pub use edge_api as types;
