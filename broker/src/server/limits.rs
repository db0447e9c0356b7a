//! Limits the shell enforces around the core: connection rates per listener
//! and per source address (checked as sockets are accepted), bans (checked
//! at CONNECT, and enforced on live clients when added), the per-client
//! message and byte rates of the reader, and the counters of every limit hit.
//!
//! Every limit hit is counted here (`/api/v1/stats`, `"limits"`) and logged
//! once per client, address or ban, not once per packet or socket.

mod bans;
mod bucket;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mqtt_codec::{Connect, ReasonCode};
use parking_lot::Mutex;
use serde::Serialize;

use self::bans::Bans;
pub use self::bans::{Ban, BanKind, BanRequest, Unban};
use self::bucket::Bucket;
use super::{Server, Shared};
use crate::authz::Cidr;
use crate::config::LimitsConfig;
use crate::core::ConnId;
use crate::hash::AHashMap;
use crate::seam::Millis;

/// The shell's limit state, one per broker.
pub(crate) struct Limits {
    config: LimitsConfig,
    /// Per listener (`tcp:default`, ...): as many as there are listeners.
    listeners: Mutex<AHashMap<String, Throttle>>,
    per_ip: Mutex<IpTable>,
    bans: Mutex<Bans>,
    counters: LimitCounters,
    /// The listeners whose current run of `max_connections` refusals was logged.
    max_connections_logged: RunLog,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A rate-limited source, and whether its current run of refusals was logged.
struct Throttle {
    bucket: Bucket,
    refusing: bool,
}

/// Connection buckets per source address, at most `max_tracked_ips`.
struct IpTable {
    buckets: AHashMap<IpAddr, Throttle>,
    /// No sweep for idle entries before this reading: a full table of busy
    /// addresses would otherwise be scanned at every accept.
    next_sweep: Millis,
}

/// Every limit hit, counted.
#[derive(Debug, Default)]
struct LimitCounters {
    refused_max_connections: AtomicU64,
    refused_listener_rate: AtomicU64,
    refused_ip_rate: AtomicU64,
    ip_table_full: AtomicU64,
    refused_banned: AtomicU64,
    kicked_banned: AtomicU64,
    clients_throttled: AtomicU64,
    read_pauses: AtomicU64,
    /// Connections the broker closed, by the reason it gave (or would give
    /// an MQTT 5 client): receive maximum, packet too large, quota, keep alive ...
    closed_by_reason: Mutex<BTreeMap<u8, u64>>,
}

/// What `/api/v1/stats` shows under `"limits"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LimitStats {
    /// Sockets closed at accept because the listener held `max_connections`.
    pub refused_max_connections: u64,
    /// Sockets closed at accept by `max_conn_rate`.
    pub refused_listener_rate: u64,
    /// Sockets closed at accept by `max_conn_rate_per_ip`.
    pub refused_ip_rate: u64,
    /// Sockets admitted unlimited because `max_tracked_ips` addresses were busy.
    pub ip_table_full: u64,
    /// CONNECTs refused by a ban.
    pub refused_banned: u64,
    /// Live clients closed when a ban was added.
    pub kicked_banned: u64,
    /// Clients whose reads were paused by a message or byte rate at least once.
    pub clients_throttled: u64,
    /// Pauses of reads by a message or byte rate.
    pub read_pauses: u64,
    /// Source addresses tracked for `max_conn_rate_per_ip`.
    pub tracked_ips: usize,
    /// Bans in force (lapsed ones are not counted).
    pub bans: usize,
    /// Connections the broker closed, by reason ("0x93 Receive Maximum exceeded": 2).
    pub closed_by_reason: BTreeMap<String, u64>,
}

impl Limits {
    /// The limits of `config`, with the bans of its bans file.
    pub(crate) fn new(config: &LimitsConfig) -> std::io::Result<Self> {
        let bans = Bans::load(config.bans_file.as_deref()).map_err(std::io::Error::other)?;
        Ok(Self {
            config: config.clone(),
            listeners: Mutex::new(AHashMap::new()),
            per_ip: Mutex::new(IpTable { buckets: AHashMap::new(), next_sweep: 0 }),
            bans: Mutex::new(bans),
            counters: LimitCounters::default(),
            max_connections_logged: RunLog::default(),
        })
    }

