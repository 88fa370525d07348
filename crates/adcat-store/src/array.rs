//! In-memory n-d array blocks exchanged with backends.

use crate::DType;
use ndarray::{ArrayD, Axis, IxDyn, Slice};
pub use num_complex::{Complex32, Complex64};

/// A dense, row-major n-d block of one [`DType`].
///
/// This is the unit of every read and write through [`crate::Store`]: a hyperslab of an
/// on-disk array. Backends convert between it and their native buffers.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum ArrayData {
    Bool(ArrayD<bool>),
    I8(ArrayD<i8>),
    I16(ArrayD<i16>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    U8(ArrayD<u8>),
    U16(ArrayD<u16>),
    U32(ArrayD<u32>),
    U64(ArrayD<u64>),
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    C64(ArrayD<Complex32>),
    C128(ArrayD<Complex64>),
    String(ArrayD<String>),
}

/// Apply `$body` to the inner `ArrayD<T>` of an [`ArrayData`], binding it to `$a`.
///
/// `$wrap` names a local macro-free constructor path: the body's result is returned as is.
#[macro_export]
macro_rules! with_array {
    ($data:expr, $a:ident => $body:expr) => {
        match $data {
            $crate::ArrayData::Bool($a) => $body,
            $crate::ArrayData::I8($a) => $body,
            $crate::ArrayData::I16($a) => $body,
            $crate::ArrayData::I32($a) => $body,
            $crate::ArrayData::I64($a) => $body,
            $crate::ArrayData::U8($a) => $body,
            $crate::ArrayData::U16($a) => $body,
            $crate::ArrayData::U32($a) => $body,
            $crate::ArrayData::U64($a) => $body,
            $crate::ArrayData::F32($a) => $body,
            $crate::ArrayData::F64($a) => $body,
            $crate::ArrayData::C64($a) => $body,
            $crate::ArrayData::C128($a) => $body,
            $crate::ArrayData::String($a) => $body,
        }
    };
}

/// Like [`with_array!`] but re-wraps an `ArrayD` result into the same variant.
#[macro_export]
macro_rules! map_array {
    ($data:expr, $a:ident => $body:expr) => {
        match $data {
            $crate::ArrayData::Bool($a) => $crate::ArrayData::Bool($body),
            $crate::ArrayData::I8($a) => $crate::ArrayData::I8($body),
            $crate::ArrayData::I16($a) => $crate::ArrayData::I16($body),
            $crate::ArrayData::I32($a) => $crate::ArrayData::I32($body),
            $crate::ArrayData::I64($a) => $crate::ArrayData::I64($body),
            $crate::ArrayData::U8($a) => $crate::ArrayData::U8($body),
            $crate::ArrayData::U16($a) => $crate::ArrayData::U16($body),
            $crate::ArrayData::U32($a) => $crate::ArrayData::U32($body),
            $crate::ArrayData::U64($a) => $crate::ArrayData::U64($body),
            $crate::ArrayData::F32($a) => $crate::ArrayData::F32($body),
            $crate::ArrayData::F64($a) => $crate::ArrayData::F64($body),
            $crate::ArrayData::C64($a) => $crate::ArrayData::C64($body),
            $crate::ArrayData::C128($a) => $crate::ArrayData::C128($body),
            $crate::ArrayData::String($a) => $crate::ArrayData::String($body),
        }
    };
}

/// Types that can live in an [`ArrayData`].
pub trait Element: Clone + Default + Send + Sync + 'static {
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Wrap an array of this type.
    fn wrap(a: ArrayD<Self>) -> ArrayData;
    /// Borrow the array if `data` holds this type.
    fn unwrap_ref(data: &ArrayData) -> Option<&ArrayD<Self>>;
    /// Take the array if `data` holds this type.
    fn unwrap(data: ArrayData) -> Result<ArrayD<Self>, ArrayData>;
}

