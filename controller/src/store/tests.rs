//! The store against real files and a real redb: reopening, the log wrapping around, replay of a log written
//! by hand, and one writer process killed mid-stream. The record format and the recovery scan are tested
//! exhaustively, without I/O, in `record`.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::record::{encode, Op, Table};
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

fn namespace(i: u64) -> NamespaceRecord {
    NamespaceRecord { name: format!("ns-{i}"), quota: Default::default(), created_ms: i }
}

fn names(store: &Store) -> Vec<String> {
    store.load_namespaces().unwrap().into_iter().map(|n| n.name).collect()
}

/// `meta.wal_seq` and the namespace names of the redb file in `dir` as it is on disk, read without the log.
fn durable_state(dir: &Path) -> (u64, Vec<String>) {
    let db = Database::create(dir.join("controller.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    let seq = meta.get(WAL_SEQ).unwrap().map_or(0, |v| u64::from_le_bytes(v.value().try_into().unwrap()));
    let table = txn.open_table(NAMESPACES).unwrap();
    let names = table.iter().unwrap().map(|r| r.unwrap().0.value().to_string()).collect();
    (seq, names)
}

#[test]
fn records_survive_reopen_and_deletes_stick() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = (workload("a"), workload("b"));
        store.commit(&[Change::PutWorkload(&a), Change::PutWorkload(&b)]).unwrap();
        store.commit(&[Change::DeleteWorkload(a.key())]).unwrap();
        let m = ModuleRecord { sha256: "cd".repeat(32), size: 3, uploaded_ms: 1, ..Default::default() };
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

#[test]
fn a_version_1_store_is_upgraded_with_its_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.commit(&[Change::PutNamespace(&namespace(1))]).unwrap();
    }
    {
        // What the controller before the log wrote: the same tables, schema version 1.
        let db = Database::create(dir.path().join("controller.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("schema_version", 1u32.to_le_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
    }
    std::fs::remove_file(dir.path().join("controller.wal")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(names(&store), ["ns-1"]);
    drop(store);
    let db = Database::create(dir.path().join("controller.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let version = txn.open_table(META).unwrap().get("schema_version").unwrap().unwrap().value().to_vec();
    assert_eq!(version, SCHEMA_VERSION.to_le_bytes());
}

#[test]
fn commits_are_read_at_once_and_a_clean_close_checkpoints_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open_with(dir.path(), WalOptions { size: 64 << 10 }).unwrap();
        for i in 1..=3 {
            store.commit(&[Change::PutNamespace(&namespace(i))]).unwrap();
        }
        assert_eq!(names(&store), ["ns-1", "ns-2", "ns-3"]);
    }
    // The close made them durable in redb itself: nothing is left for the log to replay.
    assert_eq!(durable_state(dir.path()), (3, vec!["ns-1".into(), "ns-2".into(), "ns-3".into()]));
    assert_eq!(std::fs::metadata(dir.path().join(wal::FILE_NAME)).unwrap().len(), 64 << 10);
    let store = Store::open_with(dir.path(), WalOptions { size: 64 << 10 }).unwrap();
    assert_eq!(names(&store), ["ns-1", "ns-2", "ns-3"]);
    // Numbering goes on from the durable seq.
    store.commit(&[Change::PutNamespace(&namespace(4))]).unwrap();
    drop(store);
    assert_eq!(durable_state(dir.path()).0, 4);
}

#[test]
fn the_log_wraps_around_many_times_and_the_state_matches_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions { size: 4096 };
    let mut model: BTreeMap<String, WorkloadRecord> = BTreeMap::new();
    {
        let store = Store::open_with(dir.path(), options).unwrap();
        for i in 0..600u64 {
            // Puts of a few keys over and over, some deleted, records of varying length.
            let mut w = workload(&format!("w{}", i % 13));
            w.revision = i;
            w.spec.env = vec![("PAD".into(), "p".repeat((i % 50) as usize))];
            if i % 7 == 3 {
                store.commit(&[Change::DeleteWorkload(w.key())]).unwrap();
                model.remove(&w.key());
            } else {
                store.commit(&[Change::PutWorkload(&w), Change::PutNamespace(&namespace(i % 5))]).unwrap();
                model.insert(w.key(), w);
            }
        }
        assert_eq!(store.load_workloads().unwrap(), model.values().cloned().collect::<Vec<_>>());
    }
    // 600 records of 300-400 bytes are some 50 laps of a 4 KiB log.
    assert_eq!(durable_state(dir.path()).0, 600);
    let store = Store::open_with(dir.path(), options).unwrap();
    assert_eq!(store.load_workloads().unwrap(), model.values().cloned().collect::<Vec<_>>());
    assert_eq!(names(&store).len(), 5);
}

#[test]
fn a_change_larger_than_the_log_is_committed_directly() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions { size: 1024 };
    let mut big = workload("big");
    big.spec.env = vec![("BLOB".into(), "b".repeat(4000))];
    {
        let store = Store::open_with(dir.path(), options).unwrap();
        store.commit(&[Change::PutNamespace(&namespace(1))]).unwrap();
        store.commit(&[Change::PutWorkload(&big)]).unwrap();
        // Durable at once, with the record before it, and it took no seq.
        assert_eq!(durable_state_while_open(&store), 1);
        store.commit(&[Change::PutNamespace(&namespace(2))]).unwrap();
    }
    assert_eq!(durable_state(dir.path()).0, 2);
    let store = Store::open_with(dir.path(), options).unwrap();
    assert_eq!(store.load_workloads().unwrap(), vec![big]);
    assert_eq!(names(&store), ["ns-1", "ns-2"]);
}

#[test]
fn a_batch_of_many_changes_is_committed_directly_and_durably() {
    let dir = tempfile::tempdir().unwrap();
    let many: Vec<NamespaceRecord> = (10..10 + LARGE_BATCH as u64 + 1).map(namespace).collect();
    {
        let store = Store::open(dir.path()).unwrap();
        store.commit(&[Change::PutNamespace(&namespace(1))]).unwrap();
        store.commit(&many.iter().map(Change::PutNamespace).collect::<Vec<_>>()).unwrap();
        // Durable at once, with the logged record before it, whose seq it keeps.
        assert_eq!(durable_state_while_open(&store), 1);
        store.commit(&[Change::PutNamespace(&namespace(2))]).unwrap();
    }
    assert_eq!(durable_state(dir.path()).0, 2);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(names(&store).len(), many.len() + 2);
}

/// `meta.wal_seq` as the open store sees it.
fn durable_state_while_open(store: &Store) -> u64 {
    let txn = store.db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    let seq = meta.get(WAL_SEQ).unwrap().map_or(0, |v| u64::from_le_bytes(v.value().try_into().unwrap()));
    seq
}

/// Writes `bytes` at the start of the store's log file, as a writer that died before its next checkpoint would
/// have left them.
fn write_log(dir: &Path, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(dir.join(wal::FILE_NAME)).unwrap();
    file.write_all_at(bytes, 0).unwrap();
}

fn put_ns(i: u64) -> Op {
    Op { table: Table::Namespaces, key: format!("ns-{i}"), value: Some(json(&namespace(i))) }
}

#[test]
fn open_replays_the_records_above_the_durable_seq_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = {
        let store = Store::open_with(dir.path(), WalOptions { size: 8192 }).unwrap();
        store.commit(&[Change::PutNamespace(&namespace(1))]).unwrap();
        store.commit(&[Change::PutNamespace(&namespace(2))]).unwrap();
        store.issuer()
    };
    // Durable up to 2; the log holds 1..=5: 1 and 2 again (harmless), then 3 puts ns-3 and ns-4, 4 deletes
    // ns-3, 5 puts ns-3 back; then a torn sixth record.
    let del = |i: u64| Op { table: Table::Namespaces, key: format!("ns-{i}"), value: None };
    let records = [
        (1, vec![put_ns(1)]),
        (2, vec![put_ns(2)]),
        (3, vec![put_ns(3), put_ns(4)]),
        (4, vec![del(3)]),
        (5, vec![put_ns(3)]),
    ];
    let mut log: Vec<u8> = records.iter().flat_map(|(seq, ops)| encode(*seq, issuer, ops).unwrap()).collect();
    let torn = encode(6, issuer, &[put_ns(6)]).unwrap();
    log.extend_from_slice(&torn[..torn.len() - 3]);
    write_log(dir.path(), &log);
    let store = Store::open_with(dir.path(), WalOptions { size: 8192 }).unwrap();
    assert_eq!(names(&store), ["ns-1", "ns-2", "ns-3", "ns-4"]);
    // The replay was one durable commit, and new records follow it.
    assert_eq!(durable_state_while_open(&store), 5);
    store.commit(&[Change::PutNamespace(&namespace(7))]).unwrap();
    drop(store);
    assert_eq!(durable_state(dir.path()).0, 6);
    let store = Store::open_with(dir.path(), WalOptions { size: 8192 }).unwrap();
    assert_eq!(names(&store), ["ns-1", "ns-2", "ns-3", "ns-4", "ns-7"]);
}

