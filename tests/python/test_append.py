"""`adcat append STORE INPUT...`: the store grows in place and then equals concatenating
everything at once.

Oracle: `anndata.concat(A + B, <same options>)` where the store was built from A (by
`adcat concat`, or by anndata itself) and B are the appended inputs. The one documented
difference is the var order under an outer join: the store's genes keep their order and
new genes follow in the order the inputs first show them, so the oracle's var is
reordered that way before comparing. Refusals and interruptions leave the store
byte-identical, with nothing left beside it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from anndata.tests.helpers import assert_equal
from scipy import sparse

from conftest import _adcat_env, require_adcat
from test_concat import FORMATS, assert_same_dtypes, read, simple, write
from test_errors import tree_digest
from test_archives import archives, pbmc68k_reduced  # noqa: F401  (fixtures)
from test_provenance import record

GENES = [f"g{i:02d}" for i in range(30)]
RAW_GENES = [f"r{i:02d}" for i in range(12)]


def batch(i: int, n: int, genes=GENES, *, X="csr", cats=("B", "T"), dtype=np.float32) -> ad.AnnData:
    """A batch with every kind of obs element: categorical, float, int and string
    columns, a sparse layer, a dense obsm array, raw, and var/uns to merge."""
    rng = np.random.default_rng(100 + i)
    a = simple(n, genes, prefix=f"b{i}-c", X=X, seed=100 + i, dtype=dtype)
    a.obs["cell_type"] = pd.Categorical(rng.choice(list(cats), n))
    a.obs["qc"] = rng.random(n)
    a.obs["n_genes"] = rng.integers(0, 100, n)
    a.obs["sample"] = np.array([f"s{i}"] * n, dtype=object)
    a.layers["counts"] = sparse.csr_matrix(rng.integers(0, 3, (n, len(genes))).astype(np.float32))
    a.obsm["X_pca"] = rng.random((n, 3)).astype(np.float32)
    a.var["symbol"] = [g.upper() for g in genes]
    a.uns["shared"] = "atlas"
    a.raw = ad.AnnData(X=sparse.csr_matrix(rng.random((n, len(RAW_GENES))).astype(np.float32)), obs=a.obs[[]], var=pd.DataFrame(index=RAW_GENES))
    return a


def concat_at_once(adatas, **kw) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.concat(adatas, **kw)


def build_store(run_adcat, tmp_path: Path, A, fmt: str, by: str, kw: dict, keys) -> Path:
    """The store: A concatenated by adcat, or by anndata (in memory, then written)."""
    store = tmp_path / f"store{FORMATS[fmt]}"
    if by == "anndata":
        return write(concat_at_once(A, keys=keys, **kw), store, fmt)
    paths = [write(a, tmp_path / f"a{i}{FORMATS[fmt]}", fmt) for i, a in enumerate(A)]
    zf = ["--zarr-format", "2"] if fmt == "zarr2" else []
    run_adcat("concat", *paths, "-o", store, "--keys", ",".join(keys), *opts_args(kw), "-q", *zf)
    return store


def opts_args(kw: dict) -> list[str]:
    args: list[str] = []
    for k, v in kw.items():
        if v is True:
            args += ["--" + k.replace("_", "-")]
        elif v is not None:
            args += ["--" + k.replace("_", "-"), str(v)]
    return args


def outer_order(store_var, B) -> list[str]:
    order = list(store_var)
    seen = set(order)
    for b in B:
        for g in b.var_names:
            if g not in seen:
                seen.add(g)
                order.append(g)
    return order


def check_append(run_adcat, tmp_path, A, B, fmt, by, *, join="inner", merge=None, pairwise=False, extra=()):
    kw = {"join": join, "merge": merge, "uns_merge": "same", "label": "batch", "index_unique": "-"}
    if pairwise:
        kw["pairwise"] = True
    ka, kb = [f"a{i}" for i in range(len(A))], [f"b{i}" for i in range(len(B))]
    store = build_store(run_adcat, tmp_path, A, fmt, by, kw, ka)
    store_var = list(read(store).var_names)
    bfmt = {"h5ad": "zarr", "zarr": "h5ad", "zarr2": "zarr2"}[fmt]  # inputs of the other format
    paths = [write(b, tmp_path / f"b{i}{FORMATS[bfmt]}", bfmt) for i, b in enumerate(B)]
    proc = run_adcat("append", store, *paths, "--keys", ",".join(kb), *opts_args(kw), *extra)
    expected = concat_at_once([*A, *B], keys=ka + kb, **kw)
    if join == "outer":
        expected = expected[:, outer_order(store_var, B)].copy()
    got = read(store)
    assert_equal(got, expected, exact=False)
    assert_same_dtypes(expected, got)
    assert list(got.obs["batch"].cat.categories) == ka + kb
    assert not [p.name for p in tmp_path.iterdir() if ".adcat-" in p.name], "left beside the store"
    return got, proc, store


CASES = [
    # (join, merge, X, batches in the store, batches appended)
    ("inner", "same", "csr", 3, 1),
    ("inner", None, "dense", 2, 2),
    ("outer", None, "csr", 2, 10),
]


@pytest.mark.parametrize("by", ["adcat", "anndata"])
@pytest.mark.parametrize("fmt", ["h5ad", "zarr", "zarr2"])
@pytest.mark.parametrize(("join", "merge", "X", "n_a", "n_b"), CASES)
def test_append_equals_concatenating_at_once(run_adcat, tmp_path, fmt, by, join, merge, X, n_a, n_b):
    A = [batch(i, 7 + i, X=X) for i in range(n_a)]
    if join == "inner":
        # Extra genes (dropped) and another gene order; a category that sorts between
        # the store's (their codes move) and one after them.
        B = [batch(10 + j, 6 + j, GENES[::-1] + [f"x{j}"], X=X, cats=("B", "NK", "T", "Z")) for j in range(n_b)]
    else:
        # Some store genes missing (filled), new genes (added after the store's).
        B = [batch(10 + j, 5 + j, GENES[j % 3 :] + [f"new{j % 4}", "new_all"], X=X, cats=("B", "NK")) for j in range(n_b)]
    got, proc, store = check_append(run_adcat, tmp_path, A, B, fmt, by, join=join, merge=merge)
    if by == "adcat":
        rec = record(store)
        assert [s["command"] for s in rec["history"]] == ["concat", "append"]
        step = rec["history"][-1]
        assert step["shape"] == list(got.shape) and [s["key"] for s in step["inputs"]] == [f"b{j}" for j in range(n_b)]
    assert f"now {got.n_obs} obs x {got.n_vars} var" in proc.stderr


def test_twice_and_default_keys(run_adcat, tmp_path):
    """Default keys continue the store's numbering, so two appends equal one concat
    with keys 0..n-1; the provenance lists both appends."""
    A = [batch(i, 6, X="csr") for i in range(2)]
    B1, B2 = [batch(10, 5)], [batch(11, 4), batch(12, 3)]
    paths = [write(a, tmp_path / f"in{i}.h5ad", "h5ad") for i, a in enumerate([*A, *B1, *B2])]
    store = tmp_path / "store.zarr"
    kw = ["--label", "batch", "--index-unique", "_", "--uns-merge", "same"]
    run_adcat("concat", *paths[:2], "-o", store, *kw, "-q")
    run_adcat("append", store, paths[2], *kw, "-q")
    run_adcat("append", store, *paths[3:], *kw, "-q")
    expected = concat_at_once([*A, *B1, *B2], label="batch", index_unique="_", uns_merge="same")
    assert_equal(read(store), expected, exact=False)
    assert [s["command"] for s in record(store)["history"]] == ["concat", "append", "append"]
    shown = run_adcat("inspect", store).stdout
    assert "append" in shown


def test_partial_last_chunk_is_rewritten(run_adcat, tmp_path):
    """Stores whose last chunk (and shard) is partly filled: the new rows complete it."""
    A = [batch(0, 1000), batch(1, 37)]
    B = [batch(10, 555), batch(11, 3)]
    for fmt in ["zarr", "zarr2"]:
        d = tmp_path / fmt
        d.mkdir()
        check_append(run_adcat, d, A, B, fmt, "adcat", extra=["--max-memory", "1MiB"])


def test_anndata_h5ad_with_fixed_size_datasets(run_adcat, tmp_path):
    """anndata writes dense arrays and columns as fixed-size HDF5 datasets; they are
    rebuilt in the copy, the sparse parts (resizable) grow."""
    A = [batch(0, 9, X="dense"), batch(1, 8, X="dense")]
    B = [batch(10, 7, X="dense")]
    check_append(run_adcat, tmp_path, A, B, "h5ad", "anndata")


def refusal(run_adcat, store: Path, *args) -> str:
    before = tree_digest(store)
    proc = run_adcat("append", store, *args, expect_success=False)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "panicked" not in proc.stderr, proc.stderr
    assert tree_digest(store) == before, "a refused append changed the store"
    assert not [p.name for p in store.parent.iterdir() if ".adcat-" in p.name], "left beside the store"
    return lines[0]


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_refusals_leave_the_store_untouched(run_adcat, tmp_path, fmt):
    A = [batch(0, 6), batch(1, 5)]
    store = build_store(run_adcat, tmp_path, A, fmt, "adcat", {"label": "batch", "uns_merge": "same"}, ["a0", "a1"])

    def inp(name, a):
        return write(a, tmp_path / f"{name}.h5ad", "h5ad")

    lacking = batch(11, 4)
    del lacking.obs["qc"]
    msg = refusal(run_adcat, store, inp("lacking", lacking), "--label", "batch", "--keys", "n")
    assert str(store) in msg and "/obs/qc" in msg and "dropped" in msg and "--join outer" in msg
    no_raw = batch(12, 4)
    no_raw.raw = None
    msg = refusal(run_adcat, store, inp("no_raw", no_raw), "--label", "batch", "--keys", "n")
    assert "/raw would be dropped" in msg
    msg = refusal(run_adcat, store, inp("ok", batch(13, 4)), "--label", "batch", "--keys", "a1")
    assert "/obs/batch" in msg and '"a1"' in msg
    few = batch(14, 4, GENES[:-1])
    msg = refusal(run_adcat, store, inp("few", few), "--label", "batch", "--keys", "n")
    assert "lacks 1 of the store's 30 var names" in msg and "--join outer" in msg
    msg = refusal(run_adcat, store, inp("ok2", batch(15, 4)), "--label", "other", "--keys", "n")
    assert "/obs/other" in msg
    msg = refusal(run_adcat, store, store)
    assert "the store itself" in msg


def test_refusal_names_the_command_that_builds_the_result(run_adcat, tmp_path):
    """A refusal ends with the `adcat concat` command that builds the result in a new
    store: the store's own inputs with their keys (from its provenance record), then
    the new ones, with the same options; run, it equals concatenating at once."""
    import shlex

    A = [batch(0, 6), batch(1, 5)]
    kw = {"join": "outer", "label": "batch", "index_unique": "-", "uns_merge": "same"}
    store = build_store(run_adcat, tmp_path, A, "zarr", "adcat", kw, ["a0", "a1"])
    f64 = batch(12, 4, GENES + ["new"], dtype=np.float64)
    f64.raw = None
    msg = refusal(run_adcat, store, write(f64, tmp_path / "f64 batch.h5ad", "h5ad"), "--keys", "n", *opts_args(kw))
    head, cmd = msg.split("To build the result in a new store instead: ")
    assert "/raw would be dropped" in head
    words = shlex.split(cmd)
    assert words[:5] == ["adcat", "concat", str(tmp_path / "a0.zarr"), str(tmp_path / "a1.zarr"), str(tmp_path / "f64 batch.h5ad")]
    assert words[words.index("--keys") + 1] == "a0,a1,n"
    out = tmp_path / "new.zarr"
    run_adcat(*[str(out) if w == "NEW.zarr" else w for w in words[1:]], "-q")
    assert_equal(read(out), concat_at_once([*A, f64], keys=["a0", "a1", "n"], **kw), exact=False)
    # Without a record the store itself is the first input.
    plain = write(concat_at_once(A), tmp_path / "plain.h5ad", "h5ad")
    msg = refusal(run_adcat, plain, write(f64, tmp_path / "b.h5ad", "h5ad"))
    assert shlex.split(msg.split("instead: ")[1])[:3] == ["adcat", "concat", str(plain)]


@pytest.mark.parametrize("fmt", ["h5ad", "zarr", "zarr2"])
def test_layer_and_obsm_keys_new_or_missing_under_outer_join(run_adcat, tmp_path, fmt):
    """Outer join: layers and obsm entries only the new inputs have are written for the
    store's cells with the fill (dense NaN, sparse empty rows), and the store's entries
    the new inputs lack get the fill for the new cells, as concatenating at once does."""
    A = [batch(0, 6), batch(1, 5)]
    B = [batch(10, 4), batch(11, 3)]
    for i, b in enumerate(B):
        del b.obsm["X_pca"]
        del b.layers["counts"]
        b.layers["spliced"] = np.full((b.n_obs, b.n_vars), 2.0, dtype=np.float32)
        b.obsm["X_umap"] = np.random.default_rng(i).random((b.n_obs, 2)).astype(np.float32)
        b.obsm["spots"] = sparse.random(b.n_obs, 5, density=0.4, format="csr", dtype=np.float32, random_state=i)
    got, _, _ = check_append(run_adcat, tmp_path, A, B, fmt, "adcat", join="outer")
    assert set(got.obsm) == {"X_pca", "X_umap", "spots"} and set(got.layers) - {None} == {"counts", "spliced"}
    # Appending again grows the entries written the first time.
    C = [batch(20, 4)]
    C[0].obsm["X_umap"] = np.zeros((4, 2), dtype=np.float32)
    C[0].obsm["spots"] = sparse.csr_matrix(np.ones((4, 5), dtype=np.float32))
    C[0].layers["spliced"] = np.ones((4, len(GENES)), dtype=np.float32)
    store = tmp_path / f"store{FORMATS[fmt]}"
    path = write(C[0], tmp_path / "c0.h5ad", "h5ad")
    run_adcat("append", store, path, "--keys", "c0", "--join", "outer", "--label", "batch", "--index-unique", "-", "--uns-merge", "same", "-q")
    expected = concat_at_once([*A, *B, *C], keys=["a0", "a1", "b0", "b1", "c0"], join="outer", label="batch", index_unique="-", uns_merge="same")
    assert_equal(read(store), expected, exact=False)


def test_refused_stores(run_adcat, tmp_path):
    csc = batch(0, 6, X="csc")
    store = write(csc, tmp_path / "csc.h5ad", "h5ad")
    msg = refusal(run_adcat, store, write(batch(1, 4, X="csc"), tmp_path / "in.h5ad", "h5ad"))
    assert "/X" in msg and "csc_matrix" in msg
    # (float64: with float32, the outer join's NaN fill would change the dtype first.)
    dense = write(concat_at_once([batch(0, 6, X="dense", dtype=np.float64)]), tmp_path / "dense.zarr", "zarr")
    wide = batch(1, 4, GENES + ["new"], X="dense", dtype=np.float64)
    msg = refusal(run_adcat, dense, write(wide, tmp_path / "wide.h5ad", "h5ad"), "--join", "outer")
    assert "/X" in msg and "widen" in msg
    # Unique names need keys; a store that does not say how many inputs built it
    # cannot continue the default numbering.
    plain = write(concat_at_once([batch(0, 5), batch(1, 5)]), tmp_path / "plain.h5ad", "h5ad")
    msg = refusal(run_adcat, plain, write(batch(2, 3), tmp_path / "b.h5ad", "h5ad"), "--index-unique", "-")
    assert "--keys" in msg


def start(*args) -> subprocess.Popen:
    argv = [str(require_adcat()), *(str(a) for a in args)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_adcat_env(), stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def big(tmp_path_factory, run_adcat):
    d = tmp_path_factory.mktemp("append-big")
    paths = []
    for i in range(2):
        p = d / f"in{i}.h5ad"
        run_adcat("generate", p, "--cells", "25000", "--genes", "1500", "--seed", str(10 + i))
        paths.append(p)
    return paths


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_interrupted_append_leaves_the_store_as_it_was(run_adcat, tmp_path, big, fmt):
    """SIGINT, SIGTERM and SIGKILL at several moments: the store is byte-identical to
    before, or (the append finished first) equal to concatenating at once."""
    base = tmp_path / f"base{FORMATS[fmt]}"
    run_adcat("generate", base, "--cells", "3000", "--genes", "1500", "--seed", "10", "-q")
    expected = concat_at_once([read(base), *(read(p) for p in big)])
    for n, (sig, delay) in enumerate([(signal.SIGINT, 0.05), (signal.SIGTERM, 0.4), (signal.SIGINT, 1.5), (signal.SIGKILL, 0.3), (signal.SIGKILL, 2.5)]):
        store = tmp_path / f"s{n}{FORMATS[fmt]}"
        run_adcat("convert", base, store, "-q")
        before = tree_digest(store)
        proc = start("append", store, *big, "--max-memory", "1MiB", "-q")
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            assert_equal(read(store), expected, exact=False)
            continue
        assert proc.returncode in (128 + sig, -sig), f"exit {proc.returncode}: {err}"
        assert tree_digest(store) == before, f"{sig!r} after {delay}s changed the store"
        assert "panicked" not in err
        if sig != signal.SIGKILL:
            assert f"{store} is unchanged" in err, err
            assert not [p.name for p in tmp_path.iterdir() if ".adcat-" in p.name]
    # What a killed run left beside a store is removed by the next append, which works.
    store = tmp_path / f"s3{FORMATS[fmt]}"
    run_adcat("append", store, *big, "-q")
    assert_equal(read(store), expected, exact=False)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".s3") and ".adcat-" in p.name]


def test_plan_and_json_record(run_adcat, tmp_path):
    """`inspect --json` shows the append step with its options and inputs."""
    A, B = [batch(0, 5)], [batch(1, 4)]
    store = build_store(run_adcat, tmp_path, A, "h5ad", "adcat", {"label": "batch"}, ["a"])
    b = write(B[0], tmp_path / "b.h5ad", "h5ad")
    run_adcat("append", store, b, "--label", "batch", "--keys", "b", "-q")
    doc = json.loads(run_adcat("inspect", store, "--json").stdout)
    step = doc["provenance"]["history"][-1]
    assert step["command"] == "append" and step["options"]["label"] == "batch"
    assert step["inputs"] == [{"key": "b", "path": str(b), "n_obs": 4, "n_vars": len(GENES)}]


def test_python_api(tmp_path):
    """`adcat.append` with a mapping of keys; refusals raise NotImplementedError and
    leave the store as it was; the dropped uns keys are a UserWarning."""
    import adcat

    A, B = [batch(0, 5)], [batch(1, 4), batch(2, 3)]
    store = write(concat_at_once(A, label="batch", keys=["a"], uns_merge="same"), tmp_path / "s.zarr", "zarr")
    paths = {f"b{j}": write(b, tmp_path / f"b{j}.h5ad", "h5ad") for j, b in enumerate(B)}
    with pytest.warns(UserWarning, match="uns keys"):
        adcat.append(store, paths, label="batch", progress=False)
    assert_equal(read(store), concat_at_once([*A, *B], label="batch", keys=["a", "b0", "b1"]), exact=False)
    f64 = batch(3, 2, dtype=np.float64)
    before = tree_digest(store)
    f64.raw = None
    with pytest.raises(adcat.AdcatNotImplementedError, match="raw would be dropped"):
        adcat.append(store, [write(f64, tmp_path / "x.h5ad", "h5ad")], label="batch", keys=["x"], progress=False)
    assert tree_digest(store) == before
    with pytest.raises(adcat.AdcatFileNotFoundError):
        adcat.append(tmp_path / "missing.zarr", list(paths.values()), progress=False)
    # A cell selection among the new inputs, as `--obs-filter`.
    C = batch(4, 9)
    adcat.append(store, {"c": write(C, tmp_path / "c.h5ad", "h5ad")}, label="batch", obs_filter="qc < 0.5", progress=False)
    picked = C[C.obs["qc"] < 0.5].copy()
    assert_equal(read(store), concat_at_once([*A, *B, picked], label="batch", keys=["a", "b0", "b1", "c"]), exact=False)


def test_var_names_fix_the_store_genes(run_adcat, tmp_path):
    """`--var-names` with the store's genes: the new inputs' extra genes are dropped and
    the ones they lack filled, under either join; any other list is refused."""
    from test_var_names import concat_fixed

    A = [batch(0, 6), batch(1, 5)]
    B = [batch(10, 4, GENES[3:] + ["extra"]), batch(11, 3, GENES[::-1])]
    store = build_store(run_adcat, tmp_path, A, "zarr", "adcat", {"label": "batch"}, ["a0", "a1"])
    names = tmp_path / "genes.txt"
    names.write_text("".join(f"{g}\n" for g in GENES))
    paths = [write(b, tmp_path / f"b{i}.h5ad", "h5ad") for i, b in enumerate(B)]
    proc = run_adcat("append", store, *paths, "--var-names", names, "--label", "batch", "--keys", "b0,b1")
    expected = concat_fixed([*A, *B], GENES, label="batch", keys=["a0", "a1", "b0", "b1"])
    assert_equal(read(store), expected, exact=False)
    assert f"adcat: {paths[0]}: 27 matched, 3 filled, 1 dropped" in proc.stderr
    other = tmp_path / "other.txt"
    other.write_text("".join(f"{g}\n" for g in GENES[::-1]))
    msg = refusal(run_adcat, store, paths[0], "--var-names", other, "--label", "batch", "--keys", "c")
    assert "/var has 30 names, which --var-names must list in their order" in msg


def test_write_failure_leaves_the_store_as_it_was(run_adcat, tmp_path, big):
    """A failed write (a file-size limit standing in for a full disk) while growing an
    h5ad copy: one error line naming the store, the store byte-identical, nothing left."""
    import resource

    store = tmp_path / "s.h5ad"
    run_adcat("generate", store, "--cells", "3000", "--genes", "1500", "--seed", "10", "-q")
    before = tree_digest(store)
    limit = store.stat().st_size + (2 << 20)

    def limit_fsize():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    argv = [str(require_adcat()), "append", str(store), *map(str, big), "-q"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=_adcat_env(), preexec_fn=limit_fsize, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"adcat: error: {store}: "), proc.stderr
    assert tree_digest(store) == before
    assert not [p.name for p in tmp_path.iterdir() if ".adcat-" in p.name]


# Runs inside its own user and mount namespaces (`unshare -rm`, no root needed): mounts a
# tmpfs of SIZE bytes at MNT, copies STORE into it, appends INPUTS there with adcat, and
# prints what a test needs to know, as JSON (the tmpfs is gone when this exits).
DISK_FULL = r"""
import json, subprocess, shutil, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_errors import tree_digest
mnt, size, store, adcat, *inputs = sys.argv[2:]
subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt], check=True)
dest = Path(mnt) / Path(store).name
(shutil.copytree if Path(store).is_dir() else shutil.copy2)(store, dest)
before = tree_digest(dest)
proc = subprocess.run([adcat, "append", str(dest), *inputs, "-q"], capture_output=True, text=True)
print(json.dumps({"rc": proc.returncode, "stderr": proc.stderr, "same": tree_digest(dest) == before,
                  "left": sorted(p.name for p in Path(mnt).iterdir() if p != dest)}))
