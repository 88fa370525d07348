//! Developer tasks: `cargo xtask test | demo | bench | conformance | setup`.
//!
//! Each task first makes sure what it needs is installed: the system HDF5 library
//! (installed with apt-get when possible, otherwise the exact command is printed) and, for
//! the oracle tests, a pinned Python >= 3.12 venv with anndata 0.13.4 in `.venv-ref/`.

mod bench;
mod bench_append;
mod bench_jobs;
mod bench_shuffle;
mod bench_virtual;
mod bench_scale;
mod wheel;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const HELP: &str = "\
cargo xtask <task>

  test          everything: HDF5 check, Rust build + tests + clippy, Python oracle suite
                (also the Python package, built into the oracle venv with maturin)
  conformance   only the Python oracle suite (builds the adcat binary and the Python package first)
  demo          build sample inputs from Rust, convert them, concatenate, inspect
  setup         install the HDF5 library and create the oracle venv, nothing else
  bench-memory  peak RSS of `adcat concat` at three input sizes under one --max-memory
  bench         adcat vs anndata concat_on_disk vs the cp and codec floors, on anndata-written inputs;
                interleaved rounds, medians (ADCAT_BENCH_REPEAT=5, ADCAT_BENCH_SCALE=0.25 for a quick run,
                ADCAT_BENCH_ONLY=gzip for the cases whose name contains it)
  bench-scale   time and peak RSS against the number of files (2-500), the input size (to 11 GB) and
                the threads (1, 2); cost per file and per GB; a Tahoe-100M-sized projection
  bench-jobs    cost of `adcat job` create/run/finish and of a task per process, for 10/100/1000 inputs
  bench-append  `adcat append` of one batch against concatenating all batches again (10 and 50 batches)
  bench-shuffle `adcat concat --layout annbatch` against annbatch's add_adatas, and its Loader's throughput on both
  bench-virtual `adcat concat --virtual` (h5ad of virtual datasets) against the full copy, 50 h5ad files
  bench-s3      concat into and out of a real S3 server (SeaweedFS on 127.0.0.1) next to plain uploads/downloads
  bench-dask    adcat.dask on 1, 2 and 4 Dask worker processes next to the single-process concat (docs/scale.md)
  wheel         build the self-contained wheel of the Python package (HDF5 linked in, built from
                source; installs cmake from PyPI if missing) into target/wheels, then check it: no
                libhdf5 in `ldd`, and a smoke test in a fresh venv with the system libhdf5 hidden
  man           write the adcat man page to target/man/adcat.1 (from the clap definitions)
  fuzz          the damaged-metadata fuzzer and random round trips, long (ADCAT_FUZZ_ITERS, default 3000;
                `test` runs them briefly)
";

