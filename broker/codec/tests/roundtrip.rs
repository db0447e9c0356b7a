//! Property tests: arbitrary valid packets round-trip through the codec at
//! each protocol version, and arbitrary bytes never make the decoder panic
//! or grow its buffer beyond the maximum packet size.
//!
//! The strategies generate only what each version can carry: no properties
//! and (almost) no reason codes in 3.1 / 3.1.1, `packet_id` `Some` exactly
//! for QoS 1 and 2, non-empty wildcard-free topic names (empty only with a
//! topic alias in 5.0), valid topic filters, strings without U+0000, and the
//! value ranges the 5.0 properties allow.
#![allow(clippy::unwrap_used)]

mod common;

use common::pid;
use mqtt_codec::ProtocolVersion::{self, V3_1, V3_1_1, V5};
use mqtt_codec::bytes::{BufMut, Bytes, BytesMut};
use mqtt_codec::bytestring::ByteString;
use mqtt_codec::reason::{
    AUTH_REASONS, CONNACK_REASONS, DISCONNECT_REASONS, PUBACK_REASONS, PUBREL_REASONS, SUBACK_REASONS, UNSUBACK_REASONS,
};
use mqtt_codec::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties, Decoder, Disconnect,
    DisconnectProperties, Packet, PubResponse, Publish, PublishProperties, QoS, ReasonCode, RetainHandling, SubAck,
    Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck, Unsubscribe, UserProperty, Will, WillProperties,
    decode_packet, encode, encoded_len,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::BoxedStrategy;

const MAX: u32 = 1 << 20;

// ---------------------------------------------------------------------------
// Strings, topics, filters
// ---------------------------------------------------------------------------

/// Any character but U+0000 (and, in topic levels, the separators and wildcards),
/// biased towards ASCII.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range('a', 'z'),
        1 => proptest::char::range('0', '9'),
        1 => select(vec!['-', '_', ' ', '.', '$', '/', '+', '#']),
        2 => any::<char>(),
    ]
    .prop_filter("no U+0000", |c| *c != '\0')
}

fn text(max: usize) -> impl Strategy<Value = String> {
    vec(any_char(), 0..=max).prop_map(|cs| cs.into_iter().collect())
}

fn bs(x: String) -> ByteString {
    ByteString::from(x)
}

fn string(max: usize) -> impl Strategy<Value = ByteString> {
    text(max).prop_map(bs)
}

fn binary(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    vec((string(8), string(8)), 0..3)
}

/// One topic level: no '/', '+', '#' (may be empty).
fn level() -> impl Strategy<Value = String> {
    text(6).prop_map(|l| l.chars().filter(|c| !matches!(c, '/' | '+' | '#')).collect())
}

/// A valid topic name: at least one character, no wildcards.
fn topic_name() -> impl Strategy<Value = ByteString> {
    vec(level(), 1..4).prop_map(|ls| ls.join("/")).prop_filter("non-empty", |t| !t.is_empty()).prop_map(bs)
}

/// A valid non-shared topic filter.
fn plain_filter() -> impl Strategy<Value = String> {
    let lvl = prop_oneof![3 => level(), 1 => Just("+".to_owned())];
    (vec(lvl, 0..4), any::<bool>())
        .prop_map(|(mut ls, hash)| {
            if hash || ls.is_empty() {
                ls.push("#".to_owned());
            }
            ls.join("/")
        })
        .prop_filter("non-empty", |f| !f.is_empty())
        .prop_filter("not a malformed shared filter", |f| !f.starts_with("$share"))
}

/// A valid topic filter, sometimes a shared subscription.
fn filter() -> impl Strategy<Value = ByteString> {
    let group = vec(proptest::char::range('a', 'z'), 1..5).prop_map(|cs| cs.into_iter().collect::<String>());
    prop_oneof![
        4 => plain_filter(),
        1 => (group, plain_filter()).prop_map(|(g, f)| format!("$share/{g}/{f}")),
    ]
    .prop_map(bs)
}

fn packet_id() -> impl Strategy<Value = mqtt_codec::PacketId> {
    (1..=u16::MAX).prop_map(pid)
}

fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn reason(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    select(codes).prop_map(ReasonCode)
}

fn subscription_identifier() -> impl Strategy<Value = u32> {
    prop_oneof![1..=127u32, 128..=16_383u32, 1..=268_435_455u32]
}

