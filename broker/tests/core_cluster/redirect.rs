//! Forwards that reach a node after a session left it, and shared-group
//! messages caught by a node's departure (ALGORITHM.md, "Sessions across
//! nodes" and "Forwarding").

use super::*;
use broker::cluster::wire::Forward;

const LATE: &str = "m/late";

/// n1 publishes; "mover" (offline, persistent, `m/#`) lives on n2 and will move to n3.
fn three_nodes_with_mover() -> (Cluster, broker::core::ConnId) {
    let mut c = Cluster::new(&["n1", "n2", "n3"], ForwardMode::Sync);
    let (s, _) = c.node(1).connect(persistent("mover"));
    c.node(1).send(s, subscribe(1, &[("m/#", QoS::AtLeastOnce)]));
    c.node(1).drop_connection(s);
    let (p, _) = c.node(0).connect(v5("p"));
    c.settle(true);
    (c, p)
}

/// Publishes on n1 and keeps the forwards it makes instead of carrying them.
fn publish_held(
    c: &mut Cluster,
    p: broker::core::ConnId,
    payload: &str,
    packet_id: u16,
) -> Vec<(NodeName, Box<Forward>)> {
    c.node(0).send(p, publish(LATE, payload, QoS::AtLeastOnce, packet_id));
    c.node(0).broker.take_forwards()
}

/// Hands n1's held forward for `dest` to it, as its link finally would.
fn arrive(c: &mut Cluster, held: &mut Vec<(NodeName, Box<Forward>)>, dest: usize) {
    let name = c.nodes[dest].0.clone();
    let i = held.iter().position(|(n, _)| *n == name).expect("a forward for that node");
    let (_, forward) = held.remove(i);
    let now = c.node(dest).now;
    c.node(dest).broker.handle_forward(&"n1".into(), 1, *forward, now);
}

fn reconnect(c: &mut Cluster, node: usize) -> Vec<String> {
    let (_, got) = c.node(node).connect(persistent("mover"));
    let Packet::ConnAck(ack) = &got[0] else { panic!("{got:?}") };
    assert!(ack.session_present);
    payloads(&got)
}

fn counters(c: &mut Cluster, node: usize) -> broker::core::cluster::ClusterCounters {
    c.node(node).broker.cluster().unwrap().counters.clone()
}

#[test]
fn a_forward_reaching_the_old_node_after_the_session_left_is_delivered_where_it_went() {
    let (mut c, p) = three_nodes_with_mover();
    let mut held = publish_held(&mut c, p, "late", 1);
    assert!(move_session(&mut c, 1, 2, "mover", false));
    c.settle(true);
    arrive(&mut c, &mut held, 1);
    c.settle(true);
    c.node(0).send(p, publish(LATE, "after", QoS::AtLeastOnce, 2));
    c.settle(true);
    assert_eq!(reconnect(&mut c, 2), vec!["late", "after"]);
    assert_eq!(counters(&mut c, 1).redirects_sent, 1);
    assert_eq!(counters(&mut c, 2).redirects_delivered, 1);
}

#[test]
fn a_message_the_new_node_got_after_the_session_came_is_not_delivered_twice() {
    let (mut c, p) = three_nodes_with_mover();
    // Another subscriber on n3: n1 sends the message to both n2 and n3.
    let (o, _) = c.node(2).connect(v5("other"));
    c.node(2).send(o, subscribe(1, &[("m/#", QoS::AtLeastOnce)]));
    c.settle(true);
    let mut held = publish_held(&mut c, p, "x", 1);
    assert!(move_session(&mut c, 1, 2, "mover", false));
    c.settle(true);
    arrive(&mut c, &mut held, 2); // After the session came: matched against it there.
    arrive(&mut c, &mut held, 1); // Late on the old node: passed on, and dropped as a copy.
    c.settle(true);
    assert_eq!(reconnect(&mut c, 2), vec!["x"]);
    assert_eq!(counters(&mut c, 1).redirects_sent, 1);
    assert_eq!(counters(&mut c, 2).redirects_delivered, 0);
}

#[test]
fn a_message_the_new_node_got_before_the_session_came_is_delivered_when_passed_on() {
    let (mut c, p) = three_nodes_with_mover();
    let (o, _) = c.node(2).connect(v5("other"));
    c.node(2).send(o, subscribe(1, &[("m/#", QoS::AtLeastOnce)]));
    c.settle(true);
    let mut held = publish_held(&mut c, p, "x", 1);
    arrive(&mut c, &mut held, 2); // Before the session came: not matched against it.
    assert!(move_session(&mut c, 1, 2, "mover", false));
    c.settle(true);
    arrive(&mut c, &mut held, 1);
    c.settle(true);
    assert_eq!(reconnect(&mut c, 2), vec!["x"]);
    assert_eq!(counters(&mut c, 2).redirects_delivered, 1);
}

