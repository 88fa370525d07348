"""`cargo xtask bench-s3`: adcat against a real S3 server (SeaweedFS from the oracle venv,
on 127.0.0.1), next to plain transfers of the same bytes with obstore.

argv: ADCAT_BINARY WORK_DIR ROUNDS. Prints a markdown table on stdout.
Inputs are written by anndata 0.13.4 at its defaults (write_h5ad, write_zarr), cached
in WORK_DIR/data. Every round runs every case in turn (interleaved); the table gives
the median and min-max over the rounds.
"""

import concurrent.futures as cf
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import obstore
from obstore.store import S3Store

ADCAT, WORK, ROUNDS = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
N_FILES, CELLS, GENES, DENSITY = 4, 50_000, 2_000, 0.05
BUCKET, KEY, SECRET = "bench", "adcat-bench", "adcat-bench-secret"
#: Concurrent requests of the plain transfers (adcat's --s3-concurrency default).
THREADS = 32
PORT_FLAGS = [
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "webdav.port", "admin.port", "admin.port.grpc",
    "debug.port",
]


def inputs() -> tuple[list[Path], list[Path]]:
    import anndata as ad
    import numpy as np
    import pandas as pd
    from scipy import sparse

    d = WORK / "data"
    h5ad = [d / f"in{i}.h5ad" for i in range(N_FILES)]
    zarr = [d / f"in{i}.zarr" for i in range(N_FILES)]
    if not (d / "complete").exists():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        warnings.simplefilter("ignore")
        for i in range(N_FILES):
            rng = np.random.default_rng(i)
            X = sparse.random(CELLS, GENES, density=DENSITY, format="csr", dtype=np.float32, random_state=rng)
            X.data = np.ceil(X.data * 10)
            obs = pd.DataFrame({"cell_type": pd.Categorical(rng.choice(["B", "T", "NK", "Mono"], CELLS))},
                               index=[f"f{i}c{j}" for j in range(CELLS)])
            a = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(GENES)]))
            a.write_h5ad(h5ad[i])
            a.write_zarr(zarr[i])
        (d / "complete").write_text("")
    return h5ad, zarr


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start_server() -> tuple[subprocess.Popen, str]:
    d = WORK / "seaweedfs"
    shutil.rmtree(d, ignore_errors=True)
    (d / "data").mkdir(parents=True)
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
    weed = Path(sys.executable).parent / "weed"
    cmd = [str(weed), "mini", f"-dir={d / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
           "-admin.ui=false", f"-bucket={BUCKET}", *(f"-{k}={v}" for k, v in ports.items())]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    proc = subprocess.Popen(cmd, stdout=open(d / "weed.log", "wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    deadline = time.monotonic() + 90
    while True:
        try:
            obstore.put(store(endpoint), "ready", b"1")
            return proc, endpoint
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"SeaweedFS did not start; see {d / 'weed.log'}")
            time.sleep(0.5)


def store(endpoint: str, prefix: str | None = None) -> S3Store:
    return S3Store(BUCKET, prefix=prefix, endpoint=endpoint, access_key_id=KEY, secret_access_key=SECRET,
                   region="us-east-1", client_options={"allow_http": True})


def files(local: Path) -> list[Path]:
    return sorted(f for f in local.rglob("*") if f.is_file())


def upload(endpoint: str, local: Path, prefix: str) -> float:
    """Put every file of `local` under `prefix`, THREADS at once; seconds."""
    s = store(endpoint)
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda f: obstore.put(s, f"{prefix}/{f.relative_to(local).as_posix()}", f.read_bytes()), files(local)))
    return time.perf_counter() - t0


def download(endpoint: str, prefixes: list[str]) -> float:
    """Get every object under `prefixes` into memory, THREADS at once; seconds."""
    s = store(endpoint)
    keys = [o["path"] for p in prefixes for batch in obstore.list(s, p + "/") for o in batch]
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda k: bytes(obstore.get(s, k).bytes()), keys))
    return time.perf_counter() - t0


def clear(endpoint: str, prefix: str) -> None:
    s = store(endpoint)
    keys = [o["path"] for batch in obstore.list(s, prefix + "/") for o in batch]
    if keys:
        obstore.delete(s, keys)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a child, from GNU time."""
    out = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{out.stderr[-3000:]}")
    field = lambda name: next(l.split(": ", 1)[1] for l in out.stderr.splitlines() if l.strip().startswith(name))
    wall = 0.0
    for part in field("Elapsed (wall clock) time").split(":"):
        wall = wall * 60 + float(part)
    return wall, int(field("Maximum resident set size"))


def size(local: Path) -> int:
    return sum(f.stat().st_size for f in files(local))


def main() -> None:
    h5ad, zarr = inputs()
    proc, endpoint = start_server()
    try:
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_REGION="us-east-1", AWS_ALLOW_HTTP="true")
        urls = []
        for i, z in enumerate(zarr):
            upload(endpoint, z, f"in/{i}.zarr")
            urls.append(f"s3://{BUCKET}/in/{i}.zarr")
        local_out = WORK / "out.zarr"
        base = [str(ADCAT), "-q", "concat", "--force"]
        timed([*base, *map(str, h5ad), "-o", str(local_out)], env)
        out_bytes, in_bytes = size(local_out), sum(size(z) for z in zarr)
        cases = {
            "adcat concat, local h5ad → local zarr": lambda: timed([*base, *map(str, h5ad), "-o", str(local_out)], env),
            "adcat concat, local h5ad → S3 zarr": lambda: timed([*base, *map(str, h5ad), "-o", f"s3://{BUCKET}/out-a.zarr"], env),
            "adcat concat, local zarr → S3 zarr": lambda: timed([*base, *map(str, zarr), "-o", f"s3://{BUCKET}/out-c.zarr"], env),
            "adcat concat, S3 zarr → S3 zarr": lambda: timed([*base, *urls, "-o", f"s3://{BUCKET}/out-b.zarr"], env),
            "floor: upload of the output's objects (obstore put, 32 at once)": lambda: (upload(endpoint, local_out, "up.zarr"), 0),
            "floor: download of the inputs' objects (obstore get, 32 at once)": lambda: (download(endpoint, [f"in/{i}.zarr" for i in range(N_FILES)]), 0),
        }
        results: dict[str, list[tuple[float, int]]] = {k: [] for k in cases}
        for _ in range(ROUNDS):
            for name, run in cases.items():
                for p in ("out-a.zarr", "out-b.zarr", "out-c.zarr", "up.zarr"):
                    clear(endpoint, p)
                results[name].append(run())
        print(f"\n{N_FILES} inputs of {CELLS:,} cells x {GENES:,} genes (CSR float32 at {DENSITY:.0%}), written by anndata; "
              f"output {out_bytes / 1e6:.0f} MB in {len(files(local_out))} objects (zarr v3, sharded zstd), "
              f"inputs as zarr {in_bytes / 1e6:.0f} MB; {ROUNDS} interleaved rounds, median (min–max)\n")
        print("| case | wall | MB/s | peak RSS |")
        print("|---|---|---|---|")
        for name, rs in results.items():
            walls = sorted(w for w, _ in rs)
            med = statistics.median(walls)
            rss = statistics.median(r for _, r in rs)
            mbps = (in_bytes if "download" in name else out_bytes) / 1e6 / med
            print(f"| {name} | {med:.2f} s ({walls[0]:.2f}–{walls[-1]:.2f}) | {mbps:.0f} | {f'{rss / 1024:.0f} MiB' if rss else '–'} |")
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


main()
