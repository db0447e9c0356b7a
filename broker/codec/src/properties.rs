//! MQTT 5 properties (section 2.2.2): identifiers, types, the packets each
//! may appear in (table 2-4), and their value rules.

use bytes::Bytes;
use bytestring::ByteString;

use crate::error::{DecodeError, Violation};
use crate::packet::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties, PublishProperties, QoS,
    SubscribeProperties, UserProperty, WillProperties,
};
use crate::reason::ReasonCode;
use crate::topic::has_wildcard;
use crate::wire::{Reader, malformed, protocol};

mod write;

pub(crate) use write::{UserProps, put};

pub(crate) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
pub(crate) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
pub(crate) const CONTENT_TYPE: u8 = 0x03;
pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
pub(crate) const CORRELATION_DATA: u8 = 0x09;
pub(crate) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
pub(crate) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
pub(crate) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
pub(crate) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
pub(crate) const WILL_DELAY_INTERVAL: u8 = 0x18;
pub(crate) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
pub(crate) const RESPONSE_INFORMATION: u8 = 0x1A;
pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
pub(crate) const REASON_STRING: u8 = 0x1F;
pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
pub(crate) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub(crate) const TOPIC_ALIAS: u8 = 0x23;
pub(crate) const MAXIMUM_QOS: u8 = 0x24;
pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
pub(crate) const USER_PROPERTY: u8 = 0x26;
pub(crate) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
pub(crate) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
pub(crate) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
pub(crate) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// Which property block is being read: decides the allowed identifiers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ctx {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP.
    PubResponse,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const fn mask(ids: &[u8]) -> u64 {
    let mut bits = 0u64;
    let mut i = 0;
    while i < ids.len() {
        bits |= 1 << ids[i];
        i += 1;
    }
    bits
}

/// Table 2-4: the properties each packet may carry.
fn allowed(ctx: Ctx) -> u64 {
    const PUBLISH_OR_WILL: [u8; 6] = [
        PAYLOAD_FORMAT_INDICATOR,
        MESSAGE_EXPIRY_INTERVAL,
        CONTENT_TYPE,
        RESPONSE_TOPIC,
        CORRELATION_DATA,
        USER_PROPERTY,
    ];
    const CONNECT: u64 = mask(&[
        SESSION_EXPIRY_INTERVAL,
        AUTHENTICATION_METHOD,
        AUTHENTICATION_DATA,
        REQUEST_PROBLEM_INFORMATION,
        REQUEST_RESPONSE_INFORMATION,
        RECEIVE_MAXIMUM,
        TOPIC_ALIAS_MAXIMUM,
        USER_PROPERTY,
        MAXIMUM_PACKET_SIZE,
    ]);
    const WILL: u64 = mask(&PUBLISH_OR_WILL) | mask(&[WILL_DELAY_INTERVAL]);
    const CONNACK: u64 = mask(&[
        SESSION_EXPIRY_INTERVAL,
        ASSIGNED_CLIENT_IDENTIFIER,
        SERVER_KEEP_ALIVE,
        AUTHENTICATION_METHOD,
        AUTHENTICATION_DATA,
        RESPONSE_INFORMATION,
        SERVER_REFERENCE,
        REASON_STRING,
        RECEIVE_MAXIMUM,
        TOPIC_ALIAS_MAXIMUM,
        MAXIMUM_QOS,
        RETAIN_AVAILABLE,
        USER_PROPERTY,
        MAXIMUM_PACKET_SIZE,
        WILDCARD_SUBSCRIPTION_AVAILABLE,
        SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        SHARED_SUBSCRIPTION_AVAILABLE,
    ]);
    const PUBLISH: u64 = mask(&PUBLISH_OR_WILL) | mask(&[SUBSCRIPTION_IDENTIFIER, TOPIC_ALIAS]);
    const ACK: u64 = mask(&[REASON_STRING, USER_PROPERTY]);
    const SUBSCRIBE: u64 = mask(&[SUBSCRIPTION_IDENTIFIER, USER_PROPERTY]);
    const UNSUBSCRIBE: u64 = mask(&[USER_PROPERTY]);
    const DISCONNECT: u64 = mask(&[SESSION_EXPIRY_INTERVAL, SERVER_REFERENCE, REASON_STRING, USER_PROPERTY]);
    const AUTH: u64 = mask(&[AUTHENTICATION_METHOD, AUTHENTICATION_DATA, REASON_STRING, USER_PROPERTY]);
    match ctx {
        Ctx::Connect => CONNECT,
        Ctx::Will => WILL,
        Ctx::ConnAck => CONNACK,
        Ctx::Publish => PUBLISH,
        Ctx::PubResponse | Ctx::SubAck | Ctx::UnsubAck => ACK,
        Ctx::Subscribe => SUBSCRIBE,
        Ctx::Unsubscribe => UNSUBSCRIBE,
        Ctx::Disconnect => DISCONNECT,
        Ctx::Auth => AUTH,
    }
}

