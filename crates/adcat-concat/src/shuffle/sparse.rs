//! Shuffling a sparse matrix whose rows, columns or both are cells.
//!
//! When the stored major axis is cells (CSR X, any obsp), its rows are scattered and
//! gathered as dense rows are; a row's record is its minor indices (as u64) followed by
//! its values' native bytes. When only the minor axis is cells (CSC X), no row moves:
//! each stored column's indices are renumbered and re-sorted, in one streaming pass.

use super::buckets::{by_row, Buckets};
use super::Ctx;
use crate::{ConcatError, Result};
use adcat_format::layout::Purpose;
use adcat_format::sparse::{CsMatrix, SparseFormat, SparseMeta};
use adcat_format::stream::Appender;
use adcat_store::{join_path, ArrayData, DType};

/// Output arrays of a sparse element, written in order.
struct Parts {
    data: Appender,
    indices: Appender,
    indptr: Appender,
    indices_dtype: DType,
    indptr_dtype: DType,
    /// Entries written so far (the next indptr value).
    at: i64,
}

impl Parts {
    fn create(ctx: &Ctx<'_>, dp: &str, m: &SparseMeta, n_major: u64) -> Result<Parts> {
        let mk = |name: &str, dtype: DType, len: u64| Appender::create(ctx.dst, &join_path(dp, name), dtype, &[len], Purpose::SparsePart, ctx.opts);
        let mut p = Parts {
            data: mk("data", m.data_dtype, m.nnz)?,
            indices: mk("indices", m.indices_dtype, m.nnz)?,
            indptr: mk("indptr", m.indptr_dtype, n_major + 1)?,
            indices_dtype: m.indices_dtype,
            indptr_dtype: m.indptr_dtype,
            at: 0,
        };
        p.push_indptr(ctx, vec![0])?;
        Ok(p)
    }

    fn push_indptr(&mut self, ctx: &Ctx<'_>, v: Vec<i64>) -> Result<()> {
        let a = cast(ArrayData::from_vec(v), self.indptr_dtype)?;
        Ok(self.indptr.push(ctx.dst, a)?)
    }

    /// Append rows given as their entry counts, indices and values' native bytes.
    fn push_rows(&mut self, ctx: &Ctx<'_>, counts: &[usize], indices: Vec<i64>, data: ArrayData) -> Result<()> {
        let ptr: Vec<i64> = counts
            .iter()
            .map(|&k| {
                self.at += k as i64;
                self.at
            })
            .collect();
        self.indices.push(ctx.dst, cast(ArrayData::from_vec(indices), self.indices_dtype)?)?;
        self.data.push(ctx.dst, data)?;
        self.push_indptr(ctx, ptr)
    }

    fn finish(self, ctx: &Ctx<'_>) -> Result<()> {
        self.data.finish(ctx.dst)?;
        self.indices.finish(ctx.dst)?;
        Ok(self.indptr.finish(ctx.dst)?)
    }
}

fn cast(a: ArrayData, to: DType) -> Result<ArrayData> {
    if a.dtype() == to {
        return Ok(a);
    }
    a.cast(to).ok_or_else(|| ConcatError::unsupported("", format!("shuffle: cannot store indices as {to}")))
}

/// Shuffle the sparse matrix at `sp` into `dp` (group created, attributes copied by the
/// caller); `square`: both axes are cells (obsp).
pub(crate) fn shuffle_sparse(ctx: &Ctx<'_>, sp: &str, dp: &str, square: bool) -> Result<()> {
    let m = SparseMeta::read(ctx.src, sp)?;
    let csr = m.format == SparseFormat::Csr;
    let (n_major, n_minor) = if csr { (m.shape[0], m.shape[1]) } else { (m.shape[1], m.shape[0]) };
    let (major_cells, minor_cells) = (square || csr, square || !csr);
    let n = ctx.perm.len();
    if (major_cells && n_major != n) || (minor_cells && n_minor != n) {
        return Err(ConcatError::unsupported(sp, format!("its shape {:?} does not match the {n} cells: cannot shuffle it", m.shape)));
    }
    let mut parts = Parts::create(ctx, dp, &m, n_major)?;
    if major_cells {
        scatter_gather(ctx, sp, &m, n_major, minor_cells, &mut parts)?;
    } else {
        renumber(ctx, sp, &m, n_major, &mut parts)?;
    }
    parts.finish(ctx)
}

fn value_size(m: &SparseMeta) -> usize {
    m.data_dtype.itemsize()
}

/// Major rows per read block, about 1/16 of the budget.
fn read_step(ctx: &Ctx<'_>, m: &SparseMeta, n_major: u64) -> u64 {
    let per_row = (m.nnz / n_major.max(1)).max(1) * (8 + value_size(m) as u64) + 8;
    (ctx.budget() / 16 / per_row).clamp(1, n_major.max(1))
}

