//! A cluster member's shell: starts membership and the peer listener, keeps
//! one outbound link per live member, hands the core's route changes and
//! forwards to the links, and forgets a dead member's routes after the grace
//! period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::hash::AHashMap;
use broker_sync::Signal;
use bytestring::ByteString;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use super::link::{Link, run_outbound, serve_inbound};
use super::membership::{Member, MembershipEvent, run_membership};
use super::routes::NodeName;
use super::wire::{Forward, PeerMessage, WillGuard, WireSession};
use crate::config::ClusterConfig;
use crate::core::cluster::{RetainedUpdate, Stamp, WillEvent, will_from_wire};
use crate::core::router::RouteChange;
use crate::core::router::stable_hash;
use crate::core::{Broker, ConnId};
use crate::seam::Millis;
use crate::server::Shared;

/// One node's view of its cluster, shared by its tasks.
#[derive(Debug)]
pub struct ClusterShell {
    pub node: NodeName,
    pub incarnation: u64,
    pub cluster_name: ByteString,
    pub config: ClusterConfig,
    links: Mutex<AHashMap<NodeName, Arc<Link>>>,
    /// Links of members declared down, for `route_grace_ms`: forwards to them
    /// wait here, and go out if the same incarnation comes back (a partition
    /// that healed) instead of being lost (ALGORITHM.md, "Forwarding").
    parked: Mutex<AHashMap<NodeName, Arc<Link>>>,
    /// Per origin, its incarnation and the highest forward id received from
    /// it: a forward sent again after a broken connection is delivered once.
    received: Mutex<AHashMap<NodeName, (u64, u64)>>,
    /// Link generations of this incarnation (ALGORITHM.md, "Routes": the epoch).
    generation: AtomicU64,
    /// Forwards dropped because a link's queue was full.
    pub forwards_dropped: AtomicU64,
    /// Flips to true for a graceful leave.
    leave: watch::Sender<bool>,
    /// Where each will held here is guarded (ALGORITHM.md, "Wills").
    guardians: Mutex<AHashMap<ByteString, NodeName>>,
    /// Wills this node guards for others, by client id.
    guarding: Mutex<AHashMap<ByteString, Guarded>>,
    /// Set once the membership task returned (after a graceful leave, its datagrams sent).
    left: watch::Sender<bool>,
    /// Per origin, the signal that asks it (over its newest inbound link) to
    /// resend its routes. A stored permit: a request made while the link task
    /// is busy is not lost.
    inbound_resend: Mutex<AHashMap<NodeName, Arc<Signal>>>,
    /// Takeover calls waiting for their answer, by call id.
    calls: Mutex<AHashMap<u64, oneshot::Sender<TakeoverAnswer>>>,
    /// Sessions recently handed over, for takeover calls that come again.
    pub handovers: super::handover::Handovers,
    /// When each live connection here connected (a clock reading of this
    /// node), by connection: a client id connected on two nodes is settled
    /// in favour of the later connection.
    conn_stamps: Mutex<AHashMap<ConnId, (ByteString, Stamp)>>,
    /// CONNECTs here waiting for their takeover calls, by client id: their
    /// stamp, and whether a later CONNECT of the client elsewhere has been
    /// seen meanwhile (this one then loses as soon as it is connected).
    connecting: Mutex<AHashMap<ByteString, (Stamp, bool)>>,
    /// Connections closed because the same client id connected later on another node.
    pub duplicates_settled: AtomicU64,
    next_call: AtomicU64,
}

impl ClusterShell {
    pub fn new(node: NodeName, incarnation: u64, config: ClusterConfig) -> Self {
        Self {
            node,
            incarnation,
            cluster_name: ByteString::from(config.name.clone()),
            config,
            links: Mutex::new(AHashMap::new()),
            parked: Mutex::new(AHashMap::new()),
            received: Mutex::new(AHashMap::new()),
            generation: AtomicU64::new(0),
            forwards_dropped: AtomicU64::new(0),
            leave: watch::channel(false).0,
            calls: Mutex::new(AHashMap::new()),
            handovers: Default::default(),
            conn_stamps: Mutex::new(AHashMap::new()),
            connecting: Mutex::new(AHashMap::new()),
            duplicates_settled: AtomicU64::new(0),
            next_call: AtomicU64::new(1),
            guardians: Mutex::new(AHashMap::new()),
            guarding: Mutex::new(AHashMap::new()),
            inbound_resend: Mutex::new(AHashMap::new()),
            left: watch::channel(false).0,
        }
    }

