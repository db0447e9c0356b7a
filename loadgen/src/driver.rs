//! One client on tokio: a task that owns a connection and a [`Session`].
//!
//! Memory per idle connection is what matters at 18,000 connections per
//! process, so a client keeps no read or write buffer of its own: bytes are
//! read into and written from per-thread scratch buffers inside one
//! synchronous step, and only what the transport would not take, or a packet
//! cut in half, is copied into the client's own (normally empty) buffers.
//! There is one task per connection and no task per message.
//!
//! The task is generic over the [`Transport`]: each kind gets its own
//! instance, so a TCP client holds a bare `TcpStream` and its task is no
//! bigger for the other kinds existing. I/O goes through `AsyncRead` /
//! `AsyncWrite` polled inside a synchronous step: reads with the task's waker,
//! writes first with a no-op waker (outside any poll), and when a transport
//! does not take everything the rest waits in `pending_out` until the task's
//! next poll registers its waker for writing.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};
use bytestring::ByteString;
use mqtt_codec::{Decoder, QoS};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_rustls::client::TlsStream;
use tokio_util::io::poll_read_buf;

use crate::engine::{Command, GroupShared, PublishSpec, RunShared};
use crate::payload::{Header, publisher_key};
use crate::session::{Message, Session, Signal};
use crate::stats::Stats;
use crate::template::Vars;
use crate::transport::quic::QuicStream;
use crate::transport::ws::WsStream;
use crate::transport::{Transport, TransportKind};

/// Largest packet accepted from the broker.
const PACKET_SIZE_MAX: u32 = 16 << 20;
/// Bytes read from one socket before its packets are handled.
const READ_BATCH_MAX: usize = 256 << 10;
/// Messages one publisher sends at once when it has fallen behind its schedule,
/// before it lets other tasks run.
const CATCH_UP_BURST_MAX: u32 = 256;
/// A message sent later than this after its scheduled time is an overrun.
pub const OVERRUN_THRESHOLD: Duration = Duration::from_millis(10);

thread_local! {
    static READ_SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::with_capacity(64 << 10));
    static WRITE_SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::with_capacity(64 << 10));
}

pub fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The state of one publishing client.
struct Publishing {
    spec: Arc<PublishSpec>,
    topic: Option<ByteString>,
    next_due: Instant,
    sequence: u64,
}

struct Conn<S> {
    stream: S,
    session: Session,
    decoder: Decoder,
    /// Part of a packet left over from the last read.
    partial_in: BytesMut,
    /// Bytes the transport did not take yet.
    pending_out: BytesMut,
    /// The transport took bytes it may still hold (TLS records, WebSocket
    /// frames) until flushed; plain TCP never does.
    flush_owed: bool,
    last_sent: Instant,
    connack: Option<u8>,
    closed_by_broker: bool,
    subacks_owed: u32,
}

/// Starts client `number` of `group` as a task over the run's transport.
pub fn spawn_client(run: Arc<RunShared>, group: Arc<GroupShared>, number: u64, slot: u64) {
    // One instance of the client per transport, chosen once here rather than
    // by a branch (or a box) inside every client.
    match run.dialer.kind() {
        TransportKind::Tcp => drop(tokio::spawn(run_client::<TcpStream>(run, group, number, slot))),
        TransportKind::Tls => drop(tokio::spawn(run_client::<TlsStream<TcpStream>>(run, group, number, slot))),
        TransportKind::Ws => drop(tokio::spawn(run_client::<WsStream<TcpStream>>(run, group, number, slot))),
        TransportKind::Wss => {
            drop(tokio::spawn(run_client::<WsStream<TlsStream<TcpStream>>>(run, group, number, slot)));
        }
        TransportKind::Quic => drop(tokio::spawn(run_client::<QuicStream>(run, group, number, slot))),
    }
}

