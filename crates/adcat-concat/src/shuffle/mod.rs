//! `--shuffle`: the cells of a concatenation in one seeded pseudo-random order, for
//! training loaders that read contiguous minibatches.
//!
//! The concatenation is first written in input order to a scratch store (every join,
//! merge, reindexing and selection is the engine's own); [`shuffle_store`] then copies
//! that store to the output, moving every cell-aligned row (obs and its columns, X,
//! layers, obsm, raw/X; obsp on both axes) to its position under a [`Permutation`].
//! Rows travel through scratch files, one per output block ([`buckets`]): memory holds
//! one read block, the write buffers and one output block, whatever the element's size.
//! Everything else (var, varm, varp, uns, raw/var) is copied as it is.
//!
//! With [`Layout::Annbatch`] the shuffled cells are cut into consecutive AnnData groups
//! `dataset_0`, `dataset_1`, ... under a root marked `annbatch-preshuffled`, the
//! collection layout scverse's annbatch loader reads; each dataset holds every element
//! of its own cells (obsp: the entries between them).

mod buckets;
mod dense;
mod perm;
mod sparse;
mod split;

pub use perm::Permutation;

use crate::{Axis, ConcatError, ConcatOptions, Report, Result};
use adcat_format::copy::copy_element_to;
use adcat_format::layout::WriteOptions;
use adcat_format::{detect, Encoding, Progress};
use adcat_store::{join_path, AttrValue, Attrs, Store, Sub};
use split::Split;
use std::path::Path;

/// How a shuffled output is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// One AnnData store.
    #[default]
    AnnData,
    /// annbatch's collection: AnnData groups `dataset_N` of about `dataset_bytes`
    /// uncompressed (X, layers, obsm and obs) each, under a root whose encoding is
    /// `annbatch-preshuffled` 0.1.0.
    Annbatch {
        /// Target uncompressed bytes of one dataset.
        dataset_bytes: u64,
    },
}

/// The encoding attributes annbatch 0.3 gives a collection's root.
pub fn annbatch_root_attrs() -> Attrs {
    let mut a = Attrs::new();
    a.insert("encoding-type".into(), AttrValue::String("annbatch-preshuffled".into()));
    a.insert("encoding-version".into(), AttrValue::String("0.1.0".into()));
    a
}

/// The name of dataset `k` of an annbatch collection.
pub fn dataset_name(k: usize) -> String {
    format!("dataset_{k}")
}

/// What a shuffle pass works with.
pub(crate) struct Ctx<'a> {
    src: &'a dyn Store,
    /// One store per dataset (the output itself, or its `dataset_N` groups).
    outs: Vec<Box<dyn Store + 'a>>,
    split: Split,
    perm: &'a Permutation,
    opts: &'a WriteOptions,
    /// Where the scratch files go (`None`: the system's temporary directory).
    scratch: Option<&'a Path>,
    progress: &'a dyn Progress,
}

impl Ctx<'_> {
    fn budget(&self) -> u64 {
        self.opts.max_memory.max(1 << 20)
    }

    /// Bytes of a block read or gathered: 1/16 of the budget, at most 16 MiB (larger
    /// blocks only fault in more fresh pages: measured slower, not faster).
    fn block_bytes(&self) -> u64 {
        (self.budget() / 16).min(16 << 20)
    }

    /// The store dataset `k` is written to.
    fn out(&self, k: usize) -> &dyn Store {
        self.outs[k].as_ref()
    }

    /// Output rows per bucket: a whole number of write units (`unit` rows) holding about
    /// [`Ctx::block_bytes`] (a gathered bucket is held about three times: records,
    /// indices, block).
    fn bucket_rows(&self, row_bytes: u64, unit: u64) -> u64 {
        let unit = unit.max(1);
        let units = (self.block_bytes() / (unit * row_bytes.max(1))).max(1);
        units * unit
    }

    /// Create the group `p` in every dataset, with `src`'s attributes.
    fn group(&self, p: &str) -> Result<()> {
        let attrs = self.src.attrs(p)?;
        for out in &self.outs {
            out.create_group(p)?;
            if !attrs.is_empty() {
                out.set_attrs(p, &attrs)?;
            }
        }
        Ok(())
    }

    /// Copy `src`'s attributes of `p` to every dataset.
    fn attrs(&self, p: &str) -> Result<()> {
        let attrs = self.src.attrs(p)?;
        if !attrs.is_empty() {
            for out in &self.outs {
                out.set_attrs(p, &attrs)?;
            }
        }
        Ok(())
    }

    /// Copy the element at `p`, which has no cell axis, to every dataset.
    fn copy(&self, p: &str) -> Result<()> {
        for out in &self.outs {
            copy_element_to(self.src, p, out.as_ref(), p, self.opts)?;
        }
        Ok(())
    }
}

