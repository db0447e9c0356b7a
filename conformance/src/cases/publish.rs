//! Cases: PUBLISH and its acknowledgements (sections 3.3 to 3.7), the QoS
//! delivery flows (4.3), redelivery on session resumption (4.4), message
//! ordering (4.6), retained messages, PUBLISH properties, message expiry,
//! topic aliases, flow control (4.9) and the Maximum Packet Size towards the
//! client.
//!
//! Statements of this area without a case:
//! - 3.1.1 MQTT-3.3.5-2 (a PUBLISH the server does not authorize): needs a
//!   server configured to refuse a client; not observable against a
//!   permissive target.
//! - 5.0 MQTT-4.3.3-9 has a case, but the server chooses when to send a
//!   PUBREC with an error code; the case provokes one where the server is
//!   willing (payload format check) and skips otherwise.

use std::collections::HashMap;
use std::time::Duration;

use crate::case::{Case, CaseResult, Ctx, Failure};
use crate::client::{Client, Event, REPLY_WAIT, SILENCE_WAIT};
use crate::packets::{self, Ack, ConnectBuilder, Publish};
use crate::wire::{Frame, Props, Writer, kind, kind_name, prop};
use crate::{case, ensure};

type R<T> = Result<T, Failure>;

/// Reason codes a PUBACK or PUBREC may carry (5.0 sections 3.4.2.1, 3.5.2.1).
const PUBACK_CODES: [u8; 9] = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
/// Reason codes a PUBREL or PUBCOMP may carry (5.0 sections 3.6.2.1, 3.7.2.1).
const PUBREL_CODES: [u8; 2] = [0x00, 0x92];

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn show(p: &Publish) -> String {
    format!(
        "PUBLISH(topic {:?}, qos {}, dup {}, retain {}, id {:?}, payload {:?}, props {:?})",
        p.topic,
        p.qos,
        u8::from(p.dup),
        u8::from(p.retain),
        p.packet_id,
        String::from_utf8_lossy(&p.payload),
        p.props.0
    )
}

fn show_all(ps: &[Publish]) -> String {
    ps.iter().map(show).collect::<Vec<_>>().join(", ")
}

fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

/// The next packet; a close or silence is a failure naming `what` was expected.
async fn next(c: &mut Client, within: Duration, what: &str) -> R<Frame> {
    match c.recv(within).await? {
        Event::Frame(frame) => Ok(frame),
        Event::Closed => Err(Failure::Fail(format!("expected {what}, but the server closed the connection"))),
        Event::Silent => Err(Failure::Fail(format!("expected {what}, but nothing arrived within {within:?}"))),
    }
}

/// Fails if any packet arrives within `within`.
async fn quiet(c: &mut Client, within: Duration, why: &str) -> CaseResult {
    match c.recv(within).await? {
        Event::Silent => Ok(()),
        Event::Closed => Err(Failure::Fail(format!("expected silence ({why}), but the server closed the connection"))),
        Event::Frame(frame) => Err(Failure::Fail(format!("expected nothing ({why}), got {frame:?}"))),
    }
}

/// A session that outlives the connection: Clean Session 0 (3.1.1), or
/// Clean Start 0 with a Session Expiry Interval of 60 s (5.0).
fn session(ctx: &Ctx, name: &str, extra: Props) -> ConnectBuilder {
    let b = ctx.connect_builder(name).clean(false);
    if ctx.version.is_v5() { b.props(extra.u32(prop::SESSION_EXPIRY_INTERVAL, 60)) } else { b }
}

async fn open(ctx: &Ctx, b: &ConnectBuilder) -> R<Client> {
    Ok(Client::connect_ok(&ctx.target, b).await?.0)
}

/// Reconnects to an existing session and checks the server says so.
async fn resume(ctx: &Ctx, b: &ConnectBuilder) -> R<Client> {
    let (c, connack) = Client::connect_ok(&ctx.target, b).await?;
    ensure!(connack.session_present, "expected CONNACK with Session Present 1 when resuming, got 0");
    Ok(c)
}

/// Sends a normal DISCONNECT and closes the connection.
async fn leave(mut c: Client) {
    let v = c.version;
    let _ = c.send(&packets::disconnect(v, 0, Props::new())).await;
    // Close, and wait (briefly) until the server has processed the DISCONNECT
    // and the close: otherwise a message published next on another connection
    // may still be routed to this one, or a reconnection may find it open.
    c.close(Duration::from_secs(1)).await;
}

/// Ends a session left by a case (best effort).
async fn forget(ctx: &Ctx, name: &str) {
    if let Ok((c, _)) = Client::connect(&ctx.target, &ctx.connect_builder(name)).await {
        leave(c).await;
    }
}

/// Removes a retained message a case stored (best effort).
async fn clear_retained(ctx: &Ctx, topic: &str) {
    if let Ok((mut c, _)) = ctx.connect("clr").await {
        let _ = c.send(&packets::publish(ctx.version, topic, b"", 0, true, 0, Props::new())).await;
        leave(c).await;
    }
}

/// SUBSCRIBE to one filter with an options byte; returns the granted QoS and
/// any PUBLISH that arrived before the SUBACK.
async fn subscribe_opts(c: &mut Client, pid: u16, filter: &str, options: u8) -> R<(u8, Vec<Publish>)> {
    let v = c.version;
    c.send(&packets::subscribe(v, pid, &[(filter, options)], Props::new())).await?;
    let mut early = Vec::new();
    loop {
        let frame = next(c, REPLY_WAIT, "SUBACK").await?;
        match frame.kind {
            kind::SUBACK => {
                let suback = packets::parse_suback(&frame, v)?;
                ensure!(suback.packet_id == pid, "expected SUBACK for packet identifier {pid}, got {frame:?}");
                let code = suback.codes.first().copied().unwrap_or(0x80);
                ensure!(code < 0x80, "the server refused the subscription to {filter:?}: {frame:?}");
                return Ok((code, early));
            }
            kind::PUBLISH => early.push(packets::parse_publish(&frame, v)?),
            _ => return Err(Failure::Fail(format!("expected SUBACK, got {frame:?}"))),
        }
    }
}

/// SUBSCRIBE to `filter` at `qos`; nothing may arrive before the SUBACK.
async fn subscribe(c: &mut Client, filter: &str, qos: u8) -> R<u8> {
    let (granted, early) = subscribe_opts(c, 1, filter, qos).await?;
    ensure!(early.is_empty(), "expected only a SUBACK, got {} first", show_all(&early));
    ensure!(granted <= qos, "SUBACK granted QoS {granted} for a request of QoS {qos}");
    Ok(granted)
}

/// Expects an acknowledgement of kind `k` for `pid` with the right flags and a
/// success reason code.
async fn expect_ack(c: &mut Client, k: u8, pid: u16) -> R<Ack> {
    let frame = c.expect(k).await?;
    let ack = packets::parse_ack(&frame, c.version)?;
    ensure!(ack.packet_id == pid, "expected {} for packet identifier {pid}, got {frame:?}", kind_name(k));
    let flags = if k == kind::PUBREL { 0x02 } else { 0x00 };
    ensure!(frame.flags == flags, "expected {} with fixed header flags {flags:#x}, got {frame:?}", kind_name(k));
    ensure!(ack.reason < 0x80, "expected {} with a success reason code, got {frame:?}", kind_name(k));
    let allowed: &[u8] = if k == kind::PUBACK || k == kind::PUBREC { &PUBACK_CODES } else { &PUBREL_CODES };
    ensure!(allowed.contains(&ack.reason), "{} carries a reason code not allowed for it: {frame:?}", kind_name(k));
    Ok(ack)
}

