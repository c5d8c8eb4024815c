//! A map and a set for the few entries an account holds (its positions,
//! its collateral, its authorized venues): vectors kept sorted by key.
//!
//! An account holds a handful of positions and one or two collateral
//! assets; a `BTreeMap` allocates a whole eleven-slot node for each, well
//! over a kilobyte per account at a million accounts. This map allocates what it holds, iterates in key order like a
//! `BTreeMap` (the committed state depends on that order), and at these
//! sizes finds a key by binary search as fast.

use std::borrow::Borrow;

/// A map kept as a vector sorted by key, for a few entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.entries
            .binary_search_by(|(held, _)| held.borrow().cmp(key))
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value under `key`.
    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|index| &self.entries[index].1)
    }

    /// The value under `key`, to change.
    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|index| &mut self.entries[index].1)
    }

    /// Whether `key` is held.
    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(index) => Some(std::mem::replace(&mut self.entries[index].1, value)),
            Err(index) => {
                self.entries.insert(index, (key, value));
                None
            }
        }
    }

    /// The value under `key`, a default one inserted first if it has none
    /// (`BTreeMap`'s `entry(key).or_default()`).
    pub fn get_or_insert_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let index = match self.find(&key) {
            Ok(index) => index,
            Err(index) => {
                self.entries.insert(index, (key, V::default()));
                index
            }
        };
        &mut self.entries[index].1
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key)
            .ok()
            .map(|index| self.entries.remove(index).1)
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator + '_ {
        self.entries.iter().map(|(key, value)| (key, value))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator + '_ {
        self.entries.iter().map(|(key, _)| key)
    }

    /// The values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + '_ {
        self.entries.iter().map(|(_, value)| value)
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(key, value)| (key, value))
    }
}

impl<K: Ord, V> Extend<(K, V)> for SmallMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
        for (key, value) in entries {
            self.insert(key, value);
        }
    }
}

/// As `BTreeMap`'s: entries in any order, the last of equal keys wins.
impl<K: Ord, V> FromIterator<(K, V)> for SmallMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = Self::new();
        map.extend(entries);
        map
    }
}

impl<K: Ord, V, const N: usize> From<[(K, V); N]> for SmallMap<K, V> {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

/// A set kept as a sorted vector, for a few members (an account's
/// authorized venues).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallSet<K> {
    members: SmallMap<K, ()>,
}

impl<K> Default for SmallSet<K> {
    fn default() -> Self {
        Self {
            members: SmallMap::default(),
        }
    }
}

impl<K: Ord> SmallSet<K> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Members held.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether `member` is held.
    pub fn contains<Q: Ord + ?Sized>(&self, member: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.members.contains_key(member)
    }

    /// Adds `member`; false if it was held already.
    pub fn insert(&mut self, member: K) -> bool {
        self.members.insert(member, ()).is_none()
    }

    /// Removes `member`; false if it was not held.
    pub fn remove<Q: Ord + ?Sized>(&mut self, member: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.members.remove(member).is_some()
    }

    /// The members in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator + '_ {
        self.members.keys()
    }
}

impl<K: Ord> FromIterator<K> for SmallSet<K> {
    fn from_iter<I: IntoIterator<Item = K>>(members: I) -> Self {
        Self {
            members: members.into_iter().map(|member| (member, ())).collect(),
        }
    }
}

impl<K: Ord, const N: usize> From<[K; N]> for SmallSet<K> {
    fn from(members: [K; N]) -> Self {
        members.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        Remove(u8),
        Add(u8, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..24u8, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0..24u8).prop_map(Op::Remove),
            (0..24u8, any::<u32>()).prop_map(|(k, v)| Op::Add(k, v)),
        ]
    }

    proptest! {
        /// Every operation answers as a `BTreeMap`'s does, and iteration
        /// follows the same order.
        #[test]
        fn it_behaves_as_a_btree_map(ops in prop::collection::vec(op(), 0..64)) {
            let (mut small, mut btree) = (SmallMap::new(), BTreeMap::new());
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(small.insert(k, v), btree.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(small.remove(&k), btree.remove(&k)),
                    Op::Add(k, v) => {
                        let (a, b) = (small.get_or_insert_default(k), btree.entry(k).or_default());
                        *a = a.wrapping_add(v);
                        *b = b.wrapping_add(v);
                        prop_assert_eq!(*a, *b);
                    }
                }
                prop_assert_eq!(small.len(), btree.len());
                for k in 0..24u8 {
                    prop_assert_eq!(small.get(&k), btree.get(&k));
                    prop_assert_eq!(small.contains_key(&k), btree.contains_key(&k));
                }
                let listed: Vec<(u8, u32)> = small.iter().map(|(k, v)| (*k, *v)).collect();
                let expected: Vec<(u8, u32)> = btree.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(listed, expected);
            }
        }

        #[test]
        fn collecting_keeps_the_last_of_equal_keys(entries in prop::collection::vec((0..8u8, any::<u32>()), 0..20)) {
            let small: SmallMap<u8, u32> = entries.iter().copied().collect();
            let btree: BTreeMap<u8, u32> = entries.iter().copied().collect();
            let listed: Vec<(u8, u32)> = (&small).into_iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(listed, btree.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn the_set_behaves_as_a_btree_set(ops in prop::collection::vec(op(), 0..64)) {
            let (mut small, mut btree) = (SmallSet::new(), std::collections::BTreeSet::new());
            for op in ops {
                match op {
                    Op::Insert(k, _) | Op::Add(k, _) => prop_assert_eq!(small.insert(k), btree.insert(k)),
                    Op::Remove(k) => prop_assert_eq!(small.remove(&k), btree.remove(&k)),
                }
                prop_assert_eq!(small.len(), btree.len());
                for k in 0..24u8 {
                    prop_assert_eq!(small.contains(&k), btree.contains(&k));
                }
                prop_assert!(small.iter().eq(btree.iter()));
            }
        }
    }
}
