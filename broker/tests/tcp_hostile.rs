//! Hostile input over real TCP. Each class of malformed or forbidden packet is
//! sent after a valid CONNECT: an MQTT 5 attacker gets DISCONNECT with the
//! reason the specification gives and the socket closes; an MQTT 3.1.1
//! attacker sees the socket close (3.1.1 has no server DISCONNECT). In every
//! case a bystander connected to the same broker keeps working.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::time::Duration;

use tcp_common::*;

const MALFORMED: &[u8] = &[0x81];
const PROTOCOL_ERROR: &[u8] = &[0x82];
/// Where the specification names no reason, either "the packet is bad" reason.
const MALFORMED_OR_PROTOCOL: &[u8] = &[0x81, 0x82];

/// A broker, a bystander subscriber (MQTT 5) and a bystander publisher (3.1.1)
/// connected before the attacks.
struct Arena {
    server: broker::Server,
    addr: SocketAddr,
    sub: V5,
    publisher: V4,
    round: u32,
}

impl Arena {
    async fn start(configure: impl FnOnce(&mut broker::Config)) -> Arena {
        let server = start_with(configure).await;
        let addr = server.local_addr();
        let (mut sub, _) = V5::connect(addr, "bystander-sub").await;
        sub.subscribe("bystander/t", Q5::AtLeastOnce).await;
        let (publisher, _) = V4::connect(addr, "bystander-pub").await;
        let mut arena = Arena { server, addr, sub, publisher, round: 0 };
        arena.round_trip().await;
        arena
    }

    async fn round_trip(&mut self) {
        self.round += 1;
        let payload = format!("round {}", self.round);
        self.publisher.publish("bystander/t", Q4::AtLeastOnce, false, payload.as_bytes()).await;
        let got = self.sub.recv_publish().await;
        assert_eq!(String::from_utf8_lossy(&got.payload), payload, "the bystander stopped receiving");
    }

    /// An MQTT 5 client sends `bytes`; expects one DISCONNECT with one of `reasons`, then the close.
    async fn v5(&mut self, name: &str, bytes: &[u8], reasons: &[u8]) {
        let (mut raw, _) = Raw::connect(self.addr, Connect::v5(&format!("attacker5-{}", self.round))).await;
        raw.send(bytes).await;
        let frames = raw.expect_closed().await;
        let disconnects: Vec<u8> =
            frames.iter().filter(|f| f.kind() == DISCONNECT).map(Frame::disconnect_reason).collect();
        assert!(
            disconnects.len() == 1 && reasons.contains(&disconnects[0]),
            "{name} (MQTT 5): expected one DISCONNECT with reason in {reasons:02x?} before the close, got {frames:?}"
        );
        self.round_trip().await;
    }

    /// An MQTT 3.1.1 client sends `bytes`; expects the close, with no DISCONNECT.
    async fn v311(&mut self, name: &str, bytes: &[u8]) {
        let (mut raw, _) = Raw::connect(self.addr, Connect::v311(&format!("attacker4-{}", self.round))).await;
        raw.send(bytes).await;
        let frames = raw.expect_closed().await;
        assert!(
            frames.iter().all(|f| f.kind() != DISCONNECT),
            "{name} (MQTT 3.1.1): no DISCONNECT expected, got {frames:?}"
        );
        self.round_trip().await;
    }

    async fn finish(mut self) {
        self.round_trip().await;
        assert_broker_serves(self.addr, "after-attacks").await;
        self.publisher.disconnect().await;
        self.sub.disconnect().await;
        self.server.shutdown().await;
    }
}

fn publish_v5(topic: &[u8], qos: u8, packet_id: u16, props: &[u8]) -> Vec<u8> {
    let mut spec = PublishSpec::raw_topic(topic, b"payload").qos(qos, packet_id);
    spec.props = props.to_vec();
    spec.encode(Level::V5)
}

fn publish_v311(topic: &[u8], qos: u8, packet_id: u16) -> Vec<u8> {
    PublishSpec::raw_topic(topic, b"payload").qos(qos, packet_id).encode(Level::V311)
}

