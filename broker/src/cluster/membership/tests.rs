//! Membership scenarios on an in-memory network with simulated time: every
//! node is a real `Membership` with production settings (`lan_config`); the
//! network delivers each datagram after `LATENCY_MS` unless the receiver is
//! crashed or on the other side of a partition. Each node's events are checked
//! as they come out (per name they alternate Up, Down, Up...; `members()`
//! always equals what the events said) and bounds are in simulated time.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const LATENCY_MS: Millis = 1;
const CLUSTER: &str = "test-cluster";

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 4370))
}

fn member(i: u8, incarnation: u64) -> Member {
    Member { name: format!("node{i}"), incarnation, addr: addr(i) }
}

#[derive(Debug)]
struct Node {
    membership: Membership,
    /// The live set according to the events.
    view: BTreeMap<String, Member>,
    log: Vec<(Millis, MembershipEvent)>,
}

#[derive(Debug, Default)]
struct Sim {
    now: Millis,
    nodes: BTreeMap<SocketAddr, Node>,
    /// Datagrams in flight: (delivery time, sequence) -> (source, destination, bytes).
    wire: BTreeMap<(Millis, u64), (SocketAddr, SocketAddr, Bytes)>,
    sent: u64,
    /// Partition side of each address; absent means side 0.
    side: BTreeMap<SocketAddr, u8>,
    /// Datagrams as sent, for the garbage test.
    captured: Vec<Bytes>,
}

impl Sim {
    fn start(&mut self, me: Member, cluster: &str) {
        let ip = match me.addr.ip() {
            std::net::IpAddr::V4(ip) => u32::from(ip),
            std::net::IpAddr::V6(_) => 0,
        };
        let seed = u64::from(ip) << 32 ^ me.incarnation;
        let node = Node {
            membership: Membership::new(me.clone(), cluster, seed, lan_config()),
            view: BTreeMap::new(),
            log: Vec::new(),
        };
        assert!(self.nodes.insert(me.addr, node).is_none(), "{} already runs", me.addr);
    }

    /// Starts nodes 1..=n; each announces to node 1.
    fn cluster(n: u8) -> Self {
        let mut sim = Sim::default();
        for i in 1..=n {
            sim.start(member(i, 100), CLUSTER);
        }
        for i in 2..=n {
            sim.announce(addr(i), addr(1));
        }
        sim
    }

    fn crash(&mut self, at: SocketAddr) {
        self.nodes.remove(&at).expect("running node");
    }

    fn node(&mut self, at: SocketAddr) -> &mut Node {
        self.nodes.get_mut(&at).expect("running node")
    }

    fn announce(&mut self, from: SocketAddr, to: SocketAddr) {
        let now = self.now;
        self.node(from).membership.announce(now, to);
        self.drain(from);
    }

    fn inject(&mut self, to: SocketAddr, data: &[u8]) {
        let now = self.now;
        self.node(to).membership.handle_datagram(now, data);
        self.drain(to);
    }

