"""Shared pytest fixtures for the adcat oracle conformance suite.

* ``adcat_bin``: the adcat binary: ``$ADCAT_BIN`` or ``<repo>/target/debug/adcat``.
  A missing binary is a test *failure* (never a skip), so a CI run without a build
  cannot pass silently.
* ``run_adcat(*args, expect_success=True)``: run adcat, return the
  ``CompletedProcess`` (text, UTF-8); fails the test with stderr/stdout shown when
  the exit code is not 0 and ``expect_success`` is true.
* ``fixture_files``: session cache of the anndata-written fixture stores (one per
  fixture x writer format, written lazily into a session tmp dir), their anndata
  reads and their store trees.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import anndata as ad
import pytest

import fixtures as fx
import oracle

#: wall time spent inside adcat, reported at the end of the run
_ADCAT_STATS = {"calls": 0, "seconds": 0.0}

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ADCAT = REPO / "target" / "debug" / "adcat"
ADCAT_TIMEOUT_S = 120


def adcat_path() -> Path:
    env = os.environ.get("ADCAT_BIN")
    return Path(env) if env else DEFAULT_ADCAT


def require_adcat() -> Path:
    """The adcat binary's path; fails the current test if it does not exist."""
    path = adcat_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"adcat binary not found at {path}; "
            "run `cargo build -p adcat-cli` or `cargo xtask test`"
            + (" (path taken from $ADCAT_BIN)" if os.environ.get("ADCAT_BIN") else ""),
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def adcat_bin() -> Path:
    return require_adcat()


def _adcat_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NO_COLOR", "1")  # plain messages, so stderr can be checked
    env.pop("RUST_BACKTRACE", None)  # the backtrace default (off) is what users see
    return env


@pytest.fixture(scope="session")
def run_adcat():
    """``run_adcat(*args, expect_success=True, timeout=120) -> CompletedProcess``.

    The binary is looked up on each call, so a missing binary makes each test
    FAIL (in its body) with the message of :func:`require_adcat`."""

    def run(
        *args: Any, expect_success: bool = True, timeout: float = ADCAT_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(require_adcat()), *(str(a) for a in args)]
        cmd = shlex.join(["adcat", *argv[1:]])
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                env=_adcat_env(),
            )
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"`{cmd}` timed out after {timeout}s\nstderr:\n{e.stderr}", pytrace=False)
        finally:
            _ADCAT_STATS["calls"] += 1
            _ADCAT_STATS["seconds"] += time.perf_counter() - t0
        if expect_success and proc.returncode != 0:
            pytest.fail(
                f"`{cmd}` exited with {proc.returncode}\n"
                f"--- stderr ---\n{proc.stderr}\n--- stdout ---\n{proc.stdout[-4000:]}",
                pytrace=False,
            )
        return proc

    return run


class FixtureFiles:
    """Lazily writes fixture stores with anndata and caches their reads/trees."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._paths: dict[tuple[str, str], Path] = {}
        self._reads: dict[tuple[str, str], ad.AnnData] = {}
        self._trees: dict[tuple[str, str], dict[str, oracle.Node]] = {}

    def path(self, name: str, fmt: str) -> Path:
        key = (name, fmt)
        if key not in self._paths:
            meta = fx.fixture_meta(name)
            if meta.unavailable:
                pytest.skip(f"fixture {name!r}: {meta.unavailable}")
            p = self.root / f"{name}.{fmt}{fx.suffix_for(fmt)}"
            # build afresh for every write: anndata may mutate the object it writes
            fx.write_fixture(name, fx.build_fixture(name), p, fmt)
            self._paths[key] = p
        return self._paths[key]

    def read(self, name: str, fmt: str) -> ad.AnnData:
        """anndata's read of the fixture as written in ``fmt`` (cached; don't mutate)."""
        key = (name, fmt)
        if key not in self._reads:
            self._reads[key] = fx.read_fixture_store(name, self.path(name, fmt))
        return self._reads[key]

    def tree(self, name: str, fmt: str) -> dict[str, oracle.Node]:
        key = (name, fmt)
        if key not in self._trees:
            self._trees[key] = oracle.store_tree(self.path(name, fmt))
        return self._trees[key]


@pytest.fixture(scope="session")
def fixture_files(tmp_path_factory: pytest.TempPathFactory) -> FixtureFiles:
    return FixtureFiles(tmp_path_factory.mktemp("fixtures"))


def pytest_terminal_summary(terminalreporter) -> None:
    if _ADCAT_STATS["calls"]:
        terminalreporter.write_line(
            f"adcat: {_ADCAT_STATS['calls']} runs, {_ADCAT_STATS['seconds']:.1f}s in total"
        )
