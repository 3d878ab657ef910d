//! The controller's state store: one redb file, `{data}/controller.redb`, with a write-ahead log in front of it,
//! `{data}/controller.wal`. This module is the only owner of both.
//!
//! Tables (keys are UTF-8 strings, values bytes):
//! - `meta`: `schema_version` → u32 little-endian ([`SCHEMA_VERSION`]); `issuer` → u64 little-endian, random and
//!   never 0, made when the store is created: the issuer of every node spec this store numbers (see
//!   `edge_proto::NodeSpec`), so generations from another store are never compared with ours; `wal_seq` → u64
//!   little-endian, the seq of the last log record applied to this state (0 or absent: none).
//! - `workloads`: `namespace/name` → JSON [`WorkloadRecord`] (its instances and their placements included).
//! - `nodes`: node name → JSON [`NodeRecord`] (with the generation of the last spec published to it).
//! - `modules`: sha256 hex → JSON [`ModuleRecord`]; `module_blobs`: sha256 hex → the module's bytes.
//! - `namespaces`: name → JSON [`NamespaceRecord`] (its quota). `default` exists without a record.
//! - `credentials`: name → JSON [`CredentialRecord`] (API bearer credentials: never the token, its sha256).
//! - `audit`: 20-digit seq → JSON [`AuditRecord`], the most recent mutating API calls (bounded by the cluster).
//! - `artifacts`: `module/fingerprint` → JSON [`ArtifactRecord`]; `artifact_blobs`: same key → the precompiled
//!   bytes (none when the record holds a compile error).
//!
//! Layout: this file (the tables, [`Store`], the commit paths and recovery); `record` (the log's record format
//! and the recovery scan, pure); `wal` (the log file: preallocation, append, rewind); `tests`.
//!
//! **How a commit is made durable.** [`Store::commit`], the hot path (every user write, every reconcile pass),
//! appends the changes as one log record (see `record` for the format) with one `pwrite` and one `fdatasync`,
//! then applies the same changes to redb in a transaction with `Durability::None` that also sets
//! `meta.wal_seq` to the record's seq, and only then returns. A non-durable redb commit is visible to readers at
//! once but reaches the disk only with the next durable one: a *checkpoint* (a redb commit with
//! `Durability::Immediate`), made every [`CHECKPOINT_EVERY`] commits or [`CHECKPOINT_BYTES`] of records (redb holds
//! non-durable writes in memory),
//! when the next record would not fit in the log before writing restarts at offset 0, when the store is dropped, and implicitly by every other write ([`Store::put_module`],
//! [`Store::put_artifact`], a change too large for the log), which stay durable redb commits. This is what etcd
//! does: log append + fsync per write, the B-tree backend committed lazily.
//!
//! **Recovery** ([`Store::open`]): redb comes back at its last durable commit, whose `meta.wal_seq` = D names
//! the last record it holds. The log is scanned from offset 0 (the rule is in `record`'s doc): its unbroken
//! prefix of valid, consecutive records is read and the records above D are applied, in order, in one durable
//! commit; the log then restarts at offset 0 with seq D' + 1.
//!
//! **Invariants:**
//! - A change is acknowledged to a user only after [`Store::commit`] returned, which is after its record was on
//!   the disk; several records that must change together go in one [`Store::commit`] call. An error from
//!   `commit` means the change may or may not survive a restart (as with any store).
//! - redb's state, durable or not, always holds exactly the records up to its `meta.wal_seq`, because the record
//!   and its seq are applied in one transaction, in seq order, under the log's lock.
//! - Every record with a seq above the durable `meta.wal_seq` is in the log's unbroken prefix: the log moves
//!   back to offset 0 only after a checkpoint, and every record behind the new writes (older ones, their torn
//!   tails) has a seq at most the durable `meta.wal_seq`, so it can never continue the new prefix.
//! - After a failed append or a failed non-durable apply the store refuses every further write
//!   ([`StoreError::Poisoned`]) and skips its closing checkpoint: redb and the log may disagree, and the next
//!   open settles it from the log.

use std::borrow::Borrow;
use std::path::Path;
use std::sync::Mutex;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::{
    ArtifactRecord, AuditRecord, CredentialRecord, MemberRecord, ModuleRecord, NamespaceRecord, NodeRecord,
    TokenRecord, WorkloadRecord,
};

mod record;
#[cfg(test)]
mod tests;
mod wal;

