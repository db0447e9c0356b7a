//! The peer-link protocol: messages and their frames (see ALGORITHM.md,
//! "Peer links").
//!
//! A frame is a `u32` big-endian length and a message: a type byte and its
//! fields (integers big endian, strings and byte strings prefixed by a `u32`
//! length). A forwarded message's MQTT content travels as an MQTT 5 PUBLISH
//! encoded by `mqtt-codec`, so every property crosses the cluster exactly as
//! the broker would send it to a client. Decoding never panics and never
//! allocates more than the frame it was given.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use mqtt_codec::{Decoder, Packet, ProtocolVersion, Publish};

use super::routes::{Epoch, NodeName};
use crate::core::cluster::Stamp;

/// Bumped when a message changes; peers of other versions are refused at Hello.
pub const PROTOCOL_VERSION: u16 = 3;
/// Largest frame accepted: a maximum MQTT packet plus room for the envelope.
pub const FRAME_LEN_MAX: usize = 268_435_455 + 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMessage {
    Hello {
        protocol: u16,
        cluster: ByteString,
        node: NodeName,
        incarnation: u64,
    },
    /// All of the sender's routes: replaces what the receiver held for it.
    Routes {
        epoch: Epoch,
        filters: Vec<ByteString>,
    },
    RouteAdd {
        epoch: Epoch,
        filter: ByteString,
    },
    RouteRemove {
        epoch: Epoch,
        filter: ByteString,
    },
    Forward(Box<Forward>),
    /// The receiver put forward `id` in every matching local session's queue.
    ForwardAck {
        id: u64,
    },
    /// A retained message set or cleared on `node` at `stamp` (last writer wins).
    Retained(Box<RetainedWrite>),
    /// The sender has a new connection for `client`, made at `stamp`: close
    /// yours and send its session, unless yours is newer.
    Takeover {
        id: u64,
        client: ByteString,
        discard: bool,
        stamp: Stamp,
    },
    /// The answer to `Takeover { id }`: the session, if this node had one to
    /// give; `newer`: this node kept a connection made after the request's.
    Session {
        id: u64,
        transfer: Option<Box<WireSession>>,
        newer: Option<Stamp>,
    },
    /// The clients connected to the sender and when each connected: a client id
    /// connected here too, earlier, is settled in the sender's favour
    /// (ALGORITHM.md, "Sessions across nodes").
    Connected {
        clients: Vec<(ByteString, Stamp)>,
    },
    /// Sent back on a link: the receiver dropped the sender's routes; send them again.
    ResendRoutes,
    /// Guard this will of a client connected to the sender: publish it if the sender dies.
    WillGuard(Box<WillGuard>),
    /// The sender no longer holds `client`'s will (published, cancelled or moved).
    WillRelease {
        client: ByteString,
    },
}

/// A will to publish if its node dies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillGuard {
    pub client: ByteString,
    /// Who set it (user name and address at its CONNECT): the guardian
    /// checks the will against the ACL as that client, as the holder would.
    pub username: Option<ByteString>,
    pub peer: Option<std::net::IpAddr>,
    pub delay_secs: u32,
    pub expiry_secs: u32,
    /// The will as the PUBLISH it would become (topic, payload, QoS, retain, properties).
    pub publish: Publish,
}

/// A session as it crosses a link; the broker clock's expiries become time left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireSession {
    pub client_id: ByteString,
    pub expiry_secs: u32,
    /// Filter, options byte (SUBSCRIBE's layout), subscription identifier.
    pub subscriptions: Vec<(ByteString, u8, Option<u32>)>,
    /// Packet identifier, released (PUBREL sent), delivery.
    pub inflight: Vec<(u16, bool, WireDelivery)>,
    pub queue: Vec<WireDelivery>,
    pub awaiting_rel: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireDelivery {
    pub qos: u8,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// (group, real filter) when delivered as a shared-group member.
    pub shared: Option<(ByteString, ByteString)>,
    pub expires_in_ms: Option<u64>,
    pub publisher: Option<ByteString>,
    pub publish: Publish,
}

