//! Whole-chunk writes and reads with deflate run on all cores.
//!
//! libhdf5 runs its filters on the calling thread, under the global lock every HDF5 call
//! takes, so a gzip output is compressed, and a gzip input inflated, on one core however
//! many there are. Writes that cover whole chunks (what the format layer's `Appender`
//! produces) skip the filter pipeline instead: adcat deflates the chunks in parallel
//! (rayon; zlib format, exactly what the deflate filter stores) and hands libhdf5 the
//! finished bytes with `H5Dwrite_chunk`. Files read back identically with any HDF5
//! reader. Reads of 1-d gzip datasets spanning several chunks (the values and indices
//! of sparse matrices in gzip-compressed h5ad files) fetch the stored chunks with
//! `H5Dread_chunk` and inflate them in parallel straight into the result.

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

/// A chunk as stored: its filter mask and bytes.
struct RawChunk {
    mask: u32,
    bytes: Vec<u8>,
}

/// Read elements `start..start + n` of the 1-d dataset `ds` (chunks of `chunk`
/// elements, deflate its only filter) by reading the stored chunks and inflating them
/// on all cores — libhdf5 would inflate them one by one on the calling thread.
/// `None` when the read is not for this path: a different filter pipeline, a file type
/// not laid out as `T` in memory, a single chunk, or a chunk never written.
pub(crate) fn read_1d<T: hdf5::H5Type + Copy + Default + Send + Sync>(ds: &hdf5::Dataset, path: &str, start: u64, n: u64, chunk: u64) -> Result<Option<Vec<T>>> {
    if chunk == 0 || n == 0 || deflate_level(ds).is_none() || start / chunk == (start + n - 1) / chunk {
        return Ok(None);
    }
    let same_layout = ds.dtype().ok().zip(hdf5::Datatype::from_type::<T>().ok()).is_some_and(|(file, mem)| file == mem);
    if !same_layout {
        return Ok(None);
    }
    let (k0, k1) = (start / chunk, (start + n - 1) / chunk);
    let mut raw = Vec::with_capacity((k1 - k0 + 1) as usize);
    for k in k0..=k1 {
        match read_chunk(ds.id(), path, k * chunk)? {
            Some(c) => raw.push(c),
            None => return Ok(None),
        }
    }
    let mut out = vec![T::default(); n as usize];
    // Cut the output at chunk boundaries: segment i holds chunk k0 + i from `skip`.
    let mut segments = Vec::with_capacity(raw.len());
    let mut rest: &mut [T] = &mut out;
    for k in k0..=k1 {
        let (lo, hi) = ((k * chunk).max(start), ((k + 1) * chunk).min(start + n));
        let (seg, tail) = rest.split_at_mut((hi - lo) as usize);
        segments.push((seg, (lo - k * chunk) as usize));
        rest = tail;
    }
    segments.into_par_iter().zip(raw).try_for_each(|((seg, skip), c)| decode_into(&c, chunk as usize, skip, seg, path))?;
    Ok(Some(out))
}

/// The stored bytes of the chunk at element `offset`; `None` if it was never written
/// (it reads as the fill value, which libhdf5 supplies).
fn read_chunk(ds_id: hid_t, path: &str, offset: u64) -> Result<Option<RawChunk>> {
    let off = [offset];
    let (mut mask, mut addr, mut size) = (0u32, 0u64, 0u64);
    // SAFETY: `off` has one entry (the dataset is 1-d); the out-pointers are live locals.
    let st = hdf5::sync::sync(|| unsafe { hdf5_sys::h5d::H5Dget_chunk_info_by_coord(ds_id, off.as_ptr(), &mut mask, &mut addr, &mut size) });
    if st < 0 {
        return Err(StoreError::Backend { path: path.to_owned(), message: format!("cannot locate the chunk at element {offset}") });
    }
    if addr == hdf5_sys::h5::HADDR_UNDEF {
        return Ok(None);
    }
    let mut bytes = vec![0u8; size as usize];
    // SAFETY: `bytes` holds the chunk's stored size, as libhdf5 just reported it.
    let st = hdf5::sync::sync(|| unsafe { h5_read_chunk(ds_id, &off, &mut mask, &mut bytes) });
    if st < 0 {
        return Err(StoreError::Backend { path: path.to_owned(), message: format!("cannot read the chunk at element {offset}") });
    }
    Ok(Some(RawChunk { mask, bytes }))
}

/// `H5Dread_chunk` of the stored chunk at `off` into `bytes`, whose length is its size.
///
/// # Safety
/// `ds_id` is an open chunked dataset and `off` has one entry per dimension.
unsafe fn h5_read_chunk(ds_id: hid_t, off: &[u64], mask: &mut u32, bytes: &mut [u8]) -> hdf5_sys::h5::herr_t {
    // HDF5 2.0 added the buffer's size (in and out); 1.x trusts the buffer to be large enough.
    #[cfg(hdf5_2)]
    {
        let mut len = bytes.len();
        unsafe { hdf5_sys::h5d::H5Dread_chunk(ds_id, hdf5_sys::h5p::H5P_DEFAULT, off.as_ptr(), mask, bytes.as_mut_ptr().cast(), &mut len) }
    }
    #[cfg(not(hdf5_2))]
    unsafe {
        hdf5_sys::h5d::H5Dread_chunk(ds_id, hdf5_sys::h5p::H5P_DEFAULT, off.as_ptr(), mask, bytes.as_mut_ptr().cast())
    }
}

/// Decode chunk `c` (of `chunk` elements) and copy its elements from `skip` into `seg`.
fn decode_into<T: Copy + Default>(c: &RawChunk, chunk: usize, skip: usize, seg: &mut [T], path: &str) -> Result<()> {
    let whole = skip == 0 && seg.len() == chunk;
    let mut tmp = Vec::new();
    let dst: &mut [T] = if whole {
        &mut *seg
    } else {
        tmp = vec![T::default(); chunk];
        &mut tmp
    };
    // SAFETY: `T` is a plain numeric type (checked equal to the file type, which has no
    // padding), so any byte pattern is a valid value; the view covers exactly `dst`.
    let bytes = unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(dst)) };
    let bad = |why: String| StoreError::Backend { path: path.to_owned(), message: format!("corrupt chunk: {why}") };
    if c.mask & 1 != 0 {
        // The optional deflate filter was skipped for this chunk: stored as is.
        if c.bytes.len() != bytes.len() {
            return Err(bad(format!("{} bytes stored unfiltered, expected {}", c.bytes.len(), bytes.len())));
        }
        bytes.copy_from_slice(&c.bytes);
    } else {
        let mut z = flate2::Decompress::new(true);
        let status = z.decompress(&c.bytes, bytes, flate2::FlushDecompress::Finish).map_err(|e| bad(e.to_string()))?;
        if status != flate2::Status::StreamEnd || z.total_out() != bytes.len() as u64 {
            return Err(bad(format!("inflates to {} bytes, expected {}", z.total_out(), bytes.len())));
        }
    }
    if !whole {
        seg.copy_from_slice(&tmp[skip..skip + seg.len()]);
    }
    Ok(())
}
