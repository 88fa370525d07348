"""Progress bars with tqdm (terminal or notebook), fed by the engine's byte counts."""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable


def _interactive() -> bool:
    """A terminal on stderr, or a Jupyter kernel."""
    if "ipykernel" in sys.modules:
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _tqdm() -> Any | None:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class Bar:
    """A tqdm bar over bytes written, updated from the calling thread."""

    def __init__(self, tqdm: Any, desc: str) -> None:
        self._bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)
        self._desc = desc

    def __call__(self, total: int, done: int, element: str) -> None:
        if total and self._bar.total != total:
            self._bar.total = total
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)
        if element:
            self._bar.set_postfix_str(element, refresh=False)

    def close(self) -> None:
        self._bar.close()


def make_bar(progress: bool | None, desc: str) -> Bar | None:
    """A bar when ``progress`` is True, or when None and interactive with tqdm installed."""
    if progress is False:
        return None
    tqdm = _tqdm()
    if progress is None:
        return Bar(tqdm, desc) if tqdm is not None and _interactive() else None
    if tqdm is None:
        warnings.warn("progress=True needs tqdm (pip install tqdm); running without a progress bar", stacklevel=3)
        return None
    return Bar(tqdm, desc)


def run_with_bar(progress: bool | None, desc: str, job: Callable[[Any], Any]) -> Any:
    """Call ``job(callback)`` with a bar's callback (or None), closing the bar after."""
    bar = make_bar(progress, desc)
    try:
        return job(bar)
    finally:
        if bar is not None:
            bar.close()
