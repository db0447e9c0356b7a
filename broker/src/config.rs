//! Configuration: TOML, every key with a production default.
//!
//! Unknown keys and bad values stop start-up: the error names the file, the
//! line and the key (toml's spans). Limits are validated by their types
//! (`NonZeroU16`, ...) so that the error points at the offending value.

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod limits;
mod listeners;

pub use limits::LimitsConfig;
pub use listeners::{
    DEFAULT_NAME, ListenerEntry, ListenerKind, ListenerSpec, ListenersConfig, NamedListeners, PeerCertField,
    QuicListenerConfig, TcpListenerConfig, TlsListenerConfig, TlsOptions, WsListenerConfig, WsOptions,
    WssListenerConfig,
};

pub use crate::auth::config::{
    BackendKind, HttpConfig, JwtAlgorithm, JwtConfig, OnError, ScramConfig, UsersConfig, X509Config,
};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub listeners: ListenersConfig,
    pub mqtt: MqttConfig,
    pub auth: AuthConfig,
    pub authz: AuthzConfig,
    /// Present: this node is a cluster member. Absent: a single node.
    pub cluster: Option<ClusterConfig>,
    pub admin: AdminConfig,
    pub limits: LimitsConfig,
    pub sys: SysConfig,
}

/// `[sys]`: the `$SYS/brokers/<node>/...` topics this node publishes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SysConfig {
    /// Seconds between two publications of uptime, connection count and
    /// counters (EMQX's `sys_msg_interval`); 0: none.
    pub interval_secs: u32,
}

impl Default for SysConfig {
    fn default() -> Self {
        Self { interval_secs: 60 }
    }
}

/// `[admin]`: the HTTP API that `broker ctl` talks to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Where the API listens; unset: no API. Loopback only until the API has authentication.
    pub bind: Option<SocketAddr>,
}

/// `[cluster]`: how this node finds and talks to its peers (see ALGORITHM.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Nodes join only members with the same cluster name.
    pub name: String,
    /// This node's peer address: UDP for membership, TCP for peer links.
    pub bind: SocketAddr,
    /// Where to look for members: `static` (the `seeds`) or `dns` (`dns_name`).
    pub discovery: Discovery,
    /// Peer addresses, "host:port"; listing this node itself is harmless.
    pub seeds: Vec<String>,
    /// With `discovery = "dns"`: a name whose addresses are the peers (a headless
    /// service in Kubernetes), and the peer port to use with them.
    pub dns_name: Option<String>,
    pub dns_port: u16,
    /// `sync`: a QoS 1/2 publish is acknowledged once every matched node accepted
    /// it; `async`: at once, as EMQX does by default.
    pub forward: ForwardMode,
    /// How long a sync forward waits for a live node's acknowledgement.
    pub forward_timeout_ms: u64,
    /// How long a node that went down keeps its routes (in case it was only suspected).
    pub route_grace_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            name: "mqtt".into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 4370)),
            discovery: Discovery::Static,
            seeds: Vec::new(),
            dns_name: None,
            dns_port: 4370,
            forward: ForwardMode::Sync,
            forward_timeout_ms: 5_000,
            route_grace_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Discovery {
    #[default]
    Static,
    Dns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ForwardMode {
    #[default]
    Sync,
    Async,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's name in logs (and, later, in the cluster).
    pub name: String,
    /// Seed of the broker's one random number generator (assigned client ids,
    /// random shared-subscription picks). Unset: drawn from the OS at start.
    pub rng_seed: Option<u64>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self { name: "broker@127.0.0.1".into(), rng_seed: None }
    }
}

/// `[auth]`: who may connect (README, "Authentication").
///
/// - `allow_anonymous`: whether clients without user name and password may
///   connect. Unset: allowed only when every listener binds a loopback
///   address (as in Mosquitto 2).
/// - `chain` (default empty): the backends asked, in order, from `"users"`,
///   `"jwt"`, `"http"`, `"x509"`. Each allows, denies or ignores; the first to
///   allow or deny decides. When all ignore, a client without credentials is
///   accepted if anonymous access is allowed, and any other is refused.
///   Every backend listed needs its section, and every section must be listed.
/// - `users`, `jwt`, `http`, `x509`: the backends' sections (see `crate::auth::config`).
/// - `scram`: MQTT 5 enhanced authentication with SCRAM-SHA-256.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub allow_anonymous: Option<bool>,
    pub chain: Vec<BackendKind>,
    pub users: Option<UsersConfig>,
    pub jwt: Option<JwtConfig>,
    pub http: Option<HttpConfig>,
    pub x509: Option<X509Config>,
    pub scram: ScramConfig,
}

