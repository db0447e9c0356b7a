//! Bans by client identifier, user name or address block, with expiry,
//! optionally kept in a JSON file across restarts.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::authz::Cidr;

/// Bans held at once. Each CONNECT scans the address-block bans, and a list
/// longer than this belongs in a firewall.
pub(crate) const BANS_MAX: usize = 10_000;

/// What a ban matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanKind {
    ClientId,
    Username,
    /// An address block (`10.0.0.0/8`, `2001:db8::/32`) or one address.
    Cidr,
}

impl fmt::Display for BanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ClientId => "client_id",
            Self::Username => "username",
            Self::Cidr => "cidr",
        })
    }
}

/// One ban as the API and the bans file show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ban {
    pub kind: BanKind,
    /// The client identifier or user name (exact), or the address block.
    pub value: String,
    /// Unix milliseconds at which the ban lapses; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Why, for the people reading the list.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl Ban {
    /// Whether a client (id, user name, address) matches this ban, in force
    /// or not. The value is parsed once here, not once per client asked about.
    pub(crate) fn matcher(&self) -> impl Fn(&str, Option<&str>, IpAddr) -> bool + '_ {
        let block = match self.kind {
            BanKind::Cidr => Cidr::parse(&self.value).ok(),
            BanKind::ClientId | BanKind::Username => None,
        };
        move |client_id, username, ip| match self.kind {
            BanKind::ClientId => self.value == client_id,
            BanKind::Username => username == Some(self.value.as_str()),
            BanKind::Cidr => block.is_some_and(|block| block.contains(ip)),
        }
    }
}

/// What `POST /api/v1/bans` takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    pub kind: BanKind,
    pub value: String,
    /// Seconds until the ban lapses; absent: never.
    #[serde(default)]
    pub duration_secs: Option<u64>,
    #[serde(default)]
    pub reason: String,
}

/// What `DELETE /api/v1/bans` takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unban {
    pub kind: BanKind,
    pub value: String,
}

struct Entry {
    ban: Ban,
    /// Set for address-block bans.
    cidr: Option<Cidr>,
    /// A refusal under this ban was logged; later ones are only counted.
    logged: bool,
}

/// The bans in force, keyed by kind and canonical value.
pub(crate) struct Bans {
    entries: BTreeMap<(BanKind, String), Entry>,
    file: Option<PathBuf>,
}

impl fmt::Debug for Bans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bans").field("len", &self.entries.len()).field("file", &self.file).finish()
    }
}

