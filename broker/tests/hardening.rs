//! The classic MQTT broker attacks over real TCP, each against a broker that
//! keeps serving a bystander (an MQTT 5 subscriber and an MQTT 3.1.1
//! publisher) throughout: oversized and malformed frames, state exhaustion
//! (QoS 2 ids never released, user properties), connection and message
//! floods, banned clients and a consumer that never reads. Limits are
//! checked on the broker's counters, not on timing.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU16, NonZeroUsize};
use std::time::Duration;

use broker::server::{BanKind, BanRequest};
use tcp_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A subscriber and a publisher on the attacked broker; `round_trip`
/// asserts that a message still goes from one to the other.
struct Bystander {
    sub: Raw,
    publisher: Raw,
    round: u16,
}

impl Bystander {
    async fn join(addr: SocketAddr) -> Bystander {
        let (mut sub, _) = Raw::connect(addr, Connect::v5("bystander-sub")).await;
        assert_eq!(sub.subscribe(1, &[("bystander/t", 1)]).await, vec![1]);
        let (publisher, _) = Raw::connect(addr, Connect::v311("bystander-pub")).await;
        let mut bystander = Bystander { sub, publisher, round: 0 };
        bystander.round_trip().await;
        bystander
    }

    async fn round_trip(&mut self) {
        self.round += 1;
        let payload = format!("round {}", self.round);
        self.publisher.publish(PublishSpec::new("bystander/t", payload.as_bytes()).qos(1, self.round)).await;
        let got = self.sub.recv_publish_acked().await;
        assert_eq!(got.payload_str(), payload, "the bystander stopped receiving");
    }
}

/// How many user properties `n` pairs take on the wire.
fn user_properties(n: usize) -> Vec<u8> {
    (0..n).flat_map(|_| p_pair("k", "v")).collect()
}

/// A TCP connection from `source` (a 127.x.y.z address) that sends a v5
/// CONNECT: `Some(code)` from the CONNACK, `None` if the broker closed the
/// socket without one.
async fn connect_from(source: IpAddr, addr: SocketAddr, client_id: &str) -> Option<u8> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let mut stream = within(WAIT, socket.connect(addr)).await.unwrap();
    // The broker may close before reading: a failed write is a refusal too.
    let _ = stream.write_all(&Connect::v5(client_id).encode()).await;
    let mut head = [0u8; 4];
    match within(WAIT, stream.read_exact(&mut head)).await {
        Ok(_) if head[0] == 0x20 => Some(head[3]),
        Ok(_) => panic!("expected a CONNACK, got {head:02x?}"),
        Err(_) => None,
    }
}

