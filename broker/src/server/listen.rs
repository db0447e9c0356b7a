//! The listeners: binding each configured one, the accept loop of the
//! stream kinds (TCP, TLS, WebSocket, WebSocket over TLS), and the hand-over
//! of an accepted, handshaken stream to a connection task. QUIC has its own
//! loop (`quic.rs`) and joins at [`serve_accepted`].
//!
//! Each listener counts its own connections against its `max_connections`
//! from accept on, handshakes included, so that a flood of half-open TLS
//! sockets cannot take more than the listener's share.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytestring::ByteString;
use mqtt_codec::Connect;

use super::certs::{CertSet, PeerCert};
use super::{Shared, connection, quic, tls, ws};
use crate::auth::TransportInfo;
use crate::config::{ListenerEntry, ListenerKind, PeerCertField, WsOptions};
use crate::seam::{Accepted, Listener};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A bound listener, as [`crate::Server::listeners`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundListener {
    pub kind: ListenerKind,
    pub name: String,
    /// The address it listens on (UDP for QUIC), with the port the system chose for port 0.
    pub addr: SocketAddr,
}

/// One listener's share of the broker: its identity and limits, and the
/// connections it holds.
pub(super) struct ListenerCtx {
    /// `kind:name`.
    pub id: String,
    max_connections: usize,
    /// For the TLS / WebSocket handshake, and again for the CONNECT.
    pub connect_timeout: Duration,
    /// Sockets accepted and not yet closed, handshakes included.
    live: AtomicUsize,
    peer_cert_as_username: PeerCertField,
    peer_cert_as_clientid: PeerCertField,
    /// Proxies whose forwarded client address a WebSocket listener trusts:
    /// a connection from one is limited per address by the client's, after
    /// its handshake, not by the proxy's (which all its clients share).
    trusted_proxies: Vec<crate::authz::cidr::Cidr>,
}

impl ListenerCtx {
    fn new(entry: &ListenerEntry<'_>) -> Self {
        let tls = entry.tls();
        Self {
            id: entry.id(),
            max_connections: entry.max_connections().get(),
            connect_timeout: Duration::from_secs(u64::from(entry.connect_timeout_secs().get())),
            live: AtomicUsize::new(0),
            peer_cert_as_username: tls.as_ref().map_or(PeerCertField::Disabled, |t| t.peer_cert_as_username),
            peer_cert_as_clientid: tls.as_ref().map_or(PeerCertField::Disabled, |t| t.peer_cert_as_clientid),
            trusted_proxies: entry
                .websocket()
                .filter(|ws| ws.proxy_address_header.is_some())
                .map(|ws| ws.trusted_proxies)
                .unwrap_or_default(),
        }
    }

    fn is_trusted_proxy(&self, peer: SocketAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(peer.ip()))
    }

    /// A place for one more connection from `peer`: the connection rate limits
    /// and bans come first (`limits.rs`), then this listener's `max_connections`.
    pub fn admit(self: &Arc<Self>, shared: &Shared, peer: SocketAddr) -> Option<Slot> {
        let per_address = !self.is_trusted_proxy(peer);
        if !shared.limits.admit(&self.id, peer, per_address, shared.now()) {
            return None;
        }
        if self.live.fetch_add(1, Ordering::AcqRel) >= self.max_connections {
            self.live.fetch_sub(1, Ordering::AcqRel);
            shared.limits.refused_max_connections(&self.id, peer, self.max_connections);
            return None;
        }
        shared.limits.admitted(&self.id);
        Some(Slot(Arc::clone(self)))
    }
}

/// A connection's place in its listener's count, given back on drop.
pub(super) struct Slot(Arc<ListenerCtx>);

