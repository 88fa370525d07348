//! An HDF5 store through the `Store` trait: groups, attributes, a chunked gzip array
//! written in row blocks and a box read back. Run: `cargo run -p adcat-hdf5 --example hdf5_arrays`.

use adcat_hdf5::Hdf5Store;
use adcat_store::{ArrayData, ArraySpec, AttrValue, Attrs, Compression, DType, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("example.h5");
    let store = Hdf5Store::create(&path)?;
    store.create_group("g")?;
    let mut attrs = Attrs::new();
    attrs.insert("note".into(), AttrValue::String("written by adcat".into()));
    store.set_attrs("g", &attrs)?;

    // 1,000 x 4 float32, chunks of 100 rows, gzip level 4 (whole-chunk writes are
    // compressed on all cores).
    let spec = ArraySpec::new(DType::F32, vec![1000, 4]).chunks(vec![100, 4]).compression(Compression::Gzip(4));
    store.create_array("g/values", &spec)?;
    for start in (0..1000).step_by(250) {
        let block: Vec<f32> = (start..start + 250).flat_map(|r| (0..4).map(move |c| (r * 4 + c) as f32)).collect();
        store.write_rows("g/values", start as u64, &ArrayData::from_shape_vec(&[250, 4], block).expect("shape"))?;
    }
    store.flush()?;
    drop(store);

    let store = Hdf5Store::open(&path)?;
    let meta = store.array_meta("g/values")?;
    println!("shape {:?}, chunks {:?}, {}", meta.shape, meta.chunks, meta.compression);
    let b = store.read("g/values", &[998, 2], &[2, 2])?;
    println!("box at (998, 2): {:?}", b.to_f64_vec());
    assert_eq!(b.to_f64_vec(), Some(vec![3994.0, 3995.0, 3998.0, 3999.0]));
    Ok(())
}
