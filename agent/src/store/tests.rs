//! The store's own tests: reopening, migrations, eviction, the outbox, identities.

use super::*;
use edge_proto::{EventKind, InstanceSpec, InstanceState, RestartPolicy};

fn spec(generation: u64, module: Sha256) -> NodeSpec {
    NodeSpec {
        issuer: 11,
        generation,
        instances: vec![InstanceSpec {
            id: "t-1".into(),
            namespace: "default".into(),
            workload: "t".into(),
            module,
            module_size: 3,
            args: vec![],
            env: vec![],
            cpu_millis: 1,
            memory_limit_bytes: 1 << 20,
            restart: RestartPolicy::Never,
            cpu_limit_millis: 0,
            timeout_ms: 0,
            volumes: vec![],
        }],
    }
}

fn event(seq: u64) -> Event {
    Event { seq, at_ms: seq, instance: "t-1".into(), restarts: 0, kind: EventKind::Stopped }
}

#[test]
fn spec_modules_outbox_and_counters_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id;
    {
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.spec().unwrap(), None);
        assert_eq!(s.next_seq().unwrap(), 1);
        id = s.store_id().unwrap();
        s.put_module(&[1; 32], b"abc", 1).unwrap();
        s.put_spec(&spec(4, [1; 32]), Some(&[3; 64]), 2).unwrap();
        s.append_events(&[event(1), event(2), event(3)], 100).unwrap();
        s.ack_events(1).unwrap();
        s.put_restarts("t-1", 2).unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.store_id().unwrap(), id);
    assert_eq!(s.spec().unwrap(), Some(spec(4, [1; 32])));
    assert_eq!(s.signed_spec().unwrap(), Some((spec(4, [1; 32]), Some([3; 64]))));
    // A spec without a signature (a local manifest's) does not keep the previous one's.
    s.put_spec(&spec(5, [1; 32]), None, 3).unwrap();
    assert_eq!(s.signed_spec().unwrap(), Some((spec(5, [1; 32]), None)));
    assert_eq!(s.module(&[1; 32]).unwrap().as_deref(), Some(&b"abc"[..]));
    assert!(!s.has_module(&[2; 32]).unwrap());
    assert_eq!(s.outbox().unwrap(), vec![event(2), event(3)]);
    assert_eq!(s.next_seq().unwrap(), 4);
    assert_eq!(s.restarts("t-1").unwrap(), Some(2));
    s.retain_restarts(&HashSet::new()).unwrap();
    assert_eq!(s.restarts("t-1").unwrap(), None);
}

#[test]
fn a_full_outbox_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let events: Vec<Event> = (1..=5).map(event).collect();
    assert_eq!(s.append_events(&events, 3).unwrap(), Appended { dropped: 2 });
    assert_eq!(s.outbox().unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(s.events_dropped().unwrap(), 2);
    assert_eq!(s.next_seq().unwrap(), 6);
}

#[test]
fn eviction_keeps_referenced_modules_and_goes_least_recent_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    s.put_module(&[1; 32], &[0; 100], 10).unwrap();
    s.put_module(&[2; 32], &[0; 100], 20).unwrap();
    s.put_module(&[3; 32], &[0; 100], 30).unwrap();
    s.put_spec(&spec(1, [1; 32]), None, 40).unwrap(); // [1] is now the most recently referenced.
    let keep: HashSet<Sha256> = [[3; 32]].into();
    assert_eq!(s.evict_modules(&keep, 150).unwrap(), vec![[2; 32], [1; 32]]);
    assert!(s.has_module(&[3; 32]).unwrap());
    assert_eq!(s.modules_size().unwrap(), 100);
    // Over budget with only referenced modules left: nothing more goes.
    assert_eq!(s.evict_modules(&keep, 0).unwrap(), Vec::<Sha256>::new());
}

