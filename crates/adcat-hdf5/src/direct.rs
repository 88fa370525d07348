//! Whole-chunk writes compressed on all cores.
//!
//! libhdf5 runs its filters on the calling thread, under the global lock every HDF5 call
//! takes, so a gzip output is compressed on one core however many there are. Writes that
//! cover whole chunks (what the format layer's `Appender` produces) skip the filter
//! pipeline instead: adcat deflates the chunks in parallel (rayon; zlib format, exactly
//! what the deflate filter stores) and hands libhdf5 the finished bytes with
//! `H5Dwrite_chunk`. Files read back identically with any HDF5 reader.

use adcat_store::{Result, StoreError};
use hdf5_sys::h5i::hid_t;
use ndarray::{ArrayD, ArrayViewD, IxDyn, Slice};
use rayon::prelude::*;
use std::io::Write;

/// The deflate level when deflate is the dataset's only filter (else libhdf5 must run
/// the pipeline itself).
pub(crate) fn deflate_level(ds: &hdf5::Dataset) -> Option<u32> {
    match ds.filters().as_slice() {
        [hdf5::filters::Filter::Deflate(l)] => Some(u32::from(*l)),
        _ => None,
    }
}

/// Whether the box `start`+`shape` covers whole chunks of an array of `extent` (edge
/// chunks count as whole when the box reaches the end of the array).
pub(crate) fn covers_whole_chunks(start: &[u64], shape: &[u64], chunk: &[u64], extent: &[u64]) -> bool {
    start.len() == chunk.len()
        && start.iter().zip(shape).zip(chunk).zip(extent).all(|(((&s, &n), &c), &e)| c > 0 && s % c == 0 && ((s + n) % c == 0 || s + n == e))
}

/// Deflate the chunks of `a` (a box starting at `start`, chunk-aligned) in parallel and
/// write them with `H5Dwrite_chunk`.
pub(crate) fn write<T: Copy + Default + Send + Sync>(ds_id: hid_t, path: &str, a: ArrayViewD<'_, T>, start: &[u64], chunk: &[u64], level: u32) -> Result<()> {
    let shape: Vec<u64> = a.shape().iter().map(|&d| d as u64).collect();
    let grid: Vec<u64> = shape.iter().zip(chunk).map(|(&n, &c)| n.div_ceil(c)).collect();
    let n_chunks: u64 = grid.iter().product();
    let chunk_dims: Vec<usize> = chunk.iter().map(|&c| c as usize).collect();
    let encoded: Vec<(Vec<u64>, Vec<u8>)> = (0..n_chunks)
        .into_par_iter()
        .map(|k| {
            // Chunk coordinates of the k-th chunk in C order.
            let mut idx = vec![0u64; grid.len()];
            let mut rest = k;
            for d in (0..grid.len()).rev() {
                idx[d] = rest % grid[d];
                rest /= grid[d];
            }
            let lo: Vec<usize> = idx.iter().zip(chunk).map(|(&i, &c)| (i * c) as usize).collect();
            let part = a.slice_each_axis(|ax| {
                let d = ax.axis.index();
                Slice::from(lo[d]..(lo[d] + chunk_dims[d]).min(ax.len))
            });
            // Edge chunks are stored at full size: pad with zeros (the fill value).
            let padded;
            let elems: &[T] = match part.as_slice() {
                Some(s) if part.shape() == chunk_dims.as_slice() => s,
                _ => {
                    let mut full = ArrayD::<T>::default(IxDyn(&chunk_dims));
                    full.slice_each_axis_mut(|ax| Slice::from(0..part.len_of(ax.axis))).assign(&part);
                    padded = full;
                    padded.as_slice().unwrap_or(&[])
                }
            };
            // SAFETY: `T` is a plain numeric type (no padding, every byte initialised);
            // the byte view covers exactly the elements of `elems`.
            let bytes = unsafe { std::slice::from_raw_parts(elems.as_ptr().cast::<u8>(), std::mem::size_of_val(elems)) };
            let mut z = flate2::write::ZlibEncoder::new(Vec::with_capacity(bytes.len() / 2 + 64), flate2::Compression::new(level.min(9)));
            let out = z.write_all(bytes).and_then(|()| z.finish());
            let offset: Vec<u64> = lo.iter().zip(start).map(|(&l, &s)| s + l as u64).collect();
            out.map(|b| (offset, b)).map_err(|e| StoreError::Backend { path: path.to_owned(), message: format!("deflate: {e}") })
        })
        .collect::<Result<_>>()?;
    for (offset, bytes) in encoded {
        // SAFETY: `offset` has one entry per dimension of the dataset and `bytes` is a
        // live buffer of `bytes.len()` bytes; libhdf5 copies it before returning.
        let status = hdf5::sync::sync(|| unsafe {
            hdf5_sys::h5d::H5Dwrite_chunk(ds_id, hdf5_sys::h5p::H5P_DEFAULT, 0, offset.as_ptr(), bytes.len(), bytes.as_ptr().cast())
        });
        if status < 0 {
            return Err(StoreError::Backend { path: path.to_owned(), message: format!("H5Dwrite_chunk failed at {offset:?}") });
        }
    }
    Ok(())
}
