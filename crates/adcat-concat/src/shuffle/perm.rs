//! A seeded pseudo-random permutation of `0..n` that needs no memory.
//!
//! Out-of-core shuffling must tell, for any cell, where it goes without holding a table
//! of `n` positions (800 MB for 100 M cells). A keyed Feistel network over the smallest
//! even bit width that covers `n` is a bijection on `0..2^bits`; *cycle walking*
//! (applying it again while the result is `>= n`) restricts it to a bijection on `0..n`.
//! Eight rounds of a 64-bit mixing function make it a pseudo-random permutation (Luby and
//! Rackoff: four rounds of a pseudo-random function suffice); like every seeded
//! generator, it reaches a subset of the `n!` orders, chosen by the 64-bit seed.
//!
//! The permutation depends only on `(seed, n)`: never on the memory budget, the block
//! sizes or the number of threads, so a seed reproduces an output anywhere.

const ROUNDS: usize = 8;

/// The permutation of `0..n` given by a seed.
#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    half: u32,
    keys: [u64; ROUNDS],
}

/// SplitMix64's output function: a bijective 64-bit mixer with full avalanche.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Permutation {
    /// The permutation of `0..n` for `seed`.
    pub fn new(n: u64, seed: u64) -> Self {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half = bits.div_ceil(2).max(1);
        let mut keys = [0u64; ROUNDS];
        let mut state = seed;
        for k in &mut keys {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            *k = mix(state);
        }
        Permutation { n, half, keys }
    }

    /// Size of the domain.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether the domain is empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn encrypt(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half) - 1;
        let (mut l, mut r) = (x >> self.half, x & mask);
        for k in &self.keys {
            let f = mix(r ^ k) & mask;
            (l, r) = (r, l ^ f);
        }
        (l << self.half) | r
    }

    /// Where position `i` (< n) goes.
    pub fn apply(&self, i: u64) -> u64 {
        debug_assert!(i < self.n);
        let mut x = self.encrypt(i);
        // The cipher's domain is less than 4n, so a walk takes under 4 steps on average;
        // it ends because the cipher's cycle through `i` returns to `i` (< n).
        while x >= self.n {
            x = self.encrypt(x);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_bijection_for_every_small_size() {
        for n in 0..300u64 {
            let p = Permutation::new(n, 7);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let j = p.apply(i) as usize;
                assert!(!seen[j], "n={n}: {j} hit twice");
                seen[j] = true;
            }
        }
    }

    #[test]
    fn depends_on_the_seed_and_spreads_positions() {
        let n = 10_000u64;
        let (a, b) = (Permutation::new(n, 1), Permutation::new(n, 2));
        let same = (0..n).filter(|&i| a.apply(i) == b.apply(i)).count();
        assert!(same < 10, "{same} fixed agreements between seeds");
        // Neighbours are not kept together: the mean distance of consecutive positions'
        // images is about n/3, as for a uniform permutation.
        let d: f64 = (1..n).map(|i| (a.apply(i) as f64 - a.apply(i - 1) as f64).abs()).sum::<f64>() / (n - 1) as f64;
        assert!((d - n as f64 / 3.0).abs() < n as f64 * 0.02, "mean jump {d}");
        // Each tenth of the input spreads evenly over the tenths of the output.
        let mut counts = [[0u32; 10]; 10];
        for i in 0..n {
            counts[(i * 10 / n) as usize][(a.apply(i) * 10 / n) as usize] += 1;
        }
        for row in counts {
            for c in row {
                assert!((60..=140).contains(&c), "cell count {c} (expected 100)");
            }
        }
    }
}