/// Completes the sender side of a PUBLISH already sent at `qos`.
async fn finish_publish(c: &mut Client, qos: u8, pid: u16) -> CaseResult {
    match qos {
        1 => {
            expect_ack(c, kind::PUBACK, pid).await?;
        }
        2 => {
            expect_ack(c, kind::PUBREC, pid).await?;
            c.send(&packets::ack(kind::PUBREL, pid)).await?;
            expect_ack(c, kind::PUBCOMP, pid).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Publishes and completes the flow as the sender.
async fn publish(
    c: &mut Client,
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    pid: u16,
    props: Props,
) -> CaseResult {
    let v = c.version;
    c.send(&packets::publish(v, topic, payload, qos, retain, pid, props)).await?;
    finish_publish(c, qos, pid).await
}

/// Completes the receiver side for one PUBLISH (PUBACK, or PUBREC/PUBREL/PUBCOMP).
async fn acknowledge(c: &mut Client, p: &Publish) -> CaseResult {
    match (p.qos, p.packet_id) {
        (1, Some(id)) => c.send(&packets::ack(kind::PUBACK, id)).await?,
        (2, Some(id)) => {
            c.send(&packets::ack(kind::PUBREC, id)).await?;
            expect_ack(c, kind::PUBREL, id).await?;
            c.send(&packets::ack(kind::PUBCOMP, id)).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Sender side of several pipelined QoS 1/2 PUBLISH packets: answers PUBREC
/// with PUBREL until `outstanding` flows have completed.
async fn settle(c: &mut Client, mut outstanding: usize) -> CaseResult {
    let v = c.version;
    while outstanding > 0 {
        let frame = next(c, REPLY_WAIT, "PUBACK, PUBREC or PUBCOMP").await?;
        let ack = packets::parse_ack(&frame, v)?;
        ensure!(ack.reason < 0x80, "expected a success reason code, got {frame:?}");
        match frame.kind {
            kind::PUBACK | kind::PUBCOMP => outstanding -= 1,
            kind::PUBREC => c.send(&packets::ack(kind::PUBREL, ack.packet_id)).await?,
            _ => return Err(Failure::Fail(format!("expected PUBACK, PUBREC or PUBCOMP, got {frame:?}"))),
        }
    }
    Ok(())
}

/// Receiver side: takes PUBLISH packets, acknowledging each (PUBACK; PUBREC and
/// PUBCOMP on PUBREL), until at least `count` arrived and nothing more comes
/// within `SILENCE_WAIT`. Returns every PUBLISH seen.
async fn receive_quiet(c: &mut Client, count: usize) -> R<Vec<Publish>> {
    let v = c.version;
    let mut got: Vec<Publish> = Vec::new();
    let mut owed_pubrel = 0usize;
    loop {
        let wait = if got.len() < count || owed_pubrel > 0 { REPLY_WAIT } else { SILENCE_WAIT };
        match c.recv(wait).await? {
            Event::Frame(frame) if frame.kind == kind::PUBLISH => {
                let p = packets::parse_publish(&frame, v)?;
                match (p.qos, p.packet_id) {
                    (1, Some(id)) => c.send(&packets::ack(kind::PUBACK, id)).await?,
                    (2, Some(id)) => {
                        c.send(&packets::ack(kind::PUBREC, id)).await?;
                        owed_pubrel += 1;
                    }
                    _ => {}
                }
                got.push(p);
            }
            Event::Frame(frame) if frame.kind == kind::PUBREL => {
                let ack = packets::parse_ack(&frame, v)?;
                ensure!(frame.flags == 0x02, "expected PUBREL with fixed header flags 0x2, got {frame:?}");
                c.send(&packets::ack(kind::PUBCOMP, ack.packet_id)).await?;
                owed_pubrel = owed_pubrel.saturating_sub(1);
            }
            Event::Frame(frame) => {
                return Err(Failure::Fail(format!(
                    "expected PUBLISH or PUBREL, got {frame:?} (after {})",
                    show_all(&got)
                )));
            }
            Event::Closed => {
                return Err(Failure::Fail(format!(
                    "the server closed the connection after sending {}",
                    show_all(&got)
                )));
            }
            Event::Silent if got.len() >= count && owed_pubrel == 0 => return Ok(got),
            Event::Silent => {
                return Err(Failure::Fail(format!(
                    "expected {count} PUBLISH packets (and a PUBREL for each QoS 2 one), got [{}] and then nothing within {wait:?}",
                    show_all(&got)
                )));
            }
        }
    }
}

/// Expects the server to close the connection, after at most a DISCONNECT
/// (5.0) whose reason code is in `allowed`.
async fn expect_refused(c: &mut Client, allowed: &[u8]) -> CaseResult {
    if let Some(code) = c.expect_disconnected().await? {
        ensure!(
            allowed.contains(&code),
            "the server sent DISCONNECT with reason code 0x{code:02x}; allowed here: {}",
            allowed.iter().map(|c| format!("0x{c:02x}")).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

fn need_qos(ctx: &Ctx, qos: u8) -> CaseResult {
    ctx.require(ctx.caps.maximum_qos >= qos, &format!("QoS {qos}"))
}

/// Server-to-client topic alias bookkeeping for one network connection.
#[derive(Debug, Default)]
struct Aliases {
    max: u16,
    map: HashMap<u16, String>,
}

impl Aliases {
    fn new(max: u16) -> Self {
        Self { max, map: HashMap::new() }
    }

    /// The topic a received PUBLISH is for, checking its Topic Alias.
    fn resolve(&mut self, p: &Publish) -> R<String> {
        match p.props.u16(prop::TOPIC_ALIAS) {
            None => {
                ensure!(!p.topic.is_empty(), "PUBLISH with an empty topic name and no Topic Alias: {}", show(p));
                Ok(p.topic.clone())
            }
            Some(alias) => {
                ensure!(alias != 0, "the server sent Topic Alias 0: {}", show(p));
                ensure!(
                    alias <= self.max,
                    "the server sent Topic Alias {alias}, above the client's Topic Alias Maximum {}: {}",
                    self.max,
                    show(p)
                );
                if p.topic.is_empty() {
                    match self.map.get(&alias) {
                        Some(topic) => Ok(topic.clone()),
                        None => Err(Failure::Fail(format!(
                            "the server used Topic Alias {alias} with an empty topic name before mapping it on this connection: {}",
                            show(p)
                        ))),
                    }
                } else {
                    self.map.insert(alias, p.topic.clone());
                    Ok(p.topic.clone())
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The server as receiver of PUBLISH
// ---------------------------------------------------------------------------

async fn acknowledgement_per_qos(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("ack");
    let (mut c, _) = ctx.connect("pub").await?;
    c.send(&packets::publish(ctx.version, &topic, b"q0", 0, false, 0, Props::new())).await?;
    quiet(&mut c, SILENCE_WAIT, "a QoS 0 PUBLISH is not acknowledged").await?;
    c.send(&packets::publish(ctx.version, &topic, b"q1", 1, false, 0x1234, Props::new())).await?;
    expect_ack(&mut c, kind::PUBACK, 0x1234).await?;
    c.send(&packets::publish(ctx.version, &topic, b"q2", 2, false, 0x4321, Props::new())).await?;
    expect_ack(&mut c, kind::PUBREC, 0x4321).await?;
    c.send(&packets::ack(kind::PUBREL, 0x4321)).await?;
    expect_ack(&mut c, kind::PUBCOMP, 0x4321).await?;
    quiet(&mut c, SILENCE_WAIT, "every flow is complete").await?;
    leave(c).await;
    Ok(())
}

async fn no_subscriber_reason_codes(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("nobody");
    let (mut c, _) = ctx.connect("pub").await?;
    c.send(&packets::publish(ctx.version, &topic, b"q1", 1, false, 7, Props::new())).await?;
    let ack = expect_ack(&mut c, kind::PUBACK, 7).await?;
    ensure!(ack.reason == 0x00 || ack.reason == 0x10, "expected PUBACK 0x00 or 0x10, got 0x{:02x}", ack.reason);
    c.send(&packets::publish(ctx.version, &topic, b"q2", 2, false, 8, Props::new())).await?;
    let rec = expect_ack(&mut c, kind::PUBREC, 8).await?;
    ensure!(rec.reason == 0x00 || rec.reason == 0x10, "expected PUBREC 0x00 or 0x10, got 0x{:02x}", rec.reason);
    c.send(&packets::ack(kind::PUBREL, 8)).await?;
    let comp = expect_ack(&mut c, kind::PUBCOMP, 8).await?;
    ensure!(comp.reason == 0x00, "expected PUBCOMP 0x00 for a known packet identifier, got 0x{:02x}", comp.reason);
    leave(c).await;
    Ok(())
}

async fn qos1_reused_id_is_new_message(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("q1reuse");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 1).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"first", 1, false, 7, Props::new()).await?;
    p.send(&packets::publish_flags(ctx.version, &topic, b"second", 1, false, true, 7, Props::new())).await?;
    finish_publish(&mut p, 1, 7).await?;
    let got = receive_quiet(&mut s, 2).await?;
    let payloads: Vec<String> = got.iter().map(text).collect();
    ensure!(
        payloads == ["first", "second"],
        "expected both messages (the second reused packet identifier 7 after PUBACK, with DUP 1) delivered, got [{}]",
        show_all(&got)
    );
    leave(s).await;
    leave(p).await;
    Ok(())
}

/// A QoS 2 PUBLISH sent again (DUP 1) before its PUBREL is answered with
/// PUBREC and not delivered twice. In 5.0 a client may resend only on
/// reconnection (MQTT-4.4.0-1), so on the same connection the second PUBLISH
/// is the client's mistake: PUBREC 0x91 (Packet Identifier in use) describes it
/// and is still a PUBREC, so a 5.0 server may answer with it; the first flow
/// goes on either way.
async fn qos2_duplicate_delivered_once(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("q2dup");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 2).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    p.send(&packets::publish(ctx.version, &topic, b"once", 2, false, 9, Props::new())).await?;
    expect_ack(&mut p, kind::PUBREC, 9).await?;
    p.send(&packets::publish_flags(ctx.version, &topic, b"once", 2, false, true, 9, Props::new())).await?;
    if ctx.version.is_v5() {
        let frame = p.expect(kind::PUBREC).await?;
        let rec = packets::parse_ack(&frame, ctx.version)?;
        ensure!(
            rec.packet_id == 9 && frame.flags == 0 && (rec.reason < 0x80 || rec.reason == 0x91),
            "expected PUBREC for packet identifier 9 with a success reason code or 0x91 (Packet Identifier in \
             use), got {frame:?}"
        );
        ensure!(PUBACK_CODES.contains(&rec.reason), "PUBREC carries a reason code not allowed for it: {frame:?}");
    } else {
        expect_ack(&mut p, kind::PUBREC, 9).await?;
    }
    p.send(&packets::ack(kind::PUBREL, 9)).await?;
    expect_ack(&mut p, kind::PUBCOMP, 9).await?;
    let got = receive_quiet(&mut s, 1).await?;
    ensure!(
        got.len() == 1 && got[0].payload.as_ref() == b"once",
        "expected exactly one delivery of the QoS 2 message sent twice before PUBREL, got [{}]",
        show_all(&got)
    );
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn qos2_id_reusable_after_pubcomp(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("q2reuse");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 2).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"one", 2, false, 11, Props::new()).await?;
    publish(&mut p, &topic, b"two", 2, false, 11, Props::new()).await?;
    let got = receive_quiet(&mut s, 2).await?;
    let payloads: Vec<String> = got.iter().map(text).collect();
    ensure!(
        payloads == ["one", "two"],
        "expected both QoS 2 messages (same packet identifier, the second after PUBCOMP) delivered once each, got [{}]",
        show_all(&got)
    );
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn pubrel_unknown_id(ctx: Ctx) -> CaseResult {
    let (mut c, _) = ctx.connect("rel").await?;
    c.send(&packets::ack(kind::PUBREL, 0x7777)).await?;
    let frame = c.expect(kind::PUBCOMP).await?;
    let ack = packets::parse_ack(&frame, ctx.version)?;
    ensure!(ack.packet_id == 0x7777, "expected PUBCOMP for packet identifier 0x7777, got {frame:?}");
    ensure!(frame.flags == 0, "expected PUBCOMP with fixed header flags 0, got {frame:?}");
    ensure!(PUBREL_CODES.contains(&ack.reason), "PUBCOMP carries a reason code not allowed for it: {frame:?}");
    leave(c).await;
    Ok(())
}

async fn pubrel_bad_flags(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let (mut c, _) = ctx.connect("rel").await?;
    c.send(&packets::publish(ctx.version, &ctx.topic("relflags"), b"x", 2, false, 5, Props::new())).await?;
    expect_ack(&mut c, kind::PUBREC, 5).await?;
    // PUBREL with fixed header flags 0000 instead of 0010.
    c.send(&Writer::new().u16(5).frame(0x60)).await?;
    expect_refused(&mut c, &[0x81]).await
}

async fn publish_qos3(ctx: Ctx) -> CaseResult {
    let (mut c, _) = ctx.connect("q3").await?;
    let mut w = Writer::new().str(&ctx.topic("q3")).u16(3);
    if ctx.version.is_v5() {
        w = w.no_props();
    }
    c.send(&w.raw(b"x").frame(0x36)).await?;
    expect_refused(&mut c, &[0x81]).await
}

async fn publish_wildcard_topic(ctx: Ctx) -> CaseResult {
    for suffix in ["w/+", "w/#", "+"] {
        let topic = ctx.topic(suffix);
        let (mut c, _) = ctx.connect("wild").await?;
        c.send(&packets::publish(ctx.version, &topic, b"x", 0, false, 0, Props::new())).await?;
        expect_refused(&mut c, &[0x81, 0x82, 0x90])
            .await
            .map_err(|e| Failure::Fail(format!("PUBLISH to {topic:?}: {}", describe(e))))?;
    }
    Ok(())
}

fn describe(f: Failure) -> String {
    match f {
        Failure::Fail(s) | Failure::Skip(s) => s,
    }
}

async fn qos2_incoming_across_reconnect(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("q2recon");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 2).await?;
    let b = session(&ctx, "pub", Props::new());
    let mut p = open(&ctx, &b).await?;
    p.send(&packets::publish(ctx.version, &topic, b"across", 2, false, 21, Props::new())).await?;
    expect_ack(&mut p, kind::PUBREC, 21).await?;
    p.drop_connection();
    let mut p = resume(&ctx, &b).await?;
    p.send(&packets::publish_flags(ctx.version, &topic, b"across", 2, false, true, 21, Props::new())).await?;
    expect_ack(&mut p, kind::PUBREC, 21).await?;
    p.send(&packets::ack(kind::PUBREL, 21)).await?;
    expect_ack(&mut p, kind::PUBCOMP, 21).await?;
    let got = receive_quiet(&mut s, 1).await?;
    ensure!(
        got.len() == 1 && got[0].payload.as_ref() == b"across",
        "expected exactly one delivery of the QoS 2 message resent after reconnecting, got [{}]",
        show_all(&got)
    );
    leave(p).await;
    leave(s).await;
    forget(&ctx, "pub").await;
    Ok(())
}

async fn qos2_receiver_after_expiry(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let (mut c, _) = ctx.connect("pub").await?;
    let props = Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 1);
    c.send(&packets::publish(ctx.version, &ctx.topic("q2exp"), b"brief", 2, false, 3, props)).await?;
    expect_ack(&mut c, kind::PUBREC, 3).await?;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    c.send(&packets::ack(kind::PUBREL, 3)).await?;
    let comp = expect_ack(&mut c, kind::PUBCOMP, 3).await?;
    ensure!(
        comp.reason == 0x00,
        "expected PUBCOMP 0x00 (the flow continues although the message expired), got 0x{:02x}",
        comp.reason
    );
    leave(c).await;
    Ok(())
}

/// A client MUST NOT send a Subscription Identifier in a PUBLISH
/// (MQTT-3.3.4-6), but the property is valid in a PUBLISH packet, so the packet
/// is not malformed, and the standard does not name this a Protocol Error. The
/// server may close the connection (at most after DISCONNECT 0x81 or 0x82), or
/// handle the PUBLISH and answer it with a PUBACK that is valid for it.
async fn subscription_identifier_in_publish(ctx: Ctx) -> CaseResult {
    let (mut c, _) = ctx.connect("pub").await?;
    let props = Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 5);
    c.send(&packets::publish(ctx.version, &ctx.topic("subid"), b"x", 1, false, 1, props)).await?;
    match c.recv(REPLY_WAIT).await? {
        Event::Frame(frame) if frame.kind == kind::PUBACK => {
            let ack = packets::parse_ack(&frame, ctx.version)?;
            ensure!(
                ack.packet_id == 1 && frame.flags == 0 && PUBACK_CODES.contains(&ack.reason),
                "expected a close, or a valid PUBACK for packet identifier 1, got {frame:?}"
            );
            leave(c).await;
            Ok(())
        }
        Event::Frame(frame) if frame.kind == kind::DISCONNECT => {
            let reason = packets::parse_disconnect(&frame)?.reason;
            ensure!(
                reason == 0x81 || reason == 0x82,
                "the server sent DISCONNECT with reason code 0x{reason:02x}; allowed here: 0x81, 0x82"
            );
            let after = c.expect_closed(REPLY_WAIT).await?;
            ensure!(after.is_empty(), "expected the close right after the DISCONNECT, got {after:?} first");
            Ok(())
        }
        Event::Closed => Ok(()),
        Event::Frame(frame) => Err(Failure::Fail(format!("expected PUBACK, DISCONNECT or a close, got {frame:?}"))),
        Event::Silent => {
            Err(Failure::Fail(format!("expected PUBACK, DISCONNECT or a close; nothing arrived within {REPLY_WAIT:?}")))
        }
    }
}

async fn content_type_not_utf8(ctx: Ctx) -> CaseResult {
    let (mut c, _) = ctx.connect("pub").await?;
    let props = Props::new().bin(prop::CONTENT_TYPE, &[0x61, 0xFF, 0x62]);
    c.send(&packets::publish(ctx.version, &ctx.topic("ct"), b"x", 1, false, 1, props)).await?;
    expect_refused(&mut c, &[0x81]).await
}

async fn response_topic_not_utf8(ctx: Ctx) -> CaseResult {
    let (mut c, _) = ctx.connect("pub").await?;
    let props = Props::new().bin(prop::RESPONSE_TOPIC, &[0x61, 0xC0, 0x80]);
    c.send(&packets::publish(ctx.version, &ctx.topic("rt"), b"x", 1, false, 1, props)).await?;
    expect_refused(&mut c, &[0x81]).await
}

async fn response_topic_wildcard(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("rtw");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 1).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    let props = Props::new().str(prop::RESPONSE_TOPIC, &ctx.topic("reply/+/#"));
    p.send(&packets::publish(ctx.version, &topic, b"x", 1, false, 1, props)).await?;
    // The server may close the connection or refuse the message; it must not
    // forward a Response Topic with wildcards.
    let _ = p.recv(REPLY_WAIT).await?;
    match s.recv(Duration::from_secs(1)).await? {
        Event::Frame(frame) if frame.kind == kind::PUBLISH => {
            let got = packets::parse_publish(&frame, ctx.version)?;
            let rt = got.props.str(prop::RESPONSE_TOPIC).unwrap_or("");
            ensure!(
                !rt.contains('+') && !rt.contains('#'),
                "the server forwarded a Response Topic with wildcard characters: {}",
                show(&got)
            );
        }
        Event::Frame(frame) => return Err(Failure::Fail(format!("expected PUBLISH or nothing, got {frame:?}"))),
        Event::Closed => return Err("the subscriber's connection was closed".into()),
        Event::Silent => {}
    }
    leave(s).await;
    Ok(())
}

async fn pubrec_error_releases_id(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("pfi");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 2).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    // Payload Format Indicator 1 with a payload that is not UTF-8: the
    // server MAY refuse it with 0x99 (Payload format invalid).
    let props = Props::new().u8(prop::PAYLOAD_FORMAT_INDICATOR, 1);
    p.send(&packets::publish(ctx.version, &topic, &[0xFF, 0xFE], 2, false, 13, props)).await?;
    let frame = p.expect(kind::PUBREC).await?;
    let rec = packets::parse_ack(&frame, ctx.version)?;
    ensure!(rec.packet_id == 13, "expected PUBREC for packet identifier 13, got {frame:?}");
    if rec.reason < 0x80 {
        p.send(&packets::ack(kind::PUBREL, 13)).await?;
        expect_ack(&mut p, kind::PUBCOMP, 13).await?;
        return Err(Failure::Skip("the server accepted the message, so it sent no PUBREC with an error code".into()));
    }
    ensure!(PUBACK_CODES.contains(&rec.reason), "PUBREC carries a reason code not allowed for it: {frame:?}");
    // The packet identifier is free again: the same identifier is a new message.
    p.send(&packets::publish(ctx.version, &topic, b"valid", 2, false, 13, Props::new())).await?;
    finish_publish(&mut p, 2, 13).await?;
    let got = receive_quiet(&mut s, 1).await?;
    ensure!(
        got.len() == 1 && got[0].payload.as_ref() == b"valid",
        "expected only the second message delivered, got [{}]",
        show_all(&got)
    );
    leave(s).await;
    leave(p).await;
    Ok(())
}

// ---------------------------------------------------------------------------
// The server as sender of PUBLISH
// ---------------------------------------------------------------------------

async fn qos0_delivery_flags(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("q0");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 0).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"zero", 0, false, 0, Props::new()).await?;
    p.send(&packets::publish_flags(ctx.version, &topic, b"one", 1, false, true, 2, Props::new())).await?;
    finish_publish(&mut p, 1, 2).await?;
    for expected in ["zero", "one"] {
        let got = s.expect_publish().await?;
        ensure!(
            got.qos == 0 && !got.dup && got.packet_id.is_none() && got.payload.as_ref() == expected.as_bytes(),
            "expected a QoS 0 PUBLISH with DUP 0, no packet identifier and payload {expected:?}, got {}",
            show(&got)
        );
    }
    quiet(&mut s, SILENCE_WAIT, "QoS 0 messages are never resent").await?;
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn qos1_delivery_ids(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("q1ids");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 1).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    for (i, payload) in ["m1", "m2", "m3"].iter().enumerate() {
        publish(&mut p, &topic, payload.as_bytes(), 1, false, 1 + i as u16, Props::new()).await?;
    }
    let mut ids = Vec::new();
    let mut got = Vec::new();
    for expected in ["m1", "m2", "m3"] {
        let m = s.expect_publish().await?;
        ensure!(
            m.qos == 1 && !m.dup && m.payload.as_ref() == expected.as_bytes(),
            "expected a QoS 1 PUBLISH with DUP 0 and payload {expected:?}, got {}",
            show(&m)
        );
        let id = m.packet_id.unwrap_or(0);
        ensure!(id != 0, "a QoS 1 PUBLISH from the server has packet identifier 0: {}", show(&m));
        ensure!(
            !ids.contains(&id),
            "the server reused packet identifier {id} while it was unacknowledged: {}",
            show(&m)
        );
        ids.push(id);
        got.push(m);
    }
    for m in &got {
        acknowledge(&mut s, m).await?;
    }
    quiet(&mut s, SILENCE_WAIT, "every message was acknowledged").await?;
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn qos2_delivery_flow(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("q2flow");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 2).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"a", 2, false, 1, Props::new()).await?;
    publish(&mut p, &topic, b"b", 2, false, 2, Props::new()).await?;
    let first = s.expect_publish().await?;
    let second = s.expect_publish().await?;
    for (m, expected) in [(&first, "a"), (&second, "b")] {
        ensure!(
            m.qos == 2 && !m.dup && m.payload.as_ref() == expected.as_bytes() && m.packet_id.unwrap_or(0) != 0,
            "expected a QoS 2 PUBLISH with DUP 0, a non-zero packet identifier and payload {expected:?}, got {}",
            show(m)
        );
    }
    let (a, b) = (first.packet_id.unwrap_or(0), second.packet_id.unwrap_or(0));
    ensure!(a != b, "both unacknowledged QoS 2 messages use packet identifier {a}");
    for id in [a, b] {
        s.send(&packets::ack(kind::PUBREC, id)).await?;
        expect_ack(&mut s, kind::PUBREL, id).await?;
        s.send(&packets::ack(kind::PUBCOMP, id)).await?;
    }
    quiet(&mut s, SILENCE_WAIT, "both QoS 2 flows are complete").await?;
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn dup_not_propagated(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("dupin");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 2).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    p.send(&packets::publish_flags(ctx.version, &topic, b"d1", 1, false, true, 4, Props::new())).await?;
    finish_publish(&mut p, 1, 4).await?;
    p.send(&packets::publish_flags(ctx.version, &topic, b"d2", 2, false, true, 5, Props::new())).await?;
    finish_publish(&mut p, 2, 5).await?;
    let got = receive_quiet(&mut s, 2).await?;
    ensure!(got.len() == 2, "expected 2 messages, got [{}]", show_all(&got));
    for m in &got {
        ensure!(
            !m.dup,
            "the server forwarded a first transmission with DUP 1 (copied from the publisher): {}",
            show(m)
        );
    }
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn no_resend_while_connected(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("noresend");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 1).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"once", 1, false, 1, Props::new()).await?;
    let m = s.expect_publish().await?;
    ensure!(m.payload.as_ref() == b"once", "expected the message, got {}", show(&m));
    quiet(&mut s, Duration::from_millis(2500), "an unacknowledged PUBLISH is resent only on session resumption")
        .await?;
    acknowledge(&mut s, &m).await?;
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn resend_qos1_on_resumption(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("re1");
    let b = session(&ctx, "sub", Props::new());
    let mut s = open(&ctx, &b).await?;
    subscribe(&mut s, &topic, 1).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"r1", 1, false, 1, Props::new()).await?;
    publish(&mut p, &topic, b"r2", 1, false, 2, Props::new()).await?;
    let first = s.expect_publish().await?;
    let second = s.expect_publish().await?;
    ensure!(
        text(&first) == "r1" && text(&second) == "r2" && !first.dup && !second.dup,
        "expected r1 then r2 with DUP 0, got {} and {}",
        show(&first),
        show(&second)
    );
    leave(s).await;
    let mut s = resume(&ctx, &b).await?;
    for original in [&first, &second] {
        let again = s.expect_publish().await?;
        ensure!(
            again.dup
                && again.qos == 1
                && again.packet_id == original.packet_id
                && again.payload == original.payload
                && again.topic == original.topic,
            "expected {} resent with DUP 1 and the same packet identifier, in the original order, got {}",
            show(original),
            show(&again)
        );
        acknowledge(&mut s, &again).await?;
    }
    quiet(&mut s, SILENCE_WAIT, "both messages were acknowledged").await?;
    leave(s).await;
    leave(p).await;
    forget(&ctx, "sub").await;
    Ok(())
}

async fn resend_qos2_publish_on_resumption(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("re2");
    let b = session(&ctx, "sub", Props::new());
    let mut s = open(&ctx, &b).await?;
    subscribe(&mut s, &topic, 2).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"exactly", 2, false, 1, Props::new()).await?;
    let original = s.expect_publish().await?;
    ensure!(!original.dup && original.qos == 2, "expected a QoS 2 PUBLISH with DUP 0, got {}", show(&original));
    leave(s).await;
    let mut s = resume(&ctx, &b).await?;
    let again = s.expect_publish().await?;
    ensure!(
        again.dup && again.qos == 2 && again.packet_id == original.packet_id && again.payload == original.payload,
        "expected {} resent with DUP 1 and the same packet identifier, got {}",
        show(&original),
        show(&again)
    );
    acknowledge(&mut s, &again).await?;
    quiet(&mut s, SILENCE_WAIT, "the QoS 2 flow is complete").await?;
    leave(s).await;
    leave(p).await;
    forget(&ctx, "sub").await;
    Ok(())
}

async fn resend_pubrel_on_resumption(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("rerel");
    let b = session(&ctx, "sub", Props::new());
    let mut s = open(&ctx, &b).await?;
    subscribe(&mut s, &topic, 2).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"released", 2, false, 1, Props::new()).await?;
    let m = s.expect_publish().await?;
    let id = m.packet_id.unwrap_or(0);
    s.send(&packets::ack(kind::PUBREC, id)).await?;
    expect_ack(&mut s, kind::PUBREL, id).await?;
    leave(s).await;
    let mut s = resume(&ctx, &b).await?;
    let frame = next(&mut s, REPLY_WAIT, "the unacknowledged PUBREL resent").await?;
    ensure!(
        frame.kind == kind::PUBREL,
        "expected the unacknowledged PUBREL for packet identifier {id} (and not the PUBLISH again), got {frame:?}"
    );
    let rel = packets::parse_ack(&frame, ctx.version)?;
    ensure!(rel.packet_id == id && frame.flags == 0x02, "expected PUBREL for packet identifier {id}, got {frame:?}");
    s.send(&packets::ack(kind::PUBCOMP, id)).await?;
    quiet(&mut s, SILENCE_WAIT, "the QoS 2 flow is complete").await?;
    leave(s).await;
    leave(p).await;
    forget(&ctx, "sub").await;
    Ok(())
}

