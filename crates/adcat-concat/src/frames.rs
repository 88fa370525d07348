//! Dataframes: the concatenation-axis annotation (obs for axis=obs), streamed column by
//! column in row blocks with anndata's dtype unification; and the off-axis annotation,
//! reindexed and merged in memory.

use crate::index::Reindexer;
use crate::merge::{merge_values, Strategy};
use crate::equal::arrays_equal;
use crate::natsort::natcmp;
use crate::{ConcatError, Join, Result};
use adcat_format::frame::{Column, DataFrame};
use adcat_format::layout::{Purpose, WriteOptions};
use adcat_format::stream::Appender;
use adcat_format::{detect, Encoding};
use adcat_store::{join_path, ArrayData, AttrValue, DType, Store};
use std::collections::HashMap;

/// How an input column is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum ColKind {
    /// Plain numeric/bool `array`.
    Num(DType),
    /// `string-array`.
    Str,
    /// `categorical` with its categories.
    Cat {
        /// Categories (strings or numbers).
        categories: ArrayData,
        /// Ordered flag.
        ordered: bool,
    },
    /// `nullable-integer` of this dtype.
    NInt(DType),
    /// `nullable-boolean`.
    NBool,
    /// `nullable-string-array` with its `na-value` ("NA" when absent, as anndata reads it).
    NStr(String),
}

impl std::fmt::Display for ColKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ColKind::Num(d) => write!(f, "{d}"),
            ColKind::Str => f.write_str("string"),
            ColKind::Cat { categories, ordered } => {
                let o = if *ordered { "ordered " } else { "" };
                write!(f, "{o}categorical of {} {} categories", categories.len(), categories.dtype())
            }
            ColKind::NInt(d) => write!(f, "nullable {d}"),
            ColKind::NBool => f.write_str("nullable bool"),
            ColKind::NStr(_) => f.write_str("nullable string"),
        }
    }
}

/// Inspect the column element at `path`.
pub fn col_kind(store: &dyn Store, path: &str) -> Result<ColKind> {
    let det = detect(store, path)?;
    Ok(match det.encoding {
        Encoding::Array | Encoding::StringArray => {
            let m = store.array_meta(path)?;
            if m.shape.len() != 1 {
                return Err(ConcatError::unsupported(path, format!("dataframe column of shape {:?}", m.shape)));
            }
            if m.dtype == DType::String { ColKind::Str } else { ColKind::Num(m.dtype) }
        }
        Encoding::Categorical => ColKind::Cat {
            categories: store.read_all(&join_path(path, "categories"))?,
            ordered: store.attr(path, "ordered")?.and_then(|v| v.as_bool()).unwrap_or(false),
        },
        Encoding::NullableInteger => ColKind::NInt(store.array_meta(&join_path(path, "values"))?.dtype),
        Encoding::NullableBoolean => ColKind::NBool,
        Encoding::NullableString => ColKind::NStr(store.attr(path, "na-value")?.and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "NA".into())),
        other => return Err(ConcatError::unsupported(path, format!("{other} is not a dataframe column"))),
    })
}

/// The unified output type of a column.
#[derive(Debug, Clone, PartialEq)]
pub enum OutCol {
    /// `array` of dtype; missing rows hold NaN (dtype is float then).
    Num(DType),
    /// `nullable-integer`.
    NInt(DType),
    /// `nullable-boolean`.
    NBool,
    /// `nullable-string-array` with this na-value.
    Str(String),
    /// `string-array`: pandas' object column of strings (categoricals that cannot be
    /// unified), as anndata writes it. Missing values cannot be stored in it.
    Obj,
    /// `categorical` with the unified categories; per input: old code -> new code.
    Cat {
        /// Unified categories.
        categories: ArrayData,
        /// Ordered flag.
        ordered: bool,
        /// Per input code remapping (None when the input lacks the column or is not
        /// categorical).
        maps: Vec<Option<Vec<i64>>>,
    },
}

fn cat_labels(c: &ArrayData) -> Vec<String> {
    match c.as_strings() {
        Some(s) => s.iter().cloned().collect(),
        None => c.to_f64_vec().unwrap_or_default().iter().map(|v| v.to_string()).collect(),
    }
}

