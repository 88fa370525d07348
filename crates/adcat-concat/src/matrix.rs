//! Concatenation of 2-d matrices (X, layers, obsm arrays): any mix of CSR, CSC and dense
//! inputs, streamed in blocks along the concatenation axis, reindexed on the other axis.
//!
//! Everything here works in *oriented* coordinates: "rows" run along the concatenation
//! axis and "columns" along the other one. For `axis=var` a CSC matrix is oriented CSR and
//! a dense array is read in column boxes and transposed.

use crate::index::Reindexer;
use crate::transpose::Transposed;
use std::sync::{Arc, Mutex};
use crate::{ConcatError, Result};
use adcat_format::layout::{element_bytes, Purpose, WriteOptions};
use adcat_format::sparse::{CsMatrix, SparseFormat, SparseMeta};
use adcat_format::stream::Appender;
use adcat_format::{detect, Encoding};
use adcat_store::{join_path, with_numeric, ArrayData, AttrValue, DType, Element, Numeric, Store};
use ndarray::{ArrayD, Axis as NdAxis, IxDyn};
use rayon::prelude::*;

/// Layout of one input matrix.
#[derive(Debug, Clone)]
pub enum MatKind {
    /// Compressed sparse.
    Sparse(SparseMeta),
    /// Dense 2-d array of this dtype.
    Dense(DType),
}

/// One input matrix, seen along the concatenation axis.
#[derive(Debug, Clone)]
pub struct MatSource<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// Element path.
    pub path: String,
    /// Sparse or dense.
    pub kind: MatKind,
    /// On-disk shape (rows, columns) of the element.
    pub shape: [u64; 2],
    /// True when concatenating along axis 1 (var).
    pub transposed: bool,
    /// Scratch partitions of a sparse matrix stored along the other axis, built on the
    /// first block read (see `transpose`).
    scratch: Arc<Mutex<Option<Arc<Transposed>>>>,
}

/// A block of oriented rows.
#[derive(Debug, Clone)]
pub enum Block {
    /// CSR-like block: `indptr` has rows + 1 entries starting at 0.
    Sparse {
        /// Row offsets.
        indptr: Vec<i64>,
        /// Column of each entry.
        indices: Vec<i64>,
        /// Values.
        data: ArrayData,
    },
    /// Like `Sparse`, with the indices as stored (no widening): the fast path for inputs
    /// that need no reindexing.
    SparseNative {
        /// Row offsets.
        indptr: Vec<i64>,
        /// Column of each entry, in the input's integer type.
        indices: ArrayData,
        /// Values.
        data: ArrayData,
    },
    /// Row-major `[rows, columns]`.
    Dense(ArrayData),
}

impl Block {
    /// The block with values of `dtype` (no copy when they already are).
    pub fn cast(self, dtype: DType) -> Result<Block> {
        let conv = |d: ArrayData| -> Result<ArrayData> {
            if d.dtype() == dtype {
                Ok(d)
            } else {
                d.cast(dtype).ok_or_else(|| ConcatError::unsupported("", format!("cannot cast {} values to {dtype}", d.dtype())))
            }
        };
        Ok(match self {
            Block::Sparse { indptr, indices, data } => Block::Sparse { indptr, indices, data: conv(data)? },
            Block::SparseNative { indptr, indices, data } => Block::SparseNative { indptr, indices, data: conv(data)? },
            Block::Dense(a) => Block::Dense(conv(a)?),
        })
    }

    /// The block with sparse indices widened to i64 (the form reindexing works on).
    pub fn into_plain(self) -> Block {
        match self {
            Block::SparseNative { indptr, indices, data } => Block::Sparse { indptr, indices: indices.to_i64_vec().unwrap_or_default(), data },
            b => b,
        }
    }

    /// The block as CSR rows (dense blocks keep their non-zero entries, NaN included).
    pub fn into_sparse(self) -> Block {
        match self {
            Block::Dense(a) => {
                let (indptr, indices, data) = dense_to_sparse(&a);
                Block::Sparse { indptr, indices, data }
            }
            s => s.into_plain(),
        }
    }
}

