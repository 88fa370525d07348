"""`adcat.dask` on a real Dask cluster: `LocalCluster(n_workers=2, threads_per_worker=1,
processes=True)`, worker processes started by the tests (127.0.0.1 only). Outputs are
compared with `anndata.concat` of the inputs and with the single-process
`adcat.concat_on_disk`; a worker is SIGKILLed mid-task, and a corrupt input must fail
the run with nothing published."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from pathlib import Path

import anndata as ad
import distributed
import numpy as np
import pandas as pd
import pytest
from anndata.tests.helpers import assert_equal
from scipy import sparse

import adcat
import adcat.dask
from test_concat import FORMATS, assert_same_dtypes, read, write
from test_jobs import make_inputs



@contextlib.contextmanager
def local_cluster(n_workers: int = 2):
    """A cluster of `n_workers` worker processes (one thread each) and its client."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # distributed's notes on ports and the dashboard
        cluster = distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
            silence_logs=50,
        )
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def client():
    with local_cluster() as c:
        yield c


def leftovers(d: Path, keep: set[str]) -> list[str]:
    """Names in `d` other than `keep`: hidden staging, temporaries, locks."""
    return sorted(p.name for p in d.iterdir() if p.name not in keep)


def mixed_inputs(tmp_path: Path, adatas) -> list[Path]:
    """h5ad, zarr v3 and zarr v2 inputs, in turn."""
    fmts = ["h5ad", "zarr", "zarr2"]
    for a in adatas:
        # anndata reads string arrays as object from h5ad and StringDType from zarr and
        # so drops them from a merged uns; adcat keeps them (docs/differences.md).
        a.uns.pop("colors", None)
    return [write(a, tmp_path / f"in{i}{FORMATS[fmts[i % 3]]}", fmts[i % 3]) for i, a in enumerate(adatas)]


@pytest.mark.parametrize(("out_fmt", "join"), [("zarr", "outer"), ("h5ad", "outer"), ("zarr2", "inner")])
def test_cluster_output_equals_anndata_and_single_process(client, tmp_path, out_fmt, join):
    paths = mixed_inputs(tmp_path, make_inputs(seed=5))
    uns_merge = {"inner": "same", "outer": "unique"}[join]
    kw = {"join": join, "label": "src", "keys": ["a", "b", "c"], "index_unique": "-", "uns_merge": uns_merge}
    write_kw = {"max_memory": "1MiB", "zarr_format": 2 if out_fmt == "zarr2" else 3}
    out = tmp_path / f"out{FORMATS[out_fmt]}"
    graph = adcat.dask.plan(paths, out, task_size="2KiB", **kw, **write_kw)
    n_tasks = sum(1 for k in graph.dask if isinstance(k, tuple) and k[0].startswith(("adcat-count", "adcat-write")))
    assert n_tasks > 10, "the job should be split into many tasks"
    assert not out.exists(), "planning published an output"
    # The planned graph is not run here: a second, identical run replaces its skeleton.
    adcat.dask.concat_on_disk(paths, out, client=client, task_size="2KiB", **kw, **write_kw)
    expected = ad.concat([read(p) for p in paths], **kw)
    roundtrip = read(write(expected, tmp_path / f"expected{FORMATS[out_fmt]}", out_fmt))
    got = read(out)
    assert_equal(roundtrip, got, exact=False)
    assert_same_dtypes(expected, got)
    single = tmp_path / f"single{FORMATS[out_fmt]}"
    adcat.concat_on_disk(paths, single, **kw, **write_kw)
    assert_equal(read(single), got, exact=False)
    names = {p.name for p in paths} | {out.name, single.name, f"expected{FORMATS[out_fmt]}"}
    assert leftovers(tmp_path, names) == []


def test_plan_is_a_graph_to_compute(client, tmp_path):
    paths = mixed_inputs(tmp_path, make_inputs(n_obs=(30, 20, 25), seed=8))
    out = tmp_path / "out.zarr"
    graph = adcat.dask.plan(paths, out, join="outer", index_unique="-", task_size="4KiB")
    stages = {k[0].rsplit("-", 1)[0] for k in graph.dask if isinstance(k, tuple)}
    assert stages == {"adcat-count", "adcat-write"}, stages
    assert graph.key.startswith("adcat-finish-")
    assert not out.exists()
    assert client.compute(graph).result() == str(out.resolve())
    assert_equal(ad.concat([read(p) for p in paths], join="outer", index_unique="-"), read(out), exact=False)


def test_a_newer_run_for_the_same_output_wins_cleanly(client, tmp_path):
    """Each run builds its own staging store: a run started later for the same output
    (force) removes an unrun graph's store, and that graph then fails instead of writing
    into the newer run's store."""
    paths = mixed_inputs(tmp_path, make_inputs(n_obs=(12, 9, 10), seed=6))
    out = tmp_path / "out.zarr"
    stale = adcat.dask.plan(paths, out, join="outer", task_size="4KiB")
    adcat.dask.concat_on_disk(paths[:2], out, client=client, join="inner", index_unique="-")
    with pytest.raises(adcat.AdcatError, match="missing"):
        client.compute(stale).result()
    assert_equal(ad.concat([read(p) for p in paths[:2]], join="inner", index_unique="-"), read(out), exact=False)
    assert leftovers(tmp_path, {p.name for p in paths} | {out.name}) == []


