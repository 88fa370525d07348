//! Dataframes: planning the concatenation-axis annotation (obs for axis=obs) — one
//! column element per column, written by tasks (`crate::job`), with anndata's dtype
//! unification (`crate::columns`); and the off-axis annotation, reindexed and merged in
//! memory.

use crate::columns::{codes_dtype, col_kind, create_column, unify, ColKind, ColumnOut, OutCol};
use crate::equal::arrays_equal;
use crate::index::Reindexer;
use crate::job::{ColumnElement, ColumnSource, Element};
use crate::merge::{merge_values, Strategy};
use crate::{At, ConcatError, Join, Result};
use adcat_format::frame::{Column, DataFrame};
use adcat_format::layout::WriteOptions;
use adcat_format::Encoding;
use adcat_store::{join_path, ArrayData, AttrValue, DType, Store};

/// An object column of categoricals becomes a nullable string column when any input
/// has a missing code (one bounded scan of the codes, only for such columns).
fn resolve_obj(oc: OutCol, frames: &[FrameSource<'_>], name: &str, block_rows: u64) -> Result<OutCol> {
    if !matches!(oc, OutCol::Obj) {
        return Ok(oc);
    }
    for f in frames.iter().filter(|f| f.columns.iter().any(|c| c == name)) {
        let codes = join_path(&join_path(&f.path, name), "codes");
        if !f.store.exists(&codes).at(f.store)? {
            continue;
        }
        let mut s = 0;
        while s < f.n {
            let e = (s + block_rows.max(1)).min(f.n);
            let block = f.store.read_rows(&codes, s, e).at(f.store)?;
            if block.to_i64_vec().unwrap_or_default().iter().any(|&c| c < 0) {
                return Ok(OutCol::Str("NaN".into()));
            }
            s = e;
        }
    }
    Ok(OutCol::Obj)
}

/// One input's part of the concatenation-axis index: its index element, its length and
/// the suffix `index_unique` adds.
#[derive(Debug, Clone)]
pub struct IndexPart<'a> {
    /// Store.
    pub store: &'a dyn Store,
    /// Index element path.
    pub path: String,
    /// Entries.
    pub n: u64,
    /// Appended to every name (`sep + key`), or empty.
    pub suffix: String,
}