fn root() -> PathBuf {
    // xtask/ sits at the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", show(cmd));
    let status = cmd.status().with_context(|| format!("cannot start {}", show(cmd)))?;
    if !status.success() {
        bail!("command failed ({status}): {}", show(cmd));
    }
    Ok(())
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn have(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().map(|o| o.status.success()).unwrap_or(false)
}

/// The HDF5 C library and headers (Debian: libhdf5-dev) must be present to build.
fn ensure_hdf5() -> Result<()> {
    if std::env::var_os("HDF5_DIR").is_some() || have("pkg-config", &["--exists", "hdf5"]) {
        return Ok(());
    }
    let pkgs = ["libhdf5-dev", "pkg-config"];
    let cmd = format!("apt-get update && apt-get install -y --no-install-recommends {}", pkgs.join(" "));
    let is_root = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false);
    if is_root && have("apt-get", &["--version"]) {
        eprintln!("xtask: HDF5 library not found; installing it: {cmd}");
        run(Command::new("apt-get").args(["update", "-qq"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(pkgs)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        return Ok(());
    }
    bail!(
        "the HDF5 library is missing. Install it with:\n    sudo {cmd}\n(or set HDF5_DIR to an HDF5 >= 1.10.5 installation), then rerun."
    )
}

/// `/usr/bin/time` measures the peak RSS of adcat in the hostile-input tests (Debian: time).
fn ensure_time() -> Result<()> {
    if Path::new("/usr/bin/time").exists() {
        return Ok(());
    }
    let is_root = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false);
    if is_root && have("apt-get", &["--version"]) {
        eprintln!("xtask: /usr/bin/time not found; installing the Debian package 'time'");
        run(Command::new("apt-get").args(["update", "-qq"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
        run(Command::new("apt-get").args(["install", "-y", "-qq", "--no-install-recommends", "time"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
        return Ok(());
    }
    bail!("/usr/bin/time is missing (the tests measure peak memory with it). Install it with:\n    sudo apt-get install time")
}

fn python_ok(p: &str) -> bool {
    have(p, &["-c", "import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)"])
}

/// Find a Python >= 3.12 (anndata 0.13.4 needs it; the image's default python3 is 3.11).
fn find_python() -> Result<String> {
    if let Ok(p) = std::env::var("ADCAT_PYTHON") {
        if python_ok(&p) {
            return Ok(p);
        }
        bail!("ADCAT_PYTHON={p} is not a Python >= 3.12");
    }
    let mut candidates = vec![];
    let pyenv_root = Command::new("pyenv")
        .arg("root")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.pyenv")));
    if let Some(r) = pyenv_root {
        if let Ok(rd) = std::fs::read_dir(format!("{r}/versions")) {
            let mut vs: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path().join("bin/python3"))).collect();
            vs.sort();
            vs.reverse();
            candidates.extend(vs.into_iter().map(|p| p.display().to_string()));
        }
    }
    candidates.extend(["python3.13", "python3.12", "python3"].map(String::from));
    for c in candidates {
        if python_ok(&c) {
            return Ok(c);
        }
    }
    bail!(
        "no Python >= 3.12 found (anndata 0.13.4 requires it). Install one (e.g. `pyenv install 3.12`) \
         or point ADCAT_PYTHON at it, then rerun."
    )
}

/// Create (or reuse) the pinned oracle venv; returns its python.
fn ensure_venv() -> Result<PathBuf> {
    let root = root();
    let venv = root.join(".venv-ref");
    let req = root.join("tests/python/requirements.txt");
    let req_text = std::fs::read_to_string(&req).with_context(|| format!("reading {}", req.display()))?;
    let py = find_python()?;
    let version = Command::new(&py).arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    let stamp = format!("{version}\n{req_text}");
    let stamp_file = venv.join(".adcat-stamp");
    let vpy = venv.join("bin/python");
    if std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str()) && vpy.exists() {
        return Ok(vpy);
    }
    eprintln!("xtask: creating the oracle venv in {} with {py} ({version})", venv.display());
    if venv.exists() {
        std::fs::remove_dir_all(&venv)?;
    }
    run(Command::new(&py).args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&vpy).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r"]).arg(&req))?;
    std::fs::write(&stamp_file, stamp)?;
    Ok(vpy)
}

/// Build the Python package (crates/adcat-py) into the oracle venv with maturin (its
/// Python sources installed editable), so the suite imports `adcat`.
fn install_python_package(vpy: &Path) -> Result<()> {
    install_python_package_with(vpy, &[])
}

/// As [`install_python_package`], with more `maturin develop` flags.
fn install_python_package_with(vpy: &Path, flags: &[&str]) -> Result<()> {
    let bin = vpy.parent().context("venv python has no directory")?;
    let venv = bin.parent().context("venv bin has no parent")?;
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    run(Command::new(bin.join("maturin"))
        .current_dir(root().join("crates/adcat-py"))
        .args(["develop", "--locked", "--quiet"])
        .args(flags)
        .env("VIRTUAL_ENV", venv)
        .env("PATH", path))
}

fn conformance(vpy: &Path) -> Result<()> {
    run(cargo().args(["build", "--locked", "-p", "adcat-cli"]))?;
    install_python_package(vpy)?;
    oracle_suites(vpy)
}

/// The oracle suite (tests/python) and anndata's own concat_on_disk tests.
fn oracle_suites(vpy: &Path) -> Result<()> {
    let bin = root().join("target/debug/adcat");
    let extra = std::env::var("ADCAT_PYTEST_ARGS").unwrap_or_default();
    let mut cmd = Command::new(vpy);
    // One pytest-xdist worker per core; a module's tests stay on one worker, so its
    // fixtures (large generated inputs) are made once.
    cmd.current_dir(root()).args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "auto", "--dist", "loadscope", "tests/python"]).env("ADCAT_BIN", &bin);
    cmd.args(extra.split_whitespace());
    run(&mut cmd)?;
    anndata_suite(vpy)
}

/// anndata 0.13.4's own on-disk concat tests (tests/test_concatenate_disk.py, from its
/// sdist) with `adcat.concat_on_disk` in place of anndata's; see tests/anndata_suite.
fn anndata_suite(vpy: &Path) -> Result<()> {
    let dest = root().join("target/anndata-suite");
    run(Command::new(vpy).arg(root().join("tests/anndata_suite/prepare.py")).arg(&dest))?;
    run(Command::new(vpy).current_dir(&dest).args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "auto", "test_concatenate_disk.py"]))
}

fn test() -> Result<()> {
    ensure_hdf5()?;
    ensure_time()?;
    let vpy = ensure_venv()?;
    run(cargo().args(["build", "--workspace", "--all-targets", "--locked"]))?;
    if have("cargo-nextest", &["--version"]) {
        run(cargo().args(["nextest", "run", "--workspace", "--locked", "--no-fail-fast"]))?;
        run(cargo().args(["test", "--workspace", "--doc", "--locked"]))?;
    } else {
        run(cargo().args(["test", "--workspace", "--locked"]))?;
    }
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"]))?;
    // Every crate's examples are part of the documentation: they must run. They were
    // built above with the workspace's features; `cargo run -p` would rebuild each
    // crate's dependencies with its own feature set (minutes on 2 cores).
    for example in ["dtypes", "hdf5_arrays", "zarr_stores", "convert_and_validate", "plan_and_concat"] {
        run(Command::new(root().join("target/debug/examples").join(example)).current_dir(root()))?;
    }
    // The adcat binary was built above too.
    install_python_package(&vpy)?;
    oracle_suites(&vpy)?;
    eprintln!("xtask: all tests passed");
    Ok(())
}

fn demo() -> Result<()> {
    ensure_hdf5()?;
    run(cargo().args(["build", "--locked", "-p", "adcat-cli"]))?;
    let bin = root().join("target/debug/adcat");
    let dir = root().join("target/demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let d = |name: &str| dir.join(name).display().to_string();
    let adcat = |args: &[&str]| -> Result<()> { run(Command::new(&bin).args(args)) };
    // Sample inputs written by adcat's own Rust writers (no Python involved).
    adcat(&["generate", &d("a.h5ad"), "--cells", "2000", "--genes", "500", "--seed", "1"])?;
    adcat(&["generate", &d("b.zarr"), "--cells", "1500", "--genes", "450", "--seed", "2"])?;
    adcat(&["convert", &d("a.h5ad"), &d("a.zarr")])?;
    adcat(&["convert", &d("b.zarr"), &d("b_v2.zarr"), "--zarr-format", "2"])?;
    adcat(&["convert", &d("b_v2.zarr"), &d("b.h5ad"), "--compression", "gzip:4"])?;
    // The plan first (reads metadata only, writes nothing), then the job with progress.
    adcat(&["plan", &d("a.h5ad"), &d("b.zarr"), "-o", &d("ab.h5ad"), "--join", "outer", "--label", "batch", "--keys", "a,b"])?;
    adcat(&["-v", "concat", &d("a.h5ad"), &d("b.zarr"), "-o", &d("ab.h5ad"), "--join", "outer", "--label", "batch", "--keys", "a,b"])?;
    adcat(&["validate", &d("ab.h5ad")])?;
    adcat(&["inspect", &d("ab.h5ad")])?;
    eprintln!("xtask: demo outputs are in {}", dir.display());
    Ok(())
}

/// Peak RSS (KiB) and wall seconds of a command, from GNU time.
fn measure(cmd: &mut Command) -> Result<(u64, f64)> {
    let out = Command::new("/usr/bin/time").arg("-v").arg(cmd.get_program()).args(cmd.get_args()).output().context("running /usr/bin/time (Debian package `time`)")?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{} failed: {err}", show(cmd));
    }
    let field = |name: &str| err.lines().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()));
    let rss = field("Maximum resident set size (kbytes):").and_then(|v| v.parse().ok()).unwrap_or(0);
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):")
        .map(|v| v.split(':').fold(0.0, |acc, p| acc * 60.0 + p.parse::<f64>().unwrap_or(0.0)))
        .unwrap_or(0.0);
    Ok((rss, wall))
}

