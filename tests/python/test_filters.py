"""Selecting cells while concatenating: `--obs-filter EXPR` and `--obs-names FILE`.

Oracle: `anndata.concat` of each input subset with the pandas mask of the same
expression (`a[mask]`), with `settings.remove_unused_categories=False` (adcat streams
and keeps every category; anndata's default would prune them). Missing values compare as
pandas compares NaN: every comparison is false except `!=` and `not in`.
"""

from __future__ import annotations

import json
import re
import warnings

import adcat
import anndata as ad
import numpy as np
import pandas as pd
import pytest
from anndata.tests.helpers import assert_equal
from scipy import sparse
from test_concat import FORMATS, assert_same_dtypes, cli_args, read, write


def make_input(i: int, n: int, seed: int) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    genes = [f"g{j}" for j in range(i, i + 12)]
    dense = ((rng.random((n, 12)) < 0.3) * rng.integers(1, 9, (n, 12))).astype(np.float32)
    pct = rng.random(n) * 10
    pct[rng.random(n) < 0.1] = np.nan
    nint = pd.array(rng.integers(0, 5, n), dtype="Int64")
    nint[rng.random(n) < 0.1] = pd.NA
    nbool = pd.array(rng.random(n) < 0.5, dtype="boolean")
    nbool[rng.random(n) < 0.1] = pd.NA
    cell_type = pd.Categorical(rng.choice(["B", "T", "NK", None], n), categories=["B", "NK", "T", f"only{i}"])
    stage = pd.Categorical(rng.choice(["early", "mid", "late"], n), categories=["early", "mid", "late"], ordered=True)
    sample = pd.array(rng.choice(["s1", "s2", "s3"], n).astype(object), dtype="string")
    sample[rng.random(n) < 0.1] = pd.NA
    a = ad.AnnData(
        X=sparse.csr_matrix(dense),
        obs=pd.DataFrame(
            {
                "n_genes": (dense > 0).sum(1).astype(np.int64),
                "pct_mito": pct,
                "is_doublet": rng.random(n) < 0.2,
                "donor": rng.choice(["d1", "d2", "d 3"], n).astype(object),
                "sample": sample,
                "cell_type": cell_type,
                "stage": stage,
                "n_counts": nint,
                "qc_pass": nbool,
            },
            index=[f"c{j}" for j in range(n)],
        ),
        var=pd.DataFrame(index=genes),
    )
    a.layers["dense"] = dense * 2
    a.obsm["X_pca"] = rng.random((n, 3))
    a.obsm["sparse"] = sparse.csr_matrix(dense[:, :4])
    a.obsm["frame"] = pd.DataFrame({"u": rng.random(n), "lab": pd.Categorical(rng.choice(["x", "y"], n))}, index=a.obs_names)
    a.raw = a.copy()
    return a


def na_false(s: pd.Series) -> pd.Series:
    return s.astype("boolean").fillna(False).astype(bool)


#: Filters with their pandas masks (obs -> bool), following adcat's missing-value rule.
FILTERS = {
    "n_genes >= 4": lambda o: o.n_genes >= 4,
    "pct_mito < 5": lambda o: o.pct_mito < 5,
    "pct_mito != 5.5": lambda o: o.pct_mito != 5.5,
    "is_doublet == false and n_genes > 2": lambda o: (~o.is_doublet) & (o.n_genes > 2),
    "donor in ['d1', 'd 3']": lambda o: o.donor.isin(["d1", "d 3"]),
    "sample == 's2' or sample == 's3'": lambda o: na_false(o["sample"] == "s2") | na_false(o["sample"] == "s3"),
    "sample != 's1'": lambda o: ~na_false(o["sample"] == "s1"),
    "cell_type not in ['B', 'NK']": lambda o: ~o.cell_type.isin(["B", "NK"]),
    "not (cell_type == 'T') and stage >= 'mid'": lambda o: ~(o.cell_type == "T") & (o.stage >= "mid"),
    "n_counts <= 2 or qc_pass == true": lambda o: na_false(o.n_counts <= 2) | na_false(o.qc_pass == True),  # noqa: E712
    "`pct_mito` > 100": lambda o: o.pct_mito > 100,
}


def oracle(adatas, masks, **kw) -> ad.AnnData:
    with warnings.catch_warnings(), ad.settings.override(remove_unused_categories=False):
        warnings.simplefilter("ignore")
        return ad.concat([a[np.asarray(m, dtype=bool)] for a, m in zip(adatas, masks)], **kw)


