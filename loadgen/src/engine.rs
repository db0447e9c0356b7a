//! Runs one process's share of a scenario: phase after phase, each started
//! only when the controller says go (at once for a local run; when every
//! agent finished the previous phase for a coordinated one), and a sample of
//! the counters every second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use mqtt_codec::QoS;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::driver::{spawn_client, unix_ns};
use crate::scenario::{Phase, Scenario, parse_duration};
use crate::session::{ConnectOptions, protocol_version};
use crate::stats::{LatencySummary, Sample, Stats, encode_histogram, new_histogram};
use crate::template::Template;
use crate::transport::Dialer;

/// How long a subscribe phase waits for its SUBACKs.
const SUBACK_WAIT_MAX: Duration = Duration::from_secs(60);
/// How long a disconnect phase waits for the connections to close.
const DISCONNECT_WAIT_MAX: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// What every client of the process shares.
#[derive(Debug)]
pub struct RunShared {
    pub stats: Stats,
    /// Targets, source addresses and the transport's shared state.
    pub dialer: Dialer,
    pub connect_timeout: Duration,
    pub connect_retries: u32,
    /// Whether a connect failure's reason was printed already (once per run).
    pub connect_failure_shown: AtomicBool,
    rng: Mutex<StdRng>,
}

impl RunShared {
    /// A number in 1..=n, for `%rand_N`.
    pub fn random(&self, n: u64) -> u64 {
        self.rng.lock().random_range(1..=n.max(1))
    }
}

/// What the clients of one group are told to do; each client compares it
/// with what it has done.
#[derive(Debug, Clone, Default)]
pub struct Command {
    /// Every subscription so far, in order.
    pub subscriptions: Vec<Arc<SubscribeSpec>>,
    pub publish: Option<Arc<PublishSpec>>,
    pub disconnect: bool,
}

#[derive(Debug)]
pub struct SubscribeSpec {
    pub topic: Template,
    pub qos: QoS,
    pub shared: bool,
}

#[derive(Debug)]
pub struct PublishSpec {
    pub group_ordinal: usize,
    pub topic: Template,
    pub qos: QoS,
    pub retain: bool,
    /// Zeroes of the payload size; the header is written over a copy in the output buffer.
    pub body: Bytes,
    pub interval: Duration,
    pub limit: Option<u64>,
    pub inflight: u16,
    /// The phase's start on the monotonic clock and on the wall clock, read together.
    pub start: Instant,
    pub start_unix_ns: u64,
    /// Clients of the group in this process, to spread their schedules.
    pub clients: u64,
    /// Clients that reached the limit.
    pub done: AtomicU64,
}

#[derive(Debug)]
pub struct GroupShared {
    pub ordinal: usize,
    pub name: String,
    /// Clients of the group in this process, numbered from `start`.
    pub start: u64,
    pub count: u64,
    pub prefix: String,
    pub connect: ConnectOptions,
    pub commands: watch::Sender<Command>,
    pub connected: AtomicU64,
    /// Clients whose connect attempts are over, successful or not.
    pub settled: AtomicU64,
    pub subscribes_answered: AtomicU64,
}

