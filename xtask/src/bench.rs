//! `cargo xtask bench`: adcat against its floors and against anndata, on the inputs
//! users have — written by anndata itself with its default settings (h5py's small
//! chunks), gzip-compressed h5ad, anndata's zarr v3 — next to inputs in adcat's own
//! layout (`adcat generate`). Every case runs its commands interleaved (floor, adcat,
//! anndata, then again) for several rounds and reports medians, the spread (min–max)
//! and the median of the ratios taken within each round.
//!
//! Floors, measured in the same run: `cp -r` of the inputs (the I/O floor); for a zarr
//! v3 output, compressing the same arrays with the same codec, level and chunk size on
//! all cores; for gzip h5ad and zarr inputs, decompressing their chunks on all cores
//! (plus the `cp` of the same data uncompressed, for the write).

use crate::{dir_size, gen_set, measure, rm, run};
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Writes `n` AnnData files with anndata's defaults: CSR float32 X of count-like values
/// at 5 %, an int32 `counts` layer with the same structure, an obs categorical and a
/// numeric column. Kinds: `h5ad`, `gzip` (write_h5ad(compression="gzip")), `zarr`
/// (write_zarr, zarr v3 in anndata 0.13), `outer` (h5ad; each file's genes shifted by
/// 250 and shuffled, so an outer join reindexes every input).
const GENERATE: &str = r#"
import sys, warnings
warnings.simplefilter("ignore")
import numpy as np, pandas as pd, anndata as ad
from scipy import sparse
out, kind, n, cells, genes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
for i in range(n):
    rng = np.random.default_rng(i)
    blocks = []
    for s in range(0, cells, 1000):
        m = min(1000, cells - s)
        mask = rng.random((m, genes), dtype=np.float32) < 0.05
        blocks.append(sparse.csr_matrix(mask, dtype=np.float32))
    X = sparse.vstack(blocks, format="csr")
    X.data = np.ceil(rng.random(X.nnz, dtype=np.float32) * 20)
    var = np.array([f"g{j}" for j in range(genes)])
    if kind == "outer":
        var = np.array([f"g{j}" for j in range(i * 250, i * 250 + genes)])
        rng.shuffle(var)
    obs = pd.DataFrame(
        {"batch": pd.Categorical([f"b{i}"] * cells), "n_counts": np.asarray(X.sum(axis=1)).ravel()},
        index=[f"f{i}c{j}" for j in range(cells)],
    )
    a = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=var))
    a.layers["counts"] = X.astype(np.int32)
    base = f"{out}/in{i:03}"
    if kind == "zarr":
        a.write_zarr(base + ".zarr")
    elif kind == "gzip":
        a.write_h5ad(base + ".h5ad", compression="gzip")
    else:
        a.write_h5ad(base + ".h5ad")
"#;

/// Dumps, for the codec floors: `raw` — each sparse array's values over all inputs
/// (`<name>.bin`, and its item size in `<name>.itemsize`); `chunks` — every stored chunk
/// of every chunked dataset as `[u32 stored length][u32 raw length][bytes]`.
const DUMP: &str = r#"
import sys, struct, h5py, numpy as np
mode, out, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
names = ["X/data", "X/indices", "layers/counts/data", "layers/counts/indices"]
if mode == "raw":
    for name in names:
        parts = []
        for p in paths:
            with h5py.File(p) as f:
                if name in f:
                    parts.append(f[name][:])
        if not parts:
            continue
        a = np.concatenate(parts)
        a.tofile(f"{out}/{name.replace('/', '_')}.bin")
        open(f"{out}/{name.replace('/', '_')}.itemsize", "w").write(str(a.dtype.itemsize))
else:
    with open(f"{out}/chunks.bin", "wb") as w:
        for p in paths:
            with h5py.File(p) as f:
                for name in names:
                    d = f[name]
                    raw = d.chunks[0] * d.dtype.itemsize
                    for k in range(d.id.get_num_chunks()):
                        info = d.id.get_chunk_info(k)
                        _, b = d.id.read_direct_chunk(info.chunk_offset)
                        w.write(struct.pack("<II", len(b), raw))
                        w.write(b)