/// Every property any packet may carry; the allowed-set check guarantees
/// that only the fields of the packet being decoded get filled.
#[derive(Default)]
struct Raw {
    payload_format_indicator: Option<u8>,
    message_expiry_interval: Option<u32>,
    content_type: Option<ByteString>,
    response_topic: Option<ByteString>,
    correlation_data: Option<Bytes>,
    subscription_identifiers: Vec<u32>,
    session_expiry_interval: Option<u32>,
    assigned_client_identifier: Option<ByteString>,
    server_keep_alive: Option<u16>,
    authentication_method: Option<ByteString>,
    authentication_data: Option<Bytes>,
    request_problem_information: Option<bool>,
    will_delay_interval: Option<u32>,
    request_response_information: Option<bool>,
    response_information: Option<ByteString>,
    server_reference: Option<ByteString>,
    reason_string: Option<ByteString>,
    receive_maximum: Option<u16>,
    topic_alias_maximum: Option<u16>,
    topic_alias: Option<u16>,
    maximum_qos: Option<QoS>,
    retain_available: Option<bool>,
    user_properties: Vec<UserProperty>,
    maximum_packet_size: Option<u32>,
    wildcard_subscription_available: Option<bool>,
    subscription_identifiers_available: Option<bool>,
    shared_subscription_available: Option<bool>,
}

/// More user properties than the receiver accepts. The specification sets no
/// count, but each costs far more in memory than its five bytes on the wire,
/// so a receiver caps them: an implementation limit, reason 0x97.
fn too_many_user_properties() -> DecodeError {
    DecodeError::Protocol(Violation {
        statement: "",
        message: "more user properties than the receiver accepts",
        reason: ReasonCode::QUOTA_EXCEEDED,
    })
}

/// A byte property that must be 0 or 1.
fn flag(r: &mut Reader, message: &'static str) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(protocol("", message)),
    }
}

fn read(r: &mut Reader, ctx: Ctx) -> Result<Raw, DecodeError> {
    let len = r.varint()?;
    let mut p = r.sub(len)?;
    let mut raw = Raw::default();
    let mut seen = 0u64;
    while !p.is_empty() {
        let id = p.varint()?;
        let id = match u8::try_from(id) {
            Ok(id) if id < 64 => id,
            _ => return Err(malformed("", "unknown property identifier")),
        };
        let bit = 1u64 << id;
        if allowed(ctx) & bit == 0 {
            return Err(if is_known(id) {
                malformed("", "property not allowed in this packet")
            } else {
                malformed("", "unknown property identifier")
            });
        }
        let repeats = id == USER_PROPERTY || (id == SUBSCRIPTION_IDENTIFIER && ctx == Ctx::Publish);
        if seen & bit != 0 && !repeats {
            return Err(protocol("", "property included more than once"));
        }
        seen |= bit;
        read_one(&mut p, id, &mut raw)?;
    }
    if raw.authentication_data.is_some() && raw.authentication_method.is_none() {
        return Err(protocol("", "authentication data without authentication method"));
    }
    Ok(raw)
}

fn is_known(id: u8) -> bool {
    const ALL: [Ctx; 7] =
        [Ctx::Connect, Ctx::Will, Ctx::ConnAck, Ctx::Publish, Ctx::Subscribe, Ctx::Disconnect, Ctx::Auth];
    ALL.iter().any(|&ctx| allowed(ctx) & (1u64 << id) != 0)
}

