//! A scenario: the target, groups of clients, and ordered phases.
//!
//! The command-line modes (`conn`, `sub`, `pub`) build a scenario too, so one
//! engine runs everything, locally or split over agents.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::template::Template;
use crate::transport::TransportKind;

/// No more connections than this from one source address to one target
/// address: the kernel has about 64k ports per (source, destination) pair and
/// some are in use or in TIME_WAIT.
pub const CONNECTIONS_PER_SOURCE_MAX: u64 = 60_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub target: Target,
    #[serde(rename = "group")]
    pub groups: Vec<Group>,
    #[serde(rename = "phase")]
    pub phases: Vec<Phase>,
}

/// `[target]`: where the clients connect and how.
///
/// Transport keys (the certificate paths are read where the clients run: on
/// each agent in a coordinated run):
/// - `transport`: `"tcp"` (default), `"tls"`, `"ws"` (WebSocket), `"wss"`
///   (WebSocket over TLS) or `"quic"` (ALPN `mqtt`, one stream per connection).
/// - `cacertfile`: PEM file of the CA that signed the broker's certificate
///   (tls, wss, quic); default none, and then `insecure` must be set.
/// - `insecure`: accept any broker certificate (default false); the traffic is
///   encrypted but the broker unauthenticated: for test brokers only.
/// - `certfile`, `keyfile`: PEM client certificate chain and its key, for
///   brokers that require mutual TLS; default none.
/// - `server_name`: the name the broker's certificate must carry, sent as SNI;
///   default: each host as written in `hosts`.
/// - `ws_path`: the HTTP path of the WebSocket upgrade (ws, wss); default `/mqtt`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Host names or addresses, optionally `host:port`; client i uses `hosts[i % len]`.
    pub hosts: Vec<String>,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Protocol level: 3 (MQTT 3.1), 4 (3.1.1) or 5.
    #[serde(default = "default_version")]
    pub version: u8,
    /// Seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: u16,
    #[serde(default = "yes")]
    pub clean_start: bool,
    /// Seconds (MQTT 5 only).
    #[serde(default)]
    pub session_expiry: u32,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Source addresses; client i binds `ifaddr[i % len]`.
    #[serde(default)]
    pub ifaddr: Vec<IpAddr>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Further attempts after a failed connect (1 s apart).
    #[serde(default)]
    pub connect_retries: u32,
    #[serde(default)]
    pub transport: TransportKind,
    #[serde(default)]
    pub cacertfile: Option<PathBuf>,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub certfile: Option<PathBuf>,
    #[serde(default)]
    pub keyfile: Option<PathBuf>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default = "default_ws_path")]
    pub ws_path: String,
}

impl Target {
    /// Checks that the transport keys fit together; errors name the keys.
    fn validate_transport(&self) -> Result<(), String> {
        let kind = self.transport;
        if !kind.uses_tls() {
            let tls_only = [
                ("cacertfile", self.cacertfile.is_some()),
                ("insecure", self.insecure),
                ("certfile", self.certfile.is_some()),
                ("keyfile", self.keyfile.is_some()),
                ("server_name", self.server_name.is_some()),
            ];
            if let Some((key, _)) = tls_only.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "target.{key} is set but target.transport {:?} does not use TLS (use \"tls\", \"wss\" or \"quic\")",
                    kind.name()
                ));
            }
        } else {
            match (&self.cacertfile, self.insecure) {
                (Some(_), true) => return Err("target.insecure and target.cacertfile exclude each other".into()),
                (None, false) => {
                    return Err(format!(
                        "target.transport {:?} needs target.cacertfile (--cacertfile: the CA that signed the broker's \
                         certificate) or target.insecure = true (--insecure: no verification)",
                        kind.name()
                    ));
                }
                _ => {}
            }
            if self.certfile.is_some() != self.keyfile.is_some() {
                return Err("target.certfile and target.keyfile go together (--certfile, --keyfile)".into());
            }
        }
        if !self.ws_path.starts_with('/') {
            return Err(format!("target.ws_path {:?} must start with '/'", self.ws_path));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub count: u64,
    /// The first client's number (emqtt-bench's `-n`).
    #[serde(default)]
    pub start: u64,
    /// Client id = prefix + number.
    #[serde(default)]
    pub prefix: Option<String>,
}

