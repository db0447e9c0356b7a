//! Byte-exact wire vectors, written by hand from the layouts of the MQTT 3.1,
//! 3.1.1 and 5.0 specifications (one comment per field), checked in both
//! directions: `encode(packet) == bytes` and `decode(bytes) == packet`.
//!
//! The specification does not fix the order of properties inside a property
//! block, so vectors with several properties go through [`check`] with the
//! blocks compared modulo property order (stable: the relative order of
//! repeated properties, e.g. user properties, must be kept, as MQTT 5
//! 3.1.2.11.8 requires). Every other byte is compared exactly.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_vector_is_self_consistent, b, cat, pid, read_varint, s, up};
use mqtt_codec::ProtocolVersion::{V3_1, V3_1_1, V5};
use mqtt_codec::bytes::{BufMut, Bytes, BytesMut};
use mqtt_codec::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties, DecodeError, Decoder,
    Disconnect, DisconnectProperties, EncodeError, Packet, ProtocolVersion, PubResponse, Publish, PublishProperties,
    QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck,
    Unsubscribe, Will, WillProperties, decode_packet, encode, encoded_len,
};

const MAX: u32 = 1 << 20;

// ---------------------------------------------------------------------------
// The data-driven helpers
// ---------------------------------------------------------------------------

/// Checks both directions: encode(packet) == bytes and decode(bytes) == packet.
fn check(version: ProtocolVersion, packet: Packet, bytes: &[u8]) {
    check_encode(version, &packet, bytes);
    check_decode(version, packet, bytes);
}

/// Checks `encoded_len` and `encode` only (for packets whose v5-only fields
/// the older layouts drop, or whose reason code maps many-to-one).
fn check_encode(version: ProtocolVersion, packet: &Packet, bytes: &[u8]) {
    assert_vector_is_self_consistent(bytes);
    let name = packet.name();
    assert_eq!(encoded_len(packet, version).unwrap(), bytes.len(), "encoded_len of {name} at {version}");
    let mut buf = BytesMut::new();
    let written = encode(packet, version, &mut buf).unwrap();
    assert_eq!(written, bytes.len(), "bytes written for {name} at {version}");
    if version.is_v5() {
        assert_eq!(
            hex(&canonical(&buf)),
            hex(&canonical(bytes)),
            "encoding of {name} at {version} (property order ignored)\n  actual:   {}\n  expected: {}",
            hex(&buf),
            hex(bytes)
        );
    } else {
        assert_eq!(hex(&buf), hex(bytes), "encoding of {name} at {version}");
    }

    // encode appends to what the buffer already holds.
    let mut buf = BytesMut::from(&b"prefix"[..]);
    let written = encode(packet, version, &mut buf).unwrap();
    assert_eq!(written, bytes.len());
    assert_eq!(&buf[..6], b"prefix");
    assert_eq!(buf.len(), 6 + bytes.len());
}

/// Checks decoding only, through `decode_packet` and through `Decoder`
/// (whole buffer, byte by byte, and followed by more packets).
fn check_decode(version: ProtocolVersion, packet: Packet, bytes: &[u8]) {
    assert_vector_is_self_consistent(bytes);
    let is_connect = matches!(packet, Packet::Connect(_));
    let frame_version = if is_connect { None } else { Some(version) };
    let decoder = || {
        if is_connect { Decoder::new(MAX) } else { Decoder::with_version(version, MAX) }
    };

    assert_eq!(
        decode_packet(frame_version, Bytes::copy_from_slice(bytes)).unwrap(),
        packet,
        "decode_packet of {} at {version}",
        packet.name()
    );

    // The whole packet at once.
    let mut dec = decoder();
    let mut buf = BytesMut::from(bytes);
    assert_eq!(dec.decode(&mut buf).unwrap(), Some(packet.clone()));
    assert!(buf.is_empty(), "the decoder consumes exactly one packet");
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    if is_connect {
        assert_eq!(dec.version(), Some(version), "CONNECT fixes the decoder's version");
    }

    // Incrementally: nothing until the last byte arrives.
    let mut dec = decoder();
    let mut buf = BytesMut::new();
    let step = if bytes.len() > 2048 { 1000 } else { 1 };
    let mut fed = 0;
    while fed < bytes.len() {
        let end = (fed + step).min(bytes.len());
        buf.put_slice(&bytes[fed..end]);
        fed = end;
        let got = dec.decode(&mut buf).unwrap();
        if fed < bytes.len() {
            assert_eq!(got, None, "a packet is not complete before its last byte ({fed} of {})", bytes.len());
        } else {
            assert_eq!(got, Some(packet.clone()));
        }
    }
    assert!(buf.is_empty());

    // Twice back to back, then the first byte of a third copy.
    if !is_connect {
        let mut dec = decoder();
        let mut buf = BytesMut::new();
        buf.put_slice(bytes);
        buf.put_slice(bytes);
        buf.put_slice(&bytes[..1]);
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(packet.clone()));
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(packet.clone()));
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert_eq!(&buf[..], &bytes[..1], "a partial packet stays in the buffer");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
}

/// The offsets of the property-length fields of an MQTT 5 packet.
fn property_blocks(bytes: &[u8]) -> Vec<usize> {
    let (rl, used) = read_varint(bytes, 1);
    let hdr = 1 + used;
    let u16_at = |at: usize| usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
    match bytes[0] >> 4 {
        1 => {
            // CONNECT: protocol name, level, flags, keep alive, properties,
            // client id, will properties.
            let mut pos = hdr + 2 + u16_at(hdr);
            pos += 1; // level
            let flags = bytes[pos];
            pos += 1 + 2; // flags, keep alive
            let mut out = vec![pos];
            let (len, n) = read_varint(bytes, pos);
            pos += n + len;
            pos += 2 + u16_at(pos); // client id
            if flags & 0x04 != 0 {
                out.push(pos);
            }
            out
        }
        2 if rl > 2 => vec![hdr + 2],
        3 => {
            let qos = (bytes[0] >> 1) & 3;
            let mut pos = hdr + 2 + u16_at(hdr);
            if qos > 0 {
                pos += 2;
            }
            vec![pos]
        }
        4..=7 if rl >= 4 => vec![hdr + 3],
        8..=11 => vec![hdr + 2],
        14 | 15 if rl >= 2 => vec![hdr + 1],
        _ => vec![],
    }
}

/// The packet with each property block's properties stably sorted by identifier.
fn canonical(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for at in property_blocks(bytes) {
        let (len, n) = read_varint(bytes, at);
        let start = at + n;
        let block = &bytes[start..start + len];
        let mut props: Vec<&[u8]> = Vec::new();
        let mut pos = 0;
        while pos < block.len() {
            let id = block[pos];
            let str_len = |at: usize| 2 + usize::from(u16::from_be_bytes([block[at], block[at + 1]]));
            let size = 1 + match id {
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => 1,
                0x13 | 0x21 | 0x22 | 0x23 => 2,
                0x02 | 0x11 | 0x18 | 0x27 => 4,
                0x0B => read_varint(block, pos + 1).1,
                0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => str_len(pos + 1),
                0x26 => {
                    let k = str_len(pos + 1);
                    k + str_len(pos + 1 + k)
                }
                other => panic!("unknown property identifier 0x{other:02X} in {}", hex(bytes)),
            };
            props.push(&block[pos..pos + size]);
            pos += size;
        }
        assert_eq!(pos, block.len(), "property block overruns its length in {}", hex(bytes));
        props.sort_by_key(|p| p[0]);
        out[start..start + len].copy_from_slice(&props.concat());
    }
    out
}

// ---------------------------------------------------------------------------
// Packet builders
// ---------------------------------------------------------------------------

