//! Packets -> wire format.
//!
//! One writer serves both [`encoded_len`] and [`encode`]: it runs over a
//! [`Counter`] to measure (and validate) and over the buffer to write, so the
//! two always agree and nothing is written when a packet cannot be encoded.

use bytes::BytesMut;

use crate::decode::{
    AUTH, CONNACK, CONNECT, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, SUBSCRIBE,
    UNSUBACK, UNSUBSCRIBE,
};
use crate::error::EncodeError;
use crate::packet::{
    Auth, ConnAck, Connect, Disconnect, Packet, ProtocolVersion, PubResponse, Publish, QoS, SubAck, Subscribe,
    UnsubAck, Unsubscribe,
};
use crate::properties::{self, UserProps};
use crate::reason::ReasonCode;
use crate::varint;
use crate::wire::{Counter, Sink};

/// The number of bytes `encode` would append (fixed header included).
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let remaining = remaining_len(packet, version)?;
    Ok(1 + varint::encoded_len(remaining) + remaining)
}

/// Appends the packet in `version`'s layout to `buf`; returns the bytes written.
///
/// CONNECT is laid out for its own `protocol` field, which it announces.
pub fn encode(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) -> Result<usize, EncodeError> {
    let remaining = remaining_len(packet, version)?;
    let total = 1 + varint::encoded_len(remaining) + remaining;
    buf.reserve(total);
    buf.put_u8(first_byte(packet));
    buf.put_varint(remaining)?;
    write_body(packet, version, buf)?;
    Ok(total)
}

/// Measures the variable header and payload, validating every field.
fn remaining_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let mut counter = Counter(0);
    write_body(packet, version, &mut counter)?;
    let remaining = counter.0;
    if remaining > varint::MAX {
        let max = u32::try_from(varint::MAX).unwrap_or(u32::MAX);
        return Err(EncodeError::PacketTooLarge { size: remaining, max });
    }
    Ok(remaining)
}

fn first_byte(packet: &Packet) -> u8 {
    let (kind, flags) = match packet {
        Packet::Connect(_) => (CONNECT, 0),
        Packet::ConnAck(_) => (CONNACK, 0),
        Packet::Publish(p) => (PUBLISH, u8::from(p.dup) << 3 | (p.qos as u8) << 1 | u8::from(p.retain)),
        Packet::PubAck(_) => (PUBACK, 0),
        Packet::PubRec(_) => (PUBREC, 0),
        Packet::PubRel(_) => (PUBREL, 0b0010),
        Packet::PubComp(_) => (PUBCOMP, 0),
        Packet::Subscribe(_) => (SUBSCRIBE, 0b0010),
        Packet::SubAck(_) => (SUBACK, 0),
        Packet::Unsubscribe(_) => (UNSUBSCRIBE, 0b0010),
        Packet::UnsubAck(_) => (UNSUBACK, 0),
        Packet::PingReq => (PINGREQ, 0),
        Packet::PingResp => (PINGRESP, 0),
        Packet::Disconnect(_) => (DISCONNECT, 0),
        Packet::Auth(_) => (AUTH, 0),
    };
    kind << 4 | flags
}

fn write_body<S: Sink>(packet: &Packet, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => connect(c, s),
        Packet::ConnAck(c) => connack(c, v5, s),
        Packet::Publish(p) => publish(p, v5, s),
        Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => pub_response(p, v5, s),
        Packet::Subscribe(p) => subscribe(p, v5, s),
        Packet::SubAck(p) => suback(p, v5, s),
        Packet::Unsubscribe(p) => unsubscribe(p, v5, s),
        Packet::UnsubAck(p) => unsuback(p, v5, s),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(p) => disconnect(p, v5, s),
        Packet::Auth(p) => auth(p, v5, s),
    }
}

fn connect<S: Sink>(c: &Connect, s: &mut S) -> Result<(), EncodeError> {
    let v5 = c.protocol.is_v5();
    s.put_str(if c.protocol == ProtocolVersion::V3_1 { "MQIsdp" } else { "MQTT" })?;
    s.put_u8(c.protocol.level());
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(will) = &c.will {
        flags |= 0x04 | (will.qos as u8) << 3 | u8::from(will.retain) << 5;
    }
    flags |= u8::from(c.password.is_some()) << 6 | u8::from(c.username.is_some()) << 7;
    s.put_u8(flags);
    s.put_u16(c.keep_alive);
    if v5 {
        properties::put(s, &c.properties)?;
    }
    s.put_str(&c.client_id)?;
    if let Some(will) = &c.will {
        if v5 {
            properties::put(s, &will.properties)?;
        }
        s.put_str(&will.topic)?;
        s.put_binary(&will.payload)?;
    }
    if let Some(username) = &c.username {
        s.put_str(username)?;
    }
    if let Some(password) = &c.password {
        s.put_binary(password)?;
    }
    Ok(())
}

