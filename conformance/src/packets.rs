//! Builders for the packets cases send, and readers for the replies, both on
//! top of the suite's own `wire` module.

use bytes::Bytes;

use crate::wire::{Frame, Properties, Props, Reader, Writer, hex, kind, kind_name};

/// The protocol version a case speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Version {
    #[serde(rename = "3.1.1")]
    V311,
    #[serde(rename = "5.0")]
    V5,
}

impl Version {
    pub fn level(self) -> u8 {
        match self {
            Self::V311 => 4,
            Self::V5 => 5,
        }
    }
    pub fn is_v5(self) -> bool {
        self == Self::V5
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::V311 => "3.1.1",
            Self::V5 => "5.0",
        }
    }
}

/// A will message for CONNECT.
#[derive(Debug, Clone)]
pub struct WillSpec {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 will properties.
    pub props: Props,
}

/// CONNECT, field by field.
#[derive(Debug, Clone)]
pub struct ConnectBuilder {
    pub version: Version,
    pub client_id: String,
    pub clean: bool,
    pub keep_alive: u16,
    pub will: Option<WillSpec>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    /// MQTT 5 CONNECT properties.
    pub props: Props,
}

impl ConnectBuilder {
    pub fn new(version: Version, client_id: &str) -> Self {
        Self {
            version,
            client_id: client_id.into(),
            clean: true,
            keep_alive: 60,
            will: None,
            username: None,
            password: None,
            props: Props::new(),
        }
    }
    pub fn clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }
    pub fn keep_alive(mut self, secs: u16) -> Self {
        self.keep_alive = secs;
        self
    }
    pub fn will(mut self, will: WillSpec) -> Self {
        self.will = Some(will);
        self
    }
    pub fn props(mut self, props: Props) -> Self {
        self.props = props;
        self
    }
    pub fn credentials(mut self, username: Option<&str>, password: Option<&[u8]>) -> Self {
        self.username = username.map(Into::into);
        self.password = password.map(<[u8]>::to_vec);
        self
    }

    /// The CONNECT packet's bytes.
    pub fn bytes(&self) -> Bytes {
        let mut flags = 0u8;
        if self.clean {
            flags |= 0x02;
        }
        if let Some(will) = &self.will {
            flags |= 0x04 | (will.qos << 3);
            if will.retain {
                flags |= 0x20;
            }
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        let mut w = Writer::new().str("MQTT").u8(self.version.level()).u8(flags).u16(self.keep_alive);
        if self.version.is_v5() {
            w = w.props(self.props.clone());
        }
        w = w.str(&self.client_id);
        if let Some(will) = &self.will {
            if self.version.is_v5() {
                w = w.props(will.props.clone());
            }
            w = w.str(&will.topic).bin(&will.payload);
        }
        if let Some(username) = &self.username {
            w = w.str(username);
        }
        if let Some(password) = &self.password {
            w = w.bin(password);
        }
        w.frame(0x10)
    }
}

/// PUBLISH bytes. `packet_id` is written only for QoS 1 and 2; `props` only for 5.0.
pub fn publish(
    version: Version,
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    packet_id: u16,
    props: Props,
) -> Bytes {
    publish_flags(version, topic, payload, qos, retain, false, packet_id, props)
}

/// PUBLISH bytes with every flag chosen.
#[allow(clippy::too_many_arguments)]
pub fn publish_flags(
    version: Version,
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    dup: bool,
    packet_id: u16,
    props: Props,
) -> Bytes {
    let first = 0x30 | (u8::from(dup) << 3) | (qos << 1) | u8::from(retain);
    let mut w = Writer::new().str(topic);
    if qos > 0 {
        w = w.u16(packet_id);
    }
    if version.is_v5() {
        w = w.props(props);
    }
    w.raw(payload).frame(first)
}

/// SUBSCRIBE bytes: each filter with its options byte (QoS in bits 0-1, and
/// for 5.0 No Local 0x04, Retain As Published 0x08, Retain Handling << 4).
pub fn subscribe(version: Version, packet_id: u16, filters: &[(&str, u8)], props: Props) -> Bytes {
    let mut w = Writer::new().u16(packet_id);
    if version.is_v5() {
        w = w.props(props);
    }
    for (filter, options) in filters {
        w = w.str(filter).u8(*options);
    }
    w.frame(0x82)
}

/// UNSUBSCRIBE bytes.
pub fn unsubscribe(version: Version, packet_id: u16, filters: &[&str]) -> Bytes {
    let mut w = Writer::new().u16(packet_id);
    if version.is_v5() {
        w = w.no_props();
    }
    for filter in filters {
        w = w.str(filter);
    }
    w.frame(0xA2)
}

/// PUBACK / PUBREC / PUBREL / PUBCOMP (`kind` from `wire::kind`) with success.
pub fn ack(kind: u8, packet_id: u16) -> Bytes {
    let first = (kind << 4) | if kind == kind::PUBREL { 0x02 } else { 0 };
    Writer::new().u16(packet_id).frame(first)
}