async fn limit_stats_eventually(
    server: &broker::Server,
    what: &str,
    done: impl Fn(&broker::server::LimitStats) -> bool,
) -> broker::server::LimitStats {
    within_named(what, WAIT, async {
        loop {
            let stats = server.limit_stats();
            if done(&stats) {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_huge_remaining_length_is_refused_from_the_fixed_header() {
    let server = start().await;
    let addr = server.local_addr();
    let mut bystander = Bystander::join(addr).await;
    // 268,435,455 bytes announced: refused before the broker reserves anything.
    let huge = [0xFF, 0xFF, 0xFF, 0x7F];
    let mut raw = Raw::tcp(addr, Level::V5).await;
    raw.send(&[&[0x10][..], &huge].concat()).await;
    assert!(raw.expect_closed().await.is_empty(), "a CONNECT that large gets no CONNACK");
    let (mut raw, _) = Raw::connect(addr, Connect::v5("huge5")).await;
    raw.send(&[&[0x30][..], &huge].concat()).await;
    raw.expect_disconnect(0x95).await;
    let (mut raw, _) = Raw::connect(addr, Connect::v311("huge4")).await;
    raw.send(&[&[0x30][..], &huge].concat()).await;
    raw.expect_closed_without_disconnect().await;
    bystander.round_trip().await;
    let stats =
        limit_stats_eventually(&server, "two closures", |s| s.closed_by_reason.values().sum::<u64>() == 2).await;
    assert_eq!(stats.closed_by_reason.get("0x95 Packet too large"), Some(&2), "{stats:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_first_packet_other_than_connect_closes_the_socket() {
    let server = start().await;
    let addr = server.local_addr();
    let mut bystander = Bystander::join(addr).await;
    let first_packets: [&[u8]; 3] = [&PINGREQ_PACKET, &[0x30, 0x03, 0x00, 0x01, b't'], &[0x82, 0x02, 0x00, 0x01]];
    for bytes in first_packets {
        let mut raw = Raw::tcp(addr, Level::V311).await;
        raw.send(bytes).await;
        assert!(raw.expect_closed().await.is_empty(), "[MQTT-3.1.0-1]: closed without an answer");
    }
    bystander.round_trip().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_socket_that_sends_no_connect_or_half_of_one_is_closed_at_the_connect_deadline() {
    let server = start_with(|c| c.listeners.tcp.connect_timeout_secs = NonZeroU16::new(1).unwrap()).await;
    let addr = server.local_addr();
    let mut bystander = Bystander::join(addr).await;
    let mut silent = Raw::tcp(addr, Level::V5).await;
    let mut trickle = Raw::tcp(addr, Level::V5).await;
    let connect = Connect::v5("slowloris").encode();
    trickle.send(&connect[..connect.len() - 1]).await;
    // Keep-alive does not apply before CONNECT; the 1 s deadline does.
    assert!(silent.expect_closed_within(Duration::from_secs(4)).await.is_empty());
    assert!(trickle.expect_closed_within(Duration::from_secs(4)).await.is_empty());
    bystander.round_trip().await;
    server.shutdown().await;
}

#[tokio::test]
async fn qos2_messages_never_released_are_capped_for_every_version() {
    let server = start_with(|c| {
        c.mqtt.receive_maximum = NonZeroU16::new(4).unwrap();
        c.mqtt.max_awaiting_rel_v3 = NonZeroU16::new(6).unwrap();
    })
    .await;
    let addr = server.local_addr();
    let mut bystander = Bystander::join(addr).await;

    // The same id again and again: acknowledged again, stored once.
    let (mut watcher, _) = Raw::connect(addr, Connect::v311("q2-watcher")).await;
    watcher.subscribe(1, &[("q2/t", 0)]).await;
    let (mut same, _) = Raw::connect(addr, Connect::v5("q2-same")).await;
    let resend = PublishSpec::new("q2/t", b"once").qos(2, 7);
    for _ in 0..200 {
        same.send(&resend.encode(Level::V5)).await;
    }
    for _ in 0..200 {
        assert_eq!(same.recv_kind(PUBREC).await.ack().0, 7);
    }
    assert_eq!(watcher.recv_publish().await.payload_str(), "once");
    watcher.expect_silence().await;

    // New ids without PUBREL: MQTT 5 up to its Receive Maximum, then DISCONNECT 0x93.
    let (mut v5, _) = Raw::connect(addr, Connect::v5("q2-flood5")).await;
    let flood: Vec<u8> = (1..=5).flat_map(|id| PublishSpec::new("q2/x", b"x").qos(2, id).encode(Level::V5)).collect();
    v5.send(&flood).await;
    let frames = v5.expect_closed().await;
    assert_eq!(frames.iter().filter(|f| f.kind() == PUBREC).count(), 4, "{frames:?}");
    assert_eq!(frames.last().map(Frame::disconnect_reason), Some(0x93), "{frames:?}");

    // MQTT 3.1.1 has no Receive Maximum: its own bound, then the close.
    let (mut v4, _) = Raw::connect(addr, Connect::v311("q2-flood4")).await;
    let flood: Vec<u8> = (1..=7).flat_map(|id| PublishSpec::new("q2/x", b"x").qos(2, id).encode(Level::V311)).collect();
    v4.send(&flood).await;
    let frames = v4.expect_closed().await;
    assert_eq!(frames.iter().filter(|f| f.kind() == PUBREC).count(), 6, "{frames:?}");
    assert!(frames.iter().all(|f| f.kind() != DISCONNECT));

    bystander.round_trip().await;
    let stats =
        limit_stats_eventually(&server, "two closures", |s| s.closed_by_reason.values().sum::<u64>() == 2).await;
    assert_eq!(stats.closed_by_reason.get("0x93 Receive Maximum exceeded"), Some(&2), "{stats:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn thousands_of_user_properties_are_refused_with_quota_exceeded() {
    let server = start_with(|c| c.mqtt.max_user_properties = 16).await;
    let addr = server.local_addr();
    let mut bystander = Bystander::join(addr).await;

    let (mut raw, _) = Raw::connect(addr, Connect::v5("props-ok")).await;
    raw.publish(PublishSpec::new("props/t", b"ok").qos(1, 1).props(user_properties(16))).await;

    let (mut raw, _) = Raw::connect(addr, Connect::v5("props-publish")).await;
    raw.send(&PublishSpec::new("props/t", b"x").props(user_properties(5000)).encode(Level::V5)).await;
    raw.expect_disconnect(0x97).await;

    let (mut raw, ack) = Raw::try_connect(addr, Connect::v5("props-connect").props(user_properties(5000))).await;
    assert_eq!(ack.code, 0x97);
    assert!(raw.expect_closed().await.is_empty());

    let will = WillSpec::new("w", b"w").props(user_properties(5000));
    let (_raw, ack) = Raw::try_connect(addr, Connect::v5("props-will").will(will)).await;
    assert_eq!(ack.code, 0x97, "the will's properties are capped too");

    bystander.round_trip().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_zero_length_topic_without_an_alias_is_a_protocol_error() {
    let server = start().await;
    let addr = server.local_addr();
    let mut bystander = Bystander::join(addr).await;
    let (mut raw, _) = Raw::connect(addr, Connect::v5("empty5")).await;
    raw.send(&PublishSpec::new("", b"x").encode(Level::V5)).await;
    // [MQTT-4.7.3-1]; 5.0 section 3.3.2.3.4: without a Topic Alias it is a Protocol Error.
    raw.expect_disconnect(0x82).await;
    let (mut raw, _) = Raw::connect(addr, Connect::v311("empty4")).await;
    raw.send(&PublishSpec::new("", b"x").encode(Level::V311)).await;
    raw.expect_closed_without_disconnect().await;
    bystander.round_trip().await;
    server.shutdown().await;
}

#[tokio::test]
async fn topic_aliases_beyond_the_maximum_are_refused_so_the_table_stays_bounded() {
    let server = start_with(|c| c.mqtt.max_topic_alias = 2).await;
    let addr = server.local_addr();
    let mut bystander = Bystander::join(addr).await;
    let (mut raw, _) = Raw::connect(addr, Connect::v5("aliases")).await;
    for alias in 1..=2 {
        let spec =
            PublishSpec::new(&format!("alias/{alias}"), b"x").qos(1, alias).props(p_u16(prop::TOPIC_ALIAS, alias));
        raw.publish(spec).await;
    }
    raw.send(&PublishSpec::new("alias/3", b"x").props(p_u16(prop::TOPIC_ALIAS, 3)).encode(Level::V5)).await;
    raw.expect_disconnect(0x94).await;
    bystander.round_trip().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_flood_from_one_address_hits_the_per_address_rate() {
    let server = start_with(|c| {
        c.limits.max_conn_rate_per_ip = 1;
        c.limits.max_conn_burst_per_ip = 5;
    })
    .await;
    let addr = server.local_addr();
    let mut bystander = Bystander::join(addr).await; // two of 127.0.0.1's five
    let flooder: IpAddr = "127.0.0.1".parse().unwrap();
    let started = tokio::time::Instant::now();
    let mut admitted = 0u64;
    for i in 0..30 {
        if connect_from(flooder, addr, &format!("flood-{i}")).await == Some(0) {
            admitted += 1;
        }
    }
    // At most the burst, plus one a second while the flood ran.
    let allowed = 5 + started.elapsed().as_secs() + 1;
    assert!(admitted <= allowed, "{admitted} of the flood admitted, at most {allowed} expected");
    assert_eq!(server.limit_stats().refused_ip_rate, 30 - admitted);
    // Another source address has its own bucket.
    assert_eq!(connect_from("127.0.0.2".parse().unwrap(), addr, "elsewhere").await, Some(0));
    bystander.round_trip().await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_listener_rate_covers_all_addresses() {
    let server = start_with(|c| {
        c.limits.max_conn_rate = 1;
        c.limits.max_conn_burst = 4;
    })
    .await;
    let addr = server.local_addr();
    let mut bystander = Bystander::join(addr).await;
    let started = tokio::time::Instant::now();
    let mut admitted = 0u64;
    for i in 0..20u8 {
        let source = IpAddr::from([127, 0, 1, i + 1]);
        if connect_from(source, addr, &format!("many-{i}")).await == Some(0) {
            admitted += 1;
        }
    }
    let allowed = 4 + started.elapsed().as_secs() + 1;
    assert!(admitted <= allowed, "{admitted} admitted, at most {allowed} expected");
    assert_eq!(server.limit_stats().refused_listener_rate, 20 - admitted);
    bystander.round_trip().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_message_flood_is_throttled_by_back_pressure_not_disconnected() {
    let server = start_with(|c| c.limits.max_messages_per_sec = 100).await;
    let addr = server.local_addr();
    let mut bystander = Bystander::join(addr).await;
    let (mut sub, _) = Raw::connect(addr, Connect::v311("flood-sub")).await;
    sub.subscribe(1, &[("flood/t", 0)]).await;
    let (mut flooder, _) = Raw::connect(addr, Connect::v311("flooder")).await;
    let flood: Vec<u8> =
        (0..300).flat_map(|i: u32| PublishSpec::new("flood/t", &i.to_be_bytes()).encode(Level::V311)).collect();
    flooder.send(&flood).await;
    let stats = limit_stats_eventually(&server, "the flooder's reads to pause", |s| s.read_pauses > 0).await;
    assert_eq!(stats.clients_throttled, 1, "the bystander is not throttled: {stats:?}");
    // While the flooder waits, others are served.
    bystander.round_trip().await;
    // Nothing is lost and the flooder stays connected: everything arrives, in order.
    for i in 0..300u32 {
        let got = within(Duration::from_secs(15), sub.recv_publish()).await;
        assert_eq!(got.payload, i.to_be_bytes(), "message {i}");
    }
    flooder.ping().await;
    assert_eq!(server.limit_stats().clients_throttled, 1, "counted once per client");
    assert!(server.limit_stats().closed_by_reason.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_byte_flood_is_throttled_too() {
    let server = start_with(|c| c.limits.max_bytes_per_sec = 20_000).await;
    let addr = server.local_addr();
    let mut bystander = Bystander::join(addr).await;
    let (mut flooder, _) = Raw::connect(addr, Connect::v5("byte-flooder")).await;
    let big = PublishSpec::new("bytes/t", &[7u8; 10_000]).encode(Level::V5);
    for _ in 0..4 {
        flooder.send(&big).await;
    }
    limit_stats_eventually(&server, "the flooder's reads to pause", |s| s.read_pauses > 0).await;
    bystander.round_trip().await;
    flooder.ping().await;
    assert_eq!(server.counters().messages_received, 4 + u64::from(bystander.round));
    server.shutdown().await;
}

#[tokio::test]
async fn banned_clients_are_refused_at_connect_and_kicked_when_the_ban_is_added() {
    let server = start_with(|c| c.admin.bind = Some("127.0.0.1:0".parse().unwrap())).await;
    let addr = server.local_addr();
    let admin = server.admin_addr().unwrap().to_string();
    let mut bystander = Bystander::join(addr).await;
    let (mut live, _) = Raw::connect(addr, Connect::v5("evil")).await;

    let out = ctl(&admin, &["ban", "add", "--client-id", "evil", "--reason", "test"]).await;
    assert!(out.contains("\"closed\":1"), "{out}");
    live.expect_disconnect(0x98).await;
    let (_raw, ack) = Raw::try_connect(addr, Connect::v5("evil")).await;
    assert_eq!(ack.code, 0x8A, "MQTT 5: Banned");
    let (_raw, ack) = Raw::try_connect(addr, Connect::v311("evil")).await;
    assert_eq!(ack.code, 5, "MQTT 3.1.1: not authorized");
    let list = ctl(&admin, &["ban", "list"]).await;
    assert!(list.contains("client_id") && list.contains("evil") && list.contains("test"), "{list}");
    ctl(&admin, &["ban", "remove", "--client-id", "evil"]).await;
    Raw::connect(addr, Connect::v5("evil")).await;

    // By user name, and by address block.
    server
        .ban(BanRequest {
            kind: BanKind::Username,
            value: "mallory".into(),
            duration_secs: None,
            reason: String::new(),
        })
        .unwrap();
    let mut raw = Raw::tcp(addr, Level::V5).await;
    raw.send(&connect_v5_with_username("m", "mallory")).await;
    assert_eq!(raw.recv().await.connack().code, 0x8A);
    server
        .ban(BanRequest {
            kind: BanKind::Cidr,
            value: "127.0.3.0/24".into(),
            duration_secs: None,
            reason: String::new(),
        })
        .unwrap();
    assert_eq!(connect_from("127.0.3.9".parse().unwrap(), addr, "net").await, Some(0x8A));
    assert_eq!(connect_from("127.0.4.9".parse().unwrap(), addr, "net").await, Some(0));

    // A ban with a duration lapses.
    server
        .ban(BanRequest {
            kind: BanKind::ClientId,
            value: "brief".into(),
            duration_secs: Some(1),
            reason: String::new(),
        })
        .unwrap();
    let (_raw, ack) = Raw::try_connect(addr, Connect::v5("brief")).await;
    assert_eq!(ack.code, 0x8A);
    within_named("the ban to lapse", WAIT, async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if Raw::try_connect(addr, Connect::v5("brief")).await.1.code == 0 {
                return;
            }
        }
    })
    .await;

    bystander.round_trip().await;
    assert_eq!(server.bans().len(), 2, "the lapsed ban is gone once listed");
    let stats = server.limit_stats();
    assert_eq!(stats.kicked_banned, 1, "{stats:?}");
    assert!(stats.refused_banned >= 5, "{stats:?}");
    assert_eq!(stats.bans, 2, "{stats:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_ban_that_would_cover_more_or_less_than_asked_is_refused_and_changes_nothing() {
    let server = start_with(|c| c.admin.bind = Some("127.0.0.1:0".parse().unwrap())).await;
    let addr = server.local_addr();
    let request = |kind, value: &str, duration_secs| BanRequest {
        kind,
        value: value.into(),
        duration_secs,
        reason: String::new(),
    };
    // 127.0.5.9/24 would silently have banned all of 127.0.5.0/24.
    let error = server.ban(request(BanKind::Cidr, "127.0.5.9/24", None)).unwrap_err();
    assert!(error.contains("did you mean 127.0.5.0/24?"), "{error}");
    // A ban of 0 seconds would close the matching clients and then ban no one.
    let (mut live, _) = Raw::connect(addr, Connect::v5("zero")).await;
    let error = server.ban(request(BanKind::ClientId, "zero", Some(0))).unwrap_err();
    assert!(error.contains("0 seconds"), "{error}");
    assert!(server.bans().is_empty());
    assert_eq!(server.limit_stats().kicked_banned, 0);
    assert_eq!(connect_from("127.0.5.1".parse().unwrap(), addr, "other").await, Some(0));
    live.ping().await;

    // Through the admin API, the same refusal reaches the operator.
    let admin = server.admin_addr().unwrap().to_string();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_broker"));
    command.args(["ctl", "--admin", &admin, "ban", "add", "--client-id", "zero", "--duration", "0"]);
    let out = within(WAIT, tokio::task::spawn_blocking(move || command.output())).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("HTTP 400") && stderr.contains("0 seconds"), "{stderr}");
    live.ping().await;
    server.shutdown().await;
}

/// An MQTT 5 CONNECT (clean start, keep alive 60) with a user name.
fn connect_v5_with_username(client_id: &str, username: &str) -> Vec<u8> {
    let mut body = field(b"MQTT");
    body.extend([5, 0x82, 0, 60]);
    body.extend(props_block(&[]));
    body.extend(field(client_id.as_bytes()));
    body.extend(field(username.as_bytes()));
    frame(0x10, &body)
}

/// Runs `broker ctl --admin ADMIN ARGS...`, asserting success; returns stdout.
async fn ctl(admin: &str, args: &[&str]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_broker"));
    command.args(["ctl", "--admin", admin, "--json"]).args(args);
    // Off the runtime's thread: the admin API being called runs on it.
    let out = within(WAIT, tokio::task::spawn_blocking(move || command.output())).await.unwrap().unwrap();
    assert!(out.status.success(), "broker ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_consumer_that_never_reads_is_bounded_by_its_queue() {
    let server = start_with(|c| c.mqtt.max_queued_messages = NonZeroUsize::new(10).unwrap()).await;
    let addr = server.local_addr();
    let mut bystander = Bystander::join(addr).await;
    let (mut slow, _) = Raw::connect(addr, Connect::v311("never-reads")).await;
    slow.subscribe(1, &[("slow/t", 1)]).await;
    let (mut publisher, _) = Raw::connect(addr, Connect::v5("fast-publisher")).await;
    // 64 MB for a reader that takes nothing: far more than the socket buffers hold.
    let payload = vec![0x55u8; 32 * 1024];
    const SENT: u64 = 2000;
    let message = PublishSpec::new("slow/t", &payload).encode(Level::V5);
    for _ in 0..SENT {
        publisher.send(&message).await;
    }
    publisher.ping().await;
    let counters = server.counters();
    let dropped = counters.dropped_queue_full + counters.dropped_qos0_for_room;
    // What is not dropped sits in the kernel's buffers, the outbox (256) or the queue (10).
    assert!(dropped > SENT / 4, "only {dropped} of {SENT} dropped: {counters:?}");
    bystander.round_trip().await;
    drop(slow);
    server.shutdown().await;
}
