//! Reindexing sparse rows in their stored types: each entry's column is mapped to the
//! output's, the row is put back in ascending column order and its values move with
//! it — one pass over the entries, on all cores, with no widened or intermediate
//! arrays. This is the hot loop of an outer or inner join of sparse inputs.

use crate::index::Reindexer;
use adcat_store::{ArrayData, Element, Numeric};
use rayon::prelude::*;

/// An output column index type: i32 when the output's columns fit it (as the output's
/// `indices` array is then created), i64 otherwise.
trait Col: Copy + Default + Send + Sync + Element {
    fn from_pos(p: usize) -> Self;
}
impl Col for i32 {
    fn from_pos(p: usize) -> Self {
        p as i32
    }
}
impl Col for i64 {
    fn from_pos(p: usize) -> Self {
        p as i64
    }
}

/// Rows `indptr` (absolute into `indices`/`data`) reindexed with `re`, which must add
/// no filled entries. `None` when the stored types are not handled here (the caller
/// takes the general path).
pub(crate) fn remap(indptr: &[i64], indices: &ArrayData, data: &ArrayData, re: &Reindexer) -> Option<(Vec<i64>, ArrayData, ArrayData)> {
    let wide = re.new_len() > i32::MAX as usize;
    macro_rules! by_index {
        ($ix:expr) => {
            adcat_store::with_numeric!(data, d => {
                let (d, ix) = (d.as_slice()?, $ix.as_slice()?);
                Some(if wide { rows::<_, _, i64>(indptr, ix, d, re) } else { rows::<_, _, i32>(indptr, ix, d, re) })
            }, _s => None)
        };
    }
    match indices {
        ArrayData::I32(ix) => by_index!(ix),
        ArrayData::I64(ix) => by_index!(ix),
        ArrayData::U32(ix) => by_index!(ix),
        ArrayData::U16(ix) => by_index!(ix),
        _ => None,
    }
}

/// The parallel driver: parts of whole rows, reindexed independently and joined.
fn rows<I: Numeric + Copy + Sync, T: Element + Copy, C: Col>(indptr: &[i64], ix: &[I], d: &[T], re: &Reindexer) -> (Vec<i64>, ArrayData, ArrayData) {
    let n_rows = indptr.len().saturating_sub(1);
    let parts = rayon::current_num_threads() * 4;
    let per = n_rows.div_ceil(parts).max(4096);
    let monotone = is_monotone(&re.new_pos);
    let pieces: Vec<Part<C, T>> = (0..n_rows.div_ceil(per))
        .into_par_iter()
        .map(|p| {
            let rows = &indptr[p * per..=((p + 1) * per).min(n_rows)];
            if monotone { part_in_order(rows, ix, d, &re.new_pos) } else { part_sorted(rows, ix, d, re) }
        })
        .collect();
    let total: usize = pieces.iter().map(|p| p.cols.len()).sum();
    let mut out_ptr = Vec::with_capacity(n_rows + 1);
    out_ptr.push(0i64);
    let (mut cols, mut vals) = (Vec::with_capacity(total), Vec::with_capacity(total));
    for p in pieces {
        let base = cols.len() as i64;
        out_ptr.extend(p.ends.iter().map(|e| e + base));
        cols.extend_from_slice(&p.cols);
        vals.extend_from_slice(&p.vals);
    }
    (out_ptr, ArrayData::from_vec(cols), ArrayData::from_vec(vals))
}

/// Kept entries map to increasing columns: rows stay in order, no sorting needed
/// (a subset of the genes, or new genes only added after or between the old ones).
fn is_monotone(new_pos: &[i64]) -> bool {
    let mut last = -1;
    new_pos.iter().filter(|&&p| p >= 0).all(|&p| {
        let up = p > last;
        last = p;
        up
    })
}

/// Reindexed rows of one part: each row's end offset (relative to the part), columns
/// and values.
struct Part<C, T> {
    ends: Vec<i64>,
    cols: Vec<C>,
    vals: Vec<T>,
}

impl<C, T> Part<C, T> {
    fn with_capacity(rows: usize, entries: usize) -> Self {
        Part { ends: Vec::with_capacity(rows), cols: Vec::with_capacity(entries), vals: Vec::with_capacity(entries) }
    }
}

/// Entry range of a part's rows.
fn span(rows: &[i64]) -> (usize, usize) {
    (rows.first().copied().unwrap_or(0) as usize, rows.last().copied().unwrap_or(0) as usize)
}

/// New column of a stored index, or None when the column is dropped.
#[inline]
fn col_of<I: Numeric + Copy>(new_pos: &[i64], i: I) -> Option<usize> {
    let p = *new_pos.get(usize::try_from(i.to_i64()).ok()?)?;
    (p >= 0).then_some(p as usize)
}

fn part_in_order<I: Numeric + Copy, T: Copy, C: Col>(rows: &[i64], ix: &[I], d: &[T], new_pos: &[i64]) -> Part<C, T> {
    let (first, last) = span(rows);
    let mut out = Part::with_capacity(rows.len() - 1, last - first);
    for w in rows.windows(2) {
        for k in w[0] as usize..w[1] as usize {
            if let Some(c) = col_of(new_pos, ix[k]) {
                out.cols.push(C::from_pos(c));
                out.vals.push(d[k]);
            }
        }
        out.ends.push(out.cols.len() as i64);
    }
    out
}