macro_rules! impl_element {
    ($t:ty, $v:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$v;
            fn wrap(a: ArrayD<Self>) -> ArrayData {
                ArrayData::$v(a)
            }
            fn unwrap_ref(data: &ArrayData) -> Option<&ArrayD<Self>> {
                match data {
                    ArrayData::$v(a) => Some(a),
                    _ => None,
                }
            }
            fn unwrap(data: ArrayData) -> Result<ArrayD<Self>, ArrayData> {
                match data {
                    ArrayData::$v(a) => Ok(a),
                    other => Err(other),
                }
            }
        }
    };
}
impl_element!(bool, Bool);
impl_element!(i8, I8);
impl_element!(i16, I16);
impl_element!(i32, I32);
impl_element!(i64, I64);
impl_element!(u8, U8);
impl_element!(u16, U16);
impl_element!(u32, U32);
impl_element!(u64, U64);
impl_element!(f32, F32);
impl_element!(f64, F64);
impl_element!(Complex32, C64);
impl_element!(Complex64, C128);
impl_element!(String, String);

/// Conversion of numeric elements through `f64`/`i64`, used for dtype promotion and
/// for reading index arrays of any integer width.
pub trait Numeric: Element + Copy {
    /// Lossy conversion to f64.
    fn to_f64(self) -> f64;
    /// Conversion to i64 (floats truncate, as numpy's `astype`).
    fn to_i64(self) -> i64;
    /// Conversion from f64 (as numpy's `astype`: truncation for integers).
    fn from_f64(v: f64) -> Self;
    /// Conversion from i64 (wrapping, as numpy's `astype`).
    fn from_i64(v: i64) -> Self;
}

macro_rules! impl_numeric {
    ($($t:ty),*) => {$(
        impl Numeric for $t {
            fn to_f64(self) -> f64 { self as f64 }
            fn to_i64(self) -> i64 { self as i64 }
            fn from_f64(v: f64) -> Self { v as $t }
            fn from_i64(v: i64) -> Self { v as $t }
        }
    )*};
}
impl_numeric!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);
/// Complex numbers convert like numpy's `astype` from complex: the imaginary part is
/// dropped when going to a real type.
macro_rules! impl_numeric_complex {
    ($($t:ty, $f:ty);*) => {$(
        impl Numeric for $t {
            fn to_f64(self) -> f64 { self.re as f64 }
            fn to_i64(self) -> i64 { self.re as i64 }
            fn from_f64(v: f64) -> Self { <$t>::new(v as $f, 0.0) }
            fn from_i64(v: i64) -> Self { <$t>::new(v as $f, 0.0) }
        }
    )*};
}
impl_numeric_complex!(Complex32, f32; Complex64, f64);

