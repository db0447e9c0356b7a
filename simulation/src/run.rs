//! The harness: builds the turmoil world of a scenario (one host per node,
//! one client host for every client), steps it, applies the fault schedule,
//! records each node's route table as it changes, and requires convergence
//! after the last fault within a bounded simulated time.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use broker::config::ClusterConfig;
use broker::{Config, Server};

use crate::check::{self, Violation};
use crate::client::{self, ClientCtx};
use crate::history::{self, Event, History, Millis, NodeIx, Record};
use crate::net::{self, Reaper, UdpCuts};
use crate::scenario::{ClientSpec, Fault, Scenario};

/// The cluster peer port of every node (UDP membership, TCP links).
pub const PEER_PORT: u16 = 4370;
/// Liveness: after the last fault, the cluster must converge within this much simulated time.
pub const CONVERGE_MAX_MS: Millis = 60_000;
/// After convergence, time left for the last deliveries and acknowledgements.
pub const DRAIN_MS: Millis = 5_000;
/// How often convergence is looked at once every fault is healed.
const CONVERGE_POLL_MS: Millis = 100;
/// How long a dead node's routes are kept (shorter than production's 10 s, to keep runs short).
const ROUTE_GRACE_MS: u64 = 3_000;

/// The hash keys of every broker map in a simulation (`broker::hash`): fixed, so iteration orders replay.
const HASH_KEYS: [u64; 4] =
    [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344, 0xa409_3822_299f_31d0, 0x082e_fa98_ec4e_6c89];

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Print every event as it happens.
    pub trace: bool,
    /// A broker bug to inject and how often it fires (every n-th chance).
    pub bug: Option<(broker::buggify::Bug, u64)>,
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub records: Vec<Record>,
    /// Hash of the whole event log (see `history::hash`).
    pub hash: u64,
    pub violations: Vec<Violation>,
    /// Simulated time the run took.
    pub sim_ms: Millis,
}

impl Outcome {
    /// True when a checker found a violation other than a known gap.
    pub fn failed(&self) -> bool {
        self.violations.iter().any(|v| !v.is_known_gap())
    }
}

fn node_name(node: NodeIx) -> String {
    format!("n{}", node + 1)
}

/// A node's RNG seed: from the scenario seed, different per node and per restart
/// (so a restarted node draws a new incarnation).
fn node_seed(seed: u64, node: NodeIx, restart: u32) -> u64 {
    let mut x = seed ^ ((node as u64) << 40) ^ (u64::from(restart) << 20) ^ 0x5bd1_e995;
    // splitmix64's finaliser: nearby inputs, unrelated seeds.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn node_config(node: NodeIx, ip: IpAddr, nodes: usize, rng_seed: u64) -> Config {
    let mut config = Config::default();
    config.node.name = node_name(node);
    config.node.rng_seed = Some(rng_seed);
    config.listeners.tcp.bind = client::mqtt_addr(ip);
    config.auth.allow_anonymous = Some(true);
    if nodes > 1 {
        config.cluster = Some(ClusterConfig {
            name: "sim".into(),
            bind: SocketAddr::new(ip, PEER_PORT),
            seeds: (0..nodes).map(|n| format!("{}:{PEER_PORT}", node_name(n))).collect(),
            route_grace_ms: ROUTE_GRACE_MS,
            ..ClusterConfig::default()
        });
    }
    config
}

type Servers = Rc<RefCell<BTreeMap<NodeIx, Arc<Server>>>>;

