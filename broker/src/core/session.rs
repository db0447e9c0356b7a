//! Session state: what survives a disconnect ([MQTT-4.1.0-?] "Session State").

use std::collections::VecDeque;
use std::num::NonZeroU16;
use std::sync::Arc;

use crate::authz::ClientInfo;
use crate::hash::{AHashMap, AHashSet, Lazy};
use bytestring::ByteString;
use mqtt_codec::{PacketId, QoS, Will};

use super::ConnId;
use super::message::Delivery;
use super::router::{ClientId, Subscription};

/// Session expiry value meaning "never" (MQTT 5, 3.1.2.11.2).
pub const SESSION_NEVER_EXPIRES: u32 = u32::MAX;

/// Where an outgoing QoS 1/2 message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// PUBLISH sent; awaiting PUBACK (QoS 1) or PUBREC (QoS 2).
    Published,
    /// PUBREL sent; awaiting PUBCOMP.
    Released,
}

/// An outgoing QoS 1/2 message not yet fully acknowledged.
#[derive(Debug, Clone)]
pub struct Inflight {
    pub packet_id: PacketId,
    pub delivery: Delivery,
    pub state: OutState,
    /// Sent on an earlier connection and not yet again on this one
    /// ([MQTT-4.4.0-1]: resent, in order, with the original packet identifier).
    pub resend: bool,
}

/// What the queue did with a delivery that did not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Queued without loss.
    None,
    /// A queued QoS 0 message was dropped to make room.
    DroppedQueuedQos0,
    /// The new delivery was dropped.
    DroppedNew,
}

/// The state of one client identifier's session.
#[derive(Debug)]
pub struct Session {
    pub client_id: ClientId,
    /// Who the client was at its last CONNECT (user name, address), for the
    /// authorization checks made while it is offline: its will, revocations.
    pub client: Arc<ClientInfo>,
    /// Keyed by the filter as subscribed (with any `$share/group/` prefix).
    pub subscriptions: AHashMap<ByteString, Subscription>,
    /// Seconds the session outlives its connection; `SESSION_NEVER_EXPIRES` for ever.
    pub expiry_secs: u32,
    pub connection: Option<ConnId>,
    /// Outgoing QoS 1/2 messages in the order they were sent.
    pub inflight: VecDeque<Inflight>,
    /// Deliveries waiting for the in-flight window, the connection's outbox or a connection.
    pub queue: VecDeque<Delivery>,
    /// Incoming QoS 2 packet identifiers that were PUBREC'd and await PUBREL.
    pub awaiting_rel: Lazy<AHashSet<u16>>,
    /// The will of the current (or last) connection. Boxed: most sessions
    /// have none, and every session's size counts at a million connections.
    pub will: Option<Box<SessionWill>>,
    /// Changes whenever a connection attaches or detaches, so that timers
    /// armed for an earlier state are recognised as stale.
    pub epoch: u64,
    /// Set when the session came from another node: which forwards it had
    /// missed there (see `super::redirect`).
    pub import_mark: Option<Box<super::redirect::ImportMark>>,
    next_packet_id: u16,
}

/// A will a session holds, with the delay before it is published.
#[derive(Debug, Clone)]
pub struct SessionWill {
    pub will: Will,
    pub delay_secs: u32,
}

impl Session {
    pub fn new(client_id: ClientId, expiry_secs: u32) -> Self {
        Self {
            client: Arc::new(ClientInfo::new(client_id.clone())),
            client_id,
            subscriptions: AHashMap::new(),
            expiry_secs,
            connection: None,
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            awaiting_rel: Lazy::default(),
            will: None,
            epoch: 0,
            import_mark: None,
            next_packet_id: 1,
        }
    }

    /// A packet identifier not used by any in-flight message, or `None`
    /// when all 65,535 are taken.
    pub fn allocate_packet_id(&mut self) -> Option<PacketId> {
        if self.inflight.len() >= usize::from(u16::MAX) {
            return None;
        }
        loop {
            let candidate = NonZeroU16::new(self.next_packet_id).unwrap_or(NonZeroU16::MIN);
            self.next_packet_id = self.next_packet_id.wrapping_add(1).max(1);
            if !self.inflight.iter().any(|f| f.packet_id == candidate) {
                return Some(candidate);
            }
        }
    }

    pub fn inflight_position(&self, packet_id: PacketId) -> Option<usize> {
        self.inflight.iter().position(|f| f.packet_id == packet_id)
    }

