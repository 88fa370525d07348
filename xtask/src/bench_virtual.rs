//! `cargo xtask bench-virtual`: an h5ad concatenation written as virtual datasets over
//! its inputs (`adcat concat --virtual`) against the full copy (`adcat concat`), on the
//! 50 h5ad files of bench-append (written by anndata with its defaults), with `cp -r`
//! of the inputs as the floor of any copy. Interleaved rounds; median (min–max), peak
//! RSS by `/usr/bin/time`, and the output's size.

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
    let all = scripted_set(vpy, &root.join("target/bench-data/append"), crate::bench_append::GENERATE, 51).context("bench-virtual inputs")?;
    let ins = &all[..50];
    // The outputs sit beside nothing they map: inputs are named by absolute path.
    let work = root.join("target/bench-work/virtual");
    std::fs::create_dir_all(&work)?;
    let rs: Vec<[f64; 7]> = (0..rounds).map(|_| round(bin, &work, ins)).collect::<Result<_>>()?;
    let col = |i: usize, unit: &str| median_spread(rs.iter().map(|r| r[i]).collect(), unit);
    let size: u64 = ins.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    println!("\n{rounds} interleaved rounds, median (min–max); {} h5ad files, {:.0} MB, of 2,000 cells x 20,000 genes at 5 % CSR float32 (anndata defaults)\n", ins.len(), size as f64 / 1e6);
    println!("| cp -r of the inputs | adcat concat (copy) | peak RSS | output | adcat concat --virtual | peak RSS | output |");
    println!("|---|---|---|---|---|---|---|");
    println!("| {} | {} | {} | {} | {} | {} | {} |", col(0, " s"), col(1, " s"), col(2, " MB"), col(3, " MB"), col(4, " s"), col(5, " MB"), col(6, " MB"));
    Ok(())
}
