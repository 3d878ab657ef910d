//! API credentials (`edgectl create credential`, `get credentials`, `delete credential`), the admin credential
//! made at first start, and the audit trail of mutating calls (`edgectl events --audit`).
//!
//! Every change is committed before [`Access`] (what the HTTP layer checks) is told, so a credential works only
//! once it is stored, and stops working with the reply that deleted it. The trail keeps the last
//! [`AUDIT_KEPT`] calls, in the store and in memory; older ones are deleted in the commit that adds a new one.

use std::collections::{BTreeMap, VecDeque};

use edge_api::{AuditView, CredentialCreated, CredentialRequest, CredentialView};

use super::{Cluster, ClusterError};
use crate::access::{generate_token, Access, Grant, Role};
use crate::clock::{now_ms, rfc3339_ms};
use crate::model::{AuditRecord, CredentialRecord};
use crate::registry::hash_from_hex;
use crate::store::{Change, Store, StoreError};

/// Calls kept in the audit trail.
pub const AUDIT_KEPT: usize = 10_000;
/// Credentials kept at most.
const MAX_CREDENTIALS: usize = 1_000;
/// Longest lifetime one may be given (`--ttl`): ten years.
const MAX_TTL_MS: u64 = 3_660 * 24 * 3600 * 1000;
/// Longest path an audit record keeps (paths are bounded by names of at most 63 bytes; this is a backstop).
const AUDIT_WHAT_BYTES: usize = 256;
/// The name of the credential made at first start.
pub const ADMIN_NAME: &str = "admin";

/// The cluster's credentials and audit trail.
#[derive(Debug, Default)]
pub struct Credentials {
    records: BTreeMap<String, CredentialRecord>,
    access: Access,
    audit: VecDeque<AuditRecord>,
    next_seq: u64,
}

impl Credentials {
    pub fn load(store: &Store) -> Result<Credentials, StoreError> {
        let access = Access::default();
        let mut records = BTreeMap::new();
        for r in store.load_credentials()? {
            match (hash_from_hex(&r.token_sha256), Role::parse(&r.role)) {
                (Some(hash), Some(role)) => access.insert(
                    hash,
                    Grant { name: r.name.clone(), role, namespace: r.namespace.clone() },
                    r.expires_ms,
                ),
                // Refused rather than guessed at: a record this version cannot read grants nothing.
                _ => tracing::warn!(credential = %r.name, "stored credential unreadable; it grants nothing"),
            }
            records.insert(r.name.clone(), r);
        }
        let audit: VecDeque<AuditRecord> = store.load_audit()?.into();
        let next_seq = audit.back().map_or(1, |a| a.seq.saturating_add(1));
        Ok(Credentials { records, access, audit, next_seq })
    }

    /// What the HTTP layer checks requests against.
    pub fn access(&self) -> Access {
        self.access.clone()
    }
}

impl Cluster {
    /// The set the API authenticates against (shared; changes here show there at once).
    pub fn api_access(&self) -> Access {
        self.access.access()
    }

    /// At start: when no admin credential is left that has not expired, makes one (named `admin`, or `admin-2`…
    /// when that name is taken) and returns its token, for the controller to write to `admin.token` and print
    /// once. `None`: an admin credential exists.
    /// With `reset`, makes one whatever exists (`edge-controller --reset-admin`: the admin token was lost).
    pub fn ensure_admin(&mut self, reset: bool) -> Result<Option<String>, ClusterError> {
        let now = now_ms();
        let usable = |r: &CredentialRecord| r.role == "admin" && r.expires_ms.is_none_or(|e| now < e);
        if !reset && self.access.records.values().any(usable) {
            return Ok(None);
        }
        let name = (1..)
            .map(|i| if i == 1 { ADMIN_NAME.to_string() } else { format!("{ADMIN_NAME}-{i}") })
            .find(|n| !self.access.records.contains_key(n))
            .unwrap_or_else(|| ADMIN_NAME.to_string());
        let req = CredentialRequest { name, role: "admin".into(), namespace: None, ttl_ms: None };
        Ok(Some(self.create_credential(req)?.token))
    }

