//! Topic names and topic filters: validation and the level bound.
//!
//! Everything here is pure. The broker checks every name and filter with these functions before it lets one
//! near the tries, so the tries may assume: a filter has at most [`MAX_LEVELS`] levels, `#` only as the last
//! level, `+` and `#` only as whole levels; a topic name has no wildcard and no NUL.

/// Most levels a subscription filter (or a retained topic) may have.
///
/// Why a bound: the tries recurse once per level, so their depth (and stack use, and the work to drop them) is
/// bounded by this and not by what a peer sends. Our topics have about five levels; brokers commonly allow far
/// fewer than a packet could carry.
pub const MAX_LEVELS: usize = 64;

/// Longest topic name or filter the wire format can carry (a u16 length prefix).
pub const MAX_TOPIC_LEN: usize = u16::MAX as usize;

/// The prefix of MQTT 5 shared subscriptions, which this broker does not implement; such a filter is refused
/// rather than silently treated as a literal filter that would never match what the client expects.
pub const SHARED_PREFIX: &str = "$share/";

/// A topic name a client may publish to: non-empty, within the wire length, no wildcard, no NUL.
pub fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty() && topic.len() <= MAX_TOPIC_LEN && !topic.contains(['+', '#', '\0'])
}

/// A filter a client may subscribe with (MQTT 3.1.1 section 4.7), within [`MAX_LEVELS`] levels.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > MAX_TOPIC_LEN || filter.contains('\0') {
        return false;
    }
    let mut levels = 0usize;
    let mut after_hash = false;
    for level in filter.split('/') {
        levels += 1;
        if levels > MAX_LEVELS || after_hash {
            return false;
        }
        match level {
            "#" => after_hash = true,
            "+" => {}
            other if other.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

/// Whether the topic's first level starts with `$`: such topics are never matched by a wildcard in the first
/// level of a filter (MQTT 3.1.1 section 4.7.2), so `#` does not see `$SYS/...`.
pub fn is_dollar(topic: &str) -> bool {
    topic.starts_with('$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_topic_name("a/b"));
        assert!(valid_topic_name("/"));
        assert!(valid_topic_name("a//b"));
        assert!(!valid_topic_name(""));
        assert!(!valid_topic_name("a/+"));
        assert!(!valid_topic_name("a/#"));
        assert!(!valid_topic_name("a\0b"));
        assert!(!valid_topic_name(&"x".repeat(MAX_TOPIC_LEN + 1)));
    }

    #[test]
    fn filters() {
        for ok in ["#", "+", "a/#", "a/+/b", "+/+", "/", "$SYS/#", "a//b"] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in ["", "a/#/b", "a#", "a/b+", "++", "#/a", "a\0"] {
            assert!(!valid_filter(bad), "{bad}");
        }
        let deep = vec!["a"; MAX_LEVELS].join("/");
        assert!(valid_filter(&deep));
        assert!(!valid_filter(&format!("{deep}/a")));
    }
}
