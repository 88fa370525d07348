//! # adcat-hdf5
//!
//! [`adcat_store::Store`] for HDF5 files (`.h5ad`), on `hdf5-metno` linked to the system
//! libhdf5. Reads what h5py/anndata write (vlen and fixed-length strings, h5py's enum
//! bools, the empty float64 `column-order` attribute, gzip/lzf/shuffle filters) and writes
//! files plain h5py opens without plugins.

mod direct;
mod fields;
mod links;
mod virtual_ds;
mod record;

use adcat_store::{
    check_box, check_names, checked_path, numeric_for_dtype, with_numeric, ArrayData, ArrayMeta, ArraySpec, AttrValue, Attrs,
    Compression, DType, Element, NodeKind, Result, Store, StoreError, StoreKind,
};
use hdf5::types::{FloatSize, IntSize, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Extent, Extents, Hyperslab, Location, SimpleExtents, SliceOrIndex};
use ndarray::{ArrayD, IxDyn};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::str::FromStr;

/// An HDF5 file opened as a store.
#[derive(Debug)]
pub struct Hdf5Store {
    /// The open file; for read-only stores it may be closed while idle (see [`pool`]).
    slot: Arc<Mutex<Option<OpenFile>>>,
    path: PathBuf,
    location: String,
    writable: bool,
    follow_external: bool,
    /// Virtual datasets whose sources were checked (`virtual_ds::check_values`), by
    /// normalised path: a read checks them once, not at every window.
    checked_virtual: Mutex<std::collections::HashSet<String>>,
}

/// How to open an existing file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hdf5Options {
    /// Follow external links and read virtual or externally stored datasets, whose data
    /// lives in other files. Off by default: such elements are refused with their target.
    pub follow_external_links: bool,
}

/// An open file and the groups on the path last resolved in it (see `Hdf5Store::resolve`).
/// Kept together so that closing the file (the pool) also closes the cached groups: an
/// open group would keep libhdf5's file open.
#[derive(Debug)]
struct OpenFile {
    file: hdf5::File,
    /// When it was last used (`pool::now`), for choosing which idle file the pool closes.
    used: u64,
    /// Groups of the last resolved path, each with its normalised path (ancestors first).
    groups: Vec<(String, hdf5::Group)>,
    /// Datasets already resolved and checked, by normalised path (read-only files only:
    /// planning and every task look up the same few datasets of an input again, and each
    /// lookup walks the links and reads the creation properties).
    datasets: std::collections::HashMap<String, hdf5::Dataset>,
}

/// The most datasets kept resolved per read-only file (uns-heavy files have thousands).
const MAX_CACHED_DATASETS: usize = 256;

impl OpenFile {
    fn new(file: hdf5::File) -> Self {
        OpenFile { file, used: pool::now(), groups: Vec::new(), datasets: Default::default() }
    }
}

/// libhdf5 keeps 1-4 MiB of caches per open file; with hundreds of inputs that alone
/// would exceed the memory budget. Read-only stores therefore share a pool of at most
/// `LIMIT` open files and reopen on demand. The engine sweeps the inputs in order, once
/// per element, so the *most* recently used idle file goes first: under least-recently-
/// used eviction a sweep over more files than the limit would reopen every one of them,
/// this way the others stay open for the next sweep. A file handle in use stays valid:
/// HDF5 ids are reference counted.
mod pool {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, PoisonError, Weak};

    pub(crate) const MAX_OPEN: usize = 64;
    /// The limit in force (see [`super::set_open_file_limit`]).
    pub(crate) static LIMIT: AtomicUsize = AtomicUsize::new(MAX_OPEN);
    type Slot = Mutex<Option<super::OpenFile>>;
    static SLOTS: Mutex<Vec<Weak<Slot>>> = Mutex::new(Vec::new());
    static CLOCK: AtomicU64 = AtomicU64::new(0);

    /// A use stamp, larger for more recent uses. Every access stamps its file (O(1));
    /// only opening a file looks at the others.
    pub(crate) fn now() -> u64 {
        CLOCK.fetch_add(1, Ordering::Relaxed)
    }

    /// Register the just (re)opened `slot` and close the most recently used idle files
    /// beyond the limit. Files busy in another thread count as open and are skipped.
    pub(crate) fn opened(slot: &Arc<Slot>) {
        let mut all = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|w| w.strong_count() > 0);
        if !all.iter().any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(slot))) {
            all.push(Arc::downgrade(slot));
        }
        let (mut open, mut idle) = (0usize, vec![]);
        for s in all.iter().filter_map(Weak::upgrade) {
            if Arc::ptr_eq(&s, slot) {
                open += 1;
                continue;
            }
            let used = match s.try_lock() {
                Ok(g) => g.as_ref().map(|o| o.used),
                Err(_) => {
                    open += 1;
                    None
                }
            };
            if let Some(u) = used {
                open += 1;
                idle.push((u, s));
            }
        }
        idle.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        for (_, s) in idle.into_iter().take(open.saturating_sub(LIMIT.load(Ordering::Relaxed).max(1))) {
            if let Ok(mut g) = s.try_lock() {
                g.take();
            }
        }
    }
}

