//! What authenticating a message costs: ed25519 sign/verify against HMAC-SHA256 tag/verify, for a 200-byte
//! heartbeat and a 2 KiB spec, plus the once-per-node key agreement. Run it optimised:
//!
//! ```text
//! cargo run --release -p edge-trust --example cost
//! ```
//! Figures are nanoseconds per operation on this machine, averaged over a fixed number of iterations.

use edge_trust::{sign, sign_report, verify, verify_report, Context, KeyPair, ReportKey, DEFAULT_MAX_BODY};
use std::hint::black_box;
use std::time::Instant;

const ITERATIONS: u32 = 10_000;

fn ns_per_op(iterations: u32, mut op: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        op(); // warm-up: caches, branch predictors, CPU frequency
    }
    let start = Instant::now();
    for _ in 0..iterations {
        op();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

/// Prints one row: `f` measured on a 200-byte and on a 2 KiB payload.
fn row(name: &str, f: impl Fn(&[u8]) -> f64) {
    let (small, large) = (f(&[0x5a; 200]), f(&[0x5a; 2048]));
    println!("{name:<28} {small:>10.0} ns {large:>10.0} ns");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.to_owned()))
        .unwrap_or_else(|| "model name: unknown".to_owned());
    println!("{cpu}; {ITERATIONS} iterations per figure");

    let cluster = KeyPair::generate()?;
    let node = KeyPair::generate()?;
    let report_key = ReportKey::for_node(&node, &cluster.public(), "pi-zero-01")?;
    let node_public = node.public();

    println!("{:<28} {:>13} {:>13}", "operation", "200 B", "2 KiB");

    row("ed25519 sign (report)", |p| {
        ns_per_op(ITERATIONS, || {
            black_box(sign_report(&node, Context::HEARTBEAT, "n", 1, p));
        })
    });
    row("ed25519 verify (report)", |p| {
        let sig = sign_report(&node, Context::HEARTBEAT, "n", 1, p);
        ns_per_op(ITERATIONS, || {
            black_box(verify_report(&node_public, Context::HEARTBEAT, "n", 1, p, &sig)).unwrap();
        })
    });
    row("ed25519 sign (document)", |p| {
        ns_per_op(ITERATIONS, || {
            black_box(sign(&cluster, Context::SPEC, p.to_vec()));
        })
    });
    let cluster_public = cluster.public();
    row("ed25519 verify (document)", |p| {
        let signed = sign(&cluster, Context::SPEC, p.to_vec());
        ns_per_op(ITERATIONS, || {
            black_box(verify(&cluster_public, Context::SPEC, DEFAULT_MAX_BODY, &signed)).unwrap();
        })
    });
    row("HMAC-SHA256/128 tag", |p| {
        ns_per_op(ITERATIONS, || {
            black_box(report_key.tag(Context::HEARTBEAT, "n", 1, p));
        })
    });
    row("HMAC-SHA256/128 verify", |p| {
        let tag = report_key.tag(Context::HEARTBEAT, "n", 1, p);
        ns_per_op(ITERATIONS, || {
            black_box(report_key.verify(Context::HEARTBEAT, "n", 1, p, &tag)).unwrap();
        })
    });

    let agree = ns_per_op(1_000, || {
        black_box(ReportKey::for_controller(&cluster, &node_public, "n").unwrap());
    });
    println!("{:<28} {agree:>10.0} ns (once per node per process start)", "report key agreement");
    Ok(())
}
