//! # adcat-zarr
//!
//! [`adcat_store::Store`] for Zarr v2 and v3 on any `zarrs` storage (local filesystem
//! today; object stores plug in through the same `zarrs` storage traits).
//!
//! adcat owns the metadata documents (`zarr.json`, `.zarray`, `.zgroup`, `.zattrs`) and
//! uses `zarrs` for chunk encoding and I/O. That keeps the JSON byte-compatible with what
//! zarr-python/anndata write (no `_zarrs` attribute, no extra keys), lets attribute and
//! shape updates rewrite one document, and makes consolidation (v2 `.zmetadata`, v3
//! inline `consolidated_metadata`) a single pass over an in-memory cache at [`Store::flush`].

mod meta;
pub mod publish;
mod rebased;
mod record;
pub mod s3;
pub mod shadow;

use adcat_store::{
    Compression, check_box, check_names, checked_path, norm_path, numeric_for_dtype, parent_path, with_numeric, ArrayData, ArrayMeta, ArraySpec, Attrs,
    Element, NodeKind, Result, Store, StoreError, StoreKind,
};
use meta::{attrs_from_json, attrs_to_json, NodeMeta};
use ndarray::ArrayD;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use zarrs::array::{Array, ArrayMetadata, ArraySubset};
use zarrs::storage::{ReadableWritableListableStorage, StoreKey, StorePrefix};

/// The Zarr format version of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZarrVersion {
    /// Zarr v2 (`.zgroup`, `.zarray`, `.zattrs`).
    V2,
    /// Zarr v3 (`zarr.json`).
    V3,
}

/// The start of the reason a hierarchy without root metadata fails to open.
const NOT_ZARR: &str = "not a zarr store";

/// `.zgroup`, `.zarray` and `.zattrs` of one v2 node, as found in `.zmetadata`.
type V2Docs = (Option<Value>, Option<Value>, Option<Value>);

type ZArray = Array<dyn zarrs::storage::ReadableWritableListableStorageTraits>;

/// A Zarr hierarchy opened as a store.
pub struct ZarrStore {
    storage: ReadableWritableListableStorage,
    location: String,
    version: ZarrVersion,
    writable: bool,
    /// Metadata of known nodes by normalised path. When `complete`, absence means absence.
    nodes: Mutex<BTreeMap<String, NodeMeta>>,
    complete: bool,
    arrays: Mutex<BTreeMap<String, Arc<ZArray>>>,
    /// Root metadata is read and written under [`publish::STAGED`] until publication
    /// (stores created by [`ZarrStore::create_url`]).
    staged: bool,
    /// Whether [`Store::flush`] writes consolidated metadata (not by a job's tasks).
    consolidate: bool,
}

/// How a process of a job opens the store that the job's processes write together.
///
/// Consolidated metadata is a snapshot of every node in the root document: a task that
/// rewrote it would race the other processes reading the root, and lose the nodes
/// other tasks created since the snapshot. So a job's processes read each node's own
/// document, tasks never write the root, and the finishing process consolidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    /// A task: writes chunks and the nodes of the elements it creates, never the root.
    Task,
    /// The finishing process, alone by then: consolidates every node at flush.
    Finish,
}

impl std::fmt::Debug for ZarrStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrStore").field("location", &self.location).field("version", &self.version).finish()
    }
}

/// A storage or codec error at `path`, on one line: object-store errors chain their
/// causes (the request, the retries, the HTTP error) over several lines.
fn err(path: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(path, s3::one_line(&e))
}

fn key(path: &str, name: &str) -> Result<StoreKey> {
    let k = if path.is_empty() { name.to_owned() } else { format!("{path}/{name}") };
    StoreKey::new(k.clone()).map_err(|e| StoreError::InvalidMetadata { path: path.to_owned(), reason: format!("bad key {k}: {e}") })
}

