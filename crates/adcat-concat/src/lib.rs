//! # adcat-concat
//!
//! Out-of-core `anndata.concat`: plans the alignment (off-axis join, reindexers, merge
//! strategies, dtype promotion) from metadata and indexes, then streams every large element
//! in row blocks sized from the memory budget. Works against [`adcat_store::Store`] only,
//! so inputs and output may be any mix of HDF5 and Zarr.

// Index-based loops over CSR structures read more clearly than iterator chains here.
#![allow(clippy::needless_range_loop)]

pub mod awkward;
pub mod frames;
pub mod index;
pub mod matrix;
pub mod merge;
pub mod natsort;
mod offaxis;
mod pipe;
pub mod plan;
mod transpose;

pub use index::Join;
pub use merge::Strategy;

use adcat_format::frame::{read_index, write_dict, DataFrame};
use adcat_format::layout::WriteOptions;
use adcat_format::{detect, Encoding, FormatError, Progress};
use adcat_store::{join_path, NodeKind, Store, StoreError};
use frames::{concat_frames, FrameSource};
use index::{duplicates, merge_indices, Reindexer};
use matrix::{fill_dtype, MatSource, MatWriter, OutPlan};
use merge::{merge_nested, Tree};

/// The axis along which inputs are stacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Axis {
    /// Stack cells (`axis=0`).
    #[default]
    Obs,
    /// Stack genes (`axis=1`).
    Var,
}

impl Axis {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Axis::Obs => ("obs", "var"),
            Axis::Var => ("var", "obs"),
        }
    }
}

/// Options of a concatenation, mirroring `anndata.concat`.
#[derive(Debug, Clone, Default)]
pub struct ConcatOptions {
    /// Concatenation axis.
    pub axis: Axis,
    /// Off-axis join.
    pub join: Join,
    /// Strategy for off-axis annotations (var columns, varm, varp).
    pub merge: Option<Strategy>,
    /// Strategy for `uns`.
    pub uns_merge: Option<Strategy>,
    /// Name of a categorical batch column on the concatenation-axis annotation.
    pub label: Option<String>,
    /// Batch names (default "0", "1", ...).
    pub keys: Option<Vec<String>>,
    /// Separator to make concatenation-axis names unique: `name + sep + key`.
    pub index_unique: Option<String>,
    /// Fill for entries missing after an outer join (default: 0 sparse, NaN dense).
    pub fill_value: Option<f64>,
    /// Concatenate obsp (varp for axis=var) as block-diagonal matrices.
    pub pairwise: bool,
    /// Output layout and memory budget.
    pub write: WriteOptions,
    /// Plan only: create every output element with its final shape and type, read only
    /// metadata, indexes and off-axis tables, move no data (see [`plan::plan`]).
    pub dry_run: bool,
}