    /// Moves a node's outputs to the wire and checks its events.
    fn drain(&mut self, at: SocketAddr) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&at) else { return };
        while let Some((to, data)) = node.membership.poll_transmit() {
            self.sent += 1;
            self.captured.push(data.clone());
            self.wire.insert((now + LATENCY_MS, self.sent), (at, to, data));
        }
        while let Some(event) = node.membership.poll_event() {
            match &event {
                MembershipEvent::Up(m) => {
                    let before = node.view.insert(m.name.clone(), m.clone());
                    assert!(before.is_none(), "{at}: Up({m:?}) while {before:?} was up");
                }
                MembershipEvent::Down(m) => {
                    let before = node.view.remove(&m.name);
                    assert_eq!(before.as_ref(), Some(m), "{at}: Down({m:?}) of a member that was not up");
                }
            }
            node.log.push((now, event));
        }
        let members: BTreeMap<String, Member> =
            node.membership.members().into_iter().map(|m| (m.name.clone(), m)).collect();
        assert_eq!(members, node.view, "{at}: members() disagrees with the events");
    }

    /// Advances to the next datagram or timer and handles everything due then.
    fn step(&mut self) -> bool {
        let next_datagram = self.wire.first_key_value().map(|(&(at, _), _)| at);
        let next_timer = self.nodes.values().filter_map(|n| n.membership.poll_timeout()).min();
        let Some(next) = next_datagram.into_iter().chain(next_timer).min() else { return false };
        self.now = self.now.max(next);
        while let Some(entry) = self.wire.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let (from, to, data) = entry.remove();
            if self.side(from) != self.side(to) {
                continue;
            }
            if let Some(node) = self.nodes.get_mut(&to) {
                node.membership.handle_datagram(self.now, &data);
                self.drain(to);
            }
        }
        let due: Vec<SocketAddr> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.membership.poll_timeout().is_some_and(|at| at <= self.now))
            .map(|(&a, _)| a)
            .collect();
        for at in due {
            let now = self.now;
            self.node(at).membership.handle_timeout(now);
            self.drain(at);
        }
        true
    }

    /// Runs until `done` holds; returns how long that took, or `None` after `limit_ms`.
    fn run_until(&mut self, limit_ms: Millis, done: impl Fn(&Sim) -> bool) -> Option<Millis> {
        let start = self.now;
        while self.now <= start + limit_ms {
            if done(self) {
                return Some(self.now - start);
            }
            if !self.step() {
                break;
            }
        }
        None
    }

    fn run_for(&mut self, ms: Millis) {
        let _ = self.run_until(ms, |_| false);
    }

    /// Every running node sees exactly the other running nodes, as they are now.
    fn converged(&self) -> bool {
        self.nodes.iter().all(|(at, node)| {
            let others: BTreeMap<String, Member> = self
                .nodes
                .iter()
                .filter(|(other, _)| *other != at)
                .map(|(_, n)| (n.membership.me().name.clone(), n.membership.me().clone()))
                .collect();
            node.view == others
        })
    }

    fn side(&self, at: SocketAddr) -> u8 {
        self.side.get(&at).copied().unwrap_or(0)
    }

    fn sees(&self, at: SocketAddr, m: &Member) -> bool {
        self.nodes[&at].view.get(&m.name) == Some(m)
    }

    fn sees_name(&self, at: SocketAddr, name: &str) -> bool {
        self.nodes[&at].view.contains_key(name)
    }
}

#[test]
fn three_members_see_each_other_up() {
    let mut sim = Sim::cluster(3);
    let took = sim.run_until(3_000, Sim::converged).expect("3 nodes converge within 3 s");
    eprintln!("3 nodes converged in {took} ms (simulated)");
    for node in sim.nodes.values() {
        assert_eq!(node.log.len(), 2, "one Up per other node: {:?}", node.log);
    }
}

#[test]
fn five_members_joining_through_one_seed_see_each_other_up() {
    let mut sim = Sim::cluster(5);
    let took = sim.run_until(5_000, Sim::converged).expect("5 nodes converge within 5 s");
    eprintln!("5 nodes converged in {took} ms (simulated)");
}

#[test]
fn five_members_joining_along_a_chain_see_each_other_up() {
    let mut sim = Sim::default();
    for i in 1..=5 {
        sim.start(member(i, 100), CLUSTER);
    }
    for i in 2..=5 {
        sim.announce(addr(i), addr(i - 1));
    }
    let took = sim.run_until(5_000, Sim::converged).expect("a chain of 5 converges within 5 s");
    eprintln!("5 nodes (chain) converged in {took} ms (simulated)");
}

#[test]
fn a_member_that_stops_answering_is_down_within_ten_seconds() {
    for n in [3, 5] {
        let mut sim = Sim::cluster(n);
        sim.run_until(5_000, Sim::converged).expect("converged");
        sim.run_for(2_000);
        sim.crash(addr(n));
        let gone = member(n, 100);
        let took = sim
            .run_until(10_000, |s| s.nodes.keys().all(|&a| !s.sees(a, &gone)))
            .expect("the crashed node is down everywhere within 10 s");
        eprintln!("{n} nodes: crash detected everywhere in {took} ms (simulated)");
        assert!(took >= 4_000, "not before the suspicion time: {took} ms");
        assert!(sim.converged());
    }
}

#[test]
fn a_restarted_member_is_up_again_under_its_new_incarnation() {
    let mut sim = Sim::cluster(3);
    sim.run_until(3_000, Sim::converged).expect("converged");
    sim.crash(addr(3));
    sim.run_until(10_000, |s| !s.sees_name(addr(1), "node3") && !s.sees_name(addr(2), "node3")).expect("down");
    sim.start(member(3, 101), CLUSTER);
    sim.announce(addr(3), addr(1));
    let took = sim.run_until(3_000, Sim::converged).expect("the restarted node rejoins within 3 s");
    eprintln!("restart after detection: rejoined in {took} ms (simulated)");
    for at in [addr(1), addr(2)] {
        let events: Vec<_> =
            sim.nodes[&at].log.iter().filter(|(_, e)| event_name(e) == "node3").map(|(_, e)| e.clone()).collect();
        assert_eq!(
            events,
            [
                MembershipEvent::Up(member(3, 100)),
                MembershipEvent::Down(member(3, 100)),
                MembershipEvent::Up(member(3, 101))
            ]
        );
    }
}

