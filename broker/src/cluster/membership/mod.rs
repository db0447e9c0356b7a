//! Cluster membership: which nodes are in the cluster, and which are alive.
//!
//! SWIM (probes, indirect probes, suspicion, gossip) is foca's; this module
//! gives it identities (`Member`: name + incarnation), keeps clusters apart,
//! and turns foca's notifications into `Up` / `Down` events.
//!
//! `Membership` is sans-IO and deterministic (its RNG is seeded): inputs are
//! `handle_datagram`, `handle_timeout`, `announce` and `leave`, each with the
//! current time; outputs are drained after every input with `poll_transmit`
//! (datagrams to send), `poll_event` (members up and down) and `poll_timeout`
//! (when to call `handle_timeout` next). `driver::run_membership` runs it on a
//! UDP socket of the network seam.
//!
//! # Events
//! For every node name, events alternate `Up(m)`, `Down(m)`, `Up(m')`...,
//! starting with `Up`, and `members()` is always the set of members that are
//! up. A node restarted under the same name (a new incarnation) gives
//! `Down(old)` then `Up(new)`, whether or not the old one had been detected
//! dead before. A node that the cluster wrongly declared down and that
//! rejoined gives `Down(m)` then `Up(m)` with the same `m`: same process, same
//! sessions. This node's own identity never changes.

mod driver;
mod identity;
mod io;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use bytes::Bytes;
use foca::{Foca, NoCustomBroadcast, PeriodicParams};
use rand_foca::SeedableRng;
use rand_foca::rngs::StdRng;
use tracing::{debug, info, trace, warn};

pub use driver::{run_membership, run_membership_with};
pub use foca::Config as SwimConfig;
pub use identity::{Member, NAME_LEN_MAX};

use crate::seam::Millis;
use identity::{HEADER_LEN, NodeId, SwimCodec, datagram_header};
use io::Io;

/// The largest datagram membership sends or accepts, in bytes: below any
/// Ethernet MTU, so that datagrams are not fragmented.
pub const DATAGRAM_LEN_MAX: usize = 1400;

/// A change of the live member set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    Up(Member),
    Down(Member),
}

/// Counters of what the network sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembershipStats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// Datagrams of another cluster name or protocol version, or too short to say.
    pub foreign: u64,
    /// Datagrams of our cluster that foca refused (malformed, stale, from ourselves).
    pub rejected: u64,
}

/// SWIM settings for a LAN: a member that stops answering is suspected
/// within about two probe periods and declared down 4 s later, so a crash is
/// seen in 5 to 7 s; a partition heals within about 10 s of the network.
/// (foca's `new_lan`, which follows memberlist, with faster re-announcing.)
pub fn lan_config() -> SwimConfig {
    SwimConfig {
        probe_period: Duration::from_secs(1),
        probe_rtt: Duration::from_millis(500),
        num_indirect_probes: nonzero(3),
        // Each update rides on this many messages: enough for ~100 nodes.
        max_transmissions: NonZeroU8::new(8).unwrap_or(NonZeroU8::MIN),
        suspect_to_down_after: Duration::from_secs(4),
        // Long after any stale gossip about a dead member is gone.
        remove_down_after: Some(Duration::from_secs(600)),
        max_packet_size: nonzero(DATAGRAM_LEN_MAX - HEADER_LEN),
        // Tell a member it was declared down, so that it rejoins: this heals
        // partitions and lets a restarted node replace its predecessor.
        notify_down_members: true,
        periodic_announce: Some(PeriodicParams { frequency: Duration::from_secs(10), num_members: nonzero(1) }),
        periodic_announce_to_down_members: Some(PeriodicParams {
            frequency: Duration::from_secs(10),
            num_members: nonzero(2),
        }),
        periodic_gossip: Some(PeriodicParams { frequency: Duration::from_millis(200), num_members: nonzero(3) }),
    }
}

/// `lan_config` five times faster, for tests on loopback: a crash is seen in
/// about 1.5 s.
pub fn fast_config() -> SwimConfig {
    let lan = lan_config();
    let fast = |d: Duration| d / 5;
    let fast_periodic = |p: Option<PeriodicParams>| p.map(|p| PeriodicParams { frequency: fast(p.frequency), ..p });
    SwimConfig {
        probe_period: fast(lan.probe_period),
        probe_rtt: fast(lan.probe_rtt),
        suspect_to_down_after: fast(lan.suspect_to_down_after),
        periodic_announce: fast_periodic(lan.periodic_announce),
        periodic_announce_to_down_members: fast_periodic(lan.periodic_announce_to_down_members),
        periodic_gossip: fast_periodic(lan.periodic_gossip),
        ..lan
    }
}

fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// The membership of one node (sans-IO). See the module documentation.
pub struct Membership {
    foca: Foca<NodeId, SwimCodec, StdRng, NoCustomBroadcast>,
    io: Io,
    me: Member,
    /// The members that are up, by name: what `Up` / `Down` were last said about.
    live: BTreeMap<String, Member>,
    events: VecDeque<MembershipEvent>,
    stats: MembershipStats,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership").field("me", &self.me).field("live", &self.live).finish_non_exhaustive()
    }
}

