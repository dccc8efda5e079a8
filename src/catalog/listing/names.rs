//! [`DirNames`]: the names of a server's `wals/` directories, packed.

use std::cmp::Ordering;
use std::ops::Range;

/// Orders directory names as a listing returns them: by their prefixes
/// `name/` in bytewise order. That is plain string order for WAL directory
/// names (hex), not for every name: `a-b/` sorts before `a/` (`-` is below
/// `/`), though `a` is below `a-b`.
pub fn dir_cmp(a: &str, b: &str) -> Ordering {
    let slashed = |s: &str| s.bytes().chain(std::iter::once(b'/')).collect::<Vec<u8>>();
    if a.len() == b.len() || (!a.starts_with(b) && !b.starts_with(a)) {
        // They differ before either ends: the slash does not matter.
        return a.cmp(b);
    }
    slashed(a).cmp(&slashed(b))
}

/// Names of `wals/` directories (without slashes) in listing order
/// ([`dir_cmp`]: S3's, Azure's and GCS's listings sort keys by their UTF-8
/// bytes), packed into one buffer: about 20 bytes a name of 16
/// characters and no allocation per name, where a `String` costs 56. A
/// server of 10,000,000 segments has 39,063 directories; the walk holds
/// their names once or twice, and the plan, the range listings and the
/// cache refer to them by index.
///
/// Built with [`DirNames::push`] in listing order; [`DirNames::sorted`]
/// restores that order (and drops repeats) should a store not keep it, so
/// the binary searches of [`DirNames::position`] stay exact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirNames {
    bytes: String,
    /// End offset of each name in `bytes`.
    ends: Vec<u32>,
}

impl DirNames {
    /// Appends `name`.
    ///
    /// # Panics
    /// Never in practice: names total under 4 GiB (a listing page is 1,000
    /// keys of at most 1,024 bytes, and the walk keeps a server's names).
    pub fn push(&mut self, name: &str) {
        self.bytes.push_str(name);
        self.ends
            .push(u32::try_from(self.bytes.len()).expect("directory names total under 4 GiB"));
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The name at `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// The names, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The names of `range`, in order.
    pub fn slice(&self, range: Range<usize>) -> impl Iterator<Item = &str> + '_ {
        range.map(|i| self.get(i))
    }

    /// The first index whose name is not below `name` (names sorted by
    /// [`dir_cmp`]).
    pub fn partition_point(&self, name: &str) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if dir_cmp(self.get(mid), name) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The index of `name` (names sorted).
    pub fn position(&self, name: &str) -> Option<usize> {
        let i = self.partition_point(name);
        (i < self.len() && self.get(i) == name).then_some(i)
    }

    /// Whether `name` is one of them (names sorted).
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Whether the names are in listing order ([`dir_cmp`]), without repeats.
    pub fn is_sorted(&self) -> bool {
        self.iter()
            .zip(self.iter().skip(1))
            .all(|(a, b)| dir_cmp(a, b) == Ordering::Less)
    }

    /// The names in listing order ([`dir_cmp`]) without repeats: as they
    /// are when they already are (a listing's order), else rebuilt.
    pub fn sorted(self) -> Self {
        if self.is_sorted() {
            return self;
        }
        let mut names: Vec<&str> = self.iter().collect();
        names.sort_unstable_by(|a, b| dir_cmp(a, b));
        names.dedup();
        names.into_iter().collect()
    }

    /// The first `n` names, then every name of `more`, allocated once (the
    /// names of a tail walk: the remembered ones before the tail, then the
    /// listed ones).
    ///
    /// # Panics
    /// If `n > len()`.
    pub fn first_then(&self, n: usize, more: &DirNames) -> DirNames {
        let head = if n == 0 { 0 } else { self.ends[n - 1] as usize };
        let mut out = DirNames {
            bytes: String::with_capacity(head + more.bytes.len()),
            ends: Vec::with_capacity(n + more.len()),
        };
        out.bytes.push_str(&self.bytes[..head]);
        out.ends.extend_from_slice(&self.ends[..n]);
        for name in more.iter() {
            out.push(name);
        }
        out
    }

    /// Releases spare capacity (for names kept between walks).
    pub fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

impl<'a> FromIterator<&'a str> for DirNames {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut out = Self::default();
        for n in iter {
            out.push(n);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_names_are_found_by_binary_search() {
        let names: DirNames = ["0000000100000000", "0000000100000001", "0000000200000001", "junk"]
            .into_iter()
            .collect();
        assert_eq!(names.len(), 4);
        assert_eq!(names.get(2), "0000000200000001");
        assert_eq!(names.position("junk"), Some(3));
        assert_eq!(names.position("0000000100000002"), None);
        assert_eq!(names.partition_point("0000000100000002"), 2);
        assert_eq!(names.partition_point("zzz"), 4);
        assert!(names.contains("0000000100000000") && !names.contains(""));
        assert_eq!(
            names.slice(1..3).collect::<Vec<_>>(),
            ["0000000100000001", "0000000200000001"]
        );
        assert_eq!(names.clone().sorted(), names);
        let more: DirNames = ["x", "yy"].into_iter().collect();
        assert_eq!(
            names.first_then(2, &more).iter().collect::<Vec<_>>(),
            ["0000000100000000", "0000000100000001", "x", "yy"]
        );
        assert_eq!(names.first_then(0, &more), more);
    }

    #[test]
    fn names_sort_as_their_prefixes_list() {
        // Listing order of `a-b/`, `a/`, `a0/`, `b/`.
        let listed: DirNames = ["a-b", "a", "a0", "b"].into_iter().collect();
        assert!(listed.is_sorted());
        assert_eq!(listed.position("a"), Some(1));
        assert_eq!(listed.position("a-b"), Some(0));
        assert_eq!(listed.clone().sorted(), listed);
        let shuffled: DirNames = ["b", "a", "a0", "a-b"].into_iter().collect();
        assert_eq!(shuffled.sorted(), listed);
        // The order of the keys' prefixes, for any pair.
        let names = ["", "a", "a-b", "a0", "a/", "ab", "a.", "b", "a b", "0000000100000000"];
        for x in names {
            for y in names {
                assert_eq!(dir_cmp(x, y), format!("{x}/").cmp(&format!("{y}/")), "{x:?} {y:?}");
            }
        }
    }

    #[test]
    fn out_of_order_names_are_sorted_once() {
        let names: DirNames = ["b", "a", "c", "a", ""].into_iter().collect();
        let sorted = names.sorted();
        assert_eq!(sorted.iter().collect::<Vec<_>>(), ["", "a", "b", "c"]);
        assert_eq!(sorted.position("c"), Some(3));
    }
}
