//! A short campaign of every target (20,000 executions each, or `EDGE_FUZZ_SMOKE_EXECS`), so `cargo test`
//! exercises the mutational loop on every decoder; one test per target, so they run in parallel. The long
//! campaigns are `cargo run --release -p edge-fuzz -- TARGET --execs 10000000` (BENCHMARKS.md, "Fuzzing").

use edge_fuzz::alloc::Counting;
use edge_fuzz::corpus::{load, root};
use edge_fuzz::runner::{fuzz, Options};
use edge_fuzz::targets::find;

#[global_allocator]
static ALLOC: Counting = Counting;

fn smoke(name: &str) {
    let target = find(name).unwrap();
    let seeds: Vec<Vec<u8>> =
        load(&root().join("corpus").join(name)).unwrap().into_iter().map(|(_, bytes)| bytes).collect();
    let execs = std::env::var("EDGE_FUZZ_SMOKE_EXECS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let options = Options { execs, seconds: Some(120.0), seed: 1, keep_going: false };
    let report = fuzz(target, &seeds, &options, |_| {});
    let found: Vec<String> = report
        .crashes
        .iter()
        .map(|c| format!("{}\n  input: {:?}", c.message, String::from_utf8_lossy(&c.input)))
        .collect();
    assert!(found.is_empty(), "{name}: {}", found.join("\n"));
    assert!(report.accepted > 0, "{name}: no input accepted in {} executions", report.execs);
}

macro_rules! smoke_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(#[test] fn $test() { smoke($name); })*

        #[test]
        fn every_target_has_a_smoke_test() {
            let covered = [$($name),*];
            for t in edge_fuzz::targets::ALL {
                assert!(covered.contains(&t.name), "no smoke test for {}", t.name);
            }
        }
    };
}

smoke_tests! {
    envelope => "envelope",
    message => "message",
    v3 => "v3",
    join => "join",
    topic => "topic",
    quantity => "quantity",
    token => "token",
    signed => "signed",
    replay => "replay",
    verify => "verify",
    api => "api",
    manifest => "manifest",
    agent_manifest => "agent-manifest",
    agent_config => "agent-config",
}
