//! The scenarios added to the first four (single, partition, crash, swarm):
//! each aims at one mechanism of the cluster (takeover, shared groups,
//! retained replication, restarts, joining, asymmetric reachability, slow
//! and jittery links, churn) with the common workload around it.

use rand::Rng;
use rand::rngs::StdRng;

use super::{
    ClientSpec, FAULTS_END, FAULTS_START, FILTERS, Fault, Kind, PublisherSpec, Scenario, SubscriberSpec, TOPICS,
    WORKLOAD_END, partitions,
};
use crate::history::{Millis, NodeIx};

/// Every added scenario runs three nodes.
const NODES: usize = 3;
/// The topics retained writes go to (no subscriber's filter matches them).
const RETAINED_TOPICS: [&str; 2] = ["r/0", "r/1"];
/// The shared group every member of the `shared` scenario joins.
const SHARED_FILTER: &str = "$share/g/t/+";

pub(super) fn generate(kind: Kind, seed: u64, rng: &mut StdRng) -> Scenario {
    let mut clients = Vec::new();
    let mut starts = Vec::new();
    let faults = match kind {
        Kind::Takeover => takeover(rng, &mut clients),
        Kind::Shared => shared(rng, &mut clients),
        Kind::Retained => {
            for _ in 0..rng.random_range(2..=4) {
                let mut p = publisher(rng, NODES);
                p.retain = true;
                p.topics = vec![RETAINED_TOPICS[rng.random_range(0..RETAINED_TOPICS.len())].to_string()];
                if rng.random_bool(0.5) {
                    let other = RETAINED_TOPICS.iter().find(|t| **t != p.topics[0]).copied().unwrap_or("r/0");
                    p.topics.push(other.to_string());
                }
                clients.push(ClientSpec::Publisher(p));
            }
            let count = rng.random_range(1..=2);
            partitions(rng, NODES, count)
        }
        Kind::Rolling => {
            let mut faults = Vec::new();
            let mut at = rng.random_range(FAULTS_START..FAULTS_START + 1_000);
            let first = rng.random_range(0..NODES);
            for i in 0..NODES {
                let node = (first + i) % NODES;
                let down = rng.random_range(500..2_500);
                faults.push((at, Fault::Crash(node)));
                faults.push((at + down, Fault::Restart(node)));
                at += down + rng.random_range(1_500..3_000);
            }
            faults
        }
        Kind::LateJoin => {
            let late = NODES - 1;
            starts = vec![0; NODES];
            starts[late] = rng.random_range(6_000..12_000);
            let mut bulk = subscriber(rng, late);
            bulk.extra_filters = rng.random_range(200..=400);
            clients.push(ClientSpec::Subscriber(bulk));
            Vec::new()
        }
        Kind::OneWay => {
            let mut faults = Vec::new();
            let mut at = rng.random_range(FAULTS_START..FAULTS_START + 2_000);
            for _ in 0..rng.random_range(1..=2) {
                if at >= FAULTS_END {
                    break;
                }
                let (from, to) = pair(rng);
                let length = rng.random_range(500..9_000);
                faults.push((at, Fault::OneWay { from, to }));
                faults.push((at + length, Fault::HealAll));
                at += length + rng.random_range(1_000..4_000);
            }
            faults
        }
        Kind::Latency => {
            let mut faults = Vec::new();
            let mut at = rng.random_range(FAULTS_START..FAULTS_START + 2_000);
            for _ in 0..rng.random_range(1..=3) {
                if at >= FAULTS_END {
                    break;
                }
                let length = rng.random_range(1_000..6_000);
                for _ in 0..rng.random_range(1..=2) {
                    let (a, b) = pair(rng);
                    let fault = if rng.random_bool(0.5) {
                        Fault::Latency { a, b, ms: rng.random_range(50..1_500) }
                    } else {
                        Fault::Jitter { a, b, max_ms: rng.random_range(20..800) }
                    };
                    faults.push((at, fault));
                }
                faults.push((at + length, Fault::HealAll));
                at += length + rng.random_range(500..3_000);
            }
            faults
        }
        Kind::Churn => {
            for _ in 0..rng.random_range(4..=8) {
                let node = rng.random_range(0..NODES);
                let mut s = subscriber(rng, node);
                let n = rng.random_range(3..=8);
                s.churn = (0..n).map(|_| rng.random_range(4_000..WORKLOAD_END)).collect();
                s.churn.sort_unstable();
                clients.push(ClientSpec::Subscriber(s));
            }
            Vec::new()
        }
        Kind::Single | Kind::Partition | Kind::Crash | Kind::Swarm => Vec::new(),
    };
    for _ in 0..rng.random_range(1..=3) {
        let node = rng.random_range(0..NODES);
        clients.push(ClientSpec::Subscriber(subscriber(rng, node)));
    }
    for _ in 0..rng.random_range(1..=3) {
        clients.push(ClientSpec::Publisher(publisher(rng, NODES)));
    }
    let healed_by = faults.iter().map(|(t, _)| *t).max().unwrap_or(0).max(WORKLOAD_END);
    Scenario { kind, seed, nodes: NODES, clients, faults, workload_end: WORKLOAD_END, healed_by, starts }
}

