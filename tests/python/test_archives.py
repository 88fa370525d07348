"""Real files written by anndata's own releases: the archives anndata 0.13.4 keeps in its
source distribution (`tests/data/archives/`: h5ad and zarr stores written by anndata
0.7.0, 0.7.8, 0.11.4 and 0.13.3), fetched from PyPI by the test run and cached in
`target/test-data/`.

Each converts to h5ad, zarr v3 and zarr v2 and reads back in anndata exactly equal to
anndata's read of the archive; legacy files concatenate with each other and with modern
files, equal to `anndata.concat` of anndata's reads.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import warnings
import zipfile
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from anndata.tests.helpers import assert_equal

import downloads
import oracle
from test_concat import read, write

CACHE = downloads.CACHE


def anndata_sdist() -> Path:
    """anndata 0.13.4's source distribution, downloaded once into the cache."""
    try:
        return downloads.anndata_sdist()
    except downloads.DownloadError as e:
        pytest.fail(str(e), pytrace=False)


def archives_root() -> Path:
    """The unpacked `tests/data/archives` of anndata 0.13.4's sdist (downloaded once)."""
    root = CACHE / "anndata-0.13.4-archives"
    tarball = anndata_sdist()
    with downloads.cache_lock("anndata-archives"):
        if not (root / "v0.13.3" / "adata.h5ad").exists():
            _unpack_archives(tarball, root)
    return root


def _unpack_archives(tarball: Path, root: Path) -> None:
    tmp = root.with_suffix(".partial")
    shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted run
    with tarfile.open(tarball) as t:
        members = [m for m in t.getmembers() if "/tests/data/archives/" in m.name and m.isfile()]
        for m in members:
            rel = m.name.split("/tests/data/archives/", 1)[1]
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            src = t.extractfile(m)
            assert src is not None
            dest.write_bytes(src.read())
    for z in tmp.glob("*/adata.zarr.zip"):
        with zipfile.ZipFile(z) as zf:
            zf.extractall(z.parent / "adata.zarr")
    tmp.rename(root)


@pytest.fixture(scope="session")
def archives() -> Path:
    return archives_root()


SCANPY = "scanpy==1.11.5"


@pytest.fixture(scope="session")
def pbmc68k_reduced() -> Path:
    """scanpy's bundled `10x_pbmc68k_reduced.h5ad` (real scanpy output of the anndata 0.5/0.6
    era: compound obs/var/obsm, raw.X at the root, rank_genes_groups as fixed-length byte
    string records), from scanpy's wheel."""
    dest = CACHE / "pbmc68k_reduced.h5ad"
    with downloads.cache_lock("pbmc68k_reduced"):
        if not dest.exists():
            _extract_pbmc68k_reduced(dest)
    return dest


def _extract_pbmc68k_reduced(dest: Path) -> None:
    wheels = CACHE / "wheels"
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", SCANPY, "-d", str(wheels)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(wheels.glob("scanpy-*.whl"))
    if proc.returncode != 0 or not found:
        pytest.fail(f"cannot download scanpy's wheel for its sample h5ad: `{' '.join(cmd)}` said:\n{proc.stderr}", pytrace=False)
    with zipfile.ZipFile(found[0]) as zf:
        data = zf.read("scanpy/datasets/10x_pbmc68k_reduced.h5ad")
    tmp = dest.with_suffix(".partial")
    tmp.write_bytes(data)
    tmp.rename(dest)


H5AD_VERSIONS = ["v0.5.0", "v0.7.0", "v0.7.8", "v0.11.4", "v0.13.3"]
#: zarr stores of anndata 0.7 hold `__categories` (a name zarrs reserves) and no
#: consolidated metadata.
ZARR_VERSIONS = ["v0.7.0", "v0.7.8", "v0.11.4", "v0.13.3"]
OUTPUTS = {"h5ad": ("out.h5ad", []), "zarr3": ("out.zarr", []), "zarr2": ("out.zarr", ["--zarr-format", "2"])}


def assert_same(expected: ad.AnnData, got: ad.AnnData) -> None:
    """Equal values (NaN equal to NaN, which `exact=True` does not allow) and equal
    dtypes of every element."""
    assert_equal(expected, got, exact=False)
    assert oracle.dtype_report(got) == oracle.dtype_report(expected)


def read_archive(p: Path) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.read_h5ad(p) if p.suffix == ".h5ad" else ad.read_zarr(p)


