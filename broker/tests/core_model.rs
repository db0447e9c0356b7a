//! Model-based test: random sequences of connect / subscribe / unsubscribe /
//! publish / disconnect / connection loss run against the real core and a
//! small reference model; every client must receive exactly what the model
//! predicts, in the same order.
#![allow(clippy::unwrap_used)]

mod core_common;

use std::collections::HashMap;

use broker::core::ConnId;
use core_common::*;
use mqtt_codec::topic::matches;
use mqtt_codec::{Disconnect, Packet, ProtocolVersion, PubResponse, QoS, ReasonCode, Unsubscribe};
use proptest::prelude::*;

const CLIENTS: usize = 3;
const TOPICS: &[&str] = &["a", "a/b", "a/c", "b/b", "$s/b"];
const FILTERS: &[&str] = &["a", "a/+", "a/#", "+/b", "#", "b/b", "$s/#"];

#[derive(Debug, Clone)]
enum Op {
    Connect { client: usize, clean: bool, v5: bool },
    Disconnect { client: usize },
    Lose { client: usize },
    Subscribe { client: usize, filter: usize, qos: u8 },
    Unsubscribe { client: usize, filter: usize },
    Publish { client: usize, topic: usize, qos: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    let client = 0..CLIENTS;
    prop_oneof![
        2 => (client.clone(), any::<bool>(), any::<bool>()).prop_map(|(client, clean, v5)| Op::Connect { client, clean, v5 }),
        1 => client.clone().prop_map(|client| Op::Disconnect { client }),
        1 => client.clone().prop_map(|client| Op::Lose { client }),
        3 => (client.clone(), 0..FILTERS.len(), 0..3u8).prop_map(|(client, filter, qos)| Op::Subscribe { client, filter, qos }),
        1 => (client.clone(), 0..FILTERS.len()).prop_map(|(client, filter)| Op::Unsubscribe { client, filter }),
        5 => (client, 0..TOPICS.len(), 0..3u8).prop_map(|(client, topic, qos)| Op::Publish { client, topic, qos }),
    ]
}

type Received = Vec<(String, String, u8)>;

#[derive(Default)]
struct ModelSession {
    subs: HashMap<&'static str, u8>,
    connected: bool,
    persistent: bool,
    queue: Received,
}

#[derive(Default)]
struct Model {
    sessions: HashMap<usize, ModelSession>,
    received: HashMap<usize, Received>,
}

impl Model {
    fn apply(&mut self, op: &Op, payload: &str) {
        match *op {
            Op::Connect { client, clean, .. } => {
                // A takeover ends a session that was not to outlive its connection.
                if self.sessions.get(&client).is_some_and(|s| s.connected && !s.persistent) {
                    self.sessions.remove(&client);
                }
                if clean || !self.sessions.contains_key(&client) {
                    self.sessions.insert(client, ModelSession::default());
                }
                let session = self.sessions.get_mut(&client).unwrap();
                session.connected = true;
                session.persistent = !clean;
                let queued = std::mem::take(&mut session.queue);
                self.received.entry(client).or_default().extend(queued);
            }
            Op::Disconnect { client } | Op::Lose { client } => {
                if let Some(session) = self.sessions.get_mut(&client)
                    && session.connected
                {
                    session.connected = false;
                    if !session.persistent {
                        self.sessions.remove(&client);
                    }
                }
            }
            Op::Subscribe { client, filter, qos } => {
                if let Some(session) = self.sessions.get_mut(&client).filter(|s| s.connected) {
                    session.subs.insert(FILTERS[filter], qos);
                }
            }
            Op::Unsubscribe { client, filter } => {
                if let Some(session) = self.sessions.get_mut(&client).filter(|s| s.connected) {
                    session.subs.remove(FILTERS[filter]);
                }
            }
            Op::Publish { client, topic, qos } => {
                if !self.sessions.get(&client).is_some_and(|s| s.connected) {
                    return;
                }
                let topic = TOPICS[topic];
                for (&id, session) in &mut self.sessions {
                    let best = session.subs.iter().filter(|(f, _)| matches(f, topic)).map(|(_, q)| *q).max();
                    if let Some(sub_qos) = best {
                        let message = (topic.to_string(), payload.to_string(), qos.min(sub_qos));
                        if session.connected {
                            self.received.entry(id).or_default().push(message);
                        } else {
                            session.queue.push(message);
                        }
                    }
                }
            }
        }
    }
}

struct Real {
    h: Harness,
    conns: HashMap<usize, ConnId>,
    received: HashMap<usize, Received>,
    next_id: u16,
}

impl Real {
    fn name(client: usize) -> String {
        format!("c{client}")
    }