fn read_one(p: &mut Reader, id: u8, raw: &mut Raw) -> Result<(), DecodeError> {
    match id {
        PAYLOAD_FORMAT_INDICATOR => {
            let v = flag(p, "payload format indicator other than 0 or 1")?;
            raw.payload_format_indicator = Some(u8::from(v));
        }
        MESSAGE_EXPIRY_INTERVAL => raw.message_expiry_interval = Some(p.u32()?),
        CONTENT_TYPE => raw.content_type = Some(p.string()?),
        RESPONSE_TOPIC => {
            let topic = p.string()?;
            if has_wildcard(&topic) {
                return Err(protocol("MQTT-3.3.2-14", "response topic contains a wildcard"));
            }
            raw.response_topic = Some(topic);
        }
        CORRELATION_DATA => raw.correlation_data = Some(p.binary()?),
        SUBSCRIPTION_IDENTIFIER => {
            let id = p.varint()?;
            let id = match u32::try_from(id) {
                Ok(id) if id != 0 => id,
                _ => return Err(protocol("", "subscription identifier of 0")),
            };
            raw.subscription_identifiers.push(id);
        }
        SESSION_EXPIRY_INTERVAL => raw.session_expiry_interval = Some(p.u32()?),
        ASSIGNED_CLIENT_IDENTIFIER => raw.assigned_client_identifier = Some(p.string()?),
        SERVER_KEEP_ALIVE => raw.server_keep_alive = Some(p.u16()?),
        AUTHENTICATION_METHOD => raw.authentication_method = Some(p.string()?),
        AUTHENTICATION_DATA => raw.authentication_data = Some(p.binary()?),
        REQUEST_PROBLEM_INFORMATION => {
            raw.request_problem_information = Some(flag(p, "request problem information other than 0 or 1")?);
        }
        WILL_DELAY_INTERVAL => raw.will_delay_interval = Some(p.u32()?),
        REQUEST_RESPONSE_INFORMATION => {
            raw.request_response_information = Some(flag(p, "request response information other than 0 or 1")?);
        }
        RESPONSE_INFORMATION => raw.response_information = Some(p.string()?),
        SERVER_REFERENCE => raw.server_reference = Some(p.string()?),
        REASON_STRING => raw.reason_string = Some(p.string()?),
        RECEIVE_MAXIMUM => match p.u16()? {
            0 => return Err(protocol("", "receive maximum of 0")),
            v => raw.receive_maximum = Some(v),
        },
        TOPIC_ALIAS_MAXIMUM => raw.topic_alias_maximum = Some(p.u16()?),
        TOPIC_ALIAS => match p.u16()? {
            0 => return Err(protocol("MQTT-3.3.2-8", "topic alias of 0")),
            v => raw.topic_alias = Some(v),
        },
        MAXIMUM_QOS => {
            let v = flag(p, "maximum QoS other than 0 or 1")?;
            raw.maximum_qos = Some(if v { QoS::AtLeastOnce } else { QoS::AtMostOnce });
        }
        RETAIN_AVAILABLE => {
            raw.retain_available = Some(flag(p, "retain available other than 0 or 1")?);
        }
        USER_PROPERTY => {
            if raw.user_properties.len() >= p.max_user_properties() {
                return Err(too_many_user_properties());
            }
            let name = p.string()?;
            let value = p.string()?;
            raw.user_properties.push((name, value));
        }
        MAXIMUM_PACKET_SIZE => match p.u32()? {
            0 => return Err(protocol("", "maximum packet size of 0")),
            v => raw.maximum_packet_size = Some(v),
        },
        WILDCARD_SUBSCRIPTION_AVAILABLE => {
            raw.wildcard_subscription_available = Some(flag(p, "wildcard subscription available other than 0 or 1")?);
        }
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
            raw.subscription_identifiers_available =
                Some(flag(p, "subscription identifier available other than 0 or 1")?);
        }
        SHARED_SUBSCRIPTION_AVAILABLE => {
            raw.shared_subscription_available = Some(flag(p, "shared subscription available other than 0 or 1")?);
        }
        _ => return Err(malformed("", "unknown property identifier")),
    }
    Ok(())
}

pub(crate) fn connect(r: &mut Reader) -> Result<ConnectProperties, DecodeError> {
    let raw = read(r, Ctx::Connect)?;
    Ok(ConnectProperties {
        session_expiry_interval: raw.session_expiry_interval,
        receive_maximum: raw.receive_maximum,
        maximum_packet_size: raw.maximum_packet_size,
        topic_alias_maximum: raw.topic_alias_maximum,
        request_response_information: raw.request_response_information,
        request_problem_information: raw.request_problem_information,
        user_properties: raw.user_properties,
        authentication_method: raw.authentication_method,
        authentication_data: raw.authentication_data,
    })
}

