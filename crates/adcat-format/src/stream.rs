//! Writing arrays as a stream of row blocks, in whole output shards/chunks.

use crate::layout::{Purpose, WriteOptions};
use crate::{FormatError, Result};
use adcat_store::{ArrayData, ArraySpec, DType, Store};

/// Appends row blocks to an array created with its final shape, buffering so that every
/// write covers whole shards (zarr v3) or chunks: no chunk is ever decoded and rewritten.
#[derive(Debug)]
pub struct Appender {
    path: String,
    spec: ArraySpec,
    flush_rows: u64,
    buf: Vec<ArrayData>,
    buffered: u64,
    written: u64,
}

impl Appender {
    /// Create the array at `path` with its final `shape` and the store's default layout.
    pub fn create(store: &dyn Store, path: &str, dtype: DType, shape: &[u64], purpose: Purpose, opts: &WriteOptions) -> Result<Self> {
        let spec = opts.spec(store.kind(), dtype, shape, purpose);
        store.create_array(path, &spec)?;
        let flush_rows = opts.block_rows(&spec).max(1);
        Ok(Appender { path: path.to_owned(), spec, flush_rows, buf: vec![], buffered: 0, written: 0 })
    }

    /// Rows written or buffered so far.
    pub fn rows(&self) -> u64 {
        self.written + self.buffered
    }

    /// Append a block of rows (same dtype and trailing shape as the array).
    pub fn push(&mut self, store: &dyn Store, block: ArrayData) -> Result<()> {
        let n = block.shape().first().copied().unwrap_or(0);
        if block.dtype() != self.spec.dtype {
            return Err(FormatError::invalid(&self.path, format!("block of {} appended to a {} array", block.dtype(), self.spec.dtype)));
        }
        if self.rows() + n > self.spec.shape[0] {
            return Err(FormatError::invalid(&self.path, format!("more than the planned {} rows", self.spec.shape[0])));
        }
        if n == 0 {
            return Ok(());
        }
        self.buf.push(block);
        self.buffered += n;
        if self.buffered >= self.flush_rows {
            self.flush(store, false)?;
        }
        Ok(())
    }

    fn flush(&mut self, store: &dyn Store, all: bool) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let joined = if self.buf.len() == 1 {
            self.buf.pop().unwrap_or_else(|| ArrayData::zeros(self.spec.dtype, &[0]))
        } else {
            ArrayData::concat_rows(&self.buf).ok_or_else(|| FormatError::invalid(&self.path, "blocks of different shapes"))?
        };
        self.buf.clear();
        // Write whole units only; keep the tail for the next flush unless finishing.
        let take = if all { self.buffered } else { self.buffered / self.flush_rows * self.flush_rows };
        if take == self.buffered {
            store.write_rows(&self.path, self.written, &joined)?;
        } else {
            if take > 0 {
                store.write_rows(&self.path, self.written, &joined.slice_rows(0, take as usize))?;
            }
            self.buf.push(joined.slice_rows(take as usize, self.buffered as usize));
        }
        self.written += take;
        self.buffered -= take;
        Ok(())
    }

    /// Write what is buffered and shrink the array to `rows` rows (for arrays created
    /// with an upper bound, e.g. sparse `data` before reindexing drops entries).
    pub fn finish_at(mut self, store: &dyn Store, rows: u64) -> Result<()> {
        self.flush(store, true)?;
        if self.written != rows {
            return Err(FormatError::invalid(&self.path, format!("wrote {} rows, expected {rows}", self.written)));
        }
        if rows != self.spec.shape[0] {
            let mut shape = self.spec.shape.clone();
            shape[0] = rows;
            store.resize(&self.path, &shape)?;
        }
        Ok(())
    }

    /// Write what is buffered and check the array is complete.
    pub fn finish(mut self, store: &dyn Store) -> Result<()> {
        self.flush(store, true)?;
        if self.written != self.spec.shape[0] {
            return Err(FormatError::invalid(&self.path, format!("wrote {} of the planned {} rows", self.written, self.spec.shape[0])));
        }
        Ok(())
    }
}
