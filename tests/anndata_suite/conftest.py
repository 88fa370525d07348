"""Runs anndata's test_concatenate_disk.py with adcat.concat_on_disk in place of anndata's.

The module imports ``concat_on_disk`` from ``anndata.experimental.merge`` when pytest
imports it, which is after this conftest: replacing the name there (and in
``anndata.experimental``) is the whole migration a user makes. Every test checks that
the module really holds adcat's function.
"""

from __future__ import annotations

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
