//! `cargo xtask bench-append`: adding one batch to a store with `adcat append`, against
//! concatenating every batch again with `adcat concat`, on inputs written by anndata.
//!
//! A store of N batches (N = 10, 50) is built once per format by `adcat concat`. Each
//! round copies it (`cp -r`, also reported: the floor of any append that must not
//! change the original in place), appends one more batch to the copy, and concatenates
//! all N + 1 batches into a new store; the commands are interleaved, and the table has
//! the median and spread of the rounds, with peak RSS from `/usr/bin/time`, next to the
//! codec floor (zstd of the new batch's X on all cores, for zarr stores).

use crate::bench::{median_spread, scripted_set, zstd_floor_of};
use crate::{measure, rm};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes N h5ad files with anndata: 2,000 cells x 20,000 genes at 5 % (CSR float32),
/// a categorical and a float obs column.
pub(crate) const GENERATE: &str = r#"
import sys, warnings
warnings.simplefilter("ignore")
import numpy as np, pandas as pd, anndata as ad
from scipy import sparse
out, n = sys.argv[1], int(sys.argv[2])
genes = [f"g{j}" for j in range(20000)]
for i in range(n):
    rng = np.random.default_rng(i)
    X = sparse.random(2000, 20000, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    obs = pd.DataFrame({"ct": pd.Categorical(rng.choice(["B", "T", "NK"], 2000)), "qc": rng.random(2000)}, index=[f"f{i}c{j}" for j in range(2000)])
    ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(f"{out}/in{i:04}.h5ad")
"#;

fn adcat(bin: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args(["-q"]);
    c
}

/// One round: (cp, append, append peak MB, concat, concat peak MB, codec floor).
fn round(bin: &Path, vpy: &Path, data: &Path, work: &Path, store: &Path, ins: &[PathBuf], ext: &str) -> Result<[f64; 6]> {
    let copy = work.join(format!("copy{ext}"));
    let out = work.join(format!("again{ext}"));
    rm(&copy);
    rm(&out);
    let batch = &ins[ins.len() - 1..];
    let (_, cp) = measure(Command::new("cp").arg("-r").arg(store).arg(&copy))?;
    let floor = if ext == ".zarr" { zstd_floor_of(vpy, batch, &data.join(format!("floor-{}", ins.len() - 1)), store, 3)? } else { 0.0 };
    let (append_kb, append) = measure(adcat(bin).arg("append").arg(&copy).args(batch))?;
    let (concat_kb, concat) = measure(adcat(bin).arg("concat").args(ins).arg("-o").arg(&out))?;
    rm(&copy);
    rm(&out);
    Ok([cp, append, append_kb as f64 / 1024.0, concat, concat_kb as f64 / 1024.0, floor])
}

/// The benchmark (see the module documentation).
pub fn bench_append(bin: &Path, vpy: &Path, root: &Path) -> Result<()> {
    let rounds: usize = std::env::var("ADCAT_BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let data = root.join("target/bench-data/append");
    let all = scripted_set(vpy, &data, GENERATE, 51).context("bench-append inputs")?;
    let work = root.join("target/bench-work/append");
    std::fs::create_dir_all(&work)?;
    println!("\n{rounds} interleaved rounds, median (min–max); one batch = 2,000 cells x 20,000 genes, 5 % CSR float32");
    println!("codec floor: zstd (level 3, the zarr v3 default) of the new batch's X in the store's chunk size, on all cores (h5ad stores are uncompressed)\n");
    println!("| store | batches | cp -r of the store | codec floor | adcat append (1 batch) | peak RSS | adcat concat (all batches again) | peak RSS |");
    println!("|---|---|---|---|---|---|---|---|");
    for ext in [".zarr", ".h5ad"] {
        for n in [10usize, 50] {
            let ins = &all[..n + 1];
            let store = work.join(format!("store{n}{ext}"));
            rm(&store);
            crate::run(adcat(bin).arg("concat").args(&ins[..n]).arg("-o").arg(&store))?;
            let rs: Vec<[f64; 6]> = (0..rounds).map(|_| round(bin, vpy, &data, &work, &store, ins, ext)).collect::<Result<_>>()?;
            let col = |i: usize, unit: &str| median_spread(rs.iter().map(|r| r[i]).collect(), unit);
            let floor = if ext == ".zarr" { col(5, " s") } else { "—".into() };
            println!("| {} | {n} + 1 | {} | {floor} | {} | {} | {} | {} |", ext.trim_start_matches('.'), col(0, " s"), col(1, " s"), col(2, " MB"), col(3, " s"), col(4, " MB"));
            rm(&store);
        }
    }
    Ok(())
}
