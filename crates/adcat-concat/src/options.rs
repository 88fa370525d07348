//! What a caller asks of a concatenation ([`ConcatOptions`]) and what it gets back
//! ([`Report`]).

use crate::index::Join;
use crate::job;
use crate::merge::Strategy;
use adcat_format::layout::WriteOptions;

/// The axis along which inputs are stacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Axis {
    /// Stack cells (`axis=0`).
    #[default]
    Obs,
    /// Stack genes (`axis=1`).
    Var,
}

impl Axis {
    pub(crate) fn names(self) -> (&'static str, &'static str) {
        match self {
            Axis::Obs => ("obs", "var"),
            Axis::Var => ("var", "obs"),
        }
    }
}

/// Options of a concatenation, mirroring `anndata.concat`.
#[derive(Debug, Clone, Default)]
pub struct ConcatOptions {
    /// Concatenation axis.
    pub axis: Axis,
    /// Off-axis join.
    pub join: Join,
    /// Strategy for off-axis annotations (var columns, varm, varp).
    pub merge: Option<Strategy>,
    /// Strategy for `uns`.
    pub uns_merge: Option<Strategy>,
    /// Name of a categorical batch column on the concatenation-axis annotation.
    pub label: Option<String>,
    /// Batch names (default "0", "1", ...).
    pub keys: Option<Vec<String>>,
    /// Separator to make concatenation-axis names unique: `name + sep + key`.
    pub index_unique: Option<String>,
    /// Fill for entries missing after an outer join (default: 0 sparse, NaN dense).
    pub fill_value: Option<f64>,
    /// Concatenate obsp (varp for axis=var) as block-diagonal matrices.
    pub pairwise: bool,
    /// The output's off-axis names, fixed (`--var-names`): exactly these, in this order,
    /// instead of the join of the inputs' names; names an input lacks are filled, its
    /// others dropped. Applies to the main part only (raw keeps its own join).
    pub off_names: Option<std::sync::Arc<Vec<String>>>,
    /// The raw part's off-axis names, fixed as `off_names` fixes the main part's (set by
    /// `append`: the store's raw var, then new names); `None`: raw's own join.
    pub raw_off_names: Option<std::sync::Arc<Vec<String>>>,
    /// Keep only these cells (`--obs-filter`, `--obs-names`; axis obs, in one process).
    pub obs_select: Option<crate::select::ObsSelection>,
    /// The `--obs-filter` expression as given (for the provenance record).
    pub obs_filter_text: Option<String>,
    /// Keep only the genes whose var columns pass this filter (`--var-filter`; axis obs,
    /// main part, in one process), as `a[:, mask]` of each input would.
    pub var_filter: Option<crate::select::Expr>,
    /// Inputs at the start that `var_filter` leaves as they are (`append`: the store,
    /// whose genes cannot change); 0 for a concatenation.
    pub var_filter_skip: usize,
    /// The `--var-filter` expression as given (for the provenance record).
    pub var_filter_text: Option<String>,
    /// Match inputs on this off-axis column instead of the index (`--var-key`); the
    /// output's index holds the matched values (unnamed). Main part only.
    pub off_key: Option<String>,
    /// Write the cells in the pseudo-random order of this seed (`--shuffle`; see
    /// [`crate::shuffle`]); only [`crate::shuffle::concat_shuffled`] takes it.
    pub shuffle_seed: Option<u64>,
    /// How a shuffled output is laid out (one AnnData, or annbatch's collection).
    pub layout: crate::shuffle::Layout,
    /// Map matrices as HDF5 virtual datasets over the inputs' arrays where no value
    /// changes (`--virtual`; h5ad outputs), naming the inputs' files this way.
    pub virtual_paths: Option<crate::vds::VirtualPaths>,
    /// Output layout and memory budget.
    pub write: WriteOptions,
    /// Target uncompressed output bytes of one task (`None`: [`DEFAULT_TASK_BYTES`]).
    pub task_bytes: Option<u64>,
    /// Do not record the command in the output's root attribute `adcat` (see
    /// [`adcat_format::provenance`]).
    pub no_provenance: bool,
    /// Plan only: create every output element with its final shape and type, read only
    /// metadata, indexes and off-axis tables, move no data (see [`plan::plan`]).
    pub dry_run: bool,
}

