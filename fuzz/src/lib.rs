//! `edge-fuzz`: fuzz targets for every decoder and parser that meets hostile input, and a mutational runner
//! that needs only a stable toolchain (no libFuzzer): `cargo run --release -p edge-fuzz -- TARGET --execs N`.
//!
//! Layout:
//! - [`targets`]: one file per family of decoders, each target a `fn(&[u8]) -> bool` that asserts its
//!   invariants (round trips, bounds) and says whether the input was accepted; the registry [`targets::ALL`].
//! - [`runner`]: the loop (seeds first, then stacked mutations of seeds and accepted mutants), catching
//!   panics and checking each call's memory against [`alloc::bound`]; [`mutate`] the mutations; [`rng`] the
//!   deterministic PRNG behind them (`--seed` replays a campaign).
//! - [`alloc`]: the counting global allocator the binary and the tests install to measure that memory.
//! - [`corpus`]: seeds (`corpus/TARGET/`), hostile inputs (`hostile/`), saved crashes (`crashes/`);
//!   [`seeds`] generates the committed ones from real messages; [`gen`] makes random messages of every kind
//!   (seeds, and the round-trip property tests in `tests/roundtrip.rs`).
//! - [`agent_config_file`]: the agent's config file (`agent/src/config_file.rs`), which lives in the agent's
//!   binary, not its library, compiled here from its source so its parser can be fuzzed without moving it.
//!
//! Tests: `tests/corpus.rs` replays every seed and hostile input through every target; `tests/smoke.rs` runs
//! every target for a short campaign; both under `cargo test --workspace`.

pub mod alloc;
pub mod corpus;
pub mod gen;
pub mod mutate;
pub mod rng;
pub mod runner;
pub mod seeds;
pub mod targets;

// `config_file.rs` uses `edge_agent::…` paths and `anyhow` (it is binary code), both of which resolve here.
#[path = "../../agent/src/config_file.rs"]
pub mod agent_config_file;
