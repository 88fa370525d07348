//! Read blocks of an element: the unit of counting and of locating a task's rows.
//!
//! Blocks are a pure function of the plan, so a count task and the write tasks that use
//! its counts (in other processes) agree on them without exchanging more than numbers.

use super::MatrixElement;

/// One read block: rows `start..end` of source `src`, landing at output row `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blk {
    /// Index into the element's sources.
    pub src: usize,
    /// First row in the source.
    pub start: u64,
    /// End row in the source.
    pub end: u64,
    /// Output row of `start`.
    pub at: u64,
}

impl Blk {
    /// Rows in the block.
    pub fn rows(&self) -> u64 {
        self.end - self.start
    }
}

/// The blocks covering output rows `r0..r1` of sources of `(rows, block_rows)` stacked in
/// order: within a source, boundaries fall on multiples of its `block_rows` (counted from
/// the source's first row) and at `r0` and `r1`.
pub(super) fn blocks_over(sources: impl Iterator<Item = (u64, u64)>, r0: u64, r1: u64) -> Vec<Blk> {
    let mut out = vec![];
    let mut base = 0u64;
    for (i, (rows, block_rows)) in sources.enumerate() {
        let (lo, hi) = (r0.max(base), r1.min(base + rows));
        let step = block_rows.max(1);
        let mut a = lo;
        while a < hi {
            let local = a - base;
            let end = ((local / step + 1) * step).min(hi - base);
            out.push(Blk { src: i, start: local, end, at: a });
            a = base + end;
        }
        base += rows;
    }
    out
}

impl MatrixElement {
    /// The blocks covering output rows `r0..r1` (see [`blocks_over`]).
    pub fn blocks(&self, r0: u64, r1: u64) -> Vec<Blk> {
        blocks_over(self.sources.iter().map(|s| (s.rows, s.block_rows)), r0, r1)
    }

    /// Every block of the element in count order: the blocks of each count span in turn.
    pub fn all_blocks(&self) -> Vec<Blk> {
        self.spans().into_iter().flat_map(|[a, b]| self.blocks(a, b)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Columns, MatrixSource};
    use super::*;
    use adcat_store::DType;

    #[test]
    fn blocks_tile_the_rows_and_respect_span_cuts() {
        let el = MatrixElement {
            path: "X".into(),
            sparse: true,
            transposed: false,
            dtype: DType::F32,
            fill: 0.0,
            n_cols: 3,
            sources: vec![
                MatrixSource { input: 0, path: Some("X".into()), rows: 10, block_rows: 4 },
                MatrixSource { input: 1, path: Some("X".into()), rows: 0, block_rows: 4 },
                MatrixSource { input: 2, path: None, rows: 7, block_rows: 3 },
            ],
            columns: Columns::Position,
            max_nnz: 0,
            task_rows: 6,
        };
        let all = el.all_blocks();
        let mut next = 0;
        for b in &all {
            assert_eq!(b.at, next);
            assert!(b.rows() > 0);
            next += b.rows();
        }
        assert_eq!(next, 17);
        // Source boundaries at multiples of block_rows, cut at the span edge 6 and 12.
        let firsts: Vec<(usize, u64, u64)> = all.iter().map(|b| (b.src, b.start, b.end)).collect();
        assert_eq!(firsts, vec![(0, 0, 4), (0, 4, 6), (0, 6, 8), (0, 8, 10), (2, 0, 2), (2, 2, 3), (2, 3, 6), (2, 6, 7)]);
    }
}
