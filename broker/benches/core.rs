//! The core's cost per routed message, without any network: a publisher's
//! PUBLISH in, every subscriber's outbox drained.

use std::hint::black_box;
use std::sync::Arc;

use broker::config::MqttConfig;
use broker::core::{Broker, ConnId, Waker};
use broker::seam;
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mqtt_codec::{
    Connect, ConnectProperties, Packet, ProtocolVersion, Publish, PublishProperties, QoS, Subscribe,
    SubscribeProperties, SubscriptionOptions,
};

struct NoWake;
impl Waker for NoWake {
    fn wake(&self) {}
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

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_qos0");
    for subscribers in [1u64, 10, 100, 1000] {
        let mut broker = Broker::new(MqttConfig::default(), seam::rng(Some(1)));
        connect(&mut broker, 0, "publisher");
        for i in 1..=subscribers {
            connect(&mut broker, i, &format!("sub-{i}"));
            let filter = if i % 2 == 0 { "bench/+/temp" } else { "bench/room/temp" };
            let subscribe = Subscribe {
                packet_id: std::num::NonZeroU16::MIN,
                filters: vec![(filter.into(), SubscriptionOptions::default())],
                properties: SubscribeProperties::default(),
            };
            broker.handle_packet(i, Packet::Subscribe(subscribe), 0);
            broker.take_outbox(i, 0);
        }
        let publish = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "bench/room/temp".into(),
            packet_id: None,
            payload: Bytes::from_static(&[0u8; 64]),
            properties: PublishProperties::default(),
        });
        group.throughput(Throughput::Elements(subscribers));
        group.bench_with_input(BenchmarkId::from_parameter(subscribers), &subscribers, |b, &n| {
            b.iter(|| {
                broker.handle_packet(0, publish.clone(), 0);
                for i in 1..=n {
                    black_box(broker.take_outbox(i, 0));
                }
                black_box(broker.drain_wakeups());
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
