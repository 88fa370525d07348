//! The job plan: what the engine's first phase leaves for executors to do.
//!
//! Planning (`crate::concat` with [`ConcatOptions`](crate::ConcatOptions)) writes the
//! small merged elements of the output (the off-axis dataframe, merged off-axis tables,
//! obsp) and *creates* every other element (matrices, dataframe columns along the axis,
//! awkward arrays, the `uns` group) with its final shape, dtype and layout, without
//! moving its data. What remains is a [`JobPlan`]: those [`Element`]s and a list of
//! [`Task`]s, each owning whole write units (shards, or chunks when unsharded) of one
//! element. The plan is plain data: it serializes to versioned JSON, and any process
//! holding the same inputs and output can run any task ([`Executor`]).
//!
//! Sparse elements take two stages: *count* tasks compute how many entries each block of
//! rows keeps after reindexing and filling, and after a prefix sum over those counts each
//! *sparse write* task owns a fixed fraction of the value and `indptr` write units.

mod awkward;
mod blocks;
mod column;
pub mod dir;
mod exec;
mod kind;
mod uns;
mod vds;
mod write;

pub use awkward::{AwkwardElement, AwkwardSource};
pub use blocks::Blk;
pub use column::{ColumnElement, ColumnSource};
pub use dir::{JobDir, JobFile, JobInput, Status};
pub use exec::{run_in_process, Counts, Executor};
pub use kind::ElementKind;
pub use uns::UnsElement;
pub use vds::{VirtualElement, VirtualPart};

use crate::ConcatError;
use adcat_format::FormatError;
use adcat_store::DType;
use serde::{Deserialize, Serialize};

/// Version of the plan format; bumped on any incompatible change.
pub const PLAN_VERSION: u32 = 4;

/// An error of the output store.
pub(crate) fn output(e: impl Into<FormatError>) -> ConcatError {
    ConcatError::Output(e.into())
}

/// An element of the output that tasks fill; each kind plans and runs its own tasks
/// through [`ElementKind`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Element {
    /// X, a layer, an obsm array, raw/X: sparse or dense.
    Matrix(MatrixElement),
    /// A dataframe column along the concatenation axis (with the index and label).
    Column(ColumnElement),
    /// An awkward array (a layer or an obsm entry), written by one task.
    Awkward(AwkwardElement),
    /// `uns`, merged from every input by one task.
    Uns(UnsElement),
    /// A sparse matrix of virtual `data` and `indices` (`--virtual`): one task writes
    /// its `indptr`.
    Virtual(VirtualElement),
}

impl Element {
    /// The element's kind, which plans and runs its tasks.
    pub fn kind(&self) -> &dyn ElementKind {
        match self {
            Element::Matrix(m) => m,
            Element::Column(c) => c,
            Element::Awkward(a) => a,
            Element::Uns(u) => u,
            Element::Virtual(v) => v,
        }
    }

    /// Output path.
    pub fn path(&self) -> &str {
        match self {
            Element::Matrix(m) => &m.path,
            Element::Column(c) => &c.path,
            Element::Awkward(a) => &a.path,
            Element::Uns(u) => &u.path,
            Element::Virtual(v) => &v.path,
        }
    }
}

/// Where one input's part of a matrix element comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixSource {
    /// Input number (position in the job's input list).
    pub input: usize,
    /// Element path in that input; `None` when the input lacks it (filled).
    pub path: Option<String>,
    /// Rows along the concatenation axis.
    pub rows: u64,
    /// Rows per read block (sized from the memory budget and the input's density).
    pub block_rows: u64,
}

/// How an input's columns map onto the output's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Columns {
    /// By name: the input's index of dataframe `input_frame` onto the output's index of
    /// dataframe `output_frame` (X, layers).
    Name {
        /// The input's off-axis dataframe.
        input_frame: String,
        /// The output's off-axis dataframe (already written by planning).
        output_frame: String,
        /// Match by this column of `input_frame` instead of its index (`--var-key`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_key: Option<String>,
    },
    /// By position, truncated or padded to the output's width (obsm arrays).
    Position,
}

/// One matrix element of the output, created by planning and filled by tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixElement {
    /// Element path in the output.
    pub path: String,
    /// Sparse (CSR along obs, CSC along var) or dense.
    pub sparse: bool,
    /// Concatenated along var: rows of the plan are the output's columns.
    pub transposed: bool,
    /// Value dtype.
    #[serde(with = "crate::serde_text::dtype")]
    pub dtype: DType,
    /// Fill of entries an input lacks (JSON: a number, or "nan"/"inf"/"-inf").
    #[serde(with = "crate::serde_text::float")]
    pub fill: f64,
    /// Output columns (off-axis length).
    pub n_cols: u64,
    /// One source per input, in input order.
    pub sources: Vec<MatrixSource>,
    /// How columns are matched.
    pub columns: Columns,
    /// Upper bound of stored entries (sparse; the arrays are created this long).
    pub max_nnz: u64,
    /// Rows per count or dense write task (dense: a multiple of the write unit).
    pub task_rows: u64,
}

impl MatrixElement {
    /// Total rows along the concatenation axis.
    pub fn n_rows(&self) -> u64 {
        self.sources.iter().map(|s| s.rows).sum()
    }

    /// The row ranges of its count tasks (sparse) or dense write tasks; a sparse element
    /// with no rows still has one (empty) count range, so its `indptr` gets written.
    pub fn spans(&self) -> Vec<[u64; 2]> {
        let n = self.n_rows();
        let step = self.task_rows.max(1);
        let mut out: Vec<[u64; 2]> = (0..n.div_ceil(step)).map(|k| [k * step, ((k + 1) * step).min(n)]).collect();
        if out.is_empty() && self.sparse {
            out.push([0, 0]);
        }
        out
    }
}

