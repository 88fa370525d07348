"""The Python package beyond the concat cases (those are in test_py_concat.py): the
exception types for the bad-input corpus, Ctrl-C, the GIL, open h5py/zarr objects as
anndata's tests pass them, progress, convert/plan/inspect/validate against the CLI,
and the `adcat` command installed with the package."""

from __future__ import annotations

import _thread
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
import zarr
from anndata.tests.helpers import assert_equal
from zarr.storage import MemoryStore

import adcat
import test_bad_inputs as tb
from test_errors import tree_digest
from test_py_concat import translate

# The documented mapping (docs/guide.md, "Errors"): each bad input raises this type,
# which is also an adcat.AdcatError.
EXPECTED_TYPES = {
    "nonexistent": FileNotFoundError,
    "plain_hdf5": ValueError,
    "random_bytes": ValueError,
    "empty_dir_zarr": ValueError,
    "truncated_h5ad": ValueError,
    "corrupt_root_zarr_json": ValueError,
    "corrupt_array_zarr_json": ValueError,
    "corrupt_zarray": ValueError,
    "corrupt_zattrs": ValueError,
    "missing_indptr_chunk": ValueError,
    "x_shape_mismatch": ValueError,
    "indptr_not_monotone": ValueError,
    "indptr_past_data": ValueError,
    "index_out_of_range": ValueError,
    "unknown_encoding": NotImplementedError,
    "newer_encoding_version": NotImplementedError,
    "output_is_input": ValueError,
    "output_is_input_other_spelling": ValueError,
    "output_is_input_symlink": ValueError,
    "output_exists": FileExistsError,
    "output_dir_not_writable": OSError,
    "bad_join": ValueError,
    "bad_axis": ValueError,
    "bad_max_memory": ValueError,
    "keys_count": ValueError,
    "duplicate_var_names_outer": ValueError,
    "zero_rows_allowed": None,
    "empty_intersection_warns": None,
}


def test_every_bad_input_case_has_a_type():
    assert sorted(EXPECTED_TYPES) == sorted(tb.CASES)


