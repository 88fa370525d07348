//! Streaming the buffers of a concatenated awkward array: every output buffer is built
//! from pieces (a range of an input buffer, rebased or cast, or generated values), read
//! and written in blocks, so memory stays bounded whatever the array's size.

use super::form::{group, candidates, Form};
use super::AwkSource;
use crate::{At, ConcatError, Result};
use adcat_format::layout::{Purpose, WriteOptions};
use adcat_format::stream::Appender;
use adcat_format::Encoding;
use adcat_store::{join_path, ArrayData, DType, Store};

/// Where a part's values come from.
#[derive(Debug, Clone, Copy)]
pub enum Src<'a> {
    /// An input's stored buffers.
    Stored(&'a AwkSource<'a>),
    /// An input without the element (outer join): every value `None`.
    Missing,
    /// A generated numeric part (a missing layer): every number this value.
    Fill(f64),
}

/// A run of consecutive values of one node: `len` values from position `start`.
#[derive(Debug, Clone)]
pub struct Part<'a> {
    pub src: Src<'a>,
    pub form: Form,
    pub start: u64,
    pub len: u64,
}

impl<'a> Part<'a> {
    fn child(&self, form: &Form, start: u64, len: u64) -> Part<'a> {
        Part { src: self.src, form: form.clone(), start, len }
    }

    fn stored(&self) -> Result<&'a AwkSource<'a>> {
        match self.src {
            Src::Stored(s) => Ok(s),
            _ => Err(ConcatError::unsupported("", "awkward: a generated part reached a stored node")),
        }
    }

    fn read(&self, buffer: &str, start: u64, end: u64) -> Result<ArrayData> {
        let s = self.stored()?;
        s.store.read_rows(&join_path(&s.path, buffer), start, end).at(s.store)
    }

    fn read_i64(&self, buffer: &str, start: u64, end: u64) -> Result<Vec<i64>> {
        let s = self.stored()?;
        self.read(buffer, start, end)?.to_i64_vec().ok_or_else(|| bad(s, buffer, "is not an integer buffer"))
    }

    fn rows(&self, buffer: &str) -> Result<u64> {
        let s = self.stored()?;
        let m = s.store.array_meta(&join_path(&s.path, buffer)).at(s.store)?;
        Ok(m.shape.first().copied().unwrap_or(0))
    }
}

fn bad(s: &AwkSource<'_>, buffer: &str, why: &str) -> ConcatError {
    ConcatError::Input { file: s.store.location().into(), source: adcat_format::FormatError::invalid(&join_path(&s.path, buffer), format!("awkward buffer {why}")) }
}

/// The number of values of `form` stored in `s`'s buffers.
pub fn node_len(part: &Part<'_>, form: &Form) -> Result<u64> {
    Ok(match form {
        Form::Empty => 0,
        Form::Numpy { key, .. } => part.rows(&format!("{key}-data"))?,
        Form::List { key, .. } => part.rows(&format!("{key}-offsets"))?.saturating_sub(1),
        Form::Regular { size: 0, .. } => 0,
        Form::Regular { size, content, .. } => node_len(part, content)? / size,
        Form::Record { contents, .. } => {
            let mut n: Option<u64> = None;
            for c in contents {
                let l = node_len(part, c)?;
                n = Some(n.map_or(l, |m| m.min(l)));
            }
            n.unwrap_or(0)
        }
        Form::IndexedOption { key, .. } => part.rows(&format!("{key}-index"))?,
        Form::ByteMasked { key, .. } => part.rows(&format!("{key}-mask"))?,
        Form::Unmasked { content, .. } => node_len(part, content)?,
        Form::Union { key, .. } => part.rows(&format!("{key}-tags"))?,
    })
}

type Produce<'p> = Box<dyn Fn(u64, u64) -> Result<ArrayData> + 'p>;

/// `rows` values of one output buffer, produced block by block (`start..end` within
/// the piece).
struct Piece<'p> {
    rows: u64,
    produce: Produce<'p>,
}

fn fill_i64<'p>(value: i64, rows: u64) -> Piece<'p> {
    Piece { rows, produce: Box::new(move |s, e| Ok(ArrayData::from_vec(vec![value; (e - s) as usize]))) }
}

