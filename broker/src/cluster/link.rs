//! Peer links (ALGORITHM.md, "Peer links"): the outbound link to one peer
//! carries this node's snapshot, route deltas and forwards, and reads back
//! the peer's forward acknowledgements; an inbound link applies what a peer
//! sends and acknowledges its forwards.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use broker_sync::Signal;
use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::routes::{Epoch, NodeName};
use super::wire::{self, Forward, PeerMessage};
use crate::core::cluster::RetainedUpdate;
use crate::core::router::RouteChange;
use crate::seam::{Millis, Stream};
use crate::server::Shared;

/// Forwards waiting for one link; beyond this they are dropped and counted.
pub const LINK_FORWARDS_MAX: usize = 10_000;
/// Route deltas waiting for one link; beyond this they are replaced by a fresh snapshot.
pub const LINK_DELTAS_MAX: usize = 100_000;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Bytes written to the socket at once.
const WRITE_BATCH_MAX: usize = 256 * 1024;

/// What waits to go out on one link. Filled by the dispatcher under the
/// broker lock, so deltas queue in the order the router made them.
#[derive(Debug, Default)]
pub struct LinkQueue {
    deltas: Vec<RouteChange>,
    retained: Vec<RetainedUpdate>,
    /// Deltas were dropped: the link must send a fresh snapshot.
    needs_snapshot: bool,
    forwards: VecDeque<Box<Forward>>,
    /// Forwards written with `ack` set and not yet acknowledged, oldest first:
    /// a broken connection loses them, so the next one to the same incarnation
    /// sends them again (the receiver drops ids it has seen).
    unacked: VecDeque<Box<Forward>>,
    /// Messages to the peer: calls (takeover requests, answered on the same
    /// socket) and will guards and releases.
    requests: Vec<PeerMessage>,
    /// Calls not answered yet, by id: sent again on the next connection, as
    /// the answer to one sent on a broken connection is lost with it (the
    /// peer answers a call that comes again the same: `super::handover`).
    calls: Vec<(u64, Millis, PeerMessage)>,
}

/// The outbound link to one peer, as the rest of the node sees it.
#[derive(Debug)]
pub struct Link {
    pub peer: NodeName,
    pub incarnation: u64,
    queue: Mutex<LinkQueue>,
    /// The link task's wake-up (loom-checked in broker/sync).
    ready: Signal,
    pub connected: AtomicBool,
    stop: watch::Sender<bool>,
}

impl Link {
    pub fn new(peer: NodeName, incarnation: u64) -> Arc<Self> {
        Arc::new(Self {
            peer,
            incarnation,
            queue: Mutex::new(LinkQueue::default()),
            ready: Signal::new(),
            connected: AtomicBool::new(false),
            stop: watch::channel(false).0,
        })
    }

    /// Queues route deltas; called under the broker lock.
    pub fn push_deltas(&self, changes: &[RouteChange]) {
        let mut q = self.queue.lock();
        if q.needs_snapshot {
            return; // The coming snapshot will include these.
        }
        if q.deltas.len() + changes.len() > LINK_DELTAS_MAX {
            q.deltas.clear();
            q.needs_snapshot = true;
        } else {
            q.deltas.extend_from_slice(changes);
        }
        drop(q);
        self.ready.notify();
    }

    /// Queues retained writes; called under the broker lock. Like deltas, an
    /// overflow is repaired by a fresh snapshot (which carries every retained write).
    pub fn push_retained(&self, updates: &[RetainedUpdate]) {
        let mut q = self.queue.lock();
        if q.needs_snapshot {
            return;
        }
        if q.retained.len() + updates.len() > LINK_DELTAS_MAX {
            q.retained.clear();
            q.needs_snapshot = true;
        } else {
            q.retained.extend_from_slice(updates);
        }
        drop(q);
        self.ready.notify();
    }

    /// Queues a forward; false (and nothing queued) when the queue is full.
    pub fn push_forward(&self, forward: Box<Forward>) -> bool {
        let mut q = self.queue.lock();
        if q.forwards.len() + q.unacked.len() >= LINK_FORWARDS_MAX {
            return false;
        }
        q.forwards.push_back(forward);
        drop(q);
        self.ready.notify();
        true
    }

    /// Queues a one-way message to the peer (a will to guard or release).
    pub fn push_request(&self, request: PeerMessage) {
        self.queue.lock().requests.push(request);
        self.ready.notify();
    }