impl Numeric for bool {
    fn to_f64(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
}

/// Apply `$body` generically over numeric variants; strings go to `$string`.
#[macro_export]
macro_rules! with_numeric {
    ($data:expr, $a:ident => $body:expr, $s:ident => $string:expr) => {
        match $data {
            $crate::ArrayData::Bool($a) => $body,
            $crate::ArrayData::I8($a) => $body,
            $crate::ArrayData::I16($a) => $body,
            $crate::ArrayData::I32($a) => $body,
            $crate::ArrayData::I64($a) => $body,
            $crate::ArrayData::U8($a) => $body,
            $crate::ArrayData::U16($a) => $body,
            $crate::ArrayData::U32($a) => $body,
            $crate::ArrayData::U64($a) => $body,
            $crate::ArrayData::F32($a) => $body,
            $crate::ArrayData::F64($a) => $body,
            $crate::ArrayData::C64($a) => $body,
            $crate::ArrayData::C128($a) => $body,
            $crate::ArrayData::String($s) => $string,
        }
    };
}

/// Build a value of the numeric variant for `dtype` from a function generic over the
/// element type. `$f` is called as `$f::<T>()`.
#[macro_export]
macro_rules! numeric_for_dtype {
    ($dtype:expr, $T:ident => $body:expr, string => $string:expr) => {
        match $dtype {
            $crate::DType::Bool => { type $T = bool; $body }
            $crate::DType::I8 => { type $T = i8; $body }
            $crate::DType::I16 => { type $T = i16; $body }
            $crate::DType::I32 => { type $T = i32; $body }
            $crate::DType::I64 => { type $T = i64; $body }
            $crate::DType::U8 => { type $T = u8; $body }
            $crate::DType::U16 => { type $T = u16; $body }
            $crate::DType::U32 => { type $T = u32; $body }
            $crate::DType::U64 => { type $T = u64; $body }
            $crate::DType::F32 => { type $T = f32; $body }
            $crate::DType::F64 => { type $T = f64; $body }
            $crate::DType::C64 => { type $T = $crate::Complex32; $body }
            $crate::DType::C128 => { type $T = $crate::Complex64; $body }
            $crate::DType::String => $string,
        }
    };
}

impl ArrayData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            ArrayData::Bool(_) => DType::Bool,
            ArrayData::I8(_) => DType::I8,
            ArrayData::I16(_) => DType::I16,
            ArrayData::I32(_) => DType::I32,
            ArrayData::I64(_) => DType::I64,
            ArrayData::U8(_) => DType::U8,
            ArrayData::U16(_) => DType::U16,
            ArrayData::U32(_) => DType::U32,
            ArrayData::U64(_) => DType::U64,
            ArrayData::F32(_) => DType::F32,
            ArrayData::F64(_) => DType::F64,
            ArrayData::C64(_) => DType::C64,
            ArrayData::C128(_) => DType::C128,
            ArrayData::String(_) => DType::String,
        }
    }

    /// Shape as `u64`s (the store's index type).
    pub fn shape(&self) -> Vec<u64> {
        with_array!(self, a => a.shape().iter().map(|&d| d as u64).collect())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_array!(self, a => a.len())
    }

    /// True when the block holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A 1-d array from a vector.
    pub fn from_vec<T: Element>(v: Vec<T>) -> ArrayData {
        let n = v.len();
        // A Vec always fits its own length, so this cannot fail.
        T::wrap(ArrayD::from_shape_vec(IxDyn(&[n]), v).unwrap_or_else(|_| ArrayD::default(IxDyn(&[0]))))
    }

    /// An array of `shape` from a row-major vector; `None` if the lengths disagree.
    pub fn from_shape_vec<T: Element>(shape: &[u64], v: Vec<T>) -> Option<ArrayData> {
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        ArrayD::from_shape_vec(IxDyn(&shape), v).ok().map(T::wrap)
    }

    /// A 0-d (scalar) array.
    pub fn scalar<T: Element>(v: T) -> ArrayData {
        T::wrap(ArrayD::from_elem(IxDyn(&[]), v))
    }

    /// An array of default values (zeros, false, empty strings).
    pub fn zeros(dtype: DType, shape: &[u64]) -> ArrayData {
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        numeric_for_dtype!(dtype, T => T::wrap(ArrayD::<T>::default(IxDyn(&shape))),
            string => ArrayData::String(ArrayD::default(IxDyn(&shape))))
    }

    /// Elements in row-major order as `f64` (strings: `None`).
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        // Contiguous arrays take the slice path (vectorised), others the general iterator.
        with_numeric!(self, a => Some(match a.as_slice() {
            Some(sl) => sl.iter().map(|v| v.to_f64()).collect(),
            None => a.iter().map(|v| v.to_f64()).collect(),
        }), _s => None)
    }

    /// Smallest and largest element of an integer array (`None` for other dtypes and
    /// empty arrays).
    pub fn int_range(&self) -> Option<(i64, i64)> {
        match self {
            ArrayData::I8(a) => int_range_of(a),
            ArrayData::I16(a) => int_range_of(a),
            ArrayData::I32(a) => int_range_of(a),
            ArrayData::I64(a) => int_range_of(a),
            ArrayData::U8(a) => int_range_of(a),
            ArrayData::U16(a) => int_range_of(a),
            ArrayData::U32(a) => int_range_of(a),
            ArrayData::U64(a) => int_range_of(a),
            _ => None,
        }
    }

    /// Elements in row-major order as `i64` (strings: `None`).
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        with_numeric!(self, a => Some(match a.as_slice() {
            Some(sl) => sl.iter().map(|v| v.to_i64()).collect(),
            None => a.iter().map(|v| v.to_i64()).collect(),
        }), _s => None)
    }

    /// Elements as owned strings (only for string arrays).
    pub fn as_strings(&self) -> Option<&ArrayD<String>> {
        match self {
            ArrayData::String(a) => Some(a),
            _ => None,
        }
    }

    /// The same elements in row-major order with another shape; `None` if the element
    /// counts differ.
    pub fn reshape(self, shape: &[u64]) -> Option<ArrayData> {
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        macro_rules! re {
            ($a:ident, $v:ident) => {{
                let flat: Vec<_> = $a.iter().cloned().collect();
                ArrayD::from_shape_vec(IxDyn(&shape), flat).ok().map(ArrayData::$v)
            }};
        }
        match self {
            ArrayData::Bool(a) => re!(a, Bool),
            ArrayData::I8(a) => re!(a, I8),
            ArrayData::I16(a) => re!(a, I16),
            ArrayData::I32(a) => re!(a, I32),
            ArrayData::I64(a) => re!(a, I64),
            ArrayData::U8(a) => re!(a, U8),
            ArrayData::U16(a) => re!(a, U16),
            ArrayData::U32(a) => re!(a, U32),
            ArrayData::U64(a) => re!(a, U64),
            ArrayData::F32(a) => re!(a, F32),
            ArrayData::F64(a) => re!(a, F64),
            ArrayData::C64(a) => re!(a, C64),
            ArrayData::C128(a) => re!(a, C128),
            ArrayData::String(a) => re!(a, String),
        }
    }

    /// Rows `start..end` along axis 0 (copied).
    pub fn slice_rows(&self, start: usize, end: usize) -> ArrayData {
        map_array!(self, a => a.slice_axis(Axis(0), Slice::from(start..end)).to_owned())
    }

    /// Concatenate blocks along axis 0. All must share the dtype and trailing shape.
    pub fn concat_rows(parts: &[ArrayData]) -> Option<ArrayData> {
        let first = parts.first()?;
        macro_rules! cat {
            ($v:ident) => {{
                let views: Option<Vec<_>> = parts
                    .iter()
                    .map(|p| match p {
                        ArrayData::$v(a) => Some(a.view()),
                        _ => None,
                    })
                    .collect();
                ndarray::concatenate(Axis(0), &views?).ok().map(ArrayData::$v)
            }};
        }
        match first {
            ArrayData::Bool(_) => cat!(Bool),
            ArrayData::I8(_) => cat!(I8),
            ArrayData::I16(_) => cat!(I16),
            ArrayData::I32(_) => cat!(I32),
            ArrayData::I64(_) => cat!(I64),
            ArrayData::U8(_) => cat!(U8),
            ArrayData::U16(_) => cat!(U16),
            ArrayData::U32(_) => cat!(U32),
            ArrayData::U64(_) => cat!(U64),
            ArrayData::F32(_) => cat!(F32),
            ArrayData::F64(_) => cat!(F64),
            ArrayData::C64(_) => cat!(C64),
            ArrayData::C128(_) => cat!(C128),
            ArrayData::String(_) => cat!(String),
        }
    }

    /// Numeric cast with numpy `astype` semantics. Strings only cast to strings.
    pub fn cast(&self, to: DType) -> Option<ArrayData> {
        if self.dtype() == to {
            return Some(self.clone());
        }
        // Complex to complex keeps the imaginary part.
        match (self, to) {
            (ArrayData::C64(a), DType::C128) => return Some(ArrayData::C128(a.mapv(|c| Complex64::new(c.re.into(), c.im.into())))),
            (ArrayData::C128(a), DType::C64) => return Some(ArrayData::C64(a.mapv(|c| Complex32::new(c.re as f32, c.im as f32)))),
            _ => {}
        }
        with_numeric!(self, a => {
            numeric_for_dtype!(to, T => {
                // Integers go through i64 so that e.g. int64 -> uint32 wraps like numpy
                // and large int64 values stay exact; floats go through f64.
                let out = if self.dtype().is_float() || to.is_float() || self.dtype().is_complex() || to.is_complex() {
                    a.mapv(|v| T::from_f64(v.to_f64()))
                } else {
                    a.mapv(|v| T::from_i64(v.to_i64()))
                };
                Some(T::wrap(out))
            }, string => None)
        }, _s => None)
    }
}

