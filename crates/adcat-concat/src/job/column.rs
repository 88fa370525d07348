//! The dataframe-column element kind: a column of a dataframe along the concatenation
//! axis (obs columns, the index, the label column, obsm dataframe columns). Planning
//! unifies the inputs' types and creates the column; each task converts and writes a
//! range of rows that covers whole write units of the column's arrays.

use super::blocks::{blocks_over, Blk};
use super::{output, Executor};
use crate::columns::{col_kind, ColKind, ColumnOut, SourceRows};
use crate::{At, Result};
use adcat_format::stream::Appender;
use adcat_store::{join_path, ArrayData};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Where one input's rows of a column come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSource {
    /// Input number (position in the job's input list).
    pub input: usize,
    /// Column path in that input; `None` when the input lacks it.
    pub path: Option<String>,
    /// Rows along the concatenation axis.
    pub rows: u64,
}

/// One dataframe column of the output, created by planning and filled by tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnElement {
    /// Column path in the output.
    pub path: String,
    /// The output's type.
    pub out: ColumnOut,
    /// One source per input, in input order.
    pub sources: Vec<ColumnSource>,
    /// Rows per read block.
    pub block_rows: u64,
    /// Rows per task: a multiple of the write units of the values and mask arrays.
    pub task_rows: u64,
}

impl ColumnElement {
    /// Total rows.
    pub fn n_rows(&self) -> u64 {
        self.sources.iter().map(|s| s.rows).sum()
    }

    /// The row ranges of its tasks.
    pub fn spans(&self) -> Vec<[u64; 2]> {
        let (n, step) = (self.n_rows(), self.task_rows.max(1));
        (0..n.div_ceil(step)).map(|k| [k * step, ((k + 1) * step).min(n)]).collect()
    }

    fn blocks(&self, r0: u64, r1: u64) -> Vec<Blk> {
        blocks_over(self.sources.iter().map(|s| (s.rows, self.block_rows)), r0, r1)
    }

    /// Output paths of its values array and of its mask array (if any).
    pub fn arrays(&self) -> (String, Option<String>) {
        let (values, masked) = self.out.values_array();
        let v = if values.is_empty() { self.path.clone() } else { join_path(&self.path, values) };
        (v, masked.then(|| join_path(&self.path, "mask")))
    }
}

impl Executor<'_> {
    /// Write rows `rows` of column `el`.
    pub(super) fn write_column(&self, el: &ColumnElement, rows: [u64; 2]) -> Result<()> {
        let (vpath, mpath) = el.arrays();
        let mut values = Appender::open_at(self.out, &vpath, rows[0]).map_err(output)?;
        let mut mask = mpath.as_ref().map(|p| Appender::open_at(self.out, p, rows[0])).transpose().map_err(output)?;
        let mut kinds: HashMap<usize, Option<ColKind>> = HashMap::new();
        for b in el.blocks(rows[0], rows[1]) {
            let s = &el.sources[b.src];
            let store = self.input(s.input)?;
            if let std::collections::hash_map::Entry::Vacant(v) = kinds.entry(b.src) {
                v.insert(s.path.as_deref().map(|p| col_kind(store, p)).transpose().at(store)?);
            }
            let src = SourceRows { store, path: s.path.as_deref().unwrap_or(&el.path), kind: kinds[&b.src].as_ref(), source: b.src };
            let (v, m) = src.convert(&el.out, b.start, b.end).at(store)?;
            values.push(self.out, v).map_err(output)?;
            if let Some(a) = mask.as_mut() {
                a.push(self.out, ArrayData::from_vec(m)).map_err(output)?;
            }
        }
        values.finish_to(self.out, rows[1]).map_err(output)?;
        mask.map(|a| a.finish_to(self.out, rows[1])).transpose().map_err(output)?;
        Ok(())
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a.checked_div(x).map_or(0, |q| q * b)
}

impl ColumnElement {
    /// Rows per task: about `task_bytes` of output, in whole write units of both the
    /// values and the mask array (their units may differ: chunks are sized in bytes).
    pub(crate) fn planned_task_rows(&self, out: &dyn adcat_store::Store, task_bytes: u64) -> adcat_store::Result<u64> {
        let unit = |p: &str| -> adcat_store::Result<u64> {
            let m = out.array_meta(p)?;
            Ok(m.shards.as_ref().or(m.chunks.as_ref()).and_then(|c| c.first().copied()).unwrap_or(1).max(1))
        };
        let (v, m) = self.arrays();
        let u = lcm(unit(&v)?, m.as_deref().map(unit).transpose()?.unwrap_or(1)).max(1);
        let row_bytes = adcat_format::layout::element_bytes(self.out.values_dtype()) + u64::from(m.is_some());
        Ok((task_bytes / row_bytes / u).max(1) * u)
    }
}
