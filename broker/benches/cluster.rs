//! What a message forwarded between two nodes costs each of them, without
//! any network: the publishing node routing a PUBLISH and encoding its
//! forwards (`forward_send`), the receiving node decoding one forward and
//! delivering it to its subscribers (`forward_receive`), and, to compare,
//! the same PUBLISH delivered to local subscribers only (`local_publish`).
//! Every node is a cluster member in sync mode; QoS 1 runs include the
//! acknowledgements that keep the state steady (ForwardAck, PUBACK).

use std::hint::black_box;
use std::num::NonZeroU16;
use std::sync::Arc;

use broker::cluster::routes::{Epoch, NodeName};
use broker::cluster::wire::{self, PeerMessage};
use broker::config::{ForwardMode, MqttConfig};
use broker::core::{Broker, ConnId, Waker};
use broker::seam::{self, Millis};
use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mqtt_codec::{
    Connect, ConnectProperties, Packet, ProtocolVersion, PubResponse, Publish, PublishProperties, QoS, Subscribe,
    SubscribeProperties, SubscriptionOptions,
};

const PUBLISHER: ConnId = 0;
const TOPIC: &str = "bench/room/temp";
/// The default: a held PUBACK's timer stays armed this long, so the timer map
/// holds as many entries as in a node publishing one message per millisecond.
const FORWARD_TIMEOUT_MS: Millis = 5_000;

struct NoWake;
impl Waker for NoWake {
    fn wake(&self) {}
}

fn member(name: &str) -> Broker {
    let mut broker = Broker::new(MqttConfig::default(), seam::rng(Some(1)));
    broker.join_cluster(name.into(), ForwardMode::Sync, FORWARD_TIMEOUT_MS, 1_700_000_000_000);
    broker
}

/// `node`'s routes, as its link's snapshot brings them.
fn routes_of(broker: &mut Broker, node: &str, filters: &[&str]) {
    let Some(cluster) = broker.cluster_mut() else { panic!("not a cluster member") };
    let filters = filters.iter().map(|f| (*f).into()).collect();
    cluster.remote.apply_snapshot(&node.into(), Epoch { incarnation: 1, generation: 1 }, filters);
}

fn connect(broker: &mut Broker, conn: ConnId, id: &str) {
    let connect = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    };
    if broker.connect(conn, connect, Arc::new(NoWake), 0).is_err() {
        panic!("connect refused");
    }
    broker.take_outbox(conn, 0);
}

/// Subscribers 1..=n, at QoS 1, half by an exact filter and half by a wildcard.
fn subscribers(broker: &mut Broker, n: u64) {
    for i in 1..=n {
        connect(broker, i, &format!("sub-{i}"));
        let filter = if i % 2 == 0 { "bench/+/temp" } else { TOPIC };
        let options = SubscriptionOptions { qos: QoS::AtLeastOnce, ..SubscriptionOptions::default() };
        let subscribe = Subscribe {
            packet_id: NonZeroU16::MIN,
            filters: vec![(filter.into(), options)],
            properties: SubscribeProperties::default(),
        };
        broker.handle_packet(i, Packet::Subscribe(subscribe), 0);
        broker.take_outbox(i, 0);
    }
}

fn publish(qos: QoS) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: TOPIC.into(),
        packet_id: (qos != QoS::AtMostOnce).then_some(NonZeroU16::MIN),
        payload: Bytes::from_static(&[0u8; 64]),
        properties: PublishProperties::default(),
    })
}

/// Drains every subscriber's outbox and acknowledges its QoS 1 deliveries,
/// as its client would, so that in-flight windows never fill.
fn drain(broker: &mut Broker, subscribers: u64, now: Millis) {
    for conn in 1..=subscribers {
        let outbox = broker.take_outbox(conn, now);
        for packet in &outbox.packets {
            if let Packet::Publish(Publish { packet_id: Some(id), .. }) = packet {
                broker.handle_packet(conn, Packet::PubAck(PubResponse::new(*id)), now);
            }
        }
        black_box(outbox);
    }
    black_box(broker.drain_wakeups());
}

fn qos_name(qos: QoS) -> &'static str {
    if qos == QoS::AtMostOnce { "qos0" } else { "qos1" }
}

