//! Sans-IO MQTT 3.1, 3.1.1 and 5.0 packet codec.
//!
//! One packet model ([`Packet`]) serves every protocol version; the version
//! decides only how a packet is laid out on the wire. The codec holds no
//! sockets, clocks or tasks: bytes in, packets out, and back.
//!
//! # Layout
//! - [`packet`]: the packet types.
//! - [`reason`]: MQTT 5 reason codes and the subsets each packet allows.
//! - [`error`]: decode/encode errors, each naming the normative statement it enforces.
//! - [`topic`]: validation of topic names and topic filters, and filter matching.
//! - `decode` / `encode`: the wire format.
//!
//! **Architecture invariant**: the codec knows nothing of sessions, tokio or the
//! broker. It rejects what is malformed in a packet on its own; rules that
//! depend on connection state (packet ids in use, topic alias ranges, receive
//! maximum) are the session's.

mod decode;
mod encode;
pub mod error;
pub mod packet;
mod properties;
pub mod reason;
pub mod topic;
mod varint;
mod wire;

pub use bytes;
pub use bytestring;
pub use decode::{Decoder, decode_packet};
pub use encode::{encode, encoded_len};
pub use error::{DecodeError, EncodeError, Violation};
pub use packet::*;
pub use reason::ReasonCode;

/// The largest remaining length a variable byte integer can express (268,435,455).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;