async fn error_ack_not_resent(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("errack");
    let b = session(&ctx, "sub", Props::new());
    let mut s = open(&ctx, &b).await?;
    subscribe(&mut s, &topic, 2).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"refused1", 1, false, 1, Props::new()).await?;
    let m1 = s.expect_publish().await?;
    ensure!(m1.qos == 1, "expected a QoS 1 PUBLISH, got {}", show(&m1));
    s.send(&packets::ack_with_reason(kind::PUBACK, m1.packet_id.unwrap_or(0), 0x80)).await?;
    publish(&mut p, &topic, b"refused2", 2, false, 2, Props::new()).await?;
    let m2 = s.expect_publish().await?;
    ensure!(m2.qos == 2, "expected a QoS 2 PUBLISH, got {}", show(&m2));
    let id2 = m2.packet_id.unwrap_or(0);
    s.send(&packets::ack_with_reason(kind::PUBREC, id2, 0x80)).await?;
    // The PUBREC with 0x80 ends that flow: no statement forbids a PUBREL for
    // it (MQTT-4.3.3-4 requires one only after a success code), so one is
    // answered as an unknown identifier; only a resent PUBLISH fails.
    match s.recv(SILENCE_WAIT).await? {
        Event::Silent => {}
        Event::Frame(frame) if frame.kind == kind::PUBREL => {
            let rel = packets::parse_ack(&frame, ctx.version)?;
            ensure!(rel.packet_id == id2, "expected nothing, or a PUBREL for packet identifier {id2}, got {frame:?}");
            s.send(&packets::ack_with_reason(kind::PUBCOMP, id2, 0x92)).await?;
            quiet(&mut s, SILENCE_WAIT, "both messages count as acknowledged").await?;
        }
        Event::Frame(frame) => {
            return Err(Failure::Fail(format!(
                "expected nothing after PUBACK and PUBREC with reason code 0x80 (the messages count as acknowledged), got {frame:?}"
            )));
        }
        Event::Closed => return Err("expected silence, but the server closed the connection".into()),
    }
    leave(s).await;
    let mut s = resume(&ctx, &b).await?;
    quiet(&mut s, Duration::from_secs(1), "messages refused with reason code 0x80 count as acknowledged").await?;
    leave(s).await;
    leave(p).await;
    forget(&ctx, "sub").await;
    Ok(())
}

