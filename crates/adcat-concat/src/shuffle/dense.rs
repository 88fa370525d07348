//! Shuffling the rows of a dense array (numbers or strings, any number of dimensions):
//! scatter in input order, gather per output block (see [`super::buckets`]).

use super::buckets::Buckets;
use super::Ctx;
use crate::{ConcatError, Result};
use adcat_format::layout::Purpose;
use adcat_format::stream::Appender;
use adcat_store::{ArrayData, DType};

/// Shuffle the rows of the array at `p` into each dataset's `p`; with `square`, the
/// columns too (an obs x obs array: each dataset keeps the columns of its own cells).
pub(crate) fn shuffle_array(ctx: &Ctx<'_>, p: &str, square: bool) -> Result<()> {
    let meta = ctx.src.array_meta(p)?;
    let n = meta.shape.first().copied().unwrap_or(0);
    if n != ctx.perm.len() {
        return Err(ConcatError::unsupported(p, format!("has {n} rows, not one per cell ({}): cannot shuffle it", ctx.perm.len())));
    }
    if meta.dtype == DType::String && meta.shape.len() != 1 {
        return Err(ConcatError::unsupported(p, "a string array of more than one dimension cannot be shuffled yet"));
    }
    if square && meta.shape.get(1) != Some(&n) {
        return Err(ConcatError::unsupported(p, "is not square (cells x cells): cannot shuffle its columns"));
    }
    let width: u64 = meta.shape.iter().skip(1).product::<u64>();
    if n == 0 || width == 0 {
        // No values to move.
        for k in 0..ctx.split.count() {
            adcat_format::copy::copy_element_to(ctx.src, p, ctx.out(k), p, ctx.opts)?;
        }
        return Ok(());
    }
    let item = if meta.dtype == DType::String { 0 } else { meta.dtype.itemsize() };
    let row_bytes = if item == 0 { 32 } else { width * item as u64 };
    let shape_of = |k: usize| {
        let mut s = meta.shape.clone();
        s[0] = ctx.split.rows(k);
        if square {
            s[1] = s[0];
        }
        s
    };
    let unit = ctx.opts.spec(ctx.out(0).kind(), meta.dtype, &shape_of(0), Purpose::Cells);
    let unit = unit.shards.as_ref().or(unit.chunks.as_ref()).and_then(|c| c.first().copied()).unwrap_or(1);
    let mut buckets = Buckets::new(ctx.scratch, n, ctx.bucket_rows(row_bytes, unit), ctx.budget() / 4)?;
    scatter(ctx, p, &mut buckets, n, row_bytes, item)?;
    let colmap: Vec<u64> = if square { (0..n).map(|j| ctx.perm.apply(j)).collect() } else { vec![] };
    let mut out: Option<(usize, Appender)> = None;
    buckets.gather(n, &ctx.split, |k, part| {
        let cols = Cols { map: &colmap, start: ctx.split.start(k), width: ctx.split.rows(k) };
        let block = if item == 0 { strings(p, part)? } else { numbers(p, part, &shape_of(k), meta.dtype, item, &cols)? };
        if out.as_ref().is_none_or(|(at, _)| *at != k) {
            if let Some((at, a)) = out.take() {
                a.finish(ctx.out(at))?;
            }
            out = Some((k, Appender::create(ctx.out(k), p, meta.dtype, &shape_of(k), Purpose::Cells, ctx.opts)?));
        }
        if let Some((_, a)) = out.as_mut() {
            a.push(ctx.out(k), block)?;
        }
        ctx.progress.advance(part.len() as u64 * row_bytes);
        Ok(())
    })?;
    if let Some((at, a)) = out {
        a.finish(ctx.out(at))?;
    }
    Ok(())
}

/// Read the array in blocks of rows, in order, and send each row to its bucket.
fn scatter(ctx: &Ctx<'_>, p: &str, buckets: &mut Buckets, n: u64, row_bytes: u64, item: usize) -> Result<()> {
    let step = (ctx.block_bytes() / row_bytes.max(1)).clamp(1, n.max(1));
    let mut start = 0;
    let mut bytes = Vec::new();
    while start < n {
        let end = (start + step).min(n);
        let block = ctx.src.read_rows(p, start, end)?;
        if item == 0 {
            let s = block.as_strings().ok_or_else(|| ConcatError::unsupported(p, "string array read as numbers"))?;
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

fn strings(p: &str, slots: &[&[u8]]) -> Result<ArrayData> {
    let v: Result<Vec<String>> = slots
        .iter()
        .map(|b| String::from_utf8(b.to_vec()).map_err(|_| ConcatError::unsupported(p, "shuffle scratch: a string is not UTF-8")))
        .collect();
    Ok(ArrayData::from_vec(v?))
}

/// Where the columns of a square (cells x cells) array go: column `j` to
/// `map[j] - start` when that falls in `0..width` (the dataset's own cells); `map`
/// empty: columns stay.
struct Cols<'a> {
    map: &'a [u64],
    start: u64,
    width: u64,
}

/// Rows in order as one block of `shape`.
fn numbers(p: &str, slots: &[&[u8]], shape: &[u64], dtype: DType, item: usize, cols: &Cols<'_>) -> Result<ArrayData> {
    let out_row = shape.iter().skip(1).product::<u64>() as usize * item;
    let in_row = if cols.map.is_empty() { out_row } else { cols.map.len() * item };
    let mut buf = vec![0u8; slots.len() * out_row];
    for (dst, src) in buf.chunks_exact_mut(out_row.max(1)).zip(slots) {
        if src.len() != in_row {
            return Err(ConcatError::unsupported(p, "shuffle scratch: rows of the wrong size"));
        }
        if cols.map.is_empty() {
            dst.copy_from_slice(src);
            continue;
        }
        for (v, &to) in src.chunks_exact(item).zip(cols.map) {
            if (cols.start..cols.start + cols.width).contains(&to) {
                let at = (to - cols.start) as usize * item;
                dst[at..at + item].copy_from_slice(v);
            }
        }
    }
    let values = slots.len() * out_row / item.max(1);
    let mut block_shape = shape.to_vec();
    block_shape[0] = slots.len() as u64;
    ArrayData::gather_native(dtype, &buf, values, item, 0)
        .and_then(|a| a.reshape(&block_shape))
        .ok_or_else(|| ConcatError::unsupported(p, "shuffle scratch: rows of the wrong size"))
}
