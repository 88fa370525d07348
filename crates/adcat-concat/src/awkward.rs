//! Awkward arrays (`awkward-array` 0.1.0) along the concatenation axis, as
//! `ak.concatenate` does for the forms anndata writes (packed buffers): NumpyArray,
//! ListOffsetArray (ragged lists, strings), RegularArray and RecordArray. Buffers are
//! streamed; list offsets are rebased onto the running content length.

use crate::{At, ConcatError, Join, Result};
use adcat_format::layout::{Purpose, WriteOptions};
use adcat_format::stream::Appender;
use adcat_format::Encoding;
use adcat_store::{join_path, ArrayData, AttrValue, Store};
use serde_json::Value;

/// One input's awkward element.
#[derive(Debug, Clone)]
pub struct AwkSource<'a> {
    /// Store.
    pub store: &'a dyn Store,
    /// Group path.
    pub path: String,
    /// Outer length.
    pub length: u64,
    /// Parsed form.
    pub form: Value,
}

impl<'a> AwkSource<'a> {
    /// Read the element's `length` and `form`.
    pub fn open(store: &'a dyn Store, path: &str) -> Result<Self> {
        let attrs = store.attrs(path).at(store)?;
        let bad = |why: &str| ConcatError::Input { file: store.location().into(), source: adcat_format::FormatError::invalid(path, why.to_owned()) };
        let length = attrs.get("length").and_then(AttrValue::as_int).ok_or_else(|| bad("awkward array without `length`"))?;
        let form = attrs.get("form").and_then(AttrValue::as_str).ok_or_else(|| bad("awkward array without `form`"))?;
        let form: Value = serde_json::from_str(form).map_err(|e| bad(&format!("invalid awkward form: {e}")))?;
        Ok(AwkSource { store, path: path.to_owned(), length: length.max(0) as u64, form })
    }
}