/// Runs `scenario` to the end and checks its history.
pub fn run(scenario: &Scenario, options: &Options) -> Outcome {
    if let Err(e) = broker::buggify::enable(options.bug) {
        let records = vec![Record { at: 0, event: Event::Anomaly { what: e.to_string() } }];
        let violations = check::check(scenario, &records);
        return Outcome { hash: history::hash(&records), records, violations, sim_ms: 0 };
    }
    crate::panics::take();
    let history = History::new(options.trace);
    if !broker::seam::fix_hash_keys(HASH_KEYS) {
        history.record(0, Event::Anomaly { what: "hash keys were drawn before the simulation fixed them".into() });
    }
    let sim_ms = simulate(scenario, &history);
    let _ = broker::buggify::enable(None);
    for panic in crate::panics::take() {
        history.record(sim_ms, Event::Anomaly { what: format!("panic: {panic}") });
    }
    let records = history.records();
    let violations = check::check(scenario, &records);
    Outcome { hash: history::hash(&records), records, violations, sim_ms }
}

fn simulate(scenario: &Scenario, history: &History) -> Millis {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(24 * 3600))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .rng_seed(scenario.seed)
        .build();
    let cuts = Arc::new(UdpCuts::default());
    let servers: Servers = Rc::default();
    let n = scenario.nodes;
    let reapers: Vec<Arc<Reaper>> = (0..n).map(|_| Arc::new(Reaper::default())).collect();
    for (node, reaper) in reapers.iter().enumerate() {
        let (servers, history, cuts) = (Rc::clone(&servers), history.clone(), Arc::clone(&cuts));
        let reaper = Arc::clone(reaper);
        let restarts = Rc::new(Cell::new(0u32));
        let seed = scenario.seed;
        let first_start = scenario.starts.get(node).copied().unwrap_or(0);
        sim.host(node_name(node), move || {
            let (servers, history, cuts, restarts, reaper) =
                (Rc::clone(&servers), history.clone(), Arc::clone(&cuts), Rc::clone(&restarts), Arc::clone(&reaper));
            async move {
                let restart = restarts.get();
                restarts.set(restart + 1);
                if restart == 0 && first_start > 0 {
                    // A node that joins late: nothing of it exists before.
                    tokio::time::sleep(Duration::from_millis(first_start)).await;
                }
                let ip = turmoil::lookup(node_name(node));
                let config = node_config(node, ip, n, node_seed(seed, node, restart));
                tokio::spawn(Arc::clone(&reaper).run());
                let server = Server::start(config, net::runtime(cuts, reaper)).await?;
                history.now(Event::NodeStarted { node, restart });
                servers.borrow_mut().insert(node, Arc::new(server));
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    let ips: Vec<IpAddr> = (0..n).map(|node| sim.lookup(node_name(node))).collect();
    let ctx = ClientCtx {
        history: history.clone(),
        nodes: ips.iter().map(|ip| client::mqtt_addr(*ip)).collect(),
        end: Millis::MAX,
        back_by: scenario.workload_end,
    };
    let clients = scenario.clients.clone();
    sim.client("clients", async move {
        for (ix, spec) in clients.into_iter().enumerate() {
            match spec {
                ClientSpec::Subscriber(s) => drop(tokio::task::spawn_local(client::subscriber(ctx.clone(), ix, s))),
                ClientSpec::Publisher(p) => drop(tokio::task::spawn_local(client::publisher(ctx.clone(), ix, p))),
                ClientSpec::Watcher(w) => drop(tokio::task::spawn_local(client::watcher(ctx.clone(), ix, w))),
            }
        }
        std::future::pending::<()>().await;
        Ok(())
    });

    let mut faults = scenario.faults.iter().peekable();
    let mut views: Views = Views::default();
    let mut converged_at: Option<Millis> = None;
    loop {
        let now = u64::try_from(sim.elapsed().as_millis()).unwrap_or(u64::MAX);
        while let Some((_, fault)) = faults.next_if(|(at, _)| *at <= now) {
            history.record(now, Event::Fault { fault: fault.clone() });
            if let Fault::Crash(node) = fault {
                // Its connections close first, in the order they opened (see `Reaper`).
                reapers[*node].wake.notify_one();
                if let Err(error) = step(&mut sim) {
                    history.record(now, Event::Anomaly { what: format!("simulation stopped: {error}") });
                    return now;
                }
            }
            apply(&mut sim, fault, &ips, &cuts, &servers);
            if let Fault::Crash(node) = fault {
                // What a dead node held is gone with it.
                let held: Vec<_> = views.routes.keys().filter(|(o, _)| o == node).copied().collect();
                for key in held {
                    views.routes.remove(&key);
                    history.record(now, Event::Routes { observer: key.0, origin: key.1, filters: Vec::new() });
                }
                if views.members.remove(node).is_some_and(|m| !m.is_empty()) {
                    history.record(now, Event::Members { observer: *node, members: Vec::new() });
                }
            }
        }
        if let Err(error) = step(&mut sim) {
            history.record(now, Event::Anomaly { what: format!("simulation stopped: {error}") });
            return now;
        }
        if n > 1 {
            observe_routes(&servers, &mut views, history, now + 1);
        }
        if now >= scenario.healed_by && now % CONVERGE_POLL_MS == 0 {
            match converged_at {
                Some(at) if now >= at + DRAIN_MS => {
                    record_final_state(&servers, history, now);
                    return now;
                }
                Some(_) => {}
                None => match divergence(&servers, n) {
                    None => {
                        converged_at = Some(now);
                        history.record(now, Event::Converged);
                    }
                    Some(detail) if now >= scenario.healed_by + CONVERGE_MAX_MS => {
                        history.record(now, Event::NotConverged { detail });
                        return now;
                    }
                    Some(_) => {}
                },
            }
        }
    }
}

/// Steps the simulation. A panic in a host's task reaches here (turmoil's
/// runtimes shut down on an unhandled panic) and ends the run as an error;
/// the panic hook has recorded it for the checkers (`crate::panics`).
fn step(sim: &mut turmoil::Sim<'_>) -> Result<(), String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.step())) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("a host panicked".to_string()),
    }
}

fn apply(sim: &mut turmoil::Sim<'_>, fault: &Fault, ips: &[IpAddr], cuts: &UdpCuts, servers: &Servers) {
    let n = ips.len();
    match fault {
        Fault::Partition { side } => {
            for &a in side {
                for b in (0..n).filter(|b| !side.contains(b)) {
                    sim.hold(node_name(a), node_name(b));
                    cuts.cut(ips[a], ips[b]);
                    cuts.cut(ips[b], ips[a]);
                }
            }
        }
        Fault::UdpCut { from, to } => cuts.cut(ips[*from], ips[*to]),
        Fault::HealAll => {
            for a in 0..n {
                for b in a + 1..n {
                    sim.release(node_name(a), node_name(b));
                    sim.set_link_latency(node_name(a), node_name(b), Duration::from_millis(2));
                    cuts.heal(ips[a], ips[b]);
                    cuts.heal(ips[b], ips[a]);
                }
            }
        }
        Fault::Crash(node) => {
            sim.crash(node_name(*node));
            servers.borrow_mut().remove(node);
        }
        Fault::Restart(node) => sim.bounce(node_name(*node)),
        Fault::Latency { a, b, ms } => sim.set_link_latency(node_name(*a), node_name(*b), Duration::from_millis(*ms)),
        Fault::OneWay { from, to } => {
            sim.hold(node_name(*from), node_name(*to));
            cuts.cut(ips[*from], ips[*to]);
        }
        Fault::Jitter { a, b, max_ms } => {
            sim.set_link_latency(node_name(*a), node_name(*b), Duration::from_millis(1));
            sim.set_link_max_message_latency(node_name(*a), node_name(*b), Duration::from_millis(*max_ms));
        }
    }
}

/// Records what the end-of-run checkers compare across nodes: the client
/// ids each node holds a live connection for, and each node's retained writes.
fn record_final_state(servers: &Servers, history: &History, now: Millis) {
    for (&node, server) in servers.borrow().iter() {
        history.record(now, Event::LiveClients { node, clients: server.connected_clients() });
        if server.cluster_addr().is_none() {
            continue;
        }
        let entries = server
            .retained_writes()
            .iter()
            .map(|w| {
                let payload = w
                    .message
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |m| String::from_utf8_lossy(&m.payload).into_owned());
                format!("{} = {payload} @ {}.{} by {}", w.topic, w.stamp.wall_ms, w.stamp.counter, w.node)
            })
            .collect();
        history.record(now, Event::RetainedStore { node, entries });
    }
}

fn node_ix(name: &str) -> Option<NodeIx> {
    name.strip_prefix('n')?.parse::<usize>().ok()?.checked_sub(1)
}

/// What the harness last saw of each node's cluster state.
#[derive(Debug, Default)]
struct Views {
    /// (observer, origin) -> the filters observer holds for origin (absent: none).
    routes: BTreeMap<(NodeIx, NodeIx), Vec<String>>,
    /// observer -> its peer links and whether each is connected.
    members: BTreeMap<NodeIx, Vec<(NodeIx, bool)>>,
}

/// Records each change of a node's routes for another origin, and of its peer links.
fn observe_routes(servers: &Servers, views: &mut Views, history: &History, now: Millis) {
    for (&observer, server) in servers.borrow().iter() {
        let Some(status) = server.cluster_status() else { continue };
        let members: Vec<(NodeIx, bool)> =
            status.peers.iter().filter_map(|(name, _, up)| Some((node_ix(name)?, *up))).collect();
        if views.members.get(&observer).map_or(&[][..], Vec::as_slice) != members.as_slice() {
            history.record(now, Event::Members { observer, members: members.clone() });
            views.members.insert(observer, members);
        }
        let views = &mut views.routes;
        let mut seen: BTreeMap<NodeIx, Vec<String>> = BTreeMap::new();
        for (origin, filters) in status.remote_routes {
            if let Some(origin) = node_ix(&origin) {
                seen.insert(origin, filters.iter().map(|f| f.to_string()).collect());
            }
        }
        let known: Vec<NodeIx> = views.keys().filter(|(o, _)| *o == observer).map(|(_, origin)| *origin).collect();
        for origin in known {
            seen.entry(origin).or_default();
        }
        for (origin, filters) in seen {
            let key = (observer, origin);
            if views.get(&key).map_or(&[][..], Vec::as_slice) != filters.as_slice() {
                history.record(now, Event::Routes { observer, origin, filters: filters.clone() });
                if filters.is_empty() {
                    views.remove(&key);
                } else {
                    views.insert(key, filters);
                }
            }
        }
    }
}

/// What keeps the cluster from having converged, if anything: every node
/// runs, holds for every other node exactly that node's local routes (and
/// nothing for nodes that are not members), and has its link to every other
/// node's current incarnation up.
fn divergence(servers: &Servers, nodes: usize) -> Option<String> {
    if nodes == 1 {
        return None;
    }
    let servers = servers.borrow();
    if servers.len() < nodes {
        return Some(format!("{} of {nodes} nodes running", servers.len()));
    }
    let statuses: BTreeMap<NodeIx, broker::cluster::ClusterStatus> =
        servers.iter().filter_map(|(&n, s)| Some((n, s.cluster_status()?))).collect();
    for (&a, status) in &statuses {
        for (&b, other) in &statuses {
            if a == b {
                continue;
            }
            let held = status.remote_routes.iter().find(|(o, _)| *o == other.node).map(|(_, f)| f.clone());
            let held = held.unwrap_or_default();
            if held != other.local_routes {
                return Some(format!(
                    "{} holds {:?} for {}, whose routes are {:?}",
                    status.node, held, other.node, other.local_routes
                ));
            }
            let link = status.peers.iter().find(|(name, _, _)| *name == other.node);
            match link {
                Some((_, incarnation, true)) if *incarnation == other.incarnation => {}
                _ => return Some(format!("{}'s link to {} is {link:?}", status.node, other.node)),
            }
        }
        for (origin, filters) in &status.remote_routes {
            if !filters.is_empty() && !statuses.values().any(|s| s.node == *origin) {
                return Some(format!("{} holds routes of {origin}, not a member", status.node));
            }
        }
    }
    None
}
