//! Awkward forms and how `ak.concatenate` (awkward 2, as anndata 0.13.4 calls it) unifies
//! them: numbers promote as numpy does (booleans merge with numbers), regular lists of
//! different sizes become variable-length lists, records merge field by field when
//! their field sets agree, option types absorb missing values, and whatever cannot be
//! merged becomes a union whose contents are all option types when any part is.

use adcat_store::DType;
use serde_json::{json, Map, Value};

/// One node of an awkward form, as anndata writes them (`ak.to_packed` buffers).
/// A `NumpyArray` with an `inner_shape` is kept as nested [`Form::Regular`] nodes, which
/// has the same type and the same flat data buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Form {
    /// No values (`EmptyArray`, type `unknown`).
    Empty,
    /// Numbers, booleans or dates (`NumpyArray`).
    Numpy { prim: String, key: String, params: Value },
    /// Variable-length lists (`ListOffsetArray`).
    List { offsets: String, content: Box<Form>, key: String, params: Value },
    /// Lists of one length (`RegularArray`).
    Regular { size: u64, content: Box<Form>, key: String, params: Value },
    /// Records (`fields` = `None` for tuples).
    Record { fields: Option<Vec<String>>, contents: Vec<Form>, key: String, params: Value },
    /// Option type with an index, -1 for missing (`IndexedOptionArray`).
    IndexedOption { index: String, content: Box<Form>, key: String, params: Value },
    /// Option type with a byte mask (`ByteMaskedArray`).
    ByteMasked { mask: String, valid_when: bool, content: Box<Form>, key: String, params: Value },
    /// Option type without missing values (`UnmaskedArray`).
    Unmasked { content: Box<Form>, params: Value },
    /// A value of one of several types per entry (`UnionArray`).
    Union { tags: String, index: String, contents: Vec<Form>, key: String, params: Value },
}

/// Why a form cannot be handled.
pub type FormError = String;