/// Peak memory of `adcat concat` must stay flat as inputs grow: run the same job on
/// inputs of N and 4N cells under one budget and print both peaks.
fn bench_memory() -> Result<()> {
    ensure_hdf5()?;
    run(cargo().args(["build", "--release", "--locked", "-p", "adcat-cli"]))?;
    let bin = root().join("target/release/adcat");
    let dir = root().join("target/bench-memory");
    std::fs::create_dir_all(&dir)?;
    let budget = "256MiB";
    println!("| cells per input x 4 inputs | input size | --max-memory | peak RSS | wall |");
    println!("|---|---|---|---|---|");
    for cells in [25_000u64, 100_000, 200_000] {
        let mut inputs = vec![];
        for i in 0..4u64 {
            let p = dir.join(format!("in_{cells}_{i}.h5ad"));
            if !p.exists() {
                run(Command::new(&bin).args(["generate", "-q"]).arg(&p).args([
                    "--cells", &cells.to_string(), "--genes", "2000", "--seed", &i.to_string(), "--gene-offset", &(i * 100).to_string(),
                ]))?;
            }
            inputs.push(p);
        }
        let size: u64 = inputs.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
        let out = dir.join(format!("out_{cells}.zarr"));
        let mut cmd = Command::new(&bin);
        cmd.args(["concat", "-q", "--force", "--join", "outer", "--max-memory", budget, "-o"]).arg(&out).args(&inputs);
        let (rss, wall) = measure(&mut cmd)?;
        println!("| {cells} | {:.0} MB | {budget} | {:.0} MB | {wall:.1} s |", size as f64 / 1e6, rss as f64 / 1024.0);
    }
    Ok(())
}

