//! The tokio shell around the core: listeners, connection tasks, the timer
//! task and graceful shutdown. It owns no protocol logic; it moves bytes and
//! clock readings into the core and packets out of it.

mod connection;
pub mod tls;
mod ws;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::auth::{AnonymousOnly, Authenticator};
use crate::cluster::node::{ClusterShell, dispatch_from};
use crate::config::Config;
use crate::core::{Broker, Counters, Waker};
use crate::seam::{self, Accepted, Listener, Millis, Runtime};

/// How long shutdown waits for connections to flush their DISCONNECT, in milliseconds.
const SHUTDOWN_FLUSH_MAX_MS: Millis = 5_000;

/// State shared by every task of one broker instance.
pub(crate) struct Shared {
    pub broker: Mutex<Broker>,
    pub runtime: Runtime,
    pub config: Config,
    pub authenticator: Arc<dyn Authenticator>,
    /// Wakes the timer task when an earlier deadline may have been armed.
    timer_changed: Notify,
    /// The deadline the timer task sleeps until (`u64::MAX`: none).
    timer_deadline: AtomicU64,
    next_conn_id: AtomicU64,
    pub live_connections: AtomicUsize,
    /// Flips to true once shutdown starts.
    pub shutting_down: watch::Sender<bool>,
    /// Set when this node is a cluster member.
    pub cluster: Option<Arc<ClusterShell>>,
    /// Someone asked the node to stop (the admin API's leave); the binary waits on it.
    stop_requested: Notify,
}

impl Shared {
    pub fn now(&self) -> Millis {
        self.runtime.clock.now()
    }

    /// Runs `f` on the core, then wakes the connections it gave output to
    /// and the timer task if `f` armed an earlier timer.
    pub fn with_broker<T>(&self, f: impl FnOnce(&mut Broker, Millis) -> T) -> T {
        let (result, wakers, deadline) = {
            let mut broker = self.broker.lock();
            let now = self.now();
            let result = f(&mut broker, now);
            if let Some(cluster) = &self.cluster {
                // Under the lock: route deltas must reach the links in the order the router made them.
                dispatch_from(&mut broker, cluster);
            }
            (result, broker.drain_wakeups(), broker.poll_timeout())
        };
        for waker in wakers {
            waker.wake();
        }
        if let Some(deadline) = deadline
            && deadline < self.timer_deadline.load(Ordering::Acquire)
        {
            self.timer_changed.notify_one();
        }
        result
    }
}

