//! Feeds arbitrary bytes to the decoder in server mode and with each protocol
//! version, whole and split in two; whatever decodes must encode, and decode
//! back to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_codec::bytes::{Bytes, BytesMut};
use mqtt_codec::{Decoder, Packet, ProtocolVersion, decode_packet, encode, encoded_len};

const MAX_PACKET_SIZE: u32 = 64 * 1024;

fn round_trip(packet: &Packet, version: ProtocolVersion) {
    let len = encoded_len(packet, version).expect("a decoded packet encodes");
    let mut buf = BytesMut::new();
    let written = encode(packet, version, &mut buf).expect("a decoded packet encodes");
    assert_eq!(written, len, "encoded_len disagrees with encode for {packet:?}");
    let frame_version = if matches!(packet, Packet::Connect(_)) { None } else { Some(version) };
    let again = decode_packet(frame_version, buf.freeze()).expect("an encoded packet decodes");
    assert_eq!(&again, packet, "round trip changed the packet");
}

fn drain(decoder: &mut Decoder, buf: &mut BytesMut) -> bool {
    loop {
        let before = buf.len();
        match decoder.decode(buf) {
            Ok(Some(packet)) => {
                assert!(buf.len() < before, "a decoded packet consumes bytes");
                let version = decoder.version().expect("a decoded packet implies a version");
                round_trip(&packet, version);
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

fn run(mut decoder: Decoder, data: &[u8]) {
    // Whole.
    let mut d = decoder.clone();
    let mut buf = BytesMut::from(data);
    drain(&mut d, &mut buf);
    assert!(buf.capacity() <= (MAX_PACKET_SIZE as usize).max(data.len()) * 2 + 64);

    // Split in two at a point taken from the data.
    if let Some(&first) = data.first() {
        let cut = usize::from(first) % data.len().max(1);
        let mut buf = BytesMut::from(&data[..cut]);
        if drain(&mut decoder, &mut buf) {
            buf.extend_from_slice(&data[cut..]);
            drain(&mut decoder, &mut buf);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    run(Decoder::new(MAX_PACKET_SIZE), data);
    for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        run(Decoder::with_version(version, MAX_PACKET_SIZE), data);
        let _ = decode_packet(Some(version), Bytes::copy_from_slice(data));
    }
    let _ = decode_packet(None, Bytes::copy_from_slice(data));
});
