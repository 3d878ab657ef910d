//! The documented bound of every input the HTTP API takes, and the checks that enforce them. Pure.
//!
//! Every field of a `DeployRequest` (and of the other request bodies, paths and queries) has a bound here, so
//! what one request can make the controller store, publish or answer is known in advance: a deploy is at most
//! a few tens of KiB, one instance of it fits well inside one MQTT message (`crate::spec_size`), and no reply
//! grows with what a user sent. The JSON body limit ([`MAX_JSON_BYTES`]) comes first: nothing larger is even
//! parsed.
//!
//! Every refusal is one line naming the field, the value's size and the limit (`env "A" value is 614400 bytes,
//! above the limit of 16384`); user strings are echoed through [`truncated`], never whole.

use std::collections::BTreeMap;

use edge_proto::quantity::format_memory;
use edge_proto::VolumeSpec;

use crate::cluster::ClusterError;

/// Replicas of one workload. A namespace quota can lower it; nothing can raise it.
pub const MAX_REPLICAS: u32 = 1_000;
/// CPU request and CPU limit, in millicores: a thousand cores, beyond any node this runs on.
pub const MAX_CPU_MILLIS: u32 = 1_000_000;
/// Smallest memory request and limit: one WebAssembly page.
pub const MIN_MEMORY: u64 = 64 * 1024;
/// Largest memory request and limit (1 TiB), beyond any board this runs on. A request no node has is accepted
/// and waits Pending (`0/N nodes available: N insufficient memory`), as in Kubernetes: the node may join later.
pub const MAX_MEMORY: u64 = 1 << 40;
/// Longest run-to-completion deadline: 30 days.
pub const MAX_TIMEOUT_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// Environment variables of one workload.
pub const MAX_ENV: usize = 256;
/// Bytes of one environment variable's name.
pub const MAX_ENV_NAME: usize = 256;
/// Bytes of one environment variable's value.
pub const MAX_ENV_VALUE: usize = 16 * 1024;
/// Bytes of every name and value together.
pub const MAX_ENV_TOTAL: usize = 32 * 1024;
/// Arguments of one workload.
pub const MAX_ARGS: usize = 256;
/// Bytes of one argument.
pub const MAX_ARG: usize = 4 * 1024;
/// Bytes of every argument together.
pub const MAX_ARGS_TOTAL: usize = 16 * 1024;
/// Volumes of one workload.
pub const MAX_VOLUMES: usize = 16;
/// Size quota of one volume (1 TiB).
pub const MAX_VOLUME_BYTES: u64 = 1 << 40;
/// Entries of a label map: a workload's labels, its node selector, the labels set on a node by users
/// (`edgectl label node`, after the change) or given by a join token, and the keys one label request removes.
pub const MAX_LABELS: usize = 64;
/// Bytes of a label key (at least 1) and of a label value (possibly 0).
pub const MAX_LABEL_KEY: usize = 63;
pub const MAX_LABEL_VALUE: usize = 63;
/// Characters of a workload, namespace, node or volume name (a DNS label).
pub const MAX_NAME: usize = edge_proto::name::MAX_NAME;
/// Largest body of every JSON endpoint (a deploy at every bound above is under 300 KiB of JSON, even with
/// every byte escaped). `POST /v1/modules` takes up to `routes::MAX_MODULE_BYTES` of WebAssembly instead.
pub const MAX_JSON_BYTES: usize = 1 << 20;
/// Workloads in one page of `GET /v1/workloads` (the default and the most `?limit=` may ask for).
pub const WORKLOADS_PAGE: usize = 500;
/// About how many bytes of JSON one page of `GET /v1/workloads` holds at most: a page ends early once its
/// workloads' estimated size reaches this (it always holds at least one, so paging always advances). One
/// workload at every bound, with its ten kept revisions and 1,000 instances, is about 1 MiB.
pub const PAGE_BYTES: usize = 4 << 20;
/// Characters of a continue token: a workload key, `namespace/name`.
pub const MAX_CONTINUE: usize = 2 * MAX_NAME + 1;
/// Characters of user input echoed in an error.
pub const MAX_ECHO: usize = 63;
/// Characters of any error message the API answers with (a last guard; messages are written to be shorter).
pub const MAX_ERROR: usize = 1024;