"#;

/// Writes N h5ad files with anndata's `script` (arguments: `dir`, N), once, cached under
/// `dir`; the files it wrote, sorted.
pub(crate) fn scripted_set(vpy: &Path, dir: &Path, script: &str, n: usize) -> Result<Vec<PathBuf>> {
    let done = dir.join(format!("complete-{n}"));
    if !done.exists() {
        rm(dir);
        std::fs::create_dir_all(dir)?;
        run(Command::new(vpy).arg("-c").arg(script).arg(dir).arg(n.to_string())).context("writing the inputs with anndata")?;
        std::fs::write(&done, "")?;
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "h5ad")).collect();
    v.sort();
    Ok(v)
}

/// Seconds to compress X (and the counts layer) of the h5ad `inputs` with zstd at `level`
/// on all cores, in chunks of the zarr v3 store `out`'s X/data: the codec floor of
/// writing them into `out`. The arrays are dumped once into `dump`.
pub(crate) fn zstd_floor_of(vpy: &Path, inputs: &[PathBuf], dump: &Path, out: &Path, level: i32) -> Result<f64> {
    if !dump.join("complete").exists() {
        rm(dump);
        std::fs::create_dir_all(dump)?;
        run(Command::new(vpy).arg("-c").arg(DUMP).arg("raw").arg(dump).args(inputs))?;
        std::fs::write(dump.join("complete"), "")?;
    }
    Ok(zstd_floor(&read_raw(dump)?, zarr_chunk_elems(out)?, level))
}

/// Writes N h5ad files with anndata, once, cached under `dir`.
pub(crate) fn anndata_set(vpy: &Path, dir: &Path, kind: &str, n: usize, cells: u64, genes: u64) -> Result<Vec<PathBuf>> {
    let done = dir.join("complete");
    if !done.exists() {
        rm(dir);
        std::fs::create_dir_all(dir)?;
        run(Command::new(vpy).arg("-c").arg(GENERATE).arg(dir).arg(kind).arg(n.to_string()).arg(cells.to_string()).arg(genes.to_string()))
            .with_context(|| format!("writing the {kind} inputs with anndata"))?;
        std::fs::write(&done, "")?;
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?.flatten().map(|e| e.path()).filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("in"))).collect();
    v.sort();
    Ok(v)
}

/// A codec floor: a measurement of the codec alone on all cores.
#[derive(Clone, Copy)]
enum Floor {
    /// `cp -r` of the inputs.
    Copy,
    /// zstd at `level` over the dumped arrays, cut into chunks of the output's chunk size.
    Zstd { level: i32 },
    /// Decompressing the inputs' gzip chunks, plus `cp -r` of the same data uncompressed.
    Gunzip,
    /// Decompressing the zarr inputs' zstd chunks, plus `cp -r` of the same data
    /// uncompressed.
    Unzstd,
}

struct Case {
    name: &'static str,
    inputs: Vec<PathBuf>,
    out_ext: &'static str,
    adcat: Vec<String>,
    /// Keyword arguments of anndata's concat_on_disk.
    anndata: String,
    floor: Floor,
}

/// One round's times for one case.
#[derive(Default, Clone, Copy)]
struct Times {
    floor: f64,
    adcat: f64,
    anndata: f64,
    adcat_rss: u64,
    anndata_rss: u64,
}

/// What the floors need, prepared once (untimed).
struct FloorData {
    /// Raw arrays of the same-var inputs and their item sizes.
    raw: Vec<(Vec<u8>, usize)>,
    /// The gzip inputs' stored chunks and their raw sizes.
    chunks: Vec<(Vec<u8>, usize)>,
    /// The zarr inputs' stored (zstd) chunks and their raw sizes.
    zchunks: Vec<(Vec<u8>, usize)>,
    /// The uncompressed same-var inputs (the gzip floor's write).
    plain: Vec<PathBuf>,
    work: PathBuf,
}

pub(crate) fn cp_floor(inputs: &[PathBuf], work: &Path) -> Result<f64> {
    let dir = work.join("cp");
    rm(&dir);
    std::fs::create_dir_all(&dir)?;
    let t = measure(Command::new("cp").arg("-r").args(inputs).arg(&dir))?.1;
    rm(&dir);
    Ok(t)
}

