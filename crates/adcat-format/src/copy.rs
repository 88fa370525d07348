//! Streaming conversion of a whole AnnData store between backends.
//!
//! The copy walks the element tree, validates each element's encoding, and re-creates it
//! on the destination with that backend's layout and codecs. Arrays move in blocks of whole
//! output shards/chunks sized from the memory budget, so no element is ever held whole.

use crate::encoding::{detect, Encoding};
use crate::layout::{Purpose, WriteOptions};
use crate::{FormatError, Result};
use adcat_store::{join_path, ArraySpec, AttrValue, Attrs, DType, NodeKind, Store, StoreKind};

/// Receives progress events from long operations. All methods default to no-ops.
pub trait Progress: Sync {
    /// Total bytes of array data the operation will move (called once, up front).
    fn total_bytes(&self, _bytes: u64) {}
    /// An element starts.
    fn element(&self, _path: &str) {}
    /// Bytes the current element will move, when known (called after `element`).
    fn element_total(&self, _bytes: u64) {}
    /// Some bytes of array data were moved.
    fn advance(&self, _bytes: u64) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}

struct Ctx<'a> {
    src: &'a dyn Store,
    dst: &'a dyn Store,
    opts: &'a WriteOptions,
    progress: &'a dyn Progress,
}

/// Convert the AnnData store `src` into the empty store `dst`, element by element.
pub fn convert(src: &dyn Store, dst: &dyn Store, opts: &WriteOptions, progress: &dyn Progress) -> Result<()> {
    // Legacy layouts are read as anndata reads them, and written in current encodings.
    let view = crate::legacy::LegacyView::new(src);
    let src: &dyn Store = &view;
    // Errors of the destination are marked, so callers name the right file.
    let tagged = adcat_store::tagged::OutputStore(dst);
    let dst: &dyn Store = &tagged;
    let root = detect(src, "")?;
    if root.encoding != Encoding::AnnData {
        return Err(FormatError::invalid("", format!("not an AnnData store (root encoding is {})", root.encoding)));
    }
    for required in ["obs", "var"] {
        if !src.exists(required)? {
            return Err(FormatError::invalid(required, "required element is missing"));
        }
    }
    // Refuse a store whose elements disagree (shapes, sparse structure, encodings)
    // before writing anything, rather than copying the damage.
    let check = crate::validate::validate(src, false);
    if let Some(first) = check.problems.first() {
        let (path, reason) = first.split_once(": ").unwrap_or(("", first.as_str()));
        let more = if check.problems.len() > 1 { format!(" (and {} more problems; run `adcat validate`)", check.problems.len() - 1) } else { String::new() };
        return Err(FormatError::invalid(path.trim_start_matches('/'), format!("{reason}{more}")));
    }
    progress.total_bytes(data_bytes(src, "")?);
    let ctx = Ctx { src, dst, opts, progress };
    copy_attrs(&ctx, "", "", root.inferred.then_some(Encoding::AnnData))?;
    for child in src.list("")? {
        copy_element(&ctx, &child, &child)?;
    }
    dst.flush()?;
    Ok(())
}

/// Copy the element at `sp` of `src`, and everything under it, to the new path `dp` of
/// `dst`, validating encodings and streaming arrays in blocks as [`convert`] does.
pub fn copy_element_to(src: &dyn Store, sp: &str, dst: &dyn Store, dp: &str, opts: &WriteOptions) -> Result<()> {
    copy_element(&Ctx { src, dst, opts, progress: &NoProgress }, sp, dp)
}

/// Total bytes of array data under `path` (for progress reporting).
pub fn data_bytes(store: &dyn Store, path: &str) -> Result<u64> {
    Ok(match store.node_kind(path)? {
        Some(NodeKind::Array) if store.is_record(path)? => 0,
        Some(NodeKind::Array) => {
            let m = store.array_meta(path)?;
            m.len() * crate::layout::element_bytes(m.dtype)
        }
        Some(NodeKind::Group) => {
            let mut t = 0;
            for c in store.list(path)? {
                t += data_bytes(store, &join_path(path, &c))?;
            }
            t
        }
        None => 0,
    })
}

