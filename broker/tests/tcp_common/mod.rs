//! Shared helpers of the `tcp_*` integration tests: a broker on an ephemeral
//! port, a raw MQTT client over `tokio::net::TcpStream` with its own small
//! encoder and decoder (independent of `mqtt-codec`, so that the broker's
//! bytes are checked against a second reading of the specification), and thin
//! wrappers around the rumqttc 3.1.1 and 5.0 clients.
//!
//! Every wait is bounded: a test that does not get what it waits for fails
//! with a message instead of hanging.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long any single expected event may take (generous: loaded CI machines).
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test listens to conclude that something does not arrive. Only
/// used after the broker has provably processed the triggering input.
pub const QUIET: Duration = Duration::from_millis(300);

/// Runs `fut`, failing the test if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?}"),
    }
}

/// Like [`within`], naming what was awaited.
pub async fn within_named<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

// ---------------------------------------------------------------------------
// Broker
// ---------------------------------------------------------------------------

/// A broker with the default configuration on 127.0.0.1, port 0.
pub async fn start() -> broker::Server {
    start_with(|_| {}).await
}

/// A broker on 127.0.0.1, port 0, after `configure` adjusted the defaults.
pub async fn start_with(configure: impl FnOnce(&mut broker::Config)) -> broker::Server {
    let mut config = broker::Config::default();
    config.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    configure(&mut config);
    within_named("the broker to start", WAIT, broker::Server::start(config, broker::seam::Runtime::tokio()))
        .await
        .expect("broker starts")
}

// ---------------------------------------------------------------------------
// Wire encoding (independent of mqtt-codec)
// ---------------------------------------------------------------------------

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

pub fn packet_name(kind: u8) -> &'static str {
    match kind {
        CONNECT => "CONNECT",
        CONNACK => "CONNACK",
        PUBLISH => "PUBLISH",
        PUBACK => "PUBACK",
        PUBREC => "PUBREC",
        PUBREL => "PUBREL",
        PUBCOMP => "PUBCOMP",
        SUBSCRIBE => "SUBSCRIBE",
        SUBACK => "SUBACK",
        UNSUBSCRIBE => "UNSUBSCRIBE",
        UNSUBACK => "UNSUBACK",
        PINGREQ => "PINGREQ",
        PINGRESP => "PINGRESP",
        DISCONNECT => "DISCONNECT",
        15 => "AUTH",
        _ => "reserved",
    }
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
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
}

pub fn varint(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return out;
        }
    }
}

/// A length-prefixed string or binary field.
pub fn field(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).unwrap();
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A whole packet: the first header byte, the remaining length and `body`.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// A property block (length then properties) from concatenated properties.
pub fn props_block(props: &[u8]) -> Vec<u8> {
    let mut out = varint(props.len());
    out.extend_from_slice(props);
    out
}

pub fn p_u8(id: u8, value: u8) -> Vec<u8> {
    vec![id, value]
}

pub fn p_u16(id: u8, value: u16) -> Vec<u8> {
    let mut out = vec![id];
    out.extend(value.to_be_bytes());
    out
}

pub fn p_u32(id: u8, value: u32) -> Vec<u8> {
    let mut out = vec![id];
    out.extend(value.to_be_bytes());
    out
}

pub fn p_var(id: u8, value: usize) -> Vec<u8> {
    let mut out = vec![id];
    out.extend(varint(value));
    out
}

pub fn p_str(id: u8, value: &str) -> Vec<u8> {
    let mut out = vec![id];
    out.extend(field(value.as_bytes()));
    out
}

pub fn p_bin(id: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![id];
    out.extend(field(value));
    out
}

pub fn p_pair(key: &str, value: &str) -> Vec<u8> {
    let mut out = vec![prop::USER_PROPERTY];
    out.extend(field(key.as_bytes()));
    out.extend(field(value.as_bytes()));
    out
}

/// Protocol level of a connection: 3 (MQTT 3.1), 4 (3.1.1) or 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    V31,
    V311,
    V5,
}

impl Level {
    pub fn is_v5(self) -> bool {
        self == Level::V5
    }
}

/// A will for [`Connect`].
#[derive(Debug, Clone)]
pub struct WillSpec {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    /// Will properties (MQTT 5), concatenated.
    pub props: Vec<u8>,
}

impl WillSpec {
    pub fn new(topic: &str, payload: &[u8]) -> Self {
        Self { topic: topic.into(), payload: payload.into(), qos: 0, retain: false, props: Vec::new() }
    }

    pub fn qos(mut self, qos: u8) -> Self {
        self.qos = qos;
        self
    }

    pub fn retain(mut self) -> Self {
        self.retain = true;
        self
    }

    pub fn props(mut self, props: Vec<u8>) -> Self {
        self.props = props;
        self
    }
}