/// At most `n` read-only files stay open at once (default 64); beyond that, idle ones
/// are closed and reopened when next used. libhdf5 keeps up to a few MiB of
/// caches per open file (more for files of many small chunks), so a tool bounding its
/// memory sets this from its budget.
pub fn set_open_file_limit(n: usize) {
    pool::LIMIT.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// Inputs are read in large sequential blocks and many may be open at once: a small
/// metadata cache (HDF5's default starts at 2 MiB per file) is enough.
fn small_mdc() -> hdf5::plist::file_access::MetadataCacheConfig {
    hdf5::plist::file_access::MetadataCacheConfig { initial_size: 1 << 16, min_size: 1 << 16, max_size: 1 << 20, ..Default::default() }
}

pub(crate) fn err(path: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(path, tidy(&e.to_string()))
}

/// libhdf5's I/O errors carry the time, file descriptor, buffer address and byte counts;
/// keep the failed operation and the system's reason ("... file write failed: No space
/// left on device").
fn tidy(m: &str) -> String {
    let Some(i) = m.find(": time = ") else { return m.to_owned() };
    let head = &m[..i];
    match m.find("error message = '") {
        Some(j) => format!("{head}: {}", m[j + 17..].split('\'').next().unwrap_or_default()),
        None => head.to_owned(),
    }
}

/// Default chunk length (elements along axis 0 x trailing size) when a chunked layout is
/// needed but none was given: ~1 MiB of elements.
fn default_chunks(spec: &ArraySpec) -> Vec<usize> {
    let trailing: u64 = spec.shape.iter().skip(1).product::<u64>().max(1);
    let target = ((1u64 << 20) / spec.dtype.itemsize() as u64 / trailing).max(1);
    let mut c: Vec<usize> = spec.shape.iter().map(|&d| d.max(1) as usize).collect();
    if let Some(first) = c.first_mut() {
        *first = if spec.resizable { target as usize } else { (*first).min(target as usize) };
    }
    c
}

/// Raw-data chunk cache (slots, bytes, w0): none. adcat reads and writes large blocks of
/// whole chunks; without a cache libhdf5 moves unfiltered chunks straight between the file
/// and the caller's buffer instead of staging each one in the cache (a copy per chunk).
const NO_CHUNK_CACHE: (usize, usize, f64) = (1, 0, 1.0);

impl Hdf5Store {
    /// Open an existing file read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Hdf5Options::default())
    }

    /// Open an existing file read-only with options.
    pub fn open_with(path: impl AsRef<Path>, opts: Hdf5Options) -> Result<Self> {
        let p = path.as_ref();
        let location = p.display().to_string();
        if !p.is_file() {
            return Err(StoreError::Open { location, reason: "no such file".into() });
        }
        hdf5::silence_errors(true);
        // Inputs are read in large sequential blocks, and hundreds may be open at once:
        // a small metadata cache (HDF5's default starts at 2 MiB per file) keeps memory
        // independent of the number of inputs.
        let file = hdf5::File::with_options()
            .with_fapl(|f| f.mdc_config(&small_mdc()).chunk_cache(NO_CHUNK_CACHE.0, NO_CHUNK_CACHE.1, NO_CHUNK_CACHE.2))
            .open(p)
            .map_err(|e| StoreError::Open { location: location.clone(), reason: format!("not a readable HDF5 file ({e})") })?;
        let store = Hdf5Store { slot: Arc::new(Mutex::new(Some(OpenFile::new(file)))), path: p.to_path_buf(), location, writable: false, follow_external: opts.follow_external_links, checked_virtual: Mutex::default() };
        pool::opened(&store.slot);
        Ok(store)
    }

    /// Create a new file, truncating any existing one.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let location = p.display().to_string();
        hdf5::silence_errors(true);
        let file = hdf5::File::with_options()
            .with_fapl(|f| f.chunk_cache(NO_CHUNK_CACHE.0, NO_CHUNK_CACHE.1, NO_CHUNK_CACHE.2))
            .create(p)
            .map_err(|e| StoreError::Open { location: location.clone(), reason: e.to_string() })?;
        Ok(Hdf5Store { slot: Arc::new(Mutex::new(Some(OpenFile::new(file)))), path: p.to_path_buf(), location, writable: true, follow_external: false, checked_virtual: Mutex::default() })
    }

    /// Open an existing file for reading and writing.
    pub fn open_rw(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let location = p.display().to_string();
        hdf5::silence_errors(true);
        let file = hdf5::File::open_rw(p).map_err(|e| StoreError::Open { location: location.clone(), reason: e.to_string() })?;
        Ok(Hdf5Store { slot: Arc::new(Mutex::new(Some(OpenFile::new(file)))), path: p.to_path_buf(), location, writable: true, follow_external: false, checked_virtual: Mutex::default() })
    }

    /// The open file, reopened if the pool closed it while idle.
    fn file(&self) -> Result<hdf5::File> {
        self.with_open(|o| Ok(o.file.clone()))
    }

    /// Run `f` on the open file state (reopening the file if the pool closed it).
    fn with_open<R>(&self, f: impl FnOnce(&mut OpenFile) -> Result<R>) -> Result<R> {
        let mut reopened = false;
        let r = {
            let mut g = self.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if g.is_none() {
                reopened = true;
                let file = hdf5::File::with_options()
                    .with_fapl(|f| f.mdc_config(&small_mdc()).chunk_cache(NO_CHUNK_CACHE.0, NO_CHUNK_CACHE.1, NO_CHUNK_CACHE.2))
                    .open(&self.path)
                    .map_err(|e| StoreError::Open { location: self.location.clone(), reason: format!("cannot reopen ({e})") })?;
                *g = Some(OpenFile::new(file));
            }
            match g.as_mut() {
                Some(o) => {
                    o.used = pool::now();
                    f(o)?
                }
                None => return Err(StoreError::Open { location: self.location.clone(), reason: "file closed".into() }),
            }
        };
        if reopened && !self.writable {
            pool::opened(&self.slot);
        }
        Ok(r)
    }

    /// Write `data` (or only its rows `rows`) into the box at `start`, straight from the
    /// caller's buffer.
    fn write_part(&self, path: &str, start: &[u64], data: &ArrayData, rows: Option<std::ops::Range<usize>>) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        let ds = self.dataset(&p)?;
        let meta = self.array_meta(&p)?;
        if meta.dtype != data.dtype() {
            return Err(StoreError::DTypeMismatch { path: p, expected: meta.dtype, found: data.dtype() });
        }
        let mut shape = data.shape();
        let rows = match (rows, shape.first_mut()) {
            (Some(r), Some(n)) => {
                if r.start > r.end || r.end as u64 > *n {
                    return Err(StoreError::OutOfBounds { path: p, reason: format!("rows {r:?} of a block of {n}") });
                }
                *n = (r.end - r.start) as u64;
                r
            }
            (_, n) => 0..n.map_or(0, |n| *n as usize),
        };
        check_box(&p, &meta.shape, start, &shape)?;
        if shape.contains(&0) {
            return Ok(());
        }
        if data.dtype() != DType::String && !shape.is_empty() {
            if let (Some(level), Some(chunk)) = (direct::deflate_level(&ds), ds.chunk()) {
                let chunk: Vec<u64> = chunk.iter().map(|&c| c as u64).collect();
                if direct::covers_whole_chunks(start, &shape, &chunk, &meta.shape) {
                    return with_numeric!(data, a => {
                        direct::write(ds.id(), &p, a.slice_axis(ndarray::Axis(0), ndarray::Slice::from(rows)), start, &chunk, level)
                    }, _s => Err(err(&p, "strings cannot be written as raw chunks")));
                }
            }
        }
        let e = |x: hdf5::Error| err(&p, x);
        let writer = ds.as_writer();
        let sel = hyperslab(start, &shape);
        with_numeric!(data, a => {
            if shape.is_empty() {
                writer.write_scalar(&a[IxDyn(&[])]).map_err(e)
            } else {
                writer.write_slice(a.slice_axis(ndarray::Axis(0), ndarray::Slice::from(rows)), sel).map_err(e)
            }
        }, s => {
            let s = if shape.is_empty() { s.view() } else { s.slice_axis(ndarray::Axis(0), ndarray::Slice::from(rows)) };
            let v: ArrayD<VarLenUnicode> = {
                let items: Vec<VarLenUnicode> = s.iter().map(|x| vlen(&p, x)).collect::<Result<_>>()?;
                ArrayD::from_shape_vec(s.raw_dim(), items).map_err(|x| err(&p, x))?
            };
            if shape.is_empty() {
                writer.write_scalar(&v[IxDyn(&[])]).map_err(e)
            } else {
                writer.write_slice(v.view(), sel).map_err(e)
            }
        })
    }

    fn check_writable(&self, path: &str) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(StoreError::ReadOnly { path: path.to_owned() })
        }
    }

    /// The node at `path`, resolved link by link (see [`links`]) from the deepest cached
    /// group on its path: tree walks resolve a child of the group resolved just before,
    /// so each lookup costs one link instead of the whole depth.
    fn resolve(&self, path: &str) -> Result<Option<links::Node>> {
        let p = checked_path(path)?;
        if !self.writable {
            if let Some(d) = self.with_open(|o| Ok(o.datasets.get(&p).cloned()))? {
                return Ok(Some(links::Node::Dataset(d)));
            }
        }
        let (base, start) = self.with_open(|o| {
            let hit = o.groups.iter().rev().find(|(g, _)| g.is_empty() || p == *g || p.starts_with(&format!("{g}/")));
            Ok(match hit {
                Some((g, h)) => (g.clone(), h.clone()),
                None => (String::new(), o.file.as_group().map_err(|e| err("/", e))?),
            })
        })?;
        let rest = p[base.len()..].trim_start_matches('/');
        let node = links::resolve(start, &base, rest, self.follow_external)?;
        if let (Some(links::Node::Dataset(d)), false) = (&node, self.writable) {
            self.with_open(|o| {
                if o.datasets.len() >= MAX_CACHED_DATASETS {
                    o.datasets.clear();
                }
                o.datasets.insert(p.clone(), d.clone());
                Ok(())
            })?;
        }
        if let Some(links::Node::Group(g)) = &node {
            // Keep the groups on this path only (a stack for depth-first walks).
            self.with_open(|o| {
                o.groups.retain(|(q, _)| q.is_empty() || p == *q || p.starts_with(&format!("{q}/")));
                if !o.groups.iter().any(|(q, _)| *q == p) {
                    o.groups.push((p.clone(), g.clone()));
                }
                Ok(())
            })?;
        }
        Ok(node)
    }

    /// Forget cached groups (after a node is created or deleted).
    fn forget_groups(&self) -> Result<()> {
        self.with_open(|o| {
            o.groups.clear();
            Ok(())
        })
    }

    fn kind_of(&self, path: &str) -> Result<Option<NodeKind>> {
        Ok(self.resolve(path)?.map(|n| n.kind()))
    }

    fn group(&self, path: &str) -> Result<hdf5::Group> {
        match self.resolve(path)? {
            Some(links::Node::Group(g)) => Ok(g),
            Some(links::Node::Dataset(_)) => Err(StoreError::WrongKind { path: norm(path), expected: "a group" }),
            None => Err(StoreError::NotFound { path: norm(path) }),
        }
    }

    fn dataset(&self, path: &str) -> Result<hdf5::Dataset> {
        match self.resolve(path)? {
            Some(links::Node::Dataset(d)) => Ok(d),
            Some(links::Node::Group(_)) => Err(StoreError::WrongKind { path: norm(path), expected: "an array" }),
            None => Err(StoreError::NotFound { path: norm(path) }),
        }
    }

    /// The dataset at `path`, to read its values: one whose values live in other files
    /// is refused unless the store follows them, or it is a virtual dataset over files
    /// beside this one (see [`virtual_ds`]).
    fn data_dataset(&self, path: &str) -> Result<hdf5::Dataset> {
        let ds = self.dataset(path)?;
        let p = norm(path);
        let mut checked = self.checked_virtual.lock().unwrap_or_else(|e| e.into_inner());
        // Checked before: a virtual dataset's creation properties hold all its
        // mappings, and libhdf5 copies them at every look.
        if checked.contains(&p) {
            return Ok(ds);
        }
        let dcpl = ds.dcpl().map_err(|e| err(&p, e))?;
        if dcpl.layout() == hdf5::plist::dataset_create::Layout::Virtual {
            virtual_ds::check_values(&dcpl, &p, &self.path, self.follow_external)?;
            checked.insert(p);
        } else if !self.follow_external {
            links::check_dataset(&ds, &p)?;
        }
        Ok(ds)
    }

    fn with_location<R>(&self, path: &str, f: impl FnOnce(&Location) -> Result<R>) -> Result<R> {
        match self.resolve(path)? {
            Some(links::Node::Group(g)) => f(&g),
            Some(links::Node::Dataset(d)) => f(&d),
            None => Err(StoreError::NotFound { path: norm(path) }),
        }
    }
}

