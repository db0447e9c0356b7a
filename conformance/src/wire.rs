//! The suite's own MQTT wire format: a byte writer for what cases send and a
//! minimal reader for what the server answers. Written from the
//! specification, independently of the broker's `mqtt-codec`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Packet types (fixed header, high nibble).
pub mod kind {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
    pub const AUTH: u8 = 15;
}

/// MQTT 5 property identifiers.
pub mod prop {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Builds bytes field by field. `frame(first_byte)` wraps what was written
/// as the variable header and payload of a packet.
#[derive(Debug, Default, Clone)]
pub struct Writer(BytesMut);

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn u8(mut self, v: u8) -> Self {
        self.0.put_u8(v);
        self
    }
    pub fn u16(mut self, v: u16) -> Self {
        self.0.put_u16(v);
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.put_u32(v);
        self
    }
    /// A variable byte integer.
    pub fn varint(mut self, v: u32) -> Self {
        put_varint(&mut self.0, v);
        self
    }
    /// A UTF-8 string or binary data with its two-byte length.
    pub fn str(self, s: &str) -> Self {
        self.bin(s.as_bytes())
    }
    pub fn bin(mut self, b: &[u8]) -> Self {
        self.0.put_u16(u16::try_from(b.len()).unwrap_or(u16::MAX));
        self.0.put_slice(b);
        self
    }
    /// Bytes as they are.
    pub fn raw(mut self, b: &[u8]) -> Self {
        self.0.put_slice(b);
        self
    }
    /// A property block: its length, then the properties written by `props`.
    pub fn props(self, props: Props) -> Self {
        let body = props.0.0;
        self.varint(u32::try_from(body.len()).unwrap_or(u32::MAX)).raw(&body)
    }
    /// An empty property block (a single 0 byte).
    pub fn no_props(self) -> Self {
        self.u8(0)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_bytes(self) -> Bytes {
        self.0.freeze()
    }
    /// The whole packet: `first` (type and flags), the remaining length, the body.
    pub fn frame(self, first: u8) -> Bytes {
        let mut out = BytesMut::with_capacity(self.0.len() + 5);
        out.put_u8(first);
        put_varint(&mut out, u32::try_from(self.0.len()).unwrap_or(u32::MAX));
        out.put_slice(&self.0);
        out.freeze()
    }
}

/// MQTT 5 properties, each written as identifier then value.
#[derive(Debug, Default, Clone)]
pub struct Props(Writer);

impl Props {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn u8(self, id: u8, v: u8) -> Self {
        Self(self.0.u8(id).u8(v))
    }
    pub fn u16(self, id: u8, v: u16) -> Self {
        Self(self.0.u8(id).u16(v))
    }
    pub fn u32(self, id: u8, v: u32) -> Self {
        Self(self.0.u8(id).u32(v))
    }
    pub fn varint(self, id: u8, v: u32) -> Self {
        Self(self.0.u8(id).varint(v))
    }
    pub fn str(self, id: u8, v: &str) -> Self {
        Self(self.0.u8(id).str(v))
    }
    pub fn bin(self, id: u8, v: &[u8]) -> Self {
        Self(self.0.u8(id).bin(v))
    }
    pub fn user(self, key: &str, value: &str) -> Self {
        Self(self.0.u8(prop::USER_PROPERTY).str(key).str(value))
    }
}

pub fn put_varint(out: &mut BytesMut, mut v: u32) {
    loop {
        let mut byte = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if v == 0 {
            break;
        }
    }
}

/// One packet as received: the fixed header split, and the body.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub body: Bytes,
    /// The whole packet as it arrived, for failure messages.
    pub bytes: Bytes,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", kind_name(self.kind), hex(&self.bytes))
    }
}

pub fn kind_name(kind: u8) -> &'static str {
    const NAMES: [&str; 16] = [
        "RESERVED",
        "CONNECT",
        "CONNACK",
        "PUBLISH",
        "PUBACK",
        "PUBREC",
        "PUBREL",
        "PUBCOMP",
        "SUBSCRIBE",
        "SUBACK",
        "UNSUBSCRIBE",
        "UNSUBACK",
        "PINGREQ",
        "PINGRESP",
        "DISCONNECT",
        "AUTH",
    ];
    NAMES[usize::from(kind & 0x0F)]
}

/// Bytes as `20 03 00 00 00`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// Splits one whole packet off the front of `buf`; `Ok(None)` until complete.
pub fn split_frame(buf: &mut BytesMut) -> Result<Option<Frame>, String> {
    let Some(&first) = buf.first() else { return Ok(None) };
    let mut length: usize = 0;
    let mut shift = 0;
    let mut header = 1;
    loop {
        let Some(&byte) = buf.get(header) else { return Ok(None) };
        header += 1;
        length |= usize::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(format!("remaining length longer than 4 bytes: {}", hex(&buf[..header])));
        }
    }
    if buf.len() < header + length {
        return Ok(None);
    }
    let bytes = buf.split_to(header + length).freeze();
    let body = bytes.slice(header..);
    Ok(Some(Frame { kind: first >> 4, flags: first & 0x0F, body, bytes }))
}

