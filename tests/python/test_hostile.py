"""Hostile inputs: nothing escapes the output, nothing is lost, resources stay bounded.

Every case runs adcat inside a sandbox: a work directory (the current directory of the
run) with the inputs, inside an outer directory holding sentinel files. After the run:

* nothing was created, changed or removed anywhere in the sandbox except the output path
  (no stray ``zarr.json`` beside or above it, no temporary or lock files left);
* the inputs are byte-identical;
* a refusal is one clean line naming the file and the element, without Rust debug
  output or a panic;
* the run's wall time and peak RSS (measured by ``/usr/bin/time`` around adcat, not by
  this Python process, whose RSS Linux would carry into the child's ``ru_maxrss``) stay
  under generous bounds that catch blow-ups, not tune speed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
from anndata.tests.helpers import assert_equal

from conftest import _adcat_env, require_adcat
from test_errors import tree_digest

TIME = Path("/usr/bin/time")
#: Signs of Rust debug formatting or internals leaking into a message.
DEBUG_LEAKS = re.compile(r"panicked|RUST_BACKTRACE|\bSome\(|\bNone\b|\w+ \{ \w+: |\[Num\(|Cat \{|ArrayData|StoreError|FormatError")


@dataclass
class Run:
    code: int
    stderr: str
    seconds: float
    peak_mb: float


def run_measured(args, cwd: Path, timeout: float = 120) -> Run:
    """Run adcat under /usr/bin/time (a small parent, so ru_maxrss is adcat's own)."""
    if not TIME.exists():
        pytest.fail("/usr/bin/time is missing (Debian package 'time'); `cargo xtask test` installs it", pytrace=False)
    marker = "ADCAT-TIME:"
    argv = [str(TIME), "-f", f"{marker}%M %e", str(require_adcat()), *map(str, args)]
    try:
        p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=timeout, env=_adcat_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"adcat {' '.join(map(str, args))} did not finish in {timeout} s", pytrace=False)
    lines = p.stderr.splitlines()
    stats = [l for l in lines if l.startswith(marker)]
    assert stats, f"no /usr/bin/time report in: {p.stderr}"
    kb, secs = stats[-1][len(marker):].split()
    rest = "\n".join(l for l in lines if not l.startswith(marker) and not l.startswith("Command exited with non-zero status"))
    return Run(p.returncode, rest, float(secs), int(kb) / 1024)


class Sandbox:
    """outer/ (sentinels) > work/ (cwd, inputs) > outputs."""

    def __init__(self, root: Path) -> None:
        self.outer = root / "outer"
        self.work = self.outer / "work"
        self.work.mkdir(parents=True)
        (self.outer / "sentinel.txt").write_text("outside the work dir\n")
        (self.outer / "sibling").mkdir()
        (self.outer / "sibling" / "keep.txt").write_text("keep\n")
        self.before: dict[str, str] | None = None

    def snapshot(self) -> None:
        self.before = tree_digest(self.outer)

    def check_untouched(self, output: Path | None = None, allow_leftover_cleanup: bool = False) -> None:
        """Only `output` (and what is under it) may differ from the snapshot."""
        assert self.before is not None
        after = tree_digest(self.outer)
        rel_out = output.relative_to(self.outer).as_posix() if output is not None else None

        def outside(k: str) -> bool:
            return rel_out is None or not (k == rel_out or k.startswith(rel_out + "/"))

        changed = {k for k in set(self.before) | set(after) if outside(k) and self.before.get(k) != after.get(k)}
        if allow_leftover_cleanup:
            changed = {k for k in changed if ".adcat-tmp" not in k and ".adcat-lock" not in k}
        assert not changed, f"adcat touched paths outside its output: {sorted(changed)[:10]}"


@pytest.fixture
def box(tmp_path) -> Sandbox:
    return Sandbox(tmp_path)


def small_adata(n=6, m=4) -> ad.AnnData:
    warnings.filterwarnings("ignore", category=UserWarning)
    a = ad.AnnData(np.arange(n * m, dtype=np.float32).reshape(n, m))
    a.obs_names = [f"c{i}" for i in range(n)]
    a.var_names = [f"g{j}" for j in range(m)]
    return a