def test_a_client_that_is_not_the_default(client, tmp_path):
    paths = mixed_inputs(tmp_path, make_inputs(n_obs=(12, 9, 10), seed=4))
    out = tmp_path / "out.h5ad"
    with distributed.Client(client.scheduler.address, set_as_default=False) as other:
        adcat.dask.concat_on_disk(paths, out, client=other, progress=True, task_size="4KiB", index_unique="-")
    assert_equal(ad.concat([read(p) for p in paths], index_unique="-"), read(out), exact=False)


def big_inputs(tmp_path: Path) -> list[Path]:
    """Inputs whose tasks take long enough to kill a worker inside one: sparse X, a
    dense layer, obsm."""
    rng = np.random.default_rng(11)
    genes = [f"g{i}" for i in range(300)]
    out = []
    for i in range(3):
        n = 4000
        var = genes[i * 20 : i * 20 + 240]
        x = sparse.random(n, len(var), density=0.2, format="csr", dtype=np.float32, random_state=rng)
        a = ad.AnnData(X=x, obs=pd.DataFrame({"q": rng.random(n)}, index=[f"c{i}_{j}" for j in range(n)]), var=pd.DataFrame(index=var))
        a.layers["dense"] = rng.random((n, len(var))).astype(np.float32)
        a.obsm["X_pca"] = rng.random((n, 20))
        out.append(a)
    return mixed_inputs(tmp_path, out)


def _running_adcat_tasks(dask_worker=None) -> list[str]:
    return [str(ts.key) for ts in dask_worker.state.executing if "adcat-write" in str(ts.key) or "adcat-count" in str(ts.key)]


def test_worker_killed_mid_task(tmp_path):
    paths = big_inputs(tmp_path)
    kw = {"join": "outer", "label": "src", "max_memory": "4MiB"}
    out = tmp_path / "out.zarr"
    with local_cluster() as client:
        pids = client.run(os.getpid)
        errors: list[BaseException] = []

        def run():
            try:
                adcat.dask.concat_on_disk(paths, out, client=client, task_size="512KiB", **kw)
            except BaseException as e:  # reported by the test thread
                errors.append(e)

        t = threading.Thread(target=run)
        t.start()
        victim, deadline = None, time.time() + 120
        while victim is None and t.is_alive() and time.time() < deadline:
            for addr, keys in client.run(_running_adcat_tasks, on_error="ignore").items():
                if keys:
                    victim = (addr, keys)
                    break
            else:
                time.sleep(0.01)
        assert victim is not None, "no adcat task was seen running"
        os.kill(pids[victim[0]], signal.SIGKILL)
        t.join(timeout=300)
        assert not t.is_alive()
        assert errors == [], errors
        # The killed process was replaced by its nanny, and did not finish the run.
        assert pids[victim[0]] not in set(client.run(os.getpid).values())
    expected = ad.concat([read(p) for p in paths], **{k: v for k, v in kw.items() if k != "max_memory"})
    got = read(out)
    assert_equal(expected, got, exact=False)
    single = tmp_path / "single.zarr"
    adcat.concat_on_disk(paths, single, **kw)
    assert_equal(read(single), got, exact=False)


def test_corrupt_input_fails_cleanly_and_publishes_nothing(client, tmp_path):
    paths = mixed_inputs(tmp_path, make_inputs(seed=9))
    bad = paths[1]  # zarr v3
    chunk = bad / "X" / "data" / "c" / "0"
    assert chunk.is_file()
    chunk.write_bytes(b"\x28\xb5\x2f\xfd not a zstd frame" * 8)
    before = {p: sorted(x.stat().st_mtime_ns for x in p.rglob("*")) if p.is_dir() else p.stat().st_mtime_ns for p in paths}
    for out_name in ("out.zarr", "out.h5ad"):
        out = tmp_path / out_name
        with pytest.raises(adcat.AdcatError) as info:
            adcat.dask.concat_on_disk(paths, out, client=client, join="outer", task_size="2KiB")
        message = str(info.value)
        assert str(bad) in message and "X/data" in message, message
        assert message.count("X/data") == 1, message
        assert "\n" not in message.strip(), message
        assert not out.exists()
        assert leftovers(tmp_path, {p.name for p in paths}) == [], "the unpublished output was left behind"
    after = {p: sorted(x.stat().st_mtime_ns for x in p.rglob("*")) if p.is_dir() else p.stat().st_mtime_ns for p in paths}
    assert before == after, "an input was modified"


def test_refusals(client, tmp_path):
    paths = mixed_inputs(tmp_path, make_inputs(n_obs=(5, 6, 7), seed=1))
    import h5py

    with h5py.File(paths[0], "r") as f, pytest.raises(TypeError, match="every Dask worker"):
        adcat.dask.concat_on_disk([f, paths[1]], tmp_path / "o.zarr", client=client)
    out = tmp_path / "exists.zarr"
    out.mkdir()
    with pytest.raises(FileExistsError):
        adcat.dask.concat_on_disk(paths, out, client=client, force=False)
    with pytest.raises(FileNotFoundError):
        adcat.dask.concat_on_disk([*paths, tmp_path / "missing.h5ad"], tmp_path / "o.zarr", client=client)
    assert leftovers(tmp_path, {p.name for p in paths} | {"exists.zarr"}) == []


def test_adcat_imports_without_dask(tmp_path):
    """dask and distributed are an optional extra: `import adcat` (and `adcat.dask`)
    work without them, and calling `adcat.dask` says what to install."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['dask'] = None\n"
        "sys.modules['distributed'] = None\n"
        "import adcat, adcat.dask\n"
        "try:\n"
        "    adcat.dask.concat_on_disk(['a.h5ad'], 'o.zarr')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "pip install 'adcat[dask]'" in p.stdout, p.stdout