impl ZarrStore {
    /// Open an existing local zarr directory read-only (version detected).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_local(path.as_ref(), false)
    }

    /// Open an existing local zarr directory for reading and writing.
    pub fn open_rw(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_local(path.as_ref(), true)
    }

    /// Open a local store that a job's processes write together (see [`Shared`]).
    pub fn open_shared(path: impl AsRef<Path>, role: Shared) -> Result<Self> {
        let p = path.as_ref();
        let fs = Self::local_storage(p)?;
        Self::open_at(Arc::new(fs), p.display().to_string(), true, false, Some(role))
    }

    fn local_storage(p: &Path) -> Result<zarrs::filesystem::FilesystemStore> {
        let location = p.display().to_string();
        if !p.is_dir() {
            let reason = if p.exists() { "not a directory (zarr stores are directories)" } else { "no such file or directory" };
            return Err(StoreError::Open { location, reason: reason.into() });
        }
        zarrs::filesystem::FilesystemStore::new(p).map_err(|e| StoreError::Open { location, reason: e.to_string() })
    }

    fn open_local(p: &Path, writable: bool) -> Result<Self> {
        let fs = Self::local_storage(p)?;
        Self::open_storage(Arc::new(fs), p.display().to_string(), writable)
    }

    /// Open an existing store in S3-compatible object storage (`s3://bucket/prefix`)
    /// read-only; configured from the `AWS_*` environment (see [`s3`]).
    pub fn open_url(url: &str) -> Result<Self> {
        let parsed = s3::S3Url::parse(url).map_err(|reason| StoreError::Open { location: url.to_owned(), reason })?;
        if let Some(reason) = s3::not_zarr(&parsed) {
            return Err(StoreError::Open { location: url.to_owned(), reason });
        }
        let storage = s3::storage(&parsed)?;
        Self::open_storage(storage.clone(), url.to_owned(), false).map_err(|e| match e {
            StoreError::Open { location, reason } if reason.starts_with(NOT_ZARR) => StoreError::Open { location, reason: s3::why_no_store(&parsed, &storage) },
            StoreError::Open { location, reason } => StoreError::Open { location, reason: s3::one_line(&reason) },
            other => other,
        })
    }

    /// Open an existing hierarchy on any `zarrs` storage.
    pub fn open_storage(storage: ReadableWritableListableStorage, location: String, writable: bool) -> Result<Self> {
        Self::open_at(storage, location, writable, false, None)
    }

    /// As [`ZarrStore::open_storage`]; `staged`: the root metadata is under
    /// [`publish::STAGED`] (an unpublished output); `shared`: written by a job's
    /// processes together (consolidated metadata ignored).
    fn open_at(storage: ReadableWritableListableStorage, location: String, writable: bool, staged: bool, shared: Option<Shared>) -> Result<Self> {
        let get = |k: &str| -> Result<Option<Value>> {
            let k = if staged { format!("{}/{k}", publish::STAGED) } else { k.to_owned() };
            let key = StoreKey::new(k.as_str()).map_err(|e| err("/", e))?;
            match storage.get(&key).map_err(|e| StoreError::Open { location: location.clone(), reason: s3::one_line(&e) })? {
                None => Ok(None),
                Some(b) => serde_json::from_slice(&b)
                    .map(Some)
                    .map_err(|e| StoreError::InvalidMetadata { path: k.to_owned(), reason: e.to_string() }),
            }
        };
        let (version, root, consolidated) = if let Some(root) = get("zarr.json")? {
            let cons = root.pointer("/consolidated_metadata/metadata").and_then(Value::as_object).cloned();
            (ZarrVersion::V3, root, cons)
        } else if get(".zgroup")?.is_some() {
            let cons = get(".zmetadata")?.and_then(|v| v.get("metadata").and_then(Value::as_object).cloned());
            (ZarrVersion::V2, Value::Null, cons)
        } else {
            return Err(StoreError::Open { location, reason: format!("{NOT_ZARR} (no zarr.json or .zgroup at its root)") });
        };
        let consolidated = if shared.is_some() { None } else { consolidated };
        let mut nodes = BTreeMap::new();
        let complete = consolidated.is_some();
        match version {
            ZarrVersion::V3 => {
                let mut root = root;
                if let Some(o) = root.as_object_mut() {
                    o.remove("consolidated_metadata");
                }
                let root = NodeMeta::from_v3("", root)?;
                if root.kind != NodeKind::Group {
                    return Err(StoreError::Open { location, reason: "an array, not a store (a store's root is a group; name the store that holds it)".into() });
                }
                nodes.insert(String::new(), root);
                for (k, doc) in consolidated.unwrap_or_default() {
                    // Keys are element paths: a `..` in one must not address files
                    // outside the store.
                    let p = checked_path(&k)?;
                    nodes.insert(p.clone(), NodeMeta::from_v3(&p, doc)?);
                }
            }
            ZarrVersion::V2 => {
                if let Some(cons) = consolidated {
                    let mut docs: BTreeMap<String, V2Docs> = BTreeMap::new();
                    for (k, doc) in cons {
                        let (dir, file) = match k.rfind('/') {
                            Some(i) => (k[..i].to_owned(), &k[i + 1..]),
                            None => (String::new(), k.as_str()),
                        };
                        let e = docs.entry(checked_path(&dir)?).or_default();
                        match file {
                            ".zgroup" => e.0 = Some(doc),
                            ".zarray" => e.1 = Some(doc),
                            ".zattrs" => e.2 = Some(doc),
                            _ => {}
                        }
                    }
                    for (p, (g, a, attrs)) in docs {
                        if let Some(n) = NodeMeta::from_v2(&p, g, a, attrs)? {
                            nodes.insert(p, n);
                        }
                    }
                } else {
                    let attrs = get(".zattrs")?;
                    if let Some(n) = NodeMeta::from_v2("", Some(serde_json::json!({"zarr_format": 2})), None, attrs)? {
                        nodes.insert(String::new(), n);
                    }
                }
            }
        }
        let consolidate = shared != Some(Shared::Task);
        Ok(ZarrStore { storage, location, version, writable, nodes: Mutex::new(nodes), complete, arrays: Mutex::new(BTreeMap::new()), staged, consolidate })
    }

    /// Create a new, empty hierarchy in a local directory, which must not exist or be empty.
    pub fn create(path: impl AsRef<Path>, version: ZarrVersion) -> Result<Self> {
        let p = path.as_ref();
        let location = p.display().to_string();
        if p.exists() && std::fs::read_dir(p).map(|mut d| d.next().is_some()).unwrap_or(true) {
            return Err(StoreError::Open { location, reason: "exists and is not an empty directory".into() });
        }
        std::fs::create_dir_all(p).map_err(|e| StoreError::Open { location: location.clone(), reason: e.to_string() })?;
        let fs = zarrs::filesystem::FilesystemStore::new(p).map_err(|e| StoreError::Open { location: location.clone(), reason: e.to_string() })?;
        Self::create_storage(Arc::new(fs), location, version)
    }

    /// Create a new hierarchy on any `zarrs` storage (assumed empty).
    pub fn create_storage(storage: ReadableWritableListableStorage, location: String, version: ZarrVersion) -> Result<Self> {
        Self::create_at(storage, location, version, false)
    }

    fn create_at(storage: ReadableWritableListableStorage, location: String, version: ZarrVersion, staged: bool) -> Result<Self> {
        let s = ZarrStore {
            storage,
            location,
            version,
            writable: true,
            nodes: Mutex::new(BTreeMap::new()),
            complete: true,
            arrays: Mutex::new(BTreeMap::new()),
            staged,
            consolidate: true,
        };
        let root = NodeMeta::new_group(version);
        s.store_node("", &root)?;
        s.nodes_lock().insert(String::new(), root);
        Ok(s)
    }

    /// The Zarr version of this store.
    pub fn version(&self) -> ZarrVersion {
        self.version
    }

    fn nodes_lock(&self) -> MutexGuard<'_, BTreeMap<String, NodeMeta>> {
        self.nodes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn arrays_lock(&self) -> MutexGuard<'_, BTreeMap<String, Arc<ZArray>>> {
        self.arrays.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_writable(&self, path: &str) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(StoreError::ReadOnly { path: path.to_owned() })
        }
    }

    /// The key of metadata document `name` of the node at `path`.
    fn meta_key(&self, path: &str, name: &str) -> Result<StoreKey> {
        match (self.staged, path.is_empty()) {
            (true, true) => key(publish::STAGED, name),
            _ => key(path, name),
        }
    }

    fn get_json(&self, path: &str, name: &str) -> Result<Option<Value>> {
        let k = self.meta_key(path, name)?;
        match self.storage.get(&k).map_err(|e| err(path, e))? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| StoreError::InvalidMetadata { path: k.as_str().to_owned(), reason: e.to_string() }),
        }
    }

    fn set_json(&self, path: &str, name: &str, v: &Value) -> Result<()> {
        let k = self.meta_key(path, name)?;
        let bytes = serde_json::to_vec_pretty(v).map_err(|e| err(path, e))?;
        self.storage.set(&k, bytes.into()).map_err(|e| err(path, e))
    }

    /// Metadata of the node at `p` (normalised), from the cache or the store.
    fn node(&self, p: &str) -> Result<Option<NodeMeta>> {
        if let Some(n) = self.nodes_lock().get(p) {
            return Ok(Some(n.clone()));
        }
        if self.complete {
            return Ok(None);
        }
        let found = match self.version {
            ZarrVersion::V3 => match self.get_json(p, "zarr.json")? {
                Some(doc) => Some(NodeMeta::from_v3(p, doc)?),
                None => None,
            },
            ZarrVersion::V2 => {
                let a = self.get_json(p, ".zarray")?;
                let g = if a.is_none() { self.get_json(p, ".zgroup")? } else { None };
                if a.is_none() && g.is_none() {
                    None
                } else {
                    NodeMeta::from_v2(p, g, a, self.get_json(p, ".zattrs")?)?
                }
            }
        };
        if let Some(n) = &found {
            self.nodes_lock().insert(p.to_owned(), n.clone());
        }
        Ok(found)
    }

    fn require(&self, p: &str, kind: NodeKind) -> Result<NodeMeta> {
        match self.node(p)? {
            Some(n) if n.kind == kind => Ok(n),
            Some(_) => Err(StoreError::WrongKind {
                path: p.to_owned(),
                expected: if kind == NodeKind::Group { "a group" } else { "an array" },
            }),
            None => Err(StoreError::NotFound { path: p.to_owned() }),
        }
    }

    /// Write a node's metadata document(s).
    fn store_node(&self, p: &str, n: &NodeMeta) -> Result<()> {
        match self.version {
            ZarrVersion::V3 => self.set_json(p, "zarr.json", &n.to_v3()),
            ZarrVersion::V2 => {
                let name = if n.kind == NodeKind::Group { ".zgroup" } else { ".zarray" };
                self.set_json(p, name, &Value::Object(n.doc.clone()))?;
                if !n.attrs.is_empty() {
                    self.set_json(p, ".zattrs", &Value::Object(n.attrs.clone()))?;
                }
                Ok(())
            }
        }
    }

    fn check_parent(&self, p: &str) -> Result<()> {
        if p.is_empty() {
            return Err(StoreError::Exists { path: "/".into() });
        }
        self.require(&parent_path(p), NodeKind::Group).map(|_| ())?;
        if self.node(p)?.is_some() {
            return Err(StoreError::Exists { path: p.to_owned() });
        }
        Ok(())
    }

    fn array(&self, p: &str) -> Result<(Arc<ZArray>, ArrayMeta)> {
        let n = self.require(p, NodeKind::Array)?;
        let meta = meta::parse_array_meta(self.version, p, &n.doc)?;
        if let Some(a) = self.arrays_lock().get(p) {
            return Ok((a.clone(), meta));
        }
        let md = match self.version {
            ZarrVersion::V3 => {
                let mut doc = n.doc.clone();
                doc.insert("attributes".into(), Value::Object(Map::new()));
                ArrayMetadata::V3(serde_json::from_value(Value::Object(doc)).map_err(|e| StoreError::InvalidMetadata { path: p.to_owned(), reason: e.to_string() })?)
            }
            ZarrVersion::V2 => {
                let mut doc = n.doc.clone();
                // v2 allows a null fill value (chunks always written); zarrs needs one for
                // some types, and the value is never observed when chunks exist.
                if doc.get("fill_value").is_none_or(Value::is_null) {
                    doc.insert("fill_value".into(), meta::fill_value(meta.dtype));
                }
                ArrayMetadata::V2(serde_json::from_value(Value::Object(doc)).map_err(|e| StoreError::InvalidMetadata { path: p.to_owned(), reason: e.to_string() })?)
            }
        };
        let a = self.open_array(p, md)?;
        let a = Arc::new(a);
        self.arrays_lock().insert(p.to_owned(), a.clone());
        Ok((a, meta))
    }

    /// Read the metadata of every node into the cache (a store opened without
    /// consolidated metadata knows only the nodes it met).
    fn load_all(&self) -> Result<()> {
        let mut groups = vec![String::new()];
        while let Some(g) = groups.pop() {
            for child in self.list(&g)? {
                let p = if g.is_empty() { child } else { format!("{g}/{child}") };
                if self.node(&p)?.is_some_and(|n| n.kind == NodeKind::Group) {
                    groups.push(p);
                }
            }
        }
        Ok(())
    }

    fn consolidate(&self) -> Result<()> {
        if !self.complete {
            self.load_all()?;
        }
        let nodes = self.nodes_lock().clone();
        match self.version {
            ZarrVersion::V3 => {
                let mut all = Map::new();
                for (p, n) in nodes.iter().filter(|(p, _)| !p.is_empty()) {
                    let mut doc = n.to_v3();
                    if n.kind == NodeKind::Group {
                        if let Some(o) = doc.as_object_mut() {
                            o.insert("consolidated_metadata".into(), serde_json::json!({"kind": "inline", "must_understand": false, "metadata": {}}));
                        }
                    }
                    all.insert(p.clone(), doc);
                }
                let root = nodes.get("").cloned().unwrap_or_else(|| NodeMeta::new_group(self.version));
                let mut doc = root.to_v3();
                if let Some(o) = doc.as_object_mut() {
                    o.insert("consolidated_metadata".into(), serde_json::json!({"kind": "inline", "must_understand": false, "metadata": all}));
                }
                self.set_json("", "zarr.json", &doc)
            }
            ZarrVersion::V2 => {
                let mut all = Map::new();
                for (p, n) in &nodes {
                    let pre = if p.is_empty() { String::new() } else { format!("{p}/") };
                    let name = if n.kind == NodeKind::Group { ".zgroup" } else { ".zarray" };
                    all.insert(format!("{pre}{name}"), Value::Object(n.doc.clone()));
                    if !n.attrs.is_empty() {
                        all.insert(format!("{pre}.zattrs"), Value::Object(n.attrs.clone()));
                    }
                }
                self.set_json("", ".zmetadata", &serde_json::json!({"metadata": all, "zarr_consolidated_format": 1}))
            }
        }
    }
}

