//! Retained messages: an in-memory topic trie, the budgets it is held to, and a sink to persist changes.
//!
//! The store is keyed by topic level, so finding the retained messages for a new subscription walks the
//! filter: an exact level is one lookup, `+` visits the children of one node, `#` a subtree. A subscription to
//! one node's `spec` topic therefore costs one path, not a scan of every retained topic.
//!
//! # Budgets
//! Every stored message is charged, by count and by [`Message::cost`] bytes, to its [`Owner`]: whoever
//! published the message the topic holds now. Network clients are held to a budget each (per principal when
//! the policy named one, else per client id) and to one budget all together; local links (the embedding
//! program, whose node specs must never be refused) have a budget of their own, outside the clients'. So a
//! flood from one client fills only its own budget, and a flood from many fills only the clients' share.
//!
//! - Replacing a topic's message first frees the old one's charge (to whoever owned it), then charges the new
//!   one to its publisher: a client overwriting another's topic (where the policy allows it) takes the charge
//!   over, and replacing one's own message at the cap still fits.
//! - A message over a budget is refused and the topic's older message removed, so a late subscriber never
//!   sees a stale value as current (the publisher meant to replace it; it could have cleared it anyway).
//! - Clearing (an empty payload) always works and frees the charge.
//!
//! Invariants: the usage sums equal the count and cost sums of stored messages, per owner and per budget, and
//! never exceed their limits; an owner with nothing stored has no entry (the per-owner map is never larger
//! than the store); a topic deeper than [`MAX_LEVELS`] is never stored (keeps recursion bounded); no empty
//! node survives a removal. Sums are of costs already held in memory, so they cannot overflow `usize`; every
//! check is written with `checked_add` anyway.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

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

/// Who is charged for a retained message: its publisher.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    /// A local link: the embedding program, on its own budget.
    Local,
    /// A principal the policy authenticated: all its connections share one budget, whatever client id.
    Principal(Arc<str>),
    /// An anonymous client, told apart by its client id alone (so reconnecting under fresh ids escapes the
    /// per-client budget; the clients' total still holds).
    Client(Arc<str>),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Local => f.write_str("a local link"),
            Owner::Principal(name) => write!(f, "principal {name:?}"),
            Owner::Client(id) => write!(f, "anonymous client {id:?}"),
        }
    }
}

/// The bounds of one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    pub messages: usize,
    pub bytes: usize,
}

/// The store's budgets (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    pub per_client: Limit,
    pub clients: Limit,
    pub local: Limit,
}

/// What a budget holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    messages: usize,
    bytes: usize,
}

impl Usage {
    fn fits(&self, cost: usize, limit: Limit) -> bool {
        self.messages < limit.messages && self.bytes.checked_add(cost).is_some_and(|b| b <= limit.bytes)
    }

    fn add(&mut self, cost: usize) {
        self.messages += 1;
        self.bytes += cost;
    }

    /// Only ever called with a message this usage was charged for.
    fn sub(&mut self, cost: usize) {
        self.messages -= 1;
        self.bytes -= cost;
    }
}

/// Why a retained message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// Its topic has more than [`MAX_LEVELS`] levels.
    Levels,
    /// Its publisher's own budget (a network client's).
    Client,
    /// The budget of all network clients together.
    AllClients,
    /// The local links' budget.
    Local,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bound::Levels => "the topic has too many levels",
            Bound::Client => "the publisher's retained budget",
            Bound::AllClients => "the retained budget of all clients together",
            Bound::Local => "the local links' retained budget",
        })
    }
}

/// What [`RetainedStore::set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retain {
    Stored,
    Removed,
    /// An empty payload for a topic with nothing retained.
    Nothing,
    /// Over a bound: not stored; an older message on the topic, if any, is removed so a late subscriber never
    /// sees a stale value as current.
    Refused(Bound),
}

#[derive(Debug)]
struct Entry {
    message: Message,
    owner: Owner,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    entry: Option<Entry>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.entry.is_none()
    }
}

#[derive(Debug)]
pub(crate) struct RetainedStore {
    root: Node,
    caps: Caps,
    /// Charged to network clients, all together.
    clients: Usage,
    /// Charged to local links.
    local: Usage,
    /// Charged to each network client that has something stored.
    owners: HashMap<Owner, Usage>,
}

