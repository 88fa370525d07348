//! `adcat job`: a concatenation as a directory of tasks that any scheduler can run
//! (Slurm job arrays, Snakemake, Kubernetes indexed jobs), each task in any process,
//! in any order, any number of times; `finish` publishes the output.

use crate::guard::{self, Guarded};
use crate::stores::{is_url, lazy_input, InputOptions, OutFormat, Output};
use crate::{parse_size, prepare, progress, ConcatArgs};
use adcat_concat::job::dir::ConvertOnFinish;
use adcat_concat::job::{Counts, JobDir, JobFile, JobInput, JobPlan};
use adcat_store::Store;
use adcat_zarr::{Shared, ZarrStore};
use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum JobCommand {
    /// Plan a concatenation as a job: write the output's skeleton (beside OUTPUT, hidden)
    /// and JOBDIR/job.json. Takes the options of `adcat concat`; the last positional
    /// argument is the job directory (new or empty).
    Create {
        #[command(flatten)]
        args: ConcatArgs,
    },
    /// Run tasks of a job; finished tasks are skipped. Without a selection, every task.
    Run {
        /// The job directory.
        jobdir: PathBuf,
        /// Run task N (0-based).
        #[arg(long, value_name = "N", conflicts_with_all = ["tasks", "worker"])]
        task: Option<usize>,
        /// Run tasks A to B, inclusive (e.g. 0-99).
        #[arg(long, value_name = "A-B", conflicts_with = "worker")]
        tasks: Option<String>,
        /// Run every K-th task starting at I (e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT).
        #[arg(long, value_name = "I/K")]
        worker: Option<String>,
        /// Wait for count tasks run by other workers instead of failing a writing task
        /// whose counts are not there yet.
        #[arg(long)]
        wait: bool,
        /// Memory budget of this process (default: the job's).
        #[arg(long)]
        max_memory: Option<String>,
    },
    /// Show done, pending and failed tasks.
    Status {
        /// The job directory.
        jobdir: PathBuf,
        /// `{"tasks": N, "done": [...], "pending": [...], "failed": [...]}`.
        #[arg(long)]
        json: bool,
    },
    /// Check every task finished, complete the metadata, validate the output and move it
    /// into place.
    Finish {
        /// The job directory.
        jobdir: PathBuf,
    },
}

/// Run a `job` subcommand.
pub fn run(cmd: JobCommand, quiet: bool, verbose: bool, follow: bool) -> Result<()> {
    match cmd {
        JobCommand::Create { args } => create(args, quiet, verbose, follow),
        JobCommand::Run { jobdir, task, tasks, worker, wait, max_memory } => {
            let budget = max_memory.map(|m| parse_size(&m).map_err(|e| anyhow!("--max-memory: {e}"))).transpose()?;
            run_tasks(&jobdir, &Selection::parse(task, tasks, worker)?, wait, budget, follow)
        }
        JobCommand::Status { jobdir, json } => status(&jobdir, json),
        JobCommand::Finish { jobdir } => finish(&jobdir, follow),
    }
}

/// A cheap identity of an input: size and modification time of the file, or of a zarr
/// store's directory and root metadata. Rewriting an input changes it; a chunk edited
/// in place inside a zarr directory may not.
pub fn fingerprint(path: &Path) -> Result<String> {
    if is_url(path) {
        return adcat_zarr::s3::fingerprint(&path.to_string_lossy()).map_err(|e| anyhow!("{e}"));
    }
    let stamp = |p: &Path| -> Result<String> {
        let m = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        let t = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        Ok(format!("{}@{t}", m.len()))
    };
    let mut parts = vec![stamp(path)?];
    if path.is_dir() {
        for f in ["zarr.json", ".zgroup", ".zattrs", ".zmetadata"] {
            if path.join(f).exists() {
                parts.push(format!("{f}:{}", stamp(&path.join(f))?));
            }
        }
    }
    Ok(parts.join(" "))
}

/// How a job records a path: absolute, or the URL as given.
fn location(p: &Path) -> Result<String> {
    if is_url(p) {
        return Ok(adcat_zarr::s3::normalize(&p.to_string_lossy()));
    }
    Ok(std::path::absolute(p)?.to_string_lossy().into_owned())
}

