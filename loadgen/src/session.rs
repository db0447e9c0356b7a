//! The lean client's protocol state, sans-IO: packets in, bytes out.
//!
//! Nothing here reads a socket or a clock: the caller passes the wall-clock
//! time of arrival and gets the bytes to send appended to its buffer. The
//! tokio driver ([`crate::driver`]) and the simulation share this code.
//!
//! It keeps only what a load generator needs: the QoS 1/2 flows in both
//! directions (responses owed to the broker, the count of own messages
//! awaiting their ack), subscribe acknowledgements, and the sequence check of
//! what arrives. It does not resend unacknowledged messages after a reconnect:
//! a lost connection ends the client, and is counted.

use std::num::NonZeroU16;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use mqtt_codec::{
    Connect, ConnectProperties, Disconnect, EncodeError, Packet, PacketId, ProtocolVersion, PubResponse, Publish,
    PublishProperties, QoS, ReasonCode, Subscribe, SubscribeProperties, SubscriptionOptions,
};

use crate::payload::{Arrival, Header, SequenceCheck};
use crate::stats::Stats;

/// What a packet from the broker meant to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Nothing,
    /// CONNACK with this reason (0 = accepted; 3.1.1 return codes map to the same byte).
    ConnAck(u8),
    /// SUBACK: whether every filter was granted.
    SubAck {
        granted: bool,
    },
    /// The broker sent DISCONNECT (MQTT 5) with this reason.
    Disconnected(u8),
}

/// A message to publish; `body` is shared by every message of a phase.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub topic: &'a ByteString,
    pub qos: QoS,
    pub retain: bool,
    pub body: &'a Bytes,
}

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub version: ProtocolVersion,
    pub keep_alive: u16,
    pub clean_start: bool,
    pub session_expiry: u32,
    pub username: Option<ByteString>,
    pub password: Option<Bytes>,
}

pub fn protocol_version(level: u8) -> Option<ProtocolVersion> {
    match level {
        3 => Some(ProtocolVersion::V3_1),
        4 => Some(ProtocolVersion::V3_1_1),
        5 => Some(ProtocolVersion::V5),
        _ => None,
    }
}

#[derive(Debug)]
pub struct Session {
    version: ProtocolVersion,
    next_packet_id: u16,
    /// Own QoS 1/2 messages sent and not yet acknowledged (PUBACK / PUBCOMP).
    inflight: u16,
    /// `None` for shared subscriptions, where each member sees only part of a
    /// publisher's sequence and gaps mean nothing.
    sequence: Option<SequenceCheck>,
    /// Histogram shard of this client.
    shard: usize,
}

impl Session {
    pub fn new(version: ProtocolVersion, shard: usize) -> Self {
        Self { version, next_packet_id: 0, inflight: 0, sequence: Some(SequenceCheck::default()), shard }
    }

    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    pub fn inflight(&self) -> u16 {
        self.inflight
    }

    /// Turns the per-publisher sequence check on or off.
    pub fn check_sequences(&mut self, on: bool) {
        self.sequence = if on { Some(self.sequence.take().unwrap_or_default()) } else { None };
    }

    fn packet_id(&mut self) -> PacketId {
        self.next_packet_id = self.next_packet_id.wrapping_add(1);
        if self.next_packet_id == 0 {
            self.next_packet_id = 1;
        }
        NonZeroU16::new(self.next_packet_id).unwrap_or(NonZeroU16::MIN)
    }

    fn encode(&self, packet: &Packet, out: &mut BytesMut) -> Result<usize, EncodeError> {
        mqtt_codec::encode(packet, self.version, out)
    }

    pub fn connect(&self, client_id: &ByteString, o: &ConnectOptions, out: &mut BytesMut) -> Result<(), EncodeError> {
        let properties = ConnectProperties {
            session_expiry_interval: (self.version == ProtocolVersion::V5 && o.session_expiry > 0)
                .then_some(o.session_expiry),
            ..ConnectProperties::default()
        };
        let connect = Connect {
            protocol: self.version,
            clean_start: o.clean_start,
            keep_alive: o.keep_alive,
            client_id: client_id.clone(),
            will: None,
            username: o.username.clone(),
            password: o.password.clone(),
            properties,
        };
        self.encode(&Packet::Connect(Box::new(connect)), out).map(drop)
    }

