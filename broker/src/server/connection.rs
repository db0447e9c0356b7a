//! One client connection: CONNECT, then a reader and a writer over the same
//! stream. The reader decodes packets into the core; the writer drains the
//! connection's outbox when the core wakes it.

use std::future::Future;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use mqtt_codec::{Auth, AuthProperties, ConnAck, DecodeError, Decoder, Packet, ProtocolVersion, ReasonCode, encode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};

use super::listen::Admission;
use super::{NotifyWaker, Shared, limits};
use crate::auth::{AuthStep, Credentials, TransportInfo};
use crate::core::transfer::SessionTransfer;
use crate::core::{Closure, ConnId, Outbox, Refusal};
use crate::seam::{Accepted, Millis, Stream};

/// What a read into the stack takes at most. A connection with nothing
/// partial buffered reads into the stack and copies what arrived into its
/// buffer, so that while it waits for its next packet (an idle connection
/// waits for ever) it holds no read buffer at all.
const SCRATCH_LEN: usize = 2 * 1024;
/// What a read straight into the buffer may take at most: a busy connection
/// reads large chunks without the copy.
const READ_SPARE_MAX: usize = 64 * 1024;
/// A buffer grown beyond this by a large packet is released once empty.
const BUFFER_KEEP_MAX: usize = 16 * 1024;

/// A client that accepts no bytes for this long is disconnected: it would
/// otherwise hold its connection, and the messages for it, for ever.
const WRITE_STALL_MAX: Duration = Duration::from_secs(60);
/// Encoded bytes the writer holds before it writes them: an outbox batch of
/// large messages is written in pieces rather than encoded whole, so a slow
/// reader pins at most this much (plus one packet) of encoded output.
const WRITE_CHUNK_MAX: usize = 64 * 1024;

/// Rounds of an enhanced-authentication exchange before the client is
/// refused: SCRAM needs one; the bound stops a mechanism that never decides.
const AUTH_ROUNDS_MAX: usize = 8;

/// How a connection ended, for the disconnect log line.
enum End {
    Closed(Closure),
    PeerClosed,
    Io(std::io::Error),
}

/// The start of a connection: CONNECT under the deadline, bans,
/// authentication, the cluster takeover and the core's verdict; `None` (the
/// client answered and logged) when it goes no further. Boxed: this holds
/// far more state than the connection needs afterwards, and only for a
/// moment, while the task's own future is allocated whole for the
/// connection's life.
pub(super) fn open(
    shared: Arc<Shared>,
    conn: ConnId,
    accepted: Accepted,
    transport: TransportInfo,
    admission: Admission,
) -> Pin<Box<impl Future<Output = Option<Live>> + Send>> {
    Box::pin(async move { handshake(&shared, conn, accepted, transport, admission).await })
}

/// A connection past its CONNACK: what it holds for the rest of its life.
/// Most connections are idle most of the time, so this, and the futures
/// that wait on it, stay small (see the size test below) and hold no buffer
/// between packets.
pub(super) struct Live {
    read: ReadSide,
    write: WriteSide,
    /// For the log line of the disconnect (the client id comes from the core then).
    peer: SocketAddr,
}

struct ReadSide {
    reader: ReadHalf<Box<dyn Stream>>,
    /// A packet that is not whole yet; no allocation between packets.
    buf: BytesMut,
    decoder: Decoder,
    /// 1.5 times the keep alive the CONNACK settled on (zero: none).
    keep_alive: Duration,
}

struct WriteSide {
    writer: WriteHalf<Box<dyn Stream>>,
    notify: Arc<NotifyWaker>,
    version: ProtocolVersion,
}

