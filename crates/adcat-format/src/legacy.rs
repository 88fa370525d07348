//! Legacy layouts presented in the current encodings.
//!
//! Files written by anndata < 0.8 store some elements differently from what the rest of
//! adcat reads. [`LegacyView`] wraps a store and shows them as anndata 0.13.4 reads them,
//! so conversion, concatenation, planning and inspection share one reader:
//!
//! * dataframe 0.1.0 (anndata 0.7): a categorical column is an integer code array whose
//!   categories live in `<frame>/__categories/<column>`. The view shows the frame as
//!   dataframe 0.2.0 and each such column as a `categorical` group (`ordered` from the
//!   categories array), and hides `__categories`.
//! * anndata < 0.7 (e.g. scanpy's `pbmc68k_reduced`): `obs`, `var` and `raw.var` are
//!   compound datasets (the first field is the index), shown as dataframes whose columns
//!   read single fields; `obsm`, `varm` and `raw.varm` are compound datasets shown as
//!   dicts with one (n, k) array per field; `raw.X`, `raw.var`, `raw.varm` at the root
//!   are shown as a `raw` group; `uns/<col>_categories` turn the integer column `<col>`
//!   of obs and var into a categorical when every code fits, and are then hidden (as
//!   anndata's `_clean_uns`).
//! * every version: 2-d matrices in `uns/neighbors` (`connectivities`, `distances`) are
//!   shown in `obsp`, as anndata moves them on read.
//!
//! Writes pass through to the wrapped store untouched.

use crate::encoding::Encoding;
use adcat_store::{
    join_path, norm_path, parent_path, ArrayData, ArrayMeta, AttrValue, Attrs, Compression, NodeKind, RecordField, Result,
    Store, StoreError, StoreKind,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

const CATEGORIES: &str = "__categories";

/// A compound dataset shown as a dataframe (`obs`, `var`, `raw.var` of anndata < 0.7).
#[derive(Debug, Clone)]
struct CompoundFrame {
    n: u64,
    fields: Vec<RecordField>,
    /// Column -> the uns array holding its categories (`_clean_uns`).
    categories: BTreeMap<String, String>,
}

/// What the view changes, found once from the root's metadata.
#[derive(Debug, Default)]
struct Plan {
    /// Real paths of compound dataframes.
    frames: HashMap<String, CompoundFrame>,
    /// Real paths of compound mappings (obsm/varm) -> (rows, fields).
    mappings: HashMap<String, (u64, Vec<RecordField>)>,
    /// Children of a virtual `raw` group built from `raw.*` root entries.
    legacy_raw: Vec<String>,
    /// `uns` keys consumed by `_clean_uns`.
    hidden_uns: Vec<String>,
    /// Matrices of `uns/neighbors` shown in `obsp`.
    moved_to_obsp: Vec<String>,
}

/// Where a path of the view lives.
enum Node {
    /// The same path in the wrapped store.
    Real(String),
    /// A group that exists only in the view.
    Group { attrs: Attrs, children: Vec<String> },
    /// One field of a compound dataset, as an array of `shape`.
    Field { record: String, field: RecordField, shape: Vec<u64> },
    /// A one-element array of fixed-length ASCII strings, which anndata reads as a
    /// string scalar.
    Scalar(String),
}

/// A store showing legacy elements in the current encodings (see the module docs).
pub struct LegacyView<'a> {
    inner: &'a dyn Store,
    plan: OnceLock<Plan>,
    legacy_frames: Mutex<HashMap<String, bool>>,
    /// Per element path: read as a string scalar (see `is_collapsed_scalar`).
    scalars: Mutex<HashMap<String, bool>>,
}

impl std::fmt::Debug for LegacyView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyView").field("inner", &self.inner.location()).finish()
    }
}

fn group_attrs(e: Encoding) -> Attrs {
    e.attrs()
}

impl<'a> LegacyView<'a> {
    /// Wrap `inner`.
    pub fn new(inner: &'a dyn Store) -> Self {
        LegacyView { inner, plan: OnceLock::new(), legacy_frames: Mutex::new(HashMap::new()), scalars: Mutex::new(HashMap::new()) }
    }

