//! Zarr metadata documents: parsing what zarr-python writes and writing the same shapes.

use crate::ZarrVersion;
use adcat_store::{ArrayMeta, ArraySpec, AttrValue, Attrs, Compression, DType, NodeKind, Result, StoreError, FIELD_PATH_SEP};
use serde_json::{json, Map, Value};

/// Cached metadata of one node.
#[derive(Debug, Clone)]
pub(crate) struct NodeMeta {
    pub kind: NodeKind,
    /// v3: `zarr.json` without `attributes`/`consolidated_metadata`; v2: `.zarray`/`.zgroup`.
    pub doc: Map<String, Value>,
    pub attrs: Map<String, Value>,
}

fn invalid(path: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidMetadata { path: path.to_owned(), reason: reason.into() }
}

impl NodeMeta {
    pub fn new_group(version: ZarrVersion) -> Self {
        let doc = match version {
            ZarrVersion::V3 => json!({"zarr_format": 3, "node_type": "group"}),
            ZarrVersion::V2 => json!({"zarr_format": 2}),
        };
        NodeMeta { kind: NodeKind::Group, doc: doc.as_object().cloned().unwrap_or_default(), attrs: Map::new() }
    }

    pub fn from_v3(path: &str, doc: Value) -> Result<Self> {
        let Value::Object(mut doc) = doc else { return Err(invalid(path, "zarr.json is not a JSON object")) };
        let attrs = match doc.remove("attributes") {
            Some(Value::Object(m)) => m,
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(invalid(path, "attributes is not an object")),
        };
        doc.remove("consolidated_metadata");
        let kind = match doc.get("node_type").and_then(Value::as_str) {
            Some("group") => NodeKind::Group,
            Some("array") => NodeKind::Array,
            other => return Err(invalid(path, format!("unknown node_type {other:?}"))),
        };
        if doc.get("zarr_format").and_then(Value::as_u64) != Some(3) {
            return Err(invalid(path, "zarr_format is not 3"));
        }
        Ok(NodeMeta { kind, doc, attrs })
    }

    pub fn from_v2(path: &str, group: Option<Value>, array: Option<Value>, attrs: Option<Value>) -> Result<Option<Self>> {
        let attrs = match attrs {
            Some(Value::Object(m)) => m,
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(invalid(path, ".zattrs is not a JSON object")),
        };
        let (kind, doc) = match (array, group) {
            (Some(Value::Object(a)), _) => (NodeKind::Array, a),
            (Some(_), _) => return Err(invalid(path, ".zarray is not a JSON object")),
            (None, Some(Value::Object(g))) => (NodeKind::Group, g),
            (None, Some(_)) => return Err(invalid(path, ".zgroup is not a JSON object")),
            (None, None) => return Ok(None),
        };
        Ok(Some(NodeMeta { kind, doc, attrs }))
    }

    pub fn to_v3(&self) -> Value {
        let mut d = self.doc.clone();
        d.insert("attributes".into(), Value::Object(self.attrs.clone()));
        Value::Object(d)
    }
}

pub(crate) fn attrs_from_json(m: &Map<String, Value>) -> Attrs {
    m.iter().map(|(k, v)| (k.clone(), AttrValue::from_json(v))).collect()
}

pub(crate) fn attrs_to_json(a: &Attrs) -> Map<String, Value> {
    a.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()
}

fn v3_dtype_name(d: DType) -> &'static str {
    d.name()
}

pub(crate) fn fill_value(d: DType) -> Value {
    match d {
        DType::Bool => json!(false),
        DType::F32 | DType::F64 => json!(0.0),
        DType::C64 | DType::C128 => json!([0.0, 0.0]),
        DType::String => json!(""),
        _ => json!(0),
    }
}

fn chunk_shape(spec: &ArraySpec) -> Vec<u64> {
    let c = spec.chunks.clone().unwrap_or_else(|| spec.shape.clone());
    c.iter().zip(&spec.shape).map(|(&c, &d)| if spec.chunks.is_some() { c.max(1) } else { c.max(d).max(1) }).collect()
}

