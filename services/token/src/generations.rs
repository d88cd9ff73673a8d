//! [`TwoGenerations`]: a map bounded without a clock or a linked list, for caches whose entries
//! stay valid for good (or are checked on every use) and only need to age out when unused.
//!
//! Two generations of at most `per_generation` entries each. New entries go into the current
//! one; when it is full it becomes the previous one and the older one is dropped. An entry found
//! in the previous generation moves back to the current one, so entries in use stay while
//! entries no longer asked for age out. One lock per map: each operation is a hash lookup or
//! two.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

struct Maps<K, V> {
    current: HashMap<K, V>,
    previous: HashMap<K, V>,
}

/// A map holding at most `2 * per_generation` entries. See the module documentation.
pub struct TwoGenerations<K, V> {
    maps: Mutex<Maps<K, V>>,
    per_generation: usize,
}

impl<K: Eq + Hash, V: Clone> TwoGenerations<K, V> {
    /// An empty map holding at most `2 * per_generation` entries (at least 2).
    pub fn new(per_generation: usize) -> Self {
        Self {
            maps: Mutex::new(Maps {
                current: HashMap::new(),
                previous: HashMap::new(),
            }),
            per_generation: per_generation.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Maps<K, V>> {
        // Each operation leaves both maps whole: a poisoned lock still holds a usable map.
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key`, if held (moved to the current generation).
    pub fn get(&self, key: K) -> Option<V> {
        let mut maps = self.lock();
        if let Some(value) = maps.current.get(&key) {
            return Some(value.clone());
        }
        let value = maps.previous.remove(&key)?;
        self.put(&mut maps, key, value.clone());
        Some(value)
    }

    /// Holds `value` for `key`.
    pub fn insert(&self, key: K, value: V) {
        let mut maps = self.lock();
        self.put(&mut maps, key, value);
    }

    fn put(&self, maps: &mut Maps<K, V>, key: K, value: V) {
        if maps.current.len() >= self.per_generation {
            maps.previous = std::mem::take(&mut maps.current);
        }
        maps.current.insert(key, value);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        let maps = self.lock();
        maps.current.len() + maps.previous.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_holds_two_generations_at_most_and_keeps_what_is_used() {
        let map = TwoGenerations::new(2);
        for n in 0..10_u32 {
            map.insert(n, n * 10);
            // Entry 0 is asked for all along: it survives every turn of the generations.
            assert_eq!(map.get(0), Some(0), "after {n}");
            assert!(map.len() <= 4);
        }
        assert_eq!(map.get(1), None, "unused, aged out");
        assert_eq!(map.get(9), Some(90));
    }
}
