//! The same array in Zarr v2 and in sharded Zarr v3, written through the `Store` trait
//! (consolidated metadata, no `_zarrs` keys). Run: `cargo run -p adcat-zarr --example zarr_stores`.

use adcat_store::{ArrayData, ArraySpec, Compression, DType, Store};
use adcat_zarr::{ZarrStore, ZarrVersion};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let data = ArrayData::from_vec((0..10_000i64).collect::<Vec<_>>());
    for (name, version, spec) in [
        ("v2.zarr", ZarrVersion::V2, ArraySpec::new(DType::I64, vec![10_000]).chunks(vec![1_000]).compression(Compression::Gzip(5))),
        ("v3.zarr", ZarrVersion::V3, ArraySpec::new(DType::I64, vec![10_000]).chunks(vec![1_000]).shards(vec![5_000]).compression(Compression::Zstd(3))),
    ] {
        let path = dir.path().join(name);
        let store = ZarrStore::create(&path, version)?;
        store.create_array("numbers", &spec)?;
        store.write_rows("numbers", 0, &data)?;
        store.flush()?;
        let back = ZarrStore::open(&path)?;
        let meta = back.array_meta("numbers")?;
        println!("{name}: chunks {:?} shards {:?} codec {} stored {:?} bytes", meta.chunks, meta.shards, meta.compression, back.stored_bytes("numbers")?);
        assert_eq!(back.read_rows("numbers", 9_998, 10_000)?.to_i64_vec(), Some(vec![9_998, 9_999]));
    }
    Ok(())
}
