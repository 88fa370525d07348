#![allow(clippy::unwrap_used)] // test helpers
//! Format-layer round trips on every backend: typed elements written, read back equal;
//! whole stores converted between every pair of formats with identical contents.

use adcat_format::frame::{read_index, write_array, write_dict, write_scalar, Column, DataFrame};
use adcat_format::sparse::{CsMatrix, SparseFormat, SparseMeta};
use adcat_format::{convert, detect, Encoding, NoProgress, WriteOptions};
use adcat_hdf5::Hdf5Store;
use adcat_store::{join_path, ArrayData, NodeKind, Store, StoreKind};
use adcat_zarr::{ZarrStore, ZarrVersion};
use std::path::Path;

fn create(kind: StoreKind, path: &Path) -> Box<dyn Store> {
    match kind {
        StoreKind::Hdf5 => Box::new(Hdf5Store::create(path.with_extension("h5ad")).unwrap()),
        StoreKind::ZarrV2 => Box::new(ZarrStore::create(path.with_extension("zarr"), ZarrVersion::V2).unwrap()),
        StoreKind::ZarrV3 => Box::new(ZarrStore::create(path.with_extension("zarr"), ZarrVersion::V3).unwrap()),
    }
}

const KINDS: [StoreKind; 3] = [StoreKind::Hdf5, StoreKind::ZarrV2, StoreKind::ZarrV3];

fn sample_frame(n: usize) -> DataFrame {
    let mut df = DataFrame::with_index((0..n).map(|i| format!("cell-{i}-ü")).collect());
    df.columns = vec![
        ("f".into(), Column::Array(ArrayData::from_vec((0..n).map(|i| i as f64 * 0.5).collect::<Vec<_>>()))),
        ("b".into(), Column::Array(ArrayData::from_vec((0..n).map(|i| i % 2 == 0).collect::<Vec<_>>()))),
        (
            "cat".into(),
            Column::Categorical {
                codes: ArrayData::from_vec((0..n).map(|i| (i % 3) as i8 - 1).collect::<Vec<_>>()),
                categories: ArrayData::from_vec(vec!["x".to_string(), "y".into()]),
                ordered: true,
            },
        ),
        ("ni".into(), Column::NullableInteger { values: ArrayData::from_vec((0..n as i64).collect::<Vec<_>>()), mask: (0..n).map(|i| i == 1).collect() }),
        ("nb".into(), Column::NullableBoolean { values: vec![true; n], mask: (0..n).map(|i| i == 0).collect() }),
        (
            "ns".into(),
            Column::NullableString { values: (0..n).map(|i| format!("s{i}")).collect(), mask: (0..n).map(|i| i == 2).collect(), na_value: Some("NaN".into()) },
        ),
        ("s".into(), Column::Strings((0..n).map(|i| format!("str{i}")).collect())),
    ];
    df
}

fn sample_store(s: &dyn Store) {
    let o = WriteOptions::default();
    adcat_format::write_root(s).unwrap();
    sample_frame(5).write(s, "obs", &o).unwrap();
    DataFrame::with_index(vec!["g1".into(), "g2".into(), "g3".into()]).write(s, "var", &o).unwrap();
    let x = CsMatrix {
        format: SparseFormat::Csr,
        shape: [5, 3],
        data: ArrayData::from_vec(vec![1f32, 2.0, 3.0, 4.0]),
        indices: ArrayData::from_vec(vec![0i32, 2, 1, 0]),
        indptr: ArrayData::from_vec(vec![0i64, 2, 2, 3, 3, 4]),
    };
    x.write(s, "X", &o).unwrap();
    write_dict(s, "layers").unwrap();
    write_array(s, "layers/dense", &ArrayData::from_shape_vec(&[5, 3], (0..15).map(|v| v as i16).collect::<Vec<_>>()).unwrap(), &o).unwrap();
    write_dict(s, "uns").unwrap();
    write_scalar(s, "uns/pi", &ArrayData::scalar(3.5f64)).unwrap();
    write_scalar(s, "uns/name", &ArrayData::scalar("adcat ✓".to_string())).unwrap();
    adcat_format::copy::write_null(s, "uns/none").unwrap();
    write_dict(s, "uns/nested").unwrap();
    write_array(s, "uns/nested/v", &ArrayData::from_vec(vec![1u64, 2, 3]), &o).unwrap();
    for d in ["obsm", "varm", "obsp", "varp"] {
        write_dict(s, d).unwrap();
    }
    s.flush().unwrap();
}

