//! The subscription index: which sessions a topic reaches.
//!
//! Exact filters are found by hash, wildcard filters by [`FilterTrie`]; both
//! lead to one [`FilterEntry`] per filter holding its direct subscribers and
//! its `$share` groups.

use crate::hash::AHashMap;
use bytestring::ByteString;
use mqtt_codec::SubscriptionOptions;
use mqtt_codec::topic::{has_wildcard, parse_shared};
use rand::Rng;

use super::trie::FilterTrie;
use crate::config::SharedStrategy;

/// A client identifier: the key of a session.
pub type ClientId = ByteString;

/// One subscription as its session holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub options: SubscriptionOptions,
    pub identifier: Option<u32>,
}

/// Names a shared subscription group: (group, filter without the prefix).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedKey {
    pub group: ByteString,
    pub filter: ByteString,
}

/// One session reached by a topic through one subscription.
#[derive(Debug, Clone)]
pub struct Matched {
    pub client: ClientId,
    pub subscription: Subscription,
    /// Set when the session was picked as the member of a shared group.
    pub shared: Option<SharedKey>,
}

#[derive(Debug, Default)]
struct FilterEntry {
    direct: AHashMap<ClientId, Subscription>,
    shared: AHashMap<ByteString, SharedGroup>,
}

impl FilterEntry {
    fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.shared.is_empty()
    }
}

#[derive(Debug, Default)]
struct SharedGroup {
    /// In subscription order, so that round robin is fair and deterministic.
    members: Vec<(ClientId, Subscription)>,
    next: usize,
    sticky: Option<ClientId>,
}

/// A change of this node's route set (ALGORITHM.md, "Routes"): a route is a
/// filter string as subscribed (`t/+`, or `$share/g/t/+` for a group), and
/// exists while at least one local subscription has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    Added(ByteString),
    Removed(ByteString),
}

/// The subscription index of one node.
#[derive(Debug)]
pub struct Router {
    entries: AHashMap<ByteString, FilterEntry>,
    wildcards: FilterTrie,
    strategy: SharedStrategy,
    /// Route changes since the last `take_route_changes`; `None` on a single node,
    /// where nobody reads them.
    changes: Option<Vec<RouteChange>>,
}

impl Router {
    pub fn new(strategy: SharedStrategy) -> Self {
        Self { entries: AHashMap::new(), wildcards: FilterTrie::default(), strategy, changes: None }
    }