    fn plan(&self) -> Result<&Plan> {
        if let Some(p) = self.plan.get() {
            return Ok(p);
        }
        let p = self.make_plan()?;
        Ok(self.plan.get_or_init(|| p))
    }

    fn is_compound(&self, p: &str) -> Result<bool> {
        Ok(self.inner.node_kind(p)? == Some(NodeKind::Array) && self.inner.is_record(p)?)
    }

    fn make_plan(&self) -> Result<Plan> {
        let mut plan = Plan::default();
        let root: Vec<String> = self.inner.list("")?;
        let has = |n: &str| root.iter().any(|c| c == n);
        for f in ["obs", "var", "raw.var"] {
            if has(f) && self.is_compound(f)? {
                let fields = self.inner.record_fields(f)?;
                for x in &fields {
                    if let Some(reason) = adcat_store::invalid_name_reason(&x.name) {
                        return Err(StoreError::InvalidName { path: f.to_owned(), name: x.name.clone(), reason });
                    }
                }
                let n = len_of(self.inner, f)?;
                plan.frames.insert(f.to_owned(), CompoundFrame { n, fields, categories: BTreeMap::new() });
            }
        }
        for m in ["obsm", "varm", "raw.varm"] {
            if has(m) && self.is_compound(m)? {
                let fields = self.inner.record_fields(m)?;
                let n = len_of(self.inner, m)?;
                plan.mappings.insert(m.to_owned(), (n, fields));
            }
        }
        if !has("raw") {
            plan.legacy_raw = ["X", "var", "varm"].iter().filter(|c| has(&format!("raw.{c}"))).map(|c| c.to_string()).collect();
        }
        if plan.frames.contains_key("obs") && has("uns") {
            self.clean_uns(&mut plan)?;
        }
        if self.inner.node_kind("uns/neighbors")? == Some(NodeKind::Group) {
            for k in self.inner.list("uns/neighbors")? {
                if self.is_matrix(&join_path("uns/neighbors", &k))? {
                    plan.moved_to_obsp.push(k);
                }
            }
        }
        Ok(plan)
    }

    /// A 2-d dense array or a sparse matrix group.
    fn is_matrix(&self, p: &str) -> Result<bool> {
        Ok(match self.inner.node_kind(p)? {
            Some(NodeKind::Array) => !self.inner.is_record(p)? && self.inner.array_meta(p)?.shape.len() == 2,
            Some(NodeKind::Group) => crate::detect(self.inner, p).is_ok_and(|d| matches!(d.encoding, Encoding::Csr | Encoding::Csc)),
            None => false,
        })
    }

    /// anndata's `_clean_uns`: `uns/<name>_categories` makes column `<name>` of obs and var
    /// categorical when every code is below the number of categories.
    fn clean_uns(&self, plan: &mut Plan) -> Result<()> {
        for key in self.inner.list("uns")? {
            if !key.ends_with("_categories") {
                continue;
            }
            let cats_path = join_path("uns", &key);
            if self.inner.node_kind(&cats_path)? != Some(NodeKind::Array) || self.inner.is_record(&cats_path)? {
                continue;
            }
            let n_cats = len_of(self.inner, &cats_path)?;
            let name = key.replace("_categories", "");
            let mut used = false;
            for frame in ["obs", "var"] {
                let Some(cf) = plan.frames.get(frame) else { continue };
                let Some(field) = cf.fields.iter().find(|f| f.name == name && f.shape.is_empty() && f.dtype.is_integer()) else { continue };
                let codes = self.inner.read_field(frame, &field.name, 0, cf.n)?.to_i64_vec().unwrap_or_default();
                if codes.iter().all(|&c| c < n_cats as i64) {
                    if let Some(cf) = plan.frames.get_mut(frame) {
                        cf.categories.insert(name.clone(), cats_path.clone());
                    }
                    used = true;
                }
            }
            if used {
                plan.hidden_uns.push(key);
            }
        }
        Ok(())
    }

