//! The routes of the other nodes, as this node holds them (see ALGORITHM.md,
//! "Routes"): per origin, the filters it has local subscribers for, replaced
//! by each snapshot and changed by the deltas that follow it; and one index
//! over all origins to find which nodes a topic reaches.
//!
//! Sans-IO and deterministic: nothing here knows links or time beyond the
//! numbers it is given.

use crate::hash::{AHashMap, AHashSet};
use bytestring::ByteString;
use mqtt_codec::topic::{has_wildcard, parse_shared};

use crate::core::trie::FilterTrie;

/// A node's name (`[node] name`), unique in its cluster.
pub type NodeName = ByteString;

/// Which version of an origin's route set a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch {
    /// The origin's incarnation (a restart is a new one).
    pub incarnation: u64,
    /// Its link generation within the incarnation: one more per (re)connect.
    pub generation: u64,
}

#[derive(Debug, Default)]
struct Origin {
    epoch: Option<Epoch>,
    filters: AHashSet<ByteString>,
}

/// Who holds a real (non-`$share`) filter: origins with a direct route, and
/// per `$share` group the origins with members.
#[derive(Debug, Default)]
struct Holders {
    direct: Vec<NodeName>,
    groups: Vec<(ByteString, Vec<NodeName>)>,
}

impl Holders {
    fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.groups.is_empty()
    }
}

/// What a topic reaches on other nodes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RemoteMatch {
    /// Nodes with a direct (non-shared) matching route, each once, sorted.
    pub nodes: Vec<NodeName>,
    /// Matching shared groups as (group, real filter), with the nodes holding members.
    pub groups: Vec<(ByteString, ByteString, Vec<NodeName>)>,
}

#[derive(Debug, Default)]
pub struct RemoteRoutes {
    origins: AHashMap<NodeName, Origin>,
    index: AHashMap<ByteString, Holders>,
    wildcards: FilterTrie,
}

/// Whether an update was applied or ignored as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Yes,
    /// From an older epoch than the one held: a late message of a link that was replaced.
    Stale,
}

impl RemoteRoutes {
    /// Replaces everything `origin` had with `filters`, unless `epoch` is older than what is held.
    pub fn apply_snapshot(&mut self, origin: &NodeName, epoch: Epoch, filters: Vec<ByteString>) -> Applied {
        if self.origins.get(origin).and_then(|o| o.epoch).is_some_and(|held| held > epoch) {
            return Applied::Stale;
        }
        // sim-bugs: the snapshot of a reconnect is forgotten.
        let forget =
            self.origins.contains_key(origin) && crate::buggify::fires(crate::buggify::Bug::ForgetRoutesOnReconnect);
        let filters = if forget { Vec::new() } else { filters };
        self.remove_origin(origin);
        let mut held = Origin { epoch: Some(epoch), filters: AHashSet::with_capacity(filters.len()) };
        for filter in filters {
            if held.filters.insert(filter.clone()) {
                self.index_add(origin, &filter);
            }
        }
        self.origins.insert(origin.clone(), held);
        Applied::Yes
    }

    /// Adds one route of `origin` within `epoch`.
    pub fn apply_add(&mut self, origin: &NodeName, epoch: Epoch, filter: ByteString) -> Applied {
        let Some(held) = self.origins.get_mut(origin).filter(|o| o.epoch == Some(epoch)) else {
            return Applied::Stale;
        };
        if held.filters.insert(filter.clone()) {
            self.index_add(origin, &filter);
        }
        Applied::Yes
    }

    /// Removes one route of `origin` within `epoch`.
    pub fn apply_remove(&mut self, origin: &NodeName, epoch: Epoch, filter: &str) -> Applied {
        let Some(held) = self.origins.get_mut(origin).filter(|o| o.epoch == Some(epoch)) else {
            return Applied::Stale;
        };
        if held.filters.remove(filter) {
            self.index_remove(origin, filter);
        }
        Applied::Yes
    }

    /// Forgets every route of `origin` (it left, or its grace period after going down ran out).
    pub fn remove_origin(&mut self, origin: &NodeName) {
        let Some(held) = self.origins.remove(origin) else { return };
        for filter in &held.filters {
            self.index_remove(origin, filter);
        }
    }

    /// The epoch held for `origin`.
    pub fn epoch(&self, origin: &str) -> Option<Epoch> {
        self.origins.get(origin).and_then(|o| o.epoch)
    }

