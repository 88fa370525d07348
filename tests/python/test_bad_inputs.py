"""Bad input never loses data: one clear line, non-zero exit, nothing written.

Every case builds its inputs with anndata 0.13.4 (then damages them where the case
needs it), runs ``adcat concat`` (or ``convert``) and checks:

* the exit code is non-zero (or zero for the inputs that are allowed, with a warning);
* stderr is one line naming the offending file, and the element path where there is
  one, without ``panicked`` or a backtrace;
* nothing is left at the output path, nor any temporary or lock file beside it;
* every input is byte-identical afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from test_errors import tree_digest


def make(n_obs=20, genes=("g0", "g1", "g2", "g3", "g4"), prefix="c", seed=0) -> ad.AnnData:
    warnings.filterwarnings("ignore", "Variable names are not unique")
    rng = np.random.default_rng(seed)
    X = sparse.random(n_obs, len(genes), density=0.5, format="csr", dtype=np.float32, random_state=seed)
    a = ad.AnnData(X=X, obs=pd.DataFrame(index=[f"{prefix}{i}" for i in range(n_obs)]), var=pd.DataFrame(index=list(genes)))
    a.obs["q"] = rng.random(n_obs)
    return a


def write(a: ad.AnnData, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if path.suffix == ".h5ad":
            a.write_h5ad(path)
        elif path.name.endswith("_v2.zarr"):
            with ad.settings.override(zarr_write_format=2):
                a.write_zarr(path)
        else:
            a.write_zarr(path)
    return path


def drop_consolidated(store: Path) -> None:
    """Make readers use each node's own metadata (the case damages one of them)."""
    zm = store / ".zmetadata"
    if zm.exists():
        zm.unlink()
    root = store / "zarr.json"
    if root.exists():
        doc = json.loads(root.read_text())
        doc.pop("consolidated_metadata", None)
        root.write_text(json.dumps(doc))


def set_attr(path: Path, element: str, name: str, value) -> None:
    if path.suffix == ".h5ad":
        with h5py.File(path, "r+") as f:
            f[element].attrs[name] = value
        return
    drop_consolidated(path)
    node = path / element
    if (node / "zarr.json").exists():
        doc = json.loads((node / "zarr.json").read_text())
        doc.setdefault("attributes", {})[name] = value
        (node / "zarr.json").write_text(json.dumps(doc))
    else:
        za = node / ".zattrs"
        doc = json.loads(za.read_text()) if za.exists() else {}
        doc[name] = value
        za.write_text(json.dumps(doc))


def replace_h5(path: Path, element: str, values) -> None:
    with h5py.File(path, "r+") as f:
        del f[element]
        f[element] = values


@dataclass
class Case:
    """Inputs (built in ``tmp``), the command, and what stderr must mention."""

    inputs: list[Path]
    mentions: list[str]
    args: list[str] = field(default_factory=list)
    out_name: str = "out.h5ad"
    ok: bool = False  # allowed input: exit 0, a complete output, `warns` on stderr
    warns: str | None = None
    command: str = "concat"


def _good(tmp: Path, name="good.h5ad", **kw) -> Path:
    return write(make(prefix="g", **kw), tmp / name)


def case_nonexistent(tmp):
    return Case([_good(tmp), tmp / "missing.h5ad"], ["missing.h5ad"])


def case_plain_hdf5(tmp):
    p = tmp / "plain.h5ad"
    with h5py.File(p, "w") as f:
        f["numbers"] = np.arange(10)
    return Case([_good(tmp), p], ["plain.h5ad"])


def case_random_bytes(tmp):
    p = tmp / "noise.h5ad"
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return Case([_good(tmp), p], ["noise.h5ad"])


def case_empty_dir_zarr(tmp):
    p = tmp / "empty.zarr"
    p.mkdir()
    return Case([_good(tmp), p], ["empty.zarr"])


def case_truncated_h5ad(tmp):
    p = write(make(prefix="t"), tmp / "truncated.h5ad")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return Case([_good(tmp), p], ["truncated.h5ad"])