async fn qos2_not_expired_after_send(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("q2keep");
    let b = session(&ctx, "sub", Props::new());
    let mut s = open(&ctx, &b).await?;
    subscribe(&mut s, &topic, 2).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    let props = Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 1);
    publish(&mut p, &topic, b"keep", 2, false, 1, props).await?;
    let original = s.expect_publish().await?;
    ensure!(original.qos == 2, "expected a QoS 2 PUBLISH, got {}", show(&original));
    leave(s).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut s = resume(&ctx, &b).await?;
    let again = s.expect_publish().await.map_err(|e| {
        format!("a QoS 2 PUBLISH already sent must be resent even after its Message Expiry Interval passed: {e}")
    })?;
    ensure!(
        again.dup && again.packet_id == original.packet_id && again.payload == original.payload,
        "expected {} resent with DUP 1, got {}",
        show(&original),
        show(&again)
    );
    acknowledge(&mut s, &again).await?;
    leave(s).await;
    leave(p).await;
    forget(&ctx, "sub").await;
    Ok(())
}

async fn offline_messages_delivered(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("offline");
    let b = session(&ctx, "sub", Props::new());
    let mut s = open(&ctx, &b).await?;
    subscribe(&mut s, &topic, 2).await?;
    leave(s).await;
    let (mut p, _) = ctx.connect("pub").await?;
    for (i, payload) in ["o1", "o2", "o3"].iter().enumerate() {
        publish(&mut p, &topic, payload.as_bytes(), 1, false, 1 + i as u16, Props::new()).await?;
    }
    publish(&mut p, &topic, b"o4", 2, false, 9, Props::new()).await?;
    let mut s = resume(&ctx, &b).await?;
    let got = receive_quiet(&mut s, 4).await?;
    let qos1: Vec<String> = got.iter().filter(|m| m.qos == 1).map(text).collect();
    let qos2: Vec<String> = got.iter().filter(|m| m.qos == 2).map(text).collect();
    ensure!(
        qos1 == ["o1", "o2", "o3"] && qos2 == ["o4"] && got.len() == 4,
        "expected o1, o2, o3 (QoS 1, in order) and o4 (QoS 2) delivered on resumption, got [{}]",
        show_all(&got)
    );
    for m in &got {
        ensure!(!m.dup, "a message sent for the first time has DUP 1: {}", show(m));
    }
    leave(s).await;
    leave(p).await;
    forget(&ctx, "sub").await;
    Ok(())
}

async fn qos_downgrade(ctx: Ctx) -> CaseResult {
    let top = ctx.caps.maximum_qos.min(2);
    let topic = ctx.topic("down");
    let mut subs = Vec::new();
    for requested in 0..=2u8 {
        let (mut c, _) = ctx.connect(&format!("s{requested}")).await?;
        let granted = subscribe(&mut c, &topic, requested).await?;
        subs.push((c, granted));
    }
    let (mut p, _) = ctx.connect("pub").await?;
    for qos in 0..=top {
        publish(&mut p, &topic, format!("q{qos}").as_bytes(), qos, false, 10 + u16::from(qos), Props::new()).await?;
    }
    for (c, granted) in &mut subs {
        let got = receive_quiet(c, usize::from(top) + 1).await?;
        ensure!(got.len() == usize::from(top) + 1, "expected {} messages, got [{}]", top + 1, show_all(&got));
        for m in &got {
            let published = text(m).trim_start_matches('q').parse::<u8>().unwrap_or(9);
            ensure!(
                m.qos == published.min(*granted),
                "published at QoS {published} to a subscription granted QoS {granted}: expected delivery at QoS {}, got {}",
                published.min(*granted),
                show(m)
            );
        }
    }
    for (c, _) in subs {
        leave(c).await;
    }
    leave(p).await;
    Ok(())
}

async fn overlapping_max_qos(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.wildcard_subscriptions, "wildcard subscriptions")?;
    let top = ctx.caps.maximum_qos.min(2);
    let (mut s, _) = ctx.connect("sub").await?;
    let (g1, _) = subscribe_opts(&mut s, 1, &ctx.topic("ov/#"), 0).await?;
    let (g2, _) = subscribe_opts(&mut s, 2, &ctx.topic("ov/a"), top).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &ctx.topic("ov/a"), b"both", top, false, 1, Props::new()).await?;
    let got = receive_quiet(&mut s, 1).await?;
    let expected = top.min(g1.max(g2));
    ensure!(
        got.iter().any(|m| m.qos == expected) && got.iter().all(|m| m.qos <= expected && text(m) == "both"),
        "subscriptions granted QoS {g1} and {g2} overlap; a QoS {top} message must be delivered at QoS {expected}, got [{}]",
        show_all(&got)
    );
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn delivered_topic_name(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.wildcard_subscriptions, "wildcard subscriptions")?;
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &ctx.topic("tn/+/c"), 0).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    let name = ctx.topic("tn/b/c");
    publish(&mut p, &ctx.topic("tn/b/c/d"), b"no", 0, false, 0, Props::new()).await?;
    publish(&mut p, &ctx.topic("tn/b"), b"no", 0, false, 0, Props::new()).await?;
    publish(&mut p, &name, b"yes", 0, false, 0, Props::new()).await?;
    let got = receive_quiet(&mut s, 1).await?;
    ensure!(
        got.len() == 1 && got[0].topic == name && text(&got[0]) == "yes",
        "expected only the message published to {name:?}, under that topic name, got [{}]",
        show_all(&got)
    );
    ensure!(!got[0].topic.contains(['+', '#']), "the delivered topic name has wildcards: {}", show(&got[0]));
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn ordering(ctx: Ctx) -> CaseResult {
    let top = ctx.caps.maximum_qos.min(2);
    let topic = ctx.topic("order");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, top).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    // Pipelined QoS 1/2 PUBLISH packets stay within the server's Receive Maximum.
    let per_qos = if top == 0 { 8 } else { 8u16.min(ctx.caps.receive_maximum / u16::from(top)).max(1) };
    let mut batch = Vec::new();
    let mut outstanding = 0;
    for n in 0..per_qos {
        for qos in 0..=top {
            let pid = 1 + u16::from(qos) * 100 + n;
            let payload = format!("{qos}:{n}");
            batch.extend_from_slice(&packets::publish(
                ctx.version,
                &topic,
                payload.as_bytes(),
                qos,
                false,
                pid,
                Props::new(),
            ));
            if qos > 0 {
                outstanding += 1;
            }
        }
    }
    p.send(&batch).await?;
    settle(&mut p, outstanding).await?;
    let total = usize::from(per_qos) * (usize::from(top) + 1);
    let got = receive_quiet(&mut s, total).await?;
    for qos in 0..=top {
        let seen: Vec<String> = got.iter().filter(|m| m.qos == qos).map(text).collect();
        let expected: Vec<String> = (0..per_qos).map(|n| format!("{qos}:{n}")).collect();
        ensure!(
            seen == expected,
            "QoS {qos} messages from one publisher on one topic: expected them in order {expected:?}, got {seen:?}"
        );
    }
    leave(s).await;
    leave(p).await;
    Ok(())
}

// ---------------------------------------------------------------------------
// Retained messages
// ---------------------------------------------------------------------------

async fn retained_to_new_subscriber(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("ret");
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"kept", 1, true, 1, Props::new()).await?;
    let (mut s, _) = ctx.connect("sub").await?;
    let (_, mut got) = subscribe_opts(&mut s, 1, &topic, 1).await?;
    got.extend(receive_quiet(&mut s, 1usize.saturating_sub(got.len())).await?);
    ensure!(
        got.len() == 1 && text(&got[0]) == "kept" && got[0].retain && got[0].topic == topic,
        "expected the retained message once with RETAIN 1 on a new subscription, got [{}]",
        show_all(&got)
    );
    leave(s).await;
    clear_retained(&ctx, &topic).await;
    leave(p).await;
    Ok(())
}

async fn retained_keeps_qos(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    need_qos(&ctx, 2)?;
    let (t1, t0) = (ctx.topic("rq1"), ctx.topic("rq0"));
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &t1, b"at1", 1, true, 1, Props::new()).await?;
    publish(&mut p, &t0, b"at0", 0, true, 0, Props::new()).await?;
    let (mut s, _) = ctx.connect("sub").await?;
    let (_, mut got) = subscribe_opts(&mut s, 1, &t1, 2).await?;
    got.extend(receive_quiet(&mut s, 1usize.saturating_sub(got.len())).await?);
    ensure!(
        got.len() == 1 && text(&got[0]) == "at1" && got[0].qos == 1,
        "a message retained at QoS 1, on a QoS 2 subscription: expected it once at QoS 1, got [{}]",
        show_all(&got)
    );
    let (_, mut got) = subscribe_opts(&mut s, 2, &t0, 2).await?;
    got.extend(receive_quiet(&mut s, 0).await?);
    // A QoS 0 retained message may have been discarded; if sent, it is QoS 0.
    ensure!(
        got.iter().all(|m| text(m) == "at0" && m.qos == 0) && got.len() <= 1,
        "a message retained at QoS 0, on a QoS 2 subscription: expected it at QoS 0 (or not at all), got [{}]",
        show_all(&got)
    );
    leave(s).await;
    clear_retained(&ctx, &t1).await;
    clear_retained(&ctx, &t0).await;
    leave(p).await;
    Ok(())
}

async fn retained_replaced(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("repl");
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"old", 1, true, 1, Props::new()).await?;
    publish(&mut p, &topic, b"new", 1, true, 2, Props::new()).await?;
    let (mut s, _) = ctx.connect("sub").await?;
    let (_, mut got) = subscribe_opts(&mut s, 1, &topic, 1).await?;
    got.extend(receive_quiet(&mut s, 1usize.saturating_sub(got.len())).await?);
    ensure!(
        got.len() == 1 && text(&got[0]) == "new" && got[0].retain,
        "expected only the newer retained message, got [{}]",
        show_all(&got)
    );
    leave(s).await;
    clear_retained(&ctx, &topic).await;
    leave(p).await;
    Ok(())
}