/// A CONNECT packet.
#[derive(Debug, Clone)]
pub struct Connect {
    pub level: Level,
    pub client_id: String,
    pub clean: bool,
    pub keep_alive: u16,
    /// CONNECT properties (MQTT 5), concatenated.
    pub props: Vec<u8>,
    pub will: Option<WillSpec>,
}

impl Connect {
    pub fn new(level: Level, client_id: &str) -> Self {
        Self { level, client_id: client_id.into(), clean: true, keep_alive: 60, props: Vec::new(), will: None }
    }

    pub fn v5(client_id: &str) -> Self {
        Self::new(Level::V5, client_id)
    }

    pub fn v311(client_id: &str) -> Self {
        Self::new(Level::V311, client_id)
    }

    pub fn v31(client_id: &str) -> Self {
        Self::new(Level::V31, client_id)
    }

    pub fn clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }

    pub fn keep_alive(mut self, secs: u16) -> Self {
        self.keep_alive = secs;
        self
    }

    /// Adds CONNECT properties (MQTT 5).
    pub fn props(mut self, props: Vec<u8>) -> Self {
        self.props.extend(props);
        self
    }

    /// MQTT 5 session expiry interval.
    pub fn session_expiry(self, secs: u32) -> Self {
        self.props(p_u32(prop::SESSION_EXPIRY_INTERVAL, secs))
    }

    pub fn will(mut self, will: WillSpec) -> Self {
        self.will = Some(will);
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let (name, level): (&[u8], u8) = match self.level {
            Level::V31 => (b"MQIsdp", 3),
            Level::V311 => (b"MQTT", 4),
            Level::V5 => (b"MQTT", 5),
        };
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
        let mut body = field(name);
        body.push(level);
        body.push(flags);
        body.extend(self.keep_alive.to_be_bytes());
        if self.level.is_v5() {
            body.extend(props_block(&self.props));
        }
        body.extend(field(self.client_id.as_bytes()));
        if let Some(will) = &self.will {
            if self.level.is_v5() {
                body.extend(props_block(&will.props));
            }
            body.extend(field(will.topic.as_bytes()));
            body.extend(field(&will.payload));
        }
        frame(0x10, &body)
    }
}

/// A PUBLISH packet.
#[derive(Debug, Clone)]
pub struct PublishSpec {
    pub topic: Vec<u8>,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub packet_id: u16,
    pub props: Vec<u8>,
}

impl PublishSpec {
    pub fn new(topic: &str, payload: &[u8]) -> Self {
        Self {
            topic: topic.as_bytes().to_vec(),
            payload: payload.to_vec(),
            qos: 0,
            retain: false,
            dup: false,
            packet_id: 0,
            props: Vec::new(),
        }
    }

    /// A topic given as raw bytes (for invalid UTF-8).
    pub fn raw_topic(topic: &[u8], payload: &[u8]) -> Self {
        let mut spec = Self::new("", payload);
        spec.topic = topic.to_vec();
        spec
    }

    /// QoS 1 or 2 with a packet identifier (QoS 0 ignores it).
    pub fn qos(mut self, qos: u8, packet_id: u16) -> Self {
        self.qos = qos;
        self.packet_id = packet_id;
        self
    }

    pub fn retain(mut self) -> Self {
        self.retain = true;
        self
    }

    pub fn dup(mut self) -> Self {
        self.dup = true;
        self
    }

    pub fn props(mut self, props: Vec<u8>) -> Self {
        self.props.extend(props);
        self
    }

    pub fn encode(&self, level: Level) -> Vec<u8> {
        let mut first = 0x30 | (self.qos << 1);
        if self.retain {
            first |= 0x01;
        }
        if self.dup {
            first |= 0x08;
        }
        let mut body = field(&self.topic);
        if self.qos > 0 {
            body.extend(self.packet_id.to_be_bytes());
        }
        if level.is_v5() {
            body.extend(props_block(&self.props));
        }
        body.extend_from_slice(&self.payload);
        frame(first, &body)
    }
}

/// SUBSCRIBE with `(filter, options byte)` pairs and MQTT 5 properties.
pub fn subscribe_packet(level: Level, packet_id: u16, filters: &[(&str, u8)], props: &[u8]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    if level.is_v5() {
        body.extend(props_block(props));
    }
    for (filter, options) in filters {
        body.extend(field(filter.as_bytes()));
        body.push(*options);
    }
    frame(0x82, &body)
}

