//! Files an AnnData store reads data from besides itself: the sources of its virtual
//! arrays (an h5ad written by `adcat concat --virtual`).

use crate::Result;
use adcat_store::{join_path, NodeKind, Store, VirtualSource};

/// The groups whose arrays may be virtual (uns is not searched: it is never mapped).
const MAPPED: [&str; 7] = ["X", "layers", "obsm", "obsp", "varm", "varp", "raw"];

/// Every virtual array's sources, as `(array path, source)`, in tree order.
pub fn references(store: &dyn Store) -> Result<Vec<(String, VirtualSource)>> {
    let mut out = vec![];
    for top in MAPPED {
        walk(store, top, 0, &mut out)?;
    }
    Ok(out)
}

fn walk(store: &dyn Store, p: &str, depth: usize, out: &mut Vec<(String, VirtualSource)>) -> Result<()> {
    match store.node_kind(p)? {
        Some(NodeKind::Array) => {
            for s in store.virtual_sources(p)? {
                out.push((p.to_owned(), s));
            }
        }
        // Matrices sit at most three levels down (raw/X/data, obsm/key/data).
        Some(NodeKind::Group) if depth < 3 => {
            for c in store.list(p)? {
                walk(store, &join_path(p, &c), depth + 1, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The distinct files of `refs`, in first-seen order, each with whether it is present.
pub fn files(refs: &[(String, VirtualSource)]) -> Vec<(String, bool)> {
    let mut seen: Vec<(String, bool)> = vec![];
    for (_, s) in refs {
        if !seen.iter().any(|(f, _)| *f == s.file) {
            seen.push((s.file.clone(), s.present));
        }
    }
    seen
}