@pytest.mark.parametrize("out", list(OUTPUTS))
@pytest.mark.parametrize("version", H5AD_VERSIONS)
def test_h5ad_archive_converts(archives, run_adcat, tmp_path, version, out):
    src = archives / version / "adata.h5ad"
    name, extra = OUTPUTS[out]
    run_adcat("convert", src, tmp_path / name, *extra)
    assert_same(read_archive(src), read(tmp_path / name))


@pytest.mark.parametrize("out", list(OUTPUTS))
@pytest.mark.parametrize("version", ZARR_VERSIONS)
def test_zarr_archive_converts(archives, run_adcat, tmp_path, version, out):
    src = archives / version / "adata.zarr"
    name, extra = OUTPUTS[out]
    run_adcat("convert", src, tmp_path / name, *extra)
    assert_same(read_archive(src), read(tmp_path / name))


def check_archive_concat(run_adcat, tmp_path, paths, out_fmt, via="concat", **kw):
    """adcat concat of `paths` (or the same as a job: create, run in two steps, finish)
    equals anndata.concat of anndata's reads, as anndata itself would write and read that
    result."""
    out = tmp_path / ("out.h5ad" if out_fmt == "h5ad" else "out.zarr")
    opts = ["--zarr-format", "2"] if out_fmt == "zarr2" else []
    for k, v in kw.items():
        opts += [f"--{k.replace('_', '-')}", str(v)]
    if via == "concat":
        run_adcat("concat", *paths, "-o", out, *opts)
    else:
        jobdir = tmp_path / "job"
        run_adcat("job", "create", *paths, "-o", out, *opts, jobdir)
        # Worker 1 of 2 alone leaves the writing tasks whose counts worker 0 owns pending
        # (exit 1); a second run does the rest.
        p = run_adcat("job", "run", jobdir, "--worker", "1/2", expect_success=False)
        assert p.returncode in (0, 1), p.stderr
        run_adcat("job", "run", jobdir)
        run_adcat("job", "finish", jobdir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat([read_archive(p) for p in paths], **kw)
    keep_missing_strings(expected)
    roundtrip = read(write(expected, tmp_path / f"expected{out.suffix}", out_fmt))
    assert_equal(roundtrip, read(out), exact=False)


def keep_missing_strings(a: ad.AnnData) -> None:
    """anndata.concat turns categoricals it cannot unify (ordered ones with different
    categories, or one missing from some inputs) into object columns holding NaN, which its
    writers store as the string "nan" (zarr) or refuse (h5ad). adcat keeps them as
    nullable strings with NaN missing (docs/differences.md); the expectation does the
    same."""
    frames = [a.obs, a.var] + [v for m in (a.obsm, a.varm) for v in m.values() if isinstance(v, pd.DataFrame)]
    for df in frames:
        for col in df.columns:
            s = df[col]
            if s.dtype == object and s.isna().any() and s.dropna().map(type).eq(str).all():
                df[col] = s.astype(pd.StringDtype("python", na_value=np.nan))


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_legacy_archives_concatenate_with_themselves_and_each_other(archives, run_adcat, tmp_path, join):
    paths = [archives / v / "adata.h5ad" for v in ["v0.7.0", "v0.7.8", "v0.7.0"]]
    paths += [archives / v / "adata.zarr" for v in ["v0.7.8", "v0.7.0"]]
    check_archive_concat(run_adcat, tmp_path, paths, "zarr3", join=join, label="batch", merge="same", uns_merge="same")


@pytest.mark.parametrize("via", ["concat", "job"])
@pytest.mark.parametrize("join", ["inner", "outer"])
def test_legacy_and_modern_archives_concatenate(archives, run_adcat, tmp_path, join, via):
    # The 0.13.3 archive holds awkward arrays in obsm: the outer join fills them with
    # None for the inputs without them.
    paths = [archives / "v0.7.8" / "adata.h5ad", archives / "v0.13.3" / "adata.h5ad", archives / "v0.11.4" / "adata.h5ad"]
    paths += [archives / "v0.13.3" / "adata.zarr", archives / "v0.11.4" / "adata.zarr", archives / "v0.11.4" / "adata.h5ad"]
    check_archive_concat(run_adcat, tmp_path, paths, "h5ad", via, join=join, label="batch", index_unique="-")


@pytest.mark.parametrize("out", list(OUTPUTS))
def test_scanpy_pbmc68k_reduced_converts(pbmc68k_reduced, run_adcat, tmp_path, out):
    name, extra = OUTPUTS[out]
    run_adcat("convert", pbmc68k_reduced, tmp_path / name, *extra)
    assert_same(read_archive(pbmc68k_reduced), read(tmp_path / name))


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_scanpy_file_concatenates_with_itself_and_modern_files(pbmc68k_reduced, run_adcat, tmp_path, join):
    """The 0.5-era layout next to its own conversion to current encodings (zarr v3)."""
    modern = tmp_path / "modern.zarr"
    run_adcat("convert", pbmc68k_reduced, modern)
    check_archive_concat(run_adcat, tmp_path, [pbmc68k_reduced, modern, pbmc68k_reduced], "h5ad", join=join, label="batch", index_unique="-", merge="same")


@pytest.mark.parametrize("via", ["concat", "job"])
@pytest.mark.parametrize("join", ["inner", "outer"])
def test_pre_07_archive_concatenates_with_07_archives(archives, run_adcat, tmp_path, join, via):
    """The 0.5 layout (compound obs/var, h5sparse, uns categories) with itself, 0.7 h5ad
    and zarr stores and a current one (awkward obsm); disjoint var names, so the outer
    join fills both ways."""
    v05 = archives / "v0.5.0" / "adata.h5ad"
    paths = [v05, archives / "v0.7.8" / "adata.h5ad", v05, archives / "v0.7.0" / "adata.zarr", archives / "v0.13.3" / "adata.zarr"]
    check_archive_concat(run_adcat, tmp_path, paths, "zarr2", via, join=join, label="batch", index_unique="-", merge="same")


@pytest.mark.parametrize("out_fmt", ["h5ad", "zarr3"])
def test_real_files_shuffle(archives, pbmc68k_reduced, run_adcat, tmp_path, out_fmt):
    """`--shuffle` over anndata 0.5, 0.7 (h5ad and zarr) and 0.11 archives and scanpy's
    file: anndata.concat's rows in the documented permutation."""
    from test_shuffle import shuffled

    paths = [archives / "v0.5.0" / "adata.h5ad", archives / "v0.7.0" / "adata.h5ad", archives / "v0.7.8" / "adata.zarr"]
    paths += [archives / "v0.11.4" / "adata.h5ad", pbmc68k_reduced]
    kw = dict(join="outer", label="batch", index_unique="-", merge="same")
    out = tmp_path / ("out.h5ad" if out_fmt == "h5ad" else "out.zarr")
    opts = [a for k, v in kw.items() for a in (f"--{k.replace('_', '-')}", v)]
    run_adcat("concat", *paths, "-o", out, "--shuffle", "--seed", "11", *opts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat([read_archive(p) for p in paths], **kw)
    keep_missing_strings(expected)
    expected = shuffled(expected, 11)
    roundtrip = read(write(expected, tmp_path / f"expected{out.suffix}", out_fmt))
    assert_equal(roundtrip, read(out), exact=False)


def test_real_files_virtual(archives, pbmc68k_reduced, run_adcat, tmp_path):
    """`--virtual` over legacy archives and scanpy's file: what it cannot map (legacy
    encodings) is copied with a warning; the result reads as anndata.concat."""
    paths = [archives / "v0.7.0" / "adata.h5ad", archives / "v0.7.8" / "adata.h5ad", archives / "v0.5.0" / "adata.h5ad", pbmc68k_reduced, pbmc68k_reduced]
    kw = dict(join="outer", label="batch", index_unique="-", merge="same")
    out = tmp_path / "out.h5ad"
    opts = [a for k, v in kw.items() for a in (f"--{k.replace('_', '-')}", v)]
    proc = run_adcat("concat", *paths, "-o", out, "--virtual", *opts)
    assert "copied, not virtual" in proc.stderr, proc.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat([read_archive(p) for p in paths], **kw)
    keep_missing_strings(expected)
    roundtrip = read(write(expected, tmp_path / "expected.h5ad", "h5ad"))
    assert_equal(roundtrip, read(out), exact=False)
    # Two copies of scanpy's file alone share var: its dense X is mapped.
    same = tmp_path / "same.h5ad"
    run_adcat("concat", pbmc68k_reduced, pbmc68k_reduced, "-o", same, "--virtual", "--label", "batch", "--index-unique", "-")
    with h5py.File(same) as f:
        assert f["X"].is_virtual
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ad.concat([read_archive(pbmc68k_reduced)] * 2, label="batch", index_unique="-")
    assert_equal(read(write(expected, tmp_path / "e2.h5ad", "h5ad")), read(same), exact=False)
