//! Value equality as anndata's merge strategies see it (`anndata._core.merge.equal`),
//! shared by dataframe columns, off-axis elements and uns trees.

use adcat_store::ArrayData;

/// Element-wise equality with NaN == NaN.
pub fn arrays_equal(x: &ArrayData, y: &ArrayData) -> bool {
    if x.shape() != y.shape() {
        return false;
    }
    match (x.to_f64_vec(), y.to_f64_vec()) {
        (Some(a), Some(b)) => a.iter().zip(&b).all(|(p, q)| p == q || (p.is_nan() && q.is_nan())),
        (None, None) => x == y,
        _ => false,
    }
}
