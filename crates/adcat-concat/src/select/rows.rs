//! [`RowSel`]: which rows of an input a selection keeps, as a bitmap with rank counts
//! (two bits per row: 25 MB for 100 million rows), so that the k-th kept row is found in
//! logarithmic time and runs of kept rows are listed without materialising positions.

/// The rows kept of an input of `len` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSel {
    words: Vec<u64>,
    /// Kept rows before each word.
    rank: Vec<u64>,
    len: u64,
    count: u64,
}

/// Builds a [`RowSel`] block by block, in row order.
#[derive(Debug, Default)]
pub struct RowSelBuilder {
    words: Vec<u64>,
    len: u64,
}

impl RowSelBuilder {
    /// Append the next rows' verdicts.
    pub fn push(&mut self, keep: &[bool]) {
        for &k in keep {
            let bit = (self.len % 64) as u32;
            if bit == 0 {
                self.words.push(0);
            }
            if k {
                if let Some(w) = self.words.last_mut() {
                    *w |= 1 << bit;
                }
            }
            self.len += 1;
        }
    }

    /// The selection.
    pub fn finish(self) -> RowSel {
        let mut rank = Vec::with_capacity(self.words.len());
        let mut count = 0u64;
        for w in &self.words {
            rank.push(count);
            count += u64::from(w.count_ones());
        }
        RowSel { words: self.words, rank, len: self.len, count }
    }
}

impl RowSel {
    /// Every row of `len` kept.
    pub fn all(len: u64) -> RowSel {
        let mut b = RowSelBuilder::default();
        b.push(&vec![true; len as usize]);
        b.finish()
    }

    /// No row of `len` kept (the store itself as an input of `append`).
    pub fn none(len: u64) -> RowSel {
        let words = len.div_ceil(64) as usize;
        RowSel { words: vec![0; words], rank: vec![0; words], len, count: 0 }
    }

    /// Rows of the input.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the input has no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows kept.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether row `i` is kept.
    pub fn contains(&self, i: u64) -> bool {
        i < self.len && self.words[(i / 64) as usize] >> (i % 64) & 1 == 1
    }

    /// The input row of the `k`-th kept row (`k < count`).
    pub fn select(&self, k: u64) -> u64 {
        let w = self.rank.partition_point(|&r| r <= k).saturating_sub(1);
        let mut word = self.words[w];
        for _ in 0..(k - self.rank[w]) {
            word &= word - 1;
        }
        w as u64 * 64 + u64::from(word.trailing_zeros())
    }

    /// The input rows of kept rows `a..b`, as runs of consecutive rows `[start, end)`.
    pub fn runs(&self, a: u64, b: u64) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = vec![];
        if a >= b {
            return out;
        }
        let (mut row, mut left) = (self.select(a), b - a);
        while left > 0 && row < self.len {
            let word = self.words[(row / 64) as usize] >> (row % 64);
            if word == 0 {
                row = (row / 64 + 1) * 64;
                continue;
            }
            let skip = u64::from(word.trailing_zeros());
            let ones = u64::from((!(word >> skip)).trailing_zeros()).min(64 - row % 64 - skip).min(left);
            let start = row + skip;
            match out.last_mut() {
                Some(last) if last.1 == start => last.1 += ones,
                _ => out.push((start, start + ones)),
            }
            left -= ones;
            row = start + ones;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_and_runs_agree_with_positions() {
        let keep: Vec<bool> = (0..1000u64).map(|i| (i * 7919) % 13 < 6 || (300..520).contains(&i)).collect();
        let mut b = RowSelBuilder::default();
        for block in keep.chunks(97) {
            b.push(block);
        }
        let s = b.finish();
        let pos: Vec<u64> = (0..1000).filter(|&i| keep[i as usize]).collect();
        assert_eq!(s.count(), pos.len() as u64);
        for (k, &p) in pos.iter().enumerate() {
            assert_eq!(s.select(k as u64), p);
            assert!(s.contains(p));
        }
        for (a, b) in [(0, pos.len()), (5, 17), (100, 400), (pos.len() - 1, pos.len())] {
            let listed: Vec<u64> = s.runs(a as u64, b as u64).iter().flat_map(|&(x, y)| x..y).collect();
            assert_eq!(listed, pos[a..b]);
        }
        assert_eq!(RowSel::all(130).runs(0, 130), [(0, 130)]);
    }
}
