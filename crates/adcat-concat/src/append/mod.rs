//! `append`: grow an AnnData store by more inputs, so that it equals concatenating its
//! inputs and the new ones at once.
//!
//! The engine itself decides what the grown store holds. The new inputs are
//! concatenated into a scratch store (*delta*) together with the store seen with none
//! of its cells ([`SelectedView`] keeping no rows): the store takes part in every
//! decision (column types and categories, matrix dtypes, the var merge, varm, uns) as
//! one input, and contributes no rows. Delta then holds the new rows, already aligned
//! and typed as the whole result wants them, and the merged off-axis elements.
//! [`splice`] grows each element of the *target* (a copy of the store that the caller
//! puts in the store's place once everything succeeded) by delta's rows, and replaces
//! the small off-axis elements (var, varm, varp, uns) with delta's.
//!
//! The off axis is the one rule that differs from a single concatenation: the store's
//! var names keep their order, and an outer join adds new names after them in the
//! order the inputs first show them. obs columns that are new or change type are
//! rewritten whole (they are small), as are obsm entries new with the inputs (outer
//! join: the store's cells hold the fill). What needs more than growing a matrix — a
//! dtype change, dense matrices gaining genes, a CSC matrix — or would drop store
//! genes or columns under an inner join is refused with the store and element named
//! ([`ConcatError::Refused`]); the command line adds the `adcat concat` command that
//! builds the result in a new store.

mod alias;
mod splice;

use crate::index::Join;
use crate::options::{Axis, ConcatOptions, Report};
use crate::select::{RowSel, SelectedView};
use crate::{At, ConcatError, Result};
use adcat_format::{detect, provenance, Encoding, FormatError, Progress};
use adcat_store::{NodeKind, Store};
use std::collections::HashSet;
use std::sync::Arc;

/// The label category of the store in delta's concatenation: no cell carries it.
const STORE_KEY: &str = "\u{1}adcat:store";

/// The stores an append works with.
#[derive(Debug, Clone, Copy)]
pub struct AppendStores<'a> {
    /// The store as it is (read only: the rows it already has).
    pub store: &'a dyn Store,
    /// A copy of the store, grown in place; the caller swaps it in afterwards.
    pub target: &'a dyn Store,
    /// An empty store for the new rows (delta), removed by the caller afterwards.
    pub scratch: &'a dyn Store,
}

/// Append `inputs` to `stores.store`, writing the result into `stores.target` (see the
/// module documentation). The report's shape is the grown store's.
pub fn append(stores: AppendStores<'_>, inputs: &[&dyn Store], opts: &ConcatOptions, progress: &dyn Progress) -> Result<Report> {
    let store = stores.store;
    check_options(opts)?;
    if inputs.is_empty() {
        return Err(ConcatError::Options("no inputs to append".into()));
    }
    check_store(store)?;
    let n_old = crate::columns::element_len(store, &crate::inputs::index_path(store, "obs")?).at(store)?;
    let store_var = adcat_format::frame::read_index(store, "var").at(store)?;
    let keys = new_keys(store, n_old, inputs.len(), opts)?;
    // Inputs of any anndata version, read as the engine reads them.
    let legacy: Vec<adcat_format::LegacyView<'_>> = inputs.iter().map(|s| adcat_format::LegacyView::new(*s)).collect();
    let seen: Vec<&dyn Store> = legacy.iter().map(|v| v as &dyn Store).collect();
    let var = target_var(store, &store_var, &seen, opts)?;
    let raw_var = target_raw_var(store, &seen, opts)?;
    let n_var = var.len() as u64;
    let empty = SelectedView::new(store, Arc::new(RowSel::none(n_old)));
    let (selected, kept) = select_new(&seen, &keys, opts)?;
    let mut all: Vec<&dyn Store> = vec![&empty];
    match &selected {
        Some(views) => all.extend(views.iter().map(|v| v as &dyn Store)),
        None => all.extend_from_slice(&seen),
    }
    let keyed = by_key(store, &all, opts)?;
    let all: Vec<&dyn Store> = match &keyed {
        Some(views) => views.iter().map(|v| v as &dyn Store).collect(),
        None => all,
    };
    let dopts = ConcatOptions {
        keys: Some(std::iter::once(STORE_KEY.to_owned()).chain(keys.iter().cloned()).collect()),
        off_names: Some(Arc::new(var)),
        raw_off_names: raw_var.map(Arc::new),
        obs_select: None,
        // The gene filter selects among the new inputs' genes; the store's stay.
        var_filter_skip: 1,
        off_key: opts.off_key.as_ref().map(|_| alias::KEY.to_owned()),
        no_provenance: true,
        // Delta is read back once, right away: compressing it would only cost time.
        write: adcat_format::layout::WriteOptions { compression: Some(adcat_store::Compression::None), ..opts.write.clone() },
        ..opts.clone()
    };
    let mut report = crate::concat(&all, stores.scratch, &dopts, progress)?;
    report.kept = kept;
    let n_new = report.shape.0;
    splice::Splice::new(stores, n_old, n_new, opts).run(&mut report)?;
    report.shape = (n_old + n_new, n_var);
    report.off_match = report.off_match.into_iter().filter(|m| m.input > 0).map(|m| crate::OffMatch { input: m.input - 1, ..m }).collect();
    if !opts.no_provenance {
        record(stores, &seen, &keys, opts, &report)?;
    }
    stores.target.flush().map_err(|e| ConcatError::Output(e.into()))?;
    Ok(report)
}

