"""Files from anndata < 0.8 (no root attributes, dataframe 0.1.0 with categories in
`__categories` referenced by HDF5 object references, arrays without encoding attributes),
built with h5py the way those versions wrote them. adcat converts them to the current
encodings; anndata must read the result as it reads the legacy file."""

from __future__ import annotations

import warnings

import anndata as ad
import h5py
import numpy as np
import pytest
from anndata.tests.helpers import assert_equal

from test_concat import read

STR = h5py.string_dtype("utf-8")


def write_legacy(path):
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=np.arange(6, dtype=np.float32).reshape(3, 2))
        obs = f.create_group("obs")
        obs.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.1.0", "_index": "_index"})
        obs.attrs["column-order"] = np.array(["ct", "n", "ordered_ct"], dtype=object).astype(STR)
        obs.create_dataset("_index", data=np.array(["c0", "c1", "c2"], dtype=object), dtype=STR)
        cats = obs.create_group("__categories")
        ct = cats.create_dataset("ct", data=np.array(["x", "y"], dtype=object), dtype=STR)
        oc = cats.create_dataset("ordered_ct", data=np.array(["lo", "hi"], dtype=object), dtype=STR)
        oc.attrs["ordered"] = True
        codes = obs.create_dataset("ct", data=np.array([0, 1, -1], dtype=np.int8))
        codes.attrs["categories"] = ct.ref
        ocodes = obs.create_dataset("ordered_ct", data=np.array([1, 0, 1], dtype=np.int8))
        ocodes.attrs["categories"] = oc.ref
        obs.create_dataset("n", data=np.array([1, 2, 3], dtype=np.int64))
        var = f.create_group("var")
        var.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.1.0", "_index": "_index"})
        var.attrs["column-order"] = np.array([], dtype=float)
        var.create_dataset("_index", data=np.array(["g0", "g1"], dtype=object), dtype=STR)
        uns = f.create_group("uns")
        uns.create_dataset("value", data=np.array([1.5, 2.5]))


@pytest.mark.parametrize("out", ["out.h5ad", "out.zarr"])
def test_legacy_h5ad_converts(run_adcat, tmp_path, out):
    src = tmp_path / "legacy.h5ad"
    write_legacy(src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.read_h5ad(src)
    assert list(expected.obs["ct"].cat.categories) == ["x", "y"], "fixture must read as categorical"
    run_adcat("convert", src, tmp_path / out)
    got = read(tmp_path / out)
    assert_equal(expected, got, exact=True)
    assert got.obs["ordered_ct"].cat.ordered
    # The output uses current encodings only.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ad.OldFormatWarning)
        read(tmp_path / out)


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_legacy_categoricals_concatenate_with_modern_ones(run_adcat, tmp_path, join):
    """dataframe 0.1.0 categoricals (codes + `__categories`) unify with modern
    `categorical` columns as anndata.concat unifies them."""
    import pandas as pd

    legacy = tmp_path / "legacy.h5ad"
    write_legacy(legacy)
    modern = ad.AnnData(np.ones((2, 2), dtype=np.float32))
    modern.obs_names = ["m0", "m1"]
    modern.var_names = ["g0", "g1"]
    modern.obs["ct"] = pd.Categorical(["y", "z"])
    modern.obs["n"] = [7, 8]
    modern_path = tmp_path / "modern.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        modern.write_zarr(modern_path)
    out = tmp_path / "out.h5ad"
    run_adcat("concat", legacy, modern_path, "-o", out, "--join", join, "--label", "batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat([ad.read_h5ad(legacy), ad.read_zarr(modern_path)], join=join, label="batch")
        roundtrip_path = tmp_path / "expected.h5ad"
        expected.write_h5ad(roundtrip_path)
        assert_equal(ad.read_h5ad(roundtrip_path), read(out), exact=False)
    assert list(read(out).obs["ct"].cat.categories) == ["x", "y", "z"]
