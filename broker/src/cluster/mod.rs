//! The masterless cluster (see ALGORITHM.md): membership, peer links, the
//! replicated route table and forwarding.
//!
//! - `routes`: the other nodes' routes as this node holds them (sans-IO).
//! - `wire`: the peer-link messages and their frames (sans-IO).

pub mod routes;
pub mod wire;