/// Options an append cannot honour (yet).
fn check_options(opts: &ConcatOptions) -> Result<()> {
    let refuse = |what: &str| Err(ConcatError::Options(format!("adcat append does not take {what} yet; concatenate into a new store instead (adcat concat)")));
    if opts.axis != Axis::Obs {
        return refuse("--axis var (appending grows obs)");
    }
    Ok(())
}

/// With `--var-key COLUMN`, delta's inputs (the store first) seen with a private column
/// [`alias::KEY`] to match by: the store's var index, the new inputs' COLUMN. The grown
/// store's names are its own then the new ones in the column's terms, so the store's
/// index must be in those terms (a store built with the key); a COLUMN in the store
/// (kept by a merge, with gaps under an outer join) takes part in merges as any column.
fn by_key<'a>(store: &dyn Store, all: &[&'a dyn Store], opts: &ConcatOptions) -> Result<Option<Vec<alias::KeyAlias<'a>>>> {
    let Some(key) = &opts.off_key else { return Ok(None) };
    let virt = adcat_store::join_path("var", alias::KEY);
    let index = crate::inputs::index_path(store, "var")?;
    let column = adcat_store::join_path("var", key);
    Ok(Some(all.iter().enumerate().map(|(i, s)| alias::KeyAlias::new(*s, virt.clone(), if i == 0 { index.clone() } else { column.clone() })).collect()))
}

/// Views of the new inputs with the selected cells, and each one's kept and total cells.
type Selected<'a> = (Option<Vec<SelectedView<'a>>>, Vec<(u64, u64)>);

/// The new inputs seen with only the cells `--obs-filter`/`--obs-names` keep (`None`:
/// no selection), and each one's kept and total cells. The store's cells are not
/// selected: they are in already.
fn select_new<'a>(inputs: &[&'a dyn Store], keys: &[String], opts: &ConcatOptions) -> Result<Selected<'a>> {
    let Some(sel) = &opts.obs_select else { return Ok((None, vec![])) };
    let (mut views, mut kept) = (vec![], vec![]);
    for (s, key) in inputs.iter().zip(keys) {
        crate::select::check_selectable(*s, opts.pairwise)?;
        let suffix = opts.index_unique.as_ref().map(|sep| format!("{sep}{key}")).unwrap_or_default();
        let rows = crate::select::select_rows(*s, sel, &suffix).map_err(|e| crate::at_input(e, *s))?;
        kept.push((rows.count(), rows.len()));
        views.push(SelectedView::new(*s, Arc::new(rows)));
    }
    Ok((Some(views), kept))
}

/// A refusal of `store`'s element `path`.
pub(crate) fn refused(store: &dyn Store, path: &str, why: impl Into<String>) -> ConcatError {
    ConcatError::Refused { store: store.location().to_owned(), path: path.trim_start_matches('/').to_owned(), why: why.into() }
}

