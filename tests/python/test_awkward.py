"""Awkward arrays against anndata.concat: type unification on outer joins (promotion,
options for inputs without the key, unions for what cannot merge), inner joins on
records, layers, and the merge strategies of off-axis mappings. Besides the values
(`assert_equal`), the awkward type of every result must be the one anndata produces."""

from __future__ import annotations

import warnings

import anndata as ad
import awkward as ak
import numpy as np
import pytest

from test_concat import GENES, check_concat, read, simple, write


def awkward_types(a: ad.AnnData) -> dict[str, str]:
    out = {}
    for m in ("obsm", "varm", "layers"):
        for k, v in getattr(a, m).items():
            if isinstance(v, ak.Array):
                out[f"{m}/{k}"] = str(v.type)
    return out


def check(run_adcat, tmp_path, adatas, fmts="h5ad", **kw):
    expected, got, _ = check_concat(run_adcat, tmp_path, adatas, fmts, **kw)
    assert awkward_types(got) == awkward_types(expected)
    return got


def pair(n_a=3, n_b=2, genes=GENES):
    return simple(n_a, genes, prefix="a"), simple(n_b, genes, prefix="b", seed=1)


@pytest.mark.parametrize("fmts", [("h5ad", "h5ad", "h5ad"), ("zarr", "zarr2", "h5ad")])
def test_outer_join_fills_missing_keys_with_none(run_adcat, tmp_path, fmts):
    a, b = pair()
    c = simple(2, GENES, prefix="c", seed=2)
    a.obsm["ragged"] = ak.Array([[1, 2], [], [3]])
    c.obsm["ragged"] = ak.Array([[4], [5, 6]])
    b.obsm["late"] = ak.Array([{"x": 1.5, "s": "q"}, {"x": 2.5, "s": ""}])
    got = check(run_adcat, tmp_path, [a, b, c], list(fmts), join="outer")
    assert ak.to_list(got.obsm["ragged"])[3:5] == [None, None]


def test_outer_join_promotes_numbers(run_adcat, tmp_path):
    a, b = pair()
    a.obsm["ragged"] = ak.Array([[1, 2], [], [3]])
    b.obsm["ragged"] = ak.Array([[0.5], [6.25, 7.0]])
    a.obsm["flags"] = ak.Array([True, False, True])
    b.obsm["flags"] = ak.Array(np.array([3, 4], dtype=np.uint8))
    a.obsm["regular"] = ak.to_regular(ak.Array([[1, 2], [3, 4], [5, 6]]), axis=1)
    b.obsm["regular"] = ak.to_regular(ak.Array([[7, 8, 9], [9, 10, 11]]), axis=1)
    check(run_adcat, tmp_path, [a, b], join="outer")


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_unmergeable_types_become_unions(run_adcat, tmp_path, join):
    a, b = pair()
    a.obsm["records"] = ak.Array([{"a": 1, "b": 0.5}] * 3)
    b.obsm["records"] = ak.Array([{"a": 2, "c": "x"}, {"a": 3, "c": "yz"}])
    if join == "outer":
        # anndata's inner join fails on these ("axis=1 is too deep"); adcat's does not.
        a.obsm["num_or_list"] = ak.Array([1, 2, 3])
        b.obsm["num_or_list"] = ak.Array([[1], [2, 3]])
    check(run_adcat, tmp_path, [a, b], join=join)


def test_missing_and_unmergeable_make_a_union_of_options(run_adcat, tmp_path):
    a, b = pair()
    c = simple(2, GENES, prefix="c", seed=2)
    b.obsm["mixed"] = ak.Array([1, 2])
    c.obsm["mixed"] = ak.Array(["x", "yz"])
    got = check(run_adcat, tmp_path, [a, b, c], join="outer")
    assert ak.to_list(got.obsm["mixed"]) == [None, None, None, 1, 2, "x", "yz"]


def test_option_inputs(run_adcat, tmp_path):
    a, b = pair()
    a.obsm["nested"] = ak.Array([[1, None], [], [2]])
    b.obsm["nested"] = ak.Array([[3], [4, 5]])
    a.obsm["top"] = ak.Array([1.5, None, 2.5])
    b.obsm["top"] = ak.Array([[1], None])
    check(run_adcat, tmp_path, [a, b], join="outer")


def test_union_inputs_concatenate_again(run_adcat, tmp_path):
    """A union written by adcat (or anndata) concatenates with further inputs."""
    a, b = pair()
    a.obsm["u"] = ak.Array([1, 2, 3])
    b.obsm["u"] = ak.Array(["x", "yz"])
    first = tmp_path / "first"
    first.mkdir()
    check(run_adcat, first, [a, b], join="outer")
    c = simple(2, GENES, prefix="c", seed=2)
    c.obsm["u"] = ak.Array([0.5, 1.5])
    d = simple(1, GENES, prefix="d", seed=3)
    d.obsm["u"] = ak.Array([["p"]])
    check(run_adcat, tmp_path, [read(first / "out.h5ad"), c, d], join="outer")


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_inner_join_keeps_common_record_fields(run_adcat, tmp_path, join):
    a, b = pair()
    a.obsm["r"] = ak.Array([{"x": 1, "y": 0.5, "z": "p"}] * 3)
    b.obsm["r"] = ak.Array([{"z": "q", "x": 2.5}] * 2)
    if join == "outer":
        b.obsm["r"] = ak.Array([{"z": "q", "y": 2.5, "x": 1}] * 2)  # same fields, other order
    check(run_adcat, tmp_path, [a, b], join=join)