impl ArrayData {
    /// Write each value's native bytes into `buf` at `offset + i * stride` (record
    /// packing). Returns false for strings, which have no fixed-size native form.
    pub fn scatter_native(&self, buf: &mut [u8], stride: usize, offset: usize) -> bool {
        self.scatter_native_records(buf, stride, offset, 1)
    }

    /// [`ArrayData::scatter_native`] for a field whose records hold `per` values each (a
    /// sub-array field): value `k` goes to record `k / per`, slot `k % per`.
    pub fn scatter_native_records(&self, buf: &mut [u8], stride: usize, offset: usize, per: usize) -> bool {
        let per = per.max(1);
        with_numeric!(self, a => {
            for (i, v) in a.iter().enumerate() {
                let w = std::mem::size_of_val(v);
                let at = offset + (i / per) * stride + (i % per) * w;
                // SAFETY: v is a plain numeric value (bool is one byte 0/1); its bytes are read.
                let bytes = unsafe { std::slice::from_raw_parts(std::ptr::from_ref(v).cast::<u8>(), w) };
                if let Some(dst) = buf.get_mut(at..at + w) {
                    dst.copy_from_slice(bytes);
                }
            }
            true
        }, _s => false)
    }

    /// Read `n` values of a numeric `dtype` from `buf` at `offset + i * stride` (record
    /// unpacking, native byte order). Bools accept any non-zero byte as true. Returns None
    /// for strings or when `buf` is too short.
    pub fn gather_native(dtype: DType, buf: &[u8], n: usize, stride: usize, offset: usize) -> Option<ArrayData> {
        if dtype == DType::Bool {
            // Reading arbitrary bytes as `bool` would be undefined behaviour.
            let v: Option<Vec<bool>> = (0..n).map(|i| buf.get(offset + i * stride).map(|&b| b != 0)).collect();
            return v.map(ArrayData::from_vec);
        }
        numeric_for_dtype!(dtype, T => {
            let w = std::mem::size_of::<T>();
            let v: Option<Vec<T>> = (0..n).map(|i| {
                let at = offset + i * stride;
                buf.get(at..at + w).map(|b| {
                    // SAFETY: b holds size_of::<T>() bytes; every bit pattern is a valid T
                    // for the integer, float and complex types (bool is handled above).
                    unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) }
                })
            }).collect();
            v.map(ArrayData::from_vec)
        }, string => None)
    }
}