impl<'a> MatSource<'a> {
    /// Inspect the element at `path`. Errors if it is not a 2-d matrix.
    pub fn open(store: &'a dyn Store, path: &str, transposed: bool) -> Result<Self> {
        let det = detect(store, path)?;
        let (kind, shape) = match det.encoding {
            Encoding::Csr | Encoding::Csc => {
                let m = SparseMeta::read(store, path)?;
                let shape = m.shape;
                (MatKind::Sparse(m), shape)
            }
            Encoding::Array => {
                let m = store.array_meta(path)?;
                if m.shape.len() != 2 {
                    return Err(ConcatError::unsupported(path, format!("expected a 2-d array, found shape {:?}", m.shape)));
                }
                if m.dtype == DType::String {
                    return Err(ConcatError::unsupported(path, "string matrices cannot be concatenated"));
                }
                (MatKind::Dense(m.dtype), [m.shape[0], m.shape[1]])
            }
            other => return Err(ConcatError::unsupported(path, format!("cannot concatenate a {other} element as a matrix"))),
        };
        Ok(MatSource { store, path: path.to_owned(), kind, shape, transposed, scratch: Arc::default() })
    }

    /// Rows along the concatenation axis.
    pub fn n_rows(&self) -> u64 {
        if self.transposed { self.shape[1] } else { self.shape[0] }
    }

    /// Columns (off axis).
    pub fn n_cols(&self) -> u64 {
        if self.transposed { self.shape[0] } else { self.shape[1] }
    }

    /// Value dtype.
    pub fn dtype(&self) -> DType {
        match &self.kind {
            MatKind::Sparse(m) => m.data_dtype,
            MatKind::Dense(d) => *d,
        }
    }

    /// Is this a sparse matrix?
    pub fn is_sparse(&self) -> bool {
        matches!(self.kind, MatKind::Sparse(_))
    }

    /// Stored entries (dense: all cells).
    pub fn nnz(&self) -> u64 {
        match &self.kind {
            MatKind::Sparse(m) => m.nnz,
            MatKind::Dense(_) => self.shape[0] * self.shape[1],
        }
    }

    /// Bytes stored for the element (values, indices and indptr; dense: values).
    pub fn data_bytes(&self) -> u64 {
        match &self.kind {
            MatKind::Sparse(m) => {
                let major = if m.format == SparseFormat::Csr { m.shape[0] } else { m.shape[1] };
                m.nnz * (m.data_dtype.itemsize() + m.indices_dtype.itemsize()) as u64 + (major + 1) * m.indptr_dtype.itemsize() as u64
            }
            MatKind::Dense(d) => self.shape[0] * self.shape[1] * d.itemsize() as u64,
        }
    }

    /// Whether the sparse major axis runs along the concatenation axis (cheap row blocks).
    fn aligned(&self, m: &SparseMeta) -> bool {
        (m.format == SparseFormat::Csr) != self.transposed
    }

    /// `indptr[start..=end]` of a sparse matrix stored along the concatenation axis
    /// (None for other layouts): entries per row without reading the entries.
    pub fn major_indptr(&self, start: u64, end: u64) -> Option<Result<Vec<i64>>> {
        match &self.kind {
            MatKind::Sparse(m) if self.aligned(m) => Some(self.checked_indptr(m, start, end)),
            _ => None,
        }
    }

    /// `indptr[start..=end]`, refused (as `CsMatrix::read_major` does) unless monotone
    /// and within the stored entries.
    fn checked_indptr(&self, m: &SparseMeta, start: u64, end: u64) -> Result<Vec<i64>> {
        let p = join_path(&self.path, "indptr");
        let ptr = self.store.read_rows(&p, start, end + 1)?.to_i64_vec().unwrap_or_default();
        let (lo, hi) = (ptr.first().copied().unwrap_or(0), ptr.last().copied().unwrap_or(0));
        if lo < 0 || hi < lo || hi as u64 > m.nnz || ptr.windows(2).any(|w| w[1] < w[0]) {
            let why = format!("not monotone or out of range (rows {start}..{end}, nnz {})", m.nnz);
            return Err(adcat_format::FormatError::invalid(&p, why).into());
        }
        Ok(ptr)
    }

