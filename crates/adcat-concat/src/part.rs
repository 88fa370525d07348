//! One part of the output (the AnnData itself, or its `raw`), element kind by element
//! kind: the concatenation-axis dataframe, the off-axis dataframe, X and layers, the
//! concatenation-axis mapping (obsm), the off-axis mappings (varm, varp), pairwise
//! mappings (obsp) and uns. [`PartCtx`] holds what they share: the inputs, the merged
//! off-axis index and each input's reindexer.

use crate::frames::{self, concat_frames, FrameSource};
use crate::index::{duplicates, merge_indices, Reindexer};
use crate::matrix::MatSource;
use crate::job::{AwkwardElement, AwkwardSource, Columns, Element, UnsElement};
use crate::stack::{concat_matrix, Stack};
use crate::index::join_keys;
use crate::inputs::{Input, Layout};
use crate::options::{Axis, ConcatOptions, OffMatch, Report};
use crate::{awkward, offaxis, At, ConcatError, Join, Result};
use adcat_format::frame::{write_dict, DataFrame};
use adcat_format::{detect, Encoding, FormatError};
use adcat_store::{join_path, NodeKind, Store};

/// What every element of one part shares.
pub(crate) struct PartCtx<'a> {
    pub ins: &'a [Input<'a>],
    pub lay: &'a Layout,
    pub keys: &'a [String],
    pub opts: &'a ConcatOptions,
    pub out: &'a dyn Store,
    /// Concatenation-axis names of each input (streamed, suffixed by key).
    pub index: Vec<frames::IndexPart<'a>>,
    /// The merged off-axis names.
    pub new_off: Vec<String>,
    /// Each input's off-axis names onto `new_off`.
    pub reindexers: Vec<Reindexer>,
}

pub(crate) fn list_or_empty(store: &dyn Store, path: &str) -> Result<Vec<String>> {
    if store.node_kind(path).at(store)? == Some(NodeKind::Group) { store.list(path).at(store) } else { Ok(vec![]) }
}

/// Off-axis names, shared.
pub(crate) type Names = std::sync::Arc<Vec<String>>;

