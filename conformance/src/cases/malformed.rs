//! Cases: data representation (section 1.5), the fixed header, packet
//! identifiers, properties and reason codes (section 2), the server's reaction
//! to malformed packets and protocol errors (4.8 in 3.1.1, 4.13 in 5.0),
//! Maximum Packet Size towards the server, AUTH without enhanced
//! authentication (4.12) and PINGREQ / PINGRESP (3.12).
//!
//! Every case that sends something malformed first connects successfully,
//! then sends the bad packet on that connection, then watches the reaction:
//! a 3.1.1 server must close the network connection without answering; a 5.0
//! server may send one DISCONNECT first, whose reason code must be one the
//! specification allows for that error, and nothing after it.

use bytes::Bytes;

use crate::case::{Case, CaseResult, Ctx, Failure};
use crate::client::{Client, Event, REPLY_WAIT};
use crate::packets::{self, ConnAck, Version, WillSpec};
use crate::wire::{Frame, Props, Reader, Value, Writer, hex, kind, prop};
use crate::{case, ensure};

/// 5.0 reason code 0x81 (Malformed Packet).
const MALFORMED: u8 = 0x81;
/// 5.0 reason code 0x82 (Protocol Error).
const PROTOCOL_ERROR: u8 = 0x82;
/// The reasons a 5.0 server may give when it closes after a malformed packet or protocol error.
const MALFORMED_OR_PROTOCOL_ERROR: &[u8] = &[MALFORMED, PROTOCOL_ERROR];
/// 5.0 reason code 0x95 (Packet too large).
const PACKET_TOO_LARGE: u8 = 0x95;
/// The reasons a 5.0 server may give when it closes for an AUTH packet on a
/// connection without an Authentication Method: the close is the MUST
/// (MQTT-4.13.1-1), the reason a SHOULD; besides 0x81 and 0x82, 0x8C (Bad
/// authentication method: not supported, or not the one in use) describes it.
const AUTH_REFUSED: &[u8] = &[MALFORMED, PROTOCOL_ERROR, 0x8C];

/// The DISCONNECT reason codes a server may send (5.0 section 3.14.2.1,
/// Table 3-10, without 0x04, which only a client sends).
const SERVER_DISCONNECT_REASONS: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
    0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];

/// Byte sequences that are not well-formed UTF-8 (RFC 3629), with what each is.
const ILL_FORMED: &[(&str, &[u8])] = &[
    ("a lone continuation byte 80", b"\x80"),
    ("lead byte C3 followed by the ASCII byte 28", b"\xC3\x28"),
    ("the byte FF, which never occurs in UTF-8", b"\xFF"),
    ("the overlong encoding C0 AF of '/'", b"\xC0\xAF"),
    ("a three-byte sequence cut short (E2 82)", b"\xE2\x82"),
    ("a code point above U+10FFFF (F4 90 80 80)", b"\xF4\x90\x80\x80"),
];

/// Encodings of code points U+D800..U+DFFF, which well-formed UTF-8 excludes.
const SURROGATES: &[(&str, &[u8])] = &[
    ("U+D800 encoded as ED A0 80", b"\xED\xA0\x80"),
    ("U+DFFF encoded as ED BF BF", b"\xED\xBF\xBF"),
    ("the surrogate pair of U+1F600 encoded as ED A0 BD ED B8 80", b"\xED\xA0\xBD\xED\xB8\x80"),
];

/// Well-formed code points a string SHOULD NOT contain: a receiver MAY treat
/// them as malformed (3.1.1 and 5.0 section 1.5), so either outcome is allowed.
const DISALLOWED_BUT_WELL_FORMED: &[(&str, &str)] = &[
    ("the non-character U+FFFF", "\u{FFFF}"),
    ("the non-character U+FDD0", "\u{FDD0}"),
    ("the control character U+0001", "\u{0001}"),
    ("the control character U+0085", "\u{0085}"),
];

