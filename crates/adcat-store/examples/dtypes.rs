//! Element types and arrays of the storage layer: numpy's promotion rules, casts and
//! row blocks. Run: `cargo run -p adcat-store --example dtypes`.

use adcat_store::{ArrayData, DType};

fn main() {
    // Concatenating int32 and float32 matrices gives float64, as numpy does.
    let promoted = DType::I32.promote(DType::F32);
    println!("int32 + float32 -> {promoted:?}");
    assert_eq!(promoted, Some(DType::F64));

    // Arrays are ndarray-backed and typed at run time.
    let a = ArrayData::from_vec(vec![1i32, 2, 3]);
    let b = a.cast(DType::F64).expect("numeric cast");
    println!("{} as {}: {:?}", a.dtype(), b.dtype(), b.to_f64_vec());

    // Row blocks join and split along axis 0.
    let joined = ArrayData::concat_rows(&[a.clone(), ArrayData::from_vec(vec![4i32, 5])]).expect("same dtype");
    println!("joined {:?}, rows 1..3 = {:?}", joined.to_i64_vec(), joined.slice_rows(1, 3).to_i64_vec());
    assert_eq!(joined.int_range(), Some((1, 5)));
}
