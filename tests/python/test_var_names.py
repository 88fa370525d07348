"""`--var-names FILE` (Python: `var_names=[...]`): the output's var is exactly the listed
names in that order; genes an input lacks are filled, its others dropped.

Oracle: `anndata.concat` with its off-axis join replaced by the list — the module global
`merge_indices` patched for the main call (raw's recursive call keeps the real join, as
adcat's raw does). Everything downstream (reindexing X, layers, varm, varp, var columns
under each merge strategy, fills and dtype promotion under each join) is anndata's own.
Also checked: the per-input match counts in `adcat plan --json` and after the run.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from unittest import mock

import adcat
import anndata as ad
import anndata._core.merge as anndata_merge
import numpy as np
import pandas as pd
import pytest
from anndata.tests.helpers import assert_equal
from test_concat import FORMATS, _matrix_adatas, assert_same_dtypes, cli_args, read, simple, write


def concat_fixed(adatas, names, **kw) -> ad.AnnData:
    """`anndata.concat` whose main var index is `names` (named as the join would name it)."""
    real, calls = anndata_merge.merge_indices, []

    def fixed(inds, join):
        calls.append(join)
        return pd.Index(names, name=real(inds, join).name) if len(calls) == 1 else real(inds, join)

    with warnings.catch_warnings(), mock.patch.object(anndata_merge, "merge_indices", fixed):
        warnings.simplefilter("ignore")
        return ad.concat(adatas, **kw)


def expected_match(adatas, names):
    want = set(names)
    out = []
    for a in adatas:
        matched = len(want & set(a.var_names))
        out.append({"matched": matched, "filled": len(names) - matched, "dropped": a.n_vars - matched})
    return out


def check_fixed(run_adcat, tmp_path: Path, adatas, names, fmt="h5ad", out_fmt=None, **kw):
    out_fmt = out_fmt or fmt
    paths = [write(a, tmp_path / f"in{i}{FORMATS[fmt]}", fmt) for i, a in enumerate(adatas)]
    listing = tmp_path / "genes.txt"
    listing.write_text("".join(f"{n}\n" for n in names))
    out = tmp_path / f"out{FORMATS[out_fmt]}"
    args = [*paths, "--var-names", listing, *cli_args(kw)] + (["--zarr-format", "2"] if out_fmt == "zarr2" else [])
    proc = run_adcat("concat", *args, "-o", out)
    expected = concat_fixed([read(p) for p in paths], names, **kw)
    got = read(out)
    assert list(got.var_names) == list(names)
    roundtrip = read(write(expected, tmp_path / f"expected{FORMATS[out_fmt]}", out_fmt))
    assert_equal(roundtrip, got, exact=False)
    assert_same_dtypes(expected, got)
    plan = json.loads(run_adcat("plan", *args, "-o", tmp_path / f"planned{FORMATS[out_fmt]}", "--json").stdout)
    assert plan["shape"] == list(expected.shape)
    main = [{k: m[k] for k in ("matched", "filled", "dropped")} for m in plan["off_axis_match"] if m["part"] == ""]
    assert main == expected_match(adatas, names)
    if all(m["filled"] == m["dropped"] == 0 for m in main):
        assert f"adcat: every input has the output's {len(names)} names" in proc.stderr
    for p, m in zip(paths, main):
        if m["filled"] or m["dropped"]:
            assert f"adcat: {p}: {m['matched']} matched, {m['filled']} filled, {m['dropped']} dropped" in proc.stderr
    return expected, got


def mixed_names(adatas, seed=0):
    """Some names of every input, some of one, some of none, in a new order."""
    rng = np.random.default_rng(seed)
    union = sorted(set().union(*(a.var_names for a in adatas)))
    keep = [n for n in union if rng.random() < 0.6]
    names = keep + ["absent-1", "absent-2", "absent-3"]
    rng.shuffle(names)
    return names


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
@pytest.mark.parametrize("array_type", ["dense", "csr", "csc"])
@pytest.mark.parametrize("join", ["inner", "outer"])
def test_missing_extra_and_reordered_genes(run_adcat, tmp_path, join, array_type, fmt):
    """X, layers, varm (sparse, dense, dataframe), var columns merged with `same`."""
    adatas = _matrix_adatas(0, array_type, seed=hash((join, array_type, fmt)) % 2**32)
    check_fixed(run_adcat, tmp_path, adatas, mixed_names(adatas), fmt=fmt, join=join, merge="same")


@pytest.mark.parametrize("merge", [None, "unique", "first", "only"])
def test_merge_strategies_over_filled_genes(run_adcat, tmp_path, merge):
    adatas = _matrix_adatas(0, "csr", seed=7)
    check_fixed(run_adcat, tmp_path, adatas, mixed_names(adatas, seed=1), fmt="zarr", out_fmt="zarr2", join="outer", merge=merge)


@pytest.mark.parametrize("X", ["csr", "dense"])
@pytest.mark.parametrize("join", ["inner", "outer"])
def test_fill_value_follows_the_join(run_adcat, tmp_path, join, X):
    """anndata fills with `fill_value` under an outer join only; an inner join's holes
    (which only a fixed list makes) take the default (0 sparse, NaN dense)."""
    a = simple(6, ["g0", "g1", "g2"], X=X, dtype=np.int32, seed=1)
    b = simple(5, ["g1", "g2", "g3"], X=X, dtype=np.int32, seed=2, prefix="d")
    check_fixed(run_adcat, tmp_path, [a, b], ["g3", "g1", "gX", "g0"], join=join, fill_value=-1)


@pytest.mark.parametrize(
    "kind", ["permutation", "subset", "disjoint"],
)
def test_lists_without_holes_or_without_matches(run_adcat, tmp_path, kind):
    genes = [f"g{i}" for i in range(8)]
    a = simple(6, genes, X="dense", dtype=np.int32, seed=1)
    b = simple(4, genes, X="dense", dtype=np.int32, seed=2, prefix="d")
    names = {"permutation": genes[::-1], "subset": ["g5", "g2"], "disjoint": ["x", "y"]}[kind]
    expected, got = check_fixed(run_adcat, tmp_path, [a, b], names, join="inner")
    if kind != "disjoint":
        assert got.X.dtype == np.int32, "no hole: no promotion"


def test_index_name_kept(run_adcat, tmp_path):
    a = simple(6, ["g0", "g1", "g2"], seed=1)
    b = simple(5, ["g1", "g2", "g3"], seed=2, prefix="d")
    for x in (a, b):
        x.var.index.name = "symbol"
    expected, got = check_fixed(run_adcat, tmp_path, [a, b], ["g3", "g0"], join="outer")
    assert got.var_names.name == "symbol"


def test_raw_keeps_its_own_join(run_adcat, tmp_path):
    a = simple(6, ["g0", "g1", "g2", "g3"], seed=1)
    b = simple(5, ["g1", "g2", "g3", "g4"], seed=2, prefix="d")
    for x in (a, b):
        x.raw = x.copy()
    expected, got = check_fixed(run_adcat, tmp_path, [a, b], ["g4", "g2", "gX"], join="outer")
    assert list(got.raw.var_names) == ["g0", "g1", "g2", "g3", "g4"]


def test_python_api_and_refusals(run_adcat, tmp_path):
    a = simple(6, ["g0", "g1", "g2"], seed=1)
    b = simple(5, ["g1", "g2", "g3"], seed=2, prefix="d")
    paths = [write(x, tmp_path / f"in{i}.h5ad", "h5ad") for i, x in enumerate([a, b])]
    names = ["g3", "g0", "g9"]
    adcat.concat_on_disk([str(p) for p in paths], tmp_path / "py.zarr", join="outer", var_names=pd.Index(names))
    assert_equal(read(tmp_path / "py.zarr"), concat_fixed([a, b], names, join="outer"), exact=False)
    plan = adcat.plan([str(p) for p in paths], tmp_path / "p.zarr", var_names=names)
    assert [m["filled"] for m in plan["off_axis_match"]] == [2, 2]
    with pytest.raises(adcat.AdcatValueError, match=r'"g0" at position 2 repeats position 0'):
        adcat.concat_on_disk([str(p) for p in paths], tmp_path / "dup.zarr", var_names=["g0", "g1", "g0"])
    with pytest.raises(TypeError, match="list of names"):
        adcat.concat_on_disk([str(p) for p in paths], tmp_path / "s.zarr", var_names="genes.txt")
    listing = tmp_path / "dup.txt"
    listing.write_text("g0\ng1\ng0\n")
    proc = run_adcat("concat", *paths, "--var-names", listing, "-o", tmp_path / "x.h5ad", expect_success=False)
    assert proc.returncode == 1 and '"g0" on line 3 repeats line 1' in proc.stderr
    listing.write_text("g0\ng1\n")
    proc = run_adcat("concat", *paths, "--var-names", listing, "--axis", "var", "-o", tmp_path / "x.h5ad", expect_success=False)
    assert proc.returncode == 1 and "along obs" in proc.stderr
    assert not (tmp_path / "x.h5ad").exists() and not (tmp_path / "dup.zarr").exists()


def test_job_tasks_reindex_to_the_list(run_adcat, tmp_path):
    """Tasks in other processes read the fixed names from the output: a job with small
    tasks writes what the in-process run writes (zarr and h5ad outputs)."""
    adatas = _matrix_adatas(0, "csr", seed=3)
    names = mixed_names(adatas, seed=2)
    paths = [write(a, tmp_path / f"in{i}.zarr", "zarr") for i, a in enumerate(adatas)]
    listing = tmp_path / "genes.txt"
    listing.write_text("\n".join(names))
    expected = concat_fixed([read(p) for p in paths], names, join="outer", merge="same")
    for out in (tmp_path / "job.zarr", tmp_path / "job.h5ad"):
        run_adcat("concat", *paths, "--var-names", listing, "--join", "outer", "--merge", "same", "-q",
                  "--job-dir", tmp_path / f"jd{out.suffix}", "--task-size", "1KiB", "-o", out)
        got = read(out)
        assert_equal(read(write(expected, tmp_path / f"e{out.suffix}", out.suffix.strip("."))), got, exact=False)
        assert_same_dtypes(expected, got)


# --- --var-key COLUMN ------------------------------------------------------------------------


def keyed(adatas, column):
    """The oracle's inputs: each matched by `column` (its values become the unnamed
    index; the old index is gone, as with adcat)."""
    out = []
    for a in adatas:
        b = a.copy()
        b.var_names = pd.Index(b.var[column].astype(str).to_numpy())
        out.append(b)
    return out


def mixed_id_inputs():
    """Three inputs sharing Ensembl ids in `gene_ids`; two are indexed by symbol, one by
    the ids themselves; `gene_ids` is a string column in some, categorical in one."""
    rng = np.random.default_rng(5)
    ids = [f"ENSG{i:05d}" for i in range(30)]
    out = []
    for i, (lo, hi, by_symbol, cat) in enumerate([(0, 20, True, False), (5, 30, False, False), (2, 25, True, True)]):
        genes = ids[lo:hi]
        a = simple(int(rng.integers(4, 9)), [f"SYM{g[4:]}" if by_symbol else g for g in genes], seed=i, prefix=f"c{i}-", X="csr")
        a.var["gene_ids"] = pd.Categorical(genes) if cat else genes
        a.var["score"] = rng.random(len(genes))
        a.layers["dense"] = a.X.toarray() * 2
        a.varm["loadings"] = rng.random((len(genes), 3))
        out.append(a)
    return out


@pytest.mark.parametrize(("join", "merge", "fmt"), [("inner", "same", "h5ad"), ("outer", "first", "zarr"), ("outer", None, "zarr2")])
def test_var_key_matches_mixed_symbol_and_id_indexes(run_adcat, tmp_path, join, merge, fmt):
    adatas = mixed_id_inputs()
    paths = [write(a, tmp_path / f"in{i}{FORMATS[fmt]}", fmt) for i, a in enumerate(adatas)]
    out = tmp_path / f"out{FORMATS[fmt]}"
    kw = {"join": join, "merge": merge}
    args = [*paths, "--var-key", "gene_ids", *cli_args(kw)] + (["--zarr-format", "2"] if fmt == "zarr2" else [])
    run_adcat("concat", *args, "-o", out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat(keyed([read(p) for p in paths], "gene_ids"), **kw)
    got = read(out)
    assert_equal(read(write(expected, tmp_path / f"expected{FORMATS[fmt]}", fmt)), got, exact=False)
    assert_same_dtypes(expected, got)
    assert got.var_names.name is None and got.var_names[0].startswith("ENSG")


def test_var_key_with_a_fixed_list_and_in_a_job(run_adcat, tmp_path):
    """The list is in the key's terms; tasks in other processes read the key column."""
    adatas = mixed_id_inputs()
    paths = [write(a, tmp_path / f"in{i}.zarr", "zarr") for i, a in enumerate(adatas)]
    names = ["ENSG00029", "ENSG00001", "ENSG99999", "ENSG00010", "ENSG00003"]
    listing = tmp_path / "ids.txt"
    listing.write_text("\n".join(names) + "\n")
    expected = concat_fixed(keyed([read(p) for p in paths], "gene_ids"), names, join="outer", merge="first")
    for out in (tmp_path / "one.zarr", tmp_path / "job.zarr"):
        job = ["--job-dir", tmp_path / "jd", "--task-size", "1KiB"] if out.name == "job.zarr" else []
        proc = run_adcat("concat", *paths, "--var-key", "gene_ids", "--var-names", listing, "--join", "outer", "--merge", "first", "-o", out, *job)
        got = read(out)
        assert_equal(read(write(expected, tmp_path / "e.zarr", "zarr")), got, exact=False)
        assert_same_dtypes(expected, got)
    assert f"adcat: {paths[0]}: 3 matched, 2 filled, 17 dropped" in proc.stderr
    got = adcat.plan([str(p) for p in paths], tmp_path / "p.zarr", var_key="gene_ids", var_names=names, join="outer")
    assert [m["matched"] for m in got["off_axis_match"] if m["part"] == ""] == [3, 2, 2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", r"in1\.h5ad: /var: has no column `gene_ids` to match by"),
        ("numeric", r"in1\.h5ad: /var/gene_ids: is not a column of strings"),
        ("nan", r"in1\.h5ad: /var/gene_ids: row 2 has no value"),
        ("duplicate", r"in1\.h5ad: /var: duplicate names \(ENSG00007\)"),
    ],
)
def test_var_key_refusals(run_adcat, tmp_path, change, message):
    adatas = mixed_id_inputs()[:2]
    b = adatas[1]
    if change == "missing":
        del b.var["gene_ids"]
    elif change == "numeric":
        b.var["gene_ids"] = np.arange(b.n_vars)
    elif change == "nan":
        b.var["gene_ids"] = pd.Categorical([None if i == 2 else g for i, g in enumerate(b.var["gene_ids"])])
    else:
        ids = b.var["gene_ids"].to_numpy().copy()
        ids[3] = ids[2]
        b.var["gene_ids"] = ids
    paths = [write(a, tmp_path / f"in{i}.h5ad", "h5ad") for i, a in enumerate(adatas)]
    proc = run_adcat("concat", *paths, "--var-key", "gene_ids", "-o", tmp_path / "out.h5ad", expect_success=False)
    assert proc.returncode == 1
    assert re.search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "out.h5ad").exists()
