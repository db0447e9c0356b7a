//! Primitive fields: a zero-copy reader over a frame and a byte sink that
//! either writes or only counts, so that `encoded_len` and `encode` share code.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::{DecodeError, EncodeError, Violation};
use crate::varint;

/// The largest string or binary field: a two-byte length prefix.
pub(crate) const MAX_FIELD: usize = u16::MAX as usize;

pub(crate) fn malformed(statement: &'static str, message: &'static str) -> DecodeError {
    DecodeError::Malformed(Violation::malformed(statement, message))
}

pub(crate) fn protocol(statement: &'static str, message: &'static str) -> DecodeError {
    DecodeError::Protocol(Violation::protocol(statement, message))
}

/// The statement id for `v5`, or the MQTT 3.1.1 one otherwise.
pub(crate) fn sid(v5: bool, v311: &'static str, v50: &'static str) -> &'static str {
    if v5 { v50 } else { v311 }
}

fn truncated() -> DecodeError {
    malformed("", "remaining length too short for the packet's fields")
}

/// Reads fields from a frame; every slice it returns shares the frame's memory.
pub(crate) struct Reader {
    data: Bytes,
    pos: usize,
    /// Chooses the MQTT 5.0 statement ids (else 3.1.1) for string errors.
    v5: bool,
    /// Most user properties one property block may hold (the receiver's limit).
    max_user_properties: usize,
}

impl Reader {
    pub(crate) fn new(data: Bytes, v5: bool) -> Self {
        Self { data, pos: 0, v5, max_user_properties: usize::MAX }
    }

    pub(crate) fn with_max_user_properties(mut self, max: usize) -> Self {
        self.max_user_properties = max;
        self
    }

    pub(crate) fn max_user_properties(&self) -> usize {
        self.max_user_properties
    }

    pub(crate) fn v5(&self) -> bool {
        self.v5
    }

    pub(crate) fn set_v5(&mut self, v5: bool) {
        self.v5 = v5;
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        if end > self.data.len() {
            return Err(truncated());
        }
        let out = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> Bytes {
        let out = self.data.slice(self.pos.min(self.data.len())..);
        self.pos = self.data.len();
        out
    }

    /// A reader over the next `n` bytes (a property block).
    pub(crate) fn sub(&mut self, n: usize) -> Result<Reader, DecodeError> {
        let (v5, max) = (self.v5, self.max_user_properties);
        Ok(Reader::new(self.take(n)?, v5).with_max_user_properties(max))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.data.get(self.pos).ok_or_else(truncated)?;
        self.pos += 1;
        Ok(byte)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        match *b {
            [hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
            _ => Err(truncated()),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        match *b {
            [a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d])),
            _ => Err(truncated()),
        }
    }

    pub(crate) fn varint(&mut self) -> Result<usize, DecodeError> {
        let tail = self.data.get(self.pos..).unwrap_or_default();
        match varint::read(tail)? {
            Some((value, len)) => {
                self.pos += len;
                Ok(value)
            }
            None => Err(truncated()),
        }
    }

    /// Binary data: a two-byte length and that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 encoded string: well formed and without U+0000.
    pub(crate) fn string(&mut self) -> Result<ByteString, DecodeError> {
        let raw = self.binary()?;
        let s = ByteString::try_from(raw)
            .map_err(|_| malformed(sid(self.v5, "MQTT-1.5.3-1", "MQTT-1.5.4-1"), "ill-formed UTF-8 string"))?;
        if s.as_bytes().contains(&0) {
            return Err(malformed(sid(self.v5, "MQTT-1.5.3-2", "MQTT-1.5.4-2"), "UTF-8 string contains U+0000"));
        }
        Ok(s)
    }
}

/// Where encoded bytes go: a buffer, or a counter that only measures.
pub(crate) trait Sink {
    fn put_u8(&mut self, value: u8);
    fn put_slice(&mut self, bytes: &[u8]);

    fn put_u16(&mut self, value: u16) {
        self.put_slice(&value.to_be_bytes());
    }

    fn put_u32(&mut self, value: u32) {
        self.put_slice(&value.to_be_bytes());
    }

    fn put_varint(&mut self, value: usize) -> Result<(), EncodeError> {
        if value > varint::MAX {
            return Err(EncodeError::Invalid("value exceeds the variable byte integer range"));
        }
        let mut rest = value;
        loop {
            // `rest % 128` always fits a byte.
            let mut byte = (rest % 128) as u8;
            rest /= 128;
            if rest > 0 {
                byte |= 0x80;
            }
            self.put_u8(byte);
            if rest == 0 {
                return Ok(());
            }
        }
    }

    fn put_binary(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let len =
            u16::try_from(bytes.len()).map_err(|_| EncodeError::Invalid("binary field longer than 65,535 bytes"))?;
        self.put_u16(len);
        self.put_slice(bytes);
        Ok(())
    }

    fn put_str(&mut self, s: &str) -> Result<(), EncodeError> {
        if s.len() > MAX_FIELD {
            return Err(EncodeError::Invalid("UTF-8 string longer than 65,535 bytes"));
        }
        self.put_binary(s.as_bytes())
    }
}

/// Counts the bytes a write would produce.
pub(crate) struct Counter(pub(crate) usize);

impl Sink for Counter {
    fn put_u8(&mut self, _: u8) {
        self.0 += 1;
    }

    fn put_slice(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

impl Sink for BytesMut {
    fn put_u8(&mut self, value: u8) {
        BufMut::put_u8(self, value);
    }

    fn put_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn reader(bytes: &'static [u8]) -> Reader {
        Reader::new(Bytes::from_static(bytes), true)
    }

    #[test]
    fn strings_are_slices_of_the_frame() {
        let frame = Bytes::from_static(b"\x00\x03abc");
        let mut r = Reader::new(frame.clone(), true);
        let s = r.string().unwrap();
        assert_eq!(&*s, "abc");
        assert_eq!(s.as_bytes().as_ptr(), frame[2..].as_ptr());
    }

    #[test]
    fn surrogate_code_point_is_malformed() {
        let err = reader(b"\x00\x03\xED\xA0\x80").string().unwrap_err();
        assert_eq!(err.statement(), Some("MQTT-1.5.4-1"));
    }

    #[test]
    fn null_character_is_malformed() {
        let mut r = reader(b"\x00\x03a\x00b");
        r.set_v5(false);
        let err = r.string().unwrap_err();
        assert_eq!(err.statement(), Some("MQTT-1.5.3-2"));
        assert!(matches!(err, DecodeError::Malformed(_)));
    }

    #[test]
    fn short_fields_are_malformed() {
        assert!(reader(b"\x00\x05abc").string().is_err());
        assert!(reader(b"\x01").u16().is_err());
        assert!(reader(b"\x01\x02\x03").u32().is_err());
        assert!(reader(b"\x80").varint().is_err());
        assert!(reader(b"").u8().is_err());
    }

    #[test]
    fn long_strings_do_not_encode() {
        let long = "a".repeat(MAX_FIELD + 1);
        assert!(Counter(0).put_str(&long).is_err());
        assert!(Counter(0).put_str(&long[1..]).is_ok());
    }
}