/// Smallest and largest element in `i64` (saturating: a `u64` above `i64::MAX` reads as
/// `i64::MAX`), or `None` when empty.
fn int_range_of<T: Copy + Ord>(a: &ArrayD<T>) -> Option<(i64, i64)>
where
    i64: TryFrom<T>,
{
    let (lo, hi) = match a.as_slice() {
        Some(sl) => min_max(sl)?,
        None => min_max(&a.iter().copied().collect::<Vec<T>>())?,
    };
    let wide = |v: T| i64::try_from(v).unwrap_or(i64::MAX);
    Some((wide(lo), wide(hi)))
}

/// Minimum and maximum in one pass. Independent lanes let the compiler vectorise it
/// (index range checks run over every block read, so this is on the hot path).
fn min_max<T: Copy + Ord>(sl: &[T]) -> Option<(T, T)> {
    const LANES: usize = 16;
    let first = *sl.first()?;
    let (mut lo, mut hi) = ([first; LANES], [first; LANES]);
    let mut chunks = sl.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            lo[i] = lo[i].min(c[i]);
            hi[i] = hi[i].max(c[i]);
        }
    }
    let rest = chunks.remainder();
    let lo = lo.iter().chain(rest).copied().min().unwrap_or(first);
    let hi = hi.iter().chain(rest).copied().max().unwrap_or(first);
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_range_matches_a_plain_scan() {
        let mut x: u64 = 12345;
        for n in [0usize, 1, 2, 15, 16, 17, 33, 1000] {
            let v: Vec<i32> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (x >> 33) as i32 - (1 << 30)
                })
                .collect();
            let want = v.iter().min().map(|&lo| (i64::from(lo), i64::from(*v.iter().max().unwrap_or(&lo))));
            assert_eq!(ArrayData::from_vec(v.clone()).int_range(), want, "n = {n}");
        }
        assert_eq!(ArrayData::from_vec(vec![3u64, u64::MAX, 1]).int_range(), Some((1, i64::MAX)));
        assert_eq!(ArrayData::from_vec(vec![1.0f32, 2.0]).int_range(), None);
        // A column-major array (no standard-layout slice) takes the copying path.
        let a = ndarray::Array2::from_shape_vec((2, 4), vec![5i16, -7, 9, 0, 1, 2, 3, 4]).map(|a| a.reversed_axes().into_dyn());
        assert_eq!(a.ok().map(ArrayData::I16).and_then(|a| a.int_range()), Some((-7, 9)));
    }
}
