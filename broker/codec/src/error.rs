//! Decode and encode errors. Every rejection names the normative statement it
//! enforces and maps to the MQTT 5 reason code the receiver reports.

use std::fmt;

use crate::reason::ReasonCode;

/// Why a byte sequence is not an acceptable packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The packet announces more bytes than the receiver's maximum packet
    /// size; detected from the fixed header, before any allocation.
    PacketTooLarge { size: usize, max: u32 },
    /// CONNECT names a protocol level this codec does not implement
    /// ([MQTT-3.1.2-2]): answer CONNACK 0x84 (or return code 1) and close.
    UnsupportedProtocolVersion { level: u8 },
    /// The packet is not well formed (reason 0x81).
    Malformed(Violation),
    /// The packet is well formed but breaks a protocol rule (reason 0x82 or
    /// the more specific code carried in the violation).
    Protocol(Violation),
}

/// A rule of the specification that a packet broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    /// The normative statement, e.g. "MQTT-3.3.2-2"; "" when the rule has no number.
    pub statement: &'static str,
    /// What was wrong, in a few words.
    pub message: &'static str,
    /// The reason code to report.
    pub reason: ReasonCode,
}

impl Violation {
    pub const fn malformed(statement: &'static str, message: &'static str) -> Self {
        Self { statement, message, reason: ReasonCode::MALFORMED_PACKET }
    }

    pub const fn protocol(statement: &'static str, message: &'static str) -> Self {
        Self { statement, message, reason: ReasonCode::PROTOCOL_ERROR }
    }
}

impl DecodeError {
    /// The MQTT 5 reason code that reports this error to the peer.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            Self::UnsupportedProtocolVersion { .. } => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            Self::Malformed(v) | Self::Protocol(v) => v.reason,
        }
    }

    /// The normative statement this error enforces, if any.
    pub fn statement(&self) -> Option<&'static str> {
        match self {
            Self::PacketTooLarge { .. } => Some("MQTT-3.2.2-15"),
            Self::UnsupportedProtocolVersion { .. } => Some("MQTT-3.1.2-2"),
            Self::Malformed(v) | Self::Protocol(v) => (!v.statement.is_empty()).then_some(v.statement),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PacketTooLarge { size, max } => {
                write!(f, "packet of {size} bytes exceeds the maximum packet size {max}")
            }
            Self::UnsupportedProtocolVersion { level } => {
                write!(f, "[MQTT-3.1.2-2] unsupported protocol level {level}")
            }
            Self::Malformed(v) | Self::Protocol(v) => {
                if v.statement.is_empty() {
                    write!(f, "{}", v.message)
                } else {
                    write!(f, "[{}] {}", v.statement, v.message)
                }
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a packet value cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The encoded packet would exceed the limit given to the encoder
    /// (the peer's maximum packet size) or the protocol's 268,435,455-byte limit.
    PacketTooLarge { size: usize, max: u32 },
    /// A field does not fit its wire representation (string over 65,535 bytes,
    /// a packet type the protocol version lacks, ...).
    Invalid(&'static str),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PacketTooLarge { size, max } => {
                write!(f, "encoded packet of {size} bytes exceeds the limit {max}")
            }
            Self::Invalid(what) => write!(f, "cannot encode: {what}"),
        }
    }
}

impl std::error::Error for EncodeError {}