/// Runs client `number` of `group` until it is told to disconnect or its
/// connection ends. `slot` is its position among this process's clients of
/// the group, used to spread publish schedules over the interval.
pub async fn run_client<S: Transport>(run: Arc<RunShared>, group: Arc<GroupShared>, number: u64, slot: u64) {
    let stats = &run.stats;
    let client_id = ByteString::from(format!("{}{number}", group.prefix));
    // Boxed: the connect future is large and lives only while connecting, so it stays out of the
    // task's steady-state size (what every idle connection pays).
    let mut conn = match Box::pin(connect::<S>(&run, &group, number, &client_id)).await {
        Ok(conn) => conn,
        Err(error) => {
            // The first reason is shown (a wrong CA or server name fails every client alike); the rest are counted.
            if !run.connect_failure_shown.swap(true, Relaxed) {
                crate::remote::log(&format!("loadgen: client {number} could not connect: {error}"));
            }
            Stats::inc(&stats.counters.connects_failed);
            group.settled.fetch_add(1, Relaxed);
            return;
        }
    };
    Stats::inc(&stats.counters.connects_ok);
    stats.connections.fetch_add(1, Relaxed);
    group.connected.fetch_add(1, Relaxed);
    group.settled.fetch_add(1, Relaxed);

    let told_to_leave = serve(&run, &group, &mut conn, &client_id, number, slot).await;
    if told_to_leave {
        let _ = conn.write_with(|s, out| s.disconnect(out).map_err(|e| format!("{e:?}")));
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.drain_and_close()).await;
    } else {
        Stats::inc(&stats.counters.disconnects);
    }
    stats.connections.fetch_sub(1, Relaxed);
    group.connected.fetch_sub(1, Relaxed);
}

