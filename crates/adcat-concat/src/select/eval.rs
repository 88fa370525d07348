//! Evaluating a filter on a dataframe's columns, block by block.
//!
//! Types: numeric columns compare with numbers, boolean ones with `true`/`false`,
//! string columns and string categoricals with text (by code point; a categorical by its
//! labels, or for `<`-like comparisons of an ordered one by category order). A missing
//! value (NaN, a masked entry, a categorical's missing code) makes every comparison false
//! except `!=` and `not in`, which are true — as pandas compares NaN.

use super::expr::{Expr, Lit, Op};
use crate::columns::{cat_labels, col_kind, ColKind};
use crate::{ConcatError, Result};
use adcat_store::{join_path, DType, Store};
use std::cmp::Ordering;
use std::collections::HashMap;

/// One block of one column, as the filter compares it.
enum Vals {
    /// Numbers; NaN is missing.
    Num(Vec<f64>),
    /// Booleans with a missing flag.
    Bool(Vec<Option<bool>>),
    /// Text with a missing flag.
    Str(Vec<Option<String>>),
    /// Category positions (None: missing), with the labels or values and order flag.
    Cat { codes: Vec<Option<usize>>, labels: Vec<String>, numbers: Option<Vec<f64>>, ordered: bool },
}

/// A filter bound to one dataframe of one input.
pub(crate) struct Eval<'a> {
    store: &'a dyn Store,
    /// Each column's element path (`_index` names the dataframe's index).
    paths: HashMap<String, String>,
    kinds: HashMap<String, ColKind>,
}

fn type_error(file: &str, column: &str, kind: &ColKind, lit: &Lit, pos: usize) -> ConcatError {
    ConcatError::Options(format!("{file}: filter at position {pos}: column `{column}` ({kind}) cannot be compared with {lit}"))
}

impl<'a> Eval<'a> {
    /// Bind `expr`'s columns in dataframe `frame` of `store`.
    pub fn new(store: &'a dyn Store, frame: &str, expr: &Expr) -> Result<Self> {
        let (mut kinds, mut paths) = (HashMap::new(), HashMap::new());
        for c in expr.columns() {
            let p = if c == "_index" { crate::inputs::index_path(store, frame)? } else { join_path(frame, &c) };
            if !store.exists(&p)? {
                return Err(ConcatError::Options(format!("{}: /{frame} has no column `{c}` (used by the filter)", store.location())));
            }
            kinds.insert(c.clone(), col_kind(store, &p)?);
            paths.insert(c, p);
        }
        let e = Eval { store, paths, kinds };
        e.check(expr)?;
        Ok(e)
    }

    /// Refuse comparisons the column's type cannot make (before reading any rows).
    fn check(&self, e: &Expr) -> Result<()> {
        match e {
            Expr::Cmp { column, op, lit, pos } => self.check_lit(column, Some(*op), lit, *pos),
            Expr::In { column, lits, pos, .. } => lits.iter().try_for_each(|l| self.check_lit(column, None, l, *pos)),
            Expr::And(a, b) | Expr::Or(a, b) => self.check(a).and(self.check(b)),
            Expr::Not(a) => self.check(a),
        }
    }

    fn check_lit(&self, column: &str, op: Option<Op>, lit: &Lit, pos: usize) -> Result<()> {
        let kind = &self.kinds[column];
        let ordering = matches!(op, Some(Op::Lt | Op::Le | Op::Gt | Op::Ge));
        let ok = match (kind, lit) {
            (ColKind::Num(DType::Bool) | ColKind::NBool, Lit::Bool(_)) => !ordering,
            (ColKind::Num(d), Lit::Num(_)) | (ColKind::NInt(d), Lit::Num(_)) => *d != DType::Bool,
            (ColKind::Str | ColKind::NStr(_), Lit::Str(_)) => true,
            (ColKind::Cat { categories, ordered }, l) => {
                let numeric = categories.dtype() != DType::String;
                let typed = matches!((numeric, l), (true, Lit::Num(_)) | (false, Lit::Str(_)));
                if typed && ordering && !ordered {
                    return Err(ConcatError::Options(format!("{}: filter at position {pos}: column `{column}` is an unordered categorical; `{}` needs an ordered one (use == or in)", self.store.location(), op.unwrap_or(Op::Lt))));
                }
                if typed && ordering && self.cat_position(column, l).is_none() {
                    return Err(ConcatError::Options(format!("{}: filter at position {pos}: {l} is not a category of the ordered column `{column}`", self.store.location())));
                }
                typed
            }
            _ => false,
        };
        if ok { Ok(()) } else { Err(type_error(self.store.location(), column, kind, lit, pos)) }
    }