async fn handshake(
    shared: &Arc<Shared>,
    conn: ConnId,
    accepted: Accepted,
    transport: TransportInfo,
    admission: Admission,
) -> Option<Live> {
    let peer = accepted.peer;
    let (mut reader, mut writer) = tokio::io::split(accepted.stream);
    let mut buf = BytesMut::new();
    let mut decoder = Decoder::new(shared.config.mqtt.max_packet_size.get());
    decoder.set_max_user_properties(usize::from(shared.config.mqtt.max_user_properties));

    let first = tokio::time::timeout(admission.connect_timeout, read_packet(&mut reader, &mut buf, &mut decoder)).await;
    let mut connect = match first {
        Err(_) => {
            tracing::debug!(%peer, "no CONNECT before the deadline");
            return None;
        }
        Ok(Err(ReadError::Io(error))) => {
            tracing::debug!(%peer, %error, "read failed before CONNECT");
            return None;
        }
        Ok(Err(ReadError::Eof)) => return None,
        Ok(Err(ReadError::Decode(error, level))) => {
            refuse_bad_connect(&mut writer, level, &error).await;
            tracing::info!(%peer, %error, "connection refused: bad CONNECT");
            return None;
        }
        Ok(Ok(Packet::Connect(connect))) => connect,
        Ok(Ok(other)) => {
            tracing::info!(%peer, packet = other.name(), "connection closed: first packet is not CONNECT");
            return None;
        }
    };
    // peer_cert_as_username / peer_cert_as_clientid: the certificate's names, before bans and authentication.
    admission.apply(&mut connect);
    let version = connect.protocol;
    if let Err(reason) = shared.limits.check_banned(&connect, peer, shared.runtime.clock.wall_ms(shared.now())) {
        write_packets(&mut writer, version, Refusal::new(reason).connack(version).as_slice()).await;
        return None;
    }

    let credentials = Credentials { connect: &connect, peer, transport: &transport };
    let verdict = match connect.properties.authentication_method.clone() {
        None => {
            shared.authenticator.authenticate(credentials).await.map_err(AuthFailure::Refused).map(|()| (None, None))
        }
        Some(method) => {
            let wire = Wire { reader: &mut reader, writer: &mut writer, buf: &mut buf, decoder: &mut decoder };
            auth_exchange(shared, credentials, &method, wire, admission.connect_timeout).await
        }
    };
    match verdict {
        Ok((server_final, user)) => {
            // The core echoes the method and hands this data to the client in the CONNACK.
            connect.properties.authentication_data = server_final;
            if connect.username.is_none() {
                connect.username = user;
            }
        }
        Err(AuthFailure::Refused(reason)) => {
            write_packets(&mut writer, version, Refusal::new(reason).connack(version).as_slice()).await;
            tracing::info!(%peer, client_id = %connect.client_id, %reason, "connection refused: authentication");
            return None;
        }
        Err(AuthFailure::Gone(why)) => {
            tracing::info!(%peer, client_id = %connect.client_id, why, "connection closed");
            return None;
        }
    }
    if *shared.shutting_down.borrow() {
        let refusal = Refusal::new(ReasonCode::SERVER_UNAVAILABLE);
        write_packets(&mut writer, version, refusal.connack(version).as_slice()).await;
        return None;
    }

    let notify = Arc::new(NotifyWaker(broker_sync::Signal::new()));
    let requested_id = connect.client_id.clone();
    let clean_start = connect.clean_start;
    // In a cluster, a session held by another node moves here first, so that
    // the CONNECT resumes it as a local reconnect would. The clock reading
    // orders this connection against one of the same client id elsewhere.
    let stamp = shared.cluster.as_ref().and_then(|_| shared.with_broker(|broker, now| broker.cluster_stamp(now)));
    let takeover = match (&shared.cluster, stamp) {
        (Some(cluster), Some(stamp)) if !connect.client_id.is_empty() => {
            let client = bytestring::ByteString::from(&*connect.client_id);
            cluster.take_over(&client, clean_start, stamp, shared.now()).await
        }
        _ => Default::default(),
    };
    let transfer = takeover.session;
    let outcome = shared.with_broker(|broker, now| {
        if let Some(transfer) = transfer.and_then(|t| SessionTransfer::from_wire(*t, now)) {
            broker.import_session(transfer, now);
        }
        let waker: Arc<dyn crate::core::Waker> = notify.clone();
        broker.connect_from(conn, *connect, Some(peer.ip()), waker, now)
    });
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(refusal) => {
            if let (Some(cluster), Some(stamp)) = (&shared.cluster, stamp) {
                cluster.connect_failed(&requested_id, stamp);
            }
            write_packets(&mut writer, version, refusal.connack(version).as_slice()).await;
            tracing::info!(%peer, client_id = %requested_id, reason = %refusal.reason, "connection refused");
            return None;
        }
    };
    let client_id = outcome.client_id.clone();
    if let (Some(cluster), Some(stamp)) = (&shared.cluster, stamp) {
        let won_race = cluster.connected(conn, &client_id, stamp);
        if !won_race {
            // A later CONNECT of this client reached another node meanwhile: it wins.
            tracing::info!(%client_id, "a later connection of the client elsewhere wins the race");
            shared.with_broker(|broker, now| cluster.lose(broker, &client_id, None, now));
        } else if let Some((peer, newer)) = &takeover.newer {
            // A peer kept a later connection of this client: this one loses at once.
            shared.with_broker(|broker, now| cluster.settle(broker, peer, &client_id, *newer, now));
        } else {
            cluster.announce(&client_id, stamp, &takeover.answered);
        }
    }
    tracing::info!(%peer, %client_id, %version, clean_start, keep_alive = outcome.keep_alive, session_present = outcome.session_present, "client connected");
    limits::check_live_ban(shared, conn);

    let keep_alive = Duration::from_millis(u64::from(outcome.keep_alive) * 1500);
    Some(Live {
        read: ReadSide { reader, buf, decoder, keep_alive },
        write: WriteSide { writer, notify, version },
        peer,
    })
}

