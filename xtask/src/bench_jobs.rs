//! `cargo xtask bench-jobs`: the cost of the plan and of tasks, on inputs written by
//! anndata. For 10, 100 and 1,000 inputs: `adcat job create`, every task in one
//! `adcat job run`, every task in its own process, `job finish`, next to the same
//! concatenation run by `adcat concat`; and the same for an h5ad output, whose `finish`
//! converts the job's zarr staging — interleaved rounds, medians and spread.

use crate::bench::median_spread;
use crate::{measure, rm};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes N h5ad files with anndata: 200 cells x 2,000 genes at 5 % (CSR float32), a
/// categorical obs column; every fifth file's genes shifted, so the outer join reindexes.
const GENERATE: &str = r#"
import sys, warnings
warnings.simplefilter("ignore")
import numpy as np, pandas as pd, anndata as ad
from scipy import sparse
out, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    rng = np.random.default_rng(i)
    genes = [f"g{j}" for j in range((i % 5) * 100, (i % 5) * 100 + 2000)]
    X = sparse.random(200, 2000, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    obs = pd.DataFrame({"ct": pd.Categorical(rng.choice(["B", "T", "NK"], 200))}, index=[f"f{i}c{j}" for j in range(200)])
    ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(f"{out}/in{i:04}.h5ad")
"#;

fn wall(cmd: &mut Command) -> Result<f64> {
    Ok(measure(cmd)?.1)
}

struct Round {
    concat: f64,
    create: f64,
    run_one: f64,
    run_each: f64,
    finish: f64,
    tasks: usize,
    /// h5ad output: `adcat concat`, then the job's create + run + finish, and finish
    /// alone (it converts the zarr staging into the h5ad).
    concat_h5ad: f64,
    job_h5ad: f64,
    finish_h5ad: f64,
}

fn round(bin: &Path, work: &Path, ins: &[PathBuf]) -> Result<Round> {
    let (concat, create, run_one, finish, run_each, tasks) = round_zarr(bin, work, ins)?;
    let (concat_h5ad, job_h5ad, finish_h5ad) = round_h5ad(bin, work, ins)?;
    Ok(Round { concat, create, run_one, run_each, finish, tasks, concat_h5ad, job_h5ad, finish_h5ad })
}

const OPTS: [&str; 4] = ["--join", "outer", "--task-size", "4MiB"];

fn adcat(bin: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("-q");
    c
}

fn round_h5ad(bin: &Path, work: &Path, ins: &[PathBuf]) -> Result<(f64, f64, f64)> {
    let (out, job) = (work.join("out.h5ad"), work.join("job"));
    rm(&out);
    let concat = wall(adcat(bin).args(["concat", "-o"]).arg(&out).args(OPTS).args(ins))?;
    rm(&out);
    rm(&job);
    let create = wall(adcat(bin).args(["job", "create", "-o"]).arg(&out).args(OPTS).args(ins).arg(&job))?;
    let run = wall(adcat(bin).args(["job", "run"]).arg(&job))?;
    let finish = wall(adcat(bin).args(["job", "finish"]).arg(&job))?;
    rm(&out);
    rm(&job);
    Ok((concat, create + run + finish, finish))
}

type ZarrRound = (f64, f64, f64, f64, f64, usize);

fn round_zarr(bin: &Path, work: &Path, ins: &[PathBuf]) -> Result<ZarrRound> {
    let out = work.join("out.zarr");
    let job = work.join("job");
    let opts = OPTS;
    let adcat = || adcat(bin);
    rm(&out);
    let concat = wall(adcat().args(["concat", "-o"]).arg(&out).args(opts).args(ins))?;
    let create_run = |one: bool| -> Result<(f64, f64, f64, usize)> {
        rm(&out);
        rm(&job);
        let create = wall(adcat().args(["job", "create", "-o"]).arg(&out).args(opts).args(ins).arg(&job))?;
        // Every task has one "action" key (xtask has no JSON parser).
        let tasks = std::fs::read_to_string(job.join("job.json"))?.matches("\"action\"").count();
        let run = if one {
            wall(adcat().args(["job", "run"]).arg(&job))?
        } else {
            let t0 = std::time::Instant::now();
            for t in 0..tasks {
                let st = adcat().args(["job", "run"]).arg(&job).args(["--task", &t.to_string()]).status()?;
                anyhow::ensure!(st.success(), "task {t} failed");
            }
            t0.elapsed().as_secs_f64()
        };
        let finish = wall(adcat().args(["job", "finish"]).arg(&job))?;
        Ok((create, run, finish, tasks))
    };
    let (create, run_one, finish, tasks) = create_run(true)?;
    let (_, run_each, _, _) = create_run(false)?;
    rm(&out);
    rm(&job);
    Ok((concat, create, run_one, finish, run_each, tasks))
}

/// Run the benchmark and print a table.
pub fn bench_jobs(bin: &Path, vpy: &Path, root: &Path) -> Result<()> {
    let rounds: usize = std::env::var("ADCAT_BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    println!("\n{rounds} interleaved rounds, median (min–max); outer join, --task-size 4MiB, zarr v3 output\n");
    println!("| inputs | tasks | adcat concat | job create | job run (one process) | job finish | every task in its own process | overhead per task process |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut h5ad_rows = vec![];
    for n in [10usize, 100, 1000] {
        let ins = crate::bench::scripted_set(vpy, &root.join(format!("target/bench-data/jobs/n{n}")), GENERATE, n).context("bench-jobs inputs")?;
        let work = root.join("target/bench-work/jobs");
        std::fs::create_dir_all(&work)?;
        let rs: Vec<Round> = (0..rounds).map(|_| round(bin, &work, &ins)).collect::<Result<_>>()?;
        let col = |f: &dyn Fn(&Round) -> f64| median_spread(rs.iter().map(f).collect(), " s");
        let per_task = median_spread(rs.iter().map(|r| (r.run_each - r.run_one) / r.tasks.max(1) as f64 * 1e3).collect(), " ms");
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} | {per_task} |",
            rs[0].tasks,
            col(&|r| r.concat),
            col(&|r| r.create),
            col(&|r| r.run_one),
            col(&|r| r.finish),
            col(&|r| r.run_each),
        );
        h5ad_rows.push(format!("| {n} | {} | {} | {} |", col(&|r| r.concat_h5ad), col(&|r| r.job_h5ad), col(&|r| r.finish_h5ad)));
    }
    println!("\nh5ad output (tasks write a zarr staging store; `job finish` converts it)\n");
    println!("| inputs | adcat concat | job create + run + finish | of which job finish |");
    println!("|---|---|---|---|");
    for r in h5ad_rows {
        println!("{r}");
    }
    Ok(())
}