#[test]
fn a_passed_on_forward_that_arrives_before_the_session_waits_for_it() {
    let (mut c, p) = three_nodes_with_mover();
    let mut held = publish_held(&mut c, p, "early", 1);
    // The session leaves n2; its takeover answer is still on its way to n3.
    let now = c.node(1).now;
    let transfer = c.node(1).broker.export_session("mover", false, now).expect("a session");
    c.node(1).broker.session_moved(&"n3".into(), &transfer, now);
    let wire = transfer.to_wire(now);
    arrive(&mut c, &mut held, 1);
    c.settle(true);
    assert_eq!(counters(&mut c, 2).redirects_delivered, 0, "nothing to deliver to yet");
    let now = c.node(2).now;
    let transfer = broker::core::transfer::SessionTransfer::from_wire(wire, now).expect("well-formed");
    c.node(2).broker.import_session(transfer, now);
    c.settle(true);
    assert_eq!(reconnect(&mut c, 2), vec!["early"]);
}

#[test]
fn a_session_that_moved_twice_gets_a_late_message_once_where_it_is() {
    let (mut c, p) = three_nodes_with_mover();
    let mut held = publish_held(&mut c, p, "late", 1);
    assert!(move_session(&mut c, 1, 2, "mover", false));
    c.settle(true);
    assert!(move_session(&mut c, 2, 0, "mover", false));
    c.settle(true);
    arrive(&mut c, &mut held, 1); // n2 passes it to n3, which passes it on to n1.
    c.settle(true);
    assert_eq!(reconnect(&mut c, 0), vec!["late"]);
    assert_eq!(counters(&mut c, 2).redirects_sent, 1);
}

#[test]
fn a_session_begun_afresh_does_not_get_its_predecessors_late_messages() {
    let (mut c, p) = three_nodes_with_mover();
    let mut held = publish_held(&mut c, p, "late", 1);
    assert!(move_session(&mut c, 1, 2, "mover", false));
    c.settle(true);
    // The client starts clean on n3, then subscribes again.
    let (s, _) = c.node(2).connect(connect(mqtt_codec::ProtocolVersion::V5, "mover", true));
    c.node(2).send(s, subscribe(1, &[("m/#", QoS::AtLeastOnce)]));
    c.settle(true);
    let before = c.node(2).take(s);
    arrive(&mut c, &mut held, 1);
    c.settle(true);
    assert!(payloads(&before).is_empty());
    assert!(payloads(&c.node(2).take(s)).is_empty());
    assert_eq!(counters(&mut c, 2).redirects_delivered, 0);
}

#[test]
fn a_departed_nodes_group_messages_go_to_another_member() {
    let mut c = Cluster::new(&["n1", "n2", "n3"], ForwardMode::Sync);
    let (m2, _) = c.node(1).connect(v5("m2"));
    c.node(1).send(m2, subscribe(1, &[("$share/g/t", QoS::AtLeastOnce)]));
    let (m3, _) = c.node(2).connect(v5("m3"));
    c.node(2).send(m3, subscribe(1, &[("$share/g/t", QoS::AtLeastOnce)]));
    let (p, _) = c.node(0).connect(v5("p"));
    c.settle(true);
    let mut lost = Vec::new();
    for i in 0..4u16 {
        c.node(0).send(p, publish("t", &format!("g{i}"), QoS::AtLeastOnce, i + 1));
        for (dest, forward) in c.node(0).broker.take_forwards() {
            if dest == "n2" {
                lost.push(forward); // n2 crashes with these on the way.
            } else {
                let now = c.node(2).now;
                c.node(2).broker.handle_forward(&"n1".into(), 1, *forward, now);
            }
        }
    }
    assert_eq!(lost.len(), 2, "round robin sent every other message to n2");
    let now = c.node(0).now;
    c.node(0).broker.node_down("n2");
    c.node(0).broker.cluster_mut().unwrap().remote.remove_origin(&"n2".into());
    c.node(0).broker.reroute_groups(&"n2".into(), lost, now);
    c.settle(true);
    let mut got = payloads(&c.node(2).take(m3));
    got.sort();
    assert_eq!(got, vec!["g0", "g1", "g2", "g3"]);
    assert_eq!(counters(&mut c, 0).group_forwards_rerouted, 2);
}