impl Store for ZarrStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn kind(&self) -> StoreKind {
        match self.version {
            ZarrVersion::V2 => StoreKind::ZarrV2,
            ZarrVersion::V3 => StoreKind::ZarrV3,
        }
    }

    fn node_kind(&self, path: &str) -> Result<Option<NodeKind>> {
        let p = checked_path(path)?;
        // A node only exists if its parent chain does; this also keeps the lookup from
        // reading metadata under arrays.
        if !p.is_empty() && self.node_kind(&parent_path(&p))? != Some(NodeKind::Group) {
            return Ok(None);
        }
        Ok(self.node(&p)?.map(|n| n.kind))
    }

    fn list(&self, path: &str) -> Result<Vec<String>> {
        let p = checked_path(path)?;
        self.require(&p, NodeKind::Group)?;
        if self.complete {
            let nodes = self.nodes_lock();
            // Children sort right after their parent: scan only its descendants.
            let prefix = if p.is_empty() { String::new() } else { format!("{p}/") };
            let mut out: Vec<String> = nodes
                .range(prefix.clone()..)
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(&prefix))
                .filter(|k| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
                .map(|k| k[prefix.len()..].to_owned())
                .collect();
            out.sort();
            return Ok(out);
        }
        let prefix = StorePrefix::new(if p.is_empty() { String::new() } else { format!("{p}/") }).map_err(|e| err(&p, e))?;
        let listing = self.storage.list_dir(&prefix).map_err(|e| err(&p, e))?;
        let mut out = vec![];
        for sub in listing.prefixes() {
            let child = norm_path(sub.as_str());
            // An unpublished store's staged root metadata is not a child group.
            if self.staged && child == publish::STAGED {
                continue;
            }
            check_names(&p, &[child.rsplit('/').next().unwrap_or(&child).to_owned()])?;
            if self.node(&child)?.is_some() {
                out.push(child.rsplit('/').next().unwrap_or(&child).to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    fn create_group(&self, path: &str) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        match self.node(&p)? {
            Some(n) if n.kind == NodeKind::Group => return Ok(()),
            Some(_) => return Err(StoreError::Exists { path: p }),
            None => {}
        }
        self.check_parent(&p)?;
        let n = NodeMeta::new_group(self.version);
        self.store_node(&p, &n)?;
        self.nodes_lock().insert(p, n);
        Ok(())
    }

    fn delete(&self, path: &str) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        if p.is_empty() || self.node_kind(&p)?.is_none() {
            return Err(StoreError::NotFound { path: p });
        }
        let prefix = StorePrefix::new(format!("{p}/")).map_err(|e| err(&p, e))?;
        // Listed, then erased key by key: an object store's `erase_prefix` holds a
        // request slot for its listing while its deletions wait for more (a deadlock
        // under `--s3-concurrency 1`).
        for k in self.storage.list_prefix(&prefix).map_err(|e| err(&p, e))? {
            self.storage.erase(&k).map_err(|e| err(&p, e))?;
        }
        let under = |k: &String| k == &p || k.starts_with(&format!("{p}/"));
        self.nodes_lock().retain(|k, _| !under(k));
        self.arrays_lock().retain(|k, _| !under(k));
        Ok(())
    }

    fn attrs(&self, path: &str) -> Result<Attrs> {
        let p = checked_path(path)?;
        match self.node(&p)? {
            Some(n) => Ok(attrs_from_json(&n.attrs)),
            None => Err(StoreError::NotFound { path: p }),
        }
    }

    fn set_attrs(&self, path: &str, attrs: &Attrs) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        let mut n = self.node(&p)?.ok_or_else(|| StoreError::NotFound { path: p.clone() })?;
        for (k, v) in attrs_to_json(attrs) {
            n.attrs.insert(k, v);
        }
        self.store_node(&p, &n)?;
        self.nodes_lock().insert(p, n);
        Ok(())
    }

    fn create_array(&self, path: &str, spec: &ArraySpec) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        self.check_parent(&p)?;
        let doc = match self.version {
            ZarrVersion::V3 => meta::v3_array_doc(&p, spec)?,
            ZarrVersion::V2 => meta::v2_array_doc(&p, spec)?,
        };
        let n = NodeMeta { kind: NodeKind::Array, doc, attrs: Map::new() };
        self.store_node(&p, &n)?;
        self.nodes_lock().insert(p.clone(), n);
        if spec.null {
            // No null dataspace in zarr: a 0-d array whose one chunk holds the fill value,
            // as anndata writes its `null` encoding.
            let (a, _) = self.array(&p)?;
            let d = ArrayData::zeros(spec.dtype, &[]);
            write_block(&a, &p, &[], &d, None)?;
        }
        Ok(())
    }

    fn array_meta(&self, path: &str) -> Result<ArrayMeta> {
        let p = checked_path(path)?;
        let n = self.require(&p, NodeKind::Array)?;
        meta::parse_array_meta(self.version, &p, &n.doc)
    }

    fn read(&self, path: &str, start: &[u64], shape: &[u64]) -> Result<ArrayData> {
        let p = checked_path(path)?;
        let (a, meta) = self.array(&p)?;
        check_box(&p, &meta.shape, start, shape)?;
        if shape.contains(&0) {
            return Ok(ArrayData::zeros(meta.dtype, shape));
        }
        let sub = ArraySubset::new_with_start_shape(start.to_vec(), shape.to_vec()).map_err(|e| err(&p, e))?;
        let e = |x: zarrs::array::ArrayError| err(&p, x);
        let doc = self.require(&p, NodeKind::Array)?.doc;
        if let Some(kind) = meta::fixed_string_kind(self.version, &doc) {
            // Read as raw records of one string field and decoded here.
            let raw_array = self.record_array(&p, &doc, kind.size())?;
            let bytes: zarrs::array::ArrayBytes<'static> = raw_array.retrieve_array_subset(&sub).map_err(e)?;
            let raw = bytes.into_fixed().map_err(|x| err(&p, x))?;
            let n: u64 = shape.iter().product();
            let fields = record::unpack(&raw, n as usize, &[(String::new(), kind)]);
            let strings = fields.into_iter().next().and_then(|(_, a)| a.as_strings().map(|v| v.iter().cloned().collect::<Vec<_>>())).unwrap_or_default();
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            return ArrayD::from_shape_vec(dims, strings).map(ArrayData::String).map_err(|x| err(&p, x));
        }
        numeric_for_dtype!(meta.dtype, T => {
            let v: ArrayD<T> = a.retrieve_array_subset(&sub).map_err(e)?;
            Ok(T::wrap(v))
        }, string => {
            let v: ArrayD<String> = a.retrieve_array_subset(&sub).map_err(e)?;
            Ok(ArrayData::String(v))
        })
    }

    fn write(&self, path: &str, start: &[u64], data: &ArrayData) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        let (a, meta) = self.array(&p)?;
        if meta.dtype != data.dtype() {
            return Err(StoreError::DTypeMismatch { path: p, expected: meta.dtype, found: data.dtype() });
        }
        let shape = data.shape();
        check_box(&p, &meta.shape, start, &shape)?;
        if shape.contains(&0) {
            return Ok(());
        }
        write_block(&a, &p, start, data, None)
    }

    fn write_rows_range(&self, path: &str, start: u64, data: &ArrayData, rows: std::ops::Range<usize>) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        let (a, meta) = self.array(&p)?;
        if meta.dtype != data.dtype() {
            return Err(StoreError::DTypeMismatch { path: p, expected: meta.dtype, found: data.dtype() });
        }
        let mut shape = data.shape();
        let mut at = vec![0; shape.len()];
        match (shape.first_mut(), at.first_mut()) {
            (Some(n), Some(a0)) if rows.start <= rows.end && rows.end as u64 <= *n => {
                *n = (rows.end - rows.start) as u64;
                *a0 = start;
            }
            _ => return Err(StoreError::OutOfBounds { path: p, reason: format!("rows {rows:?} of a block of shape {shape:?}") }),
        }
        check_box(&p, &meta.shape, &at, &shape)?;
        if shape.contains(&0) {
            return Ok(());
        }
        write_block(&a, &p, &at, data, Some(rows))
    }

    fn resize(&self, path: &str, shape: &[u64]) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        let mut n = self.require(&p, NodeKind::Array)?;
        let old = meta::parse_array_meta(self.version, &p, &n.doc)?;
        if old.shape.len() != shape.len() {
            return Err(StoreError::OutOfBounds { path: p, reason: format!("cannot change rank from {} to {}", old.shape.len(), shape.len()) });
        }
        n.doc.insert("shape".into(), serde_json::json!(shape));
        self.store_node(&p, &n)?;
        self.nodes_lock().insert(p.clone(), n);
        self.arrays_lock().remove(&p);
        Ok(())
    }

    fn stored_bytes(&self, path: &str) -> Result<Option<u64>> {
        let p = checked_path(path)?;
        self.require(&p, NodeKind::Array)?;
        // Chunks, shards and the array's own metadata document, on any listable storage.
        let prefix = StorePrefix::new(format!("{p}/")).map_err(|e| err(&p, e))?;
        Ok(self.storage.size_prefix(&prefix).ok())
    }

    fn is_record(&self, path: &str) -> Result<bool> {
        let p = checked_path(path)?;
        let n = self.require(&p, NodeKind::Array)?;
        Ok(meta::record_fields(self.version, &p, &n.doc)?.is_some())
    }

    fn read_record(&self, path: &str) -> Result<Vec<(String, ArrayData)>> {
        let p = checked_path(path)?;
        let n = self.require(&p, NodeKind::Array)?;
        let fields = meta::record_fields(self.version, &p, &n.doc)?
            .ok_or_else(|| StoreError::UnsupportedDType { path: p.clone(), found: "not a record array".into() })?;
        let itemsize: usize = fields.iter().map(|(_, k)| k.size()).sum();
        let shape: Vec<u64> = n.doc.get("shape").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
        if shape.len() != 1 {
            return Err(StoreError::UnsupportedDType { path: p, found: format!("record array of shape {shape:?}") });
        }
        let a = self.record_array(&p, &n.doc, itemsize)?;
        let bytes: zarrs::array::ArrayBytes<'static> = a.retrieve_array_subset(&a.subset_all()).map_err(|e| err(&p, e))?;
        let raw = bytes.into_fixed().map_err(|e| err(&p, e))?;
        Ok(record::unpack(&raw, shape[0] as usize, &fields))
    }

    fn create_record(&self, path: &str, fields: &[(String, ArrayData)], compression: &Compression) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        self.check_parent(&p)?;
        let (kinds, n, raw) = record::pack(&p, fields)?;
        let doc = meta::record_doc(self.version, &p, n as u64, &kinds, compression)?;
        let node = NodeMeta { kind: NodeKind::Array, doc: doc.clone(), attrs: Map::new() };
        self.store_node(&p, &node)?;
        self.nodes_lock().insert(p.clone(), node);
        let itemsize: usize = kinds.iter().map(|(_, k)| k.size()).sum();
        let a = self.record_array(&p, &doc, itemsize)?;
        if n > 0 {
            a.store_array_subset(&a.subset_all(), zarrs::array::ArrayBytes::new_flen(raw)).map_err(|e| err(&p, e))?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        if self.writable && self.consolidate {
            self.consolidate()?;
        }
        Ok(())
    }
}

