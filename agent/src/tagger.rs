//! Authentic reports, the node's half: every hello, heartbeat, event batch, log batch and module request a
//! joined node publishes carries a [`ReportAuth`] in its envelope's `auth`: a counter and an HMAC-SHA256/128
//! tag under the node's report key over (context of the channel, node name, counter,
//! [`edge_proto::auth::message_bytes`]). The controller checks it (and that the counter is new) before it
//! believes anything the message says, so a client that can publish on this node's topics (a broker that does
//! not enforce topics) still cannot speak for it.
//!
//! Not tagged: `status`. The retained `online` and the Last Will `offline` are fixed when the connection is
//! made (the Will is handed to the broker in CONNECT and published by it, possibly long after), so they cannot
//! carry a fresh counter; the controller accepts them untagged. Unjoined nodes (no identity) tag nothing.
//!
//! **Key.** [`ReportKey::for_node`]: X25519 between the node's key (`{data}/node.key`) and the cluster key it
//! pinned at join, so both ends hold it without it ever crossing the wire (see `edge_trust::agree`).
//!
//! **Counters never repeat for the same key, across restarts too** (the controller refuses a repeated counter
//! as a replay). Each start reserves a block of [`BLOCK`] counters with one durable write of the new
//! high-water mark to the agent store (`meta.report_counter_mark`, see [`crate::store`]) before the first tag,
//! and hands them out from memory; no write per message (flash wear on an SD card). The block starts at the
//! larger of the persisted mark and a floor taken from the wall clock (seconds × [`BLOCK`]): the mark guards
//! against a clock that went back, the clock against a store that was lost while the node key was kept (the
//! node joins again under the same key, and the controller still remembers its old counters). 2^32 counters
//! per start and 2^32 starts fit in a `u64`; a run that outlives its block (2^32 messages: decades at a few per
//! second) keeps counting: its numbers stay unique while it runs, and after a restart the clock floor (or, with
//! a clock stuck in 1970, the first few overlapping reports refused) sorts it out.

use std::ops::Range;
use std::path::Path;

use edge_proto::auth::{message_bytes, ReportAuth, REPORT_AUTH_LEN};
use edge_proto::{Channel, Message};
use edge_trust::{Context, ReportKey};

use crate::error::AgentError;
use crate::identity::Identity;
use crate::store::Store;

/// Counters reserved per start, and the clock floor's unit (one block per second of wall-clock time).
pub const BLOCK: u64 = 1 << 32;

/// The context a report on `channel` is tagged under ([`Context::of_report`], shared with the other side).
pub fn context(channel: Channel) -> Option<Context> {
    Context::of_report(channel)
}

/// The counters one start may use, given the persisted high-water `mark` and the wall clock in seconds since
/// the Unix epoch. The block's end is the mark to persist before any of them is used. Never hands out 0 (the
/// controller reads 0 as "nothing seen"), never wraps: at the top of the range the block is empty.
pub fn reservation(mark: u64, now_secs: u64) -> Range<u64> {
    let start = mark.max(now_secs.saturating_mul(BLOCK)).max(1);
    start..start.saturating_add(BLOCK)
}

/// Tags a joined node's reports. Owned by the session's publisher, the one task that encodes uplinks, so
/// counters are handed out in the order messages are published.
pub struct Tagger {
    node: String,
    key: ReportKey,
    /// The next counter to use.
    next: u64,
    /// The end of the reserved block (the persisted mark); past it, counting goes on (see the module doc).
    reserved_until: u64,
}

impl std::fmt::Debug for Tagger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tagger").field("node", &self.node).field("next", &self.next).finish_non_exhaustive()
    }
}

impl Tagger {
    /// A tagger for `node` under `key`, using the counters of `reserved` (already persisted as used).
    pub fn new(node: &str, key: ReportKey, reserved: Range<u64>) -> Tagger {
        Tagger { node: node.to_string(), key, next: reserved.start, reserved_until: reserved.end }
    }

