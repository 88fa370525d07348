//! Awkward arrays (`awkward-array` 0.1.0): concatenation along the axis as anndata's
//! `ak.concatenate` call does it (type unification in [`form`], streamed buffers in
//! [`write`]), and whole elements in memory for the off-axis merge strategies ([`mem`]).

pub mod form;
pub mod mem;
mod write;

use form::{unify, Form};
use write::{Ctx, Part, Src};

use crate::{At, ConcatError, Join, Result};
use adcat_format::layout::WriteOptions;
use adcat_format::Encoding;
use adcat_store::{AttrValue, Store};
use serde_json::Value;

/// One input's awkward element.
#[derive(Debug, Clone)]
pub struct AwkSource<'a> {
    /// Store.
    pub store: &'a dyn Store,
    /// Group path.
    pub path: String,
    /// Outer length.
    pub length: u64,
    /// Parsed form.
    pub form: Value,
}

impl<'a> AwkSource<'a> {
    /// Read the element's `length` and `form`.
    pub fn open(store: &'a dyn Store, path: &str) -> Result<Self> {
        let attrs = store.attrs(path).at(store)?;
        let bad = |why: &str| ConcatError::Input { file: store.location().into(), source: adcat_format::FormatError::invalid(path, why.to_owned()) };
        let length = attrs.get("length").and_then(AttrValue::as_int).ok_or_else(|| bad("awkward array without `length`"))?;
        let form = attrs.get("form").and_then(AttrValue::as_str).ok_or_else(|| bad("awkward array without `form`"))?;
        let form: Value = serde_json::from_str(form).map_err(|e| bad(&format!("invalid awkward form: {e}")))?;
        Ok(AwkSource { store, path: path.to_owned(), length: length.max(0) as u64, form })
    }
}

impl<'a> AwkSource<'a> {
    /// [`AwkSource::open`], checking the outer length is `n` (the element's axis).
    pub fn open_rows(store: &'a dyn Store, path: &str, n: u64) -> Result<Self> {
        let s = AwkSource::open(store, path)?;
        if s.length != n {
            let why = format!("awkward length {} does not match the {n} entries of its axis", s.length);
            return Err(ConcatError::Input { file: store.location().into(), source: adcat_format::FormatError::invalid(path, why) });
        }
        Ok(s)
    }

    fn parsed(&self) -> Result<Form> {
        Form::parse(&self.form).map_err(|why| ConcatError::Input { file: self.store.location().into(), source: adcat_format::FormatError::invalid(&self.path, why) })
    }
}

/// One input's share of a concatenated awkward element.
#[derive(Debug)]
pub enum AwkInput<'a> {
    /// The input's element.
    Stored(AwkSource<'a>),
    /// The input lacks the element (outer join of obsm): `n` values `None`.
    Missing(u64),
    /// The input lacks the layer (outer join of layers): `n` rows of `width` NaN, as
    /// anndata's missing-layer fill, which `ak.concatenate` turns into a union member.
    Fill {
        /// Rows.
        n: u64,
        /// Values per row (the number of vars).
        width: u64,
    },
}

fn part<'a>(input: &'a AwkInput<'a>) -> Result<Part<'a>> {
    Ok(match input {
        AwkInput::Stored(s) => Part { src: Src::Stored(s), form: s.parsed()?, start: 0, len: s.length },
        AwkInput::Missing(n) => Part { src: Src::Missing, form: Form::Empty, start: 0, len: *n },
        AwkInput::Fill { n, width } => {
            let num = Form::Numpy { prim: "float64".into(), key: String::new(), params: serde_json::json!({}) };
            let form = Form::Regular { size: *width, content: Box::new(num), key: String::new(), params: serde_json::json!({}) };
            Part { src: Src::Fill(f64::NAN), form, start: 0, len: *n }
        }
    })
}

/// anndata's inner join on awkward records: when every input holds records, keep the
/// fields common to all, in the last input's order (`intersect_keys`).
fn keep_common_fields(parts: &mut [Part<'_>]) {
    let stored: Vec<&Part<'_>> = parts.iter().filter(|p| matches!(p.src, Src::Stored(_))).collect();
    if stored.is_empty() || !stored.iter().all(|p| !p.form.fields().is_empty()) {
        return;
    }
    let last = stored.last().map(|p| p.form.fields()).unwrap_or_default();
    let common: Vec<String> = last.into_iter().filter(|f| stored.iter().all(|p| p.form.fields().contains(f))).collect();
    for p in parts.iter_mut().filter(|p| matches!(p.src, Src::Stored(_))) {
        p.form = p.form.select_fields(&common);
    }
}

/// Read and check every input's form (what planning can know before a task writes).
pub fn check(inputs: &[AwkInput<'_>]) -> Result<()> {
    parts(inputs).map(drop)
}

fn parts<'a>(inputs: &'a [AwkInput<'a>]) -> Result<Vec<Part<'a>>> {
    inputs.iter().map(part).collect()
}

/// Concatenate awkward elements into `out_path` as `anndata.concat` does: types unify
/// (numeric promotion, options for missing inputs, unions for what cannot merge); an
/// inner join keeps the record fields common to all inputs.
pub fn concat(inputs: &[AwkInput<'_>], join: Join, out: &dyn Store, out_path: &str, opts: &WriteOptions, block: u64) -> Result<()> {
    let mut parts = parts(inputs)?;
    if join == Join::Inner {
        keep_common_fields(&mut parts);
    }
    let forms: Vec<Option<&Form>> = parts.iter().map(|p| (!matches!(p.src, Src::Missing)).then_some(&p.form)).collect();
    let mut form = unify(&forms);
    form.assign_keys(&mut 0);
    out.create_group(out_path).map_err(|e| ConcatError::Output(e.into()))?;
    let total: u64 = parts.iter().map(|p| p.len).sum();
    let mut attrs = Encoding::Awkward.attrs();
    attrs.insert("length".into(), AttrValue::Int(total as i64));
    attrs.insert("form".into(), AttrValue::String(form.to_json().to_string()));
    out.set_attrs(out_path, &attrs).map_err(|e| ConcatError::Output(e.into()))?;
    write::node(&Ctx { out, path: out_path.to_owned(), opts, block }, &form, &parts).map_err(|e| match e {
        ConcatError::Unsupported { path, reason } if path.is_empty() => ConcatError::unsupported(out_path, reason),
        o => o,
    })
}
