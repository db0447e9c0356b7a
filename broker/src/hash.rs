//! The broker's hash maps and sets: ahash, keyed by [`seam::hash_keys`].
//!
//! Iteration order of a hash map follows its keys. Several of the broker's
//! outputs follow iteration order (the order in which matching sessions get
//! a message and their connections are woken, the order of released
//! acknowledgements, of route deltas, of link notifications), so with keys
//! drawn per map from the process's entropy (what `ahash::AHashMap` does)
//! two runs of one simulation seed diverge. Here every map of the process
//! uses the process's one set of keys: random in production (HashDoS
//! resistance), fixed by the simulation before it starts a node.
//!
//! The types are newtypes over `std::collections::HashMap`/`HashSet` with
//! `Deref`, so code written for `ahash::AHashMap` (`new`, `with_capacity`,
//! `&map` iteration and every `HashMap` method) compiles unchanged.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::ops::{Deref, DerefMut};

use crate::seam;

/// The hasher builder: ahash with the process's keys. Zero-sized: the keys
/// are the process's, held once, so a map carries none of its own (a
/// session holds several maps, and a node a million sessions).
#[derive(Clone, Copy, Default)]
pub struct HashState;

impl HashState {
    pub fn new() -> Self {
        Self
    }
}

fn process_state() -> &'static ahash::RandomState {
    static STATE: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
    STATE.get_or_init(|| {
        let [a, b, c, d] = seam::hash_keys();
        ahash::RandomState::with_seeds(a, b, c, d)
    })
}

impl fmt::Debug for HashState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashState")
    }
}

impl BuildHasher for HashState {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        process_state().build_hasher()
    }
}

/// A hash map keyed by the process's hash keys.
pub struct AHashMap<K, V>(HashMap<K, V, HashState>);

impl<K, V> AHashMap<K, V> {
    pub fn new() -> Self {
        Self(HashMap::with_hasher(HashState::new()))
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self(HashMap::with_capacity_and_hasher(capacity, HashState::new()))
    }
}

impl<K, V> Default for AHashMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> Deref for AHashMap<K, V> {
    type Target = HashMap<K, V, HashState>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<K, V> DerefMut for AHashMap<K, V> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for AHashMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<K: Clone, V: Clone> Clone for AHashMap<K, V> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K: Eq + Hash, V: PartialEq> PartialEq for AHashMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K: Eq + Hash, V: Eq> Eq for AHashMap<K, V> {}

impl<'a, K, V> IntoIterator for &'a AHashMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::collections::hash_map::Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'a, K, V> IntoIterator for &'a mut AHashMap<K, V> {
    type Item = (&'a K, &'a mut V);
    type IntoIter = std::collections::hash_map::IterMut<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter_mut()
    }
}

impl<K, V> IntoIterator for AHashMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::collections::hash_map::IntoIter<K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<K: Eq + Hash, V> FromIterator<(K, V)> for AHashMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = Self::new();
        map.0.extend(iter);
        map
    }
}

impl<K: Eq + Hash, V> Extend<(K, V)> for AHashMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// A hash set keyed by the process's hash keys.
pub struct AHashSet<T>(HashSet<T, HashState>);

impl<T> AHashSet<T> {
    pub fn new() -> Self {
        Self(HashSet::with_hasher(HashState::new()))
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self(HashSet::with_capacity_and_hasher(capacity, HashState::new()))
    }
}

impl<T> Default for AHashSet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Deref for AHashSet<T> {
    type Target = HashSet<T, HashState>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> DerefMut for AHashSet<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for AHashSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Clone> Clone for AHashSet<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Eq + Hash> PartialEq for AHashSet<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T: Eq + Hash> Eq for AHashSet<T> {}

impl<'a, T> IntoIterator for &'a AHashSet<T> {
    type Item = &'a T;
    type IntoIter = std::collections::hash_set::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T> IntoIterator for AHashSet<T> {
    type Item = T;
    type IntoIter = std::collections::hash_set::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<T: Eq + Hash> FromIterator<T> for AHashSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut set = Self::new();
        set.0.extend(iter);
        set
    }
}

impl<T: Eq + Hash> Extend<T> for AHashSet<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// A map or set made at its first insert. Most connections and sessions
/// never use some of their collections (topic aliases, QoS 2 ids awaiting
/// PUBREL), and even an empty hash table costs its header in each of a
/// million of them; a `Lazy` costs one pointer until used.
#[derive(Debug)]
pub struct Lazy<C>(Option<Box<C>>);

impl<C> Default for Lazy<C> {
    fn default() -> Self {
        Self(None)
    }
}

impl<C: Default> Lazy<C> {
    /// The collection, if it was ever made.
    pub fn made(&self) -> Option<&C> {
        self.0.as_deref()
    }

    fn made_mut(&mut self) -> Option<&mut C> {
        self.0.as_deref_mut()
    }

    fn make(&mut self) -> &mut C {
        self.0.get_or_insert_with(Box::default)
    }
}

impl<K: Eq + Hash, V> Lazy<AHashMap<K, V>> {
    pub fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
    {
        self.made()?.get(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.make().insert(key, value)
    }

    pub fn remove<Q: Eq + Hash + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
    {
        self.made_mut()?.remove(key)
    }

    pub fn len(&self) -> usize {
        self.made().map_or(0, |map| map.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Eq + Hash> Lazy<AHashSet<T>> {
    pub fn contains(&self, value: &T) -> bool {
        self.made().is_some_and(|set| set.contains(value))
    }

    /// False if `value` was already there.
    pub fn insert(&mut self, value: T) -> bool {
        self.make().insert(value)
    }

    /// False if `value` was not there.
    pub fn remove(&mut self, value: &T) -> bool {
        self.made_mut().is_some_and(|set| set.remove(value))
    }

    pub fn len(&self) -> usize {
        self.made().map_or(0, |set| set.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> IntoIterator for Lazy<AHashSet<T>> {
    type Item = T;
    type IntoIter = std::iter::Flatten<std::option::IntoIter<AHashSet<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.map(|set| *set).into_iter().flatten()
    }
}

impl<T: Eq + Hash> Extend<T> for Lazy<AHashSet<T>> {
    /// Makes the set only if there is something to hold.
    fn extend<I: IntoIterator<Item = T>>(&mut self, values: I) {
        let mut values = values.into_iter().peekable();
        if values.peek().is_some() {
            self.make().extend(values);
        }
    }
}
