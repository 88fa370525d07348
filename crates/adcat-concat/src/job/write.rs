//! The writing tasks: dense rows, and a sparse element's share of value and `indptr`
//! write units. Blocks are read and converted on a helper thread while the task's own
//! thread encodes and writes the previous one (`crate::pipe`).

use super::{output, Blk, Executor, MatrixElement};
use crate::matrix::Block;
use crate::{pipe, ConcatError, Result};
use adcat_format::stream::Appender;
use adcat_store::{join_path, ArrayData, DType};

fn cast(a: ArrayData, to: DType, path: &str) -> Result<ArrayData> {
    if a.dtype() == to {
        return Ok(a);
    }
    let from = a.dtype();
    a.cast(to).ok_or_else(|| ConcatError::unsupported(path, format!("cannot cast {from} values to {to}")))
}

/// Entries `a..b` of a block's array: the array itself when that is all of it (a task's
/// blocks mostly lie inside its share), a copy otherwise.
fn rows_of(x: ArrayData, a: u64, b: u64) -> ArrayData {
    if a == 0 && b as usize == x.len() { x } else { x.slice_rows(a as usize, b as usize) }
}

/// The part `part` of `parts` of `len` rows cut in `unit`-row write units: `[start, end)`.
pub(super) fn unit_share(len: u64, unit: u64, part: u64, parts: u64) -> (u64, u64) {
    let units = len.div_ceil(unit.max(1));
    let parts = parts.max(1);
    let (a, b) = (part * units / parts, (part + 1) * units / parts);
    ((a * unit).min(len), (b * unit).min(len))
}

