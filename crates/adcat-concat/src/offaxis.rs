//! Off-axis mappings (varm, varp for axis=obs) merged with a strategy after reindexing,
//! and block-diagonal pairwise concatenation (obsp with `pairwise`).

use crate::equal::arrays_equal;
use crate::frames::{columns_equal, reindex_column};
use crate::index::Reindexer;
use crate::matrix::{fill_dtype, Block, MatSource, MatWriter, OutPlan};
use crate::merge::merge_values;
use crate::awkward::mem::AwkMem;
use crate::options::ConcatOptions;
use crate::{At, ConcatError, Result};
use adcat_format::frame::{write_dict, DataFrame};
use adcat_format::sparse::{CsMatrix, SparseFormat, SparseMeta};
use adcat_format::{detect, Encoding};
use adcat_store::{join_path, ArrayData, DType, NodeKind, Store};
use ndarray::{ArrayD, IxDyn};

fn frames_index(names: &[String]) -> adcat_format::frame::Column {
    adcat_format::frame::Column::NullableString { values: names.to_vec(), mask: vec![false; names.len()], na_value: Some("NaN".into()) }
}

/// An off-axis element in memory (these are sized by the off axis, not by the stream).
#[derive(Debug, Clone)]
enum Mem {
    Dense(ArrayData),
    /// Coordinates and values; `shape` of the element; written back as `format`.
    Sparse { rows: Vec<i64>, cols: Vec<i64>, vals: ArrayData, shape: [u64; 2], format: SparseFormat },
    Frame(DataFrame),
    Awkward(AwkMem),
}

fn read_mem(store: &dyn Store, path: &str) -> Result<Mem> {
    let det = detect(store, path).at(store)?;
    Ok(match det.encoding {
        Encoding::Array => Mem::Dense(store.read_all(path).at(store)?),
        Encoding::Csr | Encoding::Csc => {
            let m = SparseMeta::read(store, path).at(store)?;
            let major = if m.format == SparseFormat::Csr { m.shape[0] } else { m.shape[1] };
            let b = CsMatrix::read_major(store, path, &m, 0, major).at(store)?;
            let ip = b.indptr.to_i64_vec().unwrap_or_default();
            let ix = b.indices.to_i64_vec().unwrap_or_default();
            let (mut rows, mut cols) = (vec![], vec![]);
            for r in 0..major as usize {
                for k in ip[r] as usize..ip[r + 1] as usize {
                    let (a, b) = if m.format == SparseFormat::Csr { (r as i64, ix[k]) } else { (ix[k], r as i64) };
                    rows.push(a);
                    cols.push(b);
                }
            }
            Mem::Sparse { rows, cols, vals: b.data, shape: m.shape, format: m.format }
        }
        Encoding::DataFrame => Mem::Frame(DataFrame::read(store, path).at(store)?),
        Encoding::Awkward => Mem::Awkward(AwkMem::read(store, path)?),
        other => return Err(ConcatError::unsupported(path, format!("cannot merge a {other} element"))),
    })
}

/// Reindex axis 0 (and axis 1 when `both`) of an element.
fn reindex(m: Mem, re: &Reindexer, both: bool, new_names: &[String]) -> Mem {
    if re.identity {
        return m;
    }
    match m {
        Mem::Awkward(a) => Mem::Awkward(a.reindex(re)),
        Mem::Frame(df) => {
            let mut out = DataFrame::with_index(vec![]);
            out.index_key = df.index_key.clone();
            out.columns = df.columns.iter().map(|(n, c)| (n.clone(), reindex_column(c, re))).collect();
            // pandas' reindex puts the new labels in the index.
            out.index = frames_index(new_names);
            Mem::Frame(out)
        }
        Mem::Sparse { rows, cols, vals, shape, format } => {
            let (mut r2, mut c2, mut keep) = (vec![], vec![], vec![]);
            for k in 0..rows.len() {
                let nr = re.new_pos[rows[k] as usize];
                let nc = if both { re.new_pos[cols[k] as usize] } else { cols[k] };
                if nr >= 0 && nc >= 0 {
                    r2.push(nr);
                    c2.push(nc);
                    keep.push(k);
                }
            }
            let n = re.new_len() as u64;
            let shape = [n, if both { n } else { shape[1] }];
            Mem::Sparse { rows: r2, cols: c2, vals: crate::matrix::take(&vals, &keep), shape, format }
        }
        Mem::Dense(a) => {
            let missing = re.n_missing() > 0;
            let a = if missing && (!a.dtype().is_float() || a.dtype() == DType::F32) {
                a.cast(a.dtype().promote(fill_dtype(f64::NAN)).unwrap_or(DType::F64)).unwrap_or(a)
            } else {
                a
            };
            let shape = a.shape();
            let n = re.new_len();
            let sh: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            let out = adcat_store::with_numeric!(&a, x => {
                let mut new_shape = sh.clone();
                new_shape[0] = n;
                if both && new_shape.len() > 1 {
                    new_shape[1] = n;
                }
                let fill = adcat_store::Numeric::from_f64(f64::NAN);
                let mut o = ArrayD::from_elem(IxDyn(&new_shape), fill);
                for (i, &src) in re.old_pos.iter().enumerate() {
                    if src < 0 {
                        continue;
                    }
                    if both && sh.len() > 1 {
                        for (j, &srcj) in re.old_pos.iter().enumerate() {
                            if srcj >= 0 {
                                o[IxDyn(&[i, j])] = x[IxDyn(&[src as usize, srcj as usize])];
                            }
                        }
                    } else {
                        o.index_axis_mut(ndarray::Axis(0), i).assign(&x.index_axis(ndarray::Axis(0), src as usize));
                    }
                }
                adcat_store::Element::wrap(o)
            }, s => adcat_store::ArrayData::String(s.clone()));
            Mem::Dense(out)
        }
    }
}