fn check_inputs(job: &JobFile) -> Result<()> {
    for i in &job.inputs {
        let path = Path::new(&i.path);
        let now = match fingerprint(path) {
            Ok(f) => f,
            // A store in object storage that cannot be reached now has not changed.
            Err(e) if is_url(path) => return Err(e),
            Err(_) => "missing".into(),
        };
        if now != i.fingerprint {
            bail!("{}: the input changed since the job was created (size or modification time); the job cannot go on: create it again", i.path);
        }
    }
    Ok(())
}

fn create(mut args: ConcatArgs, quiet: bool, verbose: bool, follow: bool) -> Result<()> {
    let jobdir = PathBuf::from(args.inputs.pop().ok_or_else(|| anyhow!("give the job directory after the inputs: adcat job create INPUT... -o OUTPUT JOBDIR"))?);
    if args.inputs.is_empty() && args.inputs_from.is_none() {
        bail!("no inputs: adcat job create INPUT... -o OUTPUT JOBDIR");
    }
    create_job(prepare(args)?, &jobdir, quiet, true, verbose, follow)?;
    Ok(())
}

/// `adcat concat --job-dir DIR [--resume]`: the same job in this process, resumable
/// from DIR after an interruption (finished tasks are not run again).
pub fn concat_via_job(args: ConcatArgs, jobdir: &Path, resume: bool, quiet: bool, verbose: bool, follow: bool) -> Result<()> {
    let p = prepare(args)?;
    if jobdir.join("job.json").exists() {
        if !resume {
            bail!("{}: holds a job already; pass --resume to continue it, or choose a new --job-dir", jobdir.display());
        }
        let (_, job) = JobDir::open(jobdir).map_err(|e| anyhow!("{e}"))?;
        let output = location(&p.output)?;
        if job.output != output {
            bail!("{}: the job writes {}, not {output}; resume it with the same output", jobdir.display(), job.output);
        }
    } else {
        create_job(p, jobdir, quiet, false, verbose, follow)?;
    }
    guard::set_interrupt_note(format!("finished tasks are kept: run the same command with --resume to continue (job {})", jobdir.display()));
    let bar = progress::Reporter::new(quiet, verbose);
    let r = run_tasks_with(jobdir, &Selection::All, false, None, follow, &bar);
    bar.finish();
    r?;
    finish(jobdir, follow)?;
    // The job is spent: its output is in place and its staging gone. Only what adcat
    // wrote is removed (the directory was new or empty when the job began).
    let _ = std::fs::remove_dir_all(jobdir.join("done"));
    let _ = std::fs::remove_dir_all(jobdir.join("failed"));
    let _ = std::fs::remove_file(jobdir.join("job.json"));
    let _ = std::fs::remove_dir(jobdir);
    Ok(())
}

/// Where a job's tasks write `p`'s output, and with which options. Tasks write zarr
/// side by side; an h5ad output (libhdf5 takes one writing process) is staged as zarr
/// v3, compressed with a fast zstd level, and converted by `finish` with the output's
/// own compression.
fn staging(p: &crate::Prepared) -> (OutFormat, Option<ConvertOnFinish>, adcat_concat::ConcatOptions) {
    if p.format != OutFormat::H5ad {
        return (p.format, None, p.copts.clone());
    }
    let mut copts = p.copts.clone();
    copts.write.compression = Some(adcat_store::Compression::Zstd(1));
    let convert = ConvertOnFinish { compression: p.copts.write.compression.as_ref().map(crate::compression_arg) };
    (OutFormat::Zarr(adcat_zarr::ZarrVersion::V3), Some(convert), copts)
}