def check(run_adcat, tmp_path, adatas, fmts, out_fmt, masks, *args, **kw):
    paths = [write(a, tmp_path / f"in{i}{FORMATS[f]}", f) for i, (a, f) in enumerate(zip(adatas, fmts))]
    out = tmp_path / f"out{FORMATS[out_fmt]}"
    zf = ["--zarr-format", "2"] if out_fmt == "zarr2" else []
    proc = run_adcat("concat", *paths, "-o", out, *args, *cli_args(kw), *zf)
    expected = oracle([read(p) for p in paths], masks, **kw)
    got = read(out)
    if expected.n_obs == 0 and expected.raw is None and got.raw is not None:
        # anndata drops a raw of zero rows (AnnData(raw=...) tests its truth, i.e. its
        # length); adcat keeps it (docs/differences.md).
        assert got.raw.n_obs == 0 and got.raw.n_vars > 0
        del got.raw
    assert_equal(read(write(expected, tmp_path / f"expected{FORMATS[out_fmt]}", out_fmt)), got, exact=False)
    assert_same_dtypes(expected, got)
    for p, m in zip(paths, masks):
        assert f"adcat: {p}: kept {int(np.sum(m))} of {len(m)} cells" in proc.stderr
    return paths, got


@pytest.fixture(scope="module")
def adatas():
    return [make_input(i, n, seed=i) for i, n in enumerate((40, 25, 33))]


@pytest.mark.parametrize("expr", list(FILTERS))
def test_filter_on_every_column_type(run_adcat, tmp_path, adatas, expr):
    masks = [FILTERS[expr](a.obs) for a in adatas]
    check(run_adcat, tmp_path, adatas, ["h5ad", "zarr", "zarr2"], "zarr", masks, "--obs-filter", expr, join="outer", label="batch", index_unique="-")


@pytest.mark.parametrize("out_fmt", ["h5ad", "zarr2"])
def test_filter_with_inner_join_and_merge(run_adcat, tmp_path, adatas, out_fmt):
    expr = "n_genes >= 3 and stage < 'late'"
    masks = [FILTERS["n_genes >= 4"](a.obs) | True for a in adatas]
    masks = [(a.obs.n_genes >= 3) & (a.obs.stage < "late") for a in adatas]
    check(run_adcat, tmp_path, adatas, ["zarr", "h5ad", "h5ad"], out_fmt, masks, "--obs-filter", expr, join="inner", merge="same")


def test_names_keep_input_order_and_combine_with_a_filter(run_adcat, tmp_path, adatas):
    """--obs-names are the output's names (with the index_unique suffix); the file's
    order does not matter; with a filter both must hold."""
    rng = np.random.default_rng(3)
    keys = ["a", "b", "c"]
    wanted = [f"{n}-{k}" for a, k in zip(adatas, keys) for n in a.obs_names if rng.random() < 0.5]
    wanted += ["c0-zzz", "nobody"]
    rng.shuffle(wanted)
    listing = tmp_path / "cells.txt"
    listing.write_text("\n".join(wanted) + "\n")
    want = set(wanted)
    masks = [a.obs_names.map(lambda n, k=k: f"{n}-{k}" in want).to_numpy() & (a.obs.n_genes >= 2).to_numpy() for a, k in zip(adatas, keys)]
    check(run_adcat, tmp_path, adatas, ["h5ad"] * 3, "h5ad", masks, "--obs-names", listing, "--obs-filter", "n_genes >= 2",
          join="outer", keys=keys, index_unique="-")


def test_empty_result_and_python_api(run_adcat, tmp_path, adatas):
    masks = [np.zeros(a.n_obs, bool) for a in adatas]
    paths, got = check(run_adcat, tmp_path, adatas, ["zarr"] * 3, "h5ad", masks, "--obs-filter", "n_genes > 1000", join="outer")
    assert got.n_obs == 0
    out = tmp_path / "py.zarr"
    adcat.concat_on_disk([str(p) for p in paths], out, join="outer", obs_filter="cell_type == 'NK'", obs_names=None)
    expected = oracle([read(p) for p in paths], [a.obs.cell_type == "NK" for a in adatas], join="outer")
    assert_equal(read(write(expected, tmp_path / "e.zarr", "zarr")), read(out), exact=False)
    plan = adcat.plan([str(p) for p in paths], tmp_path / "p.zarr", obs_filter="cell_type == 'NK'")
    assert [k["kept"] for k in plan["kept"]] == [int((a.obs.cell_type == "NK").sum()) for a in adatas]
    assert plan["shape"][0] == expected.n_obs


