//! Cases: SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (sections 3.8 to 3.11),
//! subscription options and identifiers (5.0), overlapping subscriptions,
//! topic names, filters and matching (section 4.7), and shared
//! subscriptions (5.0 section 4.8.2).
//!
//! Deliveries are checked with a sentinel: after the messages under test the
//! publisher sends one more that the subscriber surely receives; everything
//! before it (and anything within a short quiet period after it) is what the
//! server delivered.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::case::{Case, CaseResult, Ctx, Failure};
use crate::client::{Client, Event, REPLY_WAIT, SILENCE_WAIT};
use crate::packets::{self, ConnectBuilder, Publish, SubAck, Version};
use crate::wire::{Frame, Props, Value, hex, kind, kind_name, prop};
use crate::{case, ensure};

/// Subscription option bits (5.0 section 3.8.3.1).
const NO_LOCAL: u8 = 0x04;
const RETAIN_AS_PUBLISHED: u8 = 0x08;
const fn retain_handling(value: u8) -> u8 {
    value << 4
}

/// SUBACK codes each version allows (3.1.1 section 3.9.3, 5.0 section 3.9.3).
const SUBACK_CODES_311: &[u8] = &[0x00, 0x01, 0x02, 0x80];
const SUBACK_CODES_5: &[u8] = &[0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];
/// DISCONNECT reasons accepted before the close a Protocol Error requires
/// (4.13.1-1 makes the close a MUST; the DISCONNECT and its reason are a
/// SHOULD, so a server that calls the packet malformed is not failed for it).
const PROTOCOL_ERROR: &[u8] = &[0x81, 0x82];
/// UNSUBACK codes of 5.0 (section 3.11.3).
const UNSUBACK_CODES_5: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
/// UNSUBACK codes a 5.0 server may give a filter it holds no subscription
/// for. 0x11 (No subscription existed) says so; but MQTT-3.11.3-2 only asks
/// for one of the Unsubscribe Reason Codes, and no statement makes 0x11 a
/// MUST, so 0x00 (Success) passes too. An error code (0x80 and above) does not:
/// nothing went wrong.
const UNSUBACK_NOTHING_TO_DELETE: &[u8] = &[0x00, 0x11];

