//! Authentic reports, the controller's half: a member's hello, heartbeat, events, logs and module requests
//! are believed only with a valid tag under that member's report key and a counter never accepted before. A
//! client that can publish on a member's topics (an external broker that does not enforce topics, a stolen
//! MQTT password without the node key) cannot speak for it: what fails is dropped and counted per node
//! (`rejected_reports` in `GET /v1/nodes/{name}`, `edgectl describe node`).
//!
//! Who must tag: members (nodes that joined with a token, [`Cluster::members`]). A member's message without a
//! tag is refused like a forged one: it is exactly what a forger without the key sends. Non-members (nodes an
//! open controller admits without a join, protocol 3 agents) carry no identity to tag under and need none.
//! `status` is never tagged (its retained `online` and its Last Will are fixed at connect, see
//! `edge_agent::tagger`), so a forger on an open broker can still say a member is offline (NotReady until
//! its next heartbeat) or online (which alone makes nothing Ready: that takes a tagged hello or heartbeat).
//!
//! The check ([`Reports::check`]), in this order so a forgery never touches the state: the `auth` is a
//! [`ReportAuth`]; its counter is not one the node's [`ReplayWindow`] has seen (a cheap look, no record); the
//! tag verifies under the node's key over (context of the channel, node name, counter,
//! [`message_bytes`] of the decoded message); then the counter is recorded. A tag made under another node's
//! key fails like any forgery (keys are bound to the name too, see `edge_trust::agree`).
//!
//! Keys are derived on first use after a join ([`ReportKey::for_controller`], one X25519 multiplication,
//! ~40 µs) and cached with the member's public key they were derived for (a member record with another key is
//! derived again); [`Reports::forget`] drops a deleted node's key, window and count.
//!
//! **What survives a restart.** The replay windows are in memory. The highest accepted counter is kept in
//! the node's record ([`NodeRecord::report_counter`](crate::model::NodeRecord)): updated in memory with every
//! accepted report, it is written whenever the record is written anyway (a hello, a new event watermark or
//! spec generation change), and at least every [`SAVE_EVERY`] accepted reports. A restarted controller
//! resumes each window there ([`ReplayWindow::resume`]): every report up to the persisted counter is refused,
//! so captured traffic older than the last save is worthless. What is left: reports captured after the last
//! save (at most [`SAVE_EVERY`] of them, usually far fewer) can be played back once each to a restarted
//! controller, before the node's own newer reports move the window past them (an event is still applied at
//! most once: its sequence number goes through the ledger). The rejection counts are in memory only, like the
//! controller's other counters: they count since it started.

use std::collections::HashMap;

use edge_proto::auth::{message_bytes, ReportAuth};
use edge_proto::{Channel, Message};
use edge_trust::{ClusterKey, Context, PublicKey, ReplayError, ReplayWindow, ReportKey, Tag};

use super::Cluster;
use crate::model::MemberRecord;

/// Accepted reports from one node between forced writes of its record with the highest counter.
pub(crate) const SAVE_EVERY: u32 = 1_000;

/// The context a report on `channel` is tagged under ([`Context::of_report`], shared with the other side).
pub(crate) fn context(channel: Channel) -> Option<Context> {
    Context::of_report(channel)
}

/// Why a member's report was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("untagged")]
    Missing,
    #[error("tag of the wrong length")]
    Malformed,
    #[error("replayed")]
    Replayed(#[source] ReplayError),
    /// Forged, altered, or tagged under another node's key: deliberately one reason.
    #[error("tag does not verify under the node's key")]
    Invalid,
    /// The member's stored public key is unusable (a corrupt record): nothing it sends can be believed.
    #[error("the node's public key is unusable")]
    NoKey,
}

/// A report that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// The node's highest accepted counter now: what its record keeps.
    pub highest: u64,
    /// Whether the record should be written now (every [`SAVE_EVERY`] accepted reports).
    pub save: bool,
}

