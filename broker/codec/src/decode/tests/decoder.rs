//! The incremental `Decoder`, and inputs that must never panic.

#![allow(clippy::unwrap_used)]

use super::*;

// ---------- Decoder ----------

const MAX: u32 = 1024;

#[test]
fn server_decoder_rejects_non_connect_first() {
    let mut d = Decoder::new(MAX);
    let err = d.decode(&mut BytesMut::from(&[0xC0][..])).unwrap_err();
    assert_eq!(outcome(Err(err)), Protocol("MQTT-3.1.0-1"));
    let err = decode_packet(None, Bytes::from_static(&[0xC0, 0x00])).unwrap_err();
    assert_eq!(err.statement(), Some("MQTT-3.1.0-1"));
}

#[test]
fn server_decoder_learns_version_from_connect() {
    let mut d = Decoder::new(MAX);
    assert_eq!(d.version(), None);
    let mut buf = BytesMut::from(&connect_body("MQTT", 5, 0x02).str("c").frame(0x10)[..]);
    buf.extend_from_slice(&[0xE0, 0x01, 0x8E]);
    assert!(matches!(d.decode(&mut buf).unwrap(), Some(Packet::Connect(_))));
    assert_eq!(d.version(), Some(V5));
    assert_eq!(d.decode(&mut buf).unwrap(), Some(Packet::Disconnect(Disconnect::new(ReasonCode::SESSION_TAKEN_OVER))));
    assert!(buf.is_empty());
    assert_eq!(d.decode(&mut buf).unwrap(), None);
}

#[test]
fn second_connect_is_a_protocol_error_whatever_its_level() {
    let mut d = Decoder::new(MAX);
    let mut buf = BytesMut::from(&connect_body("MQTT", 5, 0x02).str("c").frame(0x10)[..]);
    buf.extend_from_slice(&connect_body("MQTT", 6, 0x02).str("c").frame(0x10));
    assert!(matches!(d.decode(&mut buf).unwrap(), Some(Packet::Connect(_))));
    let err = d.decode(&mut buf).unwrap_err();
    assert_eq!(outcome(Err(err)), Protocol("MQTT-3.1.0-2"));
}

#[test]
fn decoder_waits_for_whole_packet() {
    let input = B::new().str("topic").raw(b"payload").frame(0x30);
    let mut d = Decoder::with_version(V4, MAX);
    let mut buf = BytesMut::new();
    for (i, &byte) in input.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        let got = d.decode(&mut buf).unwrap();
        if i + 1 < input.len() {
            assert_eq!(got, None, "after {} bytes", i + 1);
            assert_eq!(buf.len(), i + 1);
        } else {
            let Some(Packet::Publish(p)) = got else { panic!() };
            assert_eq!(&p.payload[..], b"payload");
        }
    }
}

#[test]
fn decoder_reserves_room_for_announced_packet() {
    let mut d = Decoder::with_version(V4, MAX);
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x02][..]);
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert!(buf.capacity() >= 3 + 256);
}

#[test]
fn too_large_packet_is_rejected_from_header() {
    let mut d = Decoder::with_version(V4, MAX);
    // Announces 268,435,455 bytes; only the header is present.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    let capacity = buf.capacity();
    let err = d.decode(&mut buf).unwrap_err();
    assert_eq!(err, DecodeError::PacketTooLarge { size: 5 + 268_435_455, max: MAX });
    assert_eq!(err.reason_code(), ReasonCode::PACKET_TOO_LARGE);
    assert_eq!(buf.capacity(), capacity);
}

#[test]
fn maximum_counts_the_fixed_header() {
    let input = B::new().raw(&[0; 8]).frame(0x30); // 10 bytes in all
    let mut d = Decoder::with_version(V4, 9);
    assert!(matches!(d.decode(&mut BytesMut::from(&input[..])), Err(DecodeError::PacketTooLarge { size: 10, max: 9 })));
    d.set_max_packet_size(10);
    assert_eq!(d.max_packet_size(), 10);
    let input = B::new().str("a").raw(&[0; 5]).frame(0x30);
    assert!(d.decode(&mut BytesMut::from(&input[..])).unwrap().is_some());
}

#[test]
fn incomplete_remaining_length_waits() {
    let mut d = Decoder::with_version(V4, MAX);
    assert_eq!(d.decode(&mut BytesMut::from(&[0x30, 0x80, 0x80][..])).unwrap(), None);
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80, 0x80][..]);
    assert!(matches!(d.decode(&mut buf), Err(DecodeError::Malformed(_))));
}

