//! The controller's state store: one redb file, `{data}/controller.redb`. This module is its only owner.
//!
//! Tables (keys are UTF-8 strings, values bytes):
//! - `meta`: `schema_version` → u32 little-endian ([`SCHEMA_VERSION`]); `issuer` → u64 little-endian, random and
//!   never 0, made when the store is created: the issuer of every node spec this store numbers (see
//!   `edge_proto::NodeSpec`), so generations from another store are never compared with ours.
//! - `workloads`: `namespace/name` → JSON [`WorkloadRecord`] (its instances and their placements included).
//! - `nodes`: node name → JSON [`NodeRecord`] (with the generation of the last spec published to it).
//! - `modules`: sha256 hex → JSON [`ModuleRecord`]; `module_blobs`: sha256 hex → the module's bytes.
//! - `namespaces`: name → JSON [`NamespaceRecord`] (its quota). `default` exists without a record.
//! - `artifacts`: `module/fingerprint` → JSON [`ArtifactRecord`]; `artifact_blobs`: same key → the precompiled
//!   bytes (none when the record holds a compile error).
//!
//! **Invariant:** a change is acknowledged to a user only after [`Store::commit`] returned, which is a durable
//! redb commit; several records that must change together go in one [`Store::commit`] call.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::{ArtifactRecord, ModuleRecord, NamespaceRecord, NodeRecord, WorkloadRecord};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const WORKLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("workloads");
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const MODULES: TableDefinition<&str, &[u8]> = TableDefinition::new("modules");
const MODULE_BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("module_blobs");
const NAMESPACES: TableDefinition<&str, &[u8]> = TableDefinition::new("namespaces");
const ARTIFACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("artifacts");
const ARTIFACT_BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("artifact_blobs");

/// The on-disk format version; a store written by another version is refused rather than misread.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {path}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("state store error")]
    Db(#[from] redb::Error),
    #[error("state store has schema version {found}, this controller reads version {SCHEMA_VERSION}")]
    Schema { found: u32 },
    #[error("stored record {key:?} is corrupt")]
    Corrupt { key: String, source: serde_json::Error },
}

fn db_err<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into())
}

