//! The command line's jobs for other front ends (the Python package): the same options
//! as the flags, typed errors instead of exit statuses, and a [`StopToken`] instead of
//! signal handlers. Outputs are written as the CLI writes them: beside the final path,
//! verified, and moved into place only when complete.

use crate::guard::StopToken;
use crate::stores::{self, open_input, OutFormat, Output};
use crate::{inputs, planview, prepare_inputs, write_options, ConcatArgs, WriteArgs};
use adcat_concat::job::JobFile;
use adcat_concat::ConcatError;
use adcat_format::{FormatError, Progress, WriteOptions};
use adcat_store::StoreError;
use std::path::{Path, PathBuf};

/// What kind of failure an [`Error`] is, for front ends that map errors onto their own
/// types (Python: `FileNotFoundError`, `ValueError`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An input, or the output's directory, does not exist.
    NotFound,
    /// The output exists and overwriting it was not asked for.
    Exists,
    /// Invalid options, or inputs that are not valid AnnData or do not fit together.
    Invalid,
    /// Valid AnnData that adcat cannot handle (an encoding, type or combination).
    Unsupported,
    /// Stopped through the [`StopToken`].
    Interrupted,
    /// Reading or writing failed (I/O, a full disk, a lock held by another process).
    Io,
}

/// A failed job: its kind and the message, which names the file and element path.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// One line for a person.
    pub message: String,
}

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into() }
    }

    /// An `anyhow` error of the CLI's wiring, as one line.
    fn from_anyhow(kind: ErrorKind, e: &anyhow::Error) -> Error {
        Error::new(kind, format!("{e:#}").replace('\n', " "))
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the output is written (the CLI's `--zarr-format`, `--compression`, `--max-memory`,
/// `--force`).
#[derive(Debug, Clone)]
pub struct WriteSpec {
    /// 2 or 3, for a zarr output.
    pub zarr_format: u8,
    /// As `--compression` (`None`: anndata's default for the format).
    pub compression: Option<String>,
    /// As `--max-memory` (`512MiB`, `2GiB`, or bytes).
    pub max_memory: String,
    /// Replace an existing output (a file or an AnnData store, never an input).
    pub force: bool,
}

impl Default for WriteSpec {
    fn default() -> Self {
        WriteSpec { zarr_format: 3, compression: None, max_memory: "1GiB".into(), force: false }
    }
}

impl WriteSpec {
    fn args(&self) -> WriteArgs {
        WriteArgs { zarr_format: self.zarr_format.to_string(), compression: self.compression.clone(), max_memory: self.max_memory.clone(), shard_size: None, force: self.force }
    }

    fn options(&self) -> Result<WriteOptions> {
        write_options(&self.args()).map_err(|e| Error::from_anyhow(ErrorKind::Invalid, &e))
    }
}

/// The output's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// From the output path's extension, as the CLI decides it.
    FromExtension,
    /// HDF5 (.h5ad).
    H5ad,
    /// Zarr, of [`WriteSpec::zarr_format`].
    Zarr,
}

/// A concatenation: the arguments of `adcat concat`.
#[derive(Debug, Clone)]
pub struct ConcatSpec {
    /// Input stores, in order.
    pub inputs: Vec<PathBuf>,
    /// One key per input (`--keys`).
    pub keys: Option<Vec<String>>,
    /// Output path.
    pub output: PathBuf,
    /// Output format.
    pub format: Format,
    /// `obs` or `var` (also `0`, `1`).
    pub axis: String,
    /// `inner` or `outer`.
    pub join: String,
    /// Merge strategy name for off-axis annotations.
    pub merge: Option<String>,
    /// Merge strategy name for uns.
    pub uns_merge: Option<String>,
    /// Name of the batch column.
    pub label: Option<String>,
    /// Separator making names along the axis unique.
    pub index_unique: Option<String>,
    /// Fill value of an outer join.
    pub fill_value: Option<f64>,
    /// Concatenate obsp (varp) block-diagonally.
    pub pairwise: bool,
    /// The output's var names, fixed (`--var-names`).
    pub var_names: Option<Vec<String>>,
    /// Match genes by this var column (`--var-key`).
    pub var_key: Option<String>,
    /// Keep cells passing this filter (`--obs-filter`).
    pub obs_filter: Option<String>,
    /// Keep these cells (`--obs-names`).
    pub obs_names: Option<Vec<String>>,
    /// Keep genes passing this filter (`--var-filter`).
    pub var_filter: Option<String>,
    /// Write the cells in one pseudo-random order (`--shuffle`).
    pub shuffle: bool,
    /// The shuffle's seed (`--seed`; `None`: random).
    pub seed: Option<u64>,
    /// `anndata` or `annbatch` (`--layout`).
    pub layout: String,
    /// Rows per chunk of dense cell-aligned arrays (`--obs-chunk`).
    pub obs_chunk: Option<u64>,
    /// Smallest unsigned sparse index type (`--compact-indices`).
    pub compact_indices: bool,
    /// Bytes of one annbatch dataset (`--dataset-size`; `None`: 20GiB).
    pub dataset_size: Option<String>,
    /// Map matrices as HDF5 virtual datasets, naming inputs `auto`, `relative` or
    /// `absolute` (`--virtual --virtual-paths`); `None`: copy.
    pub virtual_paths: Option<String>,
    /// How the output is written.
    pub write: WriteSpec,
    /// Read HDF5 external links and virtual datasets (`--follow-external-links`).
    pub follow_external_links: bool,
    /// Target uncompressed output size of one task of a job (`--task-size`; `None`: 1GiB).
    pub task_size: Option<String>,
    /// Record the command in the output (the default; `--no-provenance` turns it off).
    pub provenance: bool,
}

/// The result of [`validate`].
#[derive(Debug, Clone)]
pub struct Validation {
    /// Rows, if they could be told.
    pub n_obs: Option<u64>,
    /// Columns, if they could be told.
    pub n_vars: Option<u64>,
    /// Every problem found (empty: valid).
    pub problems: Vec<String>,
}

/// The kind of an engine error.
fn concat_kind(e: &ConcatError) -> ErrorKind {
    match e {
        ConcatError::Input { source, .. } | ConcatError::Format(source) => format_kind(source),
        ConcatError::Output(_) => ErrorKind::Io,
        ConcatError::Unsupported { .. } | ConcatError::Refused { .. } => ErrorKind::Unsupported,
        ConcatError::Options(_) | ConcatError::Job(_) => ErrorKind::Invalid,
    }
}

fn format_kind(e: &FormatError) -> ErrorKind {
    match e {
        FormatError::UnknownEncoding { .. } | FormatError::UnsupportedVersion { .. } | FormatError::Unsupported { .. } => ErrorKind::Unsupported,
        FormatError::Invalid { .. } => ErrorKind::Invalid,
        FormatError::Store(StoreError::Open { .. } | StoreError::Backend { .. }) => ErrorKind::Io,
        FormatError::Store(StoreError::UnsupportedDType { .. }) => ErrorKind::Unsupported,
        FormatError::Store(_) => ErrorKind::Invalid,
    }
}

/// Run `f` under `stop`; an error after a stop is [`ErrorKind::Interrupted`].
fn stoppable<T>(stop: &StopToken, f: impl FnOnce() -> Result<T>) -> Result<T> {
    stop.scope(f).map_err(|e| match stop.stopped() {
        Some(sig) => Error::new(ErrorKind::Interrupted, format!("interrupted by {}; partial output removed", crate::guard::signal_name(sig))),
        None => e,
    })
}

fn input_opts(max_memory: u64, follow: bool) -> stores::InputOptions {
    stores::InputOptions { follow_external: follow, max_memory, budget_flag: false }
}

/// Open an input; a missing path is [`ErrorKind::NotFound`].
fn open(path: &Path, opts: stores::InputOptions) -> Result<Box<dyn adcat_store::Store>> {
    if !path.exists() && !stores::is_url(path) {
        return Err(Error::new(ErrorKind::NotFound, format!("{}: no such file or directory", path.display())));
    }
    open_input(path, opts).map_err(|e| Error::from_anyhow(ErrorKind::Invalid, &e))
}

/// Create the output's temporary store, with the checks' kinds.
fn create_output(dest: &Path, format: OutFormat, force: bool, inputs: &[PathBuf]) -> Result<Output> {
    let kind = check_output(dest, force, inputs)?;
    Output::create(dest, format, force, inputs).map_err(|e| Error::from_anyhow(kind, &e))
}

/// The checks of an output's destination, with their kinds; returns the kind of a
/// failure to create it after them.
fn check_output(dest: &Path, force: bool, inputs: &[PathBuf]) -> Result<ErrorKind> {
    if stores::is_url(dest) {
        stores::check_remote_not_an_input(&adcat_zarr::s3::normalize(&dest.to_string_lossy()), inputs).map_err(|e| Error::from_anyhow(ErrorKind::Invalid, &e))?;
        let occupied = stores::remote_occupant(dest).map_err(|e| Error::from_anyhow(ErrorKind::Io, &e))? != adcat_zarr::publish::Occupant::Nothing;
        if occupied && !force {
            return Err(Error::new(ErrorKind::Exists, format!("{}: output exists (objects under this prefix); pass force=True to replace an AnnData store", dest.display())));
        }
        return Ok(if occupied { ErrorKind::Exists } else { ErrorKind::Invalid });
    }
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Error::new(ErrorKind::NotFound, format!("{}: the parent directory {} does not exist; create it first", dest.display(), parent.display())));
    }
    let dest_abs = parent.canonicalize().map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", parent.display())))?.join(dest.file_name().unwrap_or_default());
    stores::check_not_an_input(dest, &dest_abs, inputs).map_err(|e| Error::from_anyhow(ErrorKind::Invalid, &e))?;
    let exists = dest.symlink_metadata().is_ok();
    if !force && exists {
        return Err(Error::new(ErrorKind::Exists, format!("{}: output exists; pass force=True to overwrite it", dest.display())));
    }
    if exists {
        stores::check_replaceable(dest, &dest_abs, inputs).map_err(|e| Error::from_anyhow(ErrorKind::Exists, &e))?;
    }
    Ok(ErrorKind::Io)
}

