//! Several sans-IO cores joined by a hand-driven "network": route changes and
//! forwards are carried between them by the test, in order, like the peer
//! links carry them, so each step of ALGORITHM.md can be checked exactly.
#![allow(clippy::unwrap_used)]

#[path = "../core_common/mod.rs"]
mod core_common;
mod redirect;

use broker::cluster::routes::{Epoch, NodeName};
use broker::config::{ForwardMode, MqttConfig, SharedStrategy};
use broker::core::cluster::RetainedUpdate;
use broker::core::router::RouteChange;
use core_common::*;
use mqtt_codec::{Packet, QoS, ReasonCode};

const TIMEOUT_MS: u64 = 5_000;

struct Cluster {
    nodes: Vec<(NodeName, Harness)>,
}

impl Cluster {
    fn new(names: &[&str], mode: ForwardMode) -> Self {
        Self::with_strategy(names, mode, SharedStrategy::RoundRobin)
    }

    fn with_strategy(names: &[&str], mode: ForwardMode, strategy: SharedStrategy) -> Self {
        let mut nodes = Vec::new();
        for name in names {
            let config = MqttConfig { shared_subscription_strategy: strategy, ..MqttConfig::default() };
            let mut h = Harness::with_config(config);
            h.broker.join_cluster((*name).into(), mode, TIMEOUT_MS, 1_700_000_000_000);
            nodes.push(((*name).into(), h));
        }
        let mut cluster = Self { nodes };
        // Every link comes up: each node sends its (empty) snapshot to every other.
        for from in 0..cluster.nodes.len() {
            let routes = cluster.nodes[from].1.broker.local_routes();
            cluster.for_others(from, |dest, origin| {
                dest.broker.cluster_mut().unwrap().remote.apply_snapshot(origin, epoch(), routes.clone());
            });
        }
        cluster
    }

    fn node(&mut self, i: usize) -> &mut Harness {
        &mut self.nodes[i].1
    }

    fn for_others(&mut self, from: usize, mut apply: impl FnMut(&mut Harness, &NodeName)) {
        let origin = self.nodes[from].0.clone();
        for (i, (_, h)) in self.nodes.iter_mut().enumerate() {
            if i != from {
                apply(h, &origin);
            }
        }
    }

    /// Carries every route change and forward until nothing moves; forwards
    /// are acknowledged back unless `acks` is false.
    fn settle(&mut self, acks: bool) {
        loop {
            let mut moved = false;
            for from in 0..self.nodes.len() {
                let changes = self.nodes[from].1.broker.take_route_changes();
                moved |= !changes.is_empty();
                self.for_others(from, |dest, origin| {
                    let remote = &mut dest.broker.cluster_mut().unwrap().remote;
                    for change in &changes {
                        match change {
                            RouteChange::Added(f) => remote.apply_add(origin, epoch(), f.clone()),
                            RouteChange::Removed(f) => remote.apply_remove(origin, epoch(), f),
                        };
                    }
                });
                let retained = self.nodes[from].1.broker.take_retained_updates();
                moved |= !retained.is_empty();
                let sent_at = self.nodes[from].1.now;
                self.for_others(from, |dest, _| {
                    for update in &retained {
                        let wire = update.to_wire(sent_at);
                        let now = dest.now;
                        dest.broker.apply_remote_retained(RetainedUpdate::from_wire(wire, now));
                    }
                });
                let forwards = self.nodes[from].1.broker.take_forwards();
                moved |= !forwards.is_empty();
                let origin = self.nodes[from].0.clone();
                for (dest, forward) in forwards {
                    let (id, ack) = (forward.id, forward.ack);
                    let d = self.nodes.iter().position(|(n, _)| *n == dest).expect("a known node");
                    let now = self.nodes[d].1.now;
                    self.nodes[d].1.broker.handle_forward(&origin, 1, *forward, now);
                    if ack && acks {
                        self.nodes[from].1.broker.forward_acked(&dest, id);
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }
}

fn epoch() -> Epoch {
    Epoch { incarnation: 1, generation: 1 }
}

fn payloads(packets: &[Packet]) -> Vec<String> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(String::from_utf8_lossy(&p.payload).into_owned()),
            _ => None,
        })
        .collect()
}

fn acks(packets: &[Packet]) -> Vec<ReasonCode> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::PubAck(a) | Packet::PubRec(a) => Some(a.reason_code),
            _ => None,
        })
        .collect()
}

