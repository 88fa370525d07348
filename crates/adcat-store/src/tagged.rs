//! Telling a job's output errors from its input errors.
//!
//! A job reads inputs and writes an output through the same code paths, so the place an
//! error surfaces does not say which file failed: a full disk while writing `X/indices`
//! would be reported against the input being read. [`OutputStore`] wraps the output and
//! marks every error it raises as [`StoreError::Output`], so callers name the output.

use crate::{ArrayData, ArrayMeta, ArraySpec, AttrValue, Attrs, Compression, DType, NodeKind, Physical, RecordField, Result, Store, StoreError, StoreKind, VirtualSource};

/// A store whose errors are all marked as the output's (see the module docs).
#[derive(Debug)]
pub struct OutputStore<'a>(pub &'a dyn Store);

fn tag(e: StoreError) -> StoreError {
    match e {
        StoreError::Output(_) => e,
        e => StoreError::Output(Box::new(e)),
    }
}

impl Store for OutputStore<'_> {
    fn location(&self) -> &str {
        self.0.location()
    }
    fn kind(&self) -> StoreKind {
        self.0.kind()
    }
    fn node_kind(&self, path: &str) -> Result<Option<NodeKind>> {
        self.0.node_kind(path).map_err(tag)
    }
    fn list(&self, path: &str) -> Result<Vec<String>> {
        self.0.list(path).map_err(tag)
    }
    fn create_group(&self, path: &str) -> Result<()> {
        self.0.create_group(path).map_err(tag)
    }
    fn delete(&self, path: &str) -> Result<()> {
        self.0.delete(path).map_err(tag)
    }
    fn attrs(&self, path: &str) -> Result<Attrs> {
        self.0.attrs(path).map_err(tag)
    }
    fn set_attrs(&self, path: &str, attrs: &Attrs) -> Result<()> {
        self.0.set_attrs(path, attrs).map_err(tag)
    }
    fn create_array(&self, path: &str, spec: &ArraySpec) -> Result<()> {
        self.0.create_array(path, spec).map_err(tag)
    }
    fn array_meta(&self, path: &str) -> Result<ArrayMeta> {
        self.0.array_meta(path).map_err(tag)
    }
    fn read(&self, path: &str, start: &[u64], shape: &[u64]) -> Result<ArrayData> {
        self.0.read(path, start, shape).map_err(tag)
    }
    fn write(&self, path: &str, start: &[u64], data: &ArrayData) -> Result<()> {
        self.0.write(path, start, data).map_err(tag)
    }
    fn write_rows_range(&self, path: &str, start: u64, data: &ArrayData, rows: std::ops::Range<usize>) -> Result<()> {
        self.0.write_rows_range(path, start, data, rows).map_err(tag)
    }
    fn resize(&self, path: &str, shape: &[u64]) -> Result<()> {
        self.0.resize(path, shape).map_err(tag)
    }
    fn flush(&self) -> Result<()> {
        self.0.flush().map_err(tag)
    }
    fn stored_bytes(&self, path: &str) -> Result<Option<u64>> {
        self.0.stored_bytes(path).map_err(tag)
    }
    fn is_fixed_ascii(&self, path: &str) -> Result<bool> {
        self.0.is_fixed_ascii(path).map_err(tag)
    }
    fn is_record(&self, path: &str) -> Result<bool> {
        self.0.is_record(path).map_err(tag)
    }
    fn read_record(&self, path: &str) -> Result<Vec<(String, ArrayData)>> {
        self.0.read_record(path).map_err(tag)
    }
    fn record_fields(&self, path: &str) -> Result<Vec<RecordField>> {
        self.0.record_fields(path).map_err(tag)
    }
    fn record_len(&self, path: &str) -> Result<u64> {
        self.0.record_len(path).map_err(tag)
    }
    fn read_field(&self, path: &str, field: &str, start: u64, end: u64) -> Result<ArrayData> {
        self.0.read_field(path, field, start, end).map_err(tag)
    }
    fn create_record(&self, path: &str, fields: &[(String, ArrayData)], compression: &Compression) -> Result<()> {
        self.0.create_record(path, fields, compression).map_err(tag)
    }
    fn attr(&self, path: &str, name: &str) -> Result<Option<AttrValue>> {
        self.0.attr(path, name).map_err(tag)
    }
    fn physical(&self, path: &str) -> Result<Option<Physical>> {
        self.0.physical(path).map_err(tag)
    }
    fn create_virtual(&self, path: &str, dtype: DType, shape: &[u64], sources: &[VirtualSource]) -> Result<()> {
        self.0.create_virtual(path, dtype, shape, sources).map_err(tag)
    }
    fn virtual_sources(&self, path: &str) -> Result<Vec<VirtualSource>> {
        self.0.virtual_sources(path).map_err(tag)
    }
}