fn connect(protocol: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: s(client_id),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

fn publish(qos: QoS, packet_id: Option<u16>, topic: &str, payload: &[u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: s(topic),
        packet_id: packet_id.map(pid),
        payload: b(payload),
        properties: PublishProperties::default(),
    }
}

fn opts(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions { qos, ..SubscriptionOptions::default() }
}

fn connack(session_present: bool, reason: u8) -> Packet {
    Packet::ConnAck(ConnAck {
        session_present,
        reason_code: ReasonCode(reason),
        properties: ConnAckProperties::default(),
    })
}

fn resp(reason: u8, properties: AckProperties) -> PubResponse {
    PubResponse { packet_id: pid(10), reason_code: ReasonCode(reason), properties }
}

const OLD: [ProtocolVersion; 2] = [V3_1, V3_1_1];
const ALL: [ProtocolVersion; 3] = [V3_1, V3_1_1, V5];

// ---------------------------------------------------------------------------
// CONNECT
// ---------------------------------------------------------------------------

#[test]
#[rustfmt::skip]
fn connect_v311_minimal_with_clean_session() {
    let bytes = cat(&[
        &[0x10, 0x0F],             // CONNECT, remaining length 15
        &[0x00, 0x04],             // protocol name length
        b"MQTT",                   // protocol name
        &[0x04],                   // protocol level 4
        &[0x02],                   // connect flags: clean session
        &[0x00, 0x3C],             // keep alive 60
        &[0x00, 0x03],             // client identifier length
        b"abc",                    // client identifier
    ]);
    check(V3_1_1, Packet::Connect(Box::new(connect(V3_1_1, "abc"))), &bytes);
}

#[test]
#[rustfmt::skip]
fn connect_v31_uses_protocol_name_mqisdp_and_level_3() {
    let bytes = cat(&[
        &[0x10, 0x11],             // CONNECT, remaining length 17
        &[0x00, 0x06],             // protocol name length
        b"MQIsdp",                 // protocol name of MQTT 3.1
        &[0x03],                   // protocol level 3
        &[0x02],                   // connect flags: clean session
        &[0x00, 0x3C],             // keep alive 60
        &[0x00, 0x03],             // client identifier length
        b"abc",                    // client identifier
    ]);
    check(V3_1, Packet::Connect(Box::new(connect(V3_1, "abc"))), &bytes);
}

#[test]
#[rustfmt::skip]
fn connect_v311_without_clean_session_and_zero_keep_alive() {
    let mut c = connect(V3_1_1, "dev-7");
    c.clean_start = false;
    c.keep_alive = 0;
    let bytes = cat(&[
        &[0x10, 0x11],             // CONNECT, remaining length 17
        &[0x00, 0x04], b"MQTT",    // protocol name
        &[0x04],                   // protocol level 4
        &[0x00],                   // connect flags: none
        &[0x00, 0x00],             // keep alive 0 (disabled)
        &[0x00, 0x05], b"dev-7",   // client identifier
    ]);
    check(V3_1_1, Packet::Connect(Box::new(c)), &bytes);
}

#[test]
#[rustfmt::skip]
fn connect_v311_accepts_an_empty_client_id_with_clean_session() {
    let bytes = cat(&[
        &[0x10, 0x0C],             // CONNECT, remaining length 12
        &[0x00, 0x04], b"MQTT",    // protocol name
        &[0x04],                   // protocol level 4
        &[0x02],                   // connect flags: clean session
        &[0x00, 0x3C],             // keep alive 60
        &[0x00, 0x00],             // client identifier: empty
    ]);
    check(V3_1_1, Packet::Connect(Box::new(connect(V3_1_1, ""))), &bytes);
}

fn will(qos: QoS, retain: bool) -> Will {
    Will { topic: s("w/t"), payload: b(b"bye"), qos, retain, properties: WillProperties::default() }
}

#[test]
#[rustfmt::skip]
fn connect_v311_with_will_username_and_password() {
    let mut c = connect(V3_1_1, "c1");
    c.keep_alive = 10;
    c.will = Some(will(QoS::AtLeastOnce, true));
    c.username = Some(s("u"));
    c.password = Some(b(b"pw"));
    let bytes = cat(&[
        &[0x10, 0x1F],             // CONNECT, remaining length 31
        &[0x00, 0x04], b"MQTT",    // protocol name
        &[0x04],                   // protocol level 4
        &[0xEE],                   // flags: user name, password, will retain, will QoS 1, will, clean session
        &[0x00, 0x0A],             // keep alive 10
        &[0x00, 0x02], b"c1",      // client identifier
        &[0x00, 0x03], b"w/t",     // will topic
        &[0x00, 0x03], b"bye",     // will message
        &[0x00, 0x01], b"u",       // user name
        &[0x00, 0x02], b"pw",      // password
    ]);
    check(V3_1_1, Packet::Connect(Box::new(c)), &bytes);
}

#[test]
#[rustfmt::skip]
fn connect_v31_with_will_qos_2_username_and_password() {
    let mut c = connect(V3_1, "c1");
    c.clean_start = false;
    c.keep_alive = 0x0102;
    c.will = Some(will(QoS::ExactlyOnce, false));
    c.username = Some(s("u"));
    c.password = Some(b(b"pw"));
    let bytes = cat(&[
        &[0x10, 0x21],             // CONNECT, remaining length 33
        &[0x00, 0x06], b"MQIsdp",  // protocol name
        &[0x03],                   // protocol level 3
        &[0xD4],                   // flags: user name, password, will QoS 2, will
        &[0x01, 0x02],             // keep alive 258
        &[0x00, 0x02], b"c1",      // client identifier
        &[0x00, 0x03], b"w/t",     // will topic
        &[0x00, 0x03], b"bye",     // will message
        &[0x00, 0x01], b"u",       // user name
        &[0x00, 0x02], b"pw",      // password
    ]);
    check(V3_1, Packet::Connect(Box::new(c)), &bytes);
}

#[test]
#[rustfmt::skip]
fn connect_v311_with_username_only() {
    let mut c = connect(V3_1_1, "c1");
    c.username = Some(s("user"));
    let bytes = cat(&[
        &[0x10, 0x14],             // CONNECT, remaining length 20
        &[0x00, 0x04], b"MQTT",    // protocol name
        &[0x04],                   // protocol level 4
        &[0x82],                   // flags: user name, clean session
        &[0x00, 0x3C],             // keep alive 60
        &[0x00, 0x02], b"c1",      // client identifier
        &[0x00, 0x04], b"user",    // user name
    ]);
    check(V3_1_1, Packet::Connect(Box::new(c)), &bytes);
}

#[test]
#[rustfmt::skip]
fn connect_v311_with_binary_password_and_empty_will_message() {
    let mut c = connect(V3_1_1, "c");
    c.will = Some(Will {
        topic: s("t"),
        payload: Bytes::new(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    c.username = Some(s("u"));
    c.password = Some(b(&[0x00, 0xFF]));
    let bytes = cat(&[
        &[0x10, 0x19],             // CONNECT, remaining length 25
        &[0x00, 0x04], b"MQTT",    // protocol name
        &[0x04],                   // protocol level 4
        &[0xC6],                   // flags: user name, password, will (QoS 0), clean session
        &[0x00, 0x3C],             // keep alive 60
        &[0x00, 0x01], b"c",       // client identifier
        &[0x00, 0x01], b"t",       // will topic
        &[0x00, 0x00],             // will message: empty
        &[0x00, 0x01], b"u",       // user name
        &[0x00, 0x02, 0x00, 0xFF], // password: binary
    ]);
    check(V3_1_1, Packet::Connect(Box::new(c)), &bytes);
}

#[test]
#[rustfmt::skip]
fn connect_v5_minimal_has_an_empty_property_list() {
    let mut c = connect(V5, "");
    c.keep_alive = 0;
    let bytes = cat(&[
        &[0x10, 0x0D],             // CONNECT, remaining length 13
        &[0x00, 0x04], b"MQTT",    // protocol name
        &[0x05],                   // protocol level 5
        &[0x02],                   // connect flags: clean start
        &[0x00, 0x00],             // keep alive 0
        &[0x00],                   // property length 0
        &[0x00, 0x00],             // client identifier: empty
    ]);
    check(V5, Packet::Connect(Box::new(c)), &bytes);
}

#[test]
#[rustfmt::skip]
fn connect_v5_with_will_will_properties_and_user_properties() {
    let c = Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 30,
        client_id: s("c1"),
        will: Some(Will {
            topic: s("w/t"),
            payload: b(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties {
                will_delay_interval: Some(5),
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(60),
                content_type: Some(s("text")),
                response_topic: Some(s("r/t")),
                correlation_data: Some(b(&[0xAB, 0xCD])),
                user_properties: vec![up("a", "b")],
            },
        }),
        username: Some(s("u")),
        password: Some(b(b"pw")),
        properties: ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(20),
            maximum_packet_size: Some(4096),
            topic_alias_maximum: Some(10),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            user_properties: vec![up("k", "v"), up("k", "w")],
            authentication_method: Some(s("SCRM")),
            authentication_data: Some(b(&[1, 2])),
        },
    };
    let bytes = cat(&[
        &[0x10, 0x74],                             // CONNECT, remaining length 116
        &[0x00, 0x04], b"MQTT",                    // protocol name
        &[0x05],                                   // protocol level 5
        &[0xCE],                                   // flags: user name, password, will QoS 1, will, clean start
        &[0x00, 0x1E],                             // keep alive 30
        &[0x2E],                                   // property length 46
        &[0x11, 0x00, 0x00, 0x0E, 0x10],           //   session expiry interval 3600
        &[0x21, 0x00, 0x14],                       //   receive maximum 20
        &[0x27, 0x00, 0x00, 0x10, 0x00],           //   maximum packet size 4096
        &[0x22, 0x00, 0x0A],                       //   topic alias maximum 10
        &[0x19, 0x01],                             //   request response information 1
        &[0x17, 0x00],                             //   request problem information 0
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property k=v
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"w", // user property k=w (names may repeat)
        &[0x15, 0x00, 0x04], b"SCRM",              //   authentication method
        &[0x16, 0x00, 0x02, 0x01, 0x02],           //   authentication data
        &[0x00, 0x02], b"c1",                      // client identifier
        &[0x25],                                   // will property length 37
        &[0x18, 0x00, 0x00, 0x00, 0x05],           //   will delay interval 5
        &[0x01, 0x01],                             //   payload format indicator: UTF-8
        &[0x02, 0x00, 0x00, 0x00, 0x3C],           //   message expiry interval 60
        &[0x03, 0x00, 0x04], b"text",              //   content type
        &[0x08, 0x00, 0x03], b"r/t",               //   response topic
        &[0x09, 0x00, 0x02, 0xAB, 0xCD],           //   correlation data
        &[0x26, 0x00, 0x01], b"a", &[0x00, 0x01], b"b", // user property a=b
        &[0x00, 0x03], b"w/t",                     // will topic
        &[0x00, 0x03], b"bye",                     // will payload
        &[0x00, 0x01], b"u",                       // user name
        &[0x00, 0x02], b"pw",                      // password
    ]);
    check(V5, Packet::Connect(Box::new(c)), &bytes);
}

#[test]
#[rustfmt::skip]
fn connect_v5_allows_a_password_without_a_username() {
    let mut c = connect(V5, "c1");
    c.password = Some(b(b"secret"));
    let bytes = cat(&[
        &[0x10, 0x17],             // CONNECT, remaining length 23
        &[0x00, 0x04], b"MQTT",    // protocol name
        &[0x05],                   // protocol level 5
        &[0x42],                   // flags: password, clean start
        &[0x00, 0x3C],             // keep alive 60
        &[0x00],                   // property length 0
        &[0x00, 0x02], b"c1",      // client identifier
        &[0x00, 0x06], b"secret",  // password
    ]);
    check(V5, Packet::Connect(Box::new(c)), &bytes);
}

#[test]
#[rustfmt::skip]
fn connect_v5_with_retained_will_and_no_will_properties() {
    let mut c = connect(V5, "c1");
    c.clean_start = false;
    c.will = Some(will(QoS::ExactlyOnce, true));
    let bytes = cat(&[
        &[0x10, 0x1A],             // CONNECT, remaining length 26
        &[0x00, 0x04], b"MQTT",    // protocol name
        &[0x05],                   // protocol level 5
        &[0x34],                   // flags: will retain, will QoS 2, will
        &[0x00, 0x3C],             // keep alive 60
        &[0x00],                   // property length 0
        &[0x00, 0x02], b"c1",      // client identifier
        &[0x00],                   // will property length 0
        &[0x00, 0x03], b"w/t",     // will topic
        &[0x00, 0x03], b"bye",     // will payload
    ]);
    check(V5, Packet::Connect(Box::new(c)), &bytes);
}

#[test]
#[rustfmt::skip]
fn connect_v311_encoding_drops_v5_properties() {
    let mut c = connect(V3_1_1, "abc");
    c.properties.session_expiry_interval = Some(10);
    c.properties.user_properties = vec![up("k", "v")];
    let bytes = cat(&[
        &[0x10, 0x0F],             // CONNECT, remaining length 15
        &[0x00, 0x04], b"MQTT",    // protocol name
        &[0x04],                   // protocol level 4
        &[0x02],                   // connect flags: clean session
        &[0x00, 0x3C],             // keep alive 60
        &[0x00, 0x03], b"abc",     // client identifier
    ]);
    check_encode(V3_1_1, &Packet::Connect(Box::new(c)), &bytes);
}

#[test]
#[rustfmt::skip]
fn server_decoder_learns_each_version_from_connect() {
    // v3.1.1: afterwards a PUBACK must have remaining length 2 exactly.
    let mut dec = Decoder::new(MAX);
    assert_eq!(dec.version(), None);
    let mut buf = BytesMut::from(
        &cat(&[&[0x10, 0x0F, 0x00, 0x04], b"MQTT", &[0x04, 0x02, 0x00, 0x3C, 0x00, 0x03], b"abc"])[..],
    );
    buf.put_slice(&[0x40, 0x02, 0x00, 0x0A]); // PUBACK 10, in the same read
    assert!(matches!(dec.decode(&mut buf).unwrap(), Some(Packet::Connect(_))));
    assert_eq!(dec.version(), Some(V3_1_1));
    assert_eq!(dec.decode(&mut buf).unwrap(), Some(Packet::PubAck(PubResponse::new(pid(10)))));
    buf.put_slice(&[0x40, 0x03, 0x00, 0x0A, 0x10]); // a v5-only layout
    assert!(matches!(dec.decode(&mut buf), Err(DecodeError::Malformed(_))));

    // v5: the same reason-carrying PUBACK is fine.
    let mut dec = Decoder::new(MAX);
    let mut buf = BytesMut::from(
        &cat(&[&[0x10, 0x0D, 0x00, 0x04], b"MQTT", &[0x05, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00]])[..],
    );
    buf.put_slice(&[0x40, 0x03, 0x00, 0x0A, 0x10]); // PUBACK 10, No matching subscribers
    assert!(matches!(dec.decode(&mut buf).unwrap(), Some(Packet::Connect(_))));
    assert_eq!(dec.version(), Some(V5));
    assert_eq!(dec.decode(&mut buf).unwrap(), Some(Packet::PubAck(resp(0x10, AckProperties::default()))));

    // v3.1.
    let mut dec = Decoder::new(MAX);
    let mut buf = BytesMut::from(
        &cat(&[&[0x10, 0x11, 0x00, 0x06], b"MQIsdp", &[0x03, 0x02, 0x00, 0x3C, 0x00, 0x03], b"abc"])[..],
    );
    assert!(matches!(dec.decode(&mut buf).unwrap(), Some(Packet::Connect(_))));
    assert_eq!(dec.version(), Some(V3_1));
}

// ---------------------------------------------------------------------------
// CONNACK
// ---------------------------------------------------------------------------

#[test]
#[rustfmt::skip]
fn connack_v311_accepted_with_session_present() {
    check(V3_1_1, connack(true, 0x00), &[
        0x20, 0x02, // CONNACK, remaining length 2
        0x01,       // acknowledge flags: session present
        0x00,       // return code 0: accepted
    ]);
}

#[test]
#[rustfmt::skip]
fn connack_v311_accepted_without_session() {
    check(V3_1_1, connack(false, 0x00), &[0x20, 0x02, 0x00, 0x00]);
}

#[test]
#[rustfmt::skip]
fn connack_v31_accepted() {
    check(V3_1, connack(false, 0x00), &[
        0x20, 0x02, // CONNACK, remaining length 2
        0x00,       // reserved (topic name compression response, unused)
        0x00,       // return code 0: accepted
    ]);
}

#[test]
#[rustfmt::skip]
fn connack_v3_return_codes_map_to_and_from_v5_reason_codes() {
    // (v5 reason code, v3 return code), both directions.
    for (reason, rc) in [(0x84, 1), (0x85, 2), (0x88, 3), (0x86, 4), (0x87, 5)] {
        for v in OLD {
            check(v, connack(false, reason), &[
                0x20, 0x02, // CONNACK, remaining length 2
                0x00,       // flags / reserved
                rc,         // return code
            ]);
        }
    }
}

#[test]
#[rustfmt::skip]
fn connack_v3_maps_other_error_reasons_to_server_unavailable() {
    for reason in [0x80, 0x81, 0x82, 0x83, 0x89, 0x8A, 0x8C, 0x97, 0x9F] {
        for v in OLD {
            check_encode(v, &connack(false, reason), &[0x20, 0x02, 0x00, 0x03]);
        }
    }
}

#[test]
#[rustfmt::skip]
fn connack_v311_encoding_drops_v5_properties() {
    let p = Packet::ConnAck(ConnAck {
        session_present: true,
        reason_code: ReasonCode::SUCCESS,
        properties: ConnAckProperties {
            assigned_client_identifier: Some(s("x")),
            receive_maximum: Some(5),
            ..ConnAckProperties::default()
        },
    });
    check_encode(V3_1_1, &p, &[0x20, 0x02, 0x01, 0x00]);
}

#[test]
#[rustfmt::skip]
fn connack_v5_minimal_has_an_empty_property_list() {
    check(V5, connack(false, 0x00), &[
        0x20, 0x03, // CONNACK, remaining length 3
        0x00,       // acknowledge flags
        0x00,       // reason code: success
        0x00,       // property length 0
    ]);
}

#[test]
#[rustfmt::skip]
fn connack_v5_with_session_present() {
    check(V5, connack(true, 0x00), &[0x20, 0x03, 0x01, 0x00, 0x00]);
}

#[test]
#[rustfmt::skip]
fn connack_v5_keeps_its_reason_code() {
    for reason in [0x80, 0x84, 0x87, 0x88, 0x8C, 0x95, 0x9C, 0x9F] {
        check(V5, connack(false, reason), &[
            0x20, 0x03, // CONNACK, remaining length 3
            0x00,       // acknowledge flags
            reason,     // reason code
            0x00,       // property length 0
        ]);
    }
}

#[test]
#[rustfmt::skip]
fn connack_v5_error_with_reason_string() {
    let p = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::NOT_AUTHORIZED,
        properties: ConnAckProperties { reason_string: Some(s("no")), ..Default::default() },
    });
    check(V5, p, &cat(&[
        &[0x20, 0x08],             // CONNACK, remaining length 8
        &[0x00],                   // acknowledge flags
        &[0x87],                   // reason: not authorized
        &[0x05],                   // property length 5
        &[0x1F, 0x00, 0x02], b"no", // reason string
    ]));
}

#[test]
#[rustfmt::skip]
fn connack_v5_with_many_properties() {
    let p = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::SUCCESS,
        properties: ConnAckProperties {
            session_expiry_interval: Some(120),
            receive_maximum: Some(10),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: Some(65536),
            assigned_client_identifier: Some(s("cid")),
            topic_alias_maximum: Some(5),
            reason_string: Some(s("ok")),
            user_properties: vec![up("k", "v")],
            wildcard_subscription_available: Some(false),
            subscription_identifiers_available: Some(true),
            shared_subscription_available: Some(true),
            server_keep_alive: Some(60),
            response_information: Some(s("ri")),
            server_reference: Some(s("sr")),
            authentication_method: Some(s("m")),
            authentication_data: Some(b(&[0xFF])),
        },
    });
    check(V5, p, &cat(&[
        &[0x20, 0x44],                    // CONNACK, remaining length 68
        &[0x00],                          // acknowledge flags
        &[0x00],                          // reason: success
        &[0x41],                          // property length 65
        &[0x11, 0x00, 0x00, 0x00, 0x78],  //   session expiry interval 120
        &[0x21, 0x00, 0x0A],              //   receive maximum 10
        &[0x24, 0x01],                    //   maximum QoS 1
        &[0x25, 0x00],                    //   retain available 0
        &[0x27, 0x00, 0x01, 0x00, 0x00],  //   maximum packet size 65536
        &[0x12, 0x00, 0x03], b"cid",      //   assigned client identifier
        &[0x22, 0x00, 0x05],              //   topic alias maximum 5
        &[0x1F, 0x00, 0x02], b"ok",       //   reason string
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property
        &[0x28, 0x00],                    //   wildcard subscription available 0
        &[0x29, 0x01],                    //   subscription identifiers available 1
        &[0x2A, 0x01],                    //   shared subscription available 1
        &[0x13, 0x00, 0x3C],              //   server keep alive 60
        &[0x1A, 0x00, 0x02], b"ri",       //   response information
        &[0x1C, 0x00, 0x02], b"sr",       //   server reference
        &[0x15, 0x00, 0x01], b"m",        //   authentication method
        &[0x16, 0x00, 0x01, 0xFF],        //   authentication data
    ]));
}