#[test]
fn a_publish_reaches_subscribers_on_every_node_once_and_is_acknowledged_after_they_accepted_it() {
    let mut c = Cluster::new(&["n1", "n2", "n3"], ForwardMode::Sync);
    let (s2, _) = c.node(1).connect(v5("s2"));
    let (s3, _) = c.node(2).connect(v5("s3"));
    let (p1, _) = c.node(0).connect(v5("p1"));
    c.node(1).send(s2, subscribe(1, &[("t/#", QoS::AtLeastOnce)]));
    c.node(2).send(s3, subscribe(1, &[("t/a", QoS::AtLeastOnce), ("t/+", QoS::AtLeastOnce)]));
    c.settle(true);

    let sent = c.node(0).send(p1, publish("t/a", "m1", QoS::AtLeastOnce, 1));
    assert!(acks(&sent).is_empty(), "the PUBACK waits for the other nodes: {sent:?}");
    c.settle(true);
    assert_eq!(acks(&c.node(0).take(p1)), vec![ReasonCode::SUCCESS]);
    assert_eq!(payloads(&c.node(1).take(s2)), vec!["m1"]);
    // Two overlapping subscriptions on n3 still give one copy (one forward per node).
    assert_eq!(payloads(&c.node(2).take(s3)), vec!["m1"]);
    let counters = c.node(0).broker.cluster().unwrap().counters.clone();
    assert_eq!(counters.forwarded, 2);
}

#[test]
fn a_topic_no_node_routes_is_not_forwarded_and_reports_no_subscribers() {
    let mut c = Cluster::new(&["n1", "n2"], ForwardMode::Sync);
    let (s2, _) = c.node(1).connect(v5("s2"));
    c.node(1).send(s2, subscribe(1, &[("other", QoS::AtLeastOnce)]));
    c.settle(true);
    let (p1, _) = c.node(0).connect(v5("p1"));
    let sent = c.node(0).send(p1, publish("t/a", "m", QoS::AtLeastOnce, 1));
    assert_eq!(acks(&sent), vec![ReasonCode::NO_MATCHING_SUBSCRIBERS]);
    assert!(c.node(0).broker.take_forwards().is_empty());
}

#[test]
fn unsubscribing_the_last_local_subscription_withdraws_the_route() {
    let mut c = Cluster::new(&["n1", "n2"], ForwardMode::Sync);
    let (a, _) = c.node(1).connect(v5("a"));
    let (b, _) = c.node(1).connect(v5("b"));
    c.node(1).send(a, subscribe(1, &[("t/+", QoS::AtMostOnce)]));
    c.node(1).send(b, subscribe(1, &[("t/+", QoS::AtMostOnce)]));
    c.settle(true);
    c.node(1).drop_connection(a);
    c.settle(true);
    assert_eq!(c.node(0).broker.cluster().unwrap().remote.filters_of("n2"), vec![bytestring::ByteString::from("t/+")]);
    c.node(1).send(
        b,
        Packet::Unsubscribe(mqtt_codec::Unsubscribe {
            packet_id: pid(2),
            filters: vec!["t/+".into()],
            user_properties: Vec::new(),
        }),
    );
    c.settle(true);
    assert!(c.node(0).broker.cluster().unwrap().remote.filters_of("n2").is_empty());
}

#[test]
fn a_held_acknowledgement_is_released_when_the_node_goes_down_or_times_out() {
    let mut c = Cluster::new(&["n1", "n2"], ForwardMode::Sync);
    let (s2, _) = c.node(1).connect(v5("s2"));
    c.node(1).send(s2, subscribe(1, &[("t", QoS::ExactlyOnce)]));
    c.settle(true);
    let (p1, _) = c.node(0).connect(v5("p1"));

    // Node down: the QoS 2 PUBREC goes out.
    c.node(0).send(p1, publish("t", "a", QoS::ExactlyOnce, 1));
    c.settle(false);
    assert!(acks(&c.node(0).take(p1)).is_empty());
    c.node(0).broker.node_down("n2");
    assert_eq!(acks(&c.node(0).take(p1)), vec![ReasonCode::SUCCESS]);

    // Silence: the PUBACK goes out when forward_timeout_ms has passed, and is counted.
    c.node(0).send(p1, publish("t", "b", QoS::AtLeastOnce, 2));
    c.settle(false);
    c.node(0).advance(TIMEOUT_MS - 1);
    assert!(acks(&c.node(0).take(p1)).is_empty());
    c.node(0).advance(1);
    assert_eq!(acks(&c.node(0).take(p1)), vec![ReasonCode::SUCCESS]);
    assert_eq!(c.node(0).broker.cluster().unwrap().counters.forward_timeouts, 1);
}