def case_corrupt_root_zarr_json(tmp):
    p = write(make(prefix="t"), tmp / "badroot.zarr")
    (p / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {')
    return Case([_good(tmp), p], ["badroot.zarr"])


def case_corrupt_array_zarr_json(tmp):
    p = write(make(prefix="t"), tmp / "badarray.zarr")
    drop_consolidated(p)
    (p / "X" / "indices" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "array", "shape": "many"}')
    return Case([_good(tmp), p], ["badarray.zarr", "X/indices"])


def case_corrupt_zarray(tmp):
    p = write(make(prefix="t"), tmp / "bad_v2.zarr")
    drop_consolidated(p)
    (p / "X" / "data" / ".zarray").write_text("{not json")
    return Case([_good(tmp), p], ["bad_v2.zarr", "X/data"])


def case_corrupt_zattrs(tmp):
    p = write(make(prefix="t"), tmp / "badattrs_v2.zarr")
    drop_consolidated(p)
    (p / "X" / ".zattrs").write_text('{"encoding-type": "csr_matrix", ')
    return Case([_good(tmp), p], ["badattrs_v2.zarr", "X"])


def case_missing_indptr_chunk(tmp):
    # A missing chunk reads as the fill value (zarr semantics); for indptr that leaves
    # a matrix whose structure no longer covers its data, which must not pass silently.
    p = write(make(prefix="t"), tmp / "nochunk_v2.zarr")
    chunks = [c for c in (p / "X" / "indptr").iterdir() if not c.name.startswith(".")]
    assert chunks, "expected chunk files"
    for c in chunks:
        c.unlink()
    return Case([_good(tmp), p], ["nochunk_v2.zarr", "X/indptr"])


def case_x_shape_mismatch(tmp):
    p = write(make(prefix="t"), tmp / "shape.h5ad")
    set_attr(p, "X", "shape", np.array([21, 5]))
    return Case([_good(tmp), p], ["shape.h5ad", "X"])


def case_indptr_not_monotone(tmp):
    p = write(make(prefix="t"), tmp / "indptr.h5ad")
    with h5py.File(p, "r") as f:
        ip = f["X/indptr"][...]
    ip[5], ip[6] = ip[6] + 1, ip[5]
    replace_h5(p, "X/indptr", ip)
    return Case([_good(tmp), p], ["indptr.h5ad", "X/indptr"])


def case_indptr_past_data(tmp):
    p = write(make(prefix="t"), tmp / "pastdata.h5ad")
    with h5py.File(p, "r") as f:
        ip = f["X/indptr"][...]
    ip[-1] += 7
    replace_h5(p, "X/indptr", ip)
    return Case([_good(tmp), p], ["pastdata.h5ad", "X/indptr"])


def case_index_out_of_range(tmp):
    p = write(make(prefix="t"), tmp / "indices.h5ad")
    with h5py.File(p, "r") as f:
        ix = f["X/indices"][...]
    ix[0] = 99
    replace_h5(p, "X/indices", ix)
    return Case([_good(tmp), p], ["indices.h5ad", "X/indices"])


def case_unknown_encoding(tmp):
    p = write(make(prefix="t"), tmp / "enc.h5ad")
    set_attr(p, "X", "encoding-type", "quantum_matrix")
    return Case([_good(tmp), p], ["enc.h5ad", "X", "quantum_matrix"])


def case_newer_encoding_version(tmp):
    p = write(make(prefix="t"), tmp / "ver.zarr")
    set_attr(p, "X", "encoding-version", "9.0.0")
    return Case([_good(tmp), p], ["ver.zarr", "X", "9.0.0"])


def case_output_is_input(tmp):
    g = _good(tmp, "same.h5ad")
    return Case([_good(tmp, "other.h5ad"), g], ["same.h5ad"], out_name="same.h5ad")


def case_output_is_input_other_spelling(tmp):
    (tmp / "sub").mkdir()
    g = _good(tmp, "spelled.h5ad")
    return Case([g], ["spelled.h5ad"], out_name="sub/../spelled.h5ad")


def case_output_is_input_symlink(tmp):
    g = _good(tmp, "target.h5ad")
    os.symlink(g, tmp / "link.h5ad")
    return Case([g, _good(tmp, "other.h5ad")], ["link.h5ad"], out_name="link.h5ad")


def case_output_exists(tmp):
    (tmp / "out.h5ad").write_bytes(b"keep me")
    return Case([_good(tmp)], ["out.h5ad", "--force"])


def case_output_dir_not_writable(tmp):
    # root ignores directory permissions: use a directory no one can create files in.
    if os.geteuid() == 0:
        return Case([_good(tmp)], ["/proc/out.h5ad"], out_name="/proc/out.h5ad")
    d = tmp / "ro"
    d.mkdir()
    d.chmod(0o555)
    return Case([_good(tmp)], ["ro/out.h5ad"], out_name="ro/out.h5ad")


def case_bad_join(tmp):
    return Case([_good(tmp)], ["--join"], args=["--join", "sideways"])


def case_bad_axis(tmp):
    return Case([_good(tmp)], ["--axis"], args=["--axis", "2"])


def case_bad_max_memory(tmp):
    return Case([_good(tmp)], ["--max-memory"], args=["--max-memory", "lots"])


def case_keys_count(tmp):
    return Case([_good(tmp), _good(tmp, "b.h5ad", seed=1)], ["--keys"], args=["--keys", "onlyone"])


def case_duplicate_var_names_outer(tmp):
    a = write(make(prefix="a", genes=("g0", "g1", "g1", "g2")), tmp / "dups.h5ad")
    b = write(make(prefix="b", genes=("g0", "g1", "g3")), tmp / "nodups.h5ad")
    return Case([a, b], ["dups.h5ad", "g1"], args=["--join", "outer"])


def case_zero_rows_allowed(tmp):
    z = write(make(n_obs=0, prefix="z"), tmp / "zero.h5ad")
    return Case([_good(tmp), z], [], ok=True)


def case_empty_intersection_warns(tmp):
    a = write(make(prefix="a", genes=("a0", "a1")), tmp / "a.h5ad")
    b = write(make(prefix="b", genes=("b0", "b1")), tmp / "b.h5ad")
    return Case([a, b], [], ok=True, warns="no")


CASES = {name[len("case_") :]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".adcat-tmp" in p.name or ".adcat-lock" in p.name)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(tmp_path, run_adcat, name):
    case = CASES[name](tmp_path)
    existing = [p for p in case.inputs if p.exists() or p.is_symlink()]
    before = {str(p): tree_digest(p) for p in existing}
    out = Path(case.out_name) if case.out_name.startswith("/") else tmp_path / case.out_name
    out_before = tree_digest(out) if out.exists() else None
    argv = [case.command, *case.inputs, "-o", out, *case.args]
    proc = run_adcat(*argv, expect_success=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "panicked" not in proc.stderr and "RUST_BACKTRACE" not in proc.stderr, proc.stderr
    if case.ok:
        assert proc.returncode == 0, proc.stderr
        assert out.exists()
        if case.warns:
            assert any("warning" in line for line in lines), proc.stderr
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = ad.concat([ad.read_h5ad(p) for p in case.inputs])
            got = ad.read_h5ad(out)
        assert got.shape == expected.shape
    else:
        assert proc.returncode != 0, f"accepted bad input ({name}):\n{proc.stderr}"
        assert len(lines) == 1, f"stderr should be one line:\n{proc.stderr}"
        for m in case.mentions:
            assert m in lines[0], f"stderr does not mention {m!r}: {lines[0]!r}"
        if out_before is None:
            assert not out.exists(), "an output was left behind"
        else:
            assert tree_digest(out) == out_before, "an existing output was modified"
    if not str(out).startswith("/proc"):
        assert _leftovers(out.resolve().parent) == [], "temporary or lock files left beside the output"
    for p in existing:
        assert tree_digest(p) == before[str(p)], f"input {p.name} changed"


def test_validate_reports_every_problem(tmp_path, run_adcat):
    good = _good(tmp_path)
    proc = run_adcat("validate", good)
    assert proc.stdout.strip() == f"{good}: valid AnnData (20 obs x 5 var)"

    bad = write(make(prefix="t"), tmp_path / "bad.h5ad")
    with h5py.File(bad, "r") as f:
        ix = f["X/indices"][...]
    ix[3] = 77  # only a deep scan sees this
    replace_h5(bad, "X/indices", ix)
    set_attr(bad, "X", "shape", np.array([20, 6]))  # columns disagree with var
    with h5py.File(bad, "r+") as f:
        f["obsm/pca"] = np.zeros((19, 2))  # rows disagree with obs
        f["obsm/pca"].attrs["encoding-type"] = "array"
        f["obsm/pca"].attrs["encoding-version"] = "0.2.0"
    before = tree_digest(bad)
    proc = run_adcat("validate", bad, expect_success=False)
    assert proc.returncode == 1 and "panicked" not in proc.stderr
    out = proc.stdout.splitlines()
    assert any("/X: has 6 columns" in line for line in out), out
    assert any("/obsm/pca: has 19 rows" in line for line in out), out
    assert any("/X/indices" in line and "77" in line for line in out), out
    assert "3 problem(s)" in proc.stderr
    quick = run_adcat("validate", "--quick", bad, expect_success=False)
    assert not any("/X/indices" in line for line in quick.stdout.splitlines()), quick.stdout
    assert tree_digest(bad) == before, "validate modified its input"
