//! A map keyed by text whose keys are hashed once: each key keeps its hash (keyed SipHash with a
//! random key per map, as `std::collections::HashMap`: a flood of chosen keys cannot be made to
//! collide), so a map that grows moves its entries by their stored hashes instead of reading
//! and hashing every key again. Growing the window map of ~60k keys that way, four partitions
//! at once, held the correlation stage 60-170 ms at 5,000 events/s.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use hashbrown::{Equivalent, HashMap};

struct Key {
    hash: u64,
    text: Box<str>,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Key {}

/// A key looked up: its text and the hash the map's hasher gives it.
struct Probe<'a> {
    hash: u64,
    text: &'a str,
}

impl Hash for Probe<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Equivalent<Key> for Probe<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self.text == *key.text
    }
}

/// Hands the table the hash a key or probe carries.
#[derive(Default)]
struct Carried(u64);

impl Hasher for Carried {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // only `write_u64` is called (Key, Probe); anything else still hashes consistently
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub struct KeyedMap<V> {
    map: HashMap<Key, V, BuildHasherDefault<Carried>>,
    hasher: RandomState,
}

impl<V> Default for KeyedMap<V> {
    fn default() -> Self {
        KeyedMap {
            map: HashMap::default(),
            hasher: RandomState::new(),
        }
    }
}

impl<V> KeyedMap<V> {
    /// The hash of `text` in this map: hashed once for a lookup and then an insert
    /// (`get_hashed`, `insert_hashed`).
    pub fn hash(&self, text: &str) -> u64 {
        self.hasher.hash_one(text)
    }

    fn probe<'a>(&self, text: &'a str) -> Probe<'a> {
        Probe {
            hash: self.hash(text),
            text,
        }
    }

    pub fn get_hashed(&self, hash: u64, text: &str) -> Option<&V> {
        self.map.get(&Probe { hash, text })
    }

    /// As `insert`, with the key's `hash` in this map.
    pub fn insert_hashed(&mut self, hash: u64, text: &str, value: V) -> Option<V> {
        debug_assert_eq!(hash, self.hash(text));
        self.map.insert(
            Key {
                hash,
                text: text.into(),
            },
            value,
        )
    }

    pub fn get(&self, text: &str) -> Option<&V> {
        self.map.get(&self.probe(text))
    }

    pub fn get_mut(&mut self, text: &str) -> Option<&mut V> {
        let probe = self.probe(text);
        self.map.get_mut(&probe)
    }

    pub fn contains_key(&self, text: &str) -> bool {
        self.map.contains_key(&self.probe(text))
    }

    /// The value before, if the key had one.
    pub fn insert(&mut self, text: &str, value: V) -> Option<V> {
        self.insert_hashed(self.hash(text), text, value)
    }

    pub fn remove(&mut self, text: &str) -> Option<V> {
        let probe = self.probe(text);
        self.map.remove(&probe)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(|k| &*k.text)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.map.iter().map(|(k, v)| (&*k.text, v))
    }
}

#[cfg(test)]
mod tests {
    use super::KeyedMap;

    #[test]
    fn keys_are_found_replaced_and_removed_as_in_a_hash_map() {
        let mut map = KeyedMap::default();
        for n in 0..10_000 {
            assert_eq!(map.insert(&format!("rule|[\"{n}\"]"), n), None);
        }
        assert_eq!(map.len(), 10_000);
        assert_eq!(map.insert("rule|[\"7\"]", 70), Some(7));
        assert_eq!(map.get("rule|[\"7\"]"), Some(&70));
        assert!(map.contains_key("rule|[\"9999\"]") && !map.contains_key("rule|[\"10000\"]"));
        *map.get_mut("rule|[\"8\"]").unwrap() += 1;
        assert_eq!(map.get("rule|[\"8\"]"), Some(&9));
        assert_eq!(map.remove("rule|[\"8\"]"), Some(9));
        assert_eq!(map.remove("rule|[\"8\"]"), None);
        assert_eq!(map.keys().count(), 9_999);
        assert_eq!(
            map.iter().map(|(_, v)| v).sum::<i32>(),
            (0..10_000).sum::<i32>() - 8 + 63
        );
        let hash = map.hash("rule|[\"7\"]");
        assert_eq!(map.get_hashed(hash, "rule|[\"7\"]"), Some(&70));
        assert_eq!(map.insert_hashed(hash, "rule|[\"7\"]", 71), Some(70));
        map.clear();
        assert_eq!(map.len(), 0);
    }
}