// ---------------------------------------------------------------------------
// Packets
// ---------------------------------------------------------------------------

fn will(v: ProtocolVersion) -> impl Strategy<Value = Will> {
    let props: BoxedStrategy<WillProperties> = if v.is_v5() {
        (
            option::of(any::<u32>()),
            option::of(0..=1u8),
            option::of(any::<u32>()),
            option::of(string(8)),
            option::of(topic_name()),
            option::of(binary(8)),
            user_properties(),
        )
            .prop_map(|(delay, pfi, expiry, ct, rt, cd, up)| WillProperties {
                will_delay_interval: delay,
                payload_format_indicator: pfi,
                message_expiry_interval: expiry,
                content_type: ct,
                response_topic: rt,
                correlation_data: cd,
                user_properties: up,
            })
            .boxed()
    } else {
        Just(WillProperties::default()).boxed()
    };
    (topic_name(), binary(16), text(16), qos(), any::<bool>(), props).prop_map(
        |(topic, bin, txt, qos, retain, properties)| {
            // A payload announced as UTF-8 is UTF-8.
            let payload = if properties.payload_format_indicator == Some(1) { Bytes::from(txt) } else { bin };
            Will { topic, payload, qos, retain, properties }
        },
    )
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        option::of(any::<u32>()),
        option::of(1..=u16::MAX),
        option::of(1..=u32::MAX),
        option::of(any::<u16>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        user_properties(),
        option::of((string(8), option::of(binary(8)))),
    )
        .prop_map(|(sei, rm, mps, tam, rri, rpi, up, auth)| ConnectProperties {
            session_expiry_interval: sei,
            receive_maximum: rm,
            maximum_packet_size: mps,
            topic_alias_maximum: tam,
            request_response_information: rri,
            request_problem_information: rpi,
            user_properties: up,
            // Authentication data only with a method (3.1.2.11.10).
            authentication_method: auth.as_ref().map(|(m, _)| m.clone()),
            authentication_data: auth.and_then(|(_, d)| d),
        })
}

fn connect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    // MQTT 3.1 client identifiers are 1 to 23 characters, passwords strings.
    let client_id: BoxedStrategy<ByteString> =
        if v == V3_1 { "[0-9a-zA-Z]{1,23}".prop_map(bs).boxed() } else { string(23).boxed() };
    let password: BoxedStrategy<Bytes> =
        if v == V3_1 { "[ -~]{0,12}".prop_map(Bytes::from).boxed() } else { binary(12).boxed() };
    let props: BoxedStrategy<ConnectProperties> =
        if v.is_v5() { connect_properties().boxed() } else { Just(ConnectProperties::default()).boxed() };
    (client_id, any::<bool>(), any::<u16>(), option::of(will(v)), option::of(string(10)), option::of(password), props)
        .prop_map(move |(client_id, clean, keep_alive, will, username, password, properties)| {
            // 3.1.1 [MQTT-3.1.3-7]: an empty client id needs a clean session.
            let clean_start = clean || (v == V3_1_1 && client_id.is_empty());
            // Before 5.0 a password needs a user name ([MQTT-3.1.2-22]).
            let password = if v.is_v5() || username.is_some() { password } else { None };
            Packet::Connect(Box::new(Connect {
                protocol: v,
                clean_start,
                keep_alive,
                client_id,
                will,
                username,
                password,
                properties,
            }))
        })
}