/// What a task does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Count the entries each block of rows `rows` keeps (sparse; first stage).
    Count {
        /// Rows `[start, end)` along the concatenation axis.
        rows: [u64; 2],
    },
    /// Write rows `rows` of a dense element (whole write units).
    Dense {
        /// Rows `[start, end)`.
        rows: [u64; 2],
    },
    /// Write part `part` of `parts` of a sparse element's value and indptr units
    /// (second stage: needs every count of the element).
    Sparse {
        /// This part (0-based).
        part: u64,
        /// Number of parts.
        parts: u64,
    },
    /// Write rows `rows` of a dataframe column (whole write units of its arrays).
    Column {
        /// Rows `[start, end)`.
        rows: [u64; 2],
    },
    /// Write a whole awkward array.
    Awkward,
    /// Merge and write `uns`.
    Uns,
    /// Write the `indptr` of a virtual sparse matrix.
    Indptr,
}

/// One unit of work: an action on one element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Index into [`JobPlan::elements`].
    pub element: usize,
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
}

impl Task {
    /// 0 for count tasks, 1 for writing tasks: a stage starts when the previous is done.
    pub fn stage(&self) -> u8 {
        u8::from(!matches!(self.action, Action::Count { .. }))
    }
}

/// The data-moving part of a concatenation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPlan {
    /// [`PLAN_VERSION`].
    pub version: u32,
    /// The elements tasks fill, created in the output by planning.
    pub elements: Vec<Element>,
    /// Tasks, count tasks first.
    pub tasks: Vec<Task>,
}

impl Default for JobPlan {
    fn default() -> Self {
        JobPlan { version: PLAN_VERSION, elements: vec![], tasks: vec![] }
    }
}

impl JobPlan {
    /// Add an element and its tasks; tasks are kept ordered by stage.
    pub(crate) fn push(&mut self, el: Element) {
        let e = self.elements.len();
        let (first, second): (Vec<Task>, Vec<Task>) = el.kind().actions().into_iter().map(|action| Task { element: e, action }).partition(|t| t.stage() == 0);
        let first_write = self.tasks.iter().position(|t| t.stage() == 1).unwrap_or(self.tasks.len());
        self.tasks.splice(first_write..first_write, first);
        self.tasks.extend(second);
        self.elements.push(el);
    }

    /// The plan as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Read a plan, refusing other versions.
    pub fn from_json(v: serde_json::Value) -> Result<JobPlan, String> {
        let version = v.get("version").and_then(serde_json::Value::as_u64);
        if version != Some(PLAN_VERSION as u64) {
            return Err(format!("plan format version {version:?} is not {PLAN_VERSION}; plan again with this adcat"));
        }
        serde_json::from_value(v).map_err(|e| format!("not a valid plan: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(sparse: bool, fill: f64) -> MatrixElement {
        MatrixElement {
            path: "X".into(),
            sparse,
            transposed: false,
            dtype: DType::F32,
            fill,
            n_cols: 7,
            sources: vec![
                MatrixSource { input: 0, path: Some("X".into()), rows: 10, block_rows: 3 },
                MatrixSource { input: 1, path: None, rows: 5, block_rows: 4 },
            ],
            columns: Columns::Name { input_frame: "var".into(), output_frame: "var".into(), input_key: Some("gene_ids".into()) },
            max_nnz: 40,
            task_rows: 4,
        }
    }

    fn column() -> ColumnElement {
        let maps = vec![Some(vec![1, 0]), None];
        ColumnElement {
            path: "obs/batch".into(),
            out: crate::columns::ColumnOut::Categorical { codes: DType::I8, maps },
            sources: vec![ColumnSource { input: 0, path: Some("obs/batch".into()), rows: 10 }, ColumnSource { input: 1, path: None, rows: 5 }],
            block_rows: 4,
            task_rows: 8,
        }
    }

    #[test]
    fn plan_survives_json() {
        let mut p = JobPlan::default();
        p.push(Element::Matrix(element(true, f64::NAN)));
        p.push(Element::Matrix(element(false, f64::NEG_INFINITY)));
        p.push(Element::Column(column()));
        p.push(Element::Matrix(element(true, 1.5)));
        let text = serde_json::to_string(&p.to_json()).unwrap();
        let back = JobPlan::from_json(serde_json::from_str(&text).unwrap()).unwrap();
        assert!(matches!(&back.elements[0], Element::Matrix(m) if m.fill.is_nan()));
        assert_eq!(back.elements[1..], p.elements[1..]);
        assert_eq!(back.tasks, p.tasks);
        // Count tasks of every sparse element come before any write task.
        let stages: Vec<u8> = p.tasks.iter().map(Task::stage).collect();
        assert!(stages.windows(2).all(|w| w[0] <= w[1]), "{stages:?}");
        assert_eq!(p.tasks.iter().filter(|t| t.stage() == 0).count(), 8);
        let col: Vec<&Task> = p.tasks.iter().filter(|t| t.element == 2).collect();
        assert_eq!(col.iter().map(|t| t.action.clone()).collect::<Vec<_>>(), vec![Action::Column { rows: [0, 8] }, Action::Column { rows: [8, 15] }]);
    }

    #[test]
    fn other_versions_are_refused() {
        let mut v = JobPlan::default().to_json();
        v["version"] = 99.into();
        assert!(JobPlan::from_json(v).unwrap_err().contains("version"));
    }
}