#[test]
fn async_forwarding_acknowledges_at_once() {
    let mut c = Cluster::new(&["n1", "n2"], ForwardMode::Async);
    let (s2, _) = c.node(1).connect(v5("s2"));
    c.node(1).send(s2, subscribe(1, &[("t", QoS::AtLeastOnce)]));
    c.settle(true);
    let (p1, _) = c.node(0).connect(v5("p1"));
    assert_eq!(acks(&c.node(0).send(p1, publish("t", "m", QoS::AtLeastOnce, 1))), vec![ReasonCode::SUCCESS]);
    c.settle(false);
    assert_eq!(payloads(&c.node(1).take(s2)), vec!["m"]);
}

/// Three nodes each with one member of `$share/g/t/+`; publishes `n` messages
/// on n1 and returns how many each node's member got.
fn shared_spread(strategy: SharedStrategy, n: u16, publisher: &str) -> Vec<usize> {
    let mut c = Cluster::with_strategy(&["n1", "n2", "n3"], ForwardMode::Sync, strategy);
    let mut members = Vec::new();
    for i in 0..3 {
        let (m, _) = c.node(i).connect(v5(&format!("m{i}")));
        c.node(i).send(m, subscribe(1, &[("$share/g/t/+", QoS::AtLeastOnce)]));
        members.push(m);
    }
    c.settle(true);
    let (p, _) = c.node(0).connect(v5(publisher));
    for i in 0..n {
        c.node(0).send(p, publish("t/x", &format!("m{i}"), QoS::AtLeastOnce, i + 1));
        c.settle(true);
    }
    (0..3).map(|i| payloads(&c.node(i).take(members[i])).len()).collect()
}

#[test]
fn a_shared_group_gets_one_copy_cluster_wide_whatever_the_strategy() {
    for strategy in [
        SharedStrategy::RoundRobin,
        SharedStrategy::Random,
        SharedStrategy::Sticky,
        SharedStrategy::HashClientid,
        SharedStrategy::Local,
    ] {
        let spread = shared_spread(strategy, 12, "p");
        assert_eq!(spread.iter().sum::<usize>(), 12, "{strategy:?}: one copy per message: {spread:?}");
        match strategy {
            SharedStrategy::RoundRobin => assert_eq!(spread, vec![4, 4, 4], "round robin over the nodes"),
            SharedStrategy::Local => assert_eq!(spread, vec![12, 0, 0], "the publisher's node serves"),
            SharedStrategy::Sticky | SharedStrategy::HashClientid => {
                assert_eq!(spread.iter().filter(|n| **n > 0).count(), 1, "{strategy:?}: one node: {spread:?}")
            }
            SharedStrategy::Random => {}
        }
    }
}

#[test]
fn hash_clientid_spreads_publishers_but_keeps_each_on_one_node() {
    let mut nodes_used = std::collections::BTreeSet::new();
    for p in 0..12 {
        let spread = shared_spread(SharedStrategy::HashClientid, 3, &format!("publisher-{p}"));
        assert_eq!(spread.iter().filter(|n| **n > 0).count(), 1, "{spread:?}");
        nodes_used.insert(spread.iter().position(|n| *n > 0));
    }
    assert!(nodes_used.len() > 1, "different publishers reach different nodes");
}

#[test]
fn a_shared_group_without_a_local_member_is_served_by_a_node_that_has_one() {
    let mut c = Cluster::new(&["n1", "n2", "n3"], ForwardMode::Sync);
    let (m2, _) = c.node(1).connect(v5("m2"));
    let (m3, _) = c.node(2).connect(v5("m3"));
    c.node(1).send(m2, subscribe(1, &[("$share/g/t/+", QoS::AtLeastOnce)]));
    c.node(2).send(m3, subscribe(1, &[("$share/g/t/+", QoS::AtLeastOnce)]));
    c.settle(true);
    let (p1, _) = c.node(0).connect(v5("p1"));
    for i in 0..4u16 {
        let sent = c.node(0).send(p1, publish("t/x", &format!("m{i}"), QoS::AtLeastOnce, i + 1));
        assert!(acks(&sent).is_empty(), "held until the serving node accepted it");
        c.settle(true);
        assert_eq!(acks(&c.node(0).take(p1)), vec![ReasonCode::SUCCESS]);
    }
    let on2 = payloads(&c.node(1).take(m2));
    let on3 = payloads(&c.node(2).take(m3));
    assert_eq!((on2.len(), on3.len()), (2, 2), "{on2:?} {on3:?}");
}

