//! Dataframe columns along the concatenation axis: how an input column is stored
//! ([`ColKind`]), anndata's dtype unification into the output's type ([`OutCol`], and
//! [`ColumnOut`] as a task of the plan carries it), creating the output column, and
//! converting an input's rows into what the output stores.

use crate::natsort::natcmp;
use crate::{ConcatError, Result};
use adcat_format::layout::{Purpose, WriteOptions};
use adcat_format::stream::Appender;
use adcat_format::{detect, Encoding};
use adcat_store::{join_path, ArrayData, AttrValue, DType, Store};
use serde::{Deserialize, Serialize};
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

pub(crate) fn cat_labels(c: &ArrayData) -> Vec<String> {
    match c.as_strings() {
        Some(s) => s.iter().cloned().collect(),
        None => c.to_f64_vec().unwrap_or_default().iter().map(|v| v.to_string()).collect(),
    }
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

pub(crate) fn codes_dtype(n: usize) -> DType {
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

/// A column's output type as the plan carries it to the tasks that write its rows
/// (categories, flags and attributes are written by planning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnOut {
    /// `array`; rows an input lacks, and masked input values, hold NaN.
    Array {
        /// Value dtype.
        #[serde(with = "crate::serde_text::dtype")]
        dtype: DType,
    },
    /// `string-array` (pandas' object column of labels; nothing is missing).
    StringArray,
    /// `nullable-integer`.
    NullableInteger {
        /// Value dtype.
        #[serde(with = "crate::serde_text::dtype")]
        dtype: DType,
    },
    /// `nullable-boolean`.
    NullableBoolean,
    /// `nullable-string-array`.
    NullableString,
    /// `categorical`: per source, its codes onto the unified categories (None: the
    /// source lacks the column or is not categorical).
    Categorical {
        /// Codes dtype.
        #[serde(with = "crate::serde_text::dtype")]
        codes: DType,
        /// Old code -> new code, per source.
        maps: Vec<Option<Vec<i64>>>,
    },
    /// The label column: a categorical whose code is the source's number.
    Label {
        /// Codes dtype.
        #[serde(with = "crate::serde_text::dtype")]
        codes: DType,
    },
    /// The index: each source's names as strings with its suffix (`index_unique`),
    /// stored as a nullable string array.
    Index {
        /// Per source, appended to every name.
        suffixes: Vec<String>,
    },
}

impl ColumnOut {
    /// The array holding the values (relative to the column) and whether a `mask`
    /// array is beside it.
    pub fn values_array(&self) -> (&'static str, bool) {
        match self {
            ColumnOut::Array { .. } | ColumnOut::StringArray => ("", false),
            ColumnOut::Categorical { .. } | ColumnOut::Label { .. } => ("codes", false),
            _ => ("values", true),
        }
    }

    /// dtype of the values array.
    pub fn values_dtype(&self) -> DType {
        match self {
            ColumnOut::Array { dtype } | ColumnOut::NullableInteger { dtype } => *dtype,
            ColumnOut::Categorical { codes, .. } | ColumnOut::Label { codes } => *codes,
            ColumnOut::NullableBoolean => DType::Bool,
            ColumnOut::StringArray | ColumnOut::NullableString | ColumnOut::Index { .. } => DType::String,
        }
    }
}

impl OutCol {
    /// What the plan's tasks need of it.
    pub fn spec(&self) -> ColumnOut {
        match self {
            OutCol::Num(d) => ColumnOut::Array { dtype: *d },
            OutCol::NInt(d) => ColumnOut::NullableInteger { dtype: *d },
            OutCol::NBool => ColumnOut::NullableBoolean,
            OutCol::Str(_) => ColumnOut::NullableString,
            OutCol::Obj => ColumnOut::StringArray,
            OutCol::Cat { categories, maps, .. } => ColumnOut::Categorical { codes: codes_dtype(categories.len()), maps: maps.clone() },
        }
    }
}

/// Create output column `path` of type `out` and `n` rows: its group, attributes and
/// categories, and its arrays with their final length, for tasks to fill.
pub fn create_column(store: &dyn Store, path: &str, out: &OutCol, n: u64, opts: &WriteOptions) -> Result<()> {
    let array = |p: &str, d: DType, enc: Encoding| -> Result<()> {
        Appender::create(store, p, d, &[n], Purpose::Cells, opts)?;
        Ok(store.set_attrs(p, &enc.attrs())?)
    };
    match out {
        OutCol::Num(d) => array(path, *d, Encoding::Array),
        OutCol::Obj => array(path, DType::String, Encoding::StringArray),
        OutCol::NInt(_) | OutCol::NBool | OutCol::Str(_) => {
            let (enc, d, venc) = match out {
                OutCol::NInt(d) => (Encoding::NullableInteger, *d, Encoding::Array),
                OutCol::NBool => (Encoding::NullableBoolean, DType::Bool, Encoding::Array),
                _ => (Encoding::NullableString, DType::String, Encoding::StringArray),
            };
            store.create_group(path)?;
            let mut attrs = enc.attrs();
            if let OutCol::Str(na) = out {
                attrs.insert("na-value".into(), AttrValue::String(na.clone()));
            }
            store.set_attrs(path, &attrs)?;
            // Sub-elements carry their own encodings, as anndata's write_elem leaves them.
            array(&join_path(path, "values"), d, venc)?;
            array(&join_path(path, "mask"), DType::Bool, Encoding::Array)
        }
        OutCol::Cat { categories, ordered, .. } => {
            store.create_group(path)?;
            let mut attrs = Encoding::Categorical.attrs();
            attrs.insert("ordered".into(), AttrValue::Bool(*ordered));
            store.set_attrs(path, &attrs)?;
            adcat_format::frame::write_array(store, &join_path(path, "categories"), categories, opts)?;
            array(&join_path(path, "codes"), codes_dtype(categories.len()), Encoding::Array)
        }
    }
}

/// Rows `s..e` of a source column (`kind` None: the source lacks it) as output column
/// `out` stores them: values, and the mask (true: missing).
#[derive(Debug)]
pub struct SourceRows<'a> {
    /// The source's store.
    pub store: &'a dyn Store,
    /// Column path in it.
    pub path: &'a str,
    /// How it is stored; None when the source lacks the column.
    pub kind: Option<&'a ColKind>,
    /// Source number (position among the column's sources).
    pub source: usize,
}

