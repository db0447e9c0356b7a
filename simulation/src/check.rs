//! The checkers: properties the recorded history must have. Each is stated
//! here and in ALGORITHM.md ("Checked properties"), and each has a test
//! that injects a broker bug and sees it fail (tests/bugs.rs).
//!
//! Definitions used below, all from the history:
//! - A *subscription* S is a subscriber's SUBSCRIBE whose SUBACK arrived
//!   (`Subscribed`, at `t_sub`), on node `node(S)`, with filter `filter(S)`
//!   and granted QoS `qos(S)`.
//! - S *survives* when its session never ended during the run: the client
//!   never found it gone (`SessionLost`: a clean session's connection
//!   closed, or a reconnect answered session present 0) and `node(S)` never
//!   crashed after `t_sub` (sessions live in memory).
//! - A message M is publisher P's `seq`-th message: sent at `t_send` to
//!   node A on topic T at QoS >= 1, *acknowledged* at `t_ack` (PUBACK, or
//!   PUBREC for QoS 2, with a success code).
//! - "Node X holds route (Y, F) throughout [t1, t2]": X's route table held
//!   filter F for origin Y at every step of the simulation from t1 to t2
//!   (recorded by the harness after each step, from `Server::cluster_status`).
//! - A subscription whose filter is `$share/{group}/{F}` is a *member* of
//!   that group; (a) and (c) judge direct subscriptions, `shared` judges groups.
//!
//! The checkers of the state at the end of a run (one live connection per
//! client id, retained stores) are in `check/state.rs`; the group checker in
//! `check/shared.rs`; the will checker in `check/wills.rs`.

mod shared;
mod state;
mod wills;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use mqtt_codec::topic::matches;

use crate::history::{ClientIx, Event, Millis, NodeIx, Record, SubId};
use crate::scenario::{Fault, Scenario};

/// A property the history does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The checker's name.
    pub checker: &'static str,
    pub detail: String,
}

impl Violation {
    /// A violation of a promise the broker is known not to keep yet (ALGORITHM.md, "Checked properties").
    pub fn is_known_gap(&self) -> bool {
        [ACKED_WHILE_DOWN, shared::GROUP_WHILE_DOWN, ORDER_AFTER_MOVE, WILL_WHILE_DOWN].contains(&self.checker)
    }
}

/// More nodes than any scenario has.
const MEMBERS_MAX: NodeIx = 8;

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.checker, self.detail)
    }
}

/// (a) Acknowledged messages reach surviving subscriptions.
pub const ACKED_DELIVERED: &str = "acknowledged-reaches-subscriptions";
/// (a), the part ALGORITHM.md promises and the broker does not keep yet:
/// the publishing node held the subscription node's route but had no peer
/// link to it (it believed the node down during a partition, or had not yet
/// seen it up after a restart), dropped the forward and still acknowledged.
/// Reported, and kept apart by [`Violation::is_known_gap`].
pub const ACKED_WHILE_DOWN: &str = "acknowledged-reaches-subscriptions (no link to the node: known gap)";
/// (b) QoS 2 at most once per subscription.
pub const QOS2_ONCE: &str = "qos2-at-most-once";
/// (c) Per-publisher order per topic and subscription.
pub const ORDER: &str = "per-publisher-order";
/// (c), the part ALGORITHM.md names a known gap: a message sent before its
/// subscriber's client moved reached the old node after the move, was passed
/// on, and arrived after later messages of its publisher.
pub const ORDER_AFTER_MOVE: &str = "per-publisher-order (passed on after a move: known gap)";
/// (d) Route tables converge after the faults heal (liveness).
pub const CONVERGENCE: &str = "routes-converge";
/// Nothing the clients or the harness had to reject (malformed deliveries, panics, stopped hosts).
pub const ANOMALY: &str = "no-anomaly";
pub use shared::{GROUP_DELIVERED, GROUP_WHILE_DOWN};
pub use state::{ONE_CONNECTION, ONE_CONNECTION_PARTITIONED, RETAINED_IDENTICAL, RETAINED_LAST_WRITE_WINS};
pub use wills::{WILL, WILL_WHILE_DOWN};

