//! `[listeners]`: any number of listeners of each kind.
//!
//! `[listeners.KIND]`'s own keys configure the listener named `default`
//! (the single-table syntax of earlier versions); each sub-table
//! `[listeners.KIND.NAME]` is one more listener of that kind, with the same
//! keys. `[listeners.KIND.default]` may be written instead of the own keys,
//! EMQX style. Kinds: `tcp`, `tls`, `ws`, `wss`, `quic`.
//!
//! The split between own keys and named tables is done by hand (see
//! [`KindSeed`]) rather than with `serde(untagged)` or `flatten`, which
//! buffer the values and so lose toml's line and key in errors.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroUsize};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};

use super::{nz16, nzu};

/// Every listener, by kind. The defaults: one TCP listener on 127.0.0.1:1883
/// and nothing else.
#[derive(Debug, Clone, Default)]
pub struct ListenersConfig {
    /// `[listeners.tcp]`: the default TCP listener (present unless `enable = false`).
    pub tcp: TcpListenerConfig,
    /// `[listeners.tls]`: the default TLS listener, when its keys are set.
    pub tls: Option<TlsListenerConfig>,
    /// `[listeners.ws]`: the default WebSocket listener, when its keys are set.
    pub ws: Option<WsListenerConfig>,
    /// `[listeners.wss]`: the default WebSocket-over-TLS listener, when its keys are set.
    pub wss: Option<WssListenerConfig>,
    /// `[listeners.quic]`: the default QUIC listener, when its keys are set.
    pub quic: Option<QuicListenerConfig>,
    /// `[listeners.KIND.NAME]`: the named listeners.
    pub named: NamedListeners,
}

/// The named listeners of each kind, by name.
#[derive(Debug, Clone, Default)]
pub struct NamedListeners {
    pub tcp: BTreeMap<String, TcpListenerConfig>,
    pub tls: BTreeMap<String, TlsListenerConfig>,
    pub ws: BTreeMap<String, WsListenerConfig>,
    pub wss: BTreeMap<String, WssListenerConfig>,
    pub quic: BTreeMap<String, QuicListenerConfig>,
}

/// The kinds of listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    Tcp,
    Tls,
    Ws,
    Wss,
    Quic,
}

