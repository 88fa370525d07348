//! # adcat-store
//!
//! The storage abstraction adcat is written against: a hierarchy of groups and n-d
//! arrays with typed attributes, chunked/compressed array creation, hyperslab reads and
//! writes, and growth along axis 0. Nothing here knows about AnnData.
//!
//! Backends (`adcat-hdf5`, `adcat-zarr`) implement [`Store`]; the feature `testkit`
//! exposes [`testkit`], one conformance suite every backend runs unchanged.
//!
//! Paths are `/`-separated and relative to the store root (`""` or `"/"` is the root).

mod array;
mod attr;
pub mod bounded;
pub mod forward;
pub mod sub;
pub mod tagged;
mod dtype;
mod error;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use array::{ArrayData, Complex32, Complex64, Element, Numeric};
pub use attr::{AttrValue, Attrs};
pub use bounded::Bounded;
pub use forward::Forward;
pub use sub::Sub;
pub use dtype::{DType, ALL_DTYPES};
pub use error::{Result, StoreError};
pub use ndarray;

use std::fmt;

/// Which physical format a store is. The format layer needs it only where AnnData itself
/// writes the two formats differently (e.g. the `null` encoding, default codecs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// HDF5 file (`.h5ad`).
    Hdf5,
    /// Zarr v2 directory store.
    ZarrV2,
    /// Zarr v3 store.
    ZarrV3,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreKind::Hdf5 => "HDF5",
            StoreKind::ZarrV2 => "Zarr v2",
            StoreKind::ZarrV3 => "Zarr v3",
        })
    }
}

impl StoreKind {
    /// Refuse a record field of sub-array shape `shape` (one record's value) where this
    /// format cannot hold it: zarr's structured dtypes hold scalar fields only.
    pub fn check_record_field(self, path: &str, field: &str, shape: &[u64]) -> Result<()> {
        if shape.is_empty() || self == StoreKind::Hdf5 {
            return Ok(());
        }
        Err(StoreError::UnsupportedDType { path: path.to_owned(), found: format!("sub-array record field {} (zarr stores only scalar fields; write h5ad)", field_display(field)) })
    }
}

/// Kind of node at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A group (HDF5 group, zarr group).
    Group,
    /// An array (HDF5 dataset, zarr array).
    Array,
}

/// Compression applied to array chunks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// No compression.
    None,
    /// Deflate/gzip at a level 0-9 (HDF5 `deflate`, zarr `gzip`).
    Gzip(u32),
    /// LZF (HDF5 filter 32000, as h5py writes it). HDF5 only.
    Lzf,
    /// Zstandard at a level (zarr only).
    Zstd(i32),
    /// Blosc with a compressor name (`lz4`, `zstd`, ...), level and shuffle mode (zarr only).
    Blosc {
        /// Inner compressor.
        cname: String,
        /// Level 0-9.
        clevel: u8,
        /// 0 = none, 1 = byte shuffle, 2 = bit shuffle.
        shuffle: u8,
    },
    /// Anything else found on read, described by the backend (never written).
    Other(String),
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Gzip(l) => write!(f, "gzip({l})"),
            Compression::Lzf => f.write_str("lzf"),
            Compression::Zstd(l) => write!(f, "zstd({l})"),
            Compression::Blosc { cname, clevel, shuffle } => write!(f, "blosc({cname},{clevel},shuffle={shuffle})"),
            Compression::Other(s) => f.write_str(s),
        }
    }
}

/// How to create an array.
#[derive(Debug, Clone, PartialEq)]
pub struct ArraySpec {
    /// Element type.
    pub dtype: DType,
    /// Initial shape. `[]` is a 0-d (scalar) array.
    pub shape: Vec<u64>,
    /// Chunk shape (the inner chunk when sharded). `None`: contiguous in HDF5 (chunked
    /// if resizable or compressed), one chunk per array in zarr.
    pub chunks: Option<Vec<u64>>,
    /// Zarr v3 shard shape, a multiple of `chunks`. Ignored by other formats.
    pub shards: Option<Vec<u64>>,
    /// Chunk compression.
    pub compression: Compression,
    /// Whether the array may grow along axis 0 (HDF5 must know at creation).
    pub resizable: bool,
    /// A null dataspace: no shape and no data (HDF5 `H5S_NULL`). Backends without one
    /// store a 0-d array holding the fill value.
    pub null: bool,
}