/// An object column of categoricals becomes a nullable string column when any input
/// has a missing code (one bounded scan of the codes, only for such columns).
fn resolve_obj(oc: OutCol, frames: &[FrameSource<'_>], name: &str, block_rows: u64) -> Result<OutCol> {
    if !matches!(oc, OutCol::Obj) {
        return Ok(oc);
    }
    for f in frames.iter().filter(|f| f.columns.iter().any(|c| c == name)) {
        let codes = join_path(&join_path(&f.path, name), "codes");
        if !f.store.exists(&codes).map_err(|e| at_input(f.store, e.into()))? {
            continue;
        }
        let mut s = 0;
        while s < f.n {
            let e = (s + block_rows.max(1)).min(f.n);
            let block = f.store.read_rows(&codes, s, e).map_err(|e| at_input(f.store, e.into()))?;
            if block.to_i64_vec().unwrap_or_default().iter().any(|&c| c < 0) {
                return Ok(OutCol::Str("NaN".into()));
            }
            s = e;
        }
    }
    Ok(OutCol::Obj)
}

/// anndata's `unify_dtypes` followed by pandas' concat rules, for one column.
/// `kinds[i]` is None when input i lacks the column; `inserts[i]` says whether pandas
/// inserts missing values for it (rows > 0, or a zero-row frame that has other columns:
/// pandas drops frames that are empty in both directions before concatenating).
pub fn unify(name: &str, kinds: &[Option<ColKind>], inserts: &[bool]) -> Result<OutCol> {
    let present: Vec<&ColKind> = kinds.iter().flatten().collect();
    // anndata's flag (any input lacks the column) vs. pandas' (missing rows are inserted:
    // a zero-row input lacking the column inserts none).
    let has_missing = present.len() < kinds.len();
    let has_holes = kinds.iter().zip(inserts).any(|(k, &ins)| k.is_none() && ins);
    let bad = || {
        let types: Vec<String> = present.iter().map(|k| k.to_string()).collect();
        ConcatError::unsupported(name, format!("cannot combine columns of types {} (as anndata.concat cannot; convert them to one type first)", types.join(", ")))
    };
    if present.iter().any(|k| matches!(k, ColKind::Cat { .. })) {
        if !present.iter().all(|k| matches!(k, ColKind::Cat { .. })) {
            // pandas falls back to object; adcat writes strings when every part is text.
            if present.iter().all(|k| matches!(k, ColKind::Str | ColKind::NStr(_)) || matches!(k, ColKind::Cat { categories, .. } if categories.dtype() == DType::String)) {
                return Ok(OutCol::Str("NaN".into()));
            }
            return Err(bad());
        }
        return Ok(unify_categoricals(kinds, has_holes));
    }
    if present.iter().all(|k| matches!(k, ColKind::Str | ColKind::NStr(_))) {
        // pandas: StringDtype(na_value=NA) + str -> StringDtype(na_value=NA).
        let any_na = present.iter().any(|k| matches!(k, ColKind::NStr(na) if na == "NA"));
        return Ok(OutCol::Str(if any_na { "NA" } else { "NaN" }.into()));
    }
    if present.iter().all(|k| matches!(k, ColKind::Num(DType::Bool) | ColKind::NBool)) {
        let nullable = has_missing || present.iter().any(|k| matches!(k, ColKind::NBool));
        return Ok(if nullable { OutCol::NBool } else { OutCol::Num(DType::Bool) });
    }
    unify_numbers(&present, has_holes).ok_or_else(bad)
}

/// Numeric columns (bool, int, float, nullable int): numpy promotion; None when pandas
/// would give an object column anndata cannot write.
fn unify_numbers(present: &[&ColKind], has_holes: bool) -> Option<OutCol> {
    let mut dt: Option<DType> = None;
    let mut nullable_int = false;
    let any_float = present.iter().any(|k| matches!(k, ColKind::Num(d) if d.is_float()));
    for k in present {
        let d = match k {
            // bool + int -> int (pandas); bool + float -> object, which anndata cannot write.
            ColKind::Num(DType::Bool) if !any_float => DType::Bool,
            ColKind::Num(DType::Bool) | ColKind::NBool => return None,
            ColKind::Num(d) => *d,
            ColKind::NInt(d) => {
                nullable_int = true;
                *d
            }
            _ => return None,
        };
        dt = Some(match dt {
            None => d,
            Some(p) => p.promote(d)?,
        });
    }
    let dt = dt.unwrap_or(DType::F64);
    Some(if nullable_int && !dt.is_float() {
        OutCol::NInt(dt)
    } else if has_holes && !dt.is_float() {
        OutCol::Num(DType::F64)
    } else {
        OutCol::Num(dt)
    })
}

/// Categorical columns: the unified categories (pandas' `union_categoricals` as anndata
/// calls it) and each input's code map, or an object column when ordered categoricals
/// differ.
fn unify_categoricals(kinds: &[Option<ColKind>], has_holes: bool) -> OutCol {
    let cats: Vec<(&ArrayData, bool)> = kinds
        .iter()
        .flatten()
        .filter_map(|k| match k {
            ColKind::Cat { categories, ordered } => Some((categories, *ordered)),
            _ => None,
        })
        .collect();
    let Some((categories, ordered)) = unified_categories(&cats) else {
        // pandas gives object, which anndata writes as a string-array (read back as
        // object); with missing rows or codes (NaN in the object column) anndata writes
        // "nan" or fails, so adcat keeps them as a nullable string column. Missing codes
        // are found by the caller (`resolve_obj`).
        return if has_holes { OutCol::Str("NaN".into()) } else { OutCol::Obj };
    };
    let new_labels = cat_labels(&categories);
    let pos: HashMap<&str, i64> = new_labels.iter().enumerate().map(|(i, s)| (s.as_str(), i as i64)).collect();
    let maps = kinds
        .iter()
        .map(|k| match k {
            Some(ColKind::Cat { categories, .. }) => Some(cat_labels(categories).iter().map(|l| pos.get(l.as_str()).copied().unwrap_or(-1)).collect()),
            _ => None,
        })
        .collect();
    OutCol::Cat { categories, ordered, maps }
}

/// The categories and ordered flag of the concatenation, or None for an object column.
fn unified_categories(cats: &[(&ArrayData, bool)]) -> Option<(ArrayData, bool)> {
    let numeric = cats.iter().all(|(c, _)| c.dtype() != DType::String);
    // Union of categories (pandas Index.union: sorted when they differ).
    let mut union: Vec<String> = vec![];
    let mut seen = std::collections::HashSet::new();
    for (c, _) in cats {
        for l in cat_labels(c) {
            if seen.insert(l.clone()) {
                union.push(l);
            }
        }
    }
    let first_labels = cats.first().map(|(c, _)| cat_labels(c)).unwrap_or_default();
    if cats.iter().any(|(_, o)| *o) {
        let with: Vec<&(&ArrayData, bool)> = cats.iter().filter(|(c, _)| !c.is_empty()).collect();
        let first = with.first().map(|(c, _)| cat_labels(c)).unwrap_or_default();
        let same = !with.is_empty() && with.iter().all(|(c, o)| *o && cat_labels(c) == first) && first.len() == union.len();
        return same.then(|| (with[0].0.clone(), true));
    }
    if first_labels.len() == union.len() {
        // Unordered dtypes with equal category sets compare equal in pandas: astype to the
        // natsorted union is a no-op for such inputs, and concat keeps the first order.
        return Some((cats[0].0.clone(), false));
    }
    if numeric {
        let mut vals: Vec<f64> = cats.iter().flat_map(|(c, _)| c.to_f64_vec().unwrap_or_default()).collect();
        vals.sort_by(|a, b| a.total_cmp(b));
        vals.dedup();
        let dt = cats.iter().map(|(c, _)| c.dtype()).reduce(|a, b| a.promote(b).unwrap_or(DType::F64)).unwrap_or(DType::F64);
        let arr = ArrayData::from_vec(vals);
        return Some((arr.cast(dt).unwrap_or_else(|| ArrayData::from_vec(Vec::<f64>::new())), false));
    }
    union.sort_by(|a, b| natcmp(a, b));
    Some((ArrayData::from_vec(union), false))
}

fn codes_dtype(n: usize) -> DType {
    // pandas picks the smallest signed type that holds the category count.
    if n < i8::MAX as usize {
        DType::I8
    } else if n < i16::MAX as usize {
        DType::I16
    } else if n < i32::MAX as usize {
        DType::I32
    } else {
        DType::I64
    }
}

/// Streams one output column.
struct ColWriter {
    out: OutCol,
    values: Appender,
    mask: Option<Appender>,
}

impl ColWriter {
    fn create(store: &dyn Store, path: &str, out: OutCol, n: u64, opts: &WriteOptions) -> Result<Self> {
        let app = |p: &str, d: DType| Appender::create(store, p, d, &[n], Purpose::Dense, opts);
        Ok(match &out {
            OutCol::Num(d) => {
                let values = app(path, *d)?;
                store.set_attrs(path, &Encoding::Array.attrs())?;
                ColWriter { out, values, mask: None }
            }
            OutCol::Obj => {
                let values = app(path, DType::String)?;
                store.set_attrs(path, &Encoding::StringArray.attrs())?;
                ColWriter { out, values, mask: None }
            }
            OutCol::NInt(_) | OutCol::NBool | OutCol::Str(_) => {
                let (enc, d) = match &out {
                    OutCol::NInt(d) => (Encoding::NullableInteger, *d),
                    OutCol::NBool => (Encoding::NullableBoolean, DType::Bool),
                    _ => (Encoding::NullableString, DType::String),
                };
                store.create_group(path)?;
                let mut attrs = enc.attrs();
                if let OutCol::Str(na) = &out {
                    attrs.insert("na-value".into(), AttrValue::String(na.clone()));
                }
                store.set_attrs(path, &attrs)?;
                let values = app(&join_path(path, "values"), d)?;
                let mask = app(&join_path(path, "mask"), DType::Bool)?;
                // Sub-elements carry their own encodings, as anndata's write_elem leaves them.
                let venc = if d == DType::String { Encoding::StringArray } else { Encoding::Array };
                store.set_attrs(&join_path(path, "values"), &venc.attrs())?;
                store.set_attrs(&join_path(path, "mask"), &Encoding::Array.attrs())?;
                ColWriter { out, values, mask: Some(mask) }
            }
            OutCol::Cat { categories, ordered, .. } => {
                store.create_group(path)?;
                let mut attrs = Encoding::Categorical.attrs();
                attrs.insert("ordered".into(), AttrValue::Bool(*ordered));
                store.set_attrs(path, &attrs)?;
                adcat_format::frame::write_array(store, &join_path(path, "categories"), categories, opts)?;
                let values = app(&join_path(path, "codes"), codes_dtype(categories.len()))?;
                store.set_attrs(&join_path(path, "codes"), &Encoding::Array.attrs())?;
                ColWriter { out, values, mask: None }
            }
        })
    }

    fn vals_dtype(&self) -> DType {
        match &self.out {
            OutCol::Num(d) | OutCol::NInt(d) => *d,
            OutCol::NBool => DType::Bool,
            OutCol::Str(_) | OutCol::Obj => DType::String,
            OutCol::Cat { categories, .. } => codes_dtype(categories.len()),
        }
    }

    fn push_missing(&mut self, store: &dyn Store, n: u64) -> Result<()> {
        let d = self.vals_dtype();
        let values = match &self.out {
            OutCol::Num(_) => ArrayData::from_vec(vec![f64::NAN; n as usize]).cast(d).unwrap_or_else(|| ArrayData::zeros(d, &[n])),
            OutCol::Cat { .. } => ArrayData::from_vec(vec![-1i64; n as usize]).cast(d).unwrap_or_else(|| ArrayData::zeros(d, &[n])),
            _ => ArrayData::zeros(d, &[n]),
        };
        self.values.push(store, values)?;
        if let Some(m) = self.mask.as_mut() {
            m.push(store, ArrayData::from_vec(vec![true; n as usize]))?;
        }
        Ok(())
    }

    /// Push rows `s..e` of input `i`'s column at `path` (kind `kind`).
    #[allow(clippy::too_many_arguments)]
    fn push_rows(&mut self, src: &dyn Store, path: &str, kind: &ColKind, input: usize, s: u64, e: u64, store: &dyn Store) -> Result<()> {
        let n = (e - s) as usize;
        let d = self.vals_dtype();
        let (values, mask): (ArrayData, Vec<bool>) = match kind {
            ColKind::Num(_) | ColKind::Str => (src.read_rows(path, s, e)?, vec![false; n]),
            ColKind::NInt(_) | ColKind::NBool | ColKind::NStr(_) => {
                let v = src.read_rows(&join_path(path, "values"), s, e)?;
                let m = src.read_rows(&join_path(path, "mask"), s, e)?;
                let m = match m {
                    ArrayData::Bool(a) => a.iter().copied().collect(),
                    other => other.to_i64_vec().unwrap_or_default().iter().map(|&x| x != 0).collect(),
                };
                (v, m)
            }
            ColKind::Cat { categories, .. } => {
                let codes = src.read_rows(&join_path(path, "codes"), s, e)?.to_i64_vec().unwrap_or_default();
                match &self.out {
                    OutCol::Cat { maps, .. } => {
                        let map = maps.get(input).and_then(|m| m.as_ref());
                        let c: Vec<i64> = codes.iter().map(|&c| if c < 0 { -1 } else { map.and_then(|m| m.get(c as usize).copied()).unwrap_or(-1) }).collect();
                        (ArrayData::from_vec(c), vec![false; n])
                    }
                    _ => {
                        // Categorical written as strings (pandas object fallback).
                        let labels = cat_labels(categories);
                        let v: Vec<String> = codes.iter().map(|&c| if c < 0 { String::new() } else { labels.get(c as usize).cloned().unwrap_or_default() }).collect();
                        let m = codes.iter().map(|&c| c < 0).collect();
                        (ArrayData::from_vec(v), m)
                    }
                }
            }
        };
        let values = if values.dtype() == d {
            values
        } else {
            values.cast(d).ok_or_else(|| ConcatError::unsupported(path, format!("cannot convert {} to {d}", values.dtype())))?
        };
        // Plain float output from a nullable input: masked entries become NaN.
        let values = if matches!(self.out, OutCol::Num(_)) && mask.iter().any(|&m| m) {
            let mut f = values.to_f64_vec().unwrap_or_default();
            for (x, &m) in f.iter_mut().zip(&mask) {
                if m {
                    *x = f64::NAN;
                }
            }
            ArrayData::from_vec(f).cast(d).unwrap_or(values)
        } else {
            values
        };
        self.values.push(store, values)?;
        if let Some(m) = self.mask.as_mut() {
            m.push(store, ArrayData::from_vec(mask))?;
        }
        Ok(())
    }

    fn finish(self, store: &dyn Store) -> Result<()> {
        self.values.finish(store)?;
        if let Some(m) = self.mask {
            m.finish(store)?;
        }
        Ok(())
    }
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

/// Length of a 1-d column-like element (array, or values of a masked/categorical group).
pub fn element_len(store: &dyn Store, path: &str) -> std::result::Result<u64, adcat_format::FormatError> {
    let leaf = match detect(store, path)?.encoding {
        Encoding::Categorical => join_path(path, "codes"),
        Encoding::NullableInteger | Encoding::NullableBoolean | Encoding::NullableString => join_path(path, "values"),
        _ => path.to_owned(),
    };
    Ok(store.array_meta(&leaf)?.shape.first().copied().unwrap_or(0))
}

/// Rows `s..e` of a string-like column (index) as strings; missing values print as "nan".
pub fn read_strings(store: &dyn Store, path: &str, kind: &ColKind, s: u64, e: u64) -> Result<Vec<String>> {
    let strings = |a: ArrayData| -> Vec<String> {
        match a {
            ArrayData::String(v) => v.iter().cloned().collect(),
            other => other.to_f64_vec().unwrap_or_default().iter().map(|x| x.to_string()).collect(),
        }
    };
    Ok(match kind {
        ColKind::Str | ColKind::Num(_) => strings(store.read_rows(path, s, e)?),
        ColKind::NStr(_) | ColKind::NInt(_) | ColKind::NBool => {
            let v = strings(store.read_rows(&join_path(path, "values"), s, e)?);
            let m = store.read_rows(&join_path(path, "mask"), s, e)?.to_i64_vec().unwrap_or_default();
            v.into_iter().zip(m).map(|(x, m)| if m != 0 { "nan".to_owned() } else { x }).collect()
        }
        ColKind::Cat { categories, .. } => {
            let labels = cat_labels(categories);
            let codes = store.read_rows(&join_path(path, "codes"), s, e)?.to_i64_vec().unwrap_or_default();
            codes.iter().map(|&c| if c < 0 { "nan".to_owned() } else { labels.get(c as usize).cloned().unwrap_or_default() }).collect()
        }
    })
}

/// Write the concatenated index as anndata 0.13.4 with pandas 3 does
/// (`nullable-string-array`, na NaN), streaming each input's names in blocks.
pub fn write_index_stream(parts: &[IndexPart<'_>], out: &dyn Store, path: &str, opts: &WriteOptions, block_rows: u64, dry: bool) -> Result<()> {
    let total: u64 = parts.iter().map(|p| p.n).sum();
    let mut w = ColWriter::create(out, path, OutCol::Str("NaN".into()), total, opts)?;
    if dry {
        return Ok(());
    }
    for p in parts {
        let kind = col_kind(p.store, &p.path).map_err(|e| at_input(p.store, e))?;
        let mut s = 0;
        while s < p.n {
            let e = (s + block_rows.max(1)).min(p.n);
            let mut names = read_strings(p.store, &p.path, &kind, s, e).map_err(|e| at_input(p.store, e))?;
            if !p.suffix.is_empty() {
                for n in &mut names {
                    n.push_str(&p.suffix);
                }
            }
            let k = names.len();
            w.values.push(out, ArrayData::from_vec(names))?;
            if let Some(m) = w.mask.as_mut() {
                m.push(out, ArrayData::from_vec(vec![false; k]))?;
            }
            s = e;
        }
    }
    w.finish(out)
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

fn at_input(store: &dyn Store, e: ConcatError) -> ConcatError {
    match e {
        ConcatError::Format(source) => ConcatError::Input { file: store.location().to_owned(), source },
        o => o,
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
        _ => crate::join_keys(frames, join),
    }
}

/// Concatenate dataframes along rows into `out_path`, streaming each column.
/// `index` is the new index; `label` adds a categorical column with `keys` as categories.
/// Returns the columns dropped by an inner join. `dry`: create every element but move no
/// data (planning).
#[allow(clippy::too_many_arguments)]
pub fn concat_frames(
    frames: &[FrameSource<'_>],
    join: Join,
    index: &[IndexPart<'_>],
    label: Option<(&str, &[String])>,
    out: &dyn Store,
    out_path: &str,
    opts: &WriteOptions,
    block_rows: u64,
    dry: bool,
) -> Result<Vec<String>> {
    let cols_per: Vec<Vec<String>> = frames.iter().map(|f| f.columns.clone()).collect();
    let mut columns = join_columns(&cols_per, join);
    let dropped: Vec<String> = join_columns(&cols_per, Join::Outer).into_iter().filter(|c| !columns.contains(c)).collect();
    let total: u64 = frames.iter().map(|f| f.n).sum();
    out.create_group(out_path)?;
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
    out.set_attrs(out_path, &attrs)?;
    write_index_stream(index, out, &join_path(out_path, &key), opts, block_rows, dry)?;
    for name in &columns {
        let kinds: Vec<Option<ColKind>> = frames
            .iter()
            .map(|f| if f.columns.contains(name) { col_kind(f.store, &join_path(&f.path, name)).map(Some).map_err(|e| at_input(f.store, e)) } else { Ok(None) })
            .collect::<Result<_>>()?;
        let inserts: Vec<bool> = frames.iter().map(|f| f.n > 0 || !f.columns.is_empty()).collect();
        let oc = resolve_obj(unify(&join_path(out_path, name), &kinds, &inserts)?, frames, name, block_rows)?;
        let mut w = ColWriter::create(out, &join_path(out_path, name), oc, total, opts)?;
        if dry {
            continue;
        }
        for (i, (f, k)) in frames.iter().zip(&kinds).enumerate() {
            match k {
                None => w.push_missing(out, f.n)?,
                Some(k) => {
                    let p = join_path(&f.path, name);
                    let mut s = 0;
                    while s < f.n {
                        let e = (s + block_rows.max(1)).min(f.n);
                        w.push_rows(f.store, &p, k, i, s, e, out).map_err(|e| at_input(f.store, e))?;
                        s = e;
                    }
                }
            }
        }
        w.finish(out)?;
    }
    if let Some((name, keys)) = label {
        // Categorical of the input number per row, streamed.
        let categories = ArrayData::from_vec(keys.to_vec());
        let d = codes_dtype(keys.len());
        let mut w = ColWriter::create(out, &join_path(out_path, name), OutCol::Cat { categories, ordered: false, maps: vec![] }, total, opts)?;
        if dry {
            return Ok(dropped);
        }
        for (i, f) in frames.iter().enumerate() {
            let mut s = 0;
            while s < f.n {
                let e = (s + block_rows.max(1)).min(f.n);
                let codes = ArrayData::from_vec(vec![i as i64; (e - s) as usize]);
                w.values.push(out, codes.cast(d).unwrap_or(codes))?;
                s = e;
            }
        }
        w.finish(out)?;
    }
    Ok(dropped)
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


