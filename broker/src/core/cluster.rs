//! The core's side of the cluster (ALGORITHM.md, "Forwarding"): which nodes
//! a publish goes to, the acknowledgements sync forwarding holds a
//! publisher's PUBACK/PUBREC for, and publishes forwarded by other nodes.
//! The shell (`crate::cluster`) carries the messages; nothing here does IO.

use std::sync::Arc;

use crate::hash::{AHashMap, AHashSet};
use bytestring::ByteString;
use mqtt_codec::{Packet, Publish, QoS, Will};

use super::message::Message;
use super::redirect::{MovedSessions, REDIRECT_WINDOW_DEFAULT_MS};
use super::router::{ClientId, RouteChange, SharedKey};
use super::{Broker, ConnId, Timer};
use crate::cluster::routes::{NodeName, RemoteRoutes};
use crate::cluster::wire::{Forward, Redirect};
use crate::config::{ForwardMode, SharedStrategy};
use crate::seam::Millis;
use rand::Rng;

/// What the cluster did, for status output and metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterCounters {
    /// Forwards sent (one per message and destination node).
    pub forwarded: u64,
    /// Forwards received from other nodes.
    pub forwards_received: u64,
    /// Publisher acknowledgements released because a node did not answer in time.
    pub forward_timeouts: u64,
    /// Publisher acknowledgements released because a node went down.
    pub forward_released_node_down: u64,
    /// Retained writes of other nodes applied here.
    pub retained_applied: u64,
    /// Retained writes of other nodes that lost to a newer one held here.
    pub retained_superseded: u64,
    /// Wills this node published because the node holding them died.
    pub wills_published_for_dead_nodes: u64,
    /// Forwards passed on to the node a session had moved to.
    pub redirects_sent: u64,
    /// Passed-on forwards delivered here (the session had not got them directly).
    pub redirects_delivered: u64,
    /// Shared-group messages that waited for a departed node, served by another member.
    pub group_forwards_rerouted: u64,
}

/// A hybrid logical clock reading (wall-clock milliseconds, then a counter):
/// the order of retained writes across the cluster. Equal stamps are ordered
/// by node name, so every node picks the same winner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    pub wall_ms: u64,
    pub counter: u32,
}

/// A retained message set (`message` present) or cleared on some node.
#[derive(Debug, Clone)]
pub struct RetainedUpdate {
    pub topic: ByteString,
    pub stamp: Stamp,
    /// The node that made the write.
    pub node: NodeName,
    pub message: Option<Arc<Message>>,
}

/// A change of a will this node holds, for the peer that guards it
/// (ALGORITHM.md, "Wills"): published by that peer if this node dies first.
#[derive(Debug, Clone)]
pub enum WillEvent {
    /// A connection of `client` attached with a will.
    /// `who` set it: its user name and address, for the ACL where it is published.
    Guard { client: ClientId, who: Arc<crate::authz::ClientInfo>, will: Box<Will>, delay_secs: u32, expiry_secs: u32 },
    /// The will is gone here: published, cancelled, or moved with its session.
    Release { client: ClientId },
}

/// A publisher's acknowledgement held until matched nodes accepted the message.
#[derive(Debug)]
struct HeldAck {
    conn: ConnId,
    client: ClientId,
    response: Packet,
    waiting: Vec<NodeName>,
}

