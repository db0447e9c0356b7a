//! The membership driver on real UDP sockets (loopback) and tokio's real
//! clock: nodes find each other through their seeds (or DNS), see a crashed
//! node down, see a restarted one up again, and see a graceful leave at once.
//! Every wait is "until the condition holds", with a generous deadline.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use broker::cluster::membership::{Member, MembershipEvent, SwimConfig, fast_config, lan_config, run_membership_with};
use broker::config::{ClusterConfig, Discovery};
use broker::seam::Runtime;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(20);

/// Free UDP ports on 127.0.0.1 (bound together, so distinct, then released).
async fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let mut sockets = Vec::new();
    for _ in 0..n {
        sockets.push(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    sockets.iter().map(|s| s.local_addr().unwrap()).collect()
}

struct Node {
    member: Member,
    events: mpsc::UnboundedReceiver<MembershipEvent>,
    /// The live members according to the events.
    view: BTreeMap<String, Member>,
    leave: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Node {
    fn start(member: Member, cluster: ClusterConfig, swim: SwimConfig) -> Node {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (leave, leave_rx) = watch::channel(false);
        let seed = member.incarnation;
        let task = tokio::spawn(run_membership_with(
            Runtime::tokio(),
            cluster,
            member.clone(),
            seed,
            swim,
            events_tx,
            leave_rx,
        ));
        Node { member, events, view: BTreeMap::new(), leave, task }
    }

    fn drain(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            match event {
                MembershipEvent::Up(m) => assert!(self.view.insert(m.name.clone(), m).is_none()),
                MembershipEvent::Down(m) => assert_eq!(self.view.remove(&m.name), Some(m)),
            }
        }
    }

    fn sees(&self, m: &Member) -> bool {
        self.view.get(&m.name) == Some(m)
    }
}

fn cluster_config(seeds: &[SocketAddr]) -> ClusterConfig {
    ClusterConfig {
        name: "driver-test".into(),
        seeds: seeds.iter().map(ToString::to_string).collect(),
        ..Default::default()
    }
}

fn member(name: &str, incarnation: u64, addr: SocketAddr) -> Member {
    Member { name: name.into(), incarnation, addr }
}

/// Waits until `done` holds for the nodes' views; returns how long it took.
async fn wait_until(nodes: &mut [Node], what: &str, done: impl Fn(&[Node]) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        nodes.iter_mut().for_each(Node::drain);
        if done(nodes) {
            return start.elapsed();
        }
        assert!(start.elapsed() < DEADLINE, "not within {DEADLINE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn all_see_each_other(nodes: &[Node]) -> bool {
    nodes.iter().all(|n| {
        nodes.iter().filter(|o| o.member != n.member).all(|o| n.sees(&o.member)) && n.view.len() == nodes.len() - 1
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_drivers_see_each_other_up_a_crash_down_and_a_restart_up() {
    let addrs = free_addrs(3).await;
    let seeds = cluster_config(&addrs);
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| Node::start(member(&format!("n{i}"), 10 + i as u64, addrs[i]), seeds.clone(), fast_config()))
        .collect();

    let took = wait_until(&mut nodes, "all three up", all_see_each_other).await;
    eprintln!("3 drivers converged in {took:?}");

    // A crash: the task is dropped mid-flight, no leave is sent.
    let crashed = nodes.pop().unwrap();
    crashed.task.abort();
    let gone = crashed.member.clone();
    let took = wait_until(&mut nodes, "the crashed node down", |ns| ns.iter().all(|n| !n.sees(&gone))).await;
    eprintln!("crash detected by both survivors in {took:?}");
    assert!(all_see_each_other(&nodes));

    // The restart: same name and address, a new incarnation.
    let restarted = member(&gone.name, gone.incarnation + 1, gone.addr);
    nodes.push(Node::start(restarted, seeds.clone(), fast_config()));
    let took = wait_until(&mut nodes, "the restarted node up", all_see_each_other).await;
    eprintln!("restarted node seen up in {took:?}");

    for node in &nodes {
        node.leave.send(true).unwrap();
    }
    for node in nodes {
        tokio::time::timeout(DEADLINE, node.task).await.unwrap().unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_is_seen_before_any_failure_detector_could() {
    // LAN settings: a crash would take at least 5 s to be seen.
    let addrs = free_addrs(2).await;
    let seeds = cluster_config(&addrs);
    let mut nodes: Vec<Node> =
        (0..2).map(|i| Node::start(member(&format!("l{i}"), 1, addrs[i]), seeds.clone(), lan_config())).collect();
    wait_until(&mut nodes, "both up", all_see_each_other).await;

    let leaver = nodes.pop().unwrap();
    leaver.leave.send(true).unwrap();
    tokio::time::timeout(DEADLINE, leaver.task).await.unwrap().unwrap().unwrap();
    let gone = leaver.member.clone();
    let took = wait_until(&mut nodes, "the leaver down", |ns| !ns[0].sees(&gone)).await;
    eprintln!("graceful leave seen in {took:?}");
    assert!(took < Duration::from_secs(4), "a leave is announced, not detected: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_discovery_finds_the_members_behind_a_name() {
    let addrs = free_addrs(2).await;
    // The first node knows nobody; the second finds it through `localhost`.
    let first = Node::start(member("d0", 1, addrs[0]), cluster_config(&[]), fast_config());
    let dns = ClusterConfig {
        discovery: Discovery::Dns,
        dns_name: Some("localhost".into()),
        dns_port: addrs[0].port(),
        ..cluster_config(&[])
    };
    let second = Node::start(member("d1", 1, addrs[1]), dns, fast_config());
    let mut nodes = vec![first, second];
    let took = wait_until(&mut nodes, "both up through DNS", all_see_each_other).await;
    eprintln!("DNS discovery converged in {took:?}");
    for node in nodes {
        drop(node.leave);
        tokio::time::timeout(DEADLINE, node.task).await.unwrap().unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_different_clusters_stay_apart() {
    let addrs = free_addrs(2).await;
    let a = Node::start(member("c0", 1, addrs[0]), cluster_config(&addrs), fast_config());
    let other = ClusterConfig { name: "another".into(), ..cluster_config(&addrs) };
    let b = Node::start(member("c1", 1, addrs[1]), other, fast_config());
    let mut nodes = [a, b];
    tokio::time::sleep(Duration::from_secs(2)).await;
    nodes.iter_mut().for_each(Node::drain);
    assert!(nodes.iter().all(|n| n.view.is_empty()), "no one is seen across clusters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_seed_starts_later_keeps_announcing_until_it_joins() {
    let addrs = free_addrs(2).await;
    // Only the early node has a seed, and that seed is not running yet.
    let early = Node::start(member("e0", 1, addrs[0]), cluster_config(&addrs[1..]), fast_config());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late = Node::start(member("e1", 1, addrs[1]), cluster_config(&[]), fast_config());
    let mut nodes = vec![early, late];
    let took = wait_until(&mut nodes, "the early node joins the late one", all_see_each_other).await;
    eprintln!("late seed joined in {took:?}");
}