/// Seconds to compress `raw` in chunks of `chunk_elems` items with zstd on all cores.
fn zstd_floor(raw: &[(Vec<u8>, usize)], chunk_elems: usize, level: i32) -> f64 {
    let t = Instant::now();
    // A compressor and an output buffer per worker, reused (as for the decode floors).
    let n: usize = raw
        .iter()
        .map(|(bytes, item)| {
            let size = chunk_elems * item;
            bytes
                .par_chunks(size)
                .map_init(
                    || (zstd::bulk::Compressor::new(level).ok(), Vec::<u8>::with_capacity(zstd::zstd_safe::compress_bound(size))),
                    |(c, buf), chunk| c.as_mut().and_then(|c| c.compress_to_buffer(chunk, buf).ok()).unwrap_or(0),
                )
                .sum::<usize>()
        })
        .sum();
    std::hint::black_box(n);
    t.elapsed().as_secs_f64()
}

/// Seconds to decode `chunks` (stored bytes, decoded length) with `decode` on all cores.
/// One output buffer per worker, reused: fresh pages for every chunk would measure page
/// faults, not the codec.
fn time_decode(chunks: &[(Vec<u8>, usize)], decode: impl Fn(&[u8], &mut Vec<u8>) -> usize + Sync) -> f64 {
    let t = Instant::now();
    let n: usize = chunks
        .par_iter()
        .map_init(Vec::<u8>::new, |buf, (b, raw)| {
            buf.clear();
            buf.reserve(*raw);
            decode(b, buf)
        })
        .sum();
    std::hint::black_box(n);
    t.elapsed().as_secs_f64()
}

/// Seconds to inflate gzip (zlib) `chunks` on all cores.
fn gunzip_floor(chunks: &[(Vec<u8>, usize)]) -> f64 {
    time_decode(chunks, |b, out| flate2::Decompress::new(true).decompress_vec(b, out, flate2::FlushDecompress::Finish).map_or(0, |_| out.len()))
}

/// Seconds to decompress zstd `chunks` on all cores.
fn unzstd_floor(chunks: &[(Vec<u8>, usize)]) -> f64 {
    time_decode(chunks, |b, out| zstd::bulk::Decompressor::new().and_then(|mut d| d.decompress_to_buffer(b, out)).unwrap_or(0))
}

/// The stored chunks of the zarr v3 array `arr` in `store`: each file under `c/`, or,
/// when sharded, each inner chunk cut out of the shards (index at the end: an
/// (offset, length) pair of u64 per inner chunk, then a crc32c).
fn zarr_chunks(store: &Path, arr: &str) -> Result<Vec<(Vec<u8>, usize)>> {
    let dir = store.join(arr);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("zarr.json"))?)?;
    let outer = doc["chunk_grid"]["configuration"]["chunk_shape"][0].as_u64().context("chunk shape")?;
    let sharding = doc["codecs"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "sharding_indexed"));
    let inner = sharding.and_then(|c| c["configuration"]["chunk_shape"][0].as_u64());
    let item: u64 = match doc["data_type"].as_str() {
        Some("int64" | "uint64" | "float64") => 8,
        Some("int16" | "uint16") => 2,
        Some("int8" | "uint8" | "bool") => 1,
        _ => 4,
    };
    let raw = (inner.unwrap_or(outer) * item) as usize;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("c"))?.flatten().map(|e| e.path()).collect();
    files.sort();
    let mut out = vec![];
    for f in files {
        let bytes = std::fs::read(&f)?;
        let Some(inner) = inner else {
            out.push((bytes, raw));
            continue;
        };
        let n = outer.div_ceil(inner) as usize;
        let Some(index_at) = bytes.len().checked_sub(n * 16 + 4) else { bail!("{}: shorter than its shard index", f.display()) };
        for e in bytes[index_at..index_at + n * 16].chunks_exact(16) {
            let (off, len) = (u64::from_le_bytes(e[..8].try_into()?), u64::from_le_bytes(e[8..].try_into()?));
            if off != u64::MAX {
                let Some(c) = bytes.get(off as usize..(off + len) as usize) else { bail!("{}: chunk outside the shard", f.display()) };
                out.push((c.to_vec(), raw));
            }
        }
    }
    Ok(out)
}