/// The output format of `spec`.
fn out_format(output: &Path, format: Format, zarr_format: u8) -> Result<OutFormat> {
    let zarr = |v: u8| OutFormat::Zarr(if v == 2 { adcat_zarr::ZarrVersion::V2 } else { adcat_zarr::ZarrVersion::V3 });
    let f = match format {
        Format::H5ad => OutFormat::H5ad,
        Format::Zarr => zarr(zarr_format),
        Format::FromExtension => stores::format_from_extension(output, zarr_format).map_err(|e| Error::from_anyhow(ErrorKind::Invalid, &e))?,
    };
    stores::check_location(output, f).map_err(|e| Error::from_anyhow(ErrorKind::Unsupported, &e))?;
    Ok(f)
}

/// The checked arguments of a concatenation, and its input stores opened.
fn prepared(spec: &ConcatSpec) -> Result<(crate::Prepared, Vec<Box<dyn adcat_store::Store>>)> {
    let format = out_format(&spec.output, spec.format, spec.write.zarr_format)?;
    let args = ConcatArgs {
        inputs: vec![],
        inputs_from: None,
        output: spec.output.clone(),
        axis: spec.axis.clone(),
        combine: crate::CombineArgs {
            join: spec.join.clone(),
            merge: spec.merge.clone(),
            uns_merge: spec.uns_merge.clone(),
            label: spec.label.clone(),
            keys: spec.keys.clone(),
            index_unique: spec.index_unique.clone(),
            var_names: None,
            fill_value: spec.fill_value,
            no_provenance: !spec.provenance,
        },
        pairwise: spec.pairwise,
        var_names_list: spec.var_names.clone(),
        var_key: spec.var_key.clone(),
        obs_filter: spec.obs_filter.clone(),
        obs_names: None,
        obs_names_list: spec.obs_names.clone(),
        var_filter: spec.var_filter.clone(),
        obs_chunk: spec.obs_chunk,
        compact_indices: spec.compact_indices,
        shuffle: spec.shuffle,
        seed: spec.seed,
        layout: spec.layout.clone(),
        virtual_: spec.virtual_paths.is_some(),
        virtual_paths: spec.virtual_paths.clone().unwrap_or_else(|| "auto".into()),
        dataset_size: spec.dataset_size.clone().unwrap_or_else(|| "20GiB".into()),
        task_size: spec.task_size.clone().unwrap_or_else(|| "1GiB".into()),
        write: spec.write.args(),
    };
    let specs = spec.inputs.iter().map(|p| inputs::Input { path: p.clone(), key: None }).collect();
    let p = prepare_inputs(specs, args, Some(format)).map_err(|e| Error::from_anyhow(ErrorKind::Invalid, &e))?;
    let opts = input_opts(p.copts.write.max_memory, spec.follow_external_links);
    let stores = p.inputs.iter().map(|i| open(i, opts)).collect::<Result<Vec<_>>>()?;
    Ok((p, stores))
}

