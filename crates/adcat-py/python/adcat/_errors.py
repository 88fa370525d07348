"""adcat's exceptions.

Every error adcat raises is an :class:`AdcatError`, and also the built-in type that
anndata raises for the same mistake, so code written against
``anndata.experimental.concat_on_disk`` catches them unchanged. Messages name the file
and the element path.
"""

from __future__ import annotations

__all__ = [
    "AdcatError",
    "AdcatFileExistsError",
    "AdcatFileNotFoundError",
    "AdcatKeyError",
    "AdcatNotImplementedError",
    "AdcatOSError",
    "AdcatTypeError",
    "AdcatValueError",
]


class AdcatError(Exception):
    """Base class of every error adcat raises."""


class AdcatValueError(AdcatError, ValueError):
    """Invalid options, or inputs that are not valid AnnData or do not fit together."""


class AdcatKeyError(AdcatError, KeyError):
    """An unknown merge strategy name (anndata raises ``KeyError`` for it)."""

    def __str__(self) -> str:
        # KeyError quotes its argument; the message reads better as it is.
        return str(self.args[0]) if self.args else ""


class AdcatTypeError(AdcatError, TypeError):
    """An argument of the wrong type (e.g. ``keys`` alongside a mapping of inputs)."""


class AdcatFileNotFoundError(AdcatError, FileNotFoundError):
    """An input, or the output's parent directory, does not exist."""


class AdcatFileExistsError(AdcatError, FileExistsError):
    """The output exists and ``force=False``."""


class AdcatNotImplementedError(AdcatError, NotImplementedError):
    """Valid AnnData or an option that adcat does not handle (e.g. a callable merge)."""


class AdcatOSError(AdcatError, OSError):
    """Reading or writing failed: I/O errors, a full disk, a lock held elsewhere."""
