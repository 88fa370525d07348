"""`cargo xtask bench-dask`: adcat.dask on LocalClusters of 1, 2 and 4 worker processes
(one thread each), next to the single-process `adcat concat` on the same inputs and `cp`.

argv: ADCAT_BINARY WORK_DIR ROUNDS. Prints markdown tables on stdout.
Inputs are written by anndata 0.13.4 at its defaults (write_h5ad), cached in
WORK_DIR/data. Every round runs every case in turn (interleaved); tables give the median
and min-max over the rounds. Task figures come from Dask's task stream.
"""

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ADCAT, WORK, ROUNDS = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
N_FILES, CELLS, GENES, DENSITY = 8, 25_000, 2_000, 0.05
#: The task size of the scaling runs, and the small one that measures the fixed cost of a task.
TASK, SMALL_TASK = "16MiB", "1MiB"
WORKERS = (1, 2, 4)


def inputs() -> list[Path]:
    import anndata as ad
    import numpy as np
    import pandas as pd
    from scipy import sparse

    d = WORK / "data"
    paths = [d / f"in{i}.h5ad" for i in range(N_FILES)]
    if not (d / "complete").exists():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        warnings.simplefilter("ignore")
        for i, p in enumerate(paths):
            rng = np.random.default_rng(i)
            X = sparse.random(CELLS, GENES, density=DENSITY, format="csr", dtype=np.float32, random_state=rng)
            X.data = np.ceil(X.data * 10)
            obs = pd.DataFrame({"cell_type": pd.Categorical(rng.choice(["B", "T", "NK", "Mono"], CELLS))},
                               index=[f"f{i}c{j}" for j in range(CELLS)])
            ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(GENES)])).write_h5ad(p)
        (d / "complete").write_text("")
    return paths