    /// Whether the group at `p` is a dataframe 0.1.0 (cached: asked for every child).
    fn is_legacy_frame(&self, p: &str) -> Result<bool> {
        if let Some(&b) = self.legacy_frames.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(p) {
            return Ok(b);
        }
        let b = self.inner.node_kind(p)? == Some(NodeKind::Group) && {
            let a = self.inner.attrs(p)?;
            a.get("encoding-type").and_then(AttrValue::as_str) == Some("dataframe")
                && a.get("encoding-version").and_then(AttrValue::as_str).is_some_and(|v| v.starts_with("0.1."))
        };
        self.legacy_frames.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(p.to_owned(), b);
        Ok(b)
    }

    /// The codes and categories arrays when `frame/column` is a dataframe 0.1.0 categorical.
    fn legacy_cat(&self, frame: &str, column: &str) -> Result<Option<(String, String)>> {
        if column == CATEGORIES || !self.is_legacy_frame(frame)? {
            return Ok(None);
        }
        let codes = join_path(frame, column);
        let cats = join_path(&join_path(frame, CATEGORIES), column);
        let arrays = self.inner.node_kind(&codes)? == Some(NodeKind::Array) && self.inner.node_kind(&cats)? == Some(NodeKind::Array);
        Ok(arrays.then_some((codes, cats)))
    }

    /// The real path for the view's `raw/...` when raw is stored as `raw.*` at the root.
    fn untangle_raw(&self, p: &str, plan: &Plan) -> String {
        if plan.legacy_raw.is_empty() {
            return p.to_owned();
        }
        let mut parts = p.splitn(3, '/');
        match (parts.next(), parts.next()) {
            (Some("raw"), Some(child)) if plan.legacy_raw.iter().any(|c| c == child) => {
                let rest = parts.next().map(|r| format!("/{r}")).unwrap_or_default();
                format!("raw.{child}{rest}")
            }
            _ => p.to_owned(),
        }
    }

    fn node(&self, path: &str) -> Result<Node> {
        let p = norm_path(path);
        let plan = self.plan()?;
        if p == "raw" && !plan.legacy_raw.is_empty() {
            return Ok(Node::Group { attrs: group_attrs(Encoding::Raw), children: plan.legacy_raw.clone() });
        }
        if let Some(n) = self.moved_node(&p, plan)? {
            return Ok(n);
        }
        let real = self.untangle_raw(&p, plan);
        if let Some(n) = self.compound_node(&real, plan)? {
            return Ok(n);
        }
        match self.frame_01_node(&real)? {
            Node::Real(p) if self.is_collapsed_scalar(&p)? => Ok(Node::Scalar(p)),
            n => Ok(n),
        }
    }

    /// anndata's legacy `read_dataset` returns `value[0]` for a one-element array of
    /// fixed-length ASCII strings (scanpy's `uns/.../params` of the anndata 0.6 era).
    fn is_collapsed_scalar(&self, p: &str) -> Result<bool> {
        if let Some(&b) = self.scalars.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(p) {
            return Ok(b);
        }
        let b = self.find_collapsed_scalar(p)?;
        self.scalars.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(p.to_owned(), b);
        Ok(b)
    }

    fn find_collapsed_scalar(&self, p: &str) -> Result<bool> {
        if p.is_empty() || self.inner.node_kind(p)? != Some(NodeKind::Array) || self.inner.is_record(p)? || !self.inner.is_fixed_ascii(p)? {
            return Ok(false);
        }
        // Only elements read by the legacy reader: no encoding attributes.
        let m = self.inner.array_meta(p)?;
        Ok(m.shape == [1] && self.inner.attr(p, "encoding-type")?.is_none())
    }

