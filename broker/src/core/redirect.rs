//! Forwards that reach a node after a session moved away (ALGORITHM.md,
//! "Sessions across nodes"). A publishing node routes by the routes it held:
//! a forward it made before it learnt of a move — delayed by a partition, or
//! simply in flight — reaches the session's old node after the session left.
//! The old node passes it on to the node the session moved to, which
//! delivers it to that session unless the session got the message directly.
//!
//! "Directly" is decided exactly, not by time: forward ids grow per origin
//! incarnation and one link carries them in order, so a node knows, per
//! origin, the highest forward it had handled when a session arrived and
//! when it left. A message the node was also sent (the forward names its
//! destinations) with an id between the two reached the session there. Each
//! node on the way checks the session's stay with it: the old node before
//! passing a forward on, the next one before passing it further or
//! delivering it. Passed-on copies of one message that reach a session by
//! two ways are delivered once.

use std::sync::Arc;

use bytestring::ByteString;
use mqtt_codec::QoS;

use super::Broker;
use super::message::Message;
use super::router::{ClientId, Matched};
use super::session::OutState;
use super::transfer::SessionTransfer;
use super::trie::FilterTrie;
use crate::cluster::routes::NodeName;
use crate::cluster::wire::Redirect;
use crate::hash::AHashMap;
use crate::seam::Millis;

/// How long a node remembers where a session went, unless told otherwise:
/// longer than a forward can wait in a parked link (`route_grace_ms`) plus
/// failure detection and a resend.
pub const REDIRECT_WINDOW_DEFAULT_MS: Millis = 60_000;

/// Where forwarding stood on one node at one moment: a session's arrival or departure.
#[derive(Debug, Clone, Default)]
pub struct ImportMark {
    /// Per origin node: its incarnation and the highest forward id handled here.
    pub handled: Vec<(NodeName, (u64, u64))>,
    /// This node's next forward id: its own publishes from then on matched the session.
    pub own_next_id: u64,
    /// Passed-on messages delivered to the session during this stay, by
    /// origin, incarnation and id (the most recent ones): a second copy is dropped.
    pub redirected: Vec<(NodeName, u64, u64)>,
}

/// Passed-on messages remembered per session stay.
const REDIRECTED_REMEMBERED: usize = 256;

impl ImportMark {
    fn handled_from(&self, origin: &str) -> Option<(u64, u64)> {
        self.handled.iter().find(|(n, _)| n == origin).map(|(_, h)| *h)
    }
}

/// Whether the message of `redirect`, sent to `destinations`, reached node
/// `here` while a session stayed there: from `arrived` (`None`: the
/// session began here) until `left` (`None`: it is still here).
fn reached_during(
    here: &NodeName,
    arrived: Option<&ImportMark>,
    left: Option<&ImportMark>,
    destinations: &[NodeName],
    redirect: &Redirect,
) -> bool {
    let id = redirect.origin_id;
    if redirect.origin == *here {
        // Published here: routed against the session if routed while it was here.
        return arrived.is_none_or(|m| m.own_next_id <= id) && left.is_none_or(|m| id < m.own_next_id);
    }
    if !destinations.contains(here) {
        return false;
    }
    let same = |h: &(u64, u64)| h.0 == redirect.origin_incarnation;
    // Incarnations are not ordered: another incarnation's watermark says nothing of this id.
    let after_arrival = arrived.and_then(|m| m.handled_from(&redirect.origin)).is_none_or(|h| !same(&h) || id > h.1);
    let before_departure = left.is_none_or(|m| m.handled_from(&redirect.origin).is_some_and(|h| same(&h) && id <= h.1));
    after_arrival && before_departure
}

/// Sessions that moved from this node, by client and by direct filter.
#[derive(Debug, Default)]
pub struct MovedSessions {
    by_client: AHashMap<ClientId, MovedSession>,
    by_filter: AHashMap<ByteString, Vec<ClientId>>,
    filters: FilterTrie,
    /// Passed-on forwards that came before the session they are for (its
    /// takeover answer still on its way): delivered when it arrives.
    early: AHashMap<ClientId, Vec<Early>>,
    window_ms: Millis,
    /// Expired entries are purged when the table has grown to this size.
    purge_at: usize,
}

/// Per client, at most this many early forwards wait; more are dropped.
const EARLY_PER_CLIENT_MAX: usize = 1024;

#[derive(Debug)]
struct Early {
    destinations: Arc<[NodeName]>,
    redirect: Redirect,
    message: Arc<Message>,
    until: Millis,
}

#[derive(Debug)]
struct MovedSession {
    to: NodeName,
    filters: Vec<ByteString>,
    /// The session's stay here: when it came (`None`: it began here) and when it left.
    arrived: Option<Box<ImportMark>>,
    left: Box<ImportMark>,
    until: Millis,
}

