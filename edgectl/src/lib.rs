//! `edgectl`'s library half: the pure parsers of what users write, which the binary (`main.rs`) uses and the fuzz
//! targets (`fuzz/`, crate `edge-fuzz`) feed hostile input to. Only modules that depend on nothing else of the
//! binary live here:
//!
//! - [`manifest`]: YAML manifests (`apply -f`, `get -o yaml`), positioned trees, decoding and rendering back.
//! - [`template`]: a workload's spec in one normal form, which a manifest decodes into.
//! - [`age`]: time spans as tables show them, and token lifetimes (`--ttl`) as flags read them.

pub mod age;
pub mod manifest;
pub mod template;