impl Hdf5Store {
    /// Length of a 1-d record array.
    fn records_in(&self, ds: &hdf5::Dataset, p: &str) -> Result<u64> {
        match ds.shape().as_slice() {
            [n] => Ok(*n as u64),
            s => Err(StoreError::UnsupportedDType { path: p.to_owned(), found: format!("record array of rank {}", s.len()) }),
        }
    }
}

fn norm(path: &str) -> String {
    adcat_store::norm_path(path)
}

pub(crate) fn dtype_of(path: &str, td: &TypeDescriptor) -> Result<DType> {
    Ok(match td {
        TypeDescriptor::Boolean => DType::Bool,
        TypeDescriptor::Enum(e) if is_bool_enum(e) => DType::Bool,
        TypeDescriptor::Integer(IntSize::U1) => DType::I8,
        TypeDescriptor::Integer(IntSize::U2) => DType::I16,
        TypeDescriptor::Integer(IntSize::U4) => DType::I32,
        TypeDescriptor::Integer(IntSize::U8) => DType::I64,
        TypeDescriptor::Unsigned(IntSize::U1) => DType::U8,
        TypeDescriptor::Unsigned(IntSize::U2) => DType::U16,
        TypeDescriptor::Unsigned(IntSize::U4) => DType::U32,
        TypeDescriptor::Unsigned(IntSize::U8) => DType::U64,
        TypeDescriptor::Float(FloatSize::U4) => DType::F32,
        TypeDescriptor::Float(FloatSize::U8) => DType::F64,
        TypeDescriptor::Compound(c) if is_complex(c, FloatSize::U4) => DType::C64,
        TypeDescriptor::Compound(c) if is_complex(c, FloatSize::U8) => DType::C128,
        TypeDescriptor::VarLenUnicode
        | TypeDescriptor::VarLenAscii
        | TypeDescriptor::FixedAscii(_)
        | TypeDescriptor::FixedUnicode(_) => DType::String,
        other => return Err(StoreError::UnsupportedDType { path: path.to_owned(), found: other.to_string() }),
    })
}

