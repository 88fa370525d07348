"""Faults during a write: interruption, a file-size limit, a concurrent writer.

In every case the output path holds either nothing or a complete output, no temporary
or lock file is left beside it, and the inputs are byte-identical afterwards.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import time
import warnings
from pathlib import Path

import anndata as ad
import pytest

from conftest import _adcat_env, require_adcat
from test_errors import tree_digest

# Slow enough to interrupt: maximum deflate effort, tiny blocks.
SLOW = ["--compression", "gzip:9", "--max-memory", "1MiB", "--threads", "1"]


@pytest.fixture(scope="module")
def big_inputs(tmp_path_factory, run_adcat) -> list[Path]:
    d = tmp_path_factory.mktemp("fault-inputs")
    paths = []
    for i in range(2):
        p = d / f"in{i}.h5ad"
        run_adcat("generate", p, "--cells", "60000", "--genes", "2000", "--seed", str(i))
        paths.append(p)
    return paths


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".adcat-tmp" in p.name or ".adcat-lock" in p.name)


def start(*args) -> subprocess.Popen:
    argv = [str(require_adcat()), *(str(a) for a in args)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_adcat_env(), stdin=subprocess.DEVNULL)


def wait_for_temp(directory: Path, proc: subprocess.Popen, timeout=60.0) -> None:
    """Until the job has started writing its temporary output."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if any(".adcat-tmp" in p.name for p in directory.iterdir()):
            time.sleep(0.3)  # well inside the write
            return
        if proc.poll() is not None:
            pytest.fail(f"adcat ended before writing (exit {proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.02)
    pytest.fail("adcat did not start writing")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("ext", [".h5ad", ".zarr"])
def test_signal_removes_partial_output(tmp_path, big_inputs, sig, ext):
    before = {p: tree_digest(p) for p in big_inputs}
    out = tmp_path / f"out{ext}"
    proc = start("concat", *big_inputs, "-o", out, "-q", *SLOW)
    wait_for_temp(tmp_path, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, f"exit {proc.returncode}: {err}"
    assert "interrupted" in err and "panicked" not in err, err
    assert not out.exists(), "a partial output was left at the output path"
    assert leftovers(tmp_path) == []
    for p in big_inputs:
        assert tree_digest(p) == before[p]


@pytest.mark.parametrize("command", ["concat", "convert"])
@pytest.mark.parametrize("limit_mib", [2, 20])
@pytest.mark.parametrize("ext", [".h5ad", ".zarr"])
def test_file_size_limit(tmp_path, big_inputs, ext, limit_mib, command):
    """A failed write (as a full disk) is reported against the output, not an input,
    whether it hits the annotations (2 MiB) or the matrix (20 MiB)."""
    before = {p: tree_digest(p) for p in big_inputs}
    out = tmp_path / f"out{ext}"
    limit = limit_mib << 20

    def limit_fsize():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    ins = big_inputs if command == "concat" else big_inputs[:1]
    argv = [str(require_adcat()), command, *map(str, ins), *(["-o"] if command == "concat" else []), str(out), "-q"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=_adcat_env(), preexec_fn=limit_fsize, timeout=300)
    if ext == ".zarr" and limit_mib == 20 and proc.returncode == 0:
        # zarr writes one file per chunk, each far below the limit: nothing fails.
        return
    assert proc.returncode == 1, f"exit {proc.returncode}: {proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "panicked" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"adcat: error: {out}: "), lines[0]
    assert not any(p.name in lines[0] for p in big_inputs), f"a write error named an input: {lines[0]}"
    assert "time = " not in lines[0] and "buf = " not in lines[0], f"raw libhdf5 details: {lines[0]}"
    assert not out.exists()
    assert leftovers(tmp_path) == []
    for p in big_inputs:
        assert tree_digest(p) == before[p]


def test_second_writer_is_refused(tmp_path, big_inputs):
    out = tmp_path / "out.h5ad"
    # Slow enough to be writing when the second starts (gzip:9 would add a minute).
    first = start("concat", *big_inputs, "-o", out, "-q", "--compression", "gzip:1", "--max-memory", "1MiB", "--threads", "1")
    wait_for_temp(tmp_path, first)
    second = start("concat", *big_inputs, "-o", out, "-q", "--force")
    _, err2 = second.communicate(timeout=120)
    assert second.returncode == 1, err2
    assert "another adcat process is writing" in err2 and out.name in err2, err2
    _, err1 = first.communicate(timeout=600)
    assert first.returncode == 0, err1
    assert leftovers(tmp_path) == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = ad.read_h5ad(out)
        expected = ad.concat([ad.read_h5ad(p) for p in big_inputs])
    assert got.shape == expected.shape
    assert (got.X != expected.X).nnz == 0
