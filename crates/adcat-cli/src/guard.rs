//! Interruption and faults: SIGINT/SIGTERM stop the job and remove the partial output
//! (exit status 128 + signal, as shells expect); a file-size limit (SIGXFSZ) becomes an
//! ordinary write error instead of killing the process with the output half written.
//!
//! Stopping is cooperative first: every store operation of the job goes through
//! [`Guarded`], which fails with "interrupted" once a signal has arrived, so the job
//! unwinds through its normal error path and the output's `Drop` removes the temporary
//! store. If the job does not get there within [`GRACE`] (or a second signal arrives),
//! the signal thread removes the temporary store itself and exits.

use adcat_store::{ArrayData, ArrayMeta, ArraySpec, AttrValue, Attrs, Compression, NodeKind, Result, Store, StoreError, StoreKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How long a job may take to stop on its own after a signal.
const GRACE: Duration = Duration::from_secs(10);

/// The signal that interrupted the job (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Temporary outputs to remove if the job must be stopped by force.
static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// What to tell the user after an interruption, when it is not "partial output removed"
/// (a job keeps its finished tasks).
static AFTER: Mutex<Option<String>> = Mutex::new(None);

/// Say `text` instead of "partial output removed" if the run is interrupted.
pub fn set_interrupt_note(text: String) {
    *AFTER.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(text);
}

/// The message for an interruption by `sig`.
pub fn interrupt_message(sig: i32) -> String {
    let note = AFTER.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone().unwrap_or_else(|| "partial output removed".into());
    format!("adcat: interrupted by {}; {note}", signal_name(sig))
}

/// Install the handlers. Call once, before any output is created.
pub fn install() -> anyhow::Result<()> {
    // SAFETY: setting a signal's disposition to "ignore" has no handler code to race
    // with; with SIGXFSZ ignored, writes past RLIMIT_FSIZE fail with EFBIG.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])?;
    std::thread::Builder::new().name("adcat-signals".into()).spawn(move || {
        for sig in signals.forever() {
            if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
                force_exit(sig);
            }
            std::thread::spawn(move || {
                std::thread::sleep(GRACE);
                force_exit(sig);
            });
        }
    })?;
    Ok(())
}

/// The signal that interrupted the job, if any.
pub fn interrupted() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Name of a signal for messages.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Remember a temporary output so a forced stop can remove it.
pub fn register_temp(p: &Path) {
    TEMPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(p.to_path_buf());
}

/// Forget a temporary output (it was renamed into place or removed).
pub fn unregister_temp(p: &Path) {
    TEMPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|t| t != p);
}

fn force_exit(sig: i32) -> ! {
    let temps = TEMPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    for t in &temps {
        // The job may still be adding files to a zarr directory: retry a few times.
        for _ in 0..20 {
            let r = if t.is_dir() { std::fs::remove_dir_all(t) } else { std::fs::remove_file(t) };
            if r.is_ok() || !t.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    eprintln!("{}", interrupt_message(sig));
    // SAFETY: _exit ends the process at once; nothing of this process runs afterwards
    // (no atexit handlers that could flush the half-written file).
    unsafe { libc::_exit(128 + sig) }
}

fn check(path: &str) -> Result<()> {
    match interrupted() {
        None => Ok(()),
        Some(sig) => Err(StoreError::Backend { path: path.to_owned(), message: format!("interrupted by {}", signal_name(sig)) }),
    }
}

/// A store whose every operation fails once the job has been interrupted.
#[derive(Debug)]
pub struct Guarded(pub Box<dyn Store>);

impl Store for Guarded {
    fn location(&self) -> &str {
        self.0.location()
    }
    fn kind(&self) -> StoreKind {
        self.0.kind()
    }
    fn node_kind(&self, path: &str) -> Result<Option<NodeKind>> {
        check(path)?;
        self.0.node_kind(path)
    }
    fn list(&self, path: &str) -> Result<Vec<String>> {
        check(path)?;
        self.0.list(path)
    }
    fn create_group(&self, path: &str) -> Result<()> {
        check(path)?;
        self.0.create_group(path)
    }
    fn delete(&self, path: &str) -> Result<()> {
        check(path)?;
        self.0.delete(path)
    }
    fn attrs(&self, path: &str) -> Result<Attrs> {
        check(path)?;
        self.0.attrs(path)
    }
    fn set_attrs(&self, path: &str, attrs: &Attrs) -> Result<()> {
        check(path)?;
        self.0.set_attrs(path, attrs)
    }
    fn create_array(&self, path: &str, spec: &ArraySpec) -> Result<()> {
        check(path)?;
        self.0.create_array(path, spec)
    }
    fn array_meta(&self, path: &str) -> Result<ArrayMeta> {
        check(path)?;
        self.0.array_meta(path)
    }
    fn read(&self, path: &str, start: &[u64], shape: &[u64]) -> Result<ArrayData> {
        check(path)?;
        self.0.read(path, start, shape)
    }
    fn write(&self, path: &str, start: &[u64], data: &ArrayData) -> Result<()> {
        check(path)?;
        self.0.write(path, start, data)
    }
    fn write_rows_range(&self, path: &str, start: u64, data: &ArrayData, rows: std::ops::Range<usize>) -> Result<()> {
        check(path)?;
        self.0.write_rows_range(path, start, data, rows)
    }
    fn resize(&self, path: &str, shape: &[u64]) -> Result<()> {
        check(path)?;
        self.0.resize(path, shape)
    }
    fn flush(&self) -> Result<()> {
        check("")?;
        self.0.flush()
    }
    fn stored_bytes(&self, path: &str) -> Result<Option<u64>> {
        check(path)?;
        self.0.stored_bytes(path)
    }
    fn is_record(&self, path: &str) -> Result<bool> {
        check(path)?;
        self.0.is_record(path)
    }
    fn read_record(&self, path: &str) -> Result<Vec<(String, ArrayData)>> {
        check(path)?;
        self.0.read_record(path)
    }
    fn record_fields(&self, path: &str) -> Result<Vec<adcat_store::RecordField>> {
        check(path)?;
        self.0.record_fields(path)
    }
    fn read_field(&self, path: &str, field: &str, start: u64, end: u64) -> Result<ArrayData> {
        check(path)?;
        self.0.read_field(path, field, start, end)
    }
    fn is_fixed_ascii(&self, path: &str) -> Result<bool> {
        check(path)?;
        self.0.is_fixed_ascii(path)
    }
    fn record_len(&self, path: &str) -> Result<u64> {
        check(path)?;
        self.0.record_len(path)
    }
    fn create_record(&self, path: &str, fields: &[(String, ArrayData)], compression: &Compression) -> Result<()> {
        check(path)?;
        self.0.create_record(path, fields, compression)
    }
    fn attr(&self, path: &str, name: &str) -> Result<Option<AttrValue>> {
        check(path)?;
        self.0.attr(path, name)
    }
}