/// h5py stores complex numbers as a compound of two floats named `r` and `i`.
fn is_complex(c: &hdf5::types::CompoundType, size: FloatSize) -> bool {
    c.fields.len() == 2
        && c.fields[0].name == "r"
        && c.fields[1].name == "i"
        && c.fields.iter().all(|f| f.ty == TypeDescriptor::Float(size))
}

pub(crate) fn is_bool_enum(e: &hdf5::types::EnumType) -> bool {
    let mut names: Vec<&str> = e.members.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    names == ["FALSE", "TRUE"]
}

pub(crate) fn descriptor_for(dtype: DType) -> TypeDescriptor {
    numeric_for_dtype!(dtype, T => <T as hdf5::H5Type>::type_descriptor(), string => TypeDescriptor::VarLenUnicode)
}

fn hyperslab(start: &[u64], shape: &[u64]) -> Hyperslab {
    let v: Vec<SliceOrIndex> = start
        .iter()
        .zip(shape)
        .map(|(&s, &n)| SliceOrIndex::SliceTo { start: s as usize, step: 1, end: (s + n) as usize, block: 1 })
        .collect();
    Hyperslab::from(v)
}

/// Fixed-length strings have no Rust type of dynamic size in hdf5-metno; read their raw
/// bytes with the file's own type and split them (NUL- or space-padded).
fn read_fixed_strings(id: hdf5_sys::h5i::hid_t, is_attr: bool, n_elems: usize, path: &str) -> Result<Vec<String>> {
    use hdf5_sys::{h5a, h5d, h5p, h5s, h5t};
    // SAFETY: ids come from live hdf5-metno objects; the buffer is sized from the type.
    unsafe {
        let ftype = if is_attr { h5a::H5Aget_type(id) } else { h5d::H5Dget_type(id) };
        if ftype < 0 {
            return Err(err(path, "cannot get string type"));
        }
        let size = h5t::H5Tget_size(ftype);
        let mut buf = vec![0u8; size * n_elems.max(1)];
        let status = if is_attr {
            h5a::H5Aread(id, ftype, buf.as_mut_ptr().cast())
        } else {
            h5d::H5Dread(id, ftype, h5s::H5S_ALL, h5s::H5S_ALL, h5p::H5P_DEFAULT, buf.as_mut_ptr().cast())
        };
        h5t::H5Tclose(ftype);
        if status < 0 {
            return Err(err(path, "cannot read fixed-length strings"));
        }
        Ok(buf
            .chunks(size.max(1))
            .take(n_elems)
            .map(|c| {
                let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                String::from_utf8_lossy(&c[..end]).trim_end_matches(' ').to_owned()
            })
            .collect())
    }
}

fn read_attr(path: &str, attr: &hdf5::Attribute) -> Result<AttrValue> {
    let td = attr.dtype().and_then(|t| t.to_descriptor()).map_err(|e| err(path, e))?;
    let space = attr.space().map_err(|e| err(path, e))?;
    if space.is_null() {
        return Ok(AttrValue::Null);
    }
    let scalar = attr.is_scalar();
    let e = |x: hdf5::Error| err(path, x);
    Ok(match dtype_of(path, &td)? {
        DType::Bool => {
            let v: Vec<bool> = attr.read_raw().map_err(e)?;
            if scalar { AttrValue::Bool(v.first().copied().unwrap_or(false)) } else { AttrValue::Bools(v) }
        }
        DType::F32 | DType::F64 => {
            let v: Vec<f64> = attr.read_raw().map_err(e)?;
            if scalar { AttrValue::Float(v.first().copied().unwrap_or(f64::NAN)) } else { AttrValue::Floats(v) }
        }
        DType::String => {
            let v: Vec<String> = match td {
                TypeDescriptor::VarLenUnicode => attr.read_raw::<VarLenUnicode>().map_err(e)?.iter().map(|s| s.as_str().to_owned()).collect(),
                TypeDescriptor::VarLenAscii => attr.read_raw::<VarLenAscii>().map_err(e)?.iter().map(|s| s.as_str().to_owned()).collect(),
                _ => read_fixed_strings(attr.id(), true, attr.size(), path)?,
            };
            if scalar { AttrValue::String(v.into_iter().next().unwrap_or_default()) } else { AttrValue::Strings(v) }
        }
        DType::C64 | DType::C128 => {
            return Err(StoreError::UnsupportedDType { path: path.to_owned(), found: "complex attribute".into() });
        }
        DType::U64 => {
            let v: Vec<u64> = attr.read_raw().map_err(e)?;
            let v: Vec<i64> = v.into_iter().map(|x| x as i64).collect();
            if scalar { AttrValue::Int(v.first().copied().unwrap_or(0)) } else { AttrValue::Ints(v) }
        }
        _ => {
            let v: Vec<i64> = attr.read_raw().map_err(e)?;
            if scalar { AttrValue::Int(v.first().copied().unwrap_or(0)) } else { AttrValue::Ints(v) }
        }
    })
}

fn vlen(path: &str, s: &str) -> Result<VarLenUnicode> {
    VarLenUnicode::from_str(s).map_err(|e| err(path, format!("string cannot be stored in HDF5: {e}")))
}

