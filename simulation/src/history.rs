//! The recorded history of one run: what the clients sent and saw, what
//! the harness did to the network and the nodes, and how each node's route
//! table changed. The checkers (`check.rs`) judge it; its hash proves a seed
//! replays exactly.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use crate::scenario::Fault;

/// Simulated milliseconds since the simulation started.
pub type Millis = u64;

/// A client's index in the scenario (subscribers and publishers share the numbering).
pub type ClientIx = usize;
/// A node's index in the scenario (node `i` is the turmoil host `n{i+1}`).
pub type NodeIx = usize;

/// One subscription: a subscriber's `epoch`-th SUBSCRIBE. A subscriber
/// subscribes anew (next epoch) whenever it finds its session gone, and the
/// epoch travels as the MQTT 5 subscription identifier, so every delivery
/// names the subscription it was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubId {
    pub client: ClientIx,
    pub epoch: u32,
}

impl fmt::Display for SubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}#{}", self.client, self.epoch)
    }
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A node's software (re)started; `restart` counts its earlier runs.
    NodeStarted {
        node: NodeIx,
        restart: u32,
    },
    /// The harness changed the world (partition, crash, latency ...).
    Fault {
        fault: Fault,
    },
    Connected {
        client: ClientIx,
        node: NodeIx,
        session_present: bool,
    },
    Disconnected {
        client: ClientIx,
        why: String,
    },
    /// SUBACK received: the subscription exists on `node` from now on.
    Subscribed {
        sub: SubId,
        node: NodeIx,
        filter: String,
        qos: u8,
    },
    /// The subscriber learnt that subscription `sub` is gone (its session ended).
    SessionLost {
        sub: SubId,
    },
    /// The subscriber of `sub` connects to `node` while its connection to
    /// `sub`'s node stays open; it subscribes there anew (the next epoch).
    Moved {
        sub: SubId,
        node: NodeIx,
    },
    /// A publisher sent message `seq` (first transmission).
    Sent {
        publisher: ClientIx,
        seq: u64,
        topic: String,
        qos: u8,
        node: NodeIx,
    },
    /// The message was acknowledged: PUBACK (QoS 1) or PUBREC (QoS 2) with a success code.
    Acked {
        publisher: ClientIx,
        seq: u64,
    },
    /// A subscriber's application got a message (a QoS 2 duplicate of a
    /// packet id awaiting PUBREL is not a new delivery and is not recorded).
    Delivered {
        sub: SubId,
        publisher: ClientIx,
        seq: u64,
        topic: String,
        qos: u8,
        dup: bool,
    },
    /// A client with a will got the CONNACK of its `conn`-th connection on
    /// `node`; `will_delay` is the delay that applies to that connection's
    /// will: the smaller of its Will Delay Interval and its session expiry.
    Opened {
        client: ClientIx,
        conn: u32,
        node: NodeIx,
        will_delay: u32,
    },
    /// How the `conn`-th connection of a client with a will ended, as the client saw it.
    Ended {
        client: ClientIx,
        conn: u32,
        how: Ending,
    },
    /// A will watcher's subscription to every will topic exists on `node` from now on.
    WillWatched {
        watcher: ClientIx,
        node: NodeIx,
    },
    /// A will watcher got the will of `client`'s `conn`-th connection.
    WillDelivered {
        watcher: ClientIx,
        client: ClientIx,
        conn: u32,
        dup: bool,
    },
    /// Something a checker must reject outright (a malformed delivery, a panic ...).
    Anomaly {
        what: String,
    },
    /// The route table of `observer` now holds these filters for `origin`.
    Routes {
        observer: NodeIx,
        origin: NodeIx,
        filters: Vec<String>,
    },
    /// The members `observer` keeps a peer link for (those it believes up), and whether each link is connected.
    Members {
        observer: NodeIx,
        members: Vec<(NodeIx, bool)>,
    },
    /// The harness found the cluster converged (route tables equal, links up).
    Converged,
    /// The liveness bound passed without convergence; what still differed.
    NotConverged {
        detail: String,
    },
    /// At the end of the run (after convergence): the client ids with a live
    /// connection on `node`, from the broker.
    LiveClients {
        node: NodeIx,
        clients: Vec<String>,
    },
    /// At the end of the run (after convergence): `node`'s winning retained
    /// write per topic, `topic = payload @ stamp by writer` (payload `-`: cleared).
    RetainedStore {
        node: NodeIx,
        entries: Vec<String>,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::NodeStarted { node, restart } => write!(f, "n{} started (run {})", node + 1, restart + 1),
            Event::Fault { fault } => write!(f, "fault: {fault}"),
            Event::Connected { client, node, session_present } => {
                write!(f, "c{client} connected to n{} (session present: {session_present})", node + 1)
            }
            Event::Disconnected { client, why } => write!(f, "c{client} disconnected: {why}"),
            Event::Subscribed { sub, node, filter, qos } => {
                write!(f, "{sub} subscribed to {filter} at QoS {qos} on n{}", node + 1)
            }
            Event::SessionLost { sub } => write!(f, "{sub} lost its session"),
            Event::Moved { sub, node } => {
                write!(f, "{sub}'s client connects to n{} too (old connection kept)", node + 1)
            }
            Event::Sent { publisher, seq, topic, qos, node } => {
                write!(f, "c{publisher} sent #{seq} on {topic} at QoS {qos} to n{}", node + 1)
            }
            Event::Acked { publisher, seq } => write!(f, "c{publisher} got the ack of #{seq}"),
            Event::Delivered { sub, publisher, seq, topic, qos, dup } => {
                write!(f, "{sub} got c{publisher} #{seq} on {topic} at QoS {qos}{}", if *dup { " (dup)" } else { "" })
            }
            Event::Opened { client, conn, node, will_delay } => {
                write!(f, "c{client} connection {conn} to n{} has a will (delay {will_delay} s)", node + 1)
            }
            Event::Ended { client, conn, how } => write!(f, "c{client} connection {conn} ended: {how}"),
            Event::WillWatched { watcher, node } => write!(f, "c{watcher} watches wills on n{}", node + 1),
            Event::WillDelivered { watcher, client, conn, dup } => {
                write!(f, "c{watcher} got the will of c{client} connection {conn}{}", if *dup { " (dup)" } else { "" })
            }
            Event::Anomaly { what } => write!(f, "anomaly: {what}"),
            Event::Routes { observer, origin, filters } => {
                write!(f, "n{} holds for n{}: [{}]", observer + 1, origin + 1, filters.join(", "))
            }
            Event::Members { observer, members } => {
                let list: Vec<String> = members
                    .iter()
                    .map(|(m, up)| format!("n{}{}", m + 1, if *up { "" } else { " (dialling)" }))
                    .collect();
                write!(f, "n{} has links to [{}]", observer + 1, list.join(", "))
            }
            Event::Converged => write!(f, "converged: route tables equal, every link up"),
            Event::NotConverged { detail } => write!(f, "not converged: {detail}"),
            Event::LiveClients { node, clients } => write!(f, "n{} has live [{}]", node + 1, clients.join(", ")),
            Event::RetainedStore { node, entries } => {
                write!(f, "n{} retains [{}]", node + 1, entries.join("; "))
            }
        }
    }
}

