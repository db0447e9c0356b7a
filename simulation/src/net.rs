//! The broker's seam (`broker::seam`) on turmoil: TCP listeners and streams,
//! UDP datagrams and name resolution of the simulated network, tasks on the
//! host's own runtime, time from the host's paused tokio clock.
//!
//! Partitions are modelled in two layers, because turmoil has one link
//! state for both protocols and neither of its modes alone is faithful:
//! - TCP: turmoil's `hold` keeps segments on the link and delivers them, in
//!   order, at `release`, as TCP's retransmissions would once the network
//!   heals. (turmoil's `partition` drops segments, and its TCP has no
//!   retransmission: a stream that lost one segment stalls forever.)
//! - UDP: dropped here, per direction, at send and again at receipt, so
//!   membership sees the partition as SWIM would (lost probes).

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use broker::seam::{Accepted, Clock, Datagram, Listener, Network, Runtime, Spawner, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The directions in which datagrams are dropped, shared by every node.
#[derive(Debug, Default)]
pub struct UdpCuts {
    cut: Mutex<BTreeSet<(IpAddr, IpAddr)>>,
}

impl UdpCuts {
    pub fn cut(&self, from: IpAddr, to: IpAddr) {
        self.lock().insert((from, to));
    }

    pub fn heal(&self, from: IpAddr, to: IpAddr) {
        self.lock().remove(&(from, to));
    }

    pub fn is_cut(&self, from: IpAddr, to: IpAddr) -> bool {
        self.lock().contains(&(from, to))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(IpAddr, IpAddr)>> {
        // A poisoned lock only means a panic elsewhere, which the run reports.
        self.cut.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The network of one simulated node.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    pub cuts: Arc<UdpCuts>,
    pub reaper: Arc<Reaper>,
}

/// The wall clock of every node at simulated time 0, in Unix milliseconds
/// (2023-11-14): a fixed value, not the machine's clock.
pub const WALL_EPOCH_MS: u64 = 1_700_000_000_000;

/// The runtime of a node: to be made inside its turmoil host, so that a
/// crash drops everything it built.
///
/// Its wall clock reads `WALL_EPOCH_MS` plus the simulated time, on every
/// node and after every restart: the retained writes' hybrid logical clock
/// stamps (and so which write wins) depend on the seed alone. A clock read
/// from the machine (`Clock::new`) would put the real time between two
/// nodes' starts into their stamps.
pub fn runtime(cuts: Arc<UdpCuts>, reaper: Arc<Reaper>) -> Runtime {
    let clock = Clock::with_wall_origin(WALL_EPOCH_MS + crate::history::sim_now());
    Runtime { network: Arc::new(SimNetwork { cuts, reaper }), spawner: Arc::new(HostSpawner), clock }
}

type Slot = Arc<Mutex<Option<turmoil::net::TcpStream>>>;

/// Closes a node's TCP streams in the order they were opened, just before
/// the harness crashes the node.
///
/// Why: a crash drops the host's tokio runtime, which drops its tasks (and
/// with them the streams, each sending its FIN) in the order of tokio's
/// task ids, and those come from a counter global to the process. The first
/// run of a process and a later one (or one beside another test) would see
/// the connections of a crashed node close in different orders.
#[derive(Debug, Default)]
pub struct Reaper {
    streams: Mutex<Vec<std::sync::Weak<Mutex<Option<turmoil::net::TcpStream>>>>>,
    /// Wakes the node's reaper task (see [`Reaper::run`]).
    pub wake: tokio::sync::Notify,
}

impl Reaper {
    fn register(&self, stream: turmoil::net::TcpStream) -> SimStream {
        let slot: Slot = Arc::new(Mutex::new(Some(stream)));
        let mut streams = self.streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        streams.retain(|w| w.strong_count() > 0);
        streams.push(Arc::downgrade(&slot));
        SimStream(slot)
    }

    /// The node's reaper task: when woken, closes every stream, oldest first.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            let streams = std::mem::take(&mut *self.streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            for slot in streams.iter().filter_map(std::sync::Weak::upgrade) {
                let stream = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                drop(stream);
            }
        }
    }
}

/// A node's TCP stream; closed by its [`Reaper`] or when dropped.
struct SimStream(Slot);

impl SimStream {
    fn with<T>(&self, f: impl FnOnce(Pin<&mut turmoil::net::TcpStream>) -> Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let mut slot = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.as_mut() {
            Some(stream) => f(Pin::new(stream)),
            None => Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the node crashed"))),
        }
    }
}

impl AsyncRead for SimStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.with(|s| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_shutdown(cx))
    }
}

/// A listener; `addr` is the address asked for (turmoil binds only the
/// unspecified address, but the broker advertises what it bound).
struct SimListener {
    listener: turmoil::net::TcpListener,
    addr: SocketAddr,
    reaper: Arc<Reaper>,
}

/// The unspecified address with `addr`'s port: what turmoil can bind.
fn unspecified(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(IpAddr::from([0, 0, 0, 0]), addr.port())
}

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) = self.listener.accept().await?;
            Ok(Accepted { stream: Box::new(self.reaper.register(stream)), peer })
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

struct SimDatagram {
    socket: turmoil::net::UdpSocket,
    local: SocketAddr,
    cuts: Arc<UdpCuts>,
}

impl Datagram for SimDatagram {
    fn send_to<'a>(&'a self, data: &'a [u8], to: SocketAddr) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(async move {
            if self.cuts.is_cut(self.local.ip(), to.ip()) {
                return Ok(data.len()); // Lost on the way, as UDP may be.
            }
            self.socket.send_to(data, to).await
        })
    }

    fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<(usize, SocketAddr)>> {
        Box::pin(async move {
            loop {
                let (len, from) = self.socket.recv_from(buf).await?;
                // Sent before the cut, arriving after it: lost too.
                if !self.cuts.is_cut(from.ip(), self.local.ip()) {
                    return Ok((len, from));
                }
            }
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Network for SimNetwork {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = turmoil::net::TcpListener::bind(unspecified(addr)).await?;
            Ok(Box::new(SimListener { listener, addr, reaper: Arc::clone(&self.reaper) }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(self.reaper.register(stream)) as Box<dyn Stream>)
        })
    }

    fn bind_datagram(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Datagram>>> {
        let cuts = Arc::clone(&self.cuts);
        Box::pin(async move {
            let socket = turmoil::net::UdpSocket::bind(unspecified(addr)).await?;
            Ok(Box::new(SimDatagram { socket, local: addr, cuts }) as Box<dyn Datagram>)
        })
    }

    fn resolve<'a>(&'a self, host_port: &'a str) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move {
            let (host, port) = host_port
                .rsplit_once(':')
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{host_port}: no port")))?;
            let port: u16 = port
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{host_port}: bad port")))?;
            let ip = match host.parse::<IpAddr>() {
                Ok(ip) => ip,
                // turmoil's DNS: the names of the simulation's hosts.
                Err(_) => turmoil::lookup(host),
            };
            Ok(vec![SocketAddr::new(ip, port)])
        })
    }
}

/// Spawns on the current turmoil host's runtime: a crash of the host drops
/// the task with everything else the host ran.
#[derive(Debug, Clone, Copy)]
pub struct HostSpawner;

impl Spawner for HostSpawner {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        tokio::spawn(future);
    }
}
