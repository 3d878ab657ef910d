//! Reliability figures on real processes (release build): prints the table recorded in BENCHMARKS.md.
//!
//! ```text
//! cargo build --release --bins && target/release/reliability [--outage-secs 30] [--trials 100]
//! ```
//! Needs Mosquitto (`apt-get install mosquitto`) for the external-broker outage.

use std::time::Duration;

use edge_tests::scenario;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let outage = Duration::from_secs(arg("--outage-secs", 30));
    let trials = arg("--trials", 100) as usize;

    let r = scenario::crash_during_apply(trials).await;
    println!(
        "agent SIGKILLed while applying a new spec, {} trials: store opened every time; ran the old generation {} \
         times, the new one {} times, a mix 0 times; restart to first report p50 {:.0} ms",
        r.trials,
        r.old,
        r.new,
        r.restart_to_report_p50.as_secs_f64() * 1e3
    );

    let w = scenario::controller_kill_during_writes(1_000, 500).await;
    println!(
        "controller SIGKILLed during a stream of 1,000 API writes: {} acknowledged, {} lost after restart",
        w.acknowledged, w.lost
    );

    let mut offline = Vec::new();
    for _ in 0..10 {
        offline.push(scenario::agent_restart_offline().await);
    }
    offline.sort();
    println!(
        "agent killed and restarted with the broker down, 10 trials: instance running {:.0} ms (p50), {:.0} ms \
         (max) after the agent's start",
        pct(&offline, 0.5).as_secs_f64() * 1e3,
        pct(&offline, 1.0).as_secs_f64() * 1e3
    );

    let rounds = arg("--rounds", 3) as usize;
    for what in ["controller (embedded broker)", "external Mosquitto"] {
        let mut converge = Vec::new();
        let (mut restarted, mut lost, mut buffered) = (0, 0, 0);
        for _ in 0..rounds {
            let r = if what.starts_with("controller") {
                scenario::controller_outage(2, outage).await
            } else {
                scenario::broker_outage(2, outage).await
            };
            converge.push(r.convergence);
            restarted += r.restarted;
            lost += r.events_lost;
            buffered += r.events_buffered;
        }
        converge.sort();
        println!(
            "{what} down {} s, 2 agents running tick + a crash-looping hi, {rounds} rounds: {restarted} instance \
             restarts, {lost} events lost, {buffered} events buffered by agents; converged {:.2} s (median), {:.2} s \
             (max) after the fault ended",
            outage.as_secs(),
            pct(&converge, 0.5).as_secs_f64(),
            pct(&converge, 1.0).as_secs_f64()
        );
    }
}
