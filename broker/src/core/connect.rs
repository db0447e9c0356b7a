//! CONNECT and the life of a session: takeover, wills, expiry, DISCONNECT.

use std::net::IpAddr;
use std::sync::Arc;

use bytestring::ByteString;
use mqtt_codec::{ConnAck, ConnAckProperties, Connect, Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};
use rand::Rng;

use super::cluster::WillEvent;
use super::message::Message;
use super::router::ClientId;
use super::session::{SESSION_NEVER_EXPIRES, Session, SessionWill};
use super::{Broker, Closure, ConnAuth, ConnId, Connection, Outbox, Timer, Waker};
use crate::auth::AuthStep;
use crate::authz::ClientInfo;
use crate::seam::Millis;

/// Prefix of client identifiers the broker assigns.
const ASSIGNED_ID_PREFIX: &str = "auto-";

/// CONNECT accepted: the CONNACK is in the connection's outbox.
#[derive(Debug, Clone)]
pub struct ConnectOutcome {
    pub client_id: ClientId,
    pub version: ProtocolVersion,
    /// Seconds of keep alive to enforce (0: none).
    pub keep_alive: u16,
    pub session_present: bool,
}

/// CONNECT refused: send `connack()` and close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub reason: ReasonCode,
}

impl Refusal {
    pub fn new(reason: ReasonCode) -> Self {
        Self { reason }
    }

    /// The CONNACK that reports the refusal, if the protocol version can say
    /// why: MQTT 3.1 / 3.1.1 have return codes for few reasons, and for the
    /// others the connection is closed without a CONNACK ([MQTT-3.2.2-6] 3.1.1).
    pub fn connack(&self, version: ProtocolVersion) -> Option<Packet> {
        let expressible = version.is_v5() || matches!(self.reason.0, 0x80 | 0x84..=0x8A);
        expressible.then(|| {
            Packet::ConnAck(ConnAck {
                session_present: false,
                reason_code: self.reason,
                properties: ConnAckProperties::default(),
            })
        })
    }
}

impl Broker {
    /// Handles an authenticated CONNECT from a new connection whose peer
    /// address is unknown (`ip:` rules do not match it).
    pub fn connect(
        &mut self,
        conn: ConnId,
        connect: Connect,
        waker: Arc<dyn Waker>,
        now: Millis,
    ) -> Result<ConnectOutcome, Refusal> {
        self.connect_from(conn, connect, None, waker, now)
    }

    /// Handles an authenticated CONNECT from a new connection from `peer`.
    pub fn connect_from(
        &mut self,
        conn: ConnId,
        connect: Connect,
        peer: Option<IpAddr>,
        waker: Arc<dyn Waker>,
        now: Millis,
    ) -> Result<ConnectOutcome, Refusal> {
        let result = self.try_connect(conn, connect, peer, waker, now);
        match &result {
            Ok(_) => self.counters.connections_accepted += 1,
            Err(_) => self.counters.connections_refused += 1,
        }
        result
    }

