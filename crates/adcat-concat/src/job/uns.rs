//! The uns element kind: the inputs' `uns` mappings merged with `--uns-merge`. Whether a
//! key is kept depends on every input's value, so planning merges (comparing values) and
//! records where each kept value comes from; one task then creates the merged mappings
//! and copies each kept value from its input, streaming arrays. A rerun replaces what an
//! interrupted run left.

use super::{output, Executor};
use crate::merge::{merge_nested, Kept, Strategy, Tree};
use crate::{At, Result};
use adcat_format::copy::copy_element_to;
use adcat_format::layout::WriteOptions;
use adcat_format::Encoding;
use adcat_store::{join_path, NodeKind, Store};
use serde::{Deserialize, Serialize};

/// The output's `uns`, merged from every input by one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsElement {
    /// Element path in the output and in every input (`uns`).
    pub path: String,
    /// Its kept keys, in order, and where each value comes from.
    pub keep: Vec<(String, Kept)>,
    /// Layout of the arrays it writes.
    pub write: WriteOptions,
}

impl UnsElement {
    /// Merge the `uns` of `inputs` with strategy `s`, refusing (before any task runs) a
    /// kept value the output cannot hold.
    pub(crate) fn plan(inputs: &[&dyn Store], out: &dyn Store, s: Strategy, write: &WriteOptions) -> Result<UnsElement> {
        let path = "uns";
        let mut trees = Vec::with_capacity(inputs.len());
        for store in inputs {
            let has = store.exists(path).at(*store)?;
            trees.push(if has { Tree::read(*store, path).at(*store)? } else { Tree::Group { attrs: Default::default(), children: vec![] } });
        }
        let maps: Vec<&[(String, Tree)]> = trees.iter().map(Tree::children).collect();
        let keep = merge_nested(&maps, s);
        let el = UnsElement { path: path.into(), keep, write: write.clone() };
        for (p, input) in el.leaves() {
            check_holds(inputs[input], &p, out).at(inputs[input])?;
        }
        Ok(el)
    }

    /// Every kept value's path and the input it comes from.
    pub(crate) fn leaves(&self) -> Vec<(String, usize)> {
        fn walk(path: &str, kept: &[(String, Kept)], out: &mut Vec<(String, usize)>) {
            for (k, v) in kept {
                let p = join_path(path, k);
                match v {
                    Kept::Mapping(children) => walk(&p, children, out),
                    Kept::Input(i) => out.push((p, *i)),
                }
            }
        }
        let mut out = vec![];
        walk(&self.path, &self.keep, &mut out);
        out
    }
}

/// Refuse a record under `path` of `store` (a kept value) whose fields `out` cannot hold.
fn check_holds(store: &dyn Store, path: &str, out: &dyn Store) -> adcat_format::Result<()> {
    match store.node_kind(path)? {
        Some(NodeKind::Group) => {
            for c in store.list(path)? {
                check_holds(store, &join_path(path, &c), out)?;
            }
        }
        Some(NodeKind::Array) if store.is_record(path)? => {
            for f in store.record_fields(path)? {
                out.kind().check_record_field(path, &f.name, &f.shape)?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl Executor<'_> {
    /// Write the merged mappings and copy every kept value into the `uns` group planning
    /// created.
    pub(super) fn write_uns(&self, el: &UnsElement) -> Result<()> {
        self.write_kept(&el.path, &el.keep, &el.write)
    }

    fn write_kept(&self, path: &str, kept: &[(String, Kept)], write: &WriteOptions) -> Result<()> {
        for (k, v) in kept {
            let p = join_path(path, k);
            if self.out.exists(&p).map_err(output)? {
                self.out.delete(&p).map_err(output)?;
            }
            match v {
                Kept::Mapping(children) => {
                    self.out.create_group(&p).map_err(output)?;
                    self.out.set_attrs(&p, &Encoding::Dict.attrs()).map_err(output)?;
                    self.write_kept(&p, children, write)?;
                }
                Kept::Input(i) => {
                    let store = self.input(*i)?;
                    copy_element_to(store, &p, self.out, &p, write).at(store)?;
                }
            }
        }
        Ok(())
    }
}