// ---------------------------------------------------------------------------
// PUBLISH
// ---------------------------------------------------------------------------

#[test]
#[rustfmt::skip]
fn publish_qos0_in_v3_and_v311() {
    for v in OLD {
        check(v, Packet::Publish(publish(QoS::AtMostOnce, None, "a/b", b"hi")), &cat(&[
            &[0x30, 0x07],          // PUBLISH QoS 0, remaining length 7
            &[0x00, 0x03], b"a/b",  // topic name
            b"hi",                  // payload
        ]));
    }
}

#[test]
#[rustfmt::skip]
fn publish_qos1_with_dup_and_retain_in_v3_and_v311() {
    let mut p = publish(QoS::AtLeastOnce, Some(10), "a/b", b"hi");
    p.dup = true;
    p.retain = true;
    for v in OLD {
        check(v, Packet::Publish(p.clone()), &cat(&[
            &[0x3B, 0x09],          // PUBLISH DUP, QoS 1, RETAIN; remaining length 9
            &[0x00, 0x03], b"a/b",  // topic name
            &[0x00, 0x0A],          // packet identifier 10
            b"hi",                  // payload
        ]));
    }
}

#[test]
#[rustfmt::skip]
fn publish_qos2_with_large_packet_id() {
    for v in ALL {
        let mut bytes = cat(&[
            &[0x34, 0x09],          // PUBLISH QoS 2, remaining length 9 (v5: 10)
            &[0x00, 0x03], b"a/b",  // topic name
            &[0xFF, 0xFE],          // packet identifier 65534
        ]);
        if v.is_v5() {
            bytes[1] = 0x0A;
            bytes.push(0x00);       // property length 0
        }
        bytes.extend_from_slice(b"hi"); // payload
        check(v, Packet::Publish(publish(QoS::ExactlyOnce, Some(65534), "a/b", b"hi")), &bytes);
    }
}