async fn retained_replaced_by_qos0(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("repl0");
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"old", 1, true, 1, Props::new()).await?;
    publish(&mut p, &topic, b"new", 0, true, 0, Props::new()).await?;
    // QoS 0 has no acknowledgement: a PINGRESP shows the server has read the
    // PUBLISH before the other client subscribes, but a server may route it
    // later and handle the SUBSCRIBE first. The subscriber then gets "old" as
    // the retained message and "new" as a live one (RETAIN 0): that shows only
    // the order, and a second subscriber, once "new" was routed, decides.
    p.send(&packets::pingreq()).await?;
    p.expect(kind::PINGRESP).await?;
    let mut subscribers = Vec::new();
    for name in ["sub", "sub2"] {
        let (mut s, _) = ctx.connect(name).await?;
        let (_, mut got) = subscribe_opts(&mut s, 1, &topic, 1).await?;
        got.extend(receive_quiet(&mut s, 0).await?);
        subscribers.push(s);
        let first_subscribed_first = name == "sub"
            && matches!(got.as_slice(), [old, live] if text(old) == "old" && old.retain
                && text(live) == "new" && !live.retain && live.qos == 0);
        if first_subscribed_first {
            continue;
        }
        ensure!(
            got.len() <= 1 && got.iter().all(|m| text(m) == "new" && m.qos == 0),
            "a QoS 0 retained message must replace the older one (it may itself be discarded): expected \"new\" at QoS 0 or nothing, got [{}]",
            show_all(&got)
        );
        break;
    }
    for s in subscribers {
        leave(s).await;
    }
    clear_retained(&ctx, &topic).await;
    leave(p).await;
    Ok(())
}

async fn live_delivery_clears_retain(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    let topic = ctx.topic("live");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 0).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"live", 0, true, 0, Props::new()).await?;
    let m = s.expect_publish().await?;
    ensure!(
        !m.retain && text(&m) == "live",
        "expected the message on the established subscription with RETAIN 0, got {}",
        show(&m)
    );
    leave(s).await;
    clear_retained(&ctx, &topic).await;
    leave(p).await;
    Ok(())
}

async fn empty_retained_clears(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("clear");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 1).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"x", 1, true, 1, Props::new()).await?;
    publish(&mut p, &topic, b"", 1, true, 2, Props::new()).await?;
    let got = receive_quiet(&mut s, 2).await?;
    ensure!(
        got.len() == 2 && text(&got[0]) == "x" && got[1].payload.is_empty(),
        "expected the retained message and then the zero-byte retained message delivered as normal, got [{}]",
        show_all(&got)
    );
    let (mut late, _) = ctx.connect("late").await?;
    let (_, mut early) = subscribe_opts(&mut late, 1, &topic, 1).await?;
    early.extend(receive_quiet(&mut late, 0).await?);
    ensure!(
        early.is_empty(),
        "a zero-byte retained message removes the retained message and is not stored itself; a new subscriber got [{}]",
        show_all(&early)
    );
    leave(late).await;
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn non_retained_keeps_retained(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    need_qos(&ctx, 1)?;
    let (topic, fresh) = (ctx.topic("keep"), ctx.topic("fresh"));
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"kept", 1, true, 1, Props::new()).await?;
    publish(&mut p, &topic, b"live", 1, false, 2, Props::new()).await?;
    publish(&mut p, &topic, b"", 1, false, 3, Props::new()).await?;
    publish(&mut p, &fresh, b"never", 1, false, 4, Props::new()).await?;
    let (mut s, _) = ctx.connect("sub").await?;
    let (_, mut got) = subscribe_opts(&mut s, 1, &topic, 1).await?;
    got.extend(receive_quiet(&mut s, 1usize.saturating_sub(got.len())).await?);
    ensure!(
        got.len() == 1 && text(&got[0]) == "kept",
        "PUBLISH with RETAIN 0 must neither replace nor remove the retained message: expected only \"kept\", got [{}]",
        show_all(&got)
    );
    let (_, mut got) = subscribe_opts(&mut s, 2, &fresh, 1).await?;
    got.extend(receive_quiet(&mut s, 0).await?);
    ensure!(got.is_empty(), "PUBLISH with RETAIN 0 must not be stored as retained, got [{}]", show_all(&got));
    leave(s).await;
    clear_retained(&ctx, &topic).await;
    leave(p).await;
    Ok(())
}

async fn retained_per_matching_topic(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    ctx.require(ctx.caps.wildcard_subscriptions, "wildcard subscriptions")?;
    let (ta, tb) = (ctx.topic("many/a"), ctx.topic("many/b"));
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &ta, b"a", 0, true, 0, Props::new()).await?;
    publish(&mut p, &tb, b"b", 0, true, 0, Props::new()).await?;
    // QoS 0 retained messages may be discarded; a QoS 1 PUBLISH afterwards
    // makes sure both were processed before subscribing.
    if ctx.caps.maximum_qos >= 1 {
        publish(&mut p, &ctx.topic("many/sync"), b"", 1, false, 1, Props::new()).await?;
    }
    let (mut s, _) = ctx.connect("sub").await?;
    let (_, mut got) = subscribe_opts(&mut s, 1, &ctx.topic("many/+"), 0).await?;
    got.extend(receive_quiet(&mut s, 2usize.saturating_sub(got.len())).await?);
    let mut seen: Vec<(String, String)> = got.iter().map(|m| (m.topic.clone(), text(m))).collect();
    seen.sort();
    ensure!(
        seen == [(ta.clone(), "a".to_string()), (tb.clone(), "b".to_string())] && got.iter().all(|m| m.retain),
        "expected the retained message of each matching topic once with RETAIN 1, got [{}]",
        show_all(&got)
    );
    leave(s).await;
    clear_retained(&ctx, &ta).await;
    clear_retained(&ctx, &tb).await;
    leave(p).await;
    Ok(())
}

// ---------------------------------------------------------------------------
// 5.0 PUBLISH properties and message expiry
// ---------------------------------------------------------------------------

fn rich_props(ctx: &Ctx) -> Props {
    Props::new()
        .u8(prop::PAYLOAD_FORMAT_INDICATOR, 1)
        .str(prop::CONTENT_TYPE, "text/plain; charset=utf-8")
        .user("k", "1")
        .str(prop::RESPONSE_TOPIC, &ctx.topic("reply"))
        .user("a", "2")
        .bin(prop::CORRELATION_DATA, &[0x00, 0x01, 0xFE, 0xFF])
        .user("k", "3")
        .user("empty", "")
}

fn check_rich(ctx: &Ctx, m: &Publish) -> CaseResult {
    let p = &m.props;
    ensure!(p.u8(prop::PAYLOAD_FORMAT_INDICATOR) == Some(1), "Payload Format Indicator 1 not forwarded: {}", show(m));
    ensure!(
        p.str(prop::CONTENT_TYPE) == Some("text/plain; charset=utf-8"),
        "Content Type not forwarded unaltered: {}",
        show(m)
    );
    ensure!(
        p.str(prop::RESPONSE_TOPIC) == Some(ctx.topic("reply").as_str()),
        "Response Topic not forwarded unaltered: {}",
        show(m)
    );
    ensure!(
        p.bin(prop::CORRELATION_DATA).map(|b| b.as_ref()) == Some(&[0x00, 0x01, 0xFE, 0xFF][..]),
        "Correlation Data not forwarded unaltered: {}",
        show(m)
    );
    let expected = [("k", "1"), ("a", "2"), ("k", "3"), ("empty", "")];
    ensure!(
        p.keeps_user_properties(&expected),
        "User Properties not forwarded unaltered and in order: expected {expected:?} (in this order, among any the \
         server adds), got {:?}",
        p.user_properties()
    );
    Ok(())
}

async fn properties_forwarded(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("props");
    let (mut s0, _) = ctx.connect("sub0").await?;
    subscribe(&mut s0, &topic, 0).await?;
    let (mut s1, _) = ctx.connect("sub1").await?;
    subscribe(&mut s1, &topic, 1).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, "héllo".as_bytes(), 1, false, 1, rich_props(&ctx)).await?;
    for s in [&mut s0, &mut s1] {
        let m = s.expect_publish().await?;
        check_rich(&ctx, &m)?;
        ensure!(m.payload.as_ref() == "héllo".as_bytes(), "payload altered: {}", show(&m));
        acknowledge(s, &m).await?;
    }
    leave(s0).await;
    leave(s1).await;
    leave(p).await;
    Ok(())
}

async fn retained_properties_kept(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("rprops");
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"stored", 1, true, 1, rich_props(&ctx)).await?;
    let (mut s, _) = ctx.connect("sub").await?;
    let (_, mut got) = subscribe_opts(&mut s, 1, &topic, 1).await?;
    got.extend(receive_quiet(&mut s, 1usize.saturating_sub(got.len())).await?);
    ensure!(got.len() == 1 && text(&got[0]) == "stored", "expected the retained message, got [{}]", show_all(&got));
    check_rich(&ctx, &got[0])?;
    leave(s).await;
    clear_retained(&ctx, &topic).await;
    leave(p).await;
    Ok(())
}

async fn expiry_forwarded(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("mei");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 0).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"e", 0, false, 0, Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 60)).await?;
    publish(&mut p, &topic, b"n", 0, false, 0, Props::new()).await?;
    let m = s.expect_publish().await?;
    let left = m.props.u32(prop::MESSAGE_EXPIRY_INTERVAL);
    ensure!(
        matches!(left, Some(50..=60)),
        "a message published with Message Expiry Interval 60 and forwarded at once must carry 60 (or a little less), got {}",
        show(&m)
    );
    let m = s.expect_publish().await?;
    ensure!(
        text(&m) == "n" && m.props.u32(prop::MESSAGE_EXPIRY_INTERVAL).is_none(),
        "a message published without Message Expiry Interval must be forwarded without one, got {}",
        show(&m)
    );
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn expiry_decremented_offline(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("meiq");
    let b = session(&ctx, "sub", Props::new());
    let mut s = open(&ctx, &b).await?;
    subscribe(&mut s, &topic, 1).await?;
    leave(s).await;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"waits", 1, false, 1, Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 30)).await?;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let mut s = resume(&ctx, &b).await?;
    let m = s.expect_publish().await?;
    let left = m.props.u32(prop::MESSAGE_EXPIRY_INTERVAL);
    ensure!(
        matches!(left, Some(15..=29)),
        "a message published with Message Expiry Interval 30 that waited over 2 s must carry at most 29, got {}",
        show(&m)
    );
    acknowledge(&mut s, &m).await?;
    leave(s).await;
    leave(p).await;
    forget(&ctx, "sub").await;
    Ok(())
}

async fn expired_not_delivered(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("meix");
    let b = session(&ctx, "sub", Props::new());
    let mut s = open(&ctx, &b).await?;
    subscribe(&mut s, &topic, 1).await?;
    leave(s).await;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"expires", 1, false, 1, Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 1)).await?;
    publish(&mut p, &topic, b"stays", 1, false, 2, Props::new()).await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut s = resume(&ctx, &b).await?;
    let got = receive_quiet(&mut s, 1).await?;
    let payloads: Vec<String> = got.iter().map(text).collect();
    ensure!(
        payloads == ["stays"],
        "a message whose Message Expiry Interval (1 s) passed before delivery must not be sent: expected only \"stays\", got [{}]",
        show_all(&got)
    );
    leave(s).await;
    leave(p).await;
    forget(&ctx, "sub").await;
    Ok(())
}

async fn retained_expiry(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.retain, "retained messages")?;
    need_qos(&ctx, 1)?;
    let (short, long) = (ctx.topic("rexp/1"), ctx.topic("rexp/30"));
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &short, b"gone", 1, true, 1, Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 1)).await?;
    publish(&mut p, &long, b"aged", 1, true, 2, Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 30)).await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (mut s, _) = ctx.connect("sub").await?;
    let (_, mut got) = subscribe_opts(&mut s, 1, &short, 1).await?;
    got.extend(receive_quiet(&mut s, 0).await?);
    ensure!(got.is_empty(), "a retained message whose Message Expiry Interval passed was sent: [{}]", show_all(&got));
    let (_, mut got) = subscribe_opts(&mut s, 2, &long, 1).await?;
    got.extend(receive_quiet(&mut s, 1usize.saturating_sub(got.len())).await?);
    ensure!(got.len() == 1 && text(&got[0]) == "aged", "expected the retained message, got [{}]", show_all(&got));
    ensure!(
        matches!(got[0].props.u32(prop::MESSAGE_EXPIRY_INTERVAL), Some(15..=29)),
        "a retained message stored with Message Expiry Interval 30 over 2 s ago must carry at most 29, got {}",
        show(&got[0])
    );
    leave(s).await;
    clear_retained(&ctx, &long).await;
    leave(p).await;
    Ok(())
}