    /// `obsp` and `obsp/<k>` for matrices anndata moves out of `uns/neighbors`.
    fn moved_node(&self, p: &str, plan: &Plan) -> Result<Option<Node>> {
        if plan.moved_to_obsp.is_empty() {
            return Ok(None);
        }
        if p == "obsp" && self.inner.node_kind("obsp")?.is_none() {
            return Ok(Some(Node::Group { attrs: group_attrs(Encoding::Dict), children: plan.moved_to_obsp.clone() }));
        }
        let mut parts = p.splitn(3, '/');
        if let (Some("obsp"), Some(k)) = (parts.next(), parts.next()) {
            if plan.moved_to_obsp.iter().any(|m| m == k) {
                let rest = parts.next().map(|r| format!("/{r}")).unwrap_or_default();
                return Ok(Some(Node::Real(format!("uns/neighbors/{k}{rest}"))));
            }
        }
        Ok(None)
    }

    /// Nodes inside compound frames and mappings (anndata < 0.7).
    fn compound_node(&self, real: &str, plan: &Plan) -> Result<Option<Node>> {
        let parts: Vec<&str> = real.split('/').collect();
        let top = parts[0];
        if let Some(cf) = plan.frames.get(top) {
            let field = |name: &str| cf.fields.iter().find(|f| f.name == name).cloned();
            return Ok(Some(match parts.as_slice() {
                [_] => {
                    let mut attrs = group_attrs(Encoding::DataFrame);
                    let names: Vec<String> = cf.fields.iter().map(|f| f.name.clone()).collect();
                    attrs.insert("_index".into(), AttrValue::String(names.first().cloned().unwrap_or_default()));
                    attrs.insert("column-order".into(), AttrValue::Strings(names.iter().skip(1).cloned().collect()));
                    Node::Group { attrs, children: names }
                }
                [_, col] => match (field(col), cf.categories.get(*col)) {
                    (Some(_), Some(_)) => {
                        let mut attrs = group_attrs(Encoding::Categorical);
                        attrs.insert("ordered".into(), AttrValue::Bool(false));
                        Node::Group { attrs, children: vec!["categories".into(), "codes".into()] }
                    }
                    (Some(f), None) => Node::Field { record: top.to_owned(), shape: vec![cf.n], field: f },
                    (None, _) => return Err(StoreError::NotFound { path: real.to_owned() }),
                },
                [_, col, "codes"] if cf.categories.contains_key(*col) => match field(col) {
                    Some(f) => Node::Field { record: top.to_owned(), shape: vec![cf.n], field: f },
                    None => return Err(StoreError::NotFound { path: real.to_owned() }),
                },
                [_, col, "categories"] => match cf.categories.get(*col) {
                    Some(c) => Node::Real(c.clone()),
                    None => return Err(StoreError::NotFound { path: real.to_owned() }),
                },
                _ => return Err(StoreError::NotFound { path: real.to_owned() }),
            }));
        }
        if let Some((n, fields)) = plan.mappings.get(top) {
            return Ok(Some(match parts.as_slice() {
                [_] => Node::Group { attrs: group_attrs(Encoding::Dict), children: fields.iter().map(|f| f.name.clone()).collect() },
                [_, name] => match fields.iter().find(|f| f.name == *name) {
                    // A scalar field is one column: (n, 1), as anndata reshapes it.
                    Some(f) => {
                        let mut shape = vec![*n];
                        shape.extend(if f.shape.is_empty() { vec![1] } else { f.shape.clone() });
                        Node::Field { record: top.to_owned(), field: f.clone(), shape }
                    }
                    None => return Err(StoreError::NotFound { path: real.to_owned() }),
                },
                _ => return Err(StoreError::NotFound { path: real.to_owned() }),
            }));
        }
        Ok(None)
    }

