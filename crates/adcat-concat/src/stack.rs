//! Stacking one matrix element (X, a layer, an obsm array) along the concatenation
//! axis: the output dtype and size are planned from the inputs' metadata, then blocks
//! are read, reindexed and written through a two-stage pipeline.

use crate::index::Reindexer;
use crate::matrix::{self, fill_dtype, MatSource, MatWriter, OutPlan};
use crate::{pipe, At, Axis, ConcatError, ConcatOptions, Report, Result};
use adcat_format::Progress;
use adcat_store::{DType, Store};

/// The inputs of one matrix element: a source per input (None: the input lacks it),
/// its rows, and its reindexer onto the output columns.
pub(crate) struct Stack<'a> {
    pub srcs: &'a [Option<MatSource<'a>>],
    pub rows: &'a [u64],
    pub reindexers: Option<&'a [Reindexer]>,
    pub n_cols: u64,
}

impl Stack<'_> {
    fn re_of(&self, i: usize) -> Option<&Reindexer> {
        self.reindexers.map(|r| &r[i])
    }

    fn reindexed(&self, i: usize) -> bool {
        self.re_of(i).is_some_and(|r| !r.identity)
    }

    /// Output dtype (numpy promotion over inputs) and an upper bound of stored entries.
    /// anndata reindexes with one fill for the element (0 when any input is sparse, else
    /// NaN); an input with holes is promoted with the fill's dtype when the fill is not
    /// 0, and a missing input contributes a block of the fill (scipy's empty
    /// `csr_matrix(shape)` is float64).
    fn dtype_and_nnz(&self, sparse: bool, fill: f64, out_path: &str) -> Result<(DType, u64)> {
        let mut dtype: Option<DType> = None;
        let mut max_nnz = 0u64;
        for (i, s) in self.srcs.iter().enumerate() {
            let (d, nnz) = match s {
                Some(s) => {
                    let holes = self.re_of(i).is_some_and(|r| !r.identity && r.n_missing() > 0);
                    // Dense padding goes through np.where with asarray(fill): it promotes
                    // even for a fill of 0; sparse padding with 0 stores nothing.
                    let promotes = holes && (fill != 0.0 || !sparse);
                    let d = if promotes { s.dtype().promote(fill_dtype(fill)).unwrap_or(s.dtype()) } else { s.dtype() };
                    let extra = if holes && fill != 0.0 { self.rows[i] * self.re_of(i).map_or(0, |r| r.n_missing() as u64) } else { 0 };
                    (d, if s.is_sparse() { s.nnz() + extra } else { self.rows[i] * self.n_cols })
                }
                None => {
                    let d = if sparse && fill == 0.0 { DType::F64 } else { fill_dtype(fill) };
                    (d, if fill != 0.0 { self.rows[i] * self.n_cols } else { 0 })
                }
            };
            max_nnz += nnz;
            dtype = Some(match dtype {
                None => d,
                Some(p) => p.promote(d).ok_or_else(|| ConcatError::unsupported(out_path, format!("cannot combine {p} and {d}")))?,
            });
        }
        Ok((dtype.unwrap_or(DType::F32), max_nnz))
    }

    /// What `adcat plan` says about the element.
    fn describe(&self, plan: &OutPlan, transposed: bool, max_nnz: u64) -> String {
        let total: u64 = self.rows.iter().sum();
        let in_types: Vec<String> = self.srcs.iter().flatten().map(|s| s.dtype().to_string()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let n_re = (0..self.srcs.len()).filter(|&i| self.srcs[i].is_some() && self.reindexed(i)).count();
        let n_missing = self.srcs.iter().filter(|s| s.is_none()).count();
        let kind = if !plan.sparse { "dense array" } else if transposed { "csc_matrix" } else { "csr_matrix" };
        let (r, c) = if transposed { (self.n_cols, total) } else { (total, self.n_cols) };
        let mut what = format!("{kind} {}, {r} x {c}", plan.dtype);
        if in_types.len() > 1 || in_types.first().is_some_and(|t| *t != plan.dtype.to_string()) {
            what.push_str(&format!(" (from {})", in_types.join(" + ")));
        }
        if plan.sparse {
            what.push_str(&format!(", at most {max_nnz} stored entries"));
        }
        if n_re > 0 {
            what.push_str(&format!(", {n_re} input(s) reindexed"));
        }
        if n_missing > 0 {
            what.push_str(&format!(", {n_missing} input(s) without it filled with {}", plan.fill));
        }
        what
    }
}

