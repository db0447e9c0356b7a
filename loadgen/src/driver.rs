//! One client on tokio: a task that owns a socket and a [`Session`].
//!
//! Memory per idle connection is what matters at 18,000 connections per
//! process, so a client keeps no read or write buffer of its own: bytes are
//! read into and written from per-thread scratch buffers inside one
//! synchronous step, and only what the kernel would not take, or a packet cut
//! in half, is copied into the client's own (normally empty) buffers. There
//! is one task per connection and no task per message.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};
use bytestring::ByteString;
use mqtt_codec::{Decoder, QoS};
use tokio::io::Interest;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::engine::{Command, GroupShared, PublishSpec, RunShared};
use crate::payload::{Header, publisher_key};
use crate::session::{Message, Session, Signal};
use crate::stats::Stats;
use crate::template::Vars;

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

struct Conn {
    stream: TcpStream,
    session: Session,
    decoder: Decoder,
    /// Part of a packet left over from the last read.
    partial_in: BytesMut,
    /// Bytes the kernel did not take yet.
    pending_out: BytesMut,
    last_sent: Instant,
    connack: Option<u8>,
    closed_by_broker: bool,
    subacks_owed: u32,
}

/// Runs client `number` of `group` until it is told to disconnect or its
/// connection ends. `slot` is its position among this process's clients of
/// the group, used to spread publish schedules over the interval.
pub async fn run_client(run: Arc<RunShared>, group: Arc<GroupShared>, number: u64, slot: u64) {
    let stats = &run.stats;
    let client_id = ByteString::from(format!("{}{number}", group.prefix));
    // Boxed: the connect future is large and lives only while connecting, so it stays out of the
    // task's steady-state size (what every idle connection pays).
    let mut conn = match Box::pin(connect(&run, &group, number, &client_id)).await {
        Ok(conn) => conn,
        Err(_) => {
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
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.drain()).await;
    } else {
        Stats::inc(&stats.counters.disconnects);
    }
    stats.connections.fetch_sub(1, Relaxed);
    group.connected.fetch_sub(1, Relaxed);
}

async fn connect(run: &RunShared, group: &GroupShared, number: u64, client_id: &ByteString) -> Result<Conn, String> {
    let mut attempt = 0;
    loop {
        let result = tokio::time::timeout(run.connect_timeout, connect_once(run, group, number, client_id)).await;
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

async fn connect_once(
    run: &RunShared,
    group: &GroupShared,
    number: u64,
    client_id: &ByteString,
) -> Result<Conn, String> {
    let target: SocketAddr = run.targets[(number % run.targets.len() as u64) as usize];
    let socket = if target.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(|e| e.to_string())?;
    if !run.sources.is_empty() {
        let source = run.sources[(number % run.sources.len() as u64) as usize];
        socket.bind(SocketAddr::new(source, 0)).map_err(|e| format!("bind {source}: {e}"))?;
    }
    let stream = socket.connect(target).await.map_err(|e| format!("connect {target}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let version = group.connect.version;
    let shard = number as usize;
    let mut conn = Conn {
        stream,
        session: Session::new(version, shard),
        decoder: Decoder::with_version(version, PACKET_SIZE_MAX),
        partial_in: BytesMut::new(),
        pending_out: BytesMut::new(),
        last_sent: Instant::now(),
        connack: None,
        closed_by_broker: false,
        subacks_owed: 0,
    };
    conn.write_with(|s, out| s.connect(client_id, &group.connect, out).map_err(|e| format!("{e:?}")))?;
    while conn.connack.is_none() {
        conn.stream.readable().await.map_err(|e| e.to_string())?;
        conn.on_readable(&run.stats, group)?;
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
async fn serve(
    run: &RunShared,
    group: &GroupShared,
    conn: &mut Conn,
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
            // One readiness future for both directions: every idle connection pays for each
            // future held in this select!, so there is one, not a readable and a writable one.
            ready = conn.stream.ready(if conn.pending_out.is_empty() { Interest::READABLE } else { Interest::READABLE | Interest::WRITABLE }) => {
                let Ok(ready) = ready else { return false };
                if ready.is_writable() && conn.flush_pending().is_err() {
                    return false;
                }
                if (ready.is_readable() || ready.is_read_closed())
                    && (conn.on_readable(&run.stats, group).is_err() || conn.closed_by_broker)
                {
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
fn publish_due(
    run: &RunShared,
    conn: &mut Conn,
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

impl Conn {
    /// Encodes with `f` into the thread's scratch buffer and sends it, keeping
    /// whatever the kernel does not take.
    fn write_with(&mut self, f: impl FnOnce(&mut Session, &mut BytesMut) -> Result<(), String>) -> Result<(), String> {
        WRITE_SCRATCH.with_borrow_mut(|out| {
            out.clear();
            f(&mut self.session, out)?;
            self.send(out).map_err(|e| e.to_string())
        })
    }

    fn send(&mut self, out: &mut BytesMut) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        self.last_sent = Instant::now();
        if !self.pending_out.is_empty() {
            self.pending_out.extend_from_slice(out);
            out.clear();
            return Ok(());
        }
        while !out.is_empty() {
            match self.stream.try_write(out) {
                Ok(n) => out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.pending_out.extend_from_slice(out);
                    out.clear();
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        while !self.pending_out.is_empty() {
            match self.stream.try_write(&self.pending_out) {
                Ok(n) => self.pending_out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        // Give back a buffer that grew under a burst; an idle client keeps none.
        self.pending_out = BytesMut::new();
        Ok(())
    }

    async fn drain(&mut self) {
        while !self.pending_out.is_empty() {
            if self.stream.writable().await.is_err() || self.flush_pending().is_err() {
                return;
            }
        }
    }

    /// Reads what the socket has, handles every whole packet, and sends the responses.
    fn on_readable(&mut self, stats: &Stats, group: &GroupShared) -> Result<(), String> {
        READ_SCRATCH.with_borrow_mut(|input| {
            input.clear();
            if !self.partial_in.is_empty() {
                input.extend_from_slice(&self.partial_in);
                self.partial_in = BytesMut::new();
            }
            let mut eof = false;
            while input.len() < READ_BATCH_MAX {
                input.reserve(64 << 10);
                match self.stream.try_read_buf(input) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.to_string()),
                }
            }
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
        })
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
        let client = super::run_client(run, group, 0, 0);
        let size = std::mem::size_of_val(&client);
        assert!(size < 1100, "run_client's future is {size} bytes");
    }
}
