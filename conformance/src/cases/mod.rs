//! The cases, one module per area of the specification. Each module's
//! `cases()` returns its cases; `all()` gathers them.
//!
//! - `connect`: CONNECT / CONNACK, client identifiers, sessions, keep alive,
//!   wills, DISCONNECT, session takeover and expiry.
//! - `publish`: PUBLISH and the QoS 1/2 flows, retained messages, topic
//!   aliases, message expiry, flow control, ordering.
//! - `subscribe`: SUBSCRIBE / UNSUBSCRIBE, topic filters and matching,
//!   subscription options and identifiers, shared subscriptions.
//! - `malformed`: data representation, fixed header, packet identifiers,
//!   properties and reason codes, and the server's reaction to malformed
//!   packets and protocol errors.

mod connect;
mod malformed;
mod publish;
mod subscribe;

use crate::case::Case;

/// Every case of the suite.
pub fn all() -> Vec<Case> {
    [connect::cases(), publish::cases(), subscribe::cases(), malformed::cases()].into_iter().flatten().collect()
}
