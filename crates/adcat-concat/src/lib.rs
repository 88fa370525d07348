//! # adcat-concat
//!
//! Out-of-core `anndata.concat`: plans the alignment (off-axis join, reindexers, merge
//! strategies, dtype promotion) from metadata and indexes, then streams every large element
//! in row blocks sized from the memory budget. Works against [`adcat_store::Store`] only,
//! so inputs and output may be any mix of HDF5 and Zarr.

// Index-based loops over CSR structures read more clearly than iterator chains here.
#![allow(clippy::needless_range_loop)]

pub mod append;
pub mod awkward;
pub mod columns;
pub mod equal;
mod error;
mod inputs;
mod options;
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
mod remap;
mod serde_text;
pub mod plan;
pub mod select;
pub mod shuffle;
mod transpose;
pub mod vds;

pub use error::{ConcatError, Result};
pub use index::Join;
pub use merge::Strategy;
pub use options::{Axis, ConcatOptions, OffMatch, Report, DEFAULT_TASK_BYTES};

pub(crate) use error::At;

use adcat_format::{detect, Encoding, FormatError, Progress};
use adcat_store::{NodeKind, Store};
use inputs::{inputs_for, part_names, Layout};

/// Concatenate `inputs` into the empty store `out`: plan, then run every task here.
pub fn concat(inputs: &[&dyn Store], out: &dyn Store, opts: &ConcatOptions, progress: &dyn Progress) -> Result<Report> {
    if opts.shuffle_seed.is_some() {
        return Err(ConcatError::Options("a shuffled concatenation needs a scratch store: use shuffle::concat_shuffled".into()));
    }
    concat_unshuffled(inputs, out, opts, progress)
}

/// [`concat`] in input order whatever `opts.shuffle_seed` says (the first pass of
/// [`shuffle::concat_shuffled`], whose provenance records the seed).
pub(crate) fn concat_unshuffled(inputs: &[&dyn Store], out: &dyn Store, opts: &ConcatOptions, progress: &dyn Progress) -> Result<Report> {
    as_engine_sees(inputs, out, |inputs, out| concat_tagged(inputs, out, opts, progress, true))
}

/// Plan the concatenation of `inputs` into the empty store `out`: write every small
/// element and create the matrix elements, whose tasks ([`Report::job`]) are left to
/// run ([`run_tasks`], in this process or others).
pub fn create(inputs: &[&dyn Store], out: &dyn Store, opts: &ConcatOptions, progress: &dyn Progress) -> Result<Report> {
    if opts.shuffle_seed.is_some() {
        return Err(ConcatError::Options("--shuffle runs in one process: it cannot be planned as a job (adcat job, --job-dir, Dask) yet".into()));
    }
    if opts.virtual_paths.is_some() {
        return Err(ConcatError::Options("--virtual writes an .h5ad in one process: it cannot be planned as a job (adcat job, --job-dir, Dask)".into()));
    }
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

/// An error met while reading `store`, attributed to it if it is not already.
pub(crate) fn at_input(e: ConcatError, store: &dyn Store) -> ConcatError {
    match e {
        ConcatError::Format(source) => ConcatError::Input { file: store.location().into(), source },
        ConcatError::Unsupported { path, reason } => ConcatError::Input { file: store.location().into(), source: FormatError::invalid(&path, reason) },
        other => other,
    }
}

/// Apply `--var-filter` to the inputs' off-axis names (the main part's).
fn filter_var(ins: &mut [inputs::Input<'_>], opts: &ConcatOptions, run: bool, report: &mut Report) -> Result<()> {
    let Some(f) = &opts.var_filter else { return Ok(()) };
    if opts.axis != Axis::Obs {
        return Err(ConcatError::Options("--var-filter needs --axis obs".into()));
    }
    if !run && !opts.dry_run {
        return Err(ConcatError::Options("a gene filter (--var-filter) runs in one process: not as a job (--job-dir, adcat job, adcat.dask) yet".into()));
    }
    for i in ins.iter_mut().skip(opts.var_filter_skip) {
        let n = i.off.len() as u64;
        let keep = select::var_rows(i.store, f, n).map_err(|e| at_input(e, i.store))?;
        report.kept_var.push((keep.iter().filter(|&&k| k).count() as u64, n));
        inputs::drop_off_names(i, &keep);
    }
    Ok(())
}

/// Each input seen with only the cells `opts.obs_select` keeps (`None`: no selection).
fn select_inputs<'a>(inputs: &[&'a dyn Store], keys: &[String], opts: &ConcatOptions, run: bool, report: &mut Report) -> Result<Option<Vec<select::SelectedView<'a>>>> {
    let Some(sel) = &opts.obs_select else { return Ok(None) };
    if opts.axis != Axis::Obs {
        return Err(ConcatError::Options("a cell selection (--obs-filter, --obs-names) needs --axis obs".into()));
    }
    if !run && !opts.dry_run {
        return Err(ConcatError::Options("a cell selection (--obs-filter, --obs-names) runs in one process: not as a job (--job-dir, adcat job, adcat.dask) yet".into()));
    }
    let mut views = Vec::with_capacity(inputs.len());
    for (i, s) in inputs.iter().enumerate() {
        select::check_selectable(*s, opts.pairwise)?;
        let suffix = opts.index_unique.as_ref().map(|sep| format!("{sep}{}", keys[i])).unwrap_or_default();
        let rows = select::select_rows(*s, sel, &suffix).map_err(|e| at_input(e, *s))?;
        report.kept.push((rows.count(), rows.len()));
        views.push(select::SelectedView::new(*s, std::sync::Arc::new(rows)));
    }
    Ok(Some(views))
}