#[derive(Debug)]
pub struct ClusterCore {
    node: NodeName,
    pub remote: RemoteRoutes,
    mode: ForwardMode,
    forward_timeout_ms: Millis,
    next_forward_id: u64,
    outgoing: Vec<(NodeName, Box<Forward>)>,
    /// The destinations of the last message forwarded to other nodes: the
    /// next one to the same nodes shares the list instead of allocating one.
    last_destinations: Arc<[NodeName]>,
    held: AHashMap<u64, HeldAck>,
    /// Per shared group (group, filter): the round-robin turn over its nodes,
    /// and the node a sticky group keeps while it has members.
    group_turns: AHashMap<(ByteString, ByteString), usize>,
    sticky_nodes: AHashMap<(ByteString, ByteString), NodeName>,
    pub counters: ClusterCounters,
    /// Wall-clock milliseconds = broker clock + this (read once through the seam).
    wall_offset_ms: u64,
    hlc: Stamp,
    /// The winning write of every retained topic ever written, clears included
    /// (a clear must win over an older set arriving late).
    retained_stamps: AHashMap<ByteString, (Stamp, NodeName)>,
    retained_out: Vec<RetainedUpdate>,
    will_events: Vec<WillEvent>,
    /// Per origin node: its incarnation and the highest forward id handled here.
    pub(super) handled: AHashMap<NodeName, (u64, u64)>,
    /// Sessions that moved away, for passing on late forwards (`super::redirect`).
    pub(super) moved: MovedSessions,
    /// Peers whose link is up, once the shell reports links (`None` before:
    /// every peer counts as reachable). A shared group is served by a
    /// reachable node when one has members.
    reachable: Option<AHashSet<NodeName>>,
}

/// Where a routed message went.
#[derive(Debug, Default)]
pub(super) struct Routed {
    /// Local sessions reached.
    pub local: usize,
    /// Forward id and the nodes it went to (empty when none matched).
    pub forward_id: u64,
    pub nodes: Vec<NodeName>,
}

impl Broker {
    /// Makes this broker a cluster member named `node`: it records its route
    /// changes for its peers and forwards publishes to matching nodes.
    pub fn join_cluster(&mut self, node: NodeName, mode: ForwardMode, forward_timeout_ms: Millis, wall_offset_ms: u64) {
        self.router.record_route_changes();
        self.cluster = Some(Box::new(ClusterCore {
            node,
            remote: RemoteRoutes::default(),
            mode,
            forward_timeout_ms,
            next_forward_id: 1,
            outgoing: Vec::new(),
            last_destinations: Arc::default(),
            held: AHashMap::new(),
            group_turns: AHashMap::new(),
            sticky_nodes: AHashMap::new(),
            counters: ClusterCounters::default(),
            wall_offset_ms,
            hlc: Stamp::default(),
            retained_stamps: AHashMap::new(),
            retained_out: Vec::new(),
            will_events: Vec::new(),
            handled: AHashMap::new(),
            moved: MovedSessions::new(REDIRECT_WINDOW_DEFAULT_MS),
            reachable: None,
        }));
    }

