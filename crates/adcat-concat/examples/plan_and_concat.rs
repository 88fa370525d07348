//! Plan and run an outer-join concatenation of two in-code AnnData stores (one HDF5,
//! one Zarr) into Zarr v3. Run: `cargo run -p adcat-concat --example plan_and_concat`.

use adcat_concat::{concat, plan::plan, ConcatOptions, Join};
use adcat_format::frame::DataFrame;
use adcat_format::sparse::{CsMatrix, SparseFormat};
use adcat_format::{NoProgress, WriteOptions};
use adcat_hdf5::Hdf5Store;
use adcat_store::{ArrayData, Store, StoreKind};
use adcat_zarr::{ZarrStore, ZarrVersion};

fn write(store: &dyn Store, cells: &[&str], genes: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let o = WriteOptions::default();
    adcat_format::write_root(store)?;
    DataFrame::with_index(cells.iter().map(|s| s.to_string()).collect()).write(store, "obs", &o)?;
    DataFrame::with_index(genes.iter().map(|s| s.to_string()).collect()).write(store, "var", &o)?;
    let n = cells.len();
    CsMatrix {
        format: SparseFormat::Csr,
        shape: [n as u64, genes.len() as u64],
        data: ArrayData::from_vec(vec![1f32; n]),
        indices: ArrayData::from_vec(vec![0i32; n]),
        indptr: ArrayData::from_vec((0..=n as i64).collect::<Vec<_>>()),
    }
    .write(store, "X", &o)?;
    store.flush()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let a = Hdf5Store::create(dir.path().join("a.h5ad"))?;
    write(&a, &["a0", "a1"], &["g0", "g1"])?;
    let b = ZarrStore::create(dir.path().join("b.zarr"), ZarrVersion::V3)?;
    write(&b, &["b0"], &["g1", "g2"])?;
    let inputs: [&dyn Store; 2] = [&a, &b];
    let opts = ConcatOptions { join: Join::Outer, label: Some("batch".into()), ..Default::default() };

    let p = plan(&inputs, StoreKind::ZarrV3, &opts)?;
    println!("planned shape {:?}, ~{} bytes", p.report.shape, p.output_bytes);
    for (path, what) in &p.report.notes {
        println!("  {path}: {what}");
    }

    let out = ZarrStore::create(dir.path().join("ab.zarr"), ZarrVersion::V3)?;
    let report = concat(&inputs, &out, &opts, &NoProgress)?;
    assert_eq!(report.shape, (3, 3));
    println!("wrote {:?}; var = {:?}", report.shape, adcat_format::frame::read_index(&out, "var")?);
    Ok(())
}