/// A retained write as it crosses a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedWrite {
    pub topic: ByteString,
    pub stamp: Stamp,
    pub node: NodeName,
    /// Absent for a clear; else the milliseconds it has left (if it expires) and the message.
    pub message: Option<(Option<u64>, Publish)>,
}

/// A publish sent on to a node with matching routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub id: u64,
    /// Whether the sender waits for `ForwardAck` (sync forwarding of QoS 1/2).
    pub ack: bool,
    /// Milliseconds left before the message expires, if it has an expiry.
    pub expires_in_ms: Option<u64>,
    /// The publishing client, for No Local.
    pub publisher: Option<ByteString>,
    /// Shared groups (group, real filter) this node is to serve; its other groups are served elsewhere.
    pub groups: Vec<(ByteString, ByteString)>,
    /// Whether the node delivers to its direct (non-shared) subscriptions too;
    /// false when a departing member's message is handed to a group elsewhere.
    pub direct: bool,
    /// Topic, payload, QoS, retain and properties (no packet id, no alias).
    pub publish: Publish,
    /// Every node the publishing node sent this message to. A node that
    /// redirects the message to a session that moved away uses it to tell
    /// whether the session's new node got the message directly. Shared: the
    /// forwards of one message to several nodes, and a publishing node's
    /// successive messages to the same nodes, hold one list.
    pub destinations: Arc<[NodeName]>,
    /// Set when the sender is not the publishing node but the node a
    /// session moved away from, passing on a forward that reached it after
    /// the move (ALGORITHM.md, "Sessions across nodes").
    pub redirect: Option<Box<Redirect>>,
}

/// A forward passed on to the node a session moved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The session it is for; its subscriptions where it is now decide the delivery.
    pub client: ByteString,
    /// The publishing node, its incarnation and its id for the forward.
    pub origin: NodeName,
    pub origin_incarnation: u64,
    pub origin_id: u64,
}

const HELLO: u8 = 1;
const ROUTES: u8 = 2;
const ROUTE_ADD: u8 = 3;
const ROUTE_REMOVE: u8 = 4;
const FORWARD: u8 = 5;
const FORWARD_ACK: u8 = 6;
const RETAINED: u8 = 7;
const TAKEOVER: u8 = 8;
const SESSION: u8 = 9;
const WILL_GUARD: u8 = 10;
const WILL_RELEASE: u8 = 11;
const RESEND_ROUTES: u8 = 12;
const CONNECTED: u8 = 13;

