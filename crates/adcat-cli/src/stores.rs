//! Opening stores by path, and writing outputs atomically.

use adcat_hdf5::{Hdf5Options, Hdf5Store};
use adcat_store::Store;
use adcat_zarr::publish::{self, Occupant, Publisher};
use adcat_zarr::s3::S3Url;
use adcat_zarr::{Shared, ZarrStore, ZarrVersion};
use anyhow::{anyhow, bail, Context, Result};
use crate::guard::{self, Guarded};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The on-disk format of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    H5ad,
    Zarr(ZarrVersion),
}

const HDF5_MAGIC: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

fn is_hdf5(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return false };
    // The superblock may follow a user block at 0, 512, 1024, 2048, ...
    let mut off = 0u64;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    while off + 8 <= len {
        let mut buf = [0u8; 8];
        if f.seek(SeekFrom::Start(off)).is_err() || f.read_exact(&mut buf).is_err() {
            return false;
        }
        if &buf == HDF5_MAGIC {
            return true;
        }
        off = if off == 0 { 512 } else { off * 2 };
    }
    false
}

/// Open an input store read-only, detecting its format from its contents. Its
/// operations fail once the job is interrupted (see [`guard`]).
/// How inputs are opened.
#[derive(Debug, Clone, Copy)]
pub struct InputOptions {
    /// Allow HDF5 links and datasets that read other files.
    pub follow_external: bool,
    /// The memory budget, also the most one chunk may decode to (chunks are decoded
    /// whole, whatever part of them a read needs).
    pub max_memory: u64,
    /// Whether the budget comes from `--max-memory` (for the message).
    pub budget_flag: bool,
}

/// Open an input with `opts`.
pub fn open_input(path: &Path, opts: InputOptions) -> Result<Box<dyn Store>> {
    Ok(Box::new(Guarded::new(open_bounded(path, opts)?)))
}

/// An input opened on first use: a task of a job reads a few of the job's inputs, and
/// opening all of them (a thousand HDF5 files) would be most of its cost.
pub fn lazy_input(path: &Path, opts: InputOptions) -> Box<dyn Store> {
    let location = path.display().to_string();
    Box::new(Guarded::new(Box::new(Lazy { path: path.to_path_buf(), location, opts, store: std::sync::OnceLock::new() })))
}

/// Whether `path` is a store in object storage (`s3://...`), not a local path.
pub fn is_url(path: &Path) -> bool {
    path.to_str().is_some_and(adcat_zarr::s3::is_url)
}

fn open_bounded(path: &Path, opts: InputOptions) -> Result<Box<dyn Store>> {
    if is_url(path) {
        // Its errors name the URL (`cannot open s3://...: ...`).
        return Ok(bounded(Box::new(ZarrStore::open_url(&path.to_string_lossy()).map_err(|e| anyhow!("{e}"))?), opts));
    }
    if !path.exists() {
        bail!("{}: no such file or directory (check the path; patterns like 'runs/*.h5ad' are expanded by adcat)", path.display());
    }
    // Messages name the store first (HDF5's already do; zarr's name the metadata file).
    let named = |e: adcat_store::StoreError| {
        let m = e.to_string();
        if m.starts_with(&path.display().to_string()) {
            anyhow!(m)
        } else {
            anyhow!("{}: {m}", path.display())
        }
    };
    let store: Box<dyn Store> = if path.is_dir() {
        Box::new(ZarrStore::open(path).map_err(named)?)
    } else if is_hdf5(path) {
        adcat_hdf5::set_open_file_limit(hdf5_open_limit(opts.max_memory));
        Box::new(Hdf5Store::open_with(path, Hdf5Options { follow_external_links: opts.follow_external }).map_err(named)?)
    } else {
        bail!("{}: not an AnnData store (neither an HDF5 file nor a zarr directory); `adcat inspect` shows what a store holds", path.display())
    };
    Ok(bounded(store, opts))
}

/// `store` with every read bounded by the memory budget.
fn bounded(store: Box<dyn Store>, opts: InputOptions) -> Box<dyn Store> {
    let hint: adcat_store::bounded::LimitHint = if opts.budget_flag {
        Box::new(|size| format!("that is the memory budget (--max-memory); pass --max-memory {} or more to read it", adcat_store::bounded::human_bytes(size)))
    } else {
        Box::new(|_| "that is adcat's default memory budget".to_owned())
    };
    Box::new(adcat_store::Bounded::new(store, opts.max_memory, hint))
}

/// Open HDF5 inputs allowed under a memory budget: libhdf5's caches of an open input
/// reach 2-4 MiB on files of many small chunks, so one per 16 MiB of budget (4 to 64).
fn hdf5_open_limit(budget: u64) -> usize {
    (budget / (16 << 20)).clamp(4, 64) as usize
}

