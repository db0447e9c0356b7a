//! The tokio shell around the core: listeners, connection tasks, the timer
//! task and graceful shutdown. It owns no protocol logic; it moves bytes and
//! clock readings into the core and packets out of it.

mod certs;
mod connection;
mod forwarded;
mod limits;
mod listen;
mod preflight;
mod quic;
mod sys;
mod tls;
mod ws;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::auth::Authenticator;
use crate::cluster::node::{ClusterShell, dispatch_from};
use crate::config::{Config, ListenerKind};
use crate::core::{Broker, Counters, Waker};
use crate::seam::{self, Millis, Runtime};

pub use self::limits::{Ban, BanKind, BanRequest, LimitStats, Unban};
pub use self::listen::BoundListener;
pub use self::preflight::check_files;

/// How long shutdown waits for connections to flush their DISCONNECT, in milliseconds.
const SHUTDOWN_FLUSH_MAX_MS: Millis = 5_000;

/// State shared by every task of one broker instance.
pub(crate) struct Shared {
    pub broker: Mutex<Broker>,
    /// Connection rates, bans and the counters of limit hits (`limits.rs`).
    pub limits: limits::Limits,
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
    fn new(
        broker: Broker,
        limits: limits::Limits,
        runtime: Runtime,
        config: Config,
        authenticator: Arc<dyn Authenticator>,
        cluster: Option<Arc<ClusterShell>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            broker: Mutex::new(broker),
            limits,
            runtime,
            config,
            authenticator,
            timer_changed: Notify::new(),
            timer_deadline: AtomicU64::new(u64::MAX),
            next_conn_id: AtomicU64::new(1),
            live_connections: AtomicUsize::new(0),
            shutting_down: watch::channel(false).0,
            cluster,
            stop_requested: Notify::new(),
        })
    }

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
    /// Every listener bound, in the order of `ListenersConfig::entries`.
    listeners: Arc<Vec<BoundListener>>,
    /// The certificates of the TLS, WSS and QUIC listeners, for `reload`.
    cert_sets: Arc<Vec<Arc<certs::CertSet>>>,
    /// The peer address, when this node is a cluster member.
    cluster_addr: Option<SocketAddr>,
    /// The admin API's address, when `[admin] bind` is set.
    admin_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("listeners", &self.listeners).finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the listener and starts serving.
    pub async fn start(config: Config, runtime: Runtime) -> io::Result<Self> {
        // Before anything binds: a bad users or key file stops start-up, naming the file (and line).
        let authenticator = crate::auth::build(&config, &runtime).map_err(io::Error::other)?;
        Self::start_with(config, runtime, authenticator).await
    }

    /// Like `start`, with an authentication backend.
    pub async fn start_with(
        config: Config,
        runtime: Runtime,
        authenticator: Arc<dyn Authenticator>,
    ) -> io::Result<Self> {
        // Before anything binds: a bad ACL file stops start-up, naming the file and line.
        let authorizer = crate::authz::from_config(&config.authz).map_err(io::Error::other)?;
        let limits = limits::Limits::new(&config.limits)?;
        let mut rng = seam::rng(config.node.rng_seed);
        // A restart is a new incarnation (ALGORITHM.md, "Nodes"); drawn before the core takes the RNG.
        let incarnation = rand::Rng::random::<u64>(&mut rng);
        let mut broker = Broker::new(config.mqtt.clone(), rng);
        broker.set_authentication(&authenticator.methods(), authenticator.reauthenticator());
        broker.set_authorizer(authorizer);
        let cluster = config.cluster.clone().map(|c| {
            let node = bytestring::ByteString::from(config.node.name.clone());
            broker.join_cluster(node.clone(), c.forward, c.forward_timeout_ms, runtime.clock.wall_origin_ms());
            // A forward can wait in a parked link for the grace period, after failure detection, then be resent.
            broker.set_redirect_window(
                c.route_grace_ms.saturating_mul(2).saturating_add(c.forward_timeout_ms).max(30_000),
            );
            Arc::new(ClusterShell::new(node, incarnation, c))
        });
        let shared = Shared::new(broker, limits, runtime.clone(), config, authenticator, cluster);
        let (listeners, cert_sets) = match listen::start_all(&shared).await {
            Ok(started) => started,
            Err(error) => {
                // Stops the accept loops of the listeners already bound.
                shared.shutting_down.send_replace(true);
                return Err(error);
            }
        };
        let cert_sets = Arc::new(cert_sets);
        if !cert_sets.is_empty() {
            runtime.spawn(certs::watch(Arc::clone(&shared), Arc::clone(&cert_sets)));
        }
        runtime.spawn(timer_loop(Arc::clone(&shared)));
        if shared.config.sys.interval_secs > 0 {
            runtime.spawn(sys::publish_loop(Arc::clone(&shared), shared.config.sys.interval_secs));
        }
        let cluster_addr = match &shared.cluster {
            Some(_) => Some(crate::cluster::node::start(Arc::clone(&shared)).await?),
            None => None,
        };
        let listeners = Arc::new(listeners);
        let server = Self { shared, listeners, cert_sets, cluster_addr, admin_addr: None };
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

    /// The MQTT-over-TCP address: the default TCP listener's, else the first
    /// TCP listener's, else the first listener's (unspecified when there is none).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr_of(ListenerKind::Tcp)
            .or_else(|| self.listeners.first().map(|l| l.addr))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The TLS listener's address (the default one, else the first), when there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.addr_of(ListenerKind::Tls)
    }

    /// The WebSocket listener's address (the default one, else the first), when there is one.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.addr_of(ListenerKind::Ws)
    }

    /// The WebSocket-over-TLS listener's address (the default one, else the first), when there is one.
    pub fn wss_addr(&self) -> Option<SocketAddr> {
        self.addr_of(ListenerKind::Wss)
    }

    /// The QUIC listener's UDP address (the default one, else the first), when there is one.
    pub fn quic_addr(&self) -> Option<SocketAddr> {
        self.addr_of(ListenerKind::Quic)
    }

    /// Every listener: kind, name and bound address.
    pub fn listeners(&self) -> &[BoundListener] {
        &self.listeners
    }

    /// The address of the listener `kind:name`.
    pub fn listener_addr(&self, kind: ListenerKind, name: &str) -> Option<SocketAddr> {
        self.listeners.iter().find(|l| l.kind == kind && l.name == name).map(|l| l.addr)
    }

    /// The first listener of a kind: the default one comes first when it is enabled.
    fn addr_of(&self, kind: ListenerKind) -> Option<SocketAddr> {
        self.listeners.iter().find(|l| l.kind == kind).map(|l| l.addr)
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
            forwards_pending: shell.forwards_pending().into_iter().map(|(n, p)| (n.to_string(), p)).collect(),
            duplicates_settled: shell.duplicates_settled.load(Ordering::Relaxed),
            wills_guarded: shell.wills_guarded(),
        })
    }

    /// Rereads what can change without a restart: the authentication
    /// backends' files, the authorization rules and the listeners'
    /// certificates (new handshakes use them; open connections stay). Each
    /// part that fails keeps its previous state; the errors are returned, one
    /// line per part.
    pub fn reload(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        for set in self.cert_sets.iter() {
            if let Err(e) = set.reload() {
                errors.push(format!("certificates: {e}"));
            }
        }
        if let Err(e) = self.shared.authenticator.reload() {
            errors.push(format!("authentication: {e}"));
        }
        if let Err(e) = self.shared.with_broker(|broker, now| broker.reload_authorizer(now)) {
            errors.push(format!("authorization: {e}"));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// What the core has counted so far.
    pub fn counters(&self) -> Counters {
        self.shared.broker.lock().counters.clone()
    }

    /// Live connections.
    pub fn connection_count(&self) -> usize {
        self.shared.live_connections.load(Ordering::Acquire)
    }

    /// The client ids with a live connection on this node, sorted (read-only;
    /// the simulator checks that no client id is live on two nodes).
    pub fn connected_clients(&self) -> Vec<String> {
        self.shared.broker.lock().connected_clients().into_iter().map(|c| c.to_string()).collect()
    }

    /// The winning retained write of every topic this node knows, clears
    /// included, sorted by topic (read-only; empty outside a cluster). Each
    /// carries its stamp and writer, and the message this node's retained
    /// store holds for the topic.
    pub fn retained_writes(&self) -> Vec<crate::core::cluster::RetainedUpdate> {
        let mut writes = self.shared.broker.lock().retained_snapshot();
        writes.sort_by(|a, b| a.topic.cmp(&b.topic));
        writes
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

/// A broker's shared state with no listener bound and no task started, for
/// tests of the shell's pieces.
#[cfg(test)]
pub(crate) fn test_shared(config: Config) -> Arc<Shared> {
    let runtime = Runtime::tokio();
    let authenticator = crate::auth::build(&config, &runtime).expect("the default authentication");
    let limits = limits::Limits::new(&config.limits).expect("no bans file");
    let broker = Broker::new(config.mqtt.clone(), seam::rng(Some(1)));
    Shared::new(broker, limits, runtime, config, authenticator, None)
}