/// A running broker.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    /// The TLS listener's address, when `[listeners.tls]` is set.
    tls_addr: Option<SocketAddr>,
    /// The WebSocket listener's address, when `[listeners.ws]` is set.
    ws_addr: Option<SocketAddr>,
    /// The peer address, when this node is a cluster member.
    cluster_addr: Option<SocketAddr>,
    /// The admin API's address, when `[admin] bind` is set.
    admin_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the listener and starts serving.
    pub async fn start(config: Config, runtime: Runtime) -> io::Result<Self> {
        let authenticator = Arc::new(AnonymousOnly { allow_anonymous: config.allow_anonymous() });
        Self::start_with(config, runtime, authenticator).await
    }

    /// Like `start`, with an authentication backend.
    pub async fn start_with(
        config: Config,
        runtime: Runtime,
        authenticator: Arc<dyn Authenticator>,
    ) -> io::Result<Self> {
        let listener = runtime.network.bind(config.listeners.tcp.bind).await?;
        let local_addr = listener.local_addr()?;
        let mut rng = seam::rng(config.node.rng_seed);
        // A restart is a new incarnation (ALGORITHM.md, "Nodes"); drawn before the core takes the RNG.
        let incarnation = rand::Rng::random::<u64>(&mut rng);
        let mut broker = Broker::new(config.mqtt.clone(), rng);
        let cluster = config.cluster.clone().map(|c| {
            let node = bytestring::ByteString::from(config.node.name.clone());
            broker.join_cluster(node.clone(), c.forward, c.forward_timeout_ms, runtime.clock.wall_origin_ms());
            Arc::new(ClusterShell::new(node, incarnation, c))
        });
        let shared = Arc::new(Shared {
            broker: Mutex::new(broker),
            runtime: runtime.clone(),
            config,
            authenticator,
            timer_changed: Notify::new(),
            timer_deadline: AtomicU64::new(u64::MAX),
            next_conn_id: AtomicU64::new(1),
            live_connections: AtomicUsize::new(0),
            shutting_down: watch::channel(false).0,
            cluster,
            stop_requested: Notify::new(),
        });
        runtime.spawn(accept_loop(Arc::clone(&shared), listener));
        let tls_addr = match &shared.config.listeners.tls {
            Some(tls) => {
                let acceptor = tls::acceptor(tls).map_err(io::Error::other)?;
                let listener = runtime.network.bind(tls.bind).await?;
                let addr = listener.local_addr()?;
                runtime.spawn(tls::accept_loop(Arc::clone(&shared), listener, acceptor));
                tracing::info!(node = %shared.config.node.name, listener = %addr, "broker listening (mqtt tls)");
                Some(addr)
            }
            None => None,
        };
        runtime.spawn(timer_loop(Arc::clone(&shared)));
        let ws_addr = match &shared.config.listeners.ws {
            Some(ws) => {
                let listener = runtime.network.bind(ws.bind).await?;
                let addr = listener.local_addr()?;
                runtime.spawn(ws::accept_loop(Arc::clone(&shared), listener));
                tracing::info!(node = %shared.config.node.name, listener = %addr, path = %ws.path, "broker listening (mqtt over websocket)");
                Some(addr)
            }
            None => None,
        };
        let cluster_addr = match &shared.cluster {
            Some(_) => Some(crate::cluster::node::start(Arc::clone(&shared)).await?),
            None => None,
        };
        tracing::info!(node = %shared.config.node.name, listener = %local_addr, "broker listening (mqtt tcp)");
        let server = Self { shared, local_addr, tls_addr, ws_addr, cluster_addr, admin_addr: None };
        let admin_addr = match server.shared.config.admin.bind {
            Some(bind) => {
                let listener = runtime.network.bind(bind).await?;
                let addr = listener.local_addr()?;
                runtime.spawn(crate::admin::serve(Arc::new(server.clone()), listener));
                tracing::info!(listener = %addr, "admin API listening");
                Some(addr)
            }
            None => None,
        };
        Ok(Self { admin_addr, ..server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The TLS listener's address, when it is enabled.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The WebSocket listener's address, when it is enabled.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// The admin API's address, when it is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn node_name(&self) -> &str {
        &self.shared.config.node.name
    }

    /// Flips to true when shutdown starts.
    pub fn shutting_down(&self) -> watch::Receiver<bool> {
        self.shared.shutting_down.subscribe()
    }

    /// Asks whoever runs the server to stop it (see [`Server::stop_requested`]).
    pub fn request_stop(&self) {
        self.shared.stop_requested.notify_one();
    }

    /// Resolves once [`Server::request_stop`] was called.
    pub async fn stop_requested(&self) {
        self.shared.stop_requested.notified().await;
    }

    /// The cluster peer address (UDP membership, TCP links), when clustered.
    pub fn cluster_addr(&self) -> Option<SocketAddr> {
        self.cluster_addr
    }

    /// The cluster as this node sees it, when clustered.
    pub fn cluster_status(&self) -> Option<crate::cluster::ClusterStatus> {
        let shell = self.shared.cluster.as_ref()?;
        let broker = self.shared.broker.lock();
        let core = broker.cluster()?;
        let strings = |v: Vec<bytestring::ByteString>| v.into_iter().map(|b| b.to_string()).collect::<Vec<_>>();
        let mut remote_routes: Vec<_> =
            core.remote.origins().map(|o| (o.to_string(), strings(core.remote.filters_of(o)))).collect();
        remote_routes.sort();
        Some(crate::cluster::ClusterStatus {
            node: shell.node.to_string(),
            incarnation: shell.incarnation,
            peers: shell.peers().into_iter().map(|(n, i, up)| (n.to_string(), i, up)).collect(),
            local_routes: {
                let mut r = strings(broker.local_routes());
                r.sort();
                r
            },
            remote_routes,
            counters: core.counters.clone(),
            forwards_dropped: shell.forwards_dropped.load(Ordering::Relaxed),
            wills_guarded: shell.wills_guarded(),
        })
    }

    /// What the core has counted so far.
    pub fn counters(&self) -> Counters {
        self.shared.broker.lock().counters.clone()
    }

    /// Live connections.
    pub fn connection_count(&self) -> usize {
        self.shared.live_connections.load(Ordering::Acquire)
    }

    /// Stops accepting, sends MQTT 5 clients DISCONNECT 0x8B, waits for
    /// connections to flush and close (bounded), and returns.
    pub async fn shutdown(&self) {
        if let Some(cluster) = &self.shared.cluster {
            cluster.leave();
            // The leave must reach the other members before the process exits:
            // they then drop this node at once instead of waiting for failure detection.
            cluster.wait_left(Duration::from_secs(2)).await;
        }
        self.shared.shutting_down.send_replace(true);
        self.shared.with_broker(|broker, _| broker.shutdown());
        let deadline = self.shared.now() + SHUTDOWN_FLUSH_MAX_MS;
        while self.connection_count() > 0 && self.shared.now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!(node = %self.shared.config.node.name, "broker stopped");
    }
}

async fn accept_loop(shared: Arc<Shared>, mut listener: Box<dyn Listener>) {
    let mut shutdown = shared.shutting_down.subscribe();
    let max = shared.config.listeners.tcp.max_connections.get();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok(accepted) => {
                let task_shared = Arc::clone(&shared);
                shared.runtime.spawn(serve_accepted(task_shared, accepted, max));
            }
            Err(error) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one accepted stream (TCP, or TLS after its handshake), unless the
/// broker already holds `max` connections.
async fn serve_accepted(shared: Arc<Shared>, accepted: Accepted, max: usize) {
    if shared.live_connections.fetch_add(1, Ordering::AcqRel) >= max {
        shared.live_connections.fetch_sub(1, Ordering::AcqRel);
        return tracing::warn!(peer = %accepted.peer, max, "connection refused: listener at max_connections");
    }
    let conn = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    connection::serve(&shared, conn, accepted).await;
    shared.live_connections.fetch_sub(1, Ordering::AcqRel);
}

async fn timer_loop(shared: Arc<Shared>) {
    let mut shutdown = shared.shutting_down.subscribe();
    loop {
        let deadline = shared.with_broker(|broker, now| {
            broker.handle_timeout(now);
            broker.poll_timeout()
        });
        let deadline = deadline.unwrap_or(u64::MAX);
        shared.timer_deadline.store(deadline, Ordering::Release);
        let sleep = async {
            if deadline == u64::MAX {
                std::future::pending::<()>().await;
            } else {
                tokio::time::sleep_until(shared.runtime.clock.instant(deadline)).await;
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = shared.timer_changed.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Wakes a connection's writer.
/// The writer's wake-up: the loom-checked [`broker_sync::Signal`] (a wake
/// given while the writer drains the outbox is kept as a permit).
pub(crate) struct NotifyWaker(pub broker_sync::Signal);

impl Waker for NotifyWaker {
    fn wake(&self) {
        self.0.notify();
    }
}
