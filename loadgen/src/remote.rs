//! Agents and their coordinator.
//!
//! An agent (`loadgen agent --listen ADDR`) waits for a coordinator, runs its
//! slice of the scenario and streams its events back. The coordinator
//! (`loadgen run SCENARIO --agents A,B`) gives agent k of n the k-th slice of
//! every group (contiguous client numbers) and that share of every total
//! rate, starts all agents at one wall-clock instant, releases phase i + 1
//! only when every live agent finished phase i, sums each second's counters
//! and merges the histograms.
//!
//! The wire is one JSON object per line over TCP: simple to debug with `nc`,
//! and a second of samples is a few hundred bytes.
//!
//! An agent that disconnects is marked failed (what it sent so far is kept);
//! one whose samples arrive late or that misses its publish schedule is
//! marked behind. Neither is hidden: both appear in the result's `agents`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::collect::{Collector, RunOptions};
use crate::engine::{self, Event, PhaseReport};
use crate::procfs;
use crate::result::{AgentStatus, Machine, RunResult};
use crate::scenario::Scenario;
use crate::stats::{Counters, LatencySummary, Sample, decode_histogram, new_histogram};

/// Bumped when a message changes; an agent refuses a coordinator of another version.
const PROTOCOL: u32 = 1;
/// How far after the coordinator's go the agents start, so that all start together.
const START_DELAY: Duration = Duration::from_secs(2);
/// A second's sample is emitted without an agent that is this many seconds behind the others.
const LATE_SECONDS_MAX: u64 = 3;
/// An agent that sent more than this share of its messages late is reported behind.
const OVERRUN_SHARE_MAX: f64 = 0.01;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToAgent {
    Start { protocol: u32, scenario: Box<Scenario>, agent: usize, agents: usize, start_at_unix_ms: u64 },
    Go { phase: usize },
    Stop,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FromAgent {
    Hello { protocol: u32, machine: Machine, version: String },
    Sample { sample: Sample },
    PhaseDone { report: PhaseReport },
    Finished { histogram: String },
    Error { message: String },
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn send<T: Serialize>(w: &mut (impl AsyncWriteExt + Unpin), msg: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await
}

/// Serves coordinators one after another, forever. `ifaddr`, when given,
/// replaces the scenario's source addresses on this machine.
pub async fn agent(listen: &str, ifaddr: Vec<IpAddr>) -> Result<(), String> {
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("listen on {listen}: {e}"))?;
    log(&format!("agent listening on {}", listener.local_addr().map_err(|e| e.to_string())?));
    loop {
        let (stream, peer) = listener.accept().await.map_err(|e| e.to_string())?;
        log(&format!("coordinator {peer} connected"));
        match serve_coordinator(stream, &ifaddr).await {
            Ok(()) => log(&format!("run for {peer} finished")),
            Err(e) => log(&format!("run for {peer} ended: {e}")),
        }
    }
}

/// A line on stderr; an agent keeps serving when nobody reads its stderr any more.
pub fn log(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

async fn serve_coordinator(stream: TcpStream, ifaddr: &[IpAddr]) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let hello =
        FromAgent::Hello { protocol: PROTOCOL, machine: procfs::machine(), version: env!("CARGO_PKG_VERSION").into() };
    send(&mut write, &hello).await.map_err(|e| e.to_string())?;
    let first = lines.next_line().await.map_err(|e| e.to_string())?.ok_or("coordinator left")?;
    let (mut scenario, start_at) = match serde_json::from_str(&first).map_err(|e| format!("bad start: {e}"))? {
        ToAgent::Start { protocol, scenario, agent, agents, start_at_unix_ms } => {
            if protocol != PROTOCOL {
                let message = format!("agent speaks protocol {PROTOCOL}, coordinator {protocol}");
                let _ = send(&mut write, &FromAgent::Error { message: message.clone() }).await;
                return Err(message);
            }
            (scenario.slice(agent, agents), start_at_unix_ms)
        }
        other => return Err(format!("expected start, got {other:?}")),
    };
    if !ifaddr.is_empty() {
        scenario.target.ifaddr = ifaddr.to_vec();
    }
    if let Err(message) = scenario.check_source_ports() {
        let _ = send(&mut write, &FromAgent::Error { message: message.clone() }).await;
        return Err(message);
    }
    tokio::time::sleep(Duration::from_millis(start_at.saturating_sub(unix_ms()))).await;

    let (go_tx, go_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let engine = tokio::spawn(engine::run(scenario, go_rx, stop_rx, events_tx, true));
    let control = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str(&line) {
                Ok(ToAgent::Go { phase }) => {
                    let _ = go_tx.send(phase);
                }
                Ok(ToAgent::Stop) | Err(_) => break,
                Ok(ToAgent::Start { .. }) => break,
            }
        }
        // The coordinator left or said stop: end the run.
        let _ = stop_tx.send(true);
    });
    while let Some(event) = events.recv().await {
        let msg = match event {
            Event::Sample(sample) => FromAgent::Sample { sample: *sample },
            Event::PhaseDone(report) => FromAgent::PhaseDone { report },
            Event::Finished { histogram } => FromAgent::Finished { histogram },
        };
        let last = matches!(msg, FromAgent::Finished { .. });
        if send(&mut write, &msg).await.is_err() {
            break;
        }
        if last {
            break;
        }
    }
    control.abort();
    match engine.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => {
            let _ = send(&mut write, &FromAgent::Error { message: message.clone() }).await;
            Err(message)
        }
        Err(e) => Err(format!("engine: {e}")),
    }
}