    pub fn subscribe(&mut self, filter: ByteString, qos: QoS, out: &mut BytesMut) -> Result<(), EncodeError> {
        let options = SubscriptionOptions { qos, ..SubscriptionOptions::default() };
        let subscribe = Subscribe {
            packet_id: self.packet_id(),
            filters: vec![(filter, options)],
            properties: SubscribeProperties::default(),
        };
        self.encode(&Packet::Subscribe(subscribe), out).map(drop)
    }

    /// Appends one PUBLISH whose payload is `body` with `header` written over
    /// its first bytes. `body` is shared by every message of a phase (cloning
    /// it bumps a reference count), so a publish allocates nothing.
    /// Returns false, sending nothing, when the in-flight window is full.
    pub fn publish(
        &mut self,
        message: &Message<'_>,
        header: &Header,
        inflight_max: u16,
        out: &mut BytesMut,
    ) -> Result<bool, EncodeError> {
        let Message { topic, qos, retain, body } = *message;
        if qos != QoS::AtMostOnce && self.inflight >= inflight_max {
            return Ok(false);
        }
        let packet_id = (qos != QoS::AtMostOnce).then(|| self.packet_id());
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic: topic.clone(),
            packet_id,
            payload: body.clone(),
            properties: PublishProperties::default(),
        };
        let start = out.len();
        self.encode(&Packet::Publish(publish), out)?;
        let payload_at = out.len() - body.len();
        debug_assert!(payload_at >= start);
        header.write(&mut out[payload_at..]);
        if packet_id.is_some() {
            self.inflight += 1;
        }
        Ok(true)
    }

    pub fn ping(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode(&Packet::PingReq, out).map(drop)
    }

    pub fn disconnect(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode(&Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)), out).map(drop)
    }

    /// Handles one packet from the broker that arrived at `now_unix_ns`.
    pub fn handle(
        &mut self,
        packet: Packet,
        now_unix_ns: u64,
        stats: &Stats,
        out: &mut BytesMut,
    ) -> Result<Signal, String> {
        let c = &stats.counters;
        match packet {
            Packet::ConnAck(ack) => return Ok(Signal::ConnAck(ack.reason_code.0)),
            Packet::Publish(p) => {
                Stats::inc(&c.received);
                Stats::add(&c.received_bytes, p.payload.len() as u64);
                if let Some(h) = Header::read(&p.payload) {
                    let us = now_unix_ns.saturating_sub(h.scheduled_unix_ns) / 1_000;
                    stats.record_latency(self.shard, us);
                    if let Some(seq) = &mut self.sequence {
                        match seq.arrive(h.publisher, h.sequence) {
                            Arrival::InOrder => {}
                            Arrival::Gap(n) => stats.lost_changed(n as i64),
                            Arrival::Late => {
                                stats.lost_changed(-1);
                                Stats::inc(&c.out_of_order);
                            }
                            Arrival::Duplicate => Stats::inc(&c.duplicates),
                        }
                    }
                }
                match (p.qos, p.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => self.respond(Packet::PubAck(PubResponse::new(id)), out)?,
                    (QoS::ExactlyOnce, Some(id)) => self.respond(Packet::PubRec(PubResponse::new(id)), out)?,
                    _ => {}
                }
            }
            Packet::PubAck(_) | Packet::PubComp(_) => {
                self.inflight = self.inflight.saturating_sub(1);
                Stats::inc(&c.pub_acked);
            }
            Packet::PubRec(r) => {
                if r.reason_code.is_error() {
                    // The flow ends here ([MQTT-4.3.3]): no PUBREL for a refused message.
                    self.inflight = self.inflight.saturating_sub(1);
                } else {
                    self.respond(Packet::PubRel(PubResponse::new(r.packet_id)), out)?;
                }
            }
            Packet::PubRel(r) => self.respond(Packet::PubComp(PubResponse::new(r.packet_id)), out)?,
            Packet::SubAck(ack) => {
                let granted = ack.reason_codes.iter().all(|r| r.0 < 0x80);
                return Ok(Signal::SubAck { granted });
            }
            Packet::Disconnect(d) => return Ok(Signal::Disconnected(d.reason_code.0)),
            Packet::PingResp | Packet::UnsubAck(_) | Packet::Auth(_) => {}
            other => return Err(format!("unexpected {} from the broker", other.name())),
        }
        Ok(Signal::Nothing)
    }

    fn respond(&self, packet: Packet, out: &mut BytesMut) -> Result<(), String> {
        self.encode(&packet, out).map(drop).map_err(|e| format!("encoding {}: {e:?}", packet.name()))
    }
}

