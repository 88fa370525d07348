//! Record (compound) arrays: rec-arrays as h5py writes them (numeric fields native, string
//! fields variable-length UTF-8), read and written through raw buffers.

use crate::{descriptor_for, dtype_of, err, is_bool_enum};
use adcat_store::{ArrayData, DType, Result, StoreError};
use hdf5::types::{CompoundField, CompoundType, TypeDescriptor};
use std::ffi::{c_char, CStr, CString};

/// Memory layout for one field.
struct Slot {
    name: String,
    dtype: DType,
    offset: usize,
}

fn layout(path: &str, names: &[(String, DType)]) -> Result<(CompoundType, Vec<Slot>)> {
    let mut fields = vec![];
    let mut slots = vec![];
    let mut offset = 0;
    for (index, (name, dtype)) in names.iter().enumerate() {
        if dtype.is_complex() {
            return Err(StoreError::UnsupportedDType { path: path.to_owned(), found: format!("complex field {name} in a record") });
        }
        let ty = descriptor_for(*dtype);
        let size = ty.size();
        fields.push(CompoundField { name: name.clone(), ty, offset, index });
        slots.push(Slot { name: name.clone(), dtype: *dtype, offset });
        offset += size;
    }
    Ok((CompoundType { fields, size: offset }, slots))
}

/// Field names and adcat types of a compound dataset type.
pub(crate) fn fields_of(path: &str, ct: &CompoundType) -> Result<Vec<(String, DType)>> {
    let mut f: Vec<&CompoundField> = ct.fields.iter().collect();
    f.sort_by_key(|x| x.index);
    f.iter()
        .map(|x| {
            let d = match &x.ty {
                TypeDescriptor::Enum(e) if is_bool_enum(e) => DType::Bool,
                TypeDescriptor::FixedAscii(_) | TypeDescriptor::FixedUnicode(_) => {
                    return Err(StoreError::UnsupportedDType { path: path.to_owned(), found: format!("fixed-length string field {}", x.name) });
                }
                t => dtype_of(path, t)?,
            };
            Ok((x.name.clone(), d))
        })
        .collect()
}

pub(crate) fn read(ds: &hdf5::Dataset, path: &str, ct: &CompoundType) -> Result<Vec<(String, ArrayData)>> {
    let shape = ds.shape();
    if shape.len() != 1 {
        return Err(StoreError::UnsupportedDType { path: path.to_owned(), found: format!("record array of rank {}", shape.len()) });
    }
    let n = shape[0];
    let (mem, slots) = layout(path, &fields_of(path, ct)?)?;
    let dt = hdf5::Datatype::from_descriptor(&TypeDescriptor::Compound(mem.clone())).map_err(|e| err(path, e))?;
    let size = mem.size;
    let mut buf = vec![0u8; size * n.max(1)];
    // SAFETY: the buffer holds n records of the memory type; vlen strings are reclaimed below.
    unsafe {
        use hdf5_sys::{h5d, h5p, h5s};
        if n > 0 && h5d::H5Dread(ds.id(), dt.id(), h5s::H5S_ALL, h5s::H5S_ALL, h5p::H5P_DEFAULT, buf.as_mut_ptr().cast()) < 0 {
            return Err(err(path, "cannot read record array"));
        }
    }
    let mut out = vec![];
    for slot in &slots {
        let at = |i: usize| i * size + slot.offset;
        let data = if slot.dtype == DType::String {
            let v: Vec<String> = (0..n).map(|i| {
                let mut p = [0u8; 8];
                p.copy_from_slice(&buf[at(i)..at(i) + 8]);
                let ptr = usize::from_ne_bytes(p) as *const c_char;
                if ptr.is_null() {
                    String::new()
                } else {
                    // SAFETY: HDF5 wrote a NUL-terminated string pointer here.
                    unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
                }
            }).collect();
            ArrayData::from_vec(v)
        } else {
            ArrayData::gather_native(slot.dtype, &buf, n, size, slot.offset).ok_or_else(|| err(path, "record buffer too short"))?
        };
        out.push((slot.name.clone(), data));
    }
    if slots.iter().any(|s| s.dtype == DType::String) && n > 0 {
        // SAFETY: frees the strings HDF5 allocated into `buf` for this type and space.
        unsafe {
            let space = hdf5_sys::h5d::H5Dget_space(ds.id());
            hdf5_sys::h5d::H5Dvlen_reclaim(dt.id(), space, hdf5_sys::h5p::H5P_DEFAULT, buf.as_mut_ptr().cast());
            hdf5_sys::h5s::H5Sclose(space);
        }
    }
    Ok(out)
}

pub(crate) fn write(file: &hdf5::File, path: &str, fields: &[(String, ArrayData)]) -> Result<()> {
    let n = fields.first().map_or(0, |(_, a)| a.len());
    if fields.iter().any(|(_, a)| a.len() != n || a.shape().len() != 1) {
        return Err(err(path, "record fields must be 1-d and of equal length"));
    }
    let names: Vec<(String, DType)> = fields.iter().map(|(k, a)| (k.clone(), a.dtype())).collect();
    let (ct, slots) = layout(path, &names)?;
    let size = ct.size;
    let desc = TypeDescriptor::Compound(ct);
    // Packed, like numpy records (h5py stores rec-arrays without alignment padding).
    let ds = file.new_dataset_builder().packed(true).empty_as(&desc).shape(n).create(path).map_err(|e| err(path, e))?;
    let dt = hdf5::Datatype::from_descriptor(&desc).map_err(|e| err(path, e))?;
    let mut buf = vec![0u8; size * n.max(1)];
    let mut keep: Vec<CString> = vec![];
    for ((_, data), slot) in fields.iter().zip(&slots) {
        let at = |i: usize| i * size + slot.offset;
        if !data.scatter_native(&mut buf, size, slot.offset) {
            // scatter_native declines only strings.
            let ArrayData::String(s) = data else { unreachable!("non-string record field") };
            for (i, v) in s.iter().enumerate() {
                let c = CString::new(v.as_str()).map_err(|_| err(path, "string with an embedded NUL"))?;
                buf[at(i)..at(i) + 8].copy_from_slice(&(c.as_ptr() as usize).to_ne_bytes());
                keep.push(c);
            }
        }
    }
    // SAFETY: buf holds n records of `dt`, string pointers stay alive in `keep`.
    unsafe {
        use hdf5_sys::{h5d, h5p, h5s};
        if n > 0 && h5d::H5Dwrite(ds.id(), dt.id(), h5s::H5S_ALL, h5s::H5S_ALL, h5p::H5P_DEFAULT, buf.as_ptr().cast()) < 0 {
            return Err(err(path, "cannot write record array"));
        }
    }
    drop(keep);
    Ok(())
}
