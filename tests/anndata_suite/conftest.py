"""Runs anndata's test_concatenate_disk.py with adcat.concat_on_disk in place of anndata's.

The module imports ``concat_on_disk`` from ``anndata.experimental.merge`` when pytest
imports it, which is after this conftest: replacing the name there (and in
``anndata.experimental``) is the whole migration a user makes. Every test checks that
the module really holds adcat's function.

`test_anndatas` runs each case twice, with ``max_loaded_elems`` 5 and 1,000,000: anndata's
chunking. Both values give adcat the same budget (its 64 MiB minimum), so the second run
repeats the same work; `cargo xtask test` runs the 1,000,000 half to stay in CI's time,
and ``ADCAT_ANNDATA_SUITE=full`` runs every case (495 tests).
"""

from __future__ import annotations

import os

import anndata.experimental
import anndata.experimental.merge
import pytest

import adcat

anndata.experimental.merge.concat_on_disk = adcat.concat_on_disk
anndata.experimental.concat_on_disk = adcat.concat_on_disk


@pytest.fixture(autouse=True)
def _calls_adcat(request: pytest.FixtureRequest) -> None:
    got = getattr(request.module, "concat_on_disk", None)
    assert got is adcat.concat_on_disk, f"{request.module.__name__} would call {got!r}, not adcat's"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("ADCAT_ANNDATA_SUITE") == "full":
        return
    same_budget = [i for i in items if getattr(i, "callspec", None) and i.callspec.params.get("max_loaded_elems") == 5]
    for item in same_budget:
        items.remove(item)
    config.hook.pytest_deselected(items=same_budget)