fn invalid(text: String) -> ClusterError {
    ClusterError::Invalid(text)
}

/// `s` as echoed in an error: at most [`MAX_ECHO`] characters, then `…`.
pub fn truncated(s: &str) -> String {
    cut(s, MAX_ECHO)
}

/// `s` cut to at most `max` characters, with `…` when anything was cut.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `what` (`workload name`, `namespace`, `node`, …) is a valid name, or the refusal names it, truncated.
pub fn check_name(what: &str, name: &str) -> Result<(), ClusterError> {
    edge_proto::validate_name(name).map_err(|e| invalid(format!("{what} {:?}: {e}", truncated(name))))
}

/// `value` is at most `max`; `unit` follows both numbers (`""`, `" bytes"`, `"m"`, `" ms"`).
pub fn at_most(what: &str, value: u64, max: u64, unit: &str) -> Result<(), ClusterError> {
    if value > max {
        return Err(invalid(format!("{what} {value}{unit} is above the limit of {max}{unit}")));
    }
    Ok(())
}

/// A memory amount (request or limit) within [`MIN_MEMORY`, `MAX_MEMORY`].
pub fn memory(what: &str, bytes: u64) -> Result<(), ClusterError> {
    if bytes < MIN_MEMORY {
        return Err(invalid(format!(
            "{what} {bytes} bytes is below the minimum of {MIN_MEMORY} (one WebAssembly page)"
        )));
    }
    if bytes > MAX_MEMORY {
        return Err(invalid(format!(
            "{what} {bytes} bytes is above the limit of {MAX_MEMORY} ({})",
            format_memory(MAX_MEMORY)
        )));
    }
    Ok(())
}

fn entries(what: &str, n: usize, max: usize) -> Result<(), ClusterError> {
    if n > max {
        return Err(invalid(format!("{what} has {n} entries, above the limit of {max}")));
    }
    Ok(())
}

/// Names valid for a WASI environment (non-empty, no `=` or NUL) and every size bound of `env`.
pub fn env(env: &[(String, String)]) -> Result<(), ClusterError> {
    entries("env", env.len(), MAX_ENV)?;
    let mut total = 0usize;
    for (k, v) in env {
        if k.len() > MAX_ENV_NAME {
            return Err(invalid(format!(
                "env name {:?} is {} bytes, above the limit of {MAX_ENV_NAME}",
                truncated(k),
                k.len()
            )));
        }
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(invalid(format!("environment variable name {:?} is invalid", truncated(k))));
        }
        if v.len() > MAX_ENV_VALUE {
            return Err(invalid(format!(
                "env {:?} value is {} bytes, above the limit of {MAX_ENV_VALUE}",
                truncated(k),
                v.len()
            )));
        }
        total += k.len() + v.len();
    }
    if total > MAX_ENV_TOTAL {
        return Err(invalid(format!("env is {total} bytes in all, above the limit of {MAX_ENV_TOTAL}")));
    }
    Ok(())
}

/// Every size bound of `args`.
pub fn args(args: &[String]) -> Result<(), ClusterError> {
    entries("args", args.len(), MAX_ARGS)?;
    let mut total = 0usize;
    for (i, a) in args.iter().enumerate() {
        if a.len() > MAX_ARG {
            return Err(invalid(format!("args[{i}] is {} bytes, above the limit of {MAX_ARG}", a.len())));
        }
        total += a.len();
    }
    if total > MAX_ARGS_TOTAL {
        return Err(invalid(format!("args are {total} bytes in all, above the limit of {MAX_ARGS_TOTAL}")));
    }
    Ok(())
}

/// Volume count, names (valid, distinct) and sizes (more than 0, at most [`MAX_VOLUME_BYTES`]).
pub fn volumes(volumes: &[VolumeSpec]) -> Result<(), ClusterError> {
    entries("volumes", volumes.len(), MAX_VOLUMES)?;
    let mut names = std::collections::BTreeSet::new();
    for v in volumes {
        check_name("volume name", &v.name)?;
        if v.size_bytes == 0 {
            return Err(invalid(format!("volume {}: size must be more than 0", v.name)));
        }
        at_most(&format!("volume {} size", v.name), v.size_bytes, MAX_VOLUME_BYTES, " bytes")?;
        if !names.insert(v.name.as_str()) {
            return Err(invalid(format!("volume {} is declared twice", v.name)));
        }
    }
    Ok(())
}