impl AuthConfig {
    /// Whether anything beyond anonymous on/off is configured.
    pub fn has_backends(&self) -> bool {
        !self.chain.is_empty() || self.scram.enabled
    }

    /// Checks the rules that span the auth sections.
    fn validate(&self) -> Result<(), String> {
        for (i, kind) in self.chain.iter().enumerate() {
            if self.chain[..i].contains(kind) {
                return Err(format!("[auth] chain lists \"{}\" twice", kind.name()));
            }
        }
        let sections = [
            (BackendKind::Users, self.users.is_some()),
            (BackendKind::Jwt, self.jwt.is_some()),
            (BackendKind::Http, self.http.is_some()),
            (BackendKind::X509, self.x509.is_some()),
        ];
        for (kind, present) in sections {
            let listed = self.chain.contains(&kind);
            if listed && !present {
                return Err(format!("[auth] chain lists \"{0}\" but there is no [auth.{0}] section", kind.name()));
            }
            if present && !listed && !(kind == BackendKind::Users && self.scram.enabled) {
                return Err(format!("[auth.{0}] is configured but [auth] chain does not list \"{0}\"", kind.name()));
            }
        }
        if self.scram.enabled && self.users.is_none() {
            return Err("[auth.scram] enabled = true needs [auth.users] (SCRAM checks the users file)".into());
        }
        if let Some(users) = &self.users
            && !users.file.is_file()
        {
            return Err(format!("[auth.users] file = {:?}: no such file", users.file));
        }
        if let Some(jwt) = &self.jwt {
            match jwt.algorithm {
                JwtAlgorithm::Hs256 if jwt.secret.as_deref().is_none_or(str::is_empty) => {
                    return Err("[auth.jwt] algorithm = \"HS256\" needs a non-empty secret".into());
                }
                JwtAlgorithm::Hs256 if jwt.public_key_file.is_some() => {
                    return Err("[auth.jwt] public_key_file is for RS256; HS256 uses secret".into());
                }
                JwtAlgorithm::Rs256 if jwt.secret.is_some() => {
                    return Err("[auth.jwt] secret is for HS256; RS256 uses public_key_file".into());
                }
                JwtAlgorithm::Rs256 => match &jwt.public_key_file {
                    None => return Err("[auth.jwt] algorithm = \"RS256\" needs public_key_file".into()),
                    Some(path) if !path.is_file() => {
                        return Err(format!("[auth.jwt] public_key_file = {path:?}: no such file"));
                    }
                    Some(_) => {}
                },
                JwtAlgorithm::Hs256 => {}
            }
        }
        if let Some(http) = &self.http {
            http.validate()?;
        }
        Ok(())
    }
}

/// `[authz]`: what clients may publish and subscribe to (README, "Authorization").
///
/// - `acl_file`: the ACL file (ordered `allow|deny WHO ACTION TOPIC...` rules).
///   Unset (the default): every client may publish and subscribe to everything.
///   A missing or malformed file stops start-up; a reload (SIGHUP, `broker ctl
///   reload`) rereads it and keeps the old rules if the new file is bad.
/// - `no_match`: `"allow"` or `"deny"` (the default), the decision when no rule
///   matches; used only with `acl_file`. An empty file has no rules, so every
///   decision is `no_match`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthzConfig {
    pub acl_file: Option<PathBuf>,
    pub no_match: crate::authz::NoMatch,
}

