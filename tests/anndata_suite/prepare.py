"""Unpack anndata 0.13.4's own on-disk concat tests to run against adcat.

    python tests/anndata_suite/prepare.py DEST

writes DEST/test_concatenate_disk.py (from anndata's sdist, fetched from PyPI and cached
in `target/test-data/`), this directory's conftest.py (which makes the module call
`adcat.concat_on_disk`) and pytest.ini. `cargo xtask test` then runs pytest in DEST.
"""

from __future__ import annotations

import shutil
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

import downloads  # noqa: E402

MODULE = "anndata-0.13.4/tests/test_concatenate_disk.py"

#: Edits to anndata's test module, each (reason, original, replacement). The original
#: must occur exactly once, so a changed module is noticed rather than run unpatched.
PATCHES = [
    (
        # Under pandas 3 an Index's .array is read-only, so the test fails before
        # calling concat_on_disk, whichever implementation it calls (anndata's own too).
        "pandas 3: Index.array is read-only",
        'off_names = getattr(a, f"{off_axis_name}_names").array\n',
        'off_names = getattr(a, f"{off_axis_name}_names").array.copy()\n',
    ),
]


def patched(text: str) -> str:
    for reason, old, new in PATCHES:
        if text.count(old) != 1:
            raise SystemExit(f"prepare.py: anndata's test module changed; cannot apply the patch for {reason!r}")
        text = text.replace(old, new)
    return text


def main(dest: Path) -> None:
    with tarfile.open(downloads.anndata_sdist()) as t:
        member = t.extractfile(MODULE)
        if member is None:
            raise SystemExit(f"prepare.py: {MODULE} is not in anndata's sdist")
        text = member.read().decode()
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "test_concatenate_disk.py").write_text(patched(text))
    for name in ("conftest.py", "pytest.ini"):
        shutil.copyfile(HERE / name, dest / name)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: prepare.py DEST")
    try:
        main(Path(sys.argv[1]))
    except downloads.DownloadError as e:
        raise SystemExit(str(e)) from None
