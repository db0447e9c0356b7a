//! The bodies of the fuzz targets. `fuzz_targets/*.rs` hand them libFuzzer's
//! inputs; `broker/tests/fuzz_corpus.rs` includes this file and replays every
//! committed seed through them on stable, so a regression fails `cargo test`.
//!
//! - `decode`: bytes -> `mqtt_codec::Decoder` (server mode and each version,
//!   whole and split, with and without a user-property cap); whatever decodes
//!   must encode and decode back to the same packet.
//! - `session`: two clients of the sans-IO core (`broker::core::Broker`)
//!   connect, then the input drives them: packets decoded from it, clock
//!   jumps, lost connections and reconnects, outbox drains. Everything the
//!   core sends must encode for the client's version.
//! - `config`: UTF-8 text -> `broker::Config::parse`.
//! - `acl`: UTF-8 text -> an ACL (`broker::authz::AclAuthorizer`); if it
//!   parses, a few publish and subscribe decisions for a fixed client.
//! - `users`: UTF-8 text -> a users file (`broker::auth::users_file`).
//!
//! A panic anywhere is a finding.

use std::num::{NonZeroU16, NonZeroUsize};
use std::sync::Arc;

use broker::config::MqttConfig;
use broker::core::{Broker, ConnId, Waker};
use broker::seam::Millis;
use mqtt_codec::bytes::{Bytes, BytesMut};
use mqtt_codec::{Connect, ConnectProperties, Decoder, Packet, ProtocolVersion, decode_packet, encode, encoded_len};

/// A target's body: one input, a panic for a finding.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Target)] =
    &[("decode", decode), ("session", session), ("config", config), ("acl", acl), ("users", users)];

const MAX_PACKET_SIZE: u32 = 64 * 1024;
const VERSIONS: [ProtocolVersion; 3] = [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1, ProtocolVersion::V5];

// ---------- decode ----------

pub fn decode(data: &[u8]) {
    let cap = usize::from(data.first().copied().unwrap_or(0) % 4);
    for max_user_properties in [usize::MAX, cap] {
        let mut server = Decoder::new(MAX_PACKET_SIZE);
        server.set_max_user_properties(max_user_properties);
        decode_with(server, data);
        for version in VERSIONS {
            let mut decoder = Decoder::with_version(version, MAX_PACKET_SIZE);
            decoder.set_max_user_properties(max_user_properties);
            decode_with(decoder, data);
        }
    }
    for version in VERSIONS {
        let _ = decode_packet(Some(version), Bytes::copy_from_slice(data));
    }
    let _ = decode_packet(None, Bytes::copy_from_slice(data));
}

fn decode_with(decoder: Decoder, data: &[u8]) {
    let mut whole = decoder.clone();
    let mut buf = BytesMut::from(data);
    drain(&mut whole, &mut buf);
    assert!(buf.capacity() <= (MAX_PACKET_SIZE as usize).max(data.len()) * 2 + 64, "the decoder over-reserved");

    // Split in two at a point taken from the data.
    let mut split = decoder;
    if let Some(&first) = data.first() {
        let cut = usize::from(first) % data.len();
        let mut buf = BytesMut::from(&data[..cut]);
        if drain(&mut split, &mut buf) {
            buf.extend_from_slice(&data[cut..]);
            drain(&mut split, &mut buf);
        }
    }
}