/// The store must be an AnnData store of the current layout (anndata >= 0.8), whose
/// matrices grow by rows.
fn check_store(store: &dyn Store) -> Result<()> {
    if detect(store, "").at(store)?.encoding != Encoding::AnnData {
        return Err(ConcatError::Input { file: store.location().into(), source: FormatError::invalid("", "not an AnnData store") });
    }
    for frame in ["obs", "var"] {
        let enc = if store.exists(frame).at(store)? { Some(detect(store, frame).at(store)?.encoding) } else { None };
        if enc != Some(Encoding::DataFrame) {
            return Err(refused(store, frame, "is not a dataframe of the current layout (written by anndata < 0.8); convert the store first (adcat convert STORE NEW) and append to the new one"));
        }
    }
    for el in splice::matrix_elements(store)? {
        let why = match detect(store, &el).at(store)?.encoding {
            Encoding::Csc => "is a csc_matrix: new cells would go into every column's entries; store it as CSR (anndata: `adata.X = adata.X.tocsr()`) or concatenate into a new store",
            Encoding::Awkward => "is an awkward array, which adcat cannot append to yet",
            _ => continue,
        };
        return Err(refused(store, &el, why));
    }
    // A virtual h5ad (concat --virtual) maps its inputs' arrays: they cannot grow.
    if let Some((p, s)) = adcat_format::refs::references(store).at(store)?.first() {
        return Err(refused(store, p, format!("is a virtual dataset mapping {}:{} (a concat --virtual output), which cannot grow in place", s.file, s.path)));
    }
    Ok(())
}

/// The new inputs' keys: as given, or continuing the store's numbering ("0", "1", ...
/// over every input the store was built from) when a label or unique index needs them.
fn new_keys(store: &dyn Store, n_old: u64, n: usize, opts: &ConcatOptions) -> Result<Vec<String>> {
    if let Some(k) = &opts.keys {
        if k.len() < n {
            return Err(ConcatError::Options(format!("{} keys given for {n} inputs; give one key per input", k.len())));
        }
        return Ok(k.clone());
    }
    let needed = opts.label.is_some() || opts.index_unique.is_some();
    // Only a complete record that describes the store as it is (not one left stale by
    // an append with --no-provenance).
    let built_from = match provenance::read(store) {
        Ok(Some(p)) if p.omitted_steps == 0 && p.history.last().is_some_and(|s| s.shape[0] == n_old) => {
            Some(p.history.iter().map(|s| s.inputs.len() as u64 + s.omitted_inputs).sum::<u64>())
        }
        _ => None,
    };
    // Without a record, a label whose categories are the default keys "0".."K-1" says K.
    let built_from = match (built_from, &opts.label) {
        (None, Some(l)) => default_label_count(store, l),
        (b, _) => b,
    };
    match built_from {
        Some(k0) => Ok((0..n as u64).map(|i| (k0 + i).to_string()).collect()),
        None if !needed => Ok((0..n).map(|i| i.to_string()).collect()),
        None => Err(ConcatError::Options(format!(
            "{}: the store does not record how many inputs built it, so the default keys (\"0\", \"1\", ...) cannot be continued; give the new inputs' keys with --keys",
            store.location()
        ))),
    }
}

/// K when the store's column `label` is categorical with categories "0", ..., "K-1".
fn default_label_count(store: &dyn Store, label: &str) -> Option<u64> {
    let cats = store.read_all(&format!("obs/{label}/categories")).ok()?;
    let cats = cats.as_strings()?;
    cats.iter().enumerate().all(|(i, c)| *c == i.to_string()).then_some(cats.len() as u64)
}

/// The grown store's var names: the store's, then (outer join) names new to it in the
/// order the inputs first show them. An inner join that would drop store names, or a
/// `--var-names` list other than the store's, is refused.
fn target_var(store: &dyn Store, store_var: &[String], inputs: &[&dyn Store], opts: &ConcatOptions) -> Result<Vec<String>> {
    if let Some(fixed) = &opts.off_names {
        if fixed.as_slice() != store_var {
            return Err(refused(
                store,
                "var",
                format!("has {} names, which --var-names must list in their order to append (the store's genes cannot change without rewriting it); concatenate into a new store to change them", store_var.len()),
            ));
        }
        return Ok(store_var.to_vec());
    }
    let out = grown_names(store, "var", store_var, inputs, opts.join, opts.off_key.as_deref(), opts.var_filter.as_ref())?;
    if let Some(key) = &opts.off_key {
        // The store is matched by its index: one in other terms (symbols where the column
        // holds Ensembl ids) would match nothing and every gene would come in again.
        let grown = out.len() - store_var.len();
        if !store_var.is_empty() && grown > 0 && grown == distinct_names(inputs, key)? {
            return Err(refused(store, "var", format!("has none of the names the new inputs' column `{key}` holds: append matches the store by its index, which must be in that column's terms (a store built with --var-key {key})")));
        }
    }
    Ok(out)
}

