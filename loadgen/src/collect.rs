//! Turns the engine's events (from this process, or merged from agents) into
//! a [`RunResult`]: the per-second series with the broker's CPU and memory
//! beside it, the phases, the totals and the latency histogram; and shows
//! progress every second.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::{mpsc, watch};

use crate::engine::{self, Event, PhaseReport};
use crate::procfs;
use crate::result::{AgentStatus, BrokerUsage, PhaseResult, RunResult, SCHEMA_VERSION};
use crate::scenario::{Phase, Scenario};
use crate::stats::{Counters, LatencySummary, Sample, decode_histogram, encode_histogram, new_histogram};

/// How a run is labelled and watched.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub command_line: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub broker_pid: Option<u32>,
    pub quiet: bool,
}

pub struct Collector {
    scenario: Scenario,
    options: RunOptions,
    started_at_unix: f64,
    series: Vec<Sample>,
    phases: Vec<PhaseResult>,
    broker: Option<BrokerWatch>,
    progress: Progress,
    rss_per_connection: Option<f64>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").field("scenario", &self.scenario.name).finish_non_exhaustive()
    }
}

struct BrokerWatch {
    usage: BrokerUsage,
    cpu_start: f64,
    cpu_last: f64,
    at_last: std::time::Instant,
}

impl Collector {
    pub fn new(scenario: Scenario, options: RunOptions) -> Self {
        let broker = options.broker_pid.map(|pid| {
            let cpu = procfs::cpu_seconds(pid).unwrap_or(0.0);
            let rss = procfs::rss_bytes(pid).unwrap_or(0);
            BrokerWatch {
                usage: BrokerUsage { pid, rss_before_bytes: rss, rss_max_bytes: rss, ..BrokerUsage::default() },
                cpu_start: cpu,
                cpu_last: cpu,
                at_last: std::time::Instant::now(),
            }
        });
        let progress = Progress::new(options.quiet);
        Self {
            scenario,
            options,
            started_at_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
            series: Vec::new(),
            phases: Vec::new(),
            broker,
            progress,
            rss_per_connection: None,
        }
    }

    pub fn sample(&mut self, mut sample: Sample) {
        if let Some(b) = &mut self.broker {
            let cpu = procfs::cpu_seconds(b.usage.pid).unwrap_or(b.cpu_last);
            let now = std::time::Instant::now();
            let wall = now.duration_since(b.at_last).as_secs_f64().max(1e-3);
            sample.broker_cpu_percent = Some((cpu - b.cpu_last) / wall * 100.0);
            b.cpu_last = cpu;
            b.at_last = now;
            b.usage.cpu_seconds = cpu - b.cpu_start;
            if let Some(rss) = procfs::rss_bytes(b.usage.pid) {
                sample.broker_rss_bytes = Some(rss);
                b.usage.rss_max_bytes = b.usage.rss_max_bytes.max(rss);
            }
        }
        sample.histogram = None;
        self.progress.show(&sample, self.phases.len(), self.scenario.phases.len());
        self.series.push(sample);
    }

    pub fn phase(&mut self, report: PhaseReport) {
        let phase = self.scenario.phases.get(report.index);
        let is_connect = matches!(phase, Some(Phase::Connect { .. }));
        if is_connect {
            if let Some(b) = &mut self.broker
                && let Some(rss) = procfs::rss_bytes(b.usage.pid)
            {
                b.usage.rss_after_connect_bytes = rss;
            }
            if report.connections > 0 {
                let grown = report.loadgen_rss_bytes.saturating_sub(report.loadgen_rss_start_bytes);
                self.rss_per_connection = Some(grown as f64 / report.connections as f64);
            }
        }
        let span = (report.ended_s - report.started_s).max(1e-6);
        let result = PhaseResult {
            index: report.index,
            kind: phase.map_or("?", Phase::kind).to_string(),
            group: phase.and_then(Phase::group).unwrap_or("").to_string(),
            started_s: report.started_s,
            ended_s: report.ended_s,
            target_rate: report.target_rate,
            achieved_rate: report.done as f64 / span,
            done: report.done,
        };
        self.progress.phase(&result);
        self.phases.push(result);
    }