    /// Starts recording route changes (a cluster member publishes them to its peers).
    pub fn record_route_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// The route changes since the last call, in order.
    pub fn take_route_changes(&mut self) -> Vec<RouteChange> {
        self.changes.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Every route of this node (see [`RouteChange`]).
    pub fn routes(&self) -> Vec<ByteString> {
        let mut routes = Vec::new();
        for (filter, entry) in &self.entries {
            if !entry.direct.is_empty() {
                routes.push(filter.clone());
            }
            for group in entry.shared.keys() {
                routes.push(shared_route(group, filter));
            }
        }
        routes
    }

    /// Whether this node has members of `$share/group/filter`.
    #[must_use]
    pub fn has_group(&self, group: &str, filter: &str) -> bool {
        self.entries.get(filter).is_some_and(|e| e.shared.contains_key(group))
    }

    fn changed(&mut self, change: RouteChange) {
        if let Some(changes) = &mut self.changes {
            changes.push(change);
        }
    }

    /// Adds or replaces `client`'s subscription to `filter` (which may be a
    /// `$share/...` filter). Returns true if it replaced an existing one.
    pub fn subscribe(&mut self, client: &ClientId, filter: &str, subscription: Subscription) -> bool {
        let (group, real) = split(filter);
        let real = ByteString::from(real);
        let entry = self.entries.entry(real.clone()).or_insert_with(|| {
            if has_wildcard(&real) {
                self.wildcards.insert(&real);
            }
            FilterEntry::default()
        });
        let (replaced, added) = match group {
            None => {
                let first = entry.direct.is_empty();
                let replaced = entry.direct.insert(client.clone(), subscription).is_some();
                (replaced, first.then(|| real.clone()))
            }
            Some(group) => {
                let first = !entry.shared.contains_key(group);
                let members = entry.shared.entry(group.into()).or_default();
                let replaced = match members.members.iter_mut().find(|(c, _)| c == client) {
                    Some(member) => {
                        member.1 = subscription;
                        true
                    }
                    None => {
                        members.members.push((client.clone(), subscription));
                        false
                    }
                };
                (replaced, first.then(|| shared_route(group, &real)))
            }
        };
        if let Some(route) = added {
            self.changed(RouteChange::Added(route));
        }
        replaced
    }

    /// Removes `client`'s subscription to `filter`; returns whether it existed.
    pub fn unsubscribe(&mut self, client: &ClientId, filter: &str) -> bool {
        let (group, real) = split(filter);
        let Some(entry) = self.entries.get_mut(real) else {
            return false;
        };
        let mut removed = None;
        let existed = match group {
            None => {
                let existed = entry.direct.remove(client).is_some();
                if existed && entry.direct.is_empty() {
                    removed = Some(ByteString::from(real));
                }
                existed
            }
            Some(group_name) => match entry.shared.get_mut(group_name) {
                None => false,
                Some(group) => {
                    let before = group.members.len();
                    group.members.retain(|(c, _)| c != client);
                    if group.sticky.as_ref() == Some(client) {
                        group.sticky = None;
                    }
                    let existed = group.members.len() != before;
                    if group.members.is_empty() {
                        entry.shared.remove(group_name);
                        removed = Some(shared_route(group_name, real));
                    }
                    existed
                }
            },
        };
        if entry.is_empty() {
            self.entries.remove(real);
            if has_wildcard(real) {
                self.wildcards.remove(real);
            }
        }
        if let Some(route) = removed {
            self.changed(RouteChange::Removed(route));
        }
        existed
    }

    /// Appends to `out` every subscription `topic` reaches: each direct
    /// subscriber, and one member per shared group chosen by the strategy
    /// among members for which `available` holds (any member if none does).
    pub fn route(
        &mut self,
        topic: &str,
        rng: &mut impl Rng,
        available: impl Fn(&ClientId) -> bool,
        out: &mut Vec<Matched>,
    ) {
        self.route_serving(topic, None, rng, available, true, |_, _| true, out);
    }

    /// Like [`Router::route`], serving direct subscriptions only when
    /// `direct`, and only the shared groups (group, real filter) for which
    /// `serve_group` holds: in a cluster another node may serve a group this
    /// node also has members of. `publisher` feeds `hash_clientid`.
    #[allow(clippy::too_many_arguments)]
    pub fn route_serving(
        &mut self,
        topic: &str,
        publisher: Option<&str>,
        rng: &mut impl Rng,
        available: impl Fn(&ClientId) -> bool,
        direct: bool,
        serve_group: impl Fn(&str, &str) -> bool,
        out: &mut Vec<Matched>,
    ) {
        let key = publisher.map_or(0, stable_hash);
        let mut filters: Vec<ByteString> = Vec::new();
        if self.entries.contains_key(topic) {
            filters.push(ByteString::from(topic));
        }
        self.wildcards.matches(topic, &mut |f| filters.push(f.clone()));
        for filter in filters {
            let Some(entry) = self.entries.get_mut(&filter) else { continue };
            if direct {
                for (client, subscription) in &entry.direct {
                    out.push(Matched { client: client.clone(), subscription: *subscription, shared: None });
                }
            }
            for (group_name, group) in &mut entry.shared {
                if !serve_group(group_name, &filter) {
                    continue;
                }
                if let Some((client, subscription)) = pick(group, self.strategy, key, rng, &available) {
                    out.push(Matched {
                        client,
                        subscription,
                        shared: Some(SharedKey { group: group_name.clone(), filter: filter.clone() }),
                    });
                }
            }
        }
    }

    /// Picks a member of a shared group other than `except`, for redelivering
    /// a departing member's messages.
    pub fn pick_other_member(
        &mut self,
        key: &SharedKey,
        except: &ClientId,
        rng: &mut impl Rng,
        available: impl Fn(&ClientId) -> bool,
    ) -> Option<(ClientId, Subscription)> {
        let group = self.entries.get_mut(&key.filter)?.shared.get_mut(&key.group)?;
        pick(group, self.strategy, 0, rng, &|c: &ClientId| c != except && available(c)).filter(|(c, _)| c != except)
    }

    /// Number of distinct filters in the index.
    pub fn filter_count(&self) -> usize {
        self.entries.len()
    }
}

fn shared_route(group: &str, real: &str) -> ByteString {
    ByteString::from(format!("$share/{group}/{real}"))
}

fn split(filter: &str) -> (Option<&str>, &str) {
    match parse_shared(filter) {
        Some((group, real)) => (Some(group), real),
        None => (None, filter),
    }
}

/// FNV-1a: the same on every node and every run, unlike the maps' hashers.
pub fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn pick(
    group: &mut SharedGroup,
    strategy: SharedStrategy,
    key: u64,
    rng: &mut impl Rng,
    available: &impl Fn(&ClientId) -> bool,
) -> Option<(ClientId, Subscription)> {
    let count = group.members.len();
    if count == 0 {
        return None;
    }
    if strategy == SharedStrategy::Sticky
        && let Some(sticky) = &group.sticky
        && available(sticky)
        && let Some(member) = group.members.iter().find(|(c, _)| c == sticky)
    {
        return Some(member.clone());
    }
    let start = match strategy {
        SharedStrategy::RoundRobin | SharedStrategy::Sticky | SharedStrategy::Local => group.next % count,
        SharedStrategy::Random => rng.random_range(0..count),
        SharedStrategy::HashClientid => (key % count as u64) as usize,
    };
    let chosen =
        (0..count).map(|offset| (start + offset) % count).find(|&i| available(&group.members[i].0)).unwrap_or(start);
    group.next = chosen + 1;
    let member = group.members[chosen].clone();
    if strategy == SharedStrategy::Sticky {
        group.sticky = Some(member.0.clone());
    }
    Some(member)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seam;

    fn sub() -> Subscription {
        Subscription { options: SubscriptionOptions::default(), identifier: None }
    }

    fn clients_for(router: &mut Router, topic: &str) -> Vec<String> {
        let mut out = Vec::new();
        router.route(topic, &mut seam::rng(Some(1)), |_| true, &mut out);
        let mut names: Vec<String> = out.iter().map(|m| m.client.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn route_changes_follow_the_first_and_last_subscription_of_each_route() {
        let mut router = Router::new(SharedStrategy::RoundRobin);
        router.subscribe(&"x".into(), "before/recording", sub());
        router.record_route_changes();
        router.subscribe(&"a".into(), "t/+", sub());
        router.subscribe(&"b".into(), "t/+", sub());
        router.subscribe(&"a".into(), "$share/g/t/+", sub());
        router.subscribe(&"b".into(), "$share/g/t/+", sub());
        router.unsubscribe(&"a".into(), "t/+");
        router.unsubscribe(&"b".into(), "t/+");
        router.unsubscribe(&"a".into(), "$share/g/t/+");
        router.unsubscribe(&"nobody".into(), "t/+");
        use RouteChange::{Added, Removed};
        assert_eq!(
            router.take_route_changes(),
            vec![Added("t/+".into()), Added("$share/g/t/+".into()), Removed("t/+".into())]
        );
        let mut routes = router.routes();
        routes.sort();
        assert_eq!(routes, vec![ByteString::from("$share/g/t/+"), ByteString::from("before/recording")]);
        router.unsubscribe(&"b".into(), "$share/g/t/+");
        assert_eq!(router.take_route_changes(), vec![Removed("$share/g/t/+".into())]);
        assert!(router.take_route_changes().is_empty());
    }

    #[test]
    fn exact_and_wildcard_subscribers_are_both_found() {
        let mut router = Router::new(SharedStrategy::RoundRobin);
        router.subscribe(&"a".into(), "t/x", sub());
        router.subscribe(&"b".into(), "t/+", sub());
        router.subscribe(&"c".into(), "u/#", sub());
        assert_eq!(clients_for(&mut router, "t/x"), ["a", "b"]);
        assert_eq!(clients_for(&mut router, "t/y"), ["b"]);
    }

    #[test]
    fn unsubscribe_removes_only_that_client() {
        let mut router = Router::new(SharedStrategy::RoundRobin);
        router.subscribe(&"a".into(), "t/+", sub());
        router.subscribe(&"b".into(), "t/+", sub());
        assert!(router.unsubscribe(&"a".into(), "t/+"));
        assert!(!router.unsubscribe(&"a".into(), "t/+"));
        assert_eq!(clients_for(&mut router, "t/x"), ["b"]);
        assert!(router.unsubscribe(&"b".into(), "t/+"));
        assert_eq!(router.filter_count(), 0);
        assert!(clients_for(&mut router, "t/x").is_empty());
    }

    #[test]
    fn shared_group_round_robins_one_member_per_message() {
        let mut router = Router::new(SharedStrategy::RoundRobin);
        for c in ["a", "b", "c"] {
            router.subscribe(&c.into(), "$share/g/t/#", sub());
        }
        let picks: Vec<Vec<String>> = (0..6).map(|_| clients_for(&mut router, "t/1")).collect();
        assert_eq!(picks, [["a"], ["b"], ["c"], ["a"], ["b"], ["c"]]);
    }

    #[test]
    fn shared_group_skips_unavailable_members() {
        let mut router = Router::new(SharedStrategy::RoundRobin);
        for c in ["a", "b"] {
            router.subscribe(&c.into(), "$share/g/t", sub());
        }
        for _ in 0..3 {
            let mut out = Vec::new();
            router.route("t", &mut seam::rng(Some(1)), |c| c != "a", &mut out);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].client, "b");
        }
    }

    #[test]
    fn hash_clientid_sends_one_publishers_messages_to_one_member() {
        let mut router = Router::new(SharedStrategy::HashClientid);
        for c in ["a", "b", "c"] {
            router.subscribe(&c.into(), "$share/g/t", sub());
        }
        let mut pick_for = |publisher: &str| {
            let mut out = Vec::new();
            router.route_serving("t", Some(publisher), &mut seam::rng(Some(1)), |_| true, true, |_, _| true, &mut out);
            out[0].client.to_string()
        };
        let first: Vec<String> = ["p1", "p2", "p3", "p4"].iter().map(|p| pick_for(p)).collect();
        let again: Vec<String> = ["p1", "p2", "p3", "p4"].iter().map(|p| pick_for(p)).collect();
        assert_eq!(first, again, "the same publisher always reaches the same member");
        let distinct: std::collections::BTreeSet<_> = (0..30).map(|i| pick_for(&format!("publisher-{i}"))).collect();
        assert!(distinct.len() > 1, "publishers spread over the members");
    }

    #[test]
    fn sticky_keeps_the_member_while_available() {
        let mut router = Router::new(SharedStrategy::Sticky);
        for c in ["a", "b"] {
            router.subscribe(&c.into(), "$share/g/t", sub());
        }
        let first = clients_for(&mut router, "t");
        for _ in 0..4 {
            assert_eq!(clients_for(&mut router, "t"), first);
        }
    }
}
