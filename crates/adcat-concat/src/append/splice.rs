//! Growing the target's elements by delta's rows, and replacing its off-axis elements
//! with delta's (see [`super`]).
//!
//! An element grows in place when its array can be resized (every zarr array; HDF5
//! datasets that are chunked and unlimited, as anndata writes sparse matrices);
//! otherwise, or when its dtype must widen (category codes, `indptr`), it is rebuilt
//! in the target from the store's rows and delta's.

use super::{refused, STORE_KEY};
use crate::columns::{cat_labels, col_kind, ColKind, OutCol, SourceRows};
use crate::index::Join;
use crate::inputs::index_path;
use crate::options::{ConcatOptions, Report};
use crate::{At, ConcatError, Result};
use adcat_format::layout::{element_bytes, Purpose, WriteOptions};
use adcat_format::stream::Appender;
use adcat_format::{detect, Encoding, FormatError};
use adcat_store::{join_path, ArrayData, ArraySpec, AttrValue, Compression, DType, NodeKind, Store, StoreError};
use std::collections::{HashMap, HashSet};

/// Where copied rows come from.
#[derive(Debug, Clone, Copy)]
enum Src {
    /// The store as it was (its rows).
    Store,
    /// Delta (the new rows).
    Delta,
}

/// How delta's (or the store's) values change on their way into the target.
enum Map {
    /// Unchanged.
    Same,
    /// Plus a constant (`indptr` after the store's entries, label codes).
    Add(i64),
    /// Category codes through a table (`-1`, missing, stays).
    Codes(Vec<i64>),
}

impl Map {
    fn apply(&self, a: ArrayData, path: &str) -> Result<ArrayData> {
        let ints = |a: &ArrayData| a.to_i64_vec().ok_or_else(|| ConcatError::Output(FormatError::invalid(path, "expected integers")));
        Ok(match self {
            Map::Same => a,
            Map::Add(k) => ArrayData::from_vec(ints(&a)?.into_iter().map(|v| v + k).collect()),
            Map::Codes(t) => ArrayData::from_vec(ints(&a)?.into_iter().map(|c| if c < 0 { c } else { t.get(c as usize).copied().unwrap_or(-1) }).collect()),
        })
    }
}

/// The largest value an integer dtype holds.
fn int_max(d: DType) -> i64 {
    match d {
        DType::I8 => i8::MAX.into(),
        DType::I16 => i16::MAX.into(),
        DType::I32 => i32::MAX.into(),
        DType::U8 => u8::MAX.into(),
        DType::U16 => u16::MAX.into(),
        DType::U32 => u32::MAX.into(),
        _ => i64::MAX,
    }
}

/// `have` when it holds `max`, else the smallest signed type that does.
fn wide_enough(have: DType, max: i64) -> DType {
    if max <= int_max(have) {
        have
    } else if max <= i32::MAX.into() {
        DType::I32
    } else {
        DType::I64
    }
}

fn out_err(e: impl Into<FormatError>) -> ConcatError {
    ConcatError::Output(e.into())
}

/// `c` if adcat can write it, else the format's default (`None`): a codec read but not
/// written (zarr v2 lz4/bz2/lzma, HDF5 plugin filters) must not fail the append.
fn writable(c: Compression) -> Option<Compression> {
    (!matches!(c, Compression::Other(_))).then_some(c)
}

/// The matrix elements along obs of `store`: X, layers, obsm entries, raw/X.
pub(crate) fn matrix_elements(store: &dyn Store) -> Result<Vec<String>> {
    let mut out = vec![];
    for el in ["X", "raw/X"] {
        if store.exists(el).at(store)? {
            out.push(el.to_owned());
        }
    }
    for group in ["layers", "obsm"] {
        if store.node_kind(group).at(store)? == Some(NodeKind::Group) {
            out.extend(store.list(group).at(store)?.into_iter().map(|k| join_path(group, &k)));
        }
    }
    Ok(out)
}

/// The columns of dataframe `frame`, in order.
fn columns(store: &dyn Store, frame: &str) -> Result<Vec<String>> {
    Ok(store.attr(frame, "column-order").at(store)?.and_then(|v| v.as_strings()).unwrap_or_default())
}

/// One append's splice of delta into the target.
pub(crate) struct Splice<'a> {
    store: &'a dyn Store,
    t: &'a dyn Store,
    d: &'a dyn Store,
    n_old: u64,
    n_new: u64,
    label: Option<&'a str>,
    opts: &'a ConcatOptions,
    /// How the splice writes what it creates: the store's codec (that of its obs index),
    /// so a store keeps its codecs.
    write: WriteOptions,
    /// As `write`, with the codec of the store's X, for matrices it creates.
    matrix_write: WriteOptions,
}

impl<'a> Splice<'a> {
    pub(crate) fn new(stores: super::AppendStores<'a>, n_old: u64, n_new: u64, opts: &'a ConcatOptions) -> Self {
        let codec = |paths: &[&str]| paths.iter().find_map(|p| stores.store.array_meta(p).ok()).and_then(|m| writable(m.compression));
        let index = index_path(stores.store, "obs").unwrap_or_default();
        let write = WriteOptions { max_memory: opts.write.max_memory, compression: codec(&[&index, &join_path(&index, "values")]), ..WriteOptions::default() };
        let matrix_write = WriteOptions { compression: codec(&["X/data", "X"]).or(write.compression.clone()), ..write.clone() };
        Splice { store: stores.store, t: stores.target, d: stores.scratch, n_old, n_new, label: opts.label.as_deref(), opts, write, matrix_write }
    }

