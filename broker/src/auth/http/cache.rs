//! Answers of the HTTP service, reused for a while: bounded in time (TTL) and
//! in size (the oldest answer goes first). Keys are keyed hashes of the
//! request, so the cache holds no password.

use std::collections::VecDeque;

use crate::auth::Decision;
use crate::hash::AHashMap;
use crate::seam::Millis;

/// A keyed SHA-256 of one request body.
pub type Key = [u8; 32];

#[derive(Debug)]
pub struct Cache {
    ttl_ms: Millis,
    capacity: usize,
    entries: AHashMap<Key, (Decision, Millis)>,
    /// Insertion order with each insertion's expiry; a record whose expiry no
    /// longer matches its entry is stale and skipped. At most `capacity` long.
    order: VecDeque<(Key, Millis)>,
}

impl Cache {
    pub fn new(ttl_ms: Millis, capacity: usize) -> Self {
        Self { ttl_ms, capacity: capacity.max(1), entries: AHashMap::new(), order: VecDeque::new() }
    }

    /// The answer cached for `key`, if it has not expired at `now`.
    pub fn get(&mut self, key: &Key, now: Millis) -> Option<Decision> {
        match self.entries.get(key) {
            Some((decision, expires)) if *expires > now => Some(*decision),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&mut self, key: Key, decision: Decision, now: Millis) {
        if self.ttl_ms == 0 {
            return;
        }
        while self.order.len() >= self.capacity {
            let Some((old, expires)) = self.order.pop_front() else { break };
            if self.entries.get(&old).is_some_and(|(_, e)| *e == expires) {
                self.entries.remove(&old);
            }
        }
        let expires = now.saturating_add(self.ttl_ms);
        self.entries.insert(key, (decision, expires));
        self.order.push_back((key, expires));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_codec::ReasonCode;

    fn key(n: u8) -> Key {
        [n; 32]
    }

    #[test]
    fn an_answer_lives_for_the_ttl() {
        let mut cache = Cache::new(1_000, 10);
        cache.insert(key(1), Decision::Allow, 0);
        assert_eq!(cache.get(&key(1), 999), Some(Decision::Allow));
        assert_eq!(cache.get(&key(1), 1_000), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_oldest_answer_goes_when_full() {
        let mut cache = Cache::new(1_000, 2);
        cache.insert(key(1), Decision::Allow, 0);
        cache.insert(key(2), Decision::Deny(ReasonCode::NOT_AUTHORIZED), 1);
        cache.insert(key(3), Decision::Ignore, 2);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&key(1), 3), None);
        assert_eq!(cache.get(&key(2), 3), Some(Decision::Deny(ReasonCode::NOT_AUTHORIZED)));
        assert_eq!(cache.get(&key(3), 3), Some(Decision::Ignore));
    }

    #[test]
    fn reinserting_expired_keys_keeps_the_bound() {
        let mut cache = Cache::new(10, 3);
        for round in 0..100u64 {
            cache.insert(key(1), Decision::Allow, round * 20);
            assert!(cache.order.len() <= 3 && cache.len() <= 3);
            assert_eq!(cache.get(&key(1), round * 20 + 5), Some(Decision::Allow));
        }
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let mut cache = Cache::new(0, 3);
        cache.insert(key(1), Decision::Allow, 0);
        assert_eq!(cache.get(&key(1), 0), None);
    }
}