def test_many_blocks_and_scattered_rows(run_adcat, tmp_path):
    """20,000 cells, every other one or so kept, a 1 MiB budget: reads cross blocks,
    chunk boundaries and the CSR view's checkpoints (every 4096 kept rows)."""
    rng = np.random.default_rng(11)
    n = 20_000
    X = sparse.random(n, 60, density=0.1, format="csr", random_state=rng, dtype=np.float32)
    a = ad.AnnData(X=X, obs=pd.DataFrame({"q": rng.random(n)}, index=[f"c{i}" for i in range(n)]), var=pd.DataFrame(index=[f"g{j}" for j in range(60)]))
    a.layers["dense"] = X.toarray()
    b = a[:3000].copy()
    b.obs_names = [f"d{i}" for i in range(b.n_obs)]
    masks = [x.obs.q < 0.55 for x in (a, b)]
    check(run_adcat, tmp_path, [a, b], ["zarr", "h5ad"], "zarr", masks, "--obs-filter", "q < 0.55", "--max-memory", "1MiB")


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("n_genes = 3", re.escape('--obs-filter "n_genes = 3": at position 9: `=` is not a comparison; use `==`')),
        ("n_genes >= ", "at position 12: expected a value"),
        ("(n_genes > 1", re.escape("at position 13: expected `)`, found the end")),
        ("nope > 1", r"in0\.h5ad: /obs has no column `nope` \(used by the filter\)"),
        ("donor > 3", r"in0\.h5ad: filter at position 1: column `donor` \((nullable )?string\) cannot be compared with 3"),
        ("cell_type < 'T'", r"in0\.h5ad: filter at position 1: column `cell_type` is an unordered categorical"),
        ("stage > 'never'", "\"never\" is not a category of the ordered column `stage`"),
        ("is_doublet == 1", "column `is_doublet` \\(bool\\) cannot be compared with 1"),
    ],
)
def test_bad_filters_are_refused_clearly(run_adcat, tmp_path, adatas, expr, message):
    paths = [write(a, tmp_path / f"in{i}.h5ad", "h5ad") for i, a in enumerate(adatas[:2])]
    proc = run_adcat("concat", *paths, "-o", tmp_path / "out.h5ad", "--obs-filter", expr, expect_success=False)
    assert proc.returncode in (1, 2)
    assert re.search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "out.h5ad").exists()


def test_refusals(run_adcat, tmp_path, adatas):
    a = adatas[0].copy()
    a.X = sparse.csc_matrix(a.X)
    paths = [write(a, tmp_path / "csc.h5ad", "h5ad"), write(adatas[1], tmp_path / "ok.zarr", "zarr")]
    proc = run_adcat("concat", *paths, "-o", tmp_path / "out.h5ad", "--obs-filter", "n_genes > 1", expect_success=False)
    assert proc.returncode == 1 and "csc.h5ad: /X: is a csc_matrix" in proc.stderr
    proc = run_adcat("concat", paths[1], "-o", tmp_path / "job.zarr", "--obs-filter", "n_genes > 1", "--job-dir", tmp_path / "jd", expect_success=False)
    assert proc.returncode == 1 and "runs in one process" in proc.stderr
    proc = run_adcat("concat", paths[1], paths[1], "--axis", "var", "-o", tmp_path / "v.zarr", "--obs-filter", "n_genes > 1", expect_success=False)
    assert proc.returncode == 1 and "needs --axis obs" in proc.stderr
    assert not any(p.exists() for p in (tmp_path / "out.h5ad", tmp_path / "job.zarr", tmp_path / "v.zarr"))


# --- --var-filter ---------------------------------------------------------------------------


def with_var_columns(adatas):
    out = []
    for i, a in enumerate(adatas):
        b = a.copy()
        rng = np.random.default_rng(40 + i)
        b.var["highly_variable"] = rng.random(b.n_vars) < 0.6
        b.var["mean"] = np.round(rng.random(b.n_vars), 1)
        b.var["kind"] = pd.Categorical(rng.choice(["protein", "lnc"], b.n_vars))
        b.varm["loadings"] = rng.random((b.n_vars, 2))
        out.append(b)
    return out


