//! Reading result files: the schema check, display names, and the figures the
//! summary table derives from a run.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use crate::result::{PhaseResult, RunResult, SCHEMA_VERSION};
use crate::stats::{Sample, decode_histogram};

/// One input of the report.
#[derive(Debug)]
pub struct Run {
    pub path: PathBuf,
    /// Unique among the inputs of one report.
    pub name: String,
    pub result: RunResult,
    /// The whole run's latencies (microseconds), decoded once.
    pub histogram: Histogram<u64>,
}

/// Reads every input and gives each a unique display name.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Run>, String> {
    let mut runs = paths.iter().map(|p| load(p)).collect::<Result<Vec<_>, _>>()?;
    make_names_unique(&mut runs);
    Ok(runs)
}

/// Reads one result file; errors name the file.
pub fn load(path: &Path) -> Result<Run, String> {
    let shown = path.display();
    let text = fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    // The version is checked before the fields, so that a file of another
    // version is refused as such and not as a missing field.
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{shown}: not JSON: {e}"))?;
    match value.get("schema") {
        Some(v) if v.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {}
        Some(v) => {
            return Err(format!(
                "{shown}: result schema version {v}; this loadgen reads version {SCHEMA_VERSION} only"
            ));
        }
        None => return Err(format!("{shown}: not a loadgen result (no `schema` field)")),
    }
    let result: RunResult = serde_json::from_str(&text).map_err(|e| format!("{shown}: {e}"))?;
    let histogram =
        decode_histogram(&result.latency_histogram).map_err(|e| format!("{shown}: latency_histogram: {e}"))?;
    let name = display_name(&result, path);
    Ok(Run { path: path.to_path_buf(), name, result, histogram })
}

/// `labels["broker"]` and then `labels["scenario"]` or the scenario's name;
/// the file stem when there is none of these.
pub fn display_name(result: &RunResult, path: &Path) -> String {
    let label = |key: &str| result.labels.get(key).map(|s| s.trim()).filter(|s| !s.is_empty());
    let scenario = label("scenario").or(Some(result.scenario.name.trim()).filter(|s| !s.is_empty()));
    let parts: Vec<&str> = [label("broker"), scenario].into_iter().flatten().collect();
    if parts.is_empty() { file_stem(path) } else { parts.join(" ") }
}

fn file_stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

/// Names shared by several inputs get the file stem, then a number if they still clash.
fn make_names_unique(runs: &mut [Run]) {
    let shared: Vec<bool> = runs.iter().map(|r| runs.iter().filter(|other| other.name == r.name).count() > 1).collect();
    for (run, shared) in runs.iter_mut().zip(shared) {
        if shared {
            run.name = format!("{} ({})", run.name, file_stem(&run.path));
        }
    }
    let mut seen = HashSet::new();
    for run in runs.iter_mut() {
        if seen.contains(&run.name) {
            let base = run.name.clone();
            let k = (2..).find(|k| !seen.contains(&format!("{base} #{k}"))).unwrap_or(2);
            run.name = format!("{base} #{k}");
        }
        seen.insert(run.name.clone());
    }
}

/// The figures of one summary row that are not read straight from the result.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub clients: u64,
    pub connections_peak: u64,
    /// Connections made per second over the connect phases.
    pub connect_rate: Option<f64>,
    /// (target, achieved) messages/s of each publish phase; target 0 = unbounded.
    pub publish: Vec<(f64, f64)>,
    /// Messages received per second of publishing (the whole run when nothing was published).
    pub received_per_s: Option<f64>,
    pub broker_cpu_s_per_million: Option<f64>,
    /// The broker's RSS growth over the connect phases per connection held after them.
    pub broker_rss_per_connection: Option<f64>,
}

impl Figures {
    pub fn of(r: &RunResult) -> Self {
        let connect: Vec<&PhaseResult> = r.phases.iter().filter(|p| p.kind == "connect").collect();
        let publish: Vec<&PhaseResult> = r.phases.iter().filter(|p| p.kind == "publish").collect();
        let connections_peak = r.series.iter().map(|s| s.connections).max().unwrap_or(0);

        let connect_s: f64 = connect.iter().map(|p| duration(p)).sum();
        let connected: u64 = connect.iter().map(|p| p.done).sum();
        let connect_rate = (connect_s > 0.0).then(|| connected as f64 / connect_s);

        let window_s = if publish.is_empty() { r.duration_s } else { union_s(&publish) };
        let received_per_s = (window_s > 0.0).then(|| r.totals.received as f64 / window_s);

        let received_millions = r.totals.received as f64 / 1e6;
        let broker_cpu_s_per_million =
            r.broker.as_ref().filter(|_| received_millions > 0.0).map(|b| b.cpu_seconds / received_millions);

        let held = connect
            .iter()
            .map(|p| p.ended_s)
            .reduce(f64::max)
            .and_then(|end| connections_at(&r.series, end))
            .unwrap_or(connections_peak);
        let broker_rss_per_connection = r
            .broker
            .as_ref()
            .filter(|_| held > 0)
            .map(|b| b.rss_after_connect_bytes.saturating_sub(b.rss_before_bytes) as f64 / held as f64);

        Figures {
            clients: r.scenario.total_clients(),
            connections_peak,
            connect_rate,
            publish: publish.iter().map(|p| (p.target_rate, p.achieved_rate)).collect(),
            received_per_s,
            broker_cpu_s_per_million,
            broker_rss_per_connection,
        }
    }
}

fn duration(p: &PhaseResult) -> f64 {
    let d = p.ended_s - p.started_s;
    if d.is_finite() { d.max(0.0) } else { 0.0 }
}

/// Seconds covered by at least one of the phases (publish phases may overlap).
fn union_s(phases: &[&PhaseResult]) -> f64 {
    let mut spans: Vec<(f64, f64)> =
        phases.iter().filter(|p| duration(p) > 0.0).map(|p| (p.started_s, p.ended_s)).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut reached = f64::NEG_INFINITY;
    for (start, end) in spans {
        let from = start.max(reached);
        if end > from {
            total += end - from;
        }
        reached = reached.max(end);
    }
    total
}

/// Connections open at the end of the second that contains `at_s` (seconds since the start).
fn connections_at(series: &[Sample], at_s: f64) -> Option<u64> {
    series.iter().find(|s| s.t as f64 >= at_s).map(|s| s.connections)
}