impl ZarrStore {
    /// A zarrs handle that sees the record array as raw bytes of the record size.
    fn record_array(&self, p: &str, doc: &Map<String, Value>, itemsize: usize) -> Result<ZArray> {
        let io = meta::record_io_doc(self.version, doc, itemsize);
        let md = match self.version {
            ZarrVersion::V3 => {
                let mut d = io;
                d.insert("attributes".into(), Value::Object(Map::new()));
                ArrayMetadata::V3(serde_json::from_value(Value::Object(d)).map_err(|e| StoreError::InvalidMetadata { path: p.to_owned(), reason: e.to_string() })?)
            }
            ZarrVersion::V2 => ArrayMetadata::V2(serde_json::from_value(Value::Object(io)).map_err(|e| StoreError::InvalidMetadata { path: p.to_owned(), reason: e.to_string() })?),
        };
        self.open_array(p, md)
    }

    /// A zarrs handle on the array at `p`; names zarrs reserves (`__categories` of
    /// anndata 0.7) are opened through a view rooted at the array.
    fn open_array(&self, p: &str, md: ArrayMetadata) -> Result<ZArray> {
        let (storage, at) = rebased::array_root(&self.storage, p).map_err(|e| err(p, e))?;
        Array::new_with_metadata(storage, &at, md).map_err(|e| StoreError::InvalidMetadata { path: p.to_owned(), reason: e.to_string() })
    }
}

