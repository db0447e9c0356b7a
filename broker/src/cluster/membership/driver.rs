//! The tokio driver of `Membership`: one UDP socket from the network seam,
//! timers from `tokio::time` (through `seam::Clock`), seeds resolved through
//! the seam.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use super::{DATAGRAM_LEN_MAX, Member, Membership, MembershipEvent, SwimConfig};
use crate::config::{ClusterConfig, Discovery};
use crate::seam::{Clock, Datagram, Millis, Network, Runtime};

/// How long one name resolution may take before the round goes on without it.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs this node's membership with `lan_config()` until `leave` becomes
/// `true` (or its sender is dropped): then leaves the cluster gracefully, sends
/// what that queued, and returns. See `run_membership_with`; a socket that
/// cannot be bound is logged as an error.
pub async fn run_membership(
    runtime: Runtime,
    config: ClusterConfig,
    me: Member,
    seed: u64,
    events: mpsc::UnboundedSender<MembershipEvent>,
    leave: watch::Receiver<bool>,
) {
    let addr = me.addr;
    if let Err(error) = run_membership_with(runtime, config, me, seed, super::lan_config(), events, leave).await {
        error!(udp = %addr, %error, "membership cannot start");
    }
}

/// Runs this node's membership with the SWIM settings `swim` until `leave`
/// becomes `true` (or its sender is dropped): then leaves the cluster
/// gracefully, sends what that queued, and returns. Fails only if the UDP
/// socket cannot be bound at `me.addr`, the member's address (its TCP peer
/// listener has the same address).
///
/// While no other member is up (at start, and after losing every member) it
/// announces itself to the seeds every two probe periods, resolving them
/// again each round (`discovery = "dns"`: the addresses of
/// `dns_name:dns_port`), so a cluster forms whatever order its nodes start in.
pub async fn run_membership_with(
    runtime: Runtime,
    config: ClusterConfig,
    me: Member,
    seed: u64,
    swim: SwimConfig,
    events: mpsc::UnboundedSender<MembershipEvent>,
    mut leave: watch::Receiver<bool>,
) -> io::Result<()> {
    let socket = runtime.network.bind_datagram(me.addr).await?;
    let local = socket.local_addr()?;
    info!(node = %me.name, incarnation = me.incarnation, udp = %local, cluster = %config.name, "membership started");
    let clock = runtime.clock;
    let announce_every = millis(swim.probe_period * 2);
    let mut membership = Membership::new(me, &config.name, seed, swim);
    let mut seeds = Seeds::default();
    // One byte more than the largest valid datagram: a longer one arrives
    // truncated to this length and is refused as too long.
    let mut buf = vec![0; DATAGRAM_LEN_MAX + 1];
    let mut next_announce = clock.now();
    loop {
        flush(&mut membership, socket.as_ref(), &events).await;
        let timeout = membership.poll_timeout();
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, _from)) => {
                    let data = buf.get(..len).unwrap_or(&buf);
                    membership.handle_datagram(clock.now(), data);
                }
                // Unconnected UDP reports little (on Windows: an earlier send
                // was refused); the socket stays usable.
                Err(error) => debug!(%error, "membership receive failed"),
            },
            () = sleep_until(clock, timeout) => membership.handle_timeout(clock.now()),
            () = tokio::time::sleep_until(clock.instant(next_announce)) => {
                if membership.member_count() == 0 {
                    for addr in seeds.resolve(runtime.network.as_ref(), &config).await {
                        if addr != local && addr != membership.me().addr {
                            membership.announce(clock.now(), addr);
                        }
                    }
                }
                next_announce = clock.now().saturating_add(announce_every);
            }
            () = leave_requested(&mut leave) => {
                info!("leaving the cluster");
                membership.leave(clock.now());
                flush(&mut membership, socket.as_ref(), &events).await;
                return Ok(());
            }
        }
    }
}

/// Sends the queued datagrams and hands over the events.
async fn flush(membership: &mut Membership, socket: &dyn Datagram, events: &mpsc::UnboundedSender<MembershipEvent>) {
    while let Some((to, datagram)) = membership.poll_transmit() {
        if let Err(error) = socket.send_to(&datagram, to).await {
            debug!(%to, %error, "membership send failed");
        }
    }
    while let Some(event) = membership.poll_event() {
        // No receiver: the node is shutting down; `leave` ends this task.
        let _ = events.send(event);
    }
}

/// Until `leave` is `true`, or its sender is gone (and with it whoever ran this node).
async fn leave_requested(leave: &mut watch::Receiver<bool>) {
    let _ = leave.wait_for(|&leave| leave).await;
}

async fn sleep_until(clock: Clock, at: Option<Millis>) {
    match at {
        Some(at) => tokio::time::sleep_until(clock.instant(at)).await,
        None => std::future::pending().await,
    }
}

fn millis(d: Duration) -> Millis {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The seed addresses, resolved afresh each round; a name that fails is
/// logged as a warning when it starts failing, not every round.
#[derive(Debug, Default)]
struct Seeds {
    failing: BTreeSet<String>,
}

impl Seeds {
    async fn resolve(&mut self, network: &dyn Network, config: &ClusterConfig) -> BTreeSet<SocketAddr> {
        let names: Vec<String> = match (&config.discovery, &config.dns_name) {
            (Discovery::Dns, Some(name)) => vec![format!("{name}:{}", config.dns_port)],
            _ => config.seeds.clone(),
        };
        let mut addrs = BTreeSet::new();
        for name in names {
            let result = match tokio::time::timeout(RESOLVE_TIMEOUT, network.resolve(&name)).await {
                Ok(result) => result,
                Err(_elapsed) => Err(io::Error::new(io::ErrorKind::TimedOut, "name resolution timed out")),
            };
            match result {
                Ok(resolved) => {
                    if self.failing.remove(&name) {
                        info!(seed = %name, "seed resolves again");
                    }
                    addrs.extend(resolved);
                }
                Err(error) => {
                    if self.failing.insert(name.clone()) {
                        warn!(seed = %name, %error, "cannot resolve seed");
                    }
                }
            }
        }
        addrs
    }
}