/// PUBACK / PUBREC / PUBREL / PUBCOMP with a reason code (5.0).
pub fn ack_with_reason(kind: u8, packet_id: u16, reason: u8) -> Bytes {
    let first = (kind << 4) | if kind == kind::PUBREL { 0x02 } else { 0 };
    Writer::new().u16(packet_id).u8(reason).no_props().frame(first)
}

pub fn pingreq() -> Bytes {
    Bytes::from_static(&[0xC0, 0x00])
}

/// DISCONNECT: for 3.1.1 always empty; for 5.0 with a reason and properties.
pub fn disconnect(version: Version, reason: u8, props: Props) -> Bytes {
    if !version.is_v5() {
        return Bytes::from_static(&[0xE0, 0x00]);
    }
    Writer::new().u8(reason).props(props).frame(0xE0)
}

/// CONNACK as read.
#[derive(Debug, Clone)]
pub struct ConnAck {
    pub session_present: bool,
    /// Return code (3.1.1) or reason code (5.0).
    pub code: u8,
    pub props: Properties,
}

/// PUBLISH as read.
#[derive(Debug, Clone)]
pub struct Publish {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub packet_id: Option<u16>,
    pub props: Properties,
    pub payload: Bytes,
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP as read (reason 0 when absent).
#[derive(Debug, Clone)]
pub struct Ack {
    pub packet_id: u16,
    pub reason: u8,
    pub props: Properties,
}

/// SUBACK or UNSUBACK as read (UNSUBACK of 3.1.1 has no codes).
#[derive(Debug, Clone)]
pub struct SubAck {
    pub packet_id: u16,
    pub props: Properties,
    pub codes: Vec<u8>,
}

/// DISCONNECT as read (reason 0 when absent).
#[derive(Debug, Clone)]
pub struct Disconnect {
    pub reason: u8,
    pub props: Properties,
}

fn expect_kind(frame: &Frame, expected: u8) -> Result<(), String> {
    if frame.kind == expected { Ok(()) } else { Err(format!("expected {}, got {:?}", kind_name(expected), frame)) }
}

fn trailing(r: &Reader, frame: &Frame) -> Result<(), String> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(format!("unexpected bytes after the packet's fields: {}", hex(&frame.bytes)))
    }
}

pub fn parse_connack(frame: &Frame, version: Version) -> Result<ConnAck, String> {
    expect_kind(frame, kind::CONNACK)?;
    let mut r = Reader::new(&frame.body);
    let flags = r.u8()?;
    let code = r.u8()?;
    let props = if version.is_v5() && !r.is_empty() { r.props()? } else { Properties::default() };
    trailing(&r, frame)?;
    Ok(ConnAck { session_present: flags & 0x01 != 0, code, props })
}

pub fn parse_publish(frame: &Frame, version: Version) -> Result<Publish, String> {
    expect_kind(frame, kind::PUBLISH)?;
    let qos = (frame.flags >> 1) & 0x03;
    let mut r = Reader::new(&frame.body);
    let topic = r.str()?;
    let packet_id = if qos > 0 { Some(r.u16()?) } else { None };
    let props = if version.is_v5() { r.props()? } else { Properties::default() };
    Ok(Publish {
        dup: frame.flags & 0x08 != 0,
        qos,
        retain: frame.flags & 0x01 != 0,
        topic,
        packet_id,
        props,
        payload: r.rest(),
    })
}

pub fn parse_ack(frame: &Frame, version: Version) -> Result<Ack, String> {
    let mut r = Reader::new(&frame.body);
    let packet_id = r.u16()?;
    let reason = if version.is_v5() && !r.is_empty() { r.u8()? } else { 0 };
    let props = if version.is_v5() && !r.is_empty() { r.props()? } else { Properties::default() };
    trailing(&r, frame)?;
    Ok(Ack { packet_id, reason, props })
}

pub fn parse_suback(frame: &Frame, version: Version) -> Result<SubAck, String> {
    if frame.kind != kind::SUBACK && frame.kind != kind::UNSUBACK {
        return Err(format!("expected SUBACK or UNSUBACK, got {frame:?}"));
    }
    let mut r = Reader::new(&frame.body);
    let packet_id = r.u16()?;
    let props = if version.is_v5() { r.props()? } else { Properties::default() };
    Ok(SubAck { packet_id, props, codes: r.rest().to_vec() })
}

pub fn parse_disconnect(frame: &Frame) -> Result<Disconnect, String> {
    expect_kind(frame, kind::DISCONNECT)?;
    let mut r = Reader::new(&frame.body);
    let reason = if r.is_empty() { 0 } else { r.u8()? };
    let props = if r.is_empty() { Properties::default() } else { r.props()? };
    trailing(&r, frame)?;
    Ok(Disconnect { reason, props })
}
