//! `cargo xtask bench-scale`: how adcat's time and peak RSS grow with the number of
//! inputs (a fixed 100,000 cells split into 2 to 500 files), with the input size (up to
//! 28 files, 11 GB, more than the page cache holds beside its output) and with the
//! number of threads (1, 2) — on inputs written by anndata with its defaults. Each
//! round runs `cp -r` of the inputs and adcat at 1 and 2 threads, interleaved; the
//! tables give medians and min–max. From the two studies it fits the cost per file and
//! per GB and projects a Tahoe-100M-sized job (314 GB in 14 files) on this machine.

use crate::bench::{anndata_set, cp_floor, median_spread};
use crate::{dir_size, measure, rm};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One measured configuration: its inputs and, per round, (cp, 1 thread, 2 threads)
/// seconds and the largest peak RSS (KiB).
struct Point {
    inputs: Vec<PathBuf>,
    cells: u64,
    cp: Vec<f64>,
    t1: Vec<f64>,
    t2: Vec<f64>,
    rss: u64,
}

impl Point {
    fn new(inputs: Vec<PathBuf>, cells: u64) -> Point {
        Point { inputs, cells, cp: vec![], t1: vec![], t2: vec![], rss: 0 }
    }

    fn gb(&self) -> f64 {
        self.inputs.iter().map(|p| dir_size(p)).sum::<u64>() as f64 / 1e9
    }

    /// One round: cp, adcat on 1 thread, adcat on 2 threads.
    fn round(&mut self, bin: &Path, work: &Path) -> Result<()> {
        self.cp.push(cp_floor(&self.inputs, work)?);
        let out = work.join("out.h5ad");
        for (threads, times) in [("1", &mut self.t1), ("2", &mut self.t2)] {
            rm(&out);
            let (rss, t) = measure(Command::new(bin).args(["concat", "-q", "-j", threads, "-o"]).arg(&out).args(&self.inputs))?;
            rm(&out);
            times.push(t);
            self.rss = self.rss.max(rss);
        }
        Ok(())
    }

    fn row(&self) -> String {
        let gb = self.gb();
        format!(
            "| {} | {} | {:.2} GB | {} | {} | {} | {:.0} MB | {:.2} s |",
            self.inputs.len(),
            self.cells,
            gb,
            median_spread(self.cp.clone(), " s"),
            median_spread(self.t1.clone(), " s"),
            median_spread(self.t2.clone(), " s"),
            self.rss as f64 / 1024.0,
            median(&self.t2) / gb.max(1e-9),
        )
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Least-squares slope of y against x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let num: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    num / den.max(1e-12)
}

/// `n` copies of the 4 same-var inputs (real copies: hard links would share page cache),
/// cached under `dir`; bench-virtual reuses them.
pub(crate) fn copies(src: &[PathBuf], dir: &Path, n: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    (0..n)
        .map(|i| {
            let p = dir.join(format!("c{i:03}.h5ad"));
            if !p.exists() {
                let tmp = dir.join(format!(".c{i:03}.h5ad"));
                std::fs::copy(&src[i % src.len()], &tmp).with_context(|| format!("copying to {}", tmp.display()))?;
                std::fs::rename(&tmp, &p)?;
            }
            Ok(p)
        })
        .collect()
}

fn table(title: &str, points: &[Point]) {
    println!("\n{title}\n");
    println!("| files | cells per file | input | cp -r | adcat 1 thread | adcat 2 threads | adcat peak RSS | 2 threads, s per GB |");
    println!("|---|---|---|---|---|---|---|---|");
    for p in points {
        println!("{}", p.row());
    }
}

/// Where bench-scale caches its inputs (shared with bench-virtual).
pub(crate) const SCALE_DATA: &str = "target/bench-data/anndata-scale1";

/// The 28 copies of 4 anndata-written files of 25,000 cells x 20,000 genes: bench-scale's
/// largest input.
pub(crate) fn largest_set(vpy: &Path, root: &Path) -> Result<Vec<PathBuf>> {
    let data = root.join(SCALE_DATA);
    let plain = anndata_set(vpy, &data.join("h5ad"), "h5ad", 4, 25_000, 20_000)?;
    copies(&plain, &data.join("copies"), 28)
}

/// `cargo xtask bench-scale`.
pub fn bench_scale(bin: &Path, vpy: &Path, root: &Path) -> Result<()> {
    let reps: usize = std::env::var("ADCAT_BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let data = root.join(SCALE_DATA);
    let work = root.join("target/bench-work");
    std::fs::create_dir_all(&work)?;
    // Plain h5ad sets by directory (the "h5ad" and "small" sets are `cargo xtask bench`'s).
    let set = |dir: &str, n: usize, cells: u64| anndata_set(vpy, &data.join(dir), "h5ad", n, cells, 20_000);
    // Number of files: 100,000 cells in all.
    let mut files = vec![];
    for (dir, n) in [("n2", 2usize), ("h5ad", 4), ("n20", 20), ("small", 200), ("n500", 500)] {
        let cells = 100_000 / n as u64;
        files.push(Point::new(set(dir, n, cells)?, cells));
    }
    // Input size: copies of the 4 same-var files.
    let all = largest_set(vpy, root)?;
    let mut sizes: Vec<Point> = [4usize, 8, 16, 28].iter().map(|&n| Point::new(all[..n].to_vec(), 25_000)).collect();
    for r in 0..reps {
        eprintln!("xtask: bench-scale round {} of {reps}", r + 1);
        for p in files.iter_mut().chain(sizes.iter_mut()) {
            p.round(bin, &work).with_context(|| format!("{} files", p.inputs.len()))?;
        }
    }
    println!("\n{reps} interleaved rounds; median (min–max); same var, anndata-written h5ad -> h5ad, default --max-memory 1GiB");
    table("Number of files (100,000 cells of 20,000 genes in all):", &files);
    table("Input size (copies of 4 files of 25,000 cells):", &sizes);
    project(&files, &sizes);
    Ok(())
}

/// Cost per file and per GB (slopes of the 2-thread medians) and the Tahoe-100M projection.
fn project(files: &[Point], sizes: &[Point]) {
    let per_file = slope(&files.iter().map(|p| (p.inputs.len() as f64, median(&p.t2))).collect::<Vec<_>>());
    let per_gb = slope(&sizes.iter().map(|p| (p.gb(), median(&p.t2))).collect::<Vec<_>>());
    let cp_gb = slope(&sizes.iter().map(|p| (p.gb(), median(&p.cp))).collect::<Vec<_>>());
    println!("\nCost at 2 threads: {:.1} ms per file (slope over the number of files at a fixed size), {per_gb:.2} s per GB (slope over the input size; cp -r: {cp_gb:.2} s per GB)", per_file * 1e3);
    let tahoe = 314.0 * per_gb + 14.0 * per_file;
    println!("Projection, 314 GB in 14 files (Tahoe-100M's size): {tahoe:.0} s = {:.1} min at the measured rates (cp -r of the same bytes: {:.1} min)", tahoe / 60.0, 314.0 * cp_gb / 60.0);
}