impl RetainedStore {
    pub(crate) fn new(caps: Caps) -> RetainedStore {
        RetainedStore {
            root: Node::default(),
            caps,
            clients: Usage::default(),
            local: Usage::default(),
            owners: HashMap::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.clients.messages.saturating_add(self.local.messages)
    }

    /// Bytes ([`Message::cost`]) of every stored message.
    pub(crate) fn bytes(&self) -> usize {
        self.clients.bytes.saturating_add(self.local.bytes)
    }

    /// Applies a publish with the retain flag from `owner`: an empty payload clears the topic (MQTT 3.1.1
    /// section 3.3.1.3). `message.topic` must be a valid topic name.
    pub(crate) fn set(&mut self, message: &Message, owner: &Owner) -> Retain {
        let levels: Vec<&str> = message.topic.split('/').take(MAX_LEVELS + 1).collect();
        let old = self.take(&levels);
        if let Some(old) = &old {
            self.release(&old.owner, old.message.cost());
        }
        if message.payload.is_empty() {
            return if old.is_some() { Retain::Removed } else { Retain::Nothing };
        }
        if levels.len() > MAX_LEVELS {
            return Retain::Refused(Bound::Levels);
        }
        let cost = message.cost();
        if let Err(bound) = self.admit(owner, cost) {
            return Retain::Refused(bound);
        }
        let mut node = &mut self.root;
        for level in &levels {
            node = node.children.entry((*level).into()).or_default();
        }
        node.entry = Some(Entry { message: message.delivered(message.qos, true), owner: owner.clone() });
        self.charge(owner, cost);
        Retain::Stored
    }

    /// Whether `owner` may be charged `cost` more: the most specific budget that refuses is named.
    fn admit(&self, owner: &Owner, cost: usize) -> Result<(), Bound> {
        if *owner == Owner::Local {
            return if self.local.fits(cost, self.caps.local) { Ok(()) } else { Err(Bound::Local) };
        }
        let own = self.owners.get(owner).copied().unwrap_or_default();
        if !own.fits(cost, self.caps.per_client) {
            return Err(Bound::Client);
        }
        if !self.clients.fits(cost, self.caps.clients) {
            return Err(Bound::AllClients);
        }
        Ok(())
    }

    fn charge(&mut self, owner: &Owner, cost: usize) {
        if *owner == Owner::Local {
            self.local.add(cost);
            return;
        }
        self.clients.add(cost);
        self.owners.entry(owner.clone()).or_default().add(cost);
    }

    fn release(&mut self, owner: &Owner, cost: usize) {
        if *owner == Owner::Local {
            self.local.sub(cost);
            return;
        }
        self.clients.sub(cost);
        if let Some(own) = self.owners.get_mut(owner) {
            own.sub(cost);
            if own.messages == 0 {
                self.owners.remove(owner);
            }
        }
    }

    fn take(&mut self, levels: &[&str]) -> Option<Entry> {
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

fn take_at(node: &mut Node, levels: &[&str]) -> Option<Entry> {
    let Some((first, rest)) = levels.split_first() else {
        return node.entry.take();
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
    if let Some(e) = &node.entry {
        if out.len() >= limit {
            return false;
        }
        out.push(e.message.clone());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::QoS::AtLeastOnce;

    fn limit(messages: usize, bytes: usize) -> Limit {
        Limit { messages, bytes }
    }

    fn store(per_client: Limit, clients: Limit, local: Limit) -> RetainedStore {
        RetainedStore::new(Caps { per_client, clients, local })
    }

    fn roomy() -> RetainedStore {
        store(limit(1000, 100_000), limit(1000, 100_000), limit(1000, 100_000))
    }

    fn msg(topic: &str, payload: &str) -> Message {
        Message::new(topic, payload.as_bytes().to_vec(), AtLeastOnce, true)
    }

    fn client(id: &str) -> Owner {
        Owner::Client(id.into())
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
        let mut s = roomy();
        let a = client("a");
        assert_eq!(s.set(&msg("a/b", "1"), &a), Retain::Stored);
        assert_eq!(s.set(&msg("a/b", "22"), &a), Retain::Stored);
        assert_eq!((s.len(), s.bytes()), (1, 5), "the replacement freed the old size");
        let mut out = Vec::new();
        s.matching("a/b", 10, &mut out);
        assert_eq!(&out[0].payload[..], b"22");
        assert!(out[0].retain);
        assert_eq!(s.set(&msg("a/b", ""), &a), Retain::Removed);
        assert_eq!(s.set(&msg("a/b", ""), &a), Retain::Nothing);
        assert_eq!((s.len(), s.bytes()), (0, 0));
        assert!(s.root.is_empty());
        assert!(s.owners.is_empty(), "an owner with nothing stored has no entry");
    }

    #[test]
    fn wildcard_lookup() {
        let mut s = roomy();
        for t in ["a", "a/b", "a/c", "a/b/c", "x/b", "$SYS/up", "/lead"] {
            s.set(&msg(t, "v"), &client("p"));
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
    fn the_clients_total_refuses_and_clears_the_stale_value() {
        let mut s = store(limit(100, 1000), limit(2, 100), limit(100, 1000));
        let (a, b) = (client("a"), client("b"));
        assert_eq!(s.set(&msg("a", "1"), &a), Retain::Stored);
        assert_eq!(s.set(&msg("b", "1"), &b), Retain::Stored);
        assert_eq!(s.set(&msg("c", "1"), &a), Retain::Refused(Bound::AllClients), "count bound");
        assert_eq!(s.set(&msg("a", "2"), &a), Retain::Stored, "replacing fits");
        assert_eq!(s.set(&msg("a", &"x".repeat(200)), &a), Retain::Refused(Bound::AllClients), "byte bound");
        assert_eq!(topics(&s, "#"), ["b"], "the stale value of a is gone");
        let deep = vec!["d"; MAX_LEVELS + 1].join("/");
        assert_eq!(s.set(&msg(&deep, "1"), &a), Retain::Refused(Bound::Levels), "level bound");
        assert_eq!(s.set(&msg(&deep, "1"), &Owner::Local), Retain::Refused(Bound::Levels), "even for local links");
    }

    #[test]
    fn one_client_fills_only_its_own_budget() {
        let mut s = store(limit(3, 40), limit(100, 1000), limit(100, 1000));
        let (flood, other) = (client("flood"), client("other"));
        for i in 0..3 {
            assert_eq!(s.set(&msg(&format!("f/{i}"), "123456789"), &flood), Retain::Stored);
        }
        assert_eq!(s.set(&msg("f/3", "1"), &flood), Retain::Refused(Bound::Client), "count");
        assert_eq!(s.set(&msg("f/0", "1234567890"), &flood), Retain::Stored, "a replacement frees the old size");
        assert_eq!(s.set(&msg("f/1", &"x".repeat(30)), &flood), Retain::Refused(Bound::Client), "bytes");
        assert_eq!(s.set(&msg("o/0", "fine"), &other), Retain::Stored, "another client is unaffected");
        // A principal and an anonymous client with the same name are different owners.
        let p = Owner::Principal("flood".into());
        assert_eq!(s.set(&msg("p/0", "fine"), &p), Retain::Stored);
        assert_eq!(s.set(&msg("f/0", ""), &flood), Retain::Removed, "clearing always works");
        assert_eq!(s.owners[&flood], Usage { messages: 1, bytes: 12 }, "f/2 left");
    }

    #[test]
    fn overwriting_anothers_topic_moves_the_charge_to_the_new_publisher() {
        let mut s = store(limit(2, 100), limit(100, 1000), limit(100, 1000));
        let (a, b) = (client("a"), client("b"));
        s.set(&msg("t/1", "aaaa"), &a);
        s.set(&msg("t/2", "aaaa"), &a);
        assert_eq!(s.set(&msg("t/1", "bb"), &b), Retain::Stored);
        assert_eq!(s.owners[&a], Usage { messages: 1, bytes: 7 });
        assert_eq!(s.owners[&b], Usage { messages: 1, bytes: 5 });
        assert_eq!(s.set(&msg("t/3", "aaaa"), &a), Retain::Stored, "a got room back");
        // b at its cap overwriting a's topic: refused, and a's stale value is gone (and its charge with it).
        s.set(&msg("t/4", "bb"), &b);
        assert_eq!(s.set(&msg("t/2", "bb"), &b), Retain::Refused(Bound::Client));
        assert_eq!(s.owners[&a], Usage { messages: 1, bytes: 7 });
        assert_eq!(topics(&s, "t/+"), ["t/1", "t/3", "t/4"]);
    }

    #[test]
    fn local_links_have_their_own_budget() {
        let mut s = store(limit(10, 100), limit(1, 10), limit(2, 1000));
        assert_eq!(s.set(&msg("c", "123456789"), &client("a")), Retain::Stored);
        assert_eq!(s.set(&msg("d", "1"), &client("b")), Retain::Refused(Bound::AllClients), "clients are full");
        assert_eq!(s.set(&msg("spec/1", &"s".repeat(500)), &Owner::Local), Retain::Stored, "local links are not");
        assert_eq!(s.set(&msg("spec/2", "s"), &Owner::Local), Retain::Stored);
        assert_eq!(s.set(&msg("spec/3", "s"), &Owner::Local), Retain::Refused(Bound::Local));
        assert_eq!((s.len(), s.bytes()), (3, 10 + 506 + 7));
        // A client overwriting a local link's topic is charged to the clients' budget (here: full, refused).
        assert_eq!(s.set(&msg("spec/1", "x"), &client("a")), Retain::Refused(Bound::AllClients));
        assert_eq!(s.local, Usage { messages: 1, bytes: 7 }, "the local link's charge was freed");
    }

    /// Random operations from four owners against a plain map: the store's outcome and bookkeeping must match
    /// what the model computes from scratch, and no limit is ever exceeded (deterministic xorshift).
    #[test]
    fn matches_a_model_under_random_operations() {
        let caps = Caps { per_client: limit(3, 60), clients: limit(5, 100), local: limit(4, 80) };
        let mut s = RetainedStore::new(caps);
        let owners = [Owner::Local, Owner::Principal("p".into()), client("c1"), client("c2")];
        let mut model: HashMap<String, (Owner, usize, Vec<u8>)> = HashMap::new();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as usize
        };
        let usage = |model: &HashMap<String, (Owner, usize, Vec<u8>)>, pick: &dyn Fn(&Owner) -> bool| {
            model.values().filter(|(o, _, _)| pick(o)).fold(Usage::default(), |mut u, (_, c, _)| {
                u.add(*c);
                u
            })
        };
        let mut refused = 0;
        for step in 0..20_000 {
            let owner = owners[next(4)].clone();
            let topic = if next(50) == 0 { vec!["d"; MAX_LEVELS + 1].join("/") } else { format!("t/{}", next(8)) };
            let len = if next(5) == 0 { 0 } else { next(41) };
            let payload = vec![step as u8; len];
            let message = Message::new(topic.as_str(), payload.clone(), AtLeastOnce, true);
            let got = s.set(&message, &owner);

            let old = model.remove(&topic);
            let cost = message.cost();
            let want = if len == 0 {
                if old.is_some() {
                    Retain::Removed
                } else {
                    Retain::Nothing
                }
            } else if topic.split('/').count() > MAX_LEVELS {
                Retain::Refused(Bound::Levels)
            } else {
                let fits = |u: Usage, l: Limit| u.messages < l.messages && u.bytes + cost <= l.bytes;
                let bound = if owner == Owner::Local {
                    (!fits(usage(&model, &|o| *o == Owner::Local), caps.local)).then_some(Bound::Local)
                } else if !fits(usage(&model, &|o| *o == owner), caps.per_client) {
                    Some(Bound::Client)
                } else if !fits(usage(&model, &|o| *o != Owner::Local), caps.clients) {
                    Some(Bound::AllClients)
                } else {
                    None
                };
                match bound {
                    Some(b) => Retain::Refused(b),
                    None => {
                        model.insert(topic.clone(), (owner.clone(), cost, payload));
                        Retain::Stored
                    }
                }
            };
            assert_eq!(got, want, "step {step}: {owner} sets {topic} ({len} bytes)");
            refused += usize::from(matches!(got, Retain::Refused(_)));

            assert_eq!(s.local, usage(&model, &|o| *o == Owner::Local), "step {step}");
            assert_eq!(s.clients, usage(&model, &|o| *o != Owner::Local), "step {step}");
            for o in &owners[1..] {
                let want = usage(&model, &|x| x == o);
                assert_eq!(s.owners.get(o).copied().unwrap_or_default(), want, "step {step}: {o}");
                assert!(want.messages <= 3 && want.bytes <= 60);
            }
            assert!(s.owners.values().all(|u| u.messages > 0), "step {step}: an empty owner entry");
            assert!(s.clients.messages <= 5 && s.clients.bytes <= 100 && s.local.messages <= 4 && s.local.bytes <= 80);
            let mut stored = Vec::new();
            assert!(s.matching("#", usize::MAX, &mut stored));
            assert_eq!(stored.len(), model.len(), "step {step}");
            for m in stored {
                assert_eq!(model[&*m.topic].2, m.payload, "step {step}: {}", m.topic);
            }
        }
        assert!(refused > 1_000, "the bounds were exercised: {refused} refusals");
    }

    #[test]
    fn limit_stops_the_walk() {
        let mut s = roomy();
        for i in 0..10 {
            s.set(&msg(&format!("t/{i}"), "v"), &Owner::Local);
        }
        let mut out = Vec::new();
        assert!(!s.matching("t/+", 3, &mut out));
        assert_eq!(out.len(), 3);
    }
}
