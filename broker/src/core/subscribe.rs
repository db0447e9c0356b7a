//! SUBSCRIBE and UNSUBSCRIBE, and the retained messages a subscription receives.

use std::sync::Arc;

use mqtt_codec::topic::{has_wildcard, parse_shared, validate_topic_filter};
use mqtt_codec::{Packet, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe};

use super::message::{Delivery, Message};
use super::router::Subscription;
use super::{Broker, ConnId};
use crate::authz::ClientInfo;
use crate::seam::Millis;

impl Broker {
    pub(super) fn handle_subscribe(&mut self, conn: ConnId, subscribe: Subscribe, now: Millis) {
        let Some(connection) = self.connections.get(&conn) else { return };
        let client = connection.client_id.clone();
        let Some(who) = self.sessions.get(&client).map(|s| Arc::clone(&s.client)) else { return };
        let identifier = subscribe.properties.subscription_identifier;
        if identifier.is_some() && !self.config.subscription_identifiers_available {
            return self.protocol_error(
                conn,
                ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
                "subscription identifiers not available",
                now,
            );
        }
        let mut reason_codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained: Vec<Delivery> = Vec::new();
        for (filter, options) in subscribe.filters {
            // Subscriptions live long: copy the filter out of the read buffer.
            let filter = bytestring::ByteString::from(&*filter);
            let granted = self.check_filter(&who, &filter);
            let reason = match granted {
                Err(reason) => reason,
                Ok(()) => {
                    let qos = options.qos.min(QoS::from_u8(self.config.maximum_qos).unwrap_or(QoS::ExactlyOnce));
                    let mut options = options;
                    options.qos = qos;
                    let subscription = Subscription { options, identifier };
                    let Some(session) = self.sessions.get_mut(&client) else { return };
                    if !session.subscriptions.contains_key(&filter)
                        && session.subscriptions.len() >= self.config.max_subscriptions.get()
                    {
                        reason_codes.push(ReasonCode::QUOTA_EXCEEDED);
                        continue;
                    }
                    let existed = session.subscriptions.insert(filter.clone(), subscription).is_some();
                    self.router.subscribe(&client, &filter, subscription);
                    let send_retained = match options.retain_handling {
                        RetainHandling::SendAtSubscribe => true,
                        RetainHandling::SendAtSubscribeIfNew => !existed,
                        RetainHandling::DoNotSend => false,
                    };
                    // Shared subscriptions get no retained messages ([MQTT-3.8.4-?] 5.0 4.8.2).
                    if send_retained && parse_shared(&filter).is_none() {
                        self.retained.matches(&filter, &mut |message: &Arc<Message>| {
                            if !message.is_expired(now) {
                                retained.push(Delivery {
                                    message: Arc::clone(message),
                                    qos: message.qos.min(qos),
                                    // [MQTT-3.3.1-8] 3.1.1 / [MQTT-3.3.1-9] 5.0: retained flag set.
                                    retain: true,
                                    subscription_ids: identifier.into_iter().collect(),
                                    shared: None,
                                });
                            }
                        });
                    }
                    ReasonCode(qos as u8)
                }
            };
            reason_codes.push(reason);
        }
        let suback = SubAck { packet_id: subscribe.packet_id, reason_codes, properties: Default::default() };
        self.send(conn, Packet::SubAck(suback));
        for delivery in retained {
            self.deliver(&client, delivery, now);
        }
    }

    /// Whether `client` may subscribe to `filter`, or the failure reason.
    fn check_filter(&self, who: &ClientInfo, filter: &str) -> Result<(), ReasonCode> {
        if validate_topic_filter(filter).is_err() {
            return Err(ReasonCode::TOPIC_FILTER_INVALID);
        }
        let (shared, real) = match parse_shared(filter) {
            Some((_, real)) => (true, real),
            None => (false, filter),
        };
        if shared && !self.config.shared_subscription_available {
            return Err(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED);
        }
        if has_wildcard(real) && !self.config.wildcard_subscription_available {
            return Err(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED);
        }
        if real.split('/').count() > usize::from(self.config.max_topic_levels.get()) {
            return Err(ReasonCode::TOPIC_FILTER_INVALID);
        }
        // A shared subscription is judged on its filter: the group name grants nothing.
        if !self.authorizer.can_subscribe(who, real) {
            return Err(ReasonCode::NOT_AUTHORIZED);
        }
        Ok(())
    }

    pub(super) fn handle_unsubscribe(&mut self, conn: ConnId, unsubscribe: Unsubscribe) {
        let Some(connection) = self.connections.get(&conn) else { return };
        let client = connection.client_id.clone();
        let Some(session) = self.sessions.get_mut(&client) else { return };
        let reason_codes = unsubscribe
            .filters
            .iter()
            .map(|filter| {
                if validate_topic_filter(filter).is_err() {
                    ReasonCode::TOPIC_FILTER_INVALID
                } else if session.subscriptions.remove(filter).is_some() {
                    self.router.unsubscribe(&client, filter);
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_SUBSCRIPTION_EXISTED
                }
            })
            .collect();
        let unsuback = UnsubAck { packet_id: unsubscribe.packet_id, reason_codes, properties: Default::default() };
        self.send(conn, Packet::UnsubAck(unsuback));
    }
}
