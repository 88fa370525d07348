//! `--virtual`: matrices of an h5ad output as HDF5 virtual datasets over the inputs'
//! own arrays, when no value needs to change (same dtype, same columns, same sparse
//! format along the axis). Sparse matrices map `data` and `indices` and get a real
//! `indptr` (one task shifts the inputs' offsets); dense ones map whole rows. An
//! element that cannot be mapped is copied as usual, and the report says why.

use crate::job::{VirtualElement, VirtualPart};
use crate::matrix::{MatKind, MatSource};
use crate::options::{Axis, ConcatOptions};
use crate::stack::Stack;
use crate::Result;
use adcat_format::layout::Purpose;
use adcat_format::sparse::SparseFormat;
use adcat_format::stream::Appender;
use adcat_format::Encoding;
use adcat_store::{join_path, AttrValue, DType, Physical, SourceName, Store, VirtualSource};

/// How a virtual output records its inputs' files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VirtualPaths {
    /// Relative when the input lies beside the output (or below its directory), so the
    /// set can move together; absolute otherwise.
    #[default]
    Auto,
    /// Relative to the output's directory (`..` where needed).
    Relative,
    /// Absolute.
    Absolute,
}

impl VirtualPaths {
    fn name(self) -> SourceName {
        match self {
            VirtualPaths::Auto => SourceName::Beside,
            VirtualPaths::Relative => SourceName::Relative,
            VirtualPaths::Absolute => SourceName::Absolute,
        }
    }
}

/// What planning did with a matrix under `--virtual`.
pub(crate) enum Mapped {
    /// Mapped; a sparse matrix's `indptr` is left to this element's task.
    Yes(Option<VirtualElement>),
    /// Not mappable, for this reason: copy it.
    No(String),
}

/// Why input `i` of `st` cannot be mapped into an output of `dtype`, if it cannot.
fn blocker(st: &Stack<'_>, i: usize, dtype: DType, sparse: bool, opts: &ConcatOptions) -> Result<Option<String>> {
    let Some(s) = &st.srcs[i] else {
        return Ok(Some(format!("input {} lacks it (filled)", i + 1)));
    };
    let name = s.store.location();
    if st.reindexed(i) {
        return Ok(Some(format!("{name} needs reindexing (its var differs from the output's)")));
    }
    if s.dtype() != dtype {
        return Ok(Some(format!("{name} holds {}, the output {dtype}", s.dtype())));
    }
    match (&s.kind, sparse) {
        (MatKind::Sparse(m), true) if m.format == SparseFormat::Csr && !s.needs_transpose() => {
            if opts.write.compact_indices {
                return Ok(Some("--compact-indices changes the indices' type".into()));
            }
        }
        (MatKind::Dense(_), false) => {}
        _ => return Ok(Some(format!("{name} stores it {} (the output is {})", if s.is_sparse() { "in another sparse format" } else { "dense" }, if sparse { "CSR" } else { "dense" }))),
    }
    for part in parts(s) {
        if s.store.physical(&part)?.is_none() {
            return Ok(Some(format!("{name} is not an HDF5 file read as stored (zarr, a selection or a legacy layout)")));
        }
    }
    Ok(None)
}

/// The arrays of `s` a virtual output maps.
fn parts(s: &MatSource<'_>) -> Vec<String> {
    if s.is_sparse() {
        vec![join_path(&s.path, "data"), join_path(&s.path, "indices")]
    } else {
        vec![s.path.clone()]
    }
}

/// Map the matrix `st` into `out_path` of `out` if every input allows it.
pub(crate) fn plan(st: &Stack<'_>, out: &dyn Store, out_path: &str, dtype: DType, sparse: bool, opts: &ConcatOptions) -> Result<Mapped> {
    let Some(paths) = opts.virtual_paths else { return Ok(Mapped::No("not asked".into())) };
    if opts.axis != Axis::Obs {
        return Ok(Mapped::No("a concatenation along var".into()));
    }
    for i in 0..st.srcs.len() {
        if let Some(why) = blocker(st, i, dtype, sparse, opts)? {
            return Ok(Mapped::No(why));
        }
    }
    let srcs: Vec<&MatSource<'_>> = st.srcs.iter().flatten().collect();
    if sparse {
        return sparse_plan(&srcs, out, out_path, dtype, st.n_cols, paths, opts).map(|e| Mapped::Yes(Some(e)));
    }
    let sources = sources_of(&srcs, |s| s.path.clone(), |s| s.shape[0], paths)?;
    let total: u64 = srcs.iter().map(|s| s.shape[0]).sum();
    out.create_virtual(out_path, dtype, &[total, st.n_cols], &sources)?;
    out.set_attrs(out_path, &Encoding::Array.attrs())?;
    Ok(Mapped::Yes(None))
}

/// Each input's array at `path(s)` of `len(s)` rows, one after the other.
fn sources_of(srcs: &[&MatSource<'_>], path: impl Fn(&MatSource<'_>) -> String, len: impl Fn(&MatSource<'_>) -> u64, paths: VirtualPaths) -> Result<Vec<VirtualSource>> {
    let mut at = 0;
    let mut out = vec![];
    for s in srcs {
        let p = path(s);
        let Some(Physical { file, path: real }) = s.store.physical(&p)? else { continue };
        let shape = s.store.array_meta(&p)?.shape;
        let rows = len(s);
        out.push(VirtualSource { file: file.to_string_lossy().into_owned(), name: paths.name(), path: real, shape, rows, at, present: true });
        at += rows;
    }
    Ok(out)
}

fn sparse_plan(srcs: &[&MatSource<'_>], out: &dyn Store, out_path: &str, dtype: DType, n_cols: u64, paths: VirtualPaths, opts: &ConcatOptions) -> Result<VirtualElement> {
    let nnz = |s: &MatSource<'_>| s.nnz();
    let index_dtype = match srcs.first().map(|s| &s.kind) {
        Some(MatKind::Sparse(m)) => m.indices_dtype,
        _ => DType::I32,
    };
    let total: u64 = srcs.iter().map(|s| s.shape[0]).sum();
    let total_nnz: u64 = srcs.iter().map(|s| nnz(s)).sum();
    out.create_group(out_path)?;
    let mut attrs = Encoding::Csr.attrs();
    attrs.insert("shape".into(), AttrValue::Ints(vec![total as i64, n_cols as i64]));
    out.set_attrs(out_path, &attrs)?;
    let data = sources_of(srcs, |s| join_path(&s.path, "data"), nnz, paths)?;
    out.create_virtual(&join_path(out_path, "data"), dtype, &[total_nnz], &data)?;
    let indices = sources_of(srcs, |s| join_path(&s.path, "indices"), nnz, paths)?;
    out.create_virtual(&join_path(out_path, "indices"), index_dtype, &[total_nnz], &indices)?;
    let indptr_dtype = if total_nnz > i32::MAX as u64 { DType::I64 } else { DType::I32 };
    Appender::create(out, &join_path(out_path, "indptr"), indptr_dtype, &[total + 1], Purpose::SparsePart, &opts.write)?;
    let parts = srcs
        .iter()
        .enumerate()
        .map(|(input, s)| VirtualPart { input, path: s.path.clone(), rows: s.shape[0], nnz: nnz(s) })
        .collect();
    Ok(VirtualElement { path: out_path.to_owned(), parts, indptr_dtype })
}
