//! The awkward-array element kind (an awkward layer, an awkward obsm entry). Its buffers'
//! lengths and the unified type depend on every input, so the element is one task,
//! which writes the whole group; a rerun removes what an interrupted run left first.

use super::{output, Executor};
use crate::awkward::{self, AwkInput, AwkSource};
use crate::index::Join;
use crate::Result;
use adcat_format::layout::WriteOptions;
use adcat_store::Store;
use serde::{Deserialize, Serialize};

/// Where one input's rows of an awkward element come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwkwardSource {
    /// Input number.
    pub input: usize,
    /// Element path in that input; `None` when the input lacks it.
    pub path: Option<String>,
    /// Rows along the concatenation axis.
    pub rows: u64,
}

/// One awkward array of the output, written by a single task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwkwardElement {
    /// Element path in the output.
    pub path: String,
    /// One source per input, in input order.
    pub sources: Vec<AwkwardSource>,
    /// What an input without it contributes: rows of this many NaN (a layer, as
    /// anndata fills a missing layer), or, when absent, `None` values (obsm).
    pub fill_width: Option<u64>,
    /// Inner joins keep the record fields common to every input.
    pub join: Join,
    /// Layout of the buffers it creates.
    pub write: WriteOptions,
    /// Values per read block.
    pub block: u64,
}

impl AwkwardElement {
    /// The engine's view of each input, its stores looked up by `store`.
    pub(crate) fn inputs<'a>(&self, store: impl Fn(usize) -> Result<&'a dyn Store>) -> Result<Vec<AwkInput<'a>>> {
        let mut inputs = Vec::with_capacity(self.sources.len());
        for s in &self.sources {
            inputs.push(match (&s.path, self.fill_width) {
                (Some(p), _) => AwkInput::Stored(AwkSource::open_rows(store(s.input)?, p, s.rows)?),
                (None, Some(width)) => AwkInput::Fill { n: s.rows, width },
                (None, None) => AwkInput::Missing(s.rows),
            });
        }
        Ok(inputs)
    }
}

impl Executor<'_> {
    /// Write awkward element `el` whole.
    pub(super) fn write_awkward(&self, el: &AwkwardElement) -> Result<()> {
        if self.out.exists(&el.path).map_err(output)? {
            self.out.delete(&el.path).map_err(output)?;
        }
        let inputs = el.inputs(|i| self.input(i))?;
        awkward::concat(&inputs, el.join, self.out, &el.path, &el.write, el.block)
    }
}