def write_h5ad(a: ad.AnnData, p: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.write_h5ad(p)
    return p


def assert_clean_refusal(r: Run, *needles: str) -> None:
    assert r.code != 0, f"expected a refusal, got success: {r.stderr}"
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line, got: {r.stderr}"
    line = lines[0]
    assert line.startswith("adcat: error: "), line
    assert not DEBUG_LEAKS.search(line), f"debug output in message: {line}"
    for n in needles:
        assert n in line, f"{n!r} not in: {line}"


# --- element names are data, never paths -------------------------------------------

HOSTILE_NAMES = ["..", "a\\b", "a\x01b", "tab\tname"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=["dotdot", "backslash", "control", "tab"])
@pytest.mark.parametrize("out", ["out.zarr", "out_v2.zarr", "out.h5ad"])
def test_hostile_hdf5_names_are_refused(box, name, out):
    src = write_h5ad(small_adata(), box.work / "in.h5ad")
    with h5py.File(src, "a") as f:
        g = f["uns"].create_group(name)
        g.attrs["encoding-type"] = "dict"
        g.attrs["encoding-version"] = "0.1.0"
        g.create_dataset("x", data=np.arange(3))
        g.create_group("..") if name != ".." else None
    box.snapshot()
    extra = ["--zarr-format", "2"] if out.endswith("_v2.zarr") else []
    r = run_measured(["convert", "in.h5ad", out, *extra], cwd=box.work)
    assert_clean_refusal(r, "in.h5ad", "/uns", "not allowed")
    box.check_untouched()
    assert not (box.work / out).exists()


def write_zarr(a: ad.AnnData, p: Path, v2: bool = False) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ad.settings.override(zarr_write_format=2 if v2 else 3):
            a.write_zarr(p)
    return p


@pytest.mark.parametrize("v2", [False, True], ids=["v3", "v2"])
def test_consolidated_keys_cannot_leave_the_store(box, v2):
    """A consolidated metadata key with `..` must not address files outside the store."""
    src = write_zarr(small_adata(), box.work / "in.zarr", v2=v2)
    # The escape target exists, so a store that followed the key would find a node there.
    evil = box.outer / "evil"
    evil.mkdir()
    if v2:
        (evil / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
        zm = json.loads((src / ".zmetadata").read_text())
        zm["metadata"]["uns/../../../evil/.zgroup"] = {"zarr_format": 2}
        (src / ".zmetadata").write_text(json.dumps(zm))
    else:
        (evil / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group"}))
        root = json.loads((src / "zarr.json").read_text())
        root["consolidated_metadata"]["metadata"]["uns/../../../evil"] = {"zarr_format": 3, "node_type": "group", "attributes": {}}
        (src / "zarr.json").write_text(json.dumps(root))
    box.snapshot()
    r = run_measured(["convert", "in.zarr", "out.h5ad"], cwd=box.work)
    assert_clean_refusal(r, "in.zarr", '".."', "not allowed")
    box.check_untouched()


# --- --force never destroys what it must not -----------------------------------------


def test_force_refuses_a_store_containing_its_input(box):
    store = write_zarr(small_adata(), box.work / "box.zarr")
    write_h5ad(small_adata(), store / "a.h5ad")
    box.snapshot()
    r = run_measured(["concat", "box.zarr/a.h5ad", "-o", "box.zarr", "--force"], cwd=box.work)
    assert_clean_refusal(r, "box.zarr", "input")
    box.check_untouched()


def test_force_refuses_an_ancestor_of_the_working_directory(box):
    proj = write_zarr(small_adata(), box.work / "proj.zarr")
    inner = proj / "sub"
    inner.mkdir()
    write_h5ad(small_adata(), box.work / "a.h5ad")
    box.snapshot()
    r = run_measured(["concat", "../../a.h5ad", "-o", "../../proj.zarr", "--force"], cwd=inner)
    assert_clean_refusal(r, "proj.zarr", "working directory")
    box.check_untouched()


def test_force_refuses_a_directory_that_is_not_a_store(box):
    plain = box.work / "results.zarr"
    plain.mkdir()
    (plain / "notes.txt").write_text("precious\n")
    write_h5ad(small_adata(), box.work / "a.h5ad")
    box.snapshot()
    r = run_measured(["convert", "a.h5ad", "results.zarr", "--force"], cwd=box.work)
    assert_clean_refusal(r, "results.zarr", "not a zarr store")
    box.check_untouched()


def test_force_refuses_output_inside_an_input_store(box):
    write_zarr(small_adata(), box.work / "in.zarr")
    box.snapshot()
    r = run_measured(["convert", "in.zarr", "in.zarr/copy.h5ad"], cwd=box.work)
    assert_clean_refusal(r, "in.zarr", "inside the input store")
    box.check_untouched()


def test_force_replaces_an_anndata_store(box):
    a = small_adata()
    write_h5ad(a, box.work / "a.h5ad")
    write_zarr(small_adata(3, 2), box.work / "out.zarr")
    box.snapshot()
    r = run_measured(["convert", "a.h5ad", "out.zarr", "--force"], cwd=box.work)
    assert r.code == 0, r.stderr
    box.check_untouched(box.work / "out.zarr")
    assert_equal(ad.read_zarr(box.work / "out.zarr"), a)


# --- data outside the named files ----------------------------------------------------


def test_external_link_is_refused_unless_allowed(box):
    other = box.outer / "secret.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("data", data=np.arange(5))
    src = write_h5ad(small_adata(), box.work / "in.h5ad")
    with h5py.File(src, "a") as f:
        f["uns"]["leak"] = h5py.ExternalLink(str(other), "/data")
    box.snapshot()
    r = run_measured(["convert", "in.h5ad", "out.zarr"], cwd=box.work)
    assert_clean_refusal(r, "in.h5ad", "uns/leak", "external link", "secret.h5", "--follow-external-links")
    box.check_untouched()
    # Allowed explicitly, the linked data is read as anndata (h5py) reads it.
    r = run_measured(["--follow-external-links", "convert", "in.h5ad", "out.zarr"], cwd=box.work)
    assert r.code == 0, r.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.read_h5ad(src)
    assert_equal(ad.read_zarr(box.work / "out.zarr"), expected)


def test_virtual_dataset_is_refused(box):
    other = box.outer / "parts.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("part", data=np.arange(4, dtype=np.float64))
    src = write_h5ad(small_adata(), box.work / "in.h5ad")
    layout = h5py.VirtualLayout(shape=(4,), dtype=np.float64)
    layout[:] = h5py.VirtualSource(str(other), "part", shape=(4,))
    with h5py.File(src, "a") as f:
        f["uns"].create_virtual_dataset("vds", layout)
    box.snapshot()
    r = run_measured(["convert", "in.h5ad", "out.h5ad"], cwd=box.work)
    assert_clean_refusal(r, "in.h5ad", "uns/vds", "virtual dataset", "parts.h5")
    box.check_untouched()


# --- killed runs leave nothing that accumulates --------------------------------------


def test_sigkill_leftovers_are_recognised_and_removed(box, run_adcat):
    for i in range(2):
        run_adcat("generate", box.work / f"in{i}.h5ad", "--cells", "40000", "--genes", "2000", "--seed", str(i))
    argv = [str(require_adcat()), "concat", "in0.h5ad", "in1.h5ad", "-o", "out.zarr", "--compression", "gzip:9", "--max-memory", "1MiB", "--threads", "1"]
    proc = subprocess.Popen(argv, cwd=box.work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_adcat_env())
    t0 = time.monotonic()
    while not any(".adcat-tmp" in p.name for p in box.work.iterdir()):
        assert proc.poll() is None, f"adcat ended before writing: {proc.stderr.read()}"
        assert time.monotonic() - t0 < 60, "adcat did not start writing"
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p.name for p in box.work.iterdir() if ".adcat-" in p.name]
    assert any(".adcat-tmp" in n for n in left), "the killed run should have left its temporary output"
    r = run_measured(["concat", "in0.h5ad", "in1.h5ad", "-o", "out.zarr"], cwd=box.work)
    assert r.code == 0, r.stderr
    assert "partial output of an earlier run" in r.stderr, r.stderr
    assert not [p.name for p in box.work.iterdir() if ".adcat-" in p.name], "leftovers remain"
    assert ad.read_zarr(box.work / "out.zarr").n_obs == 80000


# --- bounded resources on hostile metadata -------------------------------------------


def nest(path: Path, depth: int) -> None:
    with h5py.File(path, "a") as f:
        g = f["uns"]
        for _ in range(depth):
            g = g.create_group("a")
            g.attrs["encoding-type"] = "dict"
            g.attrs["encoding-version"] = "0.1.0"
        g.create_dataset("leaf", data=np.arange(3))


def test_deep_nesting_anndata_reads_converts_in_linear_time(box):
    src = write_h5ad(small_adata(), box.work / "in.h5ad")
    nest(src, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.read_h5ad(src)
    box.snapshot()
    for out in ["out.zarr", "out.h5ad"]:
        r = run_measured(["convert", "in.h5ad", out], cwd=box.work)
        assert r.code == 0, r.stderr
        assert r.seconds < 30, f"200 nested dicts took {r.seconds} s"
        got = ad.read_zarr(box.work / out) if out.endswith(".zarr") else ad.read_h5ad(box.work / out)
        assert_equal(got, expected)


def test_nesting_beyond_the_limit_is_refused_fast(box):
    src = write_h5ad(small_adata(), box.work / "in.h5ad")
    nest(src, 10_000)
    box.snapshot()
    for out in ["out.zarr", "out.h5ad"]:
        r = run_measured(["convert", "in.h5ad", out], cwd=box.work)
        assert_clean_refusal(r, "in.h5ad", "uns/a/a/a", "nested more than 512 levels")
        assert r.seconds < 10, f"refusing 10,000 nested dicts took {r.seconds} s"
    box.check_untouched()


def test_soft_link_cycle_is_refused(box):
    src = write_h5ad(small_adata(), box.work / "in.h5ad")
    with h5py.File(src, "a") as f:
        g = f["uns"].create_group("loop")
        g.attrs["encoding-type"] = "dict"
        g.attrs["encoding-version"] = "0.1.0"
        g["again"] = h5py.SoftLink("/uns/loop")
    box.snapshot()
    r = run_measured(["convert", "in.h5ad", "out.h5ad"], cwd=box.work, timeout=60)
    assert_clean_refusal(r, "in.h5ad", "uns/loop/again")
    assert r.seconds < 10
    box.check_untouched()


def zstd_rle_frame(total: int) -> bytes:
    """A valid zstd frame of RLE blocks decoding to `total` zero bytes (~32 KiB per GiB)."""
    block = 1 << 17
    out = bytearray(struct.pack("<I", 0xFD2FB528))
    out += bytes([0xC0, 7 << 3])  # 8-byte content size, window descriptor 128 KiB
    out += struct.pack("<Q", total)
    left = total
    while left:
        n = min(block, left)
        left -= n
        header = (1 if left == 0 else 0) | (1 << 1) | (n << 3)
        out += header.to_bytes(3, "little") + b"\x00"
    return bytes(out)


def test_chunk_bomb_is_refused_within_seconds(box):
    src = write_zarr(small_adata(), box.work / "in.zarr")
    n = (4 << 30) // 8
    doc = {
        "zarr_format": 3, "node_type": "array", "shape": [n], "data_type": "float64",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [n]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0, "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 0, "checksum": False}}],
        "attributes": {"encoding-type": "array", "encoding-version": "0.2.0"},
    }
    bomb = src / "uns" / "bomb"
    (bomb / "c").mkdir(parents=True)
    (bomb / "zarr.json").write_text(json.dumps(doc))
    (bomb / "c" / "0").write_bytes(zstd_rle_frame(4 << 30))
    root = json.loads((src / "zarr.json").read_text())
    root["consolidated_metadata"]["metadata"]["uns/bomb"] = doc
    (src / "zarr.json").write_text(json.dumps(root))
    box.snapshot()
    r = run_measured(["convert", "in.zarr", "out.h5ad", "--max-memory", "256MiB"], cwd=box.work, timeout=60)
    assert_clean_refusal(r, "in.zarr", "uns/bomb", "4.0 GiB", "256.0 MiB", "--max-memory 4.0 GiB")
    assert r.seconds < 10 and r.peak_mb < 256, (r.seconds, r.peak_mb)
    box.check_untouched()


def test_hdf5_chunk_larger_than_budget_is_refused(box):
    src = write_h5ad(small_adata(), box.work / "in.h5ad")
    with h5py.File(src, "a") as f:
        # Never written: reading it would still make libhdf5 allocate the 2 GiB chunk.
        d = f["uns"].create_dataset("big", shape=(1 << 28,), chunks=(1 << 28,), dtype=np.float64, compression="gzip")
        d.attrs["encoding-type"] = "array"
        d.attrs["encoding-version"] = "0.2.0"
    box.snapshot()
    r = run_measured(["convert", "in.h5ad", "out.zarr", "--max-memory", "256MiB"], cwd=box.work, timeout=60)
    assert_clean_refusal(r, "in.h5ad", "uns/big", "2.0 GiB")
    assert r.seconds < 10 and r.peak_mb < 256, (r.seconds, r.peak_mb)
    box.check_untouched()
