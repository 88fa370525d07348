//! The element kind of a sparse matrix whose `data` and `indices` are virtual datasets
//! over the inputs' (`--virtual`): planning created them; one task writes `indptr`,
//! each input's offsets shifted by the entries before it.

use super::{output, Action, Counts, ElementKind, Executor};
use crate::{ConcatError, Result};
use adcat_format::stream::Appender;
use adcat_store::{join_path, ArrayData, DType};
use serde::{Deserialize, Serialize};

/// One input's part of a virtual sparse matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualPart {
    /// Input number.
    pub input: usize,
    /// The matrix's path in the input.
    pub path: String,
    /// Its rows.
    pub rows: u64,
    /// Its stored entries.
    pub nnz: u64,
}

/// A sparse matrix of virtual `data` and `indices`; its `indptr` is left to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualElement {
    /// Output path of the matrix (a CSR group).
    pub path: String,
    /// The inputs' parts, in order.
    pub parts: Vec<VirtualPart>,
    /// Type of the output's `indptr`.
    #[serde(with = "crate::serde_text::dtype")]
    pub indptr_dtype: DType,
}

impl ElementKind for VirtualElement {
    fn actions(&self) -> Vec<Action> {
        vec![Action::Indptr]
    }

    fn run(&self, exec: &Executor<'_>, action: &Action, _counts: &dyn Fn() -> Result<Vec<Counts>>) -> Result<Option<Counts>> {
        match action {
            Action::Indptr => self.write_indptr(exec).map(|()| None),
            other => Err(ConcatError::Job(format!("/{}: the plan gives it a task it cannot run ({other:?}); plan again with this adcat", self.path))),
        }
    }

    fn input_bytes(&self, _exec: &Executor<'_>) -> Result<u64> {
        Ok(self.parts.iter().map(|p| (p.rows + 1) * 8).sum())
    }
}

impl VirtualElement {
    /// Stream every input's `indptr` (without its leading 0) into the output's, shifted
    /// by the entries of the inputs before it.
    fn write_indptr(&self, exec: &Executor<'_>) -> Result<()> {
        let out_path = join_path(&self.path, "indptr");
        let mut out = Appender::open_at(exec.out, &out_path, 0).map_err(output)?;
        let first = ArrayData::zeros(self.indptr_dtype, &[1]);
        out.push(exec.out, first).map_err(output)?;
        let block = (exec.budget / 16 / 8).max(1);
        let mut offset = 0i64;
        let mut total = 1u64;
        for part in &self.parts {
            let store = exec.input(part.input)?;
            let p = join_path(&part.path, "indptr");
            let mut s = 1;
            while s <= part.rows {
                let e = (s + block).min(part.rows + 1);
                let v = store.read_rows(&p, s, e).map_err(|e| crate::at_input(e.into(), store))?;
                let shifted: Vec<i64> = v.to_i64_vec().unwrap_or_default().into_iter().map(|x| x + offset).collect();
                let a = ArrayData::from_vec(shifted).cast(self.indptr_dtype).ok_or_else(|| ConcatError::unsupported(&out_path, "offsets do not fit its type"))?;
                out.push(exec.out, a).map_err(output)?;
                exec.progress.advance((e - s) * 8);
                s = e;
            }
            offset += part.nnz as i64;
            total += part.rows;
        }
        out.finish_to(exec.out, total).map_err(output)
    }
}