#[tokio::test]
async fn bad_fixed_header_flags_close_the_connection_as_malformed() {
    let mut arena = Arena::start(|_| {}).await;
    let subscribe_body = |level| subscribe_packet(level, 1, &[("t", 0)], &[])[2..].to_vec();
    let unsubscribe_body = |level| unsubscribe_packet(level, 1, &["t"])[2..].to_vec();
    for level in [Level::V5, Level::V311] {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("SUBSCRIBE with flags 0000", frame(0x80, &subscribe_body(level))),
            ("UNSUBSCRIBE with flags 0000", frame(0xA0, &unsubscribe_body(level))),
            ("PUBREL with flags 0000", vec![0x60, 0x02, 0x00, 0x01]),
            ("PINGREQ with flags 0001", vec![0xC1, 0x00]),
            ("PUBACK with flags 0010", vec![0x42, 0x02, 0x00, 0x01]),
            ("DISCONNECT with flags 1000", vec![0xE8, 0x00]),
        ];
        for (name, bytes) in cases {
            match level {
                Level::V5 => arena.v5(name, &bytes, MALFORMED).await,
                _ => arena.v311(name, &bytes).await,
            }
        }
    }
    arena.finish().await;
}

#[tokio::test]
async fn five_byte_remaining_length_closes_the_connection_as_malformed() {
    let mut arena = Arena::start(|_| {}).await;
    let bytes = [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x01, b't'];
    arena.v5("5-byte remaining length", &bytes, MALFORMED).await;
    arena.v311("5-byte remaining length", &bytes).await;
    let overlong = [0xC0, 0x80, 0x80, 0x80, 0x80, 0x00];
    arena.v5("PINGREQ with a 5-byte zero remaining length", &overlong, MALFORMED).await;
    arena.v311("PINGREQ with a 5-byte zero remaining length", &overlong).await;
    arena.finish().await;
}

#[tokio::test]
async fn remaining_length_disagreeing_with_the_content_closes_the_connection_as_malformed() {
    let mut arena = Arena::start(|_| {}).await;
    // The topic claims 10 bytes; the remaining length leaves 3.
    let short_topic = [0x30, 0x05, 0x00, 0x0A, b'a', b'b', b'c'];
    arena.v5("topic longer than the remaining length", &short_topic, MALFORMED).await;
    arena.v311("topic longer than the remaining length", &short_topic).await;
    // Bytes left over after the packet's fields.
    arena.v5("PINGREQ with remaining length 1", &[0xC0, 0x01, 0x00], MALFORMED).await;
    arena.v311("PINGREQ with remaining length 1", &[0xC0, 0x01, 0x00]).await;
    arena.v311("PUBACK with remaining length 3", &[0x40, 0x03, 0x00, 0x01, 0x00]).await;
    arena.v5("PUBACK with a byte after its properties", &[0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00], MALFORMED).await;
    // A QoS 1 PUBLISH too short for its packet identifier.
    arena.v311("QoS 1 PUBLISH without packet identifier", &[0x32, 0x03, 0x00, 0x01, b't']).await;
    arena.v5("QoS 1 PUBLISH without packet identifier", &[0x32, 0x03, 0x00, 0x01, b't'], MALFORMED).await;
    // Properties longer than the packet.
    arena.v5("property length beyond the packet", &[0x30, 0x05, 0x00, 0x01, b't', 0x09, 0x01], MALFORMED).await;
    // A SUBSCRIBE whose filter runs past the end.
    arena.v311("SUBSCRIBE filter past the end", &[0x82, 0x06, 0x00, 0x01, 0x00, 0x09, b'a', b'b']).await;
    arena.finish().await;
}

#[tokio::test]
async fn invalid_utf8_in_a_topic_closes_the_connection_as_malformed() {
    let mut arena = Arena::start(|_| {}).await;
    let cases: [(&str, &[u8]); 3] = [
        ("invalid byte 0xFF", b"a/\xFF"),
        ("UTF-16 surrogate U+D800", b"a/\xED\xA0\x80"),
        ("overlong encoding of '/'", b"a\xC0\xAFb"),
    ];
    for (name, topic) in cases {
        arena.v5(name, &publish_v5(topic, 0, 0, &[]), MALFORMED).await;
        arena.v311(name, &publish_v311(topic, 0, 0)).await;
    }
    // The same in a SUBSCRIBE filter.
    let mut body = vec![0x00, 0x01];
    body.extend(field(b"f/\xFF"));
    body.push(0x00);
    arena.v311("invalid UTF-8 in a topic filter", &frame(0x82, &body)).await;
    arena.finish().await;
}

