//! Malformed and forbidden input: each class gets the error kind and reason
//! code the MQTT specification gives it. Vectors are hand-written; every one
//! is fed both to `decode_packet` (a whole frame) and to `Decoder` (a stream).
//!
//! Where the specification names the outcome we check it exactly
//! ("... is a Malformed Packet" -> `Malformed`, 0x81; "... is a Protocol
//! Error" -> `Protocol`, 0x82). Where it only says "MUST NOT" without naming
//! the kind, we accept either kind and the reason codes that could report it.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_vector_is_self_consistent, cat};
use mqtt_codec::ProtocolVersion::{self, V3_1, V3_1_1, V5};
use mqtt_codec::bytes::{BufMut, Bytes, BytesMut};
use mqtt_codec::{DecodeError, Decoder, Packet, decode_packet, topic};

const MAX: u32 = 1 << 20;
const ALL: [ProtocolVersion; 3] = [V3_1, V3_1_1, V5];
const OLD: [ProtocolVersion; 2] = [V3_1, V3_1_1];

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Decodes a complete frame (its remaining length agrees with its size) both
/// ways and returns the error; `version` `None` is server mode (CONNECT first).
fn decode_err(version: Option<ProtocolVersion>, bytes: &[u8]) -> DecodeError {
    assert_vector_is_self_consistent(bytes);
    let from_frame = match decode_packet(version, Bytes::copy_from_slice(bytes)) {
        Ok(p) => panic!("decode_packet accepted {} at {version:?}: {p:?}", hex(bytes)),
        Err(e) => e,
    };
    let mut dec = match version {
        None => Decoder::new(MAX),
        Some(v) => Decoder::with_version(v, MAX),
    };
    let mut buf = BytesMut::from(bytes);
    let from_stream = match dec.decode(&mut buf) {
        Ok(p) => panic!("Decoder accepted {} at {version:?}: {p:?}", hex(bytes)),
        Err(e) => e,
    };
    assert_eq!(
        from_frame.reason_code(),
        from_stream.reason_code(),
        "decode_packet and Decoder disagree on {}: {from_frame:?} vs {from_stream:?}",
        hex(bytes)
    );
    if let Some(statement) = from_frame.statement() {
        assert!(statement.starts_with("MQTT-"), "statement {statement:?} of {from_frame:?}");
    }
    from_frame
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
}

#[track_caller]
fn assert_malformed(e: &DecodeError) {
    assert!(matches!(e, DecodeError::Malformed(_)), "expected Malformed, got {e:?}");
    assert_eq!(e.reason_code().0, 0x81, "{e:?}");
}

#[track_caller]
fn assert_protocol_error(e: &DecodeError) {
    assert!(matches!(e, DecodeError::Protocol(_)), "expected Protocol, got {e:?}");
    assert_eq!(e.reason_code().0, 0x82, "{e:?}");
}

/// For rules the specification states without naming the error kind.
#[track_caller]
fn assert_rejected(e: &DecodeError, reasons: &[u8]) {
    assert!(
        matches!(e, DecodeError::Malformed(_) | DecodeError::Protocol(_)),
        "expected Malformed or Protocol, got {e:?}"
    );
    assert!(reasons.contains(&e.reason_code().0), "reason {:?} not in {reasons:02X?}: {e:?}", e.reason_code());
}

fn malformed_in(versions: &[ProtocolVersion], bytes: &[u8]) {
    for &v in versions {
        assert_malformed(&decode_err(Some(v), bytes));
    }
}

fn protocol_error_in(versions: &[ProtocolVersion], bytes: &[u8]) {
    for &v in versions {
        assert_protocol_error(&decode_err(Some(v), bytes));
    }
}

/// A v5 CONNECT (clean start, keep alive 60, client id "c") with this property block body.
fn connect_v5_with_properties(props: &[u8]) -> Vec<u8> {
    let body = cat(&[
        &[0x00, 0x04, b'M', b'Q', b'T', b'T'], // protocol name
        &[0x05],                               // level 5
        &[0x02],                               // flags: clean start
        &[0x00, 0x3C],                         // keep alive
        &[props.len() as u8],                  // property length (< 128 in these tests)
        props,                                 // properties
        &[0x00, 0x01, b'c'],                   // client identifier
    ]);
    frame(0x10, &body)
}

/// A v5 PUBLISH QoS 0 to "t" with this property block body and payload "x".
fn publish_v5_with_properties(props: &[u8]) -> Vec<u8> {
    frame(0x30, &cat(&[&[0x00, 0x01], b"t", &[props.len() as u8], props, b"x"]))
}

/// A v5 PUBACK for packet 1 with a reason code and this property block body.
fn puback_v5_with_properties(reason: u8, props: &[u8]) -> Vec<u8> {
    frame(0x40, &cat(&[&[0x00, 0x01, reason, props.len() as u8], props]))
}

/// A fixed header (remaining length < 128) followed by `body`.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    cat(&[&[first, body.len() as u8], body])
}

/// A v3.1.1 CONNECT with these flags and payload.
fn connect_v311(flags: u8, payload: &[u8]) -> Vec<u8> {
    frame(0x10, &cat(&[&[0x00, 0x04], b"MQTT", &[0x04, flags, 0x00, 0x3C], payload]))
}

// ---------------------------------------------------------------------------
// Fixed header
// ---------------------------------------------------------------------------

