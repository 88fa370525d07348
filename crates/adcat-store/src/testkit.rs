//! The backend conformance kit: every backend runs [`run_all`] unchanged.
//!
//! Each check takes a fresh, empty, writable store from the factory, exercises one part of
//! the [`Store`] contract and panics with a message naming the check on failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::*;
use ndarray::{ArrayD, IxDyn};

/// A factory for fresh empty stores (one per check). `name` is unique per check.
pub type Factory<'a> = &'a dyn Fn(&str) -> Box<dyn Store>;

/// Every compression setting a backend of `kind` must write and read back.
pub fn compressions_for(kind: StoreKind) -> Vec<Compression> {
    match kind {
        StoreKind::Hdf5 => vec![Compression::None, Compression::Gzip(4), Compression::Lzf],
        StoreKind::ZarrV2 | StoreKind::ZarrV3 => vec![
            Compression::None,
            Compression::Gzip(4),
            Compression::Zstd(3),
            Compression::Blosc { cname: "lz4".into(), clevel: 5, shuffle: 1 },
        ],
    }
}

/// Run every check.
pub fn run_all(make: Factory<'_>) {
    groups(make);
    attributes(make);
    arrays_all_dtypes(make);
    scalars_and_null(make);
    boxes_and_resize(make);
    compression_and_chunks(make);
    strings(make);
    records(make);
    errors(make);
}

fn sample(dtype: DType, shape: &[u64]) -> ArrayData {
    let n: u64 = shape.iter().product();
    let sh: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    macro_rules! mk {
        ($t:ty, $f:expr) => {
            <$t as Element>::wrap(ArrayD::from_shape_vec(IxDyn(&sh), (0..n).map($f).collect()).unwrap())
        };
    }
    match dtype {
        DType::Bool => mk!(bool, |i| i % 3 == 0),
        DType::I8 => mk!(i8, |i| (i as i64 % 200 - 100) as i8),
        DType::I16 => mk!(i16, |i| (i as i64 * 37 - 1000) as i16),
        DType::I32 => mk!(i32, |i| (i as i64 * 100_003 - 7) as i32),
        DType::I64 => mk!(i64, |i| i as i64 * 10_000_000_019 - 3),
        DType::U8 => mk!(u8, |i| (i % 256) as u8),
        DType::U16 => mk!(u16, |i| (i * 301 % 65536) as u16),
        DType::U32 => mk!(u32, |i| (i * 4_000_037 % (1 << 32)) as u32),
        DType::U64 => mk!(u64, |i| u64::MAX - i),
        DType::F32 => mk!(f32, |i| i as f32 * 0.5 - 3.25),
        DType::F64 => mk!(f64, |i| if i == 1 { f64::NAN } else { i as f64 / 3.0 }),
        DType::C64 => mk!(Complex32, |i| Complex32::new(i as f32, -(i as f32) * 0.5)),
        DType::C128 => mk!(Complex64, |i| Complex64::new(i as f64 / 7.0, 1e300)),
        DType::String => mk!(String, |i| format!("s{i}-é✓")),
    }
}

fn same(a: &ArrayData, b: &ArrayData) -> bool {
    // NaN-aware equality.
    match (a, b) {
        (ArrayData::F64(x), ArrayData::F64(y)) => {
            x.shape() == y.shape() && x.iter().zip(y).all(|(p, q)| p == q || (p.is_nan() && q.is_nan()))
        }
        (ArrayData::F32(x), ArrayData::F32(y)) => {
            x.shape() == y.shape() && x.iter().zip(y).all(|(p, q)| p == q || (p.is_nan() && q.is_nan()))
        }
        _ => a == b,
    }
}

/// Groups: create (nested, idempotent), list (sorted), exists, delete.
pub fn groups(make: Factory<'_>) {
    let s = make("groups");
    assert_eq!(s.node_kind("").unwrap(), Some(NodeKind::Group), "root is a group");
    s.create_group("a").unwrap();
    s.create_group("a/b").unwrap();
    s.create_group("a/b").unwrap(); // idempotent
    s.create_group("/c/").unwrap();
    s.create_array("a/x", &ArraySpec::new(DType::F32, vec![3])).unwrap();
    assert_eq!(s.list("").unwrap(), vec!["a", "c"]);
    assert_eq!(s.list("a").unwrap(), vec!["b", "x"]);
    assert_eq!(s.node_kind("a/b").unwrap(), Some(NodeKind::Group));
    assert_eq!(s.node_kind("a/x").unwrap(), Some(NodeKind::Array));
    assert_eq!(s.node_kind("nope").unwrap(), None);
    assert_eq!(s.node_kind("a/nope/deeper").unwrap(), None);
    assert!(s.exists("/a/b").unwrap());
    s.delete("a").unwrap();
    assert!(!s.exists("a").unwrap());
    assert!(!s.exists("a/x").unwrap());
    assert_eq!(s.list("").unwrap(), vec!["c"]);
    // A deleted path can be reused for a different kind of node.
    s.create_array("a", &ArraySpec::new(DType::I8, vec![2])).unwrap();
    assert_eq!(s.node_kind("a").unwrap(), Some(NodeKind::Array));
    s.flush().unwrap();
}