#[derive(Debug)]
struct Sub {
    node: NodeIx,
    filter: String,
    qos: u8,
    at: Millis,
    ended: Option<Millis>,
    /// When its client connected to another node (keeping this connection).
    moved: Option<Millis>,
}

impl Sub {
    /// `(group, filter)` of a `$share/{group}/{filter}` subscription.
    fn group(&self) -> Option<(&str, &str)> {
        self.filter.strip_prefix("$share/")?.split_once('/')
    }
}

#[derive(Debug)]
struct Sent {
    topic: String,
    qos: u8,
    node: NodeIx,
    at: Millis,
}

/// Intervals during which an observer held a route: (observer, origin, filter) -> [(from, until)].
type RouteSpans = BTreeMap<(NodeIx, NodeIx, String), Vec<(Millis, Millis)>>;

/// Every violation in `records`, each checker's in time order.
pub fn check(_scenario: &Scenario, records: &[Record]) -> Vec<Violation> {
    let end = records.last().map_or(0, |r| r.at);
    let mut subs: BTreeMap<SubId, Sub> = BTreeMap::new();
    let mut sent: BTreeMap<(ClientIx, u64), Sent> = BTreeMap::new();
    let mut acked: BTreeMap<(ClientIx, u64), Millis> = BTreeMap::new();
    let mut deliveries: BTreeMap<SubId, Vec<(ClientIx, u64, String, u8)>> = BTreeMap::new();
    let mut spans: RouteSpans = BTreeMap::new();
    let mut open: BTreeMap<(NodeIx, NodeIx, String), Millis> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut converged = false;
    // (observer, peer) -> since when observer keeps no link to peer (believes it down), and past spans of that.
    let mut down_since: BTreeMap<(NodeIx, NodeIx), Millis> = BTreeMap::new();
    let mut down_spans: BTreeMap<(NodeIx, NodeIx), Vec<(Millis, Millis)>> = BTreeMap::new();
    // The same, for "observer has no connected link to peer" (absent, or still dialling).
    let mut unlinked_since: BTreeMap<(NodeIx, NodeIx), Millis> = BTreeMap::new();
    let mut unlinked_spans: BTreeMap<(NodeIx, NodeIx), Vec<(Millis, Millis)>> = BTreeMap::new();
    let mut end_state = state::EndState::default();
    let mut wills = wills::Wills::default();
    let mut crashes: Vec<(Millis, NodeIx)> = Vec::new();
    for Record { at, event } in records {
        let at = *at;
        end_state.observe(at, event);
        wills.observe(at, event);
        match event {
            Event::Subscribed { sub, node, filter, qos } => {
                subs.insert(*sub, Sub { node: *node, filter: filter.clone(), qos: *qos, at, ended: None, moved: None });
            }
            Event::SessionLost { sub } => {
                if let Some(s) = subs.get_mut(sub) {
                    s.ended.get_or_insert(at);
                }
            }
            Event::Moved { sub, .. } => {
                if let Some(s) = subs.get_mut(sub) {
                    s.moved.get_or_insert(at);
                }
            }
            Event::Fault { fault: Fault::Crash(node) } => {
                crashes.push((at, *node));
                for s in subs.values_mut().filter(|s| s.node == *node) {
                    s.ended.get_or_insert(at);
                }
            }
            Event::Sent { publisher, seq, topic, qos, node } => {
                sent.insert((*publisher, *seq), Sent { topic: topic.clone(), qos: *qos, node: *node, at });
            }
            Event::Acked { publisher, seq } => {
                acked.entry((*publisher, *seq)).or_insert(at);
            }
            Event::Delivered { sub, publisher, seq, topic, qos, .. } => {
                match sent.get(&(*publisher, *seq)) {
                    Some(s) if s.topic == *topic => {}
                    _ => violations.push(Violation {
                        checker: ANOMALY,
                        detail: format!("at {at} ms {sub} got c{publisher} #{seq} on {topic}, which was never sent"),
                    }),
                }
                deliveries.entry(*sub).or_default().push((*publisher, *seq, topic.clone(), *qos));
            }
            Event::Routes { observer, origin, filters } => {
                let now: BTreeSet<&String> = filters.iter().collect();
                let held: Vec<String> =
                    open.keys().filter(|(o, r, _)| o == observer && r == origin).map(|(_, _, f)| f.clone()).collect();
                for filter in held {
                    if !now.contains(&filter) {
                        let key = (*observer, *origin, filter);
                        if let Some(from) = open.remove(&key) {
                            spans.entry(key).or_default().push((from, at));
                        }
                    }
                }
                for filter in filters {
                    open.entry((*observer, *origin, filter.clone())).or_insert(at);
                }
            }
            Event::Anomaly { what } => {
                violations.push(Violation { checker: ANOMALY, detail: format!("at {at} ms: {what}") });
            }
            Event::Converged => converged = true,
            Event::NotConverged { detail } => {
                violations.push(Violation { checker: CONVERGENCE, detail: format!("at {at} ms: {detail}") })
            }
            Event::Members { observer, members } => {
                let linked: BTreeSet<NodeIx> = members.iter().filter(|(_, up)| *up).map(|(m, _)| *m).collect();
                for other in 0..MEMBERS_MAX {
                    let key = (*observer, other);
                    match (linked.contains(&other), unlinked_since.contains_key(&key)) {
                        (false, false) => {
                            unlinked_since.insert(key, at);
                        }
                        (true, true) => {
                            if let Some(from) = unlinked_since.remove(&key) {
                                unlinked_spans.entry(key).or_default().push((from, at));
                            }
                        }
                        _ => {}
                    }
                }
                let now: BTreeSet<NodeIx> = members.iter().map(|(m, _)| *m).collect();
                for other in 0..MEMBERS_MAX {
                    let key = (*observer, other);
                    match (now.contains(&other), down_since.contains_key(&key)) {
                        (false, false) => {
                            down_since.insert(key, at);
                        }
                        (true, true) => {
                            if let Some(from) = down_since.remove(&key) {
                                down_spans.entry(key).or_default().push((from, at));
                            }
                        }
                        _ => {}
                    }
                }
            }
            Event::NodeStarted { .. }
            | Event::Fault { .. }
            | Event::Connected { .. }
            | Event::Disconnected { .. }
            | Event::LiveClients { .. }
            | Event::RetainedStore { .. }
            | Event::Opened { .. }
            | Event::Ended { .. }
            | Event::WillWatched { .. }
            | Event::WillDelivered { .. } => {}
        }
    }
    for (key, from) in open {
        spans.entry(key).or_default().push((from, Millis::MAX));
    }
    for (key, from) in down_since {
        down_spans.entry(key).or_default().push((from, Millis::MAX));
    }
    for (key, from) in unlinked_since {
        unlinked_spans.entry(key).or_default().push((from, Millis::MAX));
    }
    if !converged && !violations.iter().any(|v| v.checker == CONVERGENCE) {
        violations.push(Violation { checker: CONVERGENCE, detail: format!("the run ended at {end} ms unconverged") });
    }
    acknowledged_reaches_subscriptions(&subs, &sent, &acked, &deliveries, &spans, &down_spans, &mut violations);
    let facts = shared::Facts { subs: &subs, sent: &sent, acked: &acked, deliveries: &deliveries, spans: &spans };
    shared::acknowledged_reaches_groups(&facts, &unlinked_spans, &crashes, &mut violations);
    qos2_at_most_once(&sent, &deliveries, &mut violations);
    per_publisher_order(&subs, &sent, &deliveries, &mut violations);
    end_state.check(&sent, &acked, &mut violations);
    wills.check(&mut violations);
    violations
}

