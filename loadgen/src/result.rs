//! The JSON a run writes: what ran, where, and what was measured.
//!
//! One schema for a local run, an agent's share and a coordinator's merge, so
//! that `loadgen report` reads all three alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;
use crate::stats::{Counters, LatencySummary, Sample};

/// Bumped when a field changes meaning; `loadgen report` refuses other versions.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub schema: u32,
    pub loadgen_version: String,
    /// The command line, one argument per element.
    pub command_line: Vec<String>,
    /// Free-form labels from `--label key=value` (broker name, version, scenario id).
    pub labels: BTreeMap<String, String>,
    /// Wall-clock start, seconds since the Unix epoch.
    pub started_at_unix: f64,
    pub duration_s: f64,
    pub machine: Machine,
    pub scenario: Scenario,
    /// One entry per agent; a local run has one agent named "local".
    pub agents: Vec<AgentStatus>,
    /// One sample per second of the run, summed over the agents.
    pub series: Vec<Sample>,
    pub phases: Vec<PhaseResult>,
    pub totals: Counters,
    pub latency: LatencySummary,
    /// hdrhistogram V2 + DEFLATE serialization, base64: end-to-end latency in microseconds.
    pub latency_histogram: String,
    /// Present when `--broker-pid` was given.
    pub broker: Option<BrokerUsage>,
    /// The load generator's own memory (RSS) after the connect phases, per connection held.
    pub loadgen_rss_per_connection_bytes: Option<f64>,
}

/// Where the run ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub hostname: String,
    pub cpu_model: String,
    pub cores: usize,
    pub memory_bytes: u64,
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    pub name: String,
    /// "ok", "behind" (its samples arrived late or it missed its publish
    /// schedule) or "failed".
    pub status: String,
    pub detail: String,
    pub machine: Machine,
    pub clients: u64,
}

/// One phase of the scenario as it ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseResult {
    pub index: usize,
    pub kind: String,
    pub group: String,
    /// Seconds since the run started.
    pub started_s: f64,
    pub ended_s: f64,
    /// Connections/s for connect phases, messages/s for publish phases; 0 when unbounded.
    pub target_rate: f64,
    pub achieved_rate: f64,
    /// Operations done in the phase (connections made, messages published, ...).
    pub done: u64,
}

/// The broker's resource use, sampled from /proc while the run ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BrokerUsage {
    pub pid: u32,
    /// utime + stime over the run.
    pub cpu_seconds: f64,
    pub rss_max_bytes: u64,
    /// RSS when the last connect phase ended (compare with `rss_before_bytes`).
    pub rss_after_connect_bytes: u64,
    pub rss_before_bytes: u64,
}
