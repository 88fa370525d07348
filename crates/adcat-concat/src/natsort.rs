//! Natural sort order of category labels, as Python's `natsort.natsorted` (default
//! algorithm: runs of digits compare as integers, everything else as text).

use std::cmp::Ordering;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part<'a> {
    // natsort's key puts strings and numbers in alternating tuple slots; comparing a
    // number with text happens only at the start, where natsort orders numbers first.
    Num(u128),
    Text(&'a str),
}

fn parts(s: &str) -> Vec<Part<'_>> {
    let mut out = vec![];
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        if b[i].is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &s[start..i];
            out.push(Part::Num(digits.parse().unwrap_or(u128::MAX)));
        } else {
            while i < b.len() && !b[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Part::Text(&s[start..i]));
        }
    }
    out
}

/// Compare two labels in natural order. natsort is stable and its input (a pandas
/// union) is in code-point order, so equal keys (`a1`, `a01`) fall back to that order.
pub fn natcmp(a: &str, b: &str) -> Ordering {
    parts(a).cmp(&parts(b)).then_with(|| a.cmp(b))
}

/// Sort labels in natural order.
pub fn natsort(v: &mut [String]) {
    v.sort_by(|a, b| natcmp(a, b));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v: Vec<String> = ["c10", "c2", "c1", "b", "a10", "a9", "10", "9"].iter().map(|s| s.to_string()).collect();
        natsort(&mut v);
        assert_eq!(v, ["9", "10", "a9", "a10", "b", "c1", "c2", "c10"]);
    }
}