    /// How long this node passes on forwards for a session that moved away
    /// (ALGORITHM.md, "Sessions across nodes").
    pub fn set_redirect_window(&mut self, window_ms: Millis) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.moved.set_window(window_ms);
        }
    }

    /// The link to `peer` went up or down (or is new and not up yet).
    pub fn set_reachable(&mut self, peer: &NodeName, up: bool) {
        if let Some(cluster) = self.cluster.as_mut() {
            let reachable = cluster.reachable.get_or_insert_with(AHashSet::new);
            if up {
                reachable.insert(peer.clone());
            } else {
                reachable.remove(peer);
            }
        }
    }

    pub(super) fn will_event(&mut self, event: WillEvent) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.will_events.push(event);
        }
    }

    /// Will changes since the last call, in order.
    pub fn take_will_events(&mut self) -> Vec<WillEvent> {
        self.cluster.as_mut().map(|c| std::mem::take(&mut c.will_events)).unwrap_or_default()
    }

    /// Every will held here, as `Guard` events (to guard them anew after a membership change).
    pub fn wills_held(&self) -> Vec<WillEvent> {
        let mut wills: Vec<WillEvent> = self
            .sessions
            .values()
            .filter_map(|s| {
                let w = s.will.as_deref()?;
                Some(WillEvent::Guard {
                    client: s.client_id.clone(),
                    who: Arc::clone(&s.client),
                    will: Box::new(w.will.clone()),
                    delay_secs: w.delay_secs,
                    expiry_secs: s.expiry_secs,
                })
            })
            .collect();
        wills.sort_by(|a, b| match (a, b) {
            (WillEvent::Guard { client: x, .. }, WillEvent::Guard { client: y, .. }) => x.cmp(y),
            _ => std::cmp::Ordering::Equal,
        });
        wills
    }

    /// Publishes the will `who` set, whose node died holding it (this node
    /// guarded it), checked against the ACL as that client: the guard carries
    /// its user name and address.
    pub fn publish_orphan_will(&mut self, who: &crate::authz::ClientInfo, will: &Will, now: Millis) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.counters.wills_published_for_dead_nodes += 1;
        }
        self.publish_will(who, will, now);
    }

    /// A local publish set or cleared the retained message of `topic`: stamp
    /// the write and queue it for every peer.
    pub(super) fn retained_written(&mut self, topic: &ByteString, message: Option<Arc<Message>>, now: Millis) {
        let Some(stamp) = self.cluster_stamp(now) else { return };
        let Some(cluster) = self.cluster.as_mut() else { return };
        cluster.retained_stamps.insert(topic.clone(), (stamp, cluster.node.clone()));
        cluster.retained_out.push(RetainedUpdate { topic: topic.clone(), stamp, node: cluster.node.clone(), message });
    }

    /// A new reading of this node's hybrid logical clock (ALGORITHM.md,
    /// "Nodes"): later than every reading made or observed here. None alone.
    pub fn cluster_stamp(&mut self, now: Millis) -> Option<Stamp> {
        let cluster = self.cluster.as_mut()?;
        let wall = now + cluster.wall_offset_ms;
        cluster.hlc = if wall > cluster.hlc.wall_ms {
            Stamp { wall_ms: wall, counter: 0 }
        } else {
            Stamp { wall_ms: cluster.hlc.wall_ms, counter: cluster.hlc.counter.saturating_add(1) }
        };
        Some(cluster.hlc)
    }

    /// A peer's clock reading: later readings here order after it.
    pub fn observe_stamp(&mut self, stamp: Stamp) {
        if let Some(cluster) = self.cluster.as_mut()
            && stamp > cluster.hlc
        {
            cluster.hlc = stamp;
        }
    }

    /// The connection `client` is attached to here, if any.
    pub fn connection_of(&self, client: &str) -> Option<ConnId> {
        self.sessions.get(client)?.connection
    }

    /// Retained writes to send to every peer, in order.
    pub fn take_retained_updates(&mut self) -> Vec<RetainedUpdate> {
        self.cluster.as_mut().map(|c| std::mem::take(&mut c.retained_out)).unwrap_or_default()
    }

    /// Every retained write this node holds as winning, for a peer that just connected.
    pub fn retained_snapshot(&self) -> Vec<RetainedUpdate> {
        let Some(cluster) = self.cluster.as_ref() else { return Vec::new() };
        let mut all: Vec<RetainedUpdate> = cluster
            .retained_stamps
            .iter()
            .map(|(topic, (stamp, node))| RetainedUpdate {
                topic: topic.clone(),
                stamp: *stamp,
                node: node.clone(),
                message: self.retained.get(topic).cloned(),
            })
            .collect();
        all.sort_by(|a, b| (a.stamp, &a.node, &a.topic).cmp(&(b.stamp, &b.node, &b.topic)));
        all
    }

    /// Another node's retained write: applied when it is newer (by stamp, then
    /// node name) than the one held, so every node ends with the same winner.
    pub fn apply_remote_retained(&mut self, update: RetainedUpdate) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        if update.stamp > cluster.hlc {
            cluster.hlc = update.stamp;
        }
        let newer = match cluster.retained_stamps.get(&update.topic) {
            _ if crate::buggify::fires(crate::buggify::Bug::RetainedDropRemote) => false, // sim-bugs: the write is lost
            Some(_) if crate::buggify::fires(crate::buggify::Bug::RetainedIgnoreStamp) => true, // sim-bugs: by arrival
            Some((stamp, node)) => (update.stamp, &update.node) > (*stamp, node),
            None => true,
        };
        if !newer {
            cluster.counters.retained_superseded += 1;
            return;
        }
        cluster.counters.retained_applied += 1;
        cluster.retained_stamps.insert(update.topic.clone(), (update.stamp, update.node));
        match update.message {
            Some(message) => {
                let exists = self.retained.get(&update.topic).is_some();
                if !exists && self.retained.len() >= self.config.max_retained_messages.get() {
                    self.counters.retained_refused_full += 1;
                    return;
                }
                self.retained.insert(&update.topic, message);
            }
            None => {
                self.retained.remove(&update.topic);
            }
        }
    }

    pub fn cluster(&self) -> Option<&ClusterCore> {
        self.cluster.as_deref()
    }

    pub fn cluster_mut(&mut self) -> Option<&mut ClusterCore> {
        self.cluster.as_deref_mut()
    }

    /// This node's routes (for a snapshot to a peer).
    pub fn local_routes(&self) -> Vec<ByteString> {
        self.router.routes()
    }

    /// Route changes since the last call, in the order they happened.
    pub fn take_route_changes(&mut self) -> Vec<RouteChange> {
        self.router.take_route_changes()
    }

    /// Forwards to send, with their destination node.
    pub fn take_forwards(&mut self) -> Vec<(NodeName, Box<Forward>)> {
        self.cluster.as_mut().map(|c| std::mem::take(&mut c.outgoing)).unwrap_or_default()
    }

    /// Sends a message to the other nodes whose routes match: direct routes
    /// each get it once; each matching `$share` group is served by one node,
    /// chosen by the shared subscription strategy among the nodes with members
    /// (this one included). Returns the forward id (0: no acknowledgement to
    /// wait for), the nodes it went to, and the groups served elsewhere (which
    /// this node must not serve).
    pub(super) fn forward(
        &mut self,
        message: &Arc<Message>,
        now: Millis,
    ) -> (u64, Vec<NodeName>, Vec<(ByteString, ByteString)>) {
        let Some(cluster) = self.cluster.as_mut() else { return (0, Vec::new(), Vec::new()) };
        let matched = cluster.remote.matches(&message.topic);
        if matched.nodes.is_empty() && matched.groups.is_empty() {
            return (0, Vec::new(), Vec::new());
        }
        let mut targets: Vec<(NodeName, Vec<(ByteString, ByteString)>)> =
            matched.nodes.into_iter().map(|n| (n, Vec::new())).collect();
        let mut served_elsewhere = Vec::new();
        let strategy = self.config.shared_subscription_strategy;
        let publisher_hash = message.publisher.as_deref().map_or(0, super::router::stable_hash);
        for (group, filter, holders) in matched.groups {
            let here = self.router.has_group(&group, &filter);
            let Some(node) =
                cluster.choose_node(&group, &filter, holders, here, strategy, publisher_hash, &mut self.rng)
            else {
                continue; // This node serves the group.
            };
            served_elsewhere.push((group.clone(), filter.clone()));
            match targets.iter_mut().find(|(n, _)| *n == node) {
                Some((_, groups)) => groups.push((group, filter)),
                None => targets.push((node, vec![(group, filter)])),
            }
        }
        let id = cluster.next_forward_id;
        cluster.next_forward_id += 1;
        let ack = cluster.mode == ForwardMode::Sync && message.qos != QoS::AtMostOnce;
        let publish = publish_of(message);
        if !targets.iter().map(|(node, _)| node).eq(cluster.last_destinations.iter()) {
            cluster.last_destinations = targets.iter().map(|(node, _)| node.clone()).collect();
        }
        let destinations = &cluster.last_destinations;
        let mut nodes = Vec::with_capacity(targets.len());
        for (node, groups) in targets {
            let forward = Forward {
                id,
                ack,
                expires_in_ms: message.expires_at.map(|at| at.saturating_sub(now)),
                publisher: message.publisher.clone(),
                groups,
                direct: true,
                publish: publish.clone(),
                destinations: Arc::clone(destinations),
                redirect: None,
            };
            cluster.counters.forwarded += 1;
            cluster.outgoing.push((node.clone(), Box::new(forward)));
            nodes.push(node);
        }
        (if ack { id } else { 0 }, nodes, served_elsewhere)
    }

    /// Hands a shared group's message that no local member can take to a node
    /// with members of the group (for that group only). False when no other
    /// node has members.
    pub(super) fn forward_to_group(&mut self, key: &SharedKey, message: &Arc<Message>, now: Millis) -> bool {
        let strategy = self.config.shared_subscription_strategy;
        let publisher_hash = message.publisher.as_deref().map_or(0, super::router::stable_hash);
        let Some(cluster) = self.cluster.as_mut() else { return false };
        let holders = cluster.remote.group_holders(&key.group, &key.filter);
        let Some(node) =
            cluster.choose_node(&key.group, &key.filter, holders, false, strategy, publisher_hash, &mut self.rng)
        else {
            return false;
        };
        let id = cluster.next_forward_id;
        cluster.next_forward_id += 1;
        let forward = Forward {
            id,
            ack: false,
            expires_in_ms: message.expires_at.map(|at| at.saturating_sub(now)),
            publisher: message.publisher.clone(),
            groups: vec![(key.group.clone(), key.filter.clone())],
            direct: false,
            publish: publish_of(message),
            destinations: Arc::default(),
            redirect: None,
        };
        cluster.counters.forwarded += 1;
        cluster.outgoing.push((node, Box::new(forward)));
        true
    }

    /// Holds `response` (the PUBACK or PUBREC of a QoS 1/2 publish) until every
    /// node in `nodes` acknowledged forward `id`; sends it at once when there
    /// is nothing to wait for.
    pub(super) fn hold_ack(&mut self, conn: ConnId, id: u64, nodes: Vec<NodeName>, response: Packet, now: Millis) {
        let Some(cluster) = self.cluster.as_mut().filter(|_| id != 0 && !nodes.is_empty()) else {
            return self.send(conn, response);
        };
        let Some(client) = self.connections.get(&conn).map(|c| c.client_id.clone()) else { return };
        cluster.held.insert(id, HeldAck { conn, client, response, waiting: nodes });
        let at = now + cluster.forward_timeout_ms;
        self.arm(at, Timer::ForwardTimeout { id });
    }

    /// `node` put forward `id` in its sessions' queues.
    pub fn forward_acked(&mut self, node: &str, id: u64) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        let Some(held) = cluster.held.get_mut(&id) else { return };
        held.waiting.retain(|n| n != node);
        if held.waiting.is_empty()
            && let Some(held) = cluster.held.remove(&id)
        {
            self.release(held);
        }
    }

    /// `node` is gone: nothing it held can be lost any more, so acknowledgements waiting for it are released.
    pub fn node_down(&mut self, node: &str) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        let mut released = Vec::new();
        cluster.held.retain(|_, held| {
            let before = held.waiting.len();
            held.waiting.retain(|n| n != node);
            if held.waiting.len() != before {
                cluster.counters.forward_released_node_down += 1;
            }
            if held.waiting.is_empty() {
                released.push((held.conn, held.client.clone(), held.response.clone()));
                false
            } else {
                true
            }
        });
        for (conn, client, response) in released {
            self.release(HeldAck { conn, client, response, waiting: Vec::new() });
        }
    }

    pub(super) fn forward_timed_out(&mut self, id: u64) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        if let Some(held) = cluster.held.remove(&id) {
            cluster.counters.forward_timeouts += 1;
            self.release(held);
        }
    }

    /// Sends a held acknowledgement if its publisher is still on the same connection.
    fn release(&mut self, held: HeldAck) {
        let same = self.connections.get(&held.conn).is_some_and(|c| c.client_id == held.client);
        if same {
            self.send(held.conn, held.response);
        }
    }

    /// A publish forwarded by `origin` (incarnation `incarnation`): delivered
    /// to matching local subscriptions (and only the shared groups named in
    /// it), never forwarded again — except to a session that moved away from
    /// here after the origin routed it (`super::redirect`).
    pub fn handle_forward(&mut self, origin: &NodeName, incarnation: u64, forward: Forward, now: Millis) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.counters.forwards_received += 1;
            // Updated in place: the origin's name is cloned only for its first forward.
            match cluster.handled.get_mut(origin) {
                Some(handled) => *handled = (incarnation, forward.id),
                None => {
                    cluster.handled.insert(origin.clone(), (incarnation, forward.id));
                }
            }
        }
        if crate::buggify::fires(crate::buggify::Bug::DropForward) {
            return; // sim-bugs: acknowledged by the link, delivered to no one
        }
        let Forward { id, expires_in_ms, publisher, groups, direct, publish, destinations, redirect, .. } = forward;
        let message = forwarded_message(publish, expires_in_ms, publisher, now);
        self.counters.messages_received += 1;
        if let Some(redirect) = redirect {
            return self.handle_redirect(&destinations, *redirect, &message, now);
        }
        let groups = if crate::buggify::fires(crate::buggify::Bug::SkipForwardedGroups) { Vec::new() } else { groups }; // sim-bugs: no group served
        self.deliver_locally(
            &message,
            direct,
            |group, filter| groups.iter().any(|(g, f)| g == group && f == filter),
            now,
        );
        if direct {
            self.redirect_moved(origin, incarnation, id, &destinations, &message, now);
        }
    }
}