struct Lazy {
    path: PathBuf,
    location: String,
    opts: InputOptions,
    store: std::sync::OnceLock<std::result::Result<Box<dyn Store>, String>>,
}

impl std::fmt::Debug for Lazy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lazy").field("location", &self.location).field("open", &self.store.get().is_some()).finish()
    }
}

impl Lazy {
    fn get(&self) -> adcat_store::Result<&dyn Store> {
        match self.store.get_or_init(|| open_bounded(&self.path, self.opts).map_err(|e| format!("{e:#}"))) {
            Ok(s) => Ok(s.as_ref()),
            Err(reason) => Err(adcat_store::StoreError::Open { location: self.location.clone(), reason: reason.clone() }),
        }
    }
}

/// Every operation opens the store first (once).
impl adcat_store::Forward for Lazy {
    fn target(&self, _path: &str) -> adcat_store::Result<&dyn Store> {
        self.get()
    }
}

impl Store for Lazy {
    fn location(&self) -> &str {
        &self.location
    }
    fn kind(&self) -> adcat_store::StoreKind {
        match self.get() {
            Ok(s) => s.kind(),
            Err(_) if is_url(&self.path) => adcat_store::StoreKind::ZarrV3,
            Err(_) if !self.path.is_dir() => adcat_store::StoreKind::Hdf5,
            Err(_) if self.path.join("zarr.json").exists() => adcat_store::StoreKind::ZarrV3,
            Err(_) => adcat_store::StoreKind::ZarrV2,
        }
    }
    fn flush(&self) -> adcat_store::Result<()> {
        match self.store.get() {
            Some(Ok(s)) => s.flush(),
            _ => Ok(()),
        }
    }
    adcat_store::forward_store!(
        node_kind, list, create_group, delete, attrs, set_attrs, create_array, array_meta, read, write, write_rows_range, resize,
        stored_bytes, is_fixed_ascii, is_record, read_record, record_fields, record_len, read_field, create_record, exists, attr,
        physical, virtual_sources, read_all, read_rows, write_rows,
    );
}

impl OutFormat {
    /// The store kind it writes.
    pub fn kind(self) -> adcat_store::StoreKind {
        match self {
            OutFormat::H5ad => adcat_store::StoreKind::Hdf5,
            OutFormat::Zarr(ZarrVersion::V2) => adcat_store::StoreKind::ZarrV2,
            OutFormat::Zarr(ZarrVersion::V3) => adcat_store::StoreKind::ZarrV3,
        }
    }

    /// `h5ad`, `zarr2` or `zarr3`.
    pub fn name(self) -> &'static str {
        match self {
            OutFormat::H5ad => "h5ad",
            OutFormat::Zarr(ZarrVersion::V2) => "zarr2",
            OutFormat::Zarr(ZarrVersion::V3) => "zarr3",
        }
    }
}

/// The output format implied by the path's extension.
pub fn output_format(path: &Path, zarr_format: u8) -> Result<OutFormat> {
    let format = format_from_extension(path, zarr_format)?;
    check_location(path, format)?;
    Ok(format)
}

/// The format the path's extension names (`.h5ad`/`.h5`/`.hdf5`, `.zarr`).
pub fn format_from_extension(path: &Path, zarr_format: u8) -> Result<OutFormat> {
    Ok(match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("h5ad") | Some("h5") | Some("hdf5") => OutFormat::H5ad,
        Some("zarr") => OutFormat::Zarr(if zarr_format == 2 { ZarrVersion::V2 } else { ZarrVersion::V3 }),
        _ => bail!("{}: cannot tell the output format from the extension; use .h5ad or .zarr", path.display()),
    })
}

/// Refuse a format that cannot be written at `path`: h5ad in object storage.
pub fn check_location(path: &Path, format: OutFormat) -> Result<()> {
    if is_url(path) && format == OutFormat::H5ad {
        bail!("{}: h5ad files cannot be written to object storage (HDF5 needs a file it can seek in and rewrite); write a .zarr there, or a local .h5ad and upload it", path.display());
    }
    Ok(())
}

/// A store being written beside its final path; renamed into place by [`Output::commit`],
/// removed on drop otherwise, so the final path only ever holds a complete output.
///
/// While it exists, the output path is locked (an advisory lock on a `.NAME.adcat-lock`
/// file beside it, released by the OS if the process dies), so a second adcat writing
/// the same output is refused instead of racing the first.
pub struct Output {
    tmp: PathBuf,
    dest: PathBuf,
    store: Option<Box<dyn Store>>,
    lock: Option<(PathBuf, File)>,
    /// Remove the temporary store unless committed (not a job's, which holds work).
    discard: bool,
    /// A job's staged store, converted into this output: removed once it is published.
    spent: Option<PathBuf>,
    /// An output in object storage, written in place and published by its root metadata
    /// (`tmp` and `dest` are then its URL).
    remote: Option<Publisher>,
}

