//! Out-of-core transposition of a sparse matrix stored along the other axis (CSR read
//! along var, CSC read along obs).
//!
//! Reading oriented rows of such a matrix means collecting, for a range of its minor
//! indices, entries spread over every stored major row. Instead of rescanning the whole
//! matrix for each output block, one pass over the stored rows (in budgeted chunks)
//! appends every entry to the scratch file of its output block (its *partition*):
//! `(row within the block: u32, column: u64, value: native bytes)`. Reading a block then
//! loads only its partition. Entries arrive in increasing column for each row (the scan
//! runs in major order), so a stable counting sort by row gives sorted CSR rows.
//!
//! Scratch space: about (12 + value size) bytes per stored entry, in a temporary
//! directory (`TMPDIR`) removed when the source is dropped.

use crate::{ConcatError, Result};
use adcat_format::sparse::{CsMatrix, SparseFormat, SparseMeta};
use adcat_store::{ArrayData, DType, Store};
use std::io::{Read, Write};
use std::path::PathBuf;

const HEADER: usize = 12; // row u32 + column u64

/// CSR rows: `indptr` (rows + 1, from 0), column indices, values.
pub(crate) type CsrRows = (Vec<i64>, Vec<i64>, ArrayData);

/// Partitions of one transposed matrix in scratch files.
#[derive(Debug)]
pub(crate) struct Transposed {
    dir: tempfile::TempDir,
    /// Oriented rows per partition (the last may be shorter).
    pub(crate) rows_per: u64,
    n_rows: u64,
    counts: Vec<u64>,
    dtype: DType,
    itemsize: usize,
}

fn io_err(e: std::io::Error, what: &str) -> ConcatError {
    ConcatError::unsupported("", format!("transposing through scratch files ({what}): {e}"))
}

impl Transposed {
    fn file(&self, p: usize) -> PathBuf {
        self.dir.path().join(format!("part-{p}"))
    }