/// Where the stores of a shuffled concatenation are.
#[derive(Debug, Clone, Copy)]
pub struct ShuffleStores<'a> {
    /// An empty store for the concatenation in input order (read back once; best
    /// uncompressed, on a local disk).
    pub scratch: &'a dyn Store,
    /// The empty output store.
    pub out: &'a dyn Store,
    /// A directory for the scratch files of the shuffle (`None`: the system's temporary
    /// directory); they take about the size of the largest element, uncompressed.
    pub scratch_dir: Option<&'a Path>,
}

/// Concatenate `inputs` as [`crate::concat`] does, with the cells in the order of
/// `opts.shuffle_seed`'s permutation and laid out as `opts.layout` says.
pub fn concat_shuffled(inputs: &[&dyn Store], stores: ShuffleStores<'_>, opts: &ConcatOptions, progress: &dyn Progress) -> Result<Report> {
    let seed = opts.shuffle_seed.ok_or_else(|| ConcatError::Options("concat_shuffled needs a seed (shuffle_seed)".into()))?;
    check_options(opts)?;
    // The scratch copy is read back once, right away: compressing it would only cost
    // time; loader chunking (--obs-chunk) is for the output, the scratch keeps large chunks.
    let swrite = WriteOptions { compression: Some(adcat_store::Compression::None), obs_chunk: None, ..opts.write.clone() };
    let sopts = ConcatOptions { write: swrite, ..opts.clone() };
    let report = crate::concat_unshuffled(inputs, stores.scratch, &sopts, progress)?;
    let tagged = adcat_store::tagged::OutputStore(stores.out);
    shuffle_store(stores.scratch, &tagged, seed, opts.layout, stores.scratch_dir, &opts.write, progress).map_err(crate::attribute_output)?;
    Ok(report)
}

/// Options a shuffled concatenation cannot honour.
pub fn check_options(opts: &ConcatOptions) -> Result<()> {
    if opts.axis != Axis::Obs {
        return Err(ConcatError::Options("--shuffle orders the cells of a concatenation along obs; along var the cells are each input's own".into()));
    }
    Ok(())
}

/// Copy the AnnData store `src` into the empty store `dst` with its cells in the order
/// of the permutation of `seed` (cell `i` of `src` becomes cell `perm.apply(i)`), laid
/// out as `layout` says.
pub fn shuffle_store(src: &dyn Store, dst: &dyn Store, seed: u64, layout: Layout, scratch: Option<&Path>, opts: &WriteOptions, progress: &dyn Progress) -> Result<()> {
    let n = n_obs(src)?;
    let perm = Permutation::new(n, seed);
    let (split, outs): (Split, Vec<Box<dyn Store + '_>>) = match layout {
        Layout::AnnData => (Split::whole(n), vec![Box::new(Sub::new(dst, ""))]),
        Layout::Annbatch { dataset_bytes } => {
            let split = Split { per: dataset_rows(src, n, dataset_bytes)?, n };
            let mut root = src.attrs("")?;
            root.retain(|k, _| !k.starts_with("encoding-"));
            root.extend(annbatch_root_attrs());
            dst.set_attrs("", &root)?;
            let outs = (0..split.count())
                .map(|k| {
                    dst.create_group(&dataset_name(k))?;
                    Ok(Box::new(Sub::new(dst, &dataset_name(k))) as Box<dyn Store>)
                })
                .collect::<Result<Vec<_>>>()?;
            (split, outs)
        }
    };
    progress.total_bytes(adcat_format::copy::data_bytes(src, "")?);
    let ctx = Ctx { src, outs, split, perm: &perm, opts, scratch, progress };
    root_attrs(&ctx, layout)?;
    for child in src.list("")? {
        progress.element(&child);
        match child.as_str() {
            "obs" => frame(&ctx, "obs")?,
            "X" => element(&ctx, "X", false)?,
            "layers" | "obsm" | "obsp" => mapping(&ctx, &child, child == "obsp")?,
            "raw" => raw(&ctx)?,
            _ => ctx.copy(&child)?,
        }
    }
    dst.flush()?;
    Ok(())
}