impl ArraySpec {
    /// A plain array: no chunking preference, no compression, fixed size.
    pub fn new(dtype: DType, shape: Vec<u64>) -> Self {
        ArraySpec { dtype, shape, chunks: None, shards: None, compression: Compression::None, resizable: false, null: false }
    }

    /// Set the chunk shape.
    pub fn chunks(mut self, chunks: Vec<u64>) -> Self {
        self.chunks = Some(chunks);
        self
    }

    /// Set the shard shape (zarr v3).
    pub fn shards(mut self, shards: Vec<u64>) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Set the compression.
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }

    /// Allow growth along axis 0.
    pub fn resizable(mut self, r: bool) -> Self {
        self.resizable = r;
        self
    }
}

/// What a backend reports about an existing array.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayMeta {
    /// Element type.
    pub dtype: DType,
    /// Current shape (`[]` for scalars and null arrays).
    pub shape: Vec<u64>,
    /// Chunk shape (inner chunk when sharded); `None` when contiguous.
    pub chunks: Option<Vec<u64>>,
    /// Shard shape when the array is sharded (zarr v3).
    pub shards: Option<Vec<u64>>,
    /// Compression of the chunks.
    pub compression: Compression,
    /// Other filters/codecs in order, for display (e.g. `shuffle`, `vlen-utf8`, `crc32c`).
    pub filters: Vec<String>,
    /// True for a null dataspace (no data at all).
    pub null: bool,
}

impl ArrayMeta {
    /// Number of elements.
    pub fn len(&self) -> u64 {
        if self.null {
            0
        } else {
            self.shape.iter().product()
        }
    }

    /// True when the array holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the values of an array are stored: a file of the local file system that a
/// virtual array can map, and the array's path in it (see [`Store::physical`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Physical {
    /// The file, as an absolute path.
    pub file: std::path::PathBuf,
    /// The array's path in the file.
    pub path: String,
}

/// How a virtual array records the file of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceName {
    /// Relative to the directory of the file holding the virtual array when the source
    /// lies in it or below (the set moves together), else absolute.
    #[default]
    Beside,
    /// Always relative to that directory (`..` where needed).
    Relative,
    /// Always absolute.
    Absolute,
}

/// Rows of another file's array that a virtual array shows (HDF5 virtual datasets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualSource {
    /// The file holding the array: absolute, or as recorded in a virtual array (then
    /// possibly relative to the directory of the file holding the virtual array).
    pub file: String,
    /// How a virtual array being created records `file`.
    pub name: SourceName,
    /// The source array's path in its file.
    pub path: String,
    /// The source array's shape.
    pub shape: Vec<u64>,
    /// Rows of the source shown, from its first.
    pub rows: u64,
    /// The virtual array's first row they fill.
    pub at: u64,
    /// Read back ([`Store::virtual_sources`]): whether the file is where it would be
    /// looked for (relative names from the directory of the virtual array's file).
    /// Ignored when creating.
    pub present: bool,
}

/// One field of a record (compound, structured) array.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordField {
    /// Field name (any string; field names are data).
    pub name: String,
    /// Element type (fixed-length and variable-length strings are both `String`).
    pub dtype: DType,
    /// Sub-array shape of one record's value (`[]` for a scalar field, `[50]` for an
    /// HDF5 array member such as a legacy `obsm` field `X_pca`).
    pub shape: Vec<u64>,
}

/// Separates the names of a nested record field in the flattened field list of
/// [`Store::read_record`] and [`Store::create_record`]: field `u` of member `pt` is
/// `"pt\0u"`. HDF5 member names cannot contain NUL, and backends refuse it in field
/// names they read, so the encoding is unambiguous.
pub const FIELD_PATH_SEP: char = '\0';

/// A (possibly nested) record field name for people: `pt.u`.
pub fn field_display(name: &str) -> String {
    name.replace(FIELD_PATH_SEP, ".")
}

