//! The agent's local store: one redb file, `{data}/agent.redb`. This module is its only owner.
//!
//! Tables:
//! - `meta`: `schema_version` → u32 LE; `seq_ceiling` → u64 LE (event sequence numbers below it may have been
//!   used: after a restart numbering resumes at the ceiling, so sequence numbers never repeat).
//! - `spec`: `current` → postcard `NodeSpec` (the last accepted desired state, with its generation).
//! - `modules`: sha256 (32 bytes) → module bytes (content-addressed; verified before insertion).
//!
//! **Invariant:** a spec is committed here before any instance is started or stopped because of it.

use std::path::Path;

use edge_proto::{NodeSpec, Sha256};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SPEC: TableDefinition<&str, &[u8]> = TableDefinition::new("spec");
const MODULES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("modules");

pub const SCHEMA_VERSION: u32 = 1;

/// Sequence numbers reserved per store write.
pub const SEQ_BLOCK: u64 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {path}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("agent store error")]
    Db(#[from] redb::Error),
    #[error("agent store has schema version {found}, this agent reads version {SCHEMA_VERSION}")]
    Schema { found: u32 },
    #[error("the persisted spec is corrupt")]
    CorruptSpec,
}

fn db_err<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into())
}

pub struct Store {
    db: Database,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::CreateDir { path: dir.display().to_string(), source })?;
        let db = Database::create(dir.join("agent.redb")).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let found = meta.get("schema_version").map_err(db_err)?.map(|v| le_u32(v.value()));
            match found {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION.to_le_bytes().as_slice()).map_err(db_err)?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(found) => return Err(StoreError::Schema { found }),
            }
            txn.open_table(SPEC).map_err(db_err)?;
            txn.open_table(MODULES).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(Store { db })
    }

    /// The last accepted spec, if any.
    pub fn spec(&self) -> Result<Option<NodeSpec>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SPEC).map_err(db_err)?;
        match table.get("current").map_err(db_err)? {
            Some(v) => postcard::from_bytes(v.value()).map(Some).map_err(|_| StoreError::CorruptSpec),
            None => Ok(None),
        }
    }

    pub fn put_spec(&self, spec: &NodeSpec) -> Result<(), StoreError> {
        let bytes = postcard::to_allocvec(spec).map_err(|_| StoreError::CorruptSpec)?;
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(SPEC).map_err(db_err)?.insert("current", bytes.as_slice()).map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    pub fn module(&self, sha: &Sha256) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(MODULES).map_err(db_err)?;
        Ok(table.get(sha).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    pub fn has_module(&self, sha: &Sha256) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(MODULES).map_err(db_err)?;
        Ok(table.get(sha).map_err(db_err)?.is_some())
    }

    /// Stores verified module bytes under their hash.
    pub fn put_module(&self, sha: &Sha256, bytes: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(MODULES).map_err(db_err)?.insert(sha, bytes).map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// Reserves the next block of event sequence numbers and returns its first number.
    pub fn reserve_seq_block(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let start;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            start = meta.get("seq_ceiling").map_err(db_err)?.map_or(1, |v| le_u64(v.value()));
            meta.insert("seq_ceiling", (start + SEQ_BLOCK).to_le_bytes().as_slice()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(start)
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().unwrap_or([0; 4]))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_proto::{InstanceSpec, RestartPolicy};

    #[test]
    fn spec_modules_and_sequence_blocks_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let spec = NodeSpec {
            generation: 4,
            instances: vec![InstanceSpec {
                id: "t-1".into(),
                namespace: "default".into(),
                workload: "t".into(),
                module: [1; 32],
                module_size: 3,
                args: vec![],
                env: vec![],
                cpu_millis: 1,
                memory_limit_bytes: 1 << 20,
                restart: RestartPolicy::Never,
            }],
        };
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.spec().unwrap(), None);
            s.put_spec(&spec).unwrap();
            s.put_module(&[1; 32], b"abc").unwrap();
            assert_eq!(s.reserve_seq_block().unwrap(), 1);
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.spec().unwrap(), Some(spec));
        assert_eq!(s.module(&[1; 32]).unwrap().as_deref(), Some(&b"abc"[..]));
        assert!(!s.has_module(&[2; 32]).unwrap());
        assert_eq!(s.reserve_seq_block().unwrap(), 1 + SEQ_BLOCK);
    }
}