/// A new empty store of `format` at `tmp`, which becomes `dest` (named in errors).
fn new_store(format: OutFormat, tmp: &Path, dest: &Path) -> Result<Box<dyn Store>> {
    let store: Box<dyn Store> = match format {
        OutFormat::H5ad => Box::new(Hdf5Store::create(tmp).map_err(|e| anyhow!("{}: {}", dest.display(), e))?),
        OutFormat::Zarr(v) => Box::new(ZarrStore::create(tmp, v).map_err(|e| anyhow!("{}: {}", dest.display(), e))?),
    };
    Ok(Box::new(Guarded::new(store)))
}

/// Take the lock for writing `dest` (`lock_path` beside it), or say who holds it.
fn lock_output(dest: &Path, lock_path: &Path) -> Result<File> {
    // A lock file removed by the previous holder between our open and our lock would
    // leave us locking a file nobody else can see: check we locked the one on disk.
    for _ in 0..10 {
        let f = OpenOptions::new().create(true).truncate(false).write(true).read(true).open(lock_path).with_context(|| format!("{}: cannot create the lock file {}", dest.display(), lock_path.display()))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                bail!("{}: another adcat process is writing this output; wait for it to finish (lock {})", dest.display(), lock_path.display())
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e).with_context(|| format!("{}: cannot lock {}", dest.display(), lock_path.display())),
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let same = match (f.metadata(), std::fs::metadata(lock_path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                continue;
            }
        }
        // Who holds the lock, for the next run's messages.
        let _ = f.set_len(0).and_then(|()| (&f).write_all(format!("{}\n", std::process::id()).as_bytes()));
        return Ok(f);
    }
    bail!("{}: cannot take the output lock {} (it keeps changing)", dest.display(), lock_path.display())
}

impl Output {
    /// Check the destination and create the temporary store.
    pub fn create(dest: &Path, format: OutFormat, force: bool, inputs: &[PathBuf]) -> Result<Output> {
        Output::create_as(dest, format, force, inputs, false)
    }

