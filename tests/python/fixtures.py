"""AnnData fixtures written with the reference implementation (anndata 0.13.4).

Every fixture is a small (tens of cells) ``AnnData`` built in memory by a builder
function, then written by anndata itself in one of several on-disk formats. Between
them the fixtures cover every encoding anndata 0.13.4 writes (see
``/work/shared/reference/anndata-0.13.4-notes.md`` §3):

    anndata, raw, dict, dataframe 0.2.0, array (0-d..3-d; all numeric dtypes),
    csr_matrix / csc_matrix (int32 and int64 indptr, int32 / int64 / uint8 / uint16
    indices), categorical (ordered, unordered, with missing values, str / int / float
    / bool categories), nullable-integer, nullable-boolean, nullable-string-array
    (na-value NA and NaN), string-array (pandas-2 style object index and columns),
    numeric-scalar (int, uint, float, bool, complex), string, null, rec-array,
    awkward-array.

Nothing here is committed as data: fixtures are generated at test time.

Public API
----------
``FIXTURES``            name -> builder (a zero-argument function returning AnnData)
``FORMATS``             the writer formats accepted by :func:`write_fixture`
``build_fixture(name)`` build the in-memory AnnData of a fixture
``write_fixture(name, adata, path, fmt)``
                        write ``adata`` (normally ``build_fixture(name)``) to ``path``
                        with anndata, applying the fixture's write settings
``fixture_meta(name)``  the fixture's :class:`FixtureMeta` (write options, flags)
``read_fixture_store(name, path)``
                        read a store with anndata under the fixture's pandas options

Run ``python fixtures.py [OUTDIR]`` to write every fixture in every format and check
each round-trips through anndata.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

try:  # optional: the awkward-array fixture needs it
    import awkward as ak
except ImportError:  # pragma: no cover - depends on the environment
    ak = None


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------

FORMATS: tuple[str, ...] = ("h5ad", "h5ad-gzip", "zarr2", "zarr3", "zarr3-unsharded")
"""Writer formats: ``h5ad`` (no compression), ``h5ad-gzip`` (``compression="gzip"``),
``zarr2`` (``zarr_write_format=2``), ``zarr3`` (anndata's default, auto-sharded) and
``zarr3-unsharded`` (``auto_shard_zarr_v3=False``)."""


@dataclass(frozen=True)
class FixtureMeta:
    """How a fixture must be written, and what its data contains."""

    #: ``anndata.settings`` overrides active while writing
    settings: dict[str, Any] = field(default_factory=dict)
    #: ``pandas`` options active while building *and* writing
    pandas_options: dict[str, Any] = field(default_factory=dict)
    #: passed to ``write_h5ad`` / ``write_zarr`` (default False: keep string columns)
    convert_strings_to_categoricals: bool = False
    #: dense arrays contain NaN: ``assert_equal(exact=True)`` uses ``a == b`` for
    #: ndarrays, which is False for NaN, so use the NaN-aware strict comparison only
    nan_in_dense: bool = False
    #: why the anndata read differs from the in-memory object by design (then the
    #: self-check skips that comparison); None if it round-trips
    in_memory_differs: str | None = None
    #: the fixture cannot be built in this environment (reason), e.g. no awkward
    unavailable: str | None = None
    description: str = ""


FIXTURES: dict[str, Callable[[], ad.AnnData]] = {}
_META: dict[str, FixtureMeta] = {}


def _fixture(name: str | None = None, **meta: Any):
    def deco(fn: Callable[[], ad.AnnData]) -> Callable[[], ad.AnnData]:
        key = name or fn.__name__.removeprefix("build_")
        FIXTURES[key] = fn
        _META[key] = FixtureMeta(description=(fn.__doc__ or "").strip(), **meta)
        return fn

    return deco


def fixture_meta(name: str) -> FixtureMeta:
    return _META[name]


@contextlib.contextmanager
def pandas_options(options: dict[str, Any]) -> Iterator[None]:
    if not options:
        yield
        return
    args: list[Any] = []
    for k, v in options.items():
        args += [k, v]
    with pd.option_context(*args):
        yield


def build_fixture(name: str) -> ad.AnnData:
    meta = _META[name]
    if meta.unavailable:
        raise RuntimeError(f"fixture {name!r} unavailable: {meta.unavailable}")
    with pandas_options(meta.pandas_options):
        return FIXTURES[name]()


def write_fixture(name: str, adata: ad.AnnData, path: str | Path, fmt: str) -> Path:
    """Write ``adata`` with anndata 0.13.4 to ``path`` in format ``fmt``.

    The fixture's own write settings (``fixture_meta(name)``) are applied. ``path``
    must not exist. Returns ``path`` as a :class:`Path`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    meta = _META[name]
    path = Path(path)
    if path.exists():
        raise FileExistsError(path)
    settings = dict(meta.settings)
    if fmt == "zarr2":
        settings["zarr_write_format"] = 2
    elif fmt == "zarr3":
        settings["zarr_write_format"] = 3
    elif fmt == "zarr3-unsharded":
        settings.update(zarr_write_format=3, auto_shard_zarr_v3=False)
    # No ``adata.copy()`` here: scipy's ``.copy()`` downcasts int64 indptr/indices
    # to int32, which would silently lose the int64-indptr cases. Note that with
    # ``convert_strings_to_categoricals=True`` anndata mutates ``adata`` in place.
    with (
        pandas_options(meta.pandas_options),
        ad.settings.override(**settings),
        warnings.catch_warnings(),
    ):
        # zarr_write_format=2 is deprecated (DeprecationWarning); awkward and
        # rec-arrays emit experimental/unstable-spec warnings. None matter here.
        warnings.simplefilter("ignore")
        kw = dict(convert_strings_to_categoricals=meta.convert_strings_to_categoricals)
        if fmt == "h5ad":
            adata.write_h5ad(path, **kw)
        elif fmt == "h5ad-gzip":
            adata.write_h5ad(path, compression="gzip", **kw)
        else:
            adata.write_zarr(path, **kw)
    return path


def read_any(path: str | Path) -> ad.AnnData:
    """Read an .h5ad or .zarr store with anndata (warnings silenced)."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if path.suffix == ".h5ad":
            return ad.read_h5ad(path)
        return ad.read_zarr(path)


def read_fixture_store(name: str, path: str | Path) -> ad.AnnData:
    """Read a store of fixture ``name`` under the fixture's pandas options: the
    pandas-2-strings fixture must be read with ``future.infer_string=False``, or its
    object-dtype indexes come back as ``str``."""
    with pandas_options(_META[name].pandas_options):
        return read_any(path)


def suffix_for(fmt: str) -> str:
    return ".h5ad" if fmt.startswith("h5ad") else ".zarr"


# --------------------------------------------------------------------------------------
# Helpers for building data
# --------------------------------------------------------------------------------------


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _random_csr(
    rng: np.random.Generator, shape: tuple[int, int], density: float, dtype=np.float32
) -> sparse.csr_matrix:
    m = sparse.random(
        *shape, density=density, format="csr", rng=rng, dtype=np.float64
    )
    m.data = (m.data * 100).astype(dtype) if np.dtype(dtype).kind in "iu" else m.data
    return sparse.csr_matrix(m.astype(dtype))


def _with_index_dtypes(m, indptr=np.int64, indices=None):
    """Force the index dtypes (scipy downcasts to int32 on construction)."""
    m = m.copy()
    m.indptr = m.indptr.astype(indptr)
    if indices is not None:
        m.indices = m.indices.astype(indices)
    return m


NUMERIC_DTYPES = (
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "bool",
)


def _dense_of(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        # include the extreme values of the dtype
        a = rng.integers(max(info.min, -100), min(info.max, 100), size=shape, endpoint=True).astype(dt)
        flat = a.reshape(-1)
        if flat.size >= 2:
            flat[0], flat[-1] = info.min, info.max
        return a
    a = rng.standard_normal(shape).astype(dt)
    flat = a.reshape(-1)
    if flat.size >= 4:
        fi = np.finfo(dt)
        flat[0], flat[1], flat[2] = fi.max, fi.tiny, -0.0
    return a


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@_fixture()
def build_minimal() -> ad.AnnData:
    """3x2 dense float32 X; obs/var with no columns (HDF5 stores the empty
    column-order as an empty float64 array); nothing else."""
    X = np.arange(6, dtype=np.float32).reshape(3, 2)
    return ad.AnnData(
        X=X,
        obs=pd.DataFrame(index=_names("c", 3)),
        var=pd.DataFrame(index=_names("g", 2)),
    )


@_fixture()
def build_dataframe_columns() -> ad.AnnData:
    """obs/var with one column of every 1-d encoding: numeric arrays of each dtype,
    categoricals (unordered/ordered, missing, str/int/float/bool categories),
    nullable integer/boolean, nullable strings (na-value NA and NaN)."""
    n_obs, n_var = 24, 9
    rng = _rng(1)
    obs = pd.DataFrame(index=_names("cell_", n_obs))
    for dt in NUMERIC_DTYPES:
        obs[f"num_{dt}"] = _dense_of(rng, (n_obs,), dt)
    obs["float_nan"] = np.where(np.arange(n_obs) % 5 == 0, np.nan, rng.random(n_obs))
    obs["float_inf"] = np.r_[np.inf, -np.inf, np.nan, rng.random(n_obs - 3)]
    labels = ["T cell", "B cell", "NK"]
    obs["cat_str"] = pd.Categorical(
        [labels[i % 3] if i % 7 else None for i in range(n_obs)], categories=labels
    )
    obs["cat_ordered"] = pd.Categorical(
        [["low", "mid", "high"][i % 3] for i in range(n_obs)],
        categories=["low", "mid", "high"],
        ordered=True,
    )
    obs["cat_ordered_missing"] = pd.Categorical(
        [["low", "high"][i % 2] if i % 4 else None for i in range(n_obs)],
        categories=["low", "high"],
        ordered=True,
    )
    obs["cat_int"] = pd.Categorical([(i % 4) * 10 for i in range(n_obs)])
    obs["cat_int_missing"] = pd.Categorical(
        [i % 3 if i % 5 else None for i in range(n_obs)], categories=[0, 1, 2]
    )
    obs["cat_float"] = pd.Categorical([0.5 * (i % 3) for i in range(n_obs)])
    obs["cat_bool"] = pd.Categorical([bool(i % 2) for i in range(n_obs)])
    obs["cat_unused"] = pd.Categorical(["a"] * n_obs, categories=["a", "b", "zzz"])
    obs["cat_all_missing"] = pd.Categorical([None] * n_obs, categories=["x"])
    obs["Int64"] = pd.array([i if i % 6 else None for i in range(n_obs)], dtype="Int64")
    obs["Int8"] = pd.array([-i if i % 4 else None for i in range(n_obs)], dtype="Int8")
    obs["UInt32"] = pd.array([i * 1000 for i in range(n_obs)], dtype="UInt32")
    obs["UInt64_nomissing"] = pd.array(list(range(n_obs)), dtype="UInt64")
    obs["boolean"] = pd.array(
        [bool(i % 2) if i % 3 else None for i in range(n_obs)], dtype="boolean"
    )
    obs["boolean_nomissing"] = pd.array([i < 5 for i in range(n_obs)], dtype="boolean")
    # pandas 3 default string dtype: StringDtype(na_value=nan) -> na-value "NaN"
    obs["str_default"] = pd.Series(
        [f"s{i}" if i % 4 else None for i in range(n_obs)], index=obs.index, dtype="str"
    )
    # nullable string with pd.NA -> na-value "NA"
    obs["str_nullable"] = pd.array(
        [f"ü{i}" if i % 3 else None for i in range(n_obs)], dtype="string"
    )
    obs["str_empty_vs_na"] = pd.array(
        ["" if i % 2 else None for i in range(n_obs)], dtype="string"
    )

    var = pd.DataFrame(index=_names("gene_", n_var))
    var["highly_variable"] = rng.random(n_var) < 0.5
    var["means"] = rng.random(n_var)
    var["gene_ids"] = pd.array([f"ENSG{i:011d}" for i in range(n_var)], dtype="str")
    var["feature_types"] = pd.Categorical(["Gene Expression"] * n_var)
    X = _random_csr(rng, (n_obs, n_var), 0.3)
    return ad.AnnData(X=X, obs=obs, var=var)


@_fixture(pandas_options={"future.infer_string": False})
def build_pandas2_strings() -> ad.AnnData:
    """pandas-2 style object-dtype strings: the obs/var indexes and object string
    columns are written as `string-array` (not `nullable-string-array`)."""
    n_obs, n_var = 12, 5
    rng = _rng(2)
    obs = pd.DataFrame(
        {
            "object_str": np.array([f"x{i}" for i in range(n_obs)], dtype=object),
            "cat_obj": pd.Categorical(np.array(["a", "b", "c"] * 4, dtype=object)),
            "n_counts": rng.random(n_obs),
        },
        index=pd.Index([f"bc-{i}" for i in range(n_obs)], dtype=object),
    )
    var = pd.DataFrame(
        {"symbol": np.array([f"G{i}" for i in range(n_var)], dtype=object)},
        index=pd.Index([f"g{i}" for i in range(n_var)], dtype=object),
    )
    X = _random_csr(rng, (n_obs, n_var), 0.4)
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["labels"] = np.array(["alpha", "beta", "gamma"], dtype=object)
    return adata


@_fixture()
def build_named_index() -> ad.AnnData:
    """Index with a name (the `_index` attribute points to it) and columns in a
    non-alphabetical order (`column-order` must be kept)."""
    n_obs, n_var = 10, 4
    rng = _rng(3)
    obs = pd.DataFrame(
        {"zeta": rng.random(n_obs), "alpha": np.arange(n_obs), "mid": ["m"] * n_obs},
        index=pd.Index(_names("c", n_obs), name="barcode"),
    )
    var = pd.DataFrame(
        {"b": np.ones(n_var, dtype=np.float32), "a": np.zeros(n_var, dtype=np.int16)},
        index=pd.Index(_names("g", n_var), name="gene_symbol"),
    )
    return ad.AnnData(X=rng.random((n_obs, n_var)), obs=obs, var=var)


@_fixture()
def build_dense_dtypes() -> ad.AnnData:
    """Dense `array` encodings of every numeric dtype (int8..uint64, float32/64,
    bool) as layers, 2-d and 3-d obsm/varm arrays, and 1-d..3-d arrays in uns."""
    n_obs, n_var = 8, 6
    rng = _rng(4)
    adata = ad.AnnData(
        X=_dense_of(rng, (n_obs, n_var), "float64"),
        obs=pd.DataFrame(index=_names("c", n_obs)),
        var=pd.DataFrame(index=_names("g", n_var)),
    )
    for dt in NUMERIC_DTYPES:
        adata.layers[dt] = _dense_of(rng, (n_obs, n_var), dt)
    adata.obsm["X_pca"] = _dense_of(rng, (n_obs, 3), "float32")
    adata.obsm["cube_f64"] = _dense_of(rng, (n_obs, 2, 3), "float64")
    adata.obsm["cube_u16"] = _dense_of(rng, (n_obs, 3, 2), "uint16")
    adata.obsm["one_col_i64"] = _dense_of(rng, (n_obs, 1), "int64")
    adata.obsm["zero_cols"] = np.zeros((n_obs, 0), dtype=np.float32)
    adata.varm["PCs"] = _dense_of(rng, (n_var, 3), "float64")
    adata.varm["bool_mask"] = _dense_of(rng, (n_var, 2), "bool")
    for dt in NUMERIC_DTYPES:
        adata.uns[f"arr1d_{dt}"] = _dense_of(rng, (7,), dt)
    adata.uns["arr2d"] = _dense_of(rng, (3, 4), "int32")
    adata.uns["arr3d"] = _dense_of(rng, (2, 3, 4), "float32")
    adata.uns["arr_empty"] = np.zeros((0,), dtype=np.float64)
    adata.uns["arr_empty2d"] = np.zeros((0, 3), dtype=np.int64)
    return adata


@_fixture(nan_in_dense=True)
def build_dense_nan() -> ad.AnnData:
    """Dense float X and obsm with NaN, +-inf and -0.0 (bit patterns must be kept)."""
    n_obs, n_var = 6, 4
    X = np.arange(n_obs * n_var, dtype=np.float32).reshape(n_obs, n_var)
    X[0, 0], X[1, 1], X[2, 2], X[3, 3] = np.nan, np.inf, -np.inf, -0.0
    adata = ad.AnnData(
        X=X,
        obs=pd.DataFrame(index=_names("c", n_obs)),
        var=pd.DataFrame(index=_names("g", n_var)),
    )
    ob = np.ones((n_obs, 2), dtype=np.float64)
    ob[::2, 0] = np.nan
    adata.obsm["nan_emb"] = ob
    adata.uns["nan_vec"] = np.array([np.nan, 1.0, np.inf], dtype=np.float64)
    adata.uns["nan_scalar"] = np.float64("nan")
    return adata


@_fixture()
def build_sparse() -> ad.AnnData:
    """csr_matrix / csc_matrix with int32 and int64 indptr and indices, float and
    integer data, an all-zero matrix (nnz=0), and sparse obsp/varp."""
    n_obs, n_var = 20, 12
    rng = _rng(5)
    X = _random_csr(rng, (n_obs, n_var), 0.25, np.float32).tocsc()  # csc X
    adata = ad.AnnData(
        X=X,
        obs=pd.DataFrame(index=_names("c", n_obs)),
        var=pd.DataFrame(index=_names("g", n_var)),
    )
    base = _random_csr(rng, (n_obs, n_var), 0.3, np.float64)
    adata.layers["csr_i32"] = base
    adata.layers["csr_indptr_i64"] = _with_index_dtypes(base, indptr=np.int64)
    adata.layers["csr_all_i64"] = _with_index_dtypes(base, np.int64, np.int64)
    adata.layers["csc_indptr_i64"] = _with_index_dtypes(base.tocsc(), indptr=np.int64)
    adata.layers["csr_int_data"] = _random_csr(rng, (n_obs, n_var), 0.2, np.int32)
    adata.layers["csr_u8_data"] = _random_csr(rng, (n_obs, n_var), 0.2, np.uint8)
    adata.layers["csr_bool_data"] = _random_csr(rng, (n_obs, n_var), 0.2, np.float32).astype(bool)
    adata.layers["csr_empty"] = sparse.csr_matrix((n_obs, n_var), dtype=np.float32)
    adata.layers["csc_empty_rows"] = sparse.csc_matrix(
        sparse.random(n_obs, n_var, density=0.1, rng=rng, format="csr")
        .multiply(np.arange(n_obs)[:, None] % 2)
    )
    adata.layers["csr_array"] = sparse.csr_array(base * 2)
    adata.obsp["connectivities"] = _random_csr(rng, (n_obs, n_obs), 0.1, np.float32)
    adata.obsp["distances"] = _with_index_dtypes(
        _random_csr(rng, (n_obs, n_obs), 0.1, np.float64), indptr=np.int64
    )
    adata.obsp["dense_p"] = rng.random((n_obs, n_obs))
    adata.varp["corr"] = _random_csr(rng, (n_var, n_var), 0.3, np.float64).tocsc()
    return adata


@_fixture(settings={"write_csr_csc_indices_with_min_possible_dtype": True})
def build_sparse_min_indices() -> ad.AnnData:
    """Written with `write_csr_csc_indices_with_min_possible_dtype=True`: indices
    stored as uint8 (minor axis <= 255) and uint16 (minor axis <= 65535)."""
    n_obs, n_var = 12, 300
    rng = _rng(6)
    X = _random_csr(rng, (n_obs, n_var), 0.05, np.float32)  # 300 cols -> uint16
    adata = ad.AnnData(
        X=X,
        obs=pd.DataFrame(index=_names("c", n_obs)),
        var=pd.DataFrame(index=_names("g", n_var)),
    )
    adata.obsp["small"] = _random_csr(rng, (n_obs, n_obs), 0.3, np.float64)  # uint8
    adata.varm["csc_small"] = _random_csr(rng, (n_var, 10), 0.2, np.float32).tocsc()
    return adata


@_fixture()
def build_aligned_mappings() -> ad.AnnData:
    """obsm/varm holding dense arrays, csr/csc matrices and DataFrames; obsp/varp;
    layers; X=None (only layers)."""
    n_obs, n_var = 15, 7
    rng = _rng(7)
    adata = ad.AnnData(
        obs=pd.DataFrame({"g": pd.Categorical(["a", "b", "c"] * 5)}, index=_names("c", n_obs)),
        var=pd.DataFrame(index=_names("g", n_var)),
    )
    adata.layers["counts"] = _random_csr(rng, (n_obs, n_var), 0.4, np.int64)
    adata.layers["dense"] = rng.random((n_obs, n_var)).astype(np.float32)
    adata.obsm["X_umap"] = rng.random((n_obs, 2))
    adata.obsm["sparse_csr"] = _random_csr(rng, (n_obs, 5), 0.3)
    adata.obsm["sparse_csc"] = _random_csr(rng, (n_obs, 4), 0.3).tocsc()
    adata.obsm["df"] = pd.DataFrame(
        {
            "x": rng.random(n_obs),
            "lbl": pd.Categorical(["p", "q", "r"] * 5),
            "n": pd.array(list(range(n_obs)), dtype="Int32"),
            "s": pd.array([f"v{i}" for i in range(n_obs)], dtype="str"),
        },
        index=adata.obs_names,
    )
    adata.obsm["df_empty"] = pd.DataFrame(index=adata.obs_names)
    adata.varm["loadings"] = rng.random((n_var, 3)).astype(np.float32)
    adata.varm["sparse"] = _random_csr(rng, (n_var, 3), 0.5, np.float64)
    adata.varm["df"] = pd.DataFrame(
        {"flag": rng.random(n_var) < 0.5, "k": np.arange(n_var, dtype=np.uint32)},
        index=adata.var_names,
    )
    adata.obsp["adj"] = _random_csr(rng, (n_obs, n_obs), 0.2, np.float32)
    adata.obsp["dense"] = rng.random((n_obs, n_obs))
    adata.varp["sim"] = rng.random((n_var, n_var)).astype(np.float32)
    adata.varp["sim_sparse"] = _random_csr(rng, (n_var, n_var), 0.3).tocsc()
    return adata


@_fixture(in_memory_differs="uns lists are read back as numpy arrays")
def build_uns_nested() -> ad.AnnData:
    """uns: nested dicts, numeric scalars (int/uint/float/bool and
    Python int/float/bool), string scalars, None (null), empty dict, string arrays
    (with and without NA), a DataFrame, a rec-array, a categorical in uns."""
    n_obs, n_var = 5, 3
    adata = ad.AnnData(
        X=np.eye(n_obs, n_var, dtype=np.float32),
        obs=pd.DataFrame(index=_names("c", n_obs)),
        var=pd.DataFrame(index=_names("g", n_var)),
    )
    adata.uns = {
        "py_int": 42,
        "py_neg_int": -7,
        "py_float": 3.25,
        "py_bool_true": True,
        "py_bool_false": False,
        "np_int8": np.int8(-3),
        "np_uint16": np.uint16(65535),
        "np_uint64": np.uint64(2**64 - 1),
        "np_int64_min": np.int64(-(2**63)),
        "np_float32": np.float32(1.5),
        "np_bool": np.bool_(True),
        "string": "hello world",
        "empty_string": "",
        "unicode_string": "naïve café — 日本語 🧬",
        "none": None,
        "empty_dict": {},
        "str_array": np.array(["a", "bb", "ccc"], dtype=object),
        "str_array_nullable": pd.array(["x", None, "z"], dtype="string"),
        "str_array_unicode": np.array(["α", "βγ", ""], dtype=object),
        "int_list": [1, 2, 3],
        "nested": {
            "level1": {
                "level2": {"value": 1.0, "name": "deep", "arr": np.arange(4)},
                "flag": False,
            },
            "params": {"n_neighbors": 15, "method": "umap", "metric": "euclidean"},
        },
        "leiden_colors": np.array(["#1f77b4", "#ff7f0e", "#279e68"], dtype=object),
        "df": pd.DataFrame(
            {"a": [1, 2, 3], "b": pd.Categorical(["x", "y", "x"])},
            index=["r0", "r1", "r2"],
        ),
        "nullable_int": pd.array([1, None, 3], dtype="Int16"),
        "nullable_bool": pd.array([True, None, False], dtype="boolean"),
        "categorical": pd.Categorical(["u", "v", "u", None]),
    }
    return adata


@_fixture(nan_in_dense=True)
def build_complex_numbers() -> ad.AnnData:
    """Complex numbers (HDF5 stores them as a compound {r, i}; zarr as complex64 /
    complex128): numeric-scalar in uns, 1-d array in uns, obsm and a layer. (A Python
    `complex` is not writable: anndata 0.13.4 registers no writer for it.)"""
    n_obs, n_var = 4, 3
    rng = _rng(12)
    adata = ad.AnnData(
        X=np.ones((n_obs, n_var), dtype=np.float32),
        obs=pd.DataFrame(index=_names("c", n_obs)),
        var=pd.DataFrame(index=_names("g", n_var)),
    )
    adata.layers["c64"] = (rng.random((n_obs, n_var)) + 1j * rng.random((n_obs, n_var))).astype(np.complex64)
    adata.obsm["c128"] = rng.random((n_obs, 2)) - 1j * rng.random((n_obs, 2))
    adata.uns["c128_scalar"] = np.complex128(1 + 2j)
    adata.uns["c64_scalar"] = np.complex64(-0.5 + 0.25j)
    adata.uns["c128_vec"] = np.array([1 + 1j, np.nan + 0j, -0.0 - 2j])
    return adata


@_fixture()
def build_recarray() -> ad.AnnData:
    """uns rec-arrays (structured dtypes, as written by scanpy's rank_genes_groups):
    float, int and fixed-width unicode fields."""
    n_obs, n_var = 4, 3
    adata = ad.AnnData(
        X=np.ones((n_obs, n_var), dtype=np.float32),
        obs=pd.DataFrame(index=_names("c", n_obs)),
        var=pd.DataFrame(index=_names("g", n_var)),
    )
    rec_f = np.rec.fromarrays(
        [np.array([1.5, 2.5, -1.0], np.float32), np.array([0.1, 0.2, 0.3])],
        names=["g0", "g1"],
    )
    rec_s = np.rec.fromarrays(
        [np.array(["GAPDH", "ACTB", "CD3E"], dtype="U5"), np.array(["a", "bb", "ccc"], dtype="U3")],
        names=["0", "1"],
    )
    rec_mixed = np.array(
        [(1, 2.0, "x"), (3, 4.0, "yz")],
        dtype=[("i", "<i8"), ("f", "<f8"), ("s", "<U2")],
    )
    adata.uns["rank_genes_groups"] = {
        "params": {"groupby": "leiden", "method": "wilcoxon"},
        "scores": rec_f,
        "names": rec_s,
    }
    adata.uns["rec_mixed"] = rec_mixed
    return adata


@_fixture()
def build_raw() -> ad.AnnData:
    """`raw` with its own (sparse) X, a var with more genes than the main var,
    var columns and varm."""
    n_obs, n_raw_var, n_var = 10, 8, 4
    rng = _rng(8)
    raw_var = pd.DataFrame(
        {
            "gene_ids": pd.array([f"E{i}" for i in range(n_raw_var)], dtype="str"),
            "hv": rng.random(n_raw_var) < 0.5,
            "kind": pd.Categorical(["a", "b"] * 4),
        },
        index=_names("g", n_raw_var),
    )
    full = ad.AnnData(
        X=_random_csr(rng, (n_obs, n_raw_var), 0.5, np.float32),
        obs=pd.DataFrame({"batch": pd.Categorical(["b1", "b2"] * 5)}, index=_names("c", n_obs)),
        var=raw_var,
    )
    full.varm["raw_pcs"] = rng.random((n_raw_var, 2))
    full.varm["raw_sparse"] = _random_csr(rng, (n_raw_var, 3), 0.5)
    full.raw = full
    adata = full[:, :n_var].copy()
    adata.X = adata.X.toarray()  # main X dense, raw X sparse
    adata.var["extra"] = np.arange(n_var)
    return adata


@_fixture()
def build_raw_dense() -> ad.AnnData:
    """`raw` with a dense X and no varm; main X sparse csc."""
    n_obs, n_var = 6, 5
    rng = _rng(9)
    full = ad.AnnData(
        X=rng.random((n_obs, n_var)),
        obs=pd.DataFrame(index=_names("c", n_obs)),
        var=pd.DataFrame(index=_names("g", n_var)),
    )
    full.raw = full
    full.X = sparse.csc_matrix(full.X * 2)
    return full


@_fixture()
def build_empty_obs() -> ad.AnnData:
    """0 observations x 5 variables: empty X (csr), empty obs with typed columns,
    empty obsm/layers."""
    n_var = 5
    obs = pd.DataFrame(
        {
            "f": np.array([], dtype=np.float64),
            "i": np.array([], dtype=np.int32),
            "c": pd.Categorical([], categories=["a", "b"]),
            "s": pd.array([], dtype="str"),
            "ni": pd.array([], dtype="Int64"),
        },
        index=pd.Index([], dtype="str"),
    )
    adata = ad.AnnData(
        X=sparse.csr_matrix((0, n_var), dtype=np.float32),
        obs=obs,
        var=pd.DataFrame({"v": np.arange(n_var)}, index=_names("g", n_var)),
    )
    adata.layers["dense"] = np.zeros((0, n_var), dtype=np.float64)
    adata.obsm["emb"] = np.zeros((0, 2), dtype=np.float32)
    adata.obsm["sparse"] = sparse.csr_matrix((0, 3), dtype=np.float64)
    adata.varm["v"] = np.ones((n_var, 2))
    return adata


@_fixture()
def build_empty_both() -> ad.AnnData:
    """0 x 0 AnnData with a 0x0 dense X."""
    return ad.AnnData(
        X=np.zeros((0, 0), dtype=np.float32),
        obs=pd.DataFrame(index=pd.Index([], dtype="str")),
        var=pd.DataFrame(index=pd.Index([], dtype="str")),
    )


@_fixture()
def build_unicode_names() -> ad.AnnData:
    """Non-ASCII obs/var names, column names, layer/obsm/uns keys and category
    labels (UTF-8 throughout; no '/' in keys: anndata rejects it)."""
    n_obs, n_var = 6, 4
    rng = _rng(10)
    obs = pd.DataFrame(
        {
            "größe": rng.random(n_obs),
            "细胞类型": pd.Categorical(["神经元", "胶质细胞"] * 3),
            "emoji 🧪": pd.array(["🧬", "🔬", "✅", "é", "ñ", "ß"], dtype="str"),
            "with space & symbols.:-": np.arange(n_obs),
        },
        index=["zelle_α", "zelle_β", "ячейка", "セル", "κύτταρο", "cell\u00a0nbsp"],
    )
    var = pd.DataFrame(index=["Gène1", "基因2", "ген3", "géne_4"])
    adata = ad.AnnData(X=rng.random((n_obs, n_var)).astype(np.float32), obs=obs, var=var)
    adata.layers["zählungen"] = rng.integers(0, 5, (n_obs, n_var)).astype(np.int32)
    adata.obsm["X_ümap"] = rng.random((n_obs, 2))
    adata.uns["clé"] = {"值": "ok", "список": np.array(["α", "β"], dtype=object)}
    return adata


@_fixture(
    unavailable=None if ak is not None else "awkward is not installed",
)
def build_awkward() -> ad.AnnData:
    """awkward-array encoding: ragged lists and records in obsm, one in uns."""
    assert ak is not None
    n_obs, n_var = 6, 3
    adata = ad.AnnData(
        X=np.zeros((n_obs, n_var), dtype=np.float32),
        obs=pd.DataFrame(index=_names("c", n_obs)),
        var=pd.DataFrame(index=_names("g", n_var)),
    )
    adata.obsm["ragged"] = ak.Array([[1, 2, 3], [], [4], [5, 6], [7, 8, 9, 10], [11]])
    adata.obsm["records"] = ak.Array(
        [{"x": float(i), "tags": ["t"] * i} for i in range(n_obs)]
    )
    adata.uns["awk"] = ak.Array([[1.5], [2.5, 3.5]])
    return adata


@_fixture(
    convert_strings_to_categoricals=True,
    in_memory_differs="string columns are converted to categoricals on write",
)
def build_strings_to_categoricals() -> ad.AnnData:
    """Written with anndata's default `convert_strings_to_categoricals=True`: the
    repeated string columns become categoricals on write (as most real files)."""
    n_obs, n_var = 12, 4
    rng = _rng(11)
    obs = pd.DataFrame(
        {
            "sample": pd.array(["s1", "s2", "s3"] * 4, dtype="str"),
            "unique": pd.array([f"u{i}" for i in range(n_obs)], dtype="str"),
        },
        index=_names("c", n_obs),
    )
    adata = ad.AnnData(
        X=_random_csr(rng, (n_obs, n_var), 0.5),
        obs=obs,
        var=pd.DataFrame(index=_names("g", n_var)),
    )
    return adata


# --------------------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------------------


def available_fixtures() -> list[str]:
    return [k for k in FIXTURES if _META[k].unavailable is None]


def _main(argv: list[str]) -> int:  # pragma: no cover - manual tool
    """Write every fixture in every format; check that each read equals the
    in-memory object (anndata's own round-trip notion, ``exact=False``) and that the
    reads of all formats are identical to the h5ad read (strict oracle comparison)."""
    import tempfile

    from anndata.tests.helpers import assert_equal

    import oracle

    out = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="adcat-fx-"))
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name in FIXTURES:
        meta = _META[name]
        if meta.unavailable:
            print(f"SKIP {name}: {meta.unavailable}")
            continue
        first = None
        for fmt in FORMATS:
            path = out / f"{name}.{fmt}{suffix_for(fmt)}"
            try:
                adata = build_fixture(name)
                write_fixture(name, adata, path, fmt)
                back = read_fixture_store(name, path)
                with pandas_options(meta.pandas_options), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if not (meta.nan_in_dense or meta.in_memory_differs):
                        assert_equal(build_fixture(name), back, exact=False)
                    if first is None:
                        first = back
                    else:
                        oracle.assert_identical(first, back)
                        assert oracle.dtype_report(first) == oracle.dtype_report(back)
                print(f"ok   {name} {fmt}")
            except Exception as e:  # noqa: BLE001
                failures += 1
                print(f"FAIL {name} {fmt}: {type(e).__name__}: {e}")
    print(f"{failures} failures; files in {out}")
    return 1 if failures else 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    raise SystemExit(_main(sys.argv))