    /// The peer that guards `client`'s will: the highest stable hash of
    /// (client, peer) over the live peers (rendezvous hashing), so that a
    /// membership change moves only the wills whose guardian left or lost.
    fn guardian_of(links: &AHashMap<NodeName, Arc<Link>>, client: &str) -> Option<NodeName> {
        links.keys().max_by_key(|peer| (stable_hash(&format!("{client}/{peer}")), (*peer).clone())).cloned()
    }

    /// Sends will changes to their guardians; under the broker lock, like route deltas.
    fn route_wills(&self, events: Vec<WillEvent>) {
        if events.is_empty() {
            return;
        }
        let links = self.links.lock();
        let mut guardians = self.guardians.lock();
        for event in events {
            match &event {
                WillEvent::Guard { client, .. } => {
                    let chosen = Self::guardian_of(&links, client);
                    let previous = match &chosen {
                        Some(g) => guardians.insert(client.clone(), g.clone()),
                        None => guardians.remove(client),
                    };
                    if let Some(old) = previous.filter(|old| Some(old) != chosen.as_ref())
                        && let Some(link) = links.get(&old)
                    {
                        link.push_request(PeerMessage::WillRelease { client: client.clone() });
                    }
                    if let (Some(g), Some(guard)) = (&chosen, event.to_wire())
                        && let Some(link) = links.get(g)
                    {
                        link.push_request(PeerMessage::WillGuard(Box::new(guard)));
                    }
                }
                WillEvent::Release { client } => {
                    if let Some(g) = guardians.remove(client)
                        && let Some(link) = links.get(&g)
                    {
                        link.push_request(PeerMessage::WillRelease { client: client.clone() });
                    }
                }
            }
        }
    }

    pub fn wills_guarded(&self) -> usize {
        self.guarding.lock().len()
    }

    /// A peer guards a will for one of its clients.
    pub fn guard(&self, origin: &NodeName, incarnation: u64, guard: WillGuard) {
        self.guarding.lock().insert(guard.client.clone(), Guarded { origin: origin.clone(), incarnation, guard });
    }

    /// A peer no longer holds `client`'s will (or the client reconnected somewhere).
    pub fn unguard(&self, origin: Option<&NodeName>, client: &str) {
        let mut guarding = self.guarding.lock();
        if guarding.get(client).is_some_and(|g| origin.is_none_or(|o| *o == g.origin)) {
            guarding.remove(client);
        }
    }

    /// Registers an inbound link from `origin`; returns the signal that asks
    /// the origin, over that link, to send its routes again.
    pub fn admit_inbound(&self, origin: &NodeName) -> Arc<Signal> {
        let signal = Arc::new(Signal::new());
        self.inbound_resend.lock().insert(origin.clone(), Arc::clone(&signal));
        signal
    }

    /// Asks `origin` to send its routes again: this node just dropped them.
    ///
    /// Why: after an asymmetric partition this node may have declared the
    /// origin down and dropped its routes while the origin noticed nothing,
    /// its link intact, and so would never send a snapshot again
    /// (ALGORITHM.md, "Routes"). The request goes back on the origin's own
    /// link, which keeps carrying its forwards meanwhile.
    fn request_routes(&self, origin: &NodeName) {
        if let Some(resend) = self.inbound_resend.lock().get(origin) {
            resend.notify();
        }
    }

    /// Whether forward `id` from `origin` (incarnation `incarnation`) is new.
    /// An origin sends forwards in id order, and sends the unacknowledged ones
    /// again on a new connection, so an id at or below the highest seen was
    /// delivered already.
    pub fn first_receipt(&self, origin: &NodeName, incarnation: u64, id: u64) -> bool {
        let mut received = self.received.lock();
        match received.get_mut(origin) {
            Some((inc, highest)) if *inc == incarnation => {
                if id <= *highest {
                    return false;
                }
                *highest = id;
            }
            _ => {
                received.insert(origin.clone(), (incarnation, id));
            }
        }
        true
    }

