//! HDF5 virtual datasets: arrays whose rows are other files' datasets, mapped rather
//! than copied (`adcat concat --virtual`).
//!
//! A source file is recorded as given or relative to the directory of the file holding
//! the virtual dataset; libhdf5 looks for relative names there (after
//! `HDF5_VDS_PREFIX`), so a directory of inputs and their virtual concatenation can
//! move together.
//!
//! Reading a virtual dataset's values reads other files. They are read without
//! `--follow-external-links` only when every source is a plain dataset (itself neither
//! virtual nor external) of a file inside the virtual file's own directory tree, after
//! resolving symbolic links: the layout `adcat concat --virtual` writes beside its
//! inputs, and nothing a crafted file could use to pull in data from elsewhere. A source
//! file libhdf5 cannot find is refused even with the flag: libhdf5 would read zeros.

use crate::{descriptor_for, err, Hdf5Store};
use adcat_store::{checked_path, DType, Result, SourceName, StoreError, VirtualSource};
use hdf5::{Extent, Hyperslab, Selection, SimpleExtents, SliceOrIndex};
use std::path::{Component, Path, PathBuf};

/// `target` (absolute) relative to the directory `base` (absolute): `..` up to their
/// common ancestor, then down.
fn relative_to(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<Component<'_>> = target.components().collect();
    let b: Vec<Component<'_>> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Rows `start..start + rows` of an array of `shape`, every trailing index.
fn rows_of(shape: &[u64], start: u64, rows: u64) -> Selection {
    let mut s: Vec<SliceOrIndex> = vec![SliceOrIndex::from(start as usize..(start + rows) as usize)];
    s.extend(shape.iter().skip(1).map(|&d| SliceOrIndex::from(0..d as usize)));
    Selection::from(Hyperslab::from(s))
}

fn extents(shape: &[u64]) -> SimpleExtents {
    SimpleExtents::new(shape.iter().map(|&d| Extent::fixed(d as usize)).collect::<Vec<_>>())
}

/// The name a virtual dataset in the file `vds_file` records for `source`.
fn recorded_name(vds_file: &Path, source: &VirtualSource) -> String {
    let file = Path::new(&source.file);
    let dir = std::fs::canonicalize(vds_file).ok().and_then(|f| f.parent().map(Path::to_path_buf));
    let Some(dir) = dir.filter(|_| file.is_absolute()) else {
        return source.file.clone();
    };
    match source.name {
        SourceName::Absolute => source.file.clone(),
        SourceName::Beside if !file.starts_with(&dir) => source.file.clone(),
        SourceName::Beside | SourceName::Relative => relative_to(file, &dir).to_string_lossy().into_owned(),
    }
}

/// Create the virtual dataset `path` of `store` (see [`adcat_store::Store::create_virtual`]).
pub(crate) fn create(store: &Hdf5Store, path: &str, dtype: DType, shape: &[u64], sources: &[VirtualSource]) -> Result<()> {
    let p = checked_path(path)?;
    store.check_writable(&p)?;
    if store.kind_of(&p)?.is_some() {
        return Err(StoreError::Exists { path: p });
    }
    if shape.is_empty() || dtype == DType::String {
        return Err(err(&p, "virtual datasets of scalars or strings are not written"));
    }
    let file = store.file()?;
    let mut b = file.new_dataset_builder().empty_as(descriptor_for(dtype)).shape(extents(shape));
    for s in sources {
        if s.shape.len() != shape.len() || s.shape[1..] != shape[1..] || s.rows > s.shape[0] || s.at + s.rows > shape[0] {
            return Err(err(&p, format!("{}:{} of shape {:?} does not fit rows {}..{} of {shape:?}", s.file, s.path, s.shape, s.at, s.at + s.rows)));
        }
        if s.rows == 0 {
            continue;
        }
        let name = recorded_name(&store.path, s);
        b = b.virtual_map(name, &s.path, extents(&s.shape), rows_of(&s.shape, 0, s.rows), extents(shape), rows_of(shape, s.at, s.rows));
    }
    b.create(p.as_str()).map_err(|e| err(&p, e))?;
    Ok(())
}

/// A string property of mapping `i` of the creation property list `dcpl`.
fn mapping_name(dcpl: hdf5_sys::h5i::hid_t, i: usize, f: unsafe extern "C" fn(hdf5_sys::h5i::hid_t, usize, *mut std::ffi::c_char, usize) -> isize) -> Option<String> {
    // SAFETY: a null buffer asks for the length; the second call writes at most
    // `buf.len()` bytes including the terminating NUL.
    let n = hdf5::sync::sync(|| unsafe { f(dcpl, i, std::ptr::null_mut(), 0) });
    if n < 0 {
        return None;
    }
    let mut buf = vec![0u8; n as usize + 1];
    let m = hdf5::sync::sync(|| unsafe { f(dcpl, i, buf.as_mut_ptr().cast(), buf.len()) });
    (m >= 0).then(|| String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

/// The dimensions of the source dataspace of mapping `i`.
fn mapping_shape(dcpl: hdf5_sys::h5i::hid_t, i: usize) -> Vec<u64> {
    hdf5::sync::sync(|| {
        // SAFETY: the dataspace id returned is closed below; `dims` holds its rank.
        unsafe {
            let space = hdf5_sys::h5p::H5Pget_virtual_srcspace(dcpl, i);
            if space < 0 {
                return vec![];
            }
            let rank = hdf5_sys::h5s::H5Sget_simple_extent_ndims(space).max(0) as usize;
            let mut dims: Vec<u64> = vec![0; rank];
            hdf5_sys::h5s::H5Sget_simple_extent_dims(space, dims.as_mut_ptr(), std::ptr::null_mut());
            hdf5_sys::h5s::H5Sclose(space);
            dims
        }
    })
}

/// The most mappings of one virtual dataset adcat lists (`adcat concat --virtual` writes
/// one per input): bounds what adcat builds from them (libhdf5 itself holds every
/// mapping, about 6 KB each, once it has opened the dataset).
const MAX_MAPPINGS: usize = 100_000;

/// The sources of the dataset at `p` of the file `file` (its creation properties
/// `dcpl`), as recorded (empty unless it is virtual), each marked present when the
/// named file exists where libhdf5 looks (see [`locate`]).
pub(crate) fn sources(dcpl: &hdf5::plist::DatasetCreate, p: &str, file: &Path) -> Result<Vec<VirtualSource>> {
    if dcpl.layout() != hdf5::plist::dataset_create::Layout::Virtual {
        return Ok(vec![]);
    }
    let id = dcpl.id();
    let mut count: usize = 0;
    // SAFETY: `count` is a valid out-pointer.
    if hdf5::sync::sync(|| unsafe { hdf5_sys::h5p::H5Pget_virtual_count(id, &mut count) }) < 0 {
        return Err(err(p, "cannot read the virtual dataset's mappings"));
    }
    if count > MAX_MAPPINGS {
        return Err(err(p, format!("is a virtual dataset of {count} mappings; adcat reads at most {MAX_MAPPINGS}")));
    }
    let mut out = vec![];
    for i in 0..count {
        let name = mapping_name(id, i, hdf5_sys::h5p::H5Pget_virtual_filename).unwrap_or_default();
        let path = mapping_name(id, i, hdf5_sys::h5p::H5Pget_virtual_dsetname).unwrap_or_default();
        let shape = mapping_shape(id, i);
        let present = locate(&name, file).is_some();
        out.push(VirtualSource { file: name, name: SourceName::Absolute, path, rows: shape.first().copied().unwrap_or(0), shape, at: 0, present });
    }
    Ok(out)
}

/// The file libhdf5 opens for the source file `name` of a virtual dataset in `file`, if
/// it finds one. H5Pset_virtual's search: `.` is `file` itself; an absolute name as it
/// is, or when missing its last component; that tried in each directory of
/// `HDF5_VDS_PREFIX` (`${ORIGIN}` standing for `file`'s directory), then in `file`'s
/// directory, then in the working directory.
pub(crate) fn locate(name: &str, file: &Path) -> Option<PathBuf> {
    if name == "." {
        return Some(file.to_path_buf());
    }
    let named = Path::new(name);
    if named.is_absolute() && named.is_file() {
        return Some(named.to_path_buf());
    }
    let rel = if named.is_absolute() { Path::new(named.file_name()?) } else { named };
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let origin = dir.to_string_lossy();
    let prefixes = std::env::var("HDF5_VDS_PREFIX").unwrap_or_default();
    let from_env = prefixes.split(':').filter(|p| !p.is_empty()).map(|p| PathBuf::from(p.replace("${ORIGIN}", &origin)));
    from_env.chain([dir.to_path_buf(), PathBuf::new()]).map(|d| d.join(rel)).find(|p| p.is_file())
}

/// Why the values of one source (`name`:`dataset`) of a virtual dataset in `file` are
/// not read without consent, or `None` when they are (see the module documentation).
fn foreign(name: &str, dataset: &str, file: &Path) -> Option<String> {
    let source = format!("{name}:{dataset}");
    // `%b`/`%%` make a mapping a pattern over many files or datasets.
    if name.contains('%') || dataset.contains('%') {
        return Some(format!("a virtual dataset mapping data from the file pattern {source}"));
    }
    // Anything not established as inside is outside (a file gone since it was listed,
    // a directory that cannot be resolved).
    let dir = std::fs::canonicalize(file).ok().and_then(|f| f.parent().map(Path::to_path_buf));
    let located = locate(name, file).and_then(|l| std::fs::canonicalize(l).ok());
    let inside = matches!((&located, &dir), (Some(l), Some(d)) if l.starts_with(d));
    if !inside {
        return Some(format!("a virtual dataset mapping data from {source}, outside the directory of the file you named"));
    }
    let plain = located.and_then(|f| plain_dataset(&f, dataset));
    match plain {
        Some(true) => None,
        _ => Some(format!("a virtual dataset mapping data from {source}, which is not a plain dataset there (virtual, external or linked elsewhere)")),
    }
}

/// Whether `dataset` of the HDF5 file `file` is reached by links inside the file and
/// holds its values itself (`None` when the file cannot be opened).
fn plain_dataset(file: &Path, dataset: &str) -> Option<bool> {
    let Ok(path) = checked_path(dataset.trim_start_matches('/')) else { return Some(false) };
    let f = hdf5::sync::sync(|| hdf5::File::open(file)).ok()?;
    let root = f.as_group().ok()?;
    Some(match crate::links::resolve(root, "", &path, false) {
        Ok(Some(crate::links::Node::Dataset(ds))) => crate::links::check_dataset(&ds, &path).is_ok(),
        _ => false,
    })
}

/// Refuse reading the values of the virtual dataset at `p` of `file` (creation
/// properties `dcpl`) when a source file is missing (libhdf5 would read zeros) or,
/// unless `follow`, when a source is not one read without consent (see the module
/// documentation).
pub(crate) fn check_values(dcpl: &hdf5::plist::DatasetCreate, p: &str, file: &Path, follow: bool) -> Result<()> {
    for s in sources(dcpl, p, file)? {
        if !s.present {
            return Err(err(p, format!("is a virtual dataset mapping data from {}:{}, a file that is missing (libhdf5 would read zeros in its place)", s.file, s.path)));
        }
        if follow {
            continue;
        }
        if let Some(what) = foreign(&s.file, &s.path, file) {
            return Err(StoreError::ExternalData { path: p.to_owned(), what });
        }
    }
    Ok(())
}