/// An error of the concatenation. Messages name the file and element path.
#[derive(Debug, thiserror::Error)]
pub enum ConcatError {
    /// Reading an input failed or the input is invalid.
    #[error("{file}: {source}")]
    Input {
        /// The input's location.
        file: String,
        /// What went wrong.
        source: FormatError,
    },
    /// Writing the output failed.
    #[error("output: {0}")]
    Output(FormatError),
    /// An element cannot be concatenated (the path is the element's).
    #[error("/{path}: {reason}")]
    Unsupported {
        /// Element path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The options are inconsistent with the inputs.
    #[error("{0}")]
    Options(String),
    /// An error not attributed to a file yet (converted at the call sites).
    #[error(transparent)]
    Format(#[from] FormatError),
}

impl From<StoreError> for ConcatError {
    fn from(e: StoreError) -> Self {
        ConcatError::Format(FormatError::Store(e))
    }
}

impl ConcatError {
    /// Shorthand for [`ConcatError::Unsupported`].
    pub fn unsupported(path: &str, reason: impl Into<String>) -> Self {
        ConcatError::Unsupported { path: path.trim_start_matches('/').to_owned(), reason: reason.into() }
    }
}

/// Result alias.
pub type Result<T, E = ConcatError> = std::result::Result<T, E>;

trait At<T> {
    fn at(self, store: &dyn Store) -> Result<T>;
}

impl<T> At<T> for Result<T> {
    fn at(self, store: &dyn Store) -> Result<T> {
        self.map_err(|e| match e {
            ConcatError::Format(source) => ConcatError::Input { file: store.location().to_owned(), source },
            other => other,
        })
    }
}
impl<T> At<T> for std::result::Result<T, FormatError> {
    fn at(self, store: &dyn Store) -> Result<T> {
        self.map_err(|source| ConcatError::Input { file: store.location().to_owned(), source })
    }
}
impl<T> At<T> for std::result::Result<T, StoreError> {
    fn at(self, store: &dyn Store) -> Result<T> {
        self.map_err(|e| ConcatError::Input { file: store.location().to_owned(), source: FormatError::Store(e) })
    }
}

/// What a concatenation did, for the caller to report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Output shape (obs, var).
    pub shape: (u64, u64),
    /// Warnings (as anndata would emit them).
    pub warnings: Vec<String>,
    /// How each element is combined: `(element path, decision)`, in the order made.
    pub notes: Vec<(String, String)>,
}

impl Report {
    fn note(&mut self, path: &str, what: impl Into<String>) {
        self.notes.push((format!("/{}", path.trim_start_matches('/')), what.into()));
    }
}

/// Where the parts of an AnnData (or of its `raw`) live.
#[derive(Debug, Clone)]
struct Layout {
    prefix: &'static str,
    raw: bool,
}

impl Layout {
    fn p(&self, name: &str) -> String {
        join_path(self.prefix, name)
    }
}

/// One input: its off-axis names (held in memory) and where its concatenation-axis
/// names live (streamed, never held whole).
struct Input<'a> {
    store: &'a dyn Store,
    /// Number of entries along the concatenation axis.
    n_ax: u64,
    /// The index element of the concatenation-axis dataframe.
    ax_index: String,
    /// Off-axis names (shared between inputs with the same names).
    off: std::sync::Arc<Vec<String>>,
}

/// The element path of a dataframe's index.
fn index_path(store: &dyn Store, df: &str) -> Result<String> {
    let key = store
        .attr(df, "_index")
        .at(store)?
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(|| ConcatError::Input { file: store.location().into(), source: FormatError::invalid(df, "dataframe without an `_index` attribute") })?;
    Ok(join_path(df, &key))
}

/// Build the inputs of one part: `ax_df`/`off_df` are the dataframes along and across.
fn inputs_for<'a>(stores: &[&'a dyn Store], ax_df: &str, off_df: &str) -> Result<Vec<Input<'a>>> {
    let mut out: Vec<Input<'a>> = Vec::with_capacity(stores.len());
    for s in stores {
        let ax_index = index_path(*s, ax_df)?;
        let n_ax = frames::element_len(*s, &ax_index).at(*s)?;
        let names = read_index(*s, off_df).at(*s)?;
        // Atlases often share one gene list: keep a single copy.
        let off = match out.iter().rev().find(|i| *i.off == names) {
            Some(prev) => prev.off.clone(),
            None => std::sync::Arc::new(names),
        };
        out.push(Input { store: *s, n_ax, ax_index, off });
    }
    Ok(out)
}

/// Concatenate `inputs` into the empty store `out`.
pub fn concat(inputs: &[&dyn Store], out: &dyn Store, opts: &ConcatOptions, progress: &dyn Progress) -> Result<Report> {
    // Legacy layouts (anndata < 0.8) are read as anndata reads them.
    let views: Vec<adcat_format::LegacyView<'_>> = inputs.iter().map(|s| adcat_format::LegacyView::new(*s)).collect();
    let inputs: Vec<&dyn Store> = views.iter().map(|v| v as &dyn Store).collect();
    // Every error the output raises is marked, so a failed write (a full disk) is
    // reported against the output whichever code path met it.
    let tagged = adcat_store::tagged::OutputStore(out);
    concat_tagged(&inputs, &tagged, opts, progress).map_err(attribute_output)
}

/// Errors of the output store become [`ConcatError::Output`].
fn attribute_output(e: ConcatError) -> ConcatError {
    match e {
        ConcatError::Format(f) | ConcatError::Input { source: f, .. } if f.is_output() => ConcatError::Output(f),
        e => e,
    }
}