    /// The staging stores of jobs for `dest` (`.NAME.adcat-job-TOKEN` beside it; before
    /// tokens, `.NAME.adcat-job`), completed or not.
    fn job_stagings(parent: &Path, name: &str) -> Vec<PathBuf> {
        let prefix = format!(".{name}.adcat-job");
        let Ok(entries) = std::fs::read_dir(parent) else { return vec![] };
        entries
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n == prefix || (n.starts_with(&format!("{prefix}-")) && !n.ends_with(".old"))))
            .map(|e| e.path())
            .collect()
    }

    /// As [`Output::create`]; for a job (`job`), the store is built at a hidden sibling
    /// of its own, `.NAME.adcat-job-TOKEN` (so that two jobs for one output never write
    /// into the same store), and survives this process ([`Output::keep`]).
    pub fn create_as(dest: &Path, format: OutFormat, force: bool, inputs: &[PathBuf], job: bool) -> Result<Output> {
        if is_url(dest) {
            // A job's tasks write the unpublished store in place too.
            return Output::create_remote(dest, format, force, inputs, job);
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            bail!("{}: parent directory does not exist; create it first (mkdir -p)", dest.display());
        }
        let canon_parent = parent.canonicalize().with_context(|| format!("{}", parent.display()))?;
        let name = dest.file_name().ok_or_else(|| anyhow!("{}: not a file name", dest.display()))?;
        let dest_abs = canon_parent.join(name);
        check_not_an_input(dest, &dest_abs, inputs)?;
        let lock_path = canon_parent.join(format!(".{}.adcat-lock", name.to_string_lossy()));
        let lock = lock_output(dest, &lock_path)?;
        remove_leftovers(&canon_parent, &name.to_string_lossy());
        let mut out = Output { tmp: PathBuf::new(), dest: dest_abs.clone(), store: None, lock: Some((lock_path, lock)), discard: true, spent: None, remote: None };
        if dest.symlink_metadata().is_ok() {
            if !force {
                bail!("{}: output exists; pass --force to overwrite it", dest.display());
            }
            check_replaceable(dest, &dest_abs, inputs)?;
        }
        let name = name.to_string_lossy();
        let tmp = if job {
            let others = Output::job_stagings(&canon_parent, &name);
            if let (Some(other), false) = (others.first(), force) {
                bail!("{}: a job for this output already exists ({}); finish it, or pass --force to start over", dest.display(), other.display());
            }
            // A job still running there fails at its next task (its store is gone).
            for other in others {
                remove_path(&other)?;
            }
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            canon_parent.join(format!(".{name}.adcat-job-{}-{nanos}", std::process::id()))
        } else {
            canon_parent.join(format!(".{name}.adcat-tmp-{}", std::process::id()))
        };
        if tmp.exists() {
            remove_path(&tmp)?;
        }
        guard::register_temp(&tmp);
        out.tmp = tmp.clone();
        out.store = Some(new_store(format, &tmp, dest)?);
        Ok(out)
    }

    /// An output in object storage: checked, the prefix cleared with `force`, and a new
    /// store created under it (published by [`Output::commit`], removed on drop).
    fn create_remote(dest: &Path, format: OutFormat, force: bool, inputs: &[PathBuf], job: bool) -> Result<Output> {
        let OutFormat::Zarr(version) = format else {
            check_location(dest, format)?;
            bail!("{}: only zarr stores are written to object storage", dest.display());
        };
        let url = adcat_zarr::s3::normalize(&dest.to_string_lossy());
        let dest = PathBuf::from(&url);
        check_remote_not_an_input(&url, inputs)?;
        clear_remote(&url, force, job)?;
        // Registered first: a forced stop while the marker is written still removes it.
        guard::register_temp(&dest);
        let (store, publisher) = ZarrStore::create_url(&url, version, job).map_err(|e| {
            guard::unregister_temp(&dest);
            anyhow!("{e}")
        })?;
        let store: Box<dyn Store> = Box::new(Guarded::new(Box::new(store)));
        Ok(Output { tmp: dest.clone(), dest, store: Some(store), lock: None, discard: true, spent: None, remote: Some(publisher) })
    }

    /// The token of an output in object storage under construction (a job records it,
    /// see `ZarrStore::open_url_staged`).
    pub fn remote_token(&self) -> Option<String> {
        self.remote.as_ref().map(|p| p.token().to_owned())
    }

    /// Keep the store for the tasks of a job: flush and close it, release the lock, and
    /// leave it in place.
    pub fn keep(mut self) -> Result<PathBuf> {
        if let Some(s) = self.store.take() {
            s.flush().map_err(|e| anyhow!("{}: {}", self.dest.display(), e))?;
        }
        self.discard = false;
        guard::unregister_temp(&self.tmp);
        Ok(std::mem::take(&mut self.tmp))
    }

    /// Take up a job's store at `staging` to finish and publish it as `dest`.
    pub fn reopen(dest: &Path, staging: &Path, token: Option<&str>) -> Result<Output> {
        if is_url(dest) {
            let (store, publisher) = ZarrStore::open_url_staged(&dest.to_string_lossy(), token, Shared::Finish).map_err(|e| anyhow!("{e}; create the job again"))?;
            let store: Box<dyn Store> = Box::new(Guarded::new(Box::new(store)));
            return Ok(Output { tmp: dest.to_path_buf(), dest: dest.to_path_buf(), store: Some(store), lock: None, discard: false, spent: None, remote: Some(publisher) });
        }
        let (parent, name) = split_dest(dest)?;
        let lock_path = parent.join(format!(".{name}.adcat-lock"));
        let lock = lock_output(dest, &lock_path)?;
        // An earlier finish of this output that died (converting, or swapping) left them.
        remove_leftovers(&parent, &name);
        let store: Box<dyn Store> = if staging.is_dir() {
            Box::new(ZarrStore::open_shared(staging, Shared::Finish).map_err(|e| anyhow!("{}: {}", staging.display(), e))?)
        } else {
            bail!("{}: the job's output under construction is missing; create the job again", staging.display())
        };
        Ok(Output { tmp: staging.to_path_buf(), dest: parent.join(name), store: Some(Box::new(Guarded::new(store))), lock: Some((lock_path, lock)), discard: false, spent: None, remote: None })
    }

    /// Convert a job's finished staging store (zarr) into a new temporary output of
    /// `format` (h5ad: libhdf5 takes one writing process, so a job's tasks write zarr and
    /// this one pass rewrites it). The staging store is kept until the output is
    /// published, so a failed conversion can be retried.
    pub fn convert_to(mut self, format: OutFormat, opts: &adcat_format::layout::WriteOptions) -> Result<Output> {
        if let Some(s) = self.store.take() {
            s.flush().map_err(|e| anyhow!("{}: {}", self.dest.display(), e))?;
        }
        let (parent, name) = split_dest(&self.dest)?;
        let tmp = parent.join(format!(".{name}.adcat-tmp-{}", std::process::id()));
        guard::register_temp(&tmp);
        let mut out = Output { tmp: tmp.clone(), dest: self.dest.clone(), store: None, lock: self.lock.take(), discard: true, spent: Some(self.tmp.clone()), remote: None };
        out.store = Some(new_store(format, &tmp, &self.dest)?);
        let src = ZarrStore::open(&self.tmp).map_err(|e| anyhow!("{}: {}", self.tmp.display(), e))?;
        adcat_format::convert(&Guarded::new(Box::new(src)), out.store(), opts, &adcat_format::NoProgress).map_err(|e| {
            if e.is_output() {
                anyhow!("{}: {e}", self.dest.display())
            } else {
                anyhow!("{}: converting the job's output: {e}", self.tmp.display())
            }
        })?;
        Ok(out)
    }

    /// A copy of the existing store `dest` to change as a whole (`adcat append`): locked
    /// as an output, copied beside it (zarr: by hard links, the writes then replace the
    /// linked files; h5ad: a file copy, cloned where the file system can), opened for
    /// writing. [`Output::commit`] swaps it in; dropped, it is removed and `dest` is as
    /// it was. `inputs` must not include `dest`.
    pub fn shadow(dest: &Path, inputs: &[PathBuf]) -> Result<Output> {
        if is_url(dest) {
            bail!("{}: appending to a store in object storage is not supported yet; append to a local copy, or concatenate into a new store", dest.display());
        }
        // A symbolic link to a store: the store itself is swapped, the link stays.
        let (parent, name) = split_dest(dest)?;
        let given = parent.join(&name);
        let real = match given.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => given.canonicalize().with_context(|| format!("{}: the link's target", dest.display()))?,
            _ => given,
        };
        let (parent, name) = split_dest(&real)?;
        let dest_abs = parent.join(&name);
        for input in inputs {
            if input.canonicalize().ok() == dest_abs.canonicalize().ok() {
                bail!("{}: is the store being appended to; an input cannot be the store itself", input.display());
            }
        }
        let lock_path = parent.join(format!(".{name}.adcat-lock"));
        let lock = lock_output(dest, &lock_path)?;
        // Before looking for the store: a run stopped while swapping may have left it aside.
        remove_leftovers(&parent, &name);
        if !dest_abs.exists() {
            bail!("{}: no such store", dest.display());
        }
        let tmp = parent.join(format!(".{name}.adcat-tmp-{}", std::process::id()));
        if tmp.exists() {
            remove_path(&tmp)?;
        }
        guard::register_temp(&tmp);
        let mut out = Output { tmp: tmp.clone(), dest: dest_abs.clone(), store: None, lock: Some((lock_path, lock)), discard: true, spent: None, remote: None };
        let store: Box<dyn Store> = if dest_abs.is_dir() {
            adcat_zarr::shadow::link_tree(&dest_abs, &tmp).with_context(|| format!("{}: cannot copy the store beside it to append", dest.display()))?;
            Box::new(ZarrStore::open_shadow(&tmp).map_err(|e| anyhow!("{}: {}", dest.display(), e))?)
        } else if is_hdf5(&dest_abs) {
            std::fs::copy(&dest_abs, &tmp).with_context(|| format!("{}: cannot copy the store beside it to append", dest.display()))?;
            Box::new(Hdf5Store::open_rw(&tmp).map_err(|e| anyhow!("{}: {}", dest.display(), e))?)
        } else {
            bail!("{}: not an AnnData store (an .h5ad file or a .zarr directory)", dest.display());
        };
        out.store = Some(Box::new(Guarded::new(store)));
        Ok(out)
    }

    /// A local directory for scratch work: beside the output, or the system's temporary
    /// directory for an output in object storage.
    pub fn scratch_dir(&self) -> PathBuf {
        match (&self.remote, self.tmp.parent()) {
            (None, Some(p)) if !p.as_os_str().is_empty() => p.to_path_buf(),
            (None, _) => PathBuf::from("."),
            (Some(_), _) => std::env::temp_dir(),
        }
    }

    /// An empty scratch zarr store beside `dest` (in [`Output::scratch_dir`]), for work
    /// that is not part of the output; removed when dropped (or by the next run, if this
    /// one dies).
    pub fn scratch(&self, label: &str) -> Result<Scratch> {
        let name = self.tmp.file_name().map_or_else(|| "adcat".into(), |n| n.to_string_lossy().into_owned());
        let path = self.scratch_dir().join(format!("{name}.{label}"));
        if path.exists() {
            remove_path(&path)?;
        }
        guard::register_temp(&path);
        let store = ZarrStore::create(&path, ZarrVersion::V3).map_err(|e| anyhow!("{}: scratch store {}: {e}", self.dest.display(), path.display()))?;
        Ok(Scratch { path, store: Some(Box::new(Guarded::new(Box::new(store)))) })
    }

    /// The store to write into.
    pub fn store(&self) -> &dyn Store {
        self.store.as_deref().expect("store is present until commit")
    }

    /// Flush and close the output, check it, and move it into place.
    ///
    /// The check reopens the written store from disk and validates it against the
    /// AnnData format (encodings, shapes, sparse structure ends); `expect` gives the
    /// `(n_obs, n_vars)` the job planned. Anything wrong keeps the output out of place.
    pub fn commit(mut self, expect: Option<(u64, u64)>) -> Result<()> {
        if self.remote.is_some() {
            return self.publish(expect);
        }
        if let Some(s) = self.store.take() {
            s.flush().map_err(|e| anyhow!("{}: {}", self.dest.display(), e))?;
            drop(s);
        }
        let written: Box<dyn Store> = if self.tmp.is_dir() {
            Box::new(ZarrStore::open(&self.tmp).map_err(|e| anyhow!("{}: reopening the written output: {}", self.dest.display(), e))?)
        } else {
            Box::new(Hdf5Store::open(&self.tmp).map_err(|e| anyhow!("{}: reopening the written output: {}", self.dest.display(), e))?)
        };
        verify(written.as_ref(), &self.dest, expect)?;
        drop(written);
        if self.tmp.is_file() {
            // The bytes reach the disk before the name does (a power loss must not put
            // a file with unwritten blocks in place of a good one).
            File::open(&self.tmp).and_then(|f| f.sync_all()).with_context(|| format!("{}: cannot flush the output to disk", self.dest.display()))?;
        }
        // A file is replaced atomically by rename. A directory cannot be renamed over a
        // non-empty one: move the old one aside first and put it back if the swap fails.
        // Named after the temporary output, so a run killed mid-swap leaves something the
        // next run recognises (see `remove_leftovers`).
        let backup = PathBuf::from(format!("{}.old", self.tmp.display()));
        let replaced = self.dest.is_dir();
        if replaced && exchange(&self.tmp, &self.dest) {
            // The old store is now at the temporary path: at no moment was the
            // destination missing.
            let _ = remove_path(&self.tmp);
            guard::unregister_temp(&self.tmp);
            return Ok(());
        }
        if replaced {
            // From here a forced exit must not remove the new store (it may already be
            // in place); a run killed between the renames is repaired by the next one.
            guard::unregister_temp(&self.tmp);
            std::fs::rename(&self.dest, &backup).with_context(|| format!("{}: cannot move the existing output aside", self.dest.display()))?;
        }
        if let Err(e) = std::fs::rename(&self.tmp, &self.dest) {
            if replaced {
                let _ = std::fs::rename(&backup, &self.dest);
            }
            return Err(e).with_context(|| format!("{}: cannot move the output into place", self.dest.display()));
        }
        guard::unregister_temp(&self.tmp);
        if replaced {
            let _ = remove_path(&backup);
        }
        if let Some(spent) = self.spent.take() {
            let _ = remove_path(&spent);
        }
        Ok(())
    }
}

