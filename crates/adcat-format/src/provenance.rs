//! Provenance: what built a store, kept in the root attribute `adcat` as JSON text.
//!
//! anndata reads the root group's children and its `encoding-*` attributes only, so an
//! extra root attribute is invisible to it (an extra root *child* would not be). The
//! record is the same on HDF5 and Zarr (a string attribute), survives `adcat convert`
//! (which copies attributes) and holds no time or host, so the same command gives the
//! same bytes whichever way it ran (in process, as a job, on Dask).
//!
//! ```json
//! {"format": 1, "history": [
//!   {"command": "concat", "adcat": "0.1.0", "shape": [3000, 2000],
//!    "options": {"axis": "obs", "join": "outer", ...},
//!    "inputs": [{"key": "a", "path": "a.h5ad", "n_obs": 1000, "n_vars": 2000}, ...]},
//!   {"command": "append", ...}]}
//! ```
//! A step whose input list would make the record larger than [`MAX_BYTES`] keeps its
//! first and last inputs and counts the others in `omitted_inputs` (HDF5 keeps a
//! compact attribute below 64 KiB).

use crate::{FormatError, Result};
use adcat_store::{AttrValue, Attrs, Store};
use serde::{Deserialize, Serialize};

/// Name of the root attribute holding the record.
pub const ATTR: &str = "adcat";
/// Version of the record's schema.
pub const FORMAT: u64 = 1;
/// Largest record written, in bytes of JSON text.
pub const MAX_BYTES: usize = 48 * 1024;
/// Inputs kept at each end of a list that must be shortened.
const KEEP_ENDS: usize = 20;

/// A store's provenance: the commands that built it, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Schema version ([`FORMAT`]).
    pub format: u64,
    /// One entry per command that wrote the store.
    pub history: Vec<Step>,
    /// Steps left out of `history` (after the first) to keep the record small.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_steps: u64,
}

/// One command that wrote the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// `concat` or `append`.
    pub command: String,
    /// The adcat version that ran it.
    pub adcat: String,
    /// The store's shape (obs, var) after the command.
    pub shape: [u64; 2],
    /// The options that decide the result (not how it ran: threads, memory, task size).
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
    /// The inputs, in order (possibly shortened: see `omitted_inputs`).
    #[serde(default)]
    pub inputs: Vec<Source>,
    /// Inputs left out of `inputs` (after the first ones) to keep the record small.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_inputs: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One input of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Its key (the label category and `index_unique` suffix).
    pub key: String,
    /// The path or URL as given.
    pub path: String,
    /// Its number of cells.
    pub n_obs: u64,
    /// Its number of genes.
    pub n_vars: u64,
    /// Cells kept by a selection (`--obs-filter`, `--obs-names`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_obs: Option<u64>,
    /// Genes kept by `--var-filter`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_vars: Option<u64>,
}

impl Step {
    /// A step of this adcat version.
    pub fn new(command: &str, shape: (u64, u64)) -> Step {
        Step { command: command.into(), adcat: env!("CARGO_PKG_VERSION").into(), shape: [shape.0, shape.1], options: Default::default(), inputs: vec![], omitted_inputs: 0 }
    }
}

impl Provenance {
    /// A record of one step.
    pub fn new(step: Step) -> Provenance {
        Provenance { format: FORMAT, history: vec![step], omitted_steps: 0 }
    }

    /// The JSON text, shortened to at most [`MAX_BYTES`] where input lists allow.
    pub fn to_json(&self) -> String {
        let mut p = self.clone();
        let mut text = serde_json::to_string(&p).unwrap_or_default();
        // Shorten the longest input lists first; the oldest steps matter least.
        while text.len() > MAX_BYTES {
            let Some(step) = p.history.iter_mut().filter(|s| s.inputs.len() > 2 * KEEP_ENDS).max_by_key(|s| s.inputs.len()) else { break };
            let cut = (step.inputs.len() - 2 * KEEP_ENDS).min(step.inputs.len() / 2).max(1);
            let at = KEEP_ENDS.min(step.inputs.len() - cut);
            step.inputs.drain(at..at + cut);
            step.omitted_inputs += cut as u64;
            text = serde_json::to_string(&p).unwrap_or_default();
        }
        // Then the steps after the first (the store's origin), oldest first.
        while text.len() > MAX_BYTES && p.history.len() > 2 {
            p.history.remove(1);
            p.omitted_steps += 1;
            text = serde_json::to_string(&p).unwrap_or_default();
        }
        text
    }
}