/// Every node's encoding, shape, dtype and data, for comparing stores across formats.
fn dump(s: &dyn Store, path: &str, out: &mut Vec<String>) {
    let det = detect(s, path).unwrap();
    match s.node_kind(path).unwrap().unwrap() {
        NodeKind::Group => {
            out.push(format!("{path}: {} {:?}", det.encoding, s.attr(path, "column-order").unwrap().and_then(|v| v.as_strings())));
            for c in s.list(path).unwrap() {
                dump(s, &join_path(path, &c), out);
            }
        }
        NodeKind::Array => {
            let m = s.array_meta(path).unwrap();
            // The null encoding is float32 in HDF5 and bool in zarr, as anndata writes it.
            if det.encoding == Encoding::Null {
                out.push(format!("{path}: null"));
            } else {
                out.push(format!("{path}: {} {} {:?}", det.encoding, m.dtype, s.read_all(path).unwrap()));
            }
        }
    }
}

#[test]
fn typed_elements_round_trip_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let s = create(kind, &dir.path().join(format!("t{kind:?}")));
        let o = WriteOptions::default();
        let df = sample_frame(4);
        df.write(s.as_ref(), "df", &o).unwrap();
        assert_eq!(DataFrame::read(s.as_ref(), "df").unwrap(), df, "{kind}");
        assert_eq!(read_index(s.as_ref(), "df").unwrap()[3], "cell-3-ü");
        let m = CsMatrix {
            format: SparseFormat::Csc,
            shape: [2, 3],
            data: ArrayData::from_vec(vec![1.5f64, -2.0]),
            indices: ArrayData::from_vec(vec![1i32, 0]),
            indptr: ArrayData::from_vec(vec![0i32, 1, 1, 2]),
        };
        m.write(s.as_ref(), "m", &o).unwrap();
        let meta = SparseMeta::read(s.as_ref(), "m").unwrap();
        assert_eq!((meta.format, meta.shape, meta.nnz), (SparseFormat::Csc, [2, 3], 2));
        let back = CsMatrix::read_major(s.as_ref(), "m", &meta, 0, 3).unwrap();
        assert_eq!((&back.data, &back.indices, back.shape), (&m.data, &m.indices, m.shape), "{kind}");
        // Blocks carry a rebased int64 indptr whatever the stored width.
        assert_eq!(back.indptr.to_i64_vec(), m.indptr.to_i64_vec());
        assert_eq!(CsMatrix::read_major(s.as_ref(), "m", &meta, 2, 3).unwrap().data, ArrayData::from_vec(vec![-2.0f64]));
    }
}

#[test]
fn convert_between_every_pair_of_formats() {
    let dir = tempfile::tempdir().unwrap();
    for from in KINDS {
        let src = create(from, &dir.path().join(format!("src{from:?}")));
        sample_store(src.as_ref());
        let mut want = vec![];
        dump(src.as_ref(), "", &mut want);
        for to in KINDS {
            let dst = create(to, &dir.path().join(format!("dst{from:?}{to:?}")));
            // A tiny budget forces many blocks per array.
            let o = WriteOptions { max_memory: 1 << 20, chunk_bytes: 8, shard_bytes: 16, ..WriteOptions::default() };
            convert(src.as_ref(), dst.as_ref(), &o, &NoProgress).unwrap();
            let mut got = vec![];
            dump(dst.as_ref(), "", &mut got);
            assert_eq!(want, got, "{from} -> {to}");
        }
    }
}

#[test]
fn unknown_encodings_and_versions_are_errors_naming_the_element() {
    let dir = tempfile::tempdir().unwrap();
    let s = create(StoreKind::ZarrV3, &dir.path().join("bad"));
    sample_store(s.as_ref());
    let mut a = adcat_store::Attrs::new();
    a.insert("encoding-type".into(), "spaceship".into());
    s.set_attrs("uns/nested", &a).unwrap();
    let e = detect(s.as_ref(), "uns/nested").unwrap_err().to_string();
    assert!(e.contains("/uns/nested") && e.contains("spaceship"), "{e}");
    a.insert("encoding-type".into(), "dict".into());
    a.insert("encoding-version".into(), "9.0.0".into());
    s.set_attrs("uns/nested", &a).unwrap();
    let e = detect(s.as_ref(), "uns/nested").unwrap_err().to_string();
    assert!(e.contains("9.0.0") && e.contains("/uns/nested"), "{e}");
    let dst = create(StoreKind::Hdf5, &dir.path().join("out"));
    let e = convert(s.as_ref(), dst.as_ref(), &WriteOptions::default(), &NoProgress).unwrap_err().to_string();
    assert!(e.contains("/uns/nested"), "{e}");
}
