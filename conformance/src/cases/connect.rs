//! Cases: CONNECT and CONNACK (3.1, 3.2), client identifiers, clean
//! session / clean start and session state (3.1.2.4, 3.1.2.11.2, 4.1), wills
//! and the Will Delay Interval, keep alive and PINGREQ (3.1.2.10, 3.12),
//! session takeover, DISCONNECT (3.14), and the connection-related parts of
//! error handling (4.13) and authentication (4.12).

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::case::{Case, CaseResult, Ctx, Failure};
use crate::client::{Client, Event, REPLY_WAIT, SILENCE_WAIT};
use crate::packets::{self, ConnAck, ConnectBuilder, Publish, Version, WillSpec};
use crate::wire::{Frame, Properties, Props, Writer, hex, kind, kind_name, prop};
use crate::{case, ensure};

/// CONNACK Reason Codes of 5.0 (Table 3-1).
const CONNACK_CODES_V5: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B,
    0x9C, 0x9D, 0x9F,
];

/// DISCONNECT Reason Codes of 5.0 (Table 3-10).
const DISCONNECT_CODES_V5: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];

/// The characters every server must accept in a client identifier.
const ID_CHARS: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

pub fn cases() -> Vec<Case> {
    [
        // ---- CONNACK first, one CONNACK, success ----
        case!(
            connack_is_the_first_packet_even_when_the_client_sends_ahead,
            [V311],
            ["MQTT-3.2.0-1", "MQTT-3.1.4-4", "MQTT-3.2.2-1"],
            |ctx| async move { connack_first(ctx).await }
        ),
        case!(
            connack_is_the_first_packet_even_when_the_client_sends_ahead,
            [V5],
            ["MQTT-3.2.0-1", "MQTT-3.2.0-2", "MQTT-3.1.4-5", "MQTT-3.2.2-1", "MQTT-3.2.2-2", "MQTT-4.12.0-6"],
            |ctx| async move { connack_first(ctx).await }
        ),
        // ---- protocol name and level ----
        case!(wrong_protocol_name_is_not_accepted, [V311, V5], ["MQTT-3.1.2-1"], |ctx| async move {
            wrong_protocol_name(ctx).await
        }),
        case!(
            unsupported_protocol_level_is_refused_and_closed,
            [V311],
            ["MQTT-3.1.2-2", "MQTT-3.2.2-4", "MQTT-3.2.2-5"],
            |ctx| async move { unsupported_level(ctx).await }
        ),
        case!(
            unsupported_protocol_level_is_refused_and_closed,
            [V5],
            ["MQTT-3.1.2-2", "MQTT-3.2.2-6", "MQTT-3.2.2-7", "MQTT-3.14.0-1", "MQTT-4.13.2-1"],
            |ctx| async move { unsupported_level(ctx).await }
        ),
        // ---- malformed CONNECT ----
        case!(
            connect_with_reserved_flag_set_is_closed,
            [V311],
            ["MQTT-3.1.2-3", "MQTT-3.1.4-1", "MQTT-3.2.2-6"],
            |ctx| async move { reserved_flag(ctx).await }
        ),
        case!(
            connect_with_reserved_flag_set_is_closed,
            [V5],
            ["MQTT-3.1.2-3", "MQTT-3.1.4-1", "MQTT-3.14.0-1"],
            |ctx| async move { reserved_flag(ctx).await }
        ),
        case!(
            connect_whose_flags_and_payload_disagree_is_closed,
            [V311],
            ["MQTT-3.1.4-1", "MQTT-3.2.2-6"],
            |ctx| async move { flags_and_payload_disagree(ctx).await }
        ),
        case!(
            connect_whose_flags_and_payload_disagree_is_closed,
            [V5],
            ["MQTT-3.1.4-1", "MQTT-3.14.0-1"],
            |ctx| async move { flags_and_payload_disagree(ctx).await }
        ),
        // ---- second CONNECT ----
        case!(
            second_connect_is_a_protocol_error,
            [V311],
            ["MQTT-3.1.0-2"],
            |ctx| async move { second_connect(ctx).await }
        ),
        case!(
            second_connect_is_a_protocol_error,
            [V5],
            ["MQTT-3.1.0-2", "MQTT-4.13.1-1", "MQTT-3.14.2-1", "MQTT-3.14.4-1", "MQTT-3.14.4-2"],
            |ctx| async move { second_connect(ctx).await }
        ),
        // ---- client identifiers ----
        case!(client_ids_of_1_to_23_letters_and_digits_are_accepted, [V311, V5], ["MQTT-3.1.3-5"], |ctx| async move {
            accepted_client_ids(ctx).await
        }),
        case!(
            empty_client_id_with_clean_session_gets_a_unique_id_or_0x02,
            [V311],
            ["MQTT-3.1.3-6", "MQTT-3.1.3-9", "MQTT-3.2.2-4", "MQTT-3.2.2-5"],
            |ctx| async move { empty_client_id_v311(ctx).await }
        ),
        case!(
            empty_client_id_without_clean_session_is_rejected_with_0x02,
            [V311],
            ["MQTT-3.1.3-8", "MQTT-3.1.3-9", "MQTT-3.2.2-4", "MQTT-3.2.2-5"],
            |ctx| async move { empty_client_id_persistent_v311(ctx).await }
        ),
        case!(
            empty_client_id_gets_an_assigned_client_identifier,
            [V5],
            ["MQTT-3.1.3-6", "MQTT-3.1.3-7", "MQTT-3.1.3-8", "MQTT-3.2.2-16", "MQTT-3.2.2-6", "MQTT-3.2.2-7"],
            |ctx| async move { assigned_client_id(ctx).await }
        ),
        case!(
            long_client_id_is_accepted_or_rejected_properly,
            [V311],
            ["MQTT-3.1.3-9", "MQTT-3.2.2-4", "MQTT-3.2.2-5"],
            |ctx| async move { long_client_id(ctx).await }
        ),
        case!(
            long_client_id_is_accepted_or_rejected_properly,
            [V5],
            ["MQTT-3.1.3-8", "MQTT-3.1.4-2", "MQTT-3.2.2-6", "MQTT-3.2.2-7", "MQTT-3.2.2-8", "MQTT-4.13.2-1"],
            |ctx| async move { long_client_id(ctx).await }
        ),
        // ---- rejected CONNECT: later data is not processed ----
        case!(data_after_a_rejected_connect_is_not_processed, [V311], ["MQTT-3.1.4-5"], |ctx| async move {
            data_after_rejected_connect(ctx).await
        }),
        case!(data_after_a_rejected_connect_is_not_processed, [V5], ["MQTT-3.1.4-6"], |ctx| async move {
            data_after_rejected_connect(ctx).await
        }),
        // ---- sessions ----
        case!(
            clean_session_0_creates_and_then_resumes_a_session,
            [V311],
            ["MQTT-3.1.2-4", "MQTT-3.1.4-3", "MQTT-3.2.2-2", "MQTT-3.2.2-3", "MQTT-3.1.3-2"],
            |ctx| async move { session_created_then_resumed(ctx).await }
        ),
        case!(
            clean_start_0_creates_and_then_resumes_a_session,
            [V5],
            ["MQTT-3.1.2-5", "MQTT-3.1.2-6", "MQTT-3.1.4-4", "MQTT-3.2.2-3", "MQTT-3.1.2-23", "MQTT-3.1.3-2"],
            |ctx| async move { session_created_then_resumed(ctx).await }
        ),
        case!(
            resumed_session_keeps_subscriptions_and_queued_qos1_qos2_messages,
            [V311],
            ["MQTT-3.1.2-4", "MQTT-3.1.2-5", "MQTT-4.1.0-1"],
            |ctx| async move { resumed_session_delivers(ctx).await }
        ),
        case!(
            resumed_session_keeps_subscriptions_and_queued_qos1_qos2_messages,
            [V5],
            ["MQTT-3.1.2-5", "MQTT-3.1.2-23", "MQTT-3.2.2-3"],
            |ctx| async move { resumed_session_delivers(ctx).await }
        ),
        case!(
            clean_session_1_discards_the_previous_session,
            [V311],
            ["MQTT-3.1.2-6", "MQTT-3.1.4-3", "MQTT-3.2.2-1"],
            |ctx| async move { clean_discards_session(ctx).await }
        ),
        case!(
            clean_start_1_discards_the_existing_session,
            [V5],
            ["MQTT-3.1.2-4", "MQTT-3.1.4-4", "MQTT-3.2.2-2"],
            |ctx| async move { clean_discards_session(ctx).await }
        ),
        case!(session_lasts_while_the_connection_is_open, [V311], ["MQTT-4.1.0-2"], |ctx| async move {
            session_lasts_while_connected(ctx).await
        }),
        case!(session_lasts_while_the_connection_is_open, [V5], ["MQTT-4.1.0-1"], |ctx| async move {
            session_lasts_while_connected(ctx).await
        }),
        case!(session_without_expiry_interval_ends_with_the_connection, [V5], ["MQTT-4.1.0-2"], |ctx| async move {
            session_without_expiry(ctx).await
        }),
        case!(
            session_is_discarded_after_its_expiry_interval,
            [V5],
            ["MQTT-4.1.0-2", "MQTT-3.1.2-23"],
            |ctx| async move { session_expiry_elapses(ctx).await }
        ),
        case!(
            disconnect_session_expiry_interval_replaces_the_connect_value,
            [V5],
            ["MQTT-4.1.0-2", "MQTT-3.1.2-23"],
            |ctx| async move { disconnect_changes_expiry(ctx).await }
        ),
        case!(
            nonzero_session_expiry_in_disconnect_after_zero_is_a_protocol_error,
            [V5],
            ["MQTT-4.13.1-1", "MQTT-4.1.0-2", "MQTT-3.14.2-1"],
            |ctx| async move { disconnect_expiry_after_zero(ctx).await }
        ),
        // ---- session takeover ----
        case!(
            connect_with_a_connected_client_id_takes_over_the_session,
            [V311],
            ["MQTT-3.1.4-2", "MQTT-3.2.2-2"],
            |ctx| async move { takeover(ctx).await }
        ),
        case!(
            connect_with_a_connected_client_id_takes_over_the_session,
            [V5],
            [
                "MQTT-3.1.4-3",
                "MQTT-3.2.2-3",
                "MQTT-3.14.2-1",
                "MQTT-3.14.2-2",
                "MQTT-3.14.2-3",
                "MQTT-3.14.2-4",
                "MQTT-3.14.4-1",
                "MQTT-3.14.4-2",
                "MQTT-3.1.2-24"
            ],
            |ctx| async move { takeover(ctx).await }
        ),
        // ---- wills ----
        case!(
            will_is_published_as_non_retained_when_the_connection_drops,
            [V311],
            ["MQTT-3.1.2-8", "MQTT-3.1.2-16"],
            |ctx| async move { will_on_drop(ctx).await }
        ),
        case!(
            will_is_published_as_non_retained_when_the_connection_drops,
            [V5],
            ["MQTT-3.1.2-7", "MQTT-3.1.2-8", "MQTT-3.1.2-14"],
            |ctx| async move { will_on_drop(ctx).await }
        ),
        case!(will_with_retain_is_published_as_retained, [V311], ["MQTT-3.1.2-8", "MQTT-3.1.2-17"], |ctx| async move {
            will_retained(ctx).await
        }),
        case!(will_with_retain_is_published_as_retained, [V5], ["MQTT-3.1.2-8", "MQTT-3.1.2-15"], |ctx| async move {
            will_retained(ctx).await
        }),
        case!(
            will_is_discarded_on_normal_disconnect,
            [V311, V5],
            ["MQTT-3.1.2-8", "MQTT-3.1.2-10", "MQTT-3.14.4-3"],
            |ctx| async move { will_discarded_on_disconnect(ctx).await }
        ),
        case!(no_will_is_published_without_the_will_flag, [V311], ["MQTT-3.1.2-12"], |ctx| async move {
            no_will_without_flag(ctx).await
        }),
        case!(
            will_is_published_when_the_server_closes_for_a_protocol_error,
            [V311, V5],
            ["MQTT-3.1.2-8"],
            |ctx| async move { will_on_protocol_error(ctx).await }
        ),
        case!(
            disconnect_with_will_message_reason_publishes_the_will,
            [V5],
            ["MQTT-3.1.2-8", "MQTT-3.1.2-10"],
            |ctx| async move { will_on_disconnect_0x04(ctx).await }
        ),
        case!(will_user_properties_keep_their_order, [V5], ["MQTT-3.1.3-10"], |ctx| async move {
            will_user_property_order(ctx).await
        }),
        case!(will_delay_interval_postpones_the_will, [V5], ["MQTT-3.1.2-8"], |ctx| async move {
            will_delay_postpones(ctx).await
        }),
        case!(
            will_is_published_when_the_session_ends_before_the_will_delay,
            [V5],
            ["MQTT-3.1.2-8"],
            |ctx| async move { will_at_session_end(ctx).await }
        ),
        case!(
            will_is_not_published_if_the_session_resumes_within_the_will_delay,
            [V5],
            ["MQTT-3.1.3-9", "MQTT-3.1.2-8"],
            |ctx| async move { will_cancelled_by_reconnect(ctx).await }
        ),
        case!(will_qos_above_maximum_qos_is_refused, [V5], ["MQTT-3.2.2-12"], |ctx| async move {
            will_qos_above_maximum(ctx).await
        }),
        case!(will_retain_without_retain_available_is_refused, [V5], ["MQTT-3.2.2-13"], |ctx| async move {
            will_retain_unavailable(ctx).await
        }),
        // ---- keep alive ----
        case!(
            keep_alive_expiry_closes_the_connection_and_publishes_the_will,
            [V311],
            ["MQTT-3.1.2-24", "MQTT-3.1.2-8"],
            |ctx| async move { keep_alive_expiry(ctx, false).await }
        ),
        case!(
            keep_alive_expiry_closes_the_connection_and_publishes_the_will,
            [V5],
            ["MQTT-3.1.2-22", "MQTT-3.1.2-8"],
            |ctx| async move { keep_alive_expiry(ctx, false).await }
        ),
        case!(client_keep_alive_applies_when_no_server_keep_alive_is_sent, [V5], ["MQTT-3.2.2-22"], |ctx| async move {
            keep_alive_expiry(ctx, true).await
        }),
        case!(pingreq_gets_pingresp_and_keeps_the_connection, [V311, V5], ["MQTT-3.12.4-1"], |ctx| async move {
            pingreq_keeps_connection(ctx).await
        }),
        // ---- DISCONNECT ----
        case!(disconnect_with_reserved_flags_is_closed, [V311, V5], ["MQTT-3.14.1-1"], |ctx| async move {
            disconnect_reserved_flags(ctx).await
        }),
        // ---- CONNECT / CONNACK properties (5.0) ----
        case!(
            packets_beyond_the_client_maximum_packet_size_are_not_sent,
            [V5],
            ["MQTT-3.1.2-24", "MQTT-3.1.2-25", "MQTT-3.2.2-19", "MQTT-3.2.2-20"],
            |ctx| async move { maximum_packet_size(ctx).await }
        ),
        case!(no_topic_alias_is_sent_without_topic_alias_maximum, [V5], ["MQTT-3.1.2-27"], |ctx| async move {
            topic_aliases(ctx, 0).await
        }),
        case!(topic_aliases_stay_within_topic_alias_maximum, [V5], ["MQTT-3.1.2-26"], |ctx| async move {
            topic_aliases(ctx, 2).await
        }),
        case!(no_response_information_unless_requested, [V5], ["MQTT-3.1.2-28"], |ctx| async move {
            no_response_information(ctx).await
        }),
        case!(
            no_reason_string_or_user_property_when_problem_information_is_off,
            [V5],
            ["MQTT-3.1.2-29"],
            |ctx| async move { request_problem_information_off(ctx).await }
        ),
        case!(qos_1_and_2_publish_work_when_no_maximum_qos_is_announced, [V5], ["MQTT-3.2.2-9"], |ctx| async move {
            maximum_qos_absent_means_supported(ctx).await
        }),
        case!(subscribe_with_every_requested_qos_is_accepted, [V5], ["MQTT-3.2.2-10"], |ctx| async move {
            subscribe_any_qos(ctx).await
        }),
        case!(
            unknown_authentication_method_is_refused_and_closed,
            [V5],
            ["MQTT-4.12.0-1", "MQTT-3.2.2-6", "MQTT-3.2.2-7", "MQTT-4.13.2-1"],
            |ctx| async move { unknown_auth_method(ctx).await }
        ),
        case!(
            refusing_connack_fits_the_client_maximum_packet_size,
            [V5],
            ["MQTT-3.2.2-19", "MQTT-3.2.2-20", "MQTT-3.1.2-24"],
            |ctx| async move { refusing_connack_within_maximum_packet_size(ctx).await }
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

// ======================================================================
// Helpers
// ======================================================================

fn fail(message: String) -> Failure {
    Failure::Fail(message)
}

fn skip(message: &str) -> Failure {
    Failure::Skip(message.to_string())
}

/// 5.0 CONNECT properties with a Session Expiry Interval.
fn expiry(secs: u32) -> Props {
    Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, secs)
}

/// A CONNECT for a session that outlives its connection: clean session /
/// clean start as given, and for 5.0 a Session Expiry Interval of 30 s.
fn persistent(ctx: &Ctx, name: &str, clean: bool) -> ConnectBuilder {
    let builder = ctx.connect_builder(name).clean(clean);
    if ctx.version.is_v5() { builder.props(expiry(30)) } else { builder }
}

/// Ends whatever session `name` has: connect with clean session / clean
/// start 1 (and no expiry), then DISCONNECT.
async fn end_session(ctx: &Ctx, name: &str) -> Result<(), String> {
    let (mut client, _) = ctx.connect(name).await?;
    client.send(&normal_disconnect(ctx.version)).await
}

fn normal_disconnect(version: Version) -> Bytes {
    packets::disconnect(version, 0, Props::new())
}

/// Sends `disconnect`, then closes the connection as the client must
/// (3.1.1 MQTT-3.14.4-1, 5.0 MQTT-3.14.4-2). The server only SHOULD close it
/// itself: a case that goes on with the same client id must not leave the
/// old connection open, or it tests a takeover instead of a new connection.
async fn disconnect_and_close(mut client: Client, disconnect: &[u8]) -> Result<(), String> {
    client.send(disconnect).await?;
    client.close(REPLY_WAIT).await;
    Ok(())
}

fn will(topic: &str, payload: &[u8], retain: bool, props: Props) -> WillSpec {
    WillSpec { topic: topic.to_string(), payload: payload.to_vec(), qos: 0, retain, props }
}

/// Subscribes to each filter at its QoS (options byte) and expects every
/// filter granted; returns the granted codes.
async fn subscribe(client: &mut Client, filters: &[(&str, u8)]) -> Result<Vec<u8>, String> {
    client.send(&packets::subscribe(client.version, 1, filters, Props::new())).await?;
    let frame = client.expect(kind::SUBACK).await?;
    let suback = packets::parse_suback(&frame, client.version)?;
    if suback.codes.len() != filters.len() || suback.codes.iter().any(|c| *c >= 0x80) {
        return Err(format!("expected a SUBACK granting {} filter(s), got {frame:?}", filters.len()));
    }
    Ok(suback.codes)
}

/// A subscriber connected as `name` with `filter` granted at `qos`.
async fn subscriber(ctx: &Ctx, name: &str, filter: &str, qos: u8) -> Result<Client, String> {
    let (mut client, _) = ctx.connect(name).await?;
    subscribe(&mut client, &[(filter, qos)]).await?;
    Ok(client)
}

/// Publishes one message from a fresh connection `name` and completes its
/// QoS flow, then disconnects normally.
async fn publish_once(ctx: &Ctx, name: &str, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Result<(), String> {
    let (mut client, _) = ctx.connect(name).await?;
    publish_on(&mut client, topic, payload, qos, retain, 1).await?;
    client.send(&normal_disconnect(ctx.version)).await
}

/// Publishes on an open connection and completes the QoS 1/2 flow.
async fn publish_on(
    client: &mut Client,
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    packet_id: u16,
) -> Result<(), String> {
    client.send(&packets::publish(client.version, topic, payload, qos, retain, packet_id, Props::new())).await?;
    match qos {
        1 => {
            let frame = client.expect(kind::PUBACK).await?;
            let ack = packets::parse_ack(&frame, client.version)?;
            if ack.reason >= 0x80 {
                return Err(format!("expected the QoS 1 PUBLISH to be accepted, got {frame:?}"));
            }
        }
        2 => {
            let frame = client.expect(kind::PUBREC).await?;
            let ack = packets::parse_ack(&frame, client.version)?;
            if ack.reason >= 0x80 {
                return Err(format!("expected the QoS 2 PUBLISH to be accepted, got {frame:?}"));
            }
            client.send(&packets::ack(kind::PUBREL, packet_id)).await?;
            client.expect(kind::PUBCOMP).await?;
        }
        _ => {}
    }
    Ok(())
}

/// The next application message within `within`, acknowledging QoS 1 and 2
/// (and completing PUBRELs on the way); `None` when nothing arrives.
async fn next_message(client: &mut Client, within: Duration) -> Result<Option<Publish>, String> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.recv(left).await? {
            Event::Silent => return Ok(None),
            Event::Closed => return Err("expected a PUBLISH or silence, but the server closed the connection".into()),
            Event::Frame(frame) if frame.kind == kind::PUBREL => {
                let ack = packets::parse_ack(&frame, client.version)?;
                client.send(&packets::ack(kind::PUBCOMP, ack.packet_id)).await?;
            }
            Event::Frame(frame) if frame.kind == kind::PUBLISH => {
                let publish = packets::parse_publish(&frame, client.version)?;
                match (publish.qos, publish.packet_id) {
                    (1, Some(id)) => client.send(&packets::ack(kind::PUBACK, id)).await?,
                    (2, Some(id)) => client.send(&packets::ack(kind::PUBREC, id)).await?,
                    _ => {}
                }
                return Ok(Some(publish));
            }
            Event::Frame(frame) => return Err(format!("expected a PUBLISH, got {frame:?}")),
        }
    }
}

/// The next application message, which must arrive within `within`.
async fn expect_message(client: &mut Client, within: Duration, what: &str) -> Result<Publish, String> {
    next_message(client, within).await?.ok_or_else(|| format!("expected {what} within {within:?}; nothing arrived"))
}

/// Fails if an application message arrives within `within`.
async fn expect_no_message(client: &mut Client, within: Duration, what: &str) -> Result<(), String> {
    match next_message(client, within).await? {
        None => Ok(()),
        Some(p) => Err(format!(
            "expected {what}; got PUBLISH topic {:?} payload {:?} retain {}",
            p.topic,
            String::from_utf8_lossy(&p.payload),
            p.retain
        )),
    }
}

/// After a CONNECT the server must refuse: waits for the close, allowing one
/// CONNACK before it, which must refuse (non-zero code, Session Present 0,
/// and for 5.0 a listed Reason Code of 0x80 or more). A DISCONNECT before
/// any CONNACK is never allowed in 5.0. Returns the CONNACK if one came.
async fn expect_refused(client: &mut Client) -> Result<Option<ConnAck>, String> {
    let version = client.version;
    let frames = client.expect_closed(REPLY_WAIT).await?;
    match frames.as_slice() {
        [] => Ok(None),
        [frame] if frame.kind == kind::CONNACK => {
            let connack = check_refusing_connack(frame, version)?;
            Ok(Some(connack))
        }
        [frame, ..] if version.is_v5() && frame.kind == kind::DISCONNECT => Err(format!(
            "expected the connection to be closed, at most after a refusing CONNACK; the server sent {frame:?} \
             before any CONNACK (MQTT-3.14.0-1)"
        )),
        frames => {
            Err(format!("expected the connection to be closed, at most after a refusing CONNACK; got {frames:?}"))
        }
    }
}

/// Checks a CONNACK that refuses a connection.
fn check_refusing_connack(frame: &Frame, version: Version) -> Result<ConnAck, String> {
    let connack = packets::parse_connack(frame, version)?;
    if connack.code == 0 {
        return Err(format!("expected the connection to be refused, but the CONNACK accepted it: {frame:?}"));
    }
    if connack.session_present {
        return Err(format!("expected Session Present 0 in a CONNACK with a non-zero code, got {frame:?}"));
    }
    if version.is_v5() && (connack.code < 0x80 || !CONNACK_CODES_V5.contains(&connack.code)) {
        return Err(format!("expected a CONNACK Reason Code of 0x80 or more from Table 3-1, got {frame:?}"));
    }
    Ok(connack)
}

/// Waits for the server to close the connection. For 5.0 one DISCONNECT may
/// come first: its reason must be in `allowed`, it must not carry a Session
/// Expiry Interval, must fit `max_size` if given, and nothing may follow it.
async fn expect_server_close(
    client: &mut Client,
    allowed: &[u8],
    max_size: Option<usize>,
) -> Result<Option<u8>, String> {
    let version = client.version;
    let frames = client.expect_closed(REPLY_WAIT).await?;
    match frames.as_slice() {
        [] => Ok(None),
        [frame] if version.is_v5() && frame.kind == kind::DISCONNECT => {
            let disconnect = packets::parse_disconnect(frame)?;
            if !DISCONNECT_CODES_V5.contains(&disconnect.reason) || !allowed.contains(&disconnect.reason) {
                let allowed: Vec<String> = allowed.iter().map(|c| format!("0x{c:02x}")).collect();
                return Err(format!("expected a DISCONNECT reason in [{}], got {frame:?}", allowed.join(", ")));
            }
            if disconnect.props.get(prop::SESSION_EXPIRY_INTERVAL).is_some() {
                return Err(format!("the server's DISCONNECT carries a Session Expiry Interval: {frame:?}"));
            }
            if let Some(max) = max_size
                && frame.bytes.len() > max
            {
                return Err(format!(
                    "the DISCONNECT is {} bytes, more than the client's Maximum Packet Size {max}: {frame:?}",
                    frame.bytes.len()
                ));
            }
            Ok(Some(disconnect.reason))
        }
        frames if version.is_v5() => Err(format!(
            "expected the server to close the connection, after at most one DISCONNECT and nothing after it; got {frames:?}"
        )),
        frames => Err(format!("expected the server to close the connection without sending anything; got {frames:?}")),
    }
}

/// Fails unless the connection still answers a PINGREQ.
async fn expect_alive(client: &mut Client, what: &str) -> Result<(), String> {
    client.send(&packets::pingreq()).await?;
    client.expect(kind::PINGRESP).await.map(|_| ()).map_err(|e| format!("expected {what} to stay open: {e}"))
}

/// A CONNECT written field by field: protocol name, level, flags, keep alive
/// 60, an empty property block for 5.0, the client id, then `tail`.
fn raw_connect(version: Version, name: &str, level: u8, flags: u8, client_id: &str, tail: Writer) -> Bytes {
    let mut w = Writer::new().str(name).u8(level).u8(flags).u16(60);
    if version.is_v5() {
        w = w.no_props();
    }
    w.str(client_id).raw(&tail.into_bytes()).frame(0x10)
}

/// Sends a CONNECT built by `builder` and returns the raw CONNACK frame.
async fn connack_frame(ctx: &Ctx, builder: &ConnectBuilder) -> Result<(Client, Frame), String> {
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    client.send(&builder.bytes()).await?;
    let frame = client.expect(kind::CONNACK).await?;
    Ok((client, frame))
}

fn sleep(millis: u64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(millis))
}

