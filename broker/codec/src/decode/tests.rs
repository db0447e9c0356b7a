//! Decoder tests: one test per rejection, each checking the error kind and
//! the statement it names, plus the incremental `Decoder`.

#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};

use super::*;
use crate::packet::{AckProperties, ConnAckProperties, UserProperty};

const V3: ProtocolVersion = ProtocolVersion::V3_1;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// What decoding should produce.
#[derive(Debug, PartialEq)]
enum Outcome {
    Packet(Box<Packet>),
    Malformed(&'static str),
    Protocol(&'static str),
    Unsupported(u8),
}
use Outcome::{Malformed, Protocol};

fn outcome(result: Result<Packet, DecodeError>) -> Outcome {
    match result {
        Ok(packet) => Outcome::Packet(Box::new(packet)),
        Err(DecodeError::Malformed(v)) => {
            assert_eq!(v.reason, ReasonCode::MALFORMED_PACKET);
            Malformed(v.statement)
        }
        Err(DecodeError::Protocol(v)) => {
            assert_eq!(v.reason, ReasonCode::PROTOCOL_ERROR);
            Protocol(v.statement)
        }
        Err(DecodeError::UnsupportedProtocolVersion { level }) => Outcome::Unsupported(level),
        Err(e @ DecodeError::PacketTooLarge { .. }) => panic!("unexpected {e}"),
    }
}

fn check(version: ProtocolVersion, input: &[u8], expected: Outcome) {
    let got = outcome(decode_packet(Some(version), Bytes::copy_from_slice(input)));
    assert_eq!(got, expected, "version {version}, input {input:02X?}");
}

fn decoded(version: ProtocolVersion, input: &[u8]) -> Packet {
    decode_packet(Some(version), Bytes::copy_from_slice(input)).unwrap()
}

/// Builds packet bytes.
#[derive(Default, Clone)]
struct B(Vec<u8>);

impl B {
    fn new() -> Self {
        Self::default()
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn raw(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    fn bin(self, v: &[u8]) -> Self {
        self.u16(u16::try_from(v.len()).unwrap()).raw(v)
    }
    fn str(self, v: &str) -> Self {
        self.bin(v.as_bytes())
    }
    fn varint(mut self, v: usize) -> Self {
        let mut buf = BytesMut::new();
        buf.put_varint(v).unwrap();
        self.0.extend_from_slice(&buf);
        self
    }
    /// A property block: length, then the properties.
    fn props(self, p: B) -> Self {
        self.varint(p.0.len()).raw(&p.0)
    }
    fn no_props(self) -> Self {
        self.u8(0)
    }
    /// The whole packet: first byte, remaining length, this body.
    fn frame(self, first: u8) -> Vec<u8> {
        B::new().u8(first).varint(self.0.len()).raw(&self.0).0
    }
}

use crate::wire::Sink;

mod connect;
mod decoder;

/// CONNECT up to the payload: name, level, flags, keep alive and (level 5) no properties.
fn connect_body(name: &str, level: u8, flags: u8) -> B {
    let b = B::new().str(name).u8(level).u8(flags).u16(30);
    if level == 5 { b.no_props() } else { b }
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn user(name: &str, value: &str) -> UserProperty {
    (name.into(), value.into())
}

// ---------- fixed header ----------

#[test]
fn packet_type_0_is_malformed() {
    check(V4, &[0x00, 0x00], Malformed(""));
    check(V5, &[0x00, 0x00], Malformed(""));
}

#[test]
fn packet_type_15_before_v5_is_malformed() {
    check(V3, &[0xF0, 0x00], Malformed(""));
    check(V4, &[0xF0, 0x00], Malformed(""));
}

#[test]
fn pubrel_flags_must_be_0010() {
    check(V4, &[0x60, 0x02, 0x00, 0x01], Malformed("MQTT-2.2.2-2"));
    check(V5, &[0x6A, 0x02, 0x00, 0x01], Malformed("MQTT-2.1.3-1"));
    assert_eq!(decoded(V4, &[0x62, 0x02, 0x00, 0x01]), Packet::PubRel(PubResponse::new(pid(1))));
}

#[test]
fn subscribe_flags_must_be_0010() {
    let body = B::new().u16(1).str("a").u8(0);
    check(V4, &body.clone().frame(0x80), Malformed("MQTT-2.2.2-2"));
    check(V5, &B::new().u16(1).no_props().str("a").u8(0).frame(0x83), Malformed("MQTT-2.1.3-1"));
}

#[test]
fn unsubscribe_flags_must_be_0010() {
    check(V4, &B::new().u16(1).str("a").frame(0xA0), Malformed("MQTT-2.2.2-2"));
}

#[test]
fn other_packets_need_zero_flags() {
    check(V4, &[0x41, 0x02, 0x00, 0x01], Malformed("MQTT-2.2.2-2"));
    check(V4, &[0xC2, 0x00], Malformed("MQTT-2.2.2-2"));
    check(V5, &[0xE1, 0x00], Malformed("MQTT-2.1.3-1"));
    check(V5, &[0xF4, 0x00], Malformed("MQTT-2.1.3-1"));
    check(V4, &[0x21, 0x02, 0x00, 0x00], Malformed("MQTT-2.2.2-2"));
}

#[test]
fn five_byte_remaining_length_is_malformed() {
    check(V4, &[0xC0, 0x80, 0x80, 0x80, 0x80, 0x01], Malformed(""));
}

#[test]
fn frame_longer_than_remaining_length_is_malformed() {
    check(V4, &[0xC0, 0x00, 0x00], Malformed(""));
}

#[test]
fn frame_shorter_than_remaining_length_is_malformed() {
    check(V4, &[0x40, 0x02, 0x00], Malformed(""));
}

#[test]
fn trailing_bytes_after_fields_are_malformed() {
    check(V4, &[0xC0, 0x01, 0x00], Malformed(""));
    check(V4, &[0xD0, 0x01, 0x00], Malformed(""));
    check(V4, &[0x40, 0x03, 0x00, 0x01, 0x00], Malformed(""));
    check(V4, &[0xE0, 0x01, 0x00], Malformed(""));
    check(V4, &[0xB0, 0x03, 0x00, 0x01, 0x00], Malformed(""));
}

#[test]
fn truncated_fields_are_malformed() {
    // Topic length 5 but only 1 byte follows.
    check(V4, &B::new().u16(5).u8(b'a').frame(0x30), Malformed(""));
    check(V5, &B::new().u16(1).frame(0x40).into_iter().take(3).collect::<Vec<_>>(), Malformed(""));
}

// ---------- UTF-8 strings ----------

#[test]
fn ill_formed_utf8_is_malformed() {
    let bad = B::new().bin(b"a\xFFb").frame(0x30);
    check(V4, &bad, Malformed("MQTT-1.5.3-1"));
    let bad = B::new().bin(b"\xED\xA0\x80").no_props().frame(0x30);
    check(V5, &bad, Malformed("MQTT-1.5.4-1"));
}

#[test]
fn null_character_in_string_is_malformed() {
    check(V4, &B::new().bin(b"a\0").frame(0x30), Malformed("MQTT-1.5.3-2"));
    check(V5, &B::new().bin(b"a\0").no_props().frame(0x30), Malformed("MQTT-1.5.4-2"));
}

// ---------- PUBLISH ----------

#[test]
fn publish_decodes_zero_copy() {
    let input = Bytes::from(B::new().str("a/b").u16(7).raw(b"hello").frame(0x3B));
    let Packet::Publish(p) = decode_packet(Some(V4), input.clone()).unwrap() else { panic!() };
    assert!(p.dup && p.retain);
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert_eq!(p.packet_id, Some(pid(7)));
    assert_eq!(&*p.topic, "a/b");
    assert_eq!(&p.payload[..], b"hello");
    let range = input.as_ptr_range();
    assert!(range.contains(&p.payload.as_ptr()));
    assert!(range.contains(&p.topic.as_bytes().as_ptr()));
}

#[test]
fn publish_qos_3_is_malformed() {
    check(V4, &B::new().str("a").u16(1).frame(0x36), Malformed("MQTT-3.3.1-4"));
    check(V5, &B::new().str("a").u16(1).no_props().frame(0x36), Malformed("MQTT-3.3.1-4"));
}

#[test]
fn dup_on_qos_0_is_a_protocol_error() {
    check(V4, &B::new().str("a").frame(0x38), Protocol("MQTT-3.3.1-2"));
}

#[test]
fn wildcard_in_topic_name_is_malformed() {
    check(V4, &B::new().str("a/+").frame(0x30), Malformed("MQTT-3.3.2-2"));
    check(V5, &B::new().str("#").no_props().frame(0x30), Malformed("MQTT-3.3.2-2"));
}

#[test]
fn empty_topic_name_is_a_protocol_error() {
    check(V4, &B::new().str("").frame(0x30), Protocol("MQTT-4.7.3-1"));
    check(V5, &B::new().str("").no_props().frame(0x30), Protocol("MQTT-4.7.3-1"));
}

#[test]
fn empty_topic_name_with_alias_is_allowed_in_v5() {
    let input = B::new().str("").props(B::new().u8(0x23).u16(4)).raw(b"x").frame(0x30);
    let Packet::Publish(p) = decoded(V5, &input) else { panic!() };
    assert_eq!(p.properties.topic_alias, Some(4));
    assert!(p.topic.is_empty());
}

#[test]
fn publish_packet_id_0_is_a_protocol_error() {
    check(V4, &B::new().str("a").u16(0).frame(0x32), Protocol("MQTT-2.3.1-1"));
    check(V5, &B::new().str("a").u16(0).no_props().frame(0x34), Protocol("MQTT-2.2.1-3"));
}

#[test]
fn topic_alias_0_is_a_protocol_error() {
    let input = B::new().str("a").props(B::new().u8(0x23).u16(0)).frame(0x30);
    check(V5, &input, Protocol("MQTT-3.3.2-8"));
}

#[test]
fn subscription_identifiers_may_repeat_in_publish() {
    let props = B::new().u8(0x0B).varint(1).u8(0x0B).varint(268_435_455);
    let Packet::Publish(p) = decoded(V5, &B::new().str("a").props(props).frame(0x30)) else { panic!() };
    assert_eq!(p.properties.subscription_identifiers, vec![1, 268_435_455]);
}

#[test]
fn subscription_identifier_0_is_a_protocol_error() {
    let input = B::new().str("a").props(B::new().u8(0x0B).u8(0)).frame(0x30);
    check(V5, &input, Protocol(""));
}

#[test]
fn payload_format_indicator_must_be_0_or_1() {
    let input = B::new().str("a").props(B::new().u8(0x01).u8(2)).frame(0x30);
    check(V5, &input, Protocol(""));
}

#[test]
fn response_topic_with_wildcard_is_a_protocol_error() {
    let input = B::new().str("a").props(B::new().u8(0x08).str("r/#")).frame(0x30);
    check(V5, &input, Protocol("MQTT-3.3.2-14"));
}

// ---------- properties ----------

#[test]
fn property_not_allowed_in_packet_is_malformed() {
    // Session Expiry Interval in PUBLISH.
    let input = B::new().str("a").props(B::new().u8(0x11).u32(1)).frame(0x30);
    check(V5, &input, Malformed(""));
    // Topic Alias in CONNACK.
    let input = B::new().u8(0).u8(0).props(B::new().u8(0x23).u16(1)).frame(0x20);
    check(V5, &input, Malformed(""));
    // Reason String in SUBSCRIBE.
    let input = B::new().u16(1).props(B::new().u8(0x1F).str("x")).str("a").u8(0).frame(0x82);
    check(V5, &input, Malformed(""));
}

#[test]
fn unknown_property_is_malformed() {
    check(V5, &B::new().str("a").props(B::new().u8(0x7F).u8(0)).frame(0x30), Malformed(""));
    check(V5, &B::new().str("a").props(B::new().u8(0x00)).frame(0x30), Malformed(""));
    check(V5, &B::new().str("a").props(B::new().u8(0xC0).u8(0x01)).frame(0x30), Malformed(""));
}

#[test]
fn duplicate_property_is_a_protocol_error() {
    let props = B::new().u8(0x02).u32(1).u8(0x02).u32(2);
    check(V5, &B::new().str("a").props(props).frame(0x30), Protocol(""));
    let props = B::new().u8(0x0B).varint(1).u8(0x0B).varint(2);
    check(V5, &B::new().u16(1).props(props).str("a").u8(0).frame(0x82), Protocol(""));
}

#[test]
fn user_properties_may_repeat() {
    let props = B::new().u8(0x26).str("k").str("1").u8(0x26).str("k").str("2");
    let Packet::PubAck(p) = decoded(V5, &B::new().u16(1).u8(0x10).props(props).frame(0x40)) else { panic!() };
    assert_eq!(p.properties.user_properties, vec![user("k", "1"), user("k", "2")]);
    assert_eq!(p.reason_code, ReasonCode::NO_MATCHING_SUBSCRIBERS);
}

#[test]
fn property_length_beyond_packet_is_malformed() {
    check(V5, &B::new().str("a").varint(10).u8(0x01).u8(0).frame(0x30), Malformed(""));
}

#[test]
fn property_length_of_five_bytes_is_malformed() {
    let input = B::new().str("a").raw(&[0x80, 0x80, 0x80, 0x80, 0x00]).frame(0x30);
    check(V5, &input, Malformed(""));
}

#[test]
fn property_value_past_block_end_is_malformed() {
    // Block of 3 bytes holding a 4-byte integer property.
    let input = B::new().str("a").varint(3).u8(0x02).u16(0).u16(0).frame(0x30);
    check(V5, &input, Malformed(""));
}

fn connect_v5_with(props: B) -> Vec<u8> {
    B::new().str("MQTT").u8(5).u8(0x02).u16(60).props(props).str("c").frame(0x10)
}

#[test]
fn receive_maximum_0_is_a_protocol_error() {
    check(V5, &connect_v5_with(B::new().u8(0x21).u16(0)), Protocol(""));
}

#[test]
fn maximum_packet_size_0_is_a_protocol_error() {
    check(V5, &connect_v5_with(B::new().u8(0x27).u32(0)), Protocol(""));
}

#[test]
fn request_information_flags_must_be_0_or_1() {
    check(V5, &connect_v5_with(B::new().u8(0x17).u8(2)), Protocol(""));
    check(V5, &connect_v5_with(B::new().u8(0x19).u8(2)), Protocol(""));
}

#[test]
fn authentication_data_needs_a_method() {
    check(V5, &connect_v5_with(B::new().u8(0x16).bin(b"x")), Protocol(""));
}

#[test]
fn connack_byte_properties_must_be_0_or_1() {
    for id in [0x24, 0x25, 0x28, 0x29, 0x2A] {
        let input = B::new().u8(0).u8(0).props(B::new().u8(id).u8(2)).frame(0x20);
        check(V5, &input, Protocol(""));
    }
}

#[test]
fn connack_properties_decode() {
    let props = B::new().u8(0x24).u8(1).u8(0x25).u8(0).u8(0x12).str("id-1").u8(0x13).u16(30).u8(0x27).u32(1024);
    let Packet::ConnAck(c) = decoded(V5, &B::new().u8(1).u8(0).props(props).frame(0x20)) else { panic!() };
    assert!(c.session_present);
    assert_eq!(
        c.properties,
        ConnAckProperties {
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            assigned_client_identifier: Some("id-1".into()),
            server_keep_alive: Some(30),
            maximum_packet_size: Some(1024),
            ..Default::default()
        }
    );
}

// ---------- PUBACK, PUBREC, PUBREL, PUBCOMP ----------

#[test]
fn v5_pub_response_short_forms() {
    assert_eq!(decoded(V5, &[0x40, 0x02, 0x00, 0x05]), Packet::PubAck(PubResponse::new(pid(5))));
    let Packet::PubRec(p) = decoded(V5, &[0x50, 0x03, 0x00, 0x05, 0x10]) else { panic!() };
    assert_eq!(p.reason_code, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    assert_eq!(p.properties, AckProperties::default());
    let Packet::PubComp(p) = decoded(V5, &[0x70, 0x04, 0x00, 0x05, 0x92, 0x00]) else { panic!() };
    assert_eq!(p.reason_code, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND);
}

#[test]
fn pub_response_reason_must_be_allowed() {
    check(V5, &[0x40, 0x03, 0x00, 0x01, 0x92], Malformed("MQTT-3.4.2-1"));
    check(V5, &[0x50, 0x03, 0x00, 0x01, 0x01], Malformed("MQTT-3.5.2-1"));
    check(V5, &[0x62, 0x03, 0x00, 0x01, 0x10], Malformed("MQTT-3.6.2-1"));
    check(V5, &[0x70, 0x03, 0x00, 0x01, 0x80], Malformed("MQTT-3.7.2-1"));
}

#[test]
fn pub_response_packet_id_0_is_a_protocol_error() {
    check(V4, &[0x40, 0x02, 0x00, 0x00], Protocol("MQTT-2.3.1-6"));
    check(V5, &[0x70, 0x02, 0x00, 0x00], Protocol("MQTT-2.2.1-5"));
}

#[test]
fn v4_pub_response_is_exactly_two_bytes() {
    check(V4, &[0x40, 0x03, 0x00, 0x01, 0x00], Malformed(""));
    check(V4, &[0x40, 0x01, 0x00], Malformed(""));
}

// ---------- SUBSCRIBE ----------

#[test]
fn subscribe_decodes_options() {
    let input = B::new()
        .u16(3)
        .props(B::new().u8(0x0B).varint(300))
        .str("a/+")
        .u8(0b0010_1110)
        .str("$share/g/b")
        .u8(0x01)
        .frame(0x82);
    let Packet::Subscribe(s) = decoded(V5, &input) else { panic!() };
    assert_eq!(s.properties.subscription_identifier, Some(300));
    let (filter, o) = &s.filters[0];
    assert_eq!(&**filter, "a/+");
    assert_eq!(o.qos, QoS::ExactlyOnce);
    assert!(o.no_local && o.retain_as_published);
    assert_eq!(o.retain_handling, RetainHandling::DoNotSend);
    assert_eq!(s.filters[1].1.qos, QoS::AtLeastOnce);
}

#[test]
fn subscribe_without_filters_is_a_protocol_error() {
    check(V4, &B::new().u16(1).frame(0x82), Protocol("MQTT-3.8.3-3"));
    check(V5, &B::new().u16(1).no_props().frame(0x82), Protocol("MQTT-3.8.3-2"));
}

#[test]
fn subscribe_packet_id_0_is_a_protocol_error() {
    check(V4, &B::new().u16(0).str("a").u8(0).frame(0x82), Protocol("MQTT-2.3.1-1"));
}

#[test]
fn subscription_reserved_bits_are_malformed() {
    check(V5, &B::new().u16(1).no_props().str("a").u8(0x40).frame(0x82), Malformed("MQTT-3.8.3-5"));
    check(V5, &B::new().u16(1).no_props().str("a").u8(0x80).frame(0x82), Malformed("MQTT-3.8.3-5"));
    // No Local, Retain As Published and Retain Handling do not exist before 5.0.
    check(V4, &B::new().u16(1).str("a").u8(0x04).frame(0x82), Malformed(""));
    check(V3, &B::new().u16(1).str("a").u8(0x10).frame(0x82), Malformed(""));
}

#[test]
fn retain_handling_3_is_a_protocol_error() {
    check(V5, &B::new().u16(1).no_props().str("a").u8(0x30).frame(0x82), Protocol(""));
}

#[test]
fn subscription_qos_3_is_rejected() {
    check(V4, &B::new().u16(1).str("a").u8(0x03).frame(0x82), Malformed(""));
    check(V5, &B::new().u16(1).no_props().str("a").u8(0x03).frame(0x82), Protocol(""));
}

#[test]
fn no_local_on_shared_subscription_is_a_protocol_error() {
    let input = B::new().u16(1).no_props().str("$share/g/a").u8(0x04).frame(0x82);
    check(V5, &input, Protocol("MQTT-3.8.3-4"));
}

#[test]
fn badly_placed_wildcards_decode_for_the_receiver_to_refuse_per_filter() {
    let Packet::Subscribe(s) = decoded(V4, &B::new().u16(1).str("a/#/b").u8(0).frame(0x82)) else { panic!() };
    assert_eq!(s.filters[0].0, "a/#/b");
    assert!(matches!(decoded(V4, &B::new().u16(1).str("a+").frame(0xA2)), Packet::Unsubscribe(_)));
    assert!(matches!(
        decoded(V5, &B::new().u16(1).no_props().str("$share//a").u8(0).frame(0x82)),
        Packet::Subscribe(_)
    ));
}

#[test]
fn empty_topic_filter_is_a_protocol_error() {
    check(V4, &B::new().u16(1).str("").u8(0).frame(0x82), Protocol("MQTT-4.7.3-1"));
    check(V5, &B::new().u16(1).no_props().str("").frame(0xA2), Protocol("MQTT-4.7.3-1"));
}

#[test]
fn subscription_options_byte_must_be_present() {
    check(V4, &B::new().u16(1).str("a").frame(0x82), Malformed(""));
}

// ---------- SUBACK ----------

#[test]
fn v4_suback_allows_0_1_2_and_0x80() {
    let Packet::SubAck(s) = decoded(V4, &[0x90, 0x06, 0x00, 0x01, 0x00, 0x01, 0x02, 0x80]) else { panic!() };
    let codes: Vec<u8> = s.reason_codes.iter().map(|c| c.0).collect();
    assert_eq!(codes, vec![0, 1, 2, 0x80]);
    check(V4, &[0x90, 0x03, 0x00, 0x01, 0x03], Malformed("MQTT-3.9.3-2"));
    check(V4, &[0x90, 0x03, 0x00, 0x01, 0x87], Malformed("MQTT-3.9.3-2"));
}

#[test]
fn v5_suback_reason_must_be_allowed() {
    check(V5, &[0x90, 0x04, 0x00, 0x01, 0x00, 0x10], Malformed("MQTT-3.9.3-2"));
    let Packet::SubAck(s) = decoded(V5, &[0x90, 0x04, 0x00, 0x01, 0x00, 0xA2]) else { panic!() };
    assert_eq!(s.reason_codes, vec![ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED]);
}

#[test]
fn suback_packet_id_0_is_a_protocol_error() {
    check(V4, &[0x90, 0x03, 0x00, 0x00, 0x00], Protocol("MQTT-2.3.1-7"));
    check(V5, &[0xB0, 0x03, 0x00, 0x00, 0x00], Protocol("MQTT-2.2.1-6"));
}

// ---------- UNSUBSCRIBE, UNSUBACK ----------

#[test]
fn unsubscribe_without_filters_is_a_protocol_error() {
    check(V4, &B::new().u16(1).frame(0xA2), Protocol("MQTT-3.10.3-2"));
    check(V5, &B::new().u16(1).no_props().frame(0xA2), Protocol("MQTT-3.10.3-2"));
}

#[test]
fn unsubscribe_decodes_filters() {
    let input = B::new().u16(9).props(B::new().u8(0x26).str("k").str("v")).str("a/#").str("b").frame(0xA2);
    let Packet::Unsubscribe(u) = decoded(V5, &input) else { panic!() };
    assert_eq!(u.packet_id, pid(9));
    assert_eq!(u.filters, vec!["a/#", "b"]);
    assert_eq!(u.user_properties, vec![user("k", "v")]);
}

#[test]
fn v4_unsuback_has_no_reason_codes() {
    let Packet::UnsubAck(u) = decoded(V4, &[0xB0, 0x02, 0x00, 0x01]) else { panic!() };
    assert!(u.reason_codes.is_empty());
}

#[test]
fn v5_unsuback_reason_must_be_allowed() {
    check(V5, &[0xB0, 0x04, 0x00, 0x01, 0x00, 0x10], Malformed("MQTT-3.11.3-2"));
}

// ---------- PINGREQ, PINGRESP, DISCONNECT, AUTH ----------

#[test]
fn pings_decode() {
    assert_eq!(decoded(V4, &[0xC0, 0x00]), Packet::PingReq);
    assert_eq!(decoded(V5, &[0xD0, 0x00]), Packet::PingResp);
}

#[test]
fn v5_disconnect_short_forms() {
    assert_eq!(decoded(V5, &[0xE0, 0x00]), Packet::Disconnect(Disconnect::default()));
    assert_eq!(decoded(V5, &[0xE0, 0x01, 0x8E]), Packet::Disconnect(Disconnect::new(ReasonCode::SESSION_TAKEN_OVER)));
    assert_eq!(
        decoded(V5, &[0xE0, 0x02, 0x04, 0x00]),
        Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE))
    );
}

#[test]
fn disconnect_reason_must_be_allowed() {
    check(V5, &[0xE0, 0x01, 0x01], Malformed("MQTT-3.14.2-1"));
}

#[test]
fn v5_auth_short_forms() {
    assert_eq!(decoded(V5, &[0xF0, 0x00]), Packet::Auth(Auth::default()));
    let Packet::Auth(a) = decoded(V5, &[0xF0, 0x01, 0x18]) else { panic!() };
    assert_eq!(a.reason_code, ReasonCode::CONTINUE_AUTHENTICATION);
    check(V5, &[0xF0, 0x01, 0x05], Malformed("MQTT-3.15.2-1"));
}

#[test]
fn auth_properties_decode() {
    let props = B::new().u8(0x15).str("SCRAM").u8(0x16).bin(b"\x01\x02");
    let Packet::Auth(a) = decoded(V5, &B::new().u8(0x19).props(props).frame(0xF0)) else { panic!() };
    assert_eq!(a.reason_code, ReasonCode::RE_AUTHENTICATE);
    assert_eq!(a.properties.authentication_method.as_deref(), Some("SCRAM"));
    assert_eq!(a.properties.authentication_data.as_deref(), Some(&[1u8, 2][..]));
}