#[tokio::test]
async fn null_character_in_a_topic_closes_the_connection_as_malformed() {
    let mut arena = Arena::start(|_| {}).await;
    arena.v5("U+0000 in a topic name", &publish_v5(b"a\0b", 1, 1, &[]), MALFORMED).await;
    arena.v311("U+0000 in a topic name", &publish_v311(b"a\0b", 1, 1)).await;
    arena.v5("U+0000 in a topic filter", &subscribe_packet(Level::V5, 1, &[("a\0b", 0)], &[]), MALFORMED).await;
    arena.v311("U+0000 in a topic filter", &subscribe_packet(Level::V311, 1, &[("a\0b", 0)], &[])).await;
    arena.finish().await;
}

#[tokio::test]
async fn wildcard_in_a_publish_topic_closes_the_connection() {
    let mut arena = Arena::start(|_| {}).await;
    for topic in [&b"a/+"[..], b"a/#", b"#", b"+"] {
        let name = format!("PUBLISH to {}", String::from_utf8_lossy(topic));
        // [MQTT-3.3.2-2]; MQTT 5 names no reason: malformed, or 0x90 Topic Name invalid.
        arena.v5(&name, &publish_v5(topic, 1, 1, &[]), &[0x81, 0x90]).await;
        arena.v311(&name, &publish_v311(topic, 1, 1)).await;
    }
    arena.finish().await;
}

#[tokio::test]
async fn empty_topic_without_topic_alias_closes_the_connection() {
    let mut arena = Arena::start(|_| {}).await;
    // 5.0 section 3.3.2.3.4: "It is a Protocol Error if the Topic Name is zero length and there is no Topic Alias."
    arena.v5("empty topic", &publish_v5(b"", 0, 0, &[]), PROTOCOL_ERROR).await;
    arena.v311("empty topic", &publish_v311(b"", 0, 0)).await;
    arena.v5("empty topic filter", &subscribe_packet(Level::V5, 1, &[("", 0)], &[]), MALFORMED_OR_PROTOCOL).await;
    arena.v311("empty topic filter", &subscribe_packet(Level::V311, 1, &[("", 0)], &[])).await;
    arena.finish().await;
}

#[tokio::test]
async fn publish_with_qos_3_closes_the_connection_as_malformed() {
    let mut arena = Arena::start(|_| {}).await;
    // [MQTT-3.3.1-4]: both QoS bits set is a Malformed Packet.
    let bytes = [0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01];
    arena.v5("PUBLISH QoS 3", &[0x36, 0x06, 0x00, 0x01, b't', 0x00, 0x01, 0x00], MALFORMED).await;
    arena.v311("PUBLISH QoS 3", &bytes).await;
    arena.finish().await;
}

#[tokio::test]
async fn packet_identifier_0_closes_the_connection() {
    let mut arena = Arena::start(|_| {}).await;
    arena.v5("QoS 1 PUBLISH with packet id 0", &publish_v5(b"t", 1, 0, &[]), MALFORMED_OR_PROTOCOL).await;
    arena.v311("QoS 1 PUBLISH with packet id 0", &publish_v311(b"t", 1, 0)).await;
    arena.v5("QoS 2 PUBLISH with packet id 0", &publish_v5(b"t", 2, 0, &[]), MALFORMED_OR_PROTOCOL).await;
    arena
        .v5("SUBSCRIBE with packet id 0", &subscribe_packet(Level::V5, 0, &[("t", 0)], &[]), MALFORMED_OR_PROTOCOL)
        .await;
    arena.v311("SUBSCRIBE with packet id 0", &subscribe_packet(Level::V311, 0, &[("t", 0)], &[])).await;
    arena.v5("UNSUBSCRIBE with packet id 0", &unsubscribe_packet(Level::V5, 0, &["t"]), MALFORMED_OR_PROTOCOL).await;
    arena.v311("UNSUBSCRIBE with packet id 0", &unsubscribe_packet(Level::V311, 0, &["t"])).await;
    arena.finish().await;
}