fn concat_tagged(inputs: &[&dyn Store], out: &dyn Store, opts: &ConcatOptions, progress: &dyn Progress) -> Result<Report> {
    if inputs.is_empty() {
        return Err(ConcatError::Options("no objects to concatenate".into()));
    }
    let keys: Vec<String> = match &opts.keys {
        // pandas takes the keys as the label's categories: extra keys become unused
        // categories, fewer than the inputs cannot label them, duplicates are invalid.
        Some(k) if k.len() < inputs.len() => {
            return Err(ConcatError::Options(format!("{} keys given for {} inputs; give one key per input", k.len(), inputs.len())));
        }
        Some(k) => k.clone(),
        None => (0..inputs.len()).map(|i| i.to_string()).collect(),
    };
    if let Some(d) = index::duplicates(&keys).first() {
        return Err(ConcatError::Options(format!("--keys must be unique (label categories), {d:?} repeats; rename one of them")));
    }
    let mut report = Report::default();
    for s in inputs {
        let root = detect(*s, "").at(*s)?;
        if root.encoding != Encoding::AnnData {
            return Err(ConcatError::Input { file: s.location().into(), source: FormatError::invalid("", "not an AnnData store") });
        }
    }
    let (ax, off) = opts.axis.names();
    let ins = inputs_for(inputs, ax, off)?;
    progress.total_bytes(inputs.iter().map(|s| adcat_format::copy::data_bytes(*s, "").unwrap_or(0)).sum());
    adcat_format::write_root(out).map_err(ConcatError::Output)?;
    let main = Layout { prefix: "", raw: false };
    let shape = concat_part(&ins, &main, &keys, opts, out, progress, &mut report)?;
    report.shape = shape;
    // raw: concatenated when every input has it (anndata warns and drops it otherwise).
    let has_raw: Vec<bool> = ins
        .iter()
        .map(|i| Ok(i.store.node_kind("raw").at(i.store)? == Some(NodeKind::Group) && detect(i.store, "raw").at(i.store)?.encoding == Encoding::Raw))
        .collect::<Result<_>>()?;
    if has_raw.iter().all(|&b| b) {
        // raw has no obs: its obs names are the main ones.
        let (rax, roff) = if opts.axis == Axis::Obs { ("obs", "raw/var") } else { ("raw/var", "obs") };
        let raw_ins = inputs_for(inputs, rax, roff)?;
        out.create_group("raw")?;
        out.set_attrs("raw", &Encoding::Raw.attrs())?;
        let raw_opts = ConcatOptions { merge: None, uns_merge: None, pairwise: false, ..opts.clone() };
        report.note("raw", "concatenated (every input has raw)");
        concat_part(&raw_ins, &Layout { prefix: "raw", raw: true }, &keys, &raw_opts, out, progress, &mut report)?;
    } else if has_raw.iter().any(|&b| b) {
        report.note("raw", "dropped: not in every input");
        report.warnings.push("Only some AnnData objects have `.raw` attribute, not concatenating `.raw` attributes.".into());
    }
    out.flush()?;
    Ok(report)
}