    /// Whether reading oriented rows needs a pass over the whole matrix (a sparse matrix
    /// stored along the other axis): such elements are not split between tasks.
    pub fn needs_transpose(&self) -> bool {
        matches!(&self.kind, MatKind::Sparse(m) if !self.aligned(m))
    }

    /// Read oriented rows `start..end`. `budget` bounds the bytes of a transposition pass.
    pub fn read_block(&self, start: u64, end: u64, budget: u64) -> Result<Block> {
        match &self.kind {
            MatKind::Sparse(m) if self.aligned(m) => {
                let b = CsMatrix::read_major(self.store, &self.path, m, start, end)?;
                Ok(Block::SparseNative { indptr: b.indptr.to_i64_vec().unwrap_or_default(), indices: b.indices, data: b.data })
            }
            MatKind::Sparse(m) => self.read_transposed(m, start, end, budget),
            MatKind::Dense(_) => {
                let a = if self.transposed {
                    let b = self.store.read(&self.path, &[0, start], &[self.shape[0], end - start])?;
                    adcat_store::map_array!(b, a => a.t().as_standard_layout().to_owned())
                } else {
                    self.store.read_rows(&self.path, start, end)?
                };
                Ok(Block::Dense(a))
            }
        }
    }

    /// Oriented rows of a sparse matrix stored along the other axis: from scratch
    /// partitions written by one pass over the matrix (built on the first call, with
    /// blocks of that call's size); a block that is not a partition is scanned for.
    fn read_transposed(&self, m: &SparseMeta, start: u64, end: u64, budget: u64) -> Result<Block> {
        let t = {
            let mut g = self.scratch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if g.is_none() {
                *g = Some(Arc::new(Transposed::build(self.store, &self.path, m, end - start, budget)?));
            }
            g.clone()
        };
        if let Some(r) = t.as_ref().and_then(|t| t.block(start, end)) {
            let (indptr, indices, data) = r?;
            return Ok(Block::Sparse { indptr, indices, data });
        }
        self.scan_transposed(m, start, end, budget)
    }

    /// Oriented rows of a sparse matrix stored along the other axis: scan every stored
    /// major row in bounded chunks and keep the entries whose minor index is in range.
    fn scan_transposed(&self, m: &SparseMeta, start: u64, end: u64, budget: u64) -> Result<Block> {
        let n_major = if m.format == SparseFormat::Csr { m.shape[0] } else { m.shape[1] };
        let rows = (end - start) as usize;
        let mut entries: Vec<(u32, i64, usize, usize)> = vec![]; // (row, col, chunk no, pos)
        let mut chunks: Vec<ArrayData> = vec![];
        // Entries per scan chunk: value + index + the kept position (~24 bytes each).
        let per = (budget / 24).max(1);
        let mut s = 0;
        while s < n_major {
            // Take majors until about `per` entries.
            let avg = (m.nnz / n_major.max(1)).max(1);
            let e = (s + (per / avg).max(1)).min(n_major);
            let b = CsMatrix::read_major(self.store, &self.path, m, s, e)?;
            let ip = b.indptr.to_i64_vec().unwrap_or_default();
            let ix = b.indices.to_i64_vec().unwrap_or_default();
            let mut keep = vec![];
            for r in 0..(e - s) as usize {
                for k in ip[r] as usize..ip[r + 1] as usize {
                    let minor = ix[k] as u64;
                    if minor >= start && minor < end {
                        entries.push(((minor - start) as u32, (s as usize + r) as i64, chunks.len(), keep.len()));
                        keep.push(k);
                    }
                }
            }
            chunks.push(take(&b.data, &keep));
            s = e;
        }
        entries.sort_by_key(|&(r, c, _, _)| (r, c));
        let mut indptr = vec![0i64; rows + 1];
        for &(r, _, _, _) in &entries {
            indptr[r as usize + 1] += 1;
        }
        for i in 0..rows {
            indptr[i + 1] += indptr[i];
        }
        let indices = entries.iter().map(|e| e.1).collect();
        let data = gather(&chunks, entries.iter().map(|e| (e.2, e.3)), self.dtype());
        Ok(Block::Sparse { indptr, indices, data })
    }
}