#[test]
fn a_forwarded_message_keeps_its_properties_and_remaining_expiry() {
    let mut c = Cluster::new(&["n1", "n2"], ForwardMode::Sync);
    let (s2, _) = c.node(1).connect(v5("s2"));
    c.node(1).send(s2, subscribe(1, &[("t", QoS::AtLeastOnce)]));
    c.settle(true);
    let (p1, _) = c.node(0).connect(v5("p1"));
    let mut packet = publish("t", "m", QoS::AtLeastOnce, 1);
    if let Packet::Publish(p) = &mut packet {
        p.properties.message_expiry_interval = Some(60);
        p.properties.content_type = Some("text/plain".into());
    }
    c.node(0).send(p1, packet);
    c.settle(true);
    let got = c.node(1).take(s2);
    let Some(Packet::Publish(p)) = got.iter().find(|p| matches!(p, Packet::Publish(_))) else { panic!("{got:?}") };
    assert_eq!(p.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.properties.message_expiry_interval, Some(60));
}

fn retained_payloads(h: &mut Harness, id: &str, filter: &str) -> Vec<String> {
    let (c, _) = h.connect(v5(id));
    let got = h.send(c, subscribe(1, &[(filter, QoS::AtMostOnce)]));
    let mut p = payloads(&got);
    p.sort();
    p
}

#[test]
fn retained_messages_are_visible_from_every_node() {
    let mut c = Cluster::new(&["n1", "n2", "n3"], ForwardMode::Sync);
    let (p1, _) = c.node(0).connect(v5("p1"));
    c.node(0).send(p1, retained("r/a", "a1", QoS::AtLeastOnce, 1));
    c.node(0).send(p1, retained("r/b", "b1", QoS::AtMostOnce, 0));
    c.settle(true);
    for i in 0..3 {
        assert_eq!(retained_payloads(c.node(i), &format!("s{i}"), "r/#"), vec!["a1", "b1"], "node {i}");
    }
    // A clear on another node clears it everywhere.
    let (p3, _) = c.node(2).connect(v5("p3"));
    c.node(2).send(p3, retained("r/a", "", QoS::AtMostOnce, 0));
    c.settle(true);
    for i in 0..3 {
        assert_eq!(retained_payloads(c.node(i), &format!("t{i}"), "r/#"), vec!["b1"], "node {i}");
    }
}

#[test]
fn concurrent_retained_writes_converge_to_the_same_winner_on_every_node() {
    let mut c = Cluster::new(&["n1", "n2"], ForwardMode::Sync);
    let (p1, _) = c.node(0).connect(v5("p1"));
    let (p2, _) = c.node(1).connect(v5("p2"));
    // A partition: both write the same topic, neither hears the other.
    c.node(0).now = 1_000;
    c.node(1).now = 1_005;
    c.node(0).send(p1, retained("r", "from-n1", QoS::AtMostOnce, 0));
    c.node(1).send(p2, retained("r", "from-n2", QoS::AtMostOnce, 0));
    // Heal: each side's writes reach the other, in either order.
    c.settle(true);
    let on1 = retained_payloads(c.node(0), "s1", "r");
    let on2 = retained_payloads(c.node(1), "s2", "r");
    assert_eq!(on1, on2, "both nodes keep the same retained message");
    assert_eq!(on1, vec!["from-n2"], "the later write wins");
    // An older write arriving late loses.
    let counters = c.node(1).broker.cluster().unwrap().counters.clone();
    assert_eq!(counters.retained_superseded, 1);
}

fn persistent(id: &str) -> mqtt_codec::Connect {
    let mut c = connect(mqtt_codec::ProtocolVersion::V5, id, false);
    c.properties.session_expiry_interval = Some(300);
    c
}