/// Appends one frame holding `message` to `out`.
pub fn encode(message: &PeerMessage, out: &mut BytesMut) -> Result<(), String> {
    let start = out.len();
    out.put_u32(0);
    match message {
        PeerMessage::Hello { protocol, cluster, node, incarnation } => {
            out.put_u8(HELLO);
            out.put_u16(*protocol);
            put_str(out, cluster);
            put_str(out, node);
            out.put_u64(*incarnation);
        }
        PeerMessage::Routes { epoch, filters } => {
            out.put_u8(ROUTES);
            put_epoch(out, *epoch);
            out.put_u32(len32(filters.len())?);
            for f in filters {
                put_str(out, f);
            }
        }
        PeerMessage::RouteAdd { epoch, filter } | PeerMessage::RouteRemove { epoch, filter } => {
            out.put_u8(if matches!(message, PeerMessage::RouteAdd { .. }) { ROUTE_ADD } else { ROUTE_REMOVE });
            put_epoch(out, *epoch);
            put_str(out, filter);
        }
        PeerMessage::Forward(f) => {
            out.put_u8(FORWARD);
            out.put_u64(f.id);
            out.put_u8(u8::from(f.ack) | (u8::from(f.direct) << 1));
            put_expiry(out, f.expires_in_ms);
            put_str(out, f.publisher.as_deref().unwrap_or(""));
            out.put_u32(len32(f.groups.len())?);
            for (group, filter) in &f.groups {
                put_str(out, group);
                put_str(out, filter);
            }
            out.put_u32(len32(f.destinations.len())?);
            for node in f.destinations.iter() {
                put_str(out, node);
            }
            match &f.redirect {
                None => out.put_u8(0),
                Some(r) => {
                    out.put_u8(1);
                    put_str(out, &r.client);
                    put_str(out, &r.origin);
                    out.put_u64(r.origin_incarnation);
                    out.put_u64(r.origin_id);
                }
            }
            // Last: a PUBLISH runs to the end of the frame.
            put_publish(out, &f.publish)?;
        }
        PeerMessage::Retained(r) => {
            out.put_u8(RETAINED);
            put_str(out, &r.topic);
            put_stamp(out, r.stamp);
            put_str(out, &r.node);
            match &r.message {
                None => out.put_u8(0),
                Some((expires_in_ms, publish)) => {
                    out.put_u8(1);
                    put_expiry(out, *expires_in_ms);
                    put_publish(out, publish)?;
                }
            }
        }
        PeerMessage::ForwardAck { id } => {
            out.put_u8(FORWARD_ACK);
            out.put_u64(*id);
        }
        PeerMessage::Takeover { id, client, discard, stamp } => {
            out.put_u8(TAKEOVER);
            out.put_u64(*id);
            put_str(out, client);
            out.put_u8(u8::from(*discard));
            put_stamp(out, *stamp);
        }
        PeerMessage::Connected { clients } => {
            out.put_u8(CONNECTED);
            out.put_u32(len32(clients.len())?);
            for (client, stamp) in clients {
                put_str(out, client);
                put_stamp(out, *stamp);
            }
        }
        PeerMessage::WillGuard(g) => {
            out.put_u8(WILL_GUARD);
            put_str(out, &g.client);
            match &g.username {
                None => out.put_u8(0),
                Some(name) => {
                    out.put_u8(1);
                    put_str(out, name);
                }
            }
            put_str(out, &g.peer.map(|ip| ip.to_string()).unwrap_or_default());
            out.put_u32(g.delay_secs);
            out.put_u32(g.expiry_secs);
            put_publish(out, &g.publish)?;
        }
        PeerMessage::WillRelease { client } => {
            out.put_u8(WILL_RELEASE);
            put_str(out, client);
        }
        PeerMessage::ResendRoutes => out.put_u8(RESEND_ROUTES),
        PeerMessage::Session { id, transfer, newer } => {
            out.put_u8(SESSION);
            out.put_u64(*id);
            match newer {
                None => out.put_u8(0),
                Some(stamp) => {
                    out.put_u8(1);
                    put_stamp(out, *stamp);
                }
            }
            match transfer {
                None => out.put_u8(0),
                Some(t) => {
                    out.put_u8(1);
                    put_session(out, t)?;
                }
            }
        }
    }
    let len = out.len() - start - 4;
    out[start..start + 4].copy_from_slice(&len32(len)?.to_be_bytes());
    Ok(())
}

/// Takes one whole frame from the front of `buf`: `Ok(None)` until it is all there.
pub fn decode(buf: &mut BytesMut) -> Result<Option<PeerMessage>, String> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > FRAME_LEN_MAX {
        return Err(format!("frame of {len} bytes is over the {FRAME_LEN_MAX}-byte limit"));
    }
    if buf.len() < 4 + len {
        // No reservation for the announced length: the reader grows the buffer as bytes arrive.
        return Ok(None);
    }
    buf.advance(4);
    let mut frame = buf.split_to(len).freeze();
    let message = decode_message(&mut frame)?;
    if frame.has_remaining() {
        return Err(format!("{} bytes left over after a message", frame.remaining()));
    }
    Ok(Some(message))
}