    /// The routes held for `origin`, sorted (for status output and convergence checks).
    pub fn filters_of(&self, origin: &str) -> Vec<ByteString> {
        let mut filters: Vec<ByteString> =
            self.origins.get(origin).map(|o| o.filters.iter().cloned().collect()).unwrap_or_default();
        filters.sort();
        filters
    }

    pub fn origins(&self) -> impl Iterator<Item = &NodeName> {
        self.origins.keys()
    }

    /// Routes held in all, over every origin.
    pub fn route_count(&self) -> usize {
        self.origins.values().map(|o| o.filters.len()).sum()
    }

    /// What `topic` reaches on other nodes.
    pub fn matches(&self, topic: &str) -> RemoteMatch {
        let mut found = RemoteMatch::default();
        let mut visit = |holders: &Holders, filter: &ByteString| {
            found.nodes.extend(holders.direct.iter().cloned());
            for (group, nodes) in &holders.groups {
                found.groups.push((group.clone(), filter.clone(), nodes.clone()));
            }
        };
        if let Some((filter, holders)) = self.index.get_key_value(topic) {
            visit(holders, filter);
        }
        self.wildcards.matches(topic, &mut |filter| {
            if let Some(holders) = self.index.get(filter) {
                visit(holders, filter);
            }
        });
        found.nodes.sort();
        found.nodes.dedup();
        found
    }

    /// The nodes with members of `$share/group/filter` (filter without the prefix).
    pub fn group_holders(&self, group: &str, filter: &str) -> Vec<NodeName> {
        self.index
            .get(filter)
            .and_then(|h| h.groups.iter().find(|(g, _)| g == group))
            .map(|(_, nodes)| nodes.clone())
            .unwrap_or_default()
    }

    fn index_add(&mut self, origin: &NodeName, route: &ByteString) {
        let (group, real) = split(route);
        let real = ByteString::from(real);
        let holders = self.index.entry(real.clone()).or_insert_with(|| {
            if has_wildcard(&real) {
                self.wildcards.insert(&real);
            }
            Holders::default()
        });
        let nodes = match group {
            None => &mut holders.direct,
            Some(group) => match holders.groups.iter().position(|(g, _)| g == group) {
                Some(i) => &mut holders.groups[i].1,
                None => {
                    holders.groups.push((group.into(), Vec::new()));
                    let last = holders.groups.len() - 1;
                    &mut holders.groups[last].1
                }
            },
        };
        if let Err(at) = nodes.binary_search(origin) {
            nodes.insert(at, origin.clone());
        }
    }

    fn index_remove(&mut self, origin: &NodeName, route: &str) {
        let (group, real) = split(route);
        let Some(holders) = self.index.get_mut(real) else { return };
        match group {
            None => holders.direct.retain(|n| n != origin),
            Some(group) => {
                for (g, nodes) in &mut holders.groups {
                    if g == group {
                        nodes.retain(|n| n != origin);
                    }
                }
                holders.groups.retain(|(_, nodes)| !nodes.is_empty());
            }
        }
        if holders.is_empty() {
            self.index.remove(real);
            if has_wildcard(real) {
                self.wildcards.remove(real);
            }
        }
    }
}

