//! The Markdown document: warnings, how the runs ran, the summary table, the
//! plots and each run's phases.

use std::fmt::Write as _;

use super::charts::Plot;
use super::format::{self, NONE, cell};
use super::input::{Figures, Run};
use crate::result::{Machine, RunResult};

/// `dir_name` is the plots' directory relative to the Markdown file.
pub fn render(title: &str, runs: &[Run], dir_name: &str, plots: &[Plot]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {title}\n");
    warnings(&mut md, runs);
    how_it_ran(&mut md, runs);
    summary(&mut md, runs);
    plots_section(&mut md, dir_name, plots);
    phases(&mut md, runs);
    md
}

/// Agents that were not "ok", at the top, where nobody can miss them.
fn warnings(md: &mut String, runs: &[Run]) {
    for run in runs {
        for agent in run.result.agents.iter().filter(|a| a.status != "ok") {
            let detail = if agent.detail.is_empty() { String::new() } else { format!(": {}", agent.detail) };
            let _ = writeln!(
                md,
                "> **Warning**: {}: agent `{}` is **{}**{}\n",
                run.name,
                agent.name,
                agent.status,
                detail.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }
}

fn how_it_ran(md: &mut String, runs: &[Run]) {
    md.push_str("## How it ran\n\n");
    let first = runs.first().map(|r| machine(&r.result.machine));
    let shared = first.filter(|m| runs.iter().all(|r| machine(&r.result.machine) == *m));
    if let Some(m) = &shared {
        let _ = writeln!(md, "Machine: {m}.\n");
    }
    for run in runs {
        let r = &run.result;
        let _ = writeln!(md, "### {}\n", run.name);
        let _ = writeln!(md, "- File: `{}`", run.path.display());
        let _ = writeln!(
            md,
            "- Started {}, ran {:.1} s, loadgen {}",
            format::date(r.started_at_unix),
            r.duration_s,
            r.loadgen_version
        );
        if shared.is_none() {
            let _ = writeln!(md, "- Machine: {}", machine(&r.machine));
        }
        let _ = writeln!(md, "- {}", scenario_line(r));
        if !r.labels.is_empty() {
            let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
            let _ = writeln!(md, "- Labels: {}", labels.join(", "));
        }
        let _ = writeln!(md, "- Command line:\n\n  ```sh\n  {}\n  ```\n", format::command_line(&r.command_line));
        md.push_str("| agent | status | clients | machine | detail |\n|---|---|---:|---|---|\n");
        for a in &r.agents {
            let status = if a.status == "ok" { a.status.clone() } else { format!("**{}**", a.status) };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                cell(&a.name),
                cell(&status),
                format::int(a.clients),
                cell(&a.machine.hostname),
                cell(&a.detail)
            );
        }
        if r.agents.is_empty() {
            md.push_str("| (none recorded) | | | | |\n");
        }
        md.push('\n');
    }
}

fn machine(m: &Machine) -> String {
    format!(
        "`{}`: {}, {} cores, {} memory, kernel {}",
        m.hostname,
        if m.cpu_model.is_empty() { "unknown CPU" } else { &m.cpu_model },
        m.cores,
        format::bytes(m.memory_bytes as f64),
        if m.kernel.is_empty() { "unknown" } else { &m.kernel }
    )
}

fn scenario_line(r: &RunResult) -> String {
    let s = &r.scenario;
    let version = match s.target.version {
        3 => "MQTT 3.1".to_string(),
        4 => "MQTT 3.1.1".to_string(),
        5 => "MQTT 5.0".to_string(),
        v => format!("protocol level {v}"),
    };
    let description = if s.description.is_empty() { String::new() } else { format!(" ({})", s.description.trim()) };
    format!(
        "Scenario `{}`{description}: {} clients, {} phases, against {} port {}, {version}",
        s.name,
        format::int(s.total_clients()),
        s.phases.len(),
        s.target.hosts.join(", "),
        s.target.port
    )
}

fn summary(md: &mut String, runs: &[Run]) {
    md.push_str("## Summary\n\n");
    md.push_str(
        "| input | clients | connections peak | connect rate (/s) | publish target (msg/s) \
         | publish achieved (msg/s) | received (msg/s) | lost | duplicates | out of order | overruns \
         | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | broker CPU s | broker CPU s / M msgs \
         | broker max RSS | broker RSS / conn | loadgen RSS / conn |\n",
    );
    md.push_str("|---|");
    md.push_str(&"---:|".repeat(20));
    md.push('\n');
    for run in runs {
        md.push_str(&summary_row(run));
        md.push('\n');
    }
    md.push_str(
        "\nConnect rate: connections made per second of the connect phases. Publish target and achieved: \
         messages per second of each publish phase (phases separated by `/`, \"unbounded\" when a phase had \
         no rate). Received: messages received per second of the time the publish phases covered. Lost, \
         duplicates and out of order come from per-publisher sequence numbers; overruns are publishes sent \
         late against their schedule. Latency is receive time minus the *scheduled* send time carried in \
         the payload, over the whole run. Broker CPU s / M msgs: the broker's CPU seconds per million \
         messages received. Broker RSS / conn: its RSS growth over the connect phases per connection open \
         after them. Loadgen RSS / conn: the load generator's own memory per connection held.\n\n",
    );
}

/// One row of the summary table.
pub fn summary_row(run: &Run) -> String {
    let r = &run.result;
    let f = Figures::of(r);
    let opt = |v: Option<String>| v.unwrap_or_else(|| NONE.to_string());
    let publish_rate = |pick: fn(&(f64, f64)) -> String| {
        if f.publish.is_empty() { NONE.to_string() } else { f.publish.iter().map(pick).collect::<Vec<_>>().join(" / ") }
    };
    let target = publish_rate(|(t, _)| if *t > 0.0 { format::rate(*t) } else { "unbounded".to_string() });
    let achieved = publish_rate(|(t, a)| match format::percent_of(*a, *t) {
        Some(p) => format!("{} ({p})", format::rate(*a)),
        None => format::rate(*a),
    });
    let l = &r.latency;
    let latency = |us: u64| if l.count == 0 { NONE.to_string() } else { format::ms(us) };
    let broker = r.broker.as_ref();
    let cells = [
        cell(&run.name),
        format::int(f.clients),
        format::int(f.connections_peak),
        opt(f.connect_rate.map(format::rate)),
        target,
        achieved,
        opt(f.received_per_s.map(format::rate)),
        format::int(r.totals.lost),
        format::int(r.totals.duplicates),
        format::int(r.totals.out_of_order),
        format::int(r.totals.pub_overruns),
        latency(l.p50_us),
        latency(l.p90_us),
        latency(l.p99_us),
        latency(l.p999_us),
        latency(l.max_us),
        opt(broker.map(|b| format!("{:.2}", b.cpu_seconds))),
        opt(f.broker_cpu_s_per_million.map(|c| format!("{c:.2}"))),
        opt(broker.map(|b| format::bytes(b.rss_max_bytes as f64))),
        opt(f.broker_rss_per_connection.map(format::bytes)),
        opt(r.loadgen_rss_per_connection_bytes.map(format::bytes)),
    ];
    format!("| {} |", cells.join(" | "))
}

fn plots_section(md: &mut String, dir_name: &str, plots: &[Plot]) {
    md.push_str("## Plots\n\n");
    for p in plots {
        let _ = writeln!(md, "### {}\n", p.title);
        if p.written.is_some() {
            let _ = writeln!(md, "![{}]({})\n", p.title, format::link(&format!("{dir_name}/{}", p.file)));
            let _ = writeln!(md, "{}\n", p.reading);
        } else {
            let _ = writeln!(md, "*Not drawn: {}*\n", p.when_empty);
        }
    }
}

fn phases(md: &mut String, runs: &[Run]) {
    md.push_str("## Phases\n\n");
    for run in runs {
        let _ = writeln!(md, "### {}\n", run.name);
        md.push_str("| # | phase | group | start s | end s | target rate | achieved rate | of target | done |\n");
        md.push_str("|---:|---|---|---:|---:|---:|---:|---:|---:|\n");
        for p in &run.result.phases {
            let rated = matches!(p.kind.as_str(), "connect" | "publish");
            let target = match (rated, p.target_rate > 0.0) {
                (true, true) => format::rate(p.target_rate),
                (true, false) => "unbounded".to_string(),
                (false, _) => NONE.to_string(),
            };
            let achieved =
                if rated || p.achieved_rate > 0.0 { format::rate(p.achieved_rate) } else { NONE.to_string() };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {:.1} | {target} | {achieved} | {} | {} |",
                p.index + 1,
                cell(&p.kind),
                cell(if p.group.is_empty() { NONE } else { &p.group }),
                p.started_s,
                p.ended_s,
                format::percent_of(p.achieved_rate, p.target_rate).unwrap_or_else(|| NONE.to_string()),
                format::int(p.done),
            );
        }
        if run.result.phases.is_empty() {
            md.push_str("| | (no phases recorded) | | | | | | | |\n");
        }
        md.push('\n');
    }
    md.push_str("Rates are connections/s for connect phases and messages/s for publish phases.\n");
}