fn decode_message(f: &mut Bytes) -> Result<PeerMessage, String> {
    let kind = get_u8(f)?;
    Ok(match kind {
        HELLO => PeerMessage::Hello {
            protocol: get_u16(f)?,
            cluster: get_str(f)?,
            node: get_str(f)?,
            incarnation: get_u64(f)?,
        },
        ROUTES => {
            let epoch = get_epoch(f)?;
            let n = get_u32(f)? as usize;
            // Each filter takes at least its 4-byte length: a count beyond that is a lie.
            if n > f.remaining() / 4 {
                return Err(format!("{n} routes announced in {} bytes", f.remaining()));
            }
            let mut filters = Vec::with_capacity(n);
            for _ in 0..n {
                filters.push(get_str(f)?);
            }
            PeerMessage::Routes { epoch, filters }
        }
        ROUTE_ADD => PeerMessage::RouteAdd { epoch: get_epoch(f)?, filter: get_str(f)? },
        ROUTE_REMOVE => PeerMessage::RouteRemove { epoch: get_epoch(f)?, filter: get_str(f)? },
        FORWARD => {
            let id = get_u64(f)?;
            let flags = get_u8(f)?;
            let (ack, direct) = (flags & 1 != 0, flags & 2 != 0);
            let expires_in_ms = get_expiry(f)?;
            let publisher = Some(get_str(f)?).filter(|p| !p.is_empty());
            let n = get_u32(f)? as usize;
            if n > f.remaining() / 8 {
                return Err(format!("{n} groups announced in {} bytes", f.remaining()));
            }
            let mut groups = Vec::with_capacity(n);
            for _ in 0..n {
                groups.push((get_str(f)?, get_str(f)?));
            }
            let n = get_u32(f)? as usize;
            if n > f.remaining() / 4 {
                return Err(format!("{n} destinations announced in {} bytes", f.remaining()));
            }
            let destinations = get_names(f, n)?;
            let redirect = match get_u8(f)? {
                0 => None,
                1 => Some(Box::new(get_redirect(f)?)),
                other => return Err(format!("redirect flag {other}")),
            };
            let publish = get_publish(f)?;
            PeerMessage::Forward(Box::new(Forward {
                id,
                ack,
                expires_in_ms,
                publisher,
                groups,
                direct,
                publish,
                destinations,
                redirect,
            }))
        }
        FORWARD_ACK => PeerMessage::ForwardAck { id: get_u64(f)? },
        RETAINED => {
            let topic = get_str(f)?;
            let stamp = get_stamp(f)?;
            let node = get_str(f)?;
            let message = match get_u8(f)? {
                0 => None,
                _ => Some((get_expiry(f)?, get_publish(f)?)),
            };
            PeerMessage::Retained(Box::new(RetainedWrite { topic, stamp, node, message }))
        }
        TAKEOVER => PeerMessage::Takeover {
            id: get_u64(f)?,
            client: get_str(f)?,
            discard: get_u8(f)? != 0,
            stamp: get_stamp(f)?,
        },
        SESSION => {
            let id = get_u64(f)?;
            let newer = match get_u8(f)? {
                0 => None,
                _ => Some(get_stamp(f)?),
            };
            let transfer = match get_u8(f)? {
                0 => None,
                _ => Some(Box::new(get_session(f)?)),
            };
            PeerMessage::Session { id, transfer, newer }
        }
        CONNECTED => {
            let n = get_u32(f)? as usize;
            // Each entry takes at least 16 bytes (a length and a stamp): a count beyond that is a lie.
            if n > f.remaining() / 16 {
                return Err(format!("{n} clients announced in {} bytes", f.remaining()));
            }
            let mut clients = Vec::with_capacity(n);
            for _ in 0..n {
                clients.push((get_str(f)?, get_stamp(f)?));
            }
            PeerMessage::Connected { clients }
        }
        WILL_GUARD => PeerMessage::WillGuard(Box::new(WillGuard {
            client: get_str(f)?,
            username: match get_u8(f)? {
                0 => None,
                1 => Some(get_str(f)?),
                other => return Err(format!("user name flag {other}")),
            },
            peer: match get_str(f)? {
                ip if ip.is_empty() => None,
                ip => Some(ip.parse().map_err(|_| format!("a will's peer address {ip:?}"))?),
            },
            delay_secs: get_u32(f)?,
            expiry_secs: get_u32(f)?,
            publish: get_publish(f)?,
        })),
        WILL_RELEASE => PeerMessage::WillRelease { client: get_str(f)? },
        RESEND_ROUTES => PeerMessage::ResendRoutes,
        other => return Err(format!("unknown message type {other}")),
    })
}