/// `data[idx]` for a 1-d array.
#[allow(clippy::clone_on_copy)] // generic over Copy numbers and String
pub fn take(data: &ArrayData, idx: &[usize]) -> ArrayData {
    adcat_store::map_array!(data, a => {
        let v: Vec<_> = match a.as_slice() {
            Some(sl) => idx.iter().map(|&i| sl[i].clone()).collect(),
            None => idx.iter().map(|&i| a[IxDyn(&[i])].clone()).collect(),
        };
        ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).unwrap_or_else(|_| ArrayD::default(IxDyn(&[0])))
    })
}

#[allow(clippy::clone_on_copy)] // generic over Copy numbers and String
fn gather(chunks: &[ArrayData], at: impl Iterator<Item = (usize, usize)>, dtype: DType) -> ArrayData {
    let at: Vec<(usize, usize)> = at.collect();
    macro_rules! g {
        ($t:ty) => {{
            let parts: Vec<&ArrayD<$t>> = chunks.iter().filter_map(|c| <$t as Element>::unwrap_ref(c)).collect();
            let v: Vec<$t> = at.iter().map(|&(c, p)| parts[c][IxDyn(&[p])].clone()).collect();
            ArrayData::from_vec(v)
        }};
    }
    adcat_store::numeric_for_dtype!(dtype, T => g!(T), string => g!(String))
}

/// The dtype a value takes when used as a fill: numpy's `asarray(fill).dtype`.
pub fn fill_dtype(fill: f64) -> DType {
    if fill.fract() == 0.0 && fill.is_finite() { DType::I64 } else { DType::F64 }
}

/// How the output of one matrix element is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutPlan {
    /// Sparse (CSR for obs, CSC for var) or dense.
    pub sparse: bool,
    /// Value dtype.
    pub dtype: DType,
    /// Fill for missing entries (sparse: stored explicitly when non-zero).
    pub fill: f64,
}

impl OutPlan {
    /// Convert a block of an input to the output's form: values in the output dtype,
    /// columns reindexed with `re` (None = identity) to `n_cols`, sparse or dense.
    /// Independent of the writer, so it can run on another thread.
    pub fn prepare(&self, block: Block, re: Option<&Reindexer>, n_cols: u64) -> Result<Block> {
        // Values take the output dtype first, so the fill is represented in that dtype
        // (a -1 fill in uint8 input promoted to int64 stays -1).
        let block = block.cast(self.dtype)?;
        if self.sparse && re.is_none_or(|r| r.identity) && matches!(block, Block::SparseNative { .. }) {
            // Nothing to remap: indices go out in their stored width.
            return Ok(block);
        }
        if let (true, Some(re), Block::SparseNative { indptr, indices, data }) = (self.sparse, re, &block) {
            if self.fill == 0.0 || re.n_missing() == 0 {
                if let Some((indptr, indices, data)) = crate::remap::remap(indptr, indices, data, re) {
                    return Ok(Block::SparseNative { indptr, indices, data });
                }
            }
        }
        let block = block.into_plain();
        Ok(if self.sparse { to_sparse(block, re, self.fill) } else { to_dense(block, re, n_cols, self.fill) })
    }
}