impl MovedSessions {
    pub fn new(window_ms: Millis) -> Self {
        Self { window_ms, purge_at: 64, ..Self::default() }
    }

    pub fn set_window(&mut self, window_ms: Millis) {
        self.window_ms = window_ms;
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    fn insert(&mut self, client: ClientId, mut moved: MovedSession, now: Millis) {
        self.forget(&client);
        if self.by_client.len() >= self.purge_at {
            self.purge(now);
            self.purge_at = (self.by_client.len() * 2).max(64);
        }
        for filter in &moved.filters {
            let clients = self.by_filter.entry(filter.clone()).or_default();
            if clients.is_empty() {
                self.filters.insert(filter);
            }
            clients.push(client.clone());
        }
        moved.until = now + self.window_ms;
        self.by_client.insert(client, moved);
    }

    /// The session of `client` is here again, or its record expired.
    pub fn forget(&mut self, client: &str) {
        let Some(moved) = self.by_client.remove(client) else { return };
        for filter in moved.filters {
            if let Some(clients) = self.by_filter.get_mut(&filter) {
                clients.retain(|c| c != client);
                if clients.is_empty() {
                    self.by_filter.remove(&filter);
                    self.filters.remove(&filter);
                }
            }
        }
    }

    fn stash(&mut self, destinations: &Arc<[NodeName]>, redirect: Redirect, message: &Arc<Message>, now: Millis) {
        if self.early.len() >= self.purge_at.max(64) {
            self.early.retain(|_, waiting| {
                waiting.retain(|e| e.until > now);
                !waiting.is_empty()
            });
        }
        let waiting = self.early.entry(redirect.client.clone()).or_default();
        if waiting.len() < EARLY_PER_CLIENT_MAX {
            let until = now + self.window_ms;
            waiting.push(Early {
                destinations: Arc::clone(destinations),
                redirect,
                message: Arc::clone(message),
                until,
            });
        }
    }

    fn purge(&mut self, now: Millis) {
        let expired: Vec<ClientId> =
            self.by_client.iter().filter(|(_, m)| m.until <= now).map(|(c, _)| c.clone()).collect();
        for client in expired {
            self.forget(&client);
        }
    }

    fn get(&self, client: &str, now: Millis) -> Option<&MovedSession> {
        self.by_client.get(client).filter(|m| m.until > now)
    }

    /// The recently moved sessions with a filter matching `topic`, each once, in client order.
    fn matching(&self, topic: &str, now: Millis) -> Vec<ClientId> {
        let mut clients: Vec<ClientId> = Vec::new();
        self.filters.matches(topic, &mut |filter| {
            for client in self.by_filter.get(filter).into_iter().flatten() {
                if !clients.contains(client) && self.get(client, now).is_some() {
                    clients.push(client.clone());
                }
            }
        });
        clients.sort();
        clients
    }
}

impl Broker {
    /// The session of `transfer` left for node `to`: forwards matching its
    /// direct subscriptions that arrive from now on are passed on there.
    pub fn session_moved(&mut self, to: &NodeName, transfer: &SessionTransfer, now: Millis) {
        let filters: Vec<ByteString> = transfer
            .subscriptions
            .iter()
            .map(|(filter, _)| filter)
            .filter(|filter| !filter.starts_with("$share/"))
            .cloned()
            .collect();
        if filters.is_empty() {
            return;
        }
        let Some(left) = self.forwarding_mark() else { return };
        let Some(cluster) = self.cluster.as_mut() else { return };
        let moved = MovedSession { to: to.clone(), filters, arrived: transfer.arrived.clone(), left, until: 0 };
        cluster.moved.insert(transfer.client_id.clone(), moved, now);
    }

    /// Where forwarding stands here now.
    fn forwarding_mark(&self) -> Option<Box<ImportMark>> {
        let cluster = self.cluster.as_ref()?;
        let mut handled: Vec<(NodeName, (u64, u64))> = cluster.handled.iter().map(|(n, h)| (n.clone(), *h)).collect();
        handled.sort();
        Some(Box::new(ImportMark { handled, own_next_id: cluster.next_forward_id(), redirected: Vec::new() }))
    }

    /// What a session arriving here now has missed (see [`ImportMark`]).
    pub(super) fn import_mark(&mut self, client: &str) -> Option<Box<ImportMark>> {
        self.cluster.as_mut()?.moved.forget(client);
        self.forwarding_mark()
    }