    /// The tagger of a joined node: its report key agreed from `{data}/node.key` and the pinned cluster key,
    /// and a block of counters reserved in the store (opened and closed again here, before the node opens it
    /// for itself). `None` for a node that never joined.
    pub fn open(data_dir: &Path, identity: Option<&Identity>) -> Result<Option<Tagger>, AgentError> {
        let Some(identity) = identity else { return Ok(None) };
        let node_key = crate::join::node_key(data_dir).map_err(|e| {
            AgentError::Config(format!("cannot read the node key in {} to tag reports: {e}", data_dir.display()))
        })?;
        let cluster = identity
            .cluster_key()
            .map_err(|e| AgentError::Config(format!("the pinned cluster key is unusable: {e}")))?;
        let key = ReportKey::for_node(&node_key, &cluster, &identity.node)
            .map_err(|e| AgentError::Config(format!("cannot agree a report key with the cluster: {e}")))?;
        let now_secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let reserved = Store::open(data_dir)?.reserve_report_counters(now_secs)?;
        tracing::debug!(first = reserved.start, "report counters reserved");
        Ok(Some(Tagger::new(&identity.node, key, reserved)))
    }

    /// The `auth` bytes for `message` published on `channel`: `None` for an untagged channel, or once every
    /// `u64` counter is used (never in practice; the controller then drops the untagged reports).
    pub fn auth(&mut self, channel: Channel, message: &Message) -> Option<[u8; REPORT_AUTH_LEN]> {
        let context = context(channel)?;
        let counter = self.take()?;
        let tag = self.key.tag(context, &self.node, counter, &message_bytes(message));
        Some(ReportAuth { counter, tag: *tag.as_bytes() }.to_bytes())
    }

