//! Who a member is, as the broker sees it (`Member`) and as foca sees it
//! (`NodeId`), the codec of foca's messages, and the header that keeps
//! clusters apart.

use std::fmt;
use std::net::SocketAddr;

use bytes::{Buf, BufMut};
use foca::{Codec, Header, Identity, Message, PostcardCodec};
use serde::{Deserialize, Serialize};

/// A cluster member: one run of one node.
///
/// The name is the node (`[node] name`); the incarnation is drawn when the
/// process starts, so a restarted node is a new `Member` under the same name.
/// `addr` is the node's `[cluster] bind` address (UDP for membership, TCP for
/// peer links).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub incarnation: u64,
    pub addr: SocketAddr,
}

/// The longest node name membership accepts, in bytes. Every datagram carries
/// two identities, so names are kept short.
pub const NAME_LEN_MAX: usize = 255;

/// foca's identity of a member: the member, and how many times this process
/// rejoined after the cluster declared it down (a false suspicion, a partition).
///
/// foca keeps one identity per `addr()`, here the node name: two identities
/// with the same name are the same node, and the one of higher rank
/// (`rejoin`, then `incarnation`, then `addr`) replaces the other. Rejoining
/// (`renew`) bumps `rejoin` and keeps the `Member`, so a falsely suspected
/// node comes back as the same `Member`. A restarted node starts at
/// `rejoin = 0`: if the cluster still holds its predecessor at a higher rank,
/// the cluster answers it `TurnUndead` (`notify_down_members`), it renews, and
/// after at most the predecessor's `rejoin + 1` renewals it wins, whatever the
/// order of the two incarnations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct NodeId {
    pub member: Member,
    pub rejoin: u32,
}

impl NodeId {
    pub fn new(member: Member) -> Self {
        Self { member, rejoin: 0 }
    }

    /// The identity to announce to when only an address is known (a seed).
    /// Its empty name marks it; the receiving codec reads it as "whoever you
    /// are" (see `SwimCodec::decode_header`). It never becomes a member.
    pub fn placeholder(addr: SocketAddr) -> Self {
        Self::new(Member { name: String::new(), incarnation: 0, addr })
    }

    fn is_placeholder(&self) -> bool {
        self.member.name.is_empty()
    }

    fn rank(&self) -> (u32, u64, SocketAddr) {
        (self.rejoin, self.member.incarnation, self.member.addr)
    }
}

impl Identity for NodeId {
    type Addr = String;

    fn renew(&self) -> Option<Self> {
        Some(Self { member: self.member.clone(), rejoin: self.rejoin.checked_add(1)? })
    }

    fn addr(&self) -> String {
        self.member.name.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.rank() > adversary.rank()
    }
}

/// foca's postcard codec, plus two rules: a decoded identity must have a
/// valid name, and an `Announce` addressed to a placeholder is addressed to us.
#[derive(Debug)]
pub(super) struct SwimCodec {
    /// Our node name: what a placeholder destination stands for.
    local_name: String,
}

impl SwimCodec {
    pub fn new(local_name: String) -> Self {
        Self { local_name }
    }
}

type PostcardError = <PostcardCodec as Codec<NodeId>>::Error;

#[derive(Debug)]
pub(super) enum CodecError {
    Postcard(PostcardError),
    /// An identity with an empty or over-long name.
    BadName,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Postcard(e) => write!(f, "postcard: {e}"),
            CodecError::BadName => f.write_str("member name empty or longer than NAME_LEN_MAX"),
        }
    }
}

impl std::error::Error for CodecError {}

fn check_name(id: &NodeId) -> Result<(), CodecError> {
    let len = id.member.name.len();
    if len == 0 || len > NAME_LEN_MAX { Err(CodecError::BadName) } else { Ok(()) }
}

impl Codec<NodeId> for SwimCodec {
    type Error = CodecError;

    fn encode_header(&mut self, header: &Header<NodeId>, buf: impl BufMut) -> Result<(), Self::Error> {
        PostcardCodec.encode_header(header, buf).map_err(CodecError::Postcard)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<NodeId>, Self::Error> {
        let mut header = PostcardCodec.decode_header(buf).map_err(CodecError::Postcard)?;
        check_name(&header.src)?;
        // foca accepts an Announce only when its destination has our `addr()`
        // (our name); a joiner that knows only our address cannot say it.
        if header.message == Message::Announce && header.dst.is_placeholder() {
            header.dst.member.name.clone_from(&self.local_name);
        }
        Ok(header)
    }

    fn encode_member(&mut self, member: &foca::Member<NodeId>, buf: impl BufMut) -> Result<(), Self::Error> {
        PostcardCodec.encode_member(member, buf).map_err(CodecError::Postcard)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<foca::Member<NodeId>, Self::Error> {
        let member = PostcardCodec.decode_member(buf).map_err(CodecError::Postcard)?;
        check_name(member.id())?;
        Ok(member)
    }
}

/// Bumped when the datagram format changes; nodes ignore other versions.
pub(super) const PROTOCOL_VERSION: u8 = 1;

/// Every datagram starts with the protocol version and a hash of the cluster
/// name, so that clusters sharing a network ignore each other.
pub(super) const HEADER_LEN: usize = 9;

pub(super) fn datagram_header(cluster_name: &str) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[0] = PROTOCOL_VERSION;
    header[1..].copy_from_slice(&fnv1a64(cluster_name.as_bytes()).to_be_bytes());
    header
}

/// FNV-1a: stable across builds and platforms (std's hashers promise neither).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, incarnation: u64, rejoin: u32) -> NodeId {
        NodeId {
            member: Member { name: name.into(), incarnation, addr: SocketAddr::from(([127, 0, 0, 1], 1)) },
            rejoin,
        }
    }

    #[test]
    fn identities_with_the_same_name_are_one_node() {
        assert_eq!(id("a", 1, 0).addr(), id("a", 2, 5).addr());
        assert_ne!(id("a", 1, 0).addr(), id("b", 1, 0).addr());
    }

    #[test]
    fn a_renewed_identity_wins_and_keeps_its_member() {
        let old = id("a", 7, 0);
        let renewed = old.renew().expect("renewable");
        assert_eq!(renewed.member, old.member);
        assert!(renewed.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&renewed));
    }

    #[test]
    fn rejoins_rank_before_incarnations() {
        assert!(id("a", 1, 1).win_addr_conflict(&id("a", 9, 0)));
        assert!(id("a", 9, 0).win_addr_conflict(&id("a", 1, 0)));
    }

    #[test]
    fn the_cluster_header_differs_between_clusters_and_is_stable() {
        assert_ne!(datagram_header("mqtt"), datagram_header("mqtt2"));
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