// ======================================================================
// CONNACK first
// ======================================================================

async fn connack_first(ctx: Ctx) -> CaseResult {
    let builder = ctx.connect_builder("first");
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    // CONNECT and a PINGREQ in one write: a client may send ahead of CONNACK.
    let mut both = builder.bytes().to_vec();
    both.extend_from_slice(&packets::pingreq());
    client.send(&both).await?;
    let frame = match client.recv(REPLY_WAIT).await? {
        Event::Frame(frame) => frame,
        other => return Err(fail(format!("expected CONNACK as the first packet, got {other:?}"))),
    };
    ensure!(frame.kind == kind::CONNACK, "expected CONNACK as the first packet, got {frame:?}");
    let connack = packets::parse_connack(&frame, ctx.version)?;
    ensure!(connack.code == 0, "expected CONNACK code 0x00 for a valid CONNECT, got {frame:?}");
    ensure!(!connack.session_present, "expected Session Present 0 with clean session / clean start 1, got {frame:?}");
    ensure!(
        frame.body.first().is_some_and(|flags| flags & 0xFE == 0),
        "expected the reserved bits 7-1 of the Connect Acknowledge Flags to be 0, got {frame:?}"
    );
    if ctx.version.is_v5() {
        ensure!(
            connack.props.get(prop::AUTHENTICATION_METHOD).is_none()
                && connack.props.get(prop::AUTHENTICATION_DATA).is_none(),
            "expected no Authentication Method or Data in the CONNACK when the CONNECT had none, got {frame:?}"
        );
    }
    let frame = client.expect(kind::PINGRESP).await?;
    ensure!(frame.body.is_empty(), "expected an empty PINGRESP, got {frame:?}");
    // A second CONNACK (or any other packet) must not follow.
    client.expect_silence().await?;
    client.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

// ======================================================================
// Protocol name and level
// ======================================================================

async fn wrong_protocol_name(ctx: Ctx) -> CaseResult {
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    let id = ctx.client_id("name");
    client.send(&raw_connect(ctx.version, "MQTX", ctx.version.level(), 0x02, &id, Writer::new())).await?;
    if ctx.version.is_v5() {
        // It MAY send CONNACK 0x84 and then MUST close.
        let frames = client.expect_closed(REPLY_WAIT).await?;
        match frames.as_slice() {
            [] => Ok(()),
            [frame] if frame.kind == kind::CONNACK => {
                let connack = check_refusing_connack(frame, ctx.version)?;
                ensure!(connack.code == 0x84, "expected at most a CONNACK 0x84 before the close, got {frame:?}");
                Ok(())
            }
            frames => Err(fail(format!("expected a close, at most after CONNACK 0x84; got {frames:?}"))),
        }
    } else {
        // It MAY disconnect, or go on under some other specification; it must
        // not go on as MQTT 3.1.1, so no successful CONNACK.
        loop {
            match client.recv(Duration::from_secs(2)).await? {
                Event::Closed | Event::Silent => return Ok(()),
                Event::Frame(frame) if frame.kind == kind::CONNACK => {
                    let connack = packets::parse_connack(&frame, ctx.version)?;
                    ensure!(
                        connack.code != 0,
                        "expected no successful CONNACK for protocol name \"MQTX\", got {frame:?}"
                    );
                }
                Event::Frame(_) => {}
            }
        }
    }
}

async fn unsupported_level(ctx: Ctx) -> CaseResult {
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    let id = ctx.client_id("level");
    // Level 6 is no version of MQTT; for the body, the layout of this case's version.
    client.send(&raw_connect(ctx.version, "MQTT", 6, 0x02, &id, Writer::new())).await?;
    if ctx.version.is_v5() {
        // MAY send CONNACK 0x84, then MUST close. A server that also speaks
        // 3.1.1 may answer in that layout with return code 0x01.
        let frames = client.expect_closed(REPLY_WAIT).await?;
        match frames.as_slice() {
            [] => Ok(()),
            [frame] if frame.kind == kind::CONNACK && frame.body.len() == 2 && frame.body[..] == [0x00, 0x01] => Ok(()),
            [frame] if frame.kind == kind::CONNACK => {
                let connack = check_refusing_connack(frame, ctx.version)?;
                ensure!(connack.code == 0x84, "expected at most a CONNACK 0x84 before the close, got {frame:?}");
                Ok(())
            }
            frames => Err(fail(format!("expected a close, at most after CONNACK 0x84; got {frames:?}"))),
        }
    } else {
        match expect_refused(&mut client).await? {
            Some(c) => {
                ensure!(
                    c.code == 0x01,
                    "expected CONNACK return code 0x01 (unacceptable protocol level), got 0x{:02x}",
                    c.code
                );
                Ok(())
            }
            None => Err(fail(
                "expected CONNACK return code 0x01 before the close; the server closed without CONNACK".into(),
            )),
        }
    }
}

// ======================================================================
// Malformed CONNECT
// ======================================================================

/// For a malformed CONNECT: 3.1.1 closes without CONNACK (MQTT-3.1.4-1); 5.0
/// closes, and MAY send first a CONNACK with any Reason Code of 0x80 or more
/// (section 3.1.4, after MQTT-3.1.4-1; `expect_refused` checks it is one of
/// Table 3-1). 0x81 (Malformed Packet) or 0x82 (Protocol Error) fit best, but
/// the standard does not require them.
async fn expect_malformed_connect_closed(client: &mut Client, what: &str) -> Result<(), String> {
    let connack = expect_refused(client).await.map_err(|e| format!("{what}: {e}"))?;
    match (client.version, connack) {
        (_, None) | (Version::V5, Some(_)) => Ok(()),
        (Version::V311, Some(c)) => {
            Err(format!("{what}: expected the close without any CONNACK, got CONNACK code 0x{:02x}", c.code))
        }
    }
}

async fn reserved_flag(ctx: Ctx) -> CaseResult {
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    let id = ctx.client_id("rsv");
    client.send(&raw_connect(ctx.version, "MQTT", ctx.version.level(), 0x03, &id, Writer::new())).await?;
    expect_malformed_connect_closed(&mut client, "CONNECT flags 0x03 (reserved bit set)").await?;
    Ok(())
}

async fn flags_and_payload_disagree(ctx: Ctx) -> CaseResult {
    let v5 = ctx.version.is_v5();
    let will_fields = |w: Writer| {
        let w = if v5 { w.no_props() } else { w };
        w.str(&ctx.topic("w")).bin(b"x")
    };
    let variants: Vec<(&str, u8, Writer)> = vec![
        ("Will QoS 1 without the Will Flag", 0x02 | 0x08, Writer::new()),
        ("Will Retain without the Will Flag", 0x02 | 0x20, Writer::new()),
        ("Will QoS 3", 0x02 | 0x04 | 0x18, will_fields(Writer::new())),
        ("Will Flag without Will Topic and Payload", 0x02 | 0x04, Writer::new()),
        ("User Name Flag without a User Name", 0x02 | 0x80, Writer::new()),
        ("User Name and Password Flags without a Password", 0x02 | 0x80 | 0x40, Writer::new().str("user")),
    ];
    let mut variants = variants;
    if !v5 {
        // In 3.1.1 a password needs a user name.
        variants.push(("Password Flag without the User Name Flag", 0x02 | 0x40, Writer::new().bin(b"pw")));
    }
    for (i, (what, flags, tail)) in variants.into_iter().enumerate() {
        let mut client = Client::open(&ctx.target, ctx.version).await?;
        let id = ctx.client_id(&format!("bad{i}"));
        let bytes = raw_connect(ctx.version, "MQTT", ctx.version.level(), flags, &id, tail);
        client.send(&bytes).await?;
        expect_malformed_connect_closed(&mut client, &format!("{what} ({})", hex(&bytes))).await?;
    }
    // A CONNECT that ends before its Client Identifier.
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    let mut w = Writer::new().str("MQTT").u8(ctx.version.level()).u8(0x02).u16(60);
    if v5 {
        w = w.no_props();
    }
    let bytes = w.frame(0x10);
    client.send(&bytes).await?;
    expect_malformed_connect_closed(&mut client, &format!("CONNECT without a Client Identifier ({})", hex(&bytes)))
        .await?;
    Ok(())
}

// ======================================================================
// Second CONNECT
// ======================================================================

async fn second_connect(ctx: Ctx) -> CaseResult {
    let builder = ctx.connect_builder("twice");
    let (mut client, _) = Client::connect_ok(&ctx.target, &builder).await?;
    client.send(&builder.bytes()).await?;
    expect_server_close(&mut client, &[0x82], None).await.map_err(|e| fail(format!("after a second CONNECT: {e}")))?;
    Ok(())
}

// ======================================================================
// Client identifiers
// ======================================================================

async fn accepted_client_ids(ctx: Ctx) -> CaseResult {
    // Built from the run's unique (alphanumeric) prefix, padded to length.
    let prefix: String = ctx.prefix.chars().filter(char::is_ascii_alphanumeric).collect();
    let pad: String = ID_CHARS.chars().rev().collect();
    let fill = |len: usize| -> String { prefix.chars().chain(pad.chars().cycle()).take(len).collect() };
    let one = {
        let sum: usize = prefix.bytes().map(usize::from).sum();
        ID_CHARS.chars().nth(sum % ID_CHARS.len()).unwrap_or('z').to_string()
    };
    let mut ids = vec![one, fill(2), fill(12), fill(23)];
    // Every accepted character somewhere: unique prefix plus chunks, 23 bytes at most.
    let chunk = 23usize.saturating_sub(prefix.len()).max(1);
    for part in ID_CHARS.as_bytes().chunks(chunk) {
        ids.push(format!("{prefix}{}", String::from_utf8_lossy(part)));
    }
    for id in ids {
        let builder = ctx.connect_builder("x");
        let builder = ConnectBuilder { client_id: id.clone(), ..builder };
        let (mut client, connack) = Client::connect(&ctx.target, &builder).await?;
        ensure!(
            connack.code == 0,
            "expected client id {id:?} ({} bytes) accepted, got CONNACK code 0x{:02x}",
            id.len(),
            connack.code
        );
        // (Ignored: another run may hold the one-character id and take this connection over.)
        let _ = client.send(&normal_disconnect(ctx.version)).await;
    }
    Ok(())
}

async fn empty_client_id_v311(ctx: Ctx) -> CaseResult {
    let builder = ConnectBuilder { client_id: String::new(), ..ctx.connect_builder("x") };
    let (mut first, connack) = Client::connect(&ctx.target, &builder).await?;
    if connack.code != 0 {
        ensure!(
            connack.code == 0x02,
            "expected CONNACK 0x00 or 0x02 (identifier rejected) for an empty client id, got 0x{:02x}",
            connack.code
        );
        ensure!(!connack.session_present, "expected Session Present 0 with a non-zero return code");
        expect_server_close(&mut first, &[], None).await.map_err(|e| fail(format!("after CONNACK 0x02: {e}")))?;
        return Ok(());
    }
    // Accepted: a second empty-id client gets another unique id, so neither
    // connection takes the other over.
    let (mut second, connack) = Client::connect(&ctx.target, &builder).await?;
    ensure!(
        connack.code == 0,
        "the server accepted one empty client id, then refused the next with 0x{:02x}",
        connack.code
    );
    expect_alive(&mut first, "the first empty-id connection (its assigned id must be unique)").await?;
    expect_alive(&mut second, "the second empty-id connection").await?;
    first.send(&normal_disconnect(ctx.version)).await?;
    second.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn empty_client_id_persistent_v311(ctx: Ctx) -> CaseResult {
    let builder = ConnectBuilder { client_id: String::new(), ..ctx.connect_builder("x") }.clean(false);
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    client.send(&builder.bytes()).await?;
    let connack = expect_refused(&mut client).await?;
    let Some(connack) = connack else {
        return Err(fail(
            "expected CONNACK 0x02 (identifier rejected) before the close; the server closed without CONNACK".into(),
        ));
    };
    ensure!(
        connack.code == 0x02,
        "expected CONNACK return code 0x02 (identifier rejected), got 0x{:02x}",
        connack.code
    );
    Ok(())
}

async fn assigned_client_id(ctx: Ctx) -> CaseResult {
    let builder = ConnectBuilder { client_id: String::new(), ..ctx.connect_builder("x") }.props(expiry(30));
    let (mut first, frame) = connack_frame(&ctx, &builder).await?;
    let connack = packets::parse_connack(&frame, ctx.version)?;
    if connack.code != 0 {
        check_refusing_connack(&frame, ctx.version)?;
        expect_server_close(&mut first, &[], None)
            .await
            .map_err(|e| fail(format!("after refusing an empty client id with {frame:?}: {e}")))?;
        return Ok(());
    }
    let Some(assigned) = connack.props.str(prop::ASSIGNED_CLIENT_IDENTIFIER).map(str::to_string) else {
        return Err(fail(format!(
            "expected an Assigned Client Identifier in the CONNACK for an empty client id, got {frame:?}"
        )));
    };
    ensure!(!assigned.is_empty(), "expected a non-empty Assigned Client Identifier, got {frame:?}");
    // The session is processed as if the client had sent that id: subscribe, leave, resume under it.
    let topic = ctx.topic("asg");
    subscribe(&mut first, &[(&topic, 1)]).await?;
    // A second empty-id client gets a different id and does not take the first over.
    let (mut second, frame2) = connack_frame(&ctx, &builder.clone().props(Props::new())).await?;
    let connack2 = packets::parse_connack(&frame2, ctx.version)?;
    ensure!(connack2.code == 0, "the server accepted one empty client id, then refused the next: {frame2:?}");
    let assigned2 = connack2.props.str(prop::ASSIGNED_CLIENT_IDENTIFIER).unwrap_or_default().to_string();
    ensure!(!assigned2.is_empty(), "expected an Assigned Client Identifier in the second CONNACK, got {frame2:?}");
    ensure!(assigned2 != assigned, "expected a new Assigned Client Identifier, got {assigned:?} twice");
    expect_alive(&mut first, "the first connection (its assigned id must be unique)").await?;
    second.send(&normal_disconnect(ctx.version)).await?;
    disconnect_and_close(first, &normal_disconnect(ctx.version)).await?;
    // Resume with the assigned id; Session Expiry 0 now ends it at this disconnect.
    let resume = ConnectBuilder { client_id: assigned.clone(), ..ctx.connect_builder("x") }.clean(false);
    let (mut again, connack) = Client::connect_ok(&ctx.target, &resume).await?;
    ensure!(
        connack.session_present,
        "expected Session Present 1 when resuming the session of assigned id {assigned:?}"
    );
    publish_once(&ctx, "pub", &topic, b"to-assigned", 1, false).await?;
    let p =
        expect_message(&mut again, REPLY_WAIT, "the message for the subscription made under the assigned id").await?;
    ensure!(p.payload.as_ref() == b"to-assigned", "expected payload \"to-assigned\", got {:?}", p.payload);
    again.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn long_client_id(ctx: Ctx) -> CaseResult {
    let prefix: String = ctx.prefix.chars().filter(char::is_ascii_alphanumeric).collect();
    let id: String = prefix.chars().chain(ID_CHARS.chars().cycle()).take(300).collect();
    let builder = ConnectBuilder { client_id: id, ..ctx.connect_builder("x") };
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    client.send(&builder.bytes()).await?;
    match client.recv(REPLY_WAIT).await? {
        Event::Frame(frame) if frame.kind == kind::CONNACK => {
            let connack = packets::parse_connack(&frame, ctx.version)?;
            if connack.code == 0 {
                // The server may accept longer ids.
                client.send(&normal_disconnect(ctx.version)).await?;
                return Ok(());
            }
            check_refusing_connack(&frame, ctx.version)?;
            if !ctx.version.is_v5() {
                ensure!(connack.code == 0x02, "expected a 300-byte id accepted or rejected with 0x02, got {frame:?}");
            }
            expect_server_close(&mut client, &[], None).await.map_err(|e| fail(format!("after {frame:?}: {e}")))?;
            Ok(())
        }
        Event::Closed if ctx.version.is_v5() => Ok(()),
        Event::Closed => Err(fail(
            "expected a 300-byte client id accepted, or rejected with CONNACK 0x02; the server closed without CONNACK"
                .into(),
        )),
        other => Err(fail(format!("expected CONNACK, got {other:?}"))),
    }
}

// ======================================================================
// Data after a rejected CONNECT
// ======================================================================

async fn data_after_rejected_connect(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("rej");
    let mut watcher = subscriber(&ctx, "watch", &topic, 0).await?;
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    let connect = if ctx.version.is_v5() {
        // An authentication method no server knows.
        ctx.connect_builder("rej").props(Props::new().str(prop::AUTHENTICATION_METHOD, "x-conformance-unknown-method"))
    } else {
        // An empty client id with clean session 0 must be rejected.
        ConnectBuilder { client_id: String::new(), ..ctx.connect_builder("x") }.clean(false)
    };
    let mut bytes = connect.bytes().to_vec();
    bytes.extend_from_slice(&packets::publish(ctx.version, &topic, b"after-reject", 0, false, 0, Props::new()));
    bytes.extend_from_slice(&packets::publish(ctx.version, &topic, b"after-reject", 1, false, 7, Props::new()));
    client.send(&bytes).await?;
    match client.recv(REPLY_WAIT).await? {
        Event::Frame(frame) if frame.kind == kind::CONNACK => {
            let connack = packets::parse_connack(&frame, ctx.version)?;
            if connack.code == 0 {
                if ctx.version.is_v5() {
                    return Err(skip("the target accepted the made-up authentication method"));
                }
                return Err(fail(format!(
                    "expected CONNACK 0x02 for an empty client id with clean session 0, got {frame:?}"
                )));
            }
        }
        Event::Frame(frame) if frame.kind == kind::AUTH => {
            return Err(skip("the target continued authentication for the made-up method"));
        }
        Event::Frame(frame) => return Err(fail(format!("expected CONNACK or a close, got {frame:?}"))),
        Event::Closed => {}
        Event::Silent => return Err(fail("expected the CONNECT to be refused; nothing arrived".into())),
    }
    expect_no_message(&mut watcher, Duration::from_secs(1), "no PUBLISH from the refused connection").await?;
    watcher.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

// ======================================================================
// Sessions
// ======================================================================

async fn session_created_then_resumed(ctx: Ctx) -> CaseResult {
    let (c, connack) = Client::connect_ok(&ctx.target, &persistent(&ctx, "ses", false)).await?;
    ensure!(
        !connack.session_present,
        "expected Session Present 0 for a new client id with clean session / clean start 0"
    );
    disconnect_and_close(c, &normal_disconnect(ctx.version)).await?;
    // Another client id does not see that session.
    let (mut other, connack) = Client::connect_ok(&ctx.target, &persistent(&ctx, "ses2", false)).await?;
    ensure!(!connack.session_present, "expected Session Present 0 for another client id (sessions are per client id)");
    other.send(&normal_disconnect(ctx.version)).await?;
    let (mut c, connack) = Client::connect_ok(&ctx.target, &persistent(&ctx, "ses", false)).await?;
    ensure!(connack.session_present, "expected Session Present 1 when reconnecting with clean session / clean start 0");
    c.send(&normal_disconnect(ctx.version)).await?;
    end_session(&ctx, "ses").await?;
    end_session(&ctx, "ses2").await?;
    Ok(())
}

async fn resumed_session_delivers(ctx: Ctx) -> CaseResult {
    let qos2 = ctx.caps.maximum_qos.min(2);
    ctx.require(qos2 >= 1, "QoS 1")?;
    let topic = ctx.topic("q");
    let (mut c, _) = Client::connect_ok(&ctx.target, &persistent(&ctx, "res", false)).await?;
    subscribe(&mut c, &[(&topic, 2)]).await?;
    disconnect_and_close(c, &normal_disconnect(ctx.version)).await?;
    publish_once(&ctx, "pub1", &topic, b"queued-1", 1, false).await?;
    if qos2 == 2 {
        publish_once(&ctx, "pub2", &topic, b"queued-2", 2, false).await?;
    }
    let (mut c, connack) = Client::connect_ok(&ctx.target, &persistent(&ctx, "res", false)).await?;
    ensure!(connack.session_present, "expected Session Present 1 when resuming the session");
    let mut wanted: Vec<&[u8]> = vec![b"queued-1"];
    if qos2 == 2 {
        wanted.push(b"queued-2");
    }
    while !wanted.is_empty() {
        let p = expect_message(&mut c, REPLY_WAIT, "the QoS 1/2 messages published while the client was away").await?;
        ensure!(p.qos >= 1, "expected the queued message at QoS 1 or 2, got QoS {}", p.qos);
        wanted.retain(|w| *w != p.payload.as_ref());
    }
    // The subscription is still there for new messages too.
    publish_once(&ctx, "pub3", &topic, b"live", 1, false).await?;
    let p = expect_message(&mut c, REPLY_WAIT, "a new message on the resumed subscription").await?;
    ensure!(p.payload.as_ref() == b"live", "expected payload \"live\", got {:?}", p.payload);
    c.send(&normal_disconnect(ctx.version)).await?;
    end_session(&ctx, "res").await?;
    Ok(())
}

async fn clean_discards_session(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("cl");
    let (mut c, _) = Client::connect_ok(&ctx.target, &persistent(&ctx, "cln", false)).await?;
    subscribe(&mut c, &[(&topic, 1)]).await?;
    disconnect_and_close(c, &normal_disconnect(ctx.version)).await?;
    // Clean session / clean start 1 (and for 5.0 a session that outlives the connection).
    let (mut c, connack) = Client::connect_ok(&ctx.target, &persistent(&ctx, "cln", true)).await?;
    ensure!(!connack.session_present, "expected Session Present 0 with clean session / clean start 1");
    publish_once(&ctx, "pub", &topic, b"old-sub", 1, false).await?;
    expect_no_message(&mut c, SILENCE_WAIT * 2, "nothing: the subscription belonged to the discarded session").await?;
    disconnect_and_close(c, &normal_disconnect(ctx.version)).await?;
    if !ctx.version.is_v5() {
        // 3.1.1: the clean session lasted as long as its connection; nothing of it is reused.
        let (mut c, connack) = Client::connect_ok(&ctx.target, &persistent(&ctx, "cln", false)).await?;
        ensure!(!connack.session_present, "expected Session Present 0: a clean session must not be stored");
        c.send(&normal_disconnect(ctx.version)).await?;
    }
    end_session(&ctx, "cln").await?;
    Ok(())
}

async fn session_lasts_while_connected(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("live");
    let builder =
        if ctx.version.is_v5() { ctx.connect_builder("live").props(expiry(1)) } else { ctx.connect_builder("live") };
    let (mut c, _) = Client::connect_ok(&ctx.target, &builder).await?;
    subscribe(&mut c, &[(&topic, 0)]).await?;
    // Longer than the Session Expiry Interval (5.0), while connected.
    for _ in 0..5 {
        sleep(500).await;
        expect_alive(&mut c, "the connection").await?;
    }
    publish_once(&ctx, "pub", &topic, b"still", 0, false).await?;
    let p =
        expect_message(&mut c, REPLY_WAIT, "the message: the session's subscription must last while connected").await?;
    ensure!(p.payload.as_ref() == b"still", "expected payload \"still\", got {:?}", p.payload);
    c.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn session_without_expiry(ctx: Ctx) -> CaseResult {
    let (mut c, _) = Client::connect_ok(&ctx.target, &ctx.connect_builder("noexp").clean(false)).await?;
    subscribe(&mut c, &[(&ctx.topic("n"), 0)]).await?;
    disconnect_and_close(c, &normal_disconnect(ctx.version)).await?;
    let (mut c, connack) = Client::connect_ok(&ctx.target, &ctx.connect_builder("noexp").clean(false)).await?;
    ensure!(
        !connack.session_present,
        "expected Session Present 0: without a Session Expiry Interval the session ends with the connection"
    );
    c.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn session_expiry_elapses(ctx: Ctx) -> CaseResult {
    let short = ctx.connect_builder("exp1").props(expiry(1));
    let long = ctx.connect_builder("exp30").props(expiry(30));
    for builder in [&short, &long] {
        let (c, _) = Client::connect_ok(&ctx.target, builder).await?;
        disconnect_and_close(c, &normal_disconnect(ctx.version)).await?;
    }
    sleep(3000).await;
    let (mut c, connack) = Client::connect_ok(&ctx.target, &ctx.connect_builder("exp30").clean(false)).await?;
    ensure!(
        connack.session_present,
        "expected Session Present 1: a session with expiry 30 s must be kept 3 s after the close"
    );
    c.send(&normal_disconnect(ctx.version)).await?;
    let (mut c, connack) = Client::connect_ok(&ctx.target, &ctx.connect_builder("exp1").clean(false)).await?;
    ensure!(
        !connack.session_present,
        "expected Session Present 0: a session with expiry 1 s must be discarded 3 s after the close"
    );
    c.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn disconnect_changes_expiry(ctx: Ctx) -> CaseResult {
    // CONNECT 30 s, DISCONNECT 0: ends at the close.
    let (c, _) = Client::connect_ok(&ctx.target, &ctx.connect_builder("dx0").props(expiry(30))).await?;
    disconnect_and_close(c, &packets::disconnect(ctx.version, 0, expiry(0))).await?;
    // CONNECT 1 s, DISCONNECT 30 s: kept beyond 1 s.
    let (c, _) = Client::connect_ok(&ctx.target, &ctx.connect_builder("dx30").props(expiry(1))).await?;
    disconnect_and_close(c, &packets::disconnect(ctx.version, 0, expiry(30))).await?;
    sleep(2500).await;
    let (mut c, connack) = Client::connect_ok(&ctx.target, &ctx.connect_builder("dx0").clean(false)).await?;
    ensure!(!connack.session_present, "expected Session Present 0: DISCONNECT set the Session Expiry Interval to 0");
    c.send(&normal_disconnect(ctx.version)).await?;
    let (mut c, connack) = Client::connect_ok(&ctx.target, &ctx.connect_builder("dx30").clean(false)).await?;
    ensure!(
        connack.session_present,
        "expected Session Present 1: DISCONNECT raised the Session Expiry Interval from 1 s to 30 s"
    );
    c.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn disconnect_expiry_after_zero(ctx: Ctx) -> CaseResult {
    let (mut c, _) = Client::connect_ok(&ctx.target, &ctx.connect_builder("dz").clean(false)).await?;
    c.send(&packets::disconnect(ctx.version, 0, expiry(30))).await?;
    // The server closes (the client would too); it may first send DISCONNECT 0x82.
    expect_server_close(&mut c, &[0x82], None)
        .await
        .map_err(|e| fail(format!("after a DISCONNECT with Session Expiry 30 on a session with expiry 0: {e}")))?;
    // The invalid DISCONNECT does not extend the session.
    let (mut c, connack) = Client::connect_ok(&ctx.target, &ctx.connect_builder("dz").clean(false)).await?;
    ensure!(
        !connack.session_present,
        "expected Session Present 0: the session had expiry 0 and the DISCONNECT raising it is a protocol error"
    );
    c.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

// ======================================================================
// Takeover
// ======================================================================

async fn takeover(ctx: Ctx) -> CaseResult {
    const MAX: u32 = 64;
    let mut first_builder = persistent(&ctx, "dup", false);
    if ctx.version.is_v5() {
        first_builder = first_builder.props(expiry(30).u32(prop::MAXIMUM_PACKET_SIZE, MAX));
    }
    let (mut first, _) = Client::connect_ok(&ctx.target, &first_builder).await?;
    subscribe(&mut first, &[(&ctx.topic("t"), 0)]).await?;
    let (mut second, connack) = Client::connect_ok(&ctx.target, &persistent(&ctx, "dup", false)).await?;
    ensure!(connack.session_present, "expected Session Present 1: the new connection takes over the existing session");
    let max = usize::try_from(MAX).unwrap_or(usize::MAX);
    expect_server_close(&mut first, &[0x8E], Some(max))
        .await
        .map_err(|e| fail(format!("the existing connection with the same client id: {e}")))?;
    expect_alive(&mut second, "the new connection").await?;
    second.send(&normal_disconnect(ctx.version)).await?;
    end_session(&ctx, "dup").await?;
    Ok(())
}

// ======================================================================
// Wills
// ======================================================================

async fn will_on_drop(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("will");
    let mut watcher = subscriber(&ctx, "watch", &topic, 0).await?;
    let builder = ctx.connect_builder("dying").will(will(&topic, b"gone", false, Props::new()));
    let (client, _) = Client::connect_ok(&ctx.target, &builder).await?;
    client.drop_connection();
    let p = expect_message(&mut watcher, REPLY_WAIT, "the Will Message after the connection dropped").await?;
    ensure!(
        p.topic == topic && p.payload.as_ref() == b"gone",
        "expected the will on {topic:?} with payload \"gone\", got {p:?}"
    );
    ensure!(!p.retain, "expected the will (Will Retain 0) delivered without RETAIN, got {p:?}");
    // Published as non-retained: a new subscriber gets no retained copy.
    let mut late = subscriber(&ctx, "late", &topic, 0).await?;
    expect_no_message(&mut late, SILENCE_WAIT * 2, "no retained message: the will had Will Retain 0").await?;
    watcher.send(&normal_disconnect(ctx.version)).await?;
    late.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn will_retained(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    let topic = ctx.topic("rwill");
    let mut watcher = subscriber(&ctx, "watch", &topic, 0).await?;
    let builder = ctx.connect_builder("dying").will(will(&topic, b"kept", true, Props::new()));
    let (client, _) = Client::connect_ok(&ctx.target, &builder).await?;
    client.drop_connection();
    expect_message(&mut watcher, REPLY_WAIT, "the Will Message after the connection dropped").await?;
    let mut late = subscriber(&ctx, "late", &topic, 0).await?;
    let p = expect_message(&mut late, REPLY_WAIT, "the will as a retained message for a new subscriber").await?;
    ensure!(p.payload.as_ref() == b"kept" && p.retain, "expected the retained will \"kept\" with RETAIN 1, got {p:?}");
    // Clear the retained message.
    publish_once(&ctx, "clear", &topic, b"", 0, true).await?;
    watcher.send(&normal_disconnect(ctx.version)).await?;
    late.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn will_discarded_on_disconnect(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("nowill");
    let mut watcher = subscriber(&ctx, "watch", &topic, 0).await?;
    let builder = ctx.connect_builder("polite").will(will(&topic, b"should-not", false, Props::new()));
    let (client, _) = Client::connect_ok(&ctx.target, &builder).await?;
    disconnect_and_close(client, &normal_disconnect(ctx.version)).await?;
    expect_no_message(&mut watcher, Duration::from_secs(1), "no will after a normal DISCONNECT").await?;
    watcher.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn no_will_without_flag(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.wildcard_subscriptions, "wildcard subscriptions")?;
    let mut watcher = subscriber(&ctx, "watch", &ctx.topic("#"), 0).await?;
    let (client, _) = ctx.connect("nowill").await?;
    client.drop_connection();
    expect_no_message(&mut watcher, Duration::from_secs(1), "nothing: the dropped connection had no will").await?;
    watcher.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn will_on_protocol_error(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("pe");
    let mut watcher = subscriber(&ctx, "watch", &topic, 0).await?;
    let builder = ctx.connect_builder("bad").will(will(&topic, b"violated", false, Props::new()));
    let (mut client, _) = Client::connect_ok(&ctx.target, &builder).await?;
    // A second CONNECT: a protocol error, after which the server closes.
    client.send(&builder.bytes()).await?;
    client.expect_closed(REPLY_WAIT).await?;
    let p = expect_message(&mut watcher, REPLY_WAIT, "the Will Message after the server closed the connection").await?;
    ensure!(p.payload.as_ref() == b"violated", "expected the will \"violated\", got {p:?}");
    watcher.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn will_on_disconnect_0x04(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("w04");
    let mut watcher = subscriber(&ctx, "watch", &topic, 0).await?;
    let builder = ctx.connect_builder("w04").will(will(&topic, b"by-request", false, Props::new()));
    let (client, _) = Client::connect_ok(&ctx.target, &builder).await?;
    // The will is published once the connection is closed: the client closes it.
    disconnect_and_close(client, &packets::disconnect(ctx.version, 0x04, Props::new())).await?;
    let p = expect_message(&mut watcher, REPLY_WAIT, "the Will Message after DISCONNECT 0x04").await?;
    ensure!(p.payload.as_ref() == b"by-request", "expected the will \"by-request\", got {p:?}");
    // Published once, then removed.
    expect_no_message(&mut watcher, SILENCE_WAIT * 2, "the will only once").await?;
    watcher.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn will_user_property_order(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("wup");
    let mut watcher = subscriber(&ctx, "watch", &topic, 0).await?;
    let sent = [("k", "1"), ("a", "2"), ("k", "3"), ("b", "4")];
    let props = sent.iter().fold(Props::new(), |p, (k, v)| p.user(k, v));
    let builder = ctx.connect_builder("wup").will(will(&topic, b"props", false, props));
    let (client, _) = Client::connect_ok(&ctx.target, &builder).await?;
    client.drop_connection();
    let p = expect_message(&mut watcher, REPLY_WAIT, "the Will Message").await?;
    ensure!(
        p.props.keeps_user_properties(&sent),
        "expected the will's User Properties in order {sent:?} (among any the server adds), got {:?}",
        p.props.user_properties()
    );
    watcher.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

fn will_with_delay(ctx: &Ctx, name: &str, topic: &str, delay: u32, session_expiry: u32) -> ConnectBuilder {
    ctx.connect_builder(name).props(expiry(session_expiry)).will(will(
        topic,
        b"delayed",
        false,
        Props::new().u32(prop::WILL_DELAY_INTERVAL, delay),
    ))
}

async fn will_delay_postpones(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("wd");
    let mut watcher = subscriber(&ctx, "watch", &topic, 0).await?;
    let (client, _) = Client::connect_ok(&ctx.target, &will_with_delay(&ctx, "wd", &topic, 3, 30)).await?;
    let dropped = Instant::now();
    client.drop_connection();
    expect_no_message(&mut watcher, Duration::from_millis(1500), "no will before its 3 s Will Delay Interval").await?;
    let p =
        expect_message(&mut watcher, Duration::from_secs(6), "the will once the Will Delay Interval elapsed").await?;
    ensure!(p.payload.as_ref() == b"delayed", "expected the will \"delayed\", got {p:?}");
    let after = dropped.elapsed();
    ensure!(
        after >= Duration::from_millis(2000),
        "expected the will no earlier than the 3 s delay; it came after {after:?}"
    );
    watcher.send(&normal_disconnect(ctx.version)).await?;
    end_session(&ctx, "wd").await?;
    Ok(())
}

async fn will_at_session_end(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("we");
    let mut watcher = subscriber(&ctx, "watch", &topic, 0).await?;
    // Will Delay 60 s, but the session expires after 1 s.
    let (client, _) = Client::connect_ok(&ctx.target, &will_with_delay(&ctx, "we", &topic, 60, 1)).await?;
    client.drop_connection();
    let p =
        expect_message(&mut watcher, Duration::from_secs(6), "the will when the session (expiry 1 s) ended").await?;
    ensure!(p.payload.as_ref() == b"delayed", "expected the will \"delayed\", got {p:?}");
    watcher.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn will_cancelled_by_reconnect(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("wr");
    let mut watcher = subscriber(&ctx, "watch", &topic, 0).await?;
    let (client, _) = Client::connect_ok(&ctx.target, &will_with_delay(&ctx, "wr", &topic, 2, 30)).await?;
    client.drop_connection();
    sleep(300).await;
    // Back to the same session before the Will Delay Interval passes.
    let builder = ctx.connect_builder("wr").clean(false).props(expiry(30));
    let (mut again, connack) = Client::connect_ok(&ctx.target, &builder).await?;
    ensure!(connack.session_present, "expected Session Present 1 on reconnecting to the session");
    expect_no_message(
        &mut watcher,
        Duration::from_secs(3),
        "no will: the session was resumed within the Will Delay Interval",
    )
    .await?;
    again.send(&packets::disconnect(ctx.version, 0, expiry(0))).await?;
    expect_no_message(&mut watcher, SILENCE_WAIT, "no will after the normal DISCONNECT").await?;
    watcher.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn will_qos_above_maximum(ctx: Ctx) -> CaseResult {
    if ctx.caps.maximum_qos >= 2 {
        return Err(skip("the target supports QoS 2; the statement binds servers with a lower Maximum QoS"));
    }
    let mut w = will(&ctx.topic("wq"), b"x", false, Props::new());
    w.qos = ctx.caps.maximum_qos + 1;
    let builder = ctx.connect_builder("wq").will(w);
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    client.send(&builder.bytes()).await?;
    expect_refused(&mut client).await?;
    Ok(())
}

async fn will_retain_unavailable(ctx: Ctx) -> CaseResult {
    if ctx.caps.retain {
        return Err(skip("the target supports retained messages; the statement binds servers that do not"));
    }
    let builder = ctx.connect_builder("wret").will(will(&ctx.topic("wret"), b"x", true, Props::new()));
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    client.send(&builder.bytes()).await?;
    expect_refused(&mut client).await?;
    Ok(())
}

// ======================================================================
// Keep alive
// ======================================================================

async fn keep_alive_expiry(ctx: Ctx, only_without_server_keep_alive: bool) -> CaseResult {
    let topic = ctx.topic("ka");
    let mut watcher = subscriber(&ctx, "watch", &topic, 0).await?;
    let builder = ctx.connect_builder("ka").keep_alive(1).will(will(&topic, b"timed-out", false, Props::new()));
    let (mut client, connack) = Client::connect_ok(&ctx.target, &builder).await?;
    let keep_alive = match connack.props.u16(prop::SERVER_KEEP_ALIVE) {
        None => 1,
        Some(_) if only_without_server_keep_alive => {
            return Err(skip("the target sends a Server Keep Alive; the statement is about its absence"));
        }
        Some(0) => return Err(skip("the target's Server Keep Alive 0 turns keep alive off")),
        Some(s) if s > 3 => return Err(skip("the target's Server Keep Alive is too long to wait for")),
        Some(s) => s,
    };
    let started = Instant::now();
    // Silent: after 1.5 times the keep alive the server must close (a 5.0
    // server may send DISCONNECT 0x8D first). The bound is generous: servers
    // check keep alives periodically (Mosquitto 2.0 every 5 s).
    let within = Duration::from_millis(u64::from(keep_alive) * 1500 + 7500);
    let frames = client.expect_closed(within).await.map_err(|e| fail(format!("keep alive {keep_alive} s: {e}")))?;
    match frames.as_slice() {
        [] => {}
        [frame] if ctx.version.is_v5() && frame.kind == kind::DISCONNECT => {
            let d = packets::parse_disconnect(frame)?;
            ensure!(
                d.reason == 0x8D,
                "expected at most DISCONNECT 0x8D (keep alive timeout) before the close, got {frame:?}"
            );
        }
        frames => return Err(fail(format!("expected the close after the keep alive, got {frames:?} first"))),
    }
    let took = started.elapsed();
    ensure!(
        took >= Duration::from_millis(u64::from(keep_alive) * 900),
        "the server closed after {took:?}, before the keep alive of {keep_alive} s had passed"
    );
    let p = expect_message(&mut watcher, REPLY_WAIT, "the will after the keep-alive close").await?;
    ensure!(p.payload.as_ref() == b"timed-out", "expected the will \"timed-out\", got {p:?}");
    watcher.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn pingreq_keeps_connection(ctx: Ctx) -> CaseResult {
    let (mut client, _) = Client::connect_ok(&ctx.target, &ctx.connect_builder("ping").keep_alive(1)).await?;
    for _ in 0..6 {
        sleep(500).await;
        client.send(&packets::pingreq()).await?;
        let frame = client.expect(kind::PINGRESP).await?;
        ensure!(frame.flags == 0 && frame.body.is_empty(), "expected PINGRESP d0 00, got {frame:?}");
    }
    client.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

// ======================================================================
// DISCONNECT
// ======================================================================

async fn disconnect_reserved_flags(ctx: Ctx) -> CaseResult {
    let (mut client, _) = ctx.connect("dflag").await?;
    let bytes =
        if ctx.version.is_v5() { Writer::new().u8(0).no_props().frame(0xE1) } else { Writer::new().frame(0xE1) };
    client.send(&bytes).await?;
    expect_server_close(&mut client, &[0x81], None)
        .await
        .map_err(|e| fail(format!("after DISCONNECT with flags 0x1 ({}): {e}", hex(&bytes))))?;
    Ok(())
}

// ======================================================================
// CONNECT / CONNACK properties (5.0)
// ======================================================================

async fn maximum_packet_size(ctx: Ctx) -> CaseResult {
    const MAX: u32 = 64;
    let max = usize::try_from(MAX).unwrap_or(usize::MAX);
    let topic = ctx.topic("mps");
    let builder = ctx.connect_builder("mps").props(Props::new().u32(prop::MAXIMUM_PACKET_SIZE, MAX));
    let (mut client, frame) = connack_frame(&ctx, &builder).await?;
    ensure!(
        frame.bytes.len() <= max,
        "expected a CONNACK within the client's Maximum Packet Size {MAX}, got {} bytes: {frame:?}",
        frame.bytes.len()
    );
    let connack = packets::parse_connack(&frame, ctx.version)?;
    ensure!(connack.code == 0, "expected CONNACK 0x00, got {frame:?}");
    let qos = ctx.caps.maximum_qos.min(1);
    subscribe(&mut client, &[(&topic, qos)]).await?;
    let big = vec![b'x'; 200];
    publish_once(&ctx, "pubbig", &topic, &big, qos, false).await?;
    publish_once(&ctx, "pubsmall", &topic, b"small", qos, false).await?;
    let p = expect_message(&mut client, REPLY_WAIT, "the small message (the large one must be dropped)").await?;
    ensure!(
        p.payload.as_ref() == b"small",
        "expected only the small message, got {} bytes of payload first",
        p.payload.len()
    );
    expect_no_message(&mut client, SILENCE_WAIT, "nothing more").await?;
    client.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn topic_aliases(ctx: Ctx, maximum: u16) -> CaseResult {
    let topics: Vec<String> = (0..3).map(|i| ctx.topic(&format!("ta{i}"))).collect();
    let props = if maximum > 0 { Props::new().u16(prop::TOPIC_ALIAS_MAXIMUM, maximum) } else { Props::new() };
    let (mut client, _) = Client::connect_ok(&ctx.target, &ctx.connect_builder("ta").props(props)).await?;
    let filters: Vec<(&str, u8)> = topics.iter().map(|t| (t.as_str(), 0)).collect();
    subscribe(&mut client, &filters).await?;
    let (mut publisher, _) = ctx.connect("tapub").await?;
    for round in 0..3 {
        for topic in &topics {
            publish_on(&mut publisher, topic, format!("r{round}").as_bytes(), 0, false, 1).await?;
        }
    }
    publisher.send(&normal_disconnect(ctx.version)).await?;
    let mut known: std::collections::HashMap<u16, String> = Default::default();
    for _ in 0..9 {
        let p = expect_message(&mut client, REPLY_WAIT, "each of the nine messages").await?;
        match p.props.u16(prop::TOPIC_ALIAS) {
            None => ensure!(!p.topic.is_empty(), "a PUBLISH without a Topic Alias has an empty topic: {p:?}"),
            Some(alias) => {
                ensure!(
                    maximum > 0,
                    "expected no Topic Alias (the client sent no Topic Alias Maximum), got alias {alias}"
                );
                ensure!(alias >= 1 && alias <= maximum, "expected a Topic Alias within 1..={maximum}, got {alias}");
                if p.topic.is_empty() {
                    ensure!(known.contains_key(&alias), "alias {alias} used with an empty topic before it was set");
                } else {
                    known.insert(alias, p.topic.clone());
                }
            }
        }
    }
    client.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn no_response_information(ctx: Ctx) -> CaseResult {
    let (mut client, frame) = connack_frame(&ctx, &ctx.connect_builder("ri")).await?;
    let connack = packets::parse_connack(&frame, ctx.version)?;
    ensure!(
        connack.props.get(prop::RESPONSE_INFORMATION).is_none(),
        "expected no Response Information without the request, got {frame:?}"
    );
    client.send(&normal_disconnect(ctx.version)).await?;
    let builder = ctx.connect_builder("ri0").props(Props::new().u8(prop::REQUEST_RESPONSE_INFORMATION, 0));
    let (mut client, frame) = connack_frame(&ctx, &builder).await?;
    let connack = packets::parse_connack(&frame, ctx.version)?;
    ensure!(
        connack.props.get(prop::RESPONSE_INFORMATION).is_none(),
        "expected no Response Information with Request Response Information 0, got {frame:?}"
    );
    client.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

fn no_problem_information(frame: &Frame, props: &Properties) -> Result<(), String> {
    if props.get(prop::REASON_STRING).is_some() || !props.user_properties().is_empty() {
        return Err(format!(
            "expected no Reason String or User Property on {} with Request Problem Information 0, got {frame:?}",
            kind_name(frame.kind)
        ));
    }
    Ok(())
}

async fn request_problem_information_off(ctx: Ctx) -> CaseResult {
    let builder = ctx.connect_builder("rpi").props(Props::new().u8(prop::REQUEST_PROBLEM_INFORMATION, 0));
    let (mut c, _) = Client::connect_ok(&ctx.target, &builder).await?;
    let v = ctx.version;
    let topic = ctx.topic("rpi");
    if ctx.caps.maximum_qos >= 1 {
        // QoS 1 with no subscriber (PUBACK may say 0x10).
        c.send(&packets::publish(v, &topic, b"x", 1, false, 1, Props::new())).await?;
        let frame = c.expect(kind::PUBACK).await?;
        no_problem_information(&frame, &packets::parse_ack(&frame, v)?.props)?;
    }
    if ctx.caps.maximum_qos >= 2 {
        c.send(&packets::publish(v, &topic, b"x", 2, false, 2, Props::new())).await?;
        let frame = c.expect(kind::PUBREC).await?;
        no_problem_information(&frame, &packets::parse_ack(&frame, v)?.props)?;
        c.send(&packets::ack(kind::PUBREL, 2)).await?;
        let frame = c.expect(kind::PUBCOMP).await?;
        no_problem_information(&frame, &packets::parse_ack(&frame, v)?.props)?;
    }
    // PUBREL for an unknown packet identifier (PUBCOMP 0x92).
    c.send(&packets::ack(kind::PUBREL, 99)).await?;
    let frame = c.expect(kind::PUBCOMP).await?;
    no_problem_information(&frame, &packets::parse_ack(&frame, v)?.props)?;
    // SUBSCRIBE, and UNSUBSCRIBE of a filter never subscribed (UNSUBACK 0x11).
    c.send(&packets::subscribe(v, 3, &[(&topic, 0)], Props::new())).await?;
    let frame = c.expect(kind::SUBACK).await?;
    no_problem_information(&frame, &packets::parse_suback(&frame, v)?.props)?;
    c.send(&packets::unsubscribe(v, 4, &[&ctx.topic("never")])).await?;
    let frame = c.expect(kind::UNSUBACK).await?;
    no_problem_information(&frame, &packets::parse_suback(&frame, v)?.props)?;
    c.send(&packets::pingreq()).await?;
    c.expect(kind::PINGRESP).await?;
    c.send(&normal_disconnect(v)).await?;
    Ok(())
}

async fn maximum_qos_absent_means_supported(ctx: Ctx) -> CaseResult {
    let (mut c, frame) = connack_frame(&ctx, &ctx.connect_builder("mq")).await?;
    let connack = packets::parse_connack(&frame, ctx.version)?;
    let maximum = connack.props.u8(prop::MAXIMUM_QOS).unwrap_or(2);
    ensure!(
        maximum <= 1 || connack.props.u8(prop::MAXIMUM_QOS).is_none(),
        "Maximum QoS must be 0 or 1 when sent, got {frame:?}"
    );
    if maximum == 0 {
        return Err(skip("the target announces Maximum QoS 0"));
    }
    let topic = ctx.topic("mq");
    for qos in 1..=maximum {
        publish_on(&mut c, &topic, b"x", qos, false, u16::from(qos))
            .await
            .map_err(|e| fail(format!("QoS {qos} PUBLISH (the CONNACK announced Maximum QoS {maximum}): {e}")))?;
    }
    c.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn subscribe_any_qos(ctx: Ctx) -> CaseResult {
    let (mut c, _) = ctx.connect("sq").await?;
    let topics: Vec<String> = (0..3).map(|i| ctx.topic(&format!("sq{i}"))).collect();
    let filters: Vec<(&str, u8)> = topics.iter().zip(0u8..).map(|(t, q)| (t.as_str(), q)).collect();
    let codes = subscribe(&mut c, &filters).await?;
    for (code, requested) in codes.iter().zip(0u8..) {
        ensure!(*code <= requested, "expected a granted QoS no higher than requested {requested}, got 0x{code:02x}");
    }
    c.send(&normal_disconnect(ctx.version)).await?;
    Ok(())
}

async fn unknown_auth_method(ctx: Ctx) -> CaseResult {
    const METHOD: &str = "x-conformance-unknown-method";
    let builder = ctx.connect_builder("auth").props(Props::new().str(prop::AUTHENTICATION_METHOD, METHOD));
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    client.send(&builder.bytes()).await?;
    match client.recv(REPLY_WAIT).await? {
        Event::Closed => Ok(()),
        Event::Silent => {
            Err(fail("expected a refusal and close for an unknown authentication method; nothing arrived".into()))
        }
        Event::Frame(frame) if frame.kind == kind::CONNACK => {
            let connack = packets::parse_connack(&frame, ctx.version)?;
            if connack.code == 0 {
                ensure!(
                    connack.props.str(prop::AUTHENTICATION_METHOD) == Some(METHOD),
                    "expected the unknown authentication method refused; the CONNACK accepted without naming it: {frame:?}"
                );
                return Err(skip("the target accepted the made-up authentication method"));
            }
            check_refusing_connack(&frame, ctx.version)?;
            ensure!(connack.code == 0x8C || connack.code == 0x87, "expected CONNACK 0x8C or 0x87, got {frame:?}");
            expect_server_close(&mut client, &[], None).await.map_err(|e| fail(format!("after {frame:?}: {e}")))?;
            Ok(())
        }
        Event::Frame(frame) if frame.kind == kind::AUTH => {
            Err(skip("the target continued authentication for the made-up method"))
        }
        Event::Frame(frame) => Err(fail(format!("expected CONNACK or a close, got {frame:?}"))),
    }
}

async fn refusing_connack_within_maximum_packet_size(ctx: Ctx) -> CaseResult {
    // A refusal is where a server most likely adds a Reason String; with a
    // Maximum Packet Size of 16 it must leave it (and User Properties) out.
    const MAX: u32 = 16;
    let props = Props::new()
        .str(prop::AUTHENTICATION_METHOD, "x-conformance-unknown-method")
        .u32(prop::MAXIMUM_PACKET_SIZE, MAX)
        .u8(prop::REQUEST_PROBLEM_INFORMATION, 1);
    let builder = ctx.connect_builder("mpsr").props(props);
    let mut client = Client::open(&ctx.target, ctx.version).await?;
    client.send(&builder.bytes()).await?;
    match client.recv(REPLY_WAIT).await? {
        Event::Closed => Ok(()),
        Event::Silent => Err(fail("expected a CONNACK or a close; nothing arrived".into())),
        Event::Frame(frame) if frame.kind == kind::CONNACK => {
            let connack = packets::parse_connack(&frame, ctx.version)?;
            if connack.code == 0 {
                return Err(skip("the target accepted the made-up authentication method"));
            }
            ensure!(
                frame.bytes.len() <= usize::try_from(MAX).unwrap_or(usize::MAX),
                "expected the CONNACK within the client's Maximum Packet Size {MAX}, got {} bytes: {frame:?}",
                frame.bytes.len()
            );
            Ok(())
        }
        Event::Frame(frame) if frame.kind == kind::AUTH => {
            Err(skip("the target continued authentication for the made-up method"))
        }
        Event::Frame(frame) => Err(fail(format!("expected CONNACK or a close, got {frame:?}"))),
    }
}
