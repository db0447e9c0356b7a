//! The core's side of authorization, driven directly: identities kept with
//! sessions, re-checks on resume (here and after a move between nodes), wills.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use mqtt_codec::{
    Connect, ConnectProperties, Packet, ProtocolVersion, QoS, Subscribe, SubscribeProperties, SubscriptionOptions,
    Will, WillProperties,
};

use crate::authz::{AclAuthorizer, NoMatch};
use crate::config::MqttConfig;
use crate::core::{Broker, ConnId, Waker};
use crate::seam;

struct NoWake;
impl Waker for NoWake {
    fn wake(&self) {}
}

fn broker(rules: &str) -> Broker {
    let mut broker = Broker::new(MqttConfig::default(), seam::rng(Some(7)));
    broker.set_authorizer(Arc::new(AclAuthorizer::from_text(rules, NoMatch::Deny).expect("rules")));
    broker
}

struct Client<'a> {
    id: &'a str,
    username: Option<&'a str>,
    peer: Option<&'a str>,
    clean: bool,
    will: Option<&'a str>,
}

fn client(id: &str) -> Client<'_> {
    Client { id, username: None, peer: None, clean: true, will: None }
}

fn connect(broker: &mut Broker, conn: ConnId, c: &Client<'_>) -> bool {
    let connect = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: c.clean,
        keep_alive: 60,
        client_id: c.id.into(),
        will: c.will.map(|topic| Will {
            topic: topic.into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties::default(),
        }),
        username: c.username.map(Into::into),
        password: None,
        properties: ConnectProperties { session_expiry_interval: Some(300), ..ConnectProperties::default() },
    };
    let peer = c.peer.map(|p| p.parse::<IpAddr>().expect("an address"));
    let outcome = broker.connect_from(conn, connect, peer, Arc::new(NoWake), 0).expect("connected");
    broker.take_outbox(conn, 0);
    outcome.session_present
}

fn subscribe(broker: &mut Broker, conn: ConnId, filters: &[&str]) -> Vec<u8> {
    let subscribe = Subscribe {
        packet_id: std::num::NonZeroU16::MIN,
        filters: filters.iter().map(|f| ((*f).into(), SubscriptionOptions::default())).collect(),
        properties: SubscribeProperties::default(),
    };
    broker.handle_packet(conn, Packet::Subscribe(subscribe), 0);
    let outbox = broker.take_outbox(conn, 0);
    match outbox.packets.as_slice() {
        [Packet::SubAck(ack)] => ack.reason_codes.iter().map(|r| r.0).collect(),
        other => panic!("expected one SUBACK, got {other:?}"),
    }
}

fn filters_of(broker: &Broker, id: &str) -> Vec<String> {
    let session = broker.sessions.get(&bytestring::ByteString::from(id)).expect("session");
    let mut filters: Vec<String> = session.subscriptions.keys().map(|f| f.to_string()).collect();
    filters.sort();
    filters
}

#[test]
fn a_session_resumed_under_another_user_name_loses_what_that_user_may_not_hold() {
    let mut broker = broker("allow user:alice subscribe news/#\nallow all subscribe ctl/#\n");
    let alice = Client { username: Some("alice"), ..client("c") };
    connect(&mut broker, 1, &alice);
    assert_eq!(subscribe(&mut broker, 1, &["news/#", "ctl/#"]), vec![0, 0]);
    broker.connection_lost(1, 0);

    let bob = Client { username: Some("bob"), clean: false, ..client("c") };
    assert!(connect(&mut broker, 2, &bob), "the session resumes");
    assert_eq!(filters_of(&broker, "c"), vec!["ctl/#"]);
    assert_eq!(broker.counters.subscriptions_revoked, 1);
}

