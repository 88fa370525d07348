"""h5ad files as R tools write them, built with h5py (they cannot be fetched here).

* ``anndatar``: current encodings with every string fixed-length (rhdf5's default) —
  null-terminated strings in datasets and attributes, `column-order` as a fixed-length
  string array (empty when there are no columns), categories and the index fixed-length,
  string scalars as fixed-length scalar datasets, `ordered` as an integer attribute —
  and R's NA as nullable string (variable-length ASCII), integer and boolean columns.
* ``seuratdisk``: null-padded fixed-length strings, the dataframe 0.1.0 layout (`__categories`, legacy categorical codes),
  no root attributes, sparse X marked only by `h5sparse_format`/`h5sparse_shape`, and
  layers, obsm and uns elements without any encoding attributes.

Each converts to h5ad, zarr v3 and zarr v2 reading back as anndata reads the source, and
they concatenate with each other and with a file anndata wrote, equal to anndata.concat.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from anndata.tests.helpers import assert_equal
from scipy import sparse

from test_archives import OUTPUTS, assert_same, check_archive_concat
from test_concat import read, write

OBS = [f"cell{i}" for i in range(6)]


def fixed_type(values: list[str], pad: int = h5py.h5t.STR_NULLTERM) -> tuple[h5py.h5t.TypeID, np.ndarray]:
    """An HDF5 fixed-length UTF-8 string type long enough for `values` (plus the NUL
    R writes), and the values as bytes."""
    raw = [v.encode() for v in values]
    size = max([len(r) for r in raw] + [1]) + 1
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(size)
    tid.set_strpad(pad)
    tid.set_cset(h5py.h5t.CSET_UTF8)
    return tid, np.array(raw, dtype=f"S{size}")


def fixed_dataset(group: h5py.Group, name: str, values: list[str] | str, pad: int = h5py.h5t.STR_NULLTERM, **attrs) -> h5py.Dataset:
    scalar = isinstance(values, str)
    tid, data = fixed_type([values] if scalar else values, pad)
    space = h5py.h5s.create(h5py.h5s.SCALAR) if scalar else h5py.h5s.create_simple((len(data),))
    dsid = h5py.h5d.create(group.id, name.encode(), tid, space)
    dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, data.reshape(()) if scalar else data, mtype=tid)
    ds = group[name]
    for k, v in attrs.items():
        fixed_attr(ds, k, v)
    return ds


def fixed_attr(obj: h5py.HLObject, name: str, value: str | list[str]) -> None:
    """A string attribute written as R does: fixed-length, null-terminated."""
    scalar = isinstance(value, str)
    tid, data = fixed_type([value] if scalar else value)
    space = h5py.h5s.create(h5py.h5s.SCALAR) if scalar else h5py.h5s.create_simple((len(data),))
    aid = h5py.h5a.create(obj.id, name.encode(), tid, space)
    aid.write(data.reshape(()) if scalar else data, mtype=tid)


def encode(obj: h5py.HLObject, etype: str, version: str) -> None:
    fixed_attr(obj, "encoding-type", etype)
    fixed_attr(obj, "encoding-version", version)


def write_anndatar(path: Path) -> Path:
    """Current encodings, fixed-length strings everywhere."""
    rng = np.random.default_rng(1)
    var = ["g0", "g1", "g2", "g3"]
    with h5py.File(path, "w") as f:
        encode(f, "anndata", "0.1.0")
        x = sparse.random(6, 4, density=0.5, format="csr", random_state=1, dtype=np.float64)
        X = f.create_group("X")
        encode(X, "csr_matrix", "0.1.0")
        X.attrs["shape"] = np.array([6, 4], dtype=np.int64)
        X.create_dataset("data", data=x.data)
        X.create_dataset("indices", data=x.indices.astype(np.int32))
        X.create_dataset("indptr", data=x.indptr.astype(np.int64))
        write_frame(f, "obs", OBS, {"cell_type": (["T", "B", "T", "NK", "B", "T"], False), "stage": (["lo", "hi", "lo", "hi", "hi", "lo"], True)}, {"n_genes": np.array([3, 1, 4, 1, 5, 9], dtype=np.int32)})
        add_nullable_columns(f["obs"])
        write_frame(f, "var", var, {}, {"mean": rng.random(4)})
        for name in ("obsm", "varm", "obsp", "varp", "layers"):
            encode(f.create_group(name), "dict", "0.1.0")
        pca = f["obsm"].create_dataset("X_pca", data=rng.random((6, 2)))
        encode(pca, "array", "0.2.0")
        counts = f["layers"].create_dataset("counts", data=rng.integers(0, 9, (6, 4), dtype=np.int32))
        encode(counts, "array", "0.2.0")
        uns = f.create_group("uns")
        encode(uns, "dict", "0.1.0")
        fixed_dataset(uns, "title", "a study", **{"encoding-type": "string", "encoding-version": "0.2.0"})
        fixed_dataset(uns, "batches", ["b1", "b22"], **{"encoding-type": "string-array", "encoding-version": "0.2.0"})
        n = uns.create_dataset("n_pcs", data=np.int64(2))
        encode(n, "numeric-scalar", "0.2.0")
    return path


def write_frame(f: h5py.File, name: str, index: list[str], cats: dict, nums: dict) -> None:
    """A dataframe 0.2.0 with fixed-length strings; categoricals given as (values, ordered)."""
    g = f.create_group(name)
    encode(g, "dataframe", "0.2.0")
    fixed_attr(g, "_index", "_index")
    order = list(cats) + list(nums)
    # R writes an empty character vector, not h5py's empty float64 array.
    fixed_attr(g, "column-order", order)
    fixed_dataset(g, "_index", index, **{"encoding-type": "string-array", "encoding-version": "0.2.0"})
    for col, (values, ordered) in cats.items():
        c = g.create_group(col)
        encode(c, "categorical", "0.2.0")
        c.attrs["ordered"] = np.int32(ordered)  # R's logical as an integer
        categories = sorted(set(values))
        fixed_dataset(c, "categories", categories, **{"encoding-type": "string-array", "encoding-version": "0.2.0"})
        codes = c.create_dataset("codes", data=np.array([categories.index(v) for v in values], dtype=np.int8))
        encode(codes, "array", "0.2.0")
    for col, values in nums.items():
        encode(g.create_dataset(col, data=values), "array", "0.2.0")


def add_nullable_columns(g: h5py.Group) -> None:
    """R's NA in strings, integers and logicals: nullable arrays with masks; the strings
    variable-length ASCII (hdf5r's default character set)."""
    ascii_vlen = h5py.string_dtype("ascii")
    donor = g.create_group("donor")
    encode(donor, "nullable-string-array", "0.1.0")
    donor.create_dataset("values", data=np.array([b"d1", b"", b"d2", b"d1", b"", b"d3"], dtype=object), dtype=ascii_vlen)
    donor.create_dataset("mask", data=np.array([0, 1, 0, 0, 1, 0], dtype=bool))
    counts = g.create_group("n_counts")
    encode(counts, "nullable-integer", "0.1.0")
    counts.create_dataset("values", data=np.array([5, 0, 7, 8, 0, 2], dtype=np.int32))
    counts.create_dataset("mask", data=np.array([0, 1, 0, 0, 0, 0], dtype=bool))
    doublet = g.create_group("is_doublet")
    encode(doublet, "nullable-boolean", "0.1.0")
    doublet.create_dataset("values", data=np.array([0, 1, 0, 0, 1, 0], dtype=bool))
    doublet.create_dataset("mask", data=np.array([0, 0, 1, 0, 0, 0], dtype=bool))
    order = [o.decode() if isinstance(o, bytes) else o for o in g.attrs["column-order"]]
    del g.attrs["column-order"]
    fixed_attr(g, "column-order", order + ["donor", "n_counts", "is_doublet"])


def write_seuratdisk(path: Path) -> Path:
    """dataframe 0.1.0 with `__categories`, no root attributes, elements without encoding
    attributes, sparse X marked by h5sparse attributes only."""
    rng = np.random.default_rng(2)
    var = ["g2", "g3", "g4", "g5"]
    with h5py.File(path, "w") as f:
        x = sparse.random(6, 4, density=0.5, format="csr", random_state=2, dtype=np.float32)
        X = f.create_group("X")
        fixed_attr(X, "h5sparse_format", "csr")
        X.attrs["h5sparse_shape"] = np.array([6, 4], dtype=np.int64)
        X.create_dataset("data", data=x.data)
        X.create_dataset("indices", data=x.indices.astype(np.int32))
        X.create_dataset("indptr", data=x.indptr.astype(np.int32))
        obs = legacy_frame(f, "obs", [f"s{i}" for i in range(6)], {"cell_type": ["B", "B", "DC", "T", "DC", "B"]}, {"nCount_RNA": rng.random(6)})
        legacy_frame(f, "var", var, {}, {"highly_variable": np.array([True, False, True, True])})
        assert obs
        f.create_group("obsm").create_dataset("X_pca", data=rng.random((6, 2)))
        f.create_group("layers").create_dataset("counts", data=rng.integers(0, 9, (6, 4), dtype=np.int32))
        uns = f.create_group("uns")
        fixed_dataset(uns, "batches", ["b1", "b3"])
        uns.create_dataset("n_pcs", data=np.int64(2))
        uns.create_group("neighbors_params").create_dataset("k", data=np.int64(15))
    return path


def legacy_frame(f: h5py.File, name: str, index: list[str], cats: dict, nums: dict) -> h5py.Group:
    """dataframe 0.1.0: integer codes with a `categories` reference into `__categories`."""
    g = f.create_group(name)
    encode(g, "dataframe", "0.1.0")
    fixed_attr(g, "_index", "_index")
    order = list(cats) + list(nums)
    if order:
        fixed_attr(g, "column-order", order)
    else:
        g.attrs["column-order"] = np.array([], dtype=np.float64)
    fixed_dataset(g, "_index", index, pad=h5py.h5t.STR_NULLPAD)
    store = g.create_group("__categories")
    for col, values in cats.items():
        categories = sorted(set(values))
        c = fixed_dataset(store, col, categories, pad=h5py.h5t.STR_NULLPAD)
        codes = g.create_dataset(col, data=np.array([categories.index(v) for v in values], dtype=np.int8))
        codes.attrs["categories"] = c.ref
    for col, values in nums.items():
        g.create_dataset(col, data=values)
    return g


def write_modern(path: Path) -> Path:
    """A file anndata itself wrote, sharing var names and the `cell_type` column."""
    rng = np.random.default_rng(3)
    a = ad.AnnData(
        X=sparse.random(5, 4, density=0.5, format="csr", random_state=3, dtype=np.float32),
        obs=pd.DataFrame({"cell_type": pd.Categorical(["T", "Mono", "T", "B", "Mono"])}, index=[f"m{i}" for i in range(5)]),
        var=pd.DataFrame(index=["g1", "g2", "g3", "g9"]),
        obsm={"X_pca": rng.random((5, 2))},
        layers={"counts": rng.integers(0, 9, (5, 4), dtype=np.int32)},
    )
    return write(a, path, "h5ad")


VARIANTS = {"anndatar": write_anndatar, "seuratdisk": write_seuratdisk}


def read_source(p: Path) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.read_h5ad(p)


@pytest.mark.parametrize("out", list(OUTPUTS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_r_variant_converts(run_adcat, tmp_path, variant, out):
    src = VARIANTS[variant](tmp_path / f"{variant}.h5ad")
    name, extra = OUTPUTS[out]
    run_adcat("convert", src, tmp_path / name, *extra)
    assert_same(read_source(src), read(tmp_path / name))


@pytest.mark.parametrize("join", ["inner", "outer"])
@pytest.mark.parametrize("out", ["h5ad", "zarr3"])
def test_r_variants_concatenate_with_each_other_and_anndata_files(run_adcat, tmp_path, join, out):
    paths = [write_anndatar(tmp_path / "r.h5ad"), write_seuratdisk(tmp_path / "s.h5ad"), write_modern(tmp_path / "m.h5ad")]
    check_archive_concat(run_adcat, tmp_path, paths, out, join=join, label="batch", uns_merge="unique")


def test_sources_read_as_intended(tmp_path):
    """The builders produce what they claim (anndata reads them, strings are fixed-length)."""
    r = read_source(write_anndatar(tmp_path / "r.h5ad"))
    assert list(r.obs["cell_type"].cat.categories) == ["B", "NK", "T"] and r.obs["stage"].cat.ordered
    assert r.uns["title"] == "a study"
    s = read_source(write_seuratdisk(tmp_path / "s.h5ad"))
    assert list(s.obs["cell_type"].cat.categories) == ["B", "DC", "T"] and sparse.issparse(s.X)
    with h5py.File(tmp_path / "r.h5ad") as f:
        assert h5py.check_string_dtype(f["obs/_index"].dtype).length is not None
    assert_equal(r.var_names, pd.Index(["g0", "g1", "g2", "g3"]), elem_name="var_names")
