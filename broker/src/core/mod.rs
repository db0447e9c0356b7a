//! The sans-IO broker core: every protocol decision of a node, with no
//! sockets, clocks or tasks.
//!
//! The shell (`crate::server`) feeds it decoded packets, connection losses
//! and clock readings (`handle_*`), and drains what it produced
//! (`take_outbox`, `drain_wakeups`, `poll_timeout`). Given the same inputs it
//! produces the same outputs, which is what makes it testable without a
//! network and runnable in a simulator.
//!
//! - `connect`: CONNECT, takeover, wills, session expiry, DISCONNECT.
//! - `publish`: inbound PUBLISH and its acknowledgements, routing, delivery.
//! - `subscribe`: SUBSCRIBE / UNSUBSCRIBE and retained delivery.
//! - `authz`: authorization reload and the revocation of subscriptions the rules no longer allow.
//! - `cluster`: forwarding to other nodes, held acknowledgements, forwarded publishes.

mod authz;
pub mod cluster;
mod connect;
mod departed;
pub mod message;
mod publish;
mod redirect;
pub mod router;
pub mod session;
mod subscribe;
mod system;
pub mod transfer;
pub mod trie;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::hash::{AHashMap, Lazy};
use mqtt_codec::{Disconnect, Packet, ProtocolVersion, ReasonCode};
use rand::rngs::StdRng;

pub use self::connect::{ConnectOutcome, Refusal};
use self::message::Message;
use self::router::{ClientId, Router};
use self::session::Session;
use self::trie::TopicTrie;
use crate::authz::{AllowAll, Authorizer, ClientInfo};
use crate::config::MqttConfig;
use crate::seam::Millis;

/// Identifies one network connection for the life of the process.
pub type ConnId = u64;

/// Unsent publishes one connection's outbox holds before further deliveries
/// wait in the session queue (which has the configured bound and drop policy).
pub const OUTBOX_PUBLISHES_MAX: usize = 256;

/// Told by the core that a connection has output; the shell wakes its writer.
pub trait Waker: Send + Sync {
    fn wake(&self);
}

/// What a connection must send, and whether to close afterwards.
#[derive(Debug, Default)]
pub struct Outbox {
    pub packets: Vec<Packet>,
    /// Close the connection after sending `packets`, for this reason.
    pub close: Option<Closure>,
}

/// Why the broker closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closure {
    pub reason: ReasonCode,
    pub why: &'static str,
}

/// Counters of what the core did; read by logs, tests and, later, metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    pub connections_accepted: u64,
    pub connections_refused: u64,
    pub messages_received: u64,
    pub messages_delivered: u64,
    pub dropped_queue_full: u64,
    pub dropped_qos0_for_room: u64,
    pub dropped_expired: u64,
    pub dropped_too_large: u64,
    pub dropped_offline_qos0: u64,
    pub dropped_not_authorized: u64,
    /// Subscriptions removed because the rules no longer allow them (after a
    /// reload, or when a session resumed under an identity they do not allow).
    pub subscriptions_revoked: u64,
    pub wills_published: u64,
    pub sessions_expired: u64,
    pub takeovers: u64,
    pub retained_refused_full: u64,
}

/// Per-connection protocol state (the session outlives it).
struct Connection {
    client_id: ClientId,
    version: ProtocolVersion,
    waker: Arc<dyn Waker>,
    outbox: Outbox,
    outbox_publishes: usize,
    wake_pending: bool,
    /// Set once the broker decided to close; nothing more is queued.
    closing: Option<Closure>,
    /// QoS 1/2 messages the client accepts at once (its Receive Maximum, capped by ours).
    send_window: usize,
    /// The client's Maximum Packet Size.
    max_packet_size: u32,
    /// Topic aliases the broker may use towards the client.
    alias_max_out: u16,
    alias_out: Lazy<AHashMap<bytestring::ByteString, u16>>,
    alias_in: Lazy<AHashMap<u16, bytestring::ByteString>>,
    /// CONNECT asked for session expiry 0 ([MQTT-3.14.2-2]).
    connect_expiry_zero: bool,
    /// Set when the CONNECT used MQTT 5 enhanced authentication; boxed, as
    /// most connections do not.
    auth: Option<Box<ConnAuth>>,
}

