//! Helpers shared by the integration tests. Each test crate uses a subset.
#![allow(dead_code)]

use mqtt_codec::PacketId;
use mqtt_codec::bytes::Bytes;
use mqtt_codec::bytestring::ByteString;

/// A string field.
pub fn s(x: &str) -> ByteString {
    ByteString::from(x.to_owned())
}

/// A binary field.
pub fn b(x: &[u8]) -> Bytes {
    Bytes::copy_from_slice(x)
}

/// A packet identifier (panics on 0: test data only).
pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("test packet ids are non-zero")
}

/// A user property.
pub fn up(k: &str, v: &str) -> (ByteString, ByteString) {
    (s(k), s(v))
}

/// Concatenates the fields of a hand-written wire vector.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Reads a variable byte integer at `at`; returns (value, bytes used).
/// Panics on a malformed integer: only used on our own vectors and on
/// encoder output, both of which must be well formed.
pub fn read_varint(bytes: &[u8], at: usize) -> (usize, usize) {
    let mut value = 0usize;
    for i in 0..4 {
        let byte = bytes[at + i];
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    panic!("variable byte integer longer than 4 bytes at offset {at}");
}

/// Asserts that a hand-written vector's remaining length agrees with its
/// size: catches arithmetic slips in the test data itself.
pub fn assert_vector_is_self_consistent(bytes: &[u8]) {
    assert!(bytes.len() >= 2, "a packet has at least 2 bytes");
    let (rl, used) = read_varint(bytes, 1);
    assert_eq!(
        bytes.len(),
        1 + used + rl,
        "test vector error: remaining length {rl} but {} bytes follow the fixed header",
        bytes.len() - 1 - used
    );
}
