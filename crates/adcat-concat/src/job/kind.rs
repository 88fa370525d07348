//! The one interface every element kind implements: its tasks, how to run one, and how
//! to complete the element once they all ran. A new kind is a struct in the plan, a
//! variant of [`Element`](super::Element), and this trait.

use super::{output, Action, AwkwardElement, ColumnElement, Counts, Executor, MatrixElement, UnsElement};
use crate::{ConcatError, Result};
use adcat_store::join_path;

/// What each element kind provides to the plan and to executors.
pub trait ElementKind {
    /// Its tasks' actions. First-stage actions (counts) are moved ahead of every
    /// second-stage one in the plan.
    fn actions(&self) -> Vec<Action>;
    /// Run one of its tasks; `counts` gives the counts of all its count tasks (what a
    /// second-stage task needs). Returns a count task's counts.
    fn run(&self, exec: &Executor<'_>, action: &Action, counts: &dyn Fn() -> Result<Vec<Counts>>) -> Result<Option<Counts>>;
    /// Complete the element once every task ran (most kinds have nothing left to do).
    fn finish(&self, _exec: &Executor<'_>, _counts: &[Counts]) -> Result<()> {
        Ok(())
    }
    /// Stored bytes its tasks read (for progress).
    fn input_bytes(&self, exec: &Executor<'_>) -> Result<u64>;
}

/// Stored bytes of the elements at `(input, path)` (a missing path reads nothing).
fn stored_bytes<'a>(exec: &Executor<'_>, at: impl Iterator<Item = (usize, Option<&'a str>)>) -> Result<u64> {
    let mut total = 0;
    for (input, path) in at {
        if let Some(p) = path {
            total += adcat_format::copy::data_bytes(exec.input(input)?, p).unwrap_or(0);
        }
    }
    Ok(total)
}

fn wrong_action(path: &str, a: &Action) -> ConcatError {
    ConcatError::Job(format!("/{path}: the plan gives it a task it cannot run ({a:?}); plan again with this adcat"))
}

impl ElementKind for MatrixElement {
    fn actions(&self) -> Vec<Action> {
        let spans = self.spans();
        if !self.sparse {
            return spans.into_iter().map(|rows| Action::Dense { rows }).collect();
        }
        let parts = spans.len() as u64;
        let counts = spans.into_iter().map(|rows| Action::Count { rows });
        counts.chain((0..parts).map(|part| Action::Sparse { part, parts })).collect()
    }

    fn run(&self, exec: &Executor<'_>, action: &Action, counts: &dyn Fn() -> Result<Vec<Counts>>) -> Result<Option<Counts>> {
        match action {
            Action::Count { rows } => Ok(Some(exec.count(self, *rows)?)),
            Action::Dense { rows } => exec.write_dense(self, *rows).map(|()| None),
            Action::Sparse { part, parts } => exec.write_sparse(self, &counts()?.concat(), *part, *parts).map(|()| None),
            other => Err(wrong_action(&self.path, other)),
        }
    }

    /// Shrink a sparse element's value arrays to the entries written.
    fn finish(&self, exec: &Executor<'_>, counts: &[Counts]) -> Result<()> {
        if !self.sparse {
            return Ok(());
        }
        let nnz: u64 = counts.iter().flatten().sum();
        for part in ["data", "indices"] {
            let p = join_path(&self.path, part);
            let m = exec.out.array_meta(&p).map_err(output)?;
            if m.shape != [nnz] {
                exec.out.resize(&p, &[nnz]).map_err(output)?;
            }
        }
        Ok(())
    }

    fn input_bytes(&self, exec: &Executor<'_>) -> Result<u64> {
        (0..self.sources.len()).map(|i| Ok(exec.source(self, i)?.map_or(0, |s| s.data_bytes()))).sum()
    }
}

impl ElementKind for ColumnElement {
    fn actions(&self) -> Vec<Action> {
        self.spans().into_iter().map(|rows| Action::Column { rows }).collect()
    }

    fn run(&self, exec: &Executor<'_>, action: &Action, _counts: &dyn Fn() -> Result<Vec<Counts>>) -> Result<Option<Counts>> {
        match action {
            Action::Column { rows } => exec.write_column(self, *rows).map(|()| None),
            other => Err(wrong_action(&self.path, other)),
        }
    }

    fn input_bytes(&self, exec: &Executor<'_>) -> Result<u64> {
        stored_bytes(exec, self.sources.iter().map(|s| (s.input, s.path.as_deref())))
    }
}

impl ElementKind for AwkwardElement {
    fn actions(&self) -> Vec<Action> {
        vec![Action::Awkward]
    }

    fn run(&self, exec: &Executor<'_>, action: &Action, _counts: &dyn Fn() -> Result<Vec<Counts>>) -> Result<Option<Counts>> {
        match action {
            Action::Awkward => exec.write_awkward(self).map(|()| None),
            other => Err(wrong_action(&self.path, other)),
        }
    }

    fn input_bytes(&self, exec: &Executor<'_>) -> Result<u64> {
        stored_bytes(exec, self.sources.iter().map(|s| (s.input, s.path.as_deref())))
    }
}

impl ElementKind for UnsElement {
    fn actions(&self) -> Vec<Action> {
        vec![Action::Uns]
    }

    fn run(&self, exec: &Executor<'_>, action: &Action, _counts: &dyn Fn() -> Result<Vec<Counts>>) -> Result<Option<Counts>> {
        match action {
            Action::Uns => exec.write_uns(self).map(|()| None),
            other => Err(wrong_action(&self.path, other)),
        }
    }

    fn input_bytes(&self, exec: &Executor<'_>) -> Result<u64> {
        let leaves = self.leaves();
        stored_bytes(exec, leaves.iter().map(|(p, i)| (*i, Some(p.as_str()))))
    }
}
