//! Progress display: a bar for the whole job (bytes, rate, ETA) and a line for the
//! element being written; with `-v`, one timing line per finished element.

use adcat_format::inspect::human_bytes;
use adcat_format::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Current {
    path: Option<String>,
    start: Instant,
    bytes: u64,
}

/// Feeds indicatif from the format and concat layers' [`Progress`] callbacks.
pub struct Reporter {
    multi: MultiProgress,
    job: ProgressBar,
    elem: ProgressBar,
    /// The element line's style until its total is known.
    spinner: ProgressStyle,
    verbose: bool,
    current: Mutex<Current>,
}

impl Reporter {
    /// Bars are drawn only on a terminal and without `quiet`; `verbose` prints a timing
    /// line per element either way.
    pub fn new(quiet: bool, verbose: bool) -> Reporter {
        let visible = !quiet && std::io::stderr().is_terminal();
        Reporter::with_target(visible, verbose)
    }

    fn with_target(visible: bool, verbose: bool) -> Reporter {
        let multi = MultiProgress::with_draw_target(if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
        let job = multi.add(ProgressBar::new(0));
        job.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let elem = multi.add(ProgressBar::new_spinner());
        let spinner = ProgressStyle::with_template("  {msg} {bytes} ({elapsed})").unwrap_or_else(|_| ProgressStyle::default_spinner());
        elem.set_style(spinner.clone());
        if visible {
            job.enable_steady_tick(Duration::from_millis(200));
        }
        Reporter { multi, job, elem, spinner, verbose, current: Mutex::new(Current { path: None, start: Instant::now(), bytes: 0 }) }
    }

    fn close_element(&self, cur: &mut Current) {
        if let Some(p) = cur.path.take() {
            if self.verbose {
                let secs = cur.start.elapsed().as_secs_f64();
                let line = if cur.bytes > 0 { format!("adcat: /{p}: {} in {secs:.2} s", human_bytes(cur.bytes)) } else { format!("adcat: /{p}: {secs:.2} s") };
                if self.multi.is_hidden() {
                    eprintln!("{line}");
                } else {
                    let _ = self.multi.println(line);
                }
            }
        }
    }

    /// Close the display (and the last element's timing line).
    pub fn finish(&self) {
        let mut cur = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.close_element(&mut cur);
        self.elem.finish_and_clear();
        self.job.finish_and_clear();
    }
}

impl Progress for Reporter {
    fn total_bytes(&self, bytes: u64) {
        self.job.set_length(bytes);
    }

    fn element(&self, path: &str) {
        let mut cur = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.close_element(&mut cur);
        *cur = Current { path: Some(path.to_owned()), start: Instant::now(), bytes: 0 };
        self.elem.reset();
        self.elem.unset_length();
        self.elem.set_style(self.spinner.clone());
        self.elem.set_message(format!("/{path}"));
    }

    fn element_total(&self, bytes: u64) {
        self.elem.set_length(bytes);
        self.elem.set_style(
            ProgressStyle::with_template("  {msg} {wide_bar} {bytes}/{total_bytes} ETA {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    }

    fn advance(&self, bytes: u64) {
        self.job.inc(bytes);
        self.elem.inc(bytes);
        let mut cur = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cur.bytes += bytes;
    }
}