/// Streams oriented rows into the output element.
pub struct MatWriter<'s> {
    store: &'s dyn Store,
    path: String,
    plan: OutPlan,
    n_cols: u64,
    transposed: bool,
    rows_written: u64,
    // sparse
    data: Option<Appender>,
    indices: Option<Appender>,
    indptr: Option<Appender>,
    nnz: i64,
    indptr_dtype: DType,
    index_dtype: DType,
    // dense
    dense: Option<Appender>,
}

impl std::fmt::Debug for MatWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatWriter").field("path", &self.path).field("plan", &self.plan).finish()
    }
}

impl<'s> MatWriter<'s> {
    /// Create the output element for `n_rows` oriented rows of `n_cols` columns holding at
    /// most `max_nnz` stored entries (sparse).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        store: &'s dyn Store,
        path: &str,
        plan: OutPlan,
        n_rows: u64,
        n_cols: u64,
        max_nnz: u64,
        transposed: bool,
        opts: &WriteOptions,
    ) -> Result<Self> {
        let shape = if transposed { [n_cols, n_rows] } else { [n_rows, n_cols] };
        let mut w = MatWriter {
            store,
            path: path.to_owned(),
            plan,
            n_cols,
            transposed,
            rows_written: 0,
            data: None,
            indices: None,
            indptr: None,
            nnz: 0,
            indptr_dtype: if max_nnz > i32::MAX as u64 { DType::I64 } else { DType::I32 },
            index_dtype: adcat_format::layout::index_dtype(n_cols, opts.compact_indices),
            dense: None,
        };
        if plan.sparse {
            store.create_group(path)?;
            let enc = if transposed { Encoding::Csc } else { Encoding::Csr };
            let mut attrs = enc.attrs();
            attrs.insert("shape".into(), AttrValue::Ints(vec![shape[0] as i64, shape[1] as i64]));
            store.set_attrs(path, &attrs)?;
            w.data = Some(Appender::create(store, &join_path(path, "data"), plan.dtype, &[max_nnz], Purpose::SparsePart, opts)?);
            w.indices = Some(Appender::create(store, &join_path(path, "indices"), w.index_dtype, &[max_nnz], Purpose::SparsePart, opts)?);
            let mut ip = Appender::create(store, &join_path(path, "indptr"), w.indptr_dtype, &[n_rows + 1], Purpose::SparsePart, opts)?;
            ip.push(store, ArrayData::zeros(w.indptr_dtype, &[1]))?;
            w.indptr = Some(ip);
        } else if transposed {
            // Dense along var: written as column boxes of an [n_cols, n_rows] array.
            let spec = opts.spec(store.kind(), plan.dtype, &shape, Purpose::Dense);
            store.create_array(path, &spec)?;
            store.set_attrs(path, &Encoding::Array.attrs())?;
        } else {
            w.dense = Some(Appender::create(store, path, plan.dtype, &shape, Purpose::Cells, opts)?);
            store.set_attrs(path, &Encoding::Array.attrs())?;
        }
        Ok(w)
    }

    /// Append a block of an input, reindexing its columns with `re` (None = identity).
    pub fn push(&mut self, block: Block, re: Option<&Reindexer>) -> Result<()> {
        let b = self.plan.prepare(block, re, self.n_cols)?;
        self.write(b)
    }

    /// Append a block already converted by [`OutPlan::prepare`].
    pub fn push_prepared(&mut self, block: Block) -> Result<()> {
        self.write(block)
    }

    /// Append `rows` rows that the input does not have at all (outer join of a missing
    /// element): all entries are the fill value.
    pub fn push_missing(&mut self, rows: u64, fill: f64) -> Result<()> {
        let c = self.n_cols as usize;
        let block = if self.plan.sparse {
            if fill == 0.0 {
                Block::Sparse { indptr: vec![0; rows as usize + 1], indices: vec![], data: ArrayData::zeros(DType::F64, &[0]) }
            } else {
                let n = rows as usize * c;
                Block::Sparse {
                    indptr: (0..=rows as i64).map(|r| r * c as i64).collect(),
                    indices: (0..n).map(|k| (k % c) as i64).collect(),
                    data: ArrayData::from_vec(vec![fill; n]),
                }
            }
        } else {
            Block::Dense(ArrayData::from_shape_vec(&[rows, c as u64], vec![fill; rows as usize * c]).unwrap_or_else(|| ArrayData::zeros(DType::F64, &[0, 0])))
        };
        self.write(block)
    }

    fn write(&mut self, block: Block) -> Result<()> {
        let dtype = self.plan.dtype;
        let cast = |d: ArrayData| -> Result<ArrayData> {
            if d.dtype() == dtype {
                Ok(d)
            } else {
                d.cast(dtype).ok_or_else(|| ConcatError::unsupported("", format!("cannot cast {} values to {dtype}", d.dtype())))
            }
        };
        match block {
            Block::Sparse { .. } | Block::SparseNative { .. } => {
                let (indptr, indices, data) = match block {
                    Block::Sparse { indptr, indices, data } => (indptr, ArrayData::from_vec(indices), data),
                    Block::SparseNative { indptr, indices, data } => (indptr, indices, data),
                    Block::Dense(_) => unreachable!("matched above"),
                };
                let rows = indptr.len().saturating_sub(1) as u64;
                let base = self.nnz;
                let ip: Vec<i64> = indptr[1..].iter().map(|p| p + base).collect();
                self.nnz += indptr.last().copied().unwrap_or(0);
                let ip = ArrayData::from_vec(ip);
                let (d, i, p) = (self.data.as_mut(), self.indices.as_mut(), self.indptr.as_mut());
                if let (Some(d), Some(i), Some(p)) = (d, i, p) {
                    d.push(self.store, cast(data)?)?;
                    i.push(self.store, cast_index(indices, self.index_dtype))?;
                    p.push(self.store, cast_index(ip, self.indptr_dtype))?;
                }
                self.rows_written += rows;
            }
            Block::Dense(a) => {
                let rows = a.shape().first().copied().unwrap_or(0);
                let a = cast(a)?;
                if let Some(app) = self.dense.as_mut() {
                    app.push(self.store, a)?;
                } else if self.transposed {
                    let t = adcat_store::map_array!(a, x => x.t().as_standard_layout().to_owned());
                    self.store.write(&self.path, &[0, self.rows_written], &t)?;
                }
                self.rows_written += rows;
            }
        }
        Ok(())
    }

    /// Complete the element (shrinks sparse arrays to the entries written).
    pub fn finish(self) -> Result<u64> {
        let store = self.store;
        if let (Some(d), Some(i), Some(p)) = (self.data, self.indices, self.indptr) {
            let n = self.nnz as u64;
            d.finish_at(store, n)?;
            i.finish_at(store, n)?;
            p.finish(store)?;
        }
        if let Some(d) = self.dense {
            d.finish(store)?;
        }
        Ok(self.nnz as u64)
    }
}