    /// Grow every element; report what the merge leaves out of the store.
    pub(crate) fn run(&self, report: &mut Report) -> Result<()> {
        self.check_raw()?;
        self.obs()?;
        for el in self.matrix_pairs()? {
            self.matrix(&el)?;
        }
        self.note_dropped(report)?;
        if self.opts.pairwise {
            self.obsp()?;
        } else {
            self.replace("obsp")?;
        }
        for p in ["var", "varm", "varp", "uns", "raw/var", "raw/varm"] {
            self.replace(p)?;
        }
        Ok(())
    }

    fn refuse(&self, path: &str, why: impl Into<String>) -> ConcatError {
        refused(self.store, path, why)
    }

    /// raw grows when every new input has one (else concatenating at once drops it);
    /// its var keeps the store's names first (new ones after: raw/X widens).
    fn check_raw(&self) -> Result<()> {
        let has = |s: &dyn Store| -> Result<bool> { Ok(s.node_kind("raw").map_err(out_err)? == Some(NodeKind::Group)) };
        if !has(self.t)? {
            return Ok(());
        }
        if !has(self.d)? {
            return Err(self.refuse("raw", "would be dropped: some new inputs have no raw, and anndata.concat keeps raw only when every input has it; give them raw, or concatenate into a new store"));
        }
        let old = adcat_format::frame::read_index(self.t, "raw/var").map_err(out_err)?;
        let new = adcat_format::frame::read_index(self.d, "raw/var").map_err(out_err)?;
        if !new.starts_with(&old) {
            return Err(self.refuse("raw/var", format!("would change (the store's raw has {} genes, the join with the new inputs' raw {}): the store's raw/X columns would move; concatenate into a new store", old.len(), new.len())));
        }
        Ok(())
    }

    /// obs: the index and every column grow (see [`Splice::frame`]).
    fn obs(&self) -> Result<()> {
        if let Some(l) = self.label {
            if !columns(self.t, "obs")?.iter().any(|c| c == l) {
                return Err(self.refuse(&join_path("obs", l), format!("does not exist: the store was not built with --label {l}; append without --label, or concatenate into a new store")));
            }
        }
        self.frame("obs", self.label)
    }

    /// A dataframe along obs (obs, or an obsm entry): the index and every column grow;
    /// a column whose type changes (or that is new: the store's cells get missing
    /// values) is rebuilt; dropped columns are refused. `label` is obs's label column.
    fn frame(&self, f: &str, label: Option<&str>) -> Result<()> {
        let (tc, dc) = (columns(self.t, f)?, columns(self.d, f)?);
        let dset: HashSet<&String> = dc.iter().collect();
        if let Some(c) = tc.iter().find(|c| !dset.contains(c)) {
            return Err(self.refuse(&join_path(f, c), "would be dropped: some new inputs lack it, and an inner join keeps only the columns every input has; append with --join outer (their cells get missing values)"));
        }
        let (ti, di) = (index_path(self.t, f).map_err(out_out)?, index_path(self.d, f).map_err(out_out)?);
        self.index(&ti, &di)?;
        let tset: HashSet<&String> = tc.iter().collect();
        for c in &dc {
            let p = join_path(f, c);
            if !tset.contains(c) {
                self.rebuild_column(&p)?;
            } else if label == Some(c.as_str()) {
                self.column(&p, &p, true)?;
            } else if !self.same_column_type(&p)? {
                self.rebuild_column(&p)?;
            } else {
                self.column(&p, &p, false)?;
            }
        }
        if dc != tc {
            // Concatenating at once orders the columns by first appearance and puts the
            // label last.
            let mut order: Vec<String> = dc.iter().filter(|c| Some(c.as_str()) != label).cloned().collect();
            order.extend(label.map(str::to_owned));
            let mut attrs = self.t.attrs(f).map_err(out_err)?;
            attrs.insert("column-order".into(), AttrValue::Strings(order));
            self.t.set_attrs(f, &attrs).map_err(out_err)?;
        }
        Ok(())
    }

    /// A dataframe's index grows in the store's encoding: a string-array index (anndata
    /// < 0.13, converted stores) takes the names of delta's nullable-string index as they
    /// are — an index has no missing values, so both read back as the same names.
    fn index(&self, ti: &str, di: &str) -> Result<()> {
        let te = detect(self.t, ti).map_err(out_err)?.encoding;
        let de = detect(self.d, di).map_err(out_err)?.encoding;
        if (te, de) == (Encoding::StringArray, Encoding::NullableString) {
            let (values, mask) = (join_path(di, "values"), join_path(di, "mask"));
            let n = self.d.array_meta(&mask).map_err(out_err)?.shape.first().copied().unwrap_or(0);
            let any_missing = (0..n).step_by(1 << 20).try_fold(false, |acc, s| -> Result<bool> {
                let m = self.d.read_rows(&mask, s, (s + (1 << 20)).min(n)).map_err(out_err)?;
                Ok(acc || m.to_i64_vec().is_some_and(|v| v.iter().any(|&x| x != 0)))
            })?;
            if !any_missing {
                return self.grow(ti, &values, 0, &Map::Same, None);
            }
        }
        self.column(ti, di, false)
    }

