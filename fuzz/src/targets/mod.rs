//! Every fuzz target, one file per family, and the registry the runner and the tests go through.
//!
//! A target is `fn(&[u8]) -> bool`: it feeds the bytes to one decoder or parser, asserts the invariants that are
//! cheap to check (a decoded value encodes and decodes back to itself; a parsed value prints and parses back),
//! and returns whether the input was accepted. It must not panic for any input: a panic is the finding. The
//! runner keeps accepted mutants as further bases (the only feedback a coverage-free loop has) and checks each
//! call's memory against [`crate::alloc::bound`].
//!
//! | family | file | decoders |
//! |---|---|---|
//! | wire | `envelope.rs`, `message.rs`, `v3.rs`, `join.rs`, `topic.rs` | `edge-proto`: envelope, bodies, protocol 3, joining, topics |
//! | text | `quantity.rs` | CPU, memory, durations, volumes, broker URLs, names; `edgectl`'s lifetimes |
//! | trust | `trust.rs` | join tokens, signed envelopes, the replay window; `agent.rs`: the agent's verifier |
//! | users | `api.rs`, `manifest.rs`, `agent.rs` | API bodies and admission; YAML manifests; agent TOML |

pub mod agent;
pub mod api;
pub mod envelope;
pub mod join;
pub mod manifest;
pub mod message;
pub mod quantity;
pub mod topic;
pub mod trust;
pub mod v3;

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its name on the command line and its corpus directory (`fuzz/corpus/NAME/`).
    pub name: &'static str,
    pub about: &'static str,
    /// Feeds one input; true when the input was accepted. Panics only on a bug.
    pub run: fn(&[u8]) -> bool,
    /// Tokens the mutator inserts (field names, keywords, separators of the format).
    pub dict: &'static [&'static [u8]],
    /// Longest input the runner makes (seeds and hostile files may be longer).
    pub max_len: usize,
}

/// Every target, in the order `edge-fuzz list` prints them.
pub const ALL: &[Target] = &[
    envelope::TARGET,
    message::TARGET,
    v3::TARGET,
    join::TARGET,
    topic::TARGET,
    quantity::TARGET,
    trust::TOKEN,
    trust::SIGNED,
    trust::REPLAY,
    agent::VERIFY,
    api::TARGET,
    manifest::TARGET,
    agent::MANIFEST,
    agent::CONFIG,
];

/// The target called `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    ALL.iter().find(|t| t.name == name)
}

/// The input as text: parsers of text take `&str`, and invalid UTF-8 is replaced rather than skipped so that
/// every input reaches them.
pub(crate) fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// The whole input as one postcard `T`, as the envelope decoder reads its parts: `postcard::from_bytes` alone
/// would ignore trailing bytes.
pub(crate) fn postcard_exact<T: serde::de::DeserializeOwned>(data: &[u8]) -> Option<T> {
    match postcard::take_from_bytes::<T>(data) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for (i, t) in ALL.iter().enumerate() {
            assert!(ALL[..i].iter().all(|o| o.name != t.name), "{} twice", t.name);
            assert_eq!(find(t.name).map(|f| f.name), Some(t.name));
            assert!(t.max_len > 0);
        }
        assert!(find("nope").is_none());
    }
}