impl Output {
    /// Commit an output in object storage: flush, verify through the open store (its
    /// root metadata is not in storage yet), then write the root metadata.
    fn publish(mut self, expect: Option<(u64, u64)>) -> Result<()> {
        let store = self.store.take().expect("store is present until commit");
        store.flush().map_err(|e| anyhow!("{}: {}", self.dest.display(), e))?;
        verify(store.as_ref(), &self.dest, expect)?;
        drop(store);
        // From the first root document on, a forced stop must not remove the store: it is
        // complete and verified (a root cut short is still marked as a leftover).
        guard::unregister_temp(&self.tmp);
        if let Some(publisher) = &self.remote {
            publisher.publish().map_err(|e| anyhow!("{e}"))?;
            self.discard = false;
            if let Err(e) = publisher.tidy() {
                eprintln!("adcat: warning: {} is published, but {e}; the next run with --force on this prefix removes them", self.dest.display());
            }
        }
        Ok(())
    }

    /// Remove an unpublished output in object storage, or say what is left.
    fn discard_remote(&self, publisher: &Publisher) {
        if let Err(e) = publisher.discard() {
            let url = publisher.url();
            eprintln!("adcat: warning: cannot remove the partial output under {url} ({e}); it has no root metadata, so readers do not open it; remove it with `aws s3 rm --recursive {url}/` or run again with --force");
        }
    }
}

