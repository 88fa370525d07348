"""Comparison and store-inspection helpers for the adcat oracle suite.

* :func:`assert_identical` - a strict, NaN-aware comparison of two in-memory
  ``AnnData`` objects (types, dtypes, shapes, values bit for bit, sparse formats and
  index dtypes, DataFrame column order / index names / extension dtypes, scalar
  types in ``uns``). It complements ``anndata.tests.helpers.assert_equal(exact=True)``,
  which in anndata 0.13.4 compares dense arrays with ``a == b`` (no dtype check, and
  NaN never equals NaN).
* :func:`store_tree` - walk an .h5ad (h5py) or .zarr (zarr-python) store into
  ``{path: Node}`` with each node's kind, encoding attributes (normalised across
  backends), canonical dtype and shape; :func:`diff_trees` compares two trees.
* :func:`read_all_h5`, :func:`read_all_zarr` - open with plain h5py / zarr-python and
  read every dataset / array; :func:`zarr_metadata_problems` - consolidated metadata,
  ``_zarrs`` attributes, sharding.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
from scipy import sparse

try:
    import awkward as ak
except ImportError:  # pragma: no cover
    ak = None


# --------------------------------------------------------------------------------------
# Strict in-memory comparison
# --------------------------------------------------------------------------------------

ANNDATA_ATTRS = ("X", "obs", "var", "obsm", "varm", "obsp", "varp", "layers", "uns", "raw")


def _fail(path: str, msg: str) -> None:
    raise AssertionError(f"{path or '/'}: {msg}")


def _is_str_array(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind in "OT" and all(
        isinstance(x, str) for x in a.reshape(-1).tolist()
    )


def _same_dtype(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtypes, except that string arrays read as ``object`` (from HDF5) and as
    ``StringDType`` (from zarr) are the same: anndata itself reads them so."""
    if a.dtype == b.dtype:
        return True
    return _is_str_array(a) and _is_str_array(b)