    /// Whether the target's column `path` has delta's type (categoricals: any
    /// categories), so that it grows rather than being rebuilt.
    fn same_column_type(&self, path: &str) -> Result<bool> {
        let tk = col_kind(self.t, path).map_err(out_out)?;
        let dk = col_kind(self.d, path).map_err(out_out)?;
        Ok(match (&tk, &dk) {
            (ColKind::Cat { categories: a, ordered: x }, ColKind::Cat { categories: b, ordered: y }) => x == y && (a.dtype() == DType::String) == (b.dtype() == DType::String),
            _ => tk == dk,
        })
    }

    /// Rebuild the target's column `path` in delta's type: the store's rows converted as
    /// concatenating at once converts them (missing values where the store lacks the
    /// column), then delta's rows.
    fn rebuild_column(&self, path: &str) -> Result<()> {
        let dk = col_kind(self.d, path).map_err(out_out)?;
        let sk = if self.store.exists(path).at(self.store)? { Some(col_kind(self.store, path).at(self.store)?) } else { None };
        let out = match &dk {
            ColKind::Num(d) => OutCol::Num(*d),
            ColKind::Str => OutCol::Obj,
            ColKind::NInt(d) => OutCol::NInt(*d),
            ColKind::NBool => OutCol::NBool,
            ColKind::NStr(na) => OutCol::Str(na.clone()),
            ColKind::Cat { categories, ordered } => {
                let map = match &sk {
                    Some(ColKind::Cat { categories: old, .. }) => Some(self.code_table(path, old, categories)?),
                    _ => None,
                };
                OutCol::Cat { categories: categories.clone(), ordered: *ordered, maps: vec![map] }
            }
        };
        if self.t.exists(path).map_err(out_err)? {
            self.t.delete(path).map_err(out_err)?;
        }
        let n = self.n_old + self.n_new;
        crate::columns::create_column(self.t, path, &out, n, &self.write).map_err(out_out)?;
        let spec = out.spec();
        let (leaf, masked) = spec.values_array();
        let (values, mask) = (join_path(path, leaf), join_path(path, "mask"));
        let src = SourceRows { store: self.store, path, kind: sk.as_ref(), source: 0 };
        let rows = (self.opts.write.max_memory / 8 / 64).max(1);
        let mut s = 0;
        while s < self.n_old {
            let e = (s + rows).min(self.n_old);
            let (v, m) = src.convert(&spec, s, e).at(self.store)?;
            self.t.write_rows(&values, s, &v).map_err(out_err)?;
            if masked {
                self.t.write_rows(&mask, s, &ArrayData::from_vec(m)).map_err(out_err)?;
            }
            s = e;
        }
        let dtype = self.t.array_meta(&values).map_err(out_err)?.dtype;
        self.copy(Src::Delta, &values, 0, self.n_new, &values, self.n_old, &Map::Same, dtype)?;
        if masked {
            self.copy(Src::Delta, &mask, 0, self.n_new, &mask, self.n_old, &Map::Same, DType::Bool)?;
        }
        Ok(())
    }

    /// Positions of the store's categories `old` among delta's `new`.
    fn code_table(&self, path: &str, old: &ArrayData, new: &ArrayData) -> Result<Vec<i64>> {
        let pos: HashMap<String, i64> = cat_labels(new).into_iter().enumerate().map(|(i, l)| (l, i as i64)).collect();
        let table: Vec<i64> = cat_labels(old).iter().map(|l| pos.get(l).copied().unwrap_or(-1)).collect();
        if table.contains(&-1) {
            return Err(ConcatError::Output(FormatError::invalid(path, "the merged categories lack some of the store's (please report this)")));
        }
        Ok(table)
    }

    /// The encoding of the target's `tp`, which delta's `dp` must share.
    fn encoding(&self, tp: &str, dp: &str) -> Result<Encoding> {
        let te = detect(self.t, tp).map_err(out_err)?.encoding;
        let de = detect(self.d, dp).map_err(out_err)?.encoding;
        if te != de {
            return Err(self.refuse(tp, format!("would change from {te} to {de}, as concatenating at once would make it; concatenate into a new store")));
        }
        Ok(te)
    }

    /// Refuse a dtype change of `tp` (values the store keeps as they are).
    fn same_dtype(&self, tp: &str, dp: &str) -> Result<DType> {
        let t = self.t.array_meta(tp).map_err(out_err)?.dtype;
        let d = self.d.array_meta(dp).map_err(out_err)?.dtype;
        if t != d {
            return Err(self.refuse(tp, format!("would change dtype from {} to {}, as concatenating at once would make it; concatenate into a new store", t.name(), d.name())));
        }
        Ok(t)
    }

