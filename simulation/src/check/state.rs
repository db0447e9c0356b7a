//! The state the nodes end a run in, read from each node after the cluster
//! converged and a quiet drain passed (`LiveClients`, `RetainedStore`):
//! (f) one live connection per client id, (g) identical retained stores,
//! (h) the last retained write wins.

use std::collections::{BTreeMap, BTreeSet};

use super::{MEMBERS_MAX, Sent, Violation};
use crate::history::{ClientIx, Event, Millis, NodeIx};
use crate::scenario::Fault;

/// (f) No client id has a live connection on two nodes.
pub const ONE_CONNECTION: &str = "one-live-connection-per-client-id";
/// (f), where the client connected to its last node while that node was cut
/// off from the other: a failure too, named apart to point at the settling.
pub const ONE_CONNECTION_PARTITIONED: &str =
    "one-live-connection-per-client-id (connected on both sides of a partition)";
/// (g) Every node holds the same retained writes.
pub const RETAINED_IDENTICAL: &str = "retained-stores-identical";
/// (h) The retained write that wins is the last one made.
pub const RETAINED_LAST_WRITE_WINS: &str = "retained-last-write-wins";

/// How far a node's clock reading may be from the history's time of the
/// same moment (both count simulated milliseconds; rounding differs).
const CLOCK_SLACK_MS: Millis = 5;

/// What the end-of-run checkers need, gathered while `check` reads the history.
#[derive(Debug, Default)]
pub(super) struct EndState {
    /// node -> client ids with a live connection there.
    live: BTreeMap<NodeIx, Vec<String>>,
    /// node -> its retained writes as `topic = payload @ stamp by writer`.
    retained: BTreeMap<NodeIx, Vec<String>>,
    /// client -> node -> when it last connected there.
    connects: BTreeMap<ClientIx, BTreeMap<NodeIx, Millis>>,
    /// Node pairs cut apart (partition or one-way cut): (a, b, from, until).
    cuts: Vec<(NodeIx, NodeIx, Millis, Millis)>,
    /// Node pairs cut apart now, since when.
    open_cuts: Vec<(NodeIx, NodeIx, Millis)>,
    crashes: Vec<(Millis, NodeIx)>,
}

impl EndState {
    pub fn observe(&mut self, at: Millis, event: &Event) {
        match event {
            Event::Connected { client, node, .. } => {
                self.connects.entry(*client).or_default().insert(*node, at);
            }
            Event::Fault { fault: Fault::Partition { side } } => {
                for &a in side {
                    for b in (0..MEMBERS_MAX).filter(|b| !side.contains(b)) {
                        self.open_cuts.push((a, b, at));
                    }
                }
            }
            Event::Fault { fault: Fault::OneWay { from, to } } => self.open_cuts.push((*from, *to, at)),
            Event::Fault { fault: Fault::HealAll } => {
                for (a, b, from) in std::mem::take(&mut self.open_cuts) {
                    self.cuts.push((a, b, from, at));
                }
            }
            Event::Fault { fault: Fault::Crash(node) } => self.crashes.push((at, *node)),
            Event::LiveClients { node, clients } => {
                self.live.insert(*node, clients.clone());
            }
            Event::RetainedStore { node, entries } => {
                self.retained.insert(*node, entries.clone());
            }
            _ => {}
        }
    }

    fn separated(&self, x: NodeIx, y: NodeIx, at: Millis) -> bool {
        let pair = |a: NodeIx, b: NodeIx| (a == x && b == y) || (a == y && b == x);
        self.cuts.iter().any(|&(a, b, from, until)| pair(a, b) && from <= at && at < until)
            || self.open_cuts.iter().any(|&(a, b, from)| pair(a, b) && from <= at)
    }

    pub fn check(
        &self,
        sent: &BTreeMap<(ClientIx, u64), Sent>,
        acked: &BTreeMap<(ClientIx, u64), Millis>,
        violations: &mut Vec<Violation>,
    ) {
        self.one_connection(violations);
        self.retained_identical(violations);
        self.last_write_wins(sent, acked, violations);
    }