fn v3_compressor(path: &str, spec: &ArraySpec) -> Result<Option<Value>> {
    Ok(match &spec.compression {
        Compression::None => None,
        Compression::Zstd(l) => Some(json!({"name": "zstd", "configuration": {"level": l, "checksum": false}})),
        Compression::Gzip(l) => Some(json!({"name": "gzip", "configuration": {"level": l}})),
        Compression::Blosc { cname, clevel, shuffle } => {
            let shuffle = match shuffle {
                0 => "noshuffle",
                2 => "bitshuffle",
                _ => "shuffle",
            };
            let typesize = if spec.dtype == DType::String { 1 } else { spec.dtype.itemsize() };
            Some(json!({"name": "blosc", "configuration": {"cname": cname, "clevel": clevel, "shuffle": shuffle, "typesize": typesize, "blocksize": 0}}))
        }
        other => return Err(invalid(path, format!("compression {other} is not available for zarr output"))),
    })
}

pub(crate) fn v3_array_doc(path: &str, spec: &ArraySpec) -> Result<Map<String, Value>> {
    let (shape, chunks) = if spec.null { (vec![], vec![]) } else { (spec.shape.clone(), chunk_shape(spec)) };
    let serializer = if spec.dtype == DType::String {
        json!({"name": "vlen-utf8", "configuration": {}})
    } else if spec.dtype.itemsize() == 1 {
        json!({"name": "bytes"})
    } else {
        json!({"name": "bytes", "configuration": {"endian": "little"}})
    };
    let mut inner = vec![serializer];
    inner.extend(v3_compressor(path, spec)?);
    let (grid, codecs) = match (&spec.shards, shape.is_empty()) {
        (Some(shards), false) => {
            if shards.len() != chunks.len() || shards.iter().zip(&chunks).any(|(&s, &c)| s == 0 || s % c != 0) {
                return Err(invalid(path, format!("shard shape {shards:?} is not a multiple of chunk shape {chunks:?}")));
            }
            let sharding = json!({"name": "sharding_indexed", "configuration": {
                "chunk_shape": chunks,
                "codecs": inner,
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                "index_location": "end"}});
            (shards.clone(), vec![sharding])
        }
        _ => (chunks, inner),
    };
    let doc = json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": v3_dtype_name(spec.dtype),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill_value(spec.dtype),
        "codecs": codecs,
        "storage_transformers": [],
    });
    Ok(doc.as_object().cloned().unwrap_or_default())
}

fn v2_dtype(d: DType) -> &'static str {
    match d {
        DType::Bool => "|b1",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::C64 => "<c8",
        DType::C128 => "<c16",
        DType::String => "|O",
    }
}

pub(crate) fn v2_array_doc(path: &str, spec: &ArraySpec) -> Result<Map<String, Value>> {
    let (shape, chunks) = if spec.null { (vec![], vec![]) } else { (spec.shape.clone(), chunk_shape(spec)) };
    let compressor = match &spec.compression {
        Compression::None => Value::Null,
        Compression::Zstd(l) => json!({"id": "zstd", "level": l}),
        Compression::Gzip(l) => json!({"id": "gzip", "level": l}),
        Compression::Blosc { cname, clevel, shuffle } => json!({"id": "blosc", "cname": cname, "clevel": clevel, "shuffle": shuffle, "blocksize": 0}),
        other => return Err(invalid(path, format!("compression {other} is not available for zarr output"))),
    };
    let filters = if spec.dtype == DType::String { json!([{"id": "vlen-utf8"}]) } else { Value::Null };
    let doc = json!({
        "zarr_format": 2,
        "shape": shape,
        "chunks": chunks,
        "dtype": v2_dtype(spec.dtype),
        "fill_value": fill_value(spec.dtype),
        "order": "C",
        "filters": filters,
        "dimension_separator": ".",
        "compressor": compressor,
    });
    Ok(doc.as_object().cloned().unwrap_or_default())
}

fn u64_list(path: &str, v: Option<&Value>, what: &str) -> Result<Vec<u64>> {
    v.and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
        .ok_or_else(|| invalid(path, format!("{what} is missing or not a list of non-negative integers")))
}

