"""Where the engine reads and writes: paths as given, and the open ``h5py`` and ``zarr``
objects anndata accepts.

The engine works on files and directories. An object that is the root of a local file
or store is used through its path (an HDF5 file opened read-only by h5py can be read
beside it). Anything else (a subgroup, a file h5py holds open for writing, a zarr store
in memory or remote) is materialised in a temporary directory (``tempfile``, honouring
``TMPDIR``) and, for an output, copied back into the object when complete.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._errors import AdcatTypeError

_KINDS = "a path (str or os.PathLike), an h5py.File/Group, or a zarr.Group/Store"


class Scratch:
    """A temporary directory created on first use and removed by :meth:`cleanup`."""

    def __init__(self) -> None:
        self._dir: str | None = None

    def path(self, name: str) -> Path:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="adcat-")
        return Path(self._dir) / name

    def cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _h5py() -> Any | None:
    return sys.modules.get("h5py")


def _zarr() -> Any | None:
    return sys.modules.get("zarr")


def is_h5py_group(obj: Any) -> bool:
    h5py = _h5py()
    return h5py is not None and isinstance(obj, h5py.Group)


def _zarr_store(obj: Any) -> Any | None:
    """``obj`` if it is a zarr store (``zarr.abc.store.Store``), else None."""
    zarr = _zarr()
    store_cls = getattr(getattr(zarr, "abc", None), "store", None)
    if store_cls is not None and isinstance(obj, store_cls.Store):
        return obj
    return None


def _zarr_group(obj: Any) -> Any | None:
    """``obj`` as a zarr.Group to read (a store is opened as anndata opens it), or None."""
    zarr = _zarr()
    if zarr is None:
        return None
    if isinstance(obj, zarr.Group):
        return obj
    if _zarr_store(obj) is not None:
        return zarr.open_group(obj, mode="r")
    return None


def _local_root(store: Any) -> Path | None:
    """The directory of a local directory store."""
    root = getattr(store, "root", None)
    if root is None or type(store).__name__ != "LocalStore":
        return None
    return Path(root)


def _local_zarr_dir(group: Any) -> Path | None:
    """The directory of a zarr group in a local directory store."""
    sp = getattr(group, "store_path", None)
    root = _local_root(getattr(sp, "store", None))
    if root is None:
        return None
    return root / sp.path if sp.path else root


def _zarr_copy(src: Any, src_prefix: str, dst: Any, dst_prefix: str, clear: bool) -> None:
    """Copy every key under ``src_prefix`` of store ``src`` to ``dst_prefix`` of ``dst``."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    async def go() -> None:
        if clear:
            await dst.delete_dir(dst_prefix.rstrip("/"))
        proto = default_buffer_prototype()
        async for key in src.list_prefix(src_prefix):
            buf = await src.get(key, prototype=proto)
            if buf is not None:
                await dst.set(dst_prefix + key[len(src_prefix):], buf)

    sync(go())


def _prefix(group: Any) -> str:
    path = group.store_path.path
    return f"{path}/" if path else ""


def _h5_copy_into(src: Any, dst: Any) -> None:
    """Copy the members and attributes of h5py group ``src`` into ``dst`` (emptied)."""
    for k in list(dst.keys()):
        del dst[k]
    for k in list(dst.attrs.keys()):
        del dst.attrs[k]
    for k in src.keys():
        src.copy(src[k], dst, name=k)
    for k, v in src.attrs.items():
        dst.attrs[k] = v


def is_url(obj: Any) -> bool:
    """Whether ``obj`` names a store in object storage (``s3://bucket/prefix``), passed to
    the engine as given (``pathlib`` would fold its ``//``)."""
    return isinstance(obj, str) and obj.startswith("s3://")


def input_path(obj: Any, scratch: Scratch, name: str) -> Path | str:
    """The path (or object-storage URL) the engine reads for input ``obj``."""
    if is_url(obj):
        return str(obj)
    if isinstance(obj, (str, os.PathLike)):
        return Path(os.fspath(obj))
    if is_h5py_group(obj):
        f = obj.file
        if obj.name == "/" and f.mode == "r" and f.driver in ("sec2", "stdio"):
            return Path(f.filename)
        h5py = _h5py()
        path = scratch.path(f"{name}.h5ad")
        with h5py.File(path, "w") as dst:
            _h5_copy_into(obj, dst)
        return path
    group = _zarr_group(obj)
    if group is not None:
        local = _local_zarr_dir(group)
        if local is not None:
            return local
        from zarr.storage import LocalStore

        path = scratch.path(f"{name}.zarr")
        _zarr_copy(group.store_path.store, _prefix(group), LocalStore(path), "", clear=False)
        return path
    raise AdcatTypeError(f"in_files: cannot read a {type(obj).__name__}; pass {_KINDS}")


class OutputTarget:
    """Where the engine writes, and how the result reaches the object the user gave."""

    def __init__(self, obj: Any, scratch: Scratch) -> None:
        self.obj = obj
        self.h5py_group: Any | None = None
        self.zarr_store: Any | None = None
        self.zarr_prefix = ""
        self.zarr_format: int | None = None
        if is_url(obj):
            self.path: Path | str = str(obj)
            # anndata's rule, as for paths (the engine refuses h5ad in object storage).
            self.format = "h5ad" if self.path.endswith(".h5ad") else "zarr"
        elif isinstance(obj, (str, os.PathLike)):
            self.path = Path(os.fspath(obj))
            # anndata's rule: the suffix .h5ad means HDF5, anything else zarr.
            self.format = "h5ad" if self.path.suffix == ".h5ad" else "zarr"
        elif is_h5py_group(obj):
            self.h5py_group = obj
            self.path = scratch.path("out.h5ad")
            self.format = "h5ad"
        elif _zarr_store(obj) is not None:
            # A bare store gets the group anndata would create in it: its format comes
            # from zarr_format or anndata's setting, not from the store.
            self.format = "zarr"
            self._zarr_into(obj, "", _local_root(obj), scratch)
        else:
            zarr = _zarr()
            if zarr is None or not isinstance(obj, zarr.Group):
                raise AdcatTypeError(f"out_file: cannot write to a {type(obj).__name__}; pass {_KINDS}")
            self.format = "zarr"
            self.zarr_format = obj.metadata.zarr_format
            self._zarr_into(obj.store_path.store, _prefix(obj), _local_zarr_dir(obj), scratch)

    def _zarr_into(self, store: Any, prefix: str, local: Path | None, scratch: Scratch) -> None:
        if local is not None:
            self.path = local
        else:
            self.zarr_store, self.zarr_prefix = store, prefix
            self.path = scratch.path("out.zarr")

    @property
    def is_object(self) -> bool:
        return self.h5py_group is not None or self.zarr_store is not None

    def deliver(self) -> None:
        """Copy a complete output from the scratch directory into the object."""
        if self.h5py_group is not None:
            h5py = _h5py()
            with h5py.File(self.path, "r") as src:
                _h5_copy_into(src, self.h5py_group)
            self.h5py_group.file.flush()
        elif self.zarr_store is not None:
            from zarr.storage import LocalStore

            _zarr_copy(LocalStore(self.path, read_only=True), "", self.zarr_store, self.zarr_prefix, clear=True)