    /// The next counter, never one handed out before.
    fn take(&mut self) -> Option<u64> {
        let counter = self.next;
        self.next = counter.checked_add(1)?;
        if counter == self.reserved_until {
            tracing::warn!("the reserved block of report counters is used up; counting on past it");
        }
        Some(counter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_proto::{Heartbeat, NodeStatus};
    use edge_trust::KeyPair;

    fn heartbeat() -> Message {
        Message::Heartbeat(Heartbeat {
            at_ms: 1,
            applied_generation: 0,
            instances: vec![],
            events_dropped: 0,
            last_event_seq: 0,
            oldest_unacked_seq: 0,
            last_outage: None,
            store_id: 7,
        })
    }

    fn keys() -> (KeyPair, KeyPair) {
        (KeyPair::from_secret_bytes(&[1; 32]), KeyPair::from_secret_bytes(&[2; 32]))
    }

    #[test]
    fn reservations_start_above_the_mark_and_the_clock_and_never_at_zero() {
        assert_eq!(reservation(0, 0), 1..1 + BLOCK);
        // A clock stuck in 1970: the mark alone moves the block on.
        assert_eq!(reservation(1 + BLOCK, 0), 1 + BLOCK..1 + 2 * BLOCK);
        // A sane clock: above every block of an earlier second, even with the mark lost.
        assert_eq!(reservation(0, 1_700_000_000).start, 1_700_000_000 * BLOCK);
        // A clock that went back: the mark wins.
        let later = reservation(0, 1_700_000_100);
        assert_eq!(reservation(later.end, 1_700_000_000).start, later.end);
        // The top of the range: an empty block, no wrap.
        assert!(reservation(u64::MAX, 0).is_empty());
        assert!(reservation(0, u64::MAX).is_empty());
    }

    #[test]
    fn tags_verify_under_the_controllers_key_with_fresh_counters() {
        let (cluster, node) = keys();
        let key = ReportKey::for_node(&node, &cluster.public(), "n1").unwrap();
        let mut tagger = Tagger::new("n1", key, 10..20);
        let theirs = ReportKey::for_controller(&cluster, &node.public(), "n1").unwrap();
        let message = heartbeat();
        let mut counters = vec![];
        for _ in 0..3 {
            let auth = ReportAuth::from_bytes(&tagger.auth(Channel::Heartbeat, &message).unwrap()).unwrap();
            let tag = edge_trust::Tag::from_bytes(auth.tag);
            assert_eq!(theirs.verify(Context::HEARTBEAT, "n1", auth.counter, &message_bytes(&message), &tag), Ok(()));
            // Bound to the channel's context and the node's name.
            assert!(theirs.verify(Context::HELLO, "n1", auth.counter, &message_bytes(&message), &tag).is_err());
            assert!(theirs.verify(Context::HEARTBEAT, "n2", auth.counter, &message_bytes(&message), &tag).is_err());
            counters.push(auth.counter);
        }
        assert_eq!(counters, [10, 11, 12]);
    }

    #[test]
    fn status_is_not_tagged_and_spends_no_counter() {
        let (cluster, node) = keys();
        let mut tagger = Tagger::new("n1", ReportKey::for_node(&node, &cluster.public(), "n1").unwrap(), 5..6);
        assert_eq!(tagger.auth(Channel::Status, &Message::Status(NodeStatus { online: true })), None);
        let auth = ReportAuth::from_bytes(&tagger.auth(Channel::Logs, &Message::Logs(vec![])).unwrap()).unwrap();
        assert_eq!(auth.counter, 5);
    }

    #[test]
    fn counting_goes_past_the_block_but_never_wraps() {
        let (cluster, node) = keys();
        let key = ReportKey::for_node(&node, &cluster.public(), "n1").unwrap();
        let mut tagger = Tagger::new("n1", key.clone(), 1..2);
        assert!(tagger.auth(Channel::Hello, &heartbeat()).is_some());
        assert!(tagger.auth(Channel::Hello, &heartbeat()).is_some(), "past the block: still unique");
        let mut top = Tagger::new("n1", key, u64::MAX - 1..u64::MAX);
        assert!(top.auth(Channel::Hello, &heartbeat()).is_some());
        assert_eq!(top.auth(Channel::Hello, &heartbeat()), None, "u64::MAX is never handed out, nothing wraps");
        assert_eq!(top.auth(Channel::Hello, &heartbeat()), None);
    }

    #[test]
    fn a_restarted_node_never_reuses_a_counter() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap().reserve_report_counters(0).unwrap();
        let second = Store::open(dir.path()).unwrap().reserve_report_counters(0).unwrap();
        assert_eq!(second.start, first.end, "the second start resumes above the first's whole block");
        // The clock going back changes nothing; going forward jumps ahead.
        let third = Store::open(dir.path()).unwrap().reserve_report_counters(1).unwrap();
        assert_eq!(third.start, BLOCK.max(second.end));
        let fourth = Store::open(dir.path()).unwrap().reserve_report_counters(0).unwrap();
        assert_eq!(fourth.start, third.end);
    }

    #[test]
    fn an_unjoined_node_has_no_tagger() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Tagger::open(dir.path(), None).unwrap().is_none());
    }

    #[test]
    fn a_joined_node_opens_a_tagger_from_its_key_file_and_store() {
        let dir = tempfile::tempdir().unwrap();
        let node_key = crate::join::node_key(dir.path()).unwrap();
        let cluster = KeyPair::from_secret_bytes(&[3; 32]);
        let identity = Identity { node: "n1".into(), cluster_key: cluster.public().to_bytes(), password: "p".into() };
        let mut tagger = Tagger::open(dir.path(), Some(&identity)).unwrap().unwrap();
        let auth = ReportAuth::from_bytes(&tagger.auth(Channel::Heartbeat, &heartbeat()).unwrap()).unwrap();
        let theirs = ReportKey::for_controller(&cluster, &node_key.public(), "n1").unwrap();
        let tag = edge_trust::Tag::from_bytes(auth.tag);
        assert!(theirs.verify(Context::HEARTBEAT, "n1", auth.counter, &message_bytes(&heartbeat()), &tag).is_ok());
        // A second start reserves above the first.
        let mut again = Tagger::open(dir.path(), Some(&identity)).unwrap().unwrap();
        let next = ReportAuth::from_bytes(&again.auth(Channel::Heartbeat, &heartbeat()).unwrap()).unwrap();
        assert!(next.counter >= auth.counter + BLOCK, "{} then {}", auth.counter, next.counter);
    }
}