/// Two different nodes.
fn pair(rng: &mut StdRng) -> (NodeIx, NodeIx) {
    let a = rng.random_range(0..NODES);
    (a, (a + rng.random_range(1..NODES)) % NODES)
}

/// A subscriber drawn as the first four scenarios draw theirs, without churn.
fn subscriber(rng: &mut StdRng, node: NodeIx) -> SubscriberSpec {
    SubscriberSpec {
        node,
        filter: FILTERS[rng.random_range(0..FILTERS.len())].to_string(),
        qos: rng.random_range(1..=2),
        persistent: rng.random_bool(0.6),
        receive_maximum: if rng.random_bool(0.5) { rng.random_range(1..=3) } else { 32 },
        start: rng.random_range(200..1_500),
        churn: Vec::new(),
        moves: Vec::new(),
        extra_filters: 0,
        will_delay: None,
        drops: Vec::new(),
        away: None,
    }
}

fn publisher(rng: &mut StdRng, nodes: usize) -> PublisherSpec {
    let n_topics = rng.random_range(1..=2);
    let first = rng.random_range(0..TOPICS.len());
    PublisherSpec {
        node: rng.random_range(0..nodes),
        topics: (0..n_topics).map(|i| TOPICS[(first + i) % TOPICS.len()].to_string()).collect(),
        qos: rng.random_range(1..=2),
        interval: rng.random_range(50..400),
        window: rng.random_range(1..=4),
        start: rng.random_range(3_000..4_000),
        stop: WORKLOAD_END,
        retain: false,
    }
}

/// Two or three movers. The first moves while its node is partitioned from
/// the other two (the takeover request cannot reach the old node); the
/// others move with the cluster whole, some twice.
fn takeover(rng: &mut StdRng, clients: &mut Vec<ClientSpec>) -> Vec<(Millis, Fault)> {
    let mut faults = Vec::new();
    for i in 0..rng.random_range(2..=3) {
        let home = rng.random_range(0..NODES);
        let mut mover = subscriber(rng, home);
        mover.qos = 1;
        mover.persistent = true;
        let away = (home + rng.random_range(1..NODES)) % NODES;
        if i == 0 {
            let at = rng.random_range(FAULTS_START..FAULTS_START + 2_000);
            let length = rng.random_range(3_000..8_000);
            faults.push((at, Fault::Partition { side: vec![home] }));
            faults.push((at + length, Fault::HealAll));
            mover.moves.push((at + rng.random_range(500..length - 500), away));
        } else {
            let at = rng.random_range(FAULTS_START..FAULTS_END);
            mover.moves.push((at, away));
            if rng.random_bool(0.3) {
                let back = (away + rng.random_range(1..NODES)) % NODES;
                mover.moves.push((rng.random_range(at + 500..FAULTS_END + 1_000), back));
            }
        }
        clients.push(ClientSpec::Subscriber(mover));
    }
    faults.sort_by_key(|(t, _)| *t);
    faults
}

/// Three to six members of one QoS 1 group, at least one per node, most
/// churning; one node crashes and restarts while messages flow.
fn shared(rng: &mut StdRng, clients: &mut Vec<ClientSpec>) -> Vec<(Millis, Fault)> {
    for i in 0..rng.random_range(NODES..=6) {
        let mut member = subscriber(rng, i % NODES);
        member.filter = SHARED_FILTER.to_string();
        member.qos = 1;
        if rng.random_bool(0.7) {
            let n = rng.random_range(1..=3);
            member.churn = (0..n).map(|_| rng.random_range(4_000..WORKLOAD_END)).collect();
            member.churn.sort_unstable();
        }
        clients.push(ClientSpec::Subscriber(member));
    }
    let node = rng.random_range(0..NODES);
    let at = rng.random_range(6_000..12_000);
    vec![(at, Fault::Crash(node)), (at + rng.random_range(1_000..5_000), Fault::Restart(node))]
}