pub fn unsubscribe_packet(level: Level, packet_id: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    if level.is_v5() {
        body.extend(props_block(&[]));
    }
    for filter in filters {
        body.extend(field(filter.as_bytes()));
    }
    frame(0xA2, &body)
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP in their shortest form (success).
pub fn ack_packet(kind: u8, packet_id: u16) -> Vec<u8> {
    let first = if kind == PUBREL { 0x62 } else { kind << 4 };
    frame(first, &packet_id.to_be_bytes())
}

/// MQTT 5 PUBACK/PUBREC/PUBREL/PUBCOMP with a reason code.
pub fn ack_packet_v5(kind: u8, packet_id: u16, reason: u8) -> Vec<u8> {
    let first = if kind == PUBREL { 0x62 } else { kind << 4 };
    let mut body = packet_id.to_be_bytes().to_vec();
    body.push(reason);
    frame(first, &body)
}

pub const PINGREQ_PACKET: [u8; 2] = [0xC0, 0x00];
/// DISCONNECT of MQTT 3.1 / 3.1.1, and MQTT 5's short form of reason 0x00.
pub const DISCONNECT_PACKET: [u8; 2] = [0xE0, 0x00];

/// MQTT 5 DISCONNECT with a reason code and properties.
pub fn disconnect_v5(reason: u8, props: &[u8]) -> Vec<u8> {
    let mut body = vec![reason];
    body.extend(props_block(props));
    frame(0xE0, &body)
}

/// Subscription options byte (MQTT 5 layout; MQTT 3.1.1 uses only the QoS bits).
pub fn sub_options(qos: u8, no_local: bool, retain_as_published: bool, retain_handling: u8) -> u8 {
    qos | (u8::from(no_local) << 2) | (u8::from(retain_as_published) << 3) | (retain_handling << 4)
}

// ---------------------------------------------------------------------------
// Wire decoding
// ---------------------------------------------------------------------------

/// One packet as read from the socket.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    pub first: u8,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:02x?}", packet_name(self.kind()), self.bytes())
    }
}

impl Frame {
    pub fn kind(&self) -> u8 {
        self.first >> 4
    }

    pub fn flags(&self) -> u8 {
        self.first & 0x0F
    }

    /// The packet's bytes as they came over the wire.
    pub fn bytes(&self) -> Vec<u8> {
        frame(self.first, &self.body)
    }

    fn cursor(&self) -> Cursor<'_> {
        Cursor { data: &self.body, pos: 0 }
    }

    pub fn expect_kind(&self, kind: u8) -> &Self {
        assert_eq!(self.kind(), kind, "expected {}, got {self:?}", packet_name(kind));
        self
    }

    pub fn connack(&self) -> ConnAck {
        self.expect_kind(CONNACK);
        let mut c = self.cursor();
        let flags = c.u8();
        let code = c.u8();
        let props = if c.is_empty() { Props::default() } else { c.props() };
        ConnAck { session_present: flags & 0x01 != 0, code, props }
    }

    pub fn publish(&self, level: Level) -> Pub {
        self.expect_kind(PUBLISH);
        let qos = (self.first >> 1) & 0x03;
        let mut c = self.cursor();
        let topic = String::from_utf8(c.field()).expect("topic is UTF-8");
        let packet_id = if qos > 0 { Some(c.u16()) } else { None };
        let props = if level.is_v5() { c.props() } else { Props::default() };
        let payload = c.rest();
        Pub { dup: self.first & 0x08 != 0, qos, retain: self.first & 0x01 != 0, topic, packet_id, props, payload }
    }

    /// PUBACK/PUBREC/PUBREL/PUBCOMP: packet identifier and reason code (0 if absent).
    pub fn ack(&self) -> (u16, u8) {
        let mut c = self.cursor();
        let id = c.u16();
        let reason = if c.is_empty() { 0 } else { c.u8() };
        (id, reason)
    }

    /// SUBACK or UNSUBACK: packet identifier and reason codes.
    pub fn sub_ack(&self, level: Level) -> (u16, Vec<u8>) {
        assert!(matches!(self.kind(), SUBACK | UNSUBACK), "expected SUBACK or UNSUBACK, got {self:?}");
        let mut c = self.cursor();
        let id = c.u16();
        if level.is_v5() {
            c.props();
        }
        (id, c.rest())
    }

    /// DISCONNECT reason code (0 for the short form).
    pub fn disconnect_reason(&self) -> u8 {
        self.expect_kind(DISCONNECT);
        self.body.first().copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: u8,
    pub props: Props,
}

/// A received PUBLISH.
#[derive(Debug, Clone)]
pub struct Pub {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub packet_id: Option<u16>,
    pub props: Props,
    pub payload: Vec<u8>,
}

