//! Sets of codes as value sets hold them (listed `concept`s, the codes of
//! an expansion by system): every code in one text buffer with the end
//! offsets beside it, sorted and without duplicates, so membership is a
//! binary search and reading the validator's compiled form makes two
//! allocations per set instead of one per code plus a hash-table slot.
//!
//! Written (serde) as the sorted sequence of its codes, the same bytes the
//! hash sets it replaces were written as (`crate::sorted::sorted_set`).

use std::cmp::Ordering;
use std::fmt;

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
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
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = low + (high - low) / 2;
            match self.get(middle).map(|c| c.cmp(code)) {
                Some(Ordering::Less) => low = middle + 1,
                Some(Ordering::Greater) => high = middle,
                Some(Ordering::Equal) => return true,
                None => return false,
            }
        }
        false
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
        if self.ordered {
            return CodeSet {
                text: self.text.into_boxed_str(),
                ends: self.ends.into_boxed_slice(),
            };
        }
        let unordered = CodeSet {
            text: self.text.into_boxed_str(),
            ends: self.ends.into_boxed_slice(),
        };
        let mut codes: Vec<&str> = unordered.iter().collect();
        codes.sort_unstable();
        codes.dedup();
        // The same codes, fewer or as many: their text fits as it did.
        let mut sorted = Builder {
            text: String::with_capacity(unordered.text.len()),
            ends: Vec::with_capacity(codes.len()),
            ordered: true,
        };
        for code in codes {
            sorted.text.push_str(code);
            sorted
                .ends
                .push(u32::try_from(sorted.text.len()).unwrap_or(u32::MAX));
        }
        CodeSet {
            text: sorted.text.into_boxed_str(),
            ends: sorted.ends.into_boxed_slice(),
        }
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
}