/// Items per chunk of `X/data` in a zarr v3 output (the inner chunk when sharded).
fn zarr_chunk_elems(out: &Path) -> Result<usize> {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("X/data/zarr.json"))?)?;
    let inner = doc["codecs"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "sharding_indexed")).map(|c| &c["configuration"]["chunk_shape"]);
    let shape = inner.unwrap_or(&doc["chunk_grid"]["configuration"]["chunk_shape"]);
    shape.get(0).and_then(serde_json::Value::as_u64).map(|v| v as usize).context("no chunk shape in X/data/zarr.json")
}

fn read_raw(dir: &Path) -> Result<Vec<(Vec<u8>, usize)>> {
    let mut out = vec![];
    for name in ["X_data", "X_indices", "layers_counts_data", "layers_counts_indices"] {
        if !dir.join(format!("{name}.bin")).exists() {
            continue;
        }
        let item: usize = std::fs::read_to_string(dir.join(format!("{name}.itemsize")))?.trim().parse()?;
        out.push((std::fs::read(dir.join(format!("{name}.bin")))?, item));
    }
    Ok(out)
}

fn read_chunks(path: &Path) -> Result<Vec<(Vec<u8>, usize)>> {
    let all = std::fs::read(path)?;
    let mut out = vec![];
    let mut at = 0;
    while at + 8 <= all.len() {
        let len = u32::from_le_bytes(all[at..at + 4].try_into()?) as usize;
        let raw = u32::from_le_bytes(all[at + 4..at + 8].try_into()?) as usize;
        let Some(b) = all.get(at + 8..at + 8 + len) else { bail!("{}: truncated", path.display()) };
        out.push((b.to_vec(), raw));
        at += 8 + len;
    }
    Ok(out)
}

fn prepare_floors(vpy: &Path, data: &Path, plain: &[PathBuf], gzip: &[PathBuf], zarr: &[PathBuf], work: &Path) -> Result<FloorData> {
    let dir = data.join("floors");
    if !dir.join("complete").exists() {
        rm(&dir);
        std::fs::create_dir_all(&dir)?;
        run(Command::new(vpy).arg("-c").arg(DUMP).arg("raw").arg(&dir).args(plain))?;
        run(Command::new(vpy).arg("-c").arg(DUMP).arg("chunks").arg(&dir).args(gzip))?;
        std::fs::write(dir.join("complete"), "")?;
    }
    let mut zchunks = vec![];
    for z in zarr {
        for arr in ["X/data", "X/indices", "layers/counts/data", "layers/counts/indices"] {
            zchunks.extend(zarr_chunks(z, arr)?);
        }
    }
    Ok(FloorData { raw: read_raw(&dir)?, chunks: read_chunks(&dir.join("chunks.bin"))?, zchunks, plain: plain.to_vec(), work: work.to_path_buf() })
}

fn anndata_cmd(vpy: &Path, inputs: &[PathBuf], out: &Path, kw: &str) -> Command {
    let paths: Vec<String> = inputs.iter().map(|p| format!("{:?}", p.display().to_string())).collect();
    let sep = if kw.is_empty() { "" } else { ", " };
    let script = format!(
        "import warnings; warnings.simplefilter('ignore')\nfrom anndata.experimental import concat_on_disk\nconcat_on_disk([{}], {:?}{sep}{kw})\n",
        paths.join(", "),
        out.display().to_string()
    );
    let mut py = Command::new(vpy);
    py.arg("-c").arg(script);
    py
}

/// A decode-plus-write floor, its parts logged (the `cp` part is the noisy one).
fn parts(name: &str, codec: f64, cp: f64) -> f64 {
    eprintln!("xtask: {name}: floor = codec {codec:.2} s + cp {cp:.2} s");
    codec + cp
}

