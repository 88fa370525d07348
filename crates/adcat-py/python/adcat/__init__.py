"""adcat: concatenate and convert AnnData stores (.h5ad, zarr) out of core.

``adcat.concat_on_disk`` is a drop-in for ``anndata.experimental.concat_on_disk``;
``convert``, ``plan``, ``inspect`` and ``validate`` are the ``adcat`` command's jobs.
"""

from __future__ import annotations

from ._adcat import __version__
from ._api import append, concat_on_disk, convert, inspect, plan, validate
from ._errors import (
    AdcatError,
    AdcatFileExistsError,
    AdcatFileNotFoundError,
    AdcatKeyError,
    AdcatNotImplementedError,
    AdcatOSError,
    AdcatTypeError,
    AdcatValueError,
)

__all__ = [
    "AdcatError",
    "AdcatFileExistsError",
    "AdcatFileNotFoundError",
    "AdcatKeyError",
    "AdcatNotImplementedError",
    "AdcatOSError",
    "AdcatTypeError",
    "AdcatValueError",
    "__version__",
    "append",
    "concat_on_disk",
    "convert",
    "inspect",
    "plan",
    "validate",
]
