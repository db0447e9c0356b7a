//! Encoder tests: exact layouts, version mapping, `encoded_len` agreement and
//! round trips of every packet type at every protocol level.

#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use super::*;
use crate::decode::decode_packet;
use crate::packet::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties, PacketId,
    PublishProperties, RetainHandling, SubscribeProperties, SubscriptionOptions, Will, WillProperties,
};

const V3: ProtocolVersion = ProtocolVersion::V3_1;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;
const ALL: [ProtocolVersion; 3] = [V3, V4, V5];

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn s(text: &str) -> ByteString {
    text.into()
}

fn bytes_of(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let written = encode(packet, version, &mut buf).unwrap();
    assert_eq!(written, buf.len());
    assert_eq!(encoded_len(packet, version).unwrap(), buf.len());
    buf.to_vec()
}

/// Encodes `packet` at `version` and compares with `expected`.
fn check(packet: Packet, version: ProtocolVersion, expected: &[u8]) {
    assert_eq!(bytes_of(&packet, version), expected, "{packet:?} at {version}");
}

fn check_invalid(packet: Packet, version: ProtocolVersion) {
    let mut buf = BytesMut::from(&b"keep"[..]);
    let err = encode(&packet, version, &mut buf).unwrap_err();
    assert!(matches!(err, EncodeError::Invalid(_)), "{err:?}");
    assert_eq!(&buf[..], b"keep", "nothing written on error");
    assert_eq!(encoded_len(&packet, version), Err(err));
}

/// Encodes, checks the length, decodes and compares.
fn round_trip(packet: Packet, version: ProtocolVersion) {
    let mut buf = BytesMut::new();
    let written = encode(&packet, version, &mut buf).unwrap();
    assert_eq!(written, buf.len());
    assert_eq!(encoded_len(&packet, version).unwrap(), written, "{packet:?}");
    let decoded = decode_packet(Some(version), buf.freeze()).unwrap();
    assert_eq!(decoded, packet, "at {version}");
}

// ---------- layouts ----------

#[test]
fn v4_connect_layout() {
    let connect = Connect {
        protocol: V4,
        clean_start: true,
        keep_alive: 60,
        client_id: s("c"),
        will: None,
        username: Some(s("u")),
        password: Some(Bytes::from_static(b"p")),
        properties: ConnectProperties::default(),
    };
    check(
        Packet::Connect(Box::new(connect)),
        V4,
        &[
            0x10, 0x13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xC2, 0x00, 0x3C, 0x00, 0x01, b'c', 0x00, 0x01, b'u',
            0x00, 0x01, b'p',
        ],
    );
}

#[test]
fn v3_connect_uses_mqisdp() {
    let connect = Connect {
        protocol: V3,
        clean_start: false,
        keep_alive: 0,
        client_id: s("c"),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    };
    check(
        Packet::Connect(Box::new(connect)),
        V3,
        &[0x10, 0x0F, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x00, 0x00, 0x00, 0x00, 0x01, b'c'],
    );
}

#[test]
fn publish_fixed_header_flags() {
    let publish = Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: true,
        topic: s("t"),
        packet_id: Some(pid(0x0102)),
        payload: Bytes::from_static(b"x"),
        properties: PublishProperties::default(),
    };
    check(Packet::Publish(publish.clone()), V4, &[0x3D, 0x06, 0x00, 0x01, b't', 0x01, 0x02, b'x']);
    check(Packet::Publish(publish), V5, &[0x3D, 0x07, 0x00, 0x01, b't', 0x01, 0x02, 0x00, b'x']);
}

#[test]
fn v5_pub_response_uses_shortest_form() {
    let mut p = PubResponse::new(pid(1));
    check(Packet::PubAck(p.clone()), V5, &[0x40, 0x02, 0x00, 0x01]);
    p.reason_code = ReasonCode::NO_MATCHING_SUBSCRIBERS;
    check(Packet::PubRec(p.clone()), V5, &[0x50, 0x03, 0x00, 0x01, 0x10]);
    p.properties.reason_string = Some(s("r"));
    check(Packet::PubRel(p.clone()), V5, &[0x62, 0x08, 0x00, 0x01, 0x10, 0x04, 0x1F, 0x00, 0x01, b'r']);
    p.reason_code = ReasonCode::SUCCESS;
    check(Packet::PubComp(p), V5, &[0x70, 0x08, 0x00, 0x01, 0x00, 0x04, 0x1F, 0x00, 0x01, b'r']);
}