"""


def stored_size(path: Path) -> int:
    """Bytes a copy of `path` takes on tmpfs (whole pages per file)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in files)


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_disk_full_on_a_small_tmpfs_leaves_the_store_as_it_was(run_adcat, tmp_path, big, fmt):
    """The store on a tmpfs with little room to spare: the append runs out of space
    (h5ad: copying the store; zarr: writing the new chunks) and fails with one error
    line naming the store; the store is byte-identical and nothing is left beside it."""
    import shutil
    import sys

    unshare = shutil.which("unshare")
    assert unshare, "the disk-full test needs util-linux's `unshare` (user and mount namespaces) to mount a tmpfs"
    store = tmp_path / f"s{FORMATS[fmt]}"
    run_adcat("generate", store, "--cells", "3000", "--genes", "1500", "--seed", "10", "-q")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    size = stored_size(store) + (256 << 10)
    here = Path(__file__).resolve().parent
    argv = [unshare, "-rm", sys.executable, "-c", DISK_FULL, str(here), str(mnt), str(size), str(store), str(require_adcat()), *map(str, big)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=_adcat_env(), timeout=300)
    assert proc.returncode == 0, f"could not run the append on a tmpfs: {proc.stderr}"
    got = json.loads(proc.stdout)
    assert got["rc"] == 1, got["stderr"]
    lines = [line for line in got["stderr"].splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("adcat: error: ") and f"s{FORMATS[fmt]}" in lines[0] and "panicked" not in got["stderr"], got["stderr"]
    assert "space" in lines[0].lower(), lines[0]
    assert got["same"], "the append changed the store"
    assert got["left"] == [], f"left beside the store: {got['left']}"


def test_store_behind_a_symlink(run_adcat, tmp_path):
    """Appending through a symbolic link grows the store it points at; the link stays."""
    A, B = [batch(0, 5)], [batch(1, 4)]
    real = write(concat_at_once(A), tmp_path / "real.zarr", "zarr")
    link = tmp_path / "link.zarr"
    link.symlink_to(real)
    run_adcat("append", link, write(B[0], tmp_path / "b.h5ad", "h5ad"), "-q")
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert_equal(read(real), concat_at_once([*A, *B]), exact=False)


def test_stale_record_does_not_number_keys(run_adcat, tmp_path):
    """After an append with --no-provenance the record no longer describes the store,
    so default keys are not continued from it: --keys is asked for instead of repeating
    a key (which would repeat cell names under --index-unique)."""
    paths = [write(batch(i, 4), tmp_path / f"in{i}.h5ad", "h5ad") for i in range(4)]
    store = tmp_path / "s.zarr"
    run_adcat("concat", *paths[:2], "-o", store, "--index-unique", "-", "-q")
    run_adcat("append", store, paths[2], "--index-unique", "-", "--no-provenance", "-q")
    assert read(store).obs_names[-1].endswith("-2")
    msg = refusal(run_adcat, store, paths[3], "--index-unique", "-")
    assert "--keys" in msg


@pytest.mark.parametrize("fmt", ["h5ad", "zarr", "zarr2"])
def test_new_and_retyped_columns(run_adcat, tmp_path, fmt):
    """Under an outer join, columns new in the inputs are added (the store's cells get
    missing values) and store columns the inputs lack or type differently change type
    as concatenating at once changes them: the store's rows are rewritten for those
    columns only."""
    A = [batch(0, 6), batch(1, 5)]
    B = [batch(10, 4), batch(11, 3)]
    for j, b in enumerate(B):
        b.obs["new_float"] = np.arange(b.n_obs, dtype=np.float64) + j
        b.obs["new_int"] = np.arange(b.n_obs) + 10 * j
        b.obs["new_cat"] = pd.Categorical(["x", "y", "x", "z"][: b.n_obs])
        b.obs["n_genes"] = b.obs["n_genes"].astype(np.float32)  # int64 in the store
        del b.obs["qc"]  # float in the store: missing for the new cells
    B[1].obs["cell_type"] = B[1].obs["cell_type"].astype(str).to_numpy()  # categorical -> strings
    got, _, _ = check_append(run_adcat, tmp_path, A, B, fmt, "adcat", join="outer")
    assert list(got.obs.columns)[-1] == "batch"


def test_inputs_from_old_anndata(run_adcat, tmp_path, archives):
    """Inputs written by anndata 0.5 (var as a record array) are read as concat reads
    them, also for the gene list and the provenance record."""
    src = archives / "v0.5.0" / "adata.h5ad"
    store = tmp_path / "s.zarr"
    kw = ["--index-unique", "-", "--label", "b", "-q"]
    run_adcat("concat", src, "-o", store, "--keys", "s", *kw)
    run_adcat("append", store, src, "--keys", "x", *kw)
    a = read(src)
    assert_equal(read(store), concat_at_once([a, a], keys=["s", "x"], index_unique="-", label="b"), exact=False)
    assert record(store)["history"][-1]["inputs"][0]["n_vars"] == a.n_vars


def test_obs_filter_and_names_select_the_new_cells(run_adcat, tmp_path):
    """`--obs-filter` and `--obs-names` select among the new inputs' cells (as pandas
    selects them); the store's cells all stay."""
    A = [batch(0, 6), batch(1, 5)]
    B = [batch(10, 9), batch(11, 8)]
    kw = {"label": "batch", "index_unique": "-"}
    store = build_store(run_adcat, tmp_path, A, "zarr", "adcat", kw, ["a0", "a1"])
    paths = [write(b, tmp_path / f"b{i}.h5ad", "h5ad") for i, b in enumerate(B)]
    expr = "qc > 0.3 and cell_type in ['B']"
    proc = run_adcat("append", store, *paths, "--obs-filter", expr, "--keys", "b0,b1", *opts_args(kw))
    sel = [b[(b.obs["qc"] > 0.3) & (b.obs["cell_type"] == "B")].copy() for b in B]
    assert 0 < sel[0].n_obs < B[0].n_obs
    assert_equal(read(store), concat_at_once([*A, *sel], keys=["a0", "a1", "b0", "b1"], **kw), exact=False)
    assert f"adcat: {paths[0]}: kept {sel[0].n_obs} of 9 cells" in proc.stderr
    # Names as in the output (with the --index-unique suffix); a store cell's name
    # selects nothing new and the store keeps its cells.
    C = batch(20, 6)
    names = tmp_path / "names.txt"
    names.write_text("b20-c1-c0\nb20-c4-c0\nb0-c0-a0\n")
    run_adcat("append", store, write(C, tmp_path / "c.h5ad", "h5ad"), "--obs-names", names, "--keys", "c0", *opts_args(kw), "-q")
    expected = concat_at_once([*A, *sel, C[["b20-c1", "b20-c4"]].copy()], keys=["a0", "a1", "b0", "b1", "c0"], **kw)
    assert_equal(read(store), expected, exact=False)
    step = record(store)["history"][-1]
    assert step["command"] == "append" and step["inputs"][0]["kept_obs"] == 2


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_dtype_promotion_rewrites_only_that_element(run_adcat, tmp_path, fmt):
    """A float64 batch appended to a float32 store: X becomes float64 as concatenating
    at once makes it (the store's values rewritten in the wider type); the rest grows."""
    A = [batch(0, 6, X="dense"), batch(1, 5, X="dense")]
    B = [batch(10, 4, X="dense", dtype=np.float64)]
    got, _, _ = check_append(run_adcat, tmp_path, A, B, fmt, "anndata")
    assert got.X.dtype == np.float64


@pytest.mark.parametrize("merge", [None, "first"])
def test_var_key_matches_the_new_inputs_by_column(run_adcat, tmp_path, merge):
    """A store built with `--var-key gene_ids` (its index is in Ensembl ids; with no
    merge it has no gene_ids column) grows by a symbol-indexed input matched by its
    gene_ids column, equal to concatenating all inputs at once by that column."""
    from test_var_names import keyed, mixed_id_inputs

    adatas = mixed_id_inputs()
    paths = [write(a, tmp_path / f"in{i}.h5ad", "h5ad") for i, a in enumerate(adatas)]
    store = tmp_path / "store.zarr"
    kw = ["--join", "outer", "--var-key", "gene_ids", *(["--merge", merge] if merge else [])]
    run_adcat("concat", *paths[:2], "-o", store, *kw, "-q")
    store_var = list(read(store).var_names)
    proc = run_adcat("append", store, paths[2], *kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        B = keyed([adatas[2]], "gene_ids")
        expected = ad.concat(keyed(adatas, "gene_ids"), join="outer", merge=merge)
    expected = expected[:, outer_order(store_var, B)].copy()
    got = read(store)
    assert_equal(got, expected, exact=False)
    assert got.var_names[0].startswith("ENSG")
    assert f"adcat: {paths[2]}: " in proc.stderr


@pytest.mark.parametrize("fmt", ["h5ad", "zarr", "zarr2"])
def test_raw_gains_genes_under_outer_join(run_adcat, tmp_path, fmt):
    """raw's var follows the rule for var: the store's raw genes keep their order, new
    ones follow (raw/X widens, missing genes are 0); an inner join that would drop the
    store's raw genes is refused."""
    A = [batch(0, 6), batch(1, 5)]
    B = []
    for j, genes in enumerate([RAW_GENES[3:] + ["r99", "r50"], RAW_GENES + ["r77"]]):
        b = batch(10 + j, 4)
        rng = np.random.default_rng(j)
        b.raw = ad.AnnData(X=sparse.csr_matrix(rng.random((4, len(genes))).astype(np.float32)), obs=b.obs[[]], var=pd.DataFrame(index=genes))
        B.append(b)
    kw = {"join": "outer", "label": "batch", "uns_merge": "same"}
    store = build_store(run_adcat, tmp_path, A, fmt, "adcat", kw, ["a0", "a1"])
    paths = [write(b, tmp_path / f"b{i}.h5ad", "h5ad") for i, b in enumerate(B)]
    msg = refusal(run_adcat, store, *paths, "--keys", "b0,b1", "--label", "batch", "--uns-merge", "same")
    assert "/raw/var would lose names" in msg and "lacks 3 of the store's 12 raw/var names" in msg
    run_adcat("append", store, *paths, "--keys", "b0,b1", *opts_args(kw), "-q")
    expected = concat_at_once([*A, *B], keys=["a0", "a1", "b0", "b1"], **kw)
    raw = expected.raw.to_adata()
    expected.raw = raw[:, RAW_GENES + ["r99", "r50", "r77"]].copy()
    got = read(store)
    assert list(got.raw.var_names) == RAW_GENES + ["r99", "r50", "r77"]
    assert_equal(got, expected, exact=False)


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_obsm_dataframe_grows_like_obs(run_adcat, tmp_path, fmt):
    """An obsm dataframe grows as obs does: columns grow, categories join, a column new
    in the inputs (outer join) is added with missing values for the store's cells."""
    def with_frame(a, i, extra=False):
        rng = np.random.default_rng(i)
        df = pd.DataFrame({"score": rng.random(a.n_obs), "region": pd.Categorical(rng.choice(["x", "y"] if i < 10 else ["w", "y"], a.n_obs))}, index=a.obs_names)
        if extra:
            df["depth"] = rng.integers(0, 5, a.n_obs)
        a.obsm["meta"] = df
        return a

    A = [with_frame(batch(0, 6), 0), with_frame(batch(1, 5), 1)]
    B = [with_frame(batch(10, 4), 10, extra=True), with_frame(batch(11, 3), 11)]
    got, _, _ = check_append(run_adcat, tmp_path, A, B, fmt, "adcat", join="outer")
    assert list(got.obsm["meta"].columns) == ["score", "region", "depth"]


def test_new_elements_take_the_store_codec(run_adcat, tmp_path):
    """What an append creates (a new obs column, a new obsm entry, the replaced var)
    is compressed with the store's codec, not the format's default."""
    A = [batch(0, 6), batch(1, 5)]
    B = [batch(10, 4)]
    B[0].obs["new_float"] = np.arange(4, dtype=np.float64)
    B[0].obsm["X_umap"] = np.zeros((4, 2))
    paths = [write(a, tmp_path / f"a{i}.h5ad", "h5ad") for i, a in enumerate(A)]
    store = tmp_path / "s.zarr"
    run_adcat("concat", *paths, "-o", store, "--compression", "gzip:4", "--join", "outer", "-q")
    run_adcat("append", store, write(B[0], tmp_path / "b.h5ad", "h5ad"), "--join", "outer", "-q")
    assert_equal(read(store), concat_at_once([*A, *B], join="outer"), exact=False)
    for el in ["obs/new_float", "obsm/X_umap", "var/_index", "obs/qc"]:
        arr = store / el / "values" if (store / el / "values").is_dir() else store / el
        meta = (arr / "zarr.json").read_text()
        assert "gzip" in meta and "zstd" not in meta, (el, meta)


@pytest.mark.parametrize("version", ["v0.7.0", "v0.11.4"])
@pytest.mark.parametrize("ext", ["h5ad", "zarr"])
def test_stores_of_older_anndata_grow(run_adcat, tmp_path, archives, version, ext):
    """anndata's own archives (obsm dataframes, neighbor graphs in obsp, raw, a
    string-array index) converted to a store, then appended to: equal to
    anndata.concat of both at once; the store's obsp is dropped with a warning, as at
    once."""
    src = archives / version / f"adata.{ext}"
    store = tmp_path / f"s.{ext}"
    run_adcat("convert", src, store, "-q")
    proc = run_adcat("append", store, src, "--join", "outer")
    a = read(src)
    expected = concat_at_once([a, a], join="outer")
    got = read(store)
    assert_equal(got, expected, exact=False)
    if len(a.obsp):
        assert "the store's obsp" in proc.stderr and not len(got.obsp)


@pytest.mark.parametrize("ext", ["h5ad", "zarr"])
def test_scanpy_output_grows(run_adcat, tmp_path, pbmc68k_reduced, ext):
    """scanpy's pbmc68k_reduced (anndata 0.6 era: PCA and UMAP in obsm, a neighbor
    graph, raw, categorical clusters, uns) converted to a store and appended to with
    itself, uns merged with `same`: equal to anndata.concat of both at once."""
    store = tmp_path / f"s.{ext}"
    run_adcat("convert", pbmc68k_reduced, store, "-q")
    run_adcat("append", store, pbmc68k_reduced, "--uns-merge", "same", "--join", "outer", "-q")
    a = read(pbmc68k_reduced)
    assert_equal(read(store), concat_at_once([a, a], uns_merge="same", join="outer"), exact=False)


def test_review_cases(run_adcat, tmp_path):
    """A non-zero --fill-value for genes new to a CSR store is refused (at once it is
    stored in the store's rows); --var-key against a store indexed in other terms is
    refused; the suggested command for a store without a record runs."""
    import shlex

    A = [batch(0, 6), batch(1, 5)]
    store = build_store(run_adcat, tmp_path, A, "zarr", "adcat", {"label": "batch"}, ["a0", "a1"])
    wide = write(batch(10, 4, GENES + ["new"]), tmp_path / "wide.h5ad", "h5ad")
    msg = refusal(run_adcat, store, wide, "--join", "outer", "--fill-value", "-1", "--label", "batch", "--keys", "w")
    assert "/X would gain 1 genes" in msg and "--fill-value -1" in msg
    ids = batch(11, 4)
    ids.var["gene_ids"] = [f"ENSG{i:05d}" for i in range(len(GENES))]
    msg = refusal(run_adcat, store, write(ids, tmp_path / "ids.h5ad", "h5ad"), "--var-key", "gene_ids", "--join", "outer", "--label", "batch", "--keys", "i")
    assert "/var has none of the names the new inputs' column `gene_ids` holds" in msg
    plain = write(concat_at_once(A), tmp_path / "plain.h5ad", "h5ad")
    msg = refusal(run_adcat, plain, wide, "--label", "batch", "--keys", "b")
    words = shlex.split(msg.split("instead: ")[1])
    assert words[:4] == ["adcat", "concat", str(plain), str(wide)] and words[words.index("--keys") + 1] == "0,b"
    out = tmp_path / "new.h5ad"
    run_adcat(*[str(out) if w == "NEW.h5ad" else w for w in words[1:]], "-q")
    assert list(read(out).obs["batch"].cat.categories) == ["0", "b"]


@pytest.mark.parametrize("codec", ["bz2", "zlib"])
def test_zarr2_store_with_numcodecs_codecs(run_adcat, tmp_path, codec):
    """A zarr v2 store whose X/data is compressed with numcodecs BZ2 (read, never
    written by adcat: what the append creates takes the format's default) or Zlib
    (written as gzip) grows, equal to concatenating at once."""
    import numcodecs
    import zarr

    A = [batch(0, 6), batch(1, 5)]
    paths = [write(a, tmp_path / f"a{i}.h5ad", "h5ad") for i, a in enumerate(A)]
    store = tmp_path / "s.zarr"
    run_adcat("concat", *paths, "-o", store, "--zarr-format", "2", "--join", "outer", "-q")
    g = zarr.open_group(store, mode="r+", zarr_format=2)
    data = g["X/data"][:]
    chunks = g["X/data"].chunks
    del g["X/data"]
    g["X"].create_array("data", data=data, chunks=chunks, compressors={"bz2": numcodecs.BZ2(), "zlib": numcodecs.Zlib()}[codec])
    zarr.consolidate_metadata(store, zarr_format=2)
    B = [batch(10, 4, X="csr", dtype=np.float64)]
    B[0].obsm["X_umap"] = np.zeros((4, 2))
    run_adcat("append", store, write(B[0], tmp_path / "b.h5ad", "h5ad"), "--join", "outer", "-q")
    assert_equal(read(store), concat_at_once([*A, *B], join="outer"), exact=False)


def with_graph(a: ad.AnnData, seed: int, keys=("distances", "connectivities")) -> ad.AnnData:
    for j, k in enumerate(keys):
        a.obsp[k] = sparse.random(a.n_obs, a.n_obs, density=0.3, format="csr", dtype=np.float32, random_state=seed * 10 + j)
    return a


@pytest.mark.parametrize("fmt", ["h5ad", "zarr", "zarr2"])
def test_pairwise_grows_obsp_block_diagonally(run_adcat, tmp_path, fmt):
    """--pairwise: each obsp key gains the new inputs' block after the store's, equal
    to concatenating at once with pairwise=True; under an outer join a key only the new
    inputs have gets an empty store block; under an inner join a store key the inputs
    lack is refused."""
    A = [with_graph(batch(0, 6), 0), with_graph(batch(1, 5), 1)]
    B = [with_graph(batch(10, 4), 10, keys=("distances", "connectivities", "extra")), with_graph(batch(11, 3), 11)]
    got, _, store = check_append(run_adcat, tmp_path, A, B, fmt, "adcat", join="outer", pairwise=True)
    assert set(got.obsp) == {"distances", "connectivities", "extra"}
    lacking = write(with_graph(batch(12, 4), 12, keys=("distances",)), tmp_path / "lacking.h5ad", "h5ad")
    msg = refusal(run_adcat, store, lacking, "--pairwise", "--label", "batch", "--keys", "l", "--index-unique", "-", "--uns-merge", "same")
    assert "/obsp/connectivities would be dropped" in msg


def test_var_filter_selects_the_new_genes(run_adcat, tmp_path):
    """`--var-filter` keeps the new inputs' genes that pass it (as `b[:, mask]`); the
    store's genes stay, so under an outer join a store gene an input filters out is
    filled for its cells, and new genes that pass are added."""
    A = [batch(0, 6), batch(1, 5)]
    B = [batch(10, 4, GENES + ["n1", "n2"]), batch(11, 3, GENES[5:] + ["n3"])]
    for j, b in enumerate(B):
        b.var["hv"] = np.random.default_rng(j).random(b.n_vars) < 0.6
    kw = {"join": "outer", "label": "batch", "uns_merge": "same"}
    store = build_store(run_adcat, tmp_path, A, "zarr", "adcat", kw, ["a0", "a1"])
    paths = [write(b, tmp_path / f"b{i}.h5ad", "h5ad") for i, b in enumerate(B)]
    proc = run_adcat("append", store, *paths, "--var-filter", "hv == true", "--keys", "b0,b1", *opts_args(kw))
    picked = [b[:, b.var["hv"].to_numpy()].copy() for b in B]
    expected = concat_at_once([*A, *picked], keys=["a0", "a1", "b0", "b1"], **kw)
    expected = expected[:, outer_order(GENES, picked)].copy()
    assert_equal(read(store), expected, exact=False)
    assert f"adcat: {paths[0]}: kept {picked[0].n_vars} of 32 genes" in proc.stderr
    assert record(store)["history"][-1]["inputs"][0]["kept_vars"] == picked[0].n_vars
