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
use crate::core::Broker;
use crate::core::cluster::{RetainedUpdate, WillEvent, will_from_wire};
use crate::core::router::RouteChange;
use crate::core::router::stable_hash;
use crate::server::Shared;

/// One node's view of its cluster, shared by its tasks.
#[derive(Debug)]
pub struct ClusterShell {
    pub node: NodeName,
    pub incarnation: u64,
    pub cluster_name: ByteString,
    pub config: ClusterConfig,
    links: Mutex<AHashMap<NodeName, Arc<Link>>>,
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
    calls: Mutex<AHashMap<u64, oneshot::Sender<Option<Box<WireSession>>>>>,
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
            generation: AtomicU64::new(0),
            forwards_dropped: AtomicU64::new(0),
            leave: watch::channel(false).0,
            calls: Mutex::new(AHashMap::new()),
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

    /// A peer answered takeover call `id`.
    pub fn answer(&self, id: u64, transfer: Option<Box<WireSession>>) {
        if let Some(waiter) = self.calls.lock().remove(&id) {
            let _ = waiter.send(transfer);
        }
    }

    /// Asks every reachable peer to give up `client`'s session for a new
    /// connection here (ALGORITHM.md, "Sessions across nodes"); returns the
    /// session if one had it. Waits at most `forward_timeout_ms` for the answers.
    pub async fn take_over(&self, client: &ByteString, discard: bool) -> Option<Box<WireSession>> {
        let links: Vec<Arc<Link>> =
            self.links.lock().values().filter(|l| l.connected.load(Ordering::Acquire)).cloned().collect();
        let mut waiting = Vec::with_capacity(links.len());
        for link in links {
            let id = self.next_call.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            self.calls.lock().insert(id, tx);
            link.push_request(PeerMessage::Takeover { id, client: client.clone(), discard });
            waiting.push((id, rx));
        }
        let mut found = None;
        let wait = Duration::from_millis(self.config.forward_timeout_ms);
        let _ = tokio::time::timeout(wait, async {
            for (_, rx) in waiting.iter_mut() {
                if let Ok(Some(transfer)) = rx.await {
                    found = found.take().or(Some(transfer));
                }
            }
        })
        .await;
        let mut calls = self.calls.lock();
        for (id, _) in &waiting {
            calls.remove(id);
        }
        drop(calls);
        found
    }

    pub fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Hands the core's output to the links. Called under the broker lock, so
    /// deltas reach each link in the order the router made them.
    pub fn dispatch(
        &self,
        changes: Vec<RouteChange>,
        retained: Vec<RetainedUpdate>,
        forwards: Vec<(NodeName, Box<Forward>)>,
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
        for (node, forward) in forwards {
            let queued = links.get(&node).is_some_and(|link| link.push_forward(forward));
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
    shell.dispatch(changes, retained, forwards);
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
                let guarded = {
                    let mut guarding = shell.guarding.lock();
                    match guarding.get(&client) {
                        Some(g) if g.origin == origin && g.incarnation == incarnation => guarding.remove(&client),
                        _ => None,
                    }
                };
                if let Some(g) = guarded {
                    let will = will_from_wire(&g.guard);
                    s.with_broker(|broker, now| broker.publish_orphan_will(&client, &will, now));
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
                if let Some(old) = links.remove(&name) {
                    old.stop();
                }
                let link = Link::new(name.clone(), member.incarnation);
                links.insert(name.clone(), Arc::clone(&link));
                drop(links);
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
                shared.with_broker(|broker, _| broker.node_down(&name));
                rehome_wills(&shared);
                publish_wills_of(Arc::clone(&shared), name.clone(), member.incarnation);
                let grace = Duration::from_millis(shell.config.route_grace_ms);
                let s = Arc::clone(&shared);
                shared.runtime.spawn(async move {
                    tokio::time::sleep(grace).await;
                    let Some(shell) = s.cluster.clone() else { return };
                    if shell.links.lock().contains_key(&name) {
                        return; // It came back; its new snapshot replaced the routes.
                    }
                    s.with_broker(|broker, _| {
                        if let Some(c) = broker.cluster_mut() {
                            c.remote.remove_origin(&name);
                        }
                    });
                    shell.request_routes(&name);
                    tracing::info!(peer = %name, "routes of a departed member removed");
                });
            }
        }
    }
}