/// Concatenate one part; returns its shape (obs, var) and its merged off-axis names.
pub(crate) fn concat_part(
    ins: &[Input<'_>],
    lay: &Layout,
    keys: &[String],
    opts: &ConcatOptions,
    out: &dyn Store,
    report: &mut Report,
) -> Result<((u64, u64), Names)> {
    let p = PartCtx::new(ins, lay, keys, opts, out, report)?;
    if !lay.raw || opts.axis == Axis::Var {
        p.axis_frame(report)?;
    }
    p.off_frame()?;
    p.matrices(report)?;
    let (ax, off) = opts.axis.names();
    if lay.raw {
        if off == "var" {
            write_dict(out, &lay.p("varm")).map_err(ConcatError::Output)?;
        }
    } else {
        p.axis_mapping(&format!("{ax}m"), report)?;
        p.pairwise(&format!("{ax}p"), report)?;
        p.off_mappings(report)?;
        p.uns(report)?;
    }
    let n_total: u64 = ins.iter().map(|i| i.n_ax).sum();
    let n_off = p.new_off.len() as u64;
    let shape = if opts.axis == Axis::Obs { (n_total, n_off) } else { (n_off, n_total) };
    Ok((shape, std::sync::Arc::new(p.new_off)))
}

impl<'a> PartCtx<'a> {
    fn new(ins: &'a [Input<'a>], lay: &'a Layout, keys: &'a [String], opts: &'a ConcatOptions, out: &'a dyn Store, report: &mut Report) -> Result<Self> {
        let index = ins
            .iter()
            .enumerate()
            .map(|(i, inp)| frames::IndexPart {
                store: inp.store,
                path: inp.ax_index.clone(),
                n: inp.n_ax,
                suffix: opts.index_unique.as_ref().map(|sep| format!("{sep}{}", keys[i])).unwrap_or_default(),
            })
            .collect();
        let off_idx: Vec<&[String]> = ins.iter().map(|i| i.off.as_slice()).collect();
        let join_idx: Vec<&[String]> = ins.iter().map(|i| i.off_join.as_slice()).collect();
        let new_off = match (&opts.off_names, &opts.raw_off_names) {
            (Some(names), _) if !lay.raw => names.to_vec(),
            (_, Some(names)) if lay.raw => names.to_vec(),
            _ => merge_indices(&join_idx, opts.join),
        };
        let reindexers = reindexers(ins, lay, opts, &off_idx, &new_off)?;
        note_off_join(ins, lay, opts, &join_idx, &new_off, &reindexers, report);
        Ok(PartCtx { ins, lay, keys, opts, out, index, new_off, reindexers })
    }

    fn block_rows(&self, row_bytes: u64) -> u64 {
        ((self.opts.write.max_memory / 16) / row_bytes.max(1)).max(1)
    }

    /// Where planning creates a dataframe along the axis, and its tasks' sizes.
    fn frame_target<'p>(&'p self, path: &'p str) -> frames::FrameTarget<'p> {
        frames::FrameTarget { out: self.out, path, opts: &self.opts.write, block_rows: self.block_rows(64), task_bytes: self.opts.task_bytes() }
    }

    /// 1. The concatenation-axis dataframe (only its index for raw).
    fn axis_frame(&self, report: &mut Report) -> Result<()> {
        let (ax, _) = self.opts.axis.names();
        let lay = self.lay;
        let raw_obs = lay.raw && ax == "obs";
        let frames: Vec<FrameSource<'_>> = self
            .ins
            .iter()
            .map(|i| {
                let path = if raw_obs { "obs".to_owned() } else { lay.p(ax) };
                FrameSource::open(i.store, &path, i.n_ax).at(i.store)
            })
            .collect::<Result<_>>()?;
        let frames = if raw_obs { frames.into_iter().map(|f| FrameSource { columns: vec![], ..f }).collect() } else { frames };
        let label = self.opts.label.as_deref().map(|l| (l, self.keys));
        let (dropped, elements) = concat_frames(&frames, self.opts.join, &self.index, label, &self.frame_target(&lay.p(ax)))?;
        elements.into_iter().for_each(|e| report.job.push(e));
        for c in dropped {
            report.note(&join_path(&lay.p(ax), &c), "dropped: not in every input (inner join)");
        }
        if let Some(l) = &self.opts.label {
            report.note(&join_path(&lay.p(ax), l), format!("label: categorical of the input keys {:?}", self.keys));
        }
        Ok(())
    }

    /// 2. The off-axis dataframe: reindexed and merged in memory (raw's obs is not stored).
    fn off_frame(&self) -> Result<()> {
        let (_, off) = self.opts.axis.names();
        let lay = self.lay;
        if lay.raw && off == "obs" {
            return Ok(());
        }
        let keys: Vec<String> = self
            .ins
            .iter()
            .map(|i| Ok(i.store.attr(&lay.p(off), "_index").at(i.store)?.and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "_index".into())))
            .collect::<Result<_>>()?;
        // Rows matched by a column get an unnamed index (its values are that column's).
        let key = if self.opts.off_key.is_some() && !lay.raw { "_index".to_owned() } else { frames::common_name(keys.into_iter()) };
        let merged = if self.opts.merge.is_none() {
            // Without a strategy only the index survives: no need to read the columns.
            frames::merge_frames(&[], &[], &self.new_off, &key, None)
        } else {
            let frames: Vec<DataFrame> = self.ins.iter().map(|i| DataFrame::read(i.store, &lay.p(off)).at(i.store)).collect::<Result<_>>()?;
            frames::merge_frames(&frames, &self.reindexers, &self.new_off, &key, self.opts.merge)
        };
        merged.write(self.out, &lay.p(off), &self.opts.write).map_err(ConcatError::Output)
    }

    /// X and the layers to concatenate, each with its path in every input (None: absent).
    fn matrix_elements(&self, report: &mut Report) -> Result<Vec<(String, Vec<Option<String>>)>> {
        let lay = self.lay;
        let mut mats = vec![];
        let x_paths: Vec<Option<String>> = self.ins.iter().map(|i| Ok(i.store.exists(&lay.p("X")).at(i.store)?.then(|| lay.p("X")))).collect::<Result<_>>()?;
        let any_x = x_paths.iter().any(Option::is_some);
        if x_paths.iter().all(Option::is_some) || (any_x && self.opts.join == Join::Outer) {
            mats.push((lay.p("X"), x_paths));
        } else if any_x {
            report.note(&lay.p("X"), "dropped: not in every input (inner join)");
        }
        if !lay.raw {
            let layer_keys: Vec<Vec<String>> = self.ins.iter().map(|i| list_or_empty(i.store, "layers")).collect::<Result<_>>()?;
            let kept = join_keys(&layer_keys, self.opts.join);
            for k in join_keys(&layer_keys, Join::Outer).iter().filter(|k| !kept.contains(k)) {
                report.note(&join_path("layers", k), "dropped: not in every input (inner join)");
            }
            for k in kept {
                let p = join_path("layers", &k);
                let per = layer_keys.iter().map(|ks| ks.contains(&k).then(|| p.clone())).collect();
                mats.push((p, per));
            }
            write_dict(self.out, "layers").map_err(ConcatError::Output)?;
        }
        Ok(mats)
    }

    /// 3. X and layers (X is layers[None] in anndata 0.13).
    fn matrices(&self, report: &mut Report) -> Result<()> {
        let (ax, off) = self.opts.axis.names();
        for (out_path, per) in &self.matrix_elements(report)? {
            if self.awkward_layer(per, out_path, report)? {
                continue;
            }
            let srcs: Vec<Option<MatSource<'_>>> = self
                .ins
                .iter()
                .zip(per)
                .map(|(i, p)| p.as_ref().map(|p| MatSource::open(i.store, p, self.opts.axis == Axis::Var).at(i.store)).transpose())
                .collect::<Result<_>>()?;
            for (i, s) in self.ins.iter().zip(&srcs).filter_map(|(i, s)| s.as_ref().map(|s| (i, s))) {
                if s.n_rows() != i.n_ax || s.n_cols() != (i.off.len() as u64) {
                    let why = format!("shape {:?} disagrees with {ax} ({}) x {off} ({})", s.shape, i.n_ax, i.off.len());
                    return Err(ConcatError::Input { file: i.store.location().into(), source: FormatError::invalid(out_path, why) });
                }
            }
            let rows: Vec<u64> = self.ins.iter().map(|i| i.n_ax).collect();
            let st = Stack { srcs: &srcs, rows: &rows, reindexers: Some(&self.reindexers), n_cols: self.new_off.len() as u64 };
            let frame = self.ins.first().map(|i| i.off_df.clone()).unwrap_or_default();
            let input_key = self.opts.off_key.clone().filter(|_| !self.lay.raw);
            let columns = Columns::Name { input_frame: frame.clone(), output_frame: frame, input_key };
            concat_matrix(&st, columns, self.out, out_path, self.opts, report)?;
        }
        Ok(())
    }

    /// An awkward layer (anndata requires it regular along var): concatenated along obs
    /// when every input has the same vars; a missing layer becomes rows of NaN, as in
    /// anndata. Returns whether the layer was awkward.
    fn awkward_layer(&self, per: &[Option<String>], out_path: &str, report: &mut Report) -> Result<bool> {
        let mut encs = vec![];
        for (i, p) in self.ins.iter().zip(per) {
            encs.push(match p {
                Some(p) => Some(detect(i.store, p).at(i.store)?.encoding),
                None => None,
            });
        }
        if !encs.iter().flatten().any(|e| *e == Encoding::Awkward) {
            return Ok(false);
        }
        if !encs.iter().flatten().all(|e| *e == Encoding::Awkward) {
            return Err(ConcatError::unsupported(out_path, "cannot concatenate an awkward array with other array types (anndata refuses too)"));
        }
        if self.opts.axis == Axis::Var || self.reindexers.iter().any(|r| !r.identity) {
            let why = "awkward layers concatenate only along obs and when every input has the same var names (anndata cannot reindex them either)";
            return Err(ConcatError::unsupported(out_path, why));
        }
        let width = self.new_off.len() as u64;
        let sources = self.awkward_sources(per);
        report.note(out_path, "awkward array: concatenated along obs");
        self.push_awkward(out_path, sources, Some(width), report)?;
        Ok(true)
    }

    /// Step 4, the concatenation-axis mapping (obsm; varm for axis=var): arrays get the
    /// min (inner) or max (outer) width, dataframes a column join, awkward arrays their
    /// type unification; keys are intersected (inner) or united (outer).
    fn axis_mapping(&self, am: &str, report: &mut Report) -> Result<()> {
        write_dict(self.out, am).map_err(ConcatError::Output)?;
        let key_sets: Vec<Vec<String>> = self.ins.iter().map(|i| list_or_empty(i.store, am)).collect::<Result<_>>()?;
        let kept = join_keys(&key_sets, self.opts.join);
        for k in join_keys(&key_sets, Join::Outer).iter().filter(|k| !kept.contains(k)) {
            report.note(&join_path(am, k), "dropped: not in every input (inner join)");
        }
        for k in kept {
            let p = join_path(am, &k);
            let mut encs = vec![];
            for (i, ks) in self.ins.iter().zip(&key_sets) {
                encs.push(if ks.contains(&k) { Some(detect(i.store, &p).at(i.store)?.encoding) } else { None });
            }
            let present: Vec<Encoding> = encs.iter().flatten().copied().collect();
            if present.iter().all(|e| *e == Encoding::DataFrame) {
                self.axis_mapping_frames(&p, &encs, report)?;
            } else if present.contains(&Encoding::Awkward) {
                self.axis_mapping_awkward(&p, &encs, report)?;
            } else {
                self.axis_mapping_matrix(&p, &encs, report)?;
            }
        }
        Ok(())
    }

    fn axis_mapping_frames(&self, p: &str, encs: &[Option<Encoding>], report: &mut Report) -> Result<()> {
        let frames: Vec<FrameSource<'_>> = self
            .ins
            .iter()
            .zip(encs)
            .map(|(i, e)| match e {
                Some(_) => FrameSource::open(i.store, p, i.n_ax).at(i.store),
                None => Ok(FrameSource { store: i.store, path: p.to_owned(), n: i.n_ax, columns: vec![] }),
            })
            .collect::<Result<_>>()?;
        let o = self.opts;
        let (dropped, elements) = concat_frames(&frames, o.join, &self.index, None, &self.frame_target(p))?;
        elements.into_iter().for_each(|e| report.job.push(e));
        for c in dropped {
            report.note(&join_path(p, &c), "dropped: not in every input (inner join)");
        }
        Ok(())
    }

    fn axis_mapping_awkward(&self, p: &str, encs: &[Option<Encoding>], report: &mut Report) -> Result<()> {
        if !encs.iter().flatten().all(|e| *e == Encoding::Awkward) {
            return Err(ConcatError::unsupported(p, "cannot concatenate an awkward array with other array types (anndata refuses too)"));
        }
        let per: Vec<Option<String>> = encs.iter().map(|e| e.map(|_| p.to_owned())).collect();
        let sources = self.awkward_sources(&per);
        report.note(p, "awkward array: concatenated along its outer dimension");
        self.push_awkward(p, sources, None, report)
    }

    /// Where each input's rows of an awkward element come from.
    fn awkward_sources(&self, per: &[Option<String>]) -> Vec<AwkwardSource> {
        self.ins.iter().zip(per).enumerate().map(|(input, (i, p))| AwkwardSource { input, path: p.clone(), rows: i.n_ax }).collect()
    }

    /// Check the inputs' forms now (errors belong to planning), then leave the writing
    /// to the element's task.
    fn push_awkward(&self, path: &str, sources: Vec<AwkwardSource>, fill_width: Option<u64>, report: &mut Report) -> Result<()> {
        let o = self.opts;
        let el = AwkwardElement { path: path.to_owned(), sources, fill_width, join: o.join, write: o.write.clone(), block: awkward_block(o) };
        awkward::check(&el.inputs(|i| Ok(self.ins[i].store))?)?;
        report.job.push(Element::Awkward(el));
        Ok(())
    }

    fn axis_mapping_matrix(&self, p: &str, encs: &[Option<Encoding>], report: &mut Report) -> Result<()> {
        let present: Vec<Encoding> = encs.iter().flatten().copied().collect();
        if present.iter().any(|e| !matches!(e, Encoding::Array | Encoding::Csr | Encoding::Csc)) {
            let names: Vec<String> = present.iter().map(|e| e.to_string()).collect();
            return Err(ConcatError::unsupported(p, format!("cannot concatenate elements of encodings {}", names.join(", "))));
        }
        let srcs: Vec<Option<MatSource<'_>>> = self.ins.iter().zip(encs).map(|(i, e)| e.map(|_| MatSource::open(i.store, p, false).at(i.store)).transpose()).collect::<Result<_>>()?;
        let widths: Vec<u64> = srcs.iter().flatten().map(MatSource::n_cols).collect();
        let width = match self.opts.join {
            Join::Inner => widths.iter().copied().min().unwrap_or(0),
            Join::Outer => widths.iter().copied().max().unwrap_or(0),
        };
        // Columns are positions: inner keeps the first `width`, outer pads to `width`.
        let reindexers: Vec<Reindexer> = srcs
            .iter()
            .map(|s| {
                let w = s.as_ref().map_or(width, MatSource::n_cols);
                let new_pos = (0..w as i64).map(|j| if (j as u64) < width { j } else { -1 }).collect();
                let old_pos = (0..width as i64).map(|j| if (j as u64) < w { j } else { -1 }).collect();
                Reindexer::from_maps(new_pos, old_pos)
            })
            .collect();
        let rows: Vec<u64> = self.ins.iter().map(|i| i.n_ax).collect();
        let opts = ConcatOptions { axis: Axis::Obs, ..self.opts.clone() };
        let st = Stack { srcs: &srcs, rows: &rows, reindexers: Some(&reindexers), n_cols: width };
        concat_matrix(&st, Columns::Position, self.out, p, &opts, report)
    }

    /// 5. Pairwise mapping (obsp): block-diagonal with `--pairwise`, else empty.
    fn pairwise(&self, ap: &str, report: &mut Report) -> Result<()> {
        write_dict(self.out, ap).map_err(ConcatError::Output)?;
        if self.opts.pairwise && self.opts.dry_run {
            report.note(ap, "pairwise: each key block-diagonal over the inputs (keys in every input)");
        } else if self.opts.pairwise {
            offaxis::pairwise(self.ins.iter().map(|i| (i.store, i.n_ax)).collect(), ap, self.opts, self.out)?;
        } else {
            report.note(ap, "not concatenated (pass --pairwise)");
        }
        Ok(())
    }

    /// 6. Off-axis mappings (varm, varp): reindexed and merged with `--merge`.
    fn off_mappings(&self, report: &mut Report) -> Result<()> {
        let (_, off) = self.opts.axis.names();
        let stores = || self.ins.iter().map(|i| i.store).collect();
        offaxis::merge_mapping(stores(), &format!("{off}m"), &self.reindexers, &self.new_off, false, self.opts, self.out)?;
        offaxis::merge_mapping(stores(), &format!("{off}p"), &self.reindexers, &self.new_off, true, self.opts, self.out)?;
        for m in [format!("{off}m"), format!("{off}p")] {
            let kept = list_or_empty(self.out, &m)?;
            let how = match self.opts.merge {
                None => "no --merge: off-axis mappings are not kept".to_owned(),
                Some(s) => format!("{} merge: {} key(s) kept {kept:?}", format!("{s:?}").to_lowercase(), kept.len()),
            };
            report.note(&m, how);
        }
        Ok(())
    }

    /// 7. uns: an empty group, which a task fills with the inputs' merged uns.
    fn uns(&self, report: &mut Report) -> Result<()> {
        write_dict(self.out, "uns").map_err(ConcatError::Output)?;
        let Some(s) = self.opts.uns_merge else {
            report.note("uns", "empty (no --uns-merge)");
            return Ok(());
        };
        let stores: Vec<&dyn Store> = self.ins.iter().map(|i| i.store).collect();
        let el = UnsElement::plan(&stores, self.out, s, &self.opts.write)?;
        report.note("uns", format!("{s:?} merge: {} top-level keys kept", el.keep.len()).to_lowercase());
        report.job.push(Element::Uns(el));
        Ok(())
    }
}

