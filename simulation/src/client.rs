//! The simulation's MQTT 5 clients, on `mqtt-codec` over turmoil TCP: a
//! subscriber (one subscription, persistent or clean session, QoS 1/2
//! receiver flows with QoS 2 duplicate suppression; it may move to another
//! node while its old connection stays open) and a publisher (numbered
//! messages, a window of unacknowledged ones, optionally retained). Both
//! reconnect to their node until the run ends and record what they see in
//! the history. A subscriber may carry a will on every connection and drop
//! connections without DISCONNECT; `watcher` records the wills published.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use mqtt_codec::{
    ConnAck, Connect, ConnectProperties, Decoder, Packet, ProtocolVersion, PubResponse, Publish, PublishProperties,
    QoS, ReasonCode, Subscribe, SubscribeProperties, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::history::{ClientIx, Ending, Event, History, Millis, NodeIx, SubId, sim_now};
use crate::scenario::{PublisherSpec, SubscriberSpec};

mod watcher;

pub use watcher::watcher;

/// The MQTT port of every node.
pub const MQTT_PORT: u16 = 1883;
/// How long a client waits before reconnecting.
const RECONNECT_MS: u64 = 300;
/// Keep alive asked of the broker; the client pings at half of it.
const KEEP_ALIVE_SECS: u16 = 6;
/// Silence after which a client gives its connection up (1.5 x keep alive).
const SILENCE_MAX_MS: u64 = 9_000;
/// How long a CONNECT may wait for its CONNACK.
const CONNACK_WAIT_MS: u64 = 5_000;
const PACKET_SIZE_MAX: u32 = 1 << 20;

/// One MQTT connection.
struct Conn {
    stream: turmoil::net::TcpStream,
    buf: BytesMut,
    decoder: Decoder,
    out: BytesMut,
}

