//! PUBLISH in both directions: acceptance from a publisher, routing,
//! per-session queues and the in-flight window, and the QoS 1/2 flows.

use std::sync::Arc;

use crate::hash::AHashMap;
use mqtt_codec::{Packet, PubResponse, Publish, QoS, ReasonCode, encoded_len};

use super::cluster::Routed;
use super::message::{Delivery, Message};
use super::router::{ClientId, Matched};
use super::session::{Inflight, OutState, Overflow};
use super::{Broker, ConnId, Connection, OUTBOX_PUBLISHES_MAX};
use crate::seam::Millis;

impl Broker {
    pub(super) fn handle_publish(&mut self, conn: ConnId, mut publish: Publish, now: Millis) {
        let Some(connection) = self.connections.get_mut(&conn) else { return };
        let client = connection.client_id.clone();
        let v5 = connection.version.is_v5();

        // Topic alias: set or resolve ([MQTT-3.3.2-12] 3.3.2.3.4).
        if let Some(alias) = publish.properties.topic_alias.take() {
            if alias == 0 || alias > self.config.max_topic_alias {
                return self.protocol_error(conn, ReasonCode::TOPIC_ALIAS_INVALID, "topic alias out of range", now);
            }
            if publish.topic.is_empty() {
                match connection.alias_in.get(&alias) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => return self.protocol_error(conn, ReasonCode::PROTOCOL_ERROR, "unknown topic alias", now),
                }
            } else {
                connection.alias_in.insert(alias, publish.topic.clone());
            }
        } else if publish.topic.is_empty() {
            return self.protocol_error(conn, ReasonCode::PROTOCOL_ERROR, "empty topic without alias", now);
        }
        if !publish.properties.subscription_identifiers.is_empty() {
            return self.protocol_error(
                conn,
                ReasonCode::PROTOCOL_ERROR,
                "[MQTT-3.3.4-6] subscription identifier from client",
                now,
            );
        }
        if publish.qos as u8 > self.config.maximum_qos {
            return self.protocol_error(conn, ReasonCode::QOS_NOT_SUPPORTED, "[MQTT-3.2.2-11] QoS above maximum", now);
        }
        if publish.retain && !self.config.retain_available {
            return self.protocol_error(
                conn,
                ReasonCode::RETAIN_NOT_SUPPORTED,
                "[MQTT-3.2.2-14] retain not available",
                now,
            );
        }
        let awaiting_rel_max = self.awaiting_rel_max(v5);
        let Some(session) = self.sessions.get_mut(&client) else { return };
        let authorized = self.authorizer.can_publish(&session.client, &publish.topic);
        if let (QoS::ExactlyOnce, Some(id)) = (publish.qos, publish.packet_id) {
            if session.awaiting_rel.contains(&id.get()) {
                // A resent QoS 2 PUBLISH: acknowledge again, deliver once ([MQTT-4.3.3-?] method B).
                return self.send(conn, Packet::PubRec(PubResponse::new(id)));
            }
            if session.awaiting_rel.len() >= awaiting_rel_max {
                return self.protocol_error(
                    conn,
                    ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                    "[MQTT-3.3.4-9] receive maximum exceeded",
                    now,
                );
            }
        }
        self.counters.messages_received += 1;