/// Report keys, replay windows and rejection counts of the members heard from.
#[derive(Debug, Default)]
pub(crate) struct Reports {
    nodes: HashMap<String, NodeReports>,
}

#[derive(Debug)]
struct NodeReports {
    /// The member's public key (hex) that `key` was derived for.
    public_key: String,
    /// `None` when that key is unusable.
    key: Option<ReportKey>,
    window: ReplayWindow,
    rejected: u64,
    since_saved: u32,
}

impl Reports {
    /// Checks a report `message` on `channel` from `member`, carrying `auth`. `resume_from` is the highest
    /// counter persisted with the node's record (0: none), where a window not yet in memory starts.
    pub fn check(
        &mut self,
        cluster: &ClusterKey,
        member: &MemberRecord,
        resume_from: u64,
        context: Context,
        message: &Message,
        auth: Option<&[u8]>,
    ) -> Result<Accepted, Refusal> {
        let node = self.entry(cluster, member, resume_from);
        let result = node.verify(&member.name, context, message, auth);
        if result.is_err() {
            node.rejected = node.rejected.saturating_add(1);
        }
        result
    }

    /// The member's entry, derived now if it has none or its public key changed.
    fn entry(&mut self, cluster: &ClusterKey, member: &MemberRecord, resume_from: u64) -> &mut NodeReports {
        let stale = self.nodes.get(&member.name).is_none_or(|n| n.public_key != member.public_key);
        if stale {
            let key = derive(cluster, member);
            if key.is_none() {
                tracing::warn!(node = %member.name, "the member's public key is unusable: its reports are refused");
            }
            // A changed key keeps what was seen: counters only move forward for a name.
            let (window, rejected) = match self.nodes.get(&member.name) {
                Some(old) => (old.window, old.rejected),
                None if resume_from > 0 => (ReplayWindow::resume(resume_from), 0),
                None => (ReplayWindow::new(), 0),
            };
            let fresh = NodeReports { public_key: member.public_key.clone(), key, window, rejected, since_saved: 0 };
            self.nodes.insert(member.name.clone(), fresh);
        }
        self.nodes.get_mut(&member.name).expect("inserted above")
    }

    /// Forgets a deleted node: its key, its window and its count.
    pub fn forget(&mut self, node: &str) {
        self.nodes.remove(node);
    }

    /// Reports from `node` refused since the controller started.
    pub fn rejected(&self, node: &str) -> u64 {
        self.nodes.get(node).map_or(0, |n| n.rejected)
    }

    /// The highest counter accepted from `node`, 0 if none.
    pub fn highest(&self, node: &str) -> u64 {
        self.nodes.get(node).and_then(|n| n.window.highest()).unwrap_or(0)
    }
}

impl NodeReports {
    fn verify(
        &mut self,
        node: &str,
        context: Context,
        message: &Message,
        auth: Option<&[u8]>,
    ) -> Result<Accepted, Refusal> {
        let auth = auth.ok_or(Refusal::Missing)?;
        let auth = ReportAuth::from_bytes(auth).ok_or(Refusal::Malformed)?;
        let key = self.key.as_ref().ok_or(Refusal::NoKey)?;
        self.window.check(auth.counter).map_err(Refusal::Replayed)?;
        key.verify(context, node, auth.counter, &message_bytes(message), &Tag::from_bytes(auth.tag))
            .map_err(|_| Refusal::Invalid)?;
        self.window.accept(auth.counter).map_err(Refusal::Replayed)?;
        self.since_saved += 1;
        let save = self.since_saved >= SAVE_EVERY;
        if save {
            self.since_saved = 0;
        }
        Ok(Accepted { highest: self.window.highest().unwrap_or(auth.counter), save })
    }
}

fn derive(cluster: &ClusterKey, member: &MemberRecord) -> Option<ReportKey> {
    let bytes: [u8; 32] = hex::decode(&member.public_key).ok()?.try_into().ok()?;
    let public = PublicKey::from_bytes(&bytes).ok()?;
    ReportKey::for_controller(cluster, &public, &member.name).ok()
}

