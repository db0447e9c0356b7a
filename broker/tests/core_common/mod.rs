//! A harness that drives the sans-IO core directly: no sockets, a manual clock.
#![allow(dead_code, clippy::unwrap_used)]

use std::num::NonZeroU16;
use std::sync::Arc;

use broker::config::MqttConfig;
use broker::core::{Broker, ConnId, Waker};
use broker::seam::{self, Millis};
use bytes::Bytes;
use mqtt_codec::{
    Connect, ConnectProperties, Packet, ProtocolVersion, PubResponse, Publish, PublishProperties, QoS, Subscribe,
    SubscribeProperties, SubscriptionOptions, Will,
};

struct NoWake;
impl Waker for NoWake {
    fn wake(&self) {}
}

pub struct Harness {
    pub broker: Broker,
    pub now: Millis,
    next_conn: ConnId,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(MqttConfig::default())
    }

    pub fn with_config(config: MqttConfig) -> Self {
        Self { broker: Broker::new(config, seam::rng(Some(7))), now: 0, next_conn: 1 }
    }

    /// Connects and returns the connection and what the broker sent (CONNACK first).
    pub fn connect(&mut self, connect: Connect) -> (ConnId, Vec<Packet>) {
        let conn = self.next_conn;
        self.next_conn += 1;
        let version = connect.protocol;
        match self.broker.connect(conn, connect, Arc::new(NoWake), self.now) {
            Ok(_) => (conn, self.take(conn)),
            Err(refusal) => (conn, refusal.connack(version).into_iter().collect()),
        }
    }

    pub fn send(&mut self, conn: ConnId, packet: Packet) -> Vec<Packet> {
        self.broker.handle_packet(conn, packet, self.now);
        self.take(conn)
    }

    /// Everything the connection has to send now.
    pub fn take(&mut self, conn: ConnId) -> Vec<Packet> {
        let mut all = Vec::new();
        loop {
            let outbox = self.broker.take_outbox(conn, self.now);
            let done = outbox.packets.is_empty();
            all.extend(outbox.packets);
            if done || outbox.close.is_some() {
                return all;
            }
        }
    }

    pub fn is_closing(&mut self, conn: ConnId) -> bool {
        self.broker.take_outbox(conn, self.now).close.is_some()
    }

    pub fn drop_connection(&mut self, conn: ConnId) {
        self.broker.connection_lost(conn, self.now);
    }

    pub fn advance(&mut self, ms: Millis) {
        self.now += ms;
        self.broker.handle_timeout(self.now);
    }
}

pub fn connect(version: ProtocolVersion, client_id: &str, clean: bool) -> Connect {
    Connect {
        protocol: version,
        clean_start: clean,
        keep_alive: 60,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

pub fn v5(client_id: &str) -> Connect {
    connect(ProtocolVersion::V5, client_id, true)
}

pub fn v311(client_id: &str, clean: bool) -> Connect {
    connect(ProtocolVersion::V3_1_1, client_id, clean)
}

pub fn with_will(mut connect: Connect, topic: &str, payload: &str, delay: Option<u32>) -> Connect {
    let mut will = Will {
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    };
    will.properties.will_delay_interval = delay;
    connect.will = Some(will);
    connect
}

pub fn pid(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap()
}

pub fn publish(topic: &str, payload: &str, qos: QoS, id: u16) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id: (qos != QoS::AtMostOnce).then(|| pid(id)),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        properties: PublishProperties::default(),
    })
}

pub fn retained(topic: &str, payload: &str, qos: QoS, id: u16) -> Packet {
    let mut packet = publish(topic, payload, qos, id);
    if let Packet::Publish(p) = &mut packet {
        p.retain = true;
    }
    packet
}

pub fn subscribe(id: u16, filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(id),
        filters: filters
            .iter()
            .map(|(f, qos)| ((*f).into(), SubscriptionOptions { qos: *qos, ..Default::default() }))
            .collect(),
        properties: SubscribeProperties::default(),
    })
}

pub fn subscribe_with(id: u16, filter: &str, options: SubscriptionOptions, identifier: Option<u32>) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(id),
        filters: vec![(filter.into(), options)],
        properties: SubscribeProperties { subscription_identifier: identifier, user_properties: vec![] },
    })
}

pub fn puback(id: u16) -> Packet {
    Packet::PubAck(PubResponse::new(pid(id)))
}

/// The PUBLISH packets among `packets`.
pub fn publishes(packets: &[Packet]) -> Vec<&Publish> {
    packets.iter().filter_map(|p| if let Packet::Publish(p) = p { Some(p) } else { None }).collect()
}

/// (topic, payload) of every PUBLISH.
pub fn received(packets: &[Packet]) -> Vec<(String, String)> {
    publishes(packets)
        .into_iter()
        .map(|p| (p.topic.to_string(), String::from_utf8_lossy(&p.payload).into_owned()))
        .collect()
}
