//! Packets -> wire format. (Skeleton: bodies to be written.)

use bytes::BytesMut;

use crate::error::EncodeError;
use crate::packet::{Packet, ProtocolVersion};

/// The number of bytes `encode` would append (fixed header included).
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let _ = (packet, version);
    unimplemented!()
}

/// Appends the packet in `version`'s layout to `buf`; returns the bytes written.
pub fn encode(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) -> Result<usize, EncodeError> {
    let _ = (packet, version, buf);
    unimplemented!()
}