pub(crate) fn will(r: &mut Reader) -> Result<WillProperties, DecodeError> {
    let raw = read(r, Ctx::Will)?;
    Ok(WillProperties {
        will_delay_interval: raw.will_delay_interval,
        payload_format_indicator: raw.payload_format_indicator,
        message_expiry_interval: raw.message_expiry_interval,
        content_type: raw.content_type,
        response_topic: raw.response_topic,
        correlation_data: raw.correlation_data,
        user_properties: raw.user_properties,
    })
}

pub(crate) fn connack(r: &mut Reader) -> Result<ConnAckProperties, DecodeError> {
    let raw = read(r, Ctx::ConnAck)?;
    Ok(ConnAckProperties {
        session_expiry_interval: raw.session_expiry_interval,
        receive_maximum: raw.receive_maximum,
        maximum_qos: raw.maximum_qos,
        retain_available: raw.retain_available,
        maximum_packet_size: raw.maximum_packet_size,
        assigned_client_identifier: raw.assigned_client_identifier,
        topic_alias_maximum: raw.topic_alias_maximum,
        reason_string: raw.reason_string,
        user_properties: raw.user_properties,
        wildcard_subscription_available: raw.wildcard_subscription_available,
        subscription_identifiers_available: raw.subscription_identifiers_available,
        shared_subscription_available: raw.shared_subscription_available,
        server_keep_alive: raw.server_keep_alive,
        response_information: raw.response_information,
        server_reference: raw.server_reference,
        authentication_method: raw.authentication_method,
        authentication_data: raw.authentication_data,
    })
}