pub fn cases() -> Vec<Case> {
    [
        // SUBSCRIBE / SUBACK.
        case!(
            suback_carries_the_packet_identifier_of_its_subscribe,
            [V311, V5],
            ["MQTT-3.8.4-1", "MQTT-3.8.4-2"],
            |ctx| suback_packet_identifier(ctx)
        ),
        case!(
            suback_has_one_code_per_filter_in_order_and_each_filter_takes_effect,
            [V311],
            ["MQTT-3.8.4-4", "MQTT-3.8.4-5", "MQTT-3.9.3-1", "MQTT-3.9.3-2"],
            |ctx| suback_codes_per_filter(ctx)
        ),
        case!(
            suback_has_one_code_per_filter_in_order_and_each_filter_takes_effect,
            [V5],
            ["MQTT-3.8.4-5", "MQTT-3.8.4-6", "MQTT-3.8.4-7", "MQTT-3.9.3-1", "MQTT-3.9.3-2"],
            |ctx| suback_codes_per_filter(ctx)
        ),
        case!(delivered_qos_is_the_minimum_of_published_and_granted_qos, [V311], ["MQTT-3.8.4-6"], |ctx| {
            delivered_qos_is_minimum(ctx)
        }),
        case!(delivered_qos_is_the_minimum_of_published_and_granted_qos, [V5], ["MQTT-3.8.4-8"], |ctx| {
            delivered_qos_is_minimum(ctx)
        }),
        case!(
            resubscribing_to_the_same_filter_replaces_the_subscription_and_resends_retained,
            [V311],
            ["MQTT-3.8.4-3"],
            |ctx| resubscribe_replaces(ctx)
        ),
        case!(
            resubscribing_to_the_same_filter_replaces_the_subscription_and_resends_retained,
            [V5],
            ["MQTT-3.8.4-3", "MQTT-3.8.4-4", "MQTT-3.3.1-9"],
            |ctx| resubscribe_replaces(ctx)
        ),
        case!(resubscribing_does_not_interrupt_the_flow_of_publications, [V311], ["MQTT-3.8.4-3"], |ctx| {
            resubscribe_keeps_flow(ctx)
        }),
        case!(
            resubscribing_does_not_interrupt_the_flow_of_publications,
            [V5],
            ["MQTT-3.8.4-3", "MQTT-3.8.4-4"],
            |ctx| resubscribe_keeps_flow(ctx)
        ),
        case!(subscribe_with_reserved_fixed_header_flags_is_malformed, [V311, V5], ["MQTT-3.8.1-1"], |ctx| {
            subscribe_reserved_flags(ctx)
        }),
        case!(subscription_options_with_reserved_bits_or_qos_3_close_the_connection, [V311], ["MQTT-4.8.0-1"], |ctx| {
            options_reserved_311(ctx)
        }),
        case!(subscription_options_with_reserved_bits_set_are_malformed, [V5], ["MQTT-3.8.3-5"], |ctx| {
            options_reserved_5(ctx)
        }),
        case!(
            subscription_options_with_qos_3_or_retain_handling_3_are_a_protocol_error,
            [V5],
            ["MQTT-4.13.1-1"],
            |ctx| options_value_3(ctx)
        ),
        case!(subscribe_without_topic_filters_closes_the_connection, [V311], ["MQTT-4.8.0-1"], |ctx| {
            subscribe_without_filters(ctx)
        }),
        case!(subscribe_without_topic_filters_closes_the_connection, [V5], ["MQTT-4.13.1-1"], |ctx| {
            subscribe_without_filters(ctx)
        }),
        case!(topic_filters_with_misplaced_wildcards_are_refused, [V311], ["MQTT-3.8.4-5", "MQTT-3.9.3-2"], |ctx| {
            misplaced_wildcards(ctx)
        }),
        case!(topic_filters_with_misplaced_wildcards_are_refused, [V5], ["MQTT-3.8.4-7", "MQTT-3.9.3-2"], |ctx| {
            misplaced_wildcards(ctx)
        }),
        case!(empty_topic_filter_is_refused, [V311, V5], ["MQTT-4.7.3-1"], |ctx| empty_filter(ctx)),
        case!(
            topic_filter_with_a_null_character_closes_the_connection,
            [V311],
            ["MQTT-4.7.3-2", "MQTT-1.5.3-2"],
            |ctx| null_in_filter(ctx)
        ),
        case!(
            topic_filter_with_a_null_character_closes_the_connection,
            [V5],
            ["MQTT-4.7.3-2", "MQTT-1.5.4-2"],
            |ctx| null_in_filter(ctx)
        ),
        case!(
            wildcard_filters_are_refused_when_the_operator_says_they_are_unsupported,
            [V311],
            ["MQTT-3.8.3-2"],
            |ctx| wildcards_unavailable(ctx)
        ),
        case!(
            wildcard_filters_are_refused_when_wildcards_are_not_available,
            [V5],
            ["MQTT-3.8.4-7", "MQTT-3.9.3-2"],
            |ctx| wildcards_unavailable(ctx)
        ),
        case!(shared_subscriptions_are_refused_when_not_available, [V5], ["MQTT-3.8.4-7", "MQTT-3.9.3-2"], |ctx| {
            shared_unavailable(ctx)
        }),
        case!(subscription_identifiers_are_refused_when_not_available, [V5], ["MQTT-3.8.4-7", "MQTT-3.9.3-2"], |ctx| {
            subscription_identifiers_unavailable(ctx)
        }),
        case!(
            suback_and_unsuback_leave_out_properties_beyond_the_maximum_packet_size,
            [V5],
            ["MQTT-3.9.2-1", "MQTT-3.9.2-2", "MQTT-3.11.2-1", "MQTT-3.11.2-2"],
            |ctx| acks_within_maximum_packet_size(ctx)
        ),
        // Subscription options (5.0).
        case!(retain_handling_1_sends_retained_messages_only_for_a_new_subscription, [V5], ["MQTT-3.3.1-10"], |ctx| {
            retain_handling_1(ctx)
        }),
        case!(retain_handling_2_sends_no_retained_messages_on_subscribe, [V5], ["MQTT-3.3.1-11"], |ctx| {
            retain_handling_2(ctx)
        }),
        case!(retain_as_published_1_forwards_the_retain_flag_as_received, [V5], ["MQTT-3.3.1-13"], |ctx| {
            retain_as_published(ctx)
        }),
        case!(messages_forwarded_to_an_established_subscription_have_retain_0, [V311], ["MQTT-3.3.1-9"], |ctx| {
            forwarded_retain_cleared(ctx)
        }),
        case!(messages_forwarded_to_an_established_subscription_have_retain_0, [V5], ["MQTT-3.3.1-12"], |ctx| {
            forwarded_retain_cleared(ctx)
        }),
        case!(no_local_subscription_does_not_receive_its_own_publications, [V5], ["MQTT-3.8.3-3"], |ctx| {
            no_local(ctx)
        }),
        // Subscription identifiers (5.0).
        case!(
            delivered_publish_carries_the_subscription_identifier_of_its_subscription,
            [V5],
            ["MQTT-3.3.4-3"],
            |ctx| subscription_identifier_delivered(ctx)
        ),
        case!(
            overlapping_subscriptions_deliver_every_matching_subscription_identifier,
            [V5],
            ["MQTT-3.3.4-3", "MQTT-3.3.4-4", "MQTT-3.3.4-5"],
            |ctx| overlapping_identifiers(ctx)
        ),
        case!(resubscribing_replaces_the_subscription_identifier, [V5], ["MQTT-3.8.4-3"], |ctx| {
            resubscribe_replaces_identifier(ctx)
        }),
        case!(subscription_identifier_0_is_a_protocol_error, [V5], ["MQTT-4.13.1-1"], |ctx| {
            subscription_identifier_zero(ctx)
        }),
        // Overlapping subscriptions.
        case!(overlapping_subscriptions_deliver_at_the_maximum_granted_qos, [V311], ["MQTT-3.3.5-1"], |ctx| {
            overlapping_qos(ctx)
        }),
        case!(overlapping_subscriptions_deliver_at_the_maximum_granted_qos, [V5], ["MQTT-3.3.4-2"], |ctx| {
            overlapping_qos(ctx)
        }),
        // UNSUBSCRIBE / UNSUBACK.
        case!(unsuback_carries_the_packet_identifier_of_its_unsubscribe, [V311], ["MQTT-3.10.4-4"], |ctx| {
            unsuback_packet_identifier(ctx)
        }),
        case!(
            unsuback_carries_the_packet_identifier_of_its_unsubscribe,
            [V5],
            ["MQTT-3.10.4-4", "MQTT-3.10.4-5", "MQTT-3.11.3-2"],
            |ctx| unsuback_packet_identifier(ctx)
        ),
        case!(unsubscribe_without_a_matching_subscription_still_gets_unsuback, [V311], ["MQTT-3.10.4-5"], |ctx| {
            unsubscribe_unknown(ctx)
        }),
        case!(
            unsubscribe_without_a_matching_subscription_still_gets_unsuback,
            [V5],
            ["MQTT-3.10.4-5", "MQTT-3.11.3-2"],
            |ctx| unsubscribe_unknown(ctx)
        ),
        case!(unsubscribe_stops_delivery_for_that_filter, [V311, V5], ["MQTT-3.10.4-1", "MQTT-3.10.4-2"], |ctx| {
            unsubscribe_stops_delivery(ctx)
        }),
        case!(
            unsubscribe_compares_filters_character_by_character,
            [V311, V5],
            ["MQTT-3.10.4-1", "MQTT-3.10.4-2"],
            |ctx| unsubscribe_exact_match(ctx)
        ),
        case!(unsubscribe_with_several_filters_gets_one_unsuback, [V311], ["MQTT-3.10.4-6"], |ctx| {
            unsubscribe_several(ctx)
        }),
        case!(
            unsubscribe_with_several_filters_gets_one_unsuback,
            [V5],
            ["MQTT-3.10.4-6", "MQTT-3.11.3-1", "MQTT-3.11.3-2"],
            |ctx| unsubscribe_several(ctx)
        ),
        case!(unsubscribe_completes_qos_2_delivery_already_started, [V311, V5], ["MQTT-3.10.4-3"], |ctx| {
            unsubscribe_completes_qos2(ctx)
        }),
        case!(unsubscribe_with_reserved_fixed_header_flags_is_malformed, [V311, V5], ["MQTT-3.10.1-1"], |ctx| {
            unsubscribe_reserved_flags(ctx)
        }),
        // Topic names, filters and matching (4.7).
        case!(multi_level_wildcard_matches_the_parent_level_and_all_below, [V311, V5], ["MQTT-3.3.2-3"], |ctx| {
            multi_level_wildcard(ctx)
        }),
        case!(
            single_level_wildcard_matches_exactly_one_level_including_empty_ones,
            [V311, V5],
            ["MQTT-3.3.2-3"],
            |ctx| single_level_wildcard(ctx)
        ),
        case!(
            topic_level_separators_and_empty_levels_are_significant_in_matching,
            [V311, V5],
            ["MQTT-3.3.2-3"],
            |ctx| separators_significant(ctx)
        ),
        case!(
            matching_is_case_sensitive_and_does_not_normalize_unicode,
            [V311, V5],
            ["MQTT-3.3.2-3", "MQTT-4.7.3-4"],
            |ctx| case_sensitive_no_normalization(ctx)
        ),
        case!(filters_starting_with_a_wildcard_do_not_match_dollar_topics, [V311, V5], ["MQTT-4.7.2-1"], |ctx| {
            dollar_topics(ctx)
        }),
        case!(
            publish_to_a_topic_name_containing_wildcards_is_refused,
            [V311],
            ["MQTT-4.7.1-1", "MQTT-3.3.2-2"],
            |ctx| wildcard_topic_name(ctx)
        ),
        case!(publish_to_a_topic_name_containing_wildcards_is_refused, [V5], ["MQTT-4.7.0-1", "MQTT-3.3.2-2"], |ctx| {
            wildcard_topic_name(ctx)
        }),
        // Shared subscriptions (5.0 section 4.8.2).
        case!(shared_subscription_gives_each_message_to_one_member_of_each_group, [V5], ["MQTT-4.8.2-3"], |ctx| {
            shared_one_member_per_group(ctx)
        }),
        // Section 4.8.2 says so in a bulleted list without a statement number.
        case!(shared_subscription_does_not_receive_retained_messages, [V5], [], |ctx| shared_no_retained(ctx)),
        case!(no_local_on_a_shared_subscription_is_a_protocol_error, [V5], ["MQTT-4.13.1-1"], |ctx| {
            shared_no_local(ctx)
        }),
        case!(shared_message_refused_with_a_negative_puback_goes_to_no_other_member, [V5], ["MQTT-4.8.2-6"], |ctx| {
            shared_negative_puback(ctx)
        }),
        case!(shared_message_is_not_sent_to_another_member_when_the_session_ends, [V5], ["MQTT-4.8.2-5"], |ctx| {
            shared_session_ends(ctx)
        }),
        case!(shared_qos_2_delivery_is_completed_to_the_same_member_after_reconnect, [V5], ["MQTT-4.8.2-4"], |ctx| {
            shared_qos2_reconnect(ctx)
        }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

// ---------------------------------------------------------------------------
// Helpers.

/// Like `ensure!`, for helpers that return `Result<_, String>`.
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn is_failure(code: u8) -> bool {
    code >= 0x80
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The subscription identifiers a PUBLISH carries.
fn sub_ids(publish: &Publish) -> Vec<u32> {
    publish
        .props
        .all(prop::SUBSCRIPTION_IDENTIFIER)
        .into_iter()
        .filter_map(|v| if let Value::U32(id) = v { Some(*id) } else { None })
        .collect()
}

fn describe_one(p: &Publish) -> String {
    let ids = sub_ids(p);
    format!(
        "{}(qos {}, retain {}, \"{}\"{})",
        p.topic,
        p.qos,
        u8::from(p.retain),
        text(&p.payload),
        if ids.is_empty() { String::new() } else { format!(", subscription ids {ids:?}") }
    )
}

fn describe(publishes: &[Publish]) -> String {
    if publishes.is_empty() {
        return "nothing".into();
    }
    publishes.iter().map(describe_one).collect::<Vec<_>>().join(", ")
}

fn reason_text(reason: Option<u8>) -> String {
    reason.map(|r| format!(" (DISCONNECT reason 0x{r:02x})")).unwrap_or_default()
}

/// Acknowledges a PUBLISH the server sent, as a subscriber must.
async fn ack_incoming(c: &mut Client, p: &Publish) -> Result<(), String> {
    match (p.qos, p.packet_id) {
        (1, Some(id)) => c.send(&packets::ack(kind::PUBACK, id)).await,
        (2, Some(id)) => c.send(&packets::ack(kind::PUBREC, id)).await,
        _ => Ok(()),
    }
}

/// What ended a wait for a reply.
enum Reply {
    Packet(Frame),
    /// The server closed the connection, after a DISCONNECT with this reason (5.0) or none.
    Closed(Option<u8>),
}

/// Waits for a packet of kind `expected`. PUBLISHes that arrive first are
/// acknowledged and kept in `seen`; PUBREL is answered with PUBCOMP.
async fn wait_for(c: &mut Client, expected: u8, seen: &mut Vec<Publish>) -> Result<Reply, String> {
    let deadline = Instant::now() + REPLY_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.recv(left).await? {
            Event::Frame(f) if f.kind == expected => return Ok(Reply::Packet(f)),
            Event::Frame(f) if f.kind == kind::PUBLISH => {
                let p = packets::parse_publish(&f, c.version)?;
                ack_incoming(c, &p).await?;
                seen.push(p);
            }
            Event::Frame(f) if f.kind == kind::PUBREL => {
                let id = packets::parse_ack(&f, c.version)?.packet_id;
                c.send(&packets::ack(kind::PUBCOMP, id)).await?;
            }
            Event::Frame(f) if f.kind == kind::DISCONNECT && c.version.is_v5() => {
                let reason = packets::parse_disconnect(&f)?.reason;
                let after = c.expect_closed(REPLY_WAIT).await?;
                check!(after.is_empty(), "expected the close after DISCONNECT {f:?}, got {after:?} first");
                return Ok(Reply::Closed(Some(reason)));
            }
            Event::Frame(f) => return Err(format!("expected {}, got {f:?}", kind_name(expected))),
            Event::Closed => return Ok(Reply::Closed(None)),
            Event::Silent => {
                return Err(format!("expected {}, but nothing arrived within {REPLY_WAIT:?}", kind_name(expected)));
            }
        }
    }
}

/// Checks a SUBACK: same packet identifier, one code per filter, codes this version allows.
fn check_suback(frame: &Frame, version: Version, pid: u16, filters: usize) -> Result<SubAck, String> {
    let ack = packets::parse_suback(frame, version)?;
    check!(
        ack.packet_id == pid,
        "expected SUBACK with the SUBSCRIBE's packet identifier 0x{pid:04x}, saw 0x{:04x}: {frame:?}",
        ack.packet_id
    );
    check!(
        ack.codes.len() == filters,
        "expected {filters} SUBACK code(s), one per topic filter, saw {}: {frame:?}",
        ack.codes.len()
    );
    let allowed = if version.is_v5() { SUBACK_CODES_5 } else { SUBACK_CODES_311 };
    for code in &ack.codes {
        check!(allowed.contains(code), "SUBACK code 0x{code:02x} is not one the standard allows: {frame:?}");
    }
    Ok(ack)
}

/// Sends SUBSCRIBE and returns its checked SUBACK, with any PUBLISH that came before it.
async fn subscribe_props(
    c: &mut Client,
    pid: u16,
    filters: &[(&str, u8)],
    props: Props,
) -> Result<(SubAck, Vec<Publish>), String> {
    let version = c.version;
    c.send(&packets::subscribe(version, pid, filters, props)).await?;
    let mut seen = Vec::new();
    match wait_for(c, kind::SUBACK, &mut seen).await? {
        Reply::Packet(frame) => Ok((check_suback(&frame, version, pid, filters.len())?, seen)),
        Reply::Closed(reason) => {
            Err(format!("expected SUBACK for {filters:?}, but the server closed the connection{}", reason_text(reason)))
        }
    }
}

async fn subscribe(c: &mut Client, pid: u16, filters: &[(&str, u8)]) -> Result<(SubAck, Vec<Publish>), String> {
    subscribe_props(c, pid, filters, Props::new()).await
}

/// Subscribes and fails unless every filter was granted.
async fn subscribe_granted(c: &mut Client, pid: u16, filters: &[(&str, u8)]) -> Result<Vec<u8>, String> {
    let (ack, _) = subscribe(c, pid, filters).await?;
    check!(
        !ack.codes.iter().copied().any(is_failure),
        "expected the server to grant {filters:?}, but SUBACK codes were {}",
        hex(&ack.codes)
    );
    Ok(ack.codes)
}

/// Sends UNSUBSCRIBE and returns its checked UNSUBACK (same packet
/// identifier; for 3.1.1 no payload, for 5.0 one allowed code per filter).
async fn unsubscribe(c: &mut Client, pid: u16, filters: &[&str]) -> Result<SubAck, String> {
    let version = c.version;
    c.send(&packets::unsubscribe(version, pid, filters)).await?;
    let mut seen = Vec::new();
    let frame = match wait_for(c, kind::UNSUBACK, &mut seen).await? {
        Reply::Packet(frame) => frame,
        Reply::Closed(reason) => {
            return Err(format!(
                "expected UNSUBACK for {filters:?}, but the server closed the connection{}",
                reason_text(reason)
            ));
        }
    };
    let ack = packets::parse_suback(&frame, version)?;
    check!(
        ack.packet_id == pid,
        "expected UNSUBACK with the UNSUBSCRIBE's packet identifier 0x{pid:04x}, saw 0x{:04x}: {frame:?}",
        ack.packet_id
    );
    if version.is_v5() {
        check!(
            ack.codes.len() == filters.len(),
            "expected {} UNSUBACK reason code(s), one per topic filter, saw {}: {frame:?}",
            filters.len(),
            ack.codes.len()
        );
        for code in &ack.codes {
            check!(
                UNSUBACK_CODES_5.contains(code),
                "UNSUBACK code 0x{code:02x} is not an Unsubscribe Reason Code: {frame:?}"
            );
        }
    } else {
        check!(frame.body.len() == 2, "expected a 3.1.1 UNSUBACK of remaining length 2, saw {frame:?}");
    }
    Ok(ack)
}

/// Publishes and waits until the server has taken the message (QoS 0: a
/// PINGREQ round trip; QoS 1: PUBACK; QoS 2: PUBREC, PUBREL, PUBCOMP).
/// Returns the PUBLISHes this connection received meanwhile (acknowledged).
async fn publish_props(
    c: &mut Client,
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    props: Props,
) -> Result<Vec<Publish>, String> {
    let version = c.version;
    let pid = 0x7001;
    c.send(&packets::publish(version, topic, payload, qos, retain, pid, props)).await?;
    let mut seen = Vec::new();
    let (wait, what) = match qos {
        0 => {
            c.send(&packets::pingreq()).await?;
            (kind::PINGRESP, "PINGRESP")
        }
        1 => (kind::PUBACK, "PUBACK"),
        _ => (kind::PUBREC, "PUBREC"),
    };
    let frame = match wait_for(c, wait, &mut seen).await? {
        Reply::Packet(frame) => frame,
        Reply::Closed(reason) => {
            return Err(format!(
                "expected {what} after publishing to {topic}, but the server closed the connection{}",
                reason_text(reason)
            ));
        }
    };
    if qos == 0 {
        return Ok(seen);
    }
    let ack = packets::parse_ack(&frame, version)?;
    check!(ack.packet_id == pid, "expected {what} for packet identifier 0x{pid:04x}, saw {frame:?}");
    check!(!is_failure(ack.reason), "the server refused the PUBLISH to {topic}: {frame:?}");
    if qos == 2 {
        c.send(&packets::ack(kind::PUBREL, pid)).await?;
        match wait_for(c, kind::PUBCOMP, &mut seen).await? {
            Reply::Packet(_) => {}
            Reply::Closed(reason) => {
                return Err(format!("expected PUBCOMP, but the server closed the connection{}", reason_text(reason)));
            }
        }
    }
    Ok(seen)
}

async fn publish(c: &mut Client, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Result<Vec<Publish>, String> {
    publish_props(c, topic, payload, qos, retain, Props::new()).await
}

/// The next PUBLISH (acknowledged), answering PUBREL on the way.
async fn next_publish(c: &mut Client) -> Result<Publish, String> {
    let mut seen = Vec::new();
    match wait_for(c, kind::PUBLISH, &mut seen).await? {
        Reply::Packet(frame) => {
            let p = packets::parse_publish(&frame, c.version)?;
            ack_incoming(c, &p).await?;
            Ok(p)
        }
        Reply::Closed(reason) => {
            Err(format!("expected a PUBLISH, but the server closed the connection{}", reason_text(reason)))
        }
    }
}

/// Receives PUBLISHes (acknowledging them) until one satisfies `last`, then
/// any more that arrive within the quiet period; returns them all, the
/// PUBLISHes in `already` first. Any other packet fails.
async fn collect_until(
    c: &mut Client,
    already: Vec<Publish>,
    last: impl Fn(&Publish) -> bool,
) -> Result<Vec<Publish>, String> {
    let mut got = already;
    let mut done = got.iter().any(&last);
    let deadline = Instant::now() + REPLY_WAIT;
    loop {
        let wait = if done { SILENCE_WAIT } else { deadline.saturating_duration_since(Instant::now()) };
        match c.recv(wait).await? {
            Event::Frame(f) if f.kind == kind::PUBLISH => {
                let p = packets::parse_publish(&f, c.version)?;
                ack_incoming(c, &p).await?;
                done = done || last(&p);
                got.push(p);
            }
            Event::Frame(f) if f.kind == kind::PUBREL => {
                let id = packets::parse_ack(&f, c.version)?.packet_id;
                c.send(&packets::ack(kind::PUBCOMP, id)).await?;
            }
            Event::Frame(f) => return Err(format!("expected only PUBLISH packets, got {f:?}")),
            Event::Closed => {
                return Err(format!(
                    "the server closed the connection while messages were expected (received so far: {})",
                    describe(&got)
                ));
            }
            Event::Silent if done => return Ok(got),
            Event::Silent => {
                return Err(format!(
                    "the last expected message did not arrive within {REPLY_WAIT:?} (received: {})",
                    describe(&got)
                ));
            }
        }
    }
}

/// Receives PUBLISHes (acknowledging them) until nothing arrives for `quiet`.
async fn drain(c: &mut Client, quiet: Duration) -> Result<Vec<Publish>, String> {
    let mut got = Vec::new();
    loop {
        match c.recv(quiet).await? {
            Event::Frame(f) if f.kind == kind::PUBLISH => {
                let p = packets::parse_publish(&f, c.version)?;
                ack_incoming(c, &p).await?;
                got.push(p);
            }
            Event::Frame(f) if f.kind == kind::PUBREL => {
                let id = packets::parse_ack(&f, c.version)?.packet_id;
                c.send(&packets::ack(kind::PUBCOMP, id)).await?;
            }
            Event::Frame(f) => return Err(format!("expected only PUBLISH packets, got {f:?}")),
            Event::Closed => return Err(format!("the server closed the connection (received: {})", describe(&got))),
            Event::Silent => return Ok(got),
        }
    }
}

/// The retained message for `topic`: one of `early` (sent before SUBACK) or the next PUBLISH.
async fn retained_message(c: &mut Client, early: Vec<Publish>, topic: &str) -> Result<Publish, String> {
    let mut early = early.into_iter();
    let p = match early.next() {
        Some(p) => p,
        None => next_publish(c).await?,
    };
    let rest: Vec<Publish> = early.collect();
    check!(rest.is_empty(), "expected one retained message, got also {}", describe(&rest));
    check!(p.topic == topic, "expected the retained message of {topic}, got {}", describe_one(&p));
    Ok(p)
}

/// Removes retained messages (best effort, for tidiness).
async fn clear_retained(c: &mut Client, topics: &[&str]) {
    for topic in topics {
        let _ = publish(c, topic, b"", 1, true).await;
    }
}

/// Sends bytes that must make the server close the connection; returns the
/// DISCONNECT reason (5.0) if one came and is in `allowed`.
async fn expect_refusal(c: &mut Client, bytes: &[u8], allowed: &[u8], what: &str) -> Result<Option<u8>, String> {
    c.send(bytes).await?;
    let reason = c.expect_disconnected().await.map_err(|e| format!("{what}: {e} (sent {})", hex(bytes)))?;
    if let Some(r) = reason {
        check!(
            allowed.contains(&r),
            "{what}: expected a close, after at most a DISCONNECT with reason {}; saw DISCONNECT reason 0x{r:02x}",
            allowed.iter().map(|a| format!("0x{a:02x}")).collect::<Vec<_>>().join(" or ")
        );
    }
    Ok(reason)
}

/// The highest QoS the publisher may use with this target.
fn top_qos(ctx: &Ctx) -> u8 {
    ctx.caps.maximum_qos.min(2)
}

// ---------------------------------------------------------------------------
// SUBSCRIBE / SUBACK.

async fn suback_packet_identifier(ctx: Ctx) -> CaseResult {
    let (mut c, _) = ctx.connect("sub").await?;
    let topic = ctx.topic("pid");
    for pid in [0x1234u16, 0xBEEF, 0x0001, 0x8000] {
        c.send(&packets::subscribe(ctx.version, pid, &[(&topic, 1)], Props::new())).await?;
        let frame = c.expect(kind::SUBACK).await?;
        let ack = packets::parse_suback(&frame, ctx.version)?;
        ensure!(
            ack.packet_id == pid,
            "expected SUBACK with packet identifier 0x{pid:04x}, saw 0x{:04x}: {frame:?}",
            ack.packet_id
        );
    }
    Ok(())
}

async fn suback_codes_per_filter(ctx: Ctx) -> CaseResult {
    let (a, b, c, end) = (ctx.topic("a"), ctx.topic("b"), ctx.topic("c"), ctx.topic("end"));
    let requested = [(a.as_str(), 2u8), (b.as_str(), 0), (c.as_str(), 1), (end.as_str(), 0)];
    let (mut sub, _) = ctx.connect("sub").await?;
    let (ack, _) = subscribe(&mut sub, 0x0A0B, &requested).await?;
    for ((filter, want), code) in requested.iter().zip(&ack.codes) {
        ensure!(
            is_failure(*code) || code <= want,
            "SUBACK code for {filter} (requested QoS {want}) must be a QoS no higher than requested or a failure; codes were {}",
            hex(&ack.codes)
        );
    }
    ensure!(!is_failure(ack.codes[3]), "expected the server to grant {end}; SUBACK codes were {}", hex(&ack.codes));
    // Each filter of the one SUBSCRIBE is in effect with its own granted QoS.
    let qos = top_qos(&ctx);
    let (mut publisher, _) = ctx.connect("pub").await?;
    for topic in [&a, &b, &c] {
        publish(&mut publisher, topic, b"m", qos, false).await?;
    }
    publish(&mut publisher, &end, b"end", 0, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.topic == end).await?;
    for ((filter, _), code) in requested[..3].iter().zip(&ack.codes) {
        let copies: Vec<&Publish> = got.iter().filter(|p| p.topic == *filter).collect();
        if is_failure(*code) {
            ensure!(copies.is_empty(), "{filter} was refused (0x{code:02x}) yet messages arrived: {}", describe(&got));
            continue;
        }
        let expected = qos.min(*code);
        ensure!(
            !copies.is_empty(),
            "expected the QoS {qos} message on {filter} (granted QoS {code}) to arrive; received {}",
            describe(&got)
        );
        ensure!(
            copies.iter().all(|p| p.qos == expected),
            "expected the message on {filter} at QoS {expected} (published {qos}, granted {code}); received {}",
            describe(&got)
        );
    }
    Ok(())
}

async fn delivered_qos_is_minimum(ctx: Ctx) -> CaseResult {
    let topics = [ctx.topic("g0"), ctx.topic("g1"), ctx.topic("g2")];
    let end = ctx.topic("end");
    let (mut sub, _) = ctx.connect("sub").await?;
    let filters = [(topics[0].as_str(), 0u8), (topics[1].as_str(), 1), (topics[2].as_str(), 2), (end.as_str(), 0)];
    let granted = subscribe_granted(&mut sub, 1, &filters).await?;
    let (mut publisher, _) = ctx.connect("pub").await?;
    let top = top_qos(&ctx);
    for topic in &topics {
        for qos in 0..=top {
            publish(&mut publisher, topic, format!("published at {qos}").as_bytes(), qos, false).await?;
        }
    }
    publish(&mut publisher, &end, b"end", 0, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.topic == end).await?;
    for (topic, g) in topics.iter().zip(&granted) {
        for qos in 0..=top {
            let payload = format!("published at {qos}");
            let copies: Vec<&Publish> =
                got.iter().filter(|p| &p.topic == topic && p.payload.as_ref() == payload.as_bytes()).collect();
            let expected = qos.min(*g);
            ensure!(
                !copies.is_empty(),
                "expected \"{payload}\" on {topic} (granted QoS {g}); received {}",
                describe(&got)
            );
            ensure!(
                copies.iter().all(|p| p.qos == expected),
                "expected \"{payload}\" on {topic} at QoS {expected} = min(published {qos}, granted {g}); received {}",
                describe(&got)
            );
        }
    }
    Ok(())
}

async fn resubscribe_replaces(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    let topic = ctx.topic("r");
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &topic, b"kept", 1, true).await?;
    let result: CaseResult = async {
        let (mut sub, _) = ctx.connect("sub").await?;
        // Retain Handling 0 (the options' bits 4-5 are 0): retained messages on every subscribe.
        let (_, early) = subscribe(&mut sub, 1, &[(&topic, 1)]).await?;
        let first = retained_message(&mut sub, early, &topic).await?;
        ensure!(
            first.retain && first.payload.as_ref() == b"kept",
            "expected the retained message \"kept\" with RETAIN 1 on the first subscribe, got {}",
            describe_one(&first)
        );
        let (ack, early) = subscribe(&mut sub, 2, &[(&topic, 0)]).await?;
        ensure!(ack.codes == [0], "expected the replacing subscription granted at QoS 0, SUBACK codes {}", hex(&ack.codes));
        let again = retained_message(&mut sub, early, &topic).await?;
        ensure!(
            again.retain && again.payload.as_ref() == b"kept",
            "expected the retained message re-sent with RETAIN 1 on the repeated subscribe, got {}",
            describe_one(&again)
        );
        publish(&mut publisher, &topic, b"live", 1, false).await?;
        publish(&mut publisher, &topic, b"end", 0, false).await?;
        let got = collect_until(&mut sub, Vec::new(), |p| p.payload.as_ref() == b"end").await?;
        let live: Vec<&Publish> = got.iter().filter(|p| p.payload.as_ref() == b"live").collect();
        ensure!(
            live.len() == 1,
            "expected one copy of \"live\" (the repeated subscribe replaces the subscription, it does not add one); received {}",
            describe(&got)
        );
        ensure!(
            live[0].qos == 0,
            "expected \"live\" at QoS 0, the replacing subscription's maximum QoS; received {}",
            describe(&got)
        );
        let ends = got.iter().filter(|p| p.payload.as_ref() == b"end").count();
        ensure!(ends == 1 && got.len() == 2, "expected only \"live\" and \"end\", once each; received {}", describe(&got));
        Ok(())
    }
    .await;
    clear_retained(&mut publisher, &[&topic]).await;
    result
}

async fn resubscribe_keeps_flow(ctx: Ctx) -> CaseResult {
    const MESSAGES: usize = 60;
    const RESUBSCRIBES: u16 = 8;
    let topic = ctx.topic("flow");
    let (mut sub, _) = ctx.connect("sub").await?;
    subscribe_granted(&mut sub, 1, &[(&topic, 1)]).await?;
    let (mut publisher, _) = ctx.connect("pub").await?;
    let qos = top_qos(&ctx).min(1);
    let t = topic.clone();
    let task = tokio::spawn(async move {
        for i in 0..MESSAGES {
            publish(&mut publisher, &t, format!("n{i}").as_bytes(), qos, false).await?;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        publish(&mut publisher, &t, b"end", qos, false).await?;
        Ok::<(), String>(())
    });
    // Replace the subscription again and again while the messages flow.
    for k in 0..RESUBSCRIBES {
        sub.send(&packets::subscribe(ctx.version, 10 + k, &[(&topic, 1)], Props::new())).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut got = Vec::new();
    let mut subacks = 0;
    let mut acked = BTreeSet::new();
    let mut ended = false;
    let deadline = Instant::now() + REPLY_WAIT;
    while !(ended && subacks == RESUBSCRIBES) {
        let left = deadline.saturating_duration_since(Instant::now());
        match sub.recv(left).await? {
            Event::Frame(f) if f.kind == kind::PUBLISH => {
                let p = packets::parse_publish(&f, ctx.version)?;
                ack_incoming(&mut sub, &p).await?;
                ended = ended || p.payload.as_ref() == b"end";
                got.push(p);
            }
            Event::Frame(f) if f.kind == kind::SUBACK => {
                let pid = packets::parse_suback(&f, ctx.version)?.packet_id;
                ensure!(
                    (10..10 + RESUBSCRIBES).contains(&pid) && acked.insert(pid),
                    "expected one SUBACK for each of the packet identifiers 10 to {}, saw {f:?}",
                    9 + RESUBSCRIBES
                );
                let ack = check_suback(&f, ctx.version, pid, 1)?;
                ensure!(!is_failure(ack.codes[0]), "expected the repeated subscription granted, saw {f:?}");
                subacks += 1;
            }
            Event::Frame(f) => return Err(format!("expected PUBLISH or SUBACK, got {f:?}").into()),
            Event::Closed => return Err("the server closed the connection".into()),
            Event::Silent => {
                return Err(format!(
                    "expected {RESUBSCRIBES} SUBACKs and the last message; saw {subacks} SUBACKs and {}",
                    describe(&got)
                )
                .into());
            }
        }
    }
    task.await.map_err(|e| format!("publisher task failed: {e}"))??;
    let missing: Vec<usize> =
        (0..MESSAGES).filter(|i| !got.iter().any(|p| p.payload.as_ref() == format!("n{i}").as_bytes())).collect();
    ensure!(
        missing.is_empty(),
        "messages published while the subscription was being replaced were lost: n{missing:?} never arrived"
    );
    Ok(())
}

async fn subscribe_reserved_flags(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("f");
    for (i, first) in [0x80u8, 0x83, 0x8A, 0x86].into_iter().enumerate() {
        let (mut c, _) = ctx.connect(&format!("flags{i}")).await?;
        let mut bytes = packets::subscribe(ctx.version, 1, &[(&topic, 0)], Props::new()).to_vec();
        bytes[0] = first;
        expect_refusal(&mut c, &bytes, &[0x81], &format!("SUBSCRIBE with first byte 0x{first:02x}")).await?;
    }
    Ok(())
}

async fn options_reserved_311(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("o");
    for (i, options) in [0x03u8, 0x05, 0x41, 0x81, 0x09].into_iter().enumerate() {
        let (mut c, _) = ctx.connect(&format!("opt{i}")).await?;
        let bytes = packets::subscribe(ctx.version, 1, &[(&topic, options)], Props::new());
        expect_refusal(&mut c, &bytes, &[], &format!("SUBSCRIBE with requested QoS byte 0x{options:02x}")).await?;
    }
    Ok(())
}

async fn options_reserved_5(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("o");
    for (i, options) in [0x41u8, 0x81, 0xC1].into_iter().enumerate() {
        let (mut c, _) = ctx.connect(&format!("opt{i}")).await?;
        let bytes = packets::subscribe(ctx.version, 1, &[(&topic, options)], Props::new());
        expect_refusal(&mut c, &bytes, &[0x81], &format!("SUBSCRIBE with options byte 0x{options:02x}")).await?;
    }
    Ok(())
}

async fn options_value_3(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("o");
    for (i, options) in [0x03u8, 0x31].into_iter().enumerate() {
        let (mut c, _) = ctx.connect(&format!("opt{i}")).await?;
        let bytes = packets::subscribe(ctx.version, 1, &[(&topic, options)], Props::new());
        expect_refusal(&mut c, &bytes, PROTOCOL_ERROR, &format!("SUBSCRIBE with options byte 0x{options:02x}")).await?;
    }
    Ok(())
}

async fn subscribe_without_filters(ctx: Ctx) -> CaseResult {
    let (mut c, _) = ctx.connect("empty").await?;
    let bytes = packets::subscribe(ctx.version, 1, &[], Props::new());
    expect_refusal(&mut c, &bytes, PROTOCOL_ERROR, "SUBSCRIBE without any topic filter").await?;
    let (mut c, _) = ctx.connect("empty2").await?;
    let bytes = packets::unsubscribe(ctx.version, 2, &[]);
    expect_refusal(&mut c, &bytes, PROTOCOL_ERROR, "UNSUBSCRIBE without any topic filter").await?;
    Ok(())
}

/// Subscribes to a valid filter and `bad` in one SUBACK; the server must
/// refuse `bad`, either with a failure code in the SUBACK (the valid filter
/// being handled as usual) or, where `close_allowed`, by closing the connection.
async fn refuses_filter(ctx: &Ctx, name: &str, bad: &str, close_reasons: &[u8], close_allowed: bool) -> CaseResult {
    let good = ctx.topic("good");
    let (mut c, _) = ctx.connect(name).await?;
    let filters = [(good.as_str(), 1u8), (bad, 1u8)];
    c.send(&packets::subscribe(ctx.version, 7, &filters, Props::new())).await?;
    let mut seen = Vec::new();
    match wait_for(&mut c, kind::SUBACK, &mut seen).await? {
        Reply::Packet(frame) => {
            let ack = check_suback(&frame, ctx.version, 7, 2)?;
            ensure!(
                is_failure(ack.codes[1]),
                "expected the topic filter {bad:?} refused with a failure code, saw SUBACK {frame:?}"
            );
            ensure!(
                ack.codes[0] <= 1 || is_failure(ack.codes[0]),
                "expected the valid filter granted at most QoS 1 (or refused), saw SUBACK {frame:?}"
            );
        }
        Reply::Closed(reason) => {
            ensure!(
                close_allowed,
                "expected SUBACK refusing {bad:?}, but the server closed the connection{}",
                reason_text(reason)
            );
            if let Some(r) = reason {
                ensure!(
                    close_reasons.contains(&r),
                    "the server closed on the topic filter {bad:?} with DISCONNECT reason 0x{r:02x}, expected one of {}",
                    hex(close_reasons)
                );
            }
        }
    }
    Ok(())
}

async fn misplaced_wildcards(ctx: Ctx) -> CaseResult {
    let base = ctx.topic("w");
    let bad =
        [format!("{base}/#/x"), format!("{base}/a#"), format!("{base}/a+"), format!("{base}/+a/b"), format!("{base}#")];
    for (i, filter) in bad.iter().enumerate() {
        // A filter that breaks the syntax is a protocol violation: closing is allowed too.
        refuses_filter(&ctx, &format!("wild{i}"), filter, &[0x81, 0x82, 0x8F], true).await?;
    }
    Ok(())
}

async fn empty_filter(ctx: Ctx) -> CaseResult {
    refuses_filter(&ctx, "empty", "", &[0x81, 0x82, 0x8F], true).await
}

async fn null_in_filter(ctx: Ctx) -> CaseResult {
    let (mut c, _) = ctx.connect("null").await?;
    let filter = format!("{}/a\0b", ctx.topic("n"));
    let bytes = packets::subscribe(ctx.version, 1, &[(&filter, 0)], Props::new());
    expect_refusal(&mut c, &bytes, &[0x81], "SUBSCRIBE to a filter containing U+0000").await?;
    Ok(())
}

async fn wildcards_unavailable(ctx: Ctx) -> CaseResult {
    let filter = ctx.topic("+");
    if ctx.version.is_v5() {
        return refuse_with(
            &ctx,
            prop::WILDCARD_SUBSCRIPTION_AVAILABLE,
            "wildcard subscriptions",
            &filter,
            0xA2,
            Props::new(),
        )
        .await;
    }
    // 3.1.1 has no announcement: only the operator can say the target lacks wildcards.
    if ctx.caps.wildcard_subscriptions {
        return Err(Failure::Skip("the operator did not disable wildcard subscriptions (--disable wildcard)".into()));
    }
    let (mut c, _) = ctx.connect("wild").await?;
    let (ack, _) = subscribe(&mut c, 1, &[(&filter, 0)]).await?;
    ensure!(ack.codes == [0x80], "expected SUBACK 0x80 for the wildcard filter {filter}, saw {}", hex(&ack.codes));
    Ok(())
}

/// Where the target's CONNACK announces the feature `available` (a property)
/// as 0, expects a subscription refused with `code`, in the SUBACK or in a DISCONNECT.
async fn refuse_with(ctx: &Ctx, available: u8, feature: &str, filter: &str, code: u8, props: Props) -> CaseResult {
    let (mut c, connack) = ctx.connect("refuse").await?;
    if connack.props.u8(available) != Some(0) {
        return Err(Failure::Skip(format!("the target did not announce {feature} unavailable")));
    }
    c.send(&packets::subscribe(ctx.version, 3, &[(filter, 0)], props)).await?;
    let mut seen = Vec::new();
    match wait_for(&mut c, kind::SUBACK, &mut seen).await? {
        Reply::Packet(frame) => {
            let ack = check_suback(&frame, ctx.version, 3, 1)?;
            ensure!(ack.codes == [code], "expected SUBACK code 0x{code:02x} for {filter}, saw {frame:?}");
        }
        Reply::Closed(reason) => ensure!(
            reason.is_none_or(|r| r == code),
            "expected SUBACK 0x{code:02x} (or DISCONNECT 0x{code:02x}) for {filter}; the server closed the connection{}",
            reason_text(reason)
        ),
    }
    Ok(())
}

async fn shared_unavailable(ctx: Ctx) -> CaseResult {
    let filter = shared(&ctx, "g", &ctx.topic("s"));
    refuse_with(&ctx, prop::SHARED_SUBSCRIPTION_AVAILABLE, "shared subscriptions", &filter, 0x9E, Props::new()).await
}

async fn subscription_identifiers_unavailable(ctx: Ctx) -> CaseResult {
    let props = Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 5);
    let (available, feature) = (prop::SUBSCRIPTION_IDENTIFIER_AVAILABLE, "subscription identifiers");
    refuse_with(&ctx, available, feature, &ctx.topic("i"), 0xA1, props).await
}

async fn acks_within_maximum_packet_size(ctx: Ctx) -> CaseResult {
    // A SUBACK or UNSUBACK for n filters without properties is 2 + 2 + 1 + n
    // bytes; with n = 123 that is exactly the limit, so no property fits.
    const LIMIT: u32 = 128;
    const FILTERS: usize = 123;
    let connect = ctx.connect_builder("size").props(Props::new().u32(prop::MAXIMUM_PACKET_SIZE, LIMIT));
    let (mut c, _) = Client::connect_ok(&ctx.target, &connect).await?;
    let names: Vec<String> = (0..FILTERS).map(|i| ctx.topic(&format!("z/{i}"))).collect();
    let filters: Vec<(&str, u8)> = names.iter().map(|n| (n.as_str(), 0u8)).collect();
    c.send(&packets::subscribe(ctx.version, 9, &filters, Props::new())).await?;
    let frame = c.expect(kind::SUBACK).await?;
    let ack = check_suback(&frame, ctx.version, 9, FILTERS)?;
    ensure!(
        frame.bytes.len() <= LIMIT as usize && ack.props.0.is_empty(),
        "expected a SUBACK of at most {LIMIT} bytes without properties, saw {} bytes with {:?}",
        frame.bytes.len(),
        ack.props
    );
    // Filters never subscribed: each answered 0x11 (or 0x00), where a server might add a Reason String.
    let unknown: Vec<String> = (0..FILTERS).map(|i| ctx.topic(&format!("y/{i}"))).collect();
    let unknown: Vec<&str> = unknown.iter().map(String::as_str).collect();
    c.send(&packets::unsubscribe(ctx.version, 10, &unknown)).await?;
    let frame = c.expect(kind::UNSUBACK).await?;
    let ack = packets::parse_suback(&frame, ctx.version)?;
    ensure!(
        ack.packet_id == 10 && ack.codes.len() == FILTERS,
        "expected UNSUBACK 10 with {FILTERS} codes, saw {frame:?}"
    );
    ensure!(
        frame.bytes.len() <= LIMIT as usize && ack.props.0.is_empty(),
        "expected an UNSUBACK of at most {LIMIT} bytes without properties, saw {} bytes with {:?}",
        frame.bytes.len(),
        ack.props
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Subscription options (5.0).

async fn retain_handling_1(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    let topic = ctx.topic("rh1");
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &topic, b"kept", 1, true).await?;
    let result: CaseResult = async {
        let (mut sub, _) = ctx.connect("sub").await?;
        let (_, early) = subscribe(&mut sub, 1, &[(&topic, 1 | retain_handling(1))]).await?;
        let first = retained_message(&mut sub, early, &topic).await?;
        ensure!(
            first.payload.as_ref() == b"kept",
            "expected the retained message for the new subscription (Retain Handling 1), got {}",
            describe_one(&first)
        );
        let (_, early) = subscribe(&mut sub, 2, &[(&topic, 1 | retain_handling(1))]).await?;
        publish(&mut publisher, &topic, b"live", 1, false).await?;
        let got = collect_until(&mut sub, early, |p| p.payload.as_ref() == b"live").await?;
        ensure!(
            got.len() == 1,
            "expected only \"live\": with Retain Handling 1 an existing subscription gets no retained messages; received {}",
            describe(&got)
        );
        Ok(())
    }
    .await;
    clear_retained(&mut publisher, &[&topic]).await;
    result
}

async fn retain_handling_2(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    let topic = ctx.topic("rh2");
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &topic, b"kept", 1, true).await?;
    let result: CaseResult = async {
        let (mut sub, _) = ctx.connect("sub").await?;
        let (_, early) = subscribe(&mut sub, 1, &[(&topic, 1 | retain_handling(2))]).await?;
        publish(&mut publisher, &topic, b"live", 1, false).await?;
        let got = collect_until(&mut sub, early, |p| p.payload.as_ref() == b"live").await?;
        ensure!(
            got.len() == 1,
            "expected only \"live\": Retain Handling 2 sends no retained messages; received {}",
            describe(&got)
        );
        Ok(())
    }
    .await;
    clear_retained(&mut publisher, &[&topic]).await;
    result
}

async fn retain_as_published(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    let topic = ctx.topic("rap");
    let (mut publisher, _) = ctx.connect("pub").await?;
    let result: CaseResult = async {
        let (mut sub, _) = ctx.connect("sub").await?;
        subscribe_granted(&mut sub, 1, &[(&topic, 1 | RETAIN_AS_PUBLISHED)]).await?;
        publish(&mut publisher, &topic, b"retained", 1, true).await?;
        publish(&mut publisher, &topic, b"plain", 1, false).await?;
        let got = collect_until(&mut sub, Vec::new(), |p| p.payload.as_ref() == b"plain").await?;
        let flags: Vec<(String, bool)> = got.iter().map(|p| (text(&p.payload), p.retain)).collect();
        ensure!(
            flags == [("retained".to_string(), true), ("plain".to_string(), false)],
            "expected \"retained\" with RETAIN 1 then \"plain\" with RETAIN 0 (Retain As Published); received {}",
            describe(&got)
        );
        Ok(())
    }
    .await;
    clear_retained(&mut publisher, &[&topic]).await;
    result
}

async fn forwarded_retain_cleared(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    let topic = ctx.topic("rf");
    let (mut publisher, _) = ctx.connect("pub").await?;
    let result: CaseResult = async {
        let (mut sub, _) = ctx.connect("sub").await?;
        subscribe_granted(&mut sub, 1, &[(&topic, 1)]).await?;
        publish(&mut publisher, &topic, b"retained", 1, true).await?;
        publish(&mut publisher, &topic, b"plain", 1, false).await?;
        let got = collect_until(&mut sub, Vec::new(), |p| p.payload.as_ref() == b"plain").await?;
        let flags: Vec<(String, bool)> = got.iter().map(|p| (text(&p.payload), p.retain)).collect();
        ensure!(
            flags == [("retained".to_string(), false), ("plain".to_string(), false)],
            "expected \"retained\" and \"plain\" both with RETAIN 0 on an established subscription; received {}",
            describe(&got)
        );
        Ok(())
    }
    .await;
    clear_retained(&mut publisher, &[&topic]).await;
    result
}

async fn no_local(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("nl");
    let (mut own, _) = ctx.connect("own").await?;
    let (mut other, _) = ctx.connect("other").await?;
    subscribe_granted(&mut own, 1, &[(&topic, 1 | NO_LOCAL)]).await?;
    subscribe_granted(&mut other, 1, &[(&topic, 1)]).await?;
    let during = publish(&mut own, &topic, b"own", 1, false).await?;
    let other_during = publish(&mut other, &topic, b"other", 1, false).await?;
    let got = collect_until(&mut own, during, |p| p.payload.as_ref() == b"other").await?;
    ensure!(
        got.iter().all(|p| p.payload.as_ref() != b"own"),
        "a No Local subscription received its own connection's message: {}",
        describe(&got)
    );
    let other_got = collect_until(&mut other, other_during, |p| p.payload.as_ref() == b"other").await?;
    ensure!(
        other_got.iter().any(|p| p.payload.as_ref() == b"own"),
        "expected another client's subscription to receive \"own\"; it received {}",
        describe(&other_got)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Subscription identifiers (5.0).

async fn subscription_identifier_delivered(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.subscription_identifiers, "subscription identifiers")?;
    let (with_id, without) = (ctx.topic("id"), ctx.topic("noid"));
    let (mut sub, _) = ctx.connect("sub").await?;
    let id = 74_565; // three bytes as a variable byte integer
    let (ack, _) =
        subscribe_props(&mut sub, 1, &[(&with_id, 1)], Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, id)).await?;
    ensure!(!is_failure(ack.codes[0]), "expected {with_id} granted, SUBACK codes {}", hex(&ack.codes));
    subscribe_granted(&mut sub, 2, &[(&without, 1)]).await?;
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &with_id, b"a", 1, false).await?;
    publish(&mut publisher, &without, b"b", 1, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.topic == without).await?;
    ensure!(got.len() == 2, "expected one message on each topic, received {}", describe(&got));
    let a = got
        .iter()
        .find(|p| p.topic == with_id)
        .ok_or_else(|| format!("no message on {with_id}: {}", describe(&got)))?;
    ensure!(sub_ids(a) == [id], "expected subscription identifier [{id}] on {with_id}, saw {}", describe_one(a));
    let b = got.iter().find(|p| p.topic == without).ok_or_else(|| format!("no message on {without}"))?;
    ensure!(
        sub_ids(b).is_empty(),
        "expected no subscription identifier for a subscription made without one, saw {}",
        describe_one(b)
    );
    Ok(())
}

async fn overlapping_identifiers(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.subscription_identifiers, "subscription identifiers")?;
    ctx.require(ctx.caps.wildcard_subscriptions, "wildcard subscriptions")?;
    let (plus, hash, exact, end) = (ctx.topic("s/+"), ctx.topic("s/#"), ctx.topic("s/x"), ctx.topic("end"));
    let (mut sub, _) = ctx.connect("sub").await?;
    let ids = [11u32, 200_000];
    let sid = |id| Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, id);
    let (ack, _) = subscribe_props(&mut sub, 1, &[(&plus, 1)], sid(ids[0])).await?;
    ensure!(!is_failure(ack.codes[0]), "expected {plus} granted, SUBACK codes {}", hex(&ack.codes));
    let (ack, _) = subscribe_props(&mut sub, 2, &[(&hash, 1)], sid(ids[1])).await?;
    ensure!(!is_failure(ack.codes[0]), "expected {hash} granted, SUBACK codes {}", hex(&ack.codes));
    subscribe_granted(&mut sub, 3, &[(&exact, 1), (&end, 0)]).await?;
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &exact, b"m", 1, false).await?;
    publish(&mut publisher, &end, b"end", 0, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.topic == end).await?;
    let copies: Vec<&Publish> = got.iter().filter(|p| p.topic == exact).collect();
    let want: BTreeSet<u32> = ids.into_iter().collect();
    match copies.as_slice() {
        [] => return Err(format!("expected the message on {exact}, received {}", describe(&got)).into()),
        [one] => {
            let mut seen = sub_ids(one);
            seen.sort_unstable();
            ensure!(
                seen == [ids[0], ids[1]],
                "a single copy must carry the identifiers of all matching subscriptions ({want:?}), saw {}",
                describe_one(one)
            );
        }
        many => {
            ensure!(
                many.len() <= 3,
                "expected at most one copy per matching subscription (3), received {}",
                describe(&got)
            );
            ensure!(
                many.iter().all(|p| sub_ids(p).len() <= 1),
                "when sending one copy per subscription each must carry only its subscription's identifier; received {}",
                describe(&got)
            );
            let seen: BTreeSet<u32> = many.iter().flat_map(|p| sub_ids(p)).collect();
            ensure!(seen == want, "expected the copies to carry the identifiers {want:?}; received {}", describe(&got));
            let without = many.iter().filter(|p| sub_ids(p).is_empty()).count();
            ensure!(without <= 1, "only one subscription has no identifier; received {}", describe(&got));
        }
    }
    Ok(())
}