def test_layers(run_adcat, tmp_path):
    genes = GENES[:3]
    a, b = pair(genes=genes)
    c = simple(2, genes, prefix="c", seed=2)
    a.layers["ragged"] = ak.to_regular(ak.Array([[[i] * j for j in range(3)] for i in range(3)]), axis=1)
    b.layers["ragged"] = ak.to_regular(ak.Array([[[i, i]] * 3 for i in range(2)]), axis=1)
    # c has no such layer: anndata fills NaN rows, which cannot merge with lists.
    got = check_layer_with_nan(run_adcat, tmp_path, [a, b, c], "ragged")
    assert nan_free(ak.to_list(got))[-1] == ["NaN"] * 3


def check_layer_with_nan(run_adcat, tmp_path, adatas, key):
    """anndata's assert_equal cannot compare NaN inside awkward arrays (`to_list`
    equality), so the layer's type and NaN-normalised values are compared here."""
    paths = [write(x, tmp_path / f"{i}.h5ad", "h5ad") for i, x in enumerate(adatas)]
    run_adcat("concat", *paths, "-o", tmp_path / "out.zarr", "--join", "outer")
    got = read(tmp_path / "out.zarr").layers[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat([read(p) for p in paths], join="outer").layers[key]
    assert str(got.type) == str(expected.type)
    assert nan_free(ak.to_list(got)) == nan_free(ak.to_list(expected))
    return got


def nan_free(x):
    if isinstance(x, list):
        return [nan_free(v) for v in x]
    return "NaN" if isinstance(x, float) and np.isnan(x) else x


def test_layers_of_numbers_merge_with_the_nan_fill(run_adcat, tmp_path):
    genes = GENES[:3]
    a, b = pair(genes=genes)
    a.layers["counts"] = ak.to_regular(ak.Array([[1, 2, 3]] * 3), axis=1)
    got = check_layer_with_nan(run_adcat, tmp_path, [a, b], "counts")
    assert str(got.type) == "5 * 3 * float64"


def test_layers_with_different_vars_are_refused(run_adcat, tmp_path):
    a, b = simple(3, GENES[:3], prefix="a"), simple(2, GENES[1:4], prefix="b")
    a.layers["k"] = ak.to_regular(ak.Array([[1, 2, 3]] * 3), axis=1)
    b.layers["k"] = ak.to_regular(ak.Array([[1, 2, 3]] * 2), axis=1)
    paths = [write(x, tmp_path / f"{i}.h5ad", "h5ad") for i, x in enumerate([a, b])]
    proc = run_adcat("concat", *paths, "-o", tmp_path / "out.h5ad", expect_success=False)
    assert proc.returncode != 0 and "layers/k" in proc.stderr and "same var names" in proc.stderr
    assert not (tmp_path / "out.h5ad").exists()


@pytest.mark.parametrize("merge", ["same", "unique", "first", "only"])
def test_off_axis_merge_strategies(run_adcat, tmp_path, merge):
    a, b = pair()
    c = simple(2, GENES, prefix="c", seed=2)
    ragged = ak.Array([[float(i)] * (i % 3) for i in range(len(GENES))])
    a.varm["same"] = b.varm["same"] = c.varm["same"] = ragged
    a.varm["differs"] = ragged
    b.varm["differs"] = c.varm["differs"] = ak.Array([[1.0]] * len(GENES))
    b.varm["in_b"] = ak.Array([{"k": i} for i in range(len(GENES))])
    check(run_adcat, tmp_path, [a, b, c], merge=merge)


def test_obsm_under_axis_var(run_adcat, tmp_path):
    cells = [f"c{i}" for i in range(4)]
    a = simple(4, GENES[:5], prefix="c")
    b = simple(4, GENES[5:], prefix="c", seed=1)
    for x in (a, b):
        x.obs_names = cells
        x.obsm["traj"] = ak.Array([[1, 2], [], [3], [4, 5, 6]])
    a.obsm["own"] = ak.Array([1, 2, 3, 4])
    check(run_adcat, tmp_path, [a, b], axis="var", merge="same")
    check_unique = tmp_path / "unique"
    check_unique.mkdir()
    check(run_adcat, check_unique, [a, b], axis="var", merge="unique")


def test_off_axis_reindex_fills_none(run_adcat, tmp_path):
    """varm of inputs with different vars under an outer join and merge="first": adcat
    puts None where an input has no value; anndata 0.13.4 repeats the input's last
    element there (`el[idx]` with idx -1), which docs/differences.md records."""
    a, b = simple(3, GENES[:3], prefix="a"), simple(2, GENES[1:4], prefix="b")
    a.varm["k"] = ak.Array([[1], [2, 2], []])
    b.varm["k"] = ak.Array([[2, 2], [], [3]])
    paths = [write(x, tmp_path / f"{i}.h5ad", "h5ad") for i, x in enumerate([a, b])]
    run_adcat("concat", *paths, "-o", tmp_path / "out.h5ad", "--join", "outer", "--merge", "first")
    got = read(tmp_path / "out.h5ad")
    assert list(got.var_names) == GENES[:4]
    assert ak.to_list(got.varm["k"]) == [[1], [2, 2], [], None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        anndata_says = ad.concat([read(p) for p in paths], join="outer", merge="first")
    assert ak.to_list(anndata_says.varm["k"])[3] == []  # the last element, not None
    assert str(got.varm["k"].type) == str(anndata_says.varm["k"].type)
