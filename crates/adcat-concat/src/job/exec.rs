//! Running tasks: an [`Executor`] opens what a task names (inputs by number, the output
//! by its element paths), reads and converts blocks, and hands them to the writers in
//! `write.rs`. It caches opened sources and reindexers, so one executor running many
//! tasks of a process reads each input's metadata once.

use super::{Blk, Columns, Element, JobPlan, MatrixElement, Task};
use crate::index::Reindexer;
use crate::matrix::{Block, MatSource, OutPlan};
use crate::{At, ConcatError, Result};
use adcat_format::frame::read_index;
use adcat_format::Progress;
use adcat_store::{ArrayData, DType, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// What a count task found: entries kept per block of its rows (see
/// [`MatrixElement::blocks`]).
pub type Counts = Vec<u64>;

type Cache<K, V> = Mutex<HashMap<K, V>>;

/// Runs tasks of a plan against the inputs (in the plan's order) and the output.
pub struct Executor<'a> {
    pub(super) inputs: &'a [&'a dyn Store],
    pub(super) out: &'a dyn Store,
    pub(super) budget: u64,
    pub(super) progress: &'a dyn Progress,
    sources: Cache<(usize, String), MatSource<'a>>,
    reindexers: Cache<(usize, String), Arc<Reindexer>>,
    names: Cache<String, Arc<Vec<String>>>,
    input_names: Cache<(usize, String), Arc<Vec<String>>>,
}

impl std::fmt::Debug for Executor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").field("inputs", &self.inputs.len()).field("output", &self.out.location()).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<'a> Executor<'a> {
    /// An executor with a memory budget of `budget` bytes for blocks in flight.
    pub fn new(inputs: &'a [&'a dyn Store], out: &'a dyn Store, budget: u64, progress: &'a dyn Progress) -> Self {
        Executor { inputs, out, budget, progress, sources: Mutex::default(), reindexers: Mutex::default(), names: Mutex::default(), input_names: Mutex::default() }
    }

    /// Give the index of the output's dataframe `frame` (planning holds it).
    pub(crate) fn preset_names(&self, frame: &str, names: Arc<Vec<String>>) {
        lock(&self.names).insert(frame.to_owned(), names);
    }

    /// Give the index of `input`'s dataframe `frame` (planning holds it).
    pub(crate) fn preset_input_names(&self, input: usize, frame: &str, names: Arc<Vec<String>>) {
        lock(&self.input_names).insert((input, frame.to_owned()), names);
    }

    fn input_names(&self, input: usize, frame: &str, by: Option<&str>) -> Result<Arc<Vec<String>>> {
        let key = (input, frame.to_owned());
        if let Some(n) = lock(&self.input_names).get(&key) {
            return Ok(n.clone());
        }
        let store = self.input(input)?;
        Ok(Arc::new(crate::inputs::off_names(store, frame, by).at(store)?))
    }

    pub(super) fn input(&self, i: usize) -> Result<&'a dyn Store> {
        self.inputs.get(i).copied().ok_or_else(|| ConcatError::Options(format!("the plan names input {i}, but {} were given", self.inputs.len())))
    }

    pub(super) fn source(&self, el: &MatrixElement, i: usize) -> Result<Option<MatSource<'a>>> {
        let s = &el.sources[i];
        let Some(path) = &s.path else { return Ok(None) };
        let key = (s.input, path.clone());
        if let Some(m) = lock(&self.sources).get(&key) {
            return Ok(Some(m.clone()));
        }
        let store = self.input(s.input)?;
        let m = MatSource::open(store, path, el.transposed).at(store)?;
        lock(&self.sources).insert(key, m.clone());
        Ok(Some(m))
    }

    fn names(&self, frame: &str) -> Result<Arc<Vec<String>>> {
        if let Some(n) = lock(&self.names).get(frame) {
            return Ok(n.clone());
        }
        let n = Arc::new(read_index(self.out, frame).map_err(ConcatError::Output)?);
        lock(&self.names).insert(frame.to_owned(), n.clone());
        Ok(n)
    }

    fn reindexer(&self, el: &MatrixElement, i: usize, src: &MatSource<'_>) -> Result<Arc<Reindexer>> {
        let input = el.sources[i].input;
        match &el.columns {
            Columns::Position => {
                let (w, width) = (src.n_cols(), el.n_cols);
                let new_pos = (0..w as i64).map(|j| if (j as u64) < width { j } else { -1 }).collect();
                let old_pos = (0..width as i64).map(|j| if (j as u64) < w { j } else { -1 }).collect();
                Ok(Arc::new(Reindexer::from_maps(new_pos, old_pos)))
            }
            Columns::Name { input_frame, output_frame, input_key } => {
                let key = (input, output_frame.clone());
                if let Some(r) = lock(&self.reindexers).get(&key) {
                    return Ok(r.clone());
                }
                let (old, new) = (self.input_names(input, input_frame, input_key.as_deref())?, self.names(output_frame)?);
                let re = Arc::new(if Arc::ptr_eq(&old, &new) { Reindexer::identity(old.len()) } else { Reindexer::new(&old, &new) });
                lock(&self.reindexers).insert(key, re.clone());
                Ok(re)
            }
        }
    }

    /// Read block `b` and convert it to the output's form (dtype, columns, layout).
    pub(super) fn load(&self, el: &MatrixElement, b: &Blk) -> Result<Block> {
        let plan = OutPlan { sparse: el.sparse, dtype: el.dtype, fill: el.fill };
        let Some(src) = self.source(el, b.src)? else { return fill_block(el, b.rows()).cast(el.dtype) };
        let re = self.reindexer(el, b.src, &src)?;
        let raw = src.read_block(b.start, b.end, self.budget / 16).at(src.store)?;
        plan.prepare(raw, Some(&re), el.n_cols).at(src.store)
    }

    /// Entries per row of block `b` when they are known without converting the block:
    /// a sparse input stored along the axis whose reindexing drops nothing and adds no
    /// fill, or an input without the element.
    pub(super) fn cheap_row_counts(&self, el: &MatrixElement, b: &Blk) -> Result<Option<Vec<u64>>> {
        let Some(src) = self.source(el, b.src)? else {
            let per = if el.fill == 0.0 { 0 } else { el.n_cols };
            return Ok(Some(vec![per; b.rows() as usize]));
        };
        let re = self.reindexer(el, b.src, &src)?;
        let keeps_all = re.identity || (re.new_pos.iter().all(|&p| p >= 0) && (el.fill == 0.0 || re.n_missing() == 0));
        if !keeps_all {
            return Ok(None);
        }
        match src.major_indptr(b.start, b.end) {
            Some(ip) => Ok(Some(ip.at(src.store)?.windows(2).map(|w| (w[1] - w[0]).max(0) as u64).collect())),
            None => Ok(None),
        }
    }

    /// Entries per row of block `b` in the output.
    pub(super) fn row_counts(&self, el: &MatrixElement, b: &Blk) -> Result<Vec<u64>> {
        if let Some(c) = self.cheap_row_counts(el, b)? {
            return Ok(c);
        }
        Ok(block_indptr(&self.load(el, b)?).windows(2).map(|w| (w[1] - w[0]) as u64).collect())
    }

    /// Run count task rows `rows` of `el`.
    pub fn count(&self, el: &MatrixElement, rows: [u64; 2]) -> Result<Counts> {
        el.blocks(rows[0], rows[1]).iter().map(|b| Ok(self.row_counts(el, b)?.iter().sum())).collect()
    }

    /// Run task `t` of `plan`. `counts` gives the counts of every count task of an
    /// element, in plan order (needed by sparse write tasks). Returns a count task's
    /// counts.
    pub fn run(&self, plan: &JobPlan, t: usize, counts: &dyn Fn(usize) -> Result<Vec<Counts>>) -> Result<Option<Counts>> {
        let Task { element, action } = plan.tasks.get(t).ok_or_else(|| ConcatError::Options(format!("no task {t} in a plan of {}", plan.tasks.len())))?;
        let el = plan.elements.get(*element).ok_or_else(|| ConcatError::Job(format!("task {t} names element {element}, which the plan lacks")))?;
        el.kind().run(self, action, &|| counts(*element))
    }

    /// Complete an element once all its tasks ran (sparse: shrink the value arrays to
    /// the entries written).
    pub fn finish(&self, el: &Element, counts: &[Counts]) -> Result<()> {
        el.kind().finish(self, counts)
    }
}

