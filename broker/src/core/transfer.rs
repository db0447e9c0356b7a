//! A session moving between nodes (ALGORITHM.md, "Sessions across nodes"):
//! the node that held it exports it (closing its connection with 0x8E), the
//! node the client reconnected to imports it before the CONNECT is handled,
//! so that the CONNECT resumes it exactly as a local reconnect would.

use std::sync::Arc;

use bytestring::ByteString;
use mqtt_codec::{ReasonCode, RetainHandling, SubscriptionOptions};

use super::message::{Delivery, Message};
use super::router::{ClientId, SharedKey, Subscription};
use super::session::{Inflight, OutState, Session};
use super::{Broker, Closure};
use crate::cluster::wire::{WireDelivery, WireSession};
use crate::seam::Millis;

/// Everything a session is, detached from any node.
#[derive(Debug, Clone)]
pub struct SessionTransfer {
    pub client_id: ClientId,
    pub expiry_secs: u32,
    /// Filter as subscribed (with any `$share/group/` prefix) and its subscription.
    pub subscriptions: Vec<(ByteString, Subscription)>,
    /// Sent and not fully acknowledged, in the order they were sent.
    pub inflight: Vec<(u16, OutState, Delivery)>,
    pub queue: Vec<Delivery>,
    /// Incoming QoS 2 packet identifiers awaiting PUBREL.
    pub awaiting_rel: Vec<u16>,
    /// When it arrived on the exporting node (`None`: it began there); not sent on the wire.
    pub arrived: Option<Box<super::redirect::ImportMark>>,
}

impl Broker {
    /// Gives up the session of `client` to another node: a live connection is
    /// closed with 0x8E (Session taken over) as a local takeover would, then
    /// the session leaves this node (its routes are withdrawn). With `discard`
    /// (the new connection asked for a clean start) the session ends here as
    /// it would locally, and nothing is returned.
    pub fn export_session(&mut self, client: &str, discard: bool, now: Millis) -> Option<SessionTransfer> {
        if crate::buggify::fires(crate::buggify::Bug::KeepOldSessionOnTakeover) {
            return None; // sim-bugs: the old connection and its session stay
        }
        let client = ClientId::from(client);
        let conn = self.sessions.get(&client)?.connection;
        if let Some(old) = conn {
            self.counters.takeovers += 1;
            self.close(old, Closure { reason: ReasonCode::SESSION_TAKEN_OVER, why: "session taken over" }, true, now);
        }
        if discard {
            self.end_session(&client, now);
            return None;
        }
        let mut session = self.sessions.remove(&client)?;
        for filter in session.subscriptions.keys() {
            self.router.unsubscribe(&client, filter);
        }
        // A will waiting out its delay is cancelled by the reconnect it is moving for.
        if session.will.take().is_some() {
            self.will_event(super::cluster::WillEvent::Release { client: client.clone() });
        }
        let session = *session;
        Some(SessionTransfer {
            client_id: session.client_id,
            expiry_secs: session.expiry_secs,
            subscriptions: session.subscriptions.into_iter().collect(),
            inflight: session.inflight.into_iter().map(|f| (f.packet_id.get(), f.state, f.delivery)).collect(),
            queue: session.queue.into_iter().collect(),
            awaiting_rel: session.awaiting_rel.into_iter().collect(),
            arrived: session.import_mark,
        })
    }

    /// The client ids with a live connection here (one the broker has not
    /// decided to close), sorted: what a checker compares across nodes.
    pub fn connected_clients(&self) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.connection.and_then(|c| self.connections.get(&c)).is_some_and(|c| c.closing.is_none()))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Installs a session exported by another node, ready for the CONNECT that
    /// asked for it. A session of the same client held here without a
    /// connection is replaced; one with a live connection is kept (the CONNECT
    /// will take it over locally). The rights of its subscriptions are
    /// checked when that CONNECT resumes it, with the client's identity there.
    pub fn import_session(&mut self, transfer: SessionTransfer, now: Millis) {
        let client = transfer.client_id.clone();
        if let Some(existing) = self.sessions.get(&client) {
            if existing.connection.is_some() {
                return;
            }
            self.end_session(&client, now);
        }
        let mut session = Session::new(client.clone(), transfer.expiry_secs);
        for (filter, subscription) in transfer.subscriptions {
            self.router.subscribe(&client, &filter, subscription);
            session.subscriptions.insert(filter, subscription);
        }
        for (packet_id, state, delivery) in transfer.inflight {
            let Some(packet_id) = std::num::NonZeroU16::new(packet_id) else { continue };
            session.inflight.push_back(Inflight { packet_id, delivery, state, resend: true });
        }
        session.queue.extend(transfer.queue);
        session.awaiting_rel.extend(transfer.awaiting_rel);
        session.import_mark = self.import_mark(&client);
        self.sessions.insert(client.clone(), Box::new(session));
        self.deliver_early_redirects(&client, now);
    }
}