impl Live {
    /// Reads into the core and writes what it queues until either side ends.
    /// By reference: the caller's future holds the connection, once.
    pub(super) async fn run(&mut self, shared: &Arc<Shared>, conn: ConnId) {
        let Self { read, write, peer } = self;
        let reading = read_loop(shared, conn, read);
        let writing = write_loop(shared, conn, write);
        let end = tokio::select! {
            end = reading => end,
            end = writing => end,
        };
        // The client's DISCONNECT may have closed the session just before the socket.
        let (closure, client_id) = shared.with_broker(|broker, now| {
            let closure = broker.closure(conn);
            let client_id = broker.client_of(conn).unwrap_or_default();
            broker.connection_lost(conn, now);
            (closure, client_id)
        });
        if let Some(cluster) = &shared.cluster {
            cluster.disconnected(conn);
        }
        if let Some(closure) = closure.filter(|c| !c.why.starts_with("client disconnected")) {
            shared.limits.closed(closure.reason);
        }
        let end = match (end, closure) {
            (End::PeerClosed, Some(closure)) => End::Closed(closure),
            (end, _) => end,
        };
        let _ = write.writer.shutdown().await;
        match end {
            End::Closed(closure) => {
                tracing::info!(%peer, %client_id, reason = %closure.reason, why = closure.why, "client disconnected")
            }
            End::PeerClosed => tracing::info!(%peer, %client_id, "client disconnected: connection closed by peer"),
            End::Io(error) => tracing::info!(%peer, %client_id, %error, "client disconnected: network error"),
        }
    }
}

/// Why authentication let a client not in.
enum AuthFailure {
    /// Answer with CONNACK and this reason.
    Refused(ReasonCode),
    /// Nothing to answer: the client left, or let the deadline pass.
    Gone(&'static str),
}

/// The connection's read and write sides during the AUTH exchange.
struct Wire<'a> {
    reader: &'a mut ReadHalf<Box<dyn Stream>>,
    writer: &'a mut WriteHalf<Box<dyn Stream>>,
    buf: &'a mut BytesMut,
    decoder: &'a mut Decoder,
}