    /// `edgectl create credential NAME [--namespace NS] [--role R] [--ttl D]`.
    pub fn create_credential(&mut self, req: CredentialRequest) -> Result<CredentialCreated, ClusterError> {
        super::check_name("credential", &req.name)?;
        let role = Role::parse(&req.role).ok_or_else(|| {
            ClusterError::Invalid(format!("role {:?} is not one of admin, edit, view", truncated_to(&req.role, 63)))
        })?;
        if let Some(ns) = &req.namespace {
            super::check_name("namespace", ns)?;
            if role == Role::Admin {
                return Err(ClusterError::Invalid(
                    "the admin role is cluster-wide: give a namespace's team the edit role (--role edit)".into(),
                ));
            }
            if ns != super::DEFAULT_NAMESPACE && !self.namespaces.contains_key(ns) {
                return Err(ClusterError::NotFound(format!(
                    "namespace {ns} does not exist (edgectl create namespace {ns})"
                )));
            }
        }
        if let Some(ttl) = req.ttl_ms {
            if ttl == 0 || ttl > MAX_TTL_MS {
                return Err(ClusterError::Invalid(format!("ttl must be between 1ms and 3660d, not {ttl} ms")));
            }
        }
        if self.access.records.contains_key(&req.name) {
            return Err(ClusterError::Conflict(format!(
                "credential {} exists (delete it first: edgectl delete credential {})",
                req.name, req.name
            )));
        }
        if self.access.records.len() >= MAX_CREDENTIALS {
            return Err(ClusterError::Conflict(format!("there are {MAX_CREDENTIALS} credentials already")));
        }
        let now = now_ms();
        let (token, hash) = generate_token();
        let record = CredentialRecord {
            name: req.name,
            role: role.as_str().to_string(),
            namespace: req.namespace,
            token_sha256: hex::encode(hash),
            created_ms: now,
            expires_ms: req.ttl_ms.map(|t| now.saturating_add(t)),
        };
        self.store.commit(&[Change::PutCredential(&record)])?;
        let grant = Grant { name: record.name.clone(), role, namespace: record.namespace.clone() };
        self.access.access.insert(hash, grant, record.expires_ms);
        let view = self.credential_view(&record, now);
        self.access.records.insert(record.name.clone(), record);
        Ok(CredentialCreated { token, view })
    }

    pub fn credential_views(&self) -> Vec<CredentialView> {
        let now = now_ms();
        self.access.records.values().map(|r| self.credential_view(r, now)).collect()
    }

    /// `edgectl delete credential NAME`. The last admin credential that has not expired stays (deleting it
    /// would leave the cluster without anyone to manage it until a restart made a new one).
    pub fn delete_credential(&mut self, name: &str) -> Result<(), ClusterError> {
        let Some(record) = self.access.records.get(name) else {
            return Err(ClusterError::NotFound(format!(
                "credential {} not found (edgectl get credentials)",
                truncated_to(name, 63)
            )));
        };
        let now = now_ms();
        let usable = |r: &CredentialRecord| r.role == "admin" && r.expires_ms.is_none_or(|e| now < e);
        if usable(record) && self.access.records.values().filter(|r| usable(r)).count() == 1 {
            return Err(ClusterError::Conflict(format!(
                "{name} is the last admin credential: create another first (edgectl create credential NAME --role admin)"
            )));
        }
        let hash = hash_from_hex(&record.token_sha256);
        self.store.commit(&[Change::DeleteCredential(name.to_string())])?;
        if let Some(hash) = hash {
            self.access.access.remove(&hash);
        }
        self.access.records.remove(name);
        Ok(())
    }

    /// Records one mutating call (after its reply). A failed commit is logged, not returned: the call has
    /// happened; the trail's gap is in the controller's log.
    pub fn record_audit(&mut self, who: String, what: String, status: u16, reason: Option<String>) {
        let record = AuditRecord {
            seq: self.access.next_seq,
            at_ms: now_ms(),
            who,
            what: truncated_to(&what, AUDIT_WHAT_BYTES),
            status,
            reason,
        };
        let mut changes = vec![Change::PutAudit(&record)];
        let evicted = (self.access.audit.len() + 1).saturating_sub(AUDIT_KEPT);
        let old: Vec<u64> = self.access.audit.iter().take(evicted).map(|a| a.seq).collect();
        changes.extend(old.iter().map(|s| Change::DeleteAudit(*s)));
        if let Err(e) = self.store.commit(&changes) {
            tracing::error!(error = %e, who = %record.who, what = %record.what, "cannot record an API call in the audit trail");
            return;
        }
        self.access.audit.drain(..evicted);
        self.access.next_seq = self.access.next_seq.saturating_add(1);
        self.access.audit.push_back(record);
    }

    /// The trail, oldest first; at most the last `limit` calls.
    pub fn audit_views(&self, limit: usize) -> Vec<AuditView> {
        let skip = self.access.audit.len().saturating_sub(limit);
        self.access
            .audit
            .iter()
            .skip(skip)
            .map(|a| AuditView {
                at: rfc3339_ms(a.at_ms),
                who: a.who.clone(),
                what: a.what.clone(),
                status: a.status,
                reason: a.reason.clone(),
            })
            .collect()
    }

    fn credential_view(&self, r: &CredentialRecord, now: u64) -> CredentialView {
        let used = self.access.access.last_used(&r.name);
        CredentialView {
            name: r.name.clone(),
            role: r.role.clone(),
            namespace: r.namespace.clone(),
            created: rfc3339_ms(r.created_ms),
            expires: r.expires_ms.map(rfc3339_ms),
            expired: r.expires_ms.is_some_and(|e| now >= e),
            last_used: (used > 0).then(|| rfc3339_ms(used)),
        }
    }
}

/// `s` cut to at most `max` bytes (at a character boundary), with `…` when cut: what an error or the trail
/// echoes of a caller's string.
fn truncated_to(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
