//! Write a small AnnData with the format layer (obs/var dataframes, a CSR X), convert
//! it from Zarr v3 to HDF5 in bounded blocks, and validate the result.
//! Run: `cargo run -p adcat-format --example convert_and_validate`.

use adcat_format::frame::{Column, DataFrame};
use adcat_format::sparse::{CsMatrix, SparseFormat};
use adcat_format::{convert, validate, NoProgress, WriteOptions};
use adcat_hdf5::Hdf5Store;
use adcat_store::{ArrayData, Store};
use adcat_zarr::{ZarrStore, ZarrVersion};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let src_path = dir.path().join("small.zarr");
    let src = ZarrStore::create(&src_path, ZarrVersion::V3)?;
    let opts = WriteOptions::default();
    adcat_format::write_root(&src)?;
    let mut obs = DataFrame::with_index(vec!["c0".into(), "c1".into(), "c2".into()]);
    obs.columns.push(("n_genes".into(), Column::Array(ArrayData::from_vec(vec![2i64, 0, 1]))));
    obs.write(&src, "obs", &opts)?;
    DataFrame::with_index(vec!["g0".into(), "g1".into()]).write(&src, "var", &opts)?;
    CsMatrix {
        format: SparseFormat::Csr,
        shape: [3, 2],
        data: ArrayData::from_vec(vec![1f32, 2.0, 3.0]),
        indices: ArrayData::from_vec(vec![0i32, 1, 1]),
        indptr: ArrayData::from_vec(vec![0i32, 2, 2, 3]),
    }
    .write(&src, "X", &opts)?;
    src.flush()?;

    let dst_path = dir.path().join("small.h5ad");
    let small_budget = WriteOptions { max_memory: 1 << 20, ..Default::default() };
    convert(&ZarrStore::open(&src_path)?, &Hdf5Store::create(&dst_path)?, &small_budget, &NoProgress)?;
    let report = validate::validate(&Hdf5Store::open(&dst_path)?, true);
    println!("{} obs x {} var, X nnz {:?}, problems: {:?}", report.n_obs.unwrap_or(0), report.n_vars.unwrap_or(0), report.x_nnz, report.problems);
    assert!(report.is_valid());
    Ok(())
}