    pub fn finish(self, latency: &Histogram<u64>, agents: Vec<AgentStatus>) -> RunResult {
        self.progress.finish();
        let mut totals = Counters::default();
        for s in &self.series {
            totals.add(&s.delta);
        }
        // Missing numbers can be filled by late arrivals: the last level is the truth, not the sum of rises.
        totals.lost = self.series.last().map_or(0, |s| s.lost_total);
        RunResult {
            schema: SCHEMA_VERSION,
            loadgen_version: env!("CARGO_PKG_VERSION").to_string(),
            command_line: self.options.command_line,
            labels: self.options.labels,
            started_at_unix: self.started_at_unix,
            duration_s: self.series.len() as f64,
            machine: procfs::machine(),
            scenario: self.scenario,
            agents,
            series: self.series,
            phases: self.phases,
            totals,
            latency: LatencySummary::of(latency),
            latency_histogram: encode_histogram(latency),
            broker: self.broker.map(|b| b.usage),
            loadgen_rss_per_connection_bytes: self.rss_per_connection,
        }
    }
}

/// Live progress: a spinner line on a terminal, one plain line per second otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}").unwrap_or(ProgressStyle::default_spinner()),
            );
            bar
        });
        Self { bar, quiet }
    }

    fn show(&self, s: &Sample, phases_done: usize, phases: usize) {
        let d = &s.delta;
        let line = format!(
            "t={}s phase {}/{} conn {} (+{} ok, {} failed) pub {}/s (target {:.0}/s, {} overruns) ack {}/s recv {}/s \
             lat p50 {:.2} p99 {:.2} ms lost {} dup {}",
            s.t,
            (phases_done + 1).min(phases),
            phases,
            s.connections,
            d.connects_ok,
            d.connects_failed,
            d.pub_sent,
            s.target_rate,
            d.pub_overruns,
            d.pub_acked,
            d.received,
            s.latency.p50_us as f64 / 1000.0,
            s.latency.p99_us as f64 / 1000.0,
            d.lost,
            d.duplicates,
        );
        match &self.bar {
            Some(bar) => {
                bar.set_message(line);
                bar.tick();
            }
            None if !self.quiet => crate::remote::log(&line),
            None => {}
        }
    }

    fn phase(&self, p: &PhaseResult) {
        let line = format!(
            "phase {} {} {}: {} done in {:.1}s ({:.0}/s{})",
            p.index + 1,
            p.kind,
            p.group,
            p.done,
            p.ended_s - p.started_s,
            p.achieved_rate,
            if p.target_rate > 0.0 { format!(", target {:.0}/s", p.target_rate) } else { String::new() }
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None if !self.quiet => crate::remote::log(&line),
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Runs a scenario in this process, stopping early on Ctrl-C.
pub async fn run_local(scenario: Scenario, options: RunOptions) -> Result<RunResult, String> {
    let (go_tx, go_rx) = mpsc::unbounded_channel();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let phases = scenario.phases.len();
    let engine = tokio::spawn(engine::run(scenario.clone(), go_rx, stop_rx, events_tx, false));
    let _ = go_tx.send(0);
    let mut collector = Collector::new(scenario, options);
    let mut latency = new_histogram();
    while let Some(event) = events.recv().await {
        match event {
            Event::Sample(s) => collector.sample(*s),
            Event::PhaseDone(p) => {
                if p.index + 1 < phases {
                    let _ = go_tx.send(p.index + 1);
                }
                collector.phase(p);
            }
            Event::Finished { histogram } => {
                latency = decode_histogram(&histogram)?;
                break;
            }
        }
    }
    drop(go_tx);
    engine.await.map_err(|e| format!("engine: {e}"))??;
    let me = AgentStatus {
        name: "local".into(),
        status: "ok".into(),
        detail: String::new(),
        machine: procfs::machine(),
        clients: collector.scenario.total_clients(),
    };
    Ok(collector.finish(&latency, vec![me]))
}
