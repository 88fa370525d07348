//! Writing a store under its final prefix in object storage, published by its root
//! metadata.
//!
//! Object storage has no rename, so an output cannot be built aside and moved into
//! place. Instead every object is written under the final prefix while the root
//! metadata (`zarr.json`; `.zgroup`, `.zattrs`, `.zmetadata`) is written under
//! [`STAGED`], and [`Publisher::publish`] copies it to the root last: zarr readers open
//! a hierarchy by its root metadata, so until then no reader sees a store at the
//! prefix, half-written or not. Staged root metadata (not held in memory) lets the
//! tasks of a job, in other processes, open the unpublished store.
//!
//! A marker object ([`MARKER`]) is written first and removed after publication, so a
//! later run can tell the partial output of an interrupted run from someone else's
//! objects ([`occupant`]).

use crate::s3::{self, S3Url};
use crate::{ZarrStore, ZarrVersion};
use adcat_store::{Result, StoreError};
use zarrs::storage::{ReadableWritableListableStorage, StoreKey, StorePrefix};

/// The object that marks a prefix as the partial output of an adcat run.
pub const MARKER: &str = ".adcat-incomplete";

/// Root metadata documents, in the order they are published: the one a reader opens a
/// hierarchy by comes last (v2 readers look for `.zgroup`, consolidated ones for
/// `.zmetadata` beside it).
const ROOT_DOCS: [&str; 4] = [".zattrs", ".zmetadata", ".zgroup", "zarr.json"];

/// Where an unpublished store keeps its root metadata documents.
pub const STAGED: &str = ".adcat-staged";

/// What a prefix in object storage holds, before an output is written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occupant {
    /// No objects.
    Nothing,
    /// A zarr hierarchy; `anndata` when its root says it is an AnnData store (or has
    /// `obs` and `var`, as stores written before encoding attributes do).
    Store {
        /// Whether it is an AnnData store.
        anndata: bool,
    },
    /// The partial output of an adcat run that was stopped before it could clean up.
    Leftover,
    /// Objects that are not a zarr hierarchy.
    Other,
}

fn open_err(url: &S3Url, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open { location: url.to_string(), reason: s3::one_line(&e) }
}

fn storage_for_output(url: &str) -> Result<(S3Url, ReadableWritableListableStorage)> {
    let parsed = S3Url::parse(url).map_err(|reason| StoreError::Open { location: url.to_owned(), reason })?;
    if parsed.prefix.is_empty() {
        return Err(StoreError::Open { location: url.to_owned(), reason: "an output needs a key prefix of its own (s3://BUCKET/NAME.zarr), not a whole bucket".into() });
    }
    let storage = s3::storage(&parsed)?;
    Ok((parsed, storage))
}

/// What the prefix `url` holds.
pub fn occupant(url: &str) -> Result<Occupant> {
    let (parsed, storage) = storage_for_output(url)?;
    let top = storage.list_dir(&StorePrefix::root()).map_err(|e| open_err(&parsed, e))?;
    let names: Vec<&str> = top.keys().iter().map(StoreKey::as_str).collect();
    if names.contains(&MARKER) {
        return Ok(Occupant::Leftover);
    }
    if names.is_empty() && (top.prefixes().is_empty() || !s3::any_object(&parsed)?) {
        return Ok(Occupant::Nothing);
    }
    if !names.iter().any(|n| ROOT_DOCS.contains(n)) {
        return Ok(Occupant::Other);
    }
    let anndata = match ZarrStore::open_storage(storage, parsed.to_string(), false) {
        Ok(store) => is_anndata(&store),
        Err(_) => false,
    };
    Ok(Occupant::Store { anndata })
}

fn is_anndata(store: &ZarrStore) -> bool {
    use adcat_store::Store;
    let typed = store.attr("", "encoding-type").ok().flatten().is_some_and(|v| v.as_str() == Some("anndata"));
    typed || (store.node_kind("obs").ok().flatten().is_some() && store.node_kind("var").ok().flatten().is_some())
}

/// Remove every object under the prefix `url`: the root metadata first, so that no
/// reader opens a store while its other objects are being deleted.
pub fn remove(url: &str) -> Result<()> {
    let (parsed, _) = storage_for_output(url)?;
    remove_all(&parsed, &s3::storage_unbounded(&parsed)?)
}