pub(crate) fn publish(r: &mut Reader) -> Result<PublishProperties, DecodeError> {
    let raw = read(r, Ctx::Publish)?;
    Ok(PublishProperties {
        payload_format_indicator: raw.payload_format_indicator,
        message_expiry_interval: raw.message_expiry_interval,
        topic_alias: raw.topic_alias,
        response_topic: raw.response_topic,
        correlation_data: raw.correlation_data,
        user_properties: raw.user_properties,
        subscription_identifiers: raw.subscription_identifiers,
        content_type: raw.content_type,
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
pub(crate) fn ack(r: &mut Reader, ctx: Ctx) -> Result<AckProperties, DecodeError> {
    let raw = read(r, ctx)?;
    Ok(AckProperties { reason_string: raw.reason_string, user_properties: raw.user_properties })
}

pub(crate) fn subscribe(r: &mut Reader) -> Result<SubscribeProperties, DecodeError> {
    let raw = read(r, Ctx::Subscribe)?;
    Ok(SubscribeProperties {
        subscription_identifier: raw.subscription_identifiers.first().copied(),
        user_properties: raw.user_properties,
    })
}

pub(crate) fn unsubscribe(r: &mut Reader) -> Result<Vec<UserProperty>, DecodeError> {
    Ok(read(r, Ctx::Unsubscribe)?.user_properties)
}

pub(crate) fn disconnect(r: &mut Reader) -> Result<DisconnectProperties, DecodeError> {
    let raw = read(r, Ctx::Disconnect)?;
    Ok(DisconnectProperties {
        session_expiry_interval: raw.session_expiry_interval,
        reason_string: raw.reason_string,
        user_properties: raw.user_properties,
        server_reference: raw.server_reference,
    })
}

pub(crate) fn auth(r: &mut Reader) -> Result<AuthProperties, DecodeError> {
    let raw = read(r, Ctx::Auth)?;
    Ok(AuthProperties {
        authentication_method: raw.authentication_method,
        authentication_data: raw.authentication_data,
        reason_string: raw.reason_string,
        user_properties: raw.user_properties,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Table 2-4 of MQTT 5.0, one row per property.
    const TABLE: &[(u8, &[Ctx])] = &[
        (PAYLOAD_FORMAT_INDICATOR, &[Ctx::Publish, Ctx::Will]),
        (MESSAGE_EXPIRY_INTERVAL, &[Ctx::Publish, Ctx::Will]),
        (CONTENT_TYPE, &[Ctx::Publish, Ctx::Will]),
        (RESPONSE_TOPIC, &[Ctx::Publish, Ctx::Will]),
        (CORRELATION_DATA, &[Ctx::Publish, Ctx::Will]),
        (SUBSCRIPTION_IDENTIFIER, &[Ctx::Publish, Ctx::Subscribe]),
        (SESSION_EXPIRY_INTERVAL, &[Ctx::Connect, Ctx::ConnAck, Ctx::Disconnect]),
        (ASSIGNED_CLIENT_IDENTIFIER, &[Ctx::ConnAck]),
        (SERVER_KEEP_ALIVE, &[Ctx::ConnAck]),
        (AUTHENTICATION_METHOD, &[Ctx::Connect, Ctx::ConnAck, Ctx::Auth]),
        (AUTHENTICATION_DATA, &[Ctx::Connect, Ctx::ConnAck, Ctx::Auth]),
        (REQUEST_PROBLEM_INFORMATION, &[Ctx::Connect]),
        (WILL_DELAY_INTERVAL, &[Ctx::Will]),
        (REQUEST_RESPONSE_INFORMATION, &[Ctx::Connect]),
        (RESPONSE_INFORMATION, &[Ctx::ConnAck]),
        (SERVER_REFERENCE, &[Ctx::ConnAck, Ctx::Disconnect]),
        (REASON_STRING, &[Ctx::ConnAck, Ctx::PubResponse, Ctx::SubAck, Ctx::UnsubAck, Ctx::Disconnect, Ctx::Auth]),
        (RECEIVE_MAXIMUM, &[Ctx::Connect, Ctx::ConnAck]),
        (TOPIC_ALIAS_MAXIMUM, &[Ctx::Connect, Ctx::ConnAck]),
        (TOPIC_ALIAS, &[Ctx::Publish]),
        (MAXIMUM_QOS, &[Ctx::ConnAck]),
        (RETAIN_AVAILABLE, &[Ctx::ConnAck]),
        // User properties are allowed everywhere.
        (USER_PROPERTY, &CONTEXTS),
        (MAXIMUM_PACKET_SIZE, &[Ctx::Connect, Ctx::ConnAck]),
        (WILDCARD_SUBSCRIPTION_AVAILABLE, &[Ctx::ConnAck]),
        (SUBSCRIPTION_IDENTIFIER_AVAILABLE, &[Ctx::ConnAck]),
        (SHARED_SUBSCRIPTION_AVAILABLE, &[Ctx::ConnAck]),
    ];

    const CONTEXTS: [Ctx; 11] = [
        Ctx::Connect,
        Ctx::Will,
        Ctx::ConnAck,
        Ctx::Publish,
        Ctx::PubResponse,
        Ctx::Subscribe,
        Ctx::SubAck,
        Ctx::Unsubscribe,
        Ctx::UnsubAck,
        Ctx::Disconnect,
        Ctx::Auth,
    ];

    #[test]
    fn allowed_sets_follow_table_2_4() {
        for id in 0..64u8 {
            let row = TABLE.iter().find(|(i, _)| *i == id);
            assert_eq!(is_known(id), row.is_some(), "id 0x{id:02X}");
            for ctx in CONTEXTS {
                let expected = row.is_some_and(|(_, ctxs)| ctxs.contains(&ctx));
                assert_eq!(allowed(ctx) & (1 << id) != 0, expected, "id 0x{id:02X} in {ctx:?}");
            }
        }
        assert_eq!(TABLE.len(), 27);
    }

    fn check(block: &'static [u8], ctx: Ctx, expected: Result<(), DecodeError>) {
        let mut r = Reader::new(bytes::Bytes::from_static(block), true);
        assert_eq!(read(&mut r, ctx).map(|_| ()), expected, "block {block:02X?} in {ctx:?}");
    }

    #[test]
    fn empty_block_is_fine_everywhere() {
        for ctx in CONTEXTS {
            check(&[0x00], ctx, Ok(()));
        }
    }

    #[test]
    fn subscription_identifier_repeats_only_in_publish() {
        let block = &[0x04, 0x0B, 0x01, 0x0B, 0x02];
        check(block, Ctx::Publish, Ok(()));
        check(block, Ctx::Subscribe, Err(protocol("", "property included more than once")));
    }

    #[test]
    fn four_byte_subscription_identifier_is_accepted() {
        check(&[0x05, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F], Ctx::Subscribe, Ok(()));
        assert!(
            read(
                &mut Reader::new(bytes::Bytes::from_static(&[0x06, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), true),
                Ctx::Subscribe
            )
            .is_err()
        );
    }

    #[test]
    fn two_byte_property_identifier_is_unknown() {
        // 0x80 0x01 is the variable byte integer 128: no such property.
        check(&[0x03, 0x80, 0x01, 0x00], Ctx::Publish, Err(malformed("", "unknown property identifier")));
    }
}
