//! Replays every committed seed (`fuzz/corpus/*/*`) and every hostile input (`fuzz/hostile/*`) through every
//! target, with the counting allocator installed so each call's memory is checked against its bound, and
//! checks that the committed files are what `edge_fuzz::seeds` generates today.

use edge_fuzz::alloc::{self, Counting};
use edge_fuzz::corpus::{load, root};
use edge_fuzz::runner::exec;
use edge_fuzz::targets::{self, ALL};

#[global_allocator]
static ALLOC: Counting = Counting;

fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    for t in ALL {
        for (name, bytes) in load(&root().join("corpus").join(t.name)).unwrap() {
            all.push((format!("corpus/{}/{name}", t.name), bytes));
        }
    }
    for (name, bytes) in load(&root().join("hostile")).unwrap() {
        all.push((format!("hostile/{name}"), bytes));
    }
    all
}

#[test]
fn the_committed_files_are_the_generated_ones() {
    for f in edge_fuzz::seeds::all() {
        let path = root().join(&f.dir).join(&f.name);
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(on_disk == f.bytes, "{} is stale or missing: run `cargo run -p edge-fuzz -- seeds`", path.display());
    }
}

#[test]
fn every_input_passes_every_target() {
    assert!(alloc::installed());
    let inputs = inputs();
    assert!(inputs.len() > 100, "only {} inputs", inputs.len());
    let mut failures = Vec::new();
    for t in ALL {
        for (name, bytes) in &inputs {
            if let Err(e) = exec(t, bytes) {
                failures.push(format!("{} on {name}: {e}", t.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_target_accepts_some_of_its_seeds() {
    for t in ALL {
        let seeds = load(&root().join("corpus").join(t.name)).unwrap();
        let accepted = seeds.iter().filter(|(_, s)| matches!(exec(t, s), Ok((true, _))));
        assert!(accepted.count() > 0, "no seed of {} is accepted", t.name);
    }
}

#[test]
fn hostile_inputs_are_refused_where_they_must_be() {
    let hostile = |name: &str| std::fs::read(root().join("hostile").join(name)).unwrap();
    let verify = targets::find("verify").unwrap();
    assert_eq!(exec(verify, &hostile("spec-signed-for-another-node.bin")).map(|r| r.0), Ok(false));
    assert_eq!(exec(verify, &hostile("spec-generation-u64-max.bin")).map(|r| r.0), Ok(true));
    let envelope = targets::find("envelope").unwrap();
    for name in ["spec-instances-length-u64-max.bin", "chunk-data-length-u64-max.bin", "version-overflows-u16.bin"] {
        assert_eq!(exec(envelope, &hostile(name)).map(|r| r.0), Ok(false), "{name}");
    }
    let manifest = targets::find("manifest").unwrap();
    for name in ["yaml-deep-sequences.yaml", "yaml-deep-mappings.yaml", "yaml-billion-laughs.yaml"] {
        assert_eq!(exec(manifest, &hostile(name)).map(|r| r.0), Ok(false), "{name}");
    }
}
