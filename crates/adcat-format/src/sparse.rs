//! `csr_matrix` / `csc_matrix`: metadata, validation, in-memory blocks, writing.

use crate::encoding::Encoding;
use crate::layout::{Purpose, WriteOptions};
use crate::{FormatError, Result};
use adcat_store::{join_path, ArrayData, AttrValue, DType, Store};

/// Compressed sparse layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparseFormat {
    /// Compressed rows: `indptr` runs over rows, `indices` are column numbers.
    Csr,
    /// Compressed columns.
    Csc,
}

impl SparseFormat {
    /// The encoding written for this format.
    pub fn encoding(self) -> Encoding {
        match self {
            SparseFormat::Csr => Encoding::Csr,
            SparseFormat::Csc => Encoding::Csc,
        }
    }
}

/// What a sparse element looks like on disk, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseMeta {
    /// CSR or CSC.
    pub format: SparseFormat,
    /// `(rows, columns)`.
    pub shape: [u64; 2],
    /// Stored entries.
    pub nnz: u64,
    /// Type of `data`.
    pub data_dtype: DType,
    /// Type of `indices`.
    pub indices_dtype: DType,
    /// Type of `indptr`.
    pub indptr_dtype: DType,
}

impl SparseMeta {
    /// Read and check the structure of the sparse element at `path`.
    pub fn read(store: &dyn Store, path: &str) -> Result<Self> {
        let attrs = store.attrs(path)?;
        let format = match attrs
            .get("encoding-type")
            .or_else(|| attrs.get("h5sparse_format"))
            .and_then(AttrValue::as_str)
        {
            Some("csr_matrix") | Some("csr") => SparseFormat::Csr,
            Some("csc_matrix") | Some("csc") => SparseFormat::Csc,
            other => return Err(FormatError::invalid(path, format!("not a sparse matrix (encoding {})", other.unwrap_or("missing")))),
        };
        let shape = attrs
            .get("shape")
            .or_else(|| attrs.get("h5sparse_shape"))
            .and_then(AttrValue::as_ints)
            .filter(|s| s.len() == 2 && s.iter().all(|&d| d >= 0))
            .ok_or_else(|| FormatError::invalid(path, "sparse matrix without a valid 2-element `shape` attribute"))?;
        let shape = [shape[0] as u64, shape[1] as u64];
        let mut metas = vec![];
        for part in ["data", "indices", "indptr"] {
            let p = join_path(path, part);
            if !store.exists(&p)? {
                return Err(FormatError::invalid(&p, "missing sparse matrix component"));
            }
            let m = store.array_meta(&p)?;
            if m.shape.len() != 1 {
                return Err(FormatError::invalid(&p, format!("must be 1-d, found shape {:?}", m.shape)));
            }
            metas.push(m);
        }
        let (data, indices, indptr) = (&metas[0], &metas[1], &metas[2]);
        let major = if format == SparseFormat::Csr { shape[0] } else { shape[1] };
        if indptr.shape[0] != major + 1 {
            return Err(FormatError::invalid(
                &join_path(path, "indptr"),
                format!("has {} entries, expected {} for shape {:?}", indptr.shape[0], major + 1, shape),
            ));
        }
        if data.shape[0] != indices.shape[0] {
            return Err(FormatError::invalid(
                path,
                format!("data has {} entries but indices has {}", data.shape[0], indices.shape[0]),
            ));
        }
        if !indices.dtype.is_integer() || !indptr.dtype.is_integer() {
            return Err(FormatError::invalid(path, "indices and indptr must be integer arrays"));
        }
        // The structure must cover the stored entries exactly: a zarr chunk of indptr that
        // went missing reads as zeros and would otherwise pass as an emptier matrix.
        let ip = join_path(path, "indptr");
        let first = store.read_rows(&ip, 0, 1)?.to_i64_vec().unwrap_or_default();
        let last = store.read_rows(&ip, major, major + 1)?.to_i64_vec().unwrap_or_default();
        if first.first() != Some(&0) || last.first().map(|&l| l as u64) != Some(data.shape[0]) {
            return Err(FormatError::invalid(
                &ip,
                format!(
                    "runs from {} to {} but there are {} stored entries (damaged or missing chunk?)",
                    first.first().copied().unwrap_or(0),
                    last.first().copied().unwrap_or(0),
                    data.shape[0]
                ),
            ));
        }
        Ok(SparseMeta {
            format,
            shape,
            nnz: data.shape[0],
            data_dtype: data.dtype,
            indices_dtype: indices.dtype,
            indptr_dtype: indptr.dtype,
        })
    }
}