/// A connection's enhanced authentication.
struct ConnAuth {
    /// The Authentication Method the shell authenticated the CONNECT with.
    method: bytestring::ByteString,
    /// The user name the connection authenticated as: re-authentication must prove the same one.
    user: Option<bytestring::ByteString>,
    /// A re-authentication in progress (AUTH 0x19 answered with AUTH 0x18).
    reauth: Option<Box<dyn crate::auth::AuthExchange>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("client_id", &self.client_id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Timers the core arms; each names the session state it was armed for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    Will {
        client: ClientId,
        epoch: u64,
    },
    SessionExpiry {
        client: ClientId,
        epoch: u64,
    },
    /// A sync forward's wait for acknowledgements ran out.
    ForwardTimeout {
        id: u64,
    },
}

/// The broker state of one node.
pub struct Broker {
    config: MqttConfig,
    authorizer: Arc<dyn Authorizer>,
    /// Boxed: a map keeps spare slots, and a slot should not cost a whole session.
    sessions: AHashMap<ClientId, Box<Session>>,
    connections: AHashMap<ConnId, Box<Connection>>,
    router: Router,
    retained: TopicTrie<Arc<Message>>,
    timers: BTreeMap<(Millis, u64), Timer>,
    timer_seq: u64,
    wakeups: Vec<ConnId>,
    rng: StdRng,
    pub counters: Counters,
    /// Set when this node is a cluster member.
    cluster: Option<Box<cluster::ClusterCore>>,
    /// Authentication Methods the shell runs exchanges for; a CONNECT with another is refused (0x8C).
    auth_methods: Vec<bytestring::ByteString>,
    /// Runs re-authentication (AUTH 0x19); None: it is refused.
    reauthenticator: Option<Arc<dyn crate::auth::ReAuthenticator>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("sessions", &self.sessions.len())
            .field("connections", &self.connections.len())
            .field("retained", &self.retained.len())
            .finish_non_exhaustive()
    }
}

impl Broker {
    pub fn new(config: MqttConfig, rng: StdRng) -> Self {
        Self {
            router: Router::new(config.shared_subscription_strategy),
            config,
            authorizer: Arc::new(AllowAll),
            sessions: AHashMap::new(),
            connections: AHashMap::new(),
            retained: TopicTrie::default(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            wakeups: Vec::new(),
            rng,
            counters: Counters::default(),
            cluster: None,
            auth_methods: Vec::new(),
            reauthenticator: None,
        }
    }

    /// Enhanced authentication: the methods the shell authenticates with an
    /// AUTH exchange before it hands the CONNECT over (see `connect`), and
    /// what runs re-authentication afterwards. The exchanges are sans-IO and
    /// cheap, so the core can drive them.
    pub fn set_authentication(
        &mut self,
        methods: &[&str],
        reauthenticator: Option<Arc<dyn crate::auth::ReAuthenticator>>,
    ) {
        self.auth_methods = methods.iter().map(|m| bytestring::ByteString::from(*m)).collect();
        self.reauthenticator = reauthenticator;
    }

    /// Replaces the authorization hook (publish / subscribe decisions).
    pub fn set_authorizer(&mut self, authorizer: Arc<dyn Authorizer>) {
        self.authorizer = authorizer;
    }

    pub fn config(&self) -> &MqttConfig {
        &self.config
    }

    /// Handles one packet a connection received after its CONNECT.
    pub fn handle_packet(&mut self, conn: ConnId, packet: Packet, now: Millis) {
        let Some(connection) = self.connections.get(&conn) else { return };
        if connection.closing.is_some() {
            return;
        }
        assert!(!(matches!(packet, Packet::PingReq) && crate::buggify::fires(crate::buggify::Bug::PanicOnPing))); // sim-bugs
        match packet {
            Packet::Publish(publish) => self.handle_publish(conn, publish, now),
            Packet::PubAck(ack) => self.handle_puback(conn, ack, now),
            Packet::PubRec(rec) => self.handle_pubrec(conn, rec, now),
            Packet::PubRel(rel) => self.handle_pubrel(conn, rel),
            Packet::PubComp(comp) => self.handle_pubcomp(conn, comp, now),
            Packet::Subscribe(subscribe) => self.handle_subscribe(conn, subscribe, now),
            Packet::Unsubscribe(unsubscribe) => self.handle_unsubscribe(conn, unsubscribe),
            Packet::PingReq => self.send(conn, Packet::PingResp),
            Packet::Disconnect(disconnect) => self.handle_disconnect(conn, disconnect, now),
            Packet::Connect(_) => {
                self.protocol_error(conn, ReasonCode::PROTOCOL_ERROR, "[MQTT-3.1.0-2] second CONNECT", now)
            }
            Packet::Auth(auth) => self.handle_auth(conn, auth, now),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                self.protocol_error(conn, ReasonCode::PROTOCOL_ERROR, "packet a client must not send", now)
            }
        }
    }

    /// The connection failed to deliver a well-formed packet (decode error,
    /// keep alive expired): tell a v5 client why, then close.
    pub fn protocol_error(&mut self, conn: ConnId, reason: ReasonCode, why: &'static str, now: Millis) {
        self.close(conn, Closure { reason, why }, true, now);
    }

    /// The network connection is gone (or the shell gave up on it). Publishes
    /// the will unless the client disconnected normally, and forgets the connection.
    pub fn connection_lost(&mut self, conn: ConnId, now: Millis) {
        if let Some(connection) = self.connections.get(&conn)
            && connection.closing.is_none()
        {
            self.detach(conn, true, now);
        }
        self.connections.remove(&conn);
    }

    /// Who each connection the broker has not decided to close is: for the
    /// shell's bans, which match on client id, user name and address.
    pub fn live_clients(&self) -> impl Iterator<Item = (ConnId, &ClientInfo)> {
        self.connections.iter().filter(|(_, c)| c.closing.is_none()).filter_map(|(&conn, c)| {
            let session = self.sessions.get(&c.client_id)?;
            (session.connection == Some(conn)).then_some((conn, &*session.client))
        })
    }