    /// Nodes of dataframe 0.1.0 frames (anndata 0.7).
    fn frame_01_node(&self, p: &str) -> Result<Node> {
        if p.is_empty() {
            return Ok(Node::Real(String::new()));
        }
        let parent = parent_path(p);
        let name = p.rsplit('/').next().unwrap_or(p);
        if let Some((_, categories)) = self.legacy_cat(&parent, name)? {
            let mut attrs = group_attrs(Encoding::Categorical);
            let ordered = self.inner.attr(&categories, "ordered")?.and_then(|v| v.as_bool()).unwrap_or(false);
            attrs.insert("ordered".into(), AttrValue::Bool(ordered));
            return Ok(Node::Group { attrs, children: vec!["categories".into(), "codes".into()] });
        }
        if !parent.is_empty() && (name == "codes" || name == "categories") {
            let frame = parent_path(&parent);
            let column = parent.rsplit('/').next().unwrap_or(&parent);
            if let Some((codes, cats)) = self.legacy_cat(&frame, column)? {
                return Ok(Node::Real(if name == "codes" { codes } else { cats }));
            }
        }
        Ok(Node::Real(p.to_owned()))
    }

    fn real(&self, path: &str) -> Result<String> {
        match self.node(path)? {
            Node::Real(p) => Ok(p),
            _ => Err(StoreError::WrongKind { path: norm_path(path), expected: "a stored array" }),
        }
    }

    /// Children the view hides or adds under the real group `real` (viewed at `path`).
    fn adjust_children(&self, path: &str, real: &str, mut names: Vec<String>) -> Result<Vec<String>> {
        let plan = self.plan()?;
        if self.is_legacy_frame(real)? {
            names.retain(|n| n != CATEGORIES);
        }
        match path {
            "" => {
                names.retain(|n| !n.starts_with("raw."));
                if !plan.legacy_raw.is_empty() {
                    names.push("raw".into());
                }
                if !plan.moved_to_obsp.is_empty() && !names.iter().any(|n| n == "obsp") {
                    names.push("obsp".into());
                }
            }
            "uns" => names.retain(|n| !plan.hidden_uns.contains(n)),
            "uns/neighbors" => names.retain(|n| !plan.moved_to_obsp.contains(n)),
            "obsp" => {
                names.retain(|n| !plan.moved_to_obsp.contains(n));
                names.extend(plan.moved_to_obsp.iter().cloned());
            }
            _ => {}
        }
        names.sort();
        Ok(names)
    }
}

/// Length along axis 0 of an array or record array.
fn len_of(store: &dyn Store, p: &str) -> Result<u64> {
    if store.is_record(p)? {
        return store.record_len(p);
    }
    Ok(store.array_meta(p)?.shape.first().copied().unwrap_or(0))
}

impl adcat_store::Forward for LegacyView<'_> {
    fn target(&self, _path: &str) -> Result<&dyn Store> {
        Ok(self.inner)
    }
}