/// An in-memory compressed sparse matrix (or a block of major-axis rows of one).
#[derive(Debug, Clone, PartialEq)]
pub struct CsMatrix {
    /// CSR or CSC.
    pub format: SparseFormat,
    /// `(rows, columns)`.
    pub shape: [u64; 2],
    /// Stored values.
    pub data: ArrayData,
    /// Minor-axis index of each value.
    pub indices: ArrayData,
    /// Offsets into `data` per major-axis row (length major + 1).
    pub indptr: ArrayData,
}

impl CsMatrix {
    /// Write as a complete sparse element at `path` (group must not exist).
    pub fn write(&self, store: &dyn Store, path: &str, opts: &WriteOptions) -> Result<()> {
        store.create_group(path)?;
        let mut attrs = self.format.encoding().attrs();
        attrs.insert("shape".into(), AttrValue::Ints(vec![self.shape[0] as i64, self.shape[1] as i64]));
        store.set_attrs(path, &attrs)?;
        for (name, arr) in [("data", &self.data), ("indices", &self.indices), ("indptr", &self.indptr)] {
            let p = join_path(path, name);
            let spec = opts.spec(store.kind(), arr.dtype(), &arr.shape(), Purpose::SparsePart);
            store.create_array(&p, &spec)?;
            store.write_rows(&p, 0, arr)?;
        }
        Ok(())
    }

    /// Read major-axis rows `start..end` of the sparse element at `path`.
    pub fn read_major(store: &dyn Store, path: &str, meta: &SparseMeta, start: u64, end: u64) -> Result<CsMatrix> {
        let indptr = store.read_rows(&join_path(path, "indptr"), start, end + 1)?;
        let ptr = indptr.to_i64_vec().unwrap_or_default();
        let (lo, hi) = (ptr.first().copied().unwrap_or(0), ptr.last().copied().unwrap_or(0));
        if lo < 0 || hi < lo || hi as u64 > meta.nnz || ptr.windows(2).any(|w| w[1] < w[0]) {
            return Err(FormatError::invalid(
                &join_path(path, "indptr"),
                format!("not monotone or out of range (rows {start}..{end}, nnz {})", meta.nnz),
            ));
        }
        let data = store.read_rows(&join_path(path, "data"), lo as u64, hi as u64)?;
        let indices = store.read_rows(&join_path(path, "indices"), lo as u64, hi as u64)?;
        let minor = if meta.format == SparseFormat::Csr { meta.shape[1] } else { meta.shape[0] };
        if let Some((min, max)) = indices.int_range() {
            if min < 0 || max as u64 >= minor {
                let bad = if min < 0 { min } else { max };
                return Err(FormatError::invalid(&join_path(path, "indices"), format!("holds {bad}, outside 0..{minor} (entries {lo}..{hi})")));
            }
        }
        let rebased: Vec<i64> = ptr.iter().map(|p| p - lo).collect();
        let n = end - start;
        let shape = if meta.format == SparseFormat::Csr { [n, meta.shape[1]] } else { [meta.shape[0], n] };
        Ok(CsMatrix { format: meta.format, shape, data, indices, indptr: ArrayData::from_vec(rebased) })
    }
}
