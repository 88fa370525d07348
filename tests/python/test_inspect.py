"""`adcat inspect PATH` lists a store's elements.

Contract checked here (for every fixture x every anndata-written input format):

* exit code 0, valid UTF-8 on stdout;
* stdout contains every element's full path relative to the root, as written in the
  store with `/` separators (a leading `/` is allowed: "obsm/X_pca" matches
  "/obsm/X_pca"), e.g. "obs", "X", "layers/counts", "obs/cell_type", "uns/a/b";
* stdout contains every element's `encoding-type` as a whole word, e.g. "csr_matrix"
  (and "string-array" is not satisfied by "nullable-string-array").

"Elements" are the nodes carrying an `encoding-type`, except the root and the inner
parts of composite encodings (categorical codes/categories, nullable values/mask,
sparse data/indices/indptr, awkward buffers): see `oracle.element_paths`.
"""

from __future__ import annotations

import re

import pytest

import fixtures as fx
import oracle


def _cases():
    for name in fx.FIXTURES:
        meta = fx.fixture_meta(name)
        marks = [pytest.mark.skip(reason=meta.unavailable)] if meta.unavailable else []
        for fmt in fx.FORMATS:
            yield pytest.param(name, fmt, id=f"{name}-{fmt}", marks=marks)


@pytest.mark.parametrize(("name", "fmt"), list(_cases()))
def test_inspect_lists_elements(name, fmt, fixture_files, run_adcat):
    path = fixture_files.path(name, fmt)
    proc = run_adcat("inspect", path)
    out = proc.stdout
    assert "\ufffd" not in out, "stdout is not valid UTF-8"
    assert "panicked" not in proc.stderr
    elements = oracle.element_paths(oracle.normalise_tree(fixture_files.tree(name, fmt)))
    assert elements, "fixture has no elements?"
    missing_paths = sorted(p for p in elements if p not in out)
    missing_types = sorted(
        t
        for t in set(elements.values())
        if not re.search(rf"(?<![\w-]){re.escape(t)}(?![\w-])", out)
    )
    assert not missing_paths and not missing_types, (
        f"`adcat inspect {path.name}` output lacks\n"
        f"  element paths: {missing_paths}\n  encoding types: {missing_types}\n"
        f"--- stdout ---\n{out[:6000]}"
    )
