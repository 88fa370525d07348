//! Reading single fields of compound datasets, in row ranges.
//!
//! Files of anndata < 0.7 store obs/var/obsm/varm as compound datasets (one field per
//! column, sub-array fields for obsm entries such as `X_pca`), and scanpy's
//! `rank_genes_groups` as compound datasets of fixed-length byte strings. libhdf5 converts
//! between compound types by member name, so a memory type holding only the wanted member
//! reads that field alone; rows are selected with a hyperslab, so memory stays bounded by
//! the rows asked for.

use crate::{dtype_of, err, is_bool_enum};
use adcat_store::{ArrayData, DType, RecordField, Result, StoreError, FIELD_PATH_SEP};
use hdf5::types::{CompoundType, TypeDescriptor};
use hdf5_sys::h5i::hid_t;
use hdf5_sys::h5t;
use std::ffi::{CStr, CString};

/// The fields of a compound type, in stored order; members of nested compounds are
/// listed leaf by leaf, their names joined with [`FIELD_PATH_SEP`].
pub(crate) fn fields_of(path: &str, ct: &CompoundType) -> Result<Vec<RecordField>> {
    let mut out = vec![];
    collect(path, ct, "", 0, &mut out)?;
    Ok(out)
}

fn collect(path: &str, ct: &CompoundType, prefix: &str, depth: usize, out: &mut Vec<RecordField>) -> Result<()> {
    if depth > 32 {
        return Err(StoreError::UnsupportedDType { path: path.to_owned(), found: "compound type nested deeper than 32 levels".into() });
    }
    let mut f: Vec<_> = ct.fields.iter().collect();
    f.sort_by_key(|x| x.index);
    for x in f {
        if x.name.contains(FIELD_PATH_SEP) {
            return Err(StoreError::UnsupportedDType { path: path.to_owned(), found: "record field name with a NUL".into() });
        }
        let name = format!("{prefix}{}", x.name);
        match &x.ty {
            TypeDescriptor::Compound(inner) if dtype_of(path, &x.ty).is_err() => collect(path, inner, &format!("{name}{FIELD_PATH_SEP}"), depth + 1, out)?,
            TypeDescriptor::FixedArray(inner, n) => out.push(RecordField { name, dtype: scalar_dtype(path, inner)?, shape: vec![*n as u64] }),
            t => out.push(RecordField { name, dtype: scalar_dtype(path, t)?, shape: vec![] }),
        }
    }
    Ok(())
}

fn scalar_dtype(path: &str, t: &TypeDescriptor) -> Result<DType> {
    match t {
        TypeDescriptor::Enum(e) if is_bool_enum(e) => Ok(DType::Bool),
        TypeDescriptor::Compound(_) if dtype_of(path, t).is_err() => {
            Err(StoreError::UnsupportedDType { path: path.to_owned(), found: "compound type inside an array field".into() })
        }
        t => dtype_of(path, t),
    }
}

/// Closes an HDF5 id on drop.
struct Id(hid_t, unsafe extern "C" fn(hid_t) -> hdf5_sys::h5::herr_t);
impl Drop for Id {
    fn drop(&mut self) {
        if self.0 >= 0 {
            // SAFETY: the id was returned by libhdf5 and is closed once.
            hdf5::sync::sync(|| unsafe { (self.1)(self.0) });
        }
    }
}

fn check(id: hid_t, path: &str, what: &str) -> Result<hid_t> {
    if id < 0 {
        Err(err(path, format!("cannot {what}")))
    } else {
        Ok(id)
    }
}

/// Rows `start..start+n` of field `field` (index `idx` in the file type `ftype`).
pub(crate) fn read_field(ds: &hdf5::Dataset, path: &str, info: &RecordField, idx: usize, start: u64, n: u64) -> Result<ArrayData> {
    let ftype = ds.dtype().map_err(|e| err(path, e))?;
    hdf5::sync::sync(|| read_locked(ds.id(), ftype.id(), path, info, idx, start, n))
}

/// Called under the HDF5 lock with live dataset and type ids.
fn read_locked(ds: hid_t, ftype: hid_t, path: &str, info: &RecordField, idx: usize, start: u64, n: u64) -> Result<ArrayData> {
    // SAFETY: every id passed to libhdf5 below is live (the dataset and its type are held
    // by the caller; the others are created here and closed by `Id`); the buffers are
    // sized from the memory type for `n` records; vlen strings are reclaimed after use.
    unsafe { read_ids(ds, ftype, path, info, idx, start, n) }
}