#[test]
fn v4_pub_response_drops_reason_and_properties() {
    let mut p = PubResponse::new(pid(1));
    p.reason_code = ReasonCode::NO_MATCHING_SUBSCRIBERS;
    p.properties.reason_string = Some(s("r"));
    check(Packet::PubAck(p.clone()), V4, &[0x40, 0x02, 0x00, 0x01]);
    check(Packet::PubRel(p), V3, &[0x62, 0x02, 0x00, 0x01]);
}

#[test]
fn v5_disconnect_omits_reason_when_normal_and_keeps_property_length_otherwise() {
    check(Packet::Disconnect(Disconnect::default()), V5, &[0xE0, 0x00]);
    check(Packet::Disconnect(Disconnect::new(ReasonCode::SERVER_SHUTTING_DOWN)), V5, &[0xE0, 0x02, 0x8B, 0x00]);
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(0);
    check(Packet::Disconnect(d), V5, &[0xE0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00]);
}

#[test]
fn v4_disconnect_is_empty() {
    check(Packet::Disconnect(Disconnect::new(ReasonCode::SERVER_SHUTTING_DOWN)), V4, &[0xE0, 0x00]);
}

#[test]
fn v5_auth_uses_shortest_form() {
    check(Packet::Auth(Auth::default()), V5, &[0xF0, 0x00]);
    let auth = Auth { reason_code: ReasonCode::CONTINUE_AUTHENTICATION, properties: Default::default() };
    check(Packet::Auth(auth), V5, &[0xF0, 0x01, 0x18]);
}

#[test]
fn auth_before_v5_is_invalid() {
    check_invalid(Packet::Auth(Auth::default()), V4);
    check_invalid(Packet::Auth(Auth::default()), V3);
}

#[test]
fn pings_are_two_bytes() {
    for v in ALL {
        check(Packet::PingReq, v, &[0xC0, 0x00]);
        check(Packet::PingResp, v, &[0xD0, 0x00]);
    }
}

#[test]
fn v4_connack_maps_reason_to_return_code() {
    for (reason, code) in [
        (ReasonCode::SUCCESS, 0),
        (ReasonCode::UNSUPPORTED_PROTOCOL_VERSION, 1),
        (ReasonCode::CLIENT_IDENTIFIER_NOT_VALID, 2),
        (ReasonCode::SERVER_UNAVAILABLE, 3),
        (ReasonCode::SERVER_BUSY, 3),
        (ReasonCode::UNSPECIFIED_ERROR, 3),
        (ReasonCode::BANNED, 3),
        (ReasonCode::BAD_USER_NAME_OR_PASSWORD, 4),
        (ReasonCode::NOT_AUTHORIZED, 5),
    ] {
        let connack = ConnAck { reason_code: reason, ..Default::default() };
        check(Packet::ConnAck(connack), V4, &[0x20, 0x02, 0x00, code]);
    }
}

#[test]
fn v4_connack_with_success_code_other_than_0_is_invalid() {
    let connack = ConnAck { reason_code: ReasonCode(0x01), ..Default::default() };
    check_invalid(Packet::ConnAck(connack), V4);
}

#[test]
fn v5_connack_carries_reason_and_properties() {
    let connack = ConnAck { session_present: true, reason_code: ReasonCode::SUCCESS, ..Default::default() };
    check(Packet::ConnAck(connack), V5, &[0x20, 0x03, 0x01, 0x00, 0x00]);
}

#[test]
fn v4_suback_maps_failures_to_0x80() {
    let suback = SubAck {
        packet_id: pid(1),
        reason_codes: vec![ReasonCode(0), ReasonCode(1), ReasonCode(2), ReasonCode::NOT_AUTHORIZED, ReasonCode(0x80)],
        properties: AckProperties { reason_string: Some(s("dropped")), user_properties: vec![] },
    };
    check(Packet::SubAck(suback), V4, &[0x90, 0x07, 0x00, 0x01, 0x00, 0x01, 0x02, 0x80, 0x80]);
}

