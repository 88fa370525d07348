//! `cargo xtask bench-virtual`: an h5ad concatenation written as virtual datasets over
//! its inputs (`adcat concat --virtual`) against the full copy (`adcat concat`), on two
//! sets written by anndata with its defaults: the 50 small files of bench-append and
//! bench-scale's largest input (28 files of 25,000 cells, 11 GB), with `cp -r` of the
//! inputs as the floor of any copy. Interleaved rounds; median (min–max), peak RSS by
//! `/usr/bin/time`, and the output's size.

use crate::bench::{median_spread, scripted_set};
use crate::{measure, rm};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One round: cp (s), copy (s, MB, output MB), virtual (s, MB, output MB).
fn round(bin: &Path, work: &Path, ins: &[PathBuf]) -> Result<[f64; 7]> {
    let (copy, virt) = (work.join("copy.h5ad"), work.join("virtual.h5ad"));
    rm(&copy);
    rm(&virt);
    let cp = crate::bench::cp_floor(ins, work)?;
    let (c_kb, c_s) = measure(Command::new(bin).args(["-q", "concat"]).args(ins).arg("-o").arg(&copy))?;
    let (v_kb, v_s) = measure(Command::new(bin).args(["-q", "concat", "--virtual"]).args(ins).arg("-o").arg(&virt))?;
    let mb = |p: &Path| std::fs::metadata(p).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0);
    let r = [cp, c_s, c_kb as f64 / 1024.0, mb(&copy), v_s, v_kb as f64 / 1024.0, mb(&virt)];
    rm(&copy);
    rm(&virt);
    Ok(r)
}

/// The benchmark (see the module documentation).
pub fn bench_virtual(bin: &Path, vpy: &Path, root: &Path) -> Result<()> {
    let rounds: usize = std::env::var("ADCAT_BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let small = scripted_set(vpy, &root.join("target/bench-data/append"), crate::bench_append::GENERATE, 51).context("bench-virtual inputs")?;
    let large = crate::bench_scale::largest_set(vpy, root).context("bench-virtual's large inputs")?;
    let sets = [("50 files of 2,000 cells", &small[..50]), ("28 files of 25,000 cells", &large[..])];
    // The outputs sit beside nothing they map: inputs are named by absolute path.
    let work = root.join("target/bench-work/virtual");
    std::fs::create_dir_all(&work)?;
    let mut rs: Vec<Vec<[f64; 7]>> = vec![vec![]; sets.len()];
    for r in 0..rounds {
        eprintln!("xtask: bench-virtual round {} of {rounds}", r + 1);
        for (out, (_, ins)) in rs.iter_mut().zip(&sets) {
            out.push(round(bin, &work, ins)?);
        }
    }
    println!("\n{rounds} interleaved rounds, median (min–max); h5ad files of 20,000 genes at 5 % CSR float32 written by anndata with its defaults\n");
    println!("| inputs | size | cp -r of the inputs | adcat concat (copy) | peak RSS | output | adcat concat --virtual | peak RSS | output |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for ((name, ins), r) in sets.iter().zip(&rs) {
        let col = |i: usize, unit: &str| median_spread(r.iter().map(|x| x[i]).collect(), unit);
        let size: u64 = ins.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
        let cols: Vec<String> = [(0, " s"), (1, " s"), (2, " MB"), (3, " MB"), (4, " s"), (5, " MB"), (6, " MB")].iter().map(|&(i, u)| col(i, u)).collect();
        println!("| {name} | {:.0} MB | {} |", size as f64 / 1e6, cols.join(" | "));
    }
    Ok(())
}