/// # Safety
/// See `read_locked`.
unsafe fn read_ids(ds: hid_t, ftype: hid_t, path: &str, info: &RecordField, idx: usize, start: u64, n: u64) -> Result<ArrayData> {
    unsafe {
    use hdf5_sys::{h5d, h5p, h5s};
    let _ = idx;
    // Walk the member names down to the leaf (members of nested compounds).
    let names: Vec<&str> = info.name.split(FIELD_PATH_SEP).collect();
    let mut member = Id(check(h5t::H5Tcopy(ftype), path, "copy a type")?, h5t::H5Tclose);
    for part in &names {
        let c = CString::new(*part).map_err(|_| err(path, "field name with a NUL"))?;
        let i = h5t::H5Tget_member_index(member.0, c.as_ptr());
        if i < 0 {
            return Err(err(path, format!("no record field {}", adcat_store::field_display(&info.name))));
        }
        member = Id(check(h5t::H5Tget_member_type(member.0, i as u32), path, "read a field type")?, h5t::H5Tclose);
    }
    let is_string = info.dtype == DType::String;
    let vlen = is_string && h5t::H5Tis_variable_str(member.0) > 0;
    // Strings keep the file's own type (pad and character set unchanged, so no byte is
    // lost to a conversion); numbers use the native type adcat works with.
    let elem = if is_string {
        Id(check(h5t::H5Tcopy(member.0), path, "copy a string type")?, h5t::H5Tclose)
    } else {
        let native = hdf5::Datatype::from_descriptor(&crate::descriptor_for(info.dtype)).map_err(|e| err(path, e))?;
        Id(check(h5t::H5Tcopy(native.id()), path, "copy a type")?, h5t::H5Tclose)
    };
    let elem = match info.shape.as_slice() {
        [] => elem,
        dims => {
            let d: Vec<u64> = dims.to_vec();
            Id(check(h5t::H5Tarray_create2(elem.0, d.len() as u32, d.as_ptr()), path, "make an array type")?, h5t::H5Tclose)
        }
    };
    let size = h5t::H5Tget_size(elem.0);
    // A memory type holding only the leaf, wrapped in one compound per level.
    let mut mem = elem;
    for part in names.iter().rev() {
        let name = CString::new(*part).map_err(|_| err(path, "field name with a NUL"))?;
        let outer = Id(check(h5t::H5Tcreate(h5t::H5T_class_t::H5T_COMPOUND, size), path, "make a compound type")?, h5t::H5Tclose);
        check(h5t::H5Tinsert(outer.0, name.as_ptr(), 0, mem.0) as hid_t, path, "make a compound type")?;
        mem = outer;
    }
    let fspace = Id(check(h5d::H5Dget_space(ds), path, "read the dataspace")?, h5s::H5Sclose);
    let (s, c) = ([start], [n]);
    check(h5s::H5Sselect_hyperslab(fspace.0, h5s::H5S_seloper_t::H5S_SELECT_SET, s.as_ptr(), std::ptr::null(), c.as_ptr(), std::ptr::null()) as hid_t, path, "select rows")?;
    let mspace = Id(check(h5s::H5Screate_simple(1, c.as_ptr(), std::ptr::null()), path, "make a dataspace")?, h5s::H5Sclose);
    let mut buf = vec![0u8; size * n as usize];
    if n > 0 && h5d::H5Dread(ds, mem.0, mspace.0, fspace.0, h5p::H5P_DEFAULT, buf.as_mut_ptr().cast()) < 0 {
        return Err(err(path, format!("cannot read field {}", adcat_store::field_display(&info.name))));
    }
    let out = decode(&buf, n as usize, size, info, vlen);
    if vlen && n > 0 {
        // H5Treclaim replaced H5Dvlen_reclaim in 1.12 (gone when built without deprecated symbols).
        #[cfg(hdf5_1_12)]
        h5t::H5Treclaim(mem.0, mspace.0, h5p::H5P_DEFAULT, buf.as_mut_ptr().cast());
        #[cfg(not(hdf5_1_12))]
        h5d::H5Dvlen_reclaim(mem.0, mspace.0, h5p::H5P_DEFAULT, buf.as_mut_ptr().cast());
    }
    out.ok_or_else(|| err(path, format!("cannot decode field {}", adcat_store::field_display(&info.name))))
    }
}

/// Values of one field from `n` records of `size` bytes.
///
/// # Safety
/// For variable-length strings `buf` holds `n` valid C string pointers (or nulls).
unsafe fn decode(buf: &[u8], n: usize, size: usize, info: &RecordField, vlen: bool) -> Option<ArrayData> {
    unsafe {
    if info.dtype != DType::String {
        let per: usize = info.shape.iter().product::<u64>().max(1) as usize;
        let flat = ArrayData::gather_native(info.dtype, buf, n * per, info.dtype.itemsize(), 0)?;
        let mut shape = vec![n as u64];
        shape.extend(&info.shape);
        return flat.reshape(&shape);
    }
    let strings: Vec<String> = (0..n)
        .map(|i| {
            let b = &buf[i * size..(i + 1) * size];
            if vlen {
                let mut p = [0u8; 8];
                p.copy_from_slice(&b[..8]);
                let ptr = usize::from_ne_bytes(p) as *const std::ffi::c_char;
                if ptr.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(ptr).to_string_lossy().into_owned()
                }
            } else {
                // numpy drops trailing NULs of fixed-length strings.
                let end = b.iter().rposition(|&x| x != 0).map_or(0, |e| e + 1);
                String::from_utf8_lossy(&b[..end]).into_owned()
            }
        })
        .collect();
    Some(ArrayData::from_vec(strings))
    }
}
