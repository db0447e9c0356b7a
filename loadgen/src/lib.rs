//! An MQTT load generator in the manner of emqtt-bench, built to measure honestly.
//!
//! Layout:
//! - [`scenario`]: the model of a run (target, client groups, ordered phases) and its checks.
//! - [`template`]: topic templates (`%i`, `%c`, `%u`, `%s`, `%rand_N`).
//! - [`payload`]: the header each message carries (publisher, sequence, scheduled time)
//!   and the receiver's sequence check.
//! - [`stats`]: counters and latency histograms, sampled each second.
//! - [`transport`]: TCP, TLS, WebSocket and QUIC connections, and the
//!   per-run state they share (TLS configuration, QUIC endpoints).
//! - [`driver`]: one client task per connection, generic over the transport.
//! - [`result`]: the JSON a run writes.
//! - [`report`]: Markdown and SVG plots from result files.

pub mod collect;
pub mod driver;
pub mod engine;
pub mod payload;
pub mod procfs;
pub mod remote;
pub mod report;
pub mod result;
pub mod scenario;
pub mod session;
pub mod stats;
pub mod template;
pub mod transport;
