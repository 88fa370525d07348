//! Off-axis index merging and reindexing, with pandas' `Index.union/intersection` rules.

use std::collections::{HashMap, HashSet};

/// How the off-axis indexes of the inputs are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Join {
    /// Names present in every input, in the first input's order.
    #[default]
    Inner,
    /// Names present in any input (sorted, as pandas' union, unless all are equal).
    Outer,
}

fn unique(v: &[String]) -> Vec<String> {
    let mut seen = HashSet::with_capacity(v.len());
    v.iter().filter(|s| seen.insert(s.as_str())).cloned().collect()
}

/// `reduce(pd.Index.intersection)` / `reduce(pd.Index.union)` over the inputs' indexes.
pub fn merge_indices(idxs: &[&[String]], join: Join) -> Vec<String> {
    let Some(first) = idxs.first() else { return vec![] };
    let mut acc = first.to_vec();
    for next in &idxs[1..] {
        acc = match join {
            Join::Inner => {
                if acc.as_slice() == *next {
                    unique(&acc)
                } else {
                    let other: HashSet<&str> = next.iter().map(String::as_str).collect();
                    let kept: Vec<String> = acc.iter().filter(|s| other.contains(s.as_str())).cloned().collect();
                    unique(&kept)
                }
            }
            Join::Outer => {
                if acc.as_slice() == *next || next.is_empty() {
                    acc
                } else if acc.is_empty() {
                    next.to_vec()
                } else {
                    let mut all: Vec<String> = acc.iter().chain(next.iter()).cloned().collect();
                    all.sort_unstable();
                    all.dedup();
                    all
                }
            }
        };
    }
    acc
}

/// Names that occur more than once.
pub fn duplicates(v: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut dup = vec![];
    for s in v {
        if !seen.insert(s.as_str()) && !dup.contains(s) {
            dup.push(s.clone());
        }
    }
    dup
}

/// Maps an input's off-axis positions onto the merged index.
#[derive(Debug, Clone, PartialEq)]
pub struct Reindexer {
    /// For each old position, its new position, or -1 when dropped (inner join).
    /// Empty for an identity.
    pub new_pos: Vec<i64>,
    /// For each new position, its old position, or -1 when missing (to be filled).
    /// Empty for an identity.
    pub old_pos: Vec<i64>,
    /// The old index equals the new one: nothing to do.
    pub identity: bool,
    old_len: usize,
    new_len: usize,
}

impl Reindexer {
    /// Build the mapping from `old` to `new` (`new` must be unique).
    pub fn new(old: &[String], new: &[String]) -> Reindexer {
        if old == new {
            // No position maps: with hundreds of inputs sharing one gene list this keeps
            // memory independent of the number of inputs.
            return Reindexer::identity(old.len());
        }
        let pos: HashMap<&str, i64> = new.iter().enumerate().map(|(i, s)| (s.as_str(), i as i64)).collect();
        let new_pos: Vec<i64> = old.iter().map(|s| pos.get(s.as_str()).copied().unwrap_or(-1)).collect();
        let mut old_pos = vec![-1i64; new.len()];
        for (o, &n) in new_pos.iter().enumerate() {
            if n >= 0 {
                // With duplicate old names, pandas' get_indexer fails; callers reject those.
                old_pos[n as usize] = o as i64;
            }
        }
        Reindexer::from_maps(new_pos, old_pos)
    }

    /// The identity on `n` positions.
    pub fn identity(n: usize) -> Reindexer {
        Reindexer { new_pos: vec![], old_pos: vec![], identity: true, old_len: n, new_len: n }
    }

    /// A mapping given both ways (see the fields).
    pub fn from_maps(new_pos: Vec<i64>, old_pos: Vec<i64>) -> Reindexer {
        let identity = new_pos.len() == old_pos.len() && old_pos.iter().enumerate().all(|(i, &o)| o == i as i64);
        if identity {
            return Reindexer::identity(old_pos.len());
        }
        let (old_len, new_len) = (new_pos.len(), old_pos.len());
        Reindexer { new_pos, old_pos, identity, old_len, new_len }
    }

    /// Number of new positions with no source (filled).
    pub fn n_missing(&self) -> usize {
        self.old_pos.iter().filter(|&&p| p < 0).count()
    }

    /// How the old names met the new ones: `(matched, filled, dropped)` — new positions
    /// with a source, new positions without one, old positions with no place.
    pub fn counts(&self) -> (u64, u64, u64) {
        if self.identity {
            return (self.old_len as u64, 0, 0);
        }
        let filled = self.n_missing() as u64;
        let dropped = self.new_pos.iter().filter(|&&p| p < 0).count() as u64;
        (self.new_len as u64 - filled, filled, dropped)
    }

    /// Size of the new axis.
    pub fn new_len(&self) -> usize {
        self.new_len
    }

    /// Size of the old axis.
    pub fn old_len(&self) -> usize {
        self.old_len
    }
}

/// anndata's `intersect_keys` (OrderedSet `&`: the last input's order) and
/// `union_keys` (order of first appearance).
pub(crate) fn join_keys(sets: &[Vec<String>], join: Join) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    match join {
        Join::Inner => {
            if let Some(last) = sets.last() {
                for k in last {
                    if sets.iter().all(|s| s.contains(k)) && !out.contains(k) {
                        out.push(k.clone());
                    }
                }
            }
        }
        Join::Outer => {
            for s in sets {
                for k in s {
                    if !out.contains(k) {
                        out.push(k.clone());
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn pandas_examples() {
        // From the anndata notes: DCBA ∩ ZBA -> BA ; DCBA ∪ ZBA -> ABCDZ.
        let (dcba, zba) = (s(&["D", "C", "B", "A"]), s(&["Z", "B", "A"]));
        assert_eq!(merge_indices(&[&dcba, &zba], Join::Inner), s(&["B", "A"]));
        assert_eq!(merge_indices(&[&dcba, &zba], Join::Outer), s(&["A", "B", "C", "D", "Z"]));
        // Equal indexes keep their order under union.
        let ba = s(&["b", "a"]);
        assert_eq!(merge_indices(&[&ba, &ba], Join::Outer), s(&["b", "a"]));
        let r = Reindexer::new(&s(&["b", "x", "a"]), &s(&["a", "b", "c"]));
        assert_eq!(r.new_pos, vec![1, -1, 0]);
        assert_eq!(r.old_pos, vec![2, 0, -1]);
        assert_eq!(r.n_missing(), 1);
    }
}