struct Agent {
    status: AgentStatus,
    alive: bool,
    finished: bool,
    phases_done: usize,
    totals: Counters,
    late_seconds: u64,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

/// Runs `scenario` on the agents at `addresses` and merges what they measure.
pub async fn coordinate(scenario: Scenario, addresses: &[String], options: RunOptions) -> Result<RunResult, String> {
    let n = addresses.len();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Result<FromAgent, String>)>();
    let mut agents = Vec::with_capacity(n);
    let start_at = unix_ms() + START_DELAY.as_millis() as u64;
    for (k, address) in addresses.iter().enumerate() {
        let stream = TcpStream::connect(address).await.map_err(|e| format!("agent {address}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (read, mut writer) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let hello = lines.next_line().await.map_err(|e| format!("agent {address}: {e}"))?.ok_or("agent closed")?;
        let machine = match serde_json::from_str(&hello) {
            Ok(FromAgent::Hello { protocol, machine, .. }) if protocol == PROTOCOL => machine,
            Ok(FromAgent::Hello { protocol, .. }) => {
                return Err(format!("agent {address} speaks protocol {protocol}, this coordinator {PROTOCOL}"));
            }
            _ => return Err(format!("agent {address}: no hello")),
        };
        let start = ToAgent::Start {
            protocol: PROTOCOL,
            scenario: Box::new(scenario.clone()),
            agent: k,
            agents: n,
            start_at_unix_ms: start_at,
        };
        send(&mut writer, &start).await.map_err(|e| format!("agent {address}: {e}"))?;
        send(&mut writer, &ToAgent::Go { phase: 0 }).await.map_err(|e| format!("agent {address}: {e}"))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let msg = match lines.next_line().await {
                    Ok(Some(line)) => serde_json::from_str(&line).map_err(|e| format!("bad message: {e}")),
                    Ok(None) => Err("connection closed".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let end = msg.is_err();
                if tx.send((k, msg)).is_err() || end {
                    return;
                }
            }
        });
        let clients = scenario.slice(k, n).total_clients();
        agents.push(Agent {
            status: AgentStatus { name: address.clone(), status: "ok".into(), detail: String::new(), machine, clients },
            alive: true,
            finished: false,
            phases_done: 0,
            totals: Counters::default(),
            late_seconds: 0,
            writer,
        });
    }
    drop(tx);
    let stopper = tokio::spawn(tokio::signal::ctrl_c());

    let phases = scenario.phases.len();
    let mut collector = Collector::new(scenario, options);
    let mut pending: BTreeMap<u64, Vec<Option<Sample>>> = BTreeMap::new();
    let mut newest = vec![0u64; n];
    let mut phase_reports: Vec<Vec<PhaseReport>> = vec![Vec::new(); phases];
    let mut latency = new_histogram();
    let mut stopped = false;
    while agents.iter().any(|a| a.alive && !a.finished) {
        if !stopped && stopper.is_finished() {
            stopped = true;
            for a in agents.iter_mut().filter(|a| a.alive) {
                let _ = send(&mut a.writer, &ToAgent::Stop).await;
            }
        }
        let Ok(Some((k, msg))) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await else {
            continue;
        };
        match msg {
            Ok(FromAgent::Sample { sample }) => {
                newest[k] = sample.t;
                agents[k].totals.add(&sample.delta);
                let slot = pending.entry(sample.t).or_insert_with(|| vec![None; n]);
                slot[k] = Some(sample);
            }
            Ok(FromAgent::PhaseDone { report }) => {
                let i = report.index;
                agents[k].phases_done = i + 1;
                if let Some(r) = phase_reports.get_mut(i) {
                    r.push(report);
                }
                if agents.iter().all(|a| !a.alive || a.phases_done > i) {
                    collector.phase(merge_phase(i, &phase_reports[i]));
                    if i + 1 < phases {
                        for a in agents.iter_mut().filter(|a| a.alive) {
                            let _ = send(&mut a.writer, &ToAgent::Go { phase: i + 1 }).await;
                        }
                    }
                }
            }
            Ok(FromAgent::Finished { histogram }) => {
                agents[k].finished = true;
                match decode_histogram(&histogram) {
                    Ok(h) => {
                        let _ = latency.add(&h);
                    }
                    Err(e) => agents[k].status.detail = e,
                }
            }
            Ok(FromAgent::Error { message }) | Err(message) => {
                if !agents[k].finished {
                    agents[k].alive = false;
                    agents[k].status.status = "failed".into();
                    agents[k].status.detail = message;
                    // Release a phase that waited only for this agent.
                    let done = agents.iter().filter(|a| a.alive).map(|a| a.phases_done).min().unwrap_or(phases);
                    if done > 0 && done <= phases && phase_reports[done - 1].len() < n {
                        collector.phase(merge_phase(done - 1, &phase_reports[done - 1]));
                        if done < phases {
                            for a in agents.iter_mut().filter(|a| a.alive) {
                                let _ = send(&mut a.writer, &ToAgent::Go { phase: done }).await;
                            }
                        }
                    }
                }
            }
            Ok(FromAgent::Hello { .. }) => {}
        }
        emit_complete_seconds(&mut pending, &newest, &mut agents, &mut collector, false);
    }
    emit_complete_seconds(&mut pending, &newest, &mut agents, &mut collector, true);
    stopper.abort();
    let mut statuses = Vec::with_capacity(n);
    for a in agents {
        let mut status = a.status;
        let late_share =
            if a.totals.pub_sent == 0 { 0.0 } else { a.totals.pub_overruns as f64 / a.totals.pub_sent as f64 };
        if status.status == "ok" && (a.late_seconds > 0 || late_share > OVERRUN_SHARE_MAX) {
            status.status = "behind".into();
            status.detail = format!(
                "{} seconds of samples arrived {LATE_SECONDS_MAX}+ s after the other agents'; {:.1}% of its messages were sent late",
                a.late_seconds,
                late_share * 100.0
            );
        }
        if status.status != "ok" {
            log(&format!("agent {}: {} ({})", status.name, status.status, status.detail));
        }
        statuses.push(status);
    }
    Ok(collector.finish(&latency, statuses))
}

fn merge_phase(index: usize, reports: &[PhaseReport]) -> PhaseReport {
    let mut merged = PhaseReport {
        index,
        loadgen_rss_start_bytes: 0,
        loadgen_rss_bytes: 0,
        connections: 0,
        started_s: f64::MAX,
        ended_s: 0.0,
        target_rate: 0.0,
        done: 0,
    };
    for r in reports {
        merged.loadgen_rss_start_bytes += r.loadgen_rss_start_bytes;
        merged.loadgen_rss_bytes += r.loadgen_rss_bytes;
        merged.connections += r.connections;
        merged.started_s = merged.started_s.min(r.started_s);
        merged.ended_s = merged.ended_s.max(r.ended_s);
        merged.target_rate += r.target_rate;
        merged.done += r.done;
    }
    if reports.is_empty() {
        merged.started_s = 0.0;
    }
    merged
}

/// Emits, in order, every second that all live agents reported, and those
/// some agent is more than [`LATE_SECONDS_MAX`] behind on (counting it late).
fn emit_complete_seconds(
    pending: &mut BTreeMap<u64, Vec<Option<Sample>>>,
    newest: &[u64],
    agents: &mut [Agent],
    collector: &mut Collector,
    flush: bool,
) {
    while let Some((&t, slot)) = pending.first_key_value() {
        let missing: Vec<usize> = (0..agents.len()).filter(|&k| agents[k].alive && slot[k].is_none()).collect();
        let leader = newest.iter().copied().max().unwrap_or(0);
        if !missing.is_empty() && !flush && leader < t + LATE_SECONDS_MAX {
            return;
        }
        for k in missing {
            if !agents[k].finished {
                agents[k].late_seconds += 1;
            }
        }
        let Some((_, slot)) = pending.pop_first() else { return };
        collector.sample(merge_second(t, slot.into_iter().flatten()));
    }
}

fn merge_second(t: u64, samples: impl Iterator<Item = Sample>) -> Sample {
    let mut merged = Sample { t, ..Sample::default() };
    let mut histogram = new_histogram();
    for s in samples {
        merged.delta.add(&s.delta);
        merged.connections += s.connections;
        merged.lost_total += s.lost_total;
        merged.target_rate += s.target_rate;
        merged.loadgen_rss_bytes += s.loadgen_rss_bytes;
        if let Some(h) = s.histogram.as_deref().and_then(|h| decode_histogram(h).ok()) {
            let _ = histogram.add(&h);
        }
    }
    merged.latency = LatencySummary::of(&histogram);
    merged
}