/// (a) A message M acknowledged to its publisher is delivered to every
/// subscription S such that:
/// 1. S was established before M was sent (`t_sub <= t_send`),
/// 2. `filter(S)` matches M's topic, and `qos(S) >= 1`,
/// 3. S survives,
/// 4. `node(S)` is M's node A, or A held route (`node(S)`, `filter(S)`)
///    throughout [`t_send`, `t_ack`] — so the route had reached A when M was
///    routed there, whatever the moment of routing in that interval,
/// 5. S is a direct subscription (not a shared group's member), and if its
///    client moved to another node, M was acknowledged before the move (it
///    was then in S's session, which either stays on the old node, whose
///    connection the client keeps, or moves with the takeover; what
///    reaches the old node after the move is the known gap of ALGORITHM.md,
///    "Sessions across nodes").
///
/// This is ALGORITHM.md's sync-forwarding guarantee, narrowed to what a
/// history can show: it excuses a node's death (the subscription then does
/// not survive), not a partition.
fn acknowledged_reaches_subscriptions(
    subs: &BTreeMap<SubId, Sub>,
    sent: &BTreeMap<(ClientIx, u64), Sent>,
    acked: &BTreeMap<(ClientIx, u64), Millis>,
    deliveries: &BTreeMap<SubId, Vec<(ClientIx, u64, String, u8)>>,
    spans: &RouteSpans,
    down_spans: &BTreeMap<(NodeIx, NodeIx), Vec<(Millis, Millis)>>,
    violations: &mut Vec<Violation>,
) {
    // A delivery to the subscription that continues S (see `continuation_root`) is S's.
    let delivered: BTreeSet<(SubId, ClientIx, u64)> = deliveries
        .iter()
        .flat_map(|(sub, d)| {
            let root = continuation_root(subs, *sub);
            d.iter().map(move |(p, seq, _, _)| (root, *p, *seq))
        })
        .collect();
    for (&(publisher, seq), &t_ack) in acked {
        let Some(m) = sent.get(&(publisher, seq)) else { continue };
        if m.qos == 0 {
            continue;
        }
        for (sub, s) in subs {
            let required = s.at <= m.at
                && s.qos >= 1
                && s.ended.is_none()
                && s.group().is_none()
                && s.moved.is_none_or(|moved| t_ack < moved)
                && matches(&s.filter, &m.topic)
                && (s.node == m.node || held_throughout(spans, m.node, s.node, &s.filter, m.at, t_ack));
            if required && !delivered.contains(&(continuation_root(subs, *sub), publisher, seq)) {
                // Known gap (see ALGORITHM.md, "Checked properties"): the
                // publishing node had no link to node(S) at some moment after
                // t_send (believed it down, or not yet up), so the forward
                // was dropped — at once, or when the node departed after the
                // acknowledgement (released at forward_timeout_ms, or by node_down).
                let down =
                    down_spans.get(&(m.node, s.node)).is_some_and(|list| list.iter().any(|&(_, until)| m.at < until));
                violations.push(Violation {
                    checker: if down { ACKED_WHILE_DOWN } else { ACKED_DELIVERED },
                    detail: format!(
                        "c{publisher} #{seq} on {} (sent {} ms to n{}, acknowledged {t_ack} ms) never reached {sub} \
                         ({} on n{}, subscribed {} ms, session alive to the end)",
                        m.topic,
                        m.at,
                        m.node + 1,
                        s.filter,
                        s.node + 1,
                        s.at
                    ),
                });
            }
        }
    }
}