/// Reads fields from a packet body; every read fails with a message instead of panicking.
#[derive(Debug, Clone)]
pub struct Reader(Bytes);

impl Reader {
    pub fn new(body: &Bytes) -> Self {
        Self(body.clone())
    }
    pub fn remaining(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn need(&self, n: usize, what: &str) -> Result<(), String> {
        if self.0.len() < n { Err(format!("packet ends before its {what}")) } else { Ok(()) }
    }
    pub fn u8(&mut self) -> Result<u8, String> {
        self.need(1, "byte")?;
        Ok(self.0.get_u8())
    }
    pub fn u16(&mut self) -> Result<u16, String> {
        self.need(2, "two-byte integer")?;
        Ok(self.0.get_u16())
    }
    pub fn u32(&mut self) -> Result<u32, String> {
        self.need(4, "four-byte integer")?;
        Ok(self.0.get_u32())
    }
    pub fn varint(&mut self) -> Result<u32, String> {
        let mut value: u32 = 0;
        for shift in [0, 7, 14, 21] {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("variable byte integer longer than 4 bytes".into())
    }
    pub fn bin(&mut self) -> Result<Bytes, String> {
        let len = usize::from(self.u16()?);
        self.need(len, "string or binary data")?;
        Ok(self.0.split_to(len))
    }
    pub fn str(&mut self) -> Result<String, String> {
        let bytes = self.bin()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }
    /// The rest of the body.
    pub fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.0)
    }
    /// An MQTT 5 property block.
    pub fn props(&mut self) -> Result<Properties, String> {
        let len = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
        self.need(len, "properties")?;
        let mut r = Reader(self.0.split_to(len));
        let mut props = Properties::default();
        while !r.is_empty() {
            let id = r.u8()?;
            let value = match id {
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => Value::U8(r.u8()?),
                0x13 | 0x21 | 0x22 | 0x23 => Value::U16(r.u16()?),
                0x02 | 0x11 | 0x18 | 0x27 => Value::U32(r.u32()?),
                0x0B => Value::U32(r.varint()?),
                0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => Value::Str(r.str()?),
                0x09 | 0x16 => Value::Bin(r.bin()?),
                0x26 => Value::Pair(r.str()?, r.str()?),
                other => return Err(format!("unknown property identifier 0x{other:02x}")),
            };
            props.0.push((id, value));
        }
        Ok(props)
    }
}

/// A property value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    U8(u8),
    U16(u16),
    U32(u32),
    Str(String),
    Bin(Bytes),
    Pair(String, String),
}

/// Properties in the order received (identifiers may repeat).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties(pub Vec<(u8, Value)>);

impl Properties {
    pub fn get(&self, id: u8) -> Option<&Value> {
        self.0.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
    }
    pub fn all(&self, id: u8) -> Vec<&Value> {
        self.0.iter().filter(|(i, _)| *i == id).map(|(_, v)| v).collect()
    }
    pub fn u8(&self, id: u8) -> Option<u8> {
        match self.get(id)? {
            Value::U8(v) => Some(*v),
            _ => None,
        }
    }
    pub fn u16(&self, id: u8) -> Option<u16> {
        match self.get(id)? {
            Value::U16(v) => Some(*v),
            _ => None,
        }
    }
    pub fn u32(&self, id: u8) -> Option<u32> {
        match self.get(id)? {
            Value::U32(v) => Some(*v),
            _ => None,
        }
    }
    pub fn str(&self, id: u8) -> Option<&str> {
        match self.get(id)? {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }
    pub fn bin(&self, id: u8) -> Option<&Bytes> {
        match self.get(id)? {
            Value::Bin(v) => Some(v),
            _ => None,
        }
    }
    pub fn user_properties(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter_map(|(_, v)| if let Value::Pair(k, v) = v { Some((k.clone(), v.clone())) } else { None })
            .collect()
    }

    /// Whether these properties carry every User Property of `sent`, unaltered
    /// and in the same order (repeats included), as a server forwards them
    /// (5.0 MQTT-3.3.2-17, MQTT-3.3.2-18, MQTT-3.1.3-10). User Properties the
    /// server adds of its own, wherever they stand, are allowed: those
    /// statements only protect the ones the publisher sent.
    pub fn keeps_user_properties(&self, sent: &[(&str, &str)]) -> bool {
        let mut forwarded =
            self.0.iter().filter_map(|(_, v)| if let Value::Pair(k, v) = v { Some((k, v)) } else { None });
        sent.iter().all(|(key, value)| forwarded.any(|(k, v)| k == key && v == value))
    }
}
