//! The agent's local store: one redb file, `{data}/agent.redb`. This module is its only owner.
//!
//! Tables:
//! - `meta`: `schema_version` → u32 LE; `store_id` → u64 LE (random, never 0, fixed at creation); `next_seq` →
//!   u64 LE (the next event sequence number); `events_dropped` → u64 LE (outbox overflow, since creation);
//!   `engine` → the engine profile's fingerprint; `report_counter_mark` → u64 LE, the end of the last block of
//!   report counters reserved ([`crate::tagger`]; absent in a store that never tagged: 0).
//! - `spec`: `current` → postcard `NodeSpec` of protocol 4 (the last accepted desired state, with its issuer and
//!   generation); `signature` → the cluster's 64-byte signature it arrived with, when the node joined (verified
//!   again at every boot, see [`crate::verify`]); `retired` → postcard `Vec<u64>`, the issuers whose specs were
//!   replaced by another issuer's (the last [`RETIRED_ISSUERS`]), so their specs are never taken again. Added
//!   without a schema change: an older agent ignores them.
//! - `modules`: module sha256 → what the runtime loads for it: the artifact precompiled for this node's engine
//!   profile (from the controller, verified against its announced hash), or WebAssembly bytes (standalone
//!   manifests). `meta.engine` names the profile's fingerprint; a different profile empties this cache.
//! - `module_meta`: sha256 → postcard `(size, last_referenced_ms)`, for the disk budget's eviction order.
//! - `outbox`: sequence number → postcard `Event`, every event not yet acknowledged by the controller.
//! - `restarts`: instance id → u32 LE, how many times the agent started the instance again.
//! - `finished`: instance id → postcard [`Finished`]: the terminal state of a run-to-completion instance (its
//!   policy said not to restart it), so an agent restart never runs it again.
//! - `identity`: `current` → postcard [`Identity`]: the node's name, the pinned cluster key and its MQTT
//!   password, written once when the node joins (`--join`). Added without a schema change: an older agent
//!   ignores the table (and connects anonymously), a store without it is a node that never joined.
//!
//! **Invariants:**
//! - A spec is committed here before any instance is started or stopped because of it.
//! - Event sequence numbers are contiguous and never repeat: the outbox insert and `next_seq` move in one
//!   transaction, so a gap the controller sees is an event the full outbox dropped, nothing else.
//! - A module referenced by the current spec is never evicted.
//! - A finished instance stays finished for as long as its id is in the spec (ids change with templates).
//! - An identity is written only after the controller's acceptance verified under the token's cluster key, in
//!   one durable commit: a store holds a whole identity or none.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use edge_proto::{Event, NodeSpec, Sha256};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

pub use crate::identity::Identity;
pub use crate::supervisor::Finished;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SPEC: TableDefinition<&str, &[u8]> = TableDefinition::new("spec");
const MODULES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("modules");
const MODULE_META: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("module_meta");
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
const RESTARTS: TableDefinition<&str, u32> = TableDefinition::new("restarts");
const FINISHED: TableDefinition<&str, &[u8]> = TableDefinition::new("finished");
const IDENTITY: TableDefinition<&str, &[u8]> = TableDefinition::new("identity");

/// Version 1 numbered events in reserved blocks and had no outbox; version 2 kept protocol-v2 specs and
/// WebAssembly bytes; version 3 kept protocol-3 specs (no issuer) and had no `finished` table. All are migrated
/// on open: versions 1 and 2 drop their spec and module cache (the controller sends the spec again and the
/// artifacts are fetched anew); version 3's spec is kept, with issuer 0 (a protocol-3 document).
pub const SCHEMA_VERSION: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {path}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("agent store error")]
    Db(#[from] redb::Error),
    #[error("agent store has schema version {found}, this agent reads versions up to {SCHEMA_VERSION}")]
    Schema { found: u32 },
    #[error("cannot make the agent store {path} private (mode 0600) before storing the node's password")]
    Permissions { path: String, source: std::io::Error },
    #[error("the persisted {what} is corrupt")]
    Corrupt { what: &'static str },
}

fn db_err<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into())
}

/// What [`Store::append_events`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Oldest events removed because the outbox was over its bound.
    pub dropped: u64,
}