fn range<'p>(base: i64, step: i64, rows: u64) -> Piece<'p> {
    Piece { rows, produce: Box::new(move |s, e| Ok(ArrayData::from_vec((s..e).map(|k| base + step * k as i64).collect::<Vec<i64>>()))) }
}

/// Values of a stored integer buffer mapped by `f`.
fn mapped<'p>(part: &'p Part<'_>, buffer: String, start: u64, rows: u64, f: impl Fn(i64) -> i64 + 'p) -> Piece<'p> {
    Piece { rows, produce: Box::new(move |s, e| Ok(ArrayData::from_vec(part.read_i64(&buffer, start + s, start + e)?.into_iter().map(&f).collect::<Vec<i64>>()))) }
}

/// Where the output goes.
pub struct Ctx<'o> {
    pub out: &'o dyn Store,
    pub path: String,
    pub opts: &'o WriteOptions,
    pub block: u64,
}

impl Ctx<'_> {
    fn write(&self, buffer: &str, dtype: DType, pieces: Vec<Piece<'_>>) -> Result<()> {
        let total: u64 = pieces.iter().map(|p| p.rows).sum();
        let path = join_path(&self.path, buffer);
        let mut app = Appender::create(self.out, &path, dtype, &[total], Purpose::Dense, self.opts).map_err(ConcatError::Output)?;
        for p in &pieces {
            let mut s = 0;
            while s < p.rows {
                let e = (s + self.block.max(1)).min(p.rows);
                let data = (p.produce)(s, e)?;
                let data = if data.dtype() == dtype { data } else { data.cast(dtype).ok_or_else(|| ConcatError::unsupported(&path, format!("cannot store {} values as {dtype}", data.dtype())))? };
                app.push(self.out, data).map_err(ConcatError::Output)?;
                s = e;
            }
        }
        app.finish(self.out).map_err(ConcatError::Output)?;
        self.out.set_attrs(&path, &Encoding::Array.attrs()).map_err(|e| ConcatError::Output(e.into()))
    }
}

/// Write node `out` (keys assigned) from `parts`, whose forms merge into it.
pub fn node(ctx: &Ctx<'_>, out: &Form, parts: &[Part<'_>]) -> Result<()> {
    let parts: Vec<&Part<'_>> = parts.iter().collect();
    match out {
        Form::Empty => Ok(()),
        Form::Numpy { prim, key, .. } => numpy(ctx, key, prim, &parts),
        Form::Regular { size, content, .. } => {
            let sub: Vec<Part<'_>> = parts.iter().map(|p| regular_child(p, *size)).collect::<Result<_>>()?;
            node(ctx, content, &sub)
        }
        Form::List { key, content, .. } => list(ctx, key, content, &parts),
        Form::Record { fields, contents, .. } => {
            for (i, c) in contents.iter().enumerate() {
                let name = fields.as_ref().and_then(|f| f.get(i)).map(String::as_str);
                let sub: Vec<Part<'_>> = parts.iter().map(|p| record_child(p, name, i)).collect::<Result<_>>()?;
                node(ctx, c, &sub)?;
            }
            Ok(())
        }
        Form::IndexedOption { key, content, .. } => option(ctx, key, content, &parts),
        Form::Union { key, contents, .. } => union(ctx, key, contents, &parts),
        Form::ByteMasked { .. } | Form::Unmasked { .. } => Err(ConcatError::unsupported(&ctx.path, "awkward: masked output nodes are not written")),
    }
}

fn mismatch(ctx: &Ctx<'_>, p: &Part<'_>, what: &str) -> ConcatError {
    let file = match p.src {
        Src::Stored(s) => s.store.location().to_owned(),
        _ => "a missing element".into(),
    };
    ConcatError::unsupported(&ctx.path, format!("awkward: {file} has a {} where the output has {what}", class(&p.form)))
}

fn class(f: &Form) -> &'static str {
    match f {
        Form::Empty => "EmptyArray",
        Form::Numpy { .. } => "NumpyArray",
        Form::List { .. } => "ListOffsetArray",
        Form::Regular { .. } => "RegularArray",
        Form::Record { .. } => "RecordArray",
        Form::IndexedOption { .. } => "IndexedOptionArray",
        Form::ByteMasked { .. } => "ByteMaskedArray",
        Form::Unmasked { .. } => "UnmaskedArray",
        Form::Union { .. } => "UnionArray",
    }
}