impl SourceRows<'_> {
    /// Rows `s..e` converted to `out`'s values and mask.
    pub fn convert(&self, out: &ColumnOut, s: u64, e: u64) -> Result<(ArrayData, Vec<bool>)> {
        let n = (e - s) as usize;
        let d = out.values_dtype();
        let (values, mask) = match (out, self.kind) {
            (ColumnOut::Label { .. }, _) => (ArrayData::from_vec(vec![self.source as i64; n]), vec![false; n]),
            (ColumnOut::Index { suffixes }, Some(kind)) => {
                let mut names = read_strings(self.store, self.path, kind, s, e)?;
                let suffix = suffixes.get(self.source).map_or("", String::as_str);
                if !suffix.is_empty() {
                    names.iter_mut().for_each(|n| n.push_str(suffix));
                }
                (ArrayData::from_vec(names), vec![false; n])
            }
            (_, None) => (missing(out, n), vec![true; n]),
            (_, Some(kind)) => self.read(out, kind, s, e)?,
        };
        let values = if values.dtype() == d {
            values
        } else {
            let from = values.dtype();
            values.cast(d).ok_or_else(|| ConcatError::unsupported(self.path, format!("cannot convert {from} to {d}")))?
        };
        Ok((nan_where_masked(out, values, &mask), mask))
    }

    fn read(&self, out: &ColumnOut, kind: &ColKind, s: u64, e: u64) -> Result<(ArrayData, Vec<bool>)> {
        let (src, path, n) = (self.store, self.path, (e - s) as usize);
        Ok(match kind {
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
                match out {
                    ColumnOut::Categorical { maps, .. } => {
                        let map = maps.get(self.source).and_then(|m| m.as_ref());
                        let c: Vec<i64> = codes.iter().map(|&c| if c < 0 { -1 } else { map.and_then(|m| m.get(c as usize).copied()).unwrap_or(-1) }).collect();
                        (ArrayData::from_vec(c), vec![false; n])
                    }
                    _ => {
                        // Categorical written as strings (pandas' object fallback).
                        let labels = cat_labels(categories);
                        let v: Vec<String> = codes.iter().map(|&c| if c < 0 { String::new() } else { labels.get(c as usize).cloned().unwrap_or_default() }).collect();
                        (ArrayData::from_vec(v), codes.iter().map(|&c| c < 0).collect())
                    }
                }
            }
        })
    }
}

/// `n` rows an input lacks: NaN, code -1, or zeros under a mask.
fn missing(out: &ColumnOut, n: usize) -> ArrayData {
    match out {
        ColumnOut::Array { .. } => ArrayData::from_vec(vec![f64::NAN; n]),
        ColumnOut::Categorical { .. } => ArrayData::from_vec(vec![-1i64; n]),
        _ => ArrayData::zeros(out.values_dtype(), &[n as u64]),
    }
}

/// A plain float output of nullable input values: masked entries become NaN.
fn nan_where_masked(out: &ColumnOut, values: ArrayData, mask: &[bool]) -> ArrayData {
    if !matches!(out, ColumnOut::Array { .. }) || !mask.iter().any(|&m| m) {
        return values;
    }
    let d = values.dtype();
    let mut f = values.to_f64_vec().unwrap_or_default();
    for (x, &m) in f.iter_mut().zip(mask) {
        if m {
            *x = f64::NAN;
        }
    }
    ArrayData::from_vec(f).cast(d).unwrap_or(values)
}
