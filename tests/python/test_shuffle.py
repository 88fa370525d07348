"""`adcat concat --shuffle --seed N`: the cells of the concatenation in one seeded
pseudo-random order, every cell-aligned element moved with them.

Oracle: `anndata.concat(inputs, <same options>)[order]`, where `order` comes from this
file's own implementation of the documented permutation (docs/concat-semantics.md,
"Shuffled output"): output row `perm(i)` holds the concatenation's row `i`. The test
therefore pins the seed's order, not only that some order was written; the obs names
(unique here) must agree with it too.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from anndata.tests.helpers import assert_equal
from scipy import sparse

from test_append import GENES, batch
from test_concat import FORMATS, assert_same_dtypes, cli_args, read, simple, write

M64 = (1 << 64) - 1


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def permutation(n: int, seed: int) -> np.ndarray:
    """Where each of `n` rows goes (the documented 8-round Feistel network with cycle
    walking, keyed by SplitMix64 of the seed)."""
    half = max(1, -(-max(n - 1, 0).bit_length() // 2))
    mask = (1 << half) - 1
    keys, state = [], seed
    for _ in range(8):
        state = (state + 0x9E3779B97F4A7C15) & M64
        keys.append(_mix(state))

    def encrypt(x: int) -> int:
        left, right = x >> half, x & mask
        for k in keys:
            left, right = right, left ^ (_mix(right ^ k) & mask)
        return (left << half) | right

    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        x = encrypt(i)
        while x >= n:
            x = encrypt(x)
        out[i] = x
    return out


def shuffled(expected: ad.AnnData, seed: int) -> ad.AnnData:
    """`expected` with row i moved to perm(i)."""
    order = np.argsort(permutation(expected.n_obs, seed))
    return expected[order].copy()


def check_shuffle(run_adcat, tmp_path: Path, adatas, fmts, out_fmt="h5ad", seed=7, extra=(), **kw):
    if isinstance(fmts, str):
        fmts = [fmts] * len(adatas)
    paths = [write(a, tmp_path / f"in{i}{FORMATS[f]}", f) for i, (a, f) in enumerate(zip(adatas, fmts))]
    out = tmp_path / f"out{FORMATS[out_fmt]}"
    args = ["concat", *paths, "-o", out, "--shuffle", "--seed", str(seed), *cli_args(kw), *extra]
    if out_fmt == "zarr2":
        args += ["--zarr-format", "2"]
    proc = run_adcat(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = shuffled(ad.concat([read(p) for p in paths], **kw), seed)
    roundtrip = read(write(expected, tmp_path / f"expected{FORMATS[out_fmt]}", out_fmt))
    got = read(out)
    assert_equal(roundtrip, got, exact=False)
    assert_same_dtypes(expected, got)
    assert f"cells shuffled with seed {seed}" in proc.stderr
    return expected, got


def test_permutation_is_a_bijection_that_moves_cells():
    for n in (0, 1, 2, 3, 17, 64, 1000):
        p = permutation(n, 3)
        assert sorted(p) == list(range(n))
    p = permutation(1000, 3)
    assert (p == np.arange(1000)).sum() < 10
    assert not np.array_equal(p, permutation(1000, 4))


@pytest.mark.parametrize("out_fmt", ["h5ad", "zarr", "zarr2"])
def test_every_cell_aligned_element_follows(run_adcat, tmp_path, out_fmt):
    """obs columns of every kind, X, a layer, obsm, raw/X and the label column."""
    adatas = [batch(i, n) for i, n in enumerate((40, 1, 75))]
    adatas[1].obs["flag"] = pd.array([True], dtype="boolean")
    adatas[2].obs["flag"] = pd.array([None, False] * 37 + [True], dtype="boolean")
    adatas[0].obs["count"] = pd.array(range(40), dtype="Int32")
    check_shuffle(run_adcat, tmp_path, adatas, ["h5ad", "zarr", "zarr2"], out_fmt, join="outer", label="batch", keys=["a", "b", "c"], index_unique="-")


@pytest.mark.parametrize("X", ["dense", "csc"])
def test_dense_and_csc_matrices(run_adcat, tmp_path, X):
    a, b = simple(30, GENES, prefix="a", X=X, seed=1), simple(21, GENES[5:], prefix="b", X=X, seed=2)
    a.obsm["frame"] = pd.DataFrame({"x": np.arange(30.0), "s": [f"v{i}" for i in range(30)]}, index=a.obs_names)
    b.obsm["frame"] = pd.DataFrame({"x": np.arange(21.0), "s": [f"w{i}" for i in range(21)]}, index=b.obs_names)
    check_shuffle(run_adcat, tmp_path, [a, b], "h5ad", "zarr", join="inner")


@pytest.mark.parametrize("dense", [False, True])
def test_obsp_on_both_axes(run_adcat, tmp_path, dense):
    adatas = []
    for i, n in enumerate((25, 18)):
        a = simple(n, GENES, prefix=f"p{i}-", seed=i)
        g = sparse.random(n, n, density=0.2, format="csr", random_state=i, dtype=np.float32)
        a.obsp["connectivities"] = g.toarray() if dense else g
        adatas.append(a)
    check_shuffle(run_adcat, tmp_path, adatas, "zarr", "h5ad", pairwise=True)


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_many_buckets_under_a_tiny_budget(run_adcat, tmp_path, fmt):
    """1 MiB of budget: every element is scattered over many scratch buckets and read in
    many blocks; nothing is left beside the output."""
    genes = [f"g{i}" for i in range(300)]
    adatas = [simple(2500, genes[i * 20 :], prefix=f"b{i}", seed=i, X="csr" if i else "dense") for i in range(3)]
    for a in adatas:
        a.obs["q"] = np.arange(a.n_obs, dtype=np.float32)
        a.obs["name"] = [f"{a.obs_names[0]}-{k}" for k in range(a.n_obs)]
        a.obsm["pca"] = np.random.default_rng(0).random((a.n_obs, 40)).astype(np.float32)
    check_shuffle(run_adcat, tmp_path, adatas, fmt, fmt, seed=123456789, join="outer", extra=["--max-memory", "1MiB"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("X", ["csr", "dense"])
def test_inputs_without_cells(run_adcat, tmp_path, X):
    """Nothing to shuffle: every element is written, empty (a CSR X too)."""
    adatas = [simple(0, GENES, prefix=f"e{i}", X=X) for i in range(2)]
    check_shuffle(run_adcat, tmp_path, adatas, "h5ad", out_fmt="zarr")


def test_same_seed_same_order_other_seed_other_order(run_adcat, tmp_path):
    a, b = simple(50, GENES, prefix="a"), simple(50, GENES, prefix="b", seed=1)
    pa, pb = write(a, tmp_path / "a.h5ad", "h5ad"), write(b, tmp_path / "b.zarr", "zarr")
    names = []
    for name, seed in (("one", "5"), ("two", "5"), ("three", "6")):
        run_adcat("concat", pa, pb, "-o", tmp_path / f"{name}.zarr", "--shuffle", "--seed", seed, "-q")
        names.append(list(read(tmp_path / f"{name}.zarr").obs_names))
    assert names[0] == names[1]
    assert names[0] != names[2] and sorted(names[0]) == sorted(names[2])


def test_without_seed_a_random_seed_is_printed_and_recorded(run_adcat, tmp_path):
    import json

    a, b = simple(20, GENES, prefix="a"), simple(20, GENES, prefix="b", seed=1)
    pa, pb = write(a, tmp_path / "a.h5ad", "h5ad"), write(b, tmp_path / "b.h5ad", "h5ad")
    proc = run_adcat("concat", pa, pb, "-o", tmp_path / "out.zarr", "--shuffle")
    seed = int(proc.stderr.split("cells shuffled with seed ")[1].split()[0])
    doc = json.loads(run_adcat("inspect", tmp_path / "out.zarr", "--json").stdout)
    assert doc["provenance"]["history"][0]["options"]["shuffle_seed"] == seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = shuffled(ad.concat([a, b]), seed)
    assert list(read(tmp_path / "out.zarr").obs_names) == list(expected.obs_names)


def test_selection_and_var_names(run_adcat, tmp_path):
    adatas = [batch(i, 30) for i in range(2)]
    paths = [write(a, tmp_path / f"in{i}.h5ad", "h5ad") for i, a in enumerate(adatas)]
    genes = GENES[3:20][::-1]
    (tmp_path / "genes.txt").write_text("\n".join(genes) + "\n")
    out = tmp_path / "out.zarr"
    run_adcat("concat", *paths, "-o", out, "--shuffle", "--seed", "11", "--obs-filter", "qc > 0.3", "--var-names", tmp_path / "genes.txt", "-q")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subset = [read(p) for p in paths]
        subset = [s[s.obs["qc"] > 0.3].copy() for s in subset]
        expected = ad.concat(subset)[:, genes]
    expected = shuffled(expected.copy(), 11)
    got = read(out)
    roundtrip = read(write(expected, tmp_path / "expected.zarr", "zarr"))
    assert_equal(roundtrip, got, exact=False)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--axis", "var"], "--shuffle orders the cells of a concatenation along obs"),
        (["--job-dir", "JOB"], "cannot be planned as a job"),
    ],
)
def test_refusals(run_adcat, tmp_path, extra, message):
    a, b = simple(5, GENES, prefix="a"), simple(5, GENES, prefix="b")
    pa, pb = write(a, tmp_path / "a.h5ad", "h5ad"), write(b, tmp_path / "b.h5ad", "h5ad")
    extra = [str(tmp_path / "job") if e == "JOB" else e for e in extra]
    proc = run_adcat("concat", pa, pb, "-o", tmp_path / "out.zarr", "--shuffle", "--seed", "1", *extra, expect_success=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert not (tmp_path / "out.zarr").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5ad", "b.h5ad"] + (["job"] if (tmp_path / "job").exists() else [])


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("out_fmt", ["zarr", "h5ad"])
def test_loader_layout_options(run_adcat, tmp_path, shuffle, out_fmt):
    """--obs-chunk ROWS chunks every dense cell-aligned array by ROWS cells,
    --compact-indices stores indices in the smallest unsigned type, --shard-size sizes
    zarr shards; anndata reads the same data."""
    import h5py
    import zarr

    adatas = [batch(i, n) for i, n in enumerate((300, 220))]
    paths = [write(a, tmp_path / f"in{i}.h5ad", "h5ad") for i, a in enumerate(adatas)]
    out = tmp_path / f"out{FORMATS[out_fmt]}"
    flags = ["--shuffle", "--seed", "9"] if shuffle else []
    run_adcat("concat", *paths, "-o", out, *flags, "--obs-chunk", "64", "--compact-indices", "--shard-size", "1MiB", "--max-memory", "64MiB", "-q")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat([read(p) for p in paths])
    if shuffle:
        expected = shuffled(expected, 9)
    got = read(out)
    assert_equal(read(write(expected, tmp_path / f"expected{FORMATS[out_fmt]}", out_fmt)), got, exact=False)
    dense = ["obs/qc", "obs/n_genes", "obs/cell_type/codes", "obsm/X_pca"]
    if out_fmt == "zarr":
        z = zarr.open(out, mode="r")
        for p in dense:
            assert z[p].chunks[0] == 64, (p, z[p].chunks)
            assert z[p].shards[0] % 64 == 0 and z[p].shards[0] * z[p].dtype.itemsize * int(np.prod(z[p].shape[1:])) <= 1 << 20
        index_dtypes = {z[p].dtype for p in ("X/indices", "layers/counts/indices", "raw/X/indices")}
    else:
        with h5py.File(out, "r") as f:
            for p in dense:
                assert f[p].chunks[0] == 64, (p, f[p].chunks)
            index_dtypes = {f[p].dtype for p in ("X/indices", "layers/counts/indices", "raw/X/indices")}
    assert index_dtypes == {np.dtype("uint8")}, index_dtypes  # 30 genes, 12 raw genes


def test_obs_chunk_refused_along_var_and_shard_size_over_budget(run_adcat, tmp_path):
    a, b = simple(5, GENES, prefix="a"), simple(5, GENES, prefix="b")
    pa, pb = write(a, tmp_path / "a.h5ad", "h5ad"), write(b, tmp_path / "b.h5ad", "h5ad")
    proc = run_adcat("concat", pa, pb, "-o", tmp_path / "o.zarr", "--axis", "var", "--obs-chunk", "64", expect_success=False)
    assert "--obs-chunk chunks the arrays along obs" in proc.stderr
    proc = run_adcat("concat", pa, pb, "-o", tmp_path / "o.zarr", "--shard-size", "1GiB", expect_success=False)
    assert "--shard-size 1GiB needs --max-memory of at least 16 times as much" in proc.stderr
    assert not (tmp_path / "o.zarr").exists()


def _datasets(path: Path) -> list[ad.AnnData]:
    import zarr

    root = zarr.open_group(path, mode="r")
    assert dict(root.attrs)["encoding-type"] == "annbatch-preshuffled"
    assert dict(root.attrs)["encoding-version"] == "0.1.0"
    names = sorted((k for k in root.group_keys() if k.startswith("dataset_")), key=lambda k: int(k.split("_")[1]))
    assert names == [f"dataset_{i}" for i in range(len(names))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [ad.io.read_elem(root[n]) for n in names]


@pytest.mark.parametrize("X", ["csr", "dense"])
def test_annbatch_collection_holds_the_shuffled_cells_in_datasets(run_adcat, tmp_path, X):
    """--layout annbatch: dataset_0, dataset_1, ... are consecutive slices of the
    shuffled concatenation (with annbatch's src_path label), every element of their own
    cells (obsp: the block between them); 64-cell chunks, compact indices."""
    import zarr

    adatas = [batch(i, n, X=X) for i, n in enumerate((230, 170, 95))]
    for i, a in enumerate(adatas):
        g = sparse.random(a.n_obs, a.n_obs, density=0.05, format="csr", random_state=i, dtype=np.float32)
        a.obsp["distances"] = g
    paths = [write(a, tmp_path / f"in{i}.h5ad", "h5ad") for i, a in enumerate(adatas)]
    out = tmp_path / "coll.zarr"
    run_adcat("concat", *paths, "-o", out, "--layout", "annbatch", "--seed", "21", "--dataset-size", "24KiB", "--pairwise", "-q")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat([read(p) for p in paths], label="src_path", keys=[str(p) for p in paths], pairwise=True)
    expected = shuffled(expected, 21)
    datasets = _datasets(out)
    sizes = [d.n_obs for d in datasets]
    assert len(sizes) > 2 and sum(sizes) == expected.n_obs and len(set(sizes[:-1])) == 1 and sizes[-1] <= sizes[0], sizes
    start = 0
    for k, got in enumerate(datasets):
        # Every dataset keeps the collection's categories, so codes agree across them.
        with ad.settings.override(remove_unused_categories=False):
            want = expected[start : start + got.n_obs].copy()
        assert_equal(read(write(want, tmp_path / f"expected{k}.zarr", "zarr")), got, exact=False)
        start += got.n_obs
    z = zarr.open_group(out, mode="r")
    assert z["dataset_0/obs/qc"].chunks == (64,)
    if X == "dense":
        assert z["dataset_0/X"].chunks == (64, len(GENES))
    else:
        assert z["dataset_0/X/indices"].dtype == np.uint8
    assert run_adcat("validate", out).stdout.strip().endswith(f"valid annbatch collection of {len(sizes)} AnnData datasets ({expected.n_obs} obs x {len(GENES)} var)")


@pytest.mark.parametrize("X", ["csr", "dense"])
def test_annbatch_loader_reads_the_collection(run_adcat, tmp_path, X):
    """annbatch's own Loader reads adcat's collection: every cell once, in the stored
    order, each batch's rows equal to the source rows they came from (by src_path and
    obs name)."""
    from annbatch import DatasetCollection, Loader

    adatas = [batch(i, n, X=X) for i, n in enumerate((300, 260))]
    paths = [write(a, tmp_path / f"in{i}.h5ad", "h5ad") for i, a in enumerate(adatas)]
    out = tmp_path / "coll.zarr"
    run_adcat("concat", *paths, "-o", out, "--layout", "annbatch", "--seed", "5", "--dataset-size", "48KiB", "-q")
    sources = {str(p): read(p) for p in paths}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = Loader(batch_size=50, chunk_size=25, preload_nchunks=4, shuffle=False, return_index=True, preload_to_gpu=False)
        loader = loader.use_collection(DatasetCollection(out, mode="r"))
        batches = list(loader)
    seen, order = 0, []
    for b in batches:
        Xb, obs = b["X"], b["obs"]
        assert list(b["var"].index) == GENES
        for src in obs["src_path"].unique():
            m = (obs["src_path"] == src).to_numpy()
            want = sources[str(src)][obs.index[m]]
            got = Xb[m]
            if X == "csr":
                assert sparse.issparse(got) and (got != want.X).nnz == 0
            else:
                np.testing.assert_array_equal(got, want.X)
            np.testing.assert_array_equal(obs["qc"].to_numpy()[m], want.obs["qc"].to_numpy())
        seen += Xb.shape[0]
        order.append(b["index"])
    assert seen == loader.n_obs == sum(a.n_obs for a in adatas)
    np.testing.assert_array_equal(np.concatenate(order), np.arange(seen))
    # The stored order is the seed's permutation of the concatenation.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = shuffled(ad.concat(list(sources.values())), 5)
    names = np.concatenate([b["obs"].index.to_numpy() for b in batches])
    np.testing.assert_array_equal(names, expected.obs_names.to_numpy())


def test_annbatch_layout_refuses_h5ad(run_adcat, tmp_path):
    a, b = simple(5, GENES, prefix="a"), simple(5, GENES, prefix="b")
    pa, pb = write(a, tmp_path / "a.h5ad", "h5ad"), write(b, tmp_path / "b.h5ad", "h5ad")
    proc = run_adcat("concat", pa, pb, "-o", tmp_path / "o.h5ad", "--layout", "annbatch", expect_success=False)
    assert "--layout annbatch writes a zarr collection" in proc.stderr
    proc = run_adcat("concat", pa, pb, "-o", tmp_path / "o.zarr", "--seed", "3", expect_success=False)
    assert "--seed orders a shuffled output: add --shuffle" in proc.stderr


def test_python_api(tmp_path):
    """adcat.concat_on_disk(..., shuffle=True, seed=N) and layout="annbatch" write what
    the command line writes; bad arguments raise ValueError."""
    import adcat

    adatas = [batch(i, n) for i, n in enumerate((120, 80))]
    paths = [write(a, tmp_path / f"in{i}.h5ad", "h5ad") for i, a in enumerate(adatas)]
    out = tmp_path / "out.zarr"
    adcat.concat_on_disk(paths, out, shuffle=True, seed=17, obs_chunk=32, compact_indices=True, join="outer", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = shuffled(ad.concat([read(p) for p in paths], join="outer"), 17)
    assert_equal(read(write(expected, tmp_path / "expected.zarr", "zarr")), read(out), exact=False)
    coll = tmp_path / "coll.zarr"
    adcat.concat_on_disk(paths, coll, layout="annbatch", seed=17, dataset_size="16KiB", progress=False)
    datasets = _datasets(coll)
    assert len(datasets) > 1 and sum(d.n_obs for d in datasets) == 200
    assert list(datasets[0].obs["src_path"].cat.categories) == [str(p) for p in paths]
    for bad in (dict(seed=3), dict(shuffle=True, seed=-1), dict(layout="tiledb"), dict(obs_chunk=0)):
        with pytest.raises(ValueError):
            adcat.concat_on_disk(paths, tmp_path / "bad.zarr", progress=False, **bad)
    assert not (tmp_path / "bad.zarr").exists()


def test_peak_memory_stays_flat_and_within_plain_concat(run_adcat, tmp_path):
    """The shuffle's peak RSS does not grow with the input (4x the cells) and stays
    within what the same concatenation in input order takes under the same budget."""
    from test_hostile import run_measured

    peaks = {}
    for cells in (10_000, 40_000):
        src = tmp_path / f"g{cells}.zarr"
        run_adcat("generate", src, "--cells", cells, "--genes", 1000, "--density", 0.1, "--seed", 1, "-q")
        common = ["concat", src, src, "--index-unique", "-", "--max-memory", "32MiB", "-q"]
        # Peak RSS varies by tens of MB between identical runs (threads' timing decides
        # how many blocks are alive at once): the least of three runs is each command's
        # need.
        def least(out: str, *extra) -> float:
            runs = []
            for i in range(3):
                shutil.rmtree(tmp_path / out, ignore_errors=True)
                r = run_measured([*common, "-o", tmp_path / out, *extra], tmp_path)
                assert r.code == 0, r.stderr
                runs.append(r.peak_mb)
            return min(runs)

        shuf = least(f"s{cells}.zarr", "--shuffle", "--seed", 1)
        plain = least(f"p{cells}.zarr")
        assert shuf <= plain * 1.25 + 16, (cells, shuf, plain)
        peaks[cells] = shuf
    assert peaks[40_000] <= peaks[10_000] * 1.3 + 8, peaks
