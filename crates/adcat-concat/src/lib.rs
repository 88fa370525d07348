//! # adcat-concat
//!
//! Out-of-core `anndata.concat`: plans the alignment (off-axis join, reindexers, merge
//! strategies, dtype promotion) from metadata and indexes, then streams every large element
//! in row blocks sized from the memory budget. Works against [`adcat_store::Store`] only,
//! so inputs and output may be any mix of HDF5 and Zarr.

// Index-based loops over CSR structures read more clearly than iterator chains here.
#![allow(clippy::needless_range_loop)]

pub mod awkward;
pub mod equal;
mod error;
pub mod frames;
pub mod index;
pub mod job;
pub mod matrix;
pub mod merge;
pub mod natsort;
mod offaxis;
mod part;
mod stack;
mod pipe;
pub mod plan;
mod transpose;

pub use error::{ConcatError, Result};
pub use index::Join;
pub use merge::Strategy;

pub(crate) use error::At;

use adcat_format::frame::read_index;
use adcat_format::layout::WriteOptions;
use adcat_format::{detect, Encoding, FormatError, Progress};
use adcat_store::{join_path, NodeKind, Store};

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
    /// Target uncompressed output bytes of one task (`None`: [`DEFAULT_TASK_BYTES`]).
    pub task_bytes: Option<u64>,
    /// Plan only: create every output element with its final shape and type, read only
    /// metadata, indexes and off-axis tables, move no data (see [`plan::plan`]).
    pub dry_run: bool,
}

/// Default size of a task: large enough that per-task costs (opening inputs, reading
/// their indexes) vanish, small enough to spread a job over many workers.
pub const DEFAULT_TASK_BYTES: u64 = 1 << 30;

impl ConcatOptions {
    /// Target bytes per task.
    pub fn task_bytes(&self) -> u64 {
        self.task_bytes.unwrap_or(DEFAULT_TASK_BYTES).max(1)
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
    /// The data-moving work left after planning: matrix elements and their tasks.
    pub job: job::JobPlan,
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
    /// The off-axis dataframe they come from.
    off_df: String,
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
        out.push(Input { store: *s, n_ax, ax_index, off, off_df: off_df.to_owned() });
    }
    Ok(out)
}

/// Concatenate `inputs` into the empty store `out`: plan, then run every task here.
pub fn concat(inputs: &[&dyn Store], out: &dyn Store, opts: &ConcatOptions, progress: &dyn Progress) -> Result<Report> {
    as_engine_sees(inputs, out, |inputs, out| concat_tagged(inputs, out, opts, progress, true))
}

/// Plan the concatenation of `inputs` into the empty store `out`: write every small
/// element and create the matrix elements, whose tasks ([`Report::job`]) are left to
/// run ([`run_tasks`], in this process or others).
pub fn create(inputs: &[&dyn Store], out: &dyn Store, opts: &ConcatOptions, progress: &dyn Progress) -> Result<Report> {
    as_engine_sees(inputs, out, |inputs, out| concat_tagged(inputs, out, opts, progress, false))
}

/// Run `f` with an [`job::Executor`] over `inputs` (as given to [`create`]) and `out`
/// (the store `create` wrote).
pub fn run_tasks<R>(inputs: &[&dyn Store], out: &dyn Store, budget: u64, progress: &dyn Progress, f: impl FnOnce(&job::Executor<'_>) -> Result<R>) -> Result<R> {
    as_engine_sees(inputs, out, |inputs, out| f(&job::Executor::new(inputs, out, budget, progress)))
}

/// Inputs with legacy layouts (anndata < 0.8) read as anndata reads them, and an output
/// whose every error is marked, so a failed write (a full disk) is reported against the
/// output whichever code path met it.
fn as_engine_sees<R>(inputs: &[&dyn Store], out: &dyn Store, f: impl FnOnce(&[&dyn Store], &dyn Store) -> Result<R>) -> Result<R> {
    let views: Vec<adcat_format::LegacyView<'_>> = inputs.iter().map(|s| adcat_format::LegacyView::new(*s)).collect();
    let inputs: Vec<&dyn Store> = views.iter().map(|v| v as &dyn Store).collect();
    let tagged = adcat_store::tagged::OutputStore(out);
    f(&inputs, &tagged).map_err(attribute_output)
}

/// Errors of the output store become [`ConcatError::Output`].
fn attribute_output(e: ConcatError) -> ConcatError {
    match e {
        ConcatError::Format(f) | ConcatError::Input { source: f, .. } if f.is_output() => ConcatError::Output(f),
        e => e,
    }
}

fn concat_tagged(inputs: &[&dyn Store], out: &dyn Store, opts: &ConcatOptions, progress: &dyn Progress, run: bool) -> Result<Report> {
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
    let (shape, main_off) = part::concat_part(&ins, &main, &keys, opts, out, progress, &mut report)?;
    report.shape = shape;
    let mut names = vec![part_names(&ins, main_off)];
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
        let (_, raw_off) = part::concat_part(&raw_ins, &Layout { prefix: "raw", raw: true }, &keys, &raw_opts, out, progress, &mut report)?;
        names.push(part_names(&raw_ins, raw_off));
    } else if has_raw.iter().any(|&b| b) {
        report.note("raw", "dropped: not in every input");
        report.warnings.push("Only some AnnData objects have `.raw` attribute, not concatenating `.raw` attributes.".into());
    }
    if run && !opts.dry_run {
        let exec = job::Executor::new(inputs, out, opts.write.max_memory, progress);
        // Planning holds every index the tasks reindex with: hand them over.
        for (frame, per_input, merged) in names {
            for (i, n) in per_input.into_iter().enumerate() {
                exec.preset_input_names(i, &frame, n);
            }
            exec.preset_names(&frame, merged);
        }
        job::run_in_process(&report.job, &exec)?;
    }
    out.flush()?;
    Ok(report)
}



/// The off-axis names of a part: its dataframe path, each input's names, the merged ones.
type PartNames = (String, Vec<std::sync::Arc<Vec<String>>>, std::sync::Arc<Vec<String>>);

fn part_names(ins: &[Input<'_>], merged: std::sync::Arc<Vec<String>>) -> PartNames {
    let frame = ins.first().map(|i| i.off_df.clone()).unwrap_or_default();
    (frame, ins.iter().map(|i| i.off.clone()).collect(), merged)
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