/// An engine error, attributed as the CLI attributes it.
fn engine_error(p: &crate::Prepared, e: ConcatError) -> Error {
    let kind = concat_kind(&e);
    Error::from_anyhow(kind, &p.err(e))
}

/// Concatenate as `adcat concat`; returns the warnings. `progress` hears of every
/// element and byte written.
pub fn concat(spec: &ConcatSpec, progress: &dyn Progress, stop: &StopToken) -> Result<Vec<String>> {
    stoppable(stop, || {
        let (p, stores) = prepared(spec)?;
        let refs: Vec<&dyn adcat_store::Store> = stores.iter().map(|s| s.as_ref()).collect();
        let out = create_output(&p.output, p.format, p.force, &p.inputs)?;
        let report = crate::run_concat(&p, &refs, &out, progress).map_err(|e| engine_error(&p, e))?;
        out.commit(Some(report.shape)).map_err(|e| Error::from_anyhow(ErrorKind::Io, &e))?;
        Ok(report.warnings)
    })
}

/// Append to the store `spec.output` as `adcat append` (the spec's options as for a
/// concatenation; `axis`, `pairwise`, selections and `write` other than the memory
/// budget are refused or unused); returns the warnings.
pub fn append(spec: &ConcatSpec, progress: &dyn Progress, stop: &StopToken) -> Result<Vec<String>> {
    stoppable(stop, || {
        if !spec.output.exists() && !stores::is_url(&spec.output) {
            return Err(Error::new(ErrorKind::NotFound, format!("{}: no such store", spec.output.display())));
        }
        let (p, stores) = prepared(spec)?;
        let report = crate::append::run(&p, &stores, spec.follow_external_links, progress).map_err(|f| match f {
            crate::append::Failure::Engine(e) => engine_error(&p, e),
            crate::append::Failure::Other(e) => Error::from_anyhow(ErrorKind::Invalid, &e),
        })?;
        Ok(report.warnings)
    })
}