/// Bytes of a file, or of every file under a directory.
fn dir_size(p: &Path) -> u64 {
    if p.is_dir() {
        std::fs::read_dir(p).map(|d| d.filter_map(|e| e.ok()).map(|e| dir_size(&e.path())).sum()).unwrap_or(0)
    } else {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }
}

fn rm(p: &Path) {
    let _ = if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
}

/// Generate (once, cached under target/bench-data) a set of inputs.
fn gen_set(bin: &Path, dir: &Path, tag: &str, n: usize, cells: u64, genes: u64, extra: &dyn Fn(usize) -> Vec<String>) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    for i in 0..n {
        let p = dir.join(format!("{tag}_{i}.h5ad"));
        if !p.exists() {
            let tmp = dir.join(format!(".{tag}_{i}.h5ad"));
            run(Command::new(bin).args(["generate", "-q", "--force"]).arg(&tmp).args(["--cells", &cells.to_string(), "--genes", &genes.to_string(), "--seed", &i.to_string()]).args(extra(i)))?;
            std::fs::rename(&tmp, &p)?;
        }
        out.push(p);
    }
    Ok(out)
}

/// `cargo xtask bench-s3`: concatenations into and out of a real S3 server (SeaweedFS
/// on 127.0.0.1) next to plain uploads and downloads of the same bytes; the script
/// (bench_s3.py) starts and stops the server.
fn bench_s3(bin: &Path, vpy: &Path, root: &Path) -> Result<()> {
    let work = root.join("target/bench-work/s3");
    std::fs::create_dir_all(&work)?;
    let script = work.join("bench_s3.py");
    std::fs::write(&script, include_str!("bench_s3.py"))?;
    let rounds = std::env::var("ADCAT_BENCH_REPEAT").unwrap_or_else(|_| "5".into());
    run(Command::new(vpy).arg(&script).arg(bin).arg(&work).arg(rounds))
}

