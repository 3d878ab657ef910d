//! The HTTP API's request bodies: JSON into the `edge-api` types (what axum's `Json` extractor does with
//! `serde_json::from_slice`), and a deploy request on through the controller's admission
//! (`edge_controller::api::admission::admit`), the first code that judges it.
//!
//! Invariants: every body that parses serializes and parses back to the same value; a request admission
//! accepts round-trips through its spec (`request_of` then `admit` gives the same spec); a refusal echoes
//! bounded text, whatever the size of the values it names.

use edge_api::{CredentialRequest, DeployRequest, LabelRequest, NamespaceRequest, TokenRequest};
use edge_controller::api::admission::{admit, request_of};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Target;

pub const TARGET: Target = Target {
    name: "api",
    about: "JSON request bodies (edge-api) and edge_controller::api::admission::admit",
    run,
    dict: &[
        b"\"module\"",
        b"\"replicas\"",
        b"\"cpu_millis\"",
        b"\"memory_bytes\"",
        b"\"env\"",
        b"\"args\"",
        b"\"restart\"",
        b"\"on_node_loss\"",
        b"\"selector\"",
        b"\"memory_limit_bytes\"",
        b"\"cpu_limit_millis\"",
        b"\"timeout_ms\"",
        b"\"volumes\"",
        b"\"labels\"",
        b"\"name\"",
        b"\"size_bytes\"",
        b"\"quota\"",
        b"\"set\"",
        b"\"remove\"",
        b"\"ttl_ms\"",
        b"\"uses\"",
        b"\"node\"",
        b"\"role\"",
        b"\"namespace\"",
        b"null",
        b"true",
        b"\"on-failure\"",
        b"\"stay\"",
        b"\"admin\"",
        b"\\u0000",
        b"\\ud800",
        b"[[\"a\",\"b\"]]",
    ],
    max_len: 4096,
};

/// Longest refusal admission may write, in characters: each echoed value is cut at 63.
const MAX_REFUSAL_CHARS: usize = 320;

fn run(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok(request) = serde_json::from_slice::<DeployRequest>(data) {
        let again: DeployRequest = serde_json::from_slice(&serde_json::to_vec(&request).unwrap()).unwrap();
        assert_eq!(again, request, "JSON round trip");
        match admit(request) {
            Ok(spec) => assert_eq!(admit(request_of(&spec)).as_ref().ok(), Some(&spec), "admit ∘ request_of"),
            Err(e) => {
                let text = e.to_string();
                assert!(text.chars().count() <= MAX_REFUSAL_CHARS, "a {}-character refusal", text.chars().count());
            }
        }
        accepted = true;
    }
    accepted |= round_trips::<NamespaceRequest>(data);
    accepted |= round_trips::<LabelRequest>(data);
    accepted |= round_trips::<TokenRequest>(data);
    accepted |= round_trips::<CredentialRequest>(data);
    accepted
}

/// Parses `data` as a `T`; if it parses, checks that it serializes and parses back to the same JSON value
/// (these types have no `PartialEq`).
fn round_trips<T: DeserializeOwned + Serialize>(data: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<T>(data) else { return false };
    let json = serde_json::to_value(&value).unwrap();
    let again: T = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&again).unwrap(), json, "JSON round trip of {}", std::any::type_name::<T>());
    true
}