    fn try_connect(
        &mut self,
        conn: ConnId,
        connect: Connect,
        peer: Option<IpAddr>,
        waker: Arc<dyn Waker>,
        now: Millis,
    ) -> Result<ConnectOutcome, Refusal> {
        let version = connect.protocol;
        let v5 = version.is_v5();
        let mut assigned = None;
        let client_id = if connect.client_id.is_empty() {
            // [MQTT-3.1.3-6], [MQTT-3.1.3-7] (3.1.1) / [MQTT-3.1.3-8] (5.0).
            let allowed = v5 || (version == ProtocolVersion::V3_1_1 && connect.clean_start);
            if !allowed {
                return Err(Refusal::new(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID));
            }
            let id = loop {
                let id: ByteString = format!("{ASSIGNED_ID_PREFIX}{:016x}", self.rng.random::<u64>()).into();
                if !self.sessions.contains_key(&id) {
                    break id;
                }
            };
            assigned = v5.then(|| id.clone());
            id
        } else {
            // A copy: the decoded id is a slice of the read buffer, which it would pin for the session's life.
            ByteString::from(&*connect.client_id)
        };
        if client_id.len() > usize::from(self.config.max_client_id_len.get()) {
            return Err(Refusal::new(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID));
        }
        // Enhanced authentication: the shell ran the AUTH exchange before it
        // handed the CONNECT over, and left in it the method and, as
        // Authentication Data, the server's final message for the CONNACK.
        // Any other method is refused ([MQTT-4.12.0-1]).
        let auth_method = match &connect.properties.authentication_method {
            Some(method) if v5 && self.auth_methods.iter().any(|m| m == method) => Some(ByteString::from(&**method)),
            Some(_) => return Err(Refusal::new(ReasonCode::BAD_AUTHENTICATION_METHOD)),
            None => None,
        };
        if let Some(will) = &connect.will {
            if will.qos as u8 > self.config.maximum_qos {
                return Err(Refusal::new(ReasonCode::QOS_NOT_SUPPORTED)); // [MQTT-3.2.2-12]
            }
            if will.retain && !self.config.retain_available {
                return Err(Refusal::new(ReasonCode::RETAIN_NOT_SUPPORTED)); // [MQTT-3.2.2-13]
            }
            if will.topic.split('/').count() > usize::from(self.config.max_topic_levels.get()) {
                return Err(Refusal::new(ReasonCode::TOPIC_NAME_INVALID));
            }
        }

        let requested_expiry = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            self.config.session_expiry_v3_secs
        };
        let expiry = requested_expiry.min(self.config.max_session_expiry_secs);

        // Takeover: the existing connection is closed ([MQTT-3.1.4-3]).
        if let Some(old) = self.sessions.get(&client_id).and_then(|s| s.connection) {
            self.counters.takeovers += 1;
            self.close(old, Closure { reason: ReasonCode::SESSION_TAKEN_OVER, why: "session taken over" }, true, now);
        }
        let resumed = !connect.clean_start && self.sessions.contains_key(&client_id);
        if !resumed {
            if self.sessions.contains_key(&client_id) {
                self.end_session(&client_id, now);
            }
            self.sessions.insert(client_id.clone(), Box::new(Session::new(client_id.clone(), expiry)));
        }

        let keep_alive = match (v5, self.config.server_keep_alive) {
            (true, Some(server)) => server,
            _ => connect.keep_alive,
        };
        let props = &connect.properties;
        let send_window = usize::from(props.receive_maximum.unwrap_or(u16::MAX).min(self.config.max_inflight.get()));
        let connection = Connection {
            client_id: client_id.clone(),
            version,
            waker,
            outbox: Outbox::default(),
            outbox_publishes: 0,
            wake_pending: false,
            closing: None,
            send_window,
            max_packet_size: props.maximum_packet_size.unwrap_or(u32::MAX),
            alias_max_out: props.topic_alias_maximum.unwrap_or(0).min(self.config.max_topic_alias),
            alias_out: Default::default(),
            alias_in: Default::default(),
            connect_expiry_zero: requested_expiry == 0,
            auth: auth_method.clone().map(|method| {
                let user = connect.username.as_deref().map(ByteString::from);
                Box::new(ConnAuth { method, user, reauth: None })
            }),
        };
        self.connections.insert(conn, Box::new(connection));