/// A filter's text as the provenance record keeps it: at most 4 KiB (a long `in [...]`
/// list would crowd out the inputs).
fn short_text(s: &str) -> String {
    const MAX: usize = 4096;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let cut = (0..=MAX).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    format!("{}... ({} bytes)", &s[..cut], s.len())
}

/// Default size of a task: large enough that per-task costs (opening inputs, reading
/// their indexes) vanish, small enough to spread a job over many workers.
pub const DEFAULT_TASK_BYTES: u64 = 1 << 30;

impl ConcatOptions {
    /// The options that decide the result, as the provenance record lists them.
    pub fn provenance_options(&self) -> serde_json::Map<String, serde_json::Value> {
        let doc = serde_json::json!({
            "axis": if self.axis == Axis::Obs { "obs" } else { "var" },
            "join": self.join,
            "merge": self.merge,
            "uns_merge": self.uns_merge,
            "label": self.label,
            "index_unique": self.index_unique,
            "fill_value": self.fill_value,
            "pairwise": self.pairwise,
            "var_key": self.off_key,
            "obs_filter": self.obs_filter_text.as_deref().map(short_text),
            "var_filter": self.var_filter_text.as_deref().map(short_text),
            "obs_names": self.obs_select.as_ref().and_then(|s| s.names.as_ref()).map(|n| n.len()),
            "var_names": self.off_names.as_ref().map(|n| serde_json::json!({"count": n.len(), "first": n.first(), "last": n.last()})),
        });
        let mut m = match doc {
            serde_json::Value::Object(m) => m,
            _ => Default::default(),
        };
        // Options added since the record's format 1, recorded only when used: records
        // of commands that do not use them stay as they were.
        if let Some(seed) = self.shuffle_seed {
            m.insert("shuffle_seed".into(), seed.into());
        }
        if let crate::shuffle::Layout::Annbatch { dataset_bytes } = self.layout {
            m.insert("layout".into(), serde_json::json!({"annbatch": {"dataset_bytes": dataset_bytes}}));
        }
        if self.virtual_paths.is_some() {
            m.insert("virtual".into(), true.into());
        }
        m
    }

    /// Target bytes per task.
    pub fn task_bytes(&self) -> u64 {
        self.task_bytes.unwrap_or(DEFAULT_TASK_BYTES).max(1)
    }
}

/// What a concatenation did, for the caller to report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Output shape (obs, var).
    pub shape: (u64, u64),
    /// Warnings (as anndata would emit them).
    pub warnings: Vec<String>,
    /// How each element is combined: `(element path, decision)`, in the order made.
    pub notes: Vec<(String, String)>,
    /// The data-moving work left after planning: matrix elements and their tasks.
    pub job: job::JobPlan,
    /// How each input's off-axis names met the output's, per part.
    pub off_match: Vec<OffMatch>,
    /// With a cell selection: each input's kept and total rows.
    pub kept: Vec<(u64, u64)>,
    /// With a gene filter: each input's kept and total genes.
    pub kept_var: Vec<(u64, u64)>,
}

/// How one input's off-axis names met the output's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OffMatch {
    /// The input's position.
    pub input: usize,
    /// `""` (the AnnData) or `"raw"`.
    pub part: String,
    /// Output names the input has.
    pub matched: u64,
    /// Output names the input lacks (filled).
    pub filled: u64,
    /// Names of the input not in the output (dropped).
    pub dropped: u64,
}

impl Report {
    pub(crate) fn note(&mut self, path: &str, what: impl Into<String>) {
        self.notes.push((format!("/{}", path.trim_start_matches('/')), what.into()));
    }
}
