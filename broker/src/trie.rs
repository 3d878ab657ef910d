//! The subscription trie: which subscribers' filters match a published topic.
//!
//! One node per filter level; `+` and `#` are ordinary child keys looked up by name. Matching a topic walks
//! its levels, at each node following the exact child, the `+` child and collecting the `#` child, so the work
//! per publish is proportional to the topic's levels times the wildcard branches that actually exist on the
//! path — never to the number of subscriptions held (rumqttd compares every filter with every topic).
//!
//! Invariants (upheld by [`crate::topic::valid_filter`] before `insert`): a filter has at most
//! [`crate::topic::MAX_LEVELS`] levels, so recursion depth is bounded; no node without subscribers or children
//! survives a `remove`, so the trie's size follows the live subscriptions.

use std::collections::HashMap;
use std::hash::Hash;

use rumqttc::mqttbytes::QoS;

use crate::topic::{is_dollar, MAX_LEVELS};

/// Filters → subscribers, each with the QoS granted for that filter.
#[derive(Debug)]
pub(crate) struct FilterTrie<K> {
    root: Node<K>,
    len: usize,
}

#[derive(Debug)]
struct Node<K> {
    children: HashMap<Box<str>, Node<K>>,
    subscribers: HashMap<K, QoS>,
}

impl<K> Default for Node<K> {
    fn default() -> Self {
        Node { children: HashMap::new(), subscribers: HashMap::new() }
    }
}

impl<K> Node<K> {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_empty()
    }
}

impl<K: Copy + Eq + Hash> Default for FilterTrie<K> {
    fn default() -> Self {
        FilterTrie { root: Node::default(), len: 0 }
    }
}

impl<K: Copy + Eq + Hash> FilterTrie<K> {
    /// Number of (filter, subscriber) pairs held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds or updates `key`'s subscription to `filter` (a valid filter). Returns true if it was new.
    pub(crate) fn insert(&mut self, filter: &str, key: K, qos: QoS) -> bool {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let new = node.subscribers.insert(key, qos).is_none();
        if new {
            self.len += 1;
        }
        new
    }

    /// Removes `key`'s subscription to `filter`, pruning nodes left empty. Returns true if it existed.
    pub(crate) fn remove(&mut self, filter: &str, key: K) -> bool {
        let levels: Vec<&str> = filter.split('/').take(MAX_LEVELS + 1).collect();
        let removed = remove_at(&mut self.root, &levels, key);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `found` for every subscription whose filter matches `topic` (a valid topic name). A subscriber with
    /// several matching filters is reported once per filter; the caller keeps the highest QoS.
    pub(crate) fn for_each_match(&self, topic: &str, mut found: impl FnMut(K, QoS)) {
        // One level more than any filter can have is enough: beyond it only a `#` (at a shallower node) can
        // match, and the walk reaches that before running out of levels.
        let levels: Vec<&str> = topic.split('/').take(MAX_LEVELS + 1).collect();
        walk(&self.root, &levels, is_dollar(topic), true, &mut found);
    }
}

fn remove_at<K: Copy + Eq + Hash>(node: &mut Node<K>, levels: &[&str], key: K) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        return node.subscribers.remove(&key).is_some();
    };
    let Some(child) = node.children.get_mut(*first) else {
        return false;
    };
    let removed = remove_at(child, rest, key);
    if child.is_empty() {
        node.children.remove(*first);
    }
    removed
}