    /// Queues call `id` to the peer (a takeover request), until
    /// [`Link::call_done`] or its caller's deadline `until`.
    pub fn push_call(&self, id: u64, until: Millis, request: PeerMessage) {
        let mut q = self.queue.lock();
        q.requests.push(request.clone());
        q.calls.push((id, until, request));
        drop(q);
        self.ready.notify();
    }

    /// Call `id` was answered, or its caller stopped waiting.
    pub fn call_done(&self, id: u64) {
        self.queue.lock().calls.retain(|(c, _, _)| *c != id);
    }

    /// Takes over the forwards of `old`, an earlier link to the same
    /// incarnation (parked while the peer was unreachable): the unacknowledged
    /// ones first, in the order they were first sent, then the queued ones.
    pub fn adopt_forwards(&self, old: &Link) {
        let (unacked, queued, requests, calls) = {
            let mut q = old.queue.lock();
            let taken = (std::mem::take(&mut q.unacked), std::mem::take(&mut q.forwards));
            (taken.0, taken.1, std::mem::take(&mut q.requests), std::mem::take(&mut q.calls))
        };
        let mut q = self.queue.lock();
        // Calls still waiting and messages not yet sent go too (the calls are sent again on connecting).
        let mut pending = requests;
        pending.append(&mut q.requests);
        q.requests = pending;
        q.calls.extend(calls);
        let mut forwards = unacked;
        forwards.extend(queued);
        forwards.extend(q.forwards.drain(..));
        q.forwards = forwards;
        drop(q);
        self.ready.notify();
    }

    /// Takes every forward this link holds (the peer departed), oldest first.
    pub fn take_forwards(&self) -> Vec<Box<Forward>> {
        let mut q = self.queue.lock();
        let mut forwards: Vec<Box<Forward>> = q.unacked.drain(..).collect();
        forwards.extend(q.forwards.drain(..));
        forwards
    }

    /// Forwards this link holds (queued or unacknowledged).
    pub fn forwards_held(&self) -> usize {
        let q = self.queue.lock();
        q.forwards.len() + q.unacked.len()
    }