/// Store `data` (or only its rows `rows`) at `start`; contiguous numeric rows go to the
/// codecs without a copy.
fn write_block(a: &ZArray, p: &str, start: &[u64], data: &ArrayData, rows: Option<std::ops::Range<usize>>) -> Result<()> {
    let mut shape = data.shape();
    if let (Some(r), Some(n)) = (&rows, shape.first_mut()) {
        *n = (r.end - r.start) as u64;
    }
    let sub = ArraySubset::new_with_start_shape(start.to_vec(), shape).map_err(|e| err(p, e))?;
    let e = |x: zarrs::array::ArrayError| err(p, x);
    let part = |n: usize| rows.clone().unwrap_or(0..n);
    with_numeric!(data, v => {
        let v = match v.shape().first() {
            Some(&n) => v.slice_axis(ndarray::Axis(0), ndarray::Slice::from(part(n))),
            None => v.view(),
        };
        a.store_array_subset(&sub, &v).map_err(e)
    }, s => {
        let s = match s.shape().first() {
            Some(&n) => s.slice_axis(ndarray::Axis(0), ndarray::Slice::from(part(n))),
            None => s.view(),
        };
        let refs: Vec<&str> = s.iter().map(String::as_str).collect();
        a.store_array_subset(&sub, refs).map_err(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use adcat_store::DType;

    #[test]
    fn conformance_kit_v3() {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str| -> Box<dyn Store> { Box::new(ZarrStore::create(dir.path().join(format!("{name}.zarr")), ZarrVersion::V3).unwrap()) };
        adcat_store::testkit::run_all(&make);
    }

    #[test]
    fn conformance_kit_through_a_sub_view() {
        // A group seen as a store (an annbatch collection's dataset) behaves as a store.
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str| -> Box<dyn Store> {
            let inner: &'static ZarrStore = Box::leak(Box::new(ZarrStore::create(dir.path().join(format!("{name}.zarr")), ZarrVersion::V3).unwrap()));
            inner.create_group("dataset_0").unwrap();
            Box::new(adcat_store::Sub::new(inner, "dataset_0"))
        };
        adcat_store::testkit::run_all(&make);
    }

    #[test]
    fn conformance_kit_v2() {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str| -> Box<dyn Store> { Box::new(ZarrStore::create(dir.path().join(format!("{name}.zarr")), ZarrVersion::V2).unwrap()) };
        adcat_store::testkit::run_all(&make);
    }

    /// Reopening (with and without consolidated metadata) sees what was written.
    #[test]
    fn reopen_after_flush() {
        for version in [ZarrVersion::V2, ZarrVersion::V3] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.zarr");
            let s = ZarrStore::create(&path, version).unwrap();
            s.create_group("g").unwrap();
            s.create_array("g/a", &ArraySpec::new(DType::I32, vec![3])).unwrap();
            s.write_rows("g/a", 0, &ArrayData::from_vec(vec![1i32, 2, 3])).unwrap();
            let mut at = Attrs::new();
            at.insert("encoding-type".into(), "array".into());
            s.set_attrs("g/a", &at).unwrap();
            s.flush().unwrap();
            for consolidated in [true, false] {
                if !consolidated {
                    let _ = std::fs::remove_file(path.join(".zmetadata"));
                    if version == ZarrVersion::V3 {
                        let mut root: Value = serde_json::from_slice(&std::fs::read(path.join("zarr.json")).unwrap()).unwrap();
                        root.as_object_mut().unwrap().remove("consolidated_metadata");
                        std::fs::write(path.join("zarr.json"), serde_json::to_vec(&root).unwrap()).unwrap();
                    }
                }
                let r = ZarrStore::open(&path).unwrap();
                assert_eq!(r.version(), version);
                assert_eq!(r.list("").unwrap(), vec!["g"]);
                assert_eq!(r.list("g").unwrap(), vec!["a"]);
                assert_eq!(r.attr("g/a", "encoding-type").unwrap().unwrap().as_str(), Some("array"));
                assert_eq!(r.read_all("g/a").unwrap(), ArrayData::from_vec(vec![1i32, 2, 3]));
            }
        }
    }

    /// Tasks sharing a store never touch its root metadata and each sees the others'
    /// nodes; the finishing process consolidates every node, whoever created it.
    #[test]
    fn shared_stores_leave_the_root_to_finish() {
        for version in [ZarrVersion::V2, ZarrVersion::V3] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.zarr");
            let s = ZarrStore::create(&path, version).unwrap();
            s.create_group("uns").unwrap();
            s.flush().unwrap();
            let root_doc = if version == ZarrVersion::V3 { "zarr.json" } else { ".zmetadata" };
            let before = std::fs::read(path.join(root_doc)).unwrap();
            let (a, b) = (ZarrStore::open_shared(&path, Shared::Task).unwrap(), ZarrStore::open_shared(&path, Shared::Task).unwrap());
            a.create_array("uns/x", &ArraySpec::new(DType::I32, vec![2])).unwrap();
            a.write_rows("uns/x", 0, &ArrayData::from_vec(vec![1i32, 2])).unwrap();
            b.create_group("uns/g").unwrap();
            b.create_array("uns/g/y", &ArraySpec::new(DType::F64, vec![1])).unwrap();
            a.flush().unwrap();
            b.flush().unwrap();
            assert_eq!(std::fs::read(path.join(root_doc)).unwrap(), before, "a task rewrote the root metadata");
            assert_eq!(b.list("uns").unwrap(), vec!["g", "x"]);
            let f = ZarrStore::open_shared(&path, Shared::Finish).unwrap();
            f.flush().unwrap();
            let r = ZarrStore::open(&path).unwrap();
            assert!(r.complete, "the finished store has consolidated metadata");
            assert_eq!(r.list("uns").unwrap(), vec!["g", "x"]);
            assert_eq!(r.list("uns/g").unwrap(), vec!["y"]);
            assert_eq!(r.read_all("uns/x").unwrap(), ArrayData::from_vec(vec![1i32, 2]));
        }
    }

    #[test]
    fn not_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let e = ZarrStore::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a zarr store"), "{e}");
        std::fs::write(dir.path().join("zarr.json"), b"{not json").unwrap();
        assert!(matches!(ZarrStore::open(dir.path()), Err(StoreError::InvalidMetadata { .. })));
    }
}