fn output(e: ConcatError) -> ConcatError {
    match e {
        ConcatError::Format(f) => ConcatError::Output(f),
        o => o,
    }
}

/// Concatenate one matrix element whose inputs may be missing (outer join).
#[allow(clippy::too_many_arguments)]
pub(crate) fn concat_matrix(
    srcs: &[Option<MatSource<'_>>],
    rows: &[u64],
    reindexers: Option<&[Reindexer]>,
    n_cols: u64,
    out: &dyn Store,
    out_path: &str,
    opts: &ConcatOptions,
    progress: &dyn Progress,
    report: &mut Report,
) -> Result<()> {
    let st = Stack { srcs, rows, reindexers, n_cols };
    let sparse = srcs.iter().flatten().any(MatSource::is_sparse);
    let fill = opts.fill_value.unwrap_or(if sparse { 0.0 } else { f64::NAN });
    let (dtype, max_nnz) = st.dtype_and_nnz(sparse, fill, out_path)?;
    let plan = OutPlan { sparse, dtype, fill };
    let transposed = opts.axis == Axis::Var;
    let total: u64 = rows.iter().sum();
    let w = MatWriter::create(out, out_path, plan, total, n_cols, max_nnz, transposed, &opts.write).map_err(output)?;
    report.note(out_path, st.describe(&plan, transposed, max_nnz));
    if opts.dry_run {
        return Ok(());
    }
    progress.element_total(srcs.iter().flatten().map(MatSource::data_bytes).sum());
    st.stream(plan, w, opts.write.max_memory, progress)
}

/// One pipeline item: rows of a missing input, or a prepared block and its stored bytes.
#[allow(clippy::large_enum_variant)] // one item in flight at a time
enum Item {
    Missing(u64),
    Block(matrix::Block, u64),
}

impl Stack<'_> {
    /// Blocks are read and reindexed on a helper thread while this one encodes and
    /// writes the previous block.
    fn stream(&self, plan: OutPlan, mut w: MatWriter<'_>, budget: u64, progress: &dyn Progress) -> Result<()> {
        pipe::pipeline(
            |send| {
                for (i, s) in self.srcs.iter().enumerate() {
                    let more = match s {
                        None => send(Item::Missing(self.rows[i])),
                        Some(s) => self.read_blocks(i, s, &plan, budget, &mut *send)?,
                    };
                    if !more {
                        return Ok(());
                    }
                }
                Ok(())
            },
            |item| {
                match item {
                    Item::Missing(n) => w.push_missing(n, plan.fill).map_err(output)?,
                    Item::Block(b, bytes) => {
                        w.push_prepared(b).map_err(output)?;
                        progress.advance(bytes);
                    }
                }
                Ok(())
            },
        )?;
        w.finish().map_err(output)?;
        Ok(())
    }

    /// Send input `i`'s prepared blocks; false when the writer stopped.
    ///
    /// Blocks are 1/16 of the budget, 1/32 when reindexed: reindexing expands a block
    /// about fourfold while it is prepared, a prepared block waits in the pipeline and
    /// another is being written, and the writers hold back less than a shard (1/16) per
    /// array. Larger blocks keep parallel compression busy (more chunks per write).
    fn read_blocks(&self, i: usize, s: &MatSource<'_>, plan: &OutPlan, budget: u64, send: &mut dyn FnMut(Item) -> bool) -> Result<bool> {
        let fraction = if self.reindexed(i) { 32 } else { 16 };
        let per = ((budget / fraction) / matrix::row_bytes(s).max(1)).max(1);
        let n = s.n_rows();
        let mut start = 0;
        while start < n {
            let end = (start + per).min(n);
            let b = s.read_block(start, end, budget / 16).at(s.store)?;
            let b = plan.prepare(b, self.re_of(i), self.n_cols).at(s.store)?;
            // Progress in stored bytes, the unit of the totals.
            let bytes = s.data_bytes() * (end - start) / n.max(1);
            if !send(Item::Block(b, bytes)) {
                return Ok(false);
            }
            start = end;
        }
        Ok(true)
    }
}