/// Normalise a path: no leading/trailing `/`, no empty components.
pub fn norm_path(path: &str) -> String {
    path.split('/').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/")
}

/// Why `name` cannot be an element name, or `None` when it can.
///
/// Element names become file and directory names in zarr stores and keys in consolidated
/// metadata, so a name must stay one path component everywhere: `.` and `..` would
/// address the store's own or its parent directory, `/` and `\` separate components
/// (on some platforms), and NUL or control characters are cut or misread by file systems
/// and terminals.
pub fn invalid_name_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty names cannot be stored")
    } else if name == "." || name == ".." {
        Some("'.' and '..' address directories, not elements")
    } else if name.contains('/') || name.contains('\\') {
        Some("'/' and '\\' separate path components")
    } else if name.chars().any(char::is_control) {
        Some("NUL and control characters cannot be stored in names")
    } else {
        None
    }
}

/// The deepest element path a store accepts, in components below the root.
///
/// anndata 0.13.4 itself cannot read `uns` dicts nested more than about 250 levels
/// (Python's recursion limit); refusing paths deeper than this keeps every tree walk's
/// time linear in the number of nodes and its stack bounded, and stops link cycles.
pub const MAX_DEPTH: usize = 512;

/// Normalise `path` (as [`norm_path`]) and check that every component is a valid name
/// and that it is at most [`MAX_DEPTH`] deep.
///
/// Backends call this on every path they are given, so no element name can make a store
/// read or write outside itself.
pub fn checked_path(path: &str) -> Result<String> {
    let p = norm_path(path);
    if p.is_empty() {
        return Ok(p);
    }
    if p.split('/').nth(MAX_DEPTH).is_some() {
        let shown: String = p.split('/').take(6).collect::<Vec<_>>().join("/");
        return Err(StoreError::TooDeep { path: format!("{shown}/..."), max: MAX_DEPTH });
    }
    let mut offset = 0;
    for c in p.split('/') {
        if let Some(reason) = invalid_name_reason(c) {
            let parent = if offset == 0 { "/".to_owned() } else { p[..offset - 1].to_owned() };
            return Err(StoreError::InvalidName { path: parent, name: c.to_owned(), reason });
        }
        offset += c.len() + 1;
    }
    Ok(p)
}

/// Check the names a backend listed under `path` (see [`invalid_name_reason`]).
pub fn check_names(path: &str, names: &[String]) -> Result<()> {
    for n in names {
        if let Some(reason) = invalid_name_reason(n) {
            let parent = norm_path(path);
            return Err(StoreError::InvalidName { path: if parent.is_empty() { "/".into() } else { parent }, name: n.clone(), reason });
        }
    }
    Ok(())
}

/// Join a parent path and a child name.
pub fn join_path(parent: &str, child: &str) -> String {
    let p = norm_path(parent);
    let c = norm_path(child);
    match (p.is_empty(), c.is_empty()) {
        (true, _) => c,
        (_, true) => p,
        _ => format!("{p}/{c}"),
    }
}

/// The parent of a normalised path (`""` for top-level nodes).
pub fn parent_path(path: &str) -> String {
    let p = norm_path(path);
    match p.rfind('/') {
        Some(i) => p[..i].to_owned(),
        None => String::new(),
    }
}

/// A hierarchical array store.
///
/// Object-safe so that the format and concat layers work with `&dyn Store` and any mix of
/// backends. Implementations are `Send + Sync`; callers may read from several threads.
pub trait Store: Send + Sync + fmt::Debug {
    /// Where the store lives (file path or URL), for messages.
    fn location(&self) -> &str;

    /// The physical format.
    fn kind(&self) -> StoreKind;

    /// The node at `path`, or `None` if nothing is there.
    fn node_kind(&self, path: &str) -> Result<Option<NodeKind>>;

    /// Names of a group's children, sorted.
    fn list(&self, path: &str) -> Result<Vec<String>>;

    /// Create a group (parent must exist). Succeeds if the group already exists.
    fn create_group(&self, path: &str) -> Result<()>;

