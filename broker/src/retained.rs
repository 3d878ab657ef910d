//! Retained messages: an in-memory topic trie with count and byte bounds, plus a sink to persist changes.
//!
//! The store is keyed by topic level, so finding the retained messages for a new subscription walks the
//! filter: an exact level is one lookup, `+` visits the children of one node, `#` a subtree. A subscription to
//! one node's `spec` topic therefore costs one path, not a scan of every retained topic.
//!
//! Invariants: `count` and `bytes` equal the number and [`Message::cost`] sum of stored messages and never exceed
//! the bounds; a topic deeper than [`MAX_LEVELS`] is never stored (keeps recursion bounded); no empty node
//! survives a removal.

use std::collections::HashMap;

use crate::message::Message;
use crate::topic::{is_dollar, MAX_LEVELS};

/// Hears every change to the retained store, so the embedding program can persist retained messages (for
/// example in redb) and restore them after a restart by publishing them again with `retain` set through a
/// local client.
///
/// Called with the broker's routing lock held: it must be quick and must not call back into the broker
/// (queue the change to a task instead).
pub trait RetainedSink: Send + Sync + 'static {
    /// `Some` stores or replaces the topic's retained message; `None` removes it.
    fn changed(&self, topic: &str, message: Option<&Message>);
}

/// What [`RetainedStore::set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retain {
    Stored,
    Removed,
    /// An empty payload for a topic with nothing retained.
    Nothing,
    /// Over a bound (count, bytes or levels): not stored; an older message on the topic, if any, is removed so
    /// a late subscriber never sees a stale value as current.
    Refused,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<Message>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.message.is_none()
    }
}

#[derive(Debug)]
pub(crate) struct RetainedStore {
    root: Node,
    count: usize,
    bytes: usize,
    max_count: usize,
    max_bytes: usize,
}

impl RetainedStore {
    pub(crate) fn new(max_count: usize, max_bytes: usize) -> RetainedStore {
        RetainedStore { root: Node::default(), count: 0, bytes: 0, max_count, max_bytes }
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Applies a publish with the retain flag: an empty payload clears the topic (MQTT 3.1.1 section 3.3.1.3).
    /// `message.topic` must be a valid topic name.
    pub(crate) fn set(&mut self, message: &Message) -> Retain {
        let levels: Vec<&str> = message.topic.split('/').take(MAX_LEVELS + 1).collect();
        let old = self.take(&levels);
        if let Some(old) = &old {
            self.count -= 1;
            self.bytes -= old.cost();
        }
        if message.payload.is_empty() {
            return if old.is_some() { Retain::Removed } else { Retain::Nothing };
        }
        let cost = message.cost();
        let fits = levels.len() <= MAX_LEVELS
            && self.count < self.max_count
            && self.bytes.checked_add(cost).is_some_and(|b| b <= self.max_bytes);
        if !fits {
            return Retain::Refused;
        }
        let mut node = &mut self.root;
        for level in &levels {
            node = node.children.entry((*level).into()).or_default();
        }
        node.message = Some(message.delivered(message.qos, true));
        self.count += 1;
        self.bytes += cost;
        Retain::Stored
    }

    fn take(&mut self, levels: &[&str]) -> Option<Message> {
        if levels.len() > MAX_LEVELS {
            return None;
        }
        take_at(&mut self.root, levels)
    }

    /// Appends to `out` the retained messages matching `filter` (a valid filter), at most `limit` of them.
    /// Returns false if it stopped at the limit.
    pub(crate) fn matching(&self, filter: &str, limit: usize, out: &mut Vec<Message>) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        collect(&self.root, &levels, true, limit, out)
    }
}

fn take_at(node: &mut Node, levels: &[&str]) -> Option<Message> {
    let Some((first, rest)) = levels.split_first() else {
        return node.message.take();
    };
    let child = node.children.get_mut(*first)?;
    let taken = take_at(child, rest);
    if child.is_empty() {
        node.children.remove(*first);
    }
    taken
}

