//! Messages the broker publishes about itself (`$SYS/...`).

use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use mqtt_codec::{PublishProperties, QoS};

use super::Broker;
use super::message::Message;
use crate::seam::Millis;

impl Broker {
    /// Publishes `payload` on `topic` as the broker itself: QoS 0, no
    /// publisher, routed like any message (to other nodes with matching
    /// routes too), and never subject to authorization (clients may still be
    /// refused the subscription).
    pub fn publish_system(&mut self, topic: ByteString, payload: Bytes, retain: bool, now: Millis) {
        let message = Message {
            topic,
            payload,
            qos: QoS::AtMostOnce,
            retain,
            properties: PublishProperties::default(),
            expires_at: None,
            publisher: None,
        };
        self.route(Arc::new(message), now);
    }
}
