//! A store adapter that refuses to read arrays whose chunks are too large to decode.
//!
//! Backends decode whole chunks (and, for sharded zarr arrays, whole shard indexes) to
//! serve any read that touches them, whatever the size of the selection. A chunk's
//! decoded size comes from metadata the file's author chose: a hostile or careless file
//! can declare one chunk of many GiB, compressed to a few bytes. [`Bounded`] checks the
//! decoded size against a limit before the first read of each array, so such a read fails
//! at once with the sizes instead of exhausting memory.

use crate::{ArrayData, ArrayMeta, Forward, Result, Store, StoreError, StoreKind};
use std::collections::HashSet;
use std::sync::Mutex;

/// Bytes of a shard index entry (offset and length, u64 each).
const INDEX_ENTRY_BYTES: u64 = 16;

/// Human-readable byte size (binary units).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Decoded bytes of one chunk of `meta` and of one shard index (0 when unsharded), or
/// `None` when the array is stored contiguously (read piecewise).
pub fn chunk_decode_bytes(meta: &ArrayMeta) -> Option<(u64, u64)> {
    let chunks = meta.chunks.as_ref()?;
    let elems = chunks.iter().try_fold(1u64, |a, &c| a.checked_mul(c.max(1))).unwrap_or(u64::MAX);
    let chunk = elems.saturating_mul(meta.dtype.itemsize() as u64);
    let index = match &meta.shards {
        Some(s) => s
            .iter()
            .zip(chunks)
            .try_fold(1u64, |a, (&s, &c)| a.checked_mul(s.div_ceil(c.max(1)).max(1)))
            .unwrap_or(u64::MAX)
            .saturating_mul(INDEX_ENTRY_BYTES),
        None => 0,
    };
    Some((chunk, index))
}

/// Says where a limit comes from and how to raise it, given the decoded size that was
/// refused (for the error message).
pub type LimitHint = Box<dyn Fn(u64) -> String + Send + Sync>;

/// A [`Store`] whose reads fail when the array's chunks decode to more than a limit.
pub struct Bounded {
    inner: Box<dyn Store>,
    max_chunk_bytes: u64,
    hint: LimitHint,
    checked: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Bounded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bounded").field("inner", &self.inner).field("max_chunk_bytes", &self.max_chunk_bytes).finish()
    }
}

impl Bounded {
    /// Wrap `inner`; arrays whose chunk (or shard index) decodes to more than
    /// `max_chunk_bytes` cannot be read. `hint` says where the limit comes from and how
    /// to raise it, for the error message.
    pub fn new(inner: Box<dyn Store>, max_chunk_bytes: u64, hint: LimitHint) -> Self {
        Bounded { inner, max_chunk_bytes, hint, checked: Mutex::new(HashSet::new()) }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &dyn Store {
        self.inner.as_ref()
    }

    fn check(&self, path: &str) -> Result<()> {
        let key = crate::norm_path(path);
        if self.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&key) {
            return Ok(());
        }
        let meta = self.inner.array_meta(path)?;
        if let Some((chunk, index)) = chunk_decode_bytes(&meta) {
            let (what, size) = if chunk >= index { ("a chunk", chunk) } else { ("a shard index", index) };
            if size > self.max_chunk_bytes {
                return Err(StoreError::ChunkTooLarge {
                    path: key,
                    reason: format!(
                        "{what} of this array decodes to {} and is read whole, more than the {} allowed per chunk; {}",
                        human_bytes(size),
                        human_bytes(self.max_chunk_bytes),
                        (self.hint)(size)
                    ),
                });
            }
        }
        self.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key);
        Ok(())
    }
}

impl Forward for Bounded {
    fn target(&self, _path: &str) -> Result<&dyn Store> {
        Ok(&*self.inner)
    }
}

impl Store for Bounded {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn kind(&self) -> StoreKind {
        self.inner.kind()
    }
    fn read(&self, path: &str, start: &[u64], shape: &[u64]) -> Result<ArrayData> {
        self.check(path)?;
        self.inner.read(path, start, shape)
    }
    // Record arrays have no `ArrayMeta` (their element is a struct); they are read
    // whole by design (small tables such as rank_genes_groups).
    crate::forward_store!(
        node_kind, list, create_group, delete, attrs, set_attrs, create_array, array_meta, write, write_rows_range, resize, flush,
        stored_bytes, is_fixed_ascii, is_record, read_record, record_fields, record_len, read_field, create_record, attr,
        physical, create_virtual, virtual_sources,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compression, DType};

    fn meta(chunks: Option<Vec<u64>>, shards: Option<Vec<u64>>) -> ArrayMeta {
        ArrayMeta { dtype: DType::F64, shape: vec![1 << 30], chunks, shards, compression: Compression::None, filters: vec![], null: false }
    }

    #[test]
    fn decode_sizes() {
        assert_eq!(chunk_decode_bytes(&meta(None, None)), None);
        assert_eq!(chunk_decode_bytes(&meta(Some(vec![1024]), None)), Some((8192, 0)));
        assert_eq!(chunk_decode_bytes(&meta(Some(vec![1]), Some(vec![1 << 20]))), Some((8, 16 << 20)));
        assert_eq!(chunk_decode_bytes(&meta(Some(vec![u64::MAX, 4]), None)).map(|c| c.0), Some(u64::MAX));
        assert_eq!(human_bytes(4 << 30), "4.0 GiB");
        assert_eq!(human_bytes(12), "12 B");
    }
}
