//! A whole awkward element in memory, for the off-axis merge strategies (varm with
//! `--axis obs`, obsm with `--axis var`): compared as `ak.almost_equal` does, reindexed
//! along its outer dimension, and written back.

use crate::index::Reindexer;
use crate::{At, ConcatError, Result};
use adcat_format::layout::WriteOptions;
use adcat_format::{Encoding, FormatError};
use adcat_store::{join_path, ArrayData, AttrValue, Store};
use serde_json::{json, Value};

/// An `awkward-array` element: its outer length, form and buffers by name.
#[derive(Debug, Clone, PartialEq)]
pub struct AwkMem {
    /// Outer length.
    pub length: u64,
    /// The form (awkward JSON).
    pub form: Value,
    /// Buffers by name (`<form_key>-<role>`).
    pub buffers: Vec<(String, ArrayData)>,
}

/// The buffer roles of a node class (`ak.to_buffers` names them `<form_key>-<role>`).
fn roles(class: &str) -> &'static [&'static str] {
    match class {
        "NumpyArray" => &["data"],
        "ListOffsetArray" => &["offsets"],
        "ListArray" => &["starts", "stops"],
        "IndexedArray" | "IndexedOptionArray" => &["index"],
        "ByteMaskedArray" | "BitMaskedArray" => &["mask"],
        "UnionArray" => &["tags", "index"],
        _ => &[],
    }
}

/// Buffer names of a form in preorder (equal types list their buffers in the same order).
fn buffer_names(form: &Value, out: &mut Vec<String>, depth: usize) {
    let Value::Object(o) = form else { return };
    if depth > 256 {
        return;
    }
    let key = o.get("form_key").and_then(Value::as_str).unwrap_or("");
    for role in roles(o.get("class").and_then(Value::as_str).unwrap_or("")) {
        out.push(format!("{key}-{role}"));
    }
    if let Some(c) = o.get("content") {
        buffer_names(c, out, depth + 1);
    }
    for c in o.get("contents").and_then(Value::as_array).into_iter().flatten() {
        buffer_names(c, out, depth + 1);
    }
}

/// The form without its keys: what makes two forms the same type.
fn keyless(form: &Value) -> Value {
    match form {
        Value::Object(o) => Value::Object(o.iter().filter(|(k, _)| *k != "form_key").map(|(k, v)| (k.clone(), keyless(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(keyless).collect()),
        other => other.clone(),
    }
}

impl AwkMem {
    /// Read the element at `path`.
    pub fn read(store: &dyn Store, path: &str) -> Result<AwkMem> {
        let src = super::AwkSource::open(store, path)?;
        let mut names = vec![];
        buffer_names(&src.form, &mut names, 0);
        let mut buffers = vec![];
        for n in names {
            let p = join_path(path, &n);
            if !store.exists(&p).at(store)? {
                return Err(ConcatError::Input { file: store.location().into(), source: FormatError::invalid(&p, "awkward buffer named by the form is missing") });
            }
            buffers.push((n, store.read_all(&p).at(store)?));
        }
        Ok(AwkMem { length: src.length, form: src.form, buffers })
    }

    /// `ak.almost_equal`: same type and length, values equal within its tolerances.
    pub fn equal(&self, other: &AwkMem) -> bool {
        self.length == other.length
            && keyless(&self.form) == keyless(&other.form)
            && self.buffers.len() == other.buffers.len()
            && self.buffers.iter().zip(&other.buffers).all(|((_, a), (_, b))| close(a, b))
    }

    /// Reindex the outer dimension (`el[idx]`, with `None` where the reindexer has no
    /// source: anndata 0.13.4 there repeats the last element instead).
    pub fn reindex(self, re: &Reindexer) -> AwkMem {
        if re.identity {
            return self;
        }
        let missing = re.old_pos.iter().any(|&i| i < 0);
        let key = fresh_key(&self.buffers);
        let class = if missing { "IndexedOptionArray" } else { "IndexedArray" };
        let form = json!({"class": class, "index": "i64", "content": self.form, "parameters": {}, "form_key": key});
        let mut buffers = vec![(format!("{key}-index"), ArrayData::from_vec(re.old_pos.clone()))];
        buffers.extend(self.buffers);
        AwkMem { length: re.old_pos.len() as u64, form, buffers }
    }

    /// Write the element at `path` (must not exist).
    pub fn write(&self, out: &dyn Store, path: &str, opts: &WriteOptions) -> std::result::Result<(), FormatError> {
        out.create_group(path)?;
        let mut attrs = Encoding::Awkward.attrs();
        attrs.insert("length".into(), AttrValue::Int(self.length as i64));
        attrs.insert("form".into(), AttrValue::String(self.form.to_string()));
        out.set_attrs(path, &attrs)?;
        for (name, data) in &self.buffers {
            adcat_format::frame::write_array(out, &join_path(path, name), data, opts)?;
        }
        Ok(())
    }
}

fn fresh_key(buffers: &[(String, ArrayData)]) -> String {
    (0..).map(|i| format!("reindexed{i}")).find(|k| !buffers.iter().any(|(n, _)| n.starts_with(&format!("{k}-")))).unwrap_or_default()
}

/// Equal within `ak.almost_equal`'s tolerances (rtol 1e-5, atol 1e-8; NaN equals NaN).
fn close(a: &ArrayData, b: &ArrayData) -> bool {
    if a.dtype() != b.dtype() || a.shape() != b.shape() {
        return false;
    }
    if !a.dtype().is_float() {
        return crate::equal::arrays_equal(a, b);
    }
    match (a.to_f64_vec(), b.to_f64_vec()) {
        (Some(x), Some(y)) => x.iter().zip(&y).all(|(p, q)| (p.is_nan() && q.is_nan()) || (p - q).abs() <= 1e-8 + 1e-5 * q.abs() || p == q),
        _ => false,
    }
}