fn connack(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props: BoxedStrategy<ConnAckProperties> = if v.is_v5() {
        let a = (
            option::of(any::<u32>()),
            option::of(1..=u16::MAX),
            option::of(select(vec![QoS::AtMostOnce, QoS::AtLeastOnce])),
            option::of(any::<bool>()),
            option::of(1..=u32::MAX),
            option::of(string(8)),
            option::of(any::<u16>()),
            option::of(string(8)),
        );
        let b = (
            user_properties(),
            option::of(any::<bool>()),
            option::of(any::<bool>()),
            option::of(any::<bool>()),
            option::of(any::<u16>()),
            option::of(string(8)),
            option::of(string(8)),
            option::of((string(8), option::of(binary(8)))),
        );
        (a, b)
            .prop_map(|((sei, rm, mq, ra, mps, aci, tam, rs), (up, wsa, sia, ssa, ska, ri, sr, auth))| {
                ConnAckProperties {
                    session_expiry_interval: sei,
                    receive_maximum: rm,
                    maximum_qos: mq,
                    retain_available: ra,
                    maximum_packet_size: mps,
                    assigned_client_identifier: aci,
                    topic_alias_maximum: tam,
                    reason_string: rs,
                    user_properties: up,
                    wildcard_subscription_available: wsa,
                    subscription_identifiers_available: sia,
                    shared_subscription_available: ssa,
                    server_keep_alive: ska,
                    response_information: ri,
                    server_reference: sr,
                    authentication_method: auth.as_ref().map(|(m, _)| m.clone()),
                    authentication_data: auth.and_then(|(_, d)| d),
                }
            })
            .boxed()
    } else {
        Just(ConnAckProperties::default()).boxed()
    };
    // 3.1 / 3.1.1: the reason codes that have a return code of their own.
    let codes: &'static [u8] = if v.is_v5() { CONNACK_REASONS } else { &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87] };
    (any::<bool>(), reason(codes), props).prop_map(move |(sp, reason_code, properties)| {
        Packet::ConnAck(ConnAck {
            // 3.1 has no session present flag; none with an error ([MQTT-3.2.2-4], [MQTT-3.2.2-6]).
            session_present: sp && v != V3_1 && !reason_code.is_error(),
            reason_code,
            properties,
        })
    })
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        option::of(0..=1u8),
        option::of(any::<u32>()),
        option::of(1..=u16::MAX),
        option::of(topic_name()),
        option::of(binary(8)),
        user_properties(),
        vec(subscription_identifier(), 0..3),
        option::of(string(8)),
    )
        .prop_map(|(pfi, mei, ta, rt, cd, up, si, ct)| PublishProperties {
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            topic_alias: ta,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
            subscription_identifiers: si,
            content_type: ct,
        })
}

fn publish(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props: BoxedStrategy<PublishProperties> =
        if v.is_v5() { publish_properties().boxed() } else { Just(PublishProperties::default()).boxed() };
    (qos(), any::<bool>(), any::<bool>(), topic_name(), any::<bool>(), packet_id(), binary(64), text(16), props)
        .prop_map(|(qos, dup, retain, topic, empty_topic, id, bin, txt, properties)| {
            let qos0 = qos == QoS::AtMostOnce;
            // 5.0: the topic may be empty when a topic alias stands for it.
            let topic = if empty_topic && properties.topic_alias.is_some() { ByteString::new() } else { topic };
            let payload = if properties.payload_format_indicator == Some(1) { Bytes::from(txt) } else { bin };
            Packet::Publish(Publish {
                dup: dup && !qos0, // [MQTT-3.3.1-2]
                qos,
                retain,
                topic,
                packet_id: (!qos0).then_some(id),
                payload,
                properties,
            })
        })
}

fn ack_properties(v: ProtocolVersion) -> BoxedStrategy<AckProperties> {
    if v.is_v5() {
        (option::of(string(10)), user_properties())
            .prop_map(|(reason_string, user_properties)| AckProperties { reason_string, user_properties })
            .boxed()
    } else {
        Just(AckProperties::default()).boxed()
    }
}

fn pub_response(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (0..4usize, packet_id(), select(PUBACK_REASONS), select(PUBREL_REASONS), ack_properties(v)).prop_map(
        move |(kind, packet_id, ack_reason, rel_reason, properties)| {
            let code = if !v.is_v5() {
                0x00
            } else if kind < 2 {
                ack_reason
            } else {
                rel_reason
            };
            let r = PubResponse { packet_id, reason_code: ReasonCode(code), properties };
            match kind {
                0 => Packet::PubAck(r),
                1 => Packet::PubRec(r),
                2 => Packet::PubRel(r),
                _ => Packet::PubComp(r),
            }
        },
    )
}

fn subscription_options(v: ProtocolVersion) -> impl Strategy<Value = SubscriptionOptions> {
    let rh =
        select(vec![RetainHandling::SendAtSubscribe, RetainHandling::SendAtSubscribeIfNew, RetainHandling::DoNotSend]);
    (qos(), any::<bool>(), any::<bool>(), rh).prop_map(move |(qos, no_local, rap, retain_handling)| {
        if v.is_v5() {
            SubscriptionOptions { qos, no_local, retain_as_published: rap, retain_handling }
        } else {
            SubscriptionOptions { qos, ..SubscriptionOptions::default() }
        }
    })
}

