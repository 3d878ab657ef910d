//! The shapes of API access: credentials (`/v1/credentials`) and the audit trail (`/v1/audit`).
//!
//! A credential is a bearer token (`Authorization: Bearer ecr_…`) with a role, cluster-wide or held to one
//! namespace. Roles, from least to most: `view` reads; `edit` also deploys, scales, deletes workloads and reads
//! their logs; `admin` (cluster-wide only) also manages nodes, namespaces and their quotas, join tokens and
//! credentials.

use serde::{Deserialize, Serialize};

/// Body of `POST /v1/credentials`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRequest {
    /// A DNS label (1–63 of `a-z`, `0-9`, `-`), unique among credentials.
    pub name: String,
    /// `admin`, `edit` or `view`.
    pub role: String,
    /// Hold the credential to this namespace; `None`: every namespace (`admin` is always cluster-wide).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Lifetime in milliseconds; `None`: it does not expire.
    #[serde(default)]
    pub ttl_ms: Option<u64>,
}

/// One credential as `GET /v1/credentials` lists it: never its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialView {
    pub name: String,
    pub role: String,
    /// `None`: cluster-wide.
    pub namespace: Option<String>,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339; `None`: never.
    pub expires: Option<String>,
    pub expired: bool,
    /// RFC 3339 of its last authenticated request since the controller started; `None`: none yet.
    #[serde(default)]
    pub last_used: Option<String>,
}

/// Reply of `POST /v1/credentials` (201): the bearer token, shown this once (the controller keeps only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialCreated {
    pub token: String,
    pub view: CredentialView,
}

/// One recorded mutating call (`GET /v1/audit`, `edgectl events --audit`), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    /// RFC 3339 with milliseconds.
    pub at: String,
    /// The credential's name; `-` for a request that carried none (refused with 401).
    pub who: String,
    /// `METHOD /path` (the query left off).
    pub what: String,
    /// The reply's HTTP status.
    pub status: u16,
    /// For a refusal (401/403): why, as the caller was told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