    /// Queues a delivery, bounded by `max`: when full, a queued QoS 0
    /// message makes room first; otherwise the new delivery is dropped.
    pub fn enqueue(&mut self, delivery: Delivery, max: usize) -> Overflow {
        if self.queue.len() < max {
            if !self.queue.is_empty() && crate::buggify::fires(crate::buggify::Bug::ReorderQueue) {
                self.queue.insert(self.queue.len() - 1, delivery); // sim-bugs: ahead of the last one
                return Overflow::None;
            }
            self.queue.push_back(delivery);
            return Overflow::None;
        }
        if delivery.qos == QoS::AtMostOnce {
            return Overflow::DroppedNew;
        }
        match self.queue.iter().position(|d| d.qos == QoS::AtMostOnce) {
            Some(position) => {
                self.queue.remove(position);
                self.queue.push_back(delivery);
                Overflow::DroppedQueuedQos0
            }
            None => Overflow::DroppedNew,
        }
    }

    /// Shared-subscription deliveries another member should take over,
    /// removed from this session: those still queued (never sent) and, when
    /// the session is ending, QoS 1 messages sent but not acknowledged. A QoS 2
    /// message once sent stays with its session and dies with it
    /// ([MQTT-4.8.2-4], [MQTT-4.8.2-5]).
    pub fn take_shared_deliveries(&mut self, ending: bool) -> Vec<Delivery> {
        let mut taken = Vec::new();
        if ending {
            self.inflight.retain(|f| {
                let movable = f.delivery.shared.is_some() && f.delivery.qos == QoS::AtLeastOnce;
                if movable {
                    taken.push(f.delivery.clone());
                }
                !movable
            });
        }
        let (shared, own): (VecDeque<Delivery>, VecDeque<Delivery>) =
            self.queue.drain(..).partition(|d| d.shared.is_some());
        self.queue = own;
        taken.extend(shared);
        taken
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use mqtt_codec::PublishProperties;

    use super::*;
    use crate::core::message::Message;

    fn delivery(qos: QoS) -> Delivery {
        let message = Message {
            topic: "t".into(),
            payload: Bytes::new(),
            qos,
            retain: false,
            properties: PublishProperties::default(),
            expires_at: None,
            publisher: None,
        };
        Delivery { message: Arc::new(message), qos, retain: false, subscription_ids: vec![], shared: None }
    }

    #[test]
    fn full_queue_drops_queued_qos0_before_qos1() {
        let mut session = Session::new("c".into(), 0);
        assert_eq!(session.enqueue(delivery(QoS::AtMostOnce), 2), Overflow::None);
        assert_eq!(session.enqueue(delivery(QoS::AtLeastOnce), 2), Overflow::None);
        assert_eq!(session.enqueue(delivery(QoS::AtLeastOnce), 2), Overflow::DroppedQueuedQos0);
        assert_eq!(session.enqueue(delivery(QoS::AtLeastOnce), 2), Overflow::DroppedNew);
        assert_eq!(session.enqueue(delivery(QoS::AtMostOnce), 2), Overflow::DroppedNew);
        assert!(session.queue.iter().all(|d| d.qos == QoS::AtLeastOnce));
    }

    /// Every session has one, boxed, for its life, connected or not.
    #[test]
    fn a_session_stays_within_224_bytes() {
        let size = std::mem::size_of::<Session>();
        assert!(size <= 224, "Session is {size} bytes");
    }

    #[test]
    fn awaiting_rel_allocates_at_its_first_id_and_behaves_as_a_set() {
        let mut ids: Lazy<AHashSet<u16>> = Lazy::default();
        assert!(ids.made().is_none() && ids.is_empty() && !ids.contains(&7));
        assert!(!ids.remove(&7));
        ids.extend(std::iter::empty());
        assert!(ids.made().is_none(), "nothing to hold, nothing allocated");
        assert!(ids.insert(7));
        assert!(!ids.insert(7));
        ids.extend([8, 9]);
        assert_eq!((ids.len(), ids.contains(&8)), (3, true));
        assert!(ids.remove(&7) && !ids.contains(&7));
        let mut left: Vec<u16> = ids.into_iter().collect();
        left.sort_unstable();
        assert_eq!(left, [8, 9]);
    }

    #[test]
    fn packet_ids_skip_those_in_flight_and_zero() {
        let mut session = Session::new("c".into(), 0);
        session.next_packet_id = u16::MAX;
        let first = session.allocate_packet_id().expect("id");
        assert_eq!(first.get(), u16::MAX);
        session.inflight.push_back(Inflight {
            packet_id: NonZeroU16::MIN,
            delivery: delivery(QoS::AtLeastOnce),
            state: OutState::Published,
            resend: false,
        });
        assert_eq!(session.allocate_packet_id().map(|p| p.get()), Some(2));
    }
}