pub use record::ScanError;
use record::{Op, Table};
use wal::WalFile;
pub use wal::WalOptions;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const WORKLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("workloads");
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const MODULES: TableDefinition<&str, &[u8]> = TableDefinition::new("modules");
const MODULE_BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("module_blobs");
const NAMESPACES: TableDefinition<&str, &[u8]> = TableDefinition::new("namespaces");
const ARTIFACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("artifacts");
const ARTIFACT_BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("artifact_blobs");
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
const MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("members");
const CREDENTIALS: TableDefinition<&str, &[u8]> = TableDefinition::new("credentials");
const AUDIT: TableDefinition<&str, &[u8]> = TableDefinition::new("audit");

/// `meta` key of the seq of the last log record applied (see the module doc).
const WAL_SEQ: &str = "wal_seq";

/// The on-disk format version; a store written by another version is refused rather than misread. Version 2
/// added the write-ahead log: a version 1 store (no log) is upgraded in place, and a controller that reads
/// only version 1 refuses a version 2 store instead of opening it without replaying its log.
pub const SCHEMA_VERSION: u32 = 2;

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
    #[error("cannot read or write the state store's log {path}")]
    Wal { path: String, source: std::io::Error },
    #[error("the state store's log {path} cannot be replayed")]
    WalReplay { path: String, source: ScanError },
    #[error("the state store's meta.wal_seq is {found}: no log record can follow it")]
    WalSeqExhausted { found: u64 },
    #[error("the state store failed a write earlier and takes no more until the controller restarts")]
    Poisoned,
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
    DeleteNode(String),
    PutToken(&'a TokenRecord),
    DeleteToken(String),
    PutMember(&'a MemberRecord),
    DeleteMember(String),
    PutCredential(&'a CredentialRecord),
    DeleteCredential(String),
    PutAudit(&'a AuditRecord),
    DeleteAudit(u64),
}

impl Change<'_> {
    fn op(&self) -> Op {
        match self {
            Change::PutWorkload(w) => Op { table: Table::Workloads, key: w.key(), value: Some(json(w)) },
            Change::DeleteWorkload(key) => Op { table: Table::Workloads, key: key.clone(), value: None },
            Change::PutNode(n) => Op { table: Table::Nodes, key: n.name.clone(), value: Some(json(n)) },
            Change::PutNamespace(n) => Op { table: Table::Namespaces, key: n.name.clone(), value: Some(json(n)) },
            Change::DeleteNode(name) => Op { table: Table::Nodes, key: name.clone(), value: None },
            Change::PutToken(t) => Op { table: Table::Tokens, key: t.id.clone(), value: Some(json(t)) },
            Change::DeleteToken(id) => Op { table: Table::Tokens, key: id.clone(), value: None },
            Change::PutMember(m) => Op { table: Table::Members, key: m.name.clone(), value: Some(json(m)) },
            Change::DeleteMember(name) => Op { table: Table::Members, key: name.clone(), value: None },
            Change::PutCredential(c) => Op { table: Table::Credentials, key: c.name.clone(), value: Some(json(c)) },
            Change::DeleteCredential(name) => Op { table: Table::Credentials, key: name.clone(), value: None },
            Change::PutAudit(a) => Op { table: Table::Audit, key: audit_key(a.seq), value: Some(json(a)) },
            Change::DeleteAudit(seq) => Op { table: Table::Audit, key: audit_key(*seq), value: None },
        }
    }
}

pub struct Store {
    db: Database,
    issuer: u64,
    /// Guards the log and orders commits: a record is appended and applied to redb under this lock, so redb
    /// applies records in seq order.
    log: Mutex<Log>,
}

/// The writer's side of the log.
struct Log {
    file: WalFile,
    /// The seq of the next record; the last one applied to redb is `next_seq - 1`.
    next_seq: u64,
    /// Whether a non-durable redb commit may have been made since the last checkpoint.
    dirty: bool,
    /// Set when an append or a non-durable apply failed (see the module invariants).
    poisoned: bool,
    /// Non-durable commits since the last checkpoint, and the bytes of their records.
    since_checkpoint: u32,
    bytes_since_checkpoint: usize,
}

impl Log {
    /// Every commit so far is durable in redb: nothing is owed to the next checkpoint.
    fn checkpointed(&mut self) {
        self.dirty = false;
        self.since_checkpoint = 0;
        self.bytes_since_checkpoint = 0;
    }
}

/// Non-durable commits, and bytes of their records, between two checkpoints at most: redb holds what a
/// non-durable commit wrote in memory until the next durable one, so these bound that memory. A checkpoint costs
/// one durable commit (about two appends' worth); one per 16 commits was measured to cost the median write
/// about 0.05 ms (a third of the store's commit), hence the larger count.
const CHECKPOINT_EVERY: u32 = 1_024;
const CHECKPOINT_BYTES: usize = 1 << 20;
/// Batches of more changes than this skip the log (see [`Store::commit`]): their fsync is amortised anyway.
const LARGE_BATCH: usize = 256;

impl Store {
    /// Opens (or creates) the store in `dir`, replaying its log, with a log of the default size.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, WalOptions::default())
    }

    /// Opens (or creates) the store in `dir`, replaying its log (see the module doc), with a log of
    /// `options.size` bytes from now on.
    pub fn open_with(dir: &Path, options: WalOptions) -> Result<Store, StoreError> {
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
                None | Some(1) => {
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
            txn.open_table(TOKENS).map_err(db_err)?;
            txn.open_table(MEMBERS).map_err(db_err)?;
            txn.open_table(CREDENTIALS).map_err(db_err)?;
            txn.open_table(AUDIT).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        let (issuer, durable) = {
            let txn = db.begin_read().map_err(db_err)?;
            let meta = txn.open_table(META).map_err(db_err)?;
            let read = |key: &str| -> Result<Option<u64>, StoreError> {
                Ok(meta.get(key).map_err(db_err)?.and_then(|v| v.value().try_into().ok()).map(u64::from_le_bytes))
            };
            (read("issuer")?.unwrap_or(1), read(WAL_SEQ)?.unwrap_or(0))
        };
        let durable = replay(&db, dir, issuer, durable)?;
        let next_seq = durable.checked_add(1).ok_or(StoreError::WalSeqExhausted { found: durable })?;
        let file = WalFile::prepare(dir, options.size)
            .map_err(|source| StoreError::Wal { path: dir.join(wal::FILE_NAME).display().to_string(), source })?;
        Ok(Store {
            db,
            issuer,
            log: Mutex::new(Log {
                file,
                next_seq,
                dirty: false,
                poisoned: false,
                since_checkpoint: 0,
                bytes_since_checkpoint: 0,
            }),
        })
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

    pub fn load_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.load_all(TOKENS)
    }

    pub fn load_members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        self.load_all(MEMBERS)
    }

    pub fn load_credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        self.load_all(CREDENTIALS)
    }

    /// The audit trail, oldest first (its keys sort as numbers).
    pub fn load_audit(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.load_all(AUDIT)
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

    /// Applies `changes` atomically and durably: one log record appended and synced, then a non-durable redb
    /// commit (see the module doc). A change too large for the log is one durable redb commit instead.
    pub fn commit(&self, changes: &[Change<'_>]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut log = self.log.lock().map_err(|_| StoreError::Poisoned)?;
        if log.poisoned {
            return Err(StoreError::Poisoned);
        }
        if changes.len() > LARGE_BATCH {
            // One durable redb commit, each change serialised as it is inserted: no copy of the whole batch is
            // held (a full pass over 10,000 new nodes would hold three), and no dirty pages wait for a checkpoint.
            apply(&self.db, changes.iter().map(Change::op), None, Durability::Immediate)?;
            // Durable, with every earlier non-durable commit (their `meta.wal_seq` included).
            log.checkpointed();
            return Ok(());
        }
        let ops: Vec<Op> = changes.iter().map(Change::op).collect();
        let seq = log.next_seq;
        let record = record::encode(seq, self.issuer, &ops)
            .filter(|r| u64::try_from(r.len()).is_ok_and(|len| len <= log.file.size()));
        let Some(record) = record else {
            // Durable by itself, and it makes every earlier non-durable commit durable with it. It takes no seq:
            // `meta.wal_seq` still names the last record applied, and the next record follows it.
            return apply(&self.db, &ops, None, Durability::Immediate);
        };
        let next_seq = seq.checked_add(1).ok_or(StoreError::WalSeqExhausted { found: seq })?;
        if !log.file.fits(record.len()) {
            // Every record in the log is applied; make them durable before writing over them.
            checkpoint(&self.db, seq - 1)?;
            log.checkpointed();
            log.file.rewind();
        }
        if let Err(source) = log.file.append(&record) {
            log.poisoned = true;
            return Err(StoreError::Wal { path: log.file.path().display().to_string(), source });
        }
        log.next_seq = next_seq;
        log.dirty = true;
        apply(&self.db, &ops, Some(seq), Durability::None).inspect_err(|_| log.poisoned = true)?;
        log.since_checkpoint += 1;
        log.bytes_since_checkpoint = log.bytes_since_checkpoint.saturating_add(record.len());
        if log.since_checkpoint >= CHECKPOINT_EVERY || log.bytes_since_checkpoint >= CHECKPOINT_BYTES {
            // Not rewound: the records behind stay a consecutive prefix, all at most the durable `wal_seq`.
            checkpoint(&self.db, seq)?;
            log.checkpointed();
        }
        Ok(())
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

impl Drop for Store {
    /// A clean close checkpoints, so the next open has nothing to replay. Best effort: if it fails, that open
    /// replays the log instead.
    fn drop(&mut self) {
        let Ok(log) = self.log.get_mut() else { return };
        if log.dirty && !log.poisoned {
            if let Err(e) = checkpoint(&self.db, log.next_seq - 1) {
                tracing::warn!(error = %e, "cannot checkpoint the state store on close; the next open replays its log");
            }
        }
    }
}

/// Applies the log's records above `durable` in one durable commit; returns the new durable `meta.wal_seq`.
fn replay(db: &Database, dir: &Path, salt: u64, durable: u64) -> Result<u64, StoreError> {
    let path = dir.join(wal::FILE_NAME);
    let bytes = wal::read(&path).map_err(|source| StoreError::Wal { path: path.display().to_string(), source })?;
    let entries = record::scan(&bytes, salt, durable)
        .map_err(|source| StoreError::WalReplay { path: path.display().to_string(), source })?;
    let Some(last) = entries.last().map(|e| e.seq) else { return Ok(durable) };
    let ops: Vec<Op> = entries.into_iter().flat_map(|e| e.ops).collect();
    apply(db, &ops, Some(last), Durability::Immediate)?;
    tracing::info!(from = durable.saturating_add(1), to = last, "replayed the state store's log");
    Ok(last)
}

/// A durable commit of everything committed so far, with `meta.wal_seq = seq` (the last record applied: the
/// value already there, written again so the commit is never empty).
fn checkpoint(db: &Database, seq: u64) -> Result<(), StoreError> {
    apply(db, std::iter::empty::<Op>(), Some(seq), Durability::Immediate)
}

/// One redb commit of `ops`, in order, and of `meta.wal_seq = seq` when given.
fn apply<O: Borrow<Op>>(
    db: &Database,
    ops: impl IntoIterator<Item = O>,
    seq: Option<u64>,
    durability: Durability,
) -> Result<(), StoreError> {
    let mut txn = db.begin_write().map_err(db_err)?;
    txn.set_durability(durability).map_err(db_err)?;
    {
        // Only the tables this commit changes are opened (opening costs a lookup in the table tree).
        let (mut workloads, mut nodes, mut namespaces, mut tokens, mut members) = (None, None, None, None, None);
        let (mut credentials, mut audit) = (None, None);
        for op in ops {
            let op = op.borrow();
            let table = match op.table {
                Table::Workloads => opened(&txn, &mut workloads, WORKLOADS)?,
                Table::Nodes => opened(&txn, &mut nodes, NODES)?,
                Table::Namespaces => opened(&txn, &mut namespaces, NAMESPACES)?,
                Table::Tokens => opened(&txn, &mut tokens, TOKENS)?,
                Table::Members => opened(&txn, &mut members, MEMBERS)?,
                Table::Credentials => opened(&txn, &mut credentials, CREDENTIALS)?,
                Table::Audit => opened(&txn, &mut audit, AUDIT)?,
            };
            match &op.value {
                Some(value) => table.insert(op.key.as_str(), value.as_slice()).map(drop),
                None => table.remove(op.key.as_str()).map(drop),
            }
            .map_err(db_err)?;
        }
        if let Some(seq) = seq {
            txn.open_table(META).map_err(db_err)?.insert(WAL_SEQ, seq.to_le_bytes().as_slice()).map_err(db_err)?;
        }
    }
    txn.commit().map_err(db_err)
}

/// An audit record's key: its seq in 20 digits, so that keys sort as the numbers do.
fn audit_key(seq: u64) -> String {
    format!("{seq:020}")
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    // Records are plain data with string keys: serialising them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// `slot`'s table, opened in `txn` on first use.
fn opened<'t, 's>(
    txn: &'t redb::WriteTransaction,
    slot: &'s mut Option<redb::Table<'t, &'static str, &'static [u8]>>,
    def: redb::TableDefinition<'static, &'static str, &'static [u8]>,
) -> Result<&'s mut redb::Table<'t, &'static str, &'static [u8]>, StoreError> {
    if slot.is_none() {
        *slot = Some(txn.open_table(def).map_err(db_err)?);
    }
    Ok(slot.as_mut().expect("just opened"))
}
