//! Selecting cells while concatenating (`--obs-filter`, `--obs-names`): a filter
//! language ([`expr`]), its evaluation on obs columns block by block, the kept rows of
//! each input ([`RowSel`]), and the input seen with only those rows ([`SelectedView`]),
//! which the engine then streams like any input.

mod eval;
pub mod expr;
pub mod rows;
mod view;

pub use expr::{parse, Expr, ParseError};
pub use rows::{RowSel, RowSelBuilder};
pub use view::SelectedView;

use crate::columns::{col_kind, element_len, read_strings};
use crate::{At, ConcatError, Result};
use adcat_format::{detect, Encoding, FormatError};
use adcat_store::{join_path, NodeKind, Store};
use std::collections::HashSet;
use std::sync::Arc;

/// Which cells to keep: those passing `filter` and, if given, named in `names` (the
/// final names, with the `index_unique` suffix).
#[derive(Debug, Clone, Default)]
pub struct ObsSelection {
    /// A filter on obs columns.
    pub filter: Option<Expr>,
    /// Cell names to keep.
    pub names: Option<Arc<HashSet<String>>>,
}

/// Rows of obs evaluated at once.
const BLOCK: u64 = 1 << 18;

/// The obs rows of `store` that `sel` keeps; `suffix` is what `index_unique` appends to
/// its names.
pub(crate) fn select_rows(store: &dyn Store, sel: &ObsSelection, suffix: &str) -> Result<RowSel> {
    let index = crate::inputs::index_path(store, "obs")?;
    let n = element_len(store, &index).at(store)?;
    let eval = sel.filter.as_ref().map(|f| eval::Eval::new(store, "obs", f)).transpose()?;
    let index_kind = col_kind(store, &index)?;
    let mut b = RowSelBuilder::default();
    let mut s = 0;
    while s < n {
        let e = (s + BLOCK).min(n);
        let mut keep = match (&eval, &sel.filter) {
            (Some(ev), Some(f)) => ev.rows(f, s, e)?,
            _ => vec![true; (e - s) as usize],
        };
        if keep.len() as u64 != e - s {
            return Err(ConcatError::Input { file: store.location().into(), source: FormatError::invalid("obs", format!("the filter's columns hold fewer rows than obs ({} of {} in rows {s}..{e})", keep.len(), e - s)) });
        }
        if let Some(names) = &sel.names {
            let idx = read_strings(store, &index, &index_kind, s, e)?;
            for (k, name) in keep.iter_mut().zip(idx) {
                *k = *k && names.contains(&format!("{name}{suffix}"));
            }
        }
        b.push(&keep);
        s = e;
    }
    Ok(b.finish())
}

/// Which of the `n` var rows of `store` pass `filter` (var is small: one block).
pub(crate) fn var_rows(store: &dyn Store, filter: &Expr, n: u64) -> Result<Vec<bool>> {
    let keep = eval::Eval::new(store, "var", filter)?.rows(filter, 0, n)?;
    if keep.len() as u64 != n {
        return Err(ConcatError::Input { file: store.location().into(), source: FormatError::invalid("var", format!("the filter's columns hold {} rows, var has {n}", keep.len())) });
    }
    Ok(keep)
}

/// Refuse inputs whose obs-aligned elements a selection cannot stream: CSC matrices
/// (their rows are scattered through every column) and awkward arrays; obsp when it is
/// concatenated (`pairwise`).
pub(crate) fn check_selectable(store: &dyn Store, pairwise: bool) -> Result<()> {
    let mut elements = vec!["X".to_owned(), "raw/X".to_owned()];
    for group in ["layers", "obsm"] {
        if store.node_kind(group).at(store)? == Some(NodeKind::Group) {
            elements.extend(store.list(group).at(store)?.into_iter().map(|k| join_path(group, &k)));
        }
    }
    for el in elements {
        if !store.exists(&el).at(store)? {
            continue;
        }
        let why = match detect(store, &el).at(store)?.encoding {
            Encoding::Csc => "is a csc_matrix, whose rows cannot be selected while streaming; store it as CSR (anndata: `adata.X = adata.X.tocsr()`) or select without adcat",
            Encoding::Awkward => "is an awkward array, whose rows adcat cannot select yet",
            _ => continue,
        };
        return Err(ConcatError::Input { file: store.location().into(), source: FormatError::invalid(&el, why) });
    }
    if pairwise && store.node_kind("obsp").at(store)? == Some(NodeKind::Group) && !store.list("obsp").at(store)?.is_empty() {
        return Err(ConcatError::Options(format!("{}: obsp with --pairwise cannot be combined with a cell selection yet", store.location())));
    }
    Ok(())
}