/// The plan of a concatenation, as `adcat plan --json` prints it; reads metadata only.
pub fn plan(spec: &ConcatSpec) -> Result<String> {
    let (p, stores) = prepared(spec)?;
    let refs: Vec<&dyn adcat_store::Store> = stores.iter().map(|s| s.as_ref()).collect();
    let kind = p.format.kind();
    let plan = adcat_concat::plan::plan(&refs, kind, &p.copts).map_err(|e| engine_error(&p, e))?;
    planview::render(&plan, &p.inputs, &p.output, kind, &p.copts, true).map_err(|e| Error::from_anyhow(ErrorKind::Invalid, &e))
}

/// Convert one store to another format, as `adcat convert`.
pub fn convert(input: &Path, output: &Path, format: Format, write: &WriteSpec, follow: bool, progress: &dyn Progress, stop: &StopToken) -> Result<()> {
    stoppable(stop, || {
        let opts = write.options()?;
        let format = out_format(output, format, write.zarr_format)?;
        crate::check_codec(&opts, format, output).map_err(|e| Error::from_anyhow(ErrorKind::Invalid, &e))?;
        let src = open(input, input_opts(opts.max_memory, follow))?;
        let out = create_output(output, format, write.force, std::slice::from_ref(&input.to_path_buf()))?;
        adcat_format::convert(src.as_ref(), out.store(), &opts, progress).map_err(|e| {
            let (kind, at) = if e.is_output() { (ErrorKind::Io, output) } else { (format_kind(&e), input) };
            Error::new(kind, format!("{}: {e}", at.display()))
        })?;
        let planned = adcat_format::validate::validate(&adcat_format::LegacyView::new(src.as_ref()), false);
        out.commit(planned.n_obs.zip(planned.n_vars)).map_err(|e| Error::from_anyhow(ErrorKind::Io, &e))
    })
}

/// The element tree of a store, as `adcat inspect --json` prints it.
pub fn inspect(path: &Path, follow: bool) -> Result<String> {
    let s = open(path, input_opts(WriteOptions::default().max_memory, follow))?;
    let doc = crate::inspect_document(s.as_ref(), path).map_err(|e| Error::new(format_kind(&e), format!("{}: {e}", path.display())))?;
    serde_json::to_string_pretty(&doc).map_err(|e| Error::new(ErrorKind::Invalid, format!("{}: {e}", path.display())))
}

/// Check a store against the AnnData format, as `adcat validate` (`quick`: metadata only).
pub fn validate(path: &Path, quick: bool, follow: bool) -> Result<Validation> {
    let s = open(path, input_opts(WriteOptions::default().max_memory, follow))?;
    let r = adcat_format::validate::validate(&adcat_format::LegacyView::new(s.as_ref()), !quick);
    Ok(Validation { n_obs: r.n_obs, n_vars: r.n_vars, problems: r.problems.iter().map(ToString::to_string).collect() })
}