// ---------------------------------------------------------------------------
// 5.0 topic aliases
// ---------------------------------------------------------------------------

fn alias(a: u16) -> Props {
    Props::new().u16(prop::TOPIC_ALIAS, a)
}

async fn alias_accepted(ctx: Ctx) -> CaseResult {
    let max = ctx.caps.topic_alias_maximum;
    ctx.require(max > 0, "topic aliases (Topic Alias Maximum 0)")?;
    need_qos(&ctx, 1)?;
    let (t1, t2, t3) = (ctx.topic("al/1"), ctx.topic("al/2"), ctx.topic("al/3"));
    let (mut s, _) = ctx.connect("sub").await?;
    for t in [&t1, &t2, &t3] {
        subscribe(&mut s, t, 1).await?;
    }
    let (mut p, connack) = ctx.connect("pub").await?;
    let max = connack.props.u16(prop::TOPIC_ALIAS_MAXIMUM).unwrap_or(0);
    ctx.require(max > 0, "topic aliases (Topic Alias Maximum 0)")?;
    let steps: Vec<(&str, &str, u16)> =
        vec![(&t1, "a", 1), ("", "b", 1), (&t2, "c", 1), ("", "d", 1), (&t3, "e", max), ("", "f", max), ("", "g", 1)];
    for (i, (topic, payload, a)) in steps.iter().enumerate() {
        publish(&mut p, topic, payload.as_bytes(), 1, false, 1 + i as u16, alias(*a))
            .await
            .map_err(|e| Failure::Fail(format!("PUBLISH {payload:?} (topic {topic:?}, alias {a}): {}", describe(e))))?;
    }
    let got = receive_quiet(&mut s, steps.len()).await?;
    let mut seen: Vec<(String, String)> = got.iter().map(|m| (text(m), m.topic.clone())).collect();
    seen.sort();
    // With a maximum of 1, alias 1 was remapped to t3 by "e".
    let g = if max == 1 { &t3 } else { &t2 };
    let mut expected: Vec<(String, String)> =
        [("a", &t1), ("b", &t1), ("c", &t2), ("d", &t2), ("e", &t3), ("f", &t3), ("g", g)]
            .iter()
            .map(|(m, t)| (m.to_string(), t.to_string()))
            .collect();
    expected.sort();
    ensure!(
        seen == expected,
        "messages published with Topic Aliases 1..={max}: expected (payload, topic) {expected:?}, got {seen:?}"
    );
    ensure!(
        got.iter().all(|m| m.props.u16(prop::TOPIC_ALIAS).is_none()),
        "the server sent a Topic Alias to a client that allows none: [{}]",
        show_all(&got)
    );
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn alias_zero(ctx: Ctx) -> CaseResult {
    let (mut c, _) = ctx.connect("pub").await?;
    c.send(&packets::publish(ctx.version, &ctx.topic("al0"), b"x", 0, false, 0, alias(0))).await?;
    expect_refused(&mut c, &[0x94, 0x82, 0x81]).await
}

async fn alias_above_maximum(ctx: Ctx) -> CaseResult {
    let (mut c, connack) = ctx.connect("pub").await?;
    let max = connack.props.u16(prop::TOPIC_ALIAS_MAXIMUM).unwrap_or(0);
    ctx.require(max < u16::MAX, "a Topic Alias Maximum below 65535")?;
    c.send(&packets::publish(ctx.version, &ctx.topic("albig"), b"x", 0, false, 0, alias(max + 1))).await?;
    expect_refused(&mut c, &[0x94, 0x82, 0x81])
        .await
        .map_err(|e| Failure::Fail(format!("Topic Alias {} above the maximum {max}: {}", max + 1, describe(e))))
}

async fn alias_not_carried_over(ctx: Ctx) -> CaseResult {
    ctx.require(ctx.caps.topic_alias_maximum > 0, "topic aliases (Topic Alias Maximum 0)")?;
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("alrc");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 0).await?;
    let b = session(&ctx, "pub", Props::new());
    let mut p = open(&ctx, &b).await?;
    publish(&mut p, &topic, b"mapped", 1, false, 1, alias(1)).await?;
    leave(p).await;
    let mut p = resume(&ctx, &b).await?;
    p.send(&packets::publish(ctx.version, "", b"stale", 1, false, 2, alias(1))).await?;
    expect_refused(&mut p, &[0x82, 0x94, 0x81]).await.map_err(|e| {
        Failure::Fail(format!(
            "Topic Alias 1 was mapped on an earlier connection only; using it with an empty topic name: {}",
            describe(e)
        ))
    })?;
    let got = receive_quiet(&mut s, 1).await?;
    let payloads: Vec<String> = got.iter().map(text).collect();
    ensure!(payloads == ["mapped"], "expected only \"mapped\" delivered, got [{}]", show_all(&got));
    leave(s).await;
    forget(&ctx, "pub").await;
    Ok(())
}

async fn server_alias_within_client_maximum(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 1)?;
    let topics = [ctx.topic("sa/1"), ctx.topic("sa/2"), ctx.topic("sa/3")];
    let b = session(&ctx, "sub", Props::new().u16(prop::TOPIC_ALIAS_MAXIMUM, 2));
    let mut s = open(&ctx, &b).await?;
    for t in &topics {
        subscribe(&mut s, t, 1).await?;
    }
    let (mut p, _) = ctx.connect("pub").await?;
    let mut pid = 0u16;
    for round in 0..2 {
        let mut aliases = Aliases::new(2);
        for (i, t) in topics.iter().cycle().take(9).enumerate() {
            pid += 1;
            publish(&mut p, t, format!("{round}:{i}").as_bytes(), 1, false, pid, Props::new()).await?;
        }
        let got = receive_quiet(&mut s, 9).await?;
        ensure!(got.len() == 9, "expected 9 messages, got [{}]", show_all(&got));
        for m in &got {
            let resolved = aliases.resolve(m)?;
            let i: usize = text(m).split(':').nth(1).and_then(|n| n.parse().ok()).unwrap_or(99);
            let expected = topics.get(i % 3).cloned().unwrap_or_default();
            ensure!(
                resolved == expected,
                "message {:?} was published to {expected:?} but resolves to {resolved:?}: {}",
                text(m),
                show(m)
            );
        }
        leave(s).await;
        s = resume(&ctx, &b).await?;
    }
    leave(s).await;
    leave(p).await;
    forget(&ctx, "sub").await;
    Ok(())
}

async fn server_alias_none_without_maximum(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("noal");
    let (mut s, _) = ctx.connect("sub").await?;
    subscribe(&mut s, &topic, 0).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    for i in 0..6 {
        publish(&mut p, &topic, format!("m{i}").as_bytes(), 0, false, 0, Props::new()).await?;
    }
    let got = receive_quiet(&mut s, 6).await?;
    for m in &got {
        ensure!(
            m.props.u16(prop::TOPIC_ALIAS).is_none() && m.topic == topic,
            "the client sent no Topic Alias Maximum, so the server may not use Topic Aliases: {}",
            show(m)
        );
    }
    leave(s).await;
    leave(p).await;
    Ok(())
}

// ---------------------------------------------------------------------------
// 5.0 flow control and sizes
// ---------------------------------------------------------------------------

async fn receive_maximum_qos1(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("rm1");
    let b = ctx.connect_builder("sub").props(Props::new().u16(prop::RECEIVE_MAXIMUM, 2));
    let mut s = open(&ctx, &b).await?;
    subscribe(&mut s, &topic, 1).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    for i in 1..=5u16 {
        publish(&mut p, &topic, format!("m{i}").as_bytes(), 1, false, i, Props::new()).await?;
    }
    let mut inflight = vec![s.expect_publish().await?, s.expect_publish().await?];
    let mut delivered: Vec<String> = inflight.iter().map(text).collect();
    quiet(&mut s, SILENCE_WAIT, "Receive Maximum 2 with two unacknowledged QoS 1 messages").await?;
    // Other packets are not held back while the quota is used up.
    s.send(&packets::pingreq()).await?;
    s.expect(kind::PINGRESP).await.map_err(|e| format!("PINGREQ while the send quota is zero: {e}"))?;
    let (_, early) = subscribe_opts(&mut s, 2, &ctx.topic("rm1/other"), 1).await?;
    ensure!(early.is_empty(), "expected only a SUBACK, got [{}]", show_all(&early));
    while !inflight.is_empty() {
        let done = inflight.remove(0);
        acknowledge(&mut s, &done).await?;
        if delivered.len() < 5 {
            let m = s.expect_publish().await?;
            delivered.push(text(&m));
            inflight.push(m);
            let unacked: Vec<String> = inflight.iter().map(text).collect();
            let why = format!("Receive Maximum 2, unacknowledged {unacked:?}, delivered so far {delivered:?}");
            quiet(&mut s, SILENCE_WAIT, &why).await?;
        }
    }
    ensure!(delivered == ["m1", "m2", "m3", "m4", "m5"], "expected m1..m5 in order, got {delivered:?}");
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn receive_maximum_qos2(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let topic = ctx.topic("rm2");
    let b = ctx.connect_builder("sub").props(Props::new().u16(prop::RECEIVE_MAXIMUM, 1));
    let mut s = open(&ctx, &b).await?;
    subscribe(&mut s, &topic, 2).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"first", 2, false, 1, Props::new()).await?;
    publish(&mut p, &topic, b"second", 2, false, 2, Props::new()).await?;
    let m = s.expect_publish().await?;
    ensure!(text(&m) == "first", "expected \"first\", got {}", show(&m));
    quiet(&mut s, SILENCE_WAIT, "Receive Maximum 1 with one unacknowledged QoS 2 message").await?;
    let id = m.packet_id.unwrap_or(0);
    s.send(&packets::ack(kind::PUBREC, id)).await?;
    let frame = next(&mut s, REPLY_WAIT, "PUBREL").await?;
    ensure!(
        frame.kind == kind::PUBREL,
        "after PUBREC the server must send PUBREL and must not send another QoS 2 PUBLISH before PUBCOMP (Receive Maximum 1), got {frame:?}"
    );
    quiet(&mut s, SILENCE_WAIT, "the QoS 2 flow is incomplete until PUBCOMP, so the quota is still zero").await?;
    s.send(&packets::ack(kind::PUBCOMP, id)).await?;
    let m = s.expect_publish().await?;
    ensure!(text(&m) == "second", "expected \"second\" after PUBCOMP, got {}", show(&m));
    acknowledge(&mut s, &m).await?;
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn client_exceeds_receive_maximum(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    let (mut c, connack) = ctx.connect("pub").await?;
    let max = connack.props.u16(prop::RECEIVE_MAXIMUM).unwrap_or(u16::MAX);
    ctx.require(max <= 1000, "a Receive Maximum of at most 1000 (to exceed it)")?;
    let topic = ctx.topic("rmx");
    let mut batch = Vec::new();
    for pid in 1..=max + 1 {
        batch.extend_from_slice(&packets::publish(ctx.version, &topic, b"x", 2, false, pid, Props::new()));
    }
    c.send(&batch).await?;
    let frames = c
        .expect_closed(REPLY_WAIT)
        .await
        .map_err(|e| format!("after {} QoS 2 PUBLISH packets without PUBREL (Receive Maximum {max}): {e}", max + 1))?;
    let recs = frames.iter().filter(|f| f.kind == kind::PUBREC).count();
    ensure!(
        recs <= usize::from(max),
        "the server acknowledged {recs} PUBLISH packets, more than its Receive Maximum {max}"
    );
    let others: Vec<&Frame> = frames.iter().filter(|f| f.kind != kind::PUBREC).collect();
    match others.as_slice() {
        [] => Ok(()),
        [frame] if frame.kind == kind::DISCONNECT => {
            let reason = packets::parse_disconnect(frame)?.reason;
            ensure!(
                reason == 0x93 || reason == 0x82,
                "expected DISCONNECT 0x93 (Receive Maximum exceeded), got {frame:?}"
            );
            Ok(())
        }
        more => Err(Failure::Fail(format!("expected PUBREC packets and at most a DISCONNECT, got {more:?}"))),
    }
}

async fn maximum_packet_size_towards_client(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 1)?;
    let topic = ctx.topic("mps");
    let b = ctx.connect_builder("sub").props(Props::new().u32(prop::MAXIMUM_PACKET_SIZE, 128));
    let mut s = open(&ctx, &b).await?;
    subscribe(&mut s, &topic, 1).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    let big = vec![b'x'; 300];
    publish(&mut p, &topic, &big, 1, false, 1, Props::new()).await?;
    publish(&mut p, &topic, b"small1", 1, false, 2, Props::new()).await?;
    publish(&mut p, &topic, &big, 0, false, 0, Props::new()).await?;
    publish(&mut p, &topic, b"small0", 0, false, 0, Props::new()).await?;
    let got = receive_quiet(&mut s, 2).await?;
    let mut payloads: Vec<String> = got.iter().map(text).collect();
    payloads.sort();
    ensure!(
        payloads == ["small0", "small1"],
        "with Maximum Packet Size 128 the client must receive only the small messages, got [{}]",
        show_all(&got)
    );
    leave(s).await;
    leave(p).await;
    Ok(())
}

