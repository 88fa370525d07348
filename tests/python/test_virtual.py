"""`adcat concat --virtual -o out.h5ad`: matrices mapped as HDF5 virtual datasets over
the inputs' arrays, not copied.

Oracle: `anndata.concat(inputs, <same options>)`, read back from the virtual output by
anndata (h5py underneath) — also after moving the output with its inputs (relative
names) or alone (absolute names). h5py shows which datasets are virtual and which files
they name. Elements that cannot be mapped are copied, with a warning naming the input.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
from anndata.tests.helpers import assert_equal

from test_append import GENES, batch
from test_concat import read, simple, write


def expected_of(paths, **kw) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.concat([read(p) for p in paths], **kw)


def sources(path: Path, name: str) -> list[str]:
    with h5py.File(path, "r") as f:
        ds = f[name]
        return [m.file_name for m in ds.virtual_sources()] if ds.is_virtual else []


def test_same_var_inputs_are_mapped_not_copied(run_adcat, tmp_path):
    adatas = [batch(i, n) for i, n in enumerate((60, 45, 30))]
    paths = [write(a, tmp_path / f"in{i}.h5ad", "h5ad") for i, a in enumerate(adatas)]
    out = tmp_path / "out.h5ad"
    proc = run_adcat("concat", *paths, "-o", out, "--virtual", "--label", "batch")
    assert "adcat: virtual (mapped from the inputs, no data copied): /X, /layers/counts, /obsm/X_pca, /raw/X" in proc.stderr, proc.stderr
    expected = expected_of(paths, label="batch")
    assert_equal(expected, read(out), exact=False)
    import scanpy as sc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        via_scanpy = sc.read_h5ad(out)
    assert_equal(expected, via_scanpy, exact=False)
    assert via_scanpy.X.sum() == expected.X.sum() and via_scanpy.X.sum() > 0
    for name in ("X/data", "X/indices", "layers/counts/data", "obsm/X_pca", "raw/X/data"):
        assert sources(out, name) == ["in0.h5ad", "in1.h5ad", "in2.h5ad"], name
    assert sources(out, "X/indptr") == [] and sources(out, "obs/qc") == []
    copy = tmp_path / "copy.h5ad"
    run_adcat("concat", *paths, "-o", copy, "--label", "batch", "-q")
    assert out.stat().st_size < copy.stat().st_size
    with h5py.File(out, "r") as f:
        assert all(f[n].id.get_storage_size() == 0 for n in ("X/data", "X/indices", "obsm/X_pca")), "mapped arrays store nothing"
    # The set moves together: names are relative to the output's directory.
    moved = tmp_path / "moved"
    moved.mkdir()
    for p in [*paths, out]:
        shutil.move(p, moved / p.name)
    assert_equal(expected, read(moved / "out.h5ad"), exact=False)


def test_absolute_paths_let_the_output_move_alone(run_adcat, tmp_path):
    src = tmp_path / "inputs"
    src.mkdir()
    paths = [write(simple(20 + i, GENES, prefix=f"a{i}-", seed=i), src / f"in{i}.h5ad", "h5ad") for i in range(2)]
    out = tmp_path / "out.h5ad"
    run_adcat("concat", *paths, "-o", out, "--virtual", "--virtual-paths", "absolute", "-q")
    assert sources(out, "X/data") == [str(p.resolve()) for p in paths]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(out, elsewhere / "out.h5ad")
    assert_equal(expected_of(paths), read(elsewhere / "out.h5ad"), exact=False)
    # auto: inputs below the output's directory by relative path, others by absolute.
    run_adcat("concat", *paths, "-o", out, "--virtual", "-q")
    assert sources(out, "X/data") == [f"inputs/in{i}.h5ad" for i in range(2)]
    beside = elsewhere / "beside.h5ad"
    run_adcat("concat", *paths, "-o", beside, "--virtual", "-q")
    assert sources(beside, "X/data") == [str(p.resolve()) for p in paths]
    run_adcat("concat", *paths, "-o", beside, "--virtual", "--virtual-paths", "relative", "-q", "--force")
    assert sources(beside, "X/data") == [f"../inputs/in{i}.h5ad" for i in range(2)]
    assert_equal(expected_of(paths), read(beside), exact=False)


def test_dense_matrices_are_mapped(run_adcat, tmp_path):
    paths = [write(simple(15 + i, GENES, prefix=f"d{i}-", X="dense", seed=i), tmp_path / f"in{i}.h5ad", "h5ad") for i in range(3)]
    out = tmp_path / "out.h5ad"
    run_adcat("concat", *paths, "-o", out, "--virtual", "-q")
    assert sources(out, "X") == [p.name for p in paths]
    assert_equal(expected_of(paths), read(out), exact=False)


def test_what_needs_reindexing_or_a_new_dtype_is_copied_with_a_warning(run_adcat, tmp_path):
    a = simple(20, GENES, prefix="a", seed=1)
    b = simple(25, GENES[3:] + ["extra"], prefix="b", seed=2)
    c = simple(10, GENES, prefix="c", seed=3, dtype=np.float64)
    paths = [write(x, tmp_path / f"in{i}.h5ad", "h5ad") for i, x in enumerate((a, b, c))]
    out = tmp_path / "out.h5ad"
    proc = run_adcat("concat", *paths[:2], "-o", out, "--virtual", "--join", "outer")
    assert "adcat: warning: /X: copied, not virtual: " in proc.stderr and "needs reindexing (its var differs from the output's)" in proc.stderr, proc.stderr
    assert sources(out, "X/data") == []
    assert_equal(expected_of(paths[:2], join="outer"), read(out), exact=False)
    out2 = tmp_path / "out2.h5ad"
    proc = run_adcat("concat", paths[0], paths[2], "-o", out2, "--virtual")
    assert f"/X: copied, not virtual: {paths[0]} holds float32, the output float64" in proc.stderr, proc.stderr
    assert_equal(expected_of([paths[0], paths[2]]), read(out2), exact=False)


def test_convert_materialises_inputs_beside_it_and_others_with_consent(run_adcat, tmp_path):
    paths = [write(batch(i, 30), tmp_path / f"in{i}.h5ad", "h5ad") for i in range(2)]
    out = tmp_path / "out.h5ad"
    run_adcat("concat", *paths, "-o", out, "--virtual", "-q")
    # Inputs in the virtual file's directory are part of it: no flag needed.
    real = tmp_path / "real.h5ad"
    run_adcat("convert", out, real, "-q")
    assert sources(real, "X/data") == []
    # Mapped from elsewhere (absolute names): the files read need consent.
    (tmp_path / "far").mkdir()
    far = tmp_path / "far" / "out.h5ad"
    run_adcat("concat", *paths, "-o", far, "--virtual", "--virtual-paths", "absolute", "-q")
    proc = run_adcat("convert", far, tmp_path / "r2.h5ad", expect_success=False)
    assert proc.returncode != 0 and not (tmp_path / "r2.h5ad").exists()
    assert f"{far}: X/data: is a virtual dataset mapping data from {paths[0].resolve()}:X/data, outside the directory of the file you named" in proc.stderr, proc.stderr
    assert "--follow-external-links" in proc.stderr
    real2 = tmp_path / "r2.h5ad"
    run_adcat("--follow-external-links", "convert", far, real2, "-q")
    expected = expected_of(paths)
    for p in paths:
        p.unlink()
    assert_equal(expected, read(real), exact=False)
    assert_equal(expected, read(real2), exact=False)
    # A missing input would read as zeros: refused even with consent.
    proc = run_adcat("--follow-external-links", "convert", out, tmp_path / "r3.h5ad", expect_success=False)
    assert proc.returncode != 0 and "in0.h5ad:X/data, and that file is missing (its values would read as zeros)" in proc.stderr, proc.stderr


@pytest.mark.parametrize("X", ["csr", "dense"])
def test_gzip_inputs_in_small_chunks_are_mapped(run_adcat, tmp_path, X):
    """Downloads are often gzip-compressed with h5py's small chunks: libhdf5 inflates
    the mapped chunks on read."""
    paths = []
    for i in range(3):
        p = tmp_path / f"in{i}.h5ad"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch(i, 40, X=X).write_h5ad(p, compression="gzip", compression_opts=9)
        paths.append(p)
    out = tmp_path / "out.h5ad"
    run_adcat("concat", *paths, "-o", out, "--virtual")
    name = "X/data" if X == "csr" else "X"
    assert sources(out, name) == [p.name for p in paths]
    assert_equal(expected_of(paths), read(out), exact=False)


def test_a_virtual_h5ad_beside_its_inputs_is_an_input_like_any_other(run_adcat, tmp_path):
    paths = [write(batch(i, 20), tmp_path / f"in{i}.h5ad", "h5ad") for i in range(3)]
    out = tmp_path / "v.h5ad"
    run_adcat("concat", paths[0], paths[1], "-o", out, "--virtual", "-q")
    both = tmp_path / "both.zarr"
    run_adcat("concat", out, paths[2], "-o", both, "-q")
    assert_equal(expected_of([out, paths[2]]), read(both), exact=False)
    assert_equal(expected_of(paths), read(both), exact=False)


def test_a_crafted_file_cannot_pull_in_data_through_what_lies_beside_it(run_adcat, tmp_path):
    """A virtual dataset naming a file beside it that is a symbolic link to a file
    elsewhere, or a virtual dataset beside it, reads nothing without consent."""
    box = tmp_path / "box"
    box.mkdir()
    paths = [write(batch(i, 10), box / f"in{i}.h5ad", "h5ad") for i in range(2)]
    run_adcat("concat", *paths, "-o", box / "out.h5ad", "--virtual", "-q")
    # A virtual dataset over the virtual X/data of out.h5ad.
    shutil.copy(box / "out.h5ad", box / "chain.h5ad")
    with h5py.File(box / "chain.h5ad", "r+") as f:
        src = f["X/data"]
        layout = h5py.VirtualLayout(shape=src.shape, dtype=src.dtype)
        layout[:] = h5py.VirtualSource("out.h5ad", "X/data", shape=src.shape)
        del f["X/data"]
        f.create_virtual_dataset("X/data", layout)
    proc = run_adcat("convert", box / "chain.h5ad", tmp_path / "got.h5ad", expect_success=False)
    assert proc.returncode != 0 and "out.h5ad:X/data, which is not a plain dataset there" in proc.stderr, proc.stderr
    # in0.h5ad replaced by a link to a file elsewhere.
    (tmp_path / "secret").mkdir()
    secret = write(batch(5, 10), tmp_path / "secret" / "secret.h5ad", "h5ad")
    paths[0].unlink()
    paths[0].symlink_to(secret)
    proc = run_adcat("convert", box / "out.h5ad", tmp_path / "got.h5ad", expect_success=False)
    assert proc.returncode != 0 and "in0.h5ad:X/data, outside the directory of the file you named" in proc.stderr, proc.stderr
    assert not (tmp_path / "got.h5ad").exists()


@pytest.mark.parametrize(
    ("extra", "out_name", "message"),
    [
        ([], "out.zarr", "--virtual maps the inputs' HDF5 datasets into an .h5ad output"),
        (["--shuffle"], "out.h5ad", "--virtual maps each input's rows in place"),
        (["--job-dir", "JOB"], "out.h5ad", "cannot be planned as a job"),
    ],
)
def test_refusals(run_adcat, tmp_path, extra, out_name, message):
    paths = [write(simple(5, GENES, prefix=f"r{i}"), tmp_path / f"in{i}.h5ad", "h5ad") for i in range(2)]
    extra = [str(tmp_path / "job") if e == "JOB" else e for e in extra]
    proc = run_adcat("concat", *paths, "-o", tmp_path / out_name, "--virtual", *extra, expect_success=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert not (tmp_path / out_name).exists()


def test_validate_and_inspect_name_the_files_and_report_missing_ones(run_adcat, tmp_path):
    paths = [write(batch(i, 25), tmp_path / f"in{i}.h5ad", "h5ad") for i in range(2)]
    out = tmp_path / "out.h5ad"
    run_adcat("concat", *paths, "-o", out, "--virtual", "-q")
    shown = run_adcat("validate", out).stdout
    assert f"{out}: valid AnnData (50 obs x 30 var)" in shown
    assert f"{out}: virtual datasets read 2 file(s): in0.h5ad, in1.h5ad" in shown
    assert "not checked" not in shown
    (tmp_path / "far").mkdir()
    far = tmp_path / "far" / "out.h5ad"
    run_adcat("concat", *paths, "-o", far, "--virtual", "--virtual-paths", "absolute", "-q")
    shown = run_adcat("validate", far).stdout
    assert "not checked (they are read from those files only with --follow-external-links)" in shown
    deep = run_adcat("--follow-external-links", "validate", far).stdout
    assert "valid AnnData" in deep and "not checked" not in deep
    assert "virtual datasets read:\n  in0.h5ad\n  in1.h5ad\n" in run_adcat("inspect", out).stdout
    paths[1].rename(tmp_path / "elsewhere.h5ad")
    proc = run_adcat("validate", out, expect_success=False)
    assert proc.returncode != 0
    assert f"{out}: /X/data: is a virtual dataset mapping in1.h5ad:X/data, and that file is missing" in proc.stdout, proc.stdout
    assert "  in1.h5ad  (MISSING)" in run_adcat("inspect", out).stdout


def test_python_api(tmp_path):
    import adcat

    paths = [write(batch(i, 20), tmp_path / f"in{i}.h5ad", "h5ad") for i in range(2)]
    out = tmp_path / "out.h5ad"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adcat.concat_on_disk(paths, out, virtual=True, progress=False)
    assert sources(out, "X/data") == ["in0.h5ad", "in1.h5ad"]
    assert_equal(expected_of(paths), read(out), exact=False)
    with pytest.raises(ValueError):
        adcat.concat_on_disk(paths, tmp_path / "bad.h5ad", virtual=True, virtual_paths="nearby", progress=False)


def test_append_refuses_a_virtual_store_with_the_concat_command(run_adcat, tmp_path):
    paths = [write(simple(10 + i, GENES, prefix=f"v{i}-", seed=i), tmp_path / f"in{i}.h5ad", "h5ad") for i in range(3)]
    out = tmp_path / "out.h5ad"
    run_adcat("concat", *paths[:2], "-o", out, "--virtual", "-q")
    before = out.read_bytes()
    proc = run_adcat("append", out, paths[2], expect_success=False)
    assert proc.returncode != 0
    assert "/X/data is a virtual dataset mapping in0.h5ad:X/data (a concat --virtual output), which cannot grow in place" in proc.stderr, proc.stderr
    assert "adcat concat" in proc.stderr
    assert out.read_bytes() == before


def test_plan_says_what_is_mapped_and_what_is_copied(run_adcat, tmp_path):
    a = simple(20, GENES, prefix="a", seed=1)
    b = simple(25, GENES, prefix="b", seed=2)
    a.layers["extra"] = a.X.copy()
    b.layers["extra"] = b.X.astype(np.float64)
    paths = [write(x, tmp_path / f"in{i}.h5ad", "h5ad") for i, x in enumerate((a, b))]
    text = run_adcat("plan", *paths, "-o", tmp_path / "out.h5ad", "--virtual").stdout
    assert "virtual: csr_matrix float32, 45 x 30" in text, text
    assert "copied, not virtual" in text and "holds float32, the output float64" in text, text
    assert not (tmp_path / "out.h5ad").exists()