/// Swap two paths atomically (Linux `renameat2` with `RENAME_EXCHANGE`); false where
/// the system or file system cannot, and nothing changed.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (Ok(a), Ok(b)) = (std::ffi::CString::new(a.as_os_str().as_bytes()), std::ffi::CString::new(b.as_os_str().as_bytes())) else { return false };
    // SAFETY: both are valid NUL-terminated paths; the call reads them only.
    unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> bool {
    false
}

/// Check a written store against the AnnData format and the planned shape.
fn verify(written: &dyn Store, dest: &Path, expect: Option<(u64, u64)>) -> Result<()> {
    let report = match adcat_format::collection::datasets(written).map_err(|e| anyhow!("{}: {e}", dest.display()))? {
        Some(names) => adcat_format::collection::validate(written, &names, false),
        None => adcat_format::validate::validate(written, false),
    };
    if let Some(p) = report.problems.first() {
        bail!("{}: the written output failed verification ({} problem(s)), first: {p}; nothing was published at the path, please report this as a bug", dest.display(), report.problems.len());
    }
    if let Some((n_obs, n_vars)) = expect {
        if (report.n_obs, report.n_vars) != (Some(n_obs), Some(n_vars)) {
            bail!("{}: the written output has shape {:?} x {:?}, planned {n_obs} x {n_vars}", dest.display(), report.n_obs, report.n_vars);
        }
    }
    Ok(())
}