#[test]
#[rustfmt::skip]
fn publish_with_empty_payload() {
    for v in OLD {
        check(v, Packet::Publish(publish(QoS::AtMostOnce, None, "a/b", b"")), &cat(&[
            &[0x30, 0x05],          // PUBLISH QoS 0, remaining length 5
            &[0x00, 0x03], b"a/b",  // topic name; no payload
        ]));
    }
    check(V5, Packet::Publish(publish(QoS::AtMostOnce, None, "a/b", b"")), &cat(&[
        &[0x30, 0x06],              // PUBLISH QoS 0, remaining length 6
        &[0x00, 0x03], b"a/b",      // topic name
        &[0x00],                    // property length 0; no payload
    ]));
}

#[test]
#[rustfmt::skip]
fn publish_with_two_byte_remaining_length() {
    let payload = [0x41u8; 200];
    check(V3_1_1, Packet::Publish(publish(QoS::AtMostOnce, None, "t", &payload)), &cat(&[
        &[0x30, 0xCB, 0x01],        // PUBLISH QoS 0, remaining length 203 (0xCB 0x01)
        &[0x00, 0x01], b"t",        // topic name
        &payload,                   // payload
    ]));
}

#[test]
#[rustfmt::skip]
fn publish_with_three_byte_remaining_length() {
    let payload = vec![0x5Au8; 16_381];
    check(V3_1_1, Packet::Publish(publish(QoS::AtMostOnce, None, "t", &payload)), &cat(&[
        &[0x30, 0x80, 0x80, 0x01],  // PUBLISH QoS 0, remaining length 16384
        &[0x00, 0x01], b"t",        // topic name
        &payload,                   // payload
    ]));
}