impl ListenerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
            Self::Quic => "quic",
        }
    }
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One listener's configuration, whatever its kind.
#[derive(Debug, Clone, Copy)]
pub enum ListenerSpec<'a> {
    Tcp(&'a TcpListenerConfig),
    Tls(&'a TlsListenerConfig),
    Ws(&'a WsListenerConfig),
    Wss(&'a WssListenerConfig),
    Quic(&'a QuicListenerConfig),
}

/// A listener with its kind and name.
#[derive(Debug, Clone, Copy)]
pub struct ListenerEntry<'a> {
    pub kind: ListenerKind,
    pub name: &'a str,
    pub spec: ListenerSpec<'a>,
}

impl ListenerEntry<'_> {
    /// Where the configuration file sets it: `[listeners.tcp]`, `[listeners.tls.internal]`.
    pub fn label(&self) -> String {
        match self.name {
            DEFAULT_NAME => format!("[listeners.{}]", self.kind),
            name => format!("[listeners.{}.{name}]", self.kind),
        }
    }

    /// `kind:name`, as in logs and [`crate::auth::TransportInfo::listener`].
    pub fn id(&self) -> String {
        format!("{}:{}", self.kind, self.name)
    }

    pub fn enabled(&self) -> bool {
        match self.spec {
            ListenerSpec::Tcp(c) => c.enable,
            ListenerSpec::Tls(c) | ListenerSpec::Quic(c) => c.enable,
            ListenerSpec::Ws(c) => c.enable,
            ListenerSpec::Wss(c) => c.enable,
        }
    }

    pub fn bind(&self) -> SocketAddr {
        match self.spec {
            ListenerSpec::Tcp(c) => c.bind,
            ListenerSpec::Tls(c) | ListenerSpec::Quic(c) => c.bind,
            ListenerSpec::Ws(c) => c.bind,
            ListenerSpec::Wss(c) => c.bind,
        }
    }

    pub fn max_connections(&self) -> NonZeroUsize {
        match self.spec {
            ListenerSpec::Tcp(c) => c.max_connections,
            ListenerSpec::Tls(c) | ListenerSpec::Quic(c) => c.max_connections,
            ListenerSpec::Ws(c) => c.max_connections,
            ListenerSpec::Wss(c) => c.max_connections,
        }
    }

    pub fn connect_timeout_secs(&self) -> NonZeroU16 {
        match self.spec {
            ListenerSpec::Tcp(c) => c.connect_timeout_secs,
            ListenerSpec::Tls(c) | ListenerSpec::Quic(c) => c.connect_timeout_secs,
            ListenerSpec::Ws(c) => c.connect_timeout_secs,
            ListenerSpec::Wss(c) => c.connect_timeout_secs,
        }
    }

    /// The TLS side of a TLS, WSS or QUIC listener.
    pub fn tls(&self) -> Option<TlsOptions> {
        match self.spec {
            ListenerSpec::Tcp(_) | ListenerSpec::Ws(_) => None,
            ListenerSpec::Tls(c) | ListenerSpec::Quic(c) => Some(TlsOptions {
                cert: c.cert.clone(),
                key: c.key.clone(),
                client_ca: c.client_ca.clone(),
                peer_cert_as_username: c.peer_cert_as_username,
                peer_cert_as_clientid: c.peer_cert_as_clientid,
            }),
            ListenerSpec::Wss(c) => Some(TlsOptions {
                cert: c.cert.clone(),
                key: c.key.clone(),
                client_ca: c.client_ca.clone(),
                peer_cert_as_username: c.peer_cert_as_username,
                peer_cert_as_clientid: c.peer_cert_as_clientid,
            }),
        }
    }

    /// The WebSocket side of a WS or WSS listener.
    pub fn websocket(&self) -> Option<WsOptions> {
        let (path, header, proxies) = match self.spec {
            ListenerSpec::Ws(c) => (&c.path, &c.proxy_address_header, &c.trusted_proxies),
            ListenerSpec::Wss(c) => (&c.path, &c.proxy_address_header, &c.trusted_proxies),
            _ => return None,
        };
        Some(WsOptions { path: path.clone(), proxy_address_header: header.clone(), trusted_proxies: proxies.clone() })
    }
}

/// The TLS keys of a TLS, WSS or QUIC listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub peer_cert_as_username: PeerCertField,
    pub peer_cert_as_clientid: PeerCertField,
}

/// The WebSocket keys of a WS or WSS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsOptions {
    pub path: String,
    pub proxy_address_header: Option<String>,
    pub trusted_proxies: Vec<IpNet>,
}

/// The name of the listener configured by `[listeners.KIND]`'s own keys.
pub const DEFAULT_NAME: &str = "default";

/// Longest listener name, in bytes (it appears in logs and `TransportInfo`).
const NAME_LEN_MAX: usize = 64;

impl ListenersConfig {
    /// Every listener, enabled or not: per kind (tcp, tls, ws, wss, quic) the
    /// default one first, then the named ones by name.
    pub fn entries(&self) -> Vec<ListenerEntry<'_>> {
        fn add<'a, T>(
            out: &mut Vec<ListenerEntry<'a>>,
            kind: ListenerKind,
            default: Option<&'a T>,
            named: &'a BTreeMap<String, T>,
            spec: fn(&'a T) -> ListenerSpec<'a>,
        ) {
            out.extend(default.map(|c| ListenerEntry { kind, name: DEFAULT_NAME, spec: spec(c) }));
            out.extend(named.iter().map(|(name, c)| ListenerEntry { kind, name, spec: spec(c) }));
        }
        let mut out = Vec::new();
        let n = &self.named;
        add(&mut out, ListenerKind::Tcp, Some(&self.tcp), &n.tcp, ListenerSpec::Tcp);
        add(&mut out, ListenerKind::Tls, self.tls.as_ref(), &n.tls, ListenerSpec::Tls);
        add(&mut out, ListenerKind::Ws, self.ws.as_ref(), &n.ws, ListenerSpec::Ws);
        add(&mut out, ListenerKind::Wss, self.wss.as_ref(), &n.wss, ListenerSpec::Wss);
        add(&mut out, ListenerKind::Quic, self.quic.as_ref(), &n.quic, ListenerSpec::Quic);
        out
    }

    /// The enabled listeners, in the order of [`ListenersConfig::entries`].
    pub fn enabled(&self) -> Vec<ListenerEntry<'_>> {
        self.entries().into_iter().filter(ListenerEntry::enabled).collect()
    }

    /// Checks what spans keys: files exist, anonymous access on public
    /// addresses is a decision, no two stream listeners share an address.
    /// `anonymous_decided`: `[auth] allow_anonymous` is set.
    pub(super) fn validate(&self, anonymous_decided: bool) -> Result<(), String> {
        let enabled = self.enabled();
        if enabled.is_empty() {
            return Err("[listeners]: no listener is enabled (the default TCP listener has enable = false)".into());
        }
        for entry in &enabled {
            validate_one(entry, anonymous_decided)?;
        }
        for (i, a) in enabled.iter().enumerate() {
            let stream = |e: &ListenerEntry<'_>| e.kind != ListenerKind::Quic;
            if let Some(b) =
                enabled[..i].iter().find(|b| b.bind() == a.bind() && a.bind().port() != 0 && stream(a) == stream(b))
            {
                return Err(format!("{} and {} both bind \"{}\"", b.label(), a.label(), a.bind()));
            }
        }
        Ok(())
    }
}