/// Each dataset's root: the AnnData encoding (the provenance record stays on the
/// collection's root).
fn root_attrs(ctx: &Ctx<'_>, layout: Layout) -> Result<()> {
    match layout {
        Layout::AnnData => ctx.attrs(""),
        Layout::Annbatch { .. } => {
            let mut a = ctx.src.attrs("")?;
            a.retain(|k, _| k.starts_with("encoding-"));
            for out in &ctx.outs {
                out.set_attrs("", &a)?;
            }
            Ok(())
        }
    }
}

/// Cells per dataset: `bytes` over the uncompressed bytes per cell of X, layers, obsm
/// and obs (as annbatch sizes its datasets).
fn dataset_rows(src: &dyn Store, n: u64, bytes: u64) -> Result<u64> {
    let mut total = 0;
    for p in ["X", "layers", "obsm", "obs"] {
        if src.exists(p)? {
            total += adcat_format::copy::data_bytes(src, p)?;
        }
    }
    let per_cell = (total / n.max(1)).max(1);
    Ok((bytes / per_cell).max(1))
}

/// Cells in `src`: the length of the obs index (its values are not read).
fn n_obs(src: &dyn Store) -> Result<u64> {
    let attrs = src.attrs("obs")?;
    let name = attrs.get("_index").and_then(AttrValue::as_str).unwrap_or("_index");
    let mut p = join_path("obs", name);
    if src.node_kind(&p)? == Some(adcat_store::NodeKind::Group) {
        p = join_path(&p, "values");
    }
    Ok(src.array_meta(&p)?.shape.first().copied().unwrap_or(0))
}

/// `layers`, `obsm`, `obsp`: every element is cell-aligned (both axes for `obsp`).
fn mapping(ctx: &Ctx<'_>, p: &str, square: bool) -> Result<()> {
    ctx.group(p)?;
    for key in ctx.src.list(p)? {
        element(ctx, &join_path(p, &key), square)?;
    }
    Ok(())
}

/// raw: X is cell-aligned, var and varm are not.
fn raw(ctx: &Ctx<'_>) -> Result<()> {
    ctx.group("raw")?;
    for c in ctx.src.list("raw")? {
        let p = join_path("raw", &c);
        if c == "X" {
            element(ctx, &p, false)?;
        } else {
            ctx.copy(&p)?;
        }
    }
    Ok(())
}

/// One cell-aligned element: rows (and, when `square`, columns) shuffled.
fn element(ctx: &Ctx<'_>, p: &str, square: bool) -> Result<()> {
    match detect(ctx.src, p)?.encoding {
        Encoding::Csr | Encoding::Csc => {
            ctx.group(p)?;
            sparse::shuffle_sparse(ctx, p, square)
        }
        Encoding::Array | Encoding::StringArray => array(ctx, p, square),
        Encoding::DataFrame if !square => frame(ctx, p),
        other => Err(ConcatError::unsupported(p, format!("--shuffle cannot reorder a {other} element yet; drop it from the inputs or concatenate without --shuffle"))),
    }
}

fn array(ctx: &Ctx<'_>, p: &str, square: bool) -> Result<()> {
    dense::shuffle_array(ctx, p, square)?;
    ctx.attrs(p)
}

/// A cell-aligned dataframe (obs, obsm dataframes): every column and the index.
fn frame(ctx: &Ctx<'_>, p: &str) -> Result<()> {
    ctx.group(p)?;
    for c in ctx.src.list(p)? {
        let cp = join_path(p, &c);
        match detect(ctx.src, &cp)?.encoding {
            Encoding::Array | Encoding::StringArray => array(ctx, &cp, false)?,
            Encoding::Categorical => {
                ctx.group(&cp)?;
                array(ctx, &join_path(&cp, "codes"), false)?;
                ctx.copy(&join_path(&cp, "categories"))?;
            }
            Encoding::NullableInteger | Encoding::NullableBoolean | Encoding::NullableString => {
                ctx.group(&cp)?;
                for part in ctx.src.list(&cp)? {
                    array(ctx, &join_path(&cp, &part), false)?;
                }
            }
            other => return Err(ConcatError::unsupported(&cp, format!("--shuffle cannot reorder a {other} column yet"))),
        }
    }
    Ok(())
}
