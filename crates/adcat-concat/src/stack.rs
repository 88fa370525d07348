//! Planning one matrix element (X, a layer, an obsm array) stacked along the
//! concatenation axis: the output dtype and size from the inputs' metadata, the element
//! created in the output, and its tasks (run by `crate::job`).

use crate::index::Reindexer;
use crate::job::{Columns, Element, MatrixElement, MatrixSource};
use crate::matrix::{self, fill_dtype, MatSource, MatWriter, OutPlan};
use crate::options::{Axis, ConcatOptions, Report};
use crate::{ConcatError, Result};
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

    pub(crate) fn reindexed(&self, i: usize) -> bool {
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

/// Plan one matrix element whose inputs may be missing (outer join): create it in the
/// output with its final shape, dtype and layout, and add it with its tasks to the job.
pub(crate) fn concat_matrix(st: &Stack<'_>, columns: Columns, out: &dyn Store, out_path: &str, opts: &ConcatOptions, report: &mut Report) -> Result<()> {
    let sparse = st.srcs.iter().flatten().any(MatSource::is_sparse);
    // anndata passes fill_value to outer joins only: an inner join's holes (a fixed
    // --var-names list) take the default fill.
    let fill = opts.fill_value.filter(|_| opts.join == crate::Join::Outer).unwrap_or(if sparse { 0.0 } else { f64::NAN });
    let (dtype, max_nnz) = st.dtype_and_nnz(sparse, fill, out_path)?;
    let plan = OutPlan { sparse, dtype, fill };
    match crate::vds::plan(st, out, out_path, dtype, sparse, opts).map_err(output)? {
        crate::vds::Mapped::Yes(el) => {
            report.note(out_path, format!("virtual: {} mapped from the inputs' arrays (no data copied)", st.describe(&plan, false, 0)));
            if let Some(el) = el {
                report.job.push(Element::Virtual(el));
            }
            return Ok(());
        }
        crate::vds::Mapped::No(why) if opts.virtual_paths.is_some() => {
            report.warnings.push(format!("/{}: copied, not virtual: {why}", out_path.trim_start_matches('/')));
        }
        crate::vds::Mapped::No(_) => {}
    }
    let transposed = opts.axis == Axis::Var;
    let total: u64 = st.rows.iter().sum();
    MatWriter::create(out, out_path, plan, total, st.n_cols, max_nnz, transposed, &opts.write).map_err(output)?;
    report.note(out_path, st.describe(&plan, transposed, max_nnz));
    let sources = (0..st.srcs.len()).map(|i| st.source(i, opts.write.max_memory)).collect();
    let mut el = MatrixElement { path: out_path.to_owned(), sparse, transposed, dtype, fill, n_cols: st.n_cols, sources, columns, max_nnz, task_rows: total };
    el.task_rows = st.task_rows(&el, out, opts.task_bytes()).map_err(output)?;
    report.job.push(Element::Matrix(el));
    Ok(())
}

impl Stack<'_> {
    /// Input `i` as a source of the plan. Blocks are 1/16 of the budget, 1/32 when
    /// reindexed: reindexing expands a block about fourfold while it is prepared, a
    /// prepared block waits in the pipeline and another is being written, and the writers
    /// hold back less than a shard (1/16) per array.
    fn source(&self, i: usize, budget: u64) -> MatrixSource {
        let fraction = if self.reindexed(i) { 32 } else { 16 };
        let s = self.srcs[i].as_ref();
        let per_row = s.map_or(self.n_cols * 8, matrix::row_bytes);
        MatrixSource { input: i, path: s.map(|s| s.path.clone()), rows: self.rows[i], block_rows: ((budget / fraction) / per_row.max(1)).max(1) }
    }

    /// Rows per task: about `task_bytes` of output, in whole write units. Elements read
    /// across their storage axis (a sparse input stored along the other axis, a dense
    /// element concatenated along var) are one task: each task would repeat a pass over
    /// the whole input, or share the output's chunks.
    fn task_rows(&self, el: &MatrixElement, out: &dyn Store, task_bytes: u64) -> Result<u64> {
        let n = el.n_rows();
        if self.srcs.iter().flatten().any(MatSource::needs_transpose) || (el.transposed && !el.sparse) {
            return Ok(n.max(1));
        }
        let row_bytes = if el.sparse {
            (el.max_nnz / n.max(1)) * (el.dtype.itemsize() as u64 + 4) + 8
        } else {
            el.n_cols.max(1) * el.dtype.itemsize() as u64
        };
        let rows = (task_bytes / row_bytes.max(1)).max(1);
        if el.sparse {
            return Ok(rows);
        }
        let m = out.array_meta(&el.path)?;
        let unit = m.shards.as_ref().or(m.chunks.as_ref()).and_then(|c| c.first().copied()).unwrap_or(1).max(1);
        Ok((rows / unit).max(1) * unit)
    }
}