async fn resubscribe_replaces_identifier(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.subscription_identifiers, "subscription identifiers")?;
    let topic = ctx.topic("rid");
    let (mut sub, _) = ctx.connect("sub").await?;
    let (mut publisher, _) = ctx.connect("pub").await?;
    let sid = |id| Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, id);
    subscribe_props(&mut sub, 1, &[(&topic, 1)], sid(5)).await?;
    subscribe_props(&mut sub, 2, &[(&topic, 1)], Props::new()).await?;
    publish(&mut publisher, &topic, b"a", 1, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.payload.as_ref() == b"a").await?;
    ensure!(
        got.len() == 1 && sub_ids(&got[0]).is_empty(),
        "after re-subscribing without an identifier expected one copy without identifiers, received {}",
        describe(&got)
    );
    subscribe_props(&mut sub, 3, &[(&topic, 1)], sid(9)).await?;
    publish(&mut publisher, &topic, b"b", 1, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.payload.as_ref() == b"b").await?;
    ensure!(
        got.len() == 1 && sub_ids(&got[0]) == [9],
        "after re-subscribing with identifier 9 expected one copy carrying [9], received {}",
        describe(&got)
    );
    Ok(())
}

async fn subscription_identifier_zero(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.subscription_identifiers, "subscription identifiers")?;
    let (mut c, _) = ctx.connect("zero").await?;
    let bytes = packets::subscribe(
        ctx.version,
        1,
        &[(&ctx.topic("z"), 0)],
        Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 0),
    );
    expect_refusal(&mut c, &bytes, PROTOCOL_ERROR, "SUBSCRIBE with Subscription Identifier 0").await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Overlapping subscriptions.