    fn cat_position(&self, column: &str, lit: &Lit) -> Option<usize> {
        let ColKind::Cat { categories, .. } = &self.kinds[column] else { return None };
        match lit {
            Lit::Str(s) => cat_labels(categories).iter().position(|c| c == s),
            Lit::Num(x) => categories.to_f64_vec()?.iter().position(|c| c == x),
            Lit::Bool(_) => None,
        }
    }

    /// Which of rows `s..e` pass `expr`.
    pub fn rows(&self, expr: &Expr, s: u64, e: u64) -> Result<Vec<bool>> {
        let mut cache = HashMap::new();
        self.eval(expr, s, e, &mut cache)
    }

    fn eval(&self, e: &Expr, s: u64, end: u64, cache: &mut HashMap<String, std::rc::Rc<Vals>>) -> Result<Vec<bool>> {
        Ok(match e {
            Expr::Cmp { column, op, lit, .. } => {
                let v = self.vals(column, s, end, cache)?;
                compare(&v, |x| cmp_one(x, lit, &v).map(|o| holds(*op, o)), *op == Op::Ne)
            }
            Expr::In { column, lits, negated, .. } => {
                let v = self.vals(column, s, end, cache)?;
                let hit = compare(&v, |x| Some(lits.iter().any(|l| cmp_one(x, l, &v) == Some(Ordering::Equal))), false);
                if *negated { hit.into_iter().map(|b| !b).collect() } else { hit }
            }
            Expr::And(a, b) => zip(self.eval(a, s, end, cache)?, self.eval(b, s, end, cache)?, |x, y| x && y),
            Expr::Or(a, b) => zip(self.eval(a, s, end, cache)?, self.eval(b, s, end, cache)?, |x, y| x || y),
            Expr::Not(a) => self.eval(a, s, end, cache)?.into_iter().map(|b| !b).collect(),
        })
    }

    fn vals(&self, column: &str, s: u64, e: u64, cache: &mut HashMap<String, std::rc::Rc<Vals>>) -> Result<std::rc::Rc<Vals>> {
        if let Some(v) = cache.get(column) {
            return Ok(v.clone());
        }
        let p = self.paths[column].clone();
        let st = self.store;
        let mask = |p: &str| -> Result<Vec<bool>> { Ok(st.read_rows(&join_path(p, "mask"), s, e)?.to_i64_vec().unwrap_or_default().into_iter().map(|m| m != 0).collect()) };
        let v = match &self.kinds[column] {
            ColKind::Num(DType::Bool) => Vals::Bool(st.read_rows(&p, s, e)?.to_i64_vec().unwrap_or_default().into_iter().map(|x| Some(x != 0)).collect()),
            ColKind::Num(_) => Vals::Num(st.read_rows(&p, s, e)?.to_f64_vec().unwrap_or_default()),
            ColKind::NInt(_) => {
                let vals = st.read_rows(&join_path(&p, "values"), s, e)?.to_f64_vec().unwrap_or_default();
                Vals::Num(vals.into_iter().zip(mask(&p)?).map(|(x, m)| if m { f64::NAN } else { x }).collect())
            }
            ColKind::NBool => {
                let vals = st.read_rows(&join_path(&p, "values"), s, e)?.to_i64_vec().unwrap_or_default();
                Vals::Bool(vals.into_iter().zip(mask(&p)?).map(|(x, m)| (!m).then_some(x != 0)).collect())
            }
            ColKind::Str => Vals::Str(strings(st.read_rows(&p, s, e)?).into_iter().map(Some).collect()),
            ColKind::NStr(_) => {
                let vals = strings(st.read_rows(&join_path(&p, "values"), s, e)?);
                Vals::Str(vals.into_iter().zip(mask(&p)?).map(|(x, m)| (!m).then_some(x)).collect())
            }
            ColKind::Cat { categories, ordered } => {
                let codes = st.read_rows(&join_path(&p, "codes"), s, e)?.to_i64_vec().unwrap_or_default();
                let n = categories.len() as i64;
                Vals::Cat {
                    codes: codes.into_iter().map(|c| (0..n).contains(&c).then_some(c as usize)).collect(),
                    labels: cat_labels(categories),
                    numbers: (categories.dtype() != DType::String).then(|| categories.to_f64_vec().unwrap_or_default()),
                    ordered: *ordered,
                }
            }
        };
        let v = std::rc::Rc::new(v);
        cache.insert(column.to_owned(), v.clone());
        Ok(v)
    }
}