    /// Whether a socket just accepted by `listener` from `peer` may be served
    /// (`max_conn_rate`, then `max_conn_rate_per_ip`). A refused socket is
    /// closed before a byte is read: that is the cheapest answer to a flood.
    /// With `per_address` false (a trusted proxy's connection), the
    /// per-address rate waits for the client's own address ([`Limits::admit_address`]).
    pub(crate) fn admit(&self, listener: &str, peer: SocketAddr, per_address: bool, now: Millis) -> bool {
        let c = &self.config;
        if c.max_conn_rate > 0 {
            let mut listeners = self.listeners.lock();
            if !listeners.contains_key(listener)
                && let Some(bucket) = Bucket::new(c.max_conn_rate, c.max_conn_burst, now)
            {
                listeners.insert(listener.to_owned(), Throttle { bucket, refusing: false });
            }
            if let Some(throttle) = listeners.get_mut(listener)
                && !throttle.admit(now)
            {
                self.counters.refused_listener_rate.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut throttle.refusing, true) {
                    tracing::warn!(
                        listener,
                        rate = c.max_conn_rate,
                        "connections refused: listener over max_conn_rate"
                    );
                }
                return false;
            }
        }
        !per_address || self.admit_address(peer.ip(), now)
    }

    /// The per-address connection rate for `ip` (a client's own address, or
    /// one a trusted proxy forwarded).
    pub(crate) fn admit_address(&self, ip: IpAddr, now: Millis) -> bool {
        if self.config.max_conn_rate_per_ip > 0 && !self.admit_ip(ip, now) {
            self.counters.refused_ip_rate.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn admit_ip(&self, ip: IpAddr, now: Millis) -> bool {
        let c = &self.config;
        let key = source_key(ip);
        let mut table = self.per_ip.lock();
        if !table.buckets.contains_key(&key) && table.buckets.len() >= c.max_tracked_ips.get() {
            if now >= table.next_sweep {
                table.buckets.retain(|_, t| !t.bucket.is_full(now));
                let fill_ms =
                    Bucket::new(c.max_conn_rate_per_ip, c.max_conn_burst_per_ip, now).map_or(0, |b| b.fill_ms());
                table.next_sweep = now.saturating_add(fill_ms.max(1));
            }
            if table.buckets.len() >= c.max_tracked_ips.get() {
                // Every tracked address is busy: refusing unknown ones would
                // let a large botnet lock out everyone else.
                if self.counters.ip_table_full.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        max_tracked_ips = c.max_tracked_ips.get(),
                        "per-address rate table full: new addresses are not limited"
                    );
                }
                return true;
            }
        }
        let Some(bucket) = Bucket::new(c.max_conn_rate_per_ip, c.max_conn_burst_per_ip, now) else { return true };
        let throttle = table.buckets.entry(key).or_insert(Throttle { bucket, refusing: false });
        let admitted = throttle.admit(now);
        if !admitted && !std::mem::replace(&mut throttle.refusing, true) {
            tracing::warn!(%ip, rate = c.max_conn_rate_per_ip, "connections refused: source address over max_conn_rate_per_ip");
        }
        admitted
    }

    /// Counts a socket `listener` refused for `max_connections`; logs the
    /// first of each run of refusals of that listener.
    pub(crate) fn refused_max_connections(&self, listener: &str, peer: SocketAddr, max: usize) {
        self.counters.refused_max_connections.fetch_add(1, Ordering::Relaxed);
        if self.max_connections_logged.refused(listener) {
            tracing::warn!(listener, %peer, max, "connections refused: listener at max_connections");
        }
    }

    /// `listener` admitted a connection under `max_connections`: its next refusal is news again.
    pub(crate) fn admitted(&self, listener: &str) {
        self.max_connections_logged.admitted(listener);
    }

    /// The refusal for a CONNECT that a ban in force at `wall_ms` matches:
    /// 0x8A Banned for MQTT 5; MQTT 3.1 / 3.1.1 have no such return code,
    /// and the nearest is 5, not authorized.
    pub(crate) fn check_banned(&self, connect: &Connect, peer: SocketAddr, wall_ms: u64) -> Result<(), ReasonCode> {
        let username = connect.username.as_deref();
        let Some((ban, first)) = self.bans.lock().matching(&connect.client_id, username, peer.ip(), wall_ms) else {
            return Ok(());
        };
        self.counters.refused_banned.fetch_add(1, Ordering::Relaxed);
        if first {
            tracing::info!(%peer, client_id = %connect.client_id, kind = %ban.kind, value = %ban.value, "connection refused: banned (logged once per ban)");
        }
        Err(if connect.protocol.is_v5() { ReasonCode::BANNED } else { ReasonCode::NOT_AUTHORIZED })
    }

    /// Counts a connection the broker closed, by the reason it gave.
    pub(crate) fn closed(&self, reason: ReasonCode) {
        if reason.is_error() {
            *self.counters.closed_by_reason.lock().entry(reason.0).or_default() += 1;
        }
    }

    /// A new client's message and byte buckets; `None` when neither rate is
    /// limited, so that a connection carries nothing for limits that are off.
    pub(crate) fn client_rate(&self, now: Millis) -> Option<Box<ClientRate>> {
        let c = &self.config;
        let rate = ClientRate {
            messages: Bucket::new(c.max_messages_per_sec, 0, now),
            bytes: Bucket::new(c.max_bytes_per_sec, 0, now),
            paused: false,
        };
        (rate.messages.is_some() || rate.bytes.is_some()).then(|| Box::new(rate))
    }

    /// Counts a pause of `conn`'s reads; the first of a client is logged.
    pub(crate) fn paused(&self, conn: ConnId, rate: &mut ClientRate, resume_at: Millis, now: Millis) {
        self.counters.read_pauses.fetch_add(1, Ordering::Relaxed);
        if !std::mem::replace(&mut rate.paused, true) {
            self.counters.clients_throttled.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                conn,
                pause_ms = resume_at.saturating_sub(now),
                max_messages_per_sec = self.config.max_messages_per_sec,
                max_bytes_per_sec = self.config.max_bytes_per_sec,
                "client over its message or byte rate: reads paused (logged once per client)"
            );
        }
    }

    /// The counters; `wall_ms` (the seam's wall clock) drops lapsed bans first.
    fn stats(&self, wall_ms: u64) -> LimitStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LimitStats {
            refused_max_connections: get(&c.refused_max_connections),
            refused_listener_rate: get(&c.refused_listener_rate),
            refused_ip_rate: get(&c.refused_ip_rate),
            ip_table_full: get(&c.ip_table_full),
            refused_banned: get(&c.refused_banned),
            kicked_banned: get(&c.kicked_banned),
            clients_throttled: get(&c.clients_throttled),
            read_pauses: get(&c.read_pauses),
            tracked_ips: self.per_ip.lock().buckets.len(),
            bans: {
                let mut bans = self.bans.lock();
                bans.purge(wall_ms);
                bans.len()
            },
            closed_by_reason: c
                .closed_by_reason
                .lock()
                .iter()
                .map(|(code, n)| (ReasonCode(*code).to_string(), *n))
                .collect(),
        }
    }
}

