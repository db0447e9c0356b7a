//! Wire format -> packets.
//!
//! Every rejection names the normative statement it enforces: the 3.1.1 id
//! for protocol levels 3 and 4, the 5.0 id for level 5 (see [`sid`]).

use std::num::NonZeroU16;

use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;
use crate::packet::{
    Auth, ConnAck, Disconnect, Packet, PacketId, ProtocolVersion, PubResponse, Publish, QoS, RetainHandling, SubAck,
    Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use crate::properties::{self, Ctx};
use crate::reason::{self, ReasonCode};
use crate::topic;
use crate::varint;
use crate::wire::{Reader, malformed, protocol, sid};

pub(crate) const CONNECT: u8 = 1;
pub(crate) const CONNACK: u8 = 2;
pub(crate) const PUBLISH: u8 = 3;
pub(crate) const PUBACK: u8 = 4;
pub(crate) const PUBREC: u8 = 5;
pub(crate) const PUBREL: u8 = 6;
pub(crate) const PUBCOMP: u8 = 7;
pub(crate) const SUBSCRIBE: u8 = 8;
pub(crate) const SUBACK: u8 = 9;
pub(crate) const UNSUBSCRIBE: u8 = 10;
pub(crate) const UNSUBACK: u8 = 11;
pub(crate) const PINGREQ: u8 = 12;
pub(crate) const PINGRESP: u8 = 13;
pub(crate) const DISCONNECT: u8 = 14;
pub(crate) const AUTH: u8 = 15;

/// Incremental decoder over a receive buffer.
///
/// A server creates it without a version: the first packet must be CONNECT
/// ([MQTT-3.1.0-1]) and fixes the version for the rest of the connection. A
/// client creates it with the version it sent.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_packet_size: u32,
    version: Option<ProtocolVersion>,
    /// Most user properties one property block may hold; unlimited unless set.
    max_user_properties: usize,
}

impl Decoder {
    /// A decoder that expects CONNECT first and learns the version from it.
    pub fn new(max_packet_size: u32) -> Self {
        Self { max_packet_size, version: None, max_user_properties: usize::MAX }
    }

    /// A decoder for a connection whose version is known.
    pub fn with_version(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Self { max_packet_size, version: Some(version), max_user_properties: usize::MAX }
    }

    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    pub fn set_max_packet_size(&mut self, max_packet_size: u32) {
        self.max_packet_size = max_packet_size;
    }

    /// Caps the user properties of each property block: each costs far more
    /// in memory than its five bytes on the wire. A packet beyond the cap is
    /// rejected with reason 0x97 (Quota exceeded).
    pub fn set_max_user_properties(&mut self, max: usize) {
        self.max_user_properties = max;
    }

    pub fn max_user_properties(&self) -> usize {
        self.max_user_properties
    }

    /// Decodes the next whole packet at the front of `buf`, removing its bytes.
    /// `Ok(None)` means more bytes are needed; no memory is reserved for a
    /// packet larger than the maximum packet size.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        if self.version.is_none() && first >> 4 != CONNECT {
            return Err(not_connect());
        }
        let Some((remaining, len)) = varint::read(buf.get(1..).unwrap_or_default())? else {
            return Ok(None);
        };
        let total = 1 + len + remaining;
        let max = usize::try_from(self.max_packet_size).unwrap_or(usize::MAX);
        if total > max {
            return Err(DecodeError::PacketTooLarge { size: total, max: self.max_packet_size });
        }
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let frame = buf.split_to(total).freeze();
        if self.version.is_some() && first >> 4 == CONNECT {
            // Not parsed: whatever it says, a second CONNECT is a protocol error.
            return Err(protocol("MQTT-3.1.0-2", "second CONNECT on a connection"));
        }
        let packet = decode_frame(self.version, frame, self.max_user_properties)?;
        if let (None, Packet::Connect(connect)) = (self.version, &packet) {
            self.version = Some(connect.protocol);
        }
        Ok(Some(packet))
    }
}

/// Decodes one complete packet (fixed header included). With `version`
/// `None` only CONNECT is accepted.
pub fn decode_packet(version: Option<ProtocolVersion>, frame: Bytes) -> Result<Packet, DecodeError> {
    decode_frame(version, frame, usize::MAX)
}

