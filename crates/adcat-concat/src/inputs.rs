//! The inputs of one part of a concatenation (the AnnData, or its raw): their sizes
//! along the axis and their off-axis names.

use crate::columns;
use crate::{At, ConcatError, Result};
use adcat_format::frame::read_index;
use adcat_format::FormatError;
use adcat_store::{join_path, Store};

/// Where the parts of an AnnData (or of its `raw`) live.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub prefix: &'static str,
    pub raw: bool,
}

impl Layout {
    pub fn p(&self, name: &str) -> String {
        join_path(self.prefix, name)
    }
}

/// One input: its off-axis names (held in memory) and where its concatenation-axis
/// names live (streamed, never held whole).
pub(crate) struct Input<'a> {
    pub store: &'a dyn Store,
    /// Number of entries along the concatenation axis.
    pub n_ax: u64,
    /// The index element of the concatenation-axis dataframe.
    pub ax_index: String,
    /// Off-axis names (shared between inputs with the same names).
    pub off: std::sync::Arc<Vec<String>>,
    /// The off-axis dataframe they come from.
    pub off_df: String,
    /// The names taking part in the off-axis join: `off`, less those a filter removed
    /// (in `off` those are replaced by names no other input has, so they map nowhere).
    pub off_join: std::sync::Arc<Vec<String>>,
}

/// The element path of a dataframe's index.
pub(crate) fn index_path(store: &dyn Store, df: &str) -> Result<String> {
    let key = store
        .attr(df, "_index")
        .at(store)?
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(|| ConcatError::Input { file: store.location().into(), source: FormatError::invalid(df, "dataframe without an `_index` attribute") })?;
    Ok(join_path(df, &key))
}

/// Build the inputs of one part: `ax_df`/`off_df` are the dataframes along and across;
/// off-axis names are `off_df`'s index, or its column `off_key`.
pub(crate) fn inputs_for<'a>(stores: &[&'a dyn Store], ax_df: &str, off_df: &str, off_key: Option<&str>) -> Result<Vec<Input<'a>>> {
    let mut out: Vec<Input<'a>> = Vec::with_capacity(stores.len());
    for s in stores {
        let ax_index = index_path(*s, ax_df)?;
        let n_ax = columns::element_len(*s, &ax_index).at(*s)?;
        let names = off_names(*s, off_df, off_key).at(*s)?;
        // Atlases often share one gene list: keep a single copy.
        let off = match out.iter().rev().find(|i| *i.off == names) {
            Some(prev) => prev.off.clone(),
            None => std::sync::Arc::new(names),
        };
        out.push(Input { store: *s, n_ax, ax_index, off_join: off.clone(), off, off_df: off_df.to_owned() });
    }
    Ok(out)
}

/// Remove the off-axis names of `input` where `keep` is false: they leave the join, and
/// in `off` become names that match nothing (unique, so reindexing stays well defined).
pub(crate) fn drop_off_names(input: &mut Input<'_>, keep: &[bool]) {
    let kept: Vec<String> = input.off.iter().zip(keep).filter(|(_, &k)| k).map(|(n, _)| n.clone()).collect();
    let masked: Vec<String> = input.off.iter().zip(keep).enumerate().map(|(i, (n, &k))| if k { n.clone() } else { format!("\u{1}adcat:filtered:{i}") }).collect();
    input.off = std::sync::Arc::new(masked);
    input.off_join = std::sync::Arc::new(kept);
}

/// A dataframe's row names: its index, or its column `key`.
pub(crate) fn off_names(store: &dyn Store, frame: &str, key: Option<&str>) -> adcat_format::Result<Vec<String>> {
    match key {
        Some(k) => adcat_format::frame::read_key(store, frame, k),
        None => read_index(store, frame),
    }
}

/// The off-axis names of a part: its dataframe path, each input's names, the merged ones.
pub(crate) type PartNames = (String, Vec<std::sync::Arc<Vec<String>>>, std::sync::Arc<Vec<String>>);

pub(crate) fn part_names(ins: &[Input<'_>], merged: std::sync::Arc<Vec<String>>) -> PartNames {
    let frame = ins.first().map(|i| i.off_df.clone()).unwrap_or_default();
    (frame, ins.iter().map(|i| i.off.clone()).collect(), merged)
}