    fn apply(&mut self, op: &Op, payload: &str) {
        match *op {
            Op::Connect { client, clean, v5 } => {
                let version = if v5 { ProtocolVersion::V5 } else { ProtocolVersion::V3_1_1 };
                let mut c = connect(version, &Self::name(client), clean);
                if v5 && !clean {
                    c.properties.session_expiry_interval = Some(3600);
                }
                if let Some(old) = self.conns.remove(&client) {
                    let (conn, out) = self.h.connect(c);
                    self.h.drop_connection(old);
                    self.conns.insert(client, conn);
                    self.absorb(client, out);
                } else {
                    let (conn, out) = self.h.connect(c);
                    self.conns.insert(client, conn);
                    self.absorb(client, out);
                }
            }
            Op::Disconnect { client } => {
                if let Some(conn) = self.conns.remove(&client) {
                    self.h.send(conn, Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION)));
                    self.h.drop_connection(conn);
                }
            }
            Op::Lose { client } => {
                if let Some(conn) = self.conns.remove(&client) {
                    self.h.drop_connection(conn);
                }
            }
            Op::Subscribe { client, filter, qos } => {
                if let Some(&conn) = self.conns.get(&client) {
                    let id = self.id();
                    let out = self.h.send(conn, subscribe(id, &[(FILTERS[filter], QoS::from_u8(qos).unwrap())]));
                    self.absorb(client, out);
                }
            }
            Op::Unsubscribe { client, filter } => {
                if let Some(&conn) = self.conns.get(&client) {
                    let unsubscribe = Unsubscribe {
                        packet_id: pid(self.id()),
                        filters: vec![FILTERS[filter].into()],
                        user_properties: vec![],
                    };
                    let out = self.h.send(conn, Packet::Unsubscribe(unsubscribe));
                    self.absorb(client, out);
                }
            }
            Op::Publish { client, topic, qos } => {
                if let Some(&conn) = self.conns.get(&client) {
                    let id = self.id();
                    let out = self.h.send(conn, publish(TOPICS[topic], payload, QoS::from_u8(qos).unwrap(), id));
                    self.absorb(client, out);
                }
            }
        }
        // Every connected client reads and acknowledges what it was sent.
        let clients: Vec<(usize, ConnId)> = self.conns.iter().map(|(c, n)| (*c, *n)).collect();
        for (client, conn) in clients {
            let out = self.h.take(conn);
            self.absorb(client, out);
        }
    }

    fn id(&mut self) -> u16 {
        self.next_id = self.next_id % 60_000 + 1;
        self.next_id
    }

    /// Records deliveries and answers the QoS flows like a well-behaved client.
    fn absorb(&mut self, client: usize, packets: Vec<Packet>) {
        let Some(&conn) = self.conns.get(&client) else { return };
        let mut pending = packets;
        while !pending.is_empty() {
            let mut replies = Vec::new();
            for packet in pending {
                match packet {
                    Packet::Publish(p) => {
                        if !p.dup {
                            let message =
                                (p.topic.to_string(), String::from_utf8_lossy(&p.payload).into_owned(), p.qos as u8);
                            self.received.entry(client).or_default().push(message);
                        }
                        match (p.qos, p.packet_id) {
                            (QoS::AtLeastOnce, Some(id)) => replies.push(Packet::PubAck(PubResponse::new(id))),
                            (QoS::ExactlyOnce, Some(id)) => replies.push(Packet::PubRec(PubResponse::new(id))),
                            _ => {}
                        }
                    }
                    Packet::PubRec(r) => replies.push(Packet::PubRel(PubResponse::new(r.packet_id))),
                    Packet::PubRel(r) => replies.push(Packet::PubComp(PubResponse::new(r.packet_id))),
                    Packet::Disconnect(d) => panic!("unexpected DISCONNECT {d:?}"),
                    Packet::ConnAck(c) => assert_eq!(c.reason_code, ReasonCode::SUCCESS),
                    _ => {}
                }
            }
            let mut next = Vec::new();
            for reply in replies {
                next.extend(self.h.send(conn, reply));
            }
            pending = next;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn core_delivers_exactly_what_the_model_predicts(ops in proptest::collection::vec(op(), 1..60)) {
        let mut model = Model::default();
        let mut real = Real { h: Harness::new(), conns: HashMap::new(), received: HashMap::new(), next_id: 0 };
        for (step, op) in ops.iter().enumerate() {
            let payload = format!("m{step}");
            model.apply(op, &payload);
            real.apply(op, &payload);
            for client in 0..CLIENTS {
                let expected = model.received.get(&client).cloned().unwrap_or_default();
                let actual = real.received.get(&client).cloned().unwrap_or_default();
                prop_assert_eq!(&actual, &expected, "client c{} after step {} ({:?})", client, step, op);
            }
        }
    }
}