/// Subscription options as one byte, in SUBSCRIBE's layout (MQTT 5, 3.8.3.1).
pub fn options_byte(o: &SubscriptionOptions) -> u8 {
    (o.qos as u8)
        | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | ((o.retain_handling as u8) << 4)
}

pub fn options_from_byte(b: u8) -> Option<SubscriptionOptions> {
    Some(SubscriptionOptions {
        qos: mqtt_codec::QoS::from_u8(b & 0b11)?,
        no_local: b & 0b100 != 0,
        retain_as_published: b & 0b1000 != 0,
        retain_handling: match (b >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtSubscribeIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return None,
        },
    })
}

impl SessionTransfer {
    /// The session as it crosses a link, with expiries as time left at `now`.
    pub fn to_wire(&self, now: Millis) -> WireSession {
        WireSession {
            client_id: self.client_id.clone(),
            expiry_secs: self.expiry_secs,
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(filter, s)| (filter.clone(), options_byte(&s.options), s.identifier))
                .collect(),
            inflight: self
                .inflight
                .iter()
                .map(|(id, state, d)| (*id, *state == OutState::Released, delivery_to_wire(d, now)))
                .collect(),
            queue: self.queue.iter().map(|d| delivery_to_wire(d, now)).collect(),
            awaiting_rel: self.awaiting_rel.clone(),
        }
    }

    /// A session received from a link at `now`; `None` if it is malformed.
    pub fn from_wire(wire: WireSession, now: Millis) -> Option<Self> {
        let mut subscriptions = Vec::with_capacity(wire.subscriptions.len());
        for (filter, options, identifier) in wire.subscriptions {
            subscriptions.push((filter, Subscription { options: options_from_byte(options)?, identifier }));
        }
        let mut inflight = Vec::with_capacity(wire.inflight.len());
        for (id, released, d) in wire.inflight {
            let state = if released { OutState::Released } else { OutState::Published };
            inflight.push((id, state, delivery_from_wire(d, now)?));
        }
        let mut queue = Vec::with_capacity(wire.queue.len());
        for d in wire.queue {
            queue.push(delivery_from_wire(d, now)?);
        }
        Some(Self {
            client_id: wire.client_id,
            expiry_secs: wire.expiry_secs,
            subscriptions,
            inflight,
            queue,
            awaiting_rel: wire.awaiting_rel,
            arrived: None,
        })
    }
}

fn delivery_to_wire(d: &Delivery, now: Millis) -> WireDelivery {
    let m = &d.message;
    WireDelivery {
        qos: d.qos as u8,
        retain: d.retain,
        subscription_ids: d.subscription_ids.clone(),
        shared: d.shared.as_ref().map(|k| (k.group.clone(), k.filter.clone())),
        expires_in_ms: m.expires_at.map(|at| at.saturating_sub(now)),
        publisher: m.publisher.clone(),
        publish: mqtt_codec::Publish {
            dup: false,
            qos: m.qos,
            retain: m.retain,
            topic: m.topic.clone(),
            packet_id: None,
            payload: m.payload.clone(),
            properties: m.properties.clone(),
        },
    }
}

fn delivery_from_wire(d: WireDelivery, now: Millis) -> Option<Delivery> {
    let p = d.publish;
    let message = Message {
        topic: p.topic,
        payload: p.payload,
        qos: p.qos,
        retain: p.retain,
        properties: p.properties,
        expires_at: d.expires_in_ms.map(|ms| now + ms),
        publisher: d.publisher,
    };
    Some(Delivery {
        message: Arc::new(message),
        qos: mqtt_codec::QoS::from_u8(d.qos)?,
        retain: d.retain,
        subscription_ids: d.subscription_ids,
        shared: d.shared.map(|(group, filter)| SharedKey { group, filter }),
    })
}