/// Shapes and indices must fit the annotated axis before positions are remapped.
fn check_dims(m: &Mem, n: usize, both: bool) -> std::result::Result<(), String> {
    let n = n as u64;
    let bad = |what: String| Err(format!("{what} does not match the {n} names of its axis"));
    match m {
        Mem::Dense(a) => {
            let sh = a.shape();
            if sh.first() != Some(&n) || (both && sh.get(1) != Some(&n)) {
                return bad(format!("shape {sh:?}"));
            }
        }
        Mem::Sparse { rows, cols, shape, .. } => {
            if shape[0] != n || (both && shape[1] != n) {
                return bad(format!("shape {shape:?}"));
            }
            if rows.iter().any(|&r| r < 0 || r as u64 >= shape[0]) || cols.iter().any(|&c| c < 0 || c as u64 >= shape[1]) {
                return Err(format!("indices outside the shape {shape:?}"));
            }
        }
        Mem::Frame(df) => {
            if df.len() as u64 != n {
                return bad(format!("{} rows", df.len()));
            }
        }
        Mem::Awkward(a) => {
            if a.length != n || both {
                return bad(format!("awkward length {}", a.length));
            }
        }
    }
    Ok(())
}

fn mem_equal(a: &Mem, b: &Mem) -> bool {
    match (a, b) {
        (Mem::Dense(x), Mem::Dense(y)) => arrays_equal(x, y),
        (Mem::Awkward(x), Mem::Awkward(y)) => x.equal(y),
        (Mem::Frame(x), Mem::Frame(y)) => {
            x.columns.len() == y.columns.len()
                && x.columns.iter().zip(&y.columns).all(|((n1, c1), (n2, c2))| n1 == n2 && columns_equal(c1, c2))
        }
        (Mem::Sparse { rows: r1, cols: c1, vals: v1, shape: s1, .. }, Mem::Sparse { rows: r2, cols: c2, vals: v2, shape: s2, .. }) => {
            if s1 != s2 {
                return false;
            }
            let norm = |r: &[i64], c: &[i64], v: &ArrayData| {
                let vals = v.to_f64_vec().unwrap_or_default();
                let mut t: Vec<(i64, i64, f64)> = r.iter().zip(c).zip(vals).filter(|(_, x)| *x != 0.0).map(|((a, b), x)| (*a, *b, x)).collect();
                t.sort_by_key(|p| (p.0, p.1));
                t
            };
            let (p, q) = (norm(r1, c1, v1), norm(r2, c2, v2));
            p.len() == q.len() && p.iter().zip(&q).all(|(x, y)| x.0 == y.0 && x.1 == y.1 && (x.2 == y.2 || (x.2.is_nan() && y.2.is_nan())))
        }
        _ => false,
    }
}