/// Which listeners' current run of refusals was logged. Kept per listener:
/// with one flag for all, every connection another listener admits would make
/// the next refusal of a full listener under a flood a new log line.
#[derive(Debug, Default)]
struct RunLog {
    /// Listener ids; at most one per listener.
    logged: Mutex<Vec<String>>,
    /// `logged` is not empty: the common case, nothing to forget, takes no lock.
    any: AtomicBool,
}

impl RunLog {
    /// Whether this refusal starts a run of `listener`'s, and so is worth a log line.
    fn refused(&self, listener: &str) -> bool {
        let mut logged = self.logged.lock();
        if logged.iter().any(|l| l == listener) {
            return false;
        }
        logged.push(listener.to_owned());
        self.any.store(true, Ordering::Relaxed);
        true
    }

    fn admitted(&self, listener: &str) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        let mut logged = self.logged.lock();
        logged.retain(|l| l != listener);
        self.any.store(!logged.is_empty(), Ordering::Relaxed);
    }
}

impl Throttle {
    /// Takes a token; the refusal flag is cleared once one is granted again.
    fn admit(&mut self, now: Millis) -> bool {
        let admitted = self.bucket.try_take(1, now);
        if admitted {
            self.refusing = false;
        }
        admitted
    }
}

/// The key of a source address: IPv4 as is, IPv6 by its /64, which one
/// subscriber line usually gets whole.
fn source_key(ip: IpAddr) -> IpAddr {
    let ip = ip.to_canonical();
    if ip.is_ipv6() { Cidr::around(ip, 64).network() } else { ip }
}

/// One client's message and byte buckets (`max_messages_per_sec`,
/// `max_bytes_per_sec`). The reader charges what it read and, while a bucket
/// is in debt, does not read: TCP then pushes back on the client.
#[derive(Debug)]
pub(crate) struct ClientRate {
    messages: Option<Bucket>,
    bytes: Option<Bucket>,
    /// Reads were paused at least once (logged and counted once).
    paused: bool,
}