pub fn cases() -> Vec<Case> {
    [
        // Section 1.5: UTF-8 strings.
        case!(ill_formed_utf8_in_a_topic_name_closes_the_connection, [V311], ["MQTT-1.5.3-1", "MQTT-4.8.0-1"], |ctx| {
            ill_formed_utf8_in_a_topic_name(ctx)
        }),
        case!(ill_formed_utf8_in_a_topic_name_closes_the_connection, [V5], ["MQTT-1.5.4-1", "MQTT-4.13.1-1"], |ctx| {
            ill_formed_utf8_in_a_topic_name(ctx)
        }),
        case!(
            ill_formed_utf8_in_a_topic_filter_closes_the_connection,
            [V311],
            ["MQTT-1.5.3-1", "MQTT-4.8.0-1"],
            |ctx| ill_formed_utf8_in_a_topic_filter(ctx)
        ),
        case!(
            ill_formed_utf8_in_a_topic_filter_closes_the_connection,
            [V5],
            ["MQTT-1.5.4-1", "MQTT-4.13.1-1"],
            |ctx| ill_formed_utf8_in_a_topic_filter(ctx)
        ),
        case!(encoded_surrogates_in_a_string_close_the_connection, [V311], ["MQTT-1.5.3-1"], |ctx| {
            encoded_surrogates_in_a_string(ctx)
        }),
        case!(encoded_surrogates_in_a_string_close_the_connection, [V5], ["MQTT-1.5.4-1", "MQTT-4.13.1-1"], |ctx| {
            encoded_surrogates_in_a_string(ctx)
        }),
        case!(null_character_in_a_string_closes_the_connection, [V311], ["MQTT-1.5.3-2"], |ctx| {
            null_character_in_a_string(ctx)
        }),
        case!(null_character_in_a_string_closes_the_connection, [V5], ["MQTT-1.5.4-2", "MQTT-4.13.1-1"], |ctx| {
            null_character_in_a_string(ctx)
        }),
        case!(
            ill_formed_utf8_in_a_user_property_closes_the_connection,
            [V5],
            ["MQTT-1.5.7-1", "MQTT-1.5.4-1", "MQTT-4.13.1-1"],
            |ctx| ill_formed_utf8_in_a_user_property(ctx)
        ),
        case!(zero_width_no_break_space_in_a_string_is_passed_on_unchanged, [V311], ["MQTT-1.5.3-3"], |ctx| {
            zero_width_no_break_space_passed_on(ctx)
        }),
        case!(zero_width_no_break_space_in_a_string_is_passed_on_unchanged, [V5], ["MQTT-1.5.4-3"], |ctx| {
            zero_width_no_break_space_passed_on(ctx)
        }),
        case!(
            noncharacters_and_control_characters_are_refused_or_passed_on_unchanged,
            [V311],
            ["MQTT-1.5.3-1"],
            |ctx| noncharacters_refused_or_passed_on(ctx)
        ),
        case!(noncharacters_and_control_characters_are_refused_or_passed_on_unchanged, [V5], ["MQTT-1.5.4-1"], |ctx| {
            noncharacters_refused_or_passed_on(ctx)
        }),
        // Section 1.5.5 / 2.1.4: variable byte integers and the remaining length.
        case!(server_encodes_variable_byte_integers_in_the_fewest_bytes, [V5], ["MQTT-1.5.5-1"], |ctx| {
            server_encodes_variable_byte_integers_minimally(ctx)
        }),
        case!(remaining_length_of_more_than_four_bytes_closes_the_connection, [V311], ["MQTT-4.8.0-1"], |ctx| {
            remaining_length_of_five_bytes(ctx)
        }),
        case!(remaining_length_of_more_than_four_bytes_closes_the_connection, [V5], ["MQTT-4.13.1-1"], |ctx| {
            remaining_length_of_five_bytes(ctx)
        }),
        case!(remaining_length_too_short_for_the_fields_closes_the_connection, [V311], ["MQTT-4.8.0-1"], |ctx| {
            remaining_length_too_short(ctx)
        }),
        case!(remaining_length_too_short_for_the_fields_closes_the_connection, [V5], ["MQTT-4.13.1-1"], |ctx| {
            remaining_length_too_short(ctx)
        }),
        case!(remaining_length_beyond_the_fields_is_rejected_or_ignored, [V311], ["MQTT-4.8.0-1"], |ctx| {
            remaining_length_too_long(ctx)
        }),
        case!(remaining_length_beyond_the_fields_is_rejected_or_ignored, [V5], ["MQTT-4.13.1-1"], |ctx| {
            remaining_length_too_long(ctx)
        }),
        // Section 2.1 / 2.2 (3.1.1) fixed header: packet types and flags.
        case!(server_sets_the_fixed_header_flags_as_listed, [V311], ["MQTT-2.2.2-1"], |ctx| server_fixed_header_flags(
            ctx
        )),
        case!(server_sets_the_fixed_header_flags_as_listed, [V5], ["MQTT-2.1.3-1"], |ctx| server_fixed_header_flags(
            ctx
        )),
        case!(
            pubrel_with_flags_other_than_0010_closes_the_connection,
            [V311],
            ["MQTT-3.6.1-1", "MQTT-2.2.2-2"],
            |ctx| pubrel_with_bad_flags(ctx)
        ),
        case!(pubrel_with_flags_other_than_0010_closes_the_connection, [V5], ["MQTT-3.6.1-1", "MQTT-2.1.3-1"], |ctx| {
            pubrel_with_bad_flags(ctx)
        }),
        case!(
            subscribe_with_flags_other_than_0010_closes_the_connection,
            [V311],
            ["MQTT-3.8.1-1", "MQTT-2.2.2-2"],
            |ctx| subscribe_with_bad_flags(ctx)
        ),
        case!(
            subscribe_with_flags_other_than_0010_closes_the_connection,
            [V5],
            ["MQTT-3.8.1-1", "MQTT-2.1.3-1"],
            |ctx| subscribe_with_bad_flags(ctx)
        ),
        case!(
            unsubscribe_with_flags_other_than_0010_closes_the_connection,
            [V311],
            ["MQTT-3.10.1-1", "MQTT-2.2.2-2"],
            |ctx| unsubscribe_with_bad_flags(ctx)
        ),
        case!(
            unsubscribe_with_flags_other_than_0010_closes_the_connection,
            [V5],
            ["MQTT-3.10.1-1", "MQTT-2.1.3-1"],
            |ctx| unsubscribe_with_bad_flags(ctx)
        ),
        case!(
            nonzero_reserved_flags_in_puback_pubrec_pubcomp_or_pingreq_close_the_connection,
            [V311],
            ["MQTT-2.2.2-2"],
            |ctx| other_packets_with_bad_flags(ctx)
        ),
        case!(
            nonzero_reserved_flags_in_puback_pubrec_pubcomp_or_pingreq_close_the_connection,
            [V5],
            ["MQTT-2.1.3-1", "MQTT-4.13.1-1"],
            |ctx| other_packets_with_bad_flags(ctx)
        ),
        case!(
            disconnect_with_nonzero_reserved_flags_closes_the_connection_and_publishes_the_will,
            [V311],
            ["MQTT-3.14.1-1", "MQTT-2.2.2-2", "MQTT-3.1.2-8"],
            |ctx| disconnect_with_bad_flags(ctx)
        ),
        case!(
            disconnect_with_nonzero_reserved_flags_closes_the_connection_and_publishes_the_will,
            [V5],
            ["MQTT-3.14.1-1", "MQTT-3.1.2-8"],
            |ctx| disconnect_with_bad_flags(ctx)
        ),
        case!(auth_with_nonzero_reserved_flags_closes_the_connection, [V5], ["MQTT-3.15.1-1"], |ctx| async move {
            let (mut client, _) = ctx.connect("authflags").await?;
            let auth = Writer::new().u8(0x19).no_props().frame(0xF1);
            client.send(&auth).await?;
            expect_rejected(&mut client, "AUTH with flags 0001", &auth, MALFORMED_OR_PROTOCOL_ERROR).await
        }),
        case!(reserved_packet_type_closes_the_connection, [V311], ["MQTT-4.8.0-1"], |ctx| reserved_packet_type(ctx)),
        case!(
            reserved_packet_type_closes_the_connection,
            [V5],
            ["MQTT-4.13.1-1", "MQTT-3.14.2-1", "MQTT-4.13.2-1"],
            |ctx| reserved_packet_type(ctx)
        ),
        // Section 2.3 (3.1.1) / 2.2.1 (5.0): packet identifiers.
        case!(zero_packet_identifier_closes_the_connection, [V311], ["MQTT-2.3.1-1", "MQTT-4.8.0-1"], |ctx| {
            zero_packet_identifier(ctx)
        }),
        case!(zero_packet_identifier_closes_the_connection, [V5], ["MQTT-4.13.1-1"], |ctx| zero_packet_identifier(ctx)),
        case!(
            server_gives_unacknowledged_publishes_distinct_nonzero_packet_identifiers,
            [V311],
            ["MQTT-2.3.1-1", "MQTT-2.3.1-4", "MQTT-2.3.1-6"],
            |ctx| distinct_server_packet_identifiers(ctx)
        ),
        case!(
            server_gives_unacknowledged_publishes_distinct_nonzero_packet_identifiers,
            [V5],
            ["MQTT-2.2.1-4", "MQTT-2.2.1-5"],
            |ctx| distinct_server_packet_identifiers(ctx)
        ),
        case!(
            acknowledgements_carry_the_packet_identifier_they_acknowledge,
            [V311],
            ["MQTT-2.3.1-6", "MQTT-2.3.1-7"],
            |ctx| acknowledgements_carry_the_packet_identifier(ctx)
        ),
        case!(
            acknowledgements_carry_the_packet_identifier_they_acknowledge,
            [V5],
            ["MQTT-2.2.1-5", "MQTT-2.2.1-6"],
            |ctx| acknowledgements_carry_the_packet_identifier(ctx)
        ),
        case!(qos_0_publish_from_the_server_has_no_packet_identifier, [V311], ["MQTT-2.3.1-5"], |ctx| {
            qos0_publish_has_no_packet_identifier(ctx)
        }),
        case!(qos_0_publish_from_the_server_has_no_packet_identifier, [V5], ["MQTT-2.2.1-2"], |ctx| {
            qos0_publish_has_no_packet_identifier(ctx)
        }),
        // Section 2.2.2 (5.0): properties.
        case!(server_writes_a_zero_property_length_when_it_has_no_properties, [V5], ["MQTT-2.2.2-1"], |ctx| {
            server_writes_zero_property_length(ctx)
        }),
        case!(property_given_twice_is_a_protocol_error, [V5], ["MQTT-4.13.1-1"], |ctx| property_given_twice(ctx)),
        case!(
            unknown_or_truncated_property_is_malformed,
            [V5],
            ["MQTT-4.13.1-1"],
            |ctx| unknown_or_truncated_property(ctx)
        ),
        case!(property_not_valid_for_the_packet_is_malformed, [V5], ["MQTT-4.13.1-1"], |ctx| {
            property_not_valid_for_the_packet(ctx)
        }),
        case!(
            repeated_user_properties_are_forwarded_unaltered_and_in_order,
            [V5],
            ["MQTT-3.3.2-17", "MQTT-3.3.2-18"],
            |ctx| repeated_user_properties_forwarded(ctx)
        ),
        // Section 2.4 / 3.14 / 4.13 (5.0): reason codes and the server's DISCONNECT.
        case!(
            server_disconnect_uses_a_valid_reason_and_fits_the_client_maximum_packet_size,
            [V5],
            ["MQTT-3.14.2-1", "MQTT-3.14.2-3", "MQTT-3.14.2-4", "MQTT-4.13.2-1"],
            |ctx| server_disconnect_is_valid(ctx)
        ),
        case!(
            malformed_connect_is_refused_without_a_disconnect_packet,
            [V5],
            ["MQTT-3.14.0-1", "MQTT-3.1.4-1", "MQTT-4.13.2-1"],
            |ctx| malformed_connect_refused(ctx)
        ),
        // Maximum Packet Size towards the server (5.0 section 3.2.2.3.6).
        case!(packet_larger_than_the_server_maximum_packet_size_is_refused, [V5], ["MQTT-4.13.1-1"], |ctx| {
            packet_larger_than_server_maximum(ctx)
        }),
        // Section 4.12 (5.0): enhanced authentication, as far as a server without it shows.
        case!(unsupported_authentication_method_is_refused_and_closed, [V5], ["MQTT-4.12.0-1"], |ctx| {
            unsupported_authentication_method(ctx)
        }),
        case!(
            without_an_authentication_method_the_server_sends_no_auth_and_no_method,
            [V5],
            ["MQTT-4.12.0-6"],
            |ctx| async move {
                let (mut client, connack) = ctx.connect("noauth").await?;
                for id in [prop::AUTHENTICATION_METHOD, prop::AUTHENTICATION_DATA] {
                    ensure!(
                        connack.props.get(id).is_none(),
                        "expected no authentication property 0x{id:02x} in the CONNACK of a CONNECT without \
                         Authentication Method, saw {:?}",
                        connack.props
                    );
                }
                client.send(&packets::pingreq()).await?;
                let frame = client.expect(kind::PINGRESP).await?;
                ensure!(frame.bytes.as_ref() == [0xD0, 0x00], "expected PINGRESP d0 00, saw {frame:?}");
                client.expect_silence().await?;
                Ok(())
            }
        ),
        case!(
            auth_packet_without_enhanced_authentication_closes_the_connection,
            [V5],
            ["MQTT-4.13.1-1"],
            |ctx| async move {
                let variants = vec![
                    (
                        "AUTH with reason 0x19 (Re-authenticate) though CONNECT had no Authentication Method"
                            .to_string(),
                        Writer::new().u8(0x19).no_props().frame(0xF0),
                    ),
                    (
                        "AUTH with reason 0x18 (Continue authentication) though CONNECT had no Authentication Method"
                            .to_string(),
                        Writer::new().u8(0x18).props(Props::new().str(prop::AUTHENTICATION_METHOD, "x")).frame(0xF0),
                    ),
                    ("an empty AUTH (reason 0x00) though no authentication is under way".to_string(), auth_empty()),
                ];
                reject_each(&ctx, variants, AUTH_REFUSED).await
            }
        ),
        // Section 3.12: PINGREQ / PINGRESP.
        case!(pingreq_is_answered_with_pingresp, [V311, V5], ["MQTT-3.12.4-1"], |ctx| async move {
            let (mut client, _) = ctx.connect("ping").await?;
            client.send(&packets::pingreq()).await?;
            let frame = client.expect(kind::PINGRESP).await?;
            ensure!(frame.bytes.as_ref() == [0xD0, 0x00], "expected PINGRESP d0 00, saw {frame:?}");
            // Three at once: one PINGRESP each.
            let three = [packets::pingreq(), packets::pingreq(), packets::pingreq()].concat();
            client.send(&three).await?;
            for n in 1..=3 {
                let frame = client.expect(kind::PINGRESP).await.map_err(|e| format!("PINGRESP {n} of 3: {e}"))?;
                ensure!(frame.bytes.as_ref() == [0xD0, 0x00], "expected PINGRESP d0 00, saw {frame:?}");
            }
            client.expect_silence().await?;
            Ok(())
        }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

// ---------------------------------------------------------------------------
// Section 1.5: UTF-8 strings.

async fn ill_formed_utf8_in_a_topic_name(ctx: Ctx) -> CaseResult {
    let bystander = Bystander::join(&ctx).await?;
    let qos = ack_qos(&ctx);
    let variants = ILL_FORMED
        .iter()
        .map(|(what, bad)| {
            let topic = bad_string(&ctx.topic("utf8"), bad);
            (
                format!("PUBLISH whose topic contains {what}"),
                publish_raw(ctx.version, &topic, qos, 1, Props::new(), b"x"),
            )
        })
        .collect();
    reject_each(&ctx, variants, &[MALFORMED]).await?;
    bystander.still_served(&ctx).await
}

async fn ill_formed_utf8_in_a_topic_filter(ctx: Ctx) -> CaseResult {
    let mut variants: Vec<(String, Bytes)> = ILL_FORMED
        .iter()
        .map(|(what, bad)| {
            let filter = bad_string(&ctx.topic("utf8"), bad);
            (format!("SUBSCRIBE whose topic filter contains {what}"), subscribe_raw(ctx.version, 1, &filter, 0))
        })
        .collect();
    for (what, bad) in &ILL_FORMED[..3] {
        let filter = bad_string(&ctx.topic("utf8"), bad);
        variants.push((
            format!("UNSUBSCRIBE whose topic filter contains {what}"),
            unsubscribe_raw(ctx.version, 1, &filter),
        ));
    }
    reject_each(&ctx, variants, &[MALFORMED]).await
}

async fn encoded_surrogates_in_a_string(ctx: Ctx) -> CaseResult {
    let qos = ack_qos(&ctx);
    let mut variants = Vec::new();
    for (what, bad) in SURROGATES {
        let topic = bad_string(&ctx.topic("surr"), bad);
        variants.push((
            format!("PUBLISH whose topic contains {what}"),
            publish_raw(ctx.version, &topic, qos, 1, Props::new(), b"x"),
        ));
        variants
            .push((format!("SUBSCRIBE whose topic filter contains {what}"), subscribe_raw(ctx.version, 1, &topic, 0)));
    }
    reject_each(&ctx, variants, &[MALFORMED]).await
}

async fn null_character_in_a_string(ctx: Ctx) -> CaseResult {
    let qos = ack_qos(&ctx);
    let with_null = bad_string(&ctx.topic("nul"), b"\x00");
    let mut variants = vec![
        (
            "PUBLISH whose topic contains U+0000".to_string(),
            publish_raw(ctx.version, &with_null, qos, 1, Props::new(), b"x"),
        ),
        ("SUBSCRIBE whose topic filter contains U+0000".to_string(), subscribe_raw(ctx.version, 1, &with_null, 0)),
        ("UNSUBSCRIBE whose topic filter contains U+0000".to_string(), unsubscribe_raw(ctx.version, 1, &with_null)),
    ];
    if ctx.version.is_v5() {
        let topic = ctx.topic("nul").into_bytes();
        let user = Writer::new().u8(prop::USER_PROPERTY).str("key").bin(b"va\x00lue");
        variants.push((
            "PUBLISH with a User Property whose value contains U+0000".to_string(),
            publish_raw_props(ctx.version, &topic, qos, 1, user, b"x"),
        ));
        let content_type = Writer::new().u8(prop::CONTENT_TYPE).bin(b"text/\x00plain");
        variants.push((
            "PUBLISH with a Content Type containing U+0000".to_string(),
            publish_raw_props(ctx.version, &topic, qos, 1, content_type, b"x"),
        ));
    }
    reject_each(&ctx, variants, &[MALFORMED]).await
}

async fn ill_formed_utf8_in_a_user_property(ctx: Ctx) -> CaseResult {
    let qos = ack_qos(&ctx);
    let topic = ctx.topic("userprop").into_bytes();
    let mut variants = Vec::new();
    for (what, bad) in &ILL_FORMED[..3] {
        let key = Writer::new().u8(prop::USER_PROPERTY).bin(&bad_string("key", bad)).str("value");
        variants.push((
            format!("PUBLISH with a User Property whose name contains {what}"),
            publish_raw_props(ctx.version, &topic, qos, 1, key, b"x"),
        ));
        let value = Writer::new().u8(prop::USER_PROPERTY).str("key").bin(&bad_string("value", bad));
        variants.push((
            format!("PUBLISH with a User Property whose value contains {what}"),
            publish_raw_props(ctx.version, &topic, qos, 1, value, b"x"),
        ));
    }
    let (what, bad) = SURROGATES[0];
    let value = Writer::new().u8(prop::USER_PROPERTY).str("key").bin(&bad_string("value", bad));
    variants.push((
        format!("PUBLISH with a User Property whose value contains {what}"),
        publish_raw_props(ctx.version, &topic, qos, 1, value, b"x"),
    ));
    let sub = Writer::new().u8(prop::USER_PROPERTY).str("key").bin(&bad_string("value", b"\xC3\x28"));
    variants.push((
        "SUBSCRIBE with a User Property whose value is ill-formed (C3 28)".to_string(),
        Writer::new()
            .u16(1)
            .varint(u32::try_from(sub.len()).unwrap_or(u32::MAX))
            .raw(&sub.into_bytes())
            .str(&ctx.topic("userprop"))
            .u8(0)
            .frame(0x82),
    ));
    reject_each(&ctx, variants, &[MALFORMED]).await
}

async fn zero_width_no_break_space_passed_on(ctx: Ctx) -> CaseResult {
    // A leading BOM is what a careless decoder strips; one inside too.
    let topic = format!("\u{FEFF}{}/\u{FEFF}bom\u{FEFF}", ctx.topic("z"));
    let (mut sub, _) = ctx.connect("bomsub").await?;
    sub.send(&packets::subscribe(ctx.version, 1, &[(&topic, 0)], Props::new())).await?;
    let suback = packets::parse_suback(&sub.expect(kind::SUBACK).await?, ctx.version)?;
    ensure!(
        suback.codes == [0],
        "expected SUBACK granting QoS 0 for a topic filter containing U+FEFF, saw codes {:02x?}",
        suback.codes
    );
    let (mut publisher, _) = ctx.connect("bompub").await?;
    let props = if ctx.version.is_v5() {
        Props::new()
            .str(prop::CONTENT_TYPE, "\u{FEFF}text/plain")
            .user("\u{FEFF}name", "\u{FEFF}value\u{FEFF}")
            .str(prop::RESPONSE_TOPIC, &format!("\u{FEFF}{}", ctx.topic("reply")))
    } else {
        Props::new()
    };
    publisher.send(&packets::publish(ctx.version, &topic, b"bom", 0, false, 0, props)).await?;
    let frame = sub.expect(kind::PUBLISH).await.map_err(|e| {
        format!("a message published to a topic containing U+FEFF did not reach the exact subscription: {e}")
    })?;
    let mut r = Reader::new(&frame.body);
    let delivered = r.bin()?;
    ensure!(
        delivered.as_ref() == topic.as_bytes(),
        "expected the topic delivered byte for byte as [{}], saw [{}]",
        hex(topic.as_bytes()),
        hex(&delivered)
    );
    if ctx.version.is_v5() {
        let publish = packets::parse_publish(&frame, ctx.version)?;
        ensure!(
            publish.props.str(prop::CONTENT_TYPE) == Some("\u{FEFF}text/plain"),
            "expected the Content Type with its leading U+FEFF, saw {:?}",
            publish.props.str(prop::CONTENT_TYPE)
        );
        let expected_reply = format!("\u{FEFF}{}", ctx.topic("reply"));
        ensure!(
            publish.props.str(prop::RESPONSE_TOPIC) == Some(expected_reply.as_str()),
            "expected the Response Topic with its leading U+FEFF, saw {:?}",
            publish.props.str(prop::RESPONSE_TOPIC)
        );
        ensure!(
            publish.props.keeps_user_properties(&[("\u{FEFF}name", "\u{FEFF}value\u{FEFF}")]),
            "expected the User Property with every U+FEFF kept, saw {:?}",
            publish.props.user_properties()
        );
    }
    Ok(())
}

/// U+FFFF, U+FDD0, U+0001 and U+0085 are well-formed UTF-8, so the MUST of
/// MQTT-1.5.3-1 / MQTT-1.5.4-1 does not make them malformed; section 1.5 lets a
/// receiver close for them (MAY). Either outcome passes, but a server that keeps
/// the connection must pass the string on byte for byte.
async fn noncharacters_refused_or_passed_on(ctx: Ctx) -> CaseResult {
    for (i, (what, ch)) in DISALLOWED_BUT_WELL_FORMED.iter().enumerate() {
        let topic = format!("{}{ch}x", ctx.topic(&format!("nc{i}/")));
        let (mut sub, _) = ctx.connect(&format!("ncsub{i}")).await?;
        let subscribe = packets::subscribe(ctx.version, 1, &[(&topic, 0)], Props::new());
        sub.send(&subscribe).await?;
        let frame = match sub.recv(REPLY_WAIT).await? {
            Event::Frame(frame) if frame.kind == kind::SUBACK => frame,
            Event::Frame(frame) if frame.kind == kind::DISCONNECT && ctx.version.is_v5() => {
                // Treated as malformed, which the MAY allows: check the close.
                let reason = packets::parse_disconnect(&frame)?.reason;
                ensure!(reason == MALFORMED, "after SUBSCRIBE with {what}: expected DISCONNECT 0x81, saw {frame:?}");
                sub.expect_closed(REPLY_WAIT).await?;
                continue;
            }
            Event::Closed => continue,
            Event::Frame(frame) => {
                return Err(format!("after SUBSCRIBE with {what}: expected SUBACK or a close, saw {frame:?}").into());
            }
            Event::Silent => {
                return Err(format!("after SUBSCRIBE with {what}: expected SUBACK or a close, nothing came").into());
            }
        };
        let suback = packets::parse_suback(&frame, ctx.version)?;
        if suback.codes.first().is_none_or(|code| *code >= 0x80) {
            continue; // Refused per filter: also a refusal.
        }
        let (mut publisher, _) = ctx.connect(&format!("ncpub{i}")).await?;
        let publish = packets::publish(ctx.version, &topic, b"nc", 0, false, 0, Props::new());
        publisher.send(&publish).await?;
        // If the publisher was closed for it, nothing may be delivered; otherwise exactly this topic.
        publisher.send(&packets::pingreq()).await?;
        match publisher.recv(REPLY_WAIT).await? {
            Event::Frame(frame) if frame.kind == kind::PINGRESP => {}
            Event::Closed => {
                sub.expect_silence().await.map_err(|e| format!("PUBLISH with {what} closed its sender, but: {e}"))?;
                continue;
            }
            Event::Frame(frame) if frame.kind == kind::DISCONNECT && ctx.version.is_v5() => {
                let reason = packets::parse_disconnect(&frame)?.reason;
                ensure!(reason == MALFORMED, "after PUBLISH with {what}: expected DISCONNECT 0x81, saw {frame:?}");
                publisher.expect_closed(REPLY_WAIT).await?;
                sub.expect_silence().await.map_err(|e| format!("PUBLISH with {what} closed its sender, but: {e}"))?;
                continue;
            }
            other => {
                return Err(format!(
                    "after PUBLISH with {what} and PINGREQ: expected PINGRESP or a close, saw {other:?}"
                )
                .into());
            }
        }
        let frame = sub.expect(kind::PUBLISH).await.map_err(|e| {
            format!("the server accepted a PUBLISH to a topic with {what} but did not deliver it to the exact subscription: {e}")
        })?;
        let delivered = Reader::new(&frame.body).bin()?;
        ensure!(
            delivered.as_ref() == topic.as_bytes(),
            "expected the topic with {what} delivered byte for byte as [{}], saw [{}]",
            hex(topic.as_bytes()),
            hex(&delivered)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Variable byte integers and the remaining length.

async fn server_encodes_variable_byte_integers_minimally(ctx: Ctx) -> CaseResult {
    let (mut sub, connack) = connect_frame(&ctx, "vbisub").await?;
    check_header_vbi(&connack, "CONNACK")?;
    check_props_vbi(connack.body.get(2..).unwrap_or_default(), "CONNACK")?;
    let topic = ctx.topic("vbi");
    // Subscription Identifier 300 takes two bytes (where the server has them).
    let sub_id = ctx.caps.subscription_identifiers.then_some(300u32);
    let sub_props = sub_id.map_or(Props::new(), |id| Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, id));
    sub.send(&packets::subscribe(ctx.version, 1, &[(&topic, 0)], sub_props)).await?;
    let suback = sub.expect(kind::SUBACK).await?;
    check_header_vbi(&suback, "SUBACK")?;
    check_props_vbi(suback.body.get(2..).unwrap_or_default(), "SUBACK")?;
    let (mut publisher, _) = ctx.connect("vbipub").await?;
    // Remaining lengths of one, one, two and three bytes.
    for size in [0usize, 100, 200, 17_000] {
        let payload = vec![b'v'; size];
        publisher.send(&packets::publish(ctx.version, &topic, &payload, 0, false, 0, Props::new())).await?;
        let frame = sub.expect(kind::PUBLISH).await?;
        let what = format!("PUBLISH with a {size}-byte payload");
        check_header_vbi(&frame, &what)?;
        let mut r = Reader::new(&frame.body);
        r.bin()?;
        let props = r.rest();
        check_props_vbi(&props, &what)?;
        if let Some(id) = sub_id {
            let publish = packets::parse_publish(&frame, ctx.version)?;
            ensure!(
                publish.props.u32(prop::SUBSCRIPTION_IDENTIFIER) == Some(id),
                "expected the {what} to carry Subscription Identifier {id}, saw {:?}",
                publish.props
            );
        }
    }
    Ok(())
}

async fn remaining_length_of_five_bytes(ctx: Ctx) -> CaseResult {
    let bystander = Bystander::join(&ctx).await?;
    let (mut client, _) = ctx.connect("vbi5").await?;
    // The fourth byte still has its continuation bit set: a fifth byte follows.
    let bad = [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
    client.send(&bad).await?;
    expect_rejected(&mut client, "PUBLISH whose remaining length runs to five bytes", &bad, &[MALFORMED]).await?;
    bystander.still_served(&ctx).await
}

async fn remaining_length_too_short(ctx: Ctx) -> CaseResult {
    let v5 = ctx.version.is_v5();
    let topic = ctx.topic("short");
    let mut variants = vec![
        // Topic length 0x0040, but the packet ends after three bytes of it.
        (
            "PUBLISH whose topic length runs past the remaining length".to_string(),
            Bytes::from_static(&[0x30, 0x05, 0x00, 0x40, b'a', b'b', b'c']),
        ),
        (
            "PUBACK with remaining length 1 (no room for the packet identifier)".to_string(),
            Bytes::from_static(&[0x40, 0x01, 0x00]),
        ),
        ("PUBREL with remaining length 1".to_string(), Bytes::from_static(&[0x62, 0x01, 0x00])),
    ];
    // SUBSCRIBE whose only topic filter claims more bytes than remain.
    let mut w = Writer::new().u16(1);
    if v5 {
        w = w.no_props();
    }
    let truncated = w.u16(0x0020).raw(topic.as_bytes()).frame(0x82);
    variants.push(("SUBSCRIBE whose topic filter length runs past the remaining length".to_string(), truncated));
    // SUBSCRIBE whose last filter has no Subscription Options byte.
    let mut w = Writer::new().u16(2);
    if v5 {
        w = w.no_props();
    }
    variants.push(("SUBSCRIBE whose topic filter lacks its options byte".to_string(), w.str(&topic).frame(0x82)));
    if v5 {
        // Property length 10, but only the two bytes of one property follow.
        let publish = Writer::new().str(&topic).varint(10).u8(prop::PAYLOAD_FORMAT_INDICATOR).u8(0).frame(0x30);
        variants.push(("PUBLISH whose property length runs past the remaining length".to_string(), publish));
    }
    reject_each(&ctx, variants, MALFORMED_OR_PROTOCOL_ERROR).await
}

/// Packets whose Remaining Length runs past their last field. A SUBSCRIBE
/// with a stray byte cannot be parsed (the byte starts a topic filter whose
/// length does not fit): it is malformed and must be rejected. PINGREQ and
/// PUBACK with bytes after their fixed set of fields are different: no
/// numbered statement obliges the server to check their Remaining Length
/// against the fields, and 5.0 section 4.13.1 leaves the rigour of such checks
/// to the implementation. So for those the server may reject the packet, or
/// frame it by its Remaining Length, ignore the extra bytes and stay in step.
async fn remaining_length_too_long(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("long");
    // SUBSCRIBE with one stray byte after its last options byte (too short for another filter).
    let mut w = Writer::new().u16(1);
    if ctx.version.is_v5() {
        w = w.no_props();
    }
    let variants = vec![(
        "SUBSCRIBE with one byte after its last topic filter and options".to_string(),
        w.str(&topic).u8(0).u8(0x00).frame(0x82),
    )];
    reject_each(&ctx, variants, MALFORMED_OR_PROTOCOL_ERROR).await?;
    // PINGREQ has neither variable header nor payload: its remaining length is 0.
    rejected_or_framed(&ctx, "ping", "PINGREQ with remaining length 1", &[0xC0, 0x01, 0x00], &[kind::PINGRESP]).await?;
    if ctx.version.is_v5() {
        // PUBACK: packet identifier, reason code, property length 0, and one byte more.
        let bad = [0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0xFF];
        rejected_or_framed(&ctx, "puback", "PUBACK with a byte after its properties", &bad, &[]).await
    } else {
        // In 3.1.1 PUBACK's remaining length is always 2.
        rejected_or_framed(&ctx, "puback", "PUBACK with remaining length 3", &[0x40, 0x03, 0x00, 0x01, 0x00], &[]).await
    }
}

/// Sends `sent` and a PINGREQ right after it. Passes if the server rejects
/// `sent` (closes without answering; in 5.0 at most after a DISCONNECT 0x81
/// or 0x82), or if it answers `sent` with `answers` (packet kinds) and then
/// the PINGREQ with PINGRESP: it framed the packet by its Remaining Length.
async fn rejected_or_framed(ctx: &Ctx, name: &str, what: &str, sent: &[u8], answers: &[u8]) -> CaseResult {
    let (mut client, _) = ctx.connect(name).await?;
    let mut bytes = sent.to_vec();
    bytes.extend_from_slice(&packets::pingreq());
    client.send(&bytes).await?;
    let want: Vec<u8> = answers.iter().copied().chain([kind::PINGRESP]).collect();
    let mut frames: Vec<Frame> = Vec::new();
    loop {
        match client.recv(REPLY_WAIT).await? {
            Event::Frame(frame) => {
                frames.push(frame);
                let kinds: Vec<u8> = frames.iter().map(|f| f.kind).collect();
                if kinds == want {
                    return Ok(());
                }
                // A 5.0 server that rejects the packet may send DISCONNECT before it closes.
                let disconnecting = client.version.is_v5() && kinds == [kind::DISCONNECT];
                ensure!(
                    disconnecting || want.starts_with(&kinds),
                    "after {what} [{}] and a PINGREQ: expected a close, or the usual answers and PINGRESP; got {frames:?}",
                    hex(sent)
                );
            }
            Event::Closed => {
                return match frames.as_slice() {
                    [] => Ok(()),
                    [frame] if client.version.is_v5() && frame.kind == kind::DISCONNECT => {
                        let reason = packets::parse_disconnect(frame)?.reason;
                        ensure!(
                            frame.flags == 0 && MALFORMED_OR_PROTOCOL_ERROR.contains(&reason),
                            "after {what}: expected a close, or DISCONNECT 0x81 or 0x82 and a close; saw {frame:?}"
                        );
                        Ok(())
                    }
                    frames => Err(format!(
                        "after {what} [{}]: the server closed the connection after sending {frames:?}",
                        hex(sent)
                    )
                    .into()),
                };
            }
            Event::Silent => {
                return Err(format!(
                    "after {what} [{}] and a PINGREQ: expected a close, or the usual answers and PINGRESP; got \
                     {frames:?} and then nothing within {REPLY_WAIT:?}",
                    hex(sent)
                )
                .into());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Fixed header: flags and packet types.

async fn server_fixed_header_flags(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.maximum_qos >= 2, "QoS 2")?;
    let (mut sub, connack) = connect_frame(&ctx, "flagsub").await?;
    expect_flags(&connack, 0)?;
    let topic = ctx.topic("flags");
    sub.send(&packets::subscribe(ctx.version, 7, &[(&topic, 2)], Props::new())).await?;
    expect_flags(&sub.expect(kind::SUBACK).await?, 0)?;
    let (mut publisher, _) = ctx.connect("flagpub").await?;
    // QoS 1 both ways.
    publisher.send(&packets::publish(ctx.version, &topic, b"one", 1, false, 1, Props::new())).await?;
    expect_flags(&publisher.expect(kind::PUBACK).await?, 0)?;
    let frame = sub.expect(kind::PUBLISH).await?;
    ensure!(frame.flags & 0x06 != 0x06, "expected a PUBLISH with a valid QoS, saw {frame:?}");
    let publish = packets::parse_publish(&frame, ctx.version)?;
    sub.send(&packets::ack(kind::PUBACK, publish.packet_id.unwrap_or(0))).await?;
    // QoS 2 both ways: PUBREC, PUBREL (0010) and PUBCOMP from the server.
    publisher.send(&packets::publish(ctx.version, &topic, b"two", 2, false, 2, Props::new())).await?;
    expect_flags(&publisher.expect(kind::PUBREC).await?, 0)?;
    publisher.send(&packets::ack(kind::PUBREL, 2)).await?;
    expect_flags(&publisher.expect(kind::PUBCOMP).await?, 0)?;
    let frame = sub.expect(kind::PUBLISH).await?;
    ensure!(frame.flags & 0x06 != 0x06, "expected a PUBLISH with a valid QoS, saw {frame:?}");
    let id = packets::parse_publish(&frame, ctx.version)?.packet_id.unwrap_or(0);
    sub.send(&packets::ack(kind::PUBREC, id)).await?;
    expect_flags(&sub.expect(kind::PUBREL).await?, 0b0010)?;
    sub.send(&packets::ack(kind::PUBCOMP, id)).await?;
    sub.send(&packets::unsubscribe(ctx.version, 8, &[&topic])).await?;
    expect_flags(&sub.expect(kind::UNSUBACK).await?, 0)?;
    sub.send(&packets::pingreq()).await?;
    expect_flags(&sub.expect(kind::PINGRESP).await?, 0)?;
    Ok(())
}

async fn pubrel_with_bad_flags(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.maximum_qos >= 2, "QoS 2")?;
    for (i, first) in [0x60u8, 0x63, 0x6A].into_iter().enumerate() {
        let (mut client, _) = ctx.connect(&format!("pubrel{i}")).await?;
        // A QoS 2 flow in progress, so that only the flags are wrong.
        client.send(&packets::publish(ctx.version, &ctx.topic("pubrel"), b"x", 2, false, 5, Props::new())).await?;
        client.expect(kind::PUBREC).await?;
        let bad = Writer::new().u16(5).frame(first);
        client.send(&bad).await?;
        let what = format!("PUBREL with flags {:04b}", first & 0x0F);
        expect_rejected(&mut client, &what, &bad, &[MALFORMED]).await?;
    }
    Ok(())
}

async fn subscribe_with_bad_flags(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("subflags");
    let variants = [0x80u8, 0x83, 0x8A]
        .into_iter()
        .map(|first| {
            let mut good = packets::subscribe(ctx.version, 1, &[(&topic, 0)], Props::new()).to_vec();
            good[0] = first;
            (format!("SUBSCRIBE with flags {:04b}", first & 0x0F), Bytes::from(good))
        })
        .collect();
    reject_each(&ctx, variants, &[MALFORMED]).await
}

async fn unsubscribe_with_bad_flags(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("unsflags");
    let variants = [0xA0u8, 0xA3, 0xAA]
        .into_iter()
        .map(|first| {
            let mut good = packets::unsubscribe(ctx.version, 1, &[&topic]).to_vec();
            good[0] = first;
            (format!("UNSUBSCRIBE with flags {:04b}", first & 0x0F), Bytes::from(good))
        })
        .collect();
    reject_each(&ctx, variants, &[MALFORMED]).await
}

async fn other_packets_with_bad_flags(ctx: Ctx) -> CaseResult {
    let variants = vec![
        ("PUBACK with flags 0001".to_string(), Bytes::from_static(&[0x41, 0x02, 0x00, 0x01])),
        ("PUBREC with flags 0010".to_string(), Bytes::from_static(&[0x52, 0x02, 0x00, 0x01])),
        ("PUBCOMP with flags 1000".to_string(), Bytes::from_static(&[0x78, 0x02, 0x00, 0x01])),
        ("PINGREQ with flags 0001".to_string(), Bytes::from_static(&[0xC1, 0x00])),
        ("PINGREQ with flags 0010".to_string(), Bytes::from_static(&[0xC2, 0x00])),
    ];
    reject_each(&ctx, variants, &[MALFORMED]).await
}

/// A DISCONNECT with reserved flags set is malformed, so it is not the
/// DISCONNECT that discards the will: closing for a malformed packet publishes
/// the will. That tells a server that checked the flags from one that did not.
async fn disconnect_with_bad_flags(ctx: Ctx) -> CaseResult {
    let will_topic = ctx.topic("will");
    let (mut watcher, _) = ctx.connect("watcher").await?;
    watcher.send(&packets::subscribe(ctx.version, 1, &[(&will_topic, 0)], Props::new())).await?;
    watcher.expect(kind::SUBACK).await?;
    let will =
        WillSpec { topic: will_topic.clone(), payload: b"gone".to_vec(), qos: 0, retain: false, props: Props::new() };
    let (mut client, _) = Client::connect_ok(&ctx.target, &ctx.connect_builder("dying").will(will)).await?;
    // An otherwise normal DISCONNECT (empty body: reason 0x00 in 5.0) with flags 0010.
    let bad = [0xE2, 0x00];
    client.send(&bad).await?;
    expect_rejected(&mut client, "DISCONNECT with flags 0010", &bad, &[MALFORMED]).await?;
    let publish = watcher.expect_publish().await.map_err(|e| {
        format!(
            "a malformed DISCONNECT is not a DISCONNECT: the will should be published when the server closes, \
             but: {e}"
        )
    })?;
    ensure!(
        publish.topic == will_topic && publish.payload.as_ref() == b"gone",
        "expected the will on {will_topic}, saw {publish:?}"
    );
    Ok(())
}

async fn reserved_packet_type(ctx: Ctx) -> CaseResult {
    let bystander = Bystander::join(&ctx).await?;
    let mut variants = vec![("a packet of reserved type 0".to_string(), Bytes::from_static(&[0x00, 0x00]))];
    if !ctx.version.is_v5() {
        // Type 15 is reserved in 3.1.1 (AUTH in 5.0).
        variants.push(("a packet of reserved type 15".to_string(), Bytes::from_static(&[0xF0, 0x00])));
    }
    reject_each(&ctx, variants, MALFORMED_OR_PROTOCOL_ERROR).await?;
    bystander.still_served(&ctx).await
}

// ---------------------------------------------------------------------------
// Packet identifiers.

async fn zero_packet_identifier(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("pid0");
    let mut variants = vec![
        (
            "SUBSCRIBE with packet identifier 0".to_string(),
            packets::subscribe(ctx.version, 0, &[(&topic, 0)], Props::new()),
        ),
        ("UNSUBSCRIBE with packet identifier 0".to_string(), packets::unsubscribe(ctx.version, 0, &[&topic])),
    ];
    for qos in 1..=ctx.caps.maximum_qos.min(2) {
        variants.push((
            format!("QoS {qos} PUBLISH with packet identifier 0"),
            packets::publish(ctx.version, &topic, b"x", qos, false, 0, Props::new()),
        ));
    }
    reject_each(&ctx, variants, MALFORMED_OR_PROTOCOL_ERROR).await
}

/// Holds several QoS 1 and 2 deliveries unacknowledged (and one QoS 2 delivery
/// at PUBREL, awaiting PUBCOMP): every identifier the server picks is non-zero
/// and not one of those in use.
async fn distinct_server_packet_identifiers(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.maximum_qos >= 1, "QoS 1")?;
    let high = ctx.caps.maximum_qos.min(2);
    let t1 = ctx.topic("ids1");
    let t2 = ctx.topic("ids2");
    let (mut holder, _) = ctx.connect("holder").await?;
    holder.send(&packets::subscribe(ctx.version, 1, &[(&t1, 1), (&t2, high)], Props::new())).await?;
    holder.expect(kind::SUBACK).await?;
    let (mut sender, _) = ctx.connect("sender").await?;
    let mut next_id = 1u16;
    let mut send = async |sender: &mut Client, topic: &str, qos: u8| -> CaseResult {
        let id = next_id;
        next_id += 1;
        sender.send(&packets::publish(ctx.version, topic, b"held", qos, false, id, Props::new())).await?;
        if qos == 1 {
            sender.expect(kind::PUBACK).await?;
        } else {
            sender.expect(kind::PUBREC).await?;
            sender.send(&packets::ack(kind::PUBREL, id)).await?;
            sender.expect(kind::PUBCOMP).await?;
        }
        Ok(())
    };
    for _ in 0..3 {
        send(&mut sender, &t1, 1).await?;
        send(&mut sender, &t2, high).await?;
    }
    // Six deliveries, none acknowledged: all identifiers in use at once.
    let mut in_use: Vec<(u16, u8)> = Vec::new();
    for _ in 0..6 {
        let publish = holder.expect_publish().await?;
        let id = publish.packet_id.unwrap_or(0);
        ensure!(id != 0, "expected a non-zero packet identifier on a QoS {} PUBLISH, saw 0", publish.qos);
        ensure!(
            in_use.iter().all(|(used, _)| *used != id),
            "expected a packet identifier not in use, saw {id} again while {:?} are unacknowledged",
            in_use.iter().map(|(id, _)| id).collect::<Vec<_>>()
        );
        in_use.push((id, publish.qos));
    }
    if let Some((id, _)) = in_use.iter().find(|(_, qos)| *qos == 2).copied() {
        // PUBREC one: the server's PUBREL carries the same identifier, which stays in use until PUBCOMP.
        holder.send(&packets::ack(kind::PUBREC, id)).await?;
        let pubrel = packets::parse_ack(&holder.expect(kind::PUBREL).await?, ctx.version)?;
        ensure!(pubrel.packet_id == id, "expected PUBREL for packet identifier {id}, saw {}", pubrel.packet_id);
    }
    send(&mut sender, &t1, 1).await?;
    send(&mut sender, &t1, 1).await?;
    for _ in 0..2 {
        let publish = holder.expect_publish().await?;
        let id = publish.packet_id.unwrap_or(0);
        ensure!(id != 0, "expected a non-zero packet identifier, saw 0");
        ensure!(
            in_use.iter().all(|(used, _)| *used != id),
            "expected a packet identifier not in use, saw {id} while {:?} are unacknowledged (or awaiting PUBCOMP)",
            in_use.iter().map(|(id, _)| id).collect::<Vec<_>>()
        );
        in_use.push((id, publish.qos));
    }
    Ok(())
}

async fn acknowledgements_carry_the_packet_identifier(ctx: Ctx) -> CaseResult {
    let (mut client, _) = ctx.connect("ackids").await?;
    let sub_topic = ctx.topic("ackids/sub");
    let pub_topic = ctx.topic("ackids/pub");
    client.send(&packets::subscribe(ctx.version, 0xBEEF, &[(&sub_topic, 0)], Props::new())).await?;
    let suback = packets::parse_suback(&client.expect(kind::SUBACK).await?, ctx.version)?;
    ensure!(suback.packet_id == 0xBEEF, "expected SUBACK for packet identifier 0xbeef, saw 0x{:04x}", suback.packet_id);
    if ctx.caps.maximum_qos >= 1 {
        client.send(&packets::publish(ctx.version, &pub_topic, b"x", 1, false, 0x8001, Props::new())).await?;
        let puback = packets::parse_ack(&client.expect(kind::PUBACK).await?, ctx.version)?;
        ensure!(puback.packet_id == 0x8001, "expected PUBACK for 0x8001, saw 0x{:04x}", puback.packet_id);
    }
    if ctx.caps.maximum_qos >= 2 {
        client.send(&packets::publish(ctx.version, &pub_topic, b"x", 2, false, 0xFFFF, Props::new())).await?;
        let pubrec = packets::parse_ack(&client.expect(kind::PUBREC).await?, ctx.version)?;
        ensure!(pubrec.packet_id == 0xFFFF, "expected PUBREC for 0xffff, saw 0x{:04x}", pubrec.packet_id);
        client.send(&packets::ack(kind::PUBREL, 0xFFFF)).await?;
        let pubcomp = packets::parse_ack(&client.expect(kind::PUBCOMP).await?, ctx.version)?;
        ensure!(pubcomp.packet_id == 0xFFFF, "expected PUBCOMP for 0xffff, saw 0x{:04x}", pubcomp.packet_id);
    }
    client.send(&packets::unsubscribe(ctx.version, 0x0100, &[&sub_topic])).await?;
    let unsuback = packets::parse_suback(&client.expect(kind::UNSUBACK).await?, ctx.version)?;
    ensure!(unsuback.packet_id == 0x0100, "expected UNSUBACK for 0x0100, saw 0x{:04x}", unsuback.packet_id);
    Ok(())
}

async fn qos0_publish_has_no_packet_identifier(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("qos0");
    let (mut sub, _) = ctx.connect("q0sub").await?;
    sub.send(&packets::subscribe(ctx.version, 1, &[(&topic, 0)], Props::new())).await?;
    sub.expect(kind::SUBACK).await?;
    let (mut publisher, _) = ctx.connect("q0pub").await?;
    for qos in 0..=ctx.caps.maximum_qos.min(1) {
        // The payload starts with bytes that would pass for a packet identifier.
        let payload = [0x00, 0x07, b'p', b'a', b'y', qos];
        publisher.send(&packets::publish(ctx.version, &topic, &payload, qos, false, 9, Props::new())).await?;
        let frame = sub.expect(kind::PUBLISH).await?;
        ensure!(frame.flags & 0x06 == 0, "expected a QoS 0 PUBLISH on a QoS 0 subscription, saw {frame:?}");
        let publish = packets::parse_publish(&frame, ctx.version)?;
        ensure!(
            publish.payload.as_ref() == payload,
            "expected the QoS 0 PUBLISH to hold topic, {}then the payload [{}] and nothing else; saw {frame:?}",
            if ctx.version.is_v5() { "properties, " } else { "" },
            hex(&payload)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties (5.0).

async fn server_writes_zero_property_length(ctx: Ctx) -> CaseResult {
    let (mut client, connack) = connect_frame(&ctx, "proplen").await?;
    ensure!(connack.body.len() >= 3, "expected CONNACK with flags, reason and a property length, saw {connack:?}");
    let topic = ctx.topic("proplen");
    client.send(&packets::subscribe(ctx.version, 1, &[(&topic, 0)], Props::new())).await?;
    let frame = client.expect(kind::SUBACK).await?;
    let suback = packets::parse_suback(&frame, ctx.version)?;
    ensure!(
        suback.codes.len() == 1 && suback.codes[0] <= 2,
        "expected SUBACK: packet identifier, property length (0 if none), one reason code; saw {frame:?}"
    );
    client.send(&packets::publish(ctx.version, &topic, b"\x00\x00plain", 0, false, 0, Props::new())).await?;
    let frame = client.expect(kind::PUBLISH).await?;
    let publish = packets::parse_publish(&frame, ctx.version)?;
    ensure!(
        publish.payload.as_ref() == b"\x00\x00plain",
        "expected PUBLISH: topic, property length (0 if none), payload 00 00 'plain'; saw {frame:?}"
    );
    client.send(&packets::unsubscribe(ctx.version, 2, &[&topic])).await?;
    let frame = client.expect(kind::UNSUBACK).await?;
    let unsuback = packets::parse_suback(&frame, ctx.version)?;
    ensure!(
        unsuback.codes.len() == 1 && (unsuback.codes[0] == 0x00 || unsuback.codes[0] == 0x11),
        "expected UNSUBACK: packet identifier, property length (0 if none), one reason code; saw {frame:?}"
    );
    Ok(())
}

async fn property_given_twice(ctx: Ctx) -> CaseResult {
    let qos = ack_qos(&ctx);
    let topic = ctx.topic("twice");
    let publish = |what: &str, props: Props| {
        (format!("PUBLISH with {what} twice"), packets::publish(ctx.version, &topic, b"x", qos, false, 1, props))
    };
    let mut variants = vec![
        publish(
            "Payload Format Indicator",
            Props::new().u8(prop::PAYLOAD_FORMAT_INDICATOR, 0).u8(prop::PAYLOAD_FORMAT_INDICATOR, 0),
        ),
        publish(
            "Message Expiry Interval",
            Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 60).u32(prop::MESSAGE_EXPIRY_INTERVAL, 60),
        ),
        publish("Content Type", Props::new().str(prop::CONTENT_TYPE, "a").str(prop::CONTENT_TYPE, "b")),
        publish("Response Topic", Props::new().str(prop::RESPONSE_TOPIC, &topic).str(prop::RESPONSE_TOPIC, &topic)),
        publish("Correlation Data", Props::new().bin(prop::CORRELATION_DATA, b"1").bin(prop::CORRELATION_DATA, b"2")),
    ];
    if ctx.caps.subscription_identifiers {
        variants.push((
            "SUBSCRIBE with Subscription Identifier twice".to_string(),
            packets::subscribe(
                ctx.version,
                1,
                &[(&topic, 0)],
                Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 1).varint(prop::SUBSCRIPTION_IDENTIFIER, 2),
            ),
        ));
    }
    variants.push((
        "PUBACK with Reason String twice".to_string(),
        Writer::new()
            .u16(1)
            .u8(0)
            .props(Props::new().str(prop::REASON_STRING, "a").str(prop::REASON_STRING, "b"))
            .frame(0x40),
    ));
    reject_each(&ctx, variants, MALFORMED_OR_PROTOCOL_ERROR).await
}

async fn unknown_or_truncated_property(ctx: Ctx) -> CaseResult {
    let qos = ack_qos(&ctx);
    let topic = ctx.topic("unknown").into_bytes();
    let raw =
        |what: &str, block: Writer| (what.to_string(), publish_raw_props(ctx.version, &topic, qos, 1, block, b"x"));
    let variants = vec![
        raw("PUBLISH with the unassigned property identifier 0x04", Writer::new().u8(0x04).u8(0)),
        raw("PUBLISH with the unassigned property identifier 0x7F", Writer::new().u8(0x7F).u8(0)),
        raw("PUBLISH with the property identifier 0x00", Writer::new().u8(0x00).u8(0)),
        raw("PUBLISH whose Message Expiry Interval has two bytes instead of four", Writer::new().u8(0x02).u16(60)),
        raw(
            "PUBLISH whose Content Type length runs past the property length",
            Writer::new().u8(0x03).u16(9).raw(b"ab"),
        ),
        (
            "SUBSCRIBE with the unassigned property identifier 0x05".to_string(),
            Writer::new().u16(1).varint(2).u8(0x05).u8(0).str(&ctx.topic("unknown")).u8(0).frame(0x82),
        ),
    ];
    reject_each(&ctx, variants, MALFORMED_OR_PROTOCOL_ERROR).await
}

async fn property_not_valid_for_the_packet(ctx: Ctx) -> CaseResult {
    let qos = ack_qos(&ctx);
    let topic = ctx.topic("misplaced");
    let publish = |what: &str, props: Props| {
        (format!("PUBLISH with {what}"), packets::publish(ctx.version, &topic, b"x", qos, false, 1, props))
    };
    let variants = vec![
        publish(
            "Session Expiry Interval (a CONNECT, CONNACK and DISCONNECT property)",
            Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 10),
        ),
        publish("Receive Maximum (a CONNECT and CONNACK property)", Props::new().u16(prop::RECEIVE_MAXIMUM, 10)),
        publish("Maximum QoS (a CONNACK property)", Props::new().u8(prop::MAXIMUM_QOS, 1)),
        publish(
            "Authentication Method (a CONNECT, CONNACK and AUTH property)",
            Props::new().str(prop::AUTHENTICATION_METHOD, "x"),
        ),
        (
            "SUBSCRIBE with Payload Format Indicator (a PUBLISH property)".to_string(),
            packets::subscribe(ctx.version, 1, &[(&topic, 0)], Props::new().u8(prop::PAYLOAD_FORMAT_INDICATOR, 1)),
        ),
        (
            "UNSUBSCRIBE with Message Expiry Interval (a PUBLISH property)".to_string(),
            Writer::new().u16(1).props(Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 10)).str(&topic).frame(0xA2),
        ),
    ];
    reject_each(&ctx, variants, MALFORMED_OR_PROTOCOL_ERROR).await
}

async fn repeated_user_properties_forwarded(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("users");
    let (mut sub, _) = ctx.connect("usersub").await?;
    sub.send(&packets::subscribe(ctx.version, 1, &[(&topic, 0)], Props::new())).await?;
    sub.expect(kind::SUBACK).await?;
    let (mut publisher, _) = ctx.connect("userpub").await?;
    let pairs = [("k", "1"), ("k", "2"), ("a", "x"), ("k", "1"), ("", ""), ("k", "1")];
    let props = pairs.iter().fold(Props::new(), |props, (k, v)| props.user(k, v));
    let qos = ack_qos(&ctx);
    publisher.send(&packets::publish(ctx.version, &topic, b"users", qos, false, 1, props)).await?;
    if qos == 1 {
        let puback = packets::parse_ack(&publisher.expect(kind::PUBACK).await?, ctx.version)?;
        ensure!(
            puback.reason < 0x80,
            "expected PUBACK success for a PUBLISH with repeated User Properties, saw 0x{:02x}",
            puback.reason
        );
    }
    let publish = sub.expect_publish().await?;
    ensure!(
        publish.props.keeps_user_properties(&pairs),
        "expected the User Properties forwarded in order and with repeats {pairs:?} (among any the server adds), \
         saw {:?}",
        publish.props.user_properties()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The server's DISCONNECT and CONNACK on errors (5.0).

/// Provokes a DISCONNECT with a packet of reserved type 0 on a connection
/// whose Maximum Packet Size is small: if the server sends DISCONNECT, it has
/// flags 0000, a reason code of Table 3-10 of 0x80 or above, it fits (leaving
/// out Reason String and User Properties if needed) and the close follows.
async fn server_disconnect_is_valid(ctx: Ctx) -> CaseResult {
    const MAX: u32 = 48;
    let connect = ctx.connect_builder("discmax").props(Props::new().u32(prop::MAXIMUM_PACKET_SIZE, MAX));
    let (mut client, _) = Client::connect_ok(&ctx.target, &connect).await?;
    let bad = [0x00, 0x00];
    client.send(&bad).await?;
    let frames = client.expect_closed(REPLY_WAIT).await.map_err(|e| format!("after a packet of type 0: {e}"))?;
    match frames.as_slice() {
        [] => Ok(()),
        [frame] if frame.kind == kind::DISCONNECT => {
            ensure!(
                frame.bytes.len() <= MAX as usize,
                "expected a DISCONNECT of at most the client's Maximum Packet Size {MAX} (Reason String and \
                 User Properties left out if needed), saw {} bytes: {frame:?}",
                frame.bytes.len()
            );
            ensure!(frame.flags == 0, "expected DISCONNECT flags 0000, saw {frame:?}");
            let reason = packets::parse_disconnect(frame)?.reason;
            ensure!(
                SERVER_DISCONNECT_REASONS.contains(&reason),
                "expected a DISCONNECT reason code from Table 3-10, saw 0x{reason:02x}"
            );
            ensure!(
                reason >= 0x80,
                "expected a reason of 0x80 or above for a malformed packet, saw 0x{reason:02x} in {frame:?}"
            );
            Ok(())
        }
        frames => Err(format!("expected at most one DISCONNECT before the close, saw {frames:?}").into()),
    }
}

async fn malformed_connect_refused(ctx: Ctx) -> CaseResult {
    let variants = [
        (
            "CONNECT with Session Expiry Interval twice",
            Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 0).u32(prop::SESSION_EXPIRY_INTERVAL, 0),
        ),
        ("CONNECT with Receive Maximum 0", Props::new().u16(prop::RECEIVE_MAXIMUM, 0)),
        ("CONNECT with the unassigned property identifier 0x7F", Props::new().u8(0x7F, 0)),
        ("CONNECT with Topic Alias (a PUBLISH property)", Props::new().u16(prop::TOPIC_ALIAS, 1)),
    ];
    for (i, (what, props)) in variants.into_iter().enumerate() {
        let connect = ctx.connect_builder(&format!("badconn{i}")).props(props).bytes();
        let mut client = Client::open(&ctx.target, ctx.version).await?;
        client.send(&connect).await?;
        let frames = client.expect_closed(REPLY_WAIT).await.map_err(|e| format!("after {what}: {e}"))?;
        match frames.as_slice() {
            [] => {}
            [frame] if frame.kind == kind::CONNACK => {
                let connack: ConnAck = packets::parse_connack(frame, ctx.version)?;
                ensure!(
                    connack.code >= 0x80,
                    "after {what}: expected a close, or a CONNACK with a reason of 0x80 or above first; saw {frame:?}"
                );
            }
            frames => {
                return Err(format!(
                    "after {what}: expected a close, at most preceded by a refusing CONNACK (never a DISCONNECT \
                     before a successful CONNACK); saw {frames:?}"
                )
                .into());
            }
        }
    }
    Ok(())
}

/// A PUBLISH of exactly the announced Maximum Packet Size is accepted; one
/// byte more is a Protocol Error (DISCONNECT 0x95, section 3.2.2.3.6) or a close.
async fn packet_larger_than_server_maximum(ctx: Ctx) -> CaseResult {
    /// Above this the case would move too much data to stay quick.
    const LARGEST_TRIED: u32 = 16 * 1024 * 1024;
    let Some(max) = ctx.caps.maximum_packet_size else {
        return ctx.require(false, "an announced Maximum Packet Size (its CONNACK has none)");
    };
    ctx.require(max <= LARGEST_TRIED, "a Maximum Packet Size small enough to exceed quickly (at most 16 MiB)")?;
    let topic = ctx.topic("big");
    let qos = ack_qos(&ctx);
    // A PUBLISH of exactly `size` bytes in total.
    let sized = |size: u32| -> Bytes {
        let overhead = |payload: usize| {
            let rest = 2 + topic.len() + if qos > 0 { 2 } else { 0 } + 1 + payload;
            1 + vbi_len(rest) + rest
        };
        let mut payload = (size as usize).saturating_sub(overhead(0));
        while overhead(payload) > size as usize {
            payload -= 1;
        }
        packets::publish(ctx.version, &topic, &vec![b'b'; payload], qos, false, 1, Props::new())
    };
    let (mut client, _) = ctx.connect("bigok").await?;
    let fits = sized(max);
    ensure!(fits.len() == max as usize, "internal: built {} bytes for {max}", fits.len());
    client.send(&fits).await?;
    if qos == 1 {
        let puback = packets::parse_ack(
            &client.expect(kind::PUBACK).await.map_err(|e| {
                format!("a PUBLISH of exactly the announced Maximum Packet Size {max} should be accepted: {e}")
            })?,
            ctx.version,
        )?;
        ensure!(puback.packet_id == 1, "expected PUBACK for packet 1, saw {puback:?}");
    }
    let (mut client, _) = ctx.connect("bigbad").await?;
    let too_big = sized(max + 1);
    // The server may close while the packet is still being written.
    let _ = client.send(&too_big).await;
    let what = format!("PUBLISH of {} bytes, above the Maximum Packet Size {max}", too_big.len());
    expect_rejected(&mut client, &what, &too_big[..8], &[PACKET_TOO_LARGE, PROTOCOL_ERROR]).await
}

// ---------------------------------------------------------------------------
// Enhanced authentication (5.0), as far as a server without the method shows.

/// A made-up Authentication Method: CONNACK 0x8C or 0x87 and a close, or a
/// close. A server that claims to know the method must echo it (MQTT-4.12.0-5)
/// and, if it continues with AUTH, use reason 0x18 (MQTT-4.12.0-2).
async fn unsupported_authentication_method(ctx: Ctx) -> CaseResult {
    const METHOD: &str = "x-conformance-no-such-method";
    let connect = ctx
        .connect_builder("authm")
        .props(Props::new().str(prop::AUTHENTICATION_METHOD, METHOD).bin(prop::AUTHENTICATION_DATA, b"?"));
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    client.send(&connect.bytes()).await?;
    match client.recv(REPLY_WAIT).await? {
        Event::Closed => Ok(()),
        Event::Frame(frame) if frame.kind == kind::CONNACK => {
            let connack = packets::parse_connack(&frame, ctx.version)?;
            if connack.code == 0 {
                // The server claims to know this method: then it must echo it (MQTT-4.12.0-5).
                ensure!(
                    connack.props.str(prop::AUTHENTICATION_METHOD) == Some(METHOD),
                    "expected the made-up Authentication Method {METHOD:?} refused (CONNACK 0x8C or 0x87 and a \
                     close), or, if accepted, echoed in the CONNACK; saw {frame:?}"
                );
                return Ok(());
            }
            ensure!(
                connack.code == 0x8C || connack.code == 0x87,
                "expected CONNACK 0x8C (Bad authentication method) or 0x87 (Not authorized) for an unsupported \
                 Authentication Method, saw {frame:?}"
            );
            client.expect_closed(REPLY_WAIT).await.map_err(|e| format!("after CONNACK 0x{:02x}: {e}", connack.code))?;
            Ok(())
        }
        Event::Frame(frame) if frame.kind == kind::AUTH => {
            // The server claims to know this method and asks for more: 0x18 and the same method.
            let mut r = Reader::new(&frame.body);
            let reason = r.u8()?;
            let props = r.props()?;
            ensure!(reason == 0x18, "expected AUTH with reason 0x18 (Continue authentication), saw {frame:?}");
            ensure!(
                props.str(prop::AUTHENTICATION_METHOD) == Some(METHOD),
                "expected AUTH to carry the Authentication Method {METHOD:?}, saw {frame:?}"
            );
            Ok(())
        }
        Event::Frame(frame) => Err(format!("expected CONNACK, AUTH or a close, saw {frame:?}").into()),
        Event::Silent => Err(format!(
            "expected CONNACK 0x8C / 0x87 and a close for an unsupported Authentication Method, nothing came within \
             {REPLY_WAIT:?}"
        )
        .into()),
    }
}

/// AUTH with no variable header: reason 0x00 (Success), no properties.
fn auth_empty() -> Bytes {
    Bytes::from_static(&[0xF0, 0x00])
}

// ---------------------------------------------------------------------------
// Helpers.

/// A well-behaved client connected before the bad one, that must still be served after it.
#[derive(Debug)]
struct Bystander {
    client: Client,
    topic: String,
}

impl Bystander {
    async fn join(ctx: &Ctx) -> Result<Self, String> {
        let (mut client, _) = ctx.connect("bystander").await?;
        let topic = ctx.topic("bystander");
        client.send(&packets::subscribe(ctx.version, 1, &[(&topic, 0)], Props::new())).await?;
        client.expect(kind::SUBACK).await?;
        Ok(Self { client, topic })
    }

    /// A new client can connect, and its message reaches the bystander, who still gets PINGRESP.
    async fn still_served(mut self, ctx: &Ctx) -> CaseResult {
        let (mut fresh, _) = ctx
            .connect("newcomer")
            .await
            .map_err(|e| format!("after the bad client was closed, a new client could not connect: {e}"))?;
        fresh.send(&packets::publish(ctx.version, &self.topic, b"still serving", 0, false, 0, Props::new())).await?;
        let publish =
            self.client.expect_publish().await.map_err(|e| {
                format!("after the bad client was closed, another client's message did not arrive: {e}")
            })?;
        ensure!(publish.payload.as_ref() == b"still serving", "expected 'still serving', saw {publish:?}");
        self.client.send(&packets::pingreq()).await?;
        self.client.expect(kind::PINGRESP).await?;
        Ok(())
    }
}

/// Expects the server to close the connection after `what` (`sent`, for the
/// message): in 3.1.1 with nothing sent first; in 5.0 at most one DISCONNECT
/// first, with flags 0000, a reason from `allowed`, and nothing after it.
async fn expect_rejected(client: &mut Client, what: &str, sent: &[u8], allowed: &[u8]) -> CaseResult {
    let frames = client.expect_closed(REPLY_WAIT).await.map_err(|e| format!("after {what} [{}]: {e}", hex(sent)))?;
    match frames.as_slice() {
        [] => Ok(()),
        [frame] if client.version.is_v5() && frame.kind == kind::DISCONNECT => {
            ensure!(frame.flags == 0, "after {what}: expected DISCONNECT flags 0000, saw {frame:?}");
            let reason = packets::parse_disconnect(frame)?.reason;
            ensure!(
                allowed.contains(&reason),
                "after {what}: expected a close, or DISCONNECT with reason {} and a close; saw {frame:?}",
                allowed.iter().map(|r| format!("0x{r:02x}")).collect::<Vec<_>>().join(" or ")
            );
            Ok(())
        }
        frames => Err(format!(
            "after {what} [{}]: expected the server to close the connection{}; it sent {frames:?}",
            hex(sent),
            if client.version.is_v5() { " (after at most a DISCONNECT)" } else { " without answering" }
        )
        .into()),
    }
}

/// Sends each bad packet on its own freshly connected client and expects it
/// rejected. The variants run at the same time, so that every one that is not
/// rejected is reported, within one wait.
async fn reject_each(ctx: &Ctx, variants: Vec<(String, Bytes)>, allowed: &'static [u8]) -> CaseResult {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (what, packet)) in variants.into_iter().enumerate() {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let outcome = async {
                let (mut client, _) = ctx.connect(&format!("bad{i}")).await?;
                client.send(&packet).await?;
                expect_rejected(&mut client, &what, &packet, allowed).await
            };
            (i, outcome.await)
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((i, Err(Failure::Fail(why) | Failure::Skip(why)))) => failures.push((i, why)),
            Err(e) => failures.push((usize::MAX, format!("a variant panicked: {e}"))),
        }
    }
    failures.sort();
    ensure!(failures.is_empty(), "{}", failures.into_iter().map(|(_, why)| why).collect::<Vec<_>>().join("\n"));
    Ok(())
}

/// QoS 1 where the server allows it, so that acceptance shows as a PUBACK.
fn ack_qos(ctx: &Ctx) -> u8 {
    u8::from(ctx.caps.maximum_qos >= 1)
}

/// `prefix/` followed by `bad` and `x`: bytes for a string field.
fn bad_string(prefix: &str, bad: &[u8]) -> Vec<u8> {
    [prefix.as_bytes(), b"/", bad, b"x"].concat()
}

/// PUBLISH with the topic given as raw bytes.
fn publish_raw(version: Version, topic: &[u8], qos: u8, packet_id: u16, props: Props, payload: &[u8]) -> Bytes {
    let mut w = Writer::new().bin(topic);
    if qos > 0 {
        w = w.u16(packet_id);
    }
    if version.is_v5() {
        w = w.props(props);
    }
    w.raw(payload).frame(0x30 | (qos << 1))
}

/// PUBLISH (5.0) with its property block given as raw bytes.
fn publish_raw_props(version: Version, topic: &[u8], qos: u8, packet_id: u16, block: Writer, payload: &[u8]) -> Bytes {
    let mut w = Writer::new().bin(topic);
    if qos > 0 {
        w = w.u16(packet_id);
    }
    if version.is_v5() {
        w = w.varint(u32::try_from(block.len()).unwrap_or(u32::MAX)).raw(&block.into_bytes());
    }
    w.raw(payload).frame(0x30 | (qos << 1))
}

/// SUBSCRIBE with one topic filter given as raw bytes.
fn subscribe_raw(version: Version, packet_id: u16, filter: &[u8], options: u8) -> Bytes {
    let mut w = Writer::new().u16(packet_id);
    if version.is_v5() {
        w = w.no_props();
    }
    w.bin(filter).u8(options).frame(0x82)
}

/// UNSUBSCRIBE with one topic filter given as raw bytes.
fn unsubscribe_raw(version: Version, packet_id: u16, filter: &[u8]) -> Bytes {
    let mut w = Writer::new().u16(packet_id);
    if version.is_v5() {
        w = w.no_props();
    }
    w.bin(filter).frame(0xA2)
}

/// Connects with `ctx.connect_builder(name)` and returns the CONNACK frame as received.
async fn connect_frame(ctx: &Ctx, name: &str) -> Result<(Client, Frame), String> {
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    client.send(&ctx.connect_builder(name).bytes()).await?;
    let frame = client.expect(kind::CONNACK).await?;
    let connack = packets::parse_connack(&frame, ctx.version)?;
    if connack.code != 0 {
        return Err(format!("CONNACK refused the connection: {frame:?}"));
    }
    Ok((client, frame))
}

fn expect_flags(frame: &Frame, flags: u8) -> CaseResult {
    ensure!(frame.flags == flags, "expected fixed header flags {flags:04b} on this packet, saw {frame:?}");
    Ok(())
}

/// The number of bytes the variable byte integer `value` takes.
fn vbi_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Reads the variable byte integer at the start of `bytes` and checks it uses
/// the fewest bytes; returns its value and length.
fn check_vbi(bytes: &[u8], what: &str) -> Result<(u32, usize), String> {
    let mut value = 0u32;
    for (i, byte) in bytes.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            let len = i + 1;
            if len != vbi_len(value as usize) {
                return Err(format!(
                    "{what}: expected the value {value} in {} byte(s), saw {len}: [{}]",
                    vbi_len(value as usize),
                    hex(&bytes[..len])
                ));
            }
            return Ok((value, len));
        }
    }
    Err(format!("{what}: not a variable byte integer: [{}]", hex(&bytes[..bytes.len().min(4)])))
}

/// Checks the property length at the start of `bytes`, and every variable
/// byte integer inside the properties (Subscription Identifiers), use the
/// fewest bytes: the block must be exactly as long as its minimal encoding.
fn check_props_vbi(bytes: &[u8], what: &str) -> CaseResult {
    let (len, len_bytes) = check_vbi(bytes, &format!("the property length of the {what}"))?;
    let block = Bytes::copy_from_slice(bytes);
    let props = Reader::new(&block).props().map_err(|e| format!("the properties of the {what}: {e}"))?;
    let minimal: usize = props
        .0
        .iter()
        .map(|(id, value)| {
            1 + match value {
                Value::U8(_) => 1,
                Value::U16(_) => 2,
                Value::U32(v) if *id == prop::SUBSCRIPTION_IDENTIFIER => vbi_len(*v as usize),
                Value::U32(_) => 4,
                Value::Str(s) => 2 + s.len(),
                Value::Bin(b) => 2 + b.len(),
                Value::Pair(k, v) => 4 + k.len() + v.len(),
            }
        })
        .sum();
    ensure!(
        minimal == len as usize,
        "expected the properties of the {what} in {minimal} bytes with each Subscription Identifier in the fewest \
         bytes, saw {len}: [{}]",
        hex(&bytes[..(len_bytes + len as usize).min(bytes.len())])
    );
    Ok(())
}

/// Checks the remaining length of a received packet uses the fewest bytes.
fn check_header_vbi(frame: &Frame, what: &str) -> CaseResult {
    let (value, len) = check_vbi(&frame.bytes[1..], &format!("the remaining length of {what}"))?;
    ensure!(value as usize == frame.body.len(), "internal: remaining length {value} vs body {}", frame.body.len());
    ensure!(len + 1 + frame.body.len() == frame.bytes.len(), "internal: header length");
    Ok(())
}