/// How a connection ended, as its client saw it (what decides its will's fate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ending {
    /// The client sent DISCONNECT with reason 0x00: the will is deleted ([MQTT-3.1.2-10]).
    Disconnect,
    /// The client closed the connection without DISCONNECT (it dropped it, or gave up on a silent broker).
    Dropped,
    /// The broker closed it with DISCONNECT 0x8E: another connection took the session over.
    TakenOver,
    /// The broker closed it otherwise, or the network connection broke (a node crash).
    Closed,
    /// The client connected to another node while keeping this connection: a takeover it asked for.
    Moved,
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ending::Disconnect => "DISCONNECT by the client",
            Ending::Dropped => "dropped by the client without DISCONNECT",
            Ending::TakenOver => "taken over (DISCONNECT 0x8E)",
            Ending::Closed => "closed by the broker or the network",
            Ending::Moved => "the client connected to another node",
        })
    }
}

/// An event and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub at: Millis,
    pub event: Event,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>9.3}s  {}", self.at as f64 / 1000.0, self.event)
    }
}

/// The history, shared by the harness and the client tasks (one thread: turmoil's).
#[derive(Debug, Default, Clone)]
pub struct History {
    inner: Rc<RefCell<Vec<Record>>>,
    trace: bool,
}

impl History {
    /// A history that also prints each event as it is recorded when `trace` is set.
    pub fn new(trace: bool) -> Self {
        Self { inner: Rc::default(), trace }
    }

    pub fn record(&self, at: Millis, event: Event) {
        let record = Record { at, event };
        if self.trace {
            #[allow(clippy::print_stdout)]
            {
                println!("{record}");
            }
        }
        self.inner.borrow_mut().push(record);
    }

    /// Records at the current simulated time (inside a turmoil host or client).
    pub fn now(&self, event: Event) {
        self.record(sim_now(), event);
    }

    pub fn records(&self) -> Vec<Record> {
        self.inner.borrow().clone()
    }
}

/// The simulated time inside a turmoil host, in milliseconds.
pub fn sim_now() -> Millis {
    turmoil::sim_elapsed().map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// FNV-1a over every record's text: equal histories, equal hashes, on any
/// machine and in any process (no per-process hasher keys).
pub fn hash(records: &[Record]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for record in records {
        for byte in format!("{}|{:?}\n", record.at, record.event).bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