fn subscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props: BoxedStrategy<SubscribeProperties> = if v.is_v5() {
        (option::of(subscription_identifier()), user_properties())
            .prop_map(|(subscription_identifier, user_properties)| SubscribeProperties {
                subscription_identifier,
                user_properties,
            })
            .boxed()
    } else {
        Just(SubscribeProperties::default()).boxed()
    };
    (packet_id(), vec((filter(), subscription_options(v)), 1..5), props).prop_map(|(packet_id, filters, properties)| {
        let filters = filters
            .into_iter()
            .map(|(f, mut o)| {
                // [MQTT-3.8.3-4] no No Local on a shared subscription.
                if f.starts_with("$share/") {
                    o.no_local = false;
                }
                (f, o)
            })
            .collect();
        Packet::Subscribe(Subscribe { packet_id, filters, properties })
    })
}

fn suback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes: &'static [u8] = match v {
        V3_1 => &[0x00, 0x01, 0x02],
        V3_1_1 => &[0x00, 0x01, 0x02, 0x80],
        V5 => SUBACK_REASONS,
    };
    (packet_id(), vec(reason(codes), 1..6), ack_properties(v)).prop_map(|(packet_id, reason_codes, properties)| {
        Packet::SubAck(SubAck { packet_id, reason_codes, properties })
    })
}

fn unsubscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let up: BoxedStrategy<Vec<UserProperty>> = if v.is_v5() { user_properties().boxed() } else { Just(vec![]).boxed() };
    (packet_id(), vec(filter(), 1..5), up).prop_map(|(packet_id, filters, user_properties)| {
        Packet::Unsubscribe(Unsubscribe { packet_id, filters, user_properties })
    })
}

fn unsuback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = if v.is_v5() { 1..6 } else { 0..1 };
    (packet_id(), vec(reason(UNSUBACK_REASONS), codes), ack_properties(v)).prop_map(
        |(packet_id, reason_codes, properties)| Packet::UnsubAck(UnsubAck { packet_id, reason_codes, properties }),
    )
}

fn disconnect(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    if !v.is_v5() {
        return Just(Packet::Disconnect(Disconnect::default())).boxed();
    }
    (
        reason(DISCONNECT_REASONS),
        option::of(any::<u32>()),
        option::of(string(10)),
        user_properties(),
        option::of(string(10)),
    )
        .prop_map(|(reason_code, sei, rs, up, sr)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties: DisconnectProperties {
                    session_expiry_interval: sei,
                    reason_string: rs,
                    user_properties: up,
                    server_reference: sr,
                },
            })
        })
        .boxed()
}

fn auth() -> impl Strategy<Value = Packet> {
    prop_oneof![
        1 => Just(Packet::Auth(Auth::default())),
        4 => (reason(AUTH_REASONS), string(8), option::of(binary(8)), option::of(string(8)), user_properties()).prop_map(
            |(reason_code, method, data, rs, up)| {
                Packet::Auth(Auth {
                    reason_code,
                    properties: AuthProperties {
                        // The method is required in an AUTH with properties (3.15.2.2.2).
                        authentication_method: Some(method),
                        authentication_data: data,
                        reason_string: rs,
                        user_properties: up,
                    },
                })
            }
        ),
    ]
}

/// Any valid packet of version `v`.
fn packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        connect(v),
        connack(v),
        publish(v),
        publish(v),
        pub_response(v),
        subscribe(v),
        suback(v),
        unsubscribe(v),
        unsuback(v),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(v),
    ];
    if v.is_v5() { prop_oneof![11 => common, 1 => auth()].boxed() } else { common.boxed() }
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    select(vec![V3_1, V3_1_1, V5])
}

// ---------------------------------------------------------------------------
// Round trip
// ---------------------------------------------------------------------------

fn frame_version(p: &Packet, v: ProtocolVersion) -> Option<ProtocolVersion> {
    if matches!(p, Packet::Connect(_)) { None } else { Some(v) }
}