#[test]
fn v4_suback_code_without_mapping_is_invalid() {
    let suback = SubAck { packet_id: pid(1), reason_codes: vec![ReasonCode(0x10)], properties: Default::default() };
    check_invalid(Packet::SubAck(suback), V4);
}

#[test]
fn v4_unsuback_drops_reason_codes() {
    let unsuback = UnsubAck {
        packet_id: pid(2),
        reason_codes: vec![ReasonCode::NO_SUBSCRIPTION_EXISTED],
        properties: Default::default(),
    };
    check(Packet::UnsubAck(unsuback.clone()), V4, &[0xB0, 0x02, 0x00, 0x02]);
    check(Packet::UnsubAck(unsuback), V5, &[0xB0, 0x04, 0x00, 0x02, 0x00, 0x11]);
}

#[test]
fn v4_subscribe_keeps_only_qos() {
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
    };
    let subscribe = Subscribe { packet_id: pid(1), filters: vec![(s("a"), options)], properties: Default::default() };
    check(Packet::Subscribe(subscribe.clone()), V4, &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x01]);
    check(Packet::Subscribe(subscribe), V5, &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x2D]);
}

// ---------- invalid values ----------

#[test]
fn string_over_65535_bytes_is_invalid() {
    let long = s(&"a".repeat(65_536));
    let publish = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: long.clone(),
        packet_id: None,
        payload: Bytes::new(),
        properties: Default::default(),
    };
    check_invalid(Packet::Publish(publish), V4);
    let mut d = Disconnect::new(ReasonCode::UNSPECIFIED_ERROR);
    d.properties.reason_string = Some(long);
    check_invalid(Packet::Disconnect(d), V5);
}

#[test]
fn binary_over_65535_bytes_is_invalid() {
    let connect = Connect {
        protocol: V4,
        clean_start: true,
        keep_alive: 0,
        client_id: s("c"),
        will: None,
        username: Some(s("u")),
        password: Some(Bytes::from(vec![0; 65_536])),
        properties: Default::default(),
    };
    check_invalid(Packet::Connect(Box::new(connect)), V4);
}

#[test]
fn publish_qos_and_packet_id_must_agree() {
    let mut publish = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: s("t"),
        packet_id: None,
        payload: Bytes::new(),
        properties: Default::default(),
    };
    check_invalid(Packet::Publish(publish.clone()), V4);
    publish.qos = QoS::AtMostOnce;
    publish.packet_id = Some(pid(1));
    check_invalid(Packet::Publish(publish), V5);
}

#[test]
fn subscription_identifier_above_range_is_invalid() {
    let subscribe = Subscribe {
        packet_id: pid(1),
        filters: vec![(s("a"), SubscriptionOptions::default())],
        properties: SubscribeProperties { subscription_identifier: Some(268_435_456), user_properties: vec![] },
    };
    check_invalid(Packet::Subscribe(subscribe), V5);
}

#[test]
fn remaining_length_over_limit_is_too_large() {
    // Zeroed allocation: the pages are never touched by `encoded_len`.
    let publish = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: s("t"),
        packet_id: None,
        payload: Bytes::from(vec![0u8; crate::MAX_REMAINING_LENGTH - 3]),
        properties: Default::default(),
    };
    let packet = Packet::Publish(publish);
    // At 3.1.1 the remaining length is exactly the limit; 5.0 adds a property length byte.
    assert_eq!(encoded_len(&packet, V4).unwrap(), 1 + 4 + crate::MAX_REMAINING_LENGTH);
    let err = encoded_len(&packet, V5).unwrap_err();
    assert_eq!(err, EncodeError::PacketTooLarge { size: crate::MAX_REMAINING_LENGTH + 1, max: 268_435_455 });
    let mut buf = BytesMut::new();
    assert_eq!(encode(&packet, V5, &mut buf), Err(err));
    assert!(buf.is_empty());
}

// ---------- round trips ----------

fn users() -> Vec<(ByteString, ByteString)> {
    vec![(s("k"), s("v1")), (s("k"), s("v2")), (s(""), s(""))]
}

