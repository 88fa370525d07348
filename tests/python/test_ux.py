"""The user-facing side of adcat checked against anndata and the terminal:

* ``adcat plan`` / ``concat --dry-run`` (text and JSON): the planned shape and elements
  match what ``anndata.concat`` produces, dropped keys and promotions are named, and
  nothing is written;
* inputs at scale: ``KEY=PATH``, glob patterns and ``--inputs-from`` give the same
  result as ``anndata.concat(..., keys=...)``;
* ``inspect --json``, ``completions``, the man page, ``-v`` timings;
* the progress display in a pseudo-terminal appears and ends cleanly.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from conftest import _adcat_env, require_adcat
from test_errors import tree_digest


def make(n, genes, prefix, seed=0, X_dtype=np.float32, layers=("counts",), obsm=("pca",)):
    rng = np.random.default_rng(seed)
    X = sparse.random(n, len(genes), density=0.3, format="csr", dtype=np.float64, random_state=seed).astype(X_dtype)
    a = ad.AnnData(X=X, obs=pd.DataFrame(index=[f"{prefix}{i}" for i in range(n)]), var=pd.DataFrame(index=list(genes)))
    a.obs["q"] = rng.random(n)
    a.obs[f"only_{prefix}"] = np.arange(n)
    for k in layers:
        a.layers[k] = X.copy()
    for k in obsm:
        a.obsm[k] = rng.random((n, 3))
    return a


def write(a, p: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.write_h5ad(p) if p.suffix == ".h5ad" else a.write_zarr(p)
    return p


def read(p: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.read_h5ad(p) if p.suffix == ".h5ad" else ad.read_zarr(p)


@pytest.fixture
def inputs(tmp_path):
    a = make(30, [f"g{i}" for i in range(10)], "a", 0, layers=("counts", "spliced"), obsm=("pca", "umap"))
    b = make(20, [f"g{i}" for i in range(4, 14)], "b", 1, X_dtype=np.int32, obsm=("pca",))
    return [write(a, tmp_path / "a.h5ad"), write(b, tmp_path / "b.zarr")]


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_plan_matches_anndata(tmp_path, run_adcat, inputs, join):
    before = {p: tree_digest(p) for p in inputs}
    out = tmp_path / "out.h5ad"
    proc = run_adcat("plan", *inputs, "-o", out, "--join", join, "--json", "--label", "batch")
    plan = json.loads(proc.stdout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat([read(p) for p in inputs], join=join, label="batch")
    assert plan["shape"] == list(expected.shape)
    elements = {e["path"]: e for e in plan["elements"]}
    assert elements["/X"]["shape"] == list(expected.X.shape)
    assert elements["/X"]["dtype"] == str(expected.X.dtype)
    assert sorted(p for p in elements if p.startswith("/layers/")) == sorted(f"/layers/{k}" for k in expected.layers if k is not None)  # 0.13: X is layers[None]
    assert sorted(p for p in elements if p.startswith("/obsm/")) == sorted(f"/obsm/{k}" for k in expected.obsm)
    for k, v in expected.obsm.items():
        assert elements[f"/obsm/{k}"]["shape"] == list(v.shape)
    assert elements["/obs"]["shape"] == [expected.n_obs, expected.obs.shape[1]]
    decisions = {d["path"]: d["decision"] for d in plan["decisions"]}
    assert "float32 + int32" in decisions["/X"], decisions["/X"]  # promotion named
    assert "reindexed" in decisions["/X"]
    if join == "inner":
        assert decisions["/layers/spliced"].startswith("dropped"), decisions
        assert decisions["/obsm/umap"].startswith("dropped"), decisions
        assert decisions["/obs/only_a"].startswith("dropped"), decisions
    assert plan["estimated_output_bytes"] > 0
    assert plan["resident_bytes"] < plan["estimated_peak_memory_bytes"] <= (64 << 20) + plan["resident_bytes"] + plan["max_memory_bytes"]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "adcat" in p.name], "plan left files behind"
    for p in inputs:
        assert tree_digest(p) == before[p]


def test_dry_run_text(tmp_path, run_adcat, inputs):
    out = tmp_path / "out.zarr"
    proc = run_adcat("concat", *inputs, "-o", out, "--dry-run", "--join", "outer")
    text = proc.stdout
    assert "output: 50 obs x 14 var" in text
    assert "/X" in text and "csr_matrix float64" in text
    assert "nothing was written" in text
    assert not out.exists()


def test_inputs_at_scale(tmp_path, run_adcat, inputs):
    # KEY=PATH arguments, a pattern, and a list file all give anndata's keyed result.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat({"x": read(inputs[0]), "y": read(inputs[1])}, label="batch", index_unique="-")
    out1 = tmp_path / "o1.h5ad"
    run_adcat("concat", f"x={inputs[0]}", f"y={inputs[1]}", "-o", out1, "--label", "batch", "--index-unique", "-")
    lst = tmp_path / "inputs.tsv"
    lst.write_text(f"# two inputs\nx\t{inputs[0].name}\n\ny\t{inputs[1].name}\n")
    out2 = tmp_path / "o2.h5ad"
    run_adcat("concat", "--inputs-from", lst, "-o", out2, "--label", "batch", "--index-unique", "-")
    for out in (out1, out2):
        got = read(out)
        assert list(got.obs_names) == list(expected.obs_names)
        assert list(got.obs["batch"].cat.categories) == ["x", "y"]
    # A pattern expands in sorted order.
    for i in range(3):
        write(make(5, ["g0", "g1"], f"p{i}", i), tmp_path / f"part_{i}.h5ad")
    out3 = tmp_path / "o3.h5ad"
    run_adcat("concat", str(tmp_path / "part_*.h5ad"), "-o", out3)
    assert list(read(out3).obs_names) == [f"p{i}{j}" for i in range(3) for j in range(5)]
    proc = run_adcat("concat", str(tmp_path / "nothing_*.h5ad"), "-o", tmp_path / "o4.h5ad", expect_success=False)
    assert proc.returncode == 1 and "matches no file" in proc.stderr


def test_inspect_json_and_sizes(tmp_path, run_adcat, inputs):
    doc = json.loads(run_adcat("inspect", "--json", inputs[0]).stdout)
    assert doc["format"] == "HDF5"
    nodes = {}

    def walk(n):
        nodes[n["path"]] = n
        for c in n["children"]:
            walk(c)

    walk(doc["root"])
    x = nodes["/X"]
    assert x["encoding"] == "csr_matrix 0.1.0" and x["shape"] == [30, 10]
    assert x["bytes"] == sum(nodes[f"/X/{k}"]["bytes"] for k in ("data", "indices", "indptr"))
    assert nodes["/X/data"]["bytes"] == x["nnz"] * 4
    assert all(n["stored"] is not None for n in nodes.values() if n["kind"] == "array")
    text = run_adcat("inspect", inputs[1]).stdout
    assert "size=" in text and "stored" in text


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completions(run_adcat, shell):
    out = run_adcat("completions", shell).stdout
    assert "adcat" in out and "concat" in out and "max-memory" in out


def test_man_page(run_adcat):
    out = run_adcat("man").stdout
    assert out.startswith(".ie") or out.startswith(".TH"), out[:80]
    assert "adcat" in out and "concat" in out


def test_verbose_timings(tmp_path, run_adcat, inputs):
    proc = run_adcat("-v", "concat", *inputs, "-o", tmp_path / "out.h5ad")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("adcat: /")]
    paths = [line.split(":")[1].strip() for line in lines]
    # Each element once, when its tasks run: X, layers, obsm, and every obs column.
    assert "/X" in paths and "/obs/_index" in paths and "/obs/q" in paths, proc.stderr
    assert len(paths) == len(set(paths)), proc.stderr
    assert all(line.rstrip().endswith(" s") for line in lines), lines


def test_progress_in_a_terminal(tmp_path, run_adcat):
    src = tmp_path / "big.h5ad"
    run_adcat("generate", src, "--cells", "40000", "--genes", "2000")
    out = tmp_path / "out.zarr"
    master, slave = pty.openpty()
    env = _adcat_env()
    env["COLUMNS"] = "100"
    proc = subprocess.Popen(
        [str(require_adcat()), "convert", str(src), str(out), "--max-memory", "8MiB"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert "ETA" in text and "/X" in text, f"no progress display: {text[:500]!r}"
    # The display is cleared at the end: the last thing written erases the bar lines.
    tail = text[-200:]
    assert "\x1b[2K" in tail or "\x1b[K" in tail or "\x1b[J" in tail, repr(tail)
    assert "panicked" not in text
    assert out.exists()