#[test]
fn reserved_fixed_header_flags_are_malformed() {
    // 3.1.1 [MQTT-2.2.2-2] and 5.0 2.1.3: flags other than those of table 2-2
    // are malformed. (MQTT 3.1 only said the flags were "not used", so 3.1 is
    // left out here.)
    const STRICT: [ProtocolVersion; 2] = [V3_1_1, V5];
    malformed_in(&[V3_1_1], &[0x21, 0x02, 0x00, 0x00]); // CONNACK with flags 0001
    malformed_in(&[V5], &[0x21, 0x03, 0x00, 0x00, 0x00]);
    malformed_in(&STRICT, &[0x41, 0x02, 0x00, 0x01]); // PUBACK with flags 0001
    malformed_in(&STRICT, &[0x58, 0x02, 0x00, 0x01]); // PUBREC with flags 1000
    malformed_in(&STRICT, &[0x60, 0x02, 0x00, 0x01]); // PUBREL with flags 0000 (must be 0010)
    malformed_in(&STRICT, &[0x72, 0x02, 0x00, 0x01]); // PUBCOMP with flags 0010
    malformed_in(&[V3_1_1], &cat(&[&[0x80, 0x08, 0x00, 0x01, 0x00, 0x03], b"a/b", &[0x00]])); // SUBSCRIBE flags 0000
    malformed_in(&[V5], &cat(&[&[0x80, 0x09, 0x00, 0x01, 0x00, 0x00, 0x03], b"a/b", &[0x00]]));
    malformed_in(&STRICT, &[0x92, 0x04, 0x00, 0x01, 0x00, 0x00]); // SUBACK flags 0010
    malformed_in(&[V3_1_1], &cat(&[&[0xA0, 0x07, 0x00, 0x01, 0x00, 0x03], b"a/b"])); // UNSUBSCRIBE flags 0000
    malformed_in(&[V5], &cat(&[&[0xA0, 0x08, 0x00, 0x01, 0x00, 0x00, 0x03], b"a/b"]));
    malformed_in(&[V3_1_1], &[0xB2, 0x02, 0x00, 0x01]); // UNSUBACK flags 0010
    malformed_in(&[V5], &[0xB2, 0x04, 0x00, 0x01, 0x00, 0x00]);
    malformed_in(&STRICT, &[0xC1, 0x00]); // PINGREQ flags 0001
    malformed_in(&STRICT, &[0xD4, 0x00]); // PINGRESP flags 0100
    malformed_in(&STRICT, &[0xE8, 0x00]); // DISCONNECT flags 1000
    malformed_in(&[V5], &[0xF1, 0x00]); // AUTH flags 0001
}

#[test]
fn connect_with_reserved_fixed_header_flags_is_malformed() {
    let mut bytes = connect_v311(0x02, &cat(&[&[0x00, 0x01], b"c"]));
    bytes[0] = 0x12; // CONNECT with flags 0010
    assert_malformed(&decode_err(None, &bytes));
}

#[test]
fn reserved_packet_type_0_is_malformed() {
    for v in ALL {
        assert_malformed(&decode_err(Some(v), &[0x00, 0x00]));
        assert_malformed(&decode_err(Some(v), &[0x00, 0x02, 0x00, 0x01]));
    }
}

#[test]
fn packet_type_15_is_reserved_before_v5() {
    for v in OLD {
        assert_rejected(&decode_err(Some(v), &[0xF0, 0x00]), &[0x81, 0x82]);
    }
}

#[test]
fn remaining_length_of_five_bytes_is_malformed() {
    // [MQTT-1.5.5] a variable byte integer has at most 4 bytes.
    for v in ALL {
        for bytes in [
            &[0x30, 0x80, 0x80, 0x80, 0x80, 0x01][..], // PUBLISH, 5-byte remaining length
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F][..],
            &[0xC0, 0x80, 0x80, 0x80, 0x80, 0x00][..], // PINGREQ, 5-byte zero
        ] {
            let mut dec = Decoder::with_version(v, u32::MAX);
            let mut buf = BytesMut::from(bytes);
            let e = dec.decode(&mut buf).expect_err(&hex(bytes));
            assert_malformed(&e);
            assert!(decode_packet(Some(v), Bytes::copy_from_slice(bytes)).is_err());
        }
    }
}

#[test]
fn property_length_of_five_bytes_is_malformed() {
    // PUBACK 1, reason 0x00, property length 0x80 0x80 0x80 0x80 0x00.
    malformed_in(&[V5], &[0x40, 0x08, 0x00, 0x01, 0x00, 0x80, 0x80, 0x80, 0x80, 0x00]);
    // A subscription identifier of 5 bytes.
    malformed_in(&[V5], &publish_v5_with_properties(&[0x0B, 0x81, 0x80, 0x80, 0x80, 0x01]));
}

// ---------------------------------------------------------------------------
// Remaining length disagreeing with the content
// ---------------------------------------------------------------------------

#[test]
fn trailing_bytes_inside_the_remaining_length_are_malformed() {
    // Fixed-size packets with one byte too many.
    malformed_in(&OLD, &[0x40, 0x03, 0x00, 0x01, 0x00]); // PUBACK: 3.1.1 has exactly 2
    malformed_in(&OLD, &[0x62, 0x03, 0x00, 0x01, 0x00]); // PUBREL
    malformed_in(&OLD, &[0xB0, 0x03, 0x00, 0x01, 0x00]); // UNSUBACK
    malformed_in(&OLD, &[0x20, 0x03, 0x00, 0x00, 0x00]); // CONNACK: exactly 2
    malformed_in(&OLD, &[0xE0, 0x01, 0x00]); // DISCONNECT: exactly 0
    malformed_in(&ALL, &[0xC0, 0x01, 0x00]); // PINGREQ: exactly 0
    malformed_in(&ALL, &[0xD0, 0x01, 0x00]); // PINGRESP: exactly 0
    // CONNECT with a byte after the client identifier.
    let bytes = connect_v311(0x02, &cat(&[&[0x00, 0x01], b"c", &[0x00]]));
    assert_malformed(&decode_err(None, &bytes));
    // v5 CONNECT with a byte after the client identifier.
    let mut bytes = connect_v5_with_properties(&[]);
    bytes.push(0x00);
    bytes[1] += 1;
    assert_malformed(&decode_err(None, &bytes));
    // SUBSCRIBE with a lone byte after the last options byte.
    malformed_in(&OLD, &cat(&[&[0x82, 0x09, 0x00, 0x01, 0x00, 0x03], b"a/b", &[0x00, 0x00]]));
    malformed_in(&[V5], &cat(&[&[0x82, 0x0A, 0x00, 0x01, 0x00, 0x00, 0x03], b"a/b", &[0x00, 0x00]]));
    // v5 DISCONNECT with a byte after its (empty) property block.
    malformed_in(&[V5], &[0xE0, 0x03, 0x00, 0x00, 0x00]);
    // v5 PUBACK with a byte after its property block.
    malformed_in(&[V5], &[0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00]);
}