    /// (f) After convergence and the drain, no client id has a live
    /// connection (one the broker has not decided to close) on two nodes:
    /// a CONNECT on one node takes over the session held on another and
    /// closes its connection ([MQTT-3.1.4-3], cluster-wide); when the two
    /// connects were on two sides of a partition, the pair is settled after
    /// the heal in favour of the later one (ALGORITHM.md, "Sessions across
    /// nodes"). A violation names that case apart, but it is a failure.
    fn one_connection(&self, violations: &mut Vec<Violation>) {
        let mut nodes_of: BTreeMap<&str, Vec<NodeIx>> = BTreeMap::new();
        for (node, clients) in &self.live {
            for client in clients {
                nodes_of.entry(client.as_str()).or_default().push(*node);
            }
        }
        for (client, nodes) in nodes_of.into_iter().filter(|(_, n)| n.len() > 1) {
            let connects =
                client.strip_prefix('c').and_then(|c| c.parse::<ClientIx>().ok()).and_then(|c| self.connects.get(&c));
            let last = |n: &NodeIx| connects.and_then(|c| c.get(n)).copied().unwrap_or(0);
            let latest = nodes.iter().copied().max_by_key(last).unwrap_or(0);
            let t = last(&latest);
            let partitioned = nodes.iter().filter(|n| **n != latest).all(|n| self.separated(*n, latest, t));
            let names: Vec<String> = nodes.iter().map(|n| format!("n{}", n + 1)).collect();
            violations.push(Violation {
                checker: if partitioned { ONE_CONNECTION_PARTITIONED } else { ONE_CONNECTION },
                detail: format!(
                    "{client} is live on {} at the end (last connect: n{} at {t} ms)",
                    names.join(" and "),
                    latest + 1
                ),
            });
        }
    }

    /// (g) After convergence, every node holds the same retained write for
    /// every topic: the same winner (stamp and writer) and, in its store,
    /// the same payload, or none for a clear (ALGORITHM.md, "Retained
    /// messages", convergence).
    fn retained_identical(&self, violations: &mut Vec<Violation>) {
        let mut stores = self.retained.iter();
        let Some((first, reference)) = stores.next() else { return };
        let index = |entries: &[String]| -> BTreeMap<String, String> {
            entries.iter().map(|e| (topic_of(e).to_string(), e.clone())).collect()
        };
        let reference = index(reference);
        for (node, entries) in stores {
            let other = index(entries);
            let topics: BTreeSet<&String> = reference.keys().chain(other.keys()).collect();
            for topic in topics {
                let (a, b) = (reference.get(topic), other.get(topic));
                if a != b {
                    violations.push(Violation {
                        checker: RETAINED_IDENTICAL,
                        detail: format!("on {topic}: n{} holds {a:?}, n{} holds {b:?}", first + 1, node + 1),
                    });
                }
            }
        }
    }

    /// (h) The winning retained write of a topic is not older than any
    /// acknowledged write to that topic: no acknowledged write W was sent
    /// after the winner was acknowledged (plus `CLOCK_SLACK_MS`). Every
    /// node's wall clock reads simulated time (`net::WALL_EPOCH_MS`), so the
    /// hybrid logical clock orders writes as they happened, and a write
    /// accepted after another one was acknowledged carries a greater stamp.
    /// Judged when the winner sets a message (a clear does not name its
    /// write) that was acknowledged; a write whose node crashed later may
    /// be lost and is not counted. Every publish to a topic some store
    /// retains is a retained write (the scenarios never mix retained and
    /// plain publishes on a topic).
    fn last_write_wins(
        &self,
        sent: &BTreeMap<(ClientIx, u64), Sent>,
        acked: &BTreeMap<(ClientIx, u64), Millis>,
        violations: &mut Vec<Violation>,
    ) {
        let mut judged: BTreeSet<String> = BTreeSet::new();
        for (node, entries) in &self.retained {
            for entry in entries {
                let topic = topic_of(entry);
                let Some((p, seq)) = winner_of(entry) else { continue };
                let Some(&won_ack) = acked.get(&(p, seq)) else { continue };
                for (&(p2, seq2), &t_ack2) in acked {
                    let Some(w) = sent.get(&(p2, seq2)) else { continue };
                    let lost_with_node = self.crashes.iter().any(|&(t, n)| n == w.node && t >= w.at);
                    if w.topic != topic || (p2, seq2) == (p, seq) || lost_with_node {
                        continue;
                    }
                    if w.at > won_ack + CLOCK_SLACK_MS && judged.insert(format!("{node} {topic}")) {
                        violations.push(Violation {
                            checker: RETAINED_LAST_WRITE_WINS,
                            detail: format!(
                                "n{} retains c{p} #{seq} on {topic} (acknowledged {won_ack} ms), older than c{p2} \
                                 #{seq2} (sent {} ms to n{}, acknowledged {t_ack2} ms)",
                                node + 1,
                                w.at,
                                w.node + 1
                            ),
                        });
                    }
                }
            }
        }
    }
}

/// The topic of a `topic = payload @ stamp by writer` entry.
fn topic_of(entry: &str) -> &str {
    entry.split_once(" = ").map_or(entry, |(t, _)| t)
}

/// The `(publisher, seq)` whose payload an entry holds (none for a clear).
fn winner_of(entry: &str) -> Option<(ClientIx, u64)> {
    let (_, rest) = entry.split_once(" = ")?;
    let (payload, _) = rest.split_once(" @ ")?;
    let (p, s) = payload.split_once(':')?;
    Some((p.parse().ok()?, s.parse().ok()?))
}
