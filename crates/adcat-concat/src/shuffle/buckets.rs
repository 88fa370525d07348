//! Scratch files that carry rows from their input order to their output block.
//!
//! The scatter pass reads an element in input order and appends each row to the file of
//! the output block it lands in (a *bucket*: `rows_per` consecutive output rows) as a
//! record `(row within the bucket: u32, length: u32, bytes)`. The gather pass loads one
//! bucket at a time and places its rows. Files are opened per flush (never one
//! descriptor per bucket) and removed as they are read; the directory goes when the
//! [`Buckets`] is dropped.

use crate::{ConcatError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The buckets of one element.
#[derive(Debug)]
pub(crate) struct Buckets {
    dir: tempfile::TempDir,
    rows_per: u64,
    bufs: Vec<Vec<u8>>,
    cap: usize,
}

fn io_err(e: std::io::Error, what: &str) -> ConcatError {
    ConcatError::unsupported("", format!("shuffling through scratch files ({what}): {e}"))
}

impl Buckets {
    /// Buckets of `rows_per` rows for `n` rows, in a new directory under `parent`
    /// (`None`: the system's temporary directory); `buffers` bounds the bytes held in
    /// write buffers.
    pub(crate) fn new(parent: Option<&Path>, n: u64, rows_per: u64, buffers: u64) -> Result<Buckets> {
        let rows_per = rows_per.max(1);
        let count = n.div_ceil(rows_per).max(1) as usize;
        let builder = {
            let mut b = tempfile::Builder::new();
            b.prefix(".adcat-shuffle-");
            b
        };
        let dir = match parent {
            Some(p) => builder.tempdir_in(p),
            None => builder.tempdir(),
        }
        .map_err(|e| io_err(e, "creating the scratch directory"))?;
        let cap = (buffers / count as u64).clamp(4 << 10, 4 << 20) as usize;
        Ok(Buckets { dir, rows_per, bufs: vec![Vec::new(); count], cap })
    }

    /// Number of buckets.
    pub(crate) fn count(&self) -> usize {
        self.bufs.len()
    }

    fn file(&self, b: usize) -> PathBuf {
        self.dir.path().join(format!("bucket-{b}"))
    }

    /// Append the row that goes to output position `pos`.
    pub(crate) fn put(&mut self, pos: u64, bytes: &[u8]) -> Result<()> {
        let b = (pos / self.rows_per) as usize;
        let within = (pos % self.rows_per) as u32;
        let len = u32::try_from(bytes.len()).map_err(|_| ConcatError::unsupported("", format!("a row of {} bytes is too long to shuffle", bytes.len())))?;
        let buf = &mut self.bufs[b];
        buf.extend_from_slice(&within.to_le_bytes());
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(bytes);
        if buf.len() >= self.cap {
            self.flush(b)?;
        }
        Ok(())
    }

    fn flush(&mut self, b: usize) -> Result<()> {
        if self.bufs[b].is_empty() {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(self.file(b)).map_err(|e| io_err(e, "opening a bucket"))?;
        f.write_all(&self.bufs[b]).map_err(|e| io_err(e, "writing a bucket"))?;
        self.bufs[b].clear();
        Ok(())
    }

    /// Write out every buffer: the scatter pass is over.
    pub(crate) fn seal(&mut self) -> Result<()> {
        for b in 0..self.bufs.len() {
            self.flush(b)?;
        }
        self.bufs = vec![Vec::new(); self.bufs.len()];
        Ok(())
    }

    /// The records of bucket `b` (its file is removed).
    pub(crate) fn take(&self, b: usize) -> Result<Vec<u8>> {
        let path = self.file(b);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(e, "reading a bucket")),
        };
        let _ = std::fs::remove_file(&path);
        Ok(data)
    }
}

impl Buckets {
    /// The gather pass: every bucket in output order, its rows cut at the datasets'
    /// boundaries of `split`; `f` gets each piece's dataset and its rows' bytes, in
    /// order. `n` is the number of rows.
    pub(crate) fn gather(&self, n: u64, split: &super::split::Split, mut f: impl FnMut(usize, &[&[u8]]) -> Result<()>) -> Result<()> {
        for b in 0..self.count() {
            let start = b as u64 * self.rows_per;
            let rows = self.rows_per.min(n - start) as usize;
            let data = self.take(b)?;
            let slots = by_row(&data, rows)?;
            for (k, lo, hi) in split.pieces(start, start + rows as u64) {
                f(k, &slots[(lo - start) as usize..(hi - start) as usize])?;
            }
        }
        Ok(())
    }
}

/// The records of a bucket's bytes: `(row within the bucket, row bytes)`.
pub(crate) fn records(buf: &[u8]) -> impl Iterator<Item = Result<(usize, &[u8])>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= buf.len() {
            return None;
        }
        let Some(head) = buf.get(at..at + 8) else {
            at = buf.len();
            return Some(Err(ConcatError::unsupported("", "a shuffle scratch file is truncated")));
        };
        let within = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let body = buf.get(at + 8..at + 8 + len);
        at += 8 + len;
        Some(body.map(|b| (within, b)).ok_or_else(|| ConcatError::unsupported("", "a shuffle scratch file is truncated")))
    })
}

/// Place a bucket's records by row: `slots[r]` is row `r`'s bytes. Every row of the
/// bucket must arrive exactly once.
pub(crate) fn by_row(buf: &[u8], rows: usize) -> Result<Vec<&[u8]>> {
    let mut slots: Vec<Option<&[u8]>> = vec![None; rows];
    for rec in records(buf) {
        let (r, bytes) = rec?;
        match slots.get_mut(r) {
            Some(s @ None) => *s = Some(bytes),
            _ => return Err(ConcatError::unsupported("", format!("shuffle scratch: row {r} of a {rows}-row bucket arrived twice or out of range"))),
        }
    }
    slots.into_iter().enumerate().map(|(r, s)| s.ok_or_else(|| ConcatError::unsupported("", format!("shuffle scratch: row {r} of a bucket is missing")))).collect()
}