    /// The dtype of matrix values `tp` after the append: delta's, which is the at-once
    /// dtype (numpy's promotion over the store and the inputs). A promotion rewrites the
    /// store's values of that element (and only them) in the wider type.
    fn promoted(&self, tp: &str, dp: &str) -> Result<DType> {
        let t = self.t.array_meta(tp).map_err(out_err)?.dtype;
        let d = self.d.array_meta(dp).map_err(out_err)?.dtype;
        if t != d && t.promote(d) != Some(d) {
            return Err(self.refuse(tp, format!("would change dtype from {} to {}; concatenate into a new store", t.name(), d.name())));
        }
        Ok(d)
    }

    /// A dataframe column (or index) `tp` of the target, grown by delta's `dp`.
    fn column(&self, tp: &str, dp: &str, is_label: bool) -> Result<()> {
        match self.encoding(tp, dp)? {
            Encoding::Array | Encoding::StringArray => {
                self.same_dtype(tp, dp)?;
                self.grow(tp, dp, 0, &Map::Same, None)
            }
            Encoding::NullableInteger | Encoding::NullableBoolean | Encoding::NullableString => {
                for part in ["values", "mask"] {
                    let (t, d) = (join_path(tp, part), join_path(dp, part));
                    self.same_dtype(&t, &d)?;
                    self.grow(&t, &d, 0, &Map::Same, None)?;
                }
                Ok(())
            }
            Encoding::Categorical if is_label => self.label_column(tp),
            Encoding::Categorical if tp == dp => self.categorical(tp),
            other => Err(self.refuse(tp, format!("is a {other} column, which adcat cannot append to"))),
        }
    }

    fn categories(&self, store: &dyn Store, path: &str) -> Result<ArrayData> {
        store.read_all(&join_path(path, "categories")).map_err(out_err)
    }

    /// A categorical: categories become delta's (the union, ordered as concatenating
    /// at once orders them); the store's codes are rewritten only if theirs move.
    fn categorical(&self, path: &str) -> Result<()> {
        let ordered = |s: &dyn Store| s.attr(path, "ordered").ok().flatten().and_then(|v| v.as_bool()).unwrap_or(false);
        if ordered(self.t) != ordered(self.d) {
            return Err(self.refuse(path, "would change between ordered and unordered categories; concatenate into a new store"));
        }
        let (tc, dc) = (self.categories(self.t, path)?, self.categories(self.d, path)?);
        if (tc.dtype() == DType::String) != (dc.dtype() == DType::String) {
            return Err(self.refuse(path, "would change the type of its categories; concatenate into a new store"));
        }
        let table = self.code_table(path, &tc, &dc)?;
        let codes = join_path(path, "codes");
        let have = self.t.array_meta(&codes).map_err(out_err)?.dtype;
        let want = wide_enough(have, dc.len() as i64 - 1);
        let unmoved = table.iter().enumerate().all(|(i, &c)| c == i as i64);
        if unmoved && want == have {
            self.grow(&codes, &codes, 0, &Map::Same, None)?;
        } else {
            self.rebuild(&codes, want, (&Map::Codes(table), &Map::Same), &codes, 0)?;
        }
        let cats = join_path(path, "categories");
        self.t.delete(&cats).map_err(out_err)?;
        adcat_format::copy::copy_element_to(self.d, &cats, self.t, &cats, &self.write).map_err(out_err)
    }

    /// The label column: the store's categories (its inputs' keys), then the new keys.
    fn label_column(&self, path: &str) -> Result<()> {
        let (tc, dc) = (self.categories(self.t, path)?, self.categories(self.d, path)?);
        let (Some(old), Some(new)) = (tc.as_strings(), dc.as_strings()) else {
            return Err(self.refuse(path, "is the label column but its categories are not strings; concatenate into a new store"));
        };
        let old: Vec<String> = old.iter().cloned().collect();
        let new: Vec<String> = new.iter().filter(|k| k.as_str() != STORE_KEY).cloned().collect();
        let known: HashSet<&String> = old.iter().collect();
        if let Some(k) = new.iter().find(|k| known.contains(k)) {
            return Err(self.refuse(path, format!("already has the category {k:?}: the new inputs' keys must differ from the store's ({} of them); give others with --keys", old.len())));
        }
        let codes = join_path(path, "codes");
        let have = self.t.array_meta(&codes).map_err(out_err)?.dtype;
        let want = wide_enough(have, (old.len() + new.len()) as i64 - 1);
        // Delta's code 0 is the store (no cells); its code k is the k-th new key.
        let shift = Map::Add(old.len() as i64 - 1);
        if want == have {
            self.grow(&codes, &codes, 0, &shift, None)?;
        } else {
            self.rebuild(&codes, want, (&Map::Same, &shift), &codes, 0)?;
        }
        let cats = join_path(path, "categories");
        self.t.delete(&cats).map_err(out_err)?;
        let all: Vec<String> = old.into_iter().chain(new).collect();
        adcat_format::frame::write_array(self.t, &cats, &ArrayData::from_vec(all), &self.write).map_err(out_err)
    }

    /// The matrices of target and delta to grow, which must be the same set: a layer or
    /// obsm entry new with these inputs (outer join) is written whole here, not listed.
    fn matrix_pairs(&self) -> Result<Vec<String>> {
        let t = matrix_elements(self.t)?;
        let d = matrix_elements(self.d)?;
        if let Some(e) = t.iter().find(|e| !d.contains(e)) {
            return Err(self.refuse(e, "would be dropped: some new inputs lack it, as concatenating at once would drop it; append with --join outer, or concatenate into a new store"));
        }
        for e in d.iter().filter(|e| !t.contains(e)) {
            if !(e.starts_with("obsm/") || e.starts_with("layers/")) || self.opts.join != Join::Outer {
                return Err(self.refuse(e, "is new (some new inputs have it): the store's cells have no values for it; concatenate into a new store"));
            }
            self.new_element(e)?;
        }
        Ok(t)
    }