/// MQTT 5 enhanced authentication (section 4.12): the CONNECT's data, then
/// AUTH 0x18 both ways until the mechanism decides, all within `deadline`
/// from now. Returns the data for the CONNACK and the user it proved.
async fn auth_exchange(
    shared: &Shared,
    credentials: Credentials<'_>,
    method: &ByteString,
    wire: Wire<'_>,
    deadline: Duration,
) -> Result<(Option<Bytes>, Option<ByteString>), AuthFailure> {
    let Some(mut exchange) = shared.authenticator.start_exchange(method, credentials) else {
        // [MQTT-4.12.0-1]
        return Err(AuthFailure::Refused(ReasonCode::BAD_AUTHENTICATION_METHOD));
    };
    let clock = shared.runtime.clock;
    let until = clock.instant(clock.now().saturating_add(u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX)));
    let mut data = credentials.connect.properties.authentication_data.clone().unwrap_or_default();
    for _ in 0..AUTH_ROUNDS_MAX {
        let challenge = match exchange.step(&data) {
            AuthStep::Success(server_final) => return Ok((server_final, exchange.user().map(ByteString::from))),
            AuthStep::Failure(reason) => return Err(AuthFailure::Refused(reason)),
            AuthStep::Continue(challenge) => challenge,
        };
        // [MQTT-4.12.0-2], [MQTT-4.12.0-5]
        let properties = AuthProperties {
            authentication_method: Some(method.clone()),
            authentication_data: Some(challenge),
            ..AuthProperties::default()
        };
        let auth = Packet::Auth(Auth { reason_code: ReasonCode::CONTINUE_AUTHENTICATION, properties });
        write_packets(wire.writer, ProtocolVersion::V5, &[auth]).await;
        let reply = tokio::time::timeout_at(until, read_packet(wire.reader, wire.buf, wire.decoder)).await;
        data = match reply {
            Err(_) => return Err(AuthFailure::Gone("no AUTH before the connect deadline")),
            Ok(Err(ReadError::Decode(error, _))) => return Err(AuthFailure::Refused(error.reason_code())),
            Ok(Err(ReadError::Eof | ReadError::Io(_))) => return Err(AuthFailure::Gone("lost during authentication")),
            Ok(Ok(Packet::Auth(auth)))
                if auth.reason_code == ReasonCode::CONTINUE_AUTHENTICATION
                    && auth.properties.authentication_method.as_ref() == Some(method) =>
            {
                auth.properties.authentication_data.unwrap_or_default()
            }
            Ok(Ok(Packet::Disconnect(_))) => {
                return Err(AuthFailure::Gone("client disconnected during authentication"));
            }
            // [MQTT-3.1.2-30]: nothing but AUTH or DISCONNECT before the CONNACK; [MQTT-4.12.0-5]: the same method.
            Ok(Ok(_)) => return Err(AuthFailure::Refused(ReasonCode::PROTOCOL_ERROR)),
        };
    }
    Err(AuthFailure::Refused(ReasonCode::NOT_AUTHORIZED))
}

enum ReadError {
    Eof,
    Io(std::io::Error),
    /// With the protocol level the CONNECT announced, if it got that far.
    Decode(DecodeError, Option<u8>),
}

async fn read_packet(
    reader: &mut ReadHalf<Box<dyn Stream>>,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
) -> Result<Packet, ReadError> {
    loop {
        // Read the level before the decoder consumes the frame: it decides how to refuse.
        let level = sniff_connect_level(buf);
        if let Some(packet) = decoder.decode(buf).map_err(|e| ReadError::Decode(e, level))? {
            return Ok(packet);
        }
        match std::future::poll_fn(|cx| poll_read_some(reader, cx, buf, SCRATCH_LEN)).await {
            Ok(0) => return Err(ReadError::Eof),
            Ok(_) => {}
            Err(error) => return Err(ReadError::Io(error)),
        }
    }
}

/// Reads what is available into `buf`: through a stack buffer when nothing
/// partial is buffered and `spare` fits in it (the buffer then holds only
/// what arrived, and nothing while the read waits), else straight into `buf`
/// with `spare` free bytes. Ready with the number of bytes read (0: end of stream).
fn poll_read_some(
    reader: &mut ReadHalf<Box<dyn Stream>>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    spare: usize,
) -> Poll<std::io::Result<usize>> {
    if buf.is_empty() && spare <= SCRATCH_LEN {
        // Even with no capacity left, an empty buffer split from a frame keeps
        // the frame's allocation alive; the frames hold it for as long as they need it.
        *buf = BytesMut::new();
        let mut scratch = [MaybeUninit::<u8>::uninit(); SCRATCH_LEN];
        let mut read = ReadBuf::uninit(&mut scratch);
        ready!(Pin::new(reader).poll_read(cx, &mut read))?;
        buf.extend_from_slice(read.filled());
        return Poll::Ready(Ok(read.filled().len()));
    }
    buf.reserve(spare);
    let before = buf.len();
    ready!(std::pin::pin!(reader.read_buf(buf)).poll(cx))?;
    Poll::Ready(Ok(buf.len() - before))
}

