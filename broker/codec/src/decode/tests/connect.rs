//! CONNECT and CONNACK decoding.

#![allow(clippy::unwrap_used)]

use super::*;

// ---------- CONNECT ----------

#[test]
fn connect_decodes_for_each_level() {
    for (name, level, version) in [("MQIsdp", 3, V3), ("MQTT", 4, V4), ("MQTT", 5, V5)] {
        let input = connect_body(name, level, 0xC2).str("client").str("user").bin(b"secret").frame(0x10);
        let Packet::Connect(c) = outcome_packet(None, &input) else { panic!() };
        assert_eq!(c.protocol, version);
        assert!(c.clean_start);
        assert_eq!(c.keep_alive, 30);
        assert_eq!(&*c.client_id, "client");
        assert_eq!(c.username.as_deref(), Some("user"));
        assert_eq!(c.password.as_deref(), Some(&b"secret"[..]));
    }
}

fn outcome_packet(version: Option<ProtocolVersion>, input: &[u8]) -> Packet {
    decode_packet(version, Bytes::copy_from_slice(input)).unwrap()
}

#[test]
fn wrong_protocol_name_is_a_protocol_error() {
    check(V4, &connect_body("MQTX", 4, 0).str("c").frame(0x10), Protocol("MQTT-3.1.2-1"));
}

#[test]
fn known_name_with_the_other_names_level_is_unsupported() {
    check(V4, &connect_body("MQTT", 3, 0).str("c").frame(0x10), Outcome::Unsupported(3));
    check(V4, &connect_body("MQIsdp", 4, 0).str("c").frame(0x10), Outcome::Unsupported(4));
    check(V4, &connect_body("MQIsdp", 5, 0).str("c").frame(0x10), Outcome::Unsupported(5));
}

#[test]
fn unknown_protocol_level_is_unsupported() {
    check(V4, &connect_body("MQTT", 6, 0).str("c").frame(0x10), Outcome::Unsupported(6));
    check(V4, &connect_body("MQTT", 2, 0).str("c").frame(0x10), Outcome::Unsupported(2));
    let err = decode_packet(None, Bytes::from(connect_body("MQTT", 7, 0).str("c").frame(0x10))).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);
}

#[test]
fn connect_fixed_header_flags_must_be_zero() {
    check(V4, &connect_body("MQTT", 4, 0).str("c").frame(0x11), Malformed("MQTT-2.2.2-2"));
    check(V4, &connect_body("MQTT", 5, 0).str("c").frame(0x18), Malformed("MQTT-2.1.3-1"));
}

#[test]
fn reserved_connect_flag_is_malformed() {
    check(V4, &connect_body("MQTT", 4, 0x01).str("c").frame(0x10), Malformed("MQTT-3.1.2-3"));
    check(V5, &connect_body("MQTT", 5, 0x01).str("c").frame(0x10), Malformed("MQTT-3.1.2-3"));
}

#[test]
fn will_qos_without_will_flag_is_malformed() {
    check(V4, &connect_body("MQTT", 4, 0x08).str("c").frame(0x10), Malformed("MQTT-3.1.2-13"));
    check(V5, &connect_body("MQTT", 5, 0x10).str("c").frame(0x10), Malformed("MQTT-3.1.2-11"));
}

#[test]
fn will_retain_without_will_flag_is_malformed() {
    check(V4, &connect_body("MQTT", 4, 0x20).str("c").frame(0x10), Malformed("MQTT-3.1.2-15"));
    check(V5, &connect_body("MQTT", 5, 0x20).str("c").frame(0x10), Malformed("MQTT-3.1.2-13"));
}

#[test]
fn will_qos_3_is_malformed() {
    let v4 = connect_body("MQTT", 4, 0x1C).str("c").str("w").bin(b"x").frame(0x10);
    check(V4, &v4, Malformed("MQTT-3.1.2-14"));
    let v5 = connect_body("MQTT", 5, 0x1C).str("c").no_props().str("w").bin(b"x").frame(0x10);
    check(V5, &v5, Malformed("MQTT-3.1.2-12"));
}

#[test]
fn password_without_user_name_is_malformed_before_v5() {
    check(V4, &connect_body("MQTT", 4, 0x40).str("c").bin(b"p").frame(0x10), Malformed("MQTT-3.1.2-22"));
    check(V3, &connect_body("MQIsdp", 3, 0x40).str("c").bin(b"p").frame(0x10), Malformed("MQTT-3.1.2-22"));
}

#[test]
fn password_without_user_name_is_allowed_in_v5() {
    let Packet::Connect(c) = decoded(V5, &connect_body("MQTT", 5, 0x40).str("c").bin(b"p").frame(0x10)) else {
        panic!()
    };
    assert_eq!(c.username, None);
    assert_eq!(c.password.as_deref(), Some(&b"p"[..]));
}