/// A label map (`what`: `label`, `selector`): at most [`MAX_LABELS`] entries; keys of 1–63 bytes and values of
/// 0–63, no `=` in either (the rule of node labels).
pub fn labels(what: &str, labels: &BTreeMap<String, String>) -> Result<(), ClusterError> {
    entries(&format!("{what}s"), labels.len(), MAX_LABELS)?;
    for (k, v) in labels {
        if k.is_empty() || k.len() > MAX_LABEL_KEY || v.len() > MAX_LABEL_VALUE || k.contains('=') || v.contains('=') {
            return Err(invalid(format!(
                "{what} {}={} is invalid (key 1-{MAX_LABEL_KEY} bytes, value 0-{MAX_LABEL_VALUE}, no '='; key {} \
                 bytes, value {})",
                truncated(k),
                truncated(v),
                k.len(),
                v.len()
            )));
        }
    }
    Ok(())
}

/// The keys a label request removes: at most [`MAX_LABELS`] (a node never holds more).
pub fn label_removals(keys: &[String]) -> Result<(), ClusterError> {
    entries("remove", keys.len(), MAX_LABELS)
}

/// `?limit=` of a paged list: `None` or 0 is the default, anything above [`WORKLOADS_PAGE`] is that.
pub fn page_limit(limit: Option<usize>) -> usize {
    match limit {
        None | Some(0) => WORKLOADS_PAGE,
        Some(n) => n.min(WORKLOADS_PAGE),
    }
}