fn validate_one(entry: &ListenerEntry<'_>, anonymous_decided: bool) -> Result<(), String> {
    let label = entry.label();
    let tls = entry.tls();
    if let Some(tls) = &tls {
        for (key, path) in [("cert", Some(&tls.cert)), ("key", Some(&tls.key)), ("client_ca", tls.client_ca.as_ref())] {
            if let Some(path) = path
                && !path.is_file()
            {
                return Err(format!("{label} {key} = {path:?}: no such file"));
            }
        }
        for (key, field) in
            [("peer_cert_as_username", tls.peer_cert_as_username), ("peer_cert_as_clientid", tls.peer_cert_as_clientid)]
        {
            if field != PeerCertField::Disabled && tls.client_ca.is_none() {
                return Err(format!(
                    "{label} {key} = \"{}\" needs client_ca: without it no client certificate is verified",
                    field.as_str()
                ));
            }
        }
    }
    if let Some(ws) = entry.websocket() {
        if !ws.path.starts_with('/') {
            return Err(format!("{label} path = {:?}: an HTTP path starts with '/'", ws.path));
        }
        if let Some(header) = &ws.proxy_address_header {
            if header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(format!("{label} proxy_address_header = {header:?} is not an HTTP header name"));
            }
            if ws.trusted_proxies.is_empty() {
                return Err(format!(
                    "{label} proxy_address_header needs trusted_proxies: a header from anyone else is a forgery"
                ));
            }
        }
    }
    let client_certs = tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    if !anonymous_decided && !entry.bind().ip().is_loopback() && !client_certs {
        let with_ca =
            if tls.is_some() { ", or client_ca (clients then prove who they are with a certificate)" } else { "" };
        return Err(format!(
            "{label} bind = \"{}\" opens a non-loopback address: set [auth] allow_anonymous = true \
             (or configure authentication){with_ca} to accept clients there",
            entry.bind()
        ));
    }
    Ok(())
}

/// `[listeners.tcp]` / `[listeners.tcp.NAME]`: MQTT over TCP (EMQX's port 1883).
///
/// Keys: `enable` (default true; the default TCP listener exists unless it is
/// switched off), `bind` (default "127.0.0.1:1883"), `max_connections`
/// (100000: sockets beyond are closed at accept), `connect_timeout_secs` (10:
/// seconds a new socket has to deliver its CONNECT).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpListenerConfig {
    pub enable: bool,
    pub bind: SocketAddr,
    pub max_connections: NonZeroUsize,
    pub connect_timeout_secs: NonZeroU16,
}

impl Default for TcpListenerConfig {
    fn default() -> Self {
        Self {
            enable: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 1883)),
            max_connections: default_max_connections(),
            connect_timeout_secs: default_connect_timeout(),
        }
    }
}

/// `[listeners.tls]` / `[listeners.tls.NAME]`: MQTT over TLS 1.2 / 1.3
/// (rustls, ring; EMQX's port 8883). `[listeners.quic]` has the same keys.
///
/// Keys: `enable` (default true), `bind` (required), `cert` (required: PEM
/// certificate chain, leaf first), `key` (required: PEM private key, PKCS#8,
/// PKCS#1 or SEC1), `client_ca` (unset: PEM certificate authorities; set,
/// every client must present a certificate that chains to one: mutual TLS),
/// `peer_cert_as_username` and `peer_cert_as_clientid` (default "disabled":
/// replace the CONNECT's username / client id with a field of the verified
/// client certificate before authentication; need `client_ca`),
/// `max_connections` (100000, counting handshakes in progress),
/// `connect_timeout_secs` (10: for the handshake, and again for the CONNECT).
///
/// The files are reread on SIGHUP, `broker ctl reload`, and when they change
/// on disk; new handshakes use the new files, open connections stay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenerConfig {
    #[serde(default = "yes")]
    pub enable: bool,
    pub bind: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    #[serde(default)]
    pub peer_cert_as_username: PeerCertField,
    #[serde(default)]
    pub peer_cert_as_clientid: PeerCertField,
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: NonZeroU16,
}