impl WillEvent {
    /// A `Guard` as it crosses a link.
    pub fn to_wire(&self) -> Option<crate::cluster::wire::WillGuard> {
        let WillEvent::Guard { client, who, will, delay_secs, expiry_secs } = self else { return None };
        let p = &will.properties;
        Some(crate::cluster::wire::WillGuard {
            client: client.clone(),
            username: who.username.clone(),
            peer: who.peer,
            delay_secs: *delay_secs,
            expiry_secs: *expiry_secs,
            publish: Publish {
                dup: false,
                qos: will.qos,
                retain: will.retain,
                topic: will.topic.clone(),
                packet_id: None,
                payload: will.payload.clone(),
                properties: mqtt_codec::PublishProperties {
                    payload_format_indicator: p.payload_format_indicator,
                    message_expiry_interval: p.message_expiry_interval,
                    topic_alias: None,
                    response_topic: p.response_topic.clone(),
                    correlation_data: p.correlation_data.clone(),
                    user_properties: p.user_properties.clone(),
                    subscription_identifiers: Vec::new(),
                    content_type: p.content_type.clone(),
                },
            },
        })
    }
}

/// The will a guarded PUBLISH stands for.
pub fn will_from_wire(guard: &crate::cluster::wire::WillGuard) -> Will {
    let p = &guard.publish;
    Will {
        topic: p.topic.clone(),
        payload: p.payload.clone(),
        qos: p.qos,
        retain: p.retain,
        properties: mqtt_codec::WillProperties {
            will_delay_interval: Some(guard.delay_secs),
            payload_format_indicator: p.properties.payload_format_indicator,
            message_expiry_interval: p.properties.message_expiry_interval,
            content_type: p.properties.content_type.clone(),
            response_topic: p.properties.response_topic.clone(),
            correlation_data: p.properties.correlation_data.clone(),
            user_properties: p.properties.user_properties.clone(),
        },
    }
}