#[tokio::test]
async fn duplicated_property_closes_a_v5_connection_with_protocol_error() {
    let mut arena = Arena::start(|_| {}).await;
    let twice = |p: Vec<u8>| [p.clone(), p].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("payload format indicator twice", publish_v5(b"t", 0, 0, &twice(p_u8(prop::PAYLOAD_FORMAT_INDICATOR, 1)))),
        ("message expiry interval twice", publish_v5(b"t", 1, 1, &twice(p_u32(prop::MESSAGE_EXPIRY_INTERVAL, 5)))),
        ("content type twice", publish_v5(b"t", 0, 0, &twice(p_str(prop::CONTENT_TYPE, "x")))),
        ("topic alias twice", publish_v5(b"t", 0, 0, &twice(p_u16(prop::TOPIC_ALIAS, 1)))),
        (
            "subscription identifier twice in SUBSCRIBE",
            subscribe_packet(Level::V5, 1, &[("t", 0)], &twice(p_var(prop::SUBSCRIPTION_IDENTIFIER, 1))),
        ),
        ("reason string twice in DISCONNECT", disconnect_v5(0x00, &twice(p_str(prop::REASON_STRING, "r")))),
    ];
    for (name, bytes) in cases {
        arena.v5(name, &bytes, PROTOCOL_ERROR).await;
    }
    arena.finish().await;
}

#[tokio::test]
async fn property_not_allowed_in_the_packet_closes_a_v5_connection_as_malformed() {
    let mut arena = Arena::start(|_| {}).await;
    // 5.0 section 2.2.2.2: an identifier not valid for the packet type is a Malformed Packet.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("session expiry interval in PUBLISH", publish_v5(b"t", 0, 0, &p_u32(prop::SESSION_EXPIRY_INTERVAL, 5))),
        ("receive maximum in PUBLISH", publish_v5(b"t", 1, 1, &p_u16(prop::RECEIVE_MAXIMUM, 5))),
        ("unknown property 0x7F in PUBLISH", publish_v5(b"t", 0, 0, &[0x7F, 0x00])),
        ("topic alias in SUBSCRIBE", subscribe_packet(Level::V5, 1, &[("t", 0)], &p_u16(prop::TOPIC_ALIAS, 1))),
        ("will delay interval in DISCONNECT", disconnect_v5(0x00, &p_u32(prop::WILL_DELAY_INTERVAL, 1))),
    ];
    for (name, bytes) in cases {
        arena.v5(name, &bytes, MALFORMED).await;
    }
    // A property length made of 5 bytes.
    let mut body = field(b"t");
    body.extend([0x80, 0x80, 0x80, 0x80, 0x00]);
    arena.v5("5-byte property length", &frame(0x30, &body), MALFORMED).await;
    arena.finish().await;
}

#[tokio::test]
async fn reserved_subscription_option_bits_close_the_connection_as_malformed() {
    let mut arena = Arena::start(|_| {}).await;
    // [MQTT-3.8.3-5] (5.0): bits 6 and 7 are reserved.
    arena.v5("options 0x40", &subscribe_packet(Level::V5, 1, &[("t", 0x40)], &[]), MALFORMED).await;
    arena.v5("options 0xC1", &subscribe_packet(Level::V5, 1, &[("t", 0xC1)], &[]), MALFORMED).await;
    // 3.1.1 section 3.8.3.1: bits 2-7 are reserved.
    arena.v311("options 0x04", &subscribe_packet(Level::V311, 1, &[("t", 0x04)], &[])).await;
    arena.v311("options 0x80", &subscribe_packet(Level::V311, 1, &[("t", 0x80)], &[])).await;
    // QoS 3 and retain handling 3 are errors too.
    arena.v5("subscription QoS 3", &subscribe_packet(Level::V5, 1, &[("t", 0x03)], &[]), MALFORMED_OR_PROTOCOL).await;
    arena.v311("subscription QoS 3", &subscribe_packet(Level::V311, 1, &[("t", 0x03)], &[])).await;
    arena.v5("retain handling 3", &subscribe_packet(Level::V5, 1, &[("t", 0x30)], &[]), MALFORMED_OR_PROTOCOL).await;
    // [MQTT-3.8.3-4] (5.0): no local on a shared subscription is a Protocol Error.
    arena
        .v5(
            "no local on a shared subscription",
            &subscribe_packet(Level::V5, 1, &[("$share/g/t", 0x04)], &[]),
            PROTOCOL_ERROR,
        )
        .await;
    arena.finish().await;
}