/// Plan `p` as a job in `jobdir`; returns the job. `show_job`: print how to run it (`adcat job create`).
fn create_job(p: crate::Prepared, jobdir: &Path, quiet: bool, show_job: bool, verbose: bool, follow: bool) -> Result<JobFile> {
    if jobdir.exists() && std::fs::read_dir(jobdir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{}: job directory exists and is not empty; choose a new one", jobdir.display());
    }
    let (job, warnings) = plan_job(p, quiet, verbose, follow)?;
    if let Err(e) = JobDir::create(jobdir, &job) {
        let _ = discard(&job);
        bail!("{e}");
    }
    for w in &warnings {
        eprintln!("adcat: warning: {w}");
    }
    let n = job.plan.tasks.len();
    let counts = job.plan.tasks.iter().filter(|t| t.stage() == 0).count();
    if !quiet && show_job {
        println!("job {}: {n} tasks ({counts} count, {} write) over {} elements", jobdir.display(), n - counts, job.plan.elements.len());
        println!("run:    adcat job run {} --worker I/K   (or --task N; count tasks 0-{} first)", jobdir.display(), counts.saturating_sub(1));
        println!("finish: adcat job finish {}", jobdir.display());
    }
    Ok(job)
}

/// Plan `p` as a job: write the output's skeleton where the job's tasks build it (see
/// [`staging`]) and return the job with the planning's warnings. The job lives wherever
/// the caller keeps it (a job directory, or a Dask graph).
pub(crate) fn plan_job(p: crate::Prepared, quiet: bool, verbose: bool, follow: bool) -> Result<(JobFile, Vec<String>)> {
    let (stage_format, convert, copts) = staging(&p);
    let stores = p.open_inputs(follow)?;
    let refs: Vec<&dyn Store> = stores.iter().map(|s| s.as_ref()).collect();
    let inputs = p
        .inputs
        .iter()
        .map(|i| {
            let abs = if is_url(i) { i.clone() } else { i.canonicalize().with_context(|| format!("{}", i.display()))? };
            Ok(JobInput { path: abs.to_string_lossy().into_owned(), fingerprint: fingerprint(&abs)? })
        })
        .collect::<Result<Vec<_>>>()?;
    let out = Output::create_as(&p.output, stage_format, p.force, &p.inputs, true)?;
    let bar = progress::Reporter::new(quiet, verbose);
    let report = adcat_concat::create(&refs, out.store(), &copts, &bar).map_err(|e| p.err(e));
    bar.finish();
    let report = report?;
    if !quiet && (p.copts.off_names.is_some() || p.copts.off_key.is_some()) {
        eprint!("{}", crate::planview::off_match_lines(&report, &p.inputs, "adcat: "));
    }
    let staging_token = out.remote_token();
    let staging = out.keep()?;
    let job = JobFile {
        format: adcat_concat::job::dir::JOB_FORMAT.into(),
        version: adcat_concat::job::dir::JOB_VERSION,
        output: location(&p.output)?,
        staging: staging.to_string_lossy().into_owned(),
        output_format: p.format.name().into(),
        inputs,
        max_memory: p.copts.write.max_memory,
        shape: [report.shape.0, report.shape.1],
        plan: report.job,
        convert,
        staging_token,
    };
    Ok((job, report.warnings))
}

/// Remove a job's output under construction (nothing is published). An output in
/// object storage is removed only while it is still this job's (its marker's token).
pub(crate) fn discard(job: &JobFile) -> Result<()> {
    let staging = Path::new(&job.staging);
    if is_url(staging) {
        let url = &job.staging;
        // Never a published store (tidying cut short leaves the marker), nor another
        // run's unpublished one.
        let ours = adcat_zarr::publish::marker_token(url).map_err(|e| anyhow!("{e}"))? == job.staging_token;
        if !ours || adcat_zarr::publish::is_published(url).map_err(|e| anyhow!("{e}"))? {
            return Ok(());
        }
        return adcat_zarr::publish::remove(url).map_err(|e| anyhow!("{e}"));
    }
    match std::fs::remove_dir_all(staging) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("{}: cannot remove the job's output under construction", staging.display())),
        _ => Ok(()),
    }
}

/// Which tasks a `run` takes.
#[derive(Debug)]
enum Selection {
    All,
    One(usize),
    Range(usize, usize),
    Worker(usize, usize),
}