impl Slot {
    pub fn listener(&self) -> &ListenerCtx {
        &self.0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a listener decided for one connection before its CONNECT arrives.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    /// How long the client has to send its CONNECT.
    pub connect_timeout: Duration,
    /// Replaces the CONNECT's username (`peer_cert_as_username`).
    username: Option<ByteString>,
    /// Replaces the CONNECT's client id (`peer_cert_as_clientid`).
    client_id: Option<ByteString>,
}

impl Admission {
    /// Puts the certificate's names in the CONNECT, before authentication sees it.
    pub fn apply(&self, connect: &mut Connect) {
        if let Some(username) = &self.username {
            connect.username = Some(username.clone());
        }
        if let Some(client_id) = &self.client_id {
            connect.client_id = client_id.clone();
        }
    }
}

/// What a stream goes through between accept and MQTT.
enum Upgrade {
    Plain,
    Tls(Arc<CertSet>),
    Ws(Arc<WsOptions>, WebSocketConfig),
    Wss(Arc<CertSet>, Arc<WsOptions>, WebSocketConfig),
}

impl Upgrade {
    async fn apply(&self, accepted: Accepted) -> Result<(Accepted, Option<PeerCert>), String> {
        match self {
            Self::Plain => Ok((accepted, None)),
            Self::Tls(certs) => tls::handshake(certs, accepted).await,
            Self::Ws(options, config) => Ok((ws::upgrade(accepted, options, *config).await?, None)),
            Self::Wss(certs, options, config) => {
                let (accepted, cert) = tls::handshake(certs, accepted).await?;
                Ok((ws::upgrade(accepted, options, *config).await?, cert))
            }
        }
    }
}

/// Binds every enabled listener and starts its accept loop. Returns what was
/// bound and the certificate sets to reload. Certificates are loaded before
/// anything binds, so a bad file stops start-up with nothing left listening.
pub(super) async fn start_all(shared: &Arc<Shared>) -> io::Result<(Vec<BoundListener>, Vec<Arc<CertSet>>)> {
    let entries = shared.config.listeners.enabled();
    let mut sets = Vec::new();
    let mut loaded = Vec::new();
    for entry in &entries {
        let set = match entry.tls() {
            Some(options) => {
                let quic = entry.kind == ListenerKind::Quic;
                let set = CertSet::load(entry.label(), options, quic).map_err(io::Error::other)?;
                let set = Arc::new(set);
                sets.push(Arc::clone(&set));
                Some(set)
            }
            None => None,
        };
        loaded.push(set);
    }
    let mut bound = Vec::new();
    for (entry, set) in entries.iter().zip(loaded) {
        let ctx = Arc::new(ListenerCtx::new(entry));
        let addr = match (entry.kind, set) {
            (ListenerKind::Quic, Some(set)) => quic::start(Arc::clone(shared), ctx, entry.bind(), set)?,
            (kind, set) => {
                let frames = ws::config(shared.config.mqtt.max_packet_size.get());
                let upgrade = match (kind, set, entry.websocket()) {
                    (ListenerKind::Tcp, _, _) => Upgrade::Plain,
                    (ListenerKind::Tls, Some(set), _) => Upgrade::Tls(set),
                    (ListenerKind::Ws, _, Some(ws)) => Upgrade::Ws(Arc::new(ws), frames),
                    (ListenerKind::Wss, Some(set), Some(ws)) => Upgrade::Wss(set, Arc::new(ws), frames),
                    // Never serve in the clear what was configured with TLS.
                    _ => return Err(io::Error::other(format!("{}: TLS or WebSocket keys missing", entry.label()))),
                };
                let listener = shared.runtime.network.bind(entry.bind()).await.map_err(|e| {
                    io::Error::new(e.kind(), format!("{} bind = \"{}\": {e}", entry.label(), entry.bind()))
                })?;
                let addr = listener.local_addr()?;
                shared.runtime.spawn(accept_loop(Arc::clone(shared), ctx, listener, upgrade));
                addr
            }
        };
        tracing::info!(node = %shared.config.node.name, listener = %entry.id(), %addr, "broker listening");
        bound.push(BoundListener { kind: entry.kind, name: entry.name.to_owned(), addr });
    }
    Ok((bound, sets))
}

async fn accept_loop(shared: Arc<Shared>, ctx: Arc<ListenerCtx>, mut listener: Box<dyn Listener>, upgrade: Upgrade) {
    let upgrade = Arc::new(upgrade);
    let mut shutdown = shared.shutting_down.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let accepted = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(listener = %ctx.id, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Dropping the socket of a full listener closes it.
        let Some(slot) = ctx.admit(&shared, accepted.peer) else { continue };
        // Boxed apart from the task: a TLS or WebSocket handshake's state is
        // large and lasts a moment, and the task's own future, allocated whole
        // for the connection's life, should not be as large as it.
        let upgrading = Box::pin(upgrade_stream(Arc::clone(&shared), Arc::clone(&upgrade), accepted, slot));
        let task_shared = Arc::clone(&shared);
        shared.runtime.spawn(async move {
            // `let else`, not `if let`: the scrutinee would stay in the future while the connection lives.
            let Some((slot, accepted, cert)) = upgrading.await else { return };
            serve_accepted(task_shared, slot, accepted, cert).await;
        });
    }
}

/// The listener's handshake (TLS, WebSocket) under its deadline, and the
/// forwarded address's rate check; `None` (logged) when the stream goes no further.
async fn upgrade_stream(
    shared: Arc<Shared>,
    upgrade: Arc<Upgrade>,
    accepted: Accepted,
    slot: Slot,
) -> Option<(Slot, Accepted, Option<PeerCert>)> {
    let peer = accepted.peer;
    let timeout = slot.listener().connect_timeout;
    match tokio::time::timeout(timeout, upgrade.apply(accepted)).await {
        Ok(Ok((accepted, _)))
            if slot.listener().is_trusted_proxy(peer)
                && !shared.limits.admit_address(accepted.peer.ip(), shared.now()) =>
        {
            tracing::debug!(listener = %slot.listener().id, proxy = %peer, client = %accepted.peer, "connection closed: forwarded address over max_conn_rate_per_ip");
            None
        }
        Ok(Ok((accepted, cert))) => Some((slot, accepted, cert)),
        Ok(Err(error)) => {
            tracing::info!(listener = %slot.listener().id, %peer, %error, "connection closed");
            None
        }
        Err(_) => {
            tracing::info!(listener = %slot.listener().id, %peer, "handshake timed out");
            None
        }
    }
}

/// Serves one accepted stream after its handshake, holding `slot` until it
/// closes. Not an `async fn`: its arguments would stay in the future for the
/// connection's life; the future made here holds only what the connection
/// needs once it is open.
pub(super) fn serve_accepted(
    shared: Arc<Shared>,
    slot: Slot,
    accepted: Accepted,
    cert: Option<PeerCert>,
) -> impl Future<Output = ()> + Send + 'static {
    let opening = admit_names(slot.listener(), accepted.peer, cert).map(|(admission, transport)| {
        shared.live_connections.fetch_add(1, Ordering::AcqRel);
        let conn = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let opening = connection::open(Arc::clone(&shared), conn, accepted, transport, admission);
        (conn, opening, Counted { shared, _slot: slot })
    });
    async move {
        let Some((conn, opening, counted)) = opening else { return };
        let Some(mut live) = opening.await else { return };
        live.run(&counted.shared, conn).await;
    }
}

