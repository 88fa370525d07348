//! Element data types shared by every backend.

use std::fmt;
use std::str::FromStr;

/// The element type of an n-d array.
///
/// Names follow numpy (`int32`, `float64`, ...) because that is what AnnData users read
/// in `inspect` output and what the reference implementation writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// 1-byte boolean (HDF5: h5py's enum bool; zarr: `bool` / `|b1`).
    Bool,
    /// Signed 8-bit integer.
    I8,
    /// Signed 16-bit integer.
    I16,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 8-bit integer.
    U8,
    /// Unsigned 16-bit integer.
    U16,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 64-bit integer.
    U64,
    /// IEEE 754 single precision.
    F32,
    /// IEEE 754 double precision.
    F64,
    /// Complex of two f32 (HDF5: h5py's compound `{r, i}`; zarr: `complex64`).
    C64,
    /// Complex of two f64.
    C128,
    /// Variable-length UTF-8 string.
    String,
}

/// Every data type, in a stable order (useful for tests and docs).
pub const ALL_DTYPES: [DType; 14] = [
    DType::Bool,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::U16,
    DType::U32,
    DType::U64,
    DType::F32,
    DType::F64,
    DType::C64,
    DType::C128,
    DType::String,
];

impl DType {
    /// numpy-style name, e.g. `"float32"`.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::C64 => "complex64",
            DType::C128 => "complex128",
            DType::String => "string",
        }
    }

    /// Size of one element in bytes (strings: the size of a pointer-sized handle, 8).
    pub fn itemsize(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 | DType::C64 | DType::String => 8,
            DType::C128 => 16,
        }
    }

    /// Signed or unsigned integer.
    pub fn is_integer(self) -> bool {
        self.is_signed_integer() || self.is_unsigned_integer()
    }

    /// Signed integer.
    pub fn is_signed_integer(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64)
    }

    /// Unsigned integer.
    pub fn is_unsigned_integer(self) -> bool {
        matches!(self, DType::U8 | DType::U16 | DType::U32 | DType::U64)
    }

    /// Floating point.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// Complex.
    pub fn is_complex(self) -> bool {
        matches!(self, DType::C64 | DType::C128)
    }

    /// Any numeric type (integers, floats, complex, bool).
    pub fn is_numeric(self) -> bool {
        self != DType::String
    }

    /// numpy's `result_type` for two types (`np.promote_types`), restricted to the
    /// types adcat stores. Strings only promote with strings.
    pub fn promote(self, other: DType) -> Option<DType> {
        use DType::*;
        if self == other {
            return Some(self);
        }
        if self == String || other == String {
            return None;
        }
        if self == Bool {
            return Some(other);
        }
        if other == Bool {
            return Some(self);
        }
        let (a, b) = (self, other);
        if a.is_complex() || b.is_complex() {
            // complex64 holds what float32 holds; anything wider needs complex128.
            let small = |t: DType| t == C64 || t == F32 || (t.is_integer() && t.itemsize() <= 2);
            return Some(if small(a) && small(b) { C64 } else { C128 });
        }
        if a.is_float() || b.is_float() {
            // float32 holds integers of up to 16 bits exactly; wider ones need float64.
            let needs64 = |t: DType| t == F64 || (t.is_integer() && t.itemsize() > 2);
            return Some(if needs64(a) || needs64(b) { F64 } else { F32 });
        }
        let signed = a.is_signed_integer() || b.is_signed_integer();
        if a.is_signed_integer() == b.is_signed_integer() {
            return Some(if a.itemsize() >= b.itemsize() { a } else { b });
        }
        debug_assert!(signed);
        let (s, u) = if a.is_signed_integer() { (a, b) } else { (b, a) };
        // A signed type holds an unsigned one only when strictly wider.
        let need = (u.itemsize() * 2).max(s.itemsize());
        Some(match need {
            1 => I8,
            2 => I16,
            4 => I32,
            8 => I64,
            _ => F64, // uint64 + any signed -> float64, as numpy
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::dtype::ALL_DTYPES
            .iter()
            .copied()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("unknown dtype {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::DType::*;

    #[test]
    fn promotion_matches_numpy() {
        // Pairs checked against numpy.promote_types.
        let cases = [
            (I32, F32, F64),
            (I16, F32, F32),
            (I8, U8, I16),
            (U32, I32, I64),
            (U64, I64, F64),
            (U8, U16, U16),
            (Bool, I32, I32),
            (F32, F64, F64),
            (I64, I32, I64),
            (U16, I32, I32),
            (C64, F64, C128),
            (C64, I16, C64),
            (C64, I32, C128),
            (C128, F32, C128),
        ];
        for (a, b, r) in cases {
            assert_eq!(a.promote(b), Some(r), "{a} + {b}");
            assert_eq!(b.promote(a), Some(r), "{b} + {a}");
        }
        assert_eq!(String.promote(I8), None);
    }
}
