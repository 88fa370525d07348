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
use crate::{Shared, ZarrStore, ZarrVersion};
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
    /// The unpublished output of an adcat run: of a job (`job`), whose tasks may still
    /// be writing it, or of a run that was stopped before it could clean up.
    Leftover {
        /// Whether a job is building it.
        job: bool,
    },
    /// Objects that are not a zarr hierarchy.
    Other,
}

/// The marker's contents: who is writing the prefix.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Marker {
    note: String,
    /// Unique per output under construction: a job's tasks check they write the store
    /// their job created, not another run's at the same prefix.
    token: String,
    /// Whether a job (tasks in other processes) is building the store.
    #[serde(default)]
    job: bool,
}

fn open_err(url: &S3Url, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open { location: url.to_string(), reason: s3::one_line(&e) }
}

/// A failure of `what` (removing, publishing) at `url`.
fn io_err(url: &S3Url, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend { path: url.to_string(), message: format!("{what}: {}", s3::one_line(&e)) }
}

fn storage_for_output(url: &str) -> Result<(S3Url, ReadableWritableListableStorage)> {
    let parsed = S3Url::parse(url).map_err(|reason| StoreError::Open { location: url.to_owned(), reason })?;
    if parsed.prefix.is_empty() {
        return Err(StoreError::Open { location: url.to_owned(), reason: "an output needs a key prefix of its own (s3://BUCKET/NAME.zarr), not a whole bucket".into() });
    }
    let storage = s3::storage(&parsed)?;
    Ok((parsed, storage))
}

fn marker_key() -> StoreKey {
    StoreKey::new(MARKER).unwrap_or_else(|_| unreachable!("a constant, valid key"))
}

fn read_marker(url: &S3Url, storage: &ReadableWritableListableStorage) -> Result<Option<Marker>> {
    let Some(bytes) = storage.get(&marker_key()).map_err(|e| open_err(url, e))? else { return Ok(None) };
    // A marker of an older or foreign format still marks a leftover.
    Ok(Some(serde_json::from_slice(&bytes).unwrap_or(Marker { note: String::new(), token: String::new(), job: false })))
}

/// What the prefix `url` holds.
pub fn occupant(url: &str) -> Result<Occupant> {
    let (parsed, storage) = storage_for_output(url)?;
    let top = storage.list_dir(&StorePrefix::root()).map_err(|e| open_err(&parsed, e))?;
    let names: Vec<&str> = top.keys().iter().map(StoreKey::as_str).collect();
    if names.contains(&MARKER) {
        let job = read_marker(&parsed, &storage)?.is_some_and(|m| m.job);
        return Ok(Occupant::Leftover { job });
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

/// Remove every object under the prefix `url` (an existing store being replaced, or a
/// leftover). A marker goes first, so that a removal cut short leaves a prefix the next
/// run recognises as a leftover; then the root metadata, so that no reader opens a
/// store while its other objects are being deleted.
pub fn remove(url: &str) -> Result<()> {
    let (parsed, storage) = storage_for_output(url)?;
    if read_marker(&parsed, &storage)?.is_none() {
        write_marker(&parsed, &storage, &new_marker(false))?;
    }
    remove_all(&parsed, &s3::storage_unbounded(&parsed)?)
}

/// Root metadata first, the marker last (see [`remove`]).
fn remove_all(url: &S3Url, storage: &ReadableWritableListableStorage) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| io_err(url, "removing the unpublished output", e);
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
    storage.erase(&marker_key()).map_err(|e| fail(&e))
}

fn new_marker(job: bool) -> Marker {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    Marker {
        note: "unpublished output of an adcat run; the store is complete once its root metadata exists and this object is gone".into(),
        token: format!("{}-{nanos}", std::process::id()),
        job,
    }
}

fn write_marker(url: &S3Url, storage: &ReadableWritableListableStorage, m: &Marker) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(m).map_err(|e| open_err(url, e))?;
    storage.set(&marker_key(), bytes.into()).map_err(|e| open_err(url, e))
}

/// Publishes (or discards) a store created by [`ZarrStore::create_url`].
pub struct Publisher {
    url: S3Url,
    storage: ReadableWritableListableStorage,
    /// For [`Publisher::discard`] (see `s3::storage_unbounded`).
    unbounded: ReadableWritableListableStorage,
    token: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("url", &self.url.to_string()).finish()
    }
}

impl Publisher {
    /// Copy the staged root metadata to the root (call after the store's `flush`): from
    /// here on readers see the store. Then [`Publisher::tidy`].
    pub fn publish(&self) -> Result<()> {
        let fail = |e: &dyn std::fmt::Display| io_err(&self.url, "publishing", e);
        for doc in ROOT_DOCS {
            if let Some(bytes) = self.storage.get(&staged_key(doc)).map_err(|e| fail(&e))? {
                self.storage.set(&StoreKey::new(doc).map_err(|e| fail(&e))?, bytes).map_err(|e| fail(&e))?;
            }
        }
        Ok(())
    }