    pub fn stop(&self) {
        self.stop.send_replace(true);
        self.ready.notify();
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Keeps the link to `link.peer` at `addr` up until it is stopped: dial,
/// Hello, snapshot, then deltas and forwards as they come.
pub(crate) async fn run_outbound(shared: Arc<Shared>, link: Arc<Link>, addr: std::net::SocketAddr) {
    let Some(cluster) = shared.cluster.clone() else { return };
    let mut backoff = BACKOFF_MIN;
    while !link.stopped() {
        match shared.runtime.network.connect(addr).await {
            Ok(stream) => {
                let generation = cluster.next_generation();
                let started = shared.now();
                let outcome = serve_outbound(&shared, &link, stream, generation).await;
                // A link that held is redialled at once; one closed right away backs off.
                if shared.now().saturating_sub(started) >= BACKOFF_MAX.as_millis() as u64 {
                    backoff = BACKOFF_MIN;
                }
                link.connected.store(false, Ordering::Release);
                shared.with_broker(|b, _| b.set_reachable(&link.peer, false));
                // Forwards in flight on the broken connection are still in `unacked`: the next
                // connection sends them again, so the acknowledgements held for them keep waiting.
                if let Err(error) = outcome {
                    tracing::info!(peer = %link.peer, %error, "peer link closed");
                }
            }
            Err(error) => tracing::debug!(peer = %link.peer, %addr, %error, "peer link: dial failed"),
        }
        if link.stopped() {
            break;
        }
        let mut stop = link.stop.subscribe();
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn serve_outbound(
    shared: &Arc<Shared>,
    link: &Link,
    stream: Box<dyn Stream>,
    generation: u64,
) -> Result<(), String> {
    let Some(cluster) = shared.cluster.clone() else { return Ok(()) };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut out = BytesMut::new();
    let hello = PeerMessage::Hello {
        protocol: wire::PROTOCOL_VERSION,
        cluster: cluster.cluster_name.clone(),
        node: cluster.node.clone(),
        incarnation: cluster.incarnation,
    };
    wire::encode(&hello, &mut out)?;
    let mut epoch = send_snapshot(shared, link, cluster.incarnation, generation, &mut writer, &mut out).await?;
    // The clients connected here: a client id connected on both sides while
    // this link was down is settled by the peer (ALGORITHM.md, "Sessions across nodes").
    let clients = shared.with_broker(|broker, _| cluster.connected_clients(broker));
    wire::encode(&PeerMessage::Connected { clients }, &mut out)?;
    writer.write_all(&out).await.map_err(|e| e.to_string())?;
    out.clear();
    {
        // What the last connection sent without an acknowledgement goes first, in its order.
        let mut q = link.queue.lock();
        let mut forwards = std::mem::take(&mut q.unacked);
        forwards.extend(q.forwards.drain(..));
        q.forwards = forwards;
        // Every call still waiting goes (again): its answer may have been lost with the last connection.
        let now = shared.now();
        q.calls.retain(|(_, until, _)| *until > now);
        let calls: Vec<PeerMessage> = q.calls.iter().map(|(_, _, call)| call.clone()).collect();
        q.requests.retain(|r| !matches!(r, PeerMessage::Takeover { .. }));
        q.requests.extend(calls);
    }
    link.connected.store(true, Ordering::Release);
    shared.with_broker(|b, _| b.set_reachable(&link.peer, true));
    tracing::info!(peer = %link.peer, generation, "peer link up");

    let peer = link.peer.clone();
    let acks_shared = Arc::clone(shared);
    let acks_link = link;
    let acks = async move {
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            while let Some(message) = wire::decode(&mut buf)? {
                match message {
                    PeerMessage::ForwardAck { id } => {
                        {
                            // Acknowledgements come in the order the forwards went out.
                            let mut q = acks_link.queue.lock();
                            while q.unacked.front().is_some_and(|f| f.id <= id) {
                                q.unacked.pop_front();
                            }
                        }
                        acks_shared.with_broker(|b, _| b.forward_acked(&peer, id))
                    }
                    PeerMessage::Session { id, transfer, newer } => {
                        acks_link.call_done(id);
                        if let Some(cluster) = &acks_shared.cluster {
                            cluster.answer(id, transfer, newer);
                        }
                    }
                    PeerMessage::Connected { clients } => settle(&acks_shared, &peer, clients),
                    PeerMessage::ResendRoutes => {
                        acks_link.queue.lock().needs_snapshot = true;
                        acks_link.ready.notify();
                    }
                    other => return Err(format!("unexpected {other:?} on an outbound link")),
                }
            }
            if reader.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                return Err::<(), String>("peer closed the link".into());
            }
        }
    };
    tokio::pin!(acks);
    let mut stop = link.stop.subscribe();
    loop {
        let (deltas, retained, forwards, requests, snapshot) = {
            let mut q = link.queue.lock();
            let snapshot = std::mem::take(&mut q.needs_snapshot);
            (
                std::mem::take(&mut q.deltas),
                std::mem::take(&mut q.retained),
                std::mem::take(&mut q.forwards),
                std::mem::take(&mut q.requests),
                snapshot,
            )
        };
        let deltas = if snapshot {
            // Deltas overflowed, or the peer lost our routes: a fresh snapshot under a new
            // generation replaces whatever it held (the deltas taken above are in it).
            epoch = send_snapshot(shared, link, cluster.incarnation, cluster.next_generation(), &mut writer, &mut out)
                .await?;
            Vec::new()
        } else {
            deltas
        };
        let retained = if snapshot { Vec::new() } else { retained };
        for change in deltas {
            let message = match change {
                RouteChange::Added(filter) => PeerMessage::RouteAdd { epoch, filter },
                RouteChange::Removed(filter) => PeerMessage::RouteRemove { epoch, filter },
            };
            wire::encode(&message, &mut out)?;
            if out.len() >= WRITE_BATCH_MAX {
                writer.write_all(&out).await.map_err(|e| e.to_string())?;
                out.clear();
            }
        }
        if !retained.is_empty() {
            let now = shared.now();
            for update in retained {
                wire::encode(&PeerMessage::Retained(Box::new(update.to_wire(now))), &mut out)?;
                if out.len() >= WRITE_BATCH_MAX {
                    writer.write_all(&out).await.map_err(|e| e.to_string())?;
                    out.clear();
                }
            }
        }
        for request in requests {
            wire::encode(&request, &mut out)?;
        }
        let mut sent = Vec::new();
        let mut forwards = forwards.into_iter();
        while let Some(forward) = forwards.next() {
            let message = PeerMessage::Forward(forward);
            wire::encode(&message, &mut out)?;
            if let PeerMessage::Forward(forward) = message
                && forward.ack
            {
                sent.push(forward);
            }
            if out.len() >= WRITE_BATCH_MAX {
                link.queue.lock().unacked.extend(sent.drain(..));
                if let Err(error) = writer.write_all(&out).await {
                    // Not written: back to the front of the queue, behind the unacknowledged ones.
                    let mut q = link.queue.lock();
                    for forward in forwards.rev() {
                        q.forwards.push_front(forward);
                    }
                    return Err(error.to_string());
                }
                out.clear();
            }
        }
        if !sent.is_empty() {
            link.queue.lock().unacked.extend(sent);
        }
        if !out.is_empty() {
            writer.write_all(&out).await.map_err(|e| e.to_string())?;
            out.clear();
        }
        tokio::select! {
            () = link.ready.wait() => {}
            result = &mut acks => return result,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
}

/// Sends Routes (every route of this node) and every retained write it holds
/// as winning, for link generation `generation`; returns the epoch that the
/// deltas after it belong to. The snapshot and the reset of the link's queue
/// happen under the broker lock, so every delta queued after it is one the
/// snapshot does not contain.
async fn send_snapshot(
    shared: &Arc<Shared>,
    link: &Link,
    incarnation: u64,
    generation: u64,
    writer: &mut (impl AsyncWriteExt + Unpin),
    out: &mut BytesMut,
) -> Result<Epoch, String> {
    let epoch = Epoch { incarnation, generation };
    let (routes, retained, now) = shared.with_broker(|broker, now| {
        let mut q = link.queue.lock();
        q.deltas.clear();
        q.retained.clear();
        q.needs_snapshot = false;
        (broker.local_routes(), broker.retained_snapshot(), now)
    });
    wire::encode(&PeerMessage::Routes { epoch, filters: routes }, out)?;
    for update in retained {
        wire::encode(&PeerMessage::Retained(Box::new(update.to_wire(now))), out)?;
        if out.len() >= WRITE_BATCH_MAX {
            writer.write_all(out).await.map_err(|e| e.to_string())?;
            out.clear();
        }
    }
    writer.write_all(out).await.map_err(|e| e.to_string())?;
    out.clear();
    Ok(epoch)
}

/// `peer` has these clients connected: settles each one connected here too.
fn settle(shared: &Shared, peer: &NodeName, clients: Vec<(bytestring::ByteString, crate::core::cluster::Stamp)>) {
    let Some(cluster) = &shared.cluster else { return };
    shared.with_broker(|broker, now| {
        for (client, stamp) in clients {
            cluster.settle(broker, peer, &client, stamp, now);
        }
    });
}

/// Serves one inbound link: a peer's routes and forwards, answered with acknowledgements.
pub(crate) async fn serve_inbound(shared: Arc<Shared>, stream: Box<dyn Stream>) -> Result<(), String> {
    let Some(cluster) = shared.cluster.clone() else { return Ok(()) };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut origin: Option<NodeName> = None;
    let mut origin_incarnation = 0;
    let mut acks = BytesMut::new();
    // Set at Hello: fires when this node dropped the origin's routes and needs them again.
    let mut resend: Option<Arc<Signal>> = None;
    loop {
        while let Some(message) = wire::decode(&mut buf)? {
            let Some(from) = origin.clone() else {
                match message {
                    PeerMessage::Hello { protocol, cluster: name, node, incarnation } => {
                        if protocol != wire::PROTOCOL_VERSION {
                            return Err(format!("peer {node} speaks protocol {protocol}"));
                        }
                        if name != cluster.cluster_name {
                            return Err(format!("peer {node} belongs to cluster {name:?}"));
                        }
                        resend = Some(cluster.admit_inbound(&node));
                        origin = Some(node);
                        origin_incarnation = incarnation;
                        continue;
                    }
                    other => return Err(format!("expected Hello, got {other:?}")),
                }
            };
            match message {
                PeerMessage::Routes { epoch, filters } => shared.with_broker(|b, _| {
                    if let Some(c) = b.cluster_mut() {
                        c.remote.apply_snapshot(&from, epoch, filters);
                    }
                }),
                PeerMessage::RouteAdd { epoch, filter } => shared.with_broker(|b, _| {
                    if let Some(c) = b.cluster_mut() {
                        c.remote.apply_add(&from, epoch, filter);
                    }
                }),
                PeerMessage::RouteRemove { epoch, filter } => shared.with_broker(|b, _| {
                    if let Some(c) = b.cluster_mut() {
                        c.remote.apply_remove(&from, epoch, &filter);
                    }
                }),
                PeerMessage::Forward(forward) => {
                    let (id, ack) = (forward.id, forward.ack);
                    // A forward sent again after a broken connection is delivered once.
                    if cluster.first_receipt(&from, origin_incarnation, id) {
                        shared.with_broker(|b, now| b.handle_forward(&from, origin_incarnation, *forward, now));
                    }
                    if ack {
                        wire::encode(&PeerMessage::ForwardAck { id }, &mut acks)?;
                    }
                }
                PeerMessage::Retained(write) => {
                    shared.with_broker(|b, now| b.apply_remote_retained(RetainedUpdate::from_wire(*write, now)))
                }
                PeerMessage::WillGuard(guard) => cluster.guard(&from, origin_incarnation, *guard),
                PeerMessage::WillRelease { client } => cluster.unguard(Some(&from), &client),
                PeerMessage::Takeover { id, client, discard, stamp } => {
                    let answer = shared.with_broker(|b, now| {
                        b.observe_stamp(stamp);
                        if let Some(session) = cluster.handovers.replay(&client, &from, stamp, now) {
                            return Ok(Some(session)); // The call came again: its answer was lost.
                        }
                        let newer = match cluster.connected_at(b, &client) {
                            // A request that a partition held back, older than the connection here.
                            Some(mine) if (mine, &cluster.node) > (stamp, &from) => Some(mine),
                            Some(_) => None,
                            // Two CONNECTs racing: the later one wins wherever it is.
                            None => cluster.race(&from, &client, stamp),
                        };
                        match newer {
                            Some(mine) => Err(mine),
                            None => {
                                let transfer = b.export_session(&client, discard, now);
                                let Some(transfer) = transfer else { return Ok(None) };
                                // Forwards routed before the move and arriving after it follow the session.
                                b.session_moved(&from, &transfer, now);
                                let wire = Box::new(transfer.to_wire(now));
                                let until = now + cluster.config.forward_timeout_ms.saturating_mul(2);
                                cluster.handovers.record(client.clone(), from.clone(), stamp, wire.clone(), now, until);
                                Ok(Some(wire))
                            }
                        }
                    });
                    match answer {
                        Ok(transfer) => {
                            // The client is back (connecting elsewhere): a will guarded for it is void.
                            cluster.unguard(None, &client);
                            if transfer.is_some() {
                                tracing::info!(%client, to = %from, "session handed over");
                            }
                            wire::encode(&PeerMessage::Session { id, transfer, newer: None }, &mut acks)?;
                        }
                        Err(mine) => {
                            tracing::info!(%client, from = %from, "takeover refused: the connection here is newer");
                            wire::encode(&PeerMessage::Session { id, transfer: None, newer: Some(mine) }, &mut acks)?;
                            // The requester may have stopped waiting and connected the client anyway.
                            let clients = vec![(client, mine)];
                            wire::encode(&PeerMessage::Connected { clients }, &mut acks)?;
                        }
                    }
                }
                PeerMessage::Connected { clients } => settle(&shared, &from, clients),
                PeerMessage::Session { .. } | PeerMessage::ResendRoutes => {
                    return Err("a reply on an inbound link".into());
                }
                PeerMessage::Hello { .. } => return Err("a second Hello".into()),
                PeerMessage::ForwardAck { .. } => return Err("ForwardAck on an inbound link".into()),
            }
        }
        if !acks.is_empty() {
            writer.write_all(&acks).await.map_err(|e| e.to_string())?;
            acks.clear();
        }
        let read = match &resend {
            Some(resend) => tokio::select! {
                read = reader.read_buf(&mut buf) => read,
                () = resend.wait() => {
                    wire::encode(&PeerMessage::ResendRoutes, &mut acks)?;
                    continue;
                }
            },
            None => reader.read_buf(&mut buf).await,
        };
        if read.map_err(|e| e.to_string())? == 0 {
            return Ok(());
        }
    }
}