fn put_stamp(out: &mut BytesMut, stamp: Stamp) {
    out.put_u64(stamp.wall_ms);
    out.put_u32(stamp.counter);
}

fn get_stamp(f: &mut Bytes) -> Result<Stamp, String> {
    Ok(Stamp { wall_ms: get_u64(f)?, counter: get_u32(f)? })
}

/// A PUBLISH as the last field of a message: its QoS, then the MQTT 5 packet
/// (encoded at QoS 0, so that it needs no packet identifier).
fn put_publish(out: &mut BytesMut, publish: &Publish) -> Result<(), String> {
    let mut bare = publish.clone();
    bare.packet_id = None;
    bare.qos = mqtt_codec::QoS::AtMostOnce;
    bare.dup = false;
    out.put_u8(publish.qos as u8);
    mqtt_codec::encode(&Packet::Publish(bare), ProtocolVersion::V5, out)
        .map(drop)
        .map_err(|e| format!("encoding a PUBLISH for a peer: {e:?}"))
}

fn get_publish(f: &mut Bytes) -> Result<Publish, String> {
    let qos = mqtt_codec::QoS::from_u8(get_u8(f)?).ok_or("a PUBLISH with QoS 3")?;
    let mut packet = BytesMut::from(&f[..]);
    f.advance(f.remaining());
    let mut decoder = Decoder::with_version(ProtocolVersion::V5, u32::MAX);
    let mut publish = match decoder.decode(&mut packet) {
        Ok(Some(Packet::Publish(p))) if packet.is_empty() => p,
        Ok(_) => return Err("a message must end with exactly one PUBLISH".into()),
        Err(e) => return Err(format!("PUBLISH from a peer: {e:?}")),
    };
    publish.qos = qos;
    Ok(publish)
}

fn put_session(out: &mut BytesMut, s: &WireSession) -> Result<(), String> {
    put_str(out, &s.client_id);
    out.put_u32(s.expiry_secs);
    out.put_u32(len32(s.subscriptions.len())?);
    for (filter, options, identifier) in &s.subscriptions {
        put_str(out, filter);
        out.put_u8(*options);
        put_opt_u32(out, *identifier);
    }
    out.put_u32(len32(s.inflight.len())?);
    for (packet_id, released, delivery) in &s.inflight {
        out.put_u16(*packet_id);
        out.put_u8(u8::from(*released));
        put_delivery(out, delivery)?;
    }
    out.put_u32(len32(s.queue.len())?);
    for delivery in &s.queue {
        put_delivery(out, delivery)?;
    }
    out.put_u32(len32(s.awaiting_rel.len())?);
    for id in &s.awaiting_rel {
        out.put_u16(*id);
    }
    Ok(())
}

