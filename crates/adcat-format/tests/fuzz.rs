#![allow(clippy::unwrap_used)] // test harness
//! Robustness of the readers: damaged metadata and attributes never make adcat panic,
//! hang or allocate without bound (every outcome is `Ok` or a typed error), and random
//! AnnData round-trips through every backend.
//!
//! A seeded mutation fuzzer: a small valid store is written per backend, then one of its
//! metadata files (`zarr.json`, `.zarray`, `.zattrs`, `.zgroup`, consolidated metadata;
//! for HDF5 an attribute) is damaged per iteration (bytes flipped, truncated, a JSON
//! value replaced by a hostile one, removed) and the store is opened, inspected,
//! validated (deep) and converted. Iterations per backend: `ADCAT_FUZZ_ITERS` (default
//! 150; `cargo xtask fuzz` runs thousands), seed `ADCAT_FUZZ_SEED`.

use adcat_format::frame::{Column, DataFrame};
use adcat_format::sparse::{CsMatrix, SparseFormat};
use adcat_format::{convert, inspect, validate, NoProgress, WriteOptions};
use adcat_hdf5::Hdf5Store;
use adcat_store::{ArrayData, AttrValue, Attrs, Store};
use adcat_zarr::{ZarrStore, ZarrVersion};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// A single case taking longer than this counts as a hang.
const HANG: Duration = Duration::from_secs(20);

fn iters() -> usize {
    std::env::var("ADCAT_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(150)
}

fn seed() -> u64 {
    std::env::var("ADCAT_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed)
}

fn write_base(s: &dyn Store, n: usize, rng: &mut SmallRng) {
    let o = WriteOptions { max_memory: 1 << 20, chunk_bytes: 64, shard_bytes: 256, ..Default::default() };
    adcat_format::write_root(s).unwrap();
    let mut obs = DataFrame::with_index((0..n).map(|i| format!("c{i}")).collect());
    obs.columns = vec![
        ("x".into(), Column::Array(ArrayData::from_vec((0..n).map(|_| rng.random::<f64>()).collect::<Vec<_>>()))),
        (
            "ct".into(),
            Column::Categorical {
                codes: ArrayData::from_vec((0..n).map(|i| (i % 3) as i8 - 1).collect::<Vec<_>>()),
                categories: ArrayData::from_vec(vec!["a".to_string(), "b".into()]),
                ordered: false,
            },
        ),
        ("ni".into(), Column::NullableInteger { values: ArrayData::from_vec((0..n as i32).collect::<Vec<_>>()), mask: (0..n).map(|i| i % 4 == 0).collect() }),
    ];
    obs.write(s, "obs", &o).unwrap();
    DataFrame::with_index((0..4).map(|i| format!("g{i}")).collect()).write(s, "var", &o).unwrap();
    let m = random_csr(n, 4, rng);
    m.write(s, "X", &o).unwrap();
    adcat_format::frame::write_dict(s, "layers").unwrap();
    m.write(s, "layers/counts", &o).unwrap();
    adcat_format::frame::write_dict(s, "uns").unwrap();
    adcat_format::frame::write_array(s, "uns/arr", &ArrayData::from_vec(vec![1i64, 2, 3]), &o).unwrap();
    s.flush().unwrap();
}

fn random_csr(rows: usize, cols: usize, rng: &mut SmallRng) -> CsMatrix {
    let mut indptr = vec![0i64];
    let (mut indices, mut data) = (vec![], vec![]);
    for _ in 0..rows {
        for c in 0..cols {
            if rng.random_bool(0.4) {
                indices.push(c as i32);
                data.push(rng.random_range(-5.0f32..5.0));
            }
        }
        indptr.push(indices.len() as i64);
    }
    CsMatrix { format: SparseFormat::Csr, shape: [rows as u64, cols as u64], data: ArrayData::from_vec(data), indices: ArrayData::from_vec(indices), indptr: ArrayData::from_vec(indptr) }
}

/// Open, inspect, validate and convert a (possibly damaged) store; only panics matter.
fn exercise(path: PathBuf, out: PathBuf) {
    let store: Box<dyn Store> = if path.is_dir() {
        match ZarrStore::open(&path) {
            Ok(s) => Box::new(s),
            Err(_) => return,
        }
    } else {
        match Hdf5Store::open(&path) {
            Ok(s) => Box::new(s),
            Err(_) => return,
        }
    };
    let _ = inspect::inspect(store.as_ref());
    let _ = validate::validate(store.as_ref(), true);
    if let Ok(dst) = ZarrStore::create(&out, ZarrVersion::V3) {
        let o = WriteOptions { max_memory: 1 << 20, ..Default::default() };
        let _ = convert(store.as_ref(), &dst, &o, &NoProgress);
    }
}

/// Run `exercise` on a thread with a deadline; Err describes a panic or a hang.
fn guarded(path: &Path, out: &Path) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let (p, o) = (path.to_path_buf(), out.to_path_buf());
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(move || exercise(p, o));
        let _ = tx.send(r.map_err(|e| e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()));
    });
    match rx.recv_timeout(HANG) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(msg)) => Err(format!("panicked: {msg}")),
        Err(_) => Err(format!("no result within {HANG:?} (hang)")),
    }
}