    /// Remove the staged root metadata and the marker of a published store. The group
    /// documents go first: a staged store without them is one whose publication is
    /// complete (see [`resume_publication`]).
    pub fn tidy(&self) -> Result<()> {
        let fail = |e: &dyn std::fmt::Display| io_err(&self.url, "removing the staged metadata", e);
        for doc in ROOT_DOCS.iter().rev() {
            self.storage.erase(&staged_key(doc)).map_err(|e| fail(&e))?;
        }
        self.storage.erase(&marker_key()).map_err(|e| fail(&e))
    }

    /// Remove everything written under the prefix (the output was not completed).
    pub fn discard(&self) -> Result<()> {
        remove_all(&self.url, &self.unbounded)
    }

    /// The store's URL.
    pub fn url(&self) -> String {
        self.url.to_string()
    }

    /// The token of this output under construction (see [`ZarrStore::open_url_staged`]).
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// Complete the publication of the store under `url` by the run holding `token`, if a
/// stop cut it short after it began (a finish run again after its process died):
/// root metadata already at the root and this run's marker still there. While the staged
/// group document remains the copy may be partial, so it is made again; without it,
/// tidying had begun, so the copy was complete. Returns whether the store is published.
pub fn resume_publication(url: &str, token: &str) -> Result<bool> {
    let (parsed, storage) = storage_for_output(url)?;
    match read_marker(&parsed, &storage)? {
        Some(m) if m.token == token => {}
        _ => return Ok(false),
    }
    let has = |k: StoreKey| storage.get(&k).map(|v| v.is_some()).map_err(|e| open_err(&parsed, e));
    let mut at_root = false;
    for doc in ROOT_DOCS {
        at_root |= has(StoreKey::new(doc).map_err(|e| open_err(&parsed, e))?)?;
    }
    if !at_root {
        return Ok(false);
    }
    let copy_again = has(staged_key("zarr.json"))? || has(staged_key(".zgroup"))?;
    let unbounded = s3::storage_unbounded(&parsed)?;
    let publisher = Publisher { url: parsed, storage, unbounded, token: token.to_owned() };
    if copy_again {
        publisher.publish()?;
    }
    publisher.tidy()?;
    Ok(true)
}

/// The token of the marker under `url`, if there is a marker.
pub fn marker_token(url: &str) -> Result<Option<String>> {
    let (parsed, storage) = storage_for_output(url)?;
    Ok(read_marker(&parsed, &storage)?.map(|m| m.token))
}

/// Whether a store under `url` is published: root metadata at the root, with or
/// without a marker left by tidying cut short.
pub fn is_published(url: &str) -> Result<bool> {
    let (parsed, storage) = storage_for_output(url)?;
    let top = storage.list_dir(&StorePrefix::root()).map_err(|e| open_err(&parsed, e))?;
    Ok(top.keys().iter().any(|k| ROOT_DOCS.contains(&k.as_str())))
}

fn staged_key(doc: &str) -> StoreKey {
    StoreKey::new(format!("{STAGED}/{doc}")).unwrap_or_else(|_| unreachable!("constant, valid keys"))
}

impl ZarrStore {
    /// Create a new hierarchy under the prefix `url` in object storage, which must hold
    /// no objects (see [`occupant`] and [`remove`]); `job`: built by a job's tasks.
    /// Nothing is visible to readers until the returned [`Publisher`] publishes it.
    pub fn create_url(url: &str, version: ZarrVersion, job: bool) -> Result<(Self, Publisher)> {
        let (parsed, storage) = storage_for_output(url)?;
        let marker = new_marker(job);
        write_marker(&parsed, &storage, &marker)?;
        let unbounded = s3::storage_unbounded(&parsed)?;
        let publisher = Publisher { url: parsed.clone(), storage: storage.clone(), unbounded, token: marker.token };
        match ZarrStore::create_at(storage, parsed.to_string(), version, true) {
            Ok(store) => Ok((store, publisher)),
            Err(e) => {
                let _ = publisher.discard();
                Err(e)
            }
        }
    }

    /// Open the unpublished store a job is building under `url`, for reading and
    /// writing; `token` (from [`Publisher::token`] at creation) must match its marker,
    /// so that a job never writes into another run's store at the same prefix. `role`:
    /// a task's or the finishing process's (see [`Shared`]).
    pub fn open_url_staged(url: &str, token: Option<&str>, role: Shared) -> Result<(Self, Publisher)> {
        let (parsed, storage) = storage_for_output(url)?;
        let found = read_marker(&parsed, &storage)?;
        let reason = match (&found, token) {
            (None, _) => Some("no unpublished adcat output here (published already, or removed)"),
            (Some(m), Some(t)) if m.token != t => Some("the unpublished output here is another run's (this job's was replaced)"),
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(StoreError::Open { location: parsed.to_string(), reason: reason.into() });
        }
        let token = found.map(|m| m.token).unwrap_or_default();
        let store = ZarrStore::open_at(storage.clone(), parsed.to_string(), true, true, Some(role))?;
        let unbounded = s3::storage_unbounded(&parsed)?;
        Ok((store, Publisher { url: parsed, storage, unbounded, token }))
    }
}