fn concat_part(
    ins: &[Input<'_>],
    lay: &Layout,
    keys: &[String],
    opts: &ConcatOptions,
    out: &dyn Store,
    progress: &dyn Progress,
    report: &mut Report,
) -> Result<(u64, u64)> {
    let (ax, off) = opts.axis.names();
    let budget = opts.write.max_memory;
    // Concatenation-axis names: streamed from each input's index, suffixed by key.
    let index: Vec<frames::IndexPart<'_>> = ins
        .iter()
        .enumerate()
        .map(|(i, inp)| frames::IndexPart {
            store: inp.store,
            path: inp.ax_index.clone(),
            n: inp.n_ax,
            suffix: opts.index_unique.as_ref().map(|sep| format!("{sep}{}", keys[i])).unwrap_or_default(),
        })
        .collect();
    // Off-axis index and reindexers.
    let off_idx: Vec<&[String]> = ins.iter().map(|i| i.off.as_slice()).collect();
    let new_off = merge_indices(&off_idx, opts.join);
    let mut reindexers = vec![];
    for (inp, idx) in ins.iter().zip(&off_idx) {
        let re = Reindexer::new(idx, &new_off);
        if !re.identity {
            let d = duplicates(idx);
            if !d.is_empty() {
                return Err(ConcatError::Input {
                    file: inp.store.location().into(),
                    source: FormatError::invalid(
                        &lay.p(off),
                        format!(
                            "duplicate names ({}) make the {} join ambiguous; make them unique first (anndata: var_names_make_unique())",
                            d.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                            format!("{:?}", opts.join).to_lowercase()
                        ),
                    ),
                });
            }
        }
        reindexers.push(re);
    }
    if new_off.is_empty() && opts.join == Join::Inner && off_idx.iter().any(|v| !v.is_empty()) {
        report.warnings.push(format!("the inner join of {off} names is empty"));
    }
    let n_re = reindexers.iter().filter(|r| !r.identity).count();
    report.note(
        &lay.p(off),
        format!(
            "{:?} join of {} inputs' {off} names: {} names; {}",
            opts.join,
            ins.len(),
            new_off.len(),
            if n_re == 0 { "no input needs reindexing".to_owned() } else { format!("{n_re} of {} inputs reindexed", ins.len()) }
        )
        .to_lowercase(),
    );
    let block_rows = |row_bytes: u64| ((budget / 16) / row_bytes.max(1)).max(1);

    // 1. Concatenation-axis annotation (index only for raw).
    if !lay.raw || opts.axis == Axis::Var {
        let frames: Vec<FrameSource<'_>> = ins
            .iter()
            .map(|i| {
                let path = lay.p(ax);
                let path = if lay.raw && ax == "obs" { "obs".to_owned() } else { path };
                FrameSource::open(i.store, &path, i.n_ax).at(i.store)
            })
            .collect::<Result<_>>()?;
        let frames = if lay.raw && ax == "obs" { frames.into_iter().map(|f| FrameSource { columns: vec![], ..f }).collect() } else { frames };
        let label = opts.label.as_deref().map(|l| (l, keys));
        progress.element(&lay.p(ax));
        let frame_bytes: u64 = frames.iter().map(|f| adcat_format::copy::data_bytes(f.store, &f.path).unwrap_or(0)).sum();
        progress.element_total(frame_bytes);
        let dropped = concat_frames(&frames, opts.join, &index, label, out, &lay.p(ax), &opts.write, block_rows(64), opts.dry_run)?;
        progress.advance(frame_bytes);
        for c in dropped {
            report.note(&join_path(&lay.p(ax), &c), "dropped: not in every input (inner join)");
        }
        if let Some(l) = &opts.label {
            report.note(&join_path(&lay.p(ax), l), format!("label: categorical of the input keys {keys:?}"));
        }
    }
    // 2. Off-axis annotation: reindexed and merged in memory.
    {
        let merged = if lay.raw && off == "obs" {
            // raw's obs is not stored.
            None
        } else {
            let keys: Vec<String> = ins
                .iter()
                .map(|i| Ok(i.store.attr(&lay.p(off), "_index").at(i.store)?.and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "_index".into())))
                .collect::<Result<_>>()?;
            let key = frames::common_name(keys.into_iter());
            if opts.merge.is_none() {
                // Without a strategy only the index survives: no need to read the columns.
                Some(frames::merge_frames(&[], &[], &new_off, &key, None))
            } else {
                let frames: Vec<DataFrame> = ins
                    .iter()
                    .map(|i| DataFrame::read(i.store, &lay.p(off)).at(i.store))
                    .collect::<Result<_>>()?;
                Some(frames::merge_frames(&frames, &reindexers, &new_off, &key, opts.merge))
            }
        };
        if let Some(df) = merged {
            df.write(out, &lay.p(off), &opts.write).map_err(ConcatError::Output)?;
        }
    }

    // 3. X and layers (X is layers[None] in anndata 0.13).
    let mut mats: Vec<(String, Vec<Option<String>>)> = vec![];
    let x_paths: Vec<Option<String>> = ins
        .iter()
        .map(|i| Ok(i.store.exists(&lay.p("X")).at(i.store)?.then(|| lay.p("X"))))
        .collect::<Result<_>>()?;
    let any_x = x_paths.iter().any(Option::is_some);
    let all_x = x_paths.iter().all(Option::is_some);
    if all_x || (any_x && opts.join == Join::Outer) {
        mats.push((lay.p("X"), x_paths));
    } else if any_x {
        report.note(&lay.p("X"), "dropped: not in every input (inner join)");
    }
    if !lay.raw {
        let layer_keys: Vec<Vec<String>> = ins.iter().map(|i| list_or_empty(i.store, "layers")).collect::<Result<_>>()?;
        let kept = join_keys(&layer_keys, opts.join);
        for k in join_keys(&layer_keys, Join::Outer).iter().filter(|k| !kept.contains(k)) {
            report.note(&join_path("layers", k), "dropped: not in every input (inner join)");
        }
        for k in kept {
            let p = join_path("layers", &k);
            let per = layer_keys.iter().map(|ks| ks.contains(&k).then(|| p.clone())).collect();
            mats.push((p, per));
        }
        write_dict(out, "layers").map_err(ConcatError::Output)?;
    }
    let n_total: u64 = ins.iter().map(|i| i.n_ax).sum();
    for (out_path, per) in &mats {
        progress.element(out_path);
        if concat_awkward_layer(ins, per, &reindexers, new_off.len() as u64, out, out_path, opts, report)? {
            continue;
        }
        let srcs: Vec<Option<MatSource<'_>>> = ins
            .iter()
            .zip(per)
            .map(|(i, p)| p.as_ref().map(|p| MatSource::open(i.store, p, opts.axis == Axis::Var).at(i.store)).transpose())
            .collect::<Result<_>>()?;
        for (i, s) in ins.iter().zip(&srcs) {
            if let Some(s) = s {
                if s.n_rows() != i.n_ax || s.n_cols() != (i.off.len() as u64) {
                    return Err(ConcatError::Input {
                        file: i.store.location().into(),
                        source: FormatError::invalid(out_path, format!("shape {:?} disagrees with {ax} ({}) x {off} ({})", s.shape, i.n_ax, (i.off.len() as u64))),
                    });
                }
            }
        }
        let rows: Vec<u64> = ins.iter().map(|i| i.n_ax).collect();
        concat_matrix(&srcs, &rows, Some(&reindexers), new_off.len() as u64, out, out_path, opts, progress, report)?;
    }

    // 4. Concatenation-axis mapping (obsm), 5. off-axis mapping and pairwise (varm, varp).
    if !lay.raw {
        let am = format!("{ax}m");
        concat_axis_mapping(ins, &am, &index, opts, out, progress, report)?;
        let ap = format!("{ax}p");
        write_dict(out, &ap).map_err(ConcatError::Output)?;
        if opts.pairwise && opts.dry_run {
            report.note(&ap, "pairwise: each key block-diagonal over the inputs (keys in every input)");
        } else if opts.pairwise {
            offaxis::pairwise(ins.iter().map(|i| (i.store, i.n_ax)).collect(), &ap, opts, out)?;
        } else {
            report.note(&ap, "not concatenated (pass --pairwise)");
        }
        offaxis::merge_mapping(ins.iter().map(|i| i.store).collect(), &format!("{off}m"), &reindexers, &new_off, false, opts, out)?;
        offaxis::merge_mapping(ins.iter().map(|i| i.store).collect(), &format!("{off}p"), &reindexers, &new_off, true, opts, out)?;
        for m in [format!("{off}m"), format!("{off}p")] {
            let kept = list_or_empty(out, &m)?;
            let how = match opts.merge {
                None => "no --merge: off-axis mappings are not kept".to_owned(),
                Some(s) => format!("{} merge: {} key(s) kept {kept:?}", format!("{s:?}").to_lowercase(), kept.len()),
            };
            report.note(&m, how);
        }
        // 6. uns.
        write_dict(out, "uns").map_err(ConcatError::Output)?;
        if let Some(s) = opts.uns_merge {
            let maps: Vec<Vec<(String, Tree)>> = ins
                .iter()
                .map(|i| Ok(if i.store.exists("uns").at(i.store)? { Tree::read(i.store, "uns").at(i.store)?.children().to_vec() } else { vec![] }))
                .collect::<Result<_>>()?;
            let merged = merge_nested(&maps, s);
            report.note("uns", format!("{s:?} merge: {} top-level keys kept", merged.len()).to_lowercase());
            for (k, v) in merged {
                v.write(out, &join_path("uns", &k), &opts.write)?;
            }
        } else {
            report.note("uns", "empty (no --uns-merge)");
        }
    } else {
        let om = lay.p(&format!("{off}m"));
        if off == "var" {
            write_dict(out, &om).map_err(ConcatError::Output)?;
        }
    }
    let n_off = new_off.len() as u64;
    Ok(if opts.axis == Axis::Obs { (n_total, n_off) } else { (n_off, n_total) })
}

