//! Checking a store against the AnnData on-disk format (anndata 0.13.4): encodings and
//! versions, the shape relations between elements, and (deep mode) the contents of
//! sparse structures and categorical codes, streamed in bounded blocks.
//!
//! Every problem found is reported, not just the first, each as a message starting with
//! the element path.

use crate::encoding::{detect, Encoding};
use crate::sparse::{SparseFormat, SparseMeta};
use crate::FormatError;
use adcat_store::{join_path, AttrValue, NodeKind, Store};

/// Elements read per block in deep checks (8 MiB of i64).
const BLOCK: u64 = 1 << 20;

/// What [`validate`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Number of observations (rows of `obs`), when it could be read.
    pub n_obs: Option<u64>,
    /// Number of variables (rows of `var`), when it could be read.
    pub n_vars: Option<u64>,
    /// Stored entries of `X` when it is sparse.
    pub x_nnz: Option<u64>,
    /// Every problem, each starting with the element path.
    pub problems: Vec<String>,
    /// Virtual arrays whose values deep mode did not read (their data is in other
    /// files, which the store was not allowed to follow).
    pub unchecked: Vec<String>,
    /// Files the store's virtual arrays read (see [`crate::refs`]), each with whether
    /// it is present.
    pub references: Vec<(String, bool)>,
}

impl Report {
    /// True when no problem was found.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Checker<'a> {
    store: &'a dyn Store,
    deep: bool,
    problems: Vec<String>,
    unchecked: Vec<String>,
}

/// Check the whole store. `deep` also scans sparse `indptr`/`indices` and categorical
/// codes (reads those arrays once, in blocks); otherwise only metadata, attributes,
/// shapes and the first and last `indptr` entries are read.
pub fn validate(store: &dyn Store, deep: bool) -> Report {
    let mut c = Checker { store, deep, problems: vec![], unchecked: vec![] };
    let mut report = Report::default();
    match detect(store, "") {
        Ok(d) if d.encoding == Encoding::AnnData => {}
        Ok(d) => c.problem("/", format!("root is encoded as {}, not anndata", d.encoding)),
        Err(e) => c.fail(e),
    }
    let n_obs = c.frame_len("obs");
    let n_vars = c.frame_len("var");
    report.n_obs = n_obs;
    report.n_vars = n_vars;
    let null_x = matches!(detect(store, "X"), Ok(d) if d.encoding == Encoding::Null);
    if c.exists("X") && !null_x {
        if let Some(shape) = c.element("X") {
            c.expect_shape("X", &shape, &[n_obs, n_vars]);
        }
        if let Ok(Encoding::Csr | Encoding::Csc) = detect(store, "X").map(|d| d.encoding) {
            report.x_nnz = SparseMeta::read(store, "X").ok().map(|m| m.nnz);
        }
    }
    for (group, dims) in [("layers", vec![n_obs, n_vars]), ("obsm", vec![n_obs]), ("varm", vec![n_vars]), ("obsp", vec![n_obs, n_obs]), ("varp", vec![n_vars, n_vars])] {
        c.mapping(group, &dims);
    }
    // anndata writes an absent raw as a `null` element in zarr.
    let null_raw = matches!(detect(store, "raw"), Ok(d) if d.encoding == Encoding::Null);
    if c.exists("raw") && !null_raw {
        let rv = c.frame_len("raw/var");
        if c.exists("raw/X") {
            if let Some(shape) = c.element("raw/X") {
                c.expect_shape("raw/X", &shape, &[n_obs, rv]);
            }
        }
        c.mapping("raw/varm", &[rv]);
    }
    if c.exists("uns") {
        c.element("uns");
    }
    match crate::refs::references(store) {
        Ok(refs) => {
            for (p, s) in refs.iter().filter(|(_, s)| !s.present) {
                c.problem(p, format!("is a virtual dataset mapping {}:{}, and that file is missing (its values would read as zeros)", s.file, s.path));
            }
            report.references = crate::refs::files(&refs);
        }
        Err(e) => c.fail(e),
    }
    report.problems = c.problems;
    report.unchecked = c.unchecked;
    report
}