#[test]
#[rustfmt::skip]
fn publish_with_remaining_length_127_and_128() {
    // 127 is the largest one-byte remaining length, 128 the smallest two-byte one.
    let p127 = vec![1u8; 124];
    check(V3_1_1, Packet::Publish(publish(QoS::AtMostOnce, None, "t", &p127)), &cat(&[
        &[0x30, 0x7F],              // remaining length 127
        &[0x00, 0x01], b"t",        // topic name
        &p127,                      // payload
    ]));
    let p128 = vec![1u8; 125];
    check(V3_1_1, Packet::Publish(publish(QoS::AtMostOnce, None, "t", &p128)), &cat(&[
        &[0x30, 0x80, 0x01],        // remaining length 128
        &[0x00, 0x01], b"t",        // topic name
        &p128,                      // payload
    ]));
}

#[test]
#[rustfmt::skip]
fn publish_topic_may_hold_multibyte_utf8_and_dollar() {
    check(V3_1_1, Packet::Publish(publish(QoS::AtMostOnce, None, "$SYS/é", b"")), &cat(&[
        &[0x30, 0x09],              // PUBLISH QoS 0, remaining length 9
        &[0x00, 0x07], "$SYS/é".as_bytes(), // topic name (é is 2 bytes)
    ]));
}

#[test]
#[rustfmt::skip]
fn publish_v5_qos0_without_properties() {
    check(V5, Packet::Publish(publish(QoS::AtMostOnce, None, "a/b", b"hi")), &cat(&[
        &[0x30, 0x08],              // PUBLISH QoS 0, remaining length 8
        &[0x00, 0x03], b"a/b",      // topic name
        &[0x00],                    // property length 0
        b"hi",                      // payload
    ]));
}

#[test]
#[rustfmt::skip]
fn publish_v5_with_every_publish_property() {
    let p = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: s("a/b"),
        packet_id: Some(pid(1)),
        payload: b(b"hi"),
        properties: PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(10),
            topic_alias: Some(7),
            response_topic: Some(s("r/t")),
            correlation_data: Some(b(&[1, 2, 3])),
            user_properties: vec![up("k", "v"), up("k", "v")],
            subscription_identifiers: vec![5, 128],
            content_type: Some(s("text")),
        },
    };
    check(V5, Packet::Publish(p), &cat(&[
        &[0x32, 0x3A],                    // PUBLISH QoS 1, remaining length 58
        &[0x00, 0x03], b"a/b",            // topic name
        &[0x00, 0x01],                    // packet identifier 1
        &[0x30],                          // property length 48
        &[0x01, 0x01],                    //   payload format indicator: UTF-8
        &[0x02, 0x00, 0x00, 0x00, 0x0A],  //   message expiry interval 10
        &[0x23, 0x00, 0x07],              //   topic alias 7
        &[0x08, 0x00, 0x03], b"r/t",      //   response topic
        &[0x09, 0x00, 0x03, 1, 2, 3],     //   correlation data
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property k=v
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // the same pair again (allowed)
        &[0x0B, 0x05],                    //   subscription identifier 5
        &[0x0B, 0x80, 0x01],              //   subscription identifier 128 (two-byte varint)
        &[0x03, 0x00, 0x04], b"text",     //   content type
        b"hi",                            // payload
    ]));
}

#[test]
#[rustfmt::skip]
fn publish_v5_empty_topic_with_topic_alias() {
    let mut p = publish(QoS::AtMostOnce, None, "", b"x");
    p.properties.topic_alias = Some(7);
    check(V5, Packet::Publish(p), &cat(&[
        &[0x30, 0x07],              // PUBLISH QoS 0, remaining length 7
        &[0x00, 0x00],              // topic name: empty (alias in use)
        &[0x03],                    // property length 3
        &[0x23, 0x00, 0x07],        //   topic alias 7
        b"x",                       // payload
    ]));
}

#[test]
#[rustfmt::skip]
fn publish_v5_large_subscription_identifier_uses_four_byte_varint() {
    let mut p = publish(QoS::AtMostOnce, None, "t", b"");
    p.properties.subscription_identifiers = vec![268_435_455];
    check(V5, Packet::Publish(p), &cat(&[
        &[0x30, 0x09],                    // PUBLISH QoS 0, remaining length 9
        &[0x00, 0x01], b"t",              // topic name
        &[0x05],                          // property length 5
        &[0x0B, 0xFF, 0xFF, 0xFF, 0x7F],  //   subscription identifier 268,435,455
    ]));
}

#[test]
#[rustfmt::skip]
fn publish_v311_encoding_drops_v5_properties() {
    let mut p = publish(QoS::AtMostOnce, None, "a/b", b"hi");
    p.properties.message_expiry_interval = Some(5);
    p.properties.user_properties = vec![up("k", "v")];
    check_encode(V3_1_1, &Packet::Publish(p), &cat(&[
        &[0x30, 0x07],              // PUBLISH QoS 0, remaining length 7
        &[0x00, 0x03], b"a/b",      // topic name
        b"hi",                      // payload
    ]));
}

// ---------------------------------------------------------------------------
// PUBACK, PUBREC, PUBREL, PUBCOMP
// ---------------------------------------------------------------------------

type Wrap = fn(PubResponse) -> Packet;
const RESPONSES: [(Wrap, u8); 4] = [
    (Packet::PubAck, 0x40),  // PUBACK, flags 0000
    (Packet::PubRec, 0x50),  // PUBREC, flags 0000
    (Packet::PubRel, 0x62),  // PUBREL, flags 0010
    (Packet::PubComp, 0x70), // PUBCOMP, flags 0000
];

#[test]
#[rustfmt::skip]
fn pub_responses_have_packet_id_only_in_every_version() {
    for (wrap, first) in RESPONSES {
        for v in ALL {
            check(v, wrap(PubResponse::new(pid(10))), &[
                first, 0x02, // fixed header, remaining length 2
                0x00, 0x0A,  // packet identifier 10
            ]);
        }
    }
}

#[test]
#[rustfmt::skip]
fn pub_responses_v5_with_only_a_reason_code_have_remaining_length_3() {
    for (wrap, first) in RESPONSES {
        let reason = if first == 0x62 || first == 0x70 { 0x92 } else { 0x10 };
        check(V5, wrap(resp(reason, AckProperties::default())), &[
            first, 0x03, // fixed header, remaining length 3
            0x00, 0x0A,  // packet identifier 10
            reason,      // reason code; property length omitted
        ]);
    }
}