    /// Delete a node and everything under it.
    fn delete(&self, path: &str) -> Result<()>;

    /// All attributes of a node.
    fn attrs(&self, path: &str) -> Result<Attrs>;

    /// Insert or replace attributes of a node (others are kept).
    fn set_attrs(&self, path: &str, attrs: &Attrs) -> Result<()>;

    /// Create an array (parent must exist, path must be free).
    fn create_array(&self, path: &str, spec: &ArraySpec) -> Result<()>;

    /// Shape, type and storage layout of an array.
    fn array_meta(&self, path: &str) -> Result<ArrayMeta>;

    /// Read the box starting at `start` with extent `shape` (both of the array's rank).
    fn read(&self, path: &str, start: &[u64], shape: &[u64]) -> Result<ArrayData>;

    /// Write `data` into the box starting at `start`.
    fn write(&self, path: &str, start: &[u64], data: &ArrayData) -> Result<()>;

    /// Change the shape (growth along axis 0 needs `resizable` in HDF5).
    fn resize(&self, path: &str, shape: &[u64]) -> Result<()>;

    /// Make everything written so far durable and, for zarr, consolidate metadata.
    fn flush(&self) -> Result<()>;

    /// Bytes the array at `path` occupies in storage, when the backend can tell.
    fn stored_bytes(&self, _path: &str) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Whether the array at `path` holds fixed-length ASCII byte strings (numpy `S<n>` as
    /// h5py stores them), which anndata reads differently from variable-length strings.
    fn is_fixed_ascii(&self, _path: &str) -> Result<bool> {
        Ok(false)
    }

    /// Whether the array at `path` is a record (structured, compound) array.
    fn is_record(&self, _path: &str) -> Result<bool> {
        Ok(false)
    }

    /// Read a whole 1-d record array as named columns (each a 1-d numeric or string
    /// array, or `(n, k...)` for a sub-array field; fields of nested records are listed
    /// leaf by leaf, named with [`FIELD_PATH_SEP`]). Record arrays are small by nature
    /// (e.g. scanpy's `rank_genes_groups`).
    fn read_record(&self, path: &str) -> Result<Vec<(String, ArrayData)>> {
        Err(StoreError::UnsupportedDType { path: path.to_owned(), found: "record array".into() })
    }

    /// The fields of a 1-d record array, in stored order.
    fn record_fields(&self, path: &str) -> Result<Vec<RecordField>> {
        Ok(self
            .read_record(path)?
            .into_iter()
            .map(|(name, a)| RecordField { name, dtype: a.dtype(), shape: a.shape().iter().skip(1).copied().collect() })
            .collect())
    }

    /// Number of records of a 1-d record array.
    fn record_len(&self, path: &str) -> Result<u64> {
        Ok(self.read_record(path)?.first().and_then(|(_, a)| a.shape().first().copied()).unwrap_or(0))
    }

    /// Rows `start..end` of one field of a 1-d record array, shaped
    /// `[end - start, ..field.shape]`. Backends read only that field and those rows;
    /// the default reads the whole record array.
    fn read_field(&self, path: &str, field: &str, start: u64, end: u64) -> Result<ArrayData> {
        let all = self.read_record(path)?;
        let (_, a) = all.into_iter().find(|(n, _)| n == field).ok_or_else(|| StoreError::NotFound { path: format!("{}:{field}", norm_path(path)) })?;
        let n = a.shape().first().copied().unwrap_or(0);
        if start > end || end > n {
            return Err(StoreError::OutOfBounds { path: path.to_owned(), reason: format!("rows {start}..{end} of {n}") });
        }
        Ok(a.slice_rows(start as usize, end as usize))
    }

    /// Create and write a 1-d record array from named columns of equal length (as
    /// [`Store::read_record`] returns them: leaves of nested records consecutive, named
    /// with [`FIELD_PATH_SEP`]).
    fn create_record(&self, path: &str, _fields: &[(String, ArrayData)], _compression: &Compression) -> Result<()> {
        Err(StoreError::UnsupportedDType { path: path.to_owned(), found: "record array".into() })
    }

    /// True if a node exists at `path`.
    fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.node_kind(path)?.is_some())
    }

    /// One attribute, if present.
    fn attr(&self, path: &str, name: &str) -> Result<Option<AttrValue>> {
        Ok(self.attrs(path)?.remove(name))
    }

    /// Read a whole array. Only for arrays known to be small.
    fn read_all(&self, path: &str) -> Result<ArrayData> {
        let meta = self.array_meta(path)?;
        if meta.null {
            return Ok(ArrayData::zeros(meta.dtype, &[0]));
        }
        let start = vec![0; meta.shape.len()];
        self.read(path, &start, &meta.shape)
    }

    /// Read rows `start..end` (axis 0) with all trailing dimensions.
    fn read_rows(&self, path: &str, start: u64, end: u64) -> Result<ArrayData> {
        let meta = self.array_meta(path)?;
        if meta.shape.is_empty() {
            return Err(StoreError::WrongKind { path: path.to_owned(), expected: "an array of rank >= 1" });
        }
        let mut s = vec![0; meta.shape.len()];
        s[0] = start;
        let mut shape = meta.shape.clone();
        shape[0] = end.saturating_sub(start);
        self.read(path, &s, &shape)
    }

    /// Write a block of rows at row `start` (all trailing dimensions).
    fn write_rows(&self, path: &str, start: u64, data: &ArrayData) -> Result<()> {
        let mut s = vec![0; data.shape().len()];
        if let Some(first) = s.first_mut() {
            *first = start;
        }
        self.write(path, &s, data)
    }

    /// The file and path holding the values of the array at `path` as they are read
    /// (no view translating, selecting or converting them), when it lies in a local
    /// file that a virtual array can map (HDF5). `None` otherwise, the default: a view
    /// passes it through only for arrays it shows unchanged.
    fn physical(&self, _path: &str) -> Result<Option<Physical>> {
        Ok(None)
    }

    /// Create at `path` a virtual array of `dtype` and `shape` whose rows are the
    /// `sources`' rows (in other files), with no data of its own. Backends without
    /// virtual arrays refuse.
    fn create_virtual(&self, path: &str, _dtype: DType, _shape: &[u64], _sources: &[VirtualSource]) -> Result<()> {
        Err(StoreError::backend(path, "virtual arrays are an HDF5 feature; this store cannot hold them"))
    }

    /// The sources of the virtual array at `path` as it records them (empty for any
    /// other array). Reads metadata only, also where data outside the store is refused.
    fn virtual_sources(&self, _path: &str) -> Result<Vec<VirtualSource>> {
        Ok(vec![])
    }

    /// Write rows `rows` of `data` (axis 0, all trailing dimensions) at row `start`.
    ///
    /// Backends override this to write straight from the caller's buffer; the default
    /// copies the rows out first.
    fn write_rows_range(&self, path: &str, start: u64, data: &ArrayData, rows: std::ops::Range<usize>) -> Result<()> {
        let n = data.shape().first().copied().unwrap_or(0) as usize;
        if rows.start == 0 && rows.end == n {
            return self.write_rows(path, start, data);
        }
        if rows.start > rows.end || rows.end > n {
            return Err(StoreError::OutOfBounds { path: path.to_owned(), reason: format!("rows {rows:?} of a block of {n}") });
        }
        self.write_rows(path, start, &data.slice_rows(rows.start, rows.end))
    }
}

/// Check a read/write box against an array shape; shared by backends.
pub fn check_box(path: &str, array_shape: &[u64], start: &[u64], shape: &[u64]) -> Result<()> {
    if start.len() != array_shape.len() || shape.len() != array_shape.len() {
        return Err(StoreError::OutOfBounds {
            path: path.to_owned(),
            reason: format!("selection of rank {} on an array of rank {}", shape.len(), array_shape.len()),
        });
    }
    for ((&s, &n), &d) in start.iter().zip(shape).zip(array_shape) {
        if s.checked_add(n).is_none_or(|e| e > d) {
            return Err(StoreError::OutOfBounds {
                path: path.to_owned(),
                reason: format!("selection {start:?}+{shape:?} outside array of shape {array_shape:?}"),
            });
        }
    }
    Ok(())
}