@pytest.mark.parametrize(("join", "merge"), [("inner", None), ("outer", "first"), ("outer", "unique")])
def test_var_filter_as_column_subsets(run_adcat, tmp_path, adatas, join, merge):
    """Each input's genes are cut to those passing the filter before the join; X,
    layers, varm and var columns follow; raw is not filtered (as `a[:, mask]`)."""
    inputs = with_var_columns(adatas)
    expr = "highly_variable == true or kind == 'lnc'"
    paths = [write(a, tmp_path / f"in{i}{FORMATS[f]}", f) for i, (a, f) in enumerate(zip(inputs, ["h5ad", "zarr", "zarr2"]))]
    out = tmp_path / "out.zarr"
    proc = run_adcat("concat", *paths, "-o", out, "--var-filter", expr, "--obs-filter", "n_genes >= 2", *cli_args({"join": join, "merge": merge}))
    read_in = [read(p) for p in paths]
    with warnings.catch_warnings(), ad.settings.override(remove_unused_categories=False):
        warnings.simplefilter("ignore")
        subset = [a[(a.obs.n_genes >= 2).to_numpy()][:, (a.var.highly_variable | (a.var.kind == "lnc")).to_numpy()] for a in read_in]
        expected = ad.concat(subset, join=join, merge=merge)
    got = read(out)
    assert_equal(read(write(expected, tmp_path / "e.zarr", "zarr")), got, exact=False)
    assert_same_dtypes(expected, got)
    for p, a in zip(paths, read_in):
        n = int((a.var.highly_variable | (a.var.kind == "lnc")).sum())
        assert f"adcat: {p}: kept {n} of {a.n_vars} genes" in proc.stderr
    plan = json.loads(run_adcat("plan", *paths, "-o", tmp_path / "p.zarr", "--var-filter", expr, "--json").stdout)
    assert [k["kept"] for k in plan["kept_var"]] == [int((a.var.highly_variable | (a.var.kind == "lnc")).sum()) for a in read_in]


def test_var_filter_with_a_fixed_list(run_adcat, tmp_path, adatas):
    inputs = with_var_columns(adatas)
    paths = [write(a, tmp_path / f"in{i}.h5ad", "h5ad") for i, a in enumerate(inputs)]
    names = ["g13", "g0", "g5", "g7"]
    listing = tmp_path / "genes.txt"
    listing.write_text("\n".join(names))
    out = tmp_path / "out.h5ad"
    run_adcat("concat", *paths, "-o", out, "--var-filter", "mean >= 0.5", "--var-names", listing, "--join", "outer")
    from test_var_names import concat_fixed

    with ad.settings.override(remove_unused_categories=False):
        subset = [a[:, (a.var["mean"] >= 0.5).to_numpy()] for a in (read(p) for p in paths)]
        expected = concat_fixed(subset, names, join="outer")
    got = read(out)
    assert_equal(read(write(expected, tmp_path / "e.h5ad", "h5ad")), got, exact=False)
    assert_same_dtypes(expected, got)


def test_r_written_and_legacy_inputs(run_adcat, tmp_path):
    """SeuratDisk-style files (sparse X marked only by h5sparse attributes, legacy
    categoricals) and anndataR files select like anndata-written ones."""
    from test_r_variants import write_anndatar, write_modern, write_seuratdisk

    paths = [write_anndatar(tmp_path / "r.h5ad"), write_seuratdisk(tmp_path / "s.h5ad"), write_modern(tmp_path / "m.h5ad")]
    out = tmp_path / "out.zarr"
    run_adcat("concat", *paths, "-o", out, "--join", "outer", "--obs-filter", "cell_type != 'B'")
    with warnings.catch_warnings(), ad.settings.override(remove_unused_categories=False):
        warnings.simplefilter("ignore")
        ins = [ad.read_h5ad(p) for p in paths]
        expected = ad.concat([a[(a.obs.cell_type != "B").to_numpy()] for a in ins], join="outer")
    got = read(out)
    assert_equal(read(write(expected, tmp_path / "e.zarr", "zarr")), got, exact=False)
    assert_same_dtypes(expected, got)


def test_damaged_input_is_still_refused(run_adcat, tmp_path, adatas):
    """The view rebuilds indptr from kept rows, so it checks the input's own first: a
    decreasing indptr, or a dense layer with extra rows, names the file and element."""
    import h5py

    p = write(adatas[0], tmp_path / "bad.h5ad", "h5ad")
    with h5py.File(p, "r+") as f:
        ptr = f["X/indptr"][...]
        ptr[5] = ptr[6] + 1
        f["X/indptr"][...] = ptr
    proc = run_adcat("concat", p, "-o", tmp_path / "out.h5ad", "--obs-filter", "n_genes >= 0", expect_success=False)
    assert proc.returncode == 1 and re.search(r"bad\.h5ad: .*X/indptr.*decreases at row 5", proc.stderr), proc.stderr
    q = write(adatas[1], tmp_path / "rows.h5ad", "h5ad")
    with h5py.File(q, "r+") as f:
        X = f["obsm/X_pca"][...]
        del f["obsm/X_pca"]
        f["obsm/X_pca"] = np.vstack([X, X[:2]])
    proc = run_adcat("concat", q, "-o", tmp_path / "out.h5ad", "--obs-filter", "n_genes >= 0", expect_success=False)
    assert proc.returncode == 1 and re.search(r"rows\.h5ad: .*obsm/X_pca", proc.stderr), proc.stderr
    assert not (tmp_path / "out.h5ad").exists()