#[test]
#[rustfmt::skip]
fn pub_responses_v5_decode_the_longer_success_forms() {
    for (wrap, first) in RESPONSES {
        let packet = wrap(PubResponse::new(pid(10)));
        // Reason code present, property length omitted.
        check_decode(V5, packet.clone(), &[first, 0x03, 0x00, 0x0A, 0x00]);
        // Reason code and an empty property list.
        check_decode(V5, packet, &[first, 0x04, 0x00, 0x0A, 0x00, 0x00]);
    }
}

#[test]
#[rustfmt::skip]
fn puback_v5_error_with_reason_string() {
    let props = AckProperties { reason_string: Some(s("bad")), user_properties: vec![] };
    check(V5, Packet::PubAck(resp(0x80, props)), &cat(&[
        &[0x40, 0x0A],              // PUBACK, remaining length 10
        &[0x00, 0x0A],              // packet identifier 10
        &[0x80],                    // reason: unspecified error
        &[0x06],                    // property length 6
        &[0x1F, 0x00, 0x03], b"bad", //  reason string
    ]));
}

#[test]
#[rustfmt::skip]
fn pubrec_v5_success_with_user_property_keeps_the_reason_byte() {
    let props = AckProperties { reason_string: None, user_properties: vec![up("k", "v")] };
    check(V5, Packet::PubRec(resp(0x00, props)), &cat(&[
        &[0x50, 0x0B],              // PUBREC, remaining length 11
        &[0x00, 0x0A],              // packet identifier 10
        &[0x00],                    // reason: success
        &[0x07],                    // property length 7
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property
    ]));
}

#[test]
#[rustfmt::skip]
fn pubrel_v5_packet_identifier_not_found() {
    check(V5, Packet::PubRel(resp(0x92, AckProperties::default())), &[
        0x62, 0x03, // PUBREL (flags 0010), remaining length 3
        0x00, 0x0A, // packet identifier 10
        0x92,       // reason: packet identifier not found
    ]);
}

#[test]
#[rustfmt::skip]
fn pubcomp_v5_success_with_reason_string() {
    let props = AckProperties { reason_string: Some(s("x")), user_properties: vec![] };
    check(V5, Packet::PubComp(resp(0x00, props)), &cat(&[
        &[0x70, 0x08],              // PUBCOMP, remaining length 8
        &[0x00, 0x0A],              // packet identifier 10
        &[0x00],                    // reason: success
        &[0x04],                    // property length 4
        &[0x1F, 0x00, 0x01], b"x",  //   reason string
    ]));
}

#[test]
#[rustfmt::skip]
fn puback_v5_reason_string_and_user_properties_together() {
    let props = AckProperties {
        reason_string: Some(s("q")),
        user_properties: vec![up("a", "1"), up("b", "2")],
    };
    check(V5, Packet::PubAck(resp(0x97, props)), &cat(&[
        &[0x40, 0x16],              // PUBACK, remaining length 22
        &[0x00, 0x0A],              // packet identifier 10
        &[0x97],                    // reason: quota exceeded
        &[0x12],                    // property length 18
        &[0x1F, 0x00, 0x01], b"q",  //   reason string
        &[0x26, 0x00, 0x01], b"a", &[0x00, 0x01], b"1", // user property a=1
        &[0x26, 0x00, 0x01], b"b", &[0x00, 0x01], b"2", // user property b=2
    ]));
}

// ---------------------------------------------------------------------------
// SUBSCRIBE
// ---------------------------------------------------------------------------

#[test]
#[rustfmt::skip]
fn subscribe_one_filter_in_v3_and_v311() {
    let p = Subscribe {
        packet_id: pid(1),
        filters: vec![(s("a/b"), opts(QoS::AtLeastOnce))],
        properties: SubscribeProperties::default(),
    };
    for v in OLD {
        check(v, Packet::Subscribe(p.clone()), &cat(&[
            &[0x82, 0x08],          // SUBSCRIBE (flags 0010), remaining length 8
            &[0x00, 0x01],          // packet identifier 1
            &[0x00, 0x03], b"a/b",  // topic filter
            &[0x01],                // requested QoS 1
        ]));
    }
}

#[test]
#[rustfmt::skip]
fn subscribe_several_wildcard_filters_in_v311() {
    let p = Subscribe {
        packet_id: pid(2),
        filters: vec![(s("a/+"), opts(QoS::AtMostOnce)), (s("#"), opts(QoS::ExactlyOnce))],
        properties: SubscribeProperties::default(),
    };
    check(V3_1_1, Packet::Subscribe(p), &cat(&[
        &[0x82, 0x0C],              // SUBSCRIBE, remaining length 12
        &[0x00, 0x02],              // packet identifier 2
        &[0x00, 0x03], b"a/+",      // topic filter
        &[0x00],                    // requested QoS 0
        &[0x00, 0x01], b"#",        // topic filter
        &[0x02],                    // requested QoS 2
    ]));
}

#[test]
#[rustfmt::skip]
fn subscribe_v311_encoding_keeps_only_the_qos_bits() {
    let o = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
    };
    let p = Subscribe {
        packet_id: pid(1),
        filters: vec![(s("a/b"), o)],
        properties: SubscribeProperties { subscription_identifier: Some(3), user_properties: vec![] },
    };
    check_encode(V3_1_1, &Packet::Subscribe(p), &cat(&[
        &[0x82, 0x08],              // SUBSCRIBE, remaining length 8
        &[0x00, 0x01],              // packet identifier 1
        &[0x00, 0x03], b"a/b",      // topic filter
        &[0x01],                    // requested QoS 1; v5 option bits are reserved in 3.1.1
    ]));
}

#[test]
#[rustfmt::skip]
fn subscribe_v5_without_properties() {
    let p = Subscribe {
        packet_id: pid(1),
        filters: vec![(s("a/b"), opts(QoS::AtMostOnce))],
        properties: SubscribeProperties::default(),
    };
    check(V5, Packet::Subscribe(p), &cat(&[
        &[0x82, 0x09],              // SUBSCRIBE, remaining length 9
        &[0x00, 0x01],              // packet identifier 1
        &[0x00],                    // property length 0
        &[0x00, 0x03], b"a/b",      // topic filter
        &[0x00],                    // subscription options: QoS 0
    ]));
}

#[test]
#[rustfmt::skip]
fn subscribe_v5_with_subscription_identifier_and_all_option_bits() {
    let p = Subscribe {
        packet_id: pid(5),
        filters: vec![
            (
                s("a/b"),
                SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            ),
            (
                s("#"),
                SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::SendAtSubscribeIfNew,
                },
            ),
            (s("$share/g/x"), opts(QoS::AtMostOnce)),
        ],
        properties: SubscribeProperties {
            subscription_identifier: Some(150),
            user_properties: vec![up("k", "v")],
        },
    };
    check(V5, Packet::Subscribe(p), &cat(&[
        &[0x82, 0x24],                    // SUBSCRIBE, remaining length 36
        &[0x00, 0x05],                    // packet identifier 5
        &[0x0A],                          // property length 10
        &[0x0B, 0x96, 0x01],              //   subscription identifier 150
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property
        &[0x00, 0x03], b"a/b",            // topic filter
        &[0x2E],                          // options: retain handling 2, RAP, no local, QoS 2
        &[0x00, 0x01], b"#",              // topic filter
        &[0x11],                          // options: retain handling 1, QoS 1
        &[0x00, 0x0A], b"$share/g/x",     // shared subscription filter
        &[0x00],                          // options: QoS 0
    ]));
}

