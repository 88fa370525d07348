//! Planning without writing: the engine runs in dry-run mode against [`PlanStore`], an
//! in-memory store that records every group, array (dtype, final shape, layout) and
//! attribute the job would create and discards data. Only metadata, indexes and the
//! small off-axis tables (var, varm, varp, uns) of the inputs are read.

use crate::options::{ConcatOptions, Report};
use crate::job::{Element, JobPlan};
use crate::{concat, Result};
use adcat_format::layout::element_bytes;
use adcat_format::NoProgress;
use adcat_store::{
    check_box, join_path, norm_path, parent_path, ArrayData, ArrayMeta, ArraySpec, Attrs, NodeKind, Store, StoreError, StoreKind,
};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Clone)]
enum Entry {
    Group(Attrs),
    Array(ArraySpec, Attrs),
}

/// A store that keeps the tree and metadata of what is written, and no data.
#[derive(Debug)]
pub struct PlanStore {
    kind: StoreKind,
    nodes: Mutex<BTreeMap<String, Entry>>,
}

impl PlanStore {
    /// An empty store standing in for an output of `kind` (layout choices depend on it).
    pub fn new(kind: StoreKind) -> PlanStore {
        let mut nodes = BTreeMap::new();
        nodes.insert(String::new(), Entry::Group(Attrs::new()));
        PlanStore { kind, nodes: Mutex::new(nodes) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.nodes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every array: path, spec (with its final shape).
    pub fn arrays(&self) -> Vec<(String, ArraySpec)> {
        self.lock()
            .iter()
            .filter_map(|(p, e)| match e {
                Entry::Array(s, _) => Some((p.clone(), s.clone())),
                Entry::Group(_) => None,
            })
            .collect()
    }

    fn parent_ok(&self, p: &str) -> Result<(), StoreError> {
        match self.lock().get(&parent_path(p)) {
            Some(Entry::Group(_)) => Ok(()),
            _ => Err(StoreError::NotFound { path: parent_path(p) }),
        }
    }
}

impl Store for PlanStore {
    fn location(&self) -> &str {
        "(plan)"
    }
    fn kind(&self) -> StoreKind {
        self.kind
    }
    fn node_kind(&self, path: &str) -> adcat_store::Result<Option<NodeKind>> {
        Ok(self.lock().get(&norm_path(path)).map(|e| match e {
            Entry::Group(_) => NodeKind::Group,
            Entry::Array(..) => NodeKind::Array,
        }))
    }
    fn list(&self, path: &str) -> adcat_store::Result<Vec<String>> {
        let p = norm_path(path);
        let nodes = self.lock();
        Ok(nodes.keys().filter(|k| !k.is_empty() && parent_path(k) == p).map(|k| k.rsplit('/').next().unwrap_or(k).to_owned()).collect())
    }
    fn create_group(&self, path: &str) -> adcat_store::Result<()> {
        let p = norm_path(path);
        if matches!(self.lock().get(&p), Some(Entry::Group(_))) {
            return Ok(());
        }
        self.parent_ok(&p)?;
        self.lock().insert(p, Entry::Group(Attrs::new()));
        Ok(())
    }
    fn delete(&self, path: &str) -> adcat_store::Result<()> {
        let p = norm_path(path);
        self.lock().retain(|k, _| k != &p && !k.starts_with(&format!("{p}/")));
        Ok(())
    }
    fn attrs(&self, path: &str) -> adcat_store::Result<Attrs> {
        match self.lock().get(&norm_path(path)) {
            Some(Entry::Group(a) | Entry::Array(_, a)) => Ok(a.clone()),
            None => Err(StoreError::NotFound { path: norm_path(path) }),
        }
    }
    fn set_attrs(&self, path: &str, attrs: &Attrs) -> adcat_store::Result<()> {
        match self.lock().get_mut(&norm_path(path)) {
            Some(Entry::Group(a) | Entry::Array(_, a)) => {
                a.extend(attrs.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ok(())
            }
            None => Err(StoreError::NotFound { path: norm_path(path) }),
        }
    }
    fn create_array(&self, path: &str, spec: &ArraySpec) -> adcat_store::Result<()> {
        let p = norm_path(path);
        if self.lock().contains_key(&p) {
            return Err(StoreError::Exists { path: p });
        }
        self.parent_ok(&p)?;
        self.lock().insert(p, Entry::Array(spec.clone(), Attrs::new()));
        Ok(())
    }
    /// A planned virtual array is an array of that shape (it stores nothing; the plan
    /// shows it as an element all the same).
    fn create_virtual(&self, path: &str, dtype: adcat_store::DType, shape: &[u64], _sources: &[adcat_store::VirtualSource]) -> adcat_store::Result<()> {
        self.create_array(path, &ArraySpec::new(dtype, shape.to_vec()))
    }
    fn array_meta(&self, path: &str) -> adcat_store::Result<ArrayMeta> {
        match self.lock().get(&norm_path(path)) {
            Some(Entry::Array(s, _)) => Ok(ArrayMeta {
                dtype: s.dtype,
                shape: s.shape.clone(),
                chunks: s.chunks.clone(),
                shards: s.shards.clone(),
                compression: s.compression.clone(),
                filters: vec![],
                null: s.null,
            }),
            _ => Err(StoreError::WrongKind { path: norm_path(path), expected: "an array" }),
        }
    }
    fn read(&self, path: &str, start: &[u64], shape: &[u64]) -> adcat_store::Result<ArrayData> {
        let m = self.array_meta(path)?;
        check_box(path, &m.shape, start, shape)?;
        Ok(ArrayData::zeros(m.dtype, shape))
    }
    fn write(&self, path: &str, start: &[u64], data: &ArrayData) -> adcat_store::Result<()> {
        let m = self.array_meta(path)?;
        if m.dtype != data.dtype() {
            return Err(StoreError::DTypeMismatch { path: norm_path(path), expected: m.dtype, found: data.dtype() });
        }
        check_box(path, &m.shape, start, &data.shape())
    }
    fn resize(&self, path: &str, shape: &[u64]) -> adcat_store::Result<()> {
        match self.lock().get_mut(&norm_path(path)) {
            Some(Entry::Array(s, _)) => {
                s.shape = shape.to_vec();
                Ok(())
            }
            _ => Err(StoreError::WrongKind { path: norm_path(path), expected: "an array" }),
        }
    }
    fn flush(&self) -> adcat_store::Result<()> {
        Ok(())
    }
}

/// One output element of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedElement {
    /// Element path.
    pub path: String,
    /// `encoding-type`.
    pub encoding: String,
    /// Shape (sparse: logical shape; dataframes: rows x columns).
    pub shape: Vec<u64>,
    /// Value dtype of arrays and sparse matrices.
    pub dtype: Option<String>,
    /// Uncompressed bytes (sparse: for the largest possible number of stored entries).
    pub bytes: u64,
}

/// What a concatenation will do, computed without writing.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The engine's report: shape, warnings and one note per decision.
    pub report: Report,
    /// Every element the output will hold.
    pub elements: Vec<PlannedElement>,
    /// Uncompressed bytes of all output arrays (an upper bound for sparse data).
    pub output_bytes: u64,
    /// Bytes of the off-axis tables held in memory (the rest moves in budgeted blocks).
    pub resident_bytes: u64,
    /// Estimated peak memory of the job: the process baseline, the resident tables and
    /// the blocks in flight
    /// (at most half the budget: a block read, one converted, one being written, and
    /// the writers' held-back rows; never more than a few copies of the largest element).
    pub peak_bytes: u64,
}

/// Run the uns element's task into the plan's store: its kept values are copied by a
/// task, and the listing shows them (they are small, and the plan's store keeps only
/// metadata).
fn copy_uns(inputs: &[&dyn Store], store: &PlanStore, report: &Report, opts: &ConcatOptions) -> Result<()> {
    let mut uns = JobPlan::default();
    for el in report.job.elements.iter().filter(|e| matches!(e, Element::Uns(_))) {
        uns.push(el.clone());
    }
    crate::run_tasks(inputs, store, opts.write.max_memory, &NoProgress, |exec| crate::job::run_in_process(&uns, exec))
}

/// Plan the concatenation of `inputs` into an output of `kind`: everything but the data.
pub fn plan(inputs: &[&dyn Store], kind: StoreKind, opts: &ConcatOptions) -> Result<Plan> {
    let store = PlanStore::new(kind);
    let dry = ConcatOptions { dry_run: true, ..opts.clone() };
    let report = concat(inputs, &store, &dry, &NoProgress)?;
    copy_uns(inputs, &store, &report, opts)?;
    let arrays = store.arrays();
    let bytes_of = |prefix: &str| -> u64 {
        arrays
            .iter()
            .filter(|(p, _)| prefix.is_empty() || p == prefix || p.starts_with(&format!("{prefix}/")))
            .map(|(_, s)| if s.null { 0 } else { s.shape.iter().product::<u64>() * element_bytes(s.dtype) })
            .sum()
    };
    let mut elements = vec![];
    let mut walk = vec![String::new()];
    while let Some(p) = walk.pop() {
        let attrs = store.attrs(&p).unwrap_or_default();
        let enc = attrs.get("encoding-type").and_then(|v| v.as_str()).unwrap_or("").to_owned();
        let is_group = store.node_kind(&p).ok().flatten() == Some(NodeKind::Group);
        let container = p.is_empty() || matches!(enc.as_str(), "dict" | "raw" | "anndata");
        if !container {
            let shape = match enc.as_str() {
                "csr_matrix" | "csc_matrix" => attrs.get("shape").and_then(|v| v.as_ints()).unwrap_or_default().iter().map(|&d| d.max(0) as u64).collect(),
                "dataframe" => {
                    let cols = attrs.get("column-order").and_then(|v| v.as_strings()).unwrap_or_default();
                    let idx = attrs.get("_index").and_then(|v| v.as_str()).map(|k| join_path(&p, k)).unwrap_or_default();
                    // The index is an array or a nullable-string-array group (values + mask).
                    let rows = store
                        .array_meta(&idx)
                        .or_else(|_| store.array_meta(&join_path(&idx, "values")))
                        .map(|m| m.shape.first().copied().unwrap_or(0))
                        .unwrap_or(0);
                    vec![rows, cols.len() as u64]
                }
                _ => store.array_meta(&p).map(|m| m.shape).unwrap_or_default(),
            };
            let dtype = if is_group {
                store.array_meta(&join_path(&p, "data")).ok().map(|m| m.dtype.to_string())
            } else {
                store.array_meta(&p).ok().map(|m| m.dtype.to_string())
            };
            elements.push(PlannedElement { path: p.clone(), encoding: enc, shape, dtype, bytes: bytes_of(&p) });
        } else {
            let mut kids = store.list(&p).unwrap_or_default();
            kids.reverse();
            walk.extend(kids.into_iter().map(|k| join_path(&p, &k)));
        }
    }
    let output_bytes = bytes_of("");
    // Off-axis index names (~ 32 bytes of string header plus the name) per distinct index,
    // and the merged off-axis table.
    let (_, off) = opts.axis.names();
    let off_len = match opts.axis {
        crate::Axis::Obs => report.shape.1,
        crate::Axis::Var => report.shape.0,
    };
    let resident_bytes = off_len * 48 * 2 + bytes_of(&format!("{off}m")) + bytes_of(&format!("{off}p"));
    let largest = elements.iter().map(|e| e.bytes).max().unwrap_or(0);
    let in_flight = (opts.write.max_memory / 2).min(largest.saturating_mul(4));
    // The process itself (code, libhdf5 and zarrs state, thread stacks, allocator
    // arenas): about 50 MB measured on the demo's small concatenation.
    const BASE: u64 = 48 << 20;
    let peak_bytes = BASE + resident_bytes + in_flight;
    Ok(Plan { report, elements, output_bytes, resident_bytes, peak_bytes })
}