fn get_session(f: &mut Bytes) -> Result<WireSession, String> {
    let client_id = get_str(f)?;
    let expiry_secs = get_u32(f)?;
    let n = get_count(f, 5)?;
    let mut subscriptions = Vec::with_capacity(n);
    for _ in 0..n {
        subscriptions.push((get_str(f)?, get_u8(f)?, get_opt_u32(f)?));
    }
    let n = get_count(f, 8)?;
    let mut inflight = Vec::with_capacity(n);
    for _ in 0..n {
        inflight.push((get_u16(f)?, get_u8(f)? != 0, get_delivery(f)?));
    }
    let n = get_count(f, 8)?;
    let mut queue = Vec::with_capacity(n);
    for _ in 0..n {
        queue.push(get_delivery(f)?);
    }
    let n = get_count(f, 2)?;
    let mut awaiting_rel = Vec::with_capacity(n);
    for _ in 0..n {
        awaiting_rel.push(get_u16(f)?);
    }
    Ok(WireSession { client_id, expiry_secs, subscriptions, inflight, queue, awaiting_rel })
}

fn put_delivery(out: &mut BytesMut, d: &WireDelivery) -> Result<(), String> {
    out.put_u8(d.qos);
    out.put_u8(u8::from(d.retain));
    out.put_u32(len32(d.subscription_ids.len())?);
    for id in &d.subscription_ids {
        out.put_u32(*id);
    }
    match &d.shared {
        None => out.put_u8(0),
        Some((group, filter)) => {
            out.put_u8(1);
            put_str(out, group);
            put_str(out, filter);
        }
    }
    put_expiry(out, d.expires_in_ms);
    put_str(out, d.publisher.as_deref().unwrap_or(""));
    // Length-prefixed: a delivery is not the last field of its message.
    let at = out.len();
    out.put_u32(0);
    put_publish(out, &d.publish)?;
    let len = len32(out.len() - at - 4)?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn get_delivery(f: &mut Bytes) -> Result<WireDelivery, String> {
    let qos = get_u8(f)?;
    let retain = get_u8(f)? != 0;
    let n = get_count(f, 4)?;
    let mut subscription_ids = Vec::with_capacity(n);
    for _ in 0..n {
        subscription_ids.push(get_u32(f)?);
    }
    let shared = match get_u8(f)? {
        0 => None,
        _ => Some((get_str(f)?, get_str(f)?)),
    };
    let expires_in_ms = get_expiry(f)?;
    let publisher = Some(get_str(f)?).filter(|p| !p.is_empty());
    let len = get_u32(f)? as usize;
    need(f, len)?;
    let mut packet = f.split_to(len);
    let publish = get_publish(&mut packet)?;
    Ok(WireDelivery { qos, retain, subscription_ids, shared, expires_in_ms, publisher, publish })
}

/// A list length, refused when the bytes left cannot hold that many items of `min_item` bytes.
fn get_count(f: &mut Bytes, min_item: usize) -> Result<usize, String> {
    let n = get_u32(f)? as usize;
    if n > f.remaining() / min_item {
        return Err(format!("{n} items announced in {} bytes", f.remaining()));
    }
    Ok(n)
}

fn put_opt_u32(out: &mut BytesMut, v: Option<u32>) {
    match v {
        Some(v) => {
            out.put_u8(1);
            out.put_u32(v);
        }
        None => out.put_u8(0),
    }
}

fn get_opt_u32(f: &mut Bytes) -> Result<Option<u32>, String> {
    Ok(match get_u8(f)? {
        0 => None,
        _ => Some(get_u32(f)?),
    })
}

fn put_expiry(out: &mut BytesMut, expires_in_ms: Option<u64>) {
    match expires_in_ms {
        Some(ms) => {
            out.put_u8(1);
            out.put_u64(ms);
        }
        None => out.put_u8(0),
    }
}

fn get_expiry(f: &mut Bytes) -> Result<Option<u64>, String> {
    Ok(match get_u8(f)? {
        0 => None,
        _ => Some(get_u64(f)?),
    })
}

fn len32(n: usize) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("{n} does not fit a frame"))
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u32(s.len() as u32);
    out.put_slice(s.as_bytes());
}

fn put_epoch(out: &mut BytesMut, e: Epoch) {
    out.put_u64(e.incarnation);
    out.put_u64(e.generation);
}

