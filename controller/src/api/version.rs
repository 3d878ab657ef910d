//! `GET /v1/version`: the controller's version and the agent protocol versions it speaks, for
//! `edgectl version`.

use axum::Json;
use edge_api::VersionView;

pub async fn version() -> Json<VersionView> {
    Json(VersionView {
        version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: edge_proto::PROTOCOL_VERSION,
        min_protocol: edge_proto::MIN_PROTOCOL_VERSION,
    })
}
