//! An MQTT 3.1.1 and 5.0 server conformance suite, keyed to the normative
//! statements of both standards and runnable against any broker.
//!
//! # Layout
//! - [`wire`]: the suite's own byte writer and reader (independent of the
//!   broker's codec, so that one bug cannot hide on both sides).
//! - [`packets`]: builders for what cases send, readers for the replies.
//! - [`client`]: a raw connection: send bytes, receive frames, observe closes.
//! - [`case`]: `Case`, `Ctx` (target, unique names, capabilities), outcomes.
//! - [`cases`]: the cases, one module per area of the specification.
//! - [`catalogue`]: every server statement with its paraphrase and status.
//! - [`runner`]: runs cases with bounded concurrency and time; table and JSON.

pub mod case;
pub mod cases;
pub mod catalogue;
pub mod client;
pub mod packets;
pub mod runner;
pub mod wire;