impl RetainedUpdate {
    /// The update as it crosses a link, with the expiry as time left at `now`.
    pub fn to_wire(&self, now: Millis) -> crate::cluster::wire::RetainedWrite {
        crate::cluster::wire::RetainedWrite {
            topic: self.topic.clone(),
            stamp: self.stamp,
            node: self.node.clone(),
            message: self.message.as_ref().map(|m| (m.expires_at.map(|at| at.saturating_sub(now)), publish_of(m))),
        }
    }

    /// An update received from a link at `now`.
    pub fn from_wire(write: crate::cluster::wire::RetainedWrite, now: Millis) -> Self {
        let crate::cluster::wire::RetainedWrite { topic, stamp, node, message } = write;
        let message = message.map(|(expires_in_ms, p)| {
            Arc::new(Message {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos,
                retain: true,
                properties: p.properties,
                expires_at: expires_in_ms.map(|ms| now + ms),
                publisher: None,
            })
        });
        Self { topic, stamp, node, message }
    }
}

/// The message a forward carries, its expiry counted from `now`.
pub(super) fn forwarded_message(
    publish: Publish,
    expires_in_ms: Option<u64>,
    publisher: Option<ByteString>,
    now: Millis,
) -> Arc<Message> {
    Arc::new(Message {
        topic: publish.topic,
        payload: publish.payload,
        qos: publish.qos,
        retain: publish.retain,
        properties: publish.properties,
        expires_at: expires_in_ms.map(|ms| now + ms),
        publisher,
    })
}