#[test]
fn a_log_with_missing_records_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = {
        let store = Store::open_with(dir.path(), WalOptions { size: 8192 }).unwrap();
        store.commit(&[Change::PutNamespace(&namespace(1))]).unwrap();
        store.issuer()
    };
    write_log(dir.path(), &encode(3, issuer, &[put_ns(3)]).unwrap());
    let before = std::fs::read(dir.path().join(wal::FILE_NAME)).unwrap();
    match Store::open_with(dir.path(), WalOptions { size: 8192 }) {
        Err(StoreError::WalReplay { source: ScanError::Gap { durable: 1, first: 3 }, .. }) => {}
        other => panic!("expected a gap, got {:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read(dir.path().join(wal::FILE_NAME)).unwrap(), before);
}

#[test]
fn a_log_left_by_another_store_is_ignored() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let issuer_a = Store::open_with(a.path(), WalOptions { size: 8192 }).unwrap().issuer();
    drop(Store::open_with(b.path(), WalOptions { size: 8192 }).unwrap());
    write_log(a.path(), &encode(1, issuer_a, &[put_ns(1)]).unwrap());
    std::fs::copy(a.path().join(wal::FILE_NAME), b.path().join(wal::FILE_NAME)).unwrap();
    assert_eq!(names(&Store::open_with(b.path(), WalOptions { size: 8192 }).unwrap()), Vec::<String>::new());
    assert_eq!(names(&Store::open_with(a.path(), WalOptions { size: 8192 }).unwrap()), ["ns-1"]);
}