impl Membership {
    /// A node that is alone until it announces itself or is announced to.
    /// `seed` seeds foca's RNG (probe order, gossip targets).
    ///
    /// # Panics
    /// If `me.name` is empty or longer than `NAME_LEN_MAX` (configuration
    /// checks it first).
    pub fn new(me: Member, cluster_name: &str, seed: u64, mut config: SwimConfig) -> Self {
        assert!(!me.name.is_empty() && me.name.len() <= NAME_LEN_MAX, "bad member name {:?}", me.name);
        // Room for our header within DATAGRAM_LEN_MAX.
        config.max_packet_size = config.max_packet_size.min(nonzero(DATAGRAM_LEN_MAX - HEADER_LEN));
        let codec = SwimCodec::new(me.name.clone());
        let foca = Foca::new(NodeId::new(me.clone()), config, StdRng::seed_from_u64(seed), codec);
        Self {
            foca,
            io: Io::new(datagram_header(cluster_name)),
            me,
            live: BTreeMap::new(),
            events: VecDeque::new(),
            stats: MembershipStats::default(),
        }
    }

    /// This node.
    pub fn me(&self) -> &Member {
        &self.me
    }

    /// The other members that are up, by name.
    pub fn members(&self) -> Vec<Member> {
        self.live.values().cloned().collect()
    }

    /// How many other members are up.
    pub fn member_count(&self) -> usize {
        self.live.len()
    }

    pub fn stats(&self) -> MembershipStats {
        MembershipStats { datagrams_out: self.io.datagrams_out, ..self.stats }
    }

    /// Asks the node at `to` (a seed: its name is not known) to let us in.
    /// Announcing to ourselves, or to a node that is down, does nothing.
    pub fn announce(&mut self, now: Millis, to: SocketAddr) {
        self.io.now = now;
        if let Err(error) = self.foca.announce(NodeId::placeholder(to), &mut self.io) {
            debug!(%to, %error, "membership announce failed");
        }
        self.after_input();
    }

    /// A datagram from the network. Anything may arrive here: what is not a
    /// message of this cluster is counted and ignored.
    pub fn handle_datagram(&mut self, now: Millis, data: &[u8]) {
        self.io.now = now;
        self.stats.datagrams_in += 1;
        let Some(payload) = data.strip_prefix(&self.io.header[..]) else {
            self.stats.foreign += 1;
            trace!(len = data.len(), "membership datagram of another cluster or protocol ignored");
            return;
        };
        if let Err(error) = self.foca.handle_data(payload, &mut self.io) {
            self.stats.rejected += 1;
            debug!(%error, "membership datagram rejected");
        }
        self.after_input();
    }

    /// Runs the timers due at `now` (see `poll_timeout`).
    pub fn handle_timeout(&mut self, now: Millis) {
        self.io.now = now;
        let mut due = Vec::new();
        while let Some(entry) = self.io.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        // foca's order for timers handled late together (an indirect probe
        // before the next probe); the sort is stable, so deadlines order the rest.
        due.sort();
        for timer in due {
            if let Err(error) = self.foca.handle_timer(timer, &mut self.io) {
                debug!(%error, "membership timer failed");
            }
        }
        self.after_input();
    }

    /// Leaves the cluster: tells a few members that this node is down (they
    /// spread it), then ignores the cluster. Send the datagrams it queues
    /// before closing the socket. Emits no event.
    pub fn leave(&mut self, now: Millis) {
        self.io.now = now;
        self.io.leaving = true;
        if let Err(error) = self.foca.leave_cluster(&mut self.io) {
            warn!(%error, "membership leave failed");
        }
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.io.transmits.pop_front()
    }

    /// The next change of the live member set.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<MembershipEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` is due next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.io.timers.first_key_value().map(|(&(at, _), _)| at)
    }

    /// After every input: if foca's active set may have changed, compare it
    /// with `live` and emit the differences, downs before ups (so a restarted
    /// node's `Down(old)` comes before its `Up(new)`).
    fn after_input(&mut self) {
        if !std::mem::take(&mut self.io.changed) {
            return;
        }
        let active: BTreeMap<&str, &Member> = self
            .foca
            .iter_members()
            .map(|m| &m.id().member)
            .filter(|m| m.name != self.me.name)
            .map(|m| (m.name.as_str(), m))
            .collect();
        let gone: Vec<String> =
            self.live.iter().filter(|(name, m)| active.get(name.as_str()) != Some(m)).map(|(n, _)| n.clone()).collect();
        for name in gone {
            if let Some(member) = self.live.remove(&name) {
                info!(node = %member.name, incarnation = member.incarnation, addr = %member.addr, "member down");
                self.events.push_back(MembershipEvent::Down(member));
            }
        }
        for (name, member) in active {
            if !self.live.contains_key(name) {
                info!(node = %member.name, incarnation = member.incarnation, addr = %member.addr, "member up");
                self.live.insert(name.to_owned(), member.clone());
                self.events.push_back(MembershipEvent::Up(member.clone()));
            }
        }
    }
}
