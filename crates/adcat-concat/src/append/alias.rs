//! Inputs seen with one more var element, [`KEY`], that the append matches genes by.
//!
//! With `--var-key gene_ids`, delta's concatenation matches the new inputs by their
//! `gene_ids` column, and the store (its first input) by its var index — a store built
//! with the key has its names in the column's terms, and a `gene_ids` column it may
//! have (kept by a merge) can have gaps. Each input answers for `var/KEY` with the
//! element to match by; its real columns are untouched, so merges see them as they
//! are. `KEY` is in no `column-order`, so no merge reads it. Read only.

use adcat_store::{ArrayData, ArrayMeta, ArraySpec, Attrs, Compression, NodeKind, RecordField, Result, Store, StoreError, StoreKind};
use std::borrow::Cow;

/// The private column name delta's inputs are matched by.
pub(crate) const KEY: &str = "\u{1}adcat:var-key";

/// `inner`, with the element `alias` answering as `target` (and their children).
pub(crate) struct KeyAlias<'a> {
    inner: &'a dyn Store,
    alias: String,
    target: String,
}

impl std::fmt::Debug for KeyAlias<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAlias").field("store", &self.inner.location()).field("alias", &self.alias).field("target", &self.target).finish()
    }
}

impl<'a> KeyAlias<'a> {
    /// `inner` with `alias` (`var/KEY`) read as `target` (`var/_index`, `var/gene_ids`).
    pub(crate) fn new(inner: &'a dyn Store, alias: String, target: String) -> Self {
        KeyAlias { inner, alias, target }
    }

    fn map<'p>(&self, path: &'p str) -> Cow<'p, str> {
        map_path(&self.alias, &self.target, path)
    }
}

/// `path` with the element `alias` (or a child of it) replaced by `target`.
fn map_path<'p>(alias: &str, target: &str, path: &'p str) -> Cow<'p, str> {
    match path.trim_start_matches('/').strip_prefix(alias) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => Cow::Owned(format!("{target}{rest}")),
        _ => Cow::Borrowed(path),
    }
}

fn read_only(path: &str) -> StoreError {
    StoreError::ReadOnly { path: path.to_owned() }
}

impl Store for KeyAlias<'_> {
    fn location(&self) -> &str {
        self.inner.location()
    }

    fn kind(&self) -> StoreKind {
        self.inner.kind()
    }

    fn node_kind(&self, path: &str) -> Result<Option<NodeKind>> {
        self.inner.node_kind(&self.map(path))
    }

    fn list(&self, path: &str) -> Result<Vec<String>> {
        self.inner.list(&self.map(path))
    }

    fn create_group(&self, path: &str) -> Result<()> {
        Err(read_only(path))
    }

    fn delete(&self, path: &str) -> Result<()> {
        Err(read_only(path))
    }

    fn attrs(&self, path: &str) -> Result<Attrs> {
        self.inner.attrs(&self.map(path))
    }

    fn set_attrs(&self, path: &str, _attrs: &Attrs) -> Result<()> {
        Err(read_only(path))
    }

    fn create_array(&self, path: &str, _spec: &ArraySpec) -> Result<()> {
        Err(read_only(path))
    }

    fn array_meta(&self, path: &str) -> Result<ArrayMeta> {
        self.inner.array_meta(&self.map(path))
    }

    fn read(&self, path: &str, start: &[u64], shape: &[u64]) -> Result<ArrayData> {
        self.inner.read(&self.map(path), start, shape)
    }

    fn write(&self, path: &str, _start: &[u64], _data: &ArrayData) -> Result<()> {
        Err(read_only(path))
    }

    fn resize(&self, path: &str, _shape: &[u64]) -> Result<()> {
        Err(read_only(path))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn stored_bytes(&self, path: &str) -> Result<Option<u64>> {
        self.inner.stored_bytes(&self.map(path))
    }

    fn is_fixed_ascii(&self, path: &str) -> Result<bool> {
        self.inner.is_fixed_ascii(&self.map(path))
    }

    fn is_record(&self, path: &str) -> Result<bool> {
        self.inner.is_record(&self.map(path))
    }

    fn read_record(&self, path: &str) -> Result<Vec<(String, ArrayData)>> {
        self.inner.read_record(&self.map(path))
    }

    fn record_fields(&self, path: &str) -> Result<Vec<RecordField>> {
        self.inner.record_fields(&self.map(path))
    }

    fn read_field(&self, path: &str, field: &str, start: u64, end: u64) -> Result<ArrayData> {
        self.inner.read_field(&self.map(path), field, start, end)
    }

    fn record_len(&self, path: &str) -> Result<u64> {
        self.inner.record_len(&self.map(path))
    }

    fn create_record(&self, path: &str, _fields: &[(String, ArrayData)], _compression: &Compression) -> Result<()> {
        Err(read_only(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_alias_and_its_children_are_mapped() {
        let m = |p| map_path("var/gene_ids", "var/_index", p).into_owned();
        assert_eq!(m("var/gene_ids"), "var/_index");
        assert_eq!(m("/var/gene_ids/values"), "var/_index/values");
        assert_eq!(m("var/gene_ids_2"), "var/gene_ids_2");
        assert_eq!(m("obs/gene_ids"), "obs/gene_ids");
    }
}