def timed(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a child, from GNU time."""
    out = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{out.stderr[-3000:]}")
    field = lambda name: next(l.split(": ", 1)[1] for l in out.stderr.splitlines() if l.strip().startswith(name))
    wall = 0.0
    for part in field("Elapsed (wall clock) time").split(":"):
        wall = wall * 60 + float(part)
    return wall, int(field("Maximum resident set size"))


def size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size


def worker_peak_rss() -> int:
    """This worker process's peak RSS in KiB (spawned fresh, so its own)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def dask_run(client, paths: list[Path], out: Path, task_size: str) -> dict:
    """One adcat.dask run: wall seconds, and the task stream's per-stage figures."""
    import adcat.dask
    from distributed import get_task_stream

    with get_task_stream(client) as ts:
        t0 = time.perf_counter()
        adcat.dask.concat_on_disk(paths, out, client=client, task_size=task_size, progress=False)
        wall = time.perf_counter() - t0
    compute: dict[str, list[float]] = {"count": [], "write": [], "finish": []}
    first_start, last_stop = float("inf"), 0.0
    for rec in ts.data:
        key = rec["key"][0] if isinstance(rec["key"], tuple) else rec["key"]
        stage = next((s for s in compute if key.startswith(f"adcat-{s}")), None)
        for ss in rec["startstops"]:
            if ss["action"] == "compute" and stage:
                compute[stage].append(ss["stop"] - ss["start"])
                first_start, last_stop = min(first_start, ss["start"]), max(last_stop, ss["stop"])
    return {"wall": wall, "compute": compute, "span": last_stop - first_start}


def plan_figures(paths: list[Path], out: Path) -> tuple[float, int]:
    """Seconds to plan the job (metadata, off-axis indexes, the output's skeleton) and
    the size of its JSON, which the graph carries once; the skeleton is removed."""
    import adcat.dask
    from adcat import _adcat, _api

    opts = dict(max_loaded_elems=100_000_000, axis=0, join="inner", merge=None, uns_merge=None, label=None, keys=None,
                index_unique=None, fill_value=None, pairwise=False, max_memory=None, zarr_format=None, compression=None,
                follow_external_links=False)
    t0 = time.perf_counter()
    job, _ = adcat.dask._create(paths, out, True, {**_api._options(opts), "task_size": TASK})
    seconds = time.perf_counter() - t0
    _adcat.job_discard(job)
    return seconds, len(job.encode())


def noop(x):
    return x


def dask_noop_gap(client, n: int = 400) -> float:
    """Seconds per task of a chain-free graph of `n` no-op tasks on this client's cluster."""
    from dask.delayed import delayed

    tasks = [delayed(noop, pure=False)(i) for i in range(n)]
    t0 = time.perf_counter()
    client.compute(tasks, sync=True)
    return (time.perf_counter() - t0) / n


def med(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"{statistics.median(xs):.2f} s ({xs[0]:.2f}–{xs[-1]:.2f})"


def main() -> None:
    import distributed

    paths = inputs()
    in_bytes = sum(size(p) for p in paths)
    out = WORK / "out.zarr"
    cp_dir = WORK / "cp"
    single = [str(ADCAT), "-q", "concat", "--force", *map(str, paths), "-o", str(out)]
    clusters = {}
    for n in WORKERS:
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None, silence_logs=50)
        clusters[n] = (cluster, distributed.Client(cluster, set_as_default=False))
    results: dict[str, list] = {}
    try:
        timed(single)  # warm the page cache
        out_bytes = size(out)
        cases = {
            "floor: cp -r of the inputs": lambda: (shutil.rmtree(cp_dir, ignore_errors=True), timed(["cp", "-r", str(WORK / "data"), str(cp_dir)]))[1],
            "adcat concat (one process, all cores)": lambda: timed(single),
            "adcat concat --threads 1 (one process, one thread)": lambda: timed([*single, "--threads", "1"]),
        }
        for n in WORKERS:
            cases[f"adcat.dask, {n} worker(s)"] = (lambda n=n: dask_run(clusters[n][1], paths, out, TASK))
        cases["adcat.dask, 2 worker(s), h5ad output"] = lambda: dask_run(clusters[2][1], paths, WORK / "out.h5ad", TASK)
        cases["adcat.dask, 1 worker, small tasks"] = lambda: dask_run(clusters[1][1], paths, out, SMALL_TASK)
        cases["planning (job create)"] = lambda: plan_figures(paths, out)
        cases["dask no-op tasks, 1 worker (per task)"] = lambda: dask_noop_gap(clusters[1][1])
        for _ in range(ROUNDS):
            for name, run in cases.items():
                results.setdefault(name, []).append(run())
        peaks = {n: max(c.run(worker_peak_rss).values()) for n, (_, c) in clusters.items()}
    finally:
        for cluster, client in clusters.values():
            client.close()
            cluster.close()
    report(results, peaks, in_bytes, out_bytes)


def report(results: dict[str, list], peaks: dict[int, int], in_bytes: int, out_bytes: int) -> None:
    print(f"\n{N_FILES} h5ad inputs of {CELLS:,} cells x {GENES:,} genes (CSR float32 at {DENSITY:.0%}, written by anndata), "
          f"{in_bytes / 1e6:.0f} MB; output zarr v3 {out_bytes / 1e6:.0f} MB; task size {TASK}; "
          f"{ROUNDS} interleaved rounds, median (min–max)\n")
    print("| case | wall | input MB/s | tasks (count + write) | task compute, sum | finish | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for name, rs in results.items():
        if name.startswith(("dask no-op", "planning")):
            continue
        if isinstance(rs[0], tuple):
            walls = [w for w, _ in rs]
            rss = f"{statistics.median(r for _, r in rs) / 1024:.0f} MiB"
            print(f"| {name} | {med(walls)} | {in_bytes / 1e6 / statistics.median(walls):.0f} | – | – | – | {rss} |")
            continue
        walls = [r["wall"] for r in rs]
        c = rs[0]["compute"]
        n_tasks = f"{len(c['count'])} + {len(c['write'])}"
        work = statistics.median(sum(r["compute"]["count"]) + sum(r["compute"]["write"]) for r in rs)
        fin = statistics.median(sum(r["compute"]["finish"]) for r in rs)
        n = int(name.split(",")[1].split()[0])
        rss = f"{peaks[n] / 1024:.0f} MiB per worker" if "small" not in name else "–"
        print(f"| {name} | {med(walls)} | {in_bytes / 1e6 / statistics.median(walls):.0f} | {n_tasks} | {work:.2f} s | {fin:.2f} s | {rss} |")
    one, small = results["adcat.dask, 1 worker(s)"], results["adcat.dask, 1 worker, small tasks"]
    n_of = lambda r: len(r["compute"]["count"]) + len(r["compute"]["write"])
    fixed = (statistics.median(r["wall"] for r in small) - statistics.median(r["wall"] for r in one)) / (n_of(small[0]) - n_of(one[0]))
    gap = statistics.median(results["dask no-op tasks, 1 worker (per task)"])
    work = statistics.median(sum(r["compute"]["count"]) + sum(r["compute"]["write"]) for r in one)
    per_worker = in_bytes / 1e6 / work
    print()
    print(f"- per-task cost, by difference ({SMALL_TASK} vs {TASK} tasks, 1 worker): {fixed * 1000:.0f} ms "
          f"({n_of(small[0])} vs {n_of(one[0])} tasks)")
    print(f"- Dask's own cost per task (no-op tasks, 1 worker): {gap * 1000:.1f} ms")
    print(f"- one worker's rate (input bytes / task compute time, 1 worker): {per_worker:.0f} MB/s")
    plan_s = statistics.median(x for x, _ in results["planning (job create)"])
    print(f"- planning (job create, in the caller): {plan_s:.2f} s; the job's JSON: {results['planning (job create)'][0][1] / 1e3:.1f} kB")
    print(f"- planning + graph submission + finish, 1 worker: wall minus task compute = "
          f"{statistics.median(r['wall'] for r in one) - work:.2f} s")


if __name__ == "__main__":  # worker processes are spawned and import this file
    main()