/// Attributes of every typed kind, on groups, arrays and the root; replace semantics.
pub fn attributes(make: Factory<'_>) {
    let s = make("attributes");
    s.create_group("g").unwrap();
    s.create_array("g/arr", &ArraySpec::new(DType::I32, vec![2])).unwrap();
    let mut attrs = Attrs::new();
    attrs.insert("encoding-type".into(), "csr_matrix".into());
    attrs.insert("unicode".into(), "ünïcødé ✓".into());
    attrs.insert("shape".into(), AttrValue::Ints(vec![10, 20]));
    attrs.insert("ordered".into(), AttrValue::Bool(true));
    attrs.insert("int".into(), AttrValue::Int(-42));
    attrs.insert("float".into(), AttrValue::Float(1.5));
    attrs.insert("floats".into(), AttrValue::Floats(vec![0.5, -2.25]));
    attrs.insert("bools".into(), AttrValue::Bools(vec![true, false]));
    attrs.insert("column-order".into(), AttrValue::Strings(vec!["a".into(), "b ✓".into()]));
    for path in ["", "g", "g/arr"] {
        s.set_attrs(path, &attrs).unwrap();
        let back = s.attrs(path).unwrap();
        for (k, v) in &attrs {
            assert_eq!(back.get(k), Some(v), "attribute {k} on {path:?}");
        }
    }
    // Replacing one attribute keeps the others.
    let mut one = Attrs::new();
    one.insert("int".into(), AttrValue::Int(7));
    s.set_attrs("g", &one).unwrap();
    let back = s.attrs("g").unwrap();
    assert_eq!(back.get("int"), Some(&AttrValue::Int(7)));
    assert_eq!(back.get("encoding-type").and_then(AttrValue::as_str), Some("csr_matrix"));
    // Empty string list (anndata's empty column-order) reads back as an empty list.
    let mut empty = Attrs::new();
    empty.insert("column-order".into(), AttrValue::Strings(vec![]));
    s.set_attrs("g", &empty).unwrap();
    assert_eq!(s.attr("g", "column-order").unwrap().and_then(|v| v.as_strings()), Some(vec![]));
    // Nested maps: either typed back or as JSON text (HDF5 has no map attributes).
    let mut nested = Attrs::new();
    let mut m = std::collections::BTreeMap::new();
    m.insert("k".into(), AttrValue::Int(1));
    nested.insert("map".into(), AttrValue::Map(m.clone()));
    s.set_attrs("g", &nested).unwrap();
    match s.attr("g", "map").unwrap().unwrap() {
        AttrValue::Map(back) => assert_eq!(back, m),
        AttrValue::String(json) => assert_eq!(json.replace(' ', ""), r#"{"k":1}"#),
        other => panic!("map attribute came back as {other:?}"),
    }
    s.flush().unwrap();
}

/// Every dtype in 1-d and 2-d, written whole and read back.
pub fn arrays_all_dtypes(make: Factory<'_>) {
    let s = make("dtypes");
    for dtype in ALL_DTYPES {
        for shape in [vec![7u64], vec![5, 3], vec![0], vec![2, 3, 4]] {
            let path = format!("{}_{}", dtype.name(), shape.len());
            let path = if shape == vec![0] { format!("{path}_empty") } else { path };
            let data = sample(dtype, &shape);
            s.create_array(&path, &ArraySpec::new(dtype, shape.clone())).unwrap();
            s.write(&path, &vec![0; shape.len()], &data).unwrap();
            let meta = s.array_meta(&path).unwrap();
            assert_eq!(meta.dtype, dtype, "{path} dtype");
            assert_eq!(meta.shape, shape, "{path} shape");
            assert!(!meta.null);
            let back = s.read_all(&path).unwrap();
            assert!(same(&back, &data), "{path}: {back:?} != {data:?}");
        }
    }
    s.flush().unwrap();
}

/// 0-d arrays of every dtype and the null dataspace.
pub fn scalars_and_null(make: Factory<'_>) {
    let s = make("scalars");
    for dtype in ALL_DTYPES {
        let path = format!("scalar_{}", dtype.name());
        let data = sample(dtype, &[]);
        s.create_array(&path, &ArraySpec::new(dtype, vec![])).unwrap();
        s.write(&path, &[], &data).unwrap();
        assert_eq!(s.array_meta(&path).unwrap().shape, Vec::<u64>::new());
        assert!(same(&s.read(&path, &[], &[]).unwrap(), &data), "{path}");
    }
    let spec = ArraySpec { null: true, ..ArraySpec::new(DType::F32, vec![]) };
    s.create_array("null", &spec).unwrap();
    let meta = s.array_meta("null").unwrap();
    if s.kind() == StoreKind::Hdf5 {
        assert!(meta.null, "HDF5 null dataspace");
        assert_eq!(s.read_all("null").unwrap().len(), 0);
    } else {
        assert_eq!(meta.shape, Vec::<u64>::new(), "null is a 0-d array in zarr");
    }
    s.flush().unwrap();
}

/// Partial boxes, row ranges and growth along axis 0, with chunked storage.
pub fn boxes_and_resize(make: Factory<'_>) {
    let s = make("boxes");
    for dtype in [DType::F64, DType::I32, DType::String, DType::Bool] {
        let path = format!("grow_{}", dtype.name());
        let spec = ArraySpec::new(dtype, vec![0, 3]).chunks(vec![4, 3]).resizable(true);
        s.create_array(&path, &spec).unwrap();
        let full = sample(dtype, &[10, 3]);
        // Append in uneven blocks, crossing chunk boundaries.
        let mut at = 0u64;
        for len in [3u64, 5, 2] {
            s.resize(&path, &[at + len, 3]).unwrap();
            s.write_rows(&path, at, &full.slice_rows(at as usize, (at + len) as usize)).unwrap();
            at += len;
        }
        assert_eq!(s.array_meta(&path).unwrap().shape, vec![10, 3]);
        assert!(same(&s.read_all(&path).unwrap(), &full), "{path} after appends");
        assert!(same(&s.read_rows(&path, 2, 9).unwrap(), &full.slice_rows(2, 9)), "{path} rows");
        // An inner box.
        let b = s.read(&path, &[3, 1], &[4, 2]).unwrap();
        assert_eq!(b.shape(), vec![4, 2]);
        // Overwrite an inner box and read it back.
        let patch = sample(dtype, &[2, 2]);
        s.write(&path, &[5, 0], &patch).unwrap();
        assert!(same(&s.read(&path, &[5, 0], &[2, 2]).unwrap(), &patch), "{path} patch");
        // Empty selections.
        assert_eq!(s.read(&path, &[10, 0], &[0, 3]).unwrap().len(), 0);
        // Rows of a larger block, written in place (no copy in the backends).
        let block = sample(dtype, &[6, 3]);
        s.write_rows_range(&path, 7, &block, 2..5).unwrap();
        assert!(same(&s.read_rows(&path, 7, 10).unwrap(), &block.slice_rows(2, 5)), "{path} row range");
        s.write_rows_range(&path, 0, &block, 4..4).unwrap();
        assert!(s.write_rows_range(&path, 0, &block, 4..7).is_err(), "{path}: range past the block");
        assert!(s.write_rows_range(&path, 9, &block, 0..2).is_err(), "{path}: rows past the array");
    }
    // Shrinking works too (used when an estimate was too large).
    s.resize("grow_float64", &[4, 3]).unwrap();
    assert_eq!(s.array_meta("grow_float64").unwrap().shape, vec![4, 3]);
    s.flush().unwrap();
}

/// Every compression the backend writes, with explicit chunks (and shards for zarr v3).
pub fn compression_and_chunks(make: Factory<'_>) {
    let s = make("compression");
    for (i, c) in compressions_for(s.kind()).into_iter().enumerate() {
        for dtype in [DType::F32, DType::I64, DType::String, DType::U8] {
            let path = format!("c{i}_{}", dtype.name());
            let mut spec = ArraySpec::new(dtype, vec![100, 2]).chunks(vec![16, 2]).compression(c.clone());
            if s.kind() == StoreKind::ZarrV3 {
                spec = spec.shards(vec![64, 2]);
            }
            s.create_array(&path, &spec).unwrap();
            let data = sample(dtype, &[100, 2]);
            s.write_rows(&path, 0, &data).unwrap();
            let meta = s.array_meta(&path).unwrap();
            assert_eq!(meta.chunks.as_deref(), Some(&[16u64, 2][..]), "{path} chunks");
            if c != Compression::None {
                assert_eq!(meta.compression, c, "{path} compression");
            }
            if s.kind() == StoreKind::ZarrV3 {
                assert_eq!(meta.shards.as_deref(), Some(&[64u64, 2][..]), "{path} shards");
            }
            assert!(same(&s.read_all(&path).unwrap(), &data), "{path}");
        }
    }
    s.flush().unwrap();
}

/// Variable-length UTF-8 strings: empty strings, long strings, non-ASCII.
pub fn strings(make: Factory<'_>) {
    let s = make("strings");
    let v: Vec<String> = vec!["".into(), "a".into(), "ünïcødé ✓ 日本".into(), "x".repeat(5000), "tab\tnl\n".into()];
    s.create_array("s", &ArraySpec::new(DType::String, vec![v.len() as u64])).unwrap();
    s.write_rows("s", 0, &ArrayData::from_vec(v.clone())).unwrap();
    assert_eq!(s.read_all("s").unwrap(), ArrayData::from_vec(v));
    s.flush().unwrap();
}

/// Record (structured) arrays: numeric, bool and string fields, packed like numpy.
pub fn records(make: Factory<'_>) {
    let s = make("records");
    let fields = vec![
        ("i".to_string(), ArrayData::from_vec(vec![1i64, -2, 3])),
        ("f".to_string(), ArrayData::from_vec(vec![0.5f32, 1.5, f32::NAN])),
        ("b".to_string(), ArrayData::from_vec(vec![true, false, true])),
        ("s".to_string(), ArrayData::from_vec(vec!["GAPDH".to_string(), "".into(), "日本".into()])),
        ("d".to_string(), ArrayData::from_vec(vec![1e300f64, -0.0, 2.0])),
    ];
    s.create_record("rec", &fields, &Compression::None).unwrap();
    assert!(s.is_record("rec").unwrap());
    let back = s.read_record("rec").unwrap();
    assert_eq!(back.len(), fields.len());
    for ((k1, v1), (k2, v2)) in fields.iter().zip(&back) {
        assert_eq!(k1, k2);
        assert!(same(v1, v2), "field {k1}: {v1:?} != {v2:?}");
    }
    s.create_array("plain", &ArraySpec::new(DType::F32, vec![2])).unwrap();
    assert!(!s.is_record("plain").unwrap());
    // Nested records: leaves named with FIELD_PATH_SEP, read back in the same order.
    let sep = crate::FIELD_PATH_SEP;
    let nested = vec![
        ("x".to_string(), ArrayData::from_vec(vec![1i32, 2])),
        (format!("pt{sep}u"), ArrayData::from_vec(vec![0.5f32, 2.5])),
        (format!("pt{sep}v{sep}deep"), ArrayData::from_vec(vec![7i64, 8])),
        (format!("pt{sep}w"), ArrayData::from_vec(vec!["a".to_string(), "bc".into()])),
        ("name".to_string(), ArrayData::from_vec(vec!["p".to_string(), "".into()])),
    ];
    s.create_record("nested", &nested, &Compression::None).unwrap();
    let back = s.read_record("nested").unwrap();
    assert_eq!(back.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), nested.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
    for ((k, v1), (_, v2)) in nested.iter().zip(&back) {
        assert!(same(v1, v2), "field {k}: {v1:?} != {v2:?}");
    }
    s.flush().unwrap();
}

/// Typed errors instead of panics.
pub fn errors(make: Factory<'_>) {
    let s = make("errors");
    s.create_array("a", &ArraySpec::new(DType::F32, vec![4])).unwrap();
    assert!(matches!(s.attrs("missing"), Err(StoreError::NotFound { .. })), "attrs of a missing node");
    assert!(s.array_meta("missing").is_err());
    assert!(s.read("a", &[2], &[3]).is_err(), "read past the end");
    assert!(s.read("a", &[0, 0], &[1, 1]).is_err(), "rank mismatch");
    let wrong = ArrayData::from_vec(vec![1i32, 2]);
    assert!(s.write("a", &[0], &wrong).is_err(), "dtype mismatch");
    assert!(s.write("a", &[3], &ArrayData::from_vec(vec![1f32, 2.0])).is_err(), "write past the end");
    assert!(s.create_array("a", &ArraySpec::new(DType::F32, vec![1])).is_err(), "create over an existing node");
    assert!(s.list("a").is_err(), "list of an array");
    s.flush().unwrap();
}