fn decode_frame(
    version: Option<ProtocolVersion>,
    frame: Bytes,
    max_user_properties: usize,
) -> Result<Packet, DecodeError> {
    let Some(&first) = frame.first() else {
        return Err(malformed("", "empty frame"));
    };
    let (kind, flags) = (first >> 4, first & 0x0F);
    let Some((remaining, len)) = varint::read(frame.get(1..).unwrap_or_default())? else {
        return Err(malformed("", "incomplete remaining length"));
    };
    if 1 + len + remaining != frame.len() {
        return Err(malformed("", "remaining length does not match the packet's length"));
    }
    let body = frame.slice(1 + len..);
    if kind == CONNECT {
        let r = Reader::new(body, false).with_max_user_properties(max_user_properties);
        return connect::decode(flags, r).map(|c| Packet::Connect(Box::new(c)));
    }
    let Some(version) = version else {
        return Err(not_connect());
    };
    let v5 = version.is_v5();
    let mut r = Reader::new(body, v5).with_max_user_properties(max_user_properties);
    match kind {
        0 => return Err(malformed("", "reserved packet type 0")),
        AUTH if !v5 => {
            return Err(malformed("", "reserved packet type 15 (AUTH exists only in MQTT 5)"));
        }
        PUBLISH => {}
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => check_flags(flags, 0b0010, v5)?,
        _ => check_flags(flags, 0, v5)?,
    }
    let packet = match kind {
        CONNACK => Packet::ConnAck(connack(&mut r)?),
        PUBLISH => Packet::Publish(publish(flags, &mut r)?),
        PUBACK => Packet::PubAck(pub_response(&mut r, reason::PUBACK_REASONS, "MQTT-3.4.2-1")?),
        PUBREC => Packet::PubRec(pub_response(&mut r, reason::PUBACK_REASONS, "MQTT-3.5.2-1")?),
        PUBREL => Packet::PubRel(pub_response(&mut r, reason::PUBREL_REASONS, "MQTT-3.6.2-1")?),
        PUBCOMP => Packet::PubComp(pub_response(&mut r, reason::PUBREL_REASONS, "MQTT-3.7.2-1")?),
        SUBSCRIBE => Packet::Subscribe(subscribe(&mut r)?),
        SUBACK => Packet::SubAck(suback(&mut r)?),
        UNSUBSCRIBE => Packet::Unsubscribe(unsubscribe(&mut r)?),
        UNSUBACK => Packet::UnsubAck(unsuback(&mut r)?),
        PINGREQ => Packet::PingReq,
        PINGRESP => Packet::PingResp,
        DISCONNECT => Packet::Disconnect(disconnect(&mut r)?),
        _ => Packet::Auth(auth(&mut r)?),
    };
    if !r.is_empty() {
        return Err(malformed("", "remaining length longer than the packet's fields"));
    }
    Ok(packet)
}

fn not_connect() -> DecodeError {
    protocol("MQTT-3.1.0-1", "first packet is not CONNECT")
}

fn check_flags(flags: u8, expected: u8, v5: bool) -> Result<(), DecodeError> {
    if flags == expected {
        Ok(())
    } else {
        Err(malformed(sid(v5, "MQTT-2.2.2-2", "MQTT-2.1.3-1"), "invalid fixed header flags"))
    }
}

fn packet_id(r: &mut Reader, statement: &'static str) -> Result<PacketId, DecodeError> {
    NonZeroU16::new(r.u16()?).ok_or_else(|| protocol(statement, "packet identifier 0"))
}

/// A reason code from `allowed`, else malformed naming the sender's statement.
fn reason_code(r: &mut Reader, allowed: &[u8], statement: &'static str) -> Result<ReasonCode, DecodeError> {
    let code = r.u8()?;
    if allowed.contains(&code) {
        Ok(ReasonCode(code))
    } else {
        Err(malformed(statement, "reason code not allowed in this packet"))
    }
}

/// A topic name of a PUBLISH or will: not empty (unless a topic alias
/// stands in for it) and without wildcards.
fn check_topic_name(topic: &str, has_alias: bool) -> Result<(), DecodeError> {
    if topic.is_empty() {
        if has_alias {
            return Ok(());
        }
        return Err(protocol("MQTT-4.7.3-1", "empty topic name"));
    }
    if topic::has_wildcard(topic) {
        return Err(malformed("MQTT-3.3.2-2", "topic name contains a wildcard"));
    }
    Ok(())
}