def _arrays_identical(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values; for floats, equal bit patterns (NaN == NaN, -0.0 != 0.0)."""
    if a.shape != b.shape or not _same_dtype(a, b):
        return False
    if a.dtype.kind in "fc":
        return a.tobytes() == b.tobytes()
    if a.dtype.kind == "O" or a.dtype.kind in "UST":
        return a.tolist() == b.tolist()
    if a.dtype.names is not None:
        return all(_arrays_identical(a[n], b[n]) for n in a.dtype.names)
    return bool(np.array_equal(a, b))


def assert_identical(a: Any, b: Any, path: str = "") -> None:
    """Raise AssertionError naming the element path if ``a`` and ``b`` differ."""
    if isinstance(a, ad.AnnData):
        if not isinstance(b, ad.AnnData):
            _fail(path, f"expected AnnData, got {type(b).__name__}")
        if a.shape != b.shape:
            _fail(path, f"shape {a.shape} != {b.shape}")
        _index_identical(a.obs_names, b.obs_names, f"{path}obs_names")
        _index_identical(a.var_names, b.var_names, f"{path}var_names")
        for attr in ANNDATA_ATTRS:
            assert_identical(getattr(a, attr), getattr(b, attr), f"{path}{attr}")
        return
    if isinstance(a, ad.Raw):
        if not isinstance(b, ad.Raw):
            _fail(path, f"expected Raw, got {type(b).__name__}")
        _index_identical(a.obs_names, b.obs_names, f"{path}/obs_names")
        for attr in ("X", "var", "varm"):
            assert_identical(getattr(a, attr), getattr(b, attr), f"{path}/{attr}")
        return
    if a is None:
        if b is not None:
            _fail(path, f"expected None, got {type(b).__name__}")
        return
    if isinstance(a, pd.DataFrame):
        if not isinstance(b, pd.DataFrame):
            _fail(path, f"expected DataFrame, got {type(b).__name__}")
        if list(a.columns) != list(b.columns):
            _fail(path, f"columns {list(a.columns)} != {list(b.columns)}")
        _index_identical(a.index, b.index, f"{path}/index")
        for col in a.columns:
            _series_identical(a[col], b[col], f"{path}/{col}")
        return
    if isinstance(a, pd.Index):
        _index_identical(a, b, path)
        return
    if isinstance(a, pd.api.extensions.ExtensionArray):
        if type(a) is not type(b):
            _fail(path, f"type {type(a).__name__} != {type(b).__name__}")
        if a.dtype != b.dtype:
            _fail(path, f"dtype {a.dtype!r} != {b.dtype!r}")
        try:
            pd.testing.assert_extension_array_equal(a, b, check_dtype=True, check_exact=True)
        except AssertionError as e:
            _fail(path, str(e))
        return
    if sparse.issparse(a):
        if not sparse.issparse(b):
            _fail(path, f"expected sparse {a.format}, got {type(b).__name__}")
        if type(a) is not type(b):
            _fail(path, f"type {type(a).__name__} != {type(b).__name__}")
        if a.format != b.format or a.shape != b.shape:
            _fail(path, f"{a.format}{a.shape} != {b.format}{b.shape}")
        for part in ("data", "indices", "indptr"):
            x, y = getattr(a, part), getattr(b, part)
            if x.dtype != y.dtype:
                _fail(path, f"{part} dtype {x.dtype} != {y.dtype}")
            if not _arrays_identical(x, y):
                _fail(path, f"{part} values differ")
        return
    if isinstance(a, np.ndarray):
        if type(b) is not type(a):
            _fail(path, f"type {type(a).__name__} != {type(b).__name__}")
        if not _same_dtype(a, b):
            _fail(path, f"dtype {a.dtype} != {b.dtype}")
        if a.shape != b.shape:
            _fail(path, f"shape {a.shape} != {b.shape}")
        if not _arrays_identical(a, b):
            _fail(path, "values differ")
        return
    if ak is not None and isinstance(a, ak.Array):
        if not isinstance(b, ak.Array):
            _fail(path, f"expected awkward Array, got {type(b).__name__}")
        if a.type != b.type:
            _fail(path, f"awkward type {a.type} != {b.type}")
        if ak.to_list(a) != ak.to_list(b):
            _fail(path, "awkward values differ")
        return
    if isinstance(a, Mapping):
        if not isinstance(b, Mapping):
            _fail(path, f"expected mapping, got {type(b).__name__}")
        if set(a.keys()) != set(b.keys()):
            _fail(path, f"keys {sorted(map(str, a))} != {sorted(map(str, b))}")
        for k in a:
            assert_identical(a[k], b[k], f"{path}/{k}")
        return
    # scalars (numpy scalars, str, bool, ...)
    if type(a) is not type(b):
        _fail(path, f"type {type(a).__name__} ({a!r}) != {type(b).__name__} ({b!r})")
    if isinstance(a, (float, np.floating)) and math.isnan(a):
        if not math.isnan(b):
            _fail(path, f"{a!r} != {b!r}")
        return
    if a != b:
        _fail(path, f"{a!r} != {b!r}")


def _index_identical(a: pd.Index, b: Any, path: str) -> None:
    if not isinstance(b, pd.Index):
        _fail(path, f"expected Index, got {type(b).__name__}")
    if a.dtype != b.dtype:
        _fail(path, f"index dtype {a.dtype!r} != {b.dtype!r}")
    if a.name != b.name:
        _fail(path, f"index name {a.name!r} != {b.name!r}")
    try:
        pd.testing.assert_index_equal(a, b, exact=True, check_names=True, check_exact=True)
    except AssertionError as e:
        _fail(path, str(e))


def _series_identical(a: pd.Series, b: pd.Series, path: str) -> None:
    if a.dtype != b.dtype:
        _fail(path, f"dtype {a.dtype!r} != {b.dtype!r}")
    if isinstance(a.dtype, pd.CategoricalDtype):
        if a.cat.ordered != b.cat.ordered:
            _fail(path, f"ordered {a.cat.ordered} != {b.cat.ordered}")
        _index_identical(a.cat.categories, b.cat.categories, f"{path}/categories")
        if not np.array_equal(a.cat.codes.to_numpy(), b.cat.codes.to_numpy()):
            _fail(path, "categorical codes differ")
        return
    if isinstance(a.dtype, np.dtype) and a.dtype.kind in "fc":
        if not _arrays_identical(a.to_numpy(), b.to_numpy()):
            _fail(path, "values differ")
        return
    try:
        pd.testing.assert_series_equal(
            a, b, check_dtype=True, check_exact=True, check_names=False,
            check_index=False, check_categorical=True,
        )
    except AssertionError as e:
        _fail(path, str(e))


def dtype_report(adata: ad.AnnData) -> dict[str, str]:
    """``{element path: dtype}`` for X, layers, obsm/varm/obsp/varp arrays and
    obs/var columns and indexes: an explicit dtype fingerprint of an AnnData."""
    out: dict[str, str] = {}

    def arr(p: str, x: Any) -> None:
        if x is None:
            return
        if sparse.issparse(x):
            out[p] = f"{x.format}[{x.dtype}; indices {x.indices.dtype}; indptr {x.indptr.dtype}]"
        elif isinstance(x, pd.DataFrame):
            df(p, x)
        elif _is_str_array(x):
            out[p] = f"{type(x).__name__}[str]"
        elif hasattr(x, "dtype"):
            out[p] = f"{type(x).__name__}[{_dt(x.dtype)}]"
        else:
            out[p] = type(x).__name__

    def _dt(dt: Any) -> str:
        # str() of a numpy dtype is canonical ('int16' for both '<i2' and 'int16')
        return str(dt) if isinstance(dt, np.dtype) else repr(dt)

    def df(p: str, d: pd.DataFrame) -> None:
        out[f"{p}/<index>"] = _dt(d.index.dtype)
        for c in d.columns:
            out[f"{p}/{c}"] = _dt(d[c].dtype)

    arr("X", adata.X)
    df("obs", adata.obs)
    df("var", adata.var)
    for m in ("layers", "obsm", "varm", "obsp", "varp"):
        for k, v in getattr(adata, m).items():
            if k is not None:  # anndata 0.13: layers[None] is X
                arr(f"{m}/{k}", v)
    if adata.raw is not None:
        arr("raw/X", adata.raw.X)
        df("raw/var", adata.raw.var)
        for k, v in adata.raw.varm.items():
            arr(f"raw/varm/{k}", v)
    return out


# --------------------------------------------------------------------------------------
# Store trees
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    kind: str  # "group" | "array"
    encoding_type: str | None
    encoding_version: str | None
    attrs: tuple  # other attributes, normalised, as sorted (key, json) pairs
    dtype: str | None  # canonical dtype (arrays only)
    shape: tuple | None

    def describe(self) -> str:
        s = f"{self.kind} {self.encoding_type}/{self.encoding_version}"
        if self.kind == "array":
            s += f" {self.dtype} {self.shape}"
        if self.attrs:
            s += f" {dict(self.attrs)}"
        return s


def _norm_attr(key: str, v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if isinstance(v, np.ndarray):
        v = [x.decode("utf-8") if isinstance(x, bytes) else x for x in v.tolist()]
    elif isinstance(v, np.generic):
        v = v.item()
    if key == "form" and isinstance(v, str):
        v = json.loads(v)
    return v


def _norm_attrs(attrs: Mapping[str, Any]) -> tuple[str | None, str | None, tuple]:
    et = attrs.get("encoding-type")
    ev = attrs.get("encoding-version")
    et = _norm_attr("", et) if et is not None else None
    ev = _norm_attr("", ev) if ev is not None else None
    rest = tuple(
        sorted(
            (k, json.dumps(_norm_attr(k, v), sort_keys=True, ensure_ascii=False))
            for k, v in attrs.items()
            if k not in ("encoding-type", "encoding-version")
        )
    )
    return et, ev, rest


def _canon_dtype_h5(ds: h5py.Dataset) -> str:
    dt = ds.dtype
    if dt.names is not None:
        fields = []
        for n in dt.names:
            fdt = dt.fields[n][0]
            fields.append(f"{n}:{'str' if _is_str_h5(fdt) or fdt.kind in 'USO' else fdt.str}")
        return "struct{" + ",".join(fields) + "}"
    info = h5py.check_string_dtype(dt)
    if info is not None:
        if info.length is None and info.encoding == "utf-8":
            return "str"
        return f"fixed-str[{info.encoding},{info.length}]"
    return dt.str


def _is_str_h5(dt: np.dtype) -> bool:
    return h5py.check_string_dtype(dt) is not None


def _canon_dtype_np(dt: np.dtype) -> str:
    if dt.names is not None:
        fields = []
        for n in dt.names:
            fdt = dt.fields[n][0]
            fields.append(f"{n}:{'str' if fdt.kind in 'USOT' else fdt.str}")
        return "struct{" + ",".join(fields) + "}"
    if dt.kind in "OT":  # zarr vlen-utf8 is read as StringDType ("T") or object
        return "str"
    if dt.kind == "U":
        return f"fixed-str[{dt.str}]"
    return dt.str


def store_tree(path: str | Path) -> dict[str, Node]:
    """``{"" (root), "obs", "obs/_index", ...: Node}`` for an .h5ad or .zarr store."""
    path = Path(path)
    if path.suffix == ".h5ad":
        return _h5_tree(path)
    return _zarr_tree(path)


def _h5_tree(path: Path) -> dict[str, Node]:
    out: dict[str, Node] = {}
    with h5py.File(path, "r") as f:
        et, ev, rest = _norm_attrs(f.attrs)
        out[""] = Node("group", et, ev, rest, None, None)

        def visit(name: str, obj: Any) -> None:
            et, ev, rest = _norm_attrs(obj.attrs)
            if isinstance(obj, h5py.Group):
                out[name] = Node("group", et, ev, rest, None, None)
            elif et == "null":
                out[name] = Node("array", et, ev, rest, "null", None)
            else:
                out[name] = Node("array", et, ev, rest, _canon_dtype_h5(obj), obj.shape)

        f.visititems(visit)
    return out


def _zarr_tree(path: Path) -> dict[str, Node]:
    import zarr

    out: dict[str, Node] = {}
    root = zarr.open_group(path, mode="r", use_consolidated=False)

    def rec(g: Any, prefix: str) -> None:
        for name, obj in g.members():
            p = f"{prefix}{name}"
            et, ev, rest = _norm_attrs(obj.attrs.asdict())
            if isinstance(obj, zarr.Group):
                out[p] = Node("group", et, ev, rest, None, None)
                rec(obj, p + "/")
            elif et == "null":
                out[p] = Node("array", et, ev, rest, "null", None)
            else:
                out[p] = Node("array", et, ev, rest, _canon_dtype_np(obj.dtype), tuple(obj.shape))

    et, ev, rest = _norm_attrs(root.attrs.asdict())
    out[""] = Node("group", et, ev, rest, None, None)
    rec(root, "")
    return out


def normalise_tree(tree: dict[str, Node]) -> dict[str, Node]:
    """Remove differences that anndata itself makes between backends.

    * ``write_zarr`` writes ``raw = None`` as a root ``raw`` element of encoding
      ``null``; ``write_h5ad`` writes nothing. Both read back as ``raw is None``.
    """
    t = dict(tree)
    raw = t.get("raw")
    if raw is not None and raw.encoding_type == "null":
        del t["raw"]
    return t


def diff_trees(expected: dict[str, Node], actual: dict[str, Node]) -> list[tuple[str, str]]:
    """``[(path, human-readable difference)]``: paths missing/extra; node differences."""
    problems = []
    for p in sorted(set(expected) - set(actual)):
        problems.append((p, f"missing in output: /{p} ({expected[p].describe()})"))
    for p in sorted(set(actual) - set(expected)):
        problems.append((p, f"extra in output: /{p} ({actual[p].describe()})"))
    for p in sorted(set(expected) & set(actual)):
        e, a = expected[p], actual[p]
        if e != a:
            problems.append((p, f"/{p}:\n    expected {e.describe()}\n    got      {a.describe()}"))
    return problems


# Children of these encodings are parts of one element, not elements in their own right.
COMPOSITE_ENCODINGS = frozenset(
    {
        "categorical",
        "nullable-integer",
        "nullable-boolean",
        "nullable-string-array",
        "csr_matrix",
        "csc_matrix",
        "awkward-array",
    }
)


def element_paths(tree: dict[str, Node]) -> dict[str, str]:
    """``{path: encoding-type}`` of user-visible elements: every node with an
    encoding-type, excluding the internal parts of composite encodings (categorical
    codes/categories, nullable values/mask, sparse data/indices/indptr, awkward
    buffers) and the root."""
    out = {}
    for p, n in tree.items():
        if not p or n.encoding_type is None:
            continue
        parent = p.rsplit("/", 1)[0] if "/" in p else ""
        if parent and tree.get(parent) and tree[parent].encoding_type in COMPOSITE_ENCODINGS:
            continue
        out[p] = n.encoding_type
    return out


# --------------------------------------------------------------------------------------
# Readability with plain h5py / zarr-python
# --------------------------------------------------------------------------------------

# HDF5 filters that ship with libhdf5 / h5py itself (no plugin needed)
H5_BUILTIN_FILTERS = {"gzip", "shuffle", "fletcher32", "scaleoffset", "lzf", "szip", "nbit"}


def read_all_h5(path: str | Path) -> int:
    """Open with h5py, visit every object, read every dataset and every attribute.
    Returns the number of datasets read; raises on any error or non-builtin filter."""
    n = 0
    with h5py.File(path, "r") as f:
        _ = dict(f.attrs)
        objs: list[tuple[str, Any]] = []
        f.visititems(lambda name, obj: objs.append((name, obj)) and None)
        for name, obj in objs:
            _ = {k: obj.attrs[k] for k in obj.attrs}
            if isinstance(obj, h5py.Dataset):
                unknown = set(obj._filters) - H5_BUILTIN_FILTERS
                if unknown:
                    raise AssertionError(f"/{name}: non-builtin HDF5 filter(s) {unknown}")
                if obj.shape is None:  # H5S_NULL (anndata's `null`)
                    _ = obj[()]
                elif h5py.check_string_dtype(obj.dtype) is not None:
                    _ = obj.asstr()[()]
                else:
                    _ = obj[()]
                n += 1
    return n


# codecs that zarr-python 3 implements itself (v3 names) / numcodecs built-ins (v2 ids)
ZARR3_CORE_CODECS = {
    "bytes", "transpose", "gzip", "zstd", "blosc", "crc32c", "sharding_indexed",
    "vlen-utf8", "vlen-bytes",
}
ZARR2_CODECS = {"blosc", "zstd", "gzip", "zlib", "lz4", "bz2", "lzma", "vlen-utf8", "vlen-bytes", "crc32c"}


def _v3_codec_names(codecs: list[dict]) -> set[str]:
    names = set()
    for c in codecs or []:
        names.add(c["name"])
        cfg = c.get("configuration") or {}
        for key in ("codecs", "index_codecs"):
            names |= _v3_codec_names(cfg.get(key, []))
    return names


def read_all_zarr(path: str | Path) -> int:
    """Open with zarr-python (no consolidated metadata), visit every node and read
    every array. Returns the number of arrays read."""
    import zarr

    n = 0
    root = zarr.open_group(path, mode="r", use_consolidated=False)
    stack = [root]
    while stack:
        g = stack.pop()
        _ = g.attrs.asdict()
        for _name, obj in g.members():
            if isinstance(obj, zarr.Group):
                stack.append(obj)
            else:
                _ = obj.attrs.asdict()
                _ = obj[...]
                n += 1
    return n


def zarr_format_of(path: str | Path) -> int | None:
    p = Path(path)
    if (p / "zarr.json").is_file():
        return 3
    if (p / ".zgroup").is_file():
        return 2
    return None


def _metadata_files(root: Path, fmt: int) -> dict[str, dict]:
    names = ("zarr.json",) if fmt == 3 else (".zgroup", ".zarray", ".zattrs")
    out = {}
    for name in names:
        for f in root.rglob(name):
            out[f.relative_to(root).as_posix()] = json.loads(f.read_text("utf-8"))
    return out


def _without(d: Any, key: str) -> Any:
    return {k: v for k, v in d.items() if k != key} if isinstance(d, dict) else d


def zarr_metadata_problems(path: str | Path, fmt: int, *, expect_sharded: bool) -> list[str]:
    """Checks of a zarr store's metadata documents. ``fmt`` is the expected format."""
    root = Path(path)
    problems: list[str] = []
    actual_fmt = zarr_format_of(root)
    if actual_fmt != fmt:
        return [f"expected a zarr v{fmt} store, found {actual_fmt and f'v{actual_fmt}'}"]
    docs = _metadata_files(root, fmt)

    def walk_json(obj: Any, where: str) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k == "_zarrs":
                    problems.append(f"{where}: has a `_zarrs` key")
                walk_json(v, where)
        elif isinstance(obj, list):
            for v in obj:
                walk_json(v, where)

    for rel, doc in docs.items():
        walk_json(doc, rel)
        if fmt == 3:
            codecs = doc.get("codecs")
            if doc.get("node_type") == "array":
                unknown = _v3_codec_names(codecs) - ZARR3_CORE_CODECS
                if unknown:
                    problems.append(f"{rel}: non-core codecs {sorted(unknown)}")
        elif rel.endswith(".zarray"):
            ids = {c["id"] for c in (doc.get("filters") or [])}
            if doc.get("compressor"):
                ids.add(doc["compressor"]["id"])
            unknown = ids - ZARR2_CODECS
            if unknown:
                problems.append(f"{rel}: non-standard codecs {sorted(unknown)}")

    if fmt == 2:
        zmeta_path = root / ".zmetadata"
        if not zmeta_path.is_file():
            problems.append("zarr v2 store has no .zmetadata (not consolidated)")
        else:
            zmeta = json.loads(zmeta_path.read_text("utf-8"))
            walk_json(zmeta, ".zmetadata")
            meta = zmeta.get("metadata", {})
            for rel, doc in docs.items():
                if rel not in meta:
                    problems.append(f".zmetadata lacks {rel}")
                # zarr-python adds an (empty, inline) `consolidated_metadata` key to
                # the nested groups' entries; ignore it
                elif _without(meta[rel], "consolidated_metadata") != _without(
                    doc, "consolidated_metadata"
                ):
                    problems.append(f".zmetadata entry {rel} differs from the file")
            for rel in meta:
                if rel not in docs:
                    problems.append(f".zmetadata lists {rel}, which does not exist")
    else:
        root_doc = docs.get("zarr.json", {})
        cm = root_doc.get("consolidated_metadata")
        if not cm or "metadata" not in cm:
            problems.append("root zarr.json has no consolidated_metadata")
        else:
            listed = set(cm["metadata"])
            on_disk = {rel.removesuffix("/zarr.json") for rel in docs if rel != "zarr.json"}
            if listed != on_disk:
                problems.append(
                    "consolidated_metadata does not match the store: "
                    f"missing {sorted(on_disk - listed)}, extra {sorted(listed - on_disk)}"
                )
            for k in listed & on_disk:
                if cm["metadata"][k].get("attributes", {}) != docs[f"{k}/zarr.json"].get("attributes", {}):
                    problems.append(f"consolidated attributes of {k} differ from {k}/zarr.json")
        if expect_sharded:
            for rel, doc in sorted(docs.items()):
                if doc.get("node_type") != "array" or doc.get("shape") == []:
                    continue
                if isinstance(doc.get("data_type"), dict) and doc["data_type"].get("name") == "struct":
                    continue  # rec-arrays: anndata never shards them (zarr-python #3546)
                if isinstance(doc.get("data_type"), str) and doc["data_type"].startswith("r"):
                    continue  # raw-bits structured types, same as above
                names = [c["name"] for c in doc.get("codecs") or []]
                if "sharding_indexed" not in names:
                    problems.append(f"{rel}: array of shape {doc.get('shape')} is not sharded")
    return problems