    /// Forward `id` of `origin` (incarnation `incarnation`), sent to
    /// `destinations`, was delivered here: passes it on for the sessions
    /// that moved away from here.
    pub(super) fn redirect_moved(
        &mut self,
        origin: &NodeName,
        incarnation: u64,
        id: u64,
        destinations: &Arc<[NodeName]>,
        message: &Arc<Message>,
        now: Millis,
    ) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        if cluster.moved.is_empty() || message.qos == QoS::AtMostOnce {
            return;
        }
        for client in cluster.moved.matching(&message.topic, now) {
            let redirect = Redirect { client, origin: origin.clone(), origin_incarnation: incarnation, origin_id: id };
            let Some(moved) = cluster.moved.get(&redirect.client, now) else { continue };
            // Handled here after the session left (it was not here for it): on to where it went.
            let to = moved.to.clone();
            cluster.pass_on(to, destinations, message, redirect, now);
        }
    }

    /// `client`'s connection here lost to a later one on `winner` (a client
    /// connected on both sides of a partition): the connection closes with
    /// 0x8E and the session ends here, and the messages it held — queued, or
    /// sent and not acknowledged, but not a QoS 2 message the client already
    /// received (PUBREL sent) — go to the winner's session, passed on as any
    /// late forward for it, so that what was acknowledged to its publishers
    /// is not lost with the losing session. A winner that began a new
    /// session (its CONNECT reached no holder: session present 0) gets
    /// none, as its client was told.
    pub fn hand_messages_to(&mut self, client: &str, winner: &NodeName, now: Millis) {
        let Some(transfer) = self.export_session(client, false, now) else { return };
        let Some(cluster) = self.cluster.as_mut() else { return };
        let here = cluster.node().clone();
        let pending =
            transfer.inflight.into_iter().filter(|(_, state, _)| *state == OutState::Published).map(|(_, _, d)| d);
        for delivery in pending.chain(transfer.queue) {
            if delivery.qos == QoS::AtMostOnce || delivery.shared.is_some() {
                continue; // At most once; a group's member hands its messages on when its session ends.
            }
            // Named by an id of this node, so the winner delivers each once.
            let redirect = Redirect {
                client: transfer.client_id.clone(),
                origin: here.clone(),
                origin_incarnation: 0,
                origin_id: cluster.next_forward_id(),
            };
            cluster.pass_on(winner.clone(), &Arc::default(), &delivery.message, redirect, now);
        }
    }

    /// The session of `client` arrived here: forwards passed on for it before it did are delivered now.
    pub(super) fn deliver_early_redirects(&mut self, client: &str, now: Millis) {
        let Some(waiting) = self.cluster.as_mut().and_then(|c| c.moved.early.remove(client)) else { return };
        for early in waiting.into_iter().filter(|e| e.until > now) {
            self.handle_redirect(&early.destinations, early.redirect, &early.message, now);
        }
    }

    /// A forward another node passed on for one session of this node; the
    /// publishing node had sent it to `destinations`.
    pub(super) fn handle_redirect(
        &mut self,
        destinations: &Arc<[NodeName]>,
        redirect: Redirect,
        message: &Arc<Message>,
        now: Millis,
    ) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        let here = cluster.node().clone();
        let Some(session) = self.sessions.get_mut(&redirect.client) else {
            match cluster.moved.get(&redirect.client, now) {
                // It stayed here and left again: unless it got the message here, on to where it went.
                Some(moved) => {
                    if !reached_during(&here, moved.arrived.as_deref(), Some(&moved.left), destinations, &redirect) {
                        let to = moved.to.clone();
                        cluster.pass_on(to, destinations, message, redirect, now);
                    }
                }
                // It is on its way here (its takeover answer still travelling): wait for it.
                None => cluster.moved.stash(destinations, redirect, message, now),
            }
            return;
        };
        // A session begun here afresh (clean start) is not the one the message was for.
        let Some(mark) = session.import_mark.as_mut() else { return };
        if reached_during(&here, Some(mark), None, destinations, &redirect) {
            return;
        }
        let key = (redirect.origin.clone(), redirect.origin_incarnation, redirect.origin_id);
        if mark.redirected.contains(&key) {
            return; // Passed on by two nodes.
        }
        if mark.redirected.len() >= REDIRECTED_REMEMBERED {
            mark.redirected.remove(0);
        }
        mark.redirected.push(key);
        // Its subscriptions here decide, as for any message (the client may have subscribed anew).
        let client = redirect.client;
        let matched: Vec<Matched> = session
            .subscriptions
            .iter()
            .filter(|(filter, _)| !filter.starts_with("$share/") && mqtt_codec::topic::matches(filter, &message.topic))
            .map(|(_, subscription)| Matched { client: client.clone(), subscription: *subscription, shared: None })
            .collect();
        if matched.is_empty() {
            return;
        }
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.counters.redirects_delivered += 1;
        }
        for (client, delivery) in super::publish::merge_overlapping(message, matched) {
            self.deliver(&client, delivery, now);
        }
    }
}
