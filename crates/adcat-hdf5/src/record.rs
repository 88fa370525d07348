//! Writing record (compound) arrays as h5py writes rec-arrays: numeric fields native,
//! string fields variable-length UTF-8, packed. Reading is in `fields`.

use crate::{descriptor_for, err};
use adcat_store::{ArrayData, DType, Result, StoreError};
use hdf5::types::{CompoundField, CompoundType, TypeDescriptor};
use std::ffi::CString;

/// Memory layout for one field: its byte offset in a record.
struct Slot {
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
        slots.push(Slot { offset });
        offset += size;
    }
    Ok((CompoundType { fields, size: offset }, slots))
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