/// Protocol limits and features. Each is announced to MQTT 5 clients where the
/// protocol has a property for it, and enforced for every version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Largest packet accepted from a client, in bytes (announced in CONNACK).
    pub max_packet_size: NonZeroU32,
    /// Longest client identifier accepted, in bytes.
    pub max_client_id_len: NonZeroU16,
    /// Most levels in a topic name or filter.
    pub max_topic_levels: NonZeroU16,
    /// Most subscriptions one session holds.
    pub max_subscriptions: NonZeroUsize,
    /// Most QoS 1/2 messages sent to a client and not yet acknowledged; the
    /// client's Receive Maximum lowers it further.
    pub max_inflight: NonZeroU16,
    /// QoS 2 messages a client may have awaiting PUBREL (announced as Receive Maximum).
    pub receive_maximum: NonZeroU16,
    /// The same bound for MQTT 3.1 / 3.1.1 clients, which have no Receive
    /// Maximum to be told: beyond it the connection is closed. Higher than
    /// `receive_maximum` because such clients cannot know the broker's limit.
    pub max_awaiting_rel_v3: NonZeroU16,
    /// Most user properties one packet (or will) may carry; beyond: DISCONNECT
    /// (or CONNACK) 0x97 Quota exceeded. Each costs far more memory than its
    /// five bytes on the wire.
    pub max_user_properties: u16,
    /// Messages queued per session beyond the in-flight window; overflow drops
    /// QoS 0 messages first, and counts every drop.
    pub max_queued_messages: NonZeroUsize,
    /// Whether QoS 0 messages are queued for offline persistent sessions.
    pub queue_qos0_offline: bool,
    /// Topic aliases a client may use towards the broker, and the most the
    /// broker uses towards one client.
    pub max_topic_alias: u16,
    /// Highest QoS accepted in PUBLISH and granted in SUBACK.
    pub maximum_qos: u8,
    pub retain_available: bool,
    pub wildcard_subscription_available: bool,
    pub shared_subscription_available: bool,
    pub subscription_identifiers_available: bool,
    /// Keep alive imposed on clients (MQTT 5 Server Keep Alive); unset: the client's own.
    pub server_keep_alive: Option<u16>,
    /// Session expiry, in seconds, of MQTT 3.1/3.1.1 sessions with clean session 0.
    pub session_expiry_v3_secs: u32,
    /// Upper bound on the session expiry interval an MQTT 5 client may ask for.
    pub max_session_expiry_secs: u32,
    /// Most retained messages the broker keeps; a new topic beyond this is not retained.
    pub max_retained_messages: NonZeroUsize,
    /// How a shared subscription picks the member that gets a message.
    pub shared_subscription_strategy: SharedStrategy,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            max_packet_size: nz32(1024 * 1024),
            max_client_id_len: nz16(256),
            max_topic_levels: nz16(128),
            max_subscriptions: nzu(1000),
            max_inflight: nz16(32),
            receive_maximum: nz16(32),
            max_awaiting_rel_v3: nz16(1000),
            max_user_properties: 128,
            max_queued_messages: nzu(1000),
            queue_qos0_offline: true,
            max_topic_alias: 64,
            maximum_qos: 2,
            retain_available: true,
            wildcard_subscription_available: true,
            shared_subscription_available: true,
            subscription_identifiers_available: true,
            server_keep_alive: None,
            session_expiry_v3_secs: 2 * 3600,
            max_session_expiry_secs: 7 * 24 * 3600,
            max_retained_messages: nzu(1_000_000),
            shared_subscription_strategy: SharedStrategy::RoundRobin,
        }
    }
}

/// Shared subscription member selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SharedStrategy {
    /// Each member in turn.
    #[default]
    RoundRobin,
    /// A member drawn from the broker's RNG.
    Random,
    /// The same member until it leaves.
    Sticky,
    /// The member (and, in a cluster, the node) chosen by a hash of the
    /// publisher's client id: one publisher's messages go to one member.
    HashClientid,
    /// In a cluster, a member on the publishing node when it has one (then
    /// round robin); alone, the same as round robin.
    Local,
}