/// Moves `client`'s session from node `from` to node `to` as the links would, through the wire format.
fn move_session(c: &mut Cluster, from: usize, to: usize, client: &str, discard: bool) -> bool {
    let now = c.node(from).now;
    let exported = c.node(from).broker.export_session(client, discard, now);
    let Some(transfer) = exported else { return false };
    // As the link does: what reaches the old node late follows the session.
    let to_name = c.nodes[to].0.clone();
    c.node(from).broker.session_moved(&to_name, &transfer, now);
    let wire = transfer.to_wire(now);
    let now = c.node(to).now;
    let transfer = broker::core::transfer::SessionTransfer::from_wire(wire, now).expect("well-formed");
    c.node(to).broker.import_session(transfer, now);
    true
}

#[test]
fn a_persistent_session_moves_with_its_client_and_gets_what_was_queued_while_away() {
    let mut c = Cluster::new(&["n1", "n2"], ForwardMode::Sync);
    let (s, _) = c.node(0).connect(persistent("mover"));
    c.node(0).send(s, subscribe(1, &[("m/#", QoS::AtLeastOnce)]));
    c.node(0).drop_connection(s);
    c.settle(true);
    let (p, _) = c.node(1).connect(v5("p"));
    for i in 0..3u16 {
        c.node(1).send(p, publish("m/x", &format!("q{i}"), QoS::AtLeastOnce, i + 1));
        c.settle(true);
    }
    // The client comes back on n2.
    assert!(move_session(&mut c, 0, 1, "mover", false));
    c.settle(true);
    assert!(c.node(1).broker.cluster().unwrap().remote.filters_of("n1").is_empty(), "n1 withdrew its route");
    assert_eq!(c.node(0).broker.cluster().unwrap().remote.filters_of("n2"), vec![bytestring::ByteString::from("m/#")]);
    let (s2, got) = c.node(1).connect(persistent("mover"));
    let Packet::ConnAck(ack) = &got[0] else { panic!("{got:?}") };
    assert!(ack.session_present);
    assert_eq!(payloads(&got), vec!["q0", "q1", "q2"]);
    // And it keeps receiving on its new node.
    c.node(1).send(p, publish("m/y", "after", QoS::AtLeastOnce, 9));
    c.settle(true);
    assert_eq!(payloads(&c.node(1).take(s2)), vec!["after"]);
}

#[test]
fn a_live_connection_is_closed_with_0x8e_when_its_session_moves() {
    let mut c = Cluster::new(&["n1", "n2"], ForwardMode::Sync);
    let (s, _) = c.node(0).connect(persistent("mover"));
    c.node(0).send(s, subscribe(1, &[("m", QoS::AtLeastOnce)]));
    assert!(move_session(&mut c, 0, 1, "mover", false));
    let closing = c.node(0).take(s);
    assert!(
        closing.iter().any(|p| matches!(p, Packet::Disconnect(d) if d.reason_code == ReasonCode::SESSION_TAKEN_OVER)),
        "{closing:?}"
    );
    // A clean start discards the session instead of moving it.
    let (s2, _) = c.node(1).connect(persistent("mover"));
    c.node(1).drop_connection(s2);
    assert!(!move_session(&mut c, 1, 0, "mover", true));
    assert_eq!(c.node(1).broker.session_count(), 0);
}

#[test]
fn a_departing_member_hands_its_unacknowledged_messages_to_a_member_on_another_node() {
    let mut c = Cluster::with_strategy(&["n1", "n2"], ForwardMode::Sync, SharedStrategy::Local);
    let (m1, _) = c.node(0).connect(v5("m1"));
    let (m2, _) = c.node(1).connect(v5("m2"));
    let (d2, _) = c.node(1).connect(v5("d2"));
    c.node(0).send(m1, subscribe(1, &[("$share/g/t", QoS::AtLeastOnce)]));
    c.node(1).send(m2, subscribe(1, &[("$share/g/t", QoS::AtLeastOnce)]));
    // A direct subscriber on n2 must not get the handed-over copy a second time.
    c.node(1).send(d2, subscribe(1, &[("t", QoS::AtLeastOnce)]));
    c.settle(true);
    let (p, _) = c.node(0).connect(v5("p"));
    c.node(0).send(p, publish("t", "unacked", QoS::AtLeastOnce, 1));
    c.settle(true);
    assert_eq!(payloads(&c.node(0).take(m1)), vec!["unacked"], "local strategy: n1's member gets it");
    assert_eq!(payloads(&c.node(1).take(d2)), vec!["unacked"]);
    assert!(payloads(&c.node(1).take(m2)).is_empty());
    // m1 leaves without acknowledging: its session ends, the message moves to n2's member.
    c.node(0).drop_connection(m1);
    c.settle(true);
    assert_eq!(payloads(&c.node(1).take(m2)), vec!["unacked"]);
    assert!(payloads(&c.node(1).take(d2)).is_empty(), "the direct subscriber already had it");
}

