//! (e) Shared subscriptions: an acknowledged message reaches its group.

use std::collections::{BTreeMap, BTreeSet};

use mqtt_codec::topic::matches;

use super::{RouteSpans, Sent, Sub, Violation, held_throughout};
use crate::history::{ClientIx, Millis, NodeIx, SubId};

/// (e) Acknowledged messages reach a member of every matching shared group.
pub const GROUP_DELIVERED: &str = "acknowledged-reaches-shared-groups";
/// (e), where the publishing node had no peer link to a node with a member
/// (the known gap of (a), seen from a group): reported apart.
pub const GROUP_WHILE_DOWN: &str = "acknowledged-reaches-shared-groups (no link to a member's node: known gap)";

/// What the history says, as `check` collected it.
#[derive(Debug)]
pub(super) struct Facts<'a> {
    pub subs: &'a BTreeMap<SubId, Sub>,
    pub sent: &'a BTreeMap<(ClientIx, u64), Sent>,
    pub acked: &'a BTreeMap<(ClientIx, u64), Millis>,
    pub deliveries: &'a BTreeMap<SubId, Vec<(ClientIx, u64, String, u8)>>,
    pub spans: &'a RouteSpans,
}

/// (e) A message M acknowledged to its publisher reaches at least one member
/// (any subscription of any client that joined the group, at any time) of
/// every group G = `$share/{g}/{F}` with F matching M's topic, when:
/// 1. G had a *serving* member S: subscribed before M was sent, surviving,
///    and on M's node A or held by A as route (`node(S)`, `$share/{g}/{F}`)
///    throughout [`t_send`, `t_ack`] (as in (a));
/// 2. no node crashed at or after `t_send`: a crash loses what the members
///    on it held (their queues and unacknowledged messages die with the
///    node's memory), and a member's own leaving must not: its messages are
///    handed to another member (ALGORITHM.md, "Forwarding", shared groups).
///
/// A loss where A had no connected link (none, or one still dialling) to a
/// node holding members at some moment of [`t_send`, `t_ack`] is the known
/// gap of (a) and is reported apart: A may pick that node to serve the
/// group (its routes stay until it is known dead or a new incarnation
/// replaces them), drop the forward, and release the acknowledgement at
/// the timeout or node-down, though members on other nodes were alive.
pub(super) fn acknowledged_reaches_groups(
    facts: &Facts<'_>,
    unlinked_spans: &BTreeMap<(NodeIx, NodeIx), Vec<(Millis, Millis)>>,
    crashes: &[(Millis, NodeIx)],
    violations: &mut Vec<Violation>,
) {
    let mut groups: BTreeMap<(&str, &str), Vec<&Sub>> = BTreeMap::new();
    let mut clients: BTreeMap<(&str, &str), BTreeSet<ClientIx>> = BTreeMap::new();
    for (id, s) in facts.subs {
        if let Some(group) = s.group() {
            groups.entry(group).or_default().push(s);
            clients.entry(group).or_default().insert(id.client);
        }
    }
    if groups.is_empty() {
        return;
    }
    // (publisher, seq) -> the clients that got it.
    let mut got: BTreeMap<(ClientIx, u64), BTreeSet<ClientIx>> = BTreeMap::new();
    for (sub, list) in facts.deliveries {
        for (p, seq, _, _) in list {
            got.entry((*p, *seq)).or_default().insert(sub.client);
        }
    }
    let no_one = BTreeSet::new();
    for (&(publisher, seq), &t_ack) in facts.acked {
        let Some(m) = facts.sent.get(&(publisher, seq)) else { continue };
        if m.qos == 0 || crashes.iter().any(|&(t, _)| t >= m.at) {
            continue;
        }
        let receivers = got.get(&(publisher, seq)).unwrap_or(&no_one);
        for (key, members) in &groups {
            let (group, filter) = *key;
            if !matches(filter, &m.topic) {
                continue;
            }
            let serving = members.iter().any(|s| {
                s.at <= m.at
                    && s.qos >= 1
                    && s.ended.is_none()
                    && (s.node == m.node || held_throughout(facts.spans, m.node, s.node, &s.filter, m.at, t_ack))
            });
            let member_clients = clients.get(key).unwrap_or(&no_one);
            if !serving || !receivers.is_disjoint(member_clients) {
                continue;
            }
            let down = members.iter().any(|s| {
                s.node != m.node
                    && unlinked_spans
                        .get(&(m.node, s.node))
                        .is_some_and(|list| list.iter().any(|&(a, b)| a <= t_ack && m.at < b))
            });
            violations.push(Violation {
                checker: if down { GROUP_WHILE_DOWN } else { GROUP_DELIVERED },
                detail: format!(
                    "c{publisher} #{seq} on {} (sent {} ms to n{}, acknowledged {t_ack} ms) reached no member of \
                     $share/{group}/{filter}",
                    m.topic,
                    m.at,
                    m.node + 1
                ),
            });
        }
    }
}