/// Row offsets of a converted block.
pub(super) fn block_indptr(b: &Block) -> &[i64] {
    match b {
        Block::Sparse { indptr, .. } | Block::SparseNative { indptr, .. } => indptr,
        Block::Dense(_) => &[],
    }
}

/// `rows` rows of an input that lacks the element: every entry is the fill.
fn fill_block(el: &MatrixElement, rows: u64) -> Block {
    let c = el.n_cols as usize;
    let fill = el.fill;
    if !el.sparse {
        let a = ArrayData::from_shape_vec(&[rows, c as u64], vec![fill; rows as usize * c]).unwrap_or_else(|| ArrayData::zeros(DType::F64, &[0, 0]));
        return Block::Dense(a);
    }
    if fill == 0.0 {
        return Block::Sparse { indptr: vec![0; rows as usize + 1], indices: vec![], data: ArrayData::zeros(DType::F64, &[0]) };
    }
    let n = rows as usize * c;
    Block::Sparse {
        indptr: (0..=rows as i64).map(|r| r * c as i64).collect(),
        indices: (0..n).map(|k| (k % c) as i64).collect(),
        data: ArrayData::from_vec(vec![fill; n]),
    }
}

/// Run every task of `plan` in this process, element by element: its count tasks,
/// its writing tasks, then its finish.
pub fn run_in_process(plan: &JobPlan, exec: &Executor<'_>) -> Result<()> {
    for (e, el) in plan.elements.iter().enumerate() {
        exec.progress.element(el.path());
        exec.progress.element_total(el.kind().input_bytes(exec)?);
        let mine: Vec<usize> = (0..plan.tasks.len()).filter(|&t| plan.tasks[t].element == e).collect();
        let mut counts: Vec<Counts> = vec![];
        for stage in [0, 1] {
            for &t in mine.iter().filter(|&&t| plan.tasks[t].stage() == stage) {
                let c = exec.run(plan, t, &|_| Ok(counts.clone()))?;
                counts.extend(c);
            }
        }
        exec.finish(el, &counts)?;
    }
    Ok(())
}
