//! `adcat generate`: realistic synthetic AnnData stores, written with adcat's own writers
//! (used by `cargo xtask demo` and the benchmarks; no Python needed).

use adcat_format::frame::{write_dict, write_scalar, Column, DataFrame};
use adcat_format::layout::Purpose;
use adcat_format::stream::Appender;
use adcat_format::{Encoding, Result, WriteOptions};
use adcat_store::{join_path, ArrayData, AttrValue, DType, Store};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Synth {
    /// Cells (obs).
    pub cells: u64,
    /// Genes (var).
    pub genes: u64,
    /// First gene number: files with different offsets overlap partially.
    pub gene_offset: u64,
    /// Fraction of non-zero entries in X.
    pub density: f64,
    /// Random seed; also prefixes cell names so files have distinct obs names.
    pub seed: u64,
    /// Put the genes in a random (seeded) order, so joins must reindex.
    pub shuffle_genes: bool,
    /// Write X and the counts layer dense instead of CSR.
    pub dense: bool,
}

fn row_rng(seed: u64, row: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ row.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// Strings as anndata 0.13.4 with pandas 3 writes them: `nullable-string-array`, na NaN.
fn strings(v: Vec<String>) -> Column {
    let mask = vec![false; v.len()];
    Column::NullableString { values: v, mask, na_value: Some("NaN".into()) }
}

impl Synth {
    /// Non-zero count of each row, drawn from the row's own generator (pass 1 of 2).
    fn row_nnz(&self, row: u64) -> u64 {
        let mut r = row_rng(self.seed, row);
        let mean = self.density * self.genes as f64;
        let v = mean * r.random_range(0.5..1.5);
        (v.round() as u64).min(self.genes)
    }

    /// Column indices (sorted, distinct) and integer-valued counts of one row.
    fn row(&self, row: u64) -> (Vec<i32>, Vec<f32>) {
        let mut r = row_rng(self.seed, row);
        let mean = self.density * self.genes as f64;
        let k = ((mean * r.random_range(0.5..1.5)).round() as u64).min(self.genes) as usize;
        // Floyd's algorithm: k distinct columns without a genes-sized buffer.
        let mut cols = std::collections::BTreeSet::new();
        let n = self.genes as usize;
        for j in (n - k)..n {
            let t = r.random_range(0..=j);
            if !cols.insert(t as i32) {
                cols.insert(j as i32);
            }
        }
        let vals = cols.iter().map(|_| (1.0 + (-r.random::<f64>().max(1e-12).ln() * 2.0).floor()) as f32).collect();
        (cols.into_iter().collect(), vals)
    }

    /// Write a complete AnnData store.
    pub fn write(&self, store: &dyn Store, opts: &WriteOptions) -> Result<()> {
        adcat_format::write_root(store)?;
        let n = self.cells;
        let mut rng = SmallRng::seed_from_u64(self.seed);
        // obs
        let cell_types = ["B", "CD4 T", "CD8 T", "NK", "Mono", "DC", "Platelet", "pDC"];
        let mut obs = DataFrame::with_index((0..n).map(|i| format!("s{}-cell{i}", self.seed)).collect());
        let codes: Vec<i8> = (0..n).map(|_| rng.random_range(0..cell_types.len() as i8)).collect();
        let nnz: Vec<u64> = (0..n).map(|i| self.row_nnz(i)).collect();
        obs.columns = vec![
            (
                "cell_type".into(),
                Column::Categorical {
                    codes: ArrayData::from_vec(codes),
                    categories: ArrayData::from_vec(cell_types.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                    ordered: false,
                },
            ),
            ("n_genes".into(), Column::Array(ArrayData::from_vec(nnz.iter().map(|&x| x as i64).collect::<Vec<_>>()))),
            ("pct_mito".into(), Column::Array(ArrayData::from_vec((0..n).map(|_| rng.random_range(0.0f32..0.2)).collect::<Vec<_>>()))),
            ("is_doublet".into(), Column::Array(ArrayData::from_vec((0..n).map(|_| rng.random_bool(0.05)).collect::<Vec<_>>()))),
            ("sample".into(), strings((0..n).map(|i| format!("donor{}", (i + self.seed) % 4)).collect())),
        ];
        obs.index = strings(obs.index.to_strings().unwrap_or_default());
        obs.write(store, "obs", opts)?;
        // var
        let g = self.genes;
        // Gene number at each position (a seeded permutation when shuffling).
        let mut order: Vec<u64> = (0..g).map(|j| j + self.gene_offset).collect();
        if self.shuffle_genes {
            let mut r = SmallRng::seed_from_u64(self.seed ^ 0x5EED);
            for i in (1..order.len()).rev() {
                order.swap(i, r.random_range(0..=i));
            }
        }
        let mut var = DataFrame::with_index(order.iter().map(|j| format!("gene{j:05}")).collect());
        var.columns = vec![
            ("gene_ids".into(), strings(order.iter().map(|j| format!("ENSG{j:011}")).collect())),
            ("highly_variable".into(), Column::Array(ArrayData::from_vec(order.iter().map(|j| j % 7 == 0).collect::<Vec<_>>()))),
            ("mean".into(), Column::Array(ArrayData::from_vec(order.iter().map(|j| (j % 97) as f64 / 10.0).collect::<Vec<_>>()))),
        ];
        var.index = strings(var.index.to_strings().unwrap_or_default());
        var.write(store, "var", opts)?;
        // X (float32) and layers/counts (int32): same pattern, streamed in row blocks.
        let total: u64 = nnz.iter().sum();
        let mut indptr = Vec::with_capacity(n as usize + 1);
        indptr.push(0i64);
        for &k in &nnz {
            indptr.push(indptr.last().copied().unwrap_or(0) + k as i64);
        }
        write_dict(store, "layers")?;
        if self.dense {
            for (path, dtype) in [("X", DType::F32), ("layers/counts", DType::I32)] {
                let mut app = Appender::create(store, path, dtype, &[n, g], Purpose::Dense, opts)?;
                let block = 1024u64;
                let mut start = 0;
                while start < n {
                    let end = (start + block).min(n);
                    let mut v = vec![0f32; ((end - start) * g) as usize];
                    for row in start..end {
                        let (c, x) = self.row(row);
                        let base = ((row - start) * g) as usize;
                        for (ci, xi) in c.iter().zip(x) {
                            v[base + *ci as usize] = xi;
                        }
                    }
                    let a = ArrayData::from_shape_vec(&[end - start, g], v).unwrap_or_else(|| ArrayData::zeros(DType::F32, &[0, g]));
                    app.push(store, a.cast(dtype).unwrap_or(a))?;
                    start = end;
                }
                app.finish(store)?;
                store.set_attrs(path, &Encoding::Array.attrs())?;
            }
        }
        let sparse_parts: &[(&str, DType)] = if self.dense { &[] } else { &[("X", DType::F32), ("layers/counts", DType::I32)] };
        for &(path, dtype) in sparse_parts {
            store.create_group(path)?;
            let mut attrs = Encoding::Csr.attrs();
            attrs.insert("shape".into(), AttrValue::Ints(vec![n as i64, g as i64]));
            store.set_attrs(path, &attrs)?;
            let idx_dtype = if total > i32::MAX as u64 { DType::I64 } else { DType::I32 };
            let mut data = Appender::create(store, &join_path(path, "data"), dtype, &[total], Purpose::SparsePart, opts)?;
            let mut indices = Appender::create(store, &join_path(path, "indices"), DType::I32, &[total], Purpose::SparsePart, opts)?;
            let block = 4096u64;
            let mut start = 0;
            while start < n {
                let end = (start + block).min(n);
                let (mut ci, mut cv) = (vec![], vec![]);
                for row in start..end {
                    let (c, v) = self.row(row);
                    ci.extend(c);
                    cv.extend(v);
                }
                let vals = ArrayData::from_vec(cv);
                let vals = vals.cast(dtype).unwrap_or(vals);
                data.push(store, vals)?;
                indices.push(store, ArrayData::from_vec(ci))?;
                start = end;
            }
            data.finish(store)?;
            indices.finish(store)?;
            let ip = ArrayData::from_vec(indptr.clone());
            let ip = ip.cast(idx_dtype).unwrap_or(ip);
            let mut a = Appender::create(store, &join_path(path, "indptr"), idx_dtype, &[n + 1], Purpose::SparsePart, opts)?;
            a.push(store, ip)?;
            a.finish(store)?;
        }
        // obsm: PCA (n x 50) and UMAP (n x 2), float32.
        write_dict(store, "obsm")?;
        for (name, width) in [("X_pca", 50u64), ("X_umap", 2)] {
            let p = join_path("obsm", name);
            let mut app = Appender::create(store, &p, DType::F32, &[n, width], Purpose::Dense, opts)?;
            let mut start = 0;
            while start < n {
                let end = (start + 8192).min(n);
                let v: Vec<f32> = (0..(end - start) * width).map(|_| rng.random_range(-10.0f32..10.0)).collect();
                let block = ArrayData::from_shape_vec(&[end - start, width], v).unwrap_or_else(|| ArrayData::zeros(DType::F32, &[0, width]));
                app.push(store, block)?;
                start = end;
            }
            app.finish(store)?;
            store.set_attrs(&p, &Encoding::Array.attrs())?;
        }
        for d in ["obsp", "varm", "varp"] {
            write_dict(store, d)?;
        }
        write_dict(store, "uns")?;
        write_scalar(store, "uns/title", &ArrayData::scalar(format!("adcat synthetic data, seed {}", self.seed)))?;
        write_dict(store, "uns/params")?;
        write_scalar(store, "uns/params/density", &ArrayData::scalar(self.density))?;
        write_scalar(store, "uns/params/seed", &ArrayData::scalar(self.seed as i64))?;
        Ok(())
    }
}