fn compression_v3(c: &Value) -> Option<Compression> {
    let cfg = c.get("configuration");
    let get = |k: &str| cfg.and_then(|x| x.get(k));
    match c.get("name")?.as_str()? {
        "zstd" => Some(Compression::Zstd(get("level").and_then(Value::as_i64).unwrap_or(0) as i32)),
        "gzip" => Some(Compression::Gzip(get("level").and_then(Value::as_u64).unwrap_or(0) as u32)),
        "blosc" => Some(Compression::Blosc {
            cname: get("cname").and_then(Value::as_str).unwrap_or("").to_owned(),
            clevel: get("clevel").and_then(Value::as_u64).unwrap_or(0) as u8,
            shuffle: match get("shuffle").and_then(Value::as_str) {
                Some("shuffle") => 1,
                Some("bitshuffle") => 2,
                _ => 0,
            },
        }),
        _ => None,
    }
}

fn compression_v2(c: &Value) -> Compression {
    let get = |k: &str| c.get(k);
    match c.get("id").and_then(Value::as_str) {
        Some("zstd") => Compression::Zstd(get("level").and_then(Value::as_i64).unwrap_or(0) as i32),
        Some("gzip") | Some("zlib") => Compression::Gzip(get("level").and_then(Value::as_u64).unwrap_or(0) as u32),
        Some("blosc") => Compression::Blosc {
            cname: get("cname").and_then(Value::as_str).unwrap_or("").to_owned(),
            clevel: get("clevel").and_then(Value::as_u64).unwrap_or(0) as u8,
            shuffle: get("shuffle").and_then(Value::as_i64).unwrap_or(0).clamp(-1, 2).max(0) as u8,
        },
        Some(other) => Compression::Other(other.to_owned()),
        None => Compression::None,
    }
}

fn dtype_v3(path: &str, v: Option<&Value>) -> Result<DType> {
    let name = match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
        _ => return Err(invalid(path, "data_type missing")),
    };
    Ok(match name.as_str() {
        "string" | "variable_length_utf8" => DType::String,
        n => n.parse().map_err(|_| StoreError::UnsupportedDType { path: path.to_owned(), found: n.to_owned() })?,
    })
}

/// The element kind of a plain (non-record) array of fixed-length strings: numpy `U<n>`
/// (zarr v2 `<U<n>`, v3 `fixed_length_utf32`) or `S<n>` (v2 `|S<n>`). anndata < 0.8 and
/// zarr-python wrote such arrays; they are read as strings.
pub(crate) fn fixed_string_kind(version: ZarrVersion, doc: &Map<String, Value>) -> Option<FieldKind> {
    match version {
        ZarrVersion::V2 => {
            let s = doc.get("dtype")?.as_str()?;
            if s.starts_with('>') {
                return None;
            }
            let code = s.trim_start_matches(['<', '|', '=']);
            if let Some(n) = code.strip_prefix('U') {
                n.parse().ok().map(FieldKind::Utf32)
            } else {
                code.strip_prefix('S')?.parse().ok().map(FieldKind::Bytes)
            }
        }
        ZarrVersion::V3 => {
            let dt = doc.get("data_type")?.as_object()?;
            (dt.get("name")?.as_str()? == "fixed_length_utf32")
                .then(|| dt.get("configuration").and_then(|c| c.get("length_bytes")).and_then(Value::as_u64))
                .flatten()
                .map(|b| FieldKind::Utf32(b as usize / 4))
        }
    }
}

fn dtype_v2(path: &str, doc: &Map<String, Value>) -> Result<DType> {
    let s = doc.get("dtype").and_then(Value::as_str).ok_or_else(|| StoreError::UnsupportedDType {
        path: path.to_owned(),
        found: doc.get("dtype").map(Value::to_string).unwrap_or_else(|| "none".into()),
    })?;
    let code = s.trim_start_matches(['<', '>', '|', '=']);
    Ok(match code {
        "b1" | "?" => DType::Bool,
        "i1" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "u1" => DType::U8,
        "u2" => DType::U16,
        "u4" => DType::U32,
        "u8" => DType::U64,
        "f4" => DType::F32,
        "f8" => DType::F64,
        "c8" => DType::C64,
        "c16" => DType::C128,
        "O" => {
            let ok = doc
                .get("filters")
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|x| x.get("id").and_then(Value::as_str) == Some("vlen-utf8")));
            if !ok {
                return Err(StoreError::UnsupportedDType { path: path.to_owned(), found: "object array without vlen-utf8 filter".into() });
            }
            DType::String
        }
        _ => return Err(StoreError::UnsupportedDType { path: path.to_owned(), found: s.to_owned() }),
    })
}