impl Conn {
    async fn open(addr: SocketAddr, connect: Connect) -> io::Result<(Conn, ConnAck)> {
        let stream = turmoil::net::TcpStream::connect(addr).await?;
        let mut conn = Conn {
            stream,
            buf: BytesMut::with_capacity(4096),
            decoder: Decoder::with_version(ProtocolVersion::V5, PACKET_SIZE_MAX),
            out: BytesMut::new(),
        };
        conn.send(&Packet::Connect(Box::new(connect))).await?;
        let wait = tokio::time::timeout(Duration::from_millis(CONNACK_WAIT_MS), conn.recv()).await;
        match wait {
            Ok(Ok(Packet::ConnAck(ack))) if ack.reason_code == ReasonCode::SUCCESS => Ok((conn, ack)),
            Ok(Ok(other)) => Err(io::Error::other(format!("refused: {other:?}"))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no CONNACK")),
        }
    }

    async fn send(&mut self, packet: &Packet) -> io::Result<()> {
        mqtt_codec::encode(packet, ProtocolVersion::V5, &mut self.out)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// The next packet. Cancel safe: bytes read stay in the buffer.
    async fn recv(&mut self) -> io::Result<Packet> {
        loop {
            if let Some(packet) =
                self.decoder.decode(&mut self.buf).map_err(|e| io::Error::other(format!("decode: {e:?}")))?
            {
                return Ok(packet);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed by the broker"));
            }
        }
    }
}

fn connect_packet(client_id: &str, clean_start: bool, session_expiry: u32, receive_maximum: u16) -> Connect {
    Connect {
        protocol: ProtocolVersion::V5,
        clean_start,
        keep_alive: KEEP_ALIVE_SECS,
        client_id: ByteString::from(client_id.to_string()),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties {
            session_expiry_interval: (session_expiry > 0).then_some(session_expiry),
            receive_maximum: Some(receive_maximum),
            ..ConnectProperties::default()
        },
    }
}

fn qos_of(level: u8) -> QoS {
    QoS::from_u8(level).unwrap_or(QoS::AtLeastOnce)
}

fn pid(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

/// What the clients share: where the nodes are and the history.
#[derive(Debug, Clone)]
pub struct ClientCtx {
    pub history: History,
    /// The MQTT address of each node.
    pub nodes: Vec<SocketAddr>,
    /// When clients stop (the harness stops the run at or after it).
    pub end: Millis,
    /// A client staying away (`SubscriberSpec::away`) is back by then, so
    /// that what its session held reaches it before the run ends.
    pub back_by: Millis,
}

/// A message payload: `publisher:seq`.
fn payload(publisher: ClientIx, seq: u64) -> Bytes {
    Bytes::from(format!("{publisher}:{seq}"))
}

fn parse_payload(payload: &[u8]) -> Option<(ClientIx, u64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (p, s) = text.split_once(':')?;
    Some((p.parse().ok()?, s.parse().ok()?))
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Runs a subscriber until the end of the run.
pub async fn subscriber(ctx: ClientCtx, client: ClientIx, spec: SubscriberSpec) {
    let h = &ctx.history;
    let id = format!("c{client}");
    sleep_ms(spec.start).await;
    let mut epoch = 0u32;
    // The node it connects to: `spec.node`, then each move's.
    let mut node = spec.node;
    let mut moves = spec.moves.clone().into_iter().peekable();
    // The subscription of the current session, once its SUBACK arrived.
    let mut subscribed = false;
    // QoS 2 packet ids received and not yet released (client session state).
    let mut awaiting_rel: BTreeSet<u16> = BTreeSet::new();
    // Scheduled voluntary disconnects (churn), in order.
    let mut churn = spec.churn.clone().into_iter().peekable();
    // Scheduled drops without DISCONNECT, in order.
    let mut drops = spec.drops.clone().into_iter().peekable();
    // Connections that got their CONNACK so far (each will names its connection).
    let mut opened = 0u32;
    while sim_now() < ctx.end {
        let clean = !spec.persistent;
        let expiry = if spec.persistent { 3600 } else { 0 };
        let mut connect = connect_packet(&id, clean, expiry, spec.receive_maximum);
        connect.will = spec.will_delay.map(|delay| watcher::will(client, opened + 1, delay));
        let (mut conn, ack) = match Conn::open(ctx.nodes[node], connect).await {
            Ok(c) => c,
            Err(_) => {
                sleep_ms(RECONNECT_MS).await;
                continue;
            }
        };
        opened += 1;
        h.now(Event::Connected { client, node, session_present: ack.session_present });
        if let Some(delay) = spec.will_delay {
            let will_delay = delay.min(ack.properties.session_expiry_interval.unwrap_or(expiry));
            h.now(Event::Opened { client, conn: opened, node, will_delay });
        }
        if !ack.session_present || !subscribed {
            if subscribed {
                h.now(Event::SessionLost { sub: SubId { client, epoch } });
            }
            subscribed = false;
            awaiting_rel.clear();
            epoch += 1;
            let options = SubscriptionOptions { qos: qos_of(spec.qos), ..SubscriptionOptions::default() };
            let mut filters = vec![(ByteString::from(spec.filter.clone()), options)];
            filters.extend((0..spec.extra_filters).map(|i| (ByteString::from(extra_filter(client, i)), options)));
            let subscribe = Subscribe {
                packet_id: pid(1),
                filters,
                properties: SubscribeProperties { subscription_identifier: Some(epoch), user_properties: Vec::new() },
            };
            if conn.send(&Packet::Subscribe(subscribe)).await.is_err() {
                if spec.will_delay.is_some() {
                    h.now(Event::Ended { client, conn: opened, how: Ending::Closed });
                }
                continue;
            }
        }
        let mut last_heard = sim_now();
        let why = loop {
            let next_ping = tokio::time::sleep(Duration::from_millis(u64::from(KEEP_ALIVE_SECS) * 500));
            let leave_at = churn.peek().copied().unwrap_or(Millis::MAX);
            let leave = tokio::time::sleep(Duration::from_millis(leave_at.saturating_sub(sim_now())));
            let drop_at = drops.peek().copied().unwrap_or(Millis::MAX);
            let dropping = tokio::time::sleep(Duration::from_millis(drop_at.saturating_sub(sim_now())));
            let move_at = moves.peek().map_or(Millis::MAX, |m| m.0);
            let moving = tokio::time::sleep(Duration::from_millis(move_at.saturating_sub(sim_now())));
            let packet = tokio::select! {
                biased;
                packet = conn.recv() => packet,
                () = moving => break None,
                () = next_ping => {
                    if sim_now().saturating_sub(last_heard) > SILENCE_MAX_MS {
                        break Some((Ending::Dropped, "silent broker".to_string()));
                    }
                    if conn.send(&Packet::PingReq).await.is_err() {
                        break Some((Ending::Closed, "ping failed".to_string()));
                    }
                    continue;
                }
                () = leave => {
                    churn.next();
                    break match conn.send(&Packet::Disconnect(mqtt_codec::Disconnect::default())).await {
                        Ok(()) => Some((Ending::Disconnect, "churn: client disconnects".to_string())),
                        Err(e) => Some((Ending::Closed, format!("churn: DISCONNECT failed: {e}"))),
                    };
                }
                () = dropping => {
                    drops.next();
                    break Some((Ending::Dropped, "drop: client closes without DISCONNECT".to_string()));
                }
            };
            let packet = match packet {
                Ok(p) => p,
                Err(e) => break Some((Ending::Closed, e.to_string())),
            };
            last_heard = sim_now();
            let reply = match packet {
                Packet::SubAck(ack) => {
                    let refused = ack.reason_codes.iter().find(|code| code.0 >= 0x80);
                    match (ack.reason_codes.first(), refused) {
                        (Some(code), None) if ack.reason_codes.len() == 1 + spec.extra_filters => {
                            subscribed = true;
                            let sub = SubId { client, epoch };
                            h.now(Event::Subscribed { sub, node, filter: spec.filter.clone(), qos: code.0 });
                        }
                        (first, refused) => h.now(Event::Anomaly {
                            what: format!(
                                "c{client}: SUBACK of {} codes, first {first:?}, refused {refused:?}",
                                ack.reason_codes.len()
                            ),
                        }),
                    }
                    None
                }
                Packet::Publish(p) => on_publish(h, client, &mut awaiting_rel, p),
                Packet::PubRel(rel) => {
                    awaiting_rel.remove(&rel.packet_id.get());
                    Some(Packet::PubComp(PubResponse::new(rel.packet_id)))
                }
                Packet::Disconnect(d) => {
                    let how = if d.reason_code == ReasonCode::SESSION_TAKEN_OVER {
                        Ending::TakenOver
                    } else {
                        Ending::Closed
                    };
                    break Some((how, format!("DISCONNECT {:?}", d.reason_code)));
                }
                _ => None,
            };
            if let Some(reply) = reply
                && let Err(e) = conn.send(&reply).await
            {
                break Some((Ending::Closed, e.to_string()));
            }
        };
        let ending = why.as_ref().map_or(Ending::Moved, |(how, _)| *how);
        if spec.will_delay.is_some() {
            h.now(Event::Ended { client, conn: opened, how: ending });
        }
        let Some((_, why)) = why else {
            // A move: the old connection stays open (served by `linger`
            // until the broker closes it), the new one subscribes anew.
            let Some((_, to)) = moves.next() else { continue };
            if subscribed {
                h.now(Event::Moved { sub: SubId { client, epoch }, node: to });
            }
            subscribed = false;
            drop(tokio::task::spawn_local(linger(h.clone(), client, node, conn, awaiting_rel.clone())));
            node = to;
            continue;
        };
        h.now(Event::Disconnected { client, why });
        if !spec.persistent && subscribed {
            // A clean session ends with its connection.
            h.now(Event::SessionLost { sub: SubId { client, epoch } });
            subscribed = false;
        }
        let pause = if ending == Ending::Disconnect { None } else { spec.away };
        // Dropping the stream closes it without DISCONNECT.
        drop(conn);
        let pause = pause.map_or(RECONNECT_MS, |away| away.min(ctx.back_by.saturating_sub(sim_now())));
        sleep_ms(pause.max(RECONNECT_MS)).await;
    }
}

/// Serves a connection a subscriber moved away from: acknowledges what
/// arrives on it (recorded as deliveries: it is the old session's) and pings,
/// until the broker closes it (a takeover answers with DISCONNECT 0x8E).
async fn linger(h: History, client: ClientIx, node: NodeIx, mut conn: Conn, mut awaiting_rel: BTreeSet<u16>) {
    let mut last_heard = sim_now();
    let why = loop {
        let reply = match recv_keeping_alive(&mut conn, &mut last_heard).await {
            Err(why) => break why,
            Ok(Packet::Publish(p)) => on_publish(&h, client, &mut awaiting_rel, p),
            Ok(Packet::PubRel(rel)) => {
                awaiting_rel.remove(&rel.packet_id.get());
                Some(Packet::PubComp(PubResponse::new(rel.packet_id)))
            }
            Ok(Packet::Disconnect(d)) => break format!("DISCONNECT {:?}", d.reason_code),
            Ok(_) => None,
        };
        if let Some(reply) = reply
            && let Err(e) = conn.send(&reply).await
        {
            break e.to_string();
        }
    };
    h.now(Event::Disconnected { client, why: format!("old connection to n{}: {why}", node + 1) });
}

/// The next packet from the broker, pinging it while it is quiet. An error
/// says why the connection is over: a read error, a failed ping, or a broker
/// silent for longer than `SILENCE_MAX_MS`.
async fn recv_keeping_alive(conn: &mut Conn, last_heard: &mut Millis) -> Result<Packet, String> {
    loop {
        let next_ping = tokio::time::sleep(Duration::from_millis(u64::from(KEEP_ALIVE_SECS) * 500));
        tokio::select! {
            biased;
            packet = conn.recv() => {
                *last_heard = sim_now();
                return packet.map_err(|e| e.to_string());
            }
            () = next_ping => {
                if sim_now().saturating_sub(*last_heard) > SILENCE_MAX_MS {
                    return Err("silent broker".to_string());
                }
                if conn.send(&Packet::PingReq).await.is_err() {
                    return Err("ping failed".to_string());
                }
            }
        }
    }
}

/// The `i`-th of a subscriber's extra filters: nobody publishes there.
fn extra_filter(client: ClientIx, i: usize) -> String {
    if i % 3 == 2 { format!("x/c{client}/{i}/+") } else { format!("x/c{client}/{i}") }
}

/// Records a delivery and returns the acknowledgement to send.
fn on_publish(h: &History, client: ClientIx, awaiting_rel: &mut BTreeSet<u16>, p: Publish) -> Option<Packet> {
    let Some(epoch) = p.properties.subscription_identifiers.first().copied() else {
        h.now(Event::Anomaly { what: format!("c{client}: a delivery without subscription identifier on {}", p.topic) });
        return None;
    };
    let sub = SubId { client, epoch };
    let Some((publisher, seq)) = parse_payload(&p.payload) else {
        h.now(Event::Anomaly { what: format!("c{client}: a payload not from a publisher on {}", p.topic) });
        return None;
    };
    let delivered = Event::Delivered { sub, publisher, seq, topic: p.topic.to_string(), qos: p.qos as u8, dup: p.dup };
    match (p.qos, p.packet_id) {
        (QoS::AtMostOnce, _) => {
            h.now(delivered);
            None
        }
        (QoS::AtLeastOnce, Some(id)) => {
            h.now(delivered);
            Some(Packet::PubAck(PubResponse::new(id)))
        }
        (QoS::ExactlyOnce, Some(id)) => {
            // Method B of the spec (4.3.3): the packet id is held until PUBREL,
            // and a PUBLISH with a held id is the same message again.
            if awaiting_rel.insert(id.get()) {
                h.now(delivered);
            }
            Some(Packet::PubRec(PubResponse::new(id)))
        }
        _ => {
            h.now(Event::Anomaly { what: format!("c{client}: QoS {:?} without packet id", p.qos) });
            None
        }
    }
}

/// Runs a publisher: numbered messages on its topics at its interval, at
/// most `window` unacknowledged, until `spec.stop`; then it waits for the
/// last acknowledgements. Messages unacknowledged when a connection breaks
/// are abandoned (clean sessions): the next connection goes on with new numbers.
pub async fn publisher(ctx: ClientCtx, client: ClientIx, spec: PublisherSpec) {
    let h = &ctx.history;
    let id = format!("c{client}");
    sleep_ms(spec.start).await;
    let mut seq = 0u64;
    let mut next_packet_id: u16 = 0;
    while sim_now() < ctx.end {
        let connect = connect_packet(&id, true, 0, 64);
        let (mut conn, _) = match Conn::open(ctx.nodes[spec.node], connect).await {
            Ok(c) => c,
            Err(_) => {
                sleep_ms(RECONNECT_MS).await;
                continue;
            }
        };
        h.now(Event::Connected { client, node: spec.node, session_present: false });
        // Unacknowledged messages by packet id: (seq, PUBREC seen).
        let mut inflight: BTreeMap<u16, (u64, bool)> = BTreeMap::new();
        let mut next_publish = sim_now();
        let mut last_heard = sim_now();
        let mut last_sent = sim_now();
        let why = loop {
            let now = sim_now();
            let may_publish = now < spec.stop && inflight.len() < usize::from(spec.window);
            let publish_in = if may_publish { next_publish.saturating_sub(now) } else { 3_600_000 };
            let ping_in = (last_sent + u64::from(KEEP_ALIVE_SECS) * 500).saturating_sub(now);
            let timer = tokio::time::sleep(Duration::from_millis(publish_in.min(ping_in).max(1)));
            let packet = tokio::select! {
                biased;
                packet = conn.recv() => Some(packet),
                () = timer => None,
            };
            let now = sim_now();
            let reply = match packet {
                Some(Err(e)) => break e.to_string(),
                Some(Ok(packet)) => {
                    last_heard = now;
                    on_ack(h, client, &mut inflight, packet)
                }
                None if now.saturating_sub(last_heard) > SILENCE_MAX_MS => break "silent broker".to_string(),
                None if may_publish && now >= next_publish => {
                    seq += 1;
                    next_packet_id = next_packet_id.wrapping_add(1).max(1);
                    while inflight.contains_key(&next_packet_id) {
                        next_packet_id = next_packet_id.wrapping_add(1).max(1);
                    }
                    let topic = spec.topics[usize::try_from(seq).unwrap_or(0) % spec.topics.len()].clone();
                    inflight.insert(next_packet_id, (seq, false));
                    next_publish = now + spec.interval;
                    h.now(Event::Sent { publisher: client, seq, topic: topic.clone(), qos: spec.qos, node: spec.node });
                    // A retained publish with an empty payload clears the topic's retained message.
                    let clears = spec.retain && seq.is_multiple_of(4);
                    Some(Packet::Publish(Publish {
                        dup: false,
                        qos: qos_of(spec.qos),
                        retain: spec.retain,
                        topic: ByteString::from(topic),
                        packet_id: Some(pid(next_packet_id)),
                        payload: if clears { Bytes::new() } else { payload(client, seq) },
                        properties: PublishProperties::default(),
                    }))
                }
                None if now >= last_sent + u64::from(KEEP_ALIVE_SECS) * 500 => Some(Packet::PingReq),
                None => None,
            };
            if let Some(reply) = reply {
                last_sent = now;
                if let Err(e) = conn.send(&reply).await {
                    break e.to_string();
                }
            }
        };
        h.now(Event::Disconnected { client, why });
        sleep_ms(RECONNECT_MS).await;
    }
}

fn on_ack(h: &History, client: ClientIx, inflight: &mut BTreeMap<u16, (u64, bool)>, packet: Packet) -> Option<Packet> {
    match packet {
        Packet::PubAck(ack) => {
            if let Some((seq, _)) = inflight.remove(&ack.packet_id.get())
                && ack.reason_code.0 < 0x80
            {
                h.now(Event::Acked { publisher: client, seq });
            }
            None
        }
        Packet::PubRec(rec) => {
            let entry = inflight.get_mut(&rec.packet_id.get())?;
            if rec.reason_code.0 >= 0x80 {
                inflight.remove(&rec.packet_id.get());
                return None;
            }
            if !entry.1 {
                entry.1 = true;
                h.now(Event::Acked { publisher: client, seq: entry.0 });
            }
            Some(Packet::PubRel(PubResponse::new(rec.packet_id)))
        }
        Packet::PubComp(comp) => {
            inflight.remove(&comp.packet_id.get());
            None
        }
        _ => None,
    }
}

/// A node's MQTT address.
pub fn mqtt_addr(ip: std::net::IpAddr) -> SocketAddr {
    SocketAddr::new(ip, MQTT_PORT)
}

/// Which node a client is on (for reports).
pub fn node_of(spec_node: NodeIx) -> String {
    format!("n{}", spec_node + 1)
}