#[test]
#[rustfmt::skip]
fn subscribe_v5_each_option_bit_alone() {
    let cases: [(SubscriptionOptions, u8); 4] = [
        (SubscriptionOptions { no_local: true, ..opts(QoS::AtMostOnce) }, 0x04),
        (SubscriptionOptions { retain_as_published: true, ..opts(QoS::AtMostOnce) }, 0x08),
        (
            SubscriptionOptions { retain_handling: RetainHandling::SendAtSubscribeIfNew, ..opts(QoS::AtMostOnce) },
            0x10,
        ),
        (SubscriptionOptions { retain_handling: RetainHandling::DoNotSend, ..opts(QoS::AtMostOnce) }, 0x20),
    ];
    for (o, byte) in cases {
        let p = Subscribe {
            packet_id: pid(1),
            filters: vec![(s("a"), o)],
            properties: SubscribeProperties::default(),
        };
        check(V5, Packet::Subscribe(p), &cat(&[
            &[0x82, 0x07],          // SUBSCRIBE, remaining length 7
            &[0x00, 0x01],          // packet identifier 1
            &[0x00],                // property length 0
            &[0x00, 0x01], b"a",    // topic filter
            &[byte],                // subscription options
        ]));
    }
}

// ---------------------------------------------------------------------------
// SUBACK
// ---------------------------------------------------------------------------

fn suback(codes: &[u8], properties: AckProperties) -> Packet {
    Packet::SubAck(SubAck {
        packet_id: pid(1),
        reason_codes: codes.iter().map(|&c| ReasonCode(c)).collect(),
        properties,
    })
}

#[test]
#[rustfmt::skip]
fn suback_v311_granted_qos_and_failure() {
    check(V3_1_1, suback(&[0x00, 0x02, 0x80], AckProperties::default()), &[
        0x90, 0x05, // SUBACK, remaining length 5
        0x00, 0x01, // packet identifier 1
        0x00,       // granted QoS 0
        0x02,       // granted QoS 2
        0x80,       // failure
    ]);
}

#[test]
#[rustfmt::skip]
fn suback_v31_granted_qos() {
    check(V3_1, suback(&[0x01, 0x02], AckProperties::default()), &[
        0x90, 0x04, // SUBACK, remaining length 4
        0x00, 0x01, // packet identifier 1
        0x01,       // granted QoS 1
        0x02,       // granted QoS 2
    ]);
}

#[test]
#[rustfmt::skip]
fn suback_v311_maps_every_failure_reason_to_0x80() {
    for code in [0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2] {
        check_encode(V3_1_1, &suback(&[0x01, code], AckProperties::default()), &[
            0x90, 0x04, // SUBACK, remaining length 4
            0x00, 0x01, // packet identifier 1
            0x01,       // granted QoS 1
            0x80,       // failure
        ]);
    }
}

#[test]
#[rustfmt::skip]
fn suback_v5_minimal() {
    check(V5, suback(&[0x00], AckProperties::default()), &[
        0x90, 0x04, // SUBACK, remaining length 4
        0x00, 0x01, // packet identifier 1
        0x00,       // property length 0
        0x00,       // granted QoS 0
    ]);
}

#[test]
#[rustfmt::skip]
fn suback_v5_with_reason_string_and_every_reason_code() {
    let props = AckProperties { reason_string: Some(s("no")), user_properties: vec![] };
    let codes = [0x00, 0x01, 0x02, 0x80, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];
    check(V5, suback(&codes, props), &cat(&[
        &[0x90, 0x13],              // SUBACK, remaining length 19
        &[0x00, 0x01],              // packet identifier 1
        &[0x05],                    // property length 5
        &[0x1F, 0x00, 0x02], b"no", //   reason string
        &codes,                     // one reason code per filter
    ]));
}

// ---------------------------------------------------------------------------
// UNSUBSCRIBE
// ---------------------------------------------------------------------------

#[test]
#[rustfmt::skip]
fn unsubscribe_in_v3_and_v311() {
    let p = Unsubscribe { packet_id: pid(2), filters: vec![s("a/b"), s("#")], user_properties: vec![] };
    for v in OLD {
        check(v, Packet::Unsubscribe(p.clone()), &cat(&[
            &[0xA2, 0x0A],          // UNSUBSCRIBE (flags 0010), remaining length 10
            &[0x00, 0x02],          // packet identifier 2
            &[0x00, 0x03], b"a/b",  // topic filter
            &[0x00, 0x01], b"#",    // topic filter
        ]));
    }
}

#[test]
#[rustfmt::skip]
fn unsubscribe_v5_without_properties() {
    let p = Unsubscribe { packet_id: pid(2), filters: vec![s("a/b")], user_properties: vec![] };
    check(V5, Packet::Unsubscribe(p), &cat(&[
        &[0xA2, 0x08],              // UNSUBSCRIBE, remaining length 8
        &[0x00, 0x02],              // packet identifier 2
        &[0x00],                    // property length 0
        &[0x00, 0x03], b"a/b",      // topic filter
    ]));
}

#[test]
#[rustfmt::skip]
fn unsubscribe_v5_with_user_property() {
    let p = Unsubscribe {
        packet_id: pid(2),
        filters: vec![s("a/b"), s("#")],
        user_properties: vec![up("k", "v")],
    };
    check(V5, Packet::Unsubscribe(p), &cat(&[
        &[0xA2, 0x12],              // UNSUBSCRIBE, remaining length 18
        &[0x00, 0x02],              // packet identifier 2
        &[0x07],                    // property length 7
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property
        &[0x00, 0x03], b"a/b",      // topic filter
        &[0x00, 0x01], b"#",        // topic filter
    ]));
}

// ---------------------------------------------------------------------------
// UNSUBACK
// ---------------------------------------------------------------------------

fn unsuback(codes: &[u8], properties: AckProperties) -> Packet {
    Packet::UnsubAck(UnsubAck {
        packet_id: pid(2),
        reason_codes: codes.iter().map(|&c| ReasonCode(c)).collect(),
        properties,
    })
}

#[test]
#[rustfmt::skip]
fn unsuback_v3_and_v311_carry_no_reason_codes() {
    for v in OLD {
        check(v, unsuback(&[], AckProperties::default()), &[
            0xB0, 0x02, // UNSUBACK, remaining length 2
            0x00, 0x02, // packet identifier 2
        ]);
    }
}

#[test]
#[rustfmt::skip]
fn unsuback_v311_encoding_drops_reason_codes() {
    let props = AckProperties { reason_string: Some(s("x")), user_properties: vec![] };
    check_encode(V3_1_1, &unsuback(&[0x00, 0x11], props), &[0xB0, 0x02, 0x00, 0x02]);
}

#[test]
#[rustfmt::skip]
fn unsuback_v5_with_reason_codes() {
    check(V5, unsuback(&[0x00, 0x11], AckProperties::default()), &[
        0xB0, 0x05, // UNSUBACK, remaining length 5
        0x00, 0x02, // packet identifier 2
        0x00,       // property length 0
        0x00,       // success
        0x11,       // no subscription existed
    ]);
}

#[test]
#[rustfmt::skip]
fn unsuback_v5_with_reason_string() {
    let props = AckProperties { reason_string: Some(s("x")), user_properties: vec![] };
    check(V5, unsuback(&[0x87], props), &cat(&[
        &[0xB0, 0x08],              // UNSUBACK, remaining length 8
        &[0x00, 0x02],              // packet identifier 2
        &[0x04],                    // property length 4
        &[0x1F, 0x00, 0x01], b"x",  //   reason string
        &[0x87],                    // not authorized
    ]));
}

// ---------------------------------------------------------------------------
// PINGREQ, PINGRESP
// ---------------------------------------------------------------------------

#[test]
#[rustfmt::skip]
fn pingreq_is_two_bytes_in_every_version() {
    for v in ALL {
        check(v, Packet::PingReq, &[0xC0, 0x00]); // PINGREQ, remaining length 0
    }
}

#[test]
#[rustfmt::skip]
fn pingresp_is_two_bytes_in_every_version() {
    for v in ALL {
        check(v, Packet::PingResp, &[0xD0, 0x00]); // PINGRESP, remaining length 0
    }
}

