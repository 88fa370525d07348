//! A group of a store seen as a store of its own.
//!
//! A collection of AnnData stores kept in one store (annbatch's `dataset_0`,
//! `dataset_1`, ...) is written and checked one member at a time by code that works on
//! a store's root: [`Sub`] shows the group at its prefix as that root. Paths are joined
//! onto the prefix, so errors name the full path in the underlying store.

use crate::{join_path, ArrayData, ArrayMeta, ArraySpec, AttrValue, Attrs, Compression, DType, NodeKind, Physical, RecordField, Result, Store, StoreKind, VirtualSource};

/// The group at `prefix` of a store, as a store.
#[derive(Debug)]
pub struct Sub<'a> {
    inner: &'a dyn Store,
    prefix: String,
}

impl<'a> Sub<'a> {
    /// The group at `prefix` (not checked to exist) of `inner`.
    pub fn new(inner: &'a dyn Store, prefix: &str) -> Self {
        Sub { inner, prefix: prefix.trim_matches('/').to_owned() }
    }

    fn at(&self, path: &str) -> String {
        join_path(&self.prefix, path)
    }
}

impl Store for Sub<'_> {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn kind(&self) -> StoreKind {
        self.inner.kind()
    }
    fn node_kind(&self, path: &str) -> Result<Option<NodeKind>> {
        self.inner.node_kind(&self.at(path))
    }
    fn list(&self, path: &str) -> Result<Vec<String>> {
        self.inner.list(&self.at(path))
    }
    fn create_group(&self, path: &str) -> Result<()> {
        self.inner.create_group(&self.at(path))
    }
    fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(&self.at(path))
    }
    fn attrs(&self, path: &str) -> Result<Attrs> {
        self.inner.attrs(&self.at(path))
    }
    fn set_attrs(&self, path: &str, attrs: &Attrs) -> Result<()> {
        self.inner.set_attrs(&self.at(path), attrs)
    }
    fn create_array(&self, path: &str, spec: &ArraySpec) -> Result<()> {
        self.inner.create_array(&self.at(path), spec)
    }
    fn array_meta(&self, path: &str) -> Result<ArrayMeta> {
        self.inner.array_meta(&self.at(path))
    }
    fn read(&self, path: &str, start: &[u64], shape: &[u64]) -> Result<ArrayData> {
        self.inner.read(&self.at(path), start, shape)
    }
    fn write(&self, path: &str, start: &[u64], data: &ArrayData) -> Result<()> {
        self.inner.write(&self.at(path), start, data)
    }
    fn write_rows_range(&self, path: &str, start: u64, data: &ArrayData, rows: std::ops::Range<usize>) -> Result<()> {
        self.inner.write_rows_range(&self.at(path), start, data, rows)
    }
    fn resize(&self, path: &str, shape: &[u64]) -> Result<()> {
        self.inner.resize(&self.at(path), shape)
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn stored_bytes(&self, path: &str) -> Result<Option<u64>> {
        self.inner.stored_bytes(&self.at(path))
    }
    fn is_fixed_ascii(&self, path: &str) -> Result<bool> {
        self.inner.is_fixed_ascii(&self.at(path))
    }
    fn is_record(&self, path: &str) -> Result<bool> {
        self.inner.is_record(&self.at(path))
    }
    fn read_record(&self, path: &str) -> Result<Vec<(String, ArrayData)>> {
        self.inner.read_record(&self.at(path))
    }
    fn record_fields(&self, path: &str) -> Result<Vec<RecordField>> {
        self.inner.record_fields(&self.at(path))
    }
    fn record_len(&self, path: &str) -> Result<u64> {
        self.inner.record_len(&self.at(path))
    }
    fn read_field(&self, path: &str, field: &str, start: u64, end: u64) -> Result<ArrayData> {
        self.inner.read_field(&self.at(path), field, start, end)
    }
    fn create_record(&self, path: &str, fields: &[(String, ArrayData)], compression: &Compression) -> Result<()> {
        self.inner.create_record(&self.at(path), fields, compression)
    }
    fn attr(&self, path: &str, name: &str) -> Result<Option<AttrValue>> {
        self.inner.attr(&self.at(path), name)
    }
    fn physical(&self, path: &str) -> Result<Option<Physical>> {
        self.inner.physical(&self.at(path))
    }
    fn create_virtual(&self, path: &str, dtype: DType, shape: &[u64], sources: &[VirtualSource]) -> Result<()> {
        self.inner.create_virtual(&self.at(path), dtype, shape, sources)
    }
    fn virtual_sources(&self, path: &str) -> Result<Vec<VirtualSource>> {
        self.inner.virtual_sources(&self.at(path))
    }
}