/// `[listeners.quic]` / `[listeners.quic.NAME]`: MQTT over QUIC (quinn,
/// TLS 1.3, ALPN "mqtt"; EMQX's port 14567), one bidirectional stream per
/// connection. The keys of [`TlsListenerConfig`]; `bind` is a UDP address.
pub type QuicListenerConfig = TlsListenerConfig;

/// `[listeners.ws]` / `[listeners.ws.NAME]`: MQTT over WebSocket (binary
/// frames; subprotocols mqtt, mqttv3.1, mqttv3.1.1; EMQX's port 8083).
///
/// Keys: `enable` (default true), `bind` (required), `path` ("/mqtt": other
/// paths get 404), `max_connections` (100000), `connect_timeout_secs` (10:
/// for the upgrade, and again for the CONNECT), `proxy_address_header`
/// (unset: e.g. "x-forwarded-for") and `trusted_proxies` (empty: networks
/// such as "10.0.0.0/8"). When a connection comes from a trusted proxy, the
/// client address is taken from the header: its entries are read from the
/// right, skipping trusted proxies, and the first other address is the
/// client's (all trusted: the leftmost); its port is unknown and shown as 0.
/// From anyone else the header is ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsListenerConfig {
    #[serde(default = "yes")]
    pub enable: bool,
    pub bind: SocketAddr,
    #[serde(default = "default_ws_path")]
    pub path: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: NonZeroU16,
    #[serde(default)]
    pub proxy_address_header: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
}

/// `[listeners.wss]` / `[listeners.wss.NAME]`: MQTT over WebSocket over TLS
/// (EMQX's port 8084). The keys of [`TlsListenerConfig`] and of
/// [`WsListenerConfig`]; `connect_timeout_secs` covers handshake and upgrade.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WssListenerConfig {
    #[serde(default = "yes")]
    pub enable: bool,
    pub bind: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    #[serde(default)]
    pub peer_cert_as_username: PeerCertField,
    #[serde(default)]
    pub peer_cert_as_clientid: PeerCertField,
    #[serde(default = "default_ws_path")]
    pub path: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: NonZeroU16,
    #[serde(default)]
    pub proxy_address_header: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
}

/// Which field of a verified client certificate replaces a CONNECT's username
/// or client id (EMQX's `peer_cert_as_username` / `peer_cert_as_clientid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerCertField {
    /// The CONNECT's own value stays.
    #[default]
    Disabled,
    /// The subject's common name.
    Cn,
    /// The subject distinguished name, RFC 4514 (`CN=c1,O=Org`).
    Dn,
    /// The first DNS name of the subject alternative name.
    SanDns,
    /// The first e-mail address of the subject alternative name.
    SanEmail,
    /// The first URI of the subject alternative name.
    SanUri,
}

impl PeerCertField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Cn => "cn",
            Self::Dn => "dn",
            Self::SanDns => "san_dns",
            Self::SanEmail => "san_email",
            Self::SanUri => "san_uri",
        }
    }
}

fn yes() -> bool {
    true
}

fn default_ws_path() -> String {
    "/mqtt".into()
}

fn default_max_connections() -> NonZeroUsize {
    nzu(100_000)
}

fn default_connect_timeout() -> NonZeroU16 {
    nz16(10)
}

impl<'de> Deserialize<'de> for ListenersConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ListenersVisitor)
    }
}

struct ListenersVisitor;

