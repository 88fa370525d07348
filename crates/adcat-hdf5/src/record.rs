//! Writing record (compound) arrays as h5py writes rec-arrays: numeric fields native,
//! string fields variable-length UTF-8, packed; nested records as nested compounds and
//! sub-array fields as array members. Reading is in `fields`.

use crate::{descriptor_for, err};
use adcat_store::{ArrayData, DType, Result, StoreError, FIELD_PATH_SEP};
use hdf5::types::{CompoundField, CompoundType, TypeDescriptor};
use std::ffi::CString;

/// One leaf field: its name path (nested records), type and values per record.
struct Leaf {
    path: Vec<String>,
    dtype: DType,
    dims: Vec<u64>,
}

fn leaf_type(path: &str, l: &Leaf) -> Result<TypeDescriptor> {
    if l.dtype.is_complex() {
        return Err(StoreError::UnsupportedDType { path: path.to_owned(), found: format!("complex field {} in a record", l.path.join(".")) });
    }
    if l.dtype == DType::String && !l.dims.is_empty() {
        return Err(StoreError::UnsupportedDType { path: path.to_owned(), found: format!("string sub-array field {}", l.path.join(".")) });
    }
    // Innermost dimension last: wrap from the inside out.
    Ok(l.dims.iter().rev().fold(descriptor_for(l.dtype), |t, &n| TypeDescriptor::FixedArray(Box::new(t), n as usize)))
}

/// The packed compound type of `leaves` (consecutive leaves sharing a first name form a
/// nested compound) and each leaf's byte offset in a record, from `base`.
fn layout(path: &str, leaves: &[Leaf], base: usize, depth: usize) -> Result<(CompoundType, Vec<usize>)> {
    let (mut fields, mut offsets, mut off, mut i) = (vec![], vec![], 0, 0);
    while i < leaves.len() {
        let head = leaves[i].path[depth].clone();
        let ty = if leaves[i].path.len() == depth + 1 {
            offsets.push(base + off);
            i += 1;
            leaf_type(path, &leaves[i - 1])?
        } else {
            let j = (i..leaves.len()).find(|&j| leaves[j].path.len() == depth + 1 || leaves[j].path[depth] != head).unwrap_or(leaves.len());
            let (ct, o) = layout(path, &leaves[i..j], base + off, depth + 1)?;
            offsets.extend(o);
            i = j;
            TypeDescriptor::Compound(ct)
        };
        let size = ty.size();
        fields.push(CompoundField { name: head, ty, offset: off, index: fields.len() });
        off += size;
    }
    Ok((CompoundType { fields, size: off }, offsets))
}

pub(crate) fn write(file: &hdf5::File, path: &str, fields: &[(String, ArrayData)]) -> Result<()> {
    let n = fields.first().map_or(0, |(_, a)| a.shape().first().copied().unwrap_or(0));
    if fields.iter().any(|(_, a)| a.shape().first().copied().unwrap_or(0) != n || a.shape().is_empty()) {
        return Err(err(path, "record fields must have one value (or sub-array) per record"));
    }
    let leaves: Vec<Leaf> = fields
        .iter()
        .map(|(k, a)| Leaf { path: k.split(FIELD_PATH_SEP).map(str::to_owned).collect(), dtype: a.dtype(), dims: a.shape()[1..].to_vec() })
        .collect();
    let (ct, slots) = layout(path, &leaves, 0, 0)?;
    let n = n as usize;
    let size = ct.size;
    let desc = TypeDescriptor::Compound(ct);
    // Packed, like numpy records (h5py stores rec-arrays without alignment padding).
    let ds = file.new_dataset_builder().packed(true).empty_as(&desc).shape(n).create(path).map_err(|e| err(path, e))?;
    let dt = hdf5::Datatype::from_descriptor(&desc).map_err(|e| err(path, e))?;
    let mut buf = vec![0u8; size * n.max(1)];
    let mut keep: Vec<CString> = vec![];
    for (((_, data), &slot), leaf) in fields.iter().zip(&slots).zip(&leaves) {
        let at = |i: usize| i * size + slot;
        let per = leaf.dims.iter().product::<u64>() as usize;
        if !data.scatter_native_records(&mut buf, size, slot, per) {
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
