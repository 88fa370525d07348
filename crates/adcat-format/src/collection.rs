//! Collections of AnnData stores in one store: annbatch's `annbatch-preshuffled` root
//! holding AnnData groups `dataset_0`, `dataset_1`, ... (in that numeric order).

use crate::validate::{validate as validate_one, Report};
use crate::Result;
use adcat_store::{AttrValue, NodeKind, Store, Sub};

/// The root `encoding-type` of an annbatch collection.
pub const ANNBATCH_ENCODING: &str = "annbatch-preshuffled";

/// The datasets of the collection at the root of `store`, in order, or `None` when the
/// root is not a collection.
pub fn datasets(store: &dyn Store) -> Result<Option<Vec<String>>> {
    if store.attr("", "encoding-type")?.as_ref().and_then(AttrValue::as_str) != Some(ANNBATCH_ENCODING) {
        return Ok(None);
    }
    let mut found: Vec<(u64, String)> = vec![];
    for name in store.list("")? {
        let number = name.strip_prefix("dataset_").and_then(|d| d.parse::<u64>().ok());
        if let Some(k) = number {
            if store.node_kind(&name)? == Some(NodeKind::Group) {
                found.push((k, name));
            }
        }
    }
    found.sort();
    Ok(Some(found.into_iter().map(|(_, n)| n).collect()))
}

/// Check every dataset of a collection as an AnnData store: the report's `n_obs` and
/// `x_nnz` are their sums; their var must have one length.
pub fn validate(store: &dyn Store, names: &[String], deep: bool) -> Report {
    let mut total = Report { n_obs: Some(0), x_nnz: Some(0), ..Report::default() };
    if names.is_empty() {
        total.problems.push("/: an annbatch collection without datasets (dataset_0, ...)".into());
    }
    for name in names {
        let r = validate_one(&Sub::new(store, name), deep);
        total.problems.extend(r.problems.iter().map(|p| format!("/{name}{}", if p.starts_with('/') { p.clone() } else { format!("/{p}") })));
        total.n_obs = total.n_obs.zip(r.n_obs).map(|(a, b)| a + b);
        total.x_nnz = total.x_nnz.zip(r.x_nnz).map(|(a, b)| a + b);
        match (total.n_vars, r.n_vars) {
            (None, v) => total.n_vars = v,
            (Some(a), Some(b)) if a != b => total.problems.push(format!("/{name}/var: {b} variables, other datasets have {a}")),
            _ => {}
        }
    }
    total
}