impl<'de> Visitor<'de> for ListenersVisitor {
    type Value = ListenersConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of listener kinds (tcp, tls, ws, wss, quic)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = ListenersConfig::default();
        // An unknown kind fails in `next_key`, so toml points at it.
        while let Some(kind) = map.next_key::<ListenerKind>()? {
            match kind {
                ListenerKind::Tcp => {
                    let (default, named) = map.next_value_seed(KindSeed::<TcpListenerConfig>::new(kind))?;
                    out.tcp = default.unwrap_or_default();
                    out.named.tcp = named;
                }
                ListenerKind::Tls => {
                    (out.tls, out.named.tls) = map.next_value_seed(KindSeed::<TlsListenerConfig>::new(kind))?;
                }
                ListenerKind::Ws => {
                    (out.ws, out.named.ws) = map.next_value_seed(KindSeed::<WsListenerConfig>::new(kind))?;
                }
                ListenerKind::Wss => {
                    (out.wss, out.named.wss) = map.next_value_seed(KindSeed::<WssListenerConfig>::new(kind))?;
                }
                ListenerKind::Quic => {
                    (out.quic, out.named.quic) = map.next_value_seed(KindSeed::<QuicListenerConfig>::new(kind))?;
                }
            }
        }
        Ok(out)
    }
}

/// Reads one `[listeners.KIND]` table: its own keys (the options of `T`) make
/// the default listener, each sub-table a named one.
struct KindSeed<T> {
    kind: ListenerKind,
    listener: PhantomData<T>,
}

impl<T> KindSeed<T> {
    fn new(kind: ListenerKind) -> Self {
        Self { kind, listener: PhantomData }
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for KindSeed<T> {
    type Value = (Option<T>, BTreeMap<String, T>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for KindSeed<T> {
    type Value = (Option<T>, BTreeMap<String, T>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a [listeners.{}] table", self.kind)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut split = Split {
            map,
            kind: self.kind,
            options: struct_fields::<T>(),
            named: BTreeMap::new(),
            own_keys: 0,
            named_failed: false,
        };
        let default = match T::deserialize(MapAccessDeserializer::new(&mut split)) {
            Ok(listener) if split.own_keys > 0 || self.kind == ListenerKind::Tcp => Some(listener),
            Ok(_) => None,
            Err(error) if split.named_failed || split.own_keys > 0 => return Err(error),
            // Only named tables: the missing required keys were the default listener's, which is absent.
            Err(_) => None,
        };
        let mut named = split.named;
        let default = match named.remove(DEFAULT_NAME) {
            Some(_) if split.own_keys > 0 => {
                return Err(de::Error::custom(format!(
                    "[listeners.{kind}] has keys of its own and a [listeners.{kind}.default] table: \
                     both configure the listener named default",
                    kind = self.kind
                )));
            }
            Some(listener) => Some(listener),
            None => default,
        };
        Ok((default, named))
    }
}

/// The map `T` deserializes from: the kind's table with the named sub-tables
/// taken out (into `named`) as they go by.
struct Split<A, T> {
    map: A,
    kind: ListenerKind,
    /// `T`'s keys.
    options: &'static [&'static str],
    named: BTreeMap<String, T>,
    own_keys: usize,
    /// A named listener failed: its error, not a missing default key, is the one to report.
    named_failed: bool,
}

impl<'de, A: MapAccess<'de>, T: Deserialize<'de>> MapAccess<'de> for Split<A, T> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        while let Some(key) = self.map.next_key::<String>()? {
            if self.options.contains(&key.as_str()) {
                self.own_keys += 1;
                return seed.deserialize(key.into_deserializer()).map(Some);
            }
            let seed = NamedSeed { kind: self.kind, name: &key, options: self.options, listener: PhantomData };
            match self.map.next_value_seed(seed) {
                Ok(listener) => {
                    self.named.insert(key, listener);
                }
                Err(error) => {
                    self.named_failed = true;
                    return Err(error);
                }
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        self.map.next_value_seed(seed)
    }
}

/// One `[listeners.KIND.NAME]` table; anything but a table under a key that is
/// not an option is reported as an unknown key.
struct NamedSeed<'k, T> {
    kind: ListenerKind,
    name: &'k str,
    options: &'static [&'static str],
    listener: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for NamedSeed<'_, T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for NamedSeed<'_, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{name}` to be a [listeners.{kind}.{name}] table, as it is not a key of [listeners.{kind}] ({})",
            self.options.join(", "),
            name = self.name,
            kind = self.kind
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if self.name.is_empty() || self.name.len() > NAME_LEN_MAX || !self.name.bytes().all(valid) {
            return Err(de::Error::custom(format!(
                "[listeners.{}.{}]: a listener name is 1 to {NAME_LEN_MAX} letters, digits, '_' or '-'",
                self.kind, self.name
            )));
        }
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// The keys of a struct deriving `Deserialize`, as serde's derive lists them:
/// the derive passes them to `deserialize_struct`, where this probe reads them.
fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
#[path = "listeners_tests.rs"]
mod tests;
