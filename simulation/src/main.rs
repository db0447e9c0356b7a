//! `simulation`: run one seed (`replay`), or many in parallel processes (`sweep`).
#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use clap::{Parser, Subcommand};
use simulation::{Kind, Options, Scenario};

#[derive(Debug, Parser)]
#[command(about = "Deterministic cluster failure testing of the broker on turmoil")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs one seed and prints its outcome (and with --trace, one line per event).
    Replay {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        trace: bool,
        /// Inject a broker bug: NAME or NAME:EVERY (fires every EVERY-th chance; needs --features sim-bugs).
        #[arg(long)]
        bug: Option<String>,
    },
    /// Runs a range of seeds in parallel processes; prints each failing seed with the command that replays it.
    Sweep {
        #[arg(long)]
        scenario: String,
        /// A range `A..B` (B excluded).
        #[arg(long)]
        seeds: String,
        #[arg(long, default_value_t = 2)]
        jobs: u64,
        #[arg(long)]
        bug: Option<String>,
    },
    /// One worker of a sweep: seeds A, A+stride, ... below B; one line per seed.
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seeds: String,
        #[arg(long)]
        stride: u64,
        #[arg(long)]
        bug: Option<String>,
    },
}

fn parse_kind(name: &str) -> Result<Kind, String> {
    Kind::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown scenario {name:?}; one of {}", names.join(", "))
    })
}

fn parse_bug(bug: Option<&str>) -> Result<Option<(broker::buggify::Bug, u64)>, String> {
    let Some(text) = bug else { return Ok(None) };
    let (name, every) = match text.split_once(':') {
        Some((n, e)) => (n, e.parse::<u64>().map_err(|_| format!("bad bug frequency in {text:?}"))?),
        None => (text, 3),
    };
    let bug = broker::buggify::Bug::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = broker::buggify::Bug::ALL.iter().map(|b| b.name()).collect();
        format!("unknown bug {name:?}; one of {}", names.join(", "))
    })?;
    Ok(Some((bug, every)))
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text.split_once("..").ok_or_else(|| format!("seeds must be A..B, got {text:?}"))?;
    let a = a.parse().map_err(|_| format!("bad seed {a:?}"))?;
    let b = b.parse().map_err(|_| format!("bad seed {b:?}"))?;
    Ok((a, b))
}

fn replay_command(kind: Kind, seed: u64, bug: Option<&str>) -> String {
    let bug = bug.map(|b| format!(" --bug {b}")).unwrap_or_default();
    let features = if bug.is_empty() { "" } else { " --features sim-bugs" };
    format!("cargo run -p simulation{features} -- replay --scenario {kind} --seed {seed} --trace{bug}")
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<ExitCode, String> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    match Cli::parse().command {
        Cmd::Replay { scenario, seed, trace, bug } => {
            let kind = parse_kind(&scenario)?;
            let options = Options { trace, bug: parse_bug(bug.as_deref())? };
            let plan = Scenario::generate(kind, seed);
            println!("scenario {kind} seed {seed}: {} nodes, {} clients", plan.nodes, plan.clients.len());
            for (at, fault) in &plan.faults {
                println!("  at {at} ms: {fault}");
            }
            let wall = Instant::now();
            let outcome = simulation::run(&plan, &options);
            println!(
                "{} events, hash {:016x}, {:.1} s simulated in {:.1} s",
                outcome.records.len(),
                outcome.hash,
                outcome.sim_ms as f64 / 1000.0,
                wall.elapsed().as_secs_f64()
            );
            for v in &outcome.violations {
                println!("{} {v}", if v.is_known_gap() { "KNOWN GAP" } else { "VIOLATION" });
            }
            Ok(if outcome.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Cmd::Worker { scenario, seeds, stride, bug } => {
            let kind = parse_kind(&scenario)?;
            let bug = parse_bug(bug.as_deref())?;
            let (a, b) = parse_range(&seeds)?;
            let mut seed = a;
            while seed < b {
                let outcome = simulation::run(&Scenario::generate(kind, seed), &Options { trace: false, bug });
                let known = outcome.violations.iter().filter(|v| v.is_known_gap()).count();
                match outcome.violations.iter().find(|v| !v.is_known_gap()) {
                    None => println!("ok {seed} {} {known}", outcome.sim_ms),
                    Some(v) => println!(
                        "fail {seed} {} {} violation(s), first: {v}",
                        outcome.sim_ms,
                        outcome.violations.len() - known
                    ),
                }
                seed += stride.max(1);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sweep { scenario, seeds, jobs, bug } => {
            let kind = parse_kind(&scenario)?;
            parse_bug(bug.as_deref())?;
            let (a, b) = parse_range(&seeds)?;
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let wall = Instant::now();
            let jobs = jobs.clamp(1, b.saturating_sub(a).max(1));
            let mut children = Vec::new();
            for k in 0..jobs {
                let mut cmd = Command::new(&exe);
                cmd.args(["worker", "--scenario", kind.name(), "--seeds", &format!("{}..{b}", a + k)])
                    .args(["--stride", &jobs.to_string()])
                    .stdout(Stdio::piped());
                if let Some(bug) = &bug {
                    cmd.args(["--bug", bug]);
                }
                children.push(cmd.spawn().map_err(|e| format!("cannot start a worker: {e}"))?);
            }
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            let mut readers = Vec::new();
            for child in &mut children {
                let Some(out) = child.stdout.take() else { continue };
                let tx = tx.clone();
                readers.push(std::thread::spawn(move || {
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        let _ = tx.send(line);
                    }
                }));
            }
            drop(tx);
            let (mut ran, mut failed, mut sim_ms, mut gaps) = (0u64, 0u64, 0u64, 0u64);
            for line in rx {
                let mut parts = line.splitn(4, ' ');
                let (status, seed, ms, rest) = (parts.next(), parts.next(), parts.next(), parts.next());
                ran += 1;
                sim_ms += ms.and_then(|m| m.parse::<u64>().ok()).unwrap_or(0);
                if status == Some("ok") && rest.and_then(|r| r.parse::<u64>().ok()).unwrap_or(0) > 0 {
                    gaps += 1;
                }
                if status == Some("fail") {
                    failed += 1;
                    let seed: u64 = seed.and_then(|s| s.parse().ok()).unwrap_or(0);
                    println!("seed {seed} FAILED: {}", rest.unwrap_or(""));
                    println!("    replay: {}", replay_command(kind, seed, bug.as_deref()));
                }
            }
            for child in &mut children {
                let _ = child.wait();
            }
            for r in readers {
                let _ = r.join();
            }
            println!(
                "{ran} seeds of {kind}: {} passed ({gaps} of them with known gaps only), {failed} failed; \
                 {:.0} s simulated in {:.1} s",
                ran - failed,
                sim_ms as f64 / 1000.0,
                wall.elapsed().as_secs_f64()
            );
            Ok(if failed == 0 && ran == b.saturating_sub(a) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