impl Drop for Output {
    fn drop(&mut self) {
        self.store.take();
        if let Some(publisher) = self.remote.take() {
            if self.discard {
                self.discard_remote(&publisher);
            }
            guard::unregister_temp(&self.tmp);
            return;
        }
        if self.discard && !self.tmp.as_os_str().is_empty() && self.tmp.exists() {
            let _ = remove_path(&self.tmp);
        }
        guard::unregister_temp(&self.tmp);
        // Remove the lock file while still holding the lock, then release it.
        if let Some((p, f)) = self.lock.take() {
            let _ = std::fs::remove_file(&p);
            drop(f);
        }
    }
}

/// A scratch store, removed when dropped.
pub struct Scratch {
    path: PathBuf,
    store: Option<Box<dyn Store>>,
}

impl Scratch {
    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_deref().expect("present until dropped")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.store.take();
        let _ = remove_path(&self.path);
        guard::unregister_temp(&self.path);
    }
}

/// The canonical parent directory and the file name of an output path.
fn split_dest(dest: &Path) -> Result<(PathBuf, String)> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = parent.canonicalize().with_context(|| format!("{}: parent directory", dest.display()))?;
    let name = dest.file_name().ok_or_else(|| anyhow!("{}: not a file name", dest.display()))?;
    Ok((parent, name.to_string_lossy().into_owned()))
}

/// Refuse an output that is an input, or lies inside an input store.
pub(crate) fn check_not_an_input(dest: &Path, dest_abs: &Path, inputs: &[PathBuf]) -> Result<()> {
    let dest_real = dest_abs.canonicalize().unwrap_or_else(|_| dest_abs.to_path_buf());
    for input in inputs {
        let Ok(c) = input.canonicalize() else { continue };
        if c == dest_real || c == dest_abs {
            bail!("{}: output is the same as an input; refusing to overwrite an input (choose another output path)", dest.display());
        }
        if c.is_dir() && dest_real.starts_with(&c) {
            bail!("{}: output would be written inside the input store {}; inputs are never modified (choose a path outside it)", dest.display(), input.display());
        }
    }
    Ok(())
}

/// Refuse an output URL that is an input's, or lies inside or around an input store in
/// object storage (`--force` would remove it).
pub(crate) fn check_remote_not_an_input(url: &str, inputs: &[PathBuf]) -> Result<()> {
    let Ok(out) = S3Url::parse(url) else { return Ok(()) };
    let inside = |a: &S3Url, b: &S3Url| a.bucket == b.bucket && (a.prefix == b.prefix || b.prefix.is_empty() || a.prefix.starts_with(&format!("{}/", b.prefix)));
    for input in inputs.iter().filter_map(|p| p.to_str()).filter_map(|p| S3Url::parse(p).ok()) {
        if inside(&out, &input) {
            bail!("{url}: output is an input or lies inside the input store {input}; inputs are never modified (choose another prefix)");
        }
        if inside(&input, &out) {
            bail!("{url}: holds the input {input}; an output never replaces a prefix holding an input (choose another prefix)");
        }
    }
    Ok(())
}