fn cast_index(a: ArrayData, to: DType) -> ArrayData {
    if a.dtype() == to { a } else { a.cast(to).unwrap_or(a) }
}

/// Reindex and convert a block to sparse rows of `n_cols` columns.
fn to_sparse(block: Block, re: Option<&Reindexer>, fill: f64) -> Block {
    let (indptr, indices, data) = match block.into_plain() {
        Block::Sparse { indptr, indices, data } => (indptr, indices, data),
        Block::Dense(a) => dense_to_sparse(&a),
        Block::SparseNative { .. } => unreachable!("into_plain widens native blocks"),
    };
    let Some(re) = re.filter(|r| !r.identity) else {
        return Block::Sparse { indptr, indices, data };
    };
    let rows = indptr.len().saturating_sub(1);
    let missing: Vec<i64> = if fill != 0.0 {
        re.old_pos.iter().enumerate().filter(|(_, &o)| o < 0).map(|(n, _)| n as i64).collect()
    } else {
        vec![]
    };
    // Rows are independent: reindex parts of the block on all cores, then join them.
    let parts = rayon::current_num_threads() * 4;
    let per = rows.div_ceil(parts).max(4096);
    let pieces: Vec<(Vec<i64>, Vec<i64>, Vec<i64>)> = (0..rows.div_ceil(per))
        .into_par_iter()
        .map(|p| {
            let (lo, hi) = (p * per, ((p + 1) * per).min(rows));
            reindex_rows(&indptr[lo..=hi], &indices, re, &missing)
        })
        .collect();
    let total: usize = pieces.iter().map(|p| p.1.len()).sum();
    let mut out_ptr = Vec::with_capacity(rows + 1);
    out_ptr.push(0i64);
    let mut out_idx = Vec::with_capacity(total);
    let mut src_pos = Vec::with_capacity(total);
    for (ends, idx, src) in pieces {
        let base = out_idx.len() as i64;
        out_ptr.extend(ends.iter().map(|e| e + base));
        out_idx.extend_from_slice(&idx);
        src_pos.extend_from_slice(&src);
    }
    // Values are already in the output dtype (MatWriter::push casts first).
    let data = with_numeric!(&data, a => {
        let f = Numeric::from_f64(fill);
        let v: Vec<_> = match a.as_slice() {
            Some(sl) => src_pos.par_iter().with_min_len(1 << 16).map(|&k| if k < 0 { f } else { sl[k as usize] }).collect(),
            None => {
                let flat: Vec<_> = a.iter().copied().collect();
                src_pos.iter().map(|&k| if k < 0 { f } else { flat[k as usize] }).collect()
            }
        };
        ArrayData::from_vec(v)
    }, s => {
        let flat: Vec<&String> = s.iter().collect();
        ArrayData::from_vec(src_pos.iter().map(|&k| if k < 0 { String::new() } else { flat[k as usize].clone() }).collect::<Vec<_>>())
    });
    Block::Sparse { indptr: out_ptr, indices: out_idx, data }
}