pub struct Store {
    db: Database,
    /// The redb file, whose mode [`Store::put_identity`] narrows before a secret goes into it.
    path: PathBuf,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::CreateDir { path: dir.display().to_string(), source })?;
        let path = dir.join("agent.redb");
        let db = Database::create(&path).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let found = meta.get("schema_version").map_err(db_err)?.map(|v| le_u32(v.value()));
            match found {
                None => {
                    meta.insert("next_seq", 1u64.to_le_bytes().as_slice()).map_err(db_err)?;
                }
                Some(1) => {
                    // Numbering resumes at the old block ceiling, above every number version 1 handed out.
                    let ceiling = meta.get("seq_ceiling").map_err(db_err)?.map_or(1, |v| le_u64(v.value()));
                    meta.remove("seq_ceiling").map_err(db_err)?;
                    meta.insert("next_seq", ceiling.to_le_bytes().as_slice()).map_err(db_err)?;
                    drop_spec_and_modules(&txn)?;
                }
                Some(2) => drop_spec_and_modules(&txn)?,
                Some(3) => migrate_v3_spec(&txn)?,
                Some(SCHEMA_VERSION) => {}
                Some(found) => return Err(StoreError::Schema { found }),
            }
            // 0 means "not said" on the wire (a protocol-3 peer): a store id is never 0. A missing one (new or
            // version-1 store) or a 0 (a random draw of 1 in 2^64) gets a fresh id.
            if meta.get("store_id").map_err(db_err)?.map_or(0, |v| le_u64(v.value())) == 0 {
                meta.insert("store_id", new_store_id().to_le_bytes().as_slice()).map_err(db_err)?;
            }
            meta.insert("schema_version", SCHEMA_VERSION.to_le_bytes().as_slice()).map_err(db_err)?;
            txn.open_table(SPEC).map_err(db_err)?;
            txn.open_table(MODULES).map_err(db_err)?;
            txn.open_table(MODULE_META).map_err(db_err)?;
            txn.open_table(OUTBOX).map_err(db_err)?;
            txn.open_table(RESTARTS).map_err(db_err)?;
            txn.open_table(FINISHED).map_err(db_err)?;
            txn.open_table(IDENTITY).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(Store { db, path })
    }

    /// Records the engine profile's fingerprint; when it changed (another `--engine`, another wasmtime), every
    /// cached module is dropped, since artifacts compiled for the old profile no longer load.
    pub fn use_engine(&self, fingerprint: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let same = meta.get("engine").map_err(db_err)?.is_some_and(|v| v.value() == fingerprint.as_bytes());
            if !same {
                txn.delete_table(MODULES).map_err(db_err)?;
                txn.delete_table(MODULE_META).map_err(db_err)?;
                txn.open_table(MODULES).map_err(db_err)?;
                txn.open_table(MODULE_META).map_err(db_err)?;
                meta.insert("engine", fingerprint.as_bytes()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Drops one cached module (it failed to load).
    pub fn remove_module(&self, sha: &Sha256) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            txn.open_table(MODULES).map_err(db_err)?.remove(sha).map_err(db_err)?;
            txn.open_table(MODULE_META).map_err(db_err)?.remove(sha).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    fn meta_u64(&self, key: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        Ok(meta.get(key).map_err(db_err)?.map_or(0, |v| le_u64(v.value())))
    }

    pub fn store_id(&self) -> Result<u64, StoreError> {
        self.meta_u64("store_id")
    }

    /// The sequence number the next event gets.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        self.meta_u64("next_seq").map(|n| n.max(1))
    }

    /// Events the outbox dropped since the store was created.
    pub fn events_dropped(&self) -> Result<u64, StoreError> {
        self.meta_u64("events_dropped")
    }

    // ---- spec ------------------------------------------------------------------------------------------------

    /// The last accepted spec, if any.
    pub fn spec(&self) -> Result<Option<NodeSpec>, StoreError> {
        Ok(self.signed_spec()?.map(|(spec, _)| spec))
    }

    /// The last accepted spec with the cluster's signature it arrived with (none for a node that never joined,
    /// or a local manifest's spec), for verifying it again at boot.
    pub fn signed_spec(&self) -> Result<Option<SignedSpec>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SPEC).map_err(db_err)?;
        let Some(v) = table.get("current").map_err(db_err)? else { return Ok(None) };
        let spec = postcard::from_bytes(v.value()).map_err(|_| StoreError::Corrupt { what: "spec" })?;
        let signature = table.get("signature").map_err(db_err)?.and_then(|s| s.value().try_into().ok());
        Ok(Some((spec, signature)))
    }

    /// Commits `spec` with its `signature` (or none) and marks the modules it references as used at `now_ms`,
    /// in one transaction.
    pub fn put_spec(&self, spec: &NodeSpec, signature: Option<&[u8; 64]>, now_ms: u64) -> Result<(), StoreError> {
        let bytes = postcard::to_allocvec(spec).map_err(|_| StoreError::Corrupt { what: "spec" })?;
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(SPEC).map_err(db_err)?;
            let previous =
                table.get("current").map_err(db_err)?.and_then(|v| postcard::from_bytes::<NodeSpec>(v.value()).ok());
            if let Some(previous) = previous.filter(|p| p.issuer != spec.issuer) {
                let mut retired = retired_from(&table)?;
                retired.retain(|i| *i != previous.issuer && *i != spec.issuer);
                if retired.len() >= RETIRED_ISSUERS {
                    retired.remove(0);
                }
                retired.push(previous.issuer);
                let encoded = postcard::to_allocvec(&retired).map_err(|_| StoreError::Corrupt { what: "spec" })?;
                table.insert("retired", encoded.as_slice()).map_err(db_err)?;
            }
            table.insert("current", bytes.as_slice()).map_err(db_err)?;
            match signature {
                Some(sig) => table.insert("signature", sig.as_slice()).map(drop).map_err(db_err)?,
                None => table.remove("signature").map(drop).map_err(db_err)?,
            }
            drop(table);
            let mut meta = txn.open_table(MODULE_META).map_err(db_err)?;
            for sha in spec.instances.iter().map(|i| i.module).collect::<HashSet<_>>() {
                let size = meta.get(&sha).map_err(db_err)?.map(|v| module_meta(v.value()).0);
                if let Some(size) = size {
                    meta.insert(&sha, module_meta_bytes(size, now_ms).as_slice()).map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Issuers whose specs this node once ran and then replaced by another issuer's, oldest first (at most
    /// [`RETIRED_ISSUERS`]): a spec of one of them is a replay, whatever its generation.
    pub fn retired_issuers(&self) -> Result<Vec<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SPEC).map_err(db_err)?;
        retired_from(&table)
    }

    // ---- modules ---------------------------------------------------------------------------------------------

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
    pub fn put_module(&self, sha: &Sha256, bytes: &[u8], now_ms: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(MODULES).map_err(db_err)?.insert(sha, bytes).map_err(db_err)?;
        txn.open_table(MODULE_META)
            .map_err(db_err)?
            .insert(sha, module_meta_bytes(bytes.len() as u64, now_ms).as_slice())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// Total bytes of stored modules.
    pub fn modules_size(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(MODULE_META).map_err(db_err)?;
        let mut total = 0;
        for row in meta.iter().map_err(db_err)? {
            let (_, v) = row.map_err(db_err)?;
            total = module_meta(v.value()).0.saturating_add(total);
        }
        Ok(total)
    }

    /// Evicts modules outside `keep`, least recently referenced first, until the stored modules fit in
    /// `budget` bytes (modules in `keep` are never evicted, even over budget). Returns the evicted hashes.
    pub fn evict_modules(&self, keep: &HashSet<Sha256>, budget: u64) -> Result<Vec<Sha256>, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut evicted = Vec::new();
        {
            let mut meta = txn.open_table(MODULE_META).map_err(db_err)?;
            let mut all: Vec<(Sha256, u64, u64)> = Vec::new();
            for row in meta.iter().map_err(db_err)? {
                let (k, v) = row.map_err(db_err)?;
                let (size, used) = module_meta(v.value());
                all.push((*k.value(), size, used));
            }
            let mut total: u64 = all.iter().fold(0u64, |t, m| t.saturating_add(m.1));
            all.sort_by_key(|m| m.2);
            let mut modules = txn.open_table(MODULES).map_err(db_err)?;
            for (sha, size, _) in all {
                if total <= budget {
                    break;
                }
                if keep.contains(&sha) {
                    continue;
                }
                meta.remove(&sha).map_err(db_err)?;
                modules.remove(&sha).map_err(db_err)?;
                total = total.saturating_sub(size);
                evicted.push(sha);
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(evicted)
    }

    // ---- outbox ----------------------------------------------------------------------------------------------

    /// Every unacknowledged event, oldest first.
    pub fn outbox(&self) -> Result<Vec<Event>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(OUTBOX).map_err(db_err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(db_err)? {
            let (_, v) = row.map_err(db_err)?;
            out.push(postcard::from_bytes(v.value()).map_err(|_| StoreError::Corrupt { what: "outbox event" })?);
        }
        Ok(out)
    }

    /// Appends events (numbered from [`Store::next_seq`] by the caller, contiguously) and moves `next_seq`
    /// past them; beyond `limit` events the oldest are removed and counted. One transaction.
    pub fn append_events(&self, events: &[Event], limit: usize) -> Result<Appended, StoreError> {
        let Some(last) = events.last() else { return Ok(Appended { dropped: 0 }) };
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut dropped = 0;
        {
            let mut outbox = txn.open_table(OUTBOX).map_err(db_err)?;
            for e in events {
                let bytes = postcard::to_allocvec(e).map_err(|_| StoreError::Corrupt { what: "outbox event" })?;
                outbox.insert(e.seq, bytes.as_slice()).map_err(db_err)?;
            }
            while outbox.len().map_err(db_err)? > limit as u64 {
                outbox.pop_first().map_err(db_err)?;
                dropped += 1;
            }
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert("next_seq", last.seq.saturating_add(1).to_le_bytes().as_slice()).map_err(db_err)?;
            if dropped > 0 {
                let before = meta.get("events_dropped").map_err(db_err)?.map_or(0, |v| le_u64(v.value()));
                meta.insert("events_dropped", before.saturating_add(dropped).to_le_bytes().as_slice())
                    .map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(Appended { dropped })
    }

    /// Forgets every event with a sequence number up to and including `up_to`.
    pub fn ack_events(&self, up_to: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(OUTBOX).map_err(db_err)?.retain_in(..=up_to, |_, _| false).map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    // ---- restart counters ------------------------------------------------------------------------------------

    /// How many times instance `id` was started again, if the agent ever started it.
    pub fn restarts(&self, id: &str) -> Result<Option<u32>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(RESTARTS).map_err(db_err)?;
        Ok(table.get(id).map_err(db_err)?.map(|v| v.value()))
    }

    pub fn put_restarts(&self, id: &str, restarts: u32) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(RESTARTS).map_err(db_err)?.insert(id, restarts).map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// Drops the restart counters and finished records of instances not in `keep`.
    pub fn retain_restarts(&self, keep: &HashSet<&str>) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(RESTARTS).map_err(db_err)?.retain(|id, _| keep.contains(id)).map_err(db_err)?;
        txn.open_table(FINISHED).map_err(db_err)?.retain(|id, _| keep.contains(id)).map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    // ---- finished instances ----------------------------------------------------------------------------------

    /// How instance `id` ended for good, if it did.
    pub fn finished(&self, id: &str) -> Result<Option<Finished>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(FINISHED).map_err(db_err)?;
        match table.get(id).map_err(db_err)? {
            Some(v) => {
                postcard::from_bytes(v.value()).map(Some).map_err(|_| StoreError::Corrupt { what: "finished instance" })
            }
            None => Ok(None),
        }
    }

    /// Records that instance `id` ended for good (with its restart counter, in one transaction).
    pub fn put_finished(&self, id: &str, finished: &Finished) -> Result<(), StoreError> {
        let bytes = postcard::to_allocvec(finished).map_err(|_| StoreError::Corrupt { what: "finished instance" })?;
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(FINISHED).map_err(db_err)?.insert(id, bytes.as_slice()).map_err(db_err)?;
        txn.open_table(RESTARTS).map_err(db_err)?.insert(id, finished.restarts).map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    // ---- identity --------------------------------------------------------------------------------------------

    /// The identity this node joined with, if it joined.
    pub fn identity(&self) -> Result<Option<Identity>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(IDENTITY).map_err(db_err)?;
        match table.get("current").map_err(db_err)? {
            Some(v) => postcard::from_bytes(v.value()).map(Some).map_err(|_| StoreError::Corrupt { what: "identity" }),
            None => Ok(None),
        }
    }

    /// Records the identity (one durable commit, replacing any earlier one). The file is made readable by its
    /// owner only first: the identity holds the node's MQTT password.
    pub fn put_identity(&self, identity: &Identity) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600))
            .map_err(|source| StoreError::Permissions { path: self.path.display().to_string(), source })?;
        let bytes = postcard::to_allocvec(identity).map_err(|_| StoreError::Corrupt { what: "identity" })?;
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(IDENTITY).map_err(db_err)?.insert("current", bytes.as_slice()).map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    // ---- report counters -------------------------------------------------------------------------------------

    /// Reserves this start's block of report counters ([`crate::tagger::reservation`]): above the persisted
    /// `meta.report_counter_mark` and the clock floor for `now_secs`. The block's end is committed durably as the
    /// new mark before the range is returned, so no counter of it is ever handed out again.
    pub fn reserve_report_counters(&self, now_secs: u64) -> Result<std::ops::Range<u64>, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let block = {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let mark = meta.get("report_counter_mark").map_err(db_err)?.map_or(0, |v| le_u64(v.value()));
            let block = crate::tagger::reservation(mark, now_secs);
            meta.insert("report_counter_mark", block.end.to_le_bytes().as_slice()).map_err(db_err)?;
            block
        };
        txn.commit().map_err(db_err)?;
        Ok(block)
    }
}