fn split(route: &str) -> (Option<&str>, &str) {
    match parse_shared(route) {
        Some((group, real)) => (Some(group), real),
        None => (None, route),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn name(s: &str) -> NodeName {
        ByteString::from(s.to_string())
    }

    fn epoch(incarnation: u64, generation: u64) -> Epoch {
        Epoch { incarnation, generation }
    }

    fn filters(list: &[&str]) -> Vec<ByteString> {
        list.iter().map(|f| ByteString::from(f.to_string())).collect()
    }

    #[test]
    fn a_topic_reaches_each_origin_with_a_matching_route_once() {
        let mut r = RemoteRoutes::default();
        r.apply_snapshot(&name("b"), epoch(1, 1), filters(&["t/#", "t/a"]));
        r.apply_snapshot(&name("c"), epoch(1, 1), filters(&["t/a"]));
        r.apply_snapshot(&name("d"), epoch(1, 1), filters(&["x/+"]));
        assert_eq!(r.matches("t/a").nodes, vec![name("b"), name("c")]);
        assert_eq!(r.matches("t/b").nodes, vec![name("b")]);
        assert!(r.matches("y").nodes.is_empty());
        assert_eq!(r.route_count(), 4);
    }

    #[test]
    fn shared_routes_name_their_group_and_holders() {
        let mut r = RemoteRoutes::default();
        r.apply_snapshot(&name("b"), epoch(1, 1), filters(&["$share/g/t/+"]));
        r.apply_snapshot(&name("c"), epoch(1, 1), filters(&["$share/g/t/+", "$share/h/t/a"]));
        let m = r.matches("t/a");
        assert!(m.nodes.is_empty());
        let mut groups = m.groups;
        groups.sort();
        assert_eq!(
            groups,
            vec![(name("g"), name("t/+"), vec![name("b"), name("c")]), (name("h"), name("t/a"), vec![name("c")]),]
        );
    }

    #[test]
    fn a_snapshot_replaces_and_older_epochs_are_ignored() {
        let mut r = RemoteRoutes::default();
        r.apply_snapshot(&name("b"), epoch(1, 2), filters(&["a", "b"]));
        assert_eq!(r.apply_snapshot(&name("b"), epoch(1, 1), filters(&["old"])), Applied::Stale);
        assert_eq!(r.apply_add(&name("b"), epoch(1, 1), name("late")), Applied::Stale);
        assert_eq!(r.apply_add(&name("b"), epoch(1, 2), name("c")), Applied::Yes);
        assert_eq!(r.apply_remove(&name("b"), epoch(1, 2), "a"), Applied::Yes);
        assert_eq!(r.filters_of("b"), filters(&["b", "c"]));
        // A restart (new incarnation) replaces everything, even with a lower generation.
        r.apply_snapshot(&name("b"), epoch(2, 1), filters(&["new"]));
        assert_eq!(r.filters_of("b"), filters(&["new"]));
        assert!(r.matches("b").nodes.is_empty());
        r.remove_origin(&name("b"));
        assert_eq!(r.route_count(), 0);
        assert!(r.matches("new").nodes.is_empty());
    }

    /// One origin's changes, as its router makes them.
    #[derive(Debug, Clone)]
    enum Change {
        Add(u8),
        Remove(u8),
        Reconnect,
    }

    fn filter_of(i: u8) -> ByteString {
        const SHAPES: [&str; 6] = ["t/{}", "t/+/{}", "{}/#", "$share/g/t/{}", "t/{}/x", "+/{}"];
        ByteString::from(SHAPES[usize::from(i) % SHAPES.len()].replace("{}", &(i / 6).to_string()))
    }

    proptest! {
        /// ALGORITHM.md's convergence invariant: after any sequence of local
        /// changes, sent as a snapshot per (re)connect plus ordered deltas, the
        /// receiver holds exactly the origin's set, and its index answers like
        /// a brute-force match over that set.
        #[test]
        fn the_receiver_converges_to_the_origins_route_set(changes in proptest::collection::vec(
            prop_oneof![
                (0u8..36).prop_map(Change::Add),
                (0u8..36).prop_map(Change::Remove),
                Just(Change::Reconnect),
            ], 0..80))
        {
            let origin = name("a");
            let mut local: std::collections::BTreeSet<ByteString> = Default::default();
            let mut remote = RemoteRoutes::default();
            let mut generation = 1;
            remote.apply_snapshot(&origin, epoch(7, generation), Vec::new());
            for change in changes {
                let e = epoch(7, generation);
                match change {
                    Change::Add(i) => {
                        if local.insert(filter_of(i)) {
                            prop_assert_eq!(remote.apply_add(&origin, e, filter_of(i)), Applied::Yes);
                        }
                    }
                    Change::Remove(i) => {
                        if local.remove(&filter_of(i)) {
                            prop_assert_eq!(remote.apply_remove(&origin, e, &filter_of(i)), Applied::Yes);
                        }
                    }
                    Change::Reconnect => {
                        generation += 1;
                        remote.apply_snapshot(&origin, epoch(7, generation), local.iter().cloned().collect());
                    }
                }
            }
            prop_assert_eq!(remote.filters_of("a"), local.iter().cloned().collect::<Vec<_>>());
            for topic in ["t/0", "t/1/x", "t/0/0", "0/q/r", "x/0", "t/3", "$sys/0"] {
                let expected_direct = local.iter().any(|f| parse_shared(f).is_none() && mqtt_codec::topic::matches(f, topic));
                prop_assert_eq!(!remote.matches(topic).nodes.is_empty(), expected_direct, "topic {}", topic);
                let expected_shared = local.iter().any(|f| parse_shared(f).is_some_and(|(_, real)| mqtt_codec::topic::matches(real, topic)));
                prop_assert_eq!(!remote.matches(topic).groups.is_empty(), expected_shared, "topic {}", topic);
            }
        }
    }
}
