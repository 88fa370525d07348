//! Shadow copies of a local store, for changing it as a whole or not at all.
//!
//! [`link_tree`] copies a store directory by hard links (cheap: no data is copied), and
//! [`ZarrStore::open_shadow`] opens the copy so that every write replaces a linked file
//! instead of writing into it. The original store therefore never changes, whatever
//! happens to the copy; the caller renames the copy over the original once it is
//! complete (see `adcat append`).

use crate::ZarrStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, ListableStorageTraits, MaybeBytes, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits, StorageError, StoreKey, StoreKeys,
    StoreKeysPrefixes, StorePrefix, WritableStorageTraits,
};

/// How [`link_tree`] made the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Files hard-linked.
    pub linked: u64,
    /// Files copied (the file system refused a link).
    pub copied: u64,
    /// Bytes copied.
    pub copied_bytes: u64,
}

/// Recreate the directory tree `src` at `dst` (which must not exist), hard-linking
/// every file, or copying it where the file system cannot link.
pub fn link_tree(src: &Path, dst: &Path) -> std::io::Result<LinkStats> {
    let mut stats = LinkStats::default();
    std::fs::create_dir(dst)?;
    let mut stack: Vec<(PathBuf, PathBuf)> = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((s, d)) = stack.pop() {
        for entry in std::fs::read_dir(&s)? {
            let entry = entry?;
            let (from, to) = (entry.path(), d.join(entry.file_name()));
            // Follows symbolic links: the copy holds what the store reads. A linked file
            // is copied: a hard link would link the symbolic link itself, whose target a
            // write through the copy would then change.
            let meta = std::fs::metadata(&from)?;
            let symlink = entry.file_type()?.is_symlink();
            if meta.is_dir() {
                std::fs::create_dir(&to)?;
                stack.push((from, to));
            } else if !symlink && std::fs::hard_link(&from, &to).is_ok() {
                stats.linked += 1;
            } else {
                stats.copied_bytes += std::fs::copy(&from, &to)?;
                stats.copied += 1;
            }
        }
    }
    Ok(stats)
}

/// A file-system storage whose writes never reach a file shared with another directory
/// (a hard link of the original store): such a file is replaced, not written into.
struct Unshared {
    inner: zarrs::filesystem::FilesystemStore,
}

impl Unshared {
    /// Make the file of `key` this store's own: a linked file is replaced by a private
    /// copy (`keep`: with its bytes, for a partial write) or removed.
    fn own(&self, key: &StoreKey, keep: bool) -> Result<(), StorageError> {
        let path = self.inner.key_to_fspath(key);
        let Ok(meta) = std::fs::symlink_metadata(&path) else { return Ok(()) };
        // A symbolic link is shared with whatever it points at.
        if !meta.file_type().is_symlink() && links(&meta) <= 1 {
            return Ok(());
        }
        let io = |e: std::io::Error| StorageError::Other(format!("{}: {e}", path.display()));
        if keep {
            let tmp = path.with_extension("adcat-own");
            std::fs::copy(&path, &tmp).map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)
        } else {
            std::fs::remove_file(&path).map_err(io)
        }
    }
}

#[cfg(unix)]
fn links(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.nlink()
}

#[cfg(not(unix))]
fn links(_meta: &std::fs::Metadata) -> u64 {
    // Without link counts, treat every file as shared.
    2
}

impl ReadableStorageTraits for Unshared {
    fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        self.inner.get(key)
    }

    fn get_partial_many<'a>(&'a self, key: &StoreKey, byte_ranges: ByteRangeIterator<'a>) -> Result<MaybeBytesIterator<'a>, StorageError> {
        self.inner.get_partial_many(key, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.inner.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

impl ListableStorageTraits for Unshared {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        self.inner.list()
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        self.inner.list_prefix(prefix)
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        self.inner.list_dir(prefix)
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        self.inner.size_prefix(prefix)
    }
}

impl WritableStorageTraits for Unshared {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        self.own(key, false)?;
        self.inner.set(key, value)
    }

    fn set_partial_many(&self, key: &StoreKey, offset_values: OffsetBytesIterator) -> Result<(), StorageError> {
        self.own(key, true)?;
        self.inner.set_partial_many(key, offset_values)
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        // Removing a link leaves the original's file alone.
        self.inner.erase(key)
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        self.inner.erase_prefix(prefix)
    }

    fn supports_set_partial(&self) -> bool {
        self.inner.supports_set_partial()
    }
}