/// A block's rows as `(indices, values' native bytes)` per row, indices renumbered and
/// each row re-sorted when `map` (the minor axis is cells).
fn block_rows(ctx: &Ctx<'_>, b: &CsMatrix, map: bool) -> Result<(Vec<i64>, Vec<i64>, Vec<u8>)> {
    let ip = b.indptr.to_i64_vec().unwrap_or_default();
    let mut ix = b.indices.to_i64_vec().ok_or_else(|| ConcatError::unsupported("", "sparse indices are not integers"))?;
    let vs = b.data.dtype().itemsize();
    let mut vals = vec![0u8; b.data.len() * vs];
    b.data.scatter_native(&mut vals, vs, 0);
    if map {
        for w in ip.windows(2) {
            let (lo, hi) = (w[0] as usize, w[1] as usize);
            let row: Vec<(i64, usize)> = ix[lo..hi].iter().enumerate().map(|(k, &j)| (ctx.perm.apply(j as u64) as i64, lo + k)).collect();
            let mut row = row;
            row.sort_unstable_by_key(|&(j, _)| j);
            let moved: Vec<u8> = row.iter().flat_map(|&(_, at)| vals[at * vs..(at + 1) * vs].to_vec()).collect();
            vals[lo * vs..hi * vs].copy_from_slice(&moved);
            for (k, (j, _)) in row.into_iter().enumerate() {
                ix[lo + k] = j;
            }
        }
    }
    Ok((ip, ix, vals))
}

/// Rows are cells: each row goes to its output block's bucket, blocks are gathered in
/// order.
fn scatter_gather(ctx: &Ctx<'_>, sp: &str, m: &SparseMeta, n: u64, map: bool, parts: &mut Parts) -> Result<()> {
    let vs = value_size(m);
    let row_bytes = (m.nnz / n.max(1)).max(1) * (8 + vs as u64) + 8;
    let mut buckets = Buckets::new(ctx.scratch, n, ctx.bucket_rows(row_bytes, parts.indptr.unit()), ctx.budget() / 4)?;
    let step = read_step(ctx, m, n);
    let mut rec = Vec::new();
    let mut s = 0;
    while s < n {
        let e = (s + step).min(n);
        let (ip, ix, vals) = block_rows(ctx, &CsMatrix::read_major(ctx.src, sp, m, s, e)?, map)?;
        for (r, w) in ip.windows(2).enumerate() {
            let (lo, hi) = (w[0] as usize, w[1] as usize);
            rec.clear();
            for &j in &ix[lo..hi] {
                rec.extend_from_slice(&(j as u64).to_le_bytes());
            }
            rec.extend_from_slice(&vals[lo * vs..hi * vs]);
            buckets.put(ctx.perm.apply(s + r as u64), &rec)?;
        }
        s = e;
    }
    buckets.seal()?;
    for b in 0..buckets.count() {
        let start = b as u64 * buckets.rows_per();
        let rows = buckets.rows_per().min(n - start) as usize;
        let data = buckets.take(b)?;
        let slots = by_row(&data, rows)?;
        let mut counts = Vec::with_capacity(rows);
        let (mut ix, mut vals) = (Vec::new(), Vec::new());
        for slot in slots {
            if slot.len() % (8 + vs) != 0 {
                return Err(ConcatError::unsupported(sp, "shuffle scratch: a row of the wrong size"));
            }
            let k = slot.len() / (8 + vs);
            counts.push(k);
            ix.extend(slot[..k * 8].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()) as i64));
            vals.extend_from_slice(&slot[k * 8..]);
        }
        let data = values(sp, m, &vals)?;
        ctx.progress.advance(data.len() as u64 * (8 + vs as u64));
        parts.push_rows(ctx, &counts, ix, data)?;
    }
    Ok(())
}

fn values(sp: &str, m: &SparseMeta, bytes: &[u8]) -> Result<ArrayData> {
    let vs = value_size(m);
    ArrayData::gather_native(m.data_dtype, bytes, bytes.len() / vs.max(1), vs, 0).ok_or_else(|| ConcatError::unsupported(sp, "sparse values that are not numbers cannot be shuffled"))
}

/// Only the minor axis is cells (CSC X): stream the stored columns, renumbering and
/// re-sorting each one's row indices.
fn renumber(ctx: &Ctx<'_>, sp: &str, m: &SparseMeta, n_major: u64, parts: &mut Parts) -> Result<()> {
    let step = read_step(ctx, m, n_major);
    let mut s = 0;
    while s < n_major {
        let e = (s + step).min(n_major);
        let (ip, ix, vals) = block_rows(ctx, &CsMatrix::read_major(ctx.src, sp, m, s, e)?, true)?;
        let counts: Vec<usize> = ip.windows(2).map(|w| (w[1] - w[0]) as usize).collect();
        let data = values(sp, m, &vals)?;
        ctx.progress.advance(data.len() as u64 * (8 + value_size(m) as u64));
        parts.push_rows(ctx, &counts, ix, data)?;
        s = e;
    }
    Ok(())
}
