"""Provenance: every output records what built it in the root attribute `adcat` (JSON
text), which anndata ignores; `adcat inspect` shows it; `--no-provenance` leaves it out.

Checked against the files themselves (h5py / zarr) and anndata: the output still reads
equal to `anndata.concat`, the record names each input with its key, path and shape,
the options that decide the result, and is the same whichever way the command ran (in
process or as a job of tasks)."""

from __future__ import annotations

import json
from pathlib import Path

import adcat
import anndata as ad
import h5py
import pytest
import zarr
from anndata.tests.helpers import assert_equal
from test_concat import FORMATS, read, write
from test_jobs import make_inputs


def record(path: Path) -> dict | None:
    if path.suffix == ".h5ad":
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("adcat")
    else:
        raw = zarr.open_group(path, mode="r").attrs.get("adcat")
    if raw is None:
        return None
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prov")
    adatas = make_inputs(n_obs=(20, 15, 25))
    paths = [write(a, tmp / f"in{i}{FORMATS[f]}", f) for i, (a, f) in enumerate(zip(adatas, ["h5ad", "zarr", "zarr2"]))]
    return adatas, paths


@pytest.mark.parametrize("out_fmt", ["h5ad", "zarr", "zarr2"])
def test_output_records_the_concatenation(run_adcat, inputs, tmp_path, out_fmt):
    adatas, paths = inputs
    out = tmp_path / f"out{FORMATS[out_fmt]}"
    zf = ["--zarr-format", "2"] if out_fmt == "zarr2" else []
    run_adcat("concat", *paths, "-o", out, "--join", "outer", "--label", "batch", "--keys", "a,b,c", "--index-unique", "-", "-q", *zf)
    assert_equal(read(out), ad.concat(adatas, join="outer", label="batch", keys=["a", "b", "c"], index_unique="-"), exact=False)
    rec = record(out)
    assert rec["format"] == 1 and len(rec["history"]) == 1
    step = rec["history"][0]
    assert step["command"] == "concat" and step["adcat"] == adcat.__version__
    assert step["shape"] == [60, len(set().union(*(a.var_names for a in adatas)))]
    assert step["options"] == {
        "axis": "obs", "join": "outer", "merge": None, "uns_merge": None, "label": "batch",
        "index_unique": "-", "fill_value": None, "pairwise": False,
        "var_names": None, "var_key": None, "obs_filter": None, "obs_names": None, "var_filter": None,
    }
    assert step["inputs"] == [
        {"key": k, "path": str(p), "n_obs": a.n_obs, "n_vars": a.n_vars} for k, p, a in zip("abc", paths, adatas)
    ]
    shown = json.loads(run_adcat("inspect", "--json", out).stdout)
    assert shown["provenance"] == rec
    assert adcat.inspect(out)["provenance"] == rec
    text = run_adcat("inspect", out).stdout
    assert "concat of 3 input(s)" in text and f"a: {paths[0]} (20 x {adatas[0].n_vars})" in text


def test_no_provenance_records_nothing(run_adcat, inputs, tmp_path):
    _, paths = inputs
    out = tmp_path / "out.h5ad"
    run_adcat("concat", *paths, "-o", out, "--no-provenance", "-q")
    assert record(out) is None
    assert json.loads(run_adcat("inspect", "--json", out).stdout)["provenance"] is None
    adcat.concat_on_disk([str(p) for p in paths], tmp_path / "py.zarr", provenance=False)
    assert record(tmp_path / "py.zarr") is None


def test_job_python_and_convert_keep_the_same_record(run_adcat, inputs, tmp_path):
    """A job's output (zarr and h5ad finish) and the Python API record what the
    in-process command records; `adcat convert` keeps the record."""
    _, paths = inputs
    args = [*paths, "--join", "outer", "--keys", "a,b,c", "-q"]
    run_adcat("concat", *args, "-o", tmp_path / "one.zarr")
    run_adcat("concat", *args, "-o", tmp_path / "job.zarr", "--job-dir", tmp_path / "jd", "--task-size", "4KiB")
    run_adcat("concat", *args, "-o", tmp_path / "job.h5ad", "--job-dir", tmp_path / "jd2")
    adcat.concat_on_disk({k: str(p) for k, p in zip("abc", paths)}, tmp_path / "py.zarr", join="outer")
    expected = record(tmp_path / "one.zarr")
    for name in ("job.zarr", "job.h5ad", "py.zarr"):
        assert record(tmp_path / name) == expected, name
    run_adcat("convert", tmp_path / "one.zarr", tmp_path / "conv.h5ad", "-q")
    assert record(tmp_path / "conv.h5ad") == expected


def test_selections_are_recorded(run_adcat, inputs, tmp_path):
    adatas, paths = inputs
    genes = tmp_path / "genes.txt"
    genes.write_text("g3\ng1\ng39\n")
    out = tmp_path / "sel.zarr"
    run_adcat("concat", *paths, "-o", out, "--obs-filter", "q < 0.5", "--var-names", genes, "--var-filter", "_index != 'g2'", "-q")
    step = record(out)["history"][0]
    assert step["options"]["obs_filter"] == "q < 0.5" and step["options"]["var_filter"] == "_index != 'g2'"
    assert step["options"]["var_names"] == {"count": 3, "first": "g3", "last": "g39"}
    for src, a in zip(step["inputs"], adatas):
        assert (src["n_obs"], src["n_vars"]) == a.shape
        assert src["kept_obs"] == int((a.obs.q < 0.5).sum()) and src["kept_vars"] == a.n_vars - int("g2" in a.var_names)


def test_many_inputs_keep_the_record_small(run_adcat, tmp_path):
    """600 inputs with long paths: the h5ad attribute stays below HDF5's 64 KiB compact
    limit, keeping the first and last inputs and the count of those left out."""
    deep = tmp_path / ("a_rather_long_directory_name_for_a_sample_collection_" * 2)
    deep.mkdir()
    a = make_inputs(n_obs=(3,))[0]
    src = write(a, deep / "sample.h5ad", "h5ad")
    listing = tmp_path / "inputs.txt"
    listing.write_text("".join(f"s{i}\t{src}\n" for i in range(600)))
    out = tmp_path / "out.h5ad"
    run_adcat("concat", "--inputs-from", listing, "-o", out, "-q", timeout=600)
    rec = record(out)
    step = rec["history"][0]
    assert len(json.dumps(rec)) <= 48 * 1024
    assert step["omitted_inputs"] > 0 and len(step["inputs"]) + step["omitted_inputs"] == 600
    assert step["inputs"][0]["key"] == "s0" and step["inputs"][-1]["key"] == "s599"
    assert read(out).n_obs == 1800