fn text(o: &Map<String, Value>, k: &str) -> String {
    o.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn params_of(o: &Map<String, Value>) -> Value {
    match o.get("parameters") {
        Some(Value::Object(p)) if !p.is_empty() => Value::Object(p.clone()),
        _ => Value::Object(Map::new()),
    }
}

fn child(o: &Map<String, Value>, depth: usize) -> Result<Box<Form>, FormError> {
    Ok(Box::new(Form::parse_at(o.get("content").unwrap_or(&Value::Null), depth + 1)?))
}

/// Deeper forms than this are refused (a hostile form must not exhaust the stack).
const MAX_DEPTH: usize = 256;

impl Form {
    /// Parse a form as stored in an `awkward-array` element's `form` attribute.
    pub fn parse(v: &Value) -> Result<Form, FormError> {
        Form::parse_at(v, 0)
    }

    fn parse_at(v: &Value, depth: usize) -> Result<Form, FormError> {
        if depth > MAX_DEPTH {
            return Err(format!("awkward form nested deeper than {MAX_DEPTH} levels"));
        }
        let o = match v {
            Value::Object(o) => o,
            // The short form of a NumpyArray is its primitive's name.
            Value::String(p) => return Ok(Form::Numpy { prim: p.clone(), key: String::new(), params: json!({}) }),
            _ => return Err("awkward form node is not an object".into()),
        };
        let (key, params) = (text(o, "form_key"), params_of(o));
        Ok(match text(o, "class").as_str() {
            "EmptyArray" => Form::Empty,
            "NumpyArray" => {
                let dims: Vec<u64> = o.get("inner_shape").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
                let mut f = Form::Numpy { prim: text(o, "primitive"), key, params };
                // Innermost dimension last: wrap from the inside out.
                for &size in dims.iter().rev() {
                    f = Form::Regular { size, content: Box::new(f), key: String::new(), params: json!({}) };
                }
                f
            }
            "ListOffsetArray" => Form::List { offsets: text(o, "offsets"), content: child(o, depth)?, key, params },
            "RegularArray" => Form::Regular { size: o.get("size").and_then(Value::as_u64).unwrap_or(0), content: child(o, depth)?, key, params },
            "RecordArray" => {
                let contents = o.get("contents").and_then(Value::as_array).cloned().unwrap_or_default();
                let contents: Vec<Form> = contents.iter().map(|c| Form::parse_at(c, depth + 1)).collect::<Result<_, _>>()?;
                let fields = match o.get("fields") {
                    Some(Value::Array(a)) => Some(a.iter().map(|x| x.as_str().unwrap_or("").to_owned()).collect::<Vec<_>>()),
                    _ => None,
                };
                if fields.as_ref().is_some_and(|f| f.len() != contents.len()) {
                    return Err("awkward record form with different numbers of fields and contents".into());
                }
                Form::Record { fields, contents, key, params }
            }
            "IndexedOptionArray" => Form::IndexedOption { index: text(o, "index"), content: child(o, depth)?, key, params },
            "ByteMaskedArray" => Form::ByteMasked {
                mask: text(o, "mask"),
                valid_when: o.get("valid_when").and_then(Value::as_bool).unwrap_or(true),
                content: child(o, depth)?,
                key,
                params,
            },
            "UnmaskedArray" => Form::Unmasked { content: child(o, depth)?, params },
            "UnionArray" => {
                let contents = o.get("contents").and_then(Value::as_array).cloned().unwrap_or_default();
                let contents = contents.iter().map(|c| Form::parse_at(c, depth + 1)).collect::<Result<_, _>>()?;
                Form::Union { tags: text(o, "tags"), index: text(o, "index"), contents, key, params }
            }
            other => return Err(format!("awkward {other} nodes cannot be concatenated yet")),
        })
    }

    /// Whether this is an option type (its missing values are `None`).
    pub fn is_option(&self) -> bool {
        matches!(self, Form::IndexedOption { .. } | Form::ByteMasked { .. } | Form::Unmasked { .. })
    }

    /// The form without an outer option type.
    pub fn strip_option(&self) -> &Form {
        match self {
            Form::IndexedOption { content, .. } | Form::ByteMasked { content, .. } | Form::Unmasked { content, .. } => content.strip_option(),
            other => other,
        }
    }

    fn params(&self) -> Value {
        match self {
            Form::Numpy { params, .. }
            | Form::List { params, .. }
            | Form::Regular { params, .. }
            | Form::Record { params, .. }
            | Form::IndexedOption { params, .. }
            | Form::ByteMasked { params, .. }
            | Form::Unmasked { params, .. }
            | Form::Union { params, .. } => params.clone(),
            Form::Empty => json!({}),
        }
    }

    /// Keep only `keep` of a record's fields (in that order), looking through options:
    /// anndata's inner join on awkward records (`el[common_fields]`).
    pub fn select_fields(&self, keep: &[String]) -> Form {
        match self {
            Form::Record { fields: Some(names), contents, key, params } => {
                let contents = keep.iter().filter_map(|k| names.iter().position(|n| n == k).map(|i| contents[i].clone())).collect();
                Form::Record { fields: Some(keep.to_vec()), contents, key: key.clone(), params: params.clone() }
            }
            Form::IndexedOption { index, content, key, params } => {
                Form::IndexedOption { index: index.clone(), content: Box::new(content.select_fields(keep)), key: key.clone(), params: params.clone() }
            }
            Form::ByteMasked { mask, valid_when, content, key, params } => Form::ByteMasked {
                mask: mask.clone(),
                valid_when: *valid_when,
                content: Box::new(content.select_fields(keep)),
                key: key.clone(),
                params: params.clone(),
            },
            Form::Unmasked { content, params } => Form::Unmasked { content: Box::new(content.select_fields(keep)), params: params.clone() },
            other => other.clone(),
        }
    }

    /// A record's field names (looking through options); empty for other forms.
    pub fn fields(&self) -> Vec<String> {
        match self.strip_option() {
            Form::Record { fields: Some(f), .. } => f.clone(),
            _ => vec![],
        }
    }
}

fn numeric(prim: &str) -> Option<DType> {
    prim.parse::<DType>().ok().filter(|d| *d != DType::String)
}

/// Whether `ak.concatenate` merges the two forms into one (`_mergeable_next`).
pub fn mergeable(a: &Form, b: &Form) -> bool {
    let (a, b) = (a.strip_option(), b.strip_option());
    match (a, b) {
        (Form::Empty, _) | (_, Form::Empty) => true,
        (Form::Numpy { prim: p, params: x, .. }, Form::Numpy { prim: q, params: y, .. }) => {
            x == y && (p == q || (numeric(p).is_some_and(|d| !d.is_complex()) && numeric(q).is_some_and(|d| !d.is_complex())) || (numeric(p).is_some() && numeric(q).is_some()))
        }
        (Form::List { content: c, .. } | Form::Regular { content: c, .. }, Form::List { content: d, .. } | Form::Regular { content: d, .. }) => {
            a.params() == b.params() && mergeable(c, d)
        }
        (Form::Record { fields: f, contents: c, params: x, .. }, Form::Record { fields: g, contents: d, params: y, .. }) => {
            if x != y || c.len() != d.len() {
                return false;
            }
            match (f, g) {
                (Some(f), Some(g)) => f.iter().zip(c).all(|(name, ca)| g.iter().position(|n| n == name).is_some_and(|j| mergeable(ca, &d[j]))),
                (None, None) => c.iter().zip(d).all(|(x, y)| mergeable(x, y)),
                _ => false,
            }
        }
        // Unions merge only with the same union (adcat does not nest unions).
        (Form::Union { .. }, Form::Union { .. }) => same_type(a, b),
        _ => false,
    }
}

/// The two forms describe the same type (form keys aside).
pub fn same_type(a: &Form, b: &Form) -> bool {
    a.to_json_keyless() == b.to_json_keyless()
}

fn option(content: Form) -> Form {
    if content.is_option() {
        return content;
    }
    Form::IndexedOption { index: "i64".into(), content: Box::new(content), key: String::new(), params: json!({}) }
}

/// The merged form of two mergeable forms.
pub fn merge(a: &Form, b: &Form) -> Form {
    if a.is_option() || b.is_option() {
        return option(merge(a.strip_option(), b.strip_option()));
    }
    match (a, b) {
        (Form::Empty, x) | (x, Form::Empty) => x.clone(),
        (Form::Numpy { prim: p, params, .. }, Form::Numpy { prim: q, .. }) => {
            let prim = match (numeric(p), numeric(q)) {
                _ if p == q => p.clone(),
                (Some(x), Some(y)) => x.promote(y).map_or_else(|| p.clone(), |d| d.name().to_owned()),
                _ => p.clone(),
            };
            Form::Numpy { prim, key: String::new(), params: params.clone() }
        }
        (Form::Regular { size: s, content: c, params, .. }, Form::Regular { size: t, content: d, .. }) if s == t => {
            Form::Regular { size: *s, content: Box::new(merge(c, d)), key: String::new(), params: params.clone() }
        }
        (Form::List { content: c, params, .. } | Form::Regular { content: c, params, .. }, Form::List { content: d, .. } | Form::Regular { content: d, .. }) => {
            Form::List { offsets: "i64".into(), content: Box::new(merge(c, d)), key: String::new(), params: params.clone() }
        }
        (Form::Record { fields: Some(f), contents: c, params, .. }, Form::Record { fields: Some(g), contents: d, .. }) => {
            let contents = f.iter().zip(c).map(|(name, ca)| g.iter().position(|n| n == name).map_or_else(|| ca.clone(), |j| merge(ca, &d[j]))).collect();
            Form::Record { fields: Some(f.clone()), contents, key: String::new(), params: params.clone() }
        }
        (Form::Record { fields: None, contents: c, params, .. }, Form::Record { contents: d, .. }) => {
            Form::Record { fields: None, contents: c.iter().zip(d).map(|(x, y)| merge(x, y)).collect(), key: String::new(), params: params.clone() }
        }
        (x, _) => x.clone(),
    }
}

/// The candidates a part contributes to grouping: a union's contents, or the part.
pub fn candidates(f: &Form) -> Vec<&Form> {
    match f {
        Form::Union { contents, .. } => contents.iter().collect(),
        other => vec![other],
    }
}

/// `ak.concatenate`'s grouping: each candidate joins the first group it merges with,
/// or starts a new one. Returns the merged group forms (options kept) and, for each
/// candidate, its group.
pub fn group(cands: &[&Form]) -> (Vec<Form>, Vec<usize>) {
    let mut groups: Vec<Form> = vec![];
    let mut assign = vec![];
    for c in cands {
        match groups.iter().position(|g| mergeable(g, c)) {
            Some(g) => {
                groups[g] = merge(&groups[g], c);
                assign.push(g);
            }
            None => {
                groups.push((*c).clone());
                assign.push(groups.len() - 1);
            }
        }
    }
    (groups, assign)
}

/// The form of the concatenation of parts of forms `parts` (`None`: missing, all values
/// `None`).
pub fn unify(parts: &[Option<&Form>]) -> Form {
    let empty = Form::Empty;
    let any_option = parts.iter().any(|p| p.is_none_or(|f| f.is_option() || candidates(f).iter().any(|c| c.is_option())));
    let cands: Vec<&Form> = parts.iter().flat_map(|p| p.map_or_else(|| vec![&empty], candidates)).collect();
    let (groups, _) = group(&cands);
    let wrap = |g: Form| if any_option { option(g) } else { g };
    match groups.len() {
        0 => Form::Empty,
        1 => wrap(groups.into_iter().next().unwrap_or(Form::Empty)),
        _ => Form::Union { tags: "i8".into(), index: "i64".into(), contents: groups.into_iter().map(wrap).collect(), key: String::new(), params: json!({}) },
    }
}

impl Form {
    /// Give every node a fresh `nodeN` key in preorder, as `ak.to_buffers` does.
    pub fn assign_keys(&mut self, next: &mut usize) {
        let mut take = |k: &mut String| {
            *k = format!("node{next}");
            *next += 1;
        };
        match self {
            Form::Empty => {}
            Form::Numpy { key, .. } => take(key),
            Form::List { key, content, .. } | Form::Regular { key, content, .. } | Form::IndexedOption { key, content, .. } | Form::ByteMasked { key, content, .. } => {
                take(key);
                content.assign_keys(next);
            }
            Form::Unmasked { content, .. } => content.assign_keys(next),
            Form::Record { key, contents, .. } | Form::Union { key, contents, .. } => {
                take(key);
                for c in contents {
                    c.assign_keys(next);
                }
            }
        }
    }

    /// The form as awkward's JSON.
    pub fn to_json(&self) -> Value {
        self.json(true)
    }

    fn to_json_keyless(&self) -> Value {
        self.json(false)
    }

    fn json(&self, keys: bool) -> Value {
        let mut o = Map::new();
        let put = |o: &mut Map<String, Value>, class: &str, key: &str, params: &Value| {
            o.insert("class".into(), json!(class));
            o.insert("parameters".into(), params.clone());
            if keys {
                o.insert("form_key".into(), json!(key));
            }
        };
        match self {
            Form::Empty => {
                o.insert("class".into(), json!("EmptyArray"));
                o.insert("parameters".into(), json!({}));
            }
            Form::Numpy { prim, key, params } => {
                put(&mut o, "NumpyArray", key, params);
                o.insert("primitive".into(), json!(prim));
                o.insert("inner_shape".into(), json!([]));
            }
            Form::List { content, key, params, .. } => {
                put(&mut o, "ListOffsetArray", key, params);
                o.insert("offsets".into(), json!("i64"));
                o.insert("content".into(), content.json(keys));
            }
            Form::Regular { size, content, key, params } => {
                put(&mut o, "RegularArray", key, params);
                o.insert("size".into(), json!(size));
                o.insert("content".into(), content.json(keys));
            }
            Form::Record { fields, contents, key, params } => {
                put(&mut o, "RecordArray", key, params);
                o.insert("fields".into(), fields.as_ref().map_or(Value::Null, |f| json!(f)));
                o.insert("contents".into(), Value::Array(contents.iter().map(|c| c.json(keys)).collect()));
            }
            Form::IndexedOption { content, key, params, .. } => {
                put(&mut o, "IndexedOptionArray", key, params);
                o.insert("index".into(), json!("i64"));
                o.insert("content".into(), content.json(keys));
            }
            Form::ByteMasked { mask, valid_when, content, key, params } => {
                put(&mut o, "ByteMaskedArray", key, params);
                o.insert("mask".into(), json!(mask));
                o.insert("valid_when".into(), json!(valid_when));
                o.insert("content".into(), content.json(keys));
            }
            Form::Unmasked { content, params } => {
                o.insert("class".into(), json!("UnmaskedArray"));
                o.insert("parameters".into(), params.clone());
                o.insert("content".into(), content.json(keys));
            }
            Form::Union { contents, key, params, .. } => {
                put(&mut o, "UnionArray", key, params);
                o.insert("tags".into(), json!("i8"));
                o.insert("index".into(), json!("i64"));
                o.insert("contents".into(), Value::Array(contents.iter().map(|c| c.json(keys)).collect()));
            }
        }
        Value::Object(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: Value) -> Form {
        Form::parse(&v).unwrap()
    }
    fn num(p: &str) -> Value {
        json!({"class": "NumpyArray", "primitive": p, "inner_shape": [], "parameters": {}, "form_key": "node9"})
    }
    fn list(c: Value) -> Value {
        json!({"class": "ListOffsetArray", "offsets": "i64", "content": c, "parameters": {}, "form_key": "node8"})
    }
    fn ty(form: &Form) -> Value {
        form.to_json_keyless()
    }

    // Expected forms checked against ak.concatenate (awkward 2.8.10).
    #[test]
    fn numbers_promote_and_booleans_merge() {
        assert_eq!(ty(&unify(&[Some(&f(num("bool"))), Some(&f(num("int64")))])), ty(&f(num("int64"))));
        assert_eq!(ty(&unify(&[Some(&f(num("uint8"))), Some(&f(num("int8")))])), ty(&f(num("int16"))));
        assert_eq!(ty(&unify(&[Some(&f(list(num("int64")))), Some(&f(list(num("float64"))))])), ty(&f(list(num("float64")))));
    }

    #[test]
    fn missing_parts_make_an_option() {
        let u = unify(&[Some(&f(list(num("int64")))), None]);
        assert!(matches!(&u, Form::IndexedOption { content, .. } if matches!(**content, Form::List { .. })));
    }

    #[test]
    fn unmergeable_parts_make_a_union_of_options_when_any_is_missing() {
        let s = json!({"class": "ListOffsetArray", "offsets": "i64", "parameters": {"__array__": "string"}, "content": {"class": "NumpyArray", "primitive": "uint8", "parameters": {"__array__": "char"}}});
        let u = unify(&[None, Some(&f(num("int64"))), Some(&f(s.clone()))]);
        let Form::Union { contents, .. } = &u else { panic!("{u:?}") };
        assert_eq!(contents.len(), 2);
        assert!(contents.iter().all(Form::is_option));
        assert!(matches!(contents[0].strip_option(), Form::Numpy { prim, .. } if prim == "int64"));
        // Later parts join the first group they merge with: float64 joins int64.
        let u = unify(&[Some(&f(num("int64"))), Some(&f(s)), Some(&f(list(num("int64")))), Some(&f(num("float64")))]);
        let Form::Union { contents, .. } = &u else { panic!() };
        assert_eq!(contents.len(), 3);
        assert!(matches!(&contents[0], Form::Numpy { prim, .. } if prim == "float64"));
    }

    #[test]
    fn regular_sizes_merge_or_become_lists() {
        let r = |n: u64| json!({"class": "NumpyArray", "primitive": "int64", "inner_shape": [n], "parameters": {}});
        assert!(matches!(unify(&[Some(&f(r(2))), Some(&f(r(2)))]), Form::Regular { size: 2, .. }));
        assert!(matches!(unify(&[Some(&f(r(2))), Some(&f(r(3)))]), Form::List { .. }));
    }

    #[test]
    fn records_merge_by_field_name_or_form_a_union() {
        let rec = |a: &str, b: &str| json!({"class": "RecordArray", "fields": [a, b], "contents": [num("int64"), num("float64")], "parameters": {}});
        assert!(matches!(unify(&[Some(&f(rec("a", "b"))), Some(&f(rec("b", "a")))]), Form::Record { .. }));
        assert!(matches!(unify(&[Some(&f(rec("a", "b"))), Some(&f(rec("a", "c")))]), Form::Union { .. }));
    }

    #[test]
    fn hostile_depth_is_refused() {
        let mut v = num("int64");
        for _ in 0..300 {
            v = list(v);
        }
        assert!(Form::parse(&v).is_err());
    }
}