/// Copy attributes, optionally replacing the encoding pair (for legacy inputs).
fn copy_attrs(ctx: &Ctx<'_>, sp: &str, dp: &str, encoding: Option<Encoding>) -> Result<()> {
    let mut attrs = ctx.src.attrs(sp)?;
    if let Some(e) = encoding {
        attrs.extend(e.attrs());
    }
    // Attributes HDF5 could not type (e.g. legacy object references) are dropped rather
    // than written as JSON nulls.
    attrs.retain(|_, v| *v != AttrValue::Null || ctx.src.kind() != StoreKind::Hdf5);
    if !attrs.is_empty() {
        ctx.dst.set_attrs(dp, &attrs)?;
    }
    Ok(())
}

fn copy_element(ctx: &Ctx<'_>, sp: &str, dp: &str) -> Result<()> {
    let det = detect(ctx.src, sp)?;
    ctx.progress.element(sp);
    match det.encoding {
        Encoding::Null => {
            write_null(ctx.dst, dp)?;
            copy_attrs(ctx, sp, dp, None)
        }
        Encoding::Csr | Encoding::Csc => copy_sparse(ctx, sp, dp, det.encoding, det.inferred),
        Encoding::RecArray => {
            // Record arrays are small (e.g. rank_genes_groups): moved whole.
            let fields = ctx.src.read_record(sp)?;
            ctx.dst.create_record(dp, &fields, &ctx.opts.compression_for(ctx.dst.kind()))?;
            copy_attrs(ctx, sp, dp, None)
        }
        e if e.is_group() => {
            ctx.dst.create_group(dp)?;
            copy_attrs(ctx, sp, dp, None)?;
            for child in ctx.src.list(sp)? {
                copy_element(ctx, &join_path(sp, &child), &join_path(dp, &child))?;
            }
            Ok(())
        }
        _ => {
            copy_array(ctx, sp, dp, Purpose::Dense)?;
            copy_attrs(ctx, sp, dp, None)
        }
    }
}

/// Write the `null` encoding as each format's anndata writer does (HDF5: an empty float32
/// dataset; zarr: a 0-d bool array).
pub fn write_null(dst: &dyn Store, dp: &str) -> Result<()> {
    let dtype = if dst.kind() == StoreKind::Hdf5 { DType::F32 } else { DType::Bool };
    dst.create_array(dp, &ArraySpec { null: true, ..ArraySpec::new(dtype, vec![]) })?;
    dst.set_attrs(dp, &Encoding::Null.attrs())?;
    Ok(())
}

/// Stream one array to the destination with the destination's layout.
fn copy_array(ctx: &Ctx<'_>, sp: &str, dp: &str, purpose: Purpose) -> Result<()> {
    let meta = ctx.src.array_meta(sp)?;
    if meta.shape.is_empty() || meta.null {
        let data = ctx.src.read_all(sp)?;
        let spec = ctx.opts.spec(ctx.dst.kind(), meta.dtype, &[], purpose);
        ctx.dst.create_array(dp, &spec)?;
        ctx.dst.write(dp, &[], &data)?;
        return Ok(());
    }
    let spec = ctx.opts.spec(ctx.dst.kind(), meta.dtype, &meta.shape, purpose);
    ctx.dst.create_array(dp, &spec)?;
    let n = meta.shape[0];
    let step = ctx.opts.block_rows(&spec).max(1);
    let mut start = 0;
    while start < n {
        let end = (start + step).min(n);
        let block = ctx.src.read_rows(sp, start, end)?;
        ctx.dst.write_rows(dp, start, &block)?;
        ctx.progress.advance(block.len() as u64 * crate::layout::element_bytes(meta.dtype));
        start = end;
    }
    Ok(())
}

fn copy_sparse(ctx: &Ctx<'_>, sp: &str, dp: &str, enc: Encoding, inferred: bool) -> Result<()> {
    let sm = crate::sparse::SparseMeta::read(ctx.src, sp)?;
    ctx.dst.create_group(dp)?;
    copy_attrs(ctx, sp, dp, inferred.then_some(enc))?;
    if inferred {
        // Legacy h5sparse: write the modern shape attribute too.
        let mut a = Attrs::new();
        a.insert("shape".into(), AttrValue::Ints(vec![sm.shape[0] as i64, sm.shape[1] as i64]));
        ctx.dst.set_attrs(dp, &a)?;
    }
    for part in ["data", "indices", "indptr"] {
        let (s, d) = (join_path(sp, part), join_path(dp, part));
        copy_array(ctx, &s, &d, Purpose::SparsePart)?;
        copy_attrs(ctx, &s, &d, None)?;
    }
    Ok(())
}