#[test]
fn a_store_id_is_never_zero_and_a_zero_one_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let id = Store::open(dir.path()).unwrap().store_id().unwrap();
    assert_ne!(id, 0);
    {
        let db = Database::create(dir.path().join("agent.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("store_id", 0u64.to_le_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_ne!(s.store_id().unwrap(), 0);
    // Stable from then on.
    let again = s.store_id().unwrap();
    drop(s);
    assert_eq!(Store::open(dir.path()).unwrap().store_id().unwrap(), again);
}

#[test]
fn finished_instances_survive_reopen_until_they_leave_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let done = Finished {
        state: InstanceState::Succeeded,
        restarts: 2,
        started_at_ms: Some(5),
        exit_code: Some(0),
        reason: None,
    };
    {
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.finished("t-1").unwrap(), None);
        s.put_finished("t-1", &done).unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.finished("t-1").unwrap(), Some(done));
    assert_eq!(s.restarts("t-1").unwrap(), Some(2), "the counter is written with it");
    s.retain_restarts(&["t-1"].into()).unwrap();
    assert!(s.finished("t-1").unwrap().is_some());
    s.retain_restarts(&HashSet::new()).unwrap();
    assert_eq!(s.finished("t-1").unwrap(), None);
}

/// A real schema-3 file, written table by table as an agent of protocol 3 left it.
#[test]
fn a_schema_3_store_keeps_its_spec_as_a_protocol_3_document() {
    let dir = tempfile::tempdir().unwrap();
    let v3_spec = edge_proto::v3::NodeSpec { generation: 41, instances: spec(0, [1; 32]).instances };
    {
        let db = Database::create(dir.path().join("agent.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("schema_version", 3u32.to_le_bytes().as_slice()).unwrap();
            meta.insert("store_id", 77u64.to_le_bytes().as_slice()).unwrap();
            meta.insert("next_seq", 3u64.to_le_bytes().as_slice()).unwrap();
            meta.insert("engine", b"fp".as_slice()).unwrap();
            let bytes = postcard::to_allocvec(&v3_spec).unwrap();
            txn.open_table(SPEC).unwrap().insert("current", bytes.as_slice()).unwrap();
            txn.open_table(MODULES).unwrap().insert(&[1; 32], b"abc".as_slice()).unwrap();
            txn.open_table(MODULE_META).unwrap().insert(&[1; 32], module_meta_bytes(3, 1).as_slice()).unwrap();
            let e = postcard::to_allocvec(&event(2)).unwrap();
            txn.open_table(OUTBOX).unwrap().insert(2, e.as_slice()).unwrap();
            txn.open_table(RESTARTS).unwrap().insert("t-1", 4).unwrap();
        }
        txn.commit().unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    let migrated = s.spec().unwrap().expect("the spec is kept");
    assert_eq!(migrated, NodeSpec { issuer: 0, generation: 41, instances: v3_spec.instances.clone() });
    assert_eq!(s.store_id().unwrap(), 77);
    assert_eq!(s.next_seq().unwrap(), 3);
    assert_eq!(s.outbox().unwrap(), vec![event(2)]);
    assert_eq!(s.restarts("t-1").unwrap(), Some(4));
    assert!(s.has_module(&[1; 32]).unwrap());
    assert_eq!(s.finished("t-1").unwrap(), None);
    // Any protocol-4 controller's spec supersedes it, whatever its generation.
    assert!(spec(1, [1; 32]).supersedes(Some(&migrated)));
    drop(s);
    // Opened again (now schema 4) the spec is read as is, not migrated twice.
    assert_eq!(Store::open(dir.path()).unwrap().spec().unwrap(), Some(migrated));
}

#[test]
fn an_identity_survives_reopen_and_a_store_without_one_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity { node: "pi-1".into(), cluster_key: [7; 32], password: "ab".repeat(16) };
    {
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.identity().unwrap(), None);
        s.put_identity(&identity).unwrap();
    }
    assert_eq!(Store::open(dir.path()).unwrap().identity().unwrap(), Some(identity));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("agent.redb")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the password is readable by its owner only: {mode:o}");
}

#[test]
fn a_store_from_a_newer_agent_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(dir.path().join("agent.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("schema_version", 99u32.to_le_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(Store::open(dir.path()), Err(StoreError::Schema { found: 99 })));
}
