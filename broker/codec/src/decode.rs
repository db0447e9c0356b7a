//! Wire format -> packets. (Skeleton: bodies to be written.)

use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;
use crate::packet::{Packet, ProtocolVersion};

/// Incremental decoder over a receive buffer.
///
/// A server creates it without a version: the first packet must be CONNECT
/// ([MQTT-3.1.0-1]) and fixes the version for the rest of the connection. A
/// client creates it with the version it sent.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_packet_size: u32,
    version: Option<ProtocolVersion>,
}

impl Decoder {
    /// A decoder that expects CONNECT first and learns the version from it.
    pub fn new(max_packet_size: u32) -> Self {
        Self { max_packet_size, version: None }
    }

    /// A decoder for a connection whose version is known.
    pub fn with_version(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Self { max_packet_size, version: Some(version) }
    }

    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    pub fn set_max_packet_size(&mut self, max_packet_size: u32) {
        self.max_packet_size = max_packet_size;
    }

    /// Decodes the next whole packet at the front of `buf`, removing its bytes.
    /// `Ok(None)` means more bytes are needed; no memory is reserved for a
    /// packet larger than the maximum packet size.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let _ = buf;
        unimplemented!()
    }
}

/// Decodes one complete packet (fixed header included). With `version`
/// `None` only CONNECT is accepted.
pub fn decode_packet(version: Option<ProtocolVersion>, frame: Bytes) -> Result<Packet, DecodeError> {
    let _ = (version, frame);
    unimplemented!()
}