    /// With --pairwise, obsp grows block-diagonally: the new inputs' block (delta's,
    /// whose store block is empty) after the store's, CSR as concatenating makes it.
    fn obsp(&self) -> Result<()> {
        let list = |s: &dyn Store| -> Result<Vec<String>> { if s.node_kind("obsp").map_err(out_err)? == Some(NodeKind::Group) { s.list("obsp").map_err(out_err) } else { Ok(vec![]) } };
        let (t, d) = (list(self.t)?, list(self.d)?);
        if let Some(k) = t.iter().find(|k| !d.contains(k)) {
            return Err(self.refuse(&join_path("obsp", k), "would be dropped: some new inputs lack it, and with an inner join --pairwise keeps the keys every input has; append with --join outer (their block is empty)"));
        }
        if !d.is_empty() && self.t.node_kind("obsp").map_err(out_err)?.is_none() {
            adcat_format::frame::write_dict(self.t, "obsp").map_err(out_err)?;
        }
        for k in &d {
            let el = join_path("obsp", k);
            if !t.contains(k) {
                self.new_square(&el)?;
            } else if self.encoding(&el, &el)? == Encoding::Csr {
                self.square(&el)?;
            } else {
                return Err(self.refuse(&el, "is dense: a cell-by-cell matrix stored dense cannot grow without rewriting it; store it as CSR or concatenate into a new store"));
            }
        }
        Ok(())
    }

    /// A CSR obsp entry of the store: rows after the store's, their columns shifted past
    /// the store's cells; the store's rows only widen.
    fn square(&self, el: &str) -> Result<()> {
        let n = self.n_old + self.n_new;
        self.grow_csr(el, &Map::Add(self.n_old as i64), n as i64)
    }

    /// Grow the target's CSR matrix `el` by delta's rows: entries after the store's
    /// (delta's column indices mapped by `columns`), `indptr` shifted by the store's entry
    /// count, dtypes widened as needed; its shape becomes (all rows, `width`).
    fn grow_csr(&self, el: &str, columns: &Map, width: i64) -> Result<()> {
        let (data, indices, indptr) = (join_path(el, "data"), join_path(el, "indices"), join_path(el, "indptr"));
        let dtype = self.promoted(&data, &data)?;
        let nnz0 = self.t.array_meta(&data).map_err(out_err)?.shape[0];
        let nnz1 = self.d.array_meta(&data).map_err(out_err)?.shape[0];
        self.grow(&data, &data, 0, &Map::Same, Some(dtype))?;
        let idx = self.t.array_meta(&indices).map_err(out_err)?.dtype;
        self.grow(&indices, &indices, 0, columns, Some(wide_enough(idx, width - 1)))?;
        let ptr = self.t.array_meta(&indptr).map_err(out_err)?.dtype;
        self.grow(&indptr, &indptr, 1, &Map::Add(nnz0 as i64), Some(wide_enough(ptr, (nnz0 + nnz1) as i64)))?;
        let mut attrs = self.t.attrs(el).map_err(out_err)?;
        attrs.insert("shape".into(), AttrValue::Ints(vec![(self.n_old + self.n_new) as i64, width]));
        self.t.set_attrs(el, &attrs).map_err(out_err)
    }

    /// An obsp key only the new inputs have (outer join): the store's rows are empty.
    fn new_square(&self, el: &str) -> Result<()> {
        let n = self.n_old + self.n_new;
        let (data, indices, indptr) = (join_path(el, "data"), join_path(el, "indices"), join_path(el, "indptr"));
        let dtype = |p: &str| -> Result<DType> { Ok(self.d.array_meta(p).map_err(out_err)?.dtype) };
        if detect(self.d, el).map_err(out_err)?.encoding != Encoding::Csr {
            return Err(self.refuse(el, "is new and not a csr_matrix; concatenate into a new store"));
        }
        let nnz1 = self.d.array_meta(&data).map_err(out_err)?.shape[0];
        let mut attrs = self.d.attrs(el).map_err(out_err)?;
        attrs.insert("shape".into(), AttrValue::Ints(vec![n as i64, n as i64]));
        self.t.create_group(el).map_err(out_err)?;
        self.t.set_attrs(el, &attrs).map_err(out_err)?;
        let none = |_: u64, _: u64| None;
        self.fresh(&data, dtype(&data)?, 0, &none, &data, 0, &Map::Same)?;
        self.fresh(&indices, wide_enough(dtype(&indices)?, n as i64 - 1), 0, &none, &indices, 0, &Map::Add(self.n_old as i64))?;
        let zeros = |s: u64, e: u64| Some(ArrayData::from_vec(vec![0i64; (e - s) as usize]));
        self.fresh(&indptr, wide_enough(dtype(&indptr)?, nnz1 as i64), self.n_old + 1, &zeros, &indptr, 1, &Map::Same)
    }

