//! `adcat._adcat`: the native half of the Python package. It wires Python values into
//! `adcat_cli::api` and back; the public API, its argument checks and docs live in
//! `python/adcat`. Every job runs on a thread of its own with the GIL released, while the
//! calling thread wakes every 100 ms to deliver Ctrl-C (stopping the job, which removes
//! its partial output) and progress.

use adcat_cli::api::{self, ErrorKind, Format, WriteSpec};
use adcat_cli::guard::StopToken;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

// As in the `adcat` binary: blocks of tens of MiB are allocated and freed per element.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Defined in Python (python/adcat/_errors.py) so that each is both an `AdcatError` and
// the built-in type anndata raises for the same mistake.
pyo3::import_exception!(adcat._errors, AdcatFileNotFoundError);
pyo3::import_exception!(adcat._errors, AdcatFileExistsError);
pyo3::import_exception!(adcat._errors, AdcatValueError);
pyo3::import_exception!(adcat._errors, AdcatNotImplementedError);
pyo3::import_exception!(adcat._errors, AdcatOSError);

/// The Python exception for an adcat error.
fn py_error(e: api::Error) -> PyErr {
    let m = e.message;
    match e.kind {
        ErrorKind::NotFound => AdcatFileNotFoundError::new_err(m),
        ErrorKind::Exists => AdcatFileExistsError::new_err(m),
        ErrorKind::Invalid => AdcatValueError::new_err(m),
        ErrorKind::Unsupported => AdcatNotImplementedError::new_err(m),
        ErrorKind::Interrupted => pyo3::exceptions::PyKeyboardInterrupt::new_err(m),
        ErrorKind::Io => AdcatOSError::new_err(m),
    }
}

/// Bytes written and the element being written, read by the calling thread.
#[derive(Debug, Default)]
struct Tracker {
    total: AtomicU64,
    done: AtomicU64,
    element: Mutex<String>,
}

impl adcat_format::Progress for Tracker {
    fn total_bytes(&self, bytes: u64) {
        self.total.store(bytes, Ordering::Relaxed);
    }
    fn element(&self, path: &str) {
        *self.element.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = format!("/{path}");
    }
    fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Tracker {
    fn snapshot(&self) -> (u64, u64, String) {
        let element = self.element.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        (self.total.load(Ordering::Relaxed), self.done.load(Ordering::Relaxed), element)
    }
}

/// What the calling thread does between waits: deliver signals (a pending
/// `KeyboardInterrupt` stops the job) and progress. Returns the error to raise.
fn tend(py: Python<'_>, stop: &StopToken, tracker: &Tracker, progress: Option<&Py<PyAny>>) -> Option<PyErr> {
    if let Err(e) = py.check_signals() {
        stop.stop(libc::SIGINT);
        return Some(e);
    }
    if let Some(cb) = progress {
        if let Err(e) = cb.call1(py, tracker.snapshot()) {
            stop.stop(libc::SIGINT);
            return Some(e);
        }
    }
    None
}

/// Run `job` on its own thread (in a pool of `threads` when given) with the GIL
/// released; see the module docs.
fn run_job<T: Send>(py: Python<'_>, threads: Option<usize>, progress: Option<Py<PyAny>>, job: impl FnOnce(&Tracker, &StopToken) -> api::Result<T> + Send) -> PyResult<T> {
    let pool = match threads {
        Some(0) => return Err(AdcatValueError::new_err("threads must be at least 1")),
        Some(n) => Some(rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(|e| PyRuntimeError::new_err(format!("cannot start {n} threads: {e}")))?),
        None => None,
    };
    let tracker = Tracker::default();
    let stop = StopToken::new();
    let mut raised: Option<PyErr> = None;
    let outcome = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            let (pool, tracker_ref, stop_ref) = (&pool, &tracker, &stop);
            let worker = s.spawn(move || {
                let r = match pool {
                    Some(p) => p.install(|| job(tracker_ref, stop_ref)),
                    None => job(tracker_ref, stop_ref),
                };
                let _ = tx.send(());
                r
            });
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_millis(100)) {
                if raised.is_none() {
                    raised = Python::attach(|py| tend(py, &stop, &tracker, progress.as_ref()));
                }
            }
            worker.join()
        })
    });
    if let Some(cb) = &progress {
        // The final figures, so a bar ends full.
        cb.call1(py, tracker.snapshot())?;
    }
    match outcome {
        Err(panic) => {
            let what = panic.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
            Err(PyRuntimeError::new_err(format!("adcat failed unexpectedly ({what}); the output was not written; please report this as a bug")))
        }
        Ok(Err(_)) if raised.is_some() => Err(raised.take().expect("checked")),
        Ok(r) => r.map_err(py_error),
    }
}