#[test]
fn fields_running_past_the_remaining_length_are_malformed() {
    malformed_in(&ALL, &[0x40, 0x01, 0x00]); // PUBACK: packet id cut
    malformed_in(&ALL, &[0x20, 0x01, 0x00]); // CONNACK: return code missing
    malformed_in(&ALL, &[0x30, 0x01, 0x00]); // PUBLISH: topic length cut
    malformed_in(&ALL, &[0x30, 0x03, 0x00, 0x05, 0x61]); // PUBLISH: topic length 5, 1 byte left
    malformed_in(&ALL, &[0x32, 0x03, 0x00, 0x01, 0x61]); // PUBLISH QoS 1: no room for the packet id
    malformed_in(&ALL, &cat(&[&[0x82, 0x06, 0x00, 0x01, 0x00, 0x05], b"a/"])); // SUBSCRIBE: filter cut
    malformed_in(&ALL, &cat(&[&[0x82, 0x07, 0x00, 0x01, 0x00, 0x03], b"a/b"])); // SUBSCRIBE: options missing
    malformed_in(&ALL, &cat(&[&[0xA2, 0x05, 0x00, 0x01, 0x00, 0x03], b"a"])); // UNSUBSCRIBE: filter cut
    // CONNECT cut inside the keep alive.
    let bytes = frame(0x10, &cat(&[&[0x00, 0x04], b"MQTT", &[0x04, 0x02, 0x00]]));
    assert_malformed(&decode_err(None, &bytes));
    // CONNECT whose will flag announces a will that is not there.
    let bytes = connect_v311(0x06, &cat(&[&[0x00, 0x01], b"c"]));
    assert_malformed(&decode_err(None, &bytes));
    // CONNECT whose user name flag announces a user name that is not there.
    let bytes = connect_v311(0x82, &cat(&[&[0x00, 0x01], b"c"]));
    assert_malformed(&decode_err(None, &bytes));
    // v5: property length beyond the packet.
    malformed_in(&[V5], &[0x40, 0x06, 0x00, 0x01, 0x00, 0x05, 0x1F, 0x00]);
    // v5: a property value cut by the end of its block (reason string of 3 in a block of 4).
    malformed_in(&[V5], &puback_v5_with_properties(0x00, &[0x1F, 0x00, 0x03, b'a']));
    // v5: a u32 property cut by the end of its block.
    malformed_in(&[V5], &publish_v5_with_properties(&[0x02, 0x00, 0x00]));
    // v5 CONNECT with a will flag but no will properties.
    let body = cat(&[&[0x00, 0x04], b"MQTT", &[0x05, 0x06, 0x00, 0x3C, 0x00, 0x00, 0x01], b"c"]);
    assert_malformed(&decode_err(None, &frame(0x10, &body)));
}

#[test]
fn a_frame_shorter_or_longer_than_its_remaining_length_is_malformed() {
    // decode_packet is given exactly one packet; anything else is malformed.
    for v in ALL {
        let short = decode_packet(Some(v), Bytes::from_static(&[0x40, 0x02, 0x00])).unwrap_err();
        assert_malformed(&short);
        let long = decode_packet(Some(v), Bytes::from_static(&[0x40, 0x02, 0x00, 0x01, 0xFF])).unwrap_err();
        assert_malformed(&long);
        assert!(decode_packet(Some(v), Bytes::from_static(&[0x40])).is_err());
        assert!(decode_packet(Some(v), Bytes::new()).is_err());
    }
}

#[test]
fn the_stream_decoder_waits_for_a_truncated_packet() {
    for v in ALL {
        let mut dec = Decoder::with_version(v, MAX);
        let mut buf = BytesMut::from(&[0x40, 0x02, 0x00][..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 3, "nothing is consumed while waiting");
        buf.put_u8(0x01);
        assert!(matches!(dec.decode(&mut buf), Ok(Some(Packet::PubAck(_)))));
    }
}

// ---------------------------------------------------------------------------
// UTF-8 strings
// ---------------------------------------------------------------------------

#[test]
fn ill_formed_utf8_in_a_topic_is_malformed() {
    // [MQTT-1.5.4-1] (3.1.1: [MQTT-1.5.3-1]).
    for bad in [
        &[0xC3, 0x28][..],       // invalid continuation byte
        &[0xC0, 0xAF][..],       // overlong encoding of '/'
        &[0xED, 0xA0, 0x80][..], // encoded UTF-16 surrogate U+D800
        &[0xFF][..],             // never valid
        &[0xE2, 0x82][..],       // truncated sequence
    ] {
        let bytes = frame(0x30, &cat(&[&[0x00, bad.len() as u8], bad]));
        malformed_in(&OLD, &bytes);
        let bytes = frame(0x30, &cat(&[&[0x00, bad.len() as u8], bad, &[0x00]]));
        malformed_in(&[V5], &bytes);
    }
}

#[test]
fn the_null_character_in_a_string_is_malformed() {
    // [MQTT-1.5.4-2] (3.1.1: [MQTT-1.5.3-2]).
    malformed_in(&OLD, &frame(0x30, &[0x00, 0x03, b'a', 0x00, b'b'])); // PUBLISH topic
    malformed_in(&[V5], &frame(0x30, &[0x00, 0x03, b'a', 0x00, b'b', 0x00]));
    malformed_in(&OLD, &frame(0x82, &[0x00, 0x01, 0x00, 0x02, b'a', 0x00, 0x00])); // SUBSCRIBE filter
    malformed_in(&OLD, &frame(0xA2, &[0x00, 0x01, 0x00, 0x02, 0x00, b'a'])); // UNSUBSCRIBE filter
    // CONNECT client identifier.
    let bytes = connect_v311(0x02, &[0x00, 0x02, b'c', 0x00]);
    assert_malformed(&decode_err(None, &bytes));
    // CONNECT user name.
    let bytes = connect_v311(0x82, &cat(&[&[0x00, 0x01], b"c", &[0x00, 0x01, 0x00]]));
    assert_malformed(&decode_err(None, &bytes));
    // CONNECT will topic.
    let bytes = connect_v311(0x06, &cat(&[&[0x00, 0x01], b"c", &[0x00, 0x02, b'w', 0x00, 0x00, 0x00]]));
    assert_malformed(&decode_err(None, &bytes));
    // v5 user property name and value, reason string.
    malformed_in(&[V5], &puback_v5_with_properties(0x00, &[0x26, 0x00, 0x01, 0x00, 0x00, 0x01, b'v']));
    malformed_in(&[V5], &puback_v5_with_properties(0x00, &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, 0x00]));
    malformed_in(&[V5], &puback_v5_with_properties(0x00, &[0x1F, 0x00, 0x01, 0x00]));
}

