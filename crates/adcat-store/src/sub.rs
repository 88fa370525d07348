//! A group of a store seen as a store of its own.
//!
//! A collection of AnnData stores kept in one store (annbatch's `dataset_0`,
//! `dataset_1`, ...) is written and checked one member at a time by code that works on
//! a store's root: [`Sub`] shows the group at its prefix as that root. Paths are joined
//! onto the prefix, so errors name the full path in the underlying store.

use crate::{join_path, Forward, Result, Store, StoreKind};
use std::borrow::Cow;

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
}

impl Forward for Sub<'_> {
    fn target(&self, _path: &str) -> Result<&dyn Store> {
        Ok(self.inner)
    }
    fn target_path<'p>(&self, path: &'p str) -> Cow<'p, str> {
        Cow::Owned(join_path(&self.prefix, path))
    }
}

impl Store for Sub<'_> {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn kind(&self) -> StoreKind {
        self.inner.kind()
    }
    crate::forward_store!(
        node_kind, list, create_group, delete, attrs, set_attrs, create_array, array_meta, read, write, write_rows_range, resize, flush,
        stored_bytes, is_fixed_ascii, is_record, read_record, record_fields, record_len, read_field, create_record, attr,
        physical, create_virtual, virtual_sources,
    );
}
