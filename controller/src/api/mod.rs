//! The HTTP/JSON API, the only entry point for users and `edgectl`. The boundary: below `api/` nothing knows
//! about HTTP or JSON; the JSON shapes are the `edge-api` crate, shared with clients.
//!
//! - [`types`]: the JSON shapes, crate `edge-api` (shared with `edgectl`).
//! - [`admission`]: a `DeployRequest` becomes a validated `WorkloadSpec` (pure).
//! - [`views`]: the cluster's state as those shapes.
//! - [`routes`]: the axum router and its handlers; [`tokens`]: those for join tokens and node deletion.
//! - [`events`]: recent lifecycle events, structured; [`version`]: what the controller runs.
//! - [`top`]: the usage agents report, for `edgectl top`.
//! - [`error`]: how failures become HTTP statuses.

pub mod admission;
pub mod error;
pub mod events;
pub mod routes;
pub mod tokens;
pub mod top;
pub mod version;
pub mod views;
pub use edge_api as types;
