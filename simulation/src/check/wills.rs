//! (i) Wills (ALGORITHM.md, "Wills"; MQTT 5 3.1.2.5 and 3.1.3.2.2): a will
//! is published once when its connection ends without DISCONNECT and no
//! new connection of its client comes within its delay, and never when the
//! client disconnected normally or a new connection took its session over.

use std::collections::{BTreeMap, BTreeSet};

use super::{MEMBERS_MAX, Violation};
use crate::history::{ClientIx, Ending, Event, Millis, NodeIx};
use crate::scenario::Fault;

/// (i) Wills are published once when due, never when cancelled.
pub const WILL: &str = "will-published-once-when-due";
/// (i), where a peer believed the will's node down (it kept no link to it:
/// a partition, a false suspicion, or a crash) while the connection lived:
/// a guardian cannot tell a node it cannot reach from a dead one, and
/// publishes the will of a live connection, or of one a reconnect took
/// over, or one its node published already. Reported apart, as a known gap.
pub const WILL_WHILE_DOWN: &str = "will-published-once-when-due (its node believed down by a peer: known gap)";

/// How far apart the client's view of a moment and the broker's may be
/// (a network hop each way, and the broker noticing a closed stream).
const SLACK_MS: Millis = 50;
/// After the delay, how long a live node may take to publish a will.
const LIVE_LATE_MS: Millis = 1_000;
/// After the delay, how long a guardian may take to publish the will of a
/// node that died: detecting the death (SWIM probes and suspicion), then
/// the route grace (`run::ROUTE_GRACE_MS`), then a margin.
const DEAD_LATE_MS: Millis = 12_000;
/// How long a client may take to notice that the broker ended its connection
/// (1.5 x its keep alive, `client::SILENCE_MAX_MS`, and a margin).
const NOTICE_MS: Millis = 10_000;

/// One connection of a client with a will.
#[derive(Debug)]
struct Conn {
    node: NodeIx,
    opened: Millis,
    /// The delay that applies, in seconds (its Will Delay Interval, bounded by the session expiry).
    delay_secs: u32,
    ended: Option<(Millis, Ending)>,
}

/// A watcher got a will: (watcher, when, its DUP flag).
type Receipt = (ClientIx, Millis, bool);

/// What the will checker needs, gathered while `check` reads the history.
#[derive(Debug, Default)]
pub(super) struct Wills {
    conns: BTreeMap<(ClientIx, u32), Conn>,
    /// (client, connection) -> each receipt of its will.
    receipts: BTreeMap<(ClientIx, u32), Vec<Receipt>>,
    /// watcher -> its node and when it first watched.
    watchers: BTreeMap<ClientIx, (NodeIx, Millis)>,
    crashes: Vec<(Millis, NodeIx)>,
    /// Spans during which a running peer kept no link to a node: (node, from, until).
    down: Vec<(NodeIx, Millis, Millis)>,
    /// (observer, node) -> since when the running observer keeps no link to node.
    down_since: BTreeMap<(NodeIx, NodeIx), Millis>,
    /// Crashed nodes not restarted yet: their (empty) views count for nothing.
    dead: BTreeSet<NodeIx>,
    end: Millis,
}

