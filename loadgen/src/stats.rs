//! Counters and latency histograms shared by every connection of a process,
//! sampled once a second.
//!
//! Counters are plain atomics (two cores contend on a cache line, which costs
//! less than any queue). Latencies go to a histogram shard picked by the
//! connection's index, so that a record takes an uncontended lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds up to this bound; longer ones are clamped.
pub const LATENCY_US_MAX: u64 = 600_000_000;
const SHARDS: usize = 16;

/// Monotonic totals. The same struct carries a per-second delta in [`Sample`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub connects_ok: u64,
    pub connects_failed: u64,
    pub connects_retried: u64,
    /// Connections lost after CONNACK (closed by the broker or the network).
    pub disconnects: u64,
    pub subscribes_ok: u64,
    pub subscribes_failed: u64,
    pub pub_sent: u64,
    /// PUBACK or PUBCOMP received (QoS 1/2 only).
    pub pub_acked: u64,
    /// Publishes sent later than their scheduled time by more than the overrun threshold.
    pub pub_overruns: u64,
    pub received: u64,
    pub received_bytes: u64,
    /// Sequence numbers skipped, net of late arrivals that filled the gap.
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.connects_ok += o.connects_ok;
        self.connects_failed += o.connects_failed;
        self.connects_retried += o.connects_retried;
        self.disconnects += o.disconnects;
        self.subscribes_ok += o.subscribes_ok;
        self.subscribes_failed += o.subscribes_failed;
        self.pub_sent += o.pub_sent;
        self.pub_acked += o.pub_acked;
        self.pub_overruns += o.pub_overruns;
        self.received += o.received;
        self.received_bytes += o.received_bytes;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
    }

    /// `self - earlier`, field by field (saturating: `lost` can shrink when a gap fills).
    pub fn delta(&self, earlier: &Counters) -> Counters {
        Counters {
            connects_ok: self.connects_ok.saturating_sub(earlier.connects_ok),
            connects_failed: self.connects_failed.saturating_sub(earlier.connects_failed),
            connects_retried: self.connects_retried.saturating_sub(earlier.connects_retried),
            disconnects: self.disconnects.saturating_sub(earlier.disconnects),
            subscribes_ok: self.subscribes_ok.saturating_sub(earlier.subscribes_ok),
            subscribes_failed: self.subscribes_failed.saturating_sub(earlier.subscribes_failed),
            pub_sent: self.pub_sent.saturating_sub(earlier.pub_sent),
            pub_acked: self.pub_acked.saturating_sub(earlier.pub_acked),
            pub_overruns: self.pub_overruns.saturating_sub(earlier.pub_overruns),
            received: self.received.saturating_sub(earlier.received),
            received_bytes: self.received_bytes.saturating_sub(earlier.received_bytes),
            lost: self.lost.saturating_sub(earlier.lost),
            duplicates: self.duplicates.saturating_sub(earlier.duplicates),
            out_of_order: self.out_of_order.saturating_sub(earlier.out_of_order),
        }
    }
}

/// One second of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run started (1 = the first second).
    pub t: u64,
    /// What happened during this second.
    pub delta: Counters,
    /// Connections open at the end of the second.
    pub connections: u64,
    /// Sequence numbers missing so far (a level: late arrivals lower it).
    #[serde(default)]
    pub lost_total: u64,
    /// Publish rate the schedule asked for during this second (messages/s).
    pub target_rate: f64,
    /// Latency of the messages received during this second.
    pub latency: LatencySummary,
    /// Filled when `--broker-pid` was given: CPU used by the broker during this
    /// second (percent of one core) and its RSS.
    pub broker_cpu_percent: Option<f64>,
    pub broker_rss_bytes: Option<u64>,
    /// The load generator's own RSS (per process; summed over agents).
    pub loadgen_rss_bytes: u64,
    /// Serialized histogram of this second, only between an agent and its coordinator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<String>,
}

/// Percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    // 3 significant figures: 0.1% resolution, as wrk2 and HdrHistogram's own tools use.
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).unwrap_or_else(|_| Histogram::new(3).expect("3 sigfig is valid"))
}

pub fn encode_histogram(h: &Histogram<u64>) -> String {
    use base64::Engine as _;
    let mut bytes = Vec::new();
    if V2DeflateSerializer::new().serialize(h, &mut bytes).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn decode_histogram(s: &str) -> Result<Histogram<u64>, String> {
    use base64::Engine as _;
    if s.is_empty() {
        return Ok(new_histogram());
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| format!("histogram base64: {e}"))?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|e| format!("histogram: {e:?}"))
}

macro_rules! atomic_counters {
    ($($field:ident),* $(,)?) => {
        /// The live counters of one process.
        #[derive(Debug, Default)]
        pub struct LiveCounters { $(pub $field: AtomicU64,)* }

        impl LiveCounters {
            pub fn snapshot(&self) -> Counters {
                Counters { $($field: self.$field.load(Relaxed),)* }
            }
        }
    };
}

atomic_counters!(
    connects_ok,
    connects_failed,
    connects_retried,
    disconnects,
    subscribes_ok,
    subscribes_failed,
    pub_sent,
    pub_acked,
    pub_overruns,
    received,
    received_bytes,
    lost,
    duplicates,
    out_of_order,
);

/// Everything the connections of one process record into.
#[derive(Debug)]
pub struct Stats {
    pub counters: LiveCounters,
    /// Connections currently open.
    pub connections: AtomicU64,
    /// `lost` can shrink when a late message fills a gap; kept signed here.
    lost_net: std::sync::atomic::AtomicI64,
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            counters: LiveCounters::default(),
            connections: AtomicU64::new(0),
            lost_net: std::sync::atomic::AtomicI64::new(0),
            shards: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
        }
    }
}

impl Stats {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Records a change in the count of missing sequence numbers.
    pub fn lost_changed(&self, by: i64) {
        let now = self.lost_net.fetch_add(by, Relaxed) + by;
        self.counters.lost.store(u64::try_from(now).unwrap_or(0), Relaxed);
    }

    pub fn record_latency(&self, shard: usize, us: u64) {
        self.shards[shard % SHARDS].lock().saturating_record(us.clamp(1, LATENCY_US_MAX));
    }

    /// Takes the latencies recorded since the last call.
    pub fn take_latencies(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in &self.shards {
            let mut h = shard.lock();
            let _ = all.add(&*h);
            h.reset();
        }
        all
    }
}