fn need(f: &Bytes, n: usize) -> Result<(), String> {
    if f.remaining() < n { Err(format!("message cut short: {n} bytes needed, {} left", f.remaining())) } else { Ok(()) }
}

fn get_u8(f: &mut Bytes) -> Result<u8, String> {
    need(f, 1)?;
    Ok(f.get_u8())
}

fn get_u16(f: &mut Bytes) -> Result<u16, String> {
    need(f, 2)?;
    Ok(f.get_u16())
}

fn get_redirect(f: &mut Bytes) -> Result<Redirect, String> {
    Ok(Redirect { client: get_str(f)?, origin: get_str(f)?, origin_incarnation: get_u64(f)?, origin_id: get_u64(f)? })
}

fn get_u32(f: &mut Bytes) -> Result<u32, String> {
    need(f, 4)?;
    Ok(f.get_u32())
}

fn get_u64(f: &mut Bytes) -> Result<u64, String> {
    need(f, 8)?;
    Ok(f.get_u64())
}

fn get_epoch(f: &mut Bytes) -> Result<Epoch, String> {
    Ok(Epoch { incarnation: get_u64(f)?, generation: get_u64(f)? })
}

/// `n` strings, shared by every holder of the list.
fn get_names(f: &mut Bytes, n: usize) -> Result<Arc<[NodeName]>, String> {
    (0..n).map(|_| get_str(f)).collect()
}