async fn acks_within_maximum_packet_size(ctx: Ctx) -> CaseResult {
    need_qos(&ctx, 2)?;
    // The smallest limit the server can honour: the size of its CONNACK.
    let mut probe = Client::open(&ctx.target, ctx.version).await?;
    probe.send(&ctx.connect_builder("probe").bytes()).await?;
    let connack = probe.expect(kind::CONNACK).await?;
    leave(probe).await;
    let limit = u32::try_from(connack.bytes.len()).unwrap_or(u32::MAX).max(40);
    let topic = ctx.topic("mpsack");
    let b = ctx.connect_builder("c").props(Props::new().u32(prop::MAXIMUM_PACKET_SIZE, limit));
    let mut c = open(&ctx, &b).await?;
    let mut frames = Vec::new();
    // Acknowledgements of messages nobody receives, and of an unknown PUBREL.
    c.send(&packets::publish(ctx.version, &ctx.topic("mpsnone"), b"x", 1, false, 1, Props::new())).await?;
    frames.push(next(&mut c, REPLY_WAIT, "PUBACK").await?);
    c.send(&packets::publish(ctx.version, &ctx.topic("mpsnone"), b"x", 2, false, 2, Props::new())).await?;
    frames.push(next(&mut c, REPLY_WAIT, "PUBREC").await?);
    c.send(&packets::ack(kind::PUBREL, 2)).await?;
    frames.push(next(&mut c, REPLY_WAIT, "PUBCOMP").await?);
    c.send(&packets::ack(kind::PUBREL, 999)).await?;
    frames.push(next(&mut c, REPLY_WAIT, "PUBCOMP").await?);
    // A QoS 2 delivery to this client, for the server's PUBREL.
    subscribe(&mut c, &topic, 2).await?;
    let (mut p, _) = ctx.connect("pub").await?;
    publish(&mut p, &topic, b"x", 2, false, 1, Props::new()).await?;
    if let Event::Frame(frame) = c.recv(Duration::from_secs(1)).await? {
        if frame.kind == kind::PUBLISH {
            let m = packets::parse_publish(&frame, ctx.version)?;
            frames.push(frame);
            c.send(&packets::ack(kind::PUBREC, m.packet_id.unwrap_or(0))).await?;
            frames.push(next(&mut c, REPLY_WAIT, "PUBREL").await?);
            c.send(&packets::ack(kind::PUBCOMP, m.packet_id.unwrap_or(0))).await?;
        } else {
            frames.push(frame);
        }
    }
    for frame in &frames {
        ensure!(
            frame.bytes.len() <= limit as usize,
            "the client's Maximum Packet Size is {limit}, but the server sent {} bytes: {frame:?}",
            frame.bytes.len()
        );
    }
    leave(c).await;
    leave(p).await;
    Ok(())
}

// ---------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------