fn full_connect(version: ProtocolVersion) -> Connect {
    let v5 = version.is_v5();
    Connect {
        protocol: version,
        clean_start: false,
        keep_alive: 65_535,
        client_id: s("client-ü"),
        will: Some(Will {
            topic: s("last/will"),
            payload: Bytes::from_static(b"\x00\xFFgone"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: if v5 {
                WillProperties {
                    will_delay_interval: Some(10),
                    payload_format_indicator: Some(1),
                    message_expiry_interval: Some(u32::MAX),
                    content_type: Some(s("text/plain")),
                    response_topic: Some(s("reply/here")),
                    correlation_data: Some(Bytes::from_static(b"corr")),
                    user_properties: users(),
                }
            } else {
                Default::default()
            },
        }),
        username: Some(s("user")),
        password: Some(Bytes::from_static(b"pass\x00word")),
        properties: if v5 {
            ConnectProperties {
                session_expiry_interval: Some(3600),
                receive_maximum: Some(20),
                maximum_packet_size: Some(1 << 20),
                topic_alias_maximum: Some(10),
                request_response_information: Some(true),
                request_problem_information: Some(false),
                user_properties: users(),
                authentication_method: Some(s("SCRAM-SHA-1")),
                authentication_data: Some(Bytes::from_static(b"data")),
            }
        } else {
            Default::default()
        },
    }
}

fn minimal_connect(version: ProtocolVersion) -> Connect {
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 0,
        client_id: s(""),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    }
}

fn ack_props(version: ProtocolVersion) -> AckProperties {
    if version.is_v5() {
        AckProperties { reason_string: Some(s("because")), user_properties: users() }
    } else {
        AckProperties::default()
    }
}

/// One or more samples of every packet type, as `version` can carry them.
fn samples(version: ProtocolVersion) -> Vec<Packet> {
    let v5 = version.is_v5();
    let mut packets = vec![
        Packet::Connect(Box::new(full_connect(version))),
        Packet::Connect(Box::new(minimal_connect(version))),
        Packet::ConnAck(ConnAck::default()),
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason_code: ReasonCode::NOT_AUTHORIZED,
            properties: Default::default(),
        }),
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: s("a/b"),
            packet_id: None,
            payload: Bytes::new(),
            properties: Default::default(),
        }),
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: s("sensors/τ/1"),
            packet_id: Some(pid(65_535)),
            payload: Bytes::from(vec![7u8; 300]),
            properties: if v5 {
                PublishProperties {
                    payload_format_indicator: Some(0),
                    message_expiry_interval: Some(30),
                    topic_alias: Some(3),
                    response_topic: Some(s("reply")),
                    correlation_data: Some(Bytes::from_static(b"id")),
                    user_properties: users(),
                    subscription_identifiers: vec![1, 127, 128, 268_435_455],
                    content_type: Some(s("application/json")),
                }
            } else {
                Default::default()
            },
        }),
        Packet::PubAck(PubResponse::new(pid(1))),
        Packet::PubRec(PubResponse::new(pid(2))),
        Packet::PubRel(PubResponse::new(pid(3))),
        Packet::PubComp(PubResponse::new(pid(4))),
        Packet::Subscribe(Subscribe {
            packet_id: pid(10),
            filters: vec![
                (s("a/+/c"), SubscriptionOptions { qos: QoS::AtLeastOnce, ..Default::default() }),
                (s("#"), SubscriptionOptions { qos: QoS::ExactlyOnce, ..Default::default() }),
                (s("$share/g/x"), SubscriptionOptions::default()),
            ],
            properties: if v5 {
                SubscribeProperties { subscription_identifier: Some(99), user_properties: users() }
            } else {
                Default::default()
            },
        }),
        Packet::SubAck(SubAck {
            packet_id: pid(10),
            reason_codes: vec![ReasonCode::GRANTED_QOS_1, ReasonCode::GRANTED_QOS_2, ReasonCode(0x80)],
            properties: ack_props(version),
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(11),
            filters: vec![s("a/+/c"), s("#")],
            user_properties: if v5 { users() } else { vec![] },
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: pid(11),
            reason_codes: if v5 { vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED] } else { vec![] },
            properties: ack_props(version),
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Disconnect::default()),
    ];
    if v5 {
        let response = |reason: ReasonCode, props: bool| PubResponse {
            packet_id: pid(9),
            reason_code: reason,
            properties: if props { ack_props(version) } else { Default::default() },
        };
        packets.extend([
            Packet::ConnAck(ConnAck {
                session_present: true,
                reason_code: ReasonCode::SUCCESS,
                properties: ConnAckProperties {
                    session_expiry_interval: Some(0),
                    receive_maximum: Some(100),
                    maximum_qos: Some(QoS::AtLeastOnce),
                    retain_available: Some(false),
                    maximum_packet_size: Some(65_536),
                    assigned_client_identifier: Some(s("auto-1")),
                    topic_alias_maximum: Some(0),
                    reason_string: Some(s("welcome")),
                    user_properties: users(),
                    wildcard_subscription_available: Some(true),
                    subscription_identifiers_available: Some(false),
                    shared_subscription_available: Some(true),
                    server_keep_alive: Some(120),
                    response_information: Some(s("resp/")),
                    server_reference: Some(s("other:1883")),
                    authentication_method: Some(s("m")),
                    authentication_data: Some(Bytes::new()),
                },
            }),
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: s(""),
                packet_id: Some(pid(5)),
                payload: Bytes::from_static(b"aliased"),
                properties: PublishProperties { topic_alias: Some(1), ..Default::default() },
            }),
            Packet::PubAck(response(ReasonCode::NO_MATCHING_SUBSCRIBERS, false)),
            Packet::PubAck(response(ReasonCode::SUCCESS, true)),
            Packet::PubRec(response(ReasonCode::QUOTA_EXCEEDED, true)),
            Packet::PubRel(response(ReasonCode::PACKET_IDENTIFIER_NOT_FOUND, false)),
            Packet::PubComp(response(ReasonCode::PACKET_IDENTIFIER_NOT_FOUND, true)),
            Packet::Subscribe(Subscribe {
                packet_id: pid(12),
                filters: vec![(
                    s("x/#"),
                    SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: RetainHandling::SendAtSubscribeIfNew,
                    },
                )],
                properties: Default::default(),
            }),
            Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE)),
            Packet::Disconnect(Disconnect {
                reason_code: ReasonCode::SERVER_MOVED,
                properties: DisconnectProperties {
                    session_expiry_interval: Some(5),
                    reason_string: Some(s("moved")),
                    user_properties: users(),
                    server_reference: Some(s("elsewhere")),
                },
            }),
            Packet::Auth(Auth::default()),
            Packet::Auth(Auth { reason_code: ReasonCode::RE_AUTHENTICATE, properties: Default::default() }),
            Packet::Auth(Auth {
                reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: AuthProperties {
                    authentication_method: Some(s("SCRAM")),
                    authentication_data: Some(Bytes::from_static(b"\x01\x02")),
                    reason_string: Some(s("more")),
                    user_properties: users(),
                },
            }),
        ]);
    }
    packets
}

