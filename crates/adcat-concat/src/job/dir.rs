//! A job directory: the plan and what it needs (`job.json`), and one record per finished
//! task (`done/N.json`, holding a count task's counts), written atomically so that any
//! number of processes on any number of machines sharing the directory can run tasks,
//! and a killed one leaves nothing half-recorded.

use super::{Action, Counts, JobPlan};
use crate::{ConcatError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The job file's format name and version.
pub const JOB_FORMAT: &str = "adcat-job";
/// Version of `job.json`.
pub const JOB_VERSION: u32 = 1;

/// One input of a job, with the identity it had when the job was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInput {
    /// Absolute path or URL.
    pub path: String,
    /// Cheap identity (size and modification time of its files): a change since the job
    /// was created makes `run` and `finish` refuse.
    pub fingerprint: String,
}

/// `job.json`: everything a process needs to run a task of the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFile {
    /// [`JOB_FORMAT`].
    pub format: String,
    /// [`JOB_VERSION`].
    pub version: u32,
    /// Where `finish` publishes the output.
    pub output: String,
    /// The output under construction (a hidden sibling of `output`).
    pub staging: String,
    /// `h5ad`, `zarr2` or `zarr3`.
    pub output_format: String,
    /// The inputs, in order.
    pub inputs: Vec<JobInput>,
    /// Memory budget of each task (bytes), unless `run` is given another.
    pub max_memory: u64,
    /// Output shape (obs, var).
    pub shape: [u64; 2],
    /// The plan's tasks and elements.
    pub plan: JobPlan,
    /// Set when tasks cannot write the output's format side by side (h5ad: libhdf5
    /// takes one writing process): the staging is then a zarr store, which `finish`
    /// converts into the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<ConvertOnFinish>,
    /// For an output in object storage, built in place: the token of its marker, which
    /// tasks check so that they never write into another run's store at the prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_token: Option<String>,
}

impl JobFile {
    /// Read a job from its JSON text, refusing other formats and versions.
    pub fn from_json(text: &[u8]) -> std::result::Result<JobFile, String> {
        let v: serde_json::Value = serde_json::from_slice(text).map_err(|e| format!("not a job file: {e}"))?;
        let (format, version) = (v.get("format").and_then(|f| f.as_str()), v.get("version").and_then(|f| f.as_u64()));
        if format != Some(JOB_FORMAT) || version != Some(JOB_VERSION as u64) {
            return Err(format!("not an adcat job of version {JOB_VERSION}; create the job again with this adcat"));
        }
        serde_json::from_value(v).map_err(|e| format!("not a valid job: {e}"))
    }
}

/// How `finish` converts a job's staged zarr store into its output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvertOnFinish {
    /// The output's compression as `--compression` takes it (absent: the format's default).
    #[serde(default)]
    pub compression: Option<String>,
}

/// The state of a job's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Number of tasks.
    pub tasks: usize,
    /// Finished tasks.
    pub done: Vec<usize>,
    /// Tasks not finished and not failed.
    pub pending: Vec<usize>,
    /// Tasks whose last run failed (and have not succeeded since).
    pub failed: Vec<usize>,
}

/// A job directory on a (shared) filesystem.
#[derive(Debug, Clone)]
pub struct JobDir {
    root: PathBuf,
}

fn io(what: &str, p: &Path, e: std::io::Error) -> ConcatError {
    ConcatError::Job(format!("{}: cannot {what}: {e}", p.display()))
}

/// Write `bytes` to `p` through a temporary file renamed into place.
fn write_atomic(p: &Path, bytes: &[u8]) -> Result<()> {
    let dir = p.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io("write", p, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| io("write", p, e))?;
    tmp.as_file().sync_all().map_err(|e| io("write", p, e))?;
    tmp.persist(p).map_err(|e| io("write", p, e.error))?;
    Ok(())
}

impl JobDir {
    /// Create the directory (new or empty) and write `job.json`.
    pub fn create(root: &Path, job: &JobFile) -> Result<JobDir> {
        if root.exists() && std::fs::read_dir(root).map_err(|e| io("read", root, e))?.next().is_some() {
            return Err(ConcatError::Job(format!("{}: job directory exists and is not empty; choose a new one", root.display())));
        }
        // job.json comes last and alone: a directory without it holds no job.
        std::fs::create_dir_all(root).map_err(|e| io("create", root, e))?;
        let dir = JobDir { root: root.to_path_buf() };
        let text = serde_json::to_vec_pretty(job).map_err(|e| ConcatError::Job(e.to_string()))?;
        write_atomic(&dir.root.join("job.json"), &text)?;
        Ok(dir)
    }