#[tokio::test]
async fn packet_larger_than_max_packet_size_closes_the_connection_with_packet_too_large() {
    let mut arena = Arena::start(|c| c.mqtt.max_packet_size = NonZeroU32::new(1024).unwrap()).await;
    let big = vec![b'x'; 2000];
    let v5 = PublishSpec::new("t", &big).qos(1, 1).encode(Level::V5);
    let v311 = PublishSpec::new("t", &big).qos(1, 1).encode(Level::V311);
    // 5.0 section 3.2.2.3.6: DISCONNECT 0x95 (Packet too large).
    arena.v5("2000-byte PUBLISH", &v5, &[0x95]).await;
    arena.v311("2000-byte PUBLISH", &v311).await;
    // The size is judged from the fixed header: the body need not arrive.
    arena.v5("header announcing 2000 bytes", &[0x30, 0xD0, 0x0F], &[0x95]).await;
    arena.v311("header announcing 2000 bytes", &[0x30, 0xD0, 0x0F]).await;
    arena.v5("header announcing 256 MB", &[0x30, 0xFF, 0xFF, 0xFF, 0x7F], &[0x95]).await;
    // A packet of exactly the maximum is accepted.
    let (mut raw, _) = Raw::connect(arena.addr, Connect::v311("exact-fit")).await;
    // 1 header byte + 2 remaining-length bytes + 3 topic bytes + payload.
    let fit = PublishSpec::new("t", &vec![b'y'; 1024 - 6]).encode(Level::V311);
    assert_eq!(fit.len(), 1024);
    raw.send(&fit).await;
    raw.ping().await;
    arena.finish().await;
}

#[tokio::test]
async fn v5_topic_alias_errors_close_the_connection() {
    let mut arena = Arena::start(|c| c.mqtt.max_topic_alias = 4).await;
    let alias = |n: u16| p_u16(prop::TOPIC_ALIAS, n);
    // 5.0 section 3.3.2.3.4: 0 or above the maximum: 0x94 Topic Alias invalid.
    arena.v5("topic alias 0", &publish_v5(b"t", 0, 0, &alias(0)), &[0x94, 0x82]).await;
    arena.v5("topic alias above the maximum", &publish_v5(b"t", 0, 0, &alias(5)), &[0x94]).await;
    // An alias never set, with an empty topic.
    arena.v5("unknown topic alias", &publish_v5(b"", 0, 0, &alias(2)), &[0x82, 0x94]).await;
    arena.finish().await;
}

#[tokio::test]
async fn v5_client_breaking_flow_rules_gets_the_matching_disconnect_reason() {
    let mut arena = Arena::start(|c| c.mqtt.receive_maximum = NonZeroU16::new(2).unwrap()).await;
    // [MQTT-3.3.4-6]: a client must not send a subscription identifier.
    let sub_id = p_var(prop::SUBSCRIPTION_IDENTIFIER, 3);
    arena.v5("subscription identifier in PUBLISH", &publish_v5(b"t", 0, 0, &sub_id), MALFORMED_OR_PROTOCOL).await;
    // [MQTT-3.3.4-9] 5.0: more unacknowledged QoS 2 PUBLISH than Receive Maximum: 0x93.
    let flood: Vec<u8> = (1..=3).flat_map(|id| publish_v5(b"t", 2, id, &[])).collect();
    arena.v5("receive maximum exceeded", &flood, &[0x93]).await;
    // Packets only a server sends.
    arena.v5("CONNACK from a client", &[0x20, 0x03, 0x00, 0x00, 0x00], PROTOCOL_ERROR).await;
    arena.v5("SUBACK from a client", &[0x90, 0x04, 0x00, 0x01, 0x00, 0x00], PROTOCOL_ERROR).await;
    arena.v5("PINGRESP from a client", &[0xD0, 0x00], PROTOCOL_ERROR).await;
    arena.v5("AUTH without an authentication method", &[0xF0, 0x00], PROTOCOL_ERROR).await;
    arena.v5("reserved packet type 0", &[0x00, 0x00], MALFORMED).await;
    arena.v5("DUP on a QoS 0 PUBLISH", &[0x38, 0x04, 0x00, 0x01, b't', 0x00], MALFORMED_OR_PROTOCOL).await;
    arena.v5("SUBSCRIBE without filters", &[0x82, 0x03, 0x00, 0x01, 0x00], PROTOCOL_ERROR).await;
    let id_zero = p_var(prop::SUBSCRIPTION_IDENTIFIER, 0);
    arena
        .v5("subscription identifier 0", &subscribe_packet(Level::V5, 1, &[("t", 0)], &id_zero), MALFORMED_OR_PROTOCOL)
        .await;
    arena.v5("UNSUBSCRIBE without filters", &[0xA2, 0x03, 0x00, 0x01, 0x00], PROTOCOL_ERROR).await;
    arena.v5("DISCONNECT with an unknown reason code", &[0xE0, 0x01, 0x03], MALFORMED_OR_PROTOCOL).await;
    arena.finish().await;
}