pub fn cases() -> Vec<Case> {
    [
        // The server as receiver.
        case!(
            server_acknowledges_each_qos_as_table_3_4_requires,
            [V311],
            ["MQTT-3.3.4-1", "MQTT-4.3.2-2", "MQTT-4.3.3-2", "MQTT-2.3.1-6"],
            |ctx| acknowledgement_per_qos(ctx)
        ),
        case!(
            server_acknowledges_each_qos_as_table_3_4_requires,
            [V5],
            [
                "MQTT-3.3.4-1",
                "MQTT-4.3.2-4",
                "MQTT-4.3.3-8",
                "MQTT-4.3.3-11",
                "MQTT-2.2.1-5",
                "MQTT-3.4.2-1",
                "MQTT-3.5.2-1",
                "MQTT-3.7.2-1"
            ],
            |ctx| acknowledgement_per_qos(ctx)
        ),
        case!(
            puback_and_pubrec_for_a_topic_without_subscribers_use_success_or_no_matching_subscribers,
            [V5],
            ["MQTT-3.4.2-1", "MQTT-3.5.2-1", "MQTT-3.7.2-1"],
            |ctx| no_subscriber_reason_codes(ctx)
        ),
        case!(qos1_packet_identifier_reused_after_puback_is_a_new_message, [V311], ["MQTT-4.3.2-2"], |ctx| {
            qos1_reused_id_is_new_message(ctx)
        }),
        case!(qos1_packet_identifier_reused_after_puback_is_a_new_message, [V5], ["MQTT-4.3.2-5"], |ctx| {
            qos1_reused_id_is_new_message(ctx)
        }),
        case!(
            qos2_publish_resent_before_pubrel_is_acknowledged_again_but_delivered_once,
            [V311],
            ["MQTT-4.3.3-2"],
            |ctx| qos2_duplicate_delivered_once(ctx)
        ),
        case!(
            qos2_publish_resent_before_pubrel_is_acknowledged_again_but_delivered_once,
            [V5],
            ["MQTT-4.3.3-8", "MQTT-4.3.3-10", "MQTT-4.3.3-11"],
            |ctx| qos2_duplicate_delivered_once(ctx)
        ),
        case!(qos2_packet_identifier_reused_after_pubcomp_is_a_new_message, [V311], ["MQTT-4.3.3-2"], |ctx| {
            qos2_id_reusable_after_pubcomp(ctx)
        }),
        case!(qos2_packet_identifier_reused_after_pubcomp_is_a_new_message, [V5], ["MQTT-4.3.3-12"], |ctx| {
            qos2_id_reusable_after_pubcomp(ctx)
        }),
        case!(pubrel_for_an_unknown_packet_identifier_is_answered_with_pubcomp, [V311], ["MQTT-4.3.3-2"], |ctx| {
            pubrel_unknown_id(ctx)
        }),
        case!(
            pubrel_for_an_unknown_packet_identifier_is_answered_with_pubcomp,
            [V5],
            ["MQTT-4.3.3-11", "MQTT-3.7.2-1"],
            |ctx| pubrel_unknown_id(ctx)
        ),
        case!(pubrel_with_fixed_header_flags_0000_closes_the_connection, [V311], ["MQTT-3.6.1-1"], |ctx| {
            pubrel_bad_flags(ctx)
        }),
        case!(
            pubrel_with_fixed_header_flags_0000_closes_the_connection,
            [V5],
            ["MQTT-3.6.1-1", "MQTT-4.13.1-1"],
            |ctx| pubrel_bad_flags(ctx)
        ),
        case!(publish_with_both_qos_bits_set_closes_the_connection, [V311], ["MQTT-3.3.1-4"], |ctx| {
            publish_qos3(ctx)
        }),
        case!(publish_with_both_qos_bits_set_closes_the_connection, [V5], ["MQTT-3.3.1-4", "MQTT-4.13.1-1"], |ctx| {
            publish_qos3(ctx)
        }),
        case!(
            publish_to_a_topic_name_containing_wildcards_closes_the_connection,
            [V311],
            ["MQTT-3.3.2-2", "MQTT-4.8.0-1"],
            |ctx| publish_wildcard_topic(ctx)
        ),
        case!(
            publish_to_a_topic_name_containing_wildcards_closes_the_connection,
            [V5],
            ["MQTT-3.3.2-2", "MQTT-4.7.0-1", "MQTT-4.13.1-1"],
            |ctx| publish_wildcard_topic(ctx)
        ),
        case!(
            incoming_qos2_flow_is_completed_exactly_once_across_a_reconnection,
            [V311],
            ["MQTT-4.3.3-2", "MQTT-4.4.0-1"],
            |ctx| qos2_incoming_across_reconnect(ctx)
        ),
        case!(
            incoming_qos2_flow_is_completed_exactly_once_across_a_reconnection,
            [V5],
            ["MQTT-4.3.3-10", "MQTT-4.3.3-11", "MQTT-4.4.0-1"],
            |ctx| qos2_incoming_across_reconnect(ctx)
        ),
        case!(server_completes_an_incoming_qos2_flow_after_the_message_expired, [V5], ["MQTT-4.3.3-13"], |ctx| {
            qos2_receiver_after_expiry(ctx)
        }),
        case!(publish_carrying_a_subscription_identifier_is_refused_or_acknowledged, [V5], ["MQTT-4.13.1-1"], |ctx| {
            subscription_identifier_in_publish(ctx)
        }),
        case!(
            publish_with_a_content_type_that_is_not_utf8_is_malformed,
            [V5],
            ["MQTT-3.3.2-19", "MQTT-4.13.1-1"],
            |ctx| content_type_not_utf8(ctx)
        ),
        case!(
            publish_with_a_response_topic_that_is_not_utf8_is_malformed,
            [V5],
            ["MQTT-3.3.2-13", "MQTT-4.13.1-1"],
            |ctx| response_topic_not_utf8(ctx)
        ),
        case!(response_topic_with_wildcards_is_never_forwarded, [V5], ["MQTT-3.3.2-14"], |ctx| {
            response_topic_wildcard(ctx)
        }),
        case!(packet_identifier_refused_with_an_error_pubrec_starts_a_new_message, [V5], ["MQTT-4.3.3-9"], |ctx| {
            pubrec_error_releases_id(ctx)
        }),
        // The server as sender.
        case!(
            server_delivers_qos0_with_dup_0_and_no_packet_identifier,
            [V311],
            ["MQTT-3.3.1-2", "MQTT-4.3.1-1", "MQTT-2.3.1-5"],
            |ctx| qos0_delivery_flags(ctx)
        ),
        case!(
            server_delivers_qos0_with_dup_0_and_no_packet_identifier,
            [V5],
            ["MQTT-3.3.1-2", "MQTT-4.3.1-1", "MQTT-2.2.1-2"],
            |ctx| qos0_delivery_flags(ctx)
        ),
        case!(
            server_delivers_qos1_with_dup_0_and_distinct_nonzero_packet_identifiers,
            [V311],
            ["MQTT-4.3.2-1", "MQTT-2.3.1-1", "MQTT-2.3.1-4"],
            |ctx| qos1_delivery_ids(ctx)
        ),
        case!(
            server_delivers_qos1_with_dup_0_and_distinct_nonzero_packet_identifiers,
            [V5],
            ["MQTT-4.3.2-1", "MQTT-4.3.2-2", "MQTT-2.2.1-4"],
            |ctx| qos1_delivery_ids(ctx)
        ),
        case!(
            server_delivers_qos2_and_answers_pubrec_with_pubrel,
            [V311],
            ["MQTT-4.3.3-1", "MQTT-2.3.1-1", "MQTT-2.3.1-4", "MQTT-2.3.1-6", "MQTT-3.6.1-1"],
            |ctx| qos2_delivery_flow(ctx)
        ),
        case!(
            server_delivers_qos2_and_answers_pubrec_with_pubrel,
            [V5],
            [
                "MQTT-4.3.3-1",
                "MQTT-4.3.3-2",
                "MQTT-4.3.3-4",
                "MQTT-2.2.1-4",
                "MQTT-2.2.1-5",
                "MQTT-3.6.1-1",
                "MQTT-3.6.2-1"
            ],
            |ctx| qos2_delivery_flow(ctx)
        ),
        case!(dup_flag_of_an_incoming_publish_is_not_forwarded, [V311, V5], ["MQTT-3.3.1-3"], |ctx| {
            dup_not_propagated(ctx)
        }),
        case!(server_does_not_resend_unacknowledged_publish_while_connected, [V5], ["MQTT-4.4.0-1"], |ctx| {
            no_resend_while_connected(ctx)
        }),
        case!(
            unacknowledged_qos1_messages_are_resent_with_dup_1_on_session_resumption,
            [V311],
            ["MQTT-4.4.0-1", "MQTT-3.3.1-1", "MQTT-3.3.1-3", "MQTT-4.3.2-1", "MQTT-4.6.0-6"],
            |ctx| resend_qos1_on_resumption(ctx)
        ),
        case!(
            unacknowledged_qos1_messages_are_resent_with_dup_1_on_session_resumption,
            [V5],
            ["MQTT-4.4.0-1", "MQTT-3.3.1-1", "MQTT-3.3.1-3", "MQTT-4.3.2-3", "MQTT-4.6.0-5"],
            |ctx| resend_qos1_on_resumption(ctx)
        ),
        case!(
            unacknowledged_qos2_publish_is_resent_with_dup_1_on_session_resumption,
            [V311],
            ["MQTT-4.4.0-1", "MQTT-3.3.1-1", "MQTT-4.3.3-1"],
            |ctx| resend_qos2_publish_on_resumption(ctx)
        ),
        case!(
            unacknowledged_qos2_publish_is_resent_with_dup_1_on_session_resumption,
            [V5],
            ["MQTT-4.4.0-1", "MQTT-3.3.1-1", "MQTT-4.3.3-3"],
            |ctx| resend_qos2_publish_on_resumption(ctx)
        ),
        case!(
            unacknowledged_pubrel_not_the_publish_is_resent_on_session_resumption,
            [V311],
            ["MQTT-4.4.0-1", "MQTT-4.3.3-1"],
            |ctx| resend_pubrel_on_resumption(ctx)
        ),
        case!(
            unacknowledged_pubrel_not_the_publish_is_resent_on_session_resumption,
            [V5],
            ["MQTT-4.4.0-1", "MQTT-4.3.3-5", "MQTT-4.3.3-6"],
            |ctx| resend_pubrel_on_resumption(ctx)
        ),
        case!(messages_refused_with_puback_or_pubrec_0x80_are_not_resent, [V5], ["MQTT-4.4.0-2"], |ctx| {
            error_ack_not_resent(ctx)
        }),
        case!(qos2_publish_already_sent_is_resent_after_its_expiry_interval, [V5], ["MQTT-4.3.3-7"], |ctx| {
            qos2_not_expired_after_send(ctx)
        }),
        case!(
            messages_published_while_a_session_is_offline_are_delivered_on_resumption,
            [V311],
            ["MQTT-4.5.0-1", "MQTT-3.3.1-3", "MQTT-4.6.0-6"],
            |ctx| offline_messages_delivered(ctx)
        ),
        case!(
            messages_published_while_a_session_is_offline_are_delivered_on_resumption,
            [V5],
            ["MQTT-4.5.0-1", "MQTT-3.3.1-3", "MQTT-4.6.0-5"],
            |ctx| offline_messages_delivered(ctx)
        ),
        case!(delivered_qos_is_the_lower_of_published_and_granted_qos, [V311], ["MQTT-3.8.4-6"], |ctx| {
            qos_downgrade(ctx)
        }),
        case!(delivered_qos_is_the_lower_of_published_and_granted_qos, [V5], ["MQTT-3.8.4-8", "MQTT-4.8.2-3"], |ctx| {
            qos_downgrade(ctx)
        }),
        case!(overlapping_subscriptions_deliver_at_the_highest_granted_qos, [V311], ["MQTT-3.3.5-1"], |ctx| {
            overlapping_max_qos(ctx)
        }),
        case!(overlapping_subscriptions_deliver_at_the_highest_granted_qos, [V5], ["MQTT-3.3.4-2"], |ctx| {
            overlapping_max_qos(ctx)
        }),
        case!(
            delivered_topic_name_is_the_published_name_not_the_filter,
            [V311, V5],
            ["MQTT-3.3.2-1", "MQTT-3.3.2-2", "MQTT-3.3.2-3"],
            |ctx| delivered_topic_name(ctx)
        ),
        case!(
            messages_of_one_publisher_are_delivered_in_order_per_qos,
            [V311, V5],
            ["MQTT-4.6.0-5", "MQTT-4.6.0-6"],
            |ctx| ordering(ctx)
        ),
        // Retained messages.
        case!(
            retained_message_is_sent_to_a_new_subscription_with_retain_1,
            [V311],
            ["MQTT-3.3.1-5", "MQTT-3.3.1-6", "MQTT-3.3.1-8"],
            |ctx| retained_to_new_subscriber(ctx)
        ),
        case!(
            retained_message_is_sent_to_a_new_subscription_with_retain_1,
            [V5],
            ["MQTT-3.3.1-5", "MQTT-3.3.1-9"],
            |ctx| retained_to_new_subscriber(ctx)
        ),
        case!(retained_message_is_delivered_at_its_stored_qos, [V311], ["MQTT-3.3.1-5", "MQTT-3.8.4-6"], |ctx| {
            retained_keeps_qos(ctx)
        }),
        case!(retained_message_is_delivered_at_its_stored_qos, [V5], ["MQTT-3.3.1-5", "MQTT-3.8.4-8"], |ctx| {
            retained_keeps_qos(ctx)
        }),
        case!(
            retained_message_is_replaced_by_a_newer_retained_message,
            [V311],
            ["MQTT-3.3.1-5", "MQTT-3.3.1-6"],
            |ctx| retained_replaced(ctx)
        ),
        case!(retained_message_is_replaced_by_a_newer_retained_message, [V5], ["MQTT-3.3.1-5"], |ctx| {
            retained_replaced(ctx)
        }),
        case!(qos0_retained_message_discards_the_previous_retained_message, [V311], ["MQTT-3.3.1-7"], |ctx| {
            retained_replaced_by_qos0(ctx)
        }),
        case!(qos0_retained_message_discards_the_previous_retained_message, [V5], ["MQTT-3.3.1-5"], |ctx| {
            retained_replaced_by_qos0(ctx)
        }),
        case!(retained_publish_on_an_established_subscription_arrives_with_retain_0, [V311], ["MQTT-3.3.1-9"], |ctx| {
            live_delivery_clears_retain(ctx)
        }),
        case!(
            zero_byte_retained_message_is_delivered_and_removes_the_retained_message,
            [V311],
            ["MQTT-3.3.1-10", "MQTT-3.3.1-11"],
            |ctx| empty_retained_clears(ctx)
        ),
        case!(
            zero_byte_retained_message_is_delivered_and_removes_the_retained_message,
            [V5],
            ["MQTT-3.3.1-6", "MQTT-3.3.1-7"],
            |ctx| empty_retained_clears(ctx)
        ),
        case!(
            publish_with_retain_0_neither_stores_nor_touches_the_retained_message,
            [V311],
            ["MQTT-3.3.1-12"],
            |ctx| non_retained_keeps_retained(ctx)
        ),
        case!(publish_with_retain_0_neither_stores_nor_touches_the_retained_message, [V5], ["MQTT-3.3.1-8"], |ctx| {
            non_retained_keeps_retained(ctx)
        }),
        case!(
            wildcard_subscription_receives_the_retained_message_of_each_matching_topic,
            [V311],
            ["MQTT-3.3.1-6"],
            |ctx| retained_per_matching_topic(ctx)
        ),
        case!(
            wildcard_subscription_receives_the_retained_message_of_each_matching_topic,
            [V5],
            ["MQTT-3.3.1-9"],
            |ctx| retained_per_matching_topic(ctx)
        ),
        // 5.0 properties and expiry.
        case!(
            publish_properties_are_forwarded_unaltered_with_user_properties_in_order,
            [V5],
            ["MQTT-3.3.2-4", "MQTT-3.3.2-15", "MQTT-3.3.2-16", "MQTT-3.3.2-17", "MQTT-3.3.2-18", "MQTT-3.3.2-20"],
            |ctx| properties_forwarded(ctx)
        ),
        case!(
            retained_message_is_sent_with_its_publish_properties,
            [V5],
            ["MQTT-3.3.2-4", "MQTT-3.3.2-15", "MQTT-3.3.2-16", "MQTT-3.3.2-17", "MQTT-3.3.2-18", "MQTT-3.3.2-20"],
            |ctx| retained_properties_kept(ctx)
        ),
        case!(message_expiry_interval_is_forwarded_and_not_invented, [V5], ["MQTT-3.3.2-6"], |ctx| {
            expiry_forwarded(ctx)
        }),
        case!(message_expiry_interval_is_reduced_by_the_time_spent_queued, [V5], ["MQTT-3.3.2-6"], |ctx| {
            expiry_decremented_offline(ctx)
        }),
        case!(expired_message_is_not_delivered_to_a_resumed_session, [V5], ["MQTT-3.3.2-5"], |ctx| {
            expired_not_delivered(ctx)
        }),
        case!(
            retained_message_expiry_is_reduced_while_stored_and_ends_its_retention,
            [V5],
            ["MQTT-3.3.2-5", "MQTT-3.3.2-6"],
            |ctx| retained_expiry(ctx)
        ),
        // 5.0 topic aliases.
        case!(server_accepts_topic_aliases_up_to_its_topic_alias_maximum, [V5], ["MQTT-3.3.2-12"], |ctx| {
            alias_accepted(ctx)
        }),
        case!(publish_with_topic_alias_0_is_a_protocol_error, [V5], ["MQTT-3.3.2-8", "MQTT-4.13.1-1"], |ctx| {
            alias_zero(ctx)
        }),
        case!(publish_with_topic_alias_above_the_server_maximum_is_a_protocol_error, [V5], ["MQTT-4.13.1-1"], |ctx| {
            alias_above_maximum(ctx)
        }),
        case!(
            topic_alias_mapping_does_not_survive_the_network_connection,
            [V5],
            ["MQTT-3.3.2-7", "MQTT-4.13.1-1"],
            |ctx| alias_not_carried_over(ctx)
        ),
        case!(
            server_topic_aliases_stay_within_the_client_maximum_and_the_connection,
            [V5],
            ["MQTT-3.3.2-11", "MQTT-3.1.2-26", "MQTT-3.3.2-7", "MQTT-3.3.2-8"],
            |ctx| server_alias_within_client_maximum(ctx)
        ),
        case!(server_sends_no_topic_alias_to_a_client_without_topic_alias_maximum, [V5], ["MQTT-3.1.2-27"], |ctx| {
            server_alias_none_without_maximum(ctx)
        }),
        // 5.0 flow control and sizes.
        case!(
            server_keeps_qos1_deliveries_within_the_client_receive_maximum,
            [V5],
            ["MQTT-3.3.4-9", "MQTT-3.3.4-10", "MQTT-4.9.0-1", "MQTT-4.9.0-2", "MQTT-4.9.0-3"],
            |ctx| receive_maximum_qos1(ctx)
        ),
        case!(
            server_counts_qos2_deliveries_against_receive_maximum_until_pubcomp,
            [V5],
            ["MQTT-3.3.4-9", "MQTT-3.3.4-10", "MQTT-4.9.0-2", "MQTT-4.9.0-3"],
            |ctx| receive_maximum_qos2(ctx)
        ),
        case!(client_exceeding_the_server_receive_maximum_is_disconnected, [V5], ["MQTT-4.13.1-1"], |ctx| {
            client_exceeds_receive_maximum(ctx)
        }),
        case!(message_larger_than_the_client_maximum_packet_size_is_not_sent, [V5], ["MQTT-3.1.2-24"], |ctx| {
            maximum_packet_size_towards_client(ctx)
        }),
        case!(
            publish_acknowledgements_stay_within_the_client_maximum_packet_size,
            [V5],
            [
                "MQTT-3.1.2-24",
                "MQTT-3.4.2-2",
                "MQTT-3.4.2-3",
                "MQTT-3.5.2-2",
                "MQTT-3.5.2-3",
                "MQTT-3.6.2-2",
                "MQTT-3.6.2-3",
                "MQTT-3.7.2-2",
                "MQTT-3.7.2-3"
            ],
            |ctx| acks_within_maximum_packet_size(ctx)
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}
