//! Shuffling a sparse matrix whose rows, columns or both are cells.
//!
//! When the stored major axis is cells (CSR X, any obsp), its rows are scattered and
//! gathered as dense rows are; a row's record is its minor indices (as u64) followed by
//! its values' native bytes. When only the minor axis is cells (CSC X), no row moves:
//! each stored column's indices are renumbered and re-sorted, in one streaming pass.

use super::buckets::Buckets;
use super::Ctx;
use crate::{ConcatError, Result};
use adcat_format::layout::Purpose;
use adcat_format::sparse::{CsMatrix, SparseFormat, SparseMeta};
use adcat_format::stream::Appender;
use adcat_format::layout::WriteOptions;
use adcat_store::{join_path, AttrValue, ArrayData, DType};

/// Output arrays of a sparse element, written in order.
struct Parts {
    data: Appender,
    indices: Appender,
    indptr: Appender,
    indices_dtype: DType,
    indptr_dtype: DType,
    /// Entries written so far (the next indptr value).
    at: i64,
    /// The dataset written.
    k: usize,
}

impl Parts {
    /// The arrays of dataset `k`'s element at `p`: `n_major` rows holding `nnz` entries.
    fn create(ctx: &Ctx<'_>, k: usize, p: &str, m: &SparseMeta, n_major: u64, nnz: u64) -> Result<Parts> {
        let store = ctx.out(k);
        // --obs-chunk: chunks of about that many rows' entries (as annbatch writes).
        let entries = ctx.opts.obs_chunk.map(|rows| (rows * nnz / n_major.max(1)).max(1));
        let mk = |name: &str, dtype: DType, len: u64| {
            let opts = match entries {
                Some(e) => WriteOptions { chunk_bytes: e * dtype.itemsize() as u64, ..ctx.opts.clone() },
                None => ctx.opts.clone(),
            };
            Appender::create(store, &join_path(p, name), dtype, &[len], Purpose::SparsePart, &opts)
        };
        let mut p = Parts {
            data: mk("data", m.data_dtype, nnz)?,
            indices: mk("indices", m.indices_dtype, nnz)?,
            indptr: mk("indptr", m.indptr_dtype, n_major + 1)?,
            indices_dtype: m.indices_dtype,
            indptr_dtype: m.indptr_dtype,
            at: 0,
            k,
        };
        p.push_indptr(ctx, vec![0])?;
        Ok(p)
    }

    fn push_indptr(&mut self, ctx: &Ctx<'_>, v: Vec<i64>) -> Result<()> {
        let a = cast(ArrayData::from_vec(v), self.indptr_dtype)?;
        Ok(self.indptr.push(ctx.out(self.k), a)?)
    }

    /// Append rows given as their entry counts, indices and values.
    fn push_rows(&mut self, ctx: &Ctx<'_>, counts: &[usize], indices: Vec<i64>, data: ArrayData) -> Result<()> {
        let ptr: Vec<i64> = counts
            .iter()
            .map(|&k| {
                self.at += k as i64;
                self.at
            })
            .collect();
        let store = ctx.out(self.k);
        self.indices.push(store, cast(ArrayData::from_vec(indices), self.indices_dtype)?)?;
        self.data.push(store, data)?;
        self.push_indptr(ctx, ptr)
    }

    fn finish(self, ctx: &Ctx<'_>) -> Result<()> {
        let store = ctx.out(self.k);
        self.data.finish(store)?;
        self.indices.finish(store)?;
        Ok(self.indptr.finish(store)?)
    }
}

fn cast(a: ArrayData, to: DType) -> Result<ArrayData> {
    if a.dtype() == to {
        return Ok(a);
    }
    a.cast(to).ok_or_else(|| ConcatError::unsupported("", format!("shuffle: cannot store indices as {to}")))
}

/// Shuffle the sparse matrix at `p` into each dataset's `p` (groups created and
/// attributes copied by the caller); `square`: both axes are cells (obsp: each dataset
/// keeps the entries between its own cells).
pub(crate) fn shuffle_sparse(ctx: &Ctx<'_>, p: &str, square: bool) -> Result<()> {
    let m = SparseMeta::read(ctx.src, p)?;
    let csr = m.format == SparseFormat::Csr;
    let (n_major, n_minor) = if csr { (m.shape[0], m.shape[1]) } else { (m.shape[1], m.shape[0]) };
    let (major_cells, minor_cells) = (square || csr, square || !csr);
    let n = ctx.perm.len();
    if (major_cells && n_major != n) || (minor_cells && n_minor != n) {
        return Err(ConcatError::unsupported(p, format!("its shape {:?} does not match the {n} cells: cannot shuffle it", m.shape)));
    }
    if major_cells {
        scatter_gather(ctx, p, &m, n_minor, minor_cells)
    } else if ctx.split.count() > 1 {
        Err(ConcatError::unsupported(p, "a CSC matrix cannot be cut into datasets yet; write it as CSR"))
    } else {
        let mut parts = Parts::create(ctx, 0, p, &m, n_major, m.nnz)?;
        renumber(ctx, p, &m, n_major, &mut parts)?;
        parts.finish(ctx)
    }
}