    /// A layer or obsm entry only the new inputs have (outer join): the store's cells
    /// hold the fill, as concatenating at once fills the inputs without it (dense: NaN,
    /// sparse: nothing stored, unless --fill-value), in delta's encoding and dtype.
    fn new_element(&self, el: &str) -> Result<()> {
        let fill = self.opts.fill_value;
        match detect(self.d, el).map_err(out_err)?.encoding {
            Encoding::Array => self.new_dense(el, fill.unwrap_or(f64::NAN)),
            Encoding::Csr => self.new_csr(el, fill.unwrap_or(0.0)),
            other => Err(self.refuse(el, format!("is new (some new inputs have it) and a {other}, which adcat cannot fill for the store's cells; concatenate into a new store"))),
        }
    }

    fn new_dense(&self, el: &str, fill: f64) -> Result<()> {
        let m = self.d.array_meta(el).map_err(out_err)?;
        let rest: Vec<u64> = m.shape.iter().skip(1).copied().collect();
        let width = rest.iter().product::<u64>().max(1);
        let front = |s: u64, e: u64| {
            let shape: Vec<u64> = std::iter::once(e - s).chain(rest.iter().copied()).collect();
            ArrayData::from_shape_vec(&shape, vec![fill; ((e - s) * width) as usize])
        };
        self.fresh(el, m.dtype, self.n_old, &front, el, 0, &Map::Same)?;
        self.t.set_attrs(el, &self.d.attrs(el).map_err(out_err)?).map_err(out_err)
    }

    /// A CSR matrix: with a fill other than 0 every entry of the store's rows is stored.
    fn new_csr(&self, el: &str, fill: f64) -> Result<()> {
        let mut attrs = self.d.attrs(el).map_err(out_err)?;
        let w = attrs.get("shape").and_then(|v| v.as_ints()).and_then(|s| s.get(1).copied()).unwrap_or(0).max(0) as u64;
        let per_row = if fill != 0.0 { w } else { 0 };
        let filled = self.n_old * per_row;
        let (data, indices, indptr) = (join_path(el, "data"), join_path(el, "indices"), join_path(el, "indptr"));
        let dtype = |p: &str| -> Result<DType> { Ok(self.d.array_meta(p).map_err(out_err)?.dtype) };
        let nnz1 = self.d.array_meta(&data).map_err(out_err)?.shape[0];
        self.t.create_group(el).map_err(out_err)?;
        attrs.insert("shape".into(), AttrValue::Ints(vec![(self.n_old + self.n_new) as i64, w as i64]));
        self.t.set_attrs(el, &attrs).map_err(out_err)?;
        self.fresh(&data, dtype(&data)?, filled, &|s, e| Some(ArrayData::from_vec(vec![fill; (e - s) as usize])), &data, 0, &Map::Same)?;
        let cols = |s: u64, e: u64| Some(ArrayData::from_vec((s..e).map(|k| (k % w.max(1)) as i64).collect::<Vec<_>>()));
        self.fresh(&indices, dtype(&indices)?, filled, &cols, &indices, 0, &Map::Same)?;
        let ptrs = |s: u64, e: u64| Some(ArrayData::from_vec((s..e).map(|r| (r * per_row) as i64).collect::<Vec<_>>()));
        let ptr = wide_enough(dtype(&indptr)?, (filled + nnz1) as i64);
        self.fresh(&indptr, ptr, self.n_old + 1, &ptrs, &indptr, 1, &Map::Add(filled as i64))
    }

    /// Create the target's `tp` in `dtype`, resizable (later appends grow it): `n_front`
    /// rows made by `front(start, end)`, then delta's `dp` from row `from`, mapped.
    #[allow(clippy::too_many_arguments)]
    fn fresh(&self, tp: &str, dtype: DType, n_front: u64, front: &dyn Fn(u64, u64) -> Option<ArrayData>, dp: &str, from: u64, map: &Map) -> Result<()> {
        let dm = self.d.array_meta(dp).map_err(out_err)?;
        let n1 = dm.shape.first().copied().unwrap_or(0).saturating_sub(from);
        let mut shape = dm.shape.clone();
        shape[0] = n_front + n1;
        let mut out = Appender::create(self.t, tp, dtype, &shape, Purpose::SparsePart, &self.matrix_write).map_err(out_err)?;
        let row = shape.iter().skip(1).product::<u64>().max(1) * element_bytes(dtype);
        let rows = ((self.opts.write.max_memory / 16) / row).max(1);
        let mut s = 0;
        while s < n_front {
            let e = (s + rows).min(n_front);
            let b = front(s, e).and_then(|b| b.cast(dtype)).ok_or_else(|| ConcatError::Output(FormatError::invalid(tp, format!("cannot write the fill as {}", dtype.name()))))?;
            out.push(self.t, b).map_err(out_err)?;
            s = e;
        }
        let mut k = 0;
        while k < n1 {
            let e = (k + rows).min(n1);
            let a = self.d.read_rows(dp, from + k, from + e).map_err(out_err)?;
            out.push(self.t, self.cast(map.apply(a, tp)?, dtype, tp)?).map_err(out_err)?;
            k = e;
        }
        out.finish(self.t).map_err(out_err)
    }