// ---------------------------------------------------------------------------
// DISCONNECT
// ---------------------------------------------------------------------------

#[test]
#[rustfmt::skip]
fn disconnect_is_two_bytes_in_v3_and_v311() {
    for v in OLD {
        check(v, Packet::Disconnect(Disconnect::default()), &[0xE0, 0x00]); // DISCONNECT, remaining length 0
    }
}

#[test]
#[rustfmt::skip]
fn disconnect_v311_encoding_drops_reason_and_properties() {
    let mut d = Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE);
    d.properties.reason_string = Some(s("x"));
    check_encode(V3_1_1, &Packet::Disconnect(d), &[0xE0, 0x00]);
}

#[test]
#[rustfmt::skip]
fn disconnect_v5_normal_without_properties_has_remaining_length_0() {
    check(V5, Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION)), &[
        0xE0, 0x00, // DISCONNECT, remaining length 0: reason 0x00, no properties
    ]);
}

#[test]
#[rustfmt::skip]
fn disconnect_v5_decodes_the_longer_normal_forms() {
    let p = Packet::Disconnect(Disconnect::default());
    check_decode(V5, p.clone(), &[0xE0, 0x01, 0x00]); // reason only
    check_decode(V5, p, &[0xE0, 0x02, 0x00, 0x00]); // reason and empty properties
}

#[test]
#[rustfmt::skip]
fn disconnect_v5_with_reason_only() {
    // The property length may be omitted when the remaining length is < 2
    // (MQTT 5 3.14.2.2.1), so both forms are valid; both must decode.
    let p = Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE));
    let short = [0xE0, 0x01, 0x04]; // DISCONNECT, remaining length 1, reason 0x04
    let long = [0xE0, 0x02, 0x04, 0x00]; // ... remaining length 2, property length 0
    check_decode(V5, p.clone(), &short);
    check_decode(V5, p.clone(), &long);
    let mut buf = BytesMut::new();
    let n = encode(&p, V5, &mut buf).unwrap();
    assert_eq!(n, buf.len());
    assert_eq!(encoded_len(&p, V5).unwrap(), n);
    assert!(buf[..] == short || buf[..] == long, "unexpected encoding {}", hex(&buf));
}

#[test]
#[rustfmt::skip]
fn disconnect_v5_from_client_with_properties() {
    let d = Disconnect {
        reason_code: ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
        properties: DisconnectProperties {
            session_expiry_interval: Some(0),
            reason_string: Some(s("bye")),
            user_properties: vec![up("k", "v")],
            server_reference: None,
        },
    };
    check(V5, Packet::Disconnect(d), &cat(&[
        &[0xE0, 0x14],                    // DISCONNECT, remaining length 20
        &[0x04],                          // reason: disconnect with will message
        &[0x12],                          // property length 18
        &[0x11, 0x00, 0x00, 0x00, 0x00],  //   session expiry interval 0
        &[0x1F, 0x00, 0x03], b"bye",      //   reason string
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property
    ]));
}

#[test]
#[rustfmt::skip]
fn disconnect_v5_from_server_with_server_reference() {
    let d = Disconnect {
        reason_code: ReasonCode::USE_ANOTHER_SERVER,
        properties: DisconnectProperties {
            session_expiry_interval: None,
            reason_string: Some(s("mv")),
            user_properties: vec![],
            server_reference: Some(s("other")),
        },
    };
    check(V5, Packet::Disconnect(d), &cat(&[
        &[0xE0, 0x0F],                    // DISCONNECT, remaining length 15
        &[0x9C],                          // reason: use another server
        &[0x0D],                          // property length 13
        &[0x1C, 0x00, 0x05], b"other",    //   server reference
        &[0x1F, 0x00, 0x02], b"mv",       //   reason string
    ]));
}

// ---------------------------------------------------------------------------
// AUTH (MQTT 5 only)
// ---------------------------------------------------------------------------

#[test]
#[rustfmt::skip]
fn auth_v5_success_without_properties_has_remaining_length_0() {
    check(V5, Packet::Auth(Auth::default()), &[0xF0, 0x00]); // AUTH, remaining length 0
}

#[test]
#[rustfmt::skip]
fn auth_v5_continue_authentication_with_method_data_and_more() {
    let a = Auth {
        reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: AuthProperties {
            authentication_method: Some(s("SCRM")),
            authentication_data: Some(b(&[1, 2, 3])),
            reason_string: Some(s("r")),
            user_properties: vec![up("k", "v")],
        },
    };
    check(V5, Packet::Auth(a), &cat(&[
        &[0xF0, 0x1A],                    // AUTH, remaining length 26
        &[0x18],                          // reason: continue authentication
        &[0x18],                          // property length 24
        &[0x15, 0x00, 0x04], b"SCRM",     //   authentication method
        &[0x16, 0x00, 0x03, 1, 2, 3],     //   authentication data
        &[0x1F, 0x00, 0x01], b"r",        //   reason string
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property
    ]));
}

#[test]
#[rustfmt::skip]
fn auth_v5_re_authenticate_with_method() {
    let a = Auth {
        reason_code: ReasonCode::RE_AUTHENTICATE,
        properties: AuthProperties { authentication_method: Some(s("SCRM")), ..Default::default() },
    };
    check(V5, Packet::Auth(a), &cat(&[
        &[0xF0, 0x09],                    // AUTH, remaining length 9
        &[0x19],                          // reason: re-authenticate
        &[0x07],                          // property length 7
        &[0x15, 0x00, 0x04], b"SCRM",     //   authentication method
    ]));
}

#[test]
#[rustfmt::skip]
fn auth_does_not_exist_before_v5() {
    for v in OLD {
        let mut buf = BytesMut::new();
        assert!(matches!(encode(&Packet::Auth(Auth::default()), v, &mut buf), Err(EncodeError::Invalid(_))));
        assert!(matches!(encoded_len(&Packet::Auth(Auth::default()), v), Err(EncodeError::Invalid(_))));
        assert!(decode_packet(Some(v), Bytes::from_static(&[0xF0, 0x00])).is_err());
    }
}

// ---------------------------------------------------------------------------
// Encoder limits
// ---------------------------------------------------------------------------

#[test]
#[rustfmt::skip]
fn encoding_a_string_longer_than_65535_bytes_fails() {
    let long = "x".repeat(65_536);
    let p = Packet::Publish(publish(QoS::AtMostOnce, None, &long, b""));
    assert!(matches!(encoded_len(&p, V3_1_1), Err(EncodeError::Invalid(_))));
    let mut buf = BytesMut::new();
    assert!(matches!(encode(&p, V3_1_1, &mut buf), Err(EncodeError::Invalid(_))));
}

#[test]
#[rustfmt::skip]
fn encoding_a_string_of_exactly_65535_bytes_works() {
    let long = "x".repeat(65_535);
    let p = Packet::Publish(publish(QoS::AtMostOnce, None, &long, b""));
    let mut bytes = vec![0x30, 0x81, 0x80, 0x04, 0xFF, 0xFF]; // RL 65537, topic length 65535
    bytes.extend_from_slice(long.as_bytes());
    check(V3_1_1, p, &bytes);
}

#[test]
#[rustfmt::skip]
fn encoding_a_packet_over_the_protocol_limit_fails() {
    // Topic (3 bytes) + payload of 268,435,455 bytes exceeds the largest remaining length.
    let payload = Bytes::from(vec![0u8; mqtt_codec::MAX_REMAINING_LENGTH]);
    let mut p = publish(QoS::AtMostOnce, None, "t", b"");
    p.payload = payload;
    let p = Packet::Publish(p);
    assert!(matches!(encoded_len(&p, V3_1_1), Err(EncodeError::PacketTooLarge { .. })));
    let mut buf = BytesMut::new();
    assert!(matches!(encode(&p, V3_1_1, &mut buf), Err(EncodeError::PacketTooLarge { .. })));
}