#[test]
fn a_group_is_served_by_a_reachable_member_while_another_nodes_link_is_down() {
    let mut c = Cluster::new(&["n1", "n2", "n3"], ForwardMode::Sync);
    for node in [1, 2] {
        let (m, _) = c.node(node).connect(v5(&format!("m{node}")));
        c.node(node).send(m, subscribe(1, &[("$share/g/t", QoS::AtLeastOnce)]));
    }
    let (p, _) = c.node(0).connect(v5("p"));
    c.settle(true);
    // The shell reports links as they come and go: n3's is up, n2's is not (yet, or any more).
    c.node(0).broker.set_reachable(&"n3".into(), true);
    c.node(0).broker.set_reachable(&"n2".into(), false);
    for i in 0..4u16 {
        c.node(0).send(p, publish("t", "x", QoS::AtLeastOnce, i + 1));
        let dests: Vec<NodeName> = c.node(0).broker.take_forwards().into_iter().map(|(n, _)| n).collect();
        assert_eq!(dests, vec![NodeName::from("n3")]);
    }
    c.node(0).broker.set_reachable(&"n2".into(), true);
    let mut dests = Vec::new();
    for i in 4..8u16 {
        c.node(0).send(p, publish("t", "x", QoS::AtLeastOnce, i + 1));
        dests.extend(c.node(0).broker.take_forwards().into_iter().map(|(n, _)| n));
    }
    assert!(dests.contains(&NodeName::from("n2")), "back in turn once reachable: {dests:?}");
}

/// "c" holds two unacknowledged QoS 1 messages on n1, and connects on n2 as
/// well (a partition kept the nodes apart); n1's connection loses. With
/// `resumed`, n2's connection resumed the session (moved from n3); else n2
/// could reach no holder and began a new one (session present 0).
fn connected_on_both_sides(resumed: bool) -> (Cluster, broker::core::ConnId, Vec<Packet>) {
    let mut c = Cluster::new(&["n1", "n2", "n3"], ForwardMode::Sync);
    let (old, _) = c.node(0).connect(persistent("c"));
    c.node(0).send(old, subscribe(1, &[("m/#", QoS::AtLeastOnce)]));
    let (p, _) = c.node(0).connect(v5("p"));
    c.node(0).send(p, publish("m/1", "one", QoS::AtLeastOnce, 1));
    c.node(0).send(p, publish("m/2", "two", QoS::AtLeastOnce, 2));
    assert_eq!(payloads(&c.node(0).take(old)), vec!["one", "two"], "sent, never acknowledged");
    if resumed {
        let (s, _) = c.node(2).connect(persistent("c"));
        c.node(2).send(s, subscribe(1, &[("m/#", QoS::AtLeastOnce)]));
        c.node(2).drop_connection(s);
        assert!(move_session(&mut c, 2, 1, "c", false));
    }
    let (new, got) = c.node(1).connect(persistent("c"));
    let Packet::ConnAck(ack) = &got[0] else { panic!("{got:?}") };
    assert_eq!(ack.session_present, resumed);
    if !resumed {
        c.node(1).send(new, subscribe(1, &[("m/#", QoS::AtLeastOnce)]));
    }
    let now = c.node(0).now;
    c.node(0).broker.hand_messages_to("c", &"n2".into(), now);
    let closed = c.node(0).take(old);
    c.settle(true);
    (c, new, closed)
}

#[test]
fn the_losing_connections_unacknowledged_messages_go_to_the_winners_resumed_session() {
    let (mut c, new, closed) = connected_on_both_sides(true);
    assert!(
        closed.iter().any(|p| matches!(p, Packet::Disconnect(d) if d.reason_code == ReasonCode::SESSION_TAKEN_OVER)),
        "{closed:?}"
    );
    assert_eq!(payloads(&c.node(1).take(new)), vec!["one", "two"]);
    assert_eq!(counters(&mut c, 1).redirects_delivered, 2);
}

#[test]
fn a_winner_told_its_session_was_not_present_gets_none_of_the_losers_messages() {
    let (mut c, new, _) = connected_on_both_sides(false);
    assert!(payloads(&c.node(1).take(new)).is_empty());
    assert_eq!(counters(&mut c, 1).redirects_delivered, 0);
}
