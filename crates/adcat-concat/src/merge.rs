//! anndata's merge strategies (`same`, `unique`, `first`, `only`) and the in-memory
//! element trees they act on (uns, and off-axis mappings).

use crate::Result;
use adcat_format::{detect, Encoding};
use adcat_store::{join_path, ArrayData, AttrValue, Attrs, NodeKind, Store};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// How values of the same key from several inputs are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Keep keys present in every input whose values are all equal.
    Same,
    /// Keep keys (from any input) whose values are all equal.
    Unique,
    /// Keep the first value of each key.
    First,
    /// Keep keys present in exactly one input.
    Only,
}

impl Strategy {
    /// The name anndata (and `--merge`) uses.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Same => "same",
            Strategy::Unique => "unique",
            Strategy::First => "first",
            Strategy::Only => "only",
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "same" => Ok(Strategy::Same),
            "unique" => Ok(Strategy::Unique),
            "first" => Ok(Strategy::First),
            "only" => Ok(Strategy::Only),
            _ => Err(format!("unknown merge strategy {s:?} (use same, unique, first or only)")),
        }
    }
}

fn keys<V>(maps: &[&[(String, V)]], s: Strategy) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    match s {
        Strategy::Same => {
            // intersect_keys: OrderedSet `&` keeps the last mapping's order.
            if let Some(last) = maps.last() {
                for (k, _) in last.iter() {
                    if maps.iter().all(|m| m.iter().any(|(x, _)| x == k)) && !out.contains(k) {
                        out.push(k.clone());
                    }
                }
            }
        }
        _ => {
            for m in maps {
                for (k, _) in m.iter() {
                    if !out.contains(k) {
                        out.push(k.clone());
                    }
                }
            }
        }
    }
    out
}

/// Which of `vals` (the values of one key, in input order) the strategy keeps.
fn pick<V>(vals: &[&V], s: Strategy, eq: &dyn Fn(&V, &V) -> bool) -> Option<usize> {
    match s {
        Strategy::Same | Strategy::Unique => {
            let first = vals.first()?;
            vals.iter().all(|v| eq(v, first)).then_some(0)
        }
        Strategy::First => (!vals.is_empty()).then_some(0),
        Strategy::Only => (vals.len() == 1).then_some(0),
    }
}

/// Merge flat maps (e.g. dataframe columns, varm entries).
pub fn merge_values<V: Clone>(maps: &[Vec<(String, V)>], s: Strategy, eq: impl Fn(&V, &V) -> bool) -> Vec<(String, V)> {
    let slices: Vec<&[(String, V)]> = maps.iter().map(Vec::as_slice).collect();
    keys(&slices, s)
        .into_iter()
        .filter_map(|k| {
            let vals: Vec<&V> = maps.iter().filter_map(|m| m.iter().find(|(x, _)| *x == k).map(|(_, v)| v)).collect();
            pick(&vals, s, &eq).map(|i| (k, vals[i].clone()))
        })
        .collect()
}

/// A whole element read into memory, structure and attributes included.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    /// A group and its children in store order.
    Group {
        /// Attributes.
        attrs: Attrs,
        /// Children.
        children: Vec<(String, Tree)>,
    },
    /// An array (`null` when it is the `null` encoding).
    Array {
        /// Attributes.
        attrs: Attrs,
        /// Contents.
        data: ArrayData,
    },
    /// A record (structured) array: named columns.
    Record {
        /// Attributes.
        attrs: Attrs,
        /// Columns.
        fields: Vec<(String, ArrayData)>,
    },
}

impl Tree {
    /// Read the element at `path` (and everything under it).
    pub fn read(store: &dyn Store, path: &str) -> Result<Tree> {
        let attrs = store.attrs(path)?;
        match store.node_kind(path)? {
            Some(NodeKind::Group) => {
                let mut children = vec![];
                for c in store.list(path)? {
                    children.push((c.clone(), Tree::read(store, &join_path(path, &c))?));
                }
                Ok(Tree::Group { attrs, children })
            }
            _ => {
                // Validate the encoding as every other reader does.
                if detect(store, path)?.encoding == Encoding::RecArray || store.is_record(path)? {
                    return Ok(Tree::Record { attrs, fields: store.read_record(path)? });
                }
                Ok(Tree::Array { attrs, data: store.read_all(path)? })
            }
        }
    }