/// A stored spec and the cluster's signature it arrived with, if any.
pub type SignedSpec = (NodeSpec, Option<[u8; 64]>);

/// Issuers remembered as retired (a controller store is replaced rarely; the oldest is forgotten first).
pub const RETIRED_ISSUERS: usize = 16;

fn retired_from(table: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Vec<u64>, StoreError> {
    match table.get("retired").map_err(db_err)? {
        Some(v) => postcard::from_bytes(v.value()).map_err(|_| StoreError::Corrupt { what: "retired issuers" }),
        None => Ok(Vec::new()),
    }
}

/// A random store id, never 0.
fn new_store_id() -> u64 {
    rand::random::<u64>().max(1)
}

fn drop_spec_and_modules(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.delete_table(SPEC).map_err(db_err)?;
    txn.delete_table(MODULES).map_err(db_err)?;
    txn.delete_table(MODULE_META).map_err(db_err)?;
    Ok(())
}

/// Version 3 kept protocol 3's `NodeSpec` (no issuer): keep it as a protocol-3 document, issuer 0, so the node
/// boots it offline as before and any controller of protocol 4 (another issuer) supersedes it. One that does
/// not decode is dropped: the controller sends the spec again.
fn migrate_v3_spec(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut table = txn.open_table(SPEC).map_err(db_err)?;
    let old = table.get("current").map_err(db_err)?.map(|v| v.value().to_vec());
    let Some(old) = old else { return Ok(()) };
    match postcard::from_bytes::<edge_proto::v3::NodeSpec>(&old) {
        Ok(v3) => {
            let spec = NodeSpec { issuer: 0, generation: v3.generation, instances: v3.instances };
            let bytes = postcard::to_allocvec(&spec).map_err(|_| StoreError::Corrupt { what: "spec" })?;
            table.insert("current", bytes.as_slice()).map_err(db_err)?;
        }
        Err(_) => {
            tracing::warn!("the persisted protocol-3 spec does not decode; dropped until the controller sends one");
            table.remove("current").map_err(db_err)?;
        }
    }
    Ok(())
}

fn module_meta_bytes(size: u64, used_ms: u64) -> [u8; 16] {
    let mut b = [0; 16];
    b[..8].copy_from_slice(&size.to_le_bytes());
    b[8..].copy_from_slice(&used_ms.to_le_bytes());
    b
}

fn module_meta(b: &[u8]) -> (u64, u64) {
    (le_u64(b.get(..8).unwrap_or_default()), le_u64(b.get(8..16).unwrap_or_default()))
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().unwrap_or([0; 4]))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
}

#[cfg(test)]
mod tests;
