//! Inputs seen with one more var element, [`KEY`], that the append matches genes by.
//!
//! With `--var-key gene_ids`, delta's concatenation matches the new inputs by their
//! `gene_ids` column, and the store (its first input) by its var index — a store built
//! with the key has its names in the column's terms, and a `gene_ids` column it may
//! have (kept by a merge) can have gaps. Each input answers for `var/KEY` with the
//! element to match by; its real columns are untouched, so merges see them as they
//! are. `KEY` is in no `column-order`, so no merge reads it. Read only.

use adcat_store::{Forward, Result, Store, StoreKind};
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
}

/// `path` with the element `alias` (or a child of it) replaced by `target`.
fn map_path<'p>(alias: &str, target: &str, path: &'p str) -> Cow<'p, str> {
    match path.trim_start_matches('/').strip_prefix(alias) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => Cow::Owned(format!("{target}{rest}")),
        _ => Cow::Borrowed(path),
    }
}

impl Forward for KeyAlias<'_> {
    fn target(&self, _path: &str) -> Result<&dyn Store> {
        Ok(self.inner)
    }
    fn target_path<'p>(&self, path: &'p str) -> Cow<'p, str> {
        map_path(&self.alias, &self.target, path)
    }
}

impl Store for KeyAlias<'_> {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn kind(&self) -> StoreKind {
        self.inner.kind()
    }
    adcat_store::forward_store!(
        node_kind, list, attrs, array_meta, read, stored_bytes, is_fixed_ascii, is_record, read_record, record_fields, read_field, record_len,
    );
    adcat_store::read_only_store!();
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