/// Reindex CSR rows (`indptr` absolute into `indices`, rows + 1 entries): per row, the
/// mapped entries plus the filled `missing` columns in ascending new column. Returns the
/// end offset of each row (relative to this part), the new columns, and for each the
/// source position in `indices` (-1 = fill).
fn reindex_rows(indptr: &[i64], indices: &[i64], re: &Reindexer, missing: &[i64]) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let rows = indptr.len().saturating_sub(1);
    let (first, last) = (indptr.first().copied().unwrap_or(0) as usize, indptr.last().copied().unwrap_or(0) as usize);
    // Rows are ordered through a bitmap of the new columns (O(width/64 + entries)); rows
    // much shorter than the bitmap are sorted instead.
    let width = re.new_len();
    let words = width.div_ceil(64);
    let mut bits = vec![0u64; words];
    let mut scratch = vec![-1i64; width];
    let mut ends = Vec::with_capacity(rows);
    let mut out_idx = Vec::with_capacity(last - first + rows * missing.len());
    let mut src_pos: Vec<i64> = Vec::with_capacity(out_idx.capacity());
    let mut row_buf: Vec<(i64, i64)> = vec![];
    for r in 0..rows {
        let (lo, hi) = (indptr[r] as usize, indptr[r + 1] as usize);
        let n = hi - lo + missing.len();
        if n * 8 < words {
            row_buf.clear();
            for k in lo..hi {
                let np = re.new_pos.get(indices[k] as usize).copied().unwrap_or(-1);
                if np >= 0 {
                    row_buf.push((np, k as i64));
                }
            }
            row_buf.extend(missing.iter().map(|&m| (m, -1)));
            row_buf.sort_unstable();
            for &(c, k) in &row_buf {
                out_idx.push(c);
                src_pos.push(k);
            }
        } else {
            for k in lo..hi {
                let np = re.new_pos.get(indices[k] as usize).copied().unwrap_or(-1);
                if np >= 0 {
                    scratch[np as usize] = k as i64;
                    bits[np as usize / 64] |= 1 << (np % 64);
                }
            }
            for &m in missing {
                scratch[m as usize] = -1;
                bits[m as usize / 64] |= 1 << (m % 64);
            }
            for (w, word) in bits.iter_mut().enumerate() {
                let mut b = *word;
                if b == 0 {
                    continue;
                }
                while b != 0 {
                    let j = w * 64 + b.trailing_zeros() as usize;
                    out_idx.push(j as i64);
                    src_pos.push(scratch[j]);
                    b &= b - 1;
                }
                *word = 0;
            }
        }
        ends.push(out_idx.len() as i64);
    }
    (ends, out_idx, src_pos)
}

