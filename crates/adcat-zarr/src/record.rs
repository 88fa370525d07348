//! Packing and unpacking numpy structured records (packed, little-endian, strings as
//! zero-padded UTF-32 or bytes), the layout zarr-python stores rec-arrays in.

use crate::meta::FieldKind;
use adcat_store::{ArrayData, Result, StoreError};

/// Field kinds, record count and the packed bytes.
pub(crate) type Packed = (Vec<(String, FieldKind)>, usize, Vec<u8>);

pub(crate) fn unpack(raw: &[u8], n: usize, fields: &[(String, FieldKind)]) -> Vec<(String, ArrayData)> {
    let itemsize: usize = fields.iter().map(|(_, k)| k.size()).sum();
    let mut offset = 0;
    let mut out = vec![];
    for (name, kind) in fields {
        let at = |i: usize| i * itemsize + offset;
        let data = match *kind {
            FieldKind::Num(d) => ArrayData::gather_native(d, raw, n, itemsize, offset).unwrap_or_else(|| ArrayData::zeros(d, &[0])),
            FieldKind::Utf32(c) => {
                let v: Vec<String> = (0..n)
                    .map(|i| {
                        let b = raw.get(at(i)..at(i) + 4 * c).unwrap_or(&[]);
                        b.chunks(4)
                            .map(|q| u32::from_le_bytes([q[0], q[1], q[2], q[3]]))
                            .take_while(|&u| u != 0)
                            .filter_map(char::from_u32)
                            .collect()
                    })
                    .collect();
                ArrayData::from_vec(v)
            }
            FieldKind::Bytes(c) => {
                let v: Vec<String> = (0..n)
                    .map(|i| {
                        let b = raw.get(at(i)..at(i) + c).unwrap_or(&[]);
                        let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
                        String::from_utf8_lossy(&b[..end]).into_owned()
                    })
                    .collect();
                ArrayData::from_vec(v)
            }
        };
        offset += kind.size();
        out.push((name.clone(), data));
    }
    out
}

/// Field kinds (strings sized to the longest value), record count and packed bytes.
pub(crate) fn pack(path: &str, fields: &[(String, ArrayData)]) -> Result<Packed> {
    let n = fields.first().map_or(0, |(_, a)| a.len());
    for (name, a) in fields {
        // zarr-python cannot store them either (anndata's zarr writer refuses them).
        adcat_store::StoreKind::ZarrV3.check_record_field(path, name, a.shape().get(1..).unwrap_or(&[]))?;
    }
    if fields.iter().any(|(_, a)| a.len() != n || a.shape().len() != 1) {
        return Err(StoreError::backend(path, "record fields must be 1-d and of equal length"));
    }
    let kinds: Vec<(String, FieldKind)> = fields
        .iter()
        .map(|(name, a)| {
            let k = match a {
                ArrayData::String(s) => FieldKind::Utf32(s.iter().map(|x| x.chars().count()).max().unwrap_or(0).max(1)),
                other => FieldKind::Num(other.dtype()),
            };
            (name.clone(), k)
        })
        .collect();
    let itemsize: usize = kinds.iter().map(|(_, k)| k.size()).sum();
    let mut raw = vec![0u8; itemsize * n];
    let mut offset = 0;
    for ((_, data), (_, kind)) in fields.iter().zip(&kinds) {
        let at = |i: usize| i * itemsize + offset;
        if !data.scatter_native(&mut raw, itemsize, offset) {
            // scatter_native declines only strings.
            let ArrayData::String(s) = data else { unreachable!("non-string record field") };
            for (i, v) in s.iter().enumerate() {
                for (j, ch) in v.chars().enumerate() {
                    let o = at(i) + 4 * j;
                    raw[o..o + 4].copy_from_slice(&(ch as u32).to_le_bytes());
                }
            }
        }
        offset += kind.size();
    }
    Ok((kinds, n, raw))
}