fn publish_of(message: &Message) -> Publish {
    Publish {
        dup: false,
        qos: message.qos,
        retain: message.retain,
        topic: message.topic.clone(),
        packet_id: None,
        payload: message.payload.clone(),
        properties: message.properties.clone(),
    }
}

impl ClusterCore {
    pub(super) fn next_forward_id(&self) -> u64 {
        self.next_forward_id
    }

    /// Sends `forward` on to `to` for one session that moved there, under a
    /// new id of this node (so the link orders, resends and deduplicates it).
    pub(super) fn pass_on(
        &mut self,
        to: NodeName,
        destinations: &Arc<[NodeName]>,
        message: &Message,
        redirect: Redirect,
        now: Millis,
    ) {
        let id = self.next_forward_id;
        self.next_forward_id += 1;
        let passed = Forward {
            id,
            ack: true,
            expires_in_ms: message.expires_at.map(|at| at.saturating_sub(now)),
            publisher: message.publisher.clone(),
            groups: Vec::new(),
            direct: true,
            publish: publish_of(message),
            destinations: Arc::clone(destinations),
            redirect: Some(Box::new(redirect)),
        };
        self.counters.redirects_sent += 1;
        self.outgoing.push((to, Box::new(passed)));
    }

    /// The node that serves a shared group for one message: `None` for this
    /// node. Candidates are the `holders` (other nodes with members) and this
    /// node when `here`, in name order so every strategy is deterministic.
    #[allow(clippy::too_many_arguments)]
    fn choose_node(
        &mut self,
        group: &ByteString,
        filter: &ByteString,
        holders: Vec<NodeName>,
        here: bool,
        strategy: SharedStrategy,
        publisher_hash: u64,
        rng: &mut impl Rng,
    ) -> Option<NodeName> {
        if holders.is_empty() || (here && strategy == SharedStrategy::Local) {
            return None;
        }
        let mut candidates = holders;
        // A node without a link now would hold the message until it is back, or lose it if it
        // departs: the group is served by a reachable member when there is one.
        if let Some(up) = &self.reachable
            && candidates.iter().any(|n| !up.contains(n))
        {
            let reachable: Vec<NodeName> = candidates.iter().filter(|n| up.contains(*n)).cloned().collect();
            if !reachable.is_empty() || here {
                candidates = reachable;
            }
        }
        if candidates.is_empty() {
            return None; // Only this node can serve it now.
        }
        if here {
            candidates.push(self.node.clone());
        }
        candidates.sort();
        let key = (group.clone(), filter.clone());
        let count = candidates.len();
        let chosen = match strategy {
            SharedStrategy::RoundRobin | SharedStrategy::Local => {
                let turn = self.group_turns.entry(key).or_insert(0);
                *turn = turn.wrapping_add(1);
                candidates[*turn % count].clone()
            }
            SharedStrategy::Random => candidates[rng.random_range(0..count)].clone(),
            SharedStrategy::HashClientid => candidates[(publisher_hash % count as u64) as usize].clone(),
            SharedStrategy::Sticky => match self.sticky_nodes.get(&key).filter(|n| candidates.contains(n)) {
                Some(node) => node.clone(),
                None => {
                    let node = candidates[0].clone();
                    self.sticky_nodes.insert(key, node.clone());
                    node
                }
            },
        };
        (chosen != self.node).then_some(chosen)
    }

    pub fn node(&self) -> &NodeName {
        &self.node
    }

    pub fn held_acks(&self) -> usize {
        self.held.len()
    }
}