/// Make sure nothing is under the output prefix `url`: an AnnData store or the partial
/// output of an interrupted run is removed with `force`; anything else is refused.
fn clear_remote(url: &str, force: bool, job: bool) -> Result<()> {
    let why = match publish::occupant(url).map_err(|e| anyhow!("{e}"))? {
        Occupant::Nothing => return Ok(()),
        Occupant::Store { anndata: true } if force => None,
        Occupant::Leftover { job: false } if force => None,
        // Its tasks may be writing it: only a new job for the output replaces it.
        Occupant::Leftover { job: true } if force && job => None,
        Occupant::Store { anndata: true } => Some("output exists; pass --force to overwrite it".to_owned()),
        Occupant::Leftover { job: false } => Some("holds the partial output of an adcat run that was stopped before it could clean up; pass --force to remove it".to_owned()),
        Occupant::Leftover { job: true } if job => Some("an adcat job is building this output; finish it, or pass --force to start the job over".to_owned()),
        Occupant::Leftover { job: true } => Some("an adcat job is building this output (its tasks may be writing it); finish the job, or start it over with `adcat job create --force`".to_owned()),
        Occupant::Store { anndata: false } => Some("is a zarr store but not an AnnData store; --force replaces only AnnData stores (remove it yourself if you mean to)".to_owned()),
        Occupant::Other => Some("holds objects that are not a zarr store; outputs are written to an empty prefix, or over an AnnData store with --force".to_owned()),
    };
    if let Some(why) = why {
        bail!("{url}: {why}");
    }
    publish::remove(url).map_err(|e| anyhow!("{url}: cannot remove the existing output: {e}"))
}

/// What is under the output prefix `url` (for callers that classify the refusal).
pub fn remote_occupant(url: &Path) -> Result<Occupant> {
    publish::occupant(&url.to_string_lossy()).map_err(|e| anyhow!("{e}"))
}

/// `--force` replaces a file or an AnnData store, nothing else: never a directory that
/// holds an input or the working directory, and never a directory that is not a store.
pub(crate) fn check_replaceable(dest: &Path, dest_abs: &Path, inputs: &[PathBuf]) -> Result<()> {
    let meta = std::fs::symlink_metadata(dest_abs).with_context(|| format!("{}", dest.display()))?;
    if meta.file_type().is_symlink() || meta.is_file() {
        return Ok(()); // the link or file itself is replaced by rename
    }
    if !meta.is_dir() {
        bail!("{}: exists and is not a regular file or directory; --force replaces only files and AnnData stores", dest.display());
    }
    let real = dest_abs.canonicalize().with_context(|| format!("{}", dest.display()))?;
    for input in inputs {
        if input.canonicalize().is_ok_and(|c| c.starts_with(&real)) {
            bail!("{}: contains the input {}; --force never replaces a directory holding an input (choose another output path)", dest.display(), input.display());
        }
    }
    if std::env::current_dir().and_then(|d| d.canonicalize()).is_ok_and(|cwd| cwd.starts_with(&real)) {
        bail!("{}: is the working directory or one of its parents; --force never replaces it", dest.display());
    }
    if !is_zarr_store(&real) {
        bail!("{}: is a directory but not a zarr store; --force replaces only files and AnnData stores (remove it yourself if you mean to)", dest.display());
    }
    Ok(())
}

/// A zarr v2 or v3 hierarchy: its root holds group metadata.
fn is_zarr_store(dir: &Path) -> bool {
    ["zarr.json", ".zgroup"].iter().any(|m| dir.join(m).is_file())
}

/// Remove partial outputs of earlier runs on the same output that were killed
/// (SIGKILL, OOM killer, lost node) before they could clean up. Called with the output's
/// lock held, so no live adcat owns them.
fn remove_leftovers(parent: &Path, name: &str) {
    let (tmp, job) = (format!(".{name}.adcat-tmp-"), format!(".{name}.adcat-job"));
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let file_name = e.file_name();
        let Some(n) = file_name.to_str() else { continue };
        // A job's staging is live work; only the old output it was swapped with is left.
        let rest = match (n.strip_prefix(&tmp), n.strip_prefix(&job)) {
            (Some(rest), _) => rest,
            (None, Some(rest)) if n.ends_with(".old") => rest.trim_start_matches('-'),
            _ => continue,
        };
        let pid = rest.split(['.', '-']).next().unwrap_or(rest);
        let p = e.path();
        let dest = parent.join(name);
        if n.ends_with(".old") && dest.symlink_metadata().is_err() {
            // Killed between moving the old output aside and moving the new one in.
            match std::fs::rename(&p, &dest) {
                Ok(()) => eprintln!("adcat: restored {} from {}, left by an earlier run (process {pid}) that was stopped while replacing it", dest.display(), p.display()),
                Err(err) => eprintln!("adcat: warning: cannot restore {} from {}: {err}", dest.display(), p.display()),
            }
            continue;
        }
        match remove_path(&p) {
            Ok(()) => eprintln!("adcat: removed {}, the partial output of an earlier run (process {pid}) that was stopped before it could clean up", p.display()),
            Err(err) => eprintln!("adcat: warning: cannot remove {}, the partial output of an earlier run (process {pid}): {err}", p.display()),
        }
    }
}

fn remove_path(p: &Path) -> std::io::Result<()> {
    if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
}