#[test]
fn missing_client_identifier_is_malformed() {
    check(V4, &connect_body("MQTT", 4, 0).frame(0x10), Malformed("MQTT-3.1.3-3"));
}

#[test]
fn missing_will_is_malformed() {
    check(V4, &connect_body("MQTT", 4, 0x04).str("c").frame(0x10), Malformed("MQTT-3.1.2-9"));
    check(V4, &connect_body("MQTT", 4, 0x04).str("c").str("w").frame(0x10), Malformed("MQTT-3.1.2-9"));
    check(V5, &connect_body("MQTT", 5, 0x04).str("c").no_props().frame(0x10), Malformed("MQTT-3.1.2-9"));
}

#[test]
fn missing_user_name_is_malformed() {
    check(V4, &connect_body("MQTT", 4, 0x80).str("c").frame(0x10), Malformed("MQTT-3.1.2-19"));
    check(V5, &connect_body("MQTT", 5, 0x80).str("c").frame(0x10), Malformed("MQTT-3.1.2-17"));
}

#[test]
fn missing_password_is_malformed() {
    check(V4, &connect_body("MQTT", 4, 0xC0).str("c").str("u").frame(0x10), Malformed("MQTT-3.1.2-21"));
    check(V5, &connect_body("MQTT", 5, 0x40).str("c").frame(0x10), Malformed("MQTT-3.1.2-19"));
}

#[test]
fn bytes_after_connect_payload_are_malformed() {
    check(V4, &connect_body("MQTT", 4, 0).str("c").str("u").frame(0x10), Malformed(""));
}

#[test]
fn will_topic_with_wildcard_is_malformed() {
    let input = connect_body("MQTT", 4, 0x04).str("c").str("w/+").bin(b"x").frame(0x10);
    check(V4, &input, Malformed("MQTT-3.3.2-2"));
}

#[test]
fn empty_will_topic_is_a_protocol_error() {
    let input = connect_body("MQTT", 5, 0x04).str("c").no_props().str("").bin(b"x").frame(0x10);
    check(V5, &input, Protocol("MQTT-4.7.3-1"));
}

#[test]
fn will_properties_follow_will_rules() {
    // Will Delay Interval is a will property, not a CONNECT property.
    check(V5, &connect_v5_with(B::new().u8(0x18).u32(5)), Malformed(""));
    let input = connect_body("MQTT", 5, 0x2C)
        .str("c")
        .props(B::new().u8(0x18).u32(5).u8(0x01).u8(1))
        .str("w")
        .bin(b"bye")
        .frame(0x10);
    let Packet::Connect(c) = decoded(V5, &input) else { panic!() };
    let will = c.will.unwrap();
    assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, true));
    assert_eq!(will.properties.will_delay_interval, Some(5));
    assert_eq!(will.properties.payload_format_indicator, Some(1));
}

#[test]
fn connect_debug_redacts_the_password() {
    let Packet::Connect(c) = decoded(V4, &connect_body("MQTT", 4, 0xC0).str("c").str("u").bin(b"hunter2").frame(0x10))
    else {
        panic!()
    };
    let text = format!("{c:?}");
    assert!(text.contains("<redacted 7 bytes>"), "{text}");
    assert!(!text.contains("hunter2"));
}

// ---------- CONNACK ----------

#[test]
fn connack_return_codes_map_to_reason_codes() {
    for (code, reason) in [(0, 0x00), (1, 0x84), (2, 0x85), (3, 0x88), (4, 0x86), (5, 0x87)] {
        let Packet::ConnAck(c) = decoded(V4, &[0x20, 0x02, 0x00, code]) else { panic!() };
        assert_eq!(c.reason_code, ReasonCode(reason));
    }
}

#[test]
fn connack_return_code_above_5_is_malformed() {
    check(V4, &[0x20, 0x02, 0x00, 0x06], Malformed(""));
    check(V3, &[0x20, 0x02, 0x00, 0x80], Malformed(""));
}

#[test]
fn connack_reserved_flags_are_malformed() {
    check(V4, &[0x20, 0x02, 0x02, 0x00], Malformed(""));
    check(V5, &[0x20, 0x03, 0x80, 0x00, 0x00], Malformed("MQTT-3.2.2-1"));
}

#[test]
fn connack_reason_must_be_a_connect_reason() {
    check(V5, &[0x20, 0x03, 0x00, 0x10, 0x00], Malformed("MQTT-3.2.2-8"));
}

#[test]
fn v5_connack_needs_property_length() {
    check(V5, &[0x20, 0x02, 0x00, 0x00], Malformed(""));
}