impl ZarrStore {
    /// Open a copy made by [`link_tree`] for writing: files it shares with the original
    /// are replaced on write, never written into.
    pub fn open_shadow(path: impl AsRef<Path>) -> adcat_store::Result<Self> {
        let p = path.as_ref();
        let inner = Self::local_storage(p)?;
        Self::open_storage(Arc::new(Unshared { inner }), p.display().to_string(), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ZarrVersion;
    use adcat_store::{ArrayData, ArraySpec, DType, Store};
    use std::collections::BTreeMap;

    /// Every file under `dir` and its bytes.
    fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    /// Writing into a linked copy (a partial chunk rewritten, a resize, attributes, a
    /// deleted and a new array) leaves every file of the original as it was.
    #[test]
    fn writes_to_the_copy_never_reach_the_original() {
        for version in [ZarrVersion::V2, ZarrVersion::V3] {
            let dir = tempfile::tempdir().unwrap();
            let (orig, copy) = (dir.path().join("s.zarr"), dir.path().join("copy.zarr"));
            let s = ZarrStore::create(&orig, version).unwrap();
            s.create_array("a", &ArraySpec::new(DType::I32, vec![5]).chunks(vec![4])).unwrap();
            s.write_rows("a", 0, &ArrayData::from_vec(vec![1i32, 2, 3, 4, 5])).unwrap();
            s.create_array("b", &ArraySpec::new(DType::I32, vec![2])).unwrap();
            s.write_rows("b", 0, &ArrayData::from_vec(vec![7i32, 8])).unwrap();
            s.flush().unwrap();
            drop(s);
            let before = files(&orig);
            let stats = link_tree(&orig, &copy).unwrap();
            assert_eq!(stats.linked as usize, before.len());
            let c = ZarrStore::open_shadow(&copy).unwrap();
            c.resize("a", &[9]).unwrap();
            c.write_rows("a", 5, &ArrayData::from_vec(vec![6i32, 7, 8, 9])).unwrap();
            c.set_attrs("a", &[("k".to_owned(), adcat_store::AttrValue::Int(1))].into()).unwrap();
            c.delete("b").unwrap();
            c.create_array("n", &ArraySpec::new(DType::I32, vec![1])).unwrap();
            c.flush().unwrap();
            drop(c);
            assert_eq!(files(&orig), before, "the original changed ({version:?})");
            let r = ZarrStore::open(&copy).unwrap();
            assert_eq!(r.read_all("a").unwrap(), ArrayData::from_vec((1..=9).collect::<Vec<i32>>()));
            assert!(!r.exists("b").unwrap() && r.exists("n").unwrap());
            let o = ZarrStore::open(&orig).unwrap();
            assert_eq!(o.read_all("a").unwrap(), ArrayData::from_vec(vec![1i32, 2, 3, 4, 5]));
        }
    }

    /// A chunk that is a symbolic link (stores sharing a chunk cache): the copy gets the
    /// bytes, and a write through it leaves the link's target alone.
    #[cfg(unix)]
    #[test]
    fn symlinked_files_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        let (orig, copy) = (dir.path().join("s.zarr"), dir.path().join("copy.zarr"));
        let s = ZarrStore::create(&orig, ZarrVersion::V2).unwrap();
        s.create_array("a", &ArraySpec::new(DType::I32, vec![3]).chunks(vec![4])).unwrap();
        s.write_rows("a", 0, &ArrayData::from_vec(vec![1i32, 2, 3])).unwrap();
        s.flush().unwrap();
        drop(s);
        let (chunk, shared) = (orig.join("a/0"), dir.path().join("shared-chunk"));
        std::fs::rename(&chunk, &shared).unwrap();
        std::os::unix::fs::symlink(&shared, &chunk).unwrap();
        let before = std::fs::read(&shared).unwrap();
        let stats = link_tree(&orig, &copy).unwrap();
        assert_eq!(stats.copied, 1);
        let c = ZarrStore::open_shadow(&copy).unwrap();
        c.write_rows("a", 0, &ArrayData::from_vec(vec![9i32])).unwrap();
        c.flush().unwrap();
        assert_eq!(std::fs::read(&shared).unwrap(), before);
        assert_eq!(ZarrStore::open(&copy).unwrap().read_all("a").unwrap(), ArrayData::from_vec(vec![9i32, 2, 3]));
    }
}
