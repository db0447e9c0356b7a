//! `[limits]`: connection and message rate limits, and bans.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use serde::Deserialize;

/// `[limits]`: how fast clients may connect and send, and who may not
/// connect at all (README, "Hardening"). Every rate is a token bucket; a rate
/// of 0 turns that limit off, which is the default for rates (as in EMQX and
/// Mosquitto): the right numbers depend on the deployment.
///
/// - `max_conn_rate`: new connections per second one listener accepts;
///   beyond it, sockets are closed as they are accepted.
/// - `max_conn_burst`: connections a listener accepts at once before the rate
///   applies; 0: one second's worth.
/// - `max_conn_rate_per_ip`, `max_conn_burst_per_ip`: the same per source
///   address (an IPv6 client by its /64 network; behind a WebSocket
///   listener's trusted proxy, the address the proxy forwarded).
/// - `max_tracked_ips`: source addresses whose connection rate is tracked at
///   once; when the table is full, addresses with a full bucket are
///   forgotten, and if none is, a new address is not limited (counted).
/// - `max_messages_per_sec`: PUBLISH packets per second one client may send;
///   beyond it the broker stops reading from that client until it is back
///   within the rate (back-pressure, not disconnect). The bucket holds one
///   second's worth.
/// - `max_bytes_per_sec`: the same for bytes received from one client.
/// - `bans_file`: a JSON file the bans are kept in across restarts (written
///   on every change); unset: bans live in memory only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_conn_rate: u32,
    pub max_conn_burst: u32,
    pub max_conn_rate_per_ip: u32,
    pub max_conn_burst_per_ip: u32,
    pub max_tracked_ips: NonZeroUsize,
    pub max_messages_per_sec: u32,
    pub max_bytes_per_sec: u32,
    pub bans_file: Option<PathBuf>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_conn_rate: 0,
            max_conn_burst: 0,
            max_conn_rate_per_ip: 0,
            max_conn_burst_per_ip: 0,
            max_tracked_ips: NonZeroUsize::new(65_536).unwrap_or(NonZeroUsize::MIN),
            max_messages_per_sec: 0,
            max_bytes_per_sec: 0,
            bans_file: None,
        }
    }
}
