//! Scenarios: a topology, a workload and a fault schedule, all drawn from
//! one seed. Each named kind draws from its own ranges; `swarm` draws the
//! kind of faults too. The kinds added after the first four are drawn in
//! `scenario/kinds.rs`; the first four keep their draws, so that a seed
//! named in a regression test keeps meaning the same run.

mod kinds;
mod wills;

use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::{Millis, NodeIx};

/// The named scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// One node, no cluster: subscribers (persistent or clean, some
    /// churning) and publishers, no faults.
    Single,
    /// Three nodes, clients spread over them, one or two partitions that
    /// isolate a node and heal.
    Partition,
    /// Three nodes, one or two node crashes, each followed by a restart.
    Crash,
    /// One to five nodes, any mix of partitions, one-way UDP cuts,
    /// crashes with restarts and latency.
    Swarm,
    /// Three nodes; persistent clients reconnect to another node while
    /// still connected to the first, some while the first is partitioned
    /// from the cluster, some with the cluster whole.
    Takeover,
    /// Three nodes; a QoS 1 `$share` group with members on every node that
    /// disconnect and come back, and a node crash, while messages flow.
    Shared,
    /// Three nodes; retained writes (sets and clears) to the same topics on
    /// both sides of a partition, then the heal.
    Retained,
    /// Three nodes, each crashed and restarted in turn while traffic flows.
    Rolling,
    /// Three nodes; the third starts late, with a client holding hundreds of
    /// subscriptions waiting for it.
    LateJoin,
    /// Three nodes; one or two one-way cuts between two nodes (each still
    /// reaches the third).
    OneWay,
    /// Three nodes; links slow down (fixed latency) and jitter (latency
    /// drawn per message, which reorders segments and datagrams on the wire).
    Latency,
    /// Three nodes; many subscribers disconnecting and reconnecting often
    /// while publishers run, no network faults.
    Churn,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Single,
        Kind::Partition,
        Kind::Crash,
        Kind::Swarm,
        Kind::Takeover,
        Kind::Shared,
        Kind::Retained,
        Kind::Rolling,
        Kind::LateJoin,
        Kind::OneWay,
        Kind::Latency,
        Kind::Churn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Single => "single",
            Kind::Partition => "partition",
            Kind::Crash => "crash",
            Kind::Swarm => "swarm",
            Kind::Takeover => "takeover",
            Kind::Shared => "shared",
            Kind::Retained => "retained",
            Kind::Rolling => "rolling",
            Kind::LateJoin => "late-join",
            Kind::OneWay => "one-way",
            Kind::Latency => "latency",
            Kind::Churn => "churn",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A subscriber: one subscription on one node.
#[derive(Debug, Clone)]
pub struct SubscriberSpec {
    pub node: NodeIx,
    pub filter: String,
    /// Requested QoS (1 or 2).
    pub qos: u8,
    /// Persistent session (clean start 0, expiry one hour) or clean.
    pub persistent: bool,
    /// Receive Maximum sent in CONNECT: small values make the broker queue.
    pub receive_maximum: u16,
    pub start: Millis,
    /// Times at which the client disconnects of its own accord (then reconnects).
    pub churn: Vec<Millis>,
    /// Times at which the client connects to another node while its
    /// connection to the current one stays open (two devices with one client
    /// id, or a client that gave up on a connection the broker still holds).
    /// It subscribes anew there (next epoch) and keeps serving the old
    /// connection until the broker closes it. Movers subscribe at QoS 1:
    /// a client has one packet-id space, which two live sessions would share.
    pub moves: Vec<(Millis, NodeIx)>,
    /// Filters subscribed beside `filter` in the same SUBSCRIBE, on topics
    /// nobody publishes (`x/c{client}/{i}`, every third one ending in `/+`):
    /// routes in bulk.
    pub extra_filters: usize,
    /// Every connection carries a will with this Will Delay Interval (seconds).
    pub will_delay: Option<u32>,
    /// Times at which the client closes its connection without DISCONNECT
    /// (a device that loses power), then stays away `away` before it reconnects.
    pub drops: Vec<Millis>,
    /// How long the client stays away after a drop or a connection the broker
    /// or the network ended (`None`: it reconnects at once, as after a churn).
    pub away: Option<Millis>,
}

/// A will watcher: a persistent QoS 1 subscription to every will topic on one node.
#[derive(Debug, Clone)]
pub struct WatcherSpec {
    pub node: NodeIx,
}

/// A publisher: numbered messages at one QoS on a few topics, on one node.
#[derive(Debug, Clone)]
pub struct PublisherSpec {
    pub node: NodeIx,
    pub topics: Vec<String>,
    pub qos: u8,
    pub interval: Millis,
    /// Most messages sent and not yet acknowledged.
    pub window: u16,
    pub start: Millis,
    pub stop: Millis,
    /// Publishes are retained writes; every fourth one clears (empty payload).
    pub retain: bool,
}

