//! The credentials the API checks requests against, keyed by the sha256 of their token. The cluster owns the
//! records (and the store); it replaces entries here after each committed change, so a deleted credential stops
//! working with the reply that deleted it. The HTTP layer only reads, under a read lock held for one lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::rule::Grant;

/// One credential as the API sees it.
#[derive(Debug)]
pub struct Entry {
    pub grant: Grant,
    /// Unix ms; `None`: never.
    pub expires_ms: Option<u64>,
    /// Unix ms of the last request it authenticated (0: none since start); kept in memory only.
    pub last_used_ms: AtomicU64,
}

/// Why a request is not authenticated (a 401), in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    #[error("no credential: send Authorization: Bearer TOKEN (edgectl: --token, $EDGE_TOKEN or the context's token; the admin token is in the controller's data dir, admin.token)")]
    Missing,
    #[error("the Authorization header is not `Bearer TOKEN`")]
    Malformed,
    #[error("unknown credential (deleted, or never created by this controller)")]
    Unknown,
    #[error("credential {0} has expired")]
    Expired(String),
}

#[derive(Debug, Default)]
struct Inner {
    by_hash: HashMap<[u8; 32], Arc<Entry>>,
}

/// Shared handle; cloning shares the same set.
#[derive(Debug, Clone, Default)]
pub struct Access {
    inner: Arc<RwLock<Inner>>,
}

impl Access {
    /// Adds or replaces the credential with this token hash.
    pub fn insert(&self, hash: [u8; 32], grant: Grant, expires_ms: Option<u64>) {
        let entry = Arc::new(Entry { grant, expires_ms, last_used_ms: AtomicU64::new(0) });
        if let Ok(mut inner) = self.inner.write() {
            inner.by_hash.insert(hash, entry);
        }
    }

    /// Forgets the credential with this token hash.
    pub fn remove(&self, hash: &[u8; 32]) {
        if let Ok(mut inner) = self.inner.write() {
            inner.by_hash.remove(hash);
        }
    }

    /// The credential of `authorization` (the header's value, if any) at `now_ms`.
    pub fn authenticate(&self, authorization: Option<&[u8]>, now_ms: u64) -> Result<Arc<Entry>, Unauthenticated> {
        let header = authorization.ok_or(Unauthenticated::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| Unauthenticated::Malformed)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(Unauthenticated::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Unauthenticated::Malformed);
        }
        let hash = super::token_hash(token.trim());
        let entry = {
            let inner = self.inner.read().map_err(|_| Unauthenticated::Unknown)?;
            inner.by_hash.get(&hash).cloned().ok_or(Unauthenticated::Unknown)?
        };
        if entry.expires_ms.is_some_and(|e| now_ms >= e) {
            return Err(Unauthenticated::Expired(entry.grant.name.clone()));
        }
        entry.last_used_ms.store(now_ms, Ordering::Relaxed);
        Ok(entry)
    }

    /// When the credential of this name last authenticated a request (0: not since start).
    pub fn last_used(&self, name: &str) -> u64 {
        let Ok(inner) = self.inner.read() else { return 0 };
        inner.by_hash.values().find(|e| e.grant.name == name).map_or(0, |e| e.last_used_ms.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{generate_token, Role};

    #[test]
    fn authenticates_bearer_tokens_and_says_why_not() {
        let access = Access::default();
        let (token, hash) = generate_token();
        let grant = Grant { name: "ci".into(), role: Role::View, namespace: None };
        access.insert(hash, grant.clone(), Some(1_000));
        let header = format!("Bearer {token}");
        assert_eq!(access.authenticate(Some(header.as_bytes()), 10).unwrap().grant, grant);
        assert_eq!(access.last_used("ci"), 10);
        assert_eq!(access.authenticate(Some(format!("bearer  {token} ").as_bytes()), 10).unwrap().grant, grant);
        assert_eq!(access.authenticate(None, 10).unwrap_err(), Unauthenticated::Missing);
        assert_eq!(access.authenticate(Some(b"Basic abc"), 10).unwrap_err(), Unauthenticated::Malformed);
        assert_eq!(access.authenticate(Some(b"Bearer ecr_00"), 10).unwrap_err(), Unauthenticated::Unknown);
        assert_eq!(access.authenticate(Some(&[0xff, 0xfe]), 10).unwrap_err(), Unauthenticated::Malformed);
        assert_eq!(
            access.authenticate(Some(header.as_bytes()), 1_000).unwrap_err(),
            Unauthenticated::Expired("ci".into())
        );
        access.remove(&hash);
        assert_eq!(access.authenticate(Some(header.as_bytes()), 10).unwrap_err(), Unauthenticated::Unknown);
    }
}