fn dense_to_sparse(a: &ArrayData) -> (Vec<i64>, Vec<i64>, ArrayData) {
    let shape = a.shape();
    let (rows, cols) = (shape[0] as usize, shape.get(1).copied().unwrap_or(1) as usize);
    let mut indptr = vec![0i64; rows + 1];
    let mut indices = vec![];
    let mut keep = vec![];
    let vals = a.to_f64_vec().unwrap_or_default();
    for r in 0..rows {
        for c in 0..cols {
            let v = vals[r * cols + c];
            // scipy keeps NaN as a stored entry (NaN != 0).
            if v != 0.0 {
                indices.push(c as i64);
                keep.push(r * cols + c);
            }
        }
        indptr[r + 1] = indices.len() as i64;
    }
    let flat = adcat_store::map_array!(a, x => x.to_shape(IxDyn(&[rows * cols])).map(|v| v.to_owned()).unwrap_or_else(|_| ArrayD::default(IxDyn(&[0]))));
    (indptr, indices, take(&flat, &keep))
}

/// Reindex and convert a block to a dense `[rows, n_cols]` array (fill for missing).
fn to_dense(block: Block, re: Option<&Reindexer>, n_cols: u64, fill: f64) -> Block {
    let dense = match block.into_plain() {
        Block::SparseNative { .. } => unreachable!("into_plain widens native blocks"),
        Block::Dense(a) => a,
        Block::Sparse { indptr, indices, data } => {
            let rows = indptr.len().saturating_sub(1);
            let src_cols = indices.iter().copied().max().map(|m| m as usize + 1).unwrap_or(0);
            let width = match re {
                Some(r) => r.old_len(),
                None => n_cols as usize,
            }
            .max(src_cols);
            with_numeric!(&data, d => {
                let mut out = ArrayD::default(IxDyn(&[rows, width]));
                for r in 0..rows {
                    for k in indptr[r] as usize..indptr[r + 1] as usize {
                        out[IxDyn(&[r, indices[k] as usize])] = d[IxDyn(&[k])];
                    }
                }
                Element::wrap(out)
            }, _s => ArrayData::zeros(DType::String, &[rows as u64, width as u64]))
        }
    };
    let Some(re) = re.filter(|r| !r.identity) else { return Block::Dense(dense) };
    let rows = dense.shape()[0] as usize;
    let nc = re.old_pos.len();
    let needs_float = re.n_missing() > 0 && (fill.is_nan() || fill.fract() != 0.0);
    let src = if needs_float && !dense.dtype().is_float() { dense.cast(DType::F64).unwrap_or(dense) } else { dense };
    let out = with_numeric!(&src, a => {
        let f = Numeric::from_f64(fill);
        let mut out = ArrayD::from_elem(IxDyn(&[rows, nc]), f);
        for (n, &o) in re.old_pos.iter().enumerate() {
            if o >= 0 {
                out.index_axis_mut(NdAxis(1), n).assign(&a.index_axis(NdAxis(1), o as usize));
            }
        }
        Element::wrap(out)
    }, s => ArrayData::String(s.clone()));
    Block::Dense(out)
}

/// Bytes per oriented row of an input (for block sizing).
pub fn row_bytes(src: &MatSource<'_>) -> u64 {
    let per_row = (src.nnz() / src.n_rows().max(1)).max(1);
    per_row * (element_bytes(src.dtype()) + 8) + 8
}
