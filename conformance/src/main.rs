//! `conformance`: run the MQTT server conformance suite against a broker.
#![allow(clippy::print_stdout)] // a command-line tool: its table goes to stdout

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use conformance::catalogue;
use conformance::client::Target;
use conformance::packets::Version;
use conformance::runner::{self, Options, RunReport};

/// MQTT 3.1.1 and 5.0 server conformance suite, keyed to the normative statements.
#[derive(Debug, Parser)]
#[command(name = "conformance", version)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Protocol versions to test: 3.1.1, 5 or all.
    #[arg(long, default_value = "all")]
    protocol: String,
    /// Only cases whose name or statement id contains this text.
    #[arg(long)]
    filter: Option<String>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Cases run at once.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Seconds a case may take.
    #[arg(long, default_value_t = 30)]
    case_timeout: u64,
    /// Features the target lacks, whose cases are skipped: shared, wildcard,
    /// retain, subscription-identifiers (repeatable).
    #[arg(long = "disable", value_name = "FEATURE")]
    disabled: Vec<String>,
    /// Cases expected to fail, one per line: `VERSION CASE_NAME reason...`.
    /// They are reported as known failures; one that passes is an error.
    #[arg(long, value_name = "FILE")]
    known_failures: Option<PathBuf>,
    /// Print the catalogue's coverage and exit.
    #[arg(long)]
    catalogue: bool,
    /// Print every case (version, name, statements) and exit.
    #[arg(long)]
    list_cases: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.catalogue {
        for version in [Version::V311, Version::V5] {
            let (tested, observable) = catalogue::coverage(version);
            let total = catalogue::entries(version).len();
            println!(
                "MQTT {}: {total} server statements, {observable} observable from a client, {tested} tested ({:.0}%)",
                version.name(),
                100.0 * tested as f64 / observable.max(1) as f64
            );
        }
        return ExitCode::SUCCESS;
    }
    if args.list_cases {
        for case in conformance::cases::all() {
            println!("{}\t{}\t{}", case.version.name(), case.name, case.statements.join(","));
        }
        return ExitCode::SUCCESS;
    }
    let versions = match args.protocol.as_str() {
        "3.1.1" | "4" => vec![Version::V311],
        "5" | "5.0" => vec![Version::V5],
        "all" => vec![Version::V311, Version::V5],
        other => {
            eprintln!("error: --protocol {other}: expected 3.1.1, 5 or all");
            return ExitCode::from(2);
        }
    };
    let known = match &args.known_failures {
        None => BTreeMap::new(),
        Some(path) => match read_known_failures(path) {
            Ok(known) => known,
            Err(error) => {
                eprintln!("error: {}: {error}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let options = Options {
        target: Target { host: args.host, port: args.port, username: args.username, password: args.password },
        versions,
        filter: args.filter,
        jobs: args.jobs,
        case_timeout: Duration::from_secs(args.case_timeout),
        disabled: args.disabled,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(runner::run(&options, conformance::cases::all()));
    let failed = print(&report, &known);
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(error) = std::fs::write(path, json) {
            eprintln!("error: cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// `(version, case) -> reason` from a known-failures file.
fn read_known_failures(path: &PathBuf) -> Result<BTreeMap<(String, String), String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut known = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.splitn(3, char::is_whitespace);
        let (Some(version), Some(case)) = (words.next(), words.next()) else {
            return Err(format!("line {}: expected `VERSION CASE_NAME reason`", number + 1));
        };
        let reason = words.next().unwrap_or("").trim();
        if reason.is_empty() {
            return Err(format!("line {}: a known failure needs its reason", number + 1));
        }
        known.insert((version.to_string(), case.to_string()), reason.to_string());
    }
    Ok(known)
}

/// Prints the table and the totals; returns whether the run failed.
fn print(report: &RunReport, known: &BTreeMap<(String, String), String>) -> bool {
    let mut failed = 0;
    let mut known_count = 0;
    let mut fixed = Vec::new();
    println!("{:<6} {:<58} {:<7} {:>6}  statements", "ver", "case", "result", "ms");
    for case in &report.cases {
        let key = (case.version.name().to_string(), case.name.clone());
        let label = match (case.result, known.contains_key(&key)) {
            ("fail", true) => {
                known_count += 1;
                "KNOWN"
            }
            ("fail", false) => {
                failed += 1;
                "FAIL"
            }
            ("pass", true) => {
                fixed.push(format!("{} {}", key.0, key.1));
                failed += 1;
                "FIXED"
            }
            ("pass", false) => "pass",
            _ => "skip",
        };
        println!(
            "{:<6} {:<58} {:<7} {:>6}  {}",
            case.version.name(),
            case.name,
            label,
            case.millis,
            case.statements.join(",")
        );
        if case.result != "pass" && !case.detail.is_empty() {
            for line in case.detail.lines() {
                println!("         {line}");
            }
        }
    }
    for case in &fixed {
        println!("known failure now passes: remove `{case}` from the known-failures file");
    }
    if known_count > 0 {
        println!("{known_count} known failures (listed with their reasons in the known-failures file)");
    }
    println!("{} passed, {failed} failed, {} skipped", report.passed, report.skipped);
    failed > 0
}