/// One round of one case: floor, adcat, anndata.
fn round(c: &Case, bin: &Path, vpy: &Path, fl: &FloorData) -> Result<Times> {
    let out = fl.work.join(format!("out.{}", c.out_ext));
    rm(&out);
    let (adcat_rss, adcat) = measure(Command::new(bin).args(["concat", "-q", "-o"]).arg(&out).args(&c.adcat).args(&c.inputs))?;
    let floor = match c.floor {
        Floor::Copy => cp_floor(&c.inputs, &fl.work)?,
        Floor::Zstd { level } => zstd_floor(&fl.raw, zarr_chunk_elems(&out)?, level),
        Floor::Gunzip => parts(c.name, gunzip_floor(&fl.chunks), cp_floor(&fl.plain, &fl.work)?),
        Floor::Unzstd => parts(c.name, unzstd_floor(&fl.zchunks), cp_floor(&fl.plain, &fl.work)?),
    };
    rm(&out);
    let r = measure(&mut anndata_cmd(vpy, &c.inputs, &out, &c.anndata));
    rm(&out);
    let (anndata_rss, anndata) = r?;
    Ok(Times { floor, adcat, anndata, adcat_rss, anndata_rss })
}

pub(crate) fn median_spread(mut v: Vec<f64>, unit: &str) -> String {
    v.sort_by(f64::total_cmp);
    format!("{:.2}{unit} ({:.2}–{:.2})", v[v.len() / 2], v[0], v[v.len() - 1])
}

fn report(c: &Case, rounds: &[Times]) {
    let size: u64 = c.inputs.iter().map(|p| dir_size(p)).sum();
    let col = |f: fn(&Times) -> f64, unit: &str| median_spread(rounds.iter().map(f).collect(), unit);
    let mb = |kib: u64| format!("{:.0} MB", kib as f64 / 1024.0);
    let floor_name = match c.floor {
        Floor::Copy => "cp",
        Floor::Zstd { .. } => "zstd on all cores",
        Floor::Gunzip => "gunzip on all cores + cp",
        Floor::Unzstd => "unzstd on all cores + cp",
    };
    println!(
        "| {} | {} files, {:.0} MB | {floor_name}: {} | {} | {} | {} | {} | {} | {} |",
        c.name,
        c.inputs.len(),
        size as f64 / 1e6,
        col(|t| t.floor, " s"),
        col(|t| t.adcat, " s"),
        mb(rounds.iter().map(|t| t.adcat_rss).max().unwrap_or(0)),
        col(|t| t.anndata, " s"),
        mb(rounds.iter().map(|t| t.anndata_rss).max().unwrap_or(0)),
        col(|t| t.anndata / t.adcat.max(1e-3), "x"),
        col(|t| t.adcat / t.floor.max(1e-3), "x"),
    );
}

const SAME_VAR: &str = "same var, h5ad -> h5ad";
const SMALL: &str = "200 small files -> h5ad";

