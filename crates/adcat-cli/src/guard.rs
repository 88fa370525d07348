//! Interruption and faults: SIGINT/SIGTERM stop the job and remove the partial output
//! (exit status 128 + signal, as shells expect); a file-size limit (SIGXFSZ) becomes an
//! ordinary write error instead of killing the process with the output half written.
//!
//! Stopping is cooperative first: every store operation of the job goes through
//! [`Guarded`], which fails with "interrupted" once a signal has arrived, so the job
//! unwinds through its normal error path and the output's `Drop` removes the temporary
//! store. If the job does not get there within [`GRACE`] (or a second signal arrives),
//! the signal thread removes the temporary store itself and exits.
//!
//! A library caller (the Python package) installs no handlers: it runs the job under its
//! own [`StopToken`] ([`StopToken::scope`]) and stops it with [`StopToken::stop`].

use adcat_store::{Result, Store, StoreError, StoreKind};
use std::path::{Path, PathBuf};
use std::cell::RefCell;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// How long a job may take to stop on its own after a signal.
const GRACE: Duration = Duration::from_secs(10);

/// The process's token, stopped by the signal handlers (its value: the signal, 0 none).
static SIGNAL: LazyLock<Arc<AtomicI32>> = LazyLock::new(|| Arc::new(AtomicI32::new(0)));

thread_local! {
    /// The token stores opened on this thread obey (`None`: the process's).
    static CURRENT: RefCell<Option<Arc<AtomicI32>>> = const { RefCell::new(None) };
}

/// Stops the stores opened under it: every later operation fails with "interrupted".
#[derive(Debug, Clone, Default)]
pub struct StopToken(Arc<AtomicI32>);

impl StopToken {
    /// A token of its own, not stopped by the process's signal handlers.
    pub fn new() -> StopToken {
        StopToken::default()
    }

    /// Stop, as if by signal `sig` (e.g. `libc::SIGINT`).
    pub fn stop(&self, sig: i32) {
        self.0.store(sig, Ordering::SeqCst);
    }

    /// The signal this token was stopped with, if any.
    pub fn stopped(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Run `f` with this token governing every store opened on this thread.
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let prev = CURRENT.with(|c| c.replace(Some(self.0.clone())));
        let r = f();
        CURRENT.with(|c| *c.borrow_mut() = prev);
        r
    }
}

/// The token of this thread's scope, or the process's.
fn current_token() -> Arc<AtomicI32> {
    CURRENT.with(|c| c.borrow().clone()).unwrap_or_else(|| SIGNAL.clone())
}

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

/// The signal that interrupted the job (the token of this thread's scope), if any.
pub fn interrupted() -> Option<i32> {
    match current_token().load(Ordering::SeqCst) {
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
        if crate::stores::is_url(t) {
            // Unpublished (no root metadata): readers never see it, whatever is left.
            let url = t.to_string_lossy();
            if let Err(e) = adcat_zarr::publish::remove(&url) {
                eprintln!("adcat: warning: cannot remove the partial output under {url} ({e}); remove it with `aws s3 rm --recursive {url}/`");
            }
            continue;
        }
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

/// A store whose every operation fails once its [`StopToken`] is stopped.
#[derive(Debug)]
pub struct Guarded(Box<dyn Store>, Arc<AtomicI32>);

impl Guarded {
    /// Guard `store` with the token of this thread's scope (or the process's).
    pub fn new(store: Box<dyn Store>) -> Guarded {
        Guarded(store, current_token())
    }

    fn check(&self, path: &str) -> Result<()> {
        match self.1.load(Ordering::SeqCst) {
            0 => Ok(()),
            sig => Err(StoreError::Backend { path: path.to_owned(), message: format!("interrupted by {}", signal_name(sig)) }),
        }
    }
}

impl adcat_store::Forward for Guarded {
    fn target(&self, path: &str) -> Result<&dyn Store> {
        self.check(path)?;
        Ok(&*self.0)
    }
}

impl Store for Guarded {
    fn location(&self) -> &str {
        self.0.location()
    }
    fn kind(&self) -> StoreKind {
        self.0.kind()
    }
    adcat_store::forward_store!(
        node_kind, list, create_group, delete, attrs, set_attrs, create_array, array_meta, read, write, write_rows_range, resize, flush,
        stored_bytes, is_fixed_ascii, is_record, read_record, record_fields, record_len, read_field, create_record, attr,
        physical, create_virtual, virtual_sources,
    );
}
