//! A storage view rooted at a key prefix.
//!
//! zarrs refuses node paths with a component starting with `__` (reserved in Zarr v3),
//! but anndata 0.7 wrote its categories to `obs/__categories/<column>` in zarr v2 stores.
//! Such an array is opened at the root of a [`Rebased`] view whose prefix is the array's
//! key prefix, so zarrs never sees the reserved name while every key it touches still
//! maps to exactly one key of the underlying store, inside that array's directory.

use std::sync::Arc;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, ListableStorageTraits, MaybeBytes, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits, ReadableWritableListableStorage,
    StorageError, StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix, StorePrefixes, WritableStorageTraits,
};

/// The part of a storage below `prefix`, seen as a storage of its own.
pub(crate) struct Rebased {
    inner: ReadableWritableListableStorage,
    /// A key prefix of the underlying storage, ending in `/`.
    prefix: StorePrefix,
}

impl Rebased {
    /// A view of `inner` rooted at node path `path` (no leading `/`, non-empty).
    pub(crate) fn new(inner: ReadableWritableListableStorage, path: &str) -> Result<Self, StorageError> {
        Ok(Self { inner, prefix: StorePrefix::new(format!("{path}/"))? })
    }

    pub(crate) fn into_storage(self) -> ReadableWritableListableStorage {
        Arc::new(self)
    }

    fn key(&self, key: &StoreKey) -> Result<StoreKey, StorageError> {
        Ok(StoreKey::new(format!("{}{}", self.prefix.as_str(), key.as_str()))?)
    }

    fn outer_prefix(&self, prefix: &StorePrefix) -> Result<StorePrefix, StorageError> {
        Ok(StorePrefix::new(format!("{}{}", self.prefix.as_str(), prefix.as_str()))?)
    }

    /// Keys of the underlying storage, seen from inside the view.
    fn inner_keys(&self, keys: StoreKeys) -> Result<StoreKeys, StorageError> {
        keys.iter()
            .filter_map(|k| k.as_str().strip_prefix(self.prefix.as_str()))
            .map(|k| StoreKey::new(k).map_err(StorageError::from))
            .collect()
    }

    fn inner_prefixes(&self, prefixes: &StorePrefixes) -> Result<StorePrefixes, StorageError> {
        prefixes
            .iter()
            .filter_map(|p| p.as_str().strip_prefix(self.prefix.as_str()))
            .map(|p| StorePrefix::new(p).map_err(StorageError::from))
            .collect()
    }
}

impl ReadableStorageTraits for Rebased {
    fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        self.inner.get(&self.key(key)?)
    }

    fn get_partial_many<'a>(&'a self, key: &StoreKey, byte_ranges: ByteRangeIterator<'a>) -> Result<MaybeBytesIterator<'a>, StorageError> {
        self.inner.get_partial_many(&self.key(key)?, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.inner.size_key(&self.key(key)?)
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

impl ListableStorageTraits for Rebased {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        self.inner_keys(self.inner.list_prefix(&self.prefix)?)
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        self.inner_keys(self.inner.list_prefix(&self.outer_prefix(prefix)?)?)
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        let found = self.inner.list_dir(&self.outer_prefix(prefix)?)?;
        Ok(StoreKeysPrefixes::new(self.inner_keys(found.keys().clone())?, self.inner_prefixes(found.prefixes())?))
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        self.inner.size_prefix(&self.outer_prefix(prefix)?)
    }
}

impl WritableStorageTraits for Rebased {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        self.inner.set(&self.key(key)?, value)
    }

    fn set_partial_many(&self, key: &StoreKey, offset_values: OffsetBytesIterator) -> Result<(), StorageError> {
        self.inner.set_partial_many(&self.key(key)?, offset_values)
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        self.inner.erase(&self.key(key)?)
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        self.inner.erase_prefix(&self.outer_prefix(prefix)?)
    }

    fn supports_set_partial(&self) -> bool {
        self.inner.supports_set_partial()
    }
}

/// Whether zarrs accepts `path` (no leading `/`) as a node path; it refuses components
/// starting with the reserved `__`.
pub(crate) fn zarrs_accepts(path: &str) -> bool {
    zarrs::node::NodePath::validate(&format!("/{path}"))
}

/// The storage and node path to open the array at `path` with, rebasing when zarrs
/// would refuse the path.
pub(crate) fn array_root(storage: &ReadableWritableListableStorage, path: &str) -> Result<(ReadableWritableListableStorage, String), StorageError> {
    if path.is_empty() || zarrs_accepts(path) {
        return Ok((storage.clone(), format!("/{path}")));
    }
    Ok((Rebased::new(storage.clone(), path)?.into_storage(), "/".to_owned()))
}