/// Values that break naive readers: wrong types, negatives, overflowing sizes, deep
/// nesting.
fn hostile(rng: &mut SmallRng) -> Value {
    let pick = [
        json!(null),
        json!(true),
        json!(-1),
        json!(0),
        json!(3),
        json!(100_000),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e308),
        json!(""),
        json!("<f8"),
        json!("csr_matrix"),
        json!("9.9.9"),
        json!([]),
        json!([-5, 3]),
        json!([u64::MAX, 2]),
        json!([0]),
        json!({}),
        json!({"name": "bytes"}),
        json!([[[[[[[[1]]]]]]]]),
    ];
    pick[rng.random_range(0..pick.len())].clone()
}

fn mutate_json(v: &mut Value, rng: &mut SmallRng) {
    let depth = rng.random_range(0..4);
    mutate_at(v, rng, depth);
}

/// Descend `depth` levels at random, then replace (or drop an entry of) that node.
fn mutate_at(node: &mut Value, rng: &mut SmallRng, depth: usize) {
    if depth > 0 {
        match node {
            Value::Object(m) if !m.is_empty() => {
                let k = m.keys().nth(rng.random_range(0..m.len())).cloned().unwrap();
                return mutate_at(m.get_mut(&k).unwrap(), rng, depth - 1);
            }
            Value::Array(a) if !a.is_empty() => {
                let i = rng.random_range(0..a.len());
                return mutate_at(&mut a[i], rng, depth - 1);
            }
            _ => {}
        }
    }
    if let Value::Object(m) = node {
        if !m.is_empty() && rng.random_bool(0.2) {
            let k = m.keys().nth(rng.random_range(0..m.len())).cloned().unwrap();
            m.remove(&k);
            return;
        }
    }
    *node = hostile(rng);
}

fn mutate_file(f: &Path, rng: &mut SmallRng) -> String {
    let bytes = std::fs::read(f).unwrap();
    match rng.random_range(0..4) {
        0 => {
            let mut b = bytes;
            for _ in 0..rng.random_range(1..8) {
                if !b.is_empty() {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
            }
            std::fs::write(f, b).unwrap();
            "bytes flipped".into()
        }
        1 => {
            let cut = rng.random_range(0..bytes.len().max(1));
            std::fs::write(f, &bytes[..cut]).unwrap();
            format!("truncated at {cut}")
        }
        2 => match serde_json::from_slice::<Value>(&bytes) {
            Ok(mut v) => {
                mutate_json(&mut v, rng);
                std::fs::write(f, serde_json::to_vec(&v).unwrap()).unwrap();
                format!("json value replaced: {}", serde_json::to_string(&v).unwrap().chars().take(300).collect::<String>())
            }
            Err(_) => "unparsable already".into(),
        },
        _ => {
            std::fs::remove_file(f).unwrap();
            "removed".into()
        }
    }
}

fn metadata_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            metadata_files(&p, out);
        } else if matches!(p.file_name().and_then(|n| n.to_str()), Some("zarr.json" | ".zarray" | ".zattrs" | ".zgroup" | ".zmetadata")) {
            out.push(p);
        }
    }
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let d = dst.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &d);
        } else {
            std::fs::copy(&p, &d).unwrap();
        }
    }
}

fn fuzz_zarr(version: ZarrVersion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(seed() ^ version as u64);
    let base = tmp.path().join("base.zarr");
    write_base(&ZarrStore::create(&base, version).unwrap(), 9, &mut rng);
    let mut files = vec![];
    metadata_files(&base, &mut files);
    let mut failures = vec![];
    for it in 0..iters() {
        let work = tmp.path().join(format!("w{it}.zarr"));
        copy_dir(&base, &work);
        // Damage one or two files; consolidated metadata is dropped half the time so
        // that the per-node documents are read.
        let mut what = vec![];
        for _ in 0..rng.random_range(1..3) {
            let f = &files[rng.random_range(0..files.len())];
            let target = work.join(f.strip_prefix(&base).unwrap());
            if target.exists() {
                what.push(format!("{}: {}", f.strip_prefix(&base).unwrap().display(), mutate_file(&target, &mut rng)));
            }
        }
        if rng.random_bool(0.5) {
            let _ = std::fs::remove_file(work.join(".zmetadata"));
            if let Ok(mut v) = serde_json::from_slice::<Value>(&std::fs::read(work.join("zarr.json")).unwrap_or_default()) {
                if let Some(m) = v.as_object_mut() {
                    m.remove("consolidated_metadata");
                }
                std::fs::write(work.join("zarr.json"), serde_json::to_vec(&v).unwrap()).unwrap();
            }
        }
        if let Err(e) = guarded(&work, &tmp.path().join(format!("o{it}.zarr"))) {
            failures.push(format!("iteration {it} ({}): {e}", what.join("; ")));
        }
        let _ = std::fs::remove_dir_all(&work);
        let _ = std::fs::remove_dir_all(tmp.path().join(format!("o{it}.zarr")));
    }
    assert!(failures.is_empty(), "{} of {} damaged stores broke adcat:\n{}", failures.len(), iters(), failures.join("\n"));
}