fn list_or_empty(store: &dyn Store, path: &str) -> Result<Vec<String>> {
    if store.node_kind(path).at(store)? == Some(NodeKind::Group) { store.list(path).at(store) } else { Ok(vec![]) }
}

/// anndata's `intersect_keys` (OrderedSet `&`: the last input's order) and
/// `union_keys` (order of first appearance).
pub(crate) fn join_keys(sets: &[Vec<String>], join: Join) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    match join {
        Join::Inner => {
            if let Some(last) = sets.last() {
                for k in last {
                    if sets.iter().all(|s| s.contains(k)) && !out.contains(k) {
                        out.push(k.clone());
                    }
                }
            }
        }
        Join::Outer => {
            for s in sets {
                for k in s {
                    if !out.contains(k) {
                        out.push(k.clone());
                    }
                }
            }
        }
    }
    out
}

/// Concatenate one matrix element whose inputs may be missing (outer join).
#[allow(clippy::too_many_arguments)]
fn concat_matrix(
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
    let sparse = srcs.iter().flatten().any(MatSource::is_sparse);
    let fill = opts.fill_value.unwrap_or(if sparse { 0.0 } else { f64::NAN });
    let re_of = |i: usize| reindexers.map(|r| &r[i]);
    // Output dtype: numpy promotion over inputs. anndata reindexes with one fill for the
    // element (0 when any input is sparse, else NaN); an input with holes is promoted with
    // the fill's dtype when the fill is not 0, and a missing input contributes a block of
    // the fill (scipy's empty `csr_matrix(shape)` is float64).
    let mut dtype: Option<adcat_store::DType> = None;
    let mut max_nnz = 0u64;
    for (i, s) in srcs.iter().enumerate() {
        let (d, nnz) = match s {
            Some(s) => {
                let holes = re_of(i).is_some_and(|r| !r.identity && r.n_missing() > 0);
                // Dense padding goes through np.where with asarray(fill): it promotes even
                // for a fill of 0; sparse padding with 0 stores nothing and keeps the dtype.
                let promotes = holes && (fill != 0.0 || !sparse);
                let d = if promotes { s.dtype().promote(fill_dtype(fill)).unwrap_or(s.dtype()) } else { s.dtype() };
                let extra = if holes && fill != 0.0 { rows[i] * re_of(i).map_or(0, |r| r.n_missing() as u64) } else { 0 };
                let nnz = if s.is_sparse() { s.nnz() + extra } else { rows[i] * n_cols };
                (d, nnz)
            }
            None => {
                let d = if sparse && fill == 0.0 { adcat_store::DType::F64 } else { fill_dtype(fill) };
                (d, if fill != 0.0 { rows[i] * n_cols } else { 0 })
            }
        };
        max_nnz += nnz;
        dtype = Some(match dtype {
            None => d,
            Some(p) => p.promote(d).ok_or_else(|| ConcatError::unsupported(out_path, format!("cannot combine {p} and {d}")))?,
        });
    }
    let dtype = dtype.unwrap_or(adcat_store::DType::F32);
    let plan = OutPlan { sparse, dtype, fill };
    let total: u64 = rows.iter().sum();
    let transposed = opts.axis == Axis::Var;
    let mut w = MatWriter::create(out, out_path, plan, total, n_cols, max_nnz, transposed, &opts.write).map_err(|e| match e {
        ConcatError::Format(f) => ConcatError::Output(f),
        o => o,
    })?;
    {
        let in_types: Vec<String> = srcs.iter().flatten().map(|s| s.dtype().to_string()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let n_re = srcs.iter().enumerate().filter(|(i, s)| s.is_some() && re_of(*i).is_some_and(|r| !r.identity)).count();
        let n_missing = srcs.iter().filter(|s| s.is_none()).count();
        let mut what = format!(
            "{} {dtype}, {} x {}",
            if sparse { if transposed { "csc_matrix" } else { "csr_matrix" } } else { "dense array" },
            if transposed { n_cols } else { total },
            if transposed { total } else { n_cols }
        );
        if in_types.len() > 1 || in_types.first().is_some_and(|t| *t != dtype.to_string()) {
            what.push_str(&format!(" (from {})", in_types.join(" + ")));
        }
        if sparse {
            what.push_str(&format!(", at most {max_nnz} stored entries"));
        }
        if n_re > 0 {
            what.push_str(&format!(", {n_re} input(s) reindexed"));
        }
        if n_missing > 0 {
            what.push_str(&format!(", {n_missing} input(s) without it filled with {fill}"));
        }
        report.note(out_path, what);
    }
    if opts.dry_run {
        return Ok(());
    }
    progress.element_total(srcs.iter().flatten().map(MatSource::data_bytes).sum());
    let budget = opts.write.max_memory;
    // Blocks are read and reindexed on a helper thread while this one encodes and writes
    // the previous block.
    #[allow(clippy::large_enum_variant)] // one item in flight at a time
    enum Item {
        Missing(u64),
        Block(matrix::Block, u64),
    }
    let output = |e: ConcatError| match e {
        ConcatError::Format(f) => ConcatError::Output(f),
        o => o,
    };
    pipe::pipeline(
        |send| {
            for (i, s) in srcs.iter().enumerate() {
                match s {
                    None => {
                        if !send(Item::Missing(rows[i])) {
                            return Ok(());
                        }
                    }
                    Some(s) => {
                        // Blocks of 1/16 of the budget, 1/32 when reindexed: reindexing
                        // expands a block about fourfold while it is prepared, a prepared
                        // block waits in the pipeline and another is being written, and
                        // the writers hold back less than a shard (1/16) per array. Larger
                        // blocks keep parallel compression busy (more chunks per write).
                        let reindexed = re_of(i).is_some_and(|r| !r.identity);
                        let fraction = if reindexed { 32 } else { 16 };
                        let per = ((budget / fraction) / matrix::row_bytes(s).max(1)).max(1);
                        let mut start = 0;
                        let n = s.n_rows();
                        while start < n {
                            let end = (start + per).min(n);
                            let b = s.read_block(start, end, budget / 16).at(s.store)?;
                            let b = plan.prepare(b, re_of(i), n_cols).at(s.store)?;
                            // Progress in stored bytes, the unit of the totals.
                            let bytes = s.data_bytes() * (end - start) / n.max(1);
                            if !send(Item::Block(b, bytes)) {
                                return Ok(());
                            }
                            start = end;
                        }
                    }
                }
            }
            Ok(())
        },
        |item| {
            match item {
                Item::Missing(n) => w.push_missing(n, fill).map_err(output)?,
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

/// Rows per block of an awkward buffer (1/256 of the budget in 8-byte values).
fn awkward_block(opts: &ConcatOptions) -> u64 {
    ((opts.write.max_memory / 16) / 16).max(1)
}

/// An awkward layer (anndata requires it regular along var): concatenated along obs
/// when every input has the same vars; a missing layer becomes rows of NaN, as in
/// anndata. Returns whether the layer was awkward.
#[allow(clippy::too_many_arguments)]
fn concat_awkward_layer(
    ins: &[Input<'_>],
    per: &[Option<String>],
    reindexers: &[Reindexer],
    width: u64,
    out: &dyn Store,
    out_path: &str,
    opts: &ConcatOptions,
    report: &mut Report,
) -> Result<bool> {
    let mut encs = vec![];
    for (i, p) in ins.iter().zip(per) {
        encs.push(match p {
            Some(p) => Some(detect(i.store, p).at(i.store)?.encoding),
            None => None,
        });
    }
    if !encs.iter().flatten().any(|e| *e == Encoding::Awkward) {
        return Ok(false);
    }
    if !encs.iter().flatten().all(|e| *e == Encoding::Awkward) {
        return Err(ConcatError::unsupported(out_path, "cannot concatenate an awkward array with other array types (anndata refuses too)"));
    }
    if opts.axis == Axis::Var || reindexers.iter().any(|r| !r.identity) {
        return Err(ConcatError::unsupported(
            out_path,
            "awkward layers concatenate only along obs and when every input has the same var names (anndata cannot reindex them either)",
        ));
    }
    let inputs: Vec<awkward::AwkInput<'_>> = ins
        .iter()
        .zip(per)
        .map(|(i, p)| {
            Ok(match p {
                Some(p) => awkward::AwkInput::Stored(awkward::AwkSource::open_rows(i.store, p, i.n_ax)?),
                None => awkward::AwkInput::Fill { n: i.n_ax, width },
            })
        })
        .collect::<Result<_>>()?;
    if opts.dry_run {
        report.note(out_path, "awkward array: concatenated along obs");
        return Ok(true);
    }
    awkward::concat(&inputs, opts.join, out, out_path, &opts.write, awkward_block(opts))?;
    Ok(true)
}

/// obsm (varm for axis=var): arrays get min (inner) / max (outer) width, dataframes a
/// column join; keys are intersected (inner) or united (outer).
fn concat_axis_mapping(
    ins: &[Input<'_>],
    am: &str,
    index: &[frames::IndexPart<'_>],
    opts: &ConcatOptions,
    out: &dyn Store,
    progress: &dyn Progress,
    report: &mut Report,
) -> Result<()> {
    write_dict(out, am).map_err(ConcatError::Output)?;
    let key_sets: Vec<Vec<String>> = ins.iter().map(|i| list_or_empty(i.store, am)).collect::<Result<_>>()?;
    let rows: Vec<u64> = ins.iter().map(|i| i.n_ax).collect();
    let kept = join_keys(&key_sets, opts.join);
    for k in join_keys(&key_sets, Join::Outer).iter().filter(|k| !kept.contains(k)) {
        report.note(&join_path(am, k), "dropped: not in every input (inner join)");
    }
    for k in kept {
        let p = join_path(am, &k);
        progress.element(&p);
        let mut encs = vec![];
        for (i, ks) in ins.iter().zip(&key_sets) {
            encs.push(if ks.contains(&k) { Some(detect(i.store, &p).at(i.store)?.encoding) } else { None });
        }
        let present: Vec<Encoding> = encs.iter().flatten().copied().collect();
        if present.iter().all(|e| *e == Encoding::DataFrame) {
            let frames: Vec<FrameSource<'_>> = ins
                .iter()
                .zip(&encs)
                .map(|(i, e)| {
                    if e.is_some() {
                        FrameSource::open(i.store, &p, i.n_ax).at(i.store)
                    } else {
                        Ok(FrameSource { store: i.store, path: p.clone(), n: i.n_ax, columns: vec![] })
                    }
                })
                .collect::<Result<_>>()?;
            for c in concat_frames(&frames, opts.join, index, None, out, &p, &opts.write, ((opts.write.max_memory / 16) / 64).max(1), opts.dry_run)? {
                report.note(&join_path(&p, &c), "dropped: not in every input (inner join)");
            }
            continue;
        }
        if present.contains(&Encoding::Awkward) {
            if !present.iter().all(|e| *e == Encoding::Awkward) {
                return Err(ConcatError::unsupported(&p, "cannot concatenate an awkward array with other array types (anndata refuses too)"));
            }
            let srcs: Vec<awkward::AwkInput<'_>> = ins
                .iter()
                .zip(&encs)
                .map(|(i, e)| Ok(if e.is_some() { awkward::AwkInput::Stored(awkward::AwkSource::open_rows(i.store, &p, i.n_ax)?) } else { awkward::AwkInput::Missing(i.n_ax) }))
                .collect::<Result<_>>()?;
            if opts.dry_run {
                report.note(&p, "awkward array: concatenated along its outer dimension");
                continue;
            }
            awkward::concat(&srcs, opts.join, out, &p, &opts.write, awkward_block(opts))?;
            continue;
        }
        if present.iter().any(|e| !matches!(e, Encoding::Array | Encoding::Csr | Encoding::Csc)) {
            let names: Vec<String> = present.iter().map(|e| e.to_string()).collect();
            return Err(ConcatError::unsupported(&p, format!("cannot concatenate elements of encodings {}", names.join(", "))));
        }
        let srcs: Vec<Option<MatSource<'_>>> = ins
            .iter()
            .zip(&encs)
            .map(|(i, e)| e.map(|_| MatSource::open(i.store, &p, false).at(i.store)).transpose())
            .collect::<Result<_>>()?;
        let widths: Vec<u64> = srcs.iter().flatten().map(MatSource::n_cols).collect();
        let width = match opts.join {
            Join::Inner => widths.iter().copied().min().unwrap_or(0),
            Join::Outer => widths.iter().copied().max().unwrap_or(0),
        };
        let reindexers: Vec<Reindexer> = srcs
            .iter()
            .map(|s| {
                let w = s.as_ref().map_or(width, MatSource::n_cols);
                let new_pos = (0..w as i64).map(|j| if (j as u64) < width { j } else { -1 }).collect();
                let old_pos = (0..width as i64).map(|j| if (j as u64) < w { j } else { -1 }).collect();
                Reindexer::from_maps(new_pos, old_pos)
            })
            .collect();
        concat_matrix(&srcs, &rows, Some(&reindexers), width, out, &p, &ConcatOptions { axis: Axis::Obs, ..opts.clone() }, progress, report)?;
    }
    Ok(())
}