#[test]
fn ill_formed_utf8_in_v5_properties_and_connect_fields_is_malformed() {
    malformed_in(&[V5], &puback_v5_with_properties(0x00, &[0x1F, 0x00, 0x02, 0xC3, 0x28])); // reason string
    malformed_in(&[V5], &publish_v5_with_properties(&[0x03, 0x00, 0x01, 0xFF])); // content type
    malformed_in(&[V5], &publish_v5_with_properties(&[0x08, 0x00, 0x01, 0x80])); // response topic
    let bytes = connect_v5_with_properties(&[0x15, 0x00, 0x01, 0xFE]); // authentication method
    assert_malformed(&decode_err(None, &bytes));
    let bytes = connect_v311(0x02, &[0x00, 0x02, 0xC3, 0x28]); // client identifier
    assert_malformed(&decode_err(None, &bytes));
}

// ---------------------------------------------------------------------------
// Topic names and filters
// ---------------------------------------------------------------------------

/// Reasons that can report a topic name the protocol forbids.
const TOPIC_NAME_REASONS: &[u8] = &[0x81, 0x82, 0x90];
/// Reasons that can report a topic filter the protocol forbids.
const TOPIC_FILTER_REASONS: &[u8] = &[0x81, 0x82, 0x8F];

#[test]
fn a_wildcard_in_a_publish_topic_is_rejected() {
    // [MQTT-3.3.2-2] The Topic Name in the PUBLISH packet MUST NOT contain wildcard characters.
    for topic in [&b"a/+"[..], b"#", b"a/#", b"+", b"a+b", b"sport/#/x"] {
        for v in ALL {
            let props: &[u8] = if v.is_v5() { &[0x00] } else { &[] };
            let bytes = frame(0x30, &cat(&[&[0x00, topic.len() as u8], topic, props, b"x"]));
            assert_rejected(&decode_err(Some(v), &bytes), TOPIC_NAME_REASONS);
        }
    }
}

#[test]
fn a_wildcard_in_a_will_topic_is_rejected() {
    let bytes = connect_v311(0x06, &cat(&[&[0x00, 0x01], b"c", &[0x00, 0x01], b"#", &[0x00, 0x00]]));
    assert_rejected(&decode_err(None, &bytes), TOPIC_NAME_REASONS);
}

#[test]
fn an_empty_publish_topic_is_rejected_before_v5() {
    // [MQTT-4.7.3-1] Topic Names and Topic Filters MUST be at least one character long.
    for v in OLD {
        assert_rejected(&decode_err(Some(v), &[0x30, 0x03, 0x00, 0x00, b'x']), TOPIC_NAME_REASONS);
    }
}

#[test]
fn an_empty_v5_publish_topic_without_topic_alias_is_a_protocol_error() {
    // 3.3.2.3.4: "It is a Protocol Error if the Topic Name is zero length and there is no Topic Alias."
    protocol_error_in(&[V5], &[0x30, 0x04, 0x00, 0x00, 0x00, b'x']);
    // Other properties do not help.
    protocol_error_in(&[V5], &[0x30, 0x06, 0x00, 0x00, 0x02, 0x01, 0x01, b'x']);
}

#[test]
fn an_empty_topic_filter_is_rejected() {
    // [MQTT-4.7.3-1]
    for v in ALL {
        let props: &[u8] = if v.is_v5() { &[0x00] } else { &[] };
        let sub = frame(0x82, &cat(&[&[0x00, 0x01], props, &[0x00, 0x00, 0x00]]));
        assert_rejected(&decode_err(Some(v), &sub), TOPIC_FILTER_REASONS);
        let unsub = frame(0xA2, &cat(&[&[0x00, 0x01], props, &[0x00, 0x00]]));
        assert_rejected(&decode_err(Some(v), &unsub), TOPIC_FILTER_REASONS);
    }
}

#[test]
fn misplaced_wildcards_decode_and_are_refused_by_filter_validation() {
    // [MQTT-4.7.1-1] '#' only last and alone in its level; [MQTT-4.7.1-2] '+' alone in its level.
    // The packet stays acceptable: a server refuses such a filter in its SUBACK (0x8F / 0x80).
    for filter in [&b"a/#/b"[..], b"a#", b"#/", b"a+", b"+a/b", b"a/b+/c", b"##"] {
        for v in ALL {
            let props: &[u8] = if v.is_v5() { &[0x00] } else { &[] };
            let sub = frame(0x82, &cat(&[&[0x00, 0x01], props, &[0x00, filter.len() as u8], filter, &[0x00]]));
            let packet = decode_packet(Some(v), Bytes::copy_from_slice(&sub)).expect("decodes");
            let Packet::Subscribe(s) = packet else { panic!("{packet:?}") };
            assert!(topic::validate_topic_filter(&s.filters[0].0).is_err(), "{}", hex(filter));
        }
    }
}

