//! Sets of codes as value sets hold them (listed `concept`s, the codes of
//! an expansion by system), and a CodeSystem's index from code to concept:
//! every code in one text buffer with the end offsets beside it, sorted and
//! without duplicates, so a look-up is a binary search and reading the
//! validator's compiled form makes a few allocations per set instead of one
//! per code plus a hash-table slot.
//!
//! Written (serde) as the sorted sequence of its codes (a set) or the map
//! from code to concept in code order (an index), the same bytes the hash
//! sets and maps they replace were written as (`crate::sorted`).

use std::cmp::Ordering;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A sorted set of codes (keys by their system's case rule).
#[derive(Clone, Default, PartialEq, Eq)]
pub(super) struct CodeSet {
    /// The codes one after another, in order.
    text: Box<str>,
    /// Where each code ends in `text` (the next starts there).
    ends: Box<[u32]>,
}

/// The offsets of a code set exceed `u32` (more than 4 GiB of codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooLarge;

impl CodeSet {
    /// The set of `codes` (in any order, duplicates allowed); `TooLarge`
    /// when their text exceeds 4 GiB.
    pub(super) fn from_codes<S: AsRef<str>>(
        codes: impl IntoIterator<Item = S>,
    ) -> Result<Self, TooLarge> {
        let mut builder = Builder::default();
        for code in codes {
            builder.push(code.as_ref())?;
        }
        Ok(builder.finish())
    }

    /// How many codes.
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The `index`th code in order.
    fn get(&self, index: usize) -> Option<&str> {
        let end = usize::try_from(*self.ends.get(index)?).ok()?;
        let start = match index.checked_sub(1) {
            Some(previous) => usize::try_from(*self.ends.get(previous)?).ok()?,
            None => 0,
        };
        self.text.get(start..end)
    }

    /// Whether `code` is in the set.
    pub(super) fn contains(&self, code: &str) -> bool {
        self.position(code).is_some()
    }

    /// Where `code` is in the order of the set.
    fn position(&self, code: &str) -> Option<usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = low + (high - low) / 2;
            match self.get(middle)?.cmp(code) {
                Ordering::Less => low = middle + 1,
                Ordering::Greater => high = middle,
                Ordering::Equal => return Some(middle),
            }
        }
        None
    }

    /// The codes in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl fmt::Debug for CodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Codes appended one at a time into one buffer; sorted once at the end
/// when they did not come in order.
#[derive(Default)]
struct Builder {
    text: String,
    ends: Vec<u32>,
    /// Every code so far came after the one before it.
    ordered: bool,
}

impl Builder {
    fn push(&mut self, code: &str) -> Result<(), TooLarge> {
        let start = self.text.len();
        self.text.push_str(code);
        self.close(start)
    }

    /// Records the code appended from `start` on.
    fn close(&mut self, start: usize) -> Result<(), TooLarge> {
        let end = u32::try_from(self.text.len()).map_err(|_| TooLarge)?;
        let previous_start = match self.ends.len().checked_sub(2) {
            Some(i) => self.ends.get(i).map_or(0, |&e| e as usize),
            None => 0,
        };
        self.ordered = match self.ends.last() {
            None => true,
            Some(_) => {
                self.ordered && self.text.get(previous_start..start) < self.text.get(start..)
            }
        };
        self.ends.push(end);
        Ok(())
    }

    fn finish(self) -> CodeSet {
        self.finish_with(Vec::new()).0
    }

    /// The set, and `ids` (one per code pushed, or none) in its order; of
    /// codes pushed more than once, the first one's id is kept.
    fn finish_with(self, ids: Vec<u32>) -> (CodeSet, Box<[u32]>) {
        let pushed = CodeSet {
            text: self.text.into_boxed_str(),
            ends: self.ends.into_boxed_slice(),
        };
        if self.ordered {
            return (pushed, ids.into_boxed_slice());
        }
        let mut order: Vec<usize> = (0..pushed.len()).collect();
        // Stable: of equal codes the first pushed stays first.
        order.sort_by(|&a, &b| pushed.get(a).cmp(&pushed.get(b)));
        order.dedup_by(|later, earlier| pushed.get(*later) == pushed.get(*earlier));
        // The same codes, fewer or as many: their text fits as it did.
        let mut text = String::with_capacity(pushed.text.len());
        let mut ends = Vec::with_capacity(order.len());
        let mut sorted_ids = Vec::with_capacity(ids.len().min(order.len()));
        for i in order {
            text.push_str(pushed.get(i).unwrap_or_default());
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
            if let Some(&id) = ids.get(i) {
                sorted_ids.push(id);
            }
        }
        let set = CodeSet {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        };
        (set, sorted_ids.into_boxed_slice())
    }
}

impl Serialize for CodeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for code in self.iter() {
            seq.serialize_element(code)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for CodeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(SetVisitor)
    }
}

struct SetVisitor;

impl<'de> Visitor<'de> for SetVisitor {
    type Value = CodeSet;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of codes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CodeSet, A::Error> {
        let mut builder = Builder::default();
        while seq.next_element_seed(Append(&mut builder))?.is_some() {}
        Ok(builder.finish())
    }
}

/// Reads one code straight into the builder's buffer.
struct Append<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for Append<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Append<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a code")
    }

    fn visit_str<E: serde::de::Error>(self, code: &str) -> Result<(), E> {
        self.0
            .push(code)
            .map_err(|TooLarge| E::custom("a code set of more than 4 GiB"))
    }
}