/// Write `p` as the root attribute of `store` (replacing a record there).
pub fn write(store: &dyn Store, p: &Provenance) -> Result<()> {
    let attrs: Attrs = [(ATTR.to_owned(), AttrValue::String(p.to_json()))].into();
    store.set_attrs("", &attrs)?;
    Ok(())
}

/// The record of `store`: `None` when it has none, an error when the attribute is not
/// a record adcat can read.
pub fn read(store: &dyn Store) -> Result<Option<Provenance>> {
    let Some(v) = store.attr("", ATTR)? else { return Ok(None) };
    let AttrValue::String(text) = v else {
        return Err(FormatError::invalid("", format!("the root attribute `{ATTR}` is not adcat's provenance record (not a string)")));
    };
    serde_json::from_str(&text).map(Some).map_err(|e| FormatError::invalid("", format!("the root attribute `{ATTR}` is not a provenance record adcat can read: {e}")))
}

/// A few lines describing `p` for people.
pub fn describe(p: &Provenance) -> String {
    let mut out = String::new();
    for (i, s) in p.history.iter().enumerate() {
        if i == 1 && p.omitted_steps > 0 {
            out.push_str(&format!("... {} more step(s)\n", p.omitted_steps));
        }
        let n = s.inputs.len() as u64 + s.omitted_inputs;
        let opts: Vec<String> = s.options.iter().filter(|(_, v)| !v.is_null() && **v != serde_json::Value::Bool(false)).map(|(k, v)| format!("{k}={}", plain(v))).collect();
        out.push_str(&format!("{} of {n} input(s) by adcat {} -> {} x {}", s.command, s.adcat, s.shape[0], s.shape[1]));
        if !opts.is_empty() {
            out.push_str(&format!(" ({})", opts.join(", ")));
        }
        out.push('\n');
        for (i, src) in s.inputs.iter().enumerate() {
            if s.omitted_inputs > 0 && i == KEEP_ENDS.min(s.inputs.len()) {
                out.push_str(&format!("  ... {} more\n", s.omitted_inputs));
            }
            let kept = match (src.kept_obs, src.kept_vars) {
                (None, None) => String::new(),
                (o, v) => format!(", kept {} x {}", o.map_or("all".into(), |x| x.to_string()), v.map_or("all".into(), |x| x.to_string())),
            };
            out.push_str(&format!("  {}: {} ({} x {}{kept})\n", src.key, src.path, src.n_obs, src.n_vars));
        }
    }
    out
}

fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(n: usize) -> Step {
        let mut s = Step::new("concat", (n as u64, 5));
        s.options.insert("join".into(), "outer".into());
        s.inputs = (0..n).map(|i| Source { key: i.to_string(), path: format!("/data/some/long/directory/name/sample_{i:05}.h5ad"), n_obs: 1, n_vars: 5, kept_obs: None, kept_vars: None }).collect();
        s
    }

    #[test]
    fn round_trips_as_json() {
        let p = Provenance::new(step(3));
        let back: Provenance = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn long_input_lists_keep_their_ends() {
        let p = Provenance::new(step(5000));
        let text = p.to_json();
        assert!(text.len() <= MAX_BYTES, "{}", text.len());
        let back: Provenance = serde_json::from_str(&text).unwrap();
        let s = &back.history[0];
        assert_eq!(s.inputs.len() as u64 + s.omitted_inputs, 5000);
        assert_eq!(s.inputs.first().unwrap().key, "0");
        assert_eq!(s.inputs.last().unwrap().key, "4999");
        assert!(s.inputs.len() >= 2 * KEEP_ENDS);
        assert!(describe(&back).contains(&format!("... {} more", s.omitted_inputs)));
    }

    #[test]
    fn long_histories_keep_the_origin_and_the_latest_steps() {
        let mut p = Provenance::new(step(100));
        for _ in 0..2000 {
            p.history.push(step(1));
        }
        let back: Provenance = serde_json::from_str(&p.to_json()).unwrap();
        assert!(p.to_json().len() <= MAX_BYTES);
        assert_eq!(back.history[0].inputs.len() as u64 + back.history[0].omitted_inputs, 100);
        assert_eq!(back.history.len() as u64 + back.omitted_steps, 2001);
    }
}
