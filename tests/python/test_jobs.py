"""The job protocol (`adcat job create/run/status/finish`): every task in its own
process, in shuffled order, one run twice and one killed mid-write; the published output
must equal `anndata.concat` of the inputs and the output of a single `adcat concat`."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from anndata.tests.helpers import assert_equal
from conftest import require_adcat
from scipy import sparse
from test_concat import FORMATS, assert_same_dtypes, cli_args, read, write


def make_inputs(n_obs=(60, 45, 70), seed=0):
    """Inputs whose vars overlap partly (every join reindexes), with layers, obsm, raw
    and uns (some keys equal in every input, some not)."""
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(40)]
    out = []
    for i, n in enumerate(n_obs):
        var = genes[i * 4 : i * 4 + 30]
        m = len(var)
        dense = ((rng.random((n, m)) < 0.3) * rng.integers(1, 9, (n, m))).astype(np.float32)
        a = ad.AnnData(
            X=sparse.csr_matrix(dense),
            obs=pd.DataFrame(
                {"batch": pd.Categorical(rng.choice(["x", "y", f"z{i}"], n)), "q": rng.random(n)},
                index=[f"c{j}" for j in range(n)],
            ),
            var=pd.DataFrame(index=var),
        )
        a.layers["counts"] = sparse.csr_matrix(dense.astype(np.int32))
        a.layers["dense"] = dense * 2
        a.obsm["X_pca"] = rng.random((n, 5 + i))
        a.raw = a.copy()
        a.uns["shared"] = {"k": 3, "v": np.arange(4.0), "own": f"in{i}"}
        a.uns["colors"] = np.array(["red", "blue"], dtype=object)
        a.uns[f"only{i}"] = rng.random(3)
        out.append(a)
    return out


def job_paths(tmp_path: Path, adatas, in_fmt="zarr"):
    return [write(a, tmp_path / f"in{i}{FORMATS[in_fmt]}", in_fmt) for i, a in enumerate(adatas)]


def status(run_adcat, jobdir):
    return json.loads(run_adcat("job", "status", jobdir, "--json").stdout)


def plan_of(jobdir: Path):
    return json.loads((jobdir / "job.json").read_text())["plan"]


def expected_of(paths, tmp_path, out_fmt, kw):
    expected = ad.concat([read(p) for p in paths], **kw)
    return read(write(expected, tmp_path / f"expected{FORMATS[out_fmt]}", out_fmt)), expected


@pytest.mark.parametrize("out_fmt", ["zarr", "zarr2", "h5ad"])
@pytest.mark.parametrize("join", ["inner", "outer"])
def test_tasks_in_separate_processes_shuffled(run_adcat, tmp_path, out_fmt, join):
    paths = job_paths(tmp_path, make_inputs(seed=len(join)))
    uns_merge = {"inner": "same", "outer": "unique"}[join]
    kw = {"join": join, "label": "src", "keys": ["a", "b", "c"], "index_unique": "-", "uns_merge": uns_merge}
    opts = [*cli_args(kw), "--task-size", "2KiB", "--max-memory", "1MiB"]
    if out_fmt == "zarr2":
        opts += ["--zarr-format", "2"]
    if out_fmt == "h5ad":
        opts += ["--compression", "gzip:3"]
    out, jobdir = tmp_path / f"out{FORMATS[out_fmt]}", tmp_path / "job"
    run_adcat("job", "create", *paths, "-o", out, *opts, jobdir)
    assert not out.exists(), "create published an output"
    tasks = plan_of(jobdir)["tasks"]
    n = len(tasks)
    counts = [t for t in range(n) if tasks[t]["action"] == "count"]
    writes = [t for t in range(n) if tasks[t]["action"] != "count"]
    assert len(counts) > 3 and len(writes) > 6, tasks
    st = status(run_adcat, jobdir)
    assert st == {"tasks": n, "done": [], "pending": list(range(n)), "failed": []}
    # A writing task before its counts is refused and stays pending (not failed).
    sparse_writes = [t for t in writes if tasks[t]["action"] == "sparse"]
    p = run_adcat("job", "run", jobdir, "--task", sparse_writes[0], expect_success=False)
    assert p.returncode != 0 and "count tasks" in p.stderr, p.stderr
    assert status(run_adcat, jobdir)["failed"] == []
    rng = random.Random(7)
    rng.shuffle(counts)
    rng.shuffle(writes)
    for t in counts + writes:
        run_adcat("job", "run", jobdir, "--task", t)
    # Run one writing task again (its record removed): the same bytes are written.
    again = writes[len(writes) // 2]
    (jobdir / "done" / f"{again}.json").unlink()
    assert again in status(run_adcat, jobdir)["pending"]
    run_adcat("job", "run", jobdir, "--tasks", f"0-{n - 1}")
    assert status(run_adcat, jobdir)["done"] == list(range(n))
    run_adcat("job", "finish", jobdir)
    got = read(out)
    roundtrip, expected = expected_of(paths, tmp_path, out_fmt, kw)
    assert_equal(roundtrip, got, exact=False)
    assert_same_dtypes(expected, got)
    single = tmp_path / f"single{FORMATS[out_fmt]}"
    run_adcat("concat", *paths, "-o", single, *opts)
    assert_equal(read(single), got, exact=False)
    assert not Path(json.loads((jobdir / "job.json").read_text())["staging"]).exists()
    if out_fmt == "h5ad":
        # The output's own compression, not the staging's.
        with h5py.File(out) as f:
            assert f["X/data"].compression == "gzip" and f["X/data"].compression_opts == 3
        assert not list(tmp_path.glob(".out.h5ad.*")), "temporary files were left behind"


def test_workers_in_parallel_with_wait(run_adcat, tmp_path):
    paths = job_paths(tmp_path, make_inputs(seed=3), in_fmt="h5ad")
    out, jobdir = tmp_path / "out.zarr", tmp_path / "job"
    opts = ["--join", "outer", "--task-size", "4KiB"]
    run_adcat("job", "create", *paths, "-o", out, *opts, jobdir)
    adcat = str(require_adcat())
    procs = [subprocess.Popen([adcat, "job", "run", str(jobdir), "--worker", f"{i}/3", "--wait"], stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    run_adcat("job", "finish", jobdir)
    roundtrip, _ = expected_of(paths, tmp_path, "zarr", {"join": "outer"})
    assert_equal(roundtrip, read(out), exact=False)


@pytest.mark.parametrize("out_fmt", ["zarr", "zarr2", "h5ad"])
def test_task_killed_mid_write_is_rerun(run_adcat, tmp_path, out_fmt):
    # One dense task large enough to be caught between two of its shard/chunk writes.
    rng = np.random.default_rng(1)
    adatas = [ad.AnnData(X=rng.random((6000, 400)).astype(np.float32), obs=pd.DataFrame(index=[f"{k}{j}" for j in range(6000)]), var=pd.DataFrame(index=[f"g{j}" for j in range(400)])) for k in "ab"]
    paths = job_paths(tmp_path, adatas)
    out, jobdir = tmp_path / f"out{FORMATS[out_fmt]}", tmp_path / "job"
    opts = ["--zarr-format", "2"] if out_fmt == "zarr2" else []
    run_adcat("job", "create", *paths, "-o", out, "--max-memory", "4MiB", *opts, jobdir)
    tasks = plan_of(jobdir)["tasks"]
    x = [t for t in range(len(tasks)) if tasks[t]["action"] == "dense"]
    assert len(x) == 1, tasks
    # An h5ad output's tasks write a zarr v3 staging store too.
    x_dir = Path(json.loads((jobdir / "job.json").read_text())["staging"]) / "X"
    metadata = {"zarr.json", ".zarray", ".zattrs", ".zgroup"}

    def written():
        return sum(1 for f in x_dir.rglob("*") if f.is_file() and f.name not in metadata) if x_dir.exists() else 0

    proc = subprocess.Popen([str(require_adcat()), "job", "run", str(jobdir), "--task", str(x[0])], stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while written() == 0 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert written() > 0, "the task wrote nothing before it was killed"
    st = status(run_adcat, jobdir)
    assert x[0] in st["pending"], st
    p = run_adcat("job", "finish", jobdir, expect_success=False)
    assert p.returncode != 0 and "not every task is done" in p.stderr
    assert not out.exists()
    run_adcat("job", "run", jobdir)
    run_adcat("job", "finish", jobdir)
    roundtrip, _ = expected_of(paths, tmp_path, out_fmt, {})
    assert_equal(roundtrip, read(out), exact=False)


@pytest.mark.parametrize("out_fmt", ["zarr", "h5ad"])
def test_awkward_elements_are_tasks(run_adcat, tmp_path, out_fmt):
    import awkward as ak
    genes = [f"g{i}" for i in range(3)]
    a, b = (ad.AnnData(X=np.ones((n, 3), np.float32), obs=pd.DataFrame(index=[f"{p}{j}" for j in range(n)]), var=pd.DataFrame(index=genes)) for p, n in (("a", 3), ("b", 2)))
    a.obsm["ragged"] = ak.Array([[1, 2], [], [3]])
    b.obsm["ragged"] = ak.Array([[0.5], [6.25, 7.0]])
    b.obsm["rec"] = ak.Array([{"x": 1.5, "s": "q"}, {"x": 2.5, "s": ""}])
    a.layers["k"] = ak.to_regular(ak.Array([[1, 2, 3]] * 3), axis=1)
    b.layers["k"] = ak.to_regular(ak.Array([[4, 5, 6]] * 2), axis=1)
    paths = job_paths(tmp_path, [a, b], in_fmt="h5ad")
    out, jobdir = tmp_path / f"out{FORMATS[out_fmt]}", tmp_path / "job"
    run_adcat("job", "create", *paths, "-o", out, "--join", "outer", jobdir)
    plan = plan_of(jobdir)
    awk = {e["path"] for e in plan["elements"] if e["kind"] == "awkward"}
    assert awk == {"obsm/ragged", "obsm/rec", "layers/k"}, plan["elements"]
    tasks = [t for t, task in enumerate(plan["tasks"]) if task["action"] == "awkward"]
    assert len(tasks) == 3
    for t in tasks + tasks[:1]:
        (jobdir / "done" / f"{t}.json").unlink(missing_ok=True)
        run_adcat("job", "run", jobdir, "--task", t)
    run_adcat("job", "run", jobdir)
    run_adcat("job", "finish", jobdir)
    roundtrip, _ = expected_of(paths, tmp_path, out_fmt, {"join": "outer"})
    got = read(out)
    assert_equal(roundtrip, got, exact=False)
    for k in ("ragged", "rec"):
        assert str(got.obsm[k].type) == str(roundtrip.obsm[k].type)


def test_changed_input_is_refused(run_adcat, tmp_path):
    adatas = make_inputs(seed=5)
    paths = job_paths(tmp_path, adatas, in_fmt="h5ad")
    out, jobdir = tmp_path / "out.zarr", tmp_path / "job"
    run_adcat("job", "create", *paths, "-o", out, jobdir)
    write(adatas[0][:10].copy(), paths[1], "h5ad")
    for cmd in (["run"], ["finish"]):
        p = run_adcat("job", *cmd, jobdir, expect_success=False)
        assert p.returncode == 1
        assert str(paths[1]) in p.stderr and "changed since the job was created" in p.stderr, p.stderr
    assert not out.exists()


def test_used_jobdir_refused(run_adcat, tmp_path):
    paths = job_paths(tmp_path, make_inputs(seed=6)[:2])
    used = tmp_path / "j2"
    used.mkdir()
    (used / "x").write_text("")
    p = run_adcat("job", "create", *paths, "-o", tmp_path / "out.zarr", used, expect_success=False)
    assert p.returncode == 1 and "not empty" in p.stderr, p.stderr
    assert not (tmp_path / "out.zarr").exists()


def test_plan_json_round_trips(run_adcat, tmp_path):
    """`adcat plan --json` carries the job plan; job.json holds the same plan."""
    paths = job_paths(tmp_path, make_inputs(seed=8))
    opts = ["--join", "outer", "--task-size", "8KiB", "--uns-merge", "same"]
    plan = json.loads(run_adcat("plan", *paths, "-o", tmp_path / "o.zarr", *opts, "--json").stdout)["job"]
    run_adcat("job", "create", *paths, "-o", tmp_path / "o.zarr", *opts, tmp_path / "job")
    assert plan_of(tmp_path / "job") == plan
    assert plan["version"] == 4
    kinds = {e["path"]: e["kind"] for e in plan["elements"]}
    matrices = {"X", "layers/counts", "layers/dense", "obsm/X_pca", "raw/X"}
    columns = {"obs/_index": "column", "obs/batch": "column", "obs/q": "column"}
    assert kinds == {**{m: "matrix" for m in matrices}, **columns, "uns": "uns"}, kinds
    # uns: planning compared the values; the task copies each kept one from its input.
    uns = next(e for e in plan["elements"] if e["kind"] == "uns")
    kept = {k: v for k, v in uns["keep"]}
    assert kept == {"colors": {"input": 0}, "shared": {"mapping": [["k", {"input": 0}], ["v", {"input": 0}]]}}, uns
    batch = next(e for e in plan["elements"] if e["path"] == "obs/batch")
    assert batch["out"]["type"] == "categorical" and len(batch["sources"]) == 3, batch


@pytest.mark.parametrize("out_fmt", ["zarr", "zarr2", "h5ad"])
def test_concat_killed_and_resumed(run_adcat, tmp_path, out_fmt):
    paths = job_paths(tmp_path, make_inputs(n_obs=(3000, 2500, 2800), seed=9), in_fmt="h5ad")
    out, jobdir = tmp_path / f"out{FORMATS[out_fmt]}", tmp_path / "job"
    opts = ["--join", "outer", "--task-size", "16KiB", "--max-memory", "1MiB", "-q"]
    if out_fmt == "zarr2":
        opts += ["--zarr-format", "2"]
    argv = [str(require_adcat()), "concat", *map(str, paths), "-o", str(out), *opts, "--job-dir", str(jobdir)]
    kills = 0
    for _ in range(3):
        # Killed at several points: after 1, then more finished tasks.
        proc = subprocess.Popen(argv + (["--resume"] if kills else []), stderr=subprocess.DEVNULL)
        target = (kills + 1) * 5
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline:
            done = jobdir / "done"
            if done.exists() and sum(1 for _ in done.iterdir()) >= target:
                break
            time.sleep(0.005)
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        assert not out.exists()
    assert kills >= 1, "the run finished before it could be killed"
    n_done = len(status(run_adcat, jobdir)["done"])
    assert n_done >= 5
    p = run_adcat("concat", *paths, "-o", out, *opts, "--job-dir", jobdir, expect_success=False)
    assert p.returncode == 1 and "--resume" in p.stderr, p.stderr
    run_adcat("concat", *paths, "-o", out, *opts, "--job-dir", jobdir, "--resume")
    assert not jobdir.exists(), "the spent job directory was left behind"
    single = tmp_path / f"single{FORMATS[out_fmt]}"
    run_adcat("concat", *paths, "-o", single, *opts)
    assert_equal(read(single), read(out), exact=False)
    if out_fmt != "h5ad":
        # Identical, not just equal: every chunk and metadata document byte for byte.
        # (HDF5 object headers carry write times, so an h5ad is compared by value.)
        files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(single) for p in single.rglob("*") if p.is_file())
        differ = [f for f in files if (out / f).read_bytes() != (single / f).read_bytes()]
        assert not differ, differ
    roundtrip, _ = expected_of(paths, tmp_path, out_fmt, {"join": "outer"})
    assert_equal(roundtrip, read(out), exact=False)


def test_resume_refuses_a_changed_input(run_adcat, tmp_path):
    adatas = make_inputs(seed=10)
    paths = job_paths(tmp_path, adatas, in_fmt="h5ad")
    out, jobdir = tmp_path / "out.zarr", tmp_path / "job"
    run_adcat("job", "create", *paths, "-o", out, jobdir)
    run_adcat("job", "run", jobdir, "--task", 0)
    write(adatas[2][:5].copy(), paths[2], "h5ad")
    p = run_adcat("concat", *paths, "-o", out, "--job-dir", jobdir, "--resume", expect_success=False)
    assert p.returncode == 1 and "changed since the job was created" in p.stderr, p.stderr
    assert not out.exists()