impl Pub {
    pub fn payload_str(&self) -> &str {
        std::str::from_utf8(&self.payload).unwrap_or("<binary>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    Byte(u8),
    U16(u16),
    U32(u32),
    Var(usize),
    Str(String),
    Bin(Vec<u8>),
    Pair(String, String),
}

/// MQTT 5 properties in the order received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props(pub Vec<(u8, PropValue)>);

impl Props {
    pub fn get(&self, id: u8) -> Option<&PropValue> {
        self.0.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
    }

    pub fn all(&self, id: u8) -> Vec<&PropValue> {
        self.0.iter().filter(|(i, _)| *i == id).map(|(_, v)| v).collect()
    }

    pub fn has(&self, id: u8) -> bool {
        self.get(id).is_some()
    }

    pub fn u8(&self, id: u8) -> Option<u8> {
        match self.get(id)? {
            PropValue::Byte(v) => Some(*v),
            other => panic!("property {id:#04x} is {other:?}"),
        }
    }

    pub fn u16(&self, id: u8) -> Option<u16> {
        match self.get(id)? {
            PropValue::U16(v) => Some(*v),
            other => panic!("property {id:#04x} is {other:?}"),
        }
    }

    pub fn u32(&self, id: u8) -> Option<u32> {
        match self.get(id)? {
            PropValue::U32(v) => Some(*v),
            other => panic!("property {id:#04x} is {other:?}"),
        }
    }

    pub fn str(&self, id: u8) -> Option<&str> {
        match self.get(id)? {
            PropValue::Str(v) => Some(v),
            other => panic!("property {id:#04x} is {other:?}"),
        }
    }

    pub fn bin(&self, id: u8) -> Option<&[u8]> {
        match self.get(id)? {
            PropValue::Bin(v) => Some(v),
            other => panic!("property {id:#04x} is {other:?}"),
        }
    }

    pub fn subscription_ids(&self) -> Vec<usize> {
        let mut ids: Vec<usize> = self
            .all(prop::SUBSCRIPTION_IDENTIFIER)
            .into_iter()
            .map(|v| match v {
                PropValue::Var(v) => *v,
                other => panic!("subscription identifier is {other:?}"),
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    pub fn user_properties(&self) -> Vec<(String, String)> {
        self.all(prop::USER_PROPERTY)
            .into_iter()
            .map(|v| match v {
                PropValue::Pair(k, v) => (k.clone(), v.clone()),
                other => panic!("user property is {other:?}"),
            })
            .collect()
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn take(&mut self, n: usize) -> &[u8] {
        assert!(self.pos + n <= self.data.len(), "packet from the broker is shorter than its fields");
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        out
    }

    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    fn u16(&mut self) -> u16 {
        let b = self.take(2);
        u16::from_be_bytes([b[0], b[1]])
    }

    fn u32(&mut self) -> u32 {
        let b = self.take(4);
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn varint(&mut self) -> usize {
        let mut value = 0usize;
        let mut shift = 0;
        loop {
            let byte = self.u8();
            value |= usize::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
            shift += 7;
            assert!(shift < 28, "variable byte integer from the broker is longer than 4 bytes");
        }
    }

    fn field(&mut self) -> Vec<u8> {
        let len = usize::from(self.u16());
        self.take(len).to_vec()
    }

    fn string(&mut self) -> String {
        String::from_utf8(self.field()).expect("UTF-8 string from the broker")
    }

    fn rest(&mut self) -> Vec<u8> {
        let out = self.data[self.pos..].to_vec();
        self.pos = self.data.len();
        out
    }

    fn props(&mut self) -> Props {
        let len = self.varint();
        let end = self.pos + len;
        assert!(end <= self.data.len(), "property length beyond the packet");
        let mut props = Vec::new();
        while self.pos < end {
            let id = self.u8();
            let value = match id {
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => PropValue::Byte(self.u8()),
                0x13 | 0x21 | 0x22 | 0x23 => PropValue::U16(self.u16()),
                0x02 | 0x11 | 0x18 | 0x27 => PropValue::U32(self.u32()),
                0x0B => PropValue::Var(self.varint()),
                0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => PropValue::Str(self.string()),
                0x09 | 0x16 => PropValue::Bin(self.field()),
                0x26 => {
                    let key = self.string();
                    PropValue::Pair(key, self.string())
                }
                other => panic!("unknown property identifier {other:#04x} from the broker"),
            };
            props.push((id, value));
        }
        assert_eq!(self.pos, end, "properties overrun their length");
        Props(props)
    }
}

// ---------------------------------------------------------------------------
// Raw client
// ---------------------------------------------------------------------------

/// What a bounded read got.
#[derive(Debug)]
pub enum Read {
    Frame(Frame),
    /// The broker closed the connection (EOF or reset).
    Closed,
    TimedOut,
}

/// A client that speaks bytes: for checking exact packets and sending bad ones.
#[derive(Debug)]
pub struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
    stash: VecDeque<Frame>,
    pub level: Level,
    closed: bool,
}

impl Raw {
    /// A TCP connection with nothing sent yet.
    pub async fn tcp(addr: SocketAddr, level: Level) -> Raw {
        let stream = within_named("TCP connect", WAIT, TcpStream::connect(addr)).await.expect("TCP connect");
        stream.set_nodelay(true).unwrap();
        Raw { stream, buf: Vec::new(), stash: VecDeque::new(), level, closed: false }
    }

    /// Connects, sends `connect` and returns the CONNACK, asserting success.
    pub async fn connect(addr: SocketAddr, connect: Connect) -> (Raw, ConnAck) {
        let (raw, ack) = Self::try_connect(addr, connect).await;
        assert_eq!(ack.code, 0, "CONNACK refused the connection: {ack:?}");
        (raw, ack)
    }

    /// Connects, sends `connect` and returns whatever CONNACK came back.
    pub async fn try_connect(addr: SocketAddr, connect: Connect) -> (Raw, ConnAck) {
        let mut raw = Self::tcp(addr, connect.level).await;
        raw.send(&connect.encode()).await;
        let ack = raw.recv().await.connack();
        (raw, ack)
    }

    /// Writes bytes. A write the broker refuses because it already closed
    /// is not an error here: the test checks what it read.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = within_named("a socket write", WAIT, self.stream.write_all(bytes)).await;
    }

    /// Reads one frame, waiting at most `limit`.
    pub async fn read(&mut self, limit: Duration) -> Read {
        if let Some(frame) = self.stash.pop_front() {
            return Read::Frame(frame);
        }
        self.read_socket(limit).await
    }

    async fn read_socket(&mut self, limit: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(frame) = self.parse() {
                return Read::Frame(frame);
            }
            if self.closed {
                return Read::Closed;
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Read::TimedOut,
                Ok(Ok(0)) | Ok(Err(_)) => self.closed = true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        let first = *self.buf.first()?;
        let mut len = 0usize;
        let mut shift = 0;
        let mut i = 1;
        loop {
            let byte = *self.buf.get(i)?;
            len |= usize::from(byte & 0x7F) << shift;
            i += 1;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            assert!(shift < 28, "remaining length from the broker is longer than 4 bytes");
        }
        if self.buf.len() < i + len {
            return None;
        }
        let body = self.buf[i..i + len].to_vec();
        self.buf.drain(..i + len);
        Some(Frame { first, body })
    }

    /// The next frame; fails the test on timeout or close.
    pub async fn recv(&mut self) -> Frame {
        match self.read(WAIT).await {
            Read::Frame(frame) => frame,
            Read::Closed => panic!("connection closed while a packet was expected"),
            Read::TimedOut => panic!("no packet within {WAIT:?}"),
        }
    }

    /// The next frame of `kind`, keeping frames of other kinds for later reads.
    pub async fn recv_kind(&mut self, kind: u8) -> Frame {
        if let Some(pos) = self.stash.iter().position(|f| f.kind() == kind) {
            return self.stash.remove(pos).unwrap();
        }
        loop {
            match self.read_socket(WAIT).await {
                Read::Frame(frame) if frame.kind() == kind => return frame,
                Read::Frame(frame) => self.stash.push_back(frame),
                Read::Closed => {
                    panic!("connection closed while waiting for {}; got {:?}", packet_name(kind), self.stash)
                }
                Read::TimedOut => panic!("no {} within {WAIT:?}; got {:?}", packet_name(kind), self.stash),
            }
        }
    }

    /// The next PUBLISH (other packets are kept for later reads).
    pub async fn recv_publish(&mut self) -> Pub {
        let level = self.level;
        self.recv_kind(PUBLISH).await.publish(level)
    }

    /// Asserts that nothing arrives for `QUIET`.
    pub async fn expect_silence(&mut self) {
        match self.read(QUIET).await {
            Read::TimedOut => {}
            Read::Frame(frame) => panic!("expected nothing, got {frame:?}"),
            Read::Closed => panic!("expected nothing, but the connection closed"),
        }
    }

    /// Reads until the broker closes the connection; returns what came before.
    pub async fn expect_closed(&mut self) -> Vec<Frame> {
        self.expect_closed_within(WAIT).await
    }

    pub async fn expect_closed_within(&mut self, limit: Duration) -> Vec<Frame> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut frames: Vec<Frame> = self.stash.drain(..).collect();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_socket(left).await {
                Read::Frame(frame) => frames.push(frame),
                Read::Closed => return frames,
                Read::TimedOut => panic!("connection still open after {limit:?}; received {frames:?}"),
            }
        }
    }

    /// Expects an MQTT 5 DISCONNECT with `reason`, then the close.
    pub async fn expect_disconnect(&mut self, reason: u8) {
        let frames = self.expect_closed().await;
        let disconnects: Vec<u8> =
            frames.iter().filter(|f| f.kind() == DISCONNECT).map(Frame::disconnect_reason).collect();
        assert_eq!(disconnects, vec![reason], "expected one DISCONNECT {reason:#04x} before the close, got {frames:?}");
    }

    /// Expects the close without any DISCONNECT (MQTT 3.1 / 3.1.1).
    pub async fn expect_closed_without_disconnect(&mut self) {
        let frames = self.expect_closed().await;
        assert!(frames.iter().all(|f| f.kind() != DISCONNECT), "MQTT 3 has no DISCONNECT from the server: {frames:?}");
    }

    /// SUBSCRIBE and return the SUBACK's reason codes.
    pub async fn subscribe(&mut self, packet_id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
        self.subscribe_with(packet_id, filters, &[]).await
    }

    pub async fn subscribe_with(&mut self, packet_id: u16, filters: &[(&str, u8)], props: &[u8]) -> Vec<u8> {
        let level = self.level;
        self.send(&subscribe_packet(level, packet_id, filters, props)).await;
        let (id, codes) = self.recv_kind(SUBACK).await.sub_ack(level);
        assert_eq!(id, packet_id, "SUBACK packet identifier");
        codes
    }

    /// UNSUBSCRIBE and return the UNSUBACK's reason codes (empty before MQTT 5).
    pub async fn unsubscribe(&mut self, packet_id: u16, filters: &[&str]) -> Vec<u8> {
        let level = self.level;
        self.send(&unsubscribe_packet(level, packet_id, filters)).await;
        let (id, codes) = self.recv_kind(UNSUBACK).await.sub_ack(level);
        assert_eq!(id, packet_id, "UNSUBACK packet identifier");
        codes
    }

    /// Publishes and completes the flow of its QoS.
    pub async fn publish(&mut self, spec: PublishSpec) {
        let level = self.level;
        self.send(&spec.encode(level)).await;
        match spec.qos {
            0 => {}
            1 => {
                let (id, reason) = self.recv_kind(PUBACK).await.ack();
                assert_eq!(id, spec.packet_id, "PUBACK packet identifier");
                assert!(reason < 0x80, "PUBACK reason {reason:#04x}");
            }
            _ => {
                let (id, reason) = self.recv_kind(PUBREC).await.ack();
                assert_eq!(id, spec.packet_id, "PUBREC packet identifier");
                assert!(reason < 0x80, "PUBREC reason {reason:#04x}");
                self.send(&ack_packet(PUBREL, spec.packet_id)).await;
                let (id, _) = self.recv_kind(PUBCOMP).await.ack();
                assert_eq!(id, spec.packet_id, "PUBCOMP packet identifier");
            }
        }
    }

    /// PINGREQ, then waits for the PINGRESP: everything sent before was processed.
    pub async fn ping(&mut self) {
        self.send(&PINGREQ_PACKET).await;
        let frame = self.recv_kind(PINGRESP).await;
        assert_eq!(frame.bytes(), vec![0xD0, 0x00]);
    }

    /// Acknowledges a received PUBLISH as its QoS requires (the whole flow for QoS 2).
    pub async fn ack(&mut self, publish: &Pub) {
        let Some(id) = publish.packet_id else { return };
        if publish.qos == 1 {
            self.send(&ack_packet(PUBACK, id)).await;
        } else {
            self.send(&ack_packet(PUBREC, id)).await;
            let (rel, _) = self.recv_kind(PUBREL).await.ack();
            assert_eq!(rel, id, "PUBREL packet identifier");
            self.send(&ack_packet(PUBCOMP, id)).await;
        }
    }

    /// Receives a PUBLISH and acknowledges it.
    pub async fn recv_publish_acked(&mut self) -> Pub {
        let publish = self.recv_publish().await;
        self.ack(&publish).await;
        publish
    }

    /// Sends DISCONNECT and waits for the broker to close.
    pub async fn disconnect(mut self) {
        self.send(&DISCONNECT_PACKET).await;
        let _ = self.expect_closed().await;
    }
}

/// Receives PUBLISH packets (acknowledging them) until one has `payload`;
/// returns the payloads of those before it.
pub async fn payloads_until(raw: &mut Raw, payload: &str) -> Vec<String> {
    let mut before = Vec::new();
    loop {
        let publish = raw.recv_publish_acked().await;
        if publish.payload == payload.as_bytes() {
            return before;
        }
        before.push(publish.payload_str().to_owned());
    }
}

// ---------------------------------------------------------------------------
// rumqttc MQTT 3.1.1 client
// ---------------------------------------------------------------------------

type V4Event = Result<rumqttc::Event, String>;

/// A rumqttc 3.1.1 client whose event loop runs in a task until its first error.
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    events: mpsc::UnboundedReceiver<V4Event>,
    stash: VecDeque<rumqttc::Packet>,
    task: JoinHandle<()>,
}

impl V4 {
    pub async fn connect(addr: SocketAddr, id: &str) -> (V4, rumqttc::ConnAck) {
        Self::connect_with(addr, id, |_| {}).await
    }

    pub async fn connect_with(
        addr: SocketAddr,
        id: &str,
        configure: impl FnOnce(&mut rumqttc::MqttOptions),
    ) -> (V4, rumqttc::ConnAck) {
        let mut options = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        configure(&mut options);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(event) => {
                        if tx.send(Ok(event)).is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        let _ = tx.send(Err(format!("{error:?}")));
                        return;
                    }
                }
            }
        });
        let mut this = V4 { client, events, stash: VecDeque::new(), task };
        let ack =
            this.wait("CONNACK", |p| if let rumqttc::Packet::ConnAck(a) = p { Some(a.clone()) } else { None }).await;
        (this, ack)
    }

    /// The next incoming packet matching `f`; others are kept for later.
    pub async fn wait<T>(&mut self, what: &str, mut f: impl FnMut(&rumqttc::Packet) -> Option<T>) -> T {
        for i in 0..self.stash.len() {
            if let Some(value) = f(&self.stash[i]) {
                self.stash.remove(i);
                return value;
            }
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => panic!("rumqttc 3.1.1: no {what} within {WAIT:?}; unread {:?}", self.stash),
                Ok(None) => panic!("rumqttc 3.1.1: event loop ended while waiting for {what}"),
                Ok(Some(Err(error))) => panic!("rumqttc 3.1.1: connection error while waiting for {what}: {error}"),
                Ok(Some(Ok(event))) => event,
            };
            if let rumqttc::Event::Incoming(packet) = event {
                match f(&packet) {
                    Some(value) => return value,
                    None => self.stash.push_back(packet),
                }
            }
        }
    }

    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.unwrap();
        self.wait("SUBACK", |p| if let rumqttc::Packet::SubAck(a) = p { Some(a.return_codes.clone()) } else { None })
            .await
    }

    pub async fn unsubscribe(&mut self, filter: &str) {
        self.client.unsubscribe(filter).await.unwrap();
        self.wait("UNSUBACK", |p| matches!(p, rumqttc::Packet::UnsubAck(_)).then_some(())).await;
    }

    /// Publishes and waits for the flow of its QoS to complete.
    pub async fn publish(&mut self, topic: &str, qos: rumqttc::QoS, retain: bool, payload: &[u8]) {
        self.client.publish(topic, qos, retain, payload.to_vec()).await.unwrap();
        match qos {
            rumqttc::QoS::AtMostOnce => {}
            rumqttc::QoS::AtLeastOnce => {
                self.wait("PUBACK", |p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(())).await
            }
            rumqttc::QoS::ExactlyOnce => {
                self.wait("PUBCOMP", |p| matches!(p, rumqttc::Packet::PubComp(_)).then_some(())).await
            }
        }
    }

    pub async fn recv_publish(&mut self) -> rumqttc::Publish {
        self.wait("PUBLISH", |p| if let rumqttc::Packet::Publish(p) = p { Some(p.clone()) } else { None }).await
    }

    /// Receives PUBLISH packets until one has `payload`; returns those before it.
    pub async fn payloads_until(&mut self, payload: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let publish = self.recv_publish().await;
            if publish.payload == payload.as_bytes() {
                return before;
            }
            before.push(String::from_utf8_lossy(&publish.payload).into_owned());
        }
    }

    /// Sends DISCONNECT and waits for the event loop to end.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        let _ =
            within_named("the 3.1.1 client to disconnect", WAIT, async { while self.events.recv().await.is_some() {} })
                .await;
    }

    /// Drops the connection without DISCONNECT.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