impl Group {
    pub fn prefix(&self) -> String {
        self.prefix.clone().unwrap_or_else(|| format!("loadgen_{}_", self.name))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Phase {
    /// Open the group's connections at `rate` per second (unbounded when absent).
    Connect {
        group: String,
        #[serde(default)]
        rate: Option<f64>,
        /// When false the next phase starts at once and each client joins it as it connects.
        #[serde(default = "yes")]
        wait: bool,
    },
    Subscribe {
        group: String,
        topic: String,
        #[serde(default)]
        qos: u8,
    },
    /// Publish open-loop: every client follows its own schedule and never waits for acks
    /// (beyond the in-flight window).
    Publish {
        group: String,
        topic: String,
        #[serde(default)]
        qos: u8,
        /// Payload bytes (at least 24 for latency and sequence checks).
        #[serde(default = "default_size")]
        size: usize,
        /// Messages per second over the whole group; or:
        #[serde(default)]
        rate: Option<f64>,
        /// milliseconds between one client's messages.
        #[serde(default)]
        interval_ms: Option<f64>,
        /// Stop after this long ("30s", "2m")...
        #[serde(default)]
        duration: Option<String>,
        /// ...or after this many messages per client; neither: until interrupted.
        #[serde(default)]
        limit: Option<u64>,
        /// QoS 1/2 messages awaiting their ack per client.
        #[serde(default = "default_inflight")]
        inflight: u16,
        #[serde(default)]
        retain: bool,
    },
    /// Keep the connections open; until interrupted when no duration is given.
    Hold {
        #[serde(default)]
        duration: Option<String>,
    },
    Disconnect {
        /// Every group when absent.
        #[serde(default)]
        group: Option<String>,
    },
}

impl Phase {
    pub fn kind(&self) -> &'static str {
        match self {
            Phase::Connect { .. } => "connect",
            Phase::Subscribe { .. } => "subscribe",
            Phase::Publish { .. } => "publish",
            Phase::Hold { .. } => "hold",
            Phase::Disconnect { .. } => "disconnect",
        }
    }

    pub fn group(&self) -> Option<&str> {
        match self {
            Phase::Connect { group, .. } | Phase::Subscribe { group, .. } | Phase::Publish { group, .. } => Some(group),
            Phase::Disconnect { group } => group.as_deref(),
            Phase::Hold { .. } => None,
        }
    }
}

fn default_port() -> u16 {
    1883
}
fn default_version() -> u8 {
    5
}
fn default_keep_alive() -> u16 {
    300
}
fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_ws_path() -> String {
    "/mqtt".into()
}
fn default_size() -> usize {
    256
}
fn default_inflight() -> u16 {
    64
}
fn yes() -> bool {
    true
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("duration {text:?}: {e}"))
}