/// Reads and hands packets to the core until the peer closes, an error
/// occurs or keep alive expires: no whole control packet for 1.5 times the
/// interval ([MQTT-3.1.2-24] 3.1.1, [MQTT-3.1.2-22] 5.0). Bytes that do not
/// complete a packet do not count, so a client cannot trickle a packet to
/// hold its connection for ever.
///
/// A client over `[limits] max_messages_per_sec` or `max_bytes_per_sec` is
/// not disconnected: reads pause until it is back within its rate, TCP's
/// window fills, and the client slows down (back-pressure, as in EMQX).
async fn read_loop(shared: &Arc<Shared>, conn: ConnId, side: &mut ReadSide) -> End {
    // Few locals live across the awaits below: each is in the connection's
    // future for its whole life.
    let mut read_spare = SCRATCH_LEN;
    // One timer for the connection's life, pushed back by each whole packet
    // rather than made anew for each read.
    let mut expiry = std::pin::pin!((!side.keep_alive.is_zero()).then(|| {
        let clock = shared.runtime.clock;
        tokio::time::sleep_until(clock.instant(clock.now().saturating_add(millis(side.keep_alive))))
    }));
    let mut rate = shared.limits.client_rate(shared.now());
    loop {
        let Ok(received) = take_packets(shared, conn, side) else {
            // Stop reading; the writer flushes the DISCONNECT and closes.
            return std::future::pending().await;
        };
        // Read from `shared` where used: a local clock would stay in the future across the awaits.
        if let Some((publishes, now)) = received {
            if let Some(expiry) = expiry.as_mut().as_pin_mut() {
                expiry.reset(shared.runtime.clock.instant(now.saturating_add(millis(side.keep_alive))));
            }
            if let Some(rate) = &mut rate {
                rate.received(publishes, now);
            }
        }
        let now = shared.now();
        if let Some(rate) = &mut rate
            && let Some(resume_at) = rate.resume_at(now)
        {
            shared.limits.paused(conn, rate, resume_at, now);
            // Boxed: pauses are rare, and the timer would otherwise take room in every connection's future.
            Box::pin(tokio::time::sleep_until(shared.runtime.clock.instant(resume_at))).await;
            // The pause is the broker's doing: it must not use up the client's keep alive.
            let clock = shared.runtime.clock;
            if let Some(expiry) = expiry.as_mut().as_pin_mut() {
                let later = expiry.deadline().max(clock.instant(resume_at.saturating_add(millis(side.keep_alive))));
                expiry.reset(later);
            }
        }
        let buf = &mut side.buf;
        if buf.is_empty() && buf.capacity() > BUFFER_KEEP_MAX {
            *buf = BytesMut::new();
        }
        let offered = if buf.is_empty() && read_spare <= SCRATCH_LEN {
            SCRATCH_LEN
        } else {
            buf.reserve(read_spare);
            buf.capacity() - buf.len()
        };
        let read = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = poll_read_some(&mut side.reader, cx, &mut side.buf, read_spare) {
                return Poll::Ready(Some(result));
            }
            match expiry.as_mut().as_pin_mut() {
                Some(expiry) => expiry.poll(cx).map(|()| None),
                None => Poll::Pending,
            }
        });
        let Some(result) = read.await else {
            shared.with_broker(|broker, now| {
                broker.protocol_error(conn, ReasonCode::KEEP_ALIVE_TIMEOUT, "keep alive timeout", now)
            });
            return std::future::pending().await;
        };
        if let (Ok(n), Some(rate)) = (&result, &mut rate) {
            rate.read(*n, shared.now());
        }
        match result {
            Ok(0) => return End::PeerClosed,
            // A read that filled what it was offered suggests more is waiting: read more at once next time.
            Ok(n) if n == offered => read_spare = (read_spare * 2).min(READ_SPARE_MAX),
            Ok(n) if n < read_spare / 4 => read_spare = (read_spare / 2).max(SCRATCH_LEN),
            Ok(_) => {}
            Err(error) => return End::Io(error),
        }
    }
}