fn round_trip(v: ProtocolVersion, p: &Packet) -> Result<(), TestCaseError> {
    let len = encoded_len(p, v).map_err(|e| TestCaseError::fail(format!("encoded_len: {e}")))?;
    let mut buf = BytesMut::new();
    let written = encode(p, v, &mut buf).map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
    prop_assert_eq!(written, len, "encoded_len disagrees with encode");
    prop_assert_eq!(buf.len(), written);
    let bytes = buf.freeze();

    let decoded = decode_packet(frame_version(p, v), bytes.clone())
        .map_err(|e| TestCaseError::fail(format!("decode of {:02X?}: {e:?}", &bytes[..])))?;
    prop_assert_eq!(&decoded, p);

    // Re-encoding the decoded value gives the same bytes.
    let mut again = BytesMut::new();
    encode(&decoded, v, &mut again).unwrap();
    prop_assert_eq!(&again[..], &bytes[..]);

    // The stream decoder agrees.
    let mut dec = if matches!(p, Packet::Connect(_)) { Decoder::new(MAX) } else { Decoder::with_version(v, MAX) };
    let mut stream = BytesMut::from(&bytes[..]);
    prop_assert_eq!(dec.decode(&mut stream).unwrap(), Some(p.clone()));
    prop_assert!(stream.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn v31_packets_round_trip(p in packet(V3_1)) {
        round_trip(V3_1, &p)?;
    }

    #[test]
    fn v311_packets_round_trip(p in packet(V3_1_1)) {
        round_trip(V3_1_1, &p)?;
    }

    #[test]
    fn v5_packets_round_trip(p in packet(V5)) {
        round_trip(V5, &p)?;
    }

    #[test]
    fn v5_publish_round_trips(p in publish(V5)) {
        round_trip(V5, &p)?;
    }

    #[test]
    fn v5_connect_round_trips(p in connect(V5)) {
        round_trip(V5, &p)?;
    }

    /// Several packets back to back, cut into arbitrary chunks, come out whole and in order.
    #[test]
    fn a_stream_of_packets_decodes_in_order_whatever_the_chunking(
        v in version(),
        cuts in vec(1..40usize, 1..50),
    ) {
        let packets: Vec<Packet> = sample_packets(v);
        let mut wire = BytesMut::new();
        for p in &packets {
            encode(p, v, &mut wire).unwrap();
        }
        let mut dec = Decoder::with_version(v, MAX);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut at = 0;
        let mut cuts = cuts.into_iter().cycle();
        while at < wire.len() {
            let end = (at + cuts.next().unwrap()).min(wire.len());
            buf.put_slice(&wire[at..end]);
            at = end;
            while let Some(p) = dec.decode(&mut buf).unwrap() {
                out.push(p);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, packets);
    }
}

/// A fixed mix of packets for the chunking test.
fn sample_packets(v: ProtocolVersion) -> Vec<Packet> {
    let mut publish = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: ByteString::from_static("a/b"),
        packet_id: Some(pid(7)),
        payload: Bytes::from(vec![0x55; 300]),
        properties: PublishProperties::default(),
    };
    if v.is_v5() {
        publish.properties.message_expiry_interval = Some(9);
        publish.properties.user_properties = vec![(ByteString::from_static("k"), ByteString::from_static("v"))];
    }
    vec![
        Packet::PingReq,
        Packet::Publish(publish),
        Packet::PubAck(PubResponse::new(pid(7))),
        Packet::Subscribe(Subscribe {
            packet_id: pid(8),
            filters: vec![(ByteString::from_static("x/+"), SubscriptionOptions::default())],
            properties: SubscribeProperties::default(),
        }),
        Packet::PingResp,
        Packet::Disconnect(Disconnect::default()),
    ]
}

// ---------------------------------------------------------------------------
// Arbitrary input
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Mode {
    Server,
    Client(ProtocolVersion),
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Server), version().prop_map(Mode::Client)]
}

fn decoder(mode: Mode, max: u32) -> Decoder {
    match mode {
        Mode::Server => Decoder::new(max),
        Mode::Client(v) => Decoder::with_version(v, max),
    }
}

/// Decodes everything `buf` holds; stops at the first error. Whatever
/// decodes must be a valid packet: it encodes, and decodes back to itself.
fn drain(dec: &mut Decoder, buf: &mut BytesMut) -> Result<bool, TestCaseError> {
    for _ in 0..10_000 {
        let before = buf.len();
        match dec.decode(buf) {
            Ok(Some(p)) => {
                prop_assert!(buf.len() < before, "a decoded packet consumes bytes");
                let v = dec.version().expect("a decoded packet implies a known version");
                let mut out = BytesMut::new();
                let n = encode(&p, v, &mut out).map_err(|e| TestCaseError::fail(format!("re-encode {p:?}: {e}")))?;
                prop_assert_eq!(n, encoded_len(&p, v).unwrap());
                let back = decode_packet(frame_version(&p, v), out.freeze())
                    .map_err(|e| TestCaseError::fail(format!("re-decode {p:?}: {e:?}")))?;
                prop_assert_eq!(back, p);
            }
            Ok(None) => return Ok(true),
            Err(_) => return Ok(false),
        }
    }
    Err(TestCaseError::fail("decoder made no progress"))
}