async fn connect<S: Transport>(
    run: &RunShared,
    group: &GroupShared,
    number: u64,
    client_id: &ByteString,
) -> Result<Conn<S>, String> {
    let mut attempt = 0;
    loop {
        let turn = S::turn(&run.dialer).await;
        let result = tokio::time::timeout(run.connect_timeout, connect_once(run, group, number, client_id)).await;
        drop(turn);
        let error = match result {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => e,
            Err(_) => "timed out".to_string(),
        };
        if attempt >= run.connect_retries {
            return Err(error);
        }
        attempt += 1;
        Stats::inc(&run.stats.counters.connects_retried);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn connect_once<S: Transport>(
    run: &RunShared,
    group: &GroupShared,
    number: u64,
    client_id: &ByteString,
) -> Result<Conn<S>, String> {
    let stream = S::open(&run.dialer, number).await?;
    let version = group.connect.version;
    let shard = number as usize;
    let mut conn = Conn {
        stream,
        session: Session::new(version, shard),
        decoder: Decoder::with_version(version, PACKET_SIZE_MAX),
        partial_in: BytesMut::new(),
        pending_out: BytesMut::new(),
        flush_owed: false,
        last_sent: Instant::now(),
        connack: None,
        closed_by_broker: false,
        subacks_owed: 0,
    };
    conn.write_with(|s, out| s.connect(client_id, &group.connect, out).map_err(|e| format!("{e:?}")))?;
    while conn.connack.is_none() {
        poll_fn(|cx| conn.poll_io(cx, &run.stats, group)).await?;
        if conn.closed_by_broker {
            return Err("closed before CONNACK".into());
        }
    }
    match conn.connack {
        Some(0) => Ok(conn),
        Some(code) => Err(format!("CONNACK refused with 0x{code:02x}")),
        None => Err("no CONNACK".into()),
    }
}

/// The connected life of a client; true when it ends because it was told to disconnect.
async fn serve<S: Transport>(
    run: &RunShared,
    group: &GroupShared,
    conn: &mut Conn<S>,
    client_id: &ByteString,
    number: u64,
    slot: u64,
) -> bool {
    let mut commands: watch::Receiver<Command> = group.commands.subscribe();
    let mut subscriptions_done = 0usize;
    let mut publishing: Option<Publishing> = None;
    // The publish phase this client already completed (reached its limit in).
    let mut finished: Option<Arc<PublishSpec>> = None;
    let keep_alive = Duration::from_secs(u64::from(group.connect.keep_alive));
    let username = group.connect.username.as_deref().unwrap_or("");
    let sleep = sleep_until(Instant::now() + Duration::from_secs(3600));
    tokio::pin!(sleep);
    let mut command = Some(commands.borrow_and_update().clone());
    loop {
        if let Some(cmd) = command.take() {
            if cmd.disconnect {
                return true;
            }
            for sub in &cmd.subscriptions[subscriptions_done.min(cmd.subscriptions.len())..] {
                let vars = Vars { index: number, client_id, username, sequence: 0 };
                let filter = sub.topic.render_string(&vars, &mut |n| run.random(n));
                if sub.shared {
                    conn.session.check_sequences(false);
                }
                conn.subacks_owed += 1;
                if conn
                    .write_with(|s, out| s.subscribe(filter.into(), sub.qos, out).map_err(|e| format!("{e:?}")))
                    .is_err()
                {
                    return false;
                }
            }
            subscriptions_done = cmd.subscriptions.len();
            publishing = match (cmd.publish, publishing.take()) {
                (Some(spec), Some(p)) if Arc::ptr_eq(&spec, &p.spec) => Some(p),
                (Some(spec), _) if !finished.as_ref().is_some_and(|f| Arc::ptr_eq(f, &spec)) => {
                    Some(start_publishing(spec, client_id, number, slot, username, run))
                }
                _ => None,
            };
        }
        let mut deadline = (!keep_alive.is_zero()).then(|| conn.last_sent + keep_alive);
        if let Some(p) = &publishing
            && (p.spec.qos == QoS::AtMostOnce || conn.session.inflight() < p.spec.inflight)
        {
            deadline = Some(deadline.map_or(p.next_due, |d| d.min(p.next_due)));
        }
        if let Some(d) = deadline {
            sleep.as_mut().reset(d);
        }
        tokio::select! {
            biased;
            changed = commands.changed() => {
                if changed.is_err() {
                    return true;
                }
                command = Some(commands.borrow_and_update().clone());
            }
            // One future for both directions, and a small one (references only): every idle
            // connection pays for each future held in this select!.
            io = poll_fn(|cx| conn.poll_io(cx, &run.stats, group)) => {
                if io.is_err() || conn.closed_by_broker {
                    return false;
                }
            }
            () = &mut sleep, if deadline.is_some() => {
                let now = Instant::now();
                if let Some(p) = &mut publishing {
                    match publish_due(run, conn, p, number, client_id, username, now) {
                        Ok(true) => {}
                        Ok(false) => {
                            p.spec.done.fetch_add(1, Relaxed);
                            finished = publishing.take().map(|p| p.spec);
                        }
                        Err(_) => return false,
                    }
                }
                if !keep_alive.is_zero() && now >= conn.last_sent + keep_alive
                    && conn.write_with(|s, out| s.ping(out).map_err(|e| format!("{e:?}"))).is_err()
                {
                    return false;
                }
            }
        }
    }
}

fn start_publishing(
    spec: Arc<PublishSpec>,
    client_id: &ByteString,
    number: u64,
    slot: u64,
    username: &str,
    run: &RunShared,
) -> Publishing {
    // Spread the group's clients evenly over one interval so that they do not all fire at once.
    let interval = spec.interval.as_nanos() as u64;
    let offset = Duration::from_nanos(interval.saturating_mul(slot % spec.clients.max(1)) / spec.clients.max(1));
    let now = Instant::now();
    let mut next_due = spec.start + offset;
    if next_due < now {
        // A client that connects after the phase began starts from its next slot, not from the past.
        let behind = (now - next_due).as_nanos() as u64;
        next_due += Duration::from_nanos(behind.div_ceil(interval.max(1)) * interval);
    }
    let topic = (!spec.topic.varies_per_message()).then(|| {
        let vars = Vars { index: number, client_id, username, sequence: 0 };
        ByteString::from(spec.topic.render_string(&vars, &mut |n| run.random(n)))
    });
    Publishing { spec, topic, next_due, sequence: 0 }
}

/// Sends every message that is due; false when the client reached its limit.
fn publish_due<S: Transport>(
    run: &RunShared,
    conn: &mut Conn<S>,
    p: &mut Publishing,
    number: u64,
    client_id: &ByteString,
    username: &str,
    now: Instant,
) -> Result<bool, String> {
    let spec = p.spec.clone();
    let publisher = publisher_key(spec.group_ordinal, number);
    let mut burst = 0;
    while p.next_due <= now && burst < CATCH_UP_BURST_MAX {
        if spec.limit.is_some_and(|limit| p.sequence >= limit) {
            return Ok(false);
        }
        let scheduled_unix_ns = spec.start_unix_ns + (p.next_due - spec.start).as_nanos() as u64;
        let header = Header { publisher, sequence: p.sequence, scheduled_unix_ns };
        let topic = match &p.topic {
            Some(t) => t.clone(),
            None => {
                let vars = Vars { index: number, client_id, username, sequence: p.sequence };
                ByteString::from(spec.topic.render_string(&vars, &mut |n| run.random(n)))
            }
        };
        let mut sent = false;
        conn.write_with(|s, out| {
            let message = Message { topic: &topic, qos: spec.qos, retain: spec.retain, body: &spec.body };
            sent = s.publish(&message, &header, spec.inflight, out).map_err(|e| format!("{e:?}"))?;
            Ok(())
        })?;
        if !sent {
            break;
        }
        if now - p.next_due > OVERRUN_THRESHOLD {
            Stats::inc(&run.stats.counters.pub_overruns);
        }
        Stats::inc(&run.stats.counters.pub_sent);
        p.sequence += 1;
        p.next_due += spec.interval;
        burst += 1;
    }
    Ok(spec.limit.is_none_or(|limit| p.sequence < limit))
}

impl<S: Transport> Conn<S> {
    /// Encodes with `f` into the thread's scratch buffer and sends it, keeping
    /// whatever the transport does not take.
    fn write_with(&mut self, f: impl FnOnce(&mut Session, &mut BytesMut) -> Result<(), String>) -> Result<(), String> {
        WRITE_SCRATCH.with_borrow_mut(|out| {
            out.clear();
            f(&mut self.session, out)?;
            self.send(out).map_err(|e| e.to_string())
        })
    }

    /// Writes `out` now as far as the transport takes it; called outside any
    /// poll, so with a no-op waker: what is left is polled with the task's
    /// waker by [`Self::poll_io`] on the task's next turn.
    fn send(&mut self, out: &mut BytesMut) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        self.last_sent = Instant::now();
        self.flush_owed = true;
        let mut cx = Context::from_waker(Waker::noop());
        if !self.pending_out.is_empty() {
            self.pending_out.extend_from_slice(out);
            out.clear();
        } else {
            while !out.is_empty() {
                match Pin::new(&mut self.stream).poll_write(&mut cx, out) {
                    Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                    Poll::Ready(Ok(n)) => out.advance(n),
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => {
                        self.pending_out.extend_from_slice(out);
                        out.clear();
                    }
                }
            }
        }
        match self.poll_out(&mut cx) {
            Poll::Ready(Err(e)) => Err(e),
            Poll::Ready(Ok(())) | Poll::Pending => Ok(()),
        }
    }

    /// Writes what is pending, then flushes; ready when the transport holds nothing of ours.
    fn poll_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.pending_out.is_empty() {
            while !self.pending_out.is_empty() {
                match Pin::new(&mut self.stream).poll_write(cx, &self.pending_out) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => self.pending_out.advance(n),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            // Give back a buffer that grew under a burst; an idle client keeps none.
            self.pending_out = BytesMut::new();
        }
        if self.flush_owed {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush_owed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Sends what is pending, then ends the connection the transport's way.
    async fn drain_and_close(&mut self) {
        if poll_fn(|cx| self.poll_out(cx)).await.is_ok() {
            self.stream.close().await;
        }
    }

    /// Moves pending output on, then reads what the transport has and handles
    /// every whole packet. Ready when something was read (or the stream
    /// ended, or failed); pending, with the waker registered, when there was nothing.
    fn poll_io(&mut self, cx: &mut Context<'_>, stats: &Stats, group: &GroupShared) -> Poll<Result<(), String>> {
        if (!self.pending_out.is_empty() || self.flush_owed)
            && let Poll::Ready(Err(e)) = self.poll_out(cx)
        {
            return Poll::Ready(Err(e.to_string()));
        }
        READ_SCRATCH.with_borrow_mut(|input| {
            input.clear();
            let had_partial = !self.partial_in.is_empty();
            if had_partial {
                input.extend_from_slice(&self.partial_in);
                self.partial_in = BytesMut::new();
            }
            let mut eof = false;
            let mut read = false;
            while input.len() < READ_BATCH_MAX {
                input.reserve(64 << 10);
                match poll_read_buf(Pin::new(&mut self.stream), cx, input) {
                    Poll::Ready(Ok(0)) => {
                        eof = true;
                        break;
                    }
                    Poll::Ready(Ok(_)) => read = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.to_string())),
                    Poll::Pending => break,
                }
            }
            if !read && !eof {
                if had_partial {
                    self.partial_in = BytesMut::from(&input[..]);
                    input.clear();
                }
                return Poll::Pending;
            }
            Poll::Ready(self.handle_input(input, eof, stats, group))
        })
    }

    /// Handles every whole packet in `input` and sends the responses; keeps a cut packet.
    fn handle_input(
        &mut self,
        input: &mut BytesMut,
        eof: bool,
        stats: &Stats,
        group: &GroupShared,
    ) -> Result<(), String> {
        let now = unix_ns();
        let result = WRITE_SCRATCH.with_borrow_mut(|out| {
            out.clear();
            let mut outcome = Ok(());
            loop {
                match self.decoder.decode(input) {
                    Ok(Some(packet)) => match self.session.handle(packet, now, stats, out) {
                        Ok(signal) => self.on_signal(signal, stats, group),
                        Err(e) => {
                            outcome = Err(e);
                            break;
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        outcome = Err(format!("malformed packet from the broker: {e:?}"));
                        break;
                    }
                }
            }
            self.send(out).map_err(|e| e.to_string())?;
            outcome
        });
        if !input.is_empty() {
            self.partial_in = BytesMut::from(&input[..]);
            input.clear();
        }
        if eof {
            self.closed_by_broker = true;
        }
        result
    }

    fn on_signal(&mut self, signal: Signal, stats: &Stats, group: &GroupShared) {
        match signal {
            Signal::Nothing => {}
            Signal::ConnAck(code) => self.connack = Some(code),
            Signal::SubAck { granted } => {
                self.subacks_owed = self.subacks_owed.saturating_sub(1);
                if granted {
                    Stats::inc(&stats.counters.subscribes_ok);
                } else {
                    Stats::inc(&stats.counters.subscribes_failed);
                }
                group.subscribes_answered.fetch_add(1, Relaxed);
            }
            Signal::Disconnected(_) => self.closed_by_broker = true,
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every idle connection pays for its task's future; 18,000 of them per
    /// process must fit the loadgen's 2 KiB-per-connection budget with the
    /// socket registration and the allocator's overhead on top.
    #[test]
    fn an_idle_client_task_stays_under_1100_bytes() {
        let run = std::sync::Arc::new(crate::engine::RunShared::for_test());
        let group = std::sync::Arc::new(crate::engine::GroupShared::for_test());
        let client = super::run_client::<tokio::net::TcpStream>(run, group, 0, 0);
        let size = std::mem::size_of_val(&client);
        assert!(size < 1100, "run_client's future is {size} bytes");
    }
}