pub(crate) fn parse_array_meta(version: ZarrVersion, path: &str, doc: &Map<String, Value>) -> Result<ArrayMeta> {
    let shape = u64_list(path, doc.get("shape"), "shape")?;
    let fixed_string = fixed_string_kind(version, doc).is_some();
    match version {
        ZarrVersion::V3 => {
            let dtype = if fixed_string { DType::String } else { dtype_v3(path, doc.get("data_type"))? };
            let grid = u64_list(path, doc.get("chunk_grid").and_then(|g| g.pointer("/configuration/chunk_shape")), "chunk_grid.configuration.chunk_shape")?;
            let codecs = doc.get("codecs").and_then(Value::as_array).cloned().unwrap_or_default();
            let sharding = codecs.iter().find(|c| c.get("name").and_then(Value::as_str) == Some("sharding_indexed"));
            let (chunks, shards, inner) = match sharding {
                Some(s) => (
                    u64_list(path, s.pointer("/configuration/chunk_shape"), "sharding chunk_shape")?,
                    Some(grid),
                    s.pointer("/configuration/codecs").and_then(Value::as_array).cloned().unwrap_or_default(),
                ),
                None => (grid, None, codecs),
            };
            let mut compression = Compression::None;
            let mut filters = vec![];
            for c in &inner {
                match compression_v3(c) {
                    Some(x) => compression = x,
                    None => filters.push(c.get("name").and_then(Value::as_str).unwrap_or("?").to_owned()),
                }
            }
            if shards.is_some() {
                filters.push("sharding_indexed".into());
            }
            Ok(ArrayMeta { dtype, shape, chunks: Some(chunks), shards, compression, filters, null: false })
        }
        ZarrVersion::V2 => {
            let dtype = if fixed_string { DType::String } else { dtype_v2(path, doc)? };
            let chunks = u64_list(path, doc.get("chunks"), "chunks")?;
            let compression = doc.get("compressor").map(compression_v2).unwrap_or(Compression::None);
            let filters = doc
                .get("filters")
                .and_then(Value::as_array)
                .map(|f| f.iter().filter_map(|x| x.get("id").and_then(Value::as_str).map(str::to_owned)).collect())
                .unwrap_or_default();
            Ok(ArrayMeta { dtype, shape, chunks: Some(chunks), shards: None, compression, filters, null: false })
        }
    }
}

/// One field of a record (structured) array as zarr stores it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum FieldKind {
    /// A numeric or bool scalar.
    Num(DType),
    /// numpy `U<n>`: n UTF-32LE code points, zero padded.
    Utf32(usize),
    /// numpy `S<n>`: n bytes, zero padded.
    Bytes(usize),
}

impl FieldKind {
    pub fn size(self) -> usize {
        match self {
            FieldKind::Num(d) => d.itemsize(),
            FieldKind::Utf32(n) => 4 * n,
            FieldKind::Bytes(n) => n,
        }
    }
}

fn v2_field(path: &str, t: &str) -> Result<FieldKind> {
    let code = t.trim_start_matches(['<', '>', '|', '=']);
    if let Some(n) = code.strip_prefix('U') {
        return n.parse().map(FieldKind::Utf32).map_err(|_| invalid(path, format!("bad field type {t}")));
    }
    if let Some(n) = code.strip_prefix('S') {
        return n.parse().map(FieldKind::Bytes).map_err(|_| invalid(path, format!("bad field type {t}")));
    }
    if t.starts_with('>') && code != "b1" && !code.ends_with('1') {
        return Err(StoreError::UnsupportedDType { path: path.to_owned(), found: format!("big-endian field {t}") });
    }
    let mut m = Map::new();
    m.insert("dtype".into(), json!(t));
    dtype_v2(path, &m).map(FieldKind::Num)
}