/// One change inside a [`Store::commit`].
#[derive(Debug)]
pub enum Change<'a> {
    PutWorkload(&'a WorkloadRecord),
    DeleteWorkload(String),
    PutNode(&'a NodeRecord),
    PutNamespace(&'a NamespaceRecord),
}

pub struct Store {
    db: Database,
    issuer: u64,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::CreateDir { path: dir.display().to_string(), source })?;
        let db = Database::create(dir.join("controller.redb")).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let found = meta.get("schema_version").map_err(db_err)?.map(|v| {
                let b = v.value();
                u32::from_le_bytes(b.try_into().unwrap_or([0; 4]))
            });
            match found {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION.to_le_bytes().as_slice()).map_err(db_err)?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(found) => return Err(StoreError::Schema { found }),
            }
            let issuer = match meta.get("issuer").map_err(db_err)? {
                Some(v) => v.value().try_into().map(u64::from_le_bytes).unwrap_or(0),
                None => 0,
            };
            if issuer == 0 {
                let fresh = rand::random::<u64>().max(1);
                meta.insert("issuer", fresh.to_le_bytes().as_slice()).map_err(db_err)?;
            }
            // Create every table up front so readers never meet a missing one.
            txn.open_table(WORKLOADS).map_err(db_err)?;
            txn.open_table(NODES).map_err(db_err)?;
            txn.open_table(MODULES).map_err(db_err)?;
            txn.open_table(MODULE_BLOBS).map_err(db_err)?;
            txn.open_table(NAMESPACES).map_err(db_err)?;
            txn.open_table(ARTIFACTS).map_err(db_err)?;
            txn.open_table(ARTIFACT_BLOBS).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        let issuer = {
            let txn = db.begin_read().map_err(db_err)?;
            let meta = txn.open_table(META).map_err(db_err)?;
            let value = meta.get("issuer").map_err(db_err)?;
            value.and_then(|v| v.value().try_into().ok()).map(u64::from_le_bytes).unwrap_or(1)
        };
        Ok(Store { db, issuer })
    }

    /// This store's issuer id (see the module doc).
    pub fn issuer(&self) -> u64 {
        self.issuer
    }

    pub fn load_workloads(&self) -> Result<Vec<WorkloadRecord>, StoreError> {
        self.load_all(WORKLOADS)
    }

    pub fn load_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.load_all(NODES)
    }

    pub fn load_namespaces(&self) -> Result<Vec<NamespaceRecord>, StoreError> {
        self.load_all(NAMESPACES)
    }

    pub fn load_modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        self.load_all(MODULES)
    }

    fn load_all<T: DeserializeOwned>(&self, table: TableDefinition<&str, &[u8]>) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(table).map_err(db_err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            out.push(
                serde_json::from_slice(v.value())
                    .map_err(|source| StoreError::Corrupt { key: k.value().to_string(), source })?,
            );
        }
        Ok(out)
    }

    /// Applies `changes` in one durable transaction.
    pub fn commit(&self, changes: &[Change<'_>]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut workloads = txn.open_table(WORKLOADS).map_err(db_err)?;
            let mut nodes = txn.open_table(NODES).map_err(db_err)?;
            let mut namespaces = txn.open_table(NAMESPACES).map_err(db_err)?;
            for change in changes {
                match change {
                    Change::PutWorkload(w) => {
                        workloads.insert(w.key().as_str(), json(w).as_slice()).map_err(db_err)?;
                    }
                    Change::DeleteWorkload(key) => {
                        workloads.remove(key.as_str()).map_err(db_err)?;
                    }
                    Change::PutNode(n) => {
                        nodes.insert(n.name.as_str(), json(n).as_slice()).map_err(db_err)?;
                    }
                    Change::PutNamespace(n) => {
                        namespaces.insert(n.name.as_str(), json(n).as_slice()).map_err(db_err)?;
                    }
                }
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Stores a module's bytes and metadata together (idempotent: content-addressed).
    pub fn put_module(&self, record: &ModuleRecord, bytes: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut blobs = txn.open_table(MODULE_BLOBS).map_err(db_err)?;
            blobs.insert(record.sha256.as_str(), bytes).map_err(db_err)?;
            let mut modules = txn.open_table(MODULES).map_err(db_err)?;
            modules.insert(record.sha256.as_str(), json(record).as_slice()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    pub fn load_artifacts(&self) -> Result<Vec<ArtifactRecord>, StoreError> {
        self.load_all(ARTIFACTS)
    }

    /// Stores an artifact's record and bytes together.
    pub fn put_artifact(&self, record: &ArtifactRecord, bytes: Option<&[u8]>) -> Result<(), StoreError> {
        let key = format!("{}/{}", record.module, record.fingerprint);
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            if let Some(bytes) = bytes {
                txn.open_table(ARTIFACT_BLOBS).map_err(db_err)?.insert(key.as_str(), bytes).map_err(db_err)?;
            }
            txn.open_table(ARTIFACTS).map_err(db_err)?.insert(key.as_str(), json(record).as_slice()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    pub fn artifact_bytes(&self, module: &str, fingerprint: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let blobs = txn.open_table(ARTIFACT_BLOBS).map_err(db_err)?;
        Ok(blobs.get(format!("{module}/{fingerprint}").as_str()).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    pub fn module_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let blobs = txn.open_table(MODULE_BLOBS).map_err(db_err)?;
        Ok(blobs.get(sha256).map_err(db_err)?.map(|v| v.value().to_vec()))
    }
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    // Records are plain data with string keys: serialising them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceRecord, WorkloadSpec};

    fn workload(name: &str) -> WorkloadRecord {
        WorkloadRecord {
            namespace: "default".into(),
            name: name.into(),
            spec: WorkloadSpec {
                module: "ab".repeat(32),
                replicas: 1,
                cpu_millis: 100,
                memory_bytes: 1 << 20,
                env: vec![("K".into(), "V".into())],
                ..Default::default()
            },
            revision: 1,
            instances: vec![InstanceRecord { id: format!("{name}-x"), revision: 1, node: None, reason: None }],
            created_ms: 5,
            history: vec![],
        }
    }

    #[test]
    fn records_survive_reopen_and_deletes_stick() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let (a, b) = (workload("a"), workload("b"));
            store.commit(&[Change::PutWorkload(&a), Change::PutWorkload(&b)]).unwrap();
            store.commit(&[Change::DeleteWorkload(a.key())]).unwrap();
            let m = ModuleRecord { sha256: "cd".repeat(32), size: 3, uploaded_ms: 1 };
            store.put_module(&m, b"abc").unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load_workloads().unwrap(), vec![workload("b")]);
        assert_eq!(store.load_modules().unwrap().len(), 1);
        assert_eq!(store.module_bytes(&"cd".repeat(32)).unwrap().as_deref(), Some(&b"abc"[..]));
        assert_eq!(store.module_bytes("nope").unwrap(), None);
    }

    #[test]
    fn refuses_another_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        {
            let db = Database::create(dir.path().join("controller.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("schema_version", 99u32.to_le_bytes().as_slice()).unwrap();
            txn.commit().unwrap();
        }
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Schema { found: 99 })));
    }
}