/// The concatenated index as anndata 0.13.4 with pandas 3 writes it
/// (`nullable-string-array`, na NaN): created here, its names written by tasks.
fn index_column(parts: &[IndexPart<'_>], to: &FrameTarget<'_>, path: &str) -> Result<ColumnElement> {
    let total: u64 = parts.iter().map(|p| p.n).sum();
    let sources = parts.iter().enumerate().map(|(i, p)| ColumnSource { input: i, path: Some(p.path.clone()), rows: p.n }).collect();
    if total == 0 && !any_nullable(parts)? {
        // pandas concatenates empty object indexes into an empty object index (no
        // string seen to make it `str`), which anndata writes as a plain string array.
        create_column(to.out, path, &OutCol::Obj, 0, to.opts).map_err(output)?;
        return to.element(path, ColumnOut::StringArray, sources);
    }
    create_column(to.out, path, &OutCol::Str("NaN".into()), total, to.opts).map_err(output)?;
    let out = ColumnOut::Index { suffixes: parts.iter().map(|p| p.suffix.clone()).collect() };
    to.element(path, out, sources)
}

/// Whether any input's index is a `nullable-string-array` (pandas' `str` dtype).
fn any_nullable(parts: &[IndexPart<'_>]) -> Result<bool> {
    for p in parts {
        if adcat_format::detect(p.store, &p.path).at(p.store)?.encoding == Encoding::NullableString {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Where planning creates a dataframe along the concatenation axis, and how its column
/// tasks are sized.
#[derive(Debug, Clone, Copy)]
pub struct FrameTarget<'a> {
    /// The output store.
    pub out: &'a dyn Store,
    /// The dataframe's path in it.
    pub path: &'a str,
    /// Layout options.
    pub opts: &'a WriteOptions,
    /// Rows per read block.
    pub block_rows: u64,
    /// Output bytes per task.
    pub task_bytes: u64,
}

impl FrameTarget<'_> {
    fn element(&self, path: &str, out: ColumnOut, sources: Vec<ColumnSource>) -> Result<ColumnElement> {
        let mut el = ColumnElement { path: path.to_owned(), out, sources, block_rows: self.block_rows, task_rows: 1 };
        el.task_rows = el.planned_task_rows(self.out, self.task_bytes).map_err(|e| ConcatError::Output(e.into()))?;
        Ok(el)
    }
}

fn output(e: ConcatError) -> ConcatError {
    match e {
        ConcatError::Format(f) => ConcatError::Output(f),
        o => o,
    }
}

/// The index name of a concatenation: pandas keeps an index name all parts share
/// (anndata stores it as the `_index` key); otherwise `_index`.
pub fn index_key(parts: &[IndexPart<'_>]) -> String {
    common_name(parts.iter().map(|p| p.path.rsplit('/').next().unwrap_or("_index").to_owned()))
}

/// The name every item agrees on, or `_index`.
pub fn common_name(mut names: impl Iterator<Item = String>) -> String {
    match names.next() {
        Some(first) if names.all(|n| n == first) => first,
        _ => "_index".to_owned(),
    }
}

/// One input dataframe along the concatenation axis.
#[derive(Debug, Clone)]
pub struct FrameSource<'a> {
    /// Store.
    pub store: &'a dyn Store,
    /// Path of the dataframe group.
    pub path: String,
    /// Rows.
    pub n: u64,
    /// Columns in order.
    pub columns: Vec<String>,
}

impl<'a> FrameSource<'a> {
    /// Read a dataframe's shape and column list.
    pub fn open(store: &'a dyn Store, path: &str, n: u64) -> Result<Self> {
        let columns = store.attr(path, "column-order")?.and_then(|v| v.as_strings()).unwrap_or_default();
        Ok(FrameSource { store, path: path.to_owned(), n, columns })
    }
}

/// pandas `concat(join=...)` column set: inner keeps the first frame's order of the common
/// columns; outer keeps the order of first appearance.
pub fn join_columns(frames: &[Vec<String>], join: Join) -> Vec<String> {
    match (join, frames.first()) {
        (Join::Inner, Some(first)) => {
            let mut out: Vec<String> = vec![];
            for c in first {
                if frames.iter().all(|f| f.contains(c)) && !out.contains(c) {
                    out.push(c.clone());
                }
            }
            out
        }
        _ => crate::index::join_keys(frames, join),
    }
}

/// Plan the concatenation of dataframes along rows: create the output dataframe with
/// its columns (anndata's dtype unification), and return their elements, whose tasks
/// write the rows. `index` is the new index; `label` adds a categorical column with
/// `keys` as categories. Also returns the columns dropped by an inner join.
pub fn concat_frames(frames: &[FrameSource<'_>], join: Join, index: &[IndexPart<'_>], label: Option<(&str, &[String])>, to: &FrameTarget<'_>) -> Result<(Vec<String>, Vec<Element>)> {
    let (out, out_path) = (to.out, to.path);
    let cols_per: Vec<Vec<String>> = frames.iter().map(|f| f.columns.clone()).collect();
    let mut columns = join_columns(&cols_per, join);
    let dropped: Vec<String> = join_columns(&cols_per, Join::Outer).into_iter().filter(|c| !columns.contains(c)).collect();
    out.create_group(out_path).map_err(|e| output(e.into()))?;
    let mut order = columns.clone();
    if let Some((name, _)) = label {
        if !order.iter().any(|c| c == name) {
            order.push(name.to_owned());
        }
        columns.retain(|c| c != name);
    }
    let mut attrs = Encoding::DataFrame.attrs();
    let key = index_key(index);
    attrs.insert("_index".into(), AttrValue::String(key.clone()));
    attrs.insert("column-order".into(), AttrValue::Strings(order));
    out.set_attrs(out_path, &attrs).map_err(|e| output(e.into()))?;
    let mut elements = vec![Element::Column(index_column(index, to, &join_path(out_path, &key))?)];
    for name in &columns {
        elements.push(Element::Column(plan_column(frames, name, to)?));
    }
    if let Some((name, keys)) = label {
        elements.push(Element::Column(label_column(frames, name, keys, to)?));
    }
    Ok((dropped, elements))
}

/// Plan column `name`: unify its inputs' types and create it.
fn plan_column(frames: &[FrameSource<'_>], name: &str, to: &FrameTarget<'_>) -> Result<ColumnElement> {
    let path = join_path(to.path, name);
    let kinds: Vec<Option<ColKind>> = frames
        .iter()
        .map(|f| if f.columns.iter().any(|c| c == name) { col_kind(f.store, &join_path(&f.path, name)).map(Some).at(f.store) } else { Ok(None) })
        .collect::<Result<_>>()?;
    let inserts: Vec<bool> = frames.iter().map(|f| f.n > 0 || !f.columns.is_empty()).collect();
    let oc = resolve_obj(unify(&path, &kinds, &inserts)?, frames, name, to.block_rows)?;
    let total: u64 = frames.iter().map(|f| f.n).sum();
    create_column(to.out, &path, &oc, total, to.opts).map_err(output)?;
    let sources = frames.iter().zip(&kinds).enumerate().map(|(i, (f, k))| ColumnSource { input: i, path: k.as_ref().map(|_| join_path(&f.path, name)), rows: f.n }).collect();
    to.element(&path, oc.spec(), sources)
}

/// The label column: a categorical of the input keys, each row coded by its input.
fn label_column(frames: &[FrameSource<'_>], name: &str, keys: &[String], to: &FrameTarget<'_>) -> Result<ColumnElement> {
    let path = join_path(to.path, name);
    let total: u64 = frames.iter().map(|f| f.n).sum();
    let oc = OutCol::Cat { categories: ArrayData::from_vec(keys.to_vec()), ordered: false, maps: vec![] };
    create_column(to.out, &path, &oc, total, to.opts).map_err(output)?;
    let sources = frames.iter().enumerate().map(|(i, f)| ColumnSource { input: i, path: None, rows: f.n }).collect();
    to.element(&path, ColumnOut::Label { codes: codes_dtype(keys.len()) }, sources)
}

/// Reindex an in-memory column to a new index (missing rows: NaN / masked / code -1),
/// with pandas' dtype changes (int -> float64, bool -> nullable boolean).
pub fn reindex_column(col: &Column, re: &Reindexer) -> Column {
    if re.identity {
        return col.clone();
    }
    let missing = re.n_missing() > 0;
    let take_pos = |i: usize| re.old_pos[i];
    let n = re.new_len();
    match col {
        Column::Array(a) => {
            let d = a.dtype();
            if d == DType::Bool && missing {
                let v = a.to_i64_vec().unwrap_or_default();
                let values = (0..n).map(|i| take_pos(i) >= 0 && v[take_pos(i) as usize] != 0).collect();
                let mask = (0..n).map(|i| take_pos(i) < 0).collect();
                return Column::NullableBoolean { values, mask };
            }
            if !missing {
                // A permutation or subset: gather in the native type (int64 stays exact).
                let idx: Vec<usize> = re.old_pos.iter().map(|&o| o as usize).collect();
                return Column::Array(crate::matrix::take(a, &idx));
            }
            if missing || !d.is_float() {
                let v = a.to_f64_vec().unwrap_or_default();
                let out: Vec<f64> = (0..n).map(|i| if take_pos(i) >= 0 { v[take_pos(i) as usize] } else { f64::NAN }).collect();
                let target = if missing && !d.is_float() { DType::F64 } else { d };
                let arr = ArrayData::from_vec(out);
                return Column::Array(arr.cast(target).unwrap_or_else(|| ArrayData::zeros(target, &[0])));
            }
            let v = a.to_f64_vec().unwrap_or_default();
            let arr = ArrayData::from_vec((0..n).map(|i| v[take_pos(i) as usize]).collect::<Vec<f64>>());
            Column::Array(arr.cast(d).unwrap_or_else(|| ArrayData::zeros(d, &[0])))
        }
        Column::Strings(v) | Column::NullableString { values: v, .. } => {
            let old_mask = match col {
                Column::NullableString { mask, .. } => Some(mask),
                _ => None,
            };
            let values = (0..n).map(|i| if take_pos(i) >= 0 { v[take_pos(i) as usize].clone() } else { String::new() }).collect();
            let mask: Vec<bool> = (0..n).map(|i| take_pos(i) < 0 || old_mask.is_some_and(|m| m[take_pos(i) as usize])).collect();
            let na_value = match col {
                Column::NullableString { na_value, .. } => na_value.clone(),
                _ => Some("NaN".into()),
            };
            Column::NullableString { values, mask, na_value }
        }
        Column::Categorical { codes, categories, ordered } => {
            let c = codes.to_i64_vec().unwrap_or_default();
            let out: Vec<i64> = (0..n).map(|i| if take_pos(i) >= 0 { c[take_pos(i) as usize] } else { -1 }).collect();
            Column::Categorical { codes: ArrayData::from_vec(out).cast(codes.dtype()).unwrap_or_else(|| codes.clone()), categories: categories.clone(), ordered: *ordered }
        }
        Column::NullableInteger { values, mask } => {
            let v = values.to_i64_vec().unwrap_or_default();
            let out: Vec<i64> = (0..n).map(|i| if take_pos(i) >= 0 { v[take_pos(i) as usize] } else { 0 }).collect();
            let m = (0..n).map(|i| take_pos(i) < 0 || mask[take_pos(i) as usize]).collect();
            Column::NullableInteger { values: ArrayData::from_vec(out).cast(values.dtype()).unwrap_or_else(|| values.clone()), mask: m }
        }
        Column::NullableBoolean { values, mask } => Column::NullableBoolean {
            values: (0..n).map(|i| take_pos(i) >= 0 && values[take_pos(i) as usize]).collect(),
            mask: (0..n).map(|i| take_pos(i) < 0 || mask[take_pos(i) as usize]).collect(),
        },
    }
}

/// Merge the off-axis annotation: reindex each input's frame, then apply the strategy
/// column by column (no strategy: index only).
pub fn merge_frames(frames: &[DataFrame], reindexers: &[Reindexer], index: &[String], index_key: &str, strategy: Option<Strategy>) -> DataFrame {
    let mut out = DataFrame::with_index(index.to_vec());
    out.index_key = index_key.to_owned();
    out.index = Column::NullableString { values: index.to_vec(), mask: vec![false; index.len()], na_value: Some("NaN".into()) };
    let Some(strategy) = strategy else { return out };
    let maps: Vec<Vec<(String, Column)>> = frames
        .iter()
        .zip(reindexers)
        .map(|(f, r)| f.columns.iter().map(|(n, c)| (n.clone(), reindex_column(c, r))).collect())
        .collect();
    out.columns = merge_values(&maps, strategy, columns_equal);
    out
}

/// pandas `Series.equals` on columns: same dtype and values, NaN equal to NaN.
pub fn columns_equal(a: &Column, b: &Column) -> bool {
    match (a, b) {
        (Column::Array(x), Column::Array(y)) => x.dtype() == y.dtype() && arrays_equal(x, y),
        _ => a == b,
    }
}