@pytest.mark.parametrize("name", sorted(tb.CASES))
def test_bad_input_exception_types(tmp_path, name):
    case = tb.CASES[name](tmp_path)
    existing = [p for p in case.inputs if p.exists() or p.is_symlink()]
    before = {str(p): tree_digest(p) for p in existing}
    out = Path(case.out_name) if case.out_name.startswith("/") else tmp_path / case.out_name
    out_before = tree_digest(out) if out.exists() else None
    _, inputs, output, kw = translate(["concat", *map(str, case.inputs), "-o", str(out), *case.args])
    kw["force"] = "--force" in case.args
    expected = EXPECTED_TYPES[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if expected is None:
            adcat.concat_on_disk(inputs, output, **kw)
            assert out.exists()
            if case.warns:
                assert any(issubclass(w.category, UserWarning) for w in caught)
        else:
            with pytest.raises(expected) as info:
                adcat.concat_on_disk(inputs, output, **kw)
            assert isinstance(info.value, adcat.AdcatError)
            msg = str(info.value)
            assert "\n" not in msg and "panicked" not in msg
            for m in case.mentions:
                assert m.lstrip("-").replace("-", "_") in msg.replace("-", "_"), (m, msg)
            if out_before is None:
                assert not out.exists(), "an output was left behind"
            else:
                assert tree_digest(out) == out_before, "an existing output was modified"
    if not str(out).startswith("/proc"):
        assert tb._leftovers(out.resolve().parent) == []
    for p in existing:
        assert tree_digest(p) == before[str(p)], f"input {p.name} changed"


def test_argument_errors_as_anndata(tmp_path):
    a = tb._good(tmp_path)
    cases = [
        (dict(in_files=[], out_file=tmp_path / "o.h5ad"), ValueError, "No objects to concatenate"),
        (dict(in_files=[a], out_file=tmp_path / "nodir" / "o.h5ad"), FileNotFoundError, "Parent directory"),
        (dict(in_files=[a, a], out_file=tmp_path / "o.h5ad", merge="bogus"), KeyError, "bogus"),
        (dict(in_files=[a, a], out_file=tmp_path / "o.h5ad", uns_merge=lambda ds: {}), NotImplementedError, "callable"),
        (dict(in_files={"x": a, "y": a}, out_file=tmp_path / "o.h5ad", keys=["p", "q"]), TypeError, "mapping"),
        (dict(in_files=[a, a], out_file=tmp_path / "o.h5ad", axis="cells"), ValueError, "axis"),
        (dict(in_files=[a, a], out_file=object()), TypeError, "out_file"),
        (dict(in_files=[a, 42], out_file=tmp_path / "o.h5ad"), TypeError, "in_files"),
    ]
    for kw, typ, text in cases:
        with pytest.raises(typ, match=text) as info:
            adcat.concat_on_disk(**kw)
        assert isinstance(info.value, adcat.AdcatError)
    assert not (tmp_path / "o.h5ad").exists()


@pytest.fixture(scope="module")
def big_input(tmp_path_factory, adcat_bin) -> Path:
    """One 100,000 x 2,000 CSR input (200 MB), used several times per run."""
    p = tmp_path_factory.mktemp("big") / "big.h5ad"
    subprocess.run([adcat_bin, "generate", p, "--cells", "100000", "--genes", "2000", "-q"], check=True)
    return p


def test_ctrl_c_stops_and_leaves_nothing(big_input, tmp_path):
    inputs = [big_input] * 4
    before = {p: tree_digest(p) for p in inputs}
    out = tmp_path / "out.h5ad"
    seen = threading.Event()

    def interrupt_once_writing():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(".adcat-tmp" in p.name for p in tmp_path.iterdir()):
                time.sleep(0.3)  # well inside the write
                seen.set()
                _thread.interrupt_main()
                return
            time.sleep(0.01)

    t = threading.Thread(target=interrupt_once_writing)
    t.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        adcat.concat_on_disk(inputs, out, index_unique="-", progress=False)
    stopped_after = time.monotonic() - t0
    t.join()
    assert seen.is_set()
    assert not out.exists()
    assert tb._leftovers(tmp_path) == []
    assert all(tree_digest(p) == d for p, d in before.items())
    # The same call afterwards runs to the end (the stop was this run's only).
    adcat.concat_on_disk(inputs[:2], out, index_unique="-", progress=False)
    assert ad.read_h5ad(out, backed="r").n_obs == 200_000
    assert stopped_after < 30


def test_gil_released_while_running(big_input, tmp_path):
    inputs = [big_input] * 2
    ticks = []
    running = threading.Event()
    done = threading.Event()

    def count():
        running.set()
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    running.wait()
    t0 = time.monotonic()
    adcat.concat_on_disk(inputs, tmp_path / "out.zarr", index_unique="-", progress=False)
    t1 = time.monotonic()
    done.set()
    t.join()
    during = [x for x in ticks if t0 < x < t1]
    # The other thread ran throughout (a held GIL would give it nothing until the end).
    assert t1 - t0 > 0.2
    assert len(during) > 0.25 * (t1 - t0) / 0.001 * 0.1, (len(during), t1 - t0)
    gaps = np.diff([t0, *during, t1])
    assert gaps.max() < 0.5, gaps.max()


def _adata(seed: int, n: int = 6) -> ad.AnnData:
    return ad.AnnData(X=np.arange(n * 3, dtype=np.float32).reshape(n, 3) + seed, obs={"k": [seed] * n})


@pytest.mark.parametrize("file_format", ["h5ad", "zarr"])
def test_open_groups_as_anndata_tests_pass_them(tmp_path, file_format):
    """anndata's test_write_using_groups: read-only inputs, a group opened "w" as output."""
    from anndata.experimental.merge import as_group

    def store(name):
        return tmp_path / f"{name}.h5ad" if file_format == "h5ad" else MemoryStore()

    a, b = _adata(0), _adata(1)
    s1, s2, so = store("in"), store("in2"), store("out")
    getattr(a, f"write_{file_format}")(s1)
    getattr(b, f"write_{file_format}")(s2)
    with as_group(s1, mode="r") as f1, as_group(s2, mode="r") as f2, as_group(so, mode="w") as fout:
        adcat.concat_on_disk([f1, f2], fout)
    got = getattr(ad, f"read_{file_format}")(so)
    assert_equal(got, ad.concat([a, b]))


def test_inputs_as_stores_subgroups_and_writable_files(tmp_path):
    a, b, c = _adata(0), _adata(1), _adata(2)
    mem = MemoryStore()
    a.write_zarr(mem)  # a zarr store in memory
    with h5py.File(tmp_path / "nested.h5", "w") as f:  # a subgroup of an HDF5 file
        ad.io.write_elem(f, "sample", b)
    c.write_h5ad(tmp_path / "c.h5ad")
    out = tmp_path / "out.zarr"
    with h5py.File(tmp_path / "nested.h5", "r") as f, h5py.File(tmp_path / "c.h5ad", "r+") as fc:
        adcat.concat_on_disk({"a": mem, "b": f["sample"], "c": fc}, out, label="batch", index_unique="-")
    assert_equal(ad.read_zarr(out), ad.concat({"a": a, "b": b, "c": c}, label="batch", index_unique="-"))


def test_local_zarr_group_output_and_zarr_format_setting(tmp_path):
    a, b = _adata(0), _adata(1)
    a.write_h5ad(tmp_path / "a.h5ad")
    b.write_h5ad(tmp_path / "b.h5ad")
    with ad.settings.override(zarr_write_format=2):
        adcat.concat_on_disk([tmp_path / "a.h5ad", tmp_path / "b.h5ad"], tmp_path / "v2.zarr")
    assert (tmp_path / "v2.zarr" / ".zgroup").exists()
    g = zarr.open_group(tmp_path / "g.zarr", mode="w", zarr_format=3)
    adcat.concat_on_disk([str(tmp_path / "a.h5ad"), tmp_path / "b.h5ad"], g)
    assert (tmp_path / "g.zarr" / "zarr.json").exists()
    expected = ad.concat([a, b])
    assert_equal(ad.read_zarr(tmp_path / "v2.zarr"), expected)
    assert_equal(ad.read_zarr(tmp_path / "g.zarr"), expected)


def test_output_path_without_a_suffix_is_zarr_as_in_anndata(tmp_path):
    """anndata's rule: `.h5ad` means HDF5, any other path a zarr store."""
    a, b = _adata(0), _adata(1)
    a.write_h5ad(tmp_path / "a.h5ad")
    b.write_h5ad(tmp_path / "b.h5ad")
    adcat.concat_on_disk([tmp_path / "a.h5ad", tmp_path / "b.h5ad"], tmp_path / "atlas")
    assert (tmp_path / "atlas" / "zarr.json").exists()
    assert_equal(ad.read_zarr(tmp_path / "atlas"), ad.concat([a, b]))


def test_bare_store_output_takes_anndatas_setting_and_warns_as_anndata(tmp_path):
    """A store (not a group) gets the group anndata would create: v2 when the setting says
    so, with anndata's own DeprecationWarning (anndata's test_zarr_write_format_deprecated)."""
    a, b = _adata(0), _adata(1)
    a.write_h5ad(tmp_path / "a.h5ad")
    b.write_h5ad(tmp_path / "b.h5ad")
    out = zarr.storage.MemoryStore()
    with ad.settings.override(zarr_write_format=2):
        with pytest.warns(DeprecationWarning, match="zarr v3 will become the only option"):
            adcat.concat_on_disk([tmp_path / "a.h5ad", tmp_path / "b.h5ad"], out)
    group = zarr.open_group(out, mode="r")
    assert group.metadata.zarr_format == 2
    assert_equal(ad.io.read_elem(group), ad.concat([a, b]))
    local = zarr.storage.LocalStore(tmp_path / "local.zarr")
    adcat.concat_on_disk([tmp_path / "a.h5ad", tmp_path / "b.h5ad"], local, zarr_format=3)
    assert (tmp_path / "local.zarr" / "zarr.json").exists()
    assert_equal(ad.read_zarr(tmp_path / "local.zarr"), ad.concat([a, b]))


def test_force_false_and_default_overwrite(tmp_path):
    a = tb._good(tmp_path)
    out = tmp_path / "o.h5ad"
    out.write_bytes(b"old")
    adcat.concat_on_disk([a, a], out, keys=["x", "y"], index_unique="-")  # anndata replaces
    assert ad.read_h5ad(out).n_obs == 40
    with pytest.raises(FileExistsError):
        adcat.concat_on_disk([a, a], out, force=False, index_unique="-")
    with pytest.raises(FileExistsError):
        adcat.convert(a, out)


def test_progress_callback_and_bar(tmp_path, monkeypatch, capsys):
    pytest.importorskip  # tqdm is in the oracle venv's requirements: a missing one fails below
    import tqdm  # noqa: F401

    a = tb._good(tmp_path)
    adcat.concat_on_disk([a, a], tmp_path / "o.h5ad", index_unique="-", progress=True)
    err = capsys.readouterr().err
    assert "adcat concat" in err, err
    adcat.concat_on_disk([a, a], tmp_path / "q.h5ad", index_unique="-")  # not interactive: silent
    assert capsys.readouterr().err == ""


def test_convert_plan_inspect_validate_match_the_cli(run_adcat, tmp_path):
    a = tb._good(tmp_path)
    b = tb._good(tmp_path, "b.h5ad", seed=1)
    adcat.convert(a, tmp_path / "a.zarr", zarr_format=2, compression="zstd:5")
    assert_equal(ad.read_zarr(tmp_path / "a.zarr"), ad.read_h5ad(a))
    assert (tmp_path / "a.zarr" / ".zgroup").exists()
    cli_plan = json.loads(run_adcat("plan", a, tmp_path / "a.zarr", "-o", tmp_path / "p.h5ad", "--join", "outer", "--label", "b", "--json").stdout)
    py_plan = adcat.plan([a, tmp_path / "a.zarr"], tmp_path / "p.h5ad", join="outer", label="b", max_memory="1GiB")
    assert py_plan == cli_plan
    assert not (tmp_path / "p.h5ad").exists()
    assert adcat.inspect(a) == json.loads(run_adcat("inspect", "--json", a).stdout)
    assert adcat.validate(b) == []
    bad = tmp_path / "bad.h5ad"
    shutil.copy(a, bad)
    tb.set_attr(bad, "X", "shape", np.array([20, 6]))
    problems = adcat.validate(bad)
    cli = run_adcat("validate", bad, expect_success=False).stdout.splitlines()
    assert problems and [f"{bad}: {p}" for p in problems] == cli


def test_adcat_command_from_the_package(tmp_path):
    script = Path(sys.executable).parent / "adcat"
    assert script.exists(), "the package's `adcat` script is not installed"
    a = tb._good(tmp_path)
    proc = subprocess.run([script, "concat", a, a, "--index-unique", "-", "-o", tmp_path / "o.zarr", "-q"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert ad.read_zarr(tmp_path / "o.zarr").n_obs == 40
    proc = subprocess.run([script, "concat", a, "-o", tmp_path / "o.zarr"], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.startswith("adcat: error:") and "exists" in proc.stderr
    proc = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("adcat ")


def test_help_is_useful():
    doc = adcat.concat_on_disk.__doc__
    for section in ["Parameters", "Returns", "Raises", "Examples", "max_loaded_elems", "in_files"]:
        assert section in doc
    assert (Path(adcat.__file__).parent / "py.typed").exists()