    /// Who the client of connection `conn` is, while the broker has not decided to close it.
    pub fn live_client(&self, conn: ConnId) -> Option<Arc<ClientInfo>> {
        let connection = self.connections.get(&conn).filter(|c| c.closing.is_none())?;
        let session = self.sessions.get(&connection.client_id)?;
        (session.connection == Some(conn)).then(|| Arc::clone(&session.client))
    }

    /// The client id of connection `conn`, until the connection is lost.
    pub fn client_of(&self, conn: ConnId) -> Option<ClientId> {
        self.connections.get(&conn).map(|c| c.client_id.clone())
    }

    /// Why the broker decided to close this connection, if it did.
    pub fn closure(&self, conn: ConnId) -> Option<Closure> {
        self.connections.get(&conn).and_then(|c| c.closing)
    }

    /// Takes what a connection must send. Refills the outbox from the session
    /// queue, so a writer that loops until it gets an empty outbox drains everything.
    pub fn take_outbox(&mut self, conn: ConnId, now: Millis) -> Outbox {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return Outbox {
                packets: Vec::new(),
                close: Some(Closure { reason: ReasonCode::UNSPECIFIED_ERROR, why: "connection unknown" }),
            };
        };
        let outbox = std::mem::take(&mut connection.outbox);
        connection.outbox_publishes = 0;
        connection.wake_pending = false;
        let client = connection.client_id.clone();
        if outbox.close.is_none() {
            self.pump(&client, now);
        }
        if let Some(connection) = self.connections.get_mut(&conn) {
            // The writer is about to loop; it needs no wake-up for what pump added.
            connection.wake_pending = false;
            self.wakeups.retain(|c| *c != conn);
        }
        outbox
    }

    /// The wakers of connections that got output since the last call.
    pub fn drain_wakeups(&mut self) -> Vec<Arc<dyn Waker>> {
        let wakeups = std::mem::take(&mut self.wakeups);
        wakeups.into_iter().filter_map(|conn| self.connections.get(&conn).map(|c| Arc::clone(&c.waker))).collect()
    }

    /// The earliest time `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    /// Fires every timer due at `now`: delayed wills and session expiries.
    pub fn handle_timeout(&mut self, now: Millis) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            match timer {
                Timer::Will { client, epoch } => self.fire_will(&client, epoch, now),
                Timer::SessionExpiry { client, epoch } => self.fire_session_expiry(&client, epoch, now),
                Timer::ForwardTimeout { id } => self.forward_timed_out(id),
            }
        }
    }

    /// Server shutdown: MQTT 5 clients get DISCONNECT 0x8B; every connection closes.
    pub fn shutdown(&mut self) {
        let conns: Vec<ConnId> = self.connections.keys().copied().collect();
        for conn in conns {
            let closure = Closure { reason: ReasonCode::SERVER_SHUTTING_DOWN, why: "server shutting down" };
            if let Some(connection) = self.connections.get_mut(&conn) {
                if connection.closing.is_some() {
                    continue;
                }
                connection.closing = Some(closure);
                if connection.version.is_v5() {
                    connection.outbox.packets.push(Packet::Disconnect(Disconnect::new(closure.reason)));
                }
                connection.outbox.close = Some(closure);
                self.wake(conn);
            }
        }
    }

    /// Number of sessions (connected or not).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Number of live connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }

    fn send(&mut self, conn: ConnId, packet: Packet) {
        if let Some(connection) = self.connections.get_mut(&conn)
            && connection.closing.is_none()
        {
            connection.outbox.packets.push(packet);
            self.wake(conn);
        }
    }

    fn wake(&mut self, conn: ConnId) {
        if let Some(connection) = self.connections.get_mut(&conn)
            && !connection.wake_pending
        {
            connection.wake_pending = true;
            self.wakeups.push(conn);
        }
    }

    /// Closes a connection from the broker's side: a v5 client gets
    /// DISCONNECT with the reason when `tell` is set; the session detaches.
    fn close(&mut self, conn: ConnId, closure: Closure, tell: bool, now: Millis) {
        let Some(connection) = self.connections.get_mut(&conn) else { return };
        if connection.closing.is_some() {
            return;
        }
        if tell && connection.version.is_v5() {
            connection.outbox.packets.push(Packet::Disconnect(Disconnect::new(closure.reason)));
        }
        connection.closing = Some(closure);
        connection.outbox.close = Some(closure);
        self.wake(conn);
        let publish_will = closure.reason != ReasonCode::NORMAL_DISCONNECTION;
        self.detach(conn, publish_will, now);
    }

    fn arm(&mut self, at: Millis, timer: Timer) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), timer);
    }
}

#[cfg(test)]
mod tests {
    /// Each live connection has one, boxed, for its life: topic aliases and
    /// enhanced authentication, which most connections never use, stay out
    /// of it until used.
    #[test]
    fn a_connection_stays_within_176_bytes() {
        let size = std::mem::size_of::<super::Connection>();
        assert!(size <= 176, "Connection is {size} bytes");
    }
}