async fn overlapping_qos(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.wildcard_subscriptions, "wildcard subscriptions")?;
    let (plus, exact, hash, end) = (ctx.topic("o/+"), ctx.topic("o/x"), ctx.topic("o/#"), ctx.topic("end"));
    let (mut sub, _) = ctx.connect("sub").await?;
    let granted = subscribe_granted(&mut sub, 1, &[(&plus, 0), (&exact, 2), (&hash, 1), (&end, 0)]).await?;
    let max_granted = granted[..3].iter().copied().max().unwrap_or(0);
    let qos = top_qos(&ctx);
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &exact, b"m", qos, false).await?;
    publish(&mut publisher, &end, b"end", 0, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.topic == end).await?;
    let copies: Vec<&Publish> = got.iter().filter(|p| p.topic == exact).collect();
    let expected = qos.min(max_granted);
    ensure!(
        (1..=3).contains(&copies.len()),
        "expected one copy, or at most one per matching subscription (3), received {}",
        describe(&got)
    );
    ensure!(
        copies.iter().any(|p| p.qos == expected) && copies.iter().all(|p| p.qos <= expected),
        "expected a copy at QoS {expected} (published {qos}, highest granted {max_granted}) and none higher; received {}",
        describe(&got)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// UNSUBSCRIBE / UNSUBACK.

async fn unsuback_packet_identifier(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("u");
    let (mut c, _) = ctx.connect("unsub").await?;
    for pid in [0x4321u16, 0xFEDC] {
        subscribe_granted(&mut c, 1, &[(&topic, 1)]).await?;
        let ack = unsubscribe(&mut c, pid, &[&topic]).await?;
        if ctx.version.is_v5() {
            ensure!(ack.codes == [0x00], "expected UNSUBACK code 0x00 (Success), saw {}", hex(&ack.codes));
        }
    }
    Ok(())
}

async fn unsubscribe_unknown(ctx: Ctx) -> CaseResult {
    let (mut c, _) = ctx.connect("unsub").await?;
    let ack = unsubscribe(&mut c, 0x5151, &[&ctx.topic("never")]).await?;
    if ctx.version.is_v5() {
        ensure!(
            UNSUBACK_NOTHING_TO_DELETE.contains(&ack.codes[0]),
            "expected UNSUBACK code 0x11 (No subscription existed) or 0x00 (Success), saw {}",
            hex(&ack.codes)
        );
    }
    Ok(())
}

async fn unsubscribe_stops_delivery(ctx: Ctx) -> CaseResult {
    let (topic, end) = (ctx.topic("t"), ctx.topic("end"));
    let (mut sub, _) = ctx.connect("sub").await?;
    subscribe_granted(&mut sub, 1, &[(&topic, 1), (&end, 0)]).await?;
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &topic, b"before", 1, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.payload.as_ref() == b"before").await?;
    ensure!(got.len() == 1, "expected \"before\" once, received {}", describe(&got));
    unsubscribe(&mut sub, 2, &[&topic]).await?;
    publish(&mut publisher, &topic, b"after", 1, false).await?;
    publish(&mut publisher, &end, b"end", 0, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.topic == end).await?;
    ensure!(
        got.iter().all(|p| p.topic != topic),
        "expected nothing on {topic} after UNSUBACK, received {}",
        describe(&got)
    );
    Ok(())
}

