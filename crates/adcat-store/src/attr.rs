//! Typed attribute values.

use std::collections::BTreeMap;

/// An attribute value as AnnData stores use them.
///
/// HDF5 attributes are typed (scalar/array of int, float, bool, string); zarr attributes
/// are JSON. This enum is the common typed view: backends map it to their native form and
/// back, so `encoding-type` stays a string, `shape` an integer array and `ordered` a bool.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// JSON `null` (zarr only; HDF5 has no null attribute).
    Null,
    /// Boolean scalar.
    Bool(bool),
    /// Integer scalar.
    Int(i64),
    /// Floating-point scalar.
    Float(f64),
    /// UTF-8 string scalar.
    String(String),
    /// 1-d array of booleans.
    Bools(Vec<bool>),
    /// 1-d array of integers.
    Ints(Vec<i64>),
    /// 1-d array of floats.
    Floats(Vec<f64>),
    /// 1-d array of strings.
    Strings(Vec<String>),
    /// Heterogeneous list (zarr JSON only; HDF5 stores it as JSON text).
    List(Vec<AttrValue>),
    /// Nested map (zarr JSON only; HDF5 stores it as JSON text).
    Map(BTreeMap<String, AttrValue>),
}

/// All attributes of one node, by name.
pub type Attrs = BTreeMap<String, AttrValue>;

impl AttrValue {
    /// The string, if this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer scalar (or an integral float).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            AttrValue::Int(i) => Some(*i),
            AttrValue::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }

    /// The bool, if this is a bool scalar (integers 0/1 accepted, as h5py writes either).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            AttrValue::Int(0) => Some(false),
            AttrValue::Int(1) => Some(true),
            _ => None,
        }
    }

    /// A list of strings. Empty numeric arrays count as empty lists because h5py writes
    /// an empty `column-order` as `float64[0]`.
    pub fn as_strings(&self) -> Option<Vec<String>> {
        match self {
            AttrValue::Strings(v) => Some(v.clone()),
            AttrValue::String(s) => Some(vec![s.clone()]),
            AttrValue::Floats(v) if v.is_empty() => Some(vec![]),
            AttrValue::Ints(v) if v.is_empty() => Some(vec![]),
            AttrValue::Bools(v) if v.is_empty() => Some(vec![]),
            AttrValue::List(v) => v.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
            _ => None,
        }
    }

    /// A list of integers (e.g. a sparse matrix `shape`).
    pub fn as_ints(&self) -> Option<Vec<i64>> {
        match self {
            AttrValue::Ints(v) => Some(v.clone()),
            AttrValue::Floats(v) => v.iter().map(|f| (f.fract() == 0.0).then_some(*f as i64)).collect(),
            AttrValue::List(v) => v.iter().map(AttrValue::as_int).collect(),
            _ => None,
        }
    }

    /// Convert to JSON (used by the zarr backend and for HDF5 nested values).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        let f = |x: f64| {
            serde_json::Number::from_f64(x).map(J::Number).unwrap_or_else(|| {
                // JSON has no NaN/Infinity; zarr-python writes them as strings.
                J::String(if x.is_nan() {
                    "NaN".into()
                } else if x > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                })
            })
        };
        match self {
            AttrValue::Null => J::Null,
            AttrValue::Bool(b) => J::Bool(*b),
            AttrValue::Int(i) => J::from(*i),
            AttrValue::Float(x) => f(*x),
            AttrValue::String(s) => J::String(s.clone()),
            AttrValue::Bools(v) => J::Array(v.iter().map(|b| J::Bool(*b)).collect()),
            AttrValue::Ints(v) => J::Array(v.iter().map(|i| J::from(*i)).collect()),
            AttrValue::Floats(v) => J::Array(v.iter().map(|x| f(*x)).collect()),
            AttrValue::Strings(v) => J::Array(v.iter().map(|s| J::String(s.clone())).collect()),
            AttrValue::List(v) => J::Array(v.iter().map(AttrValue::to_json).collect()),
            AttrValue::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// Convert from JSON, choosing the most specific typed variant: homogeneous arrays
    /// become `Strings`/`Ints`/`Floats`/`Bools`; an empty array becomes `Strings`.
    pub fn from_json(v: &serde_json::Value) -> AttrValue {
        use serde_json::Value as J;
        match v {
            J::Null => AttrValue::Null,
            J::Bool(b) => AttrValue::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => AttrValue::Int(i),
                None => AttrValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => AttrValue::String(s.clone()),
            J::Array(items) => {
                if items.iter().all(|x| x.is_string()) {
                    AttrValue::Strings(items.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                } else if items.iter().all(|x| x.is_boolean()) {
                    AttrValue::Bools(items.iter().filter_map(J::as_bool).collect())
                } else if items.iter().all(|x| x.is_i64()) {
                    AttrValue::Ints(items.iter().filter_map(J::as_i64).collect())
                } else if items.iter().all(|x| x.is_number()) {
                    AttrValue::Floats(items.iter().filter_map(J::as_f64).collect())
                } else {
                    AttrValue::List(items.iter().map(AttrValue::from_json).collect())
                }
            }
            J::Object(m) => AttrValue::Map(m.iter().map(|(k, v)| (k.clone(), AttrValue::from_json(v))).collect()),
        }
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::String(s.to_owned())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::String(s)
    }
}
impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        AttrValue::Bool(b)
    }
}
impl From<i64> for AttrValue {
    fn from(i: i64) -> Self {
        AttrValue::Int(i)
    }
}
impl From<Vec<String>> for AttrValue {
    fn from(v: Vec<String>) -> Self {
        AttrValue::Strings(v)
    }
}
impl From<Vec<i64>> for AttrValue {
    fn from(v: Vec<i64>) -> Self {
        AttrValue::Ints(v)
    }
}