fn numpy(ctx: &Ctx<'_>, key: &str, prim: &str, parts: &[&Part<'_>]) -> Result<()> {
    let buffer = format!("{key}-data");
    // Dates and other non-numeric primitives are copied in their stored type.
    let mut dtype = prim.parse::<DType>().ok();
    let mut pieces = vec![];
    for p in parts {
        match (&p.src, &p.form) {
            (Src::Fill(v), _) => {
                let v = *v;
                pieces.push(Piece { rows: p.len, produce: Box::new(move |s, e| Ok(ArrayData::from_vec(vec![v; (e - s) as usize]))) });
            }
            (Src::Stored(s), Form::Numpy { key: k, .. }) => {
                let name = format!("{k}-data");
                if dtype.is_none() {
                    dtype = Some(s.store.array_meta(&join_path(&s.path, &name)).at(s.store)?.dtype);
                }
                let (start, p) = (p.start, *p);
                pieces.push(Piece { rows: p.len, produce: Box::new(move |a, b| p.read(&name, start + a, start + b)) });
            }
            _ if p.len == 0 => {}
            _ => return Err(mismatch(ctx, p, "numbers")),
        }
    }
    ctx.write(&buffer, dtype.unwrap_or(DType::F64), pieces)
}

fn regular_child<'a>(p: &Part<'a>, size: u64) -> Result<Part<'a>> {
    match (&p.src, &p.form) {
        (_, Form::Regular { size: s, content, .. }) => Ok(p.child(content, p.start * s, p.len * s)),
        _ if p.len == 0 => Ok(p.child(&Form::Empty, 0, 0)),
        _ => Err(ConcatError::unsupported("", format!("awkward: a {} merged into lists of size {size}", class(&p.form)))),
    }
}

fn record_child<'a>(p: &Part<'a>, name: Option<&str>, i: usize) -> Result<Part<'a>> {
    match &p.form {
        Form::Record { fields, contents, .. } => {
            let j = match (name, fields) {
                (Some(n), Some(f)) => f.iter().position(|x| x == n),
                _ => Some(i),
            };
            let c = j.and_then(|j| contents.get(j)).ok_or_else(|| ConcatError::unsupported("", format!("awkward: record field {} missing", name.unwrap_or(""))))?;
            Ok(p.child(c, p.start, p.len))
        }
        _ if p.len == 0 => Ok(p.child(&Form::Empty, 0, 0)),
        other => Err(ConcatError::unsupported("", format!("awkward: a {} merged into records", class(other)))),
    }
}

fn list(ctx: &Ctx<'_>, key: &str, content: &Form, parts: &[&Part<'_>]) -> Result<()> {
    let mut pieces = vec![fill_i64(0, 1)];
    let mut children = vec![];
    let mut base = 0i64;
    for p in parts {
        match &p.form {
            Form::List { key: k, content: c, .. } => {
                let name = format!("{k}-offsets");
                let first = p.read_i64(&name, p.start, p.start + 1)?.first().copied().unwrap_or(0);
                let last = p.read_i64(&name, p.start + p.len, p.start + p.len + 1)?.first().copied().unwrap_or(first);
                let shift = base - first;
                pieces.push(mapped(p, name, p.start + 1, p.len, move |v| v + shift));
                children.push(p.child(c, first.max(0) as u64, (last - first).max(0) as u64));
                base += last - first;
            }
            Form::Regular { size, content: c, .. } => {
                pieces.push(range(base + *size as i64, *size as i64, p.len));
                children.push(p.child(c, p.start * size, p.len * size));
                base += (p.len * size) as i64;
            }
            _ if p.len == 0 => {}
            _ => return Err(mismatch(ctx, p, "lists")),
        }
    }
    ctx.write(&format!("{key}-offsets"), DType::I64, pieces)?;
    node(ctx, content, &children)
}