/// `?continue=`: a token a previous page gave, `namespace/name`.
pub fn continue_token(token: &str) -> Result<(), ClusterError> {
    let valid = token.len() <= MAX_CONTINUE
        && token
            .split_once('/')
            .is_some_and(|(ns, name)| edge_proto::validate_name(ns).is_ok() && edge_proto::validate_name(name).is_ok());
    if !valid {
        return Err(invalid(format!(
            "continue token {:?} ({} bytes) is not one a previous page returned",
            truncated(token),
            token.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<(), ClusterError>) -> String {
        let e = r.unwrap_err().to_string();
        assert!(!e.contains('\n'), "one line: {e:?}");
        assert!(e.chars().count() < 300, "{e:?} echoes too much");
        e
    }

    #[test]
    fn truncation_keeps_short_strings_and_cuts_long_ones_on_characters() {
        assert_eq!(truncated("abc"), "abc");
        assert_eq!(truncated(&"a".repeat(63)), "a".repeat(63));
        assert_eq!(truncated(&"a".repeat(64)), format!("{}…", "a".repeat(63)));
        // Multi-byte characters are never split.
        assert_eq!(truncated(&"é".repeat(100)), format!("{}…", "é".repeat(63)));
        assert_eq!(cut("abcdef", 3), "abc…");
    }

    #[test]
    fn names_are_refused_with_their_length_and_a_truncated_echo() {
        assert!(check_name("node", "pi-1").is_ok());
        let e = err(check_name("workload name", &"a".repeat(100_000)));
        assert!(e.starts_with(&format!("workload name \"{}…\"", "a".repeat(63))), "{e}");
        assert!(e.ends_with("name is 100000 characters long (at most 63)"), "{e}");
    }

    #[test]
    fn numbers_are_refused_above_their_limit_naming_both() {
        assert!(at_most("replicas", 1_000, MAX_REPLICAS as u64, "").is_ok());
        assert_eq!(err(at_most("replicas", 1_001, 1_000, "")), "replicas 1001 is above the limit of 1000");
        assert_eq!(
            err(at_most("timeout_ms", u64::MAX, MAX_TIMEOUT_MS, " ms")),
            format!("timeout_ms {} ms is above the limit of 2592000000 ms", u64::MAX)
        );
        assert!(memory("memory", MIN_MEMORY).is_ok() && memory("memory", MAX_MEMORY).is_ok());
        assert!(err(memory("memory", MIN_MEMORY - 1)).contains("below the minimum of 65536"));
        assert_eq!(
            err(memory("memory limit", u64::MAX)),
            format!("memory limit {} bytes is above the limit of 1099511627776 (1Ti)", u64::MAX)
        );
    }

    #[test]
    fn env_is_bounded_in_entries_name_value_and_total() {
        let var = |k: &str, v: usize| (k.to_string(), "v".repeat(v));
        assert!(env(&[var("A", MAX_ENV_VALUE), var("B", MAX_ENV_VALUE - 2)]).is_ok());
        let many: Vec<_> = (0..=MAX_ENV).map(|i| var(&format!("V{i}"), 1)).collect();
        assert_eq!(err(env(&many)), "env has 257 entries, above the limit of 256");
        assert_eq!(err(env(&[var("BIG", 600_000)])), "env \"BIG\" value is 600000 bytes, above the limit of 16384");
        let e = err(env(&[(("N".repeat(300)), String::new())]));
        assert!(e.starts_with("env name \"NNN") && e.ends_with("is 300 bytes, above the limit of 256"), "{e}");
        let e = err(env(&[var("A", MAX_ENV_VALUE), var("B", MAX_ENV_VALUE)]));
        assert_eq!(e, "env is 32770 bytes in all, above the limit of 32768");
        assert!(err(env(&[var("A=B", 1)])).contains("environment variable name \"A=B\" is invalid"));
    }

    #[test]
    fn args_are_bounded_in_entries_each_and_total() {
        let arg = |n: usize| "x".repeat(n);
        assert!(args(&[arg(MAX_ARG), arg(MAX_ARG), arg(MAX_ARG), arg(MAX_ARG)]).is_ok());
        assert_eq!(err(args(&vec![arg(1); 257])), "args has 257 entries, above the limit of 256");
        assert_eq!(err(args(&[arg(1), arg(MAX_ARG + 1)])), "args[1] is 4097 bytes, above the limit of 4096");
        assert_eq!(err(args(&vec![arg(MAX_ARG); 5])), "args are 20480 bytes in all, above the limit of 16384");
    }

    #[test]
    fn volumes_are_bounded_in_count_and_size() {
        let vol = |name: &str, size: u64| VolumeSpec { name: name.into(), size_bytes: size };
        assert!(volumes(&[vol("data", MAX_VOLUME_BYTES)]).is_ok());
        let many: Vec<_> = (0..=MAX_VOLUMES).map(|i| vol(&format!("v{i}"), 1)).collect();
        assert_eq!(err(volumes(&many)), "volumes has 17 entries, above the limit of 16");
        assert_eq!(
            err(volumes(&[vol("data", u64::MAX)])),
            format!("volume data size {} bytes is above the limit of 1099511627776 bytes", u64::MAX)
        );
        assert!(err(volumes(&[vol("data", 0)])).contains("size must be more than 0"));
        assert!(err(volumes(&[vol("a", 1), vol("a", 1)])).contains("declared twice"));
        assert!(err(volumes(&[vol(&"v".repeat(64), 1)])).contains("name is 64 characters long"));
    }

    #[test]
    fn label_maps_are_bounded_in_entries_and_each_pair() {
        let map = |n: usize| -> BTreeMap<String, String> { (0..n).map(|i| (format!("k{i}"), "v".into())).collect() };
        assert!(labels("label", &map(MAX_LABELS)).is_ok());
        assert_eq!(err(labels("selector", &map(65))), "selectors has 65 entries, above the limit of 64");
        let long = BTreeMap::from([("k".repeat(10_000), "v".to_string())]);
        let e = err(labels("label", &long));
        assert!(e.contains(&format!("{}…=v is invalid", "k".repeat(63))) && e.contains("key 10000 bytes"), "{e}");
        assert!(err(label_removals(&vec!["k".into(); 65])).contains("remove has 65 entries"));
    }

    #[test]
    fn pages_and_continue_tokens_are_bounded() {
        assert_eq!(page_limit(None), WORKLOADS_PAGE);
        assert_eq!(page_limit(Some(0)), WORKLOADS_PAGE);
        assert_eq!(page_limit(Some(7)), 7);
        assert_eq!(page_limit(Some(usize::MAX)), WORKLOADS_PAGE);
        assert!(continue_token("default/tick").is_ok());
        for bad in ["", "tick", "a/b/c", "A/b", &format!("a/{}", "b".repeat(64))] {
            assert!(err(continue_token(bad)).contains("is not one a previous page returned"), "{bad}");
        }
    }
}
