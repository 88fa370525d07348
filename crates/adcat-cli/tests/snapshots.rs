#![allow(clippy::unwrap_used)] // test harness
//! What users read, pinned as snapshots (insta): `--help` of every command, the plan of
//! a concatenation (`--dry-run`), and `inspect`. A change to any of them shows up as a
//! snapshot diff to review (`cargo insta review`, or INSTA_UPDATE=always).

use std::path::Path;
use std::process::Command;

fn adcat(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_adcat")).args(args).current_dir(dir).env("NO_COLOR", "1").env("COLUMNS", "100").output().unwrap();
    assert!(out.status.success(), "adcat {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_texts() {
    let d = tempfile::tempdir().unwrap();
    insta::assert_snapshot!("help", adcat(d.path(), &["--help"]));
    for cmd in ["concat", "plan", "convert", "validate", "inspect", "job"] {
        insta::assert_snapshot!(format!("help_{cmd}"), adcat(d.path(), &[cmd, "--help"]));
    }
}

#[test]
fn dry_run_and_inspect() {
    let d = tempfile::tempdir().unwrap();
    adcat(d.path(), &["generate", "a.h5ad", "--cells", "300", "--genes", "40", "--seed", "1"]);
    adcat(d.path(), &["generate", "b.zarr", "--cells", "200", "--genes", "40", "--gene-offset", "10", "--seed", "2"]);
    insta::assert_snapshot!(
        "dry_run_outer",
        adcat(d.path(), &["concat", "a.h5ad", "b.zarr", "-o", "ab.h5ad", "--dry-run", "--join", "outer", "--label", "batch", "--keys", "a,b", "--uns-merge", "same"])
    );
    insta::assert_snapshot!("dry_run_inner", adcat(d.path(), &["plan", "a.h5ad", "b.zarr", "-o", "ab.zarr"]));
    insta::assert_snapshot!("inspect_h5ad", adcat(d.path(), &["inspect", "a.h5ad"]));
    insta::assert_snapshot!("inspect_zarr", adcat(d.path(), &["inspect", "b.zarr"]));
}