impl Executor<'_> {
    /// Stored bytes of block `b`'s source rows (the progress unit).
    fn block_bytes(&self, el: &MatrixElement, b: &Blk) -> Result<u64> {
        Ok(match self.source(el, b.src)? {
            Some(s) => s.data_bytes() * b.rows() / s.n_rows().max(1),
            None => 0,
        })
    }

    /// Load `blocks` on a helper thread; `consume` gets each converted block in order.
    fn stream(&self, el: &MatrixElement, blocks: &[Blk], mut consume: impl FnMut(&Blk, Block) -> Result<()>) -> Result<()> {
        pipe::pipeline(
            |send| {
                for b in blocks {
                    if !send((*b, self.load(el, b)?)) {
                        break;
                    }
                }
                Ok(())
            },
            |(b, block)| {
                consume(&b, block)?;
                self.progress.advance(self.block_bytes(el, &b)?);
                Ok(())
            },
        )
    }

    /// Write rows `rows` of a dense element.
    pub(super) fn write_dense(&self, el: &MatrixElement, rows: [u64; 2]) -> Result<()> {
        let blocks = el.blocks(rows[0], rows[1]);
        if el.transposed {
            // Stored [columns, rows]: the task writes column boxes (it owns every chunk).
            return self.stream(el, &blocks, |b, block| {
                let Block::Dense(a) = block else { return Err(ConcatError::unsupported(&el.path, "a sparse block in a dense element")) };
                let t = adcat_store::map_array!(cast(a, el.dtype, &el.path)?, x => x.t().as_standard_layout().to_owned());
                self.out.write(&el.path, &[0, b.at], &t).map_err(output)?;
                Ok(())
            });
        }
        let mut app = Appender::open_at(self.out, &el.path, rows[0]).map_err(output)?;
        self.stream(el, &blocks, |_, block| {
            let Block::Dense(a) = block else { return Err(ConcatError::unsupported(&el.path, "a sparse block in a dense element")) };
            app.push(self.out, cast(a, el.dtype, &el.path)?).map_err(output)
        })?;
        app.finish_to(self.out, rows[1]).map_err(output)
    }

    /// Write part `part` of `parts` of a sparse element, given the counts of every block
    /// of [`MatrixElement::all_blocks`].
    pub(super) fn write_sparse(&self, el: &MatrixElement, counts: &[u64], part: u64, parts: u64) -> Result<()> {
        let blocks = el.all_blocks();
        if blocks.len() != counts.len() {
            let why = format!("the counts cover {} blocks but the plan has {}; count again", counts.len(), blocks.len());
            return Err(ConcatError::unsupported(&el.path, why));
        }
        let mut offsets = Vec::with_capacity(counts.len() + 1);
        offsets.push(0u64);
        for c in counts {
            offsets.push(offsets.last().copied().unwrap_or(0) + c);
        }
        let nnz = offsets.last().copied().unwrap_or(0);
        if nnz > el.max_nnz {
            return Err(ConcatError::unsupported(&el.path, format!("{nnz} entries counted, more than the {} planned", el.max_nnz)));
        }
        let unit = |name: &str| -> Result<u64> { Ok(Appender::open_at(self.out, &join_path(&el.path, name), 0).map_err(output)?.unit()) };
        let (v0, v1) = unit_share(nnz, unit("data")?, part, parts);
        self.write_values(el, &blocks, &offsets, v0, v1)?;
        let (p0, p1) = unit_share(el.n_rows() + 1, unit("indptr")?, part, parts);
        self.write_indptr(el, &blocks, &offsets, p0, p1)
    }

    /// Values and indices `v0..v1` (whole units of both arrays).
    fn write_values(&self, el: &MatrixElement, blocks: &[Blk], offsets: &[u64], v0: u64, v1: u64) -> Result<()> {
        if v0 >= v1 {
            return Ok(());
        }
        let (dp, ip) = (join_path(&el.path, "data"), join_path(&el.path, "indices"));
        let index_dtype = self.out.array_meta(&ip).map_err(output)?.dtype;
        // Blocks ending after v0 and starting before v1.
        let first = offsets[1..].partition_point(|&end| end <= v0);
        let last = offsets[..blocks.len()].partition_point(|&start| start < v1);
        let mut data = Appender::open_at(self.out, &dp, v0).map_err(output)?;
        let mut indices = Appender::open_at(self.out, &ip, v0).map_err(output)?;
        let mut j = first;
        self.stream(el, &blocks[first..last.max(first)], |_, block| {
            let (lo, counted) = (offsets[j], offsets[j + 1] - offsets[j]);
            j += 1;
            let (d, ix) = match block {
                Block::Sparse { indptr, indices, data } if indptr.last().copied().unwrap_or(0) as u64 == counted => (data, ArrayData::from_vec(indices)),
                Block::SparseNative { indptr, indices, data } if indptr.last().copied().unwrap_or(0) as u64 == counted => (data, indices),
                _ => return Err(ConcatError::unsupported(&el.path, "a block holds another number of entries than counted: an input changed, or has repeated entries in a row")),
            };
            let (a, b) = (v0.max(lo) - lo, v1.min(lo + counted) - lo);
            if a < b {
                data.push(self.out, cast(rows_of(d, a, b), el.dtype, &dp)?).map_err(output)?;
                indices.push(self.out, cast(rows_of(ix, a, b), index_dtype, &ip)?).map_err(output)?;
            }
            Ok(())
        })?;
        data.finish_to(self.out, v1).map_err(output)?;
        indices.finish_to(self.out, v1).map_err(output)
    }

    /// `indptr[p0..p1]`: the offset of each row, from the block offsets and row counts.
    fn write_indptr(&self, el: &MatrixElement, blocks: &[Blk], offsets: &[u64], p0: u64, p1: u64) -> Result<()> {
        if p0 >= p1 {
            return Ok(());
        }
        let path = join_path(&el.path, "indptr");
        let dtype = self.out.array_meta(&path).map_err(output)?.dtype;
        let mut app = Appender::open_at(self.out, &path, p0).map_err(output)?;
        let first = blocks.partition_point(|b| b.at + b.rows() <= p0);
        for (j, b) in blocks.iter().enumerate().skip(first) {
            if b.at >= p1 {
                break;
            }
            let mut off = offsets[j];
            let mut vals = Vec::with_capacity(b.rows() as usize);
            for (k, c) in self.row_counts(el, b)?.into_iter().enumerate() {
                let r = b.at + k as u64;
                if r >= p0 && r < p1 {
                    vals.push(off as i64);
                }
                off += c;
            }
            if off != offsets[j + 1] {
                return Err(ConcatError::unsupported(&el.path, "rows hold another number of entries than counted: an input changed since counting"));
            }
            app.push(self.out, cast(ArrayData::from_vec(vals), dtype, &path)?).map_err(output)?;
        }
        let n = el.n_rows();
        if p1 == n + 1 {
            let nnz = offsets.last().copied().unwrap_or(0) as i64;
            app.push(self.out, cast(ArrayData::from_vec(vec![nnz]), dtype, &path)?).map_err(output)?;
        }
        app.finish_to(self.out, p1).map_err(output)
    }
}

#[cfg(test)]
mod tests {
    use super::unit_share;

    #[test]
    fn shares_are_whole_units_and_cover_everything() {
        for (len, unit, parts) in [(0, 4, 3), (10, 4, 3), (100, 7, 5), (5, 10, 4), (9, 1, 9)] {
            let mut next = 0;
            for p in 0..parts {
                let (a, b) = unit_share(len, unit, p, parts);
                assert_eq!(a, next);
                assert!(a % unit == 0 || a == len);
                next = b;
            }
            assert_eq!(next, len);
        }
    }
}