/// Record dataset `k`'s shape `(major, minor)` (in stored orientation) on its group.
fn set_shape(ctx: &Ctx<'_>, k: usize, p: &str, m: &SparseMeta, major: u64, minor: u64) -> Result<()> {
    let shape = if m.format == SparseFormat::Csr { [major, minor] } else { [minor, major] };
    let mut a = adcat_store::Attrs::new();
    a.insert("shape".into(), AttrValue::Ints(vec![shape[0] as i64, shape[1] as i64]));
    Ok(ctx.out(k).set_attrs(p, &a)?)
}

/// Bytes of a column index in a scratch record: 4 when every index fits in u32 (any
/// gene count), else 8.
fn index_width(n_minor: u64) -> usize {
    if n_minor <= 1 << 32 {
        4
    } else {
        8
    }
}

fn value_size(m: &SparseMeta) -> usize {
    m.data_dtype.itemsize()
}

/// Major rows per read block, about 1/16 of the budget.
fn read_step(ctx: &Ctx<'_>, m: &SparseMeta, n_major: u64) -> u64 {
    let per_row = (m.nnz / n_major.max(1)).max(1) * (8 + value_size(m) as u64) + 8;
    (ctx.block_bytes() / per_row).clamp(1, n_major.max(1))
}

/// A block's rows: indptr, indices and values' native bytes; with `map` (the minor axis
/// is cells) each row's indices are renumbered and the row re-sorted.
fn block_rows(ctx: &Ctx<'_>, b: &CsMatrix, map: bool) -> Result<(Vec<i64>, Vec<i64>, Vec<u8>)> {
    let ip = b.indptr.to_i64_vec().unwrap_or_default();
    let mut ix = b.indices.to_i64_vec().ok_or_else(|| ConcatError::unsupported("", "sparse indices are not integers"))?;
    let vs = b.data.dtype().itemsize();
    let mut vals = vec![0u8; b.data.len() * vs];
    b.data.scatter_native(&mut vals, vs, 0);
    if map {
        for w in ip.windows(2) {
            let (lo, hi) = (w[0] as usize, w[1] as usize);
            let mut row: Vec<(i64, usize)> = ix[lo..hi].iter().enumerate().map(|(k, &j)| (ctx.perm.apply(j as u64) as i64, lo + k)).collect();
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

/// Rows are cells: each row goes to its output block's bucket as `(indices as u32 or
/// u64, values)`, keeping, when the columns are cells too, only the columns of its own
/// dataset (renumbered from the dataset's start); blocks are gathered in order.
fn scatter_gather(ctx: &Ctx<'_>, p: &str, m: &SparseMeta, n_minor: u64, map: bool) -> Result<()> {
    let n = ctx.perm.len();
    let vs = value_size(m);
    let iw = index_width(n_minor);
    let row_bytes = (m.nnz / n.max(1)).max(1) * (iw + vs) as u64 + 8;
    // Buckets need not align with indptr's shards (its appender holds a partial unit
    // back): only the budget sizes them.
    let mut buckets = Buckets::new(ctx.scratch, n, ctx.bucket_rows(row_bytes, 1), ctx.budget() / 4)?;
    let mut nnz = vec![0u64; ctx.split.count()];
    let step = read_step(ctx, m, n);
    let mut rec = Vec::new();
    let mut s = 0;
    while s < n {
        let e = (s + step).min(n);
        let (ip, ix, vals) = block_rows(ctx, &CsMatrix::read_major(ctx.src, p, m, s, e)?, map)?;
        for (r, w) in ip.windows(2).enumerate() {
            let to = ctx.perm.apply(s + r as u64);
            let k = ctx.split.of(to);
            let cols = map.then(|| ctx.split.start(k) as i64..(ctx.split.start(k) + ctx.split.rows(k)) as i64);
            nnz[k] += record(&mut rec, &ix, &vals, w[0] as usize..w[1] as usize, iw, vs, cols);
            buckets.put(to, &rec)?;
        }
        s = e;
    }
    buckets.seal()?;
    gather(ctx, p, m, n_minor, map, &buckets, &nnz)
}

/// The scratch record of the entries `at` of a block (indices `ix`, values' bytes
/// `vals` of `vs` bytes each) into `rec`: indices as `iw`-byte integers, then values.
/// With `cols`, only entries whose index lies there are kept, renumbered from its start.
/// Returns the number of entries kept.
fn record(rec: &mut Vec<u8>, ix: &[i64], vals: &[u8], at: std::ops::Range<usize>, iw: usize, vs: usize, cols: Option<std::ops::Range<i64>>) -> u64 {
    rec.clear();
    let Some(cols) = cols else {
        // Every entry, in place: indices then one run of values.
        for &j in &ix[at.clone()] {
            rec.extend_from_slice(&(j as u64).to_le_bytes()[..iw]);
        }
        rec.extend_from_slice(&vals[at.start * vs..at.end * vs]);
        return at.len() as u64;
    };
    let keep: Vec<usize> = at.filter(|&i| cols.contains(&ix[i])).collect();
    for &i in &keep {
        rec.extend_from_slice(&((ix[i] - cols.start) as u64).to_le_bytes()[..iw]);
    }
    for &i in &keep {
        rec.extend_from_slice(&vals[i * vs..(i + 1) * vs]);
    }
    keep.len() as u64
}

/// Write the buckets' rows in order, dataset by dataset.
fn gather(ctx: &Ctx<'_>, p: &str, m: &SparseMeta, n_minor: u64, map: bool, buckets: &Buckets, nnz: &[u64]) -> Result<()> {
    let n = ctx.perm.len();
    let vs = value_size(m);
    let iw = index_width(n_minor);
    let mut parts: Option<Parts> = None;
    buckets.gather(n, &ctx.split, |k, rows| {
        if parts.as_ref().is_none_or(|q| q.k != k) {
            if let Some(q) = parts.take() {
                q.finish(ctx)?;
            }
            let minor = if map { ctx.split.rows(k) } else { n_minor };
            set_shape(ctx, k, p, m, ctx.split.rows(k), minor)?;
            parts = Some(Parts::create(ctx, k, p, m, ctx.split.rows(k), nnz[k])?);
        }
        let (counts, ix, vals) = decode(p, rows, iw, vs)?;
        let data = values(p, m, &vals)?;
        ctx.progress.advance(data.len() as u64 * (iw + vs) as u64);
        match parts.as_mut() {
            Some(q) => q.push_rows(ctx, &counts, ix, data),
            None => Ok(()),
        }
    })?;
    let parts = match parts {
        Some(q) => q,
        // No cells: one empty matrix.
        None => {
            let minor = if map { 0 } else { n_minor };
            set_shape(ctx, 0, p, m, 0, minor)?;
            Parts::create(ctx, 0, p, m, 0, 0)?
        }
    };
    parts.finish(ctx)
}

/// Rows' scratch records as entry counts, column indices and values' bytes.
fn decode(p: &str, rows: &[&[u8]], iw: usize, vs: usize) -> Result<(Vec<usize>, Vec<i64>, Vec<u8>)> {
    let mut counts = Vec::with_capacity(rows.len());
    let (mut ix, mut vals) = (Vec::new(), Vec::new());
    for slot in rows {
        if slot.len() % (iw + vs) != 0 {
            return Err(ConcatError::unsupported(p, "shuffle scratch: a row of the wrong size"));
        }
        let c = slot.len() / (iw + vs);
        counts.push(c);
        ix.extend(slot[..c * iw].chunks_exact(iw).map(|x| {
            let mut b = [0u8; 8];
            b[..iw].copy_from_slice(x);
            u64::from_le_bytes(b) as i64
        }));
        vals.extend_from_slice(&slot[c * iw..]);
    }
    Ok((counts, ix, vals))
}

fn values(p: &str, m: &SparseMeta, bytes: &[u8]) -> Result<ArrayData> {
    let vs = value_size(m);
    ArrayData::gather_native(m.data_dtype, bytes, bytes.len() / vs.max(1), vs, 0).ok_or_else(|| ConcatError::unsupported(p, "sparse values that are not numbers cannot be shuffled"))
}

/// Only the minor axis is cells (CSC X): stream the stored columns, renumbering and
/// re-sorting each one's row indices.
fn renumber(ctx: &Ctx<'_>, p: &str, m: &SparseMeta, n_major: u64, parts: &mut Parts) -> Result<()> {
    let step = read_step(ctx, m, n_major);
    let mut s = 0;
    while s < n_major {
        let e = (s + step).min(n_major);
        let (ip, ix, vals) = block_rows(ctx, &CsMatrix::read_major(ctx.src, p, m, s, e)?, true)?;
        let counts: Vec<usize> = ip.windows(2).map(|w| (w[1] - w[0]) as usize).collect();
        let data = values(p, m, &vals)?;
        ctx.progress.advance(data.len() as u64 * (8 + value_size(m) as u64));
        parts.push_rows(ctx, &counts, ix, data)?;
        s = e;
    }
    Ok(())
}