fn write_attr(path: &str, loc: &Location, name: &str, value: &AttrValue) -> Result<()> {
    let e = |x: hdf5::Error| err(path, format!("attribute {name}: {x}"));
    if loc.attr_names().map_err(e)?.iter().any(|n| n == name) {
        loc.delete_attr(name).map_err(e)?;
    }
    match value {
        AttrValue::Bool(b) => loc.new_attr::<bool>().shape(()).create(name).and_then(|a| a.write_scalar(b)).map_err(e),
        AttrValue::Int(i) => loc.new_attr::<i64>().shape(()).create(name).and_then(|a| a.write_scalar(i)).map_err(e),
        AttrValue::Float(f) => loc.new_attr::<f64>().shape(()).create(name).and_then(|a| a.write_scalar(f)).map_err(e),
        AttrValue::String(s) => {
            let v = vlen(path, s)?;
            loc.new_attr::<VarLenUnicode>().shape(()).create(name).and_then(|a| a.write_scalar(&v)).map_err(e)
        }
        AttrValue::Bools(v) => loc.new_attr_builder().with_data(v.as_slice()).create(name).map(|_| ()).map_err(e),
        AttrValue::Ints(v) => loc.new_attr_builder().with_data(v.as_slice()).create(name).map(|_| ()).map_err(e),
        AttrValue::Floats(v) => loc.new_attr_builder().with_data(v.as_slice()).create(name).map(|_| ()).map_err(e),
        // h5py cannot create an empty vlen-string array attribute and writes float64[0]
        // instead (anndata's empty `column-order`); do the same so files match byte for byte.
        AttrValue::Strings(v) if v.is_empty() => {
            loc.new_attr_builder().with_data::<_, f64, _>(&[] as &[f64]).create(name).map(|_| ()).map_err(e)
        }
        AttrValue::Strings(v) => {
            let v: Vec<VarLenUnicode> = v.iter().map(|s| vlen(path, s)).collect::<Result<_>>()?;
            loc.new_attr_builder().with_data(v.as_slice()).create(name).map(|_| ()).map_err(e)
        }
        // HDF5 attributes cannot nest: store JSON text (as h5py users do by convention).
        AttrValue::Null | AttrValue::List(_) | AttrValue::Map(_) => {
            let v = vlen(path, &value.to_json().to_string())?;
            loc.new_attr::<VarLenUnicode>().shape(()).create(name).and_then(|a| a.write_scalar(&v)).map_err(e)
        }
    }
}

fn filters_of(dcpl: &hdf5::plist::DatasetCreate) -> (Compression, Vec<String>) {
    let mut comp = Compression::None;
    let mut other = vec![];
    for f in dcpl.filters() {
        match f {
            hdf5::filters::Filter::Deflate(l) => comp = Compression::Gzip(u32::from(l)),
            hdf5::filters::Filter::LZF => comp = Compression::Lzf,
            hdf5::filters::Filter::Shuffle => other.push("shuffle".to_owned()),
            hdf5::filters::Filter::Fletcher32 => other.push("fletcher32".to_owned()),
            hdf5::filters::Filter::User(id, _) => comp = Compression::Other(format!("hdf5-filter-{id}")),
            f => other.push(format!("{f:?}").to_lowercase()),
        }
    }
    (comp, other)
}

impl Store for Hdf5Store {
    fn location(&self) -> &str {
        &self.location
    }

    fn kind(&self) -> StoreKind {
        StoreKind::Hdf5
    }

    fn node_kind(&self, path: &str) -> Result<Option<NodeKind>> {
        self.kind_of(path)
    }

    fn list(&self, path: &str) -> Result<Vec<String>> {
        let g = self.group(path)?;
        let mut names = g.member_names().map_err(|e| err(path, e))?;
        names.sort();
        check_names(path, &names)?;
        Ok(names)
    }