impl Store for LegacyView<'_> {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn kind(&self) -> StoreKind {
        self.inner.kind()
    }
    fn node_kind(&self, path: &str) -> Result<Option<NodeKind>> {
        match self.node(path) {
            Ok(Node::Real(p)) => self.inner.node_kind(&p),
            Ok(Node::Group { .. }) => Ok(Some(NodeKind::Group)),
            Ok(Node::Field { .. }) | Ok(Node::Scalar(_)) => Ok(Some(NodeKind::Array)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn list(&self, path: &str) -> Result<Vec<String>> {
        match self.node(path)? {
            Node::Real(p) => {
                let names = self.inner.list(&p)?;
                self.adjust_children(&norm_path(path), &p, names)
            }
            Node::Group { children, .. } => Ok(children),
            Node::Field { .. } | Node::Scalar(_) => Err(StoreError::WrongKind { path: norm_path(path), expected: "a group" }),
        }
    }
    fn attrs(&self, path: &str) -> Result<Attrs> {
        match self.node(path)? {
            Node::Group { attrs, .. } => Ok(attrs),
            Node::Field { .. } => Ok(Attrs::new()),
            Node::Scalar(p) => self.inner.attrs(&p),
            Node::Real(p) => {
                let mut a = self.inner.attrs(&p)?;
                if self.is_legacy_frame(&p)? {
                    a.extend(Encoding::DataFrame.attrs());
                    // HDF5 object references (unreadable, shown as Null) are not data.
                    a.retain(|_, v| *v != AttrValue::Null);
                } else if p != norm_path(path) && a.contains_key("categories") {
                    // codes/categories of a legacy categorical: plain arrays now.
                    a.remove("categories");
                    a.remove("ordered");
                    a.retain(|_, v| *v != AttrValue::Null);
                }
                Ok(a)
            }
        }
    }
    fn array_meta(&self, path: &str) -> Result<ArrayMeta> {
        match self.node(path)? {
            Node::Real(p) => self.inner.array_meta(&p),
            Node::Field { field, shape, .. } => {
                Ok(ArrayMeta { dtype: field.dtype, shape, chunks: None, shards: None, compression: Compression::None, filters: vec![], null: false })
            }
            Node::Scalar(p) => Ok(ArrayMeta { shape: vec![], chunks: None, ..self.inner.array_meta(&p)? }),
            Node::Group { .. } => Err(StoreError::WrongKind { path: norm_path(path), expected: "an array" }),
        }
    }
    fn read(&self, path: &str, start: &[u64], shape: &[u64]) -> Result<ArrayData> {
        match self.node(path)? {
            Node::Real(p) => self.inner.read(&p, start, shape),
            Node::Field { record, field, shape: full } => {
                adcat_store::check_box(&norm_path(path), &full, start, shape)?;
                let (s, n) = (start.first().copied().unwrap_or(0), shape.first().copied().unwrap_or(0));
                let rows = self.inner.read_field(&record, &field.name, s, s + n)?;
                let rows = rows.reshape(&[n].iter().chain(full.iter().skip(1)).copied().collect::<Vec<_>>())
                    .ok_or_else(|| StoreError::backend(&record, "field shape mismatch"))?;
                if start.iter().skip(1).all(|&x| x == 0) && shape[1..] == full[1..] {
                    Ok(rows)
                } else {
                    Err(StoreError::OutOfBounds { path: norm_path(path), reason: "partial columns of a legacy compound field".into() })
                }
            }
            Node::Scalar(p) => {
                adcat_store::check_box(&norm_path(path), &[], start, shape)?;
                let one = self.inner.read(&p, &[0], &[1])?;
                one.reshape(&[]).ok_or_else(|| StoreError::backend(&p, "cannot read a one-element string"))
            }
            Node::Group { .. } => Err(StoreError::WrongKind { path: norm_path(path), expected: "an array" }),
        }
    }
    fn stored_bytes(&self, path: &str) -> Result<Option<u64>> {
        match self.node(path)? {
            Node::Real(p) | Node::Scalar(p) => self.inner.stored_bytes(&p),
            _ => Ok(None),
        }
    }
    fn physical(&self, path: &str) -> Result<Option<adcat_store::Physical>> {
        // Only arrays read through unchanged (possibly from another path) are where
        // they are stored.
        match self.node(path)? {
            Node::Real(p) => self.inner.physical(&p),
            _ => Ok(None),
        }
    }
    fn virtual_sources(&self, path: &str) -> Result<Vec<adcat_store::VirtualSource>> {
        match self.node(path)? {
            Node::Real(p) => self.inner.virtual_sources(&p),
            _ => Ok(vec![]),
        }
    }
    fn is_record(&self, path: &str) -> Result<bool> {
        match self.node(path)? {
            Node::Real(p) => self.inner.is_record(&p),
            _ => Ok(false),
        }
    }
    fn read_record(&self, path: &str) -> Result<Vec<(String, ArrayData)>> {
        self.inner.read_record(&self.real(path)?)
    }
    fn record_fields(&self, path: &str) -> Result<Vec<RecordField>> {
        self.inner.record_fields(&self.real(path)?)
    }
    fn read_field(&self, path: &str, field: &str, start: u64, end: u64) -> Result<ArrayData> {
        self.inner.read_field(&self.real(path)?, field, start, end)
    }
    fn record_len(&self, path: &str) -> Result<u64> {
        self.inner.record_len(&self.real(path)?)
    }    // Changes go to the underlying store at the path given (nothing is translated).
    adcat_store::forward_store!(create_group, delete, set_attrs, create_array, write, write_rows_range, resize, flush, create_record);
}