impl Checker<'_> {
    fn problem(&mut self, path: &str, msg: impl Into<String>) {
        let p = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
        self.problems.push(format!("{p}: {}", msg.into()));
    }

    fn fail(&mut self, e: impl Into<FormatError>) {
        self.problems.push(e.into().to_string());
    }

    fn exists(&mut self, path: &str) -> bool {
        match self.store.exists(path) {
            Ok(b) => b,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Rows of the dataframe at `path` (its index length), checking the dataframe.
    fn frame_len(&mut self, path: &str) -> Option<u64> {
        if !self.exists(path) {
            self.problem(path, "missing (every AnnData store has obs and var)");
            return None;
        }
        self.element(path).and_then(|s| s.first().copied())
    }

    /// Check every element of a mapping group (`layers`, `obsm`, ...) and that its
    /// leading dimensions are `dims` (None = unknown, not checked).
    fn mapping(&mut self, group: &str, dims: &[Option<u64>]) {
        if !self.exists(group) {
            return;
        }
        match detect(self.store, group) {
            Ok(d) if d.encoding == Encoding::Dict => {}
            Ok(d) => return self.problem(group, format!("must be a dict, found {}", d.encoding)),
            Err(e) => return self.fail(e),
        }
        let children = match self.store.list(group) {
            Ok(c) => c,
            Err(e) => return self.fail(e),
        };
        for k in children {
            let p = join_path(group, &k);
            if let Some(shape) = self.element(&p) {
                // An awkward union or option type has no regular dimensions to check.
                let awkward = detect(self.store, &p).is_ok_and(|d| d.encoding == Encoding::Awkward);
                let dims = if awkward { &dims[..dims.len().min(shape.len())] } else { dims };
                self.expect_shape(&p, &shape, dims);
            }
        }
    }

    fn expect_shape(&mut self, path: &str, shape: &[u64], dims: &[Option<u64>]) {
        if shape.len() < dims.len() {
            return self.problem(path, format!("has {} dimensions, expected at least {}", shape.len(), dims.len()));
        }
        for (i, (&got, want)) in shape.iter().zip(dims).enumerate() {
            if let Some(w) = *want {
                if got != w {
                    let what = ["rows", "columns"].get(i).copied().unwrap_or("entries");
                    return self.problem(path, format!("has {got} {what} (shape {shape:?}), expected {w}"));
                }
            }
        }
    }

    fn array_shape(&mut self, path: &str) -> Option<Vec<u64>> {
        match self.store.array_meta(path) {
            Ok(m) => Some(m.shape),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    fn child_array(&mut self, path: &str, name: &str) -> Option<Vec<u64>> {
        let p = join_path(path, name);
        match self.store.node_kind(&p) {
            Ok(Some(NodeKind::Array)) => self.array_shape(&p),
            Ok(Some(NodeKind::Group)) => {
                self.problem(&p, "must be an array, found a group");
                None
            }
            Ok(None) => {
                self.problem(path, format!("missing its `{name}` array"));
                None
            }
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    /// Check the element at `path` and return its shape (leading dimension first).
    fn element(&mut self, path: &str) -> Option<Vec<u64>> {
        let enc = match detect(self.store, path) {
            Ok(d) => d.encoding,
            Err(e) => {
                self.fail(e);
                return None;
            }
        };
        match enc {
            // Record arrays have no plain element type; their fields are read on copy.
            Encoding::RecArray => None,
            Encoding::Array | Encoding::StringArray | Encoding::NumericScalar | Encoding::String | Encoding::Bytes | Encoding::Null => self.array_shape(path),
            Encoding::Csr | Encoding::Csc => self.sparse(path),
            Encoding::DataFrame | Encoding::DataFrameLegacy => self.dataframe(path, enc),
            Encoding::Categorical => {
                let codes = self.child_array(path, "codes")?;
                let cats = self.child_array(path, "categories")?;
                if self.deep {
                    self.check_codes(&join_path(path, "codes"), cats.first().copied().unwrap_or(0));
                }
                Some(codes)
            }
            Encoding::NullableInteger | Encoding::NullableBoolean | Encoding::NullableString => {
                let values = self.child_array(path, "values")?;
                let mask = self.child_array(path, "mask")?;
                if values.first() != mask.first() {
                    self.problem(path, format!("values have {:?} rows but mask has {:?}", values.first(), mask.first()));
                }
                Some(values)
            }
            Encoding::Dict | Encoding::AnnData | Encoding::Raw => {
                let children = match self.store.list(path) {
                    Ok(c) => c,
                    Err(e) => {
                        self.fail(e);
                        return None;
                    }
                };
                for k in children {
                    self.element(&join_path(path, &k));
                }
                None
            }
            Encoding::Awkward => match self.store.attr(path, "length") {
                Ok(Some(v)) => v.as_int().map(|n| awkward_shape(n.max(0) as u64, self.store.attr(path, "form").ok().flatten())).or_else(|| {
                    self.problem(path, "awkward array `length` attribute is not an integer");
                    None
                }),
                Ok(None) => {
                    self.problem(path, "awkward array without a `length` attribute");
                    None
                }
                Err(e) => {
                    self.fail(e);
                    None
                }
            },
        }
    }

    fn dataframe(&mut self, path: &str, enc: Encoding) -> Option<Vec<u64>> {
        let index_key = match self.store.attr(path, "_index") {
            Ok(Some(AttrValue::String(s))) => s,
            Ok(_) => {
                self.problem(path, "dataframe without an `_index` attribute");
                return None;
            }
            Err(e) => {
                self.fail(e);
                return None;
            }
        };
        // A name that resolves to the dataframe itself (or elsewhere) is not a column.
        let is_name = |k: &str| !k.is_empty() && !k.contains('/') && k != "." && k != "..";
        if !is_name(&index_key) {
            self.problem(path, format!("`_index` attribute {index_key:?} is not a column name"));
            return None;
        }
        let n = self.element(&join_path(path, &index_key)).and_then(|s| s.first().copied());
        let order = match self.store.attr(path, "column-order") {
            Ok(v) => v.and_then(|v| v.as_strings()).unwrap_or_default(),
            Err(e) => {
                self.fail(e);
                vec![]
            }
        };
        for name in &order {
            if !is_name(name) {
                self.problem(path, format!("column-order entry {name:?} is not a column name"));
                continue;
            }
            let p = join_path(path, name);
            if !self.exists(&p) {
                self.problem(path, format!("column {name:?} listed in column-order is missing"));
                continue;
            }
            if enc == Encoding::DataFrameLegacy {
                // 0.1.0 columns are plain arrays (categories live under __categories).
                if let Some(shape) = self.array_shape(&p) {
                    self.expect_shape(&p, &shape, &[n]);
                }
            } else if let Some(shape) = self.element(&p) {
                self.expect_shape(&p, &shape, &[n]);
            }
        }
        n.map(|n| vec![n, order.len() as u64])
    }

    fn sparse(&mut self, path: &str) -> Option<Vec<u64>> {
        let m = match SparseMeta::read(self.store, path) {
            Ok(m) => m,
            Err(e) => {
                self.fail(e);
                return None;
            }
        };
        let ip = join_path(path, "indptr");
        let major = if m.format == SparseFormat::Csr { m.shape[0] } else { m.shape[1] };
        let minor = if m.format == SparseFormat::Csr { m.shape[1] } else { m.shape[0] };
        // SparseMeta::read has checked that indptr runs from 0 to the stored entries.
        if self.deep {
            self.scan_indptr(&ip, major + 1, m.nnz);
            self.scan_indices(&join_path(path, "indices"), m.nnz, minor);
        }
        Some(m.shape.to_vec())
    }

    /// Read the integer array at `path` (`len` entries) in blocks; `check` gets each
    /// block's first row number and values and returns a problem to stop at.
    fn scan(&mut self, path: &str, len: u64, mut check: impl FnMut(u64, &[i64]) -> Option<String>) {
        let mut s = 0;
        while s < len {
            let e = (s + BLOCK).min(len);
            let v = match self.store.read_rows(path, s, e) {
                Ok(a) => a.to_i64_vec().unwrap_or_default(),
                // A missing source file is reported once, with the store's references.
                Err(_) if self.store.virtual_sources(path).is_ok_and(|v| v.iter().any(|s| !s.present)) => return,
                // A virtual dataset's values are in its sources, read only when the
                // caller follows them: not a problem of the store, left unchecked.
                Err(adcat_store::StoreError::ExternalData { .. }) if self.store.virtual_sources(path).is_ok_and(|v| !v.is_empty()) => {
                    self.unchecked.push(path.to_owned());
                    return;
                }
                Err(err) => return self.fail(err),
            };
            if let Some(msg) = check(s, &v) {
                return self.problem(path, msg);
            }
            s = e;
        }
    }

    fn scan_indptr(&mut self, path: &str, len: u64, nnz: u64) {
        let mut prev = 0i64;
        self.scan(path, len, |s, v| {
            for (i, &x) in v.iter().enumerate() {
                if x < prev || x as u64 > nnz {
                    return Some(format!("entry {} is {x}: not monotone or past the {nnz} stored entries", s + i as u64));
                }
                prev = x;
            }
            None
        });
    }

    fn scan_indices(&mut self, path: &str, nnz: u64, minor: u64) {
        self.scan(path, nnz, |s, v| {
            let (i, &x) = v.iter().enumerate().find(|(_, &x)| x < 0 || x as u64 >= minor)?;
            Some(format!("entry {} is {x}, outside 0..{minor}", s + i as u64))
        });
    }

    fn check_codes(&mut self, path: &str, n_categories: u64) {
        let len = match self.store.array_meta(path) {
            Ok(m) => m.shape.first().copied().unwrap_or(0),
            Err(e) => return self.fail(e),
        };
        self.scan(path, len, |s, v| {
            let (i, &x) = v.iter().enumerate().find(|(_, &x)| x < -1 || x >= n_categories as i64)?;
            Some(format!("code {x} at row {} is outside -1..{n_categories}", s + i as u64))
        });
    }
}

/// An awkward array's shape as anndata sees it: its length, then the sizes of the
/// regular dimensions at the top of its form (a layer is regular along var).
fn awkward_shape(length: u64, form: Option<adcat_store::AttrValue>) -> Vec<u64> {
    let mut shape = vec![length];
    let form: Option<serde_json::Value> = form.and_then(|f| f.as_str().and_then(|s| serde_json::from_str(s).ok()));
    let mut node = form.as_ref();
    while let Some(n) = node {
        match n.get("class").and_then(serde_json::Value::as_str) {
            Some("RegularArray") => {
                shape.push(n.get("size").and_then(serde_json::Value::as_u64).unwrap_or(0));
                node = n.get("content");
            }
            Some("NumpyArray") => {
                shape.extend(n.get("inner_shape").and_then(serde_json::Value::as_array).into_iter().flatten().filter_map(serde_json::Value::as_u64));
                break;
            }
            _ => break,
        }
    }
    shape
}
