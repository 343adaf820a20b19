//! Hash maps and sets written in order (serde `serialize_with`): a hash
//! map iterates in an order that depends on its history, not only on its
//! content, so the validator's compiled form (`crate::compiled`) writes
//! them sorted and the same validator always writes the same bytes.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use serde::{Serialize, Serializer};

/// Writes a map in key order.
pub(crate) fn sorted_map<K, V, H, S>(
    map: &HashMap<K, V, H>,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    K: Ord + Serialize,
    V: Serialize,
    H: BuildHasher,
    S: Serializer,
{
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    serializer.collect_map(entries)
}

/// Writes a set in order.
pub(crate) fn sorted_set<K, H, S>(set: &HashSet<K, H>, serializer: S) -> Result<S::Ok, S::Error>
where
    K: Ord + Serialize,
    H: BuildHasher,
    S: Serializer,
{
    let mut items: Vec<&K> = set.iter().collect();
    items.sort_unstable();
    serializer.collect_seq(items)
}