/// Root metadata first, the marker last: a removal cut short leaves no store a reader
/// opens, and a prefix the next run still recognises as a leftover.
fn remove_all(url: &S3Url, storage: &ReadableWritableListableStorage) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| open_err(url, e);
    for doc in ROOT_DOCS.iter().rev() {
        storage.erase(&StoreKey::new(*doc).map_err(|e| fail(&e))?).map_err(|e| fail(&e))?;
    }
    let top = storage.list_dir(&StorePrefix::root()).map_err(|e| fail(&e))?;
    for prefix in top.prefixes() {
        storage.erase_prefix(prefix).map_err(|e| fail(&e))?;
    }
    for key in top.keys().iter().filter(|k| k.as_str() != MARKER) {
        storage.erase(key).map_err(|e| fail(&e))?;
    }
    storage.erase(&StoreKey::new(MARKER).map_err(|e| fail(&e))?).map_err(|e| fail(&e))
}

/// Publishes (or discards) a store created by [`ZarrStore::create_url`].
pub struct Publisher {
    url: S3Url,
    storage: ReadableWritableListableStorage,
    /// For [`Publisher::discard`] (see `s3::storage_unbounded`).
    unbounded: ReadableWritableListableStorage,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("url", &self.url.to_string()).finish()
    }
}

impl Publisher {
    /// Copy the staged root metadata to the root (call after the store's `flush`), then
    /// remove the staged copies and the marker: from here on readers see the store.
    pub fn publish(&self) -> Result<()> {
        let fail = |e: &dyn std::fmt::Display| open_err(&self.url, e);
        let staged = |doc: &str| StoreKey::new(format!("{STAGED}/{doc}")).map_err(|e| fail(&e));
        for doc in ROOT_DOCS {
            if let Some(bytes) = self.storage.get(&staged(doc)?).map_err(|e| fail(&e))? {
                self.storage.set(&StoreKey::new(doc).map_err(|e| fail(&e))?, bytes).map_err(|e| fail(&e))?;
            }
        }
        for doc in ROOT_DOCS {
            self.storage.erase(&staged(doc)?).map_err(|e| fail(&e))?;
        }
        self.storage.erase(&StoreKey::new(MARKER).map_err(|e| fail(&e))?).map_err(|e| fail(&e))
    }

    /// Remove everything written under the prefix (the output was not completed).
    pub fn discard(&self) -> Result<()> {
        remove_all(&self.url, &self.unbounded)
    }

    /// The store's URL.
    pub fn url(&self) -> String {
        self.url.to_string()
    }
}

impl ZarrStore {
    /// Create a new hierarchy under the prefix `url` in object storage, which must hold
    /// no objects (see [`occupant`] and [`remove`]). Nothing is visible to readers until
    /// the returned [`Publisher`] publishes it.
    pub fn create_url(url: &str, version: ZarrVersion) -> Result<(Self, Publisher)> {
        let (parsed, storage) = storage_for_output(url)?;
        let note = serde_json::json!({
            "note": "partial output of an adcat run; the store is complete once its root metadata exists and this object is gone",
            "pid": std::process::id(),
        });
        let marker = StoreKey::new(MARKER).map_err(|e| open_err(&parsed, e))?;
        let bytes = serde_json::to_vec_pretty(&note).unwrap_or_default();
        storage.set(&marker, bytes.into()).map_err(|e| open_err(&parsed, e))?;
        let store = ZarrStore::create_at(storage.clone(), parsed.to_string(), version, true)?;
        let unbounded = s3::storage_unbounded(&parsed)?;
        Ok((store, Publisher { url: parsed, storage, unbounded }))
    }

    /// Open the unpublished store an adcat run (a job) is building under `url`, for
    /// reading and writing.
    pub fn open_url_staged(url: &str) -> Result<(Self, Publisher)> {
        let (parsed, storage) = storage_for_output(url)?;
        let marker = StoreKey::new(MARKER).map_err(|e| open_err(&parsed, e))?;
        if storage.get(&marker).map_err(|e| open_err(&parsed, e))?.is_none() {
            let reason = "no unpublished adcat output here (published already, or removed)".to_owned();
            return Err(StoreError::Open { location: parsed.to_string(), reason });
        }
        let store = ZarrStore::open_at(storage.clone(), parsed.to_string(), true, true)?;
        let unbounded = s3::storage_unbounded(&parsed)?;
        Ok((store, Publisher { url: parsed, storage, unbounded }))
    }
}