#[test]
fn client_decoder_with_version_set_later() {
    let mut d = Decoder::new(MAX);
    d.set_version(V4);
    assert_eq!(d.decode(&mut BytesMut::from(&[0xD0, 0x00][..])).unwrap(), Some(Packet::PingResp));
}

/// xorshift64: a fixed stream of pseudo-random numbers.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut next = rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..20_000 {
        let len = (next() % 64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 && !bytes.is_empty() {
            // Keep the remaining length consistent so the body gets parsed.
            let first = bytes[0];
            bytes = B::new().raw(&bytes[1..]).frame(first);
        }
        for version in [None, Some(V3), Some(V4), Some(V5)] {
            let _ = decode_packet(version, Bytes::from(bytes.clone()));
            let mut d = Decoder { max_packet_size: 128, version, max_user_properties: usize::MAX };
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = d.decode(&mut buf) {}
        }
    }
}

#[test]
fn mutated_valid_packets_never_panic() {
    let seeds = [
        connect_body("MQTT", 5, 0xEE)
            .str("c")
            .props(B::new().u8(0x18).u32(1))
            .str("w")
            .bin(b"x")
            .str("u")
            .bin(b"p")
            .frame(0x10),
        B::new().str("a").u16(1).props(B::new().u8(0x26).str("k").str("v")).raw(b"x").frame(0x32),
        B::new().u16(1).props(B::new().u8(0x0B).varint(5)).str("a/#").u8(0x2E).frame(0x82),
        B::new().u8(0).u8(0).props(B::new().u8(0x1F).str("r").u8(0x22).u16(5)).frame(0x20),
    ];
    let mut next = rng(42);
    for seed in &seeds {
        for _ in 0..5_000 {
            let mut bytes = seed.clone();
            for _ in 0..=(next() % 3) {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
            for version in [Some(V4), Some(V5)] {
                let _ = decode_packet(version, Bytes::from(bytes.clone()));
            }
        }
    }
}

// ---------- User property cap ----------

/// A v5 PUBLISH to "t" carrying `n` user properties ("k" = "v").
fn publish_with_user_properties(n: usize) -> Vec<u8> {
    let props = (0..n).fold(B::new(), |b, _| b.u8(0x26).str("k").str("v"));
    B::new().str("t").props(props).raw(b"x").frame(0x30)
}

#[test]
fn user_properties_up_to_the_cap_decode() {
    let mut d = Decoder::with_version(V5, 64 * 1024);
    d.set_max_user_properties(3);
    let Some(Packet::Publish(p)) = d.decode(&mut BytesMut::from(&publish_with_user_properties(3)[..])).unwrap() else {
        panic!("a publish")
    };
    assert_eq!(p.properties.user_properties.len(), 3);
}

#[test]
fn user_properties_beyond_the_cap_are_refused_with_quota_exceeded() {
    let mut d = Decoder::with_version(V5, 64 * 1024);
    d.set_max_user_properties(3);
    let err = d.decode(&mut BytesMut::from(&publish_with_user_properties(4)[..])).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::QUOTA_EXCEEDED, "{err}");
}

#[test]
fn the_cap_reaches_the_will_properties_of_a_connect() {
    let will_props = (0..2).fold(B::new(), |b, _| b.u8(0x26).str("k").str("v"));
    // Flags 0x06: clean start and a will at QoS 0.
    let connect = connect_body("MQTT", 5, 0x06).str("c").props(will_props).str("w").bin(b"p");
    let bytes = connect.frame(0x10);
    let mut d = Decoder::new(64 * 1024);
    d.set_max_user_properties(1);
    let err = d.decode(&mut BytesMut::from(&bytes[..])).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::QUOTA_EXCEEDED, "{err}");
    let mut d = Decoder::new(64 * 1024);
    d.set_max_user_properties(2);
    assert!(matches!(d.decode(&mut BytesMut::from(&bytes[..])).unwrap(), Some(Packet::Connect(_))));
}

#[test]
fn without_a_cap_thousands_of_user_properties_decode() {
    let mut d = Decoder::with_version(V5, 1024 * 1024);
    let Some(Packet::Publish(p)) = d.decode(&mut BytesMut::from(&publish_with_user_properties(5000)[..])).unwrap()
    else {
        panic!("a publish")
    };
    assert_eq!(p.properties.user_properties.len(), 5000);
}