/// Record the concatenation in the output's root attribute (see [`adcat_format::provenance`]).
fn record_provenance(ins: &[inputs::Input<'_>], keys: &[String], opts: &ConcatOptions, report: &Report, out: &dyn Store) -> Result<()> {
    use adcat_format::provenance::{self, Provenance, Source, Step};
    let mut step = Step::new("concat", report.shape);
    step.options = opts.provenance_options();
    step.inputs = ins
        .iter()
        .zip(keys)
        .enumerate()
        .map(|(k, (i, key))| {
            let (n_ax, n_off) = (i.n_ax, i.off.len() as u64);
            let (n_obs, n_vars) = if opts.axis == Axis::Obs { (n_ax, n_off) } else { (n_off, n_ax) };
            // With a selection, the input's own shape and what was kept of it.
            let kept_obs = report.kept.get(k).map(|&(kept, _)| kept);
            let kept_vars = report.kept_var.get(k).map(|&(kept, _)| kept);
            let n_obs = report.kept.get(k).map_or(n_obs, |&(_, total)| total);
            Source { key: key.clone(), path: i.store.location().to_owned(), n_obs, n_vars, kept_obs, kept_vars }
        })
        .collect();
    provenance::write(out, &Provenance::new(step)).map_err(ConcatError::Output)
}

/// Errors of the output store become [`ConcatError::Output`].
pub(crate) fn attribute_output(e: ConcatError) -> ConcatError {
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
    let selected = select_inputs(inputs, &keys, opts, run, &mut report)?;
    let inputs: Vec<&dyn Store> = match &selected {
        Some(views) => views.iter().map(|v| v as &dyn Store).collect(),
        None => inputs.to_vec(),
    };
    let inputs = inputs.as_slice();
    let (ax, off) = opts.axis.names();
    let mut ins = inputs_for(inputs, ax, off, opts.off_key.as_deref())?;
    filter_var(&mut ins, opts, run, &mut report)?;
    progress.total_bytes(inputs.iter().map(|s| adcat_format::copy::data_bytes(*s, "").unwrap_or(0)).sum());
    adcat_format::write_root(out).map_err(ConcatError::Output)?;
    let main = Layout { prefix: "", raw: false };
    let (shape, main_off) = part::concat_part(&ins, &main, &keys, opts, out, &mut report)?;
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
        let raw_ins = inputs_for(inputs, rax, roff, None)?;
        out.create_group("raw")?;
        out.set_attrs("raw", &Encoding::Raw.attrs())?;
        let raw_opts = ConcatOptions { merge: None, uns_merge: None, pairwise: false, ..opts.clone() };
        report.note("raw", "concatenated (every input has raw)");
        let (_, raw_off) = part::concat_part(&raw_ins, &Layout { prefix: "raw", raw: true }, &keys, &raw_opts, out, &mut report)?;
        names.push(part_names(&raw_ins, raw_off));
    } else if has_raw.iter().any(|&b| b) {
        report.note("raw", "dropped: not in every input");
        report.warnings.push("Only some AnnData objects have `.raw` attribute, not concatenating `.raw` attributes.".into());
    }
    if !opts.no_provenance {
        record_provenance(&ins, &keys, opts, &report, out)?;
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
        // Run the plan as another process reads it (from JSON): every concatenation
        // checks that the plan is complete, self-contained data.
        let plan = job::JobPlan::from_json(report.job.to_json()).map_err(|e| ConcatError::Job(format!("the plan does not survive its JSON form: {e}")))?;
        job::run_in_process(&plan, &exec)?;
    }
    out.flush()?;
    Ok(report)
}