impl Scenario {
    /// Parses a scenario file's text; errors name the line.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|r| text[..r.start.min(text.len())].lines().count().max(1));
            match line {
                Some(l) => format!("line {l}: {}", e.message()),
                None => e.message().to_string(),
            }
        })?;
        s.validate()?;
        Ok(s)
    }

    pub fn group_ordinal(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }

    pub fn total_clients(&self) -> u64 {
        self.groups.iter().map(|g| g.count).sum()
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.target.hosts.is_empty() {
            return Err("target.hosts is empty".into());
        }
        if !matches!(self.target.version, 3..=5) {
            return Err(format!("target.version {} (use 3, 4 or 5)", self.target.version));
        }
        self.target.validate_transport()?;
        if self.groups.len() > 256 {
            return Err("at most 256 groups".into());
        }
        let mut names = HashMap::new();
        for g in &self.groups {
            if names.insert(g.name.as_str(), ()).is_some() {
                return Err(format!("group {:?} is defined twice", g.name));
            }
            if g.start.saturating_add(g.count) > 1 << 24 {
                return Err(format!("group {:?}: client numbers must stay below 16,777,216", g.name));
            }
        }
        for (i, phase) in self.phases.iter().enumerate() {
            let at = format!("phase {} ({})", i + 1, phase.kind());
            if let Some(g) = phase.group()
                && self.group_ordinal(g).is_none()
            {
                return Err(format!("{at}: no group named {g:?}"));
            }
            match phase {
                Phase::Connect { rate: Some(r), .. } if !positive(*r) => return Err(format!("{at}: rate must be > 0")),
                Phase::Subscribe { topic, qos, .. } => {
                    Template::parse(topic).map_err(|e| format!("{at}: {e}"))?;
                    if *qos > 2 {
                        return Err(format!("{at}: qos {qos}"));
                    }
                }
                Phase::Publish { topic, qos, rate, interval_ms, duration, inflight, size, .. } => {
                    Template::parse(topic).map_err(|e| format!("{at}: {e}"))?;
                    if *qos > 2 {
                        return Err(format!("{at}: qos {qos}"));
                    }
                    match (rate, interval_ms) {
                        (Some(_), Some(_)) => return Err(format!("{at}: give rate or interval_ms, not both")),
                        (None, None) => return Err(format!("{at}: give rate or interval_ms")),
                        (Some(r), None) if !positive(*r) => return Err(format!("{at}: rate must be > 0")),
                        (None, Some(ms)) if !positive(*ms) => return Err(format!("{at}: interval_ms must be > 0")),
                        _ => {}
                    }
                    if let Some(d) = duration {
                        parse_duration(d).map_err(|e| format!("{at}: {e}"))?;
                    }
                    if *inflight == 0 {
                        return Err(format!("{at}: inflight must be at least 1"));
                    }
                    if *size > 256 << 20 {
                        return Err(format!("{at}: size {size} is over 256 MiB"));
                    }
                }
                Phase::Hold { duration: Some(d) } => {
                    parse_duration(d).map_err(|e| format!("{at}: {e}"))?;
                }
                _ => {}
            }
        }
        self.check_source_ports()
    }

    /// Refuses a plan that puts more than [`CONNECTIONS_PER_SOURCE_MAX`]
    /// connections on one source address toward one target.
    pub fn check_source_ports(&self) -> Result<(), String> {
        if !self.target.transport.uses_source_ports() {
            return Ok(());
        }
        let hosts = self.target.hosts.len() as u64;
        let sources = self.target.ifaddr.len().max(1) as u64;
        let mut per_pair: HashMap<(u64, u64), u64> = HashMap::new();
        for g in &self.groups {
            // Clients i, i + lcm, ... share a (source, host) pair; count them arithmetically.
            let period = lcm(hosts, sources);
            for r in 0..period.min(g.count) {
                let i = g.start + r;
                let n = (g.count - r).div_ceil(period);
                *per_pair.entry((i % sources, i % hosts)).or_default() += n;
            }
        }
        if let Some(((s, h), n)) = per_pair.into_iter().find(|(_, n)| *n > CONNECTIONS_PER_SOURCE_MAX) {
            let source =
                self.target.ifaddr.get(s as usize).map_or("the default source address".to_string(), |a| a.to_string());
            return Err(format!(
                "{n} connections from {source} to {}: more than {CONNECTIONS_PER_SOURCE_MAX} per source address and target \
                 exhaust the source ports; add source addresses with --ifaddr (e.g. 127.0.0.2,127.0.0.3)",
                self.target.hosts[h as usize]
            ));
        }
        Ok(())
    }

    /// This agent's share: each group's numbers split into contiguous ranges,
    /// and every rate that is a total scaled by the share.
    pub fn slice(&self, agent: usize, agents: usize) -> Scenario {
        let mut out = self.clone();
        let agents = agents.max(1) as u64;
        let agent = agent as u64;
        let mut share = HashMap::new();
        for g in &mut out.groups {
            let base = g.count / agents;
            let extra = g.count % agents;
            let count = base + u64::from(agent < extra);
            let before = agent * base + agent.min(extra);
            let fraction = if g.count == 0 { 0.0 } else { count as f64 / g.count as f64 };
            share.insert(g.name.clone(), fraction);
            g.start += before;
            g.count = count;
        }
        for phase in &mut out.phases {
            match phase {
                Phase::Connect { group, rate: Some(r), .. } | Phase::Publish { group, rate: Some(r), .. } => {
                    *r *= share.get(group.as_str()).copied().unwrap_or(1.0);
                }
                _ => {}
            }
        }
        out
    }
}

fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b).max(1) * b
}

#[cfg(test)]
mod tests {
    use super::*;

    const P2P: &str = r#"
name = "p2p"
[target]
hosts = ["127.0.0.1"]
[[group]]
name = "sub"
count = 10
[[group]]
name = "pub"
count = 10
[[phase]]
kind = "connect"
group = "sub"
rate = 100.0
[[phase]]
kind = "subscribe"
group = "sub"
topic = "t/%i"
qos = 1
[[phase]]
kind = "publish"
group = "pub"
topic = "t/%i"
rate = 1000.0
duration = "5s"
"#;