    /// Open a job directory and read its `job.json`.
    pub fn open(root: &Path) -> Result<(JobDir, JobFile)> {
        let p = root.join("job.json");
        let text = std::fs::read(&p).map_err(|e| io("read the job (is this a job directory made by `adcat job create`?)", &p, e))?;
        let job = JobFile::from_json(&text).map_err(|e| ConcatError::Job(format!("{}: {e}", p.display())))?;
        Ok((JobDir { root: root.to_path_buf() }, job))
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn done_path(&self, t: usize) -> PathBuf {
        self.root.join("done").join(format!("{t}.json"))
    }

    fn failed_path(&self, t: usize) -> PathBuf {
        self.root.join("failed").join(format!("{t}.txt"))
    }

    /// Whether task `t` finished.
    pub fn is_done(&self, t: usize) -> bool {
        self.done_path(t).is_file()
    }

    /// Record that task `t` finished (with a count task's counts).
    pub fn mark_done(&self, t: usize, counts: Option<&Counts>) -> Result<()> {
        let text = serde_json::to_vec(&serde_json::json!({ "task": t, "counts": counts })).map_err(|e| ConcatError::Job(e.to_string()))?;
        write_atomic(&self.done_path(t), &text)?;
        let _ = std::fs::remove_file(self.failed_path(t));
        Ok(())
    }

    /// Record that task `t` failed, with the message.
    pub fn mark_failed(&self, t: usize, message: &str) -> Result<()> {
        write_atomic(&self.failed_path(t), message.as_bytes())
    }

    /// The message of a failed task.
    pub fn failure(&self, t: usize) -> Option<String> {
        std::fs::read_to_string(self.failed_path(t)).ok()
    }

    /// Done, pending and failed tasks of a plan of `n` tasks.
    pub fn status(&self, n: usize) -> Status {
        let listed = |sub: &str, ext: &str| -> BTreeSet<usize> {
            let Ok(rd) = std::fs::read_dir(self.root.join(sub)) else { return BTreeSet::new() };
            rd.flatten().filter_map(|e| e.file_name().to_str()?.strip_suffix(ext)?.parse().ok()).filter(|&t| t < n).collect()
        };
        let done = listed("done", ".json");
        let failed: BTreeSet<usize> = listed("failed", ".txt").difference(&done).copied().collect();
        let pending = (0..n).filter(|t| !done.contains(t) && !failed.contains(t)).collect();
        Status { tasks: n, done: done.into_iter().collect(), pending, failed: failed.into_iter().collect() }
    }

    /// The counts of every count task of `element`, in plan order; the tasks not done yet
    /// are returned as the error's list.
    pub fn counts(&self, plan: &JobPlan, element: usize) -> std::result::Result<Vec<Counts>, Vec<usize>> {
        let mine: Vec<usize> = (0..plan.tasks.len()).filter(|&t| plan.tasks[t].element == element && matches!(plan.tasks[t].action, Action::Count { .. })).collect();
        let missing: Vec<usize> = mine.iter().copied().filter(|&t| !self.is_done(t)).collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        let mut out = vec![];
        for t in mine {
            let v: Option<serde_json::Value> = std::fs::read(self.done_path(t)).ok().and_then(|b| serde_json::from_slice(&b).ok());
            match v.and_then(|v| serde_json::from_value::<Counts>(v["counts"].clone()).ok()) {
                Some(c) => out.push(c),
                None => return Err(vec![t]),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_atomic_files_and_status_follows_them() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("job");
        let job = JobFile {
            format: JOB_FORMAT.into(),
            version: JOB_VERSION,
            output: "o.zarr".into(),
            staging: ".o.zarr.adcat-job".into(),
            output_format: "zarr3".into(),
            inputs: vec![],
            max_memory: 1 << 20,
            shape: [0, 0],
            plan: JobPlan::default(),
            convert: Some(ConvertOnFinish { compression: Some("gzip:4".into()) }),
            staging_token: None,
        };
        let dir = JobDir::create(&root, &job).unwrap();
        assert!(JobDir::create(&root, &job).is_err(), "a used job directory is refused");
        assert_eq!(JobDir::open(&root).unwrap().1, job);
        dir.mark_failed(1, "boom").unwrap();
        dir.mark_done(2, Some(&vec![3, 4])).unwrap();
        let s = dir.status(4);
        assert_eq!((s.done, s.failed, s.pending), (vec![2], vec![1], vec![0, 3]));
        dir.mark_done(1, None).unwrap();
        assert_eq!(dir.status(4).failed, Vec::<usize>::new());
    }
}