impl Selection {
    fn parse(task: Option<usize>, tasks: Option<String>, worker: Option<String>) -> Result<Selection> {
        let pair = |s: &str, sep: char, what: &str| -> Result<(usize, usize)> {
            let (a, b) = s.split_once(sep).ok_or_else(|| anyhow!("--{what} {s:?}: expected two numbers separated by {sep:?}"))?;
            Ok((a.trim().parse().map_err(|_| anyhow!("--{what} {s:?}: not a number"))?, b.trim().parse().map_err(|_| anyhow!("--{what} {s:?}: not a number"))?))
        };
        Ok(match (task, tasks, worker) {
            (Some(t), _, _) => Selection::One(t),
            (_, Some(r), _) => {
                let (a, b) = pair(&r, '-', "tasks")?;
                Selection::Range(a, b)
            }
            (_, _, Some(w)) => {
                let (i, k) = pair(&w, '/', "worker")?;
                if k == 0 || i >= k {
                    bail!("--worker {w:?}: I/K needs 0 <= I < K");
                }
                Selection::Worker(i, k)
            }
            _ => Selection::All,
        })
    }

    fn tasks(&self, n: usize) -> Result<Vec<usize>> {
        let check = |t: usize| if t < n { Ok(t) } else { Err(anyhow!("no task {t}: the job has tasks 0 to {}", n.saturating_sub(1))) };
        Ok(match *self {
            Selection::All => (0..n).collect(),
            Selection::One(t) => vec![check(t)?],
            Selection::Range(a, b) => (check(a)?..=check(b)?).collect(),
            Selection::Worker(i, k) => (i..n).step_by(k).collect(),
        })
    }
}

/// A job's inputs and its output under construction.
type JobStores = (Vec<Box<dyn Store>>, Box<dyn Store>);

/// A job's inputs, opened when first read.
fn open_job_inputs(job: &JobFile, budget: u64, follow: bool) -> Vec<Box<dyn Store>> {
    let iopts = InputOptions { follow_external: follow, max_memory: budget, budget_flag: true };
    job.inputs.iter().map(|i| lazy_input(Path::new(&i.path), iopts)).collect()
}

fn open_job_stores(job: &JobFile, budget: u64, follow: bool) -> Result<JobStores> {
    let inputs = open_job_inputs(job, budget, follow);
    let staging = Path::new(&job.staging);
    if is_url(staging) {
        let (out, _) = ZarrStore::open_url_staged(&job.staging, job.staging_token.as_deref(), Shared::Task).map_err(|e| anyhow!("{e}; create the job again"))?;
        return Ok((inputs, Box::new(Guarded::new(Box::new(out)))));
    }
    if !staging.is_dir() {
        bail!("{}: the job's output under construction is missing (published already, or removed); create the job again", staging.display());
    }
    let out = ZarrStore::open_shared(staging, Shared::Task).map_err(|e| anyhow!("{}: {e}", staging.display()))?;
    Ok((inputs, Box::new(Guarded::new(Box::new(out)))))
}

