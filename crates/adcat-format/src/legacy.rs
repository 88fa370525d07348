//! Legacy layouts presented in the current encodings.
//!
//! Files written by anndata < 0.8 store some elements differently from what the rest of
//! adcat reads. [`LegacyView`] wraps a store and shows them as anndata 0.13.4 reads them,
//! so conversion, concatenation, planning and inspection share one reader:
//!
//! * dataframe 0.1.0 (anndata 0.7): a categorical column is an integer code array whose
//!   categories live in `<frame>/__categories/<column>` (HDF5: referenced by an object
//!   reference attribute; zarr: by a relative path). The view shows the frame as
//!   dataframe 0.2.0 and each such column as a `categorical` group with `codes` and
//!   `categories` children (the `ordered` flag from the categories array), and hides
//!   `__categories`.
//!
//! The view is read-only in spirit: writes pass through to the wrapped store untouched.

use crate::encoding::Encoding;
use adcat_store::{
    join_path, norm_path, parent_path, ArrayData, ArrayMeta, ArraySpec, AttrValue, Attrs, Compression, NodeKind, Result, Store,
    StoreError, StoreKind,
};
use std::collections::HashMap;
use std::sync::Mutex;

const CATEGORIES: &str = "__categories";

/// Where a path of the view lives in the wrapped store.
enum Mapped {
    /// The same node.
    Real(String),
    /// A legacy categorical column shown as a `categorical` group.
    CatGroup { categories: String },
}

/// A store showing legacy elements in the current encodings (see the module docs).
pub struct LegacyView<'a> {
    inner: &'a dyn Store,
    legacy_frames: Mutex<HashMap<String, bool>>,
}

impl std::fmt::Debug for LegacyView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyView").field("inner", &self.inner.location()).finish()
    }
}

impl<'a> LegacyView<'a> {
    /// Wrap `inner`.
    pub fn new(inner: &'a dyn Store) -> Self {
        LegacyView { inner, legacy_frames: Mutex::new(HashMap::new()) }
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

    /// The codes and categories arrays when `frame/column` is a legacy categorical.
    fn legacy_cat(&self, frame: &str, column: &str) -> Result<Option<(String, String)>> {
        if column == CATEGORIES || !self.is_legacy_frame(frame)? {
            return Ok(None);
        }
        let codes = join_path(frame, column);
        let cats = join_path(&join_path(frame, CATEGORIES), column);
        let arrays = self.inner.node_kind(&codes)? == Some(NodeKind::Array) && self.inner.node_kind(&cats)? == Some(NodeKind::Array);
        Ok(arrays.then_some((codes, cats)))
    }

    fn map(&self, path: &str) -> Result<Mapped> {
        let p = norm_path(path);
        if p.is_empty() {
            return Ok(Mapped::Real(p));
        }
        let parent = parent_path(&p);
        let name = p.rsplit('/').next().unwrap_or(&p);
        if let Some((_, categories)) = self.legacy_cat(&parent, name)? {
            return Ok(Mapped::CatGroup { categories });
        }
        if !parent.is_empty() && (name == "codes" || name == "categories") {
            let frame = parent_path(&parent);
            let column = parent.rsplit('/').next().unwrap_or(&parent);
            if let Some((codes, cats)) = self.legacy_cat(&frame, column)? {
                return Ok(Mapped::Real(if name == "codes" { codes } else { cats }));
            }
        }
        Ok(Mapped::Real(p))
    }

    fn real(&self, path: &str) -> Result<String> {
        match self.map(path)? {
            Mapped::Real(p) => Ok(p),
            Mapped::CatGroup { .. } => Err(StoreError::WrongKind { path: norm_path(path), expected: "an array" }),
        }
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
        match self.map(path)? {
            Mapped::Real(p) => self.inner.node_kind(&p),
            Mapped::CatGroup { .. } => Ok(Some(NodeKind::Group)),
        }
    }
    fn list(&self, path: &str) -> Result<Vec<String>> {
        match self.map(path)? {
            Mapped::Real(p) => {
                let mut names = self.inner.list(&p)?;
                if self.is_legacy_frame(&p)? {
                    names.retain(|n| n != CATEGORIES);
                }
                Ok(names)
            }
            Mapped::CatGroup { .. } => Ok(vec!["categories".into(), "codes".into()]),
        }
    }
    fn create_group(&self, path: &str) -> Result<()> {
        self.inner.create_group(path)
    }
    fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path)
    }
    fn attrs(&self, path: &str) -> Result<Attrs> {
        match self.map(path)? {
            Mapped::CatGroup { categories, .. } => {
                let mut a = Encoding::Categorical.attrs();
                let ordered = self.inner.attr(&categories, "ordered")?.and_then(|v| v.as_bool()).unwrap_or(false);
                a.insert("ordered".into(), AttrValue::Bool(ordered));
                Ok(a)
            }
            Mapped::Real(p) => {
                let mut a = self.inner.attrs(&p)?;
                if self.is_legacy_frame(&p)? {
                    a.extend(Encoding::DataFrame.attrs());
                    // HDF5 object references (unreadable, shown as Null) are not data.
                    a.retain(|_, v| *v != AttrValue::Null);
                } else if p != norm_path(path) {
                    // codes/categories of a legacy categorical: plain arrays now.
                    a.remove("categories");
                    a.remove("ordered");
                    a.retain(|_, v| *v != AttrValue::Null);
                }
                Ok(a)
            }
        }
    }
    fn set_attrs(&self, path: &str, attrs: &Attrs) -> Result<()> {
        self.inner.set_attrs(path, attrs)
    }
    fn create_array(&self, path: &str, spec: &ArraySpec) -> Result<()> {
        self.inner.create_array(path, spec)
    }
    fn array_meta(&self, path: &str) -> Result<ArrayMeta> {
        self.inner.array_meta(&self.real(path)?)
    }
    fn read(&self, path: &str, start: &[u64], shape: &[u64]) -> Result<ArrayData> {
        self.inner.read(&self.real(path)?, start, shape)
    }
    fn write(&self, path: &str, start: &[u64], data: &ArrayData) -> Result<()> {
        self.inner.write(path, start, data)
    }
    fn write_rows_range(&self, path: &str, start: u64, data: &ArrayData, rows: std::ops::Range<usize>) -> Result<()> {
        self.inner.write_rows_range(path, start, data, rows)
    }
    fn resize(&self, path: &str, shape: &[u64]) -> Result<()> {
        self.inner.resize(path, shape)
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn stored_bytes(&self, path: &str) -> Result<Option<u64>> {
        match self.map(path)? {
            Mapped::Real(p) => self.inner.stored_bytes(&p),
            Mapped::CatGroup { .. } => Ok(None),
        }
    }
    fn is_record(&self, path: &str) -> Result<bool> {
        match self.map(path)? {
            Mapped::Real(p) => self.inner.is_record(&p),
            Mapped::CatGroup { .. } => Ok(false),
        }
    }
    fn read_record(&self, path: &str) -> Result<Vec<(String, ArrayData)>> {
        self.inner.read_record(&self.real(path)?)
    }
    fn create_record(&self, path: &str, fields: &[(String, ArrayData)], compression: &Compression) -> Result<()> {
        self.inner.create_record(path, fields, compression)
    }
}