#[test]
fn a_session_resumed_under_the_same_identity_keeps_its_subscriptions() {
    let mut broker = broker("allow user:alice subscribe news/#\n");
    let alice = Client { username: Some("alice"), ..client("c") };
    connect(&mut broker, 1, &alice);
    assert_eq!(subscribe(&mut broker, 1, &["news/#"]), vec![0]);
    broker.connection_lost(1, 0);
    assert!(connect(&mut broker, 2, &Client { clean: false, ..alice }));
    assert_eq!(filters_of(&broker, "c"), vec!["news/#"]);
    assert_eq!(broker.counters.subscriptions_revoked, 0);
}

#[test]
fn a_session_moved_from_another_node_is_checked_with_the_identity_of_its_connect() {
    let mut old = broker("allow all all #\n");
    connect(&mut old, 1, &Client { peer: Some("10.0.0.5"), ..client("c") });
    assert_eq!(subscribe(&mut old, 1, &["lan/#", "$share/g/lan/x", "ctl/#"]), vec![0, 0, 0]);
    let transfer = old.export_session("c", false, 0).expect("the session moves");

    let mut new = broker("allow ip:10.0.0.0/8 subscribe lan/#\nallow all subscribe ctl/#\n");
    new.import_session(transfer, 0);
    assert!(connect(&mut new, 1, &Client { peer: Some("192.0.2.1"), clean: false, ..client("c") }));
    assert_eq!(filters_of(&new, "c"), vec!["ctl/#"]);
    assert_eq!(new.counters.subscriptions_revoked, 2);
}

#[test]
fn a_will_is_checked_with_the_identity_the_client_connected_with() {
    let mut broker = broker("allow user:alice publish will/#\n");
    let bob = Client { username: Some("bob"), will: Some("will/bob"), ..client("b") };
    connect(&mut broker, 1, &bob);
    broker.connection_lost(1, 0);
    assert_eq!(broker.counters.dropped_not_authorized, 1, "bob may not publish there");

    let alice = Client { username: Some("alice"), will: Some("will/alice"), ..client("a") };
    connect(&mut broker, 2, &alice);
    broker.connection_lost(2, 0);
    assert_eq!(broker.counters.dropped_not_authorized, 1, "alice may");
    assert_eq!(broker.counters.wills_published, 2);
}

/// The guardian of a dead node's will publishes it as the client that set
/// it: the user name and address travel with the guard (`WillGuard`).
#[test]
fn a_will_published_for_a_dead_node_is_checked_with_the_identity_of_its_connect() {
    let rules = "allow user:alice publish will/#\n";
    let mut guardian = broker(rules);
    for (conn, user, expect_dropped) in [(1, "alice", 0), (2, "bob", 1)] {
        let mut holder = broker(rules);
        holder.join_cluster("n1".into(), crate::config::ForwardMode::Sync, 5_000, 0);
        let id = format!("c-{user}");
        let topic = format!("will/{user}");
        let c = Client { username: Some(user), peer: Some("10.0.0.9"), will: Some(&topic), ..client(&id) };
        connect(&mut holder, conn, &c);
        let guard = holder.take_will_events().iter().find_map(|e| e.to_wire()).expect("a will to guard");
        assert_eq!(guard.username.as_deref(), Some(user));
        let who = crate::authz::ClientInfo {
            client_id: guard.client.clone(),
            username: guard.username.clone(),
            peer: guard.peer,
        };
        guardian.publish_orphan_will(&who, &crate::core::cluster::will_from_wire(&guard), 0);
        assert_eq!(guardian.counters.dropped_not_authorized, expect_dropped, "{user}");
    }
    assert_eq!(guardian.counters.wills_published, 2);
}

#[test]
fn a_reload_without_a_file_keeps_everything() {
    let mut broker = broker("allow all subscribe #\n");
    connect(&mut broker, 1, &client("c"));
    assert_eq!(subscribe(&mut broker, 1, &["a/#"]), vec![0]);
    broker.reload_authorizer(0).expect("rules given as text reload as themselves");
    assert_eq!(filters_of(&broker, "c"), vec!["a/#"]);
}
