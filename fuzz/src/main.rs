//! `edge-fuzz`: `edge-fuzz TARGET --execs N [--seconds S] [--seed X] [--keep-going]` fuzzes one target (`all`
//! for each in turn); `edge-fuzz list` names them; `edge-fuzz seeds` rewrites the committed corpus and hostile
//! inputs. A failing input is saved as `fuzz/crashes/TARGET-HASH` and the exit status is 1;
//! `edge-fuzz replay fuzz/crashes/TARGET-HASH…` runs saved inputs through the target their name gives.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use edge_fuzz::alloc::{self, Counting};
use edge_fuzz::corpus;
use edge_fuzz::runner::{fuzz, Options};
use edge_fuzz::targets::{self, Target};

#[global_allocator]
static ALLOC: Counting = Counting;

const USAGE: &str = "usage: edge-fuzz TARGET|all --execs N [--seconds S] [--seed X] [--keep-going]
       edge-fuzz replay FILE...   (files named TARGET-HASH, as crashes are saved)
       edge-fuzz list
       edge-fuzz seeds";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Ok(false): a target failed.
fn run() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else { bail!("{USAGE}") };
    match command.as_str() {
        "list" => {
            for t in targets::ALL {
                println!("{:<16} {}", t.name, t.about);
            }
            Ok(true)
        }
        "seeds" => {
            let n = edge_fuzz::seeds::write(corpus::root()).context("writing the corpus")?;
            println!("wrote {n} files under {}", corpus::root().display());
            Ok(true)
        }
        "replay" => replay(&args[1..]),
        "-h" | "--help" => {
            println!("{USAGE}");
            Ok(true)
        }
        name => {
            let options = options(&args[1..])?;
            let chosen: Vec<&Target> = if name == "all" {
                targets::ALL.iter().collect()
            } else {
                vec![targets::find(name).ok_or_else(|| anyhow!("no target {name:?} (edge-fuzz list)"))?]
            };
            if !alloc::installed() {
                bail!("the counting allocator is not installed");
            }
            let mut ok = true;
            for target in chosen {
                ok &= campaign(target, &options)?;
            }
            Ok(ok)
        }
    }
}

/// Runs each saved input through the target named by its file name's prefix; false if any still fails.
fn replay(files: &[String]) -> Result<bool> {
    if files.is_empty() {
        bail!("replay needs at least one file\n{USAGE}");
    }
    let mut ok = true;
    for file in files {
        let path = std::path::Path::new(file);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let target = name
            .rsplit_once('-')
            .and_then(|(t, _)| targets::find(t))
            .ok_or_else(|| anyhow!("{file}: its name does not start with a target (TARGET-HASH; edge-fuzz list)"))?;
        let input = std::fs::read(path).with_context(|| format!("reading {file}"))?;
        match edge_fuzz::runner::exec(target, &input) {
            Ok((accepted, peak)) => {
                let verdict = if accepted { "accepted" } else { "refused" };
                println!("{file}: {} {verdict}, peak alloc {} KiB, no failure", target.name, peak / 1024);
            }
            Err(message) => {
                ok = false;
                println!("{file}: {} FAILS: {message}", target.name);
            }
        }
    }
    Ok(ok)
}

fn options(args: &[String]) -> Result<Options> {
    let mut options = Options { execs: u64::MAX, seconds: None, seed: 0, keep_going: false };
    let mut execs_given = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--execs" => {
                options.execs = value()?.replace('_', "").parse().context("--execs")?;
                execs_given = true;
            }
            "--seconds" => options.seconds = Some(value()?.parse().context("--seconds")?),
            "--seed" => options.seed = value()?.parse().context("--seed")?,
            "--keep-going" => options.keep_going = true,
            other => bail!("unknown flag {other:?}\n{USAGE}"),
        }
    }
    if !execs_given && options.seconds.is_none() {
        bail!("give --execs N or --seconds S\n{USAGE}");
    }
    Ok(options)
}

/// Fuzzes one target; false if it failed.
fn campaign(target: &Target, options: &Options) -> Result<bool> {
    let dir = corpus::root().join("corpus").join(target.name);
    let seeds: Vec<Vec<u8>> = corpus::load(&dir)?.into_iter().map(|(_, bytes)| bytes).collect();
    eprintln!("{}: {} seeds from {}, seed {}", target.name, seeds.len(), dir.display(), options.seed);
    let started = Instant::now();
    let report = fuzz(target, &seeds, options, |r| {
        let rate = r.execs as f64 / started.elapsed().as_secs_f64().max(1e-9);
        eprintln!("  {}: {} execs, {rate:.0}/s, {} accepted", target.name, r.execs, r.accepted);
    });
    for crash in &report.crashes {
        let path = corpus::save_crash(&corpus::root().join("crashes"), target.name, &crash.input)?;
        eprintln!("CRASH in {}: {}\n  input saved to {}", target.name, crash.message, path.display());
    }
    println!(
        "{}: execs {}, seconds {:.1}, execs/s {:.0}, accepted {}, peak alloc {} KiB, crashes {}",
        target.name,
        report.execs,
        report.elapsed.as_secs_f64(),
        report.execs_per_sec(),
        report.accepted,
        report.peak_alloc / 1024,
        report.crashes.len()
    );
    Ok(report.crashes.is_empty())
}