        let Some(session) = self.sessions.get_mut(&client_id) else {
            return Err(Refusal::new(ReasonCode::UNSPECIFIED_ERROR));
        };
        session.connection = Some(conn);
        // Copied: the decoded user name is a slice of the read buffer.
        let username = connect.username.as_deref().map(ByteString::from);
        session.client = Arc::new(ClientInfo { client_id: client_id.clone(), username, peer });
        session.epoch += 1;
        session.expiry_secs = expiry;
        // A will still waiting out its delay is dropped: the session is back ([MQTT-3.1.3-9] 5.0 3.1.3.2.2).
        let had_will = session.will.is_some();
        session.will = connect.will.map(|w| {
            let delay_secs = w.properties.will_delay_interval.unwrap_or(0);
            Box::new(SessionWill { will: compact_will(w), delay_secs })
        });
        let guard = match &session.will {
            Some(w) => Some(WillEvent::Guard {
                client: client_id.clone(),
                who: Arc::clone(&session.client),
                will: Box::new(w.will.clone()),
                delay_secs: w.delay_secs,
                expiry_secs: expiry,
            }),
            None => had_will.then(|| WillEvent::Release { client: client_id.clone() }),
        };
        if let Some(event) = guard {
            self.will_event(event);
        }

        let properties = if v5 {
            ConnAckProperties {
                // [MQTT-4.12.0-5]: the CONNECT's method, and the exchange's final data.
                authentication_data: auth_method
                    .as_ref()
                    .and_then(|_| connect.properties.authentication_data.as_deref().map(bytes::Bytes::copy_from_slice)),
                authentication_method: auth_method,
                ..self.connack_properties(requested_expiry, expiry, assigned, keep_alive)
            }
        } else {
            ConnAckProperties::default()
        };
        // MQTT 3.1 has no session present flag: the bit is reserved.
        let session_present = resumed && version != ProtocolVersion::V3_1;
        let connack = ConnAck { session_present, reason_code: ReasonCode::SUCCESS, properties };
        self.send(conn, Packet::ConnAck(connack));
        if resumed {
            // The session's rights are the new connection's: its user name or address may differ.
            self.revoke_denied(&client_id);
            self.resend_inflight(&client_id);
        }
        self.pump(&client_id, now);
        Ok(ConnectOutcome { client_id, version, keep_alive, session_present: resumed })
    }

    fn connack_properties(
        &self,
        requested_expiry: u32,
        expiry: u32,
        assigned: Option<ByteString>,
        keep_alive: u16,
    ) -> ConnAckProperties {
        let c = &self.config;
        ConnAckProperties {
            session_expiry_interval: (expiry != requested_expiry).then_some(expiry),
            receive_maximum: (c.receive_maximum.get() != u16::MAX).then_some(c.receive_maximum.get()),
            maximum_qos: match c.maximum_qos {
                0 => Some(QoS::AtMostOnce),
                1 => Some(QoS::AtLeastOnce),
                _ => None,
            },
            retain_available: (!c.retain_available).then_some(false),
            maximum_packet_size: Some(c.max_packet_size.get()),
            assigned_client_identifier: assigned,
            topic_alias_maximum: (c.max_topic_alias > 0).then_some(c.max_topic_alias),
            wildcard_subscription_available: (!c.wildcard_subscription_available).then_some(false),
            subscription_identifiers_available: (!c.subscription_identifiers_available).then_some(false),
            shared_subscription_available: (!c.shared_subscription_available).then_some(false),
            server_keep_alive: c.server_keep_alive.map(|_| keep_alive),
            ..ConnAckProperties::default()
        }
    }

    /// Marks every unacknowledged message of a resumed session for resending;
    /// `pump` resends them first, in order, within the new connection's limits.
    fn resend_inflight(&mut self, client: &ClientId) {
        if let Some(session) = self.sessions.get_mut(client) {
            session.inflight.iter_mut().for_each(|f| f.resend = true);
        }
    }

    /// AUTH after CONNACK: re-authentication ([MQTT-4.12.1-1]), only after a
    /// CONNECT with an Authentication Method and with the same method
    /// ([MQTT-4.12.0-7], [MQTT-4.12.1-1]). AUTH 0x19 starts an exchange, AUTH
    /// 0x18 continues it; the broker answers AUTH 0x18 while the mechanism
    /// wants more and AUTH 0x00 on success. A failure, or a method that cannot
    /// re-authenticate, ends the connection with DISCONNECT ([MQTT-4.12.1-2]).
    pub(super) fn handle_auth(&mut self, conn: ConnId, auth: mqtt_codec::Auth, now: Millis) {
        let Some(connection) = self.connections.get_mut(&conn) else { return };
        let Some(state) = connection.auth.as_mut() else {
            let why = "[MQTT-4.12.0-7] AUTH without an Authentication Method in CONNECT";
            return self.protocol_error(conn, ReasonCode::PROTOCOL_ERROR, why, now);
        };
        let method = state.method.clone();
        if auth.properties.authentication_method.as_ref() != Some(&method) {
            let why = "[MQTT-4.12.1-1] AUTH with another Authentication Method than CONNECT's";
            return self.protocol_error(conn, ReasonCode::PROTOCOL_ERROR, why, now);
        }
        let exchange = match (auth.reason_code, state.reauth.take()) {
            (ReasonCode::RE_AUTHENTICATE, None) => {
                let user = state.user.as_deref();
                match self.reauthenticator.as_ref().and_then(|r| r.start(&method, user)) {
                    Some(exchange) => exchange,
                    None => {
                        let closure = Closure { reason: ReasonCode::NOT_AUTHORIZED, why: "re-authentication refused" };
                        return self.close(conn, closure, true, now);
                    }
                }
            }
            (ReasonCode::CONTINUE_AUTHENTICATION, Some(exchange)) => exchange,
            _ => {
                let why = "AUTH reason out of order (0x19 starts re-authentication, 0x18 continues it)";
                return self.protocol_error(conn, ReasonCode::PROTOCOL_ERROR, why, now);
            }
        };
        let mut exchange = exchange;
        let data = auth.properties.authentication_data.unwrap_or_default();
        let (reason, data) = match exchange.step(&data) {
            AuthStep::Continue(data) => (ReasonCode::CONTINUE_AUTHENTICATION, Some(data)),
            AuthStep::Success(data) => (ReasonCode::SUCCESS, data),
            AuthStep::Failure(reason) => {
                return self.close(conn, Closure { reason, why: "re-authentication failed" }, true, now);
            }
        };
        if reason == ReasonCode::CONTINUE_AUTHENTICATION
            && let Some(state) = self.connections.get_mut(&conn).and_then(|c| c.auth.as_mut())
        {
            state.reauth = Some(exchange);
        }
        let properties = mqtt_codec::AuthProperties {
            authentication_method: Some(method),
            authentication_data: data,
            ..mqtt_codec::AuthProperties::default()
        };
        self.send(conn, Packet::Auth(mqtt_codec::Auth { reason_code: reason, properties }));
    }

    pub(super) fn handle_disconnect(&mut self, conn: ConnId, disconnect: Disconnect, now: Millis) {
        let Some(connection) = self.connections.get(&conn) else { return };
        if let Some(expiry) = disconnect.properties.session_expiry_interval {
            if connection.connect_expiry_zero && expiry != 0 {
                self.protocol_error(
                    conn,
                    ReasonCode::PROTOCOL_ERROR,
                    "[MQTT-3.14.2-2] session expiry set after 0",
                    now,
                );
                return;
            }
            let expiry = expiry.min(self.config.max_session_expiry_secs);
            let client = connection.client_id.clone();
            if let Some(session) = self.sessions.get_mut(&client) {
                session.expiry_secs = expiry;
            }
        }
        // [MQTT-3.1.2-10]: a normal disconnection removes the will; any other reason publishes it.
        let reason = disconnect.reason_code;
        let why = if reason == ReasonCode::NORMAL_DISCONNECTION {
            "client disconnected"
        } else {
            "client disconnected with a reason"
        };
        self.close(conn, Closure { reason, why }, false, now);
    }

    /// Detaches a connection from its session: will, shared redelivery, expiry.
    pub(super) fn detach(&mut self, conn: ConnId, publish_will: bool, now: Millis) {
        let Some(connection) = self.connections.get(&conn) else { return };
        let client = connection.client_id.clone();
        let Some(session) = self.sessions.get_mut(&client) else { return };
        if session.connection != Some(conn) {
            return;
        }
        session.connection = None;
        session.epoch += 1;
        let epoch = session.epoch;
        let expiry = session.expiry_secs;
        let will = session.will.take();
        let had_will = will.is_some();
        let who = Arc::clone(&session.client);
        let shared = session.take_shared_deliveries(false);
        self.redeliver_shared(&client, shared, now);

        if let Some(mut will) = will.filter(|_| publish_will) {
            // The will waits for the shorter of its delay and the session ([MQTT-3.1.3-9] 5.0).
            let delay = will.delay_secs.min(expiry);
            let delay = if crate::buggify::fires(crate::buggify::Bug::WillOnTakeover) { 0 } else { delay }; // sim-bugs
            if delay == 0 {
                self.publish_will(&who, &will.will, now);
            } else if let Some(session) = self.sessions.get_mut(&client) {
                will.delay_secs = delay;
                session.will = Some(will);
                self.arm(now + u64::from(delay) * 1000, Timer::Will { client: client.clone(), epoch });
            }
        }
        if had_will && self.sessions.get(&client).is_some_and(|s| s.will.is_none()) {
            self.will_event(WillEvent::Release { client: client.clone() });
        }
        if expiry == 0 {
            self.end_session(&client, now);
        } else if expiry != SESSION_NEVER_EXPIRES {
            self.arm(now + u64::from(expiry) * 1000, Timer::SessionExpiry { client, epoch });
        }
    }

    pub(super) fn fire_will(&mut self, client: &ClientId, epoch: u64, now: Millis) {
        let Some(session) = self.sessions.get_mut(client) else { return };
        if session.epoch != epoch || session.connection.is_some() {
            return;
        }
        if let Some(will) = session.will.take() {
            let who = Arc::clone(&session.client);
            self.publish_will(&who, &will.will, now);
            self.will_event(WillEvent::Release { client: client.clone() });
        }
    }

    pub(super) fn fire_session_expiry(&mut self, client: &ClientId, epoch: u64, now: Millis) {
        let Some(session) = self.sessions.get(client) else { return };
        if session.epoch != epoch || session.connection.is_some() {
            return;
        }
        self.counters.sessions_expired += 1;
        self.end_session(client, now);
    }

    /// Ends a session: its subscriptions leave the index and a will still
    /// waiting out its delay is published now.
    pub(super) fn end_session(&mut self, client: &ClientId, now: Millis) {
        let Some(mut session) = self.sessions.remove(client) else { return };
        for filter in session.subscriptions.keys() {
            self.router.unsubscribe(client, filter);
        }
        let shared = session.take_shared_deliveries(true);
        self.redeliver_shared(client, shared, now);
        if let Some(will) = session.will.take() {
            self.publish_will(&session.client, &will.will, now);
            self.will_event(WillEvent::Release { client: client.clone() });
        }
    }

    /// Publishes a will as `who`, if the rules let it publish to the will's topic.
    pub(super) fn publish_will(&mut self, who: &ClientInfo, will: &mqtt_codec::Will, now: Millis) {
        self.counters.wills_published += 1;
        let message = Message::from_will(will, &who.client_id, now);
        if !self.authorizer.can_publish(who, &message.topic) {
            self.counters.dropped_not_authorized += 1;
            return;
        }
        self.route(Arc::new(message), now);
    }
}

/// A will held for the session's life, copied out of the read buffer it was decoded from.
fn compact_will(mut will: mqtt_codec::Will) -> mqtt_codec::Will {
    will.topic = ByteString::from(&*will.topic);
    will.payload = bytes::Bytes::copy_from_slice(&will.payload);
    will
}
