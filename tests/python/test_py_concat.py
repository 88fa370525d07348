"""The oracle's concat cases (test_concat.py) again, through the Python package:
`adcat.concat_on_disk` and `adcat.plan` in this process instead of the `adcat` binary.

`run_adcat` is overridden here: the `concat` and `plan` command lines the cases build are
translated into Python calls, inputs given as a mapping whenever they have keys (so
both forms of `in_files` are exercised), and every result is compared with
`anndata.concat` by the cases themselves.

Two groups run in part: `test_matrix` on a grid where every axis, join, merge, array
type and format still occurs (anndata's own test_concatenate_disk.py, run through
`adcat.concat_on_disk` by `cargo xtask test`, covers the full cross product), and the
engine's stress cases (hundreds of blocks under a 1 MiB budget) not at all: they test
the engine, which the binary's run of them covers, and add minutes, not coverage.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import warnings

import pytest

import adcat
import test_concat
from test_concat import *  # noqa: F403  (the cases, collected again with this run_adcat)

del test_var_axis_csr_transposed_in_many_blocks, test_many_blocks_tiny_budget  # noqa: F821


_PY_CASES = [(0, "inner", None), (0, "outer", "same"), (1, "inner", "unique"), (1, "outer", "first"), (0, "outer", "only")]


# The zarr half (tiny blocks and tasks, slow in a debug build) runs one case per axis.
@pytest.mark.parametrize("array_type", test_concat.ARRAY_TYPES)
@pytest.mark.parametrize(
    ("fmt", "axis", "join", "merge"),
    [("h5ad", *c) for c in _PY_CASES] + [("zarr", *c) for c in _PY_CASES if c[1:] in (("outer", "same"), ("inner", "unique"))],
)
def test_matrix(run_adcat, tmp_path, axis, join, merge, array_type, fmt):
    test_concat.test_matrix(run_adcat, tmp_path, axis, join, merge, array_type, fmt)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="adcat", add_help=False)
    p.add_argument("command", choices=["concat", "plan"])
    p.add_argument("inputs", nargs="*")
    p.add_argument("-o", "--output", required=True)
    for flag in ["--axis", "--join", "--merge", "--uns-merge", "--label", "--index-unique", "--compression", "--max-memory", "--task-size", "--zarr-format"]:
        p.add_argument(flag)
    p.add_argument("--keys", type=lambda s: s.split(","))
    p.add_argument("--fill-value", type=float)
    p.add_argument("-j", "--threads", type=int)
    for flag in ["--pairwise", "--force", "--json", "-q", "--quiet", "--dry-run"]:
        p.add_argument(flag, action="store_true")
    return p


def translate(argv: list[str]) -> tuple[str, object, str, dict]:
    """A `concat`/`plan` command line as (command, in_files, out_file, keyword arguments)."""
    a = _parser().parse_args(argv)
    kw = dict(
        axis=int(a.axis) if a.axis in ("0", "1") else (a.axis or "obs"), join=a.join or "inner", merge=a.merge,
        uns_merge=a.uns_merge, label=a.label, index_unique=a.index_unique, fill_value=a.fill_value,
        pairwise=a.pairwise, compression=a.compression, max_memory=a.max_memory,
        zarr_format=int(a.zarr_format) if a.zarr_format else None,
    )
    inputs: object = a.inputs
    if a.keys and len(set(a.keys)) == len(a.keys) == len(a.inputs):
        inputs = dict(zip(a.keys, a.inputs))
    else:
        kw["keys"] = a.keys
    if a.command == "concat":
        kw.update(threads=a.threads, force=a.force, progress=False)
    return a.command, inputs, a.output, kw


def python_call(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a `concat`/`plan` command line through the Python API."""
    command, inputs, output, kw = translate(argv)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if command == "plan":
                out.write(json.dumps(adcat.plan(inputs, output, **kw)))
            else:
                adcat.concat_on_disk(inputs, output, **kw)
        except adcat.AdcatError as e:
            err.write(f"adcat: error: {e}\n")
            code = 1
    for w in caught:
        if issubclass(w.category, UserWarning):
            err.write(f"adcat: warning: {w.message}\n")
    return subprocess.CompletedProcess(["adcat", *argv], code, out.getvalue(), err.getvalue())


@pytest.fixture
def run_adcat():
    def run(*args, expect_success: bool = True, timeout: float = 0):
        proc = python_call([str(x) for x in args])
        if expect_success and proc.returncode != 0:
            pytest.fail(f"adcat.concat_on_disk failed:\n{proc.stderr}", pytrace=False)
        return proc

    return run