#[test]
fn damaged_zarr_v2_metadata_is_an_error_not_a_crash() {
    fuzz_zarr(ZarrVersion::V2);
}

#[test]
fn damaged_zarr_v3_metadata_is_an_error_not_a_crash() {
    fuzz_zarr(ZarrVersion::V3);
}

/// HDF5 attributes replaced by hostile values (the file format itself is libhdf5's to
/// check; adcat's part is what it makes of the attributes).
#[test]
fn hostile_hdf5_attributes_are_an_error_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(seed());
    let base = tmp.path().join("base.h5ad");
    write_base(&Hdf5Store::create(&base).unwrap(), 9, &mut rng);
    let nodes = ["", "obs", "obs/ct", "obs/ni", "var", "X", "layers/counts", "uns", "uns/arr", "obs/x", "X/indptr"];
    let names = ["encoding-type", "encoding-version", "shape", "_index", "column-order", "ordered"];
    let values = [
        AttrValue::Null,
        AttrValue::Int(-1),
        AttrValue::Int(i64::MAX),
        AttrValue::String("csc_matrix".into()),
        AttrValue::String("dataframe".into()),
        AttrValue::String("".into()),
        AttrValue::String("99.0.0".into()),
        AttrValue::Ints(vec![i64::MAX, i64::MAX]),
        AttrValue::Ints(vec![-3, 2]),
        AttrValue::Ints(vec![]),
        AttrValue::Strings(vec!["nope".into(), "x".into()]),
        AttrValue::Float(f64::NAN),
        AttrValue::Bool(true),
    ];
    let mut failures = vec![];
    for it in 0..iters() {
        let work = tmp.path().join(format!("w{it}.h5ad"));
        std::fs::copy(&base, &work).unwrap();
        let mut what = vec![];
        {
            let s = Hdf5Store::open_rw(&work).unwrap();
            for _ in 0..rng.random_range(1..3) {
                let (n, a) = (nodes[rng.random_range(0..nodes.len())], names[rng.random_range(0..names.len())]);
                let v = values[rng.random_range(0..values.len())].clone();
                what.push(format!("/{n}@{a} = {v:?}"));
                let mut attrs = Attrs::new();
                attrs.insert(a.into(), v);
                let _ = s.set_attrs(n, &attrs);
            }
            s.flush().unwrap();
        }
        if let Err(e) = guarded(&work, &tmp.path().join(format!("o{it}.zarr"))) {
            failures.push(format!("iteration {it} ({}): {e}", what.join("; ")));
        }
        let _ = std::fs::remove_file(&work);
        let _ = std::fs::remove_dir_all(tmp.path().join(format!("o{it}.zarr")));
    }
    assert!(failures.is_empty(), "{} of {} damaged stores broke adcat:\n{}", failures.len(), iters(), failures.join("\n"));
}

/// Random AnnData (sizes, sparsity, chunking, budget) round-trips through every backend
/// and conversions between them keep every value.
#[test]
fn random_anndata_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(seed() ^ 0xabc);
    for it in 0..(iters() / 10).max(5) {
        let n = rng.random_range(0..40);
        let src = tmp.path().join(format!("src{it}.zarr"));
        let s = ZarrStore::create(&src, if rng.random_bool(0.5) { ZarrVersion::V2 } else { ZarrVersion::V3 }).unwrap();
        write_base(&s, n, &mut rng);
        drop(s);
        let src = ZarrStore::open(&src).unwrap();
        let o = WriteOptions { max_memory: 1 << 20, chunk_bytes: rng.random_range(8..256), shard_bytes: rng.random_range(256..4096), ..Default::default() };
        let h5 = tmp.path().join(format!("a{it}.h5ad"));
        convert(&src, &Hdf5Store::create(&h5).unwrap(), &o, &NoProgress).unwrap();
        let v3 = tmp.path().join(format!("b{it}.zarr"));
        convert(&Hdf5Store::open(&h5).unwrap(), &ZarrStore::create(&v3, ZarrVersion::V3).unwrap(), &o, &NoProgress).unwrap();
        let back = ZarrStore::open(&v3).unwrap();
        for p in ["obs/x", "obs/ct/codes", "obs/ni/values", "obs/ni/mask", "X/data", "X/indices", "X/indptr", "layers/counts/data", "uns/arr"] {
            assert_eq!(src.read_all(p).unwrap(), back.read_all(p).unwrap(), "iteration {it}: {p} (n = {n})");
        }
        assert!(validate::validate(&back, true).is_valid(), "iteration {it}: {:?}", validate::validate(&back, true).problems);
    }
}
