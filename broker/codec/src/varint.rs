//! Variable byte integers (MQTT 3.1.1 section 2.2.3, MQTT 5.0 section 1.5.5):
//! seven bits a byte, least significant group first, at most four bytes.

use crate::error::{DecodeError, Violation};

/// The largest value four bytes can express (268,435,455).
pub(crate) const MAX: usize = crate::MAX_REMAINING_LENGTH;

/// The number of bytes `value` takes (1 ..= 4; values above [`MAX`] are not representable).
pub(crate) fn encoded_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Reads a variable byte integer at the start of `bytes`.
///
/// `Ok(None)`: every byte present has the continuation bit and fewer than four
/// were given, so more bytes are needed. A fourth byte with the continuation
/// bit set is malformed.
pub(crate) fn read(bytes: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, &byte) in bytes.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        Err(DecodeError::Malformed(Violation::malformed("", "variable byte integer longer than four bytes")))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::{Counter, Sink};
    use bytes::BytesMut;

    fn check(input: &[u8], expected: Result<Option<(usize, usize)>, DecodeError>) {
        assert_eq!(read(input), expected, "input {input:02X?}");
    }

    #[test]
    fn one_to_four_bytes_decode() {
        check(&[0x00], Ok(Some((0, 1))));
        check(&[0x7F], Ok(Some((127, 1))));
        check(&[0x80, 0x01], Ok(Some((128, 2))));
        check(&[0xFF, 0x7F], Ok(Some((16_383, 2))));
        check(&[0x80, 0x80, 0x01], Ok(Some((16_384, 3))));
        check(&[0xFF, 0xFF, 0xFF, 0x7F], Ok(Some((MAX, 4))));
    }

    #[test]
    fn trailing_bytes_are_not_read() {
        check(&[0x05, 0xFF, 0xFF], Ok(Some((5, 1))));
    }

    #[test]
    fn incomplete_integer_needs_more_bytes() {
        check(&[], Ok(None));
        check(&[0x80], Ok(None));
        check(&[0xFF, 0xFF, 0xFF], Ok(None));
    }

    #[test]
    fn fifth_byte_is_malformed() {
        let err = read(&[0xFF, 0xFF, 0xFF, 0xFF]).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)));
        assert!(read(&[0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
    }

    #[test]
    fn write_and_length_agree_with_read() {
        for value in [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, MAX] {
            let mut buf = BytesMut::new();
            buf.put_varint(value).unwrap();
            let mut counter = Counter(0);
            counter.put_varint(value).unwrap();
            assert_eq!(buf.len(), encoded_len(value));
            assert_eq!(counter.0, encoded_len(value));
            assert_eq!(read(&buf).unwrap(), Some((value, buf.len())));
        }
    }

    #[test]
    fn values_above_the_maximum_do_not_encode() {
        assert!(BytesMut::new().put_varint(MAX + 1).is_err());
    }
}
