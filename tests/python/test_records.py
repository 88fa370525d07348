"""Record arrays (`rec-array`) beyond flat ones: nested records (anndata writes them in
all three formats), sub-array fields (h5ad only: zarr-python cannot store them), and
aligned HDF5 compounds with padding (anndata 0.13.4 cannot read them; adcat converts
them to the packed layout anndata reads)."""

from __future__ import annotations

import warnings

import anndata as ad
import h5py
import numpy as np
import pytest
from anndata.tests.helpers import assert_equal

from test_archives import OUTPUTS
from test_concat import FORMATS, read, write

NESTED = np.array(
    [(1, (0.5, (7, 1.5)), "pq"), (2, (2.5, (8, -1.0)), "é")],
    dtype=[("x", "i4"), ("pt", [("u", "f4"), ("inner", [("k", "i8"), ("w", "f8")])]), ("name", "U4")],
)
#: Strings inside nested records: anndata writes and reads them in zarr only (h5py cannot
#: convert them for writing, and anndata cannot read them from HDF5).
NESTED_STR = np.array([(1, (0.5, "ab")), (2, (1.5, ""))], dtype=[("x", "i4"), ("pt", [("u", "f4"), ("tag", "U3")])])
SUBARRAY = np.array([(1, [0.5, 1.5]), (2, [2.5, 3.5])], dtype=[("x", "i4"), ("v", "f4", (2,))])


def with_uns(**uns) -> ad.AnnData:
    return ad.AnnData(X=np.zeros((2, 2), dtype=np.float32), uns=uns)


def assert_records_equal(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype.names == b.dtype.names
    for name in a.dtype.names:
        if a.dtype[name].names:
            assert_records_equal(a[name], b[name])
        else:
            assert list(a[name].tolist()) == list(b[name].tolist()), name


@pytest.mark.parametrize("out", list(OUTPUTS))
@pytest.mark.parametrize("src", ["h5ad", "zarr", "zarr2"])
def test_nested_records_convert(run_adcat, tmp_path, src, out):
    p = write(with_uns(r=NESTED), tmp_path / f"in{FORMATS[src]}", src)
    name, extra = OUTPUTS[out]
    run_adcat("convert", p, tmp_path / name, *extra)
    expected, got = read(p).uns["r"], read(tmp_path / name).uns["r"]
    assert got.dtype == expected.dtype
    assert_records_equal(expected, got)


def widthless(dt: np.dtype) -> str:
    """The dtype with string widths dropped: zarr outputs size string fields to the
    longest value, as for flat records (docs/format.md)."""
    import re

    return re.sub(r"U\d+", "U", str(dt))


@pytest.mark.parametrize("out", ["zarr3", "zarr2"])
@pytest.mark.parametrize("src", ["zarr", "zarr2"])
def test_nested_string_fields_in_zarr(run_adcat, tmp_path, src, out):
    p = write(with_uns(r=NESTED_STR), tmp_path / f"in{FORMATS[src]}", src)
    name, extra = OUTPUTS[out]
    run_adcat("convert", p, tmp_path / name, *extra)
    expected, got = read(p).uns["r"], read(tmp_path / name).uns["r"]
    assert widthless(got.dtype) == widthless(expected.dtype)
    assert_records_equal(expected, got)


def test_nested_string_fields_kept_in_h5ad(run_adcat, tmp_path):
    """No h5ad anndata reads can hold them; adcat keeps the values (variable-length
    strings in the nested compound, as h5py reads them) rather than drop or refuse."""
    p = write(with_uns(r=NESTED_STR), tmp_path / "in.zarr", "zarr")
    run_adcat("convert", p, tmp_path / "out.h5ad")
    with h5py.File(tmp_path / "out.h5ad") as f:
        got = f["uns/r"][()]
    assert list(got["x"]) == [1, 2] and list(got["pt"]["u"]) == [0.5, 1.5]
    assert [t.decode() for t in got["pt"]["tag"]] == ["ab", ""]


def test_nested_records_merge_across_formats(run_adcat, tmp_path):
    paths = [write(with_uns(r=NESTED), tmp_path / f"in{i}{FORMATS[f]}", f) for i, f in enumerate(["h5ad", "zarr", "zarr2"])]
    run_adcat("concat", *paths, "-o", tmp_path / "out.h5ad", "--uns-merge", "first")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat([read(p) for p in paths], uns_merge="first")
    assert_records_equal(expected.uns["r"], read(tmp_path / "out.h5ad").uns["r"])


def test_subarray_fields_in_h5ad_and_refused_for_zarr(run_adcat, tmp_path):
    p = write(with_uns(r=SUBARRAY), tmp_path / "in.h5ad", "h5ad")
    run_adcat("convert", p, tmp_path / "out.h5ad")
    got = read(tmp_path / "out.h5ad").uns["r"]
    assert got.dtype == SUBARRAY.dtype
    assert np.array_equal(got["v"], SUBARRAY["v"]) and np.array_equal(got["x"], SUBARRAY["x"])
    proc = run_adcat("convert", p, tmp_path / "out.zarr", expect_success=False)
    assert proc.returncode != 0
    assert "uns/r" in proc.stderr and "sub-array record field v" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.zarr").exists()
    # A job stages an h5ad output as zarr: refused the same way, nothing left behind.
    proc = run_adcat("job", "create", p, "-o", tmp_path / "job.h5ad", "--uns-merge", "first", tmp_path / "job", expect_success=False)
    assert proc.returncode != 0 and "sub-array record field v" in proc.stderr, proc.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.h5ad", "out.h5ad"]


@pytest.mark.parametrize("out", list(OUTPUTS))
def test_aligned_compounds_anndata_cannot_read(run_adcat, tmp_path, out):
    aligned = np.dtype({"names": ["a", "b", "s"], "formats": ["i1", "f8", "S3"], "offsets": [0, 8, 16], "itemsize": 24})
    values = np.array([(1, 2.5, b"ab"), (3, 4.5, b"cde")], dtype=aligned)
    p = write(with_uns(), tmp_path / "in.h5ad", "h5ad")
    with h5py.File(p, "a") as f:
        d = f["uns"].create_dataset("r", data=values)
        d.attrs["encoding-type"], d.attrs["encoding-version"] = "rec-array", "0.2.0"
    with pytest.raises(TypeError):
        read(p)  # anndata 0.13.4: "Cannot cast array data ... according to the rule 'unsafe'"
    name, extra = OUTPUTS[out]
    run_adcat("convert", p, tmp_path / name, *extra)
    got = read(tmp_path / name)
    assert list(got.uns["r"]["a"]) == [1, 3] and list(got.uns["r"]["b"]) == [2.5, 4.5]
    assert list(got.uns["r"]["s"]) == ["ab", "cde"]
    assert_equal(got.X, np.zeros((2, 2), dtype=np.float32))