/// What the engine reports to its controller.
#[derive(Debug)]
pub enum Event {
    Sample(Box<Sample>),
    PhaseDone(PhaseReport),
    /// The run is over; the full latency histogram, serialized.
    Finished {
        histogram: String,
    },
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PhaseReport {
    pub index: usize,
    /// This process's RSS when the run began and when the phase ended, and its open connections then.
    pub loadgen_rss_start_bytes: u64,
    pub loadgen_rss_bytes: u64,
    pub connections: u64,
    pub started_s: f64,
    pub ended_s: f64,
    pub target_rate: f64,
    pub done: u64,
}

/// Runs `scenario` (this process's slice). Phase i starts when `go` yields i.
/// `stop` ends the run early (Ctrl-C): the current phase is cut short and the
/// clients disconnect.
pub async fn run(
    scenario: Scenario,
    mut go: mpsc::UnboundedReceiver<usize>,
    mut stop: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<Event>,
    with_histograms: bool,
) -> Result<(), String> {
    let version = protocol_version(scenario.target.version).ok_or("protocol version must be 3, 4 or 5")?;
    let run = Arc::new(RunShared {
        stats: Stats::default(),
        dialer: Dialer::new(&scenario.target)?,
        connect_timeout: Duration::from_millis(scenario.target.connect_timeout_ms),
        connect_retries: scenario.target.connect_retries,
        connect_failure_shown: AtomicBool::new(false),
        rng: Mutex::new(StdRng::seed_from_u64(unix_ns())),
    });
    let groups: Vec<Arc<GroupShared>> = scenario
        .groups
        .iter()
        .enumerate()
        .map(|(ordinal, g)| {
            Arc::new(GroupShared {
                ordinal,
                name: g.name.clone(),
                start: g.start,
                count: g.count,
                prefix: g.prefix(),
                connect: ConnectOptions {
                    version,
                    keep_alive: scenario.target.keep_alive,
                    clean_start: scenario.target.clean_start,
                    session_expiry: scenario.target.session_expiry,
                    username: scenario.target.username.as_deref().map(ByteString::from),
                    password: scenario.target.password.as_deref().map(|p| Bytes::copy_from_slice(p.as_bytes())),
                },
                commands: watch::channel(Command::default()).0,
                connected: AtomicU64::new(0),
                settled: AtomicU64::new(0),
                subscribes_answered: AtomicU64::new(0),
            })
        })
        .collect();

    let rss_start = crate::procfs::rss_bytes(std::process::id()).unwrap_or(0);
    let origin = Instant::now();
    let target_rate = Arc::new(AtomicU64::new(0f64.to_bits()));
    let (finish, finished) = watch::channel(false);
    let sampler = tokio::spawn(sample_every_second(
        run.clone(),
        origin,
        target_rate.clone(),
        events.clone(),
        with_histograms,
        finished,
    ));

    for (index, phase) in scenario.phases.iter().enumerate() {
        if *stop.borrow() {
            break;
        }
        match go.recv().await {
            Some(i) if i == index => {}
            Some(i) => return Err(format!("controller said go for phase {i}, expected {index}")),
            None => break,
        }
        let started_s = origin.elapsed().as_secs_f64();
        let (target, done) = run_phase(&run, &groups, phase, &mut stop, &target_rate).await?;
        target_rate.store(0f64.to_bits(), Relaxed);
        let ended_s = origin.elapsed().as_secs_f64();
        let _ = events.send(Event::PhaseDone(PhaseReport {
            index,
            loadgen_rss_start_bytes: rss_start,
            loadgen_rss_bytes: crate::procfs::rss_bytes(std::process::id()).unwrap_or(0),
            connections: run.stats.connections.load(Relaxed),
            started_s,
            ended_s,
            target_rate: target,
            done,
        }));
    }
    // Whatever the scenario did, leave nothing connected.
    for g in &groups {
        g.commands.send_modify(|c| c.disconnect = true);
    }
    let all_closed = || groups.iter().all(|g| g.connected.load(Relaxed) == 0);
    wait_until(DISCONNECT_WAIT_MAX, None, all_closed).await;
    let _ = finish.send(true);
    let total = sampler.await.map_err(|e| format!("sampler: {e}"))?;
    let _ = events.send(Event::Finished { histogram: encode_histogram(&total) });
    Ok(())
}

/// Runs one phase; returns its target rate (0 when unbounded) and how many operations it did.
async fn run_phase(
    run: &Arc<RunShared>,
    groups: &[Arc<GroupShared>],
    phase: &Phase,
    stop: &mut watch::Receiver<bool>,
    target_rate: &AtomicU64,
) -> Result<(f64, u64), String> {
    let group_of = |name: &str| groups.iter().find(|g| g.name == name).cloned();
    match phase {
        Phase::Connect { group, rate, wait } => {
            let g = group_of(group).ok_or_else(|| format!("no group {group}"))?;
            let before = run.stats.counters.connects_ok.load(Relaxed);
            let start = Instant::now();
            let interval = rate.map(|r| Duration::from_secs_f64(1.0 / r));
            let mut stopped = false;
            for slot in 0..g.count {
                if let Some(interval) = interval {
                    let at = start + interval.mul_f64(slot as f64);
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        _ = stop.changed() => { stopped = true; }
                    }
                }
                if stopped || *stop.borrow() {
                    break;
                }
                spawn_client(run.clone(), g.clone(), g.start + slot, slot);
            }
            if *wait {
                let settled = || g.settled.load(Relaxed) >= g.count;
                wait_until(Duration::MAX, Some(stop), settled).await;
            }
            Ok((rate.unwrap_or(0.0), run.stats.counters.connects_ok.load(Relaxed) - before))
        }
        Phase::Subscribe { group, topic, qos } => {
            let g = group_of(group).ok_or_else(|| format!("no group {group}"))?;
            let spec = Arc::new(SubscribeSpec {
                topic: Template::parse(topic)?,
                qos: QoS::from_u8(*qos).ok_or("qos")?,
                shared: topic.starts_with("$share/") || topic.starts_with("$queue/"),
            });
            let before = g.subscribes_answered.load(Relaxed);
            let expected = before + g.connected.load(Relaxed);
            g.commands.send_modify(|c| c.subscriptions.push(spec));
            let answered = || g.subscribes_answered.load(Relaxed) >= expected;
            wait_until(SUBACK_WAIT_MAX, Some(stop), answered).await;
            Ok((0.0, g.subscribes_answered.load(Relaxed) - before))
        }
        Phase::Publish { group, topic, qos, size, rate, interval_ms, duration, limit, inflight, retain } => {
            let g = group_of(group).ok_or_else(|| format!("no group {group}"))?;
            let clients = g.count.max(1);
            let interval = match (rate, interval_ms) {
                (Some(r), _) => Duration::from_secs_f64(clients as f64 / r),
                (None, Some(ms)) => Duration::from_secs_f64(ms / 1000.0),
                (None, None) => return Err("publish phase needs rate or interval_ms".into()),
            };
            let target = clients as f64 / interval.as_secs_f64();
            target_rate.store(target.to_bits(), Relaxed);
            let start = Instant::now();
            let spec = Arc::new(PublishSpec {
                group_ordinal: g.ordinal,
                topic: Template::parse(topic)?,
                qos: QoS::from_u8(*qos).ok_or("qos")?,
                retain: *retain,
                body: Bytes::from(vec![0u8; *size]),
                interval,
                limit: *limit,
                inflight: *inflight,
                start,
                start_unix_ns: unix_ns(),
                clients: g.count,
                done: AtomicU64::new(0),
            });
            let before = run.stats.counters.pub_sent.load(Relaxed);
            g.commands.send_modify(|c| c.publish = Some(spec.clone()));
            let max = match duration {
                Some(d) => parse_duration(d)?,
                None => Duration::MAX,
            };
            let all_done = || limit.is_some() && spec.done.load(Relaxed) >= g.connected.load(Relaxed);
            wait_until(max, Some(stop), all_done).await;
            g.commands.send_modify(|c| c.publish = None);
            let _ = start;
            Ok((target, run.stats.counters.pub_sent.load(Relaxed) - before))
        }
        Phase::Hold { duration } => {
            let d = match duration {
                Some(d) => parse_duration(d)?,
                None => Duration::MAX,
            };
            wait_until(d, Some(stop), || false).await;
            Ok((0.0, 0))
        }
        Phase::Disconnect { group } => {
            let chosen: Vec<_> =
                groups.iter().filter(|g| group.as_ref().is_none_or(|name| *name == g.name)).cloned().collect();
            let before: u64 = chosen.iter().map(|g| g.connected.load(Relaxed)).sum();
            for g in &chosen {
                g.commands.send_modify(|c| c.disconnect = true);
            }
            let closed = || chosen.iter().all(|g| g.connected.load(Relaxed) == 0);
            wait_until(DISCONNECT_WAIT_MAX, Some(stop), closed).await;
            Ok((0.0, before))
        }
    }
}