fn connack(r: &mut Reader) -> Result<ConnAck, DecodeError> {
    let v5 = r.v5();
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(malformed(sid(v5, "", "MQTT-3.2.2-1"), "reserved CONNACK flag bits are set"));
    }
    let session_present = flags & 0x01 != 0;
    if v5 {
        let reason_code = reason_code(r, reason::CONNACK_REASONS, "MQTT-3.2.2-8")?;
        let properties = properties::connack(r)?;
        return Ok(ConnAck { session_present, reason_code, properties });
    }
    let reason_code = match r.u8()? {
        0 => ReasonCode::SUCCESS,
        1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        3 => ReasonCode::SERVER_UNAVAILABLE,
        4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        5 => ReasonCode::NOT_AUTHORIZED,
        _ => return Err(malformed("", "CONNACK return code above 5")),
    };
    Ok(ConnAck { session_present, reason_code, properties: Default::default() })
}

fn publish(flags: u8, r: &mut Reader) -> Result<Publish, DecodeError> {
    let v5 = r.v5();
    let dup = flags & 0x08 != 0;
    let retain = flags & 0x01 != 0;
    let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or_else(|| malformed("MQTT-3.3.1-4", "PUBLISH with QoS 3"))?;
    if dup && qos == QoS::AtMostOnce {
        return Err(protocol("MQTT-3.3.1-2", "DUP flag set on a QoS 0 PUBLISH"));
    }
    let topic = r.string()?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        _ => Some(packet_id(r, sid(v5, "MQTT-2.3.1-1", "MQTT-2.2.1-3"))?),
    };
    let properties = if v5 { properties::publish(r)? } else { Default::default() };
    check_topic_name(&topic, properties.topic_alias.is_some())?;
    let payload = r.rest();
    Ok(Publish { dup, qos, retain, topic, packet_id, payload, properties })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP. In MQTT 5 a remaining length of 2 means
/// success without properties, 3 a reason code without properties.
fn pub_response(r: &mut Reader, allowed: &[u8], statement: &'static str) -> Result<PubResponse, DecodeError> {
    let v5 = r.v5();
    let packet_id = packet_id(r, sid(v5, "MQTT-2.3.1-6", "MQTT-2.2.1-5"))?;
    if !v5 || r.is_empty() {
        return Ok(PubResponse::new(packet_id));
    }
    let reason_code = reason_code(r, allowed, statement)?;
    let properties = if r.is_empty() { Default::default() } else { properties::ack(r, Ctx::PubResponse)? };
    Ok(PubResponse { packet_id, reason_code, properties })
}

fn subscribe(r: &mut Reader) -> Result<Subscribe, DecodeError> {
    let v5 = r.v5();
    let packet_id = packet_id(r, sid(v5, "MQTT-2.3.1-1", "MQTT-2.2.1-3"))?;
    let properties = if v5 { properties::subscribe(r)? } else { Default::default() };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        check_filter_not_empty(&filter)?;
        let options = subscription_options(r.u8()?, &filter, v5)?;
        filters.push((filter, options));
    }
    if filters.is_empty() {
        let statement = sid(v5, "MQTT-3.8.3-3", "MQTT-3.8.3-2");
        return Err(protocol(statement, "SUBSCRIBE without topic filters"));
    }
    Ok(Subscribe { packet_id, filters, properties })
}

/// An empty filter makes the packet unacceptable ([MQTT-4.7.3-1]). Wildcard
/// placement and `$share` syntax are the receiver's to judge per filter: a
/// server answers them in SUBACK / UNSUBACK (0x8F) without dropping the
/// connection (`topic::validate_topic_filter`).
fn check_filter_not_empty(filter: &str) -> Result<(), DecodeError> {
    if filter.is_empty() {
        return Err(protocol("MQTT-4.7.3-1", "empty topic filter"));
    }
    Ok(())
}