#[test]
fn a_shared_subscription_needs_a_group_and_a_filter() {
    for filter in ["$share//a", "$share/g", "$share/g/", "$share/g+/a", "$share/#/a"] {
        assert!(topic::validate_topic_filter(filter).is_err(), "{filter}");
    }
    assert!(topic::validate_topic_filter("$share/g/a/#").is_ok());
}

// ---------------------------------------------------------------------------
// QoS
// ---------------------------------------------------------------------------

#[test]
fn publish_with_qos_3_is_malformed() {
    // [MQTT-3.3.1-4] "... which has both QoS bits set to 1 it is a Malformed Packet".
    for first in [0x36, 0x37, 0x3E, 0x3F] {
        malformed_in(&OLD, &frame(first, &[0x00, 0x01, b't', 0x00, 0x01]));
        malformed_in(&[V5], &frame(first, &[0x00, 0x01, b't', 0x00, 0x01, 0x00]));
    }
}

#[test]
fn subscription_qos_3_is_malformed_before_v5() {
    // 3.1.1 [MQTT-3-8.3-4]: malformed if ... QoS is not 0, 1 or 2.
    malformed_in(&OLD, &frame(0x82, &[0x00, 0x01, 0x00, 0x01, b'a', 0x03]));
}

#[test]
fn subscription_qos_3_is_a_protocol_error_in_v5() {
    // 5.0 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3."
    protocol_error_in(&[V5], &frame(0x82, &[0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x03]));
}

#[test]
fn will_qos_3_is_malformed() {
    // [MQTT-3.1.2-14] (5.0: "A value of 3 (0x03) is a Malformed Packet").
    let bytes = connect_v311(0x1E, &cat(&[&[0x00, 0x01], b"c", &[0x00, 0x01], b"w", &[0x00, 0x00]]));
    assert_malformed(&decode_err(None, &bytes));
    let body = cat(&[
        &[0x00, 0x04, b'M', b'Q', b'T', b'T'], // protocol name
        &[0x05, 0x1E, 0x00, 0x3C, 0x00],       // level 5; flags: will QoS 3, will, clean; keep alive; no properties
        &[0x00, 0x01, b'c'],                   // client identifier
        &[0x00],                               // will property length 0
        &[0x00, 0x01, b'w'],                   // will topic
        &[0x00, 0x00],                         // will payload
    ]);
    assert_malformed(&decode_err(None, &frame(0x10, &body)));
}

#[test]
fn will_qos_or_retain_without_will_flag_is_rejected() {
    // [MQTT-3.1.2-11] / [MQTT-3.1.2-13] (3.1.1) and 5.0 3.1.2.6/3.1.2.7.
    for flags in [0x0A, 0x12, 0x22] {
        let bytes = connect_v311(flags, &cat(&[&[0x00, 0x01], b"c"]));
        assert_rejected(&decode_err(None, &bytes), &[0x81, 0x82]);
    }
}

// ---------------------------------------------------------------------------
// Packet identifiers
// ---------------------------------------------------------------------------