#[test]
fn every_packet_round_trips_at_v3() {
    for packet in samples(V3) {
        round_trip(packet, V3);
    }
}

#[test]
fn every_packet_round_trips_at_v4() {
    for packet in samples(V4) {
        round_trip(packet, V4);
    }
}

#[test]
fn every_packet_round_trips_at_v5() {
    for packet in samples(V5) {
        round_trip(packet, V5);
    }
}

#[test]
fn samples_cover_all_packet_types() {
    let names: std::collections::BTreeSet<&str> = samples(V5).iter().map(Packet::name).collect();
    assert_eq!(names.len(), 15);
}

#[test]
fn large_remaining_length_round_trips() {
    for size in [127 - 3, 128 - 3, 16_383 - 3, 16_384 - 3, 2_097_152] {
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: s("t"),
            packet_id: None,
            payload: Bytes::from(vec![1u8; size]),
            properties: Default::default(),
        });
        round_trip(packet, V4);
    }
}

#[test]
fn encode_appends_to_existing_bytes() {
    let mut buf = BytesMut::from(&b"xy"[..]);
    let written = encode(&Packet::PingReq, V4, &mut buf).unwrap();
    assert_eq!(written, 2);
    assert_eq!(&buf[..], b"xy\xC0\x00");
}

#[test]
fn connect_is_laid_out_for_its_own_protocol() {
    let packet = Packet::Connect(Box::new(minimal_connect(V4)));
    assert_eq!(bytes_of(&packet, V5), bytes_of(&packet, V4));
}