    fn create_group(&self, path: &str) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        match self.kind_of(&p)? {
            Some(NodeKind::Group) => Ok(()),
            Some(NodeKind::Array) => Err(StoreError::Exists { path: p }),
            None => self.file()?.create_group(&p).map(|_| ()).map_err(|e| err(&p, e)),
        }
    }

    fn delete(&self, path: &str) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        if self.kind_of(&p)?.is_none() {
            return Err(StoreError::NotFound { path: p });
        }
        self.forget_groups()?;
        self.file()?.unlink(&p).map_err(|e| err(&p, e))
    }

    fn attrs(&self, path: &str) -> Result<Attrs> {
        let p = checked_path(path)?;
        self.with_location(&p, |loc| {
            let mut out = Attrs::new();
            for name in loc.attr_names().map_err(|e| err(&p, e))? {
                let a = loc.attr(&name).map_err(|e| err(&p, e))?;
                // Attribute types adcat does not model (object references of legacy
                // dataframes, compound types) read as Null instead of failing the element.
                let v = match read_attr(&p, &a) {
                    Ok(v) => v,
                    Err(StoreError::UnsupportedDType { .. }) => AttrValue::Null,
                    Err(e) => return Err(e),
                };
                out.insert(name, v);
            }
            Ok(out)
        })
    }

    fn set_attrs(&self, path: &str, attrs: &Attrs) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        self.with_location(&p, |loc| attrs.iter().try_for_each(|(k, v)| write_attr(&p, loc, k, v)))
    }

    fn create_array(&self, path: &str, spec: &ArraySpec) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        if self.kind_of(&p)?.is_some() {
            return Err(StoreError::Exists { path: p });
        }
        let e = |x: hdf5::Error| err(&p, x);
        let file = self.file()?;
        let builder = file.new_dataset_builder().empty_as(descriptor_for(spec.dtype));
        if spec.null {
            builder.shape(Extents::Null).create(p.as_str()).map_err(e)?;
            return Ok(());
        }
        if spec.shape.is_empty() {
            builder.shape(()).create(p.as_str()).map_err(e)?;
            return Ok(());
        }
        let dims: Vec<Extent> = spec
            .shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if i == 0 && spec.resizable { Extent::resizable(d as usize) } else { Extent::fixed(d as usize) })
            .collect();
        let mut b = builder.shape(SimpleExtents::new(dims));
        let any_zero = spec.shape.contains(&0);
        let wants_chunks = spec.resizable || spec.compression != Compression::None || spec.chunks.is_some();
        // A fixed-size array with a zero dimension cannot be chunked; it holds no data anyway.
        if wants_chunks && (spec.resizable || !any_zero) {
            let mut chunks: Vec<usize> = match &spec.chunks {
                Some(c) => c.iter().map(|&x| x.max(1) as usize).collect(),
                None => default_chunks(spec),
            };
            for (i, (c, &d)) in chunks.iter_mut().zip(&spec.shape).enumerate() {
                if !(i == 0 && spec.resizable) {
                    *c = (*c).min(d.max(1) as usize);
                }
            }
            b = b.chunk(chunks);
            match &spec.compression {
                Compression::None => {}
                Compression::Gzip(l) => b = b.deflate((*l).min(9) as u8),
                Compression::Lzf => b = b.lzf(),
                other => {
                    return Err(err(&p, format!("compression {other} is not available for HDF5 output (use gzip or lzf)")));
                }
            }
        }
        b.create(p.as_str()).map_err(e)?;
        Ok(())
    }

    fn array_meta(&self, path: &str) -> Result<ArrayMeta> {
        let p = checked_path(path)?;
        let ds = self.dataset(&p)?;
        let td = ds.dtype().and_then(|t| t.to_descriptor()).map_err(|e| err(&p, e))?;
        let dtype = dtype_of(&p, &td)?;
        let null = ds.space().map_err(|e| err(&p, e))?.is_null();
        // One copy of the creation properties (a virtual dataset's hold every mapping).
        let dcpl = ds.dcpl().ok();
        let (compression, filters) = dcpl.as_ref().map(filters_of).unwrap_or((Compression::None, vec![]));
        Ok(ArrayMeta {
            dtype,
            shape: if null { vec![] } else { ds.shape().iter().map(|&d| d as u64).collect() },
            chunks: dcpl.as_ref().and_then(|d| d.chunk()).map(|c| c.iter().map(|&d| d as u64).collect()),
            shards: None,
            compression,
            filters,
            null,
        })
    }

    fn read(&self, path: &str, start: &[u64], shape: &[u64]) -> Result<ArrayData> {
        let p = checked_path(path)?;
        let ds = self.data_dataset(&p)?;
        let meta = self.array_meta(&p)?;
        if meta.null {
            return Ok(ArrayData::zeros(meta.dtype, &[0]));
        }
        check_box(&p, &meta.shape, start, shape)?;
        if shape.contains(&0) {
            return Ok(ArrayData::zeros(meta.dtype, shape));
        }
        let e = |x: hdf5::Error| err(&p, x);
        let reader = ds.as_reader();
        let sel = hyperslab(start, shape);
        if meta.dtype == DType::String {
            let td = ds.dtype().and_then(|t| t.to_descriptor()).map_err(e)?;
            let strings: ArrayD<String> = match td {
                TypeDescriptor::VarLenUnicode => {
                    let a: ArrayD<VarLenUnicode> = if shape.is_empty() {
                        ArrayD::from_elem(IxDyn(&[]), reader.read_scalar().map_err(e)?)
                    } else {
                        reader.read_slice(sel).map_err(e)?
                    };
                    a.mapv(|s| s.as_str().to_owned())
                }
                TypeDescriptor::VarLenAscii => {
                    let a: ArrayD<VarLenAscii> = if shape.is_empty() {
                        ArrayD::from_elem(IxDyn(&[]), reader.read_scalar().map_err(e)?)
                    } else {
                        reader.read_slice(sel).map_err(e)?
                    };
                    a.mapv(|s| s.as_str().to_owned())
                }
                _ => {
                    // Fixed-length strings: read whole (they are small by nature) and cut.
                    let all = read_fixed_strings(ds.id(), false, meta.len() as usize, &p)?;
                    let sh: Vec<usize> = meta.shape.iter().map(|&d| d as usize).collect();
                    let full = ArrayD::from_shape_vec(IxDyn(&sh), all).map_err(|x| err(&p, x))?;
                    let mut view = full.view();
                    for (ax, (&s, &n)) in start.iter().zip(shape).enumerate() {
                        view.slice_axis_inplace(ndarray::Axis(ax), ndarray::Slice::from(s as usize..(s + n) as usize));
                    }
                    view.to_owned()
                }
            };
            return Ok(ArrayData::String(strings));
        }
        let direct_chunk = match (meta.chunks.as_deref(), shape.len()) {
            (Some([c]), 1) if meta.dtype.is_integer() || meta.dtype.is_float() => Some(*c),
            _ => None,
        };
        numeric_for_dtype!(meta.dtype, T => {
            if let Some(c) = direct_chunk {
                if let Some(v) = direct::read_1d::<T>(&ds, &p, start[0], shape[0], c)? {
                    return Ok(T::wrap(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).map_err(|x| err(&p, x))?));
                }
            }
            let a: ArrayD<T> = if shape.is_empty() {
                ArrayD::from_elem(IxDyn(&[]), reader.read_scalar::<T>().map_err(e)?)
            } else {
                reader.read_slice::<T, _, IxDyn>(sel).map_err(e)?
            };
            Ok(T::wrap(a))
        }, string => unreachable!("handled above"))
    }

    fn write(&self, path: &str, start: &[u64], data: &ArrayData) -> Result<()> {
        self.write_part(path, start, data, None)
    }

    fn write_rows_range(&self, path: &str, start: u64, data: &ArrayData, rows: std::ops::Range<usize>) -> Result<()> {
        let mut s = vec![0; data.shape().len()];
        if let Some(first) = s.first_mut() {
            *first = start;
        }
        self.write_part(path, &s, data, Some(rows))
    }

    fn resize(&self, path: &str, shape: &[u64]) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        let ds = self.dataset(&p)?;
        let s: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        ds.resize(s).map_err(|e| err(&p, format!("cannot resize to {shape:?}: {e}")))
    }

    fn stored_bytes(&self, path: &str) -> Result<Option<u64>> {
        Ok(Some(self.dataset(path)?.storage_size()))
    }

    fn physical(&self, path: &str) -> Result<Option<adcat_store::Physical>> {
        let p = checked_path(path)?;
        let ds = self.dataset(&p)?;
        // Only values stored in this file: a virtual array maps them directly.
        if links::check_dataset(&ds, &p).is_err() {
            return Ok(None);
        }
        let file = std::fs::canonicalize(&self.path).map_err(|e| err(&p, e))?;
        Ok(Some(adcat_store::Physical { file, path: p }))
    }

    fn create_virtual(&self, path: &str, dtype: DType, shape: &[u64], sources: &[adcat_store::VirtualSource]) -> Result<()> {
        virtual_ds::create(self, path, dtype, shape, sources)
    }

    fn virtual_sources(&self, path: &str) -> Result<Vec<adcat_store::VirtualSource>> {
        let p = checked_path(path)?;
        virtual_ds::sources(&self.dataset(&p)?.dcpl().map_err(|e| err(&p, e))?, &p, &self.path)
    }

    fn is_record(&self, path: &str) -> Result<bool> {
        let p = checked_path(path)?;
        let ds = self.dataset(&p)?;
        let td = ds.dtype().and_then(|t| t.to_descriptor()).map_err(|e| err(&p, e))?;
        Ok(matches!(td, TypeDescriptor::Compound(_)) && dtype_of(&p, &td).is_err())
    }

    fn read_record(&self, path: &str) -> Result<Vec<(String, ArrayData)>> {
        let p = checked_path(path)?;
        let ds = self.data_dataset(&p)?;
        let n = self.records_in(&ds, &p)?;
        let infos = self.record_fields(&p)?;
        infos.iter().enumerate().map(|(i, f)| Ok((f.name.clone(), fields::read_field(&ds, &p, f, i, 0, n)?))).collect()
    }

    fn is_fixed_ascii(&self, path: &str) -> Result<bool> {
        let p = checked_path(path)?;
        let ds = self.dataset(&p)?;
        Ok(matches!(ds.dtype().and_then(|t| t.to_descriptor()), Ok(TypeDescriptor::FixedAscii(_))))
    }

    fn record_len(&self, path: &str) -> Result<u64> {
        let p = checked_path(path)?;
        let ds = self.dataset(&p)?;
        self.records_in(&ds, &p)
    }

    fn record_fields(&self, path: &str) -> Result<Vec<adcat_store::RecordField>> {
        let p = checked_path(path)?;
        let ds = self.dataset(&p)?;
        match ds.dtype().and_then(|t| t.to_descriptor()).map_err(|e| err(&p, e))? {
            TypeDescriptor::Compound(ct) => fields::fields_of(&p, &ct),
            other => Err(StoreError::UnsupportedDType { path: p, found: format!("{other} is not a record type") }),
        }
    }

    fn read_field(&self, path: &str, field: &str, start: u64, end: u64) -> Result<ArrayData> {
        let p = checked_path(path)?;
        let ds = self.data_dataset(&p)?;
        let n = self.records_in(&ds, &p)?;
        if start > end || end > n {
            return Err(StoreError::OutOfBounds { path: p, reason: format!("rows {start}..{end} of a record array of {n}") });
        }
        let infos = self.record_fields(&p)?;
        let (i, f) = infos.iter().enumerate().find(|(_, f)| f.name == field).ok_or_else(|| StoreError::NotFound { path: format!("{p} (field {field})") })?;
        fields::read_field(&ds, &p, f, i, start, end - start)
    }

    fn create_record(&self, path: &str, fields: &[(String, ArrayData)], _compression: &Compression) -> Result<()> {
        let p = checked_path(path)?;
        self.check_writable(&p)?;
        if self.kind_of(&p)?.is_some() {
            return Err(StoreError::Exists { path: p });
        }
        record::write(&self.file()?, &p, fields)
    }

    fn flush(&self) -> Result<()> {
        if self.writable {
            self.file()?.flush().map_err(|e| err("/", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_datasets_map_other_files_rows_by_relative_or_absolute_name() {
        use adcat_store::{SourceName, VirtualSource};
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("in");
        std::fs::create_dir(&sub).unwrap();
        let mut sources = vec![];
        for (i, rows) in [(0u64, 3u64), (1, 2)] {
            let path = sub.join(format!("in{i}.h5"));
            let s = Hdf5Store::create(&path).unwrap();
            s.create_array("a", &ArraySpec::new(DType::F32, vec![rows, 2])).unwrap();
            let v: Vec<f32> = (0..rows * 2).map(|x| (i * 100 + x) as f32).collect();
            s.write("a", &[0, 0], &ArrayData::from_shape_vec(&[rows, 2], v).unwrap()).unwrap();
            s.flush().unwrap();
            drop(s);
            let at = if i == 0 { 0 } else { 3 };
            let file = std::fs::canonicalize(&path).unwrap().to_string_lossy().into_owned();
            sources.push(VirtualSource { file, name: if i == 0 { SourceName::Beside } else { SourceName::Absolute }, path: "a".into(), shape: vec![rows, 2], rows, at, present: true });
        }
        let out = dir.path().join("v.h5");
        let v = Hdf5Store::create(&out).unwrap();
        v.create_virtual("x", DType::F32, &[5, 2], &sources).unwrap();
        v.flush().unwrap();
        drop(v);
        let plain = Hdf5Store::open(&out).unwrap();
        let found = plain.virtual_sources("x").unwrap();
        assert_eq!(found.iter().map(|s| s.file.clone()).collect::<Vec<_>>(), vec!["in/in0.h5".to_owned(), sources[1].file.clone()]);
        assert!(found.iter().all(|s| s.present));
        assert_eq!(plain.array_meta("x").unwrap().shape, vec![5, 2]);
        let want = vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 100.0, 101.0, 102.0, 103.0];
        // Sources inside the file's directory are read without consent.
        assert_eq!(plain.read_all("x").unwrap().to_f64_vec().unwrap(), want);
        // The same mapping from another directory needs it.
        let elsewhere = tempfile::tempdir().unwrap();
        let far = elsewhere.path().join("v.h5");
        let abs: Vec<VirtualSource> = sources.iter().map(|s| VirtualSource { name: SourceName::Absolute, ..s.clone() }).collect();
        let v = Hdf5Store::create(&far).unwrap();
        v.create_virtual("x", DType::F32, &[5, 2], &abs).unwrap();
        // A chain: a virtual dataset over a virtual dataset beside it.
        let chain = VirtualSource { file: std::fs::canonicalize(&out).unwrap().to_string_lossy().into_owned(), name: SourceName::Absolute, path: "x".into(), shape: vec![5, 2], rows: 5, at: 0, present: true };
        drop(v);
        let near = dir.path().join("chain.h5");
        let v = Hdf5Store::create(&near).unwrap();
        v.create_virtual("x", DType::F32, &[5, 2], &[chain]).unwrap();
        drop(v);
        let refused = |p: &Path| Hdf5Store::open(p).unwrap().read_all("x").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused(&far).contains("outside the directory of the file you named"), "{}", refused(&far));
        assert!(refused(&near).contains("not a plain dataset"), "{}", refused(&near));
        // A symbolic link beside the file to a file elsewhere is elsewhere.
        #[cfg(unix)]
        {
            std::fs::rename(sub.join("in1.h5"), elsewhere.path().join("in1.h5")).unwrap();
            std::os::unix::fs::symlink(elsewhere.path().join("in1.h5"), sub.join("in1.h5")).unwrap();
            assert!(refused(&out).contains("outside the directory"), "{}", refused(&out));
        }
        let follow = Hdf5Store::open_with(&far, Hdf5Options { follow_external_links: true }).unwrap();
        assert_eq!(follow.read_all("x").unwrap().to_f64_vec().unwrap(), want);
        std::fs::remove_file(sub.join("in1.h5")).unwrap();
        assert_eq!(plain.virtual_sources("x").unwrap().iter().map(|s| s.present).collect::<Vec<_>>(), vec![true, false]);
        // A missing source would read as zeros: refused even when following.
        let follow = Hdf5Store::open_with(&out, Hdf5Options { follow_external_links: true }).unwrap();
        assert!(follow.read_all("x").unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn io_errors_are_tidied() {
        let m = "H5Dwrite(): can't write data: file write failed: time = Fri Dec  4 19:11:30 2026 , filename = '/tmp/x', file descriptor = 8, errno = 27, error message = 'File too large', buf = 0x5653, total write size = 43696";
        assert_eq!(super::tidy(m), "H5Dwrite(): can't write data: file write failed: File too large");
        assert_eq!(super::tidy("plain"), "plain");
    }

    /// Reads of gzip 1-d datasets over several chunks take the direct path (stored chunks
    /// inflated in parallel): every window, at and across chunk edges, reads what was
    /// written; a chunk never written reads as the fill value.
    #[test]
    fn gzip_windows_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.h5");
        let n = 1000u64;
        let ints: Vec<i32> = (0..n as i32).map(|i| i * 7 - 300).collect();
        let floats: Vec<f64> = (0..n).map(|i| i as f64 / 3.0).collect();
        {
            let s = Hdf5Store::create(&path).unwrap();
            for (name, dtype) in [("i", DType::I32), ("f", DType::F64), ("holes", DType::I32)] {
                let spec = ArraySpec::new(dtype, vec![n]).chunks(vec![37]).compression(Compression::Gzip(4));
                s.create_array(name, &spec).unwrap();
            }
            s.write("i", &[0], &ArrayData::from_vec(ints.clone())).unwrap();
            s.write("f", &[0], &ArrayData::from_vec(floats.clone())).unwrap();
            // Chunks 2 and 3 only (elements 74..148); the rest is never written.
            s.write("holes", &[74], &ArrayData::from_vec(ints[74..148].to_vec())).unwrap();
            s.flush().unwrap();
        }
        let s = Hdf5Store::open(&path).unwrap();
        for (start, len) in [(0, n), (0, 37), (0, 38), (36, 2), (37, 74), (100, 500), (999, 1), (5, 990), (963, 37)] {
            let want = ArrayData::from_vec(ints[start as usize..(start + len) as usize].to_vec());
            assert_eq!(s.read("i", &[start], &[len]).unwrap(), want, "i {start}+{len}");
            let want = ArrayData::from_vec(floats[start as usize..(start + len) as usize].to_vec());
            assert_eq!(s.read("f", &[start], &[len]).unwrap(), want, "f {start}+{len}");
        }
        let holes = s.read("holes", &[0], &[n]).unwrap();
        let want: Vec<i32> = (0..n as usize).map(|i| if (74..148).contains(&i) { ints[i] } else { 0 }).collect();
        assert_eq!(holes, ArrayData::from_vec(want));
    }

    #[test]
    fn conformance_kit() {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str| -> Box<dyn Store> { Box::new(Hdf5Store::create(dir.path().join(format!("{name}.h5"))).unwrap()) };
        adcat_store::testkit::run_all(&make);
    }

    #[test]
    fn missing_and_garbage_files_are_open_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(Hdf5Store::open(dir.path().join("nope.h5ad")), Err(StoreError::Open { .. })));
        let junk = dir.path().join("junk.h5ad");
        std::fs::write(&junk, b"not hdf5 at all").unwrap();
        let e = Hdf5Store::open(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.h5ad"), "{e}");
    }

    /// More inputs than the pool keeps open: every store still reads correctly after its
    /// file was closed while idle, and at most MAX_OPEN files stay open.
    #[test]
    fn many_read_only_stores_share_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let n = pool::MAX_OPEN + 8;
        for i in 0..n {
            let s = Hdf5Store::create(dir.path().join(format!("{i}.h5"))).unwrap();
            s.create_array("v", &ArraySpec::new(DType::I64, vec![1])).unwrap();
            s.write_rows("v", 0, &ArrayData::from_vec(vec![i as i64])).unwrap();
        }
        let stores: Vec<Hdf5Store> = (0..n).map(|i| Hdf5Store::open(dir.path().join(format!("{i}.h5"))).unwrap()).collect();
        for round in 0..2 {
            for (i, s) in stores.iter().enumerate() {
                assert_eq!(s.read_all("v").unwrap(), ArrayData::from_vec(vec![i as i64]), "store {i}, round {round}");
            }
        }
        let open = stores.iter().filter(|s| s.slot.lock().unwrap().is_some()).count();
        assert!(open <= pool::MAX_OPEN, "{open} files open");
        // A lower limit (as the CLI sets from its budget) holds as files are reopened.
        set_open_file_limit(4);
        for round in 0..2 {
            for (i, s) in stores.iter().enumerate() {
                assert_eq!(s.read_all("v").unwrap(), ArrayData::from_vec(vec![i as i64]), "store {i}, limit 4, round {round}");
            }
        }
        let open = stores.iter().filter(|s| s.slot.lock().unwrap().is_some()).count();
        set_open_file_limit(pool::MAX_OPEN);
        assert!(open <= 4, "{open} files open under a limit of 4");
    }

    #[test]
    fn read_only_store_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.h5");
        Hdf5Store::create(&path).unwrap().create_group("g").unwrap();
        let s = Hdf5Store::open(&path).unwrap();
        assert!(matches!(s.create_group("h"), Err(StoreError::ReadOnly { .. })));
    }
}
