//! Application messages as the broker holds them between publisher and subscribers.

use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use mqtt_codec::{PublishProperties, QoS, Will};

use super::router::{ClientId, SharedKey};
use crate::seam::Millis;

/// A message accepted from a publisher (or a will), shared by every delivery of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// As received, less the topic alias and subscription identifiers, which
    /// are per connection.
    pub properties: PublishProperties,
    /// When the message expires (MQTT 5 Message Expiry Interval), on the broker clock.
    pub expires_at: Option<Millis>,
    /// The publishing client, for No Local.
    pub publisher: Option<ClientId>,
}

impl Message {
    pub fn is_expired(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The Message Expiry Interval to forward: the received value less the
    /// time the message waited here ([MQTT-3.3.2-6]), rounded up.
    pub fn remaining_expiry_secs(&self, now: Millis) -> Option<u32> {
        self.expires_at.map(|at| u32::try_from(at.saturating_sub(now).div_ceil(1000)).unwrap_or(u32::MAX))
    }

    /// The message a will becomes when it is published.
    pub fn from_will(will: &Will, publisher: &ClientId, now: Millis) -> Self {
        let p = &will.properties;
        Self {
            topic: will.topic.clone(),
            payload: will.payload.clone(),
            qos: will.qos,
            retain: will.retain,
            properties: PublishProperties {
                payload_format_indicator: p.payload_format_indicator,
                message_expiry_interval: p.message_expiry_interval,
                topic_alias: None,
                response_topic: p.response_topic.clone(),
                correlation_data: p.correlation_data.clone(),
                user_properties: p.user_properties.clone(),
                subscription_identifiers: Vec::new(),
                content_type: p.content_type.clone(),
            },
            expires_at: p.message_expiry_interval.map(|secs| now + u64::from(secs) * 1000),
            publisher: Some(publisher.clone()),
        }
    }
}

/// One message on its way to one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Arc<Message>,
    /// The lower of the message's QoS and the subscription's.
    pub qos: QoS,
    /// The RETAIN flag to send.
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// Set when the session got the message as a shared subscription member,
    /// so that another member can take it over if this one leaves.
    pub shared: Option<SharedKey>,
}
