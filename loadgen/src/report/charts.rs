//! The report's plots: which lines each one draws from the runs, and whether
//! any input has data for it.

use std::fs;
use std::path::{Path, PathBuf};

use super::input::Run;
use super::plot::{self, Chart, Line, XAxis};
use crate::stats::Sample;

/// The percentile plot goes at least to 99% and at most to 99.99999%.
const NINES_MIN: f64 = 2.0;
const NINES_MAX: f64 = 7.0;
/// Points per decade of the percentile plot.
const NINES_STEPS_PER_DECADE: u32 = 50;
const MIB: f64 = 1024.0 * 1024.0;

/// One plot of the report, drawn or skipped.
#[derive(Debug, Clone)]
pub struct Plot {
    pub file: &'static str,
    pub title: &'static str,
    /// How to read it (one sentence for the Markdown).
    pub reading: &'static str,
    /// Why it is missing, when no input has data for it.
    pub when_empty: &'static str,
    /// The SVG written, or `None` when the plot was skipped.
    pub written: Option<PathBuf>,
}

/// Draws every plot that some input has data for into `dir`. A skipped plot's
/// file is removed, so that an old one does not outlive the report.
pub fn write_all(runs: &[Run], dir: &Path) -> Result<Vec<Plot>, String> {
    let specs: [(&'static str, &'static str, &'static str, &'static str, Chart); 6] = [
        (
            "throughput.svg",
            "Throughput",
            "Messages per second over the run, per input: solid received, dashed sent (published).",
            "no input published or received messages.",
            chart("Throughput", XAxis::Seconds, "messages/s", throughput(runs)),
        ),
        (
            "latency.svg",
            "Latency over time",
            "End-to-end latency of the messages received in each second: solid p50, dashed p99.",
            "no input recorded latencies.",
            chart("Latency per second", XAxis::Seconds, "ms", latency_over_time(runs)),
        ),
        (
            "latency-percentiles.svg",
            "Latency distribution",
            "Latency at each percentile over the whole run (HdrHistogram style: each step right adds a nine).",
            "no input recorded latencies.",
            chart("Latency by percentile", XAxis::Nines, "ms", latency_percentiles(runs)),
        ),
        (
            "connections.svg",
            "Connections",
            "Connections open at the end of each second.",
            "no input held connections.",
            chart("Connections open", XAxis::Seconds, "connections", connections(runs)),
        ),
        (
            "broker-cpu.svg",
            "Broker CPU",
            "CPU used by the broker process in each second, in percent of one core.",
            "no input sampled the broker (run with `--broker-pid`).",
            chart("Broker CPU", XAxis::Seconds, "% of one core", per_second(runs, |s| s.broker_cpu_percent)),
        ),
        (
            "broker-rss.svg",
            "Broker memory",
            "Resident memory (RSS) of the broker process at each second.",
            "no input sampled the broker (run with `--broker-pid`).",
            chart(
                "Broker RSS",
                XAxis::Seconds,
                "MiB",
                per_second(runs, |s| s.broker_rss_bytes.map(|b| b as f64 / MIB)),
            ),
        ),
    ];
    let mut plots = Vec::with_capacity(specs.len());
    for (file, title, reading, when_empty, chart) in specs {
        let path = dir.join(file);
        let written = if chart.lines.is_empty() {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
            None
        } else {
            plot::draw(&chart, &path)?;
            Some(path)
        };
        plots.push(Plot { file, title, reading, when_empty, written });
    }
    Ok(plots)
}

/// A chart of the lines that have data.
fn chart(title: &str, x: XAxis, y_desc: &str, (x_max, lines): (f64, Vec<Line>)) -> Chart {
    let lines = lines.into_iter().filter(|l| !l.is_empty()).collect();
    Chart { title: title.to_string(), x, y_desc: y_desc.to_string(), x_max, lines }
}

/// The longest run's seconds: every plot over time spans all of every run.
fn seconds(runs: &[Run]) -> f64 {
    let last = |r: &Run| r.result.series.iter().map(|s| s.t as f64).fold(r.result.duration_s, f64::max);
    runs.iter().map(last).filter(|s| s.is_finite()).fold(0.0, f64::max)
}

fn throughput(runs: &[Run]) -> (f64, Vec<Line>) {
    let mut lines = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let received = line(run, i, "received/s", false, |s| Some(s.delta.received as f64));
        let sent = line(run, i, "sent/s", true, |s| Some(s.delta.pub_sent as f64));
        // A run that received (or sent) nothing has no such line, and no legend entry.
        lines.extend([received, sent].into_iter().filter(|l| l.segments.iter().flatten().any(|p| p.1 > 0.0)));
    }
    (seconds(runs), lines)
}

fn latency_over_time(runs: &[Run]) -> (f64, Vec<Line>) {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut lines = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        lines.push(line(run, i, "p50", false, |s| (s.latency.count > 0).then(|| ms(s.latency.p50_us))));
        lines.push(line(run, i, "p99", true, |s| (s.latency.count > 0).then(|| ms(s.latency.p99_us))));
    }
    (seconds(runs), lines)
}

fn latency_percentiles(runs: &[Run]) -> (f64, Vec<Line>) {
    // Every input to the nines its sample count resolves (1,000 samples: 99.9%).
    let nines_of = |run: &Run| (run.histogram.len().max(1) as f64).log10().min(NINES_MAX);
    let x_max = runs.iter().map(nines_of).fold(NINES_MIN, f64::max).ceil();
    let steps = (x_max * f64::from(NINES_STEPS_PER_DECADE)) as u32;
    let mut lines = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let h = &run.histogram;
        if h.is_empty() {
            continue;
        }
        let end = nines_of(run).max(NINES_MIN.min(x_max));
        let mut points: Vec<(f64, f64)> = (0..=steps)
            .map(|k| x_max * f64::from(k) / f64::from(steps))
            .take_while(|x| *x < end)
            .map(|x| (x, h.value_at_quantile(1.0 - 10f64.powf(-x)) as f64 / 1000.0))
            .collect();
        points.push((end, h.max() as f64 / 1000.0));
        lines.push(Line { label: run.name.clone(), color: i, dashed: false, segments: vec![points] });
    }
    (x_max, lines)
}

fn connections(runs: &[Run]) -> (f64, Vec<Line>) {
    let (x_max, lines) = per_second(runs, |s| Some(s.connections as f64));
    (x_max, lines.into_iter().filter(|l| l.segments.iter().flatten().any(|p| p.1 > 0.0)).collect())
}

/// One line per input of a per-second value.
fn per_second(runs: &[Run], value: impl Fn(&Sample) -> Option<f64>) -> (f64, Vec<Line>) {
    (seconds(runs), runs.iter().enumerate().map(|(i, run)| line(run, i, "", false, &value)).collect())
}

/// A line of `value` over the run's seconds, broken where a second has no value
/// or is missing from the series.
fn line(run: &Run, color: usize, what: &str, dashed: bool, value: impl Fn(&Sample) -> Option<f64>) -> Line {
    let mut segments: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let mut previous_t: Option<u64> = None;
    for sample in &run.result.series {
        let contiguous = previous_t.is_some_and(|t| sample.t == t + 1);
        if !contiguous && !current.is_empty() {
            segments.push(std::mem::take(&mut current));
        }
        previous_t = Some(sample.t);
        match value(sample).filter(|v| v.is_finite()) {
            Some(v) => current.push((sample.t as f64, v)),
            None if !current.is_empty() => segments.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    let label = if what.is_empty() { run.name.clone() } else { format!("{} {what}", run.name) };
    Line { label, color, dashed, segments }
}