/// A connection's place in the node's live connections and in its
/// listener's (`Slot`), given back when its task ends, however it ends.
struct Counted {
    shared: Arc<Shared>,
    _slot: Slot,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.shared.live_connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's `Admission` and `TransportInfo`, with the client
/// certificate's names the listener asks for; `None` (logged) when it lacks one.
fn admit_names(ctx: &ListenerCtx, peer: SocketAddr, cert: Option<PeerCert>) -> Option<(Admission, TransportInfo)> {
    let pick = |field: PeerCertField| -> Result<Option<ByteString>, PeerCertField> {
        if field == PeerCertField::Disabled {
            return Ok(None);
        }
        let value = cert.as_ref().and_then(|c| c.field(field)).ok_or(field)?;
        Ok(Some(ByteString::from(value)))
    };
    let (username, client_id) = match (pick(ctx.peer_cert_as_username), pick(ctx.peer_cert_as_clientid)) {
        (Ok(username), Ok(client_id)) => (username, client_id),
        (Err(field), _) | (_, Err(field)) => {
            // Serving it under its own names would let a client choose what the certificate should decide.
            tracing::warn!(listener = %ctx.id, %peer, field = field.as_str(),
                "connection closed: the client certificate lacks the field that names the client");
            return None;
        }
    };
    let admission = Admission { connect_timeout: ctx.connect_timeout, username, client_id };
    let transport =
        TransportInfo { listener: ctx.id.clone(), certificate: cert.as_ref().map(|c| c.identity().clone()) };
    Some((admission, transport))
}

#[cfg(test)]
impl ListenerCtx {
    /// The first listener `config` enables.
    pub fn for_test(config: &crate::config::Config) -> Self {
        Self::new(&config.listeners.enabled()[0])
    }
}