fn format_arg(format: &str) -> PyResult<Format> {
    match format {
        "h5ad" => Ok(Format::H5ad),
        "zarr" => Ok(Format::Zarr),
        "auto" => Ok(Format::FromExtension),
        other => Err(AdcatValueError::new_err(format!("format must be 'h5ad', 'zarr' or 'auto', not {other:?}"))),
    }
}

/// The options of a concatenation, as `adcat._api._concat_args` builds them (a dict).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct ConcatArgs {
    inputs: Vec<PathBuf>,
    output: PathBuf,
    format: String,
    keys: Option<Vec<String>>,
    axis: String,
    join: String,
    merge: Option<String>,
    uns_merge: Option<String>,
    label: Option<String>,
    index_unique: Option<String>,
    fill_value: Option<f64>,
    pairwise: bool,
    var_names: Option<Vec<String>>,
    var_key: Option<String>,
    obs_filter: Option<String>,
    obs_names: Option<Vec<String>>,
    var_filter: Option<String>,
    zarr_format: u8,
    compression: Option<String>,
    max_memory: String,
    follow_external_links: bool,
    task_size: Option<String>,
    provenance: bool,
    // Given by concat_on_disk only (not by plan or the Dask front end).
    #[pyo3(default)]
    shuffle: bool,
    #[pyo3(default)]
    seed: Option<u64>,
    #[pyo3(default)]
    layout: Option<String>,
    #[pyo3(default)]
    obs_chunk: Option<u64>,
    #[pyo3(default)]
    compact_indices: bool,
    #[pyo3(default)]
    dataset_size: Option<String>,
    #[pyo3(default)]
    virtual_paths: Option<String>,
}

impl ConcatArgs {
    fn into_spec(self, force: bool) -> PyResult<api::ConcatSpec> {
        Ok(api::ConcatSpec {
            format: format_arg(&self.format)?,
            inputs: self.inputs,
            keys: self.keys,
            output: self.output,
            axis: self.axis,
            join: self.join,
            merge: self.merge,
            uns_merge: self.uns_merge,
            label: self.label,
            index_unique: self.index_unique,
            fill_value: self.fill_value,
            pairwise: self.pairwise,
            var_names: self.var_names,
            var_key: self.var_key,
            obs_filter: self.obs_filter,
            obs_names: self.obs_names,
            var_filter: self.var_filter,
            shuffle: self.shuffle,
            seed: self.seed,
            layout: self.layout.unwrap_or_else(|| "anndata".into()),
            obs_chunk: self.obs_chunk,
            compact_indices: self.compact_indices,
            dataset_size: self.dataset_size,
            virtual_paths: self.virtual_paths,
            write: WriteSpec { zarr_format: self.zarr_format, compression: self.compression, max_memory: self.max_memory, force },
            follow_external_links: self.follow_external_links,
            task_size: self.task_size,
            provenance: self.provenance,
        })
    }
}

/// Concatenate stores (see `adcat.concat_on_disk`); returns the warnings.
#[pyfunction]
#[pyo3(signature = (args, *, force, threads, progress))]
fn concat(py: Python<'_>, args: ConcatArgs, force: bool, threads: Option<usize>, progress: Option<Py<PyAny>>) -> PyResult<Vec<String>> {
    let spec = args.into_spec(force)?;
    run_job(py, threads, progress, |t, stop| api::concat(&spec, t, stop))
}

/// Append to a store (see `adcat.append`); returns the warnings.
#[pyfunction]
#[pyo3(signature = (args, *, threads, progress))]
fn append(py: Python<'_>, args: ConcatArgs, threads: Option<usize>, progress: Option<Py<PyAny>>) -> PyResult<Vec<String>> {
    let spec = args.into_spec(false)?;
    run_job(py, threads, progress, |t, stop| api::append(&spec, t, stop))
}

/// The plan of a concatenation as JSON text (see `adcat.plan`).
#[pyfunction]
fn plan(py: Python<'_>, args: ConcatArgs) -> PyResult<String> {
    let spec = args.into_spec(true)?;
    run_job(py, None, None, |_, stop| stop.scope(|| api::plan(&spec)))
}

