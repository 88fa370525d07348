//! Path resolution that stays inside the file.
//!
//! HDF5 links may point into other files (external links), and datasets may take their
//! data from other files (virtual datasets, external raw storage). Following them
//! silently would copy data the user never named into the output, so by default they are
//! refused with the link and its target; `Hdf5Options::follow_external_links` allows them.
//! (Virtual datasets over plain arrays of files beside the file are read: see
//! [`crate::virtual_ds`].)
//!
//! Paths are resolved one component at a time from the parent group's handle, so looking
//! up a node at depth `d` costs `O(d)` link lookups (resolving each prefix from the root
//! would cost `O(d²)`, which made deeply nested `uns` dicts take minutes).

use adcat_store::{NodeKind, Result, StoreError};
use hdf5::LocationType;
use hdf5_sys::h5l::H5L_type_t;
use std::ffi::{CStr, CString};

/// A resolved node.
pub(crate) enum Node {
    Group(hdf5::Group),
    Dataset(hdf5::Dataset),
}

impl Node {
    pub(crate) fn kind(&self) -> NodeKind {
        match self {
            Node::Group(_) => NodeKind::Group,
            Node::Dataset(_) => NodeKind::Array,
        }
    }
}

/// The kind of the link `name` in group `g`, or `None` when there is no such link.
fn link_type(g: &hdf5::Group, name: &str) -> Option<H5L_type_t> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a NUL-terminated string and `info` a valid out-parameter; the
    // group id is alive for the call. H5Lget_info2 replaced H5Lget_info in 1.12.
    #[cfg(hdf5_1_12)]
    let (status, info) = {
        // A plain C struct (no Default): all-zero is a valid value.
        let mut info: hdf5_sys::h5l::H5L_info2_t = unsafe { std::mem::zeroed() };
        (hdf5::sync::sync(|| unsafe { hdf5_sys::h5l::H5Lget_info2(g.id(), c.as_ptr(), &mut info, hdf5_sys::h5p::H5P_DEFAULT) }), info.type_)
    };
    #[cfg(not(hdf5_1_12))]
    let (status, info) = {
        let mut info = hdf5_sys::h5l::H5L_info1_t::default();
        (hdf5::sync::sync(|| unsafe { hdf5_sys::h5l::H5Lget_info1(g.id(), c.as_ptr(), &mut info, hdf5_sys::h5p::H5P_DEFAULT) }), info.type_)
    };
    (status >= 0).then_some(info)
}

/// `file:object` an external link points at, for messages.
fn external_target(g: &hdf5::Group, name: &str) -> String {
    let Ok(c) = CString::new(name) else { return "another file".into() };
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is writable for its length; H5Lunpack_elink_val returns pointers
    // into `buf`, read before `buf` is dropped.
    unsafe {
        let ok = hdf5::sync::sync(|| hdf5_sys::h5l::H5Lget_val(g.id(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len(), hdf5_sys::h5p::H5P_DEFAULT));
        if ok < 0 {
            return "another file".into();
        }
        let (mut flags, mut file, mut obj) = (0u32, std::ptr::null(), std::ptr::null());
        let ok = hdf5::sync::sync(|| hdf5_sys::h5l::H5Lunpack_elink_val(buf.as_ptr().cast(), buf.len(), &mut flags, &mut file, &mut obj));
        if ok < 0 || file.is_null() || obj.is_null() {
            return "another file".into();
        }
        format!("{}:{}", CStr::from_ptr(file).to_string_lossy(), CStr::from_ptr(obj).to_string_lossy())
    }
}

fn refused_link(path: &str, target: &str) -> StoreError {
    StoreError::ExternalData {
        path: path.to_owned(),
        what: format!("an HDF5 external link to {target}"),
    }
}

/// Refuse reading a dataset whose data lives in other files (virtual or external
/// storage).
pub(crate) fn check_dataset(ds: &hdf5::Dataset, path: &str) -> Result<()> {
    let dcpl = ds.dcpl().map_err(|e| crate::err(path, e))?;
    if let Some(first) = dcpl.external().first() {
        return Err(StoreError::ExternalData { path: path.to_owned(), what: format!("a dataset whose data is stored in the external file {}", first.name) });
    }
    if dcpl.layout() == hdf5::plist::dataset_create::Layout::Virtual {
        let target = virtual_source(dcpl.id()).unwrap_or_else(|| "other datasets".to_owned());
        return Err(StoreError::ExternalData { path: path.to_owned(), what: format!("a virtual dataset mapping data from {target}") });
    }
    Ok(())
}

/// `file:dataset` of the first source of a virtual dataset's creation property list.
fn virtual_source(dcpl: hdf5_sys::h5i::hid_t) -> Option<String> {
    let read = |f: unsafe extern "C" fn(hdf5_sys::h5i::hid_t, usize, *mut std::ffi::c_char, usize) -> isize| -> Option<String> {
        let mut buf = vec![0u8; 4096];
        // SAFETY: `buf` is writable for its length; libhdf5 writes at most that many
        // bytes including the terminating NUL.
        let n = hdf5::sync::sync(|| unsafe { f(dcpl, 0, buf.as_mut_ptr().cast(), buf.len()) });
        (n > 0).then(|| String::from_utf8_lossy(&buf[..(n as usize).min(buf.len() - 1)]).into_owned())
    };
    let file = read(hdf5_sys::h5p::H5Pget_virtual_filename)?;
    let dset = read(hdf5_sys::h5p::H5Pget_virtual_dsetname).unwrap_or_default();
    Some(format!("{file}:{dset}"))
}

/// Resolve the normalised relative path `p` from group `start` (at `base`), one link
/// at a time.
pub(crate) fn resolve(start: hdf5::Group, base: &str, p: &str, follow_external: bool) -> Result<Option<Node>> {
    if p.is_empty() {
        return Ok(Some(Node::Group(start)));
    }
    let mut g = start;
    let mut here = base.to_owned();
    let mut parts = p.split('/').peekable();
    while let Some(part) = parts.next() {
        // Built by appending: joining normalised paths would cost O(depth) per step.
        if !here.is_empty() {
            here.push('/');
        }
        here.push_str(part);
        match link_type(&g, part) {
            None => return Ok(None),
            Some(H5L_type_t::H5L_TYPE_HARD) | Some(H5L_type_t::H5L_TYPE_SOFT) => {}
            Some(H5L_type_t::H5L_TYPE_EXTERNAL) if follow_external => {}
            Some(H5L_type_t::H5L_TYPE_EXTERNAL) => return Err(refused_link(&here, &external_target(&g, part))),
            Some(_) => return Err(StoreError::ExternalData { path: here, what: "a user-defined HDF5 link adcat cannot follow".into() }),
        }
        let ty = match g.loc_type_by_name(part) {
            Ok(t) => t,
            // A dangling soft or external link: nothing there.
            Err(_) => return Ok(None),
        };
        match ty {
            LocationType::Group => g = g.group(part).map_err(|e| crate::err(&here, e))?,
            LocationType::Dataset if parts.peek().is_none() => {
                // Its metadata is the file's own; reading its values is what
                // `check_dataset` guards (at each read).
                let ds = g.dataset(part).map_err(|e| crate::err(&here, e))?;
                return Ok(Some(Node::Dataset(ds)));
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(Node::Group(g)))
}