#[test]
fn a_client_id_connected_on_two_nodes_keeps_only_its_later_connection() {
    use broker::cluster::node::ClusterShell;
    use broker::config::ClusterConfig;
    let mut c = Cluster::new(&["n1", "n2"], ForwardMode::Sync);
    let shells: Vec<ClusterShell> =
        ["n1", "n2"].iter().map(|n| ClusterShell::new((*n).into(), 1, ClusterConfig::default())).collect();
    // As across a partition: each side connects the client, n2 later.
    let (early, _) = c.node(0).connect(persistent("twice"));
    let early_stamp = c.node(0).broker.cluster_stamp(0).unwrap();
    shells[0].connected(early, &"twice".into(), early_stamp);
    c.node(1).now = 10;
    let (late, _) = c.node(1).connect(persistent("twice"));
    let late_stamp = c.node(1).broker.cluster_stamp(10).unwrap();
    shells[1].connected(late, &"twice".into(), late_stamp);
    assert!(early_stamp < late_stamp);
    assert_eq!(shells[0].connected_clients(&c.node(0).broker), vec![("twice".into(), early_stamp)]);

    // The heal: each learns the other's connection; only the earlier one loses.
    let n1: NodeName = "n1".into();
    let n2: NodeName = "n2".into();
    assert!(!shells[1].settle(&mut c.nodes[1].1.broker, &n1, "twice", early_stamp, 10));
    assert!(shells[0].settle(&mut c.nodes[0].1.broker, &n2, "twice", late_stamp, 10));
    let closing = c.node(0).take(early);
    assert!(
        closing.iter().any(|p| matches!(p, Packet::Disconnect(d) if d.reason_code == ReasonCode::SESSION_TAKEN_OVER)),
        "{closing:?}"
    );
    assert_eq!(c.node(0).broker.session_count(), 0, "the loser's session is discarded");
    assert!(c.node(1).broker.connection_of("twice").is_some());
    assert!(shells[0].connected_clients(&c.node(0).broker).is_empty());

    // Equal stamps: the smaller node name loses, on both sides alike.
    let mut c = Cluster::new(&["n1", "n2"], ForwardMode::Sync);
    let stamp = broker::core::cluster::Stamp { wall_ms: 5, counter: 0 };
    let (a, _) = c.node(0).connect(persistent("tie"));
    shells[0].connected(a, &"tie".into(), stamp);
    let (b, _) = c.node(1).connect(persistent("tie"));
    shells[1].connected(b, &"tie".into(), stamp);
    assert!(!shells[1].settle(&mut c.nodes[1].1.broker, &n1, "tie", stamp, 0));
    assert!(shells[0].settle(&mut c.nodes[0].1.broker, &n2, "tie", stamp, 0));
}

#[test]
fn two_connects_of_one_client_racing_on_two_nodes_leave_only_the_later_one() {
    use broker::cluster::node::ClusterShell;
    use broker::config::ClusterConfig;
    use broker::core::cluster::Stamp;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let shells: Vec<ClusterShell> =
        ["n1", "n2"].iter().map(|n| ClusterShell::new((*n).into(), 1, ClusterConfig::default())).collect();
    let (early, late) = (Stamp { wall_ms: 1, counter: 0 }, Stamp { wall_ms: 2, counter: 0 });
    // Both CONNECTs are taking over at once (no peer is reachable here, so the calls return at once).
    let client: bytestring::ByteString = "racer".into();
    runtime.block_on(shells[0].take_over(&client, false, early, 0));
    runtime.block_on(shells[1].take_over(&client, false, late, 0));
    // Each request reaches the other node while its own CONNECT is pending.
    assert_eq!(shells[1].race(&"n1".into(), "racer", early), Some(late), "n2's is later: n1 is told so");
    assert_eq!(shells[0].race(&"n2".into(), "racer", late), None, "n1's is earlier: it hands over");
    assert!(!shells[0].connected(1, &client, early), "n1's connection must close as soon as it attaches");
    assert!(shells[1].connected(1, &client, late));
    // A CONNECT without a competitor keeps its connection.
    runtime.block_on(shells[0].take_over(&"alone".into(), false, late, 0));
    assert!(shells[0].connected(2, &"alone".into(), late));
}