/// The first subscription of the chain `sub` belongs to. A client that moves
/// to another node keeping its session subscribes to the same filter again
/// there (a new subscription identifier): that replaces the subscription
/// without losing its messages ([MQTT-3.8.4-3]), so a message S's session
/// held reaches the client under its successor's identifier.
fn continuation_root(subs: &BTreeMap<SubId, Sub>, sub: SubId) -> SubId {
    let mut current = sub;
    while current.epoch > 1 {
        let previous = SubId { client: current.client, epoch: current.epoch - 1 };
        let (Some(prev), Some(cur)) = (subs.get(&previous), subs.get(&current)) else { break };
        let continued = prev.filter == cur.filter && prev.ended.is_none() && prev.moved.is_some_and(|m| m <= cur.at);
        if !continued {
            break;
        }
        current = previous;
    }
    current
}

/// When `client` moved to another node, in order.
fn moves_of(subs: &BTreeMap<SubId, Sub>, client: ClientIx) -> impl Iterator<Item = Millis> + '_ {
    subs.iter().filter(move |(id, _)| id.client == client).filter_map(|(_, s)| s.moved)
}

pub(crate) fn held_throughout(
    spans: &RouteSpans,
    observer: NodeIx,
    origin: NodeIx,
    filter: &str,
    from: Millis,
    to: Millis,
) -> bool {
    spans
        .get(&(observer, origin, filter.to_string()))
        .is_some_and(|list| list.iter().any(|&(a, b)| a <= from && to < b))
}

