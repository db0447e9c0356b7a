//! The masterless cluster (see ALGORITHM.md): membership, peer links, the
//! replicated route table and forwarding.
//!
//! - `membership`: who is in the cluster and alive (SWIM with foca, sans-IO),
//!   and its tokio driver over a UDP socket of the network seam.
//! - `routes`: the other nodes' routes as this node holds them (sans-IO).
//! - `wire`: the peer-link messages and their frames (sans-IO).
//! - `link`: outbound and inbound peer links.
//! - `node`: the member's shell: starts the rest, follows membership, feeds the links.
//! - `handover`: sessions recently handed to other nodes, for calls sent again.

pub mod handover;
pub mod link;
pub mod membership;
pub mod node;
pub mod routes;
pub mod wire;

use crate::core::cluster::ClusterCounters;

/// A node's view of the cluster (for `broker ctl cluster status` and tests).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterStatus {
    pub node: String,
    pub incarnation: u64,
    /// (name, incarnation, outbound link up)
    pub peers: Vec<(String, u64, bool)>,
    pub local_routes: Vec<String>,
    /// Per origin, the routes held for it.
    pub remote_routes: Vec<(String, Vec<String>)>,
    pub counters: ClusterCounters,
    pub forwards_dropped: u64,
    /// Per peer, the forwards waiting to be sent or acknowledged (the link's
    /// lag), including those parked for a member declared down.
    pub forwards_pending: Vec<(String, usize)>,
    /// Connections closed because their client id connected later on another node.
    pub duplicates_settled: u64,
    /// Wills this node guards for its peers.
    pub wills_guarded: usize,
}