/// Rows whose columns change order: long rows through a bitmap of the new columns
/// (O(width / 64 + entries)), short ones sorted. Output goes through a cursor into
/// arrays sized for every entry (a kept entry count never exceeds the stored one).
fn part_sorted<I: Numeric + Copy, T: Element + Copy, C: Col + Default>(rows: &[i64], ix: &[I], d: &[T], re: &Reindexer) -> Part<C, T> {
    let (first, last) = span(rows);
    let mut out = Part { ends: Vec::with_capacity(rows.len() - 1), cols: vec![C::default(); last - first], vals: vec![T::default(); last - first] };
    let words = re.new_len().div_ceil(64);
    let mut bits = vec![0u64; words];
    let mut at = vec![0usize; re.new_len()];
    let mut short: Vec<(usize, usize)> = vec![];
    let mut n = 0;
    for w in rows.windows(2) {
        let (lo, hi) = (w[0] as usize, w[1] as usize);
        if (hi - lo) * 8 < words {
            short.clear();
            short.extend((lo..hi).filter_map(|k| Some((col_of(&re.new_pos, ix[k])?, k))));
            short.sort_unstable();
            for &(c, k) in &short {
                out.cols[n] = C::from_pos(c);
                out.vals[n] = d[k];
                n += 1;
            }
        } else {
            for k in lo..hi {
                if let Some(c) = col_of(&re.new_pos, ix[k]) {
                    at[c] = k;
                    bits[c / 64] |= 1 << (c % 64);
                }
            }
            n += drain_bits(&mut bits, &at, d, &mut out.cols[n..], &mut out.vals[n..]);
        }
        out.ends.push(n as i64);
    }
    out.cols.truncate(n);
    out.vals.truncate(n);
    out
}

/// Emit the set bits' columns in ascending order with their values, clearing the
/// bitmap; returns how many were emitted.
fn drain_bits<T: Copy, C: Col>(bits: &mut [u64], at: &[usize], d: &[T], cols: &mut [C], vals: &mut [T]) -> usize {
    let mut n = 0;
    for (w, word) in bits.iter_mut().enumerate() {
        let mut b = std::mem::take(word);
        while b != 0 {
            let c = w * 64 + b.trailing_zeros() as usize;
            cols[n] = C::from_pos(c);
            vals[n] = d[at[c]];
            n += 1;
            b &= b - 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: map, drop, sort each row.
    fn naive(indptr: &[i64], ix: &[i64], d: &[f32], new_pos: &[i64]) -> (Vec<i64>, Vec<i32>, Vec<f32>) {
        let (mut p, mut c, mut v) = (vec![0i64], vec![], vec![]);
        for w in indptr.windows(2) {
            let mut row: Vec<(i64, f32)> = (w[0] as usize..w[1] as usize).filter(|&k| new_pos[ix[k] as usize] >= 0).map(|k| (new_pos[ix[k] as usize], d[k])).collect();
            row.sort_by_key(|e| e.0);
            c.extend(row.iter().map(|e| e.0 as i32));
            v.extend(row.iter().map(|e| e.1));
            p.push(c.len() as i64);
        }
        (p, c, v)
    }

    fn check(old: &[&str], new: &[&str], rows: &[Vec<i64>]) {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let re = Reindexer::new(&s(old), &s(new));
        let mut indptr = vec![0i64];
        let ix: Vec<i64> = rows.iter().flatten().copied().collect();
        for r in rows {
            indptr.push(indptr.last().unwrap() + r.len() as i64);
        }
        let d: Vec<f32> = (0..ix.len()).map(|k| k as f32 + 0.5).collect();
        let want = naive(&indptr, &ix, &d, &re.new_pos);
        for idx in [ArrayData::from_vec(ix.clone()), ArrayData::from_vec(ix.iter().map(|&i| i as i32).collect::<Vec<_>>())] {
            let (p, c, v) = remap(&indptr, &idx, &ArrayData::from_vec(d.clone()), &re).unwrap();
            assert_eq!(p, want.0);
            assert_eq!(c, ArrayData::from_vec(want.1.clone()));
            assert_eq!(v, ArrayData::from_vec(want.2.clone()));
        }
    }

    #[test]
    fn shuffled_columns_come_out_sorted_with_their_values() {
        let old = ["a", "b", "c", "d", "e"];
        let new = ["x", "e", "c", "a", "y", "d", "b"];
        check(&old, &new, &[vec![0, 1, 2, 3, 4], vec![], vec![4], vec![1, 3]]);
    }

    #[test]
    fn dropped_columns_vanish_and_monotone_maps_keep_order() {
        // inner join: b and d dropped; kept columns in the same order (the monotone path)
        check(&["a", "b", "c", "d"], &["a", "c"], &[vec![0, 1, 2, 3], vec![1, 3], vec![2]]);
        // dropped and reordered
        check(&["a", "b", "c", "d"], &["c", "a"], &[vec![0, 1, 2, 3], vec![1, 3], vec![0, 2]]);
    }

    #[test]
    fn long_rows_take_the_bitmap() {
        // a row of every column (n * 8 >= words) through the bitmap, and the short path
        let old: Vec<String> = (0..300).map(|i| format!("g{i}")).collect();
        let mut new = old.clone();
        new.reverse();
        new.push("extra".into());
        let o: Vec<&str> = old.iter().map(|s| s.as_str()).collect();
        let n: Vec<&str> = new.iter().map(|s| s.as_str()).collect();
        check(&o, &n, &[(0..300).collect(), vec![7], (0..300).step_by(3).collect()]);
    }
}