impl Bans {
    /// The bans in `file` (none if it does not exist yet), or none in memory.
    pub(crate) fn load(file: Option<&Path>) -> Result<Self, String> {
        let mut bans = Self { entries: BTreeMap::new(), file: file.map(Path::to_owned) };
        let Some(path) = file else { return Ok(bans) };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(bans),
            Err(e) => return Err(format!("[limits] bans_file {}: cannot read: {e}", path.display())),
        };
        let list: Vec<Ban> = serde_json::from_str(&text)
            .map_err(|e| format!("[limits] bans_file {}: not a list of bans: {e}", path.display()))?;
        for ban in list {
            bans.insert(ban).map_err(|e| format!("[limits] bans_file {}: {e}", path.display()))?;
        }
        Ok(bans)
    }

    /// Adds or replaces a ban; the value is checked and made canonical. An
    /// address block with host bits set is refused (`authz::cidr`), naming
    /// the block probably meant.
    pub(crate) fn insert(&mut self, ban: Ban) -> Result<Ban, String> {
        self.replace(ban).map(|(ban, _)| ban)
    }

    /// Like `insert`, also returning the entry the ban replaced.
    fn replace(&mut self, mut ban: Ban) -> Result<(Ban, Option<Entry>), String> {
        let cidr = match ban.kind {
            BanKind::Cidr => {
                let cidr = Cidr::parse(&ban.value)?;
                ban.value = cidr.to_string();
                Some(cidr)
            }
            _ if ban.value.is_empty() || ban.value.len() > usize::from(u16::MAX) => {
                return Err(format!("a {} ban needs a value of 1 to 65,535 bytes", ban.kind));
            }
            _ => None,
        };
        let key = (ban.kind, ban.value.clone());
        if self.entries.len() >= BANS_MAX && !self.entries.contains_key(&key) {
            return Err(format!("{BANS_MAX} bans are in force already; remove some first"));
        }
        let previous = self.entries.insert(key, Entry { ban: ban.clone(), cidr, logged: false });
        Ok((ban, previous))
    }

    /// Adds or replaces a ban and writes the bans file; if the file cannot
    /// be written, the bans stay as they were and the error says why.
    pub(crate) fn add(&mut self, ban: Ban) -> Result<Ban, String> {
        let (ban, previous) = self.replace(ban)?;
        if let Err(error) = self.save() {
            let key = (ban.kind, ban.value.clone());
            match previous {
                Some(entry) => self.entries.insert(key, entry),
                None => self.entries.remove(&key),
            };
            return Err(error);
        }
        Ok(ban)
    }

    /// Removes a ban and writes the bans file; false if there was none.
    pub(crate) fn remove(&mut self, kind: BanKind, value: &str) -> Result<bool, String> {
        let value = match kind {
            BanKind::Cidr => Cidr::parse(value)?.to_string(),
            _ => value.to_owned(),
        };
        let Some(entry) = self.entries.remove(&(kind, value.clone())) else { return Ok(false) };
        if let Err(error) = self.save() {
            self.entries.insert((kind, value), entry);
            return Err(error);
        }
        Ok(true)
    }

    /// Forgets the bans that lapsed before `wall_ms`.
    pub(crate) fn purge(&mut self, wall_ms: u64) {
        self.entries.retain(|_, e| e.ban.until_ms.is_none_or(|until| wall_ms < until));
    }

    pub(crate) fn list(&self) -> Vec<Ban> {
        self.entries.values().map(|e| e.ban.clone()).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The ban in force at `wall_ms` that a client matches, and whether it
    /// is the first match of that ban (which is worth a log line).
    pub(crate) fn matching(
        &mut self,
        client_id: &str,
        username: Option<&str>,
        ip: IpAddr,
        wall_ms: u64,
    ) -> Option<(Ban, bool)> {
        if self.entries.is_empty() {
            return None;
        }
        let in_force = |e: &Entry| e.ban.until_ms.is_none_or(|until| wall_ms < until);
        let mut keys = vec![(BanKind::ClientId, client_id.to_owned())];
        keys.extend(username.map(|u| (BanKind::Username, u.to_owned())));
        let exact = keys.into_iter().find(|k| self.entries.get(k).is_some_and(in_force));
        let key = exact.or_else(|| {
            let blocks = self.entries.range((BanKind::Cidr, String::new())..);
            blocks
                .filter(|&(_, e)| in_force(e) && e.cidr.is_some_and(|c| c.contains(ip)))
                .map(|(k, _)| k.clone())
                .next()
        })?;
        let entry = self.entries.get_mut(&key)?;
        let first = !std::mem::replace(&mut entry.logged, true);
        Some((entry.ban.clone(), first))
    }

    /// Writes the bans to the bans file, if there is one: a temporary file,
    /// synced, then renamed over the old one, so a crash (of the process or
    /// of the machine) leaves the old list or the new.
    pub(crate) fn save(&self) -> Result<(), String> {
        let Some(path) = &self.file else { return Ok(()) };
        let text = serde_json::to_string_pretty(&self.list()).map_err(|e| e.to_string())?;
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut file, (text + "\n").as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("cannot write the bans file {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ban(kind: BanKind, value: &str, until_ms: Option<u64>) -> Ban {
        Ban { kind, value: value.into(), until_ms, reason: String::new() }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn address_block_bans_are_stored_in_canonical_form() {
        let mut bans = Bans::load(None).unwrap();
        for (value, stored) in
            [("192.0.2.7", "192.0.2.7/32"), ("::ffff:10.0.0.0/104", "10.0.0.0/8"), ("2001:db8::/32", "2001:db8::/32")]
        {
            assert_eq!(bans.insert(ban(BanKind::Cidr, value, None)).unwrap().value, stored);
        }
    }

    #[test]
    fn an_address_block_ban_with_host_bits_is_refused_naming_the_network_meant() {
        let mut bans = Bans::load(None).unwrap();
        let e = bans.insert(ban(BanKind::Cidr, "10.1.2.3/8", None)).unwrap_err();
        assert!(e.contains("did you mean 10.0.0.0/8?"), "{e}");
        let e = bans.remove(BanKind::Cidr, "2001:db8::1/32").unwrap_err();
        assert!(e.contains("did you mean 2001:db8::/32?"), "{e}");
        assert_eq!(bans.len(), 0);
    }

    #[test]
    fn an_address_block_ban_matches_ipv4_ipv6_and_ipv4_mapped_clients() {
        let mut bans = Bans::load(None).unwrap();
        bans.insert(ban(BanKind::Cidr, "10.0.0.0/8", None)).unwrap();
        bans.insert(ban(BanKind::Cidr, "2001:db8::/32", None)).unwrap();
        assert!(bans.matching("c", None, ip("10.255.0.1"), 0).is_some());
        assert!(bans.matching("c", None, ip("::ffff:10.0.0.1"), 0).is_some(), "IPv4 through a dual-stack socket");
        assert!(bans.matching("c", None, ip("2001:db8:1::1"), 0).is_some());
        assert!(bans.matching("c", None, ip("11.0.0.1"), 0).is_none());
        assert!(bans.matching("c", None, ip("::a00:1"), 0).is_none(), "an IPv6 address is not in an IPv4 block");
        assert!(bans.matching("c", None, ip("2001:db9::1"), 0).is_none());
    }

    #[test]
    fn a_ban_matcher_sees_what_the_ban_names() {
        let block = ban(BanKind::Cidr, "10.0.0.0/8", None);
        let matches = block.matcher();
        assert!(matches("any", None, ip("10.1.1.1")));
        assert!(!matches("any", None, ip("11.1.1.1")));
        let user = ban(BanKind::Username, "mallory", None);
        assert!(user.matcher()("any", Some("mallory"), ip("11.1.1.1")));
        assert!(!user.matcher()("mallory", None, ip("11.1.1.1")), "a client id is not a user name");
    }

    #[test]
    fn a_client_matches_by_id_user_name_or_address() {
        let mut bans = Bans::load(None).unwrap();
        bans.insert(ban(BanKind::ClientId, "bad", None)).unwrap();
        bans.insert(ban(BanKind::Username, "mallory", None)).unwrap();
        bans.insert(ban(BanKind::Cidr, "192.0.2.0/24", None)).unwrap();
        let good = ip("198.51.100.1");
        assert!(bans.matching("bad", None, good, 0).is_some());
        assert!(bans.matching("ok", Some("mallory"), good, 0).is_some());
        assert!(bans.matching("ok", None, ip("192.0.2.200"), 0).is_some());
        assert!(bans.matching("ok", Some("alice"), good, 0).is_none());
        assert!(bans.matching("Bad", None, good, 0).is_none(), "client identifiers match exactly");
    }

    #[test]
    fn only_the_first_refusal_of_a_ban_is_marked_for_the_log() {
        let mut bans = Bans::load(None).unwrap();
        bans.insert(ban(BanKind::ClientId, "bad", None)).unwrap();
        let addr = ip("127.0.0.1");
        assert_eq!(bans.matching("bad", None, addr, 0).map(|(_, first)| first), Some(true));
        assert_eq!(bans.matching("bad", None, addr, 0).map(|(_, first)| first), Some(false));
    }

    #[test]
    fn a_ban_lapses_at_its_expiry() {
        let mut bans = Bans::load(None).unwrap();
        bans.insert(ban(BanKind::ClientId, "c", Some(1000))).unwrap();
        let addr = ip("127.0.0.1");
        assert!(bans.matching("c", None, addr, 999).is_some());
        assert!(bans.matching("c", None, addr, 1000).is_none());
        bans.purge(1000);
        assert_eq!(bans.len(), 0);
    }

    #[test]
    fn removal_takes_the_value_in_any_spelling_of_the_block() {
        let mut bans = Bans::load(None).unwrap();
        bans.insert(ban(BanKind::Cidr, "::ffff:10.0.0.0/104", None)).unwrap();
        assert!(bans.remove(BanKind::Cidr, " 10.0.0.0/8").unwrap());
        assert!(!bans.remove(BanKind::Cidr, "10.0.0.0/8").unwrap());
    }

    #[test]
    fn empty_values_and_too_many_bans_are_refused() {
        let mut bans = Bans::load(None).unwrap();
        assert!(bans.insert(ban(BanKind::Username, "", None)).is_err());
        for i in 0..BANS_MAX {
            bans.insert(ban(BanKind::ClientId, &format!("c{i}"), None)).unwrap();
        }
        assert!(bans.insert(ban(BanKind::ClientId, "one-more", None)).is_err());
        assert!(bans.insert(ban(BanKind::ClientId, "c0", Some(5))).is_ok(), "replacing one is fine");
    }

    #[test]
    fn bans_survive_in_the_bans_file() {
        let dir = std::env::temp_dir().join(format!("broker-bans-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bans.json");
        let _ = std::fs::remove_file(&path);
        let mut bans = Bans::load(Some(&path)).unwrap();
        assert_eq!(bans.len(), 0, "a missing file is an empty list");
        bans.insert(ban(BanKind::Cidr, "192.0.2.1", Some(77))).unwrap();
        bans.insert(Ban { reason: "spam".into(), ..ban(BanKind::Username, "u", None) }).unwrap();
        bans.save().unwrap();
        let again = Bans::load(Some(&path)).unwrap();
        assert_eq!(again.list(), bans.list());
        std::fs::write(&path, "{not json").unwrap();
        let error = Bans::load(Some(&path)).unwrap_err();
        assert!(error.contains("bans_file") && error.contains("bans.json"), "{error}");
        std::fs::write(&path, r#"[{"kind": "cidr", "value": "10.1.2.3/8"}]"#).unwrap();
        let error = Bans::load(Some(&path)).unwrap_err();
        assert!(error.contains("bans.json") && error.contains("did you mean 10.0.0.0/8?"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
