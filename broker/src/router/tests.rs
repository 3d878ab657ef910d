//! The router's unit tests: sessions, takeover, wills, slow consumers, retained messages and their budgets.

use super::*;
use rumqttc::mqttbytes::QoS::{AtLeastOnce, AtMostOnce};

fn router(f: impl FnOnce(&mut Config)) -> Router {
    let mut c = Config::new("127.0.0.1:0".parse().unwrap());
    f(&mut c);
    Router::new(&c, Arc::new(Counters::default()))
}

struct Client {
    sid: SessionId,
    conn: ConnId,
    signal: Arc<Signal>,
    present: bool,
}

fn attach(r: &mut Router, id: &str, who: Identity, clean: bool, conn: u64) -> Result<Client, Refusal> {
    let signal = Arc::new(Signal::default());
    let will = Some(Message::new(format!("will/{id}"), "gone", AtLeastOnce, false));
    let a = Attach {
        client_id: id.into(),
        identity: who,
        clean,
        will,
        local: false,
        conn: ConnId(conn),
        signal: signal.clone(),
    };
    r.attach(a).map(|at| Client { sid: at.session, conn: ConnId(conn), signal, present: at.session_present })
}

fn drain(r: &mut Router, c: &Client) -> Vec<Outgoing> {
    let mut out = Vec::new();
    r.take(c.sid, c.conn, usize::MAX, usize::MAX, &mut out);
    for o in &out {
        if o.pkid != 0 {
            r.ack(c.sid, c.conn, o.pkid);
        }
    }
    out
}

fn sub(r: &mut Router, c: &Client, f: &str, q: QoS) {
    r.subscribe(c.sid, c.conn, vec![(f.into(), Some(q))]).unwrap();
}

#[test]
fn overlapping_filters_deliver_once_at_the_highest_qos() {
    let mut r = router(|_| {});
    let a = attach(&mut r, "a", Identity::anonymous(), true, 1).unwrap();
    sub(&mut r, &a, "t/#", AtMostOnce);
    sub(&mut r, &a, "t/+", AtLeastOnce);
    r.publish(a.sid, a.conn, Message::new("t/x", "p", AtLeastOnce, false));
    let got = drain(&mut r, &a);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.qos, AtLeastOnce);
}

#[test]
fn takeover_rules() {
    let mut r = router(|_| {});
    let n1 = Identity::principal("n1");
    let first = attach(&mut r, "c", n1.clone(), true, 1).unwrap();
    assert_eq!(attach(&mut r, "c", Identity::principal("n2"), true, 2).err(), Some(Refusal::NotAuthorized));
    assert!(!first.signal.is_killed());
    let second = attach(&mut r, "c", n1, true, 3).unwrap();
    assert!(first.signal.is_killed());
    assert!(!r.ack(first.sid, first.conn, 1), "the old connection is stale");
    assert!(r.ack(second.sid, second.conn, 1));

    let mut r = router(|c| c.takeover = Takeover::Never);
    attach(&mut r, "c", Identity::anonymous(), true, 1).unwrap();
    assert!(attach(&mut r, "c", Identity::anonymous(), true, 2).is_err());
}

#[test]
fn takeover_publishes_the_old_will_first() {
    let mut r = router(|_| {});
    let watcher = attach(&mut r, "w", Identity::anonymous(), true, 1).unwrap();
    sub(&mut r, &watcher, "will/#", AtLeastOnce);
    attach(&mut r, "c", Identity::anonymous(), true, 2).unwrap();
    attach(&mut r, "c", Identity::anonymous(), true, 3).unwrap();
    let got = drain(&mut r, &watcher);
    assert_eq!(got.len(), 1);
    assert_eq!(&*got[0].message.topic, "will/c");
}

#[test]
fn persistent_session_queues_qos1_only_while_offline() {
    let mut r = router(|_| {});
    let p = attach(&mut r, "p", Identity::anonymous(), false, 1).unwrap();
    assert!(!p.present);
    sub(&mut r, &p, "t", AtLeastOnce);
    r.detach(p.sid, p.conn, false);
    let pubr = attach(&mut r, "pub", Identity::anonymous(), true, 2).unwrap();
    r.publish(pubr.sid, pubr.conn, Message::new("t", "q0", AtMostOnce, false));
    r.publish(pubr.sid, pubr.conn, Message::new("t", "q1", AtLeastOnce, false));
    let p = attach(&mut r, "p", Identity::anonymous(), false, 3).unwrap();
    assert!(p.present);
    let got = drain(&mut r, &p);
    assert_eq!(got.iter().map(|o| &o.message.payload[..]).collect::<Vec<_>>(), vec![b"q1"]);
    // A clean reconnect forgets it.
    let p = attach(&mut r, "p", Identity::anonymous(), true, 4).unwrap();
    assert!(!p.present);
    r.detach(p.sid, p.conn, false);
    assert_eq!(r.sessions(), 1, "only the publisher's session is left");
}

#[test]
fn offline_session_of_another_identity_is_not_resumed() {
    let mut r = router(|_| {});
    let p = attach(&mut r, "p", Identity::principal("a"), false, 1).unwrap();
    sub(&mut r, &p, "t", AtLeastOnce);
    r.detach(p.sid, p.conn, false);
    let q = attach(&mut r, "p", Identity::principal("b"), false, 2).unwrap();
    assert!(!q.present);
}

#[test]
fn slow_consumer_is_disconnected_on_qos1_overflow_but_qos0_only_drops() {
    let mut r = router(|c| c.max_queued_messages = 2);
    let slow = attach(&mut r, "slow", Identity::anonymous(), true, 1).unwrap();
    sub(&mut r, &slow, "t", AtLeastOnce);
    let p = attach(&mut r, "p", Identity::anonymous(), true, 2).unwrap();
    for _ in 0..3 {
        r.publish(p.sid, p.conn, Message::new("t", "x", AtMostOnce, false));
    }
    assert!(!slow.signal.is_killed());
    r.publish(p.sid, p.conn, Message::new("t", "x", AtLeastOnce, false));
    assert!(slow.signal.is_killed());
    assert_eq!(r.sessions(), 1, "its clean session is gone");
}