    fn matrix(&self, el: &str) -> Result<()> {
        match self.encoding(el, el)? {
            Encoding::Array => {
                let dtype = self.promoted(el, el)?;
                let (t, d) = (self.t.array_meta(el).map_err(out_err)?.shape, self.d.array_meta(el).map_err(out_err)?.shape);
                if t.get(1..) != d.get(1..) {
                    let dims = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" x ");
                    let instead = if el.starts_with("raw/") { "" } else { "pass --var-names with the store's genes, or " };
                    return Err(self.refuse(el, format!("is dense ({}) and its new rows are {}: appending cannot widen a dense matrix (new genes under --join outer); {instead}concatenate into a new store", dims(&t), dims(&d))));
                }
                self.grow(el, el, 0, &Map::Same, Some(dtype))
            }
            Encoding::Csr => self.csr(el),
            Encoding::DataFrame => self.frame(el, None),
            other => Err(self.refuse(el, format!("is a {other}, which adcat cannot append to; concatenate into a new store"))),
        }
    }

    /// A CSR matrix: entries after the store's, `indptr` shifted by the store's entry
    /// count; the width grows with new genes (X, layers and raw/X only).
    fn csr(&self, el: &str) -> Result<()> {
        let shape = |s: &dyn Store| -> Result<Vec<i64>> { Ok(s.attr(el, "shape").map_err(out_err)?.and_then(|v| v.as_ints()).unwrap_or_default()) };
        let (ts, ds) = (shape(self.t)?, shape(self.d)?);
        let (Some(&w0), Some(&w1)) = (ts.get(1), ds.get(1)) else {
            return Err(ConcatError::Output(FormatError::invalid(el, "a csr_matrix without a shape")));
        };
        let widens = el == "X" || el == "raw/X" || el.starts_with("layers/");
        if w1 < w0 || (w1 > w0 && !widens) {
            return Err(self.refuse(el, format!("would change width from {w0} to {w1}; concatenate into a new store")));
        }
        // At once, a fill other than 0 is stored in the store's rows for the new genes;
        // growing leaves them empty (0).
        if w1 > w0 && self.opts.join == Join::Outer && self.opts.fill_value.is_some_and(|f| f != 0.0) {
            return Err(self.refuse(el, format!("would gain {} genes whose entries for the store's cells are --fill-value {}, stored in every row at once: appending cannot write them; append without --fill-value (0), or concatenate into a new store", w1 - w0, self.opts.fill_value.unwrap_or_default())));
        }
        self.grow_csr(el, &Map::Same, w1)
    }

    /// Warn about the store's var columns, uns keys and obsp that the result leaves out.
    fn note_dropped(&self, report: &mut Report) -> Result<()> {
        let gone = |a: Vec<String>, b: Vec<String>| -> Vec<String> { a.into_iter().filter(|x| !b.contains(x)).collect() };
        let var = gone(columns(self.t, "var")?, columns(self.d, "var")?);
        let list = |s: &dyn Store, p: &str| -> Result<Vec<String>> { if s.exists(p).map_err(out_err)? { s.list(p).map_err(out_err) } else { Ok(vec![]) } };
        let uns = gone(list(self.t, "uns")?, list(self.d, "uns")?);
        let obsp = gone(list(self.t, "obsp")?, list(self.d, "obsp")?);
        if !obsp.is_empty() {
            report.warnings.push(format!("the store's obsp {obsp:?} are not kept: concatenating drops cell-by-cell matrices (anndata.concat without pairwise), and they would not cover the new cells; compute them again on the grown store (e.g. scanpy.pp.neighbors)"));
        }
        let why = |flag: &str, s: Option<crate::Strategy>| match s {
            None => format!("without {flag}, concatenating drops them, as anndata.concat would; append with {flag} same (or first) to keep them"),
            Some(s) => format!("{flag} {} over the store and the new inputs drops them, as anndata.concat would", s.name()),
        };
        if !var.is_empty() {
            report.warnings.push(format!("the store's var columns {var:?} are not kept: {}", why("--merge", self.opts.merge)));
        }
        if !uns.is_empty() {
            report.warnings.push(format!("the store's uns keys {uns:?} are not kept: {}", why("--uns-merge", self.opts.uns_merge)));
        }
        Ok(())
    }

    /// The target's `path` becomes delta's (absent in delta: removed).
    fn replace(&self, path: &str) -> Result<()> {
        if self.t.exists(path).map_err(out_err)? {
            self.t.delete(path).map_err(out_err)?;
        }
        if self.d.exists(path).map_err(out_err)? {
            adcat_format::copy::copy_element_to(self.d, path, self.t, path, &self.write).map_err(out_err)?;
        }
        Ok(())
    }

    /// Grow the target's array `tp` by delta's `dp` (from row `from`), mapped; in `dtype`
    /// (`None`: the target's), rebuilding when the dtype widens or the array is fixed.
    fn grow(&self, tp: &str, dp: &str, from: u64, map: &Map, dtype: Option<DType>) -> Result<()> {
        let tm = self.t.array_meta(tp).map_err(out_err)?;
        let dtype = dtype.unwrap_or(tm.dtype);
        if dtype != tm.dtype {
            return self.rebuild(tp, dtype, (&Map::Same, map), dp, from);
        }
        let n1 = self.d.array_meta(dp).map_err(out_err)?.shape.first().copied().unwrap_or(0).saturating_sub(from);
        let n0 = tm.shape.first().copied().unwrap_or(0);
        let mut shape = tm.shape.clone();
        shape[0] = n0 + n1;
        // HDF5 datasets of fixed size (contiguous, as anndata writes dense arrays) cannot
        // grow: rebuild them from the store's rows.
        if tm.chunks.is_none() || self.t.resize(tp, &shape).is_err() {
            return self.rebuild(tp, dtype, (&Map::Same, map), dp, from);
        }
        self.copy(Src::Delta, dp, from, n1, tp, n0, map, dtype)
    }

    /// Recreate the target's `tp` in `dtype`, resizable: the store's rows mapped by
    /// `maps.0`, then delta's `dp` (from row `from`) mapped by `maps.1`.
    fn rebuild(&self, tp: &str, dtype: DType, maps: (&Map, &Map), dp: &str, from: u64) -> Result<()> {
        let tm = self.t.array_meta(tp).map_err(out_err)?;
        let attrs = self.t.attrs(tp).map_err(out_err)?;
        let n0 = tm.shape.first().copied().unwrap_or(0);
        let n1 = self.d.array_meta(dp).map_err(out_err)?.shape.first().copied().unwrap_or(0).saturating_sub(from);
        let mut shape = tm.shape.clone();
        shape[0] = n0 + n1;
        let spec = match &tm.chunks {
            Some(c) => {
                let codec = writable(tm.compression.clone()).unwrap_or_else(|| self.write.compression_for(self.t.kind()));
                let mut s = ArraySpec::new(dtype, shape.clone()).chunks(c.clone()).compression(codec).resizable(true);
                if let Some(sh) = &tm.shards {
                    s = s.shards(sh.clone());
                }
                s
            }
            None => {
                let mut s = self.write.spec(self.t.kind(), dtype, &shape, Purpose::SparsePart);
                if let Some(c) = writable(tm.compression.clone()) {
                    s.compression = c;
                }
                s
            }
        };
        self.t.delete(tp).map_err(out_err)?;
        self.t.create_array(tp, &spec).map_err(out_err)?;
        if !attrs.is_empty() {
            self.t.set_attrs(tp, &attrs).map_err(out_err)?;
        }
        self.copy(Src::Store, tp, 0, n0, tp, 0, maps.0, dtype)?;
        self.copy(Src::Delta, dp, from, n1, tp, n0, maps.1, dtype)
    }

    /// Copy `n` rows of the source's `sp` from row `from` into the target's `tp` at row `at`,
    /// mapped and cast to `dtype`, in blocks of the memory budget that end on the
    /// target's write units.
    #[allow(clippy::too_many_arguments)]
    fn copy(&self, src: Src, sp: &str, from: u64, n: u64, tp: &str, at: u64, map: &Map, dtype: DType) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let (src, read_err): (&dyn Store, &dyn Fn(StoreError) -> ConcatError) = match src {
            Src::Store => (self.store, &|e| ConcatError::Input { file: self.store.location().into(), source: e.into() }),
            Src::Delta => (self.d, &out_err),
        };
        let sm = src.array_meta(sp).map_err(read_err)?;
        let tm = self.t.array_meta(tp).map_err(out_err)?;
        let row_bytes = sm.shape.iter().skip(1).product::<u64>().max(1) * element_bytes(sm.dtype).max(8);
        let unit = tm.shards.as_ref().or(tm.chunks.as_ref()).and_then(|c| c.first().copied()).unwrap_or(1).max(1);
        let rows = ((self.opts.write.max_memory / 8) / row_bytes).max(1);
        let block = if rows >= unit { rows / unit * unit } else { rows };
        let mut k = 0;
        while k < n {
            // The first block ends where the target's unit does, so later blocks write
            // whole units.
            let len = if k == 0 && block >= unit { block - (at % unit) } else { block }.min(n - k);
            let a = src.read_rows(sp, from + k, from + k + len).map_err(read_err)?;
            let a = self.cast(map.apply(a, tp)?, dtype, tp)?;
            self.t.write_rows(tp, at + k, &a).map_err(out_err)?;
            k += len;
        }
        Ok(())
    }

    fn cast(&self, a: ArrayData, dtype: DType, path: &str) -> Result<ArrayData> {
        if a.dtype() == dtype {
            return Ok(a);
        }
        // Integers that fit (widened codes, indptr), or a numpy promotion (float32 values
        // of the store into a float64 result).
        let fits = a.int_range().is_none_or(|(lo, hi)| hi <= int_max(dtype) && (lo >= 0 || dtype.is_signed_integer()));
        let castable = (dtype.is_integer() && a.dtype().is_integer() && fits) || a.dtype().promote(dtype) == Some(dtype);
        match castable.then(|| a.cast(dtype)).flatten() {
            Some(c) => Ok(c),
            None => Err(ConcatError::Output(FormatError::invalid(path, format!("cannot store {} values as {}", a.dtype().name(), dtype.name())))),
        }
    }
}

fn out_out(e: ConcatError) -> ConcatError {
    match e {
        ConcatError::Format(f) => ConcatError::Output(f),
        e => e,
    }
}