/// Decodes every whole packet buffered and hands them to the core in one
/// batch. Ok with the number of PUBLISH packets and the core's clock reading
/// when there were any; Err when one was malformed or broke a rule (the core
/// was told and will close the connection). Not async: decoded packets and
/// errors never stay in the connection's future.
fn take_packets(shared: &Shared, conn: ConnId, side: &mut ReadSide) -> Result<Option<(usize, Millis)>, ()> {
    let mut packets = Vec::new();
    let failure = loop {
        match side.decoder.decode(&mut side.buf) {
            Ok(Some(packet)) => packets.push(packet),
            Ok(None) => break None,
            Err(error) => break Some(error),
        }
    };
    let publishes = packets.iter().filter(|p| matches!(p, Packet::Publish(_))).count();
    let now = (!packets.is_empty()).then(|| {
        shared.with_broker(|broker, now| {
            packets.into_iter().for_each(|p| broker.handle_packet(conn, p, now));
            now
        })
    });
    match failure {
        None => Ok(now.map(|now| (publishes, now))),
        Some(error) => {
            tracing::debug!(conn, %error, "protocol violation");
            shared.with_broker(|broker, now| {
                broker.protocol_error(conn, error.reason_code(), "malformed or invalid packet", now)
            });
            Err(())
        }
    }
}

fn millis(duration: Duration) -> Millis {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Sends what the core queues for this connection until it asks to close.
async fn write_loop(shared: &Arc<Shared>, conn: ConnId, side: &mut WriteSide) -> End {
    loop {
        // Boxed: encoding and writing hold a buffer and timers only while
        // there is output; an idle connection waits with neither.
        if let Some(end) = Box::pin(write_pending(shared, conn, side)).await {
            return end;
        }
        side.notify.0.wait().await;
    }
}

/// Writes everything the core has queued for the connection, then flushes.
/// `Some` when the connection is to end.
async fn write_pending(shared: &Shared, conn: ConnId, side: &mut WriteSide) -> Option<End> {
    let writer = &mut side.writer;
    let mut out = BytesMut::new();
    loop {
        let Outbox { packets, close } = shared.with_broker(|broker, now| broker.take_outbox(conn, now));
        if packets.is_empty() && close.is_none() {
            break;
        }
        for packet in &packets {
            if let Err(error) = encode(packet, side.version, &mut out) {
                tracing::warn!(conn, %error, packet = packet.name(), "packet not sent: cannot encode");
            }
            if out.len() >= WRITE_CHUNK_MAX
                && let Err(end) = write_out(writer, &mut out).await
            {
                return Some(end);
            }
        }
        if let Err(end) = write_out(writer, &mut out).await {
            return Some(end);
        }
        if out.capacity() > BUFFER_KEEP_MAX {
            out = BytesMut::new();
        } else {
            out.clear();
        }
        if let Some(closure) = close {
            let _ = writer.flush().await;
            return Some(End::Closed(closure));
        }
    }
    // A no-op on TCP; TLS and WebSocket streams may hold written bytes until flushed.
    match tokio::time::timeout(WRITE_STALL_MAX, writer.flush()).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(End::Io(error)),
        Err(_) => Some(End::Io(std::io::ErrorKind::TimedOut.into())),
    }
}

/// Writes all of `out`; a peer that takes nothing for `WRITE_STALL_MAX` is given up on.
async fn write_out(writer: &mut WriteHalf<Box<dyn Stream>>, out: &mut BytesMut) -> Result<(), End> {
    while out.has_remaining() {
        match tokio::time::timeout(WRITE_STALL_MAX, writer.write_buf(out)).await {
            Ok(Ok(0)) => return Err(End::PeerClosed),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(End::Io(error)),
            Err(_) => return Err(End::Io(std::io::ErrorKind::TimedOut.into())),
        }
    }
    Ok(())
}

async fn write_packets(writer: &mut WriteHalf<Box<dyn Stream>>, version: ProtocolVersion, packets: &[Packet]) {
    let mut out = BytesMut::new();
    for packet in packets {
        let _ = encode(packet, version, &mut out);
    }
    let _ = writer.write_all(&out).await;
    let _ = writer.flush().await;
}