#[test]
fn the_log_can_be_resized_between_opens() {
    let dir = tempfile::tempdir().unwrap();
    for (i, size) in [4096u64, 16384, 2048].into_iter().enumerate() {
        let store = Store::open_with(dir.path(), WalOptions { size }).unwrap();
        assert_eq!(std::fs::metadata(dir.path().join(wal::FILE_NAME)).unwrap().len(), size);
        store.commit(&[Change::PutNamespace(&namespace(i as u64))]).unwrap();
    }
    assert_eq!(names(&Store::open_with(dir.path(), WalOptions { size: 2048 }).unwrap()), ["ns-0", "ns-1", "ns-2"]);
}

/// Set in the child of [`a_killed_writer_loses_no_acknowledged_write`]: the store directory to write to.
const CHILD_DIR: &str = "EDGE_STORE_CRASH_CHILD_DIR";
/// Set in that child: the log size.
const CHILD_WAL: &str = "EDGE_STORE_CRASH_CHILD_WAL";
/// What the child prints before each acknowledged number (found anywhere in a line: the test harness prints its
/// own text before the first one).
const ACK: &str = "store-crash-ack ";

/// The child: commits `ns-1`, `ns-2`, ... and prints [`ACK`] and `i` after each commit returned, until killed (or a
/// bound, so a child whose parent died ends by itself).
fn crash_child(dir: &Path) {
    let size = std::env::var(CHILD_WAL).unwrap().parse().unwrap();
    let store = Store::open_with(dir, WalOptions { size }).unwrap();
    for i in 1..=200_000 {
        store.commit(&[Change::PutNamespace(&namespace(i))]).unwrap();
        println!("{ACK}{i}");
    }
}

#[test]
fn a_killed_writer_loses_no_acknowledged_write() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        return crash_child(Path::new(&dir));
    }
    // A log too large to fill (no checkpoint: every acknowledged write is only in the log when the child dies),
    // then one small enough to wrap many times before the kill.
    for (wal_size, kill_after) in [(16u64 << 20, 300u64), (8 << 10, 2000)] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store::tests::a_killed_writer_loses_no_acknowledged_write", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_WAL, wal_size.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            // Only whole lines count: an acknowledgement cut off by the kill was still acknowledged, but need not be.
            while out.read_line(&mut line).is_ok_and(|n| n > 0) && line.ends_with('\n') {
                if let Some((_, i)) = line.trim_end().split_once(ACK) {
                    let _ = tx.send(i.parse::<u64>().unwrap());
                }
                line.clear();
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut acked = 0;
        while acked < kill_after {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(i) => {
                    assert_eq!(i, acked + 1);
                    acked = i;
                }
                Err(e) => panic!("the writer acknowledged {acked} of {kill_after} writes in 60 s: {e:?}"),
            }
        }
        child.kill().unwrap(); // SIGKILL: no destructor, no checkpoint, redb's non-durable commits are lost.
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(i) => acked = i,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("the writer's output did not end after the kill"),
            }
        }
        reader.join().unwrap();

        let (durable, on_disk) = durable_state(dir.path());
        if wal_size == 16 << 20 {
            assert_eq!((durable, on_disk.len()), (0, 0), "redb alone holds none of the writes: the log must");
        }
        let store = Store::open_with(dir.path(), WalOptions { size: wal_size }).unwrap();
        let found: std::collections::BTreeSet<u64> = store
            .load_namespaces()
            .unwrap()
            .into_iter()
            .map(|n| n.name.strip_prefix("ns-").unwrap().parse().unwrap())
            .collect();
        let missing: Vec<u64> = (1..=acked).filter(|i| !found.contains(i)).collect();
        assert!(missing.is_empty(), "log size {wal_size}: acknowledged writes lost: {missing:?}");
        // At most the one write in flight at the kill may be there too, unacknowledged.
        assert!(found.iter().all(|&i| i <= acked + 1), "log size {wal_size}: writes nobody made: {found:?}");
        eprintln!("log size {wal_size}: {acked} acknowledged, redb alone held {}, all recovered", on_disk.len());
    }
}