// ---------------------------------------------------------------------------
// rumqttc MQTT 5 client
// ---------------------------------------------------------------------------

/// rumqttc's QoS for 5.0 and 3.1.1 clients.
#[allow(unused_imports)]
pub use rumqttc::QoS as Q4;
#[allow(unused_imports)]
pub use rumqttc::v5::mqttbytes::QoS as Q5;
pub use rumqttc::v5::mqttbytes::v5 as v5p;

type V5Event = Result<rumqttc::v5::Event, String>;

/// A rumqttc 5.0 client whose event loop runs in a task until its first error.
pub struct V5 {
    pub client: rumqttc::v5::AsyncClient,
    events: mpsc::UnboundedReceiver<V5Event>,
    stash: VecDeque<v5p::Packet>,
    task: JoinHandle<()>,
}

impl V5 {
    pub async fn connect(addr: SocketAddr, id: &str) -> (V5, v5p::ConnAck) {
        Self::connect_with(addr, id, |_| {}).await
    }

    pub async fn connect_with(
        addr: SocketAddr,
        id: &str,
        configure: impl FnOnce(&mut rumqttc::v5::MqttOptions),
    ) -> (V5, v5p::ConnAck) {
        let mut options = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        configure(&mut options);
        let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 64);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(event) => {
                        if tx.send(Ok(event)).is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        let _ = tx.send(Err(format!("{error:?}")));
                        return;
                    }
                }
            }
        });
        let mut this = V5 { client, events, stash: VecDeque::new(), task };
        let ack = this.wait("CONNACK", |p| if let v5p::Packet::ConnAck(a) = p { Some(a.clone()) } else { None }).await;
        (this, ack)
    }

    /// The next incoming packet matching `f`; others are kept for later.
    pub async fn wait<T>(&mut self, what: &str, mut f: impl FnMut(&v5p::Packet) -> Option<T>) -> T {
        for i in 0..self.stash.len() {
            if let Some(value) = f(&self.stash[i]) {
                self.stash.remove(i);
                return value;
            }
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => panic!("rumqttc 5: no {what} within {WAIT:?}; unread {:?}", self.stash),
                Ok(None) => panic!("rumqttc 5: event loop ended while waiting for {what}"),
                Ok(Some(Err(error))) => panic!("rumqttc 5: connection error while waiting for {what}: {error}"),
                Ok(Some(Ok(event))) => event,
            };
            if let rumqttc::v5::Event::Incoming(packet) = event {
                match f(&packet) {
                    Some(value) => return value,
                    None => self.stash.push_back(packet),
                }
            }
        }
    }

    /// The error that ended the event loop (for example a DISCONNECT from the broker).
    pub async fn wait_error(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => panic!("rumqttc 5: connection still up after {WAIT:?}"),
                Ok(None) => return "event loop ended".into(),
                Ok(Some(Err(error))) => return error,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::v5::mqttbytes::QoS) -> v5p::SubAck {
        self.client.subscribe(filter, qos).await.unwrap();
        self.wait("SUBACK", |p| if let v5p::Packet::SubAck(a) = p { Some(a.clone()) } else { None }).await
    }

    pub async fn subscribe_filter(
        &mut self,
        filter: v5p::Filter,
        props: Option<v5p::SubscribeProperties>,
    ) -> v5p::SubAck {
        match props {
            Some(props) => self.client.subscribe_many_with_properties(vec![filter], props).await.unwrap(),
            None => self.client.subscribe_many(vec![filter]).await.unwrap(),
        }
        self.wait("SUBACK", |p| if let v5p::Packet::SubAck(a) = p { Some(a.clone()) } else { None }).await
    }

    /// Publishes and waits for the flow of its QoS to complete.
    pub async fn publish(&mut self, topic: &str, qos: rumqttc::v5::mqttbytes::QoS, retain: bool, payload: &[u8]) {
        self.publish_with(topic, qos, retain, payload, None).await;
    }

    pub async fn publish_with(
        &mut self,
        topic: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
        retain: bool,
        payload: &[u8],
        props: Option<v5p::PublishProperties>,
    ) {
        match props {
            Some(props) => {
                self.client.publish_with_properties(topic, qos, retain, payload.to_vec(), props).await.unwrap()
            }
            None => self.client.publish(topic, qos, retain, payload.to_vec()).await.unwrap(),
        }
        match qos {
            rumqttc::v5::mqttbytes::QoS::AtMostOnce => {}
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce => {
                self.wait("PUBACK", |p| matches!(p, v5p::Packet::PubAck(_)).then_some(())).await;
            }
            rumqttc::v5::mqttbytes::QoS::ExactlyOnce => {
                self.wait("PUBCOMP", |p| matches!(p, v5p::Packet::PubComp(_)).then_some(())).await;
            }
        }
    }

    pub async fn recv_publish(&mut self) -> v5p::Publish {
        self.wait("PUBLISH", |p| if let v5p::Packet::Publish(p) = p { Some(p.clone()) } else { None }).await
    }

    /// Receives PUBLISH packets until one has `payload`; returns those before it.
    pub async fn payloads_until(&mut self, payload: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let publish = self.recv_publish().await;
            if publish.payload == payload.as_bytes() {
                return before;
            }
            before.push(String::from_utf8_lossy(&publish.payload).into_owned());
        }
    }

    /// Sends DISCONNECT (reason 0x00) and waits for the event loop to end.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        let _ =
            within_named("the 5.0 client to disconnect", WAIT, async { while self.events.recv().await.is_some() {} })
                .await;
    }

    /// Drops the connection without DISCONNECT.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Checks that a broker still routes messages: a fresh subscriber and
/// publisher (MQTT 3.1.1, rumqttc) complete a QoS 1 round trip.
pub async fn assert_broker_serves(addr: SocketAddr, tag: &str) {
    let topic = format!("health/{tag}");
    let (mut sub, _) = V4::connect(addr, &format!("health-sub-{tag}")).await;
    sub.subscribe(&topic, rumqttc::QoS::AtLeastOnce).await;
    let (mut publisher, _) = V4::connect(addr, &format!("health-pub-{tag}")).await;
    publisher.publish(&topic, rumqttc::QoS::AtLeastOnce, false, b"alive").await;
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"alive");
    publisher.disconnect().await;
    sub.disconnect().await;
}