async fn unsubscribe_exact_match(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.wildcard_subscriptions, "wildcard subscriptions")?;
    let (filter, topic, end) = (ctx.topic("u/+"), ctx.topic("u/x"), ctx.topic("end"));
    let (mut sub, _) = ctx.connect("sub").await?;
    subscribe_granted(&mut sub, 1, &[(&filter, 1), (&end, 0)]).await?;
    // None of these is the subscription's filter character for character.
    let near = [topic.clone(), ctx.topic("U/+"), ctx.topic("u/#"), format!("{filter}/"), ctx.topic("u/+/#")];
    let near: Vec<&str> = near.iter().map(String::as_str).collect();
    let ack = unsubscribe(&mut sub, 2, &near).await?;
    if ctx.version.is_v5() {
        ensure!(
            ack.codes.iter().all(|c| UNSUBACK_NOTHING_TO_DELETE.contains(c)),
            "expected 0x11 (No subscription existed) or 0x00 (Success) for filters that differ from {filter}, saw {}",
            hex(&ack.codes)
        );
    }
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &topic, b"still", 1, false).await?;
    publish(&mut publisher, &end, b"end1", 0, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.payload.as_ref() == b"end1").await?;
    ensure!(
        got.iter().any(|p| p.payload.as_ref() == b"still"),
        "unsubscribing {near:?} must not delete the subscription {filter}; received {}",
        describe(&got)
    );
    let ack = unsubscribe(&mut sub, 3, &[&filter]).await?;
    if ctx.version.is_v5() {
        ensure!(ack.codes == [0x00], "expected 0x00 unsubscribing {filter}, saw {}", hex(&ack.codes));
    }
    publish(&mut publisher, &topic, b"gone", 1, false).await?;
    publish(&mut publisher, &end, b"end2", 0, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.payload.as_ref() == b"end2").await?;
    ensure!(
        got.iter().all(|p| p.payload.as_ref() != b"gone"),
        "expected nothing from {filter} after unsubscribing it, received {}",
        describe(&got)
    );
    Ok(())
}

