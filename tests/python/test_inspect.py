"""`adcat inspect PATH` lists a store's elements.

Contract checked here (for every fixture x every anndata-written input format):

* exit code 0, valid UTF-8 on stdout;
* stdout mentions every element's path, e.g. "obs", "X", "layers/counts",
  "obs/cell_type", "uns/a/b", either
  - literally, as the full `/`-separated path relative to the root (a leading `/` is
    allowed: "/obsm/X_pca" matches), or
  - as an indented tree: a line starting with each path component (after
    indentation and tree-drawing characters; the name is followed by the end of the
    line, whitespace or one of `/:[(=,`), each component's line inside the previous
    one's block (the following lines indented deeper);
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


_TREE_CHARS = " \t│├└─┬┼╰╭|`+-*•"
_NAME_END = set(" \t/:[(=,")


def _tree_lines(text: str) -> list[tuple[int, str]]:
    out = []
    for raw in text.splitlines():
        body = raw.lstrip(_TREE_CHARS)
        if body.strip():
            out.append((len(raw) - len(body), body.rstrip()))
    return out


def _starts_with_name(text: str, name: str) -> bool:
    for quoted in (name, f'"{name}"', f"'{name}'"):
        if text.startswith(quoted) and (len(text) == len(quoted) or text[len(quoted)] in _NAME_END):
            return True
    return False


def tree_mentions(lines: list[tuple[int, str]], components: list[str], start: int = 0, end: int | None = None) -> bool:
    """True if ``components`` appear as nested entries of an indented tree."""
    end = len(lines) if end is None else end
    if not components:
        return True
    for i in range(start, end):
        indent, text = lines[i]
        if _starts_with_name(text, components[0]):
            j = i + 1
            while j < end and lines[j][0] > indent:
                j += 1
            if tree_mentions(lines, components[1:], i + 1, j):
                return True
    return False


def mentions_path(stdout: str, lines: list[tuple[int, str]], path: str) -> bool:
    return path in stdout or tree_mentions(lines, path.split("/"))


@pytest.mark.parametrize(("name", "fmt"), list(_cases()))
def test_inspect_lists_elements(name, fmt, fixture_files, run_adcat):
    path = fixture_files.path(name, fmt)
    proc = run_adcat("inspect", path)
    out = proc.stdout
    assert "\ufffd" not in out, "stdout is not valid UTF-8"
    assert "panicked" not in proc.stderr
    elements = oracle.element_paths(oracle.normalise_tree(fixture_files.tree(name, fmt)))
    assert elements, "fixture has no elements?"
    lines = _tree_lines(out)
    missing_paths = sorted(p for p in elements if not mentions_path(out, lines, p))
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