fn walk<K: Copy>(node: &Node<K>, levels: &[&str], dollar: bool, first: bool, found: &mut impl FnMut(K, QoS)) {
    // A `$` topic is hidden from wildcards in the first level only.
    let wild = !(first && dollar);
    if wild {
        // `a/#` also matches `a` itself (the parent level), so look for `#` before checking the end.
        if let Some(hash) = node.children.get("#") {
            hash.subscribers.iter().for_each(|(k, q)| found(*k, *q));
        }
    }
    let Some((level, rest)) = levels.split_first() else {
        node.subscribers.iter().for_each(|(k, q)| found(*k, *q));
        return;
    };
    if let Some(exact) = node.children.get(*level) {
        walk(exact, rest, dollar, false, found);
    }
    if wild {
        if let Some(plus) = node.children.get("+") {
            walk(plus, rest, dollar, false, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::QoS::{AtLeastOnce, AtMostOnce};

    fn matches(trie: &FilterTrie<u32>, topic: &str) -> Vec<u32> {
        let mut out = Vec::new();
        trie.for_each_match(topic, |k, _| out.push(k));
        out.sort_unstable();
        out
    }

    fn trie(filters: &[&str]) -> FilterTrie<u32> {
        let mut t = FilterTrie::default();
        for (i, f) in filters.iter().enumerate() {
            assert!(crate::topic::valid_filter(f));
            t.insert(f, i as u32, AtMostOnce);
        }
        t
    }

    #[test]
    fn exact_plus_and_hash() {
        let t = trie(&["a/b/c", "a/+/c", "a/#", "#", "+/b/+", "a/b", "b/#"]);
        assert_eq!(matches(&t, "a/b/c"), vec![0, 1, 2, 3, 4]);
        assert_eq!(matches(&t, "a/b"), vec![2, 3, 5]);
        assert_eq!(matches(&t, "a"), vec![2, 3], "a/# matches its parent level");
        assert_eq!(matches(&t, "b"), vec![3, 6]);
        assert_eq!(matches(&t, "c/d"), vec![3]);
        assert_eq!(matches(&t, "a/x/c/d"), vec![2, 3]);
    }

    #[test]
    fn empty_levels_are_levels() {
        let t = trie(&["/a", "+/a", "a//b", "a/+/b", "/"]);
        assert_eq!(matches(&t, "/a"), vec![0, 1]);
        assert_eq!(matches(&t, "a//b"), vec![2, 3]);
        assert_eq!(matches(&t, "/"), vec![4]);
    }

    #[test]
    fn dollar_topics_hidden_from_first_level_wildcards() {
        let t = trie(&["#", "+/x", "$SYS/#", "$SYS/x", "$SYS/+"]);
        assert_eq!(matches(&t, "$SYS/x"), vec![2, 3, 4]);
        assert_eq!(matches(&t, "a/x"), vec![0, 1]);
        // `$` deeper than the first level is an ordinary character.
        let t = trie(&["a/+", "a/#"]);
        assert_eq!(matches(&t, "a/$b"), vec![0, 1]);
    }

    #[test]
    fn insert_updates_and_remove_prunes() {
        let mut t = FilterTrie::default();
        assert!(t.insert("a/+/c", 1u32, AtMostOnce));
        assert!(!t.insert("a/+/c", 1, AtLeastOnce), "same pair updates the QoS");
        let mut q = Vec::new();
        t.for_each_match("a/b/c", |_, qos| q.push(qos));
        assert_eq!(q, vec![AtLeastOnce]);
        assert!(t.insert("a/+/c", 2, AtMostOnce));
        assert_eq!(t.len(), 2);
        assert!(t.remove("a/+/c", 1));
        assert!(!t.remove("a/+/c", 1));
        assert!(!t.remove("a/+", 2), "a prefix is not the filter");
        assert!(t.remove("a/+/c", 2));
        assert_eq!(t.len(), 0);
        assert!(t.root.is_empty(), "empty branches are pruned");
    }

    #[test]
    fn deep_topics_are_bounded() {
        let t = trie(&["a/#", "+/+"]);
        let deep = vec!["a"; 10_000].join("/");
        assert_eq!(matches(&t, &deep), vec![0]);
        let deepest_filter = vec!["a"; MAX_LEVELS].join("/");
        let t = trie(&[&deepest_filter]);
        assert_eq!(matches(&t, &deepest_filter), vec![0]);
        assert_eq!(matches(&t, &format!("{deepest_filter}/a")), Vec::<u32>::new());
    }

    /// The trie agrees with rumqttc's filter matcher (a straightforward reference) on a grid of cases.
    #[test]
    fn agrees_with_reference_matcher() {
        let filters = ["a", "a/b", "a/+", "+/b", "+/+", "#", "a/#", "+/#", "a/b/#", "+", "/+", "+/", "b/+/c"];
        let topics = ["a", "b", "a/b", "a/c", "b/b", "a/b/c", "b/x/c", "/b", "a/", "/", "x/y/z"];
        let t = trie(&filters);
        for topic in topics {
            let expected: Vec<u32> = filters
                .iter()
                .enumerate()
                .filter(|(_, f)| rumqttc::mqttbytes::matches(topic, f))
                .map(|(i, _)| i as u32)
                .collect();
            assert_eq!(matches(&t, topic), expected, "topic {topic}");
        }
    }
}