#[test]
fn kick_and_revoke() {
    let mut r = router(|_| {});
    let c = attach(&mut r, "n", Identity::anonymous(), false, 1).unwrap();
    assert!(r.kick("n", false));
    assert!(c.signal.is_killed());
    assert!(!r.kick("n", false), "already offline");
    let c = attach(&mut r, "n", Identity::anonymous(), false, 2).unwrap();
    assert!(c.present, "a plain kick keeps the persistent session");
    assert!(r.kick("n", true));
    assert_eq!(attach(&mut r, "n", Identity::anonymous(), false, 3).err(), Some(Refusal::NotAuthorized));
    assert!(r.reinstate("n"));
    assert!(!attach(&mut r, "n", Identity::anonymous(), false, 4).unwrap().present);
}

#[test]
fn retained_for_new_subscriptions_is_bounded_by_the_queue() {
    let mut r = router(|c| c.max_queued_messages = 3);
    let p = attach(&mut r, "p", Identity::anonymous(), true, 1).unwrap();
    for i in 0..5 {
        r.publish(p.sid, p.conn, Message::new(format!("r/{i}"), "v", AtLeastOnce, true));
    }
    let s = attach(&mut r, "s", Identity::anonymous(), true, 2).unwrap();
    sub(&mut r, &s, "r/+", AtMostOnce);
    let got = drain(&mut r, &s);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|o| o.message.retain && o.message.qos == AtMostOnce));
    assert!(!s.signal.is_killed(), "retained overflow is not a slow consumer");
}

#[test]
fn retained_sink_hears_every_change() {
    use std::sync::Mutex;
    #[derive(Default)]
    struct Log(Mutex<Vec<(String, Option<Vec<u8>>)>>);
    impl RetainedSink for Log {
        fn changed(&self, topic: &str, message: Option<&Message>) {
            self.0.lock().unwrap().push((topic.into(), message.map(|m| m.payload.to_vec())));
        }
    }
    let log = Arc::new(Log::default());
    let sink: Arc<dyn RetainedSink> = log.clone();
    let mut r = router(|c| {
        c.retained_sink = Some(sink);
        c.max_retained_messages = 1;
    });
    let p = attach(&mut r, "p", Identity::anonymous(), true, 1).unwrap();
    for (topic, payload, retain) in
        [("a", "1", true), ("a", "", true), ("b", "x", false), ("c", "2", true), ("d", "3", true)]
    {
        r.publish(p.sid, p.conn, Message::new(topic, payload, AtLeastOnce, retain));
    }
    let got = log.0.lock().unwrap().clone();
    let expected: Vec<(String, Option<Vec<u8>>)> = vec![
        ("a".into(), Some(b"1".to_vec())),
        ("a".into(), None),
        ("c".into(), Some(b"2".to_vec())),
        ("d".into(), None), // refused by the bound: the sink is told the topic holds nothing
    ];
    assert_eq!(got, expected);
    assert_eq!(r.retained(), 1);
}

#[test]
fn retained_messages_are_charged_to_their_publisher() {
    use std::sync::atomic::Ordering::Relaxed;
    let mut r = router(|c| c.max_retained_messages_per_client = 1);
    let retained = |topic: &str| Message::new(topic, "x", AtLeastOnce, true);
    let a = attach(&mut r, "a", Identity::principal("node/a"), true, 1).unwrap();
    r.publish(a.sid, a.conn, retained("a/1"));
    r.publish(a.sid, a.conn, retained("a/2"));
    assert_eq!((r.retained(), r.stats.retained_refused.load(Relaxed)), (1, 1), "over a's budget");
    // The same principal under another client id shares its budget; an anonymous client has its own.
    let a2 = attach(&mut r, "a-2", Identity::principal("node/a"), true, 2).unwrap();
    r.publish(a2.sid, a2.conn, retained("a/3"));
    let anon = attach(&mut r, "node/a", Identity::anonymous(), true, 3).unwrap();
    r.publish(anon.sid, anon.conn, retained("x/1"));
    assert_eq!((r.retained(), r.stats.retained_refused.load(Relaxed)), (2, 2));
    // A local link is held to none of the clients' budgets.
    let signal = Arc::new(Signal::default());
    let local = Attach {
        client_id: "controller".into(),
        identity: Identity::anonymous(),
        clean: true,
        will: None,
        local: true,
        conn: ConnId(4),
        signal,
    };
    let l = r.attach(local).unwrap();
    for i in 0..10 {
        r.publish(l.session, ConnId(4), retained(&format!("spec/{i}")));
    }
    assert_eq!(r.retained(), 12);
    // A retained will is charged to the client whose will it is: its budget is spent, so it is refused.
    let will = Some(Message::new("will/w", "gone", AtLeastOnce, true));
    let w = Attach {
        client_id: "w".into(),
        identity: Identity::anonymous(),
        clean: true,
        will,
        local: false,
        conn: ConnId(5),
        signal: Arc::new(Signal::default()),
    };
    let w = r.attach(w).unwrap();
    r.publish(w.session, ConnId(5), retained("w/1"));
    r.detach(w.session, ConnId(5), true);
    assert_eq!((r.retained(), r.stats.retained_refused.load(Relaxed)), (13, 3));
    assert_eq!(r.retained_bytes(), 4 + 4 + 10 * 7 + 4, "a/1, x/1, spec/0..9, w/1");
}