#[test]
fn packet_id_0_is_rejected() {
    // [MQTT-2.2.1-3] (5.0: [MQTT-2.2.1-3]/2.2.1) packet identifiers are non-zero.
    let reasons = &[0x81, 0x82];
    for v in ALL {
        let props: &[u8] = if v.is_v5() { &[0x00] } else { &[] };
        let publish = frame(0x32, &cat(&[&[0x00, 0x01], b"t", &[0x00, 0x00], props]));
        assert_rejected(&decode_err(Some(v), &publish), reasons);
        let publish2 = frame(0x34, &cat(&[&[0x00, 0x01], b"t", &[0x00, 0x00], props]));
        assert_rejected(&decode_err(Some(v), &publish2), reasons);
        let subscribe = frame(0x82, &cat(&[&[0x00, 0x00], props, &[0x00, 0x01], b"a", &[0x00]]));
        assert_rejected(&decode_err(Some(v), &subscribe), reasons);
        let unsubscribe = frame(0xA2, &cat(&[&[0x00, 0x00], props, &[0x00, 0x01], b"a"]));
        assert_rejected(&decode_err(Some(v), &unsubscribe), reasons);
        for first in [0x40, 0x50, 0x62, 0x70, 0xB0] {
            let mut body = vec![0x00, 0x00];
            if first == 0xB0 && v.is_v5() {
                body.extend_from_slice(&[0x00, 0x00]); // properties, one reason code
            }
            assert_rejected(&decode_err(Some(v), &frame(first, &body)), reasons);
        }
        let suback = frame(0x90, &cat(&[&[0x00, 0x00], props, &[0x00]]));
        assert_rejected(&decode_err(Some(v), &suback), reasons);
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

#[test]
fn a_duplicated_property_is_a_protocol_error() {
    // 5.0: "It is a Protocol Error to include <property> more than once."
    let sei = [0x11, 0x00, 0x00, 0x00, 0x0A]; // session expiry interval 10
    assert_protocol_error(&decode_err(None, &connect_v5_with_properties(&cat(&[&sei, &sei]))));
    let rm = [0x21, 0x00, 0x05]; // receive maximum 5
    assert_protocol_error(&decode_err(None, &connect_v5_with_properties(&cat(&[&rm, &rm]))));
    let am = cat(&[&[0x15, 0x00, 0x01], b"m"]); // authentication method
    assert_protocol_error(&decode_err(None, &connect_v5_with_properties(&cat(&[&am, &am]))));

    let mei = [0x02, 0x00, 0x00, 0x00, 0x0A]; // message expiry interval
    protocol_error_in(&[V5], &publish_v5_with_properties(&cat(&[&mei, &mei])));
    let ta = [0x23, 0x00, 0x01]; // topic alias
    protocol_error_in(&[V5], &publish_v5_with_properties(&cat(&[&ta, &ta])));
    let pfi = [0x01, 0x00]; // payload format indicator
    protocol_error_in(&[V5], &publish_v5_with_properties(&cat(&[&pfi, &pfi])));
    let ct = cat(&[&[0x03, 0x00, 0x01], b"t"]); // content type
    protocol_error_in(&[V5], &publish_v5_with_properties(&cat(&[&ct, &ct])));

    let rs = cat(&[&[0x1F, 0x00, 0x01], b"r"]); // reason string
    protocol_error_in(&[V5], &puback_v5_with_properties(0x00, &cat(&[&rs, &rs])));
    protocol_error_in(&[V5], &frame(0xE0, &cat(&[&[0x00, 0x08], &rs, &rs]))); // DISCONNECT
    protocol_error_in(&[V5], &frame(0x90, &cat(&[&[0x00, 0x01, 0x08], &rs, &rs, &[0x00]]))); // SUBACK

    // SUBSCRIBE with two subscription identifiers.
    let sub = frame(0x82, &cat(&[&[0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01], b"a", &[0x00]]));
    protocol_error_in(&[V5], &sub);

    // CONNACK with two maximum QoS.
    protocol_error_in(&[V5], &frame(0x20, &[0x00, 0x00, 0x04, 0x24, 0x00, 0x24, 0x00]));

    // AUTH with two authentication methods.
    protocol_error_in(&[V5], &frame(0xF0, &cat(&[&[0x18, 0x08], &am, &am])));

    // Will properties with two will delay intervals.
    let wd = [0x18, 0x00, 0x00, 0x00, 0x01];
    let body = cat(&[
        &[0x00, 0x04, b'M', b'Q', b'T', b'T'], // protocol name
        &[0x05, 0x06, 0x00, 0x3C, 0x00],       // level 5; flags: will, clean start; keep alive; no properties
        &[0x00, 0x01, b'c'],                   // client identifier
        &[0x0A],                               // will property length 10
        &wd,                                   //   will delay interval
        &wd,                                   //   ... again
        &[0x00, 0x01, b'w'],                   // will topic
        &[0x00, 0x00],                         // will payload
    ]);
    assert_protocol_error(&decode_err(None, &frame(0x10, &body)));
}

#[test]
fn repeatable_properties_may_repeat() {
    // User properties anywhere, subscription identifiers in PUBLISH.
    let up = cat(&[&[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v"]);
    let bytes = puback_v5_with_properties(0x00, &cat(&[&up, &up]));
    assert!(decode_packet(Some(V5), Bytes::from(bytes)).is_ok());
    let bytes = publish_v5_with_properties(&[0x0B, 0x01, 0x0B, 0x02]);
    assert!(decode_packet(Some(V5), Bytes::from(bytes)).is_ok());
}

#[test]
fn a_property_not_allowed_in_the_packet_is_malformed() {
    // 5.0 2.2.2.2: "A Control Packet which contains an Identifier which is not
    // valid for its packet type ... is a Malformed Packet."
    let cases: Vec<Vec<u8>> = vec![
        publish_v5_with_properties(&[0x11, 0x00, 0x00, 0x00, 0x01]), // session expiry in PUBLISH
        publish_v5_with_properties(&[0x21, 0x00, 0x01]),             // receive maximum in PUBLISH
        publish_v5_with_properties(&[0x1F, 0x00, 0x01, b'r']),       // reason string in PUBLISH
        puback_v5_with_properties(0x00, &[0x0B, 0x01]),              // subscription identifier in PUBACK
        puback_v5_with_properties(0x00, &[0x23, 0x00, 0x01]),        // topic alias in PUBACK
        puback_v5_with_properties(0x00, &[0x00]),                    // identifier 0 does not exist
        puback_v5_with_properties(0x00, &[0x7F, 0x00]),              // unknown identifier
        frame(0x82, &[0x00, 0x01, 0x03, 0x23, 0x00, 0x01, 0x00, 0x01, b'a', 0x00]), // topic alias in SUBSCRIBE
        frame(0xA2, &[0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, b'a']), // subscription id in UNSUBSCRIBE
        frame(0xA2, &[0x00, 0x01, 0x04, 0x1F, 0x00, 0x01, b'r', 0x00, 0x01, b'a']), // reason string in UNSUBSCRIBE
        frame(0x20, &[0x00, 0x00, 0x03, 0x23, 0x00, 0x01]),          // topic alias in CONNACK
        frame(0x20, &[0x00, 0x00, 0x02, 0x17, 0x01]),                // request problem info in CONNACK
        frame(0xE0, &[0x00, 0x03, 0x21, 0x00, 0x01]),                // receive maximum in DISCONNECT
        frame(0xF0, &[0x18, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01]),    // session expiry in AUTH
    ];
    for bytes in cases {
        malformed_in(&[V5], &bytes);
    }
    // In CONNECT.
    for props in [
        &[0x23, 0x00, 0x01][..],             // topic alias
        &[0x18, 0x00, 0x00, 0x00, 0x01][..], // will delay interval (a will property)
        &[0x1F, 0x00, 0x01, b'r'][..],       // reason string
        &[0x1C, 0x00, 0x01, b's'][..],       // server reference
        &[0x24, 0x01][..],                   // maximum QoS
        &[0x01, 0x01][..],                   // payload format indicator
    ] {
        assert_malformed(&decode_err(None, &connect_v5_with_properties(props)));
    }
    // In will properties: session expiry interval.
    let body = cat(&[
        &[0x00, 0x04, b'M', b'Q', b'T', b'T'], // protocol name
        &[0x05, 0x06, 0x00, 0x3C, 0x00],       // level 5; flags: will, clean start; keep alive; no properties
        &[0x00, 0x01, b'c'],                   // client identifier
        &[0x05, 0x11, 0x00, 0x00, 0x00, 0x01], // will properties: session expiry interval (not a will property)
        &[0x00, 0x01, b'w'],                   // will topic
        &[0x00, 0x00],                         // will payload
    ]);
    assert_malformed(&decode_err(None, &frame(0x10, &body)));
}

#[test]
fn out_of_range_property_values_are_protocol_errors() {
    // 5.0 3.1.2.11: "It is a Protocol Error to include the Receive Maximum value
    // more than once or for it to have the value 0." and likewise below.
    for props in [
        &[0x21, 0x00, 0x00][..],             // receive maximum 0
        &[0x27, 0x00, 0x00, 0x00, 0x00][..], // maximum packet size 0
        &[0x17, 0x02][..],                   // request problem information 2
        &[0x19, 0x02][..],                   // request response information 2
        &[0x16, 0x00, 0x01, 0x01][..],       // authentication data without method
    ] {
        assert_protocol_error(&decode_err(None, &connect_v5_with_properties(props)));
    }
    // CONNACK: maximum QoS 2, retain available 2 (3.2.2.3.4, 3.2.2.3.5).
    protocol_error_in(&[V5], &frame(0x20, &[0x00, 0x00, 0x02, 0x24, 0x02]));
    protocol_error_in(&[V5], &frame(0x20, &[0x00, 0x00, 0x02, 0x25, 0x02]));
    // SUBSCRIBE: subscription identifier 0 (3.8.2.1.2).
    protocol_error_in(&[V5], &frame(0x82, &[0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, b'a', 0x00]));
    // PUBLISH: topic alias 0 ([MQTT-3.3.2-8]); Topic Alias invalid is also a fitting reason.
    let e = decode_err(Some(V5), &publish_v5_with_properties(&[0x23, 0x00, 0x00]));
    assert_rejected(&e, &[0x82, 0x94]);
}

#[test]
fn a_reason_code_the_packet_does_not_allow_is_rejected() {
    let reasons = &[0x81, 0x82];
    assert_rejected(&decode_err(Some(V5), &[0x40, 0x03, 0x00, 0x01, 0x92]), reasons); // PUBACK 0x92
    assert_rejected(&decode_err(Some(V5), &[0x62, 0x03, 0x00, 0x01, 0x10]), reasons); // PUBREL 0x10
    assert_rejected(&decode_err(Some(V5), &[0x70, 0x03, 0x00, 0x01, 0x80]), reasons); // PUBCOMP 0x80
    assert_rejected(&decode_err(Some(V5), &[0xE0, 0x01, 0x01]), reasons); // DISCONNECT 0x01
    assert_rejected(&decode_err(Some(V5), &[0xF0, 0x02, 0x01, 0x00]), reasons); // AUTH 0x01
    assert_rejected(&decode_err(Some(V5), &[0x20, 0x03, 0x00, 0x01, 0x00]), reasons); // CONNACK 0x01
    assert_rejected(&decode_err(Some(V5), &[0x90, 0x04, 0x00, 0x01, 0x00, 0x03]), reasons); // SUBACK 0x03
    assert_rejected(&decode_err(Some(V5), &[0xB0, 0x04, 0x00, 0x01, 0x00, 0x01]), reasons); // UNSUBACK 0x01
}

// ---------------------------------------------------------------------------
// Subscription options and payloads
// ---------------------------------------------------------------------------

#[test]
fn subscription_options_reserved_bits_are_malformed() {
    // 5.0 [MQTT-3.8.3-5]: bits 6 and 7; 3.1.1 [MQTT-3-8.3-4]: bits 2 to 7.
    for options in [0x40, 0x80, 0xC0, 0x41] {
        malformed_in(&[V5], &frame(0x82, &[0x00, 0x01, 0x00, 0x00, 0x01, b'a', options]));
    }
    for options in [0x04, 0x08, 0x10, 0x20, 0x40, 0x80] {
        malformed_in(&[V3_1_1], &frame(0x82, &[0x00, 0x01, 0x00, 0x01, b'a', options]));
    }
}

#[test]
fn retain_handling_3_is_a_protocol_error() {
    // 5.0 3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
    protocol_error_in(&[V5], &frame(0x82, &[0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30]));
}

#[test]
fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    // [MQTT-3.8.3-4]
    let sub = frame(0x82, &cat(&[&[0x00, 0x01, 0x00, 0x00, 0x0A], b"$share/g/x", &[0x04]]));
    protocol_error_in(&[V5], &sub);
}

#[test]
fn subscribe_and_unsubscribe_without_filters_are_rejected() {
    // 5.0 3.8.3 / 3.10.3: "... with no Payload is a Protocol Error."
    protocol_error_in(&[V5], &[0x82, 0x03, 0x00, 0x01, 0x00]);
    protocol_error_in(&[V5], &[0xA2, 0x03, 0x00, 0x01, 0x00]);
    // 3.1.1 [MQTT-3.8.3-3] / [MQTT-3.10.3-2]: a protocol violation.
    for v in OLD {
        assert_rejected(&decode_err(Some(v), &[0x82, 0x02, 0x00, 0x01]), &[0x81, 0x82]);
        assert_rejected(&decode_err(Some(v), &[0xA2, 0x02, 0x00, 0x01]), &[0x81, 0x82]);
    }
}

// ---------------------------------------------------------------------------
// CONNECT: protocol name, level, flags
// ---------------------------------------------------------------------------

fn connect_named(name: &[u8], level: u8) -> Vec<u8> {
    let props: &[u8] = if level == 5 { &[0x00] } else { &[] };
    frame(0x10, &cat(&[&[0x00, name.len() as u8], name, &[level, 0x02, 0x00, 0x3C], props, &[0x00, 0x01], b"c"]))
}

#[test]
fn a_wrong_protocol_name_is_rejected() {
    // [MQTT-3.1.2-1]: the server MAY close the connection; it MUST NOT go on
    // under this specification. Any error is acceptable.
    for (name, level) in [
        (&b"MQTX"[..], 4),
        (b"mqtt", 4),
        (b"MQTT ", 4),
        (b"MQIsdp", 4), // the 3.1 name with the 3.1.1 level
        (b"MQIsdp", 5),
        (b"MQTT", 3), // the 3.1.1 name with the 3.1 level
        (b"", 4),
    ] {
        let e = decode_err(None, &connect_named(name, level));
        assert!(
            matches!(
                e,
                DecodeError::Malformed(_) | DecodeError::Protocol(_) | DecodeError::UnsupportedProtocolVersion { .. }
            ),
            "{e:?}"
        );
        assert!(e.reason_code().is_error());
    }
}

#[test]
fn an_unsupported_protocol_level_is_reported_as_such() {
    // [MQTT-3.1.2-2]: CONNACK 0x84 (return code 0x01) and close.
    for level in [0, 1, 2, 6, 7, 0xFF] {
        let e = decode_err(None, &connect_named(b"MQTT", level));
        assert_eq!(e, DecodeError::UnsupportedProtocolVersion { level });
        assert_eq!(e.reason_code().0, 0x84);
        assert_eq!(e.statement(), Some("MQTT-3.1.2-2"));
    }
}

#[test]
fn the_reserved_connect_flag_is_malformed() {
    // [MQTT-3.1.2-3]
    let bytes = connect_v311(0x03, &cat(&[&[0x00, 0x01], b"c"]));
    assert_malformed(&decode_err(None, &bytes));
    let body = cat(&[&[0x00, 0x04], b"MQTT", &[0x05, 0x03, 0x00, 0x3C, 0x00, 0x00, 0x01], b"c"]);
    assert_malformed(&decode_err(None, &frame(0x10, &body)));
}

#[test]
fn a_password_without_a_user_name_is_rejected_before_v5() {
    // 3.1.1 [MQTT-3.1.2-22]: if the User Name Flag is 0, the Password Flag MUST be 0.
    let bytes = connect_v311(0x42, &cat(&[&[0x00, 0x01], b"c", &[0x00, 0x01], b"p"]));
    assert_rejected(&decode_err(None, &bytes), &[0x81, 0x82]);
}

// ---------------------------------------------------------------------------
// Server mode
// ---------------------------------------------------------------------------

#[test]
fn a_first_packet_other_than_connect_is_a_protocol_error() {
    // [MQTT-3.1.0-1] the first packet from the client MUST be CONNECT.
    for bytes in [
        &[0xC0, 0x00][..],                                     // PINGREQ
        &[0x30, 0x04, 0x00, 0x01, b't', b'x'][..],             // PUBLISH
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00][..], // SUBSCRIBE
        &[0xE0, 0x00][..],                                     // DISCONNECT
        &[0x20, 0x02, 0x00, 0x00][..],                         // CONNACK
        &[0x40, 0x02, 0x00, 0x01][..],                         // PUBACK
    ] {
        assert_protocol_error(&decode_err(None, bytes));
    }
}

// ---------------------------------------------------------------------------
// Maximum packet size
// ---------------------------------------------------------------------------

#[test]
fn a_packet_larger_than_the_maximum_is_refused_from_its_fixed_header() {
    for v in ALL {
        let mut dec = Decoder::with_version(v, 100);
        let mut buf = BytesMut::with_capacity(16);
        // PUBLISH announcing 65,535 remaining bytes, plus the first topic byte:
        // only 5 bytes of the packet have arrived.
        buf.put_slice(&[0x30, 0xFF, 0xFF, 0x03, 0x00]);
        let e = dec.decode(&mut buf).unwrap_err();
        match e {
            // The packet size is the whole packet: 4 header bytes + 65,535.
            DecodeError::PacketTooLarge { size, max } => {
                assert_eq!(max, 100);
                assert_eq!(size, 65_539, "Maximum Packet Size counts the whole packet (3.1.2.11.4)");
            }
            other => panic!("expected PacketTooLarge, got {other:?}"),
        }
        assert_eq!(e.reason_code().0, 0x95);
        assert!(buf.capacity() < 1024, "no memory reserved for the announced size (capacity {})", buf.capacity());
    }
}

#[test]
fn a_too_large_connect_is_refused_in_server_mode() {
    let mut dec = Decoder::new(1000);
    let mut buf = BytesMut::with_capacity(8);
    buf.put_slice(&[0x10, 0xFF, 0xFF, 0xFF, 0x7F]); // CONNECT announcing 268,435,455 bytes
    assert!(matches!(dec.decode(&mut buf), Err(DecodeError::PacketTooLarge { max: 1000, .. })));
    assert!(buf.capacity() < 1024, "capacity grew to {}", buf.capacity());
}

#[test]
fn the_maximum_packet_size_counts_the_fixed_header() {
    // PUBLISH "a/b" with payload "hi!": remaining length 8, 10 bytes in all.
    let bytes = cat(&[&[0x30, 0x08, 0x00, 0x03], b"a/b", b"hi!"]);
    for v in OLD {
        let mut dec = Decoder::with_version(v, 10);
        let mut buf = BytesMut::from(&bytes[..]);
        assert!(matches!(dec.decode(&mut buf), Ok(Some(Packet::Publish(_)))), "exactly the maximum is allowed");
        let mut dec = Decoder::with_version(v, 9);
        let mut buf = BytesMut::from(&bytes[..2]);
        assert_eq!(dec.decode(&mut buf), Err(DecodeError::PacketTooLarge { size: 10, max: 9 }));
    }
}

#[test]
fn a_too_large_packet_is_refused_even_when_it_has_fully_arrived() {
    let bytes = cat(&[&[0x30, 0x08, 0x00, 0x03], b"a/b", b"hi!"]);
    let mut dec = Decoder::with_version(V3_1_1, 9);
    let mut buf = BytesMut::from(&bytes[..]);
    assert!(matches!(dec.decode(&mut buf), Err(DecodeError::PacketTooLarge { .. })));
}

#[test]
fn an_announced_size_within_the_maximum_waits_for_the_bytes() {
    let mut dec = Decoder::with_version(V3_1_1, 70_000);
    let mut buf = BytesMut::new();
    buf.put_slice(&[0x30, 0xFF, 0xFF, 0x03, 0x00]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
}