/// A configuration that cannot be used, with where it came from.
#[derive(Debug)]
pub struct ConfigError {
    pub path: Option<PathBuf>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {}", path.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and checks a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError { path: Some(path.to_owned()), message: format!("cannot read: {e}") })?;
        Self::parse(&text).map_err(|mut e| {
            e.path = Some(path.to_owned());
            e
        })
    }

    /// Parses and checks TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError { path: None, message: describe_toml_error(text, &e) })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the rules that span several keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |message: String| Err(ConfigError { path: None, message });
        if self.mqtt.maximum_qos > 2 {
            return fail(format!("[mqtt] maximum_qos = {} is not a QoS (0, 1 or 2)", self.mqtt.maximum_qos));
        }
        if self.mqtt.max_client_id_len.get() < 23 {
            // [MQTT-3.1.3-5]: a server must accept identifiers of 1 to 23 characters.
            return fail(format!(
                "[mqtt] max_client_id_len = {} is below the 23 bytes every server must accept",
                self.mqtt.max_client_id_len
            ));
        }
        if let Some(bind) = self.admin.bind
            && !bind.ip().is_loopback()
        {
            return fail(format!(
                "[admin] bind = \"{bind}\": the admin API has no authentication yet, so it listens on loopback only"
            ));
        }
        if let Some(cluster) = &self.cluster {
            if cluster.name.is_empty() {
                return fail("[cluster] name is empty".into());
            }
            if self.node.name.is_empty() || self.node.name.len() > 255 {
                return fail(format!(
                    "[node] name {:?}: a cluster member needs a name of 1 to 255 bytes, unique in its cluster",
                    self.node.name
                ));
            }
            if cluster.discovery == Discovery::Dns && cluster.dns_name.is_none() {
                return fail("[cluster] discovery = \"dns\" needs dns_name".into());
            }
            if let Some(seed) =
                cluster.seeds.iter().find(|s| s.rsplit_once(':').is_none_or(|(_, p)| p.parse::<u16>().is_err()))
            {
                return fail(format!("[cluster] seed {seed:?} is not \"host:port\""));
            }
        }
        if let Err(message) = self.auth.validate() {
            return fail(message);
        }
        // With backends configured, an unset allow_anonymous means "loopback only" rather than a
        // missing decision: the backends decide who else connects.
        let anonymous_decided = self.auth.allow_anonymous.is_some() || self.auth.has_backends();
        if let Err(message) = self.listeners.validate(anonymous_decided) {
            return fail(message);
        }
        Ok(())
    }

    /// Whether clients without credentials are accepted. Unset: yes, unless
    /// backends are configured and a listener binds a non-loopback address
    /// (without backends, `validate` refuses that case).
    pub fn allow_anonymous(&self) -> bool {
        self.auth.allow_anonymous.unwrap_or_else(|| !self.auth.has_backends() || self.every_listener_is_loopback())
    }

    fn every_listener_is_loopback(&self) -> bool {
        self.listeners.enabled().iter().all(|l| l.bind().ip().is_loopback())
    }
}

/// toml reports a byte span; turn it into "line L, column C: message".
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            let source_line = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line}, column {column}: {message}\n    {source_line}")
        }
        None => message.to_owned(),
    }
}

const fn nz16(v: u16) -> NonZeroU16 {
    match NonZeroU16::new(v) {
        Some(v) => v,
        None => NonZeroU16::MIN,
    }
}

const fn nz32(v: u32) -> NonZeroU32 {
    match NonZeroU32::new(v) {
        Some(v) => v,
        None => NonZeroU32::MIN,
    }
}