fn option(ctx: &Ctx<'_>, key: &str, content: &Form, parts: &[&Part<'_>]) -> Result<()> {
    let mut pieces = vec![];
    let mut children = vec![];
    let mut base = 0i64;
    for p in parts {
        match (&p.src, &p.form) {
            (Src::Missing, _) => pieces.push(fill_i64(-1, p.len)),
            (Src::Stored(_), Form::IndexedOption { key: k, content: c, .. }) => {
                let n = node_len(p, c)?;
                let b = base;
                pieces.push(mapped(p, format!("{k}-index"), p.start, p.len, move |v| if v < 0 { -1 } else { v + b }));
                children.push(p.child(c, 0, n));
                base += n as i64;
            }
            (Src::Stored(_), Form::ByteMasked { key: k, valid_when, content: c, .. }) => {
                let (b, valid, name, start, p2) = (base, *valid_when, format!("{k}-mask"), p.start, *p);
                pieces.push(Piece {
                    rows: p.len,
                    produce: Box::new(move |s, e| {
                        let m = p2.read_i64(&name, start + s, start + e)?;
                        Ok(ArrayData::from_vec(m.iter().zip(s..e).map(|(&m, k)| if (m != 0) == valid { b + k as i64 } else { -1 }).collect::<Vec<i64>>()))
                    }),
                });
                children.push(p.child(c, p.start, p.len));
                base += p.len as i64;
            }
            (_, Form::Unmasked { content: c, .. }) => {
                pieces.push(range(base, 1, p.len));
                children.push(p.child(c, p.start, p.len));
                base += p.len as i64;
            }
            _ => {
                pieces.push(range(base, 1, p.len));
                children.push((*p).clone());
                base += p.len as i64;
            }
        }
    }
    ctx.write(&format!("{key}-index"), DType::I64, pieces)?;
    node(ctx, content, &children)
}

fn union(ctx: &Ctx<'_>, key: &str, contents: &[Form], parts: &[&Part<'_>]) -> Result<()> {
    let empty = Form::Empty;
    let cands: Vec<Vec<&Form>> = parts.iter().map(|p| if matches!(p.src, Src::Missing) { vec![&empty] } else { candidates(&p.form) }).collect();
    let flat: Vec<&Form> = cands.iter().flatten().copied().collect();
    let (groups, assign) = group(&flat);
    if groups.len() != contents.len() {
        return Err(ConcatError::unsupported(&ctx.path, "awkward: union contents do not match the inputs"));
    }
    let (mut tags, mut index) = (vec![], vec![]);
    let mut children: Vec<Vec<Part<'_>>> = vec![vec![]; contents.len()];
    let mut bases = vec![0i64; contents.len()];
    let mut at = 0;
    for (p, c) in parts.iter().zip(&cands) {
        let table: Vec<usize> = assign[at..at + c.len()].to_vec();
        at += c.len();
        if let (Src::Stored(_), Form::Union { key: k, contents: pc, .. }) = (&p.src, &p.form) {
            let t = table.clone();
            tags.push(mapped(p, format!("{k}-tags"), p.start, p.len, move |v| t.get(v.max(0) as usize).map_or(0, |&g| g as i64)));
            let (t, b, p2, start, kk) = (table.clone(), bases.clone(), *p, p.start, k.clone());
            index.push(Piece {
                rows: p.len,
                produce: Box::new(move |s, e| {
                    let tg = p2.read_i64(&format!("{kk}-tags"), start + s, start + e)?;
                    let ix = p2.read_i64(&format!("{kk}-index"), start + s, start + e)?;
                    Ok(ArrayData::from_vec(tg.iter().zip(ix).map(|(&g, i)| i + t.get(g.max(0) as usize).map_or(0, |&g| b[g])).collect::<Vec<i64>>()))
                }),
            });
            for (i, content) in pc.iter().enumerate() {
                let n = node_len(p, content)?;
                children[table[i]].push(p.child(content, 0, n));
                bases[table[i]] += n as i64;
            }
        } else {
            let g = table[0];
            tags.push(fill_i64(g as i64, p.len));
            index.push(range(bases[g], 1, p.len));
            children[g].push((*p).clone());
            bases[g] += p.len as i64;
        }
    }
    ctx.write(&format!("{key}-tags"), DType::I8, tags)?;
    ctx.write(&format!("{key}-index"), DType::I64, index)?;
    for (c, parts) in contents.iter().zip(&children) {
        node(ctx, c, parts)?;
    }
    Ok(())
}
