//! An MQTT 3.1 / 3.1.1 / 5.0 broker.
//!
//! # Layout
//! - [`core`]: the sans-IO broker: sessions, routing, retained messages, the
//!   QoS flows. Packets and clock readings in, packets and wake-ups out.
//! - [`server`]: the tokio shell: listeners, one task per connection, the
//!   timer task, graceful shutdown.
//! - [`seam`]: the only doors to the network, time, randomness and spawning.
//! - [`config`]: the TOML configuration and its defaults.
//! - [`auth`]: authentication (who a client is); [`authz`]: authorization (what it may do).
//! - [`cluster`]: membership, peer links, replicated routes, forwarding (ALGORITHM.md).
//! - [`admin`]: the HTTP API `broker ctl` talks to.
//!
//! **Architecture invariant**: `core` never awaits, never reads a clock and
//! never touches a socket; `server` never decides anything the protocol
//! specifies.

pub mod admin;
pub mod auth;
pub mod authz;
pub mod buggify;
pub mod cluster;
pub mod config;
pub mod core;
pub mod hash;
pub mod seam;
pub mod server;

pub use config::Config;
pub use server::Server;
