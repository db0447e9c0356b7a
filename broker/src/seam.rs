//! The seams through which the broker reaches the outside world: network,
//! time, randomness and task spawning. Everything else in the crate is
//! forbidden to touch these directly (a tidy test enforces it), so that the
//! same code runs on tokio in production and inside turmoil in simulation.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Milliseconds on the broker's monotonic clock (since the clock was made).
pub type Millis = u64;

/// The monotonic clock. It reads `tokio::time`, which paused test time and
/// turmoil both drive. It also knows the wall-clock time of its origin, for
/// what must compare across nodes (the order of retained writes) or be shown
/// to people; a simulation sets that origin itself.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    /// Unix milliseconds at `origin`.
    wall_origin_ms: u64,
}

impl Clock {
    pub fn new() -> Self {
        // The clock's origin, and the one wall-clock reading of the broker.
        let now = std::time::SystemTime::now(); // seam: wall clock
        let wall = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Self::with_wall_origin(u64::try_from(wall).unwrap_or(u64::MAX))
    }

    /// A clock whose origin is at Unix milliseconds `wall_origin_ms` (simulations choose it).
    pub fn with_wall_origin(wall_origin_ms: u64) -> Self {
        Self { origin: Instant::now(), wall_origin_ms } // seam: the clock's origin
    }

    /// Unix milliseconds at clock reading `at`.
    pub fn wall_ms(&self, at: Millis) -> u64 {
        self.wall_origin_ms.saturating_add(at)
    }

    /// Unix milliseconds at clock reading 0: add a reading to get wall-clock time.
    pub fn wall_origin_ms(&self) -> u64 {
        self.wall_origin_ms
    }

    /// Milliseconds since the clock was made.
    pub fn now(&self) -> Millis {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The tokio instant of a clock reading, for sleeping until it.
    pub fn instant(&self, at: Millis) -> Instant {
        self.origin + std::time::Duration::from_millis(at)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The broker's one random number generator: seeded from configuration for
/// reproducible runs, from the operating system otherwise.
pub fn rng(seed: Option<u64>) -> StdRng {
    match seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        // seam: the one place entropy enters the broker.
        None => StdRng::from_os_rng(),
    }
}

/// Runs CPU-heavy work (password hashing) on tokio's blocking pool, so that
/// it does not stall the connections that share a worker thread. None if the
/// work panicked or the runtime is shutting down.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok() // seam: the one door to other threads (no simulation uses it)
}

/// The keys of every hash map of the process (`crate::hash`): drawn from the
/// operating system at first use, unless a simulation fixed them first.
static HASH_KEYS: std::sync::OnceLock<[u64; 4]> = std::sync::OnceLock::new();

/// The process's hash map keys (see `crate::hash`).
pub fn hash_keys() -> [u64; 4] {
    *HASH_KEYS.get_or_init(|| {
        // seam: entropy for hash keys (HashDoS resistance).
        let mut rng = StdRng::from_os_rng();
        std::array::from_fn(|_| rand::Rng::random(&mut rng))
    })
}

/// Fixes the process's hash map keys, so that iteration orders, and what
/// follows from them, replay: for simulations. True when the keys are now
/// `keys` (false: a map was made, or other keys fixed, before).
pub fn fix_hash_keys(keys: [u64; 4]) -> bool {
    *HASH_KEYS.get_or_init(|| keys) == keys
}

/// A byte stream from any transport.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// An accepted connection.
pub struct Accepted {
    pub stream: Box<dyn Stream>,
    pub peer: SocketAddr,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted").field("peer", &self.peer).finish_non_exhaustive()
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bound stream listener.
pub trait Listener: Send + 'static {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>>;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// A bound datagram (UDP) socket: cluster membership talks over it.
///
/// Both calls take `&self`, so one task can wait to receive while another
/// sends. `recv_from` must be cancel safe (a `select!` drops it when a timer
/// fires first): a datagram is either returned or left in the socket.
pub trait Datagram: Send + Sync + 'static {
    /// Sends one datagram; returns the bytes sent.
    fn send_to<'a>(&'a self, data: &'a [u8], to: SocketAddr) -> BoxFuture<'a, io::Result<usize>>;
    /// Receives one datagram into `buf` (a longer one is truncated to `buf.len()`).
    fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<(usize, SocketAddr)>>;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// The network: stream listeners and connections (clients, peer links),
/// datagrams (membership) and name resolution (seeds, DNS discovery).
pub trait Network: Send + Sync + 'static {
    /// Binds a stream listener.
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>>;
    /// Opens a stream to `addr` (with Nagle's algorithm off).
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Stream>>>;
    /// Binds a datagram socket.
    fn bind_datagram(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Datagram>>>;
    /// Resolves `"host:port"` (a name or an IP literal) to its addresses.
    fn resolve<'a>(&'a self, host_port: &'a str) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>>;
}

/// Spawns tasks. Production uses tokio's scheduler; a simulation can use its own.
pub trait Spawner: Send + Sync + 'static {
    fn spawn(&self, future: BoxFuture<'static, ()>);
}

/// The seams of one broker instance.
#[derive(Clone)]
pub struct Runtime {
    pub network: std::sync::Arc<dyn Network>,
    pub spawner: std::sync::Arc<dyn Spawner>,
    pub clock: Clock,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("clock", &self.clock).finish_non_exhaustive()
    }
}

impl Runtime {
    /// The production runtime: tokio's network and scheduler.
    pub fn tokio() -> Self {
        Self {
            network: std::sync::Arc::new(TokioNetwork),
            spawner: std::sync::Arc::new(TokioSpawner),
            clock: Clock::new(),
        }
    }

    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.spawner.spawn(Box::pin(future));
    }
}

/// tokio's TCP.
#[derive(Debug, Clone, Copy)]
pub struct TokioNetwork;

struct TokioListener(tokio::net::TcpListener);

impl Listener for TokioListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            // Latency matters more than packet count for MQTT's small packets.
            stream.set_nodelay(true)?;
            Ok(Accepted { stream: Box::new(stream), peer })
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

struct TokioDatagram(tokio::net::UdpSocket);

impl Datagram for TokioDatagram {
    fn send_to<'a>(&'a self, data: &'a [u8], to: SocketAddr) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(self.0.send_to(data, to))
    }

    fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<(usize, SocketAddr)>> {
        // tokio's `recv_from` is cancel safe, and so is this wrapper.
        Box::pin(self.0.recv_from(buf))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Network for TokioNetwork {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            Ok(Box::new(TokioListener(listener)) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    }

    fn bind_datagram(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Datagram>>> {
        Box::pin(async move {
            let socket = tokio::net::UdpSocket::bind(addr).await?;
            Ok(Box::new(TokioDatagram(socket)) as Box<dyn Datagram>)
        })
    }

    fn resolve<'a>(&'a self, host_port: &'a str) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host(host_port).await?.collect()) })
    }
}

/// tokio's scheduler.
#[derive(Debug, Clone, Copy)]
pub struct TokioSpawner;

impl Spawner for TokioSpawner {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        tokio::spawn(future);
    }
}
