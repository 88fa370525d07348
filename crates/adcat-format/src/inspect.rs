//! A description of a store's element tree, for `adcat inspect`.

use crate::encoding::{detect, Encoding};
use crate::sparse::SparseMeta;
use crate::Result;
use adcat_store::{join_path, Compression, NodeKind, Store};
use std::fmt::Write;

/// One element (or sub-array) of the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Path from the root (`""` for the root).
    pub path: String,
    /// `encoding-type encoding-version`, or `None` for plain sub-arrays (e.g. `X/data`).
    pub encoding: Option<String>,
    /// Group or array.
    pub kind: NodeKind,
    /// Logical shape: array shape, sparse `shape`, or dataframe `(rows, columns)`.
    pub shape: Option<Vec<u64>>,
    /// Element type of arrays (data type for sparse matrices).
    pub dtype: Option<String>,
    /// Stored entries of sparse matrices.
    pub nnz: Option<u64>,
    /// Chunk shape of arrays.
    pub chunks: Option<Vec<u64>>,
    /// Shard shape of sharded arrays.
    pub shards: Option<Vec<u64>>,
    /// Compression and filters of arrays.
    pub codecs: Option<String>,
    /// Uncompressed bytes of the data (groups: their arrays together).
    pub bytes: u64,
    /// Bytes on disk where the backend can tell (groups: their arrays together).
    pub stored: Option<u64>,
    /// Children in name order.
    pub children: Vec<Node>,
}

/// Describe the whole store.
pub fn inspect(store: &dyn Store) -> Result<Node> {
    node(store, "")
}

fn node(store: &dyn Store, path: &str) -> Result<Node> {
    let kind = store.node_kind(path)?.unwrap_or(NodeKind::Group);
    let det = detect(store, path)?;
    let mut n = Node {
        path: path.to_owned(),
        encoding: (!det.inferred || path.is_empty()).then(|| det.encoding.to_string()),
        kind,
        shape: None,
        dtype: None,
        nnz: None,
        chunks: None,
        shards: None,
        codecs: None,
        bytes: 0,
        stored: None,
        children: vec![],
    };
    match kind {
        NodeKind::Array if det.encoding == Encoding::RecArray || store.is_record(path)? => {
            let fields = store.read_record(path)?;
            n.shape = Some(vec![fields.first().map_or(0, |(_, a)| a.len() as u64)]);
            n.dtype = Some(format!("record{{{}}}", fields.iter().map(|(k, a)| format!("{}: {}", adcat_store::field_display(k), a.dtype())).collect::<Vec<_>>().join(", ")));
        }
        NodeKind::Array => {
            let m = store.array_meta(path)?;
            n.shape = Some(m.shape.clone());
            n.dtype = Some(if m.null { "null".into() } else { m.dtype.to_string() });
            n.chunks = m.chunks.clone();
            n.shards = m.shards.clone();
            let mut parts = vec![];
            if m.compression != Compression::None {
                parts.push(m.compression.to_string());
            }
            parts.extend(m.filters.iter().cloned());
            n.codecs = Some(if parts.is_empty() { "none".into() } else { parts.join(",") });
            n.bytes = if m.null { 0 } else { m.len() * crate::layout::element_bytes(m.dtype) };
            n.stored = store.stored_bytes(path)?;
        }
        NodeKind::Group => {
            match det.encoding {
                Encoding::Csr | Encoding::Csc => {
                    let sm = SparseMeta::read(store, path)?;
                    n.shape = Some(sm.shape.to_vec());
                    n.dtype = Some(sm.data_dtype.to_string());
                    n.nnz = Some(sm.nnz);
                }
                Encoding::DataFrame | Encoding::DataFrameLegacy => {
                    if let Ok(idx) = crate::frame::read_index(store, path) {
                        let cols = store.attr(path, "column-order")?.and_then(|v| v.as_strings()).unwrap_or_default();
                        n.shape = Some(vec![idx.len() as u64, cols.len() as u64]);
                    }
                }
                _ => {}
            }
            for c in store.list(path)? {
                n.children.push(node(store, &join_path(path, &c))?);
            }
            n.bytes = n.children.iter().map(|c| c.bytes).sum();
            n.stored = n.children.iter().map(|c| c.stored).sum();
        }
    }
    Ok(n)
}

fn dims(v: &[u64]) -> String {
    format!("({})", v.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
}

pub use adcat_store::bounded::human_bytes;

/// The tree as JSON: every node with its path, kind, encoding, shape, dtype, nnz,
/// chunks, shards, codecs, `bytes` (uncompressed), `stored` (on disk, when known) and
/// children.
pub fn to_json(n: &Node) -> serde_json::Value {
    serde_json::json!({
        "path": format!("/{}", n.path),
        "kind": if n.kind == NodeKind::Group { "group" } else { "array" },
        "encoding": n.encoding,
        "shape": n.shape,
        "dtype": n.dtype,
        "nnz": n.nnz,
        "chunks": n.chunks,
        "shards": n.shards,
        "codecs": n.codecs,
        "bytes": n.bytes,
        "stored": n.stored,
        "children": n.children.iter().map(to_json).collect::<Vec<_>>(),
    })
}

/// Render the tree as indented text, one element per line.
pub fn render(root: &Node, location: &str, kind: adcat_store::StoreKind) -> String {
    let mut out = format!("{location} ({kind})\n");
    fn walk(n: &Node, depth: usize, out: &mut String) {
        let name = if n.path.is_empty() { "/".to_owned() } else { n.path.rsplit('/').next().unwrap_or(&n.path).to_owned() };
        let mut line = format!("{}{}", "  ".repeat(depth), name);
        if n.kind == NodeKind::Group && !n.path.is_empty() {
            line.push('/');
        }
        let mut fields = vec![];
        if let Some(e) = &n.encoding {
            fields.push(format!("[{e}]"));
        }
        if let Some(s) = &n.shape {
            fields.push(dims(s));
        }
        if let Some(d) = &n.dtype {
            fields.push(d.clone());
        }
        if let Some(z) = n.nnz {
            fields.push(format!("nnz={z}"));
        }
        if let Some(c) = &n.chunks {
            fields.push(format!("chunks={}", dims(c)));
        }
        if let Some(s) = &n.shards {
            fields.push(format!("shards={}", dims(s)));
        }
        if let Some(c) = &n.codecs {
            fields.push(format!("codecs={c}"));
        }
        if n.bytes > 0 {
            fields.push(match n.stored {
                Some(st) => format!("size={} (stored {})", human_bytes(n.bytes), human_bytes(st)),
                None => format!("size={}", human_bytes(n.bytes)),
            });
        }
        if !fields.is_empty() {
            let _ = write!(line, "  {}", fields.join(" "));
        }
        out.push_str(&line);
        out.push('\n');
        for c in &n.children {
            walk(c, depth + 1, out);
        }
    }
    walk(root, 0, &mut out);
    out
}