/// The form with `form_key`s removed, for comparing structures.
fn shape_of(form: &Value) -> Value {
    match form {
        Value::Object(o) => Value::Object(o.iter().filter(|(k, _)| *k != "form_key").map(|(k, v)| (k.clone(), shape_of(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape_of).collect()),
        other => other.clone(),
    }
}

fn key(form: &Value) -> String {
    form.get("form_key").and_then(Value::as_str).unwrap_or("").to_owned()
}

/// Concatenate awkward elements into `out_path` (inner join keeps the record fields
/// common to all inputs; an outer join needs identical forms).
pub fn concat(srcs: &[AwkSource<'_>], join: Join, out: &dyn Store, out_path: &str, opts: &WriteOptions, block: u64) -> Result<()> {
    let unsupported = |why: String| ConcatError::unsupported(out_path, why);
    let Some(first) = srcs.first() else { return Ok(()) };
    let mut form = first.form.clone();
    // Inner join on records: keep the common fields (anndata's gen_inner_reindexers).
    if join == Join::Inner && form.get("class").and_then(Value::as_str) == Some("RecordArray") {
        let fields_of = |f: &Value| -> Vec<String> {
            f.get("fields").and_then(Value::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default()
        };
        let common: Vec<String> = fields_of(&form).into_iter().filter(|k| srcs.iter().all(|s| fields_of(&s.form).contains(k))).collect();
        let pick = |f: &Value| -> Value {
            let names = fields_of(f);
            let contents = f.get("contents").and_then(Value::as_array).cloned().unwrap_or_default();
            let kept: Vec<Value> = common.iter().filter_map(|c| names.iter().position(|n| n == c).and_then(|i| contents.get(i).cloned())).collect();
            let mut g = f.clone();
            g["fields"] = serde_json::json!(common);
            g["contents"] = Value::Array(kept);
            g
        };
        form = pick(&form);
        let srcs2: Vec<AwkSource<'_>> = srcs.iter().map(|s| AwkSource { form: pick(&s.form), ..s.clone() }).collect();
        return concat_same(&srcs2, &form, out, out_path, opts, block);
    }
    concat_same(srcs, &form, out, out_path, opts, block).map_err(|e| match e {
        ConcatError::Unsupported { reason, .. } => unsupported(reason),
        o => o,
    })
}

fn concat_same(srcs: &[AwkSource<'_>], form: &Value, out: &dyn Store, out_path: &str, opts: &WriteOptions, block: u64) -> Result<()> {
    let target = shape_of(form);
    if let Some(s) = srcs.iter().find(|s| shape_of(&s.form) != target) {
        return Err(ConcatError::unsupported(
            out_path,
            format!("awkward arrays of different types cannot be concatenated yet ({} differs from the first input)", s.store.location()),
        ));
    }
    out.create_group(out_path)?;
    let total: u64 = srcs.iter().map(|s| s.length).sum();
    let mut attrs = Encoding::Awkward.attrs();
    attrs.insert("length".into(), AttrValue::Int(total as i64));
    attrs.insert("form".into(), AttrValue::String(form.to_string()));
    out.set_attrs(out_path, &attrs)?;
    let nodes: Vec<(&AwkSource<'_>, &Value, u64)> = srcs.iter().map(|s| (s, &s.form, s.length)).collect();
    node(&nodes, form, out, out_path, opts, block)
}

/// Concatenate one form node; `parts` are (input, its node, its node length).
fn node(parts: &[(&AwkSource<'_>, &Value, u64)], form: &Value, out: &dyn Store, out_path: &str, opts: &WriteOptions, block: u64) -> Result<()> {
    let class = form.get("class").and_then(Value::as_str).unwrap_or("");
    match class {
        "NumpyArray" => {
            let buf = |f: &Value| format!("{}-data", key(f));
            copy_buffers(parts.iter().map(|(s, f, _)| (*s, buf(f))).collect(), out, &join_path(out_path, &buf(form)), opts, block, None)
        }
        "ListOffsetArray" => {
            // Content length of each part is its last offset minus its first.
            let mut content = vec![];
            let mut bases = vec![];
            let mut base = 0i64;
            for (s, f, len) in parts {
                let p = join_path(&s.path, &format!("{}-offsets", key(f)));
                let first = s.store.read_rows(&p, 0, 1).at(s.store)?.to_i64_vec().unwrap_or_default();
                let last = s.store.read_rows(&p, *len, len + 1).at(s.store)?.to_i64_vec().unwrap_or_default();
                let (lo, hi) = (first.first().copied().unwrap_or(0), last.first().copied().unwrap_or(0));
                bases.push(base - lo);
                base += hi - lo;
                content.push((hi - lo) as u64);
            }
            let buf = |f: &Value| format!("{}-offsets", key(f));
            copy_buffers(parts.iter().map(|(s, f, _)| (*s, buf(f))).collect(), out, &join_path(out_path, &buf(form)), opts, block, Some((&bases, parts.iter().map(|p| p.2).collect())))?;
            let child = form.get("content").cloned().unwrap_or(Value::Null);
            let sub: Vec<(&AwkSource<'_>, &Value, u64)> = parts.iter().zip(&content).map(|((s, f, _), &n)| (*s, f.get("content").unwrap_or(&Value::Null), n)).collect();
            node(&sub, &child, out, out_path, opts, block)
        }
        "RegularArray" => {
            let size = form.get("size").and_then(Value::as_u64).unwrap_or(0);
            let child = form.get("content").cloned().unwrap_or(Value::Null);
            let sub: Vec<(&AwkSource<'_>, &Value, u64)> = parts.iter().map(|(s, f, n)| (*s, f.get("content").unwrap_or(&Value::Null), n * size)).collect();
            node(&sub, &child, out, out_path, opts, block)
        }
        "RecordArray" => {
            let contents = form.get("contents").and_then(Value::as_array).cloned().unwrap_or_default();
            for (i, child) in contents.iter().enumerate() {
                let sub: Vec<(&AwkSource<'_>, &Value, u64)> = parts
                    .iter()
                    .map(|(s, f, n)| (*s, f.get("contents").and_then(|c| c.get(i)).unwrap_or(&Value::Null), *n))
                    .collect();
                node(&sub, child, out, out_path, opts, block)?;
            }
            Ok(())
        }
        "EmptyArray" => Ok(()),
        other => Err(ConcatError::unsupported(out_path, format!("awkward {other} nodes cannot be concatenated yet"))),
    }
}

/// Stream 1-d (or n-d) buffers of every input into one output array. With `rebase`, the
/// buffers are list offsets: each part's first entry is dropped after the first part and
/// `bases[i]` is added to every value.
fn copy_buffers(
    parts: Vec<(&AwkSource<'_>, String)>,
    out: &dyn Store,
    out_path: &str,
    opts: &WriteOptions,
    block: u64,
    rebase: Option<(&[i64], Vec<u64>)>,
) -> Result<()> {
    let metas: Vec<adcat_store::ArrayMeta> = parts.iter().map(|(s, b)| s.store.array_meta(&join_path(&s.path, b)).at(s.store)).collect::<Result<_>>()?;
    let dtype = metas.first().map(|m| m.dtype).unwrap_or(adcat_store::DType::F64);
    let rows: Vec<u64> = match &rebase {
        // Offsets: len + 1 entries per part, shared boundaries counted once.
        Some((_, lens)) => lens.iter().enumerate().map(|(i, &n)| if i == 0 { n + 1 } else { n }).collect(),
        None => metas.iter().map(|m| m.shape.first().copied().unwrap_or(0)).collect(),
    };
    let total: u64 = rows.iter().sum();
    let mut shape = metas.first().map(|m| m.shape.clone()).unwrap_or_else(|| vec![0]);
    if shape.is_empty() {
        shape.push(0);
    }
    shape[0] = total;
    let mut app = Appender::create(out, out_path, dtype, &shape, Purpose::Dense, opts)?;
    for (i, ((s, b), n)) in parts.iter().zip(&rows).enumerate() {
        let p = join_path(&s.path, b);
        let skip = u64::from(rebase.is_some() && i > 0);
        let mut start = skip;
        let end = n + skip;
        while start < end {
            let e = (start + block.max(1)).min(end);
            let mut data = s.store.read_rows(&p, start, e).at(s.store)?;
            if let Some((bases, _)) = &rebase {
                let v: Vec<i64> = data.to_i64_vec().unwrap_or_default().iter().map(|x| x + bases[i]).collect();
                let a = ArrayData::from_vec(v);
                data = a.cast(dtype).unwrap_or(a);
            }
            app.push(out, data)?;
            start = e;
        }
    }
    app.finish(out)?;
    out.set_attrs(out_path, &Encoding::Array.attrs())?;
    Ok(())
}