        let refusal = if publish.topic.split('/').count() > usize::from(self.config.max_topic_levels.get()) {
            Some(ReasonCode::TOPIC_NAME_INVALID)
        } else if !authorized {
            self.counters.dropped_not_authorized += 1;
            Some(ReasonCode::NOT_AUTHORIZED)
        } else {
            None
        };
        let routed = match refusal {
            Some(_) => Routed::default(),
            None => {
                let expires_at = publish.properties.message_expiry_interval.map(|secs| now + u64::from(secs) * 1000);
                let message = Message {
                    topic: publish.topic,
                    payload: publish.payload,
                    qos: publish.qos,
                    retain: publish.retain,
                    properties: publish.properties,
                    expires_at,
                    publisher: Some(client.clone()),
                };
                self.route(Arc::new(message), now)
            }
        };
        let reason = match refusal {
            // 3.1.1 has no way to refuse a PUBLISH: it is acknowledged and dropped.
            Some(reason) if v5 => reason,
            Some(_) => ReasonCode::SUCCESS,
            None if v5 && routed.local == 0 && routed.nodes.is_empty() => ReasonCode::NO_MATCHING_SUBSCRIBERS,
            None => ReasonCode::SUCCESS,
        };
        let Some(packet_id) = publish.packet_id else { return };
        let response = PubResponse { packet_id, reason_code: reason, properties: Default::default() };
        if publish.qos == QoS::ExactlyOnce {
            if !reason.is_error()
                && let Some(session) = self.sessions.get_mut(&client)
            {
                session.awaiting_rel.insert(packet_id.get());
            }
            self.hold_ack(conn, routed.forward_id, routed.nodes, Packet::PubRec(response), now);
        } else {
            self.hold_ack(conn, routed.forward_id, routed.nodes, Packet::PubAck(response), now);
        }
    }

    /// QoS 2 messages a client may have awaiting PUBREL. Receive Maximum
    /// exists in MQTT 5 only; a 3.1.1 client, which is told no limit, gets a
    /// higher one so that the set stays bounded (it closes the connection).
    fn awaiting_rel_max(&self, v5: bool) -> usize {
        let max = if v5 { self.config.receive_maximum } else { self.config.max_awaiting_rel_v3 };
        usize::from(max.get())
    }

    pub(super) fn handle_puback(&mut self, conn: ConnId, ack: PubResponse, now: Millis) {
        self.complete_inflight(conn, ack.packet_id, OutState::Published, now);
    }

    pub(super) fn handle_pubrec(&mut self, conn: ConnId, rec: PubResponse, now: Millis) {
        let Some(client) = self.connections.get(&conn).map(|c| c.client_id.clone()) else { return };
        let Some(session) = self.sessions.get_mut(&client) else { return };
        let Some(position) = session.inflight_position(rec.packet_id) else {
            // Unknown identifier: 5.0 answers PUBREL 0x92; 3.1.1 PUBREL as usual.
            let mut rel = PubResponse::new(rec.packet_id);
            rel.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
            return self.send(conn, Packet::PubRel(rel));
        };
        if rec.reason_code.is_error() {
            // The client refused the message: the flow ends here ([MQTT-4.3.3-?] 5.0 4.3.3).
            session.inflight.remove(position);
            self.pump(&client, now);
            return;
        }
        if let Some(entry) = session.inflight.get_mut(position) {
            entry.state = OutState::Released;
        }
        self.send(conn, Packet::PubRel(PubResponse::new(rec.packet_id)));
    }

    pub(super) fn handle_pubrel(&mut self, conn: ConnId, rel: PubResponse) {
        let Some(client) = self.connections.get(&conn).map(|c| c.client_id.clone()) else { return };
        let Some(session) = self.sessions.get_mut(&client) else { return };
        let mut comp = PubResponse::new(rel.packet_id);
        if !session.awaiting_rel.remove(&rel.packet_id.get()) {
            comp.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        }
        self.send(conn, Packet::PubComp(comp));
    }

    pub(super) fn handle_pubcomp(&mut self, conn: ConnId, comp: PubResponse, now: Millis) {
        self.complete_inflight(conn, comp.packet_id, OutState::Released, now);
    }

    /// Removes an acknowledged in-flight message if it is in the state the
    /// acknowledgement completes, and refills the window.
    fn complete_inflight(&mut self, conn: ConnId, packet_id: mqtt_codec::PacketId, expected: OutState, now: Millis) {
        let Some(client) = self.connections.get(&conn).map(|c| c.client_id.clone()) else { return };
        let Some(session) = self.sessions.get_mut(&client) else { return };
        let Some(position) = session.inflight_position(packet_id) else { return };
        let entry = &session.inflight[position];
        let qos1_ack = expected == OutState::Published && entry.delivery.qos == QoS::AtLeastOnce;
        let qos2_comp = expected == OutState::Released && entry.state == OutState::Released;
        if qos1_ack || qos2_comp {
            session.inflight.remove(position);
            self.counters.messages_delivered += 1;
            self.pump(&client, now);
        }
    }

    /// Sends a message to every matching subscription, here and (in a
    /// cluster) on the nodes with matching routes; stores or clears it as retained.
    pub(super) fn route(&mut self, message: Arc<Message>, now: Millis) -> Routed {
        if message.retain {
            self.retain(&message, now);
        }
        let (forward_id, nodes, served_elsewhere) = self.forward(&message, now);
        let local = self.deliver_locally(
            &message,
            true,
            |group, filter| !served_elsewhere.iter().any(|(g, f)| g == group && f == filter),
            now,
        );
        Routed { local, forward_id, nodes }
    }

    /// Puts a message in the queue of every matching local session, serving
    /// the shared groups for which `serve_group(group, filter)` holds. Returns
    /// the number of sessions it reached.
    pub(super) fn deliver_locally(
        &mut self,
        message: &Arc<Message>,
        direct: bool,
        serve_group: impl Fn(&str, &str) -> bool,
        now: Millis,
    ) -> usize {
        let mut matched = Vec::new();
        let sessions = &self.sessions;
        self.router.route_serving(
            &message.topic,
            message.publisher.as_deref(),
            &mut self.rng,
            |client| sessions.get(client).is_some_and(|s| s.connection.is_some()),
            direct,
            serve_group,
            &mut matched,
        );
        let deliveries = merge_overlapping(message, matched);
        let reached = deliveries.len();
        for (client, delivery) in deliveries {
            self.deliver(&client, delivery, now);
        }
        reached
    }

    fn retain(&mut self, message: &Arc<Message>, now: Millis) {
        if message.payload.is_empty() {
            // [MQTT-3.3.1-10], [MQTT-3.3.1-11]: an empty retained message clears the topic.
            self.retained.remove(&message.topic);
            self.retained_written(&message.topic, None, now);
            return;
        }
        let exists = self.retained.get(&message.topic).is_some();
        if !exists && self.retained.len() >= self.config.max_retained_messages.get() {
            self.counters.retained_refused_full += 1;
            return;
        }
        // Retained messages live long: copy them out of the read buffer they were decoded from.
        let mut compact = Message::clone(message);
        compact.topic = bytestring::ByteString::from(&*message.topic);
        compact.payload = bytes::Bytes::copy_from_slice(&message.payload);
        let compact = Arc::new(compact);
        self.retained.insert(&message.topic, Arc::clone(&compact));
        self.retained_written(&compact.topic, Some(compact.clone()), now);
    }

    /// Puts a delivery on a session's queue and sends what the window allows.
    pub(super) fn deliver(&mut self, client: &ClientId, delivery: Delivery, now: Millis) {
        let Some(session) = self.sessions.get_mut(client) else { return };
        if session.connection.is_none() && delivery.qos == QoS::AtMostOnce && !self.config.queue_qos0_offline {
            self.counters.dropped_offline_qos0 += 1;
            return;
        }
        if delivery.qos == QoS::ExactlyOnce && crate::buggify::fires(crate::buggify::Bug::Qos2Twice) {
            let _ = session.enqueue(delivery.clone(), self.config.max_queued_messages.get()); // sim-bugs: a second copy
        }
        match session.enqueue(delivery, self.config.max_queued_messages.get()) {
            Overflow::None => {}
            Overflow::DroppedQueuedQos0 => self.counters.dropped_qos0_for_room += 1,
            Overflow::DroppedNew => self.counters.dropped_queue_full += 1,
        }
        self.pump(client, now);
    }

    /// Moves deliveries from a connected session's queue to its connection,
    /// in order, while the in-flight window and the outbox have room.
    pub(super) fn pump(&mut self, client: &ClientId, now: Millis) {
        let Some(session) = self.sessions.get_mut(client) else { return };
        let Some(conn) = session.connection else { return };
        let Some(connection) = self.connections.get_mut(&conn) else { return };
        if connection.closing.is_some() {
            return;
        }
        let mut sent = false;
        // First what was in flight before a reconnect, in order, with DUP set.
        let mut on_wire = session.inflight.iter().filter(|f| !f.resend).count();
        let mut index = 0;
        while index < session.inflight.len() && connection.outbox_publishes < OUTBOX_PUBLISHES_MAX {
            let entry = &mut session.inflight[index];
            if !entry.resend {
                index += 1;
                continue;
            }
            let packet = match entry.state {
                OutState::Released => Packet::PubRel(PubResponse::new(entry.packet_id)),
                OutState::Published => {
                    if on_wire >= connection.send_window {
                        break;
                    }
                    let mut publish = outbound_publish(&entry.delivery, Some(entry.packet_id), now);
                    publish.dup = true;
                    Packet::Publish(publish)
                }
            };
            if !fits(&packet, connection) {
                // Too large for the new connection: discarded as if delivered ([MQTT-3.1.2-25]).
                session.inflight.remove(index);
                self.counters.dropped_too_large += 1;
                continue;
            }
            entry.resend = false;
            on_wire += 1;
            connection.outbox.packets.push(packet);
            connection.outbox_publishes += 1;
            sent = true;
            index += 1;
        }
        while let Some(front) = session.queue.front() {
            if front.message.is_expired(now) {
                session.queue.pop_front();
                self.counters.dropped_expired += 1;
                continue;
            }
            if connection.outbox_publishes >= OUTBOX_PUBLISHES_MAX {
                break;
            }
            if front.qos != QoS::AtMostOnce && session.inflight.len() >= connection.send_window {
                break;
            }
            let Some(delivery) = session.queue.pop_front() else { break };
            let packet_id = match delivery.qos {
                QoS::AtMostOnce => None,
                _ => match session.allocate_packet_id() {
                    Some(id) => Some(id),
                    None => {
                        session.queue.push_front(delivery);
                        break;
                    }
                },
            };
            let mut publish = outbound_publish(&delivery, packet_id, now);
            // Topic alias towards the client: replace a known topic, or assign while there is room.
            if connection.alias_max_out > 0 {
                if let Some(alias) = connection.alias_out.get(&publish.topic) {
                    publish.properties.topic_alias = Some(*alias);
                    publish.topic = Default::default();
                } else if connection.alias_out.len() < usize::from(connection.alias_max_out) {
                    let alias = u16::try_from(connection.alias_out.len() + 1).unwrap_or(u16::MAX);
                    connection.alias_out.insert(publish.topic.clone(), alias);
                    publish.properties.topic_alias = Some(alias);
                }
            }
            let packet = Packet::Publish(publish);
            // A message larger than the client accepts is not sent ([MQTT-3.1.2-25]).
            if !fits(&packet, connection) {
                self.counters.dropped_too_large += 1;
                if let Packet::Publish(p) = &packet
                    && p.properties.topic_alias.is_some()
                    && !p.topic.is_empty()
                {
                    connection.alias_out.remove(&p.topic);
                }
                continue;
            }
            if let Some(packet_id) = packet_id {
                session.inflight.push_back(Inflight { packet_id, delivery, state: OutState::Published, resend: false });
            } else {
                self.counters.messages_delivered += 1;
            }
            connection.outbox.packets.push(packet);
            connection.outbox_publishes += 1;
            sent = true;
        }
        if sent {
            self.wake(conn);
        }
    }

    /// Hands a departing shared-subscription member's messages to other members.
    pub(super) fn redeliver_shared(&mut self, from: &ClientId, deliveries: Vec<Delivery>, now: Millis) {
        for mut delivery in deliveries {
            let Some(key) = delivery.shared.clone() else { continue };
            let sessions = &self.sessions;
            let picked = self.router.pick_other_member(&key, from, &mut self.rng, |c| {
                sessions.get(c).is_some_and(|s| s.connection.is_some())
            });
            match picked {
                Some((client, subscription)) => {
                    delivery.qos = delivery.message.qos.min(subscription.options.qos);
                    delivery.subscription_ids = subscription.identifier.into_iter().collect();
                    self.deliver(&client, delivery, now);
                }
                // No other member here: another node's member takes it, or else
                // the message stays with the departing session if it lives on.
                None => {
                    if self.forward_to_group(&key, &delivery.message, now) {
                        continue;
                    }
                    if let Some(session) = self.sessions.get_mut(from) {
                        session.queue.push_back(delivery);
                    }
                }
            }
        }
    }
}

