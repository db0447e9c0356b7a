//! Runs cases against a target, with a bounded number at once and a time
//! bound each, and reports them as a table and as JSON.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::case::{Caps, Case, Ctx, Failure};
use crate::client::{Client, Target};
use crate::packets::{ConnectBuilder, Version};

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    pub versions: Vec<Version>,
    /// Only cases whose name or statement ids contain this text.
    pub filter: Option<String>,
    /// Cases run at once.
    pub jobs: usize,
    /// Longest a case may take.
    pub case_timeout: Duration,
    /// Features the operator says the target lacks (`shared`, `wildcard`,
    /// `retain`, `subscription-identifiers`): their cases are skipped.
    pub disabled: Vec<String>,
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    pub name: String,
    pub version: Version,
    pub statements: Vec<String>,
    /// "pass", "fail" or "skip".
    pub result: &'static str,
    pub detail: String,
    pub millis: u64,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub target: String,
    pub cases: Vec<CaseReport>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl RunReport {
    /// Per statement (`version:id`), the worst result of the cases checking it.
    pub fn statements(&self) -> BTreeMap<String, &'static str> {
        let mut out: BTreeMap<String, &'static str> = BTreeMap::new();
        for case in &self.cases {
            for statement in &case.statements {
                let key = format!("{}:{statement}", case.version.name());
                let entry = out.entry(key).or_insert(case.result);
                *entry = worst(entry, case.result);
            }
        }
        out
    }
}

fn worst(a: &'static str, b: &'static str) -> &'static str {
    let rank = |r: &str| match r {
        "fail" => 2,
        "pass" => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Probes which versions the target speaks and what a 5.0 CONNACK announces.
async fn probe(target: &Target, version: Version, run_id: u64) -> Result<Caps, String> {
    let id = format!("p{:x}{}", run_id & 0xFFFF, version.level());
    let connect = ConnectBuilder::new(version, &id)
        .credentials(target.username.as_deref(), target.password.as_deref().map(str::as_bytes));
    let (mut client, connack) = Client::connect(target, &connect).await?;
    let _ = client.send(&crate::packets::disconnect(version, 0, crate::wire::Props::new())).await;
    if connack.code != 0 {
        return Err(format!("the target refused an MQTT {} CONNECT with code 0x{:02x}", version.name(), connack.code));
    }
    Ok(if version.is_v5() { Caps::from_connack(&connack) } else { Caps::default() })
}

/// Runs the selected cases and returns their reports in a stable order.
pub async fn run(options: &Options, cases: Vec<Case>) -> RunReport {
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let run_id = u64::from(std::process::id()) ^ u64::from(clock.subsec_nanos());
    let selected: Vec<Case> = cases
        .into_iter()
        .filter(|c| options.versions.contains(&c.version))
        .filter(|c| match &options.filter {
            None => true,
            Some(text) => c.name.contains(text.as_str()) || c.statements.iter().any(|s| s.contains(text.as_str())),
        })
        .collect();
    let mut caps_by_version = BTreeMap::new();
    for version in &options.versions {
        caps_by_version.insert(*version, probe(&options.target, *version, run_id).await);
    }
    let semaphore = Arc::new(Semaphore::new(options.jobs.max(1)));
    let mut tasks = JoinSet::new();
    for case in selected {
        let caps = caps_by_version.get(&case.version).cloned().unwrap_or_else(|| Err("not probed".into()));
        let semaphore = Arc::clone(&semaphore);
        let target = options.target.clone();
        let timeout = options.case_timeout;
        let disabled = options.disabled.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let started = Instant::now();
            let outcome = match caps {
                Err(why) => Err(Failure::Skip(why)),
                Ok(mut caps) => {
                    apply_disabled(&mut caps, &disabled);
                    let ctx = Ctx::new(target, case.version, caps, case.name, run_id);
                    match tokio::time::timeout(timeout, (case.run)(ctx)).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(Failure::Fail(format!("the case did not finish within {timeout:?}"))),
                    }
                }
            };
            let (result, detail) = match outcome {
                Ok(()) => ("pass", String::new()),
                Err(Failure::Fail(why)) => ("fail", why),
                Err(Failure::Skip(why)) => ("skip", why),
            };
            CaseReport {
                name: case.name.to_string(),
                version: case.version,
                statements: case.statements.iter().map(|s| s.to_string()).collect(),
                result,
                detail,
                millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }
        });
    }
    let mut reports = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(report) = done {
            reports.push(report);
        }
    }
    reports.sort_by(|a, b| (a.version, &a.name).cmp(&(b.version, &b.name)));
    let count = |r: &str| reports.iter().filter(|c| c.result == r).count();
    RunReport {
        target: format!("{}:{}", options.target.host, options.target.port),
        passed: count("pass"),
        failed: count("fail"),
        skipped: count("skip"),
        cases: reports,
    }
}

fn apply_disabled(caps: &mut Caps, disabled: &[String]) {
    for feature in disabled {
        match feature.as_str() {
            "shared" => caps.shared_subscriptions = false,
            "wildcard" => caps.wildcard_subscriptions = false,
            "retain" => caps.retain = false,
            "subscription-identifiers" => caps.subscription_identifiers = false,
            _ => {}
        }
    }
}