/// How many distinct names the inputs' var column `key` holds.
fn distinct_names(inputs: &[&dyn Store], key: &str) -> Result<usize> {
    let mut all = HashSet::new();
    for s in inputs {
        all.extend(crate::inputs::off_names(*s, "var", Some(key)).at(*s)?);
    }
    Ok(all.len())
}

/// The grown store's raw var names, by the rule for var (no list, no key: raw keeps its
/// own join); `None` when the store or some new input has no raw (concatenating at once
/// drops raw then, which splicing refuses).
fn target_raw_var(store: &dyn Store, inputs: &[&dyn Store], opts: &ConcatOptions) -> Result<Option<Vec<String>>> {
    let has_raw = |s: &dyn Store| -> Result<bool> { Ok(s.node_kind("raw").at(s)? == Some(NodeKind::Group) && detect(s, "raw").at(s)?.encoding == Encoding::Raw) };
    for s in std::iter::once(&store).chain(inputs) {
        if !has_raw(*s)? {
            return Ok(None);
        }
    }
    let own = adcat_format::frame::read_index(store, "raw/var").at(store)?;
    grown_names(store, "raw/var", &own, inputs, opts.join, None, None).map(Some)
}

/// The store's names along `frame` (`own`), then (outer join) names new to it in the
/// order `inputs` first show them (their index, or column `key`; those passing `filter`).
/// An inner join that would drop store names is refused.
fn grown_names(store: &dyn Store, frame: &str, own: &[String], inputs: &[&dyn Store], join: Join, key: Option<&str>, filter: Option<&crate::select::Expr>) -> Result<Vec<String>> {
    let known: HashSet<&str> = own.iter().map(String::as_str).collect();
    let mut out = own.to_vec();
    let mut seen = HashSet::new();
    for s in inputs {
        let mut names = crate::inputs::off_names(*s, frame, key).at(*s)?;
        if let Some(f) = filter {
            let keep = crate::select::var_rows(*s, f, names.len() as u64).map_err(|e| crate::at_input(e, *s))?;
            names = names.into_iter().zip(keep).filter_map(|(n, k)| k.then_some(n)).collect();
        }
        if join == Join::Inner {
            let have: HashSet<&str> = names.iter().map(String::as_str).collect();
            let missing = own.iter().filter(|n| !have.contains(n.as_str())).count();
            if missing > 0 {
                let list = if frame == "var" { ", or pass --var-names with the store's names" } else { "" };
                let example = own.iter().find(|n| !have.contains(n.as_str())).cloned().unwrap_or_default();
                let why = format!(
                    "would lose names: {} lacks {missing} of the store's {} {frame} names (e.g. {example:?}), which an inner join drops. Append with --join outer (they are filled){list}",
                    s.location(),
                    own.len(),
                );
                return Err(refused(store, frame, why));
            }
        } else {
            for n in names {
                if !known.contains(n.as_str()) && seen.insert(n.clone()) {
                    out.push(n);
                }
            }
        }
    }
    Ok(out)
}

/// Add the append to the store's provenance record.
fn record(stores: AppendStores<'_>, inputs: &[&dyn Store], keys: &[String], opts: &ConcatOptions, report: &Report) -> Result<()> {
    use provenance::{Provenance, Source, Step};
    let mut step = Step::new("append", report.shape);
    step.options = opts.provenance_options();
    step.inputs = inputs
        .iter()
        .zip(keys)
        .map(|(s, key)| {
            let n_obs = crate::inputs::index_path(*s, "obs").and_then(|p| crate::columns::element_len(*s, &p).at(*s)).unwrap_or(0);
            let n_vars = crate::inputs::index_path(*s, "var").and_then(|p| crate::columns::element_len(*s, &p).at(*s)).unwrap_or(0);
            Source { key: key.clone(), path: s.location().to_owned(), n_obs, n_vars, kept_obs: None, kept_vars: None }
        })
        .zip(report.kept.iter().map(|&(k, _)| Some(k)).chain(std::iter::repeat(None)))
        .map(|(src, kept_obs)| Source { kept_obs, ..src })
        .zip(report.kept_var.iter().map(|&(k, _)| Some(k)).chain(std::iter::repeat(None)))
        .map(|(src, kept_vars)| Source { kept_vars, ..src })
        .collect();
    let record = match provenance::read(stores.store) {
        Ok(Some(mut p)) => {
            p.history.push(step);
            p
        }
        _ => Provenance::new(step),
    };
    provenance::write(stores.target, &record).map_err(ConcatError::Output)
}