/// Valid packets with a few bytes changed, inserted, removed or cut.
fn mutated_packet() -> impl Strategy<Value = (ProtocolVersion, Vec<u8>)> {
    (version(), vec((any::<prop::sample::Index>(), any::<u8>(), 0..4u8), 0..4))
        .prop_flat_map(|(v, edits)| (Just(v), packet(v), Just(edits)))
        .prop_map(|(v, p, edits)| {
            let mut bytes = BytesMut::new();
            encode(&p, v, &mut bytes).unwrap();
            let mut bytes = bytes.to_vec();
            for (at, byte, op) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match op {
                    0 => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    2 => {
                        bytes.remove(i);
                    }
                    _ => bytes.truncate(i),
                }
            }
            (v, bytes)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(mode in mode(), bytes in vec(any::<u8>(), 0..300)) {
        let mut dec = decoder(mode, MAX);
        let mut buf = BytesMut::from(&bytes[..]);
        drain(&mut dec, &mut buf)?;
        let _ = decode_packet(None, Bytes::from(bytes.clone()));
        for v in [V3_1, V3_1_1, V5] {
            let _ = decode_packet(Some(v), Bytes::from(bytes.clone()));
        }
    }

    #[test]
    fn arbitrary_bytes_in_random_chunks_never_panic_the_decoder(
        mode in mode(),
        bytes in vec(any::<u8>(), 0..400),
        cuts in vec(1..32usize, 1..20),
    ) {
        let mut dec = decoder(mode, MAX);
        let mut buf = BytesMut::new();
        let mut at = 0;
        let mut cuts = cuts.into_iter().cycle();
        while at < bytes.len() {
            let end = (at + cuts.next().unwrap()).min(bytes.len());
            buf.put_slice(&bytes[at..end]);
            at = end;
            if !drain(&mut dec, &mut buf)? {
                break;
            }
        }
    }

    #[test]
    fn packet_like_bytes_never_panic_and_whatever_decodes_round_trips(
        (v, bytes) in mutated_packet(),
        server in any::<bool>(),
        cut in 1..16usize,
    ) {
        let modes = if server { vec![Mode::Server, Mode::Client(v)] } else { vec![Mode::Client(v)] };
        for mode in modes {
            // Whole.
            let mut dec = decoder(mode, MAX);
            let mut buf = BytesMut::from(&bytes[..]);
            drain(&mut dec, &mut buf)?;
            // In chunks of `cut` bytes.
            let mut dec = decoder(mode, MAX);
            let mut buf = BytesMut::new();
            for chunk in bytes.chunks(cut) {
                buf.put_slice(chunk);
                if !drain(&mut dec, &mut buf)? {
                    break;
                }
            }
        }
        let _ = decode_packet(Some(v), Bytes::from(bytes.clone()));
        let _ = decode_packet(None, Bytes::from(bytes));
    }

    /// The decoder never reserves room for more than the maximum packet size:
    /// over arbitrary input the buffer stays within max(maximum packet size,
    /// initial capacity), give or take `Vec`-style doubling and slack.
    #[test]
    fn the_buffer_never_grows_past_the_maximum_packet_size(
        mode in mode(),
        max in 2..1024u32,
        initial in 0..256usize,
        bytes in vec(any::<u8>(), 0..512),
        cuts in vec(1..16usize, 1..20),
        big_header in any::<bool>(),
    ) {
        let mut input = bytes;
        if big_header {
            // Announce a huge packet up front: PUBLISH or CONNECT of 268,435,455 bytes.
            let first = if matches!(mode, Mode::Server) { 0x10 } else { 0x30 };
            input.splice(0..0, [first, 0xFF, 0xFF, 0xFF, 0x7F]);
        }
        let mut dec = decoder(mode, max);
        let mut buf = BytesMut::with_capacity(initial);
        let bound = 2 * (max as usize).max(initial).max(input.len()) + 64;
        let mut at = 0;
        let mut cuts = cuts.into_iter().cycle();
        while at < input.len() {
            let end = (at + cuts.next().unwrap()).min(input.len());
            buf.put_slice(&input[at..end]);
            at = end;
            let before = buf.capacity();
            let alive = drain(&mut dec, &mut buf)?;
            // What decode itself may add: room for one packet of at most `max` bytes.
            prop_assert!(
                buf.capacity() <= before.max(2 * max as usize + 64),
                "decode grew the buffer from {} to {} with max {}", before, buf.capacity(), max
            );
            prop_assert!(buf.capacity() <= bound, "capacity {} over {}", buf.capacity(), bound);
            if !alive {
                break;
            }
        }
    }
}

#[test]
fn the_same_packet_at_each_version_has_each_versions_size() {
    // A sanity check on the strategies' premise: a v5-only field changes only v5 sizes.
    let mut p = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: ByteString::from_static("t"),
        packet_id: None,
        payload: Bytes::new(),
        properties: PublishProperties::default(),
    };
    let base = Packet::Publish(p.clone());
    p.properties.user_properties = vec![(ByteString::from_static("k"), ByteString::from_static("v"))];
    let with_props = Packet::Publish(p);
    for v in [V3_1, V3_1_1] {
        assert_eq!(encoded_len(&base, v).unwrap(), encoded_len(&with_props, v).unwrap());
    }
    assert_eq!(encoded_len(&base, V5).unwrap() + 7, encoded_len(&with_props, V5).unwrap());
}