/// Whether a packet is within the client's Maximum Packet Size.
fn fits(packet: &Packet, connection: &Connection) -> bool {
    encoded_len(packet, connection.version).is_ok_and(|len| len <= connection.max_packet_size as usize)
}

/// The PUBLISH a delivery becomes (before topic alias).
fn outbound_publish(delivery: &Delivery, packet_id: Option<mqtt_codec::PacketId>, now: Millis) -> Publish {
    let message = &delivery.message;
    let mut properties = message.properties.clone();
    properties.message_expiry_interval = message.remaining_expiry_secs(now);
    properties.subscription_identifiers.clone_from(&delivery.subscription_ids);
    Publish {
        dup: false,
        qos: delivery.qos,
        retain: delivery.retain,
        topic: message.topic.clone(),
        packet_id,
        payload: message.payload.clone(),
        properties,
    }
}

/// One delivery per session for its non-shared subscriptions, at the highest
/// matching QoS with every matching subscription identifier
/// ([MQTT-3.3.4-2], [MQTT-3.3.4-3], [MQTT-3.3.4-4] 5.0), and one per shared pick.
pub(super) fn merge_overlapping(message: &Arc<Message>, matched: Vec<Matched>) -> Vec<(ClientId, Delivery)> {
    let mut direct: AHashMap<ClientId, Delivery> = AHashMap::new();
    let mut out = Vec::new();
    for m in matched {
        let options = m.subscription.options;
        let own = message.publisher.as_ref() == Some(&m.client);
        if options.no_local && own {
            continue; // [MQTT-3.8.3-3] 5.0
        }
        let qos = message.qos.min(options.qos);
        // [MQTT-3.3.1-12] 3.1.1 / retain as published (5.0).
        let retain = options.retain_as_published && message.retain;
        if m.shared.is_some() {
            let delivery = Delivery {
                message: Arc::clone(message),
                qos,
                retain,
                subscription_ids: m.subscription.identifier.into_iter().collect(),
                shared: m.shared,
            };
            out.push((m.client, delivery));
            continue;
        }
        let entry = direct.entry(m.client).or_insert_with(|| Delivery {
            message: Arc::clone(message),
            qos,
            retain,
            subscription_ids: Vec::new(),
            shared: None,
        });
        entry.qos = entry.qos.max(qos);
        entry.retain |= retain;
        entry.subscription_ids.extend(m.subscription.identifier);
    }
    let mut direct: Vec<(ClientId, Delivery)> = direct.into_iter().collect();
    // Deterministic delivery order regardless of hash seeds.
    direct.sort_by(|a, b| a.0.cmp(&b.0));
    direct.extend(out);
    direct
}