impl Cluster {
    /// Whether a decoded message from `node` on `channel` may be believed: always for non-members and for
    /// `status`; for a member's report, only with a valid, fresh tag (see the module doc). A refusal is
    /// counted for the node (and in the controller's rejected messages) and logged at debug level: a flood
    /// of forgeries must not flood the log.
    pub(super) fn authentic(&mut self, node: &str, channel: Channel, message: &Message, auth: Option<&[u8]>) -> bool {
        let Some(member) = self.members.get(node) else { return true };
        let Some(context) = context(channel) else { return true };
        let resume_from = self.nodes.get(node).map_or(0, |r| r.report_counter);
        match self.reports.check(&self.cluster_key, member, resume_from, context, message, auth) {
            Ok(accepted) => {
                if let Some(record) = self.nodes.get_mut(node) {
                    record.report_counter = accepted.highest;
                    if accepted.save {
                        self.unsaved_nodes.insert(node.to_string());
                    }
                }
                true
            }
            Err(refusal) => {
                self.counters.rejected += 1;
                tracing::debug!(node, channel = channel.as_str(), reason = %refusal, "report refused");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_proto::{Heartbeat, Message};
    use edge_trust::KeyPair;

    fn member(name: &str, key: &KeyPair) -> MemberRecord {
        MemberRecord {
            name: name.into(),
            public_key: hex::encode(key.public().to_bytes()),
            password_sha256: String::new(),
            joined_ms: 1,
            token: "t".into(),
            labels: Default::default(),
        }
    }

    fn heartbeat(at_ms: u64) -> Message {
        Message::Heartbeat(Heartbeat {
            at_ms,
            applied_generation: 0,
            instances: vec![],
            events_dropped: 0,
            last_event_seq: 0,
            oldest_unacked_seq: 0,
            last_outage: None,
            store_id: 1,
        })
    }

    /// The auth a node holding `node` (named `name`) would send.
    fn auth(cluster: &KeyPair, node: &KeyPair, name: &str, counter: u64, message: &Message) -> Vec<u8> {
        let key = ReportKey::for_node(node, &cluster.public(), name).unwrap();
        let tag = key.tag(Context::HEARTBEAT, name, counter, &message_bytes(message));
        ReportAuth { counter, tag: *tag.as_bytes() }.to_bytes().to_vec()
    }

    struct Fixture {
        cluster: KeyPair,
        n1: KeyPair,
        n2: KeyPair,
        reports: Reports,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                cluster: KeyPair::from_secret_bytes(&[1; 32]),
                n1: KeyPair::from_secret_bytes(&[2; 32]),
                n2: KeyPair::from_secret_bytes(&[3; 32]),
                reports: Reports::default(),
            }
        }

        fn check(&mut self, resume: u64, message: &Message, auth: Option<&[u8]>) -> Result<Accepted, Refusal> {
            let m = member("n1", &self.n1);
            self.reports.check(&self.cluster, &m, resume, Context::HEARTBEAT, message, auth)
        }
    }

    #[test]
    fn good_reports_pass_once_and_the_rest_is_counted() {
        let mut f = Fixture::new();
        let m = heartbeat(1);
        let good = auth(&f.cluster, &f.n1, "n1", 5, &m);
        assert_eq!(f.check(0, &m, Some(&good)), Ok(Accepted { highest: 5, save: false }));
        assert_eq!(f.check(0, &m, Some(&good)), Err(Refusal::Replayed(ReplayError::Duplicate(5))));
        assert_eq!(f.check(0, &m, None), Err(Refusal::Missing));
        assert_eq!(f.check(0, &m, Some(&[0; 5])), Err(Refusal::Malformed));
        // Under n2's key, or claiming n1 with n2's key: forged either way.
        let other = auth(&f.cluster, &f.n2, "n2", 6, &m);
        assert_eq!(f.check(0, &m, Some(&other)), Err(Refusal::Invalid));
        let posing = auth(&f.cluster, &f.n2, "n1", 6, &m);
        assert_eq!(f.check(0, &m, Some(&posing)), Err(Refusal::Invalid));
        // Another message under a good tag, another context.
        assert_eq!(f.check(0, &heartbeat(2), Some(&auth(&f.cluster, &f.n1, "n1", 7, &m))), Err(Refusal::Invalid));
        let m1 = member("n1", &f.n1);
        let hello_ctx =
            f.reports.check(&f.cluster, &m1, 0, Context::HELLO, &m, Some(&auth(&f.cluster, &f.n1, "n1", 8, &m)));
        assert_eq!(hello_ctx, Err(Refusal::Invalid));
        assert_eq!(f.reports.rejected("n1"), 7);
        // Forgeries recorded nothing: counters 6, 7 and 8 are still fresh.
        assert!(f.check(0, &m, Some(&auth(&f.cluster, &f.n1, "n1", 6, &m))).is_ok());
        assert_eq!(f.reports.highest("n1"), 6);
    }

    #[test]
    fn a_window_not_in_memory_resumes_above_the_persisted_counter() {
        let mut f = Fixture::new();
        let m = heartbeat(1);
        assert_eq!(
            f.check(100, &m, Some(&auth(&f.cluster, &f.n1, "n1", 100, &m))).map(|a| a.highest),
            Err(Refusal::Replayed(ReplayError::Duplicate(100)))
        );
        assert_eq!(
            f.check(100, &m, Some(&auth(&f.cluster, &f.n1, "n1", 3, &m))),
            Err(Refusal::Replayed(ReplayError::TooOld { counter: 3, highest: 100 }))
        );
        assert_eq!(f.check(100, &m, Some(&auth(&f.cluster, &f.n1, "n1", 101, &m))).map(|a| a.highest), Ok(101));
        // Once in memory, the persisted value is not looked at again.
        assert!(f.check(0, &m, Some(&auth(&f.cluster, &f.n1, "n1", 50, &m))).is_err());
    }

    #[test]
    fn the_record_is_saved_every_so_many_reports() {
        let mut f = Fixture::new();
        let m = heartbeat(1);
        let saves: Vec<u64> = (1..=2 * u64::from(SAVE_EVERY) + 1)
            .filter(|&c| f.check(0, &m, Some(&auth(&f.cluster, &f.n1, "n1", c, &m))).unwrap().save)
            .collect();
        assert_eq!(saves, [u64::from(SAVE_EVERY), 2 * u64::from(SAVE_EVERY)]);
    }

    #[test]
    fn a_forgotten_node_starts_again_and_an_unusable_key_refuses_everything() {
        let mut f = Fixture::new();
        let m = heartbeat(1);
        assert!(f.check(0, &m, None).is_err());
        assert_eq!(f.reports.rejected("n1"), 1);
        f.reports.forget("n1");
        assert_eq!((f.reports.rejected("n1"), f.reports.highest("n1")), (0, 0));

        let mut broken = member("n1", &f.n1);
        broken.public_key = "not hex".into();
        let good = auth(&f.cluster, &f.n1, "n1", 1, &m);
        assert_eq!(f.reports.check(&f.cluster, &broken, 0, Context::HEARTBEAT, &m, Some(&good)), Err(Refusal::NoKey));
        // The record is repaired (the same name, a usable key): derived again, what was seen kept.
        assert!(f.check(0, &m, Some(&good)).is_ok());
        assert_eq!(f.reports.rejected("n1"), 1);
    }

    #[test]
    fn only_reports_have_a_context() {
        for channel in Channel::ALL {
            let expected = matches!(
                channel,
                Channel::Hello | Channel::Heartbeat | Channel::Events | Channel::Logs | Channel::ModuleRequest
            );
            assert_eq!(context(channel).is_some(), expected, "{channel:?}");
        }
    }
}