/// Decodes until more bytes are needed (true) or an error (false).
fn drain(decoder: &mut Decoder, buf: &mut BytesMut) -> bool {
    loop {
        let before = buf.len();
        match decoder.decode(buf) {
            Ok(Some(packet)) => {
                assert!(buf.len() < before, "a decoded packet consumes bytes");
                let Some(version) = decoder.version() else { panic!("a decoded packet implies a version") };
                round_trip(&packet, version);
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

fn round_trip(packet: &Packet, version: ProtocolVersion) {
    let mut buf = BytesMut::new();
    let written = match encode(packet, version, &mut buf) {
        Ok(written) => written,
        Err(error) => panic!("a decoded packet must encode: {error} for {packet:?}"),
    };
    assert_eq!(encoded_len(packet, version).ok(), Some(written), "encoded_len disagrees with encode for {packet:?}");
    let frame_version = if matches!(packet, Packet::Connect(_)) { None } else { Some(version) };
    match decode_packet(frame_version, buf.freeze()) {
        Ok(again) => assert_eq!(&again, packet, "the round trip changed the packet"),
        Err(error) => panic!("an encoded packet must decode: {error} for {packet:?}"),
    }
}

// ---------- session ----------

struct NoWake;

impl Waker for NoWake {
    fn wake(&self) {}
}

struct Client {
    conn: ConnId,
    version: ProtocolVersion,
    client_id: &'static str,
}

/// Small limits, so that short inputs reach every bound.
fn small_config() -> MqttConfig {
    let two = NonZeroU16::MIN.saturating_add(1);
    let four = NonZeroUsize::MIN.saturating_add(3);
    MqttConfig {
        max_inflight: two,
        receive_maximum: two,
        max_awaiting_rel_v3: two.saturating_add(1),
        max_queued_messages: four,
        max_subscriptions: four,
        max_retained_messages: four,
        max_topic_alias: 2,
        max_user_properties: 4,
        ..MqttConfig::default()
    }
}

/// The input: one header byte (RNG seed, versions, clean start), then steps
/// of one control byte each, `client` = bit 0, `op` = bits 1-3:
/// 0-3: the next packet in the input goes to the client; 4: the clock
/// advances by bits 4-7 seconds; 5: the connection drops and the client
/// reconnects; 6-7: the client's outbox is drained and checked.
pub fn session(data: &[u8]) {
    let Some((&header, rest)) = data.split_first() else { return };
    // Map iteration order, and so the core's output, then depends only on the input.
    let _ = broker::seam::fix_hash_keys([1, 2, 3, 4]);
    let mut broker = Broker::new(small_config(), broker::seam::rng(Some(u64::from(header))));
    let mut now: Millis = 0;
    let mut next_conn: ConnId = 1;
    let mut clients = [
        Client { conn: 0, version: VERSIONS[usize::from(header & 3) % 3], client_id: "a" },
        Client { conn: 0, version: VERSIONS[usize::from((header >> 2) & 3) % 3], client_id: "b" },
    ];
    let clean_start = header & 0x10 != 0;
    for client in &mut clients {
        connect(&mut broker, client, &mut next_conn, clean_start, now);
    }
    let mut buf = BytesMut::from(rest);
    while !buf.is_empty() {
        let control = buf.split_to(1)[0];
        let client = &mut clients[usize::from(control & 1)];
        match (control >> 1) & 7 {
            0..=3 => {
                let mut decoder = Decoder::with_version(client.version, MAX_PACKET_SIZE);
                decoder.set_max_user_properties(4);
                match decoder.decode(&mut buf) {
                    Ok(Some(packet)) => broker.handle_packet(client.conn, packet, now),
                    // The rest of the input is not a whole packet.
                    Ok(None) => break,
                    Err(error) => {
                        broker.protocol_error(client.conn, error.reason_code(), "fuzz: bad packet", now);
                        // Nothing can be said about where the next packet starts.
                        break;
                    }
                }
            }
            4 => {
                now += u64::from(control >> 4) * 1000;
                broker.handle_timeout(now);
                assert!(broker.poll_timeout().is_none_or(|at| at > now), "a timer due now did not fire");
            }
            5 => {
                broker.connection_lost(client.conn, now);
                connect(&mut broker, client, &mut next_conn, control & 0x10 != 0, now);
            }
            _ => drain_outbox(&mut broker, client, now),
        }
        let _ = broker.drain_wakeups();
    }
    for client in &clients {
        drain_outbox(&mut broker, client, now);
    }
    assert!(broker.connection_count() <= clients.len(), "connections leak");
    assert!(broker.session_count() <= clients.len(), "sessions leak");
}

fn connect(broker: &mut Broker, client: &mut Client, next_conn: &mut ConnId, clean_start: bool, now: Millis) {
    client.conn = *next_conn;
    *next_conn += 1;
    let properties = ConnectProperties {
        session_expiry_interval: (!clean_start).then_some(30),
        receive_maximum: Some(2),
        maximum_packet_size: Some(MAX_PACKET_SIZE),
        topic_alias_maximum: Some(2),
        ..ConnectProperties::default()
    };
    let connect = Connect {
        protocol: client.version,
        clean_start,
        keep_alive: 0,
        client_id: client.client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: if client.version.is_v5() { properties } else { ConnectProperties::default() },
    };
    // A refusal leaves the client unconnected; its packets then go nowhere.
    let _ = broker.connect(client.conn, connect, Arc::new(NoWake), now);
    drain_outbox(broker, client, now);
}

/// Takes everything the client has to send and checks that it encodes.
fn drain_outbox(broker: &mut Broker, client: &Client, now: Millis) {
    // The outbox refills from the session queue; a bound keeps a bug from hanging the fuzzer.
    for _ in 0..1000 {
        let outbox = broker.take_outbox(client.conn, now);
        let mut out = BytesMut::new();
        for packet in &outbox.packets {
            if let Err(error) = encode(packet, client.version, &mut out) {
                panic!("the core sent a packet that does not encode for {:?}: {error}: {packet:?}", client.version);
            }
        }
        if outbox.packets.is_empty() || outbox.close.is_some() {
            return;
        }
    }
    panic!("the outbox never ran dry");
}

// ---------- config ----------

pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = broker::Config::parse(text);
    }
}

// ---------- acl ----------

pub fn acl(data: &[u8]) {
    use broker::authz::{AclAuthorizer, Authorizer, ClientInfo, NoMatch};
    let Ok(text) = std::str::from_utf8(data) else { return };
    for no_match in [NoMatch::Deny, NoMatch::Allow] {
        let Ok(acl) = AclAuthorizer::from_text(text, no_match) else { return };
        let client = ClientInfo {
            client_id: "c+1".into(),
            username: Some("u/#".into()),
            peer: Some(std::net::IpAddr::from([10, 20, 0, 1])),
        };
        for what in ["a/b", "#", "+/+", "$SYS/x", "devices/c+1/t", "", "a//b", "$share/g/a/#"] {
            let _ = acl.can_publish(&client, what);
            let _ = acl.can_subscribe(&client, what);
        }
    }
}

// ---------- users ----------

pub fn users(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = broker::auth::users_file::UsersFile::parse(text);
    }
}
