//! `write_report` end to end on synthetic results written to a temporary directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::write_report;
use crate::result::{AgentStatus, BrokerUsage, Machine, PhaseResult, RunResult, SCHEMA_VERSION};
use crate::scenario::Scenario;
use crate::stats::{Counters, LatencySummary, Sample, encode_histogram, new_histogram};

const SCENARIO: &str = r#"
name = "p2p"
[target]
hosts = ["127.0.0.1"]
[[group]]
name = "sub"
count = 10
[[group]]
name = "pub"
count = 10
[[phase]]
kind = "connect"
group = "sub"
[[phase]]
kind = "connect"
group = "pub"
[[phase]]
kind = "publish"
group = "pub"
topic = "t/%i"
rate = 200000.0
duration = "10s"
"#;

const MIB: u64 = 1024 * 1024;

/// The row `result(Some("mosquitto"), true)` gives in the summary table.
const ROW_WITH_BROKER: &str = "| mosquitto p2p | 20 | 20 | 100 | 200,000 | 199,000 (99.5%) | 200,000 | 3 | 1 | 2 | 4 \
     | 1.23 | 2.00 | 4.56 | 7.89 | 12.34 | 5.00 | 2.50 | 64.0 MiB | 10.0 KiB | 1.8 KiB |";
/// ... and `result(None, false)`.
const ROW_WITHOUT_BROKER: &str = "| p2p | 20 | 20 | 100 | 200,000 | 199,000 (99.5%) | 200,000 | 3 | 1 | 2 | 4 \
     | 1.23 | 2.00 | 4.56 | 7.89 | 12.34 | — | — | — | — | 1.8 KiB |";

const PLOTS_ALWAYS: [&str; 4] = ["throughput.svg", "latency.svg", "latency-percentiles.svg", "connections.svg"];
const PLOTS_BROKER: [&str; 2] = ["broker-cpu.svg", "broker-rss.svg"];

fn machine() -> Machine {
    Machine {
        hostname: "bench1".into(),
        cpu_model: "Test CPU".into(),
        cores: 2,
        memory_bytes: 4 << 30,
        kernel: "6.1.0".into(),
    }
}

fn phase(index: usize, kind: &str, group: &str, span: (f64, f64), rates: (f64, f64), done: u64) -> PhaseResult {
    PhaseResult {
        index,
        kind: kind.into(),
        group: group.into(),
        started_s: span.0,
        ended_s: span.1,
        target_rate: rates.0,
        achieved_rate: rates.1,
        done,
    }
}

/// Twenty clients connect in 0.2 s, then ten publish 200,000 msg/s for ten seconds.
fn result(broker: Option<&str>, sampled_broker: bool) -> RunResult {
    let mut histogram = new_histogram();
    for us in [1_230, 2_000, 4_560, 7_890, 12_340] {
        histogram.record_n(us, 1_000).expect("in range");
    }
    let latency = LatencySummary {
        count: 2_000_000,
        min_us: 100,
        mean_us: 1_500.0,
        p50_us: 1_230,
        p90_us: 2_000,
        p99_us: 4_560,
        p999_us: 7_890,
        max_us: 12_340,
    };
    let series = (1..=12)
        .map(|t| {
            let publishing = (2..=11).contains(&t);
            let per_s = if publishing { 200_000 } else { 0 };
            Sample {
                t,
                delta: Counters { pub_sent: per_s, received: per_s, ..Counters::default() },
                connections: 20,
                target_rate: per_s as f64,
                latency: if publishing { LatencySummary { count: 200_000, ..latency } } else { Default::default() },
                broker_cpu_percent: sampled_broker.then_some(50.0),
                broker_rss_bytes: sampled_broker.then_some(48 * MIB + t * MIB),
                loadgen_rss_bytes: 8 * MIB,
                ..Sample::default()
            }
        })
        .collect();
    let totals = Counters {
        connects_ok: 20,
        pub_sent: 2_000_000,
        received: 2_000_000,
        lost: 3,
        duplicates: 1,
        out_of_order: 2,
        pub_overruns: 4,
        ..Counters::default()
    };
    RunResult {
        schema: SCHEMA_VERSION,
        loadgen_version: "0.1.0".into(),
        command_line: ["loadgen", "run", "scenarios/p2p.toml", "--label", "note=two words"].map(String::from).into(),
        labels: broker.map(|b| BTreeMap::from([("broker".to_string(), b.to_string())])).unwrap_or_default(),
        started_at_unix: 1_700_000_000.0,
        duration_s: 12.0,
        machine: machine(),
        scenario: Scenario::from_toml(SCENARIO).expect("valid scenario"),
        agents: vec![AgentStatus {
            name: "local".into(),
            status: "ok".into(),
            detail: String::new(),
            machine: machine(),
            clients: 20,
        }],
        series,
        phases: vec![
            phase(0, "connect", "sub", (0.0, 0.1), (0.0, 100.0), 10),
            phase(1, "connect", "pub", (0.1, 0.2), (0.0, 100.0), 10),
            phase(2, "publish", "pub", (1.0, 11.0), (200_000.0, 199_000.0), 1_990_000),
        ],
        totals,
        latency,
        latency_histogram: encode_histogram(&histogram),
        broker: sampled_broker.then_some(BrokerUsage {
            pid: 42,
            cpu_seconds: 5.0,
            rss_max_bytes: 64 * MIB,
            rss_after_connect_bytes: 48 * MIB + 20 * 10 * 1024,
            rss_before_bytes: 48 * MIB,
        }),
        loadgen_rss_per_connection_bytes: Some(1_843.0),
    }
}

