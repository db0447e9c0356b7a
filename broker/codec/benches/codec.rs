//! Criterion benchmarks: encode and decode of PUBLISH and SUBSCRIBE.
//!
//! Throughput is the encoded packet size, so the figures read as bytes per second.

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mqtt_codec::bytes::{Bytes, BytesMut};
use mqtt_codec::bytestring::ByteString;
use mqtt_codec::{
    Decoder, Packet, PacketId, ProtocolVersion, Publish, PublishProperties, QoS, Subscribe, SubscribeProperties,
    SubscriptionOptions, encode, encoded_len,
};

const MAX: u32 = 1 << 20;

fn publish_qos0(payload: usize) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: ByteString::from_static("sensors/building-7/floor-3/temperature"),
        packet_id: None,
        payload: Bytes::from(vec![0xA5; payload]),
        properties: PublishProperties::default(),
    })
}

fn publish_qos1_v5_with_properties() -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: ByteString::from_static("sensors/building-7/floor-3/temperature"),
        packet_id: PacketId::new(42),
        payload: Bytes::from(vec![0xA5; 128]),
        properties: PublishProperties {
            payload_format_indicator: Some(0),
            message_expiry_interval: Some(3600),
            response_topic: Some(ByteString::from_static("replies/client-17")),
            correlation_data: Some(Bytes::from_static(b"req-000123")),
            user_properties: vec![
                (ByteString::from_static("trace-id"), ByteString::from_static("4bf92f3577b34da6")),
                (ByteString::from_static("unit"), ByteString::from_static("celsius")),
            ],
            content_type: Some(ByteString::from_static("application/octet-stream")),
            ..PublishProperties::default()
        },
    })
}

fn subscribe(filters: usize) -> Packet {
    let options = SubscriptionOptions { qos: QoS::AtLeastOnce, ..SubscriptionOptions::default() };
    Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(7).expect("non-zero"),
        filters: (0..filters).map(|i| (ByteString::from(format!("devices/+/group-{i}/#")), options)).collect(),
        properties: SubscribeProperties::default(),
    })
}

fn cases() -> Vec<(&'static str, ProtocolVersion, Packet)> {
    vec![
        ("publish_qos0_16B_v311", ProtocolVersion::V3_1_1, publish_qos0(16)),
        ("publish_qos0_1KiB_v311", ProtocolVersion::V3_1_1, publish_qos0(1024)),
        ("publish_qos0_16B_v5", ProtocolVersion::V5, publish_qos0(16)),
        ("publish_qos0_1KiB_v5", ProtocolVersion::V5, publish_qos0(1024)),
        ("publish_qos1_v5_properties", ProtocolVersion::V5, publish_qos1_v5_with_properties()),
        ("subscribe_1_filter_v311", ProtocolVersion::V3_1_1, subscribe(1)),
        ("subscribe_10_filters_v311", ProtocolVersion::V3_1_1, subscribe(10)),
        ("subscribe_10_filters_v5", ProtocolVersion::V5, subscribe(10)),
    ]
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (name, version, packet) in cases() {
        let len = encoded_len(&packet, version).expect("encodable");
        group.throughput(Throughput::Bytes(len as u64));
        let mut buf = BytesMut::with_capacity(len);
        group.bench_with_input(BenchmarkId::from_parameter(name), &packet, |b, packet| {
            b.iter(|| {
                buf.clear();
                encode(black_box(packet), version, &mut buf).expect("encodes");
                black_box(buf.len())
            })
        });
    }
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, version, packet) in cases() {
        let mut wire = BytesMut::new();
        encode(&packet, version, &mut wire).expect("encodes");
        let wire = wire.freeze();
        group.throughput(Throughput::Bytes(wire.len() as u64));
        let mut decoder = Decoder::with_version(version, MAX);
        group.bench_with_input(BenchmarkId::from_parameter(name), &wire, |b, wire| {
            // The receive buffer is filled outside the timed part (as a socket read would).
            b.iter_batched_ref(
                || BytesMut::from(&wire[..]),
                |buf| decoder.decode(black_box(buf)).expect("valid").expect("complete"),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_encode, bench_decode);
criterion_main!(benches);