    /// Whether this is a mapping that merge strategies recurse into (`dict`).
    pub fn is_mapping(&self) -> bool {
        match self {
            Tree::Group { attrs, .. } => attrs.get("encoding-type").and_then(AttrValue::as_str).is_none_or(|e| e == "dict"),
            Tree::Array { .. } | Tree::Record { .. } => false,
        }
    }

    fn encoding(&self) -> Option<&str> {
        let attrs = match self {
            Tree::Group { attrs, .. } | Tree::Array { attrs, .. } | Tree::Record { attrs, .. } => attrs,
        };
        attrs.get("encoding-type").and_then(AttrValue::as_str)
    }

    /// The encoding anndata reads this element as: elements written without encoding
    /// attributes (anndata < 0.8, R tools) read as what their contents are.
    fn read_as(&self) -> Option<&str> {
        if let Some(e) = self.encoding() {
            return Some(e);
        }
        match self {
            Tree::Group { attrs, .. } => match attrs.get("h5sparse_format").and_then(AttrValue::as_str) {
                Some("csc") => Some("csc_matrix"),
                Some(_) => Some("csr_matrix"),
                None => Some("dict"),
            },
            Tree::Array { data, .. } => Some(match (data.shape().is_empty(), data.as_strings().is_some()) {
                (true, true) => "string",
                (true, false) => "numeric-scalar",
                (false, true) => "string-array",
                (false, false) => "array",
            }),
            Tree::Record { .. } => Some("rec-array"),
        }
    }

    /// anndata's `equal`: same kind and values, NaN equal to NaN, numeric dtypes ignored.
    pub fn equal(&self, other: &Tree) -> bool {
        match (self, other) {
            (Tree::Array { data: a, .. }, Tree::Array { data: b, .. }) => self.read_as() == other.read_as() && crate::equal::arrays_equal(a, b),
            (Tree::Record { fields: a, .. }, Tree::Record { fields: b, .. }) => {
                a.len() == b.len() && a.iter().zip(b).all(|((k1, v1), (k2, v2))| k1 == k2 && crate::equal::arrays_equal(v1, v2))
            }
            (Tree::Group { children: a, .. }, Tree::Group { children: b, .. }) => {
                self.read_as() == other.read_as()
                    && a.len() == b.len()
                    && a.iter().all(|(k, v)| b.iter().any(|(k2, v2)| k == k2 && v.equal(v2)))
            }
            _ => false,
        }
    }

    /// Children of a group (empty for arrays).
    pub fn children(&self) -> &[(String, Tree)] {
        match self {
            Tree::Group { children, .. } => children,
            Tree::Array { .. } | Tree::Record { .. } => &[],
        }
    }
}

/// What a nested merge keeps of one key: a mapping merged from its children, or the
/// value of one input (copied as it is stored there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kept {
    /// A `dict` group holding the merged children, in order.
    Mapping(Vec<(String, Kept)>),
    /// The value of this input (its number among all inputs).
    Input(usize),
}

/// anndata's `merge_nested` over every input's mapping (`maps[i]` is input `i`'s):
/// recurse into mappings present in every input that has the key, drop empty results,
/// combine leaves with the strategy. Returns where each kept value comes from.
pub fn merge_nested(maps: &[&[(String, Tree)]], s: Strategy) -> Vec<(String, Kept)> {
    let inputs: Vec<usize> = (0..maps.len()).collect();
    merge_from(maps, &inputs, s)
}

/// [`merge_nested`] over the mappings of inputs `inputs` (parallel to `maps`).
fn merge_from(maps: &[&[(String, Tree)]], inputs: &[usize], s: Strategy) -> Vec<(String, Kept)> {
    let mut out = vec![];
    for k in keys(maps, s) {
        let (from, vals): (Vec<usize>, Vec<&Tree>) =
            maps.iter().zip(inputs).filter_map(|(m, i)| m.iter().find(|(x, _)| *x == k).map(|(_, v)| (*i, v))).unzip();
        if vals.is_empty() {
            continue;
        }
        if vals.iter().all(|v| v.is_mapping()) {
            let sub: Vec<&[(String, Tree)]> = vals.iter().map(|v| v.children()).collect();
            let merged = merge_from(&sub, &from, s);
            if !merged.is_empty() {
                out.push((k, Kept::Mapping(merged)));
            }
        } else if let Some(i) = pick(&vals, s, &|a: &Tree, b: &Tree| a.equal(b)) {
            out.push((k, Kept::Input(from[i])));
        }
    }
    out
}