/// The MQTT 3.1 / 3.1.1 return code for a CONNACK reason code.
fn connack_return_code(reason: ReasonCode) -> Result<u8, EncodeError> {
    Ok(match reason {
        ReasonCode::SUCCESS => 0,
        ReasonCode::UNSUPPORTED_PROTOCOL_VERSION => 1,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID => 2,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD => 4,
        ReasonCode::NOT_AUTHORIZED => 5,
        r if r.is_error() => 3,
        _ => return Err(EncodeError::Invalid("CONNACK success code other than 0x00")),
    })
}

fn connack<S: Sink>(c: &ConnAck, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    s.put_u8(u8::from(c.session_present));
    if v5 {
        s.put_u8(c.reason_code.0);
        properties::put(s, &c.properties)
    } else {
        s.put_u8(connack_return_code(c.reason_code)?);
        Ok(())
    }
}

fn publish<S: Sink>(p: &Publish, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    s.put_str(&p.topic)?;
    match (p.qos, p.packet_id) {
        (QoS::AtMostOnce, None) => {}
        (QoS::AtMostOnce, Some(_)) => {
            return Err(EncodeError::Invalid("QoS 0 PUBLISH with a packet identifier"));
        }
        (_, Some(id)) => s.put_u16(id.get()),
        (_, None) => {
            return Err(EncodeError::Invalid("QoS 1 or 2 PUBLISH without a packet identifier"));
        }
    }
    if v5 {
        properties::put(s, &p.properties)?;
    }
    s.put_slice(&p.payload);
    Ok(())
}

/// MQTT 5 short forms (3.4.2.1): no reason code and properties for success
/// without properties; no property length when there are no properties.
fn pub_response<S: Sink>(p: &PubResponse, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    s.put_u16(p.packet_id.get());
    if !v5 {
        return Ok(());
    }
    let no_properties = p.properties.reason_string.is_none() && p.properties.user_properties.is_empty();
    if p.reason_code == ReasonCode::SUCCESS && no_properties {
        return Ok(());
    }
    s.put_u8(p.reason_code.0);
    if no_properties { Ok(()) } else { properties::put(s, &p.properties) }
}

fn subscribe<S: Sink>(p: &Subscribe, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    s.put_u16(p.packet_id.get());
    if v5 {
        properties::put(s, &p.properties)?;
    }
    for (filter, options) in &p.filters {
        s.put_str(filter)?;
        let mut byte = options.qos as u8;
        if v5 {
            byte |= u8::from(options.no_local) << 2
                | u8::from(options.retain_as_published) << 3
                | (options.retain_handling as u8) << 4;
        }
        s.put_u8(byte);
    }
    Ok(())
}

fn suback<S: Sink>(p: &SubAck, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    s.put_u16(p.packet_id.get());
    if v5 {
        properties::put(s, &p.properties)?;
    }
    for &code in &p.reason_codes {
        let byte = match code.0 {
            c if v5 => c,
            c @ 0..=2 => c,
            c if c >= 0x80 => 0x80,
            _ => {
                return Err(EncodeError::Invalid("SUBACK code that MQTT 3.1.1 cannot express"));
            }
        };
        s.put_u8(byte);
    }
    Ok(())
}

fn unsubscribe<S: Sink>(p: &Unsubscribe, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    s.put_u16(p.packet_id.get());
    if v5 {
        properties::put(s, &UserProps(&p.user_properties))?;
    }
    for filter in &p.filters {
        s.put_str(filter)?;
    }
    Ok(())
}

fn unsuback<S: Sink>(p: &UnsubAck, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    s.put_u16(p.packet_id.get());
    if v5 {
        properties::put(s, &p.properties)?;
        for code in &p.reason_codes {
            s.put_u8(code.0);
        }
    }
    Ok(())
}

fn disconnect<S: Sink>(p: &Disconnect, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    if !v5 {
        return Ok(());
    }
    let no_properties = p.properties == Default::default();
    if p.reason_code == ReasonCode::SUCCESS && no_properties {
        return Ok(());
    }
    s.put_u8(p.reason_code.0);
    // The property length is written even when zero: remaining length 1 is
    // valid, but common clients (rumqttc 0.24) fail to parse it and lose the reason.
    properties::put(s, &p.properties)
}

fn auth<S: Sink>(p: &Auth, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    if !v5 {
        return Err(EncodeError::Invalid("AUTH exists only in MQTT 5"));
    }
    let no_properties = p.properties == Default::default();
    if p.reason_code == ReasonCode::SUCCESS && no_properties {
        return Ok(());
    }
    s.put_u8(p.reason_code.0);
    if no_properties { Ok(()) } else { properties::put(s, &p.properties) }
}

#[cfg(test)]
mod tests;
