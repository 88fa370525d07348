//! `cargo xtask bench-shuffle`: a shuffled collection for training loaders, built by
//! `adcat concat --layout annbatch` and by annbatch's own `DatasetCollection.add_adatas`
//! from the same h5ad files written by anndata, and read back by annbatch's `Loader`.
//!
//! Each round runs, interleaved: `cp -r` of the inputs (the I/O floor), the codec floor
//! (blosc-lz4 level 3 with byte shuffle — annbatch's codec, which adcat is given too —
//! over the inputs' X values in the output's chunk size, on all cores), adcat, annbatch;
//! then the loader's read throughput (cells/s, shuffled minibatches) on both outputs.
//! The table has the median and spread of the rounds and peak RSS from `/usr/bin/time`.

use crate::bench::{median_spread, scripted_set};
use crate::{measure, rm};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds a collection with annbatch's defaults (64 cells per chunk, 1 GB shards,
/// blosc-lz4, 20 GB datasets, shuffled), with zarrs' codec pipeline as annbatch advises.
const ANNBATCH_BUILD: &str = r#"
import sys, warnings
warnings.simplefilter("ignore")
import numpy as np, zarr
zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"})
from annbatch import DatasetCollection
DatasetCollection(sys.argv[1]).add_adatas(sys.argv[2:], rng=np.random.default_rng(0))
"#;

/// Reads every cell of a collection once through annbatch's Loader (shuffled chunks,
/// minibatches of 4,096, CPU); prints cells per second.
const LOADER: &str = r#"
import sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np, zarr
zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"})
from annbatch import DatasetCollection, Loader
coll = DatasetCollection(sys.argv[1], mode="r")
loader = Loader(batch_size=4096, chunk_size=256, preload_nchunks=64, shuffle=True, preload_to_gpu=False, rng=np.random.default_rng(0)).use_collection(coll)
t = time.perf_counter()
n = sum(b["X"].shape[0] for b in loader)
assert n == loader.n_obs, (n, loader.n_obs)
print(n / (time.perf_counter() - t))
"#;

/// Seconds to compress the inputs' X values with blosc-lz4 level 3 (byte shuffle) on all
/// cores, in chunks of `chunk` values.
const CODEC_FLOOR: &str = r#"
import sys, os, time, h5py, numpy as np
from numcodecs import Blosc, blosc
blosc.set_nthreads(os.cpu_count())
chunk = int(sys.argv[1])
codec = Blosc(cname="lz4", clevel=3, shuffle=Blosc.SHUFFLE)
arrays = []
for p in sys.argv[2:]:
    with h5py.File(p) as f:
        arrays += [f["X/data"][:], f["X/indices"][:].astype(np.uint16)]
t = time.perf_counter()
for a in arrays:
    for s in range(0, len(a), chunk):
        codec.encode(a[s : s + chunk])
print(time.perf_counter() - t)
"#;

fn python(vpy: &Path, script: &str) -> Command {
    let mut c = Command::new(vpy);
    c.arg("-c").arg(script);
    c
}

/// The stdout of `cmd` as a number.
fn number(cmd: &mut Command) -> Result<f64> {
    let out = cmd.output().context("running python")?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().context("reading a number")
}

/// Entries per chunk of X/data in adcat's collection (as annbatch: 64 cells' entries).
fn chunk_entries(out: &Path) -> Result<u64> {
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("dataset_0/X/data/zarr.json"))?)?;
    let codecs = meta["codecs"].as_array().cloned().unwrap_or_default();
    let inner = codecs.iter().find_map(|c| c["configuration"]["chunk_shape"][0].as_u64());
    Ok(inner.unwrap_or(1 << 16))
}

/// One round: cp, codec floor, adcat (s, MB), annbatch (s, MB), loader cells/s on
/// adcat's and annbatch's collections.
fn round(bin: &Path, vpy: &Path, work: &Path, ins: &[PathBuf]) -> Result<[f64; 8]> {
    let (a_out, b_out) = (work.join("adcat.zarr"), work.join("annbatch.zarr"));
    rm(&a_out);
    rm(&b_out);
    let cp = crate::bench::cp_floor(ins, work)?;
    let codec = ["--compression", "blosc:lz4:3", "--seed", "0"];
    let (a_kb, a_s) = measure(Command::new(bin).args(["-q", "concat", "--layout", "annbatch"]).args(codec).args(ins).arg("-o").arg(&a_out))?;
    let floor = number(python(vpy, CODEC_FLOOR).arg(chunk_entries(&a_out)?.to_string()).args(ins))?;
    let (b_kb, b_s) = measure(python(vpy, ANNBATCH_BUILD).arg(&b_out).args(ins))?;
    let a_read = number(python(vpy, LOADER).arg(&a_out))?;
    let b_read = number(python(vpy, LOADER).arg(&b_out))?;
    rm(&a_out);
    rm(&b_out);
    Ok([cp, floor, a_s, a_kb as f64 / 1024.0, b_s, b_kb as f64 / 1024.0, a_read, b_read])
}

/// The benchmark (see the module documentation).
pub fn bench_shuffle(bin: &Path, vpy: &Path, root: &Path) -> Result<()> {
    let rounds: usize = std::env::var("ADCAT_BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let n: usize = std::env::var("ADCAT_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(20).max(1);
    // The batches of bench-append: 2,000 cells x 20,000 genes at 5 %, CSR float32.
    let all = scripted_set(vpy, &root.join("target/bench-data/append"), crate::bench_append::GENERATE, 51).context("bench-shuffle inputs")?;
    let ins = &all[..n.min(all.len())];
    let work = root.join("target/bench-work/shuffle");
    std::fs::create_dir_all(&work)?;
    let rs: Vec<[f64; 8]> = (0..rounds).map(|_| round(bin, vpy, &work, ins)).collect::<Result<_>>()?;
    let col = |i: usize, unit: &str| median_spread(rs.iter().map(|r| r[i]).collect(), unit);
    println!("\n{rounds} interleaved rounds, median (min–max); {} h5ad files of 2,000 cells x 20,000 genes, 5 % CSR float32 (anndata defaults)", ins.len());
    println!("both collections blosc-lz4 level 3 with byte shuffle, 64-cell chunks, compact indices; annbatch with zarrs' codec pipeline\n");
    println!("| cp -r of the inputs | codec floor (all cores) | adcat --layout annbatch | peak RSS | annbatch add_adatas | peak RSS |");
    println!("|---|---|---|---|---|---|");
    println!("| {} | {} | {} | {} | {} | {} |", col(0, " s"), col(1, " s"), col(2, " s"), col(3, " MB"), col(4, " s"), col(5, " MB"));
    println!("\nannbatch Loader over the result (4,096-cell minibatches from shuffled 256-cell chunks, CPU):\n");
    println!("| collection | cells/s |");
    println!("|---|---|");
    println!("| adcat's | {} |", col(6, ""));
    println!("| annbatch's | {} |", col(7, ""));
    Ok(())
}
