"""Self-checks of the oracle itself (no adcat involved).

The checks that test_convert applies to adcat's outputs must hold for anndata's own
stores: every fixture, written by anndata in each format, reads back identical to
its h5ad write, has the same (normalised) store tree, is readable by plain h5py /
zarr-python, and anndata's zarr stores pass the metadata checks (consolidated, no
`_zarrs`, v3 sharded unless written with `auto_shard_zarr_v3=False`).
"""

from __future__ import annotations

import warnings

import pytest
from anndata.tests.helpers import assert_equal

import fixtures as fx
import oracle


def _cases():
    for name in fx.FIXTURES:
        meta = fx.fixture_meta(name)
        marks = [pytest.mark.skip(reason=meta.unavailable)] if meta.unavailable else []
        for fmt in fx.FORMATS:
            yield pytest.param(name, fmt, id=f"{name}-{fmt}", marks=marks)


@pytest.mark.parametrize(("name", "fmt"), list(_cases()))
def test_fixture_is_consistent_across_formats(name, fmt, fixture_files):
    meta = fx.fixture_meta(name)
    path = fixture_files.path(name, fmt)
    ref, got = fixture_files.read(name, "h5ad"), fixture_files.read(name, fmt)
    with fx.pandas_options(meta.pandas_options), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle.assert_identical(ref, got)
        if not meta.nan_in_dense:
            assert_equal(ref, got, exact=True)
    assert oracle.dtype_report(ref) == oracle.dtype_report(got)

    diff = oracle.diff_trees(
        oracle.normalise_tree(fixture_files.tree(name, "h5ad")),
        oracle.normalise_tree(fixture_files.tree(name, fmt)),
    )
    assert not diff, "\n".join(msg for _, msg in diff)

    if fmt.startswith("h5ad"):
        assert oracle.read_all_h5(path) > 0
    else:
        zfmt = 2 if fmt == "zarr2" else 3
        problems = oracle.zarr_metadata_problems(path, zfmt, expect_sharded=fmt == "zarr3")
        assert not problems, "\n".join(problems)
        assert oracle.read_all_zarr(path) > 0


def test_encodings_covered(fixture_files):
    """Between them the fixtures exercise every encoding anndata 0.13.4 writes."""
    wanted = {
        "anndata", "raw", "dict", "dataframe", "array", "string-array", "csr_matrix",
        "csc_matrix", "categorical", "nullable-integer", "nullable-boolean",
        "nullable-string-array", "numeric-scalar", "string", "null", "rec-array",
    }
    if fx.ak is not None:
        wanted.add("awkward-array")
    seen: set[str] = set()
    na_values: set[str] = set()
    for name in fx.available_fixtures():
        for node in fixture_files.tree(name, "zarr3").values():
            if node.encoding_type:
                seen.add(node.encoding_type)
            na_values |= {v for k, v in node.attrs if k == "na-value"}
    assert wanted <= seen, f"not covered: {sorted(wanted - seen)}"
    assert na_values == {'"NA"', '"NaN"'}, na_values