#[tokio::test]
async fn v311_client_breaking_flow_rules_is_disconnected() {
    let mut arena = Arena::start(|_| {}).await;
    arena.v311("CONNACK from a client", &[0x20, 0x02, 0x00, 0x00]).await;
    arena.v311("SUBACK from a client", &[0x90, 0x03, 0x00, 0x01, 0x00]).await;
    arena.v311("PINGRESP from a client", &[0xD0, 0x00]).await;
    arena.v311("AUTH (reserved in 3.1.1)", &[0xF0, 0x00]).await;
    arena.v311("reserved packet type 0", &[0x00, 0x00]).await;
    arena.v311("DUP on a QoS 0 PUBLISH", &[0x38, 0x03, 0x00, 0x01, b't']).await;
    arena.v311("SUBSCRIBE without filters", &[0x82, 0x02, 0x00, 0x01]).await;
    arena.v311("UNSUBSCRIBE without filters", &[0xA2, 0x02, 0x00, 0x01]).await;
    arena.finish().await;
}

#[tokio::test]
async fn malformed_connect_closes_the_connection_without_accepting_it() {
    let arena = Arena::start(|_| {}).await;
    let addr = arena.addr;
    // [MQTT-3.1.4-1]: a CONNECT that does not match the format closes the connection.
    let mut reserved_v5 = Connect::v5("reserved-flag").encode();
    reserved_v5[9] |= 0x01; // reserved CONNECT flag ([MQTT-3.1.2-3])
    let mut reserved_v311 = Connect::v311("reserved-flag").encode();
    reserved_v311[9] |= 0x01;
    let mut wrong_name = field(b"MQTX");
    wrong_name.extend([0x04, 0x02, 0x00, 0x3C]);
    wrong_name.extend(field(b"x"));
    let mut will_qos3 = Connect::v311("q3").will(WillSpec::new("w", b"w")).encode();
    will_qos3[9] |= 0x18;
    let wildcard_will = Connect::v311("ww").will(WillSpec::new("will/#", b"w")).encode();
    let mut mismatched_name = field(b"MQIsdp"); // 3.1's name with level 4
    mismatched_name.extend([0x04, 0x02, 0x00, 0x3C]);
    mismatched_name.extend(field(b"x"));
    let receive_maximum_0 = Connect::v5("rm0").props(p_u16(prop::RECEIVE_MAXIMUM, 0)).encode();
    let max_packet_size_0 = Connect::v5("mps0").props(p_u32(prop::MAXIMUM_PACKET_SIZE, 0)).encode();
    let expiry_twice = Connect::v5("twice").session_expiry(1).session_expiry(2).encode();
    let cases = [
        ("MQTT 5 CONNECT with receive maximum 0", receive_maximum_0),
        ("MQTT 5 CONNECT with maximum packet size 0", max_packet_size_0),
        ("MQTT 5 CONNECT with session expiry twice", expiry_twice),
        ("MQTT 5 CONNECT with the reserved flag", reserved_v5),
        ("MQTT 3.1.1 CONNECT with the reserved flag", reserved_v311),
        ("protocol name MQTX", frame(0x10, &wrong_name)),
        ("protocol name MQIsdp with level 4", frame(0x10, &mismatched_name)),
        ("will QoS 3", will_qos3),
        ("will topic with a wildcard", wildcard_will),
        ("an HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
    ];
    for (name, bytes) in cases {
        let mut raw = Raw::tcp(addr, Level::V311).await;
        raw.send(&bytes).await;
        let frames = raw.expect_closed().await;
        let refused = frames.iter().all(|f| f.kind() == CONNACK && f.body.get(1).is_some_and(|code| *code != 0));
        assert!(refused, "{name}: only a refusing CONNACK may precede the close, got {frames:?}");
    }
    arena.finish().await;
}

#[tokio::test]
async fn malformed_v5_connect_is_answered_with_connack_0x81_before_the_close() {
    // The specification allows this (5.0 section 3.1.4: "MAY send a CONNACK
    // with a Reason Code of 0x80 or greater"); the broker documents that it
    // does it (server/connection.rs, refuse_bad_connect).
    let arena = Arena::start(|_| {}).await;
    let mut v5 = Connect::v5("reserved-flag").encode();
    v5[9] |= 0x01;
    let mut raw = Raw::tcp(arena.addr, Level::V5).await;
    raw.send(&v5).await;
    let frames = raw.expect_closed().await;
    assert_eq!(frames.len(), 1, "expected CONNACK 0x81 then the close, got {frames:?}");
    assert_eq!(frames[0].connack().code, 0x81, "{frames:?}");
    arena.finish().await;
}

#[tokio::test]
async fn socket_that_sends_nothing_is_closed_after_the_connect_timeout() {
    let arena = Arena::start(|c| c.listeners.tcp.connect_timeout_secs = NonZeroU16::new(1).unwrap()).await;
    let mut silent = Raw::tcp(arena.addr, Level::V311).await;
    let mut partial = Raw::tcp(arena.addr, Level::V311).await;
    partial.send(&Connect::v311("half").encode()[..6]).await;
    let frames = silent.expect_closed_within(Duration::from_secs(5)).await;
    assert!(frames.is_empty());
    let frames = partial.expect_closed_within(Duration::from_secs(5)).await;
    assert!(frames.is_empty(), "half a CONNECT is not a CONNECT: {frames:?}");
    arena.finish().await;
}

#[tokio::test]
async fn client_that_trickles_a_packet_byte_by_byte_is_disconnected_by_keep_alive() {
    // [MQTT-3.1.2-22] (5.0; [MQTT-3.1.2-24] in 3.1.1): the server must disconnect if it does not receive a
    // Control Packet within 1.5 x keep alive; bytes of an unfinished packet
    // are not a Control Packet.
    let arena = Arena::start(|_| {}).await;
    let (mut raw, _) = Raw::connect(arena.addr, Connect::v5("trickler").keep_alive(1)).await;
    raw.send(&[0x30, 0x64]).await; // PUBLISH, 100 bytes to come
    let mut closed_with = None;
    for _ in 0..20 {
        raw.send(b"a").await;
        match raw.read(Duration::from_millis(300)).await {
            Read::TimedOut => {}
            Read::Frame(frame) => {
                closed_with = Some(format!("{frame:?}"));
                break;
            }
            Read::Closed => {
                closed_with = Some("close".into());
                break;
            }
        }
    }
    let closed_with =
        closed_with.expect("a client trickling one byte every 300 ms was still connected after 6 s (keep alive 1 s)");
    let keep_alive_timeout = closed_with.contains("[e0, 01, 8d]") || closed_with.contains("[e0, 02, 8d, 00]");
    assert!(keep_alive_timeout || closed_with == "close", "closed with {closed_with}");
    arena.finish().await;
}

#[tokio::test]
async fn connections_beyond_max_connections_are_closed_at_accept() {
    let mut arena = Arena::start(|c| c.listeners.tcp.max_connections = NonZeroUsize::new(3).unwrap()).await;
    // The two bystanders hold two of the three.
    let (mut third, _) = Raw::connect(arena.addr, Connect::v311("third")).await;
    let mut fourth = Raw::tcp(arena.addr, Level::V311).await;
    fourth.send(&Connect::v311("fourth").encode()).await;
    let frames = fourth.expect_closed().await;
    assert!(frames.is_empty(), "{frames:?}");
    third.ping().await;
    arena.round_trip().await;
    third.disconnect().await;
    // Room again once a client left.
    within_named("the slot to free up", WAIT, async {
        while arena.server.connection_count() >= 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let (mut fifth, _) = Raw::connect(arena.addr, Connect::v311("fifth")).await;
    fifth.ping().await;
    fifth.disconnect().await;
    let Arena { server, publisher, sub, .. } = arena;
    publisher.disconnect().await;
    sub.disconnect().await;
    server.shutdown().await;
}
