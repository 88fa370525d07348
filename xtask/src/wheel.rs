//! `cargo xtask wheel`: the self-contained wheel of the Python package, and its checks.
//!
//! The wheel links HDF5 built from source (hdf5-metno's `static` feature, through the
//! package's `static-hdf5` feature), like h5py's wheels, so it installs and runs without
//! a system libhdf5. The task then proves it: `ldd` of the extension names no libhdf5,
//! and the wheel, installed into a fresh venv, runs the `adcat` command and the Python
//! API on sample data, with the system's libhdf5 made unloadable when the machine allows
//! it (a private mount namespace).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{ensure_venv, have, root, run, show};

/// cmake builds HDF5 from source; from PyPI when the machine has none.
const CMAKE: &str = "cmake==4.4.5";

/// Build the wheel into target/wheels and check it; returns its path.
pub fn wheel() -> Result<()> {
    let vpy = ensure_venv()?;
    let bin = vpy.parent().context("venv python has no directory")?.to_path_buf();
    if !have("cmake", &["--version"]) && !bin.join("cmake").exists() {
        eprintln!("xtask: cmake not found; installing {CMAKE} into the oracle venv (it builds HDF5 from source)");
        run(Command::new(&vpy).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", CMAKE]))?;
    }
    let out = root().join("target/wheels");
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    run(Command::new(bin.join("maturin"))
        .current_dir(root().join("crates/adcat-py"))
        .args(["build", "--release", "--locked", "--strip", "--features", "static-hdf5", "--out"])
        .arg(&out)
        .env("PATH", &path))?;
    let wheel = only_wheel(&out)?;
    check_wheel(&vpy, &wheel)?;
    eprintln!("xtask: {} is self-contained (no libhdf5 needed) and passed its checks", wheel.display());
    Ok(())
}

fn only_wheel(dir: &Path) -> Result<PathBuf> {
    let wheels: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "whl")).collect();
    match wheels.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one wheel in {}, found {}", dir.display(), wheels.len()),
    }
}

/// Install `wheel` into a fresh venv; check its extension's dynamic dependencies and run it.
fn check_wheel(vpy: &Path, wheel: &Path) -> Result<()> {
    let dir = root().join("target/wheel-check");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let venv = dir.join("venv");
    // A fresh venv without the oracle's packages: the wheel alone (it has no dependencies).
    run(Command::new(vpy).args(["-m", "venv"]).arg(&venv))?;
    let python = venv.join("bin/python");
    run(Command::new(&python).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]).arg(wheel))?;
    let site = Command::new(&python).args(["-c", "import sysconfig; print(sysconfig.get_path('platlib'))"]).output()?;
    let ext = find_extension(&PathBuf::from(String::from_utf8_lossy(&site.stdout).trim()).join("adcat"))?;
    let ldd = Command::new("ldd").arg(&ext).output().context("cannot run ldd")?;
    let deps = String::from_utf8_lossy(&ldd.stdout);
    eprintln!("xtask: ldd {}:\n{deps}", ext.display());
    if deps.contains("libhdf5") {
        bail!("the wheel's extension links the system libhdf5:\n{deps}");
    }
    smoke_test(&venv, &dir)
}

fn find_extension(pkg: &Path) -> Result<PathBuf> {
    std::fs::read_dir(pkg)
        .with_context(|| format!("the wheel has no package directory {}", pkg.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("_adcat") && n.to_string_lossy().ends_with(".so")))
        .with_context(|| format!("no _adcat extension in {}", pkg.display()))
}

/// The wheel's `adcat` command and Python API on generated inputs: generate, concatenate
/// h5ad + zarr into h5ad, plan, validate, convert. Hides the system libhdf5 when it can.
fn smoke_test(venv: &Path, dir: &Path) -> Result<()> {
    let script = r#"
import subprocess, sys
import adcat
d, cli = sys.argv[1], sys.argv[2]
for name, cells, genes, seed in (("a.h5ad", "300", "80", "1"), ("b.zarr", "200", "70", "2")):
    subprocess.run([cli, "generate", f"{d}/{name}", "--cells", cells, "--genes", genes, "--seed", seed], check=True)
adcat.concat_on_disk({"a": f"{d}/a.h5ad", "b": f"{d}/b.zarr"}, f"{d}/out.h5ad", join="outer", label="batch", index_unique="-")
assert adcat.validate(f"{d}/out.h5ad") == [], adcat.validate(f"{d}/out.h5ad")
plan = adcat.plan([f"{d}/a.h5ad", f"{d}/b.zarr"], f"{d}/x.h5ad", join="outer")
assert plan["shape"][0] == 500, plan["shape"]
adcat.convert(f"{d}/out.h5ad", f"{d}/out.zarr")
subprocess.run([cli, "validate", f"{d}/out.zarr"], check=True)
print("smoke test passed: shape", plan["shape"], "adcat", adcat.__version__)
"#;
    let mut cmd = hide_system_hdf5(&venv.join("bin/python"));
    cmd.arg("-c").arg(script).arg(dir).arg(venv.join("bin/adcat")).env_remove("LD_LIBRARY_PATH").env_remove("HDF5_DIR");
    run(&mut cmd)
}

/// `python`, run where the system's libhdf5 cannot be loaded (its files are covered
/// by /dev/null in a private mount namespace), when `unshare` is allowed here.
fn hide_system_hdf5(python: &Path) -> Command {
    let libs = system_hdf5_libs();
    let probe = Command::new("unshare").args(["--mount", "--map-root-user", "true"]).output();
    let allowed = probe.map(|o| o.status.success()).unwrap_or(false);
    if libs.is_empty() || !allowed {
        eprintln!("xtask: note: running the smoke test with the system libhdf5 in place (ldd above shows it is not linked)");
        return Command::new(python);
    }
    let mut sh = String::from("set -e; ");
    for lib in &libs {
        sh.push_str(&format!("mount --bind /dev/null '{}'; ", lib.display()));
    }
    sh.push_str("exec \"$0\" \"$@\"");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--map-root-user", "sh", "-c", &sh]).arg(python);
    eprintln!("xtask: hiding {} system libhdf5 file(s) from the smoke test: {}", libs.len(), show(&cmd));
    cmd
}

/// The system's libhdf5 shared objects, as the dynamic loader's cache lists them.
fn system_hdf5_libs() -> Vec<PathBuf> {
    let Ok(out) = Command::new("ldconfig").arg("-p").output() else { return vec![] };
    let mut libs: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with("libhdf5"))
        .filter_map(|l| l.rsplit("=> ").next().map(|p| PathBuf::from(p.trim())))
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    libs.sort();
    libs.dedup();
    libs
}