/// Answers a CONNECT that failed to decode: CONNACK 0x84 (return code 1) for
/// an unknown protocol level; for MQTT 5 a CONNACK with the error's reason;
/// otherwise just close ([MQTT-3.1.4-1], [MQTT-3.2.2-?]).
async fn refuse_bad_connect(writer: &mut WriteHalf<Box<dyn Stream>>, level: Option<u8>, error: &DecodeError) {
    let (version, reason) = match error {
        // The 3.1.1 layout: a client of any version can read return code 1.
        DecodeError::UnsupportedProtocolVersion { .. } => {
            (ProtocolVersion::V3_1_1, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION)
        }
        // A wrong protocol name: the client may not speak MQTT at all; close ([MQTT-3.1.2-1]).
        _ if error.statement() == Some("MQTT-3.1.2-1") => return,
        _ if level == Some(5) => (ProtocolVersion::V5, error.reason_code()),
        _ => return,
    };
    let connack = Packet::ConnAck(ConnAck { reason_code: reason, ..ConnAck::default() });
    write_packets(writer, version, &[connack]).await;
}

/// The protocol level byte of a CONNECT at the start of `buf`, if present.
fn sniff_connect_level(buf: &[u8]) -> Option<u8> {
    if buf.first()? >> 4 != 1 {
        return None;
    }
    let mut offset = 1;
    for _ in 0..4 {
        let byte = *buf.get(offset)?;
        offset += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let name_len = usize::from(u16::from_be_bytes([*buf.get(offset)?, *buf.get(offset + 1)?]));
    buf.get(offset + 2 + name_len).copied()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::sniff_connect_level;
    use crate::config::Config;
    use crate::seam::Accepted;
    use crate::server::listen::{ListenerCtx, serve_accepted};
    use crate::server::test_shared;

    /// A connection's task future is allocated whole, for the connection's
    /// life, and most connections are idle: the bound fails a change that
    /// grows it (a field, or a local held across an await). The handshake's
    /// state is boxed apart and freed once the CONNACK is out, so it does not
    /// count here; the idle-connections scenario measures the whole cost.
    #[test]
    fn an_open_connection_task_stays_under_600_bytes() {
        let shared = test_shared(Config::default());
        let peer = "127.0.0.1:40000".parse().expect("an address");
        let ctx = Arc::new(ListenerCtx::for_test(&shared.config));
        let slot = ctx.admit(&shared, peer).expect("room on the listener");
        let (stream, _client) = tokio::io::duplex(64);
        let task = serve_accepted(Arc::clone(&shared), slot, Accepted { stream: Box::new(stream), peer }, None);
        let size = std::mem::size_of_val(&task);
        assert!(size < 600, "an open connection's task future is {size} bytes");
        assert!(std::mem::size_of::<super::Live>() <= 128, "Live is {} bytes", std::mem::size_of::<super::Live>());
    }

    /// Between packets the read buffer gives up its allocation, even the
    /// share of it that splitting a frame off leaves behind: the decoded
    /// packet owns the bytes alone.
    #[tokio::test]
    async fn a_connection_waiting_for_its_next_packet_holds_no_read_buffer() {
        use tokio::io::AsyncWriteExt;

        let (stream, mut client) = tokio::io::duplex(64);
        let (mut reader, _writer) = tokio::io::split(Box::new(stream) as Box<dyn crate::seam::Stream>);
        let mut buf = bytes::BytesMut::new();
        client.write_all(&[0xC0, 0x00]).await.expect("a PINGREQ written");
        let read = std::future::poll_fn(|cx| super::poll_read_some(&mut reader, cx, &mut buf, super::SCRATCH_LEN));
        assert_eq!(read.await.expect("a read"), 2);
        let frame = buf.split_to(2).freeze();
        assert!(!frame.is_unique(), "the emptied buffer still shares the frame's allocation");
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(super::poll_read_some(&mut reader, &mut cx, &mut buf, super::SCRATCH_LEN).is_pending());
        assert!(frame.is_unique() && buf.capacity() == 0, "a waiting read holds no buffer");
    }

    #[test]
    fn sniffs_the_level_of_a_connect() {
        let connect = [0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02];
        assert_eq!(sniff_connect_level(&connect), Some(5));
        assert_eq!(sniff_connect_level(&connect[..5]), None);
        assert_eq!(sniff_connect_level(&[0x30, 0x00]), None);
    }
}