/// Codes mapped to concepts (a CodeSystem's code keys to concept
/// indexes): the codes as a [`CodeSet`], the concepts in the same order.
#[derive(Clone, Default, PartialEq, Eq)]
pub(super) struct CodeIndex {
    codes: CodeSet,
    concepts: Box<[u32]>,
}

impl CodeIndex {
    /// The index of `(code, concept)` pairs in any order; of a code given
    /// more than once the first concept is kept. `TooLarge` when the codes'
    /// text exceeds 4 GiB.
    pub(super) fn from_pairs<S: AsRef<str>>(
        pairs: impl IntoIterator<Item = (S, u32)>,
    ) -> Result<Self, TooLarge> {
        let mut builder = Builder::default();
        let mut concepts = Vec::new();
        for (code, concept) in pairs {
            builder.push(code.as_ref())?;
            concepts.push(concept);
        }
        let (codes, concepts) = builder.finish_with(concepts);
        Ok(Self { codes, concepts })
    }

    /// The concept of `code`.
    pub(super) fn get(&self, code: &str) -> Option<u32> {
        self.concepts.get(self.codes.position(code)?).copied()
    }

    /// The (code, concept) pairs in code order.
    fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.codes.iter().zip(self.concepts.iter().copied())
    }
}

impl fmt::Debug for CodeIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for CodeIndex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.concepts.len()))?;
        for (code, concept) in self.iter() {
            map.serialize_entry(code, &concept)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for CodeIndex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(IndexVisitor)
    }
}

struct IndexVisitor;

impl<'de> Visitor<'de> for IndexVisitor {
    type Value = CodeIndex;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map from code to concept")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CodeIndex, A::Error> {
        let mut builder = Builder::default();
        let mut concepts = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while map.next_key_seed(Append(&mut builder))?.is_some() {
            concepts.push(map.next_value::<u32>()?);
        }
        let (codes, concepts) = builder.finish_with(concepts);
        Ok(CodeIndex { codes, concepts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_deduplicates() {
        let set = CodeSet::from_codes(["b", "a", "c", "a", ""]).unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), ["", "a", "b", "c"]);
        assert_eq!(set.len(), 4);
        for code in ["", "a", "b", "c"] {
            assert!(set.contains(code), "{code}");
        }
        for code in ["aa", "d", "B", " "] {
            assert!(!set.contains(code), "{code}");
        }
    }

    #[test]
    fn empty_set_holds_nothing() {
        let set = CodeSet::from_codes(Vec::<&str>::new()).unwrap();
        assert_eq!(set.len(), 0);
        assert!(!set.contains(""));
        assert_eq!(set.iter().count(), 0);
    }

    #[test]
    fn codes_that_are_prefixes_of_each_other_stay_apart() {
        let set = CodeSet::from_codes(["ab", "a", "abc"]).unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), ["a", "ab", "abc"]);
        assert!(set.contains("ab"));
        assert!(!set.contains("abcd"));
    }

    #[test]
    fn written_as_the_sorted_hash_set_was() {
        let codes = ["zeta", "alpha", "Mu", "beta"];
        let set = CodeSet::from_codes(codes).unwrap();
        #[derive(serde::Serialize)]
        struct Hashed(
            #[serde(serialize_with = "crate::sorted::sorted_set")] rustc_hash::FxHashSet<Box<str>>,
        );
        let hashed = Hashed(codes.iter().map(|&c| c.into()).collect());
        let old = postcard::to_stdvec(&hashed).unwrap();
        assert_eq!(postcard::to_stdvec(&set).unwrap(), old);
    }

    #[test]
    fn read_back_in_order_or_not() {
        let set = CodeSet::from_codes(["b", "a", "c"]).unwrap();
        let bytes = postcard::to_stdvec(&set).unwrap();
        assert_eq!(postcard::from_bytes::<CodeSet>(&bytes).unwrap(), set);
        // Out of order and repeated (another writer): sorted once on reading.
        let bytes = postcard::to_stdvec(&["c", "a", "b", "a"][..]).unwrap();
        assert_eq!(postcard::from_bytes::<CodeSet>(&bytes).unwrap(), set);
        let json: CodeSet = serde_json::from_str(r#"["c","a\u0062","b"]"#).unwrap();
        assert_eq!(json.iter().collect::<Vec<_>>(), ["ab", "b", "c"]);
    }

    #[test]
    fn an_index_keeps_the_first_concept_of_a_code() {
        let index = CodeIndex::from_pairs([("b", 0), ("a", 1), ("b", 2), ("c", 3)]).unwrap();
        assert_eq!(index.get("a"), Some(1));
        assert_eq!(index.get("b"), Some(0));
        assert_eq!(index.get("c"), Some(3));
        assert_eq!(index.get("d"), None);
        let ordered = CodeIndex::from_pairs([("a", 1), ("b", 0)]).unwrap();
        assert_eq!(ordered.get("b"), Some(0));
    }

    #[test]
    fn an_index_is_written_as_the_sorted_hash_map_was_and_read_back() {
        let pairs = [("zeta", 4u32), ("alpha", 7), ("Mu", 0)];
        let index = CodeIndex::from_pairs(pairs).unwrap();
        #[derive(serde::Serialize)]
        struct Hashed(
            #[serde(serialize_with = "crate::sorted::sorted_map")]
            rustc_hash::FxHashMap<Box<str>, u32>,
        );
        let hashed = Hashed(pairs.iter().map(|&(c, i)| (c.into(), i)).collect());
        let bytes = postcard::to_stdvec(&index).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&hashed).unwrap());
        assert_eq!(postcard::from_bytes::<CodeIndex>(&bytes).unwrap(), index);
    }
}
