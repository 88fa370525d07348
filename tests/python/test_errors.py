"""Error handling and safety of `adcat convert`.

* a nonexistent input: non-zero exit, stderr is a single line that names the file
  and contains no "panicked"; nothing is written;
* an existing output (file or directory) is refused without `--force` and left
  untouched; with `--force` it is replaced by a correct conversion;
* an unknown output extension is refused the same way as a missing input;
* the input store is byte-identical after a conversion.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import fixtures as fx
import oracle

SMALL = "dataframe_columns"  # a fixture with many encodings, cheap to write


def tree_digest(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of a file or every file under a directory
    (directories are listed too, so an added empty directory shows up)."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


def _stderr_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def assert_clean_error(proc, *, mentions: str) -> None:
    assert proc.returncode != 0, f"expected failure, got exit 0\nstdout:\n{proc.stdout}"
    assert "panicked" not in proc.stderr, f"adcat panicked:\n{proc.stderr}"
    lines = _stderr_lines(proc.stderr)
    assert len(lines) == 1, f"stderr should be one line, got {len(lines)}:\n{proc.stderr}"
    assert mentions in lines[0], f"stderr does not name {mentions!r}: {lines[0]!r}"


@pytest.mark.parametrize("in_ext", [".h5ad", ".zarr"])
@pytest.mark.parametrize("out_ext", [".h5ad", ".zarr"])
def test_missing_input(tmp_path, run_adcat, in_ext, out_ext):
    src = tmp_path / f"does-not-exist{in_ext}"
    dst = tmp_path / f"out{out_ext}"
    proc = run_adcat("convert", src, dst, expect_success=False)
    assert_clean_error(proc, mentions=src.name)
    assert not dst.exists(), "an output was created although the input is missing"


@pytest.mark.parametrize("in_fmt", ["h5ad", "zarr3"])
def test_unknown_output_extension(tmp_path, fixture_files, run_adcat, in_fmt):
    src = fixture_files.path(SMALL, in_fmt)
    dst = tmp_path / "out.txt"
    proc = run_adcat("convert", src, dst, expect_success=False)
    assert_clean_error(proc, mentions="out.txt")
    assert not dst.exists()


def _make_existing_output(dst: Path) -> None:
    if dst.suffix == ".h5ad":
        dst.write_bytes(b"precious bytes that must survive\n")
    else:
        # An earlier zarr store (--force replaces stores, never other directories).
        dst.mkdir()
        (dst / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
        (dst / "sentinel.txt").write_text("precious\n")
        (dst / "sub").mkdir()
        (dst / "sub" / "data.bin").write_bytes(bytes(range(256)))


@pytest.mark.parametrize("in_fmt", ["h5ad", "zarr3"])
@pytest.mark.parametrize("out_ext", [".h5ad", ".zarr"])
def test_existing_output_needs_force(tmp_path, fixture_files, run_adcat, in_fmt, out_ext):
    src = fixture_files.path(SMALL, in_fmt)
    dst = tmp_path / f"existing{out_ext}"
    _make_existing_output(dst)
    before = tree_digest(dst)

    proc = run_adcat("convert", src, dst, expect_success=False)
    assert proc.returncode != 0, "an existing output was overwritten without --force"
    assert "panicked" not in proc.stderr, proc.stderr
    assert len(_stderr_lines(proc.stderr)) == 1, f"stderr should be one line:\n{proc.stderr}"
    assert dst.name in proc.stderr, f"stderr does not name the output: {proc.stderr!r}"
    assert tree_digest(dst) == before, "the refused output was modified"

    run_adcat("convert", src, dst, "--force")
    if out_ext == ".zarr":  # replaced, not merged into: no stale files are left
        assert not (dst / "sentinel.txt").exists(), "--force left the old directory's files"
        assert not (dst / "sub").exists(), "--force left the old directory's files"
    oracle.assert_identical(fixture_files.read(SMALL, in_fmt), fx.read_fixture_store(SMALL, dst))


def test_existing_converted_output_needs_force(tmp_path, fixture_files, run_adcat):
    """Running the same conversion twice: the second run is refused."""
    src = fixture_files.path(SMALL, "h5ad")
    dst = tmp_path / "out.zarr"
    run_adcat("convert", src, dst)
    before = tree_digest(dst)
    proc = run_adcat("convert", src, dst, expect_success=False)
    assert proc.returncode != 0
    assert "panicked" not in proc.stderr
    assert tree_digest(dst) == before


@pytest.mark.parametrize("in_fmt", fx.FORMATS)
@pytest.mark.parametrize("out_fmt", ["h5ad", "zarr2", "zarr3"])
def test_input_untouched(tmp_path, fixture_files, run_adcat, in_fmt, out_fmt):
    # work on a private copy so a misbehaving adcat cannot corrupt the shared cache
    cached = fixture_files.path(SMALL, in_fmt)
    src = tmp_path / cached.name
    if cached.is_dir():
        shutil.copytree(cached, src)
    else:
        shutil.copy2(cached, src)
    before = tree_digest(src)
    dst = tmp_path / f"out{fx.suffix_for(out_fmt)}"
    args = ["convert", src, dst] + (["--zarr-format", "2"] if out_fmt == "zarr2" else [])
    run_adcat(*args)
    assert tree_digest(src) == before, "the input store changed during conversion"