    #[test]
    fn a_scenario_parses_and_validates() {
        let s = Scenario::from_toml(P2P).expect("valid scenario");
        assert_eq!(s.phases.len(), 3);
        assert_eq!(s.target.port, 1883);
        assert_eq!(s.total_clients(), 20);
    }

    #[test]
    fn errors_name_the_line_or_the_phase() {
        let e = Scenario::from_toml(&P2P.replace("qos = 1", "qos = 1\nbogus = 2")).expect_err("unknown key");
        assert!(e.starts_with("line "), "{e}");
        let e = Scenario::from_toml(&P2P.replace("group = \"sub\"\ntopic", "group = \"nope\"\ntopic"))
            .expect_err("unknown group");
        assert!(e.contains("phase 2") && e.contains("nope"), "{e}");
        let e = Scenario::from_toml(&P2P.replace("rate = 1000.0", "rate = 1000.0\ninterval_ms = 5.0"))
            .expect_err("both rates");
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn more_than_60000_connections_per_source_and_target_are_refused() {
        let many = P2P.replace("count = 10\n[[group]]", "count = 70000\n[[group]]");
        let e = Scenario::from_toml(&many).expect_err("too many from one source");
        assert!(e.contains("--ifaddr"), "{e}");
        let spread =
            many.replace("hosts = [\"127.0.0.1\"]", "hosts = [\"127.0.0.1\"]\nifaddr = [\"127.0.0.2\", \"127.0.0.3\"]");
        Scenario::from_toml(&spread).expect("two sources carry 35k each");
        let two_targets = many.replace("hosts = [\"127.0.0.1\"]", "hosts = [\"127.0.0.1\", \"127.0.0.5\"]");
        Scenario::from_toml(&two_targets).expect("two targets carry 35k each");
    }

    #[test]
    fn transport_keys_are_checked_and_errors_name_them() {
        let with = |keys: &str| Scenario::from_toml(&P2P.replace("[target]\n", &format!("[target]\n{keys}\n")));
        let s = with("").expect("tcp by default");
        assert_eq!((s.target.transport, s.target.ws_path.as_str()), (TransportKind::Tcp, "/mqtt"));
        let s = with("transport = \"wss\"\ncacertfile = \"ca.pem\"\nws_path = \"/ws\"").expect("wss with a CA");
        assert_eq!(s.target.transport, TransportKind::Wss);
        with("transport = \"quic\"\ninsecure = true").expect("quic, unverified");
        with("transport = \"tls\"\ncacertfile = \"ca.pem\"\ncertfile = \"c.pem\"\nkeyfile = \"c.key\"").expect("mTLS");
        let error = |keys: &str| with(keys).expect_err(keys);
        assert!(error("transport = \"tls\"").contains("target.cacertfile"));
        assert!(error("transport = \"tls\"\ninsecure = true\ncacertfile = \"ca.pem\"").contains("exclude"));
        assert!(error("transport = \"tls\"\ninsecure = true\ncertfile = \"c.pem\"").contains("target.keyfile"));
        assert!(error("cacertfile = \"ca.pem\"").contains("target.cacertfile is set"));
        assert!(error("transport = \"ws\"\ninsecure = true").contains("target.insecure is set"));
        assert!(error("transport = \"ws\"\nws_path = \"mqtt\"").contains("target.ws_path"));
        assert!(error("transport = \"udp\"").starts_with("line "));
    }

    #[test]
    fn quic_shares_one_port_per_source_so_the_port_limit_does_not_apply() {
        let many = P2P.replace("count = 10\n[[group]]", "count = 70000\n[[group]]");
        let quic = many.replace("[target]\n", "[target]\ntransport = \"quic\"\ninsecure = true\n");
        Scenario::from_toml(&quic).expect("70,000 QUIC clients from one source");
    }

    #[test]
    fn slices_cover_every_client_once_and_split_total_rates() {
        let mut s = Scenario::from_toml(P2P).expect("valid");
        s.groups[0].count = 11;
        s.groups[0].start = 100;
        let parts: Vec<Scenario> = (0..3).map(|k| s.slice(k, 3)).collect();
        let ranges: Vec<(u64, u64)> = parts.iter().map(|p| (p.groups[0].start, p.groups[0].count)).collect();
        assert_eq!(ranges, vec![(100, 4), (104, 4), (108, 3)]);
        let rates: f64 = parts
            .iter()
            .map(|p| match &p.phases[2] {
                Phase::Publish { rate: Some(r), .. } => *r,
                _ => 0.0,
            })
            .sum();
        assert!((rates - 1000.0).abs() < 1e-6);
    }
}