#[cfg(test)]
mod tests {
    use mqtt_codec::Decoder;

    use super::*;

    fn options() -> ConnectOptions {
        ConnectOptions {
            version: ProtocolVersion::V5,
            keep_alive: 30,
            clean_start: true,
            session_expiry: 0,
            username: None,
            password: None,
        }
    }

    #[test]
    fn a_publish_carries_the_header_and_counts_toward_the_window() {
        let mut s = Session::new(ProtocolVersion::V5, 0);
        let body = Bytes::from(vec![0u8; 64]);
        let header = Header { publisher: 7, sequence: 3, scheduled_unix_ns: 1_000_000 };
        let mut out = BytesMut::new();
        let topic = ByteString::from_static("t/1");
        let message = Message { topic: &topic, qos: QoS::AtLeastOnce, retain: false, body: &body };
        assert!(s.publish(&message, &header, 1, &mut out).expect("encodes"));
        assert!(!s.publish(&message, &header, 1, &mut out).expect("encodes"));
        let mut server = Decoder::with_version(ProtocolVersion::V5, 1 << 20);
        let Ok(Some(Packet::Publish(p))) = server.decode(&mut out) else { panic!("a publish") };
        assert_eq!(Header::read(&p.payload), Some(header));
        assert_eq!(p.payload.len(), 64);
        assert_eq!(s.inflight(), 1);

        let stats = Stats::default();
        let ack = Packet::PubAck(PubResponse::new(p.packet_id.expect("qos 1 has an id")));
        assert_eq!(s.handle(ack, 0, &stats, &mut out).expect("handled"), Signal::Nothing);
        assert_eq!(s.inflight(), 0);
        assert_eq!(stats.counters.snapshot().pub_acked, 1);
    }

    #[test]
    fn received_messages_are_acknowledged_timed_and_checked() {
        let mut s = Session::new(ProtocolVersion::V5, 0);
        let stats = Stats::default();
        let mut out = BytesMut::new();
        let mut payload = vec![0u8; 32];
        for seq in [0u64, 2, 2] {
            Header { publisher: 1, sequence: seq, scheduled_unix_ns: 1_000_000 }.write(&mut payload);
            let p = Publish {
                dup: false,
                qos: QoS::ExactlyOnce,
                retain: false,
                topic: ByteString::from_static("t"),
                packet_id: NonZeroU16::new(5),
                payload: Bytes::from(payload.clone()),
                properties: PublishProperties::default(),
            };
            s.handle(Packet::Publish(p), 3_000_000, &stats, &mut out).expect("handled");
        }
        let c = stats.counters.snapshot();
        assert_eq!((c.received, c.lost, c.duplicates), (3, 1, 1));
        let latencies = stats.take_latencies();
        assert_eq!(latencies.len(), 3);
        assert_eq!(latencies.max(), 2000);
        let mut client = Decoder::with_version(ProtocolVersion::V5, 1 << 20);
        assert!(matches!(client.decode(&mut out), Ok(Some(Packet::PubRec(_)))));
    }

    #[test]
    fn connect_encodes_for_each_protocol_level() {
        for level in 3..=5 {
            let version = protocol_version(level).expect("known level");
            let s = Session::new(version, 0);
            let mut out = BytesMut::new();
            s.connect(&ByteString::from_static("c1"), &ConnectOptions { version, ..options() }, &mut out)
                .expect("encodes");
            let mut server = Decoder::new(1 << 20);
            let Ok(Some(Packet::Connect(c))) = server.decode(&mut out) else { panic!("a connect") };
            assert_eq!(c.protocol, version);
            assert_eq!(&*c.client_id, "c1");
        }
    }
}