/// `cargo xtask bench`.
pub fn bench(bin: &Path, vpy: &Path, root: &Path) -> Result<()> {
    let scale: f64 = std::env::var("ADCAT_BENCH_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    let reps: usize = std::env::var("ADCAT_BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let cells = ((25_000.0 * scale).round() as u64).max(100);
    let data = root.join(format!("target/bench-data/anndata-scale{scale}"));
    let work = root.join("target/bench-work");
    std::fs::create_dir_all(&work)?;
    let set = |kind: &str, n: usize, cells: u64| anndata_set(vpy, &data.join(kind), kind, n, cells, 20_000);
    let plain = set("h5ad", 4, cells)?;
    let gzip = set("gzip", 4, cells)?;
    let zarr = set("zarr", 4, cells)?;
    let outer = set("outer", 4, cells)?;
    let small = set("small", 200, 500)?;
    let gen_dir = root.join(format!("target/bench-data/scale{scale}"));
    std::fs::create_dir_all(&gen_dir)?;
    let generated = gen_set(bin, &gen_dir, "medium", 8, ((25_000.0 * scale).round() as u64).max(10), 20_000, &|_| vec![])?;
    let floors = prepare_floors(vpy, &data, &plain, &gzip, &zarr, &work)?;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let cases = vec![
        Case { name: SAME_VAR, inputs: plain.clone(), out_ext: "h5ad", adcat: vec![], anndata: String::new(), floor: Floor::Copy },
        Case { name: "outer join, every input reindexed -> h5ad", inputs: outer, out_ext: "h5ad", adcat: s(&["--join", "outer"]), anndata: "join='outer'".into(), floor: Floor::Copy },
        Case { name: "same var, h5ad -> zarr v3 (zstd)", inputs: plain, out_ext: "zarr", adcat: vec![], anndata: String::new(), floor: Floor::Zstd { level: 3 } },
        Case { name: "gzip h5ad -> h5ad", inputs: gzip, out_ext: "h5ad", adcat: vec![], anndata: String::new(), floor: Floor::Gunzip },
        Case { name: "anndata zarr v3 -> h5ad", inputs: zarr, out_ext: "h5ad", adcat: vec![], anndata: String::new(), floor: Floor::Unzstd },
        Case { name: SMALL, inputs: small, out_ext: "h5ad", adcat: vec![], anndata: String::new(), floor: Floor::Copy },
        Case { name: "adcat generate layout, h5ad -> h5ad", inputs: generated, out_ext: "h5ad", adcat: vec![], anndata: String::new(), floor: Floor::Copy },
    ];
    // ADCAT_BENCH_ONLY=text keeps the cases whose name contains it.
    let only = std::env::var("ADCAT_BENCH_ONLY").unwrap_or_default();
    let cases: Vec<Case> = cases.into_iter().filter(|c| c.name.contains(only.as_str())).collect();
    let mut times: Vec<Vec<Times>> = vec![vec![]; cases.len()];
    for r in 0..reps {
        eprintln!("xtask: bench round {} of {reps}", r + 1);
        for (c, t) in cases.iter().zip(&mut times) {
            t.push(round(c, bin, vpy, &floors).with_context(|| c.name)?);
        }
    }
    println!("\n{reps} interleaved rounds; median (min–max); ratios are medians of the per-round ratios; peak RSS is the largest seen\n");
    println!("| case | input | floor | adcat | adcat peak RSS | anndata concat_on_disk | anndata peak RSS | anndata / adcat | adcat / floor |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (c, t) in cases.iter().zip(&times) {
        report(c, t);
    }
    per_file(&cases, &times);
    budget(bin, &floors.plain, &work)
}

/// The small-files case's time beyond what its bytes cost in the same-var case, per file.
fn per_file(cases: &[Case], times: &[Vec<Times>]) {
    let med = |i: usize| {
        let mut v: Vec<f64> = times[i].iter().map(|t| t.adcat).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let bytes = |i: usize| cases[i].inputs.iter().map(|p| dir_size(p)).sum::<u64>() as f64;
    let find = |name: &str| cases.iter().position(|c| c.name == name);
    let (Some(small), Some(same)) = (find(SMALL), find(SAME_VAR)) else { return };
    let same_bytes = med(same) * bytes(small) / bytes(same).max(1.0);
    let per = (med(small) - same_bytes) / cases[small].inputs.len() as f64;
    println!("\n200 small files: {:.1} ms per file beyond the data ({:.2} s; the same bytes take {same_bytes:.2} s in the same-var case)", per * 1e3, med(small));
}

/// Peak RSS under a budget, for half and all of the same-var inputs.
fn budget(bin: &Path, inputs: &[PathBuf], work: &Path) -> Result<()> {
    println!("\n| --max-memory 256MiB | input | adcat peak RSS | wall |");
    println!("|---|---|---|---|");
    for n in [inputs.len() / 2, inputs.len()] {
        let ins = &inputs[..n];
        let size: u64 = ins.iter().map(|p| dir_size(p)).sum();
        let out = work.join("out.h5ad");
        rm(&out);
        let (rss, t) = measure(Command::new(bin).args(["concat", "-q", "--max-memory", "256MiB", "-o"]).arg(&out).args(ins))?;
        rm(&out);
        println!("| {n} files | {:.0} MB | {:.0} MB | {t:.2} s |", size as f64 / 1e6, rss as f64 / 1024.0);
    }
    Ok(())
}
