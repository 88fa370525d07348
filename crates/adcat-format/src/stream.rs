//! Writing arrays as a stream of row blocks, in whole output shards/chunks.

use crate::layout::{Purpose, WriteOptions};
use crate::{FormatError, Result};
use adcat_store::{ArrayData, ArraySpec, DType, Store};

/// Appends row blocks to an array created with its final shape so that every write
/// covers whole shards (zarr v3) or chunks: no chunk is ever decoded and rewritten.
///
/// Whole units are written straight from the pushed block; only the part of a block that
/// does not fill a unit (less than one shard or chunk) is copied and held back.
#[derive(Debug)]
pub struct Appender {
    path: String,
    spec: ArraySpec,
    /// Rows per write unit (shard or chunk; 1 for contiguous arrays).
    unit: u64,
    /// Rows held back, less than one unit in all.
    pending: Vec<ArrayData>,
    buffered: u64,
    written: u64,
}

impl Appender {
    /// Create the array at `path` with its final `shape` and the store's default layout.
    pub fn create(store: &dyn Store, path: &str, dtype: DType, shape: &[u64], purpose: Purpose, opts: &WriteOptions) -> Result<Self> {
        let spec = opts.spec(store.kind(), dtype, shape, purpose);
        store.create_array(path, &spec)?;
        let unit = spec.shards.as_ref().or(spec.chunks.as_ref()).and_then(|c| c.first().copied()).unwrap_or(1).max(1);
        Ok(Appender { path: path.to_owned(), spec, unit, pending: vec![], buffered: 0, written: 0 })
    }

    /// Continue writing the existing array at `path` from row `start`, which must be at
    /// the start of a write unit: how a task of a job writes its own rows of an element
    /// that other tasks write too.
    pub fn open_at(store: &dyn Store, path: &str, start: u64) -> Result<Self> {
        let m = store.array_meta(path)?;
        let unit = m.shards.as_ref().or(m.chunks.as_ref()).and_then(|c| c.first().copied()).unwrap_or(1).max(1);
        if !start.is_multiple_of(unit) && start != m.shape.first().copied().unwrap_or(0) {
            return Err(FormatError::invalid(path, format!("a write starting at row {start} is not on a {unit}-row unit boundary")));
        }
        let mut spec = ArraySpec::new(m.dtype, m.shape.clone());
        spec.chunks = m.chunks;
        spec.shards = m.shards;
        Ok(Appender { path: path.to_owned(), spec, unit, pending: vec![], buffered: 0, written: start })
    }

    /// Rows per write unit (shard, chunk, or 1 for contiguous arrays).
    pub fn unit(&self) -> u64 {
        self.unit
    }

    /// Write what is buffered and check the rows end at `end` (see [`Appender::open_at`]).
    pub fn finish_to(mut self, store: &dyn Store, end: u64) -> Result<()> {
        self.write_pending(store)?;
        if self.written != end {
            return Err(FormatError::invalid(&self.path, format!("wrote up to row {}, expected {end}", self.written)));
        }
        Ok(())
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
        if self.buffered + n < self.unit {
            self.pending.push(block);
            self.buffered += n;
            return Ok(());
        }
        let mut off = 0u64;
        if self.buffered > 0 {
            // Complete the held-back unit with the head of this block.
            off = self.unit - self.buffered;
            self.pending.push(block.slice_rows(0, off as usize));
            self.buffered = self.unit;
            self.write_pending(store)?;
        }
        let whole = (n - off) / self.unit * self.unit;
        if whole > 0 {
            store.write_rows_range(&self.path, self.written, &block, off as usize..(off + whole) as usize)?;
            self.written += whole;
            off += whole;
        }
        if off < n {
            self.pending.push(if off == 0 { block } else { block.slice_rows(off as usize, n as usize) });
            self.buffered = n - off;
        }
        Ok(())
    }

    fn write_pending(&mut self, store: &dyn Store) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let joined = if self.pending.len() == 1 {
            self.pending.pop().unwrap_or_else(|| ArrayData::zeros(self.spec.dtype, &[0]))
        } else {
            ArrayData::concat_rows(&self.pending).ok_or_else(|| FormatError::invalid(&self.path, "blocks of different shapes"))?
        };
        self.pending.clear();
        store.write_rows(&self.path, self.written, &joined)?;
        self.written += self.buffered;
        self.buffered = 0;
        Ok(())
    }

    /// Write what is buffered and shrink the array to `rows` rows (for arrays created
    /// with an upper bound, e.g. sparse `data` before reindexing drops entries).
    pub fn finish_at(mut self, store: &dyn Store, rows: u64) -> Result<()> {
        self.write_pending(store)?;
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
        self.write_pending(store)?;
        if self.written != self.spec.shape[0] {
            return Err(FormatError::invalid(&self.path, format!("wrote {} of the planned {} rows", self.written, self.spec.shape[0])));
        }
        Ok(())
    }
}