/// Each input's reindexer onto `new_off`; duplicate names are refused where they would
/// make the reindexing ambiguous.
fn reindexers(ins: &[Input<'_>], lay: &Layout, opts: &ConcatOptions, off_idx: &[&[String]], new_off: &[String]) -> Result<Vec<Reindexer>> {
    let (_, off) = opts.axis.names();
    let mut out = vec![];
    for (inp, idx) in ins.iter().zip(off_idx) {
        let re = Reindexer::new(idx, new_off);
        if !re.identity {
            let d = duplicates(idx);
            if !d.is_empty() {
                let names = d.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
                let join = format!("{:?}", opts.join).to_lowercase();
                let why = format!("duplicate names ({names}) make the {join} join ambiguous; make them unique first (anndata: var_names_make_unique())");
                return Err(ConcatError::Input { file: inp.store.location().into(), source: FormatError::invalid(&lay.p(off), why) });
            }
        }
        out.push(re);
    }
    Ok(out)
}

fn note_off_join(ins: &[Input<'_>], lay: &Layout, opts: &ConcatOptions, off_idx: &[&[String]], new_off: &[String], reindexers: &[Reindexer], report: &mut Report) {
    let (_, off) = opts.axis.names();
    if new_off.is_empty() && opts.join == Join::Inner && off_idx.iter().any(|v| !v.is_empty()) {
        report.warnings.push(format!("the inner join of {off} names is empty"));
    }
    let n_re = reindexers.iter().filter(|r| !r.identity).count();
    let how = if n_re == 0 { "no input needs reindexing".to_owned() } else { format!("{n_re} of {} inputs reindexed", ins.len()) };
    let what = match &opts.off_names {
        Some(_) if !lay.raw => format!("fixed list of {} names (--{off}-names); {how}", new_off.len()),
        _ => format!("{:?} join of {} inputs' {off} names: {} names; {how}", opts.join, ins.len(), new_off.len()).to_lowercase(),
    };
    report.note(&lay.p(off), what);
    for (input, r) in reindexers.iter().enumerate() {
        let (matched, filled, dropped) = r.counts();
        report.off_match.push(OffMatch { input, part: lay.prefix.to_owned(), matched, filled, dropped });
    }
}

/// Rows per block of an awkward buffer (1/256 of the budget in 8-byte values).
pub(crate) fn awkward_block(opts: &ConcatOptions) -> u64 {
    ((opts.write.max_memory / 16) / 16).max(1)
}
