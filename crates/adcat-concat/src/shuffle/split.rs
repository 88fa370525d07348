//! The shuffled rows cut into consecutive datasets (annbatch's `dataset_0`, ...), or
//! kept whole.

/// `n` output rows in datasets of `per` rows (the last may hold fewer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Split {
    pub(crate) per: u64,
    pub(crate) n: u64,
}

impl Split {
    /// Every row in one dataset.
    pub(crate) fn whole(n: u64) -> Split {
        Split { per: n.max(1), n }
    }

    /// Number of datasets (at least one, possibly empty).
    pub(crate) fn count(&self) -> usize {
        self.n.div_ceil(self.per).max(1) as usize
    }

    /// Rows of dataset `k`.
    pub(crate) fn rows(&self, k: usize) -> u64 {
        let start = k as u64 * self.per;
        self.per.min(self.n.saturating_sub(start))
    }

    /// First output row of dataset `k`.
    pub(crate) fn start(&self, k: usize) -> u64 {
        k as u64 * self.per
    }

    /// The dataset of output row `p`.
    pub(crate) fn of(&self, p: u64) -> usize {
        (p / self.per) as usize
    }

    /// Output rows `start..end` cut at dataset boundaries: `(dataset, start, end)`.
    pub(crate) fn pieces(&self, start: u64, end: u64) -> Vec<(usize, u64, u64)> {
        let mut out = vec![];
        let mut s = start;
        while s < end {
            let k = self.of(s);
            let e = end.min(self.start(k) + self.per);
            out.push((k, s, e));
            s = e;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cut_at_boundaries() {
        let s = Split { per: 10, n: 25 };
        assert_eq!(s.count(), 3);
        assert_eq!(s.rows(2), 5);
        assert_eq!(s.pieces(8, 22), vec![(0, 8, 10), (1, 10, 20), (2, 20, 22)]);
        assert_eq!(Split::whole(0).count(), 1);
        assert_eq!(Split::whole(0).rows(0), 0);
    }
}