#[test]
fn a_member_restarted_before_its_death_was_noticed_is_replaced_down_then_up() {
    let mut sim = Sim::cluster(3);
    sim.run_until(3_000, Sim::converged).expect("converged");
    sim.crash(addr(3));
    sim.start(member(3, 101), CLUSTER);
    sim.announce(addr(3), addr(1));
    let took = sim.run_until(3_000, Sim::converged).expect("the restarted node replaces the old one within 3 s");
    eprintln!("restart before detection: replaced in {took} ms (simulated)");
    for at in [addr(1), addr(2)] {
        let events: Vec<_> =
            sim.nodes[&at].log.iter().filter(|(_, e)| event_name(e) == "node3").map(|(_, e)| e.clone()).collect();
        assert_eq!(
            events,
            [
                MembershipEvent::Up(member(3, 100)),
                MembershipEvent::Down(member(3, 100)),
                MembershipEvent::Up(member(3, 101))
            ]
        );
    }
    // And it stays that way.
    sim.run_for(20_000);
    assert!(sim.converged());
}

#[test]
fn a_member_restarted_with_a_lower_incarnation_still_replaces_the_old_one() {
    let mut sim = Sim::cluster(3);
    sim.run_until(3_000, Sim::converged).expect("converged");
    sim.crash(addr(3));
    sim.start(member(3, 7), CLUSTER);
    sim.announce(addr(3), addr(1));
    let took = sim.run_until(5_000, Sim::converged).expect("the restarted node replaces the old one within 5 s");
    eprintln!("restart with a lower incarnation: replaced in {took} ms (simulated)");
    let events: Vec<_> =
        sim.nodes[&addr(1)].log.iter().filter(|(_, e)| event_name(e) == "node3").map(|(_, e)| e.clone()).collect();
    assert_eq!(
        events,
        [MembershipEvent::Up(member(3, 100)), MembershipEvent::Down(member(3, 100)), MembershipEvent::Up(member(3, 7))]
    );
    sim.run_for(20_000);
    assert!(sim.converged());
}

/// Incarnations must differ between runs: a node restarted under the same
/// one is, to the cluster, the same member. Once its death was noticed it
/// comes back (`Down` then `Up` of the same member); before that, nothing is
/// said at all.
#[test]
fn a_member_restarted_under_the_same_incarnation_is_the_same_member() {
    let mut sim = Sim::cluster(3);
    sim.run_until(3_000, Sim::converged).expect("converged");
    sim.crash(addr(3));
    sim.start(member(3, 100), CLUSTER);
    sim.announce(addr(3), addr(1));
    sim.run_for(20_000);
    assert!(sim.converged());
    assert_eq!(sim.nodes[&addr(1)].log.len(), 2, "no event: {:?}", sim.nodes[&addr(1)].log);

    sim.crash(addr(3));
    sim.run_until(10_000, |s| !s.sees_name(addr(1), "node3")).expect("down");
    sim.start(member(3, 100), CLUSTER);
    sim.announce(addr(3), addr(1));
    sim.run_until(5_000, Sim::converged).expect("back up within 5 s");
}

#[test]
fn a_graceful_leave_is_seen_within_a_second() {
    for n in [3, 5] {
        let mut sim = Sim::cluster(n);
        sim.run_until(5_000, Sim::converged).expect("converged");
        let leaver = addr(n);
        let now = sim.now;
        sim.node(leaver).membership.leave(now);
        sim.drain(leaver);
        assert!(sim.node(leaver).log.iter().all(|(at, _)| *at < now), "leave emits no event");
        // The leaver's datagrams go out; then it is gone.
        sim.step();
        sim.crash(leaver);
        let gone = member(n, 100);
        let took =
            sim.run_until(1_000, |s| s.nodes.keys().all(|&a| !s.sees(a, &gone))).expect("the leave is seen within 1 s");
        eprintln!("{n} nodes: leave seen everywhere in {took} ms (simulated)");
    }
}