impl ClientRate {
    pub(crate) fn read(&mut self, bytes: usize, now: Millis) {
        if let Some(bucket) = &mut self.bytes {
            bucket.charge(u64::try_from(bytes).unwrap_or(u64::MAX), now);
        }
    }

    pub(crate) fn received(&mut self, publishes: usize, now: Millis) {
        if let Some(bucket) = self.messages.as_mut().filter(|_| publishes > 0) {
            bucket.charge(u64::try_from(publishes).unwrap_or(u64::MAX), now);
        }
    }

    /// When reading may go on, if not now.
    pub(crate) fn resume_at(&mut self, now: Millis) -> Option<Millis> {
        let messages = self.messages.as_mut().and_then(|b| b.repaid_at(now));
        let bytes = self.bytes.as_mut().and_then(|b| b.repaid_at(now));
        messages.max(bytes)
    }
}

/// Closes a client the core has just accepted if a ban added since its
/// CONNECT was checked matches it. A ban added later finds the client among
/// the core's connections (`Server::ban`): the ban is stored before that
/// scan, and the client is in the core before this check, so one of the two
/// sees the other.
pub(crate) fn check_live_ban(shared: &Shared, conn: ConnId) {
    let Some(client) = shared.broker.lock().live_client(conn) else { return };
    let Some(ip) = client.peer else { return };
    let wall_ms = wall_now(shared);
    let banned =
        shared.limits.bans.lock().matching(&client.client_id, client.username.as_deref(), ip, wall_ms).is_some();
    if banned {
        kick(shared, &[conn]);
    }
}

fn wall_now(shared: &Shared) -> u64 {
    shared.runtime.clock.wall_ms(shared.now())
}

/// Closes connections for a ban: DISCONNECT 0x98 (Administrative action) to
/// an MQTT 5 client, then the close; the will is published as for any
/// connection the server ends.
fn kick(shared: &Shared, conns: &[ConnId]) {
    if conns.is_empty() {
        return;
    }
    shared.limits.counters.kicked_banned.fetch_add(conns.len() as u64, Ordering::Relaxed);
    shared.with_broker(|broker, now| {
        for &conn in conns {
            broker.protocol_error(conn, ReasonCode::ADMINISTRATIVE_ACTION, "banned", now);
        }
    });
}

/// The bans API (`/api/v1/bans`, `broker ctl ban`) and the limit counters.
impl Server {
    /// The bans in force.
    pub fn bans(&self) -> Vec<Ban> {
        let mut bans = self.shared.limits.bans.lock();
        bans.purge(wall_now(&self.shared));
        bans.list()
    }

    /// Adds (or replaces) a ban and closes the live clients it matches; returns
    /// the ban as stored and how many clients it closed.
    pub fn ban(&self, request: BanRequest) -> Result<(Ban, usize), String> {
        if request.duration_secs == Some(0) {
            // It would close the clients it matches and then be in force for no one.
            return Err("a ban of 0 seconds lapses at once; leave the duration out for a ban until removed".into());
        }
        let shared = &self.shared;
        let wall_ms = wall_now(shared);
        let until_ms = request.duration_secs.map(|secs| wall_ms.saturating_add(secs.saturating_mul(1000)));
        let ban = Ban { kind: request.kind, value: request.value, until_ms, reason: request.reason };
        let ban = {
            let mut bans = shared.limits.bans.lock();
            bans.purge(wall_ms);
            bans.add(ban)?
        };
        let matched: Vec<ConnId> = {
            let broker = shared.broker.lock();
            let matches = ban.matcher();
            broker
                .live_clients()
                .filter(|(_, c)| c.peer.is_some_and(|ip| matches(&c.client_id, c.username.as_deref(), ip)))
                .map(|(conn, _)| conn)
                .collect()
        };
        tracing::info!(kind = %ban.kind, value = %ban.value, until_ms = ?ban.until_ms, closed = matched.len(), "ban added");
        kick(shared, &matched);
        Ok((ban, matched.len()))
    }

    /// Removes a ban; false if there was none.
    pub fn unban(&self, unban: &Unban) -> Result<bool, String> {
        let mut bans = self.shared.limits.bans.lock();
        let removed = bans.remove(unban.kind, &unban.value)?;
        if removed {
            tracing::info!(kind = %unban.kind, value = %unban.value, "ban removed");
        }
        Ok(removed)
    }

    /// What the shell's limits refused, paused and closed so far.
    pub fn limit_stats(&self) -> LimitStats {
        self.shared.limits.stats(wall_now(&self.shared))
    }
}

#[cfg(test)]
mod tests;