    /// A peer answered takeover call `id`.
    pub fn answer(&self, id: u64, transfer: Option<Box<WireSession>>, newer: Option<Stamp>) {
        if let Some(waiter) = self.calls.lock().remove(&id) {
            let _ = waiter.send((transfer, newer));
        }
    }

    /// Asks every reachable peer to give up `client`'s session for a new
    /// connection here, made at `stamp` (ALGORITHM.md, "Sessions across
    /// nodes"). Returns the session if one had it, and a peer that kept a
    /// connection of the client made after `stamp`, if one did. Waits at most
    /// `forward_timeout_ms` for the answers.
    pub async fn take_over(&self, client: &ByteString, discard: bool, stamp: Stamp, now: Millis) -> Takeover {
        self.connecting.lock().insert(client.clone(), (stamp, false));
        let links: Vec<Arc<Link>> =
            self.links.lock().values().filter(|l| l.connected.load(Ordering::Acquire)).cloned().collect();
        let mut waiting = Vec::with_capacity(links.len());
        let until = now + self.config.forward_timeout_ms;
        for link in links {
            let id = self.next_call.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            self.calls.lock().insert(id, tx);
            link.push_call(id, until, PeerMessage::Takeover { id, client: client.clone(), discard, stamp });
            waiting.push((id, link, rx));
        }
        let mut outcome = Takeover::default();
        let wait = Duration::from_millis(self.config.forward_timeout_ms);
        let _ = tokio::time::timeout(wait, async {
            for (_, link, rx) in waiting.iter_mut() {
                let peer = &link.peer;
                if let Ok((transfer, newer)) = rx.await {
                    outcome.answered.push(peer.clone());
                    outcome.session = outcome.session.take().or(transfer);
                    if let Some(newer) = newer
                        && outcome.newer.as_ref().is_none_or(|(_, s)| *s < newer)
                    {
                        outcome.newer = Some((peer.clone(), newer));
                    }
                }
            }
        })
        .await;
        let mut calls = self.calls.lock();
        for (id, _, _) in &waiting {
            calls.remove(id);
        }
        drop(calls);
        // The link the call went on, or the one that adopted its calls since (a peer back from a partition).
        let current: Vec<Arc<Link>> = {
            let (links, parked) = (self.links.lock(), self.parked.lock());
            waiting.iter().filter_map(|(_, l, _)| links.get(&l.peer).or_else(|| parked.get(&l.peer)).cloned()).collect()
        };
        for (id, link, _) in &waiting {
            link.call_done(*id);
            for other in current.iter().filter(|c| c.peer == link.peer && !Arc::ptr_eq(c, link)) {
                other.call_done(*id);
            }
        }
        outcome
    }

    /// Connection `conn` of `client` attached here at `stamp`. Returns false
    /// when a later CONNECT of the client reached another node while this one
    /// was taking over: then this connection must close at once.
    pub fn connected(&self, conn: ConnId, client: &ByteString, stamp: Stamp) -> bool {
        self.conn_stamps.lock().insert(conn, (client.clone(), stamp));
        let mut connecting = self.connecting.lock();
        match connecting.get(client) {
            Some((s, lost)) if *s == stamp => {
                let lost = *lost;
                connecting.remove(client);
                !lost
            }
            _ => true,
        }
    }

    /// A takeover request from `from` for `client` made at `stamp`, while a
    /// CONNECT of the client here may be waiting for its own takeover: the
    /// later of the two wins. Returns the stamp of a later CONNECT here.
    pub fn race(&self, from: &NodeName, client: &str, stamp: Stamp) -> Option<Stamp> {
        let mut connecting = self.connecting.lock();
        let (mine, lost) = connecting.get_mut(client)?;
        if (*mine, &self.node) > (stamp, from) {
            return Some(*mine);
        }
        *lost = true;
        None
    }