/// Convert one store (see `adcat.convert`).
#[pyfunction]
#[pyo3(signature = (src, dst, *, format, zarr_format, compression, max_memory, force, follow_external_links, threads, progress))]
#[allow(clippy::too_many_arguments)]
fn convert(
    py: Python<'_>,
    src: PathBuf,
    dst: PathBuf,
    format: &str,
    zarr_format: u8,
    compression: Option<String>,
    max_memory: String,
    force: bool,
    follow_external_links: bool,
    threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<()> {
    let write = WriteSpec { zarr_format, compression, max_memory, force };
    let format = format_arg(format)?;
    run_job(py, threads, progress, |t, stop| api::convert(&src, &dst, format, &write, follow_external_links, t, stop))
}

/// The element tree as JSON text (see `adcat.inspect`).
#[pyfunction]
#[pyo3(signature = (path, *, follow_external_links))]
fn inspect(py: Python<'_>, path: PathBuf, follow_external_links: bool) -> PyResult<String> {
    run_job(py, None, None, |_, stop| stop.scope(|| api::inspect(&path, follow_external_links)))
}

/// `(n_obs, n_vars, problems)` (see `adcat.validate`).
#[pyfunction]
#[pyo3(signature = (path, *, quick, follow_external_links))]
fn validate(py: Python<'_>, path: PathBuf, quick: bool, follow_external_links: bool) -> PyResult<(Option<u64>, Option<u64>, Vec<String>)> {
    let v = run_job(py, None, None, |_, stop| stop.scope(|| api::validate(&path, quick, follow_external_links)))?;
    Ok((v.n_obs, v.n_vars, v.problems))
}

/// Plan a concatenation as a job (see `adcat.dask`): `(job, warnings)`, the job as JSON
/// text holding all any process needs to run its tasks.
#[pyfunction]
#[pyo3(signature = (args, *, force))]
fn job_create(py: Python<'_>, args: ConcatArgs, force: bool) -> PyResult<(String, Vec<String>)> {
    let spec = args.into_spec(force)?;
    run_job(py, None, None, |_, stop| api::job_create(&spec, stop))
}

/// The tasks of a job: `(element, stage, needs)` per task, in plan order.
#[pyfunction]
fn job_tasks(job: &str) -> PyResult<Vec<(String, String, Vec<usize>)>> {
    let tasks = api::job_tasks(job).map_err(py_error)?;
    Ok(tasks.into_iter().map(|t| (t.element, t.stage.to_owned(), t.needs)).collect())
}

/// Run one task of a job given the results of the tasks it needs; returns a count
/// task's counts (None for a writing task).
#[pyfunction]
#[pyo3(signature = (job, task, needs, *, max_memory, follow_external_links, threads))]
fn job_run(py: Python<'_>, job: String, task: usize, needs: Vec<Vec<u64>>, max_memory: Option<String>, follow_external_links: bool, threads: Option<usize>) -> PyResult<Option<Vec<u64>>> {
    run_job(py, threads, None, |_, stop| api::job_run(&job, task, needs, max_memory.as_deref(), follow_external_links, stop))
}

/// Complete, verify and publish a job's output given every task's result (in plan
/// order); returns the output's location.
#[pyfunction]
#[pyo3(signature = (job, results, *, follow_external_links, threads))]
fn job_finish(py: Python<'_>, job: String, results: Vec<Option<Vec<u64>>>, follow_external_links: bool, threads: Option<usize>) -> PyResult<String> {
    run_job(py, threads, None, |_, stop| api::job_finish(&job, results, follow_external_links, stop))
}

/// Remove a job's unpublished output.
#[pyfunction]
fn job_discard(py: Python<'_>, job: String) -> PyResult<()> {
    run_job(py, None, None, |_, stop| stop.scope(|| api::job_discard(&job)))
}

/// The `adcat` command (argv with the program name first); returns the exit status.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<OsString>) -> i32 {
    py.detach(|| adcat_cli::run_main(argv))
}

/// The native module.
#[pymodule]
fn _adcat(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(concat, m)?)?;
    m.add_function(wrap_pyfunction!(append, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    for f in [wrap_pyfunction!(job_create, m)?, wrap_pyfunction!(job_tasks, m)?, wrap_pyfunction!(job_run, m)?, wrap_pyfunction!(job_finish, m)?, wrap_pyfunction!(job_discard, m)?] {
        m.add_function(f)?;
    }
    Ok(())
}