/// Walks `filter` levels from `node`; false once `limit` is reached.
fn collect(node: &Node, filter: &[&str], first: bool, limit: usize, out: &mut Vec<Message>) -> bool {
    let Some((level, rest)) = filter.split_first() else {
        return push(node, limit, out);
    };
    // Wildcards in the first level skip `$` topics.
    let visible = |name: &str| !(first && is_dollar(name));
    match *level {
        "#" => {
            // `a/#` includes `a` itself; at the root there is no parent message.
            if !first && !push(node, limit, out) {
                return false;
            }
            node.children.iter().filter(|(name, _)| visible(name)).all(|(_, child)| subtree(child, limit, out))
        }
        "+" => node
            .children
            .iter()
            .filter(|(name, _)| visible(name))
            .all(|(_, child)| collect(child, rest, false, limit, out)),
        exact => match node.children.get(exact) {
            Some(child) => collect(child, rest, false, limit, out),
            None => true,
        },
    }
}

fn subtree(node: &Node, limit: usize, out: &mut Vec<Message>) -> bool {
    push(node, limit, out) && node.children.values().all(|child| subtree(child, limit, out))
}

fn push(node: &Node, limit: usize, out: &mut Vec<Message>) -> bool {
    if let Some(m) = &node.message {
        if out.len() >= limit {
            return false;
        }
        out.push(m.clone());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::QoS::AtLeastOnce;

    fn msg(topic: &str, payload: &str) -> Message {
        Message::new(topic, payload.as_bytes().to_vec(), AtLeastOnce, true)
    }

    fn topics(store: &RetainedStore, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        assert!(store.matching(filter, usize::MAX, &mut out));
        let mut t: Vec<String> = out.iter().map(|m| m.topic.to_string()).collect();
        t.sort();
        t
    }

    #[test]
    fn set_replace_clear() {
        let mut s = RetainedStore::new(10, 1000);
        assert_eq!(s.set(&msg("a/b", "1")), Retain::Stored);
        assert_eq!(s.set(&msg("a/b", "22")), Retain::Stored);
        assert_eq!(s.len(), 1);
        assert_eq!(s.bytes, 5);
        let mut out = Vec::new();
        s.matching("a/b", 10, &mut out);
        assert_eq!(&out[0].payload[..], b"22");
        assert!(out[0].retain);
        assert_eq!(s.set(&msg("a/b", "")), Retain::Removed);
        assert_eq!(s.set(&msg("a/b", "")), Retain::Nothing);
        assert_eq!((s.len(), s.bytes), (0, 0));
        assert!(s.root.is_empty());
    }

    #[test]
    fn wildcard_lookup() {
        let mut s = RetainedStore::new(100, 10_000);
        for t in ["a", "a/b", "a/c", "a/b/c", "x/b", "$SYS/up", "/lead"] {
            s.set(&msg(t, "v"));
        }
        assert_eq!(topics(&s, "a/#"), ["a", "a/b", "a/b/c", "a/c"]);
        assert_eq!(topics(&s, "+/b"), ["a/b", "x/b"]);
        assert_eq!(topics(&s, "#"), ["/lead", "a", "a/b", "a/b/c", "a/c", "x/b"]);
        assert_eq!(topics(&s, "+"), ["a"]);
        assert_eq!(topics(&s, "$SYS/#"), ["$SYS/up"]);
        assert_eq!(topics(&s, "+/lead"), ["/lead"]);
        assert_eq!(topics(&s, "a/b/c/d"), Vec::<String>::new());
    }

    #[test]
    fn bounds_refuse_and_clear_the_stale_value() {
        let mut s = RetainedStore::new(2, 100);
        assert_eq!(s.set(&msg("a", "1")), Retain::Stored);
        assert_eq!(s.set(&msg("b", "1")), Retain::Stored);
        assert_eq!(s.set(&msg("c", "1")), Retain::Refused, "count bound");
        assert_eq!(s.set(&msg("a", "2")), Retain::Stored, "replacing fits");
        assert_eq!(s.set(&msg("a", &"x".repeat(200))), Retain::Refused, "byte bound");
        assert_eq!(topics(&s, "#"), ["b"], "the stale value of a is gone");
        let deep = vec!["d"; MAX_LEVELS + 1].join("/");
        assert_eq!(s.set(&msg(&deep, "1")), Retain::Refused, "level bound");
    }

    #[test]
    fn limit_stops_the_walk() {
        let mut s = RetainedStore::new(100, 10_000);
        for i in 0..10 {
            s.set(&msg(&format!("t/{i}"), "v"));
        }
        let mut out = Vec::new();
        assert!(!s.matching("t/+", 3, &mut out));
        assert_eq!(out.len(), 3);
    }
}
