"""Oracle tests for `adcat concat`: every case compares adcat's output, read back by
anndata 0.13.4, with `anndata.concat` of the same inputs in memory.

The product matrix mirrors anndata's own tests/test_concatenate_disk.py
(axis x join x merge x {dense, csr, csc} x {h5ad, zarr}); the named cases cover the rest
of the semantics (mixed formats, uns_merge, raw, pairwise, dtypes, missing elements, ...).
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from anndata.tests.helpers import assert_equal, gen_adata
from scipy import sparse

FORMATS = {"h5ad": ".h5ad", "zarr": ".zarr", "zarr2": ".zarr"}


def write(adata: ad.AnnData, path: Path, fmt: str) -> Path:
    # Strings stay strings (anndata's writers otherwise turn them into categoricals).
    kw = {"convert_strings_to_categoricals": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "h5ad":
            adata.write_h5ad(path, **kw)
        elif fmt == "zarr2":
            with ad.settings.override(zarr_write_format=2):
                adata.write_zarr(path, **kw)
        else:
            adata.write_zarr(path, **kw)
    return path


def read(path: Path) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.read_h5ad(path) if path.suffix == ".h5ad" else ad.read_zarr(path)


def cli_args(kw: dict) -> list[str]:
    args: list[str] = []
    for k, v in kw.items():
        if v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            args.append(flag)
        elif k == "keys":
            args += [flag, ",".join(v)]
        else:
            args += [flag, str(v)]
    return args


def check_concat(run_adcat, tmp_path: Path, adatas, fmts, out_fmt="h5ad", extra=(), **kw):
    """Write inputs, run adcat, compare with anndata.concat(read inputs, **kw).

    The oracle is the in-memory result as anndata itself writes it in adcat's output
    format and reads it back: where anndata cannot round-trip a dtype (an empty object
    index becomes str), adcat is held to what anndata would put on disk. Values are
    compared NaN-aware (`exact=False`, since `exact=True` treats NaN != NaN) and every
    matrix dtype is checked against the in-memory result.
    """
    if isinstance(fmts, str):
        fmts = [fmts] * len(adatas)
    paths = [write(a, tmp_path / f"in{i}{FORMATS[f]}", f) for i, (a, f) in enumerate(zip(adatas, fmts))]
    out = tmp_path / f"out{FORMATS[out_fmt]}"
    args = ["concat", *paths, "-o", out, *cli_args(kw), *extra]
    if out_fmt == "zarr2":
        args += ["--zarr-format", "2"]
    proc = run_adcat(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat([read(p) for p in paths], **kw)
    roundtrip = read(write(expected, tmp_path / f"expected{FORMATS[out_fmt]}", out_fmt))
    got = read(out)
    assert_equal(roundtrip, got, exact=False)
    assert_same_dtypes(expected, got)
    check_plan(run_adcat, args, expected)
    return expected, got, proc


def check_plan(run_adcat, args, expected):
    """`adcat plan` with the same arguments predicts the shapes and X dtype written."""
    import json

    out = Path(args[args.index("-o") + 1])
    plan_out = out.parent / ("planned" + out.suffix)
    argv = ["plan", *[plan_out if a is args[args.index("-o") + 1] else a for a in args[1:]], "--json"]
    plan = json.loads(run_adcat(*argv).stdout)
    assert plan["shape"] == list(expected.shape), plan["shape"]
    elements = {e["path"]: e for e in plan["elements"]}
    if expected.X is not None:
        assert elements["/X"]["shape"] == list(expected.X.shape)
        assert elements["/X"]["dtype"] == str(expected.X.dtype), (elements["/X"], expected.X.dtype)
    layers = sorted(k for k in expected.layers if k is not None)
    assert sorted(p[len("/layers/") :] for p in elements if p.startswith("/layers/")) == layers
    assert not plan_out.exists(), "plan wrote an output"


def _dtype(x):
    return None if x is None else getattr(x, "dtype", type(x))


def assert_same_dtypes(expected: ad.AnnData, got: ad.AnnData) -> None:
    """Matrix dtypes must be what anndata.concat gives (assert_equal ignores them)."""
    assert _dtype(expected.X) == _dtype(got.X), ("X", _dtype(expected.X), _dtype(got.X))
    for attr in ["layers", "obsm", "varm", "obsp", "varp"]:
        e, g = getattr(expected, attr), getattr(got, attr)
        assert sorted(map(str, e.keys())) == sorted(map(str, g.keys())), (attr, list(e.keys()), list(g.keys()))
        for k in e:
            if isinstance(e[k], pd.DataFrame):
                continue
            assert _dtype(e[k]) == _dtype(g[k]), (attr, k, _dtype(e[k]), _dtype(g[k]))
    for attr in ["obs", "var"]:
        e, g = getattr(expected, attr), getattr(got, attr)
        for c in e.columns:
            assert str(e[c].dtype) == str(g[c].dtype) or isinstance(e[c].dtype, pd.CategoricalDtype), (attr, c, e[c].dtype, g[c].dtype)


# --- the matrix of anndata's test_concatenate_disk.py -------------------------------------

ARRAY_TYPES = ["dense", "csr", "csc"]


def _matrix_adatas(axis: int, array_type: str, seed: int):
    rng = np.random.default_rng(seed)
    conv = {"dense": np.asarray, "csr": sparse.csr_matrix, "csc": sparse.csc_matrix}[array_type]
    adatas = []
    for i in range(3):
        n = int(rng.integers(5, 10))
        shape = (n, 50) if axis == 0 else (50, n)
        a = gen_adata(
            shape,
            X_type=conv,
            obs_dtypes=(pd.CategoricalDtype(ordered=False),),
            var_dtypes=(pd.CategoricalDtype(ordered=False),),
            obsm_types=(sparse.csr_matrix, np.ndarray, pd.DataFrame),
            varm_types=(sparse.csr_matrix, np.ndarray, pd.DataFrame),
            layers_types=(sparse.csr_matrix, np.ndarray),
            random_state=rng,
        )
        # Make names unique across inputs on the concatenation axis and partly different
        # on the other, so every case reindexes.
        if axis == 0:
            a.obs_names = [f"{i}-{n}" for n in a.obs_names]
            off = a.var_names.to_numpy().copy()
            off[1::2] = [f"{i}-{x}" for x in off[1::2]]
            a.var_names = off
        else:
            a.var_names = [f"{i}-{n}" for n in a.var_names]
            off = a.obs_names.to_numpy().copy()
            off[1::2] = [f"{i}-{x}" for x in off[1::2]]
            a.obs_names = off
        a.uns = {}
        adatas.append(a)
    return adatas


#: Merge strategies act on the off-axis annotations, not on the matrices: every strategy
#: runs with CSR matrices, and two (one keeping, one dropping) with dense and CSC ones.
MATRIX_CASES = [(m, "csr") for m in [None, "same", "unique", "first", "only"]] + [
    (m, t) for t in ["dense", "csc"] for m in [None, "unique"]
]


#: The zarr half streams in tiny blocks and tasks (slow in a debug build): merge
#: strategies are exercised by the h5ad half; zarr keeps one keeping and one dropping
#: strategy on CSR, and each other matrix type.
ZARR_CASES = [(None, "csr"), ("unique", "csr"), (None, "dense"), ("unique", "csc")]


@pytest.mark.parametrize(("fmt", "merge", "array_type"), [("h5ad", m, t) for m, t in MATRIX_CASES] + [("zarr", m, t) for m, t in ZARR_CASES])
@pytest.mark.parametrize("join", ["inner", "outer"])
@pytest.mark.parametrize("axis", [0, 1])
def test_matrix(run_adcat, tmp_path, axis, join, merge, array_type, fmt):
    seed = hash((axis, join, merge, array_type, fmt)) % 2**32
    adatas = _matrix_adatas(axis, array_type, seed)
    # anndata's suite runs each case with max_loaded_elems 5 and 1e6; the zarr half here
    # runs with the smallest budget (multi-block streaming itself is exercised by
    # test_many_blocks_tiny_budget, whose inputs are large enough to need many blocks).
    # The zarr half also cuts every element into tasks of a few rows, so count tasks,
    # sparse value shares and dense row ranges meet at many unit boundaries.
    extra = ["--max-memory", "1MiB", "--task-size", "1KiB"] if fmt == "zarr" else []
    check_concat(run_adcat, tmp_path, adatas, fmt, out_fmt=fmt, extra=extra, axis=axis, join=join, merge=merge)


# --- named cases ----------------------------------------------------------------------------


def simple(n_obs, var_names, *, prefix="c", X="csr", dtype=np.float32, seed=0, obs=None):
    rng = np.random.default_rng(seed)
    m = len(var_names)
    dense = (rng.random((n_obs, m)) < 0.3) * rng.integers(1, 9, (n_obs, m))
    dense = dense.astype(dtype)
    Xv = {"csr": sparse.csr_matrix, "csc": sparse.csc_matrix, "dense": np.asarray, None: lambda x: None}[X](dense)
    a = ad.AnnData(
        X=Xv,
        obs=obs if obs is not None else pd.DataFrame(index=[f"{prefix}{i}" for i in range(n_obs)]),
        var=pd.DataFrame(index=list(var_names)),
    )
    return a


GENES = [f"g{i}" for i in range(12)]


def test_mixed_formats(run_adcat, tmp_path):
    adatas = [simple(6, GENES, prefix=f"a{i}", seed=i) for i in range(3)]
    for a in adatas:
        a.obs["ct"] = pd.Categorical(["x", "y"] * 3)
    check_concat(run_adcat, tmp_path, adatas, ["h5ad", "zarr2", "zarr"], out_fmt="zarr", join="outer", label="batch")


@pytest.mark.parametrize("out_fmt", ["h5ad", "zarr", "zarr2"])
def test_outputs_in_every_format(run_adcat, tmp_path, out_fmt):
    adatas = [simple(5, GENES[:10], prefix="a"), simple(4, GENES[2:], prefix="b", X="dense")]
    check_concat(run_adcat, tmp_path, adatas, "h5ad", out_fmt=out_fmt, join="outer")


@pytest.mark.parametrize("uns_merge", [None, "same", "unique", "first", "only"])
def test_uns_merge(run_adcat, tmp_path, uns_merge):
    a, b, c = (simple(3, GENES, prefix=p) for p in "abc")
    a.uns = {"a": 1, "b": 2, "c": {"c.a": 3, "c.b": 4}, "arr": np.arange(3), "s": "x"}
    b.uns = {"a": 1, "b": 3, "c": {"c.b": 4}, "arr": np.arange(3), "s": "y"}
    c.uns = {"a": 1, "b": 4, "c": {"c.a": 3, "c.b": 4, "c.c": 5}, "arr": np.arange(3), "s": "x"}
    check_concat(run_adcat, tmp_path, [a, b, c], "h5ad", uns_merge=uns_merge)


def test_raw_all_inputs(run_adcat, tmp_path):
    adatas = []
    for i in range(2):
        a = simple(5, GENES, prefix=f"r{i}", seed=i)
        a.var["score"] = np.arange(len(GENES), dtype=float)
        a.raw = a
        a = a[:, 2 + i :].copy()
        adatas.append(a)
    check_concat(run_adcat, tmp_path, adatas, ["h5ad", "zarr"], join="outer")


def test_raw_some_inputs_dropped_with_warning(run_adcat, tmp_path):
    a, b = simple(4, GENES, prefix="a"), simple(3, GENES, prefix="b")
    a.raw = a
    _, got, proc = check_concat(run_adcat, tmp_path, [a, b], "h5ad")
    assert got.raw is None
    assert "Only some AnnData objects have `.raw`" in proc.stderr


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_pairwise(run_adcat, tmp_path, join):
    a, b = simple(4, GENES, prefix="a"), simple(3, GENES, prefix="b")
    a.obsp["conn"] = sparse.random(4, 4, density=0.5, format="csr", dtype=np.float32, random_state=1)
    b.obsp["conn"] = np.ones((3, 3), dtype=np.float64)
    a.obsp["only_a"] = sparse.eye(4, format="csr")
    check_concat(run_adcat, tmp_path, [a, b], "h5ad", join=join, pairwise=True)


def test_label_keys_index_unique(run_adcat, tmp_path):
    a, b = simple(4, GENES, prefix="c"), simple(3, GENES, prefix="c")
    check_concat(run_adcat, tmp_path, [a, b], "zarr", label="sample", keys=["s1", "s2"], index_unique="_")


@pytest.mark.parametrize("X", ["csr", "dense"])
@pytest.mark.parametrize("dtypes", [(np.int32, np.float32), (np.float32, np.float64), (np.int64, np.int8), (np.uint8, np.int8)])
def test_dtype_promotion(run_adcat, tmp_path, X, dtypes):
    adatas = [simple(4, GENES, prefix=f"p{i}", X=X, dtype=d, seed=i) for i, d in enumerate(dtypes)]
    check_concat(run_adcat, tmp_path, adatas, "h5ad")


@pytest.mark.parametrize("join", ["inner", "outer"])
@pytest.mark.parametrize("X", ["csr", "dense"])
def test_missing_x(run_adcat, tmp_path, join, X):
    a = simple(4, GENES, prefix="a", X=X)
    b = simple(3, GENES, prefix="b", X=None)
    check_concat(run_adcat, tmp_path, [a, b], "h5ad", join=join)


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_layers_union_and_intersection(run_adcat, tmp_path, join):
    a, b = simple(4, GENES, prefix="a"), simple(3, GENES[3:], prefix="b", X="dense")
    a.layers["counts"] = a.X.copy()
    a.layers["only_a"] = a.X.toarray()
    b.layers["counts"] = sparse.csr_matrix(b.X)
    check_concat(run_adcat, tmp_path, [a, b], "h5ad", join=join)


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_obsm_widths_and_frames(run_adcat, tmp_path, join):
    a, b = simple(4, GENES, prefix="a"), simple(3, GENES, prefix="b")
    a.obsm["pca"] = np.arange(4 * 5, dtype=np.float32).reshape(4, 5)
    b.obsm["pca"] = np.ones((3, 3), dtype=np.float32)
    a.obsm["sp"] = sparse.random(4, 6, density=0.5, format="csr", random_state=0)
    b.obsm["sp"] = sparse.random(3, 2, density=0.5, format="csr", random_state=1)
    a.obsm["df"] = pd.DataFrame({"x": np.arange(4.0), "y": list("abcd")}, index=a.obs_names)
    b.obsm["df"] = pd.DataFrame({"x": np.arange(3.0), "z": [1, 2, 3]}, index=b.obs_names)
    a.obsm["only_a"] = np.ones((4, 2))
    check_concat(run_adcat, tmp_path, [a, b], "h5ad", join=join)


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_categorical_unions(run_adcat, tmp_path, join):
    a, b, c = simple(3, GENES, prefix="a"), simple(3, GENES, prefix="b"), simple(2, GENES, prefix="c")
    a.obs["ct"] = pd.Categorical(["T", "B", "NK"])
    b.obs["ct"] = pd.Categorical(["c10", "c2", "B"])
    c.obs["ct"] = pd.Categorical(["T", "T"])
    a.obs["ord"] = pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"], ordered=True)
    b.obs["ord"] = pd.Categorical(["lo", "lo", "hi"], categories=["lo", "hi"], ordered=True)
    c.obs["ord"] = pd.Categorical(["hi", "lo"], categories=["lo", "hi"], ordered=True)
    a.obs["only_a"] = pd.Categorical(["u", "v", "u"])
    check_concat(run_adcat, tmp_path, [a, b, c], ["h5ad", "zarr", "h5ad"], join=join)


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_nullable_and_plain_columns(run_adcat, tmp_path, join):
    a, b = simple(3, GENES, prefix="a"), simple(2, GENES, prefix="b")
    a.obs["i"] = pd.array([1, None, 3], dtype="Int64")
    b.obs["i"] = pd.array([4, 5], dtype="Int64")
    a.obs["bl"] = pd.array([True, None, False], dtype="boolean")
    b.obs["bl"] = pd.array([False, True], dtype="boolean")
    a.obs["s"] = pd.array(["x", None, "z"], dtype="string")
    b.obs["s"] = pd.array(["u", "v"], dtype="string")
    a.obs["f"] = np.array([1.5, np.nan, 2.0], dtype=np.float32)
    b.obs["f"] = np.array([0.5, 1.0], dtype=np.float64)
    a.obs["n"] = np.array([1, 2, 3], dtype=np.int32)
    b.obs["n"] = np.array([7, 8], dtype=np.int64)
    a.obs["flag"] = np.array([True, False, True])
    b.obs["flag"] = np.array([False, False])
    a.obs["a_only_int"] = np.array([1, 2, 3])
    a.obs["a_only_bool"] = np.array([True, False, True])
    a.obs["a_only_str"] = ["p", "q", "r"]
    check_concat(run_adcat, tmp_path, [a, b], "h5ad", join=join)


@pytest.mark.parametrize("merge", ["same", "unique", "first", "only"])
def test_var_merge(run_adcat, tmp_path, merge):
    a, b = simple(3, GENES, prefix="a"), simple(2, GENES[2:], prefix="b")
    a.var["sym"] = [f"S{g}" for g in a.var_names]
    b.var["sym"] = [f"S{g}" for g in b.var_names]
    a.var["score"] = np.arange(len(a.var_names), dtype=float)
    b.var["score"] = np.arange(len(b.var_names), dtype=float)
    a.var["hv"] = np.ones(len(a.var_names), dtype=bool)
    b.var["only_b"] = pd.Categorical(["k"] * len(b.var_names))
    a.varm["loadings"] = np.ones((len(a.var_names), 3))
    b.varm["loadings"] = np.ones((len(b.var_names), 3))
    check_concat(run_adcat, tmp_path, [a, b], "h5ad", join="outer", merge=merge)


def test_zero_cell_input(run_adcat, tmp_path):
    a, b, c = simple(4, GENES, prefix="a"), simple(0, GENES, prefix="z"), simple(3, GENES, prefix="b", X="dense")
    check_concat(run_adcat, tmp_path, [a, b, c], ["h5ad", "zarr", "h5ad"], join="outer")


@pytest.mark.parametrize("fmts", [["h5ad", "h5ad"], ["zarr", "h5ad"]])
@pytest.mark.parametrize("X", ["csr", "dense"])
def test_no_cells_at_all(run_adcat, tmp_path, fmts, X):
    """Every input empty: pandas keeps the empty index an object index (a plain string
    array on disk), not the `str` index of concatenated names."""
    a, b = simple(0, GENES, prefix="a", X=X), simple(0, GENES[1:], prefix="b", X=X)
    check_concat(run_adcat, tmp_path, [a, b], fmts, join="outer", label="batch")


def test_unicode_names(run_adcat, tmp_path):
    genes = ["β-actin", "CD3ε", "日本", "gene ✓", "naïve"]
    a = simple(3, genes, prefix="細胞")
    b = simple(2, genes[1:], prefix="клетка")
    a.obs["ünï"] = pd.Categorical(["α", "β", "α"])
    b.obs["ünï"] = pd.Categorical(["γ", "α"])
    check_concat(run_adcat, tmp_path, [a, b], ["h5ad", "zarr"], join="outer", label="bätch")


@pytest.mark.parametrize("X", ["csr", "dense"])
def test_fill_value(run_adcat, tmp_path, X):
    a, b = simple(3, GENES[:8], prefix="a", X=X), simple(2, GENES[4:], prefix="b", X=X, seed=3)
    check_concat(run_adcat, tmp_path, [a, b], "h5ad", join="outer", fill_value=-1)


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_many_blocks_tiny_budget(run_adcat, tmp_path, fmt):
    genes = [f"g{i}" for i in range(400)]
    adatas = [simple(3000, genes[i * 20 :], prefix=f"b{i}", seed=i, X="csr" if i else "dense") for i in range(3)]
    for a in adatas:
        a.obs["q"] = np.arange(a.n_obs, dtype=np.float32)
        a.obsm["pca"] = np.ones((a.n_obs, 30), dtype=np.float32)
    extra = ["--max-memory", "1MiB", "--task-size", "64KiB"]
    check_concat(run_adcat, tmp_path, adatas, fmt, out_fmt=fmt, join="outer", extra=extra)


@pytest.mark.parametrize(
    ("out_fmt", "compression", "threads", "h5py_filter"),
    [
        ("h5ad", "gzip:4", "1", ("gzip", 4)),
        ("h5ad", "gzip:6", "2", ("gzip", 6)),
        ("h5ad", "lzf", "2", ("lzf", None)),
        ("zarr", "zstd:3", "2", None),
        ("zarr2", "gzip:5", "1", None),
    ],
)
def test_compressed_outputs(run_adcat, tmp_path, out_fmt, compression, threads, h5py_filter):
    # Dense X (2-d chunks with padded edge chunks) and a CSR layer (1-d chunks), streamed
    # in many blocks so whole-chunk writes (compressed on all cores for HDF5 gzip) and
    # the partial last chunks both occur.
    genes = [f"g{i}" for i in range(300)]
    adatas = []
    for i in range(3):
        a = simple(2500 + 7 * i, genes[i * 10 :], prefix=f"b{i}", seed=i, X="dense")
        a.layers["counts"] = sparse.csr_matrix(a.X.astype(np.int32))
        a.obsm["pca"] = np.arange(a.n_obs * 3, dtype=np.float64).reshape(a.n_obs, 3)
        adatas.append(a)
    extra = ["--compression", compression, "--threads", threads, "--max-memory", "2MiB", "--task-size", "100KiB"]
    check_concat(run_adcat, tmp_path, adatas, "h5ad", out_fmt=out_fmt, join="outer", extra=extra)
    if h5py_filter is not None:
        import h5py

        with h5py.File(tmp_path / "out.h5ad", "r") as f:
            for name in ("X", "layers/counts/data", "layers/counts/indices", "obsm/pca"):
                ds = f[name]
                assert (ds.compression, ds.compression_opts) == h5py_filter, name
                assert ds.chunks is not None, name


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
@pytest.mark.parametrize("join", ["inner", "outer"])
def test_var_axis_csr_transposed_in_many_blocks(run_adcat, tmp_path, fmt, join):
    # CSR inputs concatenated along var are read column-wise: adcat transposes them once
    # through scratch partitions; a 1 MiB budget makes hundreds of partitions.
    cells = [f"c{i}" for i in range(2000)]
    adatas = []
    for i in range(2):
        a = simple(len(cells) - 100 * i, [f"g{i}_{j}" for j in range(1000)], prefix="c", seed=i, X="csr")
        a.obs_names = cells[: a.n_obs]
        a.layers["counts"] = a.X.astype(np.int64)
        adatas.append(a)
    check_concat(run_adcat, tmp_path, adatas, fmt, out_fmt=fmt, axis=1, join=join, extra=["--max-memory", "1MiB"])


def test_single_input_applies_options(run_adcat, tmp_path):
    a = simple(4, GENES, prefix="a")
    a.uns["k"] = 1
    check_concat(run_adcat, tmp_path, [a], "h5ad", label="batch", index_unique="-", keys=["only"])


def test_zero_row_input_lacking_columns(run_adcat, tmp_path):
    # pandas inserts no NaN for a zero-row input (int64 stays int64) but anndata's
    # has_missing still makes bool nullable; the empty input's categories still count.
    a, z = simple(3, GENES, prefix="a"), simple(0, GENES, prefix="z")
    a.obs["n"] = np.array([1, 2, 3], dtype=np.int64)
    a.obs["flag"] = np.array([True, False, True])
    a.obs["ct"] = pd.Categorical(["x", "y", "x"])
    z.obs["ct"] = pd.Categorical([], categories=["w"])
    check_concat(run_adcat, tmp_path, [a, z], "h5ad", join="outer")


def test_mixed_string_flavours_and_bool_int(run_adcat, tmp_path):
    a, b = simple(2, GENES, prefix="a"), simple(2, GENES, prefix="b")
    a.obs["s"] = pd.array(["x", None], dtype="string")  # na_value=<NA>
    b.obs["s"] = ["u", "v"]  # str (na_value=NaN)
    a.obs["bi"] = np.array([True, False])
    b.obs["bi"] = np.array([3, 4], dtype=np.int64)
    check_concat(run_adcat, tmp_path, [a, b], "h5ad", join="outer")


@pytest.mark.parametrize("fill", ["0", "-1"])
def test_dense_fill_promotes(run_adcat, tmp_path, fill):
    a = simple(3, GENES[:6], prefix="a", X="dense", dtype=np.float32)
    b = simple(2, GENES[3:], prefix="b", X="dense", dtype=np.int32)
    check_concat(run_adcat, tmp_path, [a, b], "h5ad", join="outer", fill_value=int(fill))


@pytest.mark.parametrize("join", ["inner", "outer"])
@pytest.mark.parametrize("fmts", [("h5ad", "h5ad"), ("zarr", "h5ad")])
def test_awkward_in_obsm(run_adcat, tmp_path, join, fmts):
    import awkward as ak

    a, b = simple(3, GENES, prefix="a"), simple(2, GENES, prefix="b")
    a.obsm["ragged"] = ak.Array([[1.0, 2.0], [], [3.0]])
    b.obsm["ragged"] = ak.Array([[5.0], [6.0, 7.0]])
    a.obsm["strings"] = ak.Array([["x", "yz"], [], ["é"]])
    b.obsm["strings"] = ak.Array([[""], ["pq", "r"]])
    a.obsm["records"] = ak.Array([{"x": 1, "s": "ab", "l": [1, 2]}, {"x": 2, "s": "", "l": []}, {"x": 3, "s": "c", "l": [3]}])
    b.obsm["records"] = ak.Array([{"x": 4, "s": "d", "l": [4, 5, 6]}, {"x": 5, "s": "ef", "l": []}])
    a.obsm["regular"] = ak.to_regular(ak.Array([[1, 2], [3, 4], [5, 6]]), axis=1)
    b.obsm["regular"] = ak.to_regular(ak.Array([[7, 8], [9, 10]]), axis=1)
    if join == "inner":
        # Records with different fields keep the common ones.
        a.obsm["fields"] = ak.Array([{"x": 1, "only_a": 1.5}] * 3)
        b.obsm["fields"] = ak.Array([{"x": 2, "only_b": "q"}] * 2)
    check_concat(run_adcat, tmp_path, [a, b], list(fmts), join=join)


def test_index_names_and_extra_keys(run_adcat, tmp_path):
    a, b = simple(3, GENES, prefix="a"), simple(2, GENES[1:], prefix="b")
    for x in (a, b):
        x.obs.index.name = "cell_id"
        x.var.index.name = "gene_id"
    # More keys than inputs: the extra ones are unused label categories (pandas).
    check_concat(run_adcat, tmp_path, [a, b], "h5ad", join="outer", label="batch", keys=["p", "q", "r"])


def test_duplicate_keys_refused(run_adcat, tmp_path):
    a, b = simple(3, GENES, prefix="a"), simple(2, GENES, prefix="b")
    paths = [write(x, tmp_path / f"{i}.h5ad", "h5ad") for i, x in enumerate([a, b])]
    proc = run_adcat("concat", *paths, "-o", tmp_path / "out.h5ad", "--keys", "k,k", "--label", "b", expect_success=False)
    assert proc.returncode != 0 and "unique" in proc.stderr and "panicked" not in proc.stderr
    assert not (tmp_path / "out.h5ad").exists()


@pytest.mark.parametrize("X", ["csr", "dense"])
@pytest.mark.parametrize("dtype", [np.uint8, np.bool_])
def test_negative_fill_on_unsigned(run_adcat, tmp_path, X, dtype):
    a = simple(3, GENES[:8], prefix="a", X=X, dtype=dtype)
    b = simple(2, GENES[4:], prefix="b", X=X, dtype=dtype, seed=2)
    check_concat(run_adcat, tmp_path, [a, b], "h5ad", join="outer", fill_value=-1)


def test_merge_same_key_order(run_adcat, tmp_path):
    a, b = simple(3, GENES, prefix="a"), simple(2, GENES, prefix="b")
    a.var["x"] = 1.0
    a.var["y"] = 2.0
    b.var["y"] = 2.0
    b.var["x"] = 1.0
    a.varm["p"] = np.ones((len(GENES), 2))
    a.varm["q"] = np.zeros((len(GENES), 2))
    b.varm["q"] = np.zeros((len(GENES), 2))
    b.varm["p"] = np.ones((len(GENES), 2))
    check_concat(run_adcat, tmp_path, [a, b], "h5ad", merge="same")


@pytest.mark.parametrize("out_fmt", ["h5ad", "zarr"])
def test_ununifiable_categoricals_keep_missing_values(run_adcat, tmp_path, out_fmt):
    """Ordered categoricals with different categories become object columns in
    anndata.concat; their missing values stay missing in adcat's output (anndata itself
    writes them as "nan" in zarr and cannot write them to h5ad)."""
    from test_archives import keep_missing_strings

    a, b = simple(3, GENES, prefix="a"), simple(2, GENES, prefix="b")
    a.obs["stage"] = pd.Categorical(["lo", None, "hi"], categories=["lo", "hi"], ordered=True)
    b.obs["stage"] = pd.Categorical(["mid", "hi"], categories=["mid", "hi"], ordered=True)
    paths = [write(x, tmp_path / f"{i}.h5ad", "h5ad") for i, x in enumerate([a, b])]
    out = tmp_path / f"out{FORMATS[out_fmt]}"
    run_adcat("concat", *paths, "-o", out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat([read(p) for p in paths])
    assert expected.obs["stage"].dtype == object and pd.isna(expected.obs["stage"].iloc[1])
    keep_missing_strings(expected)
    got = read(out)
    assert_equal(expected.obs, got.obs, exact=False)
    assert pd.isna(got.obs["stage"].iloc[1]) and list(got.obs["stage"].iloc[[0, 2, 3, 4]]) == ["lo", "hi", "mid", "hi"]