/// The fields of a record array, or None if the array is not one. Fields of nested
/// records are listed leaf by leaf, named with [`FIELD_PATH_SEP`] (their packed layout
/// is the leaves in order).
pub(crate) fn record_fields(version: ZarrVersion, path: &str, doc: &Map<String, Value>) -> Result<Option<Vec<(String, FieldKind)>>> {
    let mut out = vec![];
    match version {
        ZarrVersion::V2 => {
            let Some(list) = doc.get("dtype").and_then(Value::as_array) else { return Ok(None) };
            v2_fields(path, list, "", 0, &mut out)?;
        }
        ZarrVersion::V3 => {
            let dt = doc.get("data_type");
            if dt.and_then(|d| d.get("name")).and_then(Value::as_str) != Some("struct") {
                return Ok(None);
            }
            v3_fields(path, dt, "", 0, &mut out)?;
        }
    }
    Ok(Some(out))
}

fn field_name(path: &str, v: Option<&Value>, prefix: &str) -> Result<String> {
    let name = v.and_then(Value::as_str).unwrap_or_default();
    if name.contains(FIELD_PATH_SEP) {
        return Err(invalid(path, "record field name with a NUL"));
    }
    Ok(format!("{prefix}{name}"))
}

const MAX_RECORD_DEPTH: usize = 32;

fn v2_fields(path: &str, list: &[Value], prefix: &str, depth: usize, out: &mut Vec<(String, FieldKind)>) -> Result<()> {
    if depth > MAX_RECORD_DEPTH {
        return Err(invalid(path, "record type nested too deeply"));
    }
    for f in list {
        let parts = f.as_array().filter(|p| p.len() == 2).ok_or_else(|| invalid(path, "record fields with sub-array shapes are not supported"))?;
        let name = field_name(path, parts.first(), prefix)?;
        match &parts[1] {
            Value::Array(inner) => v2_fields(path, inner, &format!("{name}{FIELD_PATH_SEP}"), depth + 1, out)?,
            t => out.push((name, v2_field(path, t.as_str().unwrap_or_default())?)),
        }
    }
    Ok(())
}

fn v3_fields(path: &str, dt: Option<&Value>, prefix: &str, depth: usize, out: &mut Vec<(String, FieldKind)>) -> Result<()> {
    if depth > MAX_RECORD_DEPTH {
        return Err(invalid(path, "record type nested too deeply"));
    }
    let fields = dt.and_then(|d| d.pointer("/configuration/fields")).and_then(Value::as_array).ok_or_else(|| invalid(path, "struct without fields"))?;
    for f in fields {
        let name = field_name(path, f.get("name"), prefix)?;
        let t = f.get("data_type");
        let kind_name = t.and_then(|o| o.get("name")).and_then(Value::as_str);
        match kind_name {
            Some("struct") => v3_fields(path, t, &format!("{name}{FIELD_PATH_SEP}"), depth + 1, out)?,
            Some("fixed_length_utf32") => {
                let b = t.and_then(|o| o.pointer("/configuration/length_bytes")).and_then(Value::as_u64).unwrap_or(0);
                out.push((name, FieldKind::Utf32(b as usize / 4)));
            }
            _ => out.push((name, FieldKind::Num(dtype_v3(path, t)?))),
        }
    }
    Ok(())
}

/// Leaves grouped back into nested records: consecutive leaves sharing a first name
/// form one member. Returns (name, leaf kind or nested members).
enum Member<'a> {
    Leaf(&'a str, FieldKind),
    Nested(&'a str, Vec<Member<'a>>),
}

fn nest<'a>(leaves: &[(Vec<&'a str>, FieldKind)], depth: usize) -> Vec<Member<'a>> {
    let mut out = vec![];
    let mut i = 0;
    while i < leaves.len() {
        let head = leaves[i].0[depth];
        if leaves[i].0.len() == depth + 1 {
            out.push(Member::Leaf(head, leaves[i].1));
            i += 1;
        } else {
            let j = (i..leaves.len()).find(|&j| leaves[j].0.len() == depth + 1 || leaves[j].0[depth] != head).unwrap_or(leaves.len());
            out.push(Member::Nested(head, nest(&leaves[i..j], depth + 1)));
            i = j;
        }
    }
    out
}

fn members<'a>(fields: &'a [(String, FieldKind)]) -> Vec<Member<'a>> {
    let leaves: Vec<(Vec<&str>, FieldKind)> = fields.iter().map(|(n, k)| (n.split(FIELD_PATH_SEP).collect(), *k)).collect();
    nest(&leaves, 0)
}