/// `cargo xtask bench-dask`: adcat.dask on LocalClusters of 1, 2 and 4 worker processes
/// next to the single-process `adcat concat` and `cp` (bench_dask.py); the Python
/// package is built in release mode into the oracle venv first (`cargo xtask test`
/// puts the debug build back).
fn bench_dask(bin: &Path, vpy: &Path, root: &Path) -> Result<()> {
    install_python_package_with(vpy, &["--release"])?;
    let work = root.join("target/bench-work/dask");
    std::fs::create_dir_all(&work)?;
    let script = work.join("bench_dask.py");
    std::fs::write(&script, include_str!("bench_dask.py"))?;
    let rounds = std::env::var("ADCAT_BENCH_REPEAT").unwrap_or_else(|_| "5".into());
    run(Command::new(vpy).arg(&script).arg(bin).arg(&work).arg(rounds))
}

/// The benches' common set-up: HDF5, GNU time and the oracle venv, and a release build;
/// then `f(adcat binary, venv python, repository root)`.
fn with_bench_env(f: impl FnOnce(&Path, &Path, &Path) -> Result<()>) -> Result<()> {
    ensure_hdf5()?;
    ensure_time()?;
    let vpy = ensure_venv()?;
    run(cargo().args(["build", "--release", "--locked", "-p", "adcat-cli"]))?;
    f(&root().join("target/release/adcat"), &vpy, &root())
}

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "test" => test(),
        "conformance" => {
            ensure_hdf5()?;
            let vpy = ensure_venv()?;
            conformance(&vpy)
        }
        "demo" => demo(),
        "wheel" => wheel::wheel(),
        "bench-memory" => bench_memory(),
        // adcat against its floors and anndata's concat_on_disk (see bench.rs).
        "bench" => with_bench_env(bench::bench),
        "bench-scale" => with_bench_env(bench_scale::bench_scale),
        "bench-jobs" => with_bench_env(bench_jobs::bench_jobs),
        "bench-append" => with_bench_env(bench_append::bench_append),
        "bench-shuffle" => with_bench_env(bench_shuffle::bench_shuffle),
        "bench-virtual" => with_bench_env(bench_virtual::bench_virtual),
        "bench-s3" => with_bench_env(bench_s3),
        "bench-dask" => with_bench_env(bench_dask),
        "man" => {
            run(cargo().args(["build", "--locked", "-p", "adcat-cli"]))?;
            let dir = root().join("target/man");
            std::fs::create_dir_all(&dir)?;
            let out = Command::new(root().join("target/debug/adcat")).arg("man").output()?;
            if !out.status.success() {
                bail!("adcat man failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::fs::write(dir.join("adcat.1"), out.stdout)?;
            eprintln!("xtask: wrote {} (view with `man -l`)", dir.join("adcat.1").display());
            Ok(())
        }
        "fuzz" => {
            ensure_hdf5()?;
            let iters = std::env::var("ADCAT_FUZZ_ITERS").unwrap_or_else(|_| "3000".into());
            eprintln!("xtask: fuzzing with ADCAT_FUZZ_ITERS={iters} per target (seed ADCAT_FUZZ_SEED)");
            run(cargo().args(["test", "--release", "--locked", "-p", "adcat-format", "--test", "fuzz"]).env("ADCAT_FUZZ_ITERS", iters))
        }
        "setup" => {
            ensure_hdf5()?;
            ensure_venv().map(|_| ())
        }
        _ => {
            eprint!("{HELP}");
            if task.is_empty() || task == "help" || task == "--help" {
                Ok(())
            } else {
                bail!("unknown task {task:?}")
            }
        }
    }
}
