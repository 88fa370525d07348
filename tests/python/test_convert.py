"""`adcat convert IN OUT` against anndata 0.13.4 as the oracle.

Every case is fixture x input format (as written by anndata: h5ad, h5ad-gzip,
zarr2, zarr3, zarr3-unsharded) x output format (h5ad, zarr2, zarr3). The output
format comes from OUT's extension (``.h5ad`` -> HDF5, ``.zarr`` -> Zarr);
``--zarr-format 2`` selects Zarr v2, and v3 is the default (no flag is passed for
the zarr3 cases; ``test_explicit_zarr_format_3`` passes ``--zarr-format 3``).

Each conversion runs once per session (cached); three tests check its output:

* ``test_values``: anndata reads OUT back identical to its read of IN:
  ``anndata.tests.helpers.assert_equal(expected, actual, exact=True)`` (which in
  0.13.4 checks sparse index dtypes and DataFrame dtypes, but compares dense arrays
  with ``a == b``: no dtype check and NaN != NaN), plus ``oracle.assert_identical``
  (dtypes everywhere, float bit patterns, NaN-aware), plus an explicit dtype
  fingerprint of X, layers, obsm/varm/obsp/varp and obs/var columns.
* ``test_encodings``: the store trees match node for node: same paths, kinds
  (group/array), ``encoding-type``/``encoding-version``, other attributes
  (normalised across backends), canonical dtypes and shapes. Differences adcat makes
  on purpose go in ``INTENDED_DIFFERENCES`` with a reason.
* ``test_output_store``: plain h5py reads every dataset of an .h5ad output (builtin
  filters only); plain zarr-python reads every array of a .zarr output; zarr outputs
  have no ``_zarrs`` key in any metadata, are consolidated (v2: ``.zmetadata``; v3:
  ``consolidated_metadata`` in the root ``zarr.json``) and, for v3, shard every
  non-scalar, non-struct array (as anndata does by default).
"""

from __future__ import annotations

import fnmatch
import warnings
from pathlib import Path

import h5py
import pytest
from anndata.tests.helpers import assert_equal

import fixtures as fx
import oracle

OUT_FORMATS = ("h5ad", "zarr2", "zarr3")

#: Intended differences between the input's and the output's store trees.
#: Key: an fnmatch pattern over "<fixture>:<in_fmt>-><out_fmt>:/<element path>"
#: (e.g. "*:*->h5ad:/uns/some_key"); value: the reason adcat differs there.
#: Backend differences that anndata itself makes (zarr's `raw` null element) are
#: normalised in `oracle.normalise_tree`, not listed here.
INTENDED_DIFFERENCES: dict[str, str] = {}


def _cases():
    for name in fx.FIXTURES:
        meta = fx.fixture_meta(name)
        marks = [pytest.mark.skip(reason=meta.unavailable)] if meta.unavailable else []
        for in_fmt in fx.FORMATS:
            for out_fmt in OUT_FORMATS:
                yield pytest.param(name, in_fmt, out_fmt, id=f"{name}-{in_fmt}-to-{out_fmt}", marks=marks)


CASES = list(_cases())


def convert_args(src: Path, dst: Path, out_fmt: str) -> list[str]:
    args = ["convert", str(src), str(dst)]
    if out_fmt == "zarr2":
        args += ["--zarr-format", "2"]
    return args


class Conversions:
    """Runs each (fixture, in_fmt, out_fmt) conversion once per session."""

    def __init__(self, root: Path, files, run_adcat) -> None:
        self.root = root
        self.files = files
        self.run_adcat = run_adcat
        self._done: dict[tuple[str, str, str], Path] = {}
        self._failed: dict[tuple[str, str, str], str] = {}

    def output(self, name: str, in_fmt: str, out_fmt: str) -> Path:
        key = (name, in_fmt, out_fmt)
        if key in self._failed:
            pytest.fail(self._failed[key], pytrace=False)
        if key not in self._done:
            src = self.files.path(name, in_fmt)
            dst = self.root / f"{name}.{in_fmt}.to-{out_fmt}{fx.suffix_for(out_fmt)}"
            try:
                self.run_adcat(*convert_args(src, dst, out_fmt))
            except pytest.fail.Exception as e:
                self._failed[key] = str(e)
                raise
            if not dst.exists():
                self._failed[key] = f"adcat exited 0 but wrote no {dst}"
                pytest.fail(self._failed[key], pytrace=False)
            self._done[key] = dst
        return self._done[key]