fn get_str(f: &mut Bytes) -> Result<ByteString, String> {
    let n = get_u32(f)? as usize;
    need(f, n)?;
    ByteString::try_from(f.split_to(n)).map_err(|_| "a string is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use mqtt_codec::{PublishProperties, QoS};
    use proptest::prelude::*;

    use super::*;

    fn forward() -> PeerMessage {
        PeerMessage::Forward(Box::new(Forward {
            id: 42,
            ack: true,
            expires_in_ms: Some(1500),
            publisher: Some("pub-1".into()),
            groups: vec![("g".into(), "t/+".into())],
            direct: true,
            publish: Publish {
                dup: false,
                qos: QoS::ExactlyOnce,
                retain: true,
                topic: "t/a".into(),
                packet_id: None,
                payload: Bytes::from_static(b"hello"),
                properties: PublishProperties {
                    content_type: Some("text/plain".into()),
                    user_properties: vec![("k".into(), "v".into())],
                    ..PublishProperties::default()
                },
            },
            destinations: Arc::from(["n2".into(), "n3".into()]),
            redirect: Some(Box::new(Redirect {
                client: "c".into(),
                origin: "n1".into(),
                origin_incarnation: 5,
                origin_id: 41,
            })),
        }))
    }

    fn delivery() -> WireDelivery {
        let PeerMessage::Forward(f) = forward() else { unreachable!() };
        WireDelivery {
            qos: 1,
            retain: false,
            subscription_ids: vec![1, 2],
            shared: Some(("g".into(), "t/+".into())),
            expires_in_ms: Some(10),
            publisher: Some("p".into()),
            publish: f.publish,
        }
    }

    fn every_kind() -> Vec<PeerMessage> {
        let epoch = Epoch { incarnation: 9, generation: 3 };
        vec![
            PeerMessage::Hello {
                protocol: PROTOCOL_VERSION,
                cluster: "mqtt".into(),
                node: "n1".into(),
                incarnation: 7,
            },
            PeerMessage::Routes { epoch, filters: vec!["a/#".into(), "$share/g/b".into()] },
            PeerMessage::Routes { epoch, filters: Vec::new() },
            PeerMessage::RouteAdd { epoch, filter: "x/+".into() },
            PeerMessage::RouteRemove { epoch, filter: "x/+".into() },
            forward(),
            PeerMessage::ForwardAck { id: u64::MAX },
            PeerMessage::Takeover {
                id: 3,
                client: "c1".into(),
                discard: false,
                stamp: Stamp { wall_ms: 9, counter: 1 },
            },
            PeerMessage::Connected { clients: vec![] },
            PeerMessage::Connected {
                clients: vec![("c1".into(), Stamp { wall_ms: 1, counter: 0 }), ("c2".into(), Stamp::default())],
            },
            PeerMessage::WillRelease { client: "c1".into() },
            PeerMessage::ResendRoutes,
            PeerMessage::WillGuard(Box::new(WillGuard {
                client: "c1".into(),
                username: Some("alice".into()),
                peer: Some("10.1.2.3".parse().expect("an address")),
                delay_secs: 5,
                expiry_secs: 600,
                publish: match forward() {
                    PeerMessage::Forward(f) => f.publish,
                    _ => unreachable!(),
                },
            })),
            PeerMessage::Session { id: 3, transfer: None, newer: None },
            PeerMessage::Session { id: 4, transfer: None, newer: Some(Stamp { wall_ms: 5, counter: 2 }) },
            PeerMessage::Session {
                id: 4,
                newer: None,
                transfer: Some(Box::new(WireSession {
                    client_id: "c1".into(),
                    expiry_secs: 300,
                    subscriptions: vec![("a/+".into(), 0b10_1101, Some(7)), ("$share/g/b".into(), 1, None)],
                    inflight: vec![(9, true, delivery()), (10, false, delivery())],
                    queue: vec![delivery()],
                    awaiting_rel: vec![1, 65535],
                })),
            },
            PeerMessage::Retained(Box::new(RetainedWrite {
                topic: "r/1".into(),
                stamp: Stamp { wall_ms: 1_700_000_000_000, counter: 3 },
                node: "n2".into(),
                message: None,
            })),
            PeerMessage::Retained(Box::new(RetainedWrite {
                topic: "r/2".into(),
                stamp: Stamp { wall_ms: 5, counter: 0 },
                node: "n1".into(),
                message: match forward() {
                    PeerMessage::Forward(f) => Some((Some(9), f.publish)),
                    _ => None,
                },
            })),
        ]
    }

    #[test]
    fn every_message_round_trips_through_one_stream() {
        let mut stream = BytesMut::new();
        for m in every_kind() {
            encode(&m, &mut stream).expect("encodes");
        }
        for m in every_kind() {
            assert_eq!(decode(&mut stream).expect("decodes"), Some(m));
        }
        assert_eq!(decode(&mut stream).expect("empty"), None);
    }

    #[test]
    fn a_frame_arriving_byte_by_byte_decodes_once_whole() {
        let mut whole = BytesMut::new();
        encode(&forward(), &mut whole).expect("encodes");
        let mut buf = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            buf.put_u8(*byte);
            let got = decode(&mut buf).expect("no error on a prefix");
            assert_eq!(got.is_some(), i == whole.len() - 1);
        }
    }

    #[test]
    fn oversized_and_lying_frames_are_errors() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(decode(&mut buf).is_err());
        // A Routes message announcing a billion filters in a few bytes.
        let mut buf = BytesMut::new();
        buf.put_u32(21);
        buf.put_u8(ROUTES);
        buf.put_u64(1);
        buf.put_u64(1);
        buf.put_u32(1_000_000_000);
        assert!(decode(&mut buf).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut buf = BytesMut::from(&bytes[..]);
            for _ in 0..4 {
                match decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }

        #[test]
        fn truncated_or_corrupted_frames_never_panic(cut in 0usize..120, flip in 0usize..120, bit in 0u8..8) {
            let mut whole = BytesMut::new();
            encode(&forward(), &mut whole).expect("encodes");
            let mut bytes = whole.to_vec();
            if flip < bytes.len() {
                bytes[flip] ^= 1 << bit;
            }
            bytes.truncate(cut.max(4).min(bytes.len()));
            let _ = decode(&mut BytesMut::from(&bytes[..]));
        }
    }
}
