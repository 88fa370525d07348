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

mod buckets;
mod dense;
mod perm;
mod sparse;

pub use perm::Permutation;

use crate::{Axis, ConcatError, ConcatOptions, Report, Result};
use adcat_format::copy::copy_element_to;
use adcat_format::layout::WriteOptions;
use adcat_format::{detect, Encoding, Progress};
use adcat_store::{join_path, Store};
use std::path::Path;

/// What a shuffle pass works with.
pub(crate) struct Ctx<'a> {
    src: &'a dyn Store,
    dst: &'a dyn Store,
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

    /// Output rows per bucket: a whole number of write units (`unit` rows) holding about
    /// 1/8 of the budget (a gathered bucket is held twice: records and block).
    fn bucket_rows(&self, row_bytes: u64, unit: u64) -> u64 {
        let unit = unit.max(1);
        let units = (self.budget() / 8 / (unit * row_bytes.max(1))).max(1);
        units * unit
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
/// `opts.shuffle_seed`'s permutation.
pub fn concat_shuffled(inputs: &[&dyn Store], stores: ShuffleStores<'_>, opts: &ConcatOptions, progress: &dyn Progress) -> Result<Report> {
    let seed = opts.shuffle_seed.ok_or_else(|| ConcatError::Options("concat_shuffled needs a seed (shuffle_seed)".into()))?;
    check_options(opts)?;
    // The scratch copy is read back once, right away: compressing it would only cost time.
    // Loader chunking (--obs-chunk) is for the output; the scratch keeps large chunks.
    let swrite = WriteOptions { compression: Some(adcat_store::Compression::None), obs_chunk: None, ..opts.write.clone() };
    let sopts = ConcatOptions { write: swrite, ..opts.clone() };
    let report = crate::concat_unshuffled(inputs, stores.scratch, &sopts, progress)?;
    let tagged = adcat_store::tagged::OutputStore(stores.out);
    shuffle_store(stores.scratch, &tagged, seed, stores.scratch_dir, &opts.write, progress).map_err(crate::attribute_output)?;
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
/// of the permutation of `seed`: cell `i` of `src` becomes cell `perm.apply(i)`.
pub fn shuffle_store(src: &dyn Store, dst: &dyn Store, seed: u64, scratch: Option<&Path>, opts: &WriteOptions, progress: &dyn Progress) -> Result<()> {
    let n = n_obs(src)?;
    let perm = Permutation::new(n, seed);
    progress.total_bytes(adcat_format::copy::data_bytes(src, "")?);
    let ctx = Ctx { src, dst, perm: &perm, opts, scratch, progress };
    copy_attrs(&ctx, "")?;
    for child in src.list("")? {
        progress.element(&child);
        match child.as_str() {
            "obs" => frame(&ctx, "obs")?,
            "X" => element(&ctx, "X", false)?,
            "layers" | "obsm" | "obsp" => mapping(&ctx, &child, child == "obsp")?,
            "raw" => raw(&ctx)?,
            _ => copy_element_to(src, &child, dst, &child, opts)?,
        }
    }
    dst.flush()?;
    Ok(())
}

/// Cells in `src`: the length of the obs index (its values are not read).
fn n_obs(src: &dyn Store) -> Result<u64> {
    let attrs = src.attrs("obs")?;
    let name = attrs.get("_index").and_then(adcat_store::AttrValue::as_str).unwrap_or("_index");
    let mut p = join_path("obs", name);
    if src.node_kind(&p)? == Some(adcat_store::NodeKind::Group) {
        p = join_path(&p, "values");
    }
    Ok(src.array_meta(&p)?.shape.first().copied().unwrap_or(0))
}

fn copy_attrs(ctx: &Ctx<'_>, p: &str) -> Result<()> {
    let attrs = ctx.src.attrs(p)?;
    if !attrs.is_empty() {
        ctx.dst.set_attrs(p, &attrs)?;
    }
    Ok(())
}

fn group(ctx: &Ctx<'_>, p: &str) -> Result<()> {
    ctx.dst.create_group(p)?;
    copy_attrs(ctx, p)
}

/// `layers`, `obsm`, `obsp`: every element is cell-aligned (both axes for `obsp`).
fn mapping(ctx: &Ctx<'_>, p: &str, square: bool) -> Result<()> {
    group(ctx, p)?;
    for key in ctx.src.list(p)? {
        element(ctx, &join_path(p, &key), square)?;
    }
    Ok(())
}

/// raw: X is cell-aligned, var and varm are not.
fn raw(ctx: &Ctx<'_>) -> Result<()> {
    group(ctx, "raw")?;
    for c in ctx.src.list("raw")? {
        let p = join_path("raw", &c);
        if c == "X" {
            element(ctx, &p, false)?;
        } else {
            copy_element_to(ctx.src, &p, ctx.dst, &p, ctx.opts)?;
        }
    }
    Ok(())
}

/// One cell-aligned element: rows (and, when `square`, columns) shuffled.
fn element(ctx: &Ctx<'_>, p: &str, square: bool) -> Result<()> {
    match detect(ctx.src, p)?.encoding {
        Encoding::Csr | Encoding::Csc => {
            group(ctx, p)?;
            sparse::shuffle_sparse(ctx, p, p, square)
        }
        Encoding::Array | Encoding::StringArray => array(ctx, p, square),
        Encoding::DataFrame if !square => frame(ctx, p),
        other => Err(ConcatError::unsupported(p, format!("--shuffle cannot reorder a {other} element yet; drop it from the inputs or concatenate without --shuffle"))),
    }
}

fn array(ctx: &Ctx<'_>, p: &str, square: bool) -> Result<()> {
    dense::shuffle_array(ctx, p, p, square)?;
    copy_attrs(ctx, p)
}

/// A cell-aligned dataframe (obs, obsm dataframes): every column and the index.
fn frame(ctx: &Ctx<'_>, p: &str) -> Result<()> {
    group(ctx, p)?;
    for c in ctx.src.list(p)? {
        let cp = join_path(p, &c);
        match detect(ctx.src, &cp)?.encoding {
            Encoding::Array | Encoding::StringArray => array(ctx, &cp, false)?,
            Encoding::Categorical => {
                group(ctx, &cp)?;
                array(ctx, &join_path(&cp, "codes"), false)?;
                let cats = join_path(&cp, "categories");
                copy_element_to(ctx.src, &cats, ctx.dst, &cats, ctx.opts)?;
            }
            Encoding::NullableInteger | Encoding::NullableBoolean | Encoding::NullableString => {
                group(ctx, &cp)?;
                for part in ctx.src.list(&cp)? {
                    array(ctx, &join_path(&cp, &part), false)?;
                }
            }
            other => return Err(ConcatError::unsupported(&cp, format!("--shuffle cannot reorder a {other} column yet"))),
        }
    }
    Ok(())
}