fn strings(a: adcat_store::ArrayData) -> Vec<String> {
    a.as_strings().map(|v| v.iter().cloned().collect()).unwrap_or_default()
}

fn zip(a: Vec<bool>, b: Vec<bool>, f: impl Fn(bool, bool) -> bool) -> Vec<bool> {
    a.into_iter().zip(b).map(|(x, y)| f(x, y)).collect()
}

fn holds(op: Op, o: Ordering) -> bool {
    match op {
        Op::Eq => o == Ordering::Equal,
        Op::Ne => o != Ordering::Equal,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
    }
}

/// One row's value, by position in its block.
#[derive(Clone, Copy)]
enum One<'v> {
    Num(f64),
    Bool(bool),
    Str(&'v str),
    Cat(usize),
}

/// `f` of each present value; `missing` for missing ones.
fn compare(v: &Vals, f: impl Fn(One<'_>) -> Option<bool>, missing: bool) -> Vec<bool> {
    let m = |r: Option<bool>| r.unwrap_or(missing);
    match v {
        Vals::Num(x) => x.iter().map(|&x| if x.is_nan() { missing } else { m(f(One::Num(x))) }).collect(),
        Vals::Bool(x) => x.iter().map(|x| x.map_or(missing, |b| m(f(One::Bool(b))))).collect(),
        Vals::Str(x) => x.iter().map(|x| x.as_deref().map_or(missing, |s| m(f(One::Str(s))))).collect(),
        Vals::Cat { codes, .. } => codes.iter().map(|c| c.map_or(missing, |c| m(f(One::Cat(c))))).collect(),
    }
}

/// How a present value compares with `lit` (types were checked when binding).
fn cmp_one(x: One<'_>, lit: &Lit, v: &Vals) -> Option<Ordering> {
    match (x, lit) {
        (One::Num(a), Lit::Num(b)) => a.partial_cmp(b),
        (One::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (One::Str(a), Lit::Str(b)) => Some(a.cmp(b.as_str())),
        (One::Cat(c), lit) => {
            let Vals::Cat { labels, numbers, ordered, .. } = v else { return None };
            let pos = match (numbers, lit) {
                (Some(n), Lit::Num(b)) => n.iter().position(|x| x == b),
                (None, Lit::Str(b)) => labels.iter().position(|x| x == b),
                _ => None,
            };
            match pos {
                Some(p) if *ordered => Some(c.cmp(&p)),
                Some(p) => Some(if c == p { Ordering::Equal } else { Ordering::Less }),
                // A value that is not a category equals no row.
                None => Some(Ordering::Less),
            }
        }
        _ => None,
    }
}