async fn unsubscribe_several(ctx: Ctx) -> CaseResult {
    let (a, b, c, end) = (ctx.topic("a"), ctx.topic("b"), ctx.topic("c"), ctx.topic("end"));
    let (mut sub, _) = ctx.connect("sub").await?;
    subscribe_granted(&mut sub, 1, &[(&a, 1), (&c, 1), (&end, 0)]).await?;
    let ack = unsubscribe(&mut sub, 0x0203, &[&a, &b, &c]).await?;
    if ctx.version.is_v5() {
        ensure!(
            ack.codes[0] == 0x00 && UNSUBACK_NOTHING_TO_DELETE.contains(&ack.codes[1]) && ack.codes[2] == 0x00,
            "expected UNSUBACK codes 00, 11 (or 00), 00 for [subscribed, never subscribed, subscribed], saw {}",
            hex(&ack.codes)
        );
    }
    let (mut publisher, _) = ctx.connect("pub").await?;
    for topic in [&a, &b, &c] {
        publish(&mut publisher, topic, b"m", 1, false).await?;
    }
    publish(&mut publisher, &end, b"end", 0, false).await?;
    // collect_until fails on any packet other than PUBLISH, so a second UNSUBACK fails too.
    let got = collect_until(&mut sub, Vec::new(), |p| p.topic == end).await?;
    ensure!(
        got.iter().all(|p| p.topic == end),
        "expected only {end} after unsubscribing {a} and {c} in one UNSUBSCRIBE; received {}",
        describe(&got)
    );
    Ok(())
}