@pytest.fixture(scope="session")
def conversions(tmp_path_factory, fixture_files, run_adcat) -> Conversions:
    return Conversions(tmp_path_factory.mktemp("converted"), fixture_files, run_adcat)


def _dtype_diff(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    out = []
    for k in sorted(set(expected) | set(actual)):
        if expected.get(k) != actual.get(k):
            out.append(f"{k}: expected {expected.get(k)}, got {actual.get(k)}")
    return out


@pytest.mark.parametrize(("name", "in_fmt", "out_fmt"), CASES)
def test_values(name, in_fmt, out_fmt, conversions, fixture_files):
    out = conversions.output(name, in_fmt, out_fmt)
    meta = fx.fixture_meta(name)
    expected = fixture_files.read(name, in_fmt)
    actual = fx.read_fixture_store(name, out)
    with fx.pandas_options(meta.pandas_options), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle.assert_identical(expected, actual)
        if not meta.nan_in_dense:  # assert_equal(exact=True) uses `a == b`: NaN fails
            assert_equal(expected, actual, exact=True)
    diff = _dtype_diff(oracle.dtype_report(expected), oracle.dtype_report(actual))
    assert not diff, "dtype differences:\n" + "\n".join(diff)


def _allowed(name: str, in_fmt: str, out_fmt: str, path: str) -> bool:
    key = f"{name}:{in_fmt}->{out_fmt}:/{path}"
    return any(fnmatch.fnmatchcase(key, pat) for pat in INTENDED_DIFFERENCES)


@pytest.mark.parametrize(("name", "in_fmt", "out_fmt"), CASES)
def test_encodings(name, in_fmt, out_fmt, conversions, fixture_files):
    out = conversions.output(name, in_fmt, out_fmt)
    expected = oracle.normalise_tree(fixture_files.tree(name, in_fmt))
    actual = oracle.normalise_tree(oracle.store_tree(out))
    problems = [
        msg
        for path, msg in oracle.diff_trees(expected, actual)
        if not _allowed(name, in_fmt, out_fmt, path)
    ]
    assert not problems, f"{len(problems)} store-tree difference(s):\n" + "\n".join(problems)


@pytest.mark.parametrize(("name", "in_fmt", "out_fmt"), CASES)
def test_output_store(name, in_fmt, out_fmt, conversions):
    out = conversions.output(name, in_fmt, out_fmt)
    if out_fmt == "h5ad":
        assert out.is_file(), f"{out} is not a file"
        assert h5py.is_hdf5(out), f"{out} is not an HDF5 file"
        assert oracle.read_all_h5(out) > 0
        with h5py.File(out, "r") as f:
            assert f.attrs.get("encoding-type") == "anndata"
    else:
        assert out.is_dir(), f"{out} is not a directory"
        fmt = 2 if out_fmt == "zarr2" else 3
        problems = oracle.zarr_metadata_problems(out, fmt, expect_sharded=fmt == 3)
        assert not problems, "\n".join(problems)
        assert oracle.read_all_zarr(out) > 0


def test_explicit_zarr_format_3(tmp_path, fixture_files, run_adcat):
    """`--zarr-format 3` is accepted and gives the same result as the default."""
    name = "dataframe_columns"
    src = fixture_files.path(name, "h5ad")
    dst = tmp_path / "out.zarr"
    run_adcat("convert", src, dst, "--zarr-format", "3")
    assert oracle.zarr_metadata_problems(dst, 3, expect_sharded=True) == []
    oracle.assert_identical(fixture_files.read(name, "h5ad"), fx.read_fixture_store(name, dst))