fn write_mem(m: &Mem, out: &dyn Store, path: &str, opts: &ConcatOptions) -> Result<()> {
    let o = &opts.write;
    let res = match m {
        Mem::Dense(a) => adcat_format::frame::write_array(out, path, a, o),
        Mem::Frame(df) => df.write(out, path, o),
        Mem::Awkward(a) => a.write(out, path, o),
        Mem::Sparse { rows, cols, vals, shape, format } => {
            let (major, minor) = if *format == SparseFormat::Csr { (rows, cols) } else { (cols, rows) };
            let n_major = if *format == SparseFormat::Csr { shape[0] } else { shape[1] } as usize;
            let mut order: Vec<usize> = (0..major.len()).collect();
            order.sort_by_key(|&k| (major[k], minor[k]));
            let mut indptr = vec![0i64; n_major + 1];
            for &k in &order {
                indptr[major[k] as usize + 1] += 1;
            }
            for i in 0..n_major {
                indptr[i + 1] += indptr[i];
            }
            let indices: Vec<i32> = order.iter().map(|&k| minor[k] as i32).collect();
            let cs = CsMatrix {
                format: *format,
                shape: *shape,
                data: crate::matrix::take(vals, &order),
                indices: ArrayData::from_vec(indices),
                indptr: ArrayData::from_vec(indptr.iter().map(|&x| x as i32).collect::<Vec<_>>()),
            };
            cs.write(out, path, o)
        }
    };
    res.map_err(ConcatError::Output)
}

/// varm / varp: reindex every input's elements and merge them with `opts.merge`.
pub(crate) fn merge_mapping(
    stores: Vec<&dyn Store>,
    path: &str,
    reindexers: &[Reindexer],
    new_names: &[String],
    both: bool,
    opts: &ConcatOptions,
    out: &dyn Store,
) -> Result<()> {
    write_dict(out, path).map_err(ConcatError::Output)?;
    let Some(strategy) = opts.merge else { return Ok(()) };
    let mut maps = vec![];
    for (s, re) in stores.iter().zip(reindexers) {
        let mut m = vec![];
        if s.node_kind(path).at(*s)? == Some(NodeKind::Group) {
            for k in s.list(path).at(*s)? {
                let p = join_path(path, &k);
                let el = read_mem(*s, &p)?;
                check_dims(&el, re.old_len(), both).map_err(|why| ConcatError::Input { file: s.location().into(), source: adcat_format::FormatError::invalid(&p, why) })?;
                m.push((k, reindex(el, re, both, new_names)));
            }
        }
        maps.push(m);
    }
    for (k, v) in merge_values(&maps, strategy, mem_equal) {
        write_mem(&v, out, &join_path(path, &k), opts)?;
    }
    Ok(())
}

/// `pairwise=True`: block-diagonal CSR of each key (missing blocks are empty).
pub(crate) fn pairwise(inputs: Vec<(&dyn Store, u64)>, path: &str, opts: &ConcatOptions, out: &dyn Store) -> Result<()> {
    let key_sets: Vec<Vec<String>> = inputs
        .iter()
        .map(|(s, _)| Ok(if s.node_kind(path).at(*s)? == Some(NodeKind::Group) { s.list(path).at(*s)? } else { vec![] }))
        .collect::<Result<_>>()?;
    let keys = crate::index::join_keys(&key_sets, opts.join);
    let total: u64 = inputs.iter().map(|(_, n)| n).sum();
    for k in keys {
        let p = join_path(path, &k);
        let srcs: Vec<Option<MatSource<'_>>> = inputs
            .iter()
            .zip(&key_sets)
            .map(|((s, _), ks)| if ks.contains(&k) { MatSource::open(*s, &p, false).at(*s).map(Some) } else { Ok(None) })
            .collect::<Result<_>>()?;
        let mut dtype = None::<DType>;
        let mut nnz = 0;
        for s in srcs.iter().flatten() {
            dtype = Some(match dtype {
                None => s.dtype(),
                Some(d) => d.promote(s.dtype()).unwrap_or(DType::F64),
            });
            nnz += s.nnz();
        }
        // Missing blocks are empty bool matrices; bool promotes to anything.
        let dtype = dtype.unwrap_or(DType::Bool);
        let plan = OutPlan { sparse: true, dtype, fill: 0.0 };
        let mut w = MatWriter::create(out, &p, plan, total, total, nnz, false, &opts.write)?;
        let mut offset = 0i64;
        let budget = opts.write.max_memory;
        for ((_, n), s) in inputs.iter().zip(&srcs) {
            match s {
                None => w.push_missing(*n, 0.0)?,
                Some(s) => {
                    let per = ((budget / 16) / crate::matrix::row_bytes(s).max(1)).max(1);
                    let mut start = 0;
                    while start < *n {
                        let end = (start + per).min(*n);
                        let b = s.read_block(start, end, budget / 16).at(s.store)?.into_sparse();
                        let b = match b {
                            Block::Sparse { indptr, indices, data } => Block::Sparse { indptr, indices: indices.iter().map(|c| c + offset).collect(), data },
                            d => d,
                        };
                        w.push(b, None)?;
                        start = end;
                    }
                }
            }
            offset += *n as i64;
        }
        w.finish()?;
    }
    Ok(())
}