    /// `client` connected here at `stamp`, and the peers not in `answered`
    /// did not hear of it (unreachable, or slow to answer): each is told, so
    /// that a connection of the client it kept meanwhile is settled
    /// (ALGORITHM.md, "Sessions across nodes"). A link that is down sends it
    /// when it is up again.
    pub fn announce(&self, client: &ByteString, stamp: Stamp, answered: &[NodeName]) {
        let links: Vec<Arc<Link>> = self.links.lock().values().cloned().collect();
        for link in links.iter().filter(|l| !answered.contains(&l.peer)) {
            link.push_request(PeerMessage::Connected { clients: vec![(client.clone(), stamp)] });
        }
    }

    /// Connection `conn` is gone.
    pub fn disconnected(&self, conn: ConnId) {
        self.conn_stamps.lock().remove(&conn);
    }

    /// When `client`'s live connection here was made, if it has one.
    pub fn connected_at(&self, broker: &Broker, client: &str) -> Option<Stamp> {
        let conn = broker.connection_of(client)?;
        self.conn_stamps.lock().get(&conn).filter(|(c, _)| c == client).map(|(_, s)| *s)
    }

    /// Every client connected here, with when it connected.
    pub fn connected_clients(&self, broker: &Broker) -> Vec<(ByteString, Stamp)> {
        let stamps = self.conn_stamps.lock();
        let mut clients: Vec<_> = stamps
            .iter()
            .filter(|(conn, (client, _))| broker.connection_of(client) == Some(**conn))
            .map(|(_, (client, stamp))| (client.clone(), *stamp))
            .collect();
        clients.sort();
        clients
    }

    /// `peer` has `client` connected since `peer_stamp`. If this node's
    /// connection of the client is older (ties: the smaller node name is
    /// older), it loses: closed with 0x8E and its session discarded, as a
    /// takeover with clean start would. Returns whether it lost.
    pub fn settle(&self, broker: &mut Broker, peer: &NodeName, client: &str, peer_stamp: Stamp, now: Millis) -> bool {
        broker.observe_stamp(peer_stamp);
        let Some(mine) = self.connected_at(broker, client) else { return false };
        if (mine, &self.node) >= (peer_stamp, peer) {
            return false;
        }
        tracing::info!(%client, %peer, "client connected on two nodes: the later connection, on the peer, wins");
        self.lose(broker, client, Some(peer), now);
        true
    }

    /// Closes `client`'s connection here with 0x8E: a later connection of
    /// the client lives on another node, `winner` when known. Its session
    /// ends here; the messages it held go to the winner's session.
    pub fn lose(&self, broker: &mut Broker, client: &str, winner: Option<&NodeName>, now: Millis) {
        self.duplicates_settled.fetch_add(1, Ordering::Relaxed);
        match winner {
            Some(winner) => broker.hand_messages_to(client, winner, now),
            None => drop(broker.export_session(client, true, now)),
        }
    }

    /// A CONNECT that took over did not attach (refused): forget it.
    pub fn connect_failed(&self, client: &ByteString, stamp: Stamp) {
        let mut connecting = self.connecting.lock();
        if connecting.get(client).is_some_and(|(s, _)| *s == stamp) {
            connecting.remove(client);
        }
    }