/// The publishing node: a local client's PUBLISH matching the routes of
/// `nodes` other nodes, each forward encoded as its link does, and (QoS 1)
/// acknowledged back so that the held PUBACK goes out.
fn forward_send(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward_send");
    group.throughput(Throughput::Elements(1));
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        for nodes in [1u64, 2] {
            let mut broker = member("n1");
            connect(&mut broker, PUBLISHER, "publisher");
            for n in 0..nodes {
                routes_of(&mut broker, &format!("n{}", n + 2), &["bench/+/temp"]);
            }
            let publish = publish(qos);
            let mut out = BytesMut::with_capacity(4096);
            let mut now: Millis = 0;
            group.bench_function(format!("{}_{nodes}node", qos_name(qos)), |b| {
                b.iter(|| {
                    now += 1;
                    broker.handle_packet(PUBLISHER, publish.clone(), now);
                    for (node, forward) in broker.take_forwards() {
                        let (id, ack) = (forward.id, forward.ack);
                        if let Err(error) = wire::encode(&PeerMessage::Forward(forward), &mut out) {
                            panic!("{error}");
                        }
                        black_box(&out);
                        out.clear();
                        if ack {
                            broker.forward_acked(&node, id);
                        }
                    }
                    black_box(broker.take_outbox(PUBLISHER, now));
                    broker.handle_timeout(now);
                    black_box(broker.drain_wakeups());
                });
            });
        }
    }
    group.finish();
}

/// The frame node `n1` sends `n2` for one PUBLISH of QoS `qos`.
fn forward_frame(qos: QoS) -> Bytes {
    let mut sender = member("n1");
    connect(&mut sender, PUBLISHER, "publisher");
    routes_of(&mut sender, "n2", &["bench/+/temp"]);
    sender.handle_packet(PUBLISHER, publish(qos), 0);
    let mut forwards = sender.take_forwards();
    let (Some((_, forward)), None) = (forwards.pop(), forwards.pop()) else { panic!("one forward expected") };
    let mut frame = BytesMut::new();
    if let Err(error) = wire::encode(&PeerMessage::Forward(forward), &mut frame) {
        panic!("{error}");
    }
    frame.freeze()
}

/// The receiving node: one forward's frame read into the link's buffer,
/// decoded, handled (delivered into `subscribers` local sessions' queues and
/// outboxes) and (QoS 1) its ForwardAck encoded; the outboxes drained.
fn forward_receive(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward_receive");
    group.throughput(Throughput::Elements(1));
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let frame = forward_frame(qos);
        for subs in [1u64, 10] {
            let mut broker = member("n2");
            subscribers(&mut broker, subs);
            let origin: NodeName = "n1".into();
            let mut input = BytesMut::with_capacity(4096);
            let mut acks = BytesMut::with_capacity(4096);
            let now: Millis = 0;
            group.bench_function(format!("{}_{subs}sub", qos_name(qos)), |b| {
                b.iter(|| {
                    input.extend_from_slice(&frame);
                    let Ok(Some(PeerMessage::Forward(forward))) = wire::decode(&mut input) else {
                        panic!("a forward expected")
                    };
                    let (id, ack) = (forward.id, forward.ack);
                    broker.handle_forward(&origin, 1, *forward, now);
                    if ack && wire::encode(&PeerMessage::ForwardAck { id }, &mut acks).is_ok() {
                        black_box(&acks);
                        acks.clear();
                    }
                    drain(&mut broker, subs, now);
                });
            });
        }
    }
    group.finish();
}

/// For comparison: the same PUBLISH on a cluster member whose only
/// subscribers are local (no route of another node matches).
fn local_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("local_publish");
    group.throughput(Throughput::Elements(1));
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        for subs in [1u64, 10] {
            let mut broker = member("n1");
            connect(&mut broker, PUBLISHER, "publisher");
            subscribers(&mut broker, subs);
            let publish = publish(qos);
            let now: Millis = 0;
            group.bench_function(format!("{}_{subs}sub", qos_name(qos)), |b| {
                b.iter(|| {
                    broker.handle_packet(PUBLISHER, publish.clone(), now);
                    black_box(broker.take_outbox(PUBLISHER, now));
                    drain(&mut broker, subs, now);
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, forward_send, forward_receive, local_publish);
criterion_main!(benches);