async fn unsubscribe_completes_qos2(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.maximum_qos >= 2, "QoS 2")?;
    let topic = ctx.topic("q2");
    let (mut sub, _) = ctx.connect("sub").await?;
    let granted = subscribe_granted(&mut sub, 1, &[(&topic, 2)]).await?;
    if granted[0] != 2 {
        return Err(Failure::Skip(format!("the target granted QoS {} instead of 2", granted[0])));
    }
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &topic, b"m", 2, false).await?;
    let frame = sub.expect(kind::PUBLISH).await?;
    let p = packets::parse_publish(&frame, ctx.version)?;
    let pid = p.packet_id.ok_or("QoS 2 PUBLISH without packet identifier")?;
    ensure!(p.qos == 2, "expected the message at QoS 2, saw {frame:?}");
    // Unsubscribe before acknowledging: the server must still finish the QoS 2 flow.
    sub.send(&packets::unsubscribe(ctx.version, 2, &[&topic])).await?;
    let frame = sub.expect(kind::UNSUBACK).await?;
    let ack = packets::parse_suback(&frame, ctx.version)?;
    ensure!(ack.packet_id == 2, "expected UNSUBACK 2, saw {frame:?}");
    sub.send(&packets::ack(kind::PUBREC, pid)).await?;
    let frame = sub.expect(kind::PUBREL).await?;
    let rel = packets::parse_ack(&frame, ctx.version)?;
    ensure!(
        rel.packet_id == pid && frame.flags == 0x02,
        "expected PUBREL for packet identifier 0x{pid:04x} completing the delivery, saw {frame:?}"
    );
    sub.send(&packets::ack(kind::PUBCOMP, pid)).await?;
    sub.send(&packets::pingreq()).await?;
    sub.expect(kind::PINGRESP).await?;
    Ok(())
}

async fn unsubscribe_reserved_flags(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("f");
    for (i, first) in [0xA0u8, 0xA3, 0xAA, 0xA6].into_iter().enumerate() {
        let (mut c, _) = ctx.connect(&format!("flags{i}")).await?;
        subscribe_granted(&mut c, 1, &[(&topic, 0)]).await?;
        let mut bytes = packets::unsubscribe(ctx.version, 2, &[&topic]).to_vec();
        bytes[0] = first;
        expect_refusal(&mut c, &bytes, &[0x81], &format!("UNSUBSCRIBE with first byte 0x{first:02x}")).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Topic names, filters and matching (section 4.7).

/// Subscribes to `filters`, publishes to each of `topics` (with whether it
/// must be delivered), and checks that exactly the matching ones arrive,
/// with their topic names unchanged.
async fn matching(ctx: &Ctx, filters: &[String], topics: &[(String, bool)]) -> CaseResult {
    ctx.require(ctx.caps.wildcard_subscriptions || filters.iter().all(|f| !f.contains(['+', '#'])), "wildcards")?;
    let end = ctx.topic("end");
    let (mut sub, _) = ctx.connect("sub").await?;
    let mut wanted: Vec<(&str, u8)> = filters.iter().map(|f| (f.as_str(), 0u8)).collect();
    wanted.push((&end, 0));
    subscribe_granted(&mut sub, 1, &wanted).await?;
    let (mut publisher, _) = ctx.connect("pub").await?;
    for (i, (topic, _)) in topics.iter().enumerate() {
        publish(&mut publisher, topic, format!("{i}").as_bytes(), 0, false).await?;
    }
    publish(&mut publisher, &end, b"end", 0, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.topic == end).await?;
    for (i, (topic, delivered)) in topics.iter().enumerate() {
        let copies: Vec<&Publish> = got.iter().filter(|p| p.payload.as_ref() == format!("{i}").as_bytes()).collect();
        if *delivered {
            ensure!(!copies.is_empty(), "expected {topic:?} to match {filters:?}; received {}", describe(&got));
            ensure!(
                copies.iter().all(|p| &p.topic == topic),
                "expected the topic name {topic:?} delivered unchanged; received {}",
                describe(&got)
            );
        } else {
            ensure!(
                copies.is_empty(),
                "expected {topic:?} not to match any of {filters:?}; received {}",
                describe(&got)
            );
        }
    }
    Ok(())
}

async fn multi_level_wildcard(ctx: Ctx) -> CaseResult {
    let filters = [ctx.topic("m/#")];
    let topics = [
        (ctx.topic("m"), true),
        (ctx.topic("m/a"), true),
        (ctx.topic("m/a/b/c"), true),
        (ctx.topic("m/"), true),
        (ctx.topic("mx"), false),
        (ctx.topic("mx/a"), false),
        (ctx.topic("n/m"), false),
    ];
    matching(&ctx, &filters, &topics).await
}

async fn single_level_wildcard(ctx: Ctx) -> CaseResult {
    let filters = [ctx.topic("s/+"), ctx.topic("+/q/+/r")];
    let topics = [
        (ctx.topic("s/a"), true),
        (ctx.topic("s/"), true),
        (ctx.topic("s"), false),
        (ctx.topic("s/a/b"), false),
        (ctx.topic("x/q/y/r"), true),
        (ctx.topic("/q//r"), true),
        (ctx.topic("x/q/y/z/r"), false),
        (ctx.topic("x/q/r"), false),
    ];
    matching(&ctx, &filters, &topics).await
}

async fn separators_significant(ctx: Ctx) -> CaseResult {
    let filters = [ctx.topic("e/a"), ctx.topic("e//b")];
    let topics = [
        (ctx.topic("e/a"), true),
        (ctx.topic("e/a/"), false),
        (ctx.topic("e//a"), false),
        (format!("{}/", ctx.topic("e/a")), false),
        (ctx.topic("e//b"), true),
        (ctx.topic("e/b"), false),
        (ctx.topic("e///b"), false),
    ];
    matching(&ctx, &filters, &topics).await
}

async fn case_sensitive_no_normalization(ctx: Ctx) -> CaseResult {
    // "é" precomposed (U+00E9) and decomposed (e + U+0301) are different topics.
    let filters = [ctx.topic("Case/caf\u{e9}"), ctx.topic("D/cafe\u{301}")];
    let topics = [
        (ctx.topic("Case/caf\u{e9}"), true),
        (ctx.topic("case/caf\u{e9}"), false),
        (ctx.topic("CASE/caf\u{e9}"), false),
        (ctx.topic("Case/CAF\u{c9}"), false),
        (ctx.topic("Case/cafe\u{301}"), false),
        (ctx.topic("Case/caf\u{e9} "), false),
        (ctx.topic("D/cafe\u{301}"), true),
        (ctx.topic("D/caf\u{e9}"), false),
        (ctx.topic("D/cafe\u{301}\u{fe0f}"), false),
    ];
    matching(&ctx, &filters, &topics).await
}

async fn dollar_topics(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.wildcard_subscriptions, "wildcard subscriptions")?;
    // "$cf/<prefix>/d" begins with '$'; "cf/<prefix>/d" is its ordinary twin.
    let plain = ctx.topic("d");
    let dollar = format!("${plain}");
    let mut levels = plain.splitn(3, '/');
    let (_, prefix) = (levels.next(), levels.next().unwrap_or_default());
    let wild = [format!("+/{prefix}/d"), format!("+/{prefix}/#"), format!("+/{prefix}/+"), "+/+/d".to_string()];
    let (mut sub, _) = ctx.connect("wild").await?;
    let filters: Vec<(&str, u8)> = wild.iter().map(|f| (f.as_str(), 0u8)).collect();
    subscribe_granted(&mut sub, 1, &filters).await?;
    let (mut control, _) = ctx.connect("ctrl").await?;
    let control_filter = format!("${}", ctx.topic("+"));
    // A server SHOULD keep clients from using topics that begin with $, so it
    // may refuse this filter (with a SUBACK failure code, not by closing).
    let (ack, _) = subscribe(&mut control, 1, &[(&control_filter, 0)]).await?;
    if is_failure(ack.codes[0]) {
        return Err(Failure::Skip(format!(
            "the target refused the subscription to {control_filter} (SUBACK 0x{:02x}), so it cannot show that a \
             message to {dollar} was published",
            ack.codes[0]
        )));
    }
    let (mut publisher, _) = ctx.connect("pub").await?;
    match publish(&mut publisher, &dollar, b"dollar", 1, false).await {
        Ok(_) => {}
        Err(e) => return Err(Failure::Skip(format!("the target does not take publications to {dollar}: {e}"))),
    }
    publish(&mut publisher, &plain, b"plain", 1, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.topic == plain).await?;
    let mine: Vec<Publish> = got.into_iter().filter(|p| p.topic.split('/').nth(1) == Some(prefix)).collect();
    ensure!(
        mine.iter().all(|p| !p.topic.starts_with('$')),
        "filters starting with a wildcard ({wild:?}) matched a topic beginning with $: {}",
        describe(&mine)
    );
    // The message was published: a filter not starting with a wildcard gets it.
    let seen = collect_until(&mut control, Vec::new(), |p| p.topic == dollar).await;
    if seen.is_err() {
        return Err(Failure::Skip(format!("the target did not deliver {dollar} to {control_filter}")));
    }
    Ok(())
}

async fn wildcard_topic_name(ctx: Ctx) -> CaseResult {
    let base = ctx.topic("w");
    let all = format!("{base}/#");
    let (mut sub, _) = ctx.connect("sub").await?;
    let mut filters: Vec<(&str, u8)> = vec![(base.as_str(), 0)];
    if ctx.caps.wildcard_subscriptions {
        filters.push((all.as_str(), 0));
    }
    subscribe_granted(&mut sub, 1, &filters).await?;
    for (i, topic) in [format!("{base}/+"), format!("{base}/#"), format!("{base}/+/x")].iter().enumerate() {
        let (mut c, _) = ctx.connect(&format!("pub{i}")).await?;
        c.send(&packets::publish(ctx.version, topic, b"wild", 1, false, 1, Props::new())).await?;
        let mut seen = Vec::new();
        match wait_for(&mut c, kind::PUBACK, &mut seen).await? {
            Reply::Closed(reason) => ensure!(
                reason.is_none_or(|r| [0x81, 0x82, 0x90].contains(&r)),
                "PUBLISH to {topic}: the server closed after DISCONNECT 0x{:02x}; expected 0x81, 0x82 or 0x90",
                reason.unwrap_or_default()
            ),
            Reply::Packet(frame) => {
                let ack = packets::parse_ack(&frame, ctx.version)?;
                ensure!(
                    ctx.version.is_v5() && ack.reason == 0x90,
                    "expected the server to refuse a PUBLISH to {topic} (close{}), saw {frame:?}",
                    if ctx.version.is_v5() { ", or PUBACK 0x90 Topic Name invalid" } else { "" }
                );
            }
        }
    }
    let (mut publisher, _) = ctx.connect("pubok").await?;
    publish(&mut publisher, &base, b"end", 0, false).await?;
    let got = collect_until(&mut sub, Vec::new(), |p| p.topic == base).await?;
    ensure!(
        got.iter().all(|p| p.payload.as_ref() != b"wild"),
        "a PUBLISH with wildcards in its topic name was delivered: {}",
        describe(&got)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Shared subscriptions (5.0 section 4.8.2).

/// The shared subscription `$share/<group><run prefix>/<filter>`. The run
/// prefix makes the ShareName unique to the case run, like its topics: cases
/// run at the same time, and a server that mixes up shared subscriptions of
/// one ShareName with different filters would otherwise fail a case for what
/// another case subscribed (rumqttd 0.20 does).
fn shared(ctx: &Ctx, group: &str, filter: &str) -> String {
    format!("$share/{group}{}/{filter}", ctx.prefix)
}

/// Waits until one of two clients receives a PUBLISH; returns which (0 or 1) and the message.
async fn first_of_two(a: &mut Client, b: &mut Client) -> Result<(usize, Publish, Frame), String> {
    let deadline = Instant::now() + REPLY_WAIT;
    while Instant::now() < deadline {
        for (i, c) in [&mut *a, &mut *b].into_iter().enumerate() {
            match c.recv(Duration::from_millis(50)).await? {
                Event::Frame(f) if f.kind == kind::PUBLISH => {
                    let p = packets::parse_publish(&f, c.version)?;
                    return Ok((i, p, f));
                }
                Event::Frame(f) => return Err(format!("expected a PUBLISH, got {f:?}")),
                Event::Closed => return Err("the server closed a shared subscriber's connection".into()),
                Event::Silent => {}
            }
        }
    }
    Err(format!("no member of the shared subscription received the message within {REPLY_WAIT:?}"))
}

async fn shared_one_member_per_group(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.shared_subscriptions, "shared subscriptions")?;
    let topic = ctx.topic("sh");
    let (g1, g2) = (shared(&ctx, "g1", &topic), shared(&ctx, "g2", &topic));
    let (mut a, _) = ctx.connect("a").await?;
    let (mut b, _) = ctx.connect("b").await?;
    let (mut c, _) = ctx.connect("c").await?;
    let ga = subscribe_granted(&mut a, 1, &[(&g1, 1)]).await?[0];
    let gb = subscribe_granted(&mut b, 1, &[(&g1, 1)]).await?[0];
    let gc = subscribe_granted(&mut c, 1, &[(&g2, 0)]).await?[0];
    let qos = top_qos(&ctx).min(1);
    let (mut publisher, _) = ctx.connect("pub").await?;
    const N: usize = 6;
    for i in 0..N {
        publish(&mut publisher, &topic, format!("m{i}").as_bytes(), qos, false).await?;
    }
    publish(&mut publisher, &topic, b"end", 0, false).await?;
    // The only member of g2 gets every message; once it has the last, so has g1.
    let got_c = collect_until(&mut c, Vec::new(), |p| p.payload.as_ref() == b"end").await?;
    let got_a = drain(&mut a, SILENCE_WAIT).await?;
    let got_b = drain(&mut b, SILENCE_WAIT).await?;
    for i in 0..N {
        let payload = format!("m{i}");
        let is = |p: &&Publish| p.payload.as_ref() == payload.as_bytes();
        let in_c: Vec<&Publish> = got_c.iter().filter(is).collect();
        ensure!(
            in_c.len() == 1 && in_c[0].qos == qos.min(gc),
            "expected the sole member of group g2 to receive {payload} once at QoS {}; it received {}",
            qos.min(gc),
            describe(&got_c)
        );
        let in_a: Vec<&Publish> = got_a.iter().filter(is).collect();
        let in_b: Vec<&Publish> = got_b.iter().filter(is).collect();
        ensure!(
            in_a.len() + in_b.len() == 1,
            "expected {payload} delivered to exactly one member of group g1; member a received {}, member b received {}",
            describe(&got_a),
            describe(&got_b)
        );
        let (copy, granted) = if in_a.is_empty() { (in_b[0], gb) } else { (in_a[0], ga) };
        ensure!(
            copy.qos == qos.min(granted),
            "expected {payload} at QoS {} (published {qos}, granted {granted}), saw {}",
            qos.min(granted),
            describe_one(copy)
        );
    }
    Ok(())
}

async fn shared_no_retained(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.shared_subscriptions, "shared subscriptions")?;
    ctx.require(ctx.caps.retain, "retained messages")?;
    let topic = ctx.topic("shr");
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &topic, b"kept", 1, true).await?;
    let result: CaseResult = async {
        let (mut sub, _) = ctx.connect("sub").await?;
        let (_, early) = subscribe(&mut sub, 1, &[(&shared(&ctx, "g", &topic), 1)]).await?;
        publish(&mut publisher, &topic, b"live", 1, false).await?;
        let got = collect_until(&mut sub, early, |p| p.payload.as_ref() == b"live").await?;
        ensure!(
            got.len() == 1,
            "expected only \"live\": retained messages are not sent for a shared subscription; received {}",
            describe(&got)
        );
        Ok(())
    }
    .await;
    clear_retained(&mut publisher, &[&topic]).await;
    result
}