/// (b) A QoS 2 message reaches a subscription granted QoS 2 at most once:
/// the subscriber's application sees at most one PUBLISH of it (a
/// retransmission with a packet id still awaiting PUBREL is the same
/// delivery, per the protocol's receiver flow).
fn qos2_at_most_once(
    sent: &BTreeMap<(ClientIx, u64), Sent>,
    deliveries: &BTreeMap<SubId, Vec<(ClientIx, u64, String, u8)>>,
    violations: &mut Vec<Violation>,
) {
    for (sub, list) in deliveries {
        let mut count: BTreeMap<(ClientIx, u64), usize> = BTreeMap::new();
        for (p, seq, _, qos) in list {
            if *qos == 2 && sent.get(&(*p, *seq)).is_some_and(|m| m.qos == 2) {
                *count.entry((*p, *seq)).or_default() += 1;
            }
        }
        for ((p, seq), n) in count {
            if n > 1 {
                violations.push(Violation {
                    checker: QOS2_ONCE,
                    detail: format!("{sub} got QoS 2 message c{p} #{seq} {n} times"),
                });
            }
        }
    }
}

/// (c) For every direct subscription, publisher and topic, the messages a
/// subscription receives at QoS >= 1 arrive in the order the publisher sent
/// them: each first receipt has a higher sequence number than every earlier
/// one (repeats of a message already received are QoS 1 duplicates, and
/// gaps are losses the other checkers judge). A shared group's member is
/// not judged: a member that leaves hands its unacknowledged messages to
/// another member, which may have received later ones already.
fn per_publisher_order(
    subs: &BTreeMap<SubId, Sub>,
    sent: &BTreeMap<(ClientIx, u64), Sent>,
    deliveries: &BTreeMap<SubId, Vec<(ClientIx, u64, String, u8)>>,
    violations: &mut Vec<Violation>,
) {
    for (sub, list) in deliveries {
        if subs.get(sub).is_some_and(|s| s.group().is_some()) {
            continue;
        }
        let mut highest: BTreeMap<(ClientIx, &str), u64> = BTreeMap::new();
        let mut seen: BTreeSet<(ClientIx, u64)> = BTreeSet::new();
        for (p, seq, topic, qos) in list {
            if *qos == 0 || sent.get(&(*p, *seq)).is_none_or(|m| m.qos == 0) || !seen.insert((*p, *seq)) {
                continue;
            }
            let top = highest.entry((*p, topic.as_str())).or_insert(0);
            if *seq < *top {
                // Sent before this subscription, made after a move of its client: it came with the
                // session, late — it reached the old node after the move and was passed on
                // (ALGORITHM.md, "Sessions across nodes").
                let subscribed = subs.get(sub).map_or(Millis::MAX, |s| s.at); // its SUBACK never came
                let sent_at = sent.get(&(*p, *seq)).map_or(0, |m| m.at);
                let passed_on = sent_at < subscribed && moves_of(subs, sub.client).any(|moved| moved <= subscribed);
                violations.push(Violation {
                    checker: if passed_on { ORDER_AFTER_MOVE } else { ORDER },
                    detail: format!("{sub} got c{p} #{seq} on {topic} after #{top}"),
                });
            } else {
                *top = *seq;
            }
        }
    }
}