/// A fresh directory for one test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-report-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn write_json(dir: &Path, file: &str, value: &impl serde::Serialize) -> PathBuf {
    let path = dir.join(file);
    fs::write(&path, serde_json::to_string_pretty(value).expect("serialize")).expect("write input");
    path
}

fn assert_svg(path: &Path) {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = text.trim_start();
    assert!(
        start.starts_with("<svg") || start.starts_with("<?xml"),
        "{}: {}",
        path.display(),
        text.chars().take(80).collect::<String>()
    );
    assert!(text.contains("</svg>"), "{}: not closed", path.display());
    assert!(text.contains("<text"), "{}: no labels", path.display());
}

#[test]
fn one_input_gives_its_summary_row_phases_and_every_plot() {
    let dir = temp_dir("one");
    let input = write_json(&dir, "mosquitto-p2p.json", &result(Some("mosquitto"), true));
    let out = dir.join("reports").join("single");
    fs::create_dir_all(dir.join("reports")).expect("reports dir");

    let written = write_report(&[input], &out, Some("Single node")).expect("report");

    let md_path = dir.join("reports").join("single.md");
    assert_eq!(written[0], md_path);
    let md = fs::read_to_string(&md_path).expect("markdown");
    assert!(md.starts_with("# Single node\n"), "{md}");
    assert!(md.contains(ROW_WITH_BROKER), "{md}");
    assert!(md.contains("| 3 | publish | pub | 1.0 | 11.0 | 200,000 | 199,000 | 99.5% | 1,990,000 |"), "{md}");
    assert!(md.contains("| 1 | connect | sub | 0.0 | 0.1 | unbounded | 100 | — | 10 |"), "{md}");
    assert!(md.contains("2023-11-14 22:13:20 UTC"), "{md}");
    assert!(md.contains("loadgen run scenarios/p2p.toml --label 'note=two words'"), "{md}");
    assert!(md.contains("`bench1`: Test CPU, 2 cores, 4.00 GiB memory, kernel 6.1.0"), "{md}");
    assert!(!md.contains("Warning"), "{md}");
    for file in PLOTS_ALWAYS.iter().chain(&PLOTS_BROKER) {
        let svg = dir.join("reports").join("single").join(file);
        assert!(written.contains(&svg), "{file} not returned: {written:?}");
        assert_svg(&svg);
        assert!(md.contains(&format!("](single/{file})")), "{file} not linked: {md}");
    }
    assert_eq!(written.len(), 1 + PLOTS_ALWAYS.len() + PLOTS_BROKER.len());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn two_inputs_give_two_rows_and_an_agent_that_failed_is_shown() {
    let dir = temp_dir("two");
    let mut peer = result(None, false);
    peer.agents.push(AgentStatus {
        name: "b".into(),
        status: "failed".into(),
        detail: "connection refused".into(),
        machine: machine(),
        clients: 10,
    });
    let inputs = [
        write_json(&dir, "mosquitto-p2p.json", &result(Some("mosquitto"), true)),
        write_json(&dir, "peer.json", &peer),
    ];
    let out = dir.join("both");

    let written = write_report(&inputs, &out, None).expect("report");

    let md = fs::read_to_string(dir.join("both.md")).expect("markdown");
    assert!(md.starts_with("# Load test report\n"), "{md}");
    assert!(md.contains(ROW_WITH_BROKER), "{md}");
    assert!(md.contains(ROW_WITHOUT_BROKER), "{md}");
    assert!(md.contains("> **Warning**: p2p: agent `b` is **failed**: connection refused"), "{md}");
    assert!(md.contains("| b | **failed** | 10 | bench1 | connection refused |"), "{md}");
    for file in PLOTS_ALWAYS.iter().chain(&PLOTS_BROKER) {
        assert_svg(&dir.join("both").join(file));
    }
    // Both inputs are in the legends.
    let throughput = fs::read_to_string(dir.join("both").join("throughput.svg")).expect("svg");
    assert!(throughput.contains("mosquitto p2p received/s") && throughput.contains("p2p sent/s"), "{throughput}");
    assert_eq!(written.len(), 1 + PLOTS_ALWAYS.len() + PLOTS_BROKER.len());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn plots_without_data_are_skipped_and_said_so() {
    let dir = temp_dir("skip");
    let input = write_json(&dir, "plain.json", &result(None, false));
    // A broker plot from an earlier report must not outlive this one.
    fs::create_dir_all(dir.join("out")).expect("out dir");
    fs::write(dir.join("out").join("broker-cpu.svg"), "<svg></svg>").expect("stale plot");

    let written = write_report(&[input], &dir.join("out.md"), None).expect("report");

    assert_eq!(written.len(), 1 + PLOTS_ALWAYS.len());
    let md = fs::read_to_string(dir.join("out.md")).expect("markdown");
    assert!(md.contains("*Not drawn: no input sampled the broker (run with `--broker-pid`).*"), "{md}");
    assert!(!dir.join("out").join("broker-cpu.svg").exists());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn inputs_with_the_same_name_are_told_apart() {
    let dir = temp_dir("names");
    let a = write_json(&dir, "a.json", &result(None, false));
    let b = write_json(&dir, "b.json", &result(None, false));

    write_report(&[a.clone(), b, a], &dir.join("r"), None).expect("report");

    let md = fs::read_to_string(dir.join("r.md")).expect("markdown");
    for name in ["| p2p (a) |", "| p2p (b) |", "| p2p (a) #2 |"] {
        assert!(md.contains(name), "{name}: {md}");
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn another_schema_version_is_refused_naming_the_file() {
    let dir = temp_dir("schema");
    let mut value = serde_json::to_value(result(None, false)).expect("to value");
    value["schema"] = serde_json::json!(SCHEMA_VERSION + 1);
    let input = write_json(&dir, "future.json", &value);

    let e = write_report(std::slice::from_ref(&input), &dir.join("r"), None).expect_err("schema refused");

    assert!(e.contains(&input.display().to_string()), "{e}");
    assert!(e.contains(&format!("schema version {}", SCHEMA_VERSION + 1)), "{e}");
    assert!(!dir.join("r.md").exists());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_is_not_a_result_is_refused_naming_the_file() {
    let dir = temp_dir("garbage");
    let input = write_json(&dir, "other.json", &serde_json::json!({"hello": 1}));

    let e = write_report(std::slice::from_ref(&input), &dir.join("r"), None).expect_err("refused");

    assert!(e.contains("other.json") && e.contains("no `schema` field"), "{e}");
    let _ = fs::remove_dir_all(&dir);
}