/// One task of a job, as a scheduler of the caller's (Dask) needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTask {
    /// The output element it writes (e.g. `X`, `obs/cell_type`).
    pub element: String,
    /// `count` (first stage: its result is data for later tasks) or `write`.
    pub stage: &'static str,
    /// The tasks whose results it takes, in order: an element's count tasks.
    pub needs: Vec<usize>,
}

fn parse_job(job: &str) -> Result<JobFile> {
    JobFile::from_json(job.as_bytes()).map_err(|e| Error::new(ErrorKind::Invalid, format!("the job given: {e}")))
}

/// An error of the CLI's job wiring: an engine error keeps its kind, others are `kind`.
fn job_error(e: &anyhow::Error, kind: ErrorKind) -> Error {
    let kind = e.downcast_ref::<crate::EngineFailure>().map_or(kind, |f| concat_kind(&f.error));
    Error::from_anyhow(kind, e)
}

/// Plan `spec` as a job for a scheduler of the caller's: check the output, write its
/// skeleton where the job's tasks build it (a hidden sibling of a local output, the
/// unpublished prefix of an output in object storage) and return the job (JSON text,
/// the whole of what any process needs to run its tasks) with the planning's warnings.
pub fn job_create(spec: &ConcatSpec, stop: &StopToken) -> Result<(String, Vec<String>)> {
    stoppable(stop, || {
        let (p, stores) = prepared(spec)?;
        drop(stores);
        let kind = check_output(&p.output, p.force, &p.inputs)?;
        let (job, warnings) = crate::job::plan_job(p, true, false, spec.follow_external_links).map_err(|e| job_error(&e, kind))?;
        let text = serde_json::to_string(&job).map_err(|e| Error::new(ErrorKind::Invalid, format!("cannot write the job: {e}")))?;
        Ok((text, warnings))
    })
}

/// The tasks of a job (see [`job_create`]), in plan order.
pub fn job_tasks(job: &str) -> Result<Vec<JobTask>> {
    let job = parse_job(job)?;
    let tasks = &job.plan.tasks;
    let count_tasks = |e: usize| (0..tasks.len()).filter(|&c| tasks[c].element == e && tasks[c].stage() == 0).collect::<Vec<_>>();
    Ok(tasks
        .iter()
        .map(|t| JobTask {
            element: job.plan.elements.get(t.element).map_or_else(String::new, |e| e.path().to_owned()),
            stage: if t.stage() == 0 { "count" } else { "write" },
            needs: if t.stage() == 0 { vec![] } else { count_tasks(t.element) },
        })
        .collect())
}

/// Run task `task` of a job, given the results of the tasks it needs ([`JobTask::needs`],
/// in order); returns a count task's result. Any process that sees the job's inputs and
/// output can run any task, any number of times.
pub fn job_run(job: &str, task: usize, needs: Vec<Vec<u64>>, max_memory: Option<&str>, follow: bool, stop: &StopToken) -> Result<Option<Vec<u64>>> {
    stoppable(stop, || {
        let job = parse_job(job)?;
        let budget = max_memory.map(crate::parse_size).transpose().map_err(|e| Error::from_anyhow(ErrorKind::Invalid, &e.context("max_memory")))?;
        crate::job::run_one(&job, task, needs, budget, follow).map_err(|e| job_error(&e, ErrorKind::Io))
    })
}

/// Complete, verify and publish a job's output once every task ran; `results` holds
/// each task's result in plan order (`None` for writing tasks). Returns the output's
/// location.
pub fn job_finish(job: &str, results: Vec<Option<Vec<u64>>>, follow: bool, stop: &StopToken) -> Result<String> {
    stoppable(stop, || {
        let job = parse_job(job)?;
        let tasks = &job.plan.tasks;
        if results.len() != tasks.len() {
            return Err(Error::new(ErrorKind::Invalid, format!("finishing a job of {} tasks needs their {} results, {} were given", tasks.len(), tasks.len(), results.len())));
        }
        let counts = |e: usize| -> adcat_concat::Result<Vec<Vec<u64>>> {
            (0..tasks.len())
                .filter(|&t| tasks[t].element == e && tasks[t].stage() == 0)
                .map(|t| results[t].clone().ok_or_else(|| ConcatError::Job(format!("count task {t} gave no counts"))))
                .collect()
        };
        crate::job::finish_job(&job, &counts, follow).map_err(|e| job_error(&e, ErrorKind::Io))?;
        Ok(job.output)
    })
}

/// Remove a job's unpublished output (after a failed task): nothing is published.
pub fn job_discard(job: &str) -> Result<()> {
    let job = parse_job(job)?;
    crate::job::discard(&job).map_err(|e| Error::from_anyhow(ErrorKind::Io, &e))
}