async fn shared_no_local(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.shared_subscriptions, "shared subscriptions")?;
    let (mut c, _) = ctx.connect("nl").await?;
    let bytes =
        packets::subscribe(ctx.version, 1, &[(&shared(&ctx, "g", &ctx.topic("nl")), 1 | NO_LOCAL)], Props::new());
    expect_refusal(&mut c, &bytes, PROTOCOL_ERROR, "SUBSCRIBE with No Local on a shared subscription").await?;
    Ok(())
}

async fn shared_negative_puback(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.shared_subscriptions, "shared subscriptions")?;
    ctx.require(ctx.caps.maximum_qos >= 1, "QoS 1")?;
    let topic = ctx.topic("shn");
    let filter = shared(&ctx, "g", &topic);
    let (mut a, _) = ctx.connect("a").await?;
    let (mut b, _) = ctx.connect("b").await?;
    let granted = [
        subscribe_granted(&mut a, 1, &[(&filter, 1)]).await?[0],
        subscribe_granted(&mut b, 1, &[(&filter, 1)]).await?[0],
    ];
    if granted.contains(&0) {
        return Err(Failure::Skip("the target granted QoS 0 for the shared subscription".into()));
    }
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &topic, b"refused", 1, false).await?;
    let (chosen, p, frame) = first_of_two(&mut a, &mut b).await?;
    let pid = p.packet_id.ok_or_else(|| format!("QoS 1 PUBLISH without packet identifier: {frame:?}"))?;
    ensure!(p.payload.as_ref() == b"refused", "expected \"refused\", got {frame:?}");
    let (mine, other) = if chosen == 0 { (&mut a, &mut b) } else { (&mut b, &mut a) };
    mine.send(&packets::ack_with_reason(kind::PUBACK, pid, 0x80)).await?;
    let again_other = drain(other, Duration::from_millis(1500)).await?;
    let again_mine = drain(mine, SILENCE_WAIT).await?;
    ensure!(
        again_other.is_empty() && again_mine.is_empty(),
        "after PUBACK 0x80 the server must discard the message; the other member received {}, the refusing one {}",
        describe(&again_other),
        describe(&again_mine)
    );
    Ok(())
}

async fn shared_session_ends(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.shared_subscriptions, "shared subscriptions")?;
    ctx.require(ctx.caps.maximum_qos >= 2, "QoS 2")?;
    let topic = ctx.topic("shs");
    let filter = shared(&ctx, "g", &topic);
    // Session Expiry Interval 0 (absent): each session ends with its connection.
    let (mut a, _) = ctx.connect("a").await?;
    let (mut b, _) = ctx.connect("b").await?;
    let granted = [
        subscribe_granted(&mut a, 1, &[(&filter, 2)]).await?[0],
        subscribe_granted(&mut b, 1, &[(&filter, 2)]).await?[0],
    ];
    if granted != [2, 2] {
        return Err(Failure::Skip(format!("the target granted QoS {granted:?} instead of 2")));
    }
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &topic, b"orphan", 2, false).await?;
    let (chosen, p, frame) = first_of_two(&mut a, &mut b).await?;
    ensure!(p.qos == 2, "expected the message at QoS 2, saw {frame:?}");
    // The chosen member's connection breaks before it acknowledges (the
    // statement is about a QoS 2 delivery; for QoS 1 the server SHOULD
    // send the message to another member instead).
    let mut other = if chosen == 0 {
        a.drop_connection();
        b
    } else {
        b.drop_connection();
        a
    };
    let got = drain(&mut other, Duration::from_millis(1500)).await?;
    ensure!(
        got.is_empty(),
        "the message {frame:?} went to a member whose session then ended; the server must not send it to another member, yet it sent {}",
        describe(&got)
    );
    Ok(())
}

async fn shared_qos2_reconnect(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.shared_subscriptions, "shared subscriptions")?;
    ctx.require(ctx.caps.maximum_qos >= 2, "QoS 2")?;
    let topic = ctx.topic("sh2");
    let filter = shared(&ctx, "g", &topic);
    let builder = |name: &str| -> ConnectBuilder {
        ctx.connect_builder(name).props(Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 30))
    };
    let (mut a, _) = Client::connect_ok(&ctx.target, &builder("a")).await?;
    let (mut b, _) = Client::connect_ok(&ctx.target, &builder("b")).await?;
    let granted = [
        subscribe_granted(&mut a, 1, &[(&filter, 2)]).await?[0],
        subscribe_granted(&mut b, 1, &[(&filter, 2)]).await?[0],
    ];
    if granted != [2, 2] {
        return Err(Failure::Skip(format!("the target granted QoS {granted:?} instead of 2")));
    }
    let (mut publisher, _) = ctx.connect("pub").await?;
    publish(&mut publisher, &topic, b"twice", 2, false).await?;
    let (chosen, p, frame) = first_of_two(&mut a, &mut b).await?;
    ensure!(p.qos == 2, "expected the message at QoS 2, saw {frame:?}");
    let name = if chosen == 0 { "a" } else { "b" };
    let mut other = if chosen == 0 {
        a.drop_connection();
        b
    } else {
        b.drop_connection();
        a
    };
    let result: CaseResult = async {
        let (mut back, connack) = Client::connect_ok(&ctx.target, &builder(name).clean(false)).await?;
        ensure!(connack.session_present, "expected the session of member {name} to be present on reconnect");
        let again = next_publish_raw(&mut back).await?;
        let p2 = packets::parse_publish(&again, ctx.version)?;
        ensure!(
            p2.payload.as_ref() == b"twice" && p2.qos == 2 && p2.packet_id == p.packet_id && p2.dup,
            "expected the unfinished QoS 2 message re-sent to the same member (DUP 1, same packet identifier), saw {again:?} (first sent as {frame:?})"
        );
        let pid = p2.packet_id.unwrap_or_default();
        back.send(&packets::ack(kind::PUBREC, pid)).await?;
        back.expect(kind::PUBREL).await?;
        back.send(&packets::ack(kind::PUBCOMP, pid)).await?;
        let got = drain(&mut other, SILENCE_WAIT).await?;
        ensure!(
            got.iter().all(|p| p.payload.as_ref() != b"twice"),
            "the message was also sent to the other member: {}",
            describe(&got)
        );
        let _ = back.send(&packets::disconnect(ctx.version, 0, Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 0))).await;
        Ok(())
    }
    .await;
    let _ = other.send(&packets::disconnect(ctx.version, 0, Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 0))).await;
    if result.is_err() {
        // Leave no session behind.
        if let Ok((mut c, _)) = Client::connect_ok(&ctx.target, &ctx.connect_builder(name)).await {
            let _ = c.send(&packets::disconnect(ctx.version, 0, Props::new())).await;
        }
    }
    result
}

/// The next packet, which must be a PUBLISH (not acknowledged).
async fn next_publish_raw(c: &mut Client) -> Result<Frame, String> {
    c.expect(kind::PUBLISH).await
}
