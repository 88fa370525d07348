//! Shuffling the rows of a dense array (numbers or strings, any number of dimensions):
//! scatter in input order, gather per output block (see [`super::buckets`]).

use super::buckets::{by_row, Buckets};
use super::Ctx;
use crate::{ConcatError, Result};
use adcat_format::layout::Purpose;
use adcat_format::stream::Appender;
use adcat_store::{ArrayData, DType};

/// Shuffle the rows of the array at `sp` into a new array at `dp`; with `columns`, the
/// columns too (a square obs x obs array).
pub(crate) fn shuffle_array(ctx: &Ctx<'_>, sp: &str, dp: &str, columns: bool) -> Result<()> {
    let meta = ctx.src.array_meta(sp)?;
    let n = meta.shape.first().copied().unwrap_or(0);
    if n != ctx.perm.len() {
        return Err(ConcatError::unsupported(sp, format!("has {n} rows, not one per cell ({}): cannot shuffle it", ctx.perm.len())));
    }
    if meta.dtype == DType::String && meta.shape.len() != 1 {
        return Err(ConcatError::unsupported(sp, "a string array of more than one dimension cannot be shuffled yet"));
    }
    if columns && meta.shape.get(1) != Some(&n) {
        return Err(ConcatError::unsupported(sp, "is not square (cells x cells): cannot shuffle its columns"));
    }
    let width: u64 = meta.shape.iter().skip(1).product::<u64>();
    if n == 0 || width == 0 {
        // No values to move.
        adcat_format::copy::copy_element_to(ctx.src, sp, ctx.dst, dp, ctx.opts)?;
        return Ok(());
    }
    let item = if meta.dtype == DType::String { 0 } else { meta.dtype.itemsize() };
    let row_bytes = if item == 0 { 32 } else { width * item as u64 };
    let mut out = Appender::create(ctx.dst, dp, meta.dtype, &meta.shape, Purpose::Cells, ctx.opts)?;
    let mut buckets = Buckets::new(ctx.scratch, n, ctx.bucket_rows(row_bytes, out.unit()), ctx.budget() / 4)?;
    scatter(ctx, sp, &mut buckets, n, row_bytes, item)?;
    let colmap: Vec<usize> = if columns { (0..n).map(|j| ctx.perm.apply(j) as usize).collect() } else { vec![] };
    for b in 0..buckets.count() {
        let start = b as u64 * buckets.rows_per();
        let rows = buckets.rows_per().min(n - start) as usize;
        let data = buckets.take(b)?;
        let slots = by_row(&data, rows)?;
        let block = if item == 0 { strings(sp, &slots)? } else { numbers(sp, &slots, &meta.shape, meta.dtype, item, &colmap)? };
        out.push(ctx.dst, block)?;
        ctx.progress.advance(rows as u64 * row_bytes);
    }
    out.finish(ctx.dst)?;
    Ok(())
}

/// Read the array in blocks of rows, in order, and send each row to its bucket.
fn scatter(ctx: &Ctx<'_>, sp: &str, buckets: &mut Buckets, n: u64, row_bytes: u64, item: usize) -> Result<()> {
    let step = (ctx.budget() / 16 / row_bytes.max(1)).clamp(1, n.max(1));
    let mut start = 0;
    let mut bytes = Vec::new();
    while start < n {
        let end = (start + step).min(n);
        let block = ctx.src.read_rows(sp, start, end)?;
        if item == 0 {
            let s = block.as_strings().ok_or_else(|| ConcatError::unsupported(sp, "string array read as numbers"))?;
            for (i, v) in s.iter().enumerate() {
                buckets.put(ctx.perm.apply(start + i as u64), v.as_bytes())?;
            }
        } else {
            bytes.clear();
            bytes.resize(block.len() * item, 0);
            block.scatter_native(&mut bytes, item, 0);
            for (i, row) in bytes.chunks_exact(row_bytes as usize).enumerate() {
                buckets.put(ctx.perm.apply(start + i as u64), row)?;
            }
        }
        start = end;
    }
    buckets.seal()
}

fn strings(sp: &str, slots: &[&[u8]]) -> Result<ArrayData> {
    let v: Result<Vec<String>> = slots
        .iter()
        .map(|b| String::from_utf8(b.to_vec()).map_err(|_| ConcatError::unsupported(sp, "shuffle scratch: a string is not UTF-8")))
        .collect();
    Ok(ArrayData::from_vec(v?))
}

/// Rows in order as one block; `colmap` (when not empty) moves column `j` to `colmap[j]`.
fn numbers(sp: &str, slots: &[&[u8]], shape: &[u64], dtype: DType, item: usize, colmap: &[usize]) -> Result<ArrayData> {
    let width = shape.iter().skip(1).product::<u64>() as usize;
    let row_bytes = width * item;
    let mut buf = vec![0u8; slots.len() * row_bytes];
    for (dst, src) in buf.chunks_exact_mut(row_bytes).zip(slots) {
        if src.len() != row_bytes {
            return Err(ConcatError::unsupported(sp, "shuffle scratch: rows of the wrong size"));
        }
        if colmap.is_empty() {
            dst.copy_from_slice(src);
        } else {
            for (j, v) in src.chunks_exact(item).enumerate() {
                let to = colmap[j] * item;
                dst[to..to + item].copy_from_slice(v);
            }
        }
    }
    let mut block_shape = shape.to_vec();
    block_shape[0] = slots.len() as u64;
    ArrayData::gather_native(dtype, &buf, slots.len() * width, item, 0)
        .and_then(|a| a.reshape(&block_shape))
        .ok_or_else(|| ConcatError::unsupported(sp, "shuffle scratch: rows of the wrong size"))
}