impl Wills {
    pub fn observe(&mut self, at: Millis, event: &Event) {
        self.end = at;
        match event {
            Event::Opened { client, conn, node, will_delay } => {
                let c = Conn { node: *node, opened: at, delay_secs: *will_delay, ended: None };
                self.conns.insert((*client, *conn), c);
            }
            Event::Ended { client, conn, how } => {
                if let Some(c) = self.conns.get_mut(&(*client, *conn)) {
                    c.ended.get_or_insert((at, *how));
                }
            }
            Event::WillWatched { watcher, node } => {
                self.watchers.entry(*watcher).or_insert((*node, at));
            }
            Event::WillDelivered { watcher, client, conn, dup } => {
                self.receipts.entry((*client, *conn)).or_default().push((*watcher, at, *dup));
            }
            Event::Fault { fault: Fault::Crash(node) } => {
                self.crashes.push((at, *node));
                self.dead.insert(*node);
                for other in 0..MEMBERS_MAX {
                    if let Some(from) = self.down_since.remove(&(*node, other)) {
                        self.down.push((other, from, at));
                    }
                }
            }
            Event::NodeStarted { node, .. } => {
                self.dead.remove(node);
            }
            Event::Members { observer, members } if !self.dead.contains(observer) => {
                for other in (0..MEMBERS_MAX).filter(|o| o != observer) {
                    let linked = members.iter().any(|(m, _)| *m == other);
                    match (linked, self.down_since.get(&(*observer, other)).copied()) {
                        (false, None) => {
                            self.down_since.insert((*observer, other), at);
                        }
                        (true, Some(from)) => {
                            self.down_since.remove(&(*observer, other));
                            self.down.push((other, from, at));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether `node` crashed within [from, to].
    fn crashed(&self, node: NodeIx, from: Millis, to: Millis) -> bool {
        self.crashes.iter().any(|&(t, n)| n == node && from <= t && t <= to)
    }

    /// Whether a running peer kept no link to `node` at some moment of [from, to].
    fn believed_down(&self, node: NodeIx, from: Millis, to: Millis) -> bool {
        self.down.iter().any(|&(n, a, b)| n == node && a <= to && from < b)
            || self.down_since.iter().any(|(&(_, n), &a)| n == node && a <= to)
    }

    /// Whether some watcher watched from before `at` to the end on a node that never crashed after it began.
    fn watched(&self, at: Millis) -> bool {
        self.watchers.values().any(|&(node, since)| since <= at && !self.crashed(node, since, Millis::MAX))
    }

    /// (i) For every connection C of a client with a will W, opened on node
    /// N, ended at `t_end` as its client saw it, with delay D (its Will
    /// Delay Interval, bounded by its session expiry):
    /// 1. W reaches no watcher twice as a new message (a QoS 1 resend carries DUP);
    /// 2. W is not published while C is open: before `t_end` (less
    ///    `SLACK_MS`), or at all while C never ended and its client had
    ///    `NOTICE_MS` to notice an end;
    /// 3. W is never published when C ended with the client's DISCONNECT
    ///    0x00 ([MQTT-3.1.2-10]), unless N *died holding it*: crashed from
    ///    C's opening to `t_end` + D + `LIVE_LATE_MS` (the DISCONNECT may
    ///    not have reached it);
    /// 4. W is never published when D > 0 and a new connection took the
    ///    session over: the client connected to another node while C was
    ///    open, or the broker closed C with 0x8E ([MQTT-3.1.3-9]);
    /// 5. W is never published when C ended otherwise, D > 0, and the
    ///    client's next connection got its CONNACK before `t_end` + D ([MQTT-3.1.3-9]);
    /// 6. W is published when C ended otherwise (a drop without DISCONNECT,
    ///    a close by the broker, a broken connection), the client's next
    ///    connection came no sooner than `t_end` + D + L (or never), the
    ///    run went on past that, a watcher watched from before `t_end` on a
    ///    node that never crashed, and no other node crashed by then (it may
    ///    have been the guardian). L is `LIVE_LATE_MS`, or `DEAD_LATE_MS`
    ///    when N died holding W: its guardian publishes W
    ///    ([MQTT-3.1.2-8], ALGORITHM.md "Wills").
    ///
    /// A breach of 1 to 5 while a running peer kept no link to N, at some
    /// moment from C's CONNECT (no earlier than the client's previous
    /// connection's end) to W's first publication, is the known gap `WILL_WHILE_DOWN`.
    pub fn check(&self, violations: &mut Vec<Violation>) {
        let none = Vec::new();
        for (&(client, n), c) in &self.conns {
            let receipts = self.receipts.get(&(client, n)).unwrap_or(&none);
            let published = receipts.first().map(|(_, at, _)| *at);
            // The CONNECT reached N before the CONNACK came back, as early as the previous connection's end.
            let connecting = self.conns.get(&(client, n - 1)).and_then(|p| p.ended).map_or(c.opened, |(t, _)| t);
            let checker = match published {
                Some(at) if self.believed_down(c.node, connecting, at) => WILL_WHILE_DOWN,
                _ => WILL,
            };
            let mut fail = |detail: String| {
                violations.push(Violation {
                    checker,
                    detail: format!("c{client} connection {n} on n{}: {detail}", c.node + 1),
                })
            };
            let mut fresh: BTreeMap<ClientIx, usize> = BTreeMap::new();
            for (watcher, _, dup) in receipts {
                *fresh.entry(*watcher).or_default() += usize::from(!dup);
            }
            if let Some((watcher, times)) = fresh.iter().find(|(_, k)| **k > 1) {
                fail(format!("its will reached c{watcher} {times} times"));
            }
            let open_until = c.ended.map_or(self.end.saturating_sub(NOTICE_MS), |(t, _)| t.saturating_sub(SLACK_MS));
            if let Some(at) = published.filter(|at| *at < open_until) {
                let end = c.ended.map_or_else(|| "never ended".to_string(), |(t, _)| format!("ended at {t} ms"));
                fail(format!("its will was published at {at} ms while the connection was open (it {end})"));
                continue;
            }
            let Some((t_end, how)) = c.ended else { continue };
            let delay = u64::from(c.delay_secs) * 1000;
            // N died before it could publish the will itself (or before the DISCONNECT reached it).
            let holder_died = self.crashed(c.node, c.opened, t_end + delay + LIVE_LATE_MS);
            let next = self.conns.get(&(client, n + 1)).map(|next| next.opened);
            match (how, published) {
                (Ending::Disconnect, Some(at)) if !holder_died => {
                    fail(format!("its will was published at {at} ms after a DISCONNECT at {t_end} ms"));
                }
                (Ending::Moved | Ending::TakenOver, Some(at)) if delay > 0 => {
                    fail(format!("its will was published at {at} ms, though its session was taken over at {t_end} ms"));
                }
                (Ending::Dropped | Ending::Closed, Some(at))
                    if delay > 0 && next.is_some_and(|t| t + SLACK_MS < t_end + delay) =>
                {
                    fail(format!(
                        "its will was published at {at} ms, though it ended at {t_end} ms and connection {} opened \
                         at {} ms, within the will delay",
                        n + 1,
                        next.unwrap_or_default()
                    ));
                }
                (Ending::Dropped | Ending::Closed, None) => {
                    let due = t_end + delay + if holder_died { DEAD_LATE_MS } else { LIVE_LATE_MS };
                    let guardian_lost = self.crashes.iter().any(|&(t, node)| node != c.node && t_end <= t && t <= due);
                    if next.is_none_or(|t| t > due) && self.end > due && self.watched(t_end) && !guardian_lost {
                        fail(format!(
                            "ended at {t_end} ms ({how}{}), its will was never published (due by {due} ms)",
                            if holder_died { ", its node crashed" } else { "" }
                        ));
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WATCHER: ClientIx = 9;

    /// The checker names `events` (each at its time) make the will checker report.
    fn check(events: &[(Millis, Event)]) -> Vec<&'static str> {
        let mut wills = Wills::default();
        wills.observe(0, &Event::WillWatched { watcher: WATCHER, node: 0 });
        for (at, event) in events {
            wills.observe(*at, event);
        }
        let mut violations = Vec::new();
        wills.check(&mut violations);
        violations.into_iter().map(|v| v.checker).collect()
    }

    fn opened(conn: u32, at: Millis) -> (Millis, Event) {
        (at, Event::Opened { client: 1, conn, node: 0, will_delay: 1 })
    }

    fn ended(conn: u32, at: Millis, how: Ending) -> (Millis, Event) {
        (at, Event::Ended { client: 1, conn, how })
    }

    fn will(conn: u32, at: Millis, dup: bool) -> (Millis, Event) {
        (at, Event::WillDelivered { watcher: WATCHER, client: 1, conn, dup })
    }

    fn end_of_run(at: Millis) -> (Millis, Event) {
        (at, Event::Converged)
    }

    #[test]
    fn a_will_after_a_normal_disconnect_is_a_violation() {
        let run = [opened(1, 100), ended(1, 1_000, Ending::Disconnect), will(1, 2_000, false), end_of_run(30_000)];
        assert_eq!(check(&run), [WILL]);
    }

    #[test]
    fn a_dropped_connection_publishes_its_will_once_after_its_delay() {
        let run = [opened(1, 100), ended(1, 1_000, Ending::Dropped), will(1, 2_000, false), end_of_run(30_000)];
        assert!(check(&run).is_empty());
        let resent = [opened(1, 100), ended(1, 1_000, Ending::Dropped), will(1, 2_000, false), will(1, 2_500, true)];
        assert!(check(&resent).is_empty());
        let twice = [opened(1, 100), ended(1, 1_000, Ending::Dropped), will(1, 2_000, false), will(1, 2_500, false)];
        assert_eq!(check(&twice), [WILL]);
        let never = [opened(1, 100), ended(1, 1_000, Ending::Dropped), end_of_run(30_000)];
        assert_eq!(check(&never), [WILL]);
    }

    #[test]
    fn a_reconnect_within_the_delay_cancels_the_will() {
        let back = [opened(1, 100), ended(1, 1_000, Ending::Dropped), opened(2, 1_300), end_of_run(30_000)];
        assert!(check(&back).is_empty());
        let published = [opened(1, 100), ended(1, 1_000, Ending::Dropped), opened(2, 1_300), will(1, 2_000, false)];
        assert_eq!(check(&published), [WILL]);
        let moved = [opened(1, 100), ended(1, 1_000, Ending::Moved), opened(2, 1_010), will(1, 2_000, false)];
        assert_eq!(check(&moved), [WILL]);
    }

    #[test]
    fn a_will_of_a_live_connection_is_a_known_gap_while_a_peer_believes_its_node_down() {
        let live = [opened(1, 100), will(1, 2_000, false), end_of_run(30_000)];
        assert_eq!(check(&live), [WILL]);
        let unlinked = (1_500, Event::Members { observer: 1, members: vec![(2, true)] });
        let suspected = [opened(1, 100), unlinked, will(1, 2_000, false), end_of_run(30_000)];
        assert_eq!(check(&suspected), [WILL_WHILE_DOWN]);
    }
}