/// The counts of `element`, waiting for other workers' count tasks when `wait`.
fn counts_for(dir: &JobDir, plan: &JobPlan, element: usize, task: usize, wait: bool) -> adcat_concat::Result<Vec<Counts>> {
    let mut said = false;
    loop {
        match dir.counts(plan, element) {
            Ok(c) => return Ok(c),
            Err(missing) => {
                let failed: Vec<usize> = missing.iter().copied().filter(|&t| dir.failure(t).is_some()).collect();
                if !wait || !failed.is_empty() || guard::interrupted().is_some() {
                    let why = if failed.is_empty() { "have not run yet (run them first, or pass --wait)" } else { "failed" };
                    return Err(adcat_concat::ConcatError::Job(format!("task {task} needs the counts of tasks {missing:?}, which {why}")));
                }
                if !said {
                    eprintln!("adcat: task {task} waits for count tasks {missing:?}");
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

fn run_tasks(jobdir: &Path, sel: &Selection, wait: bool, budget: Option<u64>, follow: bool) -> Result<()> {
    guard::set_interrupt_note("finished tasks are kept; run the tasks again to continue".into());
    run_tasks_with(jobdir, sel, wait, budget, follow, &adcat_format::NoProgress)
}

fn run_tasks_with(jobdir: &Path, sel: &Selection, wait: bool, budget: Option<u64>, follow: bool, progress: &dyn adcat_format::Progress) -> Result<()> {
    let (dir, job) = JobDir::open(jobdir).map_err(|e| anyhow!("{e}"))?;
    check_inputs(&job)?;
    let plan = &job.plan;
    let mut chosen = sel.tasks(plan.tasks.len())?;
    // Count tasks first: a worker's writing tasks may need its own counts.
    chosen.sort_by_key(|&t| (plan.tasks[t].stage(), t));
    let budget = budget.unwrap_or(job.max_memory);
    let (inputs, out) = open_job_stores(&job, budget, follow)?;
    let refs: Vec<&dyn Store> = inputs.iter().map(|s| s.as_ref()).collect();
    let (mut failed, mut blocked) = (vec![], vec![]);
    let name = |e: adcat_concat::ConcatError| match e {
        adcat_concat::ConcatError::Output(inner) => format!("{}: {inner}", job.output),
        other => other.to_string(),
    };
    adcat_concat::run_tasks(&refs, out.as_ref(), budget, progress, |exec| {
        for &t in &chosen {
            if dir.is_done(t) {
                continue;
            }
            // Without --wait, a writing task whose counts are not all there is left
            // pending (not failed): it runs once the count tasks have.
            if !wait && plan.tasks[t].stage() == 1 && dir.counts(plan, plan.tasks[t].element).is_err() {
                blocked.push(t);
                continue;
            }
            let counts = |e: usize| counts_for(&dir, plan, e, t, wait);
            match exec.run(plan, t, &counts) {
                Ok(c) => dir.mark_done(t, c.as_ref())?,
                Err(e) if guard::interrupted().is_some() => return Err(e),
                Err(e) => {
                    let msg = name(e);
                    eprintln!("adcat: task {t} failed: {msg}");
                    dir.mark_failed(t, &msg)?;
                    failed.push(t);
                }
            }
        }
        Ok(())
    })
    .map_err(|e| anyhow!(name(e)))?;
    out.flush().map_err(|e| anyhow!("{}: {e}", job.staging))?;
    if !failed.is_empty() {
        bail!("{} task(s) failed: {failed:?}; see `adcat job status {}`", failed.len(), jobdir.display());
    }
    if !blocked.is_empty() {
        let n_count = plan.tasks.iter().filter(|t| t.stage() == 0).count();
        bail!("{} writing task(s) not run, their count tasks are not all done: {blocked:?}; run the count tasks (0-{}) first, or pass --wait", blocked.len(), n_count.saturating_sub(1));
    }
    Ok(())
}

fn status(jobdir: &Path, json: bool) -> Result<()> {
    let (dir, job) = JobDir::open(jobdir).map_err(|e| anyhow!("{e}"))?;
    let s = dir.status(job.plan.tasks.len());
    if json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    let pct = if s.tasks == 0 { 100.0 } else { 100.0 * s.done.len() as f64 / s.tasks as f64 };
    println!("{}: {} tasks: {} done ({pct:.0}%), {} pending, {} failed", jobdir.display(), s.tasks, s.done.len(), s.pending.len(), s.failed.len());
    for t in &s.failed {
        println!("  task {t} failed: {}", dir.failure(*t).unwrap_or_default().trim());
    }
    if s.pending.is_empty() && s.failed.is_empty() {
        println!("every task is done: adcat job finish {}", jobdir.display());
    }
    Ok(())
}

fn finish(jobdir: &Path, follow: bool) -> Result<()> {
    let (dir, job) = JobDir::open(jobdir).map_err(|e| anyhow!("{e}"))?;
    // A changed input explains pending tasks better than the count of them.
    check_inputs(&job)?;
    let s = dir.status(job.plan.tasks.len());
    if !s.pending.is_empty() || !s.failed.is_empty() {
        bail!("{}: not every task is done ({} pending, {} failed: {:?}); run them first (`adcat job status` lists them)", jobdir.display(), s.pending.len(), s.failed.len(), s.failed);
    }
    let counts = |e: usize| dir.counts(&job.plan, e).map_err(|m| adcat_concat::ConcatError::Job(format!("the counts of tasks {m:?} are missing")));
    finish_job(&job, &counts, follow)?;
    println!("{}: published", job.output);
    Ok(())
}

/// Complete every element of a job whose tasks all ran (`counts` gives an element's
/// counts, in plan order), convert the output if it is staged in another format, verify
/// it and publish it.
pub(crate) fn finish_job(job: &JobFile, counts: &dyn Fn(usize) -> adcat_concat::Result<Vec<Counts>>, follow: bool) -> Result<()> {
    check_inputs(job)?;
    // A finish whose process died while publishing in object storage is completed.
    if let (true, Some(token)) = (is_url(Path::new(&job.staging)), &job.staging_token) {
        if adcat_zarr::publish::resume_publication(&job.staging, token).map_err(|e| anyhow!("{e}"))? {
            return Ok(());
        }
    }
    let inputs = open_job_inputs(job, job.max_memory, follow);
    let refs: Vec<&dyn Store> = inputs.iter().map(|s| s.as_ref()).collect();
    let out = Output::reopen(Path::new(&job.output), Path::new(&job.staging), job.staging_token.as_deref())?;
    let plan = &job.plan;
    adcat_concat::run_tasks(&refs, out.store(), job.max_memory, &adcat_format::NoProgress, |exec| {
        for (e, el) in plan.elements.iter().enumerate() {
            exec.finish(el, &counts(e)?)?;
        }
        Ok(())
    })
    .map_err(|e| crate::EngineFailure::wrap(e, &job.output))?;
    let out = match &job.convert {
        Some(c) => {
            let compression = c.compression.as_deref().map(crate::parse_compression).transpose()?;
            let opts = adcat_format::layout::WriteOptions { compression, max_memory: job.max_memory, ..Default::default() };
            out.convert_to(OutFormat::H5ad, &opts)?
        }
        None => out,
    };
    out.commit(Some((job.shape[0], job.shape[1])))
}

/// Run task `t` of `job` in this process, given the counts of its element's count tasks
/// (in plan order; empty for a task that needs none). Returns a count task's counts.
/// Tasks are idempotent: running one again rewrites the same bytes.
pub(crate) fn run_one(job: &JobFile, t: usize, counts: Vec<Counts>, budget: Option<u64>, follow: bool) -> Result<Option<Counts>> {
    let plan = &job.plan;
    let task = plan.tasks.get(t).ok_or_else(|| anyhow!("no task {t}: the job has tasks 0 to {}", plan.tasks.len().saturating_sub(1)))?;
    let needed = plan.tasks.iter().filter(|c| c.element == task.element && c.stage() == 0).count();
    if task.stage() == 1 && counts.len() != needed {
        bail!("task {t} needs the counts of {needed} count task(s), {} were given", counts.len());
    }
    check_inputs_once(job)?;
    let budget = budget.unwrap_or(job.max_memory);
    let (inputs, out) = open_job_stores(job, budget, follow)?;
    let refs: Vec<&dyn Store> = inputs.iter().map(|s| s.as_ref()).collect();
    let name = |e: adcat_concat::ConcatError| crate::EngineFailure::wrap(e, &job.output);
    let c = adcat_concat::run_tasks(&refs, out.as_ref(), budget, &adcat_format::NoProgress, |exec| exec.run(plan, t, &|_| Ok(counts.clone()))).map_err(name)?;
    out.flush().map_err(|e| anyhow!("{}: {e}", job.output))?;
    Ok(c)
}

/// [`check_inputs`] once per process and job: a process running many tasks of a job
/// (a Dask worker) checks its inputs with the first, as `adcat job run` does.
fn check_inputs_once(job: &JobFile) -> Result<()> {
    use std::hash::{Hash, Hasher};
    static CHECKED: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&job.staging, &job.staging_token, &job.output).hash(&mut h);
    job.inputs.iter().for_each(|i| (&i.path, &i.fingerprint).hash(&mut h));
    let id = h.finish();
    if CHECKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&id) {
        return Ok(());
    }
    check_inputs(job)?;
    CHECKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(id);
    Ok(())
}