#[derive(Debug, Clone)]
pub enum ClientSpec {
    Subscriber(SubscriberSpec),
    Publisher(PublisherSpec),
    Watcher(WatcherSpec),
}

/// Something the harness does to the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// These nodes against all others: TCP held (delivered at heal), UDP dropped both ways.
    Partition { side: Vec<NodeIx> },
    /// Datagrams from `from` to `to` dropped (membership only; TCP unaffected).
    UdpCut { from: NodeIx, to: NodeIx },
    /// Every partition and cut healed, latencies back to normal.
    HealAll,
    /// The node's process dies: its sockets close, its in-memory state is gone.
    Crash(NodeIx),
    /// The crashed node starts again (a new incarnation).
    Restart(NodeIx),
    /// Fixed latency between two nodes, in milliseconds.
    Latency { a: NodeIx, b: NodeIx, ms: u64 },
    /// Datagrams from `from` to `to` dropped, and TCP between the two held
    /// (both ways: turmoil holds a link, not a direction, and its
    /// `partition_oneway` drops segments, which its TCP never retransmits;
    /// a real TCP connection over a one-way cut stalls both ways anyway, as
    /// acknowledgements stop). Both nodes still reach every other node.
    OneWay { from: NodeIx, to: NodeIx },
    /// Latency between two nodes drawn per message from 1 ms to `max_ms`:
    /// datagrams arrive out of order, TCP segments too (turmoil's TCP puts
    /// them back in order, as TCP does; it never loses one).
    Jitter { a: NodeIx, b: NodeIx, max_ms: u64 },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |v: &[NodeIx]| v.iter().map(|n| format!("n{}", n + 1)).collect::<Vec<_>>().join(",");
        match self {
            Fault::Partition { side } => write!(f, "partition [{}] from the rest", names(side)),
            Fault::UdpCut { from, to } => write!(f, "udp cut n{} -> n{}", from + 1, to + 1),
            Fault::HealAll => write!(f, "heal all"),
            Fault::Crash(n) => write!(f, "crash n{}", n + 1),
            Fault::Restart(n) => write!(f, "restart n{}", n + 1),
            Fault::Latency { a, b, ms } => write!(f, "latency n{} <-> n{}: {ms} ms", a + 1, b + 1),
            Fault::OneWay { from, to } => write!(f, "one-way cut n{} -> n{} (TCP held both ways)", from + 1, to + 1),
            Fault::Jitter { a, b, max_ms } => write!(f, "jitter n{} <-> n{}: 1..{max_ms} ms", a + 1, b + 1),
        }
    }
}

/// One run's plan.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub kind: Kind,
    pub seed: u64,
    /// Nodes; one means a single broker without `[cluster]`.
    pub nodes: usize,
    pub clients: Vec<ClientSpec>,
    /// Faults in time order.
    pub faults: Vec<(Millis, Fault)>,
    /// Publishers stop sending at this time.
    pub workload_end: Millis,
    /// Every fault is healed (and every crashed node restarted) by this time.
    pub healed_by: Millis,
    /// When each node first starts (0: at once); empty means all at once.
    pub starts: Vec<Millis>,
}

const TOPICS: [&str; 3] = ["t/0", "t/1", "t/2"];
const FILTERS: [&str; 6] = ["t/0", "t/1", "t/2", "t/+", "t/#", "t/0"];
/// Publishing runs from about 3 s to `WORKLOAD_END`; faults fall between 5 s and `FAULTS_END`.
const WORKLOAD_END: Millis = 20_000;
const FAULTS_START: Millis = 5_000;
const FAULTS_END: Millis = 16_000;

impl Scenario {
    pub fn generate(kind: Kind, seed: u64) -> Scenario {
        let mut scenario = Self::draw(kind, seed);
        if matches!(kind, Kind::Single | Kind::Crash | Kind::Takeover) {
            wills::add(&mut scenario);
        }
        scenario
    }

    /// The scenario as it was before clients had wills: the histories that
    /// regression tests named after a seed found their bug in.
    pub fn generate_without_wills(kind: Kind, seed: u64) -> Scenario {
        Self::draw(kind, seed)
    }