    pub fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Hands the core's output to the links. Called under the broker lock, so
    /// deltas reach each link in the order the router made them.
    /// `route_incarnation` tells which incarnation of a node the routes held
    /// for it came from: a forward for a node with routes and no link yet
    /// (its routes came on its own link before membership here reported it
    /// up) waits for that incarnation in a parked link instead of being lost.
    pub fn dispatch(
        &self,
        changes: Vec<RouteChange>,
        retained: Vec<RetainedUpdate>,
        forwards: Vec<(NodeName, Box<Forward>)>,
        route_incarnation: impl Fn(&NodeName) -> Option<u64>,
    ) {
        if changes.is_empty() && retained.is_empty() && forwards.is_empty() {
            return;
        }
        let links = self.links.lock();
        if !changes.is_empty() {
            for link in links.values() {
                link.push_deltas(&changes);
            }
        }
        if !retained.is_empty() {
            for link in links.values() {
                link.push_retained(&retained);
            }
        }
        let mut parked = if forwards.is_empty() { None } else { Some(self.parked.lock()) };
        for (node, forward) in forwards {
            if !links.contains_key(&node)
                && let Some(parked) = parked.as_mut()
                && !parked.contains_key(&node)
                && let Some(incarnation) = route_incarnation(&node)
            {
                // Adopted when membership reports that incarnation up; bounded like any link.
                parked.insert(node.clone(), Link::new(node.clone(), incarnation));
            }
            let link = links.get(&node).or_else(|| parked.as_ref().and_then(|p| p.get(&node)));
            let queued = link.is_some_and(|link| link.push_forward(forward));
            if !queued {
                self.forwards_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Peers and whether their outbound link is up, sorted by name.
    pub fn peers(&self) -> Vec<(NodeName, u64, bool)> {
        let mut peers: Vec<_> = self
            .links
            .lock()
            .values()
            .map(|l| (l.peer.clone(), l.incarnation, l.connected.load(Ordering::Acquire)))
            .collect();
        peers.sort();
        peers
    }

    /// Per peer (live or parked), the forwards waiting to be sent or acknowledged.
    pub fn forwards_pending(&self) -> Vec<(NodeName, usize)> {
        let links = self.links.lock();
        let parked = self.parked.lock();
        let mut pending: Vec<_> =
            links.values().chain(parked.values()).map(|l| (l.peer.clone(), l.forwards_held())).collect();
        pending.sort();
        pending
    }

    /// Waits (at most `max`) until membership has announced the leave.
    pub async fn wait_left(&self, max: Duration) {
        let mut left = self.left.subscribe();
        let _ = tokio::time::timeout(max, left.wait_for(|l| *l)).await;
    }

    /// Starts a graceful leave: membership announces it, links close.
    pub fn leave(&self) {
        self.leave.send_replace(true);
        for link in self.links.lock().values() {
            link.stop();
        }
    }
}

/// A takeover call's answer from one peer: the session, and a newer
/// connection of the client that the peer kept.
type TakeoverAnswer = (Option<Box<WireSession>>, Option<Stamp>);

/// What a takeover found across the cluster.
#[derive(Debug, Default)]
pub struct Takeover {
    /// The session, from the peer that held it.
    pub session: Option<Box<WireSession>>,
    /// A peer that kept a connection of the client made after the request's, and when it was made.
    pub newer: Option<(NodeName, Stamp)>,
    /// The peers that answered; the others may hold an older connection of the client.
    pub answered: Vec<NodeName>,
}

/// A will this node guards for a peer.
#[derive(Debug)]
pub struct Guarded {
    origin: NodeName,
    incarnation: u64,
    guard: WillGuard,
}

/// Drains the core's cluster output into the links (see [`ClusterShell::dispatch`]).
pub fn dispatch_from(broker: &mut Broker, shell: &ClusterShell) {
    let changes = broker.take_route_changes();
    let retained = broker.take_retained_updates();
    let forwards = broker.take_forwards();
    let remote = broker.cluster().map(|c| &c.remote);
    shell.dispatch(changes, retained, forwards, |node| remote.and_then(|r| r.epoch(node)).map(|e| e.incarnation));
    shell.route_wills(broker.take_will_events());
}

/// Guards every will held here anew after a membership change: a will whose
/// guardian changed is released at the old one and sent to the new one.
fn rehome_wills(shared: &Shared) {
    shared.with_broker(|broker, _| {
        if let Some(shell) = &shared.cluster {
            shell.route_wills(broker.wills_held());
        }
    });
}

/// `origin` (this incarnation) went down: after the grace period, unless it
/// came back, publish the wills it had this node guard, each after its delay
/// (bounded by its session expiry), unless the client reconnected meanwhile.
fn publish_wills_of(shared: Arc<Shared>, origin: NodeName, incarnation: u64) {
    let Some(shell) = shared.cluster.clone() else { return };
    let grace = Duration::from_millis(shell.config.route_grace_ms);
    let s = Arc::clone(&shared);
    shared.runtime.spawn(async move {
        tokio::time::sleep(grace).await;
        let back = shell.links.lock().get(&origin).is_some_and(|l| l.incarnation == incarnation);
        if back {
            return; // A false suspicion: the node still holds its wills.
        }
        let orphans: Vec<(ByteString, u32)> = shell
            .guarding
            .lock()
            .iter()
            .filter(|(_, g)| g.origin == origin && g.incarnation == incarnation)
            .map(|(client, g)| (client.clone(), g.guard.delay_secs.min(g.guard.expiry_secs)))
            .collect();
        for (client, delay) in orphans {
            let s = Arc::clone(&s);
            let shell = Arc::clone(&shell);
            let origin = origin.clone();
            s.runtime.clone().spawn(async move {
                tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
                if shell.links.lock().get(&origin).is_some_and(|l| l.incarnation == incarnation) {
                    return; // Back during the will's delay: a false suspicion after all; it holds the will.
                }
                let guarded = {
                    let mut guarding = shell.guarding.lock();
                    match guarding.get(&client) {
                        Some(g) if g.origin == origin && g.incarnation == incarnation => guarding.remove(&client),
                        _ => None,
                    }
                };
                let guarded = guarded.filter(|_| !crate::buggify::fires(crate::buggify::Bug::LoseWillOfDeadNode)); // sim-bugs
                if let Some(g) = guarded {
                    let will = will_from_wire(&g.guard);
                    let who = crate::authz::ClientInfo {
                        client_id: client.clone(),
                        username: g.guard.username.clone(),
                        peer: g.guard.peer,
                    };
                    s.with_broker(|broker, now| broker.publish_orphan_will(&who, &will, now));
                    tracing::info!(%client, node = %origin, "will published for a node that died");
                }
            });
        }
    });
}

/// Starts the cluster tasks of a node whose core already joined the cluster.
pub(crate) async fn start(shared: Arc<Shared>) -> std::io::Result<SocketAddr> {
    let Some(shell) = shared.cluster.clone() else { return Err(std::io::Error::other("not a cluster member")) };
    let mut listener = shared.runtime.network.bind(shell.config.bind).await?;
    let bound = listener.local_addr()?;
    let accept_shared = Arc::clone(&shared);
    shared.runtime.spawn(async move {
        loop {
            match listener.accept().await {
                Ok(accepted) => {
                    let s = Arc::clone(&accept_shared);
                    accept_shared.runtime.spawn(async move {
                        if let Err(error) = serve_inbound(s, accepted.stream).await {
                            tracing::info!(peer = %accepted.peer, %error, "inbound peer link closed");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "peer accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });

    let (events_tx, events) = mpsc::unbounded_channel();
    let me = Member { name: shell.node.to_string(), incarnation: shell.incarnation, addr: bound };
    let membership_seed = shell.incarnation;
    let membership = run_membership(
        shared.runtime.clone(),
        shell.config.clone(),
        me,
        membership_seed,
        events_tx,
        shell.leave.subscribe(),
    );
    let left_shell = Arc::clone(&shell);
    shared.runtime.spawn(async move {
        membership.await;
        left_shell.left.send_replace(true);
    });
    shared.runtime.spawn(follow_membership(Arc::clone(&shared), events));
    tracing::info!(node = %shell.node, incarnation = shell.incarnation, %bound, "cluster member started");
    Ok(bound)
}

/// Opens a link to each member that comes up, closes it when the member goes
/// down, and removes a down member's routes after the grace period.
async fn follow_membership(shared: Arc<Shared>, mut events: mpsc::UnboundedReceiver<MembershipEvent>) {
    let Some(shell) = shared.cluster.clone() else { return };
    while let Some(event) = events.recv().await {
        match event {
            MembershipEvent::Up(member) => {
                let name = NodeName::from(member.name.clone());
                if name == shell.node {
                    continue;
                }
                let mut links = shell.links.lock();
                if links.get(&name).is_some_and(|l| l.incarnation == member.incarnation) {
                    continue;
                }
                // A link to an earlier incarnation (a restart before failure detection noticed).
                let mut restarted = false;
                let mut orphans = Vec::new();
                if let Some(old) = links.remove(&name) {
                    old.stop();
                    orphans = old.take_forwards();
                    restarted = true;
                }
                let link = Link::new(name.clone(), member.incarnation);
                let parked = shell.parked.lock().remove(&name);
                match parked {
                    // A partition healed: what waited for the node goes out now.
                    Some(old) if old.incarnation == member.incarnation => link.adopt_forwards(&old),
                    Some(old) => {
                        orphans.extend(old.take_forwards());
                        restarted = true;
                    }
                    None => {}
                }
                links.insert(name.clone(), Arc::clone(&link));
                drop(links);
                let stale_routes = shared.with_broker(|broker, now| {
                    // Not reachable until its link is up (the link task starts below): meanwhile a
                    // shared group is served by a reachable member.
                    broker.set_reachable(&name, false);
                    if restarted {
                        // A new incarnation: the old one's sessions are gone with what was waiting for them.
                        broker.node_down(&name);
                    }
                    // Routes of an earlier incarnation name sessions that are gone: a publish must not
                    // choose the node for a shared group on their account (found by `simulation
                    // replay --scenario shared --seed 4`). The new incarnation's snapshot brings its own.
                    let c = broker.cluster_mut()?;
                    let stale = c.remote.epoch(&name).is_some_and(|e| e.incarnation != member.incarnation);
                    if stale {
                        c.remote.remove_origin(&name);
                    }
                    // Its shared groups' messages go to other members.
                    broker.reroute_groups(&name, orphans, now);
                    Some(stale)
                });
                if stale_routes == Some(true) {
                    shell.request_routes(&name);
                }
                tracing::info!(peer = %name, incarnation = member.incarnation, addr = %member.addr, "member up");
                shared.runtime.spawn(run_outbound(Arc::clone(&shared), link, member.addr));
                rehome_wills(&shared);
            }
            MembershipEvent::Down(member) => {
                let name = NodeName::from(member.name.clone());
                let removed = {
                    let mut links = shell.links.lock();
                    match links.get(&name) {
                        Some(l) if l.incarnation == member.incarnation => links.remove(&name),
                        _ => None,
                    }
                };
                let Some(link) = removed else { continue };
                link.stop();
                tracing::info!(peer = %name, incarnation = member.incarnation, "member down");
                // Its forwards wait out the grace period: a partition looks like this too.
                shell.parked.lock().insert(name.clone(), link);
                rehome_wills(&shared);
                publish_wills_of(Arc::clone(&shared), name.clone(), member.incarnation);
                let grace = Duration::from_millis(shell.config.route_grace_ms);
                let s = Arc::clone(&shared);
                let incarnation = member.incarnation;
                shared.runtime.spawn(async move {
                    tokio::time::sleep(grace).await;
                    let Some(shell) = s.cluster.clone() else { return };
                    if shell.links.lock().contains_key(&name) {
                        return; // It came back; its new snapshot replaced the routes.
                    }
                    let parked = {
                        let mut parked = shell.parked.lock();
                        match parked.get(&name) {
                            Some(l) if l.incarnation == incarnation => parked.remove(&name),
                            _ => None,
                        }
                    };
                    let orphans = parked.as_ref().map(|p| p.take_forwards()).unwrap_or_default();
                    if !orphans.is_empty() {
                        shell.forwards_dropped.fetch_add(orphans.len() as u64, Ordering::Relaxed);
                        tracing::warn!(peer = %name, forwards = orphans.len(), "forwards to a departed member dropped");
                    }
                    s.with_broker(|broker, now| {
                        // Departed: acknowledgements waiting for it are released (its sessions are gone).
                        broker.node_down(&name);
                        if let Some(c) = broker.cluster_mut() {
                            c.remote.remove_origin(&name);
                        }
                        // Its shared groups' messages go to other members.
                        broker.reroute_groups(&name, orphans, now);
                    });
                    shell.request_routes(&name);
                    tracing::info!(peer = %name, "routes of a departed member removed");
                });
            }
        }
    }
}