fn subscription_options(byte: u8, filter: &str, v5: bool) -> Result<SubscriptionOptions, DecodeError> {
    if !v5 {
        // 3.1.1 section 3.8.3.1 (its label is misprinted and has no row in the
        // statement list): reserved bits or QoS 3 make the packet malformed.
        if byte & 0xFC != 0 {
            return Err(malformed("", "reserved subscription option bits are set"));
        }
        let qos = QoS::from_u8(byte & 0x03).ok_or_else(|| malformed("", "subscription QoS 3"))?;
        return Ok(SubscriptionOptions { qos, ..Default::default() });
    }
    if byte & 0xC0 != 0 {
        return Err(malformed("MQTT-3.8.3-5", "reserved subscription option bits are set"));
    }
    // 5.0 section 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3".
    let qos = QoS::from_u8(byte & 0x03).ok_or_else(|| protocol("", "subscription QoS 3"))?;
    let no_local = byte & 0x04 != 0;
    let retain_as_published = byte & 0x08 != 0;
    let retain_handling = match (byte >> 4) & 0x03 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendAtSubscribeIfNew,
        2 => RetainHandling::DoNotSend,
        // "It is a Protocol Error to send a Retain Handling value of 3."
        _ => return Err(protocol("", "retain handling 3")),
    };
    if no_local && topic::parse_shared(filter).is_some() {
        return Err(protocol("MQTT-3.8.3-4", "no local set on a shared subscription"));
    }
    Ok(SubscriptionOptions { qos, no_local, retain_as_published, retain_handling })
}

fn suback(r: &mut Reader) -> Result<SubAck, DecodeError> {
    let v5 = r.v5();
    let packet_id = packet_id(r, sid(v5, "MQTT-2.3.1-7", "MQTT-2.2.1-6"))?;
    let properties = if v5 { properties::ack(r, Ctx::SubAck)? } else { Default::default() };
    let allowed: &[u8] = if v5 { reason::SUBACK_REASONS } else { &[0x00, 0x01, 0x02, 0x80] };
    let mut reason_codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        reason_codes.push(reason_code(r, allowed, "MQTT-3.9.3-2")?);
    }
    Ok(SubAck { packet_id, reason_codes, properties })
}

fn unsubscribe(r: &mut Reader) -> Result<Unsubscribe, DecodeError> {
    let v5 = r.v5();
    let packet_id = packet_id(r, sid(v5, "MQTT-2.3.1-1", "MQTT-2.2.1-3"))?;
    let user_properties = if v5 { properties::unsubscribe(r)? } else { Vec::new() };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        check_filter_not_empty(&filter)?;
        filters.push(filter);
    }
    if filters.is_empty() {
        return Err(protocol("MQTT-3.10.3-2", "UNSUBSCRIBE without topic filters"));
    }
    Ok(Unsubscribe { packet_id, filters, user_properties })
}

fn unsuback(r: &mut Reader) -> Result<UnsubAck, DecodeError> {
    let v5 = r.v5();
    let packet_id = packet_id(r, sid(v5, "MQTT-2.3.1-7", "MQTT-2.2.1-6"))?;
    if !v5 {
        return Ok(UnsubAck { packet_id, reason_codes: Vec::new(), properties: Default::default() });
    }
    let properties = properties::ack(r, Ctx::UnsubAck)?;
    let mut reason_codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        reason_codes.push(reason_code(r, reason::UNSUBACK_REASONS, "MQTT-3.11.3-2")?);
    }
    Ok(UnsubAck { packet_id, reason_codes, properties })
}

/// In MQTT 5 a remaining length of 0 means normal disconnection, 1 a reason
/// code without properties. MQTT 3.1 / 3.1.1 DISCONNECT is empty.
fn disconnect(r: &mut Reader) -> Result<Disconnect, DecodeError> {
    if !r.v5() || r.is_empty() {
        return Ok(Disconnect::default());
    }
    let reason_code = reason_code(r, reason::DISCONNECT_REASONS, "MQTT-3.14.2-1")?;
    let properties = if r.is_empty() { Default::default() } else { properties::disconnect(r)? };
    Ok(Disconnect { reason_code, properties })
}

/// Same short forms as DISCONNECT.
fn auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    if r.is_empty() {
        return Ok(Auth::default());
    }
    let reason_code = reason_code(r, reason::AUTH_REASONS, "MQTT-3.15.2-1")?;
    let properties = if r.is_empty() { Default::default() } else { properties::auth(r)? };
    Ok(Auth { reason_code, properties })
}

mod connect;
#[cfg(test)]
mod tests;