    /// Scan the matrix at `path` once and split its entries into partitions of
    /// `rows_per` oriented rows. `budget` bounds the bytes of a scan chunk plus the
    /// partitions' write buffers.
    pub(crate) fn build(store: &dyn Store, path: &str, m: &SparseMeta, rows_per: u64, budget: u64) -> Result<Transposed> {
        let (n_major, n_minor) = if m.format == SparseFormat::Csr { (m.shape[0], m.shape[1]) } else { (m.shape[1], m.shape[0]) };
        let rows_per = rows_per.clamp(1, u64::from(u32::MAX));
        let n_parts = n_minor.div_ceil(rows_per).max(1) as usize;
        let dtype = m.data_dtype;
        let itemsize = dtype.itemsize();
        let stride = HEADER + itemsize;
        let dir = tempfile::Builder::new().prefix("adcat-transpose-").tempdir().map_err(|e| io_err(e, "creating the scratch directory"))?;
        let t = Transposed { dir, rows_per, n_rows: n_minor, counts: vec![0; n_parts], dtype, itemsize };
        let mut counts = vec![0u64; n_parts];
        // Half the budget for a chunk of stored rows, half for the write buffers.
        let buf_cap = ((budget / 2) / n_parts as u64).clamp(4 << 10, 1 << 20) as usize;
        let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); n_parts];
        let flush = |p: usize, buf: &mut Vec<u8>| -> Result<()> {
            if buf.is_empty() {
                return Ok(());
            }
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(t.file(p)).map_err(|e| io_err(e, "opening a partition"))?;
            f.write_all(buf).map_err(|e| io_err(e, "writing a partition"))?;
            buf.clear();
            Ok(())
        };
        let per_entry = (itemsize + 16) as u64;
        let avg = (m.nnz / n_major.max(1)).max(1);
        let majors_per_chunk = ((budget / 2) / per_entry / avg).max(1);
        let mut s = 0;
        while s < n_major {
            let e = (s + majors_per_chunk).min(n_major);
            let b = CsMatrix::read_major(store, path, m, s, e)?;
            let ip = b.indptr.to_i64_vec().unwrap_or_default();
            let ix = b.indices.to_i64_vec().unwrap_or_default();
            let mut vbytes = vec![0u8; ix.len() * itemsize];
            if !b.data.scatter_native(&mut vbytes, itemsize, 0) {
                return Err(ConcatError::unsupported(path, "string values cannot be transposed"));
            }
            for r in 0..(e - s) as usize {
                let col = s + r as u64;
                for k in ip[r] as usize..ip[r + 1] as usize {
                    let minor = ix[k] as u64; // checked against the shape by read_major
                    let p = (minor / rows_per) as usize;
                    let buf = &mut bufs[p];
                    buf.extend_from_slice(&((minor - p as u64 * rows_per) as u32).to_le_bytes());
                    buf.extend_from_slice(&col.to_le_bytes());
                    buf.extend_from_slice(&vbytes[k * itemsize..(k + 1) * itemsize]);
                    counts[p] += 1;
                    if buf.len() + stride > buf_cap {
                        flush(p, buf)?;
                    }
                }
            }
            s = e;
        }
        for (p, buf) in bufs.iter_mut().enumerate() {
            flush(p, buf)?;
        }
        Ok(Transposed { counts, ..t })
    }

    /// Oriented rows `start..end`, which must be one partition.
    pub(crate) fn block(&self, start: u64, end: u64) -> Option<Result<CsrRows>> {
        if !start.is_multiple_of(self.rows_per) || end != (start + self.rows_per).min(self.n_rows) {
            return None;
        }
        let p = (start / self.rows_per) as usize;
        Some(self.load(p, (end - start) as usize))
    }

    fn load(&self, p: usize, rows: usize) -> Result<CsrRows> {
        let n = self.counts.get(p).copied().unwrap_or(0) as usize;
        let stride = HEADER + self.itemsize;
        let mut raw = Vec::with_capacity(n * stride);
        if n > 0 {
            std::fs::File::open(self.file(p)).and_then(|mut f| f.read_to_end(&mut raw)).map_err(|e| io_err(e, "reading a partition"))?;
        }
        if raw.len() != n * stride {
            return Err(ConcatError::unsupported("", format!("scratch partition {p} holds {} bytes, expected {}", raw.len(), n * stride)));
        }
        let row_of = |i: usize| u32::from_le_bytes([raw[i * stride], raw[i * stride + 1], raw[i * stride + 2], raw[i * stride + 3]]) as usize;
        // Stable counting sort by row: columns stay increasing within each row.
        let mut indptr = vec![0i64; rows + 1];
        for i in 0..n {
            indptr[row_of(i).min(rows.saturating_sub(1)) + 1] += 1;
        }
        for r in 0..rows {
            indptr[r + 1] += indptr[r];
        }
        let mut next: Vec<i64> = indptr[..rows.max(1)].to_vec();
        let mut order = vec![0usize; n];
        for i in 0..n {
            let r = row_of(i).min(rows.saturating_sub(1));
            order[next[r] as usize] = i;
            next[r] += 1;
        }
        let mut indices = Vec::with_capacity(n);
        let mut sorted = vec![0u8; n * self.itemsize];
        for (j, &i) in order.iter().enumerate() {
            let at = i * stride;
            let mut c = [0u8; 8];
            c.copy_from_slice(&raw[at + 4..at + 12]);
            indices.push(u64::from_le_bytes(c) as i64);
            sorted[j * self.itemsize..(j + 1) * self.itemsize].copy_from_slice(&raw[at + HEADER..at + stride]);
        }
        let data = ArrayData::gather_native(self.dtype, &sorted, n, self.itemsize, 0)
            .ok_or_else(|| ConcatError::unsupported("", "scratch values could not be decoded"))?;
        Ok((indptr, indices, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adcat_format::WriteOptions;
    use adcat_zarr::{ZarrStore, ZarrVersion};

    /// Every partition equals the naive transpose of the stored matrix.
    #[test]
    fn partitions_are_the_transposed_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = ZarrStore::create(dir.path().join("m.zarr"), ZarrVersion::V3).unwrap();
        let (rows, cols) = (57usize, 23usize);
        let mut indptr = vec![0i64];
        let (mut indices, mut data) = (vec![], vec![]);
        for r in 0..rows {
            for c in 0..cols {
                if (r * 7 + c * 3).is_multiple_of(5) {
                    indices.push(c as i32);
                    data.push((r * 100 + c) as f64);
                }
            }
            indptr.push(indices.len() as i64);
        }
        let m = CsMatrix { format: SparseFormat::Csr, shape: [rows as u64, cols as u64], data: ArrayData::from_vec(data), indices: ArrayData::from_vec(indices), indptr: ArrayData::from_vec(indptr) };
        m.write(&store, "X", &WriteOptions::default()).unwrap();
        let meta = SparseMeta::read(&store, "X").unwrap();
        // A tiny budget: one stored row per scan chunk, 4 KiB buffers.
        let t = Transposed::build(&store, "X", &meta, 4, 64).unwrap();
        let dense = |r: usize, c: usize| if (r * 7 + c * 3).is_multiple_of(5) { Some((r * 100 + c) as f64) } else { None };
        for start in (0..cols as u64).step_by(4) {
            let end = (start + 4).min(cols as u64);
            let (ip, ix, d) = t.block(start, end).unwrap().unwrap();
            let d = d.to_f64_vec().unwrap();
            for (k, c) in (start..end).enumerate() {
                let want: Vec<(i64, f64)> = (0..rows).filter_map(|r| dense(r, c as usize).map(|v| (r as i64, v))).collect();
                let got: Vec<(i64, f64)> = (ip[k] as usize..ip[k + 1] as usize).map(|j| (ix[j], d[j])).collect();
                assert_eq!(got, want, "oriented row {c}");
            }
        }
        assert!(t.block(1, 5).is_none(), "a block that is not a partition");
    }
}