const fn nzu(v: usize) -> NonZeroUsize {
    match NonZeroUsize::new(v) {
        Some(v) => v,
        None => NonZeroUsize::MIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        match Config::parse(text) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let config = Config::parse("").expect("empty config");
        assert_eq!(config.listeners.tcp.bind, SocketAddr::from(([127, 0, 0, 1], 1883)));
        assert!(config.allow_anonymous());
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = error_of("[node]\nname = \"a\"\nnmae = \"b\"\n");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("nmae"), "{e}");
    }

    #[test]
    fn bad_value_names_line() {
        let e = error_of("[mqtt]\nmax_inflight = 0\n");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("max_inflight"), "{e}");
    }

    #[test]
    fn bad_bind_address_is_refused() {
        let e = error_of("[listeners.tcp]\nbind = \"nowhere\"\n");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn public_bind_without_anonymous_decision_is_refused() {
        let e = error_of("[listeners.tcp]\nbind = \"0.0.0.0:1883\"\n");
        assert!(e.contains("allow_anonymous"), "{e}");
        Config::parse("[listeners.tcp]\nbind = \"0.0.0.0:1883\"\n[auth]\nallow_anonymous = true\n")
            .expect("explicit anonymous");
    }

    #[test]
    fn the_auth_chain_and_its_sections_must_agree() {
        assert!(error_of("[auth]\nchain = [\"jwt\"]\n").contains("no [auth.jwt] section"));
        assert!(error_of("[auth.x509]\n").contains("[auth] chain does not list \"x509\""));
        assert!(error_of("[auth]\nchain = [\"x509\", \"x509\"]\n[auth.x509]\n").contains("twice"));
        assert!(error_of("[auth]\nchain = [\"ldap\"]\n").contains("line 2"));
        assert!(error_of("[auth.scram]\nenabled = true\n").contains("needs [auth.users]"));
        let config =
            Config::parse("[auth]\nchain = [\"x509\"]\n[auth.x509]\nmatch_username = true\n").expect("x509 chain");
        assert_eq!(config.auth.chain, vec![BackendKind::X509]);
    }

    #[test]
    fn auth_backend_settings_are_checked() {
        let jwt = |body: &str| format!("[auth]\nchain = [\"jwt\"]\n[auth.jwt]\n{body}");
        assert!(error_of(&jwt("")).contains("needs a non-empty secret"));
        assert!(error_of(&jwt("algorithm = \"RS256\"\n")).contains("needs public_key_file"));
        assert!(
            error_of(&jwt("algorithm = \"RS256\"\npublic_key_file = \"/nonexistent.pem\"\n")).contains("no such file")
        );
        assert!(error_of(&jwt("algorithm = \"ES256\"\n")).contains("line 4"));
        Config::parse(&jwt("secret = \"s\"\nusername_claim = \"sub\"\n")).expect("HS256 with a secret");
        let http = "[auth]\nchain = [\"http\"]\n[auth.http]\nurl = \"ftp://auth.local/\"\n";
        assert!(error_of(http).contains("[auth.http] url"));
        let users = "[auth]\nchain = [\"users\"]\n[auth.users]\nfile = \"/nonexistent/users\"\n";
        assert!(error_of(users).contains("/nonexistent/users"));
    }

    #[test]
    fn with_backends_a_public_bind_needs_no_anonymous_decision_and_refuses_anonymous() {
        let text = "[listeners.tcp]\nbind = \"0.0.0.0:1883\"\n[auth]\nchain = [\"x509\"]\n[auth.x509]\n";
        let config = Config::parse(text).expect("public bind with a backend");
        assert!(!config.allow_anonymous());
        let loopback = Config::parse("[auth]\nchain = [\"x509\"]\n[auth.x509]\n").expect("loopback");
        assert!(loopback.allow_anonymous(), "unset on loopback keeps its meaning");
    }

    #[test]
    fn qos_above_two_is_refused() {
        assert!(error_of("[mqtt]\nmaximum_qos = 3\n").contains("maximum_qos"));
    }

    #[test]
    fn shipped_sample_config_parses_and_equals_defaults() {
        let text = include_str!("../broker.toml");
        let config = Config::parse(text).expect("sample config");
        let defaults = Config::default();
        assert_eq!(format!("{:?}", config.mqtt), format!("{:?}", defaults.mqtt));
        assert_eq!(format!("{:?}", config.listeners), format!("{:?}", defaults.listeners));
        assert_eq!(config.limits, defaults.limits);
        assert!(config.cluster.is_none(), "the sample runs a single node");
    }

    #[test]
    fn the_sample_cluster_section_uncommented_parses_with_the_defaults() {
        let text = include_str!("../broker.toml");
        let section = text.split_once("# [cluster]").expect("the sample has a cluster section").1;
        let uncommented: String = section
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.contains(" = ")
                    && l.split(' ').next().is_some_and(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let config = Config::parse(&format!("[cluster]\n{uncommented}")).expect("sample cluster section");
        let cluster = config.cluster.expect("cluster section present");
        let defaults = ClusterConfig::default();
        assert_eq!(cluster.seeds, vec!["127.0.0.2:4370".to_string(), "127.0.0.3:4370".to_string()]);
        let strip = |c: &ClusterConfig| ClusterConfig { seeds: Vec::new(), dns_name: None, ..c.clone() };
        assert_eq!(format!("{:?}", strip(&cluster)), format!("{:?}", strip(&defaults)));
    }

    #[test]
    fn limits_keys_parse_and_an_unknown_one_is_named() {
        let config =
            Config::parse("[limits]\nmax_conn_rate_per_ip = 5\nbans_file = \"/tmp/b.json\"\n").expect("limits");
        assert_eq!(config.limits.max_conn_rate_per_ip, 5);
        assert_eq!(config.limits.bans_file.as_deref(), Some(Path::new("/tmp/b.json")));
        let e = error_of("[limits]\nmax_conn_rate_per_ipp = 5\n");
        assert!(e.contains("line 2") && e.contains("max_conn_rate_per_ipp"), "{e}");
        let e = error_of("[limits]\nmax_tracked_ips = 0\n");
        assert!(e.contains("max_tracked_ips"), "{e}");
    }

    #[test]
    fn a_bad_cluster_seed_is_refused() {
        assert!(error_of("[cluster]\nseeds = [\"nohost\"]").contains("host:port"));
        assert!(error_of("[cluster]\ndiscovery = \"dns\"").contains("dns_name"));
    }
}