// ---------------------------------------------------------------------------
// The strategies themselves
// ---------------------------------------------------------------------------

fn sample<T: std::fmt::Debug>(strategy: impl Strategy<Value = T>, n: usize) -> Vec<T> {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    (0..n).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect()
}

#[test]
fn the_strategies_cover_every_packet_type_of_each_version() {
    for v in [V3_1, V3_1_1, V5] {
        let names: std::collections::BTreeSet<&str> = sample(packet(v), 3000).iter().map(Packet::name).collect();
        let mut expected = vec![
            "CONNECT",
            "CONNACK",
            "PUBLISH",
            "PUBACK",
            "PUBREC",
            "PUBREL",
            "PUBCOMP",
            "SUBSCRIBE",
            "SUBACK",
            "UNSUBSCRIBE",
            "UNSUBACK",
            "PINGREQ",
            "PINGRESP",
            "DISCONNECT",
        ];
        if v.is_v5() {
            expected.push("AUTH");
        }
        assert_eq!(names, expected.into_iter().collect(), "packet types generated for {v}");
    }
}

#[test]
fn the_v5_strategies_reach_the_interesting_cases() {
    let publishes: Vec<Publish> = sample(publish(V5), 2000)
        .into_iter()
        .filter_map(|p| if let Packet::Publish(p) = p { Some(p) } else { None })
        .collect();
    assert!(publishes.iter().any(|p| p.topic.is_empty()), "empty topic with alias");
    assert!(publishes.iter().any(|p| p.properties.subscription_identifiers.len() > 1));
    assert!(publishes.iter().any(|p| p.properties.user_properties.len() > 1));
    assert!(publishes.iter().any(|p| !p.topic.is_ascii()));
    assert!(publishes.iter().any(|p| p.qos == QoS::ExactlyOnce && p.dup));
    let subscribes: Vec<Subscribe> = sample(subscribe(V5), 2000)
        .into_iter()
        .filter_map(|p| if let Packet::Subscribe(s) = p { Some(s) } else { None })
        .collect();
    let filters: Vec<&(ByteString, SubscriptionOptions)> = subscribes.iter().flat_map(|s| &s.filters).collect();
    assert!(filters.iter().any(|(f, _)| f.starts_with("$share/")));
    assert!(filters.iter().any(|(f, _)| f.ends_with('#')));
    assert!(filters.iter().any(|(f, _)| f.contains('+')));
    assert!(filters.iter().any(|(_, o)| o.no_local && o.retain_as_published));
    assert!(filters.iter().any(|(_, o)| o.retain_handling == RetainHandling::DoNotSend));
}

#[test]
fn mutated_packets_both_decode_and_fail() {
    // Guards the "whatever decodes round-trips" property against being vacuous.
    let (mut ok, mut err) = (0, 0);
    for (v, bytes) in sample(mutated_packet(), 2000) {
        match decode_packet(Some(v), Bytes::from(bytes)) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    assert!(ok > 100 && err > 100, "{ok} decoded, {err} rejected");
}
