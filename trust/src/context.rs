//! Domain-separation labels. A signature or tag made under one [`Context`] never verifies under another,
//! so an attacker cannot take bytes signed as one kind of message and present them as another. The label is
//! framed with its length (see `frame`), which is why it is capped at 255 bytes, as in RFC 8032's Ed25519ctx.

/// A fixed label naming what a signature or tag is for, e.g. `b"edge/spec/v1"`. Contexts are program
/// constants, never wire input: build them in `const`s, where a bad one fails to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context(&'static [u8]);

impl Context {
    /// A node's desired-state document, signed by the cluster key.
    pub const SPEC: Context = Context::new(b"edge/spec/v1");
    /// A node's heartbeat, tagged under its identity.
    pub const HEARTBEAT: Context = Context::new(b"edge/heartbeat/v1");
    /// A node's lifecycle events.
    pub const EVENTS: Context = Context::new(b"edge/events/v1");
    /// A node's log lines.
    pub const LOGS: Context = Context::new(b"edge/logs/v1");
    /// A node's hello (board, engine targets, capacity).
    pub const HELLO: Context = Context::new(b"edge/hello/v1");
    /// The cluster's statement that an artifact (native code) was built from a module for an engine profile.
    pub const ARTIFACT: Context = Context::new(b"edge/artifact/v1");
    /// A node's request for a chunk of a module or artifact.
    pub const MODULE_REQUEST: Context = Context::new(b"edge/module-request/v1");
    /// The controller's acceptance of a join (node name, node key, token id), signed by the cluster key.
    pub const JOIN: Context = Context::new(b"edge/join/v1");

    /// The context a report on `channel` is tagged under (the agent tags, the controller checks, with this
    /// one mapping); `None` for channels that carry no tag: `status` (the Last Will is fixed at connect) and
    /// the controller's downlink channels.
    pub const fn of_report(channel: edge_proto::Channel) -> Option<Context> {
        use edge_proto::Channel;
        match channel {
            Channel::Hello => Some(Context::HELLO),
            Channel::Heartbeat => Some(Context::HEARTBEAT),
            Channel::Events => Some(Context::EVENTS),
            Channel::Logs => Some(Context::LOGS),
            Channel::ModuleRequest => Some(Context::MODULE_REQUEST),
            Channel::Status | Channel::Spec | Channel::ModuleChunk | Channel::Ack => None,
        }
    }

    /// A label of 1 to 255 bytes.
    ///
    /// # Panics
    /// On an empty or longer label; in a `const` that is a compile error, which is the intended use.
    pub const fn new(label: &'static [u8]) -> Context {
        assert!(!label.is_empty() && label.len() <= 255, "a context label has 1 to 255 bytes");
        Context(label)
    }

    /// The label's bytes.
    pub const fn label(&self) -> &'static [u8] {
        self.0
    }

    /// The label's length as the one byte that frames it; `new` guarantees it fits.
    pub(crate) const fn len_byte(&self) -> u8 {
        self.0.len() as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_contexts_are_distinct() {
        let all = [
            Context::SPEC,
            Context::HEARTBEAT,
            Context::EVENTS,
            Context::LOGS,
            Context::HELLO,
            Context::ARTIFACT,
            Context::MODULE_REQUEST,
            Context::JOIN,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(Context::SPEC.label(), b"edge/spec/v1");
        assert_eq!(Context::SPEC.len_byte(), 12);
    }

    #[test]
    fn longest_label_fits_its_length_byte() {
        const LONG: Context = Context::new(&[b'x'; 255]);
        assert_eq!(LONG.len_byte(), 255);
    }

    #[test]
    #[should_panic(expected = "1 to 255 bytes")]
    fn empty_label_is_refused() {
        let _ = Context::new(b"");
    }
}