/// Waits until `done()` holds, `max` passes, or the run is stopped.
async fn wait_until(max: Duration, mut stop: Option<&mut watch::Receiver<bool>>, done: impl Fn() -> bool) {
    let deadline = Instant::now().checked_add(max);
    loop {
        if done() || stop.as_ref().is_some_and(|s| *s.borrow()) {
            return;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
        let mut tick = POLL;
        if let Some(d) = deadline {
            tick = tick.min(d.saturating_duration_since(Instant::now()));
        }
        match stop.as_mut() {
            Some(s) => {
                tokio::select! {
                    () = tokio::time::sleep(tick) => {}
                    _ = s.changed() => {}
                }
            }
            None => tokio::time::sleep(tick).await,
        }
    }
}

/// Emits one [`Sample`] per second until `finished` turns true, then a last
/// one, and returns every latency recorded.
async fn sample_every_second(
    run: Arc<RunShared>,
    origin: Instant,
    target_rate: Arc<AtomicU64>,
    events: mpsc::UnboundedSender<Event>,
    with_histograms: bool,
    mut finished: watch::Receiver<bool>,
) -> hdrhistogram::Histogram<u64> {
    let mut total = new_histogram();
    // From zero, not from a first reading: the clients may start before this task first runs.
    let mut last = crate::stats::Counters::default();
    let mut ticker = tokio::time::interval_at(origin + Duration::from_secs(1), Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut t = 0;
    loop {
        let last_one = tokio::select! {
            _ = ticker.tick() => false,
            _ = finished.changed() => true,
        };
        t += 1;
        let now = run.stats.counters.snapshot();
        let second = run.stats.take_latencies();
        let _ = total.add(&second);
        let sample = Sample {
            t,
            delta: now.delta(&last),
            connections: run.stats.connections.load(Relaxed),
            lost_total: now.lost,
            target_rate: f64::from_bits(target_rate.load(Relaxed)),
            latency: LatencySummary::of(&second),
            broker_cpu_percent: None,
            broker_rss_bytes: None,
            loadgen_rss_bytes: crate::procfs::rss_bytes(std::process::id()).unwrap_or(0),
            histogram: with_histograms.then(|| encode_histogram(&second)),
        };
        last = now;
        let _ = events.send(Event::Sample(Box::new(sample)));
        if last_one {
            return total;
        }
    }
}

#[cfg(test)]
impl RunShared {
    pub fn for_test() -> Self {
        Self {
            stats: Stats::default(),
            dialer: Dialer::for_test(),
            connect_timeout: Duration::from_secs(1),
            connect_retries: 0,
            connect_failure_shown: AtomicBool::new(false),
            rng: Mutex::new(StdRng::seed_from_u64(1)),
        }
    }
}

#[cfg(test)]
impl GroupShared {
    pub fn for_test() -> Self {
        Self {
            ordinal: 0,
            name: "g".into(),
            start: 0,
            count: 1,
            prefix: "g".into(),
            connect: ConnectOptions {
                version: mqtt_codec::ProtocolVersion::V5,
                keep_alive: 30,
                clean_start: true,
                session_expiry: 0,
                username: None,
                password: None,
            },
            commands: watch::channel(Command::default()).0,
            connected: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            subscribes_answered: AtomicU64::new(0),
        }
    }
}