fn v2_dtype_list(ms: &[Member<'_>]) -> Value {
    Value::Array(
        ms.iter()
            .map(|m| match m {
                Member::Leaf(name, k) => json!([name, match k {
                    FieldKind::Num(d) => v2_dtype(*d).to_owned(),
                    FieldKind::Utf32(c) => format!("<U{c}"),
                    FieldKind::Bytes(c) => format!("|S{c}"),
                }]),
                Member::Nested(name, inner) => json!([name, v2_dtype_list(inner)]),
            })
            .collect(),
    )
}

/// zarr v3 `struct` fields and fill value (a map of field fills, nested as the type).
fn v3_struct(ms: &[Member<'_>]) -> (Value, Value) {
    let mut fields = vec![];
    let mut fill = Map::new();
    for m in ms {
        let (name, t, f) = match m {
            Member::Leaf(name, FieldKind::Num(t)) => (*name, json!(t.name()), fill_value(*t)),
            Member::Leaf(name, FieldKind::Utf32(c)) => (*name, json!({"name": "fixed_length_utf32", "configuration": {"length_bytes": 4 * c}}), json!("")),
            Member::Leaf(name, FieldKind::Bytes(c)) => (*name, json!({"name": "fixed_length_bytes", "configuration": {"length_bytes": c}}), json!("")),
            Member::Nested(name, inner) => {
                let (t, f) = v3_struct(inner);
                (*name, t, f)
            }
        };
        fields.push(json!({"name": name, "data_type": t}));
        fill.insert(name.to_owned(), f);
    }
    (json!({"name": "struct", "configuration": {"fields": fields}}), Value::Object(fill))
}

fn zero_base64(n: usize) -> String {
    // base64 of n zero bytes, as zarr-python writes structured fill values.
    let full = n / 3;
    let mut s = "AAAA".repeat(full);
    match n % 3 {
        1 => s.push_str("AA=="),
        2 => s.push_str("AAA="),
        _ => {}
    }
    s
}

/// The metadata document adcat writes for a record array (as zarr-python/anndata do).
pub(crate) fn record_doc(version: ZarrVersion, path: &str, n: u64, fields: &[(String, FieldKind)], compression: &Compression) -> Result<Map<String, Value>> {
    let itemsize: usize = fields.iter().map(|(_, k)| k.size()).sum();
    let spec = ArraySpec::new(DType::U8, vec![n]).compression(compression.clone());
    let ms = members(fields);
    let doc = match version {
        ZarrVersion::V2 => {
            let mut d = v2_array_doc(path, &spec)?;
            d.insert("dtype".into(), v2_dtype_list(&ms));
            d.insert("fill_value".into(), json!(zero_base64(itemsize)));
            d
        }
        ZarrVersion::V3 => {
            let mut d = v3_array_doc(path, &spec)?;
            let (data_type, fill) = v3_struct(&ms);
            d.insert("data_type".into(), data_type);
            d.insert("fill_value".into(), fill);
            d.insert("codecs".into(), {
                let mut c = vec![json!({"name": "bytes", "configuration": {"endian": "little"}})];
                c.extend(v3_compressor(path, &spec)?);
                Value::Array(c)
            });
            d
        }
    };
    Ok(doc)
}

/// The same document with the record type replaced by raw bytes of the record size, which
/// zarrs can encode and decode; adcat packs and unpacks the fields itself.
pub(crate) fn record_io_doc(version: ZarrVersion, doc: &Map<String, Value>, itemsize: usize) -> Map<String, Value> {
    let mut d = doc.clone();
    match version {
        ZarrVersion::V2 => {
            d.insert("dtype".into(), json!(format!("|V{itemsize}")));
            d.insert("fill_value".into(), json!(zero_base64(itemsize)));
        }
        ZarrVersion::V3 => {
            d.insert("data_type".into(), json!(format!("r{}", itemsize * 8)));
            d.insert("fill_value".into(), json!(vec![0u8; itemsize]));
            if let Some(Value::Array(codecs)) = d.get_mut("codecs") {
                for c in codecs.iter_mut() {
                    if c.get("name").and_then(Value::as_str) == Some("bytes") {
                        *c = json!({"name": "bytes"});
                    }
                }
            }
        }
    }
    d
}