#[test]
fn a_member_of_another_cluster_is_never_seen() {
    let mut sim = Sim::cluster(2);
    sim.start(member(9, 100), "another-cluster");
    sim.announce(addr(9), addr(1));
    sim.announce(addr(1), addr(9));
    sim.run_for(15_000);
    assert_eq!(sim.nodes[&addr(1)].view.keys().collect::<Vec<_>>(), ["node2"]);
    assert!(sim.nodes[&addr(9)].view.is_empty());
    assert!(sim.nodes[&addr(1)].membership.stats().foreign >= 1);
    assert!(sim.nodes[&addr(9)].membership.stats().foreign >= 1);
}

#[test]
fn announcing_to_ourselves_is_harmless() {
    let mut sim = Sim::cluster(2);
    sim.announce(addr(1), addr(1));
    sim.run_until(3_000, Sim::converged).expect("converged");
    sim.run_for(5_000);
    assert!(sim.converged());
    assert!(sim.nodes[&addr(1)].membership.stats().rejected >= 1, "our own announce is refused");
}

#[test]
fn garbage_datagrams_are_ignored() {
    let mut sim = Sim::cluster(3);
    sim.run_until(3_000, Sim::converged).expect("converged");
    let header = datagram_header(CLUSTER);
    let samples = sim.captured.clone();
    let mut rng = StdRng::seed_from_u64(5);
    for round in 0..3_000u32 {
        let mut random = |len: usize| -> Vec<u8> { (0..len).map(|_| rng.random()).collect() };
        let data: Vec<u8> = match round % 4 {
            // Random bytes, of any length.
            0 => {
                let len = random(2).iter().map(|&b| usize::from(b)).product::<usize>() % (2 * DATAGRAM_LEN_MAX);
                random(len)
            }
            // Our header, then random bytes.
            1 => {
                let len = usize::from(random(1)[0]);
                header.iter().copied().chain(random(len)).collect()
            }
            // A real datagram cut short.
            2 => {
                let sample = &samples[usize::from(random(1)[0]) % samples.len()];
                sample[..usize::from(random(1)[0]) % sample.len()].to_vec()
            }
            // A real datagram with random bytes after it.
            _ => {
                let sample = &samples[usize::from(random(1)[0]) % samples.len()];
                let extra = 1 + usize::from(random(1)[0]) % 8;
                sample.iter().copied().chain(random(extra)).collect()
            }
        };
        let to = addr(rng.random_range(1..=3));
        sim.inject(to, &data);
        sim.step();
    }
    let rejected: u64 = sim.nodes.values().map(|n| n.membership.stats().rejected + n.membership.stats().foreign).sum();
    assert!(rejected > 2_000, "{rejected}");
    sim.run_for(10_000);
    assert!(sim.converged());
    for node in sim.nodes.values() {
        assert_eq!(node.log.len(), 2, "no member went down or appeared: {:?}", node.log);
    }
}

#[test]
fn a_healed_partition_converges() {
    let mut sim = Sim::cluster(5);
    sim.run_until(5_000, Sim::converged).expect("converged");
    for i in 1..=2 {
        sim.side.insert(addr(i), 1);
    }
    let minority_sees_none = |s: &Sim| (1..=2).all(|i| (3..=5).all(|j| !s.sees_name(addr(i), &format!("node{j}"))));
    let majority_sees_none = |s: &Sim| (3..=5).all(|i| (1..=2).all(|j| !s.sees_name(addr(i), &format!("node{j}"))));
    sim.run_until(15_000, |s| minority_sees_none(s) && majority_sees_none(s))
        .expect("each side sees the other down within 15 s");
    sim.side.clear();
    let took = sim.run_until(30_000, Sim::converged).expect("the healed cluster converges within 30 s");
    eprintln!("5 nodes: partition healed in {took} ms (simulated)");
    sim.run_for(30_000);
    assert!(sim.converged(), "and stays converged");
}

#[test]
fn the_same_seeds_give_the_same_history() {
    let run = || {
        let mut sim = Sim::cluster(5);
        sim.run_until(5_000, Sim::converged).expect("converged");
        sim.crash(addr(4));
        sim.run_for(15_000);
        sim.nodes.values().map(|n| n.log.clone()).collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

fn event_name(event: &MembershipEvent) -> &str {
    match event {
        MembershipEvent::Up(m) | MembershipEvent::Down(m) => &m.name,
    }
}