    fn draw(kind: Kind, seed: u64) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ kind as u64);
        if !matches!(kind, Kind::Single | Kind::Partition | Kind::Crash | Kind::Swarm) {
            return kinds::generate(kind, seed, &mut rng);
        }
        let nodes = match kind {
            Kind::Single => 1,
            Kind::Swarm => rng.random_range(1..=5),
            _ => 3,
        };
        let subscribers = rng.random_range(2..=5);
        let publishers = rng.random_range(1..=3);
        let mut clients = Vec::new();
        for _ in 0..subscribers {
            let churn = if rng.random_bool(0.3) {
                let n = rng.random_range(1..=2);
                let mut times: Vec<Millis> = (0..n).map(|_| rng.random_range(4_000..WORKLOAD_END)).collect();
                times.sort_unstable();
                times
            } else {
                Vec::new()
            };
            clients.push(ClientSpec::Subscriber(SubscriberSpec {
                node: rng.random_range(0..nodes),
                filter: FILTERS[rng.random_range(0..FILTERS.len())].to_string(),
                qos: rng.random_range(1..=2),
                persistent: rng.random_bool(0.6),
                receive_maximum: if rng.random_bool(0.5) { rng.random_range(1..=3) } else { 32 },
                start: rng.random_range(200..1_500),
                churn,
                moves: Vec::new(),
                extra_filters: 0,
                will_delay: None,
                drops: Vec::new(),
                away: None,
            }));
        }
        for _ in 0..publishers {
            let n_topics = rng.random_range(1..=2);
            let first = rng.random_range(0..TOPICS.len());
            let topics = (0..n_topics).map(|i| TOPICS[(first + i) % TOPICS.len()].to_string()).collect();
            clients.push(ClientSpec::Publisher(PublisherSpec {
                node: rng.random_range(0..nodes),
                topics,
                qos: rng.random_range(1..=2),
                interval: rng.random_range(50..400),
                window: rng.random_range(1..=4),
                start: rng.random_range(3_000..4_000),
                stop: WORKLOAD_END,
                retain: false,
            }));
        }
        let count = rng.random_range(1..=2);
        let faults = match kind {
            Kind::Single => Vec::new(),
            Kind::Partition => partitions(&mut rng, nodes, count),
            Kind::Crash => crashes(&mut rng, nodes, count),
            _ => swarm_faults(&mut rng, nodes),
        };
        let healed_by = faults.iter().map(|(t, _)| *t).max().unwrap_or(0).max(WORKLOAD_END);
        Scenario { kind, seed, nodes, clients, faults, workload_end: WORKLOAD_END, healed_by, starts: Vec::new() }
    }
}

/// `count` partitions, one after the other, each isolating one random node for 0.5 to 9 s.
fn partitions(rng: &mut StdRng, nodes: usize, count: usize) -> Vec<(Millis, Fault)> {
    let mut faults = Vec::new();
    let mut at = rng.random_range(FAULTS_START..FAULTS_START + 2_000);
    for _ in 0..count {
        if at >= FAULTS_END {
            break;
        }
        let side = vec![rng.random_range(0..nodes)];
        let length = rng.random_range(500..9_000);
        faults.push((at, Fault::Partition { side }));
        faults.push((at + length, Fault::HealAll));
        at += length + rng.random_range(1_000..4_000);
    }
    faults
}

/// `count` crashes of random nodes, each restarted 0.5 to 6 s later.
fn crashes(rng: &mut StdRng, nodes: usize, count: usize) -> Vec<(Millis, Fault)> {
    let mut faults = Vec::new();
    let mut at = rng.random_range(FAULTS_START..FAULTS_START + 3_000);
    for _ in 0..count {
        if at >= FAULTS_END {
            break;
        }
        let node = rng.random_range(0..nodes);
        let down = rng.random_range(500..6_000);
        faults.push((at, Fault::Crash(node)));
        faults.push((at + down, Fault::Restart(node)));
        at += down + rng.random_range(1_000..4_000);
    }
    faults
}

/// Zero to four faults of any kind, one at a time, each healed before the next.
fn swarm_faults(rng: &mut StdRng, nodes: usize) -> Vec<(Millis, Fault)> {
    let mut faults = Vec::new();
    let mut at = rng.random_range(FAULTS_START..FAULTS_START + 2_000);
    for _ in 0..rng.random_range(0..=4) {
        if at >= FAULTS_END {
            break;
        }
        let length = rng.random_range(500..8_000);
        let pick = if nodes == 1 { 2 } else { rng.random_range(0..4) };
        match pick {
            0 => {
                let mut side: Vec<NodeIx> = (0..nodes).filter(|_| rng.random_bool(0.5)).collect();
                if side.is_empty() || side.len() == nodes {
                    side = vec![rng.random_range(0..nodes)];
                }
                faults.push((at, Fault::Partition { side }));
                faults.push((at + length, Fault::HealAll));
            }
            1 => {
                let from = rng.random_range(0..nodes);
                let to = (from + rng.random_range(1..nodes)) % nodes;
                faults.push((at, Fault::UdpCut { from, to }));
                faults.push((at + length, Fault::HealAll));
            }
            2 => {
                let node = rng.random_range(0..nodes);
                faults.push((at, Fault::Crash(node)));
                faults.push((at + length, Fault::Restart(node)));
            }
            _ => {
                let a = rng.random_range(0..nodes);
                let b = (a + rng.random_range(1..nodes)) % nodes;
                faults.push((at, Fault::Latency { a, b, ms: rng.random_range(50..1_500) }));
                faults.push((at + length, Fault::HealAll));
            }
        }
        at += length + rng.random_range(500..3_000);
    }
    faults
}
